"""``ppl-ident fit``: fit a model to a data file and write a run directory."""

from __future__ import annotations

import contextlib

from ppl_ident.cli._args import nonneg_int, positive_float, positive_int

NAME = "fit"
HELP = ("Fit a model (iVAE, VAE; sequences: tivae, regime, stationary) to a .npz data file; "
        "write a run directory.")


def add_arguments(p):
    from ppl_ident.workflow import FIT_GUIDES
    from ppl_ident.inference import ELBOS, ENGINES, SAMPLER_ENGINES
    from ppl_ident.models import MODELS, PRIORS
    from ppl_ident.workflow import FIT_PRESETS, FitSettings

    d = FitSettings()
    p.add_argument("data", nargs="?", default=None,
                   help=".npz data file (keys x, u, optional z); with --resume, only if it moved")
    p.add_argument("--out", default=None, help="run directory to create (required unless --resume)")
    p.add_argument("--model", choices=sorted(MODELS), default=d.model)
    p.add_argument("--latent-dim", type=positive_int, default=None,
                   help="n (default: dimension of z in the file, else of x)")
    p.add_argument("--engine", choices=sorted(set(ENGINES) - SAMPLER_ENGINES),
                   default=None,
                   help="optimisation engine (the nuts sampler runs in `report` and `compare`)")
    p.add_argument("--preset", choices=sorted(FIT_PRESETS), default="fast",
                   help="starting settings: fast (the ELBO, about 10 s on the default setting) "
                        "or accurate (importance-weighted bound, 32 particles, 10,000 steps: "
                        "higher MCC, about 16 times slower) or exact (sequence models with "
                        "d == n: --flow, 20,000 steps, lr 1e-3); flags below override it")
    p.add_argument("--elbo", choices=sorted(ELBOS), default=None,
                   help="objective (default: the engine's: svi Trace_ELBO, iwae RenyiELBO)")
    p.add_argument("--particles", type=positive_int, default=None,
                   help="Monte Carlo particles per observation (default: the engine's)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help=f"optimisation steps (default {d.steps}, accurate preset "
                        f"{FIT_PRESETS['accurate']['steps']}; with --resume: the total to reach)")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size,
                   help="observations per minibatch (sequences: time steps, whole sequences)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"peak learning rate (default {d.learning_rate}; the preset's if it sets "
                        "one)")
    p.add_argument("--restarts", type=positive_int, default=d.restarts,
                   help="independent initialisations run together; best by ELBO is kept")
    p.add_argument("--width", type=positive_int, default=d.width)
    p.add_argument("--depth", type=positive_int, default=d.depth)
    p.add_argument("--prior", choices=PRIORS, default=d.prior)
    p.add_argument("--noise-scale", type=positive_float, default=None,
                   help="fix the observation noise scale (default: learn it)")
    p.add_argument("--guide", choices=FIT_GUIDES, default=d.guide,
                   help="variational family of q(z | x, u) (i.i.d. models); the default "
                        "full-covariance encoder identifies best in benchmarks/README.md")
    p.add_argument("--noise-init", type=positive_float, default=d.noise_init,
                   help="initial value of the learned noise scale (whitened units)")
    p.add_argument("--no-whiten", action="store_true",
                   help="decode in data coordinates with isotropic noise instead of whitened "
                        "coordinates (whitening is the default; see the README)")
    p.add_argument("--seed", type=nonneg_int, default=d.seed)
    p.add_argument("--posterior-draws", type=nonneg_int, default=100,
                   help="guide draws of z per observation saved in posterior.nc (0: no file)")
    p.add_argument("--posterior-obs", type=positive_int, default=300,
                   help="observations (a random subset) kept in posterior.nc")
    p.add_argument("--lag", type=positive_int, default=d.lag, help="sequence models: lag L")
    p.add_argument("--regimes", type=positive_int, default=d.n_regimes,
                   help="regime model: number of hidden regimes K")
    p.add_argument("--context", type=nonneg_int, default=d.context,
                   help="sequence models: encoder sees x_{t-c..t+c}")
    p.add_argument("--heteroscedastic", action="store_true",
                   help="sequence models: the transition noise scale moves with the past")
    p.add_argument("--flow", action="store_true", default=None,
                   help="sequence models with d == n: exact likelihood, z_t = h(x_t) with an "
                        "invertible flow h instead of an encoder and a noisy decoder (see "
                        "--preset exact)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    p.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="K",
                   help="write a checkpoint (checkpoint.npz/.json in --out) every K steps; "
                        "Ctrl-C always stops at the end of a chunk and writes one")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue the checkpointed fit in RUN_DIR (to --steps total); the "
                        "run's own settings are used")


def settings_from_args(args):
    from ppl_ident.workflow import fit_settings

    # flags left unset keep the preset's value (or the FitSettings default)
    chosen = {k: v for k, v in (("engine", args.engine), ("elbo", args.elbo),
                                ("num_particles", args.particles), ("steps", args.steps),
                                ("learning_rate", args.lr), ("flow", args.flow))
              if v is not None}
    return fit_settings(
        args.preset, **chosen,
        model=args.model, latent_dim=args.latent_dim,
        batch_size=args.batch_size,
        restarts=args.restarts, width=args.width, depth=args.depth,
        prior=args.prior, noise_scale=args.noise_scale, noise_init=args.noise_init,
        whiten=not args.no_whiten, guide=args.guide,
        seed=args.seed, lag=args.lag, n_regimes=args.regimes, context=args.context,
        heteroscedastic=args.heteroscedastic,
    )


