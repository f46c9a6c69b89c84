"""The libxl stream (reference §2) and the xl save file that wraps it.

The records themselves (type codes, layouts, values, body codecs) are
:mod:`xenlu.migration.libxl_records`; every name there stays importable from here.

A libxl stream is a 16-byte big-endian header (``!QII``: ident "LibxlFmt",
version 2, options) followed by records framed exactly like libxc records.
LIBXC_CONTEXT is an empty marker: the whole libxc stream (image header to
END or CHECKPOINT) follows it in the byte stream, and its record value here,
a :class:`LibxcContext`, holds that :class:`~xenlu.migration.libxc_stream.LibxcStream`. In a
checkpointed
(Remus/COLO) stream the libxc part stops at CHECKPOINT; libxl records follow
up to CHECKPOINT_END, after which the libxc records resume without headers
(libxl ``libxl_stream_read.c``); such a batch is the ``libxc`` field of that
CHECKPOINT_END's :class:`CheckpointEnd` value. libxl records and embedded
libxc records share one record-index counter.

Grammar (:class:`~xenlu.core.errors.GrammarError` at the record header, field
``type``), as Xen's reader ``process_record()`` in
``tools/libs/light/libxl_stream_read.c`` enforces it (``docs/xen-readers.md``):
at most one LIBXC_CONTEXT; END not while the libxc stream stands at a
CHECKPOINT (its END is missing); CHECKPOINT_END only to close a libxc
CHECKPOINT ("Unexpected CHECKPOINT_END record in stream"); no
CHECKPOINT_STATE (it belongs to COLO's checkpoint-state exchange, which Xen
reads outside the record loop: "Unexpected CHECKPOINT_STATE record in
stream"); no emulator record after a PV domain's libxc stream ("... when none
was expected"). Every unknown record type is refused, optional (bit 31) or
not: the libxl spec gives no "may be ignored" rule and Xen's reader fails
any type it does not know ("Unrecognised record"). ``strict=False`` keeps
unknown records as :class:`~xenlu.core.registry.UnknownRecord` values instead.

The xl save file (``tools/xl/xl.h``): 32-byte magic, ``<IIII`` header
(byteorder 0x01020304, mandatory flags — bit 0 JSON config, bit 1 STREAMv2 —,
optional flags, optional data length), the optional data, then a libxl
stream when STREAMv2 is set, otherwise a libxc stream. ``xl save`` writes
the optional data as ``u32 config_len`` and the config (JSON with its NUL);
``xl restore`` reads it so and refuses a config longer than the optional
data ("Savefile truncated"); bytes after the config are ignored by xl and
kept here byte for byte.

Decode and encode::

    >>> from xenlu.migration.libxc import End
    >>> s = LibxlStream(LibxlHeader(), [Record(0, End())])
    >>> data = libxl_bytes(s)
    >>> data[:8], len(data)
    (b'LibxlFmt', 24)
    >>> decode_libxl(data) == s
    True
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from construct import Int32ul

from xenlu.core.errors import (
    EncodeError,
    FramingError,
    GrammarError,
    UnknownRecordError,
    VersionError,
)
from xenlu.core.framing import RecordWriter, as_buffer, frames, written_bytes
from xenlu.core.layout import Packed, fld, packed
from xenlu.core.registry import LIBXL, OPTIONAL, Ctx, Record, UnknownRecord
from xenlu.core.values import omitted_when_empty
from xenlu.migration.libxc_records import RecType
from xenlu.migration.libxc_stream import (
    LibxcStream,
    decode_libxc,
    decode_libxc_continuation,
    encode_libxc,
    encode_libxc_records,
)
from xenlu.migration.libxl_records import (
    EMULATOR_IDS,
    LIBXL_HDR,
    LIBXL_IDENT,
    LIBXL_OPT_BE,
    LIBXL_OPT_LEGACY,
    LIBXL_VERSION,
    RECORDS,
    XENSTORE_KEY_CHARS,
    CheckpointEnd,
    CheckpointState,
    EmulatorContext,
    EmulatorHeader,
    EmulatorXenstoreData,
    LibxcContext,
    LibxlHeader,
    LibxlType,
)

__all__ = [
    "EMULATOR_IDS",
    "LIBXL_HDR",
    "LIBXL_IDENT",
    "LIBXL_OPT_BE",
    "LIBXL_OPT_LEGACY",
    "LIBXL_VERSION",
    "RECORDS",
    "XENSTORE_KEY_CHARS",
    "XL_BYTEORDER",
    "XL_HDR",
    "XL_MAGIC",
    "CheckpointEnd",
    "CheckpointState",
    "EmulatorContext",
    "EmulatorHeader",
    "EmulatorXenstoreData",
    "LibxcContext",
    "LibxlHeader",
    "LibxlStream",
    "LibxlType",
    "XlFile",
    "decode_libxl",
    "decode_xl",
    "encode_libxl",
    "encode_xl",
    "libxl_bytes",
    "xl_bytes",
    "xl_optional_data",
]

#: xl save file (tools/xl/xl.h): magic, then four u32 in the host's (LE) order.
XL_MAGIC = b"Xen saved domain, xl format\n \0 \r"
XL_BYTEORDER = 0x01020304
XL_MANDATORY_JSON = 0x1
XL_MANDATORY_STREAMV2 = 0x2
XL_MANDATORY_KNOWN = XL_MANDATORY_JSON | XL_MANDATORY_STREAMV2


@packed(name="XL_HEADER")
class XlHeader(Packed):
    """The four u32 after the xl magic (tools/xl/xl.h), in the saving host's order."""

    byteorder: int = fld(Int32ul, doc="0x01020304 written natively (little-endian here)")
    mandatory_flags: int = fld(Int32ul, doc="bit 0 JSON config, bit 1 STREAMv2 (libxl stream)")
    optional_flags: int = fld(Int32ul)
    optional_data_len: int = fld(Int32ul, doc="bytes of optional data (the config) that follow")


