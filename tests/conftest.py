"""Test configuration: CPU only, one host device, deterministic seeds, headless plots."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def small_data():
    """A small identifiable setting shared by model and CLI tests."""
    from ppl_ident.data import simulate_domains

    return simulate_domains(0, n_latent=2, data_dim=2, n_domains=5, n_per_domain=60, n_layers=2)
