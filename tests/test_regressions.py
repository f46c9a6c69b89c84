"""Replay every fuzz regression input (tests/regressions/<target>-*.bin).

Each input once crashed a fuzz target; it must now pass that target's
invariant (fuzz/common.py, the same code the fuzz targets run): only
XenLUError escapes, the decoder returns within seconds, and what decodes
re-encodes byte-exactly. With no files, the replay test is skipped.
"""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
REGRESSIONS = Path(__file__).resolve().parent / "regressions"
FILES = sorted(REGRESSIONS.glob("*.bin"))

#: Inputs whose fix is still open in code owned elsewhere: expected to fail,
#: strictly, so the test turns red once the fix lands (then drop the entry).
OPEN: dict[str, str] = {}


def _common() -> ModuleType:
    name = "xenlu_fuzz_common"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "fuzz" / "common.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_regression_names_are_known() -> None:
    targets = set(_common().CHECKS)
    for p in FILES:
        assert p.name.split("-", 1)[0] in targets, f"{p.name}: expected <target>-<what>.bin"
    assert set(OPEN) <= {p.name for p in FILES}, "OPEN names a file that does not exist"


PARAMS = [
    pytest.param(
        p,
        id=p.name,
        marks=[pytest.mark.xfail(strict=True, reason=OPEN[p.name])] if p.name in OPEN else [],
    )
    for p in FILES
]


@pytest.mark.skipif(not FILES, reason="no fuzz regression inputs yet")
@pytest.mark.parametrize("path", PARAMS)
def test_regression_input(path: Path) -> None:
    checks = _common().CHECKS
    target = path.name.split("-", 1)[0]
    if target == "validate":
        pytest.importorskip("xenlu.host.validation")
    if target == "handover":
        pytest.importorskip("xenlu.lu.handover")

    def hang(signum: int, frame: Any) -> None:
        raise AssertionError(f"{path.name}: still running after 10 s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(10)
    try:
        checks[target](path.read_bytes())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
