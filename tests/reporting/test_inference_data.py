"""InferenceData from a fit: groups, dims, fitted parameters substituted, NetCDF round trip."""

import warnings

import equinox as eqx
import jax
import numpy as np
import pytest

from ppl_ident.arviz_compat import (group, groups, read_netcdf, summary_diagnostics,
                                   summary_stats)
from ppl_ident.reporting.inference_data import (alignment_from_idata, read_posterior,
                                                to_inference_data, write_posterior)

GROUPS = {"posterior", "posterior_predictive", "log_likelihood", "observed_data",
          "constant_data", "point_estimate", "fit"}


@pytest.fixture(scope="module")
def idata(tiny_fit, small_data):
    data, _ = small_data
    return to_inference_data(tiny_fit, data, num_draws=40, max_obs=50, seed=1)


def test_groups_dims_coords(idata, small_data, tiny_fit):
    data, _ = small_data
    assert GROUPS <= set(groups(idata))
    post = idata.posterior
    assert post["z"].dims == ("chain", "draw", "obs", "latent")
    assert post["z"].shape == (4, 10, 50, 2)                 # 40 draws as 4 chains x 10
    assert post["z_aligned"].dims == ("chain", "draw", "obs", "true_latent")
    # the fitted parameters are point estimates, not a zero-variance posterior
    point = idata.point_estimate
    assert set(post.data_vars) == {"z", "z_aligned"}
    assert point["prior_scale"].dims == point["prior_loc"].dims == ("domain", "latent")
    assert point["noise_scale"].dims == ("x_dim",)
    obs = post["obs"].values
    assert len(set(obs)) == 50 and np.all(np.diff(obs) > 0)
    # coords are rows of the data file: observed and constant data line up with them
    np.testing.assert_allclose(idata.observed_data["x"].values, data.x[obs])
    np.testing.assert_array_equal(idata.constant_data["u"].values, data.u[obs])
    np.testing.assert_allclose(idata.constant_data["z_true"].values, data.z[obs], rtol=1e-6)
    np.testing.assert_array_equal(point["domain"].values, tiny_fit.labels)
    np.testing.assert_allclose(point["prior_scale"].values,
                               np.asarray(tiny_fit.params["prior_scale"]), rtol=1e-6)
    assert idata.log_likelihood["x"].dims == ("chain", "draw", "obs")
    assert idata.posterior_predictive["x"].dims == ("chain", "draw", "obs", "x_dim")
    assert idata.fit["loss"].shape == (150,)
    assert "\"steps\": 150" in idata.fit.attrs["settings"]
    # az functions accept it; with several chains R-hat is defined (i.i.d. draws: near 1)
    summ = summary_stats(idata, "z", {"obs": obs[:2]}, hdi_prob=0.94)
    assert len(summ) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diag = summary_diagnostics(idata, "z", {"obs": obs[:5]})
    assert np.isfinite(diag["r_hat"]).all() and diag["r_hat"].max() < 1.3


def test_log_likelihood_uses_fitted_parameters(idata, tiny_fit):
    """The known trap: a model run without substitution uses freshly initialised networks."""
    from ppl_ident.families.predict import decoder_fn

    spec, params = tiny_fit.spec, tiny_fit.params
    z = idata.posterior["z"].values[0, :5]                      # (5 draws, obs, n)
    x = idata.observed_data["x"].values
    sigma = np.asarray(params["noise_scale"])

    # the decoder works in whitened coordinates w = chol^-1 (x - mu); log p(x) adds the
    # Jacobian -log|chol| of the affine map (ppl_ident.families.iid.model.observation_dist)
    mu, chol = (np.asarray(a) for a in spec.config["whiten"])
    white = lambda v: np.linalg.solve(chol, (v - mu)[..., None])[..., 0]  # noqa: E731
    log_det = np.log(np.diag(chol)).sum()

    def loglik(decoder):
        mean = jax.vmap(jax.vmap(decoder))(z)
        return jax.scipy.stats.norm.logpdf(white(x), mean, sigma).sum(-1) - log_det

    expected = loglik(decoder_fn(spec, params))
    np.testing.assert_allclose(idata.log_likelihood["x"].values[0, :5], expected,
                               rtol=1e-4, atol=1e-3)
    fresh = eqx.combine(spec.init_params(jax.random.PRNGKey(123))["decoder$params"],
                        eqx.partition(spec.model.keywords["decoder"], eqx.is_inexact_array)[1])
    assert np.abs(np.asarray(loglik(fresh)) - expected).mean() > 1.0
    # posterior predictive: decoder(z) plus noise of the fitted scale
    pp = idata.posterior_predictive["x"].values.reshape(-1, *x.shape)
    draws = idata.posterior["z"].values.reshape(len(pp), x.shape[0], -1)
    resid = (white(pp) - jax.vmap(jax.vmap(decoder_fn(spec, params)))(draws)) / sigma
    assert abs(float(np.std(resid)) - 1.0) < 0.05           # 4000 values: sd of sd ~ 0.011


def test_alignment_stored_and_applied(idata):
    al = alignment_from_idata(idata)
    assert al is not None
    z = idata.posterior["z"].values
    expected = z[..., al.matching] * al.slope + al.intercept
    np.testing.assert_allclose(idata.posterior["z_aligned"].values, expected, rtol=1e-5,
                               atol=1e-5)


