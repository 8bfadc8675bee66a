"""The identifiability verdict against the truth it cannot see.

For each setting and seed: simulate (the data's seed is the fit's), fit the default model with
3 seeds on the data without z, run :func:`ppl_ident.evidence.identifiability_evidence` (2
refits with u permuted across rows, 3 seeds each), and record the verdict, its numbers (each
latent's prior change and seed agreement, and the permuted-label fits' largest values) and
the MCC of the kept fit against the true latents and the Jacobian scores of its
learned-to-true map (evaluation only: the verdict never sees them).

Settings (the default simulation unless said: n = d = 5, 40 domains x 1000, 3 leaky-ReLU
layers, Gaussian sources): ``default``; ``identical`` (every domain the same prior);
``domains4`` (4 domains x 10,000 rows: fewer than the theory needs); ``noise03`` (observation
noise 0.3 x sd(x)); ``laplace`` and ``student_t`` (sources; Student-t with 3 degrees of
freedom); ``vae`` (the VAE control on the default data: its prior ignores u).

Usage::

    python benchmarks/verdict.py [--cases default identical ...] [--seeds 0 1 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import time
import warnings

from _common import write_rows

CASES = {
    "default": ({}, {}),
    "identical": ({"identical_domains": True}, {}),
    "domains4": ({"n_domains": 4, "n_per_domain": 10_000}, {}),
    "noise03": ({"noise_std": 0.325}, {}),  # 0.3 x sd(x) of the default setting (1.083)
    "laplace": ({"source": "laplace"}, {}),
    "student_t": ({"source": "student_t"}, {}),
    "vae": ({}, {"model": "vae"}),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", default=None)
    args = p.parse_args()

    from ppl_ident.data import simulate_domains
    from ppl_ident.evidence import identifiability_evidence
    from ppl_ident.workflow import fit_model

    warnings.simplefilter("ignore")
    for case in args.cases:
        sim, fit = CASES[case]
        for seed in args.seeds:
            data, truth = simulate_domains(seed, **sim)
            t0 = time.perf_counter()
            fitted = fit_model(data, seed=seed, seeds=3, truth=truth, **fit)
            evidence = identifiability_evidence(fitted, data, seed=seed)
            wall = time.perf_counter() - t0
            row = {"benchmark": "verdict", "case": case, "seed": seed,
                   "verdict": evidence["verdict"]["word"],
                   "reason": evidence["verdict"]["reason"],
                   "mcc": fitted.metrics.get("mcc"),
                   "mcc_per_latent": fitted.metrics.get("mcc_per_dim"),
                   "seed_agreement_mean": fitted.metrics.get("seed_agreement"),
                   "wall_time_s": round(wall, 1), "settings": {**sim, **fit}}
            jac = fitted.metrics.get("jacobian") or {}
            row["jacobian"] = {r: {k: jac[r].get(k) for k in ("amari", "agreement", "off_mass",
                                                               "verdict")}
                               for r in ("encoder", "decoder") if isinstance(jac.get(r), dict)
                               and jac[r].get("applicable", True)}
            if evidence.get("variation"):
                row["prior_change"] = evidence["variation"]["size"]
                row["prior_change_null_max"] = evidence["variation"]["null_max"]
                row["prior_rank"] = evidence["variation"]["rank"]
                row["agreement"] = evidence["agreement"]["per_latent"]
                row["agreement_null_max"] = evidence["agreement"]["null_max"]
                row["agreement_null_median"] = evidence["agreement"]["null_median"]
            write_rows([row], args.out)


if __name__ == "__main__":
    main()
