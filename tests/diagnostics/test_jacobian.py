"""Jacobian-structure scores: known answers for scaled permutations, dense maps, routes."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from ppl_ident.data import simulate_domains
from ppl_ident.diagnostics.jacobian import (
    amari_distance,
    dominant_permutations,
    jacobian_decoder_route,
    jacobian_encoder_route,
    jacobian_scores,
    report_to_dict,
    true_by_learned,
)
from ppl_ident.errors import InputError


def _perm_scale(rng, n):
    perm = rng.permutation(n)
    scale = rng.uniform(0.2, 5.0, n) * rng.choice([-1.0, 1.0], n)
    return np.eye(n)[perm] * scale[:, None]


@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_amari_zero_for_identity_and_scaled_permutations(rng, n):
    assert float(amari_distance(np.eye(n))) == 0.0
    mats = np.stack([_perm_scale(rng, n) for _ in range(20)])
    np.testing.assert_allclose(amari_distance(mats), 0.0, atol=1e-7)


def test_amari_one_for_uniform_and_far_for_dense(rng):
    assert float(amari_distance(jnp.ones((4, 4)))) == pytest.approx(1.0)
    dense = rng.standard_normal((500, 5, 5))
    # A random dense Gaussian matrix has median distance ~0.41 for n = 5 (documented in
    # JacobianReport); 0.3 leaves room for sampling noise of 500 draws while staying far from 0.
    assert float(np.median(amari_distance(dense))) > 0.3


def test_amari_invariances(rng):
    a = rng.standard_normal((5, 5))
    perm = np.eye(5)[rng.permutation(5)]
    signs = np.diag(rng.choice([-1.0, 1.0], 5))
    base = float(amari_distance(a))
    for other in (perm @ a, a @ perm, a.T, signs @ a, 7.0 * a):
        assert float(amari_distance(other)) == pytest.approx(base, rel=1e-5)


def test_dominant_permutations_match_scipy(rng):
    w = np.abs(rng.standard_normal((200, 4, 4)))
    w[:100] += 3 * np.eye(4)[rng.permutation(4)]  # half take the vectorised argmax path
    perms = dominant_permutations(w)
    for p in range(len(w)):
        rows, cols = linear_sum_assignment(-w[p])
        assert w[p][rows, cols].sum() == pytest.approx(w[p][np.arange(4), perms[p]].sum())
        assert sorted(perms[p]) == list(range(4))


def test_scores_of_scaled_permutation_field(rng):
    n = 4
    perm = rng.permutation(n)
    # Different scales at every point, same permutation: still perfectly identified.
    jac = np.stack([np.eye(n)[perm] * rng.uniform(0.5, 2, n)[:, None] for _ in range(30)])
    r = jacobian_scores(jac)
    assert r.amari == 0.0 and r.agreement == 1.0 and r.off_mass == 0.0
    assert r.verdict == "identified"
    assert r.matching.tolist() == np.argmax(np.eye(n)[perm], axis=1).tolist()
    np.testing.assert_allclose(r.aligned, np.eye(n), atol=1e-12)


def test_scores_of_dense_field_are_entangled(rng):
    r = jacobian_scores(rng.standard_normal((300, 5, 5)))
    assert r.amari > 0.3 and r.off_mass > 0.5 and r.agreement < 0.2
    assert r.verdict == "entangled"


def test_agreement_catches_a_permutation_that_changes_across_points():
    # Every point is a scaled permutation (Amari 0), but the permutation flips halfway: each
    # learned latent is one true latent on half the data and the other on the rest, so the map
    # is entangled; the agreement score and the mean Jacobian (half of each: 50 % off the
    # matching, above a random rotation's median of about 16 % for n = 2) both see it.
    jac = np.concatenate([np.broadcast_to(np.eye(2), (10, 2, 2)),
                          np.broadcast_to(np.eye(2)[::-1], (10, 2, 2))])
    r = jacobian_scores(jac)
    assert r.amari == 0.0 and r.agreement == 0.5 and r.mean_off_mass == pytest.approx(0.5)
    assert r.verdict == "entangled"


def test_rotation_null_and_a_monotone_map_with_pointwise_wiggles(rng):
    from ppl_ident.diagnostics.jacobian import rotation_off_mass

    q05, median = rotation_off_mass(5)
    assert 0.25 < q05 < 0.35 and 0.42 < median < 0.52  # 400 Haar draws, fixed seed
    # a component-wise monotone map whose local Jacobians carry large symmetric off-diagonal
    # noise (pointwise off-matching mass ~40 %, like a flow's wiggles): identified on average
    perm = np.eye(5)[rng.permutation(5)]
    jac = perm[None] * rng.uniform(0.5, 2.0, (400, 5, 1)) + 0.35 * rng.standard_normal(
        (400, 5, 5))
    r = jacobian_scores(jac)
    assert r.off_mass > 0.2 and r.mean_off_mass < 0.05 and r.verdict == "identified"
    # a fixed random rotation (every point agrees on one permutation): by construction of the
    # null, about 5 % are called identified and half entangled (40 draws: binomial spread)
    verdicts = []
    for _ in range(40):
        q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
        verdicts.append(jacobian_scores(np.broadcast_to(q, (20, 5, 5))).verdict)
    assert verdicts.count("identified") <= 6 and 12 <= verdicts.count("entangled") <= 28


def test_encoder_route_matches_the_analytic_linear_jacobian(rng):
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    z = rng.standard_normal((7, 3))
    jac = jacobian_encoder_route(lambda x, u: x @ b, lambda zi: zi @ a, z)
    np.testing.assert_allclose(jac, np.broadcast_to((a @ b).T, (7, 3, 3)), rtol=1e-5, atol=1e-5)
    # The encoder sees u per point: a per-domain shift leaves the Jacobian unchanged.
    shift = jnp.asarray(rng.standard_normal((4, 3)))
    jac_u = jacobian_encoder_route(lambda x, u: x @ b + shift[u], lambda zi: zi @ a, z,
                                   np.arange(7) % 4)
    np.testing.assert_allclose(jac_u, jac, rtol=1e-5, atol=1e-6)


def test_decoder_route_matches_the_analytic_linear_jacobian(rng):
    a, c = rng.standard_normal((3, 3)) + 3 * np.eye(3), rng.standard_normal((3, 3))
    a_inv = np.linalg.inv(a)
    jac = jacobian_decoder_route(lambda x: x @ a_inv, lambda zh: zh @ c, rng.standard_normal((5, 3)))
    np.testing.assert_allclose(jac, np.broadcast_to((c @ a_inv).T, (5, 3, 3)), rtol=1e-4,
                               atol=1e-5)


def test_routes_through_the_simulator_mixing_give_amari_zero(rng):
    data, truth = simulate_domains(1, n_latent=3, data_dim=4, n_domains=2, n_per_domain=50,
                                   n_layers=3)
    p = _perm_scale(rng, 3)
    z = jnp.asarray(data.z[:64])
    # Perfect encoder: z_hat = g^{-1}(x) P; perfect decoder: g(z_hat P^{-1}).
    enc = jacobian_encoder_route(lambda x, u: truth.g_inv(x) @ p, truth.g, z, data.u[:64])
    dec = jacobian_decoder_route(truth.g_inv, lambda zh: truth.g(zh @ np.linalg.inv(p)), z @ p)
    for route, jac in (("encoder", enc), ("decoder", dec)):
        r = jacobian_scores(true_by_learned(jac, route))
        # float32 through three layers of condition number <= 25 and their inverses: the
        # round-off in off-diagonal entries is ~1e-5 of the diagonal, far below 1e-3.
        assert r.amari < 1e-3, route
        assert r.agreement == 1.0 and r.verdict == "identified"
    # Both routes find the same matching (the inverse of a permutation is its transpose).
    r_enc = jacobian_scores(true_by_learned(enc, "encoder"))
    r_dec = jacobian_scores(true_by_learned(dec, "decoder"))
    assert r_enc.matching.tolist() == r_dec.matching.tolist()


def test_dense_linear_mixing_is_far_from_identified(rng):
    a = rng.standard_normal((5, 5))
    jac = jacobian_encoder_route(lambda x, u: x, lambda zi: zi @ a, rng.standard_normal((20, 5)))
    assert jacobian_scores(true_by_learned(jac, "encoder")).amari > 0.2


def test_bad_input_raises_input_error():
    with pytest.raises(InputError, match="square"):
        jacobian_scores(np.ones((3, 2, 4)))
    with pytest.raises(InputError, match="NaN"):
        jacobian_scores(np.full((3, 2, 2), np.nan))
    with pytest.raises(InputError, match="route"):
        true_by_learned(np.eye(2)[None], "sideways")


def test_report_dict_is_json(rng):
    d = report_to_dict(jacobian_scores(rng.standard_normal((10, 3, 3))))
    assert json.loads(json.dumps(d))["verdict"] in ("identified", "partial", "entangled")


def test_standardised_scores_do_not_depend_on_latent_scales(rng):
    from ppl_ident.diagnostics.jacobian import standardise

    jac = np.eye(3)[None] + 0.3 * rng.standard_normal((50, 3, 3))
    true_sd, learned_sd = rng.uniform(0.5, 3, 3), rng.uniform(0.5, 3, 3)
    c_true, c_learned = rng.uniform(0.1, 10, 3), rng.uniform(0.1, 10, 3)
    # Rescale true latents by c_true and learned ones by c_learned: d z / d z_hat picks up
    # c_true[i] / c_learned[j], the standard deviations pick up the same factors.
    rescaled = jac * c_true[None, :, None] / c_learned[None, None, :]
    a = jacobian_scores(standardise(jac, true_sd, learned_sd))
    b = jacobian_scores(standardise(rescaled, true_sd * c_true, learned_sd * c_learned))
    assert a.amari == pytest.approx(b.amari, rel=1e-9)
    assert a.agreement == b.agreement and a.off_mass == pytest.approx(b.off_mass, rel=1e-9)
    with pytest.raises(InputError, match="positive"):
        standardise(jac, np.zeros(3), learned_sd)


# -- the regression route: the Jacobian from (z, z_hat) pairs alone ---------------------------

def test_regression_route_recovers_an_affine_map_exactly(rng):
    from ppl_ident.diagnostics import jacobian_regression_route

    z = rng.normal(size=(3000, 3))
    a = rng.normal(size=(3, 3))
    jac = jacobian_regression_route(z, z @ a.T + 1.0, np.arange(20))
    np.testing.assert_allclose(jac, np.broadcast_to(a, (20, 3, 3)), atol=1e-9)


def test_regression_route_of_a_permuted_monotone_map_is_a_permutation(rng):
    """z_hat = (tanh(z_2), z_0^3 + z_0, exp(z_1)): the Jacobian is diagonal in the permuted
    order with the derivatives 1 - tanh^2, 3 z^2 + 1, exp; estimated within 10 % where the
    neighbourhood is small (interior points), and scored as a scaled permutation."""
    from ppl_ident.diagnostics import jacobian_regression_route, jacobian_scores, true_by_learned

    z = rng.normal(size=(40000, 3))
    z_hat = np.column_stack([np.tanh(z[:, 2]), z[:, 0] ** 3 + z[:, 0], np.exp(z[:, 1])])
    points = np.flatnonzero(np.all(np.abs(z) < 1.0, axis=1))[:100]
    jac = jacobian_regression_route(z, z_hat, points)
    zp = z[points]
    exact = np.zeros_like(jac)
    exact[:, 0, 2] = 1 - np.tanh(zp[:, 2]) ** 2
    exact[:, 1, 0] = 3 * zp[:, 0] ** 2 + 1
    exact[:, 2, 1] = np.exp(zp[:, 1])
    scale = np.abs(exact).max(axis=(1, 2), keepdims=True)
    # neighbourhood radius ~ 0.3 sd here: curvature error a few % of the largest entry
    assert np.max(np.abs(jac - exact) / scale) < 0.1
    report = jacobian_scores(np.asarray(true_by_learned(jac, "regression")))
    assert report.matching.tolist() == [1, 2, 0] and report.verdict == "identified"


def test_regression_route_of_a_rotation_is_entangled(rng):
    from ppl_ident.diagnostics import jacobian_regression_route, jacobian_scores, true_by_learned

    z = rng.normal(size=(5000, 2))
    c = s = np.sqrt(0.5)
    jac = jacobian_regression_route(z, z @ np.array([[c, -s], [s, c]]), np.arange(30))
    assert jacobian_scores(np.asarray(true_by_learned(jac, "regression"))).verdict == "entangled"
