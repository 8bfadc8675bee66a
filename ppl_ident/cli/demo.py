"""``ppl-ident demo``: simulate the default setting, fit iVAE and VAE, print a table."""

from __future__ import annotations

from ppl_ident.cli._args import nonneg_int, positive_int

NAME = "demo"
DEFAULT_OUT = "ppl_ident_demo"
HELP = ("Simulate the default data, fit the identifiable iVAE and the non-identifiable VAE, "
        "and compare how well each recovers the true latents.")


def add_arguments(p):
    p.add_argument("--out", default=None,
                   help=f"output directory (default: {DEFAULT_OUT}, or the first free "
                        f"{DEFAULT_OUT}-2, -3, ... when it holds an earlier demo); a given "
                        "--out must be new or empty unless --force")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="seed of the simulated data and of both fits")
    p.add_argument("--domains", type=positive_int, default=None,
                   help="number of domains (default: the default setting's, 40)")
    p.add_argument("--points-per-domain", type=positive_int, default=None,
                   help="observations per domain (default: 1000)")
    p.add_argument("--latent-dim", type=positive_int, default=None,
                   help="n = d, latent and data dimension (default: 5)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="optimisation steps of each fit (default: fit's, 5000)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("--no-report", action="store_true", help="skip the iVAE run's report.html")
    p.add_argument("--force", action="store_true",
                   help=f"write into a non-empty --out (without --out: into {DEFAULT_OUT} "
                        "itself)")


def run(args) -> int:
    from pathlib import Path

    from ppl_ident.data import SimulationConfig, save_dataset, simulate_domains
    from ppl_ident.files import prepare_output_dir
    from ppl_ident.workflow import FitSettings, fit_model, save_run

    if args.out is None and not args.force:
        out = prepare_output_dir(free_directory(Path(DEFAULT_OUT)))
        if out.name != DEFAULT_OUT:
            print(f"{DEFAULT_OUT}/ holds an earlier demo; writing this one to {out}/")
    else:
        out = prepare_output_dir(Path(args.out or DEFAULT_OUT), force=args.force)
    cfg = SimulationConfig()
    over = {k: v for k, v in dict(n_domains=args.domains, n_per_domain=args.points_per_domain,
                                  n_latent=args.latent_dim,
                                  data_dim=args.latent_dim).items() if v is not None}
    data, truth = simulate_domains(args.seed, cfg, **over)
    save_dataset(out / "data.npz", data, truth, overwrite=True)
    settings = FitSettings(seed=args.seed)
    if args.steps:
        settings = settings._replace(steps=args.steps)
    rows = []
    for model in ("ivae", "vae"):
        fitted = fit_model(data, settings._replace(model=model), progress=not args.no_progress)
        save_run(out / model, fitted, force=True, data_path=str(out / "data.npz"))
        rows.append((model, fitted.metrics))
    print(f"\n{'model':<6} {'MCC':>6} {'ELBO/obs':>9} {'run s':>6} {'compile s':>9}")
    for model, m in rows:
        print(f"{model:<6} {m['mcc']:>6.3f} {m['elbo_per_obs']:>9.3f} {m['run_time_s']:>6.1f} "
              f"{m['compile_time_s']:>9.1f}")
    print(f"{'raw x':<6} {rows[0][1]['mcc_raw_x']:>6.3f}")
    print(f"\noutputs in {out}/: data.npz, ivae/, vae/")
    if not args.no_report:
        from ppl_ident.data.simulate import resample_domains
        from ppl_ident.reporting.report import build_report

        # fresh draws from the same domains and mixing: held-out data for log p(x|u)
        held = resample_domains(truth, 100, seed=args.seed + 1)
        save_dataset(out / "heldout.npz", held, truth, overwrite=True)
        res = build_report(out / "ivae", dataset=data, heldout=held, seed=args.seed)
        print(f"report: {res.html}")
    return 0


def free_directory(base):
    """``base`` if it is absent or empty, else the first absent or empty ``base-2``,
    ``base-3``, ...: a second ``ppl-ident demo`` never touches the first one's files.

    Examples
    --------
    >>> free_directory(Path("ppl_ident_demo"))                       # doctest: +SKIP
    PosixPath('ppl_ident_demo-2')
    """
    candidate, k = base, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        k += 1
        candidate = base.with_name(f"{base.name}-{k}")
    return candidate
