"""Sufficient-variability checks: does the latent distribution change enough across ``u``?

Two conditions, checked numerically:

**The seed's condition** (:func:`sufficient_variability`), for any differentiable
``log p(z | aux)`` that is factorial in ``z``. With ``a_k(z, u) = d log p(z|u) / d z_k`` and
``b_k(z, u) = d^2 log p(z|u) / d z_k^2``, the ``2n`` vectors over auxiliary values

.. math::

    \\big(a_k(z, u_j) - a_k(z, u_0),\\; b_k(z, u_j) - b_k(z, u_0)\\big)_{j=1..m-1}

must be linearly independent at every ``z``: the ``2n x (m-1)`` difference matrix must have
rank ``2n``, which needs at least ``2n + 1`` auxiliary values. The auxiliary variable can be a
domain label, a continuous vector, or the past ``z_{t-1}`` of a transition density
``p(z_t | z_{t-1})``.

**The iVAE exponential-family condition** (:func:`exponential_family_condition`), for the
built-in factorial Gaussian and Laplace priors: with natural parameters ``lambda(u)`` of the
sufficient statistics ``T(z)``, the differences ``lambda(u_j) - lambda(u_0)`` must have full rank
``n k``. Statistics whose natural parameter does not change across ``u`` are absorbed into the
base measure, so ``k`` counts only the statistics that vary. A zero-mean Gaussian whose scales
alone change fails the seed's condition (``Delta a_k = z_k Delta b_k``, rank ``<= n``) but meets
this one with ``T(z) = z^2``, ``k = 1`` and ``n + 1`` domains.

:func:`check_identifiability` runs both and says which holds and why. No check raises on a
failed condition; they return reports. Bad *input* raises :class:`~ppl_ident.errors.InputError`.

References
----------
Hyvarinen, Sasaki & Turner (2019), "Nonlinear ICA using auxiliary variables and generalized
contrastive learning", AISTATS (the 2n+1 condition). Khemakhem, Kingma, Monti & Hyvarinen
(2020), "Variational autoencoders and nonlinear ICA: a unifying framework", AISTATS, Theorem 1
(the exponential-family condition). Yao et al. (2022), "Temporally disentangled representation
learning", NeurIPS (the past as auxiliary variable). Song (2026), "Sequence Model 2: Sufficient
Variability" (the seed text).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppl_ident.errors import InputError

__all__ = [
    "VariabilityReport",
    "ExpFamilyReport",
    "IdentifiabilityReport",
    "sufficient_variability",
    "exponential_family_condition",
    "check_identifiability",
    "report_to_dict",
]


class VariabilityReport(NamedTuple):
    """Result of :func:`sufficient_variability`.

    Attributes
    ----------
    rank : int
        Numerical rank of the ``2n x (m-1)`` difference matrix at most points (the mode).
    rank_min, rank_max : int
        Smallest and largest rank over points.
    required : int
        ``2n``.
    rank_first, rank_second : int
        Rank (mode over points) of the first-derivative block alone and of the
        second-derivative block alone; they explain a failure (see ``reason``).
    singular_values : array ``(P, min(2n, m-1))``
        Singular values at every point, each row divided by its largest, of the difference
        matrix with each row scaled to unit norm (first and second derivatives have different
        units; the scaling leaves the rank unchanged). NaN at points where a derivative is not
        finite.
    min_normalised_sv : float
        Median over points of the ``2n``-th normalised singular value (0 when ``m - 1 < 2n``).
        Values near ``rtol`` mean "barely independent".
    share_passing : float
        Share of points where the rank is ``2n`` (every normalised singular value above
        ``rtol``).
    passed : bool
        ``share_passing >= min_share``.
    reason : str
    n_points, n_aux : int
    rtol, min_share : float
    """

    rank: int
    rank_min: int
    rank_max: int
    required: int
    rank_first: int
    rank_second: int
    singular_values: np.ndarray
    min_normalised_sv: float
    share_passing: float
    passed: bool
    reason: str
    n_points: int
    n_aux: int
    rtol: float
    min_share: float


class ExpFamilyReport(NamedTuple):
    """Result of :func:`exponential_family_condition`.

    Attributes
    ----------
    applicable : bool
        False when the prior is not an exponential family with ``u``-independent statistics
        (Laplace with changing locations, Student-t).
    statistics : tuple of str
        Names of the sufficient statistics that vary across domains (e.g. ``("z^2",)``).
    varying : bool array ``(n, k_all)``
        Whether the natural parameter of each latent's statistic changes across domains.
    k : int
        Largest number of varying statistics of one latent.
    rank, required : int
        Rank of the ``(U-1) x (number of varying parameters)`` difference matrix, and the
        number it must reach (``n k`` when every latent has ``k`` varying statistics).
    singular_values : array
        Of the difference matrix (columns scaled to unit norm), divided by the largest.
    passed : bool
    reason : str
    n_domains : int
    """

    applicable: bool
    statistics: tuple
    varying: np.ndarray
    k: int
    rank: int
    required: int
    singular_values: np.ndarray
    passed: bool
    reason: str
    n_domains: int


class IdentifiabilityReport(NamedTuple):
    """Result of :func:`check_identifiability`.

    Attributes
    ----------
    sufficient_variability : VariabilityReport
    exponential_family : ExpFamilyReport or None
    holds : tuple of str
        Names of the conditions that hold: ``"sufficient_variability"``,
        ``"exponential_family"``.
    passed : bool
        True when at least one condition holds.
    reason : str
        Which condition holds and why, with the ranks.
    """

    sufficient_variability: VariabilityReport
    exponential_family: ExpFamilyReport | None
    holds: tuple
    passed: bool
    reason: str


# ---------------------------------------------------------------------------------------------
# The seed's condition

#: The default ``rtol`` of each working precision: about four orders of magnitude above the
#: round-off floor of the normalised singular values (float32: ~1e-7; float64: exact zeros
#: for the structurally deficient densities, ~1e-16 otherwise, so 1e-9 keeps seven orders).
#: Points where a condition that holds almost everywhere degenerates (e.g. ``z_k = 0`` of a
#: zero-mean Student-t whose scales change: the first derivative vanishes in every domain)
#: have normalised singular values that fall like ``z_k^2``; the lower floor of float64
#: leaves only a set of points of vanishing measure below it.
DEFAULT_RTOL = {False: 1e-3, True: 1e-9}

#: memory bound (bytes) of one compiled evaluation of the derivatives and differences;
#: the points are checked in chunks that fit it
SPECTRUM_BYTES = 256 * 2**20


def _first_and_second(log_density, z, aux):
    """``grad`` and the Hessian diagonal of ``log_density(., aux)`` at ``z`` in one pass."""

    def grad_twice(zz):
        g = jax.grad(log_density)(zz, aux)
        return g, g

    hess, grad = jax.jacfwd(grad_twice, has_aux=True)(z)
    return grad, jnp.diagonal(hess)


def _enable_x64():
    """``jax.enable_x64(True)`` (JAX >= 0.6), or the older ``jax.experimental`` spelling."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # pragma: no cover -- older JAX

    return enable_x64()  # pragma: no cover


