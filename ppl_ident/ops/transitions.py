"""Component-wise conditional invertible maps: a nonparametric transition prior.

The published temporal models (TDRL, LEAP, NCTRL) score a transition by a learned *inverse*
transition ``eps_t,i = r_i(z_t,i ; z_past, u)``, invertible in ``z_t,i``, and the change of
variables::

    log p(z_t | z_past, u) = sum_i [ log N(r_i(z_t,i); 0, 1) + log |d r_i / d z_t,i| ].

Here ``r_i`` is a monotone rational-quadratic spline of ``z_t,i`` (Durkan et al. 2019) followed
by a conditional affine map, every parameter an output of a network of the context ``c = (z_past,
u)``::

    y_i   = s_i(z_t,i ; c)                       (spline on [-bound, bound], identity outside)
    eps_i = (y_i - m_i(c)) / sigma_i(c)

With the spline at the identity this is the additive, heteroscedastic Gaussian transition
``z_t,i ~ N(m_i(c), sigma_i(c))``; the spline lets the noise enter through a nonlinearity
(post-nonlinear transitions ``z_t = g(A z_past + eps)``: ``s = g^{-1}``) and the noise
distribution take any shape. Every log-derivative is exact and closed form; the inverse (for
sampling) solves one quadratic per component.

The module is pure: functions of arrays, no NumPyro sites and no networks (the sequence models
own those: :mod:`ppl_ident.families.sequence.model`).

References
----------
Durkan, Bekasov, Murray & Papamakarios (2019), "Neural spline flows", NeurIPS.
Yao, Chen & Zhang (2022), "Temporally disentangled representation learning", NeurIPS.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.stats as jstats

__all__ = ["TRANSITION_PRIORS", "SPLINE_BINS", "SPLINE_BOUND", "spline_raw_size",
           "SplineParams", "spline_params", "rq_spline", "rq_spline_inverse",
           "conditional_flow_logpdf", "conditional_flow_sample"]

#: The sequence models' transition priors: Gaussian noise around a learned mean, this
#: module's component-wise conditional spline flow, or a post-nonlinear transition (a spline
#: of ``z_t,i`` that does not depend on the past, Gaussian around a learned mean of the past).
TRANSITION_PRIORS = ("additive", "flow", "post_nonlinear")

#: Default number of bins and half-width of the spline's interval (identity outside).
SPLINE_BINS = 8
SPLINE_BOUND = 5.0
_MIN_BIN = 1e-3
_MIN_DERIV = 1e-3
# _MIN_DERIV + softplus(_DERIV_SHIFT) = 1: a zero network output gives unit knot derivatives
_DERIV_SHIFT = float(jnp.log(jnp.expm1(1.0 - _MIN_DERIV)))


def spline_raw_size(bins: int = SPLINE_BINS) -> int:
    """Unconstrained parameters per component: ``bins`` widths, ``bins`` heights and
    ``bins - 1`` interior knot derivatives."""
    return 3 * bins - 1


class SplineParams(NamedTuple):
    """Knots of a monotone rational-quadratic spline, per component.

    Attributes
    ----------
    x_knots, y_knots : ``(..., bins + 1)`` increasing, from ``-bound`` to ``bound``
    derivs : ``(..., bins + 1)`` positive; 1 at both ends (the identity tails join smoothly)
    """

    x_knots: jax.Array
    y_knots: jax.Array
    derivs: jax.Array


def _knots(raw, bound):
    bins = raw.shape[-1]
    w = jax.nn.softmax(raw, axis=-1)
    w = _MIN_BIN + (1.0 - _MIN_BIN * bins) * w
    cum = jnp.cumsum(w, axis=-1)
    cum = jnp.concatenate([jnp.zeros_like(cum[..., :1]), cum], axis=-1)
    knots = 2.0 * bound * cum - bound
    # pin the ends exactly (cumsum rounding)
    return knots.at[..., 0].set(-bound).at[..., -1].set(bound)


def spline_params(raw, bound: float = SPLINE_BOUND) -> SplineParams:
    """Constrained knots from the unconstrained ``raw`` ``(..., 3 bins - 1)``.

    A zero ``raw`` gives equal bins and unit derivatives: the identity map.
    """
    bins = (raw.shape[-1] + 1) // 3
    if 3 * bins - 1 != raw.shape[-1]:
        raise ValueError(f"raw spline parameters need 3 * bins - 1 entries, got {raw.shape[-1]}")
    x_knots = _knots(raw[..., :bins], bound)
    y_knots = _knots(raw[..., bins:2 * bins], bound)
    inner = _MIN_DERIV + jax.nn.softplus(raw[..., 2 * bins:] + _DERIV_SHIFT)
    ones = jnp.ones_like(inner[..., :1])
    return SplineParams(x_knots, y_knots, jnp.concatenate([ones, inner, ones], axis=-1))


def _gather(a, idx):
    return jnp.take_along_axis(a, idx[..., None], axis=-1)[..., 0]


def _bin_quantities(p: SplineParams, idx):
    xk, yk = _gather(p.x_knots, idx), _gather(p.y_knots, idx)
    w = _gather(p.x_knots, idx + 1) - xk
    h = _gather(p.y_knots, idx + 1) - yk
    d0, d1 = _gather(p.derivs, idx), _gather(p.derivs, idx + 1)
    return xk, yk, w, h, d0, d1


def _locate(v, knots):
    """Whether ``v`` lies inside the spline's interval, ``v`` clipped to it, and its bin."""
    bound = knots[..., -1]
    clipped = jnp.clip(v, -bound, bound)
    bins = knots.shape[-1] - 1
    idx = jnp.clip(jnp.sum(clipped[..., None] >= knots[..., 1:-1], axis=-1), 0, bins - 1)
    return jnp.abs(v) < bound, clipped, idx


