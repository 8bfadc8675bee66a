"""Posterior analysis of a fitted iVAE with ArviZ: summaries, forest plot, PPC, calibration,
and a NUTS reference posterior against the amortised guide.

What it shows
-------------
1. ``to_inference_data`` (``ppl_ident.reporting.inference_data``) turns a fit into an ArviZ
   ``InferenceData``: draws of every kept observation's latents from the amortised guide
   ``q(z | x, u)`` (``z``, dims ``chain, draw, obs, latent``), the same draws mapped onto the
   true latents (``z_aligned``: Hungarian matching, sign and scale, see
   ``ppl_ident.diagnostics.calibration``), a posterior predictive group, the pointwise
   log-likelihood and the observed data. Every ArviZ function accepts it: ``az.summary``,
   ``az.plot_forest``, ``az.plot_ppc``.
2. Calibration against the true latents: the share of true values inside the aligned
   posterior's central intervals and HDIs at 50/80/90/95 % (``calibration_summary``).
3. ``nuts_reference`` runs NUTS on the latents of a few observations with the fitted decoder,
   prior and noise held fixed (4 chains), so ``az.summary`` reports R-hat and ESS, and the
   guide's intervals can be compared with the exact posterior *of the fitted model*.

What you should see
-------------------
* ``forest.png``: for a few observations, the guide's and NUTS's 90 % HDIs of each aligned
  latent, with the true value: the two posteriors are centred close together (median shift
  about 0.1 NUTS standard deviations at the defaults) and of similar width.
* ``calibration.png``: empirical against nominal coverage of the guide's intervals. Points
  above the diagonal are conservative intervals, below it over-confident ones. At the
  defaults they lie *above* it (0.97 for a nominal 0.9), and NUTS's posterior of the same
  fitted model is a little wider still (median guide/NUTS width ratio 0.9): the excess width
  comes from the fitted model (a noise scale still large after 2000 steps), not from the
  amortised approximation. Coverage against the truth mixes model error and inference
  error; the NUTS reference separates them.
* ``ppc.png``: the posterior predictive densities of each ``x`` dimension lie on the observed
  one (the decoder reconstructs the data).
* Printed and in ``summary.json``: NUTS's largest R-hat (about 1.01) and smallest bulk ESS
  (hundreds), the width ratio and mean shift, and the coverages. ``summary_guide.csv`` /
  ``nuts_diagnostics.csv`` are the ``az.summary`` tables, ``posterior.nc`` the guide's
  InferenceData (``az.from_netcdf`` reads it back).

Run it::

    python examples/posterior_analysis.py                  # about 30 s on 2 CPU cores
    python examples/posterior_analysis.py --nuts-obs 10 --nuts-samples 500
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ppl_ident as pi  # noqa: E402
from ppl_ident.diagnostics import LEVELS, calibration_summary  # noqa: E402
from ppl_ident.files import atomic_write_json, prepare_output_dir  # noqa: E402
from ppl_ident.reporting.inference_data import (  # noqa: E402
    alignment_from_idata, flat_draws, nuts_reference, to_inference_data, write_posterior)

#: figures are read at 100 % zoom: about 600 px wide and more, fonts of 9 pt and more
DPI = 110


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--latent-dim", type=int, default=3, help="n = d (default 3)")
    p.add_argument("--domains", type=int, default=10)
    p.add_argument("--points-per-domain", type=int, default=300)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--draws", type=int, default=400, help="guide draws per observation")
    p.add_argument("--obs", type=int, default=300, help="observations kept in the InferenceData")
    p.add_argument("--nuts-obs", type=int, default=3, help="observations sampled by NUTS")
    p.add_argument("--nuts-warmup", type=int, default=300)
    p.add_argument("--nuts-samples", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="examples_out/posterior_analysis")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = prepare_output_dir(Path(args.out), force=args.force)
    t_start = time.perf_counter()
    n = args.latent_dim
    data, truth = pi.simulate_domains(args.seed, n_latent=n, data_dim=n, n_domains=args.domains,
                                      n_per_domain=args.points_per_domain, n_layers=2)
    # the variational iVAE: its guide is a posterior over z (the default flow's is a point mass)
    fitted = pi.fit_model(data, model="ivae", steps=args.steps, batch_size=256, seed=args.seed,
                          flow=False)

    # The guide's posterior of a random subset of observations, aligned onto the true latents.
    idata = to_inference_data(fitted, data, num_draws=args.draws, max_obs=args.obs,
                              seed=args.seed)
    write_posterior(out, idata)
    obs = np.asarray(idata.posterior.obs)
    few = obs[:args.nuts_obs]
    guide_table = az.summary(idata, var_names=["z_aligned"], coords={"obs": few},
                             kind="stats", hdi_prob=0.9)
    guide_table.to_csv(out / "summary_guide.csv")

    # NUTS on the same observations, the fitted model held fixed, the same alignment.
    nuts = nuts_reference(fitted, data, few, num_warmup=args.nuts_warmup,
                          num_samples=args.nuts_samples, num_chains=4, seed=args.seed,
                          alignment=alignment_from_idata(idata))
    nuts_table = az.summary(nuts, var_names=["z_aligned"], kind="diagnostics")
    nuts_table.to_csv(out / "nuts_diagnostics.csv")

    # Forest plot: guide and NUTS per observation and latent; the truth as a point mass.
    guide_few = idata.posterior[["z_aligned"]].sel(obs=few)
    z_true_few = np.asarray(idata.constant_data["z_true"].sel(obs=few))
    truth_idata = az.from_dict(posterior={"z_aligned": np.broadcast_to(
        z_true_few, (1, 2) + z_true_few.shape).copy()},
        coords={"obs": few}, dims={"z_aligned": ["obs", "true_latent"]})
    axes = az.plot_forest([az.InferenceData(posterior=guide_few), nuts, truth_idata],
                          model_names=["guide", "NUTS", "true value"], var_names=["z_aligned"],
                          combined=True, hdi_prob=0.9, markersize=5, textsize=10,
                          figsize=(6.5, 0.45 * len(few) * n + 1.2))
    ax = np.atleast_1d(axes).ravel()[0]
    fig = ax.figure
    legend = ax.get_legend()
    if legend is not None:  # beside the rows, not over them
        handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
        legend.remove()
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9)
    fig.suptitle("aligned latents, 90% HDI", fontsize=11)
    fig.savefig(out / "forest.png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)

    axes = az.plot_ppc(idata, flatten=["obs"], num_pp_samples=min(50, args.draws), random_seed=0,
                       figsize=(3.6 * n, 3.2), textsize=10)
    axes = np.atleast_1d(axes).ravel()
    for ax in axes[1:]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    axes[0].figure.savefig(out / "ppc.png", dpi=DPI, bbox_inches="tight")
    plt.close(axes[0].figure)

    z_true = np.asarray(idata.constant_data["z_true"])
    cal = calibration_summary(z_true, flat_draws(idata, "z_aligned"))
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    levels = np.asarray(LEVELS)
    tol = np.asarray(cal["tolerance"])
    ax.fill_between(levels, levels - tol, levels + tol, color="0.85", label="±3 s.e.")
    ax.plot([0.4, 1], [0.4, 1], "k--", lw=0.8, label="calibrated")
    ax.plot(levels, cal["mean_coverage_eti"], "o-", label="central intervals")
    ax.plot(levels, cal["mean_coverage_hdi"], "s-", label="HDIs")
    ax.set_xlabel("nominal coverage", fontsize=11)
    ax.set_ylabel("share of true latents inside", fontsize=11)
    ax.set_title(f"guide calibration, {len(obs)} obs x {n} latents", fontsize=12)
    ax.tick_params(labelsize=10)
    ax.legend(fontsize=10, loc="upper left")
    fig.savefig(out / "calibration.png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)

    def width90(d):
        lo, hi = np.quantile(d, [0.05, 0.95], axis=0)
        return hi - lo

    g_draws = flat_draws(idata, "z_aligned")[:, :len(few)]
    n_draws = flat_draws(nuts, "z_aligned")
    ratio = width90(g_draws) / width90(n_draws)
    shift = np.abs(g_draws.mean(0) - n_draws.mean(0)) / n_draws.std(0)
    summary = {
        "mcc": fitted.metrics["mcc"],
        "coverage_levels": cal["levels"],
        "coverage_eti": cal["mean_coverage_eti"],
        "coverage_hdi": cal["mean_coverage_hdi"],
        "nuts_obs": few.tolist(),
        "nuts_max_r_hat": float(nuts_table["r_hat"].max()),
        "nuts_min_ess_bulk": float(nuts_table["ess_bulk"].min()),
        "nuts_divergences": int(np.asarray(nuts.sample_stats["diverging"]).sum()),
        "width_ratio_90_guide_over_nuts_median": float(np.median(ratio)),
        "mean_shift_in_nuts_sd_median": float(np.median(shift)),
        "wall_time_s": time.perf_counter() - t_start,
    }
    atomic_write_json(out / "summary.json", summary)

    with __import__("pandas").option_context("display.width", 120):
        print(f"az.summary of the guide's aligned latents, observations {few.tolist()}:")
        print(guide_table.round(2).to_string())
    print(f"\nMCC {summary['mcc']:.3f}; calibration of the guide ({len(obs)} obs):")
    for lv, e, h in zip(cal["levels"], cal["mean_coverage_eti"], cal["mean_coverage_hdi"]):
        print(f"  nominal {lv:.2f}: central {e:.3f}, HDI {h:.3f}")
    print(f"NUTS on {len(few)} obs x {n} latents, 4 chains: max R-hat "
          f"{summary['nuts_max_r_hat']:.3f}, min bulk ESS {summary['nuts_min_ess_bulk']:.0f}, "
          f"{summary['nuts_divergences']} divergences")
    print(f"guide vs NUTS: median 90% width ratio "
          f"{summary['width_ratio_90_guide_over_nuts_median']:.2f} (< 1: the guide is narrower "
          f"than the fitted model's posterior), median mean shift "
          f"{summary['mean_shift_in_nuts_sd_median']:.2f} NUTS sd")
    print(f"wrote {out}/: posterior.nc, summary_guide.csv, nuts_diagnostics.csv, forest.png, "
          f"ppc.png, calibration.png, summary.json ({summary['wall_time_s']:.0f} s)")
    return summary


if __name__ == "__main__":
    try:
        main()
    except pi.InputError as err:
        raise SystemExit(f"error: {err}") from None
