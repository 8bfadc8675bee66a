"""High-level workflow: fit a registered model to a dataset, evaluate it, check it, save and
load runs.

This is the public Python entry point used by the CLI, the comparison harness and the
examples. Every function asks the family registry (:mod:`ppl_ident.families`) once for the
family of the model or the data and lets the family do what differs between i.i.d. data and
sequences::

    data, truth = simulate_domains(0)
    fitted = fit_model(data, model="ivae")
    fitted.metrics["mcc"]
    save_run("runs/ivae", fitted, data)        # posterior.nc too
    fitted = load_run("runs/ivae")
    table = encode_rows(fitted, data)          # every row's latent mean, sd, 90% interval
"""

from __future__ import annotations

import json
import time
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from threadpoolctl import threadpool_limits

from ppl_ident._version import __version__
from ppl_ident.arviz_compat import group, groups, replace_group, write_netcdf
from ppl_ident.data.io import read_data
from ppl_ident.data.simulate import Dataset
from ppl_ident.data.tables import Columns, table_format
from ppl_ident.diagnostics.agreement import seed_agreement
from ppl_ident.errors import DivergenceWarning, InputError
from ppl_ident.families import SEQUENCE_MODELS, build_model, family_for_data, family_of
from ppl_ident.families.base import EVAL_ROWS, evaluation_rows
from ppl_ident.families.iid.idata import DEFAULT_DRAWS, DEFAULT_OBS
from ppl_ident.families.iid.inputs import prepare_inputs  # the i.i.d. labels (0.1's API)
from ppl_ident.families.predict import encode_chunked, encode_summary_chunked
from ppl_ident.files import (atomic_savez, atomic_write_json, atomic_write_stream,
                             prepare_output_dir)
from ppl_ident.inference import SAMPLER_ENGINES, FitResult, OptimConfig, build_engine, fit
from ppl_ident.inference.fit import fit_keys
from ppl_ident.inference.sharding import batch_mesh
from ppl_ident.inference.checkpoint import (CHECKPOINT_JSON, CHECKPOINT_NPZ, file_sha256,
                                            has_checkpoint, load_checkpoint, save_checkpoint,
                                            state_template, stop_on_sigint)
from ppl_ident.pytrees import load_tree, save_tree
from ppl_ident.settings import (FIT_PRESETS, FLOW_LAYERS, SETTINGS_BY_NAME, FitSettings,
                                check_applicable, check_values, fit_settings,
                                resolve_defaults, variational_settings)

__all__ = ["FitSettings", "FIT_PRESETS", "fit_settings", "Fitted", "fit_model", "evaluate",
           "save_run", "load_run", "resume_run", "divergence_message", "check_data",
           "check_run", "checked_settings", "model_inputs", "prepare_inputs", "build_fit",
           "engine_optim", "interrupted_message", "POSTERIOR_FILE", "write_posterior",
           "load_run_data", "latent_summary", "encode_rows", "save_latents", "LATENT_FORMATS",
           "seed_metrics", "seed_fits", "SEED_PARAMS_FILE", "input_summary", "input_line",
           "RUN_FORMAT"]

#: the ArviZ posterior of a run directory (written and read on either ArviZ stack)
POSTERIOR_FILE = "posterior.nc"
#: every seed's kept fit of a run with ``seeds > 1`` (:attr:`Fitted.seed_params`)
SEED_PARAMS_FILE = "seed_params.npz"
#: The run directory's format, recorded as ``config.json``'s ``"format"``. 1: written before
#: the number was recorded (release 0.1 and the runs of the settings added since, which
#: :func:`_settings_of` completes); 2: every setting recorded, resolved. A newer format is
#: refused with the fix (upgrade), never read by guessing.
RUN_FORMAT = 2


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
    name = fitted.spec.config["name"]
    return family_of(name).prepare_inputs(u, name, fitted.labels)[0]


