"""Single-fault corruptions: the Corruption record and the layout sites of a valid stream."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xenlu.core.epochs import EPOCHS, Epoch
from xenlu.core.errors import CallerError, XenLUError
from xenlu.core.framing import crc32c, frames
from xenlu.core.layout import FieldInfo, Layout
from xenlu.core.registry import LIBXC, LU, RecordSpec, UnknownRecord
from xenlu.testing.strategies._records import array_field

# --- single-fault corruptions ---------------------------------------------------

#: Every fault :func:`corruptions` can make; ``*`` marks semantic (validation) faults.
FAULT_KINDS: dict[str, str] = {
    "padding": "a non-zero padding byte after a record body (FramingError)",
    "reserved": "a reserved field set non-zero (RecordError)",
    "flag": "a flag bit not valid in the stream's epoch (RecordError)",
    "value": "a value outside a field's allowed values or lo/hi bounds (RecordError)",
    "length": "a fixed-size record 8 bytes longer than its layout (RecordError)",
    "count": "an entry count that disagrees with the body length (RecordError)",
    "truncation": "the stream cut short (FramingError)",
    "crc": "a wrong section crc32c (ChecksumError)",
    "section_bytes": "a wrong section byte count (ChecksumError)",
    "owned_twice": "* a frame owned by a second domain (or twice by one)",
    "evtchn_nonreciprocal": "* an interdomain channel whose remote does not name it back",
    "grant_map_unowned": "* a grant map whose frame its granting domain does not own",
    "port_above_max": "* an event channel port above its domain's max_evtchn_port",
}
SEMANTIC = frozenset(k for k, v in FAULT_KINDS.items() if v.startswith("*"))

#: Fallback finding codes, used only while :mod:`xenlu.host.validation` does not say.
_DEFAULT_FINDINGS = {
    "owned_twice": "frame-owned-twice",
    "evtchn_nonreciprocal": "evtchn-not-reciprocal",
    "grant_map_unowned": "grant-map-mfn-not-owned",
    "port_above_max": "evtchn-port-above-max",
}

if TYPE_CHECKING:
    pass


def finding_codes() -> dict[str, str]:
    """Semantic fault kind → the finding code :func:`xenlu.host.validation.validate` reports."""
    try:
        import xenlu.host.validation as v
    except ImportError:
        return dict(_DEFAULT_FINDINGS)
    table = getattr(v, "CORRUPTION_FINDINGS", None)
    if isinstance(table, dict):
        return {**_DEFAULT_FINDINGS, **table}
    return dict(_DEFAULT_FINDINGS)


def expect_refused(decode: Callable[[], object], error: type[XenLUError], where: str) -> None:
    """Raise :class:`AssertionError` unless ``decode()`` raises ``error``
    (the structural half of every corruption's ``check``)."""
    try:
        decode()
    except error:
        return
    except XenLUError as exc:
        raise AssertionError(
            f"{where}: expected {error.__name__}, got {type(exc).__name__}: {exc}"
        ) from exc
    raise AssertionError(f"{where}: decoded, expected {error.__name__}")


@dataclass(frozen=True)
class Corruption:
    """One single-fault variant of a valid stream and how it must be caught.

    Exactly one of ``error`` (a structural fault: the decoder of ``format``
    must raise that class) and ``finding`` (a semantic fault: the stream
    decodes, and :func:`xenlu.host.validation.validate` must report that code) is
    set. ``where`` says in words what was changed.
    """

    kind: str
    data: bytes
    error: type[XenLUError] | None
    finding: str | None
    where: str
    format: str = "lu"

    @property
    def semantic(self) -> bool:
        """True for a fault only validation can see."""
        return self.finding is not None

    def check(self) -> None:
        """Raise :class:`AssertionError` unless the fault is caught as declared.

        Semantic faults need :mod:`xenlu.host.validation` (:class:`ImportError` without it).
        """
        from xenlu.api import decode

        if self.error is not None:
            expect_refused(lambda: decode(self.data, self.format), self.error, self.where)
            return
        from xenlu.host.validation import validate

        # Semantic faults are LU-only (_faults._semantic makes them from LU models).
        report = validate(decode(self.data, "lu"))
        codes = {f.code for f in report.findings}
        codes |= {o.code for o in getattr(report, "omitted", ())}
        if self.finding not in codes:
            raise AssertionError(
                f"{self.where}: validation did not report {self.finding}; "
                f"got {sorted(map(str, codes))}"
            )


@dataclass(frozen=True)
class Site:
    """``count`` instances of ``layout`` at absolute ``offset`` (stride = layout size)."""

    layout: Layout
    offset: int
    count: int
    record: str
    index: int  # record index in the stream
    whole: bool = False  # the layout is the whole record body


def _value_sites(spec: RecordSpec, value: Any, body: int, blen: int, idx: int) -> list[Site]:
    """Where each declared layout of one decoded record value lies in the input."""
    from xenlu.lu.host_records import CountHeader
    from xenlu.lu.io_records import (
        ControlBlock,
        EvtchnAbi,
        EvtchnAbiHeader,
        EvtchnPagesHeader,
        GrantTable,
        GrantTableHeader,
        IoreqRange,
        IoreqServerHeader,
        IoreqServers,
    )
    from xenlu.lu.records import Bulk

    n = spec.name

    def site(cls: Any, off: int, count: int = 1) -> Site:
        return Site(cls.LAYOUT if hasattr(cls, "LAYOUT") else cls, off, count, n, idx)

    lay = getattr(value, "LAYOUT", None)
    if isinstance(lay, Layout):
        return [Site(lay, body, 1, n, idx, whole=True)]
    if isinstance(value, Bulk):
        ent = value.entries.dtype
        cls = next((c for c in spec.layouts if c.LAYOUT.dtype == ent), None)
        out = [site(CountHeader, body)]
        if cls is not None and len(value.entries):
            out.append(site(cls, body + 8, len(value.entries)))
        return out
    if isinstance(value, GrantTable):
        return [site(GrantTableHeader, body)]
    if isinstance(value, EvtchnAbi):
        k = len(value.control_blocks)
        out = [site(EvtchnAbiHeader, body), site(EvtchnPagesHeader, body + 8 + 16 * k)]
        if k:
            out.append(site(ControlBlock, body + 8, k))
        return out
    if isinstance(value, IoreqServers):
        out = [site(CountHeader, body)]
        pos = body + 8
        for s in value.servers:
            out.append(site(IoreqServerHeader, pos))
            if len(s.ranges):
                out.append(site(IoreqRange, pos + 24, len(s.ranges)))
            pos += 24 + 24 * len(s.ranges)
        return out
    if spec.name == "HVM_CONTEXT":
        return [site(spec.layouts[0], body + 8)]  # HEADER data after its descriptor
    if not spec.layouts:
        return []
    first = spec.layouts[0].LAYOUT
    arr_field = array_field(type(value))
    if arr_field is not None:
        arr = getattr(value, arr_field)
        ent = spec.layouts[-1].LAYOUT
        at = body if first is ent else body + first.size
        out = [] if first is ent else [site(first, body)]
        if len(arr):
            out.append(site(ent, at, len(arr)))
        return out
    return [site(first, body)] if blen >= first.size else []


def field_at(buf: bytearray, fi: FieldInfo, at: int) -> int:
    return int.from_bytes(buf[at : at + fi.size], "little", signed=fi.kind == "int")


def put_field(buf: bytearray, fi: FieldInfo, at: int, v: int) -> None:
    buf[at : at + fi.size] = v.to_bytes(fi.size, "little", signed=fi.kind == "int")


def bad_values(fi: FieldInfo, epoch: Epoch | None) -> list[int]:
    """Values of ``fi`` its layout refuses in ``epoch``, epoch-sensitive ones first."""
    if fi.kind == "bytes" or fi.reserved:
        return []
    bits = 8 * fi.size
    wmin, wmax = (
        (0, (1 << bits) - 1) if fi.kind == "uint" else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    )
    out: list[int] = []
    allowed = fi.allowed(epoch)
    if allowed is not None:
        other = sorted({v for e in EPOCHS for v in (fi.allowed(e) or ())} - set(allowed))
        out += other
        top = max(fi.values or {0: ""}) + 1
        if top <= wmax and top not in allowed:
            out.append(top)
    if fi.lo is not None and fi.lo - 1 >= wmin:
        out.append(fi.lo - 1)
    if fi.hi is not None and fi.hi + 1 <= wmax:
        out.append(fi.hi + 1)
    return out


def bad_bits(fi: FieldInfo, epoch: Epoch | None) -> list[int]:
    """Single bits of ``fi`` not valid in ``epoch``, bits valid in another epoch first."""
    m = fi.valid_mask(epoch)
    if m is None:
        return []
    width = 8 * fi.size
    other = 0
    for e in EPOCHS:
        other |= fi.valid_mask(e) or 0
    first = [b for b in range(width) if (other >> b) & 1 and not (m >> b) & 1]
    rest = [b for b in range(width) if not (other >> b) & 1 and not (m >> b) & 1]
    return first + rest[:3]


class Target:
    """A valid stream in bytes, with its model, epoch and the layout sites of its records."""

    def __init__(self, data: bytes, fmt: str, model: Any) -> None:
        self.data = data
        self.format = fmt
        self.model = model
        self.epoch: Epoch | None = model.epoch if fmt == "lu" else None
        self.sites: list[Site] = []
        self.records: list[tuple[int, int, int, int]] = []  # index, header, type, length
        self.sections: list[Any] = []
        self._collect()

    def _collect(self) -> None:
        buf = memoryview(self.data)
        from xenlu.lu.host_records import LuSectionEnd

        if self.format == "lu":
            from xenlu.lu.stream import scan_lu

            self.sections = scan_lu(buf)
            start = 0
            recs = [r for sec in self.model.sections for r in sec.records]
            end = len(self.data) - 8
        else:
            from xenlu.migration.libxc_stream import DHDR_SIZE, IHDR_SIZE

            start = IHDR_SIZE + DHDR_SIZE
            recs = list(self.model.records)
            end = len(self.data)
        self.records = list(frames(buf, start, end, 0))
        by_off = {off: (idx, t, ln) for idx, off, t, ln in self.records}
        for s in self.sections:
            self.sites.append(
                Site(LuSectionEnd.LAYOUT, s.end + 8, 1, "LU_SECTION_END", by_off[s.end][0], True)
            )
        for r in recs:
            if r.offset is None or isinstance(r.value, UnknownRecord):
                continue
            idx, t, ln = by_off[r.offset]
            spec = _spec_by_type(t, self.format)
            if spec is None:
                continue
            self.sites += _value_sites(spec, r.value, r.offset + 8, ln, idx)

    def reseal(self, buf: bytearray, shift_at: int | None = None, by: int = 0) -> None:
        """Recompute every section's crc32c and byte count (LU only)."""
        if self.format != "lu":
            return
        for s in self.sections:
            start, end = s.start, s.end
            if shift_at is not None:
                start += by if start > shift_at else 0
                end += by if end > shift_at else 0
            body = end + 8
            buf[body + 4 : body + 8] = struct.pack("<I", crc32c(bytes(buf[start:end])))
            buf[body + 8 : body + 16] = struct.pack("<Q", end - start)


def _spec_by_type(t: int, fmt: str) -> RecordSpec | None:
    from xenlu.core.registry import load

    load()
    if fmt == "lu" and t & 0x40000000:
        return LU.get(t)
    return LIBXC.get(t)


def target_of(stream: object) -> Target:
    from xenlu.api import decode, detect_format
    from xenlu.lu.stream import LUStream, encode_lu
    from xenlu.migration.libxc_stream import LibxcStream, libxc_bytes

    if isinstance(stream, LUStream):
        data = encode_lu(stream)
        return Target(data, "lu", decode(data, "lu"))
    if isinstance(stream, LibxcStream):
        data = libxc_bytes(stream)
        return Target(data, "libxc", decode(data, "libxc"))
    if isinstance(stream, (bytes, bytearray, memoryview)):
        data = bytes(stream)
        fmt = detect_format(data)
        if fmt not in ("lu", "libxc"):
            raise CallerError(f"corruptions(): {fmt} streams are not supported (LU or libxc)")
        try:
            model = decode(data, fmt)
        except XenLUError as exc:
            raise CallerError(f"corruptions() needs a valid stream: {exc}") from exc
        return Target(data, fmt, model)
    raise CallerError(
        f"corruptions(): expected stream bytes or a model, got {type(stream).__name__}"
    )
