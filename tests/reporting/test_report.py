"""The report builds from a run directory and holds every section, images embedded."""

import json
import re

import numpy as np
import pytest

from ppl_ident.reporting.report import OPTIONAL, SECTIONS, build_report


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_fit, small_data):
    from ppl_ident.data import save_dataset
    from ppl_ident.workflow import save_run

    tmp = tmp_path_factory.mktemp("report")
    data, truth = small_data
    save_dataset(tmp / "data.npz", data, truth)
    # no posterior.nc: the report builds it
    return save_run(tmp / "run", tiny_fit, data_path=str(tmp / "data.npz"), posterior_draws=0)


def _fake_diagnostics(run):
    """What the diagnostics issue writes: two PNGs and two metrics keys."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name in OPTIONAL.values():
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.imshow(np.eye(2))
        fig.savefig(run / name)
        plt.close(fig)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["jacobian"] = {"amari": 0.1}
    metrics["variability"] = {"rank": 4, "required": 4}
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_report_has_every_section(run_dir):
    _fake_diagnostics(run_dir)
    res = build_report(run_dir, nuts_obs=2, nuts_warmup=60, nuts_samples=40, nuts_chains=2,
                       marginal_samples=10, marginal_obs=100, calibration_draws=100)
    page = res.html.read_text()
    assert res.sections == list(SECTIONS)
    for key, title in SECTIONS.items():
        assert f'<h2 id="{key}">{title}</h2>' in page, title
    # self-contained: every image is embedded, nothing is fetched
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 7 and all(s.startswith("data:image/png;base64,") for s in srcs)
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

    for name in OPTIONAL.values():
        (run_dir / name).unlink(missing_ok=True)
    rc = main(["report", str(run_dir), "--nuts-obs", "0", "--marginal-samples", "5",
               "--calibration-draws", "100",
               "--heldout", str(run_dir.parent / "data.npz")])
    assert rc == 0
    page = (run_dir / "report.html").read_text()
    for key in ("jacobian", "variability", "nuts"):
        assert f'id="{key}"' not in page
    assert "held-out data" in page
    assert main(["report", str(run_dir.parent / "missing")]) == 2
