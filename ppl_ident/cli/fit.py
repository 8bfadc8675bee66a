"""``ppl-ident fit``: fit a model to a data file and write a run directory."""

from __future__ import annotations

import contextlib

from ppl_ident.cli._args import (add_table_arguments, nonneg_int, positive_float, positive_int,
                                 table_columns)

NAME = "fit"
HELP = ("Fit a model (iVAE, VAE; sequences: tivae, regime, stationary) to a data file (.npz, "
        "or a .csv / .parquet table); write a run directory.")


def add_arguments(p):
    from ppl_ident.settings import add_fit_arguments

    p.add_argument("data", nargs="?", default=None,
                   help="data: .npz (keys x, u, optional z), a directory of x.npy, u.npy "
                        "(z.npy) read memory-mapped, a zarr group, or a .csv / .parquet table "
                        "(see --u-col); with --resume, only if it moved")
    p.add_argument("--out", default=None, help="run directory to create (required unless --resume)")
    # one flag per fit setting, from the settings table (ppl_ident.settings.SETTINGS)
    add_fit_arguments(p, {"int": positive_int, "nonneg_int": nonneg_int,
                          "float": positive_float})
    p.add_argument("--posterior-draws", type=nonneg_int, default=100,
                   help="guide draws of z per observation saved in posterior.nc, as 4 chains "
                        "(rounded up to fill them; 0: no file)")
    p.add_argument("--posterior-obs", type=positive_int, default=300,
                   help="observations (a random subset) kept in posterior.nc")
    add_table_arguments(p)
    p.add_argument("--verdict", action="store_true",
                   help="after the fit, test identifiability against 2 refits with u permuted "
                        "across rows (3 seeds each; about 2-3x the fit's time) and print the "
                        "verdict; check and report reuse it (metrics.json)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    p.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="K",
                   help="write a checkpoint (checkpoint.npz/.json in --out) every K steps; "
                        "Ctrl-C always stops at the end of a chunk and writes one")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue the checkpointed fit in RUN_DIR (to --steps total); the "
                        "run's own settings are used")


def run(args) -> int:
    from pathlib import Path

    from ppl_ident.data import read_data
    from ppl_ident.errors import InputError
    from ppl_ident.settings import changed_settings, settings_from_args
    from ppl_ident.workflow import fit_model, load_run_data, resume_run

    if args.resume is not None:
        if args.out is not None and Path(args.out) != Path(args.resume):
            raise InputError("--resume writes into the run directory it resumes; drop --out.")
        # every setting flag but --steps (the total to reach) belongs to the run
        changed = [f for f in changed_settings(args) if f != "--steps"] + \
            (["--force"] if args.force else []) + \
            [f for f, v in (("--u-col", args.u_col), ("--u-kind", args.u_kind),
                            ("--x-cols", args.x_cols),
                            ("--z-cols", args.z_cols), ("--seq-col", args.seq_col),
                            ("--time-col", args.time_col)) if v is not None]
        if changed:
            raise InputError(
                f"--resume continues the run with its own settings; drop {', '.join(changed)} "
                "(only --steps, --checkpoint-every, --posterior-* and --no-progress apply), or "
                "start a new fit."
            )
        out = Path(args.resume)
        try:
            with _quiet_divergence():
                fitted = resume_run(out, args.steps, progress=not args.no_progress,
                                    checkpoint_every=args.checkpoint_every,
                                    data_path=args.data)
        except KeyboardInterrupt:
            return _aborted(out)
        data, truth, data_path, columns = load_run_data(out, args.data)
        _test_verdict(fitted, data, args)
        return _finish(out, fitted, data_path, args, data, truth, columns)
    if args.data is None or args.out is None:
        raise InputError("fit needs a data file and --out RUN_DIR (or --resume RUN_DIR); e.g. "
                         "ppl-ident fit data.npz --out runs/ivae.")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise InputError(
            f"Output directory {out} already exists and is not empty; choose a new --out, or "
            "pass --force to write into it."
        )
    data, truth, columns = read_data(args.data, table_columns(args))
    settings = settings_from_args(args)
    print(f"fitting {_inputs(data, settings, columns)}", flush=True)
    try:
        with _quiet_divergence():
            fitted = fit_model(data, settings, progress=not args.no_progress,
                               truth=truth, checkpoint_dir=out,
                               checkpoint_every=args.checkpoint_every, data_path=args.data,
                               columns=columns)
    except KeyboardInterrupt:
        return _aborted(out)
    _test_verdict(fitted, data, args)
    return _finish(out, fitted, args.data, args, data, truth, columns)


