"""Data on disk: a directory of .npy files (memory-mapped) and a zarr group, validated block
by block with the .npz path's messages; hashed for resume."""

import numpy as np
import pytest
import zarr

from ppl_ident.data import load_dataset, save_dataset
from ppl_ident.data import io as data_io
from ppl_ident.data.io import data_dir_format, data_sha256, read_data
from ppl_ident.errors import InputError


def _arrays(n=500, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 4, n),
            rng.normal(size=(n, 2)).astype(np.float32))


def _npy_dir(path, x, u, z=None):
    path.mkdir()
    np.save(path / "x.npy", x)
    np.save(path / "u.npy", u)
    if z is not None:
        np.save(path / "z.npy", z)
    return path


def _zarr_group(path, **arrays):
    g = zarr.open_group(path, mode="w")
    for name, a in arrays.items():
        g.create_array(name, shape=a.shape, dtype=a.dtype, chunks=(128,) + a.shape[1:])[...] = a
    return path


def test_npy_directory_is_memory_mapped_and_equals_the_npz(small_data, tmp_path):
    data, truth = small_data
    save_dataset(tmp_path / "a.npz", data, truth)
    save_dataset(tmp_path / "a.npy", data, truth)
    assert data_dir_format(tmp_path / "a.npy") == "npy"
    mem, t_mem = load_dataset(tmp_path / "a.npz")
    disk, t_disk = load_dataset(tmp_path / "a.npy")
    assert isinstance(disk.x, np.memmap) and disk.x.dtype == np.float32
    np.testing.assert_array_equal(disk.x, mem.x)
    np.testing.assert_array_equal(disk.u, mem.u)
    np.testing.assert_array_equal(disk.z, mem.z)
    assert t_disk is not None and t_disk.source == t_mem.source
    with pytest.raises(InputError, match="already exists"):
        save_dataset(tmp_path / "a.npy", data, truth)


def test_zarr_group_maps_onto_the_same_keys(tmp_path):
    x, u, z = _arrays()
    _zarr_group(tmp_path / "g.zarr", x=x, u=u, z=z)
    assert data_dir_format(tmp_path / "g.zarr") == "zarr"
    data, truth, columns = read_data(tmp_path / "g.zarr")
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_array_equal(data.u, u)
    np.testing.assert_array_equal(data.z, z)
    assert data.x.dtype == np.float32 and truth is None and columns is None


@pytest.mark.parametrize("kind", ["npy", "zarr"])
def test_disk_data_is_validated_block_by_block_with_the_npz_messages(tmp_path, monkeypatch,
                                                                     kind):
    monkeypatch.setattr(data_io, "VALIDATION_ROWS", 64)  # several blocks
    x, u, _ = _arrays()
    x[450, 1] = np.nan   # in the last block
    write = (lambda p, **a: _npy_dir(p, a["x"], a["u"])) if kind == "npy" else _zarr_group
    write(tmp_path / "bad", x=x, u=u)
    with pytest.raises(InputError, match="1 NaN or infinite value.*drop or impute"):
        load_dataset(tmp_path / "bad")
    u_bad = u.copy()
    u_bad[300] = -1
    write(tmp_path / "labels", x=np.nan_to_num(x), u=u_bad)
    with pytest.raises(InputError, match="negative domain labels; use labels 0, 1, 2"):
        load_dataset(tmp_path / "labels")


def test_a_directory_without_data_names_what_it_needs(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match="x.npy and u.npy.*zarr group.*found: notes.txt"):
        load_dataset(tmp_path / "d")
    _npy_dir(tmp_path / "nou", *_arrays()[:1], u=np.zeros(500, int))
    (tmp_path / "nou" / "u.npy").unlink()
    with pytest.raises(InputError, match="no 'u' array"):
        load_dataset(tmp_path / "nou")


def test_data_directories_are_hashed_by_content(tmp_path):
    x, u, z = _arrays()
    a = _npy_dir(tmp_path / "a", x, u, z)
    b = _npy_dir(tmp_path / "b", x, u, z)
    assert data_sha256(a) == data_sha256(b)
    np.save(b / "u.npy", (u + 1) % 4)
    assert data_sha256(a) != data_sha256(b)
