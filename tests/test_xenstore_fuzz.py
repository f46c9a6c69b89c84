"""The xenstore fuzz target's invariant, run without atheris on mutated golden streams."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
_spec = importlib.util.spec_from_file_location("fuzz_xenstore", ROOT / "fuzz" / "fuzz_xenstore.py")
assert _spec is not None and _spec.loader is not None
fuzz_xenstore = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_xenstore)
GOLDEN = sorted((ROOT / "tests" / "golden" / "xenstore").glob("*.xs"))


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_and_every_truncation(path: Path) -> None:
    data = path.read_bytes()
    for cut in range(len(data) + 1):
        fuzz_xenstore.check_xenstore(data[:cut])


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_every_octet_changed(path: Path) -> None:
    data = path.read_bytes()
    for i in range(len(data)):
        for v in (0xFF, data[i] ^ 0x01):
            fuzz_xenstore.check_xenstore(data[:i] + bytes([v]) + data[i + 1 :])


def test_huge_lengths_do_not_allocate() -> None:
    # len and sub-lengths at their maximum: refused from the header, nothing allocated.
    head = b"xenstore" + struct.pack(">II", 2, 0)
    for rtype in range(10):
        fuzz_xenstore.check_xenstore(head + struct.pack("<II", rtype, 0xFFFFFFF8) + bytes(64))
