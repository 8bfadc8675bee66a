"""Your own data: load a ``.npz`` file, fit the iVAE, save the run and write its report.

This is the template to copy for a new data set.

The data file
-------------
One ``.npz`` file (``np.savez(path, x=x, u=u)``), loaded with ``allow_pickle=False``:

==========  ==================  ===========================================================
key         shape               meaning
==========  ==================  ===========================================================
``x``       ``(N, d)`` float    observations, one row each
``u``       ``(N,)`` int >= 0   domain label of each row (environment, batch, subject,
                                segment, ...): what the latent distribution changes with;
                                a continuous ``(N, k)`` float array also works
``z``       ``(N, n)`` float    optional: true latents, if you know them (simulations); used
                                only to score the fit (MCC), never to fit
==========  ==================  ===========================================================

A CSV or Parquet table with a column ``u`` (and every other numeric column an observation)
loads the same way; for other column names see ``ppl_ident.read_data`` and ``ppl_ident.Columns``
(or the how-to guide "Your own table", ``docs/how-to/your-own-data.md``, with
``ppl-ident fit --u-col``).

``ppl_ident.load_dataset`` checks the file (shapes that agree, finite values, integer
non-negative labels, no pickles) and says how to fix what is wrong. Standardise badly scaled
columns first; the iVAE needs at least 2 domains, and ``2n + 1`` for the identifiability
guarantee with ``n`` latents (fewer gives a warning). Without a path, the script first writes
a small simulated ``demo_data.npz`` in that layout, so it runs out of the box.

What it shows
-------------
1. ``load_dataset`` -> ``Dataset(x, u, z)`` (plus the simulator's ground truth when the file
   has ``truth_*`` keys, as files written by ``ppl-ident simulate`` do; plain files have none).
2. A held-out share of every domain is kept aside (``--heldout-fraction``) for the
   marginal likelihood ``log p(x | u)`` in the report.
3. ``fit_model`` -> ``Fitted``; ``save_run`` writes the run directory (``config.json``,
   ``params.npz``, ``metrics.json``, ``posterior.nc``, ...), ``load_run`` reads it back.
4. ``ppl_ident.reporting.report.ensure_check`` (``check_run``, written into ``RUN/check`` as
   ``ppl-ident check RUN --out RUN`` does): does the *learned* prior vary enough across your
   domains for the identifiability theory to apply?
5. ``ppl_ident.reporting.report.build_report``: figures, ``report.json`` and a
   self-contained ``report.html`` in the run directory (loss trace, forest plot, posterior
   predictive check, marginal likelihood, NUTS reference, and calibration against ``z`` when
   the file has it).

What you should see
-------------------
* ``OUT/run/report.html``: open it in a browser. With the demo data: a loss that falls and
  flattens, posterior predictive densities on top of the observed ones and, since ``z`` is
  known, the posterior against the true latents (MCC 0.98) and its calibration (above the
  diagonal after this short fit: conservative intervals, see ``posterior_analysis.py``).
* Printed: the fit's numbers, the learned prior's check, the held-out ``log p(x | u)``
  and the paths of what was written.

Run it::

    python examples/your_own_data.py                        # demo data, about 45 s on 2 cores
    python examples/your_own_data.py my_data.npz --latent-dim 4 --steps 5000 --out runs/mine
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import ppl_ident as pi
from ppl_ident.files import prepare_output_dir
from ppl_ident.reporting.report import build_report, ensure_check, log_px_text


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("data", nargs="?", default=None,
                   help=".npz file with x (N, d), u (N,) and optionally z (N, n); "
                        "omitted: write and use a small demo file")
    p.add_argument("--latent-dim", type=int, default=None,
                   help="number of latents n (default: z's dimension if given, else d)")
    p.add_argument("--model", default="ivae", choices=["ivae", "vae"])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--flow", action=argparse.BooleanOptionalAction, default=False,
                   help="fit the exact-likelihood flow (the package default for 2 <= n <= d; a "
                        "point estimate of z) instead of the variational model, whose "
                        "posterior over z this example reports")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--heldout-fraction", type=float, default=0.1,
                   help="share of each domain kept out of the fit (0 for none)")
    p.add_argument("--nuts-obs", type=int, default=3,
                   help="observations for the report's NUTS reference (0 skips it)")
    p.add_argument("--demo-latent-dim", type=int, default=3)
    p.add_argument("--demo-domains", type=int, default=10)
    p.add_argument("--demo-points-per-domain", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="examples_out/your_own_data")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    return p.parse_args(argv)


def write_demo_file(path: Path, args) -> Path:
    """A small simulated data set in the documented layout (x, u, z only)."""
    data, _ = pi.simulate_domains(args.seed, n_latent=args.demo_latent_dim,
                                  data_dim=args.demo_latent_dim, n_domains=args.demo_domains,
                                  n_per_domain=args.demo_points_per_domain, n_layers=2)
    np.savez(path, x=data.x, u=data.u, z=data.z)
    return path


def load(path: Path):
    """``load_dataset`` plus the one thing this template cannot take: sequences."""
    data, truth = pi.load_dataset(path)
    if data.x.ndim != 2:
        raise pi.InputError(f"{path} holds sequences {data.x.shape}; this template fits i.i.d. "
                            "data (N, d). See examples/sequences.py for sequence models.")
    return data, truth


def split_heldout(data: pi.Dataset, fraction: float, seed: int):
    """Keep ``fraction`` of every domain aside (at least one row of each stays in the fit)."""
    if not 0 <= fraction < 1:
        raise pi.InputError(f"--heldout-fraction must be in [0, 1), got {fraction}.")
    rng = np.random.default_rng(seed)
    held = np.zeros(len(data.x), bool)
    groups = [np.flatnonzero(data.u == k) for k in np.unique(data.u)] if data.u.ndim == 1 \
        else [np.arange(len(data.x))]
    for rows in groups:
        k = min(int(round(fraction * len(rows))), len(rows) - 1)
        held[rng.choice(rows, size=k, replace=False)] = True

    def pick(mask):
        return pi.Dataset(data.x[mask], data.u[mask], None if data.z is None else data.z[mask])

    return pick(~held), (pick(held) if held.any() else None)


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    if args.data:  # check the file before anything is written
        path = Path(args.data)
        data, truth = load(path)
        out = prepare_output_dir(Path(args.out), force=args.force)
    else:
        out = prepare_output_dir(Path(args.out), force=args.force)
        path = write_demo_file(out / "demo_data.npz", args)
        data, truth = load(path)
    aux = (f"{len(np.unique(data.u))} domains" if data.u.ndim == 1
           else f"a continuous u of shape {data.u.shape}")
    print(f"{path}: x {data.x.shape}, {aux}"
          + ("" if data.z is None else f", true latents z {data.z.shape}"))
    train, heldout = split_heldout(data, args.heldout_fraction, args.seed)

    fitted = pi.fit_model(train, model=args.model, latent_dim=args.latent_dim, steps=args.steps,
                          flow=args.flow,
                          batch_size=args.batch_size, seed=args.seed, truth=truth)
    # posterior.nc with 200 draws of 200 observations' latents: enough for the report's
    # calibration figures
    run = pi.save_run(out / "run", fitted, train, force=args.force, data_path=str(path),
                      posterior_draws=200, posterior_obs=200)
    fitted = pi.load_run(run)  # what a later session would do

    # the identifiability check, as `ppl-ident check RUN --out RUN`: written into RUN/check,
    # where the report shows it (the report would run it itself otherwise)
    check = json.loads(ensure_check(run, fitted, train).read_text())["variability"]
    report = build_report(run, dataset=train, heldout=heldout, nuts_obs=args.nuts_obs,
                          nuts_warmup=200, nuts_samples=200, marginal_obs=500,
                          calibration_draws=200, seed=args.seed)

    m = fitted.metrics
    print(f"\nfit: {m['num_steps']} steps in {m['run_time_s']:.1f} s (+{m['compile_time_s']:.1f} s "
          f"compilation), ELBO per observation {m['elbo_per_obs']:.3f}")
    if m.get("mcc") is not None:
        raw = "" if m.get("mcc_raw_x") is None else f" (raw x: {m['mcc_raw_x']:.3f})"
        print(f"MCC against the file's z: {m['mcc']:.3f}{raw}")
    if check.get("applicable", True):
        print(f"learned prior: identifiability conditions holding: "
              f"{', '.join(check['holds']) or 'none'}")
    else:
        print(f"learned prior: {check['reason']}")
    ml = report.numbers["marginal"]
    print(f"log p(x | u) per observation on {ml['data']}: {log_px_text(ml)}")
    print(f"\nrun directory {run}/ (read it back with ppl_ident.load_run):")
    print("  " + ", ".join(sorted(p.name for p in run.iterdir())))
    print(f"open {report.html} in a browser ({time.perf_counter() - t_start:.0f} s)")
    return {"run": str(run), "report": str(report.html), "metrics": m}


if __name__ == "__main__":
    try:
        main()
    except pi.InputError as err:
        raise SystemExit(f"error: {err}") from None
