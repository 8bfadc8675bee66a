"""Tables in, per-row latents out: ``ppl-ident fit`` on a CSV, then ``ppl-ident encode``."""

import json

import numpy as np
import pandas as pd
import pytest

from ppl_ident.cli import main

DOMAINS = np.array(["north", "south", "west"])
# the variational model (a Gaussian guide, sd > 0); the exact flow's point mass is tested in
# tests/test_workflow.py
TINY = ["--no-flow", "--steps", "20", "--width", "8", "--depth", "1", "--batch-size", "32",
        "--no-progress", "--posterior-draws", "4", "--posterior-obs", "10"]


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    """A CSV of 3 domains (named by strings) x 50 rows, 3 observed columns, 2 true latents,
    a text column; and the run of an iVAE with 2 latents fitted to it."""
    from ppl_ident.data import simulate_domains

    tmp = tmp_path_factory.mktemp("table")
    data, _ = simulate_domains(0, n_latent=2, data_dim=3, n_domains=3, n_per_domain=50,
                               n_layers=1)
    df = pd.DataFrame(data.x, columns=["a", "b", "c"])
    df.insert(0, "site", DOMAINS[data.u])
    df["t0"], df["t1"] = data.z[:, 0], data.z[:, 1]
    df["note"] = "text"
    path = tmp / "rec.csv"
    df.to_csv(path, index=False)
    run = tmp / "run"
    assert main(["fit", str(path), "--out", str(run), "--u-col", "site", "--z-cols", "t0", "t1",
                 *TINY]) == 0
    return path, run, df


def _fail(argv, capsys, match):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and match in err, err
    return err


def test_fit_on_a_table_records_the_column_mapping(table_run):
    _, run, _ = table_run
    config = json.loads((run / "config.json").read_text())
    assert config["columns"] == {"u": "site", "x": ["a", "b", "c"], "z": ["t0", "t1"],
                                 "u_kind": "categories", "u_categories": list(DOMAINS)}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["mcc"] is not None  # the true-latent columns were read, for evaluation
    from ppl_ident.arviz_compat import groups, read_netcdf

    idata = read_netcdf(run / "posterior.nc")
    assert idata.posterior["z"].shape == (1, 4, 10, 2)
    # the table's names, not positions: the observed columns and the domain names
    assert list(idata.observed_data["x"].coords["x_dim"].values) == ["a", "b", "c"]
    named = [g for g in groups(idata) if "domain" in idata[g].dims]
    assert named and all(list(idata[g].coords["domain"].values) == list(DOMAINS)
                         for g in named)


def test_encode_writes_every_row_in_each_format(table_run, tmp_path, capsys):
    path, run, df = table_run
    # the recorded mapping is reused: neither --u-col nor the data file is repeated
    assert main(["encode", str(run), "--out", str(tmp_path / "z.csv")]) == 0
    assert "encoded 150 rows" in capsys.readouterr().out
    csv = pd.read_csv(tmp_path / "z.csv")
    assert list(csv.columns) == ["site"] + [f"z{j}_{s}" for j in range(2)
                                            for s in ("mean", "sd", "q05", "q95")]
    assert len(csv) == 150 and (csv["site"] == df["site"]).all()
    assert (csv["z0_sd"] > 0).all()
    np.testing.assert_allclose(csv["z1_q95"] - csv["z1_mean"], 1.6448536 * csv["z1_sd"],
                               rtol=1e-4, atol=1e-6)

    assert main(["encode", str(run), str(path), "--out", str(tmp_path / "z.parquet"),
                 "--chunk-size", "7"]) == 0
    pq = pd.read_parquet(tmp_path / "z.parquet")
    assert list(pq.columns) == list(csv.columns)
    np.testing.assert_allclose(pq["z0_mean"], csv["z0_mean"], rtol=1e-5, atol=1e-5)

    assert main(["encode", str(run), "--out", str(tmp_path / "z.npz")]) == 0
    with np.load(tmp_path / "z.npz", allow_pickle=False) as npz:
        assert npz["z_mean"].shape == (150, 2) and list(npz["u"][:1]) == ["north"]
        np.testing.assert_allclose(npz["z_sd"][:, 0], csv["z0_sd"], rtol=1e-5, atol=1e-6)


