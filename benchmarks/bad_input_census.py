"""Census of the bad-input property tests: how many malformed data files and command lines the
hypothesis strategies of ``tests/test_bad_input.py`` tried, how many distinct error messages
they produced, and how many ended in a traceback or another exit code than 2 (must be 0).

Runs the in-process property tests under pytest with ``PPL_IDENT_CENSUS`` set, then prints one
JSON line per group and metric::

    python benchmarks/bad_input_census.py --quick            # 50 examples per property
    python benchmarks/bad_input_census.py --examples 1000 --out census.jsonl

The examples are derandomised, so a given ``--examples`` always tries the same cases.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="50 examples per property")
    p.add_argument("--examples", type=int, default=200, help="examples per property")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = p.parse_args(argv)
    examples = 50 if args.quick else args.examples
    with tempfile.TemporaryDirectory() as tmp:
        census = Path(tmp) / "census.json"
        env = {**os.environ, "PPL_IDENT_CENSUS": str(census), "JAX_PLATFORMS": "cpu",
               "PPL_IDENT_BAD_INPUT_EXAMPLES": str(examples),
               "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(ROOT / "tests" / "test_bad_input.py"), "-k", "not subprocess and not audit"],
            env=env, capture_output=True, text=True, cwd=ROOT)
        failures = 0 if done.returncode == 0 else 1
        if failures:
            print(done.stdout[-4000:], file=sys.stderr)
        data = json.loads(census.read_text())
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import Emitter

    emit = Emitter("bad_input_census", args.out)
    settings = {"examples_per_property": examples}
    for group, row in data["summary"].items():
        for metric in ("cases", "distinct_messages"):
            emit(f"{group}: {metric}", row[metric], "count", "derandomized", settings)
    emit("property tests failing (traceback or exit code != 2)", failures, "count",
         "derandomized", settings)
    return failures


if __name__ == "__main__":
    sys.exit(main())
