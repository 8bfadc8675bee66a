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

Data on disk, for data sets larger than memory, map onto the same keys:

a ``.npy`` directory
    ``DIR/x.npy``, ``DIR/u.npy`` and optionally ``DIR/z.npy`` (and ``truth_*.npy``), opened
    with ``np.load(mmap_mode="r")``: nothing is read until used. A float32 ``x`` (and ``z``)
    stays on disk: a fit gathers each minibatch's rows from the memory map, evaluation reads
    a bounded subset, ``encode`` reads chunks. Other dtypes are converted to one float32
    copy in memory. Write one with :func:`save_dataset` (a path without suffix or ending in
    ``.npy``) or ``np.save`` / ``np.lib.format.open_memmap``.
a zarr (format 3) group
    A directory with arrays ``x``, ``u`` and optionally ``z`` (``zarr.open_group(path)``);
    read chunk by chunk into memory (one float32 copy of ``x``).

Validation of both streams over fixed-size blocks of rows (non-finite values, labels), with
the messages of the ``.npz`` path.
"""

from __future__ import annotations

import difflib
import hashlib
import zipfile
from pathlib import Path

import numpy as np

from ppl_ident.data.mixing import mixing_from_arrays, mixing_to_arrays
from ppl_ident.data.published import (PublishedTruth, published_truth_from_arrays,
                                      published_truth_to_arrays)
from ppl_ident.data.sequences import (SequenceTruth, sequence_truth_from_arrays,
                                      sequence_truth_to_arrays)
from ppl_ident.data.simulate import Dataset, GroundTruth
from ppl_ident.data.tables import Columns, read_table_arrays, table_format
from ppl_ident.errors import InputError
from ppl_ident.files import atomic_savez, check_memory

__all__ = ["load_dataset", "read_data", "save_dataset", "validate_dataset", "truth_to_arrays",
           "truth_from_arrays", "scan_npz", "Columns", "data_dir_format", "data_sha256",
           "VALIDATION_ROWS"]

#: Rows per block when values are checked (non-finite, labels) or converted, so that
#: validating a memory-mapped file never holds more than one block in memory.
VALIDATION_ROWS = 1 << 16


def truth_to_arrays(truth: GroundTruth) -> dict:
    """Flatten a :class:`GroundTruth` (without ``z``) into ``truth_*`` arrays."""
    if isinstance(truth, SequenceTruth):
        return sequence_truth_to_arrays(truth)
    if isinstance(truth, PublishedTruth):
        return published_truth_to_arrays(truth)
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
    if "truth_published" in arrays:
        return published_truth_from_arrays(arrays, z)
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
    if path.suffix not in (".npz", ".npy"):
        raise InputError(f"Data files use the .npz format (or a directory of .npy files, named "
                         f"like {path.with_suffix('.npy')}/); name the output like "
                         f"{path.with_suffix('.npz')}.")
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another name or pass --force to replace it.")
    arrays = {"x": dataset.x}
    if dataset.u is not None:
        arrays["u"] = dataset.u
    if dataset.z is not None:
        arrays["z"] = dataset.z
    if truth is not None:
        arrays.update(truth_to_arrays(truth))
    if path.suffix == ".npy":
        return _save_npy_dir(path, arrays, overwrite)
    return atomic_savez(path, **arrays)


def _save_npy_dir(path: Path, arrays: dict, overwrite: bool) -> Path:
    """A ``.npy`` directory (one file per key), written beside and renamed into place."""
    import os
    import shutil
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for key, value in arrays.items():
            value = np.asarray(value)
            if value.dtype == object:
                raise TypeError(f"refusing to save object array {key!r}: it would need pickle")
            np.save(tmp / f"{key}.npy", value, allow_pickle=False)
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists() and overwrite:
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


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
        kind = data_dir_format(path)
        if kind is None:
            found = sorted(p.name for p in path.iterdir())[:10]
            raise InputError(
                f"{path} is a directory but not a data directory: it needs x.npy and u.npy "
                f"(optional z.npy), or to be a zarr group with arrays x, u and z (found: "
                f"{', '.join(found) or 'nothing'}). Pass a .npz, .csv or .parquet file, or "
                "write the arrays with np.save(DIR / 'x.npy', x) etc."
            )
        if columns is not None and not columns.is_empty():
            raise InputError(
                f"{path} is a {kind} directory, whose arrays are named x, u and z; --u-col, "
                "--u-kind, --x-cols and --z-cols apply to CSV and Parquet tables only. Drop "
                "them."
            )
        arrays = _read_npy_dir(path) if kind == "npy" else _read_zarr(path)
        dataset = validate_dataset(arrays, source=str(path))
        return dataset, _truth(path, arrays, dataset), None
    if table_format(path) is not None:
        arrays, resolved = read_table_arrays(path, columns)
        return validate_dataset(arrays, source=str(path)), None, resolved
    if columns is not None and not columns.is_empty():
        raise InputError(
            f"{path} is an .npz file, whose arrays are named x, u and z; --u-col, --u-kind, "
            "--x-cols and --z-cols apply to CSV and Parquet tables only. Drop them, or rename "
            "the arrays in the file."
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
    return dataset, _truth(path, arrays, dataset), None


def _truth(path, arrays, dataset):
    try:
        return truth_from_arrays({k: np.asarray(v) for k, v in arrays.items()
                                  if k.startswith("truth_")}, dataset.z)
    except (KeyError, ValueError, TypeError, IndexError) as err:
        raise InputError(
            f"{path}: the simulator's ground-truth arrays (truth_*) are malformed ({err}); "
            "remove the truth_* keys or rewrite the file with `ppl-ident simulate`."
        ) from err


def data_dir_format(path) -> str | None:
    """``"npy"`` for a directory holding ``x.npy``, ``"zarr"`` for a zarr group (its
    ``zarr.json`` or ``.zgroup``), None otherwise (a run directory, say)."""
    path = Path(path)
    if not path.is_dir():
        return None
    if (path / "x.npy").is_file():
        return "npy"
    if (path / "zarr.json").is_file() or (path / ".zgroup").is_file():
        return "zarr"
    return None


def _read_npy_dir(path: Path) -> dict:
    """The arrays of a ``.npy`` directory, memory-mapped (nothing read yet)."""
    arrays = {}
    for file in sorted(path.glob("*.npy")):
        name = file.stem
        if name not in ("x", "u", "z") and not name.startswith("truth_"):
            continue
        try:
            arr = np.load(file, mmap_mode="r", allow_pickle=False)
        except ValueError as err:
            raise InputError(
                f"{file} could not be memory-mapped ({err}); it may hold objects (pickle, "
                "never loaded) or be truncated. Save plain numeric arrays with "
                f"np.save({file.name!r}, array)."
            ) from err
        except OSError as err:
            raise InputError(f"{file} is not a readable .npy file ({err}); write it with "
                             f"np.save.") from err
        # a 0-d array cannot be memory-mapped usefully: small truth_* scalars are read
        arrays[name] = np.asarray(arr) if arr.ndim == 0 else arr
    return arrays


def _read_zarr(path: Path) -> dict:
    """The arrays of a zarr group as lazy zarr arrays (read block by block on validation)."""
    try:
        import zarr
    except ImportError as err:  # a dependency, but say what to do if it is missing
        raise InputError(f"{path} is a zarr group, which needs the zarr package ({err}); "
                         "pip install 'zarr>=3'.") from None
    try:
        group = zarr.open_group(path, mode="r")
        return {name: arr for name, arr in group.arrays()}
    except Exception as err:  # zarr raises many kinds for a damaged store
        raise InputError(f"{path} is not a readable zarr group ({type(err).__name__}: {err}); "
                         "write it with zarr.open_group(path, mode='w') and create_array "
                         "for x, u and z.") from err


def data_sha256(path, chunk: int = 1 << 22) -> str:
    """SHA-256 identifying a data file, or a ``.npy`` / zarr directory (its files' relative
    paths and contents, in sorted order), read in chunks."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if not path.is_dir() else sorted(
        p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):  # noqa: B023
                h.update(block)
    return h.hexdigest()


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


