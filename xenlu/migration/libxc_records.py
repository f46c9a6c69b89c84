"""libxc migration-stream record declarations and values (``xen-formats.md`` §1.5, §1.6).

The type codes (:class:`RecType`), the PAGE_DATA pfn-type table, every
fixed layout declared once as a :func:`~xenlu.core.layout.packed` class, and
the value classes the decoders return (bulk entries are zero-copy
read-only numpy views). :mod:`xenlu.migration.libxc` holds the body codecs and the
explicit :data:`~xenlu.migration.libxc.RECORDS` list; :mod:`xenlu.migration.libxc_page_data`
the PAGE_DATA codec.

    >>> RecType.PAGE_DATA, X86PvInfo.LAYOUT.size
    (<RecType.PAGE_DATA: 1>, 8)
    >>> p2m_frame_count(0, 1023, 8)
    2
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar

from construct import Bytes, Int8ul, Int32ul, Int64ul

from xenlu.core.errors import EncodeError
from xenlu.core.layout import Packed, Rsvd, fld, packed, reserved
from xenlu.core.rules import Pick, Rule
from xenlu.core.values import Value

if TYPE_CHECKING:
    import numpy as np


PAGE_SIZE = 4096


class RecType(IntEnum):
    """libxc record type codes (reference §1.5)."""

    END = 0x00
    PAGE_DATA = 0x01
    X86_PV_INFO = 0x02
    X86_PV_P2M_FRAMES = 0x03
    X86_PV_VCPU_BASIC = 0x04
    X86_PV_VCPU_EXTENDED = 0x05
    X86_PV_VCPU_XSAVE = 0x06
    SHARED_INFO = 0x07
    X86_TSC_INFO = 0x08
    HVM_CONTEXT = 0x09
    HVM_PARAMS = 0x0A
    TOOLSTACK = 0x0B
    X86_PV_VCPU_MSRS = 0x0C
    VERIFY = 0x0D
    CHECKPOINT = 0x0E
    CHECKPOINT_DIRTY_PFN_LIST = 0x0F
    STATIC_DATA_END = 0x10
    X86_CPUID_POLICY = 0x11
    X86_MSR_POLICY = 0x12


#: The four PV vCPU records sharing the ``{u32 vcpu_id; u32 rsvd}`` header (§1.6).
PV_VCPU_TYPES = frozenset(
    (
        RecType.X86_PV_VCPU_BASIC,
        RecType.X86_PV_VCPU_EXTENDED,
        RecType.X86_PV_VCPU_XSAVE,
        RecType.X86_PV_VCPU_MSRS,
    )
)

# §1.6 PAGE_DATA pfn entry: bits 63-60 type, 59-52 reserved, 51-0 pfn.
PAGE_DATA_PFN_MASK = 0x000FFFFFFFFFFFFF
PAGE_DATA_RSVD_MASK = 0x0FF0000000000000
PAGE_DATA_TYPE_MASK = 0xF000000000000000
#: The PAGE_DATA pfn rule, declared once (§1.6): XEN_DOMCTL_PFINFO_* type
#: (pfn bits 63-60) → (name, whether a page of data follows the entry).
#: Types 5-8 are invalid. Every check of a pfn entry (decoder, encoder, the
#: allocation-free acceptor, the data-page count) reads the tables below.
PFN_TYPES: dict[int, tuple[str, bool]] = {
    0x0: ("NOTAB", True),
    0x1: ("L1TAB", True),
    0x2: ("L2TAB", True),
    0x3: ("L3TAB", True),
    0x4: ("L4TAB", True),
    0x9: ("L1TAB_PIN", True),
    0xA: ("L2TAB_PIN", True),
    0xB: ("L3TAB_PIN", True),
    0xC: ("L4TAB_PIN", True),
    0xD: ("BROKEN", False),
    0xE: ("XALLOC", False),
    0xF: ("XTAB", False),
}
#: XEN_DOMCTL_PFINFO_* type → name.
PFINFO: dict[int, str] = {t: name for t, (name, _) in PFN_TYPES.items()}
#: Types whose pfn entry is followed by a page of data (0-4 and 9-12).
DATA_PAGE_TYPES = frozenset(t for t, (_, data) in PFN_TYPES.items() if data)
#: Indexed by type: 1 when valid / 1 when a data page follows.

#: Little-endian u64, the dtype of pfn and frame lists.
U64 = "<u8"

# --- layouts (§1.6) ------------------------------------------------------------


@packed(name="PAGE_DATA_HEADER")
class PageDataHeader(Packed):
    """§1.6 PAGE_DATA header: ``count`` pfn entries follow (count > 0)."""

    count: int = fld(Int32ul, lo=1, doc="number of pfn entries, > 0")
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="X86_PV_INFO")
class X86PvInfo(Packed):
    """§1.6 X86_PV_INFO (8 bytes): width, levels, then 6 reserved bytes."""

    guest_width: int = fld(Int8ul, values={4: "32-bit", 8: "64-bit"}, doc="4 or 8")
    pt_levels: int = fld(Int8ul, values={3: "3-level", 4: "4-level"}, doc="3 or 4")
    rsvd: ClassVar[Rsvd] = reserved(Bytes(6))


@packed(name="X86_PV_P2M_FRAMES_HEADER")
class PvP2mFramesHeader(Packed):
    """§1.6 X86_PV_P2M_FRAMES header; u64 frame pfns follow."""

    p2m_start_pfn: int = fld(Int32ul, doc="first pfn covered")
    p2m_end_pfn: int = fld(Int32ul, doc="last pfn covered (inclusive)")

    # Xen's C restorer (handle_x86_pv_p2m_frames(), xg_sr_restore_x86_pv.c)
    # refuses start_pfn > end_pfn ("End pfn in stream ... exceeds Start");
    # the pandoc text only calls end_pfn inclusive.
    RULES = (
        Rule(
            "p2m_end_pfn",
            "p2m end pfn below the start pfn",
            lambda c: c.p2m_end_pfn < c.p2m_start_pfn,
            lambda c: f">= p2m_start_pfn {c.p2m_start_pfn:#x}",
            repair=lambda d, pick: _repair_p2m_range(d, pick),
        ),
    )


def _repair_p2m_range(d: dict[str, Any], pick: Pick) -> dict[str, Any]:
    """The same two pfns, in order."""
    lo, hi = sorted((d["p2m_start_pfn"], d["p2m_end_pfn"]))
    return {**d, "p2m_start_pfn": lo, "p2m_end_pfn": hi}


def p2m_frame_count(start_pfn: int, end_pfn: int, guest_width: int) -> int:
    """Frames an X86_PV_P2M_FRAMES record for pfns ``start_pfn..end_pfn`` lists.

    A p2m frame holds ``PAGE_SIZE / guest_width`` entries; the record lists
    the frames from the one holding ``start_pfn`` to the one holding
    ``end_pfn`` (Xen's ``handle_x86_pv_p2m_frames()``: length == 8 +
    8 x (end_pfn / fpp + 1 - start_pfn / fpp)).

    >>> p2m_frame_count(0, 511, 8), p2m_frame_count(0, 1023, 8), p2m_frame_count(0, 1023, 4)
    (1, 2, 1)
    """
    fpp = PAGE_SIZE // guest_width
    return end_pfn // fpp + 1 - start_pfn // fpp


@packed(name="X86_PV_VCPU_HEADER")
class PvVcpuHeader(Packed):
    """§1.6 header of X86_PV_VCPU_{BASIC,EXTENDED,XSAVE,MSRS}; the context blob follows."""

    vcpu_id: int = fld(Int32ul)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="X86_TSC_INFO")
class X86TscInfo(Packed):
    """§1.6 X86_TSC_INFO (24 bytes, ``<IIQII``)."""

    mode: int = fld(
        Int32ul,
        values={0: "DEFAULT", 1: "ALWAYS_EMULATE", 2: "NEVER_EMULATE", 3: "PVRDTSCP"},
        doc="TSC mode 0-3",
    )
    khz: int = fld(Int32ul)
    nsec: int = fld(Int64ul, doc="elapsed ns")
    incarnation: int = fld(Int32ul)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="HVM_PARAMS_HEADER")
class HvmParamsHeader(Packed):
    """§1.6 HVM_PARAMS header; ``count`` 16-byte entries follow."""

    count: int = fld(Int32ul)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="HVM_PARAM")
class HvmParamEntry(Packed):
    """§1.6 HVM_PARAMS entry."""

    index: int = fld(Int64ul, doc="HVM_PARAM_* number")
    value: int = fld(Int64ul)


@packed(name="XEN_CPUID_LEAF")
class CpuidLeaf(Packed):
    """§1.6 X86_CPUID_POLICY entry ``xen_cpuid_leaf_t`` (24 bytes)."""

    leaf: int = fld(Int32ul)
    subleaf: int = fld(Int32ul, doc="0xFFFFFFFF: no subleaf")
    a: int = fld(Int32ul)
    b: int = fld(Int32ul)
    c: int = fld(Int32ul)
    d: int = fld(Int32ul)


@packed(name="XEN_MSR_ENTRY")
class MsrEntry(Packed):
    """§1.6 X86_MSR_POLICY entry ``xen_msr_entry_t`` (16 bytes; flags must be zero)."""

    idx: int = fld(Int32ul)
    flags: int = fld(Int32ul, values={0: "none"}, doc="MBZ")
    val: int = fld(Int64ul)


# --- values ------------------------------------------------------------------


@dataclass(frozen=True)
class End:
    """END (0x00): the last record of a stream. Empty."""


@dataclass(frozen=True)
class Verify:
    """VERIFY (0x0D): the records after it repeat the memory, for debugging. Empty."""


@dataclass(frozen=True)
class Checkpoint:
    """CHECKPOINT (0x0E): a consistent state; hands control back to libxl. Empty."""


@dataclass(frozen=True)
class StaticDataEnd:
    """STATIC_DATA_END (0x10, v3): the end of the static data. Empty."""


@dataclass(frozen=True, eq=False)
class PageData(Value):
    """PAGE_DATA (0x01): pfn entries (raw, type bits included) and their page data.

    ``pfns`` is a read-only ``'<u8'`` array; ``pages`` is one ``memoryview``
    over the data of every page that carries data, in pfn order
    (4096 bytes each), sharing memory with the decoded input.

    >>> import numpy as np
    >>> pd = PageData(np.array([0x5, 0xF << 60 | 0x6], dtype="<u8"), memoryview(bytes(4096)))
    >>> pd.types.tolist(), pd.pfn_numbers.tolist(), pd.page_count
    ([0, 15], [5, 6], 1)
    """

    pfns: np.ndarray
    pages: memoryview

    @property
    def types(self) -> np.ndarray:
        """The XEN_DOMCTL_PFINFO type of each entry (bits 63–60), as uint8."""
        import numpy as np

        return (self.pfns >> np.uint64(60)).astype(np.uint8)

    @property
    def pfn_numbers(self) -> np.ndarray:
        """The pfn of each entry (bits 51–0)."""
        import numpy as np

        return self.pfns & np.uint64(PAGE_DATA_PFN_MASK)

    @property
    def page_count(self) -> int:
        """Number of data pages in :attr:`pages`."""
        return len(self.pages) // PAGE_SIZE

    def page(self, i: int) -> memoryview:
        """The ``i``-th data page (zero-copy slice of :attr:`pages`)."""
        return self.pages[i * PAGE_SIZE : (i + 1) * PAGE_SIZE]


@dataclass(frozen=True, eq=False)
class PvP2mFrames(Value):
    """X86_PV_P2M_FRAMES (0x03): the frames holding the guest's p2m for pfns start..end."""

    p2m_start_pfn: int
    p2m_end_pfn: int
    frames: np.ndarray


