"""Full-data quantities for guides that only run on minibatches of a fixed size.

``AutoNormal`` and ``AutoSemiDAIS`` re-create the ``obs`` plate with the subsample size they
were first traced with, so their posterior over all observations is obtained batch by batch
with the subsample indices substituted (NumPyro's documented way:
``handlers.substitute(data={"obs": idx})``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro import handlers

__all__ = ["fixed_batches", "minibatch_map", "posterior_mean_fn"]


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


def posterior_mean_fn(spec, x, u, *, num_samples: int = 32, batch_size: int | None = None):
    """A pure function ``(params, key) -> (N, n_latent)``: the guide's posterior mean of ``z``.

    It can be ``jit``-ed and ``vmap``-ed over the parameters of several seeds. With
    ``batch_size`` None the guide runs on all observations and its ``z`` site's ``mean`` is
    returned (closed form for the Gaussian guides). Otherwise (guides bound to a fixed
    subsample size) it runs on :func:`fixed_batches` of ``batch_size``; where the guide draws
    ``z`` through an annealing chain (a ``Delta`` site) the mean is a Monte Carlo average of
    ``num_samples`` draws per observation.
    """
    x, u = jnp.asarray(x), None if u is None else jnp.asarray(u)
    n_obs = x.shape[0]

    if batch_size is None:
        def mean(params, key):
            guide = handlers.substitute(handlers.seed(spec.guide, key), params)
            return handlers.trace(guide).get_trace(x, u, subsample_size=None)["z"]["fn"].mean

        return mean

    idx_all = fixed_batches(n_obs, batch_size).reshape(-1)

    def mean(params, key):
        def draws(key, idx):
            def site(k):
                guide = handlers.substitute(handlers.seed(spec.guide, k), params)
                with handlers.substitute(data={"obs": idx}):
                    return handlers.trace(guide).get_trace(
                        x, u, subsample_size=idx.shape[0])["z"]

            first = site(key)
            if not isinstance(first["fn"], dist.Delta):
                return first["fn"].mean  # AutoNormal: closed form
            keys = jax.random.split(key, num_samples)
            return jax.vmap(lambda k: site(k)["value"])(keys).mean(0)

        z = minibatch_map(draws, key, n_obs, batch_size)
        z = z.reshape(idx_all.shape[0], -1)
        # Wrapped-around duplicates overwrite with an equally valid estimate.
        return jnp.zeros((n_obs, z.shape[1]), z.dtype).at[idx_all].set(z)

    return mean
