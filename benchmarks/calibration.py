"""Calibration under observation noise: does the posterior over the latents cover the truth?

The default setting (n = d = 5, 40 domains x 1000, 3 leaky-ReLU layers) with Gaussian
observation noise of 0, 0.05, 0.1 and 0.3 times the noiseless data's standard deviation (its
mean over columns), 5 seeds each (the data's seed is the fit's). For each fit:

- ``mcc``: MCC of the posterior mean against the true latents, over every row (evaluation only);
- ``coverage50`` / ``coverage90``: the share of true latents inside the 50 % / 90 %
  equal-tailed posterior intervals, per latent, on 300 random rows after aligning the learned
  latents to the true ones (Hungarian matching, then a per-latent affine map fitted on every
  row's posterior mean: :func:`ppl_ident.diagnostics.calibration.fit_alignment`); a point
  estimate has intervals of width 0 and covers nothing;
- ``width90``: the mean width of the aligned 90 % intervals;
- ``noise_fraction``: the noisy flow's learned noise sd over each column's sd (the truth is
  the level above, divided by each column's sd over the mean sd).

Models: ``exact`` (the noiseless flow, ``flow_noise=False``), ``noisy`` (``flow_noise=True``),
``noisy3`` (``flow_noise=True, seeds=3``: the three seeds' posteriors pooled, each aligned to
the kept fit without ground truth as ``posterior.nc`` stores them, so the intervals carry the
fits' disagreement too; MCC is the kept fit's).
The **oracle** bounds what any fit can reach: the posterior of the same 300 rows under the true
simulator model (true prior, true mixing, true noise), sampled by NUTS (NumPyro, 4 chains of
300 draws after 300 warm-up steps), scored the same way (its latents are the true ones: no
alignment). At noise 0 the oracle's posterior is the point ``g^{-1}(x)`` (MCC 1).

Usage::

    python benchmarks/calibration.py [--seeds 5] [--first-seed 0] [--noise 0 0.05 0.1 0.3] [--models exact noisy]
        [--oracle-obs 300] [--no-oracle] [--out FILE]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import Emitter


def oracle(truth, x, u, noise_std, key, obs_rows, num_warmup=300, num_samples=300,
           num_chains=4):
    """NUTS draws ``(S, R, n)`` of z for ``obs_rows`` under the true simulator model."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    from ppl_ident.data.mixing import mix

    loc = jnp.asarray(truth.domain_loc)[u[obs_rows]]
    scale = jnp.asarray(truth.domain_scale)[u[obs_rows]]
    x_obs = jnp.asarray(x[obs_rows])

    def model():
        z = numpyro.sample("z", dist.Normal(loc, scale).to_event(2))
        numpyro.sample("x", dist.Normal(mix(truth.mixing, z), noise_std).to_event(2), obs=x_obs)

    init = {"z": jnp.broadcast_to(jnp.asarray(truth.g_inv(x_obs)), (num_chains,) + loc.shape)}
    mcmc = MCMC(NUTS(model), num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, chain_method="vectorized", progress_bar=False)
    mcmc.run(key, init_params=init)
    z = np.asarray(mcmc.get_samples(group_by_chain=True)["z"])
    return z.reshape(-1, *z.shape[2:])


