"""Fit settings, declared once.

Every setting of :func:`ppl_ident.workflow.fit_model` is one row of :data:`SETTINGS`: its
default, its help text, the model families it applies to and its ``ppl-ident fit`` flag. From
that table come :class:`FitSettings` (the record a fit runs with), the ``fit`` command's flags
(:func:`add_fit_arguments`), the settings ``--resume`` refuses to change
(:func:`changed_settings`), the keys a ``compare`` grid's engine entry accepts
(:data:`GRID_KEYS`) and the refusal of a setting that does not apply to the chosen model
(:func:`check_applicable`): a setting is never silently dropped.

This module imports no JAX (``ppl-ident fit --help`` builds its parser from it); the
registries that list choices (models, engines, ELBOs, guides) are read when a parser is built.
"""

from __future__ import annotations

import argparse
import collections
from typing import NamedTuple

from ppl_ident.errors import InputError

__all__ = ["SETTINGS", "Setting", "FitSettings", "FIT_PRESETS", "GRID_KEYS", "MODEL_DEFAULTS",
           "DEFAULT_STEPS", "default_flow_noise", "BASE_LATENTS", "FLOW_LAYERS", "FLOW_LAYERS_LARGE", "LARGE_LATENTS",
           "default_flow_layers", "REGIME_FLOW_NETWORKS", "default_steps",
           "VARIATIONAL_ONLY", "fit_settings", "resolve_defaults", "variational_settings",
           "check_applicable", "check_values", "add_fit_arguments", "settings_from_args",
           "changed_settings", "SETTINGS_BY_NAME", "FLOW_DEFAULTS", "MODEL_OVERRIDES"]

IID, SEQ = ("iid",), ("sequence",)
ALL = IID + SEQ


class Setting(NamedTuple):
    """One fit setting.

    Attributes
    ----------
    name : str
        The :class:`FitSettings` field.
    default : object
        None means "the engine's own" or "derived from the data" (as the help says).
    help : str
    families : tuple of str
        The families (:data:`ppl_ident.families.FAMILIES`) it applies to; :data:`ALL`: every
        family, a family registered later included (:meth:`applies_to`).
    flag : str or None
        The ``ppl-ident fit`` flag; None: the setting is not a flag (``model`` is positional
        in spirit but a flag too, see below).
    kind : str
        ``"int"`` (positive), ``"nonneg_int"``, ``"float"`` (positive), ``"str"``,
        ``"flag"`` (a boolean switched on by the flag), ``"no_flag"`` (a boolean switched
        off by ``--no-...``), ``"optional_flag"`` (a boolean set by ``--flag`` or
        ``--no-flag`` whose unset value keeps the preset's or is decided from the data).
    choices : str or None
        The registry that lists the valid values (``"models"``, ``"engines"``, ``"elbos"``,
        ``"guides"``, ``"priors"``), read when a parser is built or a value checked.
    grid : bool
        Whether a ``compare`` grid's engine entry may set it.
    """

    name: str
    default: object
    help: str
    families: tuple = ALL
    flag: str | None = None
    kind: str = "str"
    choices: str | None = None
    grid: bool = True

    def applies_to(self, family: str) -> bool:
        """Whether the setting applies to the models of ``family`` (a family's name)."""
        return self.families == ALL or family in self.families


