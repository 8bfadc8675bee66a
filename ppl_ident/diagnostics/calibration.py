"""Alignment of posterior draws onto true latents, and calibration of posterior intervals.

Learned latents are identified at best up to a permutation, a sign and a per-dimension
(monotone) transform. Before comparing a posterior with the true latents we therefore map it
onto them: Hungarian matching of learned to true dimensions (by :func:`~ppl_ident.diagnostics.mcc`),
then a per-dimension affine least-squares fit ``z_true_i ~ a_i * mean_j + b_i`` of the
posterior *mean* on the truth, whose sign of ``a_i`` is the sign flip. The same map is applied
to every posterior draw, so interval widths are rescaled consistently with the means.

Calibration then asks: at nominal level ``p``, what share of true latents fall inside the
aligned posterior's central (equal-tailed) interval, or highest-density interval (HDI)? A
calibrated posterior gives ``p``; an over-confident one (common for amortised Gaussian VI)
gives less. The affine fit absorbs only global scale and offset, so widths that are wrong
relative to the errors still show.

Intervals estimated from ``S`` draws under-cover by themselves, the HDI more (it is the
shortest of many sample windows): for Gaussian draws the mean coverage of a nominal 50 % / 90 %
interval is 0.450 / 0.874 (HDI) and 0.489 / 0.882 (equal-tailed) with ``S = 100``, and
0.477 / 0.889 and 0.496 / 0.895 with ``S = 400`` (measured, 8000 replications). Use a few
hundred draws before reading small gaps.

All functions are pure (NumPy in, NumPy out). Draws are arrays ``(S, N, n)``: ``S`` draws
(chains and draws flattened) for ``N`` observations of ``n`` latents.

References
----------
Cook, Gelman & Rubin (2006), "Validation of software for Bayesian models using posterior
quantiles", JCGS (coverage of posterior intervals as a calibration check).
Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?: Evaluating variational
inference", ICML.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.stats import spearmanr

from ppl_ident.arviz_compat import hdi
from ppl_ident.diagnostics.mcc import mcc
from ppl_ident.errors import InputError

__all__ = ["Alignment", "LEVELS", "fit_alignment", "apply_alignment", "alignment_to_dict",
           "alignment_from_dict", "intervals",
           "interval_coverage", "sd_error_correlation", "calibration_summary",
           "coverage_tolerance"]

LEVELS = (0.5, 0.8, 0.9, 0.95)


class Alignment(NamedTuple):
    """Map from learned latents onto true latents.

    Attributes
    ----------
    matching : int array ``(n_true,)``
        Learned dimension matched to each true dimension.
    slope, intercept : arrays ``(n_true,)``
        ``z_true_i ~ slope_i * z_learned[matching_i] + intercept_i``; ``sign(slope)`` is the
        sign flip.
    r2 : array ``(n_true,)``
        Share of the variance of each true latent explained by the aligned posterior mean.
    """

    matching: np.ndarray
    slope: np.ndarray
    intercept: np.ndarray
    r2: np.ndarray

    @property
    def sign(self) -> np.ndarray:
        return np.sign(self.slope)


def fit_alignment(z_true, z_mean) -> Alignment:
    """Fit the alignment of posterior means ``z_mean`` onto true latents ``z_true``.

    Parameters
    ----------
    z_true : array ``(N, n)``
    z_mean : array ``(N, m)``, ``m >= n``
        Posterior means of the learned latents (the guide's, on as many observations as
        available: the map is a property of the fitted model, not of a subset).

    Returns
    -------
    Alignment

    Examples
    --------
    >>> rng = np.random.default_rng(0); z = rng.normal(size=(200, 2))
    >>> a = fit_alignment(z, np.c_[-2 * z[:, 1], 3 + z[:, 0]])
    >>> a.matching.tolist(), np.round(a.slope, 3).tolist()
    ([1, 0], [1.0, -0.5])
    """
    z_true = np.asarray(z_true, np.float64)
    z_mean = np.asarray(z_mean, np.float64)
    res = mcc(z_true, z_mean)
    n = z_true.shape[1]
    slope, intercept, r2 = np.empty(n), np.empty(n), np.empty(n)
    for i, j in enumerate(res.matching):
        m = z_mean[:, j]
        var = m.var()
        slope[i] = np.mean((m - m.mean()) * (z_true[:, i] - z_true[:, i].mean())) / var \
            if var > 0 else 0.0
        intercept[i] = z_true[:, i].mean() - slope[i] * m.mean()
        resid = z_true[:, i] - (slope[i] * m + intercept[i])
        tot = np.sum((z_true[:, i] - z_true[:, i].mean()) ** 2)
        r2[i] = 1.0 - np.sum(resid**2) / tot if tot > 0 else 0.0
    return Alignment(res.matching, slope, intercept, r2)


def alignment_to_dict(alignment: Alignment, **extra) -> dict:
    """An alignment as JSON-able lists (``metrics.json``, ``report.json``), with ``extra``
    entries (e.g. the number of rows it was fitted on)."""
    return {**{k: np.asarray(getattr(alignment, k)).tolist() for k in Alignment._fields},
            **extra}


def alignment_from_dict(d) -> Alignment | None:
    """The :class:`Alignment` written by :func:`alignment_to_dict`; None when ``d`` is None or
    lacks a field (an older file)."""
    if not isinstance(d, dict) or any(k not in d for k in Alignment._fields):
        return None
    return Alignment(np.asarray(d["matching"], int),
                     *(np.asarray(d[k], np.float64) for k in Alignment._fields[1:]))


def apply_alignment(alignment: Alignment, draws) -> np.ndarray:
    """Map draws of learned latents ``(..., m)`` onto the true latents ``(..., n_true)``."""
    draws = np.asarray(draws)
    return draws[..., alignment.matching] * alignment.slope + alignment.intercept


def _check_draws(z_true, draws):
    z_true, draws = np.asarray(z_true), np.asarray(draws)
    if draws.ndim != 3 or z_true.shape != draws.shape[1:]:
        raise InputError(
            f"Expected draws (S, N, n) and true latents (N, n); got {draws.shape} and "
            f"{z_true.shape}. Flatten chains and draws first (draws.reshape(-1, N, n)) and "
            "align the draws onto the true latents (apply_alignment)."
        )
    if draws.shape[0] < 20:
        raise InputError(f"Need at least 20 draws per observation for intervals, got "
                         f"{draws.shape[0]}.")
    return z_true, draws


def intervals(draws, level: float, method: str = "eti") -> np.ndarray:
    """Per-observation, per-latent posterior intervals ``(N, n, 2)``.

    ``method="eti"``: equal-tailed (quantiles ``(1-p)/2`` and ``(1+p)/2``); ``"hdi"``: the
    narrowest interval holding a share ``p`` of the draws (ArviZ's ``hdi``, through
    :func:`ppl_ident.arviz_compat.hdi`).
    """
    draws = np.asarray(draws)
    if method == "eti":
        q = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return np.moveaxis(q, 0, -1)
    if method == "hdi":
        return hdi(draws, level)
    raise InputError(f"Unknown interval method {method!r}; choose 'eti' or 'hdi'.")


def interval_coverage(z_true, draws, levels=LEVELS, method: str = "eti") -> np.ndarray:
    """Share of true latents inside the posterior interval, per level and latent dimension.

    Parameters
    ----------
    z_true : array ``(N, n)``
    draws : array ``(S, N, n)``
        Posterior draws, already aligned onto the true latents.
    levels : sequence of float
        Nominal probabilities in (0, 1).
    method : {"eti", "hdi"}

    Returns
    -------
    coverage : array ``(len(levels), n)``

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> mu = rng.normal(size=(2000, 1)); z = mu + rng.normal(size=mu.shape)
    >>> draws = mu + rng.normal(size=(400, 2000, 1))
    >>> np.round(interval_coverage(z, draws, [0.5, 0.9]).ravel(), 2).tolist()
    [0.5, 0.9]
    """
    z_true, draws = _check_draws(z_true, draws)
    out = np.empty((len(levels), z_true.shape[1]))
    for k, level in enumerate(levels):
        iv = intervals(draws, level, method)
        out[k] = np.mean((z_true >= iv[..., 0]) & (z_true <= iv[..., 1]), axis=0)
    return out


def coverage_tolerance(level: float, num_obs: int, z: float = 3.0) -> float:
    """``z`` binomial standard errors of an empirical coverage at nominal ``level``."""
    return z * np.sqrt(level * (1 - level) / num_obs)


def sd_error_correlation(z_true, draws) -> np.ndarray:
    """Spearman correlation, per latent, between posterior sd and absolute error of the mean.

    A posterior whose uncertainty is informative has a positive correlation: observations it
    is unsure about are those it gets wrong. Returns ``(n,)``; NaN where the sd is constant.
    """
    z_true, draws = _check_draws(z_true, draws)
    sd = draws.std(0)
    err = np.abs(draws.mean(0) - z_true)
    out = np.full(z_true.shape[1], np.nan)
    for i in range(z_true.shape[1]):
        if np.ptp(sd[:, i]) > 0 and np.ptp(err[:, i]) > 0:
            out[i] = spearmanr(sd[:, i], err[:, i]).statistic
    return out


def calibration_summary(z_true, draws, levels=LEVELS) -> dict:
    """Coverage (equal-tailed and HDI), interval widths and sd/error correlation, as a dict of
    lists (JSON-able).

    Parameters
    ----------
    z_true : array ``(N, n)``
    draws : array ``(S, N, n)``, aligned onto ``z_true``.

    Returns
    -------
    dict
        ``levels``; ``coverage_eti`` / ``coverage_hdi``: ``[level][latent]``;
        ``mean_coverage_eti`` / ``mean_coverage_hdi``: ``[level]`` averaged over latents;
        ``width_eti``: mean interval width ``[level][latent]``; ``sd_error_spearman``:
        ``[latent]``; ``rmse``: ``[latent]`` of the posterior mean; ``num_obs``; and
        ``tolerance``: 3 binomial standard errors of a mean-over-latents coverage at each
        level, treating the ``N * n`` indicators as independent (a rough guide).
    """
    z_true, draws = _check_draws(z_true, draws)
    eti = interval_coverage(z_true, draws, levels, "eti")
    hdi = interval_coverage(z_true, draws, levels, "hdi")
    widths = [np.mean(np.diff(intervals(draws, lv, "eti"), axis=-1)[..., 0], axis=0)
              for lv in levels]
    n_obs = z_true.shape[0]
    return {
        "levels": [float(v) for v in levels],
        "num_obs": int(n_obs),
        "coverage_eti": eti.tolist(),
        "coverage_hdi": hdi.tolist(),
        "mean_coverage_eti": eti.mean(1).tolist(),
        "mean_coverage_hdi": hdi.mean(1).tolist(),
        "width_eti": np.asarray(widths).tolist(),
        "sd_error_spearman": sd_error_correlation(z_true, draws).tolist(),
        "rmse": np.sqrt(np.mean((draws.mean(0) - z_true) ** 2, axis=0)).tolist(),
        "tolerance": [coverage_tolerance(lv, n_obs * z_true.shape[1]) for lv in levels],
    }
