"""Building the sequence models (temporal iVAE, hidden regimes, stationary) with their
networks and guide."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ppl_ident.errors import InputError
from ppl_ident.families.base import ModelSpec, module_params
from ppl_ident.families.guides import empty_guide, guide_family
from ppl_ident.families.sequence.guide import flow_guide, sequence_encoder_guide
from ppl_ident.families.sequence.model import (INITIAL_DENSITIES, temporal_model,
                                               transition_outputs)
from ppl_ident.ops.flows import coupling_flow
from ppl_ident.ops.nn import StackedMLP, mlp
from ppl_ident.ops.transitions import SPLINE_BINS, TRANSITION_PRIORS

__all__ = ["SEQUENCE_GUIDES", "REGIME_TRANSITIONS", "build_sequence_model"]

#: Guides of the sequence models: a diagonal or full-covariance Gaussian for every step.
SEQUENCE_GUIDES = ("encoder", "encoder_fullcov")

#: The regime model's transition networks: one network with a head per regime (``shared``)
#: or one network per regime (``separate``, :class:`ppl_ident.ops.nn.StackedMLP`; each of
#: ``transition_width`` units and ``transition_depth`` layers).
REGIME_TRANSITIONS = ("shared", "separate")


def build_sequence_model(name, key, *, n_latent, data_dim, n_domains=None, lag=1,
                           n_regimes=3, context=1, width=64, depth=2, transition_width=None,
                           transition_depth=None, regime_transitions="shared",
                           noise_scale=None,
                           whiten=None, guide="encoder", noise_init=0.1, heteroscedastic=False,
                           flow=False, flow_layers=8, transition="additive",
                           spline_bins=SPLINE_BINS, initial="gaussian"):
    """Build sequence model ``name`` (``x`` of shape ``(B, T, d)``); see
    :mod:`ppl_ident.families.sequence.model`. ``width`` and ``depth`` shape every network;
    ``transition_width`` and ``transition_depth`` (default: ``width``, ``depth``) the
    transition network's hidden layers, shared by the regimes or one network per regime
    (``regime_transitions``, :data:`REGIME_TRANSITIONS`; the regime model only)."""
    if name == "tivae" and n_domains is None:
        raise InputError(
            "The temporal iVAE needs integer labels u of shape (B, T) (segments or domains); "
            "for files without u use --model regime (hidden regimes) or --model stationary."
        )
    for label, value in (("lag", lag), ("n_regimes", n_regimes)):
        if int(value) != value or value < 1:
            raise InputError(f"{label} must be a positive integer, got {value!r}.")
    transition_width = width if transition_width is None else transition_width
    transition_depth = depth if transition_depth is None else transition_depth
    for label, value in (("transition_width", transition_width),
                         ("transition_depth", transition_depth)):
        if int(value) != value or value < 1:
            raise InputError(f"{label} must be a positive integer, got {value!r}.")
    transition_width, transition_depth = int(transition_width), int(transition_depth)
    if regime_transitions not in REGIME_TRANSITIONS:
        raise InputError(f"regime_transitions must be one of {', '.join(REGIME_TRANSITIONS)}; "
                         f"got {regime_transitions!r}.")
    if regime_transitions == "separate" and name != "regime":
        raise InputError(f"regime_transitions='separate' gives each hidden regime its own "
                         f"transition network; model {name!r} has no regimes: use --model "
                         "regime or drop --regime-transitions.")
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
    if transition not in TRANSITION_PRIORS:
        raise InputError(f"transition must be one of {', '.join(TRANSITION_PRIORS)}; got "
                         f"{transition!r}.")
    if transition == "flow" and heteroscedastic:
        raise InputError("The flow transition's scale already moves with the past (its "
                         "conditional affine part): drop --heteroscedastic, or use "
                         "--transition additive --heteroscedastic.")
    if initial not in INITIAL_DENSITIES:
        raise InputError(f"initial must be one of {', '.join(INITIAL_DENSITIES)}; got "
                         f"{initial!r}.")
    if initial == "conditional" and not flow:
        raise InputError(
            "--initial conditional leaves the first lag steps unscored, which only the exact "
            "flow can do (the variational model needs a prior for every latent it encodes): "
            "add --flow (data_dim == latent_dim) or use --initial gaussian.")
    if int(spline_bins) != spline_bins or spline_bins < 2:
        raise InputError(f"spline_bins must be an integer >= 2, got {spline_bins!r}.")
    fullcov = guide == "encoder_fullcov"
    K = n_regimes if name == "regime" else 1
    use_u = name == "tivae"
    enc_in = (2 * context + 1) * data_dim + (n_domains if use_u else 0)
    bins = int(spline_bins) if transition == "flow" else 0
    # the flow transition of the temporal iVAE reads the domain too (its function may change)
    trans_in = lag * n_latent + (n_domains if use_u and bins else 0)

    def make_modules(key):
        k_dec, k_enc, k_tr = jax.random.split(key, 3)
        # heteroscedastic: a second head of log noise-scale factors
        if K > 1 and regime_transitions == "separate":  # one network per regime
            per = transition_outputs(1, n_latent, heteroscedastic, bins)
            splits = tuple(c for c in (n_latent, 2 * n_latent) if c < per)
            net = StackedMLP(k_tr, K, trans_in, per, transition_width, transition_depth,
                             splits)
        else:  # one network with a head per regime
            net = mlp(k_tr, trans_in, transition_outputs(K, n_latent, heteroscedastic, bins),
                      transition_width, transition_depth)
        out = {"transition": net}
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
                    heteroscedastic=bool(heteroscedastic), transition_prior=transition,
                    spline_bins=int(spline_bins), initial=initial)
    objective = None
    if flow:
        guide_fn = partial(flow_guide, flow=mods["flow"], whiten=white)
        # the same log p(x) with the flow run once per step instead of in both
        objective = (partial(model, observe_latent=True), empty_guide)
    else:
        guide_fn = partial(sequence_encoder_guide, encoder=mods["encoder"], n_latent=n_latent,
                           context=context, n_domains=n_domains if use_u else None,
                           use_u=use_u, whiten=white, fullcov=fullcov)

    def init_params(key):
        k_mod, k_loc = jax.random.split(key)
        out = {f"{k}$params": module_params(m) for k, m in make_modules(k_mod).items()}
        if K > 1:
            # Identical regime rows are a saddle the fit rarely leaves (two regimes merge):
            # break the symmetry with distinct initial locations.
            out["trans_loc"] = jax.random.normal(k_loc, (K, n_latent))
        return out

    config = dict(name=name, n_latent=n_latent, data_dim=data_dim,
                  n_domains=n_domains if use_u else None, lag=lag, n_regimes=K,
                  context=0 if flow else context, width=width, depth=depth,
                  transition_width=transition_width, transition_depth=transition_depth,
                  regime_transitions=regime_transitions, noise_scale=noise_scale,
                  guide=guide,  # engines look up its family
                  noise_init=noise_init, heteroscedastic=bool(heteroscedastic), flow=bool(flow),
                  flow_layers=int(flow_layers), transition=transition,
                  spline_bins=int(spline_bins), initial=initial,
                  whiten=None if white is None else [np.asarray(a).tolist() for a in white])
    # the engines minibatch whole sequences; a sequence's steps share one importance weight
    return ModelSpec(name, model, guide_fn, init_params, config, objective,
                     batch_plate="sequence", weight_plates=("time",), modules=mods,
                     n_latent=n_latent, data_dim=data_dim, guide_name=guide,
                     latents="point" if flow else "posterior")
