"""The HVM context blob: the body of the libxc HVM_CONTEXT record (reference §4.2).

The blob is a run of entries, each an 8-byte descriptor ``{u16 typecode;
u16 instance; u32 length}`` followed by exactly ``length`` data bytes, with
**no padding** between entries. It starts with HEADER (typecode 1, 24 bytes,
magic ``0x54381286``, version 1) and ends with END (typecode 0, instance 0,
length 0). Typecodes above ``HVM_SAVE_CODE_MAX`` (20) are refused: Xen's
``hvm_load()`` (``xen/arch/x86/hvm/save.c``) has no handler for them
("unknown entry typecode"). ``hvm_load()`` returns at END without looking
further, so bytes after END are kept in :attr:`HvmContext.trailing`, not
judged — except inside a Live Update stream, whose spec (§4.16) ends the
blob with END.

:class:`HvmContext` keeps every entry byte-exactly, HEADER and END included,
so ``encode(decode(b)) == b``. Entry data stay opaque bytes, except that
:func:`decode_entry_body` unpacks the two entries whose size changed between
the Xen versions xenlu supports (RTC and VIRIDIAN_VCPU, reference §4.2), for
the cross-version steps.

Inside a Live Update stream (``ctx.epoch`` set, LU spec §4.16) the decoder
also checks: nothing after END; instance 0 for every typecode that is not
per-vCPU, except PIC (3) with instances 0 and 1 (amendment A1); RTC 16
bytes before Xen 4.14 and 24 from 4.14; VIRIDIAN_VCPU 16 bytes before 4.13
and 216 from 4.13.

Decode and encode::

    >>> ctx = HvmContext.build(HvmSaveHeader(magic=HVM_FILE_MAGIC, version=1, changeset=0,
    ...                                      cpuid=0x906EA, gtsc_khz=2_000_000),
    ...                        [HvmEntry(typecode=19, instance=0, data=bytes(8))])
    >>> blob = b"".join(encode_hvm_context(ctx))
    >>> len(blob)  # 8 + 24 (HEADER), 8 + 8 (TSC_ADJUST), 8 (END)
    56
    >>> decode_hvm_context(memoryview(blob)).entries[1].name
    'TSC_ADJUST'
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

from construct import Bytes, Int8ul, Int16ul, Int32ul, Int64sl, Int64ul

from xenlu.core.errors import CallerError, EncodeError
from xenlu.core.layout import Packed, Rsvd, fld, layout_for, packed, reserved
from xenlu.core.registry import Ctx
from xenlu.core.values import omitted_when_empty

__all__ = [
    "HVM_FILE_MAGIC",
    "HVM_FILE_VERSION",
    "HVM_SAVE_CODE_MAX",
    "HVM_TYPECODES",
    "PER_VCPU_TYPECODES",
    "HvmContext",
    "HvmEntry",
    "HvmRtc411",
    "HvmRtc414",
    "HvmSaveHeader",
    "ViridianVcpu411",
    "ViridianVcpu413",
    "check_hvm_context",
    "decode_entry_body",
    "decode_hvm_context",
    "encode_hvm_context",
    "entry_from_body",
]

#: HVM_FILE_MAGIC, the first field of the HEADER entry (reference §4.2).
HVM_FILE_MAGIC = 0x54381286
#: HVM_FILE_VERSION (reference §4.2).
HVM_FILE_VERSION = 1
#: The highest x86 typecode Xen saves (``HVM_SAVE_CODE_MAX``, reference §4.2).
HVM_SAVE_CODE_MAX = 20

#: x86 typecode → name, unchanged from Xen 4.11 to HEAD (reference §4.2 table).
HVM_TYPECODES: dict[int, str] = {
    0: "END",
    1: "HEADER",
    2: "CPU",
    3: "PIC",
    4: "IOAPIC",
    5: "LAPIC",
    6: "LAPIC_REGS",
    7: "PCI_IRQ",
    8: "ISA_IRQ",
    9: "PCI_LINK",
    10: "PIT",
    11: "RTC",
    12: "HPET",
    13: "PMTIMER",
    14: "MTRR",
    15: "VIRIDIAN_DOMAIN",
    16: "CPU_XSAVE",
    17: "VIRIDIAN_VCPU",
    18: "VMCE_VCPU",
    19: "TSC_ADJUST",
    20: "CPU_MSR",
}
#: Typecodes saved once per vCPU, whose instance is the vCPU id (reference §4.2).
PER_VCPU_TYPECODES = frozenset((2, 5, 6, 14, 16, 17, 18, 19, 20))
#: Largest instance of each domain-wide typecode that has more than one: Xen
#: saves the PIC (3) once per 8259, instances 0 and 1 (amendment A1 to LU
#: spec §4.16, docs/spec-amendments.md).
MAX_INSTANCE = {3: 1}

TC_END, TC_HEADER, TC_RTC, TC_VIRIDIAN_VCPU = 0, 1, 11, 17


@packed(name="HVM_SAVE_DESCRIPTOR")
class HvmSaveDescriptor(Packed):
    """The descriptor before each entry of an HVM context blob (reference §4.2).

    >>> HvmSaveDescriptor(typecode=1, instance=0, length=24).pack().hex()
    '0100000018000000'
    """

    typecode: int = fld(Int16ul, doc="HVM save typecode; 0 = END")
    instance: int = fld(Int16ul, doc="vCPU id for per-vCPU entries, else 0 (or the PIC number)")
    length: int = fld(Int32ul, doc="bytes of entry data that follow")


#: The descriptor's ``struct`` (``<HHI``), for the entry loop.
_DESC = HvmSaveDescriptor.LAYOUT.struct


@packed(name="HVM_SAVE_HEADER")
class HvmSaveHeader(Packed):
    """The HEADER entry data (typecode 1, 24 bytes; reference §4.2)."""

    magic: int = fld(Int32ul, values={HVM_FILE_MAGIC: "HVM_FILE_MAGIC"}, doc="0x54381286")
    version: int = fld(Int32ul, values={HVM_FILE_VERSION: "HVM_FILE_VERSION"}, doc="1")
    changeset: int = fld(Int64ul, doc="Xen changeset (hex), or ~0")
    cpuid: int = fld(Int32ul, doc="CPUID.1.EAX of the saving host")
    gtsc_khz: int = fld(Int32ul, doc="guest TSC frequency in kHz")


@packed(name="HVM_RTC(4.11)", since="4.11", until="4.14")
class HvmRtc411(Packed):
    """RTC entry data (typecode 11) before Xen 4.14: 16 bytes (reference §4.2)."""

    cmos_data: bytes = fld(Bytes(14), doc="CMOS bytes")
    cmos_index: int = fld(Int8ul, doc="index register for two-part operations")
    pad0: ClassVar[Rsvd] = reserved(Int8ul)


@packed(name="HVM_RTC(4.14)", since="4.14")
class HvmRtc414(Packed):
    """RTC entry data from Xen 4.14: 24 bytes, adds ``rtc_offset`` (reference §4.2)."""

    cmos_data: bytes = fld(Bytes(14), doc="CMOS bytes")
    cmos_index: int = fld(Int8ul, doc="index register for two-part operations")
    pad0: ClassVar[Rsvd] = reserved(Int8ul)
    rtc_offset: int = fld(Int64sl, doc="RTC offset from host time (s)")


@packed(name="HVM_VIRIDIAN_VCPU(4.11)", since="4.11", until="4.13")
class ViridianVcpu411(Packed):
    """VIRIDIAN_VCPU entry data (typecode 17) before Xen 4.13: 16 bytes (reference §4.2).

    ``apic_assist_pending`` was called ``vp_assist_pending`` before 4.12 (same byte).
    """

    vp_assist_msr: int = fld(Int64ul)
    apic_assist_pending: int = fld(Int8ul)
    rsvd: ClassVar[Rsvd] = reserved(Bytes(7))


@packed(name="HVM_VIRIDIAN_VCPU(4.13)", since="4.13")
class ViridianVcpu413(Packed):
    """VIRIDIAN_VCPU entry data from Xen 4.13: 216 bytes (reference §4.2).

    The MSR arrays are kept as raw little-endian bytes: ``sint_msr`` is
    16 × u64, ``stimer_config_msr`` and ``stimer_count_msr`` 4 × u64 each.
    """

    vp_assist_msr: int = fld(Int64ul)
    apic_assist_pending: int = fld(Int8ul)
    rsvd: ClassVar[Rsvd] = reserved(Bytes(7))
    simp_msr: int = fld(Int64ul)
    sint_msr: bytes = fld(Bytes(128), doc="16 x u64 SINTx MSRs")
    stimer_config_msr: bytes = fld(Bytes(32), doc="4 x u64 STIMERx_CONFIG MSRs")
    stimer_count_msr: bytes = fld(Bytes(32), doc="4 x u64 STIMERx_COUNT MSRs")


_HDR = HvmSaveHeader.LAYOUT
#: Entries whose layout depends on the Xen version (LU spec §4.16, reference
#: §4.2): typecode → ((first epoch, layout), …), oldest first; the epochs are
#: the declarations' own ``since``.
ENTRY_LAYOUTS: dict[int, tuple[tuple[tuple[int, int], type[Packed]], ...]] = {
    tc: tuple((c.LAYOUT.since or (4, 11), c) for c in classes)
    for tc, classes in (
        (TC_RTC, (HvmRtc411, HvmRtc414)),
        (TC_VIRIDIAN_VCPU, (ViridianVcpu411, ViridianVcpu413)),
    )
}
_BODY_LAYOUTS: dict[tuple[int, int], type[Packed]] = {
    (tc, cls.LAYOUT.size): cls for tc, steps in ENTRY_LAYOUTS.items() for _, cls in steps
}


def entry_layout(typecode: int, epoch: tuple[int, int]) -> type[Packed] | None:
    """The layout of entry ``typecode`` in ``epoch`` (None: its size is not checked).

    >>> entry_layout(11, (4, 15)).LAYOUT.size
    24
    """
    cls: type[Packed] | None = layout_for((c for _, c in ENTRY_LAYOUTS.get(typecode, ())), epoch)
    return cls


@dataclass(frozen=True, slots=True)
class HvmEntry:
    """One HVM context entry: descriptor fields and the raw data bytes.

    >>> HvmEntry(typecode=11, instance=0, data=bytes(24)).name
    'RTC'
    """

    typecode: int
    instance: int
    data: bytes

    @property
    def name(self) -> str:
        """The typecode's name (reference §4.2), or ``UNKNOWN(n)``."""
        return HVM_TYPECODES.get(self.typecode, f"UNKNOWN({self.typecode})")

    @property
    def per_vcpu(self) -> bool:
        """True for typecodes saved once per vCPU (instance = vCPU id)."""
        return self.typecode in PER_VCPU_TYPECODES


