"""libxl stream records (reference §2): type codes, layouts, values and body codecs.

The 16-byte big-endian :class:`LibxlHeader`, the record type codes
(:class:`LibxlType`), the emulator sub-header and CHECKPOINT_STATE
declared once, the values the decoders return, their body codecs and
:data:`RECORDS`, the one list :data:`~xenlu.core.registry.LIBXL` loads. The
stream walker and the xl save file are :mod:`xenlu.migration.libxl`, which
re-exports every name here.

    >>> LibxlType.LIBXC_CONTEXT, LibxlHeader.LAYOUT.size
    (<LibxlType.LIBXC_CONTEXT: 1>, 16)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from construct import Int32ub, Int32ul, Int64ub

from xenlu.core.errors import EncodeError
from xenlu.core.layout import Packed, Rsvd, fld, packed, reserved
from xenlu.core.registry import Ctx, RecordSpec
from xenlu.migration.libxc_records import End
from xenlu.migration.libxc_stream import LibxcStream

#: libxl header, big-endian (§2): ident, version, options.
LIBXL_IDENT = 0x4C6962786C466D74  # "LibxlFmt"
LIBXL_VERSION = 2
LIBXL_OPT_BE = 0x1  # bit 0: endianness, must be 0 (little-endian)
LIBXL_OPT_LEGACY = 0x2  # bit 1: written by convert-legacy-stream

#: Characters a xenstore key may use (libxl spec, EMULATOR_XENSTORE_DATA:
#: "strictly alphanumeric ASCII and -/_@").
XENSTORE_KEY_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-/_@"


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

    >>> from xenlu.core.registry import LIBXL
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


#: The libxl records (§2): the one explicit list :data:`~xenlu.core.registry.LIBXL` loads.
RECORDS = _records()
