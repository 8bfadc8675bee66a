"""Scale: memory, per-step cost and evaluation time of `ppl-ident fit` at 10^6-10^7 rows.

Issue 17's targets, measured on the domain setting with n = d = 20 and 100 domains:

- ``fit``: the whole ``ppl-ident fit`` of 10^6 x 20 (``--rows``) as a child process: its
  peak resident memory (``os.wait4``'s ``ru_maxrss`` of that process alone; target <= 2 GB),
  and from its ``metrics.json`` the run, compile, restart-selection and evaluation times
  (target: evaluation <= 20 % of the fit's run time) and the MCC.
- ``step_ratio``: the time of one compiled chunk of steps on 10^6 rows over that on 10^4 rows
  of the same setting, model and batch, the two interleaved in one process (so the ratio
  holds under load; target <= 1.2); also the same on the 10^6 rows memory-mapped from disk
  (each step gathers its minibatch through a host callback).
- ``--disk-rows 10000000``: the whole fit of 10^7 x 20 read from a ``.npy`` directory
  (800 MB of float32, memory-mapped): peak RSS (target < 4 GB), completion and MCC.
- ``--n-sweep``: MCC and time of the default fit (its own default steps) at 10^6 rows for
  n = d in {5, 10, 20} (goals: >= 0.95 at n = 10 and >= 0.9 at n = 20 within 15 minutes).

    python benchmarks/scale.py                          # fit + step ratio at 10^6 (~3 min)
    python benchmarks/scale.py --disk-rows 10000000     # + the 10^7 run from disk
    python benchmarks/scale.py --n-sweep --skip-fit --skip-ratio

Prints one JSON line per number (see ``_common.Emitter``). Data are simulated into
``--workdir`` (a temporary directory by default) with ``ppl-ident simulate``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Emitter

REPO = Path(__file__).resolve().parents[1]


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "ppl_ident.cli", *map(str, args)]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def simulate(path: Path, rows: int, n: int, domains: int, seed: int = 0) -> Path:
    if not path.exists():
        subprocess.run(_cli("simulate", "--out", path, "--latent-dim", n, "--data-dim", n,
                            "--domains", domains, "--points-per-domain", rows // domains,
                            "--seed", seed),
                       check=True, env=_env(), stdout=subprocess.DEVNULL)
    return path


def measured_fit(data: Path, out: Path, extra=()) -> dict:
    """``ppl-ident fit`` as a child process: its own peak RSS (bytes), wall time, metrics."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(_cli("fit", data, "--out", out, "--no-progress", *extra),
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.stdout.read().decode(), proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"fit failed ({status}):\n{stdout}\n{stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"peak_rss_bytes": usage.ru_maxrss * 1024, "wall_s": wall, "metrics": metrics,
            "stdout": stdout.strip()}


def report_fit(emit, res: dict, settings: dict, prefix: str = ""):
    m = res["metrics"]
    emit(f"{prefix}peak_rss", round(res["peak_rss_bytes"] / 1e9, 3), "GB", [0], settings)
    emit(f"{prefix}wall_time", round(res["wall_s"], 1), "s", [0], settings)
    for key in ("run_time_s", "compile_time_s", "selection_time_s", "evaluation_time_s"):
        emit(f"{prefix}{key[:-2]}", round(m.get(key) or 0.0, 2), "s", [0], settings)
    emit(f"{prefix}evaluation_over_run", round(m["evaluation_time_s"] / m["run_time_s"], 3),
         "ratio", [0], settings)
    emit(f"{prefix}mcc", None if m.get("mcc") is None else round(m["mcc"], 4), "MCC", [0],
         {**settings, "evaluation_rows": m.get("evaluation_rows")})


