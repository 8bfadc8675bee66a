"""``ppl-ident check`` on sequence files and sequence runs, against the ranks the theory gives.

For a Gaussian transition ``N(f(past) + loc_k, scale_k)`` the first derivatives of the log
density move with the past and the row ``k`` (domain, regime), the second derivatives with the
row only. With (past, row) pairs as auxiliary values over ``R`` rows the seed's rank is
``n + min(n, R - 1)``; with the past alone it is ``n`` (see
:mod:`ppl_ident.families.sequence.checks`).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppl_ident.workflow import check_data, check_run
from ppl_ident.cli import main
from ppl_ident.data.sequences import simulate_sequences
from ppl_ident.workflow import FitSettings

N = 2


@pytest.fixture(scope="module")
def seqdir(tmp_path_factory):
    """A tiny dynamics file (20 sequences x 20 steps, n = 2, 5 domains changing locations and
    scales) and a 100-step variational temporal iVAE fit of it, made once through the CLI."""
    root = tmp_path_factory.mktemp("check_seq")
    data = root / "dyn.npz"
    assert main(["simulate", "--generator", "dynamics", "--out", str(data), "--latent-dim",
                 str(N), "--data-dim", str(N), "--sequences", "20", "--length", "20",
                 "--seed", "0"]) == 0
    run = root / "run"
    assert main(["fit", str(data), "--model", "tivae", "--out", str(run), "--steps", "100",
                 "--batch-size", "80", "--width", "16", "--depth", "1", "--no-progress",
                 "--no-flow"]) == 0  # the variational model: its encoder route is tested
    return root, data, run


def test_check_dynamics_file_passes_with_rank_2n(seqdir, capsys):
    _, data, _ = seqdir
    capsys.readouterr()
    assert main(["check", str(data), "--json", "--points", "64"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["kind"] == "data" and r["sequence"] and r["generator"] == "dynamics"
    assert r["auxiliary"] == "past+domain" and r["n_rows"] == 5 and r["n_aux"] == 10
    v = r["variability"]
    sv = v["sufficient_variability"]
    assert v["holds"] == ["sufficient_variability"] and v["exponential_family"] is None
    assert (sv["rank"], sv["required"], sv["n_points"], sv["share_passing"]) == (4, 4, 64, 1.0)
    # The past alone: the true transition is homoscedastic in the past, so the second-derivative
    # block vanishes and the rank is exactly n.
    p = r["past_only"]
    assert (p["rank"], p["rank_first"], p["rank_second"], p["passed"]) == (N, N, 0, False)


def test_check_dynamics_file_text_and_out(seqdir, capsys):
    root, data, _ = seqdir
    capsys.readouterr()
    assert main(["check", str(data), "--out", str(root / "plots_data"), "--points", "32"]) == 0
    out, err = capsys.readouterr()
    assert "true dynamics transition densities (lag 1), 2 latents, 5 domains" in out
    assert "seed's condition: rank 4 of 2n = 4" in out and "-> PASS" in out
    assert "past alone (domain" in out and "Traceback" not in out + err
    saved = json.loads((root / "plots_data" / "check.json").read_text())
    assert saved["sequence"] and saved["variability"]["passed"]
    assert (root / "plots_data" / "variability_spectrum.png").read_bytes()[:4] == b"\x89PNG"


# (generator, settings, expected seed rank, expected conditions that hold); n = 2.
RANKS = [
    # dynamics, R domains: rank n + min(n, R - 1)
    ("dynamics", dict(n_domains=1), 2, []),
    ("dynamics", dict(n_domains=2), 3, []),
    ("dynamics", dict(n_domains=5), 4, ["sufficient_variability"]),
    # scale-only noise changes suffice once the past moves the mean (unlike i.i.d. data)
    ("dynamics", dict(n_domains=5, loc_range=0.0), 4, ["sufficient_variability"]),
    ("regimes", dict(n_regimes=2), 3, []),
    ("regimes", dict(n_regimes=3), 4, ["sufficient_variability"]),
    # segments are the i.i.d. case: zero-mean scale changes give rank n, iVAE's condition only
    ("segments", dict(n_segments=5, segment_length=8), 4,
     ["sufficient_variability", "exponential_family"]),
    ("segments", dict(n_segments=5, segment_length=8, loc_range=0.0), 2, ["exponential_family"]),
]


@pytest.mark.parametrize("generator,settings", [
    ("dynamics", dict(n_domains=1)), ("regimes", dict(n_regimes=2))])
def test_heteroscedastic_truth_passes_with_the_past_alone(generator, settings):
    """A noise scale that moves with the past fills the second-derivative block from the past
    alone: rank 2n with a single domain, where the homoscedastic transition has rank n."""
    data, truth = simulate_sequences(generator, 0, n_latent=N, data_dim=N, n_sequences=12,
                                     length=15, scale_gain=1.0, **settings)
    r = check_data(data, truth, n_points=32)
    sv = r["variability"]["sufficient_variability"]
    assert (sv["rank"], sv["rank_second"]) == (2 * N, N)
    assert r["variability"]["holds"] == ["sufficient_variability"]
    assert r["past_only"]["rank"] == 2 * N and r["past_only"]["passed"]
    assert "moves with the past" in r["sequence_reason"]


@pytest.mark.parametrize("generator,settings,rank,holds", RANKS)
def test_true_sequence_ranks_match_the_theory(generator, settings, rank, holds):
    data, truth = simulate_sequences(generator, 0, n_latent=N, data_dim=N, n_sequences=12,
                                     length=15, **settings)
    r = check_data(data, truth, n_points=32)
    sv = r["variability"]["sufficient_variability"]
    assert sv["rank"] == rank and sv["rank_min"] == sv["rank_max"] == rank
    assert r["variability"]["holds"] == holds
    if generator == "segments":
        assert r["auxiliary"] == "segment" and r["past_only"] is None
    else:
        assert r["auxiliary"] == ("past+domain" if generator == "dynamics" else "past+regime")
        assert sv["rank_second"] == min(N, r["n_rows"] - 1)
        assert r["past_only"]["rank"] == N and r["past_only"]["rank_second"] == 0
        assert f"n + min(n, R - 1) = {rank}" in r["sequence_reason"]


def test_check_tivae_run_is_finite_and_within_the_bound(seqdir, capsys):
    from ppl_ident.cli.check import _summary

    root, _, run = seqdir
    capsys.readouterr()
    # One check (each compiles its own functions): JSON on stdout, plots and check.json in --out.
    assert main(["check", str(run), "--json", "--points", "64", "--out",
                 str(root / "plots_run")]) == 0
    out, err = capsys.readouterr()
    r = json.loads(out)
    assert "Traceback" not in err
    assert r["kind"] == "run" and r["sequence"] and r["model"] == "tivae"
    assert r["auxiliary"] == "past+domain" and r["n_points"] == 64 and r["n_aux"] == 10
    sv = r["variability"]["sufficient_variability"]
    assert 0 <= sv["rank"] <= 2 * N and np.isfinite(sv["share_passing"])
    # The learned transition is homoscedastic in the past: the past alone gives rank <= n
    # with a zero second-derivative block, whatever the fit learned.
    p = r["past_only"]
    assert p["rank"] <= N and p["rank_second"] == 0 and not p["passed"]
    for route in ("encoder", "decoder"):
        j = r["jacobian"][route]
        assert 0.0 <= j["amari"] <= 1.0 and 0.0 <= j["agreement"] <= 1.0
        assert j["n_points"] == 64 and np.asarray(j["aligned"]).shape == (N, N)
    assert f"context c = {FitSettings().context}" in r["jacobian"]["reason"]

    text = _summary(r, str(run))  # what the command prints without --json
    assert (f"fitted tivae (lag 1, encoder context {FitSettings().context}), 64 evaluation "
            "points") in text
    assert "learned transition density" in text and "past alone (domain" in text
    assert "encoder route" in text and "decoder route" in text
    assert json.loads((root / "plots_run" / "check.json").read_text()) == r
    for name in ("variability_spectrum.png", "jacobian_encoder.png", "jacobian_decoder.png"):
        assert (root / "plots_run" / name).read_bytes()[:4] == b"\x89PNG"


def test_encoder_route_window_reproduces_the_sequence_encoder(seqdir):
    """The encoder route's per-point window (centre step free, neighbours fixed, edges
    repeated) gives exactly the guide's mean on the noise-free sequences, ends included."""
    from ppl_ident.families.sequence.checks import _centre_encoder
    from ppl_ident.data import load_dataset
    from ppl_ident.inference import encode
    from ppl_ident.workflow import load_run
    from ppl_ident.families.sequence.inputs import prepare_sequence_inputs

    _, data_path, run = seqdir
    data, truth = load_dataset(data_path)
    fitted = load_run(run)
    u, _ = prepare_sequence_inputs(data.u, "tivae", fitted.labels)
    x_clean = np.asarray(truth.g(jnp.asarray(data.z)))
    B, T, _ = x_clean.shape
    flat = np.array([0, 1, T - 1, 5 * T + 7, B * T - 1])
    mean, c = _centre_encoder(fitted, x_clean, u, flat)
    got = np.stack([np.asarray(mean(jnp.asarray(x_clean.reshape(-1, N)[i]), p))
                    for p, i in enumerate(flat)])
    want = np.asarray(encode(fitted.spec, fitted.params, x_clean, u)[0]).reshape(-1, N)[flat]
    assert c == FitSettings().context
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_stationary_control_has_rank_n_with_the_past():
    """The stationary control's learned transition, ``N(f(past) + loc, scale)`` with one row:
    its second derivatives never change, so the rank is at most n, and exactly n when the
    mean differences f(past_j) - f(past_0) span R^n (generic for a random network)."""
    from ppl_ident.families import build_model
    from ppl_ident.workflow import FitSettings, Fitted

    data, _ = simulate_sequences("dynamics", 0, n_latent=N, data_dim=N, n_sequences=10,
                                 length=10)
    # Initialised networks and the model's default tables exercise the same code path as a
    # fit without compiling a training loop; the bound holds for any parameters.
    spec = build_model("stationary", jax.random.PRNGKey(0), n_latent=N, data_dim=N, width=8,
                       depth=1)
    params = {**spec.init_params(jax.random.PRNGKey(1)), "trans_loc": jnp.zeros((1, N)),
              "trans_scale": jnp.ones((1, N))}
    fitted = Fitted(spec, params, None, FitSettings(model="stationary"), None, np.zeros(1), {})
    r = check_run(fitted, data, None, n_points=32)  # no truth: the exact routes are tested above
    sv = r["variability"]["sufficient_variability"]
    assert r["auxiliary"] == "past" and r["past_only"] is None and r["n_aux"] == 4 * N + 1
    assert (sv["rank"], sv["rank_first"], sv["rank_second"]) == (N, N, 0)
    assert not r["variability"]["passed"] and "homoscedastic" in sv["reason"]
    assert "cannot meet the condition" in r["sequence_reason"]
    # the data hold z but the check was given no mixing: the regression route stands in
    assert set(r["jacobian"]) - {"applicable", "standardised", "reason"} == {"regression"}


