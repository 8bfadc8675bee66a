"""A workflow on real recordings: sktime's BasicMotions (six-axis motion sensors, four
activities as the auxiliary variable u), read from the installed package, never downloaded.

What it shows
-------------
1. The data: 80 recordings (40 train, 40 test, sktime's own split) of a smartwatch's
   accelerometer and gyroscope (6 channels x 100 steps) while people stand, walk, run or play
   badminton. Every time step is a row: ``x`` the 6 channels (standardised with the training
   rows' mean and sd), ``u`` the activity. Written as CSV tables (``train.csv``, ``test.csv``)
   and read back with ``ppl_ident.read_data(..., Columns(u="activity"))``, as a user's
   table is.
2. The prior predictive of the iVAE (the model with ``x=None`` at its initial parameters,
   whitened decoding as ``fit`` does it) against the data: the spread of its draws per channel.
3. Choosing the number of latents n by the held-out ``log p(x | u)`` (importance-sampled with
   the encoder, ``ppl_ident.inference.log_marginal_likelihood``) on the test recordings,
   never by anything else; the variational iVAE (``flow=False``) for every n.
4. At the chosen n: the iVAE against the VAE control, each fitted with several seeds in one
   vectorised program (``fit_model(..., seeds=K)``): held-out ``log p(x | u)`` and the
   agreement between seeds (mean pairwise MCC of every row's latents), the evidence of
   identifiability that needs no true latents.
5. The learned prior's check (``check_run``: does the fitted p(z | u) vary enough across the
   four activities?), and the run's report (``build_report``: seed agreement, the learned
   prior per activity, latents by activity, posterior sd over all rows, posterior predictive
   check), with the test recordings as held-out data.

What you should see
-------------------
Printed and in ``summary.json`` (numbers measured with the defaults are in
``examples/README.md``): held-out log p(x | u) per n, the chosen n, the iVAE's and the VAE's
held-out log p(x | u) and seed agreement, the learned prior's verdict, and ``run/report.html``.

Run it (needs the optional extra: ``pip install "ppl_ident[real]"``)::

    python examples/real_data.py                      # a few minutes on 2 CPU cores
    python examples/real_data.py --latent-dims 2 3 --steps 500 --seeds 2   # a quick look
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numpyro.infer import Predictive  # noqa: E402

import ppl_ident as pi  # noqa: E402
from ppl_ident.data import Columns, read_data  # noqa: E402
from ppl_ident.errors import InputError  # noqa: E402
from ppl_ident.files import atomic_write_json, prepare_output_dir  # noqa: E402
from ppl_ident.inference import log_marginal_likelihood  # noqa: E402
from ppl_ident.ops.observation import whitening  # noqa: E402
from ppl_ident.workflow import check_run, model_inputs, save_run  # noqa: E402

#: BasicMotions' six channels, in sktime's order
CHANNELS = ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--latent-dims", type=int, nargs="+", default=[2, 3, 4],
                   help="candidate n (at most 6)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=3, help="seeds of the iVAE and VAE fits")
    p.add_argument("--samples", type=int, default=100, help="importance samples K")
    p.add_argument("--heldout-rows", type=int, default=2000,
                   help="test rows (a seeded subset) for log p(x | u)")
    p.add_argument("--recordings", type=int, default=None,
                   help="use only the first R recordings of each activity in each split (a "
                        "quick run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="examples_out/real_data")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    return p.parse_args(argv)


def load_basic_motions(recordings: int | None = None):
    """BasicMotions from the installed sktime as two tables of rows (train, test)."""
    import pandas as pd

    try:
        from sktime.datasets import load_basic_motions as load
    except ImportError as err:
        raise InputError(f"This example reads BasicMotions from sktime ({err}); install the "
                         "optional extra: pip install 'ppl_ident[real]'.") from err
    tables = {}
    for split in ("train", "test"):
        X, y = load(split=split, return_type="numpy3D")  # (recordings, 6, 100), labels
        y = np.asarray(y)
        if recordings is not None:  # the first R recordings of every activity
            keep = np.concatenate([np.flatnonzero(y == c)[:recordings] for c in np.unique(y)])
            X, y = X[keep], y[keep]
        rows = X.transpose(0, 2, 1).reshape(-1, X.shape[1])
        tables[split] = pd.DataFrame(rows, columns=CHANNELS).assign(
            activity=np.repeat(y, X.shape[2]), recording=np.repeat(np.arange(len(X)),
                                                                   X.shape[2]))
    mean, sd = tables["train"][CHANNELS].mean(), tables["train"][CHANNELS].std()
    for t in tables.values():
        t[CHANNELS] = (t[CHANNELS] - mean) / sd
    return tables["train"], tables["test"]


def heldout_log_px(fitted, held, rows, samples, seed):
    u = model_inputs(fitted, np.asarray(held.u)[rows])
    ml = log_marginal_likelihood(fitted.spec, fitted.params, np.asarray(held.x)[rows], u,
                                 num_samples=samples, key=jax.random.PRNGKey(seed))
    return ml.log_px


def plot_prior_predictive(x, draws, path):
    fig, axes = plt.subplots(2, 3, figsize=(11, 6), constrained_layout=True)
    for j, ax in enumerate(axes.ravel()):
        lo, hi = np.quantile(x[:, j], [0.005, 0.995])
        bins = np.linspace(lo - 1, hi + 1, 60)
        ax.hist(x[:, j], bins=bins, density=True, histtype="step", lw=2, color="0.2",
                label="data")
        ax.hist(np.clip(draws[..., j].ravel(), bins[0], bins[-1]), bins=bins, density=True,
                histtype="step", lw=2, color="C1", label="prior predictive")
        ax.set_title(CHANNELS[j], fontsize=12)
        ax.set_xlabel("standardised value", fontsize=11)
    axes[0, 0].legend(fontsize=11)
    fig.suptitle("iVAE prior predictive p(x | u) at initialisation vs BasicMotions",
                 fontsize=13)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    if max(args.latent_dims) > len(CHANNELS) or min(args.latent_dims) < 1:
        raise SystemExit(f"--latent-dims must lie in 1..{len(CHANNELS)}")
    out = prepare_output_dir(Path(args.out), force=args.force)
    t0 = time.perf_counter()
    train_t, test_t = load_basic_motions(args.recordings)
    train_t.to_csv(out / "train.csv", index=False)
    test_t.to_csv(out / "test.csv", index=False)
    cols = Columns(u="activity", x=tuple(CHANNELS))
    train, _, columns = read_data(out / "train.csv", cols)
    test, _, _ = read_data(out / "test.csv", columns)  # the training table's coding of u
    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.choice(len(test.x), size=min(args.heldout_rows, len(test.x)),
                              replace=False))
    x = np.asarray(train.x)
    n_act = len(columns.u_categories)
    summary = {"data": {"train_rows": int(len(x)), "test_rows": int(len(test.x)),
                        "activities": list(columns.u_categories), "channels": CHANNELS}}

    # 2. prior predictive of the model a fit starts from (whitened decoding, initial noise)
    n0 = args.latent_dims[0]
    spec0 = pi.build_model("ivae", jax.random.PRNGKey(args.seed), n_latent=n0,
                           data_dim=x.shape[1], n_domains=n_act, whiten=whitening(x),
                           noise_init=pi.FitSettings().noise_init)
    draws = np.asarray(Predictive(spec0.model, num_samples=20)(
        jax.random.PRNGKey(1), None, jnp.asarray(train.u))["x"])
    plot_prior_predictive(x, draws, out / "prior_predictive.png")
    summary["prior_predictive_sd_ratio"] = (draws.reshape(-1, x.shape[1]).std(0)
                                            / x.std(0)).round(3).tolist()

    # 3. n by held-out log p(x | u) (variational iVAE: the estimator needs an encoder), each
    # n fitted with K seeds at once so that their agreement is measured too (not used to choose)
    common = dict(steps=args.steps, batch_size=256, flow=False, seed=args.seed,
                  seeds=args.seeds, data_path=str(out / "train.csv"), columns=columns)

    def fit_and_score(model, n):
        fitted = pi.fit_model(train, model=model, latent_dim=n, **common)
        lp = heldout_log_px(fitted, test, rows, args.samples, args.seed)
        return fitted, lp, {"heldout_log_px": float(lp.mean()),
                            "heldout_log_px_se": float(lp.std(ddof=1) / np.sqrt(len(lp))),
                            "elbo_per_obs": fitted.metrics["elbo_per_obs"],
                            "seed_agreement": fitted.metrics.get("seed_agreement"),
                            "seed_agreement_min": fitted.metrics.get("seed_agreement_min")}

    per_n, ivae_fits = {}, {}
    for n in args.latent_dims:
        ivae_fits[n] = fit_and_score("ivae", n)
        per_n[n] = ivae_fits[n][2]
        print(f"n={n}: held-out log p(x|u) {per_n[n]['heldout_log_px']:.3f} "
              f"± {per_n[n]['heldout_log_px_se']:.3f} per row, seed agreement "
              f"{per_n[n]['seed_agreement']}")
    best = max(per_n, key=lambda n: per_n[n]["heldout_log_px"])
    summary["choose_n"] = {"per_n": per_n, "chosen": best}

    # 4. iVAE against VAE at the chosen n, K seeds each, with their agreement
    fits, models, lps = {}, {}, {}
    fits["ivae"], lps["ivae"], models["ivae"] = ivae_fits[best]
    fits["vae"], lps["vae"], models["vae"] = fit_and_score("vae", best)
    for model in ("ivae", "vae"):
        print(f"{model} (n={best}): held-out log p(x|u) {models[model]['heldout_log_px']:.3f}, "
              f"seed agreement {models[model]['seed_agreement']} over {args.seeds} seeds")
    diff = lps["ivae"] - lps["vae"]
    summary["ivae_vs_vae"] = {**models, "paired_diff": float(diff.mean()),
                              "paired_diff_se": float(diff.std(ddof=1) / np.sqrt(len(diff)))}

    # 5. the learned prior's check and the report
    check = check_run(fits["ivae"], train, n_points=256, seed=args.seed)
    summary["learned_prior"] = {"holds": check["variability"].get("holds"),
                                "reason": check["variability"].get("reason"),
                                "collapsed": (check["activity"] or {}).get("message")}
    print(f"learned prior: conditions that hold: {summary['learned_prior']['holds']}")
    run = save_run(out / "run", fits["ivae"], train, data_path=str(out / "train.csv"),
                   columns=columns)
    from ppl_ident.reporting.report import build_report

    build_report(run, heldout=test, nuts_obs=0, marginal_samples=min(args.samples, 50),
                 marginal_obs=500)
    summary["wall_time_s"] = time.perf_counter() - t0
    atomic_write_json(out / "summary.json", summary)
    print(f"chosen n = {best}; report in {run / 'report.html'}; wrote {out}")


if __name__ == "__main__":
    main()
