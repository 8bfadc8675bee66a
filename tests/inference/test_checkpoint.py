"""Checkpoints: chunk ends at absolute steps, atomic no-pickle files, bit-identical resume."""

import json

import jax
import numpy as np
import pytest

from ppl_ident.errors import InputError
from ppl_ident.inference import OptimConfig, svi_engine
from ppl_ident.inference.checkpoint import (
    CHECKPOINT_NPZ, load_checkpoint, save_checkpoint, state_template)
from ppl_ident.inference.fit import chunk_schedule, fit
from ppl_ident.families import build_model
from ppl_ident.workflow import FitSettings, fit_model, load_run, resume_run, save_run


@pytest.mark.parametrize("start,stop,chunk,every,expected", [
    (0, 1000, 500, None, [500, 500]),
    (0, 1100, 500, None, [500, 500, 100]),
    (0, 1000, 500, 300, [300, 300, 300, 100]),
    (0, 1400, 500, 700, [350, 350, 350, 350]),
    (300, 1000, 500, 700, [50, 350, 300]),
    (350, 1000, 500, 700, [350, 300]),
    (0, 7, 500, 3, [3, 3, 1]),
    (6, 7, 500, 3, [1]),
])
def test_chunk_schedule_table(start, stop, chunk, every, expected):
    assert chunk_schedule(start, stop, chunk, every) == expected


@pytest.mark.parametrize("every", [None, 7, 40, 130])
def test_chunk_schedule_resumes_on_the_same_boundaries(every):
    full = np.cumsum(chunk_schedule(0, 400, 50, every))
    assert full[-1] == 400 and max(np.diff(np.r_[0, full])) <= 50
    for i, end in enumerate(full[:-1]):
        # resuming from any chunk end runs exactly the remaining chunks of the full run
        assert list(end + np.cumsum(chunk_schedule(int(end), 400, 50, every))) == list(full[i + 1:])


def _engine(small_data, steps):
    data, _ = small_data
    spec = build_model("ivae", jax.random.PRNGKey(1), n_latent=2, data_dim=2, n_domains=5, width=8)
    return svi_engine(spec, batch_size=32, optim=OptimConfig(num_steps=steps, warmup_steps=10))


def test_resume_from_checkpoint_is_bit_identical(small_data, tmp_path):
    data, _ = small_data
    engine = _engine(small_data, 120)
    key = jax.random.PRNGKey(0)

    def checkpoint_at_40(step, states, losses, finite):
        if step == 40:
            save_checkpoint(tmp_path, step, states, losses, finite, {"note": "t"})

    full = fit(engine, key, data.x, data.u, 120, restarts=2, progress=False, checkpoint_every=40,
               on_chunk=checkpoint_at_40)
    # the checkpoint is plain arrays: loadable without pickle
    with np.load(tmp_path / CHECKPOINT_NPZ, allow_pickle=False) as npz:
        assert "['step']" in npz.files and int(npz["['step']"]) == 40
    template = state_template(engine, jax.random.split(key, 2), data.x, data.u)
    ckpt = load_checkpoint(tmp_path, template)
    assert ckpt.step == 40 and ckpt.meta["note"] == "t" and ckpt.losses.shape == (2, 40)
    resumed = fit(engine, key, data.x, data.u, 120, restarts=2, progress=False,
                  checkpoint_every=40, state=ckpt.states, start_step=ckpt.step,
                  history=(ckpt.losses, ckpt.finite))
    for a, b in zip(jax.tree_util.tree_leaves(full.states), jax.tree_util.tree_leaves(resumed.states)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # bit-identical, not close
    np.testing.assert_array_equal(full.all_losses, resumed.all_losses)
    assert resumed.selected == full.selected and resumed.final_loss == full.final_loss


def test_damaged_or_missing_checkpoint_is_an_input_error(small_data, tmp_path):
    data, _ = small_data
    engine = _engine(small_data, 10)
    template = state_template(engine, jax.random.split(jax.random.PRNGKey(0), 1), data.x, data.u)
    with pytest.raises(InputError, match="no checkpoint"):
        load_checkpoint(tmp_path, template)
    (tmp_path / CHECKPOINT_NPZ).write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(InputError, match="damaged"):
        load_checkpoint(tmp_path, template)


def test_fit_model_checkpoints_and_resume_run(small_data, tmp_path):
    data, _ = small_data
    path = tmp_path / "d.npz"
    np.savez(path, x=data.x, u=data.u, z=data.z)
    run = tmp_path / "run"
    s = FitSettings(steps=60, width=8, batch_size=32, warmup_steps=10)
    fitted = fit_model(data, s, checkpoint_dir=run, checkpoint_every=30, data_path=str(path))
    save_run(run, fitted, force=True, data_path=str(path))
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["step"] == 60 and meta["stop_reason"] == "completed"
    assert meta["resume"] == f"ppl-ident fit --resume {run}"
    with pytest.raises(InputError, match="already at step 60"):
        resume_run(run, 60)
    more = resume_run(run, 90)
    assert more.metrics["num_steps"] == 90 and more.metrics["resumed_from_step"] == 60
    np.testing.assert_array_equal(more.losses[:60], fitted.losses)
    save_run(run, more, force=True, data_path=str(path))
    assert len(load_run(run).losses) == 90
    # the data must be the file the run was fitted to
    np.savez(path, x=data.x[::-1], u=data.u[::-1], z=data.z[::-1])
    with pytest.raises(InputError, match="changed since the run started"):
        resume_run(run, 120)
    with pytest.raises(InputError, match="not a resumable run directory"):
        resume_run(tmp_path, 120)
