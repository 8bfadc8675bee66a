"""Neural-network building blocks (Equinox).

Equinox is used because its modules *are* pytrees: parameters save, restore, ``vmap`` and
optimise like any other array tree, with no separate ``init``/``apply`` pair, and NumPyro
registers them with :func:`numpyro.contrib.module.eqx_module`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["mlp", "batched", "one_hot", "ResidualMLP", "residual_mlp", "StackedMLP",
           "zero_last_layer"]


def _leaky_relu(x):
    return jax.nn.leaky_relu(x, 0.2)


def mlp(key, in_size: int, out_size: int, width: int = 64, depth: int = 2) -> eqx.nn.MLP:
    """An MLP with leaky-ReLU hidden activations and a linear output.

    ``depth`` counts hidden layers. Weights use Equinox's default (LeCun-uniform) init.
    """
    return eqx.nn.MLP(in_size, out_size, width, depth, activation=_leaky_relu, key=key)


def zero_last_layer(net: eqx.nn.MLP) -> eqx.nn.MLP:
    """``net`` with its output layer's weight and bias set to zero (a network whose output
    starts at 0, so what it corrects starts as it is)."""
    last = net.layers[-1]
    return eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias), net,
                       (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)))


class ResidualMLP(eqx.Module):
    """``f(v) = A v + b + MLP(v)``: a linear map plus an MLP branch whose last layer starts at
    zero, so a fit starts from a linear model and grows its nonlinearity.

    The linear part is where the identifying signal of the prior acts first (a linear iVAE is
    well posed); the branch then bends the map without having to undo a random warp.
    """

    linear: eqx.nn.Linear
    branch: eqx.nn.MLP

    def __init__(self, key, in_size: int, out_size: int, width: int = 64, depth: int = 2):
        k_lin, k_mlp = jax.random.split(key)
        self.linear = eqx.nn.Linear(in_size, out_size, key=k_lin)
        self.branch = zero_last_layer(mlp(k_mlp, in_size, out_size, width, depth))

    def __call__(self, v):
        return self.linear(v) + self.branch(v)


class StackedMLP(eqx.Module):
    """``K`` independent MLPs of the same shape, one per group (e.g. per hidden regime), run
    side by side on one input; the outputs are concatenated block by block.

    Each member maps ``(in_size,) -> (out_size,)`` where ``out_size`` is split at ``splits``
    into blocks; the result lays out block 0 of every member, then block 1 of every member,
    and so on: ``(K * out_size,)``. With ``splits = (n, 2 n)`` a member's ``[means (n), log
    factors (n), rest]`` become ``[means (K n), log factors (K n), rest (K ...)]``, the layout
    of one network with ``K`` heads.
    """

    members: eqx.nn.MLP
    splits: tuple = eqx.field(static=True)

    def __init__(self, key, n_members: int, in_size: int, out_size: int, width: int = 64,
                 depth: int = 2, splits: tuple = ()):
        keys = jax.random.split(key, n_members)
        self.members = eqx.filter_vmap(lambda k: mlp(k, in_size, out_size, width, depth))(keys)
        self.splits = tuple(int(s) for s in splits)

    def __call__(self, v):
        out = eqx.filter_vmap(lambda m: m(v), in_axes=eqx.if_array(0))(self.members)  # (K, o)
        blocks = jnp.split(out, self.splits, axis=-1) if self.splits else [out]
        return jnp.concatenate([b.reshape(-1) for b in blocks])


def residual_mlp(key, in_size: int, out_size: int, width: int = 64, depth: int = 2):
    """A :class:`ResidualMLP` (linear map plus zero-initialised MLP branch)."""
    return ResidualMLP(key, in_size, out_size, width, depth)


def batched(module):
    """Apply an Equinox module (written for one example) along the leading axis."""
    return jax.vmap(module)


def one_hot(u, n_classes: int):
    """One-hot encode integer labels: ``(N,)`` -> ``(N, n_classes)`` float32."""
    return jax.nn.one_hot(u, n_classes, dtype=jnp.float32)
