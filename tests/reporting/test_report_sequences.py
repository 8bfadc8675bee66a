"""The report of a sequence model's run: trajectories, coverage, regime posterior, no crash on
the i.i.d.-only options, clear errors on bad input."""

import json
import math
import re

import pytest

from ppl_ident.arviz_compat import groups
from ppl_ident.cli import main
from ppl_ident.reporting.plots import CHECK_FIGURES
from ppl_ident.reporting.report import build_report
from ppl_ident.families import FAMILIES

TINY = dict(width=16, depth=1, seed=0)


def _finite_in(value, lo, hi):
    return value is not None and math.isfinite(value) and lo <= value <= hi


@pytest.fixture(scope="module")
def regime_run(tmp_path_factory):
    """A regime run without posterior.nc (the report builds it)."""
    from ppl_ident.data import save_dataset
    from ppl_ident.data.sequences import simulate_regimes
    from ppl_ident.workflow import fit_model, save_run

    tmp = tmp_path_factory.mktemp("seq_report_regime")
    data, truth = simulate_regimes(0, n_latent=2, data_dim=2, n_sequences=30, length=20,
                                   n_regimes=2, n_layers=2)
    save_dataset(tmp / "reg.npz", data, truth)
    fitted = fit_model(data, model="regime", n_regimes=2, steps=200, truth=truth, flow=False,
                       **TINY)  # the variational model: its posterior has draws
    return save_run(tmp / "run", fitted, data_path=str(tmp / "reg.npz"), posterior_draws=0)


@pytest.fixture(scope="module")
def tivae_run(tmp_path_factory):
    """A temporal iVAE run written by the CLI (with posterior.nc)."""
    tmp = tmp_path_factory.mktemp("seq_report_tivae")
    assert main(["simulate", "--generator", "dynamics", "--out", str(tmp / "dyn.npz"),
                 "--latent-dim", "2", "--data-dim", "2", "--sequences", "30",
                 "--length", "20"]) == 0
    assert main(["fit", str(tmp / "dyn.npz"), "--model", "tivae", "--steps", "200",
                 "--width", "16", "--depth", "1", "--posterior-draws", "40",
                 "--out", str(tmp / "run"), "--no-progress", "--no-flow"]) == 0
    return tmp / "run"


def test_regime_report(regime_run):
    # the figures of `check --out RUN/check` are embedded too
    assert main(["check", str(regime_run), "--out", str(regime_run / "check"),
                 "--points", "16"]) == 0
    res = build_report(regime_run, calibration_draws=100, heldout=regime_run / "none.npz")
    assert res.sections == list(FAMILIES["sequence"].report_sections)
    for name, file in CHECK_FIGURES.items():
        if name == "jacobian_regression":  # only for files with z and no simulator mixing
            continue
        assert res.figures[name] == regime_run / "check" / file
    for name in ("posterior.nc", "loss_trace.png", "trajectories.png", "calibration.png",
                 "regimes.png", "report.json", "report.html"):
        assert (regime_run / name).is_file() and (regime_run / name).stat().st_size > 0, name
    page = res.html.read_text()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 4 + 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "NUTS" in page and "--heldout file was not read" in page

    numbers = json.loads((regime_run / "report.json").read_text())
    assert numbers["posterior"] == {"sequences": 20, "draws": 100, "fresh_draws": False}
    assert _finite_in(numbers["mcc"], 0, 1)
    assert _finite_in(numbers["coverage_90"]["hdi"], 0, 1)
    assert _finite_in(numbers["coverage_90"]["eti"], 0, 1)
    assert numbers["coverage_90"]["steps"] == 20 * 20
    reg = numbers["regimes"]
    for key in ("accuracy", "accuracy_smoothed", "accuracy_posterior_draws",
                "trans_matrix_max_abs_error", "trans_matrix_frobenius_error"):
        assert _finite_in(reg[key], 0, 2), key
    assert reg["accuracy"] >= 0.5  # labels are matched, so never worse than chance
    assert sorted(reg["mapping"]) == [0, 1]
    assert set(numbers["skipped"]) == {"nuts", "marginal", "ppc"}

    idata = res.idata["guide"]
    assert idata.posterior["z"].dims == ("chain", "draw", "sequence", "time", "latent")
    assert idata.posterior["regime_probs"].dims == ("chain", "draw", "sequence", "time",
                                                    "regime")
    assert "regimes_true" in idata.constant_data


