"""Reference posterior of the local latents: NUTS on ``z`` with the fitted model held fixed.

The amortised Gaussian guide is a fast but approximate posterior. This engine keeps the fitted
decoder, prior and noise scale fixed (substituted into the model) and samples
``p(z_i | x_i, u_i, theta_hat)`` for a handful of observations with NumPyro's NUTS, with
several chains so that split-R-hat and effective sample size are meaningful. Comparing its
intervals with the guide's on the same observations measures how far the amortised
approximation is from the posterior of the fitted model (not from the true latents: that is
what calibration against ``z`` measures).

The observations' latents are a priori and a posteriori independent given ``theta_hat``; they
are sampled jointly (one ``N * n``-dimensional target) with a diagonal mass matrix, which
adapts one scale per latent coordinate and so handles observations of very different
posterior width.

References
----------
Hoffman & Gelman (2014), "The No-U-Turn Sampler", JMLR 15.
Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021), "Rank-normalization, folding, and
localization: an improved R-hat", Bayesian Analysis.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS, Predictive

from ppl_ident.errors import InputError
from ppl_ident.inference.latents import LatentDraws, fitted_model

__all__ = ["nuts_latents"]

# NumPyro extra field -> ArviZ sample_stats name
_STATS = {"diverging": "diverging", "num_steps": "n_steps", "accept_prob": "acceptance_rate",
          "energy": "energy", "potential_energy": "lp"}


def nuts_latents(spec, params, x, u, *, key, num_warmup: int = 300, num_samples: int = 300,
                 num_chains: int = 4, target_accept_prob: float = 0.8,
                 max_tree_depth: int = 10, init_from_guide: bool = True,
                 chain_method: str = "vectorized", **_unused) -> LatentDraws:
    """Sample ``p(z | x, u, theta_hat)`` with NUTS, the fitted parameters held fixed.

    Parameters
    ----------
    spec : ModelSpec
    params : dict
        Fitted (constrained) parameters; substituted into the model, never re-initialised.
    x : array ``(N, d)``
        The observations whose latents are sampled (keep ``N`` small: tens).
    u : array ``(N,)`` or ``(N, k)``
    key : PRNG key
    num_warmup, num_samples, num_chains : int
    target_accept_prob : float
    max_tree_depth : int
    init_from_guide : bool
        Start each chain at its own draw from the guide (dispersed, and close to the
        posterior mass, which shortens warm-up); otherwise NumPyro's default ``init_to_uniform``.
    chain_method : {"vectorized", "sequential", "parallel"}
        ``"vectorized"`` runs the chains as one batched program (best on a CPU).

    Returns
    -------
    LatentDraws
        ``z`` ``(num_chains, num_samples, N, n)`` and sample stats ``(num_chains, num_samples)``
        (``diverging``, ``n_steps``, ``acceptance_rate``, ``energy``, ``lp``).

    Examples
    --------
    >>> draws = nuts_latents(fitted.spec, fitted.params, x[:10], u[:10],   # doctest: +SKIP
    ...                      key=jax.random.PRNGKey(0), num_chains=4)
    >>> draws.z.shape                                                         # doctest: +SKIP
    (4, 300, 10, n)
    """
    for name, value in [("num_warmup", num_warmup), ("num_samples", num_samples),
                        ("num_chains", num_chains)]:
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    if num_chains < 2:
        raise InputError("Use num_chains >= 2 so that R-hat can detect chains that disagree.")
    t0 = time.perf_counter()
    x = jnp.asarray(x)
    u = None if u is None else jnp.asarray(u)
    k_init, k_run = jax.random.split(key)
    init_params = None
    if init_from_guide:
        z0 = Predictive(spec.guide, params=params, num_samples=num_chains,
                        return_sites=["z"])(k_init, x, u)["z"]
        init_params = {"z": z0}
    kernel = NUTS(fitted_model(spec, params), target_accept_prob=target_accept_prob,
                  max_tree_depth=max_tree_depth)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method=chain_method, progress_bar=False)
    mcmc.run(k_run, x, u, init_params=init_params, extra_fields=tuple(_STATS))
    z = np.asarray(mcmc.get_samples(group_by_chain=True)["z"])
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = {_STATS[k]: np.asarray(v) for k, v in extra.items() if k in _STATS}
    if "lp" in stats:
        stats["lp"] = -stats["lp"]
    config = dict(num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                  target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
                  init_from_guide=init_from_guide, chain_method=chain_method)
    return LatentDraws(z, stats, "nuts", time.perf_counter() - t0, config)