def score(z_true, draws, mean_all, z_all):
    """MCC over every row, and coverage and width on the kept rows after alignment."""
    from ppl_ident.diagnostics.calibration import (apply_alignment, calibration_summary,
                                                   fit_alignment)
    from ppl_ident.diagnostics.mcc import mcc

    align = fit_alignment(z_all, mean_all)
    aligned = apply_alignment(align, draws)
    summ = calibration_summary(z_true, aligned, levels=(0.5, 0.9))
    return {"mcc": float(mcc(z_all, mean_all).score),
            "coverage50": summ["coverage_eti"][0], "coverage90": summ["coverage_eti"][1],
            "width90": float(np.mean(summ["width_eti"][1]))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--noise", type=float, nargs="*", default=[0.0, 0.05, 0.1, 0.3])
    p.add_argument("--models", nargs="*", default=["exact", "noisy"])
    p.add_argument("--oracle-obs", type=int, default=300)
    p.add_argument("--no-oracle", action="store_true")
    p.add_argument("--steps", type=int, default=None, help="default: the fit's default")
    p.add_argument("--data-dim", type=int, default=5,
                   help="observed columns d (the latents stay n = 5): with d > n the noise has "
                        "directions of its own")
    p.add_argument("--out", default=None, help="append the JSON lines to this file")
    args = p.parse_args(argv)

    import jax

    from ppl_ident.data import simulate_domains
    from ppl_ident.diagnostics.calibration import calibration_summary
    from ppl_ident.diagnostics.mcc import mcc
    from ppl_ident.families.iid.idata import iid_inference_data, select_obs
    from ppl_ident.families.predict import encode_chunked
    from ppl_ident.workflow import fit_model

    emit = Emitter("calibration", args.out)
    for level in args.noise:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            clean, _ = simulate_domains(seed, data_dim=args.data_dim)
            sd_x = float(clean.x.std(0).mean())
            data, truth = simulate_domains(seed, data_dim=args.data_dim, noise_std=level * sd_x)
            rows = select_obs(data.x.shape[0], args.oracle_obs, seed)
            base = {"noise": level, "noise_std": level * sd_x, "seed": seed,
                    "data_dim": args.data_dim,
                    "rows": int(len(rows))}
            for name in args.models:
                t0 = time.perf_counter()
                kw = {} if args.steps is None else {"steps": args.steps}
                if name == "noisy3":
                    kw["seeds"] = 3
                fitted = fit_model(data, seed=seed, flow_noise=name != "exact", **kw)
                wall = time.perf_counter() - t0
                idata = iid_inference_data(fitted, data, num_draws=100, obs_idx=rows,
                                           seed=seed, truth=False)
                group = idata.posterior if "posterior" in idata.groups() else None
                z = (np.asarray(group["z"]).reshape(-1, len(rows), data.z.shape[1])
                     if group is not None else
                     np.broadcast_to(np.asarray(idata.point_estimate["z"]),
                                     (20, len(rows), data.z.shape[1])))
                mean_all, _ = encode_chunked(fitted.spec, fitted.params, data.x, data.u, 8192)
                out = score(data.z[rows], z, mean_all, data.z)
                settings = {**base, "model": name, "steps": fitted.settings.steps}
                for metric, unit in (("mcc", "MCC"), ("coverage50", "share per latent"),
                                     ("coverage90", "share per latent"),
                                     ("width90", "true-latent units")):
                    emit(metric, out[metric], unit, 1, settings)
                if "noise_fraction" in fitted.params:
                    emit("noise_fraction", np.asarray(fitted.params["noise_fraction"]).tolist(),
                         "learned noise sd / column sd", 1, settings)
                    said = fitted.metrics.get("observation_noise") or {}
                    emit("implied_recovery", said.get("implied_recovery"),
                         "per latent, under the fitted model", 1, settings)
                    emit("in_doubt", said.get("in_doubt"), "fit says the noise puts the "
                         "identification in doubt", 1, settings)
                emit("run_time", fitted.metrics["run_time_s"], "s (steps only)", 1, settings)
                emit("wall_time", wall, "s (fit with compile and evaluation)", 1, settings)
            if not args.no_oracle and level > 0:
                t0 = time.perf_counter()
                draws = oracle(truth, data.x, data.u, level * sd_x,
                               jax.random.PRNGKey(seed), rows)
                summ = calibration_summary(data.z[rows], draws, levels=(0.5, 0.9))
                settings = {**base, "model": "oracle_nuts"}
                emit("mcc", float(mcc(data.z[rows], draws.mean(0)).score),
                     "MCC (the oracle's rows only)", 1, settings)
                emit("coverage50", summ["coverage_eti"][0], "share per latent", 1, settings)
                emit("coverage90", summ["coverage_eti"][1], "share per latent", 1, settings)
                emit("width90", float(np.mean(summ["width_eti"][1])), "true-latent units", 1,
                     settings)
                emit("wall_time", time.perf_counter() - t0, "s (NUTS)", 1, settings)


if __name__ == "__main__":
    main()
