"""Draw the time-to-MCC figure from ``time_to_mcc.py`` JSON lines.

    python benchmarks/plot_time_to_mcc.py results.jsonl --out benchmarks/results/time_to_mcc.png

One line per configuration (its ``label``): the median over seeds of MCC against the median
run time at each evaluation, with the range over seeds shaded.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+", help="JSON-lines files written by time_to_mcc.py")
    p.add_argument("--out", required=True, help="the PNG to write")
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    curves = defaultdict(list)
    for path in args.inputs:
        with open(path) as fh:
            for line in fh:
                row = json.loads(line)
                if row.get("benchmark") == "time_to_mcc" and row["metric"] == "curve":
                    curves[row["settings"]["label"]].append(row["value"])
    fig, ax = plt.subplots(figsize=(7.0, 4.4), dpi=120)
    for label, runs in curves.items():
        n = min(len(r["mcc"]) for r in runs)
        t = np.median([r["run_s"][:n] for r in runs], axis=0)
        m = np.array([r["mcc"][:n] for r in runs])
        line, = ax.plot(t, np.median(m, axis=0), marker="o", ms=3,
                        label=f"{label} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        ax.fill_between(t, m.min(0), m.max(0), color=line.get_color(), alpha=0.15)
    ax.axhline(0.95, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("run time (s, compilation and evaluations excluded)")
    ax.set_ylabel("MCC (median over seeds; band: min-max)")
    ax.set_title("Time to MCC on the default setting (n = d = 5, 40 domains x 1000)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
