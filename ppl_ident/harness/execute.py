"""Run a grid's cells in-process or as Dask tasks, then assemble the table from cell files.

Three schedulers, one code path per cell (:func:`ppl_ident.harness.run.run_cell`):

- ``"none"``: cells run one after another in this process (small grids, tests);
- ``"local"`` (default): an embedded ``distributed.LocalCluster`` sized to this machine:
  ``min(cores, cells)`` worker *processes* (started with ``spawn``, so no JAX state is
  forked), one task thread each, and single-threaded XLA matrix products when there is one
  core per worker (:func:`worker_env`), so concurrent cells do not fight over cores;
- ``"tcp://HOST:PORT"``: an existing Dask cluster (``dask scheduler`` / ``dask worker``); the
  workers must be able to import ``ppl_ident`` and write to the output directory.

Finished cells are skipped (their files exist), so re-running a command only runs what is
missing. A worker that dies mid-cell leaves no file; Dask reschedules its task on another
worker (``distributed.scheduler.allowed-failures`` deaths per task) and the task is also
submitted with ``retries`` for ordinary exceptions.

Dask is imported only for the Dask schedulers: the core package and ``--scheduler none`` do
not need it (``pip install "ppl_ident[dask]"``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ppl_ident.errors import InputError
from ppl_ident.harness.grid import Grid
from ppl_ident.harness.run import is_done, run_cell

__all__ = ["run_grid", "worker_env", "local_cluster"]

_ADDRESS_PREFIXES = ("tcp://", "tls://", "inproc://", "ws://", "wss://")


def worker_env(threads: int) -> dict:
    """Environment for a worker process meant to use ``threads`` cores.

    XLA's CPU backend runs Eigen matrix products on a pool sized to all cores; with several
    workers per machine each would oversubscribe the cores, so for one-thread workers Eigen's
    multi-threading is switched off (``--xla_cpu_multi_thread_eigen=false``; XLA has no flag
    for the pool's size). BLAS/OpenMP pools are capped to ``threads``.
    """
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_cpu_multi_thread_eigen")]
    if threads == 1:
        flags.append("--xla_cpu_multi_thread_eigen=false")
    env = {"XLA_FLAGS": " ".join(flags)}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    # Spawned workers import ppl_ident from wherever this process does.
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [src, os.environ.get("PYTHONPATH")] if p)
    return env


def local_cluster(n_workers: int | None = None, n_cells: int | None = None):
    """A ``LocalCluster`` of spawned single-threaded worker processes sized to this machine.

    ``n_workers`` defaults to ``min(cores, n_cells)``; each worker gets the environment of
    :func:`worker_env` for ``cores // n_workers`` threads.
    """
    import dask
    from distributed import LocalCluster

    cores = os.cpu_count() or 1
    n_workers = n_workers or max(1, min(cores, n_cells or cores))
    threads = max(1, cores // n_workers)
    dask.config.set({"distributed.worker.multiprocessing-method": "spawn"})
    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                        env=worker_env(threads), dashboard_address=None,
                        silence_logs=40)


def _import_distributed():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise InputError("Running a grid on Dask needs dask.distributed: pip install "
                         "'ppl_ident[dask]', or pass --scheduler none to run in-process.") \
            from None


def run_grid(grid: Grid, out_dir, *, scheduler: str = "local", n_workers: int | None = None,
             retries: int = 2, progress: bool = True, log=None):
    """Run every unfinished cell of ``grid`` and return the assembled table.

    Parameters
    ----------
    grid : Grid
    out_dir : path
        Cell files go to ``out_dir/cells/``; existing finished cells are not re-run.
    scheduler : {"local", "none"} or ``"tcp://HOST:PORT"``
    n_workers : int, optional
        Workers of the embedded cluster (``"local"`` only).
    retries : int
        Extra attempts for a cell that raised (worker deaths are handled by Dask itself).
    progress : bool
        Print one line per finished cell to ``log`` (default stderr).

    Returns
    -------
    pandas.DataFrame
        One row per (cell, seed), from :func:`ppl_ident.harness.table.assemble_table`.
    """
    from ppl_ident.harness.table import assemble_table

    if scheduler not in ("none", "local") and not scheduler.startswith(_ADDRESS_PREFIXES):
        raise InputError(f"Unknown scheduler {scheduler!r}; use 'local', 'none' or the address "
                         "of a Dask scheduler (tcp://HOST:PORT).")
    out = Path(out_dir)
    cells = grid.cells()
    pending = [c for c in cells if not is_done(out, c)]
    log = log or sys.stderr
    say = (lambda msg: print(msg, file=log, flush=True)) if progress else (lambda msg: None)
    say(f"compare: {len(cells)} cells ({len(cells) - len(pending)} already done), "
        f"{len(grid.seeds)} seeds each, scheduler={scheduler}")
    t0 = time.perf_counter()
    if pending and scheduler == "none":
        for i, cell in enumerate(pending, 1):
            run_cell(cell, out)
            say(f"  [{i}/{len(pending)}] {cell.cell_id} ({time.perf_counter() - t0:.0f}s)")
    elif pending:
        _import_distributed()
        _run_dask(pending, out, scheduler, n_workers, retries, say, t0)
    return assemble_table(out, cells)


def _run_dask(cells, out: Path, scheduler: str, n_workers, retries: int, say, t0):
    from distributed import Client, as_completed

    if scheduler == "local":
        cluster = local_cluster(n_workers, len(cells))
        client = Client(cluster)
    elif scheduler.startswith(_ADDRESS_PREFIXES):
        cluster = None
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as err:
            raise InputError(f"Cannot reach the Dask scheduler at {scheduler} ({err}); start "
                             "it with `dask scheduler`, or use --scheduler local/none.") from None
    else:
        raise InputError(f"Unknown scheduler {scheduler!r}; use 'local', 'none' or the address "
                         "of a Dask scheduler (tcp://HOST:PORT).")
    try:
        # key=cell_id: one task per cell, named for the dashboard; pure=False so a re-run
        # after a failure is a new task.
        futures = [client.submit(run_cell, cell, str(out.resolve()), key=cell.cell_id,
                                 pure=False, retries=retries) for cell in cells]
        failed = []
        for i, fut in enumerate(as_completed(futures), 1):
            if fut.status == "error":
                failed.append((fut.key, fut.exception()))
                say(f"  [{i}/{len(cells)}] FAILED {fut.key}: {fut.exception()}")
            else:
                say(f"  [{i}/{len(cells)}] {fut.key} ({time.perf_counter() - t0:.0f}s)")
        if failed:
            names = ", ".join(k for k, _ in failed[:5])
            raise RuntimeError(f"{len(failed)} cell(s) failed after {retries} retries: {names}; "
                               "re-run the same command to retry only the missing cells.")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
