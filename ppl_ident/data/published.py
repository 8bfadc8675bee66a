"""Ports of the published temporal generators (TDRL, NCTRL, CtrlNS) with their true regimes.

``style="published"`` in :mod:`ppl_ident.data.sequences` imitates the *shape* of the published
temporal benchmarks inside the package's own transition family. The generators here are ports
of the processes themselves, written afresh in numpy from the maths of the public data scripts
(none of their code is copied; each function cites the file it follows), so that a model can
be scored on the data the papers used and not only on an imitation:

* :func:`simulate_tdrl_changing` -- TDRL's changing-dynamics data, 5 observed domains
  (weirayao/tdrl, ``LiLY/tools/gen_dataset.py``, ``pnl_change_gaussian_ts``; dataset
  ``pnl_change_5`` of ``LiLY/configs/change_5.yaml``).
* :func:`simulate_tdrl_stationary` -- TDRL's stationary data (same file,
  ``noisecoupled_gaussian_ts``: the dataset ``noisecoupled_gaussian_ts_2lag`` of
  ``LiLY/configs/stationary_2lag.yaml``; ``noise_coupled=False`` gives ``pnl_gaussian_ts``).
* :func:`simulate_nctrl` -- NCTRL's hidden-regime data (xiangchensong/nctrl,
  ``tools/generate_data.py``, ``arhmm_pnl_change_gaussian_ts`` as its ``__main__`` calls it).
* :func:`simulate_ctrlns` -- CtrlNS's non-Markov regimes over sparse transitions
  (xiangchensong/ctrlns, ``datasets/generate_data.py``, ``main`` with its argparse defaults).

Every simulator returns ``(Dataset, PublishedTruth)`` with ``x`` ``(B, T, d)``, ``z``
``(B, T, n)`` and, where the auxiliary variable is observed (TDRL's domains), ``u`` ``(B, T)``.
The mixing is a :class:`~ppl_ident.data.mixing.Mixing`: the published ``leaky(leaky(z) A1) A2``
(a leaky ReLU on ``z`` *before* the first matrix) is the package's MLP with weights
``(I, A1, A2)``. For the hidden-regime generators ``truth.regimes[b, t]`` is the regime that
drives step ``t`` (its transition from the past), the convention of the package's regime model;
:func:`regime_posterior` and :func:`oracle_regime_accuracy` give the true model's regime
posterior (forward-backward under the true transition densities and the true regime process).

References
----------
Yao, Chen & Zhang (2022), "Temporally disentangled representation learning", NeurIPS (TDRL).
Song et al. (2023), "Temporally disentangled representation learning under unknown
nonstationarity", NeurIPS (NCTRL). Song et al. (2024), "Causal temporal representation learning
with nonstationary sparse transition", NeurIPS (CtrlNS).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

from ppl_ident.data.mixing import Mixing, mix, mixing_from_arrays, mixing_to_arrays, unmix
# the Haar-orthogonal draw and the inverse-CDF categorical draw of the package's simulators
from ppl_ident.data.sequences import _categorical, _orthogonal
from ppl_ident.data.simulate import Dataset
from ppl_ident.errors import InputError

__all__ = [
    "PUBLISHED_GENERATORS",
    "PublishedTruth",
    "simulate_tdrl_changing",
    "simulate_tdrl_stationary",
    "simulate_nctrl",
    "simulate_ctrlns",
    "simulate_published",
    "generator_options",
    "transition_log_likelihoods",
    "regime_prior",
    "forward_backward",
    "regime_posterior",
    "oracle_regime_accuracy",
    "published_truth_to_arrays",
    "published_truth_from_arrays",
]

#: The ported generators, by name (:func:`simulate_published`).
PUBLISHED_GENERATORS = ("tdrl_changing", "tdrl_stationary", "nctrl", "ctrlns")

_SLOPE = 0.2  # every published generator's leaky-ReLU slope


class PublishedTruth(NamedTuple):
    """Ground truth of a ported published generator.

    Attributes
    ----------
    z : ``(B, T, n)`` true latents.
    mixing : Mixing
    generator : str
        One of :data:`PUBLISHED_GENERATORS`.
    lag : int
        Past steps the transition reads; the first ``lag`` steps of a sequence have none.
    params : dict of arrays
        The generator's parameters (per generator: the transition matrices ``W``, permutation
        matrices ``P``, ``B``, the sparse MLPs and their Jacobian supports, the noise scale).
    regimes : int ``(B, T)`` or None
        Hidden generators: the regime driving step ``t`` (for ``t < lag`` the chain's earlier
        states, which drive nothing).
    labels : int ``(B, T)`` or None
        The regime labels as the original generator stores them (NCTRL: ``C[:, t]`` drives
        ``z[:, t + lag]``; CtrlNS: the 15 states of ``batch_states``, ``state[s]`` driving
        ``z[:, s + 1]``).
    trans_matrix : ``(K, K)`` or None
        The regime chain (NCTRL); for CtrlNS, whose regime process is not one chain, the
        pooled empirical transition frequencies of the drawn paths (the summary its script
        prints), for reference only.
    init_probs : ``(K,)`` or None
    step_trans : ``(T - 1, K, K)`` or None
        The regime process as a time-varying chain: ``step_trans[t][i, j] = p(r_{t+1} = j |
        r_t = i)`` (rows constant where the process resets).
    group_size : int
        Consecutive sequences sharing one regime path (CtrlNS: 32; 1 otherwise).
    """

    z: np.ndarray
    mixing: Mixing
    generator: str
    lag: int
    params: dict
    regimes: np.ndarray | None = None
    labels: np.ndarray | None = None
    trans_matrix: np.ndarray | None = None
    init_probs: np.ndarray | None = None
    step_trans: np.ndarray | None = None
    group_size: int = 1

    def g(self, z):
        """The true mixing ``x = g(z)``."""
        return mix(self.mixing, z)

    def g_inv(self, x):
        """The true unmixing ``z = g^{-1}(x)``."""
        return unmix(self.mixing, x)


# --------------------------------------------------------------------------- shared pieces


def _leaky(h, slope=_SLOPE):
    return np.where(h > 0, h, slope * h)


def _leaky_inv(y, slope=_SLOPE):
    return np.where(y > 0, y, y / slope)


def _normalise_columns(a):
    return a / np.sqrt((a ** 2).sum(axis=-2, keepdims=True))


def _cond_threshold(rng, n, draws=10_000, quantile=25.0):
    """The published threshold: the lower quartile of condition numbers of column-normalised
    matrices with entries uniform in [1, 2] (all positive, so badly conditioned: the
    threshold is loose)."""
    a = _normalise_columns(rng.uniform(1.0, 2.0, size=(draws, n, n)))
    return float(np.percentile(np.linalg.cond(a), quantile))


def _uniform_matrix(rng, n, threshold):
    """Column-normalised uniform(-1, 1) matrix, redrawn until its condition number is at most
    ``threshold`` (the published ``generateUniformMat``)."""
    while True:
        a = _normalise_columns(rng.uniform(-1.0, 1.0, size=(n, n)))
        if np.linalg.cond(a) <= threshold:
            return a


def _mixing(rng, n, layers):
    """``layers`` orthogonal matrices after a leading leaky ReLU: ``leaky(z) A1``,
    ``leaky(leaky(z) A1) A2``, ... as the package's MLP with an identity first layer."""
    ws = [np.eye(n)] + [_orthogonal(rng, n) for _ in range(layers)]
    return Mixing(tuple(jnp.asarray(w, jnp.float32) for w in ws), None, "leaky_relu", _SLOPE)


