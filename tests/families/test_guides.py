"""Amortised guides: the full-covariance encoder's log-density at its own draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers

from ppl_ident.families.iid.guide import ReparamMultivariateNormal
from ppl_ident.families import build_model

ILL = np.array([[1e-3, 0, 0], [1e3, 1e-3, 0], [1e3, -1e3, 1e-3]], np.float32)
WELL = np.array([[1.0, 0, 0], [0.5, 2.0, 0], [0.1, -0.3, 0.7]], np.float32)


def _reference_log_prob(loc, scale_tril, z):
    """float64 log-density of MVN(loc, L L^T) by a direct solve (the known answer)."""
    L = np.asarray(scale_tril, np.float64)
    eps = np.linalg.solve(L, (np.asarray(z, np.float64) - loc).T).T
    n = L.shape[0]
    return -0.5 * (eps ** 2).sum(-1) - np.log(np.diag(L)).sum() - 0.5 * n * np.log(2 * np.pi)


@pytest.mark.parametrize("scale_tril", [WELL, ILL], ids=["well-conditioned", "ill-conditioned"])
def test_log_prob_at_own_draws_is_exact(scale_tril):
    loc = np.array([0.5, -1.0, 2.0], np.float32)
    d = ReparamMultivariateNormal(jnp.asarray(loc), scale_tril=jnp.asarray(scale_tril))
    z, inter = d.sample_with_intermediates(jax.random.PRNGKey(0), (64,))
    eps = np.asarray(inter[0], np.float64)
    # the known answer from the noise itself, in float64
    expected = (-0.5 * (eps ** 2).sum(-1) - np.log(np.diag(scale_tril.astype(np.float64))).sum()
                - 1.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(d.log_prob(z, inter), expected, rtol=1e-5, atol=1e-4)
    if scale_tril is WELL:
        # where float32 is accurate, the generic path agrees
        np.testing.assert_allclose(d.log_prob(z), _reference_log_prob(loc, scale_tril, z),
                                   rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(d.log_prob(z), d.log_prob(z, inter), rtol=1e-4, atol=1e-3)
    else:
        # the generic float32 solve is off by orders of magnitude: the reason for this class
        assert np.max(np.abs(np.asarray(d.log_prob(z)) - expected)) > 1e3


def test_fullcov_guide_trace_uses_the_exact_log_density():
    spec = build_model("ivae", jax.random.PRNGKey(0), n_latent=2, data_dim=3, n_domains=4,
                       width=8, depth=1, guide="encoder_fullcov")
    x = jax.random.normal(jax.random.PRNGKey(1), (10, 3))
    u = jnp.arange(10) % 4
    params = spec.init_params(jax.random.PRNGKey(2))
    guide = handlers.substitute(handlers.seed(spec.guide, 3), params)
    site = handlers.trace(guide).get_trace(x, u)["z"]
    assert isinstance(site["fn"], ReparamMultivariateNormal)
    assert site["intermediates"], "the ELBO needs the draw's noise to score it exactly"
    lp = site["fn"].log_prob(site["value"], site["intermediates"])
    assert lp.shape == (10,) and np.all(np.isfinite(lp))
    np.testing.assert_allclose(lp, site["fn"].log_prob(site["value"]), rtol=1e-3, atol=1e-3)
