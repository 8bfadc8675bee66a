"""The real-data example's loading: BasicMotions read from the installed sktime (no download),
as rows of six standardised channels with the activity as u, through the table reader."""

import numpy as np
import pytest

pytest.importorskip("sktime")


def test_basic_motions_rows_and_table_round_trip(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "real_data", Path(__file__).resolve().parents[1] / "examples" / "real_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    train, test = mod.load_basic_motions(recordings=2)
    # 2 recordings x 4 activities x 100 steps per split; 6 channels
    assert len(train) == len(test) == 800
    assert sorted(train["activity"].unique()) == ["badminton", "running", "standing", "walking"]
    np.testing.assert_allclose(train[mod.CHANNELS].mean(), 0, atol=1e-9)
    np.testing.assert_allclose(train[mod.CHANNELS].std(), 1, atol=1e-9)
    from ppl_ident.data import Columns, read_data

    train.to_csv(tmp_path / "train.csv", index=False)
    data, truth, cols = read_data(tmp_path / "train.csv",
                                  Columns(u="activity", x=tuple(mod.CHANNELS)))
    assert data.x.shape == (800, 6) and data.z is None and truth is None
    assert list(cols.u_categories) == ["badminton", "running", "standing", "walking"]
    np.testing.assert_array_equal(np.bincount(data.u), [200, 200, 200, 200])