@dataclass(frozen=True)
class HvmContext:
    """The HVM_CONTEXT record body: every entry in order, HEADER first and END last.

    ``trailing``: the bytes of the record body after the END entry, which
    Xen's ``hvm_load()`` never reads (kept so that re-encoding is
    byte-exact; always empty in a Live Update stream).

    >>> h = HvmSaveHeader(magic=HVM_FILE_MAGIC, version=1, changeset=0, cpuid=0, gtsc_khz=0)
    >>> [e.name for e in HvmContext.build(h, []).entries]
    ['HEADER', 'END']
    """

    entries: tuple[HvmEntry, ...]
    trailing: bytes = omitted_when_empty()

    @classmethod
    def build(cls, header: HvmSaveHeader, entries: Iterable[HvmEntry]) -> HvmContext:
        """A context of ``header``, then ``entries``, then the END entry."""
        return cls(
            (
                HvmEntry(TC_HEADER, 0, header.pack()),
                *entries,
                HvmEntry(TC_END, 0, b""),
            )
        )

    @property
    def header(self) -> HvmSaveHeader:
        """The decoded HEADER entry; :class:`CallerError` if the first entry is not one."""
        if not self.entries or self.entries[0].typecode != TC_HEADER:
            raise CallerError("HVM context does not start with a HEADER entry")
        data = self.entries[0].data
        if len(data) != _HDR.size:
            raise CallerError(f"HVM context HEADER entry is {len(data)} bytes, not {_HDR.size}")
        value: HvmSaveHeader = _HDR.unpack(data)
        return value

    def body_entries(self) -> tuple[HvmEntry, ...]:
        """The entries between HEADER and END."""
        return self.entries[1:-1]


