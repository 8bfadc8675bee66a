"""Run directories: what ``ppl-ident fit`` writes and every later command reads.

A run directory holds ``config.json`` (the settings, the model's configuration, the labels,
the data file and a table's column mapping; its ``"format"`` is :data:`RUN_FORMAT`),
``params.npz``, ``state.npz``, ``losses.npz``, ``metrics.json``, :data:`POSTERIOR_FILE` and,
for a fit with several seeds, :data:`SEED_PARAMS_FILE`. :func:`save_run` writes it,
:func:`load_run` reads it back into a :class:`~ppl_ident.workflow.fitted.Fitted`, and
:func:`run_settings` reads the settings of every earlier format (format 1 completed by the
model's family).
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import jax
import numpy as np

from ppl_ident._version import __version__
from ppl_ident.arviz_compat import group, groups, replace_group, write_netcdf
from ppl_ident.data.io import read_data
from ppl_ident.data.simulate import Dataset
from ppl_ident.data.tables import Columns, table_format
from ppl_ident.errors import InputError
from ppl_ident.families import MODELS, build_model, family_of
from ppl_ident.families.base import DEFAULT_DRAWS, DEFAULT_OBS
from ppl_ident.files import atomic_write_json, prepare_output_dir
from ppl_ident.inference.checkpoint import CHECKPOINT_JSON, has_checkpoint
from ppl_ident.pytrees import load_tree, save_tree
from ppl_ident.settings import FLOW_LAYERS, FitSettings
from ppl_ident.workflow.build import make_engine
from ppl_ident.workflow.fitted import Fitted

__all__ = ["RUN_FORMAT", "POSTERIOR_FILE", "SEED_PARAMS_FILE", "save_run", "load_run",
           "load_run_data", "write_posterior", "table_coords", "interrupted_message",
           "input_summary", "input_line", "run_config", "run_settings", "read_json"]


#: the ArviZ posterior of a run directory (written and read on either ArviZ stack)
POSTERIOR_FILE = "posterior.nc"
#: every seed's kept fit of a run with ``seeds > 1`` (:attr:`Fitted.seed_params`)
SEED_PARAMS_FILE = "seed_params.npz"
#: The run directory's format, recorded as ``config.json``'s ``"format"``. 1: written before
#: the number was recorded (release 0.1 and the runs of the settings added since, which
#: :func:`run_settings` completes); 2: every setting recorded, resolved. A newer format is
#: refused with the fix (upgrade), never read by guessing.
RUN_FORMAT = 2


def interrupted_message(run_dir) -> str:
    """What to say about a run directory whose fit stopped before writing its outputs (a
    second Ctrl-C, a kill): the step of the checkpoint kept there, and how to resume it."""
    run = Path(run_dir)
    try:
        meta = json.loads((run / CHECKPOINT_JSON).read_text())
        where = f"at step {int(meta['step'])}"
        if meta.get("target_steps"):
            where += f" of {int(meta['target_steps'])}"
    except (OSError, ValueError, KeyError, TypeError):
        where = "before it finished"
    return (f"The fit in {run} was interrupted {where}: its checkpoint is kept but it has no "
            f"final outputs yet; resume it with `ppl-ident fit --resume {run}` (or "
            "resume_run in Python), then check or report it.")


def read_json(path):
    """A run directory's JSON file; InputError (the directory is damaged) if unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"Cannot read {path} ({err}); the run directory is damaged.") from err


def run_settings(run: Path, config: dict) -> FitSettings:
    """The :class:`FitSettings` recorded in a run's ``config.json`` of any known format;
    InputError for a newer format (upgrade) or one that cannot be read."""
    fmt = config.get("format", 1) if isinstance(config, dict) else None
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        raise InputError(f"{run / 'config.json'} has an unknown run format {fmt!r}; the run "
                         "directory is damaged.")
    if fmt > RUN_FORMAT:
        raise InputError(f"{run / 'config.json'} is in run format {fmt}, newer than this "
                         f"ppl_ident {__version__} reads (format {RUN_FORMAT}): upgrade "
                         "ppl_ident (pip install -U ppl_ident) to read it.")
    try:
        settings = dict(config["settings"])
        model = config.get("model") or {}
        if fmt == 1:
            settings = _settings_of_format_1(settings, model)
        return FitSettings(**settings)
    except (KeyError, TypeError, AttributeError) as err:
        raise InputError(f"{run / 'config.json'} has unknown settings ({err}); it was written by "
                         "another version of ppl_ident.") from err


