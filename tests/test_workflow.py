"""The workflow against runs written by the previous release (0.1, the ``src/`` layout):
they load, evaluate to the numbers they recorded, and an old checkpoint resumes.

The fixtures in ``fixtures/release_0_1`` were written by ``ppl-ident`` at commit a5b4443::

    ppl-ident simulate --out iid.npz --latent-dim 2 --domains 5 --points-per-domain 20 \\
        --mixing-layers 1
    ppl-ident fit iid.npz --out ivae --steps 20 --width 8 --depth 1 --posterior-draws 0
    ppl-ident simulate --generator dynamics --out seq.npz --sequences 4 --length 6 \\
        --latent-dim 2 --data-dim 2 --domains 2
    ppl-ident fit seq.npz --out tivae --model tivae --steps 20 --width 8 --depth 1 \\
        --posterior-draws 0
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ppl_ident.data import load_dataset
from ppl_ident.workflow import evaluate, load_run, resume_run

FIXTURES = Path(__file__).parent / "fixtures" / "release_0_1"


@pytest.mark.parametrize(["run", "data"], [("ivae", "iid.npz"), ("tivae", "seq.npz")])
def test_a_run_of_the_previous_release_loads_and_evaluates_the_same(run, data):
    fitted = load_run(FIXTURES / run)
    recorded = json.loads((FIXTURES / run / "metrics.json").read_text())
    assert fitted.spec.config["name"] == run and len(fitted.losses) == 20
    dataset, truth = load_dataset(FIXTURES / data)
    metrics = evaluate(fitted, dataset)
    np.testing.assert_allclose(metrics["mcc"], recorded["mcc"], rtol=1e-5)
    np.testing.assert_allclose(metrics["r2_per_dim"], recorded["r2_per_dim"], rtol=1e-4,
                               atol=1e-6)


def test_a_checkpoint_of_the_previous_release_resumes(tmp_path):
    run = tmp_path / "ivae"
    shutil.copytree(FIXTURES / "ivae", run)
    more = resume_run(run, 30, data_path=str(FIXTURES / "iid.npz"))
    assert more.metrics["resumed_from_step"] == 20 and len(more.losses) == 30
    np.testing.assert_array_equal(more.losses[:20], load_run(FIXTURES / "ivae").losses)