_XL = XlHeader.LAYOUT
#: The header's ``struct`` (``<IIII``).
XL_HDR = _XL.struct

#: libxc domain header type of a PV guest (§1.3): no emulator records follow it.
DHDR_TYPE_PV = 1


@dataclass(eq=True)
class LibxlStream:
    """A decoded libxl stream; the LIBXC_CONTEXT record's value holds the libxc stream.

    ``trailing`` holds the bytes after the libxl END in the input: Xen's
    libxl reader (``process_record()``, ``libxl_stream_read.c``) completes
    the stream at END and reads nothing after it, so they belong to the
    container; kept so that re-encoding is byte-exact.
    """

    header: LibxlHeader
    records: list[Record]
    trailing: bytes = omitted_when_empty()

    @property
    def libxc(self) -> LibxcStream | None:
        """The embedded libxc stream (first batch), if there is one."""
        for r in self.records:
            if r.type == LibxlType.LIBXC_CONTEXT and isinstance(r.value, LibxcContext):
                return r.value.stream
        return None


@dataclass(eq=True)
class XlFile:
    """An xl save file: header fields, the optional data (config) and the stream.

    ``byteorder_ok`` is True when the byteorder word reads 0x01020304; a
    decoded file always has True (other byte orders are refused, as xl
    does); an encoder given False writes the swapped word.
    ``optional_data`` is the whole optional area as on the wire: empty, or
    ``u32 config_len``, the config and any bytes xl skips
    (:func:`xl_optional_data` builds it).

    >>> f = XlFile(True, 3, 0, xl_optional_data(b"{}\\0"), LibxlStream(LibxlHeader(), []))
    >>> f.config
    b'{}\\x00'
    """

    byteorder_ok: bool
    mandatory_flags: int
    optional_flags: int
    optional_data: bytes
    stream: LibxlStream | LibxcStream

    @property
    def json_config(self) -> bool:
        """Mandatory flag bit 0: the optional data is a JSON domain config."""
        return bool(self.mandatory_flags & XL_MANDATORY_JSON)

    @property
    def config(self) -> bytes | None:
        """The domain config in the optional data; None when the optional data is empty.

        Raises :class:`~xenlu.core.errors.EncodeError` if the optional data is
        not a ``u32 config_len`` and that many bytes.
        """
        if not self.optional_data:
            return None
        _check_optional_data(self.optional_data)
        (clen,) = _U32.unpack_from(self.optional_data, 0)
        return bytes(self.optional_data[4 : 4 + clen])


