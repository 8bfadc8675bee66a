"""The one module that imports ArviZ: every other module reaches it through the functions here.

Two stacks are supported (``docs/getting-started/install.md``): ArviZ 0.23 (Python 3.11, an
``arviz.InferenceData`` of ``xarray.Dataset`` groups) and ArviZ 1.x (Python 3.12, an
``xarray.DataTree`` whose children are the groups; statistics from ``arviz_stats``). The
functions take and return the same things on both, so the rest of the package does not ask
which stack it runs on:

- building: :func:`from_groups`, :func:`add_groups`, :func:`replace_group`;
- group access: :func:`groups`, :func:`has_group`, :func:`group` (always an ``xr.Dataset``);
- ``posterior.nc``: :func:`write_netcdf`, :func:`read_netcdf` (either stack reads the
  other's file: both are netCDF-4 files with one HDF5 group per ArviZ group);
- statistics: :func:`summary_stats`, :func:`summary_diagnostics`, :func:`hdi`, :func:`rhat`,
  :func:`ess`, :func:`psis_khat`; plots: :func:`plot_forest`.

On ArviZ 0.23 each function is the call the package made before this module existed, so
outputs there are unchanged. On ArviZ 1.x the statistics use the definitions of 0.23 where
1.x changed a default (``ess`` of the tails at the 5% and 95% quantiles, the summary's HDI
column names ``hdi_5%`` / ``hdi_95%``, 0.23's rounding of the summary).
"""

from __future__ import annotations

import os
from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr

__all__ = ["ARVIZ_1", "IData", "from_groups", "add_groups", "replace_group", "groups",
           "has_group", "group", "write_netcdf", "read_netcdf", "summary_stats",
           "summary_diagnostics", "hdi", "rhat", "ess", "psis_khat", "plot_forest"]

#: Whether the installed ArviZ is 1.x (``xarray.DataTree``) rather than 0.23
ARVIZ_1 = int(az.__version__.split(".")[0]) >= 1

#: The type of a posterior: ``xarray.DataTree`` on ArviZ 1.x, ``arviz.InferenceData`` on 0.23
IData = xr.DataTree if ARVIZ_1 else az.InferenceData

#: 0.23's tail ESS: the smaller ESS of the 5% and 95% quantiles
TAIL_PROBS = (0.05, 0.95)

if ARVIZ_1:
    from arviz_stats.base import array_stats


def from_groups(data: dict, *, coords: dict | None = None, dims: dict | None = None,
                attrs: dict | None = None):
    """A posterior from arrays (ArviZ's ``from_dict``).

    Parameters
    ----------
    data : dict
        Group name -> dict of variable name -> array (``posterior``, ``posterior_predictive``,
        ``log_likelihood``, ``sample_stats``: leading chain and draw axes; ``observed_data``,
        ``constant_data``: none). A group given as None or an empty dict is left out.
    coords, dims : dict, optional
        As in ``arviz.from_dict``: dimension -> coordinate values, variable -> dim names
        (without chain and draw).
    attrs : dict, optional
        Group name -> attributes of that group.

    Returns
    -------
    IData
    """
    given = {name: values for name, values in data.items() if values}
    attrs = {name: a for name, a in (attrs or {}).items() if name in given}
    if ARVIZ_1:
        return az.from_dict(given, coords=coords, dims=dims, attrs=attrs or None)
    return az.from_dict(**given, coords=coords, dims=dims,
                        **{f"{name}_attrs": a for name, a in attrs.items()})


def add_groups(idata, new: dict):
    """Add groups (name -> ``xr.Dataset``) to ``idata`` in place; returns ``idata``."""
    if ARVIZ_1:
        for name, ds in new.items():
            idata[name] = ds
    else:
        idata.add_groups(new)
    return idata


def replace_group(idata, name: str, ds: xr.Dataset):
    """Replace the group ``name`` of ``idata`` by ``ds`` in place; returns ``idata``."""
    if ARVIZ_1:
        idata[name] = ds
    else:
        setattr(idata, name, ds)
    return idata


def groups(idata) -> list[str]:
    """The names of the groups of ``idata``, in order."""
    return list(idata.children) if ARVIZ_1 else list(idata.groups())


