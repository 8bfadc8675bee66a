"""Sequence simulators: shapes, determinism, ground truth, the .npz round trip."""

import numpy as np
import pytest

from ppl_ident.data import load_dataset, save_dataset
from ppl_ident.data.sequences import (
    GENERATORS,
    SequenceTruth,
    simulate_dynamics,
    simulate_regimes,
    simulate_segments,
    simulate_sequences,
    transition_mean,
    transition_scale_factor,
)
from ppl_ident.errors import IdentifiabilityWarning, InputError

SMALL = dict(n_latent=2, data_dim=3, n_sequences=4, length=30, n_segments=3, segment_length=10)


@pytest.mark.parametrize("generator", GENERATORS)
def test_shapes_and_determinism(generator):
    data, truth = simulate_sequences(generator, 3, **SMALL)
    again, _ = simulate_sequences(generator, 3, **SMALL)
    other, _ = simulate_sequences(generator, 4, **SMALL)
    B, T = 4, 30
    assert data.x.shape == (B, T, 3) and data.z.shape == (B, T, 2)
    assert data.x.dtype == np.float32 and np.all(np.isfinite(data.x))
    np.testing.assert_array_equal(data.x, again.x)
    assert not np.allclose(data.x, other.x)
    assert isinstance(truth, SequenceTruth) and truth.kind == generator
    # x is the mixing of z, step by step (no observation noise by default).
    np.testing.assert_allclose(np.asarray(truth.g(data.z)), data.x, atol=1e-5)
    if generator == "regimes":
        assert data.u is None and truth.regimes.shape == (B, T)
    else:
        assert data.u.shape == (B, T) and data.u.dtype == np.int32


def test_segments_follow_their_segment_distribution():
    data, truth = simulate_segments(0, n_latent=2, data_dim=2, n_sequences=50, n_segments=3,
                                    segment_length=40)
    assert data.u[0].tolist() == [0] * 40 + [1] * 40 + [2] * 40
    for s in range(3):
        z = data.z[data.u == s]
        # 2000 draws: standard error of the mean is scale/45, of the std about scale/63.
        np.testing.assert_allclose(z.mean(0), truth.loc[s], atol=5 * truth.scale[s].max() / 45)
        np.testing.assert_allclose(z.std(0), truth.scale[s], rtol=0.1)


def test_dynamics_residuals_have_the_domain_noise_scale():
    data, truth = simulate_dynamics(1, n_latent=2, data_dim=2, n_sequences=60, length=60,
                                    n_domains=3, lag=2)
    assert truth.trans_w1.shape == (1, 4, truth.trans_w1.shape[-1])
    past = np.stack([data.z[:, 1:-1], data.z[:, :-2]], axis=2)  # (B, T-2, L=2, n)
    resid = data.z[:, 2:] - np.asarray(transition_mean(truth, past, 0)) - truth.loc[data.u[:, 2:]]
    for k in range(3):
        r = resid[data.u[:, 2:] == k]
        # about 1100 residuals per domain: the std estimate is within 10% with a wide margin.
        np.testing.assert_allclose(r.std(0), truth.scale[k], rtol=0.1)
        np.testing.assert_allclose(r.mean(0), 0.0, atol=0.15 * truth.scale[k].max())
    # log_transition agrees with the Gaussian density of the residuals.
    lp = np.asarray(truth.log_transition(data.z[:, 2:], past, data.u[:, 2:]))
    ref = (-0.5 * (resid / truth.scale[data.u[:, 2:]]) ** 2
           - np.log(truth.scale[data.u[:, 2:]]) - 0.5 * np.log(2 * np.pi)).sum(-1)
    np.testing.assert_allclose(lp, ref, rtol=1e-4, atol=1e-4)


def test_regimes_are_sticky_and_follow_the_matrix():
    data, truth = simulate_regimes(2, n_latent=2, data_dim=2, n_sequences=100, length=100,
                                   n_regimes=3, stay_prob=0.9)
    P = truth.trans_matrix
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.diag(P), 0.9, atol=1e-6)
    r = truth.regimes
    counts = np.zeros((3, 3))
    np.add.at(counts, (r[:, :-1].ravel(), r[:, 1:].ravel()), 1)
    empirical = counts / counts.sum(1, keepdims=True)
    # >= 1000 transitions out of each regime: binomial sd <= 0.016, so 0.05 is > 3 sd.
    np.testing.assert_allclose(empirical, P, atol=0.05)