_U32 = struct.Struct("<I")


def xl_optional_data(config: bytes, tail: bytes = b"") -> bytes:
    """The xl optional data ``xl save`` writes: ``u32 config_len``, the config, then ``tail``.

    >>> xl_optional_data(b"{}\\0")
    b'\\x03\\x00\\x00\\x00{}\\x00'
    """
    return _U32.pack(len(config)) + bytes(config) + bytes(tail)


def _optional_data_problem(optional: bytes | memoryview) -> tuple[str, str, str, int] | None:
    """Why non-empty optional data is not ``u32 config_len`` + config, or None.

    Returns ``(field, message, expected, got)``; xl's ``create_domain()``
    calls both cases "Savefile truncated.".
    """
    n = len(optional)
    if n < 4:
        return (
            "optional_data_len",
            "xl optional data too short for its config length (xl: Savefile truncated)",
            ">= 4 (u32 config_len)",
            n,
        )
    (clen,) = _U32.unpack_from(optional, 0)
    if clen > n - 4:
        return (
            "config_len",
            "xl config runs past the optional data (xl: Savefile truncated)",
            f"<= {n - 4}",
            clen,
        )
    return None


def _check_optional_data(optional: bytes) -> None:
    """:class:`EncodeError` unless ``optional`` is empty or ``u32 config_len`` + config."""
    problem = _optional_data_problem(optional) if optional else None
    if problem is not None:
        field, message, expected, got = problem
        raise EncodeError(f"{message}: {field}: expected {expected}, got {got}")


# --- libxl stream ----------------------------------------------------------------


def decode_libxl_header(buf: memoryview, start: int) -> LibxlHeader:
    n = len(buf)
    if n - start < LIBXL_HDR.size:
        raise FramingError(
            "libxl header truncated",
            offset=start,
            expected=f"{LIBXL_HDR.size} bytes",
            got=max(0, n - start),
        )
    ident, version, options = LIBXL_HDR.unpack_from(buf, start)
    if ident != LIBXL_IDENT:
        raise FramingError(
            "bad libxl ident", offset=start, field="ident", expected=LIBXL_IDENT, got=ident
        )
    if version != LIBXL_VERSION:
        raise VersionError(
            "unsupported libxl stream version",
            offset=start + 8,
            field="version",
            expected=LIBXL_VERSION,
            got=version,
        )
    if options & LIBXL_OPT_BE:
        raise FramingError(
            "big-endian streams are not supported",
            offset=start + 12,
            field="options",
            expected="bit 0 clear (little-endian)",
            got=options,
        )
    if options & ~(LIBXL_OPT_BE | LIBXL_OPT_LEGACY):
        raise FramingError(
            "reserved libxl option bits set",
            offset=start + 12,
            field="options",
            expected="bits 2-31 clear",
            got=options,
        )
    return LibxlHeader(ident=ident, version=version, options=options)


def grammar_error(msg: str, offset: int, index: int, rtype: int) -> GrammarError:
    return GrammarError(
        msg, offset=offset, record_index=index, record_type=rtype, field="type", family="libxl"
    )