#: Defaults of the settings a fit leaves unset (None) that depend on the model it runs: the
#: variational models, the i.i.d. models' exact flow (``"flow"``) and the sequence models'
#: exact flow (``"sequence_flow"``). A flow takes ``steps`` for up to :data:`BASE_LATENTS`
#: latents and ``steps_per_latent`` more per latent above. The i.i.d. flow's coupling networks
#: have one hidden layer and a peak learning rate of 1e-2: on the default setting that is the
#: same MCC (median 0.960, min 0.953 over 5 seeds, against 0.963 and 0.940 with two hidden
#: layers at 5e-3) in 0.47 of the run time, and a step cheap enough for 3500 more steps per
#: latent (n = d = 10 at 10^6 rows: MCC 0.926 after 5000 steps, 0.940 after 10,000, 0.952
#: after 20,000 in 74 s of run time; ``benchmarks/README.md``). The sequence flow's networks
#: have one hidden layer too, at lr 1e-2, with a wider transition network (192 units: one
#: hidden layer of 64 cannot hold five regimes' transitions of 8 latents and lag 2), except
#: the regime model's (:data:`REGIME_FLOW_NETWORKS`); see ``benchmarks/README.md`` (the
#: published temporal benchmarks).
MODEL_DEFAULTS = {
    "variational": {"steps": 5000, "steps_per_latent": 0, "depth": 2, "learning_rate": 5e-3,
                    "prior": "gaussian"},
    "flow": {"steps": 2500, "steps_per_latent": 3500, "depth": 1, "learning_rate": 1e-2,
             "prior": "mixture"},
    "sequence_flow": {"steps": 2500, "steps_per_latent": 500, "depth": 1,
                      "learning_rate": 1e-2, "transition_depth": 1, "transition_width": 192},
}
#: The hidden-regime model's networks under the sequence flow: two hidden layers in the
#: coupling networks and one transition network per regime of two hidden layers of 64 units
#: (``regime_transitions="separate"``). K regimes' transitions read from one network lost the
#: regimes of the package-style K = 5 data with one layer of 192 units (regime accuracy
#: 0.52-0.73 against 0.97) and of the n = 4 benchmark's seed 2 with two layers of 64 (0.68);
#: see ``benchmarks/README.md``.
REGIME_FLOW_NETWORKS = {"depth": 2, "transition_depth": 2, "transition_width": 64,
                        "regime_transitions": "separate"}
#: Which row of :data:`MODEL_DEFAULTS` a family's exact flow takes (the variational models of
#: every family take ``"variational"``).
FLOW_DEFAULTS = {"iid": "flow", "sequence": "sequence_flow"}
#: Defaults of one model that override its row of :data:`MODEL_DEFAULTS`, by row and model.
MODEL_OVERRIDES = {"sequence_flow": {"regime": REGIME_FLOW_NETWORKS}}
#: Latents up to which a flow takes its base number of steps (the default setting's n).
BASE_LATENTS = 5
#: Coupling layers of an exact flow that leaves ``flow_layers`` unset: :data:`FLOW_LAYERS` up
#: to :data:`LARGE_LATENTS` latents, :data:`FLOW_LAYERS_LARGE` above. At n = d = 20 (10^6 rows,
#: 55,000 steps) 12 layers reached MCC 0.906 where 8 reached 0.892 (and 0.897 after 80,000
#: steps; twice the coupling width: 0.892); see ``benchmarks/README.md``.
FLOW_LAYERS, FLOW_LAYERS_LARGE, LARGE_LATENTS = 8, 12, 10


def default_flow_noise(n_latent: int | None, data_dim: int | None) -> bool:
    """Whether an i.i.d. exact flow that leaves ``flow_noise`` unset learns observation noise:
    where the data identify it, with more observed columns than latents (``d > n``; see
    :func:`ppl_ident.diagnostics.noise.noise_identified`). With ``d = n`` a flexible mixing
    absorbs the noise (the held-out likelihood does not peak at the true level), so the noisy
    flow would learn a fraction of it; the noiseless flow stays the default there.

    Measured (``benchmarks/calibration.py --data-dim 10``, n = 5, seeds 0-4, 2026-12-08): the
    noisy flow learns each column's noise (0.94-0.98 of the truth on seed 0 at 0.1 x sd), and
    its median MCC is 0.879 / 0.831 / 0.653 at noise 0.05 / 0.1 / 0.3 x sd against the
    noiseless flow's 0.862 / 0.796 / 0.620, and 0.948 against 0.952 on noiseless data.
    """
    if n_latent is None or data_dim is None:
        return False
    from ppl_ident.diagnostics.noise import noise_identified

    return noise_identified(data_dim, n_latent)

#: Steps of a fit that leaves ``steps`` unset, up to :data:`BASE_LATENTS` latents.
DEFAULT_STEPS = {kind: d["steps"] for kind, d in MODEL_DEFAULTS.items()}


def default_flow_layers(n_latent: int | None) -> int:
    """The coupling layers of an exact flow over ``n_latent`` latents that leaves
    ``flow_layers`` unset."""
    return FLOW_LAYERS if int(n_latent or 0) <= LARGE_LATENTS else FLOW_LAYERS_LARGE


def default_steps(kind: str, n_latent: int | None) -> int:
    """The steps of a fit of ``kind`` (a key of :data:`MODEL_DEFAULTS`) with ``n_latent``
    latents that leaves ``steps`` unset."""
    if kind not in MODEL_DEFAULTS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_DEFAULTS)}")
    d = MODEL_DEFAULTS[kind]
    return int(d["steps"] + d["steps_per_latent"] * max(0, int(n_latent or 0) - BASE_LATENTS))


