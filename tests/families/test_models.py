"""Models: shapes, prior predictive, registry, and a short fit that beats raw x."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer import Predictive

from ppl_ident.errors import InputError
from ppl_ident.families import FAMILIES, build_model


@pytest.mark.parametrize("name", sorted(FAMILIES["iid"].models))
def test_prior_predictive_shapes_and_site_names(name):
    spec = build_model(name, n_latent=2, data_dim=3, n_domains=4)
    u = jnp.array([0, 1, 2, 3, 0])
    draws = Predictive(spec.model, num_samples=7)(jax.random.PRNGKey(0), None, u)
    assert draws["z"].shape == (7, 5, 2)
    assert draws["x"].shape == (7, 5, 3)
    tr = handlers.trace(handlers.seed(spec.model, 0)).get_trace(None, u)
    assert tr["obs"]["type"] == "plate" and tr["z"]["fn"].event_shape == (2,)


def test_ivae_prior_follows_the_domain_table():
    spec = build_model("ivae", n_latent=2, data_dim=2, n_domains=2)
    params = {"prior_scale": jnp.array([[0.1, 0.1], [5.0, 5.0]]), "prior_loc": jnp.zeros((2, 2))}
    u = jnp.repeat(jnp.arange(2), 2000)
    model = handlers.substitute(spec.model, params)
    z = Predictive(model, num_samples=1)(jax.random.PRNGKey(1), None, u)["z"][0]
    # sample sd of 2000 normal draws is within 5% of the truth with overwhelming probability
    np.testing.assert_allclose(z[:2000].std(0), 0.1, rtol=0.05)
    np.testing.assert_allclose(z[2000:].std(0), 5.0, rtol=0.05)


@pytest.mark.parametrize("prior", ["gaussian", "mixture"])
def test_continuous_u_uses_a_prior_network(prior):
    spec = build_model("ivae", n_latent=2, data_dim=3, aux_dim=4, prior=prior)
    u = jnp.ones((6, 4))
    draws = Predictive(spec.model, num_samples=2)(jax.random.PRNGKey(0), None, u)
    assert draws["x"].shape == (2, 6, 3)


def test_registry_rejects_unknown_names():
    with pytest.raises(InputError, match="valid models: ivae, regime, stationary, tivae, vae"):
        build_model("ica", n_latent=2, data_dim=2, n_domains=3)
    with pytest.raises(InputError, match="auxiliary"):
        build_model("ivae", n_latent=2, data_dim=2)


def test_init_params_differ_between_keys():
    spec = build_model("ivae", n_latent=2, data_dim=2, n_domains=3)
    a = spec.init_params(jax.random.PRNGKey(0))["decoder$params"].layers[0].weight
    b = spec.init_params(jax.random.PRNGKey(1))["decoder$params"].layers[0].weight
    assert not np.allclose(a, b)


def test_iid_flow_elbo_is_the_exact_log_likelihood(small_data):
    """With the point-mass guide z = h(x) the ELBO is log p(x | u): the factorial prior at
    h(w) plus log |det J_h(w)| minus the whitening's log-determinant, computed here by hand."""
    import equinox as eqx
    from jax.scipy.stats import norm

    from ppl_ident.families.predict import encode
    from ppl_ident.inference import OptimConfig, build_engine
    from ppl_ident.ops.observation import whiten_data, whitening
    from ppl_ident.workflow import prepare_inputs

    data, _ = small_data
    u, labels = prepare_inputs(data.u)
    white = whitening(data.x)
    spec = build_model("ivae", jax.random.PRNGKey(0), n_latent=2, data_dim=2,
                       n_domains=len(labels), width=8, depth=1, flow=True, whiten=white)
    params = spec.init_params(jax.random.PRNGKey(1))
    params["prior_loc"] = jax.random.normal(jax.random.PRNGKey(2), (len(labels), 2))
    params["prior_scale"] = jnp.exp(jax.random.normal(jax.random.PRNGKey(3), (len(labels), 2)))
    flow = eqx.combine(params["flow$params"],
                       eqx.partition(spec.model.keywords["flow"], eqx.is_inexact_array)[1])
    w = whiten_data(jnp.asarray(data.x), tuple(map(jnp.asarray, white)))
    z, log_det = jax.vmap(flow)(w)
    exact = (norm.logpdf(z, params["prior_loc"][u], params["prior_scale"][u]).sum(-1)
             + log_det - jnp.log(jnp.diagonal(white[1])).sum())
    engine = build_engine("svi", spec, batch_size=8, optim=OptimConfig())
    elbo = -engine.evaluate(jax.random.PRNGKey(4), params, jnp.asarray(data.x), jnp.asarray(u))
    np.testing.assert_allclose(elbo, exact.sum(), rtol=1e-4)
    mean, sd = encode(spec, params, data.x, u)
    np.testing.assert_allclose(mean, z, rtol=1e-5, atol=1e-5)
    assert float(jnp.max(sd)) == 0.0


