"""What a fit is made of: its checked settings, its model and its engine.

:func:`checked_settings` checks a fit's settings against its data (the CLI,
:func:`~ppl_ident.workflow.fitting.fit_model` and :func:`~ppl_ident.workflow.fitting.resume_run`
call it), through :func:`resolved_settings`, the part that needs only the data's dimensions
(the comparison harness checks every cell of a grid with it when the grid is made);
:func:`build_fit` derives the model, the engine and the restarts' key from resolved
settings, so that those and the comparison harness build the same fit from the same settings;
:func:`make_engine` builds the engine alone (a loaded run's templates).
"""

from __future__ import annotations

import jax

from ppl_ident.data.simulate import Dataset
from ppl_ident.errors import InputError
from ppl_ident.families import family_of
from ppl_ident.inference import SAMPLER_ENGINES, OptimConfig, build_engine
from ppl_ident.inference.sharding import batch_mesh
from ppl_ident.settings import (FLOW_LAYERS, SETTINGS_BY_NAME, FitSettings, check_applicable,
                                check_values, resolve_defaults, variational_settings)

__all__ = ["checked_settings", "resolved_settings", "build_fit", "engine_optim", "make_engine"]


def checked_settings(dataset: Dataset, s: FitSettings, *, guides: tuple | None = None):
    """The family of a fit and the settings it runs with (the latent dimension and batch size
    resolved against the data); raises InputError, naming the fix, for what cannot work.

    The settings themselves are checked by :func:`resolved_settings` (which the comparison
    harness also calls when a grid is made, before any data exist); this adds what needs the
    data: its shape, the default latent dimension, the batch size and the family's own checks.
    ``guides`` as in :func:`resolved_settings`.
    """
    family = family_of(s.model, dataset)
    d = dataset.x.shape[-1]
    n = s.latent_dim
    if n is None:
        n = dataset.z.shape[-1] if dataset.z is not None else d
    s = resolved_settings(s._replace(latent_dim=n), family, d, guides=guides)
    s = s._replace(batch_size=int(min(s.batch_size, family.n_obs(dataset))))
    return family, family.check_settings(dataset, s)


def resolved_settings(s: FitSettings, family, data_dim: int, *,
                      guides: tuple | None = None) -> FitSettings:
    """The settings a fit of ``s.latent_dim`` latents on ``data_dim`` columns runs with, decided
    before the data are read: every value checked (:func:`~ppl_ident.settings.check_values`,
    all bad values named at once), the settings of another family and the variational
    settings of an exact flow refused, and the model's defaults resolved (the exact flow where
    ``flow`` is unset and the family chooses it for ``n`` and ``d``: what ``ppl-ident fit``
    does). :func:`checked_settings` calls it with the data's dimensions; the comparison harness
    calls it for every cell of a grid when the grid is made.

    Parameters
    ----------
    s : FitSettings
        With ``latent_dim`` given.
    family : ModelFamily
        The family of ``s.model``.
    data_dim : int
        The columns of ``x`` (``d``).
    guides : tuple of str, optional
        The guides the fit may use (default: the family's ``guides``, those
        :func:`~ppl_ident.workflow.fit_model` fits with; the comparison harness passes the
        family's ``compare_guides``).

    Raises
    ------
    InputError
        For settings that cannot work (the message names the fix).
    """
    check_values(s)
    n, d = s.latent_dim, int(data_dim)
    if n is None:
        raise ValueError("resolved_settings needs latent_dim; checked_settings reads it from the "
                         "data")
    if n > d:
        raise InputError(
            f"latent_dim={n} is larger than the data dimension d={d}; the decoder must be "
            f"injective, so choose --latent-dim <= {d}."
        )
    if s.engine in SAMPLER_ENGINES:
        raise InputError(f"The {s.engine} engine samples z of a fitted model and fits nothing: "
                         "fit with engine 'svi' or 'iwae', then sample with `ppl-ident report "
                         "RUN --nuts-obs K` or compare with `ppl-ident compare --engines svi "
                         f"{s.engine}`.")
    allowed = family.guides if guides is None else tuple(guides)
    if s.guide not in allowed:
        more = " (ppl-ident compare runs the others)" if guides is None and set(
            family.compare_guides) - set(allowed) else ""
        raise InputError(f"Unknown guide {s.guide!r} for model {s.model!r}; choose one of "
                         f"{', '.join(allowed)}{more}.")
    check_applicable(s, family)
    variational = variational_settings(s)
    if s.flow and variational:
        raise InputError(
            f"{', '.join(variational)} set{'s' if len(variational) == 1 else ''} the variational "
            "model (encoder, objective, decoder noise), which the exact flow does not have: "
            "drop them, or fit the variational model with --no-flow.")
    # FLOW_LAYERS is what every variational run records (a resumed one gives it back)
    layers_given = s.flow_layers not in (None, FLOW_LAYERS)
    noise_given = bool(s.flow_noise) or s.flow_noise_sd is not None
    if s.flow_noise_sd is not None and s.flow_noise is False:
        raise InputError("--flow-noise-sd gives the noisy flow's noise, but --no-flow-noise asks "
                         "for the noiseless flow: drop one of them.")
    s = resolve_defaults(s, not variational and family.auto_flow(int(n), d, s), int(n),
                         family=family.name, data_dim=d)
    if noise_given and not s.flow:
        raise InputError("--flow-noise adds observation noise to the exact flow, which this fit "
                         "does not use (--no-flow, or n and d that rule it out): drop "
                         "--flow-noise (the variational model learns its decoder noise anyway).")
    if layers_given and not s.flow:
        raise InputError("--flow-layers sets the depth of the exact-likelihood flow model; add "
                         "--flow (or --preset exact), or drop --flow-layers.")
    return s._replace(latent_dim=int(n))


