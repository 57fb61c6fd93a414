"""The shape of the package, read from its source: no import cycle, one home per public
name, and a core that never reaches up into the harness.

The import graph and the ``__all__`` lists are read with :mod:`ast` (no module of apslib
is imported for them); only the last test imports the core, in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "apslib"

# The core: torch and numpy only, imported by `import apslib`, never importing the harness.
CORE = (
    "apslib",
    "apslib.polyphase",
    "apslib.filters",
    "apslib.layers",
    "apslib.fastpaths",
    "apslib.learned",
    "apslib.fourier",
    "apslib.unet",
    "apslib.models",
    "apslib.convert",
    "apslib.metrics",
    "apslib.shifts",
    "apslib.subpixel",
    "apslib.names",
    "apslib.device",
)
# The harness above it: what importing the core must not load.
HARNESS = (
    "apslib.data",
    "apslib.training",
    "apslib.evaluate",
    "apslib.plots",
    "apslib.paper",
    "apslib.notebooks",
    "apslib.io",
)
HARNESS_LIBRARIES = ("matplotlib", "pandas", "h5py", "papermill", "seaborn")
# Each command-line module has its own ``main(argv) -> int``: several functions that share
# a conventional name, not one name exported from several places.
ENTRY_POINT = "main"


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]

    @property
    def where(self) -> str:
        return str(self.path.relative_to(REPO))


@dataclass
class Import:
    target: str  # a module of apslib
    line: int
    lazy: bool  # inside a function


@cache
def modules() -> dict[str, Module]:
    """Every module of apslib by dotted name (a package by its ``__init__.py``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        out[name] = Module(name, path, is_package, ast.parse(path.read_text(), filename=str(path)))
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module name of ``from <...> import``, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str) -> str | None:
    """``name`` if it is a module of apslib, else its longest prefix that is one."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules():
            return ".".join(parts)
        parts.pop()
    return None


@dataclass
class _ImportScan(ast.NodeVisitor):
    module: Module
    include_type_checking: bool = False
    found: list[Import] = field(default_factory=list)
    _depth: int = 0

    def _add(self, target: str, node: ast.AST) -> None:
        if (known := _known(target)) is not None and known != self.module.name:
            self.found.append(Import(known, node.lineno, self._depth > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = _absolute(self.module, node)
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            self._add(sub if sub in modules() else source, node)

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test) and not self.include_type_checking:
            for child in node.orelse:  # the `else:` branch does run
                self.visit(child)
        else:
            self.generic_visit(node)


def imports(module: Module, *, include_type_checking: bool = False) -> list[Import]:
    """The modules of apslib that ``module`` imports, at import time or in a function."""
    scan = _ImportScan(module, include_type_checking)
    scan.visit(module.tree)
    return scan.found


def import_graph() -> dict[str, dict[str, Import]]:
    graph: dict[str, dict[str, Import]] = {}
    for name, module in modules().items():
        edges = graph.setdefault(name, {})
        for imp in imports(module):
            edges.setdefault(imp.target, imp)
    return graph


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def a_cycle(graph: dict[str, dict[str, Import]], component: list[str]) -> list[str]:
    """One cycle through the first module of ``component`` (shortest, breadth first)."""
    inside = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in inside:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle in {component}")


def _describe(graph: dict[str, dict[str, Import]], cycle: list[str]) -> str:
    steps = []
    for a, b in zip(cycle, cycle[1:]):
        imp = graph[a][b]
        where = modules()[a].where
        steps.append(f"    {a} -> {b}  ({where}:{imp.line}{', in a function' if imp.lazy else ''})")
    return "\n".join(steps)


def test_the_scan_sees_every_package():
    names = set(modules())
    assert {"apslib", "apslib.unet", "apslib.convert", "apslib.data", "apslib.evaluate"} <= names
    assert {"apslib.plots", "apslib.training"} <= names
    graph = import_graph()
    assert "apslib.unet" in graph["apslib"], "import apslib imports apslib.unet"


def test_relative_imports_resolve_to_submodules_or_the_package():
    source = "from . import style\nfrom . import COLUMN_WIDTH\nfrom .. import io\nfrom ..data import common"
    nodes = ast.parse(source).body
    plots = modules()["apslib.plots"]
    assert [_absolute(plots, n) for n in nodes] == ["apslib.plots", "apslib.plots", "apslib", "apslib.data"]
    inside = Module("apslib.plots.x", PACKAGE / "plots" / "x.py", False, ast.parse(source))
    assert [_absolute(inside, n) for n in nodes] == ["apslib.plots", "apslib.plots", "apslib", "apslib.data"]
    targets = [i.target for i in imports(inside)]
    assert targets == ["apslib.plots.style", "apslib.plots", "apslib.io", "apslib.data.common"]
    lazy = "def f():\n    from ..paper import side_by_side\nif TYPE_CHECKING:\n    from .. import unet\n"
    found = imports(Module("apslib.plots.x", inside.path, False, ast.parse(lazy)))
    assert [(i.target, i.lazy) for i in found] == [("apslib.paper", True)]


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    components = strongly_connected(graph)
    report = []
    for component in components:
        inner = [
            f"      {a} -> {b}  ({modules()[a].where}:{graph[a][b].line})"
            for a in component
            for b in sorted(graph[a])
            if b in component
        ]
        report.append(
            f"  {', '.join(component)}\n    for example:\n{_describe(graph, a_cycle(graph, component))}"
            "\n    every import inside it:\n" + "\n".join(inner)
        )
    assert not components, "import cycles (function-level imports included):\n" + "\n".join(report)


def test_the_cycle_finder_finds_cycles():
    edge = Import("", 1, False)
    graph = {"a": {"b": edge}, "b": {"c": edge}, "c": {"a": edge, "d": edge}, "d": {}, "e": {"d": edge}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert a_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert strongly_connected({"a": {"b": edge}, "b": {}}) == []


def _all_names(module: Module) -> list[str] | None:
    for node in module.tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = ast.literal_eval(node.value)
            return list(value)
    return None


def _top_level(body: list[ast.stmt]):
    """Module-level statements, looking into if/try/with blocks (not into functions)."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.With, ast.For, ast.While)):
            yield from _top_level(node.body + getattr(node, "orelse", []))
        elif isinstance(node, ast.Try):
            yield from _top_level(
                node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
            )