def checked_settings(dataset: Dataset, s: FitSettings):
    """The family of a fit and the settings it runs with (the latent dimension and batch size
    resolved against the data); raises InputError, naming the fix, for what cannot work."""
    family = family_of(s.model, dataset)
    check_values(s)
    d = dataset.x.shape[-1]
    n = s.latent_dim
    if n is None:
        n = dataset.z.shape[-1] if dataset.z is not None else d
    if n > d:
        raise InputError(
            f"latent_dim={n} is larger than the data dimension d={d}; the decoder must be "
            f"injective, so choose --latent-dim <= {d}."
        )
    if s.engine in SAMPLER_ENGINES:
        raise InputError(f"The {s.engine} engine samples z of a fitted model and fits nothing: "
                         "fit with engine 'svi' or 'iwae', then sample with `ppl-ident report "
                         "RUN --nuts-obs K` or compare with `ppl-ident compare --engines svi "
                         f"{s.engine}`.")
    if s.guide not in family.guides:
        raise InputError(f"Unknown guide {s.guide!r} for fit; choose one of "
                         f"{', '.join(family.guides)} (ppl-ident compare runs the others).")
    check_applicable(s, family)
    variational = variational_settings(s)
    if s.flow and variational:
        raise InputError(
            f"{', '.join(variational)} set{'s' if len(variational) == 1 else ''} the variational "
            "model (encoder, objective, decoder noise), which the exact flow does not have: "
            "drop them, or fit the variational model with --no-flow.")
    # FLOW_LAYERS is what every variational run records (a resumed one gives it back)
    layers_given = s.flow_layers not in (None, FLOW_LAYERS)
    noise_given = bool(s.flow_noise)
    s = resolve_defaults(s, not variational and family.auto_flow(int(n), d, s), int(n),
                         family.name)
    if noise_given and not s.flow:
        raise InputError("--flow-noise adds observation noise to the exact flow, which this fit "
                         "does not use (--no-flow, or n and d that rule it out): drop "
                         "--flow-noise (the variational model learns its decoder noise anyway).")
    if layers_given and not s.flow:
        raise InputError("--flow-layers sets the depth of the exact-likelihood flow model; add "
                         "--flow (or --preset exact), or drop --flow-layers.")
    s = s._replace(latent_dim=int(n), batch_size=int(min(s.batch_size, family.n_obs(dataset))))
    return family, family.check_settings(dataset, s)


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


def build_fit(dataset: Dataset, s: FitSettings, u, labels, *, guide: str | None = None):
    """The model, the engine and the restarts' key of a fit with checked settings ``s``.

    Everything is derived from ``s.seed``, so :func:`fit_model`, :func:`resume_run` and the
    comparison harness build the same model and engine from the same settings. ``guide``
    overrides ``s.guide`` (the harness compares non-amortised guides too).
    """
    family = family_of(s.model)
    _require_resolved(s, family.name)
    k_model, k_fit = jax.random.split(jax.random.PRNGKey(s.seed))
    config = family.spec_config(s, dataset, u, labels)
    if guide is not None:
        config["guide"] = guide
    spec = family.build(s.model, k_model, **config)
    return spec, _engine(spec, s, family.engine_batch(s, dataset)), k_fit


def _require_resolved(s: FitSettings, family: str = "iid") -> None:
    """Refuse settings whose model-dependent defaults are still open (None)."""
    # the sequence family's resolved settings are those declared for it alone
    keys = ("steps", "depth", "learning_rate", "flow_layers") + tuple(
        k for k in ("transition_width", "transition_depth", "regime_transitions")
        if family in SETTINGS_BY_NAME[k].families)
    open_ = [k for k in keys if getattr(s, k) is None]
    if open_:
        raise ValueError(f"settings with {', '.join(open_)} still open (None): pass them "
                         "through checked_settings (or resolve_defaults) first")


def engine_optim(s: FitSettings) -> OptimConfig:
    """The optimiser schedule of a fit with settings ``s`` (checked: their steps and learning
    rate decided)."""
    _require_resolved(s)
    return OptimConfig(learning_rate=s.learning_rate, num_steps=s.steps,
                       warmup_steps=s.warmup_steps, clip_norm=s.clip_norm)


