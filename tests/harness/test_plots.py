"""The comparison plots: legible sizes, legends in words rather than cell IDs."""

import struct

import numpy as np
import pandas as pd

from ppl_ident.harness.plots import plot_all, series_labels, setting_labels


def _table():
    rng = np.random.default_rng(0)
    rows = []
    for domains in (5, 11):
        setting = f"n2-d2-U{domains}x60-L2-gaussian-s0-ds0"
        for model in ("ivae", "vae"):
            for engine in ("svi", "iwae"):
                for seed in range(3):
                    rows.append(dict(setting=setting, model=model, engine=engine, seed=seed,
                                     status="done", mcc=rng.uniform(0.5, 1.0),
                                     calibration_90=rng.uniform(0.5, 1.0),
                                     run_time_s=rng.uniform(1, 5), latent_dim=2, data_dim=2,
                                     domains=domains, points_per_domain=60, mixing_layers=2,
                                     source="gaussian", noise_std=0.0, data_seed=0,
                                     seed_agreement=0.9 if model == "ivae" else 0.6))
    return pd.DataFrame(rows)


def _png_size(path):
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_labels_name_model_engine_and_setting_in_words():
    df = _table()
    assert series_labels(df) == {("ivae", "svi"): "iVAE, svi engine",
                                 ("ivae", "iwae"): "iVAE, iwae engine",
                                 ("vae", "svi"): "VAE, svi engine",
                                 ("vae", "iwae"): "VAE, iwae engine"}
    assert sorted(setting_labels(df).values()) == ["11 domains", "5 domains"]
    one = df[(df["model"] == "ivae") & (df["domains"] == 5)]
    assert series_labels(one)[("ivae", "svi")] == "svi engine"
    assert set(setting_labels(one).values()) == {"the one data setting"}


def test_plots_are_legible_and_their_legends_hold_no_cell_ids(tmp_path, monkeypatch):
    import matplotlib.axes

    legends = []
    real_legend = matplotlib.axes.Axes.legend

    def spy(self, *args, **kwargs):
        leg = real_legend(self, *args, **kwargs)
        legends.append([t.get_text() for t in leg.get_texts()])
        return leg
    monkeypatch.setattr(matplotlib.axes.Axes, "legend", spy)
    written = plot_all(_table(), tmp_path)
    names = sorted(p.split("/")[-1] for p in written)
    assert names == ["agreement_vs_mcc.png", "calibration_by_engine.png", "mcc_by_engine.png",
                     "mcc_vs_domains.png", "time_vs_mcc.png"]
    for path in written:
        width, height = _png_size(path)
        assert width >= 600 and height >= 400, (path, width, height)
    texts = [t for leg in legends for t in leg]
    assert "iVAE, svi engine" in texts and "5 domains" in texts
    assert not [t for t in texts if "-U" in t or "ds0" in t], texts


def test_agreement_plot_has_one_point_per_cell(tmp_path, monkeypatch):
    import matplotlib.axes

    points = []
    real_scatter = matplotlib.axes.Axes.scatter

    def spy(self, x, y, *args, **kwargs):
        if kwargs.get("s") == 24:
            points.append((list(x), list(y), kwargs.get("label")))
        return real_scatter(self, x, y, *args, **kwargs)
    monkeypatch.setattr(matplotlib.axes.Axes, "scatter", spy)
    df = _table()
    plot_all(df, tmp_path)
    by_label = {label: (x, y) for x, y, label in points}
    # 2 settings per (model, engine) series; x is the cell's agreement, y its median MCC
    x, y = by_label["iVAE, svi engine"]
    assert x == [0.9, 0.9]
    cell = df[(df["model"] == "ivae") & (df["engine"] == "svi") & (df["domains"] == 5)]
    assert y[0] == cell["mcc"].median()
    assert by_label["VAE, iwae engine"][0] == [0.6, 0.6]
    # without several seeds per cell there is no agreement and no plot
    (tmp_path / "b").mkdir()
    names = [p.split("/")[-1] for p in plot_all(df.drop(columns="seed_agreement"), tmp_path / "b")]
    assert "agreement_vs_mcc.png" not in names