def _standard_start(rng, B, lag, n):
    """``lag`` standard-normal steps standardised over the sequences (per step and latent)."""
    s = rng.standard_normal((B, lag, n))
    return (s - s.mean(0)) / s.std(0)


def _finish(z, u, mixing):
    x = np.asarray(jax.jit(mix)(mixing, jnp.asarray(z, jnp.float32)))
    return Dataset(x.astype(np.float32), u, z.astype(np.float32))


def _cyclic_chain(K, stay):
    """Sticky cyclic chain: stay with ``stay``, else move to the next regime (mod K)."""
    P = np.zeros((K, K))
    P[np.arange(K), np.arange(K)] = stay
    P[np.arange(K), (np.arange(K) + 1) % K] += 1.0 - stay
    return P / P.sum(1, keepdims=True)


def _stationary(P):
    vals, vecs = np.linalg.eig(P.T)
    v = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
    return v / v.sum()


def _draw_chain(rng, init, P, B, T):
    path = np.zeros((B, T), np.int32)
    path[:, 0] = _categorical(rng, np.broadcast_to(init, (B, len(init))))
    for t in range(1, T):
        path[:, t] = _categorical(rng, P[path[:, t - 1]])
    return path


def _positive(**values):
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer, float, np.floating)) \
                or not np.isfinite(v) or int(v) != v or v < 1:
            raise InputError(f"{name} must be a positive integer (1 or more), got {v!r}.")


def _scale(name: str, v):
    """Refuse a noise scale that is not a finite number >= 0 (0: noiseless transitions)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer, float, np.floating)) \
            or not np.isfinite(v) or v < 0:
        raise InputError(f"{name} must be a finite number >= 0 (0: noiseless transitions), "
                         f"got {v!r}.")


def _probability(name: str, v):
    """Refuse a staying probability outside [0, 1)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer, float, np.floating)) \
            or not 0 <= v < 1:
        raise InputError(f"{name} must be in [0, 1), got {v!r}.")


# --------------------------------------------------------------------------- TDRL


def _tdrl_weights(rng, n, lag):
    thr = _cond_threshold(rng, n)
    # the published list is drawn and reversed: index 0 multiplies the oldest step
    return [_uniform_matrix(rng, n, thr) for _ in range(lag)][::-1]


