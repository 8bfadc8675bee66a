"""Invertible coupling flows: inverse, log-determinant, identity at initialisation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppl_ident.ops.flows import coupling_flow


def _perturbed(n, key=0):
    flow = coupling_flow(jax.random.PRNGKey(key), n, n_layers=3, width=8, depth=1)
    params, static = eqx.partition(flow, eqx.is_inexact_array)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(key + 1), len(leaves))
    leaves = [a + 0.3 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)]
    return flow, eqx.combine(jax.tree_util.tree_unflatten(tree, leaves), static)


@pytest.mark.parametrize("n", [2, 3])
def test_inverse_and_log_det_match_autodiff(n):
    fresh, flow = _perturbed(n)
    x = jnp.linspace(-1.5, 1.2, n)
    z, log_det = flow(x)
    np.testing.assert_allclose(flow.inverse(z), x, atol=1e-5)
    _, ref = jnp.linalg.slogdet(jax.jacfwd(lambda v: flow(v)[0])(x))
    np.testing.assert_allclose(log_det, ref, rtol=1e-5, atol=1e-5)
    # a fresh flow is the identity (zero last layers, identity LU factors)
    z0, ld0 = fresh(x)
    np.testing.assert_allclose(z0, x, atol=1e-6)
    assert float(ld0) == 0.0


def test_one_coordinate_is_refused():
    with pytest.raises(ValueError, match="n >= 2"):
        coupling_flow(jax.random.PRNGKey(0), 1)
