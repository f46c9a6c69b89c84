"""Run every hand-built vector of ``tests/vectors/libxc_vectors.py`` through xenlu.

Each vector is valid (decodes, and re-encodes byte-exactly) or names the
error class, absolute offset and field the decoder must report
(``docs/conventions.md``).
"""

from __future__ import annotations

from typing import Any

import pytest

import xenlu.errors as errors
from tests.vectors.libxc_vectors import VECTORS, Vector
from xenlu.errors import DecodeError
from xenlu.libxc_stream import decode_libxc, libxc_bytes
from xenlu.libxl import decode_libxl, decode_xl, libxl_bytes, xl_bytes


def _decode(vec: Vector) -> Any:
    if vec.format == "libxc":
        stream, end, _ = decode_libxc(vec.data)
        assert end == len(vec.data)
        return stream
    if vec.format == "libxl":
        return decode_libxl(vec.data)
    assert vec.format == "xl", vec.format
    return decode_xl(vec.data)


def _encode(vec: Vector, value: Any) -> bytes:
    if vec.format == "libxc":
        return libxc_bytes(value)
    if vec.format == "libxl":
        return libxl_bytes(value)
    return xl_bytes(value)


@pytest.mark.parametrize("vec", VECTORS, ids=[v.name for v in VECTORS])
def test_vector(vec: Vector) -> None:
    if vec.error is None:
        value = _decode(vec)
        assert _encode(vec, value) == vec.data, "re-encoding is not byte-exact"
        return
    cls = getattr(errors, vec.error)
    with pytest.raises(DecodeError) as info:
        _decode(vec)
    exc = info.value
    assert type(exc) is cls, f"{type(exc).__name__} instead of {vec.error}: {exc}"
    assert exc.offset == vec.offset, f"offset {exc.offset} instead of {vec.offset}: {exc}"
    assert exc.field == vec.field, f"field {exc.field!r} instead of {vec.field!r}: {exc}"


def test_corpus_covers_every_format() -> None:
    assert {v.format for v in VECTORS} == {"libxc", "libxl", "xl"}
    assert any(v.error is None for v in VECTORS)
