"""``ppl-ident compare``: run a grid of settings x models x engines x seeds; write a table."""

from __future__ import annotations

from ppl_ident.cli._args import (add_table_arguments, nonneg_float, nonneg_int, positive_int,
                                 table_columns)

NAME = "compare"
HELP = ("Compare inference engines over a grid of data settings (i.i.d. or sequences), models "
        "and seeds, every cell fitted as `fit` fits (seeds vectorised, cells in-process or on "
        "Dask); write a tidy table (CSV, NetCDF) and plots.")


def add_arguments(p):
    p.add_argument("grid", nargs="?", default=None,
                   help="grid TOML file (optional: the flags below build or override a grid)")
    p.add_argument("--out", required=True,
                   help="output directory; re-running into it skips finished cells")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="compare on your own data file (.npz, or a .csv / .parquet table read "
                        "with --u-col / --x-cols / --z-cols) instead of simulated settings; "
                        "i.i.d. data: 20%% of each domain's rows are held out; MCC needs z in "
                        "the file")
    p.add_argument("--scheduler", default="local",
                   help="'local' (embedded Dask LocalCluster, default), 'none' (in-process), "
                        "or a Dask scheduler address tcp://HOST:PORT")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="workers of the embedded cluster (default: min(cores, cells))")
    g = p.add_argument_group("grid axes (override the TOML file; lists give a product; default: "
                             "the TOML file's, else the default grid's)")
    g.add_argument("--engines", nargs="+", help="engine presets, e.g. svi iwae svi_fullcov "
                   "default (what `fit` runs: the exact flow when n = d)")
    g.add_argument("--models", nargs="+", help="models of the data's family, e.g. ivae vae "
                   "(i.i.d. data) or tivae stationary (sequences; default: the family's "
                   "default model)")
    g.add_argument("--seeds", type=positive_int, help="number of seeds 0..k-1")
    g.add_argument("--steps", type=positive_int, help="optimisation steps of every engine")
    g.add_argument("--eval-every", type=positive_int, help="steps between MCC evaluations")
    g.add_argument("--metrics", nargs="+", help="metric names (default: all)")
    g.add_argument("--latent-dim", type=positive_int, nargs="+", help="latent dimensions n")
    g.add_argument("--data-dim", type=positive_int, nargs="+",
                   help="data dimensions d (default: d = n)")
    g.add_argument("--domains", type=positive_int, nargs="+", help="numbers of domains")
    g.add_argument("--points-per-domain", type=positive_int, nargs="+",
                   help="observations per domain")
    g.add_argument("--mixing-layers", type=positive_int, nargs="+",
                   help="layers of the mixing MLP")
    g.add_argument("--source", nargs="+", help="latent distributions (gaussian, laplace, "
                   "student_t)")
    g.add_argument("--noise-std", type=nonneg_float, nargs="+",
                   help="observation noise standard deviations")
    g.add_argument("--data-seed", type=nonneg_int, nargs="+", help="seeds of the simulated data")
    g.add_argument("--generator", nargs="+",
                   help="simulator of the data settings: domains (i.i.d., default), or "
                        "segments, dynamics, regimes (sequences; their settings as in "
                        "`simulate`, more in a grid file's [data])")
    g.add_argument("--sequences", type=positive_int, nargs="+",
                   help="sequence generators: number of sequences B")
    g.add_argument("--length", type=positive_int, nargs="+",
                   help="dynamics, regimes: steps T per sequence")
    g.add_argument("--regimes", type=positive_int, nargs="+",
                   help="regimes: number of hidden regimes K")
    add_table_arguments(p)
    p.add_argument("--jax-cache", default=None,
                   help="persistent JAX compilation cache directory (shared with local "
                        "workers): cells and re-runs with the same shapes skip compiling")
    p.add_argument("--no-plots", action="store_true", help="write the tables only, no PNGs")
    p.add_argument("--quiet", action="store_true", help="no per-cell progress lines")


