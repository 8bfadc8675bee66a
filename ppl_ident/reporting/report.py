"""The run report: PNG figures and one self-contained ``report.html``.

:func:`build_report` reads a run directory (``config.json``, parameters, ``posterior.nc``
when present, the data file named in ``config.json``) and writes, next to them:

- ``loss_trace.png``: the training loss;
- ``posterior_vs_truth.png``: aligned posterior mean against the true latent, with 90 %
  intervals (true latents known);
- ``forest.png``: an ArviZ forest plot of a few observations' latents, guide and NUTS side by
  side, true values marked;
- ``calibration.png``: nominal against empirical coverage, per engine;
- ``ppc.png``: posterior predictive check (densities of observed and replicated ``x``) per
  observed dimension;
- ``report.json``: calibration, NUTS comparison, marginal likelihood (the numbers in the
  tables);
- ``report.html`` with every figure embedded (base64), the tables, and the Jacobian heatmaps
  and sufficient-variability spectrum of the run's identifiability check
  (:data:`ppl_ident.reporting.plots.CHECK_FIGURES`): those written by ``ppl-ident check RUN
  --out RUN`` (which writes into ``RUN/check``) or ``--out RUN/SUBDIR``; when the run has
  none, the report runs the check itself (:func:`ppl_ident.workflow.check_run` on
  ``check_points`` rows, 256 by default, as ``ppl-ident check RUN`` does) and writes it into
  ``RUN/check``, so the identifiability sections are always there (``check_points=0``, CLI
  ``--check-points 0``, skips it).

There is one report builder. It loads the run, its data and posterior once into a
:class:`~ppl_ident.reporting.context.ReportContext`; the run's family names the sections its
report holds (:attr:`ppl_ident.families.base.ModelFamily.report_sections`), and each is built
by the function :data:`BUILDERS` keeps for that section. Runs of the sequence family show
latent trajectories, interval coverage and the regime posterior
(:mod:`ppl_ident.reporting.sequence_report`) instead of the per-observation figures. Each
run of the report rewrites its own figures, ``report.json`` and ``report.html``;
``posterior.nc`` is only written when the run directory has none.
"""

from __future__ import annotations

import html
import json
import re
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ppl_ident import arviz_compat
from ppl_ident.data import load_dataset
from ppl_ident.data.tables import Columns, is_table
from ppl_ident.diagnostics.calibration import LEVELS, calibration_summary, intervals
from ppl_ident.diagnostics.reference import chain_diagnostics, compare_to_reference
from ppl_ident.errors import InputError
from ppl_ident.families import family_of
from ppl_ident.inference.marginal import log_marginal_likelihood
from ppl_ident.reporting import sequence_report as seq
from ppl_ident.reporting.context import Posterior, ReportContext
from ppl_ident.reporting.inference_data import (
    POSTERIOR_FILE,
    alignment_from_idata,
    flat_draws,
    is_point_estimate,
    latent_group,
    nuts_reference,
    read_posterior,
    select_obs,
    to_inference_data,
    write_posterior,
)
from ppl_ident.reporting.page import (
    ReportResult,
    fmt,
    img,
    plot_calibration,
    plot_loss,
    pyplot,
    save_figure,
    table,
    write_page,
)
from ppl_ident.reporting.plots import CHECK_DIR, CHECK_SECTIONS, check_figures
from ppl_ident.reporting.verdict import untestable_html, verdict_html
from ppl_ident.workflow import load_run, model_inputs

__all__ = ["BUILDERS", "SECTIONS", "OPTIONAL", "ReportResult", "build_report", "ensure_check",
           "ensure_verdict", "find_check",
           "log_px_text", "ppc_numbers"]

#: section -> its title on the page (``{label}``: the family in words); a family's
#: ``report_sections`` name the sections its report holds, in page order
SECTIONS = {
    "summary": "Summary",
    "loss": "Loss trace",
    "agreement": "Agreement between seeds",
    "prior": "Learned prior per domain",
    "latents": "Latents of every row, by domain",
    "posterior_sd": "Posterior uncertainty over all rows",
    "truth": "True latents vs posterior mean",
    "forest": "Forest plot of a few observations",
    "calibration": "Calibration of posterior intervals",
    "nuts": "Reference posterior (NUTS) vs guide",
    "ppc": "Posterior predictive check",
    "marginal": "Marginal likelihood",
    "jacobian": "Jacobian heatmap",
    "variability": "Sufficient-variability spectrum",
    "trajectories": "Latent trajectories of a few sequences",
    "regimes": "Regime posterior",
    "transitions": "Regime transition matrix",
    "skipped": "Not computed for {label} models",
}
#: section -> the figures of ``ppl-ident check --out`` it shows, when they exist
OPTIONAL = CHECK_SECTIONS


def _resolve_data(run: Path, config: dict, dataset, truth=None):
    """``(Dataset, truth)`` of a run: ``dataset`` as given (object or path), else the file
    named in ``config.json``; ``truth`` is the file's ground truth unless given."""
    def columns(path):  # a table is read with the column mapping the fit recorded
        return Columns.from_dict(config.get("columns")) if is_table(path) else None

    if dataset is not None:
        if not isinstance(dataset, (str, Path)):
            return dataset, truth
        data, file_truth = load_dataset(dataset, columns(dataset))
        return data, file_truth if truth is None else truth
    path = config.get("data")
    if path is None:
        raise InputError(f"{run}/config.json names no data file; pass --data FILE.")
    for cand in (Path(path), run / path, run.parent / Path(path).name):
        if cand.is_file():
            data, file_truth = load_dataset(cand, columns(cand))
            return data, file_truth if truth is None else truth
    raise InputError(f"The data file {path} named in {run}/config.json was not found; pass "
                     "--data FILE.")


# --------------------------------------------------------------------------- figures