def decode_entry_body(entry: HvmEntry) -> Any:
    """Unpack an RTC or VIRIDIAN_VCPU entry into its packed layout, chosen by size.

    Returns :class:`HvmRtc411` / :class:`HvmRtc414` (16 / 24 bytes) or
    :class:`ViridianVcpu411` / :class:`ViridianVcpu413` (16 / 216 bytes);
    :class:`CallerError` for any other typecode or size.

    >>> rtc = decode_entry_body(HvmEntry(typecode=11, instance=0, data=bytes(24)))
    >>> rtc.rtc_offset
    0
    >>> entry_from_body(rtc).data == bytes(24)
    True
    """
    cls = _BODY_LAYOUTS.get((entry.typecode, len(entry.data)))
    if cls is None:
        raise CallerError(
            f"no layout for HVM context entry {entry.name} of {len(entry.data)} bytes"
        )
    return cls.LAYOUT.unpack(entry.data)


def entry_from_body(value: Packed, instance: int = 0) -> HvmEntry:
    """The :class:`HvmEntry` holding an RTC or VIRIDIAN_VCPU layout value."""
    for (typecode, _), cls in _BODY_LAYOUTS.items():
        if type(value) is cls:
            return HvmEntry(typecode, instance, value.pack())
    raise CallerError(f"{type(value).__name__} is not an HVM context entry layout")


