"""Seed agreement: does the mean pairwise MCC between seeds (``fit --seeds K``, no true latents
needed) tell an identified fit from one that is not?

Three settings, each fitted with K seeds in one vectorised program (defaults of
:class:`ppl_ident.FitSettings` otherwise, i.e. the exact flow for 2500 steps):

- ``ivae``: the default identifiable setting (40 domains whose prior scales differ);
- ``vae``: the same data, the VAE control (an isotropic prior that ignores u: any rotation of
  the latents fits as well, so nothing pins them down);
- ``ivae_stationary``: the iVAE on data whose domains all share one prior
  (``identical_domains=True``): the condition fails, u carries no information.

For each: the seed agreement (mean and least pairwise MCC), and, for evaluation only, the MCC
of the kept fit (best ELBO) against the true latents. Usage::

    python benchmarks/seed_agreement.py [--seeds 3] [--steps N] [--n-per-domain M] [--out FILE]
"""

from __future__ import annotations

import argparse
import time

from _common import Emitter

SETTINGS = {
    "ivae": ({}, {"model": "ivae"}),
    "vae": ({}, {"model": "vae"}),
    "ivae_stationary": ({"identical_domains": True}, {"model": "ivae"}),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=None, help="default: the fit's default")
    p.add_argument("--n-per-domain", type=int, default=None,
                   help="default: the simulator's (1000)")
    p.add_argument("--only", nargs="*", default=None, choices=sorted(SETTINGS))
    p.add_argument("--out", default=None, help="append the JSON lines to this file")
    args = p.parse_args(argv)

    from ppl_ident.data import simulate_domains
    from ppl_ident.workflow import fit_model

    emit = Emitter("seed_agreement", args.out)
    for name in args.only or SETTINGS:
        data_kw, fit_kw = SETTINGS[name]
        if args.n_per_domain:
            data_kw = {**data_kw, "n_per_domain": args.n_per_domain}
        data, _ = simulate_domains(0, **data_kw)
        if args.steps:
            fit_kw = {**fit_kw, "steps": args.steps}
        t0 = time.perf_counter()
        fitted = fit_model(data, seeds=args.seeds, seed=0, **fit_kw)
        wall = time.perf_counter() - t0
        m = fitted.metrics
        settings = {"setting": name, **data_kw, **fit_kw, "flow": fitted.settings.flow,
                    "steps": fitted.settings.steps, "n_obs": int(data.x.shape[0])}
        emit("seed_agreement", m["seed_agreement"], "mean pairwise MCC", args.seeds, settings)
        emit("seed_agreement_min", m["seed_agreement_min"], "MCC", args.seeds, settings)
        emit("mcc_kept_fit", m["mcc"], "MCC vs true latents (evaluation only)", args.seeds,
             settings)
        emit("wall_time", wall, "s (compile included, K seeds together)", args.seeds, settings)


if __name__ == "__main__":
    main()
