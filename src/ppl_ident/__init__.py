"""ppl_ident: identifiable latent-variable models on NumPyro, JAX and ArviZ.

Layers (lower never import higher): ``data`` -> ``models``/``guides`` -> ``inference`` ->
``diagnostics`` -> ``reporting`` -> ``harness`` -> ``cli``. :mod:`ppl_ident.workflow` ties them
together for scripts.
"""

__version__ = "0.1.0"

from ppl_ident.data import Dataset, GroundTruth, load_dataset, save_dataset, simulate_domains  # noqa: E402
from ppl_ident.diagnostics import mcc  # noqa: E402
from ppl_ident.errors import IdentifiabilityWarning, InputError  # noqa: E402
from ppl_ident.models import build_model  # noqa: E402
from ppl_ident.workflow import FitSettings, Fitted, evaluate, fit_model, load_run, save_run  # noqa: E402
from ppl_ident.workflow import resume_run  # noqa: E402

__all__ = [
    "Dataset", "FitSettings", "Fitted", "GroundTruth", "IdentifiabilityWarning", "InputError",
    "build_model", "evaluate", "fit_model", "load_dataset", "load_run", "mcc", "save_dataset",
    "resume_run", "save_run", "simulate_domains", "__version__",
]
