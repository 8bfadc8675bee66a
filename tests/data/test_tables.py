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
    with pytest.raises(InputError,
                       match=r"column 'ch1'.*2 missing.*data rows 3, 6 .*lines 4, 7 of the file"):
        read_data(_write(df, tmp_path / "d.csv"), Columns(u="site"))
    df = _frame(*arrays)
    df.loc[3, "site"] = None
    with pytest.raises(InputError, match=r"auxiliary column 'site' has 1 missing.*data row 4 "):
        read_data(_write(df, tmp_path / "e.csv"), Columns(u="site"))


def _recording(rng, rows=600):
    """A long table shaped like a speech recording: 9 speakers (codes saved as floats), 30
    utterances of 20 frames, id columns ``utterance`` and ``frame``, four measured channels
    and an integer count measurement."""
    df = pd.DataFrame({"speaker": np.repeat(np.arange(1.0, 10.0), rows // 9 + 1)[:rows],
                       "utterance": np.repeat(np.arange(rows // 20), 20),
                       "frame": np.tile(np.arange(20), rows // 20)})
    for j in range(4):
        df[f"lpc{j}"] = rng.normal(size=rows)
    df["count"] = rng.poisson(3, size=rows)
    return df


def test_id_columns_are_left_out_of_the_default_x_by_name(rng, tmp_path):
    path = _write(_recording(rng), tmp_path / "rec.csv")
    with pytest.warns(UserWarning) as record:
        data, _, cols = read_data(path, Columns(u="speaker"))
    # the integer measurement stays; the utterance number and the frame counter do not
    assert cols.x == ("lpc0", "lpc1", "lpc2", "lpc3", "count") and data.x.shape == (600, 5)
    text = " ".join(str(w.message) for w in record)
    assert "'utterance': monotone" in text and "'frame': counts up by 1" in text
    assert "--x-cols lpc0 lpc1 lpc2 lpc3 count utterance frame" in text
    # named explicitly, an id column is used
    data, _, cols = read_data(path, Columns(u="speaker", x=("lpc0", "frame")))
    assert cols.x == ("lpc0", "frame")
    np.testing.assert_array_equal(data.x[:, 1], np.tile(np.arange(20), 30))


def test_the_id_rule_keeps_integer_measurements_and_finds_ids_in_any_order(rng):
    from ppl_ident.data.tables import id_like_columns

    n = 400
    groups = rng.permutation(np.repeat(np.arange(8), n // 8))         # domains in any order
    trial = np.zeros(n, int)
    for g in range(8):
        trial[groups == g] = rng.permutation(n // 8)
    df = pd.DataFrame({
        "count": rng.poisson(3, n), "rating": rng.integers(1, 6, n),
        "ms": rng.integers(200, 2000, n), "age": rng.integers(18, 80, n),
        "row": rng.permutation(n) + 1,                                    # a shuffled row id
        "site_code": 10 * groups + 7,                                     # one value per domain
        "trial": trial,                                                   # within domain
    })
    found = id_like_columns(df, list(df.columns), groups)
    assert list(found) == ["row", "site_code", "trial"]
    assert "row id" in found["row"] and "one value per domain" in found["site_code"]
    assert "row number within the domain" in found["trial"]
    # measurements that are floats, constant, or from a tiny table are never judged
    assert id_like_columns(df.assign(row=df["row"] + 0.5), ["row"]) == {}
    assert id_like_columns(df.head(9), ["row"]) == {}


def test_a_stray_text_cell_names_the_column_row_and_cell(rng, tmp_path):
    df = _recording(rng)
    df["lpc2"] = df["lpc2"].astype(object)
    df.loc[67, "lpc2"] = "abc"
    path = _write(df, tmp_path / "rec.csv")
    want = r"column 'lpc2' .*its cell 'abc' in data row 68 .*line 69 of the file"
    with pytest.raises(InputError, match=want):           # by default: never a silent drop
        read_data(path, Columns(u="speaker"))
    with pytest.raises(InputError, match=want):
        read_data(path, Columns(u="speaker", x=("lpc0", "lpc2")))
    df.loc[70, "lpc2"] = "n/a?"
    with pytest.raises(InputError, match=r"2 of its 600 cells are not numbers, the first 'abc'"):
        read_data(_write(df, tmp_path / "two.csv"), Columns(u="speaker"))


def test_float_codes_of_u_are_labels_unless_told_continuous(rng, tmp_path):
    path = _write(_recording(rng), tmp_path / "rec.parquet")
    with pytest.warns(UserWarning, match=r"'speaker' holds floats that are all whole numbers "
                                         r"\(9 distinct, 1 to 9\).*--u-kind continuous"):
        data, _, cols = read_data(path, Columns(u="speaker", x=("lpc0", "lpc1")))
    assert cols.u_kind == "labels" and data.u.dtype == np.int32 and data.u.max() == 9
    data, _, cols = read_data(path, Columns(u="speaker", x=("lpc0", "lpc1"),
                                            u_kind="continuous"))
    assert cols.u_kind == "continuous" and data.u.shape == (600, 1)


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


def test_messages_quote_numeric_ids_and_cells_as_plain_numbers(tmp_path):
    """Integer sequence ids and boolean cells are quoted as a reader wrote them, never as
    ``np.int64(68)`` or ``np.True_``."""
    df = pd.DataFrame({"utt": np.r_[np.repeat(np.arange(60, 70), 5), [68]],
                       "a": np.arange(51.0), "flag": [True, False] * 25 + [True]})
    path = _write(df, tmp_path / "seq.csv")
    with pytest.raises(InputError, match=r"\(e\.g\. 60 has 5\)") as err:
        read_data(path, Columns(sequence="utt", x=("a",)))
    assert "np." not in str(err.value)
    with pytest.raises(InputError, match=r"dtype bool, e\.g\. True in data row 1 ") as err:
        read_data(path, Columns(sequence="utt", x=("a", "flag")))
    assert "np." not in str(err.value)
