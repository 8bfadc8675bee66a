"""Whitening maps and the densities they enter, against closed forms."""

import numpy as np
import jax.numpy as jnp
from scipy.stats import multivariate_normal

from ppl_ident.ops.observation import (residual_log_density, unwhiten, whiten_data,
                                       whiten_log_det, whitening)


def _data(n_obs=4000, d=4, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    return (rng.normal(size=(n_obs, d)) @ a.T + rng.normal(size=d)).astype(np.float32)


def test_square_map_whitens_and_inverts():
    x = _data()
    white = whitening(x)
    w = np.asarray(whiten_data(jnp.asarray(x), white))
    np.testing.assert_allclose(np.cov(w, rowvar=False), np.eye(4), atol=1e-3)
    np.testing.assert_allclose(np.asarray(unwhiten(w, white)), x, atol=1e-3)
    np.testing.assert_allclose(float(whiten_log_det(white)),
                               -np.sum(np.log(np.diag(white[1]))), rtol=1e-6)


def test_principal_component_map_keeps_the_top_directions_and_scores_the_rest():
    x = _data()
    white = whitening(x, n_components=2)
    mu, a, var = white
    assert a.shape == (4, 2) and np.ndim(var) == 0
    w = np.asarray(whiten_data(jnp.asarray(x), white))
    np.testing.assert_allclose(np.cov(w, rowvar=False), np.eye(2), atol=2e-3)
    evals = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False).astype(np.float64)))[::-1]
    np.testing.assert_allclose(float(var), evals[2:].mean(), rtol=1e-3)
    # log N(w; 0, I) + log|det| of x -> w + the isotropic residual is the log-density of
    # x ~ N(mu, A A^T + var (I - V V^T)), V the principal directions (a probabilistic PCA)
    x_eval = x[:50]
    w_eval = np.asarray(whiten_data(jnp.asarray(x_eval), white))
    ours = (multivariate_normal(np.zeros(2), np.eye(2)).logpdf(w_eval)
            + float(whiten_log_det(white))
            + np.asarray(residual_log_density(jnp.asarray(x_eval), white)))
    v = a / np.linalg.norm(a, axis=0)
    cov = a.astype(np.float64) @ a.T + float(var) * (np.eye(4) - v @ v.T)
    np.testing.assert_allclose(ours, multivariate_normal(mu, cov).logpdf(x_eval), rtol=1e-4,
                               atol=1e-3)


def test_the_square_map_has_no_residual():
    x = _data(n_obs=100)
    assert np.all(np.asarray(residual_log_density(jnp.asarray(x), whitening(x))) == 0)
