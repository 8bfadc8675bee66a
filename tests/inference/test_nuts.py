"""NUTS on z with the fitted model fixed: exact answers on a linear-Gaussian model."""

import arviz as az
import jax
import numpy as np
import pytest

from ppl_ident.errors import InputError
from ppl_ident.inference.latents import sample_latents
from ppl_ident.inference.nuts import nuts_latents


def test_nuts_matches_exact_gaussian_posterior(linear_gaussian):
    lg = linear_gaussian
    draws = nuts_latents(lg["spec"], lg["params"], lg["x"], lg["u"], key=jax.random.PRNGKey(0),
                         num_warmup=300, num_samples=500, num_chains=4)
    assert draws.z.shape == (4, 500, 6, 2)
    assert draws.sample_stats["diverging"].shape == (4, 500)
    assert draws.sample_stats["diverging"].sum() == 0
    post = {"z": draws.z}
    rhat = np.asarray(az.rhat(post)["z"])
    assert rhat.max() < 1.01
    ess = np.asarray(az.ess(post)["z"])
    assert ess.min() > 400
    # Monte Carlo standard errors from ArviZ's ESS (sd / sqrt(ESS)); 4 s.e. over 12
    # coordinates leaves a family-wise false-alarm rate below 0.1 % for a correct sampler.
    mcse_mean = np.asarray(az.mcse(post)["z"])
    mcse_sd = np.asarray(az.mcse(post, method="sd")["z"])
    flat = draws.z.reshape(-1, 6, 2)
    exact_sd = np.sqrt(np.einsum("njj->nj", lg["cov"]))
    assert np.all(np.abs(flat.mean(0) - lg["mean"]) < 4 * mcse_mean)
    assert np.all(np.abs(flat.std(0) - exact_sd) < 4 * mcse_sd)
    # and the test can fail: the posterior sd is far from the prior sd
    assert np.abs(flat.std(0) - np.array([[0.5, 2.0], [1.5, 0.7]] * 3)).max() > 10 * \
        mcse_sd.max()


def test_registry_and_checks(linear_gaussian):
    lg = linear_gaussian
    with pytest.raises(InputError, match="valid: guide, nuts"):
        sample_latents("hmc2", lg["spec"], lg["params"], lg["x"], lg["u"],
                       key=jax.random.PRNGKey(0))
    with pytest.raises(InputError, match="num_chains >= 2"):
        nuts_latents(lg["spec"], lg["params"], lg["x"], lg["u"], key=jax.random.PRNGKey(0),
                     num_chains=1)


# --- the nuts engine: NUTS on z as pure init/step functions --------------------------------


