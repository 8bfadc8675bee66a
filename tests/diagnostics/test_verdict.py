"""The verdict's tests against permuted-label fits, on arrays with known answers."""

import numpy as np
import pytest

from ppl_ident.diagnostics.verdict import (VERDICTS, agreement_test, identifiability_verdict,
                                           per_latent_agreement, prior_variation,
                                           variation_test)
from ppl_ident.errors import InputError


def _noise_tables(rng, n_tables, u=40, n=3, cv=0.022):
    """Prior tables of fits whose domains are all the same: log-scales vary by sampling
    noise alone (0.022 = 1/sqrt(2 x 1000), the log-scale error with 1000 rows per domain)."""
    return [prior_variation(rng.normal(0, cv, (u, n)), np.exp(rng.normal(0, cv, (u, n))))
            for _ in range(n_tables)]


def test_per_latent_agreement_forgives_permutation_sign_and_monotone_maps():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2000, 3))
    same = np.stack([z, -np.exp(z[:, [2, 0, 1]]), z ** 3])
    np.testing.assert_allclose(per_latent_agreement(same), 1.0, atol=1e-12)
    # two unrelated fits: each latent's best match is chance (|rho| ~ 1/sqrt(N))
    other = np.stack([z, rng.normal(size=z.shape)])
    assert per_latent_agreement(other).max() < 0.1
    # one latent shared, two rotated by 45 degrees: the shared one agrees, the others at 0.707
    c = np.sqrt(0.5)
    rotated = np.c_[z[:, 0], c * (z[:, 1] + z[:, 2]), c * (z[:, 1] - z[:, 2])]
    a = per_latent_agreement(np.stack([z, rotated]), method="pearson")
    np.testing.assert_allclose(a[0], [1.0, c, c], atol=0.03)
    with pytest.raises(InputError, match="at least 2 fits"):
        per_latent_agreement(z[None])


def test_prior_variation_is_blind_to_rescaling_each_latent():
    rng = np.random.default_rng(1)
    loc, sd = rng.normal(size=(6, 2)), np.exp(rng.normal(size=(6, 2)))
    scaled = prior_variation(loc * [3.0, 0.1], sd * [3.0, 0.1])
    np.testing.assert_allclose(scaled, prior_variation(loc, sd), atol=1e-12)
    np.testing.assert_allclose(scaled.mean(0), 0.0, atol=1e-12)
    with pytest.raises(InputError, match="positive"):
        prior_variation(loc, -sd)


def test_variation_test_against_the_sampling_noise_of_permuted_labels():
    rng = np.random.default_rng(2)
    null = _noise_tables(rng, 6)
    # the default simulation's scales: uniform on (0.5, 3) per domain and latent
    sd = rng.uniform(0.5, 3.0, (40, 3))
    t = variation_test(prior_variation(np.zeros((40, 3)), sd), null)
    assert t.varies.all() and t.rank == 3 and t.passed
    # identical domains: a fit's table is one more noise table
    t = variation_test(_noise_tables(rng, 1)[0], null)
    assert not t.passed and t.rank < 3
    # every latent varies, but two of them in lockstep: rank 2 of 3
    common = rng.uniform(0.5, 3.0, 40)
    sd = np.c_[common, common ** 2, rng.uniform(0.5, 3.0, 40)]
    t = variation_test(prior_variation(np.zeros((40, 3)), sd), null)
    assert t.varies.all() and t.rank == 2 and not t.passed
    # 3 domains for 3 latents: their differences span U - 1 = 2 directions at most
    t = variation_test(prior_variation(np.zeros((3, 3)), rng.uniform(0.5, 3.0, (3, 3))),
                       _noise_tables(rng, 6, u=3))
    assert t.rank <= 2 and not t.passed


def test_agreement_test_threshold_is_the_nulls_largest_value():
    null = [np.array([[0.6, 0.85], [0.7, 0.8]]), np.array([[0.5, 0.9]])]
    t = agreement_test([0.95, 0.9], null)
    assert t.threshold == 0.9 and t.agrees.tolist() == [True, False] and not t.passed
    with pytest.raises(InputError):
        agreement_test([0.9], [])


def _tests(agrees=True):
    rng = np.random.default_rng(3)
    sd = rng.uniform(0.5, 3.0, (40, 2))
    variation = variation_test(prior_variation(np.zeros((40, 2)), sd),
                               _noise_tables(rng, 4, n=2))
    agreement = agreement_test([0.97, 0.96 if agrees else 0.7], [np.array([[0.75, 0.8]])])
    return variation, agreement


def test_identifiability_verdict_words():
    variation, agreement = _tests()
    v = identifiability_verdict(variation=variation, agreement=agreement, n_seeds=3)
    assert v.word == "supported" and "2 independent directions" in v.reason
    assert identifiability_verdict(prior_depends_on_u=False).word == "contradicted"
    # a prior that changes no more than with permuted labels: the labels are no use
    rng = np.random.default_rng(4)
    flat = variation_test(_noise_tables(rng, 1, n=2, cv=0.005)[0], _noise_tables(rng, 4, n=2))
    assert not flat.varies.any()
    v = identifiability_verdict(variation=flat, agreement=agreement)
    assert v.word == "contradicted" and "permuted" in v.reason
    # one seed: not shown, and the next step says how to show it
    v = identifiability_verdict(variation=variation, agreement=None)
    assert v.word == "not shown" and "--seeds 3" in v.next
    # a latent the seeds do not find again
    _, weak = _tests(agrees=False)
    v = identifiability_verdict(variation=variation, agreement=weak, n_seeds=3)
    assert v.word == "not shown" and "z1" in v.reason and "z0" not in v.reason
    # a collapsed latent or drowned latents are never supported
    for kw in ({"collapsed": "collapsed latent: z1"}, {"noise_doubt": "z0 is in doubt"}):
        v = identifiability_verdict(variation=variation, agreement=agreement, **kw)
        assert v.word == "not shown"
    assert set(VERDICTS) == {"supported", "not shown", "contradicted"}
