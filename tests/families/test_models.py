"""Models: shapes, prior predictive, registry, and a short fit that beats raw x."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer import Predictive

from ppl_ident.errors import InputError
from ppl_ident.families import MODELS, SEQUENCE_MODELS, build_model


@pytest.mark.parametrize("name", sorted(set(MODELS) - set(SEQUENCE_MODELS)))
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


def test_continuous_u_uses_a_prior_network():
    spec = build_model("ivae", n_latent=2, data_dim=3, aux_dim=4)
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
