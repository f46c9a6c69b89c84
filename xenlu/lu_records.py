"""Live-Update-only records (LU spec §4), declared once per epoch layout.

Every fixed layout below is the single declaration from which xenlu derives
its struct codec, numpy dtype, structural checks and JSON schema. Layouts of
a released epoch never change: a new epoch gets a new declaration, and
:data:`LU_DOMAIN_LAYOUTS` / :data:`EVTCHN_LAYOUTS` map each epoch to its own.

Decode and encode one record body::

    >>> from xenlu.registry import LU, Ctx
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
from enum import IntEnum, IntFlag
from typing import Any, ClassVar

import numpy as np
from construct import Bytes, Int8ul, Int16ul, Int32sl, Int32ul, Int64ul

from xenlu.epochs import EPOCHS, Epoch, or_latest
from xenlu.errors import DecodeError, EncodeError
from xenlu.layout import (
    Layout,
    Named,
    Packed,
    Rsvd,
    by_epoch,
    fld,
    packed,
    packed_base,
    reserved,
)
from xenlu.names import bit_names, epoch_limited, value_names
from xenlu.registry import Ctx, RecordSpec, fixed_record
from xenlu.rules import AtLeast, OrIn, Pick, Rule
from xenlu.values import Value

__all__ = [
    "BULK_TYPES",
    "DOMID_COW",
    "DOMID_XEN",
    "EVTCHN_LAYOUTS",
    "EVTCHN_PORTS_2L",
    "EVTCHN_PORTS_2L_32",
    "EVTCHN_PORTS_FIFO",
    "EVTCHN_WORDS_PER_PAGE",
    "INVALID_MFN",
    "LU_DOMAIN_LAYOUTS",
    "MAPTRACK_PER_FRAME",
    "P2M_CLASS",
    "P2M_CLASS_LUT",
    "PER_VCPU_VIRQS",
    "XEN_MAX_GRANT_FRAMES",
    "XEN_MAX_MAPTRACK_FRAMES",
    "BufIoreq",
    "Bulk",
    "CdfFlag",
    "ControlBlock",
    "CountHeader",
    "DomainType",
    "EmulationFlag",
    "EvtchnAbi",
    "EvtchnAbiKind",
    "EvtchnEntry411",
    "EvtchnEntry415",
    "EvtchnFlag",
    "EvtchnState",
    "GrantMapEntry",
    "GrantMapFlag",
    "GrantTable",
    "GrantVersion",
    "IommuOpt",
    "IoreqRange",
    "IoreqRangeType",
    "IoreqServer",
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
    "domain_layout",
    "evtchn_layout",
    "host_grant_limits",
    "host_grant_version",
]

INVALID_MFN = 0xFFFFFFFFFFFFFFFF
DOMID_XEN = 0x7FF2
DOMID_COW = 0x7FF3
DOMID_MAX = 0x7FEF  # ordinary domain ids are 0 … 0x7FEF (spec "Conventions")
PAGE_SIZE = 4096
MIB2 = 2 << 20
GIB4 = 1 << 32


# --- value and bit names, declared once (xenlu.names) -------------------------
# fld(values=…/bits=…) below takes these enums; validate, compat, plan and
# the hand-over import them instead of repeating the numbers.


class RegionKind(IntEnum):
    """§4.4 LU_REUSABLE_REGIONS extent kinds."""

    FRAMETABLE = 1
    XEN_IMAGE = 2
    SCRATCH = 3


class XenPageKind(IntEnum):
    """§4.5 LU_XEN_PAGES extent kinds."""

    M2P = 1
    IOMMU_PT = 2
    LU_DATA = 3
    SHARED = 4


class DomainType(IntEnum):
    """§4.6 LU_DOMAIN domain_type."""

    x86_pv = 1
    x86_hvm = 2


@epoch_limited(iommu=("4.13", None), nested_virt=("4.15", None), vpmu=("4.16", None))
class CdfFlag(IntFlag):
    """§4.6 LU_DOMAIN cdf_flags (XEN_DOMCTL_CDF_* as of each epoch)."""

    hvm = 1 << 0
    hap = 1 << 1
    s3_integrity = 1 << 2
    oos_off = 1 << 3
    xs_domain = 1 << 4
    iommu = 1 << 5
    nested_virt = 1 << 6
    vpmu = 1 << 7


@epoch_limited(iommu=(None, "4.13"))
class LuState(IntFlag):
    """§4.6 LU_DOMAIN lu_state."""

    running = 1 << 0
    dying = 1 << 1
    privileged = 1 << 2
    iommu = 1 << 3
    shinfo32 = 1 << 4


class EmulationFlag(IntFlag):
    """§4.6 LU_DOMAIN emulation_flags: XEN_X86_EMU_* bits 0-10."""

    emu_0 = 1 << 0
    emu_1 = 1 << 1
    emu_2 = 1 << 2
    emu_3 = 1 << 3
    emu_4 = 1 << 4
    emu_5 = 1 << 5
    emu_6 = 1 << 6
    emu_7 = 1 << 7
    emu_8 = 1 << 8
    emu_9 = 1 << 9
    emu_10 = 1 << 10


class IommuOpt(IntFlag):
    """§4.6 LU_DOMAIN iommu_opts (4.13 on)."""

    no_sharept = 1 << 0


class MiscFlag(IntFlag):
    """§4.6 LU_DOMAIN misc_flags (4.15 on)."""

    msr_relaxed = 1 << 0


class P2mType(IntEnum):
    """§4.7 LU_P2M p2m_type."""

    ram_rw = 0
    invalid = 1
    ram_logdirty = 2
    ram_ro = 3
    mmio_dm = 4
    mmio_direct = 5
    populate_on_demand = 6
    grant_map_rw = 7
    grant_map_ro = 8
    ram_paging_out = 9
    ram_paged = 10
    ram_paging_in = 11
    ram_shared = 12
    ram_broken = 13
    map_foreign = 14
    ioreq_server = 15


class P2mClass(IntEnum):
    """§4.7: what the frames of a P2M extent must be, by p2m_type."""

    NONE = 0  # no frame: mfn is INVALID_MFN
    OWN = 1  # frames the domain owns
    PAGING_IN = 2  # the domain's own frames, or INVALID_MFN
    SHARED = 3  # inside a SHARED LU_XEN_PAGES extent
    FOREIGN = 4  # owned by another domain of the stream (grant_map_*, map_foreign)
    DEVICE = 5  # any frame (mmio_direct)


#: §4.7 the class of every p2m_type.
P2M_CLASS: dict[P2mType, P2mClass] = {
    P2mType.ram_rw: P2mClass.OWN,
    P2mType.invalid: P2mClass.NONE,
    P2mType.ram_logdirty: P2mClass.OWN,
    P2mType.ram_ro: P2mClass.OWN,
    P2mType.mmio_dm: P2mClass.NONE,
    P2mType.mmio_direct: P2mClass.DEVICE,
    P2mType.populate_on_demand: P2mClass.NONE,
    P2mType.grant_map_rw: P2mClass.FOREIGN,
    P2mType.grant_map_ro: P2mClass.FOREIGN,
    P2mType.ram_paging_out: P2mClass.OWN,
    P2mType.ram_paged: P2mClass.NONE,
    P2mType.ram_paging_in: P2mClass.PAGING_IN,
    P2mType.ram_shared: P2mClass.SHARED,
    P2mType.ram_broken: P2mClass.OWN,
    P2mType.map_foreign: P2mClass.FOREIGN,
    P2mType.ioreq_server: P2mClass.OWN,
}
#: The same as a lookup table over every u8 p2m_type (unnamed types: NONE),
#: for vectorised use.
P2M_CLASS_LUT = np.zeros(256, np.int8)
P2M_CLASS_LUT[[int(t) for t in P2M_CLASS]] = [int(c) for c in P2M_CLASS.values()]


@epoch_limited(r_pw=("4.20", None))
class P2mAccess(IntEnum):
    """§4.7 LU_P2M access."""

    n = 0
    r = 1
    w = 2
    rw = 3
    x = 4
    rx = 5
    wx = 6
    rwx = 7
    rx2rw = 8
    n2rwx = 9
    r_pw = 10


@epoch_limited(extra=("4.14", None))
class OwnershipFlag(IntFlag):
    """§4.8 LU_PAGE_OWNERSHIP flags."""

    xen_heap = 1 << 0
    broken = 1 << 1
    extra = 1 << 2


class PageType(IntEnum):
    """§4.9 LU_PAGE_TYPES type."""

    none = 0
    l1 = 1
    l2 = 2
    l3 = 3
    l4 = 4
    seg_desc = 5
    shared = 6
    writable = 7


class PageTypeFlag(IntFlag):
    """§4.9 LU_PAGE_TYPES flags."""

    pinned = 1 << 0
    validated = 1 << 1
    pae_xen_l2 = 1 << 2
    partial = 1 << 3


class GrantVersion(IntEnum):
    """§4.10 LU_GRANT_TABLE version."""

    v1 = 1
    v2 = 2


class GrantMapFlag(IntFlag):
    """§4.11 LU_GRANT_MAPS flags (GNTMAP_*)."""

    device_map = 1 << 0
    host_map = 1 << 1
    readonly = 1 << 2
    application_map = 1 << 3
    contains_pte = 1 << 4


class EvtchnAbiKind(IntEnum):
    """§4.12 LU_EVTCHN_ABI abi."""

    two_level = 1
    fifo = 2


class EvtchnState(IntEnum):
    """§4.13 LU_EVTCHNS state (ECS_*)."""

    reserved = 1
    unbound = 2
    interdomain = 3
    pirq = 4
    virq = 5
    ipi = 6


class EvtchnFlag(IntFlag):
    """§4.13 LU_EVTCHNS flags."""

    pending = 1 << 0


@epoch_limited(ARGO=("4.12", None))
class Virq(IntEnum):
    """§4.13 the VIRQs a channel's ``detail`` names (0-23; the architectural
    VIRQs 16-23 are unnamed here). ARGO is VIRQ 11 from 4.12, reserved in 4.11."""

    TIMER = 0
    DEBUG = 1
    CONSOLE = 2
    DOM_EXC = 3
    TBUF = 4
    DEBUGGER = 6
    XENOPROF = 7
    CON_RING = 8
    PCPU_STATE = 9
    MEM_EVENT = 10
    ARGO = 11
    ENOMEM = 12
    XENPMU = 13


class BufIoreq(IntEnum):
    """§4.14 LU_IOREQ_SERVERS bufioreq."""

    off = 0
    on = 1
    atomic = 2


class IoreqRangeType(IntEnum):
    """§4.14 LU_IOREQ_SERVERS range type."""

    portio = 0
    mmio = 1
    pci = 2


#: §4.6 / §4.10: Xen's own defaults of the grant limits, the effective limit
#: where LU_DOMAIN says -1 and LU_HOST_INFO's host default is 0 (unknown).
XEN_MAX_GRANT_FRAMES = 64
XEN_MAX_MAPTRACK_FRAMES = 1024
#: §4.11: maptrack handles per maptrack frame.
MAPTRACK_PER_FRAME = 256
#: §4.12 ABI port limits: FIFO; two-level; two-level with the 32-bit shared_info.
EVTCHN_PORTS_FIFO = 131072
EVTCHN_PORTS_2L = 4096
EVTCHN_PORTS_2L_32 = 1024
#: §4.12: FIFO event words per event-array page.
EVTCHN_WORDS_PER_PAGE = 1024


def host_grant_limits(host: LuHostInfo) -> tuple[int, int]:
    """§4.6: the (grant frames, maptrack frames) limits of a domain whose
    LU_DOMAIN says -1: LU_HOST_INFO's host defaults, Xen's where those are 0."""
    return (
        int(host.gnttab_max_frames) or XEN_MAX_GRANT_FRAMES,
        int(host.gnttab_max_maptrack_frames) or XEN_MAX_MAPTRACK_FRAMES,
    )


def host_grant_version(host: LuHostInfo) -> int:
    """§4.2 / §6: LU_HOST_INFO gnttab_max_version, where 0 (unknown) means 2."""
    return int(host.gnttab_max_version) or int(GrantVersion.v2)


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


# --- §4.1 – §4.3 -------------------------------------------------------------


@packed(name="LU_VERSION")
class LuVersion(Packed):
    """§4.1: the version of the Xen that produced the stream."""

    xen_major: int = fld(Int32ul, doc="Xen major version of xen#1")
    xen_minor: int = fld(Int32ul, doc="Xen minor version of xen#1")


@packed(name="LU_HOST_INFO")
class LuHostInfo(Packed):
    """§4.2: host-wide facts xen#2 needs before any domain."""

    page_shift: int = fld(Int32ul, values={12: "4 KiB"}, doc="must be 12")
    nr_domains: int = fld(Int32ul, doc="number of domain sections")
    max_page: int = fld(Int64ul, doc="one past the highest RAM MFN")
    lu_bootmem_start: int = fld(Int64ul, doc="machine address of the LU bootmem, 2 MiB aligned")
    lu_bootmem_size: int = fld(Int64ul, doc="non-zero multiple of 2 MiB; start + size <= 4 GiB")
    gnttab_max_frames: int = fld(Int32ul, doc="xen#1's host default (0 = unknown)")
    gnttab_max_maptrack_frames: int = fld(Int32ul, doc="xen#1's host default (0 = unknown)")
    gnttab_max_version: int = fld(
        Int32ul, values={0: "unknown (2)", 1: "v1", 2: "v2"}, doc="host maximum grant version"
    )
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)

    # §4.2: the LU bootmem is 2 MiB aligned, a non-zero multiple of 2 MiB
    # and ends at or below 4 GiB.
    RULES = (
        Rule(
            "lu_bootmem_start",
            "LU bootmem not 2 MiB aligned",
            lambda c: c.lu_bootmem_start % MIB2 != 0,
            "a multiple of 0x200000",
            repair=lambda d, pick: _repair_bootmem(d, pick),
        ),
        Rule(
            "lu_bootmem_size",
            "LU bootmem size not a non-zero multiple of 2 MiB",
            lambda c: (c.lu_bootmem_size == 0) | (c.lu_bootmem_size % MIB2 != 0),
            "a non-zero multiple of 0x200000",
            repair=lambda d, pick: _repair_bootmem(d, pick),
        ),
        Rule(
            "lu_bootmem_size",
            "LU bootmem ends above 4 GiB",
            lambda c: (c.lu_bootmem_start > GIB4) | (c.lu_bootmem_size > GIB4 - c.lu_bootmem_start),
            f"start + size <= {GIB4:#x}",
            got=lambda c: c.lu_bootmem_start + c.lu_bootmem_size,
            repair=lambda d, pick: _repair_bootmem(d, pick),
        ),
    )


