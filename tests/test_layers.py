"""The package's import graph: no circle, and no import from a lower layer to a higher one.

Imports are read with ``ast`` from every module, function-level ones included, so a circle
cannot hide behind an import moved into a function. The layers are those of
``ppl_ident/__init__.py`` (and the design card); a module may import its own layer and below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ppl_ident"

#: bottom to top; a module belongs to the longest prefix listed
LAYERS = [
    ("ppl_ident._version", "ppl_ident.errors", "ppl_ident.files", "ppl_ident.pytrees",
     "ppl_ident.arviz_compat"),
    ("ppl_ident.data",),
    ("ppl_ident.ops",),
    ("ppl_ident.diagnostics",),
    ("ppl_ident.families",),
    ("ppl_ident.inference",),
    ("ppl_ident.settings", "ppl_ident.workflow", "ppl_ident.evidence"),
    ("ppl_ident.reporting",),
    ("ppl_ident.harness",),
    ("ppl_ident.cli",),
    ("ppl_ident",),  # the package's public face re-exports from every layer
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports (``from a.b import c`` -> ``a.b.c`` when that is a
    module, else ``a.b``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "ppl_ident":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "ppl_ident")
    return out


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def layer(module: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


#: the modules of ``ppl_ident.workflow``, one per job, in the order they may import each other
#: (a module imports only those before it, never the package that re-exports them all)
WORKFLOW_ORDER = ["ppl_ident.workflow.fitted", "ppl_ident.workflow.build",
                  "ppl_ident.workflow.rundir", "ppl_ident.workflow.fitting",
                  "ppl_ident.workflow.checks", "ppl_ident.workflow.export"]


def test_every_module_has_a_layer():
    assert all(layer(m) is not None for m in MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_higher_layer(module):
    upward = sorted(t for t in GRAPH[module] if layer(t) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports higher layers: {upward}"


def test_workflow_modules_import_in_job_order():
    assert sorted(m for m in MODULES if m.startswith("ppl_ident.workflow.")) == \
        sorted(WORKFLOW_ORDER)
    for i, module in enumerate(WORKFLOW_ORDER):
        inside = {t for t in GRAPH[module] if t == "ppl_ident.workflow"
                  or t.startswith("ppl_ident.workflow.")}
        assert inside <= set(WORKFLOW_ORDER[:i]), f"{module} imports {sorted(inside)}"


def _cycles(graph: dict) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def test_no_import_circle():
    assert _cycles(GRAPH) == []


#: the distributions of ArviZ 0.23 and 1.x (``arviz`` and its parts)
ARVIZ_PACKAGES = {"arviz", "arviz_base", "arviz_stats", "arviz_plots"}
#: the one module that may import them
ARVIZ_OWNER = "ppl_ident.arviz_compat"


def _third_party(path: Path) -> set[str]:
    """The top-level names of every absolute import in ``path``, function-level ones included."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
    return out


def _arviz_importers(modules: dict[str, Path]) -> list[str]:
    return sorted(m for m, path in modules.items()
                  if m != ARVIZ_OWNER and _third_party(path) & ARVIZ_PACKAGES)


def test_only_the_compat_module_imports_arviz():
    # every difference between ArviZ 0.23 and 1.x lives in ppl_ident/arviz_compat.py
    assert ARVIZ_OWNER in MODULES and _third_party(MODULES[ARVIZ_OWNER]) & ARVIZ_PACKAGES
    assert _arviz_importers(MODULES) == []


def test_the_arviz_check_finds_an_import(tmp_path):
    # the check above can fail: a module importing arviz in a function is found
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from arviz_stats.base import array_stats\n")
    assert _arviz_importers({**MODULES, "ppl_ident.planted": planted}) == ["ppl_ident.planted"]


def test_the_checker_finds_a_circle_and_an_upward_import():
    # the checks above can fail: a planted circle and a planted upward import are found
    planted = {**GRAPH, "ppl_ident.data.io": GRAPH["ppl_ident.data.io"] | {"ppl_ident.cli"},
               "ppl_ident.cli": GRAPH["ppl_ident.cli"] | {"ppl_ident.data.io"}}
    assert any("ppl_ident.data.io" in c and "ppl_ident.cli" in c for c in _cycles(planted))
    assert layer("ppl_ident.cli") > layer("ppl_ident.data.io")


#: The subpackages of the families (a family's internals); the shared modules beside them
#: (``base``, ``guides``, ``predict``) and the registry are for everyone.
FAMILY_INTERNALS = ("ppl_ident.families.iid", "ppl_ident.families.sequence")
#: Modules outside ``ppl_ident.families`` that may import a family's internals: re-exports of
#: release 0.1's public names, and the choices of the settings one family declares.
FAMILY_INTERNALS_ALLOWED = {
    "ppl_ident.workflow": {"ppl_ident.families.iid.inputs"},
    "ppl_ident.inference": {"ppl_ident.families.iid.checks"},
    "ppl_ident.settings": {"ppl_ident.families.sequence.build",
                           "ppl_ident.families.sequence.model"},
}


def _outside_the_families() -> list[str]:
    return sorted(m for m in MODULES if m != "ppl_ident.families"
                  and not m.startswith("ppl_ident.families."))


def test_nothing_outside_the_families_imports_a_familys_internals():
    # the rest of the package asks the registry (family_of) and the ModelFamily methods
    for module in _outside_the_families():
        found = {t for t in GRAPH[module] if t.startswith(FAMILY_INTERNALS)}
        assert found <= FAMILY_INTERNALS_ALLOWED.get(module, set()), \
            f"{module} imports {sorted(found)}"


def _is_spec_config(node) -> bool:
    """``spec.config`` or ``<anything>.spec.config``."""
    return (isinstance(node, ast.Attribute) and node.attr == "config" and (
        (isinstance(node.value, ast.Name) and node.value.id == "spec")
        or (isinstance(node.value, ast.Attribute) and node.value.attr == "spec")))


def _spec_config_reads(path: Path) -> list[int]:
    """Lines that read an entry of a model spec's ``config`` dict (``spec.config[...]``,
    ``spec.config.get(...)``) or bind the dict to a name; passing it whole to the family
    that wrote it (``family.templates(spec.config)``) is not a read."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Subscript) and _is_spec_config(node.value):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "get" and _is_spec_config(node.func.value):
            lines.append(node.lineno)
        elif isinstance(node, ast.Assign) and _is_spec_config(node.value):
            lines.append(node.lineno)
    return lines


def test_nothing_outside_the_families_reads_a_specs_config():
    # a model's behaviour is asked of its ModelSpec's typed fields or of its family
    reads = {m: _spec_config_reads(MODULES[m]) for m in _outside_the_families()}
    assert {m: lines for m, lines in reads.items() if lines} == {}


def test_the_config_check_finds_a_read(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("def f(fitted):\n    cfg = fitted.spec.config\n"
                       "    return fitted.spec.config['flow'] or spec.config.get('flow')\n")
    assert _spec_config_reads(planted) == [2, 3, 3]