def _engine(spec, s: FitSettings, batch_size: int):
    # None leaves the engine's own default ELBO and particle count
    chosen = {k: v for k, v in (("elbo", s.elbo), ("num_particles", s.num_particles))
              if v is not None}
    mesh = batch_mesh(s.devices)
    if mesh is not None:
        chosen["mesh"] = mesh
    return build_engine(s.engine, spec, batch_size=batch_size, optim=engine_optim(s), **chosen)


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
                              _run_config(spec, s, labels, data_path, columns))

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
    config = _read_json(run / "config.json")
    meta = _read_json(run / CHECKPOINT_JSON) if (run / CHECKPOINT_JSON).is_file() else {}
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
    s = _settings_of(run, config)
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


def interrupted_message(run_dir) -> str:
    """What to say about a run directory whose fit stopped before writing its outputs (a
    second Ctrl-C, a kill): the step of the checkpoint kept there, and how to resume it."""
    run = Path(run_dir)
    try:
        meta = json.loads((run / CHECKPOINT_JSON).read_text())
        where = f"at step {int(meta['step'])}"
        if meta.get("target_steps"):
            where += f" of {int(meta['target_steps'])}"
    except (OSError, ValueError, KeyError, TypeError):
        where = "before it finished"
    return (f"The fit in {run} was interrupted {where}: its checkpoint is kept but it has no "
            f"final outputs yet; resume it with `ppl-ident fit --resume {run}` (or "
            "resume_run in Python), then check or report it.")


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"Cannot read {path} ({err}); the run directory is damaged.") from err


def _settings_of(run: Path, config: dict) -> FitSettings:
    fmt = config.get("format", 1) if isinstance(config, dict) else None
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        raise InputError(f"{run / 'config.json'} has an unknown run format {fmt!r}; the run "
                         "directory is damaged.")
    if fmt > RUN_FORMAT:
        raise InputError(f"{run / 'config.json'} is in run format {fmt}, newer than this "
                         f"ppl_ident {__version__} reads (format {RUN_FORMAT}): upgrade "
                         "ppl_ident (pip install -U ppl_ident) to read it.")
    try:
        settings = dict(config["settings"])
        model = config.get("model") or {}
        if fmt == 1:
            settings = _settings_of_format_1(settings, model)
        return FitSettings(**settings)
    except (KeyError, TypeError, AttributeError) as err:
        raise InputError(f"{run / 'config.json'} has unknown settings ({err}); it was written by "
                         "another version of ppl_ident.") from err


def _settings_of_format_1(settings: dict, model: dict) -> dict:
    """The settings of a format-1 run, completed with the values its fit had for the settings
    added after it was written (each addition's own default for old runs)."""
    if "transition_width" not in settings and model.get("name") in SEQUENCE_MODELS:
        # a sequence run written before these settings: its transition network had
        # --width units and --depth layers
        settings["transition_width"] = model.get("width")
        settings["transition_depth"] = model.get("depth")
    if settings.get("flow_layers") is None:
        # a run written before the setting (or before its default moved with n): its flow,
        # if any, had the model's recorded layers, else the base number
        settings["flow_layers"] = int(model.get("flow_layers") or FLOW_LAYERS)
    if "flow_noise" not in settings and model.get("name") not in SEQUENCE_MODELS:
        # an i.i.d. run written before the noisy flow: noiseless (the sequence models
        # keep the setting unset)
        settings["flow_noise"] = False
    if "regime_transitions" not in settings and model.get("name") in SEQUENCE_MODELS:
        # ... and before this one: one transition network with a head per regime
        settings["regime_transitions"] = "shared"
    return settings


def _diff(a: FitSettings, b: FitSettings) -> str:
    return ", ".join(f"{k}={getattr(b, k)!r} instead of {getattr(a, k)!r}"
                     for k in a._fields if getattr(a, k) != getattr(b, k))


