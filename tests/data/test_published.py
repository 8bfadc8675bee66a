"""Ports of the published generators: the originals' distinctive features, and the true
model's regime posterior against brute-force enumeration."""

import itertools

import numpy as np
import pytest

from ppl_ident.data import load_dataset, save_dataset
from ppl_ident.data.published import (
    PUBLISHED_GENERATORS,
    PublishedTruth,
    forward_backward,
    generator_options,
    oracle_regime_accuracy,
    regime_posterior,
    regime_prior,
    simulate_ctrlns,
    simulate_nctrl,
    simulate_published,
    simulate_tdrl_changing,
    simulate_tdrl_stationary,
    transition_log_likelihoods,
)
from ppl_ident.errors import InputError

TINY = {"tdrl_changing": dict(n_per_domain=20), "tdrl_stationary": dict(n_sequences=40),
        "nctrl": dict(n_sequences=40), "ctrlns": dict(n_groups=3, group_size=4)}


def leaky(h):
    return np.where(h > 0, h, 0.2 * h)


def leaky_inv(y):
    return np.where(y > 0, y, y / 0.2)


def weights(truth):
    return [np.asarray(w, np.float64) for w in truth.mixing.weights]


@pytest.mark.parametrize("generator", PUBLISHED_GENERATORS)
def test_shapes_determinism_and_file_round_trip(generator, tmp_path):
    data, truth = simulate_published(generator, 1, **TINY[generator])
    again, _ = simulate_published(generator, 1, **TINY[generator])
    other, _ = simulate_published(generator, 2, **TINY[generator])
    np.testing.assert_array_equal(data.x, again.x)
    assert not np.allclose(data.x, other.x)
    assert data.x.dtype == np.float32 and np.all(np.isfinite(data.x))
    assert data.x.shape == data.z.shape and data.x.shape[-1] == 8
    assert (data.u is None) == (truth.regimes is not None)
    save_dataset(tmp_path / "d.npz", data, truth)
    back, t2 = load_dataset(tmp_path / "d.npz")
    assert isinstance(t2, PublishedTruth) and t2.generator == generator
    assert t2.lag == truth.lag and t2.group_size == truth.group_size
    assert set(t2.params) == set(truth.params)
    for k in ("regimes", "labels", "step_trans"):
        if getattr(truth, k) is not None:
            np.testing.assert_array_equal(getattr(t2, k), getattr(truth, k))
    np.testing.assert_allclose(np.asarray(t2.g(back.z)), data.x, atol=1e-4)


@pytest.mark.parametrize("generator", PUBLISHED_GENERATORS)
def test_orthogonal_leaky_mixing_without_noise(generator):
    """TDRL and NCTRL: x = leaky(leaky(z) A1) A2; CtrlNS: x = leaky(z) A; A orthogonal."""
    data, truth = simulate_published(generator, 0, **TINY[generator])
    ws = weights(truth)
    np.testing.assert_array_equal(ws[0], np.eye(8))
    assert len(ws) == (2 if generator == "ctrlns" else 3)
    h = leaky(np.asarray(data.z, np.float64))
    for w in ws[1:]:
        np.testing.assert_allclose(w @ w.T, np.eye(8), atol=1e-5)
    h = h @ ws[1]
    if generator != "ctrlns":
        h = leaky(h) @ ws[2]
    np.testing.assert_allclose(data.x, h, atol=1e-4)


