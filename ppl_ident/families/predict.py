"""What a fitted model says about its latents, for any family: the guide's moments and draws
of ``z``, the learned mixing, and the model's predictive and likelihood at given draws.

Every function keeps the fitted global parameters (decoder, prior tables or network, noise
scale) fixed by substituting them into the model or guide: running the model without that
substitution would silently use freshly initialised networks.
"""

from __future__ import annotations

import time
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.infer import Predictive
from numpyro.infer.util import log_likelihood

from ppl_ident.ops.observation import unwhiten

__all__ = ["encode", "encode_chunked", "model_predictive_x", "decoder_fn", "data_mean_fn", "encoder_mean_fn",
           "static_module", "fitted_module", "LatentDraws", "fitted_model", "guide_latents",
           "posterior_predictive_x", "log_likelihood_x", "GUIDE_CHAINS", "POINT_ESTIMATE",
           "split_draws", "model_latent_sites", "point_latents", "MOMENT_DRAWS",
           "encode_summary_chunked", "Z95"]

#: The ``InferenceData`` group of what a fit estimated as single values (fitted global
#: parameters; the latents of an exact-likelihood flow), without chain and draw dims.
POINT_ESTIMATE = "point_estimate"

#: The guide's independent draws are stored as this many chains (``posterior.nc``), so that
#: ``az.summary`` and R-hat have chains to compare (for i.i.d. draws R-hat is close to 1).
GUIDE_CHAINS = 4


def point_latents(spec) -> bool:
    """Whether the fitted model's ``z`` is a function of ``x`` (the noiseless exact flow,
    ``z = h(x)``): a point estimate with no posterior, no interval and no importance
    proposal. The noisy flow and the variational models have a posterior over ``z``."""
    return spec.latents == "point"


