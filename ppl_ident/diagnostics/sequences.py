"""Diagnostics for sequence models: MCC over time steps, regime accuracy, transition error.

Regime labels are only identifiable up to a permutation, so the learned labels are first
matched to the true ones by the Hungarian algorithm on the confusion matrix (scipy's
``linear_sum_assignment``); accuracy and transition-matrix error are computed after that
matching.

References
----------
Song et al. (2023), "Temporally disentangled representation learning under unknown
nonstationarity", NeurIPS (regime accuracy after label matching).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from ppl_ident.diagnostics.mcc import MCCResult, mcc
from ppl_ident.errors import InputError

__all__ = ["RegimeMatch", "sequence_mcc", "match_regimes", "regime_accuracy",
           "transition_matrix_error"]


def sequence_mcc(z_true, z_hat, method: str = "pearson") -> MCCResult:
    """MCC over every step of every sequence: ``(B, T, n)`` and ``(B, T, m)`` are flattened to
    ``(B * T, .)`` and passed to :func:`ppl_ident.diagnostics.mcc.mcc`."""
    z_true, z_hat = np.asarray(z_true), np.asarray(z_hat)
    if z_true.ndim != 3 or z_hat.ndim != 3 or z_true.shape[:2] != z_hat.shape[:2]:
        raise InputError(
            f"sequence_mcc needs arrays (B, T, n) and (B, T, m) with the same B and T; got "
            f"{z_true.shape} and {z_hat.shape}."
        )
    return mcc(z_true.reshape(-1, z_true.shape[-1]), z_hat.reshape(-1, z_hat.shape[-1]), method)


class RegimeMatch(NamedTuple):
    """Result of :func:`match_regimes`.

    Attributes
    ----------
    accuracy : float
        Share of steps whose matched learned regime equals the true one.
    mapping : int array ``(K_hat,)``
        ``mapping[j]`` is the true regime matched to learned regime ``j`` (``-1`` for a
        learned regime left unmatched when it has more labels than the truth).
    confusion : int array ``(K_true, K_hat)``
        Counts of (true, learned) label pairs.
    """

    accuracy: float
    mapping: np.ndarray
    confusion: np.ndarray


def match_regimes(true, pred, n_true: int | None = None, n_pred: int | None = None
                  ) -> RegimeMatch:
    """Match learned regime labels to true ones (Hungarian on the confusion matrix).

    Parameters
    ----------
    true, pred : int arrays of the same shape (e.g. ``(B, T)``)
    n_true, n_pred : int, optional
        Number of labels of each (default: ``max + 1``).

    Returns
    -------
    RegimeMatch

    Examples
    --------
    >>> m = match_regimes(np.array([0, 0, 1, 2]), np.array([2, 2, 0, 1]))
    >>> m.accuracy, m.mapping.tolist()
    (1.0, [1, 2, 0])
    """
    true, pred = np.asarray(true), np.asarray(pred)
    if true.shape != pred.shape or true.size == 0:
        raise InputError(f"true and predicted regimes need the same non-empty shape; got "
                         f"{true.shape} and {pred.shape}.")
    if true.min() < 0 or pred.min() < 0:
        raise InputError("regime labels must be integers >= 0.")
    n_true = int(true.max()) + 1 if n_true is None else n_true
    n_pred = int(pred.max()) + 1 if n_pred is None else n_pred
    confusion = np.zeros((n_true, n_pred), np.int64)
    np.add.at(confusion, (true.ravel(), pred.ravel()), 1)
    rows, cols = linear_sum_assignment(-confusion)
    mapping = np.full(n_pred, -1, np.int64)
    mapping[cols] = rows
    accuracy = confusion[rows, cols].sum() / true.size
    return RegimeMatch(float(accuracy), mapping, confusion)


def regime_accuracy(true, pred) -> float:
    """Share of correctly labelled steps after the best permutation of learned labels."""
    return match_regimes(true, pred).accuracy


def transition_matrix_error(true_matrix, learned_matrix, mapping) -> dict:
    """Error of a learned regime transition matrix after relabelling.

    Parameters
    ----------
    true_matrix : ``(K, K)``
    learned_matrix : ``(K, K)``
    mapping : int ``(K,)``
        From :func:`match_regimes`: learned regime ``j`` is true regime ``mapping[j]``; must be
        a permutation.

    Returns
    -------
    dict
        ``max_abs`` (largest absolute entry difference), ``frobenius`` (Frobenius norm of the
        difference) and ``matched`` (the learned matrix in the true labels' order).

    Examples
    --------
    >>> P = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> transition_matrix_error(P, P[::-1, ::-1], np.array([1, 0]))["max_abs"]
    0.0
    """
    true_matrix = np.asarray(true_matrix, np.float64)
    learned = np.asarray(learned_matrix, np.float64)
    mapping = np.asarray(mapping)
    K = true_matrix.shape[0]
    if true_matrix.shape != (K, K) or learned.shape != (K, K) or \
            sorted(mapping.tolist()) != list(range(K)):
        raise InputError(
            f"transition_matrix_error needs two (K, K) matrices and a permutation of 0..K-1; "
            f"got {true_matrix.shape}, {learned.shape} and mapping {mapping.tolist()}."
        )
    order = np.argsort(mapping)  # order[i] = learned label of true regime i
    matched = learned[np.ix_(order, order)]
    diff = matched - true_matrix
    return {"max_abs": float(np.abs(diff).max()), "frobenius": float(np.linalg.norm(diff)),
            "matched": matched}
