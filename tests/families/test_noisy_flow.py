"""The noisy flow (``flow_noise=True``): a density on noisy x whose z has a real posterior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer import Trace_ELBO

from ppl_ident.errors import InputError
from ppl_ident.families import build_model
from ppl_ident.ops.observation import column_scale, unwhiten, whiten_data, whitening
from ppl_ident.workflow import prepare_inputs


def _spec(data, flow_noise=True, key=0):
    u, labels = prepare_inputs(data.u)
    white = whitening(data.x)
    spec = build_model("ivae", jax.random.PRNGKey(key), n_latent=2, data_dim=2,
                       n_domains=len(labels), width=8, depth=1, flow=True, whiten=white,
                       flow_noise=flow_noise)
    params = spec.init_params(jax.random.PRNGKey(1))
    # off the identity, so that the flow's log-determinant and curvature are not trivial
    params["flow$params"] = jax.tree_util.tree_map(
        lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(a.size), a.shape),
        params["flow$params"])
    params["prior_loc"] = jax.random.normal(jax.random.PRNGKey(2), (len(labels), 2))
    params["prior_scale"] = jnp.exp(0.3 * jax.random.normal(jax.random.PRNGKey(3),
                                                            (len(labels), 2)))
    return spec, params, jnp.asarray(u), tuple(map(jnp.asarray, white))


def test_noisy_flow_marginal_tends_to_the_noiseless_flow_likelihood(small_data):
    """log p(x | u) of the noisy flow, importance-sampled with the exact posterior of its
    Gaussian likelihood as proposal, equals the noiseless flow's exact log p(x | u) (the
    one-pass objective, checked against a hand computation in test_models) when the noise is
    1e-4 of each column's sd: the noiseless flow is the model's limit."""
    data, _ = small_data
    x = jnp.asarray(data.x[:40])
    spec, params, u, white = _spec(data)
    noisy = dict(params, noise_fraction=jnp.full((2,), 1e-4))
    exact_spec, _, _, _ = _spec(data, flow_noise=False)
    exact_model = handlers.substitute(exact_spec.objective[0], params)
    tr = handlers.trace(handlers.seed(exact_model, 0)).get_trace(x, u[:40], observe_latent=True)
    # the observed z's prior and the log-determinant factor (a sample site of its own)
    exact = sum(s["fn"].log_prob(s["value"]) for s in tr.values() if s["type"] == "sample")

    # proposal: w | x under the likelihood alone, N(w0, chol^-1 diag(sigma^2) chol^-T)
    sigma = 1e-4 * column_scale(white, 2)
    w0 = whiten_data(x, white)
    cov_w = jnp.linalg.solve(white[1], jnp.linalg.solve(white[1], jnp.diag(sigma ** 2)).T)
    lw = []
    for k in range(32):
        eps = jax.random.normal(jax.random.PRNGKey(10 + k), w0.shape)
        w = w0 + eps @ jnp.linalg.cholesky(cov_w).T
        log_q = jax.scipy.stats.multivariate_normal.logpdf(w, w0, cov_w)
        model = handlers.condition(handlers.substitute(spec.model, noisy), {"w": w})
        mtr = handlers.trace(handlers.seed(model, 0)).get_trace(x, u[:40])
        log_p = mtr["w"]["fn"].log_prob(w) + mtr["x"]["fn"].log_prob(x)
        lw.append(log_p - log_q)
    estimate = jax.nn.logsumexp(jnp.stack(lw), 0) - jnp.log(32.0)
    # the prior's log-density varies by O(1e-4) over the proposal; float32 sums of terms of
    # size |log sigma| ~ 10 round at ~1e-3: agreement to 3e-3 per row (any bias in the model's
    # noise, scale or Jacobian terms moves rows by 0.1 or more)
    np.testing.assert_allclose(estimate, exact, atol=3e-3)


def test_noisy_flow_training_objective_equals_the_guide_pair(small_data):
    """The engines train on ``spec.objective`` (the guide without its deterministic z site,
    so the flow runs once per step); its ELBO and gradients equal those of (model, guide)."""
    data, _ = small_data
    spec, params, u, _ = _spec(data)
    params["noise_fraction"] = jnp.full((2,), 0.2)
    x = jnp.asarray(data.x)

    def loss(pair):
        return lambda p: Trace_ELBO().loss(jax.random.PRNGKey(3), p, *pair, x, u)

    value, grads = jax.value_and_grad(loss((spec.model, spec.guide)))(params)
    value1, grads1 = jax.value_and_grad(loss(spec.objective))(params)
    np.testing.assert_allclose(value1, value, rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(grads1), jax.tree_util.tree_leaves(grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_noisy_flow_prior_predictive_adds_the_noise(small_data):
    """x = mu + A w + eps: drawn with the latents fixed, the spread of x around the decoded
    mean is the noise sd, noise_fraction times each column's sd (2000 draws: 5 s.e. = 8 %)."""
    from numpyro.infer import Predictive

    data, _ = small_data
    spec, params, u, white = _spec(data)
    params["noise_fraction"] = jnp.asarray([0.05, 0.2])
    w = jnp.zeros((1, 2))
    draws = Predictive(spec.model, posterior_samples={"w": jnp.broadcast_to(w, (2000, 1, 2))},
                       params=params, return_sites=["x"])(jax.random.PRNGKey(0), None, u[:1],
                                                         n_obs=1)["x"][:, 0]
    np.testing.assert_allclose(draws.mean(0), unwhiten(w, white)[0], atol=0.02)
    np.testing.assert_allclose(draws.std(0), params["noise_fraction"] * column_scale(white, 2),
                               rtol=0.08)