def _mode(x):
    values, counts = np.unique(np.asarray(x), return_counts=True)
    return int(values[np.argmax(counts)])


@partial(jax.jit, static_argnames=("log_density", "reference", "rtol"))
def _difference_spectrum(log_density, z_points, aux_values, reference: int, rtol: float):
    per_aux = jax.vmap(partial(_first_and_second, log_density), in_axes=(None, 0))
    a, b = jax.vmap(per_aux, in_axes=(0, None))(z_points, aux_values)  # (P, m, n) each
    m, n = a.shape[1], a.shape[2]
    others = np.array([j for j in range(m) if j != reference])
    da = (a - a[:, reference:reference + 1])[:, others].swapaxes(1, 2)  # (P, n, m-1)
    db = (b - b[:, reference:reference + 1])[:, others].swapaxes(1, 2)
    finite = jnp.all(jnp.isfinite(da), (1, 2)) & jnp.all(jnp.isfinite(db), (1, 2))

    def equilibrate(d, level):
        # Rows are scaled to unit norm so the units of a (1/z) and b (1/z^2) do not decide the
        # spectrum. A row whose change is below rtol of the derivative's own size is round-off
        # (vmapped lanes of identical inputs can differ in the last bit) and is zeroed, not
        # inflated to a unit row.
        norm = jnp.linalg.norm(d, axis=-1, keepdims=True)
        keep = (norm > rtol * level[..., None]) & (norm > 0)
        return jnp.where(keep, d / jnp.where(keep, norm, 1.0), 0.0)

    level = jnp.concatenate([jnp.linalg.norm(a, axis=1), jnp.linalg.norm(b, axis=1)], axis=1)
    full = equilibrate(jnp.concatenate([da, db], axis=1), level)
    # Per latent: does each block change at all, and is the first-derivative change parallel
    # to the second-derivative change (then the latent adds at most rank 1)?
    ea, eb = full[:, :n], full[:, n:]
    moves_a = jnp.any(ea != 0, axis=-1)
    moves_b = jnp.any(eb != 0, axis=-1)
    parallel = moves_a & moves_b & (jnp.abs(jnp.sum(ea * eb, axis=-1)) > 1.0 - rtol)
    return full, finite, moves_a, moves_b, parallel


