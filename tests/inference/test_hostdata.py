"""Minibatches gathered from a memory map: the same fit as the data in memory."""

import jax
import numpy as np

from ppl_ident.data import load_dataset, save_dataset
from ppl_ident.families import build_model
from ppl_ident.inference import OptimConfig, fit, svi_engine
from ppl_ident.inference.hostdata import HostRows, host_rows, on_disk


def test_a_memory_mapped_input_gives_the_same_fit_as_in_memory(small_data, tmp_path):
    data, truth = small_data
    save_dataset(tmp_path / "d.npy", data, truth)
    disk, _ = load_dataset(tmp_path / "d.npy")
    assert on_disk(disk.x) and isinstance(host_rows(disk.x), HostRows)
    spec = build_model("ivae", jax.random.PRNGKey(0), n_latent=2, data_dim=2, n_domains=5,
                       width=8, depth=1)
    eng = svi_engine(spec, batch_size=32, optim=OptimConfig(num_steps=40, warmup_steps=5))
    a = fit(eng, jax.random.PRNGKey(0), data.x, data.u, 40, restarts=2, progress=False)
    b = fit(eng, jax.random.PRNGKey(0), disk.x, disk.u, 40, restarts=2, progress=False)
    assert on_disk(disk.x)  # still a memory map: the fit made no copy of it
    np.testing.assert_allclose(a.all_losses, b.all_losses, rtol=1e-6)
    np.testing.assert_allclose(a.restart_losses, b.restart_losses, rtol=1e-6)
    for la, lb in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_allclose(la, lb, rtol=1e-5, atol=1e-6)


def test_host_rows_gathers_rows_as_float32_inside_jit(tmp_path):
    x = np.arange(40, dtype=np.float64).reshape(10, 4)
    np.save(tmp_path / "x.npy", x)
    rows = HostRows(np.load(tmp_path / "x.npy", mmap_mode="r"))
    idx = np.array([[3, 1], [9, 9]])
    got = jax.jit(lambda h, i: h[i])(rows, idx)
    assert got.dtype == np.float32 and got.shape == (2, 2, 4)
    np.testing.assert_array_equal(got, x[idx])
    vm = jax.jit(jax.vmap(lambda i: rows[i]))(idx)   # batched indices (restarts)
    np.testing.assert_array_equal(vm, x[idx])
