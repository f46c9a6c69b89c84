"""A plain, non-editable install works from any directory (issue 11).

Installs the package (copied out of the source tree, so the build leaves
nothing behind in it) with ``pip install --no-deps --no-build-isolation
--target DIR`` — no registry is contacted — and runs the installed
``xenlu`` console script from an unrelated directory that holds a decoy
``schemas/``: ``schema diff 4.14 4.15`` must read the schemas shipped in
the package. The wheel's metadata carries the classifiers and no project URLs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _setuptools_ok() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77


pytestmark = pytest.mark.skipif(
    not _setuptools_ok(),
    reason="needs setuptools >= 77 in this environment (the 'test' extra; run `make`)",
)


def _source_copy(dest: Path) -> Path:
    src = dest / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(
        ROOT / "xenlu", src / "xenlu", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    return src


def _pip(*args: str, cwd: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_NO_INDEX": "1"},
        timeout=300,
    )


def test_installed_package_finds_its_schemas_from_any_directory(tmp_path: Path) -> None:
    src = _source_copy(tmp_path)
    target = tmp_path / "site"
    _pip("install", "--no-deps", "--no-build-isolation", "--target", str(target), ".", cwd=src)
    shipped = sorted(p.name for p in (target / "xenlu" / "schemas").glob("lu-*.json"))
    assert shipped == sorted(p.name for p in (ROOT / "xenlu" / "schemas").glob("lu-*.json"))
    assert len(shipped) == 10

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "schemas").mkdir(parents=True)
    (elsewhere / "schemas" / "lu-4.14.json").write_text('{"format": "decoy"}')
    # The installed copy only: its directory first, and not the source tree.
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONSAFEPATH": "1"}
    where = subprocess.run(
        [sys.executable, "-c", "import xenlu; print(xenlu.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).parent == target / "xenlu"
    run = subprocess.run(
        [sys.executable, str(target / "bin" / "xenlu"), "schema", "diff", "4.14", "4.15"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.endswith("8 differences, all covered\n") and not run.stderr
    # And a schema on standard input, as the README's pipe does.
    dump = subprocess.run(
        [sys.executable, "-m", "xenlu", "schema", "dump", "--epoch", "4.15"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        check=True,
    ).stdout
    assert json.loads(dump)["epoch"] == "4.15"
    piped = subprocess.run(
        [sys.executable, "-m", "xenlu", "schema", "diff", "4.14", "-"],
        cwd=elsewhere,
        env=env,
        input=dump,
        capture_output=True,
        timeout=120,
    )
    assert piped.returncode == 0 and piped.stdout.decode() == run.stdout


def test_wheel_metadata(tmp_path: Path) -> None:
    src = _source_copy(tmp_path)
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), ".", cwd=src)
    (wheel,) = (tmp_path / "dist").glob("xenlu-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(meta_name).decode())
    assert {f"xenlu/schemas/lu-{v}.json" for v in ("4.11", "4.14", "4.21")} <= names
    assert "xenlu/py.typed" in names
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert any(c.startswith("Operating System ::") for c in classifiers)
    assert any(c.startswith("Topic ::") for c in classifiers)
    assert meta["License-Expression"] == "MIT"
    # The project has no public home yet: no URL is invented.
    assert not meta.get_all("Project-URL") and not meta.get("Home-page")
