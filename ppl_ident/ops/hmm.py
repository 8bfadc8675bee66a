"""Exact inference for discrete hidden Markov chains, as pure log-space functions.

The hidden regime ``u_t in {0..K-1}`` follows a Markov chain with initial probabilities
``pi`` and transition matrix ``A`` (``A[i, j] = p(u_{t+1} = j | u_t = i)``); the emission
log-likelihoods ``log p(obs_t | u_t = k)`` are given as a ``(T, K)`` array. Every function
works on one sequence; ``jax.vmap`` them over a batch. All are differentiable, so a marginal
log-likelihood from :func:`hmm_filter` can be maximised with gradients (the regime model
does exactly that with ``numpyro.factor``).

The forward pass normalises at every step (``c_t = log p(obs_t | obs_{<t})``), so nothing
under- or overflows for long sequences, and the per-step normalisers are returned: their sum is
the marginal log-likelihood and each one is a conditional log-density in its own right.

References
----------
Rabiner (1989), "A tutorial on hidden Markov models and selected applications in speech
recognition", Proc. IEEE. Murphy (2012), *Machine Learning: a Probabilistic Perspective*,
ch. 17. Modelled on Dynamax's ``hidden_markov_model/inference.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

__all__ = ["HMMFilter", "HMMSmoother", "hmm_filter", "hmm_smoother", "hmm_viterbi"]


class HMMFilter(NamedTuple):
    """Output of :func:`hmm_filter`.

    Attributes
    ----------
    marginal_loglik : scalar
        ``log p(obs_{1:T})``.
    filtered_probs : ``(T, K)``
        ``p(u_t | obs_{1:t})``.
    predicted_probs : ``(T, K)``
        ``p(u_t | obs_{1:t-1})`` (the initial probabilities at ``t = 0``).
    step_logliks : ``(T,)``
        ``log p(obs_t | obs_{1:t-1})``; sums to ``marginal_loglik``.
    """

    marginal_loglik: jax.Array
    filtered_probs: jax.Array
    predicted_probs: jax.Array
    step_logliks: jax.Array


class HMMSmoother(NamedTuple):
    """Output of :func:`hmm_smoother`: the filter's fields plus ``smoothed_probs``
    ``(T, K) = p(u_t | obs_{1:T})``."""

    marginal_loglik: jax.Array
    filtered_probs: jax.Array
    predicted_probs: jax.Array
    step_logliks: jax.Array
    smoothed_probs: jax.Array


def _log_normalize(log_p):
    norm = logsumexp(log_p)
    return log_p - norm, norm


def _forward(log_init, log_trans, log_liks):
    log_pred0 = log_init - logsumexp(log_init)

    def step(log_pred, ll):
        log_filt, c = _log_normalize(log_pred + ll)
        log_next = logsumexp(log_filt[:, None] + log_trans, axis=0)
        return log_next, (log_filt, log_pred, c)

    _, (log_filt, log_pred, c) = jax.lax.scan(step, log_pred0, log_liks)
    return log_filt, log_pred, c


def hmm_filter(log_init, log_trans, log_liks) -> HMMFilter:
    """Forward filter of a discrete HMM in log space.

    Parameters
    ----------
    log_init : ``(K,)``
        Log initial probabilities (normalised here, so unnormalised logits are fine).
    log_trans : ``(K, K)``
        Log transition matrix, rows ``log p(u_{t+1} = . | u_t = i)`` (rows must be normalised).
    log_liks : ``(T, K)``
        Emission log-likelihoods ``log p(obs_t | u_t = k)``.

    Returns
    -------
    HMMFilter

    Examples
    --------
    >>> log_liks = jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8]]))
    >>> out = hmm_filter(jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.eye(2)), log_liks)
    >>> round(float(jnp.exp(out.marginal_loglik)), 4)  # 0.5*0.9*0.2 + 0.5*0.1*0.8
    0.13
    """
    log_filt, log_pred, c = _forward(log_init, log_trans, log_liks)
    return HMMFilter(c.sum(), jnp.exp(log_filt), jnp.exp(log_pred), c)


def hmm_smoother(log_init, log_trans, log_liks) -> HMMSmoother:
    """Forward-backward smoother: ``p(u_t | obs_{1:T})`` for every ``t``.

    Parameters and conventions as in :func:`hmm_filter`.

    Returns
    -------
    HMMSmoother
    """
    log_filt, log_pred, c = _forward(log_init, log_trans, log_liks)

    # Backward messages beta_t(i) = p(obs_{t+1:T} | u_t = i), renormalised each step (only
    # their ratios across i matter for the smoothed marginals).
    def step(log_beta_next, ll_next):
        log_beta = logsumexp(log_trans + (ll_next + log_beta_next)[None, :], axis=1)
        log_beta, _ = _log_normalize(log_beta)
        return log_beta, log_beta

    K = log_liks.shape[1]
    _, log_betas = jax.lax.scan(step, jnp.zeros(K), log_liks[1:], reverse=True)
    log_betas = jnp.concatenate([log_betas, jnp.zeros((1, K))], axis=0)
    log_smooth = log_filt + log_betas
    log_smooth = log_smooth - logsumexp(log_smooth, axis=1, keepdims=True)
    return HMMSmoother(c.sum(), jnp.exp(log_filt), jnp.exp(log_pred), c, jnp.exp(log_smooth))


def hmm_viterbi(log_init, log_trans, log_liks):
    """Most likely regime path ``argmax_u p(u_{1:T} | obs_{1:T})`` (max-product).

    Parameters as in :func:`hmm_filter`.

    Returns
    -------
    path : int array ``(T,)``
    log_prob : scalar
        ``log p(u*_{1:T}, obs_{1:T})`` of the returned path (joint, not conditional).
    """
    log_init = log_init - logsumexp(log_init)
    delta0 = log_init + log_liks[0]

    def forward(delta, ll):
        scores = delta[:, None] + log_trans
        return scores.max(axis=0) + ll, scores.argmax(axis=0)

    delta_T, pointers = jax.lax.scan(forward, delta0, log_liks[1:])
    last = jnp.argmax(delta_T)

    def backward(state, ptr):
        prev = ptr[state]
        return prev, state

    first, path = jax.lax.scan(backward, last, pointers, reverse=True)
    path = jnp.concatenate([first[None], path])
    return path.astype(jnp.int32), delta_T.max()