def test_nctrl_lag1_map_is_a_permutation_per_regime():
    """Without noise, z_t = leaky(leaky(z_{t-1} P_r) + leaky(z_{t-2} B)) with r the regime of
    step t: the pre-activation minus the lag-2 term is the lag-1 latents permuted."""
    data, truth = simulate_nctrl(0, n_sequences=200, n_regimes=3, noise_scale=0.0)
    z = np.asarray(data.z, np.float64)
    perm, Bm = truth.params["perm"], np.asarray(truth.params["B"][0], np.float64)
    assert len({tuple(p) for p in perm}) == 3
    for P, p in zip(truth.params["P"], perm):
        assert sorted(p.tolist()) == list(range(8))
        np.testing.assert_array_equal(P.sum(0), 1)
        np.testing.assert_array_equal(P.sum(1), 1)
    for t in range(2, z.shape[1]):
        lag1 = leaky_inv(z[:, t]) - leaky(z[:, t - 2] @ Bm)
        r = truth.regimes[:, t]
        want = np.zeros_like(lag1)
        for b in range(z.shape[0]):
            want[b, perm[r[b]]] = leaky(z[b, t - 1])
        np.testing.assert_allclose(lag1, want, atol=1e-5)
        # the original's labels: C[t] drives z[t + lag]
        np.testing.assert_array_equal(truth.labels[:, t - 2], r)


def test_nctrl_noise_sd_and_the_drift_of_the_latent_mean():
    """The noise is N(0, 0.1^2) in the pre-activation; the process is not stationary: the
    first generated step has sd 0.84 (the issue's figure from the original), and the mean and
    sd grow at every step (to about 1.5 and 1.4 in the issue's draw; the size depends on B)."""
    data, truth = simulate_nctrl(3, n_sequences=20_000)
    z = np.asarray(data.z, np.float64)
    Bm, P = np.asarray(truth.params["B"][0], np.float64), truth.params["P"]
    noise = leaky_inv(z[:, 2:]) - leaky(z[:, :-2] @ Bm) - leaky(
        np.einsum("bti,btij->btj", z[:, 1:-1], P[truth.regimes[:, 2:]]))
    # sd of 640,000 Gaussian draws: standard error 0.1 / sqrt(2 * 640,000) < 1e-4
    assert abs(noise.std() - 0.1) < 1e-3 and abs(noise.mean()) < 1e-3
    mean, sd = z.mean((0, 2)), z.std((0, 2))
    np.testing.assert_allclose(mean[:2], 0, atol=1e-6)  # standardised start
    np.testing.assert_allclose(sd[:2], 1, atol=1e-6)
    # standard error of the sd over 160,000 values (8 correlated latents): below 0.005
    assert abs(sd[2] - 0.84) < 0.02
    assert np.all(np.diff(mean[2:]) > 0.1) and np.all(np.diff(sd[2:]) > 0.1)
    assert 1.2 < mean[-1] < 2.6 and sd[-1] > 1.3


def test_nctrl_sticky_cyclic_chain_frequencies():
    data, truth = simulate_nctrl(1, n_sequences=20_000, n_regimes=5, n_latent=4)
    r = truth.regimes
    K = 5
    prev, nxt = r[:, :-1].ravel(), r[:, 1:].ravel()
    stay = np.mean(prev == nxt)
    move = np.mean(nxt == (prev + 1) % K)
    # 100,000 transitions: binomial standard error of 0.9 is 0.00095; allow 5 of them
    assert abs(stay - 0.9) < 0.005 and abs(move - 0.1) < 0.005 and stay + move == 1.0
    np.testing.assert_allclose(truth.trans_matrix.diagonal(), 0.9)
    # started from the stationary (uniform) distribution: 20,000 draws, sd 0.0028 per share
    np.testing.assert_allclose(np.bincount(r[:, 0], minlength=K) / r.shape[0], 1 / K, atol=0.015)