def test_encode_of_another_table_uses_the_fitted_coding(table_run, tmp_path):
    _, run, df = table_run
    part = df[df["site"] != "north"].drop(columns=["t0", "t1"])
    part.to_csv(tmp_path / "part.csv", index=False)
    assert main(["encode", str(run), str(tmp_path / "part.csv"),
                 "--out", str(tmp_path / "p.csv")]) == 0
    full = pd.read_csv(tmp_path / "p.csv")
    assert set(full["site"]) == {"south", "west"} and len(full) == len(part)


def test_encode_refuses_to_overwrite(table_run, tmp_path, capsys):
    _, run, _ = table_run
    out = tmp_path / "z.csv"
    out.write_text("keep me")
    _fail(["encode", str(run), "--out", str(out)], capsys, "already exists")
    assert out.read_text() == "keep me"
    assert main(["encode", str(run), "--out", str(out), "--force"]) == 0
    assert out.read_text().startswith("site,z0_mean")


@pytest.mark.parametrize(["extra", "match"], [
    (["--out", "z.txt"], "Cannot tell the format"),
    (["--out", "z.csv", "--u-col", "region"], "no column 'region'"),
    (["--out", "z.csv", "--x-cols", "a", "b"], "takes 3 observed columns"),
])
def test_encode_bad_input_exits_2(table_run, tmp_path, capsys, extra, match):
    _, run, _ = table_run
    extra = [str(tmp_path / e) if e.startswith("z.") else e for e in extra]
    _fail(["encode", str(run), *extra], capsys, match)


def test_fit_on_a_table_with_a_wrong_column_exits_2(table_run, tmp_path, capsys):
    path, _, _ = table_run
    err = _fail(["fit", str(path), "--out", str(tmp_path / "r"), "--u-col", "Site", *TINY],
                capsys, "did you mean 'site'")
    assert "columns found: site, a, b, c, t0, t1, note" in err
    assert not (tmp_path / "r").exists()


def test_check_reads_the_recorded_table(table_run, capsys):
    _, run, _ = table_run
    assert main(["check", str(run), "--points", "20", "--null-fits", "0"]) == 0
    assert "fitted ivae" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["fit", "check", "encode"])
def test_the_table_flags_are_in_the_help(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--u-col" in out and "--x-cols" in out
    assert ("--z-cols" in out) == (command != "encode")  # encode has no use for true latents


def test_the_report_reads_the_recorded_table(table_run):
    from ppl_ident.reporting.report import _resolve_data

    _, run, df = table_run
    config = json.loads((run / "config.json").read_text())
    data, truth = _resolve_data(run, config, None)
    assert truth is None and data.x.shape == (150, 3) and data.z.shape == (150, 2)
    np.testing.assert_array_equal(data.u, np.searchsorted(DOMAINS, df["site"]))


def test_sequence_table_fit_and_encode_keep_the_tables_sequence_ids(tmp_path):
    """A long-format CSV (one row per step, a sequence-id and a time column, rows shuffled):
    the temporal iVAE fits it, and encode writes one row per step under the table's ids."""
    from ppl_ident.data.sequences import simulate_sequences

    data, _ = simulate_sequences("segments", 0, n_latent=2, data_dim=2, n_sequences=6,
                                 length=8, n_segments=3, segment_length=4)
    B, T, d = data.x.shape
    df = pd.DataFrame(data.x.reshape(-1, d), columns=["a", "b"])
    df.insert(0, "trial", np.repeat([f"r{b}" for b in range(B)], T))
    df.insert(1, "t", np.tile(np.arange(T), B))
    df["seg"] = np.asarray(data.u).reshape(-1)
    df = df.sample(frac=1.0, random_state=1)
    path = tmp_path / "seq.csv"
    df.to_csv(path, index=False)
    run = tmp_path / "run"
    assert main(["fit", str(path), "--model", "tivae", "--out", str(run), "--u-col", "seg",
                 "--seq-col", "trial", "--time-col", "t", "--context", "1", *TINY]) == 0
    recorded = json.loads((run / "config.json").read_text())["columns"]
    assert recorded["sequence"] == "trial" and recorded["time"] == "t"
    assert main(["encode", str(run), "--out", str(tmp_path / "z.csv")]) == 0
    out = pd.read_csv(tmp_path / "z.csv")
    assert len(out) == B * T and list(out.columns[:3]) == ["trial", "step", "seg"]
    assert sorted(out["trial"].unique()) == [f"r{b}" for b in range(B)]
    first = out[out["trial"] == "r0"]
    assert list(first["step"]) == list(range(T))
    np.testing.assert_array_equal(first["seg"], np.asarray(data.u)[0])
    assert np.isfinite(out["z0_mean"]).all() and (out["z0_sd"] > 0).all()
