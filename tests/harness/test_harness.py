"""Comparison harness: engines/guides table, grids, metrics, and an in-process tiny grid."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppl_ident.errors import InputError
from ppl_ident.harness import ENGINE_PRESETS, load_grid, make_grid, to_dataset
from ppl_ident.harness.metrics import time_to_threshold
from ppl_ident.harness.run import build_cell
from ppl_ident.inference import ELBOS, build_engine, fit_batched
from ppl_ident.families import build_model

TINY = dict(latent_dim=2, domains=5, points_per_domain=60, mixing_layers=2)


@pytest.fixture(scope="module")
def tiny(small_data):
    data, _ = small_data
    return jnp.asarray(data.x), jnp.asarray(data.u)


# One row per engine preset (NUTS lives in another module; "default" is the flow on n = d):
# every engine, built as a cell builds it (checked settings, build_fit), fits two seeds as one
# vectorised program and its loss falls. Width 16 keeps compilation short.
@pytest.mark.parametrize("preset", [p for p in ENGINE_PRESETS if p not in ("nuts", "default")])
def test_engine_table_fits_and_loss_falls(small_data, preset):
    data, _ = small_data
    small = dict(width=16, depth=1, batch_size=64, **({"flow_layers": 2}
                                                      if preset == "flow" else {}))
    grid = make_grid(data=dict(latent_dim=2, domains=5), engines={preset: small}, seeds=2,
                     steps=120)
    b = build_cell(grid.cells()[0], data)
    assert b.settings.flow == (preset == "flow")
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    states, losses, finite, _, _ = fit_batched(b.engine, keys, data.x, b.u, 120,
                                               chunk_size=120, progress=False)
    assert losses.shape == (2, 120) and finite.all()
    # Minibatch losses are noisy: compare means of the first and last 30 steps. Every engine
    # starts from random networks, so the fall is large (x2 or more) in 120 steps.
    assert np.all(losses[:, -30:].mean(1) < losses[:, :30].mean(1))
    if preset == "autonormal":
        # Non-amortised: one (loc, scale) per observation at the full data size, though every
        # step sees a subsample of 64 (NumPyro indexes the parameters by the plate's subsample).
        params = jax.vmap(b.engine.get_params)(states)
        assert params["z_auto_loc"].shape == (2, 300, 2) and "encoder$params" not in params


def test_iwae_bound_above_elbo(tiny):
    # log p(x) >= IWAE_K >= ELBO; at random initial parameters the gap is tens of nats for 300
    # observations while the Monte Carlo error of 64-particle estimates is a few nats.
    x, u = tiny
    spec = build_model("ivae", n_latent=2, data_dim=2, n_domains=5, width=16, depth=1)
    engine = build_engine("svi", spec, batch_size=None)
    params = engine.get_params(engine.init(jax.random.PRNGKey(1), x, u))
    key = jax.random.PRNGKey(2)
    iwae = ELBOS["RenyiELBO"](num_particles=64).loss(key, params, spec.model, spec.guide, x, u)
    elbo = ELBOS["Trace_ELBO"](num_particles=64).loss(key, params, spec.model, spec.guide, x, u)
    assert float(iwae) < float(elbo) - 5.0


def test_semidais_rejects_meanfield_and_unknown_names():
    spec = build_model("ivae", n_latent=2, data_dim=2, n_domains=5, guide="semidais")
    with pytest.raises(InputError, match="Trace_ELBO"):
        build_engine("svi", spec, elbo="TraceMeanField_ELBO")
    with pytest.raises(InputError, match="valid guides: autonormal, encoder"):
        build_model("ivae", n_latent=2, data_dim=2, n_domains=5, guide="flowy")
    with pytest.raises(InputError, match="valid engines: iwae, nuts, svi"):
        build_engine("hmc", spec)


def test_grid_product_ids_and_errors(tmp_path):
    g = make_grid(data=dict(TINY, domains=[3, 5]), engines=["svi", "iwae"], seeds=3, steps=10)
    cells = g.cells()
    assert len(cells) == 4 and all(c.seeds == (0, 1, 2) for c in cells)
    assert len({c.cell_id for c in cells}) == 4
    again = make_grid(data=dict(TINY, domains=[3, 5]), engines=["svi", "iwae"], seeds=3,
                      steps=10)
    assert [c.cell_id for c in again.cells()] == [c.cell_id for c in cells]
    longer = make_grid(data=dict(TINY, domains=[3, 5]), engines=["svi", "iwae"], seeds=3,
                       steps=11)
    assert not {c.cell_id for c in longer.cells()} & {c.cell_id for c in cells}
    with pytest.raises(InputError, match="valid engines: svi, svi_meanfield, iwae"):
        make_grid(engines=["sv1"])
    with pytest.raises(InputError, match="valid metrics"):
        make_grid(metrics=["mcc", "accuracy"])
    assert make_grid(engines=["nuts"]).engines["nuts"]["engine"] == "nuts"
    toml = tmp_path / "g.toml"
    toml.write_text('[grid]\nseeds = [0, 4]\nengines = ["svi", "iwae16"]\nsteps = 50\n'
                    '[data]\nlatent_dim = 2\ndomains = [3, 5, 7]\n'
                    '[engines.iwae16]\npreset = "iwae"\nnum_particles = 16\n')
    g = load_grid(toml)
    assert len(g.cells()) == 6 and g.seeds == (0, 4)
    assert g.engines["iwae16"] == dict(engine="iwae", elbo="RenyiELBO", guide="encoder",
                                       num_particles=16, steps=50)
    toml.write_text("[grid]\nseed = 3\n")
    with pytest.raises(InputError, match="unknown \\[grid\\] key"):
        load_grid(toml)


def test_time_to_threshold():
    assert time_to_threshold([1, 2, 3], [0.2, 0.91, 0.5]) == 2.0
    assert np.isnan(time_to_threshold([1, 2], [0.2, 0.3]))


def test_compare_cli_in_process_tiny_grid_and_resume(tmp_path, capsys):
    from ppl_ident.cli import main

    out = tmp_path / "cmp"
    argv = ["compare", "--out", str(out), "--scheduler", "none", "--latent-dim", "2",
            "--domains", "5", "--points-per-domain", "60", "--mixing-layers", "2",
            "--engines", "svi", "flow", "--seeds", "2", "--steps", "200", "--eval-every",
            "100"]
    assert main(argv) == 0
    import pandas as pd
    import xarray as xr

    df = pd.read_csv(out / "results.csv")
    assert len(df) == 4 and (df["status"] == "done").all()
    assert set(df["engine"]) == {"svi", "flow"} and set(df["seed"]) == {0, 1}
    assert df["mcc"].between(0, 1).all() and df["mcc_dim1"].between(0, 1).all()
    # 200 steps on 2 identifiable latents: both models recover them far above chance (~0.1
    # for unrelated latents, ~0.6 for raw x on this 2-layer mixing); seen 0.74-0.87.
    assert df["mcc"].min() > 0.7
    assert np.isfinite(df["elbo_per_obs"]).all()
    assert (df["run_time_s"] > 0).all() and (df["seeds_in_batch"] == 2).all()
    # Every metric ran (all of METRICS by default) and gave numbers in their ranges; the
    # flow's z is a point estimate, so its posterior metrics say why they are absent.
    svi, flow = df[df["engine"] == "svi"], df[df["engine"] == "flow"]
    assert svi["psis_khat_max"].notna().all() and (svi["calibration_90_status"] == "ok").all()
    assert svi["calibration_90"].between(0, 1).all()
    for col in ("calibration_90_status", "psis_khat_status"):
        assert flow[col].str.startswith("not applicable: the exact flow's z is a point").all()
    assert flow["calibration_90"].isna().all() and flow["psis_khat_max"].isna().all()
    assert (df["jacobian_status"] == "ok").all() and df["jacobian_amari"].between(0, 1).all()
    # the flow's held-out likelihood is exact (no Monte Carlo error); the guide's is not
    assert np.isfinite(df["heldout_loglik"]).all() and (svi["heldout_loglik_se"] > 0).all()
    assert (flow["heldout_loglik_se"] == 0).all()
    ds = xr.open_dataset(out / "results.nc", engine="h5netcdf")
    assert dict(ds["mcc"].sizes) == {"setting": 1, "model": 1, "engine": 2, "seed": 2}
    np.testing.assert_allclose(
        ds["mcc"].sel(engine="flow", seed=1).item(),
        df.query("engine == 'flow' and seed == 1")["mcc"].item(), rtol=1e-5)
    ds.close()
    for png in ("mcc_by_engine.png", "time_vs_mcc.png"):
        assert (out / png).stat().st_size > 1000
    cells = sorted((out / "cells").glob("*.json"))
    rec = json.loads(cells[0].read_text())
    assert rec["status"] == "done" and len(rec["trace"]["step"]) == 2
    mtimes = [c.stat().st_mtime_ns for c in cells]
    capsys.readouterr()
    # Re-running the same command runs nothing: every cell file is kept as it is.
    assert main(argv + ["--no-plots"]) == 0
    assert "(2 already done)" in capsys.readouterr().err
    assert [c.stat().st_mtime_ns for c in cells] == mtimes
    assert pd.read_csv(out / "results.csv").equals(df)


def test_to_dataset_dims_from_table():
    import pandas as pd

    df = pd.DataFrame(dict(setting=["a", "a", "b", "b"], model="ivae", engine=["svi", "svi",
                           "svi", "svi"], seed=[0, 1, 0, 1], mcc=[0.1, 0.2, 0.3, 0.4],
                           domains=[3, 3, 5, 5], status="done"))
    ds = to_dataset(df)
    assert ds["mcc"].sel(setting="b", seed=1).item() == 0.4
    assert list(ds["domains"].values) == [3, 5]


def test_worker_env_single_thread_flags(monkeypatch):
    from ppl_ident.harness import worker_env

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1 "
                                    "--xla_cpu_multi_thread_eigen=true")
    env = worker_env(1)
    assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=1",
                                        "--xla_cpu_multi_thread_eigen=false"]
    assert env["OMP_NUM_THREADS"] == "1"
    assert "multi_thread_eigen" not in worker_env(2)["XLA_FLAGS"]
    import os
    from pathlib import Path

    # Spawned workers import this very package.
    assert (Path(env["PYTHONPATH"].split(os.pathsep)[0]) / "ppl_ident" / "harness").is_dir()


def test_grid_with_nuts_in_process(tmp_path):
    # svi and nuts (NUTS on z under the parameters of an svi fit with the same seed) on 3
    # domains x 50 points: a complete table, the sampler's metrics finite, the others marked.
    from ppl_ident.harness import run_grid

    small = dict(width=16, depth=1)
    grid = make_grid(data=dict(latent_dim=2, domains=3, points_per_domain=50, mixing_layers=2),
                     engines={"svi": small, "nuts": dict(small, preset="nuts", num_warmup=100,
                                                         num_samples=100, num_chains=2,
                                                         sample_obs=40)},
                     seeds=2, steps=150, eval_every=150,
                     metrics=["mcc", "elbo", "timing", "calibration_90", "mcmc"])
    assert grid.engines["nuts"]["base"] == "svi" and grid.engines["nuts"]["steps"] == 150
    df = run_grid(grid, tmp_path, scheduler="none", progress=False)
    assert len(df) == 4 and (df["status"] == "done").all()
    nuts, svi = df[df["engine"] == "nuts"], df[df["engine"] == "svi"]
    assert np.isfinite(nuts["mcc"]).all() and nuts["mcc"].between(0, 1).all()
    # the posterior mean under the fitted decoder and the guide's mean on the same 40
    # observations identify about equally well (the same model; seen within 0.01)
    assert np.allclose(nuts["mcc"], nuts["base_mcc"], atol=0.1)
    assert (nuts["calibration_90_status"] == "ok").all()
    assert nuts["calibration_90"].between(0, 1).all()
    assert (nuts["mcmc_status"] == "ok").all() and (nuts["sample_obs"] == 40).all()
    assert np.isfinite(nuts["rhat_max"]).all() and (nuts["ess_bulk_min"] > 0).all()
    assert (nuts["num_steps"] == 200).all() and (nuts["base_steps"] == 150).all()
    assert (nuts["run_time_s"] > 0).all() and (nuts["base_run_time_s"] > 0).all()
    assert nuts["elbo_status"].str.startswith("not applicable").all()
    assert svi["mcmc_status"].str.startswith("not applicable").all()
    assert np.isfinite(svi["elbo_per_obs"]).all() and (svi["calibration_90_status"] == "ok").all()


def test_grid_refuses_the_values_fit_refuses():
    """An engine's fit options are checked as `fit` checks them, when the grid is made."""
    with pytest.raises(InputError, match="Engine 'svi': learning_rate must be > 0, got -1.0"):
        make_grid(engines={"svi": {"learning_rate": -1.0, "width": 8}})
    with pytest.raises(InputError, match="Engine 'svi': width must be a positive integer"):
        make_grid(engines={"svi": {"width": 0}})
    with pytest.raises(InputError, match="Engine 'iwae8': num_particles must be a positive"):
        make_grid(engines={"iwae8": {"preset": "iwae", "num_particles": 0}})
    with pytest.raises(InputError, match="steps must be a positive integer"):
        make_grid(engines=["svi"], steps=0)
    with pytest.raises(InputError, match="unknown prior 'student'; valid priors: gaussian"):
        make_grid(engines={"svi": {"prior": "student"}})
    assert make_grid(engines={"svi": {"width": 8, "prior": "laplace"}}).engines["svi"][
        "prior"] == "laplace"
    # the default model is a preset; NUTS cannot start from it (its z is a point estimate)
    assert make_grid(engines=["flow"]).engines["flow"]["flow"] is True
    for bad in (dict(base="flow"), dict(base="svi", flow=True)):
        with pytest.raises(InputError, match="a posterior over z to sample; valid bases: svi,"):
            make_grid(engines={"nuts": dict(preset="nuts", **bad)})