def _repair_bootmem(d: dict[str, Any], pick: Pick) -> dict[str, Any]:
    """A valid LU bootmem (§4.2), keeping the start when it is valid."""
    start = d["lu_bootmem_start"]
    if start % MIB2 or start >= GIB4:
        start = pick(0, GIB4 // MIB2 - 1) * MIB2
    size = pick(1, (GIB4 - start) // MIB2) * MIB2
    return {**d, "lu_bootmem_start": start, "lu_bootmem_size": size}


@packed(name="COUNT_HEADER")
class CountHeader(Packed):
    """The ``{u32 count; u32 rsvd}`` prefix of count-prefixed records (§4)."""

    count: int = fld(Int32ul)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="EXTENT(LU_REUSABLE_REGIONS)")
class RegionExtent(Packed):
    """§4.3/§4.4: memory xen#2 may use before it has consumed the stream."""

    start_mfn: int = fld(Int64ul)
    nr_pages: int = fld(Int64ul, lo=1)
    kind: int = fld(Int32ul, values=RegionKind)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="EXTENT(LU_XEN_PAGES)")
class XenPagesExtent(Packed):
    """§4.3/§4.5: hypervisor pages that must be kept as they are."""

    start_mfn: int = fld(Int64ul)
    nr_pages: int = fld(Int64ul, lo=1)
    kind: int = fld(Int32ul, values=XenPageKind)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


