"""MkDocs hooks: the pages and files the site generates at build time (``mkdocs.yml``,
``hooks:``), so that nothing in ``docs/`` is a hand copy of something kept elsewhere.

- ``reference/cli.md``: ``ppl-ident --help`` and every sub-command's ``--help``, from the
  CLI's own parser (:data:`ppl_ident.cli.COMMANDS`);
- ``tutorials/<script>.md``: one page per script in ``examples/``, from its docstring (the
  NumPy-style sections ``What it shows`` / ``What you should see`` / ``Run it``), its figure
  in ``examples/figures/`` and its whole source;
- ``benchmarks/log.md``: ``benchmarks/README.md`` with its links pointed into the site;
- ``assets/examples/*.png`` and ``assets/benchmarks/**``: the figures those pages show.

A script without a docstring, a figure or a section the page needs stops the build with the
reason instead of writing a thin page.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BENCHMARKS = ROOT / "benchmarks"

#: the example scripts, in the order of the tutorials
TUTORIALS = ["prior_predictive", "identifiable_vs_not", "posterior_analysis",
             "model_comparison", "compare_algorithms", "sequences", "real_data",
             "your_own_data"]


class DocsBuildError(RuntimeError):
    """A generated page cannot be written from its source (say which and why)."""


# --- the CLI reference -----------------------------------------------------------------------

def cli_page() -> str:
    """The command-line reference: the top-level help and each sub-command's, from the
    parser itself (78 columns, so the page does not depend on the terminal)."""
    from ppl_ident.cli import COMMANDS, _build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "78"  # argparse wraps at this width less 2
    try:
        return _cli_markdown(COMMANDS, _build_parser)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def _cli_markdown(COMMANDS, _build_parser) -> str:  # noqa: N803 (the CLI's own names)
    lines = [
        "# Command line",
        "",
        "`ppl-ident` has one sub-command per step of the pipeline. This page is generated",
        "when the site is built, from the parser the command itself uses, so it always",
        "matches the installed version: what follows is exactly what `ppl-ident COMMAND",
        "--help` prints. Bad input ends with a one-paragraph message naming the fix and",
        "exit code 2; see [Resuming and reliability](../how-to/reliability.md).",
        "",
        "## `ppl-ident`",
        "",
        "```text",
        _build_parser([]).format_help().rstrip(),
        "```",
    ]
    for name in COMMANDS:
        parser = _build_parser([name])
        lines += ["", f"## `ppl-ident {name}`", "", "```text",
                  parser.commands[name].format_help().rstrip(), "```"]
    return "\n".join(lines) + "\n"


# --- tutorials from the example scripts ------------------------------------------------------

def _rst_table(block: list[str]) -> list[str]:
    """A reStructuredText simple table (``===`` borders) as a Markdown table; a row whose
    first cell is empty continues the row above."""
    border = block[0]
    spans = [m.span() for m in re.finditer(r"=+", border)]
    rows: list[list[str]] = []
    for line in block[1:]:
        if set(line.strip()) <= {"=", " "}:
            continue
        cells = [line[a:(spans[i + 1][0] if i + 1 < len(spans) else None)].strip()
                 for i, (a, _) in enumerate(spans)]
        if rows and not cells[0]:
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells)]
        else:
            rows.append(cells)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(spans)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows[1:]]
    return out


def _inline(text: str) -> str:
    """reStructuredText inline markup as Markdown: double backquotes become code spans."""
    return re.sub(r"``(.+?)``", r"`\1`", text)


def docstring_markdown(doc: str) -> str:
    """A script's docstring (NumPy-style sections, reStructuredText inline code, ``::``
    literal blocks, simple tables) as Markdown. The first paragraph is the page's lead."""
    lines = doc.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and nxt.strip() and set(nxt.strip()) == {"-"} \
                and len(nxt.strip()) == len(line.strip()):
            out += ["", f"## {line.strip()}", ""]
            i += 2
            continue
        if line.strip().startswith("==") and set(line.strip()) <= {"=", " "}:
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out += [""] + [_inline(r) for r in _rst_table(block)] + [""]
            continue
        if line.rstrip().endswith("::"):
            head = line.rstrip()[:-2].rstrip()
            if head.strip().startswith("Run it"):
                # "Run it::" or "Run it (needs ...)::": a section, with its note
                note = head.strip()[len("Run it"):].strip()
                note = _inline(note.strip("()"))
                out += ["", "## Run it", ""] + ([note[:1].upper() + note[1:] + ":"] if note else [])
            elif head.strip():
                out.append(_inline(head) + ":")
            i += 1
            code = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                code.append(lines[i][4:])
                i += 1
            while code and not code[-1].strip():
                code.pop()
            while code and not code[0].strip():
                code.pop(0)
            out += ["", "```bash", *code, "```", ""]
            continue
        out.append(_inline(line))
        i += 1
    return "\n".join(out).strip() + "\n"


def _examples_readme_section(title: str) -> str:
    """One ``###`` section of ``examples/README.md`` (the measured numbers of a script), up
    to the next fenced block or heading."""
    text = (EXAMPLES / "README.md").read_text()
    start = text.find(f"### {title}")
    if start < 0:
        raise DocsBuildError(f"examples/README.md has no section '### {title}'")
    body = text[start:].split("\n", 1)[1]
    end = min(i for i in (body.find("\n```"), body.find("\n#"), len(body)) if i >= 0)
    return body[:end].strip() + "\n"


