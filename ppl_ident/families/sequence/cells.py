"""The sequence family's data in a comparison grid: the settings of the sequence simulators
(:func:`~ppl_ident.data.sequences.simulate_sequences`: ``segments``, ``dynamics``,
``regimes``) that a grid's ``[data]`` may vary, named as ``ppl-ident simulate``'s flags, their
label, and the check that a model can fit a generator's data."""

from __future__ import annotations

from ppl_ident.data.sequences import SequenceConfig, check_config, simulate_sequences
from ppl_ident.errors import InputError

__all__ = ["FIELDS", "OBSERVED_U", "data_axes", "sequence_config", "check_setting",
           "setting_label", "simulate_setting"]

_COMMON = (("latent_dim", "n_latent"), ("data_dim", "data_dim"), ("sequences", "n_sequences"),
           ("mixing_layers", "n_layers"), ("noise_std", "noise_std"))
_TRANSITION = (("length", "length"), ("lag", "lag"), ("scale_gain", "scale_gain"),
               ("transition", "transition"), ("pnl_slope", "pnl_slope"), ("noise", "noise"),
               ("style", "style"))
#: generator -> (grid key, :class:`~ppl_ident.data.sequences.SequenceConfig` field) of every
#: setting a grid may give for it (besides ``data_seed``)
FIELDS = {
    "segments": _COMMON + (("segments", "n_segments"), ("segment_length", "segment_length")),
    "dynamics": _COMMON + _TRANSITION + (("domains", "n_domains"),
                                         ("domain_length", "domain_length"),
                                         ("domain_transitions", "domain_transitions")),
    "regimes": _COMMON + _TRANSITION + (("regimes", "n_regimes"), ("stay_prob", "stay_prob")),
}
#: The generators whose data carry the labels u (the regimes generator's are hidden).
OBSERVED_U = ("segments", "dynamics")
#: How a setting reads in a label; the first keys of a generator's label always appear.
_SHORT = {"latent_dim": "n", "data_dim": "d", "sequences": "B", "length": "T",
          "segments": "S", "segment_length": "x", "lag": "L", "domains": "U",
          "domain_length": "Ulen", "regimes": "K", "stay_prob": "stay", "scale_gain": "g",
          "transition": "", "pnl_slope": "pnl", "noise": "noise-", "style": "",
          "domain_transitions": "domtrans", "mixing_layers": "m", "noise_std": "s"}
_CORE = {"segments": ("latent_dim", "data_dim", "sequences", "segments", "segment_length"),
         "dynamics": ("latent_dim", "data_dim", "sequences", "length"),
         "regimes": ("latent_dim", "data_dim", "sequences", "length")}


def data_axes(generator: str) -> dict:
    """The grid's data settings of ``generator`` and their defaults (those of
    :class:`~ppl_ident.data.sequences.SequenceConfig`; ``data_dim`` None is ``latent_dim``,
    ``sequences`` None the simulator's own number)."""
    c = SequenceConfig()
    out = {key: getattr(c, field) for key, field in FIELDS[generator]}
    out.update(data_dim=None, data_seed=0)
    return out


def sequence_config(setting: dict) -> SequenceConfig:
    """The simulator's configuration of a data setting."""
    return SequenceConfig(**{field: setting[key] for key, field in FIELDS[setting["generator"]]})


def check_setting(setting: dict, model: str, prepare_inputs) -> None:
    """Refuse what the generator's simulator refuses, and a model that needs labels u on the
    hidden-regime generator's data (they have none)."""
    generator = setting["generator"]
    check_config(sequence_config(setting), generator)
    if generator not in OBSERVED_U:
        try:
            prepare_inputs(None, model)
        except InputError as err:
            raise InputError(f"Model {model!r} cannot fit the {generator} generator's data, "
                             f"whose labels u are hidden: {err}") from None


def setting_label(setting: dict) -> str:
    """E.g. ``dynamics-n2-d2-B64-T4-ds0``: the generator, its size, then every other setting
    that differs from its default."""
    generator = setting["generator"]
    default = data_axes(generator)
    resolved = {**setting, "sequences":
                check_config(sequence_config(setting), generator).n_sequences}
    keys = list(_CORE[generator]) + [k for k, _ in FIELDS[generator]
                                     if k not in _CORE[generator] and setting[k] != default[k]]
    parts = [generator] + [f"{_SHORT[k]}{_text(resolved[k])}" for k in keys]
    return "-".join(parts + [f"ds{setting['data_seed']}"])


def _text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    return "".join(c if c.isalnum() or c in "._" else "_" for c in str(value))


def simulate_setting(setting: dict):
    """The generator's sequences and their :class:`~ppl_ident.data.sequences.SequenceTruth`."""
    return simulate_sequences(setting["generator"], setting["data_seed"],
                              sequence_config(setting))
