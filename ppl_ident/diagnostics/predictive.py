"""Posterior predictive checks in numbers: does the model reproduce each column's spread?

:func:`spread_check` compares, per observed column, the standard deviation of the observed
data with those of replicated data sets drawn from the fitted model (the
``posterior_predictive`` group the report draws). A model whose replicated densities are much
narrower than the data's under-disperses: it explains the column with too little variation
(on a real recording, channels the flow maps into a latent whose learned prior is too
narrow); one whose replicates are wider over-disperses.

References
----------
Gelman, Meng & Stern (1996), "Posterior predictive assessment of model fitness via realized
discrepancies", Statistica Sinica (posterior predictive p-values). Gabry et al. (2019),
"Visualization in Bayesian workflow", JRSS A.
"""

from __future__ import annotations

import numpy as np

from ppl_ident.errors import InputError

__all__ = ["SPREAD_TOLERANCE", "SPREAD_SE_MULTIPLE", "spread_check"]

#: the smallest relative mismatch of spread that is flagged: below 10 % the replicated and
#: observed densities look alike and the mismatch matters little next to the others a
#: latent-variable model makes
SPREAD_TOLERANCE = 0.1
#: a mismatch is flagged only beyond this many standard errors of the observed sd, so that
#: the sampling error of a few hundred observations alone does not raise it (at 3 standard
#: errors, about 0.3 % of the columns of a model that fits, for Gaussian data)
SPREAD_SE_MULTIPLE = 3.0


def spread_check(observed, replicated, names=None, *, tolerance: float = SPREAD_TOLERANCE,
                 se_multiple: float = SPREAD_SE_MULTIPLE) -> dict:
    """Per column, the replicated data's standard deviation over the observed one, and a flag
    where the model under- or over-disperses.

    Parameters
    ----------
    observed : array ``(N, d)``
        The observations the replicates are compared with.
    replicated : array ``(S, N, d)``
        ``S`` replicated data sets of the same observations.
    names : sequence of str, optional
        Column names (default ``x0, x1, ...``).
    tolerance, se_multiple : float
        A column is flagged when its ratio lies outside ``1 -/+ max(tolerance, se_multiple *
        se)``, ``se`` the relative standard error of the observed sd (delta method,
        ``sqrt((kurtosis - 1) / (4 N))``: ``1 / sqrt(2 N)`` for Gaussian data).

    Returns
    -------
    dict
        ``columns``, ``sd_observed``, ``sd_replicated`` (median over the ``S`` sets),
        ``ratio`` (their quotient), ``relative_se``, ``bound`` (the flag's half-width),
        ``p_value`` (share of replicated sets whose sd reaches the observed one: near 0 when
        the model under-disperses, near 1 when it over-disperses), ``flag`` per column
        (``"too narrow"``, ``"too wide"`` or ``"ok"``) and ``message`` (None when nothing is
        flagged).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(500, 2)) * [1.0, 3.0]
    >>> rep = rng.normal(size=(40, 500, 2))          # the second column 3x too narrow
    >>> spread_check(x, rep, ["a", "b"])["flag"]
    ['ok', 'too narrow']
    """
    observed = np.asarray(observed, np.float64)
    replicated = np.asarray(replicated, np.float64)
    if observed.ndim != 2 or replicated.ndim != 3 or replicated.shape[1:] != observed.shape:
        raise InputError(f"spread_check needs observed (N, d) and replicated (S, N, d); got "
                         f"{observed.shape} and {replicated.shape}.")
    n, d = observed.shape
    if n < 3 or len(replicated) < 1:
        raise InputError(f"spread_check needs at least 3 observations and 1 replicated set; "
                         f"got {n} and {len(replicated)}.")
    names = [f"x{k}" for k in range(d)] if names is None else [str(v) for v in names]
    sd_obs = observed.std(0, ddof=1)
    sd_rep_sets = replicated.std(1, ddof=1)                                  # (S, d)
    sd_rep = np.median(sd_rep_sets, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sd_obs > 0, sd_rep / sd_obs, np.nan)
        centred = observed - observed.mean(0)
        kurt = np.mean(centred**4, 0) / np.mean(centred**2, 0) ** 2
    rel_se = np.sqrt(np.maximum(np.nan_to_num(kurt, nan=3.0) - 1.0, 0.0) / (4 * n))
    bound = np.maximum(tolerance, se_multiple * rel_se)
    p_value = np.mean(sd_rep_sets >= sd_obs, 0)
    flag = ["ok" if not np.isfinite(r) or abs(r - 1) <= b else
            "too narrow" if r < 1 else "too wide" for r, b in zip(ratio, bound)]
    parts = []
    for what, verb in (("too narrow", "under-disperses"), ("too wide", "over-disperses")):
        cols = [k for k in range(d) if flag[k] == what]
        if cols:
            lo, hi = float(np.min(ratio[cols])), float(np.max(ratio[cols]))
            span = f"{lo:.2f}" if np.isclose(lo, hi, atol=0.005) else f"{lo:.2f}-{hi:.2f}"
            parts.append(f"the model {verb} {', '.join(names[k] for k in cols)} (replicated "
                         f"sd {span} x observed; its predictive density is {what} there)")
    message = None
    if parts:
        message = ("; ".join(parts) + f". Flagged beyond {tolerance:.0%} or "
                   f"{se_multiple:g} standard errors of the observed sd.")
    return {"columns": names, "sd_observed": sd_obs.tolist(), "sd_replicated": sd_rep.tolist(),
            "ratio": ratio.tolist(), "relative_se": rel_se.tolist(), "bound": bound.tolist(),
            "p_value": p_value.tolist(), "flag": flag, "message": message,
            "num_obs": int(n), "num_sets": int(len(replicated))}