def _spectrum(d, rtol: float):
    """Singular values of each ``(rows, m-1)`` matrix of a stack, divided by the largest, and
    how many exceed ``rtol``."""
    s = np.linalg.svd(np.asarray(d, np.float64), compute_uv=False)
    top = s[:, :1]
    s = np.divide(s, top, out=np.zeros_like(s), where=top > 0)
    return s, np.sum(s > rtol, axis=-1)


def _check_aux(aux_values):
    leaves = jax.tree_util.tree_leaves(aux_values)
    if not leaves:
        raise InputError("aux_values is empty; pass an array (or pytree) with leading axis m.")
    lengths = set()
    for leaf in leaves:
        arr = np.asarray(leaf)
        if arr.ndim == 0:
            raise InputError(
                "aux_values must have a leading axis over the m auxiliary values, e.g. "
                "np.arange(m) for domain labels or an (m, k) array; got a scalar."
            )
        lengths.add(arr.shape[0])
    if len(lengths) != 1:
        raise InputError(
            f"Every leaf of aux_values needs the same leading length m; got {sorted(lengths)}."
        )
    m = lengths.pop()
    if m < 2:
        raise InputError(
            f"aux_values holds m={m} value; differences need at least 2 (and the condition at "
            "least 2n+1)."
        )
    return m


