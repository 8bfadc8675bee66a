"""Full-data quantities for guides that only run on minibatches of a fixed size.

``AutoSemiDAIS`` fixes the size of the ``obs`` plate's subsample when it is first traced, so
its posterior over all observations is obtained batch by batch with the subsample indices
substituted (NumPyro's documented way: ``handlers.substitute(data={"obs": idx})``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro import handlers

__all__ = ["fixed_batches", "minibatch_map", "posterior_mean"]


def fixed_batches(n_obs: int, batch_size: int):
    """Indices ``(n_batches, batch_size)`` covering ``0..n_obs-1`` in order.

    The last batch wraps around to the first observations, so a few observations appear twice
    (at most ``batch_size - 1``); estimates averaged over batches weight them slightly more.
    """
    batch_size = min(batch_size, n_obs)
    n_batches = -(-n_obs // batch_size)
    return jnp.arange(n_batches * batch_size).reshape(n_batches, batch_size) % n_obs


def minibatch_map(fn, key, n_obs: int, batch_size: int):
    """``fn(key, idx)`` over :func:`fixed_batches`, sequentially (``lax.map``); stacked."""
    idx = fixed_batches(n_obs, batch_size)
    keys = jax.random.split(key, idx.shape[0])
    return jax.lax.map(lambda a: fn(*a), (keys, idx))


def posterior_mean(spec, params, x, u, key, *, num_samples: int = 32,
                   batch_size: int | None = None):
    """Posterior mean of ``z`` under the fitted guide, ``(N, n_latent)``.

    With ``batch_size`` None the guide runs on all observations and its ``z`` site's ``mean``
    is returned (closed form for the Gaussian guides). Otherwise (guides bound to a fixed
    subsample size) it runs on :func:`fixed_batches` of ``batch_size``; where the guide draws
    ``z`` through an annealing chain (a ``Delta`` site) the mean is a Monte Carlo average of
    ``num_samples`` draws per observation.
    """
    x, u = jnp.asarray(x), None if u is None else jnp.asarray(u)
    n_obs = x.shape[0]

    if batch_size is None:
        def moments(params):
            guide = handlers.substitute(handlers.seed(spec.guide, 0), params)
            return handlers.trace(guide).get_trace(x, u, subsample_size=None)["z"]["fn"].mean

        return np.asarray(jax.jit(moments)(params))

    def draws(key, idx):
        def site(k):
            guide = handlers.substitute(handlers.seed(spec.guide, k), params)
            with handlers.substitute(data={"obs": idx}):
                return handlers.trace(guide).get_trace(x, u, subsample_size=idx.shape[0])["z"]

        if not isinstance(site(key)["fn"], dist.Delta):
            return site(key)["fn"].mean  # AutoNormal: closed form
        return jax.vmap(lambda k: site(k)["value"])(jax.random.split(key, num_samples)).mean(0)

    out = jax.jit(lambda key: minibatch_map(draws, key, n_obs, batch_size))(key)
    idx = np.asarray(fixed_batches(n_obs, batch_size)).reshape(-1)
    z = np.asarray(out).reshape(idx.size, -1)
    mean = np.empty((n_obs, z.shape[1]), z.dtype)
    mean[idx] = z  # wrapped-around duplicates overwrite with an equally valid estimate
    return mean
