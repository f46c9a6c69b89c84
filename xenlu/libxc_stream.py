"""The libxc migration stream v2/v3: image header, domain header, records, grammar.

Reference: ``xen-formats.md`` §1.2 (image header), §1.3 (domain header),
§1.4 (framing), §1.7 (ordering) and §1.8 (v2 vs v3). Record bodies are
decoded by the specs that :mod:`xenlu.libxc` registers.

Theory of operation: :func:`decode_libxc` checks the two headers, then runs
one loop over :func:`~xenlu.framing.frames`. For each record it looks up a
precomputed grammar class (a dict built once per domain type), applies the
§1.7/§1.8 rules below, and calls the record's body decoder with one reused
:class:`~xenlu.registry.Ctx`. The loop stops at END (or, for a stream
embedded in a libxl stream, at CHECKPOINT).

Grammar (:class:`~xenlu.errors.GrammarError`, at the record header, field
``type``):

* STATIC_DATA_END, X86_CPUID_POLICY and X86_MSR_POLICY are v3 records; a
  second STATIC_DATA_END is an error (§1.7, §1.8);
* in v3, memory and register content — PAGE_DATA, X86_PV_P2M_FRAMES, the PV
  vCPU records, SHARED_INFO, HVM_CONTEXT, HVM_PARAMS, X86_TSC_INFO — must
  follow STATIC_DATA_END, and a v3 stream must contain STATIC_DATA_END: a v3
  stream reaching END (or CHECKPOINT) without one fails at that record,
  with no field (Xen's verifier misses this, §1.8);
* HVM_CONTEXT and HVM_PARAMS only in HVM streams (in either order, as the
  real writer and restorer allow); X86_PV_INFO, X86_PV_P2M_FRAMES, the PV
  vCPU records and SHARED_INFO only in PV streams;
* PV strict order (§1.7): X86_PV_P2M_FRAMES needs an earlier X86_PV_INFO,
  PAGE_DATA an earlier X86_PV_P2M_FRAMES, the PV vCPU records an earlier
  PAGE_DATA.

Unknown mandatory types raise :class:`~xenlu.errors.UnknownRecordError`
(``strict=True``) or are kept as :class:`~xenlu.registry.UnknownRecord`;
unknown optional types (bit 31) are always kept.

Decode and encode::

    >>> from xenlu.libxc import End
    >>> s = LibxcStream(ImageHeader(version=3), DomainHeader(type=2, page_shift=12,
    ...                 xen_major=4, xen_minor=19), [Record(0x10, StaticDataEnd()),
    ...                 Record(0, End())])
    >>> data = libxc_bytes(s)
    >>> len(data)
    56
    >>> back, end, nxt = decode_libxc(memoryview(data))
    >>> back == s, end, nxt, back.domain_type, back.xen_version
    (True, 56, 2, 'hvm', (4, 19))
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from construct import Int16ub, Int16ul, Int32ub, Int32ul, Int64ub

from xenlu.errors import (
    CallerError,
    EncodeError,
    FramingError,
    GrammarError,
    UnknownRecordError,
    VersionError,
)
from xenlu.framing import (
    HDR,
    REC_LENGTH_MAX,
    BytesSink,
    RecordWriter,
    as_buffer,
    frames,
    record_end,
)
from xenlu.layout import Packed, Rsvd, fld, packed, reserved
from xenlu.libxc import BODY_ACCEPT, BODY_CHECKS, PV_VCPU_TYPES, RecType, StaticDataEnd
from xenlu.registry import LIBXC, OPTIONAL, Ctx, Record, UnknownRecord

__all__ = [
    "IHDR",
    "IHDR_ID",
    "IHDR_MARKER",
    "DomainHeader",
    "ImageHeader",
    "LibxcStream",
    "convert_v2_to_v3",
    "decode_libxc",
    "decode_libxc_continuation",
    "encode_libxc",
    "encode_libxc_records",
    "libxc_bytes",
    "verify_libxc",
]

#: Image header, always big-endian (§1.2): marker, id, version, options, and the
#: reserved ``_res1`` (u16) / ``_res2`` (u32), named rsvd0 / rsvd1 here.
#: :class:`~xenlu.layout.Layout` only handles little-endian fields, so this
#: one layout is declared as a plain ``struct`` here.
IHDR_MARKER = 0xFFFFFFFFFFFFFFFF
IHDR_ID = 0x58454E46  # "XENF"
IHDR_OPT_BE = 0x0001  # options bit 0: 1 = big-endian (unsupported, §1.1)
IHDR_SIZE = 24
DHDR_SIZE = 16

DHDR_TYPE_PV = 1
DHDR_TYPE_HVM = 2

_R = RecType
END = _R.END
CHECKPOINT = _R.CHECKPOINT
SDE = _R.STATIC_DATA_END


@packed(name="IMAGE_HEADER")
class ImageHeader(Packed):
    """The 24-byte big-endian image header (§1.2; Python ``!QIIHHI``).

    The marker, id and version rules raise their own errors in the decoder
    (a bad version is a :class:`~xenlu.errors.VersionError`).

    >>> ImageHeader(version=2).pack()[8:16].hex()
    '58454e4600000002'
    >>> ImageHeader.unpack(ImageHeader().pack()).version
    3
    """

    marker: int = fld(Int64ub, doc="0xFFFFFFFFFFFFFFFF", default=IHDR_MARKER)
    id: int = fld(Int32ub, doc='0x58454E46 "XENF"', default=IHDR_ID)
    version: int = fld(Int32ub, doc="2 or 3", default=3)
    options: int = fld(Int16ub, doc="bit 0 endianness (0 = LE); bits 1-15 reserved", default=0)
    rsvd0: ClassVar[Rsvd] = reserved(Int16ub)
    rsvd1: ClassVar[Rsvd] = reserved(Int32ub)


IHDR = ImageHeader.LAYOUT.struct


@packed(name="DOMAIN_HEADER")
class DomainHeader(Packed):
    """The 16-byte domain header, stream (little-endian) byte order (§1.3).

    ``xen_major == 0`` marks a stream converted from a legacy image.
    """

    type: int = fld(Int32ul, values={1: "x86_pv", 2: "x86_hvm"}, doc="1 PV, 2 HVM")
    page_shift: int = fld(Int16ul, values={12: "4 KiB"}, doc="12 on x86")
    rsvd: ClassVar[Rsvd] = reserved(Int16ul)
    xen_major: int = fld(Int32ul)
    xen_minor: int = fld(Int32ul)


_DHDR = DomainHeader.LAYOUT
_DHDR_CHECK = _DHDR.checker(None)


@dataclass(eq=True)
class LibxcStream:
    """A decoded libxc stream: headers and records in order (END last).

    Record equality ignores offsets, so ``decode(encode(s)) == s``.
    """

    header: ImageHeader
    domain: DomainHeader
    records: list[Record]

    @property
    def version(self) -> int:
        """The image version, 2 or 3."""
        return self.header.version

    @property
    def xen_version(self) -> tuple[int, int]:
        """``(xen_major, xen_minor)`` of the saving Xen (from the domain header)."""
        return (self.domain.xen_major, self.domain.xen_minor)

    @property
    def domain_type(self) -> str:
        """``"pv"`` or ``"hvm"``."""
        return "pv" if self.domain.type == DHDR_TYPE_PV else "hvm"

    def records_of(self, type_code: int) -> list[Record]:
        """Every record of ``type_code``, in order."""
        return [r for r in self.records if r.type == type_code]


# --- grammar (§1.7, §1.8) -------------------------------------------------------

# Grammar classes: content (v3: after STATIC_DATA_END), wrong domain type,
# v3-only policy record, STATIC_DATA_END.
_G_FREE, _G_CONTENT, _G_WRONG_DOMAIN, _G_V3_ONLY, _G_SDE = 0, 1, 2, 3, 4
_CONTENT = frozenset(
    (
        _R.PAGE_DATA,
        _R.X86_PV_P2M_FRAMES,
        *PV_VCPU_TYPES,
        _R.SHARED_INFO,
        _R.HVM_CONTEXT,
        _R.HVM_PARAMS,
        _R.X86_TSC_INFO,
    )
)
_PV_ONLY = frozenset((_R.X86_PV_INFO, _R.X86_PV_P2M_FRAMES, *PV_VCPU_TYPES, _R.SHARED_INFO))
_HVM_ONLY = frozenset((_R.HVM_CONTEXT, _R.HVM_PARAMS))

# §1.7 PV strict order X86_PV_INFO -> X86_PV_P2M_FRAMES -> PAGE_DATA -> vCPU
# records, as stages: a record needs the stage its predecessor sets.
_PV_STAGE_SETS = {_R.X86_PV_INFO: 1, _R.X86_PV_P2M_FRAMES: 2, _R.PAGE_DATA: 3}
_PV_STAGE_NEEDS = {
    _R.X86_PV_P2M_FRAMES: 1,
    _R.PAGE_DATA: 2,
    **dict.fromkeys(PV_VCPU_TYPES, 3),
}
_PV_STAGE_NAMES = {1: "X86_PV_INFO", 2: "X86_PV_P2M_FRAMES", 3: "PAGE_DATA"}

#: type -> (grammar class, PV stage needed, PV stage set)
GrammarTable = dict[int, tuple[int, int, int]]


def _grammar_table(domain_type: int) -> GrammarTable:
    pv = domain_type == DHDR_TYPE_PV
    wrong = _HVM_ONLY if pv else _PV_ONLY
    classes = dict.fromkeys(_CONTENT, _G_CONTENT)
    classes.update(dict.fromkeys(wrong, _G_WRONG_DOMAIN))
    classes[_R.X86_CPUID_POLICY] = _G_V3_ONLY
    classes[_R.X86_MSR_POLICY] = _G_V3_ONLY
    classes[SDE] = _G_SDE
    if pv:
        for t in _PV_STAGE_SETS:
            classes.setdefault(t, _G_FREE)
    return {
        t: (
            c,
            _PV_STAGE_NEEDS.get(t, 0) if pv else 0,
            _PV_STAGE_SETS.get(t, 0) if pv else 0,
        )
        for t, c in classes.items()
    }


_TABLES = {DHDR_TYPE_PV: _grammar_table(DHDR_TYPE_PV), DHDR_TYPE_HVM: _grammar_table(DHDR_TYPE_HVM)}


def _name(t: int) -> str:
    return LIBXC.name_of(t) or f"{t:#010x}"


def _grammar(msg: str, offset: int, index: int, rtype: int, **kw: Any) -> GrammarError:
    return GrammarError(
        msg, offset=offset, record_index=index, record_type=rtype, field="type", **kw
    )


# --- decoding ------------------------------------------------------------------


def _decode_headers(buf: memoryview, start: int) -> tuple[ImageHeader, DomainHeader]:
    n = len(buf)
    if n - start < IHDR_SIZE:
        raise FramingError(
            "image header truncated",
            offset=start,
            expected=f"{IHDR_SIZE} bytes",
            got=max(0, n - start),
        )
    marker, ident, version, options, res1, res2 = IHDR.unpack_from(buf, start)
    if marker != IHDR_MARKER:
        # §1.9: a legacy (pre-4.6) image has a zero bit in its first 8 octets.
        raise FramingError(
            "not a libxc v2/v3 stream (bad image marker; a legacy image?)",
            offset=start,
            field="marker",
            expected=IHDR_MARKER,
            got=marker,
        )
    if ident != IHDR_ID:
        raise FramingError(
            "bad image id", offset=start + 8, field="id", expected=IHDR_ID, got=ident
        )
    if version not in (2, 3):
        # §1.1: the C restorer accepts 2 <= version <= 3.
        raise VersionError(
            "unsupported libxc image version",
            offset=start + 12,
            field="version",
            expected="2 or 3",
            got=version,
        )
    if options & IHDR_OPT_BE:
        raise FramingError(
            "big-endian streams are not supported",
            offset=start + 16,
            field="options",
            expected="bit 0 clear (little-endian)",
            got=options,
        )
    if options:
        raise FramingError(
            "reserved image option bits set",
            offset=start + 16,
            field="options",
            expected="bits 1-15 clear",
            got=options,
        )
    if res1:
        raise FramingError(
            "reserved field not zero", offset=start + 18, field="rsvd0", expected=0, got=res1
        )
    if res2:
        raise FramingError(
            "reserved field not zero", offset=start + 20, field="rsvd1", expected=0, got=res2
        )
    header = ImageHeader(marker=marker, id=ident, version=version, options=options)
    dstart = start + IHDR_SIZE
    if n - dstart < DHDR_SIZE:
        raise FramingError(
            "domain header truncated",
            offset=dstart,
            expected=f"{DHDR_SIZE} bytes",
            got=max(0, n - dstart),
        )
    t = _DHDR.unpack_tuple(buf, dstart)
    v = _DHDR_CHECK(t)
    if v is not None:
        raise FramingError(
            f"domain header: {v.message}",
            offset=dstart + v.offset,
            field=v.field,
            expected=v.expected,
            got=v.got,
        )
    domain: DomainHeader = _DHDR.from_tuple(t)
    return header, domain


class _State:
    """Grammar state carried across the batches of one libxc stream."""

    __slots__ = ("kind", "pv_stage", "seen_sde", "table", "v3")

    def __init__(self, version: int, domain_type: int) -> None:
        self.v3 = version >= 3
        self.table = _TABLES[domain_type]
        self.kind = "PV" if domain_type == DHDR_TYPE_PV else "HVM"
        self.seen_sde = False
        self.pv_stage = 0

    def replay(self, records: Iterable[Record]) -> None:
        """Advance the state over already decoded (valid) records."""
        for r in records:
            g = self.table.get(r.type)
            if g is not None:
                if g[0] == _G_SDE:
                    self.seen_sde = True
                self.pv_stage = max(self.pv_stage, g[2])


BodyFn = Callable[[memoryview, Ctx], Any]
_BODY_FNS: dict[bool, tuple[int, dict[int, BodyFn]]] = {}


def _body_fns(build: bool) -> dict[int, BodyFn]:
    """type -> body decoder (``build``) or check-only function, rebuilt if LIBXC grows."""
    cached = _BODY_FNS.get(build)
    if cached is not None and cached[0] == len(LIBXC):
        return cached[1]
    fns: dict[int, BodyFn] = {spec.type: spec.decode for spec in LIBXC}
    if not build:
        fns.update(BODY_CHECKS)
        # Check-only: the acceptor first, the exact check (which locates the
        # error) only when it is unsure — the same test the hot loop makes.
        for rtype, accept in BODY_ACCEPT.items():
            if rtype in fns:
                fns[rtype] = _accepting(accept, fns[rtype])
    _BODY_FNS[build] = (len(LIBXC), fns)
    return fns


def _accepting(accept: Any, exact: BodyFn) -> BodyFn:
    def check(body: memoryview, ctx: Ctx) -> None:
        if not accept(body, 0, len(body)):
            exact(body, ctx)

    return check


def _decode_records(
    buf: memoryview,
    pos: int,
    index: int,
    st: _State,
    strict: bool,
    embedded: bool,
    build: bool = True,
) -> tuple[list[Record], int, int]:
    """Decode records from ``pos`` up to END (or CHECKPOINT when embedded).

    With ``build=False`` only the checks run and the list stays empty.
    """
    # The loop allocates only acyclic objects; running the cyclic garbage
    # collector over them every few hundred records would cost more than the
    # decoding itself, so it is paused for the loop and restored after.
    gc_was_on = build and gc.isenabled()
    if gc_was_on:
        gc.disable()
    try:
        if not build:
            return _verify_loop(buf, pos, index, st, strict, embedded)
        return _record_loop(buf, pos, index, st, strict, embedded, build)
    finally:
        if gc_was_on:
            gc.enable()


_HOT: dict[tuple[Any, ...], dict[int, Any]] = {}
_HDR_UNPACK = HDR.unpack_from
_ZEROS8 = bytes(8)


def _never(buf: Any, off: int, n: int) -> bool:
    return False


def _hot_table(st: _State, checks: dict[int, BodyFn], embedded: bool) -> dict[int, Any]:
    """type -> acceptor for the records that, in grammar state ``st``, are
    allowed and leave the state unchanged (the bulk of any stream); a body
    the acceptor is unsure of goes to ``checks[type]``."""
    key = (id(st.table), st.v3, st.seen_sde, st.pv_stage, embedded, len(checks))
    hot = _HOT.get(key)
    if hot is not None:
        return hot
    hot = {}
    for rtype in checks:
        if rtype == END or (embedded and rtype == CHECKPOINT):
            continue
        g = st.table.get(rtype)
        if g is not None:
            cls, need, sets = g
            if cls in (_G_WRONG_DOMAIN, _G_SDE) or need > st.pv_stage or sets > st.pv_stage:
                continue
            if cls == _G_CONTENT and st.v3 and not st.seen_sde:
                continue
            if cls not in (_G_CONTENT, _G_FREE) and not st.v3:
                continue
        hot[rtype] = BODY_ACCEPT.get(rtype) or _never
    _HOT[key] = hot
    return hot


def _verify_loop(
    buf: memoryview, pos: int, index: int, st: _State, strict: bool, embedded: bool
) -> tuple[list[Record], int, int]:
    """The structural fast path of :func:`_record_loop` (``build=False``).

    Framing is inlined and each record costs one dict lookup and one
    acceptor call (:data:`~xenlu.libxc.BODY_ACCEPT`) as long as it is allowed
    in the current grammar state and does not change it. Anything else —
    a state change (STATIC_DATA_END, PV stages), END, an unknown type or any
    framing or grammar doubt — hands the rest of the stream to
    :func:`_record_loop`, which raises the exact error; a body the acceptor
    is unsure of goes through the record's own check function.
    """
    checks = _body_fns(False)
    ctx = Ctx(None, 0, 0, 0)
    unpack = _HDR_UNPACK
    end = len(buf)
    rec_max, zeros = REC_LENGTH_MAX, _ZEROS8
    while True:
        hot = _hot_table(st, checks, embedded).get
        while pos + 8 <= end:
            rtype, length = unpack(buf, pos)
            body = pos + 8
            # record_end(), inlined: this loop runs once per record.
            stop = body + length + (-length & 7)
            if length > rec_max or stop > end:
                break
            if length & 7 and buf[body + length : stop] != zeros[: stop - body - length]:
                break
            accept = hot(rtype)
            if accept is None:
                break
            if not accept(buf, body, length):
                ctx.index, ctx.type, ctx.offset, ctx.length = index, rtype, body, length
                checks[rtype](buf[body : body + length], ctx)
            index += 1
            pos = stop
        else:
            break
        # One record outside the hot table: handled here when it is a valid
        # state change, else by the exact loop.
        rtype, length = unpack(buf, pos)
        g = st.table.get(rtype)
        if g is None or rtype == END or (embedded and rtype == CHECKPOINT) or rtype not in checks:
            break
        cls, need, sets = g
        if cls == _G_WRONG_DOMAIN or need > st.pv_stage:
            break
        if cls == _G_CONTENT:
            if st.v3 and not st.seen_sde:
                break
        elif cls != _G_FREE and (not st.v3 or (cls == _G_SDE and st.seen_sde)):
            break
        body = pos + 8
        stop = record_end(buf, pos, length, end)
        if stop < 0:
            break
        # checks[] tries the record's acceptor first (see _body_fns).
        ctx.index, ctx.type, ctx.offset, ctx.length = index, rtype, body, length
        checks[rtype](buf[body : body + length], ctx)
        if sets > st.pv_stage:
            st.pv_stage = sets
        if cls == _G_SDE:
            st.seen_sde = True
        index += 1
        pos = stop
    return _record_loop(buf, pos, index, st, strict, embedded, False)


def _record_loop(
    buf: memoryview,
    pos: int,
    index: int,
    st: _State,
    strict: bool,
    embedded: bool,
    build: bool,
) -> tuple[list[Record], int, int]:
    records: list[Record] = []
    append = records.append
    get = _body_fns(build).get
    table = st.table
    v3 = st.v3
    ctx = Ctx(None, 0, 0, 0)
    nxt = index
    for idx, hpos, rtype, length in frames(buf, pos, len(buf), index):
        g = table.get(rtype)
        if g is not None:
            cls, need, sets = g
            if cls == _G_WRONG_DOMAIN:
                raise _grammar(
                    f"{_name(rtype)} not allowed in a {st.kind} stream", hpos, idx, rtype
                )
            if need > st.pv_stage:
                # §1.7: PV strict order.
                raise _grammar(
                    f"{_name(rtype)} before {_PV_STAGE_NAMES[need]} in a PV stream",
                    hpos,
                    idx,
                    rtype,
                    expected=f"{_PV_STAGE_NAMES[need]} first",
                )
            if sets > st.pv_stage:
                st.pv_stage = sets
            if cls == _G_CONTENT:
                if v3 and not st.seen_sde:
                    # §1.7: STATIC_DATA_END before any memory or register content.
                    raise _grammar(
                        f"{_name(rtype)} before STATIC_DATA_END in a v3 stream",
                        hpos,
                        idx,
                        rtype,
                        expected="STATIC_DATA_END first",
                    )
            elif cls != _G_FREE:
                if not v3:
                    # §1.8: STATIC_DATA_END, CPUID and MSR policy records are v3 only.
                    raise _grammar(
                        f"{_name(rtype)} not allowed in a v2 stream",
                        hpos,
                        idx,
                        rtype,
                        expected="v3",
                    )
                if cls == _G_SDE:
                    if st.seen_sde:
                        raise _grammar("second STATIC_DATA_END", hpos, idx, rtype)
                    st.seen_sde = True
        body_at = hpos + 8
        fn = get(rtype)
        if fn is None:
            if strict and not rtype & OPTIONAL:
                raise UnknownRecordError(
                    "unknown mandatory record type",
                    offset=hpos,
                    record_index=idx,
                    record_type=rtype,
                    field="type",
                )
            if build:
                append(
                    Record(
                        rtype, UnknownRecord(rtype, bytes(buf[body_at : body_at + length])), hpos
                    )
                )
        else:
            ctx.index = idx
            ctx.type = rtype
            ctx.offset = body_at
            ctx.length = length
            value = fn(buf[body_at : body_at + length], ctx)
            if build:
                append(Record(rtype, value, hpos))
        if rtype == END or (embedded and rtype == CHECKPOINT):
            if v3 and not st.seen_sde:
                # §1.8: a v3 stream must contain STATIC_DATA_END ("missing"
                # errors name no field).
                raise GrammarError(
                    f"v3 stream reaches {_name(rtype)} without STATIC_DATA_END",
                    offset=hpos,
                    record_index=idx,
                    record_type=rtype,
                    expected="a STATIC_DATA_END record",
                )
            return records, body_at + length + (-length & 7), idx + 1
        nxt = idx + 1
    raise FramingError(
        "stream ends before END",
        offset=len(buf),
        record_index=nxt,
        expected="another record (END missing)",
    )


def decode_libxc(
    buf: bytes | bytearray | memoryview,
    start: int = 0,
    index: int = 0,
    *,
    strict: bool = True,
    embedded: bool = False,
) -> tuple[LibxcStream, int, int]:
    """Decode a libxc stream at ``start`` of ``buf``; return ``(stream, end_offset, next_index)``.

    ``index`` is the record index of the first record (libxl streams share
    one counter). ``embedded=True`` is for a stream inside a libxl stream:
    it may end at CHECKPOINT as well as END, and bytes may follow it.
    Otherwise trailing bytes after END are a :class:`FramingError`.

    Raises only :class:`~xenlu.errors.DecodeError` subclasses on bad input.

    >>> from xenlu.libxc import End, StaticDataEnd
    >>> s = LibxcStream(ImageHeader(version=3),
    ...                 DomainHeader(type=1, page_shift=12, xen_major=4, xen_minor=17),
    ...                 [Record(0x10, StaticDataEnd()), Record(0, End())])
    >>> decode_libxc(libxc_bytes(s))[0].records[-1].name
    'END'
    """
    mv = as_buffer(buf)
    header, domain = _decode_headers(mv, start)
    st = _State(header.version, domain.type)
    records, end, nxt = _decode_records(
        mv, start + IHDR_SIZE + DHDR_SIZE, index, st, strict, embedded
    )
    if not embedded:
        _no_trailing(mv, end)
    return LibxcStream(header, domain, records), end, nxt


def _no_trailing(mv: memoryview, end: int) -> None:
    if end != len(mv):
        # §1.4: END is the last record of a stream file ("missing"/trailing
        # errors name no field).
        raise FramingError(
            "bytes after END",
            offset=end,
            expected="end of input",
            got=f"{len(mv) - end} more bytes",
        )


def decode_libxc_continuation(
    buf: bytes | bytearray | memoryview,
    start: int,
    index: int,
    stream: LibxcStream,
    *,
    history: Iterable[Record] = (),
    strict: bool = True,
) -> tuple[LibxcStream, int, int]:
    """Decode the next batch of a checkpointed libxc stream (no headers).

    In a checkpointed libxl stream the libxc records resume right after the
    libxl CHECKPOINT_END record, without headers, and run to the next
    CHECKPOINT or END. ``stream`` is the batch that began the stream (its
    headers are reused); ``history`` holds every libxc record of the earlier
    batches, so the grammar state (STATIC_DATA_END seen, PV order) carries
    over. Returns a :class:`LibxcStream` holding this batch's records, the
    end offset and the next record index.
    """
    mv = as_buffer(buf)
    st = _State(stream.header.version, stream.domain.type)
    st.replay(history)
    records, end, nxt = _decode_records(mv, start, index, st, strict, True)
    return LibxcStream(stream.header, stream.domain, records), end, nxt


def verify_libxc(buf: bytes | bytearray | memoryview, *, strict: bool = True) -> None:
    """Check a whole libxc stream file; raise the first :class:`DecodeError`, else None.

    Runs exactly the checks of :func:`decode_libxc` and raises the same
    errors, but builds no record values (the structural fast path).

    >>> verify_libxc(b"")
    Traceback (most recent call last):
    ...
    xenlu.errors.FramingError: offset 0x0: image header truncated: expected 24 bytes, got 0
    """
    mv = as_buffer(buf)
    header, domain = _decode_headers(mv, 0)
    st = _State(header.version, domain.type)
    _, end, _ = _decode_records(mv, IHDR_SIZE + DHDR_SIZE, 0, st, strict, False, build=False)
    _no_trailing(mv, end)


# --- encoding ------------------------------------------------------------------


def _write_record(writer: RecordWriter, r: Record) -> None:
    value = r.value
    if isinstance(value, UnknownRecord):
        writer.record(r.type, value.body_for(r.type))
        return
    spec = LIBXC.get(r.type)
    if spec is None:
        raise EncodeError(f"unknown libxc record type {r.type:#010x} must hold an UnknownRecord")
    writer.record(r.type, spec.encode(value))


def encode_libxc_records(records: list[Record], writer: RecordWriter) -> None:
    """Write ``records`` (framed and padded) to ``writer``, without headers."""
    for r in records:
        _write_record(writer, r)


def encode_libxc(stream: LibxcStream, writer: RecordWriter) -> None:
    """Write ``stream``: image header, domain header, then every record.

    The encoder writes what it is given (it does not re-check the grammar;
    :func:`decode_libxc` does). :class:`EncodeError` if a value cannot be
    encoded.

    >>> from xenlu.framing import BytesSink
    >>> from xenlu.libxc import End
    >>> w = RecordWriter(BytesSink())
    >>> encode_libxc(LibxcStream(ImageHeader(version=2), DomainHeader(type=2,
    ...     page_shift=12, xen_major=4, xen_minor=11), [Record(0, End())]), w)
    >>> w.pos
    48
    """
    writer.write(stream.header.pack())
    writer.write(_DHDR.pack(stream.domain))
    encode_libxc_records(stream.records, writer)


def libxc_bytes(stream: LibxcStream) -> bytes:
    """``stream`` encoded into one ``bytes`` object (convenience for small streams)."""
    w = RecordWriter(BytesSink())
    encode_libxc(stream, w)
    sink = w.sink
    assert isinstance(sink, BytesSink)
    return sink.getvalue()


# --- v2 -> v3 ------------------------------------------------------------------


def convert_v2_to_v3(stream: LibxcStream) -> LibxcStream:
    """Upgrade a v2 stream to v3: header version 3 and an inserted STATIC_DATA_END.

    Where STATIC_DATA_END goes (reference §1.8, the point a v3 reader infers
    it in a v2 stream): before the first X86_PV_P2M_FRAMES of a PV stream or
    the first PAGE_DATA of an HVM stream. If neither exists — or if a record
    that v3 requires after STATIC_DATA_END (PAGE_DATA, X86_PV_P2M_FRAMES, a
    PV vCPU record, SHARED_INFO, HVM_CONTEXT, HVM_PARAMS, X86_TSC_INFO) comes
    earlier — it goes before the first such record instead; with none at
    all, before the final END (or CHECKPOINT). Every other record is kept
    byte-identical. :class:`CallerError` if ``stream`` is not v2.

    >>> from xenlu.libxc import End
    >>> v2 = LibxcStream(ImageHeader(version=2), DomainHeader(type=2, page_shift=12,
    ...                  xen_major=4, xen_minor=11), [Record(0, End())])
    >>> [r.name for r in convert_v2_to_v3(v2).records]
    ['STATIC_DATA_END', 'END']
    """
    if stream.header.version != 2:
        raise CallerError(f"convert_v2_to_v3: the stream is version {stream.header.version}, not 2")
    # The anchors (X86_PV_P2M_FRAMES for PV, PAGE_DATA for HVM) are content
    # records themselves, so "the first content record" covers both rules.
    records = stream.records
    at = len(records)
    for i, r in enumerate(records):
        if r.type in _CONTENT:
            at = i
            break
    else:
        if records and records[-1].type in (END, CHECKPOINT):
            at = len(records) - 1
    out = [Record(r.type, r.value) for r in records]
    out.insert(at, Record(SDE, StaticDataEnd()))
    return LibxcStream(dataclasses.replace(stream.header, version=3), stream.domain, out)