_FLOW, _SEQ_FLOW, _VAR = (MODEL_DEFAULTS[k] for k in ("flow", "sequence_flow", "variational"))

SETTINGS: tuple[Setting, ...] = (
    Setting("model", "ivae", "the model to fit", flag="--model", choices="models", grid=False),
    Setting("latent_dim", None, "n (default: dimension of z in the file, else of x)",
            flag="--latent-dim", kind="int", grid=False),
    Setting("engine", "svi", "optimisation engine (the nuts sampler runs in `report` and "
            "`compare`)", flag="--engine", choices="fit_engines"),
    Setting("elbo", None, "objective (default: the engine's: svi Trace_ELBO, iwae RenyiELBO)",
            flag="--elbo", choices="elbos"),
    Setting("num_particles", None, "Monte Carlo particles per observation (default: the "
            "engine's)", flag="--particles", kind="int"),
    Setting("steps", None, f"optimisation steps (default: for the exact flow {_FLOW['steps']} "
            f"up to n = {BASE_LATENTS} and {_FLOW['steps_per_latent']} more per latent above "
            f"(sequence models: {_SEQ_FLOW['steps_per_latent']} more); {_VAR['steps']} for the "
            "variational models; with --resume: the total to reach)", flag="--steps",
            kind="int"),
    Setting("batch_size", 512, "observations per minibatch (sequences: time steps, whole "
            "sequences)", flag="--batch-size", kind="int"),
    Setting("learning_rate", None, f"peak learning rate (default: {_FLOW['learning_rate']:g} "
            f"for the exact flows, {_VAR['learning_rate']:g} for the variational models)",
            flag="--lr", kind="float"),
    Setting("warmup_steps", 200, "linear learning-rate warm-up steps", flag="--warmup-steps",
            kind="nonneg_int"),
    Setting("clip_norm", 1e4, "gradient clipping norm", flag="--clip-norm", kind="float"),
    Setting("restarts", 1, "independent initialisations run together; best by ELBO is kept",
            flag="--restarts", kind="int", grid=False),
    Setting("seeds", 1, "independent fits from K seeds, run together and all kept: their mean "
            "pairwise MCC (seed_agreement in metrics.json) is evidence of identifiability "
            "without true latents; the best by ELBO is the run's fit",
            flag="--seeds", kind="int", grid=False),
    Setting("devices", None, "devices each step's minibatch is split over (data parallel, "
            "jax.sharding; default: every device JAX sees; 1: off)", flag="--devices",
            kind="int", grid=False),
    Setting("width", 64, "hidden units per layer", flag="--width", kind="int"),
    Setting("depth", None, f"hidden layers (default: {_FLOW['depth']} in the exact flows' "
            f"networks (the regime model's: {REGIME_FLOW_NETWORKS['depth']}), {_VAR['depth']} in "
            "the variational models')",
            flag="--depth", kind="int"),
    Setting("prior", None, "family of the factorial prior p(z | u) (default: "
            f"{_FLOW['prior']} for the exact flow: each latent's shape a learned Gaussian "
            "mixture, moved and scaled per u, for heavy tails, skew and several modes; "
            f"{_VAR['prior']} for the variational models)", IID,
            flag="--prior", choices="priors"),
    Setting("noise_scale", None, "fix the observation noise scale (default: learn it)",
            flag="--noise-scale", kind="float"),
    Setting("noise_init", 0.3, "initial value of the learned noise scale (whitened units)",
            flag="--noise-init", kind="float"),
    Setting("whiten", True, "decode in data coordinates with isotropic noise instead of "
            "whitened coordinates (whitening is the default; see docs/explanation/models.md)",
            flag="--no-whiten", kind="no_flag"),
    Setting("guide", "encoder_fullcov", "variational family of q(z | x, u); the default "
            "full-covariance encoder identifies best in benchmarks/README.md", flag="--guide",
            choices="fit_guides"),
    Setting("seed", 0, "seed of the initialisation and the minibatches", flag="--seed",
            kind="nonneg_int", grid=False),
    Setting("lag", 1, "sequence models: lag L of the transition", SEQ, flag="--lag",
            kind="int"),
    Setting("n_regimes", 3, "regime model: number of hidden regimes K", SEQ, flag="--regimes",
            kind="int"),
    Setting("context", 3, "sequence models: the encoder sees x_{t-c..t+c}", SEQ,
            flag="--context", kind="nonneg_int"),
    Setting("transition_width", None, "sequence models: hidden units per layer of the "
            f"transition network (default with the exact flow: {_SEQ_FLOW['transition_width']}, "
            f"regime model {REGIME_FLOW_NETWORKS['transition_width']}; otherwise --width)", SEQ,
            flag="--transition-width", kind="int"),
    Setting("transition_depth", None, "sequence models: hidden layers of the transition "
            f"network (default with the exact flow: {_SEQ_FLOW['transition_depth']}, regime "
            f"model {REGIME_FLOW_NETWORKS['transition_depth']}; otherwise --depth)", SEQ,
            flag="--transition-depth", kind="int"),
    Setting("regime_transitions", None, "regime model: one transition network per hidden "
            "regime (separate) or one network with a head per regime (shared) (default with "
            f"the exact flow: {REGIME_FLOW_NETWORKS['regime_transitions']}; otherwise shared)",
            SEQ, flag="--regime-transitions", choices="regime_transitions"),
    Setting("heteroscedastic", False, "sequence models: the transition noise scale moves with "
            "the past", SEQ, flag="--heteroscedastic", kind="flag"),
    Setting("transition", None, "sequence models: transition prior p(z_t | past, u): "
            "additive (Gaussian noise around a learned mean) or flow (a learned inverse "
            "transition eps_t,i = r_i(z_t,i; past, u), a conditional monotone spline with "
            "exact log-derivative: post-nonlinear and non-Gaussian transitions) or "
            "post_nonlinear (one learned spline s_i(z_t,i) per latent, not reading the past, "
            "with s(z_t) Gaussian around a learned mean of the past). Default: flow with the "
            "exact flow model, additive otherwise (and with --heteroscedastic)", SEQ,
            flag="--transition", choices="transitions"),
    Setting("initial", None, "sequence models: density of the first L steps of each sequence: "
            "gaussian (a learned factorial Gaussian) or conditional (left unscored: the exact "
            "flow then fits p(x_{L+1:T} | x_{1:L}), right for windows cut from a longer "
            "recording). Default: conditional with the flow, gaussian otherwise", SEQ,
            flag="--initial", choices="initials"),
    Setting("flow", None, "exact likelihood: z = h(x) with an invertible flow h instead of an "
            "encoder and a noisy decoder (a point-estimate posterior). Default: on for ivae and "
            "vae when 2 <= n <= d (d > n: x first reduced to its n principal components), and "
            "for the sequence models when n == d; --no-flow fits the variational model",
            flag="--flow", kind="optional_flag"),
    Setting("flow_noise", None, "exact flow models: learn Gaussian observation noise, x = "
            "h^{-1}(z) + eps with a per-column noise sd, so that z has a real posterior "
            "p(z | x, u) (a full-covariance Gaussian over the noise-free x, through h) instead of "
            "the point z = h(x); --no-flow-noise: the noiseless flow. Default: on when the data "
            "have more columns than latents (d > n), where they identify the noise; off for d = n",
            IID, flag="--flow-noise", kind="optional_flag"),
    Setting("flow_noise_sd", None, "the noisy flow with a known observation-noise sd (data "
            "units, every column) instead of a learned one, e.g. an instrument's calibrated "
            "noise; implies --flow-noise. With d = n the data cannot tell noise from signal, "
            "so a known level is the way to honest intervals there", IID,
            flag="--flow-noise-sd", kind="float"),
    Setting("flow_layers", None, "flow models: affine coupling layers, each with an LU linear "
            f"map (default: {FLOW_LAYERS} up to n = {LARGE_LATENTS}, {FLOW_LAYERS_LARGE} above)",
            flag="--flow-layers", kind="int"),
)

