"""ArviZ posteriors of fitted models (``InferenceData`` on ArviZ 0.23, ``xarray.DataTree`` on
1.x): the model's family builds them (:meth:`ppl_ident.families.base.ModelFamily.inference_data`,
asked through :func:`ppl_ident.families.family_of`), this module names the latent sampler
(the guide or NUTS), adds the NUTS reference posterior and reads and writes ``posterior.nc``.

ArviZ has no converter for SVI results (``az.from_numpyro`` takes an ``MCMC`` object), so
every posterior of ``z`` -- the guide's and NUTS's alike -- is built on ArviZ's ``from_dict``
in the families, through :mod:`ppl_ident.arviz_compat`, which owns every difference between the
two ArviZ stacks. ``posterior.nc`` written on either stack is read on the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ppl_ident.arviz_compat import IData, group, has_group, read_netcdf
from ppl_ident.data.simulate import Dataset
from ppl_ident.diagnostics.calibration import Alignment
from ppl_ident.errors import InputError
from ppl_ident.families import family_of
from ppl_ident.families.base import DEFAULT_DRAWS, DEFAULT_OBS, select_obs
from ppl_ident.families.predict import POINT_ESTIMATE
from ppl_ident.inference.latents import LATENT_SAMPLERS
# posterior.nc is a run-directory file: save_run writes it, the report reads it
from ppl_ident.workflow import POSTERIOR_FILE, write_posterior

__all__ = ["posterior_inference_data", "DEFAULT_DRAWS", "DEFAULT_OBS", "select_obs",
           "to_inference_data", "nuts_reference", "write_posterior", "read_posterior",
           "flat_draws", "alignment_from_idata", "latent_group", "is_point_estimate",
           "POINT_ESTIMATE"]



def to_inference_data(fitted, dataset: Dataset, *, engine: str = "guide",
                      num_draws: int = DEFAULT_DRAWS, max_obs: int = DEFAULT_OBS,
                      seed: int = 0, truth=None, **options) -> IData:
    """Posterior of the latents of a fitted model as an ArviZ posterior in its family's
    layout, drawn by the latent sampler ``engine`` (``"guide"`` or ``"nuts"``, see
    :data:`ppl_ident.inference.latents.LATENT_SAMPLERS`; NUTS for models with one latent
    vector per observation).

    ``truth``: as the family reads it (i.i.d.: true latents ``(N, n)`` for the aligned
    latents, None: ``dataset.z``, False: none; sequences: the simulator's record, for the true
    regime path). ``options`` as in
    :meth:`ppl_ident.families.base.ModelFamily.inference_data` (``obs_idx``, ``alignment``)
    and the sampler's own (``num_chains``, ``num_warmup``, ...).

    Examples
    --------
    >>> idata = to_inference_data(fitted, data, num_draws=100, max_obs=300)  # doctest: +SKIP
    >>> idata.posterior["z"].dims                                          # doctest: +SKIP
    ('chain', 'draw', 'obs', 'latent')
    """
    if engine not in LATENT_SAMPLERS:
        raise InputError(f"Unknown latent sampler {engine!r}; valid: "
                         f"{', '.join(sorted(LATENT_SAMPLERS))}.")
    family = family_of(fitted.spec.name, dataset)
    return family.inference_data(fitted, dataset, num_draws=num_draws, max_obs=max_obs,
                                 seed=seed, truth=truth,
                                 sampler=None if engine == "guide" else LATENT_SAMPLERS[engine],
                                 **options)


def posterior_inference_data(fitted, dataset: Dataset, *, num_draws: int = DEFAULT_DRAWS,
                             max_obs: int = DEFAULT_OBS, seed: int = 0, truth=None):
    """The guide's posterior over ``z`` of any fitted model, in its family's ArviZ layout
    (``obs`` for i.i.d. models, ``sequence, time`` for sequence models; what ``ppl-ident fit``
    writes to ``posterior.nc``)."""
    family = family_of(fitted.spec.name, dataset)
    return family.inference_data(fitted, dataset, num_draws=num_draws, max_obs=max_obs,
                                 seed=seed, truth=truth)


def alignment_from_idata(idata) -> Alignment | None:
    """The alignment stored in the ``fit`` group, or None."""
    if not has_group(idata, "fit"):
        return None
    fit = group(idata, "fit")
    if "alignment_slope" not in fit:
        return None
    return Alignment(*(np.asarray(fit[f"alignment_{k}"]) for k in
                       ("matching", "slope", "intercept", "r2")))


def nuts_reference(fitted, dataset: Dataset, obs_idx, *, num_warmup: int = 300,
                   num_samples: int = 300, num_chains: int = 4, seed: int = 0, truth=None,
                   alignment: Alignment | None = None, **nuts_kwargs) -> IData:
    """NUTS reference posterior of ``z`` for a few observations, with the fitted model fixed.

    Same groups, dims and coords as :func:`to_inference_data` (plus ``sample_stats``), so the
    guide's and NUTS's posteriors of the same ``obs`` can be compared directly; see
    :mod:`ppl_ident.inference.nuts`.

    Parameters
    ----------
    fitted : Fitted
    dataset : Dataset
    obs_idx : int array
        Rows to sample (tens at most: the target has ``len(obs_idx) * n`` dimensions).
    num_warmup, num_samples, num_chains : int
    seed : int
    truth, alignment
        As in :func:`to_inference_data`; pass the guide's alignment to compare like with like.

    Returns
    -------
    IData
    """
    return to_inference_data(fitted, dataset, num_draws=num_samples, obs_idx=obs_idx,
                             seed=seed, truth=truth, engine="nuts", num_chains=num_chains,
                             num_warmup=num_warmup, alignment=alignment, **nuts_kwargs)


def is_point_estimate(idata) -> bool:
    """Whether the latents of ``idata`` are a point estimate (an exact-likelihood flow's
    ``z = h(x)``, in the ``point_estimate`` group) rather than posterior draws."""
    return not has_group(idata, "posterior") and has_group(idata, POINT_ESTIMATE)


def latent_group(idata):
    """The group holding the latents ``z``: ``posterior``, or ``point_estimate`` for a point
    estimate (see :func:`is_point_estimate`)."""
    return group(idata, POINT_ESTIMATE if is_point_estimate(idata) else "posterior")


def flat_draws(idata, var: str = "z") -> np.ndarray:
    """Posterior draws of ``var`` with chain and draw flattened: ``(S, obs, ...)``; a point
    estimate is one draw, ``S = 1``."""
    if is_point_estimate(idata):
        return np.asarray(group(idata, POINT_ESTIMATE)[var])[None]
    arr = np.asarray(group(idata, "posterior")[var])
    return arr.reshape(-1, *arr.shape[2:])


def read_posterior(run_dir) -> IData:
    """Read ``posterior.nc`` from a run directory (written on either ArviZ stack)."""
    path = Path(run_dir) / POSTERIOR_FILE
    if not path.is_file():
        raise InputError(f"{path} does not exist; run `ppl-ident fit` (which writes it) or "
                         "`ppl-ident report`, which builds it from the run.")
    return read_netcdf(path)
