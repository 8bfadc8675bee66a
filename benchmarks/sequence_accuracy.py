"""Accuracy and fit time of the sequence models on their two target settings.

* ``dynamics``: latent dynamics, n = 4 latents, d = 4, lag 1, 3 mixing layers, noise scales
  varying over domains. Temporal iVAE (``tivae``) against the stationary control; target:
  median MCC over 3 seeds >= 0.9 for ``tivae`` and clearly above ``stationary``.
* ``regimes``: K = 3 hidden regimes (sticky chain), n = 4, d = 4; the ``regime`` model; target:
  regime accuracy >= 0.95 and MCC >= 0.9.

Every fit goes through :func:`ppl_ident.workflow.fit_model` with its default settings (for
d == n the exact flow with the spline transition; ``--steps`` and ``--preset`` override them),
so "a default sequence fit" is what is timed. Prints one JSON line per metric::

    python benchmarks/sequence_accuracy.py --quick            # 1 seed, fewer steps
    python benchmarks/sequence_accuracy.py --out results.jsonl
    python benchmarks/sequence_accuracy.py --scale-gain 1 --heteroscedastic   # TDRL's setting
    python benchmarks/sequence_accuracy.py --preset exact     # exact-likelihood flow models

``--scale-gain`` simulates heteroscedastic transitions (the noise scale moves with the past, so
the past alone satisfies the sufficient-variability condition, also for K = 3 regimes);
``--heteroscedastic`` fits models of that form.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import _common


def run(quick: bool, tasks, steps: int | None, seeds: int | None, noise_scale=None,
        batch_size=None, scale_gain=0.0, heteroscedastic=False, preset="default"):
    from ppl_ident.data.sequences import simulate_sequences
    from ppl_ident.workflow import FIT_PRESETS, fit_model

    n_seeds = seeds or (1 if quick else 3)
    preset_kw = {k: v for k, v in FIT_PRESETS[preset].items() if k != "steps"}
    # None: the fit's own default (for d == n the exact flow's 2500 steps)
    steps = steps or (2000 if quick else FIT_PRESETS[preset].get("steps"))
    sim = dict(n_latent=4, data_dim=4, lag=1, n_layers=3, scale_gain=scale_gain)
    rows = []
    plan = {"dynamics": ("dynamics", ["tivae", "stationary"]), "regimes": ("regimes", ["regime"])}
    for task in tasks:
        generator, models = plan[task]
        per_model = {m: {"mcc": [], "time": [], "regime_accuracy": [], "trans_err": []}
                     for m in models}
        for seed in range(n_seeds):
            data, truth = simulate_sequences(generator, seed, **sim)
            for model in models:
                t0 = time.perf_counter()
                extra = {} if batch_size is None else {"batch_size": batch_size}
                if heteroscedastic:
                    extra["heteroscedastic"] = True
                extra.update(preset_kw)
                if steps is not None:
                    extra["steps"] = steps
                fitted = fit_model(data, model=model, seed=seed, truth=truth,
                                   noise_scale=noise_scale, **extra)
                wall = time.perf_counter() - t0
                m = fitted.metrics
                rec = per_model[model]
                rec["mcc"].append(m["mcc"])
                rec["time"].append(wall)
                if "regime_accuracy" in m:
                    rec["regime_accuracy"].append(m["regime_accuracy"])
                    rec["trans_err"].append(m.get("trans_matrix_max_abs_error", np.nan))
                print(f"# {task} seed {seed} {model}: MCC {m['mcc']:.3f}"
                      + (f", regime acc {m['regime_accuracy']:.3f}" if "regime_accuracy" in m
                         else "") + f", {wall:.0f}s (compile {m['compile_time_s']:.0f}s)",
                      file=sys.stderr, flush=True)
        settings = dict(task=task, steps=steps or len(fitted.losses),
                        flow=bool(fitted.spec.config.get("flow")),
                        n_sequences=data.x.shape[0],
                        length=data.x.shape[1], noise_scale=noise_scale,
                        batch_size=batch_size or "default", heteroscedastic=heteroscedastic,
                        preset=preset,
                        **sim)
        for model, rec in per_model.items():
            base = dict(benchmark=f"sequence_accuracy/{task}/{model}", seeds=n_seeds,
                        settings=settings)
            rows.append({**base, "metric": "median_mcc", "value": float(np.median(rec["mcc"])),
                         "unit": "MCC", "per_seed": rec["mcc"]})
            rows.append({**base, "metric": "median_fit_wall_time",
                         "value": float(np.median(rec["time"])), "unit": "s",
                         "per_seed": rec["time"]})
            if rec["regime_accuracy"]:
                rows.append({**base, "metric": "median_regime_accuracy",
                             "value": float(np.median(rec["regime_accuracy"])),
                             "unit": "fraction", "per_seed": rec["regime_accuracy"]})
                rows.append({**base, "metric": "median_trans_matrix_max_abs_error",
                             "value": float(np.median(rec["trans_err"])), "unit": "probability",
                             "per_seed": rec["trans_err"]})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 seed and 2000 steps")
    p.add_argument("--tasks", nargs="+", choices=["dynamics", "regimes"],
                   default=["dynamics", "regimes"])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--noise-scale", type=float, default=None,
                   help="fix the decoder noise (default: learned, as in `ppl-ident fit`)")
    p.add_argument("--batch-size", type=int, default=None, help="time steps per minibatch")
    p.add_argument("--scale-gain", type=float, default=0.0,
                   help="simulate heteroscedastic transitions (noise scale moves with the past)")
    p.add_argument("--heteroscedastic", action="store_true",
                   help="fit the models with a past-dependent noise scale")
    p.add_argument("--preset", default="default", choices=["default", "accurate", "exact"],
                   help="fit preset (ppl_ident.workflow.FIT_PRESETS)")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = p.parse_args(argv)
    rows = run(args.quick, args.tasks, args.steps, args.seeds, args.noise_scale,
               args.batch_size, args.scale_gain, args.heteroscedastic, args.preset)
    _common.write_rows(rows, args.out)


if __name__ == "__main__":
    main()