# --- codec --------------------------------------------------------------------


def _expected_size(typecode: int, epoch: tuple[int, int]) -> int | None:
    cls = entry_layout(typecode, epoch)
    return None if cls is None else cls.LAYOUT.size


def decode_hvm_context(body: memoryview, ctx: Ctx | None = None) -> HvmContext:
    """Decode and check an HVM_CONTEXT body (reference §4.2; LU spec §4.16 when ``ctx.epoch``).

    Raises :class:`~xenlu.core.errors.RecordError` located at the offending
    descriptor field (``entries[i].typecode`` / ``.instance`` / ``.length``)
    or HEADER field (``entries[0].magic``, ``entries[0].version``); a missing
    END entry (at the body end) and, in a Live Update stream, bytes after
    END carry no field. Elsewhere bytes after END are :attr:`HvmContext.trailing`.
    """
    value = _walk(body, ctx, True)
    assert value is not None
    return value


#: ``Ctx.extra`` key where :func:`check_hvm_context` adds the bytes it found
#: after END (what :attr:`HvmContext.trailing` holds when decoding).
TRAILING_KEY = "hvm_context_trailing_bytes"


def check_hvm_context(body: memoryview, ctx: Ctx | None = None) -> None:
    """Run every check of :func:`decode_hvm_context` without building entries
    (bytes after END are counted in ``ctx.extra[TRAILING_KEY]``)."""
    _walk(body, ctx, False)


def _walk(body: memoryview, ctx: Ctx | None, build: bool) -> HvmContext | None:
    """The one walker of an HVM_CONTEXT blob: checks every entry; builds them when ``build``."""
    if ctx is None:
        ctx = Ctx(None, 0x09, 0, len(body))
    n = len(body)
    if n == 0:
        ctx.fail_length("> 0 (HEADER and END entries)", "HVM_CONTEXT body empty")
    entries: list[HvmEntry] = []
    append = entries.append
    unpack = _DESC.unpack_from
    pos = 0
    i = 0
    while True:
        if pos + 8 > n:
            _no_descriptor(ctx, pos, i, n)
        typecode, instance, length = unpack(body, pos)
        data_at = pos + 8
        if length > n - data_at:
            # Entries advance by exactly 8 + length; none may overrun the body.
            ctx.fail(
                "HVM context entry runs past the end of the body",
                at=pos + 4,
                field=f"entries[{i}].length",
                expected=f"<= {n - data_at}",
                got=length,
            )
        if i == 0:
            _check_header(body, ctx, pos, typecode, instance, length)
        elif typecode == TC_END:
            _check_end(ctx, pos, i, instance, length, n)
            if not build:
                # Check-only readers (the incremental decoder) report these too.
                ctx.extra[TRAILING_KEY] = ctx.extra.get(TRAILING_KEY, 0) + n - data_at
                return None
            append(HvmEntry(TC_END, 0, b""))
            return HvmContext(tuple(entries), bytes(body[data_at:]))
        else:
            _check_entry(ctx, pos, i, typecode, instance, length)
        if build:
            append(HvmEntry(typecode, instance, bytes(body[data_at : data_at + length])))
        pos = data_at + length
        i += 1


def _no_descriptor(ctx: Ctx, pos: int, i: int, n: int) -> NoReturn:
    """Raise: the body ends at ``pos``, where entry ``i``'s 8-byte descriptor should be."""
    if pos == n:
        # Reference §4.2: the blob ends with END (0, 0, 0).
        ctx.fail(
            "HVM context has no END entry",
            at=n,
            expected="END entry (typecode 0)",
            got="end of body",
        )
    ctx.fail(
        "HVM context entry descriptor truncated",
        at=pos,
        field=f"entries[{i}]",
        expected="8 descriptor bytes",
        got=n - pos,
    )


