"""Run one grid cell: simulate its data (its family's simulator), fit all seeds as one
vectorised program through ``ppl-ident fit``'s own fit path, score each seed with
:data:`~ppl_ident.harness.metrics.METRICS`, and write one result file atomically.

The fit path is that of :func:`ppl_ident.workflow.fit_model`: the cell's settings pass
:func:`~ppl_ident.workflow.checked_settings` (the defaults ``ppl-ident fit`` gives the model
on these data: the exact flow where it is the default), :func:`~ppl_ident.workflow.build_fit`
builds the model and the engine, and :func:`ppl_ident.inference.fit` runs every seed in one
program (``seeds`` = the cell's seeds) with its divergence policy, its restarts and its
restart selection; each seed's parameters are :func:`~ppl_ident.workflow.seed_fits`. Seed
``k`` of a cell is therefore seed ``k`` of ``ppl-ident fit --seeds K``, and a one-seed cell of
seed 0 is ``ppl-ident fit``'s fit.

A cell's file is its only output and is written once, complete, by an atomic rename, so a
directory of cell files is always a consistent (possibly partial) set of results: re-running
skips finished cells, and a cell whose worker died simply has no file yet.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ppl_ident.errors import InputError
from ppl_ident.harness.grid import HELDOUT_FRACTION, SAMPLE_OBS, Cell

__all__ = ["CELL_DIR", "HELDOUT_FRACTION", "SAMPLE_SUBSET_SEED", "CellBuild", "build_cell",
           "cell_data", "cell_path", "fit_cell", "is_done", "read_cell", "run_cell",
           "sample_cell", "sample_subset"]

CELL_DIR = "cells"
#: Key of the evaluations after the fit (posterior means, the comparable ELBO).
EVAL_KEY = 10_000


def cell_path(out_dir, cell: Cell) -> Path:
    return Path(out_dir) / CELL_DIR / f"{cell.cell_id}.json"


def read_cell(path) -> dict | None:
    """A finished cell's record, or None when the file is missing or not a finished cell."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return rec if rec.get("status") == "done" else None


def is_done(out_dir, cell: Cell) -> bool:
    return read_cell(cell_path(out_dir, cell)) is not None


def cell_data(data: dict):
    """Training data, held-out data (None where the family holds none out) and ground truth
    of a cell's data setting: simulated by the family of its generator
    (:meth:`~ppl_ident.families.ModelFamily.simulate_setting`, ``HELDOUT_FRACTION`` as many
    held-out points), or a user's data file (``compare --data FILE``) split by its family
    (:meth:`~ppl_ident.families.ModelFamily.heldout_rows`). A table carries no ground truth;
    a simulator file its own."""
    from ppl_ident.families import family_for_data, family_of_generator

    if "file" not in data:
        return family_of_generator(data["generator"]).simulate_setting(data, HELDOUT_FRACTION)
    from ppl_ident.data import Dataset, read_data
    from ppl_ident.data.tables import Columns
    from ppl_ident.inference.checkpoint import file_sha256

    if file_sha256(data["file"]) != data["sha256"]:
        raise InputError(f"{data['file']} changed since the grid was made (its SHA-256 "
                         "differs); start the comparison in a new --out directory.")
    full, truth, _ = read_data(data["file"], Columns.from_dict(data.get("columns")))
    test = family_for_data(full).heldout_rows(full, HELDOUT_FRACTION)
    if test is None:
        return full, None, truth
    pick = lambda m: Dataset(full.x[m], None if full.u is None else full.u[m],  # noqa: E731
                             None if full.z is None else full.z[m])
    return pick(~test), pick(test), truth


class CellBuild(NamedTuple):
    """What a cell's fit is made of, built as :func:`~ppl_ident.workflow.fit_model` builds
    it: the model's family, the checked settings, the model's inputs, the model, the engine
    and the key of :func:`ppl_ident.inference.fit`."""

    family: object
    settings: object
    u: object
    labels: object
    spec: object
    engine: object
    key: object