def _bound(target: ast.expr):
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _bound(element)
    elif isinstance(target, ast.Starred):
        yield from _bound(target.value)


@dataclass
class Bindings:
    defined: dict[str, ast.stmt] = field(default_factory=dict)  # def, class, assignment
    imported: dict[str, str] = field(default_factory=dict)  # name -> absolute source module


def bindings(module: Module) -> Bindings:
    out = Bindings()
    for node in _top_level(module.tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.defined[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                out.defined.update(dict.fromkeys(_bound(target), node))
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            out.defined.update(dict.fromkeys(_bound(node.target), node))
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                out.imported[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                out.imported[alias.asname or alias.name.split(".")[0]] = alias.name
    return out


def violations_of_one_home(mods: dict[str, Module] | None = None) -> list[str]:
    """Every breach of "one home per name" in ``mods`` (default: apslib), one line each."""
    mods = modules() if mods is None else mods
    found = []
    listed_in: dict[str, list[str]] = {}
    for name, module in sorted(mods.items()):
        names = _all_names(module)
        bound = bindings(module)
        if "__getattr__" in bound.defined:
            found.append(f"{module.where}: defines a module-level __getattr__ (a redirect)")
        for alias, node in bound.defined.items():
            value = getattr(node, "value", None)
            if (
                not alias.startswith("_")
                and isinstance(value, ast.Name)
                and value.id in bound.imported
                and value.id != alias
            ):
                found.append(
                    f"{module.where}:{node.lineno}: {alias} is an alias of {bound.imported[value.id]}; "
                    "use that name"
                )
        if names is None:
            continue
        if len(set(names)) != len(names):
            found.append(f"{module.where}: __all__ lists a name twice")
        for public in names:
            if public in bound.defined:
                if not module.is_package:
                    listed_in.setdefault(public, []).append(module.where)
                continue
            source = bound.imported.get(public)
            if not module.is_package:
                found.append(
                    f"{module.where}: {public} is in __all__ but "
                    + (f"imported from {source}: list it only in its home" if source else "not defined here")
                )
                continue
            if source is None:
                found.append(f"{module.where}: {public} is in __all__ but neither defined nor imported here")
                continue
            if source in mods and source.startswith(name + "."):
                continue  # a submodule listed by its package
            home, _, original = source.rpartition(".")
            if home not in mods or not home.startswith(name + "."):
                found.append(
                    f"{module.where}: {public} comes from {home}, not a submodule of {name}: "
                    "list it only in its home"
                )
                continue
            if original not in (_all_names(mods[home]) or []):
                found.append(
                    f"{module.where}: {public} is listed here but not in the __all__ of its home "
                    f"{mods[home].where}"
                )
    for public, where in sorted(listed_in.items()):
        if len(where) > 1 and public != ENTRY_POINT:
            found.append(f"{public} is in the __all__ of {len(where)} modules: {', '.join(where)}")
    return found


def _fake(name: str, source: str, *, package: bool = False) -> Module:
    """A module of apslib that exists only here, for testing the checks themselves."""
    parts = name.split(".")[1:]
    path = PACKAGE.joinpath(*parts, "__init__.py") if package else PACKAGE.joinpath(*parts).with_suffix(".py")
    return Module(name, path, package, ast.parse(source))


def test_the_home_check_finds_every_kind_of_breach():
    mods = {
        m.name: m
        for m in (
            _fake(
                "apslib.p",
                "from .a import f, g\nfrom ..q import h\n__all__ = ['f', 'g', 'h', 'a']\n",
                package=True,
            ),
            _fake(
                "apslib.p.a",
                "from ..q import h\ndef f(): pass\ndef g(): pass\nold = h\n__all__ = ['f', 'h']\n",
            ),
            _fake("apslib.q", "def h(): pass\ndef f(): pass\n__all__ = ['h', 'f']\n"),
            _fake("apslib.r", "def __getattr__(name): raise AttributeError(name)\n"),
        )
    }
    found = "\n".join(violations_of_one_home(mods))
    assert "apslib/p/a.py: h is in __all__ but imported from apslib.q.h" in found
    assert "apslib/p/a.py:4: old is an alias of apslib.q.h" in found
    assert "apslib/p/__init__.py: h comes from apslib.q, not a submodule of apslib.p" in found
    assert "apslib/p/__init__.py: g is listed here but not in the __all__ of its home apslib/p/a.py" in found
    assert "apslib/r.py: defines a module-level __getattr__" in found
    assert "f is in the __all__ of 2 modules: apslib/p/a.py, apslib/q.py" in found
    assert "apslib/p/__init__.py: a is in __all__" in found  # `a` was never imported here
    assert len(found.splitlines()) == 7, found


def test_every_public_name_has_one_home():
    found = violations_of_one_home()
    assert not found, "names exported outside their home:\n  " + "\n  ".join(found)


def _is_harness(name: str) -> bool:
    return any(name == h or name.startswith(h + ".") for h in HARNESS)


def _is_core(name: str) -> bool:
    return name in CORE or any(name.startswith(c + ".") for c in CORE if c != "apslib")


def test_the_core_modules_import_no_harness_module():
    found = []
    for name, module in sorted(modules().items()):
        if not _is_core(name):
            continue
        for imp in imports(module, include_type_checking=True):
            if not _is_core(imp.target):
                found.append(f"{module.where}:{imp.line} imports {imp.target}")
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                top = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                top = {(node.module or "").split(".")[0]}
            else:
                continue
            if bad := top & set(HARNESS_LIBRARIES):
                found.append(f"{module.where}:{node.lineno} imports {sorted(bad)}")
    assert not found, "the core imports beyond itself (a new core module belongs in CORE):\n  " + "\n  ".join(
        found
    )


def test_importing_the_core_loads_no_harness():
    code = (
        "import json, sys\n"
        + "".join(f"import {name}\n" for name in CORE)
        + "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.splitlines()[-1])
    harness = sorted(m for m in loaded if _is_harness(m))
    libraries = sorted(m for m in loaded if m.split(".")[0] in HARNESS_LIBRARIES)
    assert not harness, f"importing the core loads harness modules: {harness}"
    assert not libraries, f"importing the core loads harness libraries: {libraries}"
