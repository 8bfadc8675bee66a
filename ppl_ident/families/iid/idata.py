"""The i.i.d. family's posterior over ``z`` as an ArviZ posterior (``InferenceData`` or
``xarray.DataTree``, :data:`ppl_ident.arviz_compat.IData`).

ArviZ has no converter for SVI results (``az.from_numpyro`` takes an ``MCMC`` object), so
every posterior of ``z`` -- the guide's and NUTS's alike -- is built here on ArviZ's
``from_dict``, through :func:`ppl_ident.arviz_compat.from_groups` (an ``InferenceData`` on
ArviZ 0.23, an ``xarray.DataTree`` on ArviZ 1.x).

Groups (dims in brackets; coordinates: ``obs`` = row of the data file, ``latent`` = learned
dimension, ``true_latent`` = true dimension, ``domain`` = original domain label, ``x_dim``,
``step``):

``posterior``
    ``z`` [chain, draw, obs, latent]; ``z_aligned`` [chain, draw, obs, true_latent] when the
    true latents are known (see :mod:`ppl_ident.diagnostics.calibration`). The guide's
    draws are independent; for one fit they are stored as
    :data:`~ppl_ident.families.predict.GUIDE_CHAINS` chains (100 draws: 4 chains x 25,
    :func:`~ppl_ident.families.predict.split_draws`) so that ``az.summary`` runs (its R-hat
    of independent draws is about 1 by construction). For a fit with several seeds each chain
    is one seed's posterior, aligned to the kept fit without ground truth (:data:`SEED_CHAINS`,
    the posterior attribute ``chains``), so R-hat measures how far the fits disagree. The
    noiseless flow (``--flow``) has no posterior group: its ``z = h(x)`` is a point mass,
    stored in ``point_estimate``; the noisy flow (``--flow-noise``) has one.
``point_estimate`` (custom)
    What the fit estimated as single values, without chain and draw dims (a zero-variance
    "posterior" would be a false statement of certainty): the fitted ``prior_scale``,
    ``prior_loc`` [domain, latent] (iVAE with labels) and ``noise_scale`` [x_dim] (when
    learned), or the noisy flow's ``noise_fraction`` [x_dim]; for the noiseless flow also
    ``z`` [obs, latent] and ``z_aligned`` [obs, true_latent].
``posterior_predictive``
    ``x`` [chain, draw, obs, x_dim]: ``x ~ p(x | z, theta_hat)`` for every draw of ``z``; for
    flow models (whose ``x = h^{-1}(z)`` is the data itself) new data from the fitted model,
    ``x ~ p(x | u_obs, theta_hat)`` with ``z`` drawn from the fitted prior
    (:func:`~ppl_ident.families.predict.model_predictive_x`), 4 chains x 25 draws.
``log_likelihood``
    ``x`` [chain, draw, obs]: ``log p(x_i | z_i, theta_hat)`` with the fitted parameters (the
    noisy flow: given its draw of the noise-free observation; not for the noiseless flow).
``observed_data`` / ``constant_data``
    ``x`` [obs, x_dim] / ``u`` [obs] or [obs, u_dim], and ``z_true`` [obs, true_latent] when
    known.
``sample_stats``
    Sampler diagnostics (NUTS only).
``fit`` (custom)
    ``loss`` [step]; alignment parameters [true_latent]; attributes ``settings``, ``model``,
    ``metrics`` (JSON strings).

Files written by release 0.1 store the guide's draws as one chain and the fitted parameters in
the posterior group, repeated over draws; the readers take either layout.
"""

from __future__ import annotations

import json
import time

import jax
import numpy as np
import xarray as xr

from ppl_ident._version import __version__
from ppl_ident.arviz_compat import IData, add_groups, from_groups
from ppl_ident.data.simulate import Dataset
from ppl_ident.diagnostics.agreement import apply_monotone_alignment, fit_monotone_alignment
from ppl_ident.diagnostics.calibration import Alignment, apply_alignment, fit_alignment
from ppl_ident.errors import InputError
from ppl_ident.families.base import (DEFAULT_DRAWS, DEFAULT_OBS, EVAL_ROWS, evaluation_rows,
                                     select_obs)
