"""Simulators, the invertible mixing, and the ``.npz`` data contract."""

from ppl_ident.data.io import load_dataset, save_dataset, validate_dataset
from ppl_ident.data.mixing import Mixing, mix, mixing_jacobian, random_mixing, unmix
from ppl_ident.data.simulate import (
    SOURCES,
    Dataset,
    GroundTruth,
    SimulationConfig,
    simulate_domains,
    source_log_density,
)

__all__ = [
    "SOURCES", "Dataset", "GroundTruth", "Mixing", "SimulationConfig", "load_dataset", "mix",
    "mixing_jacobian", "random_mixing", "save_dataset", "simulate_domains",
    "source_log_density", "unmix", "validate_dataset",
]
