"""Simulator, invertible mixing and the .npz data contract."""

import jax.numpy as jnp
import numpy as np
import pytest

from ppl_ident.data import (
    load_dataset, mix, mixing_jacobian, random_mixing, save_dataset, simulate_domains, unmix,
)
from ppl_ident.data.mixing import condition_threshold
from ppl_ident.errors import IdentifiabilityWarning, InputError


@pytest.mark.parametrize("activation", ["leaky_relu", "xtanh"])
@pytest.mark.parametrize("n,d", [(3, 3), (3, 6)])
def test_unmix_inverts_mix(activation, n, d, rng):
    m = random_mixing(1, n, d, n_layers=3, activation=activation, slope=0.2)
    z = jnp.asarray(rng.normal(scale=2.0, size=(500, n)), jnp.float32)
    z_back = unmix(m, mix(m, z))
    # float32 through three well-conditioned layers: relative error ~1e-6, allow 1e-4
    np.testing.assert_allclose(z_back, z, atol=1e-4 * float(jnp.abs(z).max()))


def test_mixing_jacobian_matches_finite_differences(rng):
    m = random_mixing(0, 2, 3, n_layers=2, activation="xtanh", slope=0.5)
    z = jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)
    jac = mixing_jacobian(m, z)
    assert jac.shape == (4, 3, 2)
    eps = 1e-2
    fd = (mix(m, z + jnp.array([eps, 0.0])) - mix(m, z - jnp.array([eps, 0.0]))) / (2 * eps)
    np.testing.assert_allclose(jac[:, :, 0], fd, atol=1e-3)


def test_layers_are_well_conditioned():
    m = random_mixing(3, 5, n_layers=4)
    for w in m.weights:
        assert np.linalg.cond(np.asarray(w)) <= condition_threshold(5) + 1e-6
    assert 5.5 < condition_threshold(5) < 7.5  # lower quartile for n=5 (about 6.4)


def test_simulator_is_deterministic_and_shaped():
    a, ta = simulate_domains(7, n_latent=3, data_dim=4, n_domains=7, n_per_domain=20)
    b, _ = simulate_domains(7, n_latent=3, data_dim=4, n_domains=7, n_per_domain=20)
    c, _ = simulate_domains(8, n_latent=3, data_dim=4, n_domains=7, n_per_domain=20)
    assert a.x.shape == (140, 4) and a.z.shape == (140, 3) and a.u.shape == (140,)
    assert a.x.dtype == np.float32 and a.u.dtype == np.int32
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.allclose(a.x, c.x)
    np.testing.assert_allclose(ta.g(a.z), a.x, atol=1e-5)
    assert ta.domain_scale.shape == (7, 3)
    assert np.all((ta.domain_scale >= 0.5) & (ta.domain_scale <= 3.0))


@pytest.mark.parametrize("source", ["gaussian", "laplace", "student_t"])
def test_sources_have_the_domain_scales(source):
    data, truth = simulate_domains(0, n_latent=2, data_dim=2, n_domains=3, n_per_domain=20000,
                                   source=source, loc_range=1.0, df=5.0)
    for k in range(3):
        zk = data.z[data.u == k]
        # medians estimate the locations of all three symmetric families; 20k draws give
        # a standard error below 0.03 for scales <= 3
        np.testing.assert_allclose(np.median(zk, 0), truth.domain_loc[k], atol=0.08)


def test_breaking_knobs_warn_and_make_domains_identical():
    with pytest.warns(IdentifiabilityWarning, match="identical"):
        data, truth = simulate_domains(0, n_latent=2, data_dim=2, n_domains=6, n_per_domain=5,
                                       identical_domains=True)
    assert np.all(truth.domain_scale == truth.domain_scale[0])
    with pytest.warns(IdentifiabilityWarning, match="Only 2 domains"):
        simulate_domains(0, n_latent=2, data_dim=2, n_domains=2, n_per_domain=5)


def test_noise_is_added():
    data, truth = simulate_domains(0, n_latent=2, data_dim=2, n_domains=5, n_per_domain=200,
                                   noise_std=0.1)
    resid = data.x - np.asarray(truth.g(data.z))
    assert resid.std() == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_latent=3, data_dim=2), "data_dim >= n_latent"),
    (dict(source="cauchy"), "Unknown source"),
    (dict(n_domains=0), "positive integer"),
    (dict(scale_range=(2.0, 1.0)), "scale_range"),
    (dict(activation="relu"), "Unknown activation"),
    (dict(slope=0.0), "non-invertible"),
])
def test_simulator_rejects_bad_settings(kwargs, match):
    with pytest.raises(InputError, match=match):
        simulate_domains(0, **kwargs)


def test_npz_round_trip_keeps_ground_truth(tmp_path):
    data, truth = simulate_domains(0, n_latent=2, data_dim=3, n_domains=5, n_per_domain=10,
                                   activation="xtanh")
    path = save_dataset(tmp_path / "d.npz", data, truth)
    with pytest.raises(InputError, match="already exists"):
        save_dataset(path, data, truth)
    back, t2 = load_dataset(path)
    np.testing.assert_array_equal(back.x, data.x)
    np.testing.assert_array_equal(back.u, data.u)
    np.testing.assert_allclose(np.asarray(t2.g(back.z)), data.x, atol=1e-5)
    assert t2.mixing.activation == "xtanh" and t2.source == truth.source


def _write(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("arrays,match", [
    (dict(u=np.zeros(3, int)), "no 'x'"),
    (dict(x=np.zeros((3, 2))), "no 'u'"),
    (dict(x=np.zeros((3, 2)), u=np.zeros(4, int)), "one entry per observation"),
    (dict(x=np.array([[0.0, np.nan], [1, 2], [3, 4]]), u=np.zeros(3, int)), "NaN"),
    (dict(x=np.array([[0.0, np.inf]]), u=np.zeros(1, int)), "NaN or infinite"),
    (dict(x=np.zeros((3, 2)), u=np.array([0.0, 0.5, 1.0])), "non-integer"),
    (dict(x=np.zeros((3, 2)), u=np.array([0, -1, 1])), "negative"),
    (dict(x=np.zeros((3, 2)), u=np.zeros(3, int), z=np.zeros((2, 2))), "'z' has shape"),
    (dict(x=np.array(["a", "b"]), u=np.zeros(2, int)), "numeric"),
    (dict(x=np.zeros(3), u=np.zeros(3, int)), "expected \\(N, d\\)"),
])
def test_bad_files_raise_input_errors(tmp_path, arrays, match):
    with pytest.raises(InputError, match=match):
        load_dataset(_write(tmp_path, **arrays))


def test_missing_and_pickled_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_dataset(tmp_path / "nope.npz")
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), u=np.zeros(1))
    with pytest.raises(InputError, match="pickle"):
        load_dataset(tmp_path / "obj.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable"):
        load_dataset(tmp_path / "junk.npz")


def test_continuous_u_is_accepted(tmp_path):
    path = _write(tmp_path, x=np.zeros((4, 2)), u=np.linspace(0, 1, 8).reshape(4, 2))
    data, truth = load_dataset(path)
    assert data.u.dtype == np.float32 and data.u.shape == (4, 2) and truth is None