#: Every :class:`Setting` by name.
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}

_FitSettingsBase = collections.namedtuple("_FitSettingsBase", [s.name for s in SETTINGS],
                                          defaults=[s.default for s in SETTINGS])


class FitSettings(_FitSettingsBase):
    """Settings of :func:`ppl_ident.workflow.fit_model`, one field per row of
    :data:`SETTINGS`. The defaults are tuned on the default simulator setting (see
    ``benchmarks/README.md``)."""

    __slots__ = ()


#: Named starting points for :class:`FitSettings` (``fit_settings(preset, **overrides)``,
#: ``ppl-ident fit --preset``). ``default`` is the default: for ivae and vae with
#: ``2 <= n <= d`` the exact-likelihood flow for 2500 steps (:data:`MODEL_DEFAULTS`), which on
#: the default setting reaches a median MCC of 0.96 over 5 seeds (min 0.95) in about 6 s of run
#: time plus 9 s of compilation (see ``benchmarks/README.md``).
#: ``accurate`` is the best variational fit (``--no-flow``: an encoder and a noisy decoder, for
#: data with observation noise or a curved manifold that a linear reduction to n principal
#: components would fold): the importance-weighted bound with 32 particles (``iwae``) for
#: 10,000 steps, median MCC 0.953 on the default setting at about 7 times the default's run
#: time. On sequence models its weights are per sequence
#: (:func:`ppl_ident.inference.engines.fold_plate`). ``exact`` (sequence models with ``d == n``)
#: replaces the encoder and the noisy decoder by an invertible flow and trains on the exact
#: ``log p(x)`` for 20,000 steps at a peak learning rate of 1e-3, with the additive transition
#: and the Gaussian first steps (the flow default's spline and conditional first steps suit
#: the published post-nonlinear data; these suit additive transitions): on the sequence
#: benchmarks it
#: raises the median MCC over 3 seeds from 0.82 to 0.945 (temporal iVAE) and from 0.74 to 0.936
#: (hidden regimes) in about 4 minutes, at the price of a point-estimate posterior.
FIT_PRESETS = {
    "default": {},
    "accurate": {"flow": False, "engine": "iwae", "num_particles": 32, "steps": 10_000},
    "exact": {"flow": True, "steps": 20_000, "learning_rate": 1e-3, "transition": "additive",
              "initial": "gaussian", "depth": 2, "transition_depth": 2,
              "transition_width": 64, "regime_transitions": "shared"},
}

