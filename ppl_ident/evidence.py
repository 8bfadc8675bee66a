"""Evidence of identifiability without ground truth: a fit against refits with permuted labels.

:func:`identifiability_evidence` fits the run's model again, with the same settings, to the
same ``x`` with ``u`` permuted across rows (``permutations`` times, each with ``seeds`` seeds),
so that the labels carry no information; it then compares the fit with these refits by the
pure tests of :mod:`ppl_ident.diagnostics.verdict`:

- the learned prior's change across ``u``, per latent and in rank, against the refits' (their
  change is sampling noise alone);
- the seeds' agreement, per latent, against the agreement of the refits' seeds (a run with
  one seed is fitted again with ``seeds`` seeds to measure it).

The verdict (*supported*, *not shown*, *contradicted*) is what ``ppl-ident check`` prints
first and writes to ``check.json``, and what the report shows on its first lines. Nothing here
looks at true latents. It costs ``permutations`` fits of ``seeds`` seeds each (plus one for a
single-seed run).

Example::

    data, _ = simulate_domains(0)
    fitted = fit_model(data._replace(z=None), seeds=3)
    identifiability_evidence(fitted, data)["verdict"]["word"]      # 'supported'
"""

from __future__ import annotations

import jax
import numpy as np

from ppl_ident.diagnostics.verdict import (agreement_test, identifiability_verdict,
                                           per_latent_agreement, prior_variation,
                                           variation_test)
from ppl_ident.errors import InputError
from ppl_ident.families import family_of
from ppl_ident.families.base import evaluation_rows
from ppl_ident.families.predict import encode_chunked

__all__ = ["EVIDENCE_ROWS", "NULL_PERMUTATIONS", "NULL_SEEDS", "identifiability_evidence"]

#: Rows (a seeded subset of larger data) on which the fits' latents are compared.
EVIDENCE_ROWS = 8192
#: Permuted-label refits, and seeds of each: 2 x 3 seeds x n latents null values per test.
NULL_PERMUTATIONS = 2
NULL_SEEDS = 3
#: Points of a continuous u at which the learned prior is compared.
CONTINUOUS_POINTS = 64


def _seed_stack(fitted):
    """``(params stacked on a seed axis, index of the kept fit)``."""
    seeds = fitted.seed_params
    if seeds is None:
        return jax.tree_util.tree_map(lambda a: np.asarray(a)[None], fitted.params), 0
    k = jax.tree_util.tree_leaves(seeds)[0].shape[0]
    for i in range(k):
        same = jax.tree_util.tree_map(lambda a, b: np.array_equal(np.asarray(a)[i], b),  # noqa: B023
                                      seeds, fitted.params)
        if all(jax.tree_util.tree_leaves(same)):
            return seeds, i
    elbos = fitted.metrics.get("seed_elbos")
    return seeds, int(np.argmax(elbos)) if elbos else 0


def _latents(spec, stack, x, u):
    k = jax.tree_util.tree_leaves(stack)[0].shape[0]
    out = []
    for i in range(k):
        p = jax.tree_util.tree_map(lambda a: a[i], stack)  # noqa: B023
        out.append(np.asarray(encode_chunked(spec, p, x, u, 4096)[0], np.float64))
    return np.stack(out)


def _prior_tables(family, spec, stack, u_points):
    k = jax.tree_util.tree_leaves(stack)[0].shape[0]
    return [prior_variation(*family.learned_prior_at(spec, jax.tree_util.tree_map(
        lambda a: a[i], stack), u_points)) for i in range(k)]  # noqa: B023


