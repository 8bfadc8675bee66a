"""ppl_ident: identifiable latent-variable models on NumPyro, JAX and ArviZ.

Layers, bottom to top (a module imports only from its own layer or below): ``errors``,
``files``, ``pytrees`` -> ``data`` -> ``ops`` -> ``diagnostics`` -> ``families`` (one
subpackage per model family behind :class:`~ppl_ident.families.base.ModelFamily`) ->
``inference`` -> ``settings``, ``workflow``, ``evidence`` -> ``reporting`` -> ``harness`` ->
``cli``.
:mod:`ppl_ident.workflow` ties them together for scripts.
"""

import importlib

from ppl_ident._version import __version__

#: public name -> the module that defines it. Imported on first use (PEP 562), so that
#: ``ppl-ident --help`` and ``import ppl_ident.errors`` do not pay for JAX (about 2.5 s).
_EXPORTS = {
    "Dataset": "ppl_ident.data", "GroundTruth": "ppl_ident.data",
    "Columns": "ppl_ident.data", "load_dataset": "ppl_ident.data",
    "read_data": "ppl_ident.data", "save_dataset": "ppl_ident.data",
    "simulate_domains": "ppl_ident.data",
    "mcc": "ppl_ident.diagnostics",
    "IdentifiabilityWarning": "ppl_ident.errors", "InputError": "ppl_ident.errors",
    "build_model": "ppl_ident.families",
    "FitSettings": "ppl_ident.workflow", "Fitted": "ppl_ident.workflow",
    "check_data": "ppl_ident.workflow", "encode_rows": "ppl_ident.workflow",
    "latent_summary": "ppl_ident.workflow", "save_latents": "ppl_ident.workflow",
    "check_run": "ppl_ident.workflow",
    "evaluate": "ppl_ident.workflow", "fit_model": "ppl_ident.workflow",
    "fit_settings": "ppl_ident.workflow", "load_run": "ppl_ident.workflow",
    "resume_run": "ppl_ident.workflow", "save_run": "ppl_ident.workflow",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ppl_ident' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return __all__