@pytest.mark.parametrize("generator", GENERATORS)
def test_npz_round_trip_keeps_truth(tmp_path, generator):
    data, truth = simulate_sequences(generator, 0, **SMALL)
    path = save_dataset(tmp_path / "seq.npz", data, truth)
    loaded, t2 = load_dataset(path)
    np.testing.assert_array_equal(loaded.x, data.x)
    np.testing.assert_array_equal(loaded.z, data.z)
    assert (loaded.u is None) == (data.u is None)
    assert isinstance(t2, SequenceTruth) and t2.kind == generator and t2.lag == truth.lag
    for name in ("loc", "scale", "trans_w1", "regimes", "trans_matrix", "init_probs"):
        a, b = getattr(truth, name), getattr(t2, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(np.asarray(t2.g(data.z)), data.x, atol=1e-5)
    with np.load(path) as npz:
        assert "truth_kind" in npz.files and "z" in npz.files


def test_bad_settings_name_the_fix():
    with pytest.raises(InputError, match="length"):
        simulate_dynamics(0, length=2, lag=2)
    with pytest.raises(InputError, match="stay_prob"):
        simulate_regimes(0, stay_prob=1.0)
    with pytest.raises(InputError, match="K >= 2 regimes"):
        simulate_regimes(0, n_regimes=1)
    with pytest.raises(InputError, match="generator"):
        simulate_sequences("nope")
    with pytest.raises(InputError, match="scale_gain"):
        simulate_dynamics(0, scale_gain=-1.0)
    with pytest.warns(IdentifiabilityWarning):
        simulate_segments(0, n_latent=3, data_dim=3, n_segments=2, segment_length=5,
                          n_sequences=1)


@pytest.mark.parametrize("generator", ["dynamics", "regimes"])
def test_heteroscedastic_noise_moves_with_the_past(tmp_path, generator):
    """scale_gain > 0: the residual scale is scale[k] * exp(gain * tanh(h v + c)); the default
    (0) draws no extra random numbers, so its data are unchanged."""
    kw = dict(n_latent=2, data_dim=2, n_sequences=200, length=40, n_domains=2, n_regimes=2)
    data0, truth0 = simulate_sequences(generator, 3, **kw)
    assert truth0.trans_v is None and truth0.scale_gain == 0.0
    data, truth = simulate_sequences(generator, 3, scale_gain=1.0, **kw)
    assert truth.trans_v.shape == (truth.trans_w1.shape[0], 2, 2) and truth.scale_gain == 1.0
    k = data.u if data.u is not None else truth.regimes
    past = data.z[:, :-1, None]
    row = 0 if generator == "dynamics" else k[:, 1:]
    mean = np.asarray(transition_mean(truth, past, row)) + truth.loc[k[:, 1:]]
    sd = truth.scale[k[:, 1:]] * np.asarray(transition_scale_factor(truth, past, row))
    eps = (data.z[:, 1:] - mean) / sd
    # ~7800 standardised residuals: their sd is within 3 % of 1 (the sd of the estimate is
    # ~0.8 %); with the homoscedastic scale instead the sd is off by far more.
    np.testing.assert_allclose(eps.std(), 1.0, atol=0.03)
    np.testing.assert_allclose(eps.mean(), 0.0, atol=0.03)
    assert sd.std() > 0.1 * sd.mean()  # the scale really moves
    lp = np.asarray(truth.log_transition(data.z[:, 1:], past, k[:, 1:]))
    ref = (-0.5 * eps**2 - np.log(sd) - 0.5 * np.log(2 * np.pi)).sum(-1)
    np.testing.assert_allclose(lp, ref, rtol=1e-4, atol=1e-3)
    _, back = load_dataset(save_dataset(tmp_path / "het.npz", data, truth))
    np.testing.assert_allclose(back.trans_v, truth.trans_v)
    assert back.scale_gain == 1.0


# -- the published temporal benchmarks' transition kinds (issue 16) ---------------------------

def _pnl_residuals(truth, data, row):
    """Invert the leaky ReLU and standardise: the noise the simulator drew."""
    k = data.u if data.u is not None else truth.regimes
    past = np.stack([data.z[:, 1:-1], data.z[:, :-2]], axis=2)  # lag 2, most recent first
    z_t = data.z[:, 2:]
    y = np.where(z_t < 0, z_t / truth.pnl_slope, z_t)
    mean = np.asarray(transition_mean(truth, past, row(k[:, 2:]))) + truth.loc[k[:, 2:]]
    return (y - mean) / truth.scale[k[:, 2:]], past, z_t, k[:, 2:]


def test_post_nonlinear_transition_and_its_density():
    """z_t = leaky(f(past) + loc + scale eps): the inverted residuals are N(0, 1), and the
    truth's log-density is the Gaussian one plus log |dy/dz|."""
    data, truth = simulate_dynamics(4, n_latent=3, data_dim=3, n_sequences=400, length=6,
                                    lag=2, transition="post_nonlinear")
    assert truth.pnl_slope == 0.2 and (data.z < 0).mean() > 0.1
    eps, past, z_t, k = _pnl_residuals(truth, data, lambda k: 0)
    np.testing.assert_allclose(eps.std(), 1.0, atol=0.03)
    np.testing.assert_allclose(eps.mean(), 0.0, atol=0.03)
    sd = truth.scale[k]
    ref = (-0.5 * eps**2 - np.log(sd) - 0.5 * np.log(2 * np.pi)
           - np.where(z_t < 0, np.log(0.2), 0.0)).sum(-1)
    np.testing.assert_allclose(np.asarray(truth.log_transition(z_t, past, k)), ref, rtol=1e-4,
                               atol=1e-4)
    # the post-nonlinear density of one latent integrates to 1 (1-D quadrature, n = 1)
    _, t1 = simulate_dynamics(4, n_latent=1, data_dim=1, n_sequences=2, length=4, lag=2,
                              transition="post_nonlinear", noise="changing", n_domains=3)
    grid = np.linspace(-40, 40, 200_001)
    for k1 in range(3):
        lp = np.asarray(t1.log_transition(grid[:, None].astype(np.float32),
                                          np.full((grid.size, 2, 1), 0.3, np.float32), k1))
        np.testing.assert_allclose(np.trapezoid(np.exp(lp.astype(np.float64)), grid), 1.0,
                                   atol=2e-3)


def test_domain_transitions_and_changing_noise():
    """domain_transitions: one MLP per domain (the function changes with u); noise="changing":
    domain k draws unit-variance noise of family k mod 3 (Gaussian, Laplace, logistic), whose
    kurtosis tells them apart."""
    kw = dict(n_latent=2, data_dim=2, n_sequences=3000, length=4, n_domains=3, lag=2,
              transition="post_nonlinear")
    data, truth = simulate_dynamics(5, domain_transitions=True, noise="changing", **kw)
    assert truth.trans_w1.shape[0] == 3 and truth.noise_families.tolist() == [0, 1, 2]
    eps, past, z_t, k = _pnl_residuals(truth, data, lambda k: k)
    kurt = [float(((eps[k == d]) ** 4).mean() / ((eps[k == d]) ** 2).mean() ** 2)
            for d in range(3)]
    # excess kurtosis: Gaussian 0, Laplace 3, logistic 1.2
    assert kurt[0] < 3.5 and kurt[1] > 4.8 and 3.6 < kurt[2] < 4.8, kurt
    for d in range(3):
        np.testing.assert_allclose(eps[k == d].std(), 1.0, atol=0.06)
    # the density matches the family's formula
    from ppl_ident.data.sequences import noise_logpdf
    lp = np.asarray(truth.log_transition(z_t, past, k))
    fam = truth.noise_families[k][..., None]
    ref = (np.asarray(noise_logpdf(eps, fam)) - np.log(truth.scale[k])
           - np.where(z_t < 0, np.log(0.2), 0.0)).sum(-1)
    np.testing.assert_allclose(lp, ref, rtol=1e-4, atol=1e-4)
    # the defaults are unchanged by the new options being available
    d0, t0 = simulate_dynamics(5, n_latent=2, data_dim=2, n_sequences=5, length=4)
    assert t0.pnl_slope is None and t0.noise_families is None


@pytest.mark.parametrize("family", [0, 1, 2])
def test_noise_families_integrate_to_one_with_unit_variance(family):
    from ppl_ident.data.sequences import noise_logpdf
    e = np.linspace(-40, 40, 400_001)
    p = np.exp(np.asarray(noise_logpdf(e, family), np.float64))
    np.testing.assert_allclose(np.trapezoid(p, e), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.trapezoid(e**2 * p, e), 1.0, atol=1e-3)


def test_short_sequences_at_scale_and_round_trip(tmp_path):
    """The published shape (20,000 sequences of 4 steps, n = 8, lag 2) is an ordinary setting;
    the new truth fields survive the .npz round trip; regimes get their own transitions."""
    import time
    from ppl_ident.data import load_dataset, save_dataset
    t0 = time.perf_counter()
    data, truth = simulate_regimes(0, n_latent=8, data_dim=8, n_sequences=20_000, length=4,
                                   lag=2, n_regimes=5, transition="post_nonlinear",
                                   noise="changing")
    assert time.perf_counter() - t0 < 30
    assert data.x.shape == (20_000, 4, 8) and truth.regimes.shape == (20_000, 4)
    assert np.isfinite(data.x).all() and truth.trans_w1.shape[0] == 5
    path = tmp_path / "pnl.npz"
    save_dataset(path, data, truth)
    _, back = load_dataset(path)
    assert back.pnl_slope == 0.2 and back.noise_families.tolist() == [0, 1, 2, 0, 1]
    past = np.stack([data.z[:9, 1:-1], data.z[:9, :-2]], axis=2)
    np.testing.assert_allclose(
        np.asarray(back.log_transition(data.z[:9, 2:], past, truth.regimes[:9, 2:])),
        np.asarray(truth.log_transition(data.z[:9, 2:], past, truth.regimes[:9, 2:])))


def test_new_transition_options_are_refused_where_they_do_not_apply():
    with pytest.raises(InputError, match="post_nonlinear"):
        simulate_dynamics(0, transition="pnl")
    with pytest.raises(InputError, match="no transition"):
        simulate_segments(0, noise="changing")
    with pytest.raises(InputError, match="already has its own transition"):
        simulate_regimes(0, domain_transitions=True)
    with pytest.raises(InputError, match="pnl_slope"):
        simulate_dynamics(0, transition="post_nonlinear", pnl_slope=0.0)


@pytest.mark.parametrize("generator", ["dynamics", "regimes"])
def test_published_style_has_the_published_shape(generator):
    """style="published": the first L steps are standardised standard normals, the transition
    mean is sum_l tanh(z_{t-l} W_l) (no location shift), the inverted post-nonlinear residuals
    have scale 0.1, the mixing is two orthogonal leaky-ReLU layers; for changing dynamics the
    domains' W_1 differ in the entries (1, 2) and (3, 4) only."""
    from ppl_ident.data.mixing import unmix

    L, n = 2, 5
    extra = {"n_domains": 3, "domain_transitions": True} if generator == "dynamics" else {
        "n_regimes": 3}
    data, truth = simulate_sequences(generator, 2, n_latent=n, data_dim=n, n_sequences=3000,
                                     length=5, lag=L, transition="post_nonlinear",
                                     style="published", **extra)
    first = data.z[:, :L].reshape(-1, n)
    np.testing.assert_allclose(data.z[:, :L].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.z[:, :L].std(0), 1.0, atol=1e-5)
    assert abs(np.corrcoef(first.T)[0, 1]) < 0.05
    for w in truth.mixing.weights:
        np.testing.assert_allclose(np.asarray(w) @ np.asarray(w).T, np.eye(n), atol=1e-5)
    np.testing.assert_allclose(np.asarray(unmix(truth.mixing, data.x)), data.z, atol=1e-4)
    assert np.all(truth.loc == 0) and np.all(truth.scale == np.float32(0.1))
    labels = (truth.regimes if generator == "regimes"
              else np.broadcast_to(data.u, data.z.shape[:2]))
    k = labels[:, L:]
    past = np.stack([data.z[:, L - 1:-1], data.z[:, L - 2:-2]], axis=2)
    w1 = truth.trans_w1
    ref = sum(np.tanh(np.einsum("bti,btij->btj", past[:, :, l],
                                w1[k][..., l * n:(l + 1) * n, l * n:(l + 1) * n]))
              for l in range(L))
    # the truth's own transition function (the package's tanh MLP) is that sum
    np.testing.assert_allclose(np.asarray(transition_mean(truth, past, k)), ref, atol=1e-5)
    y = np.where(data.z[:, L:] < 0, data.z[:, L:] / 0.2, data.z[:, L:])
    eps = y - ref
    np.testing.assert_allclose(eps.std(), 0.1, rtol=0.03)
    np.testing.assert_allclose(eps.mean(), 0.0, atol=0.005)
    if generator == "dynamics":
        diff = np.abs(w1[1] - w1[0]) > 0
        assert set(zip(*np.nonzero(diff))) <= {(1, 2), (3, 4)}
    else:
        assert np.abs(w1[1] - w1[0]).max() > 0.1
