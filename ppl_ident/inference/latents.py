"""The registry of latent samplers: draws of the local latents ``z`` of a fitted model.

A latent sampler is a function ``(spec, params, x, u, *, key, num_draws, ...) -> LatentDraws``;
:data:`LATENT_SAMPLERS` maps names (``"guide"``, ``"nuts"``) to them, so reports and the
comparison harness can ask for "the posterior of z by engine E" by name.
"""

from __future__ import annotations

from typing import Callable

from ppl_ident.errors import InputError
from ppl_ident.families.predict import (LatentDraws, fitted_model, guide_latents,
                                        log_likelihood_x, posterior_predictive_x)
from ppl_ident.inference.nuts import nuts_latents

__all__ = ["LatentDraws", "LATENT_SAMPLERS", "fitted_model", "guide_latents",
           "posterior_predictive_x", "log_likelihood_x", "sample_latents"]


LATENT_SAMPLERS: dict[str, Callable] = {
    "guide": guide_latents,
    "nuts": nuts_latents,
}


def sample_latents(name: str, spec, params, x, u, *, key, **kwargs) -> LatentDraws:
    """Draw ``z`` with a registered latent sampler; unknown names list the valid ones."""
    if name not in LATENT_SAMPLERS:
        raise InputError(f"Unknown latent sampler {name!r}; valid: "
                         f"{', '.join(sorted(LATENT_SAMPLERS))}.")
    return LATENT_SAMPLERS[name](spec, params, x, u, key=key, **kwargs)