def _unknown_record(
    buf: memoryview, hpos: int, idx: int, rtype: int, length: int, strict: bool
) -> Record:
    """The kept record of an unknown type, or (``strict``) its UnknownRecordError.

    No "may be ignored" rule in the libxl spec, and Xen's reader fails
    every type it does not know, optional (bit 31) or not.
    """
    if strict:
        raise UnknownRecordError(
            "unknown optional libxl record type (libxl refuses every unknown type)"
            if rtype & OPTIONAL
            else "unknown mandatory libxl record type",
            offset=hpos,
            record_index=idx,
            record_type=rtype,
            field="type",
            family="libxl",
        )
    body_at = hpos + 8
    return Record(rtype, UnknownRecord(rtype, bytes(buf[body_at : body_at + length])), hpos)


def check_order(
    rtype: int, hpos: int, idx: int, libxc_domain: int | None, at_checkpoint: bool
) -> None:
    """The grammar of the module notes for a known record type at this point
    of the stream; ``libxc_domain`` is the domain header type of the libxc
    stream read so far (None before LIBXC_CONTEXT). The mapped walker and the
    incremental machine (:mod:`xenlu.feed.libxl`) both ask it."""
    L = LibxlType
    if rtype == L.LIBXC_CONTEXT and libxc_domain is not None:
        raise grammar_error("second LIBXC_CONTEXT record", hpos, idx, rtype)
    if rtype == L.END and at_checkpoint:
        raise grammar_error("END while the libxc stream stands at a CHECKPOINT", hpos, idx, rtype)
    if rtype == L.CHECKPOINT_END and not at_checkpoint:
        raise grammar_error("CHECKPOINT_END closes no libxc CHECKPOINT", hpos, idx, rtype)
    if rtype == L.CHECKPOINT_STATE:
        raise grammar_error(
            "CHECKPOINT_STATE in a libxl stream (COLO's checkpoint-state exchange only)",
            hpos,
            idx,
            rtype,
        )
    if rtype in (L.EMULATOR_XENSTORE_DATA, L.EMULATOR_CONTEXT) and libxc_domain == DHDR_TYPE_PV:
        raise grammar_error("emulator record in a PV domain's stream", hpos, idx, rtype)


def _decode_libxl_at(buf: memoryview, start: int, strict: bool) -> tuple[LibxlStream, int]:
    header = decode_libxl_header(buf, start)
    n = len(buf)
    pos = start + LIBXL_HDR.size
    index = 0
    records: list[Record] = []
    ctx = Ctx(None, 0, 0, 0, family="libxl")
    first: LibxcStream | None = None
    history: list[Record] = []
    at_checkpoint = False
    L = LibxlType
    while True:
        try:
            fr = next(frames(buf, pos, n, index), None)
        except FramingError as exc:
            exc.family = "libxl"  # a libxl record header: name the type as libxl
            raise
        if fr is None:
            raise FramingError(
                "libxl stream ends before END",
                offset=n,
                record_index=index,
                expected="another record (END missing)",
            )
        idx, hpos, rtype, length = fr
        body_at = hpos + 8
        pos = body_at + length + (-length & 7)
        index = idx + 1
        spec = LIBXL.get(rtype)
        if spec is None:
            records.append(_unknown_record(buf, hpos, idx, rtype, length, strict))
            continue
        check_order(rtype, hpos, idx, None if first is None else first.domain.type, at_checkpoint)
        ctx.index, ctx.type, ctx.offset, ctx.length = idx, rtype, body_at, length
        value = spec.decode(buf[body_at : body_at + length], ctx)
        if rtype == L.LIBXC_CONTEXT:
            xc, pos, index = decode_libxc(buf, pos, index, strict=strict, embedded=True)
            first = xc
            value = LibxcContext(xc)
        elif rtype == L.CHECKPOINT_END and at_checkpoint:
            assert first is not None
            xc, pos, index = decode_libxc_continuation(
                buf, pos, index, first, history=history, strict=strict
            )
            value = CheckpointEnd(xc)
        else:
            xc = None
        if xc is not None:
            history.extend(xc.records)
            at_checkpoint = xc.records[-1].type == RecType.CHECKPOINT
        records.append(Record(rtype, value, hpos))
        if rtype == L.END:
            return LibxlStream(header, records), pos


