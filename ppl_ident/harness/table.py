"""The results table: assembled from cell files, written as CSV and as an xarray Dataset.

One row per (data setting, model, engine, seed); columns are the cell's description (data
setting values, engine options) followed by the metric columns of
:data:`~ppl_ident.harness.metrics.METRICS`. Cells without a finished file appear as rows with
``status = "missing"`` so an incomplete table says so.
"""

from __future__ import annotations

from pathlib import Path


from ppl_ident.files import atomic_write_bytes
from ppl_ident.harness.run import cell_path, read_cell

__all__ = ["assemble_table", "to_dataset", "write_results", "summarise", "ID_COLUMNS",
           "SETTING_COORDS"]

ID_COLUMNS = ["setting", "model", "engine", "seed"]


def _describe(cell) -> dict:
    """The cell's columns: its data setting's values and the settings its fit runs with
    (resolved as ``ppl-ident fit`` resolves them: ``flow`` says whether it is the exact
    flow)."""
    d = {"setting": cell.setting, "model": cell.model, "engine": cell.engine}
    d.update({k: v for k, v in cell.data.items()})
    s = cell.resolved_settings()
    d.update({"engine_kind": cell.fit.get("engine", s.engine), "elbo": s.elbo,
              "guide": None if s.flow else s.guide, "num_particles": s.num_particles or 1,
              "flow": s.flow, "base": cell.fit.get("base")})
    return d


def assemble_table(out_dir, cells):
    """Read every cell's file into one tidy ``pandas.DataFrame`` (rows in grid order)."""
    import pandas as pd

    rows = []
    for cell in cells:
        rec = read_cell(cell_path(out_dir, cell))
        base = _describe(cell)
        if rec is None:
            rows += [{**base, "seed": s, "status": "missing"} for s in cell.seeds]
            continue
        for r in rec["rows"]:
            rows.append({**base, **r, "status": "done", "cell_id": cell.cell_id})
    return pd.DataFrame(rows)


def to_dataset(df):
    """The table as an ``xarray.Dataset`` with dims ``setting, model, engine, seed``.

    Numeric columns become variables; the data-setting values become coordinates along
    ``setting`` and the engine options coordinates along ``engine``.
    """
    import pandas as pd
    import xarray as xr  # noqa: F401 - DataFrame.to_xarray below needs it installed

    skip = set(ID_COLUMNS) | {"cell_id", "status"}
    numeric = [c for c in df.columns if c not in skip
               and pd.api.types.is_numeric_dtype(df[c]) and c not in SETTING_COORDS]
    ds = df.set_index(ID_COLUMNS)[numeric].astype(float).to_xarray()
    for name, dim in [(c, "setting") for c in SETTING_COORDS] + \
            [(c, "engine") for c in _ENGINE_COORDS]:
        if name in df.columns:
            first = df.drop_duplicates(dim).set_index(dim)[name]
            values = first.reindex(ds[dim].values).to_numpy()
            if values.dtype == object:
                values = values.astype(str)
            ds = ds.assign_coords({name: (dim, values)})
    for c in [c for c in df.columns if c.endswith("_status")]:
        ds[c] = df.set_index(ID_COLUMNS)[c].astype(str).to_xarray().astype(str)
    ds.attrs["description"] = "ppl-ident compare: one value per (setting, model, engine, seed)"
    return ds


def _setting_coords() -> list[str]:
    """Every data-setting column of every family's simulators (coordinates along
    ``setting``)."""
    from ppl_ident.families import GENERATORS

    keys = {"generator": None}
    for name, family in GENERATORS.items():
        keys.update(dict.fromkeys(family.data_axes(name)))
    return list(keys)


SETTING_COORDS = _setting_coords()
_ENGINE_COORDS = ["engine_kind", "elbo", "guide", "num_particles", "flow", "base"]


def summarise(df):
    """Per (setting, model, engine): mean and std over seeds of the headline metrics."""
    cols = [c for c in ["mcc", "elbo_per_obs", "psis_khat_mean", "calibration_90",
                        "heldout_loglik", "time_to_mcc90_s", "compile_time_s", "run_time_s",
                        "steps_per_s", "base_mcc", "base_run_time_s", "rhat_max"]
            if c in df.columns]
    done = df[df["status"] == "done"]
    g = done.groupby(["setting", "model", "engine"], sort=False)[cols]
    out = g.agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out.insert(0, "seeds", g.size())
    return out.reset_index()


def write_results(out_dir, df) -> dict:
    """Write ``results.csv``, ``summary.csv`` and ``results.nc`` (atomically); return paths."""
    import io


    out = Path(out_dir)
    paths = {}
    for name, frame in [("results.csv", df), ("summary.csv", summarise(df))]:
        buf = io.StringIO()
        frame.to_csv(buf, index=False, float_format="%.6g")
        paths[name] = atomic_write_bytes(out / name, buf.getvalue().encode())
    if (df["status"] == "done").any():
        ds = to_dataset(df[df["status"] == "done"])
        tmp = out / ".results.nc.tmp"
        ds.to_netcdf(tmp, engine="h5netcdf")
        tmp.replace(out / "results.nc")
        paths["results.nc"] = out / "results.nc"
    return {k: str(v) for k, v in paths.items()}

