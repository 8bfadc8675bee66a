"""The sequence family's posterior over ``z`` as an ArviZ posterior (``InferenceData`` on ArviZ
0.23, ``xarray.DataTree`` on 1.x; built through :mod:`ppl_ident.arviz_compat`).

Groups (dims in brackets; ``sequence`` = row of the data file, ``time`` = step, ``latent`` =
learned dimension, ``regime`` = learned regime label, ``x_dim``, ``true_latent``):

``posterior``
    ``z`` [chain, draw, sequence, time, latent]: independent draws of the amortised guide
    ``q(z | x, u)``, stored as :data:`~ppl_ident.families.predict.GUIDE_CHAINS` chains (100
    draws: 4 x 25, :func:`~ppl_ident.families.predict.split_draws`) so that R-hat and ESS are
    defined. Regime model: ``regime_probs`` [chain, draw, sequence, time, regime], the exact
    smoothed ``p(k_t | z_{1:T})`` for each draw of ``z``, so averaging over draws integrates
    the regime posterior over the latents' uncertainty. An exact-likelihood flow model has no
    posterior group: its ``z_t = h(x_t)`` is a point mass.
``point_estimate`` (custom)
    Single values without chain and draw dims: ``trans_matrix`` [regime, regime_to] (regime
    model); for flow models ``z`` [sequence, time, latent] and ``regime_probs``.
``observed_data`` / ``constant_data``
    ``x`` [sequence, time, x_dim] / ``u`` [sequence, time] (when present), ``z_true``
    [sequence, time, true_latent] and ``regimes_true`` [sequence, time] when known.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from numpyro import handlers

from ppl_ident.arviz_compat import IData, add_groups, from_groups
from ppl_ident.errors import InputError
from ppl_ident.ops.hmm import hmm_smoother
from ppl_ident.families.predict import POINT_ESTIMATE, encode, split_draws
from ppl_ident.families.sequence.inputs import prepare_sequence_inputs
from ppl_ident.families.sequence.model import transition_tables

__all__ = ["sequence_inference_data"]


def _regime_probs(spec, params, x, z_draws):
    """Smoothed regime probabilities for each draw: ``(S, B, T, n)`` -> ``(S, B, T, K)``."""
    model = handlers.substitute(handlers.seed(spec.model, 0), params)
    prior = handlers.trace(handlers.condition(model, {"z": z_draws[0]})).get_trace(
        jnp.asarray(x), None)["z"]["fn"]

    def one(z):
        ll = prior.regime_log_liks(z)
        return jax.vmap(lambda l: hmm_smoother(prior.log_init, prior.log_trans, l)
                        .smoothed_probs)(ll)

    return jax.lax.map(one, z_draws)


def sequence_inference_data(fitted, dataset, *, num_draws: int = 100, max_sequences: int = 20,
                            seed: int = 0, truth=None, sequences=None) -> IData:
    """Posterior latent paths (and regime probabilities) of a fitted sequence model.

    Parameters
    ----------
    fitted : Fitted
        A sequence model (``tivae``, ``regime``, ``stationary``).
    dataset : Dataset
        ``x`` ``(B, T, d)``; the first ``max_sequences`` sequences are kept.
    sequences : int array, optional
        Keep these sequences instead (the coordinate ``sequence`` holds their indices).
    num_draws : int
        Guide draws per position, split into chains (:func:`split_draws`); ignored for flow
        models (a point estimate).
    seed : int
    truth : SequenceTruth, optional
        Adds ``regimes_true`` to ``constant_data``.

    Returns
    -------
    IData

    Examples
    --------
    >>> idata = sequence_inference_data(fitted, data, num_draws=50)  # doctest: +SKIP
    >>> idata.posterior["z"].dims                                     # doctest: +SKIP
    ('chain', 'draw', 'sequence', 'time', 'latent')
    """
    if dataset.x.ndim != 3:
        raise InputError(f"sequence_inference_data needs sequences x (B, T, d); got "
                         f"{dataset.x.shape}.")
    for name, value in (("num_draws", num_draws), ("max_sequences", max_sequences)):
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    spec, params = fitted.spec, fitted.params
    total = dataset.x.shape[0]
    keep = np.arange(min(max_sequences, total)) if sequences is None else np.asarray(sequences)
    if keep.ndim != 1 or keep.size == 0 or keep.min() < 0 or keep.max() >= total:
        raise InputError(f"sequences must be a non-empty list of sequences in [0, {total}).")
    x = np.asarray(dataset.x[keep], np.float32)
    u_all, _ = prepare_sequence_inputs(dataset.u, spec.name, fitted.labels)
    u = None if u_all is None else u_all[keep]
    mean, std = encode(spec, params, x, u)
    point_mass = spec.latents == "point"   # z_t = h(x_t): one value per position
    chains, per_chain = (1, 1) if point_mass else split_draws(num_draws)
    eps = jax.random.normal(jax.random.PRNGKey(seed), (chains * per_chain,) + mean.shape)
    z = mean[None] + (0.0 if point_mass else std[None] * eps)
    B, T, n = mean.shape
    coords = {"sequence": keep, "time": np.arange(T), "latent": np.arange(n),
              "x_dim": np.arange(x.shape[-1])}
    dims = {"z": ["sequence", "time", "latent"], "x": ["sequence", "time", "x_dim"],
            "u": ["sequence", "time"]}
    latents, point = {"z": np.asarray(z, np.float32)}, {}
    if spec.name == "regime":
        K = spec.config["n_regimes"]
        coords["regime"] = np.arange(K)
        coords["regime_to"] = np.arange(K)
        latents["regime_probs"] = np.asarray(_regime_probs(spec, params, x, z))
        dims["regime_probs"] = ["sequence", "time", "regime"]
        point["trans_matrix"] = np.asarray(transition_tables(params).trans_matrix, np.float32)
        dims["trans_matrix"] = ["regime", "regime_to"]
    if point_mass:
        point.update({k: v[0] for k, v in latents.items()})
        posterior = None
    else:
        posterior = {k: v.reshape(chains, per_chain, *v.shape[1:]) for k, v in latents.items()}
    constant = {}
    if u is not None:
        constant["u"] = np.asarray(dataset.u[keep])
    if dataset.z is not None:
        constant["z_true"] = np.asarray(dataset.z[keep])
        coords["true_latent"] = np.arange(dataset.z.shape[-1])
        dims["z_true"] = ["sequence", "time", "true_latent"]
    regimes = getattr(truth, "regimes", None)
    if regimes is not None:
        constant["regimes_true"] = np.asarray(regimes)[keep]
        dims["regimes_true"] = ["sequence", "time"]
    idata = from_groups({"posterior": posterior, "observed_data": {"x": x},
                         "constant_data": constant}, coords=coords, dims=dims)
    if point:
        used = {d for name in point for d in dims[name]}
        add_groups(idata, {POINT_ESTIMATE: xr.Dataset(
            {name: (dims[name], v) for name, v in point.items()},
            coords={d: coords[d] for d in used}, attrs={"engine": "guide"})})
    return idata