# --- §4.6 LU_DOMAIN ----------------------------------------------------------

# Derived from the enums above (plain ints: ``~`` of an IntFlag member keeps
# only the named bits, which is not what a mask clearing one bit wants).
CDF_BITS: dict[int, Named] = bit_names(CdfFlag)
LU_STATE_BITS: dict[int, Named] = bit_names(LuState)
LU_STATE_RUNNING = int(LuState.running)
LU_STATE_DYING = int(LuState.dying)
LU_STATE_PRIVILEGED = int(LuState.privileged)
LU_STATE_IOMMU = int(LuState.iommu)
LU_STATE_SHINFO32 = int(LuState.shinfo32)
CDF_HVM = int(CdfFlag.hvm)
CDF_IOMMU = int(CdfFlag.iommu)
CDF_NESTED_VIRT = int(CdfFlag.nested_virt)
CDF_VPMU = int(CdfFlag.vpmu)
EMU_BITS: dict[int, Named] = bit_names(EmulationFlag)


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


# --- §4.7 – §4.11 bulk entries -----------------------------------------------

P2M_TYPES: dict[int, str] = {int(t): t.name for t in P2mType}
P2M_ACCESS: dict[int, Named] = value_names(P2mAccess)
#: §4.7: p2m types whose mfn must be INVALID_MFN / must not be (ram_paging_in: either).
P2M_NO_FRAME = tuple(int(t) for t in P2mType if P2M_CLASS[t] is P2mClass.NONE)
P2M_HAS_FRAME = tuple(
    int(t) for t in P2mType if P2M_CLASS[t] not in (P2mClass.NONE, P2mClass.PAGING_IN)
)
#: [OR of a chunk's p2m types]: could the chunk hold a type with no frame?
_P2M_MAYBE_NO_FRAME = tuple(any(t & ~o == 0 for t in P2M_NO_FRAME) for o in range(256))
#: nr_pages < 2^32, so only a gfn at or above 2^64 - 2^32 can wrap.
_GFN_MAY_WRAP = 0xFFFFFFFF00000000


