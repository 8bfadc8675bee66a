"""Draws of ``z`` from a fitted guide, and the fitted model's predictive and likelihood at
given draws (what every latent sampler returns and what the reports compute from it)."""

from __future__ import annotations

import time
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.infer import Predictive
from numpyro.infer.util import log_likelihood

__all__ = ["LatentDraws", "fitted_model", "guide_latents", "posterior_predictive_x",
           "log_likelihood_x"]


class LatentDraws(NamedTuple):
    """Posterior draws of ``z`` for a set of observations.

    Attributes
    ----------
    z : array ``(chain, draw, obs, latent)``
    sample_stats : dict of arrays ``(chain, draw)``
        Sampler diagnostics in ArviZ names (``diverging``, ``n_steps``, ...); empty for the
        guide, whose draws are independent.
    engine : str
    run_time : float
        Seconds spent sampling (compilation included).
    config : dict
        The sampler's settings (JSON-able).
    """

    z: np.ndarray
    sample_stats: dict
    engine: str
    run_time: float
    config: dict


def fitted_model(spec, params):
    """The model with every global parameter fixed at its fitted value."""
    return handlers.substitute(spec.model, data=params)


def guide_latents(spec, params, x, u, *, key, num_draws: int = 100, num_chains: int = 1,
                  **_unused) -> LatentDraws:
    """Independent draws of ``z`` from the fitted amortised guide ``q(z | x, u)``.

    Parameters
    ----------
    spec : ModelSpec
    params : dict
        Fitted (constrained) parameters.
    x : array ``(N, d)``
    u : array ``(N,)`` or ``(N, k)``
    key : PRNG key
    num_draws, num_chains : int
        The guide's draws are i.i.d.; ``num_chains`` only reshapes them.

    Returns
    -------
    LatentDraws
        ``z`` of shape ``(num_chains, num_draws, N, n)``.
    """
    t0 = time.perf_counter()
    pred = Predictive(spec.guide, params=params, num_samples=num_chains * num_draws,
                      return_sites=["z"])
    z = np.asarray(pred(key, jnp.asarray(x), None if u is None else jnp.asarray(u))["z"])
    z = z.reshape(num_chains, num_draws, *z.shape[1:])
    return LatentDraws(z, {}, "guide", time.perf_counter() - t0,
                       dict(num_draws=num_draws, num_chains=num_chains))


def posterior_predictive_x(spec, params, z, u, *, key) -> np.ndarray:
    """Replicated data ``x_rep ~ p(x | z, theta_hat)`` for every draw of ``z``.

    ``z``: ``(chain, draw, N, n)``; returns ``(chain, draw, N, d)``.
    """
    z = jnp.asarray(z)
    pred = Predictive(spec.model, posterior_samples={"z": z}, params=params,
                      return_sites=["x"], batch_ndims=2)
    return np.asarray(pred(key, None, None if u is None else jnp.asarray(u), n_obs=z.shape[2])
                      ["x"])


def log_likelihood_x(spec, params, z, x, u) -> np.ndarray:
    """Pointwise ``log p(x_i | z_i, theta_hat)`` with the fitted parameters substituted.

    ``z``: ``(chain, draw, N, n)``; returns ``(chain, draw, N)``.
    """
    out = log_likelihood(fitted_model(spec, params), {"z": jnp.asarray(z)}, jnp.asarray(x),
                         None if u is None else jnp.asarray(u), batch_ndims=2)
    return np.asarray(out["x"])
