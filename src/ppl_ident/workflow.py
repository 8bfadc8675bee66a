"""High-level workflow: fit a registered model to a dataset, evaluate it, save and load runs.

This is the public Python entry point used by the CLI, the comparison harness and the
examples::

    data, truth = simulate_domains(0)
    fitted = fit_model(data, model="ivae")
    fitted.metrics["mcc"]
    save_run("runs/ivae", fitted)
    fitted = load_run("runs/ivae")
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppl_ident import __version__
from ppl_ident.data.simulate import Dataset
from ppl_ident.diagnostics.mcc import matched_r2, mcc
from ppl_ident.errors import DivergenceWarning, InputError, warn_identifiability
from ppl_ident.files import atomic_write_json, prepare_output_dir
from ppl_ident.inference import (SAMPLER_ENGINES, FitResult, OptimConfig, build_engine,
                                 encode, fit)
from ppl_ident.models import MODELS, SEQUENCE_MODELS, build_model
from ppl_ident.pytrees import load_tree, save_tree

__all__ = ["FitSettings", "FIT_PRESETS", "fit_settings", "Fitted", "fit_model", "evaluate", "save_run", "load_run",
           "prepare_inputs", "resume_run", "divergence_message", "whitening"]


#: Guides that ``fit_model`` supports: amortised encoders, whose posterior moments
#: :func:`ppl_ident.inference.encode` reads for any observation (the comparison harness also
#: runs the non-amortised ``autonormal`` / ``semidais``).
FIT_GUIDES = ("encoder", "encoder_fullcov")


#: Named starting points for :class:`FitSettings` (``fit_settings(preset, **overrides)``,
#: ``ppl-ident fit --preset``). ``fast`` is the default: the ELBO, one particle, about 10 s on
#: the default setting. ``accurate`` trains on the importance-weighted bound with 32 particles
#: (``iwae``) for 10,000 steps: a tighter bound on ``log p(x | u)``, which on the default
#: setting raises the iVAE's median MCC over 5 seeds from 0.79 to 0.953 at about 16 times the
#: run time (measured in ``benchmarks/README.md``). On sequence models the weights are per
#: sequence (:func:`ppl_ident.inference.engines.fold_plate`). ``exact`` (sequence models with
#: ``d == n``) replaces the encoder and the noisy decoder by an invertible flow and trains on the
#: exact ``log p(x)`` for 20,000 steps at a peak learning rate of 1e-3: on the sequence
#: benchmarks it raises the median MCC over 3 seeds from 0.82 to 0.945 (temporal iVAE) and from
#: 0.74 to 0.936 (hidden regimes) in about 4 minutes, at the price of a point-estimate posterior.
FIT_PRESETS = {
    "fast": {},
    "accurate": {"engine": "iwae", "num_particles": 32, "steps": 10_000},
    "exact": {"flow": True, "steps": 20_000, "learning_rate": 1e-3},
}


def fit_settings(preset: str = "fast", **overrides) -> "FitSettings":
    """:class:`FitSettings` of a named preset (:data:`FIT_PRESETS`), with field overrides.

    >>> fit_settings("accurate", seed=3).num_particles
    32
    """
    if preset not in FIT_PRESETS:
        raise InputError(f"Unknown preset {preset!r}; choose one of {', '.join(FIT_PRESETS)}.")
    unknown = set(overrides) - set(FitSettings._fields)
    if unknown:
        raise InputError(f"Unknown fit setting(s) {', '.join(sorted(unknown))}; valid: "
                         f"{', '.join(FitSettings._fields)}.")
    return FitSettings(**{**FIT_PRESETS[preset], **overrides})


class FitSettings(NamedTuple):
    """Settings of :func:`fit_model`. The defaults are tuned on the default simulator setting
    (see ``benchmarks/README.md``)."""

    model: str = "ivae"
    latent_dim: int | None = None
    engine: str = "svi"
    elbo: str | None = None           # None: the engine's own (svi: Trace_ELBO, iwae: RenyiELBO)
    num_particles: int | None = None  # None: the engine's own (svi: 1, iwae: 8)
    steps: int = 5000
    batch_size: int = 512
    learning_rate: float = 5e-3
    warmup_steps: int = 200
    clip_norm: float = 1e4
    restarts: int = 1
    width: int = 64
    depth: int = 2
    prior: str = "gaussian"
    noise_scale: float | None = None
    noise_init: float = 0.3
    whiten: bool = True
    guide: str = "encoder_fullcov"
    seed: int = 0
    # sequence models (x of shape (B, T, d)); batch_size counts time steps for them
    lag: int = 1
    n_regimes: int = 3
    context: int = 3
    heteroscedastic: bool = False  # transition noise scale moves with the past
    flow: bool = False  # exact likelihood: z_t = h(x_t) with an invertible h (d == n)


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
    """

    spec: object
    params: dict
    state: object
    settings: FitSettings
    labels: np.ndarray | None
    losses: np.ndarray
    metrics: dict


