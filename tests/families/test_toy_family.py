"""A third model family, defined here and registered for this test only, runs through the
whole package: ``fit_model``, ``save_run``/``load_run``, ``ppl-ident encode`` and
``build_report``, with nothing outside its own class knowing it.

The family is the smallest the interface allows: linear-Gaussian factor analysis
``z ~ N(0, I)``, ``x ~ N(z W + b, diag(s^2))`` with a linear Gaussian encoder
``q(z | x) = N(x A + c, diag(t^2))``, plain NumPyro ``param`` sites and no ``u``. Its numbers
are checked against what the model says in closed form: the encoder's mean of every row is
``x A + c``, with the fitted parameters read back from the run directory. It ignores ``u``.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints

from ppl_ident.data import Dataset, save_dataset
from ppl_ident.diagnostics.mcc import mcc
from ppl_ident.families import FAMILIES, MODELS, ModelFamily, ModelSpec, register_family
from ppl_ident.families.iid.idata import iid_inference_data

N_LATENT, DATA_DIM, ROWS = 2, 3, 120


def toy_model(x=None, u=None, *, n_latent, data_dim, subsample_size=None, n_obs=None):
    n = x.shape[0] if n_obs is None else n_obs
    w = numpyro.param("loading", jnp.zeros((n_latent, data_dim)))
    b = numpyro.param("bias", jnp.zeros(data_dim))
    s = numpyro.param("noise_sd", jnp.ones(data_dim), constraint=constraints.positive)
    with numpyro.plate("obs", n, subsample_size=subsample_size) as idx:
        z = numpyro.sample("z", dist.Normal(jnp.zeros(n_latent), 1.0).to_event(1))
        numpyro.sample("x", dist.Normal(z @ w + b, s).to_event(1),
                       obs=None if x is None else x[idx])


def toy_guide(x=None, u=None, *, n_latent, data_dim, subsample_size=None, n_obs=None):
    a = numpyro.param("enc_weight", jnp.zeros((data_dim, n_latent)))
    c = numpyro.param("enc_bias", jnp.zeros(n_latent))
    t = numpyro.param("enc_sd", jnp.ones(n_latent), constraint=constraints.positive)
    with numpyro.plate("obs", x.shape[0], subsample_size=subsample_size) as idx:
        numpyro.sample("z", dist.Normal(x[idx] @ a + c, t).to_event(1))


class ToyFamily(ModelFamily):
    name = "toy"
    models = ("linear_toy",)
    guides = ("encoder",)
    data_rank = 2
    data_shape = "(N, d)"
    obs_dims = ("obs",)
    label = "linear-Gaussian toy"
    rank_hint = "pass a 2-d x"

    def prepare_inputs(self, u, model, labels=None):
        return None, None  # the toy ignores u

    def check_settings(self, dataset, settings):
        return settings

    def build(self, name, key, *, n_latent, data_dim, guide="encoder"):
        from functools import partial

        def init_params(key):
            k_w, k_a = jax.random.split(key)
            return {"loading": jax.random.normal(k_w, (n_latent, data_dim)),
                    "bias": jnp.zeros(data_dim), "noise_sd": jnp.ones(data_dim),
                    "enc_weight": 0.1 * jax.random.normal(k_a, (data_dim, n_latent)),
                    "enc_bias": jnp.zeros(n_latent), "enc_sd": jnp.ones(n_latent)}

        dims = dict(n_latent=n_latent, data_dim=data_dim)
        return ModelSpec(name, partial(toy_model, **dims), partial(toy_guide, **dims),
                         init_params, dict(name=name, guide=guide, **dims),
                         n_latent=n_latent, data_dim=data_dim, guide_name=guide)

    def spec_config(self, settings, dataset, u, labels):
        return dict(n_latent=settings.latent_dim, data_dim=dataset.x.shape[1],
                    guide=settings.guide)

    def templates(self, config):
        return jnp.zeros((2, config["data_dim"])), None

    def evaluate(self, fitted, dataset, truth=None):
        if dataset.z is None:
            return {}
        p = fitted.params
        mean = np.asarray(dataset.x) @ np.asarray(p["enc_weight"]) + np.asarray(p["enc_bias"])
        return {"mcc": mcc(dataset.z, mean).score,
                "mcc_spearman": mcc(dataset.z, mean, method="spearman").score}

    def check_data(self, dataset, truth, **options):
        return self._not_applicable("data")

    def check_run(self, fitted, dataset, truth=None, **options):
        return self._not_applicable("run")

    def _not_applicable(self, kind):
        reason = "factor analysis is identifiable only up to a rotation"
        return {"kind": kind, "variability": {"applicable": False, "reason": reason},
                "jacobian": {"applicable": False, "reason": reason}}

    def inference_data(self, fitted, dataset, *, num_draws, max_obs, seed, truth=None,
                       obs_idx=None, alignment=None, sampler=None, **sampler_options):
        # the i.i.d. layout, built by the i.i.d. family's converter: a family may reuse
        # another's parts
        kw = {} if sampler is None else dict(sampler=sampler, **sampler_options)
        return iid_inference_data(fitted, dataset, num_draws=num_draws, max_obs=max_obs,
                                  seed=seed, truth=None if truth is not False else False,
                                  obs_idx=obs_idx, alignment=alignment, **kw)


@pytest.fixture
def toy():
    """The toy family, registered for one test; the registries are restored afterwards."""
    saved = dict(FAMILIES), dict(MODELS)
    family = register_family(ToyFamily())
    yield family
    for registry, before in zip((FAMILIES, MODELS), saved):
        registry.clear()
        registry.update(before)


def test_register_family_refuses_a_taken_name(toy):
    from ppl_ident.errors import InputError

    with pytest.raises(InputError, match="registered already"):
        register_family(ToyFamily())
    clash = type("Clash", (ToyFamily,), {"name": "clash", "models": ("ivae",)})
    with pytest.raises(InputError, match="'ivae'.*'iid' family"):
        register_family(clash())
    with pytest.raises(InputError, match="ModelFamily instance"):
        register_family("toy")


def test_a_registered_family_fits_saves_loads_encodes_and_reports(toy, tmp_path, capsys):
    from ppl_ident.cli import main
    from ppl_ident.reporting.report import build_report
    from ppl_ident.workflow import fit_model, load_run, save_run

    rng = np.random.default_rng(0)
    z = rng.normal(size=(ROWS, N_LATENT)).astype(np.float32)
    x = (z @ rng.normal(size=(N_LATENT, DATA_DIM)) + 0.1 * rng.normal(size=(ROWS, DATA_DIM))
         ).astype(np.float32)
    # a data file of i.i.d. rows carries u (the data contract); the toy ignores it
    data = Dataset(x, rng.integers(0, 2, ROWS).astype(np.int32), z)
    path = save_dataset(tmp_path / "toy.npz", data)

    fitted = fit_model(data, model="linear_toy", guide="encoder", steps=40, batch_size=32,
                       warmup_steps=0, learning_rate=0.05)
    assert fitted.spec.name == "linear_toy" and fitted.metrics["stop_reason"] == "completed"
    assert np.mean(fitted.losses[-10:]) < np.mean(fitted.losses[:10])
    assert 0.0 <= fitted.metrics["mcc"] <= 1.0

    run = save_run(tmp_path / "run", fitted, data, data_path=str(path), posterior_obs=30)
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == {"name": "linear_toy", "guide": "encoder", "n_latent": N_LATENT,
                               "data_dim": DATA_DIM}
    assert config["inputs"]["u_kind"] is None and config["inputs"]["latent_dim"] == N_LATENT
    loaded = load_run(run)
    for k, v in fitted.params.items():
        np.testing.assert_array_equal(np.asarray(loaded.params[k]), np.asarray(v))
    np.testing.assert_array_equal(loaded.losses, fitted.losses)

    out = tmp_path / "latents.csv"
    assert main(["encode", str(run), str(path), "--out", str(out)]) == 0
    assert f"({N_LATENT} latents" in capsys.readouterr().out
    table = np.genfromtxt(out, delimiter=",", names=True)
    p = loaded.params
    exact = x @ np.asarray(p["enc_weight"]) + np.asarray(p["enc_bias"])
    for j in range(N_LATENT):
        np.testing.assert_allclose(table[f"z{j}_mean"], exact[:, j], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(table[f"z{j}_sd"], float(p["enc_sd"][j]), rtol=1e-5)

    res = build_report(run, calibration_draws=40, seed=0)
    page = res.html.read_text()
    assert "linear_toy" in page and "Not tested" in page
    assert "not implemented for linear-Gaussian toy models" in page
    assert set(res.sections) >= {"summary", "loss"}
    assert json.loads((run / "check" / "check.json").read_text())["kind"] == "run"
