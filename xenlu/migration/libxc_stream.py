"""The libxc migration stream v2/v3: image header, domain header, records, grammar.

Reference: ``xen-formats.md`` §1.2 (image header), §1.3 (domain header),
§1.4 (framing), §1.7 (ordering) and §1.8 (v2 vs v3). Record bodies are
decoded by the specs that :mod:`xenlu.migration.libxc` registers.

Theory of operation: :func:`decode_libxc` checks the two headers, then runs
one loop over :func:`~xenlu.core.framing.frames`. For each record it looks up a
precomputed grammar class (a dict built once per domain type), applies the
§1.7/§1.8 rules below, and calls the record's body decoder with one reused
:class:`~xenlu.core.registry.Ctx`. The loop stops at END (or, for a stream
embedded in a libxl stream, at CHECKPOINT).

Grammar (:class:`~xenlu.core.errors.GrammarError`, at the record header, field
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
  PAGE_DATA;
* CHECKPOINT_DIRTY_PFN_LIST belongs to the COLO back channel and is refused
  in the forward streams xenlu reads (Xen's ``restore()``: "Mandatory record
  ... not handled").

END is the last record; bytes after it in a file belong to the container
and are kept, not judged (:attr:`LibxcStream.trailing`).

Unknown mandatory types raise :class:`~xenlu.core.errors.UnknownRecordError`
(``strict=True``) or are kept as :class:`~xenlu.core.registry.UnknownRecord`;
unknown optional types (bit 31) are always kept.

Decode and encode::

    >>> from xenlu.migration.libxc import End
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from construct import Int16ub, Int16ul, Int32ub, Int32ul, Int64ub

from xenlu.core.errors import (
    CallerError,
    DecodeError,
    EncodeError,
    FramingError,
    VersionError,
)
from xenlu.core.framing import (
    HDR,
    REC_LENGTH_MAX,
    RecordWriter,
    as_buffer,
    frame_at,
    gc_paused,
    written_bytes,
)
from xenlu.core.layout import Packed, Rsvd, fld, packed, reserved
from xenlu.core.registry import LIBXC, OPTIONAL, Ctx, Record, UnknownRecord, unknown_mandatory
from xenlu.core.values import omitted_when_empty
from xenlu.migration.libxc import BODY_ACCEPT, BODY_CHECKS, GUEST_WIDTH
from xenlu.migration.libxc_grammar import (
    CONTENT,
    DHDR_TYPE_PV,
    State,
    admit,
    at_end,
    is_last,
    steady,
)
from xenlu.migration.libxc_records import RecType, StaticDataEnd, X86PvInfo

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
#: :class:`~xenlu.core.layout.Layout` only handles little-endian fields, so this
#: one layout is declared as a plain ``struct`` here.
IHDR_MARKER = 0xFFFFFFFFFFFFFFFF
IHDR_ID = 0x58454E46  # "XENF"
IHDR_OPT_BE = 0x0001  # options bit 0: 1 = big-endian (unsupported, §1.1)
IHDR_SIZE = 24
DHDR_SIZE = 16

_R = RecType
END = _R.END
CHECKPOINT = _R.CHECKPOINT
SDE = _R.STATIC_DATA_END


@packed(name="IMAGE_HEADER")
class ImageHeader(Packed):
    """The 24-byte big-endian image header (§1.2; Python ``!QIIHHI``).

    The marker, id and version rules raise their own errors in the decoder
    (a bad version is a :class:`~xenlu.core.errors.VersionError`).

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

    ``trailing`` holds the bytes that follow END in the input: END is the
    last *record* of the stream, not the end of the file, and what follows
    belongs to the container (Xen's restorer stops reading at END;
    ``convert-legacy-stream -f libxc`` puts the raw qemu record there). The
    encoder writes them back after END, so re-encoding is byte-exact. A
    stream embedded in a libxl stream has none (the libxl reader goes on).
    Record equality ignores offsets, so ``decode(encode(s)) == s``.
    """

    header: ImageHeader
    domain: DomainHeader
    records: list[Record]
    trailing: bytes = omitted_when_empty()

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


# --- headers (§1.2, §1.3) -------------------------------------------------------

_IHDR = ImageHeader.LAYOUT
_IHDR_RESERVED = _IHDR.checker(None)  # the declaration's reserved fields
#: The image header's own rules, in the order they are checked: (field, test,
#: error class, message, expected). Offsets come from the declaration.
_IHDR_RULES: tuple[tuple[str, Callable[[int], bool], type[DecodeError], str, object], ...] = (
    # §1.9: a legacy (pre-4.6) image has a zero bit in its first 8 octets.
    (
        "marker",
        lambda v: v == IHDR_MARKER,
        FramingError,
        "not a libxc v2/v3 stream (bad image marker; a legacy image?)",
        IHDR_MARKER,
    ),
    ("id", lambda v: v == IHDR_ID, FramingError, "bad image id", IHDR_ID),
    # §1.1: the C restorer accepts 2 <= version <= 3.
    ("version", lambda v: v in (2, 3), VersionError, "unsupported libxc image version", "2 or 3"),
    (
        "options",
        lambda v: not v & IHDR_OPT_BE,
        FramingError,
        "big-endian streams are not supported",
        "bit 0 clear (little-endian)",
    ),
    ("options", lambda v: not v, FramingError, "reserved image option bits set", "bits 1-15 clear"),
)


def _truncated(what: str, at: int, size: int, n: int) -> FramingError:
    return FramingError(
        f"{what} truncated", offset=at, expected=f"{size} bytes", got=max(0, n - at)
    )


def decode_headers(buf: memoryview, start: int) -> tuple[ImageHeader, DomainHeader]:
    n = len(buf)
    if n - start < IHDR_SIZE:
        raise _truncated("image header", start, IHDR_SIZE, n)
    t = _IHDR.unpack_tuple(buf, start)
    for name, ok, cls, message, expected in _IHDR_RULES:
        fi = _IHDR.field(name)
        v = t[_IHDR.fields.index(fi)]
        if not ok(v):
            raise cls(message, offset=start + fi.offset, field=name, expected=expected, got=v)
    bad = _IHDR_RESERVED(t)
    if bad is not None:
        raise FramingError(
            bad.message,
            offset=start + bad.offset,
            field=bad.field,
            expected=bad.expected,
            got=bad.got,
        )
    header: ImageHeader = _IHDR.from_tuple(t)
    dstart = start + IHDR_SIZE
    if n - dstart < DHDR_SIZE:
        raise _truncated("domain header", dstart, DHDR_SIZE, n)
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


# --- the walker ------------------------------------------------------------------

BodyFn = Callable[[memoryview, Ctx], Any]
_BODY_FNS: dict[bool, tuple[int, dict[int, BodyFn]]] = {}


def body_fns(build: bool) -> dict[int, BodyFn]:
    """type -> body decoder (``build``) or check-only function, rebuilt if LIBXC grows."""
    cached = _BODY_FNS.get(build)
    if cached is not None and cached[0] == len(LIBXC):
        return cached[1]
    fns: dict[int, BodyFn] = {spec.type: spec.decode for spec in LIBXC}
    if not build:
        fns.update(BODY_CHECKS)
        # Check-only: the acceptor first, the exact check (which locates the
        # error) only when it is unsure — the same test the steady run makes.
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


def _never(buf: Any, off: int, n: int) -> bool:
    return False


class Build:
    """The walker's handler for :func:`decode_libxc`: every record decoded and kept."""

    keep = True

    def __init__(self) -> None:
        self.bodies = body_fns(True)
        self.ctx = Ctx(None, 0, 0, 0)

    def run(self, buf: memoryview, pos: int, index: int, st: State) -> tuple[int, int]:
        return pos, index