def prepare_inputs(u, labels=None):
    """Re-index integer domain labels to ``0..U-1``; continuous ``u`` passes through.

    Returns ``(u_model, labels)``. With ``labels`` given (a fitted model's), labels not seen in
    training raise :class:`InputError`.
    """
    if u is None:
        return None, None
    u = np.asarray(u)
    if u.ndim != 1:
        return u.astype(np.float32), None
    if labels is None:
        labels = np.unique(u)
    idx = np.searchsorted(labels, u)
    idx = np.clip(idx, 0, len(labels) - 1)
    unseen = labels[idx] != u
    if np.any(unseen):
        raise InputError(
            f"Domain label(s) {sorted(set(u[unseen].tolist()))[:5]} were not seen when fitting "
            f"(known labels: {labels.tolist()[:10]}{'...' if len(labels) > 10 else ''}); the "
            "learned prior has no parameters for them. Refit including those domains."
        )
    return idx.astype(np.int32), labels


def _check_settings(dataset: Dataset, s: FitSettings) -> FitSettings:
    if s.model not in MODELS:
        raise InputError(f"Unknown model {s.model!r}; valid models: {', '.join(sorted(MODELS))}.")
    d = dataset.x.shape[-1]
    n = s.latent_dim
    if n is None:
        n = dataset.z.shape[-1] if dataset.z is not None else d
    for name, value in [("latent_dim", n), ("steps", s.steps), ("batch_size", s.batch_size),
                        ("restarts", s.restarts), ("width", s.width), ("depth", s.depth)]:
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    if n > d:
        raise InputError(
            f"latent_dim={n} is larger than the data dimension d={d}; the decoder must be "
            f"injective, so choose --latent-dim <= {d}."
        )
    if not s.learning_rate > 0:
        raise InputError(f"learning_rate must be > 0, got {s.learning_rate}.")
    if s.engine in SAMPLER_ENGINES:
        raise InputError(f"The {s.engine} engine samples z of a fitted model and fits nothing: "
                         "fit with engine 'svi' or 'iwae', then sample with `ppl-ident report "
                         "RUN --nuts-obs K` or compare with `ppl-ident compare --engines svi "
                         f"{s.engine}`.")
    if s.guide not in FIT_GUIDES and s.model not in SEQUENCE_MODELS:
        raise InputError(f"Unknown guide {s.guide!r} for fit; choose one of "
                         f"{', '.join(FIT_GUIDES)} (ppl-ident compare runs the others).")
    if not s.noise_init > 0:
        raise InputError(f"noise_init must be > 0, got {s.noise_init}.")
    if s.flow and s.model not in SEQUENCE_MODELS:
        raise InputError(f"The exact-likelihood flow model is built for the sequence models "
                         f"({', '.join(SEQUENCE_MODELS)}); model {s.model!r} is variational only: "
                         "drop --flow (or --preset exact).")
    if s.heteroscedastic and s.model not in SEQUENCE_MODELS:
        raise InputError(f"heteroscedastic applies to the transition of sequence models "
                         f"({', '.join(SEQUENCE_MODELS)}); model {s.model!r} has none: drop "
                         "--heteroscedastic.")
    if s.noise_scale is not None and not s.noise_scale > 0:
        raise InputError(f"noise_scale must be > 0 (or omitted to learn it), got {s.noise_scale}.")
    if (s.model in SEQUENCE_MODELS) != (dataset.x.ndim == 3):
        if dataset.x.ndim == 3:
            raise InputError(
                f"Model {s.model!r} takes i.i.d. data x of shape (N, d); this file holds "
                f"sequences {dataset.x.shape}. Use a sequence model: --model "
                f"{' or '.join(SEQUENCE_MODELS)}."
            )
        raise InputError(
            f"Model {s.model!r} takes sequences x of shape (B, T, d); this file holds i.i.d. "
            f"data {dataset.x.shape}. Use --model ivae or vae, or simulate sequences with "
            "`ppl-ident simulate --generator dynamics`."
        )
    n_obs = int(np.prod(dataset.x.shape[:-1]))
    return s._replace(latent_dim=int(n), batch_size=int(min(s.batch_size, n_obs)))


