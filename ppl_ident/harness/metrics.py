"""Per-run metrics of the comparison harness: one function per entry of :data:`METRICS`.

Every metric is ``fn(run, dataset, truth) -> dict`` of scalars (column name -> value),
computed for one seed of one cell. ``run`` is a :class:`CellFit`: the seed's
:class:`ppl_ident.workflow.Fitted` (the workflow's result type, as ``fit_model`` returns it;
its ``metrics`` hold the fit's own numbers) plus what the vectorised fit already computed for
all seeds at once; ``dataset`` is the training data; ``truth`` the simulator's ground truth.
True latents are used for *evaluation only*: nothing here feeds back into fitting or
selection.

Metrics ask the model's family what differs between i.i.d. data and sequences: how latents
are scored against the truth (:meth:`~ppl_ident.families.ModelFamily.score_latents`: over
every step of every sequence), what an observation is for the ELBO per observation
(:meth:`~ppl_ident.families.ModelFamily.n_obs`: a time step), and whether importance weights
are per observation (:attr:`~ppl_ident.families.ModelFamily.row_latents`). Metrics built on
other modules (calibration, held-out likelihood, Jacobian scores) import them when called; a
metric that does not apply to a guide (no amortised encoder) or a family returns
``{"<name>_status": "not applicable: ..."}`` instead of numbers, so a grid still completes.

Sampler rows (``nuts``; ``fitted.metrics["kind"] == "sampler"``): ``dataset`` is the subset of
training observations whose latents were sampled, ``run.z_mean`` the mean of the draws
and ``fitted.metrics["draws"]`` the draws ``(chain, draw, obs, latent)``. MCC, calibration,
timing and the ``mcmc`` diagnostics apply; the ELBO, PSIS, held-out likelihood, Jacobian and
time-to-MCC metrics read "not applicable" (they need a variational guide).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ppl_ident.arviz_compat import ess, psis_khat, rhat
from ppl_ident.families import family_of
from ppl_ident.families.predict import point_latents
from ppl_ident.workflow import Fitted

__all__ = ["METRICS", "CellFit", "compute_metrics", "time_to_threshold", "MCC_THRESHOLD",
           "is_sampler"]

#: The MCC level whose first crossing is timed (recorded, never used to select anything).
MCC_THRESHOLD = 0.9


class CellFit(NamedTuple):
    """One seed of a cell's vectorised fit, as the metric functions see it.

    Attributes
    ----------
    fitted : Fitted
        The seed's fit (its kept restart): model, parameters, settings, losses; ``metrics``
        holds the fit's own numbers (ELBO, objective, timings, ``stop_reason``, the
        periodic-evaluation trace of this seed; a sampler's draws and statistics).
    engine : Engine
        The engine that ran (a sampler cell's: the sampler).
    z_mean : array ``(*obs, n_latent)``
        Posterior mean of ``z`` of the training data (a sampler's: the mean of its draws).
    u : array or None
        The model's inputs ``u`` of those observations (labels re-indexed).
    heldout : Dataset or None
        Observations simulated with the same setting but not used for fitting (None where the
        family holds none out).
    seed : int
    cache : dict
        Shared by the seeds of one cell, so a metric can compile a function once per cell.
    """

    fitted: Fitted
    engine: object
    z_mean: np.ndarray | None
    u: object
    heldout: object
    seed: int
    cache: dict


def time_to_threshold(times, values, threshold: float = MCC_THRESHOLD):
    """First time at which ``values`` reaches ``threshold`` (NaN if never).

    Examples
    --------
    >>> time_to_threshold([1.0, 2.0, 3.0], [0.5, 0.95, 0.97])
    2.0
    """
    values = np.asarray(values, float)
    hit = np.flatnonzero(values >= threshold)
    return float(np.asarray(times, float)[hit[0]]) if hit.size else float("nan")


def is_sampler(run: CellFit) -> bool:
    """Whether the row comes from a sampler engine (draws of ``z``, no guide fitted)."""
    return run.fitted.metrics.get("kind") == "sampler"


def _not_for_sampler(run: CellFit, name: str, why: str) -> dict | None:
    if is_sampler(run):
        return {f"{name}_status": f"not applicable: {run.engine.name} {why}"}
    return None


def _family(run: CellFit):
    return family_of(run.fitted.settings.model)


def _per_row(run: CellFit, name: str) -> dict | None:
    """"not applicable" for a family whose latents are not independent per observation: the
    importance weights here are one per observation."""
    family = _family(run)
    if not family.row_latents:
        return {f"{name}_status": f"not applicable: its importance weights are one per "
                                  f"independent observation; a {family.label} model's latents "
                                  "depend on each other"}
    return None


def mcc_metric(run: CellFit, dataset, truth) -> dict:
    """MCC (Pearson and Spearman) of the posterior mean, and the matched |corr| per latent,
    scored as the family's ``evaluate`` scores a fit (sequences: over every step of every
    sequence).

    For a sampler also ``base_mcc``: the base fit's guide mean on the same observations."""
    if dataset.z is None:
        return {}
    score = _family(run).score_latents
    pear = score(dataset.z, run.z_mean)
    out = {"mcc": pear.score, "mcc_spearman": score(dataset.z, run.z_mean, "spearman").score}
    out.update({f"mcc_dim{i}": float(abs(c)) for i, c in enumerate(pear.per_dim)})
    if is_sampler(run):
        out["base_mcc"] = score(dataset.z, run.fitted.metrics["base_z_mean"]).score
    return out


def elbo_metric(run: CellFit, dataset, truth) -> dict:
    """Full-data ELBO per observation (per time step for sequences; Trace_ELBO for every
    engine, so comparable) and the engine's own objective (the IWAE bound for ``iwae``), as
    ``fit`` scored it to select the seed's restart."""
    skip = _not_for_sampler(run, "elbo", "samples z under its base fit's parameters and "
                                        "optimises no bound")
    if skip:
        return skip
    n = _family(run).n_obs(dataset)
    m = run.fitted.metrics
    return {"elbo_per_obs": m["elbo"] / n, "objective_per_obs": m["objective"] / n,
            "num_skipped_steps": m["num_skipped_steps"]}


def timing_metric(run: CellFit, dataset, truth) -> dict:
    """Compile and run time of the vectorised fit (shared by its seeds) and throughput.

    For a sampler: its own times (steps are transitions, warm-up included) and those of its
    base fit (``base_compile_time_s``, ``base_run_time_s``, ``base_steps``)."""
    m = run.fitted.metrics
    t, steps, seeds = m["run_time_s"], m["num_steps"], m["seeds_in_batch"]
    out = {"compile_time_s": m["compile_time_s"], "run_time_s": t, "num_steps": steps,
           "seeds_in_batch": seeds, "steps_per_s": steps / t if t > 0 else float("nan"),
           "seed_steps_per_s": steps * seeds / t if t > 0 else float("nan")}
    out.update({k: m[k] for k in ("base_compile_time_s", "base_run_time_s", "base_steps")
                if k in m})
    return out


def time_to_mcc_metric(run: CellFit, dataset, truth) -> dict:
    """Fit time and steps until this seed's MCC first reached 0.9 in the periodic evaluations
    (every ``eval_every`` steps; the time is the vectorised program's, evaluation excluded)."""
    skip = _not_for_sampler(run, "time_to_mcc", "has no periodic evaluations (its MCC is "
                                               "that of the mean of all draws)")
    if skip:
        return skip
    tr = run.fitted.metrics.get("trace")
    if not tr or dataset.z is None:
        return {}
    return {"time_to_mcc90_s": time_to_threshold(tr["time_s"], tr["mcc"]),
            "steps_to_mcc90": time_to_threshold(tr["step"], tr["mcc"])}


#: The status of the posterior metrics of a model whose z is a point estimate (the exact flow).
POINT_STATUS = ("not applicable: the exact flow's z is a point estimate (z = h(x); no "
                "posterior, no interval, no proposal to weight)")

#: Observations (at most) and guide draws per observation used for PSIS k-hat.
PSIS_MAX_OBS, PSIS_SAMPLES = 1000, 100


def psis_metric(run: CellFit, dataset, truth) -> dict:
    """Pareto k-hat of the guide as an importance proposal for each observation's posterior.

    ``log w = log p(x_i, z | u_i) - log q(z | x_i, u_i)`` for ``PSIS_SAMPLES`` draws of ``z``
    per observation, smoothed with ArviZ's ``psislw`` (:func:`ppl_ident.arviz_compat.psis_khat`);
    k-hat < 0.5 says the guide is a good proposal, > 0.7 that it misses mass (importance
    sampling from it is unreliable). Computed
    on at most ``PSIS_MAX_OBS`` observations (a fixed random subset). Not defined for guides
    whose density is intractable (``semidais``: its ``z`` is the end of an annealing chain).

    References
    ----------
    Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?: Evaluating variational
    inference", ICML. Vehtari et al. (2024), "Pareto smoothed importance sampling", JMLR.
    """
    import jax

    from ppl_ident.families.guides import guide_family
    from ppl_ident.inference.marginal import log_weights_fn

    skip = _not_for_sampler(run, "psis_khat", "draws from the posterior itself (there is "
                                             "no proposal to weight)")
    if skip:
        return skip
    fitted = run.fitted
    guide = fitted.spec.guide_name
    if point_latents(fitted.spec):
        return {"psis_khat_status": POINT_STATUS}
    skip = _per_row(run, "psis_khat")
    if skip:
        return skip
    if guide == "semidais":
        return {"psis_khat_status": "not meaningful: the semidais guide has no tractable "
                                    "density"}
    cache = run.cache
    n = dataset.x.shape[0]
    if "psis_idx" not in cache:
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(n, PSIS_MAX_OBS, replace=False)) if n > PSIS_MAX_OBS \
            else np.arange(n)
        import jax.numpy as jnp

        u = None if run.u is None else jnp.asarray(run.u)
        full = guide_family(guide).full_data
        # Non-amortised guides need the full data (their parameters are per observation);
        # amortised ones are evaluated on the subset only.
        x = jnp.asarray(dataset.x)
        x_in, u_in = (x, u) if not full else (x[idx], None if u is None else u[idx])
        batch = None if full else fitted.settings.batch_size
        cache["psis_idx"] = idx if not full else np.arange(len(idx))
        cache["psis_fn"] = jax.jit(log_weights_fn(fitted.spec, x_in, u_in, PSIS_SAMPLES, batch))
    lw = np.asarray(cache["psis_fn"](fitted.params, jax.random.PRNGKey(run.seed)),
                    np.float64)[cache["psis_idx"]]
    if not np.all(np.isfinite(lw)):
        return {"psis_khat_status": "non-finite importance weights"}
    khat = psis_khat(lw)
    return {"psis_khat_max": float(khat.max()), "psis_khat_mean": float(khat.mean()),
            "psis_share_khat_gt_0.7": float(np.mean(khat > 0.7))}


