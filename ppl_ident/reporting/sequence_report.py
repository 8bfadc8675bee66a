"""The run report of a sequence model: latent trajectories, interval coverage, regimes.

:func:`ppl_ident.reporting.report.build_report` hands runs of ``tivae``, ``regime`` and
``stationary`` models to :func:`build_sequence_report`, which writes into the run directory:

- ``loss_trace.png``: the training loss (as for i.i.d. runs);
- ``trajectories.png``: for a few sequences, each latent's posterior mean over time with its
  90 % HDI (ArviZ), the true latent overlaid after the affine alignment of
  :mod:`ppl_ident.diagnostics.calibration` when the data hold ``z``;
- ``calibration.png``: nominal against empirical coverage of the aligned intervals over every
  step of the sequences kept in ``posterior.nc`` (``z`` known);
- ``regimes.png`` (regime model): the smoothed regime posterior, averaged over draws of the
  latent path, and its most probable regime against the true path when the data file holds
  it;
- ``report.json`` and a self-contained ``report.html``.

The plotting functions :func:`plot_trajectories` and :func:`plot_regimes` take plain arrays
and are shared with ``examples/sequences.py``.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import numpy as np

from ppl_ident.arviz_compat import group, has_group, summary_stats
from ppl_ident.diagnostics.calibration import (
    LEVELS,
    apply_alignment,
    calibration_summary,
    fit_alignment,
    intervals,
)
from ppl_ident.diagnostics.sequences import match_regimes, transition_matrix_error
from ppl_ident.errors import InputError
from ppl_ident.families.predict import encode
from ppl_ident.families.sequence.idata import sequence_inference_data
from ppl_ident.families.sequence.inputs import prepare_sequence_inputs
from ppl_ident.reporting.inference_data import (POSTERIOR_FILE, flat_draws, is_point_estimate,
                                                latent_group, read_posterior, write_posterior)
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
from ppl_ident.reporting.plots import CHECK_SECTIONS, check_figures
from ppl_ident.workflow import evaluate

__all__ = ["SEQUENCE_SECTIONS", "build_sequence_report", "plot_trajectories", "plot_regimes"]

SEQUENCE_SECTIONS = {
    "summary": "Summary",
    "loss": "Loss trace",
    "agreement": "Agreement between seeds",
    "trajectories": "Latent trajectories of a few sequences",
    "calibration": "Calibration of posterior intervals",
    "regimes": "Regime posterior",
    "transitions": "Regime transition matrix",
    "jacobian": "Jacobian heatmap",
    "variability": "Sufficient-variability spectrum",
    "skipped": "Not computed for sequence models",
}


# --------------------------------------------------------------------------- figures


def _shown(sequences, num: int) -> list:
    seqs = list(range(min(3, num))) if sequences is None else [int(b) for b in sequences]
    if not seqs or min(seqs) < 0 or max(seqs) >= num:
        raise InputError(f"sequences to show must be indices in 0..{num - 1}; got {seqs}.")
    return seqs


def plot_trajectories(draws, path, *, z_true=None, sequences=None, level: float = 0.9,
                      title: str | None = None) -> Path:
    """Posterior mean and ``level`` HDI of each latent over time, a few sequences side by side.
    Parameters
    ----------
    draws : array ``(S, B, T, n)``
        Posterior draws of the latent paths (chain and draw flattened); aligned onto the true
        latents (:func:`~ppl_ident.diagnostics.calibration.apply_alignment`) when ``z_true``
        is given.
    path : path of the PNG written.
    z_true : array ``(B, T, n)``, optional
        True latents, drawn dashed over the band.
    sequences : list of int, optional
        Sequences shown, one column each (default: the first three).
    level : float
        Probability of the HDI (:func:`ppl_ident.arviz_compat.hdi`).
    title : str, optional

    Returns
    -------
    Path
    """
    plt = pyplot()
    draws = np.asarray(draws)
    if draws.ndim != 4:
        raise InputError(f"plot_trajectories needs draws (S, B, T, n); got {draws.shape}.")
    S, B, T, n = draws.shape
    seqs = _shown(sequences, B)
    sub = draws[:, seqs]                                         # (S, b, T, n)
    mean = sub.mean(0)
    hdi = intervals(sub.reshape(S, -1, n), level, "hdi").reshape(len(seqs), T, n, 2)
    t = np.arange(T)
    cols = len(seqs)
    fig, axes = plt.subplots(n, cols, figsize=(3.4 * cols + 0.6, 1.45 * n + 0.7),
                             sharex=True, squeeze=False)
    name = "aligned z" if z_true is not None else "learned z"
    for c, b in enumerate(seqs):
        for i in range(n):
            ax = axes[i, c]
            ax.fill_between(t, hdi[c, :, i, 0], hdi[c, :, i, 1], color="C0", alpha=0.3,
                            lw=0, label=f"{int(level * 100)}% HDI")
            ax.plot(t, mean[c, :, i], color="C0", lw=1, label="posterior mean")
            if z_true is not None:
                ax.plot(t, np.asarray(z_true)[b, :, i], color="k", lw=1, ls="--",
                        label="true")
            if c == 0:
                ax.set_ylabel(f"{name}{i}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        axes[0, c].set_title(f"sequence {b}", fontsize=8)
        axes[-1, c].set_xlabel("time step", fontsize=8)
    axes[0, 0].legend(fontsize=6, ncol=3, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, Path(path))


def plot_regimes(probs, path, *, true_path=None, mapping=None, sequences=None,
                 title: str | None = None) -> Path:
    """Posterior regime probabilities over time (top) and the most probable regime against
    the true path (bottom), a few sequences side by side.

    Parameters
    ----------
    probs : array ``(B, T, K)``
        Posterior probability of each learned regime at each step (e.g. the smoothed
        probabilities averaged over draws of the latent path).
    path : path of the PNG written.
    true_path : int array ``(B, T)``, optional
    mapping : int array ``(K,)``, optional
        True regime matched to each learned one
        (:func:`~ppl_ident.diagnostics.sequences.match_regimes`; ``-1``: unmatched); learned
        labels are renamed with it. Default: learned labels as they are.
    sequences : list of int, optional
        Default: the first three.
    title : str, optional

    Returns
    -------
    Path
    """
    plt = pyplot()
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise InputError(f"plot_regimes needs probabilities (B, T, K); got {probs.shape}.")
    B, T, K = probs.shape
    seqs = _shown(sequences, B)
    prefix = "learned regime" if mapping is None else "regime"
    mapping = np.arange(K) if mapping is None else np.asarray(mapping)
    known = mapping >= 0
    n_labels = max(K, int(mapping.max()) + 1)
    # unmatched learned regimes get labels (and colours) after the true ones
    names = np.where(known, mapping, n_labels + np.cumsum(~known) - 1)
    t = np.arange(T)
    cols = len(seqs)
    fig, axes = plt.subplots(2, cols, figsize=(3.4 * cols + 0.6, 2.8), sharex=True,
                             squeeze=False, gridspec_kw={"height_ratios": [2, 1]})
    for c, b in enumerate(seqs):
        top, bottom = axes[0, c], axes[1, c]
        for j in range(K):
            label = f"{prefix} {names[j]}" if known[j] else f"unmatched learned {j}"
            top.plot(t, probs[b, :, j], color=f"C{names[j]}", lw=1.1, label=label)
        top.set_ylim(-0.03, 1.03)
        top.set_title(f"sequence {b}", fontsize=8)
        if true_path is not None:
            bottom.step(t, np.asarray(true_path)[b], where="mid", color="k", lw=1.5,
                        label="true")
        bottom.step(t, names[probs[b].argmax(-1)], where="mid", color="C3", lw=1, ls="--",
                    label="most probable")
        bottom.set_yticks(sorted(set(names.tolist())))
        bottom.set_xlabel("time step", fontsize=8)
        for ax in (top, bottom):
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("p(regime | x)", fontsize=8)
    axes[1, 0].set_ylabel("regime", fontsize=8)
    axes[0, 0].legend(fontsize=6, ncol=min(K, 3), loc="best")
    axes[1, 0].legend(fontsize=6, ncol=2, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, Path(path))


# --------------------------------------------------------------------------- main


def _skip_reasons(nuts_obs: int, heldout) -> dict:
    reasons = {}
    if nuts_obs > 0:
        reasons["nuts"] = (
            "The NUTS reference posterior is implemented for i.i.d. models (one latent vector "
            "per observation); a sequence's latents are coupled along time by the transition "
            "prior, so the --nuts-* options are ignored.")
    reasons["marginal"] = (
        "The importance-sampled marginal likelihood log p(x | u) is implemented for i.i.d. "
        "models only" + ("; the --heldout file was not read." if heldout is not None else "."))
    reasons["ppc"] = ("The posterior predictive check and the forest plot are drawn for "
                      "i.i.d. models; the trajectories above show the posterior per step.")
    return reasons


def _sequence_posterior(run: Path, fitted, data, truth, calibration_draws: int, seed: int):
    """The posterior of ``posterior.nc`` (built and written when absent), with fresh draws in
    memory when it holds fewer than ``calibration_draws``."""
    if (run / POSTERIOR_FILE).is_file():
        idata = read_posterior(run)
        post = latent_group(idata)
        if "sequence" not in post.dims or "time" not in post.dims:
            raise InputError(f"{run / POSTERIOR_FILE} is not the posterior of a sequence model "
                             f"(dims {tuple(post.dims)}); delete it and run the report again "
                             "to rebuild it.")
        if post.sizes["sequence"] > data.x.shape[0] or post.sizes["time"] != data.x.shape[1]:
            raise InputError(
                f"{run / POSTERIOR_FILE} holds {post.sizes['sequence']} sequences of "
                f"{post.sizes['time']} steps, the data {data.x.shape[0]} of "
                f"{data.x.shape[1]}; pass the fitted data with --data FILE, or delete "
                f"{POSTERIOR_FILE} to rebuild it.")
    else:
        idata = sequence_inference_data(fitted, data, seed=seed, truth=truth)
        write_posterior(run, idata)
    post = latent_group(idata)
    num_seq = post.sizes["sequence"]
    regimes = None
    if has_group(idata, "constant_data") and "regimes_true" in group(idata, "constant_data"):
        regimes = np.asarray(group(idata, "constant_data")["regimes_true"])
    n_draws = post.sizes.get("chain", 1) * post.sizes.get("draw", 1)
    fresh = n_draws < calibration_draws and not is_point_estimate(idata)
    if fresh:
        idata = sequence_inference_data(fitted, data, num_draws=calibration_draws,
                                        max_sequences=num_seq, seed=seed + 1, truth=truth)
    if getattr(truth, "regimes", None) is not None:
        regimes = np.asarray(truth.regimes)[:num_seq]
    return idata, regimes, fresh


def build_sequence_report(run_dir, fitted, data, truth=None, *, heldout=None,
                          nuts_obs: int = 0, show_sequences: int = 3,
                          calibration_draws: int = 400, seed: int = 0) -> ReportResult:
    """Write the figures, ``report.json`` and ``report.html`` of a sequence model's run.
    Called by :func:`ppl_ident.reporting.report.build_report`, which loads the run and its
    data.

    Parameters
    ----------
    run_dir : path
    fitted : Fitted
        A ``tivae``, ``regime`` or ``stationary`` model.
    data : Dataset
        The fitted sequences ``x`` ``(B, T, d)``.
    truth : SequenceTruth, optional
        The simulator's ground truth: regime path and transition matrix.
    heldout : optional
        Only noted: the marginal likelihood is not computed for sequences.
    nuts_obs : int
        Only noted when positive: no NUTS reference for sequences.
    show_sequences : int
        Sequences drawn in the figures (the first of those kept in ``posterior.nc``).
    calibration_draws : int
        When ``posterior.nc`` holds fewer guide draws, fresh draws for the same sequences are
        taken (in memory) for every figure and number.
    seed : int

    Returns
    -------
    ReportResult
        ``numbers`` (``report.json``) holds ``mcc`` (over every step of every sequence),
        ``coverage_90`` (share of aligned true latents inside the 90 % intervals, HDI and
        equal-tailed), ``calibration_guide`` (every level), ``regimes`` (accuracy after
        label matching, transition-matrix error) and ``skipped`` (what is not computed, and
        why).

    Examples
    --------
    >>> build_report("runs/regime").sections                            # doctest: +SKIP
    ['summary', 'loss', 'trajectories', 'calibration', 'regimes', 'transitions', 'skipped']
    """
    t_all = time.perf_counter()
    timings = {}
    run = Path(run_dir)
    cfg = fitted.spec.config
    name = cfg["name"]
    B, T, d = data.x.shape
    if d != cfg["data_dim"]:
        raise InputError(f"The model of {run} was fitted on {cfg['data_dim']}-dimensional x; "
                         f"the data have d = {d}. Pass the fitted data with --data FILE.")

    t0 = time.perf_counter()
    idata, regimes_kept, fresh = _sequence_posterior(run, fitted, data, truth,
                                                     calibration_draws, seed)
    draws = flat_draws(idata, "z")                                 # (S, b, T, n)
    num_seq = draws.shape[1]
    timings["posterior"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    metrics = evaluate(fitted, data, truth)
    numbers = {
        "engine": "guide", "kind": "sequences", "model": name,
        "num_sequences": int(B), "length": int(T), "num_latents": int(cfg["n_latent"]),
        "posterior": {"sequences": int(num_seq), "draws": int(draws.shape[0]),
                      "fresh_draws": bool(fresh)},
        "elbo_per_step": (fitted.metrics or {}).get("elbo_per_obs"),
        "mcc": metrics.get("mcc"), "mcc_spearman": metrics.get("mcc_spearman"),
        "mcc_per_dim": metrics.get("mcc_per_dim"), "mcc_raw_x": metrics.get("mcc_raw_x"),
    }
    notes = {}
    if cfg.get("flow"):
        notes["posterior"] = ("exact-likelihood flow model: z_t = h(x_t) is a point estimate, "
                              "so it has no intervals to calibrate (posterior.nc holds it in "
                              "its point_estimate group)")
    z_true = alignment = None
    if data.z is not None:
        u, _ = prepare_sequence_inputs(data.u, name, fitted.labels)
        mean, _ = encode(fitted.spec, fitted.params, data.x, u)
        mean = np.asarray(mean)
        if np.all(np.isfinite(mean)) and np.all(np.isfinite(draws)):
            n_true = data.z.shape[-1]
            # the map is a property of the fitted model: fit it on every step of every sequence
            alignment = fit_alignment(np.asarray(data.z).reshape(-1, n_true),
                                      mean.reshape(-1, mean.shape[-1]))
            z_true = np.asarray(data.z)[:num_seq]
            draws = apply_alignment(alignment, draws)
        else:
            notes["truth"] = "the posterior means are not finite (a diverged fit?)"
    timings["metrics"] = time.perf_counter() - t0

    figures, parts = {}, {}
    t0 = time.perf_counter()
    if z_true is not None:
        numbers["alignment"] = {"matching": alignment.matching.tolist(),
                                "slope": alignment.slope.tolist(),
                                "intercept": alignment.intercept.tolist(),
                                "r2": alignment.r2.tolist()}
    if z_true is not None and not is_point_estimate(idata):   # a point has no intervals
        n_true = z_true.shape[-1]
        cal = calibration_summary(z_true.reshape(-1, n_true),
                                  draws.reshape(draws.shape[0], -1, n_true))
        k90 = cal["levels"].index(0.9)
        numbers["coverage_90"] = {"hdi": cal["mean_coverage_hdi"][k90],
                                  "eti": cal["mean_coverage_eti"][k90],
                                  "steps": cal["num_obs"]}
        numbers["calibration_guide"] = cal
        figures["calibration"] = plot_calibration(
            {"guide, equal-tailed": cal["mean_coverage_eti"],
             "guide, HDI": cal["mean_coverage_hdi"]}, LEVELS, run / "calibration.png",
            np.asarray(cal["tolerance"]),
            f"±3 binomial s.e. ({cal['num_obs']} steps × {n_true} latents, not independent)")
    timings["calibration"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    shown = list(range(min(max(1, show_sequences), num_seq)))
    figures["loss"] = plot_loss(fitted.losses, run / "loss_trace.png")
    mcc_txt = "" if numbers["mcc"] is None else f" (MCC over all steps {numbers['mcc']:.2f})"
    figures["trajectories"] = plot_trajectories(
        draws, run / "trajectories.png", z_true=z_true, sequences=shown,
        title=("Aligned latent paths" if z_true is not None else "Learned latent paths")
        + mcc_txt)
    if "regime_probs" in latent_group(idata):  # hidden regimes: their posterior and chain
        probs = flat_draws(idata, "regime_probs").mean(0)           # (b, T, K)
        K = probs.shape[-1]
        reg = {"num_regimes": int(K),
               "learned_trans_matrix": metrics.get("learned_trans_matrix"),
               "learned_init_probs": metrics.get("learned_init_probs")}
        mapping = None
        if "regime_mapping" in metrics:
            mapping = np.asarray(metrics["regime_mapping"])
            reg.update({
                "accuracy": metrics["regime_accuracy"],
                "accuracy_smoothed": metrics["regime_accuracy_smoothed"],
                "mapping": metrics["regime_mapping"],
                "trans_matrix_max_abs_error": metrics.get("trans_matrix_max_abs_error"),
                "trans_matrix_frobenius_error": metrics.get("trans_matrix_frobenius_error"),
            })
            true_P = np.asarray(truth.trans_matrix)
            reg["true_trans_matrix"] = true_P.tolist()
            if sorted(mapping.tolist()) == list(range(true_P.shape[0])):
                reg["matched_trans_matrix"] = transition_matrix_error(
                    true_P, np.asarray(metrics["learned_trans_matrix"]), mapping
                )["matched"].tolist()
        elif regimes_kept is not None:
            # regime path known for the kept sequences only (from posterior.nc)
            mapping = match_regimes(regimes_kept, probs.argmax(-1),
                                    int(regimes_kept.max()) + 1, K).mapping
            reg["mapping"] = mapping.tolist()
        if regimes_kept is not None and mapping is not None:
            reg["accuracy_posterior_draws"] = float(
                np.mean(mapping[probs.argmax(-1)] == regimes_kept))
            reg["accuracy_posterior_draws_sequences"] = int(num_seq)
        numbers["regimes"] = reg
        acc = reg.get("accuracy")
        figures["regimes"] = plot_regimes(
            probs, run / "regimes.png", true_path=regimes_kept, mapping=mapping,
            sequences=shown,
            title="Regime posterior" + ("" if acc is None else
                                        f" (accuracy over all sequences {acc:.2f})"))
    timings["figures"] = time.perf_counter() - t0

    numbers["skipped"] = _skip_reasons(nuts_obs, heldout)
    if notes:
        numbers["notes"] = notes

    t0 = time.perf_counter()
    first = {"sequence": [0], "time": list(range(min(3, T)))}
    if is_point_estimate(idata):
        summ = latent_group(idata)["z"].sel(**first).to_dataframe()[["z"]]
    else:
        summ = summary_stats(idata, "z", first, hdi_prob=0.9)
    parts["summary"] = (
        '<div class="verdict"><p><b>Identified? Not tested.</b> The verdict test against refits '
        "with permuted labels is implemented for i.i.d. models only; for a sequence model read "
        "the learned transition's check (<code>ppl-ident check RUN</code>) and the agreement "
        "between seeds below.</p></div>"
        + _summary_html(numbers, fitted, summ, is_point_estimate(idata)))
    elbo = numbers["elbo_per_step"]
    parts["loss"] = img(figures["loss"], "loss trace") + (
        f'<p class="note">{len(fitted.losses)} steps; final full-data ELBO per time step '
        f'{fmt(float("nan") if elbo is None else elbo)}.</p>')
    parts["trajectories"] = img(figures["trajectories"], "latent trajectories") + (
        f'<p class="note">{num_seq} sequences kept in posterior.nc, '
        + ("the point estimate of each path (no band: no intervals). "
           if is_point_estimate(idata) else
           f'{numbers["posterior"]["draws"]} guide draws of each path'
           + (" (fresh draws: the file holds fewer)" if fresh else "") + ". Band: 90% HDI "
           "(ArviZ) at each step; line: posterior mean. ")
        + ("Learned latents are matched to the true ones (Hungarian on correlations) and "
           "mapped by a per-dimension affine fit of the guide's mean on every step of every "
           "sequence; dashed: the true latent.</p>" if z_true is not None else
           "The data hold no true latents: the learned latents are shown as fitted.</p>"))
    if "calibration" in figures:
        parts["calibration"] = img(figures["calibration"], "calibration") + \
            _coverage_html(numbers["calibration_guide"])
    if "regimes" in figures:
        parts["regimes"] = img(figures["regimes"], "regime posterior") + _regimes_html(
            numbers["regimes"], regimes_kept is not None)
        if numbers["regimes"].get("learned_trans_matrix") is not None:
            parts["transitions"] = _transitions_html(numbers["regimes"])
    from ppl_ident.reporting.dataset_view import agreement_section

    path, parts["agreement"], agreement = agreement_section(run, fitted.metrics or {})
    if path is not None:
        figures["agreement"], numbers["seed_agreement"] = path, agreement
    parts["skipped"] = "<ul>" + "".join(
        f"<li>{html.escape(v)}</li>" for v in numbers["skipped"].values()) + "</ul>"
    checked = check_figures(run)
    figures.update(checked)
    for key, names in CHECK_SECTIONS.items():
        found = [n for n in names if n in checked]
        if found:
            where = html.escape(str(checked[found[0]].parent))
            parts[key] = "".join(
                img(checked[n], f"{SEQUENCE_SECTIONS[key]} ({n.replace('_', ' ')})")
                for n in found) + (f'<p class="note">Written by <code>ppl-ident check RUN '
                                   f"--out {where}</code>.</p>")
    timings["html"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    numbers["timings_s"] = timings
    out, sections = write_page(run, f"ppl-ident report: {run.name} ({name}, sequences)",
                                SEQUENCE_SECTIONS, parts, numbers)
    return ReportResult(out, figures, sections, numbers, timings, {"guide": idata})


def _summary_html(numbers, fitted, summ, point: bool = False) -> str:
    rows = [("model", numbers["model"]),
            ("sequences × steps", f"{numbers['num_sequences']} × {numbers['length']}"),
            ("latents", numbers["num_latents"]), ("training steps", len(fitted.losses))]
    if numbers["elbo_per_step"] is not None:
        rows.append(("ELBO per time step", numbers["elbo_per_step"]))
    if numbers["mcc"] is not None:
        rows += [("MCC over all steps (Pearson)", numbers["mcc"]),
                 ("MCC over all steps (Spearman)", numbers["mcc_spearman"])]
        if numbers["mcc_raw_x"] is not None:
            rows.append(("MCC of raw x (baseline)", numbers["mcc_raw_x"]))
    cov = numbers.get("coverage_90")
    if cov:
        rows.append((f"coverage of 90% intervals, HDI / equal-tailed ({cov['steps']} steps)",
                     f"{cov['hdi']:.3f} / {cov['eti']:.3f}"))
    reg = numbers.get("regimes", {})
    if reg.get("accuracy") is not None:
        rows += [("regime accuracy (Viterbi / smoothed)",
                  f"{reg['accuracy']:.3f} / {reg['accuracy_smoothed']:.3f}")]
    if reg.get("trans_matrix_max_abs_error") is not None:
        rows.append(("transition matrix, largest error", reg["trans_matrix_max_abs_error"]))
    return (table(rows, ["quantity", "value"]) +
            ("<p>The point estimate z_t = h(x_t)" if point else
             "<p>ArviZ <code>az.summary(kind='stats')</code> of the guide's posterior of z")
            + " for the first steps of sequence 0 (learned, not aligned):</p>"
            + summ.to_html(float_format=lambda v: f"{v:.3f}"))


def _coverage_html(cal) -> str:
    n = len(cal["coverage_eti"][0])
    header = ["nominal"] + [f"ETI z{i}" for i in range(n)] + [f"HDI z{i}" for i in range(n)] + \
        ["±3 s.e. (mean)"]
    rows = [[lv] + cal["coverage_eti"][k] + cal["coverage_hdi"][k] + [cal["tolerance"][k]]
            for k, lv in enumerate(cal["levels"])]
    return (f"<p>Share of the true latents inside the guide's aligned interval, over the "
            f"{cal['num_obs']} steps of the kept sequences, per latent. Steps of a sequence "
            "are correlated, so the ±3 s.e. band is narrower than it should be.</p>"
            + table(rows, header) + "<p>RMSE of the aligned mean: "
            + ", ".join(f"z{i}: {fmt(r)}" for i, r in enumerate(cal["rmse"])) + ".</p>")


def _regimes_html(reg, truth_known: bool) -> str:
    text = ("<p>Top: p(regime_t | z_1:T) from the exact forward-backward smoother, averaged "
            "over the guide's draws of the latent path (so it integrates over the latents' "
            "uncertainty). Bottom: the most probable regime")
    if truth_known:
        text += (" against the true path (black); learned labels are renamed to the true "
                 "ones they match (Hungarian on the confusion matrix of the Viterbi path).")
    else:
        text += ("; the data file holds no true regime path, so the labels are the learned "
                 "ones.")
    rows = []
    if reg.get("accuracy") is not None:
        rows += [("accuracy, Viterbi path, all sequences", reg["accuracy"]),
                 ("accuracy, smoothed marginals, all sequences", reg["accuracy_smoothed"])]
    if reg.get("accuracy_posterior_draws") is not None:
        rows.append((f"accuracy, mean over draws, {reg['accuracy_posterior_draws_sequences']} "
                     "kept sequences", reg["accuracy_posterior_draws"]))
    if reg.get("mapping") is not None:
        rows.append(("true regime of each learned one", str(reg["mapping"])))
    return text + "</p>" + (table(rows, ["quantity", "value"]) if rows else "")


def _transitions_html(reg) -> str:
    def matrix(m):
        return table([[f"from {i}"] + list(r) for i, r in enumerate(m)],
                      [""] + [f"to {j}" for j in range(len(m))])

    out = "<p>Learned transition matrix (learned labels):</p>" + matrix(
        reg["learned_trans_matrix"])
    if reg.get("matched_trans_matrix") is not None:
        out += ("<p>Learned, relabelled to the true regimes, and the true matrix:</p>"
                + matrix(reg["matched_trans_matrix"]) + matrix(reg["true_trans_matrix"])
                + f'<p>Largest absolute error {fmt(reg["trans_matrix_max_abs_error"])}, '
                f'Frobenius norm {fmt(reg["trans_matrix_frobenius_error"])}.</p>')
    return out
