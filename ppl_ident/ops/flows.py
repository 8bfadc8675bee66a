"""Invertible networks for exact-likelihood models (``d == n``, noise-free mixing).

A :class:`CouplingFlow` maps an observation to its latent, ``z = h(x)``, and returns
``log |det dh/dx|`` with it, so a model can score ``log p(x) = log p_z(h(x)) + log |det J_h(x)|``
exactly, with no encoder and no decoder noise. It alternates learned invertible linear maps
(LU-parametrised, as in Glow) with affine coupling layers (RealNVP): half of the coordinates
are scaled and shifted by an MLP of the other half, with the log-scales bounded by ``2 tanh``.
The coupling MLPs' last layers start at zero, so a fresh flow is the identity.

References
----------
Dinh, Sohl-Dickstein & Bengio (2017), "Density estimation using Real NVP", ICLR.
Kingma & Dhariwal (2018), "Glow: generative flow with invertible 1x1 convolutions", NeurIPS.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints

from ppl_ident.ops.nn import zero_last_layer

__all__ = ["CouplingFlow", "coupling_flow", "apply_flow", "invert_flow", "FlowDensity"]


class _LU(eqx.Module):
    """``y = L U x + b`` with unit-lower ``L`` and upper ``U`` (log-diagonal parameters)."""

    lower: jax.Array
    upper: jax.Array
    log_diag: jax.Array
    bias: jax.Array

    def __init__(self, n: int):
        self.lower = jnp.zeros((n, n))
        self.upper = jnp.zeros((n, n))
        self.log_diag = jnp.zeros(n)
        self.bias = jnp.zeros(n)

    def _factors(self):
        n = self.log_diag.shape[0]
        low = jnp.tril(self.lower, -1) + jnp.eye(n)
        up = jnp.triu(self.upper, 1) + jnp.diag(jnp.exp(self.log_diag))
        return low, up

    def __call__(self, x):
        low, up = self._factors()
        return low @ (up @ x) + self.bias, self.log_diag.sum()

    def inverse(self, y):
        low, up = self._factors()
        v = jax.scipy.linalg.solve_triangular(low, y - self.bias, lower=True, unit_diagonal=True)
        return jax.scipy.linalg.solve_triangular(up, v, lower=False)


class _Coupling(eqx.Module):
    """Affine coupling: ``b <- b * exp(s(a)) + t(a)`` for the split ``(a, b)`` of ``x``."""

    net: eqx.nn.MLP
    split: int = eqx.field(static=True)
    flip: bool = eqx.field(static=True)

    def __init__(self, key, n: int, width: int, depth: int, flip: bool):
        self.split = n // 2 if not flip else n - n // 2
        n_b = n - self.split
        self.net = zero_last_layer(
            eqx.nn.MLP(self.split, 2 * n_b, width, depth, activation=jax.nn.gelu, key=key))
        self.flip = flip

    def _parts(self, x):
        return (x[-self.split:], x[:-self.split]) if self.flip else (x[:self.split],
                                                                       x[self.split:])

    def _join(self, a, b):
        return jnp.concatenate([b, a]) if self.flip else jnp.concatenate([a, b])

    def _shift_scale(self, a):
        st = self.net(a)
        k = st.shape[0] // 2
        return 2.0 * jnp.tanh(st[:k] / 2.0), st[k:]

    def __call__(self, x):
        a, b = self._parts(x)
        s, t = self._shift_scale(a)
        return self._join(a, b * jnp.exp(s) + t), s.sum()

    def inverse(self, y):
        a, b = self._parts(y)
        s, t = self._shift_scale(a)
        return self._join(a, (b - t) * jnp.exp(-s))


class CouplingFlow(eqx.Module):
    """An invertible map ``(n,) -> (n,)`` with its log-determinant (see the module docstring).

    ``flow(x)`` returns ``(z, log |det dz/dx|)``; ``flow.inverse(z)`` returns ``x``.
    """

    layers: list

    def __init__(self, key, n: int, n_layers: int = 8, width: int = 64, depth: int = 2):
        if n < 2:
            raise ValueError("a coupling flow needs n >= 2 coordinates")
        keys = jax.random.split(key, n_layers)
        layers = [_LU(n)]
        for i in range(n_layers):
            layers += [_Coupling(keys[i], n, width, depth, flip=i % 2 == 1), _LU(n)]
        self.layers = layers

    def __call__(self, x):
        log_det = jnp.zeros(())
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z):
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z


def coupling_flow(key, n: int, n_layers: int = 8, width: int = 64, depth: int = 2):
    """A :class:`CouplingFlow` on ``n`` coordinates (identity at initialisation)."""
    return CouplingFlow(key, n, n_layers, width, depth)


def apply_flow(fl, x):
    """``(z, log |det dz/dx|)`` of a flow applied to ``x`` of shape ``(..., n)`` (any number of
    leading axes: observations, draws)."""
    lead = x.shape[:-1]
    z, log_det = jax.vmap(fl)(x.reshape(-1, x.shape[-1]))
    return z.reshape(x.shape), log_det.reshape(lead)


def invert_flow(fl, z):
    """``x = h^{-1}(z)`` of a flow for ``z`` of shape ``(..., n)``."""
    return jax.vmap(fl.inverse)(z.reshape(-1, z.shape[-1])).reshape(z.shape)


class FlowDensity(dist.Distribution):
    """The density of ``w = h^{-1}(z)`` for ``z`` from a factorial ``base`` and an invertible
    flow ``h``: ``log p(w) = log p_base(h(w)) + log |det J_h(w)|``.

    The noisy flow model's prior over the noise-free observation (in whitened coordinates):
    scoring a value runs ``h`` forward once (no inverse), drawing runs its inverse. ``base``
    has event shape ``(n,)``.
    """

    support = constraints.real_vector

    def __init__(self, base, flow, *, validate_args=None):
        self.base, self.flow = base, flow
        super().__init__(batch_shape=base.batch_shape, event_shape=base.event_shape,
                         validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        return invert_flow(self.flow, self.base.sample(key, sample_shape))

    def log_prob(self, value):
        z, log_det = apply_flow(self.flow, value)
        return self.base.log_prob(z) + log_det
