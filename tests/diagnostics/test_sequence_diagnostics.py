"""Sequence diagnostics against known answers."""

import numpy as np
import pytest

from ppl_ident.diagnostics.sequences import (match_regimes, regime_accuracy, sequence_mcc,
                                             transition_matrix_error)
from ppl_ident.errors import InputError


def test_sequence_mcc_is_one_for_permuted_rescaled_latents_and_low_for_noise():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(10, 30, 3))
    assert sequence_mcc(z, -3.0 * z[..., [2, 0, 1]] + 1.0).score == pytest.approx(1.0)
    # 300 independent points: |corr| ~ 0.06 each, so the matched mean stays well below 0.3.
    assert sequence_mcc(z, rng.normal(size=(10, 30, 3))).score < 0.3
    with pytest.raises(InputError):
        sequence_mcc(z, z[:, :-1])


def test_regime_matching_and_transition_error():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 3, size=(5, 40))
    perm = np.array([2, 0, 1])
    pred = perm[true]
    m = match_regimes(true, pred)
    assert m.accuracy == 1.0 and regime_accuracy(true, pred) == 1.0
    # learned label perm[k] is true label k
    assert all(m.mapping[perm[k]] == k for k in range(3))
    flipped = pred.copy()
    flipped[0, :10] = (flipped[0, :10] + 1) % 3
    assert match_regimes(true, flipped).accuracy == pytest.approx(1 - 10 / 200)
    P = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    learned = np.empty_like(P)
    learned[np.ix_(perm, perm)] = P  # the same chain under the learned labels
    err = transition_matrix_error(P, learned, m.mapping)
    assert err["max_abs"] == pytest.approx(0.0) and np.allclose(err["matched"], P)
    noisy = learned + 0.01
    assert transition_matrix_error(P, noisy, m.mapping)["max_abs"] == pytest.approx(0.01)
    with pytest.raises(InputError):
        transition_matrix_error(P, P, np.array([0, 0, 1]))