def test_tivae_report_cli(tivae_run, capsys, monkeypatch):
    # the fit stored the MCC in metrics.json: the report reads it and evaluates nothing again
    import ppl_ident.reporting.sequence_report as seq

    def no_evaluate(*args, **kwargs):
        raise AssertionError("the report re-ran evaluate on numbers metrics.json holds")

    def no_encode(*args, **kwargs):
        raise AssertionError("the report encoded the data for an alignment metrics.json holds")

    monkeypatch.setattr(seq, "evaluate", no_evaluate)
    monkeypatch.setattr(seq, "encode", no_encode)
    before = (tivae_run / "posterior.nc").read_bytes()
    code = main(["report", str(tivae_run), "--nuts-obs", "0", "--calibration-draws", "60"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "report.html" in out.out
    # the posterior written by `fit` is read, never rewritten; fresh draws stay in memory
    assert (tivae_run / "posterior.nc").read_bytes() == before
    for name in ("loss_trace.png", "trajectories.png", "calibration.png", "report.html"):
        assert (tivae_run / name).is_file(), name
    assert not (tivae_run / "regimes.png").exists()
    numbers = json.loads((tivae_run / "report.json").read_text())
    assert numbers["model"] == "tivae" and "regimes" not in numbers
    assert numbers["posterior"]["draws"] == 60 and numbers["posterior"]["fresh_draws"]
    assert _finite_in(numbers["mcc"], 0, 1)
    assert _finite_in(numbers["coverage_90"]["hdi"], 0, 1)
    assert "nuts" not in numbers["skipped"]  # not asked for, so not mentioned
    page = (tivae_run / "report.html").read_text()
    assert 'id="regimes"' not in page and 'id="trajectories"' in page
    # the draws are aligned by the map the fit stored, fitted on all 30 x 20 steps
    stored = json.loads((tivae_run / "metrics.json").read_text())["alignment"]
    assert stored["steps"] == 30 * 20
    assert numbers["alignment"] == {k: stored[k] for k in ("matching", "slope", "intercept",
                                                           "r2")}


def test_sequence_report_of_a_run_without_a_stored_alignment_fits_the_same_one(tivae_run,
                                                                               tmp_path):
    """A run written before the fit stored its alignment: the report encodes every step once
    and fits the same map (the fit's means were encoded in chunks, the report's at once)."""
    copy = tmp_path / "run_copy"
    copy.mkdir()
    for f in tivae_run.iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
    metrics = json.loads((copy / "metrics.json").read_text())
    stored = metrics.pop("alignment")
    (copy / "metrics.json").write_text(json.dumps(metrics))
    res = build_report(copy, calibration_draws=40, check_points=0)
    got = res.numbers["alignment"]
    assert got["matching"] == stored["matching"]
    for k in ("slope", "intercept", "r2"):
        assert got[k] == pytest.approx(stored[k], rel=1e-4, abs=1e-5), k


def test_every_family_section_has_a_title_and_a_builder():
    """One builder for every report: a family's report is the tuple of its sections."""
    from ppl_ident.reporting.report import BUILDERS, SECTIONS

    for family in FAMILIES.values():
        assert family.report_sections and len(set(family.report_sections)) == len(
            family.report_sections), family.name
        assert set(family.report_sections) <= set(BUILDERS) & set(SECTIONS), family.name


def _fail(argv, capsys, match):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and match in err, err


def test_report_bad_inputs(tivae_run, tmp_path, capsys):
    _fail(["report", str(tivae_run), "--data", str(tmp_path / "missing.npz")], capsys,
          "does not exist")
    assert main(["simulate", "--out", str(tmp_path / "iid.npz"), "--latent-dim", "2",
                 "--data-dim", "2", "--domains", "5", "--points-per-domain", "20"]) == 0
    _fail(["report", str(tivae_run), "--data", str(tmp_path / "iid.npz")], capsys,
          "not (B, T, d)")
    # the data file named in config.json has gone
    config = json.loads((tivae_run / "config.json").read_text())
    moved = tmp_path / "elsewhere" / "dyn.npz"
    config["data"] = str(moved)
    copy = tmp_path / "run_copy"
    copy.mkdir()
    for f in tivae_run.iterdir():
        if f.is_file():          # not the check the report ran into RUN/check
            (copy / f.name).write_bytes(f.read_bytes())
    (copy / "config.json").write_text(json.dumps(config))
    _fail(["report", str(copy)], capsys, "was not found; pass --data FILE")


def test_report_of_a_sequence_flow_run_shows_point_estimates(tmp_path):
    """The exact-likelihood flow's z_t = h(x_t) is stored and reported as a point estimate:
    no posterior group, no calibration of intervals it does not have."""
    from ppl_ident.data import save_dataset
    from ppl_ident.data.sequences import simulate_dynamics
    from ppl_ident.workflow import fit_model, save_run

    data, truth = simulate_dynamics(0, n_sequences=6, length=8, n_latent=2, data_dim=2)
    save_dataset(tmp_path / "d.npz", data, truth)
    fitted = fit_model(data, model="tivae", flow=True, flow_layers=2, steps=10, width=8,
                       depth=1, batch_size=32)
    run = save_run(tmp_path / "run", fitted, data_path=str(tmp_path / "d.npz"))
    res = build_report(run, calibration_draws=50)
    idata = res.idata if not isinstance(res.idata, dict) else res.idata["guide"]
    assert "posterior" not in groups(idata)
    assert idata.point_estimate["z"].dims == ("sequence", "time", "latent")
    assert res.numbers["posterior"]["draws"] == 1 and "calibration_guide" not in res.numbers
    page = res.html.read_text()
    assert "point estimate z_t = h(x_t)" in page and "no intervals" in page
