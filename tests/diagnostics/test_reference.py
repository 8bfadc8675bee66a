"""A posterior against a reference: interval-width ratio and mean shift with known answers."""

import numpy as np

from ppl_ident.diagnostics.reference import compare_to_reference


def test_half_as_wide_and_shifted_by_one_sd(rng):
    reference = rng.normal(size=(4000, 5, 2))
    draws = 0.5 * rng.normal(size=(4000, 5, 2)) + 1.0
    cmp = compare_to_reference(draws, reference)
    assert abs(cmp["width_ratio_median"] - 0.5) < 0.05
    np.testing.assert_allclose(cmp["width_ratio_per_latent"], 0.5, atol=0.05)
    assert abs(cmp["mean_shift_median"] - 1.0) < 0.1


def test_itself_is_the_reference(rng):
    draws = rng.normal(size=(500, 3, 2))
    cmp = compare_to_reference(draws, draws)
    assert cmp == {"width_ratio_median": 1.0, "width_ratio_per_latent": [1.0, 1.0],
                   "mean_shift_median": 0.0}