def build_fit(dataset: Dataset, s: FitSettings, u, labels):
    """The model, the engine and the restarts' key of a fit with checked settings ``s``.

    Everything is derived from ``s.seed``, so :func:`fit_model`, :func:`resume_run` and the
    comparison harness build the same model and engine from the same settings.
    """
    family = family_of(s.model)
    _require_resolved(s, family.name)
    k_model, k_fit = jax.random.split(jax.random.PRNGKey(s.seed))
    config = family.spec_config(s, dataset, u, labels)
    spec = family.build(s.model, k_model, **config)
    return spec, make_engine(spec, s, family.engine_batch(s, dataset)), k_fit


def _require_resolved(s: FitSettings, family: str | None = None) -> None:
    """Refuse settings whose model-dependent defaults are still open (None): those of every
    model, and with ``family`` (its name) also those declared for that family alone."""
    keys = ("steps", "depth", "learning_rate", "flow_layers") + tuple(
        k for k in ("transition_width", "transition_depth", "regime_transitions")
        if family in SETTINGS_BY_NAME[k].families)
    open_ = [k for k in keys if getattr(s, k) is None]
    if open_:
        raise ValueError(f"settings with {', '.join(open_)} still open (None): pass them "
                         "through checked_settings (or resolve_defaults) first")


def engine_optim(s: FitSettings) -> OptimConfig:
    """The optimiser schedule of a fit with settings ``s`` (checked: their steps and learning
    rate decided)."""
    _require_resolved(s)
    return OptimConfig(learning_rate=s.learning_rate, num_steps=s.steps,
                       warmup_steps=s.warmup_steps, clip_norm=s.clip_norm)


def make_engine(spec, s: FitSettings, batch_size: int):
    """The engine of settings ``s`` for ``spec``, drawing minibatches of ``batch_size``."""
    # None leaves the engine's own default ELBO and particle count
    chosen = {k: v for k, v in (("elbo", s.elbo), ("num_particles", s.num_particles))
              if v is not None}
    mesh = batch_mesh(s.devices)
    if mesh is not None:
        chosen["mesh"] = mesh
    return build_engine(s.engine, spec, batch_size=batch_size, optim=engine_optim(s), **chosen)
