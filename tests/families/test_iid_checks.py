"""The i.i.d. family's run check when the data hold z but not the simulator's mixing: the
regression route of the Jacobian, against the exact routes on the same simulator file."""

import numpy as np
import pytest

from ppl_ident.cli import main


@pytest.fixture(scope="module")
def fitted_2000():
    from ppl_ident.data import simulate_domains
    from ppl_ident.workflow import fit_model

    data, truth = simulate_domains(0, n_latent=2, data_dim=2, n_domains=5, n_per_domain=400,
                                   n_layers=2)
    return data, truth, fit_model(data, steps=300, batch_size=128, width=16, depth=1, seed=0)


def test_regression_route_agrees_with_the_exact_routes(fitted_2000):
    from ppl_ident.workflow import check_run

    data, truth, fitted = fitted_2000
    exact = check_run(fitted, data, truth, n_points=128)["jacobian"]
    est = check_run(fitted, data, None, n_points=128)["jacobian"]
    assert "encoder" not in est and est["applicable"] and "local linear" in est["reason"]
    reg = est["regression"]
    for route in ("encoder", "decoder"):
        assert reg["matching"] == exact[route]["matching"]
        assert reg["agreement"] == pytest.approx(exact[route]["agreement"], abs=0.1)
        # measured: exact 0.251 / 0.253, regression 0.222 (2000 rows, 30 neighbours in 2-D)
        assert reg["amari"] == pytest.approx(exact[route]["amari"], abs=0.1)


def test_check_on_a_file_with_z_only_computes_the_jacobian(fitted_2000, tmp_path, capsys):
    from ppl_ident.workflow import save_run

    data, _, fitted = fitted_2000
    path = tmp_path / "xuz.npz"
    np.savez(path, x=data.x, u=data.u, z=data.z)
    save_run(tmp_path / "run", fitted, data, data_path=str(path), posterior_draws=0)
    assert main(["check", str(tmp_path / "run"), "--points", "64", "--null-fits", "0",
                 "--out", str(tmp_path / "run" / "check")]) == 0
    out = capsys.readouterr().out
    assert "no ground truth" not in out
    assert "regression route:" in out and "local linear fits" in out
    assert (tmp_path / "run" / "check" / "jacobian_regression.png").is_file()


def test_continuous_u_evaluates_the_exponential_family_condition():
    """A continuous-u prior whose scale alone changes (locations fixed at 0): the seed's
    condition cannot hold for a Gaussian (rank n of 2n), but iVAE's exponential-family
    condition does, with T(z) = z^2 read from the prior network at each point's u."""
    from types import SimpleNamespace

    import jax
    import jax.numpy as jnp

    from ppl_ident.families import build_model
    from ppl_ident.families.iid.checks import _learned_variability

    spec = build_model("ivae", jax.random.PRNGKey(0), n_latent=2, data_dim=2, aux_dim=3,
                       learn_prior_loc=False, prior="gaussian", width=16)
    params = spec.init_params(jax.random.PRNGKey(1))
    rng = np.random.default_rng(0)
    u_points = rng.normal(size=(64, 3)).astype(np.float32)
    z_hat = rng.normal(size=(64, 2)).astype(np.float32)
    out = _learned_variability(SimpleNamespace(spec=spec, params=params), jnp.asarray(z_hat),
                               u_points, 1e-3, 0.9)
    assert out["exponential_family"]["statistics"] == ["z^2"]
    assert out["exponential_family"]["passed"] and out["holds"] == ["exponential_family"]
    assert not out["sufficient_variability"]["passed"]
