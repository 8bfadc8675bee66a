"""HMM filter, smoother and Viterbi against brute-force enumeration of every regime path."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from ppl_ident.ops.hmm import hmm_filter, hmm_smoother, hmm_viterbi


def _random_hmm(rng, T, K):
    init = rng.dirichlet(np.ones(K))
    trans = rng.dirichlet(np.ones(K), size=K)
    log_liks = rng.normal(scale=2.0, size=(T, K))
    return np.log(init), np.log(trans), log_liks


def _enumerate(log_init, log_trans, log_liks):
    """Joint log-probability of every path: the definition, with no recursion."""
    T, K = log_liks.shape
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    joint = log_init[paths[:, 0]] + log_liks[0, paths[:, 0]]
    for t in range(1, T):
        joint = joint + log_trans[paths[:, t - 1], paths[:, t]] + log_liks[t, paths[:, t]]
    return paths, joint


CASES = [(T, K) for T in (1, 2, 3, 5) for K in (1, 2, 3)]


@pytest.mark.parametrize("T,K", CASES)
def test_against_enumeration(T, K):
    rng = np.random.default_rng(10 * T + K)
    log_init, log_trans, log_liks = _random_hmm(rng, T, K)
    paths, joint = _enumerate(log_init, log_trans, log_liks)
    marginal = logsumexp(joint)
    post = np.exp(joint - marginal)

    out = hmm_smoother(jnp.asarray(log_init), jnp.asarray(log_trans), jnp.asarray(log_liks))
    # float32 arithmetic on O(10) log-values: 1e-4 relative is ~100 ulps.
    np.testing.assert_allclose(out.marginal_loglik, marginal, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.step_logliks.sum(), marginal, rtol=1e-4, atol=1e-4)
    for t in range(T):
        smoothed = np.array([post[paths[:, t] == k].sum() for k in range(K)])
        np.testing.assert_allclose(out.smoothed_probs[t], smoothed, atol=1e-5)
        # Filtered marginals: enumerate paths of the prefix 0..t only.
        p_pre, j_pre = _enumerate(log_init, log_trans, log_liks[: t + 1])
        w = np.exp(j_pre - logsumexp(j_pre))
        filtered = np.array([w[p_pre[:, t] == k].sum() for k in range(K)])
        np.testing.assert_allclose(out.filtered_probs[t], filtered, atol=1e-5)

    filt = hmm_filter(jnp.asarray(log_init), jnp.asarray(log_trans), jnp.asarray(log_liks))
    np.testing.assert_allclose(filt.marginal_loglik, marginal, rtol=1e-4, atol=1e-4)

    path, log_prob = hmm_viterbi(jnp.asarray(log_init), jnp.asarray(log_trans),
                                 jnp.asarray(log_liks))
    best = np.argmax(joint)
    np.testing.assert_array_equal(np.asarray(path), paths[best])
    np.testing.assert_allclose(log_prob, joint[best], rtol=1e-4, atol=1e-4)


def test_filter_normalises_unnormalised_init_and_is_differentiable():
    rng = np.random.default_rng(0)
    log_init, log_trans, log_liks = _random_hmm(rng, 4, 3)
    a = hmm_filter(jnp.asarray(log_init), jnp.asarray(log_trans), jnp.asarray(log_liks))
    b = hmm_filter(jnp.asarray(log_init + 3.0), jnp.asarray(log_trans), jnp.asarray(log_liks))
    np.testing.assert_allclose(a.marginal_loglik, b.marginal_loglik, rtol=1e-5)
    # d log p / d log_liks[t, k] is the smoothed probability (Fisher's identity).
    grad = jax.grad(lambda ll: hmm_filter(jnp.asarray(log_init), jnp.asarray(log_trans),
                                          ll).marginal_loglik)(jnp.asarray(log_liks))
    smooth = hmm_smoother(jnp.asarray(log_init), jnp.asarray(log_trans), jnp.asarray(log_liks))
    np.testing.assert_allclose(grad, smooth.smoothed_probs, atol=1e-5)


def test_long_sequence_stays_finite_and_vmaps():
    rng = np.random.default_rng(1)
    log_init, log_trans, _ = _random_hmm(rng, 1, 3)
    log_liks = jnp.asarray(rng.normal(scale=30.0, size=(4, 2000, 3)))
    out = jax.vmap(hmm_smoother, in_axes=(None, None, 0))(
        jnp.asarray(log_init), jnp.asarray(log_trans), log_liks)
    assert out.smoothed_probs.shape == (4, 2000, 3)
    assert np.all(np.isfinite(out.marginal_loglik))
    np.testing.assert_allclose(out.smoothed_probs.sum(-1), 1.0, atol=1e-5)
