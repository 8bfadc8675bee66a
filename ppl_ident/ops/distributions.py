"""Distributions shared by the families' guides."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.special import gammaln, logsumexp
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes

__all__ = ["ReparamMultivariateNormal", "GeneralizedNormal", "StandardizedMixture",
           "standardize_mixture"]


class GeneralizedNormal(dist.Distribution):
    """The generalised normal (exponential power) distribution with shape ``beta > 0``.

    ``log p(z) = log beta - log(2 scale) - lgamma(1 / beta) - |(z - loc) / scale|^beta``:
    ``beta = 2`` is a normal with standard deviation ``scale / sqrt 2``, ``beta = 1`` a Laplace
    with scale ``scale``; larger ``beta`` flattens the top and lightens the tails. Its standard
    deviation is ``scale * sqrt(Gamma(3 / beta) / Gamma(1 / beta))``. Draws use
    ``|z - loc| / scale = G^(1 / beta)`` with ``G ~ Gamma(1 / beta, 1)`` and a random sign.

    References
    ----------
    Nadarajah (2005), "A generalized normal distribution", Journal of Applied Statistics.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive,
                       "beta": constraints.positive}
    support = constraints.real
    reparametrized_params = ["loc", "scale"]

    def __init__(self, loc=0.0, scale=1.0, beta=2.0, *, validate_args=None):
        self.loc, self.scale, self.beta = promote_shapes(loc, scale, beta)
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(loc), jnp.shape(scale),
                                               jnp.shape(beta))
        self.loc, self.scale, self.beta = (jnp.broadcast_to(a, batch_shape)
                                           for a in (self.loc, self.scale, self.beta))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        k_mag, k_sign = jax.random.split(key)
        shape = sample_shape + self.batch_shape
        g = jax.random.gamma(k_mag, 1.0 / self.beta, shape)
        sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0)
        return self.loc + self.scale * sign * g ** (1.0 / self.beta)

    def log_prob(self, value):
        # floored so that the gradient in beta (y^beta log y) stays finite at y = 0
        y = jnp.maximum(jnp.abs(value - self.loc) / self.scale, 1e-30)
        return (jnp.log(self.beta) - jnp.log(2.0 * self.scale) - gammaln(1.0 / self.beta)
                - y ** self.beta)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return self.scale ** 2 * jnp.exp(gammaln(3.0 / self.beta) - gammaln(1.0 / self.beta))


def standardize_mixture(logits, means, sds):
    """A univariate Gaussian mixture rescaled to mean 0 and variance 1.

    ``logits``, ``means``, ``sds`` ``(..., K)`` give the raw components; returns the weights'
    log ``(..., K)`` and the components' means and sds after the affine map
    ``y -> (y - m) / s`` with ``m`` and ``s**2`` the raw mixture's mean and variance
    (``m = sum w mu``, ``s**2 = sum w (sigma**2 + mu**2) - m**2``).
    """
    log_w = jax.nn.log_softmax(logits, -1)
    w = jnp.exp(log_w)
    m = jnp.sum(w * means, -1, keepdims=True)
    s = jnp.sqrt(jnp.sum(w * (sds ** 2 + (means - m) ** 2), -1, keepdims=True))
    return log_w, (means - m) / s, sds / s


class StandardizedMixture(dist.Distribution):
    """A location-scale family whose base shape is a Gaussian mixture of mean 0, variance 1.

    ``z = loc + scale * y`` with ``y`` drawn from the mixture with log-weights ``log_w``,
    means ``mu`` and sds ``sigma`` (``(..., K)``, broadcast against ``loc``; see
    :func:`standardize_mixture`), so ``loc`` and ``scale`` are exactly the mean and the
    standard deviation of ``z``::

        log p(z) = logsumexp_k [log w_k + log N((z - loc) / scale; mu_k, sigma_k)] - log scale

    A scale mixture (equal means) has heavy tails, unequal means give skew and several modes,
    and one component is the Gaussian; the density is smooth in ``z`` (every derivative
    exists), so the sufficient-variability check applies to it.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    reparametrized_params = ["loc", "scale"]

    def __init__(self, loc, scale, log_w, mu, sigma, *, validate_args=None):
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(loc), jnp.shape(scale),
                                               jnp.shape(mu)[:-1])
        self.loc = jnp.broadcast_to(loc, batch_shape)
        self.scale = jnp.broadcast_to(scale, batch_shape)
        k = jnp.shape(mu)[-1]
        self.log_w, self.mu, self.sigma = (jnp.broadcast_to(a, batch_shape + (k,))
                                           for a in (log_w, mu, sigma))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        k_comp, k_eps = jax.random.split(key)
        shape = sample_shape + self.batch_shape
        comp = jax.random.categorical(k_comp, self.log_w, shape=shape)
        mu = jnp.take_along_axis(jnp.broadcast_to(self.mu, shape + self.mu.shape[-1:]),
                                 comp[..., None], -1)[..., 0]
        sigma = jnp.take_along_axis(jnp.broadcast_to(self.sigma, shape + self.sigma.shape[-1:]),
                                    comp[..., None], -1)[..., 0]
        y = mu + sigma * jax.random.normal(k_eps, shape)
        return self.loc + self.scale * y

    def log_prob(self, value):
        y = ((value - self.loc) / self.scale)[..., None]
        comp = (self.log_w - 0.5 * ((y - self.mu) / self.sigma) ** 2 - jnp.log(self.sigma)
                - 0.5 * jnp.log(2.0 * jnp.pi))
        return logsumexp(comp, -1) - jnp.log(self.scale)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return self.scale ** 2


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