def _repair_mfn(d: dict[str, Any], pick: Pick) -> dict[str, Any]:
    t = d["p2m_type"]
    if t in P2M_NO_FRAME:
        return {**d, "mfn": INVALID_MFN}
    if t in P2M_HAS_FRAME and d["mfn"] == INVALID_MFN:
        return {**d, "mfn": pick(0, INVALID_MFN - 1)}
    return d


def _repair_wrap(d: dict[str, Any], pick: Pick) -> dict[str, Any]:
    if d["gfn"] + d["nr_pages"] - 1 > INVALID_MFN:
        return {**d, "gfn": INVALID_MFN + 1 - d["nr_pages"]}
    return d


@packed(name="LU_P2M entry")
class P2mEntry(Packed):
    """§4.7: one P2M extent gfn+i → mfn+i."""

    gfn: int = fld(Int64ul)
    mfn: int = fld(Int64ul, doc="INVALID_MFN for types with no frame")
    nr_pages: int = fld(Int32ul, lo=1)
    p2m_type: int = fld(Int8ul, values=P2mType)
    access: int = fld(Int8ul, values=P2mAccess)
    rsvd: ClassVar[Rsvd] = reserved(Int16ul)

    # §4.7 frame rules that one entry shows by itself. Each screen is one
    # reduction per 64 Ki entries (INVALID_MFN is the largest u64; a type set
    # can only hold values whose bits are in its OR), so a clean array costs
    # three reductions and no temporaries.
    RULES = (
        Rule(
            "mfn",
            "p2m type has no frame",
            lambda c: c.isin(c.p2m_type, P2M_NO_FRAME) & (c.mfn != INVALID_MFN),
            "INVALID_MFN",
            repair=_repair_mfn,
            screen=OrIn("p2m_type", _P2M_MAYBE_NO_FRAME),
        ),
        Rule(
            "mfn",
            "p2m type needs a frame",
            lambda c: c.isin(c.p2m_type, P2M_HAS_FRAME) & (c.mfn == INVALID_MFN),
            "an MFN",
            repair=_repair_mfn,
            screen=AtLeast("mfn", INVALID_MFN),
        ),
        # An extent must not wrap the 64-bit gfn/mfn space.
        Rule(
            "nr_pages",
            "gfn range wraps",
            lambda c: c.wrap64(c.gfn + (c.nr_pages - 1)) < c.gfn,
            "no overflow",
            repair=_repair_wrap,
            screen=AtLeast("gfn", _GFN_MAY_WRAP),
        ),
    )


