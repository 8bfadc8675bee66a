"""Do the data identify the observation noise? The held-out likelihood of noisy flows whose
noise is fixed at fractions of the truth, beside the one that learns it.

The default simulator setting (n = 5 latents, 40 domains x 1000 training rows, 3 leaky-ReLU
layers) with Gaussian observation noise of ``--noise`` times the noiseless data's mean column
sd, observed in ``d = 5`` columns (as many as latents) and in ``d = 10``. For each ``d`` and
seed, the noisy flow is fitted with its noise held at each factor of ``--factors`` times the
true sd (``fit --flow-noise-sd``) and once learning it, and scored on 250 held-out rows per
domain (same domains, mixing and noise) by the importance-sampled ``log p(x | u)``
(:func:`ppl_ident.inference.marginal.log_marginal_likelihood`, 256 draws of the fit's own
posterior per row). Where the likelihood peaks near factor 1 the data identify the noise; where
it is flat or falls towards factor 1, a flexible mixing absorbs the noise and maximum
likelihood does not recover it. Also written: the learned noise over the truth (per column),
and the MCC of the posterior mean (evaluation only).

Usage::

    python benchmarks/noise_profile.py [--seeds 1] [--noise 0.1] [--dims 5 10]
        [--factors 0.33 0.66 1 1.5] [--out FILE]
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import Emitter


def split(full, per_domain: int, heldout: int):
    """Training and held-out rows: the first ``per_domain`` of each domain's rows train."""
    from ppl_ident.data import Dataset

    within = np.arange(full.x.shape[0]) % (per_domain + heldout)  # u is sorted by domain
    pick = lambda m: Dataset(full.x[m], full.u[m], full.z[m])  # noqa: E731
    return pick(within < per_domain), pick(within >= per_domain)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--dims", type=int, nargs="*", default=[5, 10])
    p.add_argument("--factors", type=float, nargs="*", default=[0.33, 0.66, 1.0, 1.5])
    p.add_argument("--heldout", type=int, default=250, help="held-out rows per domain")
    p.add_argument("--draws", type=int, default=256)
    p.add_argument("--out", default=None, help="append the JSON lines to this file")
    args = p.parse_args(argv)

    import jax

    from ppl_ident.data import simulate_domains
    from ppl_ident.diagnostics.mcc import mcc
    from ppl_ident.families.predict import encode_chunked
    from ppl_ident.inference.marginal import log_marginal_likelihood
    from ppl_ident.workflow import fit_model, model_inputs

    emit = Emitter("noise_profile", args.out)
    for d in args.dims:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            clean, _ = simulate_domains(seed, data_dim=d)
            noise_sd = args.noise * float(clean.x.std(0).mean())
            full, _ = simulate_domains(seed, data_dim=d, noise_std=noise_sd,
                                       n_per_domain=1000 + args.heldout)
            train, test = split(full, 1000, args.heldout)
            for factor in [*args.factors, None]:
                given = None if factor is None else factor * noise_sd
                fitted = fit_model(train, seed=seed, flow_noise=True, flow_noise_sd=given)
                ml = log_marginal_likelihood(fitted.spec, fitted.params, test.x,
                                             model_inputs(fitted, test.u),
                                             num_samples=args.draws, batch_size=16,
                                             key=jax.random.PRNGKey(seed))
                mean, _ = encode_chunked(fitted.spec, fitted.params, train.x,
                                         model_inputs(fitted, train.u), 8192)
                frac = np.asarray(fitted.params["noise_fraction"]) * train.x.std(0) / noise_sd
                settings = {"data_dim": d, "latent_dim": 5, "noise_level": args.noise,
                            "noise_std": noise_sd, "seed": seed,
                            "fit_noise": "learned" if factor is None else f"{factor:g} x truth"}
                emit("heldout_loglik", ml.mean, "nats per row", 1,
                     {**settings, "se": ml.mean_se, "rows": int(test.x.shape[0])})
                emit("noise_over_truth", frac.round(4).tolist(),
                     "noise sd / true noise sd, per column", 1, settings)
                emit("mcc", float(mcc(train.z, mean).score), "MCC", 1, settings)


if __name__ == "__main__":
    main()
