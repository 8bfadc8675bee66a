"""Domain-conditioned simulators with known ground truth.

``simulate_domains`` draws latents that are factorial given a domain label ``u``: for domain
``u`` and dimension ``i``, ``z_i ~ source(loc[u, i], scale[u, i])``. They are mixed by a random
invertible MLP (:mod:`ppl_ident.data.mixing`). The setting satisfies the iVAE identifiability
condition when scales (and optionally locations) differ enough across at least ``n + 1``
domains (``2n + 1`` for the stronger sufficient-variability condition); the knobs
``n_domains`` and ``identical_domains`` break it on purpose.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.stats as jstats
import numpy as np

from ppl_ident.data.mixing import Mixing, mix, random_mixing, unmix
from ppl_ident.errors import InputError, warn_identifiability
from ppl_ident.files import check_memory

__all__ = [
    "SOURCES",
    "Dataset",
    "GroundTruth",
    "SimulationConfig",
    "simulate_domains",
    "source_log_density",
]

SOURCES = ("gaussian", "laplace", "student_t")


class Dataset(NamedTuple):
    """Observed data. ``x``: ``(N, d)``; ``u``: int labels ``(N,)`` or float ``(N, k)``;
    ``z``: true latents ``(N, n)`` when known (evaluation only), else None."""

    x: np.ndarray
    u: np.ndarray
    z: np.ndarray | None = None


class GroundTruth(NamedTuple):
    """Everything the simulator knows. A pytree of arrays plus static strings.

    Attributes
    ----------
    z : ``(N, n)`` true latents.
    domain_loc, domain_scale : ``(U, n)`` per-domain source parameters.
    mixing : Mixing
        The invertible MLP; ``g(z)`` and ``g_inv(x)`` evaluate it.
    source : str
        Source family, one of :data:`SOURCES`.
    df : float
        Degrees of freedom of ``student_t`` sources (ignored otherwise).
    noise_std : float
        Standard deviation of the Gaussian observation noise added after mixing.
    """

    z: np.ndarray
    domain_loc: np.ndarray
    domain_scale: np.ndarray
    mixing: Mixing
    source: str = "gaussian"
    df: float = 3.0
    noise_std: float = 0.0

    def g(self, z):
        """The true mixing ``x = g(z)`` (noise-free)."""
        return mix(self.mixing, z)

    def g_inv(self, x):
        """The true unmixing ``z = g^{-1}(x)``."""
        return unmix(self.mixing, x)

    def log_prior(self, z, u):
        """``log p(z | u)`` of the true factorial prior, summed over latents.

        ``z``: ``(..., n)``; ``u``: int domain label(s) broadcastable with ``z[..., 0]``.
        """
        loc = jnp.asarray(self.domain_loc)[u]
        scale = jnp.asarray(self.domain_scale)[u]
        return source_log_density(self.source, z, loc, scale, self.df).sum(-1)


class SimulationConfig(NamedTuple):
    """Settings of :func:`simulate_domains` (the defaults are the package's default setting)."""

    n_latent: int = 5
    data_dim: int = 5
    n_domains: int = 40
    n_per_domain: int = 1000
    n_layers: int = 3
    activation: str = "leaky_relu"
    slope: float = 0.2
    source: str = "gaussian"
    df: float = 3.0
    scale_range: tuple = (0.5, 3.0)
    loc_range: float = 0.0
    noise_std: float = 0.0
    identical_domains: bool = False
    max_cond: float | None = None


def source_log_density(source: str, z, loc, scale, df: float = 3.0):
    """Elementwise log-density of a location-scale source family (pure JAX)."""
    if source == "gaussian":
        return jstats.norm.logpdf(z, loc, scale)
    if source == "laplace":
        return jstats.laplace.logpdf(z, loc, scale)
    if source == "student_t":
        return jstats.t.logpdf(z, df, loc, scale)
    raise InputError(f"Unknown source {source!r}; choose one of {', '.join(SOURCES)}.")


def _draw_source(rng, source, shape, df):
    if source == "gaussian":
        return rng.standard_normal(shape)
    if source == "laplace":
        return rng.laplace(size=shape)
    return rng.standard_t(df, size=shape)


def _check_config(c: SimulationConfig) -> None:
    ints = dict(n_latent=c.n_latent, data_dim=c.data_dim, n_domains=c.n_domains,
                n_per_domain=c.n_per_domain, n_layers=c.n_layers)
    for name, value in ints.items():
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    if c.data_dim < c.n_latent:
        raise InputError(
            f"data_dim={c.data_dim} is smaller than n_latent={c.n_latent}: the mixing must be "
            "injective, so choose data_dim >= n_latent."
        )
    if c.source not in SOURCES:
        raise InputError(f"Unknown source {c.source!r}; choose one of {', '.join(SOURCES)}.")
    lo, hi = c.scale_range
    if not 0 < lo <= hi:
        raise InputError(f"scale_range must satisfy 0 < low <= high, got {c.scale_range}.")
    if c.loc_range < 0 or c.noise_std < 0:
        raise InputError("loc_range and noise_std must be >= 0.")
    if c.source == "student_t" and not c.df > 0:
        raise InputError(f"df must be > 0 for student_t sources, got {c.df}.")
    rows, n, d = c.n_domains * c.n_per_domain, c.n_latent, c.data_dim
    # z, the draws and x in float64 and float32, plus the mixing's weight matrices.
    check_memory(rows * (3 * n + 3 * d) * 8 + c.n_layers * n * n * 8 + n * d * 8,
                 f"simulating {rows} points of dimension {d} ({n} latents)",
                 "lower --domains, --points-per-domain, --latent-dim or --data-dim.")


def simulate_domains(seed: int = 0, config: SimulationConfig | None = None, **overrides):
    """Simulate domain-conditioned factorial latents mixed by a random invertible MLP.

    Parameters
    ----------
    seed : int
        Seed of every random choice (domain parameters, mixing, latents, noise). The same
        seed and settings give bit-identical data.
    config : SimulationConfig, optional
        Settings; keyword ``overrides`` replace single fields (``n_domains=3``).

    Returns
    -------
    dataset : Dataset
        ``x`` float32 ``(N, d)``, ``u`` int32 ``(N,)`` with ``N = n_domains * n_per_domain``,
        and ``z``.
    truth : GroundTruth

    Warns
    -----
    IdentifiabilityWarning
        When fewer than ``n + 1`` distinct domains exist (no identifiability guarantee) or
        ``identical_domains`` is set.

    Examples
    --------
    >>> data, truth = simulate_domains(0, n_domains=4, n_per_domain=10, n_latent=2, data_dim=3)
    >>> data.x.shape, data.u.shape, truth.domain_scale.shape
    ((40, 3), (40,), (4, 2))
    """
    config = (config or SimulationConfig())._replace(**overrides)
    _check_config(config)
    c = config
    n, U = c.n_latent, c.n_domains
    rng = np.random.default_rng(seed)
    mixing = random_mixing(rng, n, c.data_dim, c.n_layers, c.activation, c.slope, c.max_cond)
    rows = 1 if c.identical_domains else U
    scale = rng.uniform(c.scale_range[0], c.scale_range[1], size=(rows, n))
    loc = rng.uniform(-c.loc_range, c.loc_range, size=(rows, n)) if c.loc_range > 0 \
        else np.zeros((rows, n))
    scale, loc = np.broadcast_to(scale, (U, n)).copy(), np.broadcast_to(loc, (U, n)).copy()
    u = np.repeat(np.arange(U, dtype=np.int32), c.n_per_domain)
    eps = _draw_source(rng, c.source, (u.size, n), c.df)
    z = (loc[u] + scale[u] * eps).astype(np.float32)
    x = np.asarray(jax.jit(lambda m, z: mix(m, z))(mixing, jnp.asarray(z)))
    if c.noise_std > 0:
        x = x + c.noise_std * rng.standard_normal(x.shape)
    x = x.astype(np.float32)
    if c.identical_domains or U < n + 1:
        warn_identifiability(
            f"{'All domains are identical' if c.identical_domains else f'Only {U} domains'}"
            f" for {n} latents: the latent distribution does not vary across at least "
            f"n+1={n + 1} domains (2n+1={2 * n + 1} for the sufficient-variability condition), "
            "so the latents are not identifiable in theory and MCC is expected to be low."
        )
    truth = GroundTruth(z, loc.astype(np.float32), scale.astype(np.float32), mixing,
                        c.source, float(c.df), float(c.noise_std))
    return Dataset(x, u, z), truth


def resample_domains(truth: GroundTruth, n_per_domain: int, seed: int) -> Dataset:
    """Fresh observations from the same domains and mixing as ``truth`` (held-out data).

    Parameters
    ----------
    truth : GroundTruth
        From :func:`simulate_domains`.
    n_per_domain : int
    seed : int
        Use a seed other than the simulation's so the draws are new.

    Returns
    -------
    Dataset
        ``x``, ``u`` (labels ``0..U-1``), ``z``, drawn exactly as :func:`simulate_domains`
        draws them.
    """
    if int(n_per_domain) != n_per_domain or n_per_domain < 1:
        raise InputError(f"n_per_domain must be a positive integer, got {n_per_domain!r}.")
    rng = np.random.default_rng(seed)
    loc, scale = np.asarray(truth.domain_loc), np.asarray(truth.domain_scale)
    u = np.repeat(np.arange(loc.shape[0], dtype=np.int32), n_per_domain)
    eps = _draw_source(rng, truth.source, (u.size, loc.shape[1]), truth.df)
    z = (loc[u] + scale[u] * eps).astype(np.float32)
    x = np.asarray(jax.jit(lambda m, z: mix(m, z))(truth.mixing, jnp.asarray(z)))
    if truth.noise_std > 0:
        x = x + truth.noise_std * rng.standard_normal(x.shape)
    return Dataset(x.astype(np.float32), u, z)


__all__ += ["resample_domains"]
