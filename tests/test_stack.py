"""The package on either supported stack (Python 3.11: JAX 0.10 + ArviZ 0.23; Python 3.12:
JAX 0.12 + ArviZ 1.x): the CLI's simulate -> fit -> encode -> report chain, ``posterior.nc``
written on one stack read on the other (the committed files of ``tests/fixtures``), and the
statistics of :mod:`ppl_ident.arviz_compat` against ArviZ 0.23's numbers.

Marked ``stack``: ``.ci/run`` runs these (``pytest -m stack``) in its Python 3.12 leg.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ppl_ident import arviz_compat
from ppl_ident.cli import main
from ppl_ident.reporting.inference_data import (alignment_from_idata, flat_draws,
                                                is_point_estimate, read_posterior)
from ppl_ident.reporting.report import ppc_numbers

pytestmark = pytest.mark.stack

FIXTURES = Path(__file__).parent / "fixtures"
#: posterior.nc written by `ppl-ident fit` on each stack (tests/fixtures/README.md), and the
#: ArviZ version each file records (0.23: ``arviz_version``; 1.x: ``creation_library_version``)
WRITTEN = {"posterior_arviz0.nc": ("arviz_version", "0.23"),
           "posterior_arviz1.nc": ("creation_library_version", "1.")}
GROUPS = ["posterior", "posterior_predictive", "log_likelihood", "observed_data",
          "constant_data", "point_estimate", "fit"]


@pytest.fixture(params=sorted(WRITTEN))
def fixture_run(request, tmp_path):
    """A run directory holding only one stack's committed ``posterior.nc``."""
    shutil.copy(FIXTURES / request.param, tmp_path / "posterior.nc")
    return request.param, tmp_path


def test_posterior_written_on_either_stack_is_read(fixture_run):
    name, run = fixture_run
    idata = read_posterior(run)
    assert isinstance(idata, arviz_compat.IData)
    assert arviz_compat.groups(idata) == GROUPS
    post = arviz_compat.group(idata, "posterior")
    key, version = WRITTEN[name]
    assert post.attrs[key].startswith(version)          # really the other stack's file
    z = post["z"]
    assert z.dims == ("chain", "draw", "obs", "latent") and z.shape == (1, 4, 3, 2)
    np.testing.assert_array_equal(post.obs, [10, 12, 15])
    np.testing.assert_allclose(z.values[0, 0, :, 0], [-0.2178972, 1.4348807, -0.1842898],
                               rtol=1e-5)
    np.testing.assert_allclose(z.values[0, 1, 2], [-0.8829985, 1.6446846], rtol=1e-5)
    x = arviz_compat.group(idata, "observed_data")["x"]
    np.testing.assert_allclose(x.values[0], [-1.1305195, -0.0463527], rtol=1e-5)


def test_the_report_reads_either_stacks_posterior(fixture_run):
    # what `ppl-ident report` takes from posterior.nc: draws, alignment, summary, the PPC
    _, run = fixture_run
    idata = read_posterior(run)
    assert not is_point_estimate(idata)
    assert flat_draws(idata, "z_aligned").shape == (4, 3, 2)
    assert alignment_from_idata(idata).slope.shape == (2,)
    summ = arviz_compat.summary_stats(idata, "z", {"obs": [10, 12]}, hdi_prob=0.9)
    assert list(summ.columns) == ["mean", "sd", "hdi_5%", "hdi_95%"]
    assert list(summ.index) == ["z[10, 0]", "z[10, 1]", "z[12, 0]", "z[12, 1]"]
    assert len(ppc_numbers(idata)) > 0
    # and writes it back in its own format, which it reads again
    arviz_compat.write_netcdf(idata, run / "again.nc")
    back = arviz_compat.read_netcdf(run / "again.nc")
    np.testing.assert_array_equal(arviz_compat.group(back, "posterior")["z"],
                                  arviz_compat.group(idata, "posterior")["z"])


def _draws():
    return np.random.default_rng(0).normal(size=(4, 25, 6, 2)).astype(np.float32)


