"""Posterior summaries of a fitted model: the guide's moments of ``z``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from numpyro import handlers

__all__ = ["encode", "decoder_fn", "data_mean_fn", "encoder_mean_fn", "static_module"]


def encode(spec, params, x, u):
    """Mean and standard deviation of ``q(z | x, u)`` for every observation.

    Parameters
    ----------
    spec : ModelSpec
    params : dict
        Fitted (constrained) parameters.
    x, u : arrays ``(N, d)``, ``(N,)`` or ``(N, k)``

    Returns
    -------
    mean, std : arrays ``(N, n_latent)``
    """
    def moments(params, x, u):
        guide = handlers.substitute(handlers.seed(spec.guide, 0), params)
        site = handlers.trace(guide).get_trace(x, u, subsample_size=None)["z"]
        return site["fn"].mean, jnp.sqrt(site["fn"].variance)

    return jax.jit(moments)(params, jnp.asarray(x), None if u is None else jnp.asarray(u))


def decoder_fn(spec, params):
    """The fitted decoder network as a pure function of one latent vector: ``(n,) -> (d,)``
    (for an exact-likelihood ``flow`` model, the flow's inverse ``h^{-1}``).

    Its output is in the model's decoding coordinates: whitened ``chol^{-1} (x - mu)`` when the
    model decodes whitened data (the default). For the mean of ``x`` in data coordinates use
    :func:`data_mean_fn`.
    """
    import equinox as eqx

    if spec.config.get("flow"):
        # exact-likelihood model: the learned mixing is the flow's inverse
        flow = spec.model.keywords["flow"]
        return eqx.combine(params["flow$params"],
                           eqx.partition(flow, eqx.is_inexact_array)[1]).inverse
    module = eqx.combine(params["decoder$params"], static_module(spec, "decoder"))
    return module


def data_mean_fn(spec, params):
    """``E[x | z]`` of the fitted model in data coordinates, for one latent vector.

    The decoder network followed by the model's un-whitening ``x = mu + chol @ w`` (identity
    when the model decodes in data coordinates). This is the learned mixing ``g_hat`` that a
    comparison with the true mixing needs.
    """
    dec = decoder_fn(spec, params)
    white = spec.config.get("whiten")
    if white is None:
        return dec
    mu, chol = (jnp.asarray(a, jnp.float32) for a in white)
    return lambda z: mu + chol @ dec(z)


def encoder_mean_fn(spec, params):
    """The fitted encoder's posterior mean as a function of one ``(x, u)`` pair.

    ``x``: ``(d,)``; ``u``: a scalar label or ``(k,)`` vector. Returns ``(n,)``.
    """

    def mean(x, u):
        m, _ = encode(spec, params, x[None], None if u is None else jnp.asarray(u)[None])
        return m[0]

    return mean


def static_module(spec, name):
    import equinox as eqx

    fn = spec.model if name != "encoder" else spec.guide
    module = fn.keywords["decoder" if name == "decoder" else ("aux_net" if name == "prior_net"
                                                             else "encoder")]
    return eqx.partition(module, eqx.is_inexact_array)[1]