def _settings_of_format_1(settings: dict, model: dict) -> dict:
    """The settings of a format-1 run, completed with the values its fit had for the settings
    added after it was written (each addition's own default for old runs): the flow's layers
    here, the settings of one family by the family
    (:meth:`~ppl_ident.families.base.ModelFamily.complete_format_1`)."""
    if settings.get("flow_layers") is None:
        # a run written before the setting (or before its default moved with n): its flow,
        # if any, had the model's recorded layers, else the base number
        settings["flow_layers"] = int(model.get("flow_layers") or FLOW_LAYERS)
    family = MODELS.get(model.get("name"))
    # an unknown model is refused where the run's model is built, naming the valid ones
    return settings if family is None else family.complete_format_1(settings, model)


def input_summary(*, data_dim: int, latent_dim: int, n_domains: int | None = None,
                  continuous_u: bool = False, columns: Columns | None = None) -> dict:
    """What a fit reads: the observed columns, the auxiliary column and how it is read, and
    the latent dimension (recorded in ``config.json["inputs"]``, printed by ``fit``).

    Parameters
    ----------
    data_dim, latent_dim : int
        ``d`` and ``n``.
    n_domains : int, optional
        The number of domain labels (None: no labels).
    continuous_u : bool
        ``u`` is a continuous variable.
    columns : Columns, optional
        A table's column mapping (None for arrays, whose keys are ``x`` and ``u``).

    Examples
    --------
    >>> input_summary(data_dim=2, latent_dim=2, n_domains=9)["u_kind"]
    'labels'
    """
    kind = (columns.u_kind if columns is not None and columns.u_kind else
            "continuous" if continuous_u else "labels" if n_domains is not None else None)
    return {"x_cols": None if columns is None or columns.x is None else list(columns.x),
            "data_dim": int(data_dim),
            "u_col": None if kind is None else (columns.u if columns is not None else "u"),
            "u_kind": kind,
            "domains": None if n_domains is None else int(n_domains),
            "latent_dim": int(latent_dim)}


def input_line(summary: dict) -> str:
    """:func:`input_summary` in one line: ``x: lpc0, ..., lpc11 (d = 12); u: 'speaker' (9
    domain labels); latent dimension n = 12``."""
    cols = summary.get("x_cols")
    x = f"x: {', '.join(cols) if len(cols or ()) <= 12 else ', '.join(cols[:11]) + ', ...'} " \
        f"(d = {summary['data_dim']})" if cols else f"x: {summary['data_dim']} columns"
    kind = summary.get("u_kind")
    if kind is None:
        u = "u: none"
    else:
        what = {"labels": "domain labels", "categories": "domain names",
                "continuous": "a continuous variable"}[kind]
        count = f"{summary['domains']} " if summary.get("domains") is not None else ""
        u = f"u: {summary['u_col']!r} ({count}{what})"
    return f"{x}; {u}; latent dimension n = {summary['latent_dim']}"


def _spec_inputs(spec, labels, columns=None) -> dict:
    # the model's u: labels (the fit's domains) or a continuous variable (an input without
    # labels), as the family's templates say
    _, u = family_of(spec.name).templates(spec.config)
    return input_summary(data_dim=spec.data_dim, latent_dim=spec.n_latent,
                         n_domains=None if labels is None else len(labels),
                         continuous_u=u is not None and labels is None, columns=columns)


def run_config(spec, settings: FitSettings, labels, data_path, columns=None) -> dict:
    """The ``config.json`` of a run (format :data:`RUN_FORMAT`)."""
    return {
        # what was read: x columns, u and its kind, domains, n (also printed by `fit`)
        "inputs": _spec_inputs(spec, labels, columns),
        "format": RUN_FORMAT,
        "version": __version__,
        "settings": settings._asdict(),
        "model": spec.config,
        "labels": None if labels is None else np.asarray(labels).tolist(),
        "data": None if data_path is None else str(data_path),
        # how a table's columns became x, u, z (None for .npz): reused by load_run_data
        "columns": None if columns is None else columns.to_dict(),
    }


