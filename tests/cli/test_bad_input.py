"""Bad input, tried systematically with hypothesis: every malformed data file and every bad
command line ends in a one-paragraph message and exit code 2 -- never a traceback, never a
partial output.

The CLI is called in-process (``ppl_ident.cli.main``) for speed; a few cases also run as real
subprocesses. Every case tried is counted, with the distinct error messages it produced (numbers
and user-supplied values normalised away), in :data:`CENSUS`; ``benchmarks/bad_input_census.py``
reports the totals (set ``PPL_IDENT_CENSUS=file.json`` to write them).
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ppl_ident.cli import main
from ppl_ident.errors import InputError
from ppl_ident.workflow import prepare_inputs

#: group -> Counter(normalised message -> cases)
CENSUS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

SETTINGS = settings(max_examples=int(os.environ.get("PPL_IDENT_BAD_INPUT_EXAMPLES", 200)),
                    deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def normalise(message: str) -> str:
    """An error message with paths, numbers and echoed user values replaced by placeholders,
    so that messages differing only in those count once."""
    msg = message.strip().splitlines()[-1] if message.strip() else ""
    msg = re.sub(r"(/[^\s:,;)']+)+", "PATH", msg)
    msg = re.sub(r"(got|choice:|labels?\(s\)|label\(s\)) .*?(\(|;|$)", r"\1 V \2", msg)
    msg = re.sub(r"dtype \S+", "dtype T", msg)
    msg = re.sub(r"unrecognized arguments: .*", "unrecognized arguments: V", msg)
    msg = re.sub(r"\d+(\.\d+)? [KMGTP]?B\b", "N bytes", msg)
    msg = re.sub(r"\([^()]*\)", "(..)", msg)
    msg = re.sub(r"\[[^\[\]]*\]", "[..]", msg)
    msg = re.sub(r"-?\d+(\.\d+)?(e[+-]?\d+)?", "N", msg)
    return msg


def run_cli(argv, capsys, group: str, out_dir: Path | None = None, kind: str = ""):
    """Run the CLI in-process; check exit code 2, no traceback, no partial output; count."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and "Traceback" not in captured.out
    assert code == 2, f"{argv}: exit {code}\n{err}"
    assert "error:" in err, err
    if out_dir is not None:
        assert not out_dir.exists() or not any(out_dir.iterdir()), f"partial output for {argv}"
    msg = normalise(err)
    CENSUS[group][msg] += 1
    if kind:  # only inside @given tests, where hypothesis records events
        event(f"{group}: {msg[:90]}")
        event(f"kind: {kind}")
    return err


@pytest.fixture(scope="module", autouse=True)
def _census_report():
    yield
    summary = {g: {"cases": sum(c.values()), "distinct_messages": len(c)}
               for g, c in CENSUS.items()}
    summary["total"] = {"cases": sum(v["cases"] for v in summary.values()),
                        "distinct_messages": len(set().union(*CENSUS.values()))
                        if CENSUS else 0}
    path = os.environ.get("PPL_IDENT_CENSUS")
    if path:
        Path(path).write_text(json.dumps({"summary": summary, "messages": {
            g: dict(c.most_common()) for g, c in CENSUS.items()}}, indent=2))


# --------------------------------------------------------------------------------------------
# data files
# --------------------------------------------------------------------------------------------

N = 12  # rows of the otherwise valid base file


