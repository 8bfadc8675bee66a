"""The settings table: one row per fit setting, and everything generated from it."""

from __future__ import annotations

import argparse

import pytest

from ppl_ident.cli import fit as fit_cli
from ppl_ident.cli import main
from ppl_ident.data import save_dataset, simulate_domains
from ppl_ident.data.sequences import simulate_dynamics
from ppl_ident.errors import InputError
from ppl_ident.families import FAMILIES
from ppl_ident.harness.grid import FIT_KEYS, make_grid
from ppl_ident.settings import (DEFAULT_STEPS, MODEL_DEFAULTS, SETTINGS, FitSettings,
                                changed_settings, fit_settings, settings_from_args)
from ppl_ident.workflow import checked_settings, fit_model


def _parser():
    p = argparse.ArgumentParser()
    fit_cli.add_arguments(p)
    return p


def test_the_record_and_the_flags_come_from_the_table():
    assert FitSettings._fields == tuple(s.name for s in SETTINGS)
    assert FitSettings() == FitSettings(**{s.name: s.default for s in SETTINGS})
    assert all(f in FAMILIES for s in SETTINGS for f in s.families)
    flags = {a.dest: a.option_strings for a in _parser()._actions}
    assert all(s.name in flags for s in SETTINGS)
    # a flag left unset keeps the default; every given flag reaches the settings
    args = _parser().parse_args(["d.npz", "--out", "r", "--lr", "0.01", "--regimes", "4",
                                 "--no-whiten", "--flow"])
    s = settings_from_args(args)
    assert (s.learning_rate, s.n_regimes, s.whiten, s.flow, s.steps) == (0.01, 4, False, True,
                                                                         None)
    assert changed_settings(args) == ["--lr", "--no-whiten", "--regimes", "--flow"]
    assert settings_from_args(_parser().parse_args(["d.npz", "--no-flow"])).flow is False


@pytest.mark.parametrize(["model", "n", "d", "given", "flow", "steps"], [
    ("ivae", 2, 2, {}, True, DEFAULT_STEPS["flow"]),
    ("ivae", 2, 4, {}, True, DEFAULT_STEPS["flow"]),          # through 2 principal components
    ("vae", 2, 2, {}, True, DEFAULT_STEPS["flow"]),           # the control gets the same model
    ("ivae", 1, 2, {}, False, DEFAULT_STEPS["variational"]),  # a coupling needs n >= 2
    ("ivae", 2, 4, {"whiten": False}, False, DEFAULT_STEPS["variational"]),
    ("ivae", 2, 2, {"flow": False}, False, DEFAULT_STEPS["variational"]),
    ("ivae", 2, 2, {"steps": 7}, True, 7),
    ("ivae", 8, 8, {}, True, 2500 + 3 * 3500),                # more latents, more steps
    ("tivae", 8, 8, {}, True, 8 * 500),                       # the sequence flow: 500 per latent
    ("tivae", 2, 2, {}, True, DEFAULT_STEPS["sequence_flow"]),  # sequences with d == n too
    ("tivae", 2, 3, {}, False, DEFAULT_STEPS["variational"]),  # d > n: the variational model
    ("tivae", 2, 2, {"context": 1}, False, DEFAULT_STEPS["variational"]),  # an encoder's
])
def test_unset_flow_and_steps_are_decided_from_the_model_and_data(model, n, d, given, flow,
                                                                   steps):
    if model == "tivae":
        data, _ = simulate_dynamics(0, n_sequences=4, length=6, n_latent=n, data_dim=d)
    else:
        data, _ = simulate_domains(0, n_latent=n, data_dim=d, n_domains=5, n_per_domain=10)
    _, s = checked_settings(data, FitSettings(model=model, **given))
    assert (s.flow, s.steps) == (flow, steps)


