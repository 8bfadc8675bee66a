"""Per-row export: every observation's latents under the fitted guide, as arrays
(:func:`latent_summary`), a table (:func:`encode_rows`) or a file (:func:`save_latents`,
written block by block for large data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ppl_ident.data.simulate import Dataset
from ppl_ident.data.tables import Columns
from ppl_ident.errors import InputError
from ppl_ident.families import family_of
from ppl_ident.families.predict import encode_summary_chunked
from ppl_ident.files import atomic_savez, atomic_write_stream
from ppl_ident.workflow.fitted import Fitted, model_inputs

__all__ = ["latent_summary", "encode_rows", "save_latents", "LATENT_FORMATS", "WRITE_ROWS"]


#: output suffix -> format of :func:`save_latents`
LATENT_FORMATS = {".csv": "CSV", ".parquet": "Parquet", ".pq": "Parquet", ".npz": "npz"}


def _check_encodable(fitted: Fitted, dataset: Dataset, chunk_size):
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    family = family_of(fitted.spec.name, dataset)
    guide = fitted.spec.guide_name
    if guide not in family.guides:
        raise InputError(f"The run's guide {guide!r} has parameters per training row, not an "
                         "encoder, so it cannot encode new rows; refit with --guide "
                         f"{' or '.join(family.guides)}.")
    x_t, u_t = family.templates(fitted.spec.config)
    if dataset.x.shape[-1] != x_t.shape[-1]:
        raise InputError(f"The run's model takes {x_t.shape[-1]} observed columns; this data "
                         f"has {dataset.x.shape[-1]}. Pass data with the fitted columns (for a "
                         "table, the --x-cols of the fit).")
    if u_t is not None and dataset.u is not None:
        lead_ndim = x_t.ndim - 1
        labels = u_t.ndim == lead_ndim
        u_shape = np.shape(dataset.u)
        if (len(u_shape) != u_t.ndim) or (not labels and u_shape[-1] != u_t.shape[-1]):
            kind = "domain labels" if labels else f"a continuous u of {u_t.shape[-1]} column(s)"
            raise InputError(f"The run was fitted with {kind}, but this data's u has shape "
                             f"{u_shape}; pass data whose u is coded as at the fit.")


def latent_summary(fitted: Fitted, dataset: Dataset, *, chunk_size: int = 4096) -> dict:
    """Every observation's posterior summary of the latents under the fitted guide.

    The variational models' guides are Gaussian (diagonal or full covariance) and the
    noiseless flow's a point mass, so each latent's marginal is exactly ``N(mean, sd^2)`` and
    the 90 % interval is computed in closed form, ``mean -/+ 1.645 sd`` (for a point mass:
    ``sd = 0``, the interval is the point). The noisy flow's posterior is its Gaussian pushed
    through the flow: mean, sd and the 5 % / 95 % quantiles are those of 64 fixed draws per
    row (:data:`~ppl_ident.families.predict.MOMENT_DRAWS`). The guide runs on chunks of ``chunk_size`` observations (for sequences, whole sequences totalling
    at most ``chunk_size`` steps, at least one), so memory stays bounded.

    Parameters
    ----------
    fitted : Fitted
    dataset : Dataset
        ``x`` ``(N, d)`` (or ``(B, T, d)`` for a sequence model) and ``u`` coded as at the
        fit (labels the fit has not seen are refused).
    chunk_size : int

    Returns
    -------
    dict
        ``mean``, ``sd``, ``q05``, ``q95``: float32 arrays ``x.shape[:-1] + (n_latent,)``.

    Examples
    --------
    >>> s = latent_summary(fitted, data, chunk_size=1024)   # doctest: +SKIP
    >>> s["mean"].shape                                      # doctest: +SKIP
    (40000, 5)
    """
    _check_encodable(fitted, dataset, chunk_size)
    u = model_inputs(fitted, dataset.u)
    lead = int(np.prod(dataset.x.shape[1:-1], dtype=np.int64))  # steps per sequence (1: i.i.d.)
    out = encode_summary_chunked(fitted.spec, fitted.params, dataset.x, u,
                                 max(1, int(chunk_size) // lead))
    return dict(zip(("mean", "sd", "q05", "q95"), (a.astype(np.float32) for a in out)))


def encode_rows(fitted: Fitted, dataset: Dataset, *, chunk_size: int = 4096,
                columns: Columns | None = None):
    """Every row's latents as a table: posterior mean, sd and 90 % interval.

    Parameters
    ----------
    fitted : Fitted
    dataset : Dataset
    chunk_size : int
        Rows per chunk of the guide (see :func:`latent_summary`, which computes the numbers).
    columns : Columns, optional
        The table's column mapping: names the ``u`` column and turns the labels back into
        the table's domain names.

    Returns
    -------
    pandas.DataFrame
        One row per observation in data order (for sequences per (sequence, time) step, with
        ``sequence`` and ``time`` columns first; for a long-format table read with
        ``--seq-col`` its sequence-id column with the table's ids, sorted, and ``step``, the
        position of the step after ordering): the ``u`` column(s) (named as in the table,
        else ``u``, or ``u0, u1, ...`` for a continuous ``u``), then ``z{j}_mean``,
        ``z{j}_sd``, ``z{j}_q05``, ``z{j}_q95`` for each latent ``j``.

    Examples
    --------
    >>> df = encode_rows(fitted, data)                     # doctest: +SKIP
    >>> list(df.columns)[:5]                               # doctest: +SKIP
    ['u', 'z0_mean', 'z0_sd', 'z0_q05', 'z0_q95']
    """
    import pandas as pd

    summary = latent_summary(fitted, dataset, chunk_size=chunk_size)
    n_latent = summary["mean"].shape[-1]
    lead = summary["mean"].shape[:-1]
    data = {}
    if len(lead) == 2:
        ids = columns.sequence_ids if columns is not None else None
        if ids is not None and len(ids) == lead[0]:
            # a long-format table: the table's own sequence ids, and each step's position
            data[columns.sequence] = np.repeat(np.asarray(ids), lead[1])
            data["step"] = np.tile(np.arange(lead[1]), lead[0])
        else:
            data["sequence"] = np.repeat(np.arange(lead[0]), lead[1])
            data["time"] = np.tile(np.arange(lead[1]), lead[0])
    for name, values in _u_columns(dataset.u, columns, len(lead)).items():
        data[name] = values
    for j in range(n_latent):
        for stat in ("mean", "sd", "q05", "q95"):
            data[f"z{j}_{stat}"] = summary[stat][..., j].reshape(-1)
    return pd.DataFrame(data)


def _u_columns(u, columns: Columns | None, lead_ndim: int) -> dict:
    if u is None:
        return {}
    u = np.asarray(u)
    name = columns.u if columns is not None and columns.u else "u"
    if u.ndim == lead_ndim:
        flat = u.reshape(-1)
        cats = columns.u_categories if columns is not None else None
        return {name: np.asarray(cats)[flat] if cats else flat}
    flat = u.reshape(-1, u.shape[-1])
    if flat.shape[1] == 1:
        return {name: flat[:, 0]}
    return {f"{name}{k}": flat[:, k] for k in range(flat.shape[1])}


def save_latents(path, fitted: Fitted, dataset: Dataset, *, chunk_size: int = 4096,
                 columns: Columns | None = None, force: bool = False) -> Path:
    """Write every row's latents (:func:`encode_rows`) to ``path``, by its suffix: ``.csv``,
    ``.parquet`` / ``.pq`` (the table), or ``.npz`` (arrays ``z_mean``, ``z_sd``, ``z_q05``,
    ``z_q95`` of shape ``x.shape[:-1] + (n_latent,)``, and ``u`` as in the data, domain
    names as strings).

    An existing file is refused unless ``force`` (checked before anything is computed); the
    file is written atomically, so an interrupted write leaves nothing half-written.
    """
    path = Path(path)
    fmt = LATENT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"Cannot tell the format of {path} from its suffix; name the output "
                         f"file with one of {', '.join(LATENT_FORMATS)}.")
    if path.is_dir():
        raise InputError(f"{path} is a directory; pass the name of the file to write.")
    if path.exists() and not force:
        raise InputError(f"{path} already exists; choose another name, or pass --force "
                         "(force=True) to replace it.")
    if fmt == "npz":
        summary = latent_summary(fitted, dataset, chunk_size=chunk_size)
        arrays = {f"z_{k}": v for k, v in summary.items()}
        if dataset.u is not None:
            u = np.asarray(dataset.u)
            cats = columns.u_categories if columns is not None else None
            arrays["u"] = np.asarray(cats)[u] if cats else u
        return atomic_savez(path, **arrays)
    if fmt == "Parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as err:
            raise InputError(f"Writing Parquet needs pyarrow ({err}); install it with `pip "
                             "install pyarrow`, or write .csv or .npz.") from err

    def write(fh):
        writer = None
        try:
            for k, table in enumerate(_row_blocks(fitted, dataset, chunk_size, columns)):
                if fmt == "CSV":
                    fh.write(table.to_csv(index=False, header=k == 0).encode())
                    continue
                block = pa.Table.from_pandas(table, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(fh, block.schema)
                writer.write_table(block)
        finally:
            if writer is not None:
                writer.close()

    return atomic_write_stream(path, write)


#: Rows of i.i.d. data per block written by :func:`save_latents` (its memory is one block's
#: table, whatever the number of rows).
WRITE_ROWS = 1 << 16


def _row_blocks(fitted: Fitted, dataset: Dataset, chunk_size: int, columns):
    """:func:`encode_rows` of i.i.d. data in blocks of :data:`WRITE_ROWS` rows (a memory-mapped
    ``x`` is read block by block); sequences in one block."""
    n = dataset.x.shape[0]
    if np.ndim(dataset.x) != 2 or n <= WRITE_ROWS:
        yield encode_rows(fitted, dataset, chunk_size=chunk_size, columns=columns)
        return
    for start in range(0, n, WRITE_ROWS):
        rows = slice(start, start + WRITE_ROWS)
        block = Dataset(np.asarray(dataset.x[rows]),
                        None if dataset.u is None else np.asarray(dataset.u[rows]), None)
        yield encode_rows(fitted, block, chunk_size=chunk_size, columns=columns)
