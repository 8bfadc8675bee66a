"""The sequence models' flow transition (``transition="flow"``): its density by hand, its
regime marginal by brute force, the checker's learned density, a fit on tiny data."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer import Predictive
from scipy.special import logsumexp

from ppl_ident.data.sequences import simulate_sequences
from ppl_ident.errors import InputError
from ppl_ident.families import build_model
from ppl_ident.families.sequence.model import split_transition, transition_log_density
from ppl_ident.inference import OptimConfig, fit, svi_engine
from ppl_ident.ops.transitions import rq_spline, spline_params

TINY = dict(width=16, depth=1, transition="flow", spline_bins=4)


def _normal_logpdf(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)


def _net(spec, params):
    static = eqx.partition(spec.model.keywords["transition"], eqx.is_inexact_array)[1]
    return eqx.combine(params["transition$params"], static)


def _setup(name, K, seed=0):
    data, _ = simulate_sequences("dynamics", seed, n_latent=2, data_dim=2, n_sequences=3,
                                 length=4, n_domains=2, lag=2)
    spec = build_model(name, jax.random.PRNGKey(0), n_latent=2, data_dim=2, n_domains=2,
                       n_regimes=K, lag=2, **TINY)
    params = spec.init_params(jax.random.PRNGKey(1))
    # move every parameter off its initial value, so that the spline is far from the identity
    params = jax.tree_util.tree_map(
        lambda a: a + 0.7 * jax.random.normal(jax.random.PRNGKey(5), a.shape), params)
    rows = 1 if name == "stationary" else 2
    params["trans_scale"] = jnp.asarray([[0.5, 2.0], [1.5, 0.7]])[:rows]
    params["trans_loc"] = jnp.asarray([[0.3, -0.2], [-0.5, 0.1]])[:rows]
    params["init_loc"] = jnp.asarray([[0.2, -0.1], [0.0, 0.4]])
    params["init_scale"] = jnp.asarray([[0.8, 1.2], [1.1, 0.9]])
    if name == "regime":
        params["regime_init_logits"] = jnp.asarray([0.3, -0.4])
        params["regime_trans_logits"] = jnp.asarray([[1.0, -0.5], [0.2, 0.8]])
    return data, spec, params


def _hand(spec, params, z_t, past, ctx, row, head, K):
    """log p(z_t | past, ctx) computed by hand from the network's output."""
    inp = np.concatenate([past.reshape(-1), ctx])
    mean, log_factor, raw = split_transition(_net(spec, params)(jnp.asarray(inp)), K, 2, False,
                                             4)
    y, log_deriv = rq_spline(jnp.asarray(z_t), spline_params(raw[head]))
    sd = np.asarray(params["trans_scale"])[row] * np.exp(np.asarray(log_factor[head]))
    m = np.asarray(mean[head]) + np.asarray(params["trans_loc"])[row]
    return float((_normal_logpdf(np.asarray(y), m, sd) + np.asarray(log_deriv)).sum())


def _prior(spec, params, data, u):
    model = handlers.substitute(handlers.seed(spec.model, 0), params)
    return handlers.trace(handlers.condition(model, {"z": jnp.asarray(data.z)})).get_trace(
        jnp.asarray(data.x), u)["z"]["fn"]


@pytest.mark.parametrize("name", ["tivae", "stationary"])
def test_flow_transition_density_is_the_hand_computation(name):
    """Per-step terms of the path prior = N(s(z_t); mean + loc, scale * factor) + log s'(z_t)
    with the network reading (past, one-hot u) for the temporal iVAE; the first L steps use the
    initial Gaussian; transition_log_density (the checker's) is the same function."""
    data, spec, params = _setup(name, 1)
    u = data.u if name == "tivae" else None
    prior = _prior(spec, params, data, u)
    lp = np.asarray(prior.log_prob(jnp.asarray(data.z)))
    z = np.asarray(data.z)
    for b in range(3):
        for t in range(2, 4):
            past = np.stack([z[b, t - 1], z[b, t - 2]])
            row = int(data.u[b, t]) if name == "tivae" else 0
            ctx = np.eye(2)[row] if name == "tivae" else np.zeros(0)
            ref = _hand(spec, params, z[b, t], past, ctx, row, 0, 1)
            np.testing.assert_allclose(lp[b, t], ref, rtol=1e-4, atol=1e-4)
            got = float(transition_log_density(spec, params, row)(jnp.asarray(z[b, t]),
                                                                 jnp.asarray(past)))
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
        init = _normal_logpdf(z[b, :2], np.asarray(params["init_loc"]),
                              np.asarray(params["init_scale"])).sum(-1)
        np.testing.assert_allclose(lp[b, :2], init, rtol=1e-4, atol=1e-4)


def test_flow_regime_marginal_is_the_brute_force_sum():
    """K = 2 regimes, each with its own spline head: the summed per-step terms equal the
    log-sum over all 2^T regime paths of hand-computed densities."""
    data, spec, params = _setup("regime", 2)
    prior = _prior(spec, params, data, None)
    got = np.asarray(prior.log_prob(jnp.asarray(data.z))).sum(1)
    log_init = np.asarray(jax.nn.log_softmax(params["regime_init_logits"]))
    log_trans = np.asarray(jax.nn.log_softmax(params["regime_trans_logits"], axis=-1))
    z = np.asarray(data.z)
    for b in range(3):
        init = _normal_logpdf(z[b, :2], np.asarray(params["init_loc"]),
                              np.asarray(params["init_scale"])).sum(-1)
        terms = []
        for path in itertools.product(range(2), repeat=4):
            lp = log_init[path[0]] + init.sum()
            for t in range(1, 4):
                lp += log_trans[path[t - 1], path[t]]
                if t >= 2:
                    past = np.stack([z[b, t - 1], z[b, t - 2]])
                    lp += _hand(spec, params, z[b, t], past, np.zeros(0), path[t], path[t], 2)
            terms.append(lp)
        np.testing.assert_allclose(got[b], logsumexp(terms), rtol=1e-4, atol=1e-4)