def _check_header(
    body: memoryview, ctx: Ctx, pos: int, typecode: int, instance: int, length: int
) -> None:
    """Entry 0 is HEADER, of its declared size, valid, and (in an LU stream) instance 0."""
    if typecode != TC_HEADER:
        ctx.fail(
            "HVM context does not start with HEADER",
            at=pos,
            field="entries[0].typecode",
            expected=TC_HEADER,
            got=typecode,
        )
    if length != _HDR.size:
        ctx.fail(
            "HEADER entry length wrong",
            at=pos + 4,
            field="entries[0].length",
            expected=_HDR.size,
            got=length,
        )
    data_at = pos + 8
    v = _HDR.checker(None)(_HDR.unpack_tuple(body, data_at))
    if v is not None:
        ctx.fail_violation(v, at=data_at, prefix="entries[0].")
    if ctx.epoch is not None and instance:
        ctx.fail(
            "HEADER instance not 0",
            at=pos + 2,
            field="entries[0].instance",
            expected=0,
            got=instance,
        )


def _check_end(ctx: Ctx, pos: int, i: int, instance: int, length: int, n: int) -> None:
    """The END entry is (0, 0, 0) and, in an LU stream, the last bytes of the body."""
    if instance:
        ctx.fail(
            "END entry instance not 0",
            at=pos + 2,
            field=f"entries[{i}].instance",
            expected=0,
            got=instance,
        )
    if length:
        ctx.fail(
            "END entry length not 0",
            at=pos + 4,
            field=f"entries[{i}].length",
            expected=0,
            got=length,
        )
    data_at = pos + 8
    if data_at != n and ctx.epoch is not None:
        # LU spec §4.16: the blob ends with END. (hvm_load() itself
        # returns at END: elsewhere the rest is kept, not judged.)
        ctx.fail(
            "bytes after the HVM context END entry",
            at=data_at,
            expected="end of body",
            got=f"{n - data_at} more bytes",
        )


def _check_entry(ctx: Ctx, pos: int, i: int, typecode: int, instance: int, length: int) -> None:
    """An entry between HEADER and END: a known typecode; in an LU stream, instance and size."""
    if typecode > HVM_SAVE_CODE_MAX:
        # hvm_load() (xen/arch/x86/hvm/save.c): a typecode past its handler
        # table is "unknown entry typecode"; LU spec §4.16: typecodes 1-20.
        ctx.fail(
            "HVM context typecode above HVM_SAVE_CODE_MAX (no Xen handler)",
            at=pos,
            field=f"entries[{i}].typecode",
            expected=f"1..{HVM_SAVE_CODE_MAX}",
            got=typecode,
        )
    epoch = ctx.epoch
    if epoch is None:
        return
    # LU spec §4.16: instance 0 unless per-vCPU.
    if instance > MAX_INSTANCE.get(typecode, 0) and typecode not in PER_VCPU_TYPECODES:
        ctx.fail(
            f"instance too large for the domain-wide entry {HVM_TYPECODES[typecode]}",
            at=pos + 2,
            field=f"entries[{i}].instance",
            expected=f"<= {MAX_INSTANCE.get(typecode, 0)}",
            got=instance,
        )
    want = _expected_size(typecode, epoch)
    if want is not None and length != want:
        ctx.fail(
            f"{HVM_TYPECODES[typecode]} entry length wrong for Xen {epoch[0]}.{epoch[1]}",
            at=pos + 4,
            field=f"entries[{i}].length",
            expected=want,
            got=length,
        )


def encode_hvm_context(value: HvmContext) -> Sequence[bytes]:
    """The HVM_CONTEXT body of ``value`` as buffers: descriptor, data, descriptor, …

    :class:`EncodeError` if a descriptor field does not fit or the entries do
    not start with HEADER and end with an empty END.
    """
    if not isinstance(value, HvmContext):
        raise EncodeError(f"HVM_CONTEXT: expected HvmContext, got {type(value).__name__}")
    ents = value.entries
    if len(ents) < 2 or ents[0].typecode != TC_HEADER:
        raise EncodeError("HVM_CONTEXT: entries must start with a HEADER entry")
    last = ents[-1]
    if (last.typecode, last.instance, len(last.data)) != (TC_END, 0, 0):
        raise EncodeError("HVM_CONTEXT: entries must end with an END entry (0, 0, empty)")
    out: list[bytes] = []
    pack = _DESC.pack
    for i, e in enumerate(ents):
        if e.typecode == TC_END and i != len(ents) - 1:
            raise EncodeError(f"HVM_CONTEXT: END entry at position {i} is not the last")
        try:
            out.append(pack(e.typecode, e.instance, len(e.data)))
        except struct.error:
            raise EncodeError(
                f"HVM_CONTEXT: entries[{i}] typecode {e.typecode} / instance {e.instance} "
                "does not fit u16"
            ) from None
        if e.data:
            out.append(e.data)
    if value.trailing:
        out.append(value.trailing)
    return out
