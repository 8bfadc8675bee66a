"""A real Dask cluster on 127.0.0.1: one worker is killed mid-cell, the grid still completes and
its table equals an in-process run with the same seeds."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

SRC = str(Path(__file__).resolve().parents[2])
# three cells of one shape (data seeds, not domain counts): each process compiles the fit once
GRID = ["--latent-dim", "2", "--domains", "4", "--data-seed", "0", "1", "2",
        "--points-per-domain", "40", "--mixing-layers", "2", "--engines", "svi", "--seeds", "2",
        "--steps", "200", "--eval-every", "100", "--metrics", "mcc", "elbo", "timing",
        "time_to_mcc", "--no-plots", "--quiet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(cache):
    from ppl_ident.harness import worker_env

    # Workers and the in-process reference use the same single-threaded XLA settings (so they
    # run identical compiled programs) and share a compilation cache (the second run is fast).
    env = {**os.environ, **worker_env(1), "JAX_PLATFORMS": "cpu", "MPLBACKEND": "Agg",
           "JAX_COMPILATION_CACHE_DIR": str(cache)}
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _start(args, env, log):
    # A new session per process so killing its group also kills the nanny's worker child.
    return subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _kill(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def test_grid_survives_killed_worker_and_matches_in_process(tmp_path):
    import pandas as pd

    env = _env(tmp_path / "jax_cache")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "cluster.log", "wb")
    procs = []
    client = cli = None
    try:
        procs.append(_start(["scheduler", "--host", "127.0.0.1", "--port", str(port),
                             "--no-dashboard"], env, log))
        workers = {}
        for name in ("w0", "w1"):
            workers[name] = _start(["worker", address, "--name", name, "--nthreads", "1",
                                    "--nworkers", "1", "--no-dashboard", "--memory-limit", "0",
                                    "--local-directory", str(tmp_path / name)], env, log)
            procs.append(workers[name])
        client = distributed.Client(address, timeout="60s")
        client.wait_for_workers(2, timeout=120)

        out = tmp_path / "dask"
        cli = subprocess.Popen([sys.executable, "-m", "ppl_ident.cli", "compare", *GRID,
                                "--out", str(out), "--scheduler", address], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # Wait until a worker is running a cell whose file does not exist yet, then kill it.
        victim = cell = None
        deadline = time.monotonic() + 240
        while victim is None and time.monotonic() < deadline and cli.poll() is None:
            names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
            for addr, keys in client.processing().items():
                if addr not in names:
                    continue  # registered between the two queries: look again next round
                for key in keys:
                    if not (out / "cells" / f"{key}.json").exists():
                        victim, cell = names[addr], key
                        break
                if victim:
                    break
            time.sleep(0.5)
        assert victim is not None, "no cell was ever seen running"
        time.sleep(0.3)  # let it get going (compiling or fitting)
        still_running = not (out / "cells" / f"{cell}.json").exists()
        _kill(workers[victim])
        # A cold cell compiles for seconds, so the kill lands mid-cell.
        assert still_running, "the cell finished before its worker could be killed"
        stdout, _ = cli.communicate(timeout=300)
        assert cli.returncode == 0, stdout.decode()[-3000:]

        df = pd.read_csv(out / "results.csv")
        assert len(df) == 6 and (df["status"] == "done").all()
        # The killed worker's cell was rerun elsewhere: its file is the survivor's.
        rec = json.loads((out / "cells" / f"{cell}.json").read_text())
        survivor = client.run(os.getpid)
        assert len(survivor) == 1 and rec["pid"] in survivor.values()

        ref = tmp_path / "inproc"
        done = subprocess.run([sys.executable, "-m", "ppl_ident.cli", "compare", *GRID,
                               "--out", str(ref), "--scheduler", "none"], env=env,
                              capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        want = pd.read_csv(ref / "results.csv")
        assert list(df["cell_id"]) == list(want["cell_id"])
        assert list(df["seed"]) == list(want["seed"])
        # Same seeds, same compiled programs (same XLA flags), same data: the numbers are
        # bit-identical whichever process ran the cell (compared at full precision, from the
        # cell files; timings excluded).
        def rows(d):
            recs = [json.loads(p.read_text()) for p in sorted((d / "cells").glob("*.json"))]
            return {(r["cell_id"], row["seed"]): {k: v for k, v in row.items()
                                                  if "time" not in k and "per_s" not in k}
                    for r in recs for row in r["rows"]}

        got, expected = rows(out), rows(ref)
        assert len(got) == 6 and got.keys() == expected.keys()
        for key in got:
            np.testing.assert_equal(got[key], expected[key], err_msg=str(key))
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
            cli.wait(timeout=30)
        if client is not None:
            client.close()
        for p in procs:
            _kill(p)
        log.close()
