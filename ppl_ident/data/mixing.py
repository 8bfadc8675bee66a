"""Invertible MLP mixing functions ``x = g(z)`` with exact inverses and Jacobians.

A mixing is a :class:`Mixing` pytree: a tuple of square, well-conditioned weight matrices
(one per layer), an activation applied after every layer but the last, and an optional final
injective ``d x n`` projection when the data dimension exceeds the latent dimension. All
functions here are pure JAX and can be ``jit``-ed, ``vmap``-ed and differentiated.

References
----------
Hyvarinen, Sasaki & Turner (2019), "Nonlinear ICA using auxiliary variables and generalized
contrastive learning", AISTATS. Khemakhem et al. (2020), "Variational autoencoders and
nonlinear ICA: a unifying framework", AISTATS (the leaky-ReLU mixing with condition-number
rejection follows their data-generating recipe).
"""

from __future__ import annotations

from typing import NamedTuple

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ppl_ident.errors import InputError

__all__ = [
    "ACTIVATIONS",
    "Mixing",
    "random_mixing",
    "mix",
    "unmix",
    "mixing_jacobian",
    "activation",
    "inverse_activation",
    "condition_threshold",
    "mixing_to_arrays",
    "mixing_from_arrays",
]

ACTIVATIONS = ("leaky_relu", "xtanh")


class Mixing(NamedTuple):
    """Parameters of an invertible MLP.

    Attributes
    ----------
    weights : tuple of arrays, each ``(n, n)``
        Square layer matrices; the map is ``h <- act(h @ W)`` for all but the last layer,
        whose output is linear.
    projection : array ``(n, d)`` or None
        Final injective linear map to ``d > n`` dimensions (None when ``d == n``).
    activation : str
        ``"leaky_relu"`` (closed-form inverse) or ``"xtanh"`` (``tanh(h) + slope * h``,
        smooth and strictly monotone; inverted numerically).
    slope : float
        Negative-side slope of the leaky ReLU, or the linear coefficient of ``xtanh``.
    """

    weights: tuple
    projection: jax.Array | None
    activation: str
    slope: float


# Mixing is a pytree whose arrays are leaves and whose activation name and slope are static.
jax.tree_util.register_pytree_node(
    Mixing,
    lambda m: ((m.weights, m.projection), (m.activation, m.slope)),
    lambda aux, ch: Mixing(ch[0], ch[1], *aux),
)


def activation(h, name: str, slope: float):
    """Apply the mixing activation elementwise."""
    if name == "leaky_relu":
        return jnp.where(h >= 0, h, slope * h)
    if name == "xtanh":
        return jnp.tanh(h) + slope * h
    raise InputError(f"Unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.")


