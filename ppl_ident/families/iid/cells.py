"""The i.i.d. family's data in a comparison grid: the settings of
:func:`~ppl_ident.data.simulate_domains` that a grid's ``[data]`` may vary, their label, and
the split into the rows a cell fits and the rows it holds out."""

from __future__ import annotations

import numpy as np

from ppl_ident.data.simulate import Dataset, SimulationConfig, simulate_domains
from ppl_ident.errors import InputError

__all__ = ["GENERATOR", "data_axes", "setting_label", "simulate_setting", "heldout_rows"]

#: The generator name of the i.i.d. simulator (``ppl-ident simulate --generator domains``).
GENERATOR = "domains"


def data_axes() -> dict:
    """The grid's data settings and their defaults: the package's default simulator setting
    (:class:`~ppl_ident.data.SimulationConfig`); ``data_dim`` None is ``latent_dim``."""
    c = SimulationConfig()
    return dict(latent_dim=c.n_latent, data_dim=None, domains=c.n_domains,
                points_per_domain=c.n_per_domain, mixing_layers=c.n_layers, source=c.source,
                noise_std=c.noise_std, data_seed=0)


def setting_label(d: dict) -> str:
    """E.g. ``n5-d5-U40x1000-L3-gaussian-s0-ds0``."""
    return (f"n{d['latent_dim']}-d{d['data_dim']}-U{d['domains']}x{d['points_per_domain']}"
            f"-L{d['mixing_layers']}-{d['source']}-s{d['noise_std']:g}-ds{d['data_seed']}")


def simulate_setting(d: dict, heldout_fraction: float):
    """Training data, held-out data (same domains, mixing and noise) and ground truth.

    ``points_per_domain`` training points and ``heldout_fraction`` as many held-out points
    per domain are drawn in one simulation and split within each domain.
    """
    n_train = d["points_per_domain"]
    n_test = max(1, int(round(heldout_fraction * n_train)))
    full, truth = simulate_domains(
        d["data_seed"], n_latent=d["latent_dim"], data_dim=d["data_dim"],
        n_domains=d["domains"], n_per_domain=n_train + n_test,
        n_layers=d["mixing_layers"], source=d["source"], noise_std=d["noise_std"])
    within = np.arange(full.x.shape[0]) % (n_train + n_test)  # u is sorted by domain
    train, test = within < n_train, within >= n_train
    pick = lambda m: Dataset(full.x[m], full.u[m], full.z[m])  # noqa: E731
    return pick(train), pick(test), truth


def heldout_rows(dataset, fraction: float) -> np.ndarray:
    """The rows of a user's data that a comparison holds out: ``fraction`` of each domain's
    rows, a fixed seeded choice, so that every domain is in both parts."""
    if dataset.u is None or np.ndim(dataset.u) != 1:
        raise InputError("A comparison holds out rows within each domain, so it needs domain "
                         "labels u (N,); this data has a continuous or no u: name the label "
                         "column with --u-col.")
    rng = np.random.default_rng(0)
    test = np.zeros(dataset.x.shape[0], bool)
    for label in np.unique(dataset.u):
        rows = np.flatnonzero(dataset.u == label)
        k = int(round(fraction * len(rows)))
        if 0 < k < len(rows):
            test[rng.choice(rows, size=k, replace=False)] = True
    return test
