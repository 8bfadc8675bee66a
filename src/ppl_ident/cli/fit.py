"""``ppl-ident fit``: fit a model to a data file and write a run directory."""

from __future__ import annotations

from ppl_ident.cli._args import nonneg_int, positive_float, positive_int

NAME = "fit"
HELP = "Fit a model (iVAE, VAE, ...) to a .npz data file; write a run directory."


def add_arguments(p):
    from ppl_ident.inference import ELBOS, ENGINES
    from ppl_ident.models import MODELS, PRIORS
    from ppl_ident.workflow import FitSettings

    d = FitSettings()
    p.add_argument("data", help=".npz data file (keys x, u, optional z)")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--model", choices=sorted(MODELS), default=d.model)
    p.add_argument("--latent-dim", type=positive_int, default=None,
                   help="n (default: dimension of z in the file, else of x)")
    p.add_argument("--engine", choices=sorted(ENGINES), default=d.engine)
    p.add_argument("--elbo", choices=sorted(ELBOS), default=d.elbo)
    p.add_argument("--particles", type=positive_int, default=d.num_particles)
    p.add_argument("--steps", type=positive_int, default=d.steps)
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=positive_float, default=d.learning_rate)
    p.add_argument("--restarts", type=positive_int, default=d.restarts,
                   help="independent initialisations run together; best by ELBO is kept")
    p.add_argument("--width", type=positive_int, default=d.width)
    p.add_argument("--depth", type=positive_int, default=d.depth)
    p.add_argument("--prior", choices=PRIORS, default=d.prior)
    p.add_argument("--noise-scale", type=positive_float, default=None,
                   help="fix the observation noise scale (default: learn it)")
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
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")


def settings_from_args(args):
    from ppl_ident.workflow import FitSettings

    return FitSettings(
        model=args.model, latent_dim=args.latent_dim, engine=args.engine, elbo=args.elbo,
        num_particles=args.particles, steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.lr, restarts=args.restarts, width=args.width, depth=args.depth,
        prior=args.prior, noise_scale=args.noise_scale, noise_init=args.noise_init,
        whiten=not args.no_whiten,
        seed=args.seed,
    )


def run(args) -> int:
    from pathlib import Path

    from ppl_ident.data import load_dataset
    from ppl_ident.errors import InputError
    from ppl_ident.workflow import fit_model, save_run

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise InputError(
            f"Output directory {out} already exists and is not empty; choose a new --out, or "
            "pass --force to write into it."
        )
    data, truth = load_dataset(args.data)
    fitted = fit_model(data, settings_from_args(args), progress=not args.no_progress, truth=truth)
    save_run(out, fitted, force=True, data_path=args.data)
    files = "config.json, params.npz, state.npz, losses.npz, metrics.json"
    if args.posterior_draws:
        from ppl_ident.reporting.inference_data import to_inference_data, write_posterior

        write_posterior(out, to_inference_data(fitted, data, num_draws=args.posterior_draws,
                                               max_obs=args.posterior_obs, seed=args.seed))
        files += ", posterior.nc"
    m = fitted.metrics
    line = f"{fitted.settings.model}: ELBO/obs {m['elbo_per_obs']:.3f}"
    if "mcc" in m:
        line += f", MCC {m['mcc']:.3f} (raw x {m['mcc_raw_x']:.3f})"
    line += f", {m['run_time_s']:.1f}s run + {m['compile_time_s']:.1f}s compile"
    print(line)
    print(f"wrote {out}/ ({files})")
    return 0
