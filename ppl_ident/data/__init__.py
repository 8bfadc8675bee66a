"""Simulators, the invertible mixing, and the data contract (``.npz``, CSV, Parquet)."""

from ppl_ident.data.io import load_dataset, read_data, save_dataset, validate_dataset
from ppl_ident.data.mixing import Mixing, mix, mixing_jacobian, random_mixing, unmix
from ppl_ident.data.simulate import (
    SOURCES,
    Dataset,
    GroundTruth,
    SimulationConfig,
    simulate_domains,
    source_log_density,
)
from ppl_ident.data.tables import Columns

__all__ = [
    "SOURCES", "Columns", "Dataset", "GroundTruth", "Mixing", "SimulationConfig", "load_dataset",
    "mix", "mixing_jacobian", "random_mixing", "read_data", "save_dataset", "simulate_domains",
    "source_log_density", "unmix", "validate_dataset",
]
