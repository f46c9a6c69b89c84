"""Minimise a crashing fuzz input with plain delta debugging (no libFuzzer needed).

Usage: ``python fuzz/minimize.py <target> <crash-file> [-o out.bin]``

The input is shrunk while the target's invariant (``common.CHECKS[target]``)
still fails with the same exception type raised from the same place: chunks
are deleted (halving the chunk size down to one byte), then bytes are zeroed.
Prints the traceback of the minimised input.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from common import CHECKS  # noqa: E402

from xenlu.core.errors import XenLUError  # noqa: E402


def signature(check: Callable[[bytes], None], data: bytes) -> tuple[str, str, int] | None:
    """(exception type, file, line) of the failure, or None when the input passes."""
    try:
        check(data)
    except XenLUError:
        return None
    except Exception as exc:  # the failure being minimised
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return (type(exc).__name__, tb.filename, tb.lineno or 0)
    return None


def _records(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every whole record found by framing from offset 0 (or 40, libxc)."""
    out: list[tuple[int, int]] = []
    for base in (0, 40):
        pos = base
        found = []
        while pos + 8 <= len(data):
            length = int.from_bytes(data[pos + 4 : pos + 8], "little")
            end = pos + 8 + length + (-length & 7)
            if end > len(data):
                break
            found.append((pos, end))
            pos = end
        if len(found) > len(out):
            out = found
    return out


def minimize(check: Callable[[bytes], None], data: bytes, budget: int = 20000) -> bytes:
    want = signature(check, data)
    if want is None:
        raise SystemExit("the input does not fail: nothing to minimise")
    runs = 0
    # Whole records first (8-byte framed records, as in LU and libxc streams).
    progress = True
    while progress and runs < budget:
        progress = False
        for start, end in reversed(_records(data)):
            cand = data[:start] + data[end:]
            runs += 1
            if signature(check, cand) == want:
                data = cand
                progress = True
                break
    chunk = max(1, len(data) // 2)
    while chunk >= 1 and runs < budget:
        i = 0
        changed = False
        while i < len(data) and runs < budget:
            cand = data[:i] + data[i + chunk :]
            runs += 1
            if signature(check, cand) == want:
                data = cand
                changed = True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    for i in range(len(data)):
        if runs >= budget:
            break
        if data[i]:
            cand = data[:i] + b"\0" + data[i + 1 :]
            runs += 1
            if signature(check, cand) == want:
                data = cand
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", choices=sorted(CHECKS))
    ap.add_argument("crash", type=Path)
    ap.add_argument("-o", "--out", type=Path)
    ap.add_argument("--budget", type=int, default=20000, help="most inputs to try")
    args = ap.parse_args(argv)
    check = CHECKS[args.target]
    data = args.crash.read_bytes()
    small = minimize(check, data, args.budget)
    out = args.out or args.crash.with_name(args.crash.name + ".min")
    out.write_bytes(small)
    print(f"{len(data)} -> {len(small)} bytes: {out}")
    try:
        check(small)
    except Exception:
        traceback.print_exc()
    return 0


if __name__ == "__main__":
    sys.exit(main())