def test_grid_rejects_bad_sampler_entries():
    with pytest.raises(InputError, match="apply only to the sampler"):
        make_grid(engines={"svi": dict(num_chains=4)})
    with pytest.raises(InputError, match="valid bases: svi, svi_meanfield"):
        make_grid(engines={"nuts": dict(base="nuts")})
    with pytest.raises(InputError, match="no amortised encoder"):
        make_grid(engines={"nuts": dict(base="autonormal")})
    with pytest.raises(InputError, match="num_chains >= 2"):
        make_grid(engines={"nuts": dict(num_chains=1)})
    with pytest.raises(InputError, match="sample_obs"):
        make_grid(engines={"nuts": dict(sample_obs=0)})
    g = make_grid(engines={"nuts_fc": dict(preset="nuts", base="svi_fullcov", steps=7)})
    from ppl_ident.harness.grid import base_entry

    assert base_entry(g.engines["nuts_fc"]) == dict(engine="svi", elbo="Trace_ELBO",
                                                    guide="encoder_fullcov", steps=7)


def test_compare_takes_a_users_table(tmp_path, capsys):
    """`compare --data TABLE.csv --u-col` fits the grid on the user's rows (no simulator, no
    true latents: MCC columns are absent, the seeds' agreement is there); simulator flags
    with --data are refused, naming the fix."""
    import pandas as pd

    from ppl_ident.cli import main
    from ppl_ident.data import simulate_domains

    data, _ = simulate_domains(0, n_latent=2, data_dim=2, n_domains=4, n_per_domain=50,
                               n_layers=2)
    table = pd.DataFrame({"site": [f"s{k}" for k in data.u], "a": data.x[:, 0],
                          "b": data.x[:, 1]})
    path = tmp_path / "mine.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "cmp"
    argv = ["compare", "--out", str(out), "--scheduler", "none", "--data", str(path),
            "--u-col", "site", "--engines", "svi", "--seeds", "2", "--steps", "60",
            "--metrics", "elbo", "heldout_loglik", "--no-plots", "--quiet"]
    assert main(argv) == 0
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 2 and (df["status"] == "done").all()
    assert df["setting"].iloc[0] == "file-mine-n2" and "mcc" not in df.columns
    assert df["seed_agreement"].between(0, 1).all() and np.isfinite(df["heldout_loglik"]).all()
    capsys.readouterr()
    assert main(argv + ["--domains", "5"]) == 2
    assert "--domains sets the simulator" in capsys.readouterr().err
    assert main(["compare", "--out", str(out), "--u-col", "site"]) == 2
    assert "add --data FILE" in capsys.readouterr().err


