"""``ppl-ident encode``: every row's recovered latents (mean, sd, 90% interval) to a file."""

from __future__ import annotations

from ppl_ident.cli._args import add_table_arguments, positive_int, table_columns

NAME = "encode"
# no percent sign: argparse %-formats help texts
HELP = ("Write the recovered latents of every row of a data file (posterior mean, sd, and 5th "
        "and 95th percentiles of each latent under the run's fitted guide) to a CSV, Parquet or "
        ".npz file.")


def add_arguments(p):
    p.add_argument("run", help="run directory written by `ppl-ident fit`")
    p.add_argument("data", nargs="?", default=None,
                   help="data to encode (.npz, .npy or zarr directory, .csv, .parquet; "
                        "default: the fitted one); "
                        "a table is read with the column mapping the run recorded")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="output file; its suffix picks the format: .csv, .parquet (columns u, "
                        "z0_mean, z0_sd, z0_q05, z0_q95, ...) or .npz (arrays z_mean, z_sd, "
                        "z_q05, z_q95, u)")
    p.add_argument("--chunk-size", type=positive_int, default=4096, metavar="ROWS",
                   help="rows encoded at a time (bounds the memory)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    add_table_arguments(p, true_latents=False)


def run(args) -> int:
    from pathlib import Path

    import numpy as np

    from ppl_ident.errors import InputError
    from ppl_ident.workflow import LATENT_FORMATS, load_run, load_run_data, save_latents

    out = Path(args.out)
    # refuse before loading anything: a wrong name or an existing file costs nothing
    if out.suffix.lower() not in LATENT_FORMATS:
        raise InputError(f"Cannot tell the format of --out {out} from its suffix; name it "
                         f"with one of {', '.join(LATENT_FORMATS)}.")
    if out.exists() and not args.force:
        raise InputError(f"{out} already exists; choose another --out, or pass --force to "
                         "replace it.")
    run_dir = Path(args.run)
    fitted = load_run(run_dir)
    data, _, data_path, columns = load_run_data(run_dir, args.data, table_columns(args),
                                                true_latents=False)
    written = save_latents(out, fitted, data, chunk_size=args.chunk_size, columns=columns,
                           force=args.force)
    rows = int(np.prod(data.x.shape[:-1]))
    n_latent = fitted.spec.n_latent
    print(f"encoded {rows} rows of {data_path} ({n_latent} latents: mean, sd, 5% and 95% "
          f"quantiles) -> {written}")
    return 0
