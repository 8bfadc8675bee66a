"""Jacobian structure of the map between learned and true latents.

Identification means that the map ``h`` between learned latents ``z_hat`` and true latents
``z`` is component-wise: its Jacobian is a *scaled permutation* (one non-zero entry per row and
column), and the *same* permutation at every point. This module computes that Jacobian by
automatic differentiation along two routes and scores how far it is from that structure.

Two routes (both ``jax.jacfwd`` under ``jax.vmap`` over evaluation points):

(a) encoder after the true mixing, ``d z_hat / d z = J_enc(g(z)) J_g(z)``
    (:func:`jacobian_encoder_route`, shape ``(P, n_hat, n)``: rows learned, columns true);
(b) true inverse after the learned decoder, ``d z / d z_hat = J_{g^-1}(g_hat(z_hat)) J_g_hat(z_hat)``
    (:func:`jacobian_decoder_route`, shape ``(P, n, n_hat)``: rows true, columns learned).

Without the simulator's mixing but with the true latents ``z`` (a data file that holds ``z``
only), a third route estimates ``d z_hat / d z`` from the pairs ``(z, z_hat)`` alone:

(c) local linear regression (:func:`jacobian_regression_route`): at each evaluation point a
    weighted least-squares plane of ``z_hat`` on its nearest neighbours in ``z`` (shape
    ``(P, n_hat, n)``, oriented like route (a)).

The scores (:func:`jacobian_scores`) take Jacobians oriented *true (rows) x learned
(columns)*, like :func:`ppl_ident.diagnostics.mcc.mcc`'s correlation matrix; transpose route
(a) with :func:`true_by_learned` first. Every score except the Amari distance is computed on
row-normalised ``|J|`` (each row divided by its Euclidean norm), because the scale of each true
latent is arbitrary and must not decide the matching.

References
----------
Amari, Cichocki & Yang (1996), "A new learning algorithm for blind signal separation", NeurIPS
(the Amari index). Hyvarinen, Sasaki & Turner (2019), "Nonlinear ICA using auxiliary variables
and generalized contrastive learning", AISTATS; Khemakhem et al. (2020), "Variational
autoencoders and nonlinear ICA: a unifying framework", AISTATS (identifiability up to
permutation and component-wise transformation).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from ppl_ident.errors import InputError

__all__ = [
    "score_routes",
    "JacobianReport",
    "ROTATION_DRAWS",
    "rotation_off_mass",
    "jacobian_encoder_route",
    "jacobian_decoder_route",
    "jacobian_regression_route",
    "true_by_learned",
    "standardise",
    "amari_distance",
    "dominant_permutations",
    "jacobian_scores",
    "report_to_dict",
]

#: Draws of Haar-random rotations behind :func:`rotation_off_mass` (fixed seed).
ROTATION_DRAWS = 400


@functools.lru_cache(maxsize=64)
def rotation_off_mass(n: int) -> tuple[float, float]:
    """The 5 % quantile and the median of the off-matching mass (as :func:`jacobian_scores`
    measures it) of a Haar-random ``n x n`` rotation: the null of the rotation ambiguity,
    the map a model that is not identified is free to learn. For ``n`` = 2 / 3 / 5 / 10 / 20
    they are about 0.002 / 0.08 / 0.30 / 0.57 / 0.74 and 0.16 / 0.32 / 0.47 / 0.64 / 0.77."""
    rng = np.random.default_rng(20261207)
    q, r = np.linalg.qr(rng.standard_normal((ROTATION_DRAWS, n, n)))
    q = q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
    off = np.array([_mean_off_mass(m[None]) for m in q])
    return float(np.quantile(off, 0.05)), float(np.median(off))


def _mean_off_mass(j) -> float:
    """Off-matching share of the squared, row-normalised *mean* Jacobian: a component-wise
    monotone map keeps the sign of each matched entry, so its mean stays on the permutation
    while pointwise wiggles off it average out."""
    m = np.asarray(j, np.float64).mean(0)
    w = _row_normalise(m) ** 2
    rows, cols = linear_sum_assignment(-w)
    return float(1.0 - w[rows, cols].sum() / max(w.sum(), 1e-300))


class JacobianReport(NamedTuple):
    """Scores of a field of Jacobians, true (rows) x learned (columns).

    Attributes
    ----------
    amari : float
        Median over points of the normalised Amari distance (:func:`amari_distance`):
        0 for a scaled permutation, 1 when every entry has the same magnitude (each learned
        latent mixes all true ones equally); a random dense Gaussian matrix scores ~0.4.
    amari_mean : float
        Mean over points of the same distance.
    agreement : float
        Share of points whose dominant permutation (Hungarian matching on the row-normalised
        ``|J|`` at that point) equals the global matching. 1 is perfect; for an unrelated
        field of Jacobians it falls towards ``1 / n!``.
    off_mass : float
        Share of the squared row-normalised Jacobian off the globally matched entries,
        averaged over points: 0 for a scaled permutation, ``1 - 1/n`` when all entries have the
        same magnitude.
    aligned : array ``(n, n)``
        Mean over points of the row-normalised ``|J|`` with columns reordered by the global
        matching, so a perfect fit shows a diagonal of ones.
    matching : int array ``(n,)``
        ``matching[i]`` is the learned latent matched to true latent ``i`` (Hungarian on the
        mean row-normalised ``|J|``).
    per_point_amari : array ``(P,)``
    mean_off_mass : float
        Off-matching share of the squared row-normalised *mean* Jacobian (signed entries
        averaged over points, then normalised): 0 when the map is on average a scaled
        permutation, whatever its pointwise wiggles.
    rotation_off_mass : tuple of float
        The 5 % quantile and the median of the same share for Haar-random rotations of this
        ``n`` (:func:`rotation_off_mass`): the null of the rotation ambiguity.
    verdict : str
        ``"identified"`` when ``mean_off_mass`` is below the rotations' 5 % quantile (closer to
        a permutation than 95 % of random rotations) and at least half the points share the
        global permutation; ``"entangled"`` when it is at least the rotations' median (no
        closer to a permutation than a typical rotation); ``"partial"`` in between.
    reason : str
        One sentence with the numbers behind the verdict.
    """

    amari: float
    amari_mean: float
    agreement: float
    off_mass: float
    aligned: np.ndarray
    matching: np.ndarray
    per_point_amari: np.ndarray
    mean_off_mass: float
    rotation_off_mass: tuple
    verdict: str
    reason: str


def _pointwise_u(u):
    return None if u is None else 0


def jacobian_encoder_route(encoder_mean, g, z, u=None):
    """Jacobian of ``z -> encoder_mean(g(z), u)`` at every point: route (a).

    Parameters
    ----------
    encoder_mean : callable ``(x (d,), u) -> (n_hat,)``
        The learned encoder's posterior mean for one observation, e.g.
        :func:`ppl_ident.inference.encoder_mean_fn`.
    g : callable ``(n,) -> (d,)``
        The true mixing for one point (``GroundTruth.g`` works on single vectors).
    z : array ``(P, n)``
        True latents at which to evaluate.
    u : array ``(P,)`` or ``(P, k)``, optional
        The auxiliary variable of each point (passed to the encoder); None for encoders that
        ignore it.

    Returns
    -------
    jac : array ``(P, n_hat, n)``
        ``jac[p, j, i] = d z_hat_j / d z_i`` at point ``p`` (rows learned, columns true).

    Examples
    --------
    >>> jac = jacobian_encoder_route(lambda x, u: 2.0 * x[::-1], lambda z: z, jnp.ones((4, 3)))
    >>> jac.shape
    (4, 3, 3)
    """
    z = jnp.atleast_2d(jnp.asarray(z))
    fn = jax.jacfwd(lambda zi, ui: encoder_mean(g(zi), ui))
    # One jit around the vmapped Jacobian: eager op-by-op dispatch of a vmapped jacfwd through
    # an MLP costs seconds, the compiled version milliseconds.
    batched = jax.jit(jax.vmap(fn, in_axes=(0, _pointwise_u(u))))
    return batched(z, None if u is None else jnp.asarray(u))


def jacobian_decoder_route(g_inv, decoder, z_hat):
    """Jacobian of ``z_hat -> g_inv(decoder(z_hat))`` at every point: route (b).

    Parameters
    ----------
    g_inv : callable ``(d,) -> (n,)``
        The true unmixing for one point (``GroundTruth.g_inv``).
    decoder : callable ``(n_hat,) -> (d,)``
        The learned decoder for one latent vector, in data coordinates
        (:func:`ppl_ident.inference.data_mean_fn`).
    z_hat : array ``(P, n_hat)``
        Learned latents at which to evaluate (e.g. encoder means of observed ``x``).

    Returns
    -------
    jac : array ``(P, n, n_hat)``
        ``jac[p, i, j] = d z_i / d z_hat_j`` (rows true, columns learned).

    Examples
    --------
    >>> jac = jacobian_decoder_route(lambda x: x, lambda zh: jnp.tanh(zh), jnp.zeros((5, 2)))
    >>> np.allclose(jac, np.eye(2))
    True
    """
    z_hat = jnp.atleast_2d(jnp.asarray(z_hat))
    return jax.jit(jax.vmap(jax.jacfwd(lambda zh: g_inv(decoder(zh)))))(z_hat)


def jacobian_regression_route(z, z_hat, points, n_neighbours: int | None = None):
    """``d z_hat / d z`` at ``points`` estimated from ``(z, z_hat)`` pairs only.

    At each evaluation point ``z_p`` the ``k`` nearest rows in ``z`` (Euclidean distance after
    dividing each true latent by its standard deviation) are fitted by the plane
    ``z_hat ~ a + B (z - z_p)``, weighted by a tricube kernel of the distance relative to the
    ``k``-th neighbour's; ``B`` is the Jacobian. An exactly affine map is recovered exactly;
    for a smooth map the error is of the order of its curvature times the neighbourhood's
    radius, so more rows (a smaller radius) sharpen the estimate.

    Parameters
    ----------
    z : array ``(N, n)``
        True latents of every row.
    z_hat : array ``(N, n_hat)``
        Learned latents (e.g. posterior means) of the same rows.
    points : int array ``(P,)``
        Rows at which the Jacobian is estimated.
    n_neighbours : int, optional
        ``k``; default ``max(30, 10 (n + 1))``, at most ``N``.

    Returns
    -------
    array ``(P, n_hat, n)``
        Rows learned, columns true (as :func:`jacobian_encoder_route`; orient it with
        :func:`true_by_learned` ``(jac, "encoder")``).

    Examples
    --------
    >>> rng = np.random.default_rng(0); z = rng.normal(size=(2000, 2))
    >>> jac = jacobian_regression_route(z, z[:, ::-1] * [2.0, -1.0], np.arange(5))
    >>> np.abs(np.round(jac[0], 6)).tolist()
    [[0.0, 2.0], [1.0, 0.0]]
    """
    from scipy.spatial import cKDTree

    z, z_hat = np.asarray(z, np.float64), np.asarray(z_hat, np.float64)
    points = np.asarray(points, np.int64)
    if z.ndim != 2 or z_hat.ndim != 2 or len(z) != len(z_hat):
        raise InputError(f"jacobian_regression_route needs z (N, n) and z_hat (N, n_hat) with "
                         f"the same N; got {z.shape} and {z_hat.shape}.")
    n = z.shape[1]
    k = int(min(len(z), n_neighbours or max(30, 10 * (n + 1))))
    if k < n + 2:
        raise InputError(f"The regression route needs more than n + 1 = {n + 1} rows to fit a "
                         f"plane; got {len(z)}.")
    scale = z.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    dist, nbr = cKDTree(z / scale).query(z[points] / scale, k=k)
    radius = np.maximum(dist[:, -1:], 1e-12)
    w = np.sqrt((1.0 - np.clip(dist / (radius * 1.0001), 0.0, 1.0) ** 3) ** 3)  # sqrt tricube
    dz = z[nbr] - z[points][:, None, :]                                        # (P, k, n)
    design = np.concatenate([np.ones(dz.shape[:2] + (1,)), dz], axis=-1) * w[..., None]
    target = z_hat[nbr] * w[..., None]                                         # (P, k, n_hat)
    coef = np.stack([np.linalg.lstsq(a, b, rcond=None)[0] for a, b in zip(design, target)])
    return np.swapaxes(coef[:, 1:, :], -1, -2)                                 # (P, n_hat, n)


def true_by_learned(jac, route: str):
    """Orient a route's Jacobians as true (rows) x learned (columns).

    ``route="encoder"`` (or ``"regression"``) transposes ``d z_hat / d z``; ``"decoder"``
    returns the decoder route unchanged.

    For a scaled permutation the orientation and the direction of the map do not matter: the
    inverse of a scaled permutation is the transposed permutation with inverted scales, so
    both routes describe the same structure and give the same matching.
    """
    if route not in ("encoder", "decoder", "regression"):
        raise InputError(f"Unknown route {route!r}; choose 'encoder', 'decoder' or "
                         "'regression'.")
    jac = jnp.asarray(jac)
    return jac if route == "decoder" else jnp.swapaxes(jac, -1, -2)


def standardise(jac, true_scale, learned_scale):
    """Jacobian between *standardised* latents.

    Each latent's scale is arbitrary (the learned ones are identified only up to scale, and
    the true ones come with whatever scales the simulator drew), and the Amari distance of a
    matrix that is not exactly a scaled permutation depends on them. Dividing every true and
    learned latent by its standard deviation removes that arbitrariness, the convention MCC
    follows implicitly through correlations.

    Parameters
    ----------
    jac : array ``(P, n, n_hat)``
        True (rows) x learned (columns), ``d z_i / d z_hat_j``.
    true_scale : array ``(n,)``
        Standard deviation of each true latent (e.g. over the evaluation points).
    learned_scale : array ``(n_hat,)``
        Standard deviation of each learned latent.

    Returns
    -------
    array ``(P, n, n_hat)``
        ``jac[p, i, j] * learned_scale[j] / true_scale[i]``, i.e.
        ``d (z_i / s_i) / d (z_hat_j / t_j)``.

    Examples
    --------
    >>> standardise(np.array([[[2.0, 1.0], [0.0, 4.0]]]), np.array([2.0, 1.0]),
    ...             np.array([1.0, 0.5])).tolist()
    [[[1.0, 0.25], [0.0, 2.0]]]
    """
    true_scale, learned_scale = np.asarray(true_scale, float), np.asarray(learned_scale, float)
    if np.any(~(true_scale > 0)) or np.any(~(learned_scale > 0)):
        raise InputError("Latent scales must be positive; a constant latent has no scale.")
    return np.asarray(jac) * learned_scale[None, None, :] / true_scale[None, :, None]


def amari_distance(jac):
    """Normalised Amari distance of each square matrix.

    .. math::

        d(P) = \\frac{1}{2n(n-1)} \\Big[\\sum_i \\Big(\\sum_j \\frac{|p_{ij}|}{\\max_k |p_{ik}|}
        - 1\\Big) + \\sum_j \\Big(\\sum_i \\frac{|p_{ij}|}{\\max_k |p_{kj}|} - 1\\Big)\\Big]

    Parameters
    ----------
    jac : array ``(..., n, n)``

    Returns
    -------
    array ``(...)``
        NumPy for NumPy input, JAX otherwise. In ``[0, 1]``: 0 exactly for a scaled permutation (any signs, any scales), 1 when all
        entries have the same magnitude. It is invariant to permutations of rows and columns,
        to signs and to transposition, and to a common scale; it is zero for a scaled
        permutation whatever the scales, but away from that it depends on the relative scales
        of the rows and columns (as the standard index does). An all-zero row or column counts as hopeless (1 for that
        row or column). For ``n = 1`` the distance is 0.

    Examples
    --------
    >>> float(amari_distance(jnp.array([[0.0, -3.0], [0.5, 0.0]])))
    0.0
    >>> float(amari_distance(jnp.ones((3, 3))))
    1.0
    """
    # numpy in, numpy out (no per-shape XLA compilation for one-off scoring); jax in, jax out
    # (jit- and vmap-able).
    xp = np if isinstance(jac, np.ndarray) else jnp
    a = xp.abs(xp.asarray(jac))
    n = a.shape[-1]
    if a.shape[-2] != n:
        raise InputError(
            f"The Amari distance needs square Jacobians; got {a.shape[-2:]}. Fit with "
            "--latent-dim equal to the true number of latents to compare them."
        )
    if n == 1:
        return xp.zeros(a.shape[:-2])

    def side(m, axis):
        mx = xp.max(m, axis=axis)
        safe = xp.where(mx > 0, mx, 1.0)
        ratio = xp.where(mx > 0, xp.sum(m, axis=axis) / safe - 1.0, n - 1)
        return xp.sum(ratio, axis=-1)

    return (side(a, -1) + side(a, -2)) / (2.0 * n * (n - 1))


def _row_normalise(a):
    norm = np.linalg.norm(a, axis=-1, keepdims=True)
    return np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)


def dominant_permutations(weights):
    """Hungarian matching (maximum total weight) of every matrix in a stack.

    Parameters
    ----------
    weights : array ``(P, n, n)``
        Non-negative weights (e.g. row-normalised ``|J|``).

    Returns
    -------
    perms : int array ``(P, n)``
        ``perms[p, i]`` is the column matched to row ``i`` at point ``p``.

    Notes
    -----
    Where the row-wise argmax is already a permutation it is the optimal assignment (it attains
    the upper bound ``sum_i max_j w_ij``), so it is taken directly, vectorised; only the
    remaining points go through :func:`scipy.optimize.linear_sum_assignment`.
    """
    w = np.asarray(weights, dtype=np.float64)
    p, n, _ = w.shape
    perms = np.argmax(w, axis=-1)
    is_perm = (np.sort(perms, axis=-1) == np.arange(n)).all(-1)
    for i in np.flatnonzero(~is_perm):
        rows, cols = linear_sum_assignment(-w[i])
        perms[i] = cols[np.argsort(rows)]
    return perms


def jacobian_scores(jac) -> JacobianReport:
    """Score how close a field of Jacobians is to one scaled permutation.

    Parameters
    ----------
    jac : array ``(P, n, n)``
        Jacobians at ``P`` points, oriented true (rows) x learned (columns)
        (:func:`true_by_learned`).

    Returns
    -------
    JacobianReport

    Raises
    ------
    InputError
        For a non-square or empty stack, or non-finite entries.

    Examples
    --------
    >>> perm_scale = jnp.array([[0.0, 2.0, 0.0], [0.0, 0.0, -0.5], [3.0, 0.0, 0.0]])
    >>> r = jacobian_scores(jnp.broadcast_to(perm_scale, (10, 3, 3)))
    >>> round(r.amari, 6), r.agreement, r.matching.tolist(), r.verdict
    (0.0, 1.0, [1, 2, 0], 'identified')
    """
    j = np.asarray(jac, dtype=np.float64)
    if j.ndim != 3 or j.shape[0] == 0 or j.shape[1] != j.shape[2]:
        raise InputError(
            f"jacobian_scores needs a stack of square Jacobians (P, n, n) with P >= 1; got "
            f"{j.shape}. The learned and true latent dimensions must match."
        )
    if not np.all(np.isfinite(j)):
        raise InputError(
            f"{int(np.sum(~np.isfinite(j)))} Jacobian entries are NaN or infinite; evaluate at "
            "points inside the model's domain (e.g. noise-free x = g(z))."
        )
    n = j.shape[-1]
    per_point = np.asarray(amari_distance(j))
    w = _row_normalise(np.abs(j))
    mean_w = w.mean(0)
    rows, cols = linear_sum_assignment(-mean_w)
    matching = cols[np.argsort(rows)]
    agreement = float(np.mean((dominant_permutations(w) == matching).all(-1)))
    matched = w[:, np.arange(n), matching]
    total = np.sum(w**2, axis=(-1, -2))
    off = np.divide(total - np.sum(matched**2, -1), total, out=np.ones_like(total),
                    where=total > 0)
    amari = float(np.median(per_point))
    mean_off = _mean_off_mass(j)
    if n == 1:
        rot, verdict = (0.0, 0.0), "identified"
    else:
        rot = rotation_off_mass(n)
        if mean_off < rot[0] and agreement >= 0.5:
            verdict = "identified"
        elif mean_off >= rot[1]:
            verdict = "entangled"
        else:
            verdict = "partial"
    reason = (
        f"{mean_off:.1%} of the mean Jacobian's mass lies off the matched entries (random "
        f"rotations: 5 % quantile {rot[0]:.1%}, median {rot[1]:.1%}; identified below the "
        f"quantile, entangled from the median), {agreement:.0%} of {j.shape[0]} points share "
        f"the global permutation (identified needs half), pointwise off-matching mass "
        f"{float(off.mean()):.1%}, median Amari distance {amari:.3f} (0 is a scaled "
        "permutation)"
    )
    return JacobianReport(amari, float(per_point.mean()), agreement, float(off.mean()),
                          mean_w[:, matching], matching, per_point, mean_off, rot, verdict,
                          reason)


def report_to_dict(report: JacobianReport) -> dict:
    """A JSON-able summary of a :class:`JacobianReport` (per-point values summarised)."""
    return {
        "amari": report.amari,
        "amari_mean": report.amari_mean,
        "amari_q90": float(np.quantile(report.per_point_amari, 0.9)),
        "agreement": report.agreement,
        "off_mass": report.off_mass,
        "mean_off_mass": report.mean_off_mass,
        "rotation_off_mass": list(report.rotation_off_mass),
        "aligned": np.asarray(report.aligned).round(6).tolist(),
        "matching": np.asarray(report.matching).tolist(),
        "n_points": int(np.size(report.per_point_amari)),
        "verdict": report.verdict,
        "reason": report.reason,
    }


def score_routes(routes: dict, true_sd, learned_sd) -> dict:
    """Score each route's Jacobians (learned-to-true maps) and return their JSON form.

    ``routes`` ``{"encoder": (P, n_hat, n), "decoder": (P, n, n_hat)}`` (or
    ``{"regression": (P, n_hat, n)}``)
    between standardised latents, skipping non-finite points."""
    # Scores compare standardised latents (MCC's convention), so neither the simulator's
    # per-latent scales nor the learned ones weigh in.
    if np.any(learned_sd <= 0) or np.any(true_sd <= 0):
        return {"applicable": False,
                "reason": "a learned or true latent is constant over the evaluation points "
                          "(collapsed), so the Jacobian between standardised latents is undefined"}
    out = {"applicable": True, "standardised": True}
    for route, jac in routes.items():
        jac = standardise(true_by_learned(jac, route), true_sd, learned_sd)
        finite = np.all(np.isfinite(jac), axis=(1, 2))
        if not finite.any():
            out[route] = {"applicable": False, "reason": "no finite Jacobian at any point"}
            continue
        out[route] = {"applicable": True, **report_to_dict(jacobian_scores(jac[finite]))}
    return out
