"""Sequence simulators with known ground truth: segments, latent dynamics, hidden regimes.

Every simulator returns ``(Dataset, SequenceTruth)`` with ``x`` of shape ``(B, T, d)`` (``B``
sequences of ``T`` steps), ``z`` of shape ``(B, T, n)`` and, when the auxiliary variable is
observed, integer labels ``u`` of shape ``(B, T)``. The latents are mixed step by step by the
foundation's random invertible MLP (:mod:`ppl_ident.data.mixing`). One seed fixes every random
choice, so the same seed and settings give bit-identical data.

All three share one transition family, for regime or domain ``k`` at step ``t``::

    z_t,i = f_k,i(z_{t-1}, ..., z_{t-L}) + loc[k, i] + scale[k, i] * s_k,i(z_past) * eps_t,i,
    eps ~ N(0, 1),   s_k,i = exp(scale_gain * tanh(z_past @ v_k + c_k)_i)  (1 when scale_gain = 0)

``scale_gain > 0`` (dynamics and regimes) makes the transition *heteroscedastic*: the noise
scale moves with the past. With a noise scale that changes only with ``k``, a Gaussian
transition's second derivatives vary with ``k`` alone, so the seed's condition with the past as
auxiliary variable has rank at most ``n + min(n, K - 1)``; a past-dependent scale makes them
vary with the past too, and the rank can reach ``2n`` for any ``K`` (TDRL's condition).

Options for the published temporal benchmarks' transition kinds (TDRL, LEAP, NCTRL: 8 latents,
lag 2, tens of thousands of sequences of 3-6 steps); all off by default, and off they draw no
extra random numbers, so the default data stay bit-identical:

* ``transition="post_nonlinear"``: the noise enters *inside* a component-wise invertible
  nonlinearity, ``z_t,i = g(f_k,i(z_past) + loc[k, i] + scale[k, i] * s_k,i * eps_t,i)`` with
  ``g`` the leaky ReLU of negative slope ``pnl_slope`` (0.2, as LEAP's generators), so the
  transition density is no longer Gaussian around a mean:
  ``log p(z_t,i | past) = log p_eps(e_i) - log(scale * s) - log g'(g^{-1}(z_t,i))``.
* ``domain_transitions=True`` (dynamics): every domain has its own transition MLP ``f_k``,
  so the transition's *function* changes with the domain, not only its noise.
* ``noise="changing"``: the noise *distribution* changes with the domain or regime: ``k`` draws
  unit-variance Gaussian, Laplace or logistic noise (``k mod 3``; the family of each row is
  ``truth.noise_families``).
* Short sequences: ``n_sequences=20_000, length=4`` (and ``burn_in`` steps before the kept
  window, so the first kept steps are not a special distribution) is an ordinary setting.
* ``style="published"`` (dynamics and regimes): the published generators' shape instead of
  the package's (:func:`_published_parts`): the first ``L`` kept steps are independent
  standard normals (no burn-in), ``f_k(past) = sum_l tanh(z_{t-l} W_l)``, noise scale 0.1
  (with ``noise="changing"``: one scale per row in [0.05, 0.15]) and no location shift, and
  a two-layer leaky-ReLU mixing with orthogonal matrices. The package's own style is harder:
  a three-layer mixing of condition number up to 25, noise scales in [0.1, 1] with shifted
  locations, and windows cut from a stationary chain.

* ``simulate_segments``: no dynamics (``f = 0``, ``L = 0``); ``k`` is the segment of the long
  series the step falls in (time-contrastive learning's setting).
* ``simulate_dynamics``: ``f`` is one random MLP of lag ``L``; ``k`` is an observed domain
  (per sequence, or switching every ``domain_length`` steps) that changes the noise scales.
* ``simulate_regimes``: ``k = u_t`` follows a sticky Markov chain over ``K`` regimes, each with
  its own MLP and noise scales; ``u`` is hidden (absent from the file) and kept in the truth.

References
----------
Hyvarinen & Morioka (2016), "Unsupervised feature extraction by time-contrastive learning and
nonlinear ICA", NeurIPS. Yao, Chen & Zhang (2022), "Temporally disentangled representation
learning" (TDRL), NeurIPS. Song et al. (2023), "Temporally disentangled representation
learning under unknown nonstationarity" (NCTRL), NeurIPS.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.stats as jstats
import numpy as np

from ppl_ident.data.mixing import (Mixing, _well_conditioned, mix, mixing_from_arrays,
                                   mixing_to_arrays, random_mixing, unmix)
from ppl_ident.data.simulate import Dataset
from ppl_ident.errors import InputError, warn_identifiability

__all__ = [
    "GENERATORS",
    "SequenceTruth",
    "SequenceConfig",
    "check_config",
    "simulate_segments",
    "simulate_dynamics",
    "simulate_regimes",
    "simulate_sequences",
    "transition_mean",
    "transition_scale_factor",
    "noise_logpdf",
    "NOISE_FAMILIES",
    "TRANSITION_KINDS",
    "NOISE_KINDS",
    "sequence_truth_to_arrays",
    "sequence_truth_from_arrays",
]

GENERATORS = ("segments", "dynamics", "regimes")


class SequenceTruth(NamedTuple):
    """Ground truth of a sequence simulator (a pytree of arrays plus static fields).

    Attributes
    ----------
    z : ``(B, T, n)`` true latents.
    mixing : Mixing
    kind : str
        ``"segments"``, ``"dynamics"`` or ``"regimes"``.
    lag : int
        Number of past steps the transition reads (0 for segments).
    loc, scale : ``(K, n)``
        Per-segment / per-domain / per-regime location shift and noise scale.
    trans_w1 : ``(K, L * n, H)`` or None
        Transition MLP, one per regime (``K = 1`` row shared by all domains for dynamics):
        ``f_k(h) = tanh(h @ w1[k] + b1[k]) @ w2[k] + b2[k]`` with ``h`` the past ``L`` steps,
        most recent first, flattened.
    trans_b1 : ``(K, H)``, trans_w2 : ``(K, H, n)``, trans_b2 : ``(K, n)`` or None
    trans_v : ``(K, L * n, n)``, trans_c : ``(K, n)`` or None
        Heteroscedastic transitions: the noise scale is multiplied by
        ``exp(scale_gain * tanh(h @ v[k] + c[k]))``. None: homoscedastic in the past.
    scale_gain : float
    pnl_slope : float or None
        Post-nonlinear transitions: the negative-side slope of the leaky ReLU ``g`` that the
        noisy pre-activation goes through (None: additive transitions).
    noise_families : int ``(K,)`` or None
        Per row, the noise family (:data:`NOISE_FAMILIES` index, unit variance); None:
        Gaussian everywhere.
    regimes : int ``(B, T)`` or None
        The hidden regime path (``simulate_regimes``).
    trans_matrix : ``(K, K)`` or None
        Regime transition matrix, rows sum to 1.
    init_probs : ``(K,)`` or None
    noise_std : float
        Observation noise added after mixing.
    """

    z: np.ndarray
    mixing: Mixing
    kind: str
    lag: int
    loc: np.ndarray
    scale: np.ndarray
    trans_w1: np.ndarray | None = None
    trans_b1: np.ndarray | None = None
    trans_w2: np.ndarray | None = None
    trans_b2: np.ndarray | None = None
    regimes: np.ndarray | None = None
    trans_matrix: np.ndarray | None = None
    init_probs: np.ndarray | None = None
    noise_std: float = 0.0
    trans_v: np.ndarray | None = None
    trans_c: np.ndarray | None = None
    scale_gain: float = 0.0
    pnl_slope: float | None = None
    noise_families: np.ndarray | None = None

    def g(self, z):
        """The true mixing ``x = g(z)`` (noise-free)."""
        return mix(self.mixing, z)

    def g_inv(self, x):
        """The true unmixing ``z = g^{-1}(x)``."""
        return unmix(self.mixing, x)

    def log_transition(self, z_t, z_prev, k):
        """True ``log p(z_t | z_{t-1..t-L}, k)`` summed over latents.

        Parameters
        ----------
        z_t : ``(..., n)``
        z_prev : ``(..., L, n)`` past steps, most recent first (ignored when ``lag == 0``).
        k : int or int array broadcastable with ``z_t[..., 0]``
            Segment, domain or regime label.
        """
        loc = jnp.asarray(self.loc)[k]
        scale = jnp.asarray(self.scale)[k]
        # one MLP shared by every domain, unless the domains have their own (one row each)
        shared = self.trans_w1 is not None and np.shape(self.trans_w1)[0] == 1
        row = 0 if shared else k
        if self.trans_w1 is not None:
            loc = loc + transition_mean(self, z_prev, row)
        if self.trans_v is not None:
            scale = scale * transition_scale_factor(self, z_prev, row)
        z_t = jnp.asarray(z_t)
        log_jac = 0.0
        if self.pnl_slope is not None:
            # z = g(y): score y = g^{-1}(z) and add log |dy/dz| = -log g'(y)
            neg = z_t < 0
            z_t = jnp.where(neg, z_t / self.pnl_slope, z_t)
            log_jac = jnp.where(neg, -jnp.log(self.pnl_slope), 0.0)
        if self.noise_families is None:
            ll = jstats.norm.logpdf(z_t, loc, scale)
        else:
            fam = jnp.asarray(self.noise_families)[k]
            ll = noise_logpdf((z_t - loc) / scale, jnp.expand_dims(fam, -1)) - jnp.log(scale)
        return (ll + log_jac).sum(-1)


#: The noise families of ``noise="changing"``, each scaled to unit variance; row ``k`` of the
#: transition uses family ``k mod 3``.
NOISE_FAMILIES = ("gaussian", "laplace", "logistic")
_LAPLACE_B = 1.0 / np.sqrt(2.0)
_LOGISTIC_S = np.sqrt(3.0) / np.pi


def noise_logpdf(e, family):
    """Log-density of unit-variance noise ``e`` of family ``family`` (an index into
    :data:`NOISE_FAMILIES`, broadcast with ``e``)."""
    gauss = jstats.norm.logpdf(e)
    laplace = -jnp.abs(e) / _LAPLACE_B - jnp.log(2 * _LAPLACE_B)
    a = jnp.abs(e) / _LOGISTIC_S  # symmetric: the stable form of the logistic density
    logistic = -a - 2.0 * jnp.log1p(jnp.exp(-a)) - jnp.log(_LOGISTIC_S)
    return jnp.where(family == 0, gauss, jnp.where(family == 1, laplace, logistic))


def _draw_noise(rng, families, k, shape):
    """Unit-variance noise ``(B, n)``: row ``b`` of family ``families[k[b]]``."""
    if families is None:
        return rng.standard_normal(shape)
    fam = families[k][:, None]
    g = rng.standard_normal(shape)
    lap = rng.laplace(0.0, _LAPLACE_B, size=shape)
    logi = rng.logistic(0.0, _LOGISTIC_S, size=shape)
    return np.where(fam == 0, g, np.where(fam == 1, lap, logi))


def transition_scale_factor(truth: SequenceTruth, z_prev, k=0):
    """The true noise-scale factor ``exp(scale_gain * tanh(h @ v_k + c_k))`` at ``z_prev``
    ``(..., L, n)`` -> ``(..., n)`` (ones for homoscedastic transitions)."""
    if truth.trans_v is None:
        return jnp.ones(jnp.shape(z_prev)[:-2] + (jnp.shape(z_prev)[-1],))
    h = jnp.reshape(jnp.asarray(z_prev), jnp.shape(z_prev)[:-2] + (-1,))
    v, c = jnp.asarray(truth.trans_v)[k], jnp.asarray(truth.trans_c)[k]
    return jnp.exp(truth.scale_gain * jnp.tanh(jnp.einsum("...i,...ij->...j", h, v) + c))


def transition_mean(truth: SequenceTruth, z_prev, k=0):
    """The true transition MLP ``f_k`` at ``z_prev`` ``(..., L, n)`` -> ``(..., n)``."""
    h = jnp.reshape(jnp.asarray(z_prev), jnp.shape(z_prev)[:-2] + (-1,))
    w1, b1 = jnp.asarray(truth.trans_w1)[k], jnp.asarray(truth.trans_b1)[k]
    w2, b2 = jnp.asarray(truth.trans_w2)[k], jnp.asarray(truth.trans_b2)[k]
    hid = jnp.tanh(jnp.einsum("...i,...ij->...j", h, w1) + b1)
    return jnp.einsum("...i,...ij->...j", hid, w2) + b2


class SequenceConfig(NamedTuple):
    """Settings of the sequence simulators (each uses the fields that apply to it)."""

    n_latent: int = 4
    data_dim: int = 4
    n_sequences: int | None = None  # None: 10 long series for segments, 200 otherwise
    length: int = 50
    n_layers: int = 3
    activation: str = "leaky_relu"
    slope: float = 0.2
    max_cond: float = 25.0
    noise_std: float = 0.0
    # segments
    n_segments: int = 10
    segment_length: int = 50
    loc_range: float = 1.0
    # dynamics and regimes
    lag: int = 1
    hidden: int = 16
    transition_gain: float = 1.0
    scale_gain: float = 0.0  # > 0: heteroscedastic transitions (noise scale moves with the past)
    n_domains: int = 5
    domain_length: int | None = None
    scale_range: tuple = (0.1, 1.0)
    burn_in: int = 20
    # regimes
    n_regimes: int = 3
    stay_prob: float = 0.95
    # the published benchmarks' transition kinds (see the module docstring)
    transition: str = "additive"  # or "post_nonlinear"
    pnl_slope: float = 0.2
    domain_transitions: bool = False  # dynamics: one transition MLP per domain
    noise: str = "gaussian"  # or "changing": the noise family changes with the domain/regime
    style: str = "package"  # or "published": the published generators' shape (module docstring)


#: Values of :attr:`SequenceConfig.transition` and :attr:`SequenceConfig.noise`.
TRANSITION_KINDS = ("additive", "post_nonlinear")
NOISE_KINDS = ("gaussian", "changing")
#: Values of :attr:`SequenceConfig.style`.
STYLES = ("package", "published")


def check_config(c: SequenceConfig, kind: str) -> SequenceConfig:
    """``c`` with ``n_sequences`` resolved for the simulator ``kind`` (``"segments"``,
    ``"dynamics"``, ``"regimes"``): 10 long series of segments, else 200; raises InputError,
    naming the fix, for settings that simulator cannot take."""
    if c.n_sequences is None:
        c = c._replace(n_sequences=10 if kind == "segments" else 200)
    ints = dict(n_latent=c.n_latent, data_dim=c.data_dim, n_sequences=c.n_sequences,
                n_layers=c.n_layers, hidden=c.hidden)
    if kind == "segments":
        ints.update(n_segments=c.n_segments, segment_length=c.segment_length)
    else:
        ints.update(length=c.length, lag=c.lag)
    if kind == "dynamics":
        ints.update(n_domains=c.n_domains)
    if kind == "regimes":
        ints.update(n_regimes=c.n_regimes)
    for name, value in ints.items():
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    if kind == "regimes" and c.n_regimes < 2:
        raise InputError(
            f"n_regimes={c.n_regimes}: a hidden-regime model switches between K >= 2 regimes "
            "(one regime is a stationary process: simulate it with --generator dynamics "
            "--domains 1); choose --regimes 2 or more.")
    if c.data_dim < c.n_latent:
        raise InputError(
            f"data_dim={c.data_dim} is smaller than n_latent={c.n_latent}: the mixing must be "
            "injective, so choose data_dim >= n_latent."
        )
    if kind != "segments" and c.length <= c.lag:
        raise InputError(f"length={c.length} must exceed lag={c.lag}; use longer sequences.")
    if c.domain_length is not None and (int(c.domain_length) != c.domain_length
                                        or c.domain_length < 1):
        raise InputError(f"domain_length must be a positive integer or None, got "
                         f"{c.domain_length!r}.")
    lo, hi = c.scale_range
    if not 0 < lo <= hi:
        raise InputError(f"scale_range must satisfy 0 < low <= high, got {c.scale_range}.")
    if not 0 <= c.stay_prob < 1:
        raise InputError(f"stay_prob must be in [0, 1), got {c.stay_prob}.")
    if (c.noise_std < 0 or c.loc_range < 0 or c.burn_in < 0 or c.transition_gain < 0
            or not 0 <= c.scale_gain <= 5):
        raise InputError("noise_std, loc_range, burn_in and transition_gain must be >= 0, and "
                         f"scale_gain in [0, 5] (got {c.scale_gain!r}).")
    if c.transition not in TRANSITION_KINDS:
        raise InputError(f"transition must be one of {', '.join(TRANSITION_KINDS)}, got "
                         f"{c.transition!r}.")
    if c.noise not in NOISE_KINDS:
        raise InputError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {c.noise!r}.")
    if not 0 < c.pnl_slope <= 1:
        raise InputError(f"pnl_slope must be in (0, 1] (the leaky ReLU stays invertible), got "
                         f"{c.pnl_slope!r}.")
    if c.style not in STYLES:
        raise InputError(f"style must be one of {', '.join(STYLES)}, got {c.style!r}.")
    if kind == "segments" and (c.transition != "additive" or c.noise != "gaussian"
                               or c.domain_transitions or c.style != "package"):
        raise InputError("The segments generator has no transition: transition, noise, style "
                         "and domain_transitions apply to --generator dynamics or regimes.")
    if kind == "regimes" and c.domain_transitions:
        raise InputError("Every hidden regime already has its own transition; "
                         "domain_transitions applies to --generator dynamics.")
    return c


def _random_transitions(rng, K, lag, n, hidden, gain):
    """``K`` random tanh MLPs of the flattened past; outputs of order ``gain``."""
    fan_in = lag * n
    w1 = rng.standard_normal((K, fan_in, hidden)) * (2.0 / np.sqrt(fan_in))
    b1 = rng.uniform(-1.0, 1.0, size=(K, hidden))
    w2 = rng.standard_normal((K, hidden, n)) * (gain * np.sqrt(2.0 / hidden))
    b2 = np.zeros((K, n))
    return tuple(a.astype(np.float32) for a in (w1, b1, w2, b2))


def _orthogonal(rng, n):
    """A random orthogonal ``(n, n)`` matrix (Haar: the QR factor of a Gaussian matrix with
    the signs of ``R``'s diagonal moved into ``Q``)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _published_parts(rng, c, rows: int, changing_edges: bool):
    """Mixing, transitions, ``loc``, ``scale`` and the start of ``style="published"``.

    The shape of the published temporal generators (LEAP, TDRL, NCTRL; the *form* described
    in their papers and data scripts, written here afresh): the first ``L`` steps are
    independent standard normals (standardised over the sequences), the transition mean is
    ``sum_l tanh(z_{t-l} W_l)`` with random column-normalised well-conditioned ``W_l`` (an
    instance of the package's one-hidden-layer tanh MLP: block-diagonal first layer, stacked
    identities as second), the noise scale is 0.1 with no location shift, and the mixing is
    two leaky-ReLU layers with orthogonal matrices. ``rows`` transitions are drawn: with
    ``changing_edges`` (domains with their own transition, as the published changing-dynamics
    data) they share ``W`` except the two entries ``(1, 2)`` and ``(3, 4)`` of ``W_1``, drawn
    uniform in [-1, 1] per row; otherwise every row has its own ``W`` (regimes)."""
    n, L = c.n_latent, c.lag
    weights = (_orthogonal(rng, n), _orthogonal(rng, n))
    projection = None
    if c.data_dim > n:
        projection = jnp.asarray(_orthogonal(rng, c.data_dim)[:n], jnp.float32)
    mixing = Mixing(tuple(jnp.asarray(w, jnp.float32) for w in weights), projection,
                    "leaky_relu", 0.2)
    base = [_well_conditioned(rng, n, None) for _ in range(L)]
    w1 = np.zeros((rows, L * n, L * n))
    for k in range(rows):
        ws = base if changing_edges else [_well_conditioned(rng, n, None) for _ in range(L)]
        ws = [w.copy() for w in ws]
        if changing_edges:
            for i, j in ((1, 2), (3, 4)):
                if max(i, j) < n:
                    ws[0][i, j] = rng.uniform(-1.0, 1.0)
        for l, w in enumerate(ws):
            w1[k, l * n:(l + 1) * n, l * n:(l + 1) * n] = w
    w2 = np.broadcast_to(np.tile(np.eye(n), (L, 1)), (rows, L * n, n))
    weights = tuple(a.astype(np.float32) for a in (w1, np.zeros((rows, L * n)), w2,
                                                   np.zeros((rows, n))))
    start = rng.standard_normal((c.n_sequences, L, n))
    start = (start - start.mean(0)) / start.std(0)
    return mixing, weights, start


def _published_scale(rng, c, rows: int):
    """The published generators' noise scale: 0.1 everywhere, or with ``noise="changing"`` one
    scale per row drawn uniform in [0.05, 0.15] (their nonstationary-noise data use 0.05,
    0.1 and 0.15), shared by the latents."""
    if c.noise != "changing":
        return np.full((rows, c.n_latent), 0.1)
    return np.repeat(rng.uniform(0.05, 0.15, size=(rows, 1)), c.n_latent, axis=1)


def _random_scale_maps(rng, K, lag, n, gain):
    """``K`` random maps of the past for heteroscedastic noise (None when ``gain == 0``, so
    the default draws no extra random numbers)."""
    if gain == 0:
        return None
    fan_in = lag * n
    v = rng.standard_normal((K, fan_in, n)) / np.sqrt(fan_in)
    c = rng.uniform(-0.5, 0.5, size=(K, n))
    return v.astype(np.float32), c.astype(np.float32), float(gain)


def _mlp_np(h, w1, b1, w2, b2):
    hid = np.tanh(np.einsum("bi,bij->bj", h, w1) + b1)
    return np.einsum("bj,bjk->bk", hid, w2) + b2


def _roll_out(rng, labels, lag, loc, scale, weights, burn_in, scale_maps=None,
              pnl_slope=None, families=None, start=None):
    """Simulate ``z`` ``(B, T, n)`` step by step; ``labels`` ``(B, burn_in + T)`` pick the row of
    ``loc``/``scale`` and (for regimes) of the MLP. A single MLP row is shared by all labels.
    ``scale_maps = (v, c, gain)`` multiplies the noise scale by ``exp(gain * tanh(h v + c))``;
    ``pnl_slope`` puts the noisy step through a leaky ReLU; ``families`` ``(K,)`` picks each
    row's noise family (None: Gaussian). ``start`` ``(B, lag, n)``, oldest first: the first
    ``lag`` kept steps are these draws and the roll-out begins after them (no burn-in)."""
    B, total = labels.shape
    n = loc.shape[1]
    w1, b1, w2, b2 = weights
    v, c, gain = scale_maps if scale_maps is not None else (None, None, 0.0)
    shared = w1.shape[0] == 1
    z = np.zeros((B, total, n))
    past = rng.standard_normal((B, lag, n))  # most recent first
    first = 0
    if start is not None:
        z[:, :lag], past, first = start, start[:, ::-1], lag
    for t in range(first, total):
        k = labels[:, t]
        row = np.zeros_like(k) if shared else k
        h = past.reshape(B, -1)
        mean = _mlp_np(h, w1[row], b1[row], w2[row], b2[row]) + loc[k]
        sd = scale[k]
        if v is not None:
            sd = sd * np.exp(gain * np.tanh(np.einsum("bi,bij->bj", h, v[row]) + c[row]))
        z[:, t] = mean + sd * _draw_noise(rng, families, k, (B, n))
        if pnl_slope is not None:
            z[:, t] = np.where(z[:, t] < 0, pnl_slope * z[:, t], z[:, t])
        past = np.concatenate([z[:, t][:, None], past[:, :-1]], axis=1)
    return z[:, burn_in:]


def _kinds(c, K):
    """The post-nonlinear slope (or None) and the per-row noise families (or None) of ``c``
    for ``K`` rows: nothing random, so the default draws stay as they were."""
    slope = float(c.pnl_slope) if c.transition == "post_nonlinear" else None
    fams = (np.arange(K) % len(NOISE_FAMILIES)).astype(np.int32) if c.noise == "changing" \
        else None
    return slope, fams


def _kinds_truth(slope, fams):
    out = {}
    if slope is not None:
        out["pnl_slope"] = slope
    if fams is not None:
        out["noise_families"] = fams
    return out


def _finish(rng, c, z, u, truth_kw, kind):
    mixing = truth_kw.pop("mixing")
    x = np.asarray(jax.jit(mix)(mixing, jnp.asarray(z, jnp.float32)))
    if c.noise_std > 0:
        x = x + c.noise_std * rng.standard_normal(x.shape)
    z = z.astype(np.float32)
    truth = SequenceTruth(z=z, mixing=mixing, kind=kind, noise_std=float(c.noise_std),
                          **truth_kw)
    return Dataset(x.astype(np.float32), u, z), truth


def simulate_segments(seed: int = 0, config: SequenceConfig | None = None, **overrides):
    """Nonstationary segments: each segment of a long series has its own factorial Gaussian.

    ``z_t ~ N(loc[s], scale[s])`` independently over time, where ``s = t // segment_length``
    is the segment; ``u[b, t] = s`` (the time index as auxiliary variable). Every sequence
    runs through the same segments.

    Parameters
    ----------
    seed : int
    config : SequenceConfig, optional
        Uses ``n_latent, data_dim, n_sequences, n_segments, segment_length, loc_range,
        scale_range`` and the mixing fields; keyword ``overrides`` replace single fields.

    Returns
    -------
    dataset : Dataset
        ``x`` ``(B, S * segment_length, d)``, ``u`` int32 ``(B, T)``, ``z``.
    truth : SequenceTruth
        ``kind="segments"``, ``lag=0``, ``loc``/``scale`` ``(S, n)``.

    Examples
    --------
    >>> data, truth = simulate_segments(0, n_sequences=2, n_segments=3, segment_length=4,
    ...                                 n_latent=2, data_dim=2)
    >>> data.x.shape, data.u[0].tolist()
    ((2, 12, 2), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    """
    c = (config or SequenceConfig())._replace(**overrides)
    c = check_config(c, "segments")
    rng = np.random.default_rng(seed)
    n, S = c.n_latent, c.n_segments
    mixing = random_mixing(rng, n, c.data_dim, c.n_layers, c.activation, c.slope, c.max_cond)
    scale = rng.uniform(*c.scale_range, size=(S, n))
    loc = rng.uniform(-c.loc_range, c.loc_range, size=(S, n))
    T = S * c.segment_length
    u = np.broadcast_to(np.repeat(np.arange(S, dtype=np.int32), c.segment_length),
                        (c.n_sequences, T)).copy()
    z = loc[u] + scale[u] * rng.standard_normal((c.n_sequences, T, n))
    if S < n + 1:
        warn_identifiability(
            f"Only {S} segments for {n} latents: the latent distribution must vary across at "
            f"least n+1={n + 1} segments (2n+1={2 * n + 1} for sufficient variability).")
    return _finish(rng, c, z, u, dict(mixing=mixing, lag=0, loc=loc.astype(np.float32),
                                      scale=scale.astype(np.float32)), "segments")


def simulate_dynamics(seed: int = 0, config: SequenceConfig | None = None, **overrides):
    """Nonlinear latent dynamics with domain-dependent noise scales.

    ``z_t,i = f_i(z_{t-1}, ..., z_{t-L}) + loc[u_t, i] + scale[u_t, i] * eps_t,i`` with one
    random tanh MLP ``f`` of lag ``L``, ``eps ~ N(0, 1)``, and per-domain noise locations
    (uniform in ``[-loc_range, loc_range]``; 0 gives scale changes only) and scales. The
    domain ``u`` is fixed per sequence
    (``u[b] = b mod U``) or, with ``domain_length``, switches every ``domain_length`` steps.
    The first steps are drawn after ``burn_in`` steps from a standard-normal start, so each
    sequence starts near the chain's stationary regime.

    Parameters
    ----------
    seed : int
    config : SequenceConfig, optional
        Uses ``n_latent, data_dim, n_sequences, length, lag, hidden, transition_gain,
        n_domains, domain_length, loc_range, scale_range, burn_in`` and the mixing fields.

    Returns
    -------
    dataset : Dataset
        ``x`` ``(B, T, d)``, ``u`` int32 ``(B, T)``, ``z`` ``(B, T, n)``.
    truth : SequenceTruth
        ``kind="dynamics"``; ``loc``, ``scale`` ``(U, n)``; one transition MLP
        (``trans_w1[0]``).

    Examples
    --------
    >>> data, truth = simulate_dynamics(0, n_sequences=3, length=5, n_latent=2, data_dim=2)
    >>> data.x.shape, data.u.shape, truth.scale.shape
    ((3, 5, 2), (3, 5), (5, 2))
    """
    c = (config or SequenceConfig())._replace(**overrides)
    c = check_config(c, "dynamics")
    rng = np.random.default_rng(seed)
    n, U, B = c.n_latent, c.n_domains, c.n_sequences
    start = None
    if c.style == "published":
        c = c._replace(burn_in=0)
        mixing, weights, start = _published_parts(rng, c, U if c.domain_transitions else 1,
                                                  changing_edges=True)
        scale, loc = _published_scale(rng, c, U), np.zeros((U, n))
    else:
        mixing = random_mixing(rng, n, c.data_dim, c.n_layers, c.activation, c.slope,
                               c.max_cond)
        weights = _random_transitions(rng, U if c.domain_transitions else 1, c.lag, n,
                                      c.hidden, c.transition_gain)
        scale = rng.uniform(*c.scale_range, size=(U, n))
        # Shifting the location with the domain as well as the scale is what gives 2n
        # independent variations: with scale changes alone the 2n-vectors of the
        # sufficient-variability condition stay in an n-dimensional subspace at every point.
        loc = rng.uniform(-c.loc_range, c.loc_range, size=(U, n))
    total = c.burn_in + c.length
    t_idx = np.arange(total) - c.burn_in
    if c.domain_length is None:
        labels = np.broadcast_to((np.arange(B) % U)[:, None], (B, total))
    else:
        labels = (np.arange(B)[:, None] + np.maximum(t_idx, 0)[None] // c.domain_length) % U
    labels = labels.astype(np.int32)
    maps = _random_scale_maps(rng, U if c.domain_transitions else 1, c.lag, n, c.scale_gain)
    slope, fams = _kinds(c, U)
    z = _roll_out(rng, labels, c.lag, loc, scale, weights, c.burn_in, maps, slope, fams, start)
    w1, b1, w2, b2 = weights
    return _finish(rng, c, z, labels[:, c.burn_in:].copy(), dict(
        mixing=mixing, lag=c.lag, loc=loc.astype(np.float32), scale=scale.astype(np.float32),
        trans_w1=w1, trans_b1=b1, trans_w2=w2, trans_b2=b2, **_maps_truth(maps),
        **_kinds_truth(slope, fams)), "dynamics")


def simulate_regimes(seed: int = 0, config: SequenceConfig | None = None, **overrides):
    """Hidden regimes: a sticky Markov chain ``u_t`` switches between ``K`` transition laws.

    ``u_1 ~ init_probs``, ``u_t | u_{t-1} ~ trans_matrix[u_{t-1}]`` with ``stay_prob`` on the
    diagonal (the rest spread at random over the other regimes); given ``u_t = k``,
    ``z_t = f_k(z_{t-1..t-L}) + loc[k] + scale[k] * eps_t`` with a random MLP, location and
    noise scales per regime. The regime path is hidden: the dataset has ``u = None``; the
    truth keeps it.

    Parameters
    ----------
    seed : int
    config : SequenceConfig, optional
        Uses ``n_latent, data_dim, n_sequences, length, lag, hidden, transition_gain,
        n_regimes, stay_prob, loc_range, scale_range, burn_in`` and the mixing fields.

    Returns
    -------
    dataset : Dataset
        ``x`` ``(B, T, d)``, ``u=None``, ``z`` ``(B, T, n)``.
    truth : SequenceTruth
        ``kind="regimes"``; ``regimes`` ``(B, T)``, ``trans_matrix`` ``(K, K)``,
        ``init_probs`` ``(K,)``, one MLP and one row of ``scale`` per regime.

    Examples
    --------
    >>> data, truth = simulate_regimes(0, n_sequences=2, length=6, n_latent=2, data_dim=2)
    >>> data.u is None, truth.regimes.shape, truth.trans_matrix.shape
    (True, (2, 6), (3, 3))
    """
    c = (config or SequenceConfig())._replace(**overrides)
    c = check_config(c, "regimes")
    rng = np.random.default_rng(seed)
    n, K, B = c.n_latent, c.n_regimes, c.n_sequences
    start = None
    if c.style == "published":
        c = c._replace(burn_in=0)
        mixing, weights, start = _published_parts(rng, c, K, changing_edges=False)
        scale, loc = _published_scale(rng, c, K), np.zeros((K, n))
    else:
        mixing = random_mixing(rng, n, c.data_dim, c.n_layers, c.activation, c.slope,
                               c.max_cond)
        weights = _random_transitions(rng, K, c.lag, n, c.hidden, c.transition_gain)
        scale = rng.uniform(*c.scale_range, size=(K, n))
        loc = rng.uniform(-c.loc_range, c.loc_range, size=(K, n))
    if K == 1:
        trans = np.ones((1, 1))
    else:
        off = rng.dirichlet(np.ones(K - 1), size=K) * (1.0 - c.stay_prob)
        trans = np.zeros((K, K))
        for k in range(K):
            trans[k, np.arange(K) != k] = off[k]
            trans[k, k] = c.stay_prob
    init = rng.dirichlet(np.full(K, 5.0))
    # The chain starts at t = 0 of the kept window; burn-in steps reuse the first regime.
    path = np.zeros((B, c.length), np.int32)
    path[:, 0] = _categorical(rng, np.broadcast_to(init, (B, K)))
    for t in range(1, c.length):
        path[:, t] = _categorical(rng, trans[path[:, t - 1]])
    labels = np.concatenate([np.repeat(path[:, :1], c.burn_in, axis=1), path], axis=1)
    maps = _random_scale_maps(rng, K, c.lag, n, c.scale_gain)
    slope, fams = _kinds(c, K)
    z = _roll_out(rng, labels, c.lag, loc, scale, weights, c.burn_in, maps, slope, fams, start)
    w1, b1, w2, b2 = weights
    return _finish(rng, c, z, None, dict(
        mixing=mixing, lag=c.lag, loc=loc.astype(np.float32), scale=scale.astype(np.float32),
        trans_w1=w1, trans_b1=b1, trans_w2=w2, trans_b2=b2, regimes=path,
        trans_matrix=trans.astype(np.float32), init_probs=init.astype(np.float32),
        **_maps_truth(maps), **_kinds_truth(slope, fams)), "regimes")


def _maps_truth(maps):
    if maps is None:
        return {}
    v, c, gain = maps
    return dict(trans_v=v, trans_c=c, scale_gain=gain)


def _categorical(rng, probs):
    """One draw per row of ``probs`` ``(B, K)`` by inverse-CDF sampling."""
    cdf = np.cumsum(probs, axis=1)
    r = rng.uniform(size=(probs.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((r > cdf).sum(axis=1), probs.shape[1] - 1).astype(np.int32)


_SIMULATORS = {"segments": simulate_segments, "dynamics": simulate_dynamics,
               "regimes": simulate_regimes}


def simulate_sequences(generator: str, seed: int = 0, config: SequenceConfig | None = None,
                       **overrides):
    """Run the sequence simulator named ``generator`` (one of :data:`GENERATORS`)."""
    if generator not in _SIMULATORS:
        raise InputError(f"Unknown generator {generator!r}; choose one of "
                         f"{', '.join(GENERATORS)}.")
    return _SIMULATORS[generator](seed, config, **overrides)


_OPTIONAL = ("trans_w1", "trans_b1", "trans_w2", "trans_b2", "regimes", "trans_matrix",
             "init_probs", "trans_v", "trans_c", "noise_families")


def sequence_truth_to_arrays(truth: SequenceTruth) -> dict:
    """Flatten a :class:`SequenceTruth` (without ``z``) into ``truth_*`` arrays.

    Keys: ``truth_kind`` (string), ``truth_lag``, ``truth_loc``/``truth_scale`` ``(K, n)``,
    ``truth_trans_w1/b1/w2/b2`` (transition MLPs), ``truth_regimes`` ``(B, T)``,
    ``truth_trans_matrix`` ``(K, K)``, ``truth_init_probs`` ``(K,)``, ``truth_noise_std``,
    ``truth_scale_gain`` and ``truth_trans_v``/``truth_trans_c`` (heteroscedastic noise), and
    the mixing keys shared with i.i.d. files (``truth_mixing_*``).
    """
    out = {
        "truth_kind": np.array(truth.kind),
        "truth_lag": np.array(truth.lag),
        "truth_loc": np.asarray(truth.loc),
        "truth_scale": np.asarray(truth.scale),
        **mixing_to_arrays(truth.mixing),
        "truth_noise_std": np.array(truth.noise_std),
        "truth_scale_gain": np.array(truth.scale_gain),
    }
    for name in _OPTIONAL:
        value = getattr(truth, name)
        if value is not None:
            out[f"truth_{name}"] = np.asarray(value)
    if truth.pnl_slope is not None:
        out["truth_pnl_slope"] = np.array(truth.pnl_slope)
    return out


def sequence_truth_from_arrays(arrays, z) -> SequenceTruth:
    """Inverse of :func:`sequence_truth_to_arrays`."""
    mixing = mixing_from_arrays(arrays)
    optional = {name: np.asarray(arrays[f"truth_{name}"]) for name in _OPTIONAL
                if f"truth_{name}" in arrays}
    return SequenceTruth(
        z=z, mixing=mixing, kind=str(arrays["truth_kind"]), lag=int(arrays["truth_lag"]),
        loc=np.asarray(arrays["truth_loc"], np.float32),
        scale=np.asarray(arrays["truth_scale"], np.float32),
        noise_std=float(arrays.get("truth_noise_std", 0.0)),
        scale_gain=float(arrays.get("truth_scale_gain", 0.0)),
        pnl_slope=float(arrays["truth_pnl_slope"]) if "truth_pnl_slope" in arrays else None,
        **optional,
    )
