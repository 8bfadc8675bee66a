"""The restart-selecting ELBO at scale: chunked, on a bounded subset of rows, timed apart."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppl_ident.families import build_model
from ppl_ident.inference import OptimConfig, fit, svi_engine
from ppl_ident.inference.fit import selection_loss, selection_rows

# the module (the package re-exports the function ``fit`` under the same name)
fit_module = importlib.import_module("ppl_ident.inference.fit")


def _flow_engine(steps=30):
    # the exact flow's objective is deterministic: chunked and unchunked sums must agree
    spec = build_model("ivae", jax.random.PRNGKey(0), n_latent=2, data_dim=2, n_domains=5,
                       width=8, depth=1, flow=True, flow_layers=2)
    return svi_engine(spec, batch_size=32,
                      optim=OptimConfig(num_steps=steps, warmup_steps=5))


def test_chunked_selection_elbo_equals_the_unchunked_one(small_data):
    data, _ = small_data
    x, u = jnp.asarray(data.x), jnp.asarray(data.u)
    eng = _flow_engine()
    res = fit(eng, jax.random.PRNGKey(1), x, u, 10, restarts=2, progress=False)
    params = jax.vmap(eng.get_params)(res.states)
    key = jax.random.PRNGKey(2)
    whole = jax.vmap(eng.evaluate, in_axes=(None, 0, None, None))(key, params, x, u)
    for chunk in (7, 64, 300, 1000):  # remainders, one chunk, a chunk larger than the data
        chunked = selection_loss(eng, len(x), chunk)(key, params, x, u)
        np.testing.assert_allclose(np.asarray(chunked), np.asarray(whole), rtol=2e-5)
    assert len(set(np.round(np.asarray(whole), 2))) == 2  # two different restarts


def test_selection_rows_are_all_rows_or_a_seeded_subset():
    assert selection_rows(100, 200) is None
    rows = selection_rows(1000, 100)
    assert len(rows) == 100 and np.all(np.diff(rows) > 0) and rows.max() < 1000
    np.testing.assert_array_equal(rows, selection_rows(1000, 100))


def test_fit_scores_restarts_on_a_subset_of_large_data(small_data, monkeypatch):
    data, _ = small_data
    eng = _flow_engine()
    full = fit(eng, jax.random.PRNGKey(0), data.x, data.u, 30, restarts=2, progress=False)
    monkeypatch.setattr(fit_module, "SELECTION_ROWS", 150)
    sub = fit(eng, jax.random.PRNGKey(0), data.x, data.u, 30, restarts=2, progress=False)
    # same fits; the subset's ELBO (scaled to all 300 rows) estimates the full-data one
    np.testing.assert_array_equal(full.losses, sub.losses)
    assert sub.restart_losses != pytest.approx(full.restart_losses, rel=1e-6)
    np.testing.assert_allclose(sub.restart_losses, full.restart_losses, rtol=0.2)
    assert sub.selection_time > 0 and full.selection_time > 0