@packed(name="LU_PAGE_OWNERSHIP entry")
class OwnershipEntry(Packed):
    """§4.8: frames start_mfn … start_mfn+nr_pages-1 owned by the section's domain."""

    start_mfn: int = fld(Int64ul)
    nr_pages: int = fld(Int32ul, lo=1)
    flags: int = fld(Int32ul, bits=OwnershipFlag)


PAGE_TYPES: dict[int, str] = {int(t): t.name for t in PageType}
PT_PINNED = int(PageTypeFlag.pinned)


@packed(name="LU_PAGE_TYPES entry")
class PageTypeEntry(Packed):
    """§4.9: the stable type of one PV page (not xen#1's type_info bits)."""

    mfn: int = fld(Int64ul)
    type: int = fld(Int8ul, values=PageType)
    flags: int = fld(Int8ul, bits=PageTypeFlag)
    rsvd: ClassVar[Rsvd] = reserved(Int16ul)
    type_count: int = fld(Int32ul)

    # §4.9: a pinned page must be an L1-L4 page table.
    RULES = (
        Rule(
            "type",
            "pinned page is not a page table",
            lambda c: ((c.flags & PT_PINNED) != 0) & ((c.type < 1) | (c.type > 4)),
            "1..4",
            repair=lambda d, pick: (
                {**d, "type": pick(1, 4)} if d["flags"] & 1 and not 1 <= d["type"] <= 4 else d
            ),
        ),
    )


GNTMAP_DEVICE_MAP = int(GrantMapFlag.device_map)
GNTMAP_HOST_MAP = int(GrantMapFlag.host_map)
GNTMAP_READONLY = int(GrantMapFlag.readonly)


@packed(name="LU_GRANT_MAPS entry")
class GrantMapEntry(Packed):
    """§4.11: one maptrack entry of the mapping domain."""

    handle: int = fld(Int32ul)
    ref: int = fld(Int32ul)
    flags: int = fld(Int16ul, bits=GrantMapFlag)
    granting_domid: int = fld(Int16ul)
    vcpu: int = fld(Int32ul)
    mfn: int = fld(Int64ul)

    # §4.11: at least one of device_map, host_map.
    RULES = (
        Rule(
            "flags",
            "neither device_map nor host_map",
            lambda c: (c.flags & (GNTMAP_DEVICE_MAP | GNTMAP_HOST_MAP)) == 0,
            "bit 0 or 1",
            repair=lambda d, pick: d if d["flags"] & 3 else {**d, "flags": d["flags"] | pick(1, 3)},
        ),
    )


# --- §4.13 LU_EVTCHNS ---------------------------------------------------------

EVTCHN_STATES: dict[int, str] = {int(s): s.name for s in EvtchnState}
ECS_RESERVED = int(EvtchnState.reserved)
ECS_UNBOUND = int(EvtchnState.unbound)
ECS_INTERDOMAIN = int(EvtchnState.interdomain)
ECS_PIRQ = int(EvtchnState.pirq)
ECS_VIRQ = int(EvtchnState.virq)
ECS_IPI = int(EvtchnState.ipi)
#: §4.13: the VIRQs bound once per vCPU (the others once per domain).
PER_VCPU_VIRQS = tuple(int(v) for v in (Virq.TIMER, Virq.DEBUG, Virq.XENOPROF, Virq.XENPMU))


def _repair_ports(rows: list[dict[str, Any]], pick: Pick) -> list[dict[str, Any]]:
    """Unique ascending ports (port 0 is never listed), as many as ``rows``."""
    ports: set[int] = set()
    while len(ports) < len(rows):
        ports.add(pick(1, 0xFFFFFFFF))
    return [{**r, "port": p} for r, p in zip(rows, sorted(ports), strict=True)]


@packed_base
class EvtchnCommon(Packed):
    """LU_EVTCHNS entry offsets 0–15, the same in every epoch (§4.13)."""

    port: int = fld(Int32ul, lo=1, doc="port 0 is never listed")
    state: int = fld(Int8ul, values=EvtchnState)
    priority: int = fld(Int8ul, hi=15)
    notify_vcpu: int = fld(Int16ul)
    remote_domid: int = fld(Int16ul)
    xen_consumer: int = fld(Int8ul, values={0: "none"}, doc="must be 0 in revision 1")
    flags: int = fld(Int8ul, bits=EvtchnFlag)
    detail: int = fld(Int32ul, doc="remote port / pirq / virq, else 0")

    # §4.13, in this order (the first broken rule is the one reported).
    RULES = (
        # Ports ascend within a record (structural by §7).
        Rule(
            "port",
            "ports do not ascend",
            lambda c: c.port <= c.prev.port,
            lambda c: f"> {c.prev.port}",
            repair_all=_repair_ports,
            pairwise=True,
        ),
        Rule(
            "remote_domid",
            "remote_domid set for this state",
            lambda c: c.notin(c.state, (ECS_UNBOUND, ECS_INTERDOMAIN)) & (c.remote_domid != 0),
            0,
            repair=lambda d, pick: (
                d if d["state"] in (ECS_UNBOUND, ECS_INTERDOMAIN) else {**d, "remote_domid": 0}
            ),
        ),
        # detail: remote port / pirq / virq, else 0; virq 0-23.
        Rule(
            "detail",
            "detail set for this state",
            lambda c: c.isin(c.state, (ECS_RESERVED, ECS_UNBOUND, ECS_IPI)) & (c.detail != 0),
            0,
            repair=lambda d, pick: (
                {**d, "detail": 0} if d["state"] in (ECS_RESERVED, ECS_UNBOUND, ECS_IPI) else d
            ),
        ),
        Rule(
            "detail",
            "virq out of range",
            lambda c: (c.state == ECS_VIRQ) & (c.detail > 23),
            "0..23",
            repair=lambda d, pick: {**d, "detail": d["detail"] % 24} if d["state"] == 5 else d,
        ),
        Rule(
            "fifo_lastq",
            "last priority above 15",
            lambda c: ((c.fifo_lastq >> 16) & 0xFF) > 15,
            "<= 15",
            repair=lambda d, pick: {
                **d,
                "fifo_lastq": (d["fifo_lastq"] & 0xFFFF)
                | ((((d["fifo_lastq"] >> 16) & 0xFF) % 16) << 16),
            },
        ),
    )


