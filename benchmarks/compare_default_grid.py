"""The default comparison grid (benchmarks/grids/default.toml): which engine identifies best,
which is best calibrated, what each costs; and the grid's total wall time (target < 20 min on
2 cores).

Usage::

    python benchmarks/compare_default_grid.py [--quick] [--scheduler local|none|tcp://...]
                                              [--out-dir DIR] [--out FILE]

``--quick`` runs the same engines on 10 domains x 200 points for 300 steps, 2 seeds.
Results (table, plots, cell files) go to ``--out-dir``; a re-run resumes.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from _common import Emitter

HERE = Path(__file__).resolve().parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--scheduler", default="local")
    p.add_argument("--out-dir", default=None, help="default: runs/compare_default[_quick]")
    p.add_argument("--out", default=None, help="append the JSON lines to this file")
    args = p.parse_args(argv)

    from ppl_ident.harness import load_grid, make_grid, run_grid, summarise, write_results
    from ppl_ident.harness.plots import plot_all

    grid = load_grid(HERE / "grids" / "default.toml")
    if args.quick:
        d = grid.to_dict()
        grid = make_grid(data={**d["data"], "domains": 10, "points_per_domain": 200},
                         models=d["models"], engines={k: {**v, "steps": 300}
                                                      for k, v in d["engines"].items()},
                         seeds=(0, 1), eval_every=100, metrics=d["metrics"])
    out = Path(args.out_dir or f"runs/compare_default{'_quick' if args.quick else ''}")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    table = run_grid(grid, out, scheduler=args.scheduler)
    wall = time.perf_counter() - t0
    write_results(out, table)
    plot_all(table, out)
    summary = summarise(table)
    settings = dict(quick=args.quick, scheduler=args.scheduler, cells=len(grid.cells()),
                    data=grid.data, steps={k: v.get("steps") for k, v in grid.engines.items()})
    lines = [("grid_wall_time", wall, "s", None)]
    for _, row in summary.iterrows():
        for metric, unit in [("mcc_mean", "MCC"), ("mcc_std", "MCC"),
                             ("elbo_per_obs_mean", "nats/obs"),
                             ("psis_khat_mean_mean", "k-hat"), ("run_time_s_mean", "s"),
                             ("compile_time_s_mean", "s"), ("time_to_mcc90_s_mean", "s"),
                             ("calibration_90_mean", "coverage")]:
            if metric in row and not (isinstance(row[metric], float) and math.isnan(row[metric])):
                lines.append((f"{row['engine']}/{metric}", float(row[metric]), unit,
                              int(row["seeds"])))
    emit = Emitter("compare_default_grid", args.out)
    for metric, value, unit, seeds in lines:
        emit(metric, round(value, 4), unit, seeds if seeds is not None else len(grid.seeds),
             settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
