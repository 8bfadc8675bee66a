"""The command line's parser: every option documented with its default, and usage errors
that fit in two lines with a "did you mean"."""

import argparse

import pytest

from ppl_ident.cli import COMMANDS, _build_parser, main


def _command_parser(name):
    return _build_parser([name]).commands[name]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_of_every_command_has_help_and_shows_its_default(name):
    parser = _command_parser(name)
    text = parser.format_help()
    for action in parser._actions:
        assert action.help and action.help.strip(), (name, action.option_strings or action.dest)
        shown = action.default not in (None, False, argparse.SUPPRESS)
        if shown and action.option_strings:
            # the help line of the flag names its default
            formatter = parser._get_formatter()
            assert "default" in formatter._expand_help(action), (name, action.option_strings)
    assert "(default: " in text


def test_defaults_appear_in_the_help_text(capsys):
    assert main(["simulate", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "observations drawn in each domain (default: 1000)" in out
    assert "--seed SEED seed of the latents" in out


@pytest.mark.parametrize("argv,hint,message", [
    (["fit", "data.npz", "--model", "ivea"], "ppl-ident fit --help",
     "did you mean 'ivae'?"),
    (["simulate", "--out", "x.npz", "--generator", "regime"], "ppl-ident simulate --help",
     "did you mean 'regimes'?"),
    (["fitt", "data.npz"], "ppl-ident --help", "did you mean 'fit'?"),
    (["check", "run", "--pionts", "5"], "ppl-ident check --help", "did you mean '--points'?"),
    (["fit", "data.npz", "--steps", "0"], "ppl-ident fit --help", "expected a positive integer"),
])
def test_usage_errors_are_two_lines_with_a_suggestion(argv, hint, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 2, err
    assert err[0].startswith("usage: ") and hint in err[0], err
    assert err[1].startswith("ppl-ident") and ": error: " in err[1] and message in err[1], err
    assert "Traceback" not in captured.err


def test_no_suggestion_when_nothing_is_close(capsys):
    assert main(["fit", "data.npz", "--model", "zzzz"]) == 2
    err = capsys.readouterr().err
    assert "did you mean" not in err and "choose from" in err and "ivae" in err


def test_warnings_shown_are_those_of_the_package_not_of_libraries_beside_it(capsys):
    """A checkout named ppl_ident/ with its .venv inside: a library's warning there stays
    quiet, one attributed to the package's own files is printed."""
    import os

    import ppl_ident.cli as cli

    package = cli._PACKAGE_DIR
    beside = os.path.join(os.sep, "home", "me", "ppl_ident", ".venv", "lib", "site-packages",
                          "arviz", "x.py")
    cli._show_warning("library internals", DeprecationWarning, beside, 1)
    cli._show_warning("ours", UserWarning, os.path.join(package, "cli", "fit.py"), 1)
    err = capsys.readouterr().err
    assert "warning: ours" in err and "library internals" not in err


def test_a_misspelt_command_is_answered_without_importing_jax():
    """The suggestion for an unknown sub-command comes from the top-level parser, which
    builds no sub-command's arguments (as ``--help``)."""
    import subprocess
    import sys

    code = ("import sys\nfrom ppl_ident.cli import main\nassert main(['reprot', 'run']) == 2\n"
            "assert 'jax' not in sys.modules, sorted(m for m in sys.modules if 'jax' in m)[:3]")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "did you mean 'report'?" in done.stderr


def test_table_columns_take_space_or_comma_separated_names():
    import argparse

    from ppl_ident.cli._args import add_table_arguments, table_columns

    p = argparse.ArgumentParser()
    add_table_arguments(p)
    for argv in (["--x-cols", "a", "b", "c"], ["--x-cols", "a,b,c"], ["--x-cols", "a,b", "c"],
                 ["--x-cols", "a,b,c,"]):
        cols = table_columns(p.parse_args(argv + ["--z-cols", "z0,z1", "--u-col", "site"]))
        assert cols.x == ("a", "b", "c") and cols.z == ("z0", "z1") and cols.u == "site"
    assert table_columns(p.parse_args([])) is None
