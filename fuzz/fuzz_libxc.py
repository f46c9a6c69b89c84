#!/usr/bin/env python3
"""Fuzz target: the libxc, libxl and xl decoders, and ``xenlu.api.decode`` (auto-detect).

Invariant: ``decode_libxc``, ``decode_libxl``, ``decode_xl`` and
``api.decode`` (strict and lenient) either succeed or raise a
:class:`~xenlu.core.errors.XenLUError` — never another exception, never a hang,
never unbounded memory — and whatever ``api.decode`` accepts,
``api.encode`` writes back byte-exactly.

Run: ``python fuzz/fuzz_libxc.py fuzz/corpus/libxc fuzz/seeds/libxc -max_total_time=60``.
"""

import sys

import atheris

with atheris.instrument_imports(include=["xenlu"]):
    import xenlu.core.registry

    xenlu.core.registry._load()  # the record modules, instrumented too
    from common import check_libxc

    import xenlu.api
    import xenlu.migration.libxc_stream
    import xenlu.migration.libxl


def TestOneInput(data: bytes) -> None:
    check_libxc(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
