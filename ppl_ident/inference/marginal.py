"""Importance-sampled marginal likelihood ``log p(x | u)`` with the encoder as proposal.

For one observation, with ``K`` draws ``z_k ~ q(z | x, u)`` from the fitted guide,

    log p_hat(x | u) = logsumexp_k [log p(x | z_k) + log p(z_k | u) - log q(z_k | x, u)] - log K

is a consistent estimate of ``log p(x | u, theta_hat)`` (a lower bound in expectation, by
Jensen's inequality, tightening as ``K`` grows: the IWAE bound; ``K = 1`` is the ELBO). Its
standard error follows from the delta method on the mean of the weights ``w_k``:
``se = sd(w) / (sqrt(K) * mean(w))``. The effective sample size ``(sum w)^2 / sum w^2`` says
how well the proposal covers the posterior (a few per cent of ``K`` is a warning sign).

Evaluate it on held-out data to compare models: it is the predictive density of a *new*
observation ``x`` given its ``u``.

Why not ``az.loo`` on the ``log_likelihood`` group? The latents ``z_i`` are local: each
observation has its own. The pointwise ``log p(x_i | z_i)`` stored in an InferenceData is a
conditional likelihood given a latent that was itself inferred from ``x_i``; leaving ``x_i``
out leaves ``z_i`` with only its prior, so PSIS-LOO on those values estimates
``p(x_i | x_{-i})`` through ``p(x_i | z_i)`` with ``z_i`` drawn from a posterior that already
saw ``x_i``, and the importance ratios ``1 / p(x_i | z_i)`` are extremely heavy-tailed (Pareto
k far above 0.7). What predicts a new observation is the marginal ``p(x | u) = int p(x | z)
p(z | u) dz``, which is what this module estimates. (The global parameters are point estimates
here, so there is no posterior over them for LOO to integrate either.)

References
----------
Burda, Grosse & Salakhutdinov (2016), "Importance weighted autoencoders", ICLR.
Vehtari, Gelman & Gabry (2017), "Practical Bayesian model evaluation using leave-one-out
cross-validation and WAIC", Statistics and Computing (section on models with local latents).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers

from ppl_ident.errors import InputError
from ppl_ident.families.predict import fitted_model
from ppl_ident.inference.subsample import fixed_batches, minibatch_map

__all__ = ["MarginalLikelihood", "log_marginal_likelihood", "log_weights", "log_weights_fn"]


class MarginalLikelihood(NamedTuple):
    """Result of :func:`log_marginal_likelihood`.

    Attributes
    ----------
    log_px : array ``(N,)``
        Per-observation estimate of ``log p(x_i | u_i)``.
    se : array ``(N,)``
        Delta-method standard error of each estimate.
    ess : array ``(N,)``
        Effective sample size of the importance weights (out of ``num_samples``).
    total, total_se : float
        Sum over observations and its standard error (independent estimates).
    mean, mean_se : float
        Mean per observation and its standard error (Monte Carlo only).
    num_samples : int
    """

    log_px: np.ndarray
    se: np.ndarray
    ess: np.ndarray
    total: float
    total_se: float
    mean: float
    mean_se: float
    num_samples: int


def log_weights(spec, params, x, u, key, *, idx=None):
    """One importance log-weight per observation: ``(N,)``, or ``(len(idx),)`` with ``idx``.

    ``z ~ q(z | x, u)`` from the fitted guide; the model (with the fitted parameters
    substituted and the guide's ``z`` replayed) scores ``log p(x | z) + log p(z | u)``, minus
    ``log q(z | x, u)``. The plate's scaling is not applied: each weight is one observation's.

    Parameters
    ----------
    spec : ModelSpec
    params : dict
        Fitted (constrained) parameters.
    x : array ``(N, d)``
    u : array or None
        Model inputs (see :func:`ppl_ident.workflow.model_inputs`).
    key : PRNG key
    idx : int array ``(b,)``, optional
        One minibatch of observations (a row of
        :func:`~ppl_ident.inference.subsample.fixed_batches`), for guides bound to the
        subsample size they were first traced with; default: every observation at once.

    Returns
    -------
    array
    """
    sub = {} if idx is None else {"obs": idx}
    size = None if idx is None else idx.shape[0]
    with handlers.substitute(data=sub):
        guide = handlers.substitute(handlers.seed(spec.guide, key), data=params)
        g_tr = handlers.trace(guide).get_trace(x, u, subsample_size=size)
        model = handlers.seed(handlers.replay(fitted_model(spec, params), g_tr), key)
        m_tr = handlers.trace(model).get_trace(x, u, subsample_size=size)
    # every per-observation term of the model: z's prior and x's likelihood, or for an
    # exact-likelihood flow the log-determinant factor in x's place
    log_p = sum(site["fn"].log_prob(site["value"]) for site in m_tr.values()
                if site["type"] == "sample")
    # every latent the guide draws (z, or the noisy flow's noise-free w of which z = h(w))
    log_q = sum(site["fn"].log_prob(site["value"]) for site in g_tr.values()
                if site["type"] == "sample")
    return log_p - log_q


def log_weights_fn(spec, x, u, num_samples: int, batch_size: int | None = None):
    """A pure function ``(params, key) -> (N, num_samples)`` of :func:`log_weights`, one
    column per draw of ``z``; it can be ``jit``-ed once and reused for several parameters.

    With ``batch_size`` the guide runs on :func:`~ppl_ident.inference.subsample.fixed_batches`
    of that size, one after the other (guides bound to a fixed subsample size); observations
    that the last batch wraps around to keep the weights of their later batch.
    """
    def draws(params, key, idx):
        def one(k):
            # the first half of each draw's split key seeds the guide: the layout the
            # harness's PSIS k-hats have always been computed with, kept so they reproduce
            return log_weights(spec, params, x, u, jax.random.split(k)[0], idx=idx)

        return jax.vmap(one)(jax.random.split(key, num_samples)).T

    if batch_size is None:
        return lambda params, key: draws(params, key, None)

    n_obs = x.shape[0]
    idx_all = fixed_batches(n_obs, batch_size).reshape(-1)

    def batched(params, key):
        lw = minibatch_map(lambda k, idx: draws(params, k, idx), key, n_obs, batch_size)
        lw = lw.reshape(idx_all.shape[0], num_samples)
        return jnp.zeros((n_obs, num_samples), lw.dtype).at[idx_all].set(lw)

    return batched


def log_marginal_likelihood(spec, params, x, u, *, num_samples: int = 100, key=None,
                            batch_size: int = 10) -> MarginalLikelihood:
    """Importance-sampled ``log p(x | u)`` per observation, with standard errors.

    Parameters
    ----------
    spec : ModelSpec
    params : dict
        Fitted (constrained) parameters.
    x : array ``(N, d)``
        Held-out observations, ideally.
    u : array ``(N,)`` (model indices, see :func:`ppl_ident.workflow.prepare_inputs`) or
        ``(N, k)``
    num_samples : int
        ``K`` importance samples per observation.
    key : PRNG key, optional
    batch_size : int
        Importance samples evaluated together (memory ``~ batch_size * N * width``).

    Returns
    -------
    MarginalLikelihood

    Examples
    --------
    >>> ml = log_marginal_likelihood(fitted.spec, fitted.params, x_test, u_test,  # doctest: +SKIP
    ...                              num_samples=100)
    >>> ml.mean, ml.mean_se                                                      # doctest: +SKIP
    """
    if int(num_samples) != num_samples or num_samples < 2:
        raise InputError(f"num_samples must be an integer >= 2, got {num_samples!r}.")
    key = jax.random.PRNGKey(0) if key is None else key
    x = jnp.asarray(x)
    u = None if u is None else jnp.asarray(u)

    @jax.jit
    def run(params, x, u, keys):
        lw = jax.lax.map(lambda k: log_weights(spec, params, x, u, k), keys,
                         batch_size=min(batch_size, num_samples))          # (K, N)
        k = lw.shape[0]
        m = lw.max(0)  # logsumexp written out, so that w also gives se and ess
        w = jnp.exp(lw - m)
        mean_w = w.mean(0)
        log_px = m + jnp.log(mean_w)
        se = w.std(0, ddof=1) / (jnp.sqrt(k) * mean_w)
        ess = w.sum(0) ** 2 / (w**2).sum(0)
        return log_px, se, ess

    log_px, se, ess = (np.asarray(a, np.float64) for a in
                       run(params, x, u, jax.random.split(key, num_samples)))
    n = len(log_px)
    total_se = float(np.sqrt(np.sum(se**2)))
    return MarginalLikelihood(log_px, se, ess, float(log_px.sum()), total_se,
                              float(log_px.mean()), total_se / n, int(num_samples))