def test_ctrlns_segment_rules_resets_and_shared_paths():
    data, truth = simulate_ctrlns(0, n_groups=4000, group_size=2, n_latent=4, hidden=4)
    K, S = 5, 5
    states = truth.labels[::2]
    np.testing.assert_array_equal(truth.labels[1::2], states)  # a group shares one path
    np.testing.assert_array_equal(truth.regimes[:, 1:], truth.labels)

    def freq(a, b):
        f = np.zeros((K, K))
        np.add.at(f, (a.ravel(), b.ravel()), 1)
        return f / f.sum(1, keepdims=True)

    # segment 1: independent uniform draws (16,000 pairs: sd of a cell about 0.007)
    np.testing.assert_allclose(freq(states[:, :S - 1], states[:, 1:S]), 1 / K, atol=0.04)
    # segment 2: the sticky cyclic chain, stay 0.8, else the next regime, nothing else
    f2 = freq(states[:, S:2 * S - 1], states[:, S + 1:2 * S])
    np.testing.assert_allclose(f2.diagonal(), 0.8, atol=0.03)
    np.testing.assert_allclose(f2[np.arange(K), (np.arange(K) + 1) % K], 0.2, atol=0.03)
    assert np.count_nonzero(f2) == 2 * K
    # segment 3: its own chain (anti-diagonal boosted)
    f3 = freq(states[:, 2 * S:-1], states[:, 2 * S + 1:])
    np.testing.assert_allclose(f3, truth.params["chain2"], atol=0.04)
    # resets: across the segment boundaries the regime forgets the previous one
    for b in (S, 2 * S):
        stay = np.mean(states[:, b] == states[:, b - 1])
        assert stay < 0.35, stay  # a chain would stay with 0.8 or more
    # the true process as a time-varying chain says the same
    _, log_trans = regime_prior(truth)
    st = np.exp(log_trans)
    np.testing.assert_allclose(st[0], 1 / K)
    np.testing.assert_allclose(st[S + 1], truth.params["chain1"], rtol=1e-6)
    assert np.ptp(st[S], axis=0).max() == 0 and np.ptp(st[2 * S], axis=0).max() == 0


def test_ctrlns_sparse_transitions_and_regime_alignment():
    """Each regime's transition reads only its Jacobian support (distinct per regime, every
    output reads an input); z_{s+1} - f_{state s}(z_s) is the N(0, 0.1) noise."""
    from ppl_ident.data.published import _ctrlns_mean

    data, truth = simulate_ctrlns(0, n_groups=50, group_size=4)
    sup = truth.params["supports"]
    K, n, _ = sup.shape
    assert np.all(sup.sum(2) >= 1) and 0.5 < sup.mean() < 0.95
    for i, j in itertools.combinations(range(K), 2):
        assert ((sup[i] - sup[j]) == 1).sum() > 6.4 and ((sup[i] - sup[j]) == -1).sum() > 6.4
    rng = np.random.default_rng(0)
    z0 = rng.standard_normal((64, n))
    for k in range(K):
        for j in range(n):
            dz = np.zeros(n)
            dz[j] = 1e-3
            jac = (_ctrlns_mean(truth.params, z0 + dz, k) - _ctrlns_mean(truth.params, z0, k))
            outside = sup[k][:, j] == 0
            assert np.all(jac[:, outside] == 0)
            assert np.any(np.abs(jac[:, ~outside]) > 0)
    z = np.asarray(data.z, np.float64)
    for s in (0, 7, 14):
        good = z[:, s + 1] - _ctrlns_mean(truth.params, z[:, s], truth.labels[:, s])
        bad = z[:, s + 1] - _ctrlns_mean(truth.params, z[:, s], (truth.labels[:, s] + 1) % K)
        assert abs(good.std() - np.sqrt(0.1)) < 0.03  # 1,600 draws: se 0.006
        assert bad.std() > good.std() + 0.05


def test_tdrl_changing_edges_domains_and_noise():
    data, truth = simulate_tdrl_changing(0, n_per_domain=3000)
    W = np.asarray(truth.params["W"], np.float64)
    assert W.shape == (5, 2, 8, 8)
    changing = np.zeros((8, 8), bool)
    changing[1, 2] = changing[3, 4] = True
    assert np.all(W[:, 1] == W[:1, 1])  # the lag-1 matrix is shared
    assert np.all(W[:, 0][:, ~changing] == W[:1, 0][:, ~changing])  # lag 2: two edges change
    assert np.unique(W[:, 0, 1, 2]).size == 5 and np.all(np.abs(W[:, 0][:, changing]) <= 1)
    z = np.asarray(data.z, np.float64)
    np.testing.assert_array_equal(data.u[:, 0], np.repeat(np.arange(5), 3000))
    for c in range(5):
        zc = z[data.u[:, 0] == c]
        np.testing.assert_allclose(zc[:, :2].mean(0), 0, atol=1e-6)  # standardised per domain
        noise = leaky_inv(zc[:, 2]) - leaky(zc[:, 0] @ W[c, 0]) - leaky(zc[:, 1] @ W[c, 1])
        assert abs(noise.std() - 0.1) < 0.005  # 24,000 draws: se 0.0005


