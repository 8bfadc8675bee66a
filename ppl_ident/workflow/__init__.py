"""High-level workflow: fit a registered model to a dataset, evaluate it, check it, save and
load runs.

This is the public Python entry point used by the CLI, the comparison harness and the
examples. Every function asks the family registry (:mod:`ppl_ident.families`) once for the
family of the model or the data and lets the family do what differs between i.i.d. data and
sequences::

    data, truth = simulate_domains(0)
    fitted = fit_model(data, model="ivae")
    fitted.metrics["mcc"]
    save_run("runs/ivae", fitted, data)        # posterior.nc too
    fitted = load_run("runs/ivae")
    table = encode_rows(fitted, data)          # every row's latent mean, sd, 90% interval

The names below are re-exported from one module per job, each importing only those before
it:

- :mod:`~ppl_ident.workflow.fitted`: the result type :class:`Fitted`, :func:`model_inputs`;
- :mod:`~ppl_ident.workflow.build`: :func:`checked_settings`, :func:`resolved_settings`,
  :func:`build_fit`,
  :func:`engine_optim`;
- :mod:`~ppl_ident.workflow.rundir`: run directories (:func:`save_run`, :func:`load_run`,
  :func:`load_run_data`, :data:`RUN_FORMAT` and the reading of earlier formats);
- :mod:`~ppl_ident.workflow.fitting`: :func:`fit_model`, :func:`resume_run`, checkpoints, the
  divergence policy, :func:`seed_metrics`;
- :mod:`~ppl_ident.workflow.checks`: :func:`evaluate`, :func:`check_data`, :func:`check_run`;
- :mod:`~ppl_ident.workflow.export`: every row's latents (:func:`latent_summary`,
  :func:`encode_rows`, :func:`save_latents`).
"""

from __future__ import annotations

# in the order of a fit (the API reference lists the names in this order)
from ppl_ident.settings import FIT_PRESETS, FitSettings
from ppl_ident.workflow.fitted import Fitted
from ppl_ident.settings import fit_settings
from ppl_ident.workflow.fitted import model_inputs
from ppl_ident.workflow.build import checked_settings, resolved_settings
from ppl_ident.workflow.fitting import fit_model
from ppl_ident.workflow.build import build_fit, engine_optim
from ppl_ident.workflow.fitting import (seed_fits, seed_metrics, divergence_message,
                                        resume_run)
from ppl_ident.workflow.rundir import interrupted_message, input_summary, input_line
from ppl_ident.workflow.checks import evaluate, check_data, check_run
from ppl_ident.workflow.rundir import (save_run, table_coords, write_posterior, load_run,
                                       load_run_data, POSTERIOR_FILE, RUN_FORMAT,
                                       SEED_PARAMS_FILE)
from ppl_ident.workflow.export import latent_summary, encode_rows, save_latents, LATENT_FORMATS
from ppl_ident.families.iid.inputs import prepare_inputs  # the i.i.d. labels (0.1's API)

__all__ = ["FitSettings", "FIT_PRESETS", "fit_settings", "Fitted", "fit_model", "evaluate",
           "save_run", "load_run", "resume_run", "divergence_message", "check_data",
           "check_run", "checked_settings", "resolved_settings", "model_inputs", "prepare_inputs",
           "build_fit",
           "engine_optim", "interrupted_message", "POSTERIOR_FILE", "write_posterior",
           "load_run_data", "latent_summary", "encode_rows", "save_latents", "LATENT_FORMATS",
           "seed_metrics", "seed_fits", "SEED_PARAMS_FILE", "input_summary", "input_line",
           "RUN_FORMAT", "table_coords"]