def identifiability_evidence(fitted, dataset, *, permutations: int = NULL_PERMUTATIONS,
                             seeds: int = NULL_SEEDS, seed: int = 0, progress: bool = False
                             ) -> dict:
    """Test a fit's identifiability against refits with permuted labels.

    Parameters
    ----------
    fitted : Fitted
        An i.i.d. fit (:func:`ppl_ident.workflow.fit_model` or
        :func:`~ppl_ident.workflow.load_run`).
    dataset : Dataset
        The data it was fitted to; its ``z`` is never read.
    permutations, seeds : int
        Permuted-label refits, and seeds of each (also the seeds of the refit of a single-seed
        run).
    seed : int
        Seed of the permutations and of the refits' initialisations.

    Returns
    -------
    dict
        ``verdict`` (``word``, ``reason``, ``next``), ``variation`` and ``agreement`` (the
        tests' numbers, or None), ``null`` (what was refitted) and ``applicable``.
    """
    from ppl_ident.workflow import fit_model, model_inputs

    family = family_of(fitted.spec.name)
    if not family.permutation_null:
        return {"applicable": False,
                "reason": f"the permuted-label null is not implemented for {family.label} "
                          "models",
                "verdict": {"word": "not shown", "reason": "the permuted-label test is not "
                            f"implemented for {family.label} models yet.", "next": ""}}
    if permutations < 1 or seeds < 2:
        raise InputError(f"identifiability_evidence needs permutations >= 1 and seeds >= 2; got "
                         f"{permutations} and {seeds}.")
    activity = family.latent_activity(fitted, dataset, seed=seed)
    collapsed = activity["message"] if activity.get("collapsed") else None
    noise = fitted.metrics.get("observation_noise") or {}
    doubt = noise.get("message") if noise.get("in_doubt") else None
    if not family.prior_depends_on_u(fitted.spec) or dataset.u is None:
        v = identifiability_verdict(prior_depends_on_u=False)
        return {"applicable": True, "verdict": v._asdict(), "variation": None,
                "agreement": None, "null": None}
    u_model = model_inputs(fitted, dataset.u)
    rows = evaluation_rows(dataset.x.shape[0], EVIDENCE_ROWS, seed)
    x_rows = np.asarray(dataset.x[rows], np.float32)
    u_rows = np.asarray(u_model)[rows]
    # every domain, or CONTINUOUS_POINTS quantiles of a continuous u
    points = family.prior_points(fitted.spec, u_model, CONTINUOUS_POINTS)
    settings = fitted.settings
    blind = dataset._replace(z=None)

    stack, kept = _seed_stack(fitted)
    refit = None
    if jax.tree_util.tree_leaves(stack)[0].shape[0] < 2:
        refit = fit_model(blind, settings._replace(seeds=seeds, seed=settings.seed + 104_729),
                          progress=progress)
        agree_stack, agree_kept = _seed_stack(refit)
        agree_spec = refit.spec
    else:
        agree_stack, agree_kept, agree_spec = stack, kept, fitted.spec
    real_agree = per_latent_agreement(_latents(agree_spec, agree_stack, x_rows, u_rows))
    table = prior_variation(*family.learned_prior_at(fitted.spec, fitted.params, points))

    rng = np.random.default_rng(seed)
    null_tables, null_agree = [], []
    for j in range(permutations):
        perm = rng.permutation(dataset.x.shape[0])
        null_u = np.asarray(dataset.u)[perm]
        null = fit_model(blind._replace(u=null_u),
                         settings._replace(seeds=seeds, seed=settings.seed + 7919 * (j + 1)),
                         progress=progress)
        null_stack, _ = _seed_stack(null)
        null_rows = np.asarray(model_inputs(null, null_u))[rows]
        null_agree.append(per_latent_agreement(_latents(null.spec, null_stack, x_rows, null_rows)))
        null_tables += _prior_tables(family, null.spec, null_stack, points)
    variation = variation_test(table, null_tables)
    agreement = agreement_test(real_agree[agree_kept], null_agree)
    k_seeds = jax.tree_util.tree_leaves(agree_stack)[0].shape[0]
    verdict = identifiability_verdict(variation=variation, agreement=agreement,
                                      n_seeds=k_seeds, collapsed=collapsed, noise_doubt=doubt)
    return {
        "applicable": True,
        "verdict": verdict._asdict(),
        "variation": {"size": variation.size.tolist(), "null_max": float(variation.null_size.max()),
                      "varies": variation.varies.tolist(),
                      "singular_values": variation.singular_values.tolist(),
                      "floor": variation.floor, "rank": variation.rank,
                      "required": variation.required, "passed": variation.passed},
        "agreement": {"per_latent": agreement.agreement.tolist(),
                      "null_max": agreement.threshold,
                      "null_median": float(np.median(agreement.null_agreement)),
                      "agrees": agreement.agrees.tolist(), "passed": agreement.passed,
                      "seeds": int(k_seeds), "refitted": refit is not None},
        "null": {"permutations": int(permutations), "seeds": int(seeds),
                 "rows": int(len(rows)), "values": int(len(agreement.null_agreement))},
    }