def test_a_cell_whose_seeds_diverge_stops_and_says_so(tmp_path):
    """The harness applies the fit's divergence policy: a learning rate of 1e30 makes every
    seed's steps non-finite, the cell stops early (fewer than its 400 steps) and each row
    says why; the parameters it keeps are the last finite ones."""
    from ppl_ident.harness.run import run_cell

    g = make_grid(data=dict(TINY, domains=3), engines={"svi": {"learning_rate": 1e30,
                                                               "width": 8}},
                  seeds=2, steps=400, eval_every=50, metrics=["mcc", "timing"])
    rec = json.loads(Path(run_cell(g.cells()[0], tmp_path)).read_text())
    for row in rec["rows"]:
        assert row["stop_reason"].startswith("diverged: ") and row["num_steps"] < 400
        assert np.isfinite(row["mcc"])


def test_grid_checks_every_cell_as_fit_does():
    """Every cell's settings pass `ppl-ident fit`'s own check when the grid is made: every bad
    value is named at once, a setting of the other family and the variational settings of an
    exact flow are refused, and an unset `flow` is decided as `fit` decides it."""
    with pytest.raises(InputError, match="Engine 'svi': learning_rate must be > 0, got -1.0; "
                                         "width must be a positive integer, got 0"):
        make_grid(engines={"svi": {"learning_rate": -1.0, "width": 0}})
    with pytest.raises(InputError, match=r"--lag \(lag=2\) applies to the models tivae"):
        make_grid(engines={"svi": {"lag": 2}})
    with pytest.raises(InputError, match="--elbo, --guide set the variational model"):
        make_grid(engines={"svi": {"flow": True}})
    with pytest.raises(InputError, match="Unknown guide 'autonormal' for model 'tivae'"):
        make_grid(data=dict(generator="dynamics"), models=["tivae"], engines=["autonormal"])
    # `default` is what `fit` runs: the exact flow for n = d, the variational model for n < d
    grid = make_grid(data=dict(latent_dim=2, data_dim=[2, 3]), engines=["default", "svi"])
    assert [(c.data["data_dim"], c.engine, c.resolved_settings().flow)
            for c in grid.cells()] == [(2, "default", True), (2, "svi", False),
                                       (3, "default", True), (3, "svi", False)]
    assert make_grid(data=dict(latent_dim=2, data_dim=3), engines={"default": {"whiten": False}}
                     ).cells()[0].resolved_settings().flow is False