_DATA_FLAGS = ["generator", "latent_dim", "data_dim", "domains", "points_per_domain",
               "mixing_layers", "source", "noise_std", "data_seed", "sequences", "length",
               "regimes"]


def grid_from_args(args):
    from ppl_ident.errors import InputError
    from ppl_ident.harness.grid import load_grid, make_grid

    base = load_grid(args.grid).to_dict() if args.grid else make_grid().to_dict()
    data = dict(base["data"])
    cols = table_columns(args)
    if args.data is not None:
        given = [f"--{k.replace('_', '-')}" for k in _DATA_FLAGS
                 if getattr(args, k) is not None and k != "latent_dim"]
        if given:
            raise InputError(f"{', '.join(given)} set{'s' if len(given) == 1 else ''} the "
                             "simulator; with --data FILE the data are yours: drop "
                             f"{'it' if len(given) == 1 else 'them'}.")
        if args.latent_dim is not None and len(args.latent_dim) > 1:
            raise InputError("With --data FILE, give one --latent-dim.")
        data = {"file": args.data, "columns": None if cols is None else cols.to_dict(),
                "latent_dim": None if args.latent_dim is None else args.latent_dim[0]}
    elif cols is not None:
        raise InputError("--u-col, --x-cols and --z-cols map the columns of a --data table; "
                         "add --data FILE or drop them.")
    changed = args.data is None and args.generator is not None and \
        args.generator != _as_list(data.get("generator"))
    if changed:
        data = {}  # another simulator: the grid's settings were those of its own
    for k in _DATA_FLAGS if args.data is None else ():
        v = getattr(args, k)
        if v is not None:
            data[k] = v[0] if len(v) == 1 else list(v)
    engines = base["engines"]
    if args.engines:
        engines = {name: engines.get(name) if args.grid else None for name in args.engines}
    if args.steps:
        engines = {name: {**(e or {}), "steps": args.steps} for name, e in
                   (engines.items() if isinstance(engines, dict) else
                    [(n, None) for n in engines])}
    # without --models: the grid file's, else the default model of the data's family
    models = args.models or (base["models"] if args.grid and not changed else None)
    return make_grid(data=data, models=None if models is None else tuple(models),
                     engines=engines,
                     seeds=args.seeds if args.seeds else base["seeds"],
                     eval_every=args.eval_every or base["eval_every"],
                     metrics=args.metrics or base["metrics"])


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def run(args) -> int:
    from pathlib import Path

    from ppl_ident.files import atomic_write_json
    from ppl_ident.harness import run_grid, write_results
    from ppl_ident.harness.plots import plot_all
    from ppl_ident.harness.run import cell_path, read_cell
    from ppl_ident.harness.table import summarise

    if args.jax_cache:
        import os

        # Before any jax import in this process; spawned workers inherit the variable.
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(Path(args.jax_cache).resolve())
        import jax

        jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    grid = grid_from_args(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        from ppl_ident.errors import InputError

        raise InputError(f"--out {out} is a file; choose a directory.")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "grid.json", grid.to_dict())
    table = run_grid(grid, out, scheduler=args.scheduler, n_workers=args.workers,
                     progress=not args.quiet)
    paths = write_results(out, table)
    if not args.no_plots:
        traces = []
        for cell in grid.cells():
            rec = read_cell(cell_path(out, cell))
            if rec and rec["trace"]["step"]:
                tr = rec["trace"]
                traces.append((cell.engine, tr["time_s"], tr["mcc"]))
        paths.update({Path(p).name: p for p in plot_all(table, out, traces)})
    summary = summarise(table)
    cols = [c for c in ["setting", "model", "engine", "seeds", "mcc_mean", "mcc_std",
                        "elbo_per_obs_mean", "psis_khat_mean_mean", "run_time_s_mean",
                        "compile_time_s_mean"] if c in summary.columns]
    with __import__("pandas").option_context("display.width", 200, "display.max_columns", 20):
        print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"wrote {out}/: " + ", ".join(sorted(Path(p).name for p in paths.values())))
    return 0