class Check:
    """The check-only handler (:func:`verify_libxc`): no record is kept, and
    the records that :func:`~xenlu.migration.libxc_grammar.steady` says leave the
    grammar state as it is are taken in a tight loop — inline framing, one
    dict lookup and the record's acceptor
    (:data:`~xenlu.migration.libxc.BODY_ACCEPT`); a body the acceptor is unsure of
    goes through its exact check, which raises the located error."""

    keep = False

    def __init__(self, embedded: bool) -> None:
        self.bodies = body_fns(False)
        self.embedded = embedded
        self.ctx = Ctx(None, 0, 0, 0)
        self._hot: dict[tuple[Any, ...], dict[int, Any]] = {}

    def _steady(self, st: State) -> dict[int, Any]:
        key = st.key()
        hot = self._hot.get(key)
        if hot is None:
            kinds = steady(st, self.bodies, self.embedded)
            hot = self._hot[key] = {t: BODY_ACCEPT.get(t) or _never for t in kinds}
        return hot

    def run(self, buf: memoryview, pos: int, index: int, st: State) -> tuple[int, int]:
        hot = self._steady(st).get
        checks, ctx = self.bodies, self.ctx
        unpack = HDR.unpack_from
        end = len(buf)
        rec_max, zeros = REC_LENGTH_MAX, _ZEROS8
        while pos + 8 <= end:
            rtype, length = unpack(buf, pos)
            body = pos + 8
            # frame_at(), inlined: this loop runs once per record; anything
            # it doubts goes to the walker's exact path.
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
        return pos, index


_ZEROS8 = bytes(8)