def build_cell(cell: Cell, data) -> CellBuild:
    """The fit of ``cell`` on its training ``data``: :func:`~ppl_ident.workflow.checked_settings`
    (the family's comparison guides allowed) and :func:`~ppl_ident.workflow.build_fit`. A
    sampler cell's is its base fit's."""
    from ppl_ident.families import family_of
    from ppl_ident.workflow import build_fit, checked_settings

    guides = family_of(cell.model).compare_guides
    family, s = checked_settings(data, cell.fit_settings(), guides=guides)
    u, labels = family.prepare_inputs(data.u, s.model)
    spec, engine, key = build_fit(data, s, u, labels)
    return CellBuild(family, s, u, labels, spec, engine, key)


def _fit_seeds(cell: Cell, b: CellBuild, data, on_chunk=None):
    """Every seed of the cell fitted by :func:`ppl_ident.inference.fit` (restarts, divergence
    policy and selection as in ``ppl-ident fit``); returns the result and each seed's kept
    parameters (stacked on a leading seed axis)."""
    from ppl_ident.inference import fit
    from ppl_ident.workflow import seed_fits

    s = b.settings
    res = fit(b.engine, b.key, data.x, b.u, s.steps, restarts=s.restarts, seeds=cell.seeds,
              chunk_size=min(cell.eval_every, s.steps), progress=False, on_chunk=on_chunk)
    return res, seed_fits(b.engine, res)


def _mean_fn(b: CellBuild, x, u):
    """``(params (K, ...), key) -> (K, *x.shape[:-1], n)``: every seed's posterior mean of
    ``z`` (guides bound to a subsample size run on fixed minibatches), compiled once."""
    import jax

    from ppl_ident.families.guides import guide_family
    from ppl_ident.inference.subsample import posterior_mean_fn

    full = guide_family(b.settings.guide).full_data or b.settings.flow
    return jax.jit(jax.vmap(posterior_mean_fn(b.spec, x, u, batch_size=None if full
                                              else b.settings.batch_size), in_axes=(0, None)))