def simulate_tdrl_changing(seed: int = 0, *, n_per_domain: int = 40_000, n_domains: int = 5,
                           length: int = 1, lag: int = 2, n_latent: int = 8,
                           noise_scale: float = 0.1):
    """TDRL's changing-dynamics data: observed domains that change two edges of the lag-2 map.

    Port of ``pnl_change_gaussian_ts`` (weirayao/tdrl, ``LiLY/tools/gen_dataset.py``; the
    source split, dataset ``pnl_change_5`` of ``LiLY/configs/change_5.yaml``). For domain ``c``
    and step ``t >= L``::

        z_t = leaky(eps_t + sum_l leaky(z_{t-l} W_l^c)),   eps_t ~ N(0, noise_scale^2 I),

    with ``W_l`` column-normalised uniform(-1, 1) matrices of condition number below the
    lower quartile of uniform(1, 2) matrices', shared by the domains except the entries
    ``(1, 2)`` and ``(3, 4)`` of the lag-``L`` (oldest) matrix, uniform(-1, 1) per domain. The
    first ``L`` steps are standard normals standardised within each domain; the mixing is
    ``leaky(leaky(z) A1) A2`` with Haar-orthogonal ``A``; no observation noise; leaky slope 0.2.
    Sequences are stored domain by domain; ``u[b, t]`` is the domain.

    Parameters
    ----------
    seed : int
    n_per_domain : int
        Sequences per domain (the original: 40,000).
    n_domains : int
        Observed domains (the original: 5).
    length : int
        Transition steps after the ``lag`` initial ones (the original: 1, so ``T = 3``).
    lag, n_latent : int
        2 and 8 in the original.
    noise_scale : float

    Returns
    -------
    dataset : Dataset
        ``x`` ``(U * n_per_domain, lag + length, n)``, ``u``, ``z``.
    truth : PublishedTruth
        ``params``: ``W`` ``(U, L, n, n)`` (index ``l`` multiplies ``z_{t-L+l}``, oldest
        first), ``noise_scale``.

    Examples
    --------
    >>> data, truth = simulate_tdrl_changing(0, n_per_domain=4, n_latent=5)
    >>> data.x.shape, data.u[:, 0].tolist()[:6], truth.params["W"].shape
    ((20, 3, 5), [0, 0, 0, 0, 1, 1], (5, 2, 5, 5))
    """
    _positive(n_per_domain=n_per_domain, n_domains=n_domains, length=length, lag=lag,
              n_latent=n_latent)
    _scale("noise_scale", noise_scale)
    if n_latent < 5:
        raise InputError(f"n_latent={n_latent}: TDRL's changing edges (1, 2) and (3, 4) need "
                         "at least 5 latents.")
    rng = np.random.default_rng(seed)
    n, L, U = n_latent, lag, n_domains
    base = _tdrl_weights(rng, n, L)
    mixing = _mixing(rng, n, 2)
    edges = rng.uniform(-1.0, 1.0, size=(U, 2))
    W = np.broadcast_to(np.stack(base), (U, L, n, n)).copy()
    for c in range(U):
        W[c, 0, 1, 2], W[c, 0, 3, 4] = edges[c]
    zs = []
    for c in range(U):
        z = np.zeros((n_per_domain, L + length, n))
        z[:, :L] = _standard_start(rng, n_per_domain, L, n)
        for t in range(L, L + length):
            pre = noise_scale * rng.standard_normal((n_per_domain, n))
            for l in range(L):
                pre += _leaky(z[:, t - L + l] @ W[c, l])
            z[:, t] = _leaky(pre)
        zs.append(z)
    z = np.concatenate(zs)
    u = np.repeat(np.arange(U, dtype=np.int32), n_per_domain)[:, None]
    u = np.broadcast_to(u, z.shape[:2]).copy()
    truth = PublishedTruth(z=z.astype(np.float32), mixing=mixing, generator="tdrl_changing",
                           lag=L, params=dict(W=W.astype(np.float32),
                                              noise_scale=np.float32(noise_scale)))
    return _finish(z, u, mixing), truth


