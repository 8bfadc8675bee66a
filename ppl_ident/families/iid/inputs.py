"""The i.i.d. family's inputs: domain labels re-indexed for the model."""

from __future__ import annotations

import numpy as np

from ppl_ident.families.base import relabel

__all__ = ["prepare_inputs"]


def prepare_inputs(u, labels=None):
    """Re-index integer domain labels ``(N,)`` to ``0..U-1``; continuous ``u`` ``(N, k)``
    passes through as float32.

    Returns ``(u_model, labels)``. With ``labels`` given (a fitted model's), labels not seen in
    training raise :class:`~ppl_ident.errors.InputError`.
    """
    if u is None:
        return None, None
    u = np.asarray(u)
    if u.ndim != 1:
        return u.astype(np.float32), None
    return relabel(u, labels)