def has_group(idata, name: str) -> bool:
    """Whether ``idata`` has the group ``name``."""
    return name in groups(idata)


def group(idata, name: str) -> xr.Dataset:
    """The group ``name`` of ``idata`` as an ``xr.Dataset`` (KeyError when absent)."""
    if not has_group(idata, name):
        raise KeyError(f"no group {name!r}; groups: {', '.join(groups(idata))}")
    return idata[name].to_dataset() if ARVIZ_1 else idata[name]


def write_netcdf(idata, path) -> Path:
    """Write ``idata`` as a netCDF-4 file (h5netcdf), one HDF5 group per ArviZ group,
    atomically: into a temporary file beside ``path``, then renamed into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        if ARVIZ_1:
            idata.to_netcdf(tmp, engine="h5netcdf")
        else:
            az.to_netcdf(idata, tmp, engine="h5netcdf")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_netcdf(path):
    """Read a file written by :func:`write_netcdf` on either stack."""
    return az.from_netcdf(path, engine="h5netcdf")


def _hdi_names(prob: float) -> tuple[str, str]:
    """0.23's HDI column names: ``hdi_5%``, ``hdi_95%`` for ``prob = 0.9``."""
    lo = (1 - prob) / 2 * 100
    return f"hdi_{lo:g}%", f"hdi_{100 - lo:g}%"


def summary_stats(idata, var: str, coords: dict, hdi_prob: float):
    """``az.summary(kind="stats")`` of ``var`` at ``coords``: a DataFrame indexed like
    ``z[12, 0]`` with columns ``mean``, ``sd``, ``hdi_5%``, ``hdi_95%`` (for
    ``hdi_prob = 0.9``), rounded to three decimals, on both stacks."""
    if not ARVIZ_1:
        return az.summary(idata, var_names=[var], coords=coords, kind="stats",
                          hdi_prob=hdi_prob)
    out = az.summary(idata, var_names=[var], coords=coords, kind="stats", ci_prob=hdi_prob,
                     ci_kind="hdi", round_to=3)
    pct = round(hdi_prob * 100)
    lo, hi = _hdi_names(hdi_prob)
    return out.rename(columns={f"hdi{pct}_lb": lo, f"hdi{pct}_ub": hi})


def _flat_elements(da: xr.DataArray) -> tuple[list[str], np.ndarray]:
    """Element labels (``z[12, 0]``) and draws ``(chain, draw, elements)`` of a posterior
    variable."""
    var = da.name
    lead = ("chain", "draw")
    arr = np.asarray(da.transpose(*lead, ...))
    shape = arr.shape[2:]
    axes = [da.coords[d].values if d in da.coords else np.arange(len(da[d]))
            for d in da.dims if d not in lead]
    labels = [f"{var}[{', '.join(str(a[i]) for a, i in zip(axes, idx))}]" if shape else var
              for idx in np.ndindex(*shape)]
    return labels, arr.reshape(*arr.shape[:2], -1)


def summary_diagnostics(idata, var: str, coords: dict | None = None):
    """R-hat and ESS of every element of ``var`` (at ``coords``, default all): a DataFrame
    with columns ``r_hat`` (rank-normalised split R-hat, 2 decimals), ``ess_bulk`` and
    ``ess_tail`` (whole numbers), as ``az.summary(kind="diagnostics")`` of ArviZ 0.23."""
    if not ARVIZ_1:
        return az.summary(idata, var_names=[var], kind="diagnostics",
                          **({"coords": coords} if coords else {}))
    labels, arr = _flat_elements(group(idata, "posterior")[var].sel(coords or {}))
    table = xr.Dataset({"ess_bulk": ("element", np.round(ess(arr, "bulk"))),
                        "ess_tail": ("element", np.round(ess(arr, "tail"))),
                        "r_hat": ("element", np.round(rhat(arr), 2))},
                       coords={"element": labels}).to_dataframe()
    table.index.name = None
    return table


def hdi(draws, prob: float) -> np.ndarray:
    """Highest-density intervals of draws ``(S, ...)`` along the first axis: ``(..., 2)``."""
    draws = np.asarray(draws)
    if ARVIZ_1:
        return np.asarray(array_stats.hdi(draws, prob, axis=0))
    # arviz 0.23 treats an ndarray as (chain, draw, *shape): one chain of S draws
    return np.asarray(az.hdi(draws[None], hdi_prob=prob))


