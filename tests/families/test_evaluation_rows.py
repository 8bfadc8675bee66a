"""A fit's metrics on large data: every row up to EVAL_ROWS, else a seeded subset, chunked."""

import importlib

import numpy as np

from ppl_ident.diagnostics.mcc import mcc
from ppl_ident.families.base import evaluation_rows
from ppl_ident.families.iid.inputs import prepare_inputs
from ppl_ident.inference import encode
from ppl_ident.workflow import evaluate

iid_family = importlib.import_module("ppl_ident.families.iid.family")


def test_evaluation_uses_every_row_of_small_data(tiny_fit, small_data):
    data, _ = small_data
    m = evaluate(tiny_fit, data)
    u, _ = prepare_inputs(data.u, tiny_fit.labels)
    mean = np.asarray(encode(tiny_fit.spec, tiny_fit.params, data.x, u)[0])
    assert m["evaluation_rows"] == len(data.x)
    assert abs(m["mcc"] - mcc(data.z, mean).score) < 1e-6
    assert abs(m["mcc_spearman"] - mcc(data.z, mean, method="spearman").score) < 1e-6


def test_evaluation_of_larger_data_uses_a_seeded_subset(tiny_fit, small_data, monkeypatch):
    data, _ = small_data
    monkeypatch.setattr(iid_family, "EVAL_ROWS", 100)
    m = evaluate(tiny_fit, data)
    rows = evaluation_rows(len(data.x), 100)
    assert m["evaluation_rows"] == 100 and len(rows) == 100
    u, _ = prepare_inputs(data.u, tiny_fit.labels)
    mean = np.asarray(encode(tiny_fit.spec, tiny_fit.params, data.x[rows], u[rows])[0])
    assert abs(m["mcc"] - mcc(data.z[rows], mean).score) < 1e-6


def test_posterior_alignment_of_larger_data_is_fitted_on_the_evaluation_rows(
        tiny_fit, small_data, monkeypatch):
    from ppl_ident.diagnostics.calibration import fit_alignment
    from ppl_ident.families.iid import idata

    data, _ = small_data
    monkeypatch.setattr(idata, "EVAL_ROWS", 120)
    post = idata.iid_inference_data(tiny_fit, data, num_draws=8, max_obs=20)
    rows = evaluation_rows(len(data.x), 120)
    u, _ = prepare_inputs(data.u, tiny_fit.labels)
    mean = np.asarray(encode(tiny_fit.spec, tiny_fit.params, data.x[rows], u[rows])[0])
    want = fit_alignment(data.z[rows], mean)
    np.testing.assert_allclose(post.fit["alignment_slope"], want.slope, rtol=1e-5)
    np.testing.assert_array_equal(post.fit["alignment_matching"], want.matching)
    assert post.posterior["z"].sizes["obs"] == 20
