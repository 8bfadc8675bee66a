"""Argument types shared by the sub-commands: they reject bad values with exit code 2."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def add_table_arguments(p, true_latents: bool = True) -> None:
    """The flags that map a CSV / Parquet table onto ``x``, ``u``, ``z``: declared here once
    for every command that reads data (read back with :func:`table_columns`); without
    ``--z-cols`` for a command that has no use for true latents."""
    g = p.add_argument_group(
        "tables (CSV, Parquet)",
        "how the columns of a .csv / .parquet data file map onto the data contract; a run "
        "records the mapping of its fit, so encode and check reuse it without these flags")
    g.add_argument("--u-col", default=None, metavar="NAME",
                   help="the auxiliary column (default: 'u'): integers are domain labels, "
                        "strings domain names (mapped to labels 0, 1, ... in sorted order, "
                        "the mapping recorded), floats a continuous u")
    g.add_argument("--u-kind", default=None, choices=("labels", "categories", "continuous"),
                   help="how to read the auxiliary column, overriding its type: integer domain "
                        "labels, names of domains, or a continuous variable (default: from "
                        "the column; floats that are all whole numbers are read as labels)")
    g.add_argument("--x-cols", nargs="+", default=None, metavar="NAME",
                   help="the observed columns, space- or comma-separated (default: every "
                        "other numeric column, less integer columns that look like ids or "
                        "counters; the fit names those it leaves out)")
    g.add_argument("--seq-col", default=None, metavar="NAME",
                   help="sequence models, a table with one row per step: the column of "
                        "sequence ids (every sequence the same number of steps)")
    g.add_argument("--time-col", default=None, metavar="NAME",
                   help="with --seq-col: the column that orders the steps of a sequence "
                        "(default: row order)")
    if true_latents:
        g.add_argument("--z-cols", nargs="+", default=None, metavar="NAME",
                       help="true-latent columns, space- or comma-separated, for evaluation "
                            "only (MCC); never used to fit")


def _names(given):
    """Column names given as ``a b c`` or ``a,b,c`` (or both) -> a tuple; None stays None."""
    if given is None:
        return None
    return tuple(name for item in given for name in item.split(",") if name)


def table_columns(args):
    """The :class:`ppl_ident.data.Columns` given by :func:`add_table_arguments`' flags (None
    when none was given)."""
    from ppl_ident.data.tables import Columns

    cols = Columns(u=args.u_col, x=_names(args.x_cols), z=_names(getattr(args, "z_cols", None)),
                   u_kind=getattr(args, "u_kind", None),
                   sequence=getattr(args, "seq_col", None), time=getattr(args, "time_col", None))
    return None if cols.is_empty() else cols
