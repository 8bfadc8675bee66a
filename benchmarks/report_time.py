"""How long does `ppl-ident report` take on the default run? (Target: under a minute.)

Simulates the default setting, fits the default iVAE (or reuses --run-dir), writes
posterior.nc as `ppl-ident fit` does, then times `build_report` end to end in this process
(so JAX compilation of the posterior, NUTS and marginal-likelihood programs is included, as a
user running `ppl-ident report` pays it) and per step. Also prints the numbers the report
measures (guide coverage at 90 %, guide/NUTS width ratio, held-out log p(x|u)).

    python benchmarks/report_time.py --quick            # tiny setting, ~1 min on 2 cores
    python benchmarks/report_time.py --out results.jsonl
    python benchmarks/report_time.py --run-dir runs/ivae  # time the report of an existing run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")


def _version():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        rev = ""
    from ppl_ident import __version__

    return f"{__version__}+{rev}" if rev else __version__


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny setting (smoke test)")
    p.add_argument("--run-dir", default=None, help="report an existing run instead of fitting")
    p.add_argument("--out", default=None, help="append JSON lines to this file")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from ppl_ident.data import save_dataset, simulate_domains
    from ppl_ident.data.simulate import resample_domains
    from ppl_ident.reporting.inference_data import to_inference_data, write_posterior
    from ppl_ident.reporting.report import build_report
    from ppl_ident.workflow import fit_model, save_run

    sim = dict(n_latent=2, data_dim=2, n_domains=5, n_per_domain=100, n_layers=2) \
        if args.quick else {}
    fit_over = dict(steps=300, width=16, depth=1, batch_size=64) if args.quick else {}
    tmp = tempfile.mkdtemp(prefix="report_time_")
    heldout = None
    if args.run_dir is None:
        data, truth = simulate_domains(args.seed, **sim)
        save_dataset(Path(tmp) / "data.npz", data, truth)
        heldout = resample_domains(truth, 100, seed=args.seed + 1)
        t0 = time.perf_counter()
        fitted = fit_model(data, seed=args.seed, **fit_over)
        fit_s = time.perf_counter() - t0
        run = save_run(Path(tmp) / "run", fitted, data_path=str(Path(tmp) / "data.npz"))
        write_posterior(run, to_inference_data(fitted, data, seed=args.seed))
        print(f"fitted in {fit_s:.1f}s, MCC {fitted.metrics.get('mcc', float('nan')):.3f}",
              file=sys.stderr)
    else:
        run = Path(args.run_dir)

    t0 = time.perf_counter()
    res = build_report(run, heldout=heldout, seed=args.seed)
    total = time.perf_counter() - t0
    n = res.numbers
    settings = {"quick": args.quick, "simulation": sim or "default",
                "fit": fit_over or "default", "nuts": {k: n["nuts"][k] for k in
                                                       ("num_chains", "num_warmup",
                                                        "num_samples")},
                "nuts_obs": len(n["nuts"]["obs"]), "marginal_K": n["marginal"]["K"],
                "marginal_obs": n["marginal"]["num_obs"]}
    common = {"benchmark": "report_time", "seeds": [args.seed], "settings": settings,
              "machine": "2-core CPU", "version": _version()}
    rows = [("report_build_time", total, "s")]
    rows += [(f"report_{k}_time", v, "s") for k, v in res.timings.items() if k != "total"]
    cal = n.get("calibration_guide")
    if cal:
        rows.append(("guide_coverage_90_eti", cal["mean_coverage_eti"][2], "fraction"))
        rows.append(("guide_coverage_90_hdi", cal["mean_coverage_hdi"][2], "fraction"))
    rows.append(("guide_nuts_width_ratio_90", n["nuts"]["width_ratio_90_median"], "ratio"))
    rows.append(("nuts_max_rhat", n["nuts"]["max_r_hat"], "rhat"))
    rows.append(("heldout_log_px_per_obs", n["marginal"]["mean_log_px"], "nats"))
    lines = [json.dumps({**common, "metric": m, "value": v, "unit": u}) for m, v, u in rows]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n".join(lines) + "\n")
    print(f"report: {res.html}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
