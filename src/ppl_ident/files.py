"""Safe file handling: atomic writes, no pickle, output directories that are never clobbered."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ppl_ident.errors import InputError

__all__ = ["atomic_write_bytes", "atomic_savez", "atomic_write_json", "prepare_output_dir"]


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
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
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default)
    return atomic_write_bytes(path, (text + "\n").encode())


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
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"Output path {path} exists and is a file; choose a directory path.")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise InputError(
            f"Output directory {path} already exists and is not empty; choose a new --out "
            "directory, or pass --force to write into it (existing files with the same names "
            "are replaced)."
        )
    path.mkdir(parents=True, exist_ok=True)
    return path
