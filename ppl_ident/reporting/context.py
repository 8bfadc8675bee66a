"""What every section builder of the run report reads and writes.

:func:`ppl_ident.reporting.report.build_report` loads the run once into a
:class:`ReportContext`; each section builder of :data:`ppl_ident.reporting.report.BUILDERS`
takes it and adds its numbers (``report.json``), figures and HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["Posterior", "ReportContext"]


class Posterior(NamedTuple):
    """The guide's posterior as every section of the report reads it.

    Attributes
    ----------
    idata : ppl_ident.arviz_compat.IData
        The observations (or sequences) kept in ``posterior.nc``, with fresh draws when it
        holds fewer than the report's ``calibration_draws``.
    alignment : Alignment or None
        Map of the learned latents onto the true ones (None without true latents).
    obs : int array
        Rows (sequences) of the data kept.
    var : str
        ``"z_aligned"`` when the idata holds the aligned latents, else ``"z"``.
    draws : array ``(S, obs, n)`` or ``(S, sequence, time, n)``
        Draws of the latents, aligned when ``alignment`` is known; chains and draws
        flattened.
    z_true : array or None
        The true latents of the kept rows (sequences).
    sequential : bool
        Whether the posterior is over latent paths (dims ``sequence, time``).
    fresh : bool
        Whether ``draws`` were drawn afresh (``posterior.nc`` held fewer).
    regimes : int array ``(sequence, time)`` or None
        The true regime path of the kept sequences, when known.
    """

    idata: object
    alignment: object
    obs: np.ndarray
    var: str
    draws: np.ndarray
    z_true: np.ndarray | None
    sequential: bool = False
    fresh: bool = False
    regimes: np.ndarray | None = None


@dataclass
class ReportContext:
    """The run, its data and posterior, and what the sections have built so far.

    ``options`` holds the keywords of :func:`~ppl_ident.reporting.report.build_report`
    (``nuts_obs``, ``forest_obs``, ``heldout``, ...); ``metrics`` the fit's
    ``metrics.json``, completed where the data allow more than the fit knew; ``cache`` what
    one builder computes for another (e.g. the latent summary of every row).
    """

    run: Path
    fitted: object
    data: object
    truth: object
    family: object
    options: dict
    metrics: dict
    post: Posterior | None = None
    numbers: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    idatas: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)
