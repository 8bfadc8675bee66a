"""CSV and Parquet tables mapped onto the data contract (``x``, ``u``, optional ``z``).

A table has one row per observation. :class:`Columns` says which columns are what:

``u``
    One column, the auxiliary variable (default: a column named ``u``). Integer columns are
    domain labels; string (or categorical, or boolean) columns are domain names, mapped to the
    labels ``0, 1, ...`` in sorted order (the mapping is kept in :attr:`Columns.u_categories`
    so that a later table is coded the same way); float columns are a continuous ``u`` of
    shape ``(N, 1)``.
``x``
    The observed columns (default: every other numeric column, in table order).
``z`` (optional)
    True latents, for evaluation only.
``sequence``, ``time`` (optional, the sequence models)
    A table in long format, one row per step: ``sequence`` names the column that tells the
    sequences apart (any values; sequences in sorted order of their ids) and ``time`` the
    column that orders the steps within one (default: the order of the rows). Every
    sequence must have the same number of steps; the arrays become ``x`` ``(B, T, d)``,
    ``u`` ``(B, T)`` (optional: the hidden-regime and stationary models need none) and
    ``z`` ``(B, T, n)``.

:func:`read_table_arrays` reads a table into the arrays of the contract and the resolved
:class:`Columns`; :func:`ppl_ident.data.io.read_data` validates them like an ``.npz`` file.
This module knows the table formats, not the contract's rules.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ppl_ident.errors import InputError
from ppl_ident.files import check_memory

__all__ = ["TABLE_FORMATS", "Columns", "is_table", "read_table_arrays", "table_format"]

#: file suffix -> format name
TABLE_FORMATS = {".csv": "CSV", ".parquet": "Parquet", ".pq": "Parquet"}

U_KINDS = ("labels", "categories", "continuous")


class Columns(NamedTuple):
    """How the columns of a table map onto the data contract.

    Attributes
    ----------
    u : str or None
        The auxiliary column (None: the column named ``u``).
    x : tuple of str or None
        The observed columns (None: every other numeric column).
    z : tuple of str or None
        True-latent columns (evaluation only).
    u_kind : {"labels", "categories", "continuous"} or None
        How ``u`` was read (None: from the column's type).
    u_categories : tuple of str or None
        For ``u_kind == "categories"``: the names whose positions are the labels.
    sequence, time : str or None
        Long-format sequence tables: the sequence-id column and the step-order column.
    sequence_ids : tuple or None
        Resolved from the table read (not recorded): the id of each sequence, in the order
        of the arrays' first axis.
    """

    u: str | None = None
    x: tuple | None = None
    z: tuple | None = None
    u_kind: str | None = None
    u_categories: tuple | None = None
    sequence: str | None = None
    time: str | None = None
    sequence_ids: tuple | None = None

    def to_dict(self) -> dict:
        """JSON-able form (recorded in a run's ``config.json``; the ids of one table's
        sequences are not part of the mapping; ``sequence``/``time`` only for a long-format
        sequence table)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._asdict().items()
                if k != "sequence_ids" and not (k in ("sequence", "time") and v is None)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Columns | None":
        """Inverse of :meth:`to_dict`; None stays None."""
        if d is None:
            return None
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        except TypeError as err:
            raise InputError(f"The recorded column mapping {d} is not one this version reads "
                             f"({err}); pass --u-col/--x-cols again.") from err

    def is_empty(self) -> bool:
        return all(v is None for v in self)


def table_format(path) -> str | None:
    """``"CSV"`` or ``"Parquet"`` for a table file (by its suffix), else None."""
    return TABLE_FORMATS.get(Path(path).suffix.lower())


def is_table(path) -> bool:
    return table_format(path) is not None


def _read_frame(path: Path, fmt: str):
    import pandas as pd

    # a table is read whole; a CSV takes about as many bytes parsed as it has as text, a
    # Parquet file (compressed) up to several times more: bound before reading
    factor = 2 if fmt == "CSV" else 8
    check_memory(path.stat().st_size * factor, f"{path} ({fmt})",
                 "subsample the rows (e.g. keep every 10th) or use a machine with more memory.")
    try:
        if fmt == "CSV":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except ImportError as err:
        raise InputError(f"Reading {path} needs pyarrow ({err}); install it with "
                         "`pip install pyarrow`, or save the table as CSV.") from err
    except pd.errors.EmptyDataError as err:
        raise InputError(f"{path} is empty ({err}); write a header row with the column names "
                         "and one row per observation.") from err
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        raise InputError(
            f"{path} is not a readable {fmt} file ({type(err).__name__}: {err}); write it with "
            f"pandas (df.to_{'csv(path, index=False)' if fmt == 'CSV' else 'parquet(path)'})."
        ) from err


def _hint(name: str, found: list[str]) -> str:
    lower = {c.lower(): c for c in found}
    if name.lower() in lower:
        return f" (did you mean {lower[name.lower()]!r}? names are case-sensitive)"
    close = difflib.get_close_matches(name, found, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _listing(found: list[str], limit: int = 20) -> str:
    more = f", ... ({len(found)} in all)" if len(found) > limit else ""
    return ", ".join(found[:limit]) + more


def _require(path, names, found, role, flag):
    missing = [n for n in names if n not in found]
    if missing:
        name = missing[0]
        raise InputError(
            f"{path}: no column {name!r} ({role}){_hint(name, found)}; columns found: "
            f"{_listing(found)}. Name the right column with {flag}."
        )


def _numeric_column(path, frame, name, role):
    import pandas as pd

    col = frame[name]
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        bad = next((v for v in col if not isinstance(v, (int, float, np.number))), col.iloc[0])
        raise InputError(
            f"{path}: column {name!r} ({role}) is not numeric (dtype {col.dtype}, e.g. "
            f"{bad!r}); convert it to numbers, or leave it out of --x-cols / --z-cols."
        )
    values = col.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise InputError(
            f"{path}: column {name!r} ({role}) has {bad.sum()} missing, NaN or infinite "
            f"value(s) (rows {', '.join(map(str, rows[:5]))}{', ...' if len(rows) > 5 else ''}"
            "); drop or impute those rows before fitting."
        )
    return values


def _is_text(col) -> bool:
    import pandas as pd

    return (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)
            or isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col))


