"""Distributions shared by the families' guides."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

__all__ = ["ReparamMultivariateNormal"]


class ReparamMultivariateNormal(dist.MultivariateNormal):
    """A multivariate normal whose log-density at its own draws is computed from their noise.

    A draw is ``z = loc + L @ eps`` with ``eps ~ Normal(0, I)``, so
    ``log q(z) = log N(eps; 0, I) - sum(log diag L)`` exactly. The generic ``log_prob(z)``
    recovers ``eps`` by a triangular solve, which in float32 loses all precision when ``L`` is
    ill-conditioned: for ``L`` with diagonal 1e-3 and off-diagonal 1e3 it returns about -1e9
    instead of +17. An amortised encoder trained on the ELBO finds and exploits that error
    (``-log q`` becomes huge, the "ELBO" reaches 1e22). NumPyro passes a site's sampling
    intermediates back to ``log_prob``, so the ELBO here uses the exact form; the value and its
    gradient are those of the true density (the identity holds for every ``eps`` and
    parameter). Any other value falls back to the generic ``log_prob``.
    """

    def sample_with_intermediates(self, key, sample_shape=()):
        eps = jax.random.normal(key, sample_shape + self.batch_shape + self.event_shape)
        z = self.loc + jnp.squeeze(jnp.matmul(self.scale_tril, eps[..., None]), -1)
        return z, [eps]

    def log_prob(self, value, intermediates=None):
        if not intermediates:
            return super().log_prob(value)
        eps = intermediates[0]
        half_log_det = jnp.log(jnp.diagonal(self.scale_tril, axis1=-2, axis2=-1)).sum(-1)
        n = self.event_shape[0]
        return -0.5 * jnp.sum(eps ** 2, -1) - half_log_det - 0.5 * n * jnp.log(2 * jnp.pi)
