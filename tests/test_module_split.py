"""The record modules split by meaning (issue 12): every name stays importable
from its old module as the very same object, each new module's examples run,
and inside ``xenlu/`` nothing imports a moved name through the old module."""

from __future__ import annotations

import ast
import doctest
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import xenlu.lu.host_records as lu_host_records
import xenlu.lu.io_records as lu_io_records
import xenlu.lu.memory_records as lu_memory_records
import xenlu.lu.records as lu_records
import xenlu.lu.values as lu_values
import xenlu.migration.libxc as libxc
import xenlu.migration.libxc_page_data as libxc_page_data
import xenlu.migration.libxc_records as libxc_records
import xenlu.migration.libxl as libxl
import xenlu.migration.libxl_records as libxl_records
import xenlu.tools.jsonform as jsonform
import xenlu.tools.jsonform_text as jsonform_text

ROOT = Path(__file__).resolve().parents[1] / "xenlu"

#: old module -> the modules its names moved to.
SPLITS: dict[ModuleType, tuple[ModuleType, ...]] = {
    lu_records: (lu_values, lu_host_records, lu_memory_records, lu_io_records),
    libxc: (libxc_records, libxc_page_data),
    libxl: (libxl_records,),
    jsonform: (jsonform_text,),
}
_NEW = [m for news in SPLITS.values() for m in news]


def _defined(module: ModuleType) -> set[str]:
    """Public names a module's own top level defines (not the ones it imports)."""
    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


# Codec pieces that were private before the split: public in their new module
# (imported across modules), no part of the old module's API.
_NOT_REEXPORTED = {
    "accept_page_data",
    "decode_page_data",
    "encode_page_data",
    "expect_value",
    "u64_bytes",
    "u64_view",
}


@pytest.mark.parametrize("old", list(SPLITS), ids=lambda m: m.__name__)
def test_old_module_reexports_every_moved_name(old: ModuleType) -> None:
    checked = 0
    for new in SPLITS[old]:
        for name in sorted(_defined(new) - _NOT_REEXPORTED):
            assert getattr(old, name) is getattr(new, name), (old.__name__, name)
            assert name in old.__all__, (old.__name__, name)
            checked += 1
    assert checked >= 4


def test_each_declaration_lives_in_one_module() -> None:
    """A class moved, not copied: the old module defines none of the new ones' names."""
    for old, news in SPLITS.items():
        own = _defined(old)
        for new in news:
            assert not own & _defined(new), (old.__name__, new.__name__, own & _defined(new))
            for name in _defined(new):
                obj = getattr(new, name)
                if inspect.isclass(obj) or inspect.isfunction(obj):
                    assert obj.__module__ == new.__name__, (name, obj.__module__)


@pytest.mark.parametrize("module", _NEW, ids=lambda m: m.__name__)
def test_examples_of_the_new_modules_run(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_xenlu_imports_moved_names_from_their_new_home() -> None:
    moved = {
        old.__name__: set().union(*(_defined(new) for new in news)) for old, news in SPLITS.items()
    }
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        module = "xenlu." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
        # The old module itself re-exports them; a package's facade (its
        # __init__) names each module's __all__.
        if module in moved or path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in moved:
                found += [
                    f"{module}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name in moved[node.module]
                ]
    assert not found, found
