"""Amortised encoder guides ``q(z | x, u)``."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.module import eqx_module

from ppl_ident.ops.distributions import ReparamMultivariateNormal
from ppl_ident.ops.flows import apply_flow
from ppl_ident.ops.nn import batched, one_hot
from ppl_ident.ops.observation import whiten_data

__all__ = ["empty_guide", "encoder_guide", "encoder_inputs", "flow_guide",
           "fullcov_encoder_guide", "noisy_flow_guide", "NOISY_FLOW_SCALE_INIT"]


def encoder_inputs(x, u, n_domains: int | None, use_u: bool):
    """The encoder's input: ``x``, with ``u`` (one-hot for labels) appended when ``use_u``."""
    if not use_u or u is None:
        return x
    aux = one_hot(u, n_domains) if n_domains is not None else u
    return jnp.concatenate([x, aux], axis=-1)


def encoder_guide(x=None, u=None, *, encoder, n_latent: int, n_domains: int | None = None,
                  use_u: bool = True, subsample_size: int | None = None, n_obs=None,
                  min_scale: float = 1e-3, whiten=None, **_unused):
    """Diagonal-Gaussian amortised posterior ``q(z | x, u) = Normal(mu, sigma)``.

    ``encoder`` maps one input (``x`` concatenated with one-hot ``u`` when ``use_u``) to
    ``2 * n_latent`` numbers: the mean and the pre-softplus scale; registered as ``encoder``.
    With ``whiten`` the encoder reads whitened ``x`` (as the model's decoder writes it).
    """
    n = x.shape[0] if n_obs is None else n_obs
    enc = eqx_module("encoder", encoder)
    with numpyro.plate("obs", n, subsample_size=subsample_size) as idx:
        inp = encoder_inputs(whiten_data(x[idx], whiten), None if u is None else u[idx],
                             n_domains, use_u)
        out = batched(enc)(inp)
        loc = out[..., :n_latent]
        scale = jax.nn.softplus(out[..., n_latent:]) + min_scale
        numpyro.sample("z", dist.Normal(loc, scale).to_event(1))


def _lower_triangular(tri, n_latent: int, min_scale: float, offset: float = 0.0):
    """The Cholesky factor ``(..., n, n)`` from its row-major lower triangle ``(..., n (n + 1)
    / 2)``, whose diagonal goes through ``softplus(. + offset) + min_scale``."""
    rows, cols = jnp.tril_indices(n_latent)
    tri = jnp.where(rows == cols, jax.nn.softplus(tri + offset) + min_scale, tri)
    return jnp.zeros(tri.shape[:-1] + (n_latent, n_latent)).at[..., rows, cols].set(tri)


def fullcov_encoder_guide(x=None, u=None, *, encoder, n_latent: int,
                          n_domains: int | None = None, use_u: bool = True,
                          subsample_size: int | None = None, n_obs=None,
                          min_scale: float = 1e-3, whiten=None, **_unused):
    """Full-covariance amortised posterior ``q(z | x, u) = MVN(mu, L L^T)``.

    ``encoder`` maps one input to ``n + n (n + 1) / 2`` numbers: the mean, then the lower
    triangle of the Cholesky factor ``L`` (row-major), whose diagonal goes through a softplus.
    Unlike the diagonal guide it can represent posterior correlations between latents, which
    a non-linear decoder induces even when the prior is factorial.
    """
    n = x.shape[0] if n_obs is None else n_obs
    enc = eqx_module("encoder", encoder)
    with numpyro.plate("obs", n, subsample_size=subsample_size) as idx:
        inp = encoder_inputs(whiten_data(x[idx], whiten), None if u is None else u[idx],
                             n_domains, use_u)
        out = batched(enc)(inp)
        loc = out[..., :n_latent]
        scale_tril = _lower_triangular(out[..., n_latent:], n_latent, min_scale)
        numpyro.sample("z", ReparamMultivariateNormal(loc, scale_tril=scale_tril))


def flow_guide(x=None, u=None, *, flow, whiten=None, subsample_size: int | None = None,
               **_unused):
    """Point-mass posterior ``z = h(x)`` of an exact-likelihood i.i.d. model.

    ``flow`` (registered as ``flow``: the same parameters as the model's) maps each whitened
    observation to its latent. With a ``Delta`` of zero log-density the ELBO equals the model's
    exact ``log p(x | u)`` (see :func:`ppl_ident.families.iid.model.flow_likelihood`).
    """
    fl = eqx_module("flow", flow)
    with numpyro.plate("obs", x.shape[0], subsample_size=subsample_size) as idx:
        z = jax.vmap(fl)(whiten_data(x[idx], whiten))[0]
        numpyro.sample("z", dist.Delta(z, event_dim=1))


#: The noisy flow guide's initial posterior sd of the noise-free observation (whitened units),
#: wider than the model's initial noise fraction
#: (:data:`ppl_ident.families.iid.model.NOISE_FRACTION_INIT`, 0.02) so that the first steps'
#: draws explore.
NOISY_FLOW_SCALE_INIT = 0.1


def noisy_flow_guide(x=None, u=None, *, encoder, flow, n_latent: int,
                     n_domains: int | None = None, use_u: bool = True, whiten=None,
                     subsample_size: int | None = None, n_obs=None, min_scale: float = 1e-5,
                     latents: bool = True, **_unused):
    """Posterior of the noisy flow model (:func:`ppl_ident.families.iid.model.ivae` with
    ``flow_noise``): a full-covariance Gaussian over the noise-free observation ``w`` in
    whitened coordinates, centred on the observation itself plus a learned correction,
    ``q(w | x, u) = MVN(A^+ (x - mu) + delta(x, u), L L^T)``, and ``z = h(w)`` through the
    model's flow, so ``q(z | x, u)`` is that Gaussian pushed through ``h`` (not Gaussian).

    ``encoder`` maps whitened ``x`` (with one-hot ``u`` when ``use_u``) to ``delta`` and the
    lower triangle of ``L``; its last layer starts at zero, so a fresh guide is ``w = A^+ (x -
    mu)`` with sd :data:`NOISY_FLOW_SCALE_INIT`. ``latents=False`` leaves out the
    deterministic site ``z`` (the training objective: the ELBO reads ``w`` only, and the
    flow then runs once per step, in the model).
    """
    n = x.shape[0] if n_obs is None else n_obs
    enc = eqx_module("encoder", encoder)
    offset = math.log(math.expm1(NOISY_FLOW_SCALE_INIT))
    with numpyro.plate("obs", n, subsample_size=subsample_size) as idx:
        w0 = whiten_data(x[idx], whiten)
        out = batched(enc)(encoder_inputs(w0, None if u is None else u[idx], n_domains, use_u))
        scale_tril = _lower_triangular(out[..., n_latent:], n_latent, min_scale, offset)
        w = numpyro.sample("w", ReparamMultivariateNormal(w0 + out[..., :n_latent],
                                                          scale_tril=scale_tril))
        if latents:
            numpyro.deterministic("z", apply_flow(eqx_module("flow", flow), w)[0])


def empty_guide(*args, **kwargs):
    """The guide of a model with no latent sample site: the exact flow model trained with
    ``observe_latent=True``, which computes and observes ``z = h(x)`` itself."""