@dataclass(frozen=True)
class PvVcpu:
    """X86_PV_VCPU_{BASIC,EXTENDED,XSAVE,MSRS} (0x04–0x06, 0x0C): one vCPU's context blob.

    An empty ``context`` (header-only record) is accepted for all four types:
    the libxc pandoc's Errata 1 asks the receiver to "tolerate and ignore
    variable sized records with zero content", and Xen's C restorer
    (``handle_x86_pv_vcpu_blob()``) skips an empty blob of any of the four
    before its size rules (docs/xen-readers.md).
    """

    vcpu_id: int
    context: bytes


@dataclass(frozen=True)
class SharedInfo:
    """SHARED_INFO (0x07): the raw 4096-byte shared_info page."""

    page: bytes


@dataclass(frozen=True, eq=False)
class HvmParams(Value):
    """HVM_PARAMS (0x0A): ``entries`` has the :class:`HvmParamEntry` dtype (index, value)."""

    entries: np.ndarray


@dataclass(frozen=True, eq=False)
class DirtyPfnList(Value):
    """CHECKPOINT_DIRTY_PFN_LIST (0x0F): u64 pfns (COLO back channel)."""

    pfns: np.ndarray


@dataclass(frozen=True, eq=False)
class CpuidPolicy(Value):
    """X86_CPUID_POLICY (0x11): ``leaves`` has the :class:`CpuidLeaf` dtype."""

    leaves: np.ndarray


