"""NumPyro models and the model registry.

A model is a plain NumPyro function; :func:`build_model` binds it to freshly initialised
networks and pairs it with its default guide as a :class:`ModelSpec`. A new model is one new
module plus one entry in :data:`MODELS`.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ppl_ident.errors import InputError
from ppl_ident.guides.registry import guide_family
from ppl_ident.models.ivae import PRIORS, ivae, prior_params, vae
from ppl_ident.models.nn import mlp, residual_mlp
from ppl_ident.models.temporal import SEQUENCE_KINDS, regime, stationary, tivae

#: Guides of the sequence models: a diagonal or full-covariance Gaussian for every step.
SEQUENCE_GUIDES = ("encoder", "encoder_fullcov")

#: Network families for encoders and decoders.
ARCHITECTURES = {"mlp": mlp, "residual": residual_mlp}

__all__ = ["ARCHITECTURES", "MODELS", "SEQUENCE_MODELS", "ModelSpec", "build_model", "ivae",
           "vae", "prior_params", "PRIORS", "tivae", "regime", "stationary"]


class ModelSpec(NamedTuple):
    """A model bound to its networks, with its guide and a JSON-able description.

    Attributes
    ----------
    name : str
    model, guide : callables ``(x=None, u=None, *, subsample_size=None)``
    init_params : callable ``key -> dict``
        Fresh network parameters for a restart (NumPyro ``param`` site name -> pytree);
        pure, so it can be ``vmap``-ed over keys.
    config : dict
        Everything :func:`build_model` needs to rebuild the same spec (saved in run dirs).
    """

    name: str
    model: Callable
    guide: Callable
    init_params: Callable
    config: dict


def _params(module):
    return eqx.filter(module, eqx.is_inexact_array)


def _build_ivae_family(name, key, *, n_latent, data_dim, n_domains=None, aux_dim=None,
                       width=64, depth=2, prior="gaussian", noise_scale=None,
                       learn_prior_loc=True, encoder_u=True, architecture="mlp", whiten=None,
                       noise_init=0.1, guide="encoder"):
    identifiable = name == "ivae"
    if identifiable and n_domains is None and aux_dim is None:
        raise InputError("The iVAE needs an auxiliary variable u: give n_domains or aux_dim.")
    if prior not in PRIORS:
        raise InputError(f"Unknown prior {prior!r}; choose one of {', '.join(PRIORS)}.")
    family = guide_family(guide)
    use_u = identifiable and encoder_u
    enc_in = data_dim + ((n_domains or aux_dim or 0) if use_u else 0)

    if architecture not in ARCHITECTURES:
        raise InputError(f"Unknown architecture {architecture!r}; choose one of "
                         f"{', '.join(ARCHITECTURES)}.")
    net = ARCHITECTURES[architecture]

    def make_modules(key):
        k_dec, k_enc, k_aux = jax.random.split(key, 3)
        mods = {"decoder": net(k_dec, n_latent, data_dim, width, depth)}
        if family.encoder_outputs is not None:
            mods["encoder"] = net(k_enc, enc_in, family.encoder_outputs(n_latent), width, depth)
        if identifiable and n_domains is None:
            mods["prior_net"] = mlp(k_aux, aux_dim, 2 * n_latent, width, 1)
        return mods

    mods = make_modules(key)
    white = None
    if whiten is not None:
        mu, chol = (jnp.asarray(a, jnp.float32) for a in whiten)
        if mu.shape != (data_dim,) or chol.shape != (data_dim, data_dim):
            raise InputError(f"whiten must be (mean ({data_dim},), cholesky ({data_dim}, "
                             f"{data_dim})); got shapes {mu.shape} and {chol.shape}.")
        white = (mu, chol)
    common = dict(n_latent=n_latent, data_dim=data_dim, noise_scale=noise_scale, whiten=white,
                  noise_init=noise_init)
    if identifiable:
        model = partial(ivae, decoder=mods["decoder"], n_domains=n_domains,
                        aux_net=mods.get("prior_net"), prior=prior,
                        learn_prior_loc=learn_prior_loc, **common)
    else:
        model = partial(vae, decoder=mods["decoder"], **common)
    guide_fn = family.make(model, mods.get("encoder"), n_latent=n_latent, n_domains=n_domains,
                           use_u=use_u, whiten=white)

    def init_params(key):
        return {f"{k}$params": _params(m) for k, m in make_modules(key).items()}

    config = dict(name=name, n_latent=n_latent, data_dim=data_dim, n_domains=n_domains,
                  aux_dim=aux_dim, width=width, depth=depth, prior=prior,
                  noise_scale=noise_scale, learn_prior_loc=learn_prior_loc, encoder_u=encoder_u,
                  architecture=architecture, noise_init=noise_init,
                  whiten=None if white is None else [np.asarray(a).tolist() for a in white],
                  guide=guide)
    return ModelSpec(name, model, guide_fn, init_params, config)


def _build_sequence_family(name, key, *, n_latent, data_dim, n_domains=None, lag=1,
                           n_regimes=3, context=1, width=64, depth=2, noise_scale=None,
                           whiten=None, guide="encoder", noise_init=0.1, heteroscedastic=False,
                           flow=False, flow_layers=8, **_iid_only):
    """Builder of the sequence models (``x`` of shape ``(B, T, d)``); see
    :mod:`ppl_ident.models.temporal`. Options of the i.i.d. models (``prior``, ``aux_dim``,
    ...) are accepted and ignored so that one settings object serves both families."""
    from ppl_ident.guides.sequence_encoder import flow_guide, sequence_encoder_guide
    from ppl_ident.models.flows import coupling_flow
    from ppl_ident.models.temporal import temporal_model

    if name == "tivae" and n_domains is None:
        raise InputError(
            "The temporal iVAE needs integer labels u of shape (B, T) (segments or domains); "
            "for files without u use --model regime (hidden regimes) or --model stationary."
        )
    for label, value in (("lag", lag), ("n_regimes", n_regimes)):
        if int(value) != value or value < 1:
            raise InputError(f"{label} must be a positive integer, got {value!r}.")
    if int(context) != context or context < 0:
        raise InputError(f"context must be an integer >= 0, got {context!r}.")
    if guide not in SEQUENCE_GUIDES:
        raise InputError(f"Sequence models take the guides {', '.join(SEQUENCE_GUIDES)}; "
                         f"got {guide!r}.")
    if flow and (data_dim != n_latent or n_latent < 2):
        raise InputError(
            f"The exact-likelihood (flow) model maps x to z one to one, so it needs data_dim == "
            f"n_latent >= 2; got d = {data_dim}, n = {n_latent}. Use --latent-dim {data_dim} "
            "(if d >= 2) or the default variational model (drop --flow)."
        )
    fullcov = guide == "encoder_fullcov"
    K = n_regimes if name == "regime" else 1
    use_u = name == "tivae"
    enc_in = (2 * context + 1) * data_dim + (n_domains if use_u else 0)

    def make_modules(key):
        k_dec, k_enc, k_tr = jax.random.split(key, 3)
        # heteroscedastic: a second head of log noise-scale factors
        out = {"transition": mlp(k_tr, lag * n_latent,
                                 (2 if heteroscedastic else 1) * K * n_latent, width, depth)}
        if flow:  # one invertible map replaces the decoder and the encoder
            out["flow"] = coupling_flow(k_dec, n_latent, flow_layers, width, depth)
        else:
            out["decoder"] = mlp(k_dec, n_latent, data_dim, width, depth)
            out["encoder"] = mlp(k_enc, enc_in, guide_family(guide).encoder_outputs(n_latent),
                                 width, depth)
        return out

    mods = make_modules(key)
    white = None
    if whiten is not None:
        white = tuple(jnp.asarray(a, jnp.float32) for a in whiten)
        if white[0].shape != (data_dim,) or white[1].shape != (data_dim, data_dim):
            raise InputError(f"whiten must be (mean ({data_dim},), cholesky ({data_dim}, "
                             f"{data_dim})); got shapes {white[0].shape} and {white[1].shape}.")
    model = partial(temporal_model, kind=name, decoder=mods.get("decoder"),
                    flow=mods.get("flow"),
                    transition=mods["transition"], n_latent=n_latent, data_dim=data_dim,
                    lag=lag, n_domains=n_domains if use_u else None, n_regimes=K,
                    noise_scale=noise_scale, whiten=white, noise_init=noise_init,
                    heteroscedastic=bool(heteroscedastic))
    if flow:
        guide_fn = partial(flow_guide, flow=mods["flow"], whiten=white)
    else:
        guide_fn = partial(sequence_encoder_guide, encoder=mods["encoder"], n_latent=n_latent,
                           context=context, n_domains=n_domains if use_u else None,
                           use_u=use_u, whiten=white, fullcov=fullcov)

    def init_params(key):
        k_mod, k_loc = jax.random.split(key)
        out = {f"{k}$params": _params(m) for k, m in make_modules(k_mod).items()}
        if K > 1:
            # Identical regime rows are a saddle the fit rarely leaves (two regimes merge):
            # break the symmetry with distinct initial locations.
            out["trans_loc"] = jax.random.normal(k_loc, (K, n_latent))
        return out

    # batch_plate: the engines minibatch whole sequences
    config = dict(name=name, n_latent=n_latent, data_dim=data_dim,
                  n_domains=n_domains if use_u else None, lag=lag, n_regimes=K,
                  context=0 if flow else context, width=width, depth=depth,
                  noise_scale=noise_scale,
                  batch_plate="sequence", guide=guide,  # engines look up its family
                  noise_init=noise_init, heteroscedastic=bool(heteroscedastic), flow=bool(flow),
                  flow_layers=int(flow_layers),
                  whiten=None if white is None else [np.asarray(a).tolist() for a in white])
    return ModelSpec(name, model, guide_fn, init_params, config)


MODELS = {
    "ivae": partial(_build_ivae_family, "ivae"),
    "vae": partial(_build_ivae_family, "vae"),
    **{kind: partial(_build_sequence_family, kind) for kind in SEQUENCE_KINDS},
}
SEQUENCE_MODELS = SEQUENCE_KINDS


def build_model(name: str, key=None, **config) -> ModelSpec:
    """Build a registered model by name.

    Parameters
    ----------
    name : str
        One of :data:`MODELS` (``"ivae"``, ``"vae"``, ...).
    key : jax PRNG key, optional
        Initialises the networks (default ``PRNGKey(0)``).
    **config
        ``n_latent``, ``data_dim``, ``n_domains`` or ``aux_dim``, ``width``, ``depth``,
        ``prior``, ``noise_scale``, ``learn_prior_loc``, ``guide`` (a name in
        :data:`ppl_ident.guides.GUIDES`, default ``"encoder"``).

    Examples
    --------
    >>> spec = build_model("ivae", n_latent=2, data_dim=3, n_domains=4)
    >>> spec.name
    'ivae'
    """
    if name not in MODELS:
        raise InputError(f"Unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}.")
    key = jax.random.PRNGKey(0) if key is None else key
    return MODELS[name](key, **config)
