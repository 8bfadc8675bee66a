"""Comparison grids: data settings x models x engines x seeds, from TOML or keyword arguments.

A grid expands into :class:`Cell` objects, one per (data setting, model, engine). A cell holds
*all* seeds: they share every array shape, so they run as one vectorised fit (``vmap`` over
PRNG keys in :func:`ppl_ident.inference.fit_batched`). Cells are the unit of scheduling (a Dask
task) and of storage (one result file each).

A grid file (TOML)::

    [grid]
    seeds = [0, 1, 2]          # fit seeds, vectorised inside each cell
    models = ["ivae"]
    engines = ["svi", "iwae"]  # names in ENGINE_PRESETS, or tables under [engines.NAME]
    steps = 4000
    eval_every = 500           # periodic MCC evaluations (recorded, never used to select)
    metrics = ["mcc", "elbo", "timing", "time_to_mcc", "psis_khat"]   # default: all METRICS

    [data]                     # every value may be a list: the settings are the product
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
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ppl_ident.errors import InputError
from ppl_ident.settings import SETTINGS

__all__ = ["DATA_DEFAULTS", "FILE_KEYS", "ENGINE_PRESETS", "FIT_KEYS", "SAMPLER_KEYS", "SAMPLE_OBS",
           "Cell", "Grid", "base_entry", "load_grid", "make_grid"]

#: Data-setting axes and their defaults (the package's default simulator setting).
DATA_DEFAULTS = dict(latent_dim=5, data_dim=None, domains=40, points_per_domain=1000,
                     mixing_layers=3, source="gaussian", noise_std=0.0, data_seed=0)

#: Options of a sampler entry (``nuts``): its base fit (a preset name), how many observations
#: of the training data it samples, and the sampler's own options (see
#: :func:`ppl_ident.inference.nuts.nuts_engine`). Its other options go to the base fit.
SAMPLER_KEYS = ("base", "sample_obs", "num_warmup", "num_samples", "num_chains",
                "target_accept_prob", "max_tree_depth", "dense_mass")
#: Training observations whose latents a sampler entry samples, unless it sets ``sample_obs``.
SAMPLE_OBS = 200

#: The model family the harness compares on: it simulates i.i.d. domain data.
FAMILY = "iid"

#: Options an engine entry may set (the fit settings of :data:`ppl_ident.settings.SETTINGS`
#: that a grid may set and that apply to the i.i.d. models); the rest of the fit uses
#: FitSettings' defaults.
FIT_KEYS = tuple(s.name for s in SETTINGS if s.grid and FAMILY in s.families) + SAMPLER_KEYS

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
    # the package's default model (`ppl-ident fit` with n = d): the exact-likelihood flow,
    # fitted by maximum likelihood with the flow's own defaults (prior, learning rate, depth).
    # Its z is a point estimate (no calibration or PSIS: they say "not applicable"); its ELBO
    # is the exact log-likelihood of its parameters
    "flow": dict(engine="svi", elbo="Trace_ELBO", flow=True),
}


class Cell(NamedTuple):
    """One vectorised fit: a data setting, a model, an engine, and all seeds.

    Attributes
    ----------
    data : dict
        Data-setting values (keys of :data:`DATA_DEFAULTS`, ``data_dim`` resolved).
    model : str
    engine : str
        The engine's label in the grid.
    fit : dict
        Engine options (keys of :data:`FIT_KEYS`).
    seeds : tuple of int
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
        (a user's data file: ``file-NAME-n5``)."""
        d = self.data
        if "file" in d:
            stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(d["file"]).stem)
            return f"file-{stem}-n{d['latent_dim']}"
        return (f"n{d['latent_dim']}-d{d['data_dim']}-U{d['domains']}x{d['points_per_domain']}"
                f"-L{d['mixing_layers']}-{d['source']}-s{d['noise_std']:g}-ds{d['data_seed']}")

    @property
    def cell_id(self) -> str:
        """File-name-safe id: readable prefix plus a hash of everything that defines the cell,
        so a changed setting never reuses a stale result file."""
        blob = json.dumps([self.data, self.model, self.engine, self.fit, list(self.seeds),
                           self.eval_every, list(self.metrics)], sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        return f"{self.setting}__{self.model}__{self.engine}__{digest}"


class Grid(NamedTuple):
    """A comparison grid: the product of data settings, models and engines; seeds inside."""

    data: dict
    models: tuple
    engines: dict
    seeds: tuple
    eval_every: int
    metrics: tuple = ()

    def settings(self) -> list[dict]:
        """Every data setting (product of the list-valued axes), ``data_dim`` resolved."""
        if "file" in self.data:  # a user's data file: one setting
            return [dict(self.data)]
        keys = list(DATA_DEFAULTS)
        axes = [v if isinstance(v, list) else [v] for v in (self.data[k] for k in keys)]
        out = []
        for values in itertools.product(*axes):
            d = dict(zip(keys, values))
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
    other = sorted(s.name for s in SETTINGS if s.name in table and FAMILY not in s.families)
    if other:
        raise InputError(f"Engine {name!r} sets {', '.join(other)}, which apply to sequence "
                         "models only; the comparison harness fits i.i.d. models on simulated "
                         "domain data (compare sequence models with "
                         "benchmarks/sequence_accuracy.py).")
    unknown = set(table) - set(FIT_KEYS)
    if unknown:
        raise InputError(f"Engine {name!r} has unknown option(s) {sorted(unknown)}; valid "
                         f"options: {', '.join(FIT_KEYS)}.")
    entry = {**(ENGINE_PRESETS[preset] if preset else {}), **table}
    if steps is not None:
        entry.setdefault("steps", steps)
    return entry


def _check_registries(engines: dict, models) -> None:
    from ppl_ident.families.guides import GUIDES
    from ppl_ident.inference import ELBOS, ENGINES
    from ppl_ident.families import FAMILIES, PRIORS, family_of

    for m in models:
        if family_of(m).name != FAMILY:
            raise InputError(f"Model {m!r} takes sequences; the comparison harness fits the "
                             f"i.i.d. models ({', '.join(FAMILIES[FAMILY].models)}) on "
                             "simulated domain data.")
    for name, e in engines.items():
        if e["engine"] not in ENGINES:
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
        _check_fit_values(name, e)
        _check_sampler_entry(name, e)


def _check_fit_values(name: str, e: dict) -> None:
    """The entry's fit options pass the checks `fit` applies to them (positive step counts,
    learning rates, widths, ...), so that a grid is refused when it is made, not cell by cell
    when it runs."""
    from ppl_ident.settings import FitSettings, check_values

    fields = {k: v for k, v in e.items() if k in FitSettings._fields and k != "engine"}
    try:
        check_values(FitSettings(**fields))
    except InputError as err:
        raise InputError(f"Engine {name!r}: {err}") from None


def base_entry(entry: dict) -> dict:
    """The fit options of a sampler entry's base fit: the ``base`` preset, overridden by the
    entry's options that are not the sampler's own."""
    own = {k: v for k, v in entry.items() if k not in SAMPLER_KEYS and k != "engine"}
    return {**ENGINE_PRESETS[entry.get("base", "svi")], **own}


def _check_sampler_entry(name: str, e: dict) -> None:
    from ppl_ident.families.guides import guide_family
    from ppl_ident.inference import SAMPLER_ENGINES

    given = sorted(set(e) & set(SAMPLER_KEYS))
    if e["engine"] not in SAMPLER_ENGINES:
        if given:
            raise InputError(f"Engine {name!r}: option(s) {given} apply only to the sampler "
                             f"engines ({', '.join(sorted(SAMPLER_ENGINES))}).")
        return
    base = e.get("base", "svi")
    # a base fit has a posterior over z to sample (the exact flow's z = h(x) is a point)
    fitters = [p for p, v in ENGINE_PRESETS.items()
               if v["engine"] not in SAMPLER_ENGINES and not v.get("flow")]
    if base not in fitters or base_entry(e).get("flow"):
        raise InputError(f"Engine {name!r}: base {base!r} is not a preset that fits a model with "
                         f"a posterior over z to sample; valid bases: {', '.join(fitters)}.")
    guide = base_entry(e).get("guide", "encoder")
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


#: Keys of a data setting that is a user's data file (``compare --data FILE``): the file, its
#: SHA-256 (a changed file never reuses a stale result), a table's column mapping, the latent
#: dimension, the data dimension.
FILE_KEYS = ("file", "sha256", "columns", "latent_dim", "data_dim")


def _file_setting(data: dict) -> dict:
    """Validate a data-file setting: read the file once (the same checks and messages as
    ``fit``), record its hash and resolve the latent dimension (default: z's, else x's)."""
    from ppl_ident.data import read_data
    from ppl_ident.data.tables import Columns
    from ppl_ident.inference.checkpoint import file_sha256

    unknown = set(data) - set(FILE_KEYS)
    if unknown:
        raise InputError(f"A data-file setting takes only {', '.join(FILE_KEYS)}; "
                         f"{sorted(unknown)} set the simulator: drop them with --data.")
    path = Path(data["file"]).resolve()
    dataset, _, columns = read_data(path, Columns.from_dict(data.get("columns")))
    if np.ndim(dataset.x) != 2:
        raise InputError(f"compare fits i.i.d. models; {path} holds sequences (x of shape "
                         f"{np.shape(dataset.x)}): fit them with `ppl-ident fit`.")
    if dataset.u is None or np.ndim(dataset.u) != 1:
        raise InputError(f"compare needs domain labels u (N,) in {path}; a continuous or "
                         "missing u is not supported by the grid's models.")
    d = int(dataset.x.shape[1])
    n = data.get("latent_dim") or (dataset.z.shape[1] if dataset.z is not None else d)
    if int(n) > d:
        raise InputError(f"latent_dim={n} is larger than the data dimension d={d}; choose "
                         f"--latent-dim <= {d}.")
    return {"file": str(path), "sha256": file_sha256(path),
            "columns": None if columns is None else columns.to_dict(), "latent_dim": int(n),
            "data_dim": d}


def make_grid(*, data: dict | None = None, models=("ivae",), engines=("svi",), seeds=(0, 1, 2),
              steps: int | None = None, eval_every: int = 500, metrics=None) -> Grid:
    """Build and validate a grid.

    Parameters
    ----------
    data : dict, optional
        Data-setting values (keys of :data:`DATA_DEFAULTS`); a list value is an axis.
    models : sequence of str
    engines : sequence of str, or dict name -> options
        Names in :data:`ENGINE_PRESETS`, or a mapping from a label to options (``preset`` plus
        any of :data:`FIT_KEYS`).
    seeds : sequence of int, or int
        Fit seeds (an int ``k`` means ``0..k-1``).
    steps : int, optional
        Optimisation steps for engines that do not set their own.
    eval_every : int
        Steps between periodic MCC evaluations (for time-to-MCC-0.9 only).
    metrics : sequence of str, optional
        Names in :data:`ppl_ident.harness.metrics.METRICS` (default: all).

    Examples
    --------
    >>> g = make_grid(data=dict(latent_dim=2, domains=[3, 5]), engines=["svi", "iwae"])
    >>> len(g.cells())
    4
    """
    data = dict(data or {})
    if "file" in data:
        data = _file_setting(data)
    unknown = set(data) - set(DATA_DEFAULTS) - set(FILE_KEYS if "file" in data else ())
    if unknown:
        raise InputError(f"Unknown data setting(s) {sorted(unknown)}; valid: "
                         f"{', '.join(DATA_DEFAULTS)}.")
    if "file" not in data:
        data = {**DATA_DEFAULTS, **data}
    if isinstance(seeds, int):
        seeds = range(seeds)
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise InputError(f"seeds must be distinct non-negative integers, got {list(seeds)}.")
    if int(eval_every) != eval_every or eval_every < 1:
        raise InputError(f"eval_every must be a positive integer, got {eval_every!r}.")
    if isinstance(engines, (list, tuple)):
        engines = {name: None for name in engines}
    if not engines or not models:
        raise InputError("A grid needs at least one engine and one model.")
    engines = {name: _engine_entry(name, table, steps) for name, table in engines.items()}
    _check_registries(engines, models)
    from ppl_ident.harness.metrics import METRICS

    metrics = tuple(METRICS) if metrics is None else tuple(metrics)
    if set(metrics) - set(METRICS) or not metrics:
        raise InputError(f"Unknown metric(s) {sorted(set(metrics) - set(METRICS))}; valid "
                         f"metrics: {', '.join(METRICS)}.")
    grid = Grid(data, tuple(models), engines, seeds, int(eval_every), metrics)
    for d in grid.settings():
        if d["data_dim"] < d["latent_dim"]:
            raise InputError(f"data_dim={d['data_dim']} < latent_dim={d['latent_dim']}; the "
                             "mixing must be injective.")
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
    return make_grid(data=doc.get("data", {}), engines=engines,
                     models=tuple(g.get("models", ["ivae"])), seeds=g.get("seeds", (0, 1, 2)),
                     steps=g.get("steps"), eval_every=g.get("eval_every", 500),
                     metrics=g.get("metrics"))