#: Former names of presets -> their names now: refused with the name to use.
RENAMED_PRESETS = {"fast": "default"}

PRESET_HELP = ("starting settings: default (ivae/vae with 2 <= n <= d: the exact flow, 2500 "
               "steps; otherwise the variational model, 5000 steps); accurate (the variational "
               "model on the importance-weighted bound, 32 particles, 10,000 steps); exact "
               "(sequence models with d == n: the flow, 20,000 steps, lr 1e-3, additive "
               "transition, Gaussian first steps, two hidden layers, a transition width of 64, "
               "one transition network shared by the regimes); flags override it")

#: The keys a ``compare`` grid's engine entry may set (besides the sampler's own options).
GRID_KEYS = tuple(s.name for s in SETTINGS if s.grid)


def fit_settings(preset: str = "default", **overrides) -> FitSettings:
    """:class:`FitSettings` of a named preset (:data:`FIT_PRESETS`), with field overrides.

    >>> fit_settings("accurate", seed=3).num_particles
    32
    """
    if preset in RENAMED_PRESETS:
        new = RENAMED_PRESETS[preset]
        raise InputError(f"The preset {preset!r} is now called {new!r} (the same settings): "
                         f"pass --preset {new} (fit_settings({new!r})).")
    if preset not in FIT_PRESETS:
        raise InputError(f"Unknown preset {preset!r}; choose one of {', '.join(FIT_PRESETS)}.")
    unknown = set(overrides) - set(FitSettings._fields)
    if unknown:
        raise InputError(f"Unknown fit setting(s) {', '.join(sorted(unknown))}; valid: "
                         f"{', '.join(FitSettings._fields)}.")
    return FitSettings(**{**FIT_PRESETS[preset], **overrides})


#: Settings of the variational models only (the encoder, its objective, the decoder noise):
#: given explicitly, they make an unset ``flow`` mean the variational model, and with
#: ``flow=True`` they are refused rather than ignored.
VARIATIONAL_ONLY = ("engine", "elbo", "num_particles", "guide", "noise_scale", "noise_init",
                    "context")


def variational_settings(s: FitSettings) -> list[str]:
    """The flags of the :data:`VARIATIONAL_ONLY` settings that ``s`` changes."""
    return [_flag(SETTINGS_BY_NAME[k]) for k in VARIATIONAL_ONLY
            if getattr(s, k) != SETTINGS_BY_NAME[k].default]


