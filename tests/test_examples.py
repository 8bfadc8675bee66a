"""Every example script runs end to end with tiny arguments and writes what it says it writes.

Like NumPyro's ``test/test_examples.py``, the scripts run outside the test process, so they can
only use what the installed package offers: all of them one after another in one separate
process (``tests/run_examples.py`` runs each as ``__main__`` with its own ``sys.argv``, as
``python examples/NAME.py ...`` would), which imports the libraries once instead of once per
example; the refusal test runs a script as its own process, exactly as a user runs it.

Speed: nearly all of a tiny run is XLA compilation, so the processes share one persistent
compilation cache (the suite's, ``conftest.py``) and the i.i.d. examples are given the same
tiny data set (n = 2, 5 domains x 60 points, 50 steps, seed 0): the first one compiles the
iVAE's fit and the others load it. ``PYTHONHASHSEED`` is fixed because the cache key of a
program otherwise changes from one process to the next.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: the tiny i.i.d. data set shared by the examples that take it
TINY_DATA = ["--latent-dim", "2", "--domains", "5", "--points-per-domain", "60", "--steps", "50"]

#: name -> (tiny arguments, files it writes under --out)
CASES = {
    "prior_predictive": (
        TINY_DATA + ["--draws", "10"],
        ["prior_predictive.png", "fitted_predictive.png", "domains.png", "summary.json"]),
    "identifiable_vs_not": (
        TINY_DATA + ["--few-domains", "2", "--loc-range", "0"],
        ["jacobians.png", "variability_many.png", "variability_few.png", "summary.json"]),
    "posterior_analysis": (
        TINY_DATA + ["--draws", "30", "--obs", "20", "--nuts-obs", "2", "--nuts-warmup", "20",
                     "--nuts-samples", "20"],
        ["posterior.nc", "summary_guide.csv", "nuts_diagnostics.csv", "forest.png", "ppc.png",
         "calibration.png", "summary.json"]),
    "model_comparison": (
        TINY_DATA + ["--heldout-per-domain", "6", "--samples", "5", "--loo-draws", "20"],
        ["marginal.png", "loo_khat.png", "summary.json"]),
    "compare_algorithms": (
        ["--latent-dim", "2", "--domains", "3", "--points-per-domain", "50", "--engines", "svi",
         "--seeds", "2", "--steps", "50", "--eval-every", "25", "--metrics", "mcc", "elbo",
         "timing", "calibration_90"],
        ["results.csv", "summary.csv", "results.nc", "mcc_by_engine.png", "time_vs_mcc.png",
         "calibration_by_engine.png", "grid.json", "summary.json"]),
    "sequences": (
        ["--regimes", "2", "--sequences", "6", "--length", "10", "--steps", "50", "--draws",
         "10"],
        ["trajectories.png", "regimes.png", "summary.json"]),
    "real_data": (
        ["--latent-dims", "2", "--steps", "40", "--seeds", "2", "--samples", "5",
         "--heldout-rows", "50", "--recordings", "2"],
        ["train.csv", "test.csv", "prior_predictive.png", "summary.json", "run/report.html",
         "run/seed_agreement.png", "run/learned_prior.png", "run/latents_by_domain.png",
         "run/posterior_sd.png", "run/ppc.png"]),
    "your_own_data": (
        ["--demo-latent-dim", "2", "--demo-domains", "5", "--demo-points-per-domain", "60",
         "--steps", "50", "--heldout-fraction", "0", "--nuts-obs", "0"],
        ["demo_data.npz", "run/config.json", "run/params.npz", "run/metrics.json",
         "run/posterior.nc", "run/report.html", "run/report.json", "run/ppc.png",
         "run/forest.png", "run/calibration.png"]),
}


@pytest.fixture(scope="session")
def example_env():
    # conftest.py has put the suite's persistent compilation cache and the compile-quickly XLA
    # flag (the tiny programs are compile-bound) into os.environ; the subprocesses inherit them
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
        "JAX_PLATFORMS": "cpu",
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
    })
    assert env.get("JAX_COMPILATION_CACHE_DIR")
    return env


def run_example(name, args, out, env):
    return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args, "--out",
                           str(out)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory, example_env):
    """Every example of :data:`CASES`, run with its tiny arguments in one separate Python
    process (``tests/run_examples.py``: each script as ``__main__`` with its own ``sys.argv``,
    its output captured and its exit status recorded), so that the libraries are imported and
    the package's programs compiled once for all of them, not once per example. Returns the
    output root and ``{name: {"returncode", "stdout", "stderr"}}``."""
    root = tmp_path_factory.mktemp("examples")
    argv = []
    for name, (args, _) in CASES.items():
        if name == "real_data" and importlib.util.find_spec("sktime") is None:
            continue  # BasicMotions ships in sktime's wheel (the `real` extra)
        argv += [name, *args, "--out", str(root / name), "--"]
    results = root / "results.json"
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "run_examples.py"),
                           str(results), *argv], env=example_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, json.loads(results.read_text())


def test_every_example_is_tested():
    scripts = {p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_example_runs(name, example_runs):
    if name == "real_data":  # BasicMotions ships in sktime's wheel (the `real` extra)
        pytest.importorskip("sktime")
    root, results = example_runs
    _, files = CASES[name]
    out, run = root / name, results[name]
    assert run["returncode"] == 0, f"{name} failed:\n{run['stdout'][-3000:]}\n" \
                                   f"{run['stderr'][-3000:]}"
    assert f"{out}" in run["stdout"]  # the closing line names the output directory
    for rel in files:
        assert (out / rel).is_file() and (out / rel).stat().st_size > 0, f"{name}: no {rel}"
    summary = out / "summary.json"
    if summary.exists():
        assert json.loads(summary.read_text())  # strict JSON (NaN written as null)


def test_example_refuses_non_empty_out(tmp_path, example_env):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = run_example("prior_predictive", TINY_DATA, out, example_env)
    assert proc.returncode != 0
    assert "--force" in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.py")))
def test_example_help_describes_in_whole_sentences(name):
    """``--help`` shows the docstring's first paragraph, whole: a first line cut at its line
    break once ended mid-sentence ("... for the iVAE and the")."""
    import ast

    source = (EXAMPLES / f"{name}.py").read_text()
    first = " ".join(ast.get_docstring(ast.parse(source)).split("\n\n")[0].split())
    assert first.endswith("."), first
    if "argparse.ArgumentParser(" in source:
        assert 'description=" ".join(__doc__.split("\\n\\n")[0].split())' in source