def _with_trailing(stream: LibxlStream, buf: memoryview, end: int) -> LibxlStream:
    """``stream`` holding the bytes after its END (nobody in Xen reads them)."""
    if end != len(buf):
        stream.trailing = bytes(buf[end:])
    return stream


def decode_libxl(
    buf: bytes | bytearray | memoryview, start: int = 0, *, strict: bool = True
) -> LibxlStream:
    """Decode a libxl stream that starts at ``start`` and runs to the end of ``buf``.

    The embedded libxc stream is decoded with
    :func:`~xenlu.migration.libxc_stream.decode_libxc` (``embedded=True``); offsets in
    errors are absolute. Bytes after the libxl END are kept in
    :attr:`LibxlStream.trailing`. Raises only
    :class:`~xenlu.core.errors.DecodeError` subclasses on bad input.

    >>> decode_libxl(b"LibxlFmt\\0\\0\\0\\2\\0\\0\\0\\0" + bytes(8)).records[0].type
    0
    """
    mv = as_buffer(buf)
    stream, end = _decode_libxl_at(mv, start, strict)
    return _with_trailing(stream, mv, end)


def encode_libxl(stream: LibxlStream, writer: RecordWriter) -> None:
    """Write ``stream``: header, then the records, each embedded libxc part after its marker.

    >>> from xenlu.core.framing import BytesSink
    >>> from xenlu.migration.libxc import End
    >>> w = RecordWriter(BytesSink())
    >>> encode_libxl(LibxlStream(LibxlHeader(), [Record(0, End())]), w)
    >>> w.pos
    24
    """
    writer.write(stream.header.pack())
    L = LibxlType
    for r in stream.records:
        inner = getattr(r.value, "stream", None) or getattr(r.value, "libxc", None)
        if isinstance(inner, LibxcStream) and inner.trailing:
            # Bytes after an embedded libxc END would be read as libxl records.
            raise EncodeError("libxl: an embedded libxc stream cannot carry trailing bytes")
        value = r.value
        if isinstance(value, UnknownRecord):
            writer.record(r.type, value.body_for(r.type))
            continue
        spec = LIBXL.get(r.type)
        if spec is None:
            raise EncodeError(
                f"unknown libxl record type {r.type:#010x} must hold an UnknownRecord"
            )
        writer.record(r.type, spec.encode(value))
        if r.type == L.LIBXC_CONTEXT:
            encode_libxc(value.stream, writer)
        elif r.type == L.CHECKPOINT_END and value.libxc is not None:
            encode_libxc_records(value.libxc.records, writer)
    if stream.trailing:
        writer.write(stream.trailing)


def libxl_bytes(stream: LibxlStream) -> bytes:
    """``stream`` encoded into one ``bytes`` object."""
    return written_bytes(encode_libxl, stream)


# --- xl save file ----------------------------------------------------------------


