"""The family contract, table-driven (Dynamax ``models/test_models.py`` style).

For every registered model of every family: simulate tiny data of the family's kind, fit a few
steps with checkpoints, save and load the run, resume from a checkpoint bit-identically,
evaluate, check, convert to InferenceData with the family's dims. A new family or model
enters :data:`CONFIGS` with one line, and the registry test below fails until it does.

One case per model and kind of fit (exact flow, variational with a full-covariance guide, the
spline transition): the diagonal guide and the encoder's context window change the guide's
network only; they are fitted by the engine table (``tests/harness/test_harness.py``), built in
``test_temporal_models.py`` and fitted through the CLI in ``tests/cli/test_encode_cli.py``.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ppl_ident.arviz_compat import has_group
from ppl_ident.data import save_dataset, simulate_domains
from ppl_ident.data.sequences import simulate_dynamics, simulate_regimes
from ppl_ident.families import FAMILIES, MODELS, family_of
from ppl_ident.families.predict import encode
from ppl_ident.reporting.inference_data import posterior_inference_data
from ppl_ident.workflow import (FitSettings, check_run, evaluate, fit_model, load_run,
                                model_inputs, resume_run, save_run)

STEPS, EVERY = 24, 12


def _iid(seed):
    return simulate_domains(seed, n_latent=2, data_dim=2, n_domains=5, n_per_domain=24,
                            n_layers=1)


def _dynamics(seed):
    return simulate_dynamics(seed, n_sequences=6, length=8, n_latent=2, data_dim=2)


def _regimes(seed):
    return simulate_regimes(seed, n_sequences=6, length=8, n_latent=2, data_dim=2)


#: (model, guide, data maker, extra settings); guide "flow" is the exact-likelihood variant
#: (its guide is the point mass z = h(x), whatever the guide setting says)
CONFIGS = [
    ("ivae", "encoder_fullcov", _iid, {"flow": False}),
    ("ivae", "flow", _iid, {"flow_layers": 2}),  # the default for n = d: the exact flow
    ("vae", "encoder_fullcov", _iid, {"flow": False}),
    ("tivae", "encoder_fullcov", _dynamics, {"flow": False}),
    ("regime", "encoder_fullcov", _regimes, {"n_regimes": 2, "flow": False}),
    # the default for d == n: the exact flow, spline transition, conditional first steps
    ("stationary", "flow", _dynamics, {"flow_layers": 2}),
    # the nonparametric (spline) transition prior, variational and exact
    ("tivae", "encoder_fullcov", _dynamics, {"transition": "flow", "flow": False}),
    ("regime", "flow", _regimes, {"n_regimes": 2, "transition": "flow", "flow": True,
                                   "flow_layers": 2}),
]


class _CtrlC:
    """``stop_on_sigint`` as if Ctrl-C had been pressed before the first chunk ended."""

    def __enter__(self):
        return True

    def __exit__(self, *exc):
        return False


def test_every_registered_model_is_in_the_table():
    assert {m for m, *_ in CONFIGS} == set(MODELS)
    assert {family_of(m).name for m, *_ in CONFIGS} == set(FAMILIES)


@pytest.mark.parametrize(["model", "guide", "make", "extra"], CONFIGS,
                         ids=[f"{m}-{g}" + (f"-{e['transition']}-transition"
                                             if "transition" in e else "")
                              for m, g, _, e in CONFIGS])
def test_sample_fit_save_resume_evaluate_check(model, guide, make, extra, tmp_path,
                                              monkeypatch):
    data, truth = make(0)
    family = family_of(model)
    assert np.ndim(data.x) == family.data_rank
    path = tmp_path / "d.npz"
    save_dataset(path, data, truth)
    s = FitSettings(model=model, guide="encoder_fullcov" if guide == "flow" else guide,
                    steps=STEPS, width=8, depth=1, batch_size=32,
                    warmup_steps=2, **extra)

    # an uninterrupted fit with checkpoints, saved and loaded back
    ref_dir = tmp_path / "ref"
    # (no truth during the fits: its Jacobian checks run once, below)
    ref = fit_model(data, s, checkpoint_dir=ref_dir, checkpoint_every=EVERY, data_path=str(path))
    assert ref.metrics["stop_reason"] == "completed" and len(ref.losses) == STEPS
    assert np.all(np.isfinite(ref.losses))
    save_run(ref_dir, ref, force=True, data_path=str(path), posterior_draws=3, posterior_obs=10)
    from ppl_ident.arviz_compat import group, read_netcdf

    idata = read_netcdf(ref_dir / "posterior.nc")  # save_run writes it too
    # guide draws, or for a point-mass (flow) posterior the point estimate
    z = group(idata, "posterior" if has_group(idata, "posterior") else "point_estimate")["z"]
    assert z.dims[-len(family_of(model).obs_dims) - 1:] == (*family_of(model).obs_dims, "latent")
    loaded = load_run(ref_dir)
    assert loaded.spec.config == ref.spec.config and loaded.settings == ref.settings
    np.testing.assert_array_equal(loaded.losses, ref.losses)

    # the same fit stopped by Ctrl-C at its first checkpoint, then resumed: bit-identical
    with monkeypatch.context() as m:
        m.setattr("ppl_ident.workflow.fitting.stop_on_sigint", _CtrlC)
        stopped = fit_model(data, s, checkpoint_dir=tmp_path / "run", checkpoint_every=EVERY,
                            data_path=str(path))
    assert stopped.metrics["stop_reason"] == "interrupted" and len(stopped.losses) == EVERY
    resumed = resume_run(tmp_path / "run")
    assert resumed.metrics["resumed_from_step"] == EVERY
    assert resumed.metrics["stop_reason"] == "completed"
    np.testing.assert_array_equal(resumed.losses, ref.losses)
    for name, value in ref.params.items():
        for a, b in zip(jax.tree.leaves(value), jax.tree.leaves(resumed.params[name])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # evaluation, checks and InferenceData through the family
    metrics = evaluate(loaded, data)
    assert 0 <= metrics["mcc"] <= 1 and len(metrics["r2_per_dim"]) == 2
    if family.name == "iid":  # collapsed latents are named (sequence models: not yet scored)
        act = metrics["latent_activity"]
        assert act["applicable"] == (guide != "flow")
        if act["applicable"]:
            assert len(act["sd_ratio"]) == 2 and all(r > 0 for r in act["sd_ratio"])
    result = check_run(loaded, data, truth, n_points=16)
    assert result["kind"] == "run" and "variability" in result
    idata = posterior_inference_data(loaded, data, num_draws=8, max_obs=10, seed=0,
                                     truth=truth)
    if guide == "flow":   # z = h(x), a point estimate: no draws, no chains
        assert not has_group(idata, "posterior")
        assert idata.point_estimate["z"].dims == (*family.obs_dims, "latent")
        # the exact flow has no decoder; encode's sd is zero, the same after the round trip
        assert "flow$params" in loaded.params and "decoder$params" not in loaded.params
        u = model_inputs(loaded, data.u)
        mean, std = encode(loaded.spec, loaded.params, data.x, u)
        assert np.all(np.asarray(std) == 0)
        np.testing.assert_allclose(mean, encode(ref.spec, ref.params, data.x, u)[0],
                                   atol=1e-6)
    else:                 # the guide's i.i.d. draws as chains (8 draws: 2 chains of 4)
        assert idata.posterior["z"].dims == ("chain", "draw", *family.obs_dims, "latent")
        assert idata.posterior["z"].shape[:2] == (2, 4)
