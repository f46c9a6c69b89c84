"""The top-level contract: xenlu.decode / encode / encode_to / verify."""

from __future__ import annotations

import io
import mmap
from pathlib import Path

import pytest

import xenlu
from tests.vectors.libxc_vectors import VECTORS
from xenlu.hostgen import make_host
from xenlu.lu_stream import LUStream

HOST = make_host((4, 16), n_hvm=2, mem_mib=2, dom0_mem_mib=2)
DATA = xenlu.encode(HOST)


def test_decode_accepts_bytes_memoryview_mmap_and_path(tmp_path: Path) -> None:
    path = tmp_path / "host.lu"
    path.write_bytes(DATA)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        from_mmap = xenlu.decode(m)
        assert from_mmap == HOST
        del from_mmap  # release the views before the map closes
    for data in (DATA, bytearray(DATA), memoryview(DATA), path, str(path)):
        s = xenlu.decode(data)
        assert isinstance(s, LUStream) and s == HOST


def test_explicit_formats_and_detection() -> None:
    assert xenlu.detect_format(DATA) == "lu"
    assert xenlu.decode(DATA, format="lu") == HOST
    assert xenlu.verify(DATA) == "lu"
    for vec in VECTORS:
        if vec.error is None:
            assert xenlu.detect_format(vec.data) == vec.format, vec.name
            stream = xenlu.decode(vec.data)
            assert xenlu.encode(stream) == vec.data, vec.name


def test_encode_to_a_sink() -> None:
    sink = io.BytesIO()
    assert xenlu.encode_to(HOST, sink) == len(DATA)
    assert sink.getvalue() == DATA


def test_bad_input_is_a_typed_error() -> None:
    with pytest.raises(xenlu.FramingError) as ei:
        xenlu.decode(b"not a stream at all")
    assert ei.value.offset == 0
    with pytest.raises(xenlu.FramingError):
        xenlu.decode(b"")
    with pytest.raises(xenlu.CallerError):
        xenlu.decode(DATA, format="nope")
    with pytest.raises(xenlu.CallerError):
        xenlu.decode(12345)
    with pytest.raises(xenlu.CallerError):
        xenlu.encode(object())
    with pytest.raises(xenlu.DecodeError):
        xenlu.decode(DATA, format="libxc")