def split_draws(num_draws: int, max_chains: int = GUIDE_CHAINS) -> tuple[int, int]:
    """``(chains, draws per chain)`` holding at least ``num_draws`` i.i.d. guide draws.

    Up to ``max_chains`` chains of at least 4 draws each (fewer draws: one chain); the draws
    per chain are rounded up, so 100 draws are 4 x 25 and 30 are 4 x 8.

    Examples
    --------
    >>> split_draws(100), split_draws(8), split_draws(3)
    ((4, 25), (2, 4), (1, 3))
    """
    chains = max(1, min(max_chains, num_draws // 4))
    return chains, -(-num_draws // chains)


def encode(spec, params, x, u):
    """Mean and standard deviation of ``q(z | x, u)`` for every observation.

    Parameters
    ----------
    spec : ModelSpec
    params : dict
        Fitted (constrained) parameters.
    x, u : arrays ``(N, d)``, ``(N,)`` or ``(N, k)``

    Returns
    -------
    mean, std : arrays ``(N, n_latent)``
    """
    return _moments_fn(spec)(params, jnp.asarray(x), None if u is None else jnp.asarray(u))


#: compiled functions per model spec (by identity; the spec is kept alive with them) and
#: static options, so that the evaluation's several encodings and draws of one fit compile once
#: per shape, not once per call (and not once per operation, as they would run eagerly)
_COMPILED: dict[tuple, tuple] = {}


def _compiled(spec, fn, *static):
    """``jax.jit(partial(fn, spec, *static))``, built once per ``spec``, ``fn`` and ``static``."""
    key = (id(spec), fn, static)
    hit = _COMPILED.get(key)
    if hit is None or hit[0] is not spec:
        if len(_COMPILED) >= 16:
            _COMPILED.pop(next(iter(_COMPILED)))
        hit = _COMPILED[key] = (spec, jax.jit(partial(fn, spec, *static)))
    return hit[1]


def _moments_fn(spec):
    return _compiled(spec, _moments)


#: Draws per observation behind the moments of a posterior with no closed-form mean and sd
#: (the noisy flow's Gaussian pushed through the flow): the Monte Carlo error of a mean is
#: its posterior sd / 8.
MOMENT_DRAWS = 64


def _moments(spec, params, x, u):
    return _summary(spec, params, x, u)[:2]


#: The standard normal's 95 % quantile: a Gaussian marginal's 90 % interval is mean -/+ it x sd.
Z95 = 1.6448536269514722


def _summary(spec, params, x, u):
    """Mean, sd and the 5 % / 95 % quantiles of every latent's posterior marginal: closed form
    for a Gaussian guide (a point mass has sd 0), empirical quantiles of
    :data:`MOMENT_DRAWS` draws for a posterior that is a transform of the guide's draws."""
    guide = handlers.substitute(handlers.seed(spec.guide, 0), params)
    site = handlers.trace(guide).get_trace(x, u, subsample_size=None)["z"]
    if site["type"] == "sample":
        mean, sd = site["fn"].mean, jnp.sqrt(site["fn"].variance)
        return mean, sd, mean - Z95 * sd, mean + Z95 * sd
    z = _guide_draws(spec, MOMENT_DRAWS, params, jax.random.PRNGKey(0), x, u)
    q05, q95 = jnp.quantile(z, jnp.asarray([0.05, 0.95]), axis=0)
    return z.mean(0), z.std(0), q05, q95


def encode_summary_chunked(spec, params, x, u, chunk_size: int):
    """Like :func:`encode_chunked`, with the 90 % interval: ``(mean, sd, q05, q95)`` numpy
    arrays ``x.shape[:-1] + (n_latent,)`` (see :func:`_summary`)."""
    return _chunked(_compiled(spec, _summary), params, x, u, chunk_size, 4)


def encode_chunked(spec, params, x, u, chunk_size: int):
    """:func:`encode` over the leading axis of ``x`` in chunks of ``chunk_size``, so that the
    memory of the guide's activations stays bounded however many observations there are.

    Every chunk has the same shape (the last one is padded by repeating its final entry, the
    padding dropped from the result), so the guide is compiled once.

    Parameters
    ----------
    spec : ModelSpec
    params : dict
    x : array ``(N, ...)``
        Observations (``(N, d)``) or sequences (``(B, T, d)``: chunks of whole sequences).
    u : array ``(N, ...)`` or None
    chunk_size : int
        Entries of the leading axis per chunk.

    Returns
    -------
    mean, std : numpy arrays ``x.shape[:-1] + (n_latent,)``
    """
    return _chunked(_moments_fn(spec), params, x, u, chunk_size, 2)


def _chunked(fn, params, x, u, chunk_size: int, n_out: int):
    """``fn(params, x_chunk, u_chunk)`` (``n_out`` arrays) over equal chunks of the leading
    axis, the last one padded by repeating its final entry; the padding is dropped."""
    x = np.asarray(x, np.float32)
    u = None if u is None else np.asarray(u)
    total = x.shape[0]
    size = int(min(chunk_size, total))
    parts = [[] for _ in range(n_out)]
    for start in range(0, total, size):
        idx = np.minimum(np.arange(start, start + size), total - 1)
        out = fn(params, jnp.asarray(x[idx]), None if u is None else jnp.asarray(u[idx]))
        keep = min(size, total - start)
        for part, value in zip(parts, out):
            part.append(np.asarray(value)[:keep])
    return tuple(np.concatenate(part) for part in parts)


def decoder_fn(spec, params):
    """The fitted decoder network as a pure function of one latent vector: ``(n,) -> (d,)``
    (for an exact-likelihood ``flow`` model, the flow's inverse ``h^{-1}``).

    Its output is in the model's decoding coordinates: whitened ``chol^{-1} (x - mu)`` when the
    model decodes whitened data (the default). For the mean of ``x`` in data coordinates use
    :func:`data_mean_fn`.
    """
    if spec.config.get("flow"):
        # exact-likelihood model: the learned mixing is the flow's inverse
        return fitted_module(spec, params, "flow").inverse
    return fitted_module(spec, params, "decoder")


def data_mean_fn(spec, params):
    """``E[x | z]`` of the fitted model in data coordinates, for one latent vector.

    The decoder network followed by the model's un-whitening ``x = mu + chol @ w`` (identity
    when the model decodes in data coordinates). This is the learned mixing ``g_hat`` that a
    comparison with the true mixing needs.
    """
    dec = decoder_fn(spec, params)
    white = spec.config.get("whiten")
    if white is None:
        return dec
    white = tuple(jnp.asarray(a, jnp.float32) for a in white)
    return lambda z: unwhiten(dec(z), white)


def encoder_mean_fn(spec, params):
    """The fitted encoder's posterior mean as a function of one ``(x, u)`` pair.

    ``x``: ``(d,)``; ``u``: a scalar label or ``(k,)`` vector. Returns ``(n,)``.
    """

    def mean(x, u):
        m, _ = encode(spec, params, x[None], None if u is None else jnp.asarray(u)[None])
        return m[0]

    return mean


def static_module(spec, name: str):
    """The non-array part of the spec's network ``name`` (:attr:`ModelSpec.modules`)."""
    import equinox as eqx

    if not spec.modules or name not in spec.modules:
        raise KeyError(f"the {spec.name!r} model has no {name!r} network; it has "
                       f"{', '.join(spec.modules or {}) or 'none'}")
    return eqx.partition(spec.modules[name], eqx.is_inexact_array)[1]


def fitted_module(spec, params, name: str):
    """The spec's network ``name`` with its fitted arrays ``params[f"{name}$params"]``."""
    import equinox as eqx

    return eqx.combine(params[f"{name}$params"], static_module(spec, name))


class LatentDraws(NamedTuple):
    """Posterior draws of ``z`` for a set of observations.

    Attributes
    ----------
    z : array ``(chain, draw, obs, latent)``
    sample_stats : dict of arrays ``(chain, draw)``
        Sampler diagnostics in ArviZ names (``diverging``, ``n_steps``, ...); empty for the
        guide, whose draws are independent.
    engine : str
    run_time : float
        Seconds spent sampling (compilation included).
    config : dict
        The sampler's settings (JSON-able).
    sites : dict, optional
        The draws of the model's own latent sites when they are not ``z`` itself (the noisy
        flow's noise-free observation ``w``, of which ``z = h(w)``), shaped like ``z``; the
        posterior predictive and the likelihood are computed from them.
    """

    z: np.ndarray
    sample_stats: dict
    engine: str
    run_time: float
    config: dict
    sites: dict | None = None


def fitted_model(spec, params):
    """The model with every global parameter fixed at its fitted value."""
    return handlers.substitute(spec.model, data=params)


def guide_latents(spec, params, x, u, *, key, num_draws: int = 100, num_chains: int = 1,
                  **_unused) -> LatentDraws:
    """Independent draws of ``z`` from the fitted amortised guide ``q(z | x, u)``.

    Parameters
    ----------
    spec : ModelSpec
    params : dict
        Fitted (constrained) parameters.
    x : array ``(N, d)``
    u : array ``(N,)`` or ``(N, k)``
    key : PRNG key
    num_draws, num_chains : int
        The guide's draws are i.i.d.; ``num_chains`` only reshapes them.

    Returns
    -------
    LatentDraws
        ``z`` of shape ``(num_chains, num_draws, N, n)``.
    """
    t0 = time.perf_counter()
    names = model_latent_sites(spec)
    draws = _compiled(spec, _guide_site_draws, num_chains * num_draws,
                      tuple(dict.fromkeys(("z",) + names)))(
        params, key, jnp.asarray(x), None if u is None else jnp.asarray(u))
    draws = {k: np.asarray(v).reshape(num_chains, num_draws, *v.shape[1:])
             for k, v in draws.items()}
    sites = None if names == ("z",) else {k: draws[k] for k in names}
    return LatentDraws(draws["z"], {}, "guide", time.perf_counter() - t0,
                       dict(num_draws=num_draws, num_chains=num_chains), sites)


def model_latent_sites(spec) -> tuple:
    """The model's local latent sample sites: ``("w",)`` for the noisy flow (the noise-free
    observation, of which ``z = h(w)``), else ``("z",)``."""
    return ("w",) if spec.latents == "transformed" else ("z",)


def posterior_predictive_x(spec, params, z, u, *, key) -> np.ndarray:
    """Replicated data ``x_rep ~ p(x | z, theta_hat)`` for every draw of ``z``.

    ``z``: ``(chain, draw, N, n)``, or a dict of the model's latent sites' draws (see
    :attr:`LatentDraws.sites`); returns ``(chain, draw, N, d)``.
    """
    sites = _site_draws(z)
    return np.asarray(_compiled(spec, _posterior_x_draws)(
        params, key, sites, None if u is None else jnp.asarray(u)))


def _site_draws(z) -> dict:
    return ({k: jnp.asarray(v) for k, v in z.items()} if isinstance(z, dict)
            else {"z": jnp.asarray(z)})


def model_predictive_x(spec, params, u, n_obs: int, *, key, num_chains: int = 4,
                       num_draws: int = 25) -> np.ndarray:
    """Replicated data ``x_rep ~ p(x | u, theta_hat)`` of the fitted model: a new ``z`` from
    the fitted prior ``p(z | u_i)`` for every row's ``u_i``, decoded. For an exact-likelihood
    flow (``z = h(x)`` a point mass) this is its predictive distribution of new data, the
    posterior predictive check that applies to it (``p(x | z)`` would give back ``x``). With
    ``d > n`` the draws lie on the principal-component range (the residual's isotropic noise
    is not drawn).

    ``u``: ``(N,)`` or ``(N, k)`` model inputs of the ``N = n_obs`` rows (None for the VAE);
    returns ``(chain, draw, N, d)``.
    """
    x = np.asarray(_compiled(spec, _model_x_draws, num_chains * num_draws, int(n_obs))(
        params, key, None if u is None else jnp.asarray(u)))
    return x.reshape(num_chains, num_draws, *x.shape[1:])


def log_likelihood_x(spec, params, z, x, u) -> np.ndarray:
    """Pointwise ``log p(x_i | z_i, theta_hat)`` with the fitted parameters substituted.

    ``z``: ``(chain, draw, N, n)``, or a dict of the model's latent sites' draws (the noisy
    flow: ``log p(x_i | w_i, sigma_hat)``); returns ``(chain, draw, N)``.
    """
    return np.asarray(_compiled(spec, _pointwise_log_likelihood)(
        params, _site_draws(z), jnp.asarray(x), None if u is None else jnp.asarray(u)))


# the bodies of the compiled draws above (``spec`` and static options first, see _compiled)

def _guide_draws(spec, num_samples, params, key, x, u):
    return _guide_site_draws(spec, num_samples, ("z",), params, key, x, u)["z"]


def _guide_site_draws(spec, num_samples, names, params, key, x, u):
    return Predictive(spec.guide, params=params, num_samples=num_samples,
                      return_sites=list(names))(key, x, u)


def _posterior_x_draws(spec, params, key, sites, u):
    n_obs = next(iter(sites.values())).shape[2]
    return Predictive(spec.model, posterior_samples=sites, params=params,
                      return_sites=["x"], batch_ndims=2)(key, None, u, n_obs=n_obs)["x"]


def _model_x_draws(spec, num_samples, n_obs, params, key, u):
    return Predictive(spec.model, params=params, num_samples=num_samples,
                      return_sites=["x"])(key, None, u, n_obs=n_obs)["x"]


def _pointwise_log_likelihood(spec, params, sites, x, u):
    return log_likelihood(fitted_model(spec, params), sites, x, u, batch_ndims=2)["x"]