def inverse_activation(y, name: str, slope: float, iterations: int = 40):
    """Invert :func:`activation` elementwise.

    ``leaky_relu`` is inverted in closed form. ``xtanh`` has no closed form: it is strictly
    increasing with derivative in ``[slope, 1 + slope]``, so the root lies in
    ``[(y - 1) / slope, (y + 1) / slope]`` intersected with ``[(y-1)/(1+slope), (y+1)/(1+slope)]``;
    a few bisection steps followed by Newton steps converge to float precision.
    """
    if name == "leaky_relu":
        return jnp.where(y >= 0, y, y / slope)
    if name != "xtanh":
        raise InputError(f"Unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.")
    lo = jnp.maximum((y - 1.0) / slope, (y - 1.0) / (1.0 + slope))
    hi = jnp.minimum((y + 1.0) / slope, (y + 1.0) / (1.0 + slope))
    lo, hi = jnp.minimum(lo, hi), jnp.maximum(lo, hi)

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        above = jnp.tanh(mid) + slope * mid > y
        return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

    lo, hi = jax.lax.fori_loop(0, 12, bisect, (lo, hi))
    h = 0.5 * (lo + hi)

    def newton(_, h):
        t = jnp.tanh(h)
        return h - (t + slope * h - y) / (1.0 - t * t + slope)

    return jax.lax.fori_loop(0, iterations // 8 + 3, newton, h)


def mix(mixing: Mixing, z):
    """Forward mixing ``x = g(z)``.

    Parameters
    ----------
    mixing : Mixing
    z : array ``(..., n)``

    Returns
    -------
    x : array ``(..., d)``
    """
    h = z
    last = len(mixing.weights) - 1
    for i, w in enumerate(mixing.weights):
        h = h @ w
        if i < last:
            h = activation(h, mixing.activation, mixing.slope)
    if mixing.projection is not None:
        h = h @ mixing.projection
    return h


def unmix(mixing: Mixing, x):
    """Exact inverse ``z = g^{-1}(x)`` on the image of ``g``.

    For ``d > n`` the projection is inverted by least squares (its pseudo-inverse), which is
    exact for noise-free ``x`` and the orthogonal projection onto the image otherwise.
    """
    h = x
    if mixing.projection is not None:
        h = h @ jnp.linalg.pinv(mixing.projection)
    last = len(mixing.weights) - 1
    for i in range(last, -1, -1):
        if i < last:
            h = inverse_activation(h, mixing.activation, mixing.slope)
        h = h @ jnp.linalg.inv(mixing.weights[i])
    return h


def mixing_to_arrays(mixing: Mixing, prefix: str = "truth_mixing_") -> dict:
    """Flatten a :class:`Mixing` into named numpy arrays (the ``.npz`` ground-truth keys)."""
    out = {
        f"{prefix}weights": np.stack([np.asarray(w) for w in mixing.weights]),
        f"{prefix}activation": np.array(mixing.activation),
        f"{prefix}slope": np.array(mixing.slope),
    }
    if mixing.projection is not None:
        out[f"{prefix}projection"] = np.asarray(mixing.projection)
    return out


def mixing_from_arrays(arrays, prefix: str = "truth_mixing_") -> Mixing:
    """Inverse of :func:`mixing_to_arrays`."""
    w = np.asarray(arrays[f"{prefix}weights"], dtype=np.float32)
    proj = arrays.get(f"{prefix}projection")
    return Mixing(
        tuple(jnp.asarray(wi) for wi in w),
        None if proj is None else jnp.asarray(np.asarray(proj, dtype=np.float32)),
        str(arrays[f"{prefix}activation"]),
        float(arrays[f"{prefix}slope"]),
    )


def mixing_jacobian(mixing: Mixing, z):
    """Jacobian ``dg/dz`` at each point: ``(N, n)`` -> ``(N, d, n)``."""
    return jax.vmap(jax.jacfwd(lambda zi: mix(mixing, zi)))(jnp.atleast_2d(z))


@functools.lru_cache(maxsize=32)
def condition_threshold(n: int, quantile: float = 0.25, draws: int = 10_000) -> float:
    """The ``quantile`` of condition numbers of random column-normalised ``n x n`` matrices.

    Rejecting draws above the lower quartile is the recipe of the nonlinear-ICA literature
    (Hyvarinen & Morioka 2016; Khemakhem et al. 2020): it keeps every layer well-conditioned
    for any ``n`` (about 1.5 for n=2, 6.4 for n=5, 16 for n=10). Fixed seed, so deterministic.
    """
    rng = np.random.default_rng(12345)
    w = rng.standard_normal((draws, n, n))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    return float(np.quantile(np.linalg.cond(w), quantile))


def _well_conditioned(rng: np.random.Generator, n: int, max_cond: float | None) -> np.ndarray:
    max_cond = condition_threshold(n) if max_cond is None else max_cond
    for _ in range(10_000):
        w = rng.standard_normal((n, n))
        w /= np.linalg.norm(w, axis=0, keepdims=True)
        if np.linalg.cond(w) <= max_cond:
            return w
    raise InputError(
        f"Could not draw a {n}x{n} mixing matrix with condition number <= {max_cond} in 10,000 "
        "tries; raise the condition-number threshold (e.g. --max-cond 50)."
    )


def random_mixing(
    seed: int | np.random.Generator,
    n: int,
    d: int | None = None,
    n_layers: int = 3,
    activation: str = "leaky_relu",
    slope: float = 0.2,
    max_cond: float | None = None,
) -> Mixing:
    """Draw a random invertible MLP mixing.

    Parameters
    ----------
    seed : int or numpy Generator
    n : int
        Latent dimension.
    d : int, optional
        Data dimension (``>= n``); defaults to ``n``.
    n_layers : int
        Number of square layers (``>= 1``); 1 gives a linear mixing.
    activation : {"leaky_relu", "xtanh"}
    slope : float
        In ``(0, 1]`` for leaky ReLU, ``> 0`` for ``xtanh``.
    max_cond : float, optional
        Draws of a square weight matrix (columns normalised) whose condition number exceeds
        this are rejected, which keeps the inverse numerically stable. Default: the lower
        quartile of random draws (:func:`condition_threshold`), as in the literature.

    Returns
    -------
    Mixing

    Examples
    --------
    >>> m = random_mixing(0, n=3, n_layers=2)
    >>> z = jnp.ones((4, 3)); bool(jnp.allclose(unmix(m, mix(m, z)), z, atol=1e-4))
    True
    """
    d = n if d is None else d
    if n < 1 or d < n:
        raise InputError(f"Need 1 <= n <= d, got n={n}, d={d}; the mixing must be injective.")
    if n_layers < 1:
        raise InputError(f"n_layers must be >= 1, got {n_layers}.")
    if activation not in ACTIVATIONS:
        raise InputError(
            f"Unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}."
        )
    if not slope > 0 or (activation == "leaky_relu" and slope > 1):
        raise InputError(
            f"slope={slope} makes the mixing non-invertible; use 0 < slope <= 1 for leaky_relu "
            "and slope > 0 for xtanh."
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    weights = tuple(
        jnp.asarray(_well_conditioned(rng, n, max_cond), dtype=jnp.float32) for _ in range(n_layers)
    )
    projection = None
    if d > n:
        p = _well_conditioned(rng, d, max_cond)[:n, :]
        projection = jnp.asarray(p, dtype=jnp.float32)
    return Mixing(weights, projection, activation, float(slope))
