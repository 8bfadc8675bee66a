"""The guide registry: every variational family a model can be fitted with, by name.

An entry is a :class:`GuideFamily`: how many outputs its encoder network needs (None for a
non-amortised guide) and how to build the guide function from the model and the encoder.
:func:`ppl_ident.families.build_model` takes ``guide=<name>``; a new guide is one function plus
one entry in :data:`GUIDES`.

=================== ====================================================================
``encoder``         amortised diagonal Gaussian ``q(z | x, u)`` (the default)
``encoder_fullcov`` amortised full-covariance Gaussian (Cholesky factor from the encoder)
``autonormal``      NumPyro ``AutoNormal``: one free mean and scale per observation, not
                    amortised; its gap to ``encoder`` is the amortisation gap. Its local
                    parameters have the full data size and are indexed by the ``obs``
                    plate's subsample, so minibatching works.
``semidais``        NumPyro ``AutoSemiDAIS`` (differentiable annealed importance sampling
                    over the local ``z``) with the diagonal encoder as its base
                    distribution. It draws ``z`` for the plate's *subsample* only, with the
                    subsample size fixed when it is first traced, so full-data quantities
                    are computed minibatch by minibatch (``full_data=False``).
=================== ====================================================================

References
----------
Cremer, Li & Duvenaud (2018), "Inference suboptimality in variational autoencoders", ICML
(the amortisation gap). Jankowiak & Phan (2022), "Surrogate likelihoods for variational
annealed importance sampling", ICML (AutoSemiDAIS).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

from ppl_ident.errors import InputError
from ppl_ident.families.iid.guide import empty_guide, encoder_guide, fullcov_encoder_guide

__all__ = ["GUIDES", "GuideFamily", "guide_family", "empty_guide"]


class GuideFamily(NamedTuple):
    """One registered variational family.

    Attributes
    ----------
    encoder_outputs : callable ``n_latent -> int``, or None
        Output size of the encoder MLP; None for guides without an encoder.
    make : callable ``(model, encoder, **encoder_kwargs) -> guide``
    full_data : bool
        Whether the guide can be run on all observations at once (``subsample_size=None``).
    elbos : tuple of str, or None
        The ELBOs that are valid with this guide (None: all).
    """

    encoder_outputs: Callable | None
    make: Callable
    full_data: bool = True
    elbos: tuple | None = None


def _encoder(model, encoder, **kw):
    return partial(encoder_guide, encoder=encoder, **kw)


def _fullcov(model, encoder, **kw):
    return partial(fullcov_encoder_guide, encoder=encoder, **kw)


def _autonormal(model, encoder, **kw):
    from numpyro.infer.autoguide import AutoNormal

    # The guide keeps no reference to the encoder: it has one (loc, scale) per observation.
    return AutoNormal(model)


def _semidais(model, encoder, *, num_steps: int = 4, **kw):
    from numpyro.infer.autoguide import AutoSemiDAIS

    # No global latents (the networks are point-estimated parameters), so the whole model is
    # the "local model" and there is no global guide.
    return AutoSemiDAIS(model, model, None, local_guide=_encoder(model, encoder, **kw),
                        K=num_steps)


GUIDES: dict[str, GuideFamily] = {
    "encoder": GuideFamily(lambda n: 2 * n, _encoder),
    "encoder_fullcov": GuideFamily(lambda n: n + n * (n + 1) // 2, _fullcov),
    "autonormal": GuideFamily(None, _autonormal, full_data=False),
    # TraceMeanField_ELBO would take an analytic KL of the Delta site and drop the annealing
    # weights: it returns a meaningless (even positive) "ELBO", so only Trace_ELBO is allowed.
    "semidais": GuideFamily(lambda n: 2 * n, _semidais, full_data=False, elbos=("Trace_ELBO",)),
}


def guide_family(name: str) -> GuideFamily:
    """Look up a guide by name; unknown names list the valid ones."""
    if name not in GUIDES:
        raise InputError(f"Unknown guide {name!r}; valid guides: {', '.join(sorted(GUIDES))}.")
    return GUIDES[name]
