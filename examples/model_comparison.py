"""Model comparison on held-out data: importance-sampled log p(x | u) for the iVAE and the
VAE, with standard errors, and why ``az.loo`` on the stored log-likelihood is not the tool.

What it shows
-------------
1. Training data and fresh held-out observations from the same domains and mixing
   (``ppl_ident.data.simulate.resample_domains``); the iVAE and the VAE fitted to the
   training data (``ppl_ident.fit_model``).
2. ``ppl_ident.inference.log_marginal_likelihood``: for each held-out observation,
   ``log p(x | u) ~= logsumexp_k [log p(x | z_k) + log p(z_k | u) - log q(z_k | x, u)] - log K``
   with ``K`` draws from the fitted encoder (the importance-weighted bound), with a Monte
   Carlo standard error per observation. Models are compared like ``az.compare`` compares
   ELPDs: by the mean of the *paired* per-observation differences, whose standard error
   ``sd(diff) / sqrt(N)`` measures how much the ranking could change with other held-out
   data (the Monte Carlo error of the estimator is reported next to it, and is much smaller).
3. Why not ``az.loo``? The InferenceData of a fit stores ``log p(x_i | z_i)``, a likelihood
   *conditional on a latent inferred from x_i itself*; each observation has its own latent,
   so leaving ``x_i`` out leaves ``z_i`` with only its prior, and the PSIS importance ratios
   ``1 / p(x_i | z_i)`` are extremely heavy-tailed: ``az.loo`` flags almost every observation
   with a Pareto k above 0.7 (see ``loo_khat.png``), and its ELPD is not an estimate of the
   predictive density of a new observation. What predicts a new ``x`` given its ``u`` is the
   marginal ``p(x | u) = int p(x | z) p(z | u) dz``, estimated in step 2 on data the fit
   never saw. (The global parameters are point estimates, so there is no posterior over them
   for LOO to integrate either.) See the docstring of ``ppl_ident.inference.marginal``.

What you should see
-------------------
* ``marginal.png``: mean held-out ``log p(x | u)`` per model with +-2 standard errors
  (left), and the per-observation differences iVAE - VAE (right). At the defaults the iVAE
  is ahead by 0.36 +- 0.03 nats per observation: its domain-dependent prior explains the
  domains' different spreads, which a single N(0, I) prior cannot. The intervals on the left
  overlap, yet the difference is more than ten standard errors from 0: both models find the
  same observations hard, so only the *paired* comparison has the right standard error.
* ``loo_khat.png``: ArviZ's Pareto k diagnostic of ``az.loo`` on the conditional
  log-likelihood: about 90 % of the points above the 0.7 line.
* Printed and in ``summary.json``: the estimates, both standard errors, the paired
  difference, the importance sampling's effective sample sizes (about 80 % of ``K``: the
  encoder is a good proposal) and the share of bad k-hats.

Run it::

    python examples/model_comparison.py                    # about 35 s on 2 CPU cores
    python examples/model_comparison.py --heldout-per-domain 200 --samples 500
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import arviz as az
import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ppl_ident as pi  # noqa: E402
from ppl_ident.data.simulate import resample_domains  # noqa: E402
from ppl_ident.files import atomic_write_json, prepare_output_dir  # noqa: E402
from ppl_ident.inference import log_marginal_likelihood  # noqa: E402
from ppl_ident.reporting.inference_data import to_inference_data  # noqa: E402
from ppl_ident.workflow import prepare_inputs  # noqa: E402

DPI = 70


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--latent-dim", type=int, default=3, help="n = d (default 3)")
    p.add_argument("--domains", type=int, default=10)
    p.add_argument("--points-per-domain", type=int, default=300)
    p.add_argument("--heldout-per-domain", type=int, default=50)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--samples", type=int, default=200, help="importance samples K")
    p.add_argument("--loo-draws", type=int, default=200,
                   help="guide draws per observation for the az.loo demonstration")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="examples_out/model_comparison")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = prepare_output_dir(Path(args.out), force=args.force)
    t_start = time.perf_counter()
    n = args.latent_dim
    data, truth = pi.simulate_domains(args.seed, n_latent=n, data_dim=n, n_domains=args.domains,
                                      n_per_domain=args.points_per_domain, n_layers=2)
    held = resample_domains(truth, args.heldout_per_domain, seed=args.seed + 1)

    results, fits = {}, {}
    for model in ("ivae", "vae"):
        # variational fits: the held-out bound and the stored log p(x_i | z_i) need a
        # posterior over z (the exact flow's default fit has a point mass)
        fitted = pi.fit_model(data, model=model, steps=args.steps, batch_size=256,
                              seed=args.seed, flow=False)
        u_held, _ = prepare_inputs(held.u, fitted.labels)
        ml = log_marginal_likelihood(fitted.spec, fitted.params, held.x, u_held,
                                     num_samples=args.samples,
                                     key=jax.random.PRNGKey(args.seed))
        fits[model], results[model] = fitted, ml

    a, b = results["ivae"], results["vae"]
    diff = a.log_px - b.log_px
    n_held = len(diff)
    obs_se = {m: float(r.log_px.std(ddof=1) / np.sqrt(n_held)) for m, r in results.items()}
    diff_se = float(diff.std(ddof=1) / np.sqrt(n_held))
    diff_mc_se = float(np.sqrt(np.sum(a.se**2 + b.se**2)) / n_held)

    # What az.loo would say on the conditional log-likelihood stored by to_inference_data.
    idata = to_inference_data(fits["ivae"], data, num_draws=args.loo_draws, max_obs=300,
                              seed=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns about the k-hats we report below
        loo = az.loo(idata, pointwise=True)
    khat = np.asarray(loo.pareto_k)

    fig, axes = plt.subplots(1, 2, figsize=(5.6, 2.5))
    names = ["iVAE", "VAE"]
    means = [a.mean, b.mean]
    ses = [obs_se["ivae"], obs_se["vae"]]
    axes[0].errorbar([0, 1], means, yerr=2 * np.asarray(ses), fmt="o", capsize=4)
    axes[0].set_xticks([0, 1], names)
    axes[0].set_xlim(-0.6, 1.6)
    axes[0].set_ylabel("held-out log p(x | u) per obs", fontsize=8)
    axes[0].set_title(f"mean, ±2 s.e. ({n_held} obs, K={args.samples})", fontsize=8)
    axes[1].hist(diff, bins=30, color="C2")
    axes[1].axvline(0, color="k", lw=0.8)
    axes[1].axvline(diff.mean(), color="C3", ls="--", lw=1,
                    label=f"mean {diff.mean():.2f} ± {diff_se:.2f}")
    axes[1].set_xlabel("log p(x|u): iVAE - VAE, per held-out obs", fontsize=8)
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "marginal.png", dpi=DPI)
    plt.close(fig)

    ax = az.plot_khat(loo, show_hlines=True, show_bins=True, figsize=(4.0, 2.4), textsize=8,
                     markersize=4)
    ax.set_title("az.loo on log p(x_i | z_i): Pareto k per observation", fontsize=8)
    ax.figure.savefig(out / "loo_khat.png", dpi=DPI, bbox_inches="tight")
    plt.close(ax.figure)

    summary = {
        "num_heldout": n_held, "num_samples": args.samples,
        **{f"{m}_mean_log_px": r.mean for m, r in results.items()},
        **{f"{m}_se_obs": obs_se[m] for m in results},
        **{f"{m}_se_mc": r.mean_se for m, r in results.items()},
        **{f"{m}_median_ess": float(np.median(r.ess)) for m, r in results.items()},
        **{f"{m}_train_elbo_per_obs": fits[m].metrics["elbo_per_obs"] for m in fits},
        **{f"{m}_mcc": fits[m].metrics["mcc"] for m in fits},
        "diff_mean": float(diff.mean()), "diff_se_obs": diff_se, "diff_se_mc": diff_mc_se,
        "loo_share_khat_above_0.7": float(np.mean(khat > 0.7)),
        "loo_elpd_per_obs_not_comparable": float(loo.elpd_loo / len(khat)),
        "wall_time_s": time.perf_counter() - t_start,
    }
    atomic_write_json(out / "summary.json", summary)
    print(f"held-out log p(x | u) per observation ({n_held} obs, K = {args.samples} importance "
          "samples from the encoder):")
    for m in results:
        r = results[m]
        print(f"  {m:<5} {r.mean:8.3f}  s.e. {obs_se[m]:.3f} (observations), {r.mean_se:.4f} "
              f"(Monte Carlo); median ESS {np.median(r.ess):.0f} of {args.samples}; train ELBO "
              f"{fits[m].metrics['elbo_per_obs']:.3f}; MCC {fits[m].metrics['mcc']:.3f}")
    print(f"  iVAE - VAE: {diff.mean():.3f} ± {diff_se:.3f} (paired s.e.; Monte Carlo "
          f"{diff_mc_se:.4f})")
    print(f"az.loo on the conditional log p(x_i | z_i): {np.mean(khat > 0.7):.0%} of "
          f"{len(khat)} Pareto k above 0.7 -> not a valid estimate here (see the docstring)")
    print(f"wrote {out}/: marginal.png, loo_khat.png, summary.json "
          f"({summary['wall_time_s']:.0f} s)")
    return summary


if __name__ == "__main__":
    try:
        main()
    except pi.InputError as err:
        raise SystemExit(f"error: {err}") from None
