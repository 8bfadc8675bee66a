"""Saving and restoring pytrees of arrays without pickle.

Leaves are stored in an ``.npz`` under their key path (``['decoder$params'].layers[0].weight``),
and restored into a template of the same structure, which the caller rebuilds from the saved
configuration (typically with ``jax.eval_shape``, which costs no computation).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import jax
import numpy as np

from ppl_ident.errors import InputError
from ppl_ident.files import atomic_savez

__all__ = ["tree_to_arrays", "tree_from_arrays", "save_tree", "load_tree"]


def tree_to_arrays(tree) -> dict[str, np.ndarray]:
    """Flatten a pytree into ``{key path: numpy array}`` (None leaves are dropped)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def tree_from_arrays(arrays, template):
    """Rebuild a pytree shaped like ``template`` from :func:`tree_to_arrays` output."""
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, leaf in paths:
        key = jax.tree_util.keystr(path)
        if key not in arrays:
            raise InputError(
                f"Saved parameters lack {key}; they were written by a different model "
                "configuration. Refit, or load them with the configuration they came from."
            )
        value = np.asarray(arrays[key])
        if hasattr(leaf, "shape") and tuple(value.shape) != tuple(leaf.shape):
            raise InputError(
                f"Saved parameter {key} has shape {value.shape}, expected {tuple(leaf.shape)}; "
                "the configuration does not match the saved parameters."
            )
        leaves.append(jax.numpy.asarray(value, dtype=getattr(leaf, "dtype", None)))
    return jax.tree_util.tree_unflatten(treedef, [leaf for _, leaf in zip(paths, leaves)])


def save_tree(path, tree) -> Path:
    """Write a pytree of arrays to ``.npz`` atomically (no pickle)."""
    return atomic_savez(path, **tree_to_arrays(tree))


def load_tree(path, template):
    """Read a pytree written by :func:`save_tree` into the structure of ``template``."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"Cannot read {path} ({err}); the run directory is damaged.") from err
    return tree_from_arrays(arrays, template)
