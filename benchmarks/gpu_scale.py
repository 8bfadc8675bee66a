"""Steps per second, time-to-MCC and memory at 10^6-10^7 observations on one accelerator.

Prepared for a GPU machine (``pip install -e ".[cuda]"``); it runs on CPU too, at small sizes
(``--rows 20000 --budget-s 20``). For every size it simulates the domain setting with
``n = d = --latent-dim`` (default 20), ``--domains`` domains, fits the default model of
``ppl-ident fit`` for at most ``--steps`` steps or ``--budget-s`` seconds (compilation
included, evaluations left out), whichever comes first, and every ``--every`` steps scores the
current latents against the truth on a fixed random subset of ``--mcc-rows`` rows (the curve
only: nothing is selected by it).

    python benchmarks/gpu_scale.py                       # 10^6 and 10^7 rows, n = 20, ~5 min
    python benchmarks/gpu_scale.py --rows 1000000 --latent-dim 10 --out results/gpu.jsonl

Prints one JSON line per size: steps/s (steps after compilation over their run time), compile
seconds, the curve (steps, run seconds, MCC), peak device memory (``memory_stats``, where the
backend reports it) and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

from _common import Emitter


def simulate(rows: int, n: int, domains: int, seed: int):
    from ppl_ident.data import simulate_domains

    return simulate_domains(seed, n_latent=n, data_dim=n, n_domains=domains,
                            n_per_domain=max(1, rows // domains))


def run_size(data, n: int, args):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ppl_ident.diagnostics import mcc
    from ppl_ident.families.predict import encode
    from ppl_ident.inference.fit import fit_batched
    from ppl_ident.workflow import build_fit, checked_settings, fit_settings

    overrides = {"seed": args.seed}
    if args.steps:
        overrides["steps"] = args.steps
    family, s = checked_settings(data, fit_settings(**overrides))
    u, labels = family.prepare_inputs(data.u, s.model)
    spec, engine, k_fit = build_fit(data, s, u, labels)
    x, uj = jnp.asarray(data.x), None if u is None else jnp.asarray(u)
    rows = np.random.default_rng(12345).choice(len(data.x), min(args.mcc_rows, len(data.x)),
                                               replace=False)
    x_sub, u_sub = x[rows], None if uj is None else uj[rows]
    z_sub = np.asarray(data.z)[rows]
    steps, scores, stamps = [], [], []
    t_call = time.perf_counter()

    def on_chunk(step, states, losses, finite):
        t_enter = time.perf_counter()
        params = engine.get_params(jax.tree_util.tree_map(lambda a: a[0], states))
        mean, _ = encode(spec, params, x_sub, u_sub)
        steps.append(step)
        scores.append(round(mcc(z_sub, np.asarray(mean)).score, 4))
        stamps.append((t_enter, time.perf_counter()))
        paused = sum(b - a for a, b in stamps)
        # the budget counts compilation too (known only after the fit): a safe upper bound
        return time.perf_counter() - t_call - paused >= args.budget_s

    keys = jax.random.split(jax.random.split(k_fit)[0], 1)
    _, losses, _, compile_s, run_s = fit_batched(
        engine, keys, x, uj, s.steps, chunk_size=args.every, progress=False, on_chunk=on_chunk)
    steps_done = losses.shape[1]
    # fit_batched's run clock includes the evaluations: leave them out (as time_to_mcc does)
    t_run0 = stamps[-1][1] - run_s
    before = np.cumsum([0.0] + [b - a for a, b in stamps[:-1]])
    curve = {"steps": steps, "mcc": scores,
             "run_s": [round(a - t_run0 - p, 2) for (a, _), p in zip(stamps, before)]}
    run_s -= sum(b - a for a, b in stamps)
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    return {
        "rows": int(len(data.x)), "n": n, "model": s.model, "flow": bool(s.flow),
        "batch_size": s.batch_size, "steps": int(steps_done),
        "steps_per_s": round(steps_done / max(run_s, 1e-9), 1),
        "compile_s": round(compile_s, 2), "run_s": round(run_s, 2), "curve": curve,
        "peak_device_bytes": None if not stats else stats.get("peak_bytes_in_use"),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--domains", type=int, default=100)
    p.add_argument("--steps", type=int, default=None, help="default: the default fit's")
    p.add_argument("--budget-s", type=float, default=140.0,
                   help="seconds per size, compilation included (evaluations left out)")
    p.add_argument("--every", type=int, default=500, help="steps between MCC evaluations")
    p.add_argument("--mcc-rows", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="append the JSON lines to this file")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    emit = Emitter("gpu_scale", args.out)
    for rows in args.rows:
        data, _ = simulate(rows, args.latent_dim, args.domains, args.seed)
        result = run_size(data, args.latent_dim, args)
        del data
        emit("scale", result, "steps/s, s, MCC, bytes", [args.seed],
             {"rows": rows, "latent_dim": args.latent_dim, "domains": args.domains,
              "budget_s": args.budget_s, "every": args.every})


if __name__ == "__main__":
    main()
