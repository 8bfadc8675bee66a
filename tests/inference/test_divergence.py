"""Divergence: non-finite steps are skipped and counted; persistent ones stop the fit with a
message naming causes and fixes, keeping the last finite parameters."""

import json

import jax
import numpy as np
import pytest

from ppl_ident.cli import main
from ppl_ident.data import Dataset, save_dataset
from ppl_ident.errors import DivergenceWarning
from ppl_ident.inference.fit import DivergencePolicy, divergence_reason
from ppl_ident.workflow import FitSettings, fit_model, save_run


def test_divergence_reason_rules():
    ok = np.ones((2, 200), bool)
    assert divergence_reason(ok) is None
    assert divergence_reason(ok[:, :0]) is None
    tail = ok.copy()
    tail[:, -25:] = False
    assert "last 25 steps" in divergence_reason(tail)
    one = tail.copy()
    one[1] = True  # one healthy restart keeps the fit going
    assert divergence_reason(one) is None
    sparse = ok.copy()
    sparse[:, -100::2] = False  # half of the window: not more than half
    assert divergence_reason(sparse) is None
    sparse[:, -99] = False
    assert "more than 50%" in divergence_reason(sparse)
    assert divergence_reason(~ok, None) is None
    assert divergence_reason(~ok[:, :10]) is None  # too few steps to tell
    assert divergence_reason(~ok[:, :10], DivergencePolicy(max_consecutive=5)) is not None


def test_nan_data_point_every_batch_stops_with_finite_params(small_data, tmp_path):
    data, _ = small_data
    x = data.x.copy()
    x[0, 0] = np.nan  # full-batch steps all see it: every step is skipped
    bad = Dataset(x, data.u, data.z)
    s = FitSettings(steps=200, width=8, batch_size=len(x), warmup_steps=10, whiten=False)
    with pytest.warns(DivergenceWarning, match="learning rate"):
        fitted = fit_model(bad, s, checkpoint_dir=tmp_path / "run", checkpoint_every=25)
    m = fitted.metrics
    assert m["stop_reason"].startswith("diverged")
    assert m["num_steps"] == 25 and m["num_skipped_steps"] == 25  # stopped at the first chunk end
    for word in ("learning rate", "noise scale", "standardise"):
        assert word in m["stop_message"]
    leaves = jax.tree_util.tree_leaves(fitted.params)
    assert all(np.all(np.isfinite(np.asarray(a))) for a in leaves)
    save_run(tmp_path / "run", fitted, force=True)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())  # strict JSON
    assert saved["stop_reason"] == m["stop_reason"] and saved["elbo"] is None


def test_rare_nan_batches_are_skipped_and_counted_not_fatal(small_data):
    data, _ = small_data
    x = data.x.copy()
    x[0, 0] = np.nan  # in about 1 of 10 minibatches of 32 out of 300
    # whiten=False: the whitening statistics would spread the NaN to every step
    s = FitSettings(steps=100, width=8, batch_size=32, warmup_steps=10, whiten=False)
    fitted = fit_model(Dataset(x, data.u, data.z), s, checkpoint_every=50)
    m = fitted.metrics
    assert m["stop_reason"] == "completed" and m["num_steps"] == 100
    # 32/300 per step: expect ~11 of 100; 1..40 is far beyond binomial noise either side
    assert 1 <= m["num_skipped_steps"] <= 40
    assert np.isnan(fitted.losses).sum() == m["num_skipped_steps"]


def test_exploding_learning_rate_cli_exit_3(small_data, tmp_path, capsys):
    data, truth = small_data
    save_dataset(tmp_path / "d.npz", data, truth)
    out = tmp_path / "run"
    code = main(["fit", str(tmp_path / "d.npz"), "--out", str(out), "--lr", "1e30",
                 "--steps", "400", "--checkpoint-every", "50", "--width", "8",
                 "--batch-size", "32", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3 and "Traceback" not in err
    assert "diverged" in err and "--lr" in err
    m = json.loads((out / "metrics.json").read_text())
    assert m["stop_reason"].startswith("diverged") and m["num_steps"] < 400
    assert m["num_skipped_steps"] >= 25
    with np.load(out / "params.npz", allow_pickle=False) as npz:
        assert all(np.all(np.isfinite(npz[k])) for k in npz.files)