def simulate_tdrl_stationary(seed: int = 0, *, n_sequences: int = 100_000, length: int = 1,
                             lag: int = 2, n_latent: int = 8, noise_scale: float = 0.1,
                             noise_coupled: bool = True):
    """TDRL's stationary data: one post-nonlinear transition, noise scaled by the past.

    Port of ``noisecoupled_gaussian_ts`` (weirayao/tdrl, ``LiLY/tools/gen_dataset.py``; the
    dataset ``noisecoupled_gaussian_ts_2lag`` that ``LiLY/configs/stationary_2lag.yaml``
    trains on). For ``t >= L``::

        z_t = leaky(eps_t * mean(z_{t-1}, ..., z_{t-L}) + sum_l leaky(z_{t-l} W_l)),
        eps_t ~ N(0, noise_scale^2 I),

    so the noise's scale is ``noise_scale * |mean of the past|``, latent by latent (it
    vanishes where the past averages to 0). ``noise_coupled=False`` drops the factor
    (``pnl_gaussian_ts``, dataset ``pnl_ts_2lag``). ``W`` and the rest as
    :func:`simulate_tdrl_changing`, with one domain; the dataset has ``u = 0`` everywhere.

    Returns
    -------
    dataset : Dataset
        ``x`` ``(B, lag + length, n)``, ``u`` zeros, ``z``.
    truth : PublishedTruth
        ``params``: ``W`` ``(L, n, n)`` (oldest first), ``noise_scale``, ``noise_coupled``.

    Examples
    --------
    >>> data, truth = simulate_tdrl_stationary(0, n_sequences=6, n_latent=3)
    >>> data.x.shape, truth.params["W"].shape
    ((6, 3, 3), (2, 3, 3))
    """
    _positive(n_sequences=n_sequences, length=length, lag=lag, n_latent=n_latent)
    _scale("noise_scale", noise_scale)
    if not isinstance(noise_coupled, (bool, np.bool_)):
        raise InputError(f"noise_coupled must be True or False, got {noise_coupled!r}.")
    rng = np.random.default_rng(seed)
    n, L, B = n_latent, lag, n_sequences
    W = np.stack(_tdrl_weights(rng, n, L))
    mixing = _mixing(rng, n, 2)
    z = np.zeros((B, L + length, n))
    z[:, :L] = _standard_start(rng, B, L, n)
    for t in range(L, L + length):
        pre = noise_scale * rng.standard_normal((B, n))
        if noise_coupled:
            pre = pre * z[:, t - L:t].mean(1)
        for l in range(L):
            pre += _leaky(z[:, t - L + l] @ W[l])
        z[:, t] = _leaky(pre)
    truth = PublishedTruth(z=z.astype(np.float32), mixing=mixing, generator="tdrl_stationary",
                           lag=L, params=dict(W=W.astype(np.float32),
                                              noise_scale=np.float32(noise_scale),
                                              noise_coupled=np.bool_(noise_coupled)))
    return _finish(z, np.zeros(z.shape[:2], np.int32), mixing), truth


# --------------------------------------------------------------------------- NCTRL


def simulate_nctrl(seed: int = 0, *, n_sequences: int = 40_000, n_regimes: int = 5,
                   length: int = 4, lag: int = 2, n_latent: int = 8, noise_scale: float = 0.1,
                   stay_prob: float = 0.9):
    """NCTRL's hidden regimes: a sticky cyclic chain picks a permutation of the lag-1 latents.

    Port of ``arhmm_pnl_change_gaussian_ts`` as the ``__main__`` of ``tools/generate_data.py``
    (xiangchensong/nctrl) calls it: ``lags=2, length=4, Nlayer=3, latent_size=8,
    noise_scale=0.1, state_stickiness=0.9`` (5 regimes; 200,000 sequences there). With
    ``r_t`` the regime driving step ``t >= L``::

        z_t = leaky(eps_t + leaky(z_{t-1} P_{r_t}) + sum_{l=2..L} leaky(z_{t-l} B_l)),
        eps_t ~ N(0, noise_scale^2 I),

    ``P_k`` distinct random permutation matrices (``(z P)[p_k[i]] = z[i]``), ``B_l``
    column-normalised uniform(-1, 1) matrices below TDRL's condition threshold, shared by the
    regimes. The regime chain stays with ``stay_prob`` and otherwise moves to the next regime
    (cyclically), started from its stationary (uniform) distribution; in the original the
    label ``C[t]`` drives ``z[t + L]`` (kept as ``truth.labels``). The first ``L`` steps are
    standard normals standardised over the sequences; mixing ``leaky(leaky(z) A1) A2``,
    Haar-orthogonal ``A``, no observation noise. The latents are not stationary: each step
    adds two non-negative-biased leaky terms, so the mean grows step by step.

    Returns
    -------
    dataset : Dataset
        ``x`` ``(B, lag + length, n)``, ``u=None``, ``z``.
    truth : PublishedTruth
        ``regimes`` ``(B, T)`` (regime driving step ``t``), ``labels`` (the original's ``C``),
        ``trans_matrix``, ``init_probs``, ``step_trans``; ``params``: ``P`` ``(K, n, n)``,
        ``perm`` ``(K, n)``, ``B`` ``(L - 1, n, n)`` (lag 2 first), ``noise_scale``.

    Examples
    --------
    >>> data, truth = simulate_nctrl(0, n_sequences=4, n_regimes=3, n_latent=4)
    >>> data.u is None, truth.regimes.shape, truth.params["P"].shape
    (True, (4, 6), (3, 4, 4))
    """
    _positive(n_sequences=n_sequences, n_regimes=n_regimes, length=length, lag=lag,
              n_latent=n_latent)
    _scale("noise_scale", noise_scale)
    if n_regimes < 2:
        raise InputError(f"n_regimes={n_regimes}: NCTRL switches between 2 or more regimes.")
    if n_regimes > np.prod(np.arange(1, n_latent + 1), dtype=float):
        raise InputError(f"n_regimes={n_regimes} exceeds the {n_latent}! distinct permutations "
                         f"of {n_latent} latents; choose fewer regimes or more latents.")
    _probability("stay_prob", stay_prob)
    rng = np.random.default_rng(seed)
    n, L, K, B, T = n_latent, lag, n_regimes, n_sequences, lag + length
    thr = _cond_threshold(rng, n)
    Bmats = np.stack([_uniform_matrix(rng, n, thr) for _ in range(L - 1)]) if L > 1 \
        else np.zeros((0, n, n))
    mixing = _mixing(rng, n, 2)
    perms, seen = [], set()
    while len(perms) < K:
        p = rng.permutation(n)
        if tuple(p) not in seen:
            seen.add(tuple(p))
            perms.append(p)
    perm = np.stack(perms)
    P = np.zeros((K, n, n))
    for k in range(K):
        P[k, np.arange(n), perm[k]] = 1.0
    trans = _cyclic_chain(K, stay_prob)
    init = _stationary(trans)
    # One stationary chain over all T steps: regimes[:, t] drives z_t; the original's labels
    # C[:, t] = regimes[:, t + L] (then L more chain steps that drive nothing).
    chain = _draw_chain(rng, init, trans, B, T + L)
    regimes, labels = chain[:, :T], chain[:, L:]
    z = np.zeros((B, T, n))
    z[:, :L] = _standard_start(rng, B, L, n)
    for t in range(L, T):
        pre = noise_scale * rng.standard_normal((B, n))
        pre += _leaky(np.einsum("bi,bij->bj", z[:, t - 1], P[regimes[:, t]]))
        for l in range(2, L + 1):
            pre += _leaky(z[:, t - l] @ Bmats[l - 2])
        z[:, t] = _leaky(pre)
    truth = PublishedTruth(
        z=z.astype(np.float32), mixing=mixing, generator="nctrl", lag=L,
        params=dict(P=P.astype(np.float32), perm=perm.astype(np.int32),
                    B=Bmats.astype(np.float32), noise_scale=np.float32(noise_scale)),
        regimes=regimes, labels=labels, trans_matrix=trans.astype(np.float32),
        init_probs=init.astype(np.float32),
        step_trans=np.broadcast_to(trans, (T - 1, K, K)).astype(np.float32))
    return _finish(z, None, mixing), truth