def run(args) -> int:
    from pathlib import Path

    from ppl_ident.data import load_dataset
    from ppl_ident.errors import InputError
    from ppl_ident.workflow import fit_model, resume_run

    if args.resume is not None:
        if args.out is not None and Path(args.out) != Path(args.resume):
            raise InputError("--resume writes into the run directory it resumes; drop --out.")
        changed = _changed_settings(args)
        if changed:
            raise InputError(
                f"--resume continues the run with its own settings; drop {', '.join(changed)} "
                "(only --steps, --checkpoint-every, --posterior-* and --no-progress apply), or "
                "start a new fit."
            )
        out = Path(args.resume)
        with _quiet_divergence():
            fitted = resume_run(out, args.steps, progress=not args.no_progress,
                                checkpoint_every=args.checkpoint_every, data_path=args.data)
        return _finish(out, fitted, args.data or _recorded_data(out), args)
    if args.data is None or args.out is None:
        raise InputError("fit needs a data file and --out RUN_DIR (or --resume RUN_DIR); e.g. "
                         "ppl-ident fit data.npz --out runs/ivae.")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise InputError(
            f"Output directory {out} already exists and is not empty; choose a new --out, or "
            "pass --force to write into it."
        )
    data, truth = load_dataset(args.data)
    args._truth = truth
    with _quiet_divergence():
        fitted = fit_model(data, settings_from_args(args), progress=not args.no_progress,
                           truth=truth, checkpoint_dir=out,
                           checkpoint_every=args.checkpoint_every, data_path=args.data)
    return _finish(out, fitted, args.data, args, data)


def _changed_settings(args) -> list[str]:
    from ppl_ident.workflow import FitSettings

    d = FitSettings()
    defaults = {"model": d.model, "latent_dim": None, "engine": None, "elbo": None,
                "particles": None, "preset": "fast", "batch_size": d.batch_size, "lr": None,
                "restarts": d.restarts, "width": d.width, "depth": d.depth, "prior": d.prior,
                "noise_scale": None, "noise_init": d.noise_init, "no_whiten": False,
                "guide": d.guide, "lag": d.lag, "regimes": d.n_regimes, "context": d.context,
                "heteroscedastic": False, "flow": None,
                "seed": d.seed, "force": False}
    return [f"--{k.replace('_', '-')}" for k, v in defaults.items() if getattr(args, k) != v]


@contextlib.contextmanager
def _quiet_divergence():
    """The CLI prints the divergence message itself (with exit code 3), not as a warning."""
    import warnings

    from ppl_ident.errors import DivergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        yield


def _finish(out, fitted, data_path, args, data=None) -> int:
    """Write the outputs; report; exit 0 (completed), 130 (interrupted) or 3 (diverged)."""
    import sys
    from pathlib import Path

    from ppl_ident.workflow import save_run

    data_path = None if data_path is None else str(Path(data_path).resolve())
    save_run(out, fitted, force=True, data_path=data_path)
    files = "config.json, params.npz, state.npz, losses.npz, metrics.json"
    reason = fitted.metrics.get("stop_reason", "completed")
    if args.posterior_draws and data is not None and data.x.ndim == 3 \
            and not reason.startswith("diverged"):
        from ppl_ident.reporting.inference_data import write_posterior
        from ppl_ident.reporting.sequences import sequence_inference_data

        write_posterior(out, sequence_inference_data(
            fitted, data, num_draws=args.posterior_draws, seed=args.seed,
            truth=getattr(args, "_truth", None)))
        files += ", posterior.nc"
    elif args.posterior_draws and not reason.startswith("diverged"):
        from ppl_ident.data import load_dataset
        from ppl_ident.reporting.inference_data import to_inference_data, write_posterior

        if data is None:
            data, _ = load_dataset(data_path)
        write_posterior(out, to_inference_data(fitted, data, num_draws=args.posterior_draws,
                                               max_obs=args.posterior_obs,
                                               seed=fitted.settings.seed))
        files += ", posterior.nc"
    m = fitted.metrics
    reason = m.get("stop_reason", "completed")
    line = f"{fitted.settings.model}: ELBO/obs {_fmt(m['elbo_per_obs'])}"
    if m.get("mcc") is not None:
        line += f", MCC {m['mcc']:.3f} (raw x {_fmt(m.get('mcc_raw_x'))})"
    if m.get("regime_accuracy") is not None:
        line += f", regime accuracy {m['regime_accuracy']:.3f}"
    line += (f", {m['num_steps']} steps ({m['num_skipped_steps']} skipped), "
             f"{m['run_time_s']:.1f}s run + {m['compile_time_s']:.1f}s compile")
    print(line)
    if (Path(out) / "checkpoint.npz").exists():
        files += ", checkpoint.npz, checkpoint.json"
    print(f"wrote {out}/ ({files})")
    if reason == "interrupted":
        print(f"ppl-ident fit: interrupted at step {m['num_steps']} of {m['target_steps']}; the "
              f"checkpoint and the outputs so far are in {out}/. Resume with:\n"
              f"  ppl-ident fit --resume {out}", file=sys.stderr)
        return 130
    if reason.startswith("diverged"):
        print(f"ppl-ident fit: error: {m['stop_message']} The outputs so far are in {out}/.",
              file=sys.stderr)
        return 3
    return 0


def _recorded_data(run):
    import json
    from pathlib import Path

    return json.loads((Path(run) / "config.json").read_text()).get("data")


def _fmt(value) -> str:
    import math

    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"