class _ByIdentity:
    """Hashable stand-in for an unhashable callable (e.g. an Equinox module or a bound method of
    a NamedTuple holding arrays), so it can be a static argument of ``jax.jit``."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, z, aux):
        return self.fn(z, aux)


def _hashable(fn):
    try:
        hash(fn)
    except TypeError:
        return _ByIdentity(fn)
    return fn


def _check_inputs(log_density, z_points, aux_values, reference, rtol, min_share):
    if not callable(log_density):
        raise InputError("log_density must be a function (z (n,), aux) -> scalar.")
    z = np.asarray(z_points)
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 1 or z.dtype.kind not in "fiu":
        raise InputError(
            f"z_points must be a numeric array (P, n) with P >= 1; got shape {z.shape}. For a "
            "single point use z[None]."
        )
    if not np.all(np.isfinite(z)):
        raise InputError("z_points contains NaN or infinite values; drop those points.")
    m = _check_aux(aux_values)
    if int(reference) != reference or not 0 <= reference < m:
        raise InputError(f"reference must be an index in 0..{m - 1}, got {reference!r}.")
    if not 0 < rtol < 1:
        raise InputError(f"rtol must lie in (0, 1), got {rtol}.")
    if not 0 < min_share <= 1:
        raise InputError(f"min_share must lie in (0, 1], got {min_share}.")
    z = jnp.asarray(z, dtype=jnp.result_type(float))
    aux0 = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[0], aux_values)
    try:
        out = jax.eval_shape(log_density, z[0], aux0)
    except Exception as err:  # noqa: BLE001 -- any failure of user code is an input problem
        raise InputError(
            f"log_density(z, aux) failed on z of shape {z.shape[1:]} and one auxiliary value: "
            f"{type(err).__name__}: {err}. It must take one point z (n,) and one aux value"
            + ("; index parameter tables as JAX arrays (jnp.asarray(table)[u]), since u is "
               "traced." if isinstance(err, (jax.errors.TracerArrayConversionError,
                                             jax.errors.TracerIntegerConversionError)) else ".")
        ) from err
    if getattr(out, "shape", None) != ():
        raise InputError(
            f"log_density must return a scalar per (z, aux) pair; it returned shape "
            f"{getattr(out, 'shape', type(out))}. Sum factorial terms over latents with .sum()."
        )
    return z, m


def _latents(mask) -> str:
    return "[" + ", ".join(str(i) for i in np.flatnonzero(mask)) + "]"


def _seed_reason(n, m, rank, share, passed, min_sv, n_bad, rtol, min_share, frozen,
                 flat_b, flat_a, parallel):
    req = 2 * n
    if passed:
        return (
            f"rank {req} = 2n at {share:.0%} of points (>= {min_share:.0%} required) with "
            f"{m} auxiliary values; median smallest normalised singular value {min_sv:.3g} "
            f"(> rtol = {rtol:g})."
        )
    causes = []
    if m - 1 < req:
        causes.append(
            f"only {m} auxiliary values: the {req} x {m - 1} difference matrix has rank at most "
            f"{m - 1} < 2n = {req}; the condition needs at least 2n+1 = {req + 1} values")
    if rank == 0 or frozen.all():
        causes.append("log p(z | aux) does not change with the auxiliary variable (all "
                      "derivative differences vanish, e.g. identical domains)")
    else:
        if frozen.any():
            causes.append(f"the density of latent(s) {_latents(frozen)} does not change with "
                          "the auxiliary variable")
        if flat_b.any():
            causes.append(
                f"the second derivatives d2/dz_k2 log p of latent(s) {_latents(flat_b)} do not "
                "change (e.g. only locations change, a homoscedastic transition, or a Laplace "
                "density, whose curvature is zero), so each adds at most rank 1")
        if flat_a.any():
            causes.append(f"the first derivatives of latent(s) {_latents(flat_a)} do not change")
        if parallel.any():
            causes.append(
                f"for latent(s) {_latents(parallel)} the change of the first derivative is "
                "proportional to the change of the second at each point (e.g. a zero-mean "
                "Gaussian whose scales alone change has Delta a_k = z_k Delta b_k), so each "
                "adds at most rank 1")
        if not causes:
            causes.append(
                f"the derivative changes are (nearly) linearly dependent across the {m} "
                f"auxiliary values (median {req}-th normalised singular value {min_sv:.2g}, "
                f"below rtol = {rtol:g})")
    text = ((f"rank {rank} < 2n = {req} at most points ({share:.0%} pass, {min_share:.0%} "
             f"needed): " if rank < req else
             f"rank 2n = {req} at only {share:.0%} of points ({min_share:.0%} needed); at the "
             "others ") + "; ".join(causes) + ".")
    if n_bad:
        text += f" {n_bad} point(s) had non-finite derivatives and count as failing."
    return text


def sufficient_variability(log_density, z_points, aux_values, *, reference: int = 0,
                           rtol: float | None = None, min_share: float = 0.9,
                           x64: bool = False) -> VariabilityReport:
    """Check the seed's sufficient-variability condition at many points.

    Parameters
    ----------
    log_density : callable ``(z (n,), aux) -> scalar``
        Any differentiable log-density ``log p(z | aux)`` of one point, factorial in ``z``.
        ``aux`` is one auxiliary value: an int label, a vector (e.g. ``z_{t-1}`` of a transition
        density), or a pytree; it is traced, so index parameter tables held as JAX arrays
        (``jnp.asarray(table)[u]``), not NumPy arrays. The function is a static argument of a cached ``jax.jit``: pass
        the same (hashable) function object to reuse the compilation; an unhashable callable
        is compiled afresh on every call.
    z_points : array ``(P, n)``
        Points at which to check (e.g. a sample of the latents).
    aux_values : array or pytree with leading axis ``m``
        The auxiliary values to compare (``np.arange(U)`` for domain labels).
    reference : int
        Index of the auxiliary value the others are differenced against.
    rtol : float, optional
        A singular value counts as non-zero when it exceeds ``rtol`` times the largest.
        Default :data:`DEFAULT_RTOL` of the precision: 1e-3 in float32, 1e-9 with ``x64``,
        each about four orders of magnitude above that precision's round-off, so "passed"
        means clearly independent, not independent by rounding noise.
    min_share : float
        Share of points that must reach rank ``2n`` for ``passed``.
    x64 : bool
        Compute the derivatives and their differences in float64 (inside
        ``jax.enable_x64``; the function's tables are read in float64 too). For a known
        density (a simulator's true prior) this separates a condition that fails on a set of
        positive measure (exact zeros) from one that degenerates only near a null set (values
        that fall like a power of the distance to it), which float32's floor cannot.

    Returns
    -------
    VariabilityReport
        Never raises on a failed condition; ``passed`` and ``reason`` say what happened.

    Raises
    ------
    InputError
        For malformed input (shapes, ``m < 2``, a ``log_density`` that fails or is not scalar).

    Examples
    --------
    >>> import jax.scipy.stats as st
    >>> rng = np.random.default_rng(0)
    >>> loc, scale = jnp.asarray(rng.normal(size=(5, 2))), jnp.asarray(rng.uniform(0.5, 2, (5, 2)))
    >>> logp = lambda z, u: st.norm.logpdf(z, loc[u], scale[u]).sum()
    >>> r = sufficient_variability(logp, rng.normal(size=(20, 2)), np.arange(5))
    >>> r.rank, r.required, r.passed
    (4, 4, True)
    """
    if x64:
        with _enable_x64():
            return sufficient_variability(log_density, np.asarray(z_points, np.float64),
                                          aux_values, reference=reference, rtol=rtol,
                                          min_share=min_share, x64=False)
    rtol = DEFAULT_RTOL[bool(jax.config.jax_enable_x64)] if rtol is None else rtol
    z, m = _check_inputs(log_density, z_points, aux_values, reference, rtol, min_share)
    n = z.shape[1]
    aux = jax.tree_util.tree_map(jnp.asarray, aux_values)
    fn = _hashable(log_density)
    # Points in chunks of one size (the last one padded by repeating a point), so that the
    # per-point arrays (derivatives (m, n, n), differences (2n, m-1)) stay within
    # SPECTRUM_BYTES whatever the number of auxiliary values, with one compilation.
    chunk = int(max(1, min(len(z), SPECTRUM_BYTES // (4 * m * (n * n + 16 * n)))))
    parts = []
    for start in range(0, len(z), chunk):
        block = z[start:start + chunk]
        pad = chunk - len(block)
        if pad:
            block = jnp.concatenate([block, jnp.repeat(block[-1:], pad, axis=0)])
        full, *flags = (np.asarray(a)[:chunk - pad] for a in
                        _difference_spectrum(fn, block, aux, int(reference), float(rtol)))
        # The spectra on the host (LAPACK through NumPy, one small problem per point): XLA's
        # batched SVD / QR of these wide matrices stalled intermittently on CPU, and its SVD
        # of a wide matrix works on an (m-1) x (m-1) array per point (100 GB at 256 points and
        # 9,961 domains); NumPy's needs O(rows x (m-1)).
        full = np.nan_to_num(full, nan=0.0, posinf=0.0, neginf=0.0)
        sv, rank = _spectrum(full, rtol)
        parts.append([sv, rank, _spectrum(full[:, :n], rtol)[1], _spectrum(full[:, n:], rtol)[1],
                      *flags])
    sv, rank, rank_a, rank_b, finite, moves_a, moves_b, parallel = (
        np.concatenate(column) for column in zip(*parts))
    sv = np.where(finite[:, None], sv, np.nan)
    req = 2 * n
    ok = finite & (rank >= req)
    share = float(ok.mean())
    nth = sv[:, req - 1] if sv.shape[1] >= req else np.zeros(len(sv))
    min_sv = float(np.nanmedian(nth)) if np.any(finite) else float("nan")
    passed = share >= min_share
    r, ra, rb = _mode(rank[finite] if finite.any() else rank), _mode(rank_a), _mode(rank_b)
    # A per-latent pattern counts when it holds at most (finite) points.
    keep = finite if finite.any() else np.ones_like(finite)
    most = lambda mask: mask[keep].mean(0) > 0.5  # noqa: E731
    frozen = most(~moves_a & ~moves_b)
    parallel = most(parallel) if m - 1 >= 2 else np.zeros(n, bool)  # one column: always parallel
    reason = _seed_reason(n, m, r, share, passed, min_sv, int((~finite).sum()), rtol, min_share,
                          frozen, most(moves_a & ~moves_b), most(moves_b & ~moves_a), parallel)
    return VariabilityReport(r, int(rank.min()), int(rank.max()), req, ra, rb, sv, min_sv,
                             share, bool(passed), reason, int(z.shape[0]), int(m), float(rtol),
                             float(min_share))


# ---------------------------------------------------------------------------------------------
# The iVAE exponential-family condition

_STATISTICS = {"gaussian": ("z", "z^2"), "laplace": ("|z - loc|",)}


def _natural_parameters(prior, loc, scale):
    if prior == "gaussian":
        return np.stack([loc / scale**2, -0.5 / scale**2], axis=-1)
    return (-1.0 / scale)[..., None]


def exponential_family_condition(prior: str, loc, scale, *, rtol: float = 1e-3) -> ExpFamilyReport:
    """Check iVAE's exponential-family condition for a factorial Gaussian or Laplace prior.

    Parameters
    ----------
    prior : {"gaussian", "laplace"}
        Gaussian: ``T(z) = (z, z^2)`` with natural parameters ``(loc / scale^2,
        -1 / (2 scale^2))``. Laplace: ``T(z) = |z - loc|`` with natural parameter
        ``-1 / scale``, an exponential family only when ``loc`` is the same in every domain.
        When Laplace locations change across domains the statistic itself depends on ``u``;
        the report is then ``applicable=False`` (use the seed's condition; note that the
        Laplace curvature is zero almost everywhere, so that condition fails as well).
    loc, scale : arrays ``(U, n)``
        Per-domain locations and scales (``GroundTruth.domain_loc`` / ``domain_scale``, or a
        fitted iVAE's ``prior_loc`` / ``prior_scale``).
    rtol : float
        A natural parameter "varies" when its range across domains exceeds ``rtol`` times the
        largest magnitude of that statistic's parameters; the same ``rtol`` sets the numerical
        rank.

    Returns
    -------
    ExpFamilyReport

    Raises
    ------
    InputError
        Unknown prior, mismatched or non-positive tables.

    Examples
    --------
    >>> scale = np.random.default_rng(0).uniform(0.5, 3.0, size=(4, 3))
    >>> r = exponential_family_condition("gaussian", np.zeros((4, 3)), scale)
    >>> r.statistics, r.k, r.rank, r.required, r.passed
    (('z^2',), 1, 3, 3, True)
    """
    if prior not in ("gaussian", "laplace", "student_t"):
        raise InputError(f"Unknown prior {prior!r}; choose 'gaussian' or 'laplace'.")
    loc, scale = np.asarray(loc, np.float64), np.asarray(scale, np.float64)
    if loc.ndim != 2 or loc.shape != scale.shape or loc.shape[0] < 1:
        raise InputError(
            f"loc and scale must be tables (U, n) of the same shape; got {loc.shape} and "
            f"{scale.shape}."
        )
    if not (np.all(np.isfinite(loc)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise InputError("scale must be positive and loc, scale finite.")
    U, n = loc.shape
    empty = np.zeros((n, 0), bool)
    if prior == "student_t":
        return ExpFamilyReport(False, (), empty, 0, 0, 0, np.zeros(0), False,
                               "The Student-t prior is not an exponential family; only the "
                               "seed's condition applies.", U)
    if prior == "laplace" and np.any(np.ptp(loc, axis=0) > 0):
        moving = np.flatnonzero(np.ptp(loc, axis=0) > 0).tolist()
        return ExpFamilyReport(
            False, (), empty, 0, 0, 0, np.zeros(0), False,
            f"Laplace locations change across domains (latents {moving}), so the statistic "
            "|z - loc(u)| depends on u and the prior is not an exponential family with fixed "
            "sufficient statistics; only the seed's condition applies.", U)
    lam = _natural_parameters(prior, loc, scale)  # (U, n, k_all)
    names = _STATISTICS[prior]
    size = np.max(np.abs(lam), axis=(0, 1), keepdims=True)[0]  # (1, k_all)
    varying = np.ptp(lam, axis=0) > rtol * np.where(size > 0, size, 1.0)  # (n, k_all)
    k_per_latent = varying.sum(1)
    used = tuple(name for j, name in enumerate(names) if varying[:, j].any())
    required = int(varying.sum())
    diffs = (lam[1:] - lam[:1])[:, varying]  # (U-1, required)
    if diffs.size:
        norm = np.linalg.norm(diffs, axis=0)
        s = np.linalg.svd(diffs / np.where(norm > 0, norm, 1.0), compute_uv=False)
        s = s / s[0] if s[0] > 0 else s
    else:
        s = np.zeros(0)
    rank = int(np.sum(s > rtol))
    k = int(k_per_latent.max()) if n else 0
    frozen = np.flatnonzero(k_per_latent == 0).tolist()
    # Khemakhem et al.'s Theorem 1 identifies the latents only up to an affine map of T(z);
    # their Theorem 3 sharpens that to a permutation when k = 1 only for a statistic that is
    # not monotonic. A Gaussian latent whose location alone changes has k = 1 and T = z
    # (monotonic): a rotation of such latents is still admissible.
    affine_only = [] if prior != "gaussian" else np.flatnonzero(
        varying[:, 0] & ~varying[:, 1]).tolist()
    passed = not frozen and not affine_only and rank == required
    stat_text = ", ".join(used) if used else "none"
    if frozen:
        reason = (f"latent(s) {frozen} have no natural parameter that changes across the {U} "
                  "domains, so their distribution is the same everywhere and they cannot be "
                  "identified.")
    elif affine_only and rank == required:
        reason = (f"latent(s) {affine_only} change only their location across the {U} domains "
                  "(k = 1 with the monotonic statistic T(z) = z), so the theorem identifies "
                  "them up to an affine map only, not up to permutation: their scales must "
                  "change too.")
    elif passed:
        reason = (f"with T(z) = ({stat_text}) (k = {k}) the {U - 1} x {required} natural-parameter "
                  f"differences have full rank {rank} = n k = {required}; this needs at least "
                  f"n k + 1 = {required + 1} domains and there are {U}.")
    else:
        reason = (f"with T(z) = ({stat_text}) (k = {k}) the natural-parameter differences have "
                  f"rank {rank} < n k = {required}"
                  + (f": {U} domains give at most {U - 1} differences, n k + 1 = {required + 1} "
                     "are needed." if U - 1 < required else
                     ": the domains change the parameters in linearly dependent ways."))
    return ExpFamilyReport(True, used, varying, k, rank, required, s, bool(passed), reason, U)


# ---------------------------------------------------------------------------------------------
# Both


def check_identifiability(log_density, z_points, aux_values, *, prior: str | None = None,
                          loc=None, scale=None, reference: int = 0,
                          rtol: float | None = None, min_share: float = 0.9,
                          x64: bool = False) -> IdentifiabilityReport:
    """Run the seed's condition and (given a built-in prior) the exponential-family condition.

    Parameters
    ----------
    log_density, z_points, aux_values, reference, rtol, min_share, x64
        As in :func:`sufficient_variability` (the exponential-family condition uses the
        same ``rtol``).
    prior : {"gaussian", "laplace", "student_t"}, optional
        The prior family, when ``log_density`` is a built-in factorial prior with per-domain
        tables ``loc`` and ``scale`` ``(U, n)`` (aligned with ``aux_values``); omit for other
        densities (e.g. transition densities), and only the seed's condition is checked.

    Returns
    -------
    IdentifiabilityReport
        ``reason`` says which condition holds and why (for instance that a zero-mean Gaussian
        with changing scales fails the seed's condition, rank ``n`` of ``2n``, but meets the
        exponential-family condition with ``T(z) = z^2``).

    Examples
    --------
    >>> import jax.scipy.stats as st
    >>> scale = np.random.default_rng(1).uniform(0.5, 3.0, size=(3, 2)); loc = 0 * scale
    >>> logp = lambda z, u: st.norm.logpdf(z, 0.0, jnp.asarray(scale)[u]).sum()
    >>> r = check_identifiability(logp, np.ones((8, 2)), np.arange(3), prior="gaussian",
    ...                           loc=loc, scale=scale)
    >>> r.holds
    ('exponential_family',)
    """
    seed = sufficient_variability(log_density, z_points, aux_values, reference=reference,
                                  rtol=rtol, min_share=min_share, x64=x64)
    rtol = seed.rtol
    expf = None
    if prior is not None:
        if loc is None or scale is None:
            raise InputError("Pass both loc and scale tables (U, n) with prior=...")
        expf = exponential_family_condition(prior, loc, scale, rtol=rtol)
    holds = tuple(name for name, ok in [("sufficient_variability", seed.passed),
                                        ("exponential_family", expf is not None and expf.passed)]
                  if ok)
    seed_text = f"the seed's sufficient-variability condition {{}}: {seed.reason}"
    exp_text = "" if expf is None else f"the iVAE exponential-family condition {{}}: {expf.reason}"
    if seed.passed and (expf is None or expf.passed):
        reason = ("Identifiable (component-wise, up to permutation): "
                  + seed_text.format("holds") + (" Also " + exp_text.format("holds")
                                                 if expf is not None else ""))
    elif seed.passed:
        reason = ("Identifiable (component-wise, up to permutation): " + seed_text.format("holds")
                  + " (" + exp_text.format("does not") + ")")
    elif expf is not None and expf.passed:
        reason = ("Identifiable under iVAE's theorem although the stronger seed condition fails: "
                  + exp_text.format("holds") + " Whereas " + seed_text.format("fails"))
    else:
        reason = ("Not shown identifiable: " + seed_text.format("fails")
                  + (" And " + exp_text.format("fails" if expf.applicable else "does not apply")
                     if expf is not None else ""))
    return IdentifiabilityReport(seed, expf, holds, bool(holds), reason)


def report_to_dict(report) -> dict:
    """A JSON-able summary of any report of this module (per-point arrays summarised)."""
    if isinstance(report, IdentifiabilityReport):
        return {
            "passed": report.passed,
            "holds": list(report.holds),
            "reason": report.reason,
            "sufficient_variability": report_to_dict(report.sufficient_variability),
            "exponential_family": None if report.exponential_family is None
            else report_to_dict(report.exponential_family),
        }
    if isinstance(report, VariabilityReport):
        sv = np.asarray(report.singular_values, np.float64)
        finite = np.all(np.isfinite(sv), axis=1)
        q = (np.quantile(sv[finite], [0.1, 0.5, 0.9], axis=0) if finite.any()
             else np.full((3, sv.shape[1]), np.nan))
        out = {k: getattr(report, k) for k in (
            "rank", "rank_min", "rank_max", "required", "rank_first", "rank_second",
            "min_normalised_sv", "share_passing", "passed", "reason", "n_points", "n_aux",
            "rtol", "min_share")}
        out["spectrum_q10"], out["spectrum_median"], out["spectrum_q90"] = (
            [None if not np.isfinite(v) else float(v) for v in row] for row in q)
        if not np.isfinite(out["min_normalised_sv"]):
            out["min_normalised_sv"] = None
        return out
    if isinstance(report, ExpFamilyReport):
        return {
            "applicable": report.applicable,
            "statistics": list(report.statistics),
            "varying": np.asarray(report.varying).tolist(),
            "k": report.k,
            "rank": report.rank,
            "required": report.required,
            "singular_values": np.asarray(report.singular_values).tolist(),
            "passed": report.passed,
            "reason": report.reason,
            "n_domains": report.n_domains,
        }
    raise TypeError(f"not a variability report: {type(report).__name__}")