#: Observations (at most) used for calibration and Jacobian scores; guide draws for coverage.
EVAL_MAX_OBS, CALIBRATION_DRAWS, HELDOUT_SAMPLES = 1000, 100, 100


def _eval_subset(run: CellFit, n: int) -> np.ndarray:
    cache = run.cache
    if "eval_idx" not in cache:
        rng = np.random.default_rng(1)
        cache["eval_idx"] = np.sort(rng.choice(n, EVAL_MAX_OBS, replace=False)) \
            if n > EVAL_MAX_OBS else np.arange(n)
    return cache["eval_idx"]


def _amortised(run: CellFit, name: str) -> dict | None:
    from ppl_ident.families.guides import guide_family

    guide = run.fitted.spec.guide_name
    if not guide_family(guide).full_data:
        return {f"{name}_status": f"not applicable: the {guide} guide has no amortised "
                                  "encoder to run on new or subsets of observations"}
    return None


def calibration_metric(run: CellFit, dataset, truth) -> dict:
    """Coverage of the true latents by the guide's 90 % equal-tailed intervals.

    Guide draws are mapped onto the true latents by the per-latent affine alignment fitted on
    the posterior means (:func:`ppl_ident.diagnostics.calibration.fit_alignment`), on at most
    ``EVAL_MAX_OBS`` observations (sequences: whole sequences, every step scored). 0.9 is
    calibrated; below is over-confident. For a sampler: the intervals of its draws (all
    chains), aligned by the mean of the draws.
    """
    from ppl_ident.diagnostics.calibration import (apply_alignment, fit_alignment,
                                                   interval_coverage)
    from ppl_ident.families.predict import guide_latents

    if dataset.z is None:
        return {}
    if is_sampler(run):
        # the draws themselves, aligned by their own mean (all sampled observations)
        draws = np.asarray(run.fitted.metrics["draws"])
        alignment = fit_alignment(dataset.z, run.z_mean)
        z = apply_alignment(alignment, draws.reshape(-1, *draws.shape[2:]))
        cov = interval_coverage(dataset.z, z, [0.9])
        return {"calibration_90": float(cov.mean()), "calibration_90_status": "ok"}
    skip = _amortised(run, "calibration_90")
    if skip:
        return skip
    fitted = run.fitted
    if point_latents(fitted.spec):
        return {"calibration_90_status": POINT_STATUS}
    import jax

    idx = _eval_subset(run, dataset.x.shape[0])
    n = dataset.z.shape[-1]
    draws = guide_latents(fitted.spec, fitted.params, np.asarray(dataset.x)[idx],
                          None if run.u is None else np.asarray(run.u)[idx],
                          key=jax.random.PRNGKey(run.seed + 1), num_draws=CALIBRATION_DRAWS)
    # every observation (sequences: every step) of the subset, one row each
    z = np.asarray(draws.z).reshape(CALIBRATION_DRAWS, -1, draws.z.shape[-1])
    alignment = fit_alignment(dataset.z.reshape(-1, n),
                              run.z_mean.reshape(-1, run.z_mean.shape[-1]))
    cov = interval_coverage(np.asarray(dataset.z)[idx].reshape(-1, n),
                            apply_alignment(alignment, z), [0.9])
    return {"calibration_90": float(cov.mean()), "calibration_90_status": "ok"}


