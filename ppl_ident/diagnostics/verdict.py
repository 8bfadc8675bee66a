"""A verdict on identifiability without ground truth, earned against a null on the same data.

A scientist with no true latents has two kinds of evidence: the learned prior changes across
the values of ``u`` (what the theory needs), and fits from different seeds find the same
latents (what an identified model does). Neither means anything as a bare number: a prior
fitted to domains that are all the same still varies by its sampling error (about
``1/sqrt(2 N_u)`` in log-scale with ``N_u`` rows per domain), and two fits of any model agree
to some degree (for ``n = 2`` every rotation already agrees at ``>= 0.707``). So each is
compared with the same quantity computed on **fits with ``u`` permuted across rows**: the
same data, the same model and settings, labels that carry no information.

- :func:`prior_variation` and :func:`variation_test`: per latent, how much the learned prior's
  parameters change across the values of ``u`` (centred log-scale, and location in units of the
  latent's scale), and the rank of that change, against the largest value the permuted-label
  fits reach (their noise floor).
- :func:`per_latent_agreement` and :func:`agreement_test`: per latent of the kept fit, the
  matched rank correlation with the other seeds, against the largest per-latent agreement
  between seeds of the permuted-label fits.
- :func:`identifiability_verdict`: three words, *supported*, *not shown* or *contradicted*,
  each with its reason in a sentence and the next step.

Exceeding every one of ``M`` null values is a permutation test at level ``1 / (M + 1)`` when
the real value and the null values are exchangeable under the null (labels without
information); the per-latent values of one fit are not independent, so read it as a
calibrated rule of thumb, not an exact p-value.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ppl_ident.diagnostics.mcc import mcc
from ppl_ident.errors import InputError

__all__ = ["VERDICTS", "AgreementTest", "VariationTest", "Verdict", "agreement_test",
           "identifiability_verdict", "per_latent_agreement", "prior_variation",
           "variation_test"]

#: The three verdicts, in order of strength of the evidence.
VERDICTS = ("supported", "not shown", "contradicted")


def per_latent_agreement(latents, method: str = "spearman") -> np.ndarray:
    """Each fit's latents against the other fits': ``out[k, i]`` is the mean, over the other
    fits ``l``, of the absolute correlation of fit ``k``'s latent ``i`` with its Hungarian match
    in fit ``l`` (as :func:`ppl_ident.diagnostics.mcc` matches).

    Parameters
    ----------
    latents : array ``(K, N, n)``, ``K >= 2``
        The fits' latents (posterior means) of the same rows.
    method : {"spearman", "pearson"}
        Spearman (the default) forgives the monotone per-latent maps an identified model
        leaves free.

    Returns
    -------
    array ``(K, n)``

    Examples
    --------
    >>> rng = np.random.default_rng(0); z = rng.normal(size=(500, 2))
    >>> per_latent_agreement(np.stack([z, np.exp(z[:, ::-1])])).round(6).tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    lat = np.asarray(latents, np.float64)
    if lat.ndim != 3 or lat.shape[0] < 2:
        raise InputError(f"per_latent_agreement needs the latents of at least 2 fits as an "
                         f"array (K, N, n); got shape {lat.shape}.")
    k = lat.shape[0]
    out = np.zeros(lat.shape[::2])
    for a in range(k):
        for b in range(k):
            if a != b:
                out[a] += np.abs(mcc(lat[a], lat[b], method).per_dim)
    return out / (k - 1)


def prior_variation(loc, sd) -> np.ndarray:
    """How a factorial prior changes across the values of ``u``, in units that no per-latent
    rescaling of ``z`` changes: ``(U, 2n)``, the log standard deviations and the locations
    divided by each latent's mean standard deviation, each column centred over ``u``.

    Parameters
    ----------
    loc, sd : arrays ``(U, n)``
        The prior's location and standard deviation at ``U`` values of ``u`` (the domains, or
        points of a continuous ``u``).
    """
    loc, sd = np.asarray(loc, np.float64), np.asarray(sd, np.float64)
    if loc.shape != sd.shape or loc.ndim != 2 or loc.shape[0] < 2:
        raise InputError(f"prior_variation needs loc and sd of shape (U, n) with U >= 2; got "
                         f"{loc.shape} and {sd.shape}.")
    if not np.all(sd > 0):
        raise InputError("prior_variation needs positive standard deviations.")
    table = np.concatenate([np.log(sd), loc / sd.mean(0)], axis=1)
    return table - table.mean(0)


