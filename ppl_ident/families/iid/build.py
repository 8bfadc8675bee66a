"""Building the i.i.d. models (iVAE, VAE) with their networks and guide."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ppl_ident.errors import InputError
from ppl_ident.families.base import ModelSpec, module_params
from ppl_ident.families.guides import guide_family
from ppl_ident.families.iid.guide import empty_guide, flow_guide, noisy_flow_guide
from ppl_ident.families.iid.model import PRIORS, ivae, vae
from ppl_ident.ops.flows import coupling_flow
from ppl_ident.ops.nn import mlp, residual_mlp, zero_last_layer

__all__ = ["ARCHITECTURES", "build_iid_model"]

#: Network families for encoders and decoders.
ARCHITECTURES = {"mlp": mlp, "residual": residual_mlp}


def build_iid_model(name, key, *, n_latent, data_dim, n_domains=None, aux_dim=None,
                    width=64, depth=2, prior="gaussian", noise_scale=None,
                    learn_prior_loc=True, encoder_u=True, architecture="mlp", whiten=None,
                    noise_init=0.1, guide="encoder", flow=False, flow_layers=8,
                    flow_noise=False, flow_noise_sd=None):
    """Build ``ivae`` or ``vae`` with fresh networks; see :func:`ppl_ident.families.build_model`.

    ``flow=True`` builds the exact-likelihood variant: an invertible coupling flow ``z = h(x)``
    (``flow_layers`` couplings, ``width`` x ``depth`` MLPs) with a point-mass guide replaces the
    decoder, its noise and the encoder; it needs ``data_dim >= n_latent >= 2``, and for
    ``data_dim > n_latent`` a principal-component ``whiten`` map
    (:func:`ppl_ident.ops.observation.whitening` with ``n_components=n_latent``).
    ``flow_noise=True`` (with ``flow``) adds learned Gaussian observation noise to the flow:
    the latent is the noise-free observation, and an encoder (``width`` x ``depth``, reading
    the whitened observation) gives its full-covariance Gaussian posterior
    (:func:`ppl_ident.families.iid.guide.noisy_flow_guide`). ``flow_noise_sd`` (data units,
    every column) fixes that noise at a known level instead of learning it.
    """
    if flow_noise_sd is not None and not (flow and flow_noise):
        raise InputError("flow_noise_sd is the noisy flow's known noise: pass it with "
                         "flow=True, flow_noise=True.")
    if flow_noise_sd is not None and not float(flow_noise_sd) > 0:
        raise InputError(f"flow_noise_sd must be > 0 (data units), got {flow_noise_sd}.")
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
    if flow and (data_dim < n_latent or n_latent < 2):
        raise InputError(
            f"The exact-likelihood (flow) model maps x to z one to one, so it needs "
            f"d >= n >= 2; got d = {data_dim}, n = {n_latent}. Use --latent-dim between 2 and "
            f"{data_dim}, or the variational model (--no-flow)."
        )
    if flow and data_dim > n_latent and (whiten is None or len(whiten) != 3):
        raise InputError(
            f"The flow model for d = {data_dim} > n = {n_latent} reads x through its top "
            f"{n_latent} principal components, which the whitening step computes: drop "
            "--no-whiten, or fit the variational model (--no-flow)."
        )

    def make_modules(key):
        k_dec, k_enc, k_aux = jax.random.split(key, 3)
        if flow:  # one invertible map replaces the decoder and the encoder
            mods = {"flow": coupling_flow(k_dec, n_latent, flow_layers, width, depth)}
            if flow_noise:  # the posterior of the noise-free observation, from the observation
                in_size = n_latent + ((n_domains or aux_dim or 0) if use_u else 0)
                mods["encoder"] = zero_last_layer(
                    mlp(k_enc, in_size, n_latent + n_latent * (n_latent + 1) // 2, width, depth))
        else:
            mods = {"decoder": net(k_dec, n_latent, data_dim, width, depth)}
        if family.encoder_outputs is not None and not flow:
            mods["encoder"] = net(k_enc, enc_in, family.encoder_outputs(n_latent), width, depth)
        if identifiable and n_domains is None:
            mods["prior_net"] = mlp(k_aux, aux_dim, 2 * n_latent, width, 1)
        return mods

    mods = make_modules(key)
    white = None
    if whiten is not None:
        white = tuple(jnp.asarray(a, jnp.float32) for a in whiten)
        cols = n_latent if len(white) == 3 else data_dim
        if white[0].shape != (data_dim,) or white[1].shape != (data_dim, cols):
            raise InputError(f"whiten must be (mean ({data_dim},), map ({data_dim}, {cols})"
                             f"{', residual variance' if len(white) == 3 else ''}); got shapes "
                             f"{white[0].shape} and {white[1].shape}.")
    common = dict(n_latent=n_latent, data_dim=data_dim, noise_scale=noise_scale, whiten=white,
                  noise_init=noise_init, flow=mods.get("flow"),
                  flow_noise=bool(flow and flow_noise), flow_noise_sd=None if flow_noise_sd is None else float(flow_noise_sd))
    if identifiable:
        model = partial(ivae, decoder=mods.get("decoder"), n_domains=n_domains,
                        aux_net=mods.get("prior_net"), prior=prior,
                        learn_prior_loc=learn_prior_loc, **common)
    else:
        model = partial(vae, decoder=mods.get("decoder"), **common)
    objective = None
    if flow and flow_noise:
        guide_fn = partial(noisy_flow_guide, encoder=mods["encoder"], flow=mods["flow"],
                           n_latent=n_latent, n_domains=n_domains, use_u=use_u, whiten=white)
        # the ELBO reads w only: the flow runs once per step, in the model
        objective = (model, partial(guide_fn, latents=False))
    elif flow:
        guide_fn = partial(flow_guide, flow=mods["flow"], whiten=white)
        # the same log p(x | u) with the flow run once per step instead of in both
        objective = (partial(model, observe_latent=True), empty_guide)
    else:
        guide_fn = family.make(model, mods.get("encoder"), n_latent=n_latent,
                               n_domains=n_domains, use_u=use_u, whiten=white)

    def init_params(key):
        return {f"{k}$params": module_params(m) for k, m in make_modules(key).items()}

    config = dict(name=name, n_latent=n_latent, data_dim=data_dim, n_domains=n_domains,
                  aux_dim=aux_dim, width=width, depth=depth, prior=prior,
                  noise_scale=noise_scale, learn_prior_loc=learn_prior_loc, encoder_u=encoder_u,
                  architecture=architecture, noise_init=noise_init,
                  whiten=None if white is None else [np.asarray(a).tolist() for a in white],
                  guide=guide, flow=bool(flow), flow_layers=int(flow_layers),
                  flow_noise=bool(flow and flow_noise),
                  flow_noise_sd=None if flow_noise_sd is None else float(flow_noise_sd))
    latents = ("transformed" if flow_noise else "point") if flow else "posterior"
    return ModelSpec(name, model, guide_fn, init_params, config, objective, modules=mods,
                     n_latent=n_latent, data_dim=data_dim, guide_name=guide, latents=latents)