def fit_cell(cell: Cell, data, heldout, truth) -> tuple[list[dict], dict]:
    """Fit every seed of ``cell`` at once.

    Returns one row (dict of scalar columns) per seed, and the periodic-evaluation trace
    ``{"step", "time_s", "mcc" (per seed)}``.
    """
    import jax

    from ppl_ident.harness.metrics import CellFit, compute_metrics
    from ppl_ident.workflow import Fitted
    from ppl_ident.workflow.build import make_engine

    if cell.is_sampler:
        return sample_cell(cell, data, truth)
    b = build_cell(cell, data)
    s, family = b.settings, b.family
    x = jax.numpy.asarray(data.x)
    u = None if b.u is None else jax.numpy.asarray(b.u)
    mean_fn = _mean_fn(b, x, u)
    k_eval = jax.random.PRNGKey(EVAL_KEY)
    # the restarts of seed i are rows i * R .. (i + 1) * R - 1 of the batch (R = 1 in a grid)
    first = np.arange(len(cell.seeds)) * s.restarts

    trace = {"step": [], "time_s": [], "mcc": []}
    stamps, evals = [], []

    def on_chunk(step, states, losses, finite):
        # Periodic MCC for the time-to-0.9 record only; the fit never sees it. Each record is
        # stamped when its chunk's states are ready, and the evaluation's own time is kept out
        # of every later stamp and of the run time.
        jax.block_until_ready(states)
        t0 = time.perf_counter()
        params = jax.vmap(b.engine.get_params)(jax.tree_util.tree_map(lambda a: a[first],
                                                                       states))
        z = np.asarray(mean_fn(params, k_eval))
        trace["step"].append(step)
        trace["mcc"].append([family.score_latents(data.z, zi).score for zi in z])
        stamps.append(t0 - sum(evals))
        evals.append(time.perf_counter() - t0)
        return False

    res, params = _fit_seeds(cell, b, data, on_chunk if data.z is not None else None)
    run_time = res.run_time
    if stamps:
        # the loop ended with the last evaluation; it started run_time before that
        start = stamps[-1] + sum(evals) - res.run_time
        trace["time_s"] = [t - start for t in stamps]
        run_time -= sum(evals)
    chosen = np.asarray(res.seed_selected)
    z_mean = np.asarray(mean_fn(params, k_eval))
    # the engine's objective, as `fit` scored it to select each seed's restart
    objective = -np.asarray(res.restart_losses)[chosen]
    if s.engine == "svi" and s.elbo in (None, "Trace_ELBO"):
        elbo = objective  # the engine's own objective is the reference ELBO
    else:
        # every engine is also scored with the plain Trace_ELBO of the same model, so that
        # ELBOs compare across engines
        ref = make_engine(b.spec, s._replace(engine="svi", elbo="Trace_ELBO", num_particles=None),
                          family.engine_batch(s, data))
        elbo = -np.asarray(jax.jit(jax.vmap(lambda p: ref.evaluate(k_eval, p, x, u)))(params))

    # the seeds of a cell are fitted together: their agreement needs no true latents
    agreement = None
    if len(cell.seeds) > 1 and np.all(np.isfinite(z_mean)):
        from ppl_ident.diagnostics.agreement import seed_agreement

        agreement = seed_agreement(z_mean.reshape(len(cell.seeds), -1,
                                                  z_mean.shape[-1])).mean
    rows, cache = [], {}
    for i, seed in enumerate(cell.seeds):
        p_i = jax.tree_util.tree_map(lambda a: a[i], params)  # noqa: B023
        state_i = jax.tree_util.tree_map(lambda a: a[chosen[i]], res.states)  # noqa: B023
        tr_i = None if not trace["step"] else {
            "step": trace["step"], "time_s": trace["time_s"],
            "mcc": [m[i] for m in trace["mcc"]]}
        finite = np.asarray(res.all_finite[chosen[i]])
        info = {"elbo": float(elbo[i]), "objective": float(objective[i]),
                "num_skipped_steps": int((~finite).sum()), "num_steps": int(finite.shape[0]),
                "compile_time_s": res.compile_time, "run_time_s": run_time,
                "seeds_in_batch": len(cell.seeds), "trace": tr_i,
                "stop_reason": res.stop_reason}
        fitted = Fitted(b.spec, p_i, state_i, s, b.labels, np.asarray(res.all_losses[chosen[i]]),
                        info)
        run = CellFit(fitted, b.engine, z_mean[i], b.u, heldout, seed, cache)
        rows.append({"seed": seed, **compute_metrics(run, data, truth, cell.metrics),
                     "seed_agreement": agreement, "stop_reason": res.stop_reason})
    return rows, trace


#: Seed of the fixed subset of training observations that a sampler cell samples.
SAMPLE_SUBSET_SEED = 3


def sample_subset(n_obs: int, sample_obs: int) -> np.ndarray:
    """Sorted indices of the training observations whose latents a sampler cell samples: a
    fixed random subset (the same for every seed and engine of a setting)."""
    rng = np.random.default_rng(SAMPLE_SUBSET_SEED)
    return np.sort(rng.choice(n_obs, min(sample_obs, n_obs), replace=False))


