"""Jacobian-structure scores of iVAE vs VAE, and whether each agrees with MCC in direction.

On the default simulator setting (n = d = 5, 40 domains x 1000 points, 3 mixing layers) fit
the identifiable iVAE and the non-identifiable VAE with the package's default settings for
each seed, then score the learned-to-true Jacobian along both routes (encoder after the true
mixing; true inverse after the learned decoder): Amari distance and off-matching mass (lower
is better), agreement with the global permutation (higher is better). Each seed is a full
replicate: seed s draws the data and initialises the fit.

Reported per run, then per model (mean over seeds), and for each score whether it orders
iVAE vs VAE the same way as MCC: per seed ("direction_agrees_share") and across all runs
(Spearman correlation with MCC; negative for lower-is-better scores means agreement).

Usage::

    python benchmarks/identifiability_scores.py [--quick] [--seeds 0 1 2] [--out FILE]

``--quick`` fits 500 steps on 10 domains x 200 points (a smoke test of the script; the
numbers are not the benchmark's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

import ppl_ident
from ppl_ident.data import simulate_domains
from ppl_ident.errors import IdentifiabilityWarning
from ppl_ident.workflow import fit_model

SCORES = {  # name -> +1 if higher is better, -1 if lower is better
    "amari": -1, "off_mass": -1, "agreement": +1,
}


def _version() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"{ppl_ident.__version__}+{commit}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="override the fit steps")
    parser.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = parser.parse_args(argv)
    data_over = {"n_domains": 10, "n_per_domain": 200} if args.quick else {}
    fit_over = {"steps": args.steps or 500} if args.quick else (
        {"steps": args.steps} if args.steps else {})
    settings = {"data": {"n_latent": 5, "data_dim": 5, "n_domains": 40, "n_per_domain": 1000,
                         "n_layers": 3, **data_over},
                "fit": {"defaults": True, **fit_over}, "jacobian_points": 256}
    base = {"seeds": args.seeds, "settings": settings, "machine": "2-core CPU",
            "version": _version()}
    lines, runs = [], []

    def emit(benchmark, metric, value, unit, **extra):
        line = {"benchmark": benchmark, "metric": metric, "value": value, "unit": unit, **base,
                **extra}
        lines.append(line)
        print(json.dumps(line), flush=True)

    for seed in args.seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IdentifiabilityWarning)
            data, truth = simulate_domains(seed, **data_over)
        for model in ("ivae", "vae"):
            t0 = time.perf_counter()
            fitted = fit_model(data, model=model, seed=seed, truth=truth, **fit_over)
            m = fitted.metrics
            row = {"model": model, "seed": seed, "mcc": m["mcc"],
                   "wall_s": time.perf_counter() - t0}
            for route in ("encoder", "decoder"):
                for score in SCORES:
                    row[f"{route}_{score}"] = m["jacobian"][route][score]
                row[f"{route}_verdict"] = m["jacobian"][route]["verdict"]
            runs.append(row)
            for key, value in row.items():
                if key not in ("model", "seed"):
                    emit("identifiability_scores/run", key, value,
                         "s" if key == "wall_s" else "score", model=model, run_seed=seed)

    by = {(r["model"], r["seed"]): r for r in runs}
    keys = ["mcc"] + [f"{route}_{s}" for route in ("encoder", "decoder") for s in SCORES]
    for model in ("ivae", "vae"):
        for key in keys:
            vals = [by[(model, s)][key] for s in args.seeds]
            emit("identifiability_scores/mean", key, float(np.mean(vals)), "score", model=model,
                 std=float(np.std(vals)))
    mcc_all = [r["mcc"] for r in runs]
    for key in keys[1:]:
        sign = SCORES[key.split("_", 1)[1]]
        agree = [np.sign(by[("ivae", s)]["mcc"] - by[("vae", s)]["mcc"])
                 == np.sign(sign * (by[("ivae", s)][key] - by[("vae", s)][key]))
                 for s in args.seeds]
        emit("identifiability_scores/direction", f"{key}_direction_agrees_share",
             float(np.mean(agree)), "share")
        ivae_better = [sign * (by[("ivae", s)][key] - by[("vae", s)][key]) > 0 for s in args.seeds]
        emit("identifiability_scores/direction", f"{key}_ivae_better_share",
             float(np.mean(ivae_better)), "share")
        rho = spearmanr(mcc_all, [r[key] for r in runs]).statistic
        emit("identifiability_scores/direction", f"{key}_spearman_with_mcc", float(rho), "rho")
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("".join(json.dumps(line) + "\n" for line in lines))


if __name__ == "__main__":
    main()