def test_iid_flow_model_predictive_draws_follow_the_fitted_prior():
    """The flow's predictive check draws new data from p(x | u): mapped back by h, the draws
    of the rows of each domain have the prior's location and scale for that domain."""
    import equinox as eqx

    from ppl_ident.families.predict import model_predictive_x
    from ppl_ident.ops.observation import whiten_data, whitening

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)).astype(np.float32)
    u = np.repeat(np.arange(2), 100)
    white = whitening(x)
    spec = build_model("ivae", jax.random.PRNGKey(0), n_latent=2, data_dim=2, n_domains=2,
                       width=8, depth=1, flow=True, whiten=white)
    params = spec.init_params(jax.random.PRNGKey(1))
    params["prior_loc"] = jnp.asarray([[-1.0, 2.0], [0.5, 0.0]])
    params["prior_scale"] = jnp.asarray([[0.5, 1.0], [2.0, 0.3]])
    x_rep = model_predictive_x(spec, params, jnp.asarray(u), 200, key=jax.random.PRNGKey(2),
                               num_chains=4, num_draws=50)
    assert x_rep.shape == (4, 50, 200, 2)
    flow = eqx.combine(params["flow$params"],
                       eqx.partition(spec.model.keywords["flow"], eqx.is_inexact_array)[1])
    w = whiten_data(jnp.asarray(x_rep.reshape(-1, 2)), tuple(map(jnp.asarray, white)))
    z = np.asarray(jax.vmap(flow)(w)[0]).reshape(200, 200, 2)   # (draws, rows, latent)
    for k in range(2):
        zk = z[:, u == k].reshape(-1, 2)                        # 20,000 draws per domain
        # standard errors of 20,000 draws: loc <= 0.015, scale <= 1 %; 5 s.e. allowed
        np.testing.assert_allclose(zk.mean(0), params["prior_loc"][k], atol=0.08)
        np.testing.assert_allclose(zk.std(0), params["prior_scale"][k], rtol=0.05)


