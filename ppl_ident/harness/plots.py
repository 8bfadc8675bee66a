"""Plots of a comparison table (matplotlib, small PNGs).

- ``mcc_by_engine.png``: MCC per engine, a box over seeds with every seed as a point;
- ``time_vs_mcc.png``: run time of the vectorised fit (compilation excluded; a sampler's
  includes its base fit) against the final MCC, and the periodic MCC evaluations against fit
  time (the 0.9 line marked);
- ``calibration_by_engine.png``: 90 % interval coverage per engine (when calibration exists);
- ``mcc_vs_domains.png``: MCC against the number of domains, the 2n+1 line marked (when the
  grid varies the number of domains).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_all"]


def _engines(df):
    return list(dict.fromkeys(df["engine"]))


def _colors(names):
    import matplotlib.pyplot as plt

    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {n: cycle[i % len(cycle)] for i, n in enumerate(names)}


def _by_engine(ax, df, column, ylabel):
    engines = _engines(df)
    data = [df.loc[df["engine"] == e, column].dropna().to_numpy() for e in engines]
    ax.boxplot(data, tick_labels=engines, showfliers=False, widths=0.5)
    rng = np.random.default_rng(0)
    settings = list(dict.fromkeys(df["setting"]))
    colors = _colors(settings)
    for i, e in enumerate(engines, 1):
        sub = df[df["engine"] == e]
        for s in settings:
            y = sub.loc[sub["setting"] == s, column].dropna().to_numpy()
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(y)), y, s=14, color=colors[s],
                       alpha=0.8, label=s if i == 1 and len(settings) > 1 else None, zorder=3)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=30)
    if len(settings) > 1:
        ax.legend(fontsize=6, loc="lower right")


def _run_time(df):
    """Run time of each row's whole pipeline: a sampler's own plus its base fit's."""
    t = df["run_time_s"]
    if "base_run_time_s" in df.columns:
        t = t + df["base_run_time_s"].fillna(0.0)
    return t


def plot_all(df, out_dir, traces=None) -> list[str]:
    """Write every applicable plot for ``df`` into ``out_dir``; return the written paths.

    ``traces``: optional list of ``(engine, time_s list, mcc list of per-seed lists)`` from the
    cell files, for the MCC-over-time panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    out = Path(out_dir)
    df = df[df["status"] == "done"]
    written = []
    if df.empty or "mcc" not in df.columns:
        return written

    def save(fig, name):
        fig.tight_layout()
        path = out / name
        tmp = out / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=80)
        plt.close(fig)
        tmp.replace(path)
        written.append(str(path))

    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(_engines(df)), 3.2))
    _by_engine(ax, df, "mcc", "MCC (posterior mean vs true z)")
    ax.set_title("MCC by engine (one point per seed)", fontsize=9)
    save(fig, "mcc_by_engine.png")

    fig, axes = plt.subplots(1, 2 if traces else 1, figsize=(8 if traces else 4.2, 3.2),
                             squeeze=False)
    ax = axes[0, 0]
    colors = _colors(_engines(df))
    for e in _engines(df):
        sub = df[df["engine"] == e]
        ax.scatter(_run_time(sub), sub["mcc"], s=16, color=colors[e], label=e)
    times = _run_time(df).dropna()
    if len(times) and times.max() > 20 * times.min() > 0:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("run time of the cell, s (all seeds at once; samplers\nwith their base fit; "
                  "compile time in the table)")
    ax.set_ylabel("final MCC")
    ax.legend(fontsize=6)
    if traces:
        ax = axes[0, 1]
        for engine, times, mccs in traces:
            m = np.asarray(mccs, float)
            if m.size:
                ax.plot(times, m, color=colors.get(engine, "k"), alpha=0.6, lw=1)
        ax.axhline(0.9, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("fit time, s (evaluation excluded)")
        ax.set_ylabel("MCC (periodic evaluation)")
    save(fig, "time_vs_mcc.png")

    if "calibration_90" in df.columns and df["calibration_90"].notna().any():
        fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(_engines(df)), 3.2))
        _by_engine(ax, df, "calibration_90", "coverage of 90% intervals")
        ax.axhline(0.9, color="grey", ls="--", lw=0.8)
        ax.set_title("Calibration by engine", fontsize=9)
        save(fig, "calibration_by_engine.png")

    if df["domains"].nunique() > 1:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        for e in _engines(df):
            sub = df[df["engine"] == e].groupby("domains")["mcc"]
            mean, std = sub.mean(), sub.std().fillna(0)
            ax.errorbar(mean.index, mean.to_numpy(), std.to_numpy(), marker="o", ms=3,
                        capsize=2, color=colors[e], label=e)
        for n in sorted(df["latent_dim"].unique()):
            ax.axvline(2 * n + 1, color="grey", ls="--", lw=0.8)
            ax.text(2 * n + 1, ax.get_ylim()[0], f" 2n+1={2 * n + 1}", fontsize=7,
                    va="bottom", color="grey")
        ax.set_xlabel("number of domains")
        ax.set_ylabel("MCC")
        ax.legend(fontsize=6)
        save(fig, "mcc_vs_domains.png")
    return written