def plot_truth(z_true, draws, alignment, path: Path, level: float = 0.9) -> Path:
    """Aligned posterior mean against the true latent, one panel per true latent, with
    equal-tailed ``level`` intervals."""
    plt = pyplot()

    n = z_true.shape[1]
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    mean = draws.mean(0)
    iv = intervals(draws, level)
    point = bool(np.all(iv[..., 0] == iv[..., 1]))   # a point estimate: no bars to draw
    for i in range(rows * cols):
        ax = axes.flat[i]
        if i >= n:
            ax.axis("off")
            continue
        err = np.abs(iv[:, i, :].T - mean[:, i])
        ax.errorbar(z_true[:, i], mean[:, i], yerr=err, fmt="o", ms=2.5, lw=0.6, alpha=0.6,
                    color="C0", ecolor="C0")
        lo = min(z_true[:, i].min(), mean[:, i].min())
        hi = max(z_true[:, i].max(), mean[:, i].max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="y = x")
        # intervals of a latent whose posterior stayed at its prior would hide the rest:
        # the axes follow the points, and long bars are clipped
        pad = 0.15 * (hi - lo + 1e-9)
        ax.set_xlim(z_true[:, i].min() - pad, z_true[:, i].max() + pad)
        ax.set_ylim(lo - pad, hi + pad)
        j = int(alignment.matching[i])
        sign = "+" if alignment.slope[i] >= 0 else "-"
        ax.set_title(f"true z{i}  <-  {sign}learned z{j}  (R² {alignment.r2[i]:.2f})",
                     fontsize=9)
        ax.set_xlabel(f"true z{i}")
        ax.set_ylabel("aligned point estimate z = h(x)" if point else
                      f"aligned posterior mean, {int(level * 100)}% interval")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(loc="upper left", fontsize=8)
    fig.suptitle("Point estimates against the true latents" if point else
                 "Posterior (guide) against the true latents", y=1.0)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_forest(idatas: dict, obs, var: str, z_true, path: Path, level: float = 0.9) -> Path:
    """ArviZ forest plots of ``var`` for a few observations, one panel per latent (each with
    its own scale), one colour per engine, true values (when known) marked by red crosses
    (:func:`ppl_ident.arviz_compat.plot_forest` draws each panel)."""
    plt = pyplot()
    names = list(idatas)
    first = arviz_compat.group(idatas[names[0]], "posterior")[var]
    lat_dim = first.dims[-1]
    n_lat = first.shape[-1]
    cols = min(n_lat, 3)
    rows = int(np.ceil(n_lat / cols))
    fig, axes = plt.subplots(rows, cols, squeeze=False,
                             figsize=(max(6.0, 3.4 * cols),
                                      (0.45 * len(obs) * len(names) + 1.0) * rows + 0.6))
    handles, leg_labels = [], []
    for k in range(rows * cols):
        ax = axes.flat[k]
        if k >= n_lat:
            ax.axis("off")
            continue
        arviz_compat.plot_forest(ax, {m: idatas[m] for m in names}, var,
                                 {"obs": list(obs), lat_dim: [k]}, level, legend=k == 0)
        rows_y = {}                    # one tick per engine and observation: merge them
        for t in ax.get_yticklabels():
            m = re.search(r"\[(\d+)", t.get_text())
            if m:
                rows_y.setdefault(int(m.group(1)), []).append(t.get_position()[1])
        ticks = [float(np.mean(v)) for v in rows_y.values()]
        labels = [f"obs {o}" for o in rows_y]
        if z_true is not None:
            truth = [z_true[list(obs).index(o), k] for o in rows_y]
            ax.plot(truth, ticks, "x", color="crimson", ms=8, mew=2, ls="none",
                    label="true value" if k == 0 else None)
        ax.set_yticks(ticks, labels)
        ax.set_title(f"z{k}", fontsize=10)
        ax.set_xlabel("aligned latent value" if var == "z_aligned" else "latent value",
                      fontsize=9)
        if k == 0:
            old = ax.get_legend()
            handles = list(old.legend_handles) if old is not None else []
            leg_labels = [t.get_text() for t in old.get_texts()] if old is not None else []
            h, lab = ax.get_legend_handles_labels()
            if old is not None:
                old.remove()
            handles, leg_labels = handles + h, leg_labels + lab
    fig.suptitle(f"{int(level * 100)}% HDI (thin) and interquartile range (thick)",
                 fontsize=11)
    # the legend below the panels, never over a row of intervals
    fig.tight_layout(rect=(0, 0.1 if handles else 0, 1, 1))
    if handles:
        fig.legend(handles, leg_labels, loc="lower center", ncol=len(handles), fontsize=9,
                   frameon=False)
    return save_figure(fig, path)


