"""Importance-sampled log p(x | u) against the closed form of a linear-Gaussian model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from ppl_ident.errors import InputError
from ppl_ident.inference.marginal import log_marginal_likelihood, log_weights_fn


def test_matches_exact_marginal(linear_gaussian):
    lg = linear_gaussian
    ml = log_marginal_likelihood(lg["spec"], lg["params"], lg["x"], lg["u"], num_samples=2000,
                                 key=jax.random.PRNGKey(0))
    assert ml.log_px.shape == (6,)
    # the proposal (diagonal of the exact posterior) is good, so the delta-method s.e. is
    # small and reliable: 5 s.e. plus float32 rounding
    assert np.all(np.abs(ml.log_px - lg["log_px"]) < 5 * ml.se + 1e-3)
    assert np.all(ml.ess > 500)
    np.testing.assert_allclose(ml.total, ml.log_px.sum())
    np.testing.assert_allclose(ml.total_se, np.sqrt(np.sum(ml.se**2)))


def test_k_is_checked(linear_gaussian):
    lg = linear_gaussian
    with pytest.raises(InputError, match="num_samples"):
        log_marginal_likelihood(lg["spec"], lg["params"], lg["x"], lg["u"], num_samples=1)


def test_log_weights_fn_estimates_the_marginal(linear_gaussian):
    lg = linear_gaussian
    fn = log_weights_fn(lg["spec"], jnp.asarray(lg["x"]), jnp.asarray(lg["u"]), 2000)
    lw = np.asarray(jax.jit(fn)(lg["params"], jax.random.PRNGKey(1)), np.float64)
    assert lw.shape == (6, 2000)
    w = np.exp(lw - lw.max(1, keepdims=True))
    se = w.std(1, ddof=1) / (np.sqrt(2000) * w.mean(1))
    assert np.all(np.abs(logsumexp(lw, axis=1) - np.log(2000) - lg["log_px"]) < 5 * se + 1e-3)