def resolve_defaults(s: FitSettings, flow: bool, n_latent: int | None = None, *,
                     family: str, data_dim: int | None = None) -> FitSettings:
    """``s`` with the model-dependent defaults decided: ``flow`` where it is unset, then the
    steps, depth and learning rate of the chosen model (the family's row of
    :data:`MODEL_DEFAULTS`, :data:`FLOW_DEFAULTS`, with the model's :data:`MODEL_OVERRIDES`)
    where they are unset (:func:`default_steps`: more steps for more latents), the flow's
    coupling layers (:func:`default_flow_layers`), and the settings that apply to the family
    only (:attr:`Setting.families`): the i.i.d. flow's observation noise
    (:func:`default_flow_noise` of ``n_latent`` and ``data_dim``; off for the variational
    model) and prior, the sequence
    models' transition network (the row's width and depth, else ``width`` and ``depth``) and
    regime transitions. A setting of another family stays as given (unset: None).
    ``family`` is the model family's name (a key of :data:`FLOW_DEFAULTS`; the caller asks
    the model's family, ``family_of(s.model).name``: no family is assumed)."""
    flow = bool(flow if s.flow is None else s.flow)
    kind = FLOW_DEFAULTS[family] if flow else "variational"
    defaults = {**MODEL_DEFAULTS[kind], **MODEL_OVERRIDES.get(kind, {}).get(s.model, {})}
    steps = default_steps(kind, n_latent) if s.steps is None else s.steps
    s = s._replace(
        flow=flow, steps=int(steps),
        # the variational models have no flow: they record the base number, as they always did
        flow_layers=int(s.flow_layers if s.flow_layers is not None else
                        default_flow_layers(n_latent) if flow else FLOW_LAYERS),
        depth=int(defaults["depth"] if s.depth is None else s.depth),
        learning_rate=float(defaults["learning_rate"] if s.learning_rate is None
                            else s.learning_rate))
    family_defaults = {
        "flow_noise": lambda: bool(flow and (
            (s.flow_noise_sd is not None or default_flow_noise(n_latent, data_dim))
            if s.flow_noise is None else s.flow_noise)),
        "prior": lambda: defaults["prior"] if s.prior is None else s.prior,
        "transition_width": lambda: int(defaults.get("transition_width", s.width)
                                        if s.transition_width is None else s.transition_width),
        "transition_depth": lambda: int(defaults.get("transition_depth", s.depth)
                                        if s.transition_depth is None else s.transition_depth),
        "regime_transitions": lambda: (defaults.get("regime_transitions", "shared")
                                       if s.regime_transitions is None
                                       else s.regime_transitions),
    }
    return s._replace(**{name: value() for name, value in family_defaults.items()
                         if family in SETTINGS_BY_NAME[name].families})


def _flag(s: Setting) -> str:
    return s.flag or f"--{s.name.replace('_', '-')}"


def check_applicable(settings: FitSettings, family) -> None:
    """Refuse settings that differ from their defaults but do not apply to ``family``.

    A setting of the other family (``--lag`` on the iVAE, ``--prior`` on a sequence model) is
    never dropped silently: the message names it and the models it applies to.
    """
    from ppl_ident.families import FAMILIES

    for s in SETTINGS:
        value = getattr(settings, s.name)
        if s.applies_to(family.name) or value == s.default:
            continue
        models = [m for f in s.families for m in FAMILIES[f].models]
        # blamed on a preset only if every setting of the other family it sets is as it sets it
        presets = [p for p, kw in FIT_PRESETS.items() if s.name in kw and all(
            getattr(settings, k) == v for k, v in kw.items()
            if not SETTINGS_BY_NAME[k].applies_to(family.name))]
        if presets:  # not given as a flag: it came with a preset of the other family
            raise InputError(
                f"--preset {presets[0]} sets {s.name}={value!r}, a setting of the models "
                f"{', '.join(models)}; model {settings.model!r} has no such setting: drop "
                f"--preset {presets[0]}.")
        raise InputError(
            f"{_flag(s)} ({s.name}={value!r}) applies to the models {', '.join(models)}; model "
            f"{settings.model!r} has no such setting: drop {_flag(s)}"
            f"{' (or --preset exact)' if s.name == 'flow' else ''}.")