@packed(name="LU_EVTCHNS entry@4.11", since="4.11", until="4.15")
class EvtchnEntry411(EvtchnCommon):
    """LU_EVTCHNS entry up to epoch 4.14: separate last_priority / last_vcpu."""

    last_priority: int = fld(Int8ul, hi=15)
    rsvd0: ClassVar[Rsvd] = reserved(Int8ul)
    last_vcpu: int = fld(Int16ul)
    rsvd1: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="LU_EVTCHNS entry@4.15", since="4.15")
class EvtchnEntry415(EvtchnCommon):
    """LU_EVTCHNS entry from epoch 4.15: the packed fifo_lastq."""

    fifo_lastq: int = fld(
        Int32ul,
        mask={0xFFFF: "last_vcpu", 0xFF0000: "last_priority"},
        doc="bits 0-15 last vcpu, 16-23 last priority, 24-31 zero",
    )
    rsvd1: ClassVar[Rsvd] = reserved(Int32ul)


#: epoch → the LU_EVTCHNS entry declaration of that epoch (from their since/until).
EVTCHN_LAYOUTS: dict[Epoch, type[EvtchnCommon]] = by_epoch(EvtchnEntry411, EvtchnEntry415)


def evtchn_layout(epoch: Epoch) -> type[EvtchnCommon]:
    """The LU_EVTCHNS entry class of ``epoch``."""
    return EVTCHN_LAYOUTS[epoch]


# --- §4.10, §4.12, §4.14, §4.15 variable-size records -------------------------


@packed(name="LU_GRANT_TABLE header")
class GrantTableHeader(Packed):
    version: int = fld(Int8ul, values=GrantVersion)
    rsvd0: ClassVar[Rsvd] = reserved(Bytes(3))
    nr_grant_frames: int = fld(Int32ul)
    nr_status_frames: int = fld(Int32ul, doc="0 for v1; ceil(nr_grant_frames / 8) for v2")
    rsvd1: ClassVar[Rsvd] = reserved(Int32ul)

    # §4.10: status frames only for v2, one per 8 grant frames.
    RULES = (
        Rule(
            "nr_status_frames",
            "nr_status_frames wrong for the table version",
            lambda c: c.nr_status_frames != (c.version != 1) * ((c.nr_grant_frames + 7) // 8),
            lambda c: (c.version != 1) * ((c.nr_grant_frames + 7) // 8),
            repair=lambda d, pick: {
                **d,
                "nr_status_frames": (d["version"] != 1) * ((d["nr_grant_frames"] + 7) // 8),
            },
        ),
    )


@packed(name="LU_EVTCHN_ABI header")
class EvtchnAbiHeader(Packed):
    abi: int = fld(Int32ul, values=EvtchnAbiKind)
    nr_control_blocks: int = fld(Int32ul)


@packed(name="LU_EVTCHN_ABI control block")
class ControlBlock(Packed):
    """A FIFO per-vCPU control block registration (§4.12)."""

    vcpu: int = fld(Int32ul)
    offset: int = fld(Int32ul, hi=4024, doc="8-aligned")
    control_gfn: int = fld(Int64ul)

    RULES = (
        Rule(
            "offset",
            "control block offset not 8-aligned",
            lambda c: (c.offset & 7) != 0,
            "a multiple of 8",
            repair=lambda d, pick: {**d, "offset": d["offset"] & ~7},
        ),
    )


@packed(name="LU_EVTCHN_ABI pages header")
class EvtchnPagesHeader(Packed):
    nr_event_array_pages: int = fld(Int32ul, hi=128)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="LU_IOREQ_SERVERS server")
class IoreqServerHeader(Packed):
    id: int = fld(Int16ul)
    dm_domid: int = fld(Int16ul)
    enabled: int = fld(Int8ul, values={0: "no", 1: "yes"})
    bufioreq: int = fld(Int8ul, values=BufIoreq)
    nr_ranges: int = fld(Int16ul)
    ioreq_gfn: int = fld(Int64ul)
    bufioreq_gfn: int = fld(Int64ul, doc="INVALID_MFN exactly when bufioreq is 0")

    RULES = (
        Rule(
            "bufioreq_gfn",
            "bufioreq_gfn must be INVALID_MFN exactly when bufioreq is 0",
            lambda c: (c.bufioreq == 0) != (c.bufioreq_gfn == INVALID_MFN),
            lambda c: "INVALID_MFN" if c.bufioreq == 0 else "a gfn",
            repair=lambda d, pick: {
                **d,
                "bufioreq_gfn": INVALID_MFN
                if d["bufioreq"] == 0
                else (
                    pick(0, INVALID_MFN - 1)
                    if d["bufioreq_gfn"] == INVALID_MFN
                    else d["bufioreq_gfn"]
                ),
            },
        ),
    )


@packed(name="LU_IOREQ_SERVERS range")
class IoreqRange(Packed):
    type: int = fld(Int32ul, values=IoreqRangeType)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)
    start: int = fld(Int64ul)
    end: int = fld(Int64ul)

    RULES = (
        Rule(
            "start",
            "range start above end",
            lambda c: c.start > c.end,
            lambda c: f"<= {c.end:#x}",
            repair=lambda d, pick: (
                {**d, "start": d["end"], "end": d["start"]} if d["start"] > d["end"] else d
            ),
        ),
    )


@packed(name="LU_SECTION_END")
class LuSectionEnd(Packed):
    """§4.15: closes a section with its crc32c and byte count."""

    domid: int = fld(Int16ul, doc="DOMID_XEN for the global section")
    rsvd: ClassVar[Rsvd] = reserved(Int16ul)
    crc32c: int = fld(Int32ul)
    section_bytes: int = fld(Int64ul)


# --- value types of variable records ------------------------------------------


@dataclass(frozen=True, eq=False)
class Bulk(Value):
    """The entries of one count-prefixed bulk record, a structured numpy array."""

    entries: np.ndarray

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True, eq=False)
class GrantTable(Value):
    """§4.10 LU_GRANT_TABLE: version, and the MFNs of grant and status frames."""

    version: int
    grant_frames: np.ndarray  # '<u8'
    status_frames: np.ndarray  # '<u8'

    @property
    def nr_grant_frames(self) -> int:
        return len(self.grant_frames)

    @property
    def nr_status_frames(self) -> int:
        return len(self.status_frames)

    @property
    def nr_entries(self) -> int:
        """Grant entries the table holds: 512 per frame in v1, 256 in v2."""
        return self.nr_grant_frames * (512 if self.version == 1 else 256)


