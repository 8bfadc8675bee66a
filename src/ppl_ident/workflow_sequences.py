"""The sequence branch of :mod:`ppl_ident.workflow`: fit and evaluate ``(B, T, d)`` data.

:func:`ppl_ident.workflow.fit_model` dispatches here when the model is a sequence model
(:data:`ppl_ident.models.SEQUENCE_MODELS`). Minibatches hold whole sequences: the
``batch_size`` setting counts *time steps*, as for i.i.d. data it counts observations, so a
minibatch has ``max(1, batch_size // T)`` sequences.
"""

from __future__ import annotations

import jax
import numpy as np

from ppl_ident.data.simulate import Dataset
from ppl_ident.diagnostics.mcc import matched_r2
from ppl_ident.diagnostics.sequences import (match_regimes, sequence_mcc,
                                             transition_matrix_error)
from ppl_ident.errors import InputError, warn_identifiability
from ppl_ident.inference import encode, fit
from ppl_ident.models import build_model
from ppl_ident.models.temporal import regime_posterior, transition_tables

__all__ = ["fit_sequence_model", "evaluate_sequences", "prepare_sequence_inputs",
           "sequences_per_batch"]


def sequences_per_batch(batch_size: int, n_seq: int, length: int) -> int:
    """Sequences per minibatch: ``batch_size`` time steps, at least one sequence."""
    return int(min(n_seq, max(1, batch_size // length)))


def prepare_sequence_inputs(u, model: str, labels=None):
    """Re-index integer labels ``(B, T)`` to ``0..U-1`` for the temporal iVAE.

    Returns ``(u_model, labels)``; ``(None, None)`` for the models that ignore ``u``.
    """
    from ppl_ident.workflow import prepare_inputs

    if model != "tivae":
        return None, None
    if u is None:
        raise InputError(
            "The temporal iVAE needs integer labels u of shape (B, T) (segment or domain of "
            "every step); this file has none. Use --model regime (hidden regimes) or --model "
            "stationary."
        )
    u = np.asarray(u)
    if u.ndim != 2:
        raise InputError(
            f"Sequence models take integer labels u of shape (B, T); got {u.shape}. Continuous "
            "auxiliary variables are not supported for sequences yet: discretise them."
        )
    flat, labels = prepare_inputs(u.ravel(), labels)
    return flat.reshape(u.shape), labels


def fit_sequence_model(dataset: Dataset, s, *, progress: bool = False, truth=None):
    """Fit a sequence model with settings ``s`` (a checked ``FitSettings``); see
    :func:`ppl_ident.workflow.fit_model`."""
    from ppl_ident.workflow import Fitted, _engine, _fit_metrics, whitening

    B, T, d = dataset.x.shape
    if T <= s.lag:
        raise InputError(f"Sequences of length {T} are too short for lag {s.lag}; use "
                         f"--lag < {T}.")
    u, labels = prepare_sequence_inputs(dataset.u, s.model)
    if u is not None and len(labels) < 2:
        warn_identifiability(
            "u holds a single label, so the temporal iVAE's transition does not vary with u; "
            "only the past can make the latents identifiable."
        )
    key = jax.random.PRNGKey(s.seed)
    k_model, k_fit = jax.random.split(key)
    spec = build_model(
        s.model, k_model, n_latent=s.latent_dim, data_dim=d,
        n_domains=None if labels is None else len(labels), lag=s.lag, n_regimes=s.n_regimes,
        context=s.context, width=s.width, depth=s.depth, noise_scale=s.noise_scale,
        guide=s.guide, noise_init=s.noise_init, heteroscedastic=s.heteroscedastic,
        flow=s.flow,
        whiten=whitening(dataset.x.reshape(-1, d)) if s.whiten else None,
    )
    s = s._replace(batch_size=sequences_per_batch(s.batch_size, B, T) * T)
    engine = _engine(spec, s._replace(batch_size=s.batch_size // T))
    res = fit(engine, k_fit, dataset.x, u, s.steps, restarts=s.restarts, progress=progress)
    fitted = Fitted(spec, res.params, res.state, s, labels, res.losses, {})
    metrics = _fit_metrics(res, dataset)
    metrics["elbo_per_obs"] = -res.final_loss / (B * T)
    metrics["sequences_per_batch"] = s.batch_size // T
    return fitted._replace(metrics={**metrics, **evaluate_sequences(fitted, dataset, truth)})


def evaluate_sequences(fitted, dataset: Dataset, truth=None) -> dict:
    """Metrics of a fitted sequence model.

    MCC (Pearson, Spearman), per-dimension correlations and R^2 over all time steps when
    ``dataset.z`` is known; for the regime model the learned regime chain, and with a
    :class:`~ppl_ident.data.sequences.SequenceTruth` holding the regime path, the regime
    accuracy of the Viterbi path and of the smoothed marginals (after Hungarian matching) and
    the transition-matrix error.
    """
    out = {}
    name = fitted.spec.config["name"]
    u, _ = prepare_sequence_inputs(dataset.u, name, fitted.labels)
    if dataset.z is not None:
        mean, _ = encode(fitted.spec, fitted.params, dataset.x, u)
        mean = np.asarray(mean)
        pear = sequence_mcc(dataset.z, mean)
        n = dataset.z.shape[-1]
        out.update({
            "mcc": pear.score,
            "mcc_spearman": sequence_mcc(dataset.z, mean, method="spearman").score,
            "mcc_per_dim": np.abs(pear.per_dim).tolist(),
            "matching": pear.matching.tolist(),
            "r2_per_dim": matched_r2(dataset.z.reshape(-1, n), mean.reshape(-1, mean.shape[-1]),
                                     pear.matching).tolist(),
            "mcc_raw_x": sequence_mcc(dataset.z, dataset.x).score
            if dataset.x.shape[-1] >= n else None,
        })
    if name == "regime":
        tables = transition_tables(fitted.params)
        out["learned_trans_matrix"] = np.asarray(tables.trans_matrix).tolist()
        out["learned_init_probs"] = np.asarray(tables.init_probs).tolist()
        regimes = getattr(truth, "regimes", None)
        if regimes is not None:
            post = regime_posterior(fitted.spec, fitted.params, dataset.x)
            K = fitted.spec.config["n_regimes"]
            K_true = int(np.asarray(truth.trans_matrix).shape[0])
            match = match_regimes(regimes, np.asarray(post.path), K_true, K)
            smooth = match_regimes(regimes, np.asarray(post.probs).argmax(-1), K_true, K)
            out["regime_accuracy"] = match.accuracy
            out["regime_accuracy_smoothed"] = smooth.accuracy
            out["regime_mapping"] = match.mapping.tolist()
            if K == K_true:
                err = transition_matrix_error(truth.trans_matrix, tables.trans_matrix,
                                              match.mapping)
                out["trans_matrix_max_abs_error"] = err["max_abs"]
                out["trans_matrix_frobenius_error"] = err["frobenius"]
    return out