def _read_u(path, frame, name, kind, categories):
    """``(u, kind, categories)`` from the auxiliary column, coded as recorded when given."""
    import pandas as pd

    col = frame[name]
    if col.isna().any():
        rows = np.flatnonzero(col.isna().to_numpy())
        raise InputError(
            f"{path}: the auxiliary column {name!r} has {len(rows)} missing value(s) (rows "
            f"{', '.join(map(str, rows[:5]))}{', ...' if len(rows) > 5 else ''}); drop those "
            "rows or give them a domain."
        )
    if kind is None:
        kind = ("categories" if _is_text(col) else
                "labels" if pd.api.types.is_integer_dtype(col) else "continuous")
    if kind not in U_KINDS:
        raise InputError(f"Unknown kind of u {kind!r}; one of {', '.join(U_KINDS)}.")
    if kind == "categories":
        names = col.astype(str).to_numpy()
        if categories is None:
            categories = tuple(sorted(set(names.tolist())))
        index = {c: i for i, c in enumerate(categories)}
        unseen = sorted(set(names.tolist()) - set(index))
        if unseen:
            raise InputError(
                f"{path}: the auxiliary column {name!r} has value(s) {unseen[:5]} that the fit "
                f"did not see (known: {list(categories)[:10]}); the learned prior has no "
                "parameters for them. Drop those rows or refit including those domains."
            )
        return np.array([index[v] for v in names], np.int64), kind, tuple(categories)
    if _is_text(col):
        raise InputError(
            f"{path}: the auxiliary column {name!r} holds text (e.g. {col.iloc[0]!r}) but the "
            f"run was fitted with a numeric u ({kind}); pass the table the run was fitted to, "
            "or one coded the same way."
        )
    values = col.to_numpy(dtype=np.float64)
    if kind == "labels":
        if not np.all(values == np.round(values)):
            raise InputError(
                f"{path}: the auxiliary column {name!r} has non-integer values but the run was "
                "fitted with integer domain labels; pass a table coded the same way."
            )
        return values.astype(np.int64), kind, None
    return values[:, None], kind, None


