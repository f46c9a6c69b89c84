"""The public entry points: decode, encode and verify any stream xenlu knows.

Formats: ``"lu"`` (Live Update stream), ``"libxc"`` (migration stream v2/v3),
``"libxl"`` (libxl stream with embedded libxc), ``"xl"`` (xl save file),
``"xenstore"`` (xenstored migration stream) and ``"auto"``, which looks at
the first bytes.

>>> s = decode(data)            # doctest: +SKIP
>>> encode(s) == bytes(data)    # doctest: +SKIP
True
"""

from __future__ import annotations

from typing import Any

from xenlu.errors import CallerError, FramingError
from xenlu.framing import as_buffer

__all__ = ["FORMATS", "decode", "detect_format", "encode", "encode_to", "verify"]

FORMATS = ("auto", "lu", "libxc", "libxl", "xl", "xenstore")

_LIBXC_MARKER = b"\xff" * 8
_LIBXL_IDENT = b"LibxlFmt"
_XL_MAGIC = b"Xen saved domain, xl format\n \0 \r"
_LU_FIRST = b"\x00\x00\x00\x40"  # LU_VERSION 0x40000000, little-endian
_XENSTORE_IDENT = b"xenstore"  # xenstore-migration.md §Header


def detect_format(data: Any) -> str:
    """The format of a stream from its first bytes (``lu``, ``libxc``, ``libxl``, ``xl``)."""
    buf = as_buffer(data)
    head = bytes(buf[:32])
    if head[:8] == _XL_MAGIC[:8]:
        return "xl"
    if head[:8] == _LIBXL_IDENT:
        return "libxl"
    if head[:8] == _LIBXC_MARKER:
        return "libxc"
    if head[:4] == _LU_FIRST:
        return "lu"
    if head[:8] == _XENSTORE_IDENT:
        return "xenstore"
    raise FramingError(
        "unrecognised stream: not LU, libxc, libxl, xenstore or an xl save file",
        offset=0,
        expected="LU_VERSION record, 0xFFFFFFFFFFFFFFFF marker, 'LibxlFmt', 'xenstore' "
        "or the xl magic",
        got=head[:8].hex() or "empty input",
    )


def decode(data: Any, format: str = "auto", *, strict: bool = True) -> Any:
    """Decode and structurally verify a stream.

    ``data``: bytes, bytearray, memoryview, mmap or a path (mapped read-only,
    never read into memory). Returns an :class:`~xenlu.lu_stream.LUStream`,
    :class:`~xenlu.libxc_stream.LibxcStream`,
    :class:`~xenlu.libxl.LibxlStream`, :class:`~xenlu.libxl.XlFile` or
    :class:`~xenlu.xenstore_stream.XenstoreStream`.
    Raises only :class:`~xenlu.errors.XenLUError` subclasses.
    """
    buf = as_buffer(data)
    fmt = detect_format(buf) if format == "auto" else format
    if fmt == "lu":
        from xenlu.lu_stream import decode_lu

        return decode_lu(buf, strict=strict)
    if fmt == "libxc":
        from xenlu.libxc_stream import decode_libxc

        stream, _end, _idx = decode_libxc(buf, strict=strict)
        return stream
    if fmt == "libxl":
        from xenlu.libxl import decode_libxl

        return decode_libxl(buf, strict=strict)
    if fmt == "xl":
        from xenlu.libxl import decode_xl

        return decode_xl(buf, strict=strict)
    if fmt == "xenstore":
        from xenlu.xenstore_stream import decode_xenstore

        return decode_xenstore(buf, strict=strict)
    raise CallerError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")


def verify(data: Any, format: str = "auto", *, strict: bool = True) -> str:
    """Structurally verify a stream; return its format, raise the first problem."""
    buf = as_buffer(data)
    fmt = detect_format(buf) if format == "auto" else format
    # The structural paths build no value objects (same verdicts as decode).
    if fmt == "libxc":
        from xenlu.libxc_stream import verify_libxc

        verify_libxc(buf, strict=strict)
    elif fmt == "lu":
        from xenlu.lu_stream import verify_lu

        verify_lu(buf, strict=strict)
    else:
        decode(buf, fmt, strict=strict)
    return fmt


def encode_to(stream: Any, sink: Any, **options: Any) -> int:
    """Write any decoded or built stream to ``sink`` (``write(buffer)``); return bytes written."""
    from xenlu.framing import RecordWriter
    from xenlu.lu_stream import LUStream, encode_lu_to

    if isinstance(stream, LUStream):
        return encode_lu_to(stream, sink, **options)
    from xenlu.libxc_stream import LibxcStream, encode_libxc
    from xenlu.libxl import LibxlStream, XlFile, encode_libxl, encode_xl
    from xenlu.xenstore_stream import XenstoreStream, encode_xenstore_to

    if isinstance(stream, XenstoreStream):
        return encode_xenstore_to(stream, sink, **options)

    w = RecordWriter(sink)
    if isinstance(stream, LibxcStream):
        encode_libxc(stream, w)
    elif isinstance(stream, LibxlStream):
        encode_libxl(stream, w)
    elif isinstance(stream, XlFile):
        encode_xl(stream, w)
    else:
        raise CallerError(f"cannot encode a {type(stream).__name__}")
    return w.pos


def encode(stream: Any, **options: Any) -> bytes:
    """The bytes of any stream xenlu can encode (one join of the parts)."""
    from xenlu.framing import BytesSink

    sink = BytesSink()
    encode_to(stream, sink, **options)
    return sink.getvalue()