def test_a_model_on_another_familys_data_is_refused():
    with pytest.raises(InputError, match="Model 'tivae' \\(sequence family\\) takes the data of "
                                         "the generator\\(s\\) segments, dynamics, regimes"):
        make_grid(models=["tivae"])
    with pytest.raises(InputError, match="compare the models tivae, regime, stationary"):
        make_grid(data=dict(generator="dynamics"), models=["ivae"])
    with pytest.raises(InputError, match="labels u are hidden"):
        make_grid(data=dict(generator="regimes"), models=["tivae"])
    with pytest.raises(InputError, match="'nuts': the nuts sampler runs one chain per "
                                         "observation"):
        make_grid(data=dict(generator="dynamics"), models=["stationary"], engines=["nuts"])
    with pytest.raises(InputError, match="Unknown data setting\\(s\\) \\['points_per_domain'\\] "
                                         "for the dynamics generator"):
        make_grid(data=dict(generator="dynamics", points_per_domain=10), models=["tivae"])
    with pytest.raises(InputError, match="different model families"):
        make_grid(data=dict(generator=["domains", "dynamics"]))
    # without models, the data family's default model
    assert make_grid(data=dict(generator="regimes")).models == ("regime",)
    assert make_grid(data=dict(generator="dynamics")).models == ("tivae",)