def rhat(chains) -> np.ndarray:
    """Rank-normalised split R-hat of ``chains`` ``(chain, draw, ...)``: shape ``(...)``."""
    chains = np.asarray(chains)
    if ARVIZ_1:
        return np.asarray(array_stats.rhat(chains, chain_axis=0, draw_axis=1))
    return np.asarray(az.rhat({"v": chains})["v"])


def ess(chains, method: str = "bulk") -> np.ndarray:
    """Effective sample size (``method`` ``"bulk"`` or ``"tail"``) of ``chains``
    ``(chain, draw, ...)``: shape ``(...)``."""
    chains = np.asarray(chains)
    if ARVIZ_1:
        prob = TAIL_PROBS if method == "tail" else None
        return np.asarray(array_stats.ess(chains, chain_axis=0, draw_axis=1, method=method,
                                          **({"prob": prob} if prob else {})))
    return np.asarray(az.ess({"v": chains}, method=method)["v"])


def psis_khat(log_weights) -> np.ndarray:
    """Pareto k-hat of Pareto-smoothed importance sampling for each row of
    ``log_weights`` ``(rows, samples)`` (``r_eff = 1``)."""
    log_weights = np.asarray(log_weights)
    if ARVIZ_1:
        return np.asarray(array_stats.psislw(log_weights, 1, axis=-1)[1])
    return np.asarray(az.psislw(log_weights)[1])


def plot_forest(ax, idatas: dict, var: str, coords: dict, level: float,
                legend: bool) -> None:
    """Forest plot of ``var`` at ``coords`` on ``ax``, one colour per entry of ``idatas``
    (name -> posterior), chains combined: thin line the ``level`` HDI, thick line the
    interquartile range, open circle the median; y tick labels ``z[obs, latent]``.

    ArviZ 0.23 draws it (``az.plot_forest``); ArviZ 1.x's forest plot draws on a plot
    collection of its own rather than on a given matplotlib axis, so this draws the same
    picture with matplotlib there.
    """
    names = list(idatas)
    if not ARVIZ_1:
        az.plot_forest([idatas[m] for m in names], model_names=names, var_names=[var],
                       coords=coords, combined=True, hdi_prob=level, ax=ax, textsize=9,
                       legend=legend)
        return
    _forest_matplotlib(ax, idatas, var, coords, level, legend)


def _forest_matplotlib(ax, idatas: dict, var: str, coords: dict, level: float,
                       legend: bool) -> None:
    names = list(idatas)
    step, gap = 0.3, 0.5                 # between engines, between elements
    ticks, labels, handles = [], [], []
    for j, name in enumerate(names):
        row_labels, arr = _flat_elements(group(idatas[name], "posterior")[var].sel(coords))
        flat = arr.reshape(-1, arr.shape[-1])
        lo_hi = hdi(flat, level)
        quart = np.quantile(flat, [0.25, 0.5, 0.75], axis=0)
        height = len(names) * step + gap
        for i, label in enumerate(row_labels):
            y = (len(row_labels) - 1 - i) * height + (len(names) - 1 - j) * step
            ax.plot(lo_hi[i], [y, y], color=f"C{j}", lw=1.0, solid_capstyle="butt")
            ax.plot(quart[[0, 2], i], [y, y], color=f"C{j}", lw=2.0, solid_capstyle="butt")
            ax.plot(quart[1, i], y, "o", color=f"C{j}", mfc="white", ms=4.5)
            ticks.append(y)
            labels.append(label)
            if j == 0 and i % 2 == 0:    # alternate rows shaded, as ArviZ 0.23 does
                top = (len(row_labels) - 1 - i) * height
                ax.axhspan(top - gap / 2, top + (len(names) - 1) * step + gap / 2,
                           color="k", alpha=0.1, lw=0)
        handles.append(ax.plot([], [], color=f"C{j}", lw=2.0)[0])
    ax.set_yticks(ticks, labels, fontsize=9)
    ax.tick_params(labelsize=9, left=False)
    for side in ("left", "right"):
        ax.spines[side].set_visible(False)
    if legend:
        ax.legend(handles[::-1], names[::-1], fontsize=9)
