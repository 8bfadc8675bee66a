"""The ``.npz`` data contract: reading, validating and writing data files.

Keys (loaded with ``allow_pickle=False``):

``x``
    float ``(N, d)``; for sequences ``(B, T, d)``.
``u``
    int domain labels ``(N,)`` (non-negative), or float ``(N, k)`` continuous auxiliary
    variables; for sequences ``(B, T)`` and optional.
``z`` (optional)
    true latents ``(N, n)`` / ``(B, T, n)``; evaluation only.
``truth_*`` (optional, written by the simulator)
    ``truth_domain_loc``, ``truth_domain_scale`` ``(U, n)``; ``truth_mixing_weights``
    ``(L, n, n)``; ``truth_mixing_projection`` ``(n, d)``; ``truth_mixing_activation``,
    ``truth_source`` (strings); ``truth_mixing_slope``, ``truth_df``, ``truth_noise_std``.
"""

from __future__ import annotations

import difflib
import zipfile
from pathlib import Path

import numpy as np

from ppl_ident.data.mixing import mixing_from_arrays, mixing_to_arrays
from ppl_ident.data.sequences import (SequenceTruth, sequence_truth_from_arrays,
                                      sequence_truth_to_arrays)
from ppl_ident.data.simulate import Dataset, GroundTruth
from ppl_ident.data.tables import Columns, read_table_arrays, table_format
from ppl_ident.errors import InputError
from ppl_ident.files import atomic_savez, check_memory

__all__ = ["load_dataset", "read_data", "save_dataset", "validate_dataset", "truth_to_arrays",
           "truth_from_arrays", "scan_npz", "Columns"]


def truth_to_arrays(truth: GroundTruth) -> dict:
    """Flatten a :class:`GroundTruth` (without ``z``) into ``truth_*`` arrays."""
    if isinstance(truth, SequenceTruth):
        return sequence_truth_to_arrays(truth)
    return {
        "truth_domain_loc": np.asarray(truth.domain_loc),
        "truth_domain_scale": np.asarray(truth.domain_scale),
        **mixing_to_arrays(truth.mixing),
        "truth_source": np.array(truth.source),
        "truth_df": np.array(truth.df),
        "truth_noise_std": np.array(truth.noise_std),
    }


def truth_from_arrays(arrays, z) -> GroundTruth | SequenceTruth | None:
    """Inverse of :func:`truth_to_arrays`; None when the file has no mixing."""
    if "truth_mixing_weights" not in arrays:
        return None
    if "truth_kind" in arrays:
        return sequence_truth_from_arrays(arrays, z)
    mixing = mixing_from_arrays(arrays)
    return GroundTruth(
        z=z,
        domain_loc=np.asarray(arrays.get("truth_domain_loc", np.zeros((0,))), np.float32),
        domain_scale=np.asarray(arrays.get("truth_domain_scale", np.zeros((0,))), np.float32),
        mixing=mixing,
        source=str(arrays.get("truth_source", "gaussian")),
        df=float(arrays.get("truth_df", 3.0)),
        noise_std=float(arrays.get("truth_noise_std", 0.0)),
    )


