"""What a fit's learned noise leaves of the latents: the law of total variance, known answers."""

import numpy as np
import pytest

from ppl_ident.diagnostics import RECOVERY_DOUBT, implied_recovery, noise_report
from ppl_ident.errors import InputError


def test_implied_recovery_is_the_correlation_of_a_gaussian_posterior_mean(rng):
    """z ~ N(0, 1), x = z + N(0, s^2): the posterior mean is x / (1 + s^2) with sd
    s / sqrt(1 + s^2), and corr(z, E[z | x]) = 1 / sqrt(1 + s^2); the implied value from the
    posterior alone matches both the formula and the simulated correlation."""
    s = 0.75
    z = rng.normal(size=200_000)
    x = z + s * rng.normal(size=z.shape)
    mean = (x / (1 + s**2))[:, None]
    sd = np.full_like(mean, s / np.sqrt(1 + s**2))
    rho = implied_recovery(mean, sd)[0]
    assert rho == pytest.approx(1 / np.sqrt(1 + s**2), abs=3e-3)
    assert rho == pytest.approx(np.corrcoef(z, mean[:, 0])[0, 1], abs=3e-3)


def test_noise_report_says_doubt_only_below_the_bar(rng):
    mean = rng.normal(size=(1000, 2))
    sharp = noise_report([0.01, 0.02], mean, np.full((1000, 2), 0.05))
    assert not sharp["in_doubt"] and "in doubt" not in sharp["message"]
    assert "1.0-2.0 %" in sharp["message"]
    vague = noise_report([0.3, 0.3], mean, np.c_[np.full(1000, 0.05), np.full(1000, 1.0)])
    assert vague["in_doubt"] and vague["implied_recovery"][1] < RECOVERY_DOUBT
    assert "latent 1" in vague["message"] and "in doubt" in vague["message"]


def test_implied_recovery_checks_its_inputs():
    with pytest.raises(InputError, match="same"):
        implied_recovery(np.zeros((5, 2)), np.zeros((5, 3)))


def test_noise_report_says_when_the_data_cannot_identify_the_noise(rng):
    # d = n: the learned noise is a lower bound, and the report says so; d > n: it does not
    mean, sd = rng.normal(size=(500, 2)), np.full((500, 2), 0.05)
    square = noise_report([0.01, 0.02], mean, sd)
    assert square["noise_identified"] is False
    assert "d = n = 2" in square["message"] and "lower bound" in square["message"]
    tall = noise_report([0.01, 0.02, 0.03], mean, sd)
    assert tall["noise_identified"] is True and "lower bound" not in tall["message"]