@dataclass(frozen=True, eq=False)
class EvtchnAbi(Value):
    """§4.12 LU_EVTCHN_ABI: the ABI, FIFO control blocks and event-array pages."""

    abi: int
    control_blocks: np.ndarray  # ControlBlock dtype
    event_array_gfns: np.ndarray  # '<u8'

    @property
    def is_fifo(self) -> bool:
        return self.abi == 2


@dataclass(frozen=True, eq=False)
class IoreqServer(Value):
    """One entry of §4.14 LU_IOREQ_SERVERS."""

    id: int
    dm_domid: int
    enabled: int
    bufioreq: int
    ioreq_gfn: int
    bufioreq_gfn: int
    ranges: np.ndarray  # IoreqRange dtype


@dataclass(frozen=True, eq=False)
class IoreqServers(Value):
    """§4.14 LU_IOREQ_SERVERS."""

    servers: tuple[IoreqServer, ...]


# --- body codecs ------------------------------------------------------------

U64 = np.dtype("<u8")
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

_GTH = GrantTableHeader.LAYOUT


def _decode_grant_table(body: memoryview, ctx: Ctx) -> GrantTable:
    if len(body) < _GTH.size:
        ctx.fail_length(f">= {_GTH.size}")
    h: GrantTableHeader = _GTH.from_tuple(ctx.checked(_GTH, body))
    n = _GTH.size + 8 * (h.nr_grant_frames + h.nr_status_frames)
    if len(body) != n:
        ctx.fail_length(n)
    grant = np.frombuffer(body, U64, h.nr_grant_frames, _GTH.size)
    status = np.frombuffer(body, U64, h.nr_status_frames, _GTH.size + 8 * h.nr_grant_frames)
    return GrantTable(h.version, grant, status)


def _encode_grant_table(value: Any) -> Sequence[Any]:
    if not isinstance(value, GrantTable):
        raise EncodeError(f"LU_GRANT_TABLE: expected GrantTable, got {type(value).__name__}")
    hdr = GrantTableHeader(
        version=value.version,
        nr_grant_frames=value.nr_grant_frames,
        nr_status_frames=value.nr_status_frames,
    )
    return [
        _GTH.pack(hdr),
        np.ascontiguousarray(value.grant_frames, U64).data.cast("B"),
        np.ascontiguousarray(value.status_frames, U64).data.cast("B"),
    ]


_EAH = EvtchnAbiHeader.LAYOUT
_CB = ControlBlock.LAYOUT
_EPH = EvtchnPagesHeader.LAYOUT