from ppl_ident.families.iid.inputs import prepare_inputs
from ppl_ident.families.predict import (GUIDE_CHAINS, POINT_ESTIMATE, LatentDraws,
                                        encode_chunked, guide_latents,
                                        log_likelihood_x, model_predictive_x, point_latents,
                                        posterior_predictive_x, split_draws)

__all__ = ["DEFAULT_DRAWS", "DEFAULT_OBS", "iid_inference_data", "select_obs"]


def _true_latents(truth, dataset):
    if truth is False:
        return None
    if truth is None:
        return dataset.z
    return np.asarray(getattr(truth, "z", truth))


def iid_inference_data(fitted, dataset: Dataset, *, num_draws: int = DEFAULT_DRAWS,
                       max_obs: int = DEFAULT_OBS, seed: int = 0, truth=None, obs_idx=None,
                       sampler=guide_latents, num_chains: int | None = None,
                       alignment: Alignment | None = None,
                       **sampler_kwargs) -> IData:
    """Posterior of the latents of a fitted model as an ArviZ posterior
    (:data:`ppl_ident.arviz_compat.IData`).

    Parameters
    ----------
    fitted : Fitted
        From :func:`ppl_ident.workflow.fit_model` or :func:`~ppl_ident.workflow.load_run`.
    dataset : Dataset
        The data the latents belong to (usually the fitted data).
    num_draws : int
        Draws per observation of the guide (independent; split into chains by
        :func:`~ppl_ident.families.predict.split_draws`, 100 -> 4 x 25), or draws per chain
        of a sampler.
    max_obs : int
        Keep a random subset of this many observations (``seed``), so that the file stays
        small; ignored when ``obs_idx`` is given.
    seed : int
        Seeds the subset, the draws and the posterior predictive.
    truth : array ``(N, n)``, GroundTruth, None or False
        True latents for ``z_aligned``; None uses ``dataset.z`` when present, False skips.
    obs_idx : int array, optional
        Rows of ``dataset`` to keep.
    sampler : callable
        A latent sampler ``(spec, params, x, u, *, key, num_draws, num_samples, num_chains,
        ...) -> LatentDraws``: the guide's by default, or one of
        :data:`ppl_ident.inference.latents.LATENT_SAMPLERS` (NUTS).
    num_chains : int, optional
        Chains of a sampler (default 1); given for the guide, ``num_draws`` is per chain.
    alignment : Alignment, optional
        Reuse an alignment (by default it is fitted on the guide's means over all rows of
        ``dataset``, or a seeded subset of :data:`~ppl_ident.families.base.EVAL_ROWS` rows of
        larger data, so that every engine is aligned by the same map).
    **sampler_kwargs
        Passed to the sampler (``num_warmup=...`` for NUTS).

    Returns
    -------
    IData
        ``arviz.InferenceData`` (ArviZ 0.23) or ``xarray.DataTree`` (1.x); groups as described
        in the module docstring.

    Examples
    --------
    >>> idata = iid_inference_data(fitted, data, num_draws=100, max_obs=300)  # doctest: +SKIP
    >>> idata.posterior["z"].dims                                          # doctest: +SKIP
    ('chain', 'draw', 'obs', 'latent')
    """
    for name, value in [("num_draws", num_draws), ("max_obs", max_obs),
                        ("num_chains", 1 if num_chains is None else num_chains)]:
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    spec, params = fitted.spec, fitted.params
    # the noiseless flow's z = h(x): one value per observation (the noisy flow has a posterior)
    point_mass = point_latents(spec)
    # a fit with several seeds: one chain per seed, of num_draws draws each
    seed_chains = (fitted.seed_params is not None and sampler is guide_latents
                   and not point_mass and num_chains is None)
    if num_chains is None and not seed_chains:
        num_chains, num_draws = (split_draws(num_draws) if sampler is guide_latents
                                 else (1, num_draws))
    if point_mass:
        num_chains, num_draws = 1, 1
    u_all, _ = prepare_inputs(dataset.u, fitted.labels)
    n_total = dataset.x.shape[0]
    idx = select_obs(n_total, max_obs, seed) if obs_idx is None else np.asarray(obs_idx)
    if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= n_total:
        raise InputError(f"obs_idx must be a non-empty list of rows in [0, {n_total}).")
    x = np.asarray(dataset.x[idx], np.float32)
    u = None if u_all is None else u_all[idx]
    k_draw, k_pred = jax.random.split(jax.random.PRNGKey(seed))
    if seed_chains:
        # one chain per seed: each fit's own posterior, aligned to the kept fit
        draws, predictive, log_lik = _seed_chains(fitted, dataset, u_all, x, u, k_draw, k_pred,
                                                  num_draws)
    else:
        draws = sampler(spec, params, x, u, key=k_draw, num_draws=num_draws,
                        num_samples=num_draws, num_chains=num_chains, **sampler_kwargs)
    z = draws.z.astype(np.float32)
    n_latent = z.shape[-1]
    coords = {"obs": idx, "latent": np.arange(n_latent), "x_dim": np.arange(x.shape[1])}
    dims = {"z": ["obs", "latent"], "x": ["obs", "x_dim"]}
    latents, point = {"z": z}, {}
    if "prior_scale" in params:
        coords["domain"] = (np.asarray(fitted.labels) if fitted.labels is not None
                            else np.arange(params["prior_scale"].shape[0]))
        for name in ("prior_scale", "prior_loc"):
            if name in params:
                point[name] = np.asarray(params[name], np.float32)
                dims[name] = ["domain", "latent"]
    for name in ("noise_scale", "noise_fraction"):
        if name in params:
            point[name] = np.broadcast_to(np.asarray(params[name], np.float32),
                                          (x.shape[1],)).copy()
            dims[name] = ["x_dim"]
    constant = {}
    if u is not None:
        constant["u"] = np.asarray(dataset.u)[idx]
        dims["u"] = ["obs"] if constant["u"].ndim == 1 else ["obs", "u_dim"]
    z_true = _true_latents(truth, dataset)
    if z_true is not None and alignment is None:
        # the alignment is a property of the model: fitted on up to EVAL_ROWS rows (all rows
        # of smaller data), encoded in chunks
        rows = evaluation_rows(n_total, EVAL_ROWS)
        mean_all, _ = encode_chunked(spec, params, np.asarray(dataset.x[rows], np.float32),
                                     None if u_all is None else u_all[rows], 8192)
        alignment = fit_alignment(np.asarray(z_true[rows]), mean_all)
    if z_true is not None:
        coords["true_latent"] = np.arange(z_true.shape[1])
        latents["z_aligned"] = apply_alignment(alignment, z).astype(np.float32)
        dims["z_aligned"] = ["obs", "true_latent"]
        constant["z_true"] = np.asarray(z_true, np.float32)[idx]
        dims["z_true"] = ["obs", "true_latent"]
    attrs = {"inference_library": "ppl_ident", "inference_library_version": __version__,
             "engine": draws.engine, "sampler": json.dumps(draws.config),
             "sampling_time_s": float(draws.run_time), "seed": int(seed),
             "num_obs_total": int(n_total)}
    if point_mass:
        # an exact-likelihood flow: no draws, no likelihood term p(x | z) (x = h^{-1}(z))
        point.update({k: v[0, 0] for k, v in latents.items()})
        # its predictive check: new data from p(x | u, theta_hat) for the kept rows' u
        x_rep = model_predictive_x(spec, params, u, len(idx), key=k_pred,
                                   num_chains=GUIDE_CHAINS, num_draws=DEFAULT_DRAWS // GUIDE_CHAINS)
        idata = from_groups({"posterior_predictive": {"x": x_rep.astype(np.float32)},
                             "observed_data": {"x": x}, "constant_data": constant},
                            coords=coords, dims=dims)
    else:
        if not seed_chains:
            # the model's own latent sites (the noisy flow's noise-free w), else z
            sites = draws.sites or z
            predictive = posterior_predictive_x(spec, params, sites, u, key=k_pred)
            log_lik = log_likelihood_x(spec, params, sites, x, u)
        else:
            attrs["chains"] = SEED_CHAINS
        idata = from_groups({"posterior": latents,
                             "posterior_predictive": {"x": predictive.astype(np.float32)},
                             "log_likelihood": {"x": log_lik.astype(np.float32)},
                             "sample_stats": draws.sample_stats,
                             "observed_data": {"x": x},
                             "constant_data": constant},
                            coords=coords, dims=dims, attrs={"posterior": attrs})
    if point:
        add_groups(idata, {POINT_ESTIMATE: _point_group(point, coords, dims, attrs)})
    add_groups(idata, {"fit": _fit_group(fitted, alignment)})
    return idata


#: What a chain of ``posterior.nc`` is in a run with several seeds (its posterior attribute
#: ``chains``).
SEED_CHAINS = ("one chain per seed (fit --seeds K): the draws of chain k are independent draws "
               "from seed k's own fitted posterior, mapped onto the kept fit's latents by the "
               "permutation, signs and per-latent monotone maps that best match seed k's "
               "posterior means to the kept fit's (no true latent is used); R-hat and ESS of "
               "z across chains measure how far the fits disagree beyond each posterior's "
               "width")

#: Rows on which the seeds' alignment to the kept fit is fitted (all rows of smaller data).
ALIGNMENT_ROWS = 16_384


def _seed_chains(fitted, dataset, u_all, x, u, k_draw, k_pred, num_draws: int):
    """Each seed's posterior draws as one chain, aligned to the kept fit
    (:func:`ppl_ident.diagnostics.agreement.fit_monotone_alignment` on posterior means), with
    each chain's posterior predictive and pointwise log-likelihood under its own fit."""
    spec, seeds = fitted.spec, fitted.seed_params
    rows = evaluation_rows(dataset.x.shape[0], ALIGNMENT_ROWS)
    x_rows = np.asarray(dataset.x[rows], np.float32)
    u_rows = None if u_all is None else u_all[rows]
    reference, _ = encode_chunked(spec, fitted.params, x_rows, u_rows, 8192)
    chains, pred, log_lik = [], [], []
    n_seeds = jax.tree_util.tree_leaves(seeds)[0].shape[0]
    t0 = time.perf_counter()
    for k in range(n_seeds):
        p = jax.tree_util.tree_map(lambda a: a[k], seeds)  # noqa: B023
        d = guide_latents(spec, p, x, u, key=jax.random.fold_in(k_draw, k),
                          num_draws=num_draws, num_chains=1)
        mean, _ = encode_chunked(spec, p, x_rows, u_rows, 8192)
        chains.append(apply_monotone_alignment(fit_monotone_alignment(reference, mean), d.z))
        sites = d.sites or d.z
        pred.append(posterior_predictive_x(spec, p, sites, u, key=jax.random.fold_in(k_pred, k)))
        log_lik.append(log_likelihood_x(spec, p, sites, x, u))
    draws = LatentDraws(np.concatenate(chains).astype(np.float32), {}, "guide",
                        time.perf_counter() - t0,
                        dict(num_draws=num_draws, num_chains=n_seeds, chains="seeds"))
    return draws, np.concatenate(pred), np.concatenate(log_lik)


def _point_group(values: dict, coords: dict, dims: dict, attrs: dict) -> xr.Dataset:
    used = {d for name in values for d in dims[name]}
    return xr.Dataset({name: (dims[name], v) for name, v in values.items()},
                      coords={d: coords[d] for d in used}, attrs=attrs)


def _fit_group(fitted, alignment: Alignment | None) -> xr.Dataset:
    data = {"loss": ("step", np.asarray(fitted.losses, np.float32))}
    if alignment is not None:
        for name in ("matching", "slope", "intercept", "r2"):
            data[f"alignment_{name}"] = ("true_latent", np.asarray(getattr(alignment, name)))
    metrics = {k: v for k, v in (fitted.metrics or {}).items()}
    attrs = {"settings": json.dumps(fitted.settings._asdict()),
             "model": json.dumps(fitted.spec.config),
             "metrics": json.dumps(metrics, default=float)}
    coords = {"step": np.arange(len(fitted.losses))}
    if alignment is not None:
        coords["true_latent"] = np.arange(len(alignment.slope))
    return xr.Dataset(data, coords=coords, attrs=attrs)
