"""Seed agreement: known answers (identical up to permutation/scale/sign, independent noise, a
rotation) and the input check."""

import numpy as np
import pytest

from ppl_ident.diagnostics import agreement_verdict, seed_agreement
from ppl_ident.errors import InputError


def test_permuted_rescaled_flipped_latents_agree_exactly(rng):
    z = rng.normal(size=(500, 3))
    lat = np.stack([z, -3.0 * z[:, [2, 0, 1]] + 1.0, 0.5 * z[:, [1, 0, 2]]])
    res = seed_agreement(lat)
    assert res.mean == pytest.approx(1.0, abs=1e-12) and res.min == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res.matrix, np.ones((3, 3)), atol=1e-12)


def test_independent_fits_barely_agree(rng):
    # matched |correlation| of independent noise: each ~ N(0, 1/N), maximised over 3! matchings
    lat = rng.normal(size=(3, 4000, 3))
    res = seed_agreement(lat)
    assert res.mean < 0.05
    np.testing.assert_allclose(res.matrix, res.matrix.T)
    np.testing.assert_allclose(np.diag(res.matrix), 1.0)


def test_a_rotation_by_45_degrees_agrees_at_one_over_root_two(rng):
    # the VAE's indeterminacy: a rotated fit correlates 1/sqrt(2) with each original latent
    z = rng.normal(size=(20000, 2))
    c = s = np.sqrt(0.5)
    rot = z @ np.array([[c, -s], [s, c]])
    res = seed_agreement(np.stack([z, rot]))
    assert res.mean == pytest.approx(np.sqrt(0.5), abs=0.01)  # sampling sd ~ 0.005 at N = 20k


def test_spearman_forgives_monotone_maps(rng):
    z = rng.normal(size=(1000, 2))
    lat = np.stack([z, np.exp(z[:, ::-1])])
    assert seed_agreement(lat, "spearman").mean == pytest.approx(1.0, abs=1e-12)
    assert seed_agreement(lat).mean < 0.9


def test_one_fit_is_refused_naming_the_fix():
    with pytest.raises(InputError, match="at least 2 fits"):
        seed_agreement(np.zeros((1, 10, 2)))


def test_verdict_words():
    # a number and where it is judged, never a fixed threshold's verdict
    assert agreement_verdict(0.95, 3).startswith("the 3 seeds agree at mean MCC 0.950")
    assert "u permuted" in agreement_verdict(0.6, 3)
    assert "could not be computed" in agreement_verdict(None, 3)


def test_monotone_alignment_undoes_permutation_sign_and_monotone_maps(rng):
    """A fit that differs from the reference by a permutation, a sign and increasing maps
    (the indeterminacy an identified model leaves) is mapped back onto it: the mean error is
    the knots' interpolation error (200 quantile knots of 5000 rows)."""
    from ppl_ident.diagnostics import apply_monotone_alignment, fit_monotone_alignment

    z = rng.normal(size=(5000, 3))
    other = np.c_[np.tanh(z[:, 2]), -np.exp(z[:, 0]), 3 * z[:, 1] ** 3]
    a = fit_monotone_alignment(z, other)
    assert a.matching.tolist() == [1, 2, 0] and a.sign.tolist() == [-1.0, 1.0, 1.0]
    back = apply_monotone_alignment(a, other)
    assert np.mean(np.abs(back - z)) < 0.03
    # draws with extra leading axes map element by element
    np.testing.assert_allclose(apply_monotone_alignment(a, other[None, :10]), back[None, :10])


def test_monotone_alignment_refuses_mismatched_shapes():
    from ppl_ident.diagnostics import fit_monotone_alignment

    with pytest.raises(InputError, match="same shape"):
        fit_monotone_alignment(np.zeros((10, 2)), np.zeros((10, 3)))
