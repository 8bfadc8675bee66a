"""CSV and Parquet tables mapped onto the data contract (``x``, ``u``, optional ``z``).

A table has one row per observation. :class:`Columns` says which columns are what:

``u``
    One column, the auxiliary variable (default: a column named ``u``). Integer columns are
    domain labels; string (or categorical, or boolean) columns are domain names, mapped to the
    labels ``0, 1, ...`` in sorted order (the mapping is kept in :attr:`Columns.u_categories`
    so that a later table is coded the same way); float columns are a continuous ``u`` of
    shape ``(N, 1)``, except that a float column whose values are all whole numbers (speaker
    codes saved as ``1.0 ... 9.0``) is read as labels, with a warning that names
    ``--u-kind continuous`` (:attr:`Columns.u_kind` forces a kind).
``x``
    The observed columns (default: every other numeric column, in table order, less the
    columns that look like ids, see :func:`id_like_columns`; columns named explicitly are
    always used). A text column whose cells are mostly numbers is a numeric column with a
    stray cell: an error naming the column, the row and the cell, never a silent drop.
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
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ppl_ident.errors import InputError
from ppl_ident.files import check_memory

__all__ = ["TABLE_FORMATS", "Columns", "id_like_columns", "is_table", "read_table_arrays",
           "table_format"]

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


def _listing(found: list[str], limit: int = 20, sep: str = ", ") -> str:
    more = f"{sep}... ({len(found)} in all)" if len(found) > limit else ""
    return sep.join(found[:limit]) + more


def _require(path, names, found, role, flag):
    missing = [n for n in names if n not in found]
    if missing:
        name = missing[0]
        raise InputError(
            f"{path}: no column {name!r} ({role}){_hint(name, found)}; columns found: "
            f"{_listing(found)}. Name the right column with {flag}."
        )


def _rows_text(path, rows, limit: int = 5) -> str:
    """0-based positions among the data rows, as a reader finds them: ``data rows 3, 6
    (counted from 1 below the header; lines 4, 7 of the CSV file)``."""
    rows = [int(r) for r in rows]
    more = ", ..." if len(rows) > limit else ""
    text = (f"data row{'s' if len(rows) > 1 else ''} "
            f"{', '.join(str(r + 1) for r in rows[:limit])}{more} (counted from 1 below the "
            "header")
    if table_format(path) == "CSV":
        text += (f"; line{'s' if len(rows) > 1 else ''} "
                 f"{', '.join(str(r + 2) for r in rows[:limit])}{more} of the file")
    return text + ")"


def _unparsed(col):
    """Boolean mask of the cells of a text column that are present but not numbers."""
    import pandas as pd

    return (pd.to_numeric(col, errors="coerce").isna() & col.notna()).to_numpy()


def _mostly_numbers(col) -> bool:
    """A text (object) column most of whose cells are numbers: a numeric column with stray
    text cells (pandas reads one ``"abc"`` among numbers as a text column)."""
    import pandas as pd

    if not pd.api.types.is_object_dtype(col) and not pd.api.types.is_string_dtype(col):
        return False
    present = int(col.notna().sum())
    return present > 0 and int((~_unparsed(col) & col.notna().to_numpy()).sum()) > present / 2


def _stray_cells_error(path, col, name, role):
    bad = np.flatnonzero(_unparsed(col))
    first = int(bad[0])
    cell = _cell(col.iloc[first])
    return InputError(
        f"{path}: column {name!r} ({role}) is not numeric: "
        + (f"its cell {cell!r} in {_rows_text(path, bad[:1])} is not a number"
           if len(bad) == 1 else
           f"{len(bad)} of its {len(col)} cells are not numbers, the first {cell!r} in "
           f"{_rows_text(path, bad[:1])} (all: {_rows_text(path, bad)})")
        + f"; correct or drop those rows (e.g. df = df[pd.to_numeric(df[{name!r}], "
        "errors='coerce').notna()]), or leave the column out of --x-cols / --z-cols."
    )


def _numeric_column(path, frame, name, role):
    import pandas as pd

    col = frame[name]
    if _mostly_numbers(col):
        if _unparsed(col).any():
            raise _stray_cells_error(path, col, name, role)
        col = pd.to_numeric(col)   # numbers stored as text (every cell parses)
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        rows = np.flatnonzero(_unparsed(col)) if not pd.api.types.is_bool_dtype(col) else [0]
        first = int(rows[0]) if len(rows) else 0
        raise InputError(
            f"{path}: column {name!r} ({role}) is not numeric (dtype {col.dtype}, e.g. "
            f"{_cell(col.iloc[first])!r} in {_rows_text(path, [first])}); convert it to "
            "numbers, or leave it out of --x-cols / --z-cols."
        )
    values = col.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise InputError(
            f"{path}: column {name!r} ({role}) has {len(rows)} missing, NaN or infinite "
            f"value(s) ({_rows_text(path, rows)}); drop or impute those rows before fitting."
        )
    return values


#: fewer rows than this: too little evidence to call a column an id (every column is used)
ID_MIN_ROWS = 10


def id_like_columns(frame, names, groups=None) -> dict:
    """The columns among ``names`` that hold integer ids or counters, not measurements.

    The rule, for one column: its values are all whole numbers (integer dtype, or floats like
    ``3.0``), it has at least 3 distinct values, the table at least :data:`ID_MIN_ROWS` rows,
    and one of

    1. it is monotone (never decreasing, or never increasing) over the whole table, e.g. an
       utterance or session number of a table sorted by it, or a row number;
    2. at least half of the steps from one row to the next are +1 (or all -1): a counter
       that restarts, e.g. a frame index within each utterance;
    3. its distinct values are as many as the rows and consecutive: a row id, in any order;
    4. with ``groups`` (the domain labels of ``u``, at least 2 domains): it takes one value in
       every domain (a domain id or attribute, constant within the domain), or, with 3 rows
       per domain or more on average, it takes in every domain as many distinct consecutive
       values as the domain has rows (a row number within the domain).

    An integer-valued measurement (counts, ratings, milliseconds) is kept: it is not monotone
    over a table of more than a few rows unless the table is sorted by it, its row-to-row
    steps are +1 only by chance (a Poisson(3) count: about 17 % of steps), and its values in a
    domain are not exactly consecutive and distinct. Columns named explicitly (``--x-cols``)
    are never judged.

    Parameters
    ----------
    frame : pandas.DataFrame
    names : sequence of str
        The numeric columns to judge.
    groups : int array ``(N,)``, optional
        Domain codes of the rows.

    Returns
    -------
    dict
        ``{name: reason}`` for the columns that look like ids, in the order of ``names``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"frame": np.tile(np.arange(5), 4), "count": [3, 1, 4, 1, 5] * 4})
    >>> id_like_columns(df, ["frame", "count"])
    {'frame': 'counts up by 1 from row to row (a counter such as a frame index)'}
    """
    out = {}
    if len(frame) < ID_MIN_ROWS:
        return out
    if groups is not None:
        groups = np.asarray(groups)
        order = np.argsort(groups, kind="stable")
        starts = np.flatnonzero(np.r_[True, groups[order][1:] != groups[order][:-1]])
        sizes = np.diff(np.r_[starts, len(groups)])
        if len(starts) < 2:
            groups = None
    for name in names:
        v = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.all(np.isfinite(v)) or not np.all(v == np.round(v)):
            continue
        distinct = np.unique(v)
        if len(distinct) < 3:
            continue
        step = np.diff(v)
        if np.all(step >= 0) or np.all(step <= 0):
            out[name] = "monotone over the table (an id or row number)"
        elif np.mean(step == 1) >= 0.5 or np.all(step == -1):
            out[name] = "counts up by 1 from row to row (a counter such as a frame index)"
        elif len(distinct) == len(v) and distinct[-1] - distinct[0] == len(v) - 1:
            out[name] = "one distinct value per row (a row id)"
        elif groups is not None:
            w = v[order]
            lo = np.minimum.reduceat(w, starts)
            hi = np.maximum.reduceat(w, starts)
            if np.all(lo == hi):
                out[name] = "one value per domain of u (a domain id or attribute)"
            elif sizes.mean() >= 3 and np.all(hi - lo == sizes - 1):
                per = [len(np.unique(w[a:a + k])) for a, k in zip(starts, sizes)]
                if np.array_equal(per, sizes):
                    out[name] = "a distinct consecutive value per row of each domain of u " \
                                "(a row number within the domain)"
    return out


def _is_text(col) -> bool:
    import pandas as pd

    return (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)
            or isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col))


def _cell(value):
    """A table value as a message quotes it: NumPy scalars as Python ones (``68``, not
    ``np.int64(68)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _number(value):
    """A NumPy or Python number as it reads in a message: ``68``, ``1.5`` (never
    ``np.int64(68)``)."""
    value = float(value)
    return int(value) if value == round(value) and abs(value) < 2**53 else value


def u_is_whole(col) -> bool:
    """A float column of whole numbers only (domain codes saved as ``1.0, 2.0, ...``)."""
    import pandas as pd

    if not pd.api.types.is_float_dtype(col):
        return False
    values = col.to_numpy(dtype=np.float64)
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def _read_u(path, frame, name, kind, categories):
    """``(u, kind, categories)`` from the auxiliary column, coded as recorded when given."""
    import pandas as pd

    col = frame[name]
    if col.isna().any():
        rows = np.flatnonzero(col.isna().to_numpy())
        raise InputError(
            f"{path}: the auxiliary column {name!r} has {len(rows)} missing value(s) "
            f"({_rows_text(path, rows)}); drop those rows or give them a domain."
        )
    if kind is None:
        kind = ("categories" if _is_text(col) else
                "labels" if pd.api.types.is_integer_dtype(col) else "continuous")
        if kind == "continuous" and u_is_whole(col):
            values = np.unique(col.to_numpy(dtype=np.float64))
            kind = "labels"
            warnings.warn(
                f"{path}: the auxiliary column {name!r} holds floats that are all whole numbers "
                f"({len(values)} distinct, {_number(values[0])} to {_number(values[-1])}), so it "
                "is read as domain labels; if it is a continuous variable, pass --u-kind "
                "continuous.", stacklevel=4)
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
                f"{path}: the auxiliary column {name!r} has value(s) "
                f"{[_cell(v) for v in unseen[:5]]} that the fit "
                f"did not see (known: {list(categories)[:10]}); the learned prior has no "
                "parameters for them. Drop those rows or refit including those domains."
            )
        return np.array([index[v] for v in names], np.int64), kind, tuple(categories)
    if _is_text(col):
        first = int(np.flatnonzero(_unparsed(col))[0]) if _unparsed(col).any() else 0
        raise InputError(
            f"{path}: the auxiliary column {name!r} holds text (e.g. {_cell(col.iloc[first])!r} in "
            f"{_rows_text(path, [first])}) but u is read as numbers ({kind}: --u-kind, or the "
            "coding the run was fitted with); pass --u-kind categories, or a table coded the "
            "same way as the fit's."
        )
    values = col.to_numpy(dtype=np.float64)
    if kind == "labels":
        if not np.all(values == np.round(values)):
            first = int(np.flatnonzero(values != np.round(values))[0])
            raise InputError(
                f"{path}: the auxiliary column {name!r} has non-integer values (e.g. "
                f"{_number(values[first])} in {_rows_text(path, [first])}) but u is read as "
                "integer domain labels (--u-kind labels, or the coding the run was fitted "
                "with); pass a table coded the same way, or --u-kind continuous."
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
    kind = categories = None
    if u_name is not None:
        u_values, kind, categories = _read_u(path, frame, u_name, cols.u_kind,
                                             cols.u_categories)
    if cols.x is not None:
        x_names = list(cols.x)
        _require(path, x_names, found, "observations, --x-cols", "--x-cols")
    else:
        x_names = _default_x(path, frame, [c for c in found if c != u_name
                                           and c not in z_names and c not in seq_names],
                             u_name, u_values if kind in ("labels", "categories") else None)
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
    if u_name is not None:
        arrays["u"] = u_values
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


def _default_x(path, frame, candidates, u_name, groups):
    """The default observed columns: the numeric ones, less those that look like ids
    (:func:`id_like_columns`, with a warning naming them and ``--x-cols``); a text column of
    numbers with a stray text cell is an error, a text column is left out (named in the
    warning too)."""
    import pandas as pd

    numeric, text = [], []
    for c in candidates:
        col = frame[c]
        if _mostly_numbers(col):
            if _unparsed(col).any():
                raise _stray_cells_error(path, col, c, "observations, by default every "
                                                       "numeric column")
            numeric.append(c)
        elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            numeric.append(c)
        else:
            text.append(c)
    ids = id_like_columns(frame, numeric, groups)
    x_names = [c for c in numeric if c not in ids]
    if not x_names:
        raise InputError(
            f"{path}: no numeric column besides the auxiliary column {u_name!r}"
            + (f" but the id-like column(s) {', '.join(ids)}" if ids else "")
            + f"; columns found: {_listing(list(frame.columns))}. Name the observed columns "
            "with --x-cols."
        )
    if ids:
        why = "; ".join(f"{c!r}: {reason}" for c, reason in ids.items())
        warnings.warn(
            f"{path}: left out of the default observed columns, as they look like integer ids "
            f"or counters, not measurements: {why}. To use them, name every observed column "
            f"with --x-cols (here --x-cols {_listing(x_names + list(ids), 12, ' ')}).",
            stacklevel=4)
    if text:
        warnings.warn(f"{path}: text column(s) {', '.join(text)} left out of the observed "
                      "columns (not numbers).", stacklevel=4)
    return x_names


def _as_sequences(path, frame, seq_name: str, time_name: str | None, arrays: dict):
    """Long-format rows grouped into equal-length sequences: ``(B, T, ...)`` arrays (sorted by
    sequence id, then by ``time_name`` or row order) and the ids in that order."""
    import pandas as pd

    col = frame[seq_name]
    if col.isna().any():
        rows = np.flatnonzero(col.isna().to_numpy())
        raise InputError(f"{path}: the sequence column {seq_name!r} has {len(rows)} missing "
                         f"value(s) ({_rows_text(path, rows)}); give every row the id of its "
                         "sequence.")
    codes, ids = pd.factorize(col, sort=True)
    counts = np.bincount(codes)
    if counts.min() != counts.max():
        short = ids[int(np.argmin(counts))]
        raise InputError(
            f"{path}: the sequences in column {seq_name!r} have {counts.min()} to "
            f"{counts.max()} steps (e.g. {_cell(short)!r} has {counts.min()}); the sequence models "
            f"need sequences of one length: cut them to {counts.min()} steps (e.g. "
            f"df.groupby({seq_name!r}).head({counts.min()})) or split the longer ones.")
    if time_name is not None:
        t = _numeric_column(path, frame, time_name, "step order")
        order = np.lexsort((t, codes))
        dup = (np.diff(codes[order]) == 0) & (np.diff(t[order]) == 0)
        if dup.any():
            bad = ids[codes[order][1:][dup][0]]
            raise InputError(f"{path}: sequence {_cell(bad)!r} has two rows at the same "
                             f"{time_name!r}; give every step of a sequence its own time.")
    else:
        order = np.argsort(codes, kind="stable")
    B, T = len(ids), int(counts[0])
    out = {k: v[order].reshape(B, T, *v.shape[1:]) for k, v in arrays.items()}
    if "u" in out and out["u"].ndim == 3 and out["u"].shape[-1] == 1:
        out["u"] = out["u"]      # continuous u: refused by the sequence family, named there
    return out, tuple(v.item() if hasattr(v, "item") else v for v in ids)
