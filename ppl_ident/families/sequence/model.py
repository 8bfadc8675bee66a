"""Sequence models: temporal iVAE, hidden-regime model and the stationary control.

Generative model for sequence ``b`` and step ``t`` (lag ``L``, past ``z_{t-1..t-L}``)::

    z_t | z_past, k_t ~ prod_i Normal(f_i(z_past)[k_t] + loc[k_t, i],
                                      scale[k_t, i] * s_i(z_past)[k_t])                (t >= L)
    z_t               ~ prod_i Normal(init_loc[t, i], init_scale[t, i])                 (t < L)
    x_t | z_t         ~ Normal(g(z_t), sigma)                         (MLP decoder g)

* ``tivae``: ``k_t = u_t``, the observed domain / segment label; ``f`` is one learned MLP of
  the past shared by all domains, ``loc`` and ``scale`` are learned per domain.
* ``regime``: ``k_t`` is a hidden Markov chain with learned initial probabilities and
  transition matrix; ``f`` has one output head per regime. The regime path is marginalised
  exactly with :func:`ppl_ident.ops.hmm.hmm_filter`.
* ``stationary``: one ``loc``/``scale`` row for every step (the past still enters through
  ``f``): the control without auxiliary variation.

The noise-scale factor ``s`` is 1 by default; with ``heteroscedastic=True`` the transition
network has a second output head, ``s = exp(3 tanh(h / 3))``, so the noise scale moves with the
past (bounded to a factor e^3 either way). That is the form that lets the past alone satisfy the
sufficient-variability condition (TDRL's; see :mod:`ppl_ident.data.sequences`).

With ``transition="flow"`` the transition is nonparametric instead (the published temporal
models' learned inverse transition, :mod:`ppl_ident.ops.transitions`)::

    eps_t,i = (s_i(z_t,i ; c) - f_i(c)[k_t] - loc[k_t, i]) / (scale[k_t, i] * sigma_i(c)[k_t])
    log p(z_t | c, k_t) = sum_i [log N(eps_t,i; 0, 1) + log s_i'(z_t,i ; c)
                                 - log (scale[k_t, i] * sigma_i(c)[k_t])]

with ``s_i`` a monotone rational-quadratic spline of ``z_t,i`` whose knots, like the mean and
the log scale factor, are outputs of the transition network of the context ``c`` (the past,
and for ``tivae`` the one-hot domain ``u_t``: the transition's *function* may change with the
domain). At a spline equal to the identity it is the heteroscedastic Gaussian transition; the
spline lets the noise enter through a nonlinearity (post-nonlinear transitions) and take any
shape. ``transition="post_nonlinear"`` is the narrower form in between: one learned spline
``s_i`` per regime and latent that does not read the context, and ``s_i(z_t,i)`` Gaussian
around ``f_i(past) + loc`` with the additive model's scale.

With ``initial="conditional"`` (the exact flow's default in a fit) the first ``L`` steps are
not scored: the objective is ``log p(x_{L+1:T} | x_{1:L})``.

With ``flow`` (``d == n``) the observation model is exact instead: ``x_t = h^{-1}(z_t)`` for an
invertible :class:`~ppl_ident.ops.flows.CouplingFlow` ``h``, scored by the change of
variables, and the guide is the point mass ``z_t = h(x_t)``
(:func:`ppl_ident.families.sequence.guide.flow_guide`), so the ELBO is ``log p(x)``.

The latent path is one sample site ``z`` inside the plates ``sequence`` (dim -2, subsampled)
and ``time`` (dim -1) with event dim ``latent``. Its prior is a :class:`MarkovPathPrior`
whose ``log_prob`` returns, for every ``(b, t)``, the conditional ``log p(z_t | z_{<t})`` given
the whole path: computed for all ``t`` at once from the path the guide proposes (no scan),
and summing to the exact joint density. For the regime model the per-step terms are the
forward filter's normalisers, so their sum is the regime-marginalised density. Because the
terms of one sequence are not independent, the ``time`` plate must never be subsampled.

References
----------
Yao, Chen & Zhang (2022), "Temporally disentangled representation learning", NeurIPS.
Song et al. (2023), "Temporally disentangled representation learning under unknown
nonstationarity", NeurIPS. Khemakhem et al. (2020), "Variational autoencoders and nonlinear
ICA: a unifying framework", AISTATS.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.stats as jstats
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.contrib.module import eqx_module

from ppl_ident.families.predict import fitted_module
from ppl_ident.ops.hmm import hmm_filter, hmm_smoother, hmm_viterbi
from ppl_ident.ops.nn import one_hot
from ppl_ident.ops.observation import noise_param, observation_dist, whiten_data
from ppl_ident.ops.transitions import (SPLINE_BINS, TRANSITION_PRIORS, conditional_flow_logpdf,
                                       conditional_flow_sample, spline_raw_size)

__all__ = [
    "SEQUENCE_KINDS",
    "INITIAL_DENSITIES",
    "TRANSITION_PRIORS",
    "transition_outputs",
    "MarkovPathPrior",
    "lagged",
    "temporal_model",
    "tivae",
    "regime",
    "stationary",
    "transition_tables",
    "TransitionTables",
    "transition_log_density",
    "split_transition",
    "regime_posterior",
    "RegimePosterior",
]

SEQUENCE_KINDS = ("tivae", "regime", "stationary")

#: Densities of the first ``L`` steps of a sequence (``initial`` of :func:`temporal_model`).
INITIAL_DENSITIES = ("gaussian", "conditional")


def lagged(z, lag: int):
    """The past of every step: ``(B, T, n)`` -> ``(B, T, L, n)``, most recent first.

    Steps before the start are zeros (the model uses its initial distribution there).
    """
    T = z.shape[1]
    pads = [jnp.pad(z, ((0, 0), (l, 0), (0, 0)))[:, :T] for l in range(1, lag + 1)]
    return jnp.stack(pads, axis=2)


def _apply(module, h):
    """Apply a single-example Equinox module to every row of ``h`` ``(..., k)``."""
    flat = h.reshape(-1, h.shape[-1])
    out = jax.vmap(module)(flat)
    return out.reshape(h.shape[:-1] + out.shape[-1:])


class MarkovPathPrior(dist.Distribution):
    """Prior of a whole latent path with ``log_prob`` split into per-step conditionals.

    Batch shape ``(B, T)``, event shape ``(n,)``. ``log_prob(z)[b, t] = log p(z_t | z_{<t})``
    under a (possibly regime-switching) Gaussian transition, summed over the latents; the
    sum over ``t`` is the exact ``log p(z_{1:T})``.

    Parameters
    ----------
    mean_fn : callable
        ``past (..., L * n [+ C]) -> (..., K, n)``: the transition means of the ``K`` regimes
        (``K = 1`` without regimes), before ``loc`` is added; or a pair ``(mean, log_factor)``
        of such arrays, where ``exp(log_factor)`` multiplies ``scale`` (heteroscedastic
        transitions); or a triple ``(mean, log_factor, raw)`` with spline parameters ``raw``
        ``(..., K, n, 3 bins - 1)``: the flow transition, ``s(z_t) ~ N(mean + loc, scale *
        exp(log_factor))`` for the monotone spline ``s`` of
        :func:`ppl_ident.ops.transitions.rq_spline`.
    loc, scale : ``(B, T, K, n)``
        Per-step, per-regime location shift and noise scale.
    init_loc, init_scale : ``(L, n)``
        Distribution of the first ``L`` steps (the same for every regime).
    lag : int
    log_init, log_trans : ``(K,)``, ``(K, K)`` or None
        Regime chain (log-probabilities). None: ``K`` must be 1 and no chain is used.
    context : ``(B, T, C)`` or None
        Read by ``mean_fn`` after the past (the temporal iVAE's one-hot domain for the flow
        transition).
    score_initial : bool
        Score the first ``L`` steps under ``init_loc``, ``init_scale``; False leaves them
        unscored (``log_prob`` is 0 there), so the sum over ``t`` is the conditional
        ``log p(z_{L+1:T} | z_{1:L})`` (see ``initial`` in :func:`temporal_model`).
    """

    arg_constraints = {}
    support = dist.constraints.real_vector
    reparametrized_params = []

    def __init__(self, mean_fn, loc, scale, init_loc, init_scale, lag, log_init=None,
                 log_trans=None, context=None, score_initial=True, validate_args=None):
        self.mean_fn, self.loc, self.scale = mean_fn, loc, scale
        self.init_loc, self.init_scale, self.lag = init_loc, init_scale, lag
        self.log_init, self.log_trans, self.context = log_init, log_trans, context
        self.score_initial = score_initial
        super().__init__(batch_shape=loc.shape[:2], event_shape=loc.shape[-1:],
                         validate_args=validate_args)

    def _transition(self, past, context=None):
        """Means, scale factors (or None) and spline parameters (or None) of every regime at
        ``past`` ``(..., L * n)``."""
        if context is not None:
            past = jnp.concatenate([past, context], axis=-1)
        out = self.mean_fn(past)
        if isinstance(out, tuple):
            return out[0], jnp.exp(out[1]), (out[2] if len(out) > 2 else None)
        return out, None, None

    def regime_log_liks(self, value):
        """``log p(z_t | z_past, k)`` for every regime: ``(B, T, K)``."""
        B, T, n = value.shape
        L = self.lag
        past = lagged(value, L).reshape(B, T, L * n)
        mean, factor, raw = self._transition(past, self.context)
        scale = self.scale if factor is None else self.scale * factor
        v = jnp.broadcast_to(value[:, :, None, :], mean.shape)
        # the flow transition scores s(z_t) and adds log s'(z_t)
        ll = conditional_flow_logpdf(v, mean + self.loc, scale, raw).sum(-1)
        init = jstats.norm.logpdf(value[:, :L], self.init_loc[: min(L, T)], self.init_scale[
            : min(L, T)]).sum(-1)
        if not self.score_initial:
            init = jnp.zeros_like(init)
        return ll.at[:, :L].set(jnp.broadcast_to(init[..., None], ll[:, :L].shape))

    def log_prob(self, value):
        ll = self.regime_log_liks(value)
        if self.log_trans is None:
            return ll[..., 0]

        return jax.vmap(lambda l: hmm_filter(self.log_init, self.log_trans, l).step_logliks)(ll)

    def sample(self, key, sample_shape=()):
        if sample_shape:
            keys = jax.random.split(key, int(jnp.prod(jnp.asarray(sample_shape))))
            out = jax.vmap(lambda k: self.sample(k))(keys)
            return out.reshape(sample_shape + out.shape[1:])
        return self.sample_with_regimes(key)[0]

    def sample_with_regimes(self, key):
        """Ancestral sample: ``z`` ``(B, T, n)`` and the regime path ``(B, T)``."""
        B, T, K, n = self.loc.shape
        L = self.lag
        k_init, k_reg0, k_scan = jax.random.split(key, 3)
        z0 = self.init_loc + self.init_scale * jax.random.normal(k_init, (B, L, n))
        if self.log_trans is None:
            r0 = jnp.zeros((B,), jnp.int32)
        else:
            r0 = jax.random.categorical(k_reg0, self.log_init, shape=(B,))

        def step(carry, inputs):
            past, r = carry  # past (B, L, n) most recent first
            key, t = inputs
            k_r, k_e = jax.random.split(key)
            if self.log_trans is not None:
                r = jnp.where(t == 0, r, jax.random.categorical(k_r, self.log_trans[r]))
            loc_t = jnp.take_along_axis(self.loc[:, t], r[:, None, None], axis=1)[:, 0]
            scale_t = jnp.take_along_axis(self.scale[:, t], r[:, None, None], axis=1)[:, 0]
            ctx = None if self.context is None else self.context[:, t]
            mean, factor, raw = self._transition(past.reshape(B, L * n), ctx)
            mean = jnp.take_along_axis(mean, r[:, None, None], axis=1)[:, 0]
            if factor is not None:
                scale_t = scale_t * jnp.take_along_axis(factor, r[:, None, None], axis=1)[:, 0]
            raw_t = None if raw is None else jnp.take_along_axis(
                raw, r[:, None, None, None], axis=1)[:, 0]
            z_dyn = conditional_flow_sample(jax.random.normal(k_e, (B, n)), mean + loc_t,
                                            scale_t, raw_t)
            z_t = jnp.where(t < L, z0[:, jnp.minimum(t, L - 1)], z_dyn)
            past = jnp.concatenate([z_t[:, None], past[:, :-1]], axis=1)
            return (past, r), (z_t, r)

        keys = jax.random.split(k_scan, T)
        _, (z, r) = jax.lax.scan(step, (jnp.zeros((B, L, n)), r0), (keys, jnp.arange(T)))
        return jnp.swapaxes(z, 0, 1), jnp.swapaxes(r, 0, 1)


def _shape(x, u, n_seq, length):
    if x is not None:
        return x.shape[0], x.shape[1]
    if u is not None:
        return u.shape[0], u.shape[1]
    if n_seq is None or length is None:
        raise ValueError("pass n_seq and length when both x and u are None")
    return n_seq, length


def temporal_model(x=None, u=None, *, kind: str, decoder, transition, n_latent: int,
                   data_dim: int, lag: int = 1, n_domains: int | None = None,
                   n_regimes: int = 1, noise_scale: float | None = None,
                   stickiness: float = 0.9, subsample_size: int | None = None, n_seq=None,
                   length=None, whiten=None, noise_init: float = 0.1,
                   heteroscedastic: bool = False, flow=None, transition_prior: str = "additive",
                   spline_bins: int = SPLINE_BINS, observe_latent: bool = False,
                   initial: str = "gaussian"):
    """The shared body of :func:`tivae`, :func:`regime` and :func:`stationary`.

    Parameters
    ----------
    x : ``(B, T, d)`` or None
        Observed sequences; None samples the prior predictive (give ``n_seq``, ``length``).
    u : int ``(B, T)`` or None
        Domain / segment labels (``tivae``); ignored by the other kinds.
    kind : {"tivae", "regime", "stationary"}
    decoder : equinox.Module ``(n,) -> (d,)``, registered as ``decoder`` (None with ``flow``).
    transition : equinox.Module ``(L * n,) -> (K * n,)`` (``(2 K n,)`` when
        ``heteroscedastic``: means, then log noise-scale factors; see
        :func:`transition_outputs`), registered as ``transition``. With ``transition_prior =
        "flow"`` for ``tivae`` it reads ``(L * n + U,)``: the past, then the one-hot domain.
    n_latent, data_dim, lag : int
    n_domains : int, optional
        Number of labels of ``u`` (``tivae``).
    n_regimes : int
        ``K`` for the regime model.
    noise_scale : float, optional
        Fixed observation noise; None learns ``noise_scale`` ``(d,)``.
    stickiness : float
        Initial diagonal of the learned regime transition matrix.
    whiten : tuple ``(mu (d,), chol (d, d))``, optional
        Decode in whitened coordinates (see :func:`ppl_ident.ops.observation.observation_dist`).
    noise_init : float
        Initial value of the learned noise scale.
    heteroscedastic : bool
        Let the transition noise scale move with the past (see the module docstring).
    transition_prior : {"additive", "flow", "post_nonlinear"}
        Gaussian noise around a learned mean, or the component-wise conditional spline flow
        (module docstring; the flow always has the past-dependent scale), or a spline that
        does not read the context: one learned spline per regime and latent (``trans_spline``
        ``(K, n, 3 bins - 1)``), with ``s_i(z_t,i) ~ N(f_i(past) + loc, scale)``: the published
        generators' form ``z_t = g(f(past) + eps)`` with ``s = g^{-1}`` learned, and the
        additive transition when ``s`` is the identity (its initial value).
    spline_bins : int
        Bins of the flow and post-nonlinear transitions' spline.
    initial : {"gaussian", "conditional"}
        The first ``L`` steps of every sequence: scored under a learned factorial Gaussian
        (``init_loc``, ``init_scale``), or, with ``flow`` only, not scored at all (neither their
        prior term nor their Jacobian factor), so that the objective is the conditional
        ``log p(x_{L+1:T} | x_{1:L})``. The conditional form is right for windows cut from a
        longer recording, whose first steps are neither independent across latents nor
        Gaussian: a factorial prior there would pull the latents towards any rotation that
        makes those steps look factorial. (The prior predictive still starts from the initial
        Gaussian, unfitted in that case.)
    observe_latent : bool
        With ``flow`` and data: compute ``z = h(x)`` here and observe the ``z`` site, with the
        log-determinant from the same pass (the one-pass training objective, paired with
        :func:`ppl_ident.families.guides.empty_guide`: the same loss and gradients as the
        point-mass guide, the flow run once per step instead of twice).
    flow : :class:`ppl_ident.ops.flows.CouplingFlow`, optional
        Exact-likelihood model (``d == n``): ``z_t = h(x_t)`` with the invertible ``h``
        (registered as ``flow``, shared with :func:`ppl_ident.families.sequence.guide.flow_guide`)
        and the factor ``x_log_det = log |det J_h(x_t)|`` instead of a decoder and its noise.
        The ELBO with the flow guide is then ``log p(x)`` itself.
    subsample_size : int, optional
        Minibatch size of the ``sequence`` plate.

    Notes
    -----
    Parameters registered: ``trans_loc`` / ``trans_scale`` ``(R, n)`` (``R`` = domains,
    regimes, or 1), ``init_loc`` / ``init_scale`` ``(L, n)``, for regimes ``regime_init_logits``
    ``(K,)`` and ``regime_trans_logits`` ``(K, K)``.
    """
    B, T = _shape(x, u, n_seq, length)
    x = None if x is None else jnp.asarray(x)
    u = None if u is None else jnp.asarray(u)
    n = n_latent
    dec = None if decoder is None else eqx_module("decoder", decoder)
    fl = None if flow is None else eqx_module("flow", flow)
    net = eqx_module("transition", transition)
    sigma = None if fl is not None else noise_param(noise_scale, data_dim, noise_init)
    K = n_regimes if kind == "regime" else 1
    rows = {"tivae": n_domains or 1, "regime": K, "stationary": 1}[kind]
    trans_loc = numpyro.param("trans_loc", jnp.zeros((rows, n)))
    trans_scale = numpyro.param("trans_scale", jnp.ones((rows, n)),
                                constraint=dist.constraints.positive)
    init_loc = numpyro.param("init_loc", jnp.zeros((lag, n)))
    init_scale = numpyro.param("init_scale", jnp.ones((lag, n)),
                               constraint=dist.constraints.positive)
    log_init = log_trans = None
    if kind == "regime":
        off = jnp.log((1.0 - stickiness) / max(K - 1, 1))
        logits0 = jnp.where(jnp.eye(K, dtype=bool), jnp.log(stickiness), off)
        log_init = jax.nn.log_softmax(numpyro.param("regime_init_logits", jnp.zeros(K)))
        log_trans = jax.nn.log_softmax(numpyro.param("regime_trans_logits", logits0), axis=-1)

    bins = spline_bins if transition_prior == "flow" else 0
    pnl = None
    if transition_prior == "post_nonlinear":
        # one learned spline per regime and latent, the same for every past (zeros: identity)
        pnl = numpyro.param("trans_spline", jnp.zeros((K, n, spline_raw_size(spline_bins))))

    def mean_fn(past):
        out = split_transition(_apply(net, past), K, n, heteroscedastic, bins)
        if pnl is None:
            return out
        mean, log_factor = out if heteroscedastic else (out, jnp.zeros_like(out))
        return mean, log_factor, jnp.broadcast_to(pnl, mean.shape + pnl.shape[-1:])

    with numpyro.plate("sequence", B, subsample_size=subsample_size, dim=-2) as idx:
        b = idx.shape[0]
        if kind == "tivae" and u is not None:
            rows_bt = u[idx]
        else:
            rows_bt = jnp.zeros((b, T), jnp.int32)
        if kind == "regime":
            loc = jnp.broadcast_to(trans_loc, (b, T, K, n))
            scale = jnp.broadcast_to(trans_scale, (b, T, K, n))
        else:
            loc, scale = trans_loc[rows_bt][:, :, None], trans_scale[rows_bt][:, :, None]
        context = None
        if kind == "tivae" and bins:  # the flow transition's function moves with the domain
            context = one_hot(rows_bt, n_domains or 1)
        with numpyro.plate("time", T, dim=-1):
            prior = MarkovPathPrior(mean_fn, loc, scale, init_loc, init_scale, lag,
                                    log_init, log_trans, context,
                                    score_initial=initial != "conditional")
            x_b = None if x is None else x[idx]
            z_obs = log_det = None
            if fl is not None and observe_latent and x_b is not None:
                z_obs, log_det = _flow_latent(fl, x_b, whiten)
                log_det = _initial_mask(log_det, lag, initial)
            z = numpyro.sample("z", prior, obs=z_obs)
            if fl is not None:
                if log_det is not None:
                    numpyro.factor("x_log_det", log_det)
                else:
                    _flow_likelihood(fl, z, x_b, whiten, lag, initial)
                return
            mean = _apply(dec, z)
            if whiten is None or x_b is None:
                numpyro.sample("x", observation_dist(mean, sigma, whiten), obs=x_b)
            else:
                # Same density as observation_dist(..., whiten), scored in whitened coordinates:
                # one triangular solve for the whole minibatch instead of one per step (the
                # batched solve of the transformed distribution is ~4x slower on CPU).
                d = x_b.shape[-1]
                w_b = whiten_data(x_b.reshape(-1, d), whiten).reshape(x_b.shape)
                numpyro.sample("x", dist.Normal(mean, sigma).to_event(1), obs=w_b)
                log_det = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(whiten[1]))))
                numpyro.factor("x_whitening_jacobian", -log_det * jnp.ones(x_b.shape[:2]))


def _initial_mask(log_det, lag: int, initial: str):
    """The per-step Jacobian factor ``(B, T)`` with the first ``lag`` steps left out when the
    initial steps are not scored (``initial="conditional"``)."""
    if initial != "conditional":
        return log_det
    return log_det.at[:, :lag].set(0.0)


def _flow_likelihood(fl, z, x_b, whiten, lag: int = 1, initial: str = "gaussian"):
    """The exact model's observation term: ``x = h^{-1}(z)`` (prior predictive) or the factor
    ``log |det J_h(x)|`` in data coordinates (whitening's Jacobian included; the first ``lag``
    steps left out with ``initial="conditional"``)."""
    if x_b is None:
        w = _apply(fl.inverse, z)
        if whiten is not None:
            w = whiten[0] + w @ whiten[1].T
        numpyro.deterministic("x", w)
        return
    numpyro.factor("x_log_det", _initial_mask(_flow_latent(fl, x_b, whiten)[1], lag, initial))


def _flow_latent(fl, x_b, whiten):
    """``z_t = h(x_t)`` for sequences ``x_b`` ``(B, T, d)`` and each step's ``log |det J_h|``
    in data coordinates (whitening's Jacobian included): ``(B, T, n)``, ``(B, T)``."""
    B, T, d = x_b.shape
    z, log_det = jax.vmap(fl)(whiten_data(x_b.reshape(-1, d), whiten))
    log_det = log_det.reshape(B, T)
    if whiten is not None:
        log_det = log_det - jnp.sum(jnp.log(jnp.abs(jnp.diagonal(whiten[1]))))
    return z.reshape(B, T, -1), log_det


def transition_outputs(K: int, n: int, heteroscedastic: bool, spline_bins: int = 0) -> int:
    """Outputs of the transition network: ``K n`` means, ``K n`` log scale factors when
    ``heteroscedastic`` or with a spline, and ``K n (3 bins - 1)`` spline parameters."""
    if spline_bins:
        return K * n * (2 + spline_raw_size(spline_bins))
    return (2 if heteroscedastic else 1) * K * n


def split_transition(out, K: int, n: int, heteroscedastic: bool, spline_bins: int = 0):
    """The transition network's output ``(..., K n)`` or ``(..., 2 K n)`` as the means
    ``(..., K, n)``, or the pair (means, bounded log noise-scale factors ``3 tanh(./3)``);
    with ``spline_bins`` the triple (means, log factors, spline parameters ``(..., K, n, 3 bins
    - 1)``) of the flow transition."""
    if spline_bins:
        lead = out.shape[:-1]
        mean = out[..., : K * n].reshape(lead + (K, n))
        log_factor = 3.0 * jnp.tanh(out[..., K * n: 2 * K * n] / 3.0).reshape(lead + (K, n))
        raw = out[..., 2 * K * n:].reshape(lead + (K, n, spline_raw_size(spline_bins)))
        return mean, log_factor, raw
    if not heteroscedastic:
        return out.reshape(out.shape[:-1] + (K, n))
    mean = out[..., : K * n].reshape(out.shape[:-1] + (K, n))
    log_factor = 3.0 * jnp.tanh(out[..., K * n:] / 3.0).reshape(out.shape[:-1] + (K, n))
    return mean, log_factor


def tivae(x=None, u=None, **kwargs):
    """Temporal iVAE: transition ``p(z_t | z_past, u_t)`` with per-domain loc/scale.

    See :func:`temporal_model` for the parameters (``kind`` is fixed to ``"tivae"``).
    """
    return temporal_model(x, u, kind="tivae", **kwargs)


def regime(x=None, u=None, **kwargs):
    """Regime-switching temporal model: hidden Markov ``k_t`` marginalised with the forward
    filter; ``u`` is ignored. See :func:`temporal_model` (``kind="regime"``)."""
    return temporal_model(x, None, kind="regime", **kwargs)


def stationary(x=None, u=None, **kwargs):
    """Stationary control: the same transition for every step; ``u`` is ignored. See
    :func:`temporal_model` (``kind="stationary"``)."""
    return temporal_model(x, None, kind="stationary", **kwargs)


class TransitionTables(NamedTuple):
    """Learned transition parameters of a fitted sequence model (constrained)."""

    loc: jax.Array
    scale: jax.Array
    init_loc: jax.Array
    init_scale: jax.Array
    init_probs: jax.Array | None
    trans_matrix: jax.Array | None


def transition_tables(params) -> TransitionTables:
    """Learned ``loc``/``scale`` rows, initial distribution and (regime model) the regime
    chain ``init_probs`` ``(K,)`` and ``trans_matrix`` ``(K, K)``."""
    probs = mat = None
    if "regime_trans_logits" in params:
        probs = jax.nn.softmax(params["regime_init_logits"])
        mat = jax.nn.softmax(params["regime_trans_logits"], axis=-1)
    return TransitionTables(params["trans_loc"], params["trans_scale"], params["init_loc"],
                            params["init_scale"], probs, mat)


def transition_log_density(spec, params, row: int = 0):
    """The learned transition density as a pure function ``(z_t, z_prev) -> scalar``.

    Parameters
    ----------
    spec : ModelSpec of a sequence model
    params : dict of fitted (constrained) parameters
    row : int
        The domain (``tivae``) or regime (``regime``) whose density is returned. May be a
        traced integer (the tables are indexed as JAX arrays), so a density of
        ``(z_t, (z_prev, row))`` can be built from it.

    Returns
    -------
    log_density : callable
        ``log_density(z_t (n,), z_prev (L, n) or (L * n,)) -> log p(z_t | z_prev, row)``, with
        ``z_prev`` most recent first. Suitable for the sufficient-variability check with the
        past as auxiliary variable.
    """
    cfg = spec.config
    n, L = cfg["n_latent"], cfg["lag"]
    K = cfg["n_regimes"] if cfg["name"] == "regime" else 1
    net = fitted_module(spec, params, "transition")
    loc, scale = jnp.asarray(params["trans_loc"])[row], jnp.asarray(params["trans_scale"])[row]
    head = row if K > 1 else 0

    het = bool(cfg.get("heteroscedastic", False))
    bins = int(cfg.get("spline_bins", SPLINE_BINS)) if cfg.get("transition") == "flow" else 0
    pnl = jnp.asarray(params["trans_spline"]) if cfg.get("transition") == "post_nonlinear" \
        else None
    n_dom = cfg.get("n_domains") if cfg["name"] == "tivae" else None

    def log_density(z_t, z_prev):
        inp = jnp.reshape(z_prev, (L * n,))
        if bins and n_dom:
            inp = jnp.concatenate([inp, one_hot(row, n_dom)])
        out = split_transition(net(inp), K, n, het, bins)
        if bins:
            mean, log_factor, raw = out
            raw = raw[head]
        else:
            mean, log_factor = out if het else (out, jnp.zeros_like(out))
            # the post-nonlinear transition: s(z_t) is Gaussian, one spline per regime
            raw = None if pnl is None else pnl[head]
        # the model's own formula (MarkovPathPrior.regime_log_liks)
        return conditional_flow_logpdf(z_t, mean[head] + loc, scale * jnp.exp(log_factor[head]),
                                       raw).sum()

    return log_density


class RegimePosterior(NamedTuple):
    """Regime inference of a fitted regime model on sequences.

    Attributes
    ----------
    probs : ``(B, T, K)`` smoothed ``p(k_t | z_{1:T})``
    path : int ``(B, T)`` Viterbi path
    marginal_loglik : ``(B,)`` ``log p(z_{1:T})`` of the plug-in latents
    """

    probs: jax.Array
    path: jax.Array
    marginal_loglik: jax.Array


def regime_posterior(spec, params, x, z=None) -> RegimePosterior:
    """Posterior regime probabilities (smoother) and most likely path (Viterbi).

    The latent path is plugged in at the encoder's posterior mean (or ``z`` when given), so
    this is ``p(k_{1:T} | z_{1:T} = E_q[z])``: exact for the regime chain given the latents,
    not integrated over the latents' uncertainty.

    Parameters
    ----------
    spec, params : a fitted ``regime`` model
    x : ``(B, T, d)``
    z : ``(B, T, n)``, optional

    Returns
    -------
    RegimePosterior
    """

    if spec.config["name"] != "regime":
        raise ValueError(f"model {spec.config['name']!r} has no hidden regimes")
    if z is None:
        guide = handlers.substitute(handlers.seed(spec.guide, 0), params)
        z = handlers.trace(guide).get_trace(jnp.asarray(x), None)["z"]["fn"].mean
    model = handlers.substitute(handlers.seed(spec.model, 0), params)
    prior = handlers.trace(handlers.condition(model, {"z": z})).get_trace(
        jnp.asarray(x), None)["z"]["fn"]
    ll = prior.regime_log_liks(z)
    smooth = jax.vmap(lambda l: hmm_smoother(prior.log_init, prior.log_trans, l))(ll)
    path, _ = jax.vmap(lambda l: hmm_viterbi(prior.log_init, prior.log_trans, l))(ll)
    return RegimePosterior(smooth.smoothed_probs, path, smooth.marginal_loglik)