@pytest.mark.parametrize(["model", "d", "given", "depth", "lr", "transition"], [
    ("ivae", 2, {}, 1, 1e-2, (None, None)),
    ("ivae", 2, {"flow": False}, 2, 5e-3, (None, None)),
    ("ivae", 2, {"depth": 3, "learning_rate": 0.02}, 3, 0.02, (None, None)),   # kept
    ("tivae", 2, {}, 1, 1e-2, (1, 192)),                          # the sequence flow
    ("stationary", 2, {}, 1, 1e-2, (1, 192)),
    ("regime", 2, {}, 2, 1e-2, (2, 64)),             # its regimes: 2 layers, a network each
    ("regime", 2, {"transition_depth": 1}, 2, 1e-2, (1, 64)),
    ("tivae", 2, {"transition_width": 32, "depth": 2}, 2, 1e-2, (1, 32)),
    ("tivae", 3, {}, 2, 5e-3, (2, 64)),                  # the variational model: --depth, --width
    ("regime", 3, {"width": 16, "depth": 3}, 3, 5e-3, (3, 16)),
])
def test_unset_depth_and_learning_rate_follow_the_model(model, d, given, depth, lr, transition):
    assert (MODEL_DEFAULTS["flow"]["depth"], MODEL_DEFAULTS["flow"]["learning_rate"]) == (1, 1e-2)
    assert MODEL_DEFAULTS["sequence_flow"]["transition_width"] == 192
    if model in ("tivae", "stationary", "regime"):
        data, _ = simulate_dynamics(0, n_sequences=4, length=6, n_latent=2, data_dim=d)
    else:
        data, _ = simulate_domains(0, n_latent=2, data_dim=d, n_domains=5, n_per_domain=10)
    _, s = checked_settings(data, FitSettings(model=model, **given))
    assert (s.depth, s.learning_rate) == (depth, lr)
    assert (s.transition_depth, s.transition_width) == transition
    if model in ("tivae", "stationary", "regime"):
        separate = model == "regime" and s.flow
        assert s.regime_transitions == ("separate" if separate else "shared")


@pytest.mark.parametrize(["model", "n", "given", "layers"], [
    ("ivae", 5, {}, 8),
    ("ivae", 10, {}, 8),
    ("ivae", 11, {}, 12),                       # more latents than LARGE_LATENTS: 12 layers
    ("ivae", 11, {"flow_layers": 3}, 3),        # given: kept
    ("tivae", 11, {}, 12),                      # the sequence flow follows the same rule
])
def test_unset_flow_layers_follow_the_number_of_latents(model, n, given, layers):
    from ppl_ident.settings import FLOW_LAYERS, FLOW_LAYERS_LARGE, LARGE_LATENTS

    assert (FLOW_LAYERS, FLOW_LAYERS_LARGE, LARGE_LATENTS) == (8, 12, 10)
    if model == "tivae":
        data, _ = simulate_dynamics(0, n_sequences=2, length=4, n_latent=n, data_dim=n)
    else:
        data, _ = simulate_domains(0, n_latent=n, data_dim=n, n_domains=3, n_per_domain=8)
    _, s = checked_settings(data, FitSettings(model=model, **given))
    assert s.flow and s.flow_layers == layers
    # the variational model has no flow: a given --flow-layers is refused, an unset one is not
    _, v = checked_settings(data, FitSettings(model=model, flow=False))
    assert not v.flow
    assert v.flow_layers == 8   # what every variational run records; resuming one is fine
    assert checked_settings(data, v)[1].flow_layers == 8
    with pytest.raises(InputError, match="--flow-layers sets the depth"):
        checked_settings(data, FitSettings(model=model, flow=False, flow_layers=3))


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.families != ("iid", "sequence")],
                         ids=lambda s: s.name)
