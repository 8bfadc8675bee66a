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

__all__ = ["AGREEMENT_HIGH", "SeedAgreement", "agreement_verdict", "seed_agreement"]

#: Mean pairwise MCC from which seeds count as agreeing. On the default identifiable setting
#: the iVAE's seeds agree at about 0.95 and the VAE's at about 0.7 or less
#: (``benchmarks/seed_agreement.py``); 0.9 sits between them.
AGREEMENT_HIGH = 0.9


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


def agreement_verdict(mean: float | None, k: int, high: float = AGREEMENT_HIGH) -> str:
    """The agreement between ``k`` seeds in plain words (what it does and does not show).

    >>> agreement_verdict(0.97, 3)[:29]
    'the 3 seeds agree (mean MCC 0'
    """
    if mean is None:
        return "the seeds' agreement could not be computed (a seed's latents are not finite)."
    if mean >= high:
        return (f"the {k} seeds agree (mean MCC {mean:.3f} >= {high:g}): the fit finds the same "
                "latents from every start, as an identified model does (agreement cannot rule "
                "out that all seeds share one wrong answer).")
    return (f"the {k} seeds disagree (mean MCC {mean:.3f} < {high:g}): the latents depend on "
            "the initialisation, so they are not identified by this fit (more steps, "
            "--restarts, or a model whose prior varies with u).")
