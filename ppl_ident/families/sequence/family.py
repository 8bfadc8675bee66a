"""The sequence family: ``x`` ``(B, T, d)``; the temporal iVAE (labels ``u`` ``(B, T)``), the
hidden-regime model (regimes inferred by an exact forward pass) and the stationary control.

Minibatches hold whole sequences: the ``batch_size`` setting counts *time steps*, as for
i.i.d. data it counts observations, so a minibatch has ``max(1, batch_size // T)`` sequences.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ppl_ident.diagnostics.calibration import alignment_to_dict, fit_alignment
from ppl_ident.diagnostics.mcc import matched_r2
from ppl_ident.diagnostics.sequences import match_regimes, sequence_mcc, transition_matrix_error
from ppl_ident.errors import InputError, warn_identifiability
from ppl_ident.families.base import ModelFamily, ModelSpec
from ppl_ident.families.predict import encode_chunked
from ppl_ident.families.sequence import cells
from ppl_ident.families.sequence.build import SEQUENCE_GUIDES, build_sequence_model
from ppl_ident.families.sequence.checks import check_sequence_data, check_sequence_run
from ppl_ident.families.sequence.idata import sequence_inference_data
from ppl_ident.families.sequence.inputs import prepare_sequence_inputs, sequences_per_batch
from ppl_ident.families.sequence.model import (SEQUENCE_KINDS, regime_posterior,
                                               transition_tables)
from ppl_ident.ops.observation import whitening

__all__ = ["SequenceFamily"]


class SequenceFamily(ModelFamily):
    name = "sequence"
    models = SEQUENCE_KINDS
    guides = SEQUENCE_GUIDES
    data_rank = 3
    data_shape = "(B, T, d)"
    obs_dims = ("sequence", "time")
    label = "sequence"
    report_sections = ("summary", "loss", "agreement", "trajectories", "calibration", "regimes",
                       "transitions", "jacobian", "variability", "skipped")
    rank_hint = "simulate sequences with `ppl-ident simulate --generator dynamics`"
    titles = {"tivae": "temporal iVAE", "regime": "hidden-regime model",
              "stationary": "stationary model"}
    generators = tuple(cells.FIELDS)

    def prepare_inputs(self, u, model, labels=None):
        return prepare_sequence_inputs(u, model, labels)

    def auto_flow(self, n, d, s):
        # the exact flow maps each step's x to z one to one: d == n >= 2 (a coupling splits z)
        return 2 <= n == d

    def check_settings(self, dataset, s):
        B, T, _ = dataset.x.shape
        if T <= s.lag:
            raise InputError(f"Sequences of length {T} are too short for lag {s.lag}; use "
                             f"--lag < {T}.")
        if s.model == "tivae" and dataset.u is not None and len(np.unique(dataset.u)) < 2:
            warn_identifiability(
                "u holds a single label, so the temporal iVAE's transition does not vary with "
                "u; only the past can make the latents identifiable."
            )
        # the recorded batch size is whole sequences' worth of time steps
        return s._replace(batch_size=sequences_per_batch(s.batch_size, B, T) * T)

    def engine_batch(self, s, dataset) -> int:
        return int(s.batch_size // dataset.x.shape[1])

    def fit_metrics(self, s, dataset) -> dict:
        return {"sequences_per_batch": self.engine_batch(s, dataset)}

    def complete_format_1(self, settings, config):
        if "transition_width" not in settings:
            # a run written before these settings: its transition network had --width units
            # and --depth layers
            settings["transition_width"] = config.get("width")
            settings["transition_depth"] = config.get("depth")
        if "regime_transitions" not in settings:
            # ... and before this one: one transition network with a head per regime
            settings["regime_transitions"] = "shared"
        return settings

    def build(self, name, key, **config) -> ModelSpec:
        return build_sequence_model(name, key, **config)

    def spec_config(self, s, dataset, u, labels) -> dict:
        d = dataset.x.shape[-1]
        return dict(n_latent=s.latent_dim, data_dim=d,
                    n_domains=None if labels is None else len(labels), lag=s.lag,
                    n_regimes=s.n_regimes, context=s.context, width=s.width, depth=s.depth,
                    transition_width=s.transition_width, transition_depth=s.transition_depth,
                    regime_transitions=s.regime_transitions,
                    noise_scale=s.noise_scale, guide=s.guide, noise_init=s.noise_init,
                    heteroscedastic=s.heteroscedastic, flow=s.flow, flow_layers=s.flow_layers,
                    transition=s.transition or ("flow" if s.flow and not s.heteroscedastic
                                                else "additive"),
                    initial=s.initial or ("conditional" if s.flow else "gaussian"),
                    whiten=whitening(dataset.x.reshape(-1, d)) if s.whiten else None)

    def templates(self, config):
        # two sequences just longer than the lag
        x = jnp.zeros((2, config["lag"] + 2, config["data_dim"]))
        u = None if config.get("n_domains") is None else jnp.zeros((2, config["lag"] + 2),
                                                                   jnp.int32)
        return x, u

    def evaluate(self, fitted, dataset, truth=None) -> dict:
        """MCC (Pearson, Spearman), per-dimension correlations, R^2 and the affine alignment of
        the learned latents onto the true ones (``alignment``, with the ``steps`` it was fitted
        on) over all time steps when ``dataset.z`` is known; for the regime model the learned regime chain, and with a
        :class:`~ppl_ident.data.sequences.SequenceTruth` holding the regime path, the regime
        accuracy of the Viterbi path and of the smoothed marginals (after Hungarian matching)
        and the transition-matrix error."""
        out = {}
        name = fitted.spec.name
        u, _ = prepare_sequence_inputs(dataset.u, name, fitted.labels)
        if dataset.z is not None:
            # whole sequences, in chunks of about 4096 steps (memory bounded by one chunk)
            steps = int(np.prod(dataset.x.shape[1:-1], dtype=np.int64))
            mean, _ = encode_chunked(fitted.spec, fitted.params, dataset.x, u,
                                     max(1, 4096 // steps))
            mean = np.asarray(mean)
            pear = self.score_latents(dataset.z, mean)
            n = dataset.z.shape[-1]
            out.update({
                "mcc": pear.score,
                "mcc_spearman": self.score_latents(dataset.z, mean, method="spearman").score,
                "mcc_per_dim": np.abs(pear.per_dim).tolist(),
                "matching": pear.matching.tolist(),
                "r2_per_dim": matched_r2(dataset.z.reshape(-1, n),
                                         mean.reshape(-1, mean.shape[-1]),
                                         pear.matching).tolist(),
                "mcc_raw_x": sequence_mcc(dataset.z, dataset.x).score
                if dataset.x.shape[-1] >= n else None,
            })
            if np.all(np.isfinite(mean)):
                # the affine map of the learned latents onto the true ones over every step, so
                # that the report aligns its draws without encoding the data again
                out["alignment"] = alignment_to_dict(
                    fit_alignment(np.asarray(dataset.z).reshape(-1, n),
                                  mean.reshape(-1, mean.shape[-1])),
                    steps=int(np.prod(dataset.x.shape[:-1])))
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

    def score_latents(self, z_true, z_hat, method="pearson"):
        return sequence_mcc(z_true, z_hat, method)

    def data_axes(self, generator):
        return cells.data_axes(generator)

    def check_setting(self, setting, model):
        cells.check_setting(setting, model, self.prepare_inputs)

    def setting_label(self, setting):
        return cells.setting_label(setting)

    def simulate_setting(self, setting, heldout_fraction):
        # no rows are held out: the held-out likelihood is per i.i.d. row (row_latents)
        data, truth = cells.simulate_setting(setting)
        return data, None, truth

    def default_model(self, setting):
        # the temporal iVAE needs the labels u that the hidden-regime generator hides
        return "tivae" if setting.get("generator") in cells.OBSERVED_U else "regime"

    def check_data(self, dataset, truth, **options) -> dict:
        return check_sequence_data(dataset, truth, **options)

    def check_run(self, fitted, dataset, truth=None, **options) -> dict:
        return check_sequence_run(fitted, dataset, truth, **options)

    def inference_data(self, fitted, dataset, *, num_draws, max_obs, seed, truth=None,
                       obs_idx=None, alignment=None, sampler=None, **sampler_options):
        """Whole sequences: the first 20 (``max_obs`` counts i.i.d. rows and is not read),
        or those of ``obs_idx``; ``truth`` (a :class:`~ppl_ident.data.sequences.SequenceTruth`)
        adds the true regime path. No aligned latents are stored (``alignment`` is not read):
        the report aligns the draws it shows."""
        if sampler is not None:
            raise InputError("The latents of a sequence model are coupled along time by the "
                             "transition prior; only its guide draws them here (the NUTS "
                             "reference is implemented for models with one latent vector per "
                             "observation). Drop the sampler, or use the guide's posterior.")
        return sequence_inference_data(fitted, dataset, num_draws=num_draws, seed=seed,
                                       truth=None if truth is False else truth,
                                       sequences=obs_idx)
