"""Collapsed-latent scores against known answers."""

import numpy as np
import pytest

from ppl_ident.diagnostics import COLLAPSE_RATIO, collapse_message, latent_activity
from ppl_ident.diagnostics.collapse import activity_to_dict


def test_posterior_at_its_prior_is_collapsed_and_a_pinned_latent_is_not():
    rng = np.random.default_rng(0)
    prior = rng.uniform(0.5, 3.0, size=(200, 3))       # per-observation prior sds (domains)
    post = np.stack([0.05 * prior[:, 0], prior[:, 1], 0.5 * prior[:, 2]], axis=1)
    act = latent_activity(post, prior)
    np.testing.assert_allclose(act.sd_ratio, [0.05, 1.0, 0.5], rtol=1e-12)
    assert act.collapsed == (1,)
    msg = collapse_message(act)
    assert "z1" in msg and "z0" not in msg and "z2" not in msg


def test_no_collapse_gives_no_message_and_json_round_trip():
    act = latent_activity(np.full((4, 2), 0.1), np.ones(2))
    assert act.collapsed == () and collapse_message(act) is None
    d = activity_to_dict(act)
    assert d == {"sd_ratio": [0.1, 0.1], "collapsed": [], "threshold": COLLAPSE_RATIO,
                 "message": None}


def test_threshold_is_inclusive_and_shapes_are_checked():
    assert latent_activity(np.full((3, 1), 0.8), np.ones(1)).collapsed == (0,)
    with pytest.raises(ValueError, match="must be"):
        latent_activity(np.ones(3), np.ones(3))
