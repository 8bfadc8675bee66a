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
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppl_ident import __version__
from ppl_ident.data.simulate import Dataset
from ppl_ident.diagnostics.mcc import matched_r2, mcc
from ppl_ident.errors import InputError, warn_identifiability
from ppl_ident.files import atomic_write_bytes, atomic_write_json, prepare_output_dir
from ppl_ident.inference import FitResult, OptimConfig, build_engine, encode, fit
from ppl_ident.models import MODELS, build_model
from ppl_ident.pytrees import load_tree, save_tree

__all__ = ["FitSettings", "Fitted", "fit_model", "evaluate", "save_run", "load_run",
           "prepare_inputs", "whitening"]


class FitSettings(NamedTuple):
    """Settings of :func:`fit_model`. The defaults are tuned on the default simulator setting
    (see ``benchmarks/README.md``)."""

    model: str = "ivae"
    latent_dim: int | None = None
    engine: str = "svi"
    elbo: str = "Trace_ELBO"
    num_particles: int = 1
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
    seed: int = 0


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
    if not s.noise_init > 0:
        raise InputError(f"noise_init must be > 0, got {s.noise_init}.")
    if s.noise_scale is not None and not s.noise_scale > 0:
        raise InputError(f"noise_scale must be > 0 (or omitted to learn it), got {s.noise_scale}.")
    if dataset.x.ndim != 2:
        raise InputError(
            f"Model {s.model!r} takes i.i.d. data x of shape (N, d); this file holds sequences "
            f"{dataset.x.shape}. Use a sequence model (see `ppl-ident fit --help`)."
        )
    return s._replace(latent_dim=int(n), batch_size=int(min(s.batch_size, dataset.x.shape[0])))


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
              truth=None, **overrides) -> Fitted:
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
    truth : GroundTruth, optional
        The simulator's ground truth: adds the Jacobian scores and the learned prior's
        sufficient-variability check to the metrics (see :func:`evaluate`).

    Returns
    -------
    Fitted

    Raises
    ------
    InputError
        For settings or data that cannot work (the message names the fix).
    """
    s = _check_settings(dataset, (settings or FitSettings())._replace(**overrides))
    u, labels = prepare_inputs(dataset.u)
    _check_domains(dataset.u, s.latent_dim, s.model)
    key = jax.random.PRNGKey(s.seed)
    k_model, k_fit = jax.random.split(key)
    spec = build_model(
        s.model, k_model, n_latent=s.latent_dim, data_dim=dataset.x.shape[1],
        n_domains=None if labels is None else len(labels),
        aux_dim=None if u is None or u.ndim == 1 else u.shape[1],
        width=s.width, depth=s.depth, prior=s.prior, noise_scale=s.noise_scale,
        whiten=whitening(dataset.x) if s.whiten else None, noise_init=s.noise_init,
    )
    engine = _engine(spec, s)
    res = fit(engine, k_fit, dataset.x, u, s.steps, restarts=s.restarts, progress=progress)
    fitted = Fitted(spec, res.params, res.state, s, labels, res.losses, {})
    return fitted._replace(metrics={**_fit_metrics(res, dataset),
                                    **evaluate(fitted, dataset, truth)})


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


def _engine(spec, s: FitSettings):
    optim = OptimConfig(learning_rate=s.learning_rate, num_steps=s.steps,
                        warmup_steps=s.warmup_steps, clip_norm=s.clip_norm)
    return build_engine(s.engine, spec, elbo=s.elbo, num_particles=s.num_particles,
                        batch_size=s.batch_size, optim=optim)


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
    :func:`ppl_ident.checks.check_run` on 256 points."""
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
    config = {
        "version": __version__,
        "settings": fitted.settings._asdict(),
        "model": fitted.spec.config,
        "labels": None if fitted.labels is None else fitted.labels.tolist(),
        "data": None if data_path is None else str(data_path),
    }
    atomic_write_json(out / "config.json", config)
    save_tree(out / "params.npz", fitted.params)
    save_tree(out / "state.npz", fitted.state)
    save_tree(out / "losses.npz", {"loss": np.asarray(fitted.losses)})
    atomic_write_json(out / "metrics.json", fitted.metrics)
    return out


def _templates(spec, settings: FitSettings):
    engine = _engine(spec, settings)
    cfg = spec.config
    x = jnp.zeros((2, cfg["data_dim"]))
    if cfg.get("n_domains") is not None:
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
    config = json.loads((run / "config.json").read_text())
    settings = FitSettings(**config["settings"])
    model_cfg = dict(config["model"])
    name = model_cfg.pop("name")
    spec = build_model(name, jax.random.PRNGKey(0), **model_cfg)
    params_t, state_t = _templates(spec, settings)
    params = load_tree(run / "params.npz", params_t)
    state = load_tree(run / "state.npz", state_t) if (run / "state.npz").exists() else None
    with np.load(run / "losses.npz", allow_pickle=False) as npz:
        losses = npz["['loss']"]
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() \
        else {}
    labels = None if config["labels"] is None else np.asarray(config["labels"])
    return Fitted(spec, params, state, settings, labels, losses, metrics)


def write_text(path, text: str):
    """Atomically write UTF-8 text."""
    return atomic_write_bytes(path, text.encode())


warnings.filterwarnings("default", category=UserWarning, module="ppl_ident")