def step_ratio(emit, small: Path, big: Path, big_disk: Path | None, args):
    """Interleaved timing of one compiled chunk of ``--ratio-steps`` steps per data set."""
    import jax
    import numpy as np

    from ppl_ident.data import load_dataset
    from ppl_ident.inference.fit import _chunk_fn, fit_keys
    from ppl_ident.inference.hostdata import host_rows
    from ppl_ident.workflow import build_fit, checked_settings, fit_settings

    runners = {}
    sets = {"1e4": small, "1e6": big}
    if big_disk is not None:
        sets["1e6_disk"] = big_disk
    batch = None
    for name, path in sets.items():
        data, _ = load_dataset(path)
        family, s = checked_settings(data, fit_settings(seed=0, steps=1000))
        u, labels = family.prepare_inputs(data.u, s.model)
        spec, engine, k_fit = build_fit(data, s, u, labels)
        x, uj = host_rows(data.x), jax.numpy.asarray(u)
        state = jax.jit(jax.vmap(engine.init, in_axes=(0, None, None)))(
            fit_keys(k_fit, 1, 1), x, uj)
        chunk = _chunk_fn(engine, args.ratio_steps, 1).lower(state, x, uj).compile()
        state, _ = chunk(state, x, uj)  # warm up
        jax.block_until_ready(state)
        runners[name] = [chunk, state, x, uj, []]
        batch = s.batch_size
    names = list(runners)
    for rep in range(args.ratio_reps):
        # alternate the order (ABC, CBA, ...) so that a drift in the load cancels
        for name in names if rep % 2 == 0 else names[::-1]:
            r = runners[name]
            t0 = time.perf_counter()
            r[1], _ = r[0](r[1], r[2], r[3])
            jax.block_until_ready(r[1])
            r[4].append((time.perf_counter() - t0) / args.ratio_steps)
    med = {k: float(np.median(r[4])) for k, r in runners.items()}
    # the median of the paired ratios (each pair timed back to back) is robust to load
    paired = {k: float(np.median(np.asarray(r[4]) / np.asarray(runners["1e4"][4])))
              for k, r in runners.items()}
    settings = {"rows": args.rows, "small_rows": args.small_rows, "batch_size": batch,
                "steps_per_chunk": args.ratio_steps,
                "reps": args.ratio_reps, "latent_dim": args.latent_dim,
                "interleaved": True}
    for name, value in med.items():
        emit(f"step_time_{name}", round(value * 1e3, 3), "ms", [0], settings)
    emit("step_ratio_1e6_over_1e4", round(paired["1e6"], 3), "ratio", [0], settings)
    if "1e6_disk" in med:
        emit("step_ratio_1e6_disk_over_1e4", round(paired["1e6_disk"], 3), "ratio", [0],
             settings)


def to_npy_dir(src: Path, dst: Path) -> Path:
    """The arrays of an .npz written as a .npy directory (for the memory-mapped variant)."""
    import numpy as np

    if not dst.exists():
        dst.mkdir()
        with np.load(src) as npz:
            for key in npz.files:
                np.save(dst / f"{key}.npy", npz[key])
    return dst


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--small-rows", type=int, default=10_000)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--domains", type=int, default=100)
    p.add_argument("--steps", type=int, default=1000, help="steps of the measured fits")
    p.add_argument("--ratio-steps", type=int, default=50)
    p.add_argument("--ratio-reps", type=int, default=30)
    p.add_argument("--disk-rows", type=int, default=0,
                   help="also fit this many rows from a .npy directory (e.g. 10000000)")
    p.add_argument("--disk-steps", type=int, default=1000)
    p.add_argument("--n-sweep", action="store_true",
                   help="MCC and time of the default fit at --rows for n = d in {5, 10, 20}")
    p.add_argument("--sweep-dims", type=int, nargs="+", default=[5, 10, 20],
                   help="the n = d of --n-sweep (default: 5 10 20)")
    p.add_argument("--skip-fit", action="store_true")
    p.add_argument("--skip-ratio", action="store_true")
    p.add_argument("--workdir", default=None, help="keep the simulated data here")
    p.add_argument("--out", default=None, help="append the JSON lines to this file")
    args = p.parse_args(argv)
    emit = Emitter("scale", args.out)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ppl_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    n, dom = args.latent_dim, args.domains
    big = simulate(work / f"rows{args.rows}_n{n}.npz", args.rows, n, dom)
    settings = {"rows": args.rows, "latent_dim": n, "data_dim": n, "domains": dom,
                "steps": args.steps, "model": "ivae (default fit)"}
    if not args.skip_fit:
        res = measured_fit(big, work / f"run_{time.time_ns()}", ["--steps", args.steps])
        report_fit(emit, res, settings)
    if not args.skip_ratio:
        small = simulate(work / f"rows{args.small_rows}_n{n}.npz", args.small_rows, n, dom)
        step_ratio(emit, small, big, to_npy_dir(big, work / f"rows{args.rows}_n{n}.npy"), args)
    if args.disk_rows:
        disk = simulate(work / f"rows{args.disk_rows}_n{n}.npy", args.disk_rows, n, dom)
        res = measured_fit(disk, work / f"run_disk_{time.time_ns()}",
                           ["--steps", args.disk_steps])
        report_fit(emit, res, {**settings, "rows": args.disk_rows, "steps": args.disk_steps,
                               "input": ".npy directory, memory-mapped"}, prefix="disk_")
    if args.n_sweep:
        for k in args.sweep_dims:
            data = simulate(work / f"rows{args.rows}_n{k}.npz", args.rows, k, dom)
            res = measured_fit(data, work / f"run_n{k}_{time.time_ns()}")
            m = res["metrics"]
            sweep = {**settings, "latent_dim": k, "data_dim": k, "steps": m["num_steps"]}
            emit("n_sweep_mcc", round(m["mcc"], 4), "MCC", [0], sweep)
            emit("n_sweep_wall_time", round(res["wall_s"], 1), "s", [0], sweep)
            emit("n_sweep_run_time", round(m["run_time_s"], 1), "s", [0], sweep)


if __name__ == "__main__":
    main()