def save_dataset(path, dataset: Dataset, truth: GroundTruth | None = None,
                 overwrite: bool = False) -> Path:
    """Write a dataset (and the simulator's ground truth) as ``.npz``, atomically.

    Refuses to replace an existing file unless ``overwrite``.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"Data files use the .npz format; name the output like {path}.npz.")
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another name or pass --force to replace it.")
    arrays = {"x": dataset.x}
    if dataset.u is not None:
        arrays["u"] = dataset.u
    if dataset.z is not None:
        arrays["z"] = dataset.z
    if truth is not None:
        arrays.update(truth_to_arrays(truth))
    return atomic_savez(path, **arrays)


def load_dataset(path, columns: Columns | None = None) -> tuple[Dataset, GroundTruth | None]:
    """Read and validate a data file: ``.npz``, or a CSV / Parquet table.

    Parameters
    ----------
    path : path
    columns : Columns, optional
        For a table: which columns are ``u``, ``x`` and ``z`` (see
        :mod:`ppl_ident.data.tables`); refused for an ``.npz`` file. :func:`read_data`
        also returns the mapping it resolved.

    Returns
    -------
    dataset : Dataset
        ``x`` float32, ``u`` int32 labels or float32 ``(N, k)`` (None for sequences without
        ``u``), ``z`` float32 or None.
    truth : GroundTruth or None
        Present when the file was written by the simulator.

    Raises
    ------
    InputError
        Missing file or key, unreadable or pickled content, shapes that disagree,
        non-finite values, invalid domain labels. The message names the fix.
    """
    dataset, truth, _ = read_data(path, columns)
    return dataset, truth


def read_data(path, columns: Columns | None = None
              ) -> tuple[Dataset, GroundTruth | None, Columns | None]:
    """Read and validate a data file, dispatching on its suffix: ``.csv``, ``.parquet`` /
    ``.pq`` are tables (:func:`ppl_ident.data.tables.read_table_arrays`), anything else an
    ``.npz`` archive.

    Returns
    -------
    dataset : Dataset
    truth : GroundTruth or None
        Only ``.npz`` files written by the simulator carry it.
    columns : Columns or None
        For a table, the column mapping resolved (record it to read another table the same
        way); None for ``.npz``.

    Raises
    ------
    InputError
        As :func:`load_dataset`; for tables also a missing column (the message lists the
        columns found), or table options given for an ``.npz`` file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"Data file {path} does not exist. Check the path, or create a file with "
            f"`ppl-ident simulate --out {path}`."
        )
    if path.is_dir():
        raise InputError(f"{path} is a directory; pass the path of a .npz, .csv or .parquet "
                         "data file.")
    if table_format(path) is not None:
        arrays, resolved = read_table_arrays(path, columns)
        return validate_dataset(arrays, source=str(path)), None, resolved
    if columns is not None and not columns.is_empty():
        raise InputError(
            f"{path} is an .npz file, whose arrays are named x, u and z; --u-col, --x-cols and "
            "--z-cols apply to CSV and Parquet tables only. Drop them, or rename the arrays "
            "in the file."
        )
    _check_members(path, scan_npz(path))
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as err:  # object arrays were refused above; this is a corrupt array
        raise InputError(
            f"{path} could not be read ({err}); it may be truncated or corrupt. Save plain "
            "numeric arrays with np.savez(path, x=..., u=...)."
        ) from err
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise InputError(
            f"{path} is not a readable .npz file ({err}); write it with np.savez(path, x=x, u=u)."
        ) from err
    dataset = validate_dataset(arrays, source=str(path))
    try:
        truth = truth_from_arrays(arrays, dataset.z)
    except (KeyError, ValueError, TypeError, IndexError) as err:
        raise InputError(
            f"{path}: the simulator's ground-truth arrays (truth_*) are malformed ({err}); "
            "remove the truth_* keys or rewrite the file with `ppl-ident simulate`."
        ) from err
    return dataset, truth, None


def scan_npz(path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shapes and dtypes of the arrays in an ``.npz`` file, read from the ``.npy`` headers
    without loading any data.

    Raises
    ------
    InputError
        Not a zip archive, a member that is not a ``.npy`` array (e.g. a pickle), or a
        malformed header.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise InputError(
            f"{path} is not a readable .npz file (not a zip archive); write data files with "
            "np.savez(path, x=x, u=u), or as a table named .csv or .parquet."
        )
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with zf.open(info) as fh:
                    try:
                        version = np.lib.format.read_magic(fh)
                        if version == (1, 0):
                            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                        else:
                            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                    except (ValueError, SyntaxError, TypeError, KeyError) as err:
                        raise InputError(
                            f"{path}: member {name!r} is not a NumPy array ({err}); it may be a "
                            "pickle, which is never loaded. Save plain numeric arrays with "
                            "np.savez(path, x=..., u=...)."
                        ) from None
                if any(int(n) < 0 for n in shape):
                    raise InputError(f"{path}: member {name!r} declares a negative shape {shape}; "
                                     "the file is corrupt. Write it again with np.savez.")
                out[name] = (tuple(int(n) for n in shape), dtype)
    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError) as err:
        raise InputError(
            f"{path} is not a readable .npz file ({err}); write it with np.savez(path, x=x, u=u)."
        ) from err
    return out


def _check_members(path, members):
    total = 0
    for name, (shape, dtype) in members.items():
        if dtype.hasobject:
            raise InputError(
                f"{path}: {name!r} is an object array, which would need pickle to load and could "
                "run code; save plain numeric arrays with np.savez(path, x=..., u=...)."
            )
        if name in ("x", "u", "z") or name.startswith("truth_"):
            total += int(np.prod(shape, dtype=object)) * dtype.itemsize
    check_memory(total, f"{path} (arrays {', '.join(sorted(members))})",
                 "subsample the data (e.g. keep every 10th row) or use a machine with more "
                 "memory.")


_F32_MAX = float(np.finfo(np.float32).max)
_I32_MAX = int(np.iinfo(np.int32).max)