def _inputs(data, settings, columns) -> str:
    """The line that says what the fit reads (x columns, u and its kind, n), with the
    settings checked as the fit checks them (their warnings are the fit's to print)."""
    import warnings

    from ppl_ident.workflow import checked_settings, input_line, input_summary

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        family, s = checked_settings(data, settings)
    u, labels = family.prepare_inputs(data.u, s.model)
    return input_line(input_summary(
        data_dim=data.x.shape[-1], latent_dim=s.latent_dim,
        n_domains=None if labels is None else len(labels),
        continuous_u=u is not None and labels is None, columns=columns))


def _test_verdict(fitted, data, args) -> None:
    """With --verdict, the permuted-label test of a completed fit, into its metrics."""
    if not getattr(args, "verdict", False) or \
            fitted.metrics.get("stop_reason", "completed") != "completed":
        return
    from ppl_ident.evidence import identifiability_evidence

    print("testing identifiability against refits with permuted labels ...", flush=True)
    fitted.metrics["evidence"] = identifiability_evidence(fitted, data,
                                                          progress=not args.no_progress)


@contextlib.contextmanager
def _quiet_divergence():
    """The CLI prints the divergence message itself (with exit code 3), not as a warning."""
    import warnings

    from ppl_ident.errors import DivergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        yield


def _aborted(out) -> int:
    """A second Ctrl-C aborted the fit at once (the first one asks it to stop at the end of
    the chunk): say which checkpoint is kept and how to resume it; exit code 130."""
    import sys
    from pathlib import Path

    from ppl_ident.inference.checkpoint import has_checkpoint
    from ppl_ident.workflow import interrupted_message

    if has_checkpoint(Path(out)):
        text = interrupted_message(out)
    else:
        text = (f"The fit was interrupted before its first checkpoint, so nothing in {out} can "
                "be resumed; start it again (--checkpoint-every K keeps progress).")
    print(f"ppl-ident fit: {text}", file=sys.stderr)
    return 130


def _finish(out, fitted, data_path, args, data, truth, columns) -> int:
    """Write the outputs; report; exit 0 (completed), 130 (interrupted) or 3 (diverged)."""
    import sys
    from pathlib import Path

    from ppl_ident.workflow import save_run

    data_path = None if data_path is None else str(Path(data_path).resolve())
    # posterior.nc too (save_run skips it for a diverged fit or --posterior-draws 0)
    save_run(out, fitted, data, force=True, data_path=data_path, columns=columns, truth=truth,
             posterior_draws=args.posterior_draws, posterior_obs=args.posterior_obs)
    files = "config.json, params.npz, state.npz, losses.npz, metrics.json"
    reason = fitted.metrics.get("stop_reason", "completed")
    if args.posterior_draws and not reason.startswith("diverged"):
        files += ", posterior.nc"
    m = fitted.metrics
    reason = m.get("stop_reason", "completed")
    line = f"{fitted.settings.model}: ELBO/obs {_fmt(m['elbo_per_obs'])}"
    if m.get("mcc") is not None:
        line += f", MCC {m['mcc']:.3f} (raw x {_fmt(m.get('mcc_raw_x'))})"
    if "seed_agreement" in m:
        line += (f", seed agreement {_fmt(m['seed_agreement'])} over {fitted.settings.seeds} "
                 "seeds (mean pairwise MCC)")
    if m.get("regime_accuracy") is not None:
        line += f", regime accuracy {m['regime_accuracy']:.3f}"
    line += (f", {m['num_steps']} steps ({m['num_skipped_steps']} skipped), "
             f"{m['run_time_s']:.1f}s run + {m['compile_time_s']:.1f}s compile")
    print(line)
    collapse = (m.get("latent_activity") or {}).get("message")
    if collapse:
        print(f"warning: {collapse}", file=sys.stderr)
    noise = m.get("observation_noise")
    if noise:
        print(f"{'warning: ' if noise['in_doubt'] else ''}observation noise: {noise['message']}",
              file=sys.stderr if noise["in_doubt"] else sys.stdout)
    evidence = m.get("evidence")
    if evidence is not None:
        v = evidence["verdict"]
        print(f"verdict: {v['word'].upper()}: {v['reason']}")
        if v.get("next"):
            print(f"  next: {v['next']}")
    elif reason == "completed" and _testable(fitted):
        print(f"verdict: not tested yet: `ppl-ident check {out}` tests identifiability against "
              "refits with permuted labels (or fit with --verdict)")
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


def _testable(fitted) -> bool:
    from ppl_ident.families import family_of

    return family_of(fitted.spec.name).permutation_null


def _fmt(value) -> str:
    import math

    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"