def test_noisy_flow_fit_has_a_posterior_and_survives_save_and_load(small_data, tmp_path):
    """A short fit: the posterior group holds z draws with spread, the log-likelihood group is
    pointwise, encode's sd is that spread (Monte Carlo moments of the same guide), and the
    run directory gives back the same numbers."""
    from ppl_ident.families.iid.idata import iid_inference_data
    from ppl_ident.families.predict import encode
    from ppl_ident.workflow import fit_model, load_run, save_run

    data, _ = small_data
    fitted = fit_model(data, steps=60, width=8, depth=1, flow_noise=True, seed=0)
    assert fitted.settings.flow and fitted.settings.flow_noise
    assert fitted.spec.config["flow_noise"] and "noise_fraction" in fitted.params
    idata = iid_inference_data(fitted, data, num_draws=40, max_obs=30)
    z = idata.posterior["z"]
    assert z.dims == ("chain", "draw", "obs", "latent") and z.shape[:2] == (4, 10)
    assert idata.log_likelihood["x"].dims == ("chain", "draw", "obs")
    assert "noise_fraction" in idata.point_estimate
    u, _ = prepare_inputs(data.u, fitted.labels)
    rows = np.asarray(idata.posterior.obs)
    mean, sd = encode(fitted.spec, fitted.params, data.x[rows], u[rows])
    assert np.all(sd > 0)
    draws = np.asarray(z).reshape(-1, len(rows), 2)
    # 40 posterior draws against 64 moment draws: the means agree within a few MC errors
    np.testing.assert_allclose(draws.mean(0), mean, atol=float(5 * sd.max() / np.sqrt(40)))
    np.testing.assert_allclose(draws.std(0), sd, rtol=0.5)
    # encode's interval: the empirical 5 % / 95 % quantiles of the same posterior's draws
    from ppl_ident.data.simulate import Dataset
    from ppl_ident.workflow import latent_summary

    summ = latent_summary(fitted, Dataset(data.x[rows], data.u[rows], None))
    np.testing.assert_allclose(summ["mean"], mean, rtol=1e-5, atol=1e-6)
    assert np.all(summ["q05"] < summ["mean"]) and np.all(summ["mean"] < summ["q95"])
    inside = np.mean((draws > summ["q05"]) & (draws < summ["q95"]))
    assert 0.8 < inside < 0.97     # 90 % of 64 draws, estimated from 40 others
    save_run(tmp_path / "run", fitted, data)
    back = load_run(tmp_path / "run")
    assert back.settings.flow_noise
    np.testing.assert_allclose(encode(back.spec, back.params, data.x, u)[0],
                               encode(fitted.spec, fitted.params, data.x, u)[0], atol=1e-6)


def test_flow_noise_without_the_flow_is_refused(small_data):
    from ppl_ident.workflow import fit_model

    data, _ = small_data
    with pytest.raises(InputError, match="--flow-noise"):
        fit_model(data, steps=5, flow=False, flow_noise=True)


def test_a_known_noise_sd_is_held_not_learned(small_data, tmp_path):
    """--flow-noise-sd: the noisy flow with the noise given in data units. Its noise_fraction
    is that sd over each column's sd (as the whitening map records it) before and after
    training, it survives save and load, and the report says the noise was given."""
    from ppl_ident.workflow import fit_model, load_run, save_run

    data, _ = small_data
    fitted = fit_model(data, steps=40, width=8, depth=1, flow_noise_sd=0.2, seed=0)
    assert fitted.settings.flow_noise and fitted.spec.config["flow_noise_sd"] == 0.2
    expect = 0.2 / np.asarray(column_scale(tuple(map(jnp.asarray, whitening(data.x))), 2))
    np.testing.assert_allclose(fitted.params["noise_fraction"], expect, rtol=1e-6)
    noise = fitted.metrics["observation_noise"]
    assert noise["noise_given"] and noise["message"].startswith("the given noise is")
    assert "lower bound" not in noise["message"]
    save_run(tmp_path / "run", fitted, data)
    back = load_run(tmp_path / "run")
    assert back.settings.flow_noise_sd == 0.2
    np.testing.assert_allclose(back.params["noise_fraction"], expect, rtol=1e-6)
    with pytest.raises(InputError, match="--no-flow-noise"):
        fit_model(data, steps=5, flow_noise_sd=0.2, flow_noise=False)
    with pytest.raises(InputError, match="--flow-noise"):
        fit_model(data, steps=5, flow_noise_sd=0.2, flow=False)
    with pytest.raises(InputError, match="flow_noise_sd must be > 0"):
        fit_model(data, steps=5, flow_noise_sd=-1.0)


