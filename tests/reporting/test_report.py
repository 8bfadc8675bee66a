"""The report builds from a run directory and holds every section, images embedded."""

import base64
import json
import re
import shutil
import warnings

import numpy as np
import pytest

from ppl_ident.reporting.plots import CHECK_FIGURES
from ppl_ident.families import FAMILIES
from ppl_ident.reporting.report import SECTIONS, build_report


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_fit, small_data):
    from ppl_ident.data import save_dataset
    from ppl_ident.workflow import save_run

    tmp = tmp_path_factory.mktemp("report")
    data, truth = small_data
    save_dataset(tmp / "data.npz", data, truth)
    # no posterior.nc: the report builds it
    return save_run(tmp / "run", tiny_fit, data_path=str(tmp / "data.npz"), posterior_draws=0)


def _check_diagnostics(run):
    """`ppl-ident check RUN --out RUN/check` writes the figures the report embeds; the fit's
    metrics get the two keys a fit with ground truth writes."""
    from ppl_ident.cli import main

    assert main(["check", str(run), "--out", str(run / "check"), "--points", "16",
                 "--null-fits", "0"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["jacobian"] = {"amari": 0.1}
    metrics["variability"] = {"rank": 4, "required": 4}
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_report_has_every_section(run_dir):
    from matplotlib import MatplotlibDeprecationWarning

    _check_diagnostics(run_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = build_report(run_dir, nuts_obs=2, nuts_warmup=60, nuts_samples=40,
                           nuts_chains=2, marginal_samples=10, marginal_obs=100,
                           calibration_draws=100)
    # no figure of the report uses a call matplotlib has deprecated
    deprecated = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught
                  if issubclass(w.category, MatplotlibDeprecationWarning)]
    assert not deprecated, deprecated
    page = res.html.read_text()
    assert res.sections == list(FAMILIES["iid"].report_sections)
    for key in res.sections:
        assert f'<h2 id="{key}">{SECTIONS[key]}</h2>' in page, key
    # self-contained: every image is embedded, nothing is fetched
    srcs = re.findall(r'src="([^"]*)"', page)
    # 8 figures, plus the learned prior, the latents by domain and the posterior sd (one seed:
    # no agreement figure)
    assert len(srcs) == 11 and all(s.startswith("data:image/png;base64,") for s in srcs)
    # the figures of `check --out RUN/check`, each embedded byte for byte
    for name in ("jacobian_encoder", "jacobian_decoder", "variability"):
        assert res.figures[name] == run_dir / "check" / CHECK_FIGURES[name]
        data = base64.b64encode(res.figures[name].read_bytes()).decode()
        assert f'src="data:image/png;base64,{data}"' in page, name
    for name in ("loss_trace.png", "posterior_vs_truth.png", "forest.png", "calibration.png",
                 "ppc.png", "posterior.nc", "report.json"):
        assert (run_dir / name).is_file(), name
    numbers = json.loads((run_dir / "report.json").read_text())
    assert numbers["nuts"]["width_ratio_90_median"] > 0
    assert len(numbers["calibration_guide"]["coverage_hdi"]) == 4
    assert numbers["marginal"]["data"].startswith("training data")
    assert "az.summary" in page and "MCC (Pearson)" in page and "amari" in page
    # the NUTS reference has the guide's dims and coords, aligned by the same map
    guide, nuts = res.idata["guide"], res.idata["NUTS"]
    assert nuts.posterior["z"].dims == guide.posterior["z"].dims
    assert nuts.posterior["z"].shape == (2, 40, 2, 2)
    np.testing.assert_array_equal(nuts.posterior.obs, guide.posterior.obs[:2])
    assert nuts.posterior.attrs["engine"] == "nuts"
    assert {"diverging", "n_steps", "acceptance_rate", "lp"} <= set(nuts.sample_stats)
    np.testing.assert_allclose(nuts.fit["alignment_slope"], guide.fit["alignment_slope"])


def test_cli_report_without_optional_sections(run_dir):
    from ppl_ident.cli import main

    shutil.rmtree(run_dir / "check", ignore_errors=True)
    # --check-points 0: the report does not run the check the run lacks
    rc = main(["report", str(run_dir), "--nuts-obs", "0", "--marginal-samples", "5",
               "--calibration-draws", "100", "--check-points", "0", "--null-fits", "0",
               "--heldout", str(run_dir.parent / "data.npz")])
    assert rc == 0
    page = (run_dir / "report.html").read_text()
    for key in ("jacobian", "variability", "nuts"):
        assert f'id="{key}"' not in page
    assert "held-out data" in page
    assert main(["report", str(run_dir.parent / "missing")]) == 2


def test_report_without_true_latents_draws_and_claims_no_true_values(tmp_path, tiny_fit,
                                                                     small_data):
    """Data without ``z``: the forest plot has no crosses and its caption does not say so."""
    from ppl_ident.workflow import save_run

    data, _ = small_data
    np.savez(tmp_path / "data.npz", x=np.asarray(data.x), u=np.asarray(data.u))
    run = save_run(tmp_path / "run", tiny_fit, data_path=str(tmp_path / "data.npz"))
    res = build_report(run, nuts_obs=0, marginal_samples=5, marginal_obs=50,
                       calibration_draws=50)
    page = res.html.read_text()
    assert 'id="forest"' in page and "Thick bars: interquartile range" in page
    assert "Crosses" not in page and "truth" not in res.figures


def test_report_of_a_flow_run_shows_point_estimates(tmp_path, small_data):
    """An exact-likelihood flow has a point-estimate posterior: the report shows its values
    and says why there are no intervals or forest plot; its predictive check draws new data
    from the fitted model."""
    from ppl_ident.data import save_dataset
    from ppl_ident.workflow import fit_model, save_run

    data, truth = small_data
    save_dataset(tmp_path / "data.npz", data, truth)
    fitted = fit_model(data, flow=True, flow_layers=2, steps=20, width=8, depth=1,
                       batch_size=64)
    run = save_run(tmp_path / "run", fitted, data_path=str(tmp_path / "data.npz"))
    res = build_report(run, nuts_obs=2, marginal_samples=5, marginal_obs=50)
    page = res.html.read_text()
    assert "forest" not in res.figures and "ppc" in res.figures
    assert "new data from the fitted model" in page
    assert res.idata["guide"].posterior_predictive["x"].dims[:2] == ("chain", "draw")
    assert "truth" in res.figures and "calibration_guide" not in res.numbers
    assert "point estimate z = h(x) of four observations" in page
    assert "no intervals to calibrate" in page and "az.summary" not in page
    assert res.idata["guide"].point_estimate["z"].dims == ("obs", "latent")
    # captions say what is drawn: no interval bars for a point estimate, an exact marginal
    # likelihood without a Monte Carlo error, no encoder that the flow does not have
    assert "no bars: a point estimate" in page and "bars are 90%" not in page
    assert res.numbers["marginal"]["method"] == "exact" and "(exact)" in page
    assert "± 0.0000" not in page and "encoder as proposal" not in page
    # the run had no check: the report ran it into RUN/check and shows what it found
    assert (run / "check" / "check.json").is_file() and 'id="variability"' in page
    assert "the sufficient-variability section below checks it" in page
    ppc = res.numbers["ppc"]
    assert len(ppc["ratio"]) == data.x.shape[1] and set(ppc["flag"]) <= {"ok", "too narrow",
                                                                        "too wide"}
    assert "sd replicated (median)" in page


def test_report_on_data_without_z_shows_the_evidence_that_needs_none(tmp_path, small_data):
    """A file with x and u only, fitted with 2 seeds: the report draws the seeds' agreement,
    the learned prior per domain, the latents by domain, the posterior sd over all rows and
    the posterior predictive check, and embeds exactly those files."""
    from ppl_ident.workflow import fit_model, save_run

    data, _ = small_data
    path = tmp_path / "noz.npz"
    np.savez(path, x=np.asarray(data.x), u=np.asarray(data.u))
    fitted = fit_model(data._replace(z=None), steps=60, batch_size=64, width=16, depth=1,
                       flow=False, seeds=2)
    run = save_run(tmp_path / "run", fitted, data_path=str(path), posterior_draws=40)
    res = build_report(run, nuts_obs=0, marginal_samples=5, marginal_obs=50,
                       calibration_draws=40)
    page = res.html.read_text()
    files = {"agreement": "seed_agreement.png", "prior": "learned_prior.png",
             "latents": "latents_by_domain.png", "posterior_sd": "posterior_sd.png",
             "ppc": "ppc.png"}
    for key, name in files.items():
        assert res.figures[key] == run / name and (run / name).stat().st_size > 10_000, name
        assert f'<h2 id="{key}">' in page
        data64 = base64.b64encode((run / name).read_bytes()).decode()
        assert f'src="data:image/png;base64,{data64}"' in page, name
    assert "truth" not in res.figures and "calibration_guide" not in res.numbers
    assert res.numbers["seed_agreement"]["seeds"] == 2
    prior = res.numbers["learned_prior"]
    assert prior["domains"] == [str(v) for v in np.unique(data.u)]
    assert np.shape(prior["loc"]) == np.shape(prior["sd"]) == (5, 2)
    assert np.all(np.asarray(prior["sd"]) > 0)


def test_report_heldout_table_is_read_with_the_runs_column_mapping(tmp_path, small_data):
    """A run fitted on a CSV with a named, string-valued u column: `report --heldout` reads
    another CSV with the same columns through the mapping the fit recorded."""
    import pandas as pd

    from ppl_ident.cli import main

    data, _ = small_data
    table = pd.DataFrame({"site": [f"s{k}" for k in data.u], "a": data.x[:, 0],
                          "b": data.x[:, 1], "note": "x"})
    table.iloc[::2].to_csv(tmp_path / "train.csv", index=False)
    table.iloc[1::2].to_csv(tmp_path / "held.csv", index=False)
    run = tmp_path / "run"
    assert main(["fit", str(tmp_path / "train.csv"), "--u-col", "site", "--out", str(run),
                 "--steps", "30", "--batch-size", "64", "--width", "8", "--depth", "1",
                 "--no-flow", "--posterior-draws", "8", "--no-progress"]) == 0
    assert main(["report", str(run), "--heldout", str(tmp_path / "held.csv"), "--nuts-obs",
                 "0", "--marginal-samples", "5", "--calibration-draws", "8",
                 "--null-fits", "0"]) == 0
    numbers = json.loads((run / "report.json").read_text())
    assert numbers["marginal"]["data"] == "held-out data"
    assert numbers["marginal"]["num_obs"] == len(table) // 2
    assert numbers["learned_prior"]["domains"] == [f"s{k}" for k in range(5)]


@pytest.mark.parametrize("n_domains, legend", [(15, True), (40, False)])
def test_latents_by_domain_in_categories_up_to_20_domains(monkeypatch, tmp_path, n_domains,
                                                          legend):
    """Up to 20 domains: one categorical colour each and a legend; beyond: no legend, each
    domain's mean and spread over grey rows (40 domains once shared a continuous scale)."""
    import ppl_ident.reporting.dataset_view as view

    drawn = {}
    monkeypatch.setattr(view, "save_figure", lambda fig, path: drawn.setdefault("fig", fig))
    rng = np.random.default_rng(0)
    u = np.repeat(np.arange(n_domains), 30)
    view.plot_latents_by_domain(rng.normal(size=(len(u), 2)), u, None, tmp_path / "l.png")
    ax = drawn["fig"].axes[0]
    assert (ax.get_legend() is not None) == legend
    if legend:
        colours = {tuple(np.round(c.get_facecolor()[0][:3], 3)) for c in ax.collections}
        assert len(colours) == n_domains                       # categorical: all distinct
    else:
        assert len(ax.containers) == n_domains                 # one mean ± sd per domain
        assert "each of the 40 domains" in drawn["fig"]._suptitle.get_text()