def input_summary(*, data_dim: int, latent_dim: int, n_domains: int | None = None,
                  continuous_u: bool = False, columns: Columns | None = None) -> dict:
    """What a fit reads: the observed columns, the auxiliary column and how it is read, and
    the latent dimension (recorded in ``config.json["inputs"]``, printed by ``fit``).

    Parameters
    ----------
    data_dim, latent_dim : int
        ``d`` and ``n``.
    n_domains : int, optional
        The number of domain labels (None: no labels).
    continuous_u : bool
        ``u`` is a continuous variable.
    columns : Columns, optional
        A table's column mapping (None for arrays, whose keys are ``x`` and ``u``).

    Examples
    --------
    >>> input_summary(data_dim=2, latent_dim=2, n_domains=9)["u_kind"]
    'labels'
    """
    kind = (columns.u_kind if columns is not None and columns.u_kind else
            "continuous" if continuous_u else "labels" if n_domains is not None else None)
    return {"x_cols": None if columns is None or columns.x is None else list(columns.x),
            "data_dim": int(data_dim),
            "u_col": None if kind is None else (columns.u if columns is not None else "u"),
            "u_kind": kind,
            "domains": None if n_domains is None else int(n_domains),
            "latent_dim": int(latent_dim)}


def input_line(summary: dict) -> str:
    """:func:`input_summary` in one line: ``x: lpc0, ..., lpc11 (d = 12); u: 'speaker' (9
    domain labels); latent dimension n = 12``."""
    cols = summary.get("x_cols")
    x = f"x: {', '.join(cols) if len(cols or ()) <= 12 else ', '.join(cols[:11]) + ', ...'} " \
        f"(d = {summary['data_dim']})" if cols else f"x: {summary['data_dim']} columns"
    kind = summary.get("u_kind")
    if kind is None:
        u = "u: none"
    else:
        what = {"labels": "domain labels", "categories": "domain names",
                "continuous": "a continuous variable"}[kind]
        count = f"{summary['domains']} " if summary.get("domains") is not None else ""
        u = f"u: {summary['u_col']!r} ({count}{what})"
    return f"{x}; {u}; latent dimension n = {summary['latent_dim']}"


def _config_inputs(config: dict, columns=None) -> dict:
    return input_summary(data_dim=config["data_dim"], latent_dim=config["n_latent"],
                         n_domains=config.get("n_domains"),
                         continuous_u=config.get("aux_dim") is not None, columns=columns)


def _run_config(spec, settings: FitSettings, labels, data_path, columns=None) -> dict:
    return {
        # what was read: x columns, u and its kind, domains, n (also printed by `fit`)
        "inputs": _config_inputs(spec.config, columns),
        "format": RUN_FORMAT,
        "version": __version__,
        "settings": settings._asdict(),
        "model": spec.config,
        "labels": None if labels is None else np.asarray(labels).tolist(),
        "data": None if data_path is None else str(data_path),
        # how a table's columns became x, u, z (None for .npz): reused by load_run_data
        "columns": None if columns is None else columns.to_dict(),
    }


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


def evaluate(fitted: Fitted, dataset: Dataset, truth=None) -> dict:
    """Metrics of a fitted model on a dataset (the model's family decides which): MCC
    (Pearson and Spearman), per-dimension correlations and R^2 of the posterior mean against
    ``dataset.z`` when present; with the simulator's ``truth`` also the identifiability checks
    (i.i.d.: ``jacobian`` and ``variability`` on 256 points; sequences: the regime metrics).
    The true latents are used for these numbers only, never for fitting or selection."""
    family = family_of(fitted.spec.config["name"], dataset)
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
    name = fitted.spec.config["name"]
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


