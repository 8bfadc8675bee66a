"""Safe file handling: atomic writes, no pickle, output directories that are never clobbered."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ppl_ident.errors import InputError

__all__ = ["atomic_write_bytes", "atomic_write_stream", "atomic_savez", "atomic_write_json",
           "check_output_dir", "prepare_output_dir",
           "available_memory", "check_memory", "MEMORY_FRACTION"]

#: Inputs whose arrays need more than this share of the available memory are refused: a fit
#: holds the file's arrays, their float32 copies and the device copies (about three copies).
MEMORY_FRACTION = 0.5


def _default_mode() -> int:
    # mkstemp creates 0600 files; outputs should get the usual permissions (0666 & ~umask)
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _default_mode()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    A reader never sees a half-written file, and a crash leaves the old file (if any) intact.
    """
    return atomic_write_stream(path, lambda fh: fh.write(data))


def atomic_write_stream(path: str | os.PathLike, write) -> Path:
    """Call ``write(fh)`` on a temporary binary file beside ``path``, then rename it into
    place (as :func:`atomic_write_bytes`, for output written piece by piece)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_savez(path: str | os.PathLike, **arrays) -> Path:
    """``np.savez`` (uncompressed, no object arrays) written atomically."""
    buf = io.BytesIO()
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"refusing to save object array {key!r}: it would need pickle")
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented, strict JSON, atomically.

    NaN and infinities (which strict JSON readers reject) are written as ``null``.
    """
    text = json.dumps(_strict(obj), indent=2, sort_keys=False, default=_json_default,
                      allow_nan=False)
    return atomic_write_bytes(path, (text + "\n").encode())


def _strict(value):
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "__array__"):
        value = np.asarray(value)
        value = value.item() if value.ndim == 0 else _strict(value.tolist())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "tolist"):
        return np.asarray(value).tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def prepare_output_dir(path: str | os.PathLike, force: bool = False) -> Path:
    """Create an output directory, refusing to reuse a non-empty one unless ``force``.

    With ``force`` the directory is reused and files are replaced one by one as they are
    written (atomically); nothing is deleted up front.
    """
    path = check_output_dir(path, force)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_output_dir(path: str | os.PathLike, force: bool = False) -> Path:
    """Raise :class:`InputError` when :func:`prepare_output_dir` would refuse ``path``
    (before a long job starts); creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"Output path {path} exists and is a file; choose a directory path.")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise InputError(
            f"Output directory {path} already exists and is not empty; choose a new --out "
            "directory, or pass --force to write into it (existing files with the same names "
            "are replaced)."
        )
    return path


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown platform: do not refuse


def check_memory(nbytes: int, what: str, fix: str) -> None:
    """Raise :class:`InputError` when ``nbytes`` exceeds :data:`MEMORY_FRACTION` of the
    available memory, before anything is allocated.

    Examples
    --------
    >>> check_memory(1024, "x", "subsample it")
    """
    avail = available_memory()
    if nbytes > MEMORY_FRACTION * avail:
        raise InputError(
            f"{what} needs {_human(nbytes)} of memory but only {_human(avail)} is available "
            f"(at most {MEMORY_FRACTION:.0%} of it is accepted, to leave room for the copies "
            f"a fit makes); {fix}"
        )


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"