def test_nuts_engine_known_posterior_adaptation_and_one_compilation(linear_gaussian):
    # Two seeds vectorised as in the harness: the parameters go to init (here the same for
    # both), 150 adaptation steps then 400 recorded draws, in two equal compiled chunks.
    from ppl_ident.inference import fit_batched, nuts_engine

    lg = linear_gaussian
    engine = nuts_engine(lg["spec"], num_warmup=150, num_samples=400, num_chains=4)
    assert engine.num_steps == engine.config["num_steps"] == 550
    assert engine.config["kind"] == "sampler"
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    state = jax.jit(jax.vmap(engine.init, in_axes=(0, None, None, None)))(
        keys, lg["x"], lg["u"], lg["params"])
    traces = []

    def step(state, x, u):
        traces.append(1)  # runs only while tracing
        return engine.step(state, x, u)

    states, losses, finite, _, _ = fit_batched(engine._replace(step=step), keys, lg["x"],
                                               lg["u"], 550, chunk_size=275, progress=False,
                                               state=state)
    assert len(traces) == 1  # one compilation serves both chunks
    assert finite.all() and losses.shape == (2, 550)
    assert int(states.step[0]) == 550 and not np.asarray(states.diverging).any()
    z = np.asarray(states.z)
    assert z.shape == (2, 4, 400, 6, 2) and np.all(z != 0)  # every slot written
    # the two seeds are different runs of the same target
    assert not np.allclose(z[0], z[1])
    exact_sd = np.sqrt(np.einsum("njj->nj", lg["cov"]))
    for zi in z:
        post = {"z": zi}
        assert np.asarray(az.rhat(post)["z"]).max() < 1.01
        assert np.asarray(az.ess(post)["z"]).min() > 400
        mcse_mean = np.asarray(az.mcse(post)["z"])
        mcse_sd = np.asarray(az.mcse(post, method="sd")["z"])
        flat = zi.reshape(-1, 6, 2)
        # 4 Monte Carlo s.e. over 12 coordinates: false-alarm rate < 0.1 % for a correct sampler
        assert np.all(np.abs(flat.mean(0) - lg["mean"]) < 4 * mcse_mean)
        assert np.all(np.abs(flat.std(0) - exact_sd) < 4 * mcse_sd)
    # Warm-up adapted each observation's sampler: the step size moved off its start (1.0) and
    # the diagonal of the dense inverse mass matrix follows the posterior variances, which
    # span 0.15-1.2 over observations and latents (identity would not; the estimate is noisy
    # after 150 warm-up steps: ratios 0.2-2.5 around a median of 0.7).
    adapt = states.kernel.adapt_state
    assert np.all(np.asarray(adapt.step_size) != 1.0)
    inv_mass = np.asarray(adapt.inverse_mass_matrix)  # (seed, chain * obs, 2, 2)
    assert inv_mass.shape == (2, 24, 2, 2)
    inv_mass = inv_mass.reshape(2, 4, 6, 2, 2)
    diag = np.einsum("scnjj->scnj", inv_mass)
    exact_var = np.broadcast_to(exact_sd**2, diag.shape)
    assert np.corrcoef(np.log(diag).ravel(), np.log(exact_var).ravel())[0, 1] > 0.7
    assert 0.5 < np.median(diag / exact_var) < 1.5


def test_nuts_engine_checks(linear_gaussian, small_data):
    from ppl_ident.inference import nuts_engine
    from ppl_ident.families import build_model
    from ppl_ident.workflow import FitSettings, fit_model

    with pytest.raises(InputError, match="fits nothing"):
        fit_model(small_data[0], FitSettings(engine="nuts"))

    lg = linear_gaussian
    with pytest.raises(InputError, match="num_chains >= 2"):
        nuts_engine(lg["spec"], num_chains=1)
    with pytest.raises(InputError, match="num_warmup must be an integer >= 1"):
        nuts_engine(lg["spec"], num_warmup=0)
    with pytest.raises(InputError, match="target_accept_prob"):
        nuts_engine(lg["spec"], target_accept_prob=1.0)
    engine = nuts_engine(lg["spec"], num_chains=3)
    with pytest.raises(InputError, match="params"):
        engine.init(jax.random.PRNGKey(0), lg["x"], lg["u"])
    # A state from elsewhere (a saved one): an engine whose init never ran still steps.
    # (Traced abstractly, nothing compiled: NumPyro's kernel keeps its configuration in
    # closure variables that init sets, which nuts_engine sets when it is built.)
    state = jax.eval_shape(engine.init, jax.random.PRNGKey(0), lg["x"], lg["u"], lg["params"])
    fresh = nuts_engine(lg["spec"], num_chains=3)
    new, info = jax.eval_shape(fresh.step, state, lg["x"], lg["u"])
    assert new.z.shape == (3, 300, 6, 2) and info.finite.shape == ()
    auto = build_model("ivae", n_latent=2, data_dim=2, n_domains=3, guide="autonormal")
    with pytest.raises(InputError, match="amortised"):
        nuts_engine(auto)
    seq = build_model("stationary", n_latent=2, data_dim=2, width=8, depth=1)
    with pytest.raises(InputError, match="i.i.d."):
        nuts_engine(seq)