# --------------------------------------------------------------------------- CtrlNS


def _sparse_supports(rng, K, n, density=0.7, max_iter=1000):
    """``K`` distinct Jacobian supports ``(n, n)`` (output, input): Bernoulli(``density``)
    entries plus a random permutation's entries (every output reads an input); a candidate is
    kept when it differs from every kept one by more than 10% of the entries in each
    direction."""
    masks, it = [], 0
    while len(masks) < K:
        if it > max_iter:
            raise InputError(f"could not draw {K} distinct sparse supports for {n} latents; "
                             "choose fewer regimes.")
        it += 1
        m = (rng.uniform(size=(n, n)) < density).astype(np.float32)
        m[rng.permutation(n), np.arange(n)] = 1.0
        thd = 0.1 * n * n
        if all(((m - o) == 1).sum() > thd and ((m - o) == -1).sum() > thd for o in masks):
            masks.append(m)
    return np.stack(masks)


def _sparse_mlps(rng, supports, hidden):
    """One MLP per output latent and regime, reading only its support: ``f_i(z) =
    w2_i . leaky(W1_i z + b1_i) + b2_i`` with ``W1`` standard normal (entries of magnitude
    below 0.01 set to +-0.01) masked by the support, and the other weights and biases drawn as
    PyTorch's ``nn.Linear`` default (uniform in +-1/sqrt(fan_in))."""
    K, n, _ = supports.shape
    w1 = rng.standard_normal((K, n, hidden, n))
    small = np.abs(w1) < 0.01
    w1[small] = np.where(w1[small] >= 0, 0.01, -0.01)
    w1 = w1 * supports[:, :, None, :]
    b1 = rng.uniform(-1, 1, size=(K, n, hidden)) / np.sqrt(n)
    w2 = rng.uniform(-1, 1, size=(K, n, hidden)) / np.sqrt(hidden)
    b2 = rng.uniform(-1, 1, size=(K, n)) / np.sqrt(hidden)
    return w1, b1, w2, b2


def _ctrlns_mean(params, z, k):
    """The CtrlNS transition mean ``f_k(z)`` for ``z`` ``(..., n)`` and regimes ``k``
    (broadcast with ``z[..., 0]``)."""
    w1, b1, w2, b2 = (np.asarray(params[a]) for a in ("w1", "b1", "w2", "b2"))
    h = _leaky(np.einsum("...j,...ihj->...ih", z, w1[k]) + b1[k])
    return np.einsum("...ih,...ih->...i", h, w2[k]) + b2[k]


