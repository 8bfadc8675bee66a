"""Speed of the sufficient-variability checker (issue 3 target: < 5 s after compilation).

Checks the seed's condition on 1,000 latent points for n = 10 latents and 41 domains (a
factorial Gaussian prior with changing locations and scales), and on a nonlinear
heteroscedastic transition density p(z_t | z_{t-1}) with 41 past values as the auxiliary
variable. Compile time (first call) and run time (median of repeated calls with the same
function, so the cached compilation is reused) are reported apart.

Usage::

    python benchmarks/variability_speed.py [--quick] [--out FILE]

Prints JSON lines {"benchmark", "metric", "value", "unit", "seeds", "settings", "machine",
"version"}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.scipy.stats as st
import numpy as np

import ppl_ident
from ppl_ident.diagnostics import sufficient_variability


def _version() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"{ppl_ident.__version__}+{commit}"


def _problems(n, m, seed):
    rng = np.random.default_rng(seed)
    loc = jnp.asarray(rng.uniform(-1, 1, (m, n)))
    scale = jnp.asarray(rng.uniform(0.5, 3, (m, n)))
    a = jnp.asarray(rng.standard_normal((n, n)) / np.sqrt(n))

    def prior(z, u):
        return st.norm.logpdf(z, loc[u], scale[u]).sum()

    def transition(z_t, z_prev):
        mean = jnp.tanh(z_prev @ a) + 0.5 * z_prev
        sigma = 0.3 + jax.nn.softplus(jnp.sin(z_prev @ a.T))
        return st.norm.logpdf(z_t, mean, sigma).sum()

    return {"prior": (prior, np.arange(m)),
            "transition": (transition, rng.standard_normal((m, n)))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 timed repeats instead of 10")
    parser.add_argument("--out", default=None, help="also append the JSON lines to this file")
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--latents", type=int, default=10)
    parser.add_argument("--domains", type=int, default=41)
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 10
    n, m, p = args.latents, args.domains, args.points
    z = np.random.default_rng(1).standard_normal((p, n))
    settings = {"n_latent": n, "n_aux": m, "n_points": p, "repeats": repeats,
                "backend": jax.default_backend()}
    lines = []
    for name, (fn, aux) in _problems(n, m, 0).items():
        t0 = time.perf_counter()
        report = sufficient_variability(fn, z, aux)
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            sufficient_variability(fn, z, aux)
            times.append(time.perf_counter() - t0)
        run = statistics.median(times)
        for metric, value, unit in [("compile_plus_first_run_s", first, "s"),
                                    ("run_time_s", run, "s"),
                                    ("rank", report.rank, "count"),
                                    ("passed", report.passed, "bool")]:
            lines.append({"benchmark": f"variability_speed/{name}", "metric": metric,
                          "value": value, "unit": unit, "seeds": [0],
                          "settings": settings, "machine": "2-core CPU",
                          "version": _version()})
    text = "\n".join(json.dumps(line) for line in lines)
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