def test_flow_transition_samples_and_fits_tiny_data():
    """Prior predictive through the spline's inverse; 150 SVI steps on post-nonlinear data:
    finite, the loss falls, and the checker's learned density has gradients."""
    data, truth = simulate_sequences("dynamics", 0, n_latent=2, data_dim=2, n_sequences=40,
                                     length=5, n_domains=3, lag=2,
                                     transition="post_nonlinear")
    spec = build_model("tivae", jax.random.PRNGKey(0), n_latent=2, data_dim=2, n_domains=3,
                       lag=2, **TINY)
    pp = Predictive(spec.model, num_samples=2)(jax.random.PRNGKey(1), None, data.u,
                                               n_seq=40, length=5)
    assert pp["z"].shape == (2, 40, 5, 2) and np.all(np.isfinite(pp["x"]))
    engine = svi_engine(spec, batch_size=10, optim=OptimConfig(num_steps=150,
                                                               learning_rate=1e-2))
    res = fit(engine, jax.random.PRNGKey(2), data.x, data.u, 150, chunk_size=150,
              progress=False)
    assert res.num_skipped == 0 and np.all(np.isfinite(res.losses))
    assert res.losses[-30:].mean() < res.losses[:30].mean() - 0.3 * abs(res.losses[:30].mean())
    f = transition_log_density(spec, res.params, row=2)
    g = jax.grad(f)(jnp.asarray(data.z[0, 2]), jnp.asarray(data.z[0, :2][::-1]))
    assert g.shape == (2,) and np.all(np.isfinite(g))


def test_flow_transition_is_refused_with_heteroscedastic_and_bad_names():
    with pytest.raises(InputError, match="drop --heteroscedastic"):
        build_model("stationary", n_latent=2, data_dim=2, transition="flow",
                    heteroscedastic=True)
    with pytest.raises(InputError, match="additive, flow"):
        build_model("stationary", n_latent=2, data_dim=2, transition="spline")


@pytest.mark.parametrize("name,K", [("tivae", 1), ("regime", 2)])
def test_post_nonlinear_transition_density_is_the_hand_computation(name, K):
    """transition="post_nonlinear": one learned spline per regime and latent that does not read
    the past, s(z_t) ~ N(f(past) + loc, scale): the per-step terms (for regimes, of the
    regime's head) and the checker's transition_log_density are that formula; a fresh model
    is the additive transition (the spline starts at the identity)."""
    data, _ = simulate_sequences("dynamics", 0, n_latent=2, data_dim=2, n_sequences=3,
                                 length=4, n_domains=2, lag=2)
    spec = build_model(name, jax.random.PRNGKey(0), n_latent=2, data_dim=2, n_domains=2,
                       n_regimes=K, lag=2, width=16, depth=1, transition="post_nonlinear",
                       spline_bins=4)
    params = spec.init_params(jax.random.PRNGKey(1))
    loc0 = np.asarray(params.get("trans_loc", np.zeros((2, 2))))  # regimes: symmetry broken
    u = data.u if name == "tivae" else None
    z = np.asarray(data.z)
    fresh = _prior(spec, params, data, u).regime_log_liks(jnp.asarray(z))
    net = _net(spec, params)
    rows = 2
    params["trans_scale"] = jnp.asarray([[0.5, 2.0], [1.5, 0.7]])[:rows]
    params["trans_loc"] = jnp.asarray([[0.3, -0.2], [-0.5, 0.1]])[:rows]
    params["trans_spline"] = 0.8 * jax.random.normal(jax.random.PRNGKey(7), (K, 2, 11))
    ll = np.asarray(_prior(spec, params, data, u).regime_log_liks(jnp.asarray(z)))
    for b in range(3):
        for t in range(2, 4):
            past = np.stack([z[b, t - 1], z[b, t - 2]])
            means = split_transition(net(jnp.asarray(past.reshape(-1))), K, 2, False)
            for head in range(K):
                row = int(data.u[b, t]) if name == "tivae" else head
                m = np.asarray(means[head]) + np.asarray(params["trans_loc"])[row]
                sd = np.asarray(params["trans_scale"])[row]
                y, log_deriv = rq_spline(jnp.asarray(z[b, t]),
                                         spline_params(params["trans_spline"][head]))
                ref = float((_normal_logpdf(np.asarray(y), m, sd) + np.asarray(log_deriv)).sum())
                np.testing.assert_allclose(ll[b, t, head], ref, rtol=1e-4, atol=1e-4)
                got = float(transition_log_density(spec, params, row)(jnp.asarray(z[b, t]),
                                                                     jnp.asarray(past)))
                np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
                if head == 0:  # the fresh model: the additive Gaussian at the initial tables
                    m0 = np.asarray(means[0]) + loc0[0 if name == "regime" else row]
                    add = _normal_logpdf(z[b, t], m0, 1.0).sum()
                    np.testing.assert_allclose(float(fresh[b, t, 0]), add, rtol=1e-4,
                                               atol=1e-4)
