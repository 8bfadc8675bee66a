"""Importance-sampled log p(x | u) against the closed form of a linear-Gaussian model."""

import jax
import numpy as np
import pytest

from ppl_ident.errors import InputError
from ppl_ident.inference.marginal import log_marginal_likelihood


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