def simulate_ctrlns(seed: int = 0, *, n_groups: int = 1000, group_size: int = 32,
                    n_regimes: int = 5, segment_length: int = 5, n_latent: int = 8,
                    hidden: int = 32, noise_level: float = 0.1, stay_prob: float = 0.8):
    """CtrlNS's data: three 5-step regime segments with different rules over sparse MLPs.

    Port of ``main`` in ``datasets/generate_data.py`` (xiangchensong/ctrlns) with its argparse
    defaults (``num_states=5, num_batches=1000, inner_batch_size=32, base_steps=5, z_dim=8,
    hid_dim=32, noise_level=0.1, num_mixing_layer=2``). Each of ``n_groups`` groups has one
    path of ``3 * segment_length`` regimes shared by its ``group_size`` sequences:

    1. ``segment_length`` regimes drawn independently and uniformly;
    2. a sticky cyclic chain (stay ``stay_prob``, else the next regime) started afresh from its
       stationary distribution;
    3. a chain with rows ``uniform(0.2, 0.8) + stay_prob`` on the anti-diagonal, normalised,
       started afresh from its stationary distribution.

    ``z_0 ~ N(0, I)`` and ``z_{s+1} = f_{r_s}(z_s) + sqrt(noise_level) eps``: each regime has
    one small MLP per output latent reading only a sparse set of inputs (density 0.7 plus a
    permutation, distinct supports per regime), with leaky-ReLU (0.2) hidden units. Sequences
    have ``3 * segment_length + 1`` steps; the mixing is ``x = leaky(z) A`` with one
    Haar-orthogonal ``A`` (so a linear map of ``x`` recovers ``leaky(z)``).

    Returns
    -------
    dataset : Dataset
        ``x`` ``(n_groups * group_size, 3 * segment_length + 1, n)``, ``u=None``, ``z``.
    truth : PublishedTruth
        ``regimes`` ``(B, T)`` (``regimes[:, 0]`` an extra uniform draw that drives nothing,
        ``regimes[:, s + 1] = labels[:, s]``), ``labels`` (the original's ``batch_states``),
        ``step_trans`` (the segment rules as a time-varying chain), ``init_probs`` (uniform),
        ``trans_matrix`` (pooled empirical frequencies), ``group_size``; ``params``: the MLPs
        ``w1`` ``(K, n, H, n)``, ``b1``, ``w2``, ``b2``, ``supports`` ``(K, n, n)``,
        ``chain1``, ``chain2`` ``(K, K)``, ``noise_sd``.

    Examples
    --------
    >>> data, truth = simulate_ctrlns(0, n_groups=2, group_size=3, n_latent=4, hidden=4)
    >>> data.x.shape, truth.labels.shape
    ((6, 16, 4), (6, 15))
    """
    _positive(n_groups=n_groups, group_size=group_size, n_regimes=n_regimes,
              segment_length=segment_length, n_latent=n_latent, hidden=hidden)
    if n_regimes < 2:
        raise InputError(f"n_regimes={n_regimes}: CtrlNS switches between 2 or more regimes.")
    _probability("stay_prob", stay_prob)
    _scale("noise_level", noise_level)
    rng = np.random.default_rng(seed)
    K, n, S, G = n_regimes, n_latent, segment_length, n_groups
    chain1 = _cyclic_chain(K, stay_prob)
    chain2 = rng.uniform(0.2, 0.8, size=(K, K)) + np.rot90(np.eye(K)) * stay_prob
    chain2 = chain2 / chain2.sum(1, keepdims=True)
    pi1, pi2 = _stationary(chain1), _stationary(chain2)
    # the parameters first, so that they do not change with the data's size
    supports = _sparse_supports(rng, K, n)
    w1, b1, w2, b2 = _sparse_mlps(rng, supports, hidden)
    params = dict(w1=w1.astype(np.float32), b1=b1.astype(np.float32),
                  w2=w2.astype(np.float32), b2=b2.astype(np.float32), supports=supports,
                  chain1=chain1.astype(np.float32), chain2=chain2.astype(np.float32),
                  noise_sd=np.float32(np.sqrt(noise_level)))
    mixing = _mixing(rng, n, 1)
    states = np.concatenate([rng.integers(0, K, size=(G, S)).astype(np.int32),
                             _draw_chain(rng, pi1, chain1, G, S),
                             _draw_chain(rng, pi2, chain2, G, S)], axis=1)
    Bn, T = G * group_size, 3 * S + 1
    labels = np.repeat(states, group_size, axis=0)
    z = np.zeros((Bn, T, n))
    z[:, 0] = rng.standard_normal((Bn, n))
    for s in range(3 * S):
        z[:, s + 1] = (_ctrlns_mean(params, z[:, s], labels[:, s])
                       + np.sqrt(noise_level) * rng.standard_normal((Bn, n)))
    first = np.repeat(rng.integers(0, K, size=(G, 1)), group_size, axis=0).astype(np.int32)
    regimes = np.concatenate([first, labels], axis=1)
    uniform = np.full((K, K), 1.0 / K)
    step = [uniform] * S + [np.broadcast_to(pi1, (K, K))] + [chain1] * (S - 1) \
        + [np.broadcast_to(pi2, (K, K))] + [chain2] * (S - 1)
    pooled = np.zeros((K, K))
    np.add.at(pooled, (states[:, :-1].ravel(), states[:, 1:].ravel()), 1)
    pooled = pooled / np.maximum(pooled.sum(1, keepdims=True), 1)
    truth = PublishedTruth(
        z=z.astype(np.float32), mixing=mixing, generator="ctrlns", lag=1, params=params,
        regimes=regimes, labels=labels, trans_matrix=pooled.astype(np.float32),
        init_probs=np.full(K, 1.0 / K, np.float32),
        step_trans=np.stack(step).astype(np.float32), group_size=group_size)
    return _finish(z, None, mixing), truth


