"""Run every hand-built vector of ``tests/vectors/libxc_vectors.py`` through xenlu.

Each vector is valid (decodes, and re-encodes byte-exactly) or names the
error class, absolute offset and field the decoder must report
(``docs/conventions.md``).
"""

from __future__ import annotations

from typing import Any

import pytest

import xenlu.core.errors as errors
from tests.vectors.libxc_vectors import ALL_VECTORS, PENDING, VECTORS, Vector
from xenlu.core.errors import DecodeError
from xenlu.migration.libxc_stream import decode_libxc, libxc_bytes
from xenlu.migration.libxl import decode_libxl, decode_xl, libxl_bytes, xl_bytes


def _decode(vec: Vector) -> Any:
    if vec.format == "libxc":
        stream, end, _ = decode_libxc(vec.data)
        # END is the last record; what follows is the container's (issue 13).
        assert vec.data[end:] == stream.trailing
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


def _param(vec: Vector) -> Any:
    """A vector as a test case; one xenlu does not decide right yet is xfail(strict)."""
    if vec.pending is None:
        return pytest.param(vec, id=vec.name)
    return pytest.param(vec, id=vec.name, marks=pytest.mark.xfail(strict=True, reason=vec.pending))


@pytest.mark.parametrize("vec", [_param(v) for v in ALL_VECTORS])
def test_vector(vec: Vector) -> None:
    if vec.pending is not None:
        # Only the verdict: the class, offset and field are settled by the fix.
        if vec.error is None:
            _decode(vec)
        else:
            with pytest.raises(DecodeError):
                _decode(vec)
        return
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


def test_every_difference_and_pending_vector_is_explained() -> None:
    assert {v.name for v in PENDING}.isdisjoint(v.name for v in VECTORS)
    for v in ALL_VECTORS:
        for note in (v.c_differs, v.spec_differs, v.c_ref, v.pending):
            assert note is None or len(note) > 20, v.name
        if v.pending is not None:
            assert v.pending.startswith("issue 13: "), v.name


def test_corpus_covers_every_format() -> None:
    assert {v.format for v in VECTORS} == {"libxc", "libxl", "xl"}
    assert any(v.error is None for v in VECTORS)


def _named(name: str) -> Vector:
    (vec,) = [v for v in VECTORS if v.name == name]
    return vec


def test_bytes_after_end_are_kept_not_judged() -> None:
    # libxc, libxl and xl: Xen's readers stop at END (docs/xen-readers.md).
    xc = _decode(_named("bytes_after_end"))
    assert xc.trailing == bytes(8) and xc.records[-1].name == "END"
    lx = _decode(_named("libxl_bytes_after_end"))
    assert lx.trailing == bytes(16) and lx.libxc.trailing == b""
    xl = _decode(_named("xl_bytes_after_end"))
    assert xl.stream.trailing == b"\x01"
    for vec in VECTORS:
        if vec.error is None and vec.name not in (
            "bytes_after_end",
            "libxl_bytes_after_end",
            "xl_bytes_after_end",
        ):
            value = _decode(vec)
            stream = value.stream if vec.format == "xl" else value
            assert stream.trailing == b"", vec.name


def test_hvm_context_bytes_after_the_end_entry_are_kept() -> None:
    xc = _decode(_named("hvm_context_bytes_after_end_entry"))
    (ctx,) = [r.value for r in xc.records if r.name == "HVM_CONTEXT"]
    assert ctx.trailing == b"\x99" * 8 and ctx.entries[-1].name == "END"


def test_an_embedded_libxc_stream_cannot_carry_trailing_bytes() -> None:
    # The libxl reader goes on after the libxc END: such bytes would be read
    # as libxl records, so the encoder refuses them.
    from xenlu.core.errors import EncodeError

    lx = _decode(_named("libxl_hvm_valid"))
    lx.libxc.trailing = b"\x01"
    with pytest.raises(EncodeError):
        libxl_bytes(lx)
