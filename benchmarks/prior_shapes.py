"""The default fit's prior shape against the sources' distribution.

For each source distribution (Gaussian, Laplace, Student-t with 3 degrees of freedom; the
default simulation otherwise: n = d = 5, 40 domains x 1000, 3 leaky-ReLU mixing layers) and
each seed: simulate (the data's seed is the fit's), fit the default model once with each
prior family (``--prior``), and record the MCC against the true latents (Pearson, as
``metrics.json``, and Spearman, which forgives a monotone distortion per latent), the
log-likelihood per observation and the run time. No setting is chosen by these numbers'
truth: the priors are the package's fixed alternatives.

Usage::

    python benchmarks/prior_shapes.py [--sources gaussian laplace student_t]
        [--priors mixture gaussian] [--seeds 0 1 2 3 4] [--out FILE]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import write_rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sources", nargs="+", default=["gaussian", "laplace", "student_t"])
    p.add_argument("--priors", nargs="+", default=["mixture", "gaussian"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--out", default=None)
    args = p.parse_args()

    from ppl_ident.data import simulate_domains
    from ppl_ident.diagnostics import mcc
    from ppl_ident.workflow import fit_model, latent_summary

    warnings.simplefilter("ignore")
    for source in args.sources:
        for seed in args.seeds:
            data, truth = simulate_domains(seed, source=source)
            for prior in args.priors:
                t0 = time.perf_counter()
                fitted = fit_model(data, seed=seed, truth=truth, prior=prior)
                wall = time.perf_counter() - t0
                z_hat = latent_summary(fitted, data)["mean"]
                row = {"benchmark": "prior_shapes", "source": source, "prior": prior,
                       "seed": seed, "mcc": fitted.metrics.get("mcc"),
                       "mcc_spearman": float(mcc(np.asarray(data.z), z_hat, "spearman").score),
                       "mcc_per_latent": fitted.metrics.get("mcc_per_dim"),
                       "elbo_per_obs": fitted.metrics.get("elbo_per_obs"),
                       "run_time_s": fitted.metrics.get("run_time_s"),
                       "wall_time_s": round(wall, 1)}
                write_rows([row], args.out)


if __name__ == "__main__":
    main()
