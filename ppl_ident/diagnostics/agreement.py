"""Agreement between fits from different seeds: evidence of identifiability without ground
truth.

An identifiable model recovers the latents up to permutation and component-wise transforms,
so two fits from different initialisations must agree with each other up to the same
indeterminacies. Their latents are matched by the Hungarian algorithm on the absolute
correlation matrix (exactly as :func:`ppl_ident.diagnostics.mcc` matches learned to true
latents) and the matched correlations averaged. A model that is not identifiable (a VAE with
an isotropic prior: any rotation of z is as good) lands on a different rotation from each seed,
and the agreement drops.

Agreement is necessary, not sufficient: seeds can agree on the same wrong answer. It is what a
user without the true latents can measure.

References
----------
Khemakhem, Kingma, Monti & Hyvarinen (2020), "Variational autoencoders and nonlinear ICA: a
unifying framework", AISTATS (identifiability up to permutation and component-wise maps).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ppl_ident.diagnostics.mcc import mcc
from ppl_ident.errors import InputError

__all__ = ["SeedAgreement", "agreement_verdict", "seed_agreement",
           "MonotoneAlignment", "fit_monotone_alignment", "apply_monotone_alignment"]

class SeedAgreement(NamedTuple):
    """Result of :func:`seed_agreement`.

    Attributes
    ----------
    mean : float
        Mean MCC over the ``K (K - 1) / 2`` pairs of seeds.
    min : float
        The least-agreeing pair's MCC.
    matrix : array ``(K, K)``
        Pairwise MCC (symmetric, ones on the diagonal).
    """

    mean: float
    min: float
    matrix: np.ndarray


def seed_agreement(latents, method: str = "pearson") -> SeedAgreement:
    """Mean pairwise MCC between the latents of ``K`` fits of the same data.

    Parameters
    ----------
    latents : array ``(K, N, n)``
        Each fit's latents (e.g. posterior means) of the same ``N`` observations, in the same
        row order; sequences flattened to ``(K, B*T, n)``.
    method : {"pearson", "spearman"}
        Spearman forgives monotone component-wise maps between the fits.

    Returns
    -------
    SeedAgreement

    Examples
    --------
    >>> rng = np.random.default_rng(0); z = rng.normal(size=(400, 3))
    >>> lat = np.stack([z, 2 * z[:, [1, 2, 0]] - 1, -z])
    >>> round(seed_agreement(lat).mean, 6)
    1.0
    """
    lat = np.asarray(latents, np.float64)
    if lat.ndim != 3 or lat.shape[0] < 2:
        raise InputError(f"seed_agreement needs the latents of at least 2 fits as an array "
                         f"(K, N, n) with K >= 2; got shape {lat.shape}.")
    k = lat.shape[0]
    matrix = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            matrix[i, j] = matrix[j, i] = mcc(lat[i], lat[j], method).score
    pairs = matrix[np.triu_indices(k, 1)]
    return SeedAgreement(float(pairs.mean()), float(pairs.min()), matrix)


class MonotoneAlignment(NamedTuple):
    """A map from one fit's latents onto a reference fit's (:func:`fit_monotone_alignment`).

    Attributes
    ----------
    matching : int array ``(n,)``
        ``matching[i]``: the fit's latent matched to the reference's latent ``i``.
    knots_x, knots_y : arrays ``(n, K)``
        The increasing piecewise-linear map of each matched latent: the fit's values
        (sorted) and the reference's values they are mapped to (non-decreasing).
    sign : array ``(n,)``
        +1 or -1: whether the matched latent is flipped before the increasing map.
    """

    matching: np.ndarray
    knots_x: np.ndarray
    knots_y: np.ndarray
    sign: np.ndarray


def fit_monotone_alignment(reference, latents, knots: int = 200) -> MonotoneAlignment:
    """Align one fit's latents to a reference fit's without any true latent: the permutation
    and signs that maximise the matched correlations (Hungarian, as :func:`seed_agreement`),
    then one monotone map per latent (isotonic regression of the reference's latent on the
    fit's, :func:`scipy.optimize.isotonic_regression`), the indeterminacy an identified model
    leaves (permutation and component-wise invertible maps).

    Parameters
    ----------
    reference, latents : arrays ``(N, n)``
        The two fits' posterior means of the same ``N`` observations.
    knots : int
        The monotone maps are kept at this many quantiles of the fit's latent (linear in
        between, constant beyond the ends).

    Returns
    -------
    MonotoneAlignment

    Examples
    --------
    >>> rng = np.random.default_rng(0); z = rng.normal(size=(2000, 2))
    >>> other = np.c_[np.exp(z[:, 1]), -3 * z[:, 0]]
    >>> a = fit_monotone_alignment(z, other)
    >>> a.matching.tolist(), a.sign.tolist()
    ([1, 0], [-1.0, 1.0])
    >>> bool(np.abs(apply_monotone_alignment(a, other) - z).mean() < 0.05)
    True
    """
    from scipy.optimize import isotonic_regression

    ref, lat = np.asarray(reference, np.float64), np.asarray(latents, np.float64)
    if ref.ndim != 2 or ref.shape != lat.shape:
        raise InputError(f"fit_monotone_alignment needs two (N, n) arrays of the same shape; "
                         f"got {ref.shape} and {lat.shape}.")
    res = mcc(ref, lat, "spearman")
    sign = np.where(res.per_dim < 0, -1.0, 1.0)
    q = np.linspace(0.0, 1.0, int(knots))
    kx, ky = [], []
    for i, j in enumerate(res.matching):
        v = sign[i] * lat[:, j]
        order = np.argsort(v, kind="stable")
        fitted = isotonic_regression(ref[order, i]).x
        pos = np.round(q * (len(v) - 1)).astype(int)
        kx.append(v[order][pos])
        ky.append(fitted[pos])
    return MonotoneAlignment(res.matching, np.asarray(kx), np.asarray(ky), sign)


def apply_monotone_alignment(alignment: MonotoneAlignment, draws) -> np.ndarray:
    """Map draws ``(..., n)`` of a fit's latents onto the reference fit's latents."""
    draws = np.asarray(draws, np.float64)
    out = np.empty(draws.shape[:-1] + (len(alignment.matching),))
    for i, j in enumerate(alignment.matching):
        out[..., i] = np.interp(alignment.sign[i] * draws[..., j], alignment.knots_x[i],
                                alignment.knots_y[i])
    return out


def agreement_verdict(mean: float | None, k: int) -> str:
    """The agreement between ``k`` seeds in plain words: the number, and where it is judged.

    A bare agreement is not evidence: any two fits agree to some degree (for ``n = 2`` every
    rotation already agrees at ``>= 0.707``), so it is compared with the agreement of seeds
    fitted with ``u`` permuted across rows (:mod:`ppl_ident.evidence`, ``ppl-ident check``),
    not with a fixed number.

    >>> agreement_verdict(0.97, 3)[:29]
    'the 3 seeds agree at mean MCC'
    """
    if mean is None:
        return "the seeds' agreement could not be computed (a seed's latents are not finite)."
    return (f"the {k} seeds agree at mean MCC {mean:.3f}; whether that is more than fits whose "
            "labels carry no information reach is tested by `ppl-ident check RUN` (refits with "
            "u permuted across rows), and agreement cannot rule out that all seeds share one "
            "wrong answer.")
