"""Value names, Xen defaults and limits of the LU records (LU spec §4).

The ``IntEnum``/``IntFlag`` classes below name the values and bits of the
record fields; the declarations (:mod:`xenlu.lu.host_records`,
:mod:`xenlu.lu.records`, :mod:`xenlu.lu.memory_records`, :mod:`xenlu.lu.io_records`) pass them to
``fld(values=…/bits=…)``, and validate, compat, plan, the hand-over and the
strategies import them from here instead of repeating the numbers.

    >>> P2M_CLASS[P2mType.ram_rw].name
    'OWN'
    >>> EVTCHN_STATES[ECS_INTERDOMAIN]
    'interdomain'
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

import numpy as np

from xenlu.core.layout import Named
from xenlu.core.names import bit_names, epoch_limited, value_names

INVALID_MFN = 0xFFFFFFFFFFFFFFFF
DOMID_XEN = 0x7FF2
DOMID_COW = 0x7FF3
DOMID_MAX = 0x7FEF  # ordinary domain ids are 0 … 0x7FEF (spec "Conventions")
PAGE_SIZE = 4096
MIB2 = 2 << 20
GIB4 = 1 << 32


# --- value and bit names, declared once (xenlu.core.names) -------------------------
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


# --- derived plain ints (``~`` of an IntFlag member keeps only the named bits,
# which is not what a mask clearing one bit wants) ---------------------------

#: §4.6 LU_DOMAIN bits.
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

#: §4.7 p2m types and access.
P2M_TYPES: dict[int, str] = {int(t): t.name for t in P2mType}
P2M_ACCESS: dict[int, Named] = value_names(P2mAccess)
#: §4.7: p2m types whose mfn must be INVALID_MFN / must not be (ram_paging_in: either).
P2M_NO_FRAME = tuple(int(t) for t in P2mType if P2M_CLASS[t] is P2mClass.NONE)
P2M_HAS_FRAME = tuple(
    int(t) for t in P2mType if P2M_CLASS[t] not in (P2mClass.NONE, P2mClass.PAGING_IN)
)

#: §4.9 page types.
PAGE_TYPES: dict[int, str] = {int(t): t.name for t in PageType}
PT_PINNED = int(PageTypeFlag.pinned)

#: §4.11 grant map flags.
GNTMAP_DEVICE_MAP = int(GrantMapFlag.device_map)
GNTMAP_HOST_MAP = int(GrantMapFlag.host_map)
GNTMAP_READONLY = int(GrantMapFlag.readonly)

#: §4.13 event channel states.
EVTCHN_STATES: dict[int, str] = {int(s): s.name for s in EvtchnState}
ECS_RESERVED = int(EvtchnState.reserved)
ECS_UNBOUND = int(EvtchnState.unbound)
ECS_INTERDOMAIN = int(EvtchnState.interdomain)
ECS_PIRQ = int(EvtchnState.pirq)
ECS_VIRQ = int(EvtchnState.virq)
ECS_IPI = int(EvtchnState.ipi)
#: §4.13: the VIRQs bound once per vCPU (the others once per domain).
PER_VCPU_VIRQS = tuple(int(v) for v in (Virq.TIMER, Virq.DEBUG, Virq.XENOPROF, Virq.XENPMU))