def test_a_setting_of_another_family_is_refused_not_dropped(setting):
    """Every family-specific setting, changed from its default, on a model of the other
    family: refused with a message that names the flag and the models it applies to."""
    value = {bool: True, int: 2, str: "laplace"}.get(type(setting.default))
    if value is None and setting.kind == "int":  # a model-dependent default when unset
        value = 2
    elif value is None and setting.kind == "optional_flag":  # --flag / --no-flag
        value = True
    elif value is None and setting.kind == "float":  # unset means "not given" (learned)
        value = 0.5
    elif value is None:  # decided from the data when unset: any of its choices is "given"
        from ppl_ident.settings import _choices
        value = _choices(setting.choices)[-1]
    if "iid" in setting.families:
        data, _ = simulate_dynamics(0, n_sequences=4, length=6, n_latent=2, data_dim=2)
        model = "tivae"
    else:
        data, _ = simulate_domains(0, n_latent=2, data_dim=2, n_domains=5, n_per_domain=10)
        model = "ivae"
    with pytest.raises(InputError, match=setting.flag) as err:
        fit_model(data, model=model, steps=1, **{setting.name: value})
    family = "sequence" if model == "ivae" else "iid"
    assert all(m in str(err.value) for m in FAMILIES[family].models)


def test_resume_refuses_every_setting_flag(tmp_path, capsys):
    data, truth = simulate_domains(0, n_latent=2, data_dim=2, n_domains=5, n_per_domain=10)
    save_dataset(tmp_path / "d.npz", data, truth)
    for flag, value in [("--lag", "2"), ("--width", "4"), ("--warmup-steps", "3"),
                        ("--preset", "accurate"), ("--heteroscedastic", None)]:
        argv = ["fit", "--resume", str(tmp_path / "run"), flag] + ([value] if value else [])
        assert main(argv) == 2
        assert f"drop {flag}" in capsys.readouterr().err


def test_grid_keys_come_from_the_table():
    assert {s.name for s in SETTINGS if s.grid} <= set(FIT_KEYS) and "lag" in FIT_KEYS
    # a cell refuses a setting of the other family as `fit` does, naming the models it is for
    with pytest.raises(InputError, match="applies to the models tivae, regime, stationary; "
                                         "model 'ivae' has no such setting"):
        make_grid(engines={"mine": {"engine": "svi", "heteroscedastic": True}})
    with pytest.raises(InputError, match="takes the data of the generator"):
        make_grid(models=("tivae",))


def test_presets_fill_settings_and_overrides_win():
    assert fit_settings("exact").flow and fit_settings("exact", steps=3).steps == 3
    with pytest.raises(InputError, match="Unknown fit setting"):
        fit_settings(lag_steps=3)


def test_a_preset_of_the_sequence_models_is_refused_by_name_on_the_ivae():
    """--preset exact pins the sequence models' transition and first steps; on an i.i.d. model
    the refusal names the preset, not a flag the user never gave."""
    data, _ = simulate_domains(0, n_latent=2, data_dim=2, n_domains=5, n_per_domain=10)
    with pytest.raises(InputError, match="drop --preset exact"):
        checked_settings(data, fit_settings("exact", model="ivae"))
    s = fit_settings("exact")
    assert (s.transition, s.initial, s.steps) == ("additive", "gaussian", 20_000)
    # and the networks it was measured with (two hidden layers, a transition of --width 64)
    assert (s.depth, s.transition_depth, s.transition_width, s.learning_rate) == (2, 2, 64, 1e-3)
    assert s.regime_transitions == "shared"


@pytest.mark.parametrize(["model", "given", "prior"], [
    ("ivae", {}, "mixture"),                            # the exact flow: a learned shape
    ("ivae", {"flow": False}, "gaussian"),              # the variational models
    ("ivae", {"prior": "laplace"}, "laplace"),          # kept
    ("vae", {}, "mixture"),                             # (its prior ignores it: N(0, 1))
    ("tivae", {}, None),                                # not a sequence setting
])
def test_unset_prior_follows_the_model(model, given, prior):
    if model == "tivae":
        data, _ = simulate_dynamics(0, n_sequences=4, length=6, n_latent=2, data_dim=2)
    else:
        data, _ = simulate_domains(0, n_latent=2, data_dim=2, n_domains=5, n_per_domain=10)
    _, s = checked_settings(data, FitSettings(model=model, **given))
    assert s.prior == prior
