"""MCC and R^2 against known answers."""

import numpy as np
import pytest

from ppl_ident.diagnostics import matched_r2, mcc
from ppl_ident.errors import InputError


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_mcc_is_one_under_permutation_scaling_and_sign(rng, method):
    z = rng.normal(size=(1000, 4))
    perm = np.array([2, 0, 3, 1])
    z_hat = z[:, perm] * np.array([3.0, -0.5, 2.0, -7.0]) + np.array([1.0, 2.0, -3.0, 0.0])
    res = mcc(z, z_hat, method=method)
    assert res.score == pytest.approx(1.0, abs=1e-12)
    # matching[i] is the learned column holding true dimension i
    assert np.array_equal(z_hat[:, res.matching] != 0, np.ones_like(z, bool))
    assert np.array_equal(perm[res.matching], np.arange(4))


def test_spearman_is_one_under_monotone_transforms(rng):
    z = rng.normal(size=(800, 3))
    z_hat = np.column_stack([np.exp(z[:, 1]), z[:, 2] ** 3, -np.tanh(z[:, 0])])
    assert mcc(z, z_hat, method="spearman").score == pytest.approx(1.0, abs=1e-12)
    assert mcc(z, z_hat, method="pearson").score < 0.95


def test_spearman_ranks_average_ties_as_scipy_does(rng):
    """Float32 latents over many rows repeat values: tied rows share their average rank."""
    from scipy.stats import rankdata, spearmanr

    from ppl_ident.diagnostics.mcc import ranks

    z = np.round(rng.normal(size=(500, 3)), 1)  # about 60 distinct values per column
    r = ranks(z)
    assert np.array_equal(r, np.column_stack([rankdata(z[:, j]) for j in range(3)]))
    tied = np.flatnonzero(z[:, 0] == z[0, 0])
    assert len(tied) > 1 and np.all(r[tied, 0] == r[tied, 0].mean())
    z_hat = z[:, [2, 0, 1]] ** 3 + 0.1 * rng.normal(size=z.shape)
    res = mcc(z, z_hat, method="spearman")
    want = np.mean([abs(spearmanr(z[:, i], z_hat[:, j])[0])
                    for i, j in enumerate(res.matching)])
    assert res.score == pytest.approx(want, abs=1e-12)


def test_mcc_of_independent_noise_is_near_zero(rng):
    # Each |corr| of independent samples has sd ~ 1/sqrt(N) = 0.014; the Hungarian maximum over
    # a 3x3 matrix stays well below 0.08.
    z, noise = rng.normal(size=(5000, 3)), rng.normal(size=(5000, 3))
    assert mcc(z, noise).score < 0.08


def test_matched_r2_is_squared_correlation(rng):
    z = rng.normal(size=(2000, 2))
    z_hat = np.column_stack([z[:, 1] + 0.5 * rng.normal(size=2000), 2 * z[:, 0]])
    res = mcc(z, z_hat)
    np.testing.assert_allclose(matched_r2(z, z_hat, res.matching), res.per_dim**2, rtol=1e-10)
    assert matched_r2(z, z_hat)[0] == pytest.approx(1.0)


def test_mcc_rejects_bad_shapes(rng):
    with pytest.raises(InputError, match="same N"):
        mcc(rng.normal(size=(10, 2)), rng.normal(size=(11, 2)))
    with pytest.raises(InputError, match="learned partner"):
        mcc(rng.normal(size=(10, 3)), rng.normal(size=(10, 2)))
