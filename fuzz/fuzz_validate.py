#!/usr/bin/env python3
"""Fuzz target: decode then validate (``xenlu.host.validation.validate``).

Invariant: for any input, a lenient ``decode_lu`` (unknown records kept,
checksums not enforced) followed by ``validate`` on whatever decodes either
succeeds or raises a :class:`~xenlu.core.errors.XenLUError` — never another
exception, never a hang, never unbounded memory; the report serialises.

Run: ``python fuzz/fuzz_validate.py fuzz/corpus/validate fuzz/seeds/validate -max_total_time=60``.
"""

import sys

import atheris

with atheris.instrument_imports(include=["xenlu"]):
    import xenlu.core.registry

    xenlu.core.registry._load()  # the record modules, instrumented too
    try:
        import xenlu.host.validation
    except ImportError:  # pragma: no cover - the validator is another engineer's
        print("xenlu.host.validation is not available: nothing to fuzz", file=sys.stderr)
        sys.exit(0)
    from common import check_validate

    import xenlu.lu.stream


def TestOneInput(data: bytes) -> None:
    check_validate(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
