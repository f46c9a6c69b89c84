#!/usr/bin/env python3
"""Fuzz target: the hand-over reader ``xenlu.lu.handover.read_handover`` (LU spec §5).

The input is laid into a 3 MiB memory image (``common.lay_image``): its first
4096 bytes are the breadcrumb page at the 2 MiB LU bootmem at address 0, the
rest lands at 2 MiB, where the seeds' MFN array and data pages are.

Invariant: ``read_handover`` (with ``(start, size)`` and with
``liveupdate=`` text) either returns a stream or raises a
:class:`~xenlu.core.errors.XenLUError` — never another exception, never a hang,
never unbounded memory.

Run: ``python fuzz/fuzz_handover.py fuzz/corpus/handover fuzz/seeds/handover -max_total_time=60``.
"""

import sys

import atheris

with atheris.instrument_imports(include=["xenlu"]):
    import xenlu.core.registry

    xenlu.core.registry._load()  # the record modules, instrumented too
    try:
        import xenlu.lu.handover
    except ImportError:  # pragma: no cover - the hand-over module is another engineer's
        print("xenlu.lu.handover is not available: nothing to fuzz", file=sys.stderr)
        sys.exit(0)
    from common import IMAGE_SIZE, check_handover

IMAGE = bytearray(IMAGE_SIZE)


def TestOneInput(data: bytes) -> None:
    check_handover(data, IMAGE)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
