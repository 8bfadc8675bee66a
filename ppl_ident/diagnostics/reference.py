"""A posterior against a reference posterior of the same observations (in practice: the
amortised guide against NUTS with the fitted model held fixed).

NUTS samples the exact posterior ``p(z | x, u)`` of the fitted model, which the guide only
approximates; comparing the two on a few observations separates what the guide gets wrong
from what the model itself implies. :func:`chain_diagnostics` says whether the reference can
be trusted (R-hat, effective sample sizes, divergences); :func:`compare_to_reference` how far
the guide is from it. Draws are arrays ``(S, N, n)`` as in
:mod:`ppl_ident.diagnostics.calibration`.
"""

from __future__ import annotations

import numpy as np

from ppl_ident.arviz_compat import group, summary_diagnostics
from ppl_ident.diagnostics.calibration import intervals

__all__ = ["chain_diagnostics", "compare_to_reference"]


def chain_diagnostics(idata, var: str = "z") -> dict:
    """Convergence of the chains of ``var`` in an ArviZ posterior (either stack).

    Returns
    -------
    dict
        ``max_r_hat`` (rank-normalised split R-hat), ``min_ess_bulk``, ``min_ess_tail`` (over
        every element of ``var``, from :func:`ppl_ident.arviz_compat.summary_diagnostics`)
        and ``divergences`` (divergent
        transitions, all chains, from the ``sample_stats`` group).
    """
    diag = summary_diagnostics(idata, var)
    return {"max_r_hat": float(diag["r_hat"].max()),
            "min_ess_bulk": float(diag["ess_bulk"].min()),
            "min_ess_tail": float(diag["ess_tail"].min()),
            "divergences": int(np.asarray(group(idata, "sample_stats")["diverging"]).sum())}


def compare_to_reference(draws, reference, level: float = 0.9) -> dict:
    """Interval widths and means of ``draws`` relative to ``reference`` (same observations).

    Parameters
    ----------
    draws, reference : arrays ``(S, N, n)`` and ``(S', N, n)``
    level : float
        Probability of the equal-tailed intervals compared.

    Returns
    -------
    dict
        ``width_ratio_median`` and ``width_ratio_per_latent`` (median over observations):
        width of the ``level`` interval of ``draws`` over that of ``reference``; below 1 the
        draws are over-confident. ``mean_shift_median``: median of ``|mean - reference
        mean| / reference sd``.
    """
    draws, reference = np.asarray(draws), np.asarray(reference)
    ratio = (np.diff(intervals(draws, level), axis=-1)[..., 0]
             / np.diff(intervals(reference, level), axis=-1)[..., 0])
    shift = np.abs(draws.mean(0) - reference.mean(0)) / reference.std(0)
    return {"width_ratio_median": float(np.median(ratio)),
            "width_ratio_per_latent": np.median(ratio, axis=0).tolist(),
            "mean_shift_median": float(np.median(shift))}
