"""A Griffe extension for the API reference (``mkdocs.yml``: ``extensions``): the package's
docstrings are NumPy style with reStructuredText inline markup, which Markdown does not
read. Before mkdocstrings renders a docstring this turns

- Sphinx roles (``:func:`fit_model```, ``:class:`~ppl_ident.data.Dataset```) into code
  spans (the ``~`` form keeps the last name, as Sphinx shows it);
- a paragraph ending in ``::`` (a literal block follows) into one ending in ``:``, so the
  indented block after it renders as code without a stray colon;
- double backquotes inside a parameter's type (``x : array ``(N, d)````) into plain text,
  since the reference shows the type as code already.

The docstrings themselves are left as they are (they read well in ``help()``).
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:mod|func|class|data|attr|meth|obj|exc|const):`(~?)([^`]+)`")


def _role(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


#: a NumPy-style parameter line, ``name : type``: the type is shown as code already
_PARAM = re.compile(r"(?m)^(\s*\*{0,2}\w[\w, *]* : )(.*)$")


def markdown_inline(text: str) -> str:
    """The docstring text with roles as code spans, ``::`` paragraph ends as ``:``, and no
    double backquotes inside a parameter's type (the reference shows the type as code)."""
    text = _ROLE.sub(_role, text)
    text = _PARAM.sub(lambda m: m.group(1) + m.group(2).replace("``", ""), text)
    text = _returns_types(text)
    return re.sub(r"(?m)(\S)\s*::$", r"\1:", text)


def _returns_types(text: str) -> str:
    """In a Returns or Yields section the entry lines (not indented past the section's
    header) name a type, which the reference shows as code: no double backquotes there."""
    lines = text.split("\n")
    section = None
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if nxt.strip() and set(nxt.strip()) == {"-"} and line.strip():
            section = (line.strip(), len(line) - len(line.lstrip()))
            continue
        if section and section[0] in ("Returns", "Yields") and line.strip() \
                and len(line) - len(line.lstrip()) == section[1] and set(line.strip()) != {"-"}:
            lines[i] = line.replace("``", "")
    return "\n".join(lines)


class RstInline(griffe.Extension):
    """Rewrite each docstring's reStructuredText inline markup as Markdown."""

    def on_object(self, *, obj, **kwargs) -> None:  # noqa: ARG002 (griffe's signature)
        if obj.docstring is not None:
            obj.docstring.value = markdown_inline(obj.docstring.value)
