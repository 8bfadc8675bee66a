"""Mean correlation coefficient (MCC) and related alignment metrics.

MCC matches each true latent to one learned latent by the Hungarian algorithm on the absolute
correlation matrix and averages the matched absolute correlations. It is 1 exactly when the
learned latents are a permutation of the true ones up to sign and (for Pearson) affine, (for
Spearman) monotone per-dimension transforms.

References
----------
Hyvarinen & Morioka (2016), "Unsupervised feature extraction by time-contrastive learning and
nonlinear ICA", NeurIPS (MCC as the identifiability score).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata

from ppl_ident.errors import InputError

__all__ = ["MCCResult", "mcc", "correlation_matrix", "matched_r2", "ranks"]


class MCCResult(NamedTuple):
    """Result of :func:`mcc`.

    Attributes
    ----------
    score : float
        Mean of the matched absolute correlations (1 is perfect, ~0 for unrelated latents).
    matching : int array ``(n,)``
        ``matching[i]`` is the learned dimension matched to true dimension ``i``.
    per_dim : array ``(n,)``
        Signed correlation of each true dimension with its match.
    corr : array ``(n, m)``
        Full correlation matrix, true (rows) by learned (columns).
    """

    score: float
    matching: np.ndarray
    per_dim: np.ndarray
    corr: np.ndarray


def _check(z_true, z_hat):
    z_true, z_hat = np.asarray(z_true, np.float64), np.asarray(z_hat, np.float64)
    if z_true.ndim != 2 or z_hat.ndim != 2 or z_true.shape[0] != z_hat.shape[0]:
        raise InputError(
            f"mcc needs two arrays (N, n) and (N, m) with the same N; got {z_true.shape} and "
            f"{z_hat.shape}. Flatten sequences to (B*T, n) first."
        )
    if z_hat.shape[1] < z_true.shape[1]:
        raise InputError(
            f"z_hat has {z_hat.shape[1]} dimensions but z_true has {z_true.shape[1]}; every true "
            "latent needs a learned partner."
        )
    if z_true.shape[0] < 3:
        raise InputError("mcc needs at least 3 observations.")
    return z_true, z_hat


def ranks(a) -> np.ndarray:
    """Ranks ``1..N`` of every column of ``a`` ``(N, m)``, ties averaged
    (:func:`scipy.stats.rankdata` along the rows: one vectorised pass; float32 latents over many
    rows do have ties)."""
    return rankdata(np.asarray(a), axis=0).astype(np.float64, copy=False)


def correlation_matrix(z_true, z_hat, method: str = "pearson") -> np.ndarray:
    """Correlation between every true (rows) and learned (columns) dimension.

    Constant columns get correlation 0 rather than NaN.
    """
    z_true, z_hat = _check(z_true, z_hat)
    if method == "spearman":
        z_true = ranks(z_true)
        z_hat = ranks(z_hat)
    elif method != "pearson":
        raise InputError(f"Unknown method {method!r}; choose 'pearson' or 'spearman'.")
    a = z_true - z_true.mean(0)
    b = z_hat - z_hat.mean(0)
    sa, sb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a.T @ b) / np.outer(sa, sb)
    return np.nan_to_num(c, nan=0.0)


def mcc(z_true, z_hat, method: str = "pearson") -> MCCResult:
    """Mean correlation coefficient after optimal (Hungarian) matching.

    Parameters
    ----------
    z_true : array ``(N, n)``
    z_hat : array ``(N, m)`` with ``m >= n``
    method : {"pearson", "spearman"}

    Returns
    -------
    MCCResult

    Examples
    --------
    >>> rng = np.random.default_rng(0); z = rng.normal(size=(500, 3))
    >>> round(mcc(z, -2.0 * z[:, [2, 0, 1]] + 1.0).score, 6)
    1.0
    """
    c = correlation_matrix(z_true, z_hat, method)
    rows, cols = linear_sum_assignment(-np.abs(c))
    matching = cols[np.argsort(rows)]
    per_dim = c[np.arange(c.shape[0]), matching]
    return MCCResult(float(np.mean(np.abs(per_dim))), matching, per_dim, c)


def matched_r2(z_true, z_hat, matching=None) -> np.ndarray:
    """R^2 of a per-dimension affine fit of each true latent on its matched learned latent.

    Parameters
    ----------
    z_true, z_hat : arrays ``(N, n)``, ``(N, m)``
    matching : int array ``(n,)``, optional
        From :func:`mcc`; computed with Pearson MCC when omitted.

    Returns
    -------
    r2 : array ``(n,)``
        Equal to the squared matched correlation (the affine least-squares fit).
    """
    z_true, z_hat = _check(z_true, z_hat)
    if matching is None:
        matching = mcc(z_true, z_hat).matching
    out = np.empty(z_true.shape[1])
    for i, j in enumerate(np.asarray(matching)):
        design = np.column_stack([z_hat[:, j], np.ones(len(z_hat))])
        coef, *_ = np.linalg.lstsq(design, z_true[:, i], rcond=None)
        resid = z_true[:, i] - design @ coef
        tot = np.sum((z_true[:, i] - z_true[:, i].mean()) ** 2)
        out[i] = 1.0 - np.sum(resid**2) / tot if tot > 0 else 0.0
    return out