#: the script's figure in examples/figures/ and what it shows (its alt text)
FIGURES = {
    "prior_predictive": "prior predictive at initialisation, raw and whitened, against the data",
    "identifiable_vs_not": "Jacobians of the learned-to-true map, iVAE and VAE",
    "posterior_analysis": "calibration of the guide's intervals against the true latents",
    "model_comparison": "held-out log p(x|u) of iVAE and VAE, and their paired difference",
    "compare_algorithms": "MCC against run time for each engine",
    "sequences": "regime posterior against the true regime path",
    "your_own_data": "forest plot from the report",
}


def tutorial_page(name: str) -> str:
    """The tutorial page of ``examples/<name>.py``."""
    path = EXAMPLES / f"{name}.py"
    source = path.read_text()
    doc = ast.get_docstring(ast.parse(source))
    if not doc:
        raise DocsBuildError(f"examples/{name}.py has no module docstring to make its page from")
    lead, _, rest = doc.partition("\n\n")
    title = " ".join(lead.split()).rstrip(".")
    lines = [f"# {_inline(title)}", "",
             f"The script [`examples/{name}.py`](#the-script) uses only the public Python "
             "API. It takes size and seed flags (`--help` lists them) and `--out DIR` "
             f"(default `examples_out/{name}/`), writes its figures and a `summary.json` "
             "there and prints the headline numbers; `tests/test_examples.py` runs it with "
             "tiny arguments in CI.", ""]
    if name in FIGURES:
        figure = EXAMPLES / "figures" / f"{name}.png"
        if not figure.exists():
            raise DocsBuildError(f"examples/figures/{name}.png is missing")
        lines += [f"![{FIGURES[name]}](../assets/examples/{name}.png){{ width=\"620\" }}", ""]
    lines.append(docstring_markdown(rest))
    if name == "real_data":
        lines += ["## Measured", "", _examples_readme_section("Real data")]
    lines += ["## The script", "", f"`examples/{name}.py`, as it is in the repository:", "",
              "```python", source.rstrip(), "```", ""]
    return "\n".join(lines)


# --- the benchmark log -----------------------------------------------------------------------

_ITEM = re.compile(r"^([-*]|\d+\.) ")


def blank_before_lists(text: str) -> str:
    """A blank line before a list that follows a paragraph line directly: GitHub renders
    such a list, Python-Markdown reads it as more of the paragraph."""
    out: list[str] = []
    fence = False
    prev = ""
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fence = not fence
        if (not fence and _ITEM.match(line) and prev.strip() and not _ITEM.match(prev)
                and not prev.startswith((" ", "\t", "|", "#", "<"))):
            out.append("")
        out.append(line)
        prev = line
    return "\n".join(out)


def four_space_nesting(text: str) -> str:
    """Blocks nested in a top-level list item (a sub-list, a table, a later paragraph)
    indented by 4 spaces instead of 2: GitHub nests them at 2, Python-Markdown needs 4."""
    out: list[str] = []
    in_item = nested = prev_blank = fence = loose = False
    extra = 0
    for line in text.split("\n"):
        if not line.strip():
            out.append(line)
            prev_blank = True
            loose = loose or in_item
            continue
        indent = len(line) - len(line.lstrip())
        if _ITEM.match(line) and not fence:
            if loose and not prev_blank:
                out.append("")  # else the item reads as more of the paragraph above it
            in_item, nested, extra, loose = True, False, 0, False
        elif indent == 0 and not fence:
            in_item, nested, extra = False, False, 0
        elif in_item and not fence:
            if _ITEM.match(line[2:]) and indent == 2:
                nested, extra = True, 2
            elif prev_blank and indent >= 2:
                extra = 2
            elif nested and indent >= 4:
                extra = 2
        if line.lstrip().startswith("```"):
            fence = not fence
        out.append(" " * extra + line if in_item and indent >= 2 else line)
        prev_blank = False
    return "\n".join(out)


def benchmark_log_page() -> str:
    """``benchmarks/README.md`` as a page: relative links to its results point at the copies
    the site carries (``assets/benchmarks/``)."""
    text = (BENCHMARKS / "README.md").read_text()

    def relink(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"[a-z]+:|#", target):
            return match.group(0)
        if not (BENCHMARKS / target).exists():
            raise DocsBuildError(f"benchmarks/README.md links to {target}, which is missing")
        return f"{match.group(1)}(../assets/benchmarks/{target})"

    text = re.sub(r"(\]|\!\[[^\]]*\])\(([^)\s]+)\)", relink, text)
    text = four_space_nesting(blank_before_lists(text))
    intro = ("This page is `benchmarks/README.md`, included when the site is built: every "
             "script in `benchmarks/`, how to run it and its latest measured results, each "
             "with its date and machine. The headline tables are collected on "
             "[Benchmarks](index.md).\n\n")
    title, _, body = text.partition("\n")
    return f"{title}\n\n{intro}{body}"


# --- the hook ---------------------------------------------------------------------------------

def _assets() -> dict[str, Path]:
    """Site path -> file, for the figures the pages show."""
    out = {f"assets/examples/{p.name}": p for p in sorted((EXAMPLES / "figures").glob("*.png"))}
    results = BENCHMARKS / "results"
    for p in sorted(results.rglob("*")):
        if p.suffix in (".png", ".csv"):
            out[f"assets/benchmarks/results/{p.relative_to(results).as_posix()}"] = p
    return out


def on_files(files, config):
    """Add the generated pages and the copied figures to the site's files."""
    pages = {"reference/cli.md": cli_page(), "benchmarks/log.md": benchmark_log_page()}
    for name in TUTORIALS:
        pages[f"tutorials/{name}.md"] = tutorial_page(name)
    for src_uri, content in pages.items():
        files.append(File.generated(config, src_uri, content=content))
    for src_uri, path in _assets().items():
        files.append(File.generated(config, src_uri, abs_src_path=str(path)))
    return files
