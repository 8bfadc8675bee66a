"""The component-wise conditional spline transition: exact log-derivative, inverse, density."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppl_ident.ops.transitions import (conditional_flow_logpdf, conditional_flow_sample,
                                       rq_spline, rq_spline_inverse, spline_params,
                                       spline_raw_size)

jax.config.update("jax_enable_x64", False)


def _raw(seed, shape, bins=6, gain=1.5):
    return gain * jax.random.normal(jax.random.PRNGKey(seed), shape + (spline_raw_size(bins),))


def test_zero_parameters_are_the_identity():
    x = jnp.linspace(-7.0, 7.0, 101)
    y, ld = rq_spline(x, spline_params(jnp.zeros((101, spline_raw_size(8)))))
    np.testing.assert_allclose(y, x, atol=2e-4)  # float32 rounding of the knots
    np.testing.assert_allclose(ld, 0.0, atol=1e-4)


def test_log_derivative_matches_autodiff_and_is_monotone():
    x = jnp.linspace(-6.0, 6.0, 241)  # both tails and every bin
    p = spline_params(_raw(0, (241,)), bound=4.0)
    y, ld = rq_spline(x, p)
    grad = jax.vmap(jax.grad(lambda xi, pi: rq_spline(xi, pi)[0]))(x, p)
    np.testing.assert_allclose(ld, jnp.log(grad), atol=2e-4)
    # one set of parameters for every x: strictly increasing, identity in the tails
    p1 = spline_params(jnp.broadcast_to(_raw(1, ())[None], (241, spline_raw_size(6))), 4.0)
    y1, _ = rq_spline(x, p1)
    assert bool(jnp.all(jnp.diff(y1) > 0))
    np.testing.assert_allclose(y1[jnp.abs(x) > 4.0], x[jnp.abs(x) > 4.0])


def test_inverse_round_trip():
    x = jax.random.normal(jax.random.PRNGKey(2), (500,)) * 3.0
    p = spline_params(_raw(3, (500,), gain=1.0), bound=4.0)
    y, _ = rq_spline(x, p)
    np.testing.assert_allclose(rq_spline_inverse(y, p), x, atol=2e-4)
    # steeper splines: x-space error grows as 1 / s' (float32), y-space stays tight
    p = spline_params(_raw(3, (500,), gain=2.0), bound=4.0)
    y, _ = rq_spline(x, p)
    np.testing.assert_allclose(rq_spline(rq_spline_inverse(y, p), p)[0], y, atol=1e-5)
    raw = _raw(3, (500,), gain=1.0)
    z = conditional_flow_sample(jnp.ones(500) * 0.3, 0.2, 0.7, raw, 4.0)
    yz, _ = rq_spline(z, spline_params(raw, 4.0))
    np.testing.assert_allclose((yz - 0.2) / 0.7, 0.3, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conditional_density_integrates_to_one(seed):
    """1-D quadrature of exp(log N(eps) + log s' - log scale) over z."""
    grid = jnp.linspace(-30.0, 30.0, 120_001)
    raw = jnp.broadcast_to(_raw(10 + seed, (), gain=2.0), grid.shape + (spline_raw_size(6),))
    mean, scale = [(0.0, 1.0), (1.5, 0.4), (-2.0, 2.5)][seed]
    lp = conditional_flow_logpdf(grid, mean, scale, raw, 4.0)
    mass = np.trapezoid(np.exp(np.asarray(lp, np.float64)), np.asarray(grid, np.float64))
    np.testing.assert_allclose(mass, 1.0, atol=1e-3)
