"""A comparison grid on a Dask cluster whose cells read the data from a shared path (the
"Sweeps beyond one machine" example in docs/how-to/compare-algorithms.md): each task
carries the path and its hash, not the arrays, and every worker reads (memory-maps) the
file itself."""

import pickle

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")


def test_cells_on_a_cluster_read_the_data_from_a_shared_path(tmp_path, capsys):
    import pandas as pd

    from ppl_ident.cli import main
    from ppl_ident.data import save_dataset, simulate_domains
    from ppl_ident.harness import make_grid
    from ppl_ident.harness.execute import local_cluster

    data, truth = simulate_domains(0, n_latent=2, data_dim=2, n_domains=4, n_per_domain=1000,
                                   n_layers=2)
    shared = tmp_path / "shared" / "obs.npy"   # stands for a path every worker mounts
    save_dataset(shared, data, truth)
    grid = make_grid(data={"file": str(shared)}, seeds=2, steps=60)
    cells = grid.cells()
    # a task ships the path, hash and settings: a small fraction of the data's bytes
    assert all(len(pickle.dumps(c)) < 4096 for c in cells)
    assert all(not isinstance(v, np.ndarray) for c in cells for v in c.data.values())
    assert data.x.nbytes + data.z.nbytes > 8 * 4096

    cluster = local_cluster(n_workers=1)
    try:
        out = tmp_path / "cmp"
        argv = ["compare", "--data", str(shared), "--engines", "svi", "--seeds", "2",
                "--steps", "60", "--metrics", "mcc", "elbo", "--no-plots", "--quiet",
                "--out", str(out), "--scheduler", cluster.scheduler_address]
        assert main(argv) == 0
    finally:
        cluster.close()
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 2 and (df["status"] == "done").all()
    assert np.isfinite(df["mcc"]).all()
    capsys.readouterr()
