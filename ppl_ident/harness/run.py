"""Run one grid cell: simulate its data, fit all seeds as one vectorised program, score each
seed with :data:`~ppl_ident.harness.metrics.METRICS`, and write one result file atomically.

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

import numpy as np

from ppl_ident.errors import InputError
from ppl_ident.harness.grid import Cell

__all__ = ["CELL_DIR", "HELDOUT_FRACTION", "SAMPLE_SUBSET_SEED", "cell_path", "is_done",
           "read_cell", "run_cell", "sample_cell", "sample_subset", "simulate_cell_data",
           "cell_data"]

CELL_DIR = "cells"
#: Extra points per domain simulated for held-out metrics (never used for fitting).
HELDOUT_FRACTION = 0.2


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


def simulate_cell_data(data: dict):
    """Training data, held-out data (same domains, mixing and noise) and ground truth.

    ``points_per_domain`` training points and ``HELDOUT_FRACTION`` as many held-out points
    per domain are drawn in one simulation and split within each domain.
    """
    from ppl_ident.data import Dataset, simulate_domains

    n_train = data["points_per_domain"]
    n_test = max(1, int(round(HELDOUT_FRACTION * n_train)))
    full, truth = simulate_domains(
        data["data_seed"], n_latent=data["latent_dim"], data_dim=data["data_dim"],
        n_domains=data["domains"], n_per_domain=n_train + n_test,
        n_layers=data["mixing_layers"], source=data["source"], noise_std=data["noise_std"])
    within = np.arange(full.x.shape[0]) % (n_train + n_test)  # u is sorted by domain
    train, test = within < n_train, within >= n_train
    pick = lambda m: Dataset(full.x[m], full.u[m], full.z[m])  # noqa: E731
    return pick(train), pick(test), truth


def cell_data(data: dict):
    """Training data, held-out data and ground truth of a cell's data setting: simulated
    (:func:`simulate_cell_data`), or a user's data file (``compare --data FILE``) split into
    training rows and ``HELDOUT_FRACTION`` held-out rows (a fixed seeded choice within each
    domain, so every domain is in both). A table carries no ground truth; a simulator file its
    own."""
    if "file" not in data:
        return simulate_cell_data(data)
    from ppl_ident.data import Dataset, read_data
    from ppl_ident.data.tables import Columns
    from ppl_ident.inference.checkpoint import file_sha256

    if file_sha256(data["file"]) != data["sha256"]:
        raise InputError(f"{data['file']} changed since the grid was made (its SHA-256 "
                         "differs); start the comparison in a new --out directory.")
    full, truth, _ = read_data(data["file"], Columns.from_dict(data.get("columns")))
    rng = np.random.default_rng(0)
    test = np.zeros(full.x.shape[0], bool)
    for label in np.unique(full.u):
        rows = np.flatnonzero(full.u == label)
        k = int(round(HELDOUT_FRACTION * len(rows)))
        if 0 < k < len(rows):
            test[rng.choice(rows, size=k, replace=False)] = True
    pick = lambda m: Dataset(full.x[m], full.u[m], None if full.z is None else full.z[m])  # noqa: E731
    return pick(~test), pick(test), truth


def _settings(cell: Cell, n_obs: int):
    from ppl_ident.families import MODELS
    from ppl_ident.settings import resolve_defaults
    from ppl_ident.workflow import FitSettings

    f = cell.fit
    fields = {k: v for k, v in f.items() if k in FitSettings._fields and k != "guide"}
    s = FitSettings(model=cell.model, latent_dim=cell.data["latent_dim"], **fields)
    # the harness compares inference algorithms of the variational models: no flow unless a
    # cell asks for one
    s = resolve_defaults(s, flow=False, family=MODELS[cell.model].name)
    return s._replace(batch_size=int(min(s.batch_size, n_obs)))


def _build(cell: Cell, data, u_model, labels):
    from ppl_ident.inference import build_engine
    from ppl_ident.workflow import build_fit, engine_optim

    s = _settings(cell, data.x.shape[0])
    # the model and engine exactly as `fit_model` builds them (whitened decoding, initial noise
    # scale, the cell's engine, ELBO and particles), so a grid compares inference algorithms on
    # the package's model, not on a variant of it; the cell may name any registered guide
    spec, engine, _ = build_fit(data, s, u_model, labels, guide=cell.fit.get("guide", "encoder"))
    # Every engine is also scored with the plain Trace_ELBO, so ELBOs compare across engines.
    ref = build_engine("svi", spec, elbo="Trace_ELBO", batch_size=s.batch_size,
                       optim=engine_optim(s))
    return s, spec, engine, ref


def fit_cell(cell: Cell, data, heldout, truth) -> tuple[list[dict], dict]:
    """Fit every seed of ``cell`` at once.

    Returns one row (dict of scalar columns) per seed, and the periodic-evaluation trace
    ``{"step", "time_s", "mcc" (per seed)}``.
    """
    import jax

    from ppl_ident.families.guides import guide_family
    from ppl_ident.harness.metrics import RunFit, compute_metrics
    from ppl_ident.inference import (SAMPLER_ENGINES, DivergencePolicy, divergence_reason,
                                     fit_batched)
    from ppl_ident.inference.subsample import posterior_mean_fn
    from ppl_ident.families import family_of

    if cell.fit["engine"] in SAMPLER_ENGINES:
        return sample_cell(cell, data, truth)
    u, labels = family_of(cell.model).prepare_inputs(data.u, cell.model)
    s, spec, engine, ref = _build(cell, data, u, labels)
    x = jax.numpy.asarray(data.x)
    u = None if u is None else jax.numpy.asarray(u)
    keys = jax.numpy.stack([jax.random.PRNGKey(seed) for seed in cell.seeds])
    full = guide_family(spec.config.get("guide", "encoder")).full_data
    mean_fn = jax.jit(jax.vmap(posterior_mean_fn(spec, x, u, batch_size=None if full
                                                 else s.batch_size), in_axes=(0, None)))
    k_eval = jax.random.PRNGKey(10_000)

    from ppl_ident.diagnostics.mcc import mcc

    trace = {"step": [], "time_s": [], "mcc": []}
    eval_time = [0.0]

    def on_chunk(step, states, losses, finite):
        # Periodic MCC for the time-to-0.9 record only; the fit never sees it. Times are
        # made relative to the end of compilation below (compile_time is known at the end).
        jax.block_until_ready(states)
        t0 = time.perf_counter()
        z = np.asarray(mean_fn(jax.vmap(engine.get_params)(states), k_eval))
        trace["step"].append(step)
        trace["time_s"].append(t0 - t_begin - eval_time[0])
        trace["mcc"].append([mcc(data.z, zi).score for zi in z])
        eval_time[0] += time.perf_counter() - t0
        return False

    t_begin = time.perf_counter()
    states, losses, finite, compile_time, run_time = fit_batched(
        engine, keys, x, u, s.steps, chunk_size=min(cell.eval_every, s.steps), progress=False,
        on_chunk=on_chunk if data.z is not None else None, divergence=DivergencePolicy())
    # the fit's own divergence policy: a cell whose every seed diverged stops and says so
    diverged = divergence_reason(finite)
    stop_reason = "completed" if diverged is None else f"diverged: {diverged}"
    trace["time_s"] = [t - compile_time for t in trace["time_s"]]
    run_time -= eval_time[0]

    params = jax.vmap(engine.get_params)(states)
    z_mean = np.asarray(mean_fn(params, k_eval))
    evaluate = jax.jit(jax.vmap(lambda p, e=ref.evaluate: e(k_eval, p, x, u)))
    elbo = -np.asarray(evaluate(params))
    if cell.fit["engine"] == "svi" and cell.fit.get("elbo", "Trace_ELBO") == "Trace_ELBO":
        objective = elbo  # the engine's own objective is the reference ELBO
    else:
        objective = -np.asarray(
            jax.jit(jax.vmap(lambda p: engine.evaluate(k_eval, p, x, u)))(params))

    # the seeds of a cell are fitted together: their agreement needs no true latents
    agreement = None
    if len(cell.seeds) > 1 and np.all(np.isfinite(z_mean)):
        from ppl_ident.diagnostics.agreement import seed_agreement

        agreement = seed_agreement(z_mean).mean
    rows, cache = [], {}
    for i, seed in enumerate(cell.seeds):
        p_i = jax.tree_util.tree_map(lambda a: a[i], params)
        tr_i = None if not trace["step"] else {
            "step": trace["step"], "time_s": trace["time_s"],
            "mcc": [m[i] for m in trace["mcc"]]}
        fit_info = {"elbo": float(elbo[i]), "objective": float(objective[i]),
                    "num_skipped_steps": int((~finite[i]).sum()),
                    "num_steps": int(finite.shape[1]),
                    "compile_time_s": compile_time, "run_time_s": run_time,
                    "seeds_in_batch": len(cell.seeds), "trace": tr_i, "u_model": u}
        fitted = RunFit(spec, p_i, None, s, labels, losses[i], fit_info, engine, z_mean[i],
                        heldout, seed, cache)
        rows.append({"seed": seed, **compute_metrics(fitted, data, truth, cell.metrics),
                     "seed_agreement": agreement, "stop_reason": stop_reason})
    return rows, trace


#: Seed of the fixed subset of training observations that a sampler cell samples.
SAMPLE_SUBSET_SEED = 3


def sample_subset(n_obs: int, sample_obs: int) -> np.ndarray:
    """Sorted indices of the training observations whose latents a sampler cell samples: a
    fixed random subset (the same for every seed and engine of a setting)."""
    rng = np.random.default_rng(SAMPLE_SUBSET_SEED)
    return np.sort(rng.choice(n_obs, min(sample_obs, n_obs), replace=False))


def sample_cell(cell: Cell, data, truth) -> tuple[list[dict], dict]:
    """A sampler cell (``nuts``): fit its base engine for every seed at once, then sample the
    latents of :func:`sample_subset` with each seed's fitted parameters fixed (seeds
    vectorised again), and score the draws.

    Timing columns are the sampler's (``compile_time_s`` includes its ``init``); the base
    fit's are ``base_compile_time_s`` / ``base_run_time_s``. There is no periodic evaluation
    (time to MCC 0.9 is not applicable), so the trace is empty.
    """
    import jax
    import jax.numpy as jnp

    from ppl_ident.data import Dataset
    from ppl_ident.harness.grid import SAMPLE_OBS, base_entry
    from ppl_ident.harness.metrics import RunFit, compute_metrics
    from ppl_ident.inference import build_engine, fit_batched
    from ppl_ident.inference.subsample import posterior_mean_fn
    from ppl_ident.families import family_of

    u_all, labels = family_of(cell.model).prepare_inputs(data.u, cell.model)
    base_cell = cell._replace(fit=base_entry(cell.fit))
    s, spec, base, _ = _build(base_cell, data, u_all, labels)
    x = jnp.asarray(data.x)
    u = None if u_all is None else jnp.asarray(u_all)
    keys = jnp.stack([jax.random.PRNGKey(seed) for seed in cell.seeds])
    # the seeds, settings and keys of the base preset's own cell: its fits, repeated
    states, _, _, base_compile, base_run = fit_batched(
        base, keys, x, u, s.steps, chunk_size=min(cell.eval_every, s.steps), progress=False)
    params = jax.vmap(base.get_params)(states)

    idx = sample_subset(x.shape[0], cell.fit.get("sample_obs", SAMPLE_OBS))
    x_s, u_s = x[idx], None if u is None else u[idx]
    opts = {k: cell.fit[k] for k in ("num_warmup", "num_samples", "num_chains",
                                     "target_accept_prob", "max_tree_depth", "dense_mass")
            if k in cell.fit}
    engine = build_engine(cell.fit["engine"], spec, **opts)
    num_steps = engine.num_steps
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
    base_mean = np.asarray(jax.jit(jax.vmap(posterior_mean_fn(spec, x_s, u_s),
                                            in_axes=(0, None)))(params, jax.random.PRNGKey(0)))
    pick = lambda a: None if a is None else np.asarray(a)[idx]  # noqa: E731
    subset = Dataset(pick(data.x), pick(data.u), pick(data.z))

    rows, cache = [], {}
    for i, seed in enumerate(cell.seeds):
        info = {"kind": "sampler", "base": cell.fit.get("base", "svi"), "draws": z[i],
                "sample_stats": {k: v[i] for k, v in stats.items()},
                "base_z_mean": base_mean[i], "sample_obs": len(idx),
                "num_warmup": engine.config["num_warmup"], "num_steps": num_steps,
                "num_skipped_steps": int((~finite[i]).sum()),
                "compile_time_s": compile_time + init_time, "run_time_s": run_time,
                "base_compile_time_s": base_compile, "base_run_time_s": base_run,
                "base_steps": int(s.steps), "seeds_in_batch": len(cell.seeds),
                "trace": None, "u_model": None if u_s is None else np.asarray(u_s)}
        p_i = jax.tree_util.tree_map(lambda a: a[i], params)
        fitted = RunFit(spec, p_i, None, s, labels, losses[i], info, engine, z[i].mean((0, 1)),
                        None, seed, cache)
        rows.append({"seed": seed, **compute_metrics(fitted, subset, truth, cell.metrics)})
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
