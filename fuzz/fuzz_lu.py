#!/usr/bin/env python3
"""Fuzz target: the Live Update stream decoder (xenlu.lu.stream).

Invariant: for any input, ``decode_lu`` (strict, and lenient with
``memory=True``), ``scan_lu`` and ``decode_domain_section`` either succeed or
raise a :class:`~xenlu.core.errors.XenLUError` — never another exception, never a
hang (libFuzzer ``-timeout``), never unbounded memory (``-rss_limit_mb``) —
a stream that decodes re-encodes to exactly the input bytes, and the
check-only pass of ``verify_lu`` accepts exactly the inputs ``decode_lu`` accepts.

Run: ``python fuzz/fuzz_lu.py fuzz/corpus/lu fuzz/seeds/lu -max_total_time=60``
(or ``fuzz/run.py --target lu``).
"""

import sys

import atheris

with atheris.instrument_imports(include=["xenlu"]):
    import xenlu.core.registry

    xenlu.core.registry._load()  # the record modules, instrumented too
    from common import check_lu

    import xenlu.lu.stream


def TestOneInput(data: bytes) -> None:
    check_lu(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
