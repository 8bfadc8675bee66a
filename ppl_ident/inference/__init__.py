"""Inference engines (``init``/``step`` behind registries) and the fit loop."""

from ppl_ident.inference.engines import (
    ELBOS,
    ENGINES,
    SAMPLER_ENGINES,
    Engine,
    OptimConfig,
    StepInfo,
    build_engine,
    make_elbo,
    make_optimizer,
    svi_engine,
)
from ppl_ident.inference.fit import (
    DivergencePolicy, FitResult, chunk_schedule, divergence_reason, fit, fit_batched,
    fit_keys)
from ppl_ident.inference.latents import LATENT_SAMPLERS, LatentDraws, sample_latents
from ppl_ident.inference.marginal import MarginalLikelihood, log_marginal_likelihood
from ppl_ident.inference.nuts import NutsState, nuts_engine, nuts_latents
from ppl_ident.families.iid.checks import learned_log_prior
from ppl_ident.families.predict import data_mean_fn, decoder_fn, encode, encoder_mean_fn

__all__ = [
    "DivergencePolicy", "chunk_schedule", "divergence_reason",
    "ELBOS", "ENGINES", "SAMPLER_ENGINES", "Engine", "FitResult",
    "OptimConfig", "StepInfo", "build_engine",
    "data_mean_fn", "decoder_fn", "encode", "encoder_mean_fn", "fit", "learned_log_prior", "fit_batched", "fit_keys", "make_elbo", "make_optimizer", "svi_engine",
]
__all__ += ["LATENT_SAMPLERS", "LatentDraws", "sample_latents", "MarginalLikelihood",
            "log_marginal_likelihood", "NutsState", "nuts_engine", "nuts_latents"]