_SIMULATORS = {"tdrl_changing": simulate_tdrl_changing,
               "tdrl_stationary": simulate_tdrl_stationary,
               "nctrl": simulate_nctrl, "ctrlns": simulate_ctrlns}


def generator_options(generator: str) -> tuple:
    """The keyword options of the ported generator ``generator``, with their defaults: a
    tuple of ``(name, default)``."""
    import inspect

    if generator not in _SIMULATORS:
        raise InputError(f"Unknown published generator {generator!r}; choose one of "
                         f"{', '.join(PUBLISHED_GENERATORS)}.")
    return tuple((p.name, p.default)
                 for p in inspect.signature(_SIMULATORS[generator]).parameters.values()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY)


def simulate_published(generator: str, seed: int = 0, **options):
    """Run the ported generator named ``generator`` (one of :data:`PUBLISHED_GENERATORS`)
    with its keyword ``options`` (:func:`generator_options`; another name raises
    :class:`~ppl_ident.errors.InputError` listing the valid ones)."""
    valid = [name for name, _ in generator_options(generator)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise InputError(f"The {generator} generator has no option(s) "
                         f"{', '.join(map(repr, unknown))}; its options are "
                         f"{', '.join(valid)}.")
    if int(seed) != seed or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}.")
    return _SIMULATORS[generator](seed, **options)


# --------------------------------------------------------------------------- the true regimes


def _transition_sd(truth: PublishedTruth, sd) -> float:
    sd = float(sd)
    if not sd > 0:
        raise InputError(f"This {truth.generator} data was simulated without transition noise "
                         "(noise 0): its steps have no likelihood under any regime. Simulate "
                         "with a noise scale > 0 for the regime posterior.")
    return sd


def transition_log_likelihoods(truth: PublishedTruth, z=None) -> np.ndarray:
    """``log p(z_t | past, r_t = k)`` up to terms that do not depend on ``k``: ``(B, T, K)``.

    NCTRL's transition is Gaussian in the pre-activation ``y_t = leaky^{-1}(z_t)``; the
    Jacobian ``-log leaky'(y_t)`` is the same for every regime and dropped. Steps before the
    lag carry no transition (zeros). ``z`` defaults to ``truth.z``.
    """
    z = np.asarray(truth.z if z is None else z, np.float64)
    B, T, n = z.shape
    L, p = truth.lag, truth.params
    if truth.generator == "nctrl":
        P, sd = np.asarray(p["P"], np.float64), _transition_sd(truth, p["noise_scale"])
        K = P.shape[0]
        y = _leaky_inv(z[:, L:])
        rest = 0.0
        for l in range(2, L + 1):
            rest = rest + _leaky(z[:, L - l:T - l] @ np.asarray(p["B"], np.float64)[l - 2])
        mean = _leaky(np.einsum("bti,kij->btkj", z[:, L - 1:T - 1], P)) + np.expand_dims(
            rest, 2)
        ll = -0.5 * (((y[:, :, None] - mean) / sd) ** 2).sum(-1)
    elif truth.generator == "ctrlns":
        sd = _transition_sd(truth, p["noise_sd"])
        K = np.asarray(p["w1"]).shape[0]
        prev = z[:, :-1]
        ll = np.stack([-0.5 * (((z[:, 1:] - _ctrlns_mean(p, prev, k)) / sd) ** 2).sum(-1)
                       for k in range(K)], -1)
    else:
        raise InputError(f"The {truth.generator} generator has no hidden regimes (its domains "
                         "are observed).")
    return np.concatenate([np.zeros((B, L, K)), ll], axis=1)