def _valid_arrays(rng):
    return {"x": rng.standard_normal((N, 3)).astype(np.float32),
            "u": np.repeat(np.arange(4), N // 4).astype(np.int64),
            "z": rng.standard_normal((N, 2)).astype(np.float32)}


def _npy_header(shape, descr="<f4"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": tuple(shape)})
    return buf.getvalue()


_WRONG_DTYPES = [np.dtype("U3"), np.dtype("S2"), np.dtype("complex64"),
                 np.dtype("datetime64[D]"), np.dtype("timedelta64[s]"),
                 np.dtype([("a", "f4"), ("b", "i4")])]


@st.composite
def bad_data_files(draw):
    """``(kind, writer)``: ``writer(path)`` creates a data file that breaks the contract in
    exactly the way ``kind`` names (and possibly others)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    arrays = _valid_arrays(rng)
    key = draw(st.sampled_from(["x", "u", "z"]))
    kind = draw(st.sampled_from([
        "wrong_dtype", "bad_rank", "empty", "nonfinite", "object", "pickle_file",
        "pickle_member", "not_zip", "truncated_zip", "huge_header", "mismatched_length",
        "bad_labels", "missing_key", "beyond_float32", "sequence_for_iid", "bad_truth",
        "single_domain", "corrupt_header", "one_row_domains",
    ]))
    raw = None  # bytes to write instead of an npz of `arrays`
    if kind == "wrong_dtype":
        dt = draw(st.sampled_from(_WRONG_DTYPES))
        arrays[key] = np.zeros(arrays[key].shape, dtype=dt)
    elif kind == "bad_rank":
        shape = draw(st.sampled_from([(), (N,), (N, 3, 2, 2), (1, N, 3, 1, 1)]))
        if key == "x" and len(shape) == 1:
            shape = (N, 2, 2, 2)  # 1-D x would be a valid sequence-free (N,) label vector
        arrays[key] = rng.standard_normal(shape) if shape else np.float64(1.0)
        if key == "u" and len(shape) == 1:
            kind, arrays["u"] = "bad_labels", np.full(N, -1)
    elif kind == "empty":
        arrays[key] = np.zeros(draw(st.sampled_from([(0, 3), (N, 0), (0,), (0, 0)])),
                               np.float32)
        if key == "u" and arrays[key].shape == (0,):
            arrays[key] = np.zeros((N, 0), np.float32)
    elif kind == "nonfinite":
        key = draw(st.sampled_from(["x", "z", "u_cont"]))
        bad = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        if key == "u_cont":
            key, arrays["u"] = "u", rng.standard_normal((N, 2))
        arr = arrays[key].astype(np.float64)
        idx = tuple(draw(st.integers(0, s - 1)) for s in arr.shape)
        arr[idx] = bad
        arrays[key] = arr
    elif kind == "object":
        arrays[key] = np.array([None] * N + [{"a": 1}], dtype=object)
    elif kind == "pickle_file":
        raw = pickle.dumps({"x": arrays["x"], "u": arrays["u"]})
    elif kind == "pickle_member":
        payload = pickle.dumps(arrays[key])
        raw = _zip({**{k: _npy(v) for k, v in arrays.items()}, f"{key}.npy": payload})
    elif kind == "not_zip":
        raw = draw(st.sampled_from([b"", b"x,u\n1,2\n", _npy(arrays["x"]),
                                    draw(st.binary(min_size=1, max_size=64))]))
        if raw.startswith(b"PK"):
            raw = b"!" + raw
    elif kind == "truncated_zip":
        full = _zip({k: _npy(v) for k, v in arrays.items()})
        raw = full[: draw(st.integers(4, len(full) - 30))]
    elif kind == "huge_header":
        shape = (draw(st.integers(10**11, 10**14)), draw(st.integers(1, 64)))
        raw = _zip({**{k: _npy(v) for k, v in arrays.items()}, f"{key}.npy": _npy_header(shape)})
    elif kind == "mismatched_length":
        extra = draw(st.integers(1, 5)) * draw(st.sampled_from([-1, 1]))
        arr = arrays[key]
        new_n = max(N + extra, 1) if key != "x" else N
        if key == "x":
            arrays["u"] = np.resize(arrays["u"], N + abs(extra))
        else:
            arrays[key] = np.resize(arr, (new_n,) + arr.shape[1:])
    elif kind == "bad_labels":
        labels = draw(st.sampled_from(["negative", "fractional", "too_big", "nan_float"]))
        u = arrays["u"].astype(np.float64)
        i = draw(st.integers(0, N - 1))
        u[i] = {"negative": -draw(st.integers(1, 10**6)), "fractional": 0.5,
                "too_big": 2.0 ** draw(st.integers(31, 60)), "nan_float": np.nan}[labels]
        arrays["u"] = u.astype(np.int64) if labels in ("negative", "too_big") else u
    elif kind == "missing_key":
        del arrays[draw(st.sampled_from(["x", "u"]))]
    elif kind == "beyond_float32":
        arr = arrays[key if key != "u" else "x"].astype(np.float64)
        arr.flat[draw(st.integers(0, arr.size - 1))] = draw(st.sampled_from([1e39, -1e300]))
        arrays[key if key != "u" else "x"] = arr
    elif kind == "sequence_for_iid":
        arrays = {"x": rng.standard_normal((2, N, 3)), "u": np.zeros((2, N), np.int64)}
    elif kind == "bad_truth":
        arrays["truth_mixing_weights"] = rng.standard_normal((1, 2, 2))  # no activation etc.
    elif kind == "corrupt_header":
        how = draw(st.sampled_from(["negative_shape", "bad_descr", "short_payload", "garbage"]))
        if how == "negative_shape":
            member = _npy_header((N, -draw(st.integers(1, 9))))
        elif how == "bad_descr":
            member = _npy_header((N, 3), descr=draw(st.sampled_from(["<x9", "|O9", "zz"])))
        elif how == "short_payload":
            member = _npy(arrays[key])[: -draw(st.integers(1, 16))]
        else:
            member = b"\x93NUMPY\x01\x00" + draw(st.binary(min_size=2, max_size=40))
        raw = _zip({**{k: _npy(v) for k, v in arrays.items()}, f"{key}.npy": member})
    elif kind == "single_domain":
        arrays["u"] = np.full(N, draw(st.integers(0, 100)))
    elif kind == "one_row_domains":
        # every row its own domain (a row or utterance id as u), or one lone row among domains
        # of several
        u = rng.permutation(N) if draw(st.booleans()) else np.r_[np.repeat([0, 1], N // 2 - 1),
                                                                 [2, 2]]
        lone = draw(st.integers(0, N - 1))
        if u.max() < N - 1:
            u[lone] = 7
        arrays["u"] = (u + draw(st.integers(0, 100))).astype(np.int64)
    return kind, arrays, raw


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr), allow_pickle=True)
    return buf.getvalue()


def _zip(members: dict) -> bytes:
    named = {}
    for name, data in members.items():  # later entries replace earlier ones
        named[name if name.endswith(".npy") else f"{name}.npy"] = data
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in named.items():
            zf.writestr(name, data)
    return buf.getvalue()


@SETTINGS
@given(case=bad_data_files())
def test_bad_data_files_exit_2_without_traceback(case, capsys):
    kind, arrays, raw = case
    tmp = Path(tempfile.mkdtemp(prefix="ppl_bad_"))
    try:
        path = tmp / "data.npz"
        if raw is not None:
            path.write_bytes(raw)
        else:
            np.savez(path, **arrays)  # np.savez pickles object arrays: a hostile file
        out = tmp / "run"
        # --steps 1 --width 4: should a bad file slip through, the failure is quick
        run_cli(["fit", path, "--out", out, "--steps", 1, "--width", 4, "--no-progress"],
                capsys, "data files", out, kind)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@SETTINGS
@given(known=st.lists(st.integers(0, 50), min_size=1, max_size=8, unique=True),
       extra=st.lists(st.integers(-5, 10**9), min_size=1, max_size=3))
def test_unseen_domain_labels_at_prediction_are_refused(known, extra):
    labels = np.unique(known)
    unseen = [v for v in extra if v not in set(known)]
    if not unseen:
        unseen = [max(known) + 1]
    u = np.concatenate([labels, np.asarray(unseen)])
    with pytest.raises(InputError, match="not seen when fitting") as err:
        prepare_inputs(u, labels)
    CENSUS["prediction labels"][normalise(str(err.value))] += 1
    idx, same = prepare_inputs(labels[::-1], labels)  # known labels map back to their index
    np.testing.assert_array_equal(labels[idx], labels[::-1])


# --------------------------------------------------------------------------------------------
# command lines
# --------------------------------------------------------------------------------------------

_BAD_INTS = st.one_of(st.integers(-10**6, 0), st.sampled_from(["abc", "1.5", "", "1e3", "nan"]))
_BAD_FLOATS = st.one_of(st.floats(max_value=0, allow_nan=False),
                        st.sampled_from(["nan", "inf", "-inf", "x", ""]))
_NAMES = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)

FIT_INT = ["--latent-dim", "--particles", "--steps", "--batch-size", "--restarts", "--width",
           "--depth", "--checkpoint-every"]
FIT_FLOAT = ["--lr", "--noise-scale"]
FIT_CHOICE = {"--model": ["ivae", "vae"], "--engine": ["svi"],
              "--elbo": ["Trace_ELBO", "TraceMeanField_ELBO"], "--prior": ["gaussian", "laplace"]}
SIM_INT = ["--latent-dim", "--data-dim", "--domains", "--points-per-domain", "--mixing-layers"]
SIM_FLOAT = ["--slope", "--df", "--scale-min", "--scale-max", "--max-cond"]
SIM_CHOICE = {"--activation": ["leaky_relu", "tanh", "relu", "smooth_leaky_relu", "identity"],
              "--source": ["gaussian", "laplace", "student_t"]}


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    """A valid 2-D data file (d=3) used with bad options."""
    path = tmp_path_factory.mktemp("good") / "good.npz"
    np.savez(path, **_valid_arrays(np.random.default_rng(0)))
    return path


def _opt(draw, option, value):
    """``--opt value`` or ``--opt=value`` (argparse reads ``--opt -1`` as two options)."""
    if draw(st.booleans()):
        return [f"{option}={value}"]
    return [option, str(value)]


@st.composite
def bad_fit_args(draw, data):
    kind = draw(st.sampled_from(["int", "float", "choice", "latent_gt_d", "seed", "no_data",
                                 "resume_missing", "resume_and_out", "resume_with_settings",
                                 "unknown_flag"]))
    if kind == "int":
        return kind, [data, *_opt(draw, draw(st.sampled_from(FIT_INT)), draw(_BAD_INTS))]
    if kind == "float":
        return kind, [data, *_opt(draw, draw(st.sampled_from(FIT_FLOAT)), draw(_BAD_FLOATS))]
    if kind == "choice":
        opt = draw(st.sampled_from(sorted(FIT_CHOICE)))
        name = draw(_NAMES.filter(lambda s: s not in FIT_CHOICE[opt]))
        return kind, [data, opt, name]
    if kind == "latent_gt_d":
        return kind, [data, "--latent-dim", str(draw(st.integers(4, 10**4)))]
    if kind == "seed":
        return kind, [data, "--seed", str(draw(st.integers(-10**6, -1)))]
    if kind == "no_data":
        return kind, []
    if kind == "resume_missing":
        return kind, ["--resume", f"/nonexistent/{draw(_NAMES)}"]
    if kind == "resume_and_out":
        return kind, ["--resume", data.parent]
    if kind == "resume_with_settings":
        opt, value = draw(st.sampled_from([("--lr", "0.1"), ("--width", "7"), ("--seed", "9"),
                                           ("--model", "vae"), ("--restarts", "3")]))
        return kind, ["--resume", data.parent, opt, value]
    return kind, [data, f"--{draw(_NAMES)}-{draw(_NAMES)}", "1"]


@SETTINGS
@given(data=st.data())
def test_bad_fit_arguments_exit_2(data, good_file, capsys):
    kind, args = data.draw(bad_fit_args(good_file))
    tmp = Path(tempfile.mkdtemp(prefix="ppl_badarg_"))
    try:
        out = tmp / "run"
        argv = ["fit", *args, "--out", out, "--no-progress"]
        if kind == "resume_and_out":
            argv = ["fit", *args, "--out", tmp / "elsewhere"]
        elif kind in ("resume_missing", "resume_with_settings"):
            argv = ["fit", *args, "--no-progress"]
        run_cli(argv, capsys, "fit arguments", out, kind)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@st.composite
def bad_simulate_args(draw):
    kind = draw(st.sampled_from(["int", "float", "choice", "latent_gt_d", "scale_order",
                                 "huge", "suffix", "negative_range"]))
    if kind == "int":
        return kind, _opt(draw, draw(st.sampled_from(SIM_INT)), draw(_BAD_INTS))
    if kind == "float":
        return kind, _opt(draw, draw(st.sampled_from(SIM_FLOAT)), draw(_BAD_FLOATS))
    if kind == "choice":
        opt = draw(st.sampled_from(sorted(SIM_CHOICE)))
        return kind, [opt, draw(_NAMES.filter(lambda s: s not in SIM_CHOICE[opt]))]
    if kind == "latent_gt_d":
        d = draw(st.integers(1, 50))
        return kind, ["--data-dim", str(d), "--latent-dim", str(d + draw(st.integers(1, 50)))]
    if kind == "scale_order":
        lo = draw(st.floats(0.2, 100))
        return kind, ["--scale-min", str(lo), "--scale-max", str(lo / 2)]
    if kind == "huge":
        opt = draw(st.sampled_from(["--points-per-domain", "--domains"]))
        return kind, [opt, str(draw(st.integers(10**11, 10**18)))]
    if kind == "suffix":
        return kind, ["--out-suffix", draw(st.sampled_from([".csv", ".npy.bak", "", ".npz.bak"]))]
    return kind, _opt(draw, draw(st.sampled_from(["--loc-range", "--noise-std"])),
                      draw(st.floats(max_value=-1e-6, allow_nan=False)))


@SETTINGS
@given(case=bad_simulate_args())
def test_bad_simulate_arguments_exit_2(case, capsys):
    kind, args = case
    tmp = Path(tempfile.mkdtemp(prefix="ppl_badsim_"))
    try:
        out = tmp / "data.npz"
        if kind == "suffix":
            out, args = tmp / f"data{args[1]}", []
        run_cli(["simulate", "--out", out, *args], capsys, "simulate arguments", None, kind)
        assert not out.exists() and not list(tmp.iterdir()), "partial output"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("generator,flag,value", [
    ("nctrl", "--df", "5"), ("ctrlns", "--segments", "3"),
    ("tdrl_changing", "--segment-length", "7"), ("tdrl_stationary", "--df", "2.5"),
])
def test_published_ports_refuse_the_package_generators_flags(tmp_path, capsys, generator,
                                                             flag, value):
    # the ports keep their originals' settings: a flag they would ignore exits 2, naming it
    out = tmp_path / "data.npz"
    err = run_cli(["simulate", "--out", out, "--generator", generator, flag, value], capsys,
                  "simulate arguments", tmp_path)
    assert f"{flag} set(s) the package's own generators" in err and "drop them" in err
    assert not out.exists()


def test_existing_outputs_are_never_overwritten_without_force(good_file, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("precious")
    run_cli(["fit", good_file, "--out", run], capsys, "existing outputs")
    assert [p.name for p in run.iterdir()] == ["keep.txt"]
    data = tmp_path / "d.npz"
    data.write_bytes(b"precious")
    run_cli(["simulate", "--out", data], capsys, "existing outputs")
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "keep.txt").write_text("precious")
    run_cli(["demo", "--out", demo], capsys, "existing outputs")
    assert data.read_bytes() == b"precious" and (demo / "keep.txt").read_text() == "precious"


def _table_traps(tmp_path):
    """``(kind, argv)``: tables that once slipped through (issue 33): a stray text cell in a
    numeric column, one row per domain, fractional values read as labels."""
    rng = np.random.default_rng(0)
    rows = 60
    df = {"speaker": np.repeat(np.arange(1.0, 7.0), rows // 6), "a": rng.normal(size=rows),
          "b": rng.normal(size=rows), "utt": rng.permutation(rows)}
    import pandas as pd

    frame = pd.DataFrame(df)
    stray = frame.astype({"b": object})
    stray.loc[41, "b"] = "abc"
    stray.to_csv(tmp_path / "stray.csv", index=False)
    frame.to_csv(tmp_path / "rec.csv", index=False)
    frame.assign(speaker=frame["speaker"] + 0.5).to_csv(tmp_path / "half.csv", index=False)
    return [("stray_cell", [tmp_path / "stray.csv", "--u-col", "speaker"]),
            ("stray_cell_named", [tmp_path / "stray.csv", "--u-col", "speaker", "--x-cols",
                                  "a,b"]),
            ("one_row_domains", [tmp_path / "rec.csv", "--u-col", "utt", "--x-cols", "a", "b"]),
            ("fractional_labels", [tmp_path / "half.csv", "--u-col", "speaker", "--u-kind",
                                   "labels"])]


def test_table_traps_exit_2_naming_the_cell_or_the_fix(tmp_path, capsys):
    want = {"stray_cell": "'abc' in data row 42 (counted from 1 below the header; line 43",
            "stray_cell_named": "column 'b' (observations) is not numeric",
            "one_row_domains": "60 of them have fewer than 2 rows (e.g. label 0, 1 row)",
            "fractional_labels": "non-integer values (e.g. 1.5 in data row 1"}
    for kind, args in _table_traps(tmp_path):
        out = tmp_path / f"run_{kind}"
        err = run_cli(["fit", *args, "--out", out, "--steps", 1, "--no-progress"], capsys,
                      "tables", out, "")
        assert want[kind] in err, err
        assert "np.int64" not in err and "np.float64" not in err


def test_real_subprocesses_exit_2_without_traceback(tmp_path):
    """The same guarantees outside pytest's process (argument errors, a pickle, a NaN)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps({"x": [1, 2]}))
    np.savez(tmp_path / "nan.npz", x=np.array([[np.nan, 1.0]]), u=np.array([0]))
    cases = [["fit", tmp_path / "pickle.npz", "--out", tmp_path / "a"],
             ["fit", tmp_path / "nan.npz", "--out", tmp_path / "b"],
             ["simulate", "--out", tmp_path / "c.npz", "--domains", "-1"]]
    for argv in cases:
        done = subprocess.run([sys.executable, "-m", "ppl_ident.cli", *map(str, argv)],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "error:" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.npz", "pickle.npz"]


def test_source_audit_no_pickle_and_atomic_writes():
    """Every load in the package refuses pickle; every file write is atomic: it goes through
    ``ppl_ident.files`` or happens in a function that renames a temporary file into place
    (``os.replace``, or ``atomic_write_bytes`` of an in-memory buffer). Checked on the syntax
    tree, so new code that writes a file directly fails here."""
    import ast

    root = Path(__file__).resolve().parents[2] / "ppl_ident"
    writers = {"save", "savez", "savez_compressed", "savetxt", "write_text", "write_bytes",
               "savefig", "to_netcdf", "dump", "tofile"}
    renames = {"replace", "rename", "atomic_write_bytes", "atomic_savez", "atomic_write_json"}

    def call_name(node):
        return getattr(node.func, "attr", getattr(node.func, "id", ""))

    bad = []
    sources = sorted(root.rglob("*.py"))
    assert len(sources) > 40, f"the audit found only {len(sources)} modules under {root}"
    for path in sources:
        tree = ast.parse(path.read_text())
        atomic_scopes = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if any(isinstance(n, ast.Call) and call_name(n) in renames for n in ast.walk(fn)):
                    atomic_scopes.update(id(n) for n in ast.walk(fn))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "cloudpickle", "dill") for n in names):
                    bad.append(f"{path.name}:{node.lineno} imports pickle")
            if not isinstance(node, ast.Call):
                continue
            name = call_name(node)
            kw = {k.arg: k.value for k in node.keywords}
            if name == "load" and ast.unparse(node.func).startswith(("np.", "numpy.")):
                if not (isinstance(kw.get("allow_pickle"), ast.Constant)
                        and kw["allow_pickle"].value is False):
                    bad.append(f"{path.name}:{node.lineno} np.load without allow_pickle=False")
            if path.name == "files.py" or id(node) in atomic_scopes:
                continue
            if name in writers:
                bad.append(f"{path.name}:{node.lineno} writes a file directly ({name})")
            if name == "open":
                mode = node.args[1] if len(node.args) > 1 else kw.get("mode")
                if isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+"):
                    bad.append(f"{path.name}:{node.lineno} opens a file for writing")
    assert not bad, bad


@pytest.fixture(scope="module")
def run_config_text():
    """A valid config.json of a small iVAE run (no fit needed)."""
    from ppl_ident.data import simulate_domains
    from ppl_ident.workflow import fit_model, save_run

    data, _ = simulate_domains(0, n_latent=2, data_dim=3, n_domains=4, n_per_domain=10,
                               n_layers=1)
    with tempfile.TemporaryDirectory() as tmp:
        fitted = fit_model(data, steps=1, width=8, depth=1, latent_dim=2)
        save_run(tmp, fitted)
        return (Path(tmp) / "config.json").read_text()


@settings(SETTINGS, max_examples=min(SETTINGS.max_examples, 40))  # 16 combinations; slower CLI
@given(cmd=st.sampled_from(["check", "report"]),
       kind=st.sampled_from(["missing", "file", "empty_dir", "bad_json", "wrong_config",
                             "partial_run", "corrupt_params", "pickled_params"]))
def test_damaged_run_directories_exit_2(cmd, kind, run_config_text, capsys):
    """A run directory that is missing, damaged, or left by a killed fit (config and checkpoint,
    no parameters) is refused with a message by the commands that read runs."""
    tmp = Path(tempfile.mkdtemp(prefix="ppl_badrun_"))
    try:
        run = tmp / "run"
        if kind == "file":
            run.write_bytes(b"not a directory")
        elif kind != "missing":
            run.mkdir()
        if kind == "bad_json":
            (run / "config.json").write_text("{not json")
        elif kind == "wrong_config":
            (run / "config.json").write_text(json.dumps({"settings": {"bogus": 1}}))
        elif kind in ("partial_run", "corrupt_params", "pickled_params"):
            (run / "config.json").write_text(run_config_text)
            if kind == "corrupt_params":
                (run / "params.npz").write_bytes(b"PK\x03\x04 truncated")
            elif kind == "pickled_params":
                np.savez(run / "params.npz", x=np.array([{"a": 1}], dtype=object))
        before = sorted(p.name for p in tmp.rglob("*"))
        run_cli([cmd, run], capsys, f"{cmd} run directories", None, kind)
        assert sorted(p.name for p in tmp.rglob("*")) == before, "partial output"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
