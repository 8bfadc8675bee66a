"""The CLI takes data directories: `check` a .npy directory, and a directory that holds no
data is refused with exit 2, naming what it needs (no traceback)."""

from ppl_ident.cli import main
from ppl_ident.data import save_dataset


def test_check_reads_a_npy_directory_and_fit_refuses_a_directory_without_data(
        small_data, tmp_path, capsys):
    data, truth = small_data
    save_dataset(tmp_path / "d.npy", data, truth)
    assert main(["check", str(tmp_path / "d.npy"), "--points", "32"]) == 0
    assert "condition" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["fit", str(tmp_path / "empty"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "x.npy and u.npy" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