def save_run(out_dir, fitted: Fitted, dataset: Dataset | None = None, *, force: bool = False,
             data_path: str | None = None, columns: Columns | None = None, truth=None,
             posterior_draws: int = DEFAULT_DRAWS, posterior_obs: int = DEFAULT_OBS):
    """Write a run directory: ``config.json``, ``params.npz``, ``state.npz``, ``losses.npz``,
    ``metrics.json`` and ``posterior.nc``.

    Parameters
    ----------
    out_dir : path
        Refused when it exists and is not empty, unless ``force``.
    fitted : Fitted
    dataset : Dataset, optional
        The fitted data, for ``posterior.nc`` (default: read from ``data_path``).
    force : bool
    data_path : str, optional
        The data file, recorded in ``config.json``.
    columns : Columns, optional
        A table's column mapping (recorded; see :func:`fit_model`).
    truth : optional
        The simulator's ground truth (sequence runs keep its regime path in ``posterior.nc``).
    posterior_draws, posterior_obs : int
        Guide draws of ``z`` per observation, and observations (a random subset, seeded by
        the fit's seed) kept in ``posterior.nc``; ``posterior_draws=0`` writes no file. A
        diverged fit, or one saved with neither ``dataset`` nor ``data_path``, writes none
        either (the latter with a warning).

    Returns
    -------
    Path
        The run directory. Every file is written atomically.

    Examples
    --------
    >>> save_run("runs/ivae", fitted, data)                        # doctest: +SKIP
    >>> read_netcdf("runs/ivae/posterior.nc").posterior["z"].dims     # doctest: +SKIP
    ('chain', 'draw', 'obs', 'latent')
    """
    for name, value, least in (("posterior_draws", posterior_draws, 0),
                               ("posterior_obs", posterior_obs, 1)):
        if int(value) != value or value < least:
            raise InputError(f"{name} must be an integer >= {least}, got {value!r}.")
    out = prepare_output_dir(out_dir, force=force)
    atomic_write_json(out / "config.json",
                      run_config(fitted.spec, fitted.settings, fitted.labels, data_path,
                                  columns))
    save_tree(out / "params.npz", fitted.params)
    if fitted.seed_params is not None:
        save_tree(out / SEED_PARAMS_FILE, fitted.seed_params)
    else:  # a replaced (--force) run's seeds must not be read as this run's
        (out / SEED_PARAMS_FILE).unlink(missing_ok=True)
    save_tree(out / "state.npz", fitted.state)
    save_tree(out / "losses.npz", {"loss": np.asarray(fitted.losses)})
    atomic_write_json(out / "metrics.json", fitted.metrics)
    if posterior_draws and not fitted.metrics.get("stop_reason", "").startswith("diverged"):
        if dataset is None and data_path is not None:
            dataset, truth, _ = read_data(data_path, columns)
        if dataset is None:
            warnings.warn(f"{out / POSTERIOR_FILE} was not written: pass the fitted dataset "
                          "(save_run(out_dir, fitted, dataset)) or its data_path.", UserWarning,
                          stacklevel=2)
        else:
            family = family_of(fitted.spec.name, dataset)
            write_posterior(out, table_coords(family.inference_data(
                fitted, dataset, num_draws=int(posterior_draws), max_obs=int(posterior_obs),
                seed=fitted.settings.seed, truth=truth), columns))
    return out


def table_coords(idata, columns: Columns | None):
    """Name the coordinates of a table's run after its columns: ``x_dim`` after the observed
    columns, ``domain`` after the domain names of a text ``u`` column (its labels are their
    positions). Unchanged for arrays (``.npz``) and without a mapping."""
    if columns is None:
        return idata
    names = {}
    if columns.x is not None:
        names["x_dim"] = list(columns.x)
    if columns.u_categories is not None:
        names["domain"] = list(columns.u_categories)
    for name in groups(idata):
        ds = group(idata, name)
        given = {dim: values for dim, values in names.items()
                 if dim in ds.dims and ds.sizes[dim] == len(values)}
        if given:
            replace_group(idata, name, ds.assign_coords(given))
    return idata


