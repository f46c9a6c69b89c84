"""The four old import paths users were told about stay, deprecated, for one release.

``xenlu.strategies``, ``xenlu.hostgen``, ``xenlu.lu_stream`` and
``xenlu.validate`` moved into subpackages (docs/architecture.md). Each old
name warns once it is imported and is then the *same module object* as the
new one, so attribute access and monkeypatching through the old name reach
the code that runs.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

OLD_NEW_PUBLIC = [
    ("xenlu.strategies", "xenlu.testing.strategies", "xenlu.testing.strategies"),
    ("xenlu.hostgen", "xenlu.testing.hostgen", "xenlu.testing"),
    ("xenlu.lu_stream", "xenlu.lu.stream", "xenlu.lu"),
    ("xenlu.validate", "xenlu.host.validation", "xenlu.host"),
]


@pytest.mark.parametrize(("old", "new", "public"), OLD_NEW_PUBLIC)
def test_old_path_warns_and_is_the_new_module(old: str, new: str, public: str) -> None:
    pytest.importorskip("hypothesis")  # xenlu.testing.strategies needs the extra
    sys.modules.pop(old, None)  # import afresh: the alias warns when it runs
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated.*import from {public}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert sys.modules[old] is sys.modules[new]
    assert getattr(importlib.import_module("xenlu"), old.rpartition(".")[2]) is module


def test_names_through_the_old_path_are_the_new_ones() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from xenlu.hostgen import make_host
        from xenlu.lu_stream import decode_lu
        from xenlu.validate import validate
    from xenlu.host import validate as validate_new
    from xenlu.lu import decode_lu as decode_new
    from xenlu.testing import make_host as make_new

    assert (make_host, decode_lu, validate) == (make_new, decode_new, validate_new)


def test_monkeypatching_the_old_path_patches_the_new(monkeypatch: pytest.MonkeyPatch) -> None:
    import xenlu.testing.hostgen

    def fake(*args: object, **kwargs: object) -> str:
        return "patched"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        monkeypatch.setattr("xenlu.hostgen.make_host", fake)
    assert xenlu.testing.hostgen.make_host((4, 11)) == "patched"  # type: ignore[arg-type]


def test_the_warning_names_the_new_path_in_a_fresh_interpreter() -> None:
    """A user's first import warns (not only a re-import inside the test process)."""
    code = "import warnings; warnings.simplefilter('error'); import xenlu.lu_stream"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1
    assert "DeprecationWarning: xenlu.lu_stream is deprecated" in r.stderr
    assert "import from xenlu.lu" in r.stderr


def test_the_facades_load_nothing_until_a_name_is_used() -> None:
    """``import xenlu.lu`` is light: the family's modules load on first use of a name."""
    code = (
        "import sys, xenlu.lu, xenlu.host, xenlu.migration;"
        "assert 'xenlu.lu.stream' not in sys.modules, 'lu.stream';"
        "assert 'xenlu.host.validation' not in sys.modules, 'host.validation';"
        "from xenlu.lu import decode_lu; import xenlu.lu.stream;"
        "assert decode_lu is xenlu.lu.stream.decode_lu"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "package",
    [
        "xenlu.core",
        "xenlu.migration",
        "xenlu.xenstore",
        "xenlu.lu",
        "xenlu.feed",
        "xenlu.host",
        "xenlu.testing",
        "xenlu.tools",
        "xenlu.cli",
    ],
)
def test_every_exported_name_resolves(package: str) -> None:
    if package == "xenlu.testing":
        pytest.importorskip("hypothesis")
    module = importlib.import_module(package)
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        module.nonexistent  # noqa: B018
