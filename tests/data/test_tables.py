"""CSV and Parquet tables read onto the data contract, and the messages for what is missing."""

import numpy as np
import pandas as pd
import pytest

from ppl_ident.data import Columns, load_dataset, read_data
from ppl_ident.errors import InputError


@pytest.fixture
def arrays(rng):
    x = rng.normal(size=(12, 3))
    u = np.repeat([3, 0, 7], 4)  # labels need not be 0..U-1 nor sorted
    z = rng.normal(size=(12, 2))
    return x, u, z


def _frame(x, u, z, u_values=None):
    df = pd.DataFrame(x, columns=["ch0", "ch1", "ch2"])
    df.insert(1, "site", u if u_values is None else u_values)  # u need not come first or last
    df["true0"], df["true1"] = z[:, 0], z[:, 1]
    df["comment"] = "ok"  # a text column is not an observation by default
    return df


def _write(df, path):
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_gives_the_dataset_of_the_npz(arrays, tmp_path, suffix):
    x, u, z = arrays
    np.savez(tmp_path / "d.npz", x=x, u=u, z=z)
    want, _ = load_dataset(tmp_path / "d.npz")
    path = _write(_frame(x, u, z), tmp_path / f"d{suffix}")
    got, truth, cols = read_data(path, Columns(u="site", z=("true0", "true1")))
    assert truth is None
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert cols == Columns(u="site", x=("ch0", "ch1", "ch2"), z=("true0", "true1"),
                           u_kind="labels")
    # the mapping resolved reads the same table again to the same arrays
    again, _, cols2 = read_data(path, Columns.from_dict(cols.to_dict()))
    np.testing.assert_array_equal(again.x, want.x)
    assert cols2 == cols


def test_string_domains_become_labels_and_the_mapping_is_kept(arrays, tmp_path):
    x, u, z = arrays
    names = np.array(["b-site", "a-site", "c-site"])[np.repeat([0, 1, 2], 4)]
    path = _write(_frame(x, u, z, u_values=names), tmp_path / "d.csv")
    data, _, cols = read_data(path, Columns(u="site", x=("ch0", "ch2")))
    assert cols.u_kind == "categories" and cols.u_categories == ("a-site", "b-site", "c-site")
    np.testing.assert_array_equal(data.u, np.repeat([1, 0, 2], 4))
    assert data.x.shape == (12, 2) and data.z is None
    # another table with a subset of the domains is coded with the recorded mapping ...
    part = _write(_frame(x[4:], u[4:], z[4:], u_values=names[4:]), tmp_path / "part.csv")
    back, _, _ = read_data(part, cols)
    np.testing.assert_array_equal(back.u, np.repeat([0, 2], 4))
    # ... and a domain the fit never saw is refused by name
    names[0] = "d-site"
    new = _write(_frame(x, u, z, u_values=names), tmp_path / "new.csv")
    with pytest.raises(InputError, match="'d-site'.*did not see"):
        read_data(new, cols)


def test_a_float_column_is_a_continuous_u(rng, tmp_path):
    df = pd.DataFrame({"u": rng.normal(size=10), "a": rng.normal(size=10),
                       "b": rng.normal(size=10)})
    data, _, cols = read_data(_write(df, tmp_path / "c.parquet"))
    assert data.u.shape == (10, 1) and data.u.dtype == np.float32
    assert cols.u_kind == "continuous" and cols.x == ("a", "b")


@pytest.mark.parametrize(["columns", "match"], [
    (Columns(), "no auxiliary column named 'u'; columns found: ch0, site, ch1, ch2"),
    (Columns(u="Site"), "no column 'Site'.*did you mean 'site'.*columns found: ch0, site"),
    (Columns(u="site", x=("ch0", "ch9")), "no column 'ch9'.*columns found: ch0, site"),
    (Columns(u="site", z=("z0",)), "no column 'z0'.*--z-cols"),
    (Columns(u="site", x=("ch0", "comment")), "'comment'.*not numeric"),
    (Columns(u="site", x=("ch0", "site")), "more than one role"),
])
def test_a_missing_or_wrong_column_names_the_columns_found(arrays, tmp_path, columns, match):
    path = _write(_frame(*arrays), tmp_path / "d.csv")
    with pytest.raises(InputError, match=match):
        read_data(path, columns)


def test_missing_values_name_the_column_and_rows(arrays, tmp_path):
    df = _frame(*arrays)
    df.loc[[2, 5], "ch1"] = np.nan
    with pytest.raises(InputError, match=r"column 'ch1'.*2 missing.*rows 2, 5"):
        read_data(_write(df, tmp_path / "d.csv"), Columns(u="site"))
    df = _frame(*arrays)
    df.loc[3, "site"] = None
    with pytest.raises(InputError, match=r"auxiliary column 'site' has 1 missing.*rows 3"):
        read_data(_write(df, tmp_path / "e.csv"), Columns(u="site"))


def test_the_contract_checks_apply_to_tables(arrays, tmp_path):
    x, u, z = arrays
    with pytest.raises(InputError, match="negative domain labels"):
        read_data(_write(_frame(x, u - 5, z), tmp_path / "d.csv"), Columns(u="site"))


