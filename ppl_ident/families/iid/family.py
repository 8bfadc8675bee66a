"""The i.i.d. family: observations ``x`` ``(N, d)`` with a domain label or a continuous
auxiliary variable ``u``; models ``ivae`` (identifiable) and ``vae`` (the control)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ppl_ident.diagnostics.mcc import matched_r2, mcc
from ppl_ident.diagnostics.noise import noise_report
from ppl_ident.errors import InputError, warn_identifiability
from ppl_ident.families.base import EVAL_ROWS, ModelFamily, ModelSpec, evaluation_rows
from ppl_ident.families.iid import cells
from ppl_ident.families.iid.build import build_iid_model
from ppl_ident.families.iid.checks import (check_data, check_run, learned_prior_at,
                                           learned_prior_table, run_activity)
from ppl_ident.families.iid.idata import iid_inference_data
from ppl_ident.families.iid.inputs import prepare_inputs
from ppl_ident.families.predict import encode_chunked, guide_latents
from ppl_ident.files import check_memory
from ppl_ident.ops.observation import whitening

__all__ = ["IIDFamily"]

# the largest default particle count of a registered engine (iwae: 8); a bound for the check
_MAX_DEFAULT_PARTICLES = 8


class IIDFamily(ModelFamily):
    name = "iid"
    models = ("ivae", "vae")
    #: amortised encoders, whose posterior moments :func:`ppl_ident.families.predict.encode`
    #: reads for any observation (the comparison harness also runs the non-amortised
    #: ``autonormal`` / ``semidais``)
    guides = ("encoder", "encoder_fullcov")
    data_rank = 2
    data_shape = "(N, d)"
    obs_dims = ("obs",)
    label = "i.i.d."
    rank_hint = "simulate i.i.d. data with `ppl-ident simulate`"
    permutation_null = True
    report_sections = ("summary", "loss", "agreement", "prior", "latents", "posterior_sd",
                       "truth", "forest", "calibration", "nuts", "ppc", "marginal", "jacobian",
                       "variability")
    titles = {"ivae": "iVAE", "vae": "VAE"}
    generators = (cells.GENERATOR,)
    #: the amortised encoders, and the non-amortised guides whose gap to them a comparison
    #: measures (AutoNormal: the amortisation gap; AutoSemiDAIS)
    compare_guides = guides + ("autonormal", "semidais")
    row_latents = True

    def prior_depends_on_u(self, spec):
        return spec.config["name"] == "ivae"

    def learned_prior_at(self, spec, params, u):
        return learned_prior_at(spec, params, u)

    def prior_points(self, spec, u_model, max_points):
        # every domain, or quantiles of a continuous u (rows in order of their first column)
        if spec.config.get("n_domains") is not None:
            return np.arange(int(spec.config["n_domains"]), dtype=np.int32)
        u = np.asarray(u_model)
        order = np.argsort(u[:, 0], kind="stable")
        pick = np.round(np.linspace(0, len(u) - 1, min(int(max_points), len(u)))).astype(int)
        return u[order[pick]]

    def learned_prior_table(self, spec, params):
        return learned_prior_table(spec, params)

    def latent_activity(self, fitted, dataset, *, seed=0):
        return run_activity(fitted, dataset, seed=seed)

    def prepare_inputs(self, u, model, labels=None):
        return prepare_inputs(u, labels)

    def auto_flow(self, n, d, s):
        # the flow needs n >= 2 (a coupling splits z) and, for d > n, the whitening step that
        # reduces x to its n principal components
        return 2 <= n and (n == d or (n < d and s.whiten))

    def check_settings(self, dataset, s):
        _check_fit_memory(dataset, s)
        _check_domains(dataset.u, s.latent_dim, s.model)
        return s

    def complete_format_1(self, settings, config):
        if "flow_noise" not in settings:
            # a run written before the noisy flow: noiseless
            settings["flow_noise"] = False
        # a run written before the known-noise option learned its noise
        settings.setdefault("flow_noise_sd", None)
        return settings

    def build(self, name, key, **config) -> ModelSpec:
        return build_iid_model(name, key, **config)

    def spec_config(self, s, dataset, u, labels) -> dict:
        return dict(n_latent=s.latent_dim, data_dim=dataset.x.shape[1],
                    n_domains=None if labels is None else len(labels),
                    aux_dim=None if u is None or u.ndim == 1 else u.shape[1],
                    width=s.width, depth=s.depth, prior=s.prior, noise_scale=s.noise_scale,
                    whiten=whitening(dataset.x, s.latent_dim if s.flow else None)
                    if s.whiten else None,
                    noise_init=s.noise_init, guide=s.guide, flow=s.flow,
                    flow_layers=s.flow_layers, flow_noise=bool(s.flow_noise),
                    flow_noise_sd=s.flow_noise_sd if s.flow_noise else None)

    def templates(self, config):
        x = jnp.zeros((2, config["data_dim"]))
        if config.get("aux_dim") is not None:
            return x, jnp.zeros((2, config["aux_dim"]))
        return x, jnp.zeros((2,), jnp.int32)

    def evaluate(self, fitted, dataset, truth=None) -> dict:
        """MCC (Pearson and Spearman), per-dimension correlations and R^2 of the posterior mean
        against ``dataset.z``; with the simulator's ``truth`` also ``jacobian`` and
        ``variability`` (:func:`ppl_ident.families.iid.checks.check_run` on 256 points).

        The scores use every row of data with at most ``EVAL_ROWS`` (65,536) rows, else a
        seeded random subset of that many (``evaluation_rows`` in the result), encoded in
        chunks: the cost does not grow with ``N``."""
        if truth is not None:  # check_run scores the latents' activity too
            result = check_run(fitted, dataset, truth, n_points=256)
            checks = {"latent_activity": result["activity"], "jacobian": result["jacobian"],
                      "variability": result["variability"]}
        else:
            checks = {"latent_activity": run_activity(fitted, dataset)}
        noisy = "noise_fraction" in fitted.params
        if dataset.z is None and not noisy:
            return checks
        u, _ = prepare_inputs(dataset.u, fitted.labels)
        rows = evaluation_rows(dataset.x.shape[0], EVAL_ROWS)
        x = np.asarray(dataset.x[rows], np.float32)
        mean, sd = encode_chunked(fitted.spec, fitted.params, x,
                                  None if u is None else u[rows], 8192)
        if noisy and np.all(np.isfinite(mean)) and np.all(np.isfinite(sd)):
            # what the learned noise leaves of the latents (no ground truth)
            checks["observation_noise"] = noise_report(
                fitted.params["noise_fraction"], mean, sd,
                known=fitted.spec.config.get("flow_noise_sd") is not None)
        if dataset.z is None:
            return checks
        z = np.asarray(dataset.z[rows], np.float32)
        if not np.all(np.isfinite(mean)):
            # A diverged fit can leave an encoder whose outputs overflow; report, don't crash.
            return {"mcc": None, "evaluation_note": "posterior means are not finite"}
        pear = mcc(z, mean)
        return {
            "mcc": pear.score,
            "mcc_spearman": mcc(z, mean, method="spearman").score,
            "mcc_per_dim": np.abs(pear.per_dim).tolist(),
            "matching": pear.matching.tolist(),
            "r2_per_dim": matched_r2(z, mean, pear.matching).tolist(),
            "mcc_raw_x": mcc(z, x).score if x.shape[1] >= z.shape[1] else None,
            "evaluation_rows": int(len(rows)),
            **checks,
        }

    def data_axes(self, generator):
        return cells.data_axes()

    def setting_label(self, setting):
        return cells.setting_label(setting)

    def simulate_setting(self, setting, heldout_fraction):
        return cells.simulate_setting(setting, heldout_fraction)

    def heldout_rows(self, dataset, fraction):
        return cells.heldout_rows(dataset, fraction)

    def check_data(self, dataset, truth, **options) -> dict:
        return check_data(dataset, truth, **options)

    def check_run(self, fitted, dataset, truth=None, **options) -> dict:
        return check_run(fitted, dataset, truth, **options)

    def inference_data(self, fitted, dataset, *, num_draws, max_obs, seed, truth=None,
                       obs_idx=None, alignment=None, sampler=None, **sampler_options):
        # z_aligned comes from dataset.z: the simulator's record adds nothing here (an array
        # of true latents replaces dataset.z; False: no aligned latents)
        if truth is not False and not isinstance(truth, np.ndarray):
            truth = None
        return iid_inference_data(fitted, dataset, num_draws=num_draws, max_obs=max_obs,
                                  seed=seed, truth=truth, obs_idx=obs_idx, alignment=alignment,
                                  sampler=sampler or guide_latents, **sampler_options)


def _check_fit_memory(dataset, s):
    """Refuse settings whose networks cannot fit in memory before anything is allocated."""
    d, n, w = dataset.x.shape[1], s.latent_dim, s.width
    k = dataset.u.shape[1] if dataset.u is not None and dataset.u.ndim == 2 else 0
    n_dom = len(np.unique(dataset.u)) if dataset.u is not None and dataset.u.ndim == 1 else 0
    mlp = lambda i, o: i * w + (s.depth - 1) * w * w + w * o  # noqa: E731
    n_params = mlp(n, d) + mlp(d + max(n_dom, k), 2 * n) + mlp(k, 2 * n) + 2 * n_dom * n + d
    # parameters, gradients and two Adam moments per restart, plus one batch of activations
    particles = s.num_particles or _MAX_DEFAULT_PARTICLES
    fits = s.restarts * s.seeds
    nbytes = 4 * fits * (4 * n_params + 4 * s.batch_size * w * s.depth * particles)
    check_memory(nbytes, f"a fit with --width {w} --depth {s.depth} --restarts {s.restarts} "
                 f"--seeds {s.seeds}",
                 "lower --width, --depth, --restarts, --seeds or --batch-size.")


#: the fewest rows a domain of the iVAE may have: a domain's prior scale needs two rows to
#: have a finite maximum-likelihood value (the spread of one row is zero)
MIN_DOMAIN_ROWS = 2


def _check_domains(u, n: int, model: str):
    if model != "ivae":
        return
    if u is None:
        raise InputError("The iVAE needs an auxiliary variable u (domain labels (N,) or a "
                         "continuous (N, k) array); this data has none. Add u, or fit "
                         "--model vae.")
    if u.ndim != 1:
        return
    labels, counts = np.unique(u, return_counts=True)
    n_dom = len(labels)
    if n_dom < 2:
        raise InputError(
            "u holds a single domain, so the iVAE prior cannot vary with u and the model is a "
            "plain VAE; provide data from at least 2 domains (2n+1 for the identifiability "
            "guarantee), or fit --model vae."
        )
    few = counts < MIN_DOMAIN_ROWS
    if few.any():
        raise InputError(
            f"u has {n_dom:,} domains and {int(few.sum()):,} of them have fewer than "
            f"{MIN_DOMAIN_ROWS} rows (e.g. label {int(labels[few][0])}, {int(counts[few][0])} "
            "row); the iVAE learns a location and a scale per domain and latent, and a single "
            "row has no spread, so the likelihood grows without bound as that domain's scale "
            f"shrinks. Each domain needs at least {MIN_DOMAIN_ROWS} rows, and many more for a "
            "useful fit (the simulator's default has 1000): name a coarser auxiliary column "
            "with --u-col (e.g. the speaker or site, not a row or utterance id), merge the "
            "small domains, or drop their rows."
        )
    if n_dom < 2 * n + 1:
        warn_identifiability(
            f"u has {n_dom} distinct domains but {n} latents: the sufficient-variability "
            f"condition needs at least 2n+1={2 * n + 1} (the iVAE exponential-family condition "
            f"at least n+1={n + 1} for scale-only changes); with fewer, the latents are not "
            "guaranteed to be identifiable and MCC may be low."
        )
