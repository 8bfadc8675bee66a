"""ppl_ident: identifiable latent-variable models on NumPyro, JAX and ArviZ.

Layers, bottom to top (a module imports only from its own layer or below): ``errors``,
``files``, ``pytrees`` -> ``data`` -> ``ops`` -> ``diagnostics`` -> ``families`` (one
subpackage per model family behind :class:`~ppl_ident.families.base.ModelFamily`) ->
``inference`` -> ``settings``, ``workflow`` -> ``reporting`` -> ``harness`` -> ``cli``.
:mod:`ppl_ident.workflow` ties them together for scripts.
"""

from ppl_ident._version import __version__

from ppl_ident.data import Dataset, GroundTruth, load_dataset, save_dataset, simulate_domains  # noqa: E402
from ppl_ident.diagnostics import mcc  # noqa: E402
from ppl_ident.errors import IdentifiabilityWarning, InputError  # noqa: E402
from ppl_ident.families import build_model  # noqa: E402
from ppl_ident.workflow import (FitSettings, Fitted, check_data, check_run, evaluate,  # noqa: E402
                                fit_model, fit_settings, load_run, resume_run, save_run)

__all__ = [
    "Dataset", "FitSettings", "Fitted", "check_data", "check_run", "fit_settings", "GroundTruth", "IdentifiabilityWarning", "InputError",
    "build_model", "evaluate", "fit_model", "load_dataset", "load_run", "mcc", "save_dataset",
    "resume_run", "save_run", "simulate_domains", "__version__",
]
