"""The workflow against runs written by the previous release (0.1, the ``src/`` layout):
they load, evaluate to the numbers they recorded, and an old checkpoint resumes.

The fixtures in ``fixtures/release_0_1`` were written by ``ppl-ident`` at commit a5b4443::

    ppl-ident simulate --out iid.npz --latent-dim 2 --domains 5 --points-per-domain 20 \\
        --mixing-layers 1
    ppl-ident fit iid.npz --out ivae --steps 20 --width 8 --depth 1 --posterior-draws 0
    ppl-ident simulate --generator dynamics --out seq.npz --sequences 4 --length 6 \\
        --latent-dim 2 --data-dim 2 --domains 2
    ppl-ident fit seq.npz --out tivae --model tivae --steps 20 --width 8 --depth 1 \\
        --posterior-draws 0
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ppl_ident.data import load_dataset
from ppl_ident.errors import InputError
from ppl_ident.workflow import (RUN_FORMAT, evaluate, fit_model, load_run, resume_run,
                                save_run)

FIXTURES = Path(__file__).parent / "fixtures" / "release_0_1"


@pytest.mark.parametrize(["run", "data"], [("ivae", "iid.npz"), ("tivae", "seq.npz")])
def test_a_run_of_the_previous_release_loads_and_evaluates_the_same(run, data):
    fitted = load_run(FIXTURES / run)
    recorded = json.loads((FIXTURES / run / "metrics.json").read_text())
    assert fitted.spec.config["name"] == run and len(fitted.losses) == 20
    dataset, truth = load_dataset(FIXTURES / data)
    metrics = evaluate(fitted, dataset)
    np.testing.assert_allclose(metrics["mcc"], recorded["mcc"], rtol=1e-5)
    np.testing.assert_allclose(metrics["r2_per_dim"], recorded["r2_per_dim"], rtol=1e-4,
                               atol=1e-6)
    if run == "tivae":  # written before --transition-width/-depth: --width and --depth's
        assert (fitted.settings.transition_width, fitted.settings.transition_depth) == (8, 1)
        assert (fitted.spec.config["transition_width"], fitted.spec.config["transition_depth"]) \
            == (8, 1)
        assert fitted.settings.regime_transitions == "shared"
        assert fitted.spec.config.get("regime_transitions", "shared") == "shared"
    # completed by the family: the i.i.d. runs were noiseless; the sequence models leave it unset
    assert fitted.settings.flow_noise is (False if run == "ivae" else None)


def test_a_checkpoint_of_the_previous_release_resumes(tmp_path):
    run = tmp_path / "ivae"
    shutil.copytree(FIXTURES / "ivae", run)
    more = resume_run(run, 30, data_path=str(FIXTURES / "iid.npz"))
    assert more.metrics["resumed_from_step"] == 20 and len(more.losses) == 30
    np.testing.assert_array_equal(more.losses[:20], load_run(FIXTURES / "ivae").losses)
    # the release's config.json has no format number (format 1, completed on reading); the
    # resumed run, saved, records today's
    assert "format" not in json.loads((FIXTURES / "ivae" / "config.json").read_text())
    save_run(tmp_path / "again", more, posterior_draws=0)
    assert json.loads((tmp_path / "again" / "config.json").read_text())["format"] == RUN_FORMAT


def test_a_run_of_a_newer_format_is_refused_with_the_fix(tmp_path):
    run = tmp_path / "ivae"
    shutil.copytree(FIXTURES / "ivae", run)
    config = json.loads((run / "config.json").read_text())
    for fmt, match in ((RUN_FORMAT + 1, f"run format {RUN_FORMAT + 1}, newer than this "
                        f"ppl_ident .* reads \\(format {RUN_FORMAT}\\): upgrade"),
                       ("2", "unknown run format '2'; the run directory is damaged")):
        (run / "config.json").write_text(json.dumps({**config, "format": fmt}))
        with pytest.raises(InputError, match=match):
            load_run(run)


# --------------------------------------------------------------- per-row latents, posterior.nc


@pytest.mark.parametrize(["run", "data"], [("ivae", "iid.npz"), ("tivae", "seq.npz")])
def test_chunked_encoding_equals_one_pass(run, data):
    from ppl_ident.workflow import latent_summary

    fitted = load_run(FIXTURES / run)
    dataset, _ = load_dataset(FIXTURES / data)
    whole = latent_summary(fitted, dataset, chunk_size=10**6)
    # chunks of 7 rows (sequences: 7 // T -> 1 sequence at a time), the last one padded
    chunked = latent_summary(fitted, dataset, chunk_size=7)
    assert whole["mean"].shape == dataset.x.shape[:-1] + (2,)
    for key in ("mean", "sd", "q05", "q95"):
        np.testing.assert_allclose(chunked[key], whole[key], rtol=1e-5, atol=1e-5)
    assert np.all(whole["sd"] > 0)
    np.testing.assert_allclose(whole["q95"] - whole["mean"], whole["mean"] - whole["q05"],
                               rtol=1e-4, atol=1e-6)


def test_the_analytic_interval_matches_the_guide_draws():
    import jax

    from ppl_ident.families.iid.inputs import prepare_inputs
    from ppl_ident.families.predict import guide_latents
    from ppl_ident.workflow import latent_summary

    fitted = load_run(FIXTURES / "ivae")  # a full-covariance guide: marginals are Gaussian
    dataset, _ = load_dataset(FIXTURES / "iid.npz")
    rows = slice(0, 5)
    summary = latent_summary(fitted, dataset)
    u, _ = prepare_inputs(dataset.u, fitted.labels)
    z = guide_latents(fitted.spec, fitted.params, dataset.x[rows], u[rows],
                      key=jax.random.PRNGKey(1), num_draws=4000).z[0]
    sd = summary["sd"][rows]
    # Monte Carlo error of a 5 % quantile from 4000 draws: about 0.03 sd
    for key, q in (("q05", 0.05), ("q95", 0.95)):
        assert np.all(np.abs(np.quantile(z, q, axis=0) - summary[key][rows]) < 0.15 * sd)
    assert np.all(np.abs(z.std(axis=0) - sd) < 0.1 * sd)


def test_encode_rows_is_a_table_of_every_row():
    from ppl_ident.data import Columns
    from ppl_ident.workflow import encode_rows, latent_summary

    fitted = load_run(FIXTURES / "ivae")
    dataset, _ = load_dataset(FIXTURES / "iid.npz")
    summary = latent_summary(fitted, dataset)
    df = encode_rows(fitted, dataset, chunk_size=7)
    assert list(df.columns) == ["u"] + [f"z{j}_{s}" for j in range(2)
                                       for s in ("mean", "sd", "q05", "q95")]
    np.testing.assert_array_equal(df["u"], dataset.u)
    np.testing.assert_allclose(df["z1_q05"], summary["q05"][:, 1], rtol=1e-5, atol=1e-5)
    # a table's domain names come back in its own u column
    names = tuple(f"site{k}" for k in range(5))
    df = encode_rows(fitted, dataset, columns=Columns(u="where", u_kind="categories",
                                                      u_categories=names))
    assert df["where"].tolist()[:1] == [names[dataset.u[0]]]

    seq = encode_rows(load_run(FIXTURES / "tivae"), load_dataset(FIXTURES / "seq.npz")[0])
    assert list(seq.columns[:3]) == ["sequence", "time", "u"] and len(seq) == 4 * 6
    assert seq["time"].tolist()[:7] == [0, 1, 2, 3, 4, 5, 0]


def test_encoding_refuses_data_the_model_cannot_take():
    from ppl_ident.data import Dataset
    from ppl_ident.errors import InputError
    from ppl_ident.workflow import latent_summary

    fitted = load_run(FIXTURES / "ivae")
    dataset, _ = load_dataset(FIXTURES / "iid.npz")
    with pytest.raises(InputError, match="takes 5 observed columns; this data has 3"):
        latent_summary(fitted, Dataset(dataset.x[:, :3], dataset.u, None))
    with pytest.raises(InputError, match="fitted with domain labels"):
        latent_summary(fitted, Dataset(dataset.x, dataset.x[:, :2], None))
    with pytest.raises(InputError, match="chunk_size"):
        latent_summary(fitted, dataset, chunk_size=0)


@pytest.mark.parametrize("data_dim", [2, 3])
def test_a_flow_posterior_is_a_point(small_data, data_dim):
    import jax

    from ppl_ident.data import Dataset
    from ppl_ident.families import build_model
    from ppl_ident.ops.observation import whitening
    from ppl_ident.workflow import FitSettings, Fitted, latent_summary

    data, _ = small_data
    x = data.x if data_dim == 2 else np.c_[data.x, data.x[:, :1] * 0.5 + 0.1]
    data = Dataset(x, data.u, None)
    # an exact-likelihood flow model at its initial parameters (d > n: through the top n
    # principal components); its guide is the same point mass z = h(x) after fitting, so no
    # fit is needed to check the summary of a point mass
    spec = build_model("ivae", jax.random.PRNGKey(0), n_latent=2, data_dim=data_dim,
                       n_domains=5, flow=True, flow_layers=1, width=8, depth=1,
                       whiten=whitening(x, 2))
    fitted = Fitted(spec, spec.init_params(jax.random.PRNGKey(1)), None, FitSettings(),
                    np.unique(data.u), np.zeros(0), {})
    s = latent_summary(fitted, data, chunk_size=64)
    assert s["mean"].shape == (len(x), 2)
    assert np.all(s["sd"] == 0) and np.all(np.isfinite(s["mean"]))
    np.testing.assert_array_equal(s["q05"], s["mean"])
    np.testing.assert_array_equal(s["q95"], s["mean"])


def test_save_run_writes_a_posterior_arviz_reads(tiny_fit, small_data, tmp_path):
    from ppl_ident.arviz_compat import groups, read_netcdf
    from ppl_ident.data import save_dataset
    from ppl_ident.workflow import save_run

    data, truth = small_data
    run = save_run(tmp_path / "run", tiny_fit, data, posterior_draws=3, posterior_obs=12)
    idata = read_netcdf(run / "posterior.nc")
    # guide draws (chain, draw, obs, latent), or a flow's point estimate (obs, latent)
    point = "posterior" not in groups(idata)
    post = idata.point_estimate if point else idata.posterior
    assert post["z"].dims[-2:] == ("obs", "latent")
    assert post["z"].shape == ((12, 2) if point else (1, 3, 12, 2))
    # from the recorded data file when no dataset is passed
    path = save_dataset(tmp_path / "d.npz", data, truth)
    run2 = save_run(tmp_path / "run2", tiny_fit, data_path=str(path), posterior_draws=3,
                    posterior_obs=12)
    back = read_netcdf(run2 / "posterior.nc")
    back = back.point_estimate if point else back.posterior
    np.testing.assert_array_equal(back["z"], post["z"])  # the same rows and draws (the seed)
    # without either, the other files are written and the missing posterior is said
    with pytest.warns(UserWarning, match="posterior.nc was not written"):
        run3 = save_run(tmp_path / "run3", tiny_fit)
    assert (run3 / "params.npz").is_file() and not (run3 / "posterior.nc").exists()
    assert not (save_run(tmp_path / "run4", tiny_fit, data, posterior_draws=0)
                / "posterior.nc").exists()


def test_seeds_record_their_agreement_and_check_reports_it(small_data):
    from ppl_ident.workflow import check_run

    data, _ = small_data
    fitted = fit_model(data, steps=60, batch_size=64, width=16, depth=1, seeds=3)
    m = fitted.metrics
    assert 0.0 <= m["seed_agreement_min"] <= m["seed_agreement"] <= 1.0
    matrix = np.asarray(m["seed_agreement_matrix"])
    assert matrix.shape == (3, 3) and np.allclose(matrix, matrix.T)
    assert m["seed_agreement"] == pytest.approx(matrix[np.triu_indices(3, 1)].mean())
    assert len(m["seed_elbos"]) == 3 and m["elbo"] == pytest.approx(max(m["seed_elbos"]))
    result = check_run(fitted, data._replace(z=None), n_points=16)
    assert result["seed_agreement"]["mean"] == m["seed_agreement"]
    assert result["seed_agreement"]["seeds"] == 3