def rq_spline(x, p: SplineParams):
    """Monotone rational-quadratic spline ``y = s(x)`` and ``log s'(x)``, element-wise.

    Parameters
    ----------
    x : ``(...)``
    p : SplineParams with leading shape ``x.shape``

    Returns
    -------
    y, log_deriv : ``(...)``; the identity (``log_deriv = 0``) outside ``[-bound, bound]``.
    """
    inside, xc, idx = _locate(x, p.x_knots)
    xk, yk, w, h, d0, d1 = _bin_quantities(p, idx)
    s = h / w
    xi = (xc - xk) / w
    t = xi * (1.0 - xi)
    den = s + (d1 + d0 - 2.0 * s) * t
    y = yk + h * (s * xi ** 2 + d0 * t) / den
    deriv = s ** 2 * (d1 * xi ** 2 + 2.0 * s * t + d0 * (1.0 - xi) ** 2) / den ** 2
    return jnp.where(inside, y, x), jnp.where(inside, jnp.log(deriv), 0.0)


def rq_spline_inverse(y, p: SplineParams):
    """The inverse ``x = s^{-1}(y)`` of :func:`rq_spline` (the root of one quadratic)."""
    inside, yc, idx = _locate(y, p.y_knots)
    xk, yk, w, h, d0, d1 = _bin_quantities(p, idx)
    s = h / w
    dy = yc - yk
    c2 = d1 + d0 - 2.0 * s
    a = h * (s - d0) + dy * c2
    b = h * d0 - dy * c2
    c = -s * dy
    disc = jnp.maximum(b ** 2 - 4.0 * a * c, 0.0)
    xi = 2.0 * c / (-b - jnp.sqrt(disc))  # the stable root, in [0, 1]
    return jnp.where(inside, xk + xi * w, y)


def conditional_flow_logpdf(z, mean, scale, raw=None, bound: float = SPLINE_BOUND):
    """``log p(z_i | c)`` per component: ``s_i(z_i) ~ Normal(mean_i, scale_i)`` for the monotone
    spline ``s_i`` of ``raw`` (the identity when ``raw`` is None: a Gaussian transition). The
    one formula of every sequence model's transition density: the model's prior, the
    learned-transition check and (with :func:`conditional_flow_sample`) the sampler use it.

    Parameters
    ----------
    z, mean, scale : ``(...)`` (broadcast together); ``scale > 0``
    raw : ``(..., 3 bins - 1)`` or None
        The spline's unconstrained parameters (see :func:`spline_params`), one set per
        element of the broadcast shape.

    Returns
    -------
    ``(...)`` ``log N(s(z); mean, scale) + log s'(z)``.
    """
    if raw is None:
        return jstats.norm.logpdf(z, mean, scale)
    y, log_deriv = rq_spline(z, spline_params(raw, bound))
    return jstats.norm.logpdf(y, mean, scale) + log_deriv


def conditional_flow_sample(eps, mean, scale, raw=None, bound: float = SPLINE_BOUND):
    """``z = s^{-1}(mean + scale * eps)``: the inverse of :func:`conditional_flow_logpdf`'s
    map (ancestral sampling of a transition; ``raw`` None: ``mean + scale * eps``)."""
    if raw is None:
        return mean + scale * eps
    return rq_spline_inverse(mean + scale * eps, spline_params(raw, bound))
