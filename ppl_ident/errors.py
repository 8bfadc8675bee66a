"""Errors raised at the public boundary.

Every check of user input raises :class:`InputError` with a one-paragraph message that says
what is wrong *and how to fix it*. The CLI turns it into exit code 2 without a traceback.
"""

from __future__ import annotations

import warnings

__all__ = ["InputError", "IdentifiabilityWarning", "DivergenceWarning", "warn_identifiability"]


class InputError(ValueError):
    """Bad user input: the message names the problem and the fix."""


class IdentifiabilityWarning(UserWarning):
    """The setting is legal but the identifiability theory does not cover it."""


class DivergenceWarning(RuntimeWarning):
    """A fit stopped because its steps kept producing NaN or infinite values."""


def warn_identifiability(message: str) -> None:
    """Emit an :class:`IdentifiabilityWarning` pointing at the caller's caller."""
    warnings.warn(message, IdentifiabilityWarning, stacklevel=3)