# the largest default particle count of a registered engine (iwae: 8); a bound for the check
_MAX_DEFAULT_PARTICLES = 8


def _check_fit_memory(dataset: Dataset, s: FitSettings):
    """Refuse settings whose networks cannot fit in memory before anything is allocated."""
    from ppl_ident.files import check_memory

    d, n, w = dataset.x.shape[1], s.latent_dim, s.width
    k = dataset.u.shape[1] if dataset.u is not None and dataset.u.ndim == 2 else 0
    n_dom = len(np.unique(dataset.u)) if dataset.u is not None and dataset.u.ndim == 1 else 0
    mlp = lambda i, o: i * w + (s.depth - 1) * w * w + w * o  # noqa: E731
    n_params = mlp(n, d) + mlp(d + max(n_dom, k), 2 * n) + mlp(k, 2 * n) + 2 * n_dom * n + d
    # parameters, gradients and two Adam moments per restart, plus one batch of activations
    nbytes = 4 * s.restarts * (4 * n_params + 4 * s.batch_size * w * s.depth * (s.num_particles or _MAX_DEFAULT_PARTICLES))
    check_memory(nbytes, f"a fit with --width {w} --depth {s.depth} --restarts {s.restarts}",
                 "lower --width, --depth, --restarts or --batch-size.")


def _check_domains(u, n: int, model: str):
    if u is None or u.ndim != 1:
        return
    n_dom = len(np.unique(u))
    if n_dom < 2 and model == "ivae":
        raise InputError(
            "u holds a single domain, so the iVAE prior cannot vary with u and the model is a "
            "plain VAE; provide data from at least 2 domains (2n+1 for the identifiability "
            "guarantee), or fit --model vae."
        )
    if n_dom < 2 * n + 1 and model == "ivae":
        warn_identifiability(
            f"u has {n_dom} distinct domains but {n} latents: the sufficient-variability "
            f"condition needs at least 2n+1={2 * n + 1} (the iVAE exponential-family condition "
            f"at least n+1={n + 1} for scale-only changes); with fewer, the latents are not "
            "guaranteed to be identifiable and MCC may be low."
        )


