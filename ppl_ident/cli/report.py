"""``ppl-ident report``: figures and a self-contained HTML report for a run directory."""

from __future__ import annotations

from ppl_ident.cli._args import nonneg_int, positive_int

NAME = "report"
HELP = ("Write PNG figures, report.json and a self-contained report.html (posterior "
        "uncertainty, calibration, NUTS reference, posterior predictive check; sequence runs: "
        "latent trajectories, interval coverage, regime posterior) in a run directory.")


def add_arguments(p):
    p.add_argument("run_dir", help="run directory written by `ppl-ident fit`")
    p.add_argument("--data", default=None, help="data file (default: the one in config.json)")
    p.add_argument("--heldout", default=None,
                   help=".npz data not used for fitting, for the marginal likelihood "
                        "(i.i.d. runs only)")
    p.add_argument("--nuts-obs", type=nonneg_int, default=6,
                   help="observations sampled by the NUTS reference posterior (0: skip; "
                        "i.i.d. runs only)")
    p.add_argument("--nuts-warmup", type=positive_int, default=300,
                   help="warm-up (adaptation) steps of each NUTS chain")
    p.add_argument("--nuts-samples", type=positive_int, default=300,
                   help="draws kept per NUTS chain")
    p.add_argument("--nuts-chains", type=positive_int, default=4,
                   help="independent NUTS chains (>= 2, for R-hat)")
    p.add_argument("--marginal-samples", type=positive_int, default=100,
                   help="importance samples K per observation")
    p.add_argument("--calibration-draws", type=positive_int, default=400,
                   help="guide draws per observation for intervals (fresh draws are taken "
                        "when posterior.nc holds fewer)")
    p.add_argument("--check-points", type=nonneg_int, default=256,
                   help="when the run has no check (ppl-ident check RUN --out RUN), run it on "
                        "this many rows and write it into RUN/check for the identifiability "
                        "sections (0: skip)")
    p.add_argument("--null-fits", type=nonneg_int, default=2,
                   help="when the run's verdict has not been tested (fit --verdict, ppl-ident "
                        "check), test it against this many refits with u permuted across rows "
                        "(3 seeds each; i.i.d. runs) for the report's first lines (0: skip)")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="seed of the guide draws, NUTS and the importance samples")


def run(args) -> int:
    from pathlib import Path

    from ppl_ident.errors import InputError
    from ppl_ident.reporting.report import build_report

    if not Path(args.run_dir).is_dir():
        raise InputError(f"{args.run_dir} is not a directory; pass the --out of `ppl-ident fit`.")
    if args.nuts_obs and args.nuts_chains < 2:
        raise InputError("--nuts-chains must be >= 2 so that R-hat means something.")
    import time

    t0 = time.perf_counter()
    res = build_report(args.run_dir, dataset=args.data, heldout=args.heldout,
                       nuts_obs=args.nuts_obs, nuts_warmup=args.nuts_warmup,
                       nuts_samples=args.nuts_samples, nuts_chains=args.nuts_chains,
                       marginal_samples=args.marginal_samples,
                       calibration_draws=args.calibration_draws, seed=args.seed,
                       check_points=args.check_points, null_fits=args.null_fits)
    # the whole build, the check and the verdict's refits included (timings: the page only)
    print(f"wrote {res.html} ({len(res.sections)} sections, "
          f"{time.perf_counter() - t0:.1f}s)")
    flagged = (res.numbers.get("ppc") or {}).get("message")
    if flagged:
        print(f"posterior predictive check: {flagged}")
    return 0
