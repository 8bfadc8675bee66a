"""Sequence models: the path prior's density, sampling, fitting, workflow and CLI."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer import Predictive
from scipy.special import logsumexp

from ppl_ident.cli import main
from ppl_ident.data import load_dataset
from ppl_ident.data.sequences import simulate_sequences, transition_mean
from ppl_ident.diagnostics.sequences import match_regimes, transition_matrix_error
from ppl_ident.ops.hmm import hmm_viterbi
from ppl_ident.inference import OptimConfig, build_engine, encode, fit, svi_engine
from ppl_ident.families import FAMILIES, MODELS, build_model
from ppl_ident.families.sequence.model import (
    MarkovPathPrior,
    regime_posterior,
    transition_log_density,
    transition_tables,
)
from ppl_ident.families.sequence.idata import sequence_inference_data
from ppl_ident.workflow import fit_model, load_run, save_run

TINY = dict(width=16, depth=1)
ROWS = [("tivae", "dynamics"), ("stationary", "dynamics"), ("regime", "regimes")]


def _normal_logpdf(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)


def test_path_prior_log_prob_is_the_joint_density():
    """K = 1: per-step terms are Gaussian transition densities; K = 2: their sum equals the
    brute-force sum over all regime paths."""
    rng = np.random.default_rng(0)
    B, T, n, K, L = 2, 4, 2, 2, 1
    A = rng.normal(size=(K, n, n)) * 0.5
    mean_fn = lambda past: jnp.einsum("...i,kij->...kj", past, A)  # noqa: E731
    loc = jnp.asarray(rng.normal(size=(K, n)))
    scale = jnp.asarray(rng.uniform(0.5, 1.5, size=(K, n)))
    init_loc, init_scale = jnp.asarray(rng.normal(size=(L, n))), jnp.ones((L, n)) * 0.7
    z = rng.normal(size=(B, T, n))
    log_init = jnp.log(jnp.array([0.3, 0.7]))
    log_trans = jnp.log(jnp.array([[0.8, 0.2], [0.4, 0.6]]))
    full = lambda a: jnp.broadcast_to(a, (B, T, K, n))  # noqa: E731
    prior = MarkovPathPrior(mean_fn, full(loc), full(scale), init_loc, init_scale, L,
                            log_init, log_trans)
    got = np.asarray(prior.log_prob(jnp.asarray(z))).sum(1)

    for b in range(B):
        init = _normal_logpdf(z[b, 0], init_loc[0], init_scale[0]).sum()
        terms = []
        for path in itertools.product(range(K), repeat=T):
            lp = float(log_init[path[0]]) + init
            for t in range(1, T):
                m = z[b, t - 1] @ A[path[t]] + loc[path[t]]
                lp += float(log_trans[path[t - 1], path[t]])
                lp += _normal_logpdf(z[b, t], m, scale[path[t]]).sum()
            terms.append(lp)
        # float32 sums of ~20 terms of size O(1): 1e-4 is ample.
        np.testing.assert_allclose(got[b], logsumexp(terms), rtol=1e-4, atol=1e-4)

    single = MarkovPathPrior(mean_fn, full(loc)[:, :, :1], full(scale)[:, :, :1], init_loc,
                             init_scale, L)
    lp1 = np.asarray(single.log_prob(jnp.asarray(z)))
    ref = _normal_logpdf(z[:, 1:], np.einsum("bti,ij->btj", z[:, :-1], A[0]) + loc[0],
                         scale[0]).sum(-1)
    np.testing.assert_allclose(lp1[:, 1:], ref, rtol=1e-4, atol=1e-4)
    # Ancestral samples have the right shapes and regime labels.
    zs, rs = prior.sample_with_regimes(jax.random.PRNGKey(0))
    assert zs.shape == (B, T, n) and rs.shape == (B, T) and set(np.unique(rs)) <= {0, 1}


def test_true_parameters_recover_the_regime_path():
    """With the simulator's own transition laws plugged into the path prior, the Viterbi path
    of the true latents recovers the hidden regimes: the known-answer check of the regime
    machinery (density per regime, filter, Viterbi, label matching)."""
    data, truth = simulate_sequences("regimes", 0, n_latent=4, data_dim=4, n_sequences=40,
                                     length=50)
    B, T, n = data.z.shape
    K = truth.trans_matrix.shape[0]

    def mean_fn(past):
        past = past.reshape(past.shape[:-1] + (1, n))
        return jnp.stack([transition_mean(truth, past, k) for k in range(K)], axis=-2)

    full = lambda a: jnp.broadcast_to(jnp.asarray(a), (B, T, K, n))  # noqa: E731
    prior = MarkovPathPrior(mean_fn, full(truth.loc), full(truth.scale), jnp.zeros((1, n)),
                            2.0 * jnp.ones((1, n)), 1, jnp.log(jnp.asarray(truth.init_probs)),
                            jnp.log(jnp.asarray(truth.trans_matrix)))
    ll = prior.regime_log_liks(jnp.asarray(data.z))
    path = jax.vmap(lambda l: hmm_viterbi(prior.log_init, prior.log_trans, l)[0])(ll)
    match = match_regimes(truth.regimes, np.asarray(path))
    # The same check on 200 sequences gives 0.996 (0.957 for per-step argmax without the
    # chain); 0.97 leaves room for the smaller sample.
    assert match.accuracy > 0.97
    assert sorted(match.mapping.tolist()) == list(range(K))
    err = transition_matrix_error(truth.trans_matrix, truth.trans_matrix, np.arange(K))
    assert err["max_abs"] == 0.0


@pytest.mark.parametrize("name,generator", ROWS)
def test_model_samples_fits_and_loss_falls(name, generator):
    data, truth = simulate_sequences(generator, 0, n_latent=2, data_dim=2, n_sequences=24,
                                     length=12, n_domains=4)
    u = data.u if name == "tivae" else None
    spec = build_model(name, jax.random.PRNGKey(0), n_latent=2, data_dim=2,
                       n_domains=4 if name == "tivae" else None, n_regimes=2, **TINY)
    pp = Predictive(spec.model, num_samples=2)(jax.random.PRNGKey(1), None, u,
                                               n_seq=24, length=12)
    assert pp["x"].shape == (2, 24, 12, 2) and pp["z"].shape == (2, 24, 12, 2)
    assert np.all(np.isfinite(pp["x"]))

    engine = svi_engine(spec, batch_size=8, optim=OptimConfig(num_steps=200,
                                                               learning_rate=1e-2))
    res = fit(engine, jax.random.PRNGKey(2), data.x, u, 200, chunk_size=200, progress=False)
    assert res.num_skipped == 0
    # The loss starts at the scale of a random network (thousands) and must drop by far more
    # than its minibatch noise: compare the means of the first and last 30 steps.
    assert res.losses[-30:].mean() < res.losses[:30].mean() - 0.5 * abs(res.losses[:30].mean())
    mean, std = encode(spec, res.params, data.x, u)
    assert mean.shape == (24, 12, 2) and np.all(np.asarray(std) > 0)

    f = transition_log_density(spec, res.params, row=1 if name != "stationary" else 0)
    z_prev = jnp.asarray(data.z[0, 0])
    val = f(jnp.asarray(data.z[0, 1]), z_prev[None])
    assert np.isfinite(float(val))
    assert jax.grad(f)(jnp.asarray(data.z[0, 1]), z_prev[None]).shape == (2,)
    if name == "regime":
        post = regime_posterior(spec, res.params, data.x)
        assert post.probs.shape == (24, 12, 2) and post.path.shape == (24, 12)
        np.testing.assert_allclose(np.asarray(post.probs).sum(-1), 1.0, atol=1e-5)
        P = transition_tables(res.params).trans_matrix
        np.testing.assert_allclose(np.asarray(P).sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ["tivae", "regime"])
def test_heteroscedastic_model_density_matches_its_transition(name):
    """heteroscedastic=True: the path prior's per-step terms are Gaussians whose scale is
    trans_scale * exp(3 tanh(head / 3)) of the transition network's second head, and
    transition_log_density (the check's learned density) is the same function."""
    from ppl_ident.families.sequence.model import split_transition

    data, _ = simulate_sequences("dynamics", 0, n_latent=2, data_dim=2, n_sequences=3,
                                 length=5, n_domains=2, scale_gain=1.0)
    K = 2 if name == "regime" else 1
    spec = build_model(name, jax.random.PRNGKey(0), n_latent=2, data_dim=2, n_domains=2,
                       n_regimes=K, heteroscedastic=True, **TINY)
    assert spec.config["heteroscedastic"]
    params = spec.init_params(jax.random.PRNGKey(1))
    params["trans_scale"] = jnp.asarray([[0.5, 2.0], [1.5, 0.7]])
    params["trans_loc"] = jnp.asarray([[0.3, -0.2], [-0.5, 0.1]])
    z = jnp.asarray(data.z)
    u = data.u if name == "tivae" else None
    model = handlers.substitute(handlers.seed(spec.model, 0), params)
    prior = handlers.trace(handlers.condition(model, {"z": z})).get_trace(
        jnp.asarray(data.x), u)["z"]["fn"]
    ll = np.asarray(prior.regime_log_liks(z))  # (B, T, K)
    net = eqx.combine(params["transition$params"],
                      eqx.partition(spec.model.keywords["transition"], eqx.is_inexact_array)[1])
    mean, log_factor = split_transition(jax.vmap(net)(z[0, :-1]), K, 2, True)
    row = int(data.u[0, 1]) if name == "tivae" else 1
    head = 0 if name == "tivae" else row
    sd = np.asarray(params["trans_scale"])[row] * np.exp(np.asarray(log_factor[:, head]))
    ref = _normal_logpdf(np.asarray(z[0, 1:]), np.asarray(mean[:, head]) + np.asarray(
        params["trans_loc"])[row], sd).sum(-1)
    np.testing.assert_allclose(ll[0, 1:, 0 if name == "tivae" else row], ref, rtol=1e-4,
                               atol=1e-4)
    f = transition_log_density(spec, params, row=row)
    got = [float(f(z[0, t], z[0, t - 1][None])) for t in range(1, 5)]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert np.all(np.abs(np.asarray(log_factor)) <= 3.0)


def test_flow_model_scores_the_exact_likelihood():
    """flow=True: with the point-mass guide, the model's log-density at z = h(x) is the exact
    log p(x) = log p(z_{1:T}) + sum_t log |det dz_t/dx_t| (whitening included), checked
    against autodiff Jacobians. (Fitting, encoding with zero width and the run round trip:
    the contract test's exact-flow cases.)"""
    from numpyro.infer.util import log_density

    from ppl_ident.ops.observation import whitening

    data, truth = simulate_sequences("regimes", 0, n_latent=2, data_dim=2, n_sequences=4,
                                     length=6, n_regimes=2)
    white = whitening(data.x.reshape(-1, 2))
    spec = build_model("regime", jax.random.PRNGKey(0), n_latent=2, data_dim=2, n_regimes=2,
                       flow=True, flow_layers=2, whiten=white, **TINY)
    params = spec.init_params(jax.random.PRNGKey(1))
    leaves, tree = jax.tree_util.tree_flatten(params["flow$params"])
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    params["flow$params"] = jax.tree_util.tree_unflatten(
        tree, [a + 0.2 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
    x = jnp.asarray(data.x)
    z, _ = encode(spec, params, x, None)
    guide_tr = handlers.trace(handlers.substitute(handlers.seed(spec.guide, 0), params)
                              ).get_trace(x, None)
    got, _ = log_density(handlers.substitute(spec.model, params), (x, None), {},
                         {"z": guide_tr["z"]["value"]})
    model = handlers.substitute(handlers.seed(spec.model, 0), params)
    prior = handlers.trace(handlers.condition(model, {"z": z})).get_trace(x, None)["z"]["fn"]
    flow = eqx.combine(params["flow$params"],
                       eqx.partition(spec.model.keywords["flow"], eqx.is_inexact_array)[1])
    mu, chol = (np.asarray(a, np.float64) for a in white)

    def h(xt):  # data coordinates -> latent
        return flow(jnp.linalg.solve(jnp.asarray(chol, jnp.float32), xt - mu))[0]

    jac = jax.vmap(jax.jacfwd(h))(x.reshape(-1, 2))
    ref = float(prior.log_prob(z).sum() + jnp.linalg.slogdet(jac)[1].sum())
    np.testing.assert_allclose(float(got), ref, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(z).reshape(-1, 2), jax.vmap(h)(x.reshape(-1, 2)),
                               atol=1e-4)


@pytest.mark.parametrize("name,transition", [("tivae", "additive"), ("regime", "flow")])
def test_sequence_flow_one_pass_objective_equals_the_point_mass_pair(name, transition):
    """The engines train an exact sequence flow on ``spec.objective`` (the model computes and
    observes z = h(x), an empty guide: one flow pass per step). Its loss and gradients equal
    those of the documented pair (model, point-mass guide), with whitening's Jacobian, for the
    additive and the spline transition."""
    from numpyro.infer import Trace_ELBO

    from ppl_ident.ops.observation import whitening

    generator = "regimes" if name == "regime" else "dynamics"
    extra = {"n_regimes": 2} if name == "regime" else {"n_domains": 3}
    data, _ = simulate_sequences(generator, 0, n_latent=2, data_dim=2, n_sequences=4,
                                 length=6, **extra)
    spec = build_model(name, jax.random.PRNGKey(0), n_latent=2, data_dim=2, flow=True,
                       flow_layers=2, whiten=whitening(data.x.reshape(-1, 2)),
                       transition=transition, **extra, **TINY)
    params = spec.init_params(jax.random.PRNGKey(1))
    # move the flow off the identity, so that its log-determinant and gradients are not trivial
    params["flow$params"] = jax.tree_util.tree_map(
        lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(a.size), a.shape),
        params["flow$params"])
    x = jnp.asarray(data.x)
    u = None if name == "regime" else jnp.asarray(data.u)

    def loss(pair):
        return lambda p: Trace_ELBO().loss(jax.random.PRNGKey(3), p, *pair, x, u)

    value, grads = jax.value_and_grad(loss((spec.model, spec.guide)))(params)
    value1, grads1 = jax.value_and_grad(loss(spec.objective))(params)
    np.testing.assert_allclose(value1, value, rtol=1e-6)
    assert set(grads1) == set(grads)
    for a, b in zip(jax.tree_util.tree_leaves(grads1), jax.tree_util.tree_leaves(grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["tivae", "regime"])
def test_conditional_initial_leaves_out_exactly_the_first_lag_steps(name):
    """``initial="conditional"``: the exact flow's objective is the full ``log p(x)`` less the
    first L steps' terms, their initial Gaussian density at ``z = h(x)`` and their Jacobian
    factor, computed here from the flow directly. For the regime model the chain's first
    step still runs (its per-step terms are the filter's normalisers)."""
    from jax.scipy.stats import norm
    from numpyro.infer import Trace_ELBO

    from ppl_ident.families.predict import fitted_module
    from ppl_ident.families.sequence.model import _flow_latent
    from ppl_ident.ops.observation import whitening

    generator = "regimes" if name == "regime" else "dynamics"
    extra = {"n_regimes": 2} if name == "regime" else {"n_domains": 3}
    lag = 2
    data, _ = simulate_sequences(generator, 0, n_latent=2, data_dim=2, n_sequences=4,
                                 length=6, lag=lag, **extra)
    white = whitening(data.x.reshape(-1, 2))
    specs = {init: build_model(name, jax.random.PRNGKey(0), n_latent=2, data_dim=2, lag=lag,
                               flow=True, flow_layers=2, whiten=white, initial=init,
                               **extra, **TINY)
             for init in ("gaussian", "conditional")}
    params = specs["gaussian"].init_params(jax.random.PRNGKey(1))
    params["flow$params"] = jax.tree_util.tree_map(
        lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(a.size), a.shape),
        params["flow$params"])
    params["init_loc"] = jnp.array([[0.3, -0.2], [0.1, 0.5]])
    params["init_scale"] = jnp.array([[0.7, 1.3], [1.1, 0.9]])
    x = jnp.asarray(data.x)
    u = None if name == "regime" else jnp.asarray(data.u)
    loss = {k: Trace_ELBO().loss(jax.random.PRNGKey(3), params, *spec.objective, x, u)
            for k, spec in specs.items()}
    z, log_det = _flow_latent(fitted_module(specs["gaussian"], params, "flow"), x, white)
    first = (norm.logpdf(z[:, :lag], params["init_loc"], params["init_scale"]).sum()
             + log_det[:, :lag].sum())
    np.testing.assert_allclose(loss["conditional"] - loss["gaussian"], first, rtol=1e-5)
    # the variational model needs a prior for every latent it encodes
    from ppl_ident.errors import InputError
    with pytest.raises(InputError, match="--initial conditional"):
        build_model(name, n_latent=2, data_dim=2, initial="conditional", **extra)


def test_flow_needs_d_equal_n(small_data):
    from ppl_ident.errors import InputError
    from ppl_ident.workflow import fit_settings

    with pytest.raises(InputError, match="data_dim == n_latent"):
        build_model("tivae", n_latent=2, data_dim=3, n_domains=2, flow=True)
    # the i.i.d. flow takes d > n through a principal-component map, never without one
    with pytest.raises(InputError, match="principal components"):
        build_model("ivae", n_latent=2, data_dim=3, n_domains=2, flow=True)
    with pytest.raises(InputError, match="add --flow"):
        fit_model(small_data[0], steps=2, flow=False, flow_layers=3)
    s = fit_settings("exact")
    assert s.flow and s.steps == 20_000 and s.learning_rate == 1e-3


def test_heteroscedastic_is_refused_for_iid_models(small_data):
    from ppl_ident.errors import InputError

    with pytest.raises(InputError, match="drop --heteroscedastic"):
        fit_model(small_data[0], steps=2, heteroscedastic=True)


def test_registry_lists_sequence_models():
    assert set(FAMILIES["sequence"].models) <= set(MODELS)
    # the 0.1 name still answers, with a deprecation warning naming the replacement
    import ppl_ident.families as families

    with pytest.warns(DeprecationWarning, match=r"FAMILIES\['sequence'\].models"):
        assert families.SEQUENCE_MODELS == FAMILIES["sequence"].models
    with pytest.raises(ValueError, match="u"):
        build_model("tivae", n_latent=2, data_dim=2)


def test_workflow_regime_metrics_and_run_round_trip(tmp_path):
    data, truth = simulate_sequences("regimes", 1, n_latent=2, data_dim=2, n_sequences=16,
                                     length=15)
    fitted = fit_model(data, model="regime", steps=60, batch_size=60, n_regimes=3,
                       truth=truth, flow=False, **TINY)
    m = fitted.metrics
    for key in ("mcc", "regime_accuracy", "regime_accuracy_smoothed",
                "trans_matrix_max_abs_error", "learned_trans_matrix"):
        assert key in m, key
    assert 0 <= m["regime_accuracy"] <= 1 and m["sequences_per_batch"] == 4
    idata = sequence_inference_data(fitted, data, num_draws=5, max_sequences=3, truth=truth)
    assert idata.posterior["z"].dims == ("chain", "draw", "sequence", "time", "latent")
    assert idata.posterior["z"].shape == (1, 5, 3, 15, 2)
    probs = idata.posterior["regime_probs"]
    assert probs.dims == ("chain", "draw", "sequence", "time", "regime")
    np.testing.assert_allclose(probs.sum("regime"), 1.0, atol=1e-5)
    assert idata.constant_data["regimes_true"].shape == (3, 15)
    save_run(tmp_path / "run", fitted)
    back = load_run(tmp_path / "run")
    for k, v in fitted.params.items():
        jax.tree_util.tree_map(np.testing.assert_array_equal, v, back.params[k])
    assert back.spec.config == fitted.spec.config


def test_cli_simulate_and_fit_sequences(tmp_path, capsys):
    path = tmp_path / "dyn.npz"
    assert main(["simulate", "--generator", "dynamics", "--out", str(path), "--sequences", "8",
                 "--length", "10", "--latent-dim", "2", "--data-dim", "2",
                 "--domains", "3"]) == 0
    data, truth = load_dataset(path)
    assert data.x.shape == (8, 10, 2) and truth.kind == "dynamics"
    # An i.i.d. model on a sequence file is refused with exit code 2 and a hint.
    assert main(["fit", str(path), "--out", str(tmp_path / "r2"), "--model", "ivae"]) == 2
    assert "sequence model" in capsys.readouterr().err
    # Heteroscedastic data and model: --scale-gain and --heteroscedastic reach them, the fit
    # writes its run directory, and the run directory remembers the model's form. (One CLI
    # fit: the contract test fits every sequence model through fit_model.)
    het = tmp_path / "het.npz"
    assert main(["simulate", "--generator", "regimes", "--out", str(het), "--sequences", "6",
                 "--length", "8", "--latent-dim", "2", "--data-dim", "2", "--regimes", "2",
                 "--scale-gain", "0.5"]) == 0
    assert load_dataset(het)[1].scale_gain == 0.5
    out = tmp_path / "r3"
    assert main(["fit", str(het), "--out", str(out), "--model", "regime",
                 "--regimes", "2", "--heteroscedastic", "--steps", "5", "--batch-size", "16",
                 "--width", "8", "--depth", "1", "--no-progress"]) == 0
    assert (out / "metrics.json").is_file() and "MCC" in capsys.readouterr().out
    assert load_run(out).spec.config["heteroscedastic"] is True
    assert main(["simulate", "--out", str(tmp_path / "d.npz"), "--scale-gain", "1"]) == 2
    assert "--generator dynamics or regimes" in capsys.readouterr().err


def test_sequence_guides_diagonal_and_full_covariance():
    """Both per-step Gaussians: the encoder's output size and the guide's covariance."""
    x = np.asarray(simulate_sequences("dynamics", 0, n_sequences=3, length=6, n_latent=2,
                                      data_dim=2)[0].x)
    for guide, outputs in (("encoder", 4), ("encoder_fullcov", 5)):
        spec = build_model("stationary", n_latent=2, data_dim=2, guide=guide, **TINY)
        params = spec.init_params(jax.random.PRNGKey(1))
        assert params["encoder$params"].layers[-1].weight.shape[0] == outputs
        guide_fn = handlers.substitute(handlers.seed(spec.guide, 0), params)
        q = handlers.trace(guide_fn).get_trace(jnp.asarray(x), None)["z"]["fn"]
        cov = q.covariance_matrix if guide == "encoder_fullcov" else None
        assert q.batch_shape == (3, 6) and q.event_shape == (2,)
        if cov is not None:
            assert cov.shape == (3, 6, 2, 2) and np.all(np.linalg.eigvalsh(cov) > 0)
    with pytest.raises(Exception, match="guides encoder, encoder_fullcov"):
        build_model("tivae", n_latent=2, data_dim=2, n_domains=2, guide="autonormal")


def test_importance_weights_are_one_per_sequence():
    """RenyiELBO weights every element of the plates shared by all sites. A sequence's time
    steps are not independent, so the engine folds the time plate into each site's event: one
    log-weight per sequence, the sum over time of log p - log q (without the fold it would be
    one per step, which is not the model's importance-weighted bound)."""
    from numpyro.infer import RenyiELBO

    from ppl_ident.inference.engines import fold_plate

    x = jnp.asarray(simulate_sequences("dynamics", 0, n_sequences=3, length=6, n_latent=2,
                                       data_dim=2)[0].x)
    spec = build_model("stationary", n_latent=2, data_dim=2, **TINY)
    engine = build_engine("iwae", spec, batch_size=None, num_particles=4)
    params = spec.init_params(jax.random.PRNGKey(0))  # the other parameters take their inits
    key = jax.random.PRNGKey(2)
    per_step, _ = RenyiELBO()._single_particle_elbo(spec.model, spec.guide, params, (x, None), {},
                                                     key)
    folded, _ = RenyiELBO()._single_particle_elbo(fold_plate(spec.model, "time"),
                                                  fold_plate(spec.guide, "time"), params,
                                                  (x, None), {}, key)
    assert per_step.shape == (3, 6) and folded.shape == (3,)  # one weight per sequence
    np.testing.assert_allclose(folded, per_step.sum(-1), rtol=1e-5)
    # the engine's full-data bound is finite and, with many particles, not below the ELBO
    iw = engine.evaluate(jax.random.PRNGKey(3), params, x, None)
    elbo = svi_engine(spec, batch_size=None, eval_particles=16).evaluate(
        jax.random.PRNGKey(3), params, x, None)
    assert np.isfinite(iw) and iw <= elbo + 1e-3 * abs(elbo)


def test_sequence_model_fits_seeds_and_records_their_agreement():
    """`seeds` works for the sequence family: latents of every (sequence, time) step are
    compared between seeds."""
    from ppl_ident.workflow import fit_model

    data, _ = simulate_sequences("dynamics", 0, n_latent=2, data_dim=2, n_sequences=12,
                                 length=20)
    m = fit_model(data, model="tivae", steps=40, width=16, depth=1, seeds=2,
                  batch_size=64).metrics
    assert 0 <= m["seed_agreement"] <= 1 and len(m["seed_elbos"]) == 2
    assert np.asarray(m["seed_agreement_matrix"]).shape == (2, 2)


def test_transition_width_and_depth_shape_only_the_transition_network():
    """transition_width and transition_depth set the transition network's hidden layers and
    nothing else; left out (a run written before the settings existed) they are the width and
    depth of every network."""
    kw = dict(n_latent=2, data_dim=2, n_domains=3, flow=True, flow_layers=2, depth=1, width=8)
    spec = build_model("tivae", jax.random.PRNGKey(0), transition_width=5, transition_depth=2,
                       **kw)
    params = spec.init_params(jax.random.PRNGKey(1))
    trans = params["transition$params"]
    coupling = params["flow$params"].layers[1].net
    assert [layer.weight.shape[0] for layer in trans.layers[:-1]] == [5, 5]
    assert [layer.weight.shape[0] for layer in coupling.layers[:-1]] == [8]
    assert (spec.config["transition_width"], spec.config["transition_depth"]) == (5, 2)
    old = build_model("tivae", jax.random.PRNGKey(0), **kw)
    assert (old.config["transition_width"], old.config["transition_depth"]) == (8, 1)
    layers = old.init_params(jax.random.PRNGKey(1))["transition$params"].layers
    assert [layer.weight.shape[0] for layer in layers[:-1]] == [8]
    for bad in ({"transition_width": 0}, {"transition_depth": 1.5}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be a positive integer"):
            build_model("tivae", jax.random.PRNGKey(0), **bad, **kw)
    # the fit resolves it (the sequence flow's default) and records it in the model's config
    data, _ = simulate_sequences("dynamics", 0, n_latent=2, data_dim=2, n_sequences=4, length=5,
                                 n_domains=2)
    fitted = fit_model(data, model="tivae", steps=2, batch_size=4, width=8)
    assert fitted.spec.config["transition_width"] == fitted.settings.transition_width == 192
    assert fitted.spec.config["transition_depth"] == fitted.settings.transition_depth == 1


def test_separate_regime_transitions_give_each_regime_its_own_network():
    """regime_transitions="separate": K networks of transition_width x transition_depth, one
    per regime, whose outputs are laid out as the shared network's K heads (means, log scale
    factors, spline parameters); regime k's log-density reads only network k."""
    from ppl_ident.families.sequence.model import split_transition, transition_log_density

    K, n, lag = 3, 2, 2
    kw = dict(n_latent=n, data_dim=n, n_regimes=K, lag=lag, flow=True, flow_layers=2, width=8,
              depth=1, transition_width=6, transition_depth=2, transition="flow")
    spec = build_model("regime", jax.random.PRNGKey(0), regime_transitions="separate", **kw)
    assert spec.config["regime_transitions"] == "separate"
    params = {**spec.init_params(jax.random.PRNGKey(1)), "trans_scale": jnp.ones((K, n))}
    members = params["transition$params"].members
    # K stacked networks of two hidden layers of 6 units, each with one regime's outputs
    assert [w.shape for w in (layer.weight for layer in members.layers)] == [
        (K, 6, lag * n), (K, 6, 6), (K, n * (2 + 3 * 8 - 1), 6)]
    net = eqx.combine(params["transition$params"], eqx.partition(
        spec.model.keywords["transition"], eqx.is_inexact_array)[1])
    past = jax.random.normal(jax.random.PRNGKey(2), (lag * n,))
    mean, log_factor, raw = split_transition(net(past), K, n, False, 8)
    for k in range(K):
        member = jax.tree_util.tree_map(lambda a: a[k], members)
        member = eqx.combine(member, eqx.partition(
            spec.model.keywords["transition"].members, eqx.is_inexact_array)[1])
        out = member(past)
        np.testing.assert_allclose(mean[k], out[:n], rtol=1e-6)
        np.testing.assert_allclose(log_factor[k], 3 * jnp.tanh(out[n:2 * n] / 3), rtol=1e-6)
        np.testing.assert_allclose(raw[k].ravel(), out[2 * n:], rtol=1e-6)
    # changing network 0 moves regime 0's transition density and no other's
    bumped = dict(params)
    bumped["transition$params"] = eqx.tree_at(
        lambda t: t.members.layers[-1].bias, params["transition$params"],
        members.layers[-1].bias.at[0].add(0.5))
    z_t, z_prev = jnp.array([0.3, -0.2]), jnp.array([[0.1, 0.4], [-0.5, 0.2]])
    for k in range(K):
        before = transition_log_density(spec, params, row=k)(z_t, z_prev)
        after = transition_log_density(spec, bumped, row=k)(z_t, z_prev)
        assert (abs(float(after - before)) > 1e-4) == (k == 0)
    # the default keeps one shared network; the other models have no regimes to separate
    shared = build_model("regime", jax.random.PRNGKey(0), **kw)
    assert shared.config["regime_transitions"] == "shared"
    assert hasattr(shared.init_params(jax.random.PRNGKey(1))["transition$params"], "layers")
    with pytest.raises(ValueError, match="has no regimes"):
        build_model("stationary", jax.random.PRNGKey(0), regime_transitions="separate",
                    **{k: v for k, v in kw.items() if k != "n_regimes"})
    with pytest.raises(ValueError, match="regime_transitions must be one of"):
        build_model("regime", jax.random.PRNGKey(0), regime_transitions="each", **kw)
