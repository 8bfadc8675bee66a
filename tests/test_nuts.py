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
