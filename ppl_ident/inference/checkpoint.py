"""Checkpoints of a running fit, and stopping a fit cleanly on Ctrl-C.

A checkpoint is two files in the run directory, each written atomically (temporary file, then
rename), neither needing pickle:

``checkpoint.npz``
    the batched engine state of every restart (parameters, optimiser state with its step
    count, RNG key) under ``['state']...`` key paths, the per-step ``['losses']`` and
    ``['finite']`` records ``(R, step)``, and ``['step']``.
``checkpoint.json``
    human-readable facts: step, target steps, interval, stop reason, the data file and its
    SHA-256, and the command that resumes the run.

The ``.npz`` is the source of truth: were a crash to fall between the two renames, the step
stored in the ``.npz`` wins. Because the RNG key and the optimiser's step count (which drives
the learning-rate schedule) live inside the state, and chunk boundaries sit at fixed absolute
steps (:func:`ppl_ident.inference.fit.chunk_schedule`), a fit resumed from a checkpoint ends
bit-identical to an uninterrupted one on the same machine.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import zipfile
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from ppl_ident.errors import InputError
from ppl_ident.files import atomic_write_json
from ppl_ident.pytrees import save_tree, tree_from_arrays

__all__ = ["CHECKPOINT_NPZ", "CHECKPOINT_JSON", "Checkpoint", "save_checkpoint",
           "load_checkpoint", "has_checkpoint", "file_sha256", "StopFlag", "stop_on_sigint"]

CHECKPOINT_NPZ = "checkpoint.npz"
CHECKPOINT_JSON = "checkpoint.json"
FORMAT = 1


class Checkpoint(NamedTuple):
    """A restored checkpoint.

    Attributes
    ----------
    step : int
        Steps completed.
    states : pytree
        Batched engine state, leading restart axis ``R``.
    losses : float ``(R, step)``
    finite : bool ``(R, step)``
    meta : dict
        The contents of ``checkpoint.json``.
    """

    step: int
    states: object
    losses: np.ndarray
    finite: np.ndarray
    meta: dict


def save_checkpoint(directory, step: int, states, losses, finite, meta: dict | None = None):
    """Write ``checkpoint.npz`` then ``checkpoint.json`` into ``directory`` atomically.

    Parameters
    ----------
    directory : path
    step : int
        Steps completed; ``losses`` and ``finite`` must have ``step`` columns.
    states : pytree
        Batched engine state (``FitResult.states``).
    losses, finite : ``(R, step)``
    meta : dict, optional
        JSON-able facts stored in ``checkpoint.json`` (``step`` and ``format`` are added).

    Returns
    -------
    Path of ``checkpoint.npz``.
    """
    directory = Path(directory)
    losses, finite = np.asarray(losses, np.float32), np.asarray(finite, bool)
    if losses.shape[-1] != step or finite.shape != losses.shape:
        raise ValueError(f"records of shape {losses.shape}/{finite.shape} do not cover {step} steps")
    path = save_tree(directory / CHECKPOINT_NPZ, {
        "state": states, "losses": losses, "finite": finite, "step": np.int64(step),
    })
    atomic_write_json(directory / CHECKPOINT_JSON, {**(meta or {}), "format": FORMAT,
                                                    "step": int(step)})
    return path


def has_checkpoint(directory) -> bool:
    """Whether ``directory`` holds a checkpoint."""
    return (Path(directory) / CHECKPOINT_NPZ).is_file()


def load_checkpoint(directory, template) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    directory : path
    template : pytree
        The batched state's structure (e.g. from ``jax.eval_shape``); shapes are checked.

    Raises
    ------
    InputError
        No checkpoint, or a damaged or mismatched one.
    """
    directory = Path(directory)
    npz_path, json_path = directory / CHECKPOINT_NPZ, directory / CHECKPOINT_JSON
    if not npz_path.is_file():
        raise InputError(
            f"{directory} holds no checkpoint ({CHECKPOINT_NPZ}); a run can be resumed only if it "
            "was started with --checkpoint-every K or stopped with Ctrl-C."
        )
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(json_path.read_text()) if json_path.is_file() else {}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"Cannot read the checkpoint in {directory} ({err}); it is damaged. "
                         "Start the fit again.") from err
    for key in ("['losses']", "['finite']", "['step']"):
        if key not in arrays:
            raise InputError(f"{npz_path} lacks {key}; it is not a ppl_ident checkpoint.")
    step = int(arrays["['step']"])
    states = tree_from_arrays(arrays, {"state": template})["state"]
    losses, finite = arrays["['losses']"], arrays["['finite']"].astype(bool)
    if losses.shape[-1] != step or finite.shape != losses.shape:
        raise InputError(f"{npz_path} is inconsistent (records {losses.shape} for step {step}); "
                         "it is damaged. Start the fit again.")
    return Checkpoint(step, states, losses, finite, {**meta, "step": step})


def file_sha256(path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a data file or data directory (``.npy`` / zarr), read in chunks (identifies
    the data a run was fitted to); see :func:`ppl_ident.data.io.data_sha256`."""
    from ppl_ident.data.io import data_sha256

    return data_sha256(path, chunk)


class StopFlag:
    """Set by :func:`stop_on_sigint` when Ctrl-C arrives; checked between compiled chunks."""

    def __init__(self):
        self.signal: int | None = None

    def __bool__(self):
        return self.signal is not None


@contextlib.contextmanager
def stop_on_sigint():
    """Turn the first Ctrl-C (SIGINT) into a request to stop at the end of the current chunk.

    Yields a :class:`StopFlag`. A second Ctrl-C raises ``KeyboardInterrupt`` at once (the
    previous handler is restored by the first one). Outside the main thread, where Python
    cannot install signal handlers, the flag is never set.

    Examples
    --------
    >>> with stop_on_sigint() as stop:
    ...     bool(stop)
    False
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        flag.signal = signum
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def state_template(engine, keys, x, u):
    """Structure, shapes and dtypes of the batched state ``vmap(engine.init)`` would make
    (no computation: ``jax.eval_shape``)."""
    return jax.eval_shape(jax.vmap(engine.init, in_axes=(0, None, None)), keys, x, u)