def test_the_noisy_flow_is_the_default_only_where_the_data_identify_the_noise():
    # d > n: the noise has directions of its own, and the flow learns it by default; d = n:
    # the noiseless flow, unless asked
    from ppl_ident.data import simulate_domains
    from ppl_ident.settings import FitSettings
    from ppl_ident.workflow import checked_settings

    tall, _ = simulate_domains(0, n_latent=2, data_dim=3, n_domains=5, n_per_domain=10)
    square, _ = simulate_domains(0, n_latent=2, data_dim=2, n_domains=5, n_per_domain=10)
    assert checked_settings(tall, FitSettings())[1].flow_noise is True
    assert checked_settings(tall, FitSettings(flow_noise=False))[1].flow_noise is False
    assert checked_settings(square, FitSettings())[1].flow_noise is False
    assert checked_settings(square, FitSettings(flow_noise=True))[1].flow_noise is True
    # the variational model has no flow to add noise to
    assert checked_settings(tall, FitSettings(flow=False))[1].flow_noise is False


def test_seeds_are_chains_aligned_without_truth(small_data, tmp_path):
    """fit --seeds 3 with a posterior: posterior.nc holds one chain per seed, each seed's own
    draws mapped onto the kept fit; the kept fit's chain is its own posterior (its alignment
    to itself is the identity up to the monotone map's knots), and the seeds survive a save
    and load. The fit's metrics carry the observation-noise report."""
    from ppl_ident.families.iid.idata import SEED_CHAINS, iid_inference_data
    from ppl_ident.workflow import SEED_PARAMS_FILE, fit_model, load_run, save_run

    data, _ = small_data
    fitted = fit_model(data, steps=60, width=8, depth=1, flow_noise=True, seed=0, seeds=3)
    assert jax.tree_util.tree_leaves(fitted.seed_params)[0].shape[0] == 3
    noise = fitted.metrics["observation_noise"]
    assert len(noise["noise_fraction"]) == 2 and len(noise["implied_recovery"]) == 2
    idata = iid_inference_data(fitted, data, num_draws=30, max_obs=20, truth=False)
    assert idata.posterior["z"].shape == (3, 30, 20, 2)
    assert idata.posterior.attrs["chains"] == SEED_CHAINS
    assert idata.log_likelihood["x"].shape == (3, 30, 20)
    # the kept fit's chain: its own draws, through its own (monotone, near-identity) map
    kept = fitted.metrics["seed_restarts"].index(fitted.metrics["selected_restart"])
    own = iid_inference_data(fitted._replace(seed_params=None), data, num_draws=30,
                             max_obs=20, truth=False, num_chains=1)
    spread = float(np.asarray(own.posterior["z"]).std())
    diff = np.abs(np.asarray(idata.posterior["z"])[kept].mean(0)
                  - np.asarray(own.posterior["z"])[0].mean(0))
    assert diff.mean() < 0.1 * spread
    save_run(tmp_path / "run", fitted, data)
    assert (tmp_path / "run" / SEED_PARAMS_FILE).exists()
    back = load_run(tmp_path / "run")
    for a, b in zip(jax.tree_util.tree_leaves(back.seed_params),
                    jax.tree_util.tree_leaves(fitted.seed_params)):
        np.testing.assert_allclose(a, b)
    # a one-seed run written over it (--force) leaves no seeds behind
    save_run(tmp_path / "run", fit_model(data, steps=5, width=8, depth=1, flow_noise=True),
             data, force=True)
    assert not (tmp_path / "run" / SEED_PARAMS_FILE).exists()


def test_nuts_on_a_flow_is_refused_with_the_reason(small_data):
    from ppl_ident.inference.nuts import nuts_latents

    data, _ = small_data
    spec, params, u, _ = _spec(data)
    with pytest.raises(InputError, match="noise-free observation w"):
        nuts_latents(spec, params, data.x[:3], u[:3], key=jax.random.PRNGKey(0))