def write_posterior(run_dir, idata) -> Path:
    """Write an ArviZ posterior as ``posterior.nc`` in a run directory, atomically (temporary
    file, then rename)."""
    return write_netcdf(idata, Path(run_dir) / POSTERIOR_FILE)


def _templates(spec, settings: FitSettings):
    family = family_of(spec.name)
    x, u = family.templates(spec.config)
    engine = make_engine(spec, settings, 2)
    state = jax.eval_shape(engine.init, jax.random.PRNGKey(0), x, u)
    params = jax.eval_shape(engine.get_params, state)
    return params, state


def load_run(run_dir) -> Fitted:
    """Read a run directory written by :func:`save_run` back into a :class:`Fitted`."""
    run = Path(run_dir)
    if not (run / "config.json").is_file():
        raise InputError(
            f"{run} is not a run directory (no config.json); pass the --out directory of "
            "`ppl-ident fit`."
        )
    config = read_json(run / "config.json")
    settings = run_settings(run, config)
    if not (run / "params.npz").exists() and has_checkpoint(run):
        raise InputError(interrupted_message(run))
    try:
        model_cfg = dict(config["model"])
        name = model_cfg.pop("name")
        model_cfg.pop("batch_plate", None)  # written by earlier sequence runs; ModelSpec has it
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{run / 'config.json'} is not a ppl_ident run configuration ({err}); "
                         "it is damaged or from another version.") from err
    spec = build_model(name, jax.random.PRNGKey(0), **model_cfg)
    params_t, state_t = _templates(spec, settings)
    params = load_tree(run / "params.npz", params_t)
    state = load_tree(run / "state.npz", state_t) if (run / "state.npz").exists() else None
    try:
        with np.load(run / "losses.npz", allow_pickle=False) as npz:
            losses = npz["['loss']"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"Cannot read {run / 'losses.npz'} ({err}); the run directory is "
                         "damaged or incomplete.") from err
    metrics = read_json(run / "metrics.json") if (run / "metrics.json").exists() else {}
    labels = None if config["labels"] is None else np.asarray(config["labels"])
    seed_params = None
    if (run / SEED_PARAMS_FILE).exists():  # older runs kept the selected fit only
        seed_params = load_tree(run / SEED_PARAMS_FILE, jax.tree_util.tree_map(
            lambda a: jax.ShapeDtypeStruct((settings.seeds,) + tuple(a.shape), a.dtype),
            params_t))
    return Fitted(spec, params, state, settings, labels, losses, metrics, seed_params)


def load_run_data(run_dir, data_path=None, columns: Columns | None = None, *,
                  true_latents: bool = True):
    """The data of a run directory, read the way the fit read it.

    Parameters
    ----------
    run_dir : path
    data_path : path, optional
        Another data file (default: the one recorded in ``config.json``).
    columns : Columns, optional
        Fields that replace the recorded column mapping of a table (the recorded coding of
        ``u`` is kept, so string domains get the fit's labels).
    true_latents : bool
        Read a table's true-latent columns (False: not even when recorded, so that a table
        without them can be encoded).

    Returns
    -------
    dataset, truth, data_path, columns
        As :func:`ppl_ident.data.read_data`, plus the path and mapping used.
    """
    run = Path(run_dir)
    config = read_json(run / "config.json") if (run / "config.json").is_file() else {}
    data_path = data_path or config.get("data")
    if not data_path:
        raise InputError(
            f"{run}/config.json records no data file; pass the data it was fitted to (an .npz, "
            ".csv or .parquet file): `ppl-ident check RUN --data FILE`, `ppl-ident encode RUN "
            "FILE`."
        )
    recorded = Columns.from_dict(config.get("columns"))
    if table_format(data_path) is not None and recorded is not None:
        given = {} if columns is None else {k: v for k, v in columns._asdict().items()
                                            if v is not None}
        columns = recorded._replace(**given)
    if columns is not None and not true_latents:
        columns = columns._replace(z=None)
    dataset, truth, columns = read_data(data_path, columns)
    return dataset, truth, str(data_path), columns