def _latent_size(table) -> np.ndarray:
    n = table.shape[1] // 2
    return np.sqrt(np.mean(table[:, :n] ** 2 + table[:, n:] ** 2, axis=0))


def _top_singular_value(table) -> float:
    return float(np.linalg.svd(table / np.sqrt(len(table)), compute_uv=False)[0])


class VariationTest(NamedTuple):
    """Result of :func:`variation_test`.

    Attributes
    ----------
    size : array ``(n,)``
        Each latent's change across ``u``: root mean square over ``u`` of its centred
        log-scale and scaled location.
    null_size : array ``(M,)``
        The same for every latent of every permuted-label fit.
    varies : bool array ``(n,)``
        ``size`` above every ``null_size``.
    singular_values : array
        Of the real table (divided by ``sqrt(U)``).
    floor : float
        The largest top singular value of a permuted-label table: the size of a change that
        sampling noise alone makes.
    rank : int
        Singular values of the real table above ``floor``.
    required : int
        ``n``: each latent's density must change in a direction of its own.
    passed : bool
        Every latent varies and ``rank >= required``.
    """

    size: np.ndarray
    null_size: np.ndarray
    varies: np.ndarray
    singular_values: np.ndarray
    floor: float
    rank: int
    required: int
    passed: bool


def variation_test(table, null_tables) -> VariationTest:
    """Does the learned prior change across ``u`` more than it does when ``u`` is permuted?

    Parameters
    ----------
    table : array ``(U, 2n)``
        :func:`prior_variation` of the fit.
    null_tables : sequence of arrays ``(U', 2n)``
        :func:`prior_variation` of fits to the same data with ``u`` permuted across rows
        (every seed of every permutation).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sd = np.exp(rng.normal(0, 0.5, (40, 3))); loc = np.zeros((40, 3))
    >>> noise = [prior_variation(loc, np.exp(rng.normal(0, 0.02, (40, 3)))) for _ in range(4)]
    >>> t = variation_test(prior_variation(loc, sd), noise)
    >>> t.varies.tolist(), t.rank, t.passed
    ([True, True, True], 3, True)
    >>> variation_test(noise[0], noise[1:]).passed
    False
    """
    table = np.asarray(table, np.float64)
    if not len(null_tables):
        raise InputError("variation_test needs at least one permuted-label table.")
    size = _latent_size(table)
    null_size = np.concatenate([_latent_size(np.asarray(t, np.float64)) for t in null_tables])
    sv = np.linalg.svd(table / np.sqrt(len(table)), compute_uv=False)
    floor = max(_top_singular_value(np.asarray(t, np.float64)) for t in null_tables)
    varies = size > null_size.max()
    rank = int(np.sum(sv > floor))
    n = table.shape[1] // 2
    return VariationTest(size, null_size, varies, sv, floor, rank, n,
                         bool(varies.all() and rank >= n))


class AgreementTest(NamedTuple):
    """Result of :func:`agreement_test`.

    Attributes
    ----------
    agreement : array ``(n,)``
        Per latent of the kept fit, its mean matched correlation with the other seeds.
    null_agreement : array ``(M,)``
        Every latent of every seed of the permuted-label fits, the same way.
    threshold : float
        ``null_agreement.max()``.
    agrees : bool array ``(n,)``
        ``agreement > threshold``.
    passed : bool
        Every latent agrees.
    """

    agreement: np.ndarray
    null_agreement: np.ndarray
    threshold: float
    agrees: np.ndarray
    passed: bool


def agreement_test(agreement, null_agreements) -> AgreementTest:
    """Do the seeds of the fit agree, latent by latent, more than seeds of fits whose labels
    carry no information?

    Parameters
    ----------
    agreement : array ``(n,)``
        :func:`per_latent_agreement` of the kept fit (its row).
    null_agreements : sequence of arrays ``(K, n)``
        :func:`per_latent_agreement` of each permuted-label fit's seeds.

    Examples
    --------
    >>> agreement_test(np.array([0.97, 0.96, 0.7]), [np.array([[0.6, 0.8, 0.75]])]).agrees
    array([ True,  True, False])
    """
    a = np.asarray(agreement, np.float64)
    if not len(null_agreements):
        raise InputError("agreement_test needs the agreement of at least one permuted-label fit.")
    null = np.concatenate([np.ravel(v) for v in null_agreements])
    threshold = float(null.max())
    agrees = a > threshold
    return AgreementTest(a, null, threshold, agrees, bool(agrees.all()))