def read_table_arrays(path, columns: Columns | None = None) -> tuple[dict, Columns]:
    """Read a CSV or Parquet table into the arrays of the data contract.

    Parameters
    ----------
    path : path
        ``.csv``, ``.parquet`` or ``.pq``.
    columns : Columns, optional
        The mapping (unset fields take the defaults of the module docstring). A recorded
        mapping (``u_kind``, ``u_categories``) codes ``u`` as it was coded at the fit.

    Returns
    -------
    arrays : dict
        ``x`` float64 ``(N, d)``, ``u`` int64 ``(N,)`` or float64 ``(N, 1)``, and ``z``
        ``(N, n)`` when ``columns.z`` is set; validate with
        :func:`ppl_ident.data.io.validate_dataset`.
    columns : Columns
        The mapping resolved (every field that applies set), to record and reuse.

    Raises
    ------
    InputError
        Unreadable file, a missing column (the message lists the columns found), a
        non-numeric or incomplete column.

    Examples
    --------
    >>> arrays, cols = read_table_arrays("recordings.csv", Columns(u="site"))  # doctest: +SKIP
    >>> cols.x                                                               # doctest: +SKIP
    ('ch0', 'ch1', 'ch2')
    """
    path = Path(path)
    fmt = table_format(path)
    if fmt is None:
        raise InputError(f"{path} is not a table; tables end in "
                         f"{', '.join(TABLE_FORMATS)}.")
    cols = columns or Columns()
    frame = _read_frame(path, fmt)
    frame.columns = [str(c) for c in frame.columns]
    found = list(frame.columns)
    if len(frame) == 0:
        raise InputError(f"{path} has a header ({_listing(found)}) but no rows; write one row "
                         "per observation.")
    u_name = cols.u or "u"
    seq_names = [c for c in (cols.sequence, cols.time) if c is not None]
    _require(path, seq_names[:1], found, "sequence ids, --seq-col", "--seq-col")
    _require(path, seq_names[1:], found, "step order, --time-col", "--time-col")
    if cols.time is not None and cols.sequence is None:
        raise InputError(f"{path}: --time-col orders the steps of sequences; name the column "
                         "of sequence ids with --seq-col as well.")
    if cols.sequence is not None and cols.u is None and u_name not in found:
        u_name = None  # a sequence table without u: for the hidden-regime and stationary models
    elif u_name not in found:
        if cols.u is None:
            raise InputError(
                f"{path}: no auxiliary column named 'u'; columns found: {_listing(found)}. Name "
                "the column of domain labels (or the continuous auxiliary variable) with "
                "--u-col NAME."
            )
        _require(path, [u_name], found, "the auxiliary variable, --u-col", "--u-col")
    z_names = list(cols.z or ())
    _require(path, z_names, found, "true latents, --z-cols", "--z-cols")
    if cols.x is not None:
        x_names = list(cols.x)
        _require(path, x_names, found, "observations, --x-cols", "--x-cols")
    else:
        import pandas as pd

        x_names = [c for c in found if c != u_name and c not in z_names
                   and c not in seq_names
                   and pd.api.types.is_numeric_dtype(frame[c])
                   and not pd.api.types.is_bool_dtype(frame[c])]
        if not x_names:
            raise InputError(
                f"{path}: no numeric column besides the auxiliary column {u_name!r}; columns "
                f"found: {_listing(found)}. Name the observed columns with --x-cols."
            )
    roles = [[u_name] if u_name else [], x_names, z_names, seq_names]
    seen: dict = {}
    for names in roles:
        for c in set(names):
            seen[c] = seen.get(c, 0) + 1
    overlap = sorted(c for c, k in seen.items() if k > 1)
    if overlap or len(set(seq_names)) < len(seq_names):
        raise InputError(f"{path}: column(s) {overlap or seq_names[:1]} are given more than one "
                         "role (u, x, z, sequence, time); give each column one of --u-col, "
                         "--x-cols, --z-cols, --seq-col, --time-col.")
    arrays = {"x": np.stack([_numeric_column(path, frame, c, "observations")
                             for c in x_names], axis=1)}
    kind = categories = None
    if u_name is not None:
        arrays["u"], kind, categories = _read_u(path, frame, u_name, cols.u_kind,
                                                cols.u_categories)
    if z_names:
        arrays["z"] = np.stack([_numeric_column(path, frame, c, "true latents")
                                for c in z_names], axis=1)
    ids = None
    if cols.sequence is not None:
        arrays, ids = _as_sequences(path, frame, cols.sequence, cols.time, arrays)
    resolved = Columns(u=u_name, x=tuple(x_names), z=tuple(z_names) or None, u_kind=kind,
                       u_categories=categories, sequence=cols.sequence, time=cols.time,
                       sequence_ids=ids)
    return arrays, resolved


def _as_sequences(path, frame, seq_name: str, time_name: str | None, arrays: dict):
    """Long-format rows grouped into equal-length sequences: ``(B, T, ...)`` arrays (sorted by
    sequence id, then by ``time_name`` or row order) and the ids in that order."""
    import pandas as pd

    col = frame[seq_name]
    if col.isna().any():
        rows = np.flatnonzero(col.isna().to_numpy())
        raise InputError(f"{path}: the sequence column {seq_name!r} has {len(rows)} missing "
                         f"value(s) (rows {', '.join(map(str, rows[:5]))}); give every row "
                         "the id of its sequence.")
    codes, ids = pd.factorize(col, sort=True)
    counts = np.bincount(codes)
    if counts.min() != counts.max():
        short = ids[int(np.argmin(counts))]
        raise InputError(
            f"{path}: the sequences in column {seq_name!r} have {counts.min()} to "
            f"{counts.max()} steps (e.g. {short!r} has {counts.min()}); the sequence models "
            f"need sequences of one length: cut them to {counts.min()} steps (e.g. "
            f"df.groupby({seq_name!r}).head({counts.min()})) or split the longer ones.")
    if time_name is not None:
        t = _numeric_column(path, frame, time_name, "step order")
        order = np.lexsort((t, codes))
        dup = (np.diff(codes[order]) == 0) & (np.diff(t[order]) == 0)
        if dup.any():
            bad = ids[codes[order][1:][dup][0]]
            raise InputError(f"{path}: sequence {bad!r} has two rows at the same "
                             f"{time_name!r}; give every step of a sequence its own time.")
    else:
        order = np.argsort(codes, kind="stable")
    B, T = len(ids), int(counts[0])
    out = {k: v[order].reshape(B, T, *v.shape[1:]) for k, v in arrays.items()}
    if "u" in out and out["u"].ndim == 3 and out["u"].shape[-1] == 1:
        out["u"] = out["u"]      # continuous u: refused by the sequence family, named there
    return out, tuple(v.item() if hasattr(v, "item") else v for v in ids)
