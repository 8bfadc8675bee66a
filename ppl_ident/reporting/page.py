"""What every run report shares: its result type, the figures drawn for every model, and the
writing of PNGs and of the self-contained ``report.html``.

The one report builder (:mod:`ppl_ident.reporting.report`) and the sequence sections
(:mod:`ppl_ident.reporting.sequence_report`) build their pages from these pieces.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ppl_ident.files import atomic_write_bytes, atomic_write_json

__all__ = ["ReportResult", "pyplot", "save_figure", "plot_loss", "plot_calibration", "fmt",
           "table", "img", "write_page"]


class ReportResult(NamedTuple):
    """Paths and numbers of a built report.

    Attributes
    ----------
    html : Path
    figures : dict of section -> Path
    sections : list of str
        Section keys present in the HTML, in order.
    numbers : dict
        What ``report.json`` holds.
    timings : dict of step -> seconds
        ``posterior``, then each section built, and ``total``.
    idata : dict of engine -> ArviZ posterior (:data:`ppl_ident.arviz_compat.IData`)
        The posteriors shown (``"guide"``, and ``"NUTS"`` when run).
    """

    html: Path
    figures: dict
    sections: list
    numbers: dict
    timings: dict
    idata: dict


# --------------------------------------------------------------------------- figures


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend (reports are written without a
    display)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (atomically) and close it."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_loss(losses, path: Path) -> Path:
    """Training loss per step: all steps on a symmetric-log axis (left), and the second half
    on a linear axis (right), each with a running median."""
    plt = pyplot()
    losses = np.asarray(losses, float)
    steps = np.arange(len(losses))
    w = max(1, len(losses) // 50)
    med = np.array([np.median(losses[max(0, i - w):i + 1]) for i in range(len(losses))])
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
    half = len(losses) // 2
    for ax, sl, title in [(axes[0], slice(None), "all steps"),
                          (axes[1], slice(half, None), "second half")]:
        ax.plot(steps[sl], losses[sl], lw=0.6, alpha=0.45, color="C0",
                label="per step (minibatch)")
        ax.plot(steps[sl], med[sl], color="C1", lw=1.5, label=f"running median ({w} steps)")
        ax.set_xlabel("optimisation step")
        ax.set_title(f"Training loss, {title}", fontsize=10)
        ax.grid(alpha=0.3)
    finite = losses[np.isfinite(losses)]
    if finite.size:
        axes[0].set_yscale("symlog", linthresh=max(1.0, float(np.median(np.abs(finite)))))
    axes[0].set_ylabel("negative ELBO (scaled to all data)")
    axes[0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_calibration(curves: dict, levels, path: Path, tolerance=None,
                     tolerance_label: str = "±3 binomial s.e.") -> Path:
    """Nominal against empirical coverage; ``curves`` maps a label to coverages per level."""
    plt = pyplot()
    levels = np.asarray(levels)
    fig, ax = plt.subplots(figsize=(6.0, 5.0))   # about 660 px wide: legible at 100 %
    grid = np.linspace(0.4, 1.0, 50)
    ax.plot(grid, grid, "k--", lw=0.8, label="calibrated")
    if tolerance is not None:
        ax.fill_between(levels, levels - tolerance, levels + tolerance, color="0.85",
                        label=tolerance_label)
    for i, (label, cov) in enumerate(curves.items()):
        ax.plot(levels, cov, "o-", color=f"C{i}", label=label)
    ax.set_xlabel("nominal coverage of the interval")
    ax.set_ylabel("share of true latents inside (mean over latents)")
    ax.set_xlim(0.4, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_title("Calibration")
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- HTML


def fmt(v) -> str:
    """A table cell: floats to three significant digits, anything else as ``str``."""
    if isinstance(v, (float, np.floating)):
        return "nan" if not np.isfinite(v) else f"{v:.3g}"
    return str(v)


def table(rows, header) -> str:
    """An HTML table of ``rows`` (cells through :func:`fmt`, escaped) under ``header``."""
    out = ["<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>")
    return "\n".join(out + ["</table>"])


def img(path: Path, alt: str) -> str:
    """The PNG at ``path`` as an ``<img>`` with its bytes embedded, so the page stands alone."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


_CSS = """body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.9em}
td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee} img{max-width:100%} .note{color:#555;font-size:0.9em}"""


def write_page(run: Path, title: str, titles: dict, html_parts: dict, numbers: dict):
    """Write ``report.json`` and the self-contained ``report.html`` (sections in the order of
    ``titles``, those in ``html_parts`` only); returns the page's path and section keys."""
    sections = [k for k in titles if k in html_parts]
    body = [f"<h1>{html.escape(title)}</h1>"]
    body.append("<p>" + " · ".join(f'<a href="#{k}">{titles[k]}</a>' for k in sections)
                + "</p>")
    for k in sections:
        body.append(f'<h2 id="{k}">{titles[k]}</h2>\n{html_parts[k]}')
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) +
            "\n</body></html>\n")
    atomic_write_json(run / "report.json", numbers)
    out = run / "report.html"
    atomic_write_bytes(out, page.encode())
    return out, sections
