"""Neural-network building blocks (Equinox).

Equinox is used because its modules *are* pytrees: parameters save, restore, ``vmap`` and
optimise like any other array tree, with no separate ``init``/``apply`` pair, and NumPyro
registers them with :func:`numpyro.contrib.module.eqx_module`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["mlp", "batched"]


def _leaky_relu(x):
    return jax.nn.leaky_relu(x, 0.2)


def mlp(key, in_size: int, out_size: int, width: int = 64, depth: int = 2) -> eqx.nn.MLP:
    """An MLP with leaky-ReLU hidden activations and a linear output.

    ``depth`` counts hidden layers. Weights use Equinox's default (LeCun-uniform) init.
    """
    return eqx.nn.MLP(in_size, out_size, width, depth, activation=_leaky_relu, key=key)


def batched(module):
    """Apply an Equinox module (written for one example) along the leading axis."""
    return jax.vmap(module)


def one_hot(u, n_classes: int):
    """One-hot encode integer labels: ``(N,)`` -> ``(N, n_classes)`` float32."""
    return jax.nn.one_hot(u, n_classes, dtype=jnp.float32)
