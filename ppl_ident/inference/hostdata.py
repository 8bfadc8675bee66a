"""Observations that stay on the host (a NumPy memory map of a ``.npy`` file on disk) while
a compiled fit runs: each step gathers only its minibatch's rows.

Models and guides index the data as ``x[idx]`` with the ``obs`` plate's subsample indices.
:class:`HostRows` answers that indexing inside ``jit`` with a host callback
(``jax.pure_callback``) that reads those rows from the array and returns them as float32, so
the device never holds the whole data set and the host reads ``batch x d`` values per step.
The indices are drawn exactly as for data in memory, so a fit on a memory-mapped file equals
the fit on the same data in memory with the same seed (``tests/inference/test_hostdata.py``).

A ``HostRows`` is a pytree without leaves: ``jit`` sees it as a constant of the traced
program (hashed by identity), so the array is never copied into the computation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["HostRows", "host_rows", "on_disk"]


def on_disk(x) -> bool:
    """Whether ``x`` is a NumPy memory map (rows are read from disk as they are used)."""
    return isinstance(x, np.memmap) or isinstance(getattr(x, "base", None), np.memmap)


class HostRows:
    """Rows of a host array, gathered by ``x[idx]`` inside ``jit`` through a host callback.

    Parameters
    ----------
    array : array ``(N, ...)``
        A NumPy array or memory map (any float dtype; rows are returned as float32).

    Attributes
    ----------
    shape, ndim, dtype
        Those of the array (``dtype`` float32, what a gather returns).
    """

    def __init__(self, array):
        self.array = array
        self.shape = tuple(array.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)

    def _gather(self, idx):
        idx = np.asarray(idx)
        rows = np.asarray(self.array[idx.reshape(-1)], np.float32)
        return rows.reshape(idx.shape + self.shape[1:])

    def __getitem__(self, idx):
        idx = jnp.asarray(idx)
        if not jnp.issubdtype(idx.dtype, jnp.integer):
            raise TypeError("HostRows takes integer row indices (the plate's subsample)")
        out = jax.ShapeDtypeStruct(idx.shape + self.shape[1:], jnp.float32)
        # vmapped over restarts, the callback gets the stacked indices at once
        return jax.pure_callback(self._gather, out, idx, vmap_method="expand_dims")

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return f"HostRows(shape={self.shape})"


jax.tree_util.register_pytree_node(HostRows, lambda h: ((), h), lambda h, _: h)


def host_rows(x):
    """``x`` wrapped in :class:`HostRows` when it is memory-mapped, else ``jnp.asarray(x)``."""
    if isinstance(x, HostRows):
        return x
    if on_disk(x):
        return HostRows(x)
    return jnp.asarray(x)
