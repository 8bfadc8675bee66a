"""Identifiability checks of a data file or a fitted run, as JSON-able dicts.

:func:`check_data` asks whether the *true* prior of simulated data varies enough across
domains for the latents to be identifiable (the seed's sufficient-variability condition and
iVAE's exponential-family condition). :func:`check_run` asks the same of a fitted iVAE's
*learned* prior, and, when the simulator's ground truth is known, whether the learned-to-true
map has the Jacobian of a scaled permutation (both routes of
:mod:`ppl_ident.diagnostics.jacobian`). ``ppl-ident check`` and ``fit`` (``metrics.json``) print
and store these dicts. Sequences have their own checks (:mod:`ppl_ident.families.sequence.checks`).

Example::

    data, truth = simulate_domains(0)
    check_data(data, truth)["variability"]["holds"]        # ['sufficient_variability', ...]
    fitted = fit_model(data, model="ivae")
    check_run(fitted, data, truth)["jacobian"]["decoder"]["amari"]
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

import jax.numpy as jnp
from numpyro import handlers

from ppl_ident.diagnostics.collapse import activity_to_dict, latent_activity
from ppl_ident.diagnostics.jacobian import (jacobian_decoder_route, jacobian_encoder_route,
                                            score_routes)
from ppl_ident.diagnostics.variability import check_identifiability
from ppl_ident.diagnostics.variability import report_to_dict as variability_dict
from ppl_ident.errors import InputError
from ppl_ident.families.base import check_points, regression_jacobian
from ppl_ident.families.iid.inputs import prepare_inputs
from ppl_ident.families.iid.model import _factorial, fitted_prior_shape, prior_params
from ppl_ident.families.predict import (data_mean_fn, encode, encode_chunked, encoder_mean_fn,
                                        fitted_module)

__all__ = ["check_data", "check_run", "learned_log_prior", "learned_prior_at",
           "learned_prior_sd", "learned_prior_table", "run_activity"]


def _learned_prior_fn(spec, params):
    """``u (N,) or (N, k) -> (loc, scale)`` of the fitted iVAE prior, ``(N, n)`` each."""
    cfg = spec.config
    aux_net = None
    if cfg.get("n_domains") is None:
        aux_net = fitted_module(spec, params, "prior_net")
    subs = handlers.substitute(prior_params, dict(params))
    return lambda u: subs(jnp.asarray(u), n_latent=cfg["n_latent"],
                          n_domains=cfg.get("n_domains"), aux_net=aux_net,
                          learn_prior_loc=cfg.get("learn_prior_loc", True))


def learned_log_prior(spec, params):
    """The fitted prior ``log p(z | u)`` as a pure function ``(z (n,), u) -> scalar``.

    Only for models whose prior depends on ``u`` through :func:`ppl_ident.families.prior_params`
    (the iVAE); raises ``ValueError`` for the VAE, whose prior does not depend on ``u``.
    """
    cfg = spec.config
    if cfg["name"] != "ivae":
        raise ValueError(f"model {cfg['name']!r} has no u-dependent prior")
    prior_at = _learned_prior_fn(spec, params)
    shape = fitted_prior_shape(cfg["prior"], params, cfg["n_latent"])

    def log_prior(z, u):
        loc, scale = prior_at(jnp.asarray(u)[None])
        return _factorial(cfg["prior"], loc[0], scale[0], shape).log_prob(z)

    return log_prior


def learned_prior_sd(spec, params, u):
    """Standard deviations of the fitted prior ``p(z | u)`` at model inputs ``u``: ``(N, n)``
    (the VAE's standard normal: ones)."""
    cfg = spec.config
    if cfg["name"] != "ivae":
        return np.ones((np.shape(u)[0], cfg["n_latent"]))
    _, scale = _learned_prior_fn(spec, params)(u)
    if cfg.get("prior") == "generalized":
        beta = np.asarray(params["prior_shape"], np.float64)
        return np.asarray(scale) * np.exp(0.5 * (gammaln(3 / beta) - gammaln(1 / beta)))
    # a Laplace(loc, b) has sd sqrt(2) b; the mixture's scale is its sd
    factor = np.sqrt(2.0) if cfg.get("prior") == "laplace" else 1.0
    return factor * np.asarray(scale)


def learned_prior_at(spec, params, u):
    """Location and standard deviation of the fitted iVAE prior ``p(z | u)`` at model inputs
    ``u`` (labels ``0..U-1`` ``(N,)``, or a continuous ``u`` ``(N, k)``): two arrays
    ``(N, n)``. Raises ``ValueError`` for a model whose prior does not depend on ``u``."""
    if spec.config["name"] != "ivae":
        raise ValueError(f"model {spec.config['name']!r} has no u-dependent prior")
    loc, _ = _learned_prior_fn(spec, params)(jnp.asarray(u))
    return np.asarray(loc, np.float64), learned_prior_sd(spec, params, u)


def learned_prior_table(spec, params):
    """The fitted iVAE prior per domain: ``{"loc": (U, n), "sd": (U, n)}`` for the model's
    domains ``0..U-1``, or None for a model without a domain table (the VAE's prior ignores
    ``u``; a continuous ``u`` has no finite set of domains)."""
    cfg = spec.config
    if cfg["name"] != "ivae" or cfg.get("n_domains") is None:
        return None
    u = np.arange(int(cfg["n_domains"]), dtype=np.int32)
    loc, _ = _learned_prior_fn(spec, params)(u)
    return {"loc": np.asarray(loc, np.float64), "sd": learned_prior_sd(spec, params, u)}


def run_activity(fitted, dataset, *, n_points: int = 4096, seed: int = 0) -> dict:
    """Which latents of a fit have collapsed (:func:`ppl_ident.diagnostics.latent_activity`),
    on ``n_points`` observations; needs no ground truth. Flow models map ``x`` to ``z`` one to
    one, so none of their latents can collapse: ``{"applicable": False, ...}``."""
    if fitted.spec.config.get("flow"):
        return {"applicable": False, "reason": "exact-likelihood flow: z = h(x) is one to one, "
                                               "so no latent can be switched off"}
    u_model, _ = prepare_inputs(dataset.u, fitted.labels)
    idx = check_points(dataset.x.shape[0], n_points, seed)
    u_points = None if u_model is None else np.asarray(u_model)[idx]
    _, sd = encode(fitted.spec, fitted.params, dataset.x[idx], u_points)
    prior = learned_prior_sd(fitted.spec, fitted.params,
                             np.zeros(len(idx), int) if u_points is None else u_points)
    return {"applicable": True, "n_points": int(len(idx)),
            **activity_to_dict(latent_activity(np.asarray(sd), prior))}


def check_data(dataset, truth, *, n_points: int = 256, seed: int = 0,
               rtol: float | None = None, min_share: float = 0.9) -> dict:
    """Check the sufficient-variability conditions on the simulator's true prior.

    Parameters
    ----------
    dataset : Dataset
        With integer domain labels ``u`` ``(N,)`` and true latents ``z`` ``(N, n)``.
    truth : GroundTruth
        From :func:`ppl_ident.data.simulate_domains` or :func:`ppl_ident.data.load_dataset`.
    n_points : int
        Number of latent points (drawn from ``dataset.z`` without replacement) at which the
        seed's condition is checked.
    seed : int
        Seed of the choice of points.
    rtol, min_share : float
        See :func:`ppl_ident.diagnostics.sufficient_variability`. The true prior is a known
        density, so it is checked in float64 (``x64=True``, default ``rtol`` 1e-9): a
        condition that fails on a set of positive measure gives exact zeros there, while one
        that degenerates only near a null set passes almost everywhere, as the theory needs
        (e.g. zero-mean Student-t sources whose scales change: at ``z_k = 0`` the first
        derivative vanishes in every domain; in float32 with ``rtol`` 1e-3 the points within
        about 0.07 scale of it, 18 % of them, failed).

    Returns
    -------
    dict
        ``{"kind": "data", "n_latent", "n_domains", "source", "variability": {...}}`` where
        ``variability`` is the JSON form of an
        :class:`~ppl_ident.diagnostics.IdentifiabilityReport` (``holds``, ``reason``, both
        conditions' ranks and singular values).

    Raises
    ------
    InputError
        Without ground truth, with continuous ``u`` or without true latents.
    """
    if truth is None or getattr(truth, "domain_scale", None) is None \
            or np.size(truth.domain_scale) == 0:
        raise InputError(
            "This data file carries no ground truth (truth_* keys written by `ppl-ident "
            "simulate`), so its true prior is unknown; check a fitted run directory instead."
        )
    if dataset.u is None or np.ndim(dataset.u) != 1:
        raise InputError("check_data needs integer domain labels u of shape (N,).")
    z = dataset.z if dataset.z is not None else truth.z
    if z is None:
        raise InputError("check_data needs the true latents z (key 'z' in the data file).")
    z = np.asarray(z)
    labels = np.unique(dataset.u)
    loc, scale = np.asarray(truth.domain_loc), np.asarray(truth.domain_scale)
    if loc.ndim != 2 or labels.max() >= loc.shape[0] or loc.shape[1] != z.shape[1]:
        raise InputError(
            f"The ground-truth tables have shape {loc.shape} but the data has labels up to "
            f"{labels.max()} and {z.shape[1]} latents; the file's truth_* keys do not match it."
        )
    idx = check_points(len(z), n_points, seed)

    def log_prior(zi, u):
        return truth.log_prior(zi, u)

    report = check_identifiability(log_prior, z[idx], labels, prior=truth.source,
                                   loc=loc[labels], scale=scale[labels], rtol=rtol,
                                   min_share=min_share, x64=True)
    return {"kind": "data", "n_latent": int(z.shape[1]), "n_domains": int(len(labels)),
            "source": truth.source, "variability": variability_dict(report)}


def _learned_variability(fitted, z_hat, u_points, rtol, min_share):
    cfg = fitted.spec.config
    if cfg["name"] != "ivae":
        return {"applicable": False, "passed": False, "holds": [],
                "reason": f"model {cfg['name']!r} has a prior that does not depend on u, so it "
                          "has no sufficient variability by construction (rank 0)."}
    log_prior = learned_log_prior(fitted.spec, fitted.params)
    # the learned-shape priors have no fixed sufficient statistics: the seed's condition only
    family = cfg.get("prior", "gaussian")
    if cfg.get("n_domains") is not None:
        aux = np.arange(cfg["n_domains"])
        scale = np.asarray(fitted.params["prior_scale"])
        loc = np.asarray(fitted.params.get("prior_loc", np.zeros_like(scale)))
        report = check_identifiability(log_prior, z_hat, aux,
                                       prior=family if family in ("gaussian", "laplace")
                                       else None,
                                       loc=loc, scale=scale, rtol=rtol, min_share=min_share)
    else:
        # Continuous u: the auxiliary values are the observed u of the evaluation points. For
        # a Gaussian or Laplace prior, iVAE's exponential-family condition reads the prior
        # network's natural parameters at those values (each point a row of the table).
        tables = {}
        if family in ("gaussian", "laplace"):
            loc, scale = _learned_prior_fn(fitted.spec, fitted.params)(jnp.asarray(u_points))
            tables = dict(prior=family, loc=np.asarray(loc, np.float64),
                          scale=np.asarray(scale, np.float64))
        report = check_identifiability(log_prior, z_hat, np.asarray(u_points), rtol=rtol,
                                       min_share=min_share, **tables)
    return {"applicable": True, **variability_dict(report)}


def _jacobians(fitted, truth, z_true, z_hat, u_points):
    n, n_hat = z_true.shape[1], z_hat.shape[1]
    if n != n_hat:
        return {"applicable": False,
                "reason": f"the model has {n_hat} latents but the truth {n}; the Jacobian scores "
                          "need a square learned-to-true map (fit with --latent-dim "
                          f"{n})."}
    enc = jacobian_encoder_route(encoder_mean_fn(fitted.spec, fitted.params), truth.g, z_true,
                                 u_points)
    # the learned mixing in data coordinates (the decoder writes whitened x by default)
    dec = jacobian_decoder_route(truth.g_inv, data_mean_fn(fitted.spec, fitted.params), z_hat)
    return score_routes({"encoder": enc, "decoder": dec}, z_true.std(0), z_hat.std(0))


def check_run(fitted, dataset, truth=None, *, n_points: int = 256, seed: int = 0,
              rtol: float = 1e-3, min_share: float = 0.9) -> dict:
    """Check a fitted model: its learned prior's variability and, with ground truth, its
    Jacobian structure.

    Parameters
    ----------
    fitted : Fitted
        From :func:`ppl_ident.workflow.fit_model` or :func:`ppl_ident.workflow.load_run`.
    dataset : Dataset
        The data it was fitted to (or data from the same domains); points are drawn from it.
    truth : GroundTruth, optional
        The simulator's ground truth; enables the Jacobian scores.
    n_points, seed, rtol, min_share
        As in :func:`check_data`.

    Returns
    -------
    dict
        ``{"kind": "run", "model", "n_points", "variability": {...}, "jacobian": {...} or None}``.
        ``variability`` checks the learned prior ``p(z | u)`` at the encoder means of the chosen
        observations (iVAE only; for the VAE it says why it does not apply). ``jacobian`` holds
        ``encoder`` (``d z_hat / d z`` at the true latents, through the noise-free ``g(z)``) and
        ``decoder`` (``d z / d z_hat`` at the encoder means) scores, both oriented true x
        learned and between standardised latents (each divided by its standard deviation over
        the evaluation points); when the data hold ``z`` but not the simulator's mixing,
        ``regression`` instead (local linear fits of ``z_hat`` on ``z``,
        :func:`ppl_ident.diagnostics.jacobian.jacobian_regression_route`); None without ``z``.
    """
    u_model, _ = prepare_inputs(dataset.u, fitted.labels)
    idx = check_points(dataset.x.shape[0], n_points, seed)
    u_points = None if u_model is None else np.asarray(u_model)[idx]
    z_hat, _ = encode(fitted.spec, fitted.params, dataset.x[idx], u_points)
    z_hat = np.asarray(z_hat)
    out = {"kind": "run", "model": fitted.spec.config["name"], "n_points": int(len(idx)),
           "variability": _learned_variability(fitted, z_hat, u_points, rtol, min_share),
           "activity": run_activity(fitted, dataset, seed=seed),
           "jacobian": None}
    z_true = dataset.z if dataset.z is not None else getattr(truth, "z", None)
    if truth is not None and getattr(truth, "mixing", None) is not None and z_true is not None:
        out["jacobian"] = _jacobians(fitted, truth, np.asarray(z_true)[idx], z_hat, u_points)
    elif z_true is not None and len(z_true) > z_hat.shape[1] + 2:
        x, u_all = dataset.x, None if u_model is None else np.asarray(u_model)

        def learned(pool):
            u_pool = None if u_all is None else u_all[pool]
            return encode_chunked(fitted.spec, fitted.params, np.asarray(x)[pool], u_pool, 4096)[0]

        out["jacobian"] = regression_jacobian(z_true, learned, idx, seed,
                                              n_hat=fitted.spec.config["n_latent"])
    return out