def test_tdrl_stationary_noise_scaled_by_the_past():
    data, truth = simulate_tdrl_stationary(0, n_sequences=5000)
    W = np.asarray(truth.params["W"], np.float64)
    z = np.asarray(data.z, np.float64)
    pre = leaky_inv(z[:, 2]) - leaky(z[:, 0] @ W[0]) - leaky(z[:, 1] @ W[1])
    past = z[:, :2].mean(1)
    eps = pre / past
    assert abs(eps.std() - 0.1) < 0.005  # 40,000 draws: se 0.0004
    # the noise is larger where the past is larger
    big = np.abs(past) > 1.0
    assert np.abs(pre[big]).mean() > 3 * np.abs(pre[np.abs(past) < 0.2]).mean()
    plain, t2 = simulate_tdrl_stationary(0, n_sequences=5000, noise_coupled=False)
    pre2 = leaky_inv(plain.z[:, 2].astype(np.float64)) - leaky(plain.z[:, 0] @ W[0]) - leaky(
        plain.z[:, 1] @ W[1])
    assert abs(pre2.std() - 0.1) < 0.005


def _brute_force(log_init, log_trans, ll):
    """Posterior marginals by enumerating every path."""
    B, T, K = ll.shape
    probs = np.zeros((B, T, K))
    for path in itertools.product(range(K), repeat=T):
        lp = log_init[path[0]] + sum(log_trans[t, path[t], path[t + 1]] for t in range(T - 1))
        w = np.exp(lp + ll[:, np.arange(T), list(path)].sum(1))
        for t, k in enumerate(path):
            probs[:, t, k] += w
    return probs / probs.sum(-1, keepdims=True)


@pytest.mark.parametrize("case", ["nctrl", "ctrlns"])
def test_regime_posterior_matches_brute_force_enumeration(case):
    if case == "nctrl":
        data, truth = simulate_nctrl(0, n_sequences=6, n_regimes=3, length=3, n_latent=3,
                                     noise_scale=1.0)
    else:  # T = 7 over two regimes, with the resets of the time-varying process
        data, truth = simulate_ctrlns(0, n_groups=3, group_size=2, n_regimes=2,
                                      segment_length=2, n_latent=4, hidden=3,
                                      noise_level=4.0)
    ll = transition_log_likelihoods(truth)
    log_init, log_trans = regime_prior(truth)
    want = _brute_force(log_init, log_trans, ll)
    got = regime_posterior(truth)
    np.testing.assert_allclose(got, want, atol=1e-10)
    # the noise is large enough that the posterior is not certain, so the test can fail
    assert 0.05 < want.max(-1).min() < 0.99
    acc = np.mean(want.argmax(-1) == truth.regimes)
    assert oracle_regime_accuracy(truth) == pytest.approx(acc)
    if case == "ctrlns":
        pooled = regime_posterior(truth, pool_groups=True)
        ll2 = ll.reshape(3, 2, *ll.shape[1:]).sum(1)
        np.testing.assert_allclose(pooled[::2], _brute_force(log_init, log_trans, ll2),
                                   atol=1e-10)


def test_forward_backward_log_evidence():
    rng = np.random.default_rng(0)
    ll = rng.normal(size=(2, 4, 3))
    log_trans = np.log(rng.dirichlet(np.ones(3), size=(3, 3)))
    log_init = np.log([0.2, 0.3, 0.5])
    _, log_z = forward_backward(log_init, log_trans, ll)
    total = np.zeros(2)
    for path in itertools.product(range(3), repeat=4):
        lp = log_init[path[0]] + sum(log_trans[t, path[t], path[t + 1]] for t in range(3))
        total += np.exp(lp + ll[:, np.arange(4), list(path)].sum(1))
    np.testing.assert_allclose(log_z, np.log(total))


