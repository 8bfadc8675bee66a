"""Amortised encoder for sequences: ``q(z_t | x_{t-c..t+c}, u_t)`` for every step at once."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.module import eqx_module

from ppl_ident.ops.distributions import ReparamMultivariateNormal
from ppl_ident.ops.nn import one_hot
from ppl_ident.ops.observation import whiten_data

__all__ = ["sequence_encoder_guide", "context_windows", "flow_guide"]


def context_windows(x, context: int):
    """Stack each step with its ``context`` neighbours on both sides: ``(B, T, d)`` ->
    ``(B, T, (2 * context + 1) * d)``; the ends repeat the first/last step."""
    if context == 0:
        return x
    T = x.shape[1]
    padded = jnp.pad(x, ((0, 0), (context, context), (0, 0)), mode="edge")
    return jnp.concatenate([padded[:, s:s + T] for s in range(2 * context + 1)], axis=-1)


def sequence_encoder_guide(x=None, u=None, *, encoder, n_latent: int, context: int = 1,
                           n_domains: int | None = None, use_u: bool = False,
                           subsample_size: int | None = None, min_scale: float = 1e-3,
                           whiten=None, fullcov: bool = False, **_unused):
    """Gaussian amortised posterior over every latent step of every sequence.

    ``encoder`` maps one window (``2 * context + 1`` steps of ``x``, plus one-hot ``u_t`` when
    ``use_u``) to the mean and scale of ``q(z_t | x_{t-c..t+c}, u_t)``; registered as
    ``encoder``. Diagonal (``fullcov=False``): ``2 * n_latent`` outputs, mean and pre-softplus
    scale. Full covariance (``fullcov=True``): ``n + n (n + 1) / 2`` outputs, the mean and the
    lower triangle of the Cholesky factor (row-major, diagonal through a softplus), as in
    :func:`ppl_ident.families.iid.guide.fullcov_encoder_guide`: a non-linear decoder correlates the
    latents of one step a posteriori even under a factorial prior. The site ``z`` lives in the
    plates ``sequence`` (dim -2) and ``time`` (dim -1), like the sequence models' prior, so
    every ``z_t`` is proposed at once.

    Parameters
    ----------
    x : ``(B, T, d)``
    u : int ``(B, T)`` or None
    encoder : equinox.Module
    n_latent, context : int
    n_domains : int, optional
        Labels of ``u`` (for the one-hot code) when ``use_u``.
    whiten : tuple ``(mu, chol)``, optional
        The encoder reads whitened ``x`` (as the model's decoder writes it).
    subsample_size : int, optional
        Minibatch size of the ``sequence`` plate.
    fullcov : bool
        Full-covariance (True) or diagonal (False) Gaussian for each step.
    """
    B, T = x.shape[:2]
    enc = eqx_module("encoder", encoder)
    with numpyro.plate("sequence", B, subsample_size=subsample_size, dim=-2) as idx:
        x_b = jnp.asarray(x)[idx]
        x_b = whiten_data(x_b.reshape(-1, x_b.shape[-1]), whiten).reshape(x_b.shape)
        inp = context_windows(x_b, context)
        if use_u and u is not None:
            inp = jnp.concatenate([inp, one_hot(u[idx], n_domains)], axis=-1)
        flat = inp.reshape(-1, inp.shape[-1])
        out = jax.vmap(enc)(flat)
        out = out.reshape(inp.shape[:2] + out.shape[-1:])
        loc = out[..., :n_latent]
        if fullcov:
            rows, cols = jnp.tril_indices(n_latent)
            tri = out[..., n_latent:]
            tri = jnp.where(rows == cols, jax.nn.softplus(tri) + min_scale, tri)
            scale_tril = jnp.zeros(tri.shape[:-1] + (n_latent, n_latent)).at[
                ..., rows, cols].set(tri)
            q = ReparamMultivariateNormal(loc, scale_tril=scale_tril)
        else:
            q = dist.Normal(loc, jax.nn.softplus(out[..., n_latent:]) + min_scale).to_event(1)
        with numpyro.plate("time", T, dim=-1):
            numpyro.sample("z", q)


def flow_guide(x=None, u=None, *, flow, whiten=None, subsample_size: int | None = None,
               **_unused):
    """Point-mass posterior ``z_t = h(x_t)`` of an exact-likelihood sequence model.

    ``flow`` (a :class:`ppl_ident.ops.flows.CouplingFlow`, registered as ``flow``: the same
    parameters as the model's) maps each whitened step to its latent. With a ``Delta`` of zero
    log-density the ELBO equals the model's exact ``log p(x)``: the model scores
    ``log p(z_{1:T}) + log |det J_h|`` at ``z = h(x)`` (see
    :func:`ppl_ident.families.sequence.model.temporal_model`).
    """
    B, T = x.shape[:2]
    fl = eqx_module("flow", flow)
    with numpyro.plate("sequence", B, subsample_size=subsample_size, dim=-2) as idx:
        x_b = jnp.asarray(x)[idx]
        w = whiten_data(x_b.reshape(-1, x_b.shape[-1]), whiten)
        z = jax.vmap(fl)(w)[0].reshape(x_b.shape[:2] + (-1,))
        with numpyro.plate("time", T, dim=-1):
            numpyro.sample("z", dist.Delta(z, event_dim=1))