def test_a_default_model_cell_is_fit_models_fit(tmp_path):
    """One fit path: a cell of the default engine on n = d data is the exact flow, and its
    seed 0 is `fit_model`'s fit with the same settings (same MCC and ELBO)."""
    from ppl_ident.harness.run import cell_data, run_cell
    from ppl_ident.workflow import fit_model

    grid = make_grid(data=TINY, engines={"default": dict(
        width=8, flow_layers=2)}, seeds=[0], steps=40, eval_every=40,
        metrics=["mcc", "elbo", "calibration_90"])
    cell = grid.cells()[0]
    assert cell.resolved_settings().flow
    row = json.loads(Path(run_cell(cell, tmp_path)).read_text())["rows"][0]
    train, _, _ = cell_data(cell.data)
    fitted = fit_model(train, cell.fit_settings())
    assert fitted.settings.flow and fitted.metrics["stop_reason"] == "completed"
    np.testing.assert_allclose(row["mcc"], fitted.metrics["mcc"], atol=1e-5)
    np.testing.assert_allclose(row["elbo_per_obs"], fitted.metrics["elbo_per_obs"], rtol=1e-5)
    assert row["calibration_90_status"].startswith("not applicable: the exact flow's z")


def test_a_sequence_cell_scores_every_step(tmp_path):
    """A cell of the temporal iVAE on simulated sequences (64 sequences x 4 steps): the cell's
    MCC is `fit_model`'s (over every step of every sequence); the per-observation importance
    weights say why they do not apply."""
    from ppl_ident.harness.run import cell_data, run_cell
    from ppl_ident.workflow import fit_model

    grid = make_grid(data=dict(generator="dynamics", latent_dim=2, sequences=64, length=4),
                     models=["tivae"], engines={"svi": dict(width=8, depth=1)}, seeds=[0],
                     steps=30, eval_every=30, metrics=["mcc", "elbo", "psis_khat"])
    cell = grid.cells()[0]
    assert cell.setting == "dynamics-n2-d2-B64-T4-ds0"
    row = json.loads(Path(run_cell(cell, tmp_path)).read_text())["rows"][0]
    train, heldout, truth = cell_data(cell.data)
    assert train.x.shape == (64, 4, 2) and heldout is None
    fitted = fit_model(train, cell.fit_settings())
    np.testing.assert_allclose(row["mcc"], fitted.metrics["mcc"], atol=1e-5)
    assert 0 < row["mcc"] < 1 and {"mcc_dim0", "mcc_dim1"} <= set(row)
    # the ELBO per observation is per time step: fit_model's
    np.testing.assert_allclose(row["elbo_per_obs"], fitted.metrics["elbo_per_obs"], rtol=1e-5)
    assert row["psis_khat_status"].startswith("not applicable: its importance weights are "
                                              "one per independent observation")