def _numeric(name, arr, source):
    if arr.dtype.kind not in "fiub":
        raise InputError(
            f"{source}: '{name}' has dtype {arr.dtype}; it must be numeric. Convert it with "
            f"{name}.astype('float32') before saving."
        )
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise InputError(
            f"{source}: '{name}' contains {bad} NaN or infinite value(s); drop or impute those "
            "rows before fitting."
        )
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4 and arr.size \
            and np.max(np.abs(arr)) > _F32_MAX:
        raise InputError(
            f"{source}: '{name}' has values beyond the float32 range (|value| > 3.4e38), "
            "which become infinite in a fit; rescale it (e.g. standardise each column)."
        )


#: names people give the auxiliary variable, for the hint of a missing 'u'
_U_ALIASES = ("labels", "label", "domain", "domains", "domain_labels", "segment", "segments",
              "env", "environment", "aux", "c", "y")


def _found_keys(key: str, arrays) -> str:
    """`` (keys found: ...; did you mean 'X'?)`` for the message of a missing key."""
    found = [str(k) for k in arrays.keys() if arrays.get(k) is not None]
    if not found:
        return " (the file holds no arrays)"
    lower = {k.lower(): k for k in found}
    guess = lower.get(key)
    if guess is None and key == "u":
        guess = next((lower[a] for a in _U_ALIASES if a in lower), None)
    if guess is None:
        close = difflib.get_close_matches(key, [k for k in found if k not in ("x", "u", "z")],
                                          n=1, cutoff=0.6)
        guess = close[0] if close else None
    hint = f"; did you mean {guess!r}? Rename it to {key!r}" if guess else ""
    shown = ", ".join(found[:20]) + (", ..." if len(found) > 20 else "")
    return f" (keys found: {shown}{hint})"


def validate_dataset(arrays, source: str = "data") -> Dataset:
    """Check a mapping of arrays against the data contract and return a :class:`Dataset`."""
    if not hasattr(arrays, "get"):
        arrays = dict(zip(("x", "u", "z"), arrays))
    if "x" not in arrays or arrays.get("x") is None:
        raise InputError(f"{source}: no 'x' array{_found_keys('x', arrays)}; save the "
                         "observations under the key 'x'.")
    x = np.asarray(arrays["x"])
    _numeric("x", x, source)
    if x.ndim not in (2, 3) or x.size == 0:
        raise InputError(
            f"{source}: 'x' has shape {x.shape}; expected (N, d) for i.i.d. data or (B, T, d) "
            "for sequences, with at least one row."
        )
    seq = x.ndim == 3
    lead = x.shape[:-1]
    u = arrays.get("u")
    if u is None and not seq:
        raise InputError(
            f"{source}: no 'u' array{_found_keys('u', arrays)}. Save the auxiliary variable "
            "(integer domain labels of shape (N,), or continuous values of shape (N, k)) under "
            "the key 'u'."
        )
    if u is not None:
        u = np.asarray(u)
        _numeric("u", u, source)
        if u.shape[: len(lead)] != lead or u.ndim > len(lead) + 1:
            raise InputError(
                f"{source}: 'u' has shape {u.shape} but 'x' has shape {x.shape}; u must have one "
                f"entry per observation, shape {lead} (labels) or {lead + ('k',)} (continuous)."
            )
        if u.ndim == len(lead):
            if u.dtype.kind == "f" and not np.all(u == np.round(u)):
                raise InputError(
                    f"{source}: 'u' has non-integer values; domain labels must be integers. "
                    f"For a continuous auxiliary variable store it with shape {lead + (1,)}."
                )
            if np.any(u < 0):
                raise InputError(
                    f"{source}: 'u' has negative domain labels; use labels 0, 1, 2, ..."
                )
            if u.size and np.max(u) > _I32_MAX:
                raise InputError(
                    f"{source}: 'u' has domain labels above {_I32_MAX}; renumber the domains "
                    "0, 1, 2, ... (e.g. np.unique(u, return_inverse=True)[1])."
                )
            u = u.astype(np.int32)
        else:
            if u.shape[-1] == 0:
                raise InputError(
                    f"{source}: 'u' has shape {u.shape}, with no auxiliary variables; give at "
                    "least one column, or integer domain labels of shape (N,)."
                )
            u = u.astype(np.float32)
    z = arrays.get("z")
    if z is not None:
        z = np.asarray(z)
        _numeric("z", z, source)
        if z.ndim != x.ndim or z.shape[:-1] != lead or z.shape[-1] == 0:
            raise InputError(
                f"{source}: 'z' has shape {z.shape} but 'x' has shape {x.shape}; the true latents "
                f"must have shape {lead + ('n',)}."
            )
        z = z.astype(np.float32)
    return Dataset(x.astype(np.float32), u, z)