def test_sequence_check_errors_exit_2(seqdir, tmp_path, capsys):
    _, data, run = seqdir
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.ones((10, 2), np.float32), u=np.arange(10) % 2)
    capsys.readouterr()
    assert main(["check", str(run), "--data", str(plain)]) == 2
    assert "sequence model" in capsys.readouterr().err
    # a dynamics file whose labels were dropped
    with np.load(data) as f:
        arrays = {k: f[k] for k in f.files if k != "u"}
    no_u = tmp_path / "no_u.npz"
    np.savez(no_u, **arrays)
    assert main(["check", str(no_u)]) == 2
    err = capsys.readouterr().err
    assert "labels u of shape (B, T)" in err and "Traceback" not in err


def test_regression_route_on_a_sequence_file_with_z_only(seqdir, tmp_path, capsys):
    """A sequence file of one's own with ``z`` but no simulator mixing: the Jacobian comes from
    local linear fits over all time steps, and it agrees with the exact routes of the same run
    on the simulator file."""
    from ppl_ident.workflow import load_run, load_run_data

    root, data, run = seqdir
    fitted = load_run(run)
    dataset, truth, _, _ = load_run_data(run)
    exact = check_run(fitted, dataset, truth, n_points=64)["jacobian"]
    est = check_run(fitted, dataset, None, n_points=64)["jacobian"]
    assert "encoder" not in est and est["applicable"] and "time steps" in est["reason"]
    reg = est["regression"]
    for route in ("encoder", "decoder"):
        assert reg["matching"] == exact[route]["matching"]
        # 400 steps, 30 neighbours in 2-D: a coarser estimate than the exact routes
        assert reg["amari"] == pytest.approx(exact[route]["amari"], abs=0.15)

    with np.load(data) as f:
        np.savez(tmp_path / "own.npz", x=f["x"], u=f["u"], z=f["z"])
    capsys.readouterr()
    assert main(["check", str(run), "--data", str(tmp_path / "own.npz"), "--points", "64"]) == 0
    out = capsys.readouterr().out
    assert "no ground truth" not in out and "regression route:" in out
