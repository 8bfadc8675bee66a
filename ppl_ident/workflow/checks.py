"""What a fit and its data say: the metrics against known latents (:func:`evaluate`) and the
identifiability checks (:func:`check_data`, :func:`check_run`), each asked of the model's
family."""

from __future__ import annotations

import numpy as np

from ppl_ident.data.simulate import Dataset
from ppl_ident.errors import InputError
from ppl_ident.families import family_for_data, family_of
from ppl_ident.workflow.fitted import Fitted

__all__ = ["evaluate", "check_data", "check_run"]


def evaluate(fitted: Fitted, dataset: Dataset, truth=None) -> dict:
    """Metrics of a fitted model on a dataset (the model's family decides which): MCC
    (Pearson and Spearman), per-dimension correlations and R^2 of the posterior mean against
    ``dataset.z`` when present; with the simulator's ``truth`` also the identifiability checks
    (i.i.d.: ``jacobian`` and ``variability`` on 256 points; sequences: the regime metrics).
    The true latents are used for these numbers only, never for fitting or selection."""
    family = family_of(fitted.spec.name, dataset)
    return family.evaluate(fitted, dataset, truth)


def check_data(dataset: Dataset, truth, **options) -> dict:
    """The sufficient-variability check of a simulated data set's true prior (the family of
    ``dataset.x``'s rank decides how); see :func:`ppl_ident.families.iid.checks.check_data` and
    :func:`ppl_ident.families.sequence.checks.check_sequence_data` for ``options``."""
    return family_for_data(dataset).check_data(dataset, truth, **options)


def check_run(fitted: Fitted, dataset: Dataset, truth=None, **options) -> dict:
    """The identifiability checks of a fitted model on its data: the learned prior's
    variability and, with ground truth, the Jacobian structure (see
    :func:`ppl_ident.families.iid.checks.check_run`); for a fit with ``seeds > 1`` also
    ``seed_agreement`` (from its metrics)."""
    name = fitted.spec.name
    family = family_of(name)
    if np.ndim(dataset.x) != family.data_rank:
        raise InputError(f"The run is a {family.label} model ({name}) but the data's x has shape "
                         f"{np.shape(dataset.x)}; pass the {family.data_shape} file it was "
                         "fitted to with --data FILE.npz.")
    result = family.check_run(fitted, dataset, truth, **options)
    m = fitted.metrics
    if "seed_agreement" in m:  # measured at fit time (fit --seeds K): the check reports it
        result["seed_agreement"] = {
            "mean": m["seed_agreement"], "min": m.get("seed_agreement_min"),
            "matrix": m.get("seed_agreement_matrix"), "elbos": m.get("seed_elbos"),
            "seeds": fitted.settings.seeds}
    if m.get("observation_noise"):  # the noisy flow's noise, measured at fit time
        result["observation_noise"] = m["observation_noise"]
    return result