@pytest.mark.parametrize("model,data_dim", [("ivae", 2), ("ivae", 3), ("vae", 3)])
def test_iid_flow_one_pass_objective_equals_the_point_mass_pair(model, data_dim):
    """The engines train the flow on ``spec.objective`` (the model observes z = h(x), an
    empty guide: one flow pass per step). Its loss and gradients equal those of the
    documented pair (model, point-mass guide), for d = n and for d > n with its residual
    term."""
    from numpyro.infer import Trace_ELBO

    from ppl_ident.data import simulate_domains
    from ppl_ident.ops.observation import whitening
    from ppl_ident.workflow import prepare_inputs

    data, _ = simulate_domains(0, n_latent=2, data_dim=data_dim, n_domains=4, n_per_domain=30,
                               n_layers=1)
    u, labels = prepare_inputs(data.u)
    spec = build_model(model, jax.random.PRNGKey(0), n_latent=2, data_dim=data_dim,
                       n_domains=len(labels), width=8, depth=1, flow=True,
                       whiten=whitening(data.x, 2))
    params = spec.init_params(jax.random.PRNGKey(1))
    flow = params["flow$params"]
    # move the flow off the identity, so that its log-determinant and gradients are not trivial
    params["flow$params"] = jax.tree_util.tree_map(
        lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(a.size), a.shape), flow)
    if model == "ivae":
        params["prior_loc"] = jax.random.normal(jax.random.PRNGKey(2), (len(labels), 2))
        params["prior_scale"] = jnp.full((len(labels), 2), 0.7)
    x, uu = jnp.asarray(data.x), jnp.asarray(u)

    def loss(pair):
        return lambda p: Trace_ELBO().loss(jax.random.PRNGKey(3), p, *pair, x, uu)

    value, grads = jax.value_and_grad(loss((spec.model, spec.guide)))(params)
    value1, grads1 = jax.value_and_grad(loss(spec.objective))(params)
    np.testing.assert_allclose(value1, value, rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(grads1), jax.tree_util.tree_leaves(grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_iid_flow_identifies_and_its_vae_control_does_not(small_data):
    """Seed 0, 300 steps on the shared small setting (n = 2, 5 domains x 60): the iVAE flow
    recovers the latents (measured 0.969) and the flow with a standard-normal prior, the
    rotation-invariant control, does not (0.687); the margins leave room for platform noise."""
    from ppl_ident.workflow import fit_model

    data, _ = small_data
    kw = dict(steps=300, width=8, depth=1, flow=True, seed=0)
    ivae = fit_model(data, model="ivae", **kw).metrics["mcc"]
    vae = fit_model(data, model="vae", **kw).metrics["mcc"]
    assert ivae > 0.9 and vae < ivae - 0.15, (ivae, vae)


def test_iid_flow_with_more_data_dimensions_than_latents(tmp_path):
    """d = 3 > n = 2: the default fit is the flow on the top two principal components, whose
    objective is a density on x (the residual direction scored as noise), and it survives a
    save and load."""
    from ppl_ident.data import simulate_domains
    from ppl_ident.families.predict import encode
    from ppl_ident.workflow import fit_model, load_run, prepare_inputs, save_run

    data, _ = simulate_domains(0, n_latent=2, data_dim=3, n_domains=5, n_per_domain=40,
                               n_layers=1)
    fitted = fit_model(data, steps=30, width=8, depth=1, flow_layers=2, progress=False)
    assert fitted.spec.config["flow"] and len(fitted.spec.config["whiten"]) == 3
    assert np.isfinite(fitted.metrics["elbo_per_obs"]) and 0 <= fitted.metrics["mcc"] <= 1
    save_run(tmp_path / "run", fitted)
    back = load_run(tmp_path / "run")
    u, _ = prepare_inputs(data.u, back.labels)
    np.testing.assert_allclose(encode(back.spec, back.params, data.x, u)[0],
                               encode(fitted.spec, fitted.params, data.x, u)[0], atol=1e-6)


def test_mixture_prior_tables_are_each_domains_mean_and_sd():
    """With the mixture prior, ``prior_loc`` / ``prior_scale`` are each domain's mean and sd
    whatever the learned shape: draws per domain have them, the checks read them as such,
    and the learned log-density is the standardised mixture's (its seed condition holds for
    11 domains with changing locations and scales, n = 2)."""
    from ppl_ident.diagnostics.variability import sufficient_variability
    from ppl_ident.families.iid.checks import (learned_log_prior, learned_prior_sd,
                                               learned_prior_table)
    from ppl_ident.ops.distributions import StandardizedMixture, standardize_mixture

    rng = np.random.default_rng(0)
    spec = build_model("ivae", n_latent=2, data_dim=3, n_domains=11, prior="mixture")
    params = {"prior_loc": jnp.asarray(rng.normal(size=(11, 2)), jnp.float32),
              "prior_scale": jnp.asarray(rng.uniform(0.5, 2.0, (11, 2)), jnp.float32),
              # a heavy-tailed and a skewed, two-mode shape
              "prior_mix_logits": jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, -1.0]]),
              "prior_mix_loc": jnp.array([[0.0, 0.0, 0.0], [-1.5, 0.0, 2.0]]),
              "prior_mix_sd": jnp.array([[0.3, 1.0, 3.0], [0.4, 0.4, 0.4]])}
    u = jnp.repeat(jnp.arange(11), 4000)
    z = np.asarray(Predictive(handlers.substitute(spec.model, params), num_samples=1)(
        jax.random.PRNGKey(3), None, u)["z"][0])
    for k in (0, 7):
        zk = z[np.asarray(u) == k]
        # 4000 draws: s.e. of the mean <= 0.035, of the sd <= 3.5 % (kurtosis ~ 10): 3 s.e.
        np.testing.assert_allclose(zk.mean(0), params["prior_loc"][k], atol=0.1)
        np.testing.assert_allclose(zk.std(0), params["prior_scale"][k], rtol=0.1)
    np.testing.assert_allclose(learned_prior_sd(spec, params, np.arange(11)),
                               params["prior_scale"], rtol=1e-6)
    np.testing.assert_allclose(learned_prior_table(spec, params)["loc"], params["prior_loc"])
    shape = standardize_mixture(params["prior_mix_logits"], params["prior_mix_loc"],
                                params["prior_mix_sd"])
    log_prior = learned_log_prior(spec, params)
    expected = StandardizedMixture(params["prior_loc"][4], params["prior_scale"][4],
                                   *shape).log_prob(jnp.asarray(z[5])).sum()
    np.testing.assert_allclose(log_prior(jnp.asarray(z[5]), 4), expected, rtol=1e-5)
    seed = sufficient_variability(log_prior, z[rng.choice(len(z), 32, replace=False)],
                                  np.arange(11))
    assert seed.passed
