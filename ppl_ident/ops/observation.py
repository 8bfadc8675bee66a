"""Observation models shared by the families: whitening and the Gaussian likelihood of ``x``."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import solve_triangular
from numpyro.distributions.transforms import LowerCholeskyAffine

__all__ = ["observation_dist", "whiten_data", "whitening", "noise_param", "unwhiten",
           "whiten_log_det", "residual_log_density", "column_scale"]


def whitening(x, n_components: int | None = None):
    """The affine map between data and whitened coordinates, ``x = mu + A w``.

    Without ``n_components`` (or with ``n_components == d``): ``(mu, chol)``, the mean and the
    Cholesky factor of the covariance of ``x`` ``(N, d)``, for :func:`observation_dist`. A ridge
    of 1e-6 times the mean variance keeps the factor defined when ``x`` lies on a subspace
    (``d > n`` without noise); directions with no variance then stay near zero.

    With ``n_components = n < d`` (the exact-likelihood flow for ``d > n``): ``(mu, A,
    residual_var)`` with ``A = V_n diag(s_n)`` ``(d, n)``, the top ``n`` principal directions
    scaled by their standard deviations, so ``w = A^+ (x - mu)`` are the whitened principal
    components, and ``residual_var`` the mean variance left in the other ``d - n`` directions
    (floored at the ridge), which :func:`residual_log_density` scores as isotropic Gaussian.
    """
    mu, cov = _moments(x)
    d = x.shape[1]
    ridge = 1e-6 * max(float(np.mean(np.diag(cov))), 1e-12)
    if n_components is None or n_components >= d:
        chol = np.linalg.cholesky(cov + ridge * np.eye(cov.shape[0]))
        return mu.astype(np.float32), chol.astype(np.float32)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.maximum(evals[order], 0.0), evecs[:, order]
    # a sign convention, so that the same data give the same map
    evecs = evecs * np.where(evecs[np.abs(evecs).argmax(0), np.arange(d)] < 0, -1.0, 1.0)
    n = int(n_components)
    a = evecs[:, :n] * np.sqrt(evals[:n] + ridge)
    residual = max(float(evals[n:].mean()), ridge)
    return mu.astype(np.float32), a.astype(np.float32), np.float32(residual)


def _moments(x, rows: int = 1 << 16):
    """Mean and covariance (``ddof=1``; the identity for one row) of ``x`` ``(N, d)``,
    accumulated in float64 over blocks of ``rows`` rows about the first block's mean, so a
    memory-mapped ``x`` is read block by block and no full float64 copy is made."""
    n, d = x.shape[0], x.shape[1]
    shift = np.asarray(x[:rows], np.float64).mean(0)
    total, outer = np.zeros(d), np.zeros((d, d))
    for start in range(0, n, rows):
        block = np.asarray(x[start:start + rows], np.float64) - shift
        total += block.sum(0)
        outer += block.T @ block
    mean_c = total / n
    mu = shift + mean_c
    if n < 2:
        return mu, np.eye(d)
    cov = (outer - n * np.outer(mean_c, mean_c)) / (n - 1)
    return mu, np.atleast_2d(cov)


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
    """Whitened coordinates ``A^+ (x - mu)`` of ``x`` (see :func:`whitening`; ``chol^{-1}
    (x - mu)`` for the square map; identity when ``whiten`` is None)."""
    if whiten is None:
        return x
    mu, a = whiten[0], whiten[1]
    if a.shape[0] == a.shape[1]:
        return solve_triangular(a, (x - mu).T, lower=True).T
    # A = V diag(s) with orthonormal V: A^+ = diag(1/s) V^T
    scale = jnp.sqrt(jnp.sum(a * a, axis=0))
    return ((x - mu) @ a) / scale**2


def unwhiten(w, whiten=None):
    """Data coordinates ``mu + A w`` of whitened ``w`` (the inverse of :func:`whiten_data` on
    the map's range)."""
    if whiten is None:
        return w
    return whiten[0] + w @ whiten[1].T


def whiten_log_det(whiten=None):
    """``log |det|`` of the map ``x -> w`` restricted to its range: ``-log |det chol|``, or
    ``-sum log s`` for the principal-component map (0 when ``whiten`` is None)."""
    if whiten is None:
        return 0.0
    a = whiten[1]
    if a.shape[0] == a.shape[1]:
        return -jnp.sum(jnp.log(jnp.abs(jnp.diagonal(a))))
    return -jnp.sum(jnp.log(jnp.sqrt(jnp.sum(a * a, axis=0))))


def residual_log_density(x, whiten=None):
    """``log N(r; 0, residual_var I)`` of the part ``r`` of ``x - mu`` outside the range of a
    principal-component map (:func:`whitening` with ``n_components < d``), per row; 0 for the
    square map, whose range is everything."""
    if whiten is None or len(whiten) < 3:
        return jnp.zeros(x.shape[:-1])
    mu, a, var = whiten
    r = (x - mu) - unwhiten(whiten_data(x, whiten), (jnp.zeros_like(mu), a))
    k = a.shape[0] - a.shape[1]
    return -0.5 * (jnp.sum(r * r, axis=-1) / var + k * jnp.log(2 * jnp.pi * var))


def noise_param(noise_scale, data_dim, noise_init=0.1):
    """The observation noise scale: ``noise_scale`` when fixed, else the learned positive
    parameter ``noise_scale`` of shape ``(data_dim,)`` started at ``noise_init``."""
    if noise_scale is not None:
        return noise_scale
    return numpyro.param(
        "noise_scale", jnp.full((data_dim,), noise_init), constraint=dist.constraints.positive
    )


def column_scale(whiten, data_dim: int):
    """The standard deviation of each column of ``x`` ``(d,)`` as the whitening map records it
    (the row norms of the Cholesky factor, or of the principal-component map plus the
    residual variance); ones when ``whiten`` is None (data coordinates as they are)."""
    if whiten is None:
        return jnp.ones((data_dim,))
    var = jnp.sum(whiten[1] * whiten[1], axis=1)
    if len(whiten) == 3:
        var = var + whiten[2]
    return jnp.sqrt(var)