def decode_xl(buf: bytes | bytearray | memoryview, *, strict: bool = True) -> XlFile:
    """Decode an xl save file: magic, header, optional data, then the stream.

    Non-empty optional data must be ``u32 config_len`` and the config, as
    ``xl save`` writes it; a config that does not fit is a
    :class:`~xenlu.core.errors.FramingError` (field ``optional_data_len`` or
    ``config_len``), xl's "Savefile truncated".

    The stream is a libxl stream when mandatory flag bit 1 (STREAMv2) is
    set, otherwise a libxc stream. Record indices count from the stream's
    first record; offsets are absolute in the file. Bytes after the
    stream's END are the stream's ``trailing``.

    >>> from xenlu.migration.libxc import End
    >>> s = LibxlStream(LibxlHeader(), [Record(0, End())])
    >>> f = XlFile(True, 3, 0, xl_optional_data(b"{}\\0"), s)
    >>> decode_xl(xl_bytes(f)) == f
    True
    """
    mv = as_buffer(buf)
    n = len(mv)
    m = len(XL_MAGIC)
    if mv[: min(n, m)] != XL_MAGIC[: min(n, m)]:
        raise FramingError(
            "not an xl save file (bad magic)", offset=0, field="magic", expected=repr(XL_MAGIC)
        )
    if n < m:
        raise FramingError("xl magic truncated", offset=0, expected=f"{m} bytes", got=n)
    hdr_at = m
    if n - hdr_at < XL_HDR.size:
        raise FramingError(
            "xl header truncated", offset=hdr_at, expected=f"{XL_HDR.size} bytes", got=n - hdr_at
        )
    byteorder, mandatory, optional, optlen = XL_HDR.unpack_from(mv, hdr_at)
    if byteorder != XL_BYTEORDER:
        raise FramingError(
            "xl save file has the wrong byte order",
            offset=hdr_at + _XL.field("byteorder").offset,
            field="byteorder",
            expected=XL_BYTEORDER,
            got=byteorder,
        )
    if mandatory & ~XL_MANDATORY_KNOWN:
        raise FramingError(
            "unknown mandatory xl flags",
            offset=hdr_at + _XL.field("mandatory_flags").offset,
            field="mandatory_flags",
            expected=f"only bits {XL_MANDATORY_KNOWN:#x}",
            got=mandatory,
        )
    data_at = hdr_at + XL_HDR.size
    if optlen > n - data_at:
        raise FramingError(
            "xl optional data runs past the end of the input (xl: truncated reading optdata)",
            offset=hdr_at + _XL.field("optional_data_len").offset,
            field="optional_data_len",
            expected=f"<= {n - data_at}",
            got=optlen,
        )
    # xl restore (create_domain(), xl_vmcontrol.c) reads u32 config_len then
    # the config, and fails "Savefile truncated." when either does not fit.
    problem = _optional_data_problem(mv[data_at : data_at + optlen]) if optlen else None
    if problem is not None:
        field, message, expected, got = problem
        at = (
            hdr_at + _XL.field("optional_data_len").offset
            if field == "optional_data_len"
            else data_at
        )
        raise FramingError(message, offset=at, field=field, expected=expected, got=got)
    stream_at = data_at + optlen
    stream: LibxlStream | LibxcStream
    if mandatory & XL_MANDATORY_STREAMV2:
        stream, end = _decode_libxl_at(mv, stream_at, strict)
        _with_trailing(stream, mv, end)
    else:
        stream = decode_libxc(mv, stream_at, strict=strict)[0]
    return XlFile(True, mandatory, optional, bytes(mv[data_at:stream_at]), stream)


def encode_xl(xl: XlFile, writer: RecordWriter) -> None:
    """Write an xl save file; :class:`EncodeError` if STREAMv2 disagrees with the stream."""
    if xl.mandatory_flags & ~XL_MANDATORY_KNOWN:
        raise EncodeError(f"xl: unknown mandatory flags {xl.mandatory_flags:#x}")
    v2 = bool(xl.mandatory_flags & XL_MANDATORY_STREAMV2)
    if v2 != isinstance(xl.stream, LibxlStream):
        raise EncodeError("xl: mandatory flag STREAMv2 must be set exactly for a libxl stream")
    _check_optional_data(xl.optional_data)
    byteorder = XL_BYTEORDER if xl.byteorder_ok else 0x04030201
    try:
        hdr = XL_HDR.pack(byteorder, xl.mandatory_flags, xl.optional_flags, len(xl.optional_data))
    except struct.error as exc:
        raise EncodeError(f"xl: a header field does not fit: {exc}") from None
    writer.write(XL_MAGIC)
    writer.write(hdr)
    writer.write(xl.optional_data)
    if isinstance(xl.stream, LibxlStream):
        encode_libxl(xl.stream, writer)
    else:
        encode_libxc(xl.stream, writer)


def xl_bytes(xl: XlFile) -> bytes:
    """``xl`` encoded into one ``bytes`` object."""
    return written_bytes(encode_xl, xl)
