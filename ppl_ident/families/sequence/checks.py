"""Identifiability checks of sequence data ``(B, T, d)`` and of fitted sequence models.

The sequence family's :meth:`~ppl_ident.families.base.ModelFamily.check_data` and
:meth:`~ppl_ident.families.base.ModelFamily.check_run` (``ppl-ident check``) call
:func:`check_sequence_data` and :func:`check_sequence_run`.

Which auxiliary variable
------------------------
The sequence models' prior is the transition density ``p(z_t | z_{t-1..t-L}, k_t)`` with
``k_t`` the domain (temporal iVAE, ``dynamics`` data), the hidden regime (``regime``) or a
single row (the ``stationary`` control). Its auxiliary variable is the *pair* (past, row), and
that pair is what the seed's condition is checked on: ``m`` pairs drawn from the data, a few
pasts for every row. The past alone is checked as well, within one representative row, because
the two differ in a way the theory predicts exactly. For a Gaussian transition
``N(f(past) + loc_k, scale_k)``:

* ``a_i = -(z_i - f_i(past) - loc_ki) / scale_ki^2`` moves with the past and the row, while
  ``b_i = -1 / scale_ki^2`` depends on the row only (the noise is homoscedastic in the past).
* With the past alone the second-derivative block is zero, so the rank is at most ``n`` (``n``
  when the mean changes ``f(past_j) - f(past_0)`` span ``R^n``): the seed's condition fails.
  This is the stationary control's situation, learned or true.
* With (past, row) pairs over ``R`` rows the second-derivative rows live in the ``R - 1``
  functions of the row, so the rank is ``n + min(n, R - 1)``: ``2n`` needs ``R >= n + 1`` rows
  whose noise scales differ. The past supplies the first-derivative changes, so unlike the
  i.i.d. case a zero-mean, scale-only change of the noise suffices.
* A heteroscedastic transition (noise scale ``scale_k * s(past)``: simulators' ``scale_gain``,
  models' ``heteroscedastic``) moves ``b_i`` with the past too, so the past alone can reach
  rank ``2n`` with any number of rows (TDRL's condition).

Segments (no dynamics) are the i.i.d. case with the segment label as auxiliary variable, and
both the seed's and iVAE's exponential-family conditions are checked on the segment tables.
For transitions the exponential-family condition is not reported: with ``T(z) = z`` alone (a
homoscedastic transition whose mean moves with the past) iVAE's theorem gives identifiability
up to an affine map only, not up to permutation.

Jacobians of a fitted run
-------------------------
With ground truth, :func:`check_sequence_run` scores the learned-to-true Jacobian over points
drawn from all time steps of all sequences (``(B, T, n)`` flattened). The decoder route
``d z / d z_hat = J_{g^-1} J_{g_hat}`` is a pointwise map, exactly as for i.i.d. data. The
sequence encoder reads a window ``x_{t-c..t+c}``, so the encoder route is the *partial*
Jacobian ``d z_hat_t / d z_t`` with the window's other steps held at their noise-free true
values (for ``context = 0`` it is the i.i.d. route); the dict's ``reason`` says so.

References
----------
Yao, Chen & Zhang (2022), "Temporally disentangled representation learning", NeurIPS (the past
as auxiliary variable). Song et al. (2023), "Temporally disentangled representation learning
under unknown nonstationarity", NeurIPS. Khemakhem et al. (2020), "Variational autoencoders
and nonlinear ICA: a unifying framework", AISTATS (Theorem 1: T(z) = z gives affine
identifiability only). Song (2026), "Sequence Model 2: Sufficient Variability" (the seed text).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ppl_ident.diagnostics.jacobian import (jacobian_decoder_route, jacobian_encoder_route,
                                            score_routes)
from ppl_ident.diagnostics.variability import check_identifiability, sufficient_variability
from ppl_ident.diagnostics.variability import report_to_dict as variability_dict
from ppl_ident.data.sequences import SequenceTruth
from ppl_ident.errors import InputError
from ppl_ident.families.base import check_points, regression_jacobian
from ppl_ident.families.sequence.inputs import prepare_sequence_inputs
from ppl_ident.families.predict import data_mean_fn, encode
from ppl_ident.families.sequence.model import transition_log_density

__all__ = ["check_sequence_data", "check_sequence_run", "past_auxiliary"]

_ROW_NAMES = {"dynamics": "domain", "regimes": "regime", "segments": "segment",
              "tivae": "domain", "regime": "regime", "stationary": None}


def past_auxiliary(z, labels, lag: int, rows, per_row: int, seed: int = 0) -> dict:
    """Draw (past, row) auxiliary values from latent paths.

    Parameters
    ----------
    z : array ``(B, T, n)``
        Latent paths (true, or a fitted encoder's means).
    labels : int array ``(B, T)`` or None
        Row of every step (domain, regime). None: any step's past may serve every row (the
        learned regime model, whose regimes are hidden, and the stationary control).
    lag : int
        ``L``; only steps ``t >= L`` have a full past.
    rows : sequence of int
        The rows to draw for; a row without any step in ``labels`` is skipped.
    per_row : int
        Pasts per row (fewer when a row has fewer steps).
    seed : int

    Returns
    -------
    dict
        ``{"past": (m, L, n) most recent first, "row": int32 (m,)}``, a pytree with leading
        axis ``m`` for :func:`ppl_ident.diagnostics.sufficient_variability`.

    Examples
    --------
    >>> z = np.arange(12.0).reshape(1, 6, 2)
    >>> aux = past_auxiliary(z, None, 2, [0], 1)
    >>> aux["past"].shape, aux["row"].tolist()
    ((1, 2, 2), [0])
    """
    z = np.asarray(z)
    B, T, n = z.shape
    past = np.stack([z[:, lag - 1 - l:T - 1 - l] for l in range(lag)], axis=2)
    past = past.reshape(-1, lag, n)  # step t = lag + t' of sequence b at row b * (T - lag) + t'
    flat_labels = None if labels is None else np.asarray(labels)[:, lag:].reshape(-1)
    rng = np.random.default_rng(seed)
    pasts, ks = [], []
    for k in rows:
        cand = (np.arange(len(past)) if flat_labels is None
                else np.flatnonzero(flat_labels == k))
        if cand.size == 0:
            continue
        pick = np.sort(rng.choice(cand, size=min(int(per_row), cand.size), replace=False))
        pasts.append(past[pick])
        ks.append(np.full(len(pick), k, np.int32))
    if not pasts:
        return {"past": np.zeros((0, lag, n), z.dtype), "row": np.zeros(0, np.int32)}
    return {"past": np.concatenate(pasts), "row": np.concatenate(ks)}


def _per_row(n: int, n_rows: int, n_pasts) -> int:
    if n_pasts is not None:
        if int(n_pasts) != n_pasts or n_pasts < 2:
            raise InputError(f"n_pasts must be an integer >= 2, got {n_pasts!r}.")
        return int(n_pasts)
    # 4n + 1 values in all: twice the 2n + 1 the condition needs, so a near-degenerate draw
    # does not decide the verdict.
    return max(2, -(-(4 * n + 1) // n_rows))


def _representative_row(labels, lag, rows) -> int:
    """The row with the most steps (the first row without labels)."""
    if labels is None:
        return int(rows[0])
    counts = [int(np.sum(np.asarray(labels)[:, lag:] == k)) for k in rows]
    return int(rows[int(np.argmax(counts))])


def _past_only(log_density, z_points, z, labels, lag, row, n, seed, rtol, min_share):
    aux = past_auxiliary(z, labels, lag, [row], 4 * n + 1, seed + 1)
    if len(aux["row"]) < 2:
        return None
    rep = sufficient_variability(log_density, z_points, aux, rtol=rtol, min_share=min_share)
    return {"row": row, **variability_dict(rep)}


def _rank_reason(n: int, n_rows: int, row_name: str | None, v: dict,
                 heteroscedastic: bool = False, non_gaussian: str | None = None) -> str:
    """What the sequence theory says about the rank just measured (see the module docstring).
    ``non_gaussian`` names a transition that is not Gaussian around a mean (then the Gaussian
    bound does not apply and only the measured rank speaks)."""
    bound = n + min(n, max(n_rows - 1, 0))
    rows = (f"{n_rows} {row_name}(s)" if row_name else "a single transition law")
    if non_gaussian:
        return (f"The transition is {non_gaussian}, not Gaussian around a mean, so the "
                f"Gaussian bound n + min(n, R - 1) = {bound} does not apply: with {rows} the "
                f"rank can reach 2n = {2 * n} wherever the second derivatives of log p move "
                f"with the past; measured rank {v['rank']} (second-derivative block "
                f"{v['rank_second']}).")
    if heteroscedastic:
        return (f"The transition noise scale moves with the past, so the second derivatives "
                f"vary with the past as well as the row: with {rows} the rank can reach 2n = "
                f"{2 * n}; measured rank {v['rank']} (second-derivative block "
                f"{v['rank_second']}).")
    text = (f"For a Gaussian transition the second derivatives change only with the row "
            f"(noise scales), not with the past, so with {rows} the rank is at most n + "
            f"min(n, R - 1) = {bound}")
    if bound < 2 * n and row_name is None:
        text += (f" < 2n = {2 * n}: a stationary transition cannot meet the condition, "
                 "whatever it learns; it needs a domain or regime that changes the noise scales")
    elif bound < 2 * n:
        text += (f" < 2n = {2 * n}: the condition needs at least n + 1 = {n + 1} "
                 f"{row_name}s with different noise scales")
    text += f"; measured rank {v['rank']}"
    if v["rank_second"] < min(n, max(n_rows - 1, 0)):
        text += (f", second-derivative block rank {v['rank_second']} (the rows' noise scales "
                 "are equal or nearly so)")
    return text + "."


def check_sequence_data(dataset, truth, *, n_points: int = 256, seed: int = 0,
                        rtol: float = 1e-3, min_share: float = 0.9, n_pasts=None) -> dict:
    """Check the seed's condition on a sequence simulator's true transition density.

    Parameters
    ----------
    dataset : Dataset
        ``x`` ``(B, T, d)``, ``z`` ``(B, T, n)`` (or ``truth.z``) and, for segments and
        dynamics, the labels ``u`` ``(B, T)``.
    truth : SequenceTruth
        ``kind`` ``"segments"``, ``"dynamics"`` or ``"regimes"`` (the regime path comes from
        ``truth.regimes``: the check is about the true process, so the hidden regime may be
        used).
    n_points : int
        Latent points ``z_t`` drawn from all steps of ``z`` (without replacement).
    seed : int
        Seed of the choice of points and pasts.
    rtol, min_share : float
        See :func:`ppl_ident.diagnostics.sufficient_variability`.
    n_pasts : int, optional
        Pasts per row; default ``ceil((4n + 1) / R)`` (at least 2) for ``R`` rows.

    Returns
    -------
    dict
        ``{"kind": "data", "sequence": True, "generator", "auxiliary", "row_name",
        "n_rows", "n_latent", "lag", "n_aux", "n_points", "source": "gaussian",
        "variability": {...}, "past_only": {...} or None, "sequence_reason"}``.
        ``auxiliary`` is ``"past+domain"`` (dynamics), ``"past+regime"`` (regimes) or
        ``"segment"``; ``variability`` is the JSON form of an
        :class:`~ppl_ident.diagnostics.IdentifiabilityReport` for the (past, row) pairs (for
        segments, the segment labels, with iVAE's condition too); ``past_only`` the seed's
        condition with the past alone within the ``row`` with the most steps (rank at most
        ``n`` for these homoscedastic transitions); ``sequence_reason`` the rank the theory
        allows, ``n + min(n, R - 1)``.

    Raises
    ------
    InputError
        Missing latents or labels, or tables that do not match the data.

    Examples
    --------
    >>> from ppl_ident.data.sequences import simulate_dynamics
    >>> data, truth = simulate_dynamics(0, n_sequences=20, length=20, n_latent=2, data_dim=2)
    >>> check_sequence_data(data, truth)["variability"]["sufficient_variability"]["rank"]
    4
    """
    if not isinstance(truth, SequenceTruth):
        raise InputError("This file holds sequences x (B, T, d) but no sequence ground truth "
                         "(its truth_* keys are missing or i.i.d. ones); re-simulate it with "
                         "`ppl-ident simulate --generator segments|dynamics|regimes`, or check a "
                         "fitted run directory instead.")
    z = dataset.z if dataset.z is not None else truth.z
    if z is None:
        raise InputError("check_data needs the true latents z (key 'z' in the data file).")
    z = np.asarray(z, np.float32)
    if z.ndim != 3 or z.shape[:2] != np.shape(dataset.x)[:2]:
        raise InputError(f"The true latents have shape {z.shape}; sequences need (B, T, n) "
                         f"matching x {np.shape(dataset.x)}.")
    B, T, n = z.shape
    kind, lag = truth.kind, int(truth.lag)
    loc, scale = np.asarray(truth.loc), np.asarray(truth.scale)
    if kind == "regimes":
        if truth.regimes is None:
            raise InputError("This regimes file lacks truth_regimes (the hidden path); "
                             "re-simulate it with `ppl-ident simulate --generator regimes`.")
        labels = np.asarray(truth.regimes)
    elif kind in ("dynamics", "segments"):
        if dataset.u is None or np.ndim(dataset.u) != 2:
            raise InputError(f"A {kind} file needs its labels u of shape (B, T); this one has "
                             "none. Re-simulate it or restore the 'u' key.")
        labels = np.asarray(dataset.u)
    else:
        raise InputError(f"Unknown sequence truth kind {kind!r}; expected segments, dynamics "
                         "or regimes.")
    rows = np.unique(labels)
    if loc.ndim != 2 or loc.shape != scale.shape or rows.max() >= loc.shape[0] \
            or loc.shape[1] != n:
        raise InputError(
            f"The ground-truth tables have shape {loc.shape} but the data has labels up to "
            f"{rows.max()} and {n} latents; the file's truth_* keys do not match it.")
    z_points = z.reshape(-1, n)[check_points(B * T, n_points, seed)]
    row_name = _ROW_NAMES[kind]
    out = {"kind": "data", "sequence": True, "generator": kind, "row_name": row_name,
           "n_rows": int(len(rows)), "n_latent": int(n), "lag": lag, "source": "gaussian",
           "n_points": int(len(z_points))}

    if kind == "segments":
        def log_segment(zi, k):
            return truth.log_transition(zi, None, k)

        report = check_identifiability(log_segment, z_points, rows, prior="gaussian",
                                       loc=loc[rows], scale=scale[rows], rtol=rtol,
                                       min_share=min_share)
        return {**out, "auxiliary": "segment", "n_aux": int(len(rows)),
                "variability": variability_dict(report), "past_only": None,
                "sequence_reason": "No dynamics (lag 0): each segment is an i.i.d. factorial "
                                   "Gaussian, checked as domains are."}

    def log_transition(zi, aux):
        return truth.log_transition(zi, aux["past"], aux["row"])

    aux = past_auxiliary(z, labels, lag, rows, _per_row(n, len(rows), n_pasts), seed + 1)
    report = check_identifiability(log_transition, z_points, aux, rtol=rtol,
                                   min_share=min_share)
    v = variability_dict(report)
    rep_row = _representative_row(labels, lag, rows)
    return {**out, "auxiliary": f"past+{row_name}", "n_aux": int(len(aux["row"])),
            "variability": v,
            "past_only": _past_only(log_transition, z_points, z, labels, lag, rep_row, n, seed,
                                    rtol, min_share),
            "sequence_reason": _rank_reason(n, len(np.unique(aux["row"])), row_name,
                                            v["sufficient_variability"],
                                            truth.trans_v is not None, _truth_kind(truth))}


def _truth_kind(truth) -> str | None:
    """How a true transition departs from the Gaussian-around-a-mean form (None: it does not)."""
    parts = []
    if getattr(truth, "pnl_slope", None) is not None:
        parts.append(f"post-nonlinear (a leaky ReLU of slope {truth.pnl_slope:g}: piecewise "
                     "linear, so within each piece its second derivatives change with the row "
                     "only)")
    if getattr(truth, "noise_families", None) is not None:
        parts.append("driven by noise families that change with the row")
    return " and ".join(parts) or None


# ---------------------------------------------------------------------------------------------
# Fitted sequence models


def _learned_variability(fitted, z_hat, labels, z_points, seed, rtol, min_share, n_pasts):
    cfg = fitted.spec.config
    name, L, n_hat = cfg["name"], int(cfg["lag"]), z_hat.shape[-1]
    params = jax.tree_util.tree_map(jnp.asarray, fitted.params)
    n_rows = int(np.shape(params["trans_loc"])[0])
    rows = np.arange(n_rows)
    row_name = _ROW_NAMES[name]

    def log_transition(zi, aux):
        return transition_log_density(fitted.spec, params, aux["row"])(zi, aux["past"])

    aux = past_auxiliary(z_hat, labels, L, rows, _per_row(n_hat, n_rows, n_pasts), seed + 1)
    auxiliary = "past" if row_name is None else f"past+{row_name}"
    if len(aux["row"]) < 2:
        return {"auxiliary": auxiliary, "n_aux": 0, "variability": {
            "applicable": False, "passed": False, "holds": [],
            "reason": f"fewer than 2 steps after the lag ({L}) to draw pasts from; use longer "
                      "sequences."}}
    v = {"applicable": True,
         **variability_dict(check_identifiability(log_transition, z_points, aux, rtol=rtol,
                                                  min_share=min_share))}
    past_only = None
    if n_rows > 1:
        past_only = _past_only(log_transition, z_points, z_hat, labels, L,
                               _representative_row(labels, L, rows), n_hat, seed, rtol,
                               min_share)
    return {"auxiliary": auxiliary, "n_aux": int(len(aux["row"])), "variability": v,
            "past_only": past_only,
            "sequence_reason": _rank_reason(n_hat, len(np.unique(aux["row"])), row_name,
                                            v["sufficient_variability"],
                                            bool(fitted.spec.config.get("heteroscedastic")),
                                            "a learned conditional spline flow"
                                            if cfg.get("transition") == "flow" else None)}


def _centre_encoder(fitted, x_clean, u_model, flat_idx):
    """``(x_t (d,), p) -> z_hat_t``: the sequence encoder's mean at evaluation point ``p``
    with the centre step's ``x`` free and the other steps of its window fixed (edge-padded at
    the sequence ends, as :func:`ppl_ident.families.sequence.guide.context_windows` does)."""
    c = int(fitted.spec.config["context"])
    B, T, _ = x_clean.shape
    b, t = np.divmod(flat_idx, T)
    cols = np.clip(t[:, None] + np.arange(-c, c + 1)[None], 0, T - 1)  # (P, 2c + 1)
    windows = jnp.asarray(x_clean[b[:, None], cols])
    free = jnp.asarray(cols == t[:, None])
    labels = None if u_model is None else jnp.asarray(np.asarray(u_model)[b, t])

    def mean(x_t, p):
        win = jnp.where(free[p][:, None], x_t[None], windows[p])
        u = None if labels is None else jnp.full((1, 2 * c + 1), labels[p])
        m, _ = encode(fitted.spec, fitted.params, win[None], u)
        return m[0, c]

    return mean, c


def _sequence_jacobians(fitted, truth, z_true, z_hat, u_model, flat_idx):
    n, n_hat = z_true.shape[-1], z_hat.shape[-1]
    if n != n_hat:
        return {"applicable": False,
                "reason": f"the model has {n_hat} latents but the truth {n}; the Jacobian scores "
                          f"need a square learned-to-true map (fit with --latent-dim {n})."}
    # Noise-free observations of the true paths: the encoder route differentiates through g.
    x_clean = np.asarray(jax.jit(truth.g)(jnp.asarray(z_true)))
    enc_mean, c = _centre_encoder(fitted, x_clean, u_model, flat_idx)
    zt = z_true.reshape(-1, n)[flat_idx]
    zh = z_hat.reshape(-1, n_hat)[flat_idx]
    enc = jacobian_encoder_route(enc_mean, truth.g, zt, np.arange(len(flat_idx)))
    dec = jacobian_decoder_route(truth.g_inv, data_mean_fn(fitted.spec, fitted.params), zh)
    out = score_routes({"encoder": enc, "decoder": dec}, zt.std(0), zh.std(0))
    if out.get("applicable"):
        out["reason"] = (
            f"Points drawn from all {z_true.shape[0]} x {z_true.shape[1]} time steps. Decoder "
            "route: d z / d z_hat through the learned decoder and the true unmixing, a "
            "pointwise map. Encoder route: the sequence encoder reads x_{t-c..t+c} (context c = "
            f"{c}), so it is the partial Jacobian d z_hat_t / d z_t with the window's other "
            "steps held at their noise-free true values"
            + (" (c = 0: the full Jacobian)." if c == 0 else
               "; the encoder's dependence on neighbouring steps is not scored."))
    return out


def check_sequence_run(fitted, dataset, truth=None, *, n_points: int = 256, seed: int = 0,
                       rtol: float = 1e-3, min_share: float = 0.9, n_pasts=None) -> dict:
    """Check a fitted sequence model: its learned transition density's variability with the
    past as auxiliary variable and, with ground truth, its Jacobian structure.

    Parameters
    ----------
    fitted : Fitted
        A ``tivae``, ``regime`` or ``stationary`` fit (:func:`ppl_ident.workflow.load_run`).
    dataset : Dataset
        Its sequences ``x`` ``(B, T, d)`` (and ``u`` for the temporal iVAE). Every sequence is
        encoded (the encoder's posterior means, as the fit's metrics do), so that every domain
        has pasts to draw from; ``n_points`` steps are then drawn from all time steps.
    truth : SequenceTruth, optional
        Enables the Jacobian scores (needs the true ``z`` too).
    n_points, seed, rtol, min_share, n_pasts
        As in :func:`check_sequence_data`.

    Returns
    -------
    dict
        ``{"kind": "run", "sequence": True, "model", "row_name", "n_points", "n_sequences",
        "length", "lag", "context", "auxiliary", "n_aux", "variability": {...},
        "past_only": {...} or None, "sequence_reason", "jacobian": {...} or None}``.
        ``variability`` checks ``transition_log_density(spec, params, row)`` at encoder means
        with (past, row) pairs drawn from the encoder means (rows: the observed domains for
        the temporal iVAE, every learned regime for the regime model with pasts from any
        step, the single row of the stationary control, whose auxiliary is the past alone and
        whose rank the theory bounds by ``n``). ``jacobian`` as in
        :func:`ppl_ident.families.iid.checks.check_run`, over all time steps; its ``reason``
        says what each route differentiates. With ``z`` but no simulator mixing (a file of
        one's own), the ``regression`` route instead, fitted over all time steps.

    Raises
    ------
    InputError
        Data that is not sequences, or labels the fit has not seen.
    """
    cfg = fitted.spec.config
    name = cfg["name"]
    u_model, _ = prepare_sequence_inputs(dataset.u, name, fitted.labels)
    z_hat, _ = encode(fitted.spec, fitted.params, dataset.x, u_model)
    z_hat = np.asarray(z_hat)
    B, T, n_hat = z_hat.shape
    flat_idx = check_points(B * T, n_points, seed)
    out = {"kind": "run", "sequence": True, "model": name, "row_name": _ROW_NAMES[name],
           "n_points": int(len(flat_idx)),
           "n_sequences": int(B), "length": int(T), "lag": int(cfg["lag"]),
           "context": int(cfg["context"]), "auxiliary": None, "n_aux": 0,
           "past_only": None, "sequence_reason": None, "jacobian": None}
    if not np.all(np.isfinite(z_hat)):
        out["variability"] = {"applicable": False, "passed": False, "holds": [],
                              "reason": "the encoder's posterior means are not finite (a "
                                        "diverged fit); nothing to check."}
        return out
    labels = u_model if name == "tivae" else None
    out.update(_learned_variability(fitted, z_hat, labels, z_hat.reshape(-1, n_hat)[flat_idx],
                                    seed, rtol, min_share, n_pasts))
    z_true = dataset.z if dataset.z is not None else getattr(truth, "z", None)
    if z_true is not None:
        z_true = np.asarray(z_true, np.float32)
        if z_true.shape[:2] != (B, T):
            out["jacobian"] = {"applicable": False,
                               "reason": f"the true latents have shape {z_true.shape}, not "
                                         f"({B}, {T}, n) like the data."}
        elif getattr(truth, "mixing", None) is not None:
            out["jacobian"] = _sequence_jacobians(fitted, truth, z_true, z_hat, u_model,
                                                  flat_idx)
        elif B * T > n_hat + 2:
            # z without the simulator's mixing: the regression route over all time steps
            z_flat = z_hat.reshape(-1, n_hat)
            out["jacobian"] = regression_jacobian(z_true.reshape(B * T, -1),
                                                  lambda pool: z_flat[pool], flat_idx, seed,
                                                  n_hat=n_hat, what="time steps")
    return out
