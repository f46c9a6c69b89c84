"""House rule (issue 12, item 4): no module of ``xenlu`` uses another module's
private names.

A name that starts with one underscore is its module's own business. What
another module needs becomes a public name of the module that owns it.
The one exception is a package importing its own private submodules (the
``strategies`` package its ``_records``, ``_hosts``, …): those modules are
the package's inside. Importing a public name *from* a private module
(``from xenlu.host.validation._index import FrameIndex``) is about modules, not
names, and is allowed.

The check reads the source (``ast``), so it sees imports inside functions
and under ``TYPE_CHECKING`` too: ``from xenlu.m import _x`` and ``m._x`` on
a module bound by an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "xenlu"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module or package of the source tree."""
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts.pop()
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every use of another module's private name in ``source`` (the text of
    ``module``), as ``line: what``.

    >>> violations("from xenlu.cli.app import _decode", "xenlu.cli.demo")
    ['1: from xenlu.cli.app import _decode']
    """
    tree = ast.parse(source)
    found: list[str] = []
    bound: dict[str, str] = {}  # local name -> the xenlu module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source_mod = _absolute(node, module, is_package)
            if not _inside(source_mod, "xenlu"):
                continue
            for alias in node.names:
                target = f"{source_mod}.{alias.name}"
                if _is_module(target):
                    bound[alias.asname or alias.name] = target
                if not _private(alias.name) or source_mod == module:
                    continue
                if _is_module(target) and _inside(module, source_mod):
                    continue  # a package importing its own private submodule
                found.append(f"{node.lineno}: from {source_mod} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _inside(alias.name, "xenlu"):
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
    for node in ast.walk(tree):
        # ``m._x``, ``xenlu.cli.app._decode``: a chain that starts at a name an
        # import bound to a module.
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
        ):
            _check_chain(tree, node, bound[node.value.id], module, found)
    return sorted(set(found), key=lambda s: (int(s.split(":")[0]), s))


def _check_chain(
    tree: ast.AST, first: ast.Attribute, dotted: str, module: str, found: list[str]
) -> None:
    """Follow ``first`` (``m.a``) outwards through ``.b.c`` while each step is
    a module; the first private step that is not a module is a violation."""
    outer: dict[int, ast.Attribute] = {
        id(n.value): n
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute)
    }
    node: ast.Attribute | None = first
    while node is not None:
        target = f"{dotted}.{node.attr}"
        if _is_module(target):
            dotted = target
            node = outer.get(id(node))
            continue
        if _private(node.attr) and dotted != module:
            found.append(f"{node.lineno}: {dotted}.{node.attr}")
        return


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_checker_sees_each_form() -> None:
    """The check finds the forms it is for, and lets the allowed ones pass."""
    bad = (
        "from xenlu.cli.app import _decode\n"
        "from xenlu.cli import app as cli\n"
        "import xenlu.tools.cgen\n"
        "import xenlu.tools.show as show\n"
        "def f():\n"
        "    from xenlu.cli.compat import _fail\n"
        "    return cli._summary, xenlu.tools.cgen._blocks, show._private\n"
    )
    got = violations(bad, "xenlu.cli.demo")
    assert got == [
        "1: from xenlu.cli.app import _decode",
        "6: from xenlu.cli.compat import _fail",
        "7: xenlu.cli.app._summary",
        "7: xenlu.tools.cgen._blocks",
        "7: xenlu.tools.show._private",
    ]
    allowed = (
        "from xenlu.testing.strategies import _records\n"
        "from . import _hosts\n"
        "from xenlu.host.validation._index import FrameIndex\n"
        "from xenlu.host._compat_model import Model\n"
        "x = _records.records\n"
    )
    assert violations(allowed, "xenlu.testing.strategies", is_package=True) == []
    # Outside its package, the private submodule is a private name.
    assert violations(
        "from xenlu.testing.strategies import _xenstore", "xenlu.testing.strategies_xenstore"
    ) == ["1: from xenlu.testing.strategies import _xenstore"]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_uses_another_modules_private_names(path: Path) -> None:
    got = violations(
        path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py"
    )
    assert got == [], f"{path.relative_to(ROOT)} uses private names of other modules: {got}"