@dataclass(frozen=True, eq=False)
class MsrPolicy(Value):
    """X86_MSR_POLICY (0x12): ``entries`` has the :class:`MsrEntry` dtype (idx, flags, val)."""

    entries: np.ndarray


# --- helpers of the body codecs ---------------------------------------------------


def u64_view(body: memoryview, offset: int, count: int) -> np.ndarray:
    """A read-only ``'<u8'`` view of ``count`` entries of ``body`` at ``offset``."""
    import numpy as np

    arr = np.frombuffer(body, dtype=U64, count=count, offset=offset)
    if arr.flags.writeable:
        arr.flags.writeable = False
    return arr


def expect_value(value: Any, cls: type | tuple[type, ...], name: str) -> None:
    """Raise EncodeError unless ``value`` is a ``cls``."""
    if not isinstance(value, cls):
        want = cls.__name__ if isinstance(cls, type) else " or ".join(c.__name__ for c in cls)
        raise EncodeError(f"{name}: expected {want}, got {type(value).__name__}")


def u64_bytes(arr: Any, name: str) -> memoryview:
    """The bytes of ``arr`` as a 1-D little-endian u64 array (EncodeError otherwise)."""
    import numpy as np

    try:
        a = np.ascontiguousarray(arr, dtype=U64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(f"{name}: not an array of u64: {exc}") from None
    if a.ndim != 1:
        raise EncodeError(f"{name}: expected a 1-D array, got shape {a.shape}")
    return a.data.cast("B")
