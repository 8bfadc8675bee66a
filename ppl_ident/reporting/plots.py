"""Plots of the identifiability diagnostics (PNG, matplotlib's headless Agg backend).

Each function takes a report from :mod:`ppl_ident.diagnostics` *or* its JSON form (as stored in
``metrics.json`` and printed by ``ppl-ident check --json``), writes one PNG and returns its
path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ppl_ident.files import atomic_write_bytes

__all__ = ["CHECK_DIR", "CHECK_FIGURES", "CHECK_SECTIONS", "check_figures", "check_out_dir",
           "plot_jacobian", "plot_variability", "write_check"]

#: The figures ``ppl-ident check --out DIR`` writes (name -> file); ``ppl-ident report`` embeds
#: them when ``DIR`` is the run directory or one of its sub-directories (``--out RUN/check``).
CHECK_FIGURES = {"variability": "variability_spectrum.png",
                 "jacobian_encoder": "jacobian_encoder.png",
                 "jacobian_decoder": "jacobian_decoder.png",
                 "jacobian_regression": "jacobian_regression.png"}
#: report section -> the figures of :data:`CHECK_FIGURES` it shows
CHECK_SECTIONS = {"jacobian": ("jacobian_encoder", "jacobian_decoder", "jacobian_regression"),
                  "variability": ("variability",)}


#: where ``ppl-ident check RUN --out RUN`` and the report put a run's check
CHECK_DIR = "check"


def check_out_dir(out, run=None) -> tuple[Path, bool]:
    """Where the check of ``run`` writes for ``--out out``, and whether it may replace the
    files there without ``--force``: the run directory itself, or its ``check``
    sub-directory, mean ``RUN/check`` (the check's own files, replaced when checked again);
    any other directory is used as given (a non-empty one needs ``--force``)."""
    out = Path(out)
    if run is not None and Path(run).is_dir():
        run = Path(run).resolve()
        if out.resolve() in (run, run / CHECK_DIR):
            return run / CHECK_DIR, True
    return out, False


def write_check(result: dict, out, force: bool = False) -> list:
    """Write a check's ``check.json`` and its figures (the variability spectrum, the Jacobian
    heatmaps of the routes that apply) into ``out``; returns the paths written."""
    from ppl_ident.files import atomic_write_json, prepare_output_dir

    out = prepare_output_dir(out, force=force)
    written = [atomic_write_json(out / "check.json", result)]
    v = result["variability"]
    if v.get("applicable", True):
        what = "transition" if result.get("sequence") and result.get("auxiliary") != \
            "segment" else "prior"
        written.append(plot_variability(v, out / CHECK_FIGURES["variability"],
                                        title=f"true {what}" if result["kind"] == "data"
                                        else f"learned {what}"))
    jac = result.get("jacobian") or {}
    for route in ("encoder", "decoder", "regression"):
        r = jac.get(route)
        if r is not None and r.get("applicable", True):
            written.append(plot_jacobian(r, out / CHECK_FIGURES[f"jacobian_{route}"],
                                         title=f"{route} route"))
    return written


def check_figures(run) -> dict:
    """Figure name -> path of the ``ppl-ident check --out`` figures of a run directory: those
    in the directory itself, else in the first sub-directory (by name) with a ``check.json``.
    """
    run = Path(run)
    found = {}
    for where in [run, *sorted(p.parent for p in run.glob("*/check.json"))]:
        for name, file in CHECK_FIGURES.items():
            if name not in found and (where / file).is_file():
                found[name] = where / file
    return found


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _field(report, name):
    return report[name] if isinstance(report, dict) else getattr(report, name)


def _save(fig, path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_jacobian(report, path, title: str | None = None) -> Path:
    """Heatmap of the aligned mean ``|J|`` (rows normalised), true x learned latents.

    Parameters
    ----------
    report : JacobianReport or dict
        From :func:`ppl_ident.diagnostics.jacobian_scores` (or its ``report_to_dict`` form).
    path : str or Path
        PNG file to write.
    title : str, optional
        Prefix of the title (e.g. the route).

    Returns
    -------
    Path
        A perfect identification shows ones on the diagonal and zeros elsewhere.
    """
    plt = _pyplot()
    aligned = np.asarray(_field(report, "aligned"), dtype=float)
    matching = np.asarray(_field(report, "matching"))
    n = aligned.shape[0]
    size = min(2.0 + 0.6 * n, 9.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(aligned, cmap="viridis", vmin=0.0, vmax=1.0)
    if n <= 12:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{aligned[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if aligned[i, j] > 0.6 else "white")
    ax.set_xticks(range(n), [str(m) for m in matching])
    ax.set_yticks(range(n), [str(i) for i in range(n)])
    ax.set_xlabel("learned latent (ordered by the global matching)")
    ax.set_ylabel("true latent")
    fig.colorbar(im, ax=ax, label="mean |J| over points (rows normalised)")
    head = f"{title}: " if title else ""
    ax.set_title(f"{head}{_field(report, 'verdict')}\nAmari {_field(report, 'amari'):.3f}, "
                 f"agreement {_field(report, 'agreement'):.0%}, "
                 f"off-matching mass {_field(report, 'off_mass'):.1%}", fontsize=10)
    return _save(fig, path)


def _spectrum(report):
    if isinstance(report, dict):
        report = report.get("sufficient_variability", report)
        q = [np.asarray([np.nan if v is None else v for v in report[k]], dtype=float)
             for k in ("spectrum_q10", "spectrum_median", "spectrum_q90")]
        return report, q
    report = getattr(report, "sufficient_variability", report)
    sv = np.asarray(report.singular_values, dtype=float)
    sv = sv[np.all(np.isfinite(sv), axis=1)]
    q = list(np.quantile(sv, [0.1, 0.5, 0.9], axis=0)) if len(sv) else [np.zeros(0)] * 3
    return report, q


def plot_variability(report, path, title: str | None = None) -> Path:
    """Normalised singular-value spectrum of the derivative-difference matrix, with the ``2n``
    threshold.

    Parameters
    ----------
    report : VariabilityReport, IdentifiabilityReport or dict
        From :func:`ppl_ident.diagnostics.sufficient_variability` /
        :func:`~ppl_ident.diagnostics.check_identifiability`, or their JSON form.
    path : str or Path
    title : str, optional

    Returns
    -------
    Path
        The median over points (line) and the 10-90% band of the singular values divided by
        the largest, on a log scale; the condition holds when the first ``2n`` (left of the
        dashed line) all stay above ``rtol`` (dotted line).
    """
    plt = _pyplot()
    rep, (lo, med, hi) = _spectrum(report)
    required, rtol = int(_field(rep, "required")), float(_field(rep, "rtol"))
    floor = rtol * 1e-4
    k = np.arange(1, len(med) + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    if len(med):
        ax.fill_between(k, np.maximum(lo, floor), np.maximum(hi, floor), alpha=0.3,
                        label="10-90% of points")
        ax.plot(k, np.maximum(med, floor), "o-", label="median over points")
    ax.axvline(required + 0.5, color="k", ls="--", label=f"required rank 2n = {required}")
    ax.axhline(rtol, color="r", ls=":", label=f"rtol = {rtol:g}")
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, 2.0)
    ax.set_xlim(0.5, max(len(med), required) + 1)
    ax.set_xlabel("singular value index")
    ax.set_ylabel("singular value / largest")
    status = "passes" if _field(rep, "passed") else "fails"
    head = f"{title}: " if title else ""
    ax.set_title(f"{head}seed's condition {status}: rank {_field(rep, 'rank')} of "
                 f"{required} required ({_field(rep, 'share_passing'):.0%} of points pass)",
                 fontsize=10)
    if len(med) and np.nanmin(lo) < floor:
        ax.set_xlabel(f"singular value index (values below {floor:.0e} drawn at {floor:.0e})")
    expf = (report.get("exponential_family") if isinstance(report, dict)
            else getattr(report, "exponential_family", None))
    if expf is not None and _field(expf, "applicable"):
        stats = ", ".join(_field(expf, "statistics"))
        ax.text(0.99, 0.98, f"iVAE exp.-family condition {'holds' if _field(expf, 'passed') else 'fails'}"
                f"\nT(z) = ({stats}): rank {_field(expf, 'rank')} of {_field(expf, 'required')}",
                fontsize=8, ha="right", va="top", transform=ax.transAxes,
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path)