def test_oracle_is_near_perfect_on_the_driven_steps_of_nctrl():
    data, truth = simulate_nctrl(0, n_sequences=2000)
    assert oracle_regime_accuracy(truth, from_step=2) > 0.99
    # the first two steps carry only the chain: the oracle guesses there
    assert oracle_regime_accuracy(truth) < 0.97


def test_bad_values_raise_input_errors():
    with pytest.raises(InputError, match="choose one of"):
        simulate_published("leap", 0)
    with pytest.raises(InputError, match="2 or more"):
        simulate_nctrl(0, n_regimes=1)
    with pytest.raises(InputError, match="positive integer"):
        simulate_ctrlns(0, n_groups=0)
    with pytest.raises(InputError, match="at least 5"):
        simulate_tdrl_changing(0, n_latent=3)
    with pytest.raises(InputError, match="permutations"):
        simulate_nctrl(0, n_regimes=7, n_latent=3)
    data, truth = simulate_tdrl_stationary(0, n_sequences=4)
    with pytest.raises(InputError, match="no hidden regimes"):
        regime_posterior(truth)


@pytest.mark.parametrize("generator,option,value,match", [
    ("tdrl_changing", "noise_scale", -0.1, "noise_scale must be a finite number >= 0"),
    ("tdrl_stationary", "noise_scale", float("nan"), "noise_scale must be a finite number"),
    ("nctrl", "noise_scale", float("inf"), "noise_scale must be a finite number >= 0"),
    ("ctrlns", "noise_level", -1.0, "noise_level must be a finite number >= 0"),
    ("nctrl", "n_sequences", 0, r"n_sequences must be a positive integer \(1 or more\)"),
    ("nctrl", "n_regimes", -2, "n_regimes must be a positive integer"),
    ("ctrlns", "n_regimes", 2.5, "n_regimes must be a positive integer"),
    ("tdrl_changing", "n_domains", 0, "n_domains must be a positive integer"),
    ("tdrl_stationary", "length", True, "length must be a positive integer"),
    ("nctrl", "stay_prob", -0.5, r"stay_prob must be in \[0, 1\)"),
    ("ctrlns", "stay_prob", float("nan"), r"stay_prob must be in \[0, 1\)"),
    ("tdrl_stationary", "noise_coupled", "yes", "noise_coupled must be True or False"),
])
def test_invalid_numbers_raise_input_errors_naming_the_range(generator, option, value, match):
    with pytest.raises(InputError, match=match):
        simulate_published(generator, 0, **{**TINY[generator], option: value})


@pytest.mark.parametrize("generator", PUBLISHED_GENERATORS)
def test_unknown_options_raise_input_errors_listing_the_valid_ones(generator):
    valid = [name for name, _ in generator_options(generator)]
    assert valid and "seed" not in valid and all(k in valid for k in TINY[generator])
    with pytest.raises(InputError) as err:
        simulate_published(generator, 0, noise_sacle=0.2)
    assert "has no option(s) 'noise_sacle'" in str(err.value)
    assert ", ".join(valid) in str(err.value)
    with pytest.raises(InputError, match="seed must be an integer >= 0"):
        simulate_published(generator, -1, **TINY[generator])


def test_noiseless_data_simulate_but_have_no_regime_likelihood():
    # noise 0 is a valid simulation (deterministic transitions), but no regime posterior
    _, truth = simulate_nctrl(0, n_sequences=4, n_regimes=2, n_latent=3, noise_scale=0.0)
    with pytest.raises(InputError, match="without transition noise"):
        regime_posterior(truth)


def test_cli_names_agree():
    from ppl_ident.cli.simulate import PUBLISHED

    assert PUBLISHED == PUBLISHED_GENERATORS