class Verdict(NamedTuple):
    """Result of :func:`identifiability_verdict`: ``word`` (one of :data:`VERDICTS`), the
    ``reason`` in a sentence and the ``next`` step."""

    word: str
    reason: str
    next: str


def _latents(mask) -> str:
    idx = np.flatnonzero(mask)
    return ", ".join(f"z{i}" for i in idx)


def identifiability_verdict(*, prior_depends_on_u: bool = True,
                            variation: VariationTest | None = None,
                            agreement: AgreementTest | None = None, n_seeds: int = 1,
                            collapsed: str | None = None,
                            noise_doubt: str | None = None) -> Verdict:
    """Three words on whether a fit identified its latents, from evidence that needs no true
    latent.

    Parameters
    ----------
    prior_depends_on_u : bool
        False for a model whose prior ignores ``u`` (the VAE): *contradicted*.
    variation : VariationTest, optional
        :func:`variation_test` of the learned prior (None: not measured, *not shown*).
    agreement : AgreementTest, optional
        :func:`agreement_test` of the seeds (None with one seed: *not shown*).
    n_seeds : int
        Seeds of the fit (for the wording).
    collapsed : str, optional
        A message when latents have collapsed (*not shown*).
    noise_doubt : str, optional
        A message when the learned observation noise drowns latents (*not shown*).

    Returns
    -------
    Verdict
        *contradicted*: the model cannot identify (its prior ignores ``u``) or the learned
        prior changes across ``u`` no more than with permuted labels; *supported*: every
        latent's prior changes beyond chance, in ``n`` independent directions, and every
        latent is found again by every seed more consistently than permuted-label seeds find
        theirs; *not shown*: anything in between, with what is missing.

    Examples
    --------
    >>> identifiability_verdict(prior_depends_on_u=False).word
    'contradicted'
    """
    if not prior_depends_on_u:
        return Verdict("contradicted", "the model's prior does not depend on u, so any rotation "
                       "of the latents fits as well (the rotation ambiguity of a plain VAE).",
                       "fit a model whose prior changes with u (the default iVAE or flow).")
    if variation is not None and not variation.varies.any():
        return Verdict("contradicted", "the learned prior changes across u no more than it does "
                       f"when u is permuted across rows (largest change {variation.size.max():.3f}"
                       f" against {variation.null_size.max():.3f} with permuted labels): the "
                       "labels carry no information the fit can use.",
                       "use an auxiliary variable whose values change the sources' "
                       "distribution (e.g. recording sessions, conditions, time segments).")
    missing, steps = [], []
    if collapsed:
        missing.append(collapsed.rstrip("."))
        steps.append("fewer latents (--latent-dim)")
    if noise_doubt:
        missing.append(noise_doubt.rstrip("."))
        steps.append("less noisy measurements, or more domains")
    if variation is None:
        missing.append("the learned prior's change across u was not measured")
    elif not variation.passed:
        if not variation.varies.all():
            missing.append(f"the prior of {_latents(~variation.varies)} changes across u no "
                           "more than with permuted labels")
        if variation.rank < variation.required:
            missing.append(f"the prior changes in {variation.rank} independent directions "
                           f"beyond chance, fewer than the n = {variation.required} latents "
                           "need")
        steps.append("more values of u (the theory needs at least 2n + 1 that change the "
                     "sources' distribution differently)")
    if agreement is None:
        missing.append(f"{n_seeds} seed{'s' if n_seeds != 1 else ''} cannot show that the fit "
                       "finds the same latents from every start")
        steps.append("fit with --seeds 3")
    elif not agreement.passed:
        low = ~agreement.agrees
        worst = agreement.agreement[low].min()
        missing.append(f"the seeds agree on {_latents(low)} (down to {worst:.3f}) no more than "
                       f"seeds of permuted-label fits do (up to {agreement.threshold:.3f})")
        steps.append("more steps or --restarts; if it persists, those latents are not "
                     "identified by these data")
    if not missing:
        return Verdict("supported", f"every latent's prior changes across u beyond chance (in "
                       f"{variation.rank} independent directions, n = {variation.required}) "
                       f"and the {n_seeds} seeds find every latent again (matched rank "
                       f"correlation {agreement.agreement.min():.3f} or more) more "
                       f"consistently than seeds of permuted-label fits (at most "
                       f"{agreement.threshold:.3f}).",
                       "read the latents; seeds can still agree on one wrong answer when the "
                       "model is misspecified (check the posterior predictive).")
    return Verdict("not shown", "; ".join(missing) + ".", "; ".join(dict.fromkeys(steps)) + "."
                   if steps else "")