def save_run(out_dir, fitted: Fitted, dataset: Dataset | None = None, *, force: bool = False,
             data_path: str | None = None, columns: Columns | None = None, truth=None,
             posterior_draws: int = DEFAULT_DRAWS, posterior_obs: int = DEFAULT_OBS):
    """Write a run directory: ``config.json``, ``params.npz``, ``state.npz``, ``losses.npz``,
    ``metrics.json`` and ``posterior.nc``.

    Parameters
    ----------
    out_dir : path
        Refused when it exists and is not empty, unless ``force``.
    fitted : Fitted
    dataset : Dataset, optional
        The fitted data, for ``posterior.nc`` (default: read from ``data_path``).
    force : bool
    data_path : str, optional
        The data file, recorded in ``config.json``.
    columns : Columns, optional
        A table's column mapping (recorded; see :func:`fit_model`).
    truth : optional
        The simulator's ground truth (sequence runs keep its regime path in ``posterior.nc``).
    posterior_draws, posterior_obs : int
        Guide draws of ``z`` per observation, and observations (a random subset, seeded by
        the fit's seed) kept in ``posterior.nc``; ``posterior_draws=0`` writes no file. A
        diverged fit, or one saved with neither ``dataset`` nor ``data_path``, writes none
        either (the latter with a warning).

    Returns
    -------
    Path
        The run directory. Every file is written atomically.

    Examples
    --------
    >>> save_run("runs/ivae", fitted, data)                        # doctest: +SKIP
    >>> read_netcdf("runs/ivae/posterior.nc").posterior["z"].dims     # doctest: +SKIP
    ('chain', 'draw', 'obs', 'latent')
    """
    for name, value, least in (("posterior_draws", posterior_draws, 0),
                               ("posterior_obs", posterior_obs, 1)):
        if int(value) != value or value < least:
            raise InputError(f"{name} must be an integer >= {least}, got {value!r}.")
    out = prepare_output_dir(out_dir, force=force)
    atomic_write_json(out / "config.json",
                      _run_config(fitted.spec, fitted.settings, fitted.labels, data_path,
                                  columns))
    save_tree(out / "params.npz", fitted.params)
    if fitted.seed_params is not None:
        save_tree(out / SEED_PARAMS_FILE, fitted.seed_params)
    else:  # a replaced (--force) run's seeds must not be read as this run's
        (out / SEED_PARAMS_FILE).unlink(missing_ok=True)
    save_tree(out / "state.npz", fitted.state)
    save_tree(out / "losses.npz", {"loss": np.asarray(fitted.losses)})
    atomic_write_json(out / "metrics.json", fitted.metrics)
    if posterior_draws and not fitted.metrics.get("stop_reason", "").startswith("diverged"):
        if dataset is None and data_path is not None:
            dataset, truth, _ = read_data(data_path, columns)
        if dataset is None:
            warnings.warn(f"{out / POSTERIOR_FILE} was not written: pass the fitted dataset "
                          "(save_run(out_dir, fitted, dataset)) or its data_path.", UserWarning,
                          stacklevel=2)
        else:
            family = family_of(fitted.spec.config["name"], dataset)
            write_posterior(out, table_coords(family.inference_data(
                fitted, dataset, num_draws=int(posterior_draws), max_obs=int(posterior_obs),
                seed=fitted.settings.seed, truth=truth), columns))
    return out


def table_coords(idata, columns: Columns | None):
    """Name the coordinates of a table's run after its columns: ``x_dim`` after the observed
    columns, ``domain`` after the domain names of a text ``u`` column (its labels are their
    positions). Unchanged for arrays (``.npz``) and without a mapping."""
    if columns is None:
        return idata
    names = {}
    if columns.x is not None:
        names["x_dim"] = list(columns.x)
    if columns.u_categories is not None:
        names["domain"] = list(columns.u_categories)
    for name in groups(idata):
        ds = group(idata, name)
        given = {dim: values for dim, values in names.items()
                 if dim in ds.dims and ds.sizes[dim] == len(values)}
        if given:
            replace_group(idata, name, ds.assign_coords(given))
    return idata


def write_posterior(run_dir, idata) -> Path:
    """Write an ArviZ posterior as ``posterior.nc`` in a run directory, atomically (temporary
    file, then rename)."""
    return write_netcdf(idata, Path(run_dir) / POSTERIOR_FILE)


def _templates(spec, settings: FitSettings):
    family = family_of(spec.config["name"])
    x, u = family.templates(spec.config)
    engine = _engine(spec, settings, 2)
    state = jax.eval_shape(engine.init, jax.random.PRNGKey(0), x, u)
    params = jax.eval_shape(engine.get_params, state)
    return params, state