def plot_ppc(idata, path: Path, num_pp_samples: int = 40, seed: int = 0,
             replicated: str = "posterior") -> Path:
    """Posterior predictive check, one panel per observed dimension: the density of the
    observed ``x`` against those of ``num_pp_samples`` replicated data sets and their mean.

    ``replicated="model"`` labels replicated sets drawn from the fitted model's
    ``p(x | u)`` (new ``z`` from the prior: the check of an exact-likelihood flow).

    This is the picture of ``az.plot_ppc(kind="kde")``, drawn here from the
    ``posterior_predictive`` and ``observed_data`` groups: ArviZ 0.23's plot passes matplotlib
    3.11 a deprecated argument (two ``MatplotlibDeprecationWarning`` per panel).
    """
    plt = pyplot()
    x = arviz_compat.group(idata, "observed_data")["x"]
    observed = np.asarray(x)
    names = [str(v) for v in x.coords["x_dim"].values] if "x_dim" in x.coords else None
    label = {"posterior": "posterior predictive",
             "model": "fitted model p(x | u)"}[replicated]
    replicated = np.asarray(arviz_compat.group(idata, "posterior_predictive")["x"])
    replicated = replicated.reshape(-1, *replicated.shape[2:])        # (draws, obs, d)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(replicated), size=min(num_pp_samples, len(replicated)),
                              replace=False))
    n_obs, d = observed.shape
    cols = min(d, 3)
    rows = int(np.ceil(d / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.0 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= d:
            ax.axis("off")
            continue
        sets = replicated[pick, :, k]
        lo = min(observed[:, k].min(), sets.min())
        hi = max(observed[:, k].max(), sets.max())
        pad = 0.1 * (hi - lo) + 1e-6
        grid = np.linspace(lo - pad, hi + pad, 256)
        curves = [c for c in (_density(v, grid) for v in sets) if c is not None]
        for c, curve in enumerate(curves):
            ax.plot(grid, curve, color="C0", alpha=0.25, lw=0.7,
                    label=label if c == 0 else None)
        if curves:
            ax.plot(grid, np.mean(curves, axis=0), color="C1", ls="--", lw=1.4,
                    label=f"{label}, mean")
        obs_curve = _density(observed[:, k], grid)
        if obs_curve is not None:
            ax.plot(grid, obs_curve, color="k", lw=1.5, label="observed")
        ax.set_xlabel(f"x[{k}]" if names is None or names[k] == str(k) else names[k],
                      fontsize=9)
        ax.set_ylabel("density", fontsize=9)
        ax.tick_params(labelsize=8)
        if k == 0:
            ax.legend(fontsize=7)
    what = "Posterior" if label.startswith("posterior") else "Model"
    fig.suptitle(f"{what} predictive check: densities of x over {n_obs} observations",
                 fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _density(values, grid):
    """Gaussian kernel density of ``values`` on ``grid``; None when ``values`` are all equal
    (a point mass has no density to draw)."""
    from scipy.stats import gaussian_kde

    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2 or np.ptp(values) <= 1e-12 * max(1.0, np.abs(values).max()):
        return None
    return gaussian_kde(values)(grid)


# --------------------------------------------------------------------------- main


@contextmanager
def _timed(timings: dict, step: str):
    """Record the seconds the block takes as ``timings[step]`` (``timings_s`` of
    ``report.json``)."""
    t0 = time.perf_counter()
    yield
    timings[step] = time.perf_counter() - t0


def build_report(run_dir, *, dataset=None, heldout=None, nuts_obs: int = 6,
                 nuts_warmup: int = 300, nuts_samples: int = 300, nuts_chains: int = 4,
                 forest_obs: int = 3, marginal_samples: int = 100,
                 marginal_obs: int = 1000, calibration_draws: int = 400,
                 seed: int = 0, truth=None, check_points: int = 256,
                 null_fits: int = 0) -> ReportResult:
    """Write the figures, ``report.json`` and ``report.html`` of a run directory.

    The sections are those the run's family names
    (:attr:`~ppl_ident.families.base.ModelFamily.report_sections`), each built by
    :data:`BUILDERS`. A sequence run's report uses ``dataset``, ``truth``,
    ``calibration_draws``, ``seed`` and ``forest_obs`` (as the number of sequences drawn), and
    says why NUTS and the marginal likelihood are skipped.

    Parameters
    ----------
    run_dir : path
        Written by ``ppl-ident fit`` (or :func:`ppl_ident.workflow.save_run`).
    dataset : Dataset or path, optional
        The fitted data; default: the file named in ``config.json``.
    heldout : Dataset or path, optional
        Data not used for fitting, for the marginal likelihood; without it the estimate is
        computed on (a subset of) the training data and labelled so.
    nuts_obs : int
        Observations for the NUTS reference posterior (0 skips it).
    nuts_warmup, nuts_samples, nuts_chains : int
    forest_obs : int
        Observations shown in the forest plot (sequence runs: sequences whose trajectories
        are drawn).
    marginal_samples, marginal_obs : int
        Importance samples ``K`` and observations for the marginal likelihood.
    calibration_draws : int
        When ``posterior.nc`` holds fewer guide draws than this, fresh draws for the same
        observations are taken (in memory) for every figure and number: intervals estimated
        from few draws under-cover by themselves (for a Gaussian, 100 draws give a 90 %
        HDI that covers 87.4 % on average, 400 draws 88.9 %).
    seed : int
    null_fits : int
        When the run's verdict has not been tested (``fit --verdict`` or ``ppl-ident check``),
        test it against this many refits with ``u`` permuted across rows (3 seeds each,
        :func:`ppl_ident.evidence.identifiability_evidence`) and store it in
        ``RUN/check/check.json``; 0 (the default here; ``ppl-ident report`` uses 2) leaves the
        verdict "not tested yet".
    check_points : int
        When the run directory holds no ``check.json`` (``ppl-ident check RUN --out RUN``),
        run that check on this many rows and write it into ``RUN/check`` (0: do not).
    truth : GroundTruth or SequenceTruth, optional
        The simulator's ground truth when ``dataset`` is given as an object (a data file
        carries its own); sequence runs use it for the regime accuracy and the
        transition-matrix error.

    Returns
    -------
    ReportResult

    Examples
    --------
    >>> build_report("runs/ivae").html                                      # doctest: +SKIP
    PosixPath('runs/ivae/report.html')
    """
    t_all = time.perf_counter()
    run = Path(run_dir)
    fitted = load_run(run)
    config = json.loads((run / "config.json").read_text())
    data, truth = _resolve_data(run, config, dataset, truth)
    family = family_of(fitted.spec.name)
    if np.ndim(data.x) != family.data_rank:
        raise InputError(f"{run} holds a fit of the {family.label} model "
                         f"{fitted.settings.model!r}, but the data's x has shape "
                         f"{np.shape(data.x)}, not {family.data_shape}; pass the fitted data "
                         "with --data FILE.")
    if check_points:
        try:
            ensure_check(run, fitted, data, truth, n_points=check_points, seed=seed)
        except InputError as err:  # the report stands without it, and says why
            warnings.warn(f"The report has no identifiability sections: the check of {run} "
                          f"could not run ({err}).", stacklevel=2)
    if null_fits:
        ensure_verdict(run, fitted, data, permutations=null_fits, seed=seed)
    ctx = ReportContext(run, fitted, data, truth, family, metrics=dict(fitted.metrics or {}),
                        options=dict(heldout=heldout, nuts_obs=nuts_obs,
                                     nuts_warmup=nuts_warmup, nuts_samples=nuts_samples,
                                     nuts_chains=nuts_chains, forest_obs=forest_obs,
                                     marginal_samples=marginal_samples,
                                     marginal_obs=marginal_obs,
                                     calibration_draws=calibration_draws, seed=seed))
    read = POSTERIORS.get(tuple(family.obs_dims))
    if read is None:
        raise NotImplementedError(
            f"The report reads posteriors over {' or '.join(map(str, POSTERIORS))}; the "
            f"{family.label} family's are over {tuple(family.obs_dims)}: add a reader for "
            "them to ppl_ident.reporting.report.POSTERIORS.")
    with _timed(ctx.timings, "posterior"):
        # the layout of the family's posterior decides how it is read (and aligned)
        ctx.post = read(ctx)
    ctx.idatas["guide"] = ctx.post.idata
    ctx.figures.update(check_figures(run))
    wanted = set(family.report_sections)
    for key, build in BUILDERS.items():  # in the order the sections depend on each other
        if key in wanted:
            with _timed(ctx.timings, key):
                build(ctx)
    if ctx.notes:
        ctx.numbers["notes"] = ctx.notes
    ctx.timings["total"] = time.perf_counter() - t_all
    ctx.numbers["timings_s"] = ctx.timings
    titles = {k: SECTIONS[k].format(label=family.label) for k in family.report_sections}
    what = f"{fitted.settings.model}" if not ctx.post.sequential else \
        f"{fitted.spec.name}, sequences"
    out, sections = write_page(run, f"ppl-ident report: {run.name} ({what})", titles,
                               ctx.parts, ctx.numbers)
    return ReportResult(out, ctx.figures, sections, ctx.numbers, ctx.timings, ctx.idatas)


def find_check(run: Path) -> Path | None:
    """The ``check.json`` of a run: in ``RUN/check``, the run directory itself, or the first
    other sub-directory (by name) that holds one; None when the run has not been checked."""
    run = Path(run)
    for cand in [run / CHECK_DIR / "check.json", run / "check.json",
                 *sorted(run.glob("*/check.json"))]:
        if cand.is_file():
            return cand
    return None


def ensure_check(run: Path, fitted, data, truth=None, *, n_points: int = 256,
                 seed: int = 0) -> Path:
    """The run's ``check.json``; when there is none, run the identifiability check
    (:func:`ppl_ident.workflow.check_run`, as ``ppl-ident check RUN --out RUN``) and write it
    with its figures into ``RUN/check``."""
    from ppl_ident.reporting.plots import write_check
    from ppl_ident.workflow import check_run

    found = find_check(run)
    if found is not None:
        return found
    result = check_run(fitted, data, truth, n_points=n_points, seed=seed)
    write_check(result, Path(run) / CHECK_DIR, force=True)
    return Path(run) / CHECK_DIR / "check.json"


def ensure_verdict(run: Path, fitted, data, *, permutations: int = 2, seed: int = 0) -> None:
    """Test the run's verdict against refits with permuted labels when no test is stored (in
    ``metrics.json`` or a check), and add it to ``RUN/check/check.json`` (created if missing);
    nothing for a model the test does not apply to (its verdict needs no refit, or the family
    has no permuted-label test)."""
    from ppl_ident.evidence import identifiability_evidence
    from ppl_ident.files import atomic_write_json
    from ppl_ident.reporting.verdict import stored_evidence

    family = family_of(fitted.spec.name)
    if not family.permutation_null or not family.prior_depends_on_u(fitted.spec) \
            or stored_evidence(run, fitted.metrics or {})[0] is not None:
        return
    path = Path(run) / CHECK_DIR / "check.json"
    result = json.loads(path.read_text()) if path.is_file() else {"kind": "run"}
    result["evidence"] = identifiability_evidence(fitted, data, permutations=permutations,
                                                  seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, result)


# --------------------------------------------------------------------------- numbers


def config_columns(run: Path):
    """The column mapping a table was read with at ``fit`` (None for array files)."""
    config = json.loads((run / "config.json").read_text())
    return Columns.from_dict(config.get("columns"))


def _domain_names(fitted, columns):
    """The names of the model's domains ``0..U-1``: the table's categories, else the
    original labels."""
    if fitted.labels is None:
        return None
    labels = np.asarray(fitted.labels)
    cats = None if columns is None else columns.u_categories
    return [str(cats[int(v)]) for v in labels] if cats else [str(v) for v in labels]


def _guide_posterior(run: Path, fitted, data, calibration_draws: int, seed: int) -> Posterior:
    """The posterior of ``posterior.nc`` (built and written when absent), with fresh guide
    draws in memory when it holds fewer than ``calibration_draws``."""
    if (run / POSTERIOR_FILE).is_file():
        idata = read_posterior(run)
    else:
        idata = to_inference_data(fitted, data, seed=seed)
        write_posterior(run, idata)
    group = latent_group(idata)
    has_truth = "z_aligned" in group
    alignment = alignment_from_idata(idata)
    obs = np.asarray(group.obs)
    n_draws = group.sizes.get("chain", 1) * group.sizes.get("draw", 1)
    if (n_draws < calibration_draws and group.attrs.get("engine", "guide") == "guide"
            and not is_point_estimate(idata)):
        idata = to_inference_data(fitted, data, num_draws=calibration_draws, obs_idx=obs,
                                  seed=seed + 1, truth=None if has_truth else False,
                                  alignment=alignment)
    z_true = np.asarray(arviz_compat.group(idata, "constant_data")["z_true"]) \
        if has_truth else None
    var = "z_aligned" if has_truth else "z"
    return Posterior(idata, alignment, obs, var, flat_draws(idata, var), z_true)


def _nuts_posterior(fitted, data, post: Posterior, rows, num_warmup: int, num_samples: int,
                    num_chains: int, seed: int):
    """NUTS on ``rows``, aligned like the guide's posterior so that the two compare."""
    return nuts_reference(fitted, data, rows, num_warmup=num_warmup, num_samples=num_samples,
                          num_chains=num_chains, seed=seed,
                          truth=None if post.z_true is not None else False,
                          alignment=post.alignment)


def _nuts_numbers(post: Posterior, nuts, rows, num_warmup: int, num_samples: int,
                  num_chains: int) -> dict:
    """Convergence of the NUTS chains on ``rows``, and the guide against them there."""
    cmp = compare_to_reference(post.draws[:, :len(rows)], flat_draws(nuts, post.var))
    return {"obs": rows.tolist(),
            "num_chains": num_chains, "num_warmup": num_warmup, "num_samples": num_samples,
            **chain_diagnostics(nuts, post.var),
            "sampling_time_s": float(
                arviz_compat.group(nuts, "posterior").attrs["sampling_time_s"]),
            "width_ratio_90_median": cmp["width_ratio_median"],
            "width_ratio_90_per_latent": cmp["width_ratio_per_latent"],
            "mean_shift_in_nuts_sd": cmp["mean_shift_median"]}


def _calibration_numbers(post: Posterior, nuts) -> dict:
    """``calibration_guide`` over the kept observations and, with NUTS,
    ``calibration_nuts_obs``: guide and NUTS on the observations NUTS sampled."""
    out = {"calibration_guide": calibration_summary(post.z_true, post.draws)}
    if nuts is not None:
        zt = np.asarray(arviz_compat.group(nuts, "constant_data")["z_true"])
        out["calibration_nuts_obs"] = {
            "guide": calibration_summary(zt, post.draws[:, :len(zt)]),
            "nuts": calibration_summary(zt, flat_draws(nuts, post.var))}
    return out


def _marginal_numbers(fitted, data, heldout, max_obs: int, num_samples: int,
                      seed: int, run: Path | None = None) -> dict:
    """The importance-sampled ``log p(x | u)`` on (a subset of) the held-out data, or of the
    training data when none is given."""
    import jax


    if heldout is not None:
        held = heldout
        if isinstance(heldout, (str, Path)):
            # a table is read with the column mapping (and the coding of u) of the fit
            columns = config_columns(run) if run is not None and is_table(heldout) else None
            held = load_dataset(heldout, columns)[0]
        where = "held-out data"
    else:
        held = data
        where = "training data (no held-out data given: not a measure of generalisation)"
    m_idx = select_obs(held.x.shape[0], max_obs, seed)
    u_m = model_inputs(fitted, np.asarray(held.u)[m_idx])
    ml = log_marginal_likelihood(fitted.spec, fitted.params, np.asarray(held.x[m_idx]), u_m,
                                 num_samples=num_samples, key=jax.random.PRNGKey(seed))
    latents = fitted.spec.latents
    # the exact flow's guide is the point mass at h(x): every importance weight is the
    # change-of-variables density itself, so the estimate is exact (standard error 0)
    method = ("exact" if latents == "point" else
              "importance sampling, noisy-flow guide as proposal" if latents == "transformed"
              else "importance sampling, encoder as proposal")
    return {"data": where, "num_obs": int(len(m_idx)), "K": ml.num_samples, "method": method,
            "mean_log_px": ml.mean, "mean_log_px_se": ml.mean_se,
            "median_ess": float(np.median(ml.ess)),
            "elbo_per_obs_train": (fitted.metrics or {}).get("elbo_per_obs")}


# --------------------------------------------------------------------------- presentation


def ppc_numbers(idata) -> dict:
    """The predictive check's number per observed column (:func:`ppl_ident.diagnostics.
    predictive.spread_check`) from the ``observed_data`` and ``posterior_predictive`` groups
    that :func:`plot_ppc` draws."""
    from ppl_ident.diagnostics.predictive import spread_check

    x = arviz_compat.group(idata, "observed_data")["x"]
    names = [str(v) for v in x.coords["x_dim"].values] if "x_dim" in x.coords else None
    rep = np.asarray(arviz_compat.group(idata, "posterior_predictive")["x"])
    return spread_check(np.asarray(x), rep.reshape(-1, *rep.shape[2:]), names)


def _ppc_html(ppc: dict) -> str:
    """The table under the predictive check: per column, replicated over observed sd, the
    bound it is flagged beyond and the predictive p-value, then the flag in words."""
    rows = [[c, f"{so:.3g}", f"{sr:.3g}", f"{r:.2f}", f"1 ± {b:.2f}", f"{p:.2f}", f]
            for c, so, sr, r, b, p, f in zip(ppc["columns"], ppc["sd_observed"],
                                              ppc["sd_replicated"], ppc["ratio"], ppc["bound"],
                                              ppc["p_value"], ppc["flag"])]
    verdict = (f"<p><b>{html.escape(ppc['message'])}</b></p>" if ppc["message"] else
               "<p>Every column's replicated spread is within the bound of the observed one.</p>")
    return verdict + table(rows, ["column", "sd observed", "sd replicated (median)",
                                  "ratio", "flagged outside", "p (replicated sd ≥ observed)",
                                  "flag"]) + (
        f'<p class="note">{ppc["num_sets"]} replicated data sets of the {ppc["num_obs"]} '
        "observations. A column is flagged when the ratio leaves 1 by more than 10 % or 3 "
        "standard errors of the observed sd (whichever is larger); a p-value near 0 means the "
        "model's replicates are narrower than the data (it under-disperses), near 1 wider.</p>")


def _plot_calibration_numbers(run: Path, numbers: dict, n_latent: int) -> Path:
    """The calibration figure of ``calibration_guide`` (and ``calibration_nuts_obs``)."""
    cal = numbers["calibration_guide"]
    curves = {"guide, equal-tailed": cal["mean_coverage_eti"],
              "guide, HDI": cal["mean_coverage_hdi"]}
    if "calibration_nuts_obs" in numbers:
        cal_g, cal_n = (numbers["calibration_nuts_obs"][k] for k in ("guide", "nuts"))
        curves[f"NUTS, equal-tailed ({cal_n['num_obs']} obs)"] = cal_n["mean_coverage_eti"]
        curves[f"guide on the same {cal_g['num_obs']} obs"] = cal_g["mean_coverage_eti"]
    return plot_calibration(curves, LEVELS, run / "calibration.png",
                            np.asarray(cal["tolerance"]),
                            f"±3 binomial s.e. ({cal['num_obs']} obs × {n_latent} latents)")


def _check_html(key: str, where: Path) -> str:
    """What the check in ``where`` (``check.json``) found, in the words of ``ppl-ident
    check``, for the variability or the Jacobian section."""
    path = where / "check.json"
    if not path.is_file():
        return ""
    result = json.loads(path.read_text())
    if key == "variability":
        v = result.get("variability") or {}
        if not v.get("applicable", True):
            text = f"Not applicable: {v.get('reason', '')}"
        else:
            holds = ", ".join(v.get("holds") or []) or "none"
            claim = "satisfies" if v.get("passed") else "is not shown to satisfy"
            text = (f"The learned prior {claim} the sufficient-variability condition "
                    f"(conditions that hold: {holds}). {v.get('reason', '')}")
    else:
        jac = result.get("jacobian") or {}
        routes = [f"{r} route: {jac[r]['verdict']} (Amari {jac[r]['amari']:.3f})"
                  for r in ("encoder", "decoder", "regression")
                  if isinstance(jac.get(r), dict) and jac[r].get("applicable", True)]
        text = "; ".join(routes) + "." if routes else ""
    return (f"<p>{html.escape(text)}</p>" if text else "") + (
        f'<p class="note">From <code>{html.escape(str(path))}</code> (<code>ppl-ident check '
        f"RUN --out RUN</code> writes it; the report runs it when it is missing).</p>")


def _summary_html(metrics, numbers, summ, idata, data, fitted) -> str:
    rows = [("model", fitted.settings.model), ("observations", data.x.shape[0]),
            ("latents", fitted.spec.n_latent),
            ("steps", len(fitted.losses)),
            ("ELBO per obs", metrics.get("elbo_per_obs", float("nan")))]
    if "mcc" in metrics:
        rows += [("MCC (Pearson)", metrics["mcc"]), ("MCC (Spearman)", metrics["mcc_spearman"])]
        if metrics.get("mcc_raw_x") is not None:
            rows.append(("MCC of raw x (baseline)", metrics["mcc_raw_x"]))
        if metrics.get("r2_per_dim") is not None:
            rows.append(("matched R² per true latent",
                         ", ".join(f"z{k}: {r:.3f}" for k, r in enumerate(metrics["r2_per_dim"]))))
    act = metrics.get("latent_activity") or {}
    if act.get("applicable"):
        rows.append(("posterior sd / prior sd per latent (≥ "
                     f"{act['threshold']:g}: collapsed)",
                     ", ".join(f"z{k}: {r:.3f}" for k, r in enumerate(act["sd_ratio"]))))
        rows.append(("collapsed latents", act["message"] or "none"))
    noise = metrics.get("observation_noise")
    if noise:
        rows.append(("observation noise (learned)", noise["message"]))
    chains = latent_group(idata).attrs.get("chains")
    if chains:
        rows.append(("chains of posterior.nc", chains))
    cal = numbers.get("calibration_guide")
    if cal:
        for lv, ce, ch in zip(cal["levels"], cal["mean_coverage_eti"], cal["mean_coverage_hdi"]):
            rows.append((f"guide coverage at {int(lv * 100)}% (equal-tailed / HDI)",
                         f"{ce:.3f} / {ch:.3f}"))
    if "nuts" in numbers:
        rows.append(("guide/NUTS 90% width ratio (median)",
                     numbers["nuts"]["width_ratio_90_median"]))
    ml = numbers.get("marginal")
    if ml is not None:
        rows.append((f"log p(x|u) per obs ({ml['data'].split(' (')[0]})", log_px_text(ml)))
    return (table(rows, ["quantity", "value"]) +
            ("<p>The point estimate z = h(x) of four observations:</p>"
             if is_point_estimate(idata) else
             "<p>ArviZ <code>az.summary(kind='stats')</code> of the guide's posterior of z for "
             "four observations:</p>") + summ.to_html(float_format=lambda v: f"{v:.3f}"))


def _calibration_html(numbers) -> str:
    cal = numbers["calibration_guide"]
    n = len(cal["coverage_eti"][0])
    header = ["nominal"] + [f"ETI z{i}" for i in range(n)] + [f"HDI z{i}" for i in range(n)] + \
        ["±3 s.e. (mean)"]
    rows = [[lv] + cal["coverage_eti"][k] + cal["coverage_hdi"][k] + [cal["tolerance"][k]]
            for k, lv in enumerate(cal["levels"])]
    corr = ", ".join(f"z{i}: {fmt(c)}" for i, c in enumerate(cal["sd_error_spearman"]))
    out = (f"<p>Share of the {cal['num_obs']} observations' true latents inside the guide's "
           "aligned interval, per latent:</p>" + table(rows, header) +
           f"<p>Spearman correlation of posterior sd with |error of the mean|: {corr}. "
           "RMSE of the aligned mean: " +
           ", ".join(f"z{i}: {fmt(r)}" for i, r in enumerate(cal["rmse"])) + ".</p>")
    if "calibration_nuts_obs" in numbers:
        g, nn = numbers["calibration_nuts_obs"]["guide"], numbers["calibration_nuts_obs"]["nuts"]
        rows = [[lv, g["mean_coverage_eti"][k], nn["mean_coverage_eti"][k], g["tolerance"][k]]
                for k, lv in enumerate(g["levels"])]
        out += (f"<p>On the {g['num_obs']} observations sampled by NUTS (equal-tailed, mean "
                "over latents):</p>" + table(rows, ["nominal", "guide", "NUTS", "±3 s.e."]))
    return out


def _nuts_html(nu) -> str:
    rows = [("observations", len(nu["obs"])),
            ("chains × (warm-up + draws)",
             f"{nu['num_chains']} × ({nu['num_warmup']} + {nu['num_samples']})"),
            ("max R-hat", nu["max_r_hat"]), ("min bulk ESS", nu["min_ess_bulk"]),
            ("min tail ESS", nu["min_ess_tail"]), ("divergences", nu["divergences"]),
            ("sampling time (s, compile included)", nu["sampling_time_s"]),
            ("guide / NUTS 90% interval width, median", nu["width_ratio_90_median"]),
            ("… per latent", ", ".join(fmt(v) for v in nu["width_ratio_90_per_latent"])),
            ("|guide mean − NUTS mean| / NUTS sd, median", nu["mean_shift_in_nuts_sd"])]
    return ('<p>NUTS samples p(z | x, u) with the fitted decoder, prior and noise held fixed: '
            "the exact posterior of the fitted model, which the amortised guide approximates. "
            "A width ratio below 1 means the guide is over-confident relative to the model.</p>"
            + table(rows, ["quantity", "value"]))


def log_px_text(ml: dict) -> str:
    """``mean log p(x|u)`` with its Monte Carlo error, or ``(exact)`` where there is none (a
    zero error printed as ``± 0.0000`` would read as a measured certainty)."""
    if ml.get("method") == "exact" or not ml["mean_log_px_se"]:
        return f"{ml['mean_log_px']:.4f} (exact)"
    return f"{ml['mean_log_px']:.4f} ± {ml['mean_log_px_se']:.4f}"


def _marginal_html(ml) -> str:
    exact = ml.get("method") == "exact"
    rows = [("data", ml["data"]), ("observations", ml["num_obs"])]
    if not exact:
        rows.append(("importance samples K", ml["K"]))
    rows.append(("mean log p(x|u) per observation", log_px_text(ml)))
    if not exact:
        rows.append(("median importance-weight ESS (of K)", ml["median_ess"]))
    rows.append(("training ELBO per observation", ml["elbo_per_obs_train"]))
    if exact:
        how = ("Exact: the flow's change of variables, log p(x | u) = log p(h(x) | u) + "
               "log |det J<sub>h</sub>(x)| (for d &gt; n with the discarded directions scored "
               "as isotropic Gaussian noise), with no sampling and so no Monte Carlo error.")
    else:
        how = (f"Importance sampling ({html.escape(ml.get('method', 'encoder as proposal'))}; "
               "see <code>ppl_ident.inference.marginal</code>); ± is the Monte Carlo standard "
               "error.")
    return (f"<p>{how} <code>az.loo</code> on the stored conditional log-likelihood is not "
            "used: each observation has its own latent, so it does not estimate the predictive "
            "density of new data.</p>" + table(rows, ["quantity", "value"]))


def _optional_html(key, metrics) -> str:
    value = metrics.get(key)
    if value is None:
        return ""
    if isinstance(value, dict):
        rows = [(k, v if not isinstance(v, (list, dict)) else json.dumps(v)[:80])
                for k, v in value.items()]
        return table(rows, ["metric", "value"])
    return f"<p>{html.escape(json.dumps(value)[:400])}</p>"


# --------------------------------------------------------------------------- sections
#
# Each builder takes the ReportContext and adds its numbers (report.json), figures and HTML
# part; one with nothing to show adds no part, and the page leaves its section out. Builders
# read what the posterior holds (a point estimate, latent paths, regime probabilities), never
# the family's or the model's name.


def _iid_posterior(ctx: ReportContext) -> Posterior:
    post = _guide_posterior(ctx.run, ctx.fitted, ctx.data, ctx.options["calibration_draws"],
                            ctx.options["seed"])
    ctx.numbers["engine"] = latent_group(post.idata).attrs.get("engine", "guide")
    return post


#: the layout of a family's posterior (its ``obs_dims``) -> how the report reads it
POSTERIORS = {("obs",): _iid_posterior, ("sequence", "time"): seq.sequence_posterior}


def _nuts(ctx: ReportContext) -> None:
    """NUTS on a few observations with the fitted model held fixed, against the guide."""
    post, o, latents = ctx.post, ctx.options, ctx.fitted.spec.latents
    # NUTS samples the model's own latent site z: an exact-likelihood flow's z is a point
    # mass (nothing to sample), the noisy flow's site is w
    if o["nuts_obs"] > 0 and latents == "posterior":
        rows = post.obs[:o["nuts_obs"]]
        nuts = _nuts_posterior(ctx.fitted, ctx.data, post, rows, o["nuts_warmup"],
                               o["nuts_samples"], o["nuts_chains"], o["seed"])
        ctx.idatas["NUTS"] = nuts
        ctx.numbers["nuts"] = _nuts_numbers(post, nuts, rows, o["nuts_warmup"],
                                            o["nuts_samples"], o["nuts_chains"])
        ctx.parts["nuts"] = _nuts_html(ctx.numbers["nuts"])
    elif latents == "transformed":
        ctx.parts["nuts"] = ("<p>Noisy flow model: its posterior over z is the guide's "
                             "full-covariance Gaussian over the noise-free observation, pushed "
                             "through the flow (z = h(w)). A NUTS reference for it (sampling w) "
                             "is not built yet; NUTS runs on the variational models' z.</p>")
    elif latents == "point":
        ctx.parts["nuts"] = ("<p>Exact-likelihood flow model: z = h(x) is a point estimate (the "
                             "posterior is a point mass), so there is no posterior over z for "
                             "NUTS to sample. The uncertainty of such a fit is in its "
                             "parameters: compare fits with other seeds, or fit the variational "
                             "model (--no-flow) for a posterior over z.</p>")


def _calibration(ctx: ReportContext) -> None:
    """Coverage of the guide's aligned intervals (and NUTS's, when it ran)."""
    post = ctx.post
    if post.sequential:   # over every step of the kept sequences
        seq.sequence_calibration(ctx)
        return
    if is_point_estimate(post.idata):
        ctx.parts["calibration"] = (
            "<p>Exact-likelihood flow model: each observation's z = h(x) is a point estimate "
            "(stored in the <code>point_estimate</code> group of posterior.nc), so there are "
            "no intervals to calibrate and no forest plot.</p>")
        return
    if post.z_true is None:
        return
    ctx.numbers.update(_calibration_numbers(post, ctx.idatas.get("NUTS")))
    ctx.figures["calibration"] = _plot_calibration_numbers(ctx.run, ctx.numbers,
                                                           post.z_true.shape[1])
    ctx.parts["calibration"] = img(ctx.figures["calibration"], "calibration") + \
        _calibration_html(ctx.numbers)


def _marginal(ctx: ReportContext) -> None:
    o = ctx.options
    ctx.numbers["marginal"] = _marginal_numbers(ctx.fitted, ctx.data, o["heldout"],
                                                o["marginal_obs"], o["marginal_samples"],
                                                o["seed"], ctx.run)
    ctx.parts["marginal"] = _marginal_html(ctx.numbers["marginal"])


def _loss(ctx: ReportContext) -> None:
    ctx.figures["loss"] = plot_loss(ctx.fitted.losses, ctx.run / "loss_trace.png")
    elbo = ctx.metrics.get("elbo_per_obs")
    unit = "time step" if ctx.post.sequential else "observation"
    ctx.parts["loss"] = img(ctx.figures["loss"], "loss trace") + (
        f'<p class="note">{len(ctx.fitted.losses)} steps; final full-data ELBO per {unit} '
        f'{fmt(float("nan") if elbo is None else elbo)}.</p>')


def _truth(ctx: ReportContext) -> None:
    post = ctx.post
    if post.z_true is None:
        return
    point = is_point_estimate(post.idata)
    ctx.figures["truth"] = plot_truth(post.z_true, post.draws, post.alignment,
                                      ctx.run / "posterior_vs_truth.png")
    ctx.parts["truth"] = img(ctx.figures["truth"], "true vs posterior mean") + (
        f'<p class="note">{len(post.obs)} observations kept in posterior.nc, '
        + ("a point estimate each" if point else f"{len(post.draws)} guide draws each")
        + ". Learned latents are matched to true ones (Hungarian on correlations), then "
        "mapped by a per-dimension affine fit of the guide's mean on all data; "
        + ("no bars: a point estimate z = h(x) has no interval.</p>" if point else
           "bars are 90% equal-tailed intervals.</p>"))


def _forest(ctx: ReportContext) -> None:
    post, o = ctx.post, ctx.options
    if is_point_estimate(post.idata):   # no draws of z: no forest plot
        return
    k = min(o["forest_obs"], len(post.obs) if "NUTS" not in ctx.idatas else
            min(len(post.obs), o["nuts_obs"]))
    ctx.figures["forest"] = plot_forest(ctx.idatas, post.obs[:k], post.var,
                                        None if post.z_true is None else post.z_true[:k],
                                        ctx.run / "forest.png")
    crosses = "Crosses: true values. " if post.z_true is not None else ""
    ctx.parts["forest"] = img(ctx.figures["forest"], "forest plot") + (
        f'<p class="note">{crosses}Thick bars: interquartile range; thin: 90% HDI.</p>')


def _ppc(ctx: ReportContext) -> None:
    idata = ctx.post.idata
    point = is_point_estimate(idata)
    if point:
        # the predictive check of a point estimate draws new data from the fitted model
        if not arviz_compat.has_group(idata, "posterior_predictive"):
            return
        ctx.figures["ppc"] = plot_ppc(idata, ctx.run / "ppc.png", replicated="model")
    else:
        ctx.figures["ppc"] = plot_ppc(idata, ctx.run / "ppc.png")
    ctx.numbers["ppc"] = ppc_numbers(idata)
    ctx.parts["ppc"] = img(ctx.figures["ppc"], "posterior predictive check") + \
        _ppc_html(ctx.numbers["ppc"])
    if point:
        ctx.parts["ppc"] += ('<p class="note">Exact-likelihood flow model: x = h<sup>-1</sup>(z) '
                             "gives back the data for its own z, so the replicated data sets "
                             "are new data from the fitted model: z drawn from the learned "
                             "prior p(z | u) of each kept row's u, then decoded. Where they "
                             "miss the observed density, the flow or the factorial prior "
                             "does not fit.</p>")


def _agreement(ctx: ReportContext) -> None:
    from ppl_ident.reporting.dataset_view import agreement_section

    path, ctx.parts["agreement"], agreement = agreement_section(ctx.run, ctx.metrics)
    if path is not None:
        ctx.figures["agreement"], ctx.numbers["seed_agreement"] = path, agreement


def _prior(ctx: ReportContext) -> None:
    """The learned prior per domain (a table of location and scale per domain)."""
    from ppl_ident.reporting.dataset_view import plot_prior_table

    fitted = ctx.fitted
    prior = ctx.family.learned_prior_table(fitted.spec, fitted.params)
    if prior is None:
        ctx.parts["prior"] = ("<p>This model has no per-domain prior table (the VAE's prior "
                              "is a standard normal that ignores u; a continuous u enters "
                              "through a network).</p>")
        return
    names = _domain_names(fitted, config_columns(ctx.run))
    checked = "variability" in ctx.figures   # the prior's caption points to that section
    ctx.figures["prior"] = plot_prior_table(prior["loc"], prior["sd"],
                                            names or range(len(prior["loc"])),
                                            ctx.run / "learned_prior.png")
    ctx.numbers["learned_prior"] = {"domains": names, "loc": prior["loc"].round(4).tolist(),
                                    "sd": prior["sd"].round(4).tolist()}
    n = prior["loc"].shape[1]
    rows = [[d] + [f"{prior['loc'][i, j]:.3f} / {prior['sd'][i, j]:.3f}" for j in range(n)]
            for i, d in enumerate(names or range(len(prior["loc"])))]
    ctx.parts["prior"] = img(ctx.figures["prior"], "learned prior per domain") + (
        "<p>Location / standard deviation of the learned p(z<sub>j</sub> | u) per domain. "
        "Identifiability needs these to vary across domains ("
        + ("the sufficient-variability section below checks it" if checked else
           "<code>ppl-ident check RUN --out RUN</code> checks it, and the report shows it "
           "then") + "); a latent whose scale is the same in every domain is not pinned "
        "down by u.</p>") + table(rows, ["domain"] + [f"z{j}" for j in range(n)])


def _row_summary(ctx: ReportContext) -> dict:
    """The guide's mean and sd of every row (a seeded subset of large data), computed once
    for the latents and posterior-sd sections."""
    from ppl_ident.data.simulate import Dataset
    from ppl_ident.families.base import EVAL_ROWS, evaluation_rows
    from ppl_ident.workflow import latent_summary

    if "rows" not in ctx.cache:
        data = ctx.data
        if data.x.shape[0] > EVAL_ROWS:
            # large data: the views of every row are drawn from the evaluation rows (a seeded
            # subset; every row's latents come from `ppl-ident encode`)
            keep = evaluation_rows(data.x.shape[0], EVAL_ROWS, ctx.options["seed"])
            data = Dataset(np.asarray(data.x[keep]),
                           None if data.u is None else data.u[keep], None)
        ctx.cache["rows"] = (latent_summary(ctx.fitted, data), data)
    return ctx.cache["rows"]


def _latents(ctx: ReportContext) -> None:
    from ppl_ident.reporting.dataset_view import plot_latents_by_domain

    summ, data = _row_summary(ctx)
    u_model = model_inputs(ctx.fitted, data.u)
    ctx.figures["latents"] = plot_latents_by_domain(
        summ["mean"], None if u_model is None else np.asarray(u_model),
        _domain_names(ctx.fitted, config_columns(ctx.run)), ctx.run / "latents_by_domain.png",
        seed=ctx.options["seed"])
    ctx.parts["latents"] = img(ctx.figures["latents"], "latents by domain") + (
        "<p>Posterior means (a seeded subset of rows) of consecutive pairs of latents. For an "
        "iVAE the domains' clouds differ in spread or position along single latents, as the "
        "learned prior says.</p>")


def _posterior_sd(ctx: ReportContext) -> None:
    from ppl_ident.reporting.dataset_view import plot_posterior_sd

    summ, _ = _row_summary(ctx)
    if float(np.max(summ["sd"])) > 0:
        ctx.figures["posterior_sd"] = plot_posterior_sd(summ["sd"], ctx.run / "posterior_sd.png")
        ctx.numbers["posterior_sd_median"] = np.median(summ["sd"], axis=0).tolist()
        ctx.parts["posterior_sd"] = img(ctx.figures["posterior_sd"], "posterior sd") + (
            "<p>The guide's standard deviation of each latent for every row: where it is "
            "spread widely, some rows are much less certain than others.</p>")
    else:
        ctx.parts["posterior_sd"] = ("<p>Exact-likelihood flow: every row's z = h(x) is a "
                                     "point estimate (sd 0). Its uncertainty is over "
                                     "parameters: see the agreement between seeds.</p>")


def _check_section(key: str):
    """The builder of a section of the check's figures (``OPTIONAL[key]``): those written
    into the run (``ppl-ident check RUN --out RUN``, or the check the report ran), what the
    check found, and the fit's own number of that name."""
    def build(ctx: ReportContext) -> None:
        names = [n for n in OPTIONAL[key] if n in ctx.figures]
        if not names:
            return
        title = SECTIONS[key]
        ctx.parts[key] = "".join(img(ctx.figures[n], f"{title} ({n.replace('_', ' ')})")
                                 for n in names) \
            + _check_html(key, ctx.figures[names[0]].parent) + _optional_html(key, ctx.metrics)
    build.__doc__ = f"The {SECTIONS[key].lower()} of the run's check."
    return build


def _summary(ctx: ReportContext) -> None:
    """The verdict first (the first lines answer "identified?"), then the run's numbers."""
    fitted, family = ctx.fitted, ctx.family
    if family.permutation_null:
        verdict = verdict_html(ctx.run, ctx.metrics, fitted.settings.model,
                               family.prior_depends_on_u(fitted.spec))
    else:
        verdict = untestable_html(family.label)
    if ctx.post.sequential:
        body = seq.sequence_summary_html(ctx)
    else:
        idata, obs = ctx.post.idata, ctx.post.obs
        if is_point_estimate(idata):
            summ = latent_group(idata)["z"].sel(obs=obs[:4]).to_dataframe()[["z"]]
        else:
            summ = arviz_compat.summary_stats(idata, "z", {"obs": obs[:4]}, hdi_prob=0.9)
        body = _summary_html(ctx.metrics, ctx.numbers, summ, idata, ctx.data, fitted)
    ctx.parts["summary"] = verdict + body


#: section -> its builder, in the order they run (a builder may read what an earlier one
#: added: calibration reads NUTS, forest the NUTS rows, the summary every number); a family's
#: ``report_sections`` choose among them and order the page
BUILDERS = {
    "nuts": _nuts,
    "calibration": _calibration,
    "marginal": _marginal,
    "loss": _loss,
    "truth": _truth,
    "forest": _forest,
    "ppc": _ppc,
    "trajectories": seq.trajectories,
    "regimes": seq.regimes,
    "transitions": seq.transitions,
    "agreement": _agreement,
    "prior": _prior,
    "latents": _latents,
    "posterior_sd": _posterior_sd,
    "jacobian": _check_section("jacobian"),
    "variability": _check_section("variability"),
    "skipped": seq.skipped,
    "summary": _summary,
}