def test_netcdf_round_trip(idata, tmp_path):
    write_posterior(tmp_path, idata)
    back = read_posterior(tmp_path)
    assert set(groups(back)) == set(groups(idata))
    for name_g in groups(idata):
        a, b = group(idata, name_g), group(back, name_g)
        assert set(a.data_vars) == set(b.data_vars), name_g
        for name in a.data_vars:
            assert a[name].dims == b[name].dims, (name_g, name)
            np.testing.assert_array_equal(a[name].values, b[name].values)
        for name in a.coords:
            np.testing.assert_array_equal(a[name].values, b[name].values)
    assert back.fit.attrs["settings"] == idata.fit.attrs["settings"]
    assert back.posterior.attrs["engine"] == "guide"


def test_without_truth(tiny_fit, small_data):
    data, _ = small_data
    idata = to_inference_data(tiny_fit, data, num_draws=20, max_obs=10, truth=False)
    assert "z_aligned" not in idata.posterior
    assert "z_true" not in idata.constant_data


def test_bad_options(tiny_fit, small_data):
    from ppl_ident.errors import InputError

    data, _ = small_data
    with pytest.raises(InputError, match="num_draws"):
        to_inference_data(tiny_fit, data, num_draws=0)
    with pytest.raises(InputError, match="obs_idx"):
        to_inference_data(tiny_fit, data, obs_idx=[10_000])


def test_cli_fit_writes_posterior(tmp_path, small_data, tiny_fit, monkeypatch):
    """The options reach posterior.nc (the fit itself is replaced by the session's fit, so
    that this test checks the wiring without compiling another model)."""
    import ppl_ident.workflow
    from ppl_ident.cli import main
    from ppl_ident.data import save_dataset

    monkeypatch.setattr(ppl_ident.workflow, "fit_model", lambda *a, **k: tiny_fit)
    data, truth = small_data
    save_dataset(tmp_path / "d.npz", data, truth)
    rc = main(["fit", str(tmp_path / "d.npz"), "--out", str(tmp_path / "run"), "--steps", "20",
               "--batch-size", "64", "--width", "8", "--depth", "1", "--no-progress",
               "--posterior-draws", "25", "--posterior-obs", "30"])
    assert rc == 0
    back = read_netcdf(tmp_path / "run" / "posterior.nc")
    assert back.posterior["z"].shape == (4, 7, 30, 2)     # 25 draws: 4 chains of 7


def test_data_mean_fn_reconstructs_x_in_data_coordinates(tiny_fit, small_data):
    """The Jacobian's decoder route composes the true inverse with the learned mixing in data
    coordinates; the raw decoder network writes whitened coordinates."""
    from ppl_ident.families.predict import data_mean_fn, decoder_fn, encode
    from ppl_ident.workflow import prepare_inputs

    data, _ = small_data
    u, _ = prepare_inputs(data.u, tiny_fit.labels)
    mean, _ = encode(tiny_fit.spec, tiny_fit.params, data.x, u)
    x_hat = np.asarray(jax.vmap(data_mean_fn(tiny_fit.spec, tiny_fit.params))(mean))
    resid = ((data.x - x_hat) ** 2).sum() / ((data.x - data.x.mean(0)) ** 2).sum()
    assert resid < 0.3, resid
    w_hat = np.asarray(jax.vmap(decoder_fn(tiny_fit.spec, tiny_fit.params))(mean))
    mu, chol = (np.asarray(a) for a in tiny_fit.spec.config["whiten"])
    np.testing.assert_allclose(x_hat, mu + w_hat @ chol.T, rtol=1e-4, atol=1e-4)
    # the un-whitening matters here: reading w_hat as x would be far off
    assert ((data.x - w_hat) ** 2).sum() / ((data.x - data.x.mean(0)) ** 2).sum() > 2 * resid


def test_guide_draws_split_into_chains():
    from ppl_ident.families.predict import split_draws

    assert split_draws(100) == (4, 25) and split_draws(400) == (4, 100)
    assert split_draws(25) == (4, 7) and split_draws(8) == (2, 4) and split_draws(3) == (1, 3)
    for n in range(1, 60):
        chains, per = split_draws(n)
        assert chains * per >= n and chains * (per - 1) < n and (chains >= 2) == (n >= 8)


def test_a_flow_posterior_is_a_point_estimate(small_data, tmp_path):
    """An exact-likelihood flow's z = h(x) is one value per observation: it sits in
    ``point_estimate`` (no posterior group with zero variance), and survives the file; its
    predictive check is data drawn from the fitted model."""
    from ppl_ident.families.predict import encode
    from ppl_ident.reporting.inference_data import flat_draws, is_point_estimate
    from ppl_ident.workflow import fit_model, prepare_inputs

    data, _ = small_data
    fitted = fit_model(data, flow=True, flow_layers=2, steps=20, width=8, depth=1,
                       batch_size=64)
    idata = to_inference_data(fitted, data, num_draws=40, max_obs=20)
    assert "posterior" not in groups(idata)
    assert is_point_estimate(idata)
    # the predictive check of a flow draws new data from the fitted model, not from z draws
    assert idata.posterior_predictive["x"].dims[-2:] == ("obs", "x_dim")
    point = idata.point_estimate
    assert point["z"].dims == ("obs", "latent") and point["z"].shape == (20, 2)
    assert point["z_aligned"].dims == ("obs", "true_latent")
    obs = point.obs.values
    u, _ = prepare_inputs(data.u, fitted.labels)
    mean, _ = encode(fitted.spec, fitted.params, data.x[obs], u[obs])
    np.testing.assert_allclose(point["z"].values, np.asarray(mean), rtol=1e-5, atol=1e-5)
    assert flat_draws(idata, "z").shape == (1, 20, 2)
    write_posterior(tmp_path, idata)
    back = read_posterior(tmp_path)
    assert is_point_estimate(back)
    np.testing.assert_array_equal(back.point_estimate["z"].values, point["z"].values)