def test_statistics_are_arviz_023s_on_both_stacks():
    # numbers of ArviZ 0.23.4 (az.rhat, az.ess(method="tail"), az.hdi) on these draws
    z = _draws()
    np.testing.assert_allclose(arviz_compat.rhat(z)[0], [1.05771344, 0.99635324], rtol=1e-6)
    np.testing.assert_allclose(arviz_compat.ess(z, "tail")[0], [59.93156211, 87.50788002],
                               rtol=1e-6)
    np.testing.assert_allclose(arviz_compat.hdi(z.reshape(100, 6, 2), 0.9)[0],
                               [[-1.27768016, 1.73296309], [-1.22000635, 1.44996881]],
                               rtol=1e-6)


def test_summaries_have_arviz_023s_columns_and_numbers():
    idata = arviz_compat.from_groups({"posterior": {"z": _draws()}, "observed_data": None},
                                     dims={"z": ["obs", "latent"]})
    assert arviz_compat.groups(idata) == ["posterior"]
    diag = arviz_compat.summary_diagnostics(idata, "z", {"obs": [0]})
    assert list(diag.index) == ["z[0, 0]", "z[0, 1]"]
    assert diag.loc["z[0, 0]", ["ess_bulk", "ess_tail", "r_hat"]].tolist() == [63.0, 60.0, 1.06]
    stats = arviz_compat.summary_stats(idata, "z", {"obs": [0]}, hdi_prob=0.9)
    assert list(stats.columns) == ["mean", "sd", "hdi_5%", "hdi_95%"]
    np.testing.assert_allclose(stats.loc["z[0, 0]"], [-0.046, 0.975, -1.278, 1.733])


def test_psis_khat_separates_light_from_heavy_tails():
    # log weights N(0, s^2): s = 0.1 nearly equal weights, s = 4 a few weights dominate (the
    # two stacks' Pareto fits differ in value, not in this verdict)
    lw = np.random.default_rng(1).normal(size=(2, 3, 1000)) * np.array([0.1, 4.0])[:, None, None]
    light, heavy = arviz_compat.psis_khat(lw[0]), arviz_compat.psis_khat(lw[1])
    assert light.shape == heavy.shape == (3,)
    assert light.max() < 0.5 and heavy.min() > 0.7


SIM = ["--latent-dim", "2", "--data-dim", "2", "--domains", "2", "--points-per-domain", "10",
       "--mixing-layers", "1", "--seed", "0"]
FIT = ["--no-flow", "--steps", "5", "--batch-size", "8", "--width", "4", "--depth", "1",
       "--posterior-draws", "4", "--posterior-obs", "3", "--no-progress"]


@pytest.mark.skipif(not arviz_compat.ARVIZ_1, reason="on ArviZ 0.23 (Python 3.11) the CLI's "
                    "fit, encode and report are tested by tests/cli and tests/reporting")
def test_simulate_fit_encode_report(tmp_path):
    """The CLI chain, in-process, on a tiny setting (the commands of tests/fixtures/README.md
    with a report): every step exits 0 and writes its files. Run on the 3.12 stack only: on
    3.11 the same commands are the subject of tests/cli and tests/reporting."""
    data, run = tmp_path / "data.npz", tmp_path / "run"
    assert main(["simulate", "--out", str(data), *SIM]) == 0
    assert main(["fit", str(data), "--out", str(run), *FIT]) == 0
    z = arviz_compat.group(read_posterior(run), "posterior")["z"]
    assert z.shape == (1, 4, 3, 2)
    assert main(["encode", str(run), "--out", str(tmp_path / "z.csv")]) == 0
    assert len((tmp_path / "z.csv").read_text().splitlines()) == 21      # header + 20 rows
    assert main(["report", str(run), "--nuts-obs", "2", "--nuts-warmup", "20",
                 "--nuts-samples", "20", "--nuts-chains", "2", "--marginal-samples", "5",
                 "--calibration-draws", "20", "--check-points", "8", "--null-fits", "0"]) == 0
    page = (run / "report.html").read_text()
    assert "az.summary" in page and "hdi_5%" in page
    for name in ("forest.png", "ppc.png", "report.json"):
        assert (run / name).is_file(), name
    numbers = json.loads((run / "report.json").read_text())
    assert numbers["nuts"]["max_r_hat"] > 0 and numbers["nuts"]["min_ess_tail"] > 0
