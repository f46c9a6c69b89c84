"""Live-Update-only records (LU spec §4): type codes, LU_DOMAIN, and the one explicit list.

Each fixed layout is declared once, per epoch where it changed, in the
module of its spec section: :mod:`xenlu.lu.host_records` (§4.1–§4.5, the
count header, §4.15), LU_DOMAIN here (§4.6), :mod:`xenlu.lu.memory_records`
(§4.7–§4.9) and :mod:`xenlu.lu.io_records` (§4.10–§4.14, with the values
and codecs of its variable-size records); the value and bit names, Xen's
defaults and limits are in :mod:`xenlu.lu.values`. From those declarations
xenlu derives the struct codec, numpy dtype, structural checks and JSON
schema. Layouts of a released epoch never change: a new epoch gets a new
declaration, and :data:`LU_DOMAIN_LAYOUTS` / :data:`EVTCHN_LAYOUTS` map each
epoch to its own.

This module holds the type codes (:class:`T`), the LU_DOMAIN declarations,
the bulk-record machinery (:class:`Bulk`, :data:`ENTRY_RULES`) and
:data:`RECORDS`, the list the registry loads. Every name of the modules
above stays importable from here.

Decode and encode one record body::

    >>> from xenlu.core.registry import LU, Ctx
    >>> spec = LU.by_name("LU_VERSION")
    >>> v = spec.decode(memoryview(b"\\x04\\0\\0\\0\\x0f\\0\\0\\0"), Ctx(0, spec.type, 8, 8))
    >>> (v.xen_major, v.xen_minor)
    (4, 15)
    >>> b"".join(bytes(p) for p in spec.encode(v))
    b'\\x04\\x00\\x00\\x00\\x0f\\x00\\x00\\x00'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

import numpy as np

# Int64ul is not used yet: it is the type a new LU_DOMAIN field usually takes
# (tests/test_artefacts.py adds one to the newest layout here).
from construct import Bytes, Int16ul, Int32sl, Int32ul, Int64ul  # noqa: F401

from xenlu.core.epochs import EPOCHS, Epoch, or_latest
from xenlu.core.errors import DecodeError, EncodeError
from xenlu.core.layout import (
    Layout,
    Packed,
    Rsvd,
    by_epoch,
    fld,
    packed,
    packed_base,
    reserved,
)
from xenlu.core.registry import Ctx, RecordSpec, fixed_record
from xenlu.core.rules import Rule
from xenlu.core.values import Value
from xenlu.lu.host_records import (
    CountHeader,
    LuHostInfo,
    LuSectionEnd,
    LuVersion,
    RegionExtent,
    XenPagesExtent,
    host_grant_limits,
    host_grant_version,
)
from xenlu.lu.io_records import (
    EVTCHN_LAYOUTS,
    U64,
    ControlBlock,
    EvtchnAbi,
    EvtchnAbiHeader,
    EvtchnCommon,
    EvtchnEntry411,
    EvtchnEntry415,
    EvtchnPagesHeader,
    GrantMapEntry,
    GrantTable,
    GrantTableHeader,
    IoreqRange,
    IoreqServer,
    IoreqServerHeader,
    IoreqServers,
    decode_evtchn_abi,
    decode_grant_table,
    decode_ioreq_servers,
    encode_evtchn_abi,
    encode_grant_table,
    encode_ioreq_servers,
    evtchn_layout,
)
from xenlu.lu.memory_records import (
    OwnershipEntry,
    P2mEntry,
    PageTypeEntry,
)
from xenlu.lu.values import (
    CDF_BITS,
    CDF_HVM,
    CDF_IOMMU,
    CDF_NESTED_VIRT,
    CDF_VPMU,
    DOMID_COW,
    DOMID_MAX,
    DOMID_XEN,
    ECS_INTERDOMAIN,
    ECS_IPI,
    ECS_PIRQ,
    ECS_RESERVED,
    ECS_UNBOUND,
    ECS_VIRQ,
    EMU_BITS,
    EVTCHN_PORTS_2L,
    EVTCHN_PORTS_2L_32,
    EVTCHN_PORTS_FIFO,
    EVTCHN_STATES,
    EVTCHN_WORDS_PER_PAGE,
    GIB4,
    GNTMAP_DEVICE_MAP,
    GNTMAP_HOST_MAP,
    GNTMAP_READONLY,
    INVALID_MFN,
    LU_STATE_BITS,
    LU_STATE_DYING,
    LU_STATE_IOMMU,
    LU_STATE_PRIVILEGED,
    LU_STATE_RUNNING,
    LU_STATE_SHINFO32,
    MAPTRACK_PER_FRAME,
    MIB2,
    P2M_ACCESS,
    P2M_CLASS,
    P2M_CLASS_LUT,
    P2M_HAS_FRAME,
    P2M_NO_FRAME,
    P2M_TYPES,
    PAGE_SIZE,
    PAGE_TYPES,
    PER_VCPU_VIRQS,
    PT_PINNED,
    XEN_MAX_GRANT_FRAMES,
    XEN_MAX_MAPTRACK_FRAMES,
    BufIoreq,
    CdfFlag,
    DomainType,
    EmulationFlag,
    EvtchnAbiKind,
    EvtchnFlag,
    EvtchnState,
    GrantMapFlag,
    GrantVersion,
    IommuOpt,
    IoreqRangeType,
    LuState,
    MiscFlag,
    OwnershipFlag,
    P2mAccess,
    P2mClass,
    P2mType,
    PageType,
    PageTypeFlag,
    RegionKind,
    Virq,
    XenPageKind,
)

__all__ = [
    "BULK_TYPES",
    "CDF_BITS",
    "CDF_HVM",
    "CDF_IOMMU",
    "CDF_NESTED_VIRT",
    "CDF_VPMU",
    "DOMID_COW",
    "DOMID_MAX",
    "DOMID_XEN",
    "ECS_INTERDOMAIN",
    "ECS_IPI",
    "ECS_PIRQ",
    "ECS_RESERVED",
    "ECS_UNBOUND",
    "ECS_VIRQ",
    "EMU_BITS",
    "ENTRY_RULES",
    "EVTCHN_LAYOUTS",
    "EVTCHN_PORTS_2L",
    "EVTCHN_PORTS_2L_32",
    "EVTCHN_PORTS_FIFO",
    "EVTCHN_STATES",
    "EVTCHN_WORDS_PER_PAGE",
    "GIB4",
    "GNTMAP_DEVICE_MAP",
    "GNTMAP_HOST_MAP",
    "GNTMAP_READONLY",
    "INVALID_MFN",
    "LU_DOMAIN_LAYOUTS",
    "LU_STATE_BITS",
    "LU_STATE_DYING",
    "LU_STATE_IOMMU",
    "LU_STATE_PRIVILEGED",
    "LU_STATE_RUNNING",
    "LU_STATE_SHINFO32",
    "MAPTRACK_PER_FRAME",
    "MIB2",
    "P2M_ACCESS",
    "P2M_CLASS",
    "P2M_CLASS_LUT",
    "P2M_HAS_FRAME",
    "P2M_NO_FRAME",
    "P2M_TYPES",
    "PAGE_SIZE",
    "PAGE_TYPES",
    "PER_VCPU_VIRQS",
    "PT_PINNED",
    "RECORDS",
    "U64",
    "XEN_MAX_GRANT_FRAMES",
    "XEN_MAX_MAPTRACK_FRAMES",
    "BufIoreq",
    "Bulk",
    "CdfFlag",
    "ControlBlock",
    "CountHeader",
    "DomainType",
    "EmulationFlag",
    "EntryRules",
    "EvtchnAbi",
    "EvtchnAbiHeader",
    "EvtchnAbiKind",
    "EvtchnCommon",
    "EvtchnEntry411",
    "EvtchnEntry415",
    "EvtchnFlag",
    "EvtchnPagesHeader",
    "EvtchnState",
    "GrantMapEntry",
    "GrantMapFlag",
    "GrantTable",
    "GrantTableHeader",
    "GrantVersion",
    "IommuOpt",
    "IoreqRange",
    "IoreqRangeType",
    "IoreqServer",
    "IoreqServerHeader",
    "IoreqServers",
    "LuDomain411",
    "LuDomain413",
    "LuDomain415",
    "LuDomain416",
    "LuDomain417",
    "LuDomain419",
    "LuDomain421",
    "LuDomainCommon",
    "LuDomainInfo",
    "LuHostInfo",
    "LuSectionEnd",
    "LuState",
    "LuVersion",
    "MiscFlag",
    "OwnershipEntry",
    "OwnershipFlag",
    "P2mAccess",
    "P2mClass",
    "P2mEntry",
    "P2mType",
    "PageType",
    "PageTypeEntry",
    "PageTypeFlag",
    "RegionExtent",
    "RegionKind",
    "T",
    "Virq",
    "XenPageKind",
    "XenPagesExtent",
    "decode_evtchn_abi",
    "decode_grant_table",
    "decode_ioreq_servers",
    "domain_layout",
    "encode_evtchn_abi",
    "encode_grant_table",
    "encode_ioreq_servers",
    "evtchn_layout",
    "host_grant_limits",
    "host_grant_version",
]


class T(IntEnum):
    """LU record type codes (LU spec §4); bit 30 marks Live-Update-only records."""

    LU_VERSION = 0x40000000
    LU_HOST_INFO = 0x40000001
    LU_REUSABLE_REGIONS = 0x40000002
    LU_XEN_PAGES = 0x40000003
    LU_DOMAIN = 0x40000010
    LU_P2M = 0x40000012
    LU_PAGE_OWNERSHIP = 0x40000013
    LU_PAGE_TYPES = 0x40000014
    LU_GRANT_TABLE = 0x40000015
    LU_GRANT_MAPS = 0x40000016
    LU_EVTCHN_ABI = 0x40000017
    LU_EVTCHNS = 0x40000018
    LU_IOREQ_SERVERS = 0x40000019
    LU_SECTION_END = 0x4000007F


# --- §4.6 LU_DOMAIN ----------------------------------------------------------


@packed_base
class LuDomainCommon(Packed):
    """The LU_DOMAIN fields at offsets 0–47, identical in every epoch (§4.6)."""

    domid: int = fld(Int16ul, hi=DOMID_MAX)
    rsvd0: ClassVar[Rsvd] = reserved(Int16ul)
    domain_type: int = fld(Int32ul, values=DomainType)
    ssidref: int = fld(Int32ul)
    handle: bytes = fld(Bytes(16), doc="UUID bytes")
    cdf_flags: int = fld(Int32ul, bits=CdfFlag)
    lu_state: int = fld(Int32ul, bits=LuState)
    max_vcpus: int = fld(Int32ul, lo=1)
    max_evtchn_port: int = fld(Int32ul)
    emulation_flags: int = fld(Int32ul, bits=EmulationFlag, doc="XEN_X86_EMU_* bits 0-10")

    # §4.6. Each rule applies to the epochs whose layout has its field.
    RULES = (
        Rule(
            "cdf_flags",
            "cdf_flags.hvm disagrees with domain_type",
            lambda c: ((c.cdf_flags & CDF_HVM) != 0) != (c.domain_type == 2),
            lambda c: f"bit 0 {'set' if c.domain_type == 2 else 'clear'}",
            repair=lambda d, pick: {
                **d,
                "cdf_flags": (d["cdf_flags"] & ~CDF_HVM)
                | (CDF_HVM if d["domain_type"] == 2 else 0),
            },
        ),
        Rule(
            "grant_opts",
            "grant_opts max version not 1 or 2",
            lambda c: c.notin(c.grant_opts & 0xF, (1, 2)),
            "1 or 2 in bits 0-3",
            repair=lambda d, pick: {**d, "grant_opts": pick(1, 2)},
        ),
        Rule(
            "nr_altp2m",
            "nr_altp2m must be > 0 exactly when the altp2m mode is not off",
            lambda c: ((c.altp2m_opts & 3) != 0) != (c.nr_altp2m > 0),
            lambda c: "> 0" if c.altp2m_opts & 3 else 0,
            repair=lambda d, pick: {
                **d,
                "nr_altp2m": pick(1, 0xFFFF) if d["altp2m_opts"] & 3 else 0,
            },
        ),
    )

    @property
    def is_hvm(self) -> bool:
        return self.domain_type == 2


@packed(name="LU_DOMAIN@4.11", since="4.11", until="4.13")
class LuDomain411(LuDomainCommon):
    """LU_DOMAIN in epochs 4.11 and 4.12 (56 bytes): grant limits are u32."""

    max_grant_frames: int = fld(Int32ul)
    max_maptrack_frames: int = fld(Int32ul)


@packed(name="LU_DOMAIN@4.13", since="4.13", until="4.15")
class LuDomain413(LuDomainCommon):
    """LU_DOMAIN in epochs 4.13 and 4.14 (64 bytes): i32 grant limits, iommu_opts."""

    max_grant_frames: int = fld(Int32sl, doc="negative = host default")
    max_maptrack_frames: int = fld(Int32sl, doc="negative = host default")
    iommu_opts: int = fld(Int32ul, bits=IommuOpt)
    rsvd1: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="LU_DOMAIN@4.15", since="4.15", until="4.16")
class LuDomain415(LuDomain413):
    """LU_DOMAIN in epoch 4.15 (72 bytes): adds vmtrace_size and misc_flags."""

    vmtrace_size: int = fld(Int32ul)
    misc_flags: int = fld(Int32ul, bits=MiscFlag)


@packed(name="LU_DOMAIN@4.16", since="4.16", until="4.17")
class LuDomain416(LuDomain415):
    """LU_DOMAIN in epoch 4.16 (80 bytes): adds grant_opts; offset 76 reserved."""

    grant_opts: int = fld(Int32ul, mask={0xF: "max_version"}, doc="bits 0-3: 1 or 2")
    rsvd2: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="LU_DOMAIN@4.17", since="4.17", until="4.19")
class LuDomain417(LuDomain415):
    """LU_DOMAIN in epochs 4.17 and 4.18 (80 bytes): offset 76 is cpupool_id."""

    grant_opts: int = fld(Int32ul, mask={0xF: "max_version"}, doc="bits 0-3: 1 or 2")
    cpupool_id: int = fld(Int32ul)


@packed(name="LU_DOMAIN@4.19", since="4.19", until="4.21")
class LuDomain419(LuDomain417):
    """LU_DOMAIN in epochs 4.19 and 4.20 (88 bytes): u32 altp2m_opts."""

    altp2m_opts: int = fld(Int32ul, mask={0x3: "mode"}, doc="0 off, 1 mixed, 2 external, 3 limited")
    rsvd2: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="LU_DOMAIN@4.21", since="4.21")
class LuDomain421(LuDomain417):
    """LU_DOMAIN from epoch 4.21 (88 bytes): u16 altp2m_opts and u16 nr_altp2m."""

    altp2m_opts: int = fld(Int16ul, mask={0x3: "mode"}, doc="0 off, 1 mixed, 2 external, 3 limited")
    nr_altp2m: int = fld(Int16ul, doc="> 0 exactly when the altp2m mode is not off")
    rsvd2: ClassVar[Rsvd] = reserved(Int32ul)


#: epoch → the LU_DOMAIN declaration of that epoch (from their since/until).
LU_DOMAIN_LAYOUTS: dict[Epoch, type[LuDomainCommon]] = by_epoch(
    LuDomain411, LuDomain413, LuDomain415, LuDomain416, LuDomain417, LuDomain419, LuDomain421
)


#: The value of an LU_DOMAIN record: the declaration of its stream's epoch.
LuDomainInfo = (
    LuDomain411 | LuDomain413 | LuDomain415 | LuDomain416 | LuDomain417 | LuDomain419 | LuDomain421
)


def domain_layout(epoch: Epoch) -> type[LuDomainCommon]:
    """The LU_DOMAIN class of ``epoch``."""
    return LU_DOMAIN_LAYOUTS[epoch]


# --- value types of variable records ------------------------------------------


@dataclass(frozen=True, eq=False)
class Bulk(Value):
    """The entries of one count-prefixed bulk record, a structured numpy array."""

    entries: np.ndarray

    def __len__(self) -> int:
        return len(self.entries)


# --- body codecs ------------------------------------------------------------

_CH = CountHeader.LAYOUT


def _fixed(cls: type[Any]) -> RecordSpec:
    """A RecordSpec piece for a fixed-size record body of layout ``cls``.

    The layout's checker applies its field rules, then its record rules
    (``RULES``), so a decoded value breaks none of them.
    """
    return fixed_record("lu", 0, cls.LAYOUT.name, cls)


def _count_header(body: memoryview, ctx: Ctx, entry_size: int) -> int:
    if len(body) < 8:
        ctx.fail_length(">= 8 (count header)")
    count, rsvd = _CH.unpack_tuple(body)
    if rsvd:
        ctx.fail("reserved field not zero", at=4, field="rsvd", expected=0, got=rsvd)
    if len(body) != 8 + count * entry_size:
        ctx.fail_length(f"8 + {count} x {entry_size} = {8 + count * entry_size}")
    return int(count)


@dataclass(frozen=True)
class EntryRules:
    """The entry rules of one bulk record type, for checking entries in bulk.

    ``per_entry``: every rule looks at one entry alone, so the entries of
    many records may be checked as one array (the LU verify path gathers
    small records this way); False when a rule spans entries of a record.
    """

    layout_for: Callable[[Epoch | None], type[Any]]
    check: Callable[[np.ndarray, Ctx], None]
    per_entry: bool

    def ok(self, arr: np.ndarray, epoch: Epoch | None) -> bool:
        """True when no entry of ``arr`` breaks a rule (the verdict only)."""
        try:
            self.check(arr, Ctx(None, 0, 0, 0, epoch))
        except DecodeError:
            return False
        return True


#: Bulk record type -> its :class:`EntryRules` (filled by :func:`_bulk`).
ENTRY_RULES: dict[int, EntryRules] = {}


def _bulk(
    name: str,
    type_code: int,
    layout_for: Callable[[Epoch | None], type[Any]],
    all_layouts: tuple[type[Any], ...] = (),
    per_entry: bool = True,
) -> RecordSpec:
    """A count-prefixed bulk record: zero-copy array + vectorised checks."""

    def check_entries(arr: np.ndarray, ctx: Ctx) -> None:
        lay: Layout = layout_for(ctx.epoch).LAYOUT
        v = lay.check_array(arr, ctx.epoch)
        if v is not None:
            ctx.fail_violation(v, at=8, prefix="entries", entry_size=lay.size)

    ENTRY_RULES[type_code] = EntryRules(layout_for, check_entries, per_entry)

    def decode(body: memoryview, ctx: Ctx) -> Bulk:
        lay: Layout = layout_for(ctx.epoch).LAYOUT
        count = _count_header(body, ctx, lay.size)
        arr = lay.array(body, 8, count)
        check_entries(arr, ctx)
        return Bulk(arr)

    def encode(value: Any) -> Sequence[Any]:
        if not isinstance(value, Bulk):
            raise EncodeError(f"{name}: expected Bulk, got {type(value).__name__}")
        arr = value.entries
        names = arr.dtype.names or ()
        for cls in all_layouts or (layout_for(None),):
            if cls.LAYOUT.dtype.names == names and cls.LAYOUT.dtype.itemsize == arr.dtype.itemsize:
                lay = cls.LAYOUT
                break
        else:
            raise EncodeError(f"{name}: entries have dtype {arr.dtype}, not a {name} layout")
        return [_CH.pack(CountHeader(count=len(arr))), lay.pack_array(arr)]

    layouts = all_layouts or (layout_for(None),)
    return RecordSpec(
        "lu",
        type_code,
        name,
        decode,
        encode,
        Bulk,
        bulk=True,
        layouts=layouts,
        by_epoch={e: layout_for(e) for e in EPOCHS} if all_layouts else None,
    )


def _decode_domain(body: memoryview, ctx: Ctx) -> Any:
    cls = LU_DOMAIN_LAYOUTS[or_latest(ctx.epoch)]
    return _DOMAIN_SPECS[cls].decode(body, ctx)


def _encode_domain(value: Any) -> Sequence[Any]:
    cls = type(value)
    if cls not in _DOMAIN_SPECS:
        raise EncodeError(f"LU_DOMAIN: expected an LU_DOMAIN layout, got {cls.__name__}")
    return _DOMAIN_SPECS[cls].encode(value)


_DOMAIN_SPECS = {cls: _fixed(cls) for cls in set(LU_DOMAIN_LAYOUTS.values())}


def _records() -> tuple[RecordSpec, ...]:
    out: list[RecordSpec] = []
    add = out.append

    def fixed(name: str, code: int, cls: type[Any]) -> None:
        add(fixed_record("lu", code, name, cls))

    fixed("LU_VERSION", T.LU_VERSION, LuVersion)
    fixed("LU_HOST_INFO", T.LU_HOST_INFO, LuHostInfo)
    add(
        RecordSpec(
            "lu",
            T.LU_DOMAIN,
            "LU_DOMAIN",
            _decode_domain,
            _encode_domain,
            tuple(dict.fromkeys(LU_DOMAIN_LAYOUTS.values())),
            layouts=tuple(dict.fromkeys(LU_DOMAIN_LAYOUTS.values())),
            by_epoch=LU_DOMAIN_LAYOUTS,
        )
    )
    for name, code, layout_for, alls, per_entry in (
        ("LU_REUSABLE_REGIONS", T.LU_REUSABLE_REGIONS, lambda e: RegionExtent, (), True),
        ("LU_XEN_PAGES", T.LU_XEN_PAGES, lambda e: XenPagesExtent, (), True),
        ("LU_P2M", T.LU_P2M, lambda e: P2mEntry, (), True),
        ("LU_PAGE_OWNERSHIP", T.LU_PAGE_OWNERSHIP, lambda e: OwnershipEntry, (), True),
        ("LU_PAGE_TYPES", T.LU_PAGE_TYPES, lambda e: PageTypeEntry, (), True),
        ("LU_GRANT_MAPS", T.LU_GRANT_MAPS, lambda e: GrantMapEntry, (), True),
        (
            "LU_EVTCHNS",
            T.LU_EVTCHNS,
            lambda e: EVTCHN_LAYOUTS[or_latest(e)],
            (EvtchnEntry411, EvtchnEntry415),
            False,  # §4.13: ports ascend within a record
        ),
    ):
        add(_bulk(name, code, layout_for, alls, per_entry))
    add(
        RecordSpec(
            "lu",
            T.LU_GRANT_TABLE,
            "LU_GRANT_TABLE",
            decode_grant_table,
            encode_grant_table,
            GrantTable,
            layouts=(GrantTableHeader,),
        )
    )
    add(
        RecordSpec(
            "lu",
            T.LU_EVTCHN_ABI,
            "LU_EVTCHN_ABI",
            decode_evtchn_abi,
            encode_evtchn_abi,
            EvtchnAbi,
            layouts=(EvtchnAbiHeader, ControlBlock, EvtchnPagesHeader),
        )
    )
    add(
        RecordSpec(
            "lu",
            T.LU_IOREQ_SERVERS,
            "LU_IOREQ_SERVERS",
            decode_ioreq_servers,
            encode_ioreq_servers,
            IoreqServers,
            layouts=(CountHeader, IoreqServerHeader, IoreqRange),
        )
    )
    fixed("LU_SECTION_END", T.LU_SECTION_END, LuSectionEnd)
    return tuple(sorted(out, key=lambda s: s.type))


#: The LU records (§4): the one explicit list :data:`~xenlu.core.registry.LU` loads.
RECORDS = _records()

#: Record types that may repeat in a section to carry more entries (§1).
BULK_TYPES = frozenset(s.type for s in RECORDS if s.bulk)