def load_run(run_dir) -> Fitted:
    """Read a run directory written by :func:`save_run` back into a :class:`Fitted`."""
    run = Path(run_dir)
    if not (run / "config.json").is_file():
        raise InputError(
            f"{run} is not a run directory (no config.json); pass the --out directory of "
            "`ppl-ident fit`."
        )
    config = _read_json(run / "config.json")
    settings = _settings_of(run, config)
    if not (run / "params.npz").exists() and has_checkpoint(run):
        raise InputError(interrupted_message(run))
    try:
        model_cfg = dict(config["model"])
        name = model_cfg.pop("name")
        model_cfg.pop("batch_plate", None)  # written by earlier sequence runs; ModelSpec has it
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{run / 'config.json'} is not a ppl_ident run configuration ({err}); "
                         "it is damaged or from another version.") from err
    spec = build_model(name, jax.random.PRNGKey(0), **model_cfg)
    params_t, state_t = _templates(spec, settings)
    params = load_tree(run / "params.npz", params_t)
    state = load_tree(run / "state.npz", state_t) if (run / "state.npz").exists() else None
    try:
        with np.load(run / "losses.npz", allow_pickle=False) as npz:
            losses = npz["['loss']"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"Cannot read {run / 'losses.npz'} ({err}); the run directory is "
                         "damaged or incomplete.") from err
    metrics = _read_json(run / "metrics.json") if (run / "metrics.json").exists() else {}
    labels = None if config["labels"] is None else np.asarray(config["labels"])
    seed_params = None
    if (run / SEED_PARAMS_FILE).exists():  # older runs kept the selected fit only
        seed_params = load_tree(run / SEED_PARAMS_FILE, jax.tree_util.tree_map(
            lambda a: jax.ShapeDtypeStruct((settings.seeds,) + tuple(a.shape), a.dtype),
            params_t))
    return Fitted(spec, params, state, settings, labels, losses, metrics, seed_params)




def load_run_data(run_dir, data_path=None, columns: Columns | None = None, *,
                  true_latents: bool = True):
    """The data of a run directory, read the way the fit read it.

    Parameters
    ----------
    run_dir : path
    data_path : path, optional
        Another data file (default: the one recorded in ``config.json``).
    columns : Columns, optional
        Fields that replace the recorded column mapping of a table (the recorded coding of
        ``u`` is kept, so string domains get the fit's labels).
    true_latents : bool
        Read a table's true-latent columns (False: not even when recorded, so that a table
        without them can be encoded).

    Returns
    -------
    dataset, truth, data_path, columns
        As :func:`ppl_ident.data.read_data`, plus the path and mapping used.
    """
    run = Path(run_dir)
    config = _read_json(run / "config.json") if (run / "config.json").is_file() else {}
    data_path = data_path or config.get("data")
    if not data_path:
        raise InputError(
            f"{run}/config.json records no data file; pass the data it was fitted to (an .npz, "
            ".csv or .parquet file): `ppl-ident check RUN --data FILE`, `ppl-ident encode RUN "
            "FILE`."
        )
    recorded = Columns.from_dict(config.get("columns"))
    if table_format(data_path) is not None and recorded is not None:
        given = {} if columns is None else {k: v for k, v in columns._asdict().items()
                                            if v is not None}
        columns = recorded._replace(**given)
    if columns is not None and not true_latents:
        columns = columns._replace(z=None)
    dataset, truth, columns = read_data(data_path, columns)
    return dataset, truth, str(data_path), columns


#: output suffix -> format of :func:`save_latents`
LATENT_FORMATS = {".csv": "CSV", ".parquet": "Parquet", ".pq": "Parquet", ".npz": "npz"}


def _check_encodable(fitted: Fitted, dataset: Dataset, chunk_size):
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    name = fitted.spec.config["name"]
    family = family_of(name, dataset)
    guide = fitted.spec.config.get("guide")
    if guide is not None and guide not in family.guides:
        raise InputError(f"The run's guide {guide!r} has parameters per training row, not an "
                         "encoder, so it cannot encode new rows; refit with --guide "
                         f"{' or '.join(family.guides)}.")
    x_t, u_t = family.templates(fitted.spec.config)
    if dataset.x.shape[-1] != x_t.shape[-1]:
        raise InputError(f"The run's model takes {x_t.shape[-1]} observed columns; this data "
                         f"has {dataset.x.shape[-1]}. Pass data with the fitted columns (for a "
                         "table, the --x-cols of the fit).")
    if u_t is not None and dataset.u is not None:
        lead_ndim = x_t.ndim - 1
        labels = u_t.ndim == lead_ndim
        u_shape = np.shape(dataset.u)
        if (len(u_shape) != u_t.ndim) or (not labels and u_shape[-1] != u_t.shape[-1]):
            kind = "domain labels" if labels else f"a continuous u of {u_t.shape[-1]} column(s)"
            raise InputError(f"The run was fitted with {kind}, but this data's u has shape "
                             f"{u_shape}; pass data whose u is coded as at the fit.")