def regime_prior(truth: PublishedTruth):
    """The true regime process as ``(log_init (K,), log_step_trans (T-1, K, K))``."""
    if truth.step_trans is None:
        raise InputError(f"The {truth.generator} generator has no hidden regimes.")
    with np.errstate(divide="ignore"):
        return (np.log(np.asarray(truth.init_probs, np.float64)),
                np.log(np.asarray(truth.step_trans, np.float64)))


def forward_backward(log_init, log_trans, log_lik):
    """Posterior marginals of a chain with time-varying transitions.

    Parameters
    ----------
    log_init : ``(K,)``
    log_trans : ``(T - 1, K, K)``
        ``log p(r_{t+1} = j | r_t = i)`` at ``[t, i, j]``.
    log_lik : ``(B, T, K)``
        ``log p(observations at t | r_t = k)``.

    Returns
    -------
    probs : ``(B, T, K)`` posterior marginals ``p(r_t | all observations)``.
    log_evidence : ``(B,)``

    Examples
    --------
    >>> lt = np.log(np.full((1, 2, 2), 0.5))
    >>> probs, _ = forward_backward(np.log([0.5, 0.5]), lt, np.zeros((1, 2, 2)))
    >>> probs.round(2).tolist()
    [[[0.5, 0.5], [0.5, 0.5]]]
    """
    log_lik = np.asarray(log_lik, np.float64)
    B, T, K = log_lik.shape
    la = np.zeros((B, T, K))
    la[:, 0] = log_init + log_lik[:, 0]
    for t in range(1, T):
        la[:, t] = logsumexp(la[:, t - 1, :, None] + log_trans[t - 1], 1) + log_lik[:, t]
    lb = np.zeros((B, T, K))
    for t in range(T - 2, -1, -1):
        lb[:, t] = logsumexp(log_trans[t] + (log_lik[:, t + 1] + lb[:, t + 1])[:, None, :], 2)
    log_z = logsumexp(la[:, -1], 1)
    post = la + lb - log_z[:, None, None]
    return np.exp(post), log_z


def regime_posterior(truth: PublishedTruth, z=None, *, pool_groups: bool = False):
    """The true model's regime posterior ``p(r_t | z_{1:T})`` ``(B, T, K)``.

    Forward-backward under the true transition densities and the true regime process (for
    CtrlNS the segment rules, resets included). ``pool_groups`` uses what the generator
    shares: the ``group_size`` sequences of a CtrlNS group have one path, so their
    likelihoods add (a per-sequence model cannot know the groups; the default scores each
    sequence alone).
    """
    ll = transition_log_likelihoods(truth, z)
    log_init, log_trans = regime_prior(truth)
    g = int(truth.group_size)
    if pool_groups and g > 1:
        B, T, K = ll.shape
        pooled, _ = forward_backward(log_init, log_trans, ll.reshape(B // g, g, T, K).sum(1))
        return np.repeat(pooled, g, axis=0)
    return forward_backward(log_init, log_trans, ll)[0]


def oracle_regime_accuracy(truth: PublishedTruth, z=None, *, from_step: int = 0,
                           pool_groups: bool = False) -> float:
    """Accuracy of the true model's most probable regime at each step (the posterior
    marginals' argmax, which maximises the expected share of correct steps): the ceiling any
    fitted model reaches on these sequences. ``from_step`` scores steps ``t >= from_step``
    only (``truth.lag``: the steps a regime drives)."""
    post = regime_posterior(truth, z, pool_groups=pool_groups)
    pred = post.argmax(-1)[:, from_step:]
    return float((pred == np.asarray(truth.regimes)[:, from_step:]).mean())


# --------------------------------------------------------------------------- files

_ARRAYS = ("regimes", "labels", "trans_matrix", "init_probs", "step_trans")


def published_truth_to_arrays(truth: PublishedTruth) -> dict:
    """Flatten a :class:`PublishedTruth` (without ``z``) into ``truth_*`` arrays: the
    generator's name under ``truth_published``, its parameters as ``truth_param_*``."""
    out = {"truth_published": np.array(truth.generator), "truth_lag": np.array(truth.lag),
           "truth_group_size": np.array(truth.group_size), **mixing_to_arrays(truth.mixing)}
    out.update({f"truth_param_{k}": np.asarray(v) for k, v in truth.params.items()})
    out.update({f"truth_{k}": np.asarray(getattr(truth, k)) for k in _ARRAYS
                if getattr(truth, k) is not None})
    return out


def published_truth_from_arrays(arrays, z) -> PublishedTruth:
    """Inverse of :func:`published_truth_to_arrays`."""
    params = {k[len("truth_param_"):]: np.asarray(arrays[k]) for k in arrays
              if k.startswith("truth_param_")}
    return PublishedTruth(
        z=z, mixing=mixing_from_arrays(arrays), generator=str(arrays["truth_published"]),
        lag=int(arrays["truth_lag"]), params=params,
        group_size=int(arrays.get("truth_group_size", 1)),
        **{k: np.asarray(arrays[f"truth_{k}"]) for k in _ARRAYS if f"truth_{k}" in arrays})