def heldout_loglik_metric(run: CellFit, dataset, truth) -> dict:
    """Importance-sampled ``log p(x | u)`` per held-out observation (mean and its Monte Carlo
    standard error), ``HELDOUT_SAMPLES`` guide draws each."""
    from ppl_ident.inference.marginal import log_marginal_likelihood

    skip = _not_for_sampler(run, "heldout_loglik", "samples the latents of training "
                                                  "observations; it estimates no p(x | u)")
    if skip:
        return skip
    skip = _per_row(run, "heldout_loglik")
    if skip:
        return skip
    if run.heldout is None:
        return {}
    skip = _amortised(run, "heldout_loglik")
    if skip:
        return skip
    import jax

    from ppl_ident.workflow import model_inputs

    fitted = run.fitted
    u = model_inputs(fitted, run.heldout.u)
    ml = log_marginal_likelihood(fitted.spec, fitted.params, run.heldout.x, u,
                                 num_samples=HELDOUT_SAMPLES,
                                 key=jax.random.PRNGKey(run.seed + 2))
    return {"heldout_loglik": float(ml.mean), "heldout_loglik_se": float(ml.mean_se),
            "heldout_loglik_status": "ok"}


def jacobian_metric(run: CellFit, dataset, truth) -> dict:
    """Jacobian of the encoder route (true -> learned latents, standardised) scored by
    :func:`ppl_ident.workflow.check_run`: Amari distance, share of points whose dominant
    permutation is the global one, off-permutation mass."""
    from ppl_ident.workflow import check_run

    skip = _not_for_sampler(run, "jacobian", "has no encoder network")
    if skip:
        return skip
    if truth is None or dataset.z is None:
        return {}
    fitted = run.fitted
    if not point_latents(fitted.spec) and "encoder" not in getattr(fitted.spec.guide,
                                                                   "keywords", {}):
        return {"jacobian_status": "not applicable: the guide has no encoder network"}
    rep = check_run(fitted, dataset, truth, n_points=128, seed=0).get("jacobian") or {}
    enc = rep.get("encoder") or {}
    if not enc.get("applicable"):
        return {"jacobian_status": f"not applicable: {rep.get('reason') or enc.get('reason')}"}
    return {"jacobian_amari": enc.get("amari"), "jacobian_agreement": enc.get("agreement"),
            "jacobian_off_mass": enc.get("off_mass"), "jacobian_status": "ok"}


