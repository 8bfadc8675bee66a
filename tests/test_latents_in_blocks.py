"""`save_latents` writes large i.i.d. data block by block (bounded memory): the file equals
the one-block table, in CSV and Parquet."""

import importlib

import pandas as pd

from ppl_ident.workflow import encode_rows, save_latents

export = importlib.import_module("ppl_ident.workflow.export")


def test_latents_written_in_blocks_equal_the_whole_table(tiny_fit, small_data, tmp_path,
                                                         monkeypatch):
    data, _ = small_data
    whole = encode_rows(tiny_fit, data)
    monkeypatch.setattr(export, "WRITE_ROWS", 70)   # 300 rows: 5 blocks, the last short
    save_latents(tmp_path / "z.parquet", tiny_fit, data)
    save_latents(tmp_path / "z.csv", tiny_fit, data)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "z.parquet"), whole)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "z.csv"), whole, check_dtype=False,
                                  rtol=1e-6)
    assert list(tmp_path.iterdir()) and not list(tmp_path.glob(".*tmp"))
