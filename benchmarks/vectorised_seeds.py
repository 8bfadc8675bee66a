"""Vectorised seeds: run time of 8 seeds of the default iVAE fit as one ``vmap``-ed program,
against one seed (target: at most 2x) and against 8 sequential seeds (the speed-up).

Run times exclude compilation (reported apart). Usage::

    python benchmarks/vectorised_seeds.py [--quick] [--seeds 8] [--repeats 3] [--out FILE]

``--quick`` uses 300 steps on 10 domains x 200 points (a smoke run, not the target).
"""

from __future__ import annotations

import argparse
import statistics
import sys

from _common import Emitter


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per configuration")
    p.add_argument("--out", default=None, help="append the JSON lines to this file")
    args = p.parse_args(argv)

    import jax

    from ppl_ident.data import simulate_domains
    from ppl_ident.inference import OptimConfig, build_engine, fit_batched
    from ppl_ident.families import build_model
    from ppl_ident.settings import resolve_defaults
    from ppl_ident.workflow import FitSettings, prepare_inputs

    # the variational iVAE's defaults
    s = resolve_defaults(FitSettings(), flow=False, family="iid")
    data_kw = dict(n_domains=10, n_per_domain=200) if args.quick else {}
    steps = 300 if args.quick else s.steps
    data, _ = simulate_domains(0, **data_kw)
    u, labels = prepare_inputs(data.u)
    x = jax.numpy.asarray(data.x)
    u = jax.numpy.asarray(u)
    spec = build_model(s.model, jax.random.PRNGKey(0), n_latent=data.z.shape[1],
                       data_dim=x.shape[1], n_domains=len(labels), width=s.width,
                       depth=s.depth, prior=s.prior, noise_scale=s.noise_scale)
    optim = OptimConfig(learning_rate=s.learning_rate, num_steps=steps,
                        warmup_steps=s.warmup_steps, clip_norm=s.clip_norm)
    engine = build_engine(s.engine, spec, elbo=s.elbo, batch_size=min(s.batch_size, len(x)),
                          optim=optim)
    settings = dict(steps=steps, batch_size=s.batch_size, n_obs=int(x.shape[0]),
                    n_latent=int(data.z.shape[1]), width=s.width, depth=s.depth,
                    quick=args.quick, repeats=args.repeats)
    results = {}
    for n in (1, args.seeds):
        keys = jax.random.split(jax.random.PRNGKey(1), n)
        runs, compiles = [], []
        for _ in range(args.repeats):
            _, losses, _, compile_time, run_time = fit_batched(
                engine, keys, x, u, steps, chunk_size=steps, progress=False)
            runs.append(run_time)
            compiles.append(compile_time)
        results[n] = (statistics.median(runs), statistics.median(compiles))
    t1, t8 = results[1][0], results[args.seeds][0]
    lines = [
        ("run_time_1_seed", t1, "s", 1), ("run_time_vectorised", t8, "s", args.seeds),
        ("compile_time_1_seed", results[1][1], "s", 1),
        ("compile_time_vectorised", results[args.seeds][1], "s", args.seeds),
        ("vectorised_over_one_seed", t8 / t1, "ratio (target <= 2)", args.seeds),
        ("speedup_vs_sequential", args.seeds * t1 / t8, "x", args.seeds),
    ]
    emit = Emitter("vectorised_seeds", args.out)
    for metric, value, unit, seeds in lines:
        emit(metric, round(value, 4), unit, seeds, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
