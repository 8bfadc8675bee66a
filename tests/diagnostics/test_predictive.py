"""The predictive check in numbers: replicated over observed sd per column, and its flag."""

import numpy as np
import pytest

from ppl_ident.diagnostics.predictive import SPREAD_TOLERANCE, spread_check
from ppl_ident.errors import InputError


def test_a_model_that_fits_is_not_flagged_and_wrong_spreads_are():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)) * [1.0, 2.0, 0.5]
    # column 0 right, column 1 replicated 2.5x too narrow, column 2 2x too wide
    rep = rng.normal(size=(60, 400, 3)) * [1.0, 0.8, 1.0]
    out = spread_check(x, rep, ["a", "b", "c"])
    assert out["flag"] == ["ok", "too narrow", "too wide"]
    np.testing.assert_allclose(out["ratio"], [1.0, 0.4, 2.0], atol=0.08)
    assert out["p_value"][1] == 0.0 and out["p_value"][2] == 1.0
    assert "under-disperses b (replicated sd 0.4" in out["message"]
    assert "over-disperses c" in out["message"]
    # the bound: 10 %, or 3 standard errors of the observed sd (1/sqrt(2N) for Gaussian data)
    assert out["bound"][0] == pytest.approx(max(SPREAD_TOLERANCE, 3 / np.sqrt(800)), rel=0.15)


def test_sampling_error_alone_rarely_raises_the_flag():
    """Replicates from the true model: over 200 small data sets (N = 60, where 3 standard
    errors exceed 10 %), the flag is raised about as rarely as 3 standard errors promise."""
    rng = np.random.default_rng(1)
    flags = 0
    for _ in range(200):
        x = rng.normal(size=(60, 1))
        flags += spread_check(x, rng.normal(size=(40, 60, 1)))["flag"][0] != "ok"
    assert flags <= 4                                    # 0.3 % expected; 2 % allowed


def test_heavy_tails_widen_the_bound():
    rng = np.random.default_rng(2)
    gauss = spread_check(rng.normal(size=(500, 1)), rng.normal(size=(20, 500, 1)))
    heavy = spread_check(rng.laplace(size=(500, 1)), rng.normal(size=(20, 500, 1)))
    # Laplace: kurtosis 6, so sqrt(5 / 2) = 1.58 times the Gaussian's relative error
    assert heavy["relative_se"][0] > 1.3 * gauss["relative_se"][0]


def test_shapes_are_checked():
    with pytest.raises(InputError, match="observed \\(N, d\\) and replicated \\(S, N, d\\)"):
        spread_check(np.zeros((10, 2)), np.zeros((5, 10, 3)))