def fit_model(dataset: Dataset, settings: FitSettings | None = None, *, progress: bool = False,
              truth=None, checkpoint_dir=None, checkpoint_every: int | None = None,
              data_path: str | None = None, **overrides) -> Fitted:
    """Fit a registered model to a dataset and evaluate it.

    Parameters
    ----------
    dataset : Dataset
        ``x`` ``(N, d)``, ``u`` labels or continuous; ``z`` (optional) is used only for the
        reported metrics, never for fitting or for choosing among restarts.
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
        with :func:`resume_run`. See :mod:`ppl_ident.inference.checkpoint`. (i.i.d. models.)
    checkpoint_every : int, optional
        Steps between checkpoints (only at the end and on Ctrl-C when omitted).
    data_path : str, optional
        The data file (recorded with its SHA-256 so that :func:`resume_run` can reload it).

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
    s = _check_settings(dataset, (settings or FitSettings())._replace(**overrides))
    if s.model in SEQUENCE_MODELS:
        if checkpoint_every is not None:
            raise InputError(
                "Checkpoints and --resume are not supported for sequence models yet; fit "
                "without --checkpoint-every (a default sequence fit takes minutes)."
            )
        from ppl_ident.workflow_sequences import fit_sequence_model

        return fit_sequence_model(dataset, s, progress=progress, truth=truth)
    _check_fit_memory(dataset, s)
    u, labels = prepare_inputs(dataset.u)
    _check_domains(dataset.u, s.latent_dim, s.model)
    return _fit_with_checkpoints(dataset, s, u, labels, progress=progress,
                                 checkpoint_dir=checkpoint_dir,
                                 checkpoint_every=checkpoint_every, data_path=data_path,
                                 truth=truth)


def _build_spec(dataset: Dataset, s: FitSettings, u, labels):
    """The model of a fit and the key of its restarts, both derived from ``s.seed`` (shared by
    :func:`fit_model` and :func:`resume_run`, so a resumed fit rebuilds the same model)."""
    key = jax.random.PRNGKey(s.seed)
    k_model, k_fit = jax.random.split(key)
    spec = build_model(
        s.model, k_model, n_latent=s.latent_dim, data_dim=dataset.x.shape[1],
        n_domains=None if labels is None else len(labels),
        aux_dim=None if u is None or u.ndim == 1 else u.shape[1],
        width=s.width, depth=s.depth, prior=s.prior, noise_scale=s.noise_scale,
        whiten=whitening(dataset.x) if s.whiten else None, noise_init=s.noise_init,
        guide=s.guide,
    )
    return spec, k_fit


def whitening(x):
    """Mean and Cholesky factor of the covariance of ``x`` ``(N, d)``, for
    :func:`ppl_ident.models.ivae.observation_dist`.

    A ridge of 1e-6 times the mean variance keeps the factor defined when ``x`` lies on a
    subspace (``d > n`` without noise); directions with no variance then stay near zero.
    """
    x = np.asarray(x, np.float64)
    mu = x.mean(0)
    cov = np.atleast_2d(np.cov(x, rowvar=False)) if len(x) > 1 else np.eye(x.shape[1])
    ridge = 1e-6 * max(float(np.mean(np.diag(cov))), 1e-12)
    chol = np.linalg.cholesky(cov + ridge * np.eye(cov.shape[0]))
    return mu.astype(np.float32), chol.astype(np.float32)


def engine_optim(s: FitSettings) -> OptimConfig:
    """The optimiser schedule of a fit with settings ``s``."""
    return OptimConfig(learning_rate=s.learning_rate, num_steps=s.steps,
                       warmup_steps=s.warmup_steps, clip_norm=s.clip_norm)


def _engine(spec, s: FitSettings):
    optim = engine_optim(s)
    # None leaves the engine's own default ELBO and particle count
    chosen = {k: v for k, v in (("elbo", s.elbo), ("num_particles", s.num_particles))
              if v is not None}
    return build_engine(s.engine, spec, batch_size=s.batch_size, optim=optim, **chosen)


def _fit_with_checkpoints(dataset: Dataset, s: FitSettings, u, labels, *, progress,
                          checkpoint_dir, checkpoint_every, data_path, target_steps=None,
                          resume_dir=None, truth=None) -> Fitted:
    """The body of :func:`fit_model` and :func:`resume_run`: fit (or continue from the
    checkpoint in ``resume_dir``), checkpointing into ``checkpoint_dir`` when given."""
    from ppl_ident.inference.checkpoint import (
        CHECKPOINT_JSON, CHECKPOINT_NPZ, file_sha256, load_checkpoint, save_checkpoint,
        state_template, stop_on_sigint)

    if checkpoint_every is not None and (int(checkpoint_every) != checkpoint_every
                                         or checkpoint_every < 1):
        raise InputError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}.")
    spec, k_fit = _build_spec(dataset, s, u, labels)
    engine = _engine(spec, s)
    target = int(target_steps or s.steps)
    resume = {}
    if resume_dir is not None:
        template = state_template(engine, jax.random.split(k_fit, s.restarts),
                                  jnp.asarray(dataset.x), None if u is None else jnp.asarray(u))
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
                              _run_config(spec, s, labels, data_path))

    with stop_on_sigint() if checkpoint_dir is not None else _no_stop() as stop:
        def on_chunk(step, states, losses, finite):
            if checkpoint_dir is not None and (stop or (checkpoint_every and
                                                        step % checkpoint_every == 0)):
                save_checkpoint(checkpoint_dir, step, states, losses, finite,
                                {**meta, "stop_reason": "interrupted" if stop else "running"})
            return bool(stop)

        res = fit(engine, k_fit, dataset.x, u, target, restarts=s.restarts, progress=progress,
                  on_chunk=on_chunk, checkpoint_every=checkpoint_every, **resume)
    reason = "interrupted" if res.stop_reason == "stopped" and stop else res.stop_reason
    steps_done = int(res.all_losses.shape[1])
    if checkpoint_dir is not None:
        save_checkpoint(checkpoint_dir, steps_done, res.states, res.all_losses, res.all_finite,
                        {**meta, "stop_reason": reason})
    fitted = Fitted(spec, res.params, res.state, s, labels, res.losses, {})
    start = resume.get("start_step", 0)
    extra = {"stop_reason": reason, "target_steps": target,
             "resumed_from_step": resume.get("start_step"),
             "steps_per_s": (steps_done - start) / res.run_time if res.run_time > 0 else None}
    if reason.startswith("diverged"):
        extra["stop_message"] = divergence_message(reason.removeprefix("diverged: "), s,
                                                   steps_done)
        warnings.warn(extra["stop_message"], DivergenceWarning, stacklevel=3)
    return fitted._replace(metrics={**_fit_metrics(res, dataset), **extra,
                                    # a diverged fit's Jacobian checks would mean nothing
                                    **evaluate(fitted, dataset, None if reason.startswith(
                                        "diverged") else truth)})


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
    from ppl_ident.data.io import load_dataset
    from ppl_ident.inference.checkpoint import CHECKPOINT_JSON, file_sha256, has_checkpoint

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
    if data_path is None or not Path(data_path).is_file():
        raise InputError(
            f"The data file of this run ({data_path}) is not available; pass its new path "
            "(ppl-ident fit --resume RUN_DIR DATA)."
        )
    if meta.get("data_sha256") and file_sha256(data_path) != meta["data_sha256"]:
        raise InputError(
            f"{data_path} changed since the run started (its SHA-256 differs); resume with the "
            "original data file or start a new fit."
        )
    try:
        s = FitSettings(**config["settings"])
    except (KeyError, TypeError) as err:
        raise InputError(f"{run / 'config.json'} has unknown settings ({err}); it was written by "
                         "another version of ppl_ident.") from err
    dataset, truth = load_dataset(data_path)
    u, labels = prepare_inputs(dataset.u)
    every = checkpoint_every or meta.get("checkpoint_every")
    return _fit_with_checkpoints(
        dataset, s, u, labels, progress=progress, checkpoint_dir=run, checkpoint_every=every,
        data_path=data_path, target_steps=steps or meta.get("target_steps") or s.steps,
        resume_dir=run, truth=truth)


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"Cannot read {path} ({err}); the run directory is damaged.") from err


def _run_config(spec, settings: FitSettings, labels, data_path) -> dict:
    return {
        "version": __version__,
        "settings": settings._asdict(),
        "model": spec.config,
        "labels": None if labels is None else np.asarray(labels).tolist(),
        "data": None if data_path is None else str(data_path),
    }


def _fit_metrics(res: FitResult, dataset: Dataset) -> dict:
    n_obs = dataset.x.shape[0]
    return {
        "elbo": -res.final_loss,
        "elbo_per_obs": -res.final_loss / n_obs,
        "restart_elbos": (-res.restart_losses).tolist(),
        "selected_restart": res.selected,
        "num_steps": int(len(res.losses)),
        "num_skipped_steps": res.num_skipped,
        "compile_time_s": res.compile_time,
        "run_time_s": res.run_time,
        "steps_per_s": len(res.losses) / res.run_time if res.run_time > 0 else None,
    }


def evaluate(fitted: Fitted, dataset: Dataset, truth=None) -> dict:
    """Metrics of a fitted model on a dataset: MCC (Pearson and Spearman), per-dimension
    correlations and R^2 of the posterior mean against ``dataset.z`` (when present).

    With the simulator's ``truth``, also ``jacobian`` (scores of the learned-to-true Jacobian)
    and ``variability`` (the learned prior's sufficient-variability check) from
    :func:`ppl_ident.checks.check_run` on 256 points. For sequence models see
    :func:`ppl_ident.workflow_sequences.evaluate_sequences`."""
    if fitted.spec.config["name"] in SEQUENCE_MODELS:
        from ppl_ident.workflow_sequences import evaluate_sequences

        return evaluate_sequences(fitted, dataset, truth)
    checks = {}
    if truth is not None:
        from ppl_ident.checks import check_run

        result = check_run(fitted, dataset, truth, n_points=256)
        checks = {"jacobian": result["jacobian"], "variability": result["variability"]}
    if dataset.z is None:
        return checks
    u, _ = prepare_inputs(dataset.u, fitted.labels)
    mean, _ = encode(fitted.spec, fitted.params, dataset.x, u)
    mean = np.asarray(mean)
    if not np.all(np.isfinite(mean)):
        # A diverged fit can leave an encoder whose outputs overflow; report, don't crash.
        return {"mcc": None, "evaluation_note": "posterior means are not finite"}
    pear = mcc(dataset.z, mean)
    spear = mcc(dataset.z, mean, method="spearman")
    return {
        "mcc": pear.score,
        "mcc_spearman": spear.score,
        "mcc_per_dim": np.abs(pear.per_dim).tolist(),
        "matching": pear.matching.tolist(),
        "r2_per_dim": matched_r2(dataset.z, mean, pear.matching).tolist(),
        "mcc_raw_x": mcc(dataset.z, dataset.x).score if dataset.x.shape[1] >= dataset.z.shape[1]
        else None,
        **checks,
    }


def save_run(out_dir, fitted: Fitted, *, force: bool = False, data_path: str | None = None):
    """Write a run directory: ``config.json``, ``params.npz``, ``state.npz``, ``losses.npz``,
    ``metrics.json``. Refuses a non-empty directory unless ``force``; every file is written
    atomically."""
    out = prepare_output_dir(out_dir, force=force)
    atomic_write_json(out / "config.json",
                      _run_config(fitted.spec, fitted.settings, fitted.labels, data_path))
    save_tree(out / "params.npz", fitted.params)
    save_tree(out / "state.npz", fitted.state)
    save_tree(out / "losses.npz", {"loss": np.asarray(fitted.losses)})
    atomic_write_json(out / "metrics.json", fitted.metrics)
    return out


def _templates(spec, settings: FitSettings):
    cfg = spec.config
    x = jnp.zeros((2, cfg["data_dim"]))
    if cfg["name"] in SEQUENCE_MODELS:  # two sequences just longer than the lag
        x = jnp.zeros((2, cfg["lag"] + 2, cfg["data_dim"]))
        u = None if cfg.get("n_domains") is None else jnp.zeros((2, cfg["lag"] + 2), jnp.int32)
    elif cfg.get("n_domains") is not None:
        u = jnp.zeros((2,), jnp.int32)
    elif cfg.get("aux_dim") is not None:
        u = jnp.zeros((2, cfg["aux_dim"]))
    else:
        u = jnp.zeros((2,), jnp.int32)
    engine = _engine(spec, settings._replace(batch_size=2))
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
    try:
        settings = FitSettings(**config["settings"])
        model_cfg = dict(config["model"])
        name = model_cfg.pop("name")
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
    return Fitted(spec, params, state, settings, labels, losses, metrics)


