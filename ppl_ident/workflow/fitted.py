"""The result of a fit, :class:`Fitted`, and the model's view of a data set's ``u``.

Every other module of :mod:`ppl_ident.workflow` produces or reads a :class:`Fitted`:
:mod:`~ppl_ident.workflow.fitting` returns it, :mod:`~ppl_ident.workflow.rundir` saves and
loads it, :mod:`~ppl_ident.workflow.checks` and :mod:`~ppl_ident.workflow.export` read it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ppl_ident.families import family_of
from ppl_ident.settings import FitSettings

__all__ = ["Fitted", "model_inputs"]


class Fitted(NamedTuple):
    """A fitted model: everything needed to predict, evaluate, save and report.

    Attributes
    ----------
    spec : ModelSpec
    params : dict
        Constrained parameters.
    state : pytree
        Final engine state (optimiser included), for resuming.
    settings : FitSettings
    labels : int array or None
        The original domain labels; the model sees ``u`` re-indexed to ``0..U-1``.
    losses : array ``(steps,)``
    metrics : dict
    seed_params : dict or None
        With ``seeds = K > 1``: every seed's kept fit (its best restart by ELBO), constrained
        parameters stacked on a leading axis ``K`` in seed order; ``posterior.nc`` stores
        each seed's posterior as one chain (see
        :func:`ppl_ident.families.iid.idata.iid_inference_data`). None for one seed.
    """

    spec: object
    params: dict
    state: object
    settings: FitSettings
    labels: np.ndarray | None
    losses: np.ndarray
    metrics: dict
    seed_params: dict | None = None


def model_inputs(fitted: Fitted, u):
    """``u`` as the fitted model takes it (labels re-indexed to the fit's ``0..U-1``; None
    for models that ignore ``u``). Labels the fit has not seen raise :class:`InputError`."""
    name = fitted.spec.name
    return family_of(name).prepare_inputs(u, name, fitted.labels)[0]
