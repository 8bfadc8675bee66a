"""Test configuration: CPU only, one host device, deterministic seeds, headless plots."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
# The suite's programs are tiny and compile-bound: spend less time optimising them (measured:
# the whole suite 11 min 47 s -> 9 min 32 s on 2 cores). Set before JAX is imported;
# subprocesses inherit it.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS"),
                                                     "--xla_backend_optimization_level=0"]))

# JAX's persistent compilation cache (below) keys a program partly by Python's string hashes,
# so processes with different hash seeds miss each other's entries (measured: a tiny fit in a
# second process with the same cache, 6.3 s with the same seed, 10.0 s with another). The xdist
# workers and the tests' subprocesses inherit this fixed seed and share the cache.
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    """Share compiled programs across the suite's tests, its workers and its subprocesses:
    JAX's persistent compilation cache keys a program by its HLO (and the JAX version and
    backend), so the many tiny fits of the same shapes compile once. pytest's cache directory
    (``.pytest_cache/``, git-ignored) keeps it between sessions; without the cache plugin
    (``-p no:cacheprovider``) it is a directory named after the run in the system's temporary
    directory (the xdist workers inherit the controller's choice). A
    ``JAX_COMPILATION_CACHE_DIR`` already set is respected. Runs before any test module
    imports JAX."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    store = getattr(config, "cache", None)
    if store is not None:
        where = store.mkdir("jax_compilation_cache")
    else:
        import tempfile
        where = os.path.join(tempfile.gettempdir(), f"ppl_ident_tests_{os.getuid()}_"
                             f"{os.environ.get('PYTEST_XDIST_TESTRUNUID', os.getpid())}")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(where)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


#: The test files that take longest (their summed test time, measured alone on the 2-core
#: machine, 2026-12-07/08), longest first. They are handed to the two xdist workers first
#: (``--dist loadfile --no-loadscope-reorder``, pyproject.toml): the longest-first order keeps
#: one worker from finishing a long file alone at the end while the other idles. Only the
#: schedule depends on this list; a file missing from it runs after these, in collection order.
SLOW_FIRST = [
    "tests/families/test_temporal_models.py",
    "tests/families/test_contract.py",
    "tests/test_examples.py",
    "tests/harness/test_harness.py",
    "tests/cli/test_check_cli.py",
    "tests/families/test_noisy_flow.py",
    "tests/cli/test_interrupt.py",
    "tests/reporting/test_report.py",
    "tests/inference/test_fit.py",
    "tests/families/test_models.py",
    "tests/harness/test_dask_cluster.py",
    "tests/reporting/test_report_sequences.py",
    "tests/cli/test_cli.py",
    "tests/families/test_flow_transition.py",
    "tests/test_workflow.py",
    "tests/test_docs.py",
    "tests/cli/test_bad_input.py",
    "tests/inference/test_checkpoint.py",
    "tests/inference/test_sharding.py",
]


def pytest_collection_modifyitems(config, items):
    """Order the files :data:`SLOW_FIRST`; tests keep their order within a file."""
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def small_data():
    """A small identifiable setting shared by model and CLI tests."""
    from ppl_ident.data import simulate_domains

    return simulate_domains(0, n_latent=2, data_dim=2, n_domains=5, n_per_domain=60, n_layers=2)


@pytest.fixture(scope="session")
def tiny_fit(small_data):
    """A quickly fitted small variational iVAE on ``small_data`` (posterior and report tests:
    the default for n = d would be the exact flow, whose posterior is a point mass)."""
    from ppl_ident.workflow import fit_model

    data, _ = small_data
    return fit_model(data, steps=150, batch_size=64, width=16, depth=1, seed=0, flow=False)


@pytest.fixture(scope="session")
def linear_gaussian():
    """An iVAE with a linear decoder and fixed noise, where ``p(z | x, u)`` is Gaussian in
    closed form: ``z ~ N(0, diag s_u^2)``, ``x = A z + N(0, sigma^2 I)``.

    Returns a dict with ``spec``, ``params``, ``x``, ``u`` and the exact posterior ``mean``
    ``(N, n)``, ``cov`` ``(N, n, n)`` and marginal ``log_px`` ``(N,)``.
    """
    from functools import partial

    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as dist
    import numpyro
    from scipy.stats import multivariate_normal

    from ppl_ident.families import ModelSpec, ivae

    n, d, n_dom, n_obs, sigma = 2, 3, 2, 6, 0.5
    rng = np.random.default_rng(0)
    a = rng.normal(size=(d, n)).astype(np.float32)
    s = np.array([[0.5, 2.0], [1.5, 0.7]], np.float32)
    lin = eqx.nn.Linear(n, d, key=jax.random.PRNGKey(0))
    lin = eqx.tree_at(lambda m: (m.weight, m.bias), lin, (jnp.asarray(a), jnp.zeros(d)))
    u = (np.arange(n_obs) % n_dom).astype(np.int32)
    z = rng.normal(size=(n_obs, n)) * s[u]
    x = (z @ a.T + sigma * rng.normal(size=(n_obs, d))).astype(np.float32)
    prec = a.T @ a / sigma**2 + np.stack([np.diag(1 / s[k] ** 2) for k in u])
    cov = np.linalg.inv(prec)
    mean = np.einsum("njk,nk->nj", cov, x @ a / sigma**2)
    log_px = np.array([multivariate_normal(np.zeros(d), a @ np.diag(s[k] ** 2) @ a.T
                                           + sigma**2 * np.eye(d)).logpdf(xi)
                       for xi, k in zip(x, u)])

    def guide(x=None, u=None, *, subsample_size=None, n_obs=None, **_):
        # the diagonal of the exact posterior (a good, not exact, proposal)
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("z", dist.Normal(jnp.asarray(mean, jnp.float32),
                                            jnp.sqrt(jnp.einsum("njj->nj", cov))
                                            .astype(jnp.float32)).to_event(1))

    model = partial(ivae, decoder=lin, n_latent=n, data_dim=d, n_domains=n_dom,
                    noise_scale=sigma, learn_prior_loc=False)
    spec = ModelSpec("linear", model, guide, None, {"name": "linear"})
    params = {"decoder$params": eqx.filter(lin, eqx.is_inexact_array),
              "prior_scale": jnp.asarray(s)}
    return dict(spec=spec, params=params, x=x, u=u, mean=mean, cov=cov, log_px=log_px)
