"""Data parallelism: the SVI step's minibatch split over devices.

With several devices (GPUs, or CPU host devices made with
``XLA_FLAGS=--xla_force_host_platform_device_count=K``) an SVI step runs data-parallel: the
minibatch indices are drawn as usual and constrained to a :class:`~jax.sharding.NamedSharding`
over a one-axis :class:`~jax.sharding.Mesh` (axis ``"batch"``), while the data and the
parameters are replicated. XLA's partitioner then gathers, encodes, decodes and scores each
device's share of the rows on that device and sums the loss and the gradients across devices
(one all-reduce per step); the optimiser update is replicated. The result is the single-device
step's, up to the order of a floating-point sum (``tests/inference/test_sharding.py``).

Only the draw of the minibatch is annotated; models and guides stay plain NumPyro functions.
The full-data passes after a fit (restart selection, encoding) run on the default device.
"""

from __future__ import annotations

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ppl_ident.errors import InputError

__all__ = ["AXIS", "batch_mesh", "constrain_batch", "replicate", "check_batch_size"]

#: The mesh axis the minibatch is split over.
AXIS = "batch"


def batch_mesh(devices: int | None = None) -> Mesh | None:
    """A one-axis mesh over the first ``devices`` devices JAX sees (default: all of them);
    None when that is a single device (no sharding: the step is the plain one)."""
    available = jax.devices()
    count = len(available) if devices is None else int(devices)
    if count < 1 or count > len(available):
        raise InputError(f"devices must be between 1 and the {len(available)} device(s) JAX sees "
                         f"({available[0].platform}), got {devices}.")
    if count == 1:
        return None
    return Mesh(available[:count], (AXIS,))


def check_batch_size(batch_size: int | None, mesh: Mesh | None) -> None:
    """Refuse a minibatch that does not split evenly over the mesh (the fix named)."""
    if mesh is None or batch_size is None:
        return
    count = mesh.devices.size
    if batch_size % count:
        lower = batch_size - batch_size % count
        raise InputError(f"the minibatch of {batch_size} rows does not split over {count} "
                         f"devices: pass --batch-size {max(lower, count)} (a multiple of "
                         f"{count}), or --devices 1.")


def constrain_batch(idx, mesh: Mesh | None):
    """The minibatch indices ``idx`` (leading axis: rows) split over the mesh's devices."""
    if mesh is None or idx is None:
        return idx
    spec = PartitionSpec(AXIS, *([None] * (idx.ndim - 1)))
    return jax.lax.with_sharding_constraint(idx, NamedSharding(mesh, spec))


def replicate(tree, mesh: Mesh | None):
    """Every array of ``tree`` placed on all of the mesh's devices (unchanged without one)."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
