"""The ``ppl-ident`` command line.

Each sub-command is one module in this package exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; adding a command is one module plus one
entry in :data:`COMMANDS`. Bad input exits with code 2 and a one-paragraph message, never a
traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
import warnings

__all__ = ["main", "COMMANDS"]

COMMANDS = ["simulate", "fit", "encode", "check", "report", "demo", "compare"]


class _HelpFormatter(argparse.HelpFormatter):
    """Help that shows every option's default (unless the text already names it, or the
    default is None or False: "not given" and "off")."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default is argparse.SUPPRESS
                or "default" in text or not (action.option_strings or action.nargs == "?")):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are two short lines instead of the whole usage:
    where to find the full list of options, then the message, with a "did you mean" for a
    misspelt choice, sub-command or flag. Exits with code 2, as argparse does."""

    #: the sub-command parsers built so far (name -> parser), set on the top-level parser
    commands: dict

    def _check_value(self, action, value):
        # argparse's own check, with the closest valid choice named
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(c) for c in choices]
        what = "sub-command" if isinstance(action, argparse._SubParsersAction) else "choice"
        raise argparse.ArgumentError(
            action, f"invalid {what} {value!r}{_did_you_mean(str(value), names)} "
                    f"(choose from {', '.join(names)})")

    def error(self, message):
        prog = self.prog
        commands = getattr(self, "commands", {})
        if message.startswith("unrecognized arguments:"):
            chosen = next(iter(commands.values()), None)
            if chosen is not None:
                prog = chosen.prog
            known = [o for p in [self, *commands.values()] for o in p._option_string_actions]
            hints = [_did_you_mean(arg.split("=", 1)[0], known)
                     for arg in message.split(":", 1)[1].split() if arg.startswith("-")]
            message += "".join(h for h in hints if h)
        self.exit(2, f"usage: {prog} ... (`{prog} --help` for the full list of options)\n"
                     f"{prog}: error: {message}\n")


def _did_you_mean(word: str, valid) -> str:
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _build_parser(argv=None) -> argparse.ArgumentParser:
    """The parser; only the chosen sub-command's arguments are built (they read the model
    and engine registries, which import JAX), so ``ppl-ident --help`` stays fast."""
    from ppl_ident._version import __version__

    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not str(a).startswith("-")), None)

    parser = _Parser(
        prog="ppl-ident", formatter_class=_HelpFormatter,
        description="Identifiable latent-variable models: simulate, fit, encode, check, report, "
                    "compare.",
    )
    parser.commands = {}
    parser.add_argument("--version", action="version", version=f"ppl-ident {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"ppl_ident.cli.{name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP,
                           formatter_class=_HelpFormatter)
        if name == chosen:
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
            parser.commands[name] = p
    return parser


#: the package's own directory: warnings attributed to its files are shown
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # one readable line per warning, on stderr, as it happens; library internals stay quiet
    # (a checkout named ppl_ident/ with its .venv inside holds the libraries too, so the test
    # is the package directory, not the name)
    from ppl_ident.errors import IdentifiabilityWarning

    ours = os.path.abspath(str(filename)).startswith(_PACKAGE_DIR + os.sep)
    if issubclass(category, IdentifiabilityWarning) or ours:
        print(f"warning: {message}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    """Entry point of ``ppl-ident``; returns the exit code."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader of stdout went away (``ppl-ident check run | head``): stop quietly, as
        # a command killed by SIGPIPE would, instead of printing a traceback. stdout is
        # pointed at /dev/null so that the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


#: Where compiled programs are kept between runs (JAX's persistent compilation cache), unless
#: ``PPL_IDENT_COMPILE_CACHE`` names another directory or is ``off``.
COMPILE_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                             "ppl_ident", "jax")


def _compile_cache() -> None:
    """Turn on JAX's persistent compilation cache (before JAX is imported): a second fit of
    the same model and data shapes loads its programs instead of compiling them again. A
    JAX_COMPILATION_CACHE_DIR already set is respected."""
    where = os.environ.get("PPL_IDENT_COMPILE_CACHE", COMPILE_CACHE)
    if where.lower() in ("off", "0", "no", "false", ""):
        return
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", where)
    # cache every program that took a noticeable time to compile (JAX's default floor is 1 s)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")


def _main(argv=None) -> int:
    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    _compile_cache()
    from ppl_ident.errors import InputError

    parser = _build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help/--version exit 0
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            return int(args._run(args) or 0)
    except InputError as err:
        print(f"ppl-ident {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ppl-ident {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
