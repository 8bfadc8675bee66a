"""Comparison harness: grids of data settings x models x engines x seeds, vectorised seeds,
in-process or Dask execution, one result file per cell, tidy tables and plots.

Every cell fits through ``ppl-ident fit``'s own path (checked settings, ``build_fit``,
``inference.fit`` with its divergence policy), on the data of any model family's simulator
(i.i.d. domains or sequences), and its metrics read the workflow's
:class:`~ppl_ident.workflow.Fitted`.

    grid = make_grid(data=dict(domains=[5, 11, 40]), engines=["svi", "iwae"], seeds=3)
    table = run_grid(grid, "runs/compare", scheduler="none")
    write_results("runs/compare", table)
"""

from ppl_ident.harness.execute import local_cluster, run_grid, worker_env
from ppl_ident.harness.grid import ENGINE_PRESETS, Cell, Grid, data_axes, load_grid, make_grid
from ppl_ident.harness.metrics import METRICS, CellFit, compute_metrics
from ppl_ident.harness.run import read_cell, run_cell
from ppl_ident.harness.table import assemble_table, summarise, to_dataset, write_results

__all__ = ["ENGINE_PRESETS", "METRICS", "Cell", "CellFit", "Grid", "assemble_table",
           "compute_metrics", "data_axes", "load_grid", "local_cluster", "make_grid", "read_cell",
           "run_cell", "run_grid", "summarise", "to_dataset", "worker_env", "write_results"]