def latent_summary(fitted: Fitted, dataset: Dataset, *, chunk_size: int = 4096) -> dict:
    """Every observation's posterior summary of the latents under the fitted guide.

    The variational models' guides are Gaussian (diagonal or full covariance) and the
    noiseless flow's a point mass, so each latent's marginal is exactly ``N(mean, sd^2)`` and
    the 90 % interval is computed in closed form, ``mean -/+ 1.645 sd`` (for a point mass:
    ``sd = 0``, the interval is the point). The noisy flow's posterior is its Gaussian pushed
    through the flow: mean, sd and the 5 % / 95 % quantiles are those of 64 fixed draws per
    row (:data:`~ppl_ident.families.predict.MOMENT_DRAWS`). The guide runs on chunks of ``chunk_size`` observations (for sequences, whole sequences totalling
    at most ``chunk_size`` steps, at least one), so memory stays bounded.

    Parameters
    ----------
    fitted : Fitted
    dataset : Dataset
        ``x`` ``(N, d)`` (or ``(B, T, d)`` for a sequence model) and ``u`` coded as at the
        fit (labels the fit has not seen are refused).
    chunk_size : int

    Returns
    -------
    dict
        ``mean``, ``sd``, ``q05``, ``q95``: float32 arrays ``x.shape[:-1] + (n_latent,)``.

    Examples
    --------
    >>> s = latent_summary(fitted, data, chunk_size=1024)   # doctest: +SKIP
    >>> s["mean"].shape                                      # doctest: +SKIP
    (40000, 5)
    """
    _check_encodable(fitted, dataset, chunk_size)
    u = model_inputs(fitted, dataset.u)
    lead = int(np.prod(dataset.x.shape[1:-1], dtype=np.int64))  # steps per sequence (1: i.i.d.)
    out = encode_summary_chunked(fitted.spec, fitted.params, dataset.x, u,
                                 max(1, int(chunk_size) // lead))
    return dict(zip(("mean", "sd", "q05", "q95"), (a.astype(np.float32) for a in out)))


def encode_rows(fitted: Fitted, dataset: Dataset, *, chunk_size: int = 4096,
                columns: Columns | None = None):
    """Every row's latents as a table: posterior mean, sd and 90 % interval.

    Parameters
    ----------
    fitted : Fitted
    dataset : Dataset
    chunk_size : int
        Rows per chunk of the guide (see :func:`latent_summary`, which computes the numbers).
    columns : Columns, optional
        The table's column mapping: names the ``u`` column and turns the labels back into
        the table's domain names.

    Returns
    -------
    pandas.DataFrame
        One row per observation in data order (for sequences per (sequence, time) step, with
        ``sequence`` and ``time`` columns first; for a long-format table read with
        ``--seq-col`` its sequence-id column with the table's ids, sorted, and ``step``, the
        position of the step after ordering): the ``u`` column(s) (named as in the table,
        else ``u``, or ``u0, u1, ...`` for a continuous ``u``), then ``z{j}_mean``,
        ``z{j}_sd``, ``z{j}_q05``, ``z{j}_q95`` for each latent ``j``.

    Examples
    --------
    >>> df = encode_rows(fitted, data)                     # doctest: +SKIP
    >>> list(df.columns)[:5]                               # doctest: +SKIP
    ['u', 'z0_mean', 'z0_sd', 'z0_q05', 'z0_q95']
    """
    import pandas as pd

    summary = latent_summary(fitted, dataset, chunk_size=chunk_size)
    n_latent = summary["mean"].shape[-1]
    lead = summary["mean"].shape[:-1]
    data = {}
    if len(lead) == 2:
        ids = columns.sequence_ids if columns is not None else None
        if ids is not None and len(ids) == lead[0]:
            # a long-format table: the table's own sequence ids, and each step's position
            data[columns.sequence] = np.repeat(np.asarray(ids), lead[1])
            data["step"] = np.tile(np.arange(lead[1]), lead[0])
        else:
            data["sequence"] = np.repeat(np.arange(lead[0]), lead[1])
            data["time"] = np.tile(np.arange(lead[1]), lead[0])
    for name, values in _u_columns(dataset.u, columns, len(lead)).items():
        data[name] = values
    for j in range(n_latent):
        for stat in ("mean", "sd", "q05", "q95"):
            data[f"z{j}_{stat}"] = summary[stat][..., j].reshape(-1)
    return pd.DataFrame(data)


def _u_columns(u, columns: Columns | None, lead_ndim: int) -> dict:
    if u is None:
        return {}
    u = np.asarray(u)
    name = columns.u if columns is not None and columns.u else "u"
    if u.ndim == lead_ndim:
        flat = u.reshape(-1)
        cats = columns.u_categories if columns is not None else None
        return {name: np.asarray(cats)[flat] if cats else flat}
    flat = u.reshape(-1, u.shape[-1])
    if flat.shape[1] == 1:
        return {name: flat[:, 0]}
    return {f"{name}{k}": flat[:, k] for k in range(flat.shape[1])}


def save_latents(path, fitted: Fitted, dataset: Dataset, *, chunk_size: int = 4096,
                 columns: Columns | None = None, force: bool = False) -> Path:
    """Write every row's latents (:func:`encode_rows`) to ``path``, by its suffix: ``.csv``,
    ``.parquet`` / ``.pq`` (the table), or ``.npz`` (arrays ``z_mean``, ``z_sd``, ``z_q05``,
    ``z_q95`` of shape ``x.shape[:-1] + (n_latent,)``, and ``u`` as in the data, domain
    names as strings).

    An existing file is refused unless ``force`` (checked before anything is computed); the
    file is written atomically, so an interrupted write leaves nothing half-written.
    """
    path = Path(path)
    fmt = LATENT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"Cannot tell the format of {path} from its suffix; name the output "
                         f"file with one of {', '.join(LATENT_FORMATS)}.")
    if path.is_dir():
        raise InputError(f"{path} is a directory; pass the name of the file to write.")
    if path.exists() and not force:
        raise InputError(f"{path} already exists; choose another name, or pass --force "
                         "(force=True) to replace it.")
    if fmt == "npz":
        summary = latent_summary(fitted, dataset, chunk_size=chunk_size)
        arrays = {f"z_{k}": v for k, v in summary.items()}
        if dataset.u is not None:
            u = np.asarray(dataset.u)
            cats = columns.u_categories if columns is not None else None
            arrays["u"] = np.asarray(cats)[u] if cats else u
        return atomic_savez(path, **arrays)
    if fmt == "Parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as err:
            raise InputError(f"Writing Parquet needs pyarrow ({err}); install it with `pip "
                             "install pyarrow`, or write .csv or .npz.") from err

    def write(fh):
        writer = None
        try:
            for k, table in enumerate(_row_blocks(fitted, dataset, chunk_size, columns)):
                if fmt == "CSV":
                    fh.write(table.to_csv(index=False, header=k == 0).encode())
                    continue
                block = pa.Table.from_pandas(table, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(fh, block.schema)
                writer.write_table(block)
        finally:
            if writer is not None:
                writer.close()

    return atomic_write_stream(path, write)


#: Rows of i.i.d. data per block written by :func:`save_latents` (its memory is one block's
#: table, whatever the number of rows).
WRITE_ROWS = 1 << 16


def _row_blocks(fitted: Fitted, dataset: Dataset, chunk_size: int, columns):
    """:func:`encode_rows` of i.i.d. data in blocks of :data:`WRITE_ROWS` rows (a memory-mapped
    ``x`` is read block by block); sequences in one block."""
    n = dataset.x.shape[0]
    if np.ndim(dataset.x) != 2 or n <= WRITE_ROWS:
        yield encode_rows(fitted, dataset, chunk_size=chunk_size, columns=columns)
        return
    for start in range(0, n, WRITE_ROWS):
        rows = slice(start, start + WRITE_ROWS)
        block = Dataset(np.asarray(dataset.x[rows]),
                        None if dataset.u is None else np.asarray(dataset.u[rows]), None)
        yield encode_rows(fitted, block, chunk_size=chunk_size, columns=columns)
