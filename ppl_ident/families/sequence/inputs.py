"""The sequence family's inputs: the temporal iVAE's segment or domain labels ``(B, T)``."""

from __future__ import annotations

import numpy as np

from ppl_ident.errors import InputError
from ppl_ident.families.base import relabel

__all__ = ["prepare_sequence_inputs", "sequences_per_batch"]


def sequences_per_batch(batch_size: int, n_seq: int, length: int) -> int:
    """Sequences per minibatch: ``batch_size`` time steps, at least one sequence."""
    return int(min(n_seq, max(1, batch_size // length)))


def prepare_sequence_inputs(u, model: str, labels=None):
    """Re-index integer labels ``(B, T)`` to ``0..U-1`` for the temporal iVAE.

    Returns ``(u_model, labels)``; ``(None, None)`` for the models that ignore ``u``.
    """
    if model != "tivae":
        return None, None
    if u is None:
        raise InputError(
            "The temporal iVAE needs integer labels u of shape (B, T) (segment or domain of "
            "every step); this file has none. Use --model regime (hidden regimes) or --model "
            "stationary."
        )
    u = np.asarray(u)
    if u.ndim != 2:
        raise InputError(
            f"Sequence models take integer labels u of shape (B, T); got {u.shape}. Continuous "
            "auxiliary variables are not supported for sequences yet: discretise them."
        )
    return relabel(u, labels)
