"""Comparing inference algorithms with the harness: a small grid, its table and its plots.

What it shows
-------------
``ppl_ident.harness`` runs a grid of data settings x models x engines x seeds and scores each
run with the same metrics, so inference algorithms can be compared on equal terms:

1. ``make_grid`` builds the grid from keyword arguments (the CLI's ``ppl-ident compare``
   reads the same from a TOML file). Engines are named presets
   (``ppl_ident.harness.ENGINE_PRESETS``): ``svi`` is Trace_ELBO with the amortised diagonal
   Gaussian encoder, ``svi_fullcov`` the same with a full-covariance encoder,
   ``svi_meanfield`` TraceMeanField_ELBO (analytic KL), ``iwae`` the importance-weighted bound
   with 8 particles, ``autonormal`` a non-amortised guide.
2. ``run_grid(..., scheduler="none")`` runs every cell in this process (``"local"`` would
   start a Dask cluster); the seeds of a cell run as one vectorised program. Each finished
   cell is written at once to ``OUT/cells/``, so a re-run with ``--force`` skips finished
   cells.
3. ``write_results`` writes ``results.csv`` (one row per setting x model x engine x seed),
   ``summary.csv`` (mean and std over seeds) and ``results.nc`` (an xarray Dataset with dims
   ``setting, model, engine, seed``); ``ppl_ident.harness.plots.plot_all`` the plots.

What you should see
-------------------
* ``mcc_by_engine.png``: MCC per engine, one point per seed.
* ``time_vs_mcc.png``: run time against final MCC, and MCC along the fit (periodic
  evaluations, recorded only, never used to select).
* ``calibration_by_engine.png``: coverage of the true latents by each engine's 90 %
  intervals.
* ``mcc_vs_domains.png`` (only when ``--domains`` lists several values): MCC against the
  number of domains, with the ``2n+1`` line.
* A printed summary table: at the defaults (n = 2, 7 domains x 200 points, 1000 steps, 3
  seeds) both encoders identify the latents (MCC 0.947 +- 0.004 diagonal, 0.952 +- 0.002
  full-covariance); the full-covariance one has the higher ELBO (-2.59 against -2.61 per
  observation) and its 90 % intervals cover the true latents 0.96 of the time (diagonal:
  0.92). Every cell fits as ``ppl-ident fit`` does (its seed 0 is ``fit``'s fit). On the
  harder default setting (n = 5, 40 domains) the engines separate clearly:
  see "Example: the default grid" on the documentation's Benchmarks page
  (``docs/benchmarks/index.md``).

Run it::

    python examples/compare_algorithms.py                  # about 35 s on 2 CPU cores
    python examples/compare_algorithms.py --domains 3 5 9 --engines svi iwae svi_fullcov
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

import ppl_ident as pi
from ppl_ident.files import atomic_write_json, prepare_output_dir
from ppl_ident.harness import make_grid, run_grid, summarise, write_results
from ppl_ident.harness.plots import plot_all
from ppl_ident.harness.run import cell_path, read_cell

#: Metrics computed per run. ``ppl_ident.harness.METRICS`` has more (``psis_khat``,
#: ``heldout_loglik``, ``jacobian``); each adds several seconds of compilation per cell, so
#: the default leaves them out to stay under a minute (``--metrics`` adds them).
DEFAULT_METRICS = ["mcc", "elbo", "timing", "time_to_mcc", "calibration_90"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--latent-dim", type=int, default=2, help="n = d (default 2)")
    p.add_argument("--domains", type=int, nargs="+", default=[7],
                   help="numbers of domains (several values add mcc_vs_domains.png)")
    p.add_argument("--points-per-domain", type=int, default=200)
    p.add_argument("--engines", nargs="+", default=["svi", "svi_fullcov"],
                   help="engine presets (ppl_ident.harness.ENGINE_PRESETS)")
    p.add_argument("--seeds", type=int, default=3, help="fit seeds per cell (vectorised)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=250,
                   help="steps between the periodic MCC evaluations")
    p.add_argument("--metrics", nargs="+", default=DEFAULT_METRICS)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--out", default="examples_out/compare_algorithms")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty --out (finished cells are reused)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    grid = make_grid(
        data=dict(latent_dim=args.latent_dim, domains=args.domains,
                  points_per_domain=args.points_per_domain, mixing_layers=2,
                  data_seed=args.data_seed),
        models=("ivae",), engines=args.engines, seeds=args.seeds, steps=args.steps,
        eval_every=args.eval_every, metrics=args.metrics)
    out = prepare_output_dir(Path(args.out), force=args.force)
    atomic_write_json(out / "grid.json", grid.to_dict())

    table = run_grid(grid, out, scheduler="none")
    paths = write_results(out, table)
    traces = []
    for cell in grid.cells():
        rec = read_cell(cell_path(out, cell))
        if rec and rec["trace"]["step"]:
            traces.append((cell.engine, rec["trace"]["time_s"], rec["trace"]["mcc"]))
    plots = plot_all(table, out, traces)

    summary = summarise(table)
    cols = [c for c in ["setting", "engine", "seeds", "mcc_mean", "mcc_std", "elbo_per_obs_mean",
                        "calibration_90_mean", "heldout_loglik_mean", "run_time_s_mean",
                        "compile_time_s_mean"] if c in summary.columns]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    wall = time.perf_counter() - t_start
    atomic_write_json(out / "summary.json", {
        "cells": len(grid.cells()), "rows": len(table), "wall_time_s": wall,
        "summary": summary[cols].to_dict(orient="records")})
    names = sorted([Path(p).name for p in [*paths.values(), *plots]] + ["summary.json"])
    print(f"wrote {out}/: {', '.join(names)} ({wall:.0f} s)")
    return summary


if __name__ == "__main__":
    try:
        main()
    except pi.InputError as err:
        raise SystemExit(f"error: {err}") from None
