"""Plots of a comparison table (matplotlib PNGs, at least 6.4 x 4.2 in at 120 dpi; legends
name the model, engine and data setting in words).

- ``mcc_by_engine.png``: MCC per engine, a box over seeds with every seed as a point;
- ``time_vs_mcc.png``: run time of the vectorised fit (compilation excluded; a sampler's
  includes its base fit) against the final MCC, and the periodic MCC evaluations against fit
  time (the 0.9 line marked);
- ``calibration_by_engine.png``: 90 % interval coverage per engine (when calibration exists);
- ``mcc_vs_domains.png``: MCC against the number of domains, the 2n+1 line marked (when the
  grid varies the number of domains);
- ``agreement_vs_mcc.png``: each cell's agreement between its seeds (mean pairwise MCC of
  their latents, no ground truth needed) against its median MCC to the true latents (when the
  cells have several seeds): the evidence a user without true latents has, checked against
  the truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_all", "series_labels", "setting_labels"]

#: figure size (inches) and resolution: legible at the README's 32 % width and on a screen
WIDTH, HEIGHT, DPI = 6.4, 4.2, 120

#: data-setting column -> how one value reads in a legend (another column: "NAME = value")
_SETTING_WORDS = [("generator", "{} data"), ("latent_dim", "n = {}"), ("data_dim", "d = {}"),
                  ("domains", "{} domains"), ("points_per_domain", "{} points per domain"),
                  ("sequences", "{} sequences"), ("length", "{} steps"),
                  ("regimes", "{} regimes"), ("mixing_layers", "{} mixing layers"),
                  ("source", "{} sources"), ("noise_std", "noise sd {}"),
                  ("data_seed", "data seed {}")]


def _model_words(model: str) -> str:
    """The model in words (its family's ``titles``)."""
    from ppl_ident.families import MODELS

    return MODELS[model].titles.get(model, model) if model in MODELS else model


def _series(df) -> list:
    """The (model, engine) pairs of ``df``, in table order."""
    return list(dict.fromkeys(zip(df["model"], df["engine"])))


def series_labels(df) -> dict:
    """(model, engine) -> its legend label in words: ``"svi engine"``, or
    ``"iVAE, svi engine"`` when the table holds several models."""
    several = df["model"].nunique() > 1
    return {(m, e): f"{_model_words(m)}, {e} engine" if several else f"{e} engine"
            for m, e in _series(df)}


def setting_labels(df) -> dict:
    """Setting ID -> the data-setting values that tell it from the table's other settings,
    in words (``"40 domains, 3 mixing layers"``), instead of the cell ID."""
    from ppl_ident.harness.table import SETTING_COORDS

    first = df.drop_duplicates("setting")
    words = dict(_SETTING_WORDS)
    columns = list(words) + [c for c in SETTING_COORDS if c not in words]
    varying = [(c, words.get(c, c.replace("_", " ") + " = {}")) for c in columns
               if c in first.columns and first[c].nunique() > 1]
    return {row["setting"]: ", ".join(fmt.format(_plain(row[c])) for c, fmt in varying)
            or "the one data setting" for _, row in first.iterrows()}


def _plain(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _colors(names):
    import matplotlib.pyplot as plt

    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {n: cycle[i % len(cycle)] for i, n in enumerate(names)}


def _of(df, series):
    model, engine = series
    return df[(df["model"] == model) & (df["engine"] == engine)]


def _by_engine(ax, df, column, ylabel):
    series = _series(df)
    names = series_labels(df)
    data = [_of(df, s)[column].dropna().to_numpy() for s in series]
    ax.boxplot(data, tick_labels=[names[s].removesuffix(" engine").replace(", ", "\n")
                                  for s in series], showfliers=False, widths=0.5)
    rng = np.random.default_rng(0)
    settings = list(dict.fromkeys(df["setting"]))
    words = setting_labels(df)
    colors = _colors(settings)
    for i, se in enumerate(series, 1):
        sub = _of(df, se)
        for s in settings:
            y = sub.loc[sub["setting"] == s, column].dropna().to_numpy()
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(y)), y, s=18, color=colors[s],
                       alpha=0.8, label=words[s] if i == 1 and len(settings) > 1 else None,
                       zorder=3)
    ax.set_xlabel("engine" if df["model"].nunique() == 1 else "model and engine")
    ax.set_ylabel(ylabel)
    if len(series) > 4:
        ax.tick_params(axis="x", rotation=30)
    if len(settings) > 1:
        ax.legend(fontsize=8, loc="best", title="data setting", title_fontsize=8)


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
        fig.savefig(tmp, dpi=DPI)
        plt.close(fig)
        tmp.replace(path)
        written.append(str(path))

    wide = max(WIDTH, 1.5 + 0.9 * len(_series(df)))
    fig, ax = plt.subplots(figsize=(wide, HEIGHT))
    _by_engine(ax, df, "mcc", "MCC (posterior mean vs true z)")
    ax.set_title("MCC by engine (one point per seed)", fontsize=10)
    save(fig, "mcc_by_engine.png")

    fig, axes = plt.subplots(1, 2 if traces else 1, squeeze=False,
                             figsize=(2 * WIDTH if traces else WIDTH, HEIGHT))
    ax = axes[0, 0]
    names = series_labels(df)
    colors = _colors(_series(df))
    for se in _series(df):
        sub = _of(df, se)
        ax.scatter(_run_time(sub), sub["mcc"], s=20, color=colors[se], label=names[se])
    times = _run_time(df).dropna()
    if len(times) and times.max() > 20 * times.min() > 0:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("run time of the cell, s (all seeds at once; samplers\nwith their base fit; "
                  "compile time in the table)")
    ax.set_ylabel("final MCC")
    ax.legend(fontsize=8)
    if traces:
        ax = axes[0, 1]
        by_engine = {e: colors[(m, e)] for m, e in _series(df)}
        for engine, times, mccs in traces:
            m = np.asarray(mccs, float)
            if m.size:
                ax.plot(times, m, color=by_engine.get(engine, "k"), alpha=0.6, lw=1)
        ax.axhline(0.9, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("fit time, s (evaluation excluded)")
        ax.set_ylabel("MCC (periodic evaluation)")
    save(fig, "time_vs_mcc.png")

    if "calibration_90" in df.columns and df["calibration_90"].notna().any():
        fig, ax = plt.subplots(figsize=(wide, HEIGHT))
        _by_engine(ax, df, "calibration_90", "coverage of 90% intervals")
        ax.axhline(0.9, color="grey", ls="--", lw=0.8)
        ax.set_title("Calibration by engine", fontsize=10)
        save(fig, "calibration_by_engine.png")

    if "domains" in df.columns and df["domains"].nunique() > 1:
        fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
        for se in _series(df):
            sub = _of(df, se).groupby("domains")["mcc"]
            mean, std = sub.mean(), sub.std().fillna(0)
            ax.errorbar(mean.index, mean.to_numpy(), std.to_numpy(), marker="o", ms=3,
                        capsize=2, color=colors[se], label=names[se])
        for n in sorted(df["latent_dim"].unique()):
            ax.axvline(2 * n + 1, color="grey", ls="--", lw=0.8)
            ax.text(2 * n + 1, ax.get_ylim()[0], f" 2n+1={2 * n + 1}", fontsize=7,
                    va="bottom", color="grey")
        ax.set_xlabel("number of domains")
        ax.set_ylabel("MCC")
        ax.legend(fontsize=8)
        save(fig, "mcc_vs_domains.png")

    if "seed_agreement" in df.columns and df["seed_agreement"].notna().any():
        fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
        cells = (df.dropna(subset=["seed_agreement"])
                 .groupby(["setting", "model", "engine"], sort=False)
                 .agg(agreement=("seed_agreement", "first"), mcc=("mcc", "median"))
                 .reset_index())
        for se in _series(cells):
            sub = _of(cells, se)
            ax.scatter(sub["agreement"], sub["mcc"], s=24, color=colors[se], label=names[se])
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("agreement between seeds (mean pairwise MCC, no true latents)")
        ax.set_ylabel("median MCC to the true latents")
        ax.set_title("Seed agreement against recovery (one point per cell)", fontsize=10)
        ax.legend(fontsize=8)
        save(fig, "agreement_vs_mcc.png")
    return written
