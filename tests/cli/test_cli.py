"""The ppl-ident command line: smoke tests of simulate / fit / demo and every bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ppl_ident.cli import main

SMALL = ["--latent-dim", "2", "--data-dim", "2", "--domains", "5", "--points-per-domain", "40",
         "--mixing-layers", "2"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "data.npz"
    assert main(["simulate", "--out", str(path), *SMALL]) == 0
    return path


def _fail(argv, capsys, match):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert match in err, err
    return err


def test_simulate_writes_the_data_contract(data_file):
    with np.load(data_file, allow_pickle=False) as npz:
        assert npz["x"].shape == (200, 2) and npz["u"].shape == (200,) and npz["z"].shape == (200, 2)
        assert "truth_mixing_weights" in npz.files


def test_fit_writes_a_run_directory(data_file, tmp_path, capsys):
    out = tmp_path / "run"
    # two flow couplings instead of eight: what is tested is the run directory, not the flow
    code = main(["fit", str(data_file), "--out", str(out), "--steps", "30", "--batch-size", "32",
                 "--flow-layers", "2", "--no-progress"])
    assert code == 0
    assert "MCC" in capsys.readouterr().out
    for name in ["config.json", "params.npz", "state.npz", "losses.npz", "metrics.json"]:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["mcc"] <= 1 and metrics["num_steps"] == 30
    # an existing non-empty run directory is refused, and left untouched
    before = (out / "metrics.json").read_bytes()
    _fail(["fit", str(data_file), "--out", str(out), "--steps", "5"], capsys, "--force")
    assert (out / "metrics.json").read_bytes() == before
    assert main(["fit", str(data_file), "--out", str(out), "--steps", "5", "--batch-size", "16",
                 "--flow-layers", "2", "--no-progress", "--force"]) == 0


def test_demo_runs_on_a_small_setting(tmp_path, capsys, monkeypatch):
    """A second ``ppl-ident demo`` (the README's first command) writes next to the first,
    touching none of its files; a given non-empty --out is refused."""
    monkeypatch.chdir(tmp_path)
    first = tmp_path / "ppl_ident_demo"
    (first / "ivae").mkdir(parents=True)
    (first / "ivae" / "metrics.json").write_text("{}")
    (tmp_path / "ppl_ident_demo-2").mkdir()  # empty: free
    small = ["--domains", "5", "--points-per-domain", "40", "--latent-dim", "2", "--steps",
             "20", "--no-progress", "--no-report"]
    _fail(["demo", "--out", str(first), *small], capsys, "--force")
    assert main(["demo", *small]) == 0
    text = capsys.readouterr().out
    assert "ivae" in text and "vae" in text and "raw x" in text
    assert "writing this one to ppl_ident_demo-2/" in text
    out = tmp_path / "ppl_ident_demo-2"
    assert (out / "ivae" / "metrics.json").is_file() and (out / "vae" / "metrics.json").is_file()
    assert sorted(p.name for p in first.rglob("*")) == ["ivae", "metrics.json"]
    assert (first / "ivae" / "metrics.json").read_text() == "{}"


def _npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return str(path)


X = np.random.default_rng(0).normal(size=(30, 2))
U = np.repeat(np.arange(6), 5)


@pytest.mark.parametrize("arrays,match", [
    (dict(u=U), "no 'x'"),
    (dict(x=X), "no 'u'"),
    (dict(x=X, u=U[:-1]), "one entry per observation"),
    (dict(x=X, u=U, z=X[:-2]), "'z' has shape"),
    (dict(x=np.where(np.arange(60).reshape(30, 2) == 7, np.nan, X), u=U), "NaN"),
    (dict(x=X, u=U + 0.5), "non-integer"),
    (dict(x=X, u=U - 1), "negative"),
    (dict(x=X, u=np.zeros(30, int)), "single domain"),
])
def test_bad_data_files_exit_2(tmp_path, capsys, arrays, match):
    _fail(["fit", _npz(tmp_path, **arrays), "--out", str(tmp_path / "r"), "--steps", "2"],
          capsys, match)
    assert not (tmp_path / "r").exists()


def test_missing_file_and_bad_sizes_exit_2(tmp_path, data_file, capsys):
    _fail(["fit", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "r")], capsys,
          "does not exist")
    _fail(["fit", str(data_file), "--out", str(tmp_path / "r"), "--latent-dim", "3"], capsys,
          "--latent-dim <= 2")
    # argparse rejects non-positive sizes itself; main() returns its exit code 2
    _fail(["fit", str(data_file), "--out", str(tmp_path / "r"), "--steps", "0"], capsys,
          "positive integer")
    _fail(["simulate", "--out", str(data_file)], capsys, "already exists")


def test_too_few_domains_warns_with_the_consequence(tmp_path, capsys):
    path = _npz(tmp_path, x=X, u=U % 3)
    assert main(["fit", path, "--out", str(tmp_path / "r"), "--steps", "2", "--batch-size", "8",
                 "--flow-layers", "2", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "2n+1=5" in err and "not guaranteed to be identifiable" in err


def test_console_entry_point_runs_as_a_subprocess(tmp_path):
    out = tmp_path / "x.npz"
    proc = subprocess.run([sys.executable, "-m", "ppl_ident.cli", "simulate", "--out", str(out),
                           "--latent-dim", "3", "--data-dim", "2"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "data_dim >= n_latent" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_a_closed_stdout_pipe_ends_quietly_with_the_sigpipe_code(monkeypatch):
    """``ppl-ident check run | head``: the reader leaves, the CLI exits 141 without a traceback
    and points stdout at /dev/null so that the interpreter's last flush cannot fail."""
    import ppl_ident.cli as cli

    def reader_gone(argv):
        raise BrokenPipeError

    redirected = []
    monkeypatch.setattr(cli, "_main", reader_gone)
    monkeypatch.setattr(cli.os, "dup2", lambda fd, target: redirected.append(target))
    monkeypatch.setattr(cli.sys, "stdout", type("Out", (), {"fileno": lambda self: 1})())
    assert cli.main(["simulate", "--help"]) == 141
    assert redirected == [1]


def test_top_level_help_does_not_import_jax():
    """``ppl-ident --help`` builds no sub-command's arguments and imports no JAX (measured:
    0.06 s instead of 2.6 s)."""
    code = ("import sys\nfrom ppl_ident.cli import main\nassert main(['--help']) == 0\n"
            "assert 'jax' not in sys.modules, sorted(m for m in sys.modules if 'jax' in m)[:3]")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "fit" in done.stdout and "compare" in done.stdout


@pytest.mark.parametrize("argv,match", [
    (["--generator", "regimes", "--regimes", "1"], "--regimes 2 or more"),
    (["--domains", "1"], "--domains 2 or more"),
    (["--generator", "segments", "--segments", "1"], "--segments 2 or more"),
    (["--generator", "regimes", "--regimes", "0"], "expected a positive integer"),
    (["--generator", "regimes", "--stay-prob", "1"], "stay_prob must be in [0, 1)"),
    (["--generator", "dynamics", "--length", "3", "--lag", "3"], "must exceed lag"),
])
def test_simulate_refuses_counts_that_make_no_sense(tmp_path, capsys, argv, match):
    out = tmp_path / "d.npz"
    _fail(["simulate", "--out", str(out), *SMALL[:4], *argv], capsys, match)
    assert not out.exists()


def test_simulate_keeps_one_domain_for_dynamics(tmp_path):
    """One domain is a real setting for dynamics: the past is the auxiliary variable."""
    out = tmp_path / "d.npz"
    assert main(["simulate", "--out", str(out), "--generator", "dynamics", "--domains", "1",
                 "--sequences", "3", "--length", "5", *SMALL[:4]]) == 0


def test_simulate_published_generator_ports(tmp_path, capsys):
    """--generator nctrl|ctrlns|tdrl_* run the ports with their originals' settings; the
    package generators' flags are refused, and the counts must fit the generator."""
    out = tmp_path / "nctrl.npz"
    assert main(["simulate", "--out", str(out), "--generator", "nctrl", "--sequences", "30",
                 "--regimes", "3"]) == 0
    npz = np.load(out)
    assert npz["x"].shape == (30, 6, 8) and "u" not in npz
    assert str(npz["truth_published"]) == "nctrl" and npz["truth_param_P"].shape == (3, 8, 8)
    _fail(["simulate", "--out", str(tmp_path / "a.npz"), "--generator", "nctrl", "--length",
           "9"], capsys, "--length set(s) the package's own generators")
    _fail(["simulate", "--out", str(tmp_path / "b.npz"), "--generator", "tdrl_stationary",
           "--regimes", "3"], capsys, "tdrl_stationary has none")
    _fail(["simulate", "--out", str(tmp_path / "c.npz"), "--generator", "ctrlns",
           "--sequences", "40"], capsys, "multiple of 32")
    _fail(["simulate", "--out", str(tmp_path / "d.npz"), "--generator", "ctrlns",
           "--style", "published"], capsys, "has none")


def test_simulate_published_transition_kinds(tmp_path, capsys):
    """--transition post_nonlinear, --domain-transitions, --noise changing reach the simulator
    and its truth; on a generator without a transition they are refused."""
    out = tmp_path / "pnl.npz"
    assert main(["simulate", "--out", str(out), "--generator", "dynamics", "--sequences", "50",
                 "--length", "4", "--lag", "2", "--transition", "post_nonlinear",
                 "--domain-transitions", "--noise", "changing", *SMALL[:4]]) == 0
    npz = np.load(out)
    assert float(npz["truth_pnl_slope"]) == 0.2 and npz["truth_trans_w1"].shape[0] == 5
    assert npz["truth_noise_families"].tolist() == [0, 1, 2, 0, 1]
    _fail(["simulate", "--out", str(tmp_path / "s.npz"), "--generator", "segments",
           "--noise", "changing", *SMALL[:4]], capsys, "has none")
    _fail(["simulate", "--out", str(tmp_path / "p.npz"), "--generator", "dynamics",
           "--pnl-slope", "0.5", *SMALL[:4]], capsys, "add --transition post_nonlinear")