def check_values(s: FitSettings) -> None:
    """Refuse values of the wrong kind (a non-positive step count, learning rate, ...); the
    message names every such value, so that one correction fixes them all."""
    problems = []
    for row in SETTINGS:
        value = getattr(s, row.name)
        if value is None:
            continue
        if row.kind in ("int", "nonneg_int"):
            low = 1 if row.kind == "int" else 0
            if isinstance(value, bool) or int(value) != value or value < low:
                what = "a positive integer" if low else "an integer >= 0"
                problems.append(f"{row.name} must be {what}, got {value!r}")
        elif row.kind == "float" and not value > 0:
            hint = " (or omitted to learn it)" if row.name == "noise_scale" else ""
            problems.append(f"{row.name} must be > 0{hint}, got {value}")
    if problems:
        raise InputError("; ".join(problems) + ".")


# -- the `ppl-ident fit` flags ---------------------------------------------------------------

def _choices(name: str | None):
    if name is None:
        return None
    if name == "models":
        from ppl_ident.families import MODELS
        return sorted(MODELS)
    if name == "fit_engines":
        from ppl_ident.inference import ENGINES, SAMPLER_ENGINES
        return sorted(set(ENGINES) - SAMPLER_ENGINES)
    if name == "elbos":
        from ppl_ident.inference import ELBOS
        return sorted(ELBOS)
    if name == "priors":
        from ppl_ident.families import PRIORS
        return list(PRIORS)
    if name == "transitions":
        from ppl_ident.ops.transitions import TRANSITION_PRIORS
        return list(TRANSITION_PRIORS)
    if name == "regime_transitions":
        from ppl_ident.families.sequence.build import REGIME_TRANSITIONS
        return list(REGIME_TRANSITIONS)
    if name == "initials":
        from ppl_ident.families.sequence.model import INITIAL_DENSITIES
        return list(INITIAL_DENSITIES)
    if name == "fit_guides":
        from ppl_ident.families import FAMILIES
        return sorted({g for f in FAMILIES.values() for g in f.guides})
    raise KeyError(name)


class _PresetChoices(tuple):
    """The presets ``--preset`` lists; a former name (:data:`RENAMED_PRESETS`) passes argparse
    too, so that :func:`fit_settings` refuses it naming the new one."""

    def __contains__(self, name) -> bool:
        return name in RENAMED_PRESETS or tuple.__contains__(self, name)


def add_fit_arguments(parser, types: dict) -> None:
    """Add one flag per setting to an ``argparse`` parser.

    Every flag defaults to None ("not given"), so that a preset's value survives an unset flag
    and ``--resume`` can tell which flags were given. ``types`` maps a setting kind
    (``"int"``, ``"nonneg_int"``, ``"float"``) to the argparse type that parses it.
    """
    parser.add_argument("--preset", choices=_PresetChoices(sorted(FIT_PRESETS)), default=None,
                        help=PRESET_HELP + " (default: default)")
    for s in SETTINGS:
        where = "" if s.families == ALL else f" [{'/'.join(s.families)} models]"
        if s.kind == "flag":
            parser.add_argument(_flag(s), dest=s.name, action="store_const", const=True,
                                default=None, help=s.help + where)
        elif s.kind == "optional_flag":
            parser.add_argument(_flag(s), dest=s.name, action=argparse.BooleanOptionalAction,
                                default=None, help=s.help + where)
        elif s.kind == "no_flag":
            parser.add_argument(_flag(s), dest=s.name, action="store_const", const=False,
                                default=None, help=s.help + where)
        else:
            default = "" if s.default is None else f" (default: {s.default})"
            metavar = None if s.choices else _flag(s).lstrip("-").replace("-", "_").upper()
            parser.add_argument(_flag(s), dest=s.name, type=types.get(s.kind),
                                choices=_choices(s.choices), default=None, metavar=metavar,
                                help=s.help + default + where)


def settings_from_args(args) -> FitSettings:
    """The :class:`FitSettings` of parsed ``fit`` flags: the preset, then every given flag."""
    given = {s.name: getattr(args, s.name) for s in SETTINGS
             if getattr(args, s.name, None) is not None}
    return fit_settings(args.preset or "default", **given)


def changed_settings(args) -> list[str]:
    """The setting flags given on the command line (``--resume`` refuses them)."""
    out = ["--preset"] if getattr(args, "preset", None) is not None else []
    return out + [_flag(s) for s in SETTINGS if getattr(args, s.name, None) is not None]
