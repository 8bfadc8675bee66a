"""Real `python -m ppl_ident.cli fit` processes killed with SIGKILL or stopped with SIGINT, then
resumed: nothing is lost beyond one checkpoint interval and the result is bit-identical to an
uninterrupted fit with the same seed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ppl_ident.data import save_dataset

EVERY = 50
STEPS = 600
FIT_ARGS = ["--steps", str(STEPS), "--checkpoint-every", str(EVERY), "--width", "8",
            "--batch-size", "32", "--seed", "3", "--no-progress"]


def _env():
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "JAX_PLATFORMS": "cpu"}


def _cli(*args):
    return [sys.executable, "-m", "ppl_ident.cli", *args]


def _params(run):
    with np.load(Path(run) / "params.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _losses(run):
    with np.load(Path(run) / "losses.npz", allow_pickle=False) as npz:
        return npz["['loss']"]


def _start_and_wait_for_checkpoint(data, out, timeout=240):
    proc = subprocess.Popen(_cli("fit", str(data), "--out", str(out), *FIT_ARGS), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = out / "checkpoint.json"
    t0 = time.time()
    while not ckpt.exists():
        if proc.poll() is not None or time.time() - t0 > timeout:
            proc.kill()
            pytest.fail(f"no checkpoint appeared: {proc.communicate()}")
        time.sleep(0.02)
    return proc


@pytest.fixture(scope="module")
def setting(tmp_path_factory, small_data):
    """The data file and an uninterrupted reference run with the same seed."""
    root = tmp_path_factory.mktemp("interrupt")
    data, truth = small_data
    save_dataset(root / "d.npz", data, truth)
    ref = root / "ref"
    done = subprocess.run(_cli("fit", str(root / "d.npz"), "--out", str(ref), *FIT_ARGS),
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return root, ref


def test_sigkill_then_resume_loses_at_most_one_interval(setting):
    root, ref = setting
    out = root / "killed"
    proc = _start_and_wait_for_checkpoint(root / "d.npz", out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    meta = json.loads((out / "checkpoint.json").read_text())
    with np.load(out / "checkpoint.npz", allow_pickle=False) as npz:  # complete, readable
        step = int(npz["['step']"])  # the source of truth (the kill may fall between renames)
        assert npz["['losses']"].shape == (1, step)
    # killed mid-run: what survives is the last periodic checkpoint, on an interval boundary
    assert 0 < step < STEPS and step % EVERY == 0 and meta["stop_reason"] == "running"
    assert meta["step"] in (step, step - EVERY)
    assert not (out / "params.npz").exists()  # no final outputs were written, none half-written
    done = subprocess.run(_cli("fit", "--resume", str(out), "--no-progress"), env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_steps"] == STEPS and m["resumed_from_step"] == step
    # the steps after the checkpoint were recomputed exactly: nothing lost, nothing different
    np.testing.assert_array_equal(_losses(out), _losses(ref))
    a, b = _params(out), _params(ref)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_sigint_stops_at_chunk_end_with_checkpoint_and_message(setting):
    from ppl_ident.cli import main

    root, ref = setting
    out = root / "interrupted"
    proc = _start_and_wait_for_checkpoint(root / "d.npz", out)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted at step" in stderr and f"ppl-ident fit --resume {out}" in stderr
    meta = json.loads((out / "checkpoint.json").read_text())
    m = json.loads((out / "metrics.json").read_text())
    assert meta["stop_reason"] == "interrupted" == m["stop_reason"]
    assert meta["step"] == m["num_steps"] < STEPS
    assert all(np.all(np.isfinite(v)) for v in _params(out).values())  # outputs so far
    assert main(["fit", "--resume", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_steps"] == STEPS and m["stop_reason"] == "completed"
    a, b = _params(out), _params(ref)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_second_ctrl_c_keeps_the_checkpoint_and_check_report_say_how_to_resume(
        setting, tmp_path, monkeypatch, capsys):
    """A second Ctrl-C raises KeyboardInterrupt in the middle of the fit (simulated right after
    the first periodic checkpoint): the message names the step kept and the resume command,
    and `check` / `report` on the run say "interrupted", not "damaged"."""
    import ppl_ident.workflow.fitting as fitting
    from ppl_ident.cli import main

    root, _ = setting
    out = tmp_path / "aborted"
    real_save = fitting.save_checkpoint

    def save_then_ctrl_c(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt
    monkeypatch.setattr(fitting, "save_checkpoint", save_then_ctrl_c)
    assert main(["fit", str(root / "d.npz"), "--out", str(out), *FIT_ARGS]) == 130
    err = capsys.readouterr().err
    assert f"interrupted at step {EVERY} of {STEPS}" in err, err
    assert "checkpoint is kept" in err and f"ppl-ident fit --resume {out}" in err
    assert (out / "checkpoint.npz").is_file() and not (out / "params.npz").exists()
    for cmd in (["check", str(out), "--null-fits", "0"], ["report", str(out), "--nuts-obs", "0",
                                                             "--null-fits", "0"]):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert f"interrupted at step {EVERY} of {STEPS}" in err, err
        assert f"ppl-ident fit --resume {out}" in err and "damaged" not in err
        assert "Traceback" not in err


def test_ctrl_c_before_the_first_checkpoint_says_nothing_can_be_resumed(
        setting, tmp_path, monkeypatch, capsys):
    import ppl_ident.workflow.fitting as fitting
    from ppl_ident.cli import main

    root, _ = setting

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(fitting, "fit", ctrl_c)
    out = tmp_path / "early"
    assert main(["fit", str(root / "d.npz"), "--out", str(out), *FIT_ARGS]) == 130
    err = capsys.readouterr().err
    assert "before its first checkpoint" in err and "start it again" in err
