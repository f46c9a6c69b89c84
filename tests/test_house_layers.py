"""The house's layers (docs/architecture.md): no import cycles, lazy ones included.

An AST scan of every import in ``xenlu/`` -- at module level and inside
functions, plus the module names passed as strings to
``importlib.import_module`` (the format table, the CLI's command list) --
builds the import graph twice: between modules and between packages. Neither
may have a cycle, and a package may import only from its own layer or the
layers below it. Imports under ``if TYPE_CHECKING:`` never run and are left
out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
XENLU = ROOT / "xenlu"

# Lowest first. A package may import from its own layer or any layer below.
# "api" is xenlu/api.py; "top" the facade (xenlu/__init__.py and the
# deprecated aliases of the old paths); "main" is xenlu/__main__.py.
LAYERS: list[set[str]] = [
    {"core"},
    {"migration", "xenstore"},
    {"lu"},
    {"api"},
    {"feed", "host"},
    {"testing", "tools"},
    {"top"},
    {"cli"},
    {"main"},
]
PACKAGES = set().union(*LAYERS) - {"api", "top", "main"}

# Cycles between modules of one package that this round's other branches
# remove. The module-cycle check ignores these edges; the package checks
# and the layer check see them.
#: Module pairs of one package allowed to import each other (none left: the
#: feed machines take their events from feed.events, the CLI's listings
#: live in cli.listing). Add a pair only with the reason beside it.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(XENLU.rglob("*.py"))}


def package_of(module: str) -> str:
    """The layer unit of a module: its subpackage, ``api``, or ``top``."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in PACKAGES:
        return parts[1]
    if len(parts) > 1 and parts[1] in ("api", "__main__"):
        return "api" if parts[1] == "api" else "main"
    return "top"


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for child in node.body:  # type: ignore[union-attr]
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _resolve(name: str) -> str | None:
    """The xenlu module ``name`` loads (a module, or its nearest package)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import ``module`` can execute."""
    tree = ast.parse(MODULES[module].read_text())
    skip = _type_checking_blocks(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name)
                if target:
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                target = _resolve(f"{node.module}.{alias.name}")
                if target:
                    yield target, node.lineno
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in MODULES
            and "." in node.value  # not "xenlu" alone: a resource or prog name
            and node.value != module
        ):
            yield node.value, node.lineno  # importlib.import_module("xenlu....")


def _graph() -> dict[str, dict[str, list[str]]]:
    graph: dict[str, dict[str, list[str]]] = {m: {} for m in MODULES}
    for module in MODULES:
        for target, line in imports_of(module):
            if target != module:
                graph[module].setdefault(target, []).append(f"{MODULES[module].name}:{line}")
    return graph


GRAPH = _graph()


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, or None (iterative depth-first search)."""
    state: dict[str, int] = {}
    for start in sorted(edges):
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(sorted(edges.get(nxt, ())))))
                path.append(nxt)
    return None


def _module_edges() -> dict[str, set[str]]:
    """The module graph, less the edges from a package to its own modules.

    A package's ``__init__`` names its modules (its lazy facade), and each
    module's import makes Python load the package first; that parent-child
    pair is how packages work, not a cycle between modules.
    """
    return {
        m: {t for t in targets if not t.startswith(m + ".") and (m, t) not in KNOWN_CYCLE_EDGES}
        for m, targets in GRAPH.items()
    }


def test_no_cycle_between_modules() -> None:
    cycle = _cycle(_module_edges())
    assert cycle is None, "import cycle between modules: " + " -> ".join(cycle or [])


def test_no_cycle_between_packages() -> None:
    edges: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        a = package_of(module)
        edges.setdefault(a, set()).update(package_of(t) for t in targets if package_of(t) != a)
    cycle = _cycle(edges)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle or [])


def _layer(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def test_every_package_has_a_layer() -> None:
    assert {package_of(m) for m in MODULES} <= set().union(*LAYERS)
    assert {p.name for p in XENLU.iterdir() if (p / "__init__.py").exists()} - {"schemas"} == (
        PACKAGES
    )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_respect_the_layers(module: str) -> None:
    here = package_of(module)
    upward = [
        f"{module} imports {target} ({', '.join(where)}): {here} is below {package_of(target)}"
        for target, where in GRAPH[module].items()
        if _layer(package_of(target)) > _layer(here)
    ]
    assert not upward, "\n".join(upward)


def test_the_scan_sees_lazy_and_string_imports() -> None:
    """The scan is not vacuous: it finds an import inside a function and a module string."""
    assert "xenlu.core.errors" in GRAPH["xenlu.api"]
    lazy = [
        (m, t)
        for m in MODULES
        for node in ast.walk(ast.parse(MODULES[m].read_text()))
        if isinstance(node, ast.FunctionDef)
        for inner in ast.walk(node)
        if isinstance(inner, ast.ImportFrom) and inner.module and inner.module.startswith("xenlu")
        for t in [inner.module]
    ]
    assert lazy, "no import inside a function found: the scan would miss lazy imports"
    assert any(t.startswith("xenlu.migration") for t in GRAPH["xenlu.api"])
