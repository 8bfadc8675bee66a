"""Observation models shared by the families: whitening and the Gaussian likelihood of ``x``."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import solve_triangular
from numpyro.distributions.transforms import LowerCholeskyAffine

__all__ = ["observation_dist", "whiten_data", "whitening", "noise_param"]


def whitening(x):
    """Mean and Cholesky factor of the covariance of ``x`` ``(N, d)``, for
    :func:`observation_dist`.

    A ridge of 1e-6 times the mean variance keeps the factor defined when ``x`` lies on a
    subspace (``d > n`` without noise); directions with no variance then stay near zero.
    """
    x = np.asarray(x, np.float64)
    mu = x.mean(0)
    cov = np.atleast_2d(np.cov(x, rowvar=False)) if len(x) > 1 else np.eye(x.shape[1])
    ridge = 1e-6 * max(float(np.mean(np.diag(cov))), 1e-12)
    chol = np.linalg.cholesky(cov + ridge * np.eye(cov.shape[0]))
    return mu.astype(np.float32), chol.astype(np.float32)


def observation_dist(mean, sigma, whiten=None):
    """``p(x | z)``: Gaussian noise in whitened coordinates, mapped back to data space.

    With ``whiten = (mu, chol)`` (the data mean and the Cholesky factor of the data
    covariance) the decoder predicts whitened coordinates ``w`` and ``x = mu + chol @ w``; the
    noise scale is then relative to the data's own spread along every direction, so a mixing
    that squeezes some directions of ``x`` does not drown them in isotropic noise. The
    log-density is that of ``x`` (the Jacobian of the affine map is included).
    """
    base = dist.Normal(mean, sigma).to_event(1)
    if whiten is None:
        return base
    mu, chol = whiten
    return dist.TransformedDistribution(base, LowerCholeskyAffine(mu, chol))


def whiten_data(x, whiten=None):
    """Whitened coordinates ``chol^{-1} (x - mu)`` of ``x`` (identity when ``whiten`` is None)."""
    if whiten is None:
        return x
    mu, chol = whiten
    return solve_triangular(chol, (x - mu).T, lower=True).T


def noise_param(noise_scale, data_dim, noise_init=0.1):
    """The observation noise scale: ``noise_scale`` when fixed, else the learned positive
    parameter ``noise_scale`` of shape ``(data_dim,)`` started at ``noise_init``."""
    if noise_scale is not None:
        return noise_scale
    return numpyro.param(
        "noise_scale", jnp.full((data_dim,), noise_init), constraint=dist.constraints.positive
    )
