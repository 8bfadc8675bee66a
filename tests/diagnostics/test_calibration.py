"""Alignment and calibration diagnostics against known answers."""

import numpy as np
import pytest

from ppl_ident.diagnostics.calibration import (LEVELS, apply_alignment, calibration_summary,
                                               coverage_tolerance, fit_alignment,
                                               interval_coverage, sd_error_correlation)
from ppl_ident.errors import InputError


def _exact_posterior(rng, n_obs=2000, n=2, num_draws=1000):
    """A heteroscedastic Gaussian posterior and true values drawn from it: calibrated."""
    mean = rng.normal(size=(n_obs, n))
    sd = rng.uniform(0.2, 2.0, size=(n_obs, n))
    z_true = mean + sd * rng.normal(size=(n_obs, n))
    draws = mean + sd * rng.normal(size=(num_draws, n_obs, n))
    return z_true, draws, sd


def test_alignment_recovers_permutation_sign_and_affine_map(rng):
    z = rng.normal(size=(500, 3))
    learned = np.c_[2.0 * z[:, 2] + 1.0, -0.5 * z[:, 0], 3.0 * z[:, 1] - 2.0]
    al = fit_alignment(z, learned)
    assert al.matching.tolist() == [1, 2, 0]
    np.testing.assert_array_equal(al.sign, [-1, 1, 1])
    np.testing.assert_allclose(al.slope, [-2.0, 1 / 3, 0.5], rtol=1e-10)
    np.testing.assert_allclose(al.r2, 1.0, rtol=1e-10)
    draws = learned + 0.1 * rng.normal(size=(200, 500, 3))
    aligned = apply_alignment(al, draws)
    np.testing.assert_allclose(apply_alignment(al, learned), z, atol=1e-10)
    # the map is affine, so widths scale by |slope|
    np.testing.assert_allclose(aligned.std(0, ddof=1).mean(0), 0.1 * np.abs(al.slope), rtol=0.02)


@pytest.mark.parametrize("method", ["eti", "hdi"])
def test_exact_posterior_has_nominal_coverage(rng, method):
    z_true, draws, _ = _exact_posterior(rng)
    cov = interval_coverage(z_true, draws, LEVELS, method)
    assert cov.shape == (len(LEVELS), 2)
    for level, row in zip(LEVELS, cov):
        # 3 binomial s.e. of 2000 independent indicators (0.034 at 50%), plus 0.015 for the
        # interval being estimated from 1000 draws: a sample HDI under-covers by 0.012 at 50%
        # and 0.006 at 90% (measured on Gaussian draws, 4000 replications), the equal-tailed
        # interval by under 0.002
        tol = coverage_tolerance(level, len(z_true)) + 0.015
        assert np.all(np.abs(row - level) < tol), (level, row, tol)


def test_overconfident_posterior_is_detected(rng):
    z_true, draws, _ = _exact_posterior(rng)
    mean = draws.mean(0)
    narrow = mean + 0.5 * (draws - mean)                    # half the width
    cov = interval_coverage(z_true, narrow, [0.9])
    # a N(0,1) value inside +-0.5*1.645: probability 0.59, far outside the 0.9 +- 0.02 band
    assert np.all(cov < 0.7)


def test_sd_error_correlation(rng):
    z_true, draws, _ = _exact_posterior(rng)
    corr = sd_error_correlation(z_true, draws)
    # |error| ~ sd * |N(0,1)| with sd ~ U(0.2, 2): Spearman correlation about 0.5
    assert np.all(corr > 0.35)
    homo = rng.normal(size=(300, 2000, 2))                   # one sd for all: no information
    z0 = rng.normal(size=(2000, 2))
    assert np.all(np.abs(sd_error_correlation(z0, homo)) < 0.1)  # 3 s.e. of rho=0 at N=2000


def test_summary_is_json_able(rng):
    import json

    z_true, draws, _ = _exact_posterior(rng, n_obs=300, num_draws=100)
    out = calibration_summary(z_true, draws)
    json.dumps(out)
    assert out["levels"] == list(LEVELS)
    assert np.all(np.diff(np.asarray(out["width_eti"]), axis=0) > 0)


def test_bad_shapes(rng):
    with pytest.raises(InputError, match="draws"):
        interval_coverage(rng.normal(size=(10, 2)), rng.normal(size=(50, 10, 3)))
    with pytest.raises(InputError, match="20 draws"):
        interval_coverage(rng.normal(size=(10, 2)), rng.normal(size=(5, 10, 2)))
