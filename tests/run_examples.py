"""Run example scripts one after another in this one Python process, each as ``__main__``.

``python tests/run_examples.py RESULTS.json NAME ARG... -- NAME ARG... -- ...``

Each script runs as ``python examples/NAME.py ARG...`` would run it: ``runpy`` executes the
file as ``__main__`` with ``sys.argv`` set, its standard output and error captured; an
exception that would have ended the script is printed to its captured standard error as the
interpreter would print it, and its exit status (0, a ``SystemExit`` code, or 1) is recorded.
What the scripts share is what one process shares: the imported package and its compiled
programs, so JAX, NumPyro, ArviZ and matplotlib are imported once instead of once per example
(``tests/test_examples.py`` uses it). Writes ``{name: {"returncode", "stdout", "stderr"}}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import sys
import traceback
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_one(name: str, args: list[str]) -> dict:
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = [str(EXAMPLES / f"{name}.py"), *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(sys.argv[0], run_name="__main__")
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None
                                                                      else 1)
                if stop.code is not None and not isinstance(stop.code, int):
                    print(stop.code, file=sys.stderr)
            except BaseException:  # noqa: BLE001 - reported as the interpreter would
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = argv
        import matplotlib.pyplot as plt

        plt.close("all")
    return {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main(argv: list[str]) -> None:
    results_path, rest = Path(argv[0]), argv[1:]
    runs, current = [], []
    for a in rest + ["--"]:
        if a == "--":
            if current:
                runs.append(current)
            current = []
        else:
            current.append(a)
    results = {}
    for name, *args in runs:
        results[name] = run_one(name, args)
        results_path.write_text(json.dumps(results))  # what ran so far, if one hangs


if __name__ == "__main__":
    main(sys.argv[1:])
