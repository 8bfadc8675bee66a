"""Comparison grids: data settings x models x engines x seeds, from TOML or keyword arguments.

A grid expands into :class:`Cell` objects, one per (data setting, model, engine). A cell holds
*all* seeds: they share every array shape, so they run as one vectorised fit (``vmap`` over
PRNG keys in :func:`ppl_ident.inference.fit`). Cells are the unit of scheduling (a Dask task)
and of storage (one result file each).

Every cell's fit settings are those ``ppl-ident fit`` would run with: a cell's
:class:`~ppl_ident.settings.FitSettings` (the engine entry's options, the model, the data
setting's latent dimension) pass through
:func:`~ppl_ident.workflow.build.resolved_settings`, the check and the defaults of
:func:`~ppl_ident.workflow.checked_settings`, when the grid is made; a bad value is refused
then, naming every bad option, not cell by cell when the grid runs.

The data settings are those of one model family's simulators (``generator``: ``domains``, the
default, for i.i.d. data; ``segments``, ``dynamics`` or ``regimes`` for sequences): the
family (:data:`ppl_ident.families.GENERATORS`) says which settings apply, their defaults and
which models take its data; a model paired with another family's data is refused.

A grid file (TOML)::

    [grid]
    seeds = [0, 1, 2]          # fit seeds, vectorised inside each cell
    models = ["ivae"]          # default: the data family's default model
    engines = ["svi", "iwae"]  # names in ENGINE_PRESETS, or tables under [engines.NAME]
    steps = 4000
    eval_every = 500           # periodic MCC evaluations (recorded, never used to select)
    metrics = ["mcc", "elbo", "timing", "time_to_mcc", "psis_khat"]   # default: all METRICS

    [data]                     # every value may be a list: the settings are the product
    generator = "domains"      # the default; its settings: see data_axes("domains")
    latent_dim = 5
    domains = [5, 11, 40]
    points_per_domain = 1000

    [engines.iwae16]           # a custom engine: a preset plus overrides
    preset = "iwae"
    num_particles = 16

    [engines.nuts_fullcov]     # NUTS on z (a sampler) under the parameters of a base fit
    preset = "nuts"
    base = "svi_fullcov"       # the base fit: a preset; the entry's other fit options apply
    sample_obs = 100           # to it (steps, learning_rate, ...)
    num_samples = 500

A sequence grid names a sequence generator and its settings (``ppl-ident simulate``'s flags)::

    [grid]
    models = ["tivae", "stationary"]
    engines = ["default", "svi"]

    [data]
    generator = "dynamics"
    latent_dim = 2
    sequences = 200
    length = 20
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import NamedTuple

from ppl_ident.errors import InputError
from ppl_ident.settings import GRID_KEYS, SETTINGS_BY_NAME

__all__ = ["FILE_KEYS", "ENGINE_PRESETS", "FIT_KEYS", "HELDOUT_FRACTION", "SAMPLER_KEYS",
           "SAMPLE_OBS", "Cell", "Grid", "base_entry", "data_axes", "load_grid", "make_grid"]

#: Options of a sampler entry (``nuts``): its base fit (a preset name), how many observations
#: of the training data it samples, and the sampler's own options (see
#: :func:`ppl_ident.inference.nuts.nuts_engine`). Its other options go to the base fit.
SAMPLER_KEYS = ("base", "sample_obs", "num_warmup", "num_samples", "num_chains",
                "target_accept_prob", "max_tree_depth", "dense_mass")
#: Training observations whose latents a sampler entry samples, unless it sets ``sample_obs``.
SAMPLE_OBS = 200
#: Held-out points per training point of a data setting (never used for fitting), for the
#: held-out likelihood; a family that scores none holds none out.
HELDOUT_FRACTION = 0.2

#: Options an engine entry may set: the fit settings of :data:`ppl_ident.settings.SETTINGS`
#: that a grid may set (a cell refuses those that do not apply to its model, as ``fit``
#: does), and a sampler's own; the rest of the fit uses ``ppl-ident fit``'s defaults.
FIT_KEYS = GRID_KEYS + SAMPLER_KEYS

#: Named engine configurations the harness compares (one inference algorithm each).
ENGINE_PRESETS: dict[str, dict] = {
    "svi": dict(engine="svi", elbo="Trace_ELBO", guide="encoder"),
    "svi_meanfield": dict(engine="svi", elbo="TraceMeanField_ELBO", guide="encoder"),
    "iwae": dict(engine="iwae", elbo="RenyiELBO", guide="encoder", num_particles=8),
    "svi_fullcov": dict(engine="svi", elbo="Trace_ELBO", guide="encoder_fullcov"),
    # the `accurate` fit preset's objective and guide (importance-weighted bound, 32 particles,
    # full-covariance encoder) at the grid's step count
    "iwae_fullcov": dict(engine="iwae", elbo="RenyiELBO", guide="encoder_fullcov",
                         num_particles=32),
    "autonormal": dict(engine="svi", elbo="Trace_ELBO", guide="autonormal"),
    "semidais": dict(engine="svi", elbo="Trace_ELBO", guide="semidais"),
    # NUTS on z of 200 training observations, with the parameters of an svi fit (same seed
    # and settings) fixed: the reference posterior of the model that fit found.
    "nuts": dict(engine="nuts", base="svi", sample_obs=SAMPLE_OBS, num_warmup=300,
                 num_samples=300, num_chains=4),
    # the exact-likelihood flow, fitted by maximum likelihood with the flow's own defaults
    # (prior, learning rate, depth). Its z is a point estimate (no calibration or PSIS: they
    # say "not applicable"); its ELBO is the exact log-likelihood of its parameters
    "flow": dict(flow=True),
    # what `ppl-ident fit` runs with no flags: the exact flow where the family chooses it for
    # the setting's n and d (n = d), else the variational model, each with its defaults
    "default": dict(),
}


def _engine_kind(entry: dict) -> str:
    """The engine of an entry (``ppl-ident fit``'s default where it names none)."""
    return entry.get("engine", SETTINGS_BY_NAME["engine"].default)


def data_axes(generator: str) -> dict:
    """The settings a grid's ``[data]`` may give for ``generator`` and their defaults (asked of
    the family whose data it simulates)."""
    from ppl_ident.families import family_of_generator

    return family_of_generator(generator).data_axes(generator)


class Cell(NamedTuple):
    """One vectorised fit: a data setting, a model, an engine, and all seeds.

    Attributes
    ----------
    data : dict
        Data-setting values: ``generator`` and the keys of :func:`data_axes` (``data_dim``
        resolved), or a data file's :data:`FILE_KEYS`.
    model : str
    engine : str
        The engine's label in the grid.
    fit : dict
        Engine options (keys of :data:`FIT_KEYS`).
    seeds : tuple of int
        The fit's seeds (:func:`ppl_ident.inference.fit_keys`: seed ``k`` of a cell is seed
        ``k`` of ``ppl-ident fit --seeds K``; seed 0 is ``ppl-ident fit``'s own fit).
    eval_every : int
    metrics : tuple of str
        Names in :data:`ppl_ident.harness.metrics.METRICS` computed for every seed.
    """

    data: dict
    model: str
    engine: str
    fit: dict
    seeds: tuple
    eval_every: int
    metrics: tuple = ()

    @property
    def setting(self) -> str:
        """A readable label of the data setting, e.g. ``n5-d5-U40x1000-L3-gaussian-s0-ds0``
        (the family's, :meth:`~ppl_ident.families.ModelFamily.setting_label`; a user's data
        file: ``file-NAME-n5``)."""
        from ppl_ident.families import family_of_generator

        d = self.data
        if "file" in d:
            stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(d["file"]).stem)
            return f"file-{stem}-n{d['latent_dim']}"
        return family_of_generator(d["generator"]).setting_label(d)

    @property
    def cell_id(self) -> str:
        """File-name-safe id: readable prefix plus a hash of everything that defines the cell,
        so a changed setting never reuses a stale result file."""
        blob = json.dumps([self.data, self.model, self.engine, self.fit, list(self.seeds),
                           self.eval_every, list(self.metrics)], sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        return f"{self.setting}__{self.model}__{self.engine}__{digest}"

    @property
    def is_sampler(self) -> bool:
        """Whether the cell samples z under a base fit (``nuts``) rather than fitting."""
        from ppl_ident.inference import SAMPLER_ENGINES

        return _engine_kind(self.fit) in SAMPLER_ENGINES

    def fit_settings(self):
        """The :class:`~ppl_ident.settings.FitSettings` the cell's fit starts from, before
        :func:`~ppl_ident.workflow.checked_settings` decides its defaults: the engine entry's
        fit options (a sampler's: its base fit's, :func:`base_entry`), the model, the data
        setting's latent dimension and the number of seeds."""
        from ppl_ident.settings import FitSettings

        entry = base_entry(self.fit) if self.is_sampler else self.fit
        fields = {k: v for k, v in entry.items() if k in FitSettings._fields}
        return FitSettings(model=self.model, latent_dim=self.data["latent_dim"],
                           seeds=len(self.seeds), **fields)

    def resolved_settings(self):
        """The resolved settings of the cell's fit (:func:`resolved_settings` with the data
        setting's dimensions: the flow decided, the model's defaults filled in), without its
        data; the fit itself checks them against the data
        (:func:`~ppl_ident.workflow.checked_settings`)."""
        from ppl_ident.families import family_of
        from ppl_ident.workflow import resolved_settings

        family = family_of(self.model)
        return resolved_settings(self.fit_settings(), family, self.data["data_dim"],
                                 guides=family.compare_guides)


class Grid(NamedTuple):
    """A comparison grid: the product of data settings, models and engines; seeds inside.

    ``data`` holds the values the grid was given (``generator`` always; list values are
    axes); :meth:`settings` fills in the defaults.
    """

    data: dict
    models: tuple
    engines: dict
    seeds: tuple
    eval_every: int
    metrics: tuple = ()

    def settings(self) -> list[dict]:
        """Every data setting (product of the list-valued axes), defaults filled in and
        ``data_dim`` resolved."""
        if "file" in self.data:  # a user's data file: one setting
            return [dict(self.data)]
        out = []
        for generator in _as_list(self.data["generator"]):
            axes = data_axes(generator)
            values = [_as_list(self.data.get(k, default)) for k, default in axes.items()]
            for combo in itertools.product(*values):
                d = {"generator": generator, **dict(zip(axes, combo))}
                d["data_dim"] = d["latent_dim"] if d["data_dim"] is None else d["data_dim"]
                out.append(d)
        return out

    def cells(self) -> list[Cell]:
        """Every cell, settings outermost (so one setting's data is reused by its cells)."""
        return [Cell(d, m, name, self.engines[name], self.seeds, self.eval_every, self.metrics)
                for d in self.settings() for m in self.models for name in self.engines]

    def to_dict(self) -> dict:
        return dict(data=self.data, models=list(self.models), engines=self.engines,
                    seeds=list(self.seeds), eval_every=self.eval_every,
                    metrics=list(self.metrics))


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _engine_entry(name: str, table: dict | None, steps: int | None) -> dict:
    table = dict(table or {})
    preset = table.pop("preset", name if name in ENGINE_PRESETS else None)
    if preset is None and "engine" not in table:
        raise InputError(
            f"Unknown engine {name!r}; valid engines: {', '.join(ENGINE_PRESETS)}, or define "
            f"[engines.{name}] in the grid file with `preset = ...` or `engine = ...`.")
    if preset is not None and preset not in ENGINE_PRESETS:
        raise InputError(f"Unknown preset {preset!r} for engine {name!r}; valid presets: "
                         f"{', '.join(ENGINE_PRESETS)}.")
    unknown = set(table) - set(FIT_KEYS)
    if unknown:
        raise InputError(f"Engine {name!r} has unknown option(s) {sorted(unknown)}; valid "
                         f"options: {', '.join(FIT_KEYS)}.")
    entry = {**(ENGINE_PRESETS[preset] if preset else {}), **table}
    if steps is not None:
        entry.setdefault("steps", steps)
    return entry


def _check_registries(engines: dict) -> None:
    from ppl_ident.families import PRIORS
    from ppl_ident.families.guides import GUIDES
    from ppl_ident.inference import ELBOS, ENGINES

    for name, e in engines.items():
        if _engine_kind(e) not in ENGINES:
            raise InputError(f"Engine {name!r}: unknown engine {e['engine']!r}; valid engines: "
                             f"{', '.join(sorted(ENGINES))}.")
        if "elbo" in e and e["elbo"] not in ELBOS:
            raise InputError(f"Engine {name!r}: unknown ELBO {e['elbo']!r}; valid ELBOs: "
                             f"{', '.join(sorted(ELBOS))}.")
        if "guide" in e and e["guide"] not in GUIDES:
            raise InputError(f"Engine {name!r}: unknown guide {e['guide']!r}; valid guides: "
                             f"{', '.join(sorted(GUIDES))}.")
        if "prior" in e and e["prior"] not in PRIORS:
            raise InputError(f"Engine {name!r}: unknown prior {e['prior']!r}; valid priors: "
                             f"{', '.join(PRIORS)}.")
        _check_sampler_entry(name, e)


def base_entry(entry: dict) -> dict:
    """The fit options of a sampler entry's base fit: the ``base`` preset, overridden by the
    entry's options that are not the sampler's own."""
    own = {k: v for k, v in entry.items() if k not in SAMPLER_KEYS and k != "engine"}
    return {**ENGINE_PRESETS[entry.get("base", "svi")], **own}


def _sampler_bases() -> list[str]:
    """The presets that fit the variational model (a posterior over z for a sampler to
    sample; the exact flow's z = h(x) is a point)."""
    from ppl_ident.inference import SAMPLER_ENGINES
    from ppl_ident.settings import FitSettings, variational_settings

    return [p for p, v in ENGINE_PRESETS.items() if _engine_kind(v) not in SAMPLER_ENGINES
            and not v.get("flow") and variational_settings(FitSettings(
                **{k: x for k, x in v.items() if k in FitSettings._fields}))]


def _check_sampler_entry(name: str, e: dict) -> None:
    from ppl_ident.families.guides import guide_family
    from ppl_ident.inference import SAMPLER_ENGINES

    given = sorted(set(e) & set(SAMPLER_KEYS))
    if _engine_kind(e) not in SAMPLER_ENGINES:
        if given:
            raise InputError(f"Engine {name!r}: option(s) {given} apply only to the sampler "
                             f"engines ({', '.join(sorted(SAMPLER_ENGINES))}).")
        return
    base = e.get("base", "svi")
    fitters = _sampler_bases()
    if base not in fitters or base_entry(e).get("flow"):
        raise InputError(f"Engine {name!r}: base {base!r} is not a preset that fits a model with "
                         f"a posterior over z to sample; valid bases: {', '.join(fitters)}.")
    guide = base_entry(e).get("guide", SETTINGS_BY_NAME["guide"].default)
    if not guide_family(guide).full_data:
        raise InputError(f"Engine {name!r}: its base fit uses the {guide!r} guide, which has "
                         "no amortised encoder to start the chains; use a base with guide "
                         "'encoder' or 'encoder_fullcov'.")
    sample_obs = e.get("sample_obs", SAMPLE_OBS)
    if isinstance(sample_obs, bool) or not isinstance(sample_obs, int) or sample_obs < 2:
        raise InputError(f"Engine {name!r}: sample_obs must be an integer >= 2, got "
                         f"{sample_obs!r}.")
    if not isinstance(e.get("dense_mass", True), bool):
        raise InputError(f"Engine {name!r}: dense_mass must be true or false, got "
                         f"{e['dense_mass']!r}.")
    from ppl_ident.inference.nuts import check_nuts_options

    try:
        check_nuts_options(**{k: e[k] for k in SAMPLER_KEYS if k in e})
    except InputError as err:
        raise InputError(f"Engine {name!r}: {err}") from None


def _check_cells(grid: "Grid", data_family) -> None:
    """Refuse, when the grid is made, every cell that could not run: a model of another family
    than the data's, a data setting its family or model refuses, a sampler on latents that are
    not independent per observation, and fit settings that ``ppl-ident fit`` would refuse
    (checked as it checks them, every bad value named)."""
    from ppl_ident.families import family_of

    for m in grid.models:
        family = family_of(m)
        if family is not data_family:
            source = "a data file" if "file" in grid.data else (
                f"the {', '.join(_as_list(grid.data['generator']))} generator")
            raise InputError(
                f"Model {m!r} ({family.label} family) takes the data of the generator(s) "
                f"{', '.join(family.generators)}; this grid's data come from {source} "
                f"({data_family.label} data): compare the models "
                f"{', '.join(data_family.models)} on them, or set [data] generator to one of "
                f"{', '.join(family.generators)} for {m!r}.")
    seen = set()
    for cell in grid.cells():
        family = family_of(cell.model)
        if "file" not in cell.data:
            family.check_setting(cell.data, cell.model)
        if cell.is_sampler and not family.row_latents:
            raise InputError(
                f"Engine {cell.engine!r}: the {_engine_kind(cell.fit)} sampler runs one chain "
                f"per observation, whose latents are independent given the fitted parameters; "
                f"model {cell.model!r}'s latents depend on each other along the sequence, so "
                f"it has no sampler cell: drop {cell.engine!r} from the engines of a grid of "
                f"{family.label} models.")
        key = (cell.model, cell.engine, cell.data["latent_dim"], cell.data["data_dim"])
        if key in seen:
            continue
        seen.add(key)
        try:
            cell.resolved_settings()
        except InputError as err:
            raise InputError(f"Engine {cell.engine!r}: {err}") from None


#: Keys of a data setting that is a user's data file (``compare --data FILE``): the file, its
#: SHA-256 (a changed file never reuses a stale result), a table's column mapping, the latent
#: dimension, the data dimension.
FILE_KEYS = ("file", "sha256", "columns", "latent_dim", "data_dim")


def _file_setting(data: dict):
    """Validate a data-file setting: read the file once (the same checks and messages as
    ``fit``), check that its family can hold rows out, record its hash and resolve the latent
    dimension (default: z's, else x's). Returns the setting and the data's family."""
    from ppl_ident.data import read_data
    from ppl_ident.data.tables import Columns
    from ppl_ident.families import family_for_data
    from ppl_ident.inference.checkpoint import file_sha256

    unknown = set(data) - set(FILE_KEYS)
    if unknown:
        raise InputError(f"A data-file setting takes only {', '.join(FILE_KEYS)}; "
                         f"{sorted(unknown)} set the simulator: drop them with --data.")
    path = Path(data["file"]).resolve()
    dataset, _, columns = read_data(path, Columns.from_dict(data.get("columns")))
    family = family_for_data(dataset)
    family.heldout_rows(dataset, HELDOUT_FRACTION)
    d = int(dataset.x.shape[-1])
    n = data.get("latent_dim") or (dataset.z.shape[-1] if dataset.z is not None else d)
    if int(n) > d:
        raise InputError(f"latent_dim={n} is larger than the data dimension d={d}; choose "
                         f"--latent-dim <= {d}.")
    return {"file": str(path), "sha256": file_sha256(path),
            "columns": None if columns is None else columns.to_dict(), "latent_dim": int(n),
            "data_dim": d}, family


def _simulated_setting(data: dict):
    """Check a simulated data setting's keys against its generator's settings; returns the
    setting (with ``generator``) and the family of its data."""
    from ppl_ident.families import DEFAULT_GENERATOR, family_of_generator

    data = {"generator": DEFAULT_GENERATOR, **data}
    generators = _as_list(data["generator"])
    families = {family_of_generator(g) for g in generators}
    if len(families) > 1:
        raise InputError(f"The generators {', '.join(generators)} simulate the data of "
                         "different model families, which no model takes both of; make one "
                         "grid per family.")
    for g in generators:
        valid = data_axes(g)
        unknown = set(data) - set(valid) - {"generator"}
        if unknown:
            raise InputError(f"Unknown data setting(s) {sorted(unknown)} for the {g} "
                             f"generator; valid: generator, {', '.join(valid)}.")
    return data, families.pop()


def make_grid(*, data: dict | None = None, models=None, engines=("svi",), seeds=(0, 1, 2),
              steps: int | None = None, eval_every: int = 500, metrics=None) -> Grid:
    """Build and validate a grid.

    Parameters
    ----------
    data : dict, optional
        Data-setting values: ``generator`` (default ``"domains"``, i.i.d. data) and the
        settings of :func:`data_axes` for it; a list value is an axis. Or a data file
        (:data:`FILE_KEYS`).
    models : sequence of str, optional
        Models of the data's family (default: the family's default model for the first
        setting).
    engines : sequence of str, or dict name -> options
        Names in :data:`ENGINE_PRESETS`, or a mapping from a label to options (``preset`` plus
        any of :data:`FIT_KEYS`).
    seeds : sequence of int, or int
        Fit seeds (an int ``k`` means ``0..k-1``).
    steps : int, optional
        Optimisation steps for engines that do not set their own (default: ``ppl-ident
        fit``'s for the cell's model).
    eval_every : int
        Steps between periodic MCC evaluations (for time-to-MCC-0.9 only).
    metrics : sequence of str, optional
        Names in :data:`ppl_ident.harness.metrics.METRICS` (default: all).

    Raises
    ------
    InputError
        For a grid with a cell that could not run: unknown names, a model of another family
        than the data's, and every fit option ``ppl-ident fit`` would refuse.

    Examples
    --------
    >>> g = make_grid(data=dict(latent_dim=2, domains=[3, 5]), engines=["svi", "iwae"])
    >>> len(g.cells())
    4
    """
    data = dict(data or {})
    if "file" in data:
        data, data_family = _file_setting(data)
    else:
        data, data_family = _simulated_setting(data)
    if isinstance(seeds, int):
        seeds = range(seeds)
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise InputError(f"seeds must be distinct non-negative integers, got {list(seeds)}.")
    if int(eval_every) != eval_every or eval_every < 1:
        raise InputError(f"eval_every must be a positive integer, got {eval_every!r}.")
    if isinstance(engines, (list, tuple)):
        engines = {name: None for name in engines}
    if not engines or (models is not None and not models):
        raise InputError("A grid needs at least one engine and one model.")
    engines = {name: _engine_entry(name, table, steps) for name, table in engines.items()}
    _check_registries(engines)
    from ppl_ident.harness.metrics import METRICS

    metrics = tuple(METRICS) if metrics is None else tuple(metrics)
    if set(metrics) - set(METRICS) or not metrics:
        raise InputError(f"Unknown metric(s) {sorted(set(metrics) - set(METRICS))}; valid "
                         f"metrics: {', '.join(METRICS)}.")
    grid = Grid(data, (), engines, seeds, int(eval_every), metrics)
    if models is None:
        models = (data_family.default_model(grid.settings()[0]),)
    grid = grid._replace(models=tuple(models))
    _check_cells(grid, data_family)
    return grid


def load_grid(path) -> Grid:
    """Read a grid from a TOML file (see the module docstring for the format)."""
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise InputError(f"Grid file {path} does not exist; pass a TOML file (see "
                         "benchmarks/grids/default.toml for an example).")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{path} is not valid TOML: {err}.") from None
    unknown = set(doc) - {"grid", "data", "engines"}
    if unknown:
        raise InputError(f"{path}: unknown table(s) {sorted(unknown)}; use [grid], [data] and "
                         "[engines.NAME].")
    g = dict(doc.get("grid", {}))
    tables = doc.get("engines", {})
    names = g.pop("engines", None) or list(tables)
    engines = {name: tables.get(name) for name in names}
    allowed = {"seeds", "models", "steps", "eval_every", "metrics"}
    if set(g) - allowed:
        raise InputError(f"{path}: unknown [grid] key(s) {sorted(set(g) - allowed)}; valid: "
                         f"engines, {', '.join(sorted(allowed))}.")
    models = g.get("models")
    return make_grid(data=doc.get("data", {}), engines=engines,
                     models=None if models is None else tuple(models),
                     seeds=g.get("seeds", (0, 1, 2)), steps=g.get("steps"),
                     eval_every=g.get("eval_every", 500), metrics=g.get("metrics"))