def mcmc_metric(run: CellFit, dataset, truth) -> dict:
    """Convergence and efficiency of a sampler's chains, over every sampled latent.

    Rank-normalised split R-hat (max; < 1.01 is the usual bar), bulk and tail effective sample
    sizes (min, and min bulk ESS per second of sampling), divergent transitions (count and
    share of transitions x observations), mean acceptance statistic and mean tree size
    (leapfrog steps per transition).

    References
    ----------
    Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021), "Rank-normalization, folding, and
    localization: an improved R-hat", Bayesian Analysis.
    """
    if not is_sampler(run):
        return {"mcmc_status": "not applicable: the engine draws no Markov chains"}
    m = run.fitted.metrics
    draws = np.asarray(m["draws"])
    rhat_z = rhat(draws)
    bulk = ess(draws, "bulk")
    tail = ess(draws, "tail")
    stats = m["sample_stats"]
    run = m["run_time_s"]
    c, s = draws.shape[:2]
    return {"rhat_max": float(rhat_z.max()), "ess_bulk_min": float(bulk.min()),
            "ess_tail_min": float(tail.min()),
            "ess_bulk_min_per_s": float(bulk.min()) / run if run > 0 else float("nan"),
            "divergences": int(np.sum(stats["diverging"])),
            "divergent_share": float(np.mean(stats["diverging"])),
            "accept_prob_mean": float(np.mean(stats["accept_prob"])),
            "tree_size_mean": float(np.mean(stats["tree_size"])),
            "num_chains": int(c), "num_samples": int(s), "sample_obs": int(m["sample_obs"]),
            "mcmc_status": "ok"}


#: name -> fn(run, dataset, truth) -> dict of scalar columns.
METRICS: dict[str, Callable] = {
    "mcc": mcc_metric,
    "elbo": elbo_metric,
    "timing": timing_metric,
    "time_to_mcc": time_to_mcc_metric,
    "psis_khat": psis_metric,
    "calibration_90": calibration_metric,
    "heldout_loglik": heldout_loglik_metric,
    "jacobian": jacobian_metric,
    "mcmc": mcmc_metric,
}


def compute_metrics(run: CellFit, dataset, truth, names=None) -> dict:
    """Run the named metrics (default: all of :data:`METRICS`) and merge their columns.

    A metric that raises is recorded as ``{name}_status: "error: ..."``; the others still run.
    """
    out = {}
    for name in names or METRICS:
        try:
            out.update(METRICS[name](run, dataset, truth))
        except Exception as err:  # noqa: BLE001 - one broken metric must not lose the cell
            out[f"{name}_status"] = f"error: {type(err).__name__}: {err}"[:300]
    return out