def _walk(
    buf: memoryview,
    pos: int,
    index: int,
    st: State,
    strict: bool,
    embedded: bool,
    h: Build | Check,
) -> tuple[list[Record], int, int]:
    """Walk the records from ``pos`` up to END (or CHECKPOINT when embedded)
    against the grammar tables, with handler ``h``: the records (when ``h``
    keeps them), the end offset and the next record index."""
    records: list[Record] = []
    append = records.append
    get = h.bodies.get
    keep = h.keep
    run = None if keep else h.run
    # One Ctx for the exact path and the handler's tight loop: a body check
    # may leave facts in ``ctx.extra`` for later records (the X86_PV_INFO
    # guest width that X86_PV_P2M_FRAMES needs).
    ctx = h.ctx
    end = len(buf)
    while True:
        if run is not None:
            pos, index = run(buf, pos, index, st)
        if pos >= end:
            raise FramingError(
                "stream ends before END",
                offset=end,
                record_index=index,
                expected="another record (END missing)",
            )
        rtype, length, stop = frame_at(buf, pos, end, index)
        admit(st, index, pos, rtype)
        body_at = pos + 8
        fn = get(rtype)
        if fn is None:
            if strict and not rtype & OPTIONAL:
                raise unknown_mandatory(pos, index, rtype)
            if keep:
                body = bytes(buf[body_at : body_at + length])
                append(Record(rtype, UnknownRecord(rtype, body), pos))
        else:
            ctx.index, ctx.type, ctx.offset, ctx.length = index, rtype, body_at, length
            value = fn(buf[body_at : body_at + length], ctx)
            if keep:
                append(Record(rtype, value, pos))
        if is_last(rtype, embedded):
            at_end(st, index, pos, rtype)
            return records, stop, index + 1
        pos, index = stop, index + 1


def _decode_records(
    buf: memoryview,
    pos: int,
    index: int,
    st: State,
    strict: bool,
    embedded: bool,
    history: Iterable[Record] = (),
) -> tuple[list[Record], int, int]:
    """Decode records from ``pos`` up to END (or CHECKPOINT when embedded);
    ``history``: the records of earlier batches of the same stream."""
    h = Build()
    for r in history:
        if isinstance(r.value, X86PvInfo):
            h.ctx.extra[GUEST_WIDTH] = r.value.guest_width
    with gc_paused():
        return _walk(buf, pos, index, st, strict, embedded, h)


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
    Otherwise the bytes after END are kept in :attr:`LibxcStream.trailing`
    (``end_offset`` is still where END stops).

    Raises only :class:`~xenlu.core.errors.DecodeError` subclasses on bad input.

    >>> from xenlu.migration.libxc import End, StaticDataEnd
    >>> s = LibxcStream(ImageHeader(version=3),
    ...                 DomainHeader(type=1, page_shift=12, xen_major=4, xen_minor=17),
    ...                 [Record(0x10, StaticDataEnd()), Record(0, End())])
    >>> decode_libxc(libxc_bytes(s))[0].records[-1].name
    'END'
    """
    mv = as_buffer(buf)
    header, domain = decode_headers(mv, start)
    st = State(header.version, domain.type)
    records, end, nxt = _decode_records(
        mv, start + IHDR_SIZE + DHDR_SIZE, index, st, strict, embedded
    )
    # Nothing after END is part of the libxc stream (Xen's restore() stops
    # there): what follows in a file is the container's, kept, not judged.
    trailing = b"" if embedded else bytes(mv[end:])
    return LibxcStream(header, domain, records, trailing), end, nxt


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
    st = State(stream.header.version, stream.domain.type)
    history = list(history)
    st.replay(history)
    records, end, nxt = _decode_records(mv, start, index, st, strict, True, history)
    return LibxcStream(stream.header, stream.domain, records), end, nxt


def verify_libxc(buf: bytes | bytearray | memoryview, *, strict: bool = True) -> None:
    """Check a whole libxc stream file; raise the first :class:`DecodeError`, else None.

    Runs exactly the checks of :func:`decode_libxc` and raises the same
    errors in one walk, building no record values (:class:`Check`); bytes
    after END are not judged (:attr:`LibxcStream.trailing`).

    >>> verify_libxc(b"")
    Traceback (most recent call last):
    ...
    xenlu.core.errors.FramingError: offset 0x0: image header truncated: expected 24 bytes, got 0
    """
    mv = as_buffer(buf)
    header, domain = decode_headers(mv, 0)
    st = State(header.version, domain.type)
    _walk(mv, IHDR_SIZE + DHDR_SIZE, 0, st, strict, False, Check(False))


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

    >>> from xenlu.core.framing import BytesSink
    >>> from xenlu.migration.libxc import End
    >>> w = RecordWriter(BytesSink())
    >>> encode_libxc(LibxcStream(ImageHeader(version=2), DomainHeader(type=2,
    ...     page_shift=12, xen_major=4, xen_minor=11), [Record(0, End())]), w)
    >>> w.pos
    48
    """
    writer.write(stream.header.pack())
    writer.write(_DHDR.pack(stream.domain))
    encode_libxc_records(stream.records, writer)
    if stream.trailing:
        writer.write(stream.trailing)


def libxc_bytes(stream: LibxcStream) -> bytes:
    """``stream`` encoded into one ``bytes`` object (convenience for small streams)."""
    return written_bytes(encode_libxc, stream)


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
    byte-identical, and so are the bytes after END (``trailing``).
    :class:`CallerError` if ``stream`` is not v2.

    >>> from xenlu.migration.libxc import End
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
        if r.type in CONTENT:
            at = i
            break
    else:
        if records and records[-1].type in (END, CHECKPOINT):
            at = len(records) - 1
    out = [Record(r.type, r.value) for r in records]
    out.insert(at, Record(SDE, StaticDataEnd()))
    return LibxcStream(
        dataclasses.replace(stream.header, version=3), stream.domain, out, stream.trailing
    )
