"""Fitting: :func:`fit_model` and :func:`resume_run`, with checkpoints, the divergence policy
and the agreement between seeds.

Both run the same body: build the fit from checked settings
(:mod:`~ppl_ident.workflow.build`), write ``config.json`` before the first step when
checkpointing (:mod:`~ppl_ident.workflow.rundir`), run the engine, and let the model's family
evaluate the result.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import jax
import numpy as np
from threadpoolctl import threadpool_limits

from ppl_ident.data.io import read_data
from ppl_ident.data.simulate import Dataset
from ppl_ident.data.tables import Columns
from ppl_ident.diagnostics.agreement import seed_agreement
from ppl_ident.errors import DivergenceWarning, InputError
from ppl_ident.families.base import EVAL_ROWS, evaluation_rows
from ppl_ident.families.predict import encode_chunked
from ppl_ident.files import atomic_write_json, prepare_output_dir
from ppl_ident.inference import FitResult, fit
from ppl_ident.inference.checkpoint import (CHECKPOINT_JSON, CHECKPOINT_NPZ, file_sha256,
                                            has_checkpoint, load_checkpoint, save_checkpoint,
                                            state_template, stop_on_sigint)
from ppl_ident.inference.fit import fit_keys
from ppl_ident.settings import FitSettings
from ppl_ident.workflow.build import build_fit, checked_settings
from ppl_ident.workflow.fitted import Fitted
from ppl_ident.workflow.rundir import read_json, run_config, run_settings

__all__ = ["fit_model", "resume_run", "divergence_message", "seed_fits", "seed_metrics"]


def fit_model(dataset: Dataset, settings: FitSettings | None = None, *, progress: bool = False,
              truth=None, checkpoint_dir=None, checkpoint_every: int | None = None,
              data_path: str | None = None, columns: Columns | None = None,
              **overrides) -> Fitted:
    """Fit a registered model to a dataset and evaluate it.

    Parameters
    ----------
    dataset : Dataset
        ``x`` ``(N, d)`` with ``u`` labels or continuous, or sequences ``(B, T, d)`` (the
        model's family says which); ``z`` (optional) is used only for the reported metrics,
        never for fitting or for choosing among restarts.
    settings : FitSettings, optional
        Keyword ``overrides`` replace single fields (``steps=500``).
    progress : bool
        Show a progress bar.
    truth : GroundTruth or SequenceTruth, optional
        The simulator's ground truth: adds the Jacobian scores and the learned prior's
        sufficient-variability check to the metrics (see :func:`evaluate`); sequence models
        use its regime path and transition matrix for the regime metrics (evaluation only).
    checkpoint_dir : path, optional
        A run directory: ``config.json`` is written before the fit starts, a checkpoint every
        ``checkpoint_every`` steps and at the end, and Ctrl-C stops the fit at the end of the
        current chunk (``metrics["stop_reason"] == "interrupted"``) after a checkpoint. Resume
        with :func:`resume_run`. See :mod:`ppl_ident.inference.checkpoint`.
    checkpoint_every : int, optional
        Steps between checkpoints (only at the end and on Ctrl-C when omitted).
    data_path : str, optional
        The data file (recorded with its SHA-256 so that :func:`resume_run` can reload it).
    columns : Columns, optional
        For a table, the column mapping it was read with
        (:func:`ppl_ident.data.read_data` returns it): recorded in ``config.json`` so that
        :func:`load_run_data` reads the table (or another one) the same way.

    Returns
    -------
    Fitted
        ``metrics["stop_reason"]`` is ``"completed"``, ``"interrupted"`` or
        ``"diverged: ..."`` (then ``metrics["stop_message"]`` names causes and fixes, and the
        parameters are those of the last finite step).

    Raises
    ------
    InputError
        For settings or data that cannot work (the message names the fix).
    """
    family, s = checked_settings(dataset, (settings or FitSettings())._replace(**overrides))
    u, labels = family.prepare_inputs(dataset.u, s.model)
    return _fit_with_checkpoints(family, dataset, s, u, labels, progress=progress,
                                 checkpoint_dir=checkpoint_dir,
                                 checkpoint_every=checkpoint_every, data_path=data_path,
                                 truth=truth, columns=columns)


def _fit_with_checkpoints(family, dataset: Dataset, s: FitSettings, u, labels, *, progress,
                          checkpoint_dir, checkpoint_every, data_path, target_steps=None,
                          resume_dir=None, truth=None, columns=None) -> Fitted:
    """The body of :func:`fit_model` and :func:`resume_run`: fit (or continue from the
    checkpoint in ``resume_dir``), checkpointing into ``checkpoint_dir`` when given."""
    if checkpoint_every is not None and (int(checkpoint_every) != checkpoint_every
                                         or checkpoint_every < 1):
        raise InputError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}.")
    spec, engine, k_fit = build_fit(dataset, s, u, labels)
    target = int(target_steps or s.steps)
    resume = {}
    if resume_dir is not None:
        # shapes only: a memory-mapped x is not read
        template = state_template(engine, fit_keys(k_fit, s.restarts, s.seeds),
                                  jax.ShapeDtypeStruct(dataset.x.shape, np.float32),
                                  None if u is None else np.asarray(u))
        ckpt = load_checkpoint(resume_dir, template)
        if ckpt.step >= target:
            raise InputError(
                f"The checkpoint in {resume_dir} is already at step {ckpt.step}; pass --steps "
                f"larger than {ckpt.step} to continue training."
            )
        resume = dict(state=ckpt.states, start_step=ckpt.step, history=(ckpt.losses, ckpt.finite))
    meta = {
        "target_steps": target, "checkpoint_every": checkpoint_every,
        "data": None if data_path is None else str(Path(data_path).resolve()),
        "data_sha256": None if data_path is None else file_sha256(data_path),
        "resume": None if checkpoint_dir is None else f"ppl-ident fit --resume {checkpoint_dir}",
    }
    if checkpoint_dir is not None:
        if resume_dir is None:
            prepare_output_dir(checkpoint_dir, force=True)
            # a checkpoint left by a replaced run (--force) must never be resumed with this config
            for name in (CHECKPOINT_NPZ, CHECKPOINT_JSON):
                (Path(checkpoint_dir) / name).unlink(missing_ok=True)
            atomic_write_json(Path(checkpoint_dir) / "config.json",
                              run_config(spec, s, labels, data_path, columns))

    with stop_on_sigint() if checkpoint_dir is not None else _no_stop() as stop:
        def on_chunk(step, states, losses, finite):
            if checkpoint_dir is not None and (stop or (checkpoint_every and
                                                        step % checkpoint_every == 0)):
                save_checkpoint(checkpoint_dir, step, states, losses, finite,
                                {**meta, "stop_reason": "interrupted" if stop else "running"})
            return bool(stop)

        res = fit(engine, k_fit, dataset.x, u, target, restarts=s.restarts, seeds=s.seeds,
                  progress=progress, on_chunk=on_chunk, checkpoint_every=checkpoint_every,
                  **resume)
    reason = "interrupted" if res.stop_reason == "stopped" and stop else res.stop_reason
    steps_done = int(res.all_losses.shape[1])
    if checkpoint_dir is not None:
        save_checkpoint(checkpoint_dir, steps_done, res.states, res.all_losses, res.all_finite,
                        {**meta, "stop_reason": reason})
    fitted = Fitted(spec, res.params, res.state, s, labels, res.losses, {},
                    seed_fits(engine, res) if s.seeds > 1 else None)
    start = resume.get("start_step", 0)
    extra = {"stop_reason": reason, "target_steps": target,
             "resumed_from_step": resume.get("start_step"),
             "steps_per_s": (steps_done - start) / res.run_time if res.run_time > 0 else None}
    if reason.startswith("diverged"):
        extra["stop_message"] = divergence_message(reason.removeprefix("diverged: "), s,
                                                   steps_done)
        warnings.warn(extra["stop_message"], DivergenceWarning, stacklevel=3)
    t0 = time.perf_counter()
    # NumPy's BLAS threads would compete with XLA's for the same cores (measured on the 2-core
    # machine under load: the correlation matrix of 10^6 x 20 took 4.6-7.0 s with OpenBLAS's
    # default threads against 1.2-1.5 s with one): one BLAS thread here
    with threadpool_limits(limits=1, user_api="blas"):
        if s.seeds > 1 and not reason.startswith("diverged"):
            extra.update(seed_metrics(spec, engine, res, dataset.x, u,
                                      params=fitted.seed_params))
        # a diverged fit's Jacobian checks would mean nothing
        scores = family.evaluate(fitted, dataset,
                                 None if reason.startswith("diverged") else truth)
    extra["evaluation_time_s"] = time.perf_counter() - t0
    return fitted._replace(metrics={**_fit_metrics(res, family.n_obs(dataset)), **extra,
                                    **family.fit_metrics(s, dataset), **scores})


def seed_fits(engine, res: FitResult) -> dict:
    """Every seed's kept fit (its best restart by ELBO): constrained parameters stacked on a
    leading seed axis."""
    chosen = np.asarray(res.seed_selected)
    return jax.vmap(engine.get_params)(jax.tree_util.tree_map(lambda a: a[chosen], res.states))


def seed_metrics(spec, engine, res: FitResult, x, u, *, chunk_size: int = 4096,
                 params: dict | None = None) -> dict:
    """The agreement between the seeds of a fit with ``seeds > 1`` (see
    :func:`ppl_ident.diagnostics.seed_agreement`): every seed's best restart (by ELBO) encodes
    the evaluation rows (all observations up to
    :data:`~ppl_ident.families.base.EVAL_ROWS`, else a seeded subset; posterior means;
    sequences flattened over time) and their pairwise MCC is recorded. No true latent is
    looked at.

    Returns
    -------
    dict
        ``seed_agreement`` (mean pairwise MCC), ``seed_agreement_min``,
        ``seed_agreement_matrix`` (``K x K``), ``seed_elbos`` (each seed's full-data ELBO) and
        ``seed_restarts`` (the batch index of each seed's fit); ``seed_agreement`` is None,
        with ``seed_agreement_note``, when a seed's latents are not finite.
    """
    chosen = np.asarray(res.seed_selected)
    params = seed_fits(engine, res) if params is None else params
    lead = int(np.prod(x.shape[1:-1], dtype=np.int64))  # steps per sequence (1: i.i.d.)
    # the rows of the evaluation (all of them up to EVAL_ROWS observations)
    rows = evaluation_rows(x.shape[0], max(1, EVAL_ROWS // lead))
    x = np.asarray(x[rows], np.float32)
    u = None if u is None else np.asarray(u)[rows]
    latents = []
    for k in range(len(chosen)):
        p = jax.tree_util.tree_map(lambda a: a[k], params)  # noqa: B023
        mean, _ = encode_chunked(spec, p, x, u, max(1, chunk_size // lead))
        latents.append(mean.reshape(-1, mean.shape[-1]))
    out = {"seed_elbos": (-np.asarray(res.restart_losses)[chosen]).tolist(),
           "seed_restarts": chosen.tolist()}
    latents = np.stack(latents)
    if not np.all(np.isfinite(latents)):
        bad = [k for k in range(len(chosen)) if not np.all(np.isfinite(latents[k]))]
        return {**out, "seed_agreement": None, "seed_agreement_min": None,
                "seed_agreement_matrix": None,
                "seed_agreement_note": f"the latents of seed(s) {bad} are not finite"}
    agree = seed_agreement(latents)
    return {**out, "seed_agreement": agree.mean, "seed_agreement_min": agree.min,
            "seed_agreement_matrix": agree.matrix.tolist()}


class _no_stop:
    def __enter__(self):
        return False

    def __exit__(self, *exc):
        return False


def divergence_message(reason: str, s: FitSettings, step: int) -> str:
    """The message shown when a fit stops because its steps keep producing NaN or inf."""
    return (
        f"The fit diverged at step {step}: {reason} (those steps were skipped, so the saved "
        "parameters are those of the last finite step). Likely causes and fixes: the learning "
        f"rate is too high (now {s.learning_rate:g}; try --lr {s.learning_rate / 10:g}); the "
        "observation noise scale collapsed or is fixed too small (fix it with --noise-scale "
        "0.1, or raise it); the data are badly scaled (standardise x to mean 0 and standard "
        "deviation 1, and check for extreme values); or gradients explode (lower the clipping "
        "norm)."
    )


def resume_run(run_dir, steps: int | None = None, *, progress: bool = False,
               checkpoint_every: int | None = None, data_path: str | None = None) -> Fitted:
    """Continue a checkpointed fit in ``run_dir`` to ``steps`` steps.

    Parameters
    ----------
    run_dir : path
        A run directory written by :func:`fit_model` with ``checkpoint_dir``.
    steps : int, optional
        Total steps to reach (default: the target of the original fit). The learning-rate
        schedule stays that of the original settings, so a resumed fit is bit-identical to an
        uninterrupted one when ``steps`` is the original target; beyond it the final learning
        rate continues.
    checkpoint_every : int, optional
        Default: the original interval.
    data_path : str, optional
        The data file, if it moved; its SHA-256 must match the one recorded.

    Returns
    -------
    Fitted
        Write it with ``save_run(run_dir, fitted, force=True)``.
    """
    run = Path(run_dir)
    if not run.is_dir() or not (run / "config.json").is_file() or not has_checkpoint(run):
        raise InputError(
            f"{run} is not a resumable run directory (it needs config.json and checkpoint.npz); "
            "pass the --out directory of a `ppl-ident fit` started with --checkpoint-every or "
            "stopped with Ctrl-C."
        )
    config = read_json(run / "config.json")
    meta = read_json(run / CHECKPOINT_JSON) if (run / CHECKPOINT_JSON).is_file() else {}
    data_path = data_path or meta.get("data") or config.get("data")
    if data_path is None or not Path(data_path).exists():
        raise InputError(
            f"The data file of this run ({data_path}) is not available; pass its new path "
            "(ppl-ident fit --resume RUN_DIR DATA)."
        )
    if meta.get("data_sha256") and file_sha256(data_path) != meta["data_sha256"]:
        raise InputError(
            f"{data_path} changed since the run started (its SHA-256 differs); resume with the "
            "original data file or start a new fit."
        )
    s = run_settings(run, config)
    columns = Columns.from_dict(config.get("columns"))
    dataset, truth, columns = read_data(data_path, columns)
    family, checked = checked_settings(dataset, s)
    if checked != s:
        raise InputError(f"{data_path} does not match the run's settings (they would become "
                         f"{_diff(s, checked)}); resume with the original data file.")
    u, labels = family.prepare_inputs(dataset.u, s.model)
    every = checkpoint_every or meta.get("checkpoint_every")
    return _fit_with_checkpoints(
        family, dataset, s, u, labels, progress=progress, checkpoint_dir=run,
        checkpoint_every=every, data_path=data_path,
        target_steps=steps or meta.get("target_steps") or s.steps, resume_dir=run, truth=truth,
        columns=columns)


def _diff(a: FitSettings, b: FitSettings) -> str:
    return ", ".join(f"{k}={getattr(b, k)!r} instead of {getattr(a, k)!r}"
                     for k in a._fields if getattr(a, k) != getattr(b, k))


def _fit_metrics(res: FitResult, n_obs: int) -> dict:
    return {
        "elbo": -res.final_loss,
        "elbo_per_obs": -res.final_loss / n_obs,
        "restart_elbos": (-res.restart_losses).tolist(),
        "selected_restart": res.selected,
        "num_steps": int(len(res.losses)),
        "num_skipped_steps": res.num_skipped,
        "compile_time_s": res.compile_time,
        "run_time_s": res.run_time,
        # the restart-selecting ELBO (chunked, on at most SELECTION_ROWS rows), not in run time
        "selection_time_s": res.selection_time,
        "steps_per_s": len(res.losses) / res.run_time if res.run_time > 0 else None,
    }
