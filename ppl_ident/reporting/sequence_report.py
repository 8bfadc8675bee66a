"""The sections of a sequence model's report: latent trajectories, interval coverage, regimes.

:func:`ppl_ident.reporting.report.build_report` builds every report; for a run whose
posterior is over latent paths (``sequence, time``) it reads it with
:func:`sequence_posterior`, and the sections the sequence family names
(:attr:`~ppl_ident.families.base.ModelFamily.report_sections`) are built here, each a
function of the :class:`~ppl_ident.reporting.context.ReportContext`. They write into the run
directory:

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
from pathlib import Path

import numpy as np

from ppl_ident.arviz_compat import group, has_group, summary_stats
from ppl_ident.diagnostics.calibration import (
    LEVELS,
    alignment_from_dict,
    alignment_to_dict,
    apply_alignment,
    calibration_summary,
    fit_alignment,
    intervals,
)
from ppl_ident.diagnostics.sequences import match_regimes, transition_matrix_error
from ppl_ident.errors import InputError
from ppl_ident.families.base import DEFAULT_DRAWS, DEFAULT_OBS
from ppl_ident.families.predict import encode
from ppl_ident.reporting.context import Posterior, ReportContext
from ppl_ident.reporting.inference_data import (POSTERIOR_FILE, flat_draws, is_point_estimate,
                                                latent_group, read_posterior, write_posterior)
from ppl_ident.reporting.page import (
    fmt,
    img,
    plot_calibration,
    pyplot,
    save_figure,
    table,
)
from ppl_ident.workflow import evaluate

__all__ = ["plot_trajectories", "plot_regimes", "regimes", "sequence_calibration",
           "sequence_posterior", "sequence_summary_html", "skipped", "trajectories",
           "transitions"]


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


def _sequence_idata(run: Path, family, fitted, data, truth, calibration_draws: int,
                    seed: int):
    """The posterior of ``posterior.nc`` (built by the run's family and written when absent),
    with fresh draws in memory when it holds fewer than ``calibration_draws``."""
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
        idata = family.inference_data(fitted, data, num_draws=DEFAULT_DRAWS,
                                      max_obs=DEFAULT_OBS, seed=seed, truth=truth)
        write_posterior(run, idata)
    post = latent_group(idata)
    num_seq = post.sizes["sequence"]
    regimes = None
    if has_group(idata, "constant_data") and "regimes_true" in group(idata, "constant_data"):
        regimes = np.asarray(group(idata, "constant_data")["regimes_true"])
    n_draws = post.sizes.get("chain", 1) * post.sizes.get("draw", 1)
    fresh = n_draws < calibration_draws and not is_point_estimate(idata)
    if fresh:
        idata = family.inference_data(fitted, data, num_draws=calibration_draws,
                                      max_obs=DEFAULT_OBS, obs_idx=np.arange(num_seq),
                                      seed=seed + 1, truth=truth)
    if getattr(truth, "regimes", None) is not None:
        regimes = np.asarray(truth.regimes)[:num_seq]
    return idata, regimes, fresh


def _complete_metrics(ctx: ReportContext) -> dict:
    """The fit's ``metrics.json``, completed by :func:`ppl_ident.workflow.evaluate` only where
    the data given to the report allow numbers the fit could not compute: true latents
    (``mcc``...) or a true regime path (``regime_accuracy``...) given after a fit without
    them. A fit with them stored its own: those are used as they are."""
    stored = dict(ctx.metrics)
    missing_mcc = ctx.data.z is not None and "mcc" not in stored
    missing_regimes = (getattr(ctx.truth, "regimes", None) is not None
                       and "regime_probs" in latent_group(ctx.post.idata)
                       and "regime_mapping" not in stored)
    if missing_mcc or missing_regimes:
        stored.update(evaluate(ctx.fitted, ctx.data, ctx.truth))
    return stored


def sequence_posterior(ctx: ReportContext) -> Posterior:
    """The posterior of a sequence run (``posterior.nc``, written when absent), aligned onto
    the true latents when the data hold them; puts the run's size and MCC into
    ``ctx.numbers`` and completes ``ctx.metrics`` (:func:`_complete_metrics`)."""
    run, fitted, data, opts = ctx.run, ctx.fitted, ctx.data, ctx.options
    spec = fitted.spec
    B, T, d = data.x.shape
    if d != spec.data_dim:
        raise InputError(f"The model of {run} was fitted on {spec.data_dim}-dimensional x; "
                         f"the data have d = {d}. Pass the fitted data with --data FILE.")
    idata, regimes_kept, fresh = _sequence_idata(run, ctx.family, fitted, data, ctx.truth,
                                                 opts["calibration_draws"], opts["seed"])
    draws = flat_draws(idata, "z")                                 # (S, b, T, n)
    num_seq = draws.shape[1]
    ctx.post = Posterior(idata, None, np.arange(num_seq), "z", draws, None, True, fresh,
                         regimes_kept)
    metrics = ctx.metrics = _complete_metrics(ctx)
    ctx.numbers.update({
        "engine": "guide", "kind": "sequences", "model": spec.name,
        "num_sequences": int(B), "length": int(T), "num_latents": int(spec.n_latent),
        "posterior": {"sequences": int(num_seq), "draws": int(draws.shape[0]),
                      "fresh_draws": bool(fresh)},
        "elbo_per_step": metrics.get("elbo_per_obs"),
        "mcc": metrics.get("mcc"), "mcc_spearman": metrics.get("mcc_spearman"),
        "mcc_per_dim": metrics.get("mcc_per_dim"), "mcc_raw_x": metrics.get("mcc_raw_x"),
    })
    if is_point_estimate(idata):
        ctx.notes["posterior"] = ("exact-likelihood flow model: z_t = h(x_t) is a point "
                                  "estimate, so it has no intervals to calibrate (posterior.nc "
                                  "holds it in its point_estimate group)")
    z_true = alignment = None
    if data.z is not None:
        alignment = _alignment(ctx) if np.all(np.isfinite(draws)) else None
        if alignment is not None:
            z_true = np.asarray(data.z)[:num_seq]
            draws = apply_alignment(alignment, draws)
            ctx.numbers["alignment"] = alignment_to_dict(alignment)
        else:
            ctx.notes["truth"] = "the posterior means are not finite (a diverged fit?)"
    return ctx.post._replace(alignment=alignment, draws=draws, z_true=z_true)


def _alignment(ctx: ReportContext):
    """The affine map of the learned latents onto the true ones: a property of the fitted
    model, fitted on the guide's mean of every step of every sequence. The fit stores it in
    ``metrics.json`` (``alignment``, with the steps it was fitted on); a run written before,
    or data of another size, is encoded once here. None when the means are not finite."""
    data, fitted = ctx.data, ctx.fitted
    n_true = data.z.shape[-1]
    stored = ctx.metrics.get("alignment") or {}
    alignment = alignment_from_dict(stored)
    if (alignment is not None and len(alignment.matching) == n_true
            and stored.get("steps") == int(np.prod(data.x.shape[:-1]))):
        return alignment
    u, _ = ctx.family.prepare_inputs(data.u, fitted.spec.name, fitted.labels)
    mean = np.asarray(encode(fitted.spec, fitted.params, data.x, u)[0])
    if not np.all(np.isfinite(mean)):
        return None
    return fit_alignment(np.asarray(data.z).reshape(-1, n_true),
                         mean.reshape(-1, mean.shape[-1]))


# --------------------------------------------------------------------------- sections


def sequence_calibration(ctx: ReportContext) -> None:
    """Coverage of the aligned intervals over every step of the kept sequences."""
    post = ctx.post
    if post.z_true is None or is_point_estimate(post.idata):   # a point has no intervals
        return
    n_true = post.z_true.shape[-1]
    draws = post.draws
    cal = calibration_summary(post.z_true.reshape(-1, n_true),
                              draws.reshape(draws.shape[0], -1, n_true))
    k90 = cal["levels"].index(0.9)
    ctx.numbers["coverage_90"] = {"hdi": cal["mean_coverage_hdi"][k90],
                                  "eti": cal["mean_coverage_eti"][k90],
                                  "steps": cal["num_obs"]}
    ctx.numbers["calibration_guide"] = cal
    ctx.figures["calibration"] = plot_calibration(
        {"guide, equal-tailed": cal["mean_coverage_eti"],
         "guide, HDI": cal["mean_coverage_hdi"]}, LEVELS, ctx.run / "calibration.png",
        np.asarray(cal["tolerance"]),
        f"±3 binomial s.e. ({cal['num_obs']} steps × {n_true} latents, not independent)")
    ctx.parts["calibration"] = img(ctx.figures["calibration"], "calibration") + \
        _coverage_html(cal)


def _shown_sequences(ctx: ReportContext) -> list:
    return list(range(min(max(1, ctx.options["forest_obs"]), len(ctx.post.obs))))


def trajectories(ctx: ReportContext) -> None:
    """A few sequences' latent paths: posterior mean and 90 % HDI, the truth overlaid."""
    post, numbers = ctx.post, ctx.numbers
    point = is_point_estimate(post.idata)
    mcc_txt = "" if numbers["mcc"] is None else f" (MCC over all steps {numbers['mcc']:.2f})"
    ctx.figures["trajectories"] = plot_trajectories(
        post.draws, ctx.run / "trajectories.png", z_true=post.z_true,
        sequences=_shown_sequences(ctx),
        title=("Aligned latent paths" if post.z_true is not None else "Learned latent paths")
        + mcc_txt)
    ctx.parts["trajectories"] = img(ctx.figures["trajectories"], "latent trajectories") + (
        f'<p class="note">{len(post.obs)} sequences kept in posterior.nc, '
        + ("the point estimate of each path (no band: no intervals). " if point else
           f'{numbers["posterior"]["draws"]} guide draws of each path'
           + (" (fresh draws: the file holds fewer)" if post.fresh else "") + ". Band: 90% HDI "
           "(ArviZ) at each step; line: posterior mean. ")
        + ("Learned latents are matched to the true ones (Hungarian on correlations) and "
           "mapped by a per-dimension affine fit of the guide's mean on every step of every "
           "sequence; dashed: the true latent.</p>" if post.z_true is not None else
           "The data hold no true latents: the learned latents are shown as fitted.</p>"))


def regimes(ctx: ReportContext) -> None:
    """The regime posterior, when the posterior holds one (hidden regimes): the numbers of
    ``metrics.json`` (accuracy over all sequences, transition-matrix error) and the accuracy
    over the kept sequences' draws."""
    idata, metrics, truth = ctx.post.idata, ctx.metrics, ctx.truth
    if "regime_probs" not in latent_group(idata):
        return
    regimes_kept = ctx.post.regimes
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
        if getattr(truth, "trans_matrix", None) is not None:
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
        reg["accuracy_posterior_draws_sequences"] = int(len(ctx.post.obs))
    ctx.numbers["regimes"] = reg
    acc = reg.get("accuracy")
    ctx.figures["regimes"] = plot_regimes(
        probs, ctx.run / "regimes.png", true_path=regimes_kept, mapping=mapping,
        sequences=_shown_sequences(ctx),
        title="Regime posterior" + ("" if acc is None else
                                    f" (accuracy over all sequences {acc:.2f})"))
    ctx.parts["regimes"] = img(ctx.figures["regimes"], "regime posterior") + _regimes_html(
        reg, regimes_kept is not None)


def transitions(ctx: ReportContext) -> None:
    """The learned regime chain's transition matrix, against the true one when known."""
    reg = ctx.numbers.get("regimes")
    if reg is not None and reg.get("learned_trans_matrix") is not None:
        ctx.parts["transitions"] = _transitions_html(reg)


def skipped(ctx: ReportContext) -> None:
    """What the report does not compute for sequences, and why."""
    ctx.numbers["skipped"] = _skip_reasons(ctx.options["nuts_obs"], ctx.options["heldout"])
    ctx.parts["skipped"] = "<ul>" + "".join(
        f"<li>{html.escape(v)}</li>" for v in ctx.numbers["skipped"].values()) + "</ul>"


def sequence_summary_html(ctx: ReportContext) -> str:
    """The summary table of a sequence run and ArviZ's summary of its first steps."""
    idata = ctx.post.idata
    first = {"sequence": [0], "time": list(range(min(3, ctx.data.x.shape[1])))}
    if is_point_estimate(idata):
        summ = latent_group(idata)["z"].sel(**first).to_dataframe()[["z"]]
    else:
        summ = summary_stats(idata, "z", first, hdi_prob=0.9)
    return _summary_html(ctx.numbers, ctx.fitted, summ, is_point_estimate(idata))


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
