"""The libxl stream (reference §2) and the xl save file that wraps it.

A libxl stream is a 16-byte big-endian header (``!QII``: ident "LibxlFmt",
version 2, options) followed by records framed exactly like libxc records.
LIBXC_CONTEXT is an empty marker: the whole libxc stream (image header to
END or CHECKPOINT) follows it in the byte stream, and its record value here,
a :class:`LibxcContext`, holds that :class:`~xenlu.libxc_stream.LibxcStream`. In a checkpointed
(Remus/COLO) stream the libxc part stops at CHECKPOINT; libxl records follow
up to CHECKPOINT_END, after which the libxc records resume without headers
(libxl ``libxl_stream_read.c``); such a batch is the ``libxc`` field of that
CHECKPOINT_END's :class:`CheckpointEnd` value. libxl records and embedded
libxc records share one record-index counter.

Grammar (:class:`~xenlu.errors.GrammarError` at the record header, field
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
unknown records as :class:`~xenlu.registry.UnknownRecord` values instead.

The xl save file (``tools/xl/xl.h``): 32-byte magic, ``<IIII`` header
(byteorder 0x01020304, mandatory flags — bit 0 JSON config, bit 1 STREAMv2 —,
optional flags, optional data length), the optional data, then a libxl
stream when STREAMv2 is set, otherwise a libxc stream. ``xl save`` writes
the optional data as ``u32 config_len`` and the config (JSON with its NUL);
``xl restore`` reads it so and refuses a config longer than the optional
data ("Savefile truncated"); bytes after the config are ignored by xl and
kept here byte for byte.

Decode and encode::

    >>> from xenlu.libxc import End
    >>> s = LibxlStream(LibxlHeader(), [Record(0, End())])
    >>> data = libxl_bytes(s)
    >>> data[:8], len(data)
    (b'LibxlFmt', 24)
    >>> decode_libxl(data) == s
    True
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from construct import Int32ub, Int32ul, Int64ub

from xenlu.errors import EncodeError, FramingError, GrammarError, UnknownRecordError, VersionError
from xenlu.framing import RecordWriter, as_buffer, frames, written_bytes
from xenlu.layout import Packed, Rsvd, fld, packed, reserved
from xenlu.libxc import End, RecType
from xenlu.libxc_stream import (
    LibxcStream,
    decode_libxc,
    decode_libxc_continuation,
    encode_libxc,
    encode_libxc_records,
)
from xenlu.registry import LIBXL, OPTIONAL, Ctx, Record, RecordSpec, UnknownRecord
from xenlu.values import omitted_when_empty

__all__ = [
    "EMULATOR_IDS",
    "LIBXL_HDR",
    "LIBXL_IDENT",
    "LIBXL_VERSION",
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

#: libxl header, big-endian (§2): ident, version, options.
LIBXL_IDENT = 0x4C6962786C466D74  # "LibxlFmt"
LIBXL_VERSION = 2
LIBXL_OPT_BE = 0x1  # bit 0: endianness, must be 0 (little-endian)
LIBXL_OPT_LEGACY = 0x2  # bit 1: written by convert-legacy-stream

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

#: Characters a xenstore key may use (libxl spec, EMULATOR_XENSTORE_DATA:
#: "strictly alphanumeric ASCII and -/_@").
XENSTORE_KEY_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-/_@"

#: libxc domain header type of a PV guest (§1.3): no emulator records follow it.
DHDR_TYPE_PV = 1

#: Emulator ids of the emulator sub-header (§2).
EMULATOR_IDS = {0: "unknown", 1: "qemu_traditional", 2: "qemu_upstream"}


class LibxlType(IntEnum):
    """libxl record type codes (§2)."""

    END = 0
    LIBXC_CONTEXT = 1
    EMULATOR_XENSTORE_DATA = 2
    EMULATOR_CONTEXT = 3
    CHECKPOINT_END = 4
    CHECKPOINT_STATE = 5


@packed(name="LIBXL_HEADER")
class LibxlHeader(Packed):
    """The 16-byte big-endian libxl header (§2; Python ``!QII``).

    >>> LibxlHeader.unpack(LibxlHeader(options=2).pack()).legacy
    True
    """

    ident: int = fld(Int64ub, doc='0x4C6962786C466D74 "LibxlFmt"', default=LIBXL_IDENT)
    version: int = fld(Int32ub, doc="2", default=LIBXL_VERSION)
    options: int = fld(Int32ub, doc="bit 0 endianness (0 = LE), bit 1 LEGACY", default=0)

    @property
    def legacy(self) -> bool:
        """Options bit 1: the stream was made by the legacy converter."""
        return bool(self.options & LIBXL_OPT_LEGACY)


LIBXL_HDR = LibxlHeader.LAYOUT.struct


@packed(name="EMULATOR_HEADER")
class EmulatorHeader(Packed):
    """§2 emulator sub-header of EMULATOR_XENSTORE_DATA and EMULATOR_CONTEXT."""

    emulator_id: int = fld(Int32ul, values=EMULATOR_IDS, doc="0 unknown, 1 qemu-trad, 2 upstream")
    index: int = fld(Int32ul, doc="index of this emulator for the domain")


@packed(name="CHECKPOINT_STATE")
class CheckpointState(Packed):
    """§2 CHECKPOINT_STATE (COLO only): control id and a zero pad."""

    control_id: int = fld(
        Int32ul,
        values={0: "NEW", 1: "SVM_SUSPENDED", 2: "SVM_READY", 3: "SVM_RESUMED"},
        doc="0-3",
    )
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


@dataclass(frozen=True)
class EmulatorXenstoreData:
    """§2 EMULATOR_XENSTORE_DATA: ``(key, value)`` pairs, each NUL-terminated on the wire.

    >>> v = EmulatorXenstoreData(2, 0, ((b"physmap", b"1"),))
    >>> b"".join(bytes(p) for p in LIBXL.by_name("EMULATOR_XENSTORE_DATA").encode(v))[8:]
    b'physmap\\x001\\x00'
    """

    emulator_id: int
    index: int
    pairs: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class EmulatorContext:
    """§2 EMULATOR_CONTEXT: an opaque emulator save blob."""

    emulator_id: int
    index: int
    blob: bytes


@dataclass(frozen=True)
class LibxcContext:
    """§2 LIBXC_CONTEXT (empty on the wire) and the libxc stream that follows it."""

    stream: LibxcStream


@dataclass(frozen=True)
class CheckpointEnd:
    """§2 CHECKPOINT_END; ``libxc`` is the libxc batch that resumes right after it.

    ``libxc`` is None unless the libxc stream stood at a CHECKPOINT; the
    batch reuses the first batch's headers, which are not written again.
    """

    libxc: LibxcStream | None = None


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

        Raises :class:`~xenlu.errors.EncodeError` if the optional data is
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


# --- record body codecs ----------------------------------------------------------

_EMU = EmulatorHeader.LAYOUT
_EMU_CHECK = _EMU.checker(None)
_CPS = CheckpointState.LAYOUT
_CPS_CHECK = _CPS.checker(None)
_END = End()


def _dec_empty(body: memoryview, ctx: Ctx) -> Any:
    if len(body):
        ctx.fail_length(0)
    return None


def _dec_end(body: memoryview, ctx: Ctx) -> End:
    _dec_empty(body, ctx)
    return _END


def _enc_end(value: Any) -> Sequence[Any]:
    if not isinstance(value, End):
        raise EncodeError(f"END: expected End, got {type(value).__name__}")
    return ()


def _dec_checkpoint_end(body: memoryview, ctx: Ctx) -> CheckpointEnd:
    _dec_empty(body, ctx)
    return CheckpointEnd()


def _enc_checkpoint_end(value: Any) -> Sequence[Any]:
    if not isinstance(value, CheckpointEnd):
        raise EncodeError(f"CHECKPOINT_END: expected CheckpointEnd, got {type(value).__name__}")
    return ()


def _enc_libxc_context(value: Any) -> Sequence[Any]:
    if not isinstance(value, LibxcContext) or not isinstance(value.stream, LibxcStream):
        raise EncodeError(
            f"LIBXC_CONTEXT: expected LibxcContext(LibxcStream), got {type(value).__name__}"
        )
    return ()


def _emulator_header(body: memoryview, ctx: Ctx) -> tuple[int, int]:
    if len(body) < 8:
        ctx.fail_length(">= 8 (emulator header)")
    t = _EMU.unpack_tuple(body)
    v = _EMU_CHECK(t)
    if v is not None:
        ctx.fail_violation(v)
    return t[0], t[1]


def _dec_xenstore(body: memoryview, ctx: Ctx) -> EmulatorXenstoreData:
    emu_id, index = _emulator_header(body, ctx)
    n = len(body)
    pairs: tuple[tuple[bytes, bytes], ...] = ()
    if n > 8:
        data = bytes(body[8:])
        # §2: packed key\0value\0 pairs: NUL-terminated, an even number of strings.
        if data[-1] != 0:
            ctx.fail(
                "xenstore data not NUL terminated",
                at=8,
                field="data",
                expected="a NUL as the last byte",
                got=data[-1],
            )
        parts = data[:-1].split(b"\0")
        if len(parts) % 2:
            ctx.fail(
                "xenstore data holds an odd number of strings",
                at=8,
                field="data",
                expected="key/value pairs",
                got=len(parts),
            )
        keys = parts[0::2]
        at = 8
        for key, val in zip(keys, parts[1::2], strict=True):
            problem = _xenstore_key_problem(key)
            if problem is not None:
                ctx.fail(
                    f"xenstore data: {problem[0]}",
                    at=at,
                    field="data",
                    expected=problem[1],
                    got=repr(key),
                )
            at += len(key) + len(val) + 2
        pairs = tuple(zip(keys, parts[1::2], strict=True))
    return EmulatorXenstoreData(emu_id, index, pairs)


def _xenstore_key_problem(key: bytes) -> tuple[str, str] | None:
    """Why ``key`` may not be a xenstore key of EMULATOR_XENSTORE_DATA, or None.

    Xen's ``libxl__restore_emulator_xenstore_data()`` refuses an empty key
    ("empty key found in xenstore data") and an absolute one ("Key in
    xenstore data not relative"); the libxl spec allows keys "strictly as
    alphanumeric ASCII and -/_@" (Xen's reader leaves that to xenstored,
    which refuses the write).
    """
    if not key:
        return "empty key", "a non-empty key"
    if key[0] == 0x2F:  # "/"
        return "key not relative", "a key relative to the device model's tree"
    if key.translate(None, XENSTORE_KEY_CHARS):
        return "key outside the xenstore alphabet", "alphanumeric ASCII and -/_@"
    return None


def _emu_hdr(value: Any, name: str) -> bytes:
    hdr = EmulatorHeader(emulator_id=value.emulator_id, index=value.index)
    v = _EMU.check(hdr)
    if v is not None:
        raise EncodeError(f"{name}: {v.field}: {v.message}: expected {v.expected}, got {v.got}")
    return _EMU.pack(hdr)


def _enc_xenstore(value: Any) -> Sequence[Any]:
    if not isinstance(value, EmulatorXenstoreData):
        raise EncodeError(
            f"EMULATOR_XENSTORE_DATA: expected EmulatorXenstoreData, got {type(value).__name__}"
        )
    out: list[bytes] = [_emu_hdr(value, "EMULATOR_XENSTORE_DATA")]
    for pair in value.pairs:
        if len(pair) != 2:
            raise EncodeError("EMULATOR_XENSTORE_DATA: every pair must be (key, value)")
        for s in pair:
            if not isinstance(s, (bytes, bytearray)) or b"\0" in s:
                raise EncodeError(
                    "EMULATOR_XENSTORE_DATA: keys and values must be bytes without NUL"
                )
            out.append(bytes(s) + b"\0")
        problem = _xenstore_key_problem(bytes(pair[0]))
        if problem is not None:
            raise EncodeError(f"EMULATOR_XENSTORE_DATA: {problem[0]}: {bytes(pair[0])!r}")
    return out


def _dec_emulator_context(body: memoryview, ctx: Ctx) -> EmulatorContext:
    emu_id, index = _emulator_header(body, ctx)
    return EmulatorContext(emu_id, index, bytes(body[8:]))


def _enc_emulator_context(value: Any) -> Sequence[Any]:
    if not isinstance(value, EmulatorContext):
        raise EncodeError(f"EMULATOR_CONTEXT: expected EmulatorContext, got {type(value).__name__}")
    hdr = _emu_hdr(value, "EMULATOR_CONTEXT")
    return (hdr, value.blob) if value.blob else (hdr,)


def _dec_checkpoint_state(body: memoryview, ctx: Ctx) -> CheckpointState:
    if len(body) != _CPS.size:
        ctx.fail_length(_CPS.size)
    t = _CPS.unpack_tuple(body)
    v = _CPS_CHECK(t)
    if v is not None:
        ctx.fail_violation(v)
    value: CheckpointState = _CPS.from_tuple(t)
    return value


def _enc_checkpoint_state(value: Any) -> Sequence[Any]:
    if not isinstance(value, CheckpointState):
        raise EncodeError(f"CHECKPOINT_STATE: expected CheckpointState, got {type(value).__name__}")
    v = _CPS.check(value)
    if v is not None:
        raise EncodeError(f"CHECKPOINT_STATE: {v.field}: {v.message}")
    return (_CPS.pack(value),)


def _records() -> tuple[RecordSpec, ...]:
    L = LibxlType
    out: list[RecordSpec] = []
    for code, name, dec, enc, vt, lays in (
        (L.END, "END", _dec_end, _enc_end, End, ()),
        (
            L.LIBXC_CONTEXT,
            "LIBXC_CONTEXT",
            _dec_empty,
            _enc_libxc_context,
            LibxcContext,
            (),
        ),
        (
            L.EMULATOR_XENSTORE_DATA,
            "EMULATOR_XENSTORE_DATA",
            _dec_xenstore,
            _enc_xenstore,
            EmulatorXenstoreData,
            (EmulatorHeader,),
        ),
        (
            L.EMULATOR_CONTEXT,
            "EMULATOR_CONTEXT",
            _dec_emulator_context,
            _enc_emulator_context,
            EmulatorContext,
            (EmulatorHeader,),
        ),
        (
            L.CHECKPOINT_END,
            "CHECKPOINT_END",
            _dec_checkpoint_end,
            _enc_checkpoint_end,
            CheckpointEnd,
            (),
        ),
        (
            L.CHECKPOINT_STATE,
            "CHECKPOINT_STATE",
            _dec_checkpoint_state,
            _enc_checkpoint_state,
            CheckpointState,
            (CheckpointState,),
        ),
    ):
        out.append(
            RecordSpec(
                family="libxl",
                type=code,
                name=name,
                decode=dec,
                encode=enc,
                value_type=vt,
                layouts=lays,
            )
        )
    return tuple(out)


#: The libxl records (§2): the one explicit list :data:`~xenlu.registry.LIBXL` loads.
RECORDS = _records()


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
            # No "may be ignored" rule in the libxl spec, and Xen's reader fails
            # every type it does not know, optional (bit 31) or not.
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
            records.append(
                Record(rtype, UnknownRecord(rtype, bytes(buf[body_at : body_at + length])), hpos)
            )
            continue
        if rtype == L.LIBXC_CONTEXT and first is not None:
            raise grammar_error("second LIBXC_CONTEXT record", hpos, idx, rtype)
        if rtype == L.END and at_checkpoint:
            raise grammar_error(
                "END while the libxc stream stands at a CHECKPOINT", hpos, idx, rtype
            )
        if rtype == L.CHECKPOINT_END and not at_checkpoint:
            raise grammar_error("CHECKPOINT_END closes no libxc CHECKPOINT", hpos, idx, rtype)
        if rtype == L.CHECKPOINT_STATE:
            raise grammar_error(
                "CHECKPOINT_STATE in a libxl stream (COLO's checkpoint-state exchange only)",
                hpos,
                idx,
                rtype,
            )
        if (
            rtype in (L.EMULATOR_XENSTORE_DATA, L.EMULATOR_CONTEXT)
            and first is not None
            and first.domain.type == DHDR_TYPE_PV
        ):
            raise grammar_error("emulator record in a PV domain's stream", hpos, idx, rtype)
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
    :func:`~xenlu.libxc_stream.decode_libxc` (``embedded=True``); offsets in
    errors are absolute. Bytes after the libxl END are kept in
    :attr:`LibxlStream.trailing`. Raises only
    :class:`~xenlu.errors.DecodeError` subclasses on bad input.

    >>> decode_libxl(b"LibxlFmt\\0\\0\\0\\2\\0\\0\\0\\0" + bytes(8)).records[0].type
    0
    """
    mv = as_buffer(buf)
    stream, end = _decode_libxl_at(mv, start, strict)
    return _with_trailing(stream, mv, end)


def encode_libxl(stream: LibxlStream, writer: RecordWriter) -> None:
    """Write ``stream``: header, then the records, each embedded libxc part after its marker.

    >>> from xenlu.framing import BytesSink
    >>> from xenlu.libxc import End
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
    :class:`~xenlu.errors.FramingError` (field ``optional_data_len`` or
    ``config_len``), xl's "Savefile truncated".

    The stream is a libxl stream when mandatory flag bit 1 (STREAMv2) is
    set, otherwise a libxc stream. Record indices count from the stream's
    first record; offsets are absolute in the file. Bytes after the
    stream's END are the stream's ``trailing``.

    >>> from xenlu.libxc import End
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
