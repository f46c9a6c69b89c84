#!/usr/bin/env python3
"""Fuzz target: the xenstored migration stream decoder, validator and encoder.

Invariant: ``decode_xenstore`` (strict and lenient) and ``api.decode``
either succeed or raise a :class:`~xenlu.core.errors.XenLUError` — never another
exception, never a hang; whatever decodes re-encodes byte-exactly, in the
other byte order decodes to the same records, and ``validate_xenstore`` of
it returns a report without raising.

Run: ``python fuzz/run.py --target xenstore --seconds 60``, or
``python fuzz/fuzz_xenstore.py fuzz/corpus/xenstore fuzz/seeds/xenstore
-max_total_time=60`` (a missing seed directory is filled with the golden streams).
``tests/test_xenstore_fuzz.py`` runs :func:`check_xenstore` without atheris.
"""

from __future__ import annotations

import sys


def check_xenstore(data: bytes) -> None:
    """The target's invariant on one input (raises AssertionError or a non-XenLUError)."""
    from xenlu import api
    from xenlu.core.errors import XenLUError
    from xenlu.xenstore.stream import decode_xenstore, encode_xenstore
    from xenlu.xenstore.validate import validate_xenstore

    try:
        stream = decode_xenstore(data)
    except XenLUError:
        stream = None
    try:
        lenient = decode_xenstore(data, strict=False)
    except XenLUError:
        lenient = None
    if stream is not None and lenient != stream:
        raise AssertionError("strict and lenient decodes of an accepted stream differ")
    if data[:8] == b"xenstore":
        try:
            if api.decode(data) != stream:
                raise AssertionError("api.decode differs from decode_xenstore")
        except XenLUError:
            if stream is not None:
                raise
    for s in (stream, lenient):
        if s is None:
            continue
        if encode_xenstore(s) != data:
            raise AssertionError("decoded stream does not re-encode byte-exactly")
        other = decode_xenstore(encode_xenstore(s, big_endian=not s.big_endian), strict=False)
        if other.records != s.records:
            raise AssertionError("the other byte order holds different records")
        validate_xenstore(s)


def TestOneInput(data: bytes) -> None:
    check_xenstore(data)


def _seed_missing_dirs(argv: list[str]) -> None:
    """Create a missing corpus directory argument and seed it with the golden streams
    (``run.py`` passes ``fuzz/seeds/xenstore``, which ``make_seeds.py`` does not write)."""
    from pathlib import Path

    golden = Path(__file__).resolve().parent.parent / "tests" / "golden" / "xenstore"
    for arg in argv[1:]:
        if arg.startswith("-") or Path(arg).exists():
            continue
        d = Path(arg)
        d.mkdir(parents=True)
        for f in golden.glob("*.xs"):
            (d / f.name).write_bytes(f.read_bytes())


if __name__ == "__main__":
    import atheris

    _seed_missing_dirs(sys.argv)

    with atheris.instrument_imports(include=["xenlu"]):
        import xenlu.core.registry

        xenlu.core.registry._load("xenstore")
        import xenlu.xenstore.stream
        import xenlu.xenstore.validate

    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