def _blocks(arr, rows: int | None = None):
    """``arr`` in blocks of rows along its first axis, each read into memory (a memory map or
    a zarr array is read block by block)."""
    rows = max(1, (rows or VALIDATION_ROWS))
    if np.ndim(arr) == 0:
        yield np.asarray(arr)
        return
    for start in range(0, arr.shape[0], rows):
        yield np.asarray(arr[start:start + rows])


def _numeric(name, arr, source):
    if np.dtype(arr.dtype).kind not in "fiub":
        raise InputError(
            f"{source}: '{name}' has dtype {arr.dtype}; it must be numeric. Convert it with "
            f"{name}.astype('float32') before saving."
        )
    if np.dtype(arr.dtype).kind != "f":
        return
    bad, big = 0, False
    for block in _blocks(arr):
        bad += int(block.size - np.count_nonzero(np.isfinite(block)))
        if not bad and block.dtype.itemsize > 4 and block.size:
            big = big or bool(np.max(np.abs(block)) > _F32_MAX)
    if bad:
        raise InputError(
            f"{source}: '{name}' contains {bad} NaN or infinite value(s); drop or impute those "
            "rows before fitting."
        )
    if big:
        raise InputError(
            f"{source}: '{name}' has values beyond the float32 range (|value| > 3.4e38), "
            "which become infinite in a fit; rescale it (e.g. standardise each column)."
        )


def _float32(arr):
    """``arr`` as float32: a float32 memory map stays on disk (no copy); anything else becomes
    one float32 array in memory, converted block by block."""
    if isinstance(arr, np.ndarray) and arr.dtype == np.float32:
        return arr
    if isinstance(arr, np.ndarray) and not isinstance(arr, np.memmap):
        return arr.astype(np.float32)
    out = np.empty(arr.shape, np.float32)
    start = 0
    for block in _blocks(arr):
        out[start:start + len(block)] = block
        start += len(block)
    return out


def _labels(arr):
    """Integer labels ``(N,)`` in memory (int32 after the checks), read block by block."""
    return np.concatenate(list(_blocks(arr))) if not isinstance(arr, np.ndarray) \
        or isinstance(arr, np.memmap) else arr


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
    x = _lazy(arrays["x"])
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
        u = _lazy(u)
        _numeric("u", u, source)
        u = _labels(u)  # u is small beside x (one label or k values per row): in memory
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
        z = _lazy(z)
        _numeric("z", z, source)
        if z.ndim != x.ndim or z.shape[:-1] != lead or z.shape[-1] == 0:
            raise InputError(
                f"{source}: 'z' has shape {z.shape} but 'x' has shape {x.shape}; the true latents "
                f"must have shape {lead + ('n',)}."
            )
        z = _float32(z)
    return Dataset(_float32(x), u, z)


def _lazy(arr):
    """An array-like with ``shape``/``dtype`` and row slicing, read as late as possible: NumPy
    arrays and memory maps as they are, zarr arrays untouched, anything else as an array."""
    if isinstance(arr, np.ndarray) or (hasattr(arr, "shape") and hasattr(arr, "dtype")
                                       and hasattr(arr, "__getitem__")
                                       and not hasattr(arr, "__jax_array__")
                                       and type(arr).__module__.startswith("zarr")):
        return arr
    return np.asarray(arr)