def _decode_evtchn_abi(body: memoryview, ctx: Ctx) -> EvtchnAbi:
    if len(body) < _EAH.size:
        ctx.fail_length(f">= {_EAH.size + _EPH.size}")
    abi, ncb = ctx.checked(_EAH, body)
    if abi == 1 and ncb:
        ctx.fail(
            "two-level ABI with control blocks",
            at=4,
            field="nr_control_blocks",
            expected=0,
            got=ncb,
        )
    pages_at = _EAH.size + ncb * _CB.size
    if len(body) < pages_at + _EPH.size:
        ctx.fail_length(f">= {pages_at + _EPH.size}")
    cbs = _CB.array(body, _EAH.size, ncb)
    vio = _CB.check_array(cbs, ctx.epoch)
    if vio is not None:
        ctx.fail_violation(vio, at=_EAH.size, prefix="control_blocks", entry_size=_CB.size)
    npages = ctx.checked(_EPH, body, pages_at)[0]
    if abi == 1 and npages:
        ctx.fail(
            "two-level ABI with event-array pages",
            at=pages_at,
            field="nr_event_array_pages",
            expected=0,
            got=npages,
        )
    n = pages_at + _EPH.size + 8 * npages
    if len(body) != n:
        ctx.fail_length(n)
    gfns = np.frombuffer(body, U64, npages, pages_at + _EPH.size)
    return EvtchnAbi(abi, cbs, gfns)


def _encode_evtchn_abi(value: Any) -> Sequence[Any]:
    if not isinstance(value, EvtchnAbi):
        raise EncodeError(f"LU_EVTCHN_ABI: expected EvtchnAbi, got {type(value).__name__}")
    cbs = np.ascontiguousarray(value.control_blocks, _CB.dtype)
    return [
        _EAH.pack(EvtchnAbiHeader(abi=value.abi, nr_control_blocks=len(cbs))),
        _CB.pack_array(cbs),
        _EPH.pack(EvtchnPagesHeader(nr_event_array_pages=len(value.event_array_gfns))),
        np.ascontiguousarray(value.event_array_gfns, U64).data.cast("B"),
    ]


_ISH = IoreqServerHeader.LAYOUT
_IR = IoreqRange.LAYOUT


def _decode_ioreq(body: memoryview, ctx: Ctx) -> IoreqServers:
    if len(body) < 8:
        ctx.fail_length(">= 8 (count header)")
    count, rsvd = _CH.unpack_tuple(body)
    if rsvd:
        ctx.fail("reserved field not zero", at=4, field="rsvd", expected=0, got=rsvd)
    pos = 8
    servers = []
    for i in range(count):
        if pos + _ISH.size > len(body):
            ctx.fail_length(f"room for server {i} of {count}")
        h: IoreqServerHeader = _ISH.from_tuple(ctx.checked(_ISH, body, pos, f"servers[{i}]."))
        rpos = pos + _ISH.size
        if rpos + h.nr_ranges * _IR.size > len(body):
            ctx.fail_length(f"room for {h.nr_ranges} ranges of server {i}")
        ranges = _IR.array(body, rpos, h.nr_ranges)
        vio = _IR.check_array(ranges, ctx.epoch)
        if vio is not None:
            ctx.fail_violation(vio, at=rpos, prefix=f"servers[{i}].ranges", entry_size=_IR.size)
        servers.append(
            IoreqServer(
                h.id, h.dm_domid, h.enabled, h.bufioreq, h.ioreq_gfn, h.bufioreq_gfn, ranges
            )
        )
        pos = rpos + h.nr_ranges * _IR.size
    if pos != len(body):
        ctx.fail_length(pos, "body longer than its servers")
    return IoreqServers(tuple(servers))


def _encode_ioreq(value: Any) -> Sequence[Any]:
    if not isinstance(value, IoreqServers):
        raise EncodeError(f"LU_IOREQ_SERVERS: expected IoreqServers, got {type(value).__name__}")
    parts: list[Any] = [_CH.pack(CountHeader(count=len(value.servers)))]
    for s in value.servers:
        ranges = np.ascontiguousarray(s.ranges, _IR.dtype)
        parts.append(
            _ISH.pack(
                IoreqServerHeader(
                    id=s.id,
                    dm_domid=s.dm_domid,
                    enabled=s.enabled,
                    bufioreq=s.bufioreq,
                    nr_ranges=len(ranges),
                    ioreq_gfn=s.ioreq_gfn,
                    bufioreq_gfn=s.bufioreq_gfn,
                )
            )
        )
        parts.append(_IR.pack_array(ranges))
    return parts


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
            _decode_grant_table,
            _encode_grant_table,
            GrantTable,
            layouts=(GrantTableHeader,),
        )
    )
    add(
        RecordSpec(
            "lu",
            T.LU_EVTCHN_ABI,
            "LU_EVTCHN_ABI",
            _decode_evtchn_abi,
            _encode_evtchn_abi,
            EvtchnAbi,
            layouts=(EvtchnAbiHeader, ControlBlock, EvtchnPagesHeader),
        )
    )
    add(
        RecordSpec(
            "lu",
            T.LU_IOREQ_SERVERS,
            "LU_IOREQ_SERVERS",
            _decode_ioreq,
            _encode_ioreq,
            IoreqServers,
            layouts=(CountHeader, IoreqServerHeader, IoreqRange),
        )
    )
    fixed("LU_SECTION_END", T.LU_SECTION_END, LuSectionEnd)
    return tuple(sorted(out, key=lambda s: s.type))


#: The LU records (§4): the one explicit list :data:`~xenlu.registry.LU` loads.
RECORDS = _records()

#: Record types that may repeat in a section to carry more entries (§1).
BULK_TYPES = frozenset(s.type for s in RECORDS if s.bulk)
