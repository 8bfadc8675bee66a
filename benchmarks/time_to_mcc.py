"""MCC against run time: periodic evaluations of a fit's latents during training.

Every ``--every`` steps the fit pauses, the current parameters encode the data and their
posterior means are scored against the true latents (MCC). The evaluations are timed apart and
left out of the run-time axis, and they are never used for anything but this curve: no step,
restart or setting is selected by them.

    python benchmarks/time_to_mcc.py                          # the default fit, seeds 0-4
    python benchmarks/time_to_mcc.py --preset accurate --steps 10000
    python benchmarks/time_to_mcc.py --set flow=false         # any FitSettings field
    python benchmarks/time_to_mcc.py --sim source=laplace     # any SimulationConfig field

Prints one JSON line per seed (the curve: steps, run seconds, MCC) and one with the medians
over seeds at every evaluation step.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from _common import Emitter, pairs


def curve(data, settings, every: int):
    """``(steps, run_s, mcc)`` lists of one fit of ``settings`` on ``data``."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ppl_ident.diagnostics import mcc
    from ppl_ident.families.predict import encode
    from ppl_ident.inference.fit import fit_batched
    from ppl_ident.workflow import build_fit, checked_settings

    family, s = checked_settings(data, settings)
    u, labels = family.prepare_inputs(data.u, s.model)
    spec, engine, k_fit = build_fit(data, s, u, labels)
    x, uj = jnp.asarray(data.x), None if u is None else jnp.asarray(u)
    steps, scores, stamps = [], [], []

    def on_chunk(step, states, losses, finite):
        t_enter = time.perf_counter()
        params = engine.get_params(jax.tree_util.tree_map(lambda a: a[0], states))
        mean, _ = encode(spec, params, x, uj)
        steps.append(step)
        scores.append(mcc(np.asarray(data.z), np.asarray(mean)).score)
        stamps.append((t_enter, time.perf_counter()))
        return False

    keys = jax.random.split(jax.random.split(k_fit)[0], s.restarts)
    *_, compile_s, run_time = fit_batched(engine, keys, x, uj, s.steps, chunk_size=every,
                                          progress=False, on_chunk=on_chunk)
    # fit_batched's run clock includes the evaluations: its start is the last evaluation's
    # end minus the run time; every point's run time then leaves out the evaluations before it
    t_run0 = stamps[-1][1] - run_time
    paused = np.cumsum([0.0] + [b - a for a, b in stamps[:-1]])
    run_s = [a - t_run0 - p for (a, _), p in zip(stamps, paused)]
    return steps, run_s, scores, compile_s


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed-list", type=int, nargs="+", default=None)
    p.add_argument("--model", default="ivae")
    p.add_argument("--preset", default=None, help="a FIT_PRESETS name (default: the default)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--every", type=int, default=250, help="steps between evaluations")
    p.add_argument("--set", nargs="*", help="FitSettings overrides, KEY=VALUE")
    p.add_argument("--sim", nargs="*", help="SimulationConfig overrides, KEY=VALUE")
    p.add_argument("--name", default=None, help="label of this configuration in the output")
    p.add_argument("--out", default=None, help="append the JSON lines to this file")
    args = p.parse_args()
    from ppl_ident.data import simulate_domains
    from ppl_ident.workflow import fit_settings

    warnings.simplefilter("ignore")
    seeds = args.seed_list or list(range(args.seeds))
    overrides = pairs(args.set)
    if args.steps:
        overrides["steps"] = args.steps
    base = fit_settings(args.preset, **overrides) if args.preset else fit_settings(**overrides)
    sim = pairs(args.sim)
    label = args.name or "_".join([args.preset or "default"] + [f"{k}={v}" for k, v in
                                                                 {**overrides, **sim}.items()])
    emit = Emitter("time_to_mcc", args.out)
    cfg = {**base._replace(model=args.model)._asdict(), "simulation": sim, "label": label}
    curves = []
    for seed in seeds:
        data, _ = simulate_domains(seed, **sim)
        steps, run_s, scores, compile_s = curve(
            data, base._replace(model=args.model, seed=seed), args.every)
        curves.append((steps, run_s, scores))
        emit("curve", {"steps": steps, "run_s": [round(t, 2) for t in run_s],
                       "mcc": [round(m, 4) for m in scores], "compile_s": round(compile_s, 2)},
             "MCC", [seed], cfg)
    n = min(len(c[0]) for c in curves)
    emit("median_curve", {
        "steps": curves[0][0][:n],
        "run_s": [round(statistics.median(c[1][i] for c in curves), 2) for i in range(n)],
        "mcc": [round(statistics.median(c[2][i] for c in curves), 4) for i in range(n)],
        "min_mcc": [round(min(c[2][i] for c in curves), 4) for i in range(n)],
    }, "MCC", seeds, cfg)


if __name__ == "__main__":
    main()
