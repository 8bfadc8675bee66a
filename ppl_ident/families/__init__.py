"""Model families and the model registry.

A family (:class:`~ppl_ident.families.base.ModelFamily`) is a kind of data and the models that
fit it; each is one subpackage. :data:`FAMILIES` is the one place that lists them, and
:func:`family_of` / :func:`family_for_data` / :func:`family_of_generator` are the only
questions the rest of the package asks: "which family fits this model?", "which family takes
data of this shape?" and "which family's data does this simulator make?" (a comparison grid's
data setting).

=============== ============================ ==============================================
family          data                          models
=============== ============================ ==============================================
``iid``         ``x`` ``(N, d)``, ``u``       ``ivae``, ``vae``
                ``(N,)`` int or ``(N, k)``
``sequence``    ``x`` ``(B, T, d)``, ``u``    ``tivae``, ``regime``, ``stationary``
                ``(B, T)`` int (``tivae``)
=============== ============================ ==============================================

A model is a plain NumPyro function; :func:`build_model` binds it to freshly initialised
networks and pairs it with its guide as a :class:`ModelSpec`.
"""

from __future__ import annotations

import jax
import numpy as np

from ppl_ident.errors import InputError
from ppl_ident.families.base import ModelFamily, ModelSpec
from ppl_ident.families.iid.build import ARCHITECTURES
from ppl_ident.families.iid.family import IIDFamily
from ppl_ident.families.iid.model import PRIORS, ivae, prior_params, vae
from ppl_ident.families.sequence.family import SequenceFamily
from ppl_ident.families.sequence.model import regime, stationary, tivae

__all__ = ["ARCHITECTURES", "DEFAULT_GENERATOR", "FAMILIES", "GENERATORS", "MODELS",
           "ModelFamily", "ModelSpec", "build_model", "family_for_data", "family_of",
           "family_of_generator", "register_family", "ivae", "vae", "prior_params", "PRIORS",
           "tivae", "regime", "stationary"]

#: name -> family; a new family is one subpackage plus one line here (or, from outside the
#: package, one call of :func:`register_family`).
FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (IIDFamily(), SequenceFamily())}

#: model name -> its family
MODELS: dict[str, ModelFamily] = {m: f for f in FAMILIES.values() for m in f.models}

#: simulator name (a comparison grid's ``[data] generator``) -> the family whose data it makes
GENERATORS: dict[str, ModelFamily] = {g: f for f in FAMILIES.values() for g in f.generators}
#: The simulator of a grid's data setting that names none: the package's default data.
DEFAULT_GENERATOR = FAMILIES["iid"].generators[0]


def register_family(family: ModelFamily) -> ModelFamily:
    """Add ``family`` and its models to :data:`FAMILIES` and :data:`MODELS`, and its data
    generators to :data:`GENERATORS` (in place, so
    every module that imported them sees it); returns it.

    Raises
    ------
    InputError
        ``family`` is not a :class:`ModelFamily`, or its name, one of its model names or
        one of its generators is taken (the message names the registered one).

    Examples
    --------
    >>> register_family(MyFamily())               # doctest: +SKIP
    >>> family_of("my_model").name                 # doctest: +SKIP
    'my_family'
    """
    if not isinstance(family, ModelFamily):
        raise InputError(f"register_family takes a ModelFamily instance, got {family!r}: "
                         "subclass ppl_ident.families.ModelFamily.")
    if family.name in FAMILIES:
        raise InputError(f"A family named {family.name!r} is registered already "
                         f"({type(FAMILIES[family.name]).__name__}); give the new family "
                         "another name.")
    taken = [m for m in family.models if m in MODELS]
    if taken:
        raise InputError(f"The model name(s) {', '.join(map(repr, taken))} belong to the "
                         f"{MODELS[taken[0]].name!r} family already; name the new family's "
                         "models differently.")
    clash = [g for g in family.generators if g in GENERATORS]
    if clash:
        raise InputError(f"The data generator(s) {', '.join(map(repr, clash))} belong to the "
                         f"{GENERATORS[clash[0]].name!r} family already; name the new family's "
                         "generators differently.")
    FAMILIES[family.name] = family
    MODELS.update({m: family for m in family.models})
    GENERATORS.update({g: family for g in family.generators})
    return family



def __getattr__(name):
    """``SEQUENCE_MODELS``, for scripts written against 0.1: deprecated, with a warning naming
    the replacement (the package itself asks a model's family, :func:`family_of`)."""
    if name == "SEQUENCE_MODELS":
        import warnings

        warnings.warn("ppl_ident.families.SEQUENCE_MODELS is deprecated: use "
                      "FAMILIES['sequence'].models, or family_of(model).", DeprecationWarning,
                      stacklevel=2)
        return FAMILIES["sequence"].models
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def family_of(model: str, dataset=None) -> ModelFamily:
    """The family of ``model``; with ``dataset``, also refuse data of another family's rank.

    Raises
    ------
    InputError
        An unknown model (the message lists the valid ones), or data whose ``x`` has the rank
        of another family (the message names the models that take it).
    """
    if model not in MODELS:
        raise InputError(f"Unknown model {model!r}; valid models: {', '.join(sorted(MODELS))}.")
    family = MODELS[model]
    if dataset is not None and np.ndim(dataset.x) != family.data_rank:
        other = family_for_data(dataset, required=False)
        use = (f"use one of the {other.label} models (--model {' or '.join(other.models)}), "
               "or " if other else "")
        raise InputError(f"Model {model!r} ({family.label} family) takes x of shape "
                         f"{family.data_shape}; this data has shape {np.shape(dataset.x)}: "
                         f"{use}{family.rank_hint}.")
    return family


def family_for_data(dataset, required: bool = True) -> ModelFamily | None:
    """The family whose data rank is that of ``dataset.x`` (for ``check`` on a data file)."""
    for family in FAMILIES.values():
        if np.ndim(dataset.x) == family.data_rank:
            return family
    if not required:
        return None
    shapes = " or ".join(f.data_shape for f in FAMILIES.values())
    raise InputError(f"x has shape {np.shape(dataset.x)}; the models take {shapes}.")


def family_of_generator(generator: str) -> ModelFamily:
    """The family whose data the simulator ``generator`` makes (a comparison grid's data
    setting); an unknown name lists the valid ones."""
    if generator not in GENERATORS:
        raise InputError(f"Unknown generator {generator!r}; valid generators: "
                         f"{', '.join(GENERATORS)}.")
    return GENERATORS[generator]


def build_model(name: str, key=None, **config) -> ModelSpec:
    """Build a registered model by name.

    Parameters
    ----------
    name : str
        One of :data:`MODELS` (``"ivae"``, ``"vae"``, ``"tivae"``, ``"regime"``,
        ``"stationary"``).
    key : jax PRNG key, optional
        Initialises the networks (default ``PRNGKey(0)``).
    **config
        The family's options: for ``ivae``/``vae`` ``n_latent``, ``data_dim``, ``n_domains``
        or ``aux_dim``, ``width``, ``depth``, ``prior``, ``noise_scale``,
        ``learn_prior_loc``, ``guide`` (a name in :data:`ppl_ident.families.guides.GUIDES`,
        default ``"encoder"``); for the sequence models see
        :func:`ppl_ident.families.sequence.build.build_sequence_model`.

    Examples
    --------
    >>> spec = build_model("ivae", n_latent=2, data_dim=3, n_domains=4)
    >>> spec.name
    'ivae'
    """
    family = family_of(name)
    key = jax.random.PRNGKey(0) if key is None else key
    return family.build(name, key, **config)