def test_unreadable_and_empty_tables_are_refused(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(InputError, match="is empty"):
        read_data(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("u,a\n")
    with pytest.raises(InputError, match="no rows"):
        read_data(tmp_path / "h.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_data(tmp_path / "bad.parquet")


@pytest.mark.parametrize(["arrays", "match"], [
    (dict(X=np.zeros((3, 2)), u=np.zeros(3, int)),
     r"no 'x' array \(keys found: X, u; did you mean 'X'\? Rename it to 'x'\)"),
    (dict(x=np.zeros((3, 2)), labels=np.zeros(3, int)),
     r"no 'u' array \(keys found: x, labels; did you mean 'labels'\?"),
    (dict(obs=np.zeros((3, 2))), r"no 'x' array \(keys found: obs\)"),
])
def test_a_missing_npz_key_lists_the_keys_found(tmp_path, arrays, match):
    np.savez(tmp_path / "k.npz", **arrays)
    with pytest.raises(InputError, match=match):
        load_dataset(tmp_path / "k.npz")


def test_table_columns_are_refused_for_an_npz(arrays, tmp_path):
    x, u, z = arrays
    np.savez(tmp_path / "d.npz", x=x, u=u)
    with pytest.raises(InputError, match="apply to CSV and Parquet tables only"):
        read_data(tmp_path / "d.npz", Columns(u="site"))


# -- long-format sequence tables ----------------------------------------------------------------

def _long_table(shuffle=True):
    """A long-format table of 4 sequences x 6 steps (string ids, a time column), rows shuffled,
    and the arrays it must give back."""
    from ppl_ident.data.sequences import simulate_sequences

    data, _ = simulate_sequences("segments", 0, n_latent=2, data_dim=3, n_sequences=4,
                                 length=6, n_segments=3, segment_length=2)
    B, T, d = data.x.shape
    ids = np.array(["s3", "s1", "s2", "s0"])            # sequence b is id ids[b]
    df = pd.DataFrame(data.x.reshape(-1, d), columns=["a", "b", "c"])
    df.insert(0, "trial", np.repeat(ids, T))
    df.insert(1, "t", np.tile(np.arange(T) * 0.5, B))
    df["u"] = np.asarray(data.u).reshape(-1)
    df["z0"], df["z1"] = data.z.reshape(-1, 2)[:, 0], data.z.reshape(-1, 2)[:, 1]
    if shuffle:
        df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    order = np.argsort(ids)                              # sorted ids: s0, s1, s2, s3
    return df, data, order


def test_a_long_format_table_becomes_sequences_in_sorted_id_and_time_order(tmp_path):
    from ppl_ident.data import read_data

    df, data, order = _long_table()
    path = tmp_path / "seq.csv"
    df.to_csv(path, index=False)
    got, _, cols = read_data(path, Columns(sequence="trial", time="t", z=("z0", "z1")))
    assert got.x.shape == (4, 6, 3) and got.u.shape == (4, 6) and got.z.shape == (4, 6, 2)
    np.testing.assert_allclose(got.x, data.x[order], rtol=1e-6)
    np.testing.assert_array_equal(got.u, np.asarray(data.u)[order])
    np.testing.assert_allclose(got.z, data.z[order], rtol=1e-6)
    assert cols.sequence_ids == ("s0", "s1", "s2", "s3") and cols.x == ("a", "b", "c")
    # the ids are this table's, not part of the recorded mapping
    assert "sequence_ids" not in cols.to_dict()
    assert Columns.from_dict(cols.to_dict()).sequence == "trial"


def test_a_sequence_table_without_u_is_read_for_the_models_that_need_none(tmp_path):
    from ppl_ident.data import read_data

    df, data, order = _long_table(shuffle=False)
    path = tmp_path / "seq.csv"
    df.drop(columns=["u", "t"]).to_csv(path, index=False)
    got, _, cols = read_data(path, Columns(sequence="trial", x=("a", "b", "c")))
    assert got.u is None and cols.u is None
    np.testing.assert_allclose(got.x, data.x[order], rtol=1e-6)   # row order within a sequence


@pytest.mark.parametrize("edit,columns,match", [
    (lambda df: df.iloc[1:], dict(sequence="trial", time="t"), "have 5 to 6 steps"),
    (lambda df: df.assign(t=0.0), dict(sequence="trial", time="t"), "two rows at the same 't'"),
    (lambda df: df, dict(sequence="Trial"), "did you mean 'trial'"),
    (lambda df: df, dict(time="t"), "name the column of sequence ids with --seq-col"),
    (lambda df: df, dict(sequence="trial", x=("a", "trial")), "more than one role"),
])
def test_bad_sequence_tables_name_the_fix(tmp_path, edit, columns, match):
    from ppl_ident.data import read_data

    df, _, _ = _long_table()
    path = tmp_path / "seq.csv"
    edit(df).to_csv(path, index=False)
    with pytest.raises(InputError, match=match):
        read_data(path, Columns(**columns))