def sample_cell(cell: Cell, data, truth) -> tuple[list[dict], dict]:
    """A sampler cell (``nuts``): fit its base engine for every seed at once (the fit path of
    every cell: the base preset's own cell's fits, repeated), then sample the latents of
    :func:`sample_subset` with each seed's fitted parameters fixed (seeds vectorised again),
    and score the draws.

    Timing columns are the sampler's (``compile_time_s`` includes its ``init``); the base
    fit's are ``base_compile_time_s`` / ``base_run_time_s``. There is no periodic evaluation
    (time to MCC 0.9 is not applicable), so the trace is empty.
    """
    import jax
    import jax.numpy as jnp

    from ppl_ident.data import Dataset
    from ppl_ident.harness.metrics import CellFit, compute_metrics
    from ppl_ident.inference import build_engine, fit_batched
    from ppl_ident.inference.fit import fit_keys
    from ppl_ident.inference.subsample import posterior_mean_fn
    from ppl_ident.workflow import Fitted

    b = build_cell(cell, data)
    s = b.settings
    res, params = _fit_seeds(cell, b, data)
    x = jnp.asarray(data.x)
    u = None if b.u is None else jnp.asarray(b.u)

    idx = sample_subset(x.shape[0], cell.fit.get("sample_obs", SAMPLE_OBS))
    x_s, u_s = x[idx], None if u is None else u[idx]
    opts = {k: cell.fit[k] for k in ("num_warmup", "num_samples", "num_chains",
                                     "target_accept_prob", "max_tree_depth", "dense_mass")
            if k in cell.fit}
    engine = build_engine(cell.fit["engine"], b.spec, **opts)
    num_steps = engine.num_steps
    # one key per seed, apart from the fit's (seed k's first restart key, folded)
    keys = fit_keys(b.key, s.restarts, cell.seeds)[np.arange(len(cell.seeds)) * s.restarts]
    sample_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    t0 = time.perf_counter()
    state = jax.jit(jax.vmap(engine.init, in_axes=(0, None, None, 0)))(sample_keys, x_s, u_s,
                                                                         params)
    jax.block_until_ready(state)
    init_time = time.perf_counter() - t0
    states, losses, finite, compile_time, run_time = fit_batched(
        engine, sample_keys, x_s, u_s, num_steps, chunk_size=num_steps, progress=False,
        state=state)
    z = np.asarray(states.z)  # (seeds, chains, draws, obs, latent)
    stats = {k: np.asarray(getattr(states, k)) for k in ("diverging", "accept_prob",
                                                         "tree_size")}
    base_mean = np.asarray(jax.jit(jax.vmap(posterior_mean_fn(b.spec, x_s, u_s),
                                            in_axes=(0, None)))(params, jax.random.PRNGKey(0)))
    pick = lambda a: None if a is None else np.asarray(a)[idx]  # noqa: E731
    subset = Dataset(pick(data.x), pick(data.u), pick(data.z))
    chosen = np.asarray(res.seed_selected)

    rows, cache = [], {}
    for i, seed in enumerate(cell.seeds):
        info = {"kind": "sampler", "base": cell.fit.get("base", "svi"), "draws": z[i],
                "sample_stats": {k: v[i] for k, v in stats.items()},
                "base_z_mean": base_mean[i], "sample_obs": len(idx),
                "num_warmup": engine.config["num_warmup"], "num_steps": num_steps,
                "num_skipped_steps": int((~finite[i]).sum()),
                "compile_time_s": compile_time + init_time, "run_time_s": run_time,
                "base_compile_time_s": res.compile_time, "base_run_time_s": res.run_time,
                "base_steps": int(s.steps), "seeds_in_batch": len(cell.seeds),
                "trace": None, "stop_reason": res.stop_reason}
        p_i = jax.tree_util.tree_map(lambda a: a[i], params)  # noqa: B023
        fitted = Fitted(b.spec, p_i, None, s, b.labels, np.asarray(res.all_losses[chosen[i]]),
                        info)
        run = CellFit(fitted, engine, z[i].mean((0, 1)), None if u_s is None
                      else np.asarray(u_s), None, seed, cache)
        rows.append({"seed": seed, **compute_metrics(run, subset, truth, cell.metrics)})
    return rows, {"step": [], "time_s": [], "mcc": []}


def run_cell(cell: Cell, out_dir) -> str:
    """Run ``cell`` unless its result file exists; write it atomically; return its path.

    The record holds the cell's definition, one row per seed (metrics columns), the periodic
    MCC trace, and where and when it ran.
    """
    from ppl_ident._version import __version__
    from ppl_ident.files import atomic_write_json

    path = cell_path(out_dir, cell)
    if read_cell(path) is not None:
        return str(path)
    t0 = time.perf_counter()
    data, heldout, truth = cell_data(cell.data)
    rows, trace = fit_cell(cell, data, heldout, truth)
    record = {
        "status": "done", "cell_id": cell.cell_id, "setting": cell.setting,
        "data": cell.data, "model": cell.model, "engine": cell.engine, "fit": cell.fit,
        "seeds": list(cell.seeds), "eval_every": cell.eval_every,
        "metrics": list(cell.metrics), "rows": rows,
        "trace": trace, "wall_time_s": time.perf_counter() - t0, "version": __version__,
        "host": socket.gethostname(), "pid": os.getpid(), "python": platform.python_version(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(path, record)
    return str(path)
