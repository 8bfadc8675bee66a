"""Accuracy and speed of the default iVAE and VAE fits on the default simulator setting.

Setting: n = d = 5, 40 domains x 1000 points, 3 leaky-ReLU mixing layers, Gaussian sources
with per-domain scale in [0.5, 3]. For each seed: simulate, fit iVAE and VAE with the
package defaults (``FitSettings()``), report MCC (posterior mean vs true latents), ELBO per
observation, run time and compile time; then medians over seeds.

    python benchmarks/ivae_default.py            # 5 seeds (about 2-3 minutes on 2 cores)
    python benchmarks/ivae_default.py --preset accurate   # IWAE, 32 particles, 10k steps (~30 min)
    python benchmarks/ivae_default.py --quick    # 2 seeds, 1000 steps
    python benchmarks/ivae_default.py --no-flow  # the variational iVAE and VAE (the 0.1 default)
"""

from __future__ import annotations

import argparse
import statistics
import warnings

from _common import Emitter


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed-list", type=int, nargs="+", default=None,
                   help="explicit seeds (overrides --seeds)")
    p.add_argument("--models", nargs="+", default=["ivae", "vae"], choices=["ivae", "vae"])
    p.add_argument("--steps", type=int, default=None, help="override FitSettings().steps")
    p.add_argument("--restarts", type=int, default=None)
    p.add_argument("--flow", action=argparse.BooleanOptionalAction, default=None,
                   help="force the exact flow on or off (default: the package's choice)")
    p.add_argument("--lr", type=float, default=None, help="override the peak learning rate")
    p.add_argument("--preset", default="default", help="a FIT_PRESETS name")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None, help="append the JSON lines to this file")
    args = p.parse_args()
    from ppl_ident.data import simulate_domains
    from ppl_ident.workflow import fit_model, fit_settings

    warnings.simplefilter("ignore")
    seeds = args.seed_list or list(range(2 if args.quick else args.seeds))
    settings = fit_settings(args.preset)
    if args.quick:
        settings = settings._replace(steps=1000)
    if args.steps:
        settings = settings._replace(steps=args.steps)
    if args.restarts:
        settings = settings._replace(restarts=args.restarts)
    if args.flow is not None:
        settings = settings._replace(flow=args.flow)
    if args.lr:
        settings = settings._replace(learning_rate=args.lr)
    name = "ivae_default" if args.preset == "default" else f"ivae_default_{args.preset}"
    emit = Emitter(name + {None: "", True: "_flow", False: "_noflow"}[args.flow], args.out)
    results = {m: [] for m in args.models}
    raw = []
    for seed in seeds:
        data, _ = simulate_domains(seed)
        for model in results:
            fitted = fit_model(data, settings._replace(model=model, seed=seed))
            m = fitted.metrics
            results[model].append(m)
            emit(f"{model}_mcc_seed", m["mcc"], "MCC", [seed], settings._asdict())
        raw.append(m["mcc_raw_x"])
    for model, ms in results.items():
        cfg = settings._replace(model=model)._asdict()
        emit(f"{model}_mcc_median", statistics.median(r["mcc"] for r in ms), "MCC", seeds, cfg)
        emit(f"{model}_mcc_min", min(r["mcc"] for r in ms), "MCC", seeds, cfg)
        emit(f"{model}_elbo_per_obs_median", statistics.median(r["elbo_per_obs"] for r in ms),
             "nats", seeds, cfg)
        emit(f"{model}_run_time_median", statistics.median(r["run_time_s"] for r in ms), "s",
             seeds, cfg)
        emit(f"{model}_compile_time_median", statistics.median(r["compile_time_s"] for r in ms),
             "s", seeds, cfg)
    emit("raw_x_mcc_median", statistics.median(raw), "MCC", seeds, {})


if __name__ == "__main__":
    main()
