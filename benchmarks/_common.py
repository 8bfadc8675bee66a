"""Helpers shared by the benchmark scripts: JSON lines with machine and version, and
``KEY=VALUE`` overrides from the command line."""

from __future__ import annotations

import ast
import json
import os
import platform
import subprocess
import sys


def machine() -> str:
    try:
        import jax

        dev = jax.devices()[0]
        if dev.platform != "cpu":
            return dev.device_kind
    except Exception:  # noqa: BLE001 - the label is informative only
        pass
    return f"{os.cpu_count()}-core CPU ({platform.machine()})"


def version() -> str:
    from ppl_ident import __version__

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True, cwd=os.path.dirname(__file__)).stdout.strip()
    except Exception:  # noqa: BLE001
        commit = "unknown"
    return f"{__version__}+{commit}"


def write_rows(rows, out: str | None = None) -> None:
    """Print already-built result rows as JSON lines, each with the machine and version
    labels, and append them to ``out`` when given."""
    labels = {"machine": machine(), "version": version()}
    lines = [json.dumps({**r, **labels}) for r in rows]
    print("\n".join(lines), flush=True)
    if out:
        with open(out, "a") as fh:
            fh.write("\n".join(lines) + "\n")


class Emitter:
    """Print JSON lines to stdout and optionally append them to a file."""

    def __init__(self, benchmark: str, out: str | None = None):
        self.benchmark, self.out = benchmark, out
        self.machine, self.version = machine(), version()

    def __call__(self, metric, value, unit, seeds, settings):
        line = json.dumps({"benchmark": self.benchmark, "metric": metric, "value": value,
                           "unit": unit, "seeds": seeds, "settings": settings,
                           "machine": self.machine, "version": self.version})
        print(line, flush=True)
        if self.out:
            with open(self.out, "a") as fh:
                fh.write(line + "\n")


def pairs(items) -> dict:
    """``KEY=VALUE`` command-line items as a dict; values parsed as Python literals, else
    ``true``/``false`` as booleans, else kept as strings."""
    out = {}
    for item in items or []:
        key, _, value = item.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


sys.path.insert(0, os.path.dirname(__file__))
