"""The data-parallel SVI step equals the single-device one.

Two CPU host devices exist only if ``XLA_FLAGS`` is set before JAX starts, so the comparison
runs in a fresh interpreter; it prints the largest differences as JSON.
"""

import json
import os
import subprocess
import sys

import pytest

from ppl_ident.errors import InputError
from ppl_ident.inference.sharding import batch_mesh, check_batch_size

SCRIPT = r"""
import json
import jax, jax.numpy as jnp, numpy as np
from ppl_ident.data import simulate_domains
from ppl_ident.families import build_model
from ppl_ident.inference import fit, svi_engine
from ppl_ident.inference.sharding import batch_mesh, replicate

data, _ = simulate_domains(0, n_latent=3, data_dim=4, n_domains=5, n_per_domain=200)
spec = build_model("ivae", n_latent=3, data_dim=4, n_domains=5, flow=False)
x, u = jnp.asarray(data.x), jnp.asarray(data.u)
mesh = batch_mesh()
plain, sharded = svi_engine(spec, batch_size=64), svi_engine(spec, batch_size=64, mesh=mesh)
key = jax.random.PRNGKey(0)
# jitted: an eager init dispatches every operation on its own (3.5 s of this script)
s1, s2 = jax.jit(plain.init)(key, x, u), replicate(jax.jit(sharded.init)(key, x, u), mesh)
xr, ur = replicate((x, u), mesh)
step1, step2 = jax.jit(plain.step), jax.jit(sharded.step)
loss_diff = 0.0
for _ in range(5):
    s1, i1 = step1(s1, x, u)
    s2, i2 = step2(s2, xr, ur)
    loss_diff = max(loss_diff, abs(float(i1.loss) - float(i2.loss)) / abs(float(i1.loss)))
leaves = lambda s: jax.tree_util.tree_leaves(plain.get_params(s))
param_diff = max(float(jnp.abs(a - b).max()) for a, b in zip(leaves(s1), leaves(s2)))
hlo = step2.lower(s2, xr, ur).compile().as_text()
# the whole fit, two vectorised restarts: the same restart chosen, the same parameters
r1 = fit(plain, key, x, u, 30, restarts=2, progress=False)
r2 = fit(sharded, key, x, u, 30, restarts=2, progress=False)
fit_diff = max(float(jnp.abs(a - b).max()) for a, b in zip(
    jax.tree_util.tree_leaves(r1.params), jax.tree_util.tree_leaves(r2.params)))
print(json.dumps(dict(devices=len(jax.devices()), loss=loss_diff, params=param_diff,
                      all_reduce="all-reduce" in hlo, fit=fit_diff,
                      selected=[r1.selected, r2.selected], devices_used=sharded.devices)))
"""


@pytest.fixture(scope="module")
def two_devices():
    # keep the suite's XLA flags (conftest.py: compile quickly) and add the second device
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, check=False,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_sharded_step_equals_the_single_device_step(two_devices):
    r = two_devices
    assert r["devices"] == 2 and r["devices_used"] == 2
    # the sharded program really splits the batch: partial sums are combined across devices
    assert r["all_reduce"]
    # float32 sums in another order: relative loss error ~1e-7, parameters after 5 Adam steps
    # (learning rate 5e-3) within 1e-5
    assert r["loss"] < 1e-5
    assert r["params"] < 1e-5


def test_sharded_fit_selects_the_same_restart(two_devices):
    assert two_devices["selected"][0] == two_devices["selected"][1]
    assert two_devices["fit"] < 1e-4


def test_one_device_means_no_mesh():
    assert batch_mesh(1) is None
    check_batch_size(37, None)


def test_bad_device_count_names_the_range():
    with pytest.raises(InputError, match="devices must be between 1 and"):
        batch_mesh(10_000)


def test_a_batch_that_does_not_split_names_the_fix():
    import types

    import numpy as np

    mesh = types.SimpleNamespace(devices=np.empty(4, object))
    with pytest.raises(InputError, match=r"--batch-size 508 \(a multiple of 4\)"):
        check_batch_size(510, mesh)
    check_batch_size(512, mesh)
