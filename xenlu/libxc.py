"""libxc migration-stream records 0x00–0x12: layouts, values and body codecs.

Reference: ``xen-formats.md`` §1.5 (type table), §1.6 (body layouts) and
§3.2 (what Xen's verifier checks). Every fixed layout is declared once as a
:func:`~xenlu.layout.packed` class; bulk entries (PAGE_DATA pfns,
X86_PV_P2M_FRAMES, HVM_PARAMS, CPUID leaves, MSR entries, dirty pfns) are
zero-copy read-only numpy views of the input, and PAGE_DATA page contents
are one ``memoryview`` over the whole page block, never copied per page.

Every record type is listed in :data:`RECORDS`, which
:data:`~xenlu.registry.LIBXC` loads on first use.
A body decoder takes the body ``memoryview`` and a :class:`~xenlu.registry.Ctx`
and returns the value, or raises a located :class:`~xenlu.errors.RecordError`;
an encoder returns the body as a list of buffers (no header, no padding).

Decode and encode one record body::

    >>> from xenlu.registry import LIBXC, Ctx
    >>> spec = LIBXC.by_name("X86_PV_INFO")
    >>> info = spec.decode(memoryview(bytes([8, 4, 0, 0, 0, 0, 0, 0])), Ctx(0, 2, 48, 8))
    >>> (info.guest_width, info.pt_levels)
    (8, 4)
    >>> b"".join(bytes(p) for p in spec.encode(info))
    b'\\x08\\x04\\x00\\x00\\x00\\x00\\x00\\x00'
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from construct import Bytes, Int8ul, Int32ul, Int64ul

from xenlu.errors import EncodeError, RecordError
from xenlu.hvmctx import (
    HvmContext,
    HvmEntry,
    HvmRtc411,
    HvmRtc414,
    HvmSaveHeader,
    ViridianVcpu411,
    ViridianVcpu413,
    check_hvm_context,
    decode_hvm_context,
    encode_hvm_context,
)
from xenlu.layout import Layout, Packed, Rsvd, Violation, fld, packed, reserved
from xenlu.registry import Ctx, RecordSpec, fixed_record
from xenlu.rules import Pick, Rule
from xenlu.values import Value

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BODY_CHECKS",
    "DATA_PAGE_TYPES",
    "PAGE_DATA_PFN_MASK",
    "PAGE_DATA_RSVD_MASK",
    "PAGE_DATA_TYPE_MASK",
    "PAGE_SIZE",
    "PFINFO",
    "PV_VCPU_TYPES",
    "Checkpoint",
    "CpuidLeaf",
    "CpuidPolicy",
    "DirtyPfnList",
    "End",
    "HvmContext",
    "HvmEntry",
    "HvmParamEntry",
    "HvmParams",
    "HvmParamsHeader",
    "MsrEntry",
    "MsrPolicy",
    "PageData",
    "PageDataHeader",
    "PvP2mFrames",
    "PvP2mFramesHeader",
    "PvVcpu",
    "PvVcpuHeader",
    "RecType",
    "SharedInfo",
    "StaticDataEnd",
    "Verify",
    "X86PvInfo",
    "X86TscInfo",
    "count_data_pages",
    "p2m_frame_count",
]

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
_TYPE_OK = bytes(t in PFN_TYPES for t in range(16))
_TYPE_DATA = bytes(t in DATA_PAGE_TYPES for t in range(16))

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


_END, _VERIFY, _CHECKPOINT, _SDE = End(), Verify(), Checkpoint(), StaticDataEnd()


def _lut(table: bytes) -> np.ndarray:
    import numpy as np

    return np.frombuffer(table, dtype=np.bool_)


def _pfn_types(pfns: np.ndarray) -> np.ndarray:
    import numpy as np

    return (np.asarray(pfns, dtype=U64) >> np.uint64(60)).astype(np.intp)


def _bad_pfns(pfns: np.ndarray, types: np.ndarray) -> np.ndarray:
    """True for each pfn entry with reserved bits 52-59 set or an invalid type."""
    import numpy as np

    bad: np.ndarray = ((pfns & np.uint64(PAGE_DATA_RSVD_MASK)) != 0) | ~_lut(_TYPE_OK)[types]
    return bad


def count_data_pages(pfns: np.ndarray) -> int:
    """How many pfn entries carry a page of data (types 0–4 and 9–12, §1.6)."""
    import numpy as np

    return int(np.count_nonzero(_lut(_TYPE_DATA)[_pfn_types(pfns)]))


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


# --- body codecs ----------------------------------------------------------------

_PDH = PageDataHeader.LAYOUT
_PDH_CHECK = _PDH.checker(None)
_P2MH = PvP2mFramesHeader.LAYOUT
_P2MH_CHECK = _P2MH.checker(None)
_P2MH_UNPACK = _P2MH.struct.unpack_from
_VCPUH = PvVcpuHeader.LAYOUT
_VCPUH_CHECK = _VCPUH.checker(None)
_VCPU_UNPACK = _VCPUH.struct.unpack_from
_HPH = HvmParamsHeader.LAYOUT
_HPH_CHECK = _HPH.checker(None)
_HPH_UNPACK = _HPH.struct.unpack_from
_HPE = HvmParamEntry.LAYOUT
_CPUID = CpuidLeaf.LAYOUT
_MSR = MsrEntry.LAYOUT


def _u64_view(body: memoryview, offset: int, count: int) -> np.ndarray:
    import numpy as np

    arr = np.frombuffer(body, dtype=U64, count=count, offset=offset)
    if arr.flags.writeable:
        arr.flags.writeable = False
    return arr


def _expect(value: Any, cls: type | tuple[type, ...], name: str) -> None:
    if not isinstance(value, cls):
        want = cls.__name__ if isinstance(cls, type) else " or ".join(c.__name__ for c in cls)
        raise EncodeError(f"{name}: expected {want}, got {type(value).__name__}")


def _check_encode(lay: Layout, value: Any) -> None:
    v = lay.check(value)
    if v is not None:
        raise EncodeError(
            f"{lay.name}: field {v.field}: {v.message}: expected {v.expected}, got {v.got!r}"
        )


def _u64_bytes(arr: Any, name: str) -> memoryview:
    import numpy as np

    try:
        a = np.ascontiguousarray(arr, dtype=U64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(f"{name}: not an array of u64: {exc}") from None
    if a.ndim != 1:
        raise EncodeError(f"{name}: expected a 1-D array, got shape {a.shape}")
    return a.data.cast("B")


def _entries_bytes(arr: Any, lay: Layout, name: str) -> memoryview:
    import numpy as np

    if not isinstance(arr, np.ndarray) or arr.dtype.names != lay.dtype.names:
        raise EncodeError(f"{name}: expected a structured array with fields {lay.names}")
    try:
        return lay.pack_array(arr)
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"{name}: entries do not fit {lay.name}: {exc}") from None


def _empty(value: object) -> Callable[[memoryview, Ctx], Any]:
    def decode(body: memoryview, ctx: Ctx) -> Any:
        if len(body):
            ctx.fail_length(0)  # §3.2: END, VERIFY, CHECKPOINT, STATIC_DATA_END length 0
        return value

    return decode


def _encode_empty(cls: type) -> Callable[[Any], Sequence[Any]]:
    def encode(value: Any) -> Sequence[Any]:
        _expect(value, cls, cls.__name__)
        return ()

    return encode


Decoder = Callable[[memoryview, Ctx], Any]
Checker = Callable[[memoryview, Ctx], object]
Encoder = Callable[[Any], Sequence[Any]]

#: Record type -> a check-only body function (raises like the decoder, builds
#: nothing), used by the structural fast path ``verify_libxc``. Types not
#: listed are checked by their decoder (zero-copy views, or they raise).
BODY_CHECKS: dict[int, Checker] = {}


def _violated(ctx: Ctx, check: Callable[[tuple[Any, ...]], Violation | None], t: Any) -> NoReturn:
    """Raise the layout violation the fast path saw in raw tuple ``t``."""
    v = check(t)
    assert v is not None
    ctx.fail_violation(v)


def _check_empty(body: memoryview, ctx: Ctx) -> None:
    if len(body):
        ctx.fail_length(0)


def _fixed(cls: type[Packed]) -> tuple[Decoder, Encoder, Checker]:
    """Decoder, encoder and checker of a body that is exactly one packed layout."""
    spec = fixed_record("libxc", 0, cls.LAYOUT.name, cls, check_encode=True)
    assert spec.check is not None
    return spec.decode, spec.encode, spec.check


def _decode_page_data(body: memoryview, ctx: Ctx) -> PageData:
    import numpy as np

    n = len(body)
    if n < 8:
        ctx.fail_length("> 8 (header and at least one pfn)")
    t = _PDH.unpack_tuple(body)
    v = _PDH_CHECK(t)
    if v is not None:
        ctx.fail_violation(v)  # count > 0, rsvd == 0
    count = t[0]
    pages_at = 8 + 8 * count
    if n < pages_at:
        ctx.fail_length(f">= {pages_at} (8 + 8 x {count} pfns)")
    pfns = _u64_view(body, 8, count)
    types = _pfn_types(pfns)
    # §1.6: bits 59-52 reserved; types 5-8 invalid (verifier and restorer).
    bad = _bad_pfns(pfns, types)
    if bad.any():
        i = int(np.argmax(bad))
        raw = int(pfns[i])
        if raw & PAGE_DATA_RSVD_MASK:
            ctx.fail(
                "pfn reserved bits 52-59 set",
                at=8 + 8 * i,
                field=f"pfn[{i}]",
                expected="bits 52-59 zero",
                got=raw,
            )
        ctx.fail(
            "pfn type not valid",
            at=8 + 8 * i,
            field=f"pfn[{i}]",
            expected="type 0-4 or 9-15",
            got=raw >> 60,
        )
    # §1.6/§3.2: exact length = 8 + 8C + 4096 x (entries whose type carries data).
    ndata = int(np.count_nonzero(_lut(_TYPE_DATA)[types]))
    want = pages_at + PAGE_SIZE * ndata
    if n != want:
        ctx.fail_length(want, f"PAGE_DATA length wrong for {count} pfns with {ndata} data pages")
    return PageData(pfns, body[pages_at:])


def _encode_page_data(value: Any) -> Sequence[Any]:
    import numpy as np

    _expect(value, PageData, "PAGE_DATA")
    raw = _u64_bytes(value.pfns, "PAGE_DATA pfns")
    pfns = np.frombuffer(raw, dtype=U64)
    count = len(pfns)
    if count == 0:
        raise EncodeError("PAGE_DATA: at least one pfn entry is required")
    types = _pfn_types(pfns)
    if _bad_pfns(pfns, types).any():
        raise EncodeError("PAGE_DATA: a pfn has reserved bits 52-59 set or a type 5-8")
    pages = memoryview(value.pages).cast("B")
    want = PAGE_SIZE * int(np.count_nonzero(_lut(_TYPE_DATA)[types]))
    if pages.nbytes != want:
        raise EncodeError(f"PAGE_DATA: pages hold {pages.nbytes} bytes, the pfns need {want}")
    return (_PDH.struct.pack(count, 0), raw, pages)


#: ``Ctx.extra`` key: the guest width (4 or 8) of the stream's X86_PV_INFO,
#: recorded by its body check so that X86_PV_P2M_FRAMES can count frames.
GUEST_WIDTH = "libxc.guest_width"


def _check_p2m_frames(body: memoryview, ctx: Ctx) -> None:
    # In the C restorer's order (handle_x86_pv_p2m_frames()): the 8-byte
    # header, start <= end (the declared rule), then the exact length for
    # the guest width of the stream's X86_PV_INFO.
    n = len(body)
    if n < 8:
        ctx.fail_length(">= 8 (start and end pfn)")  # "record truncated"
    t = _P2MH_UNPACK(body)
    v = _P2MH_CHECK(t)
    if v is not None:
        ctx.fail_violation(v)  # "End pfn in stream exceeds Start"
    width = ctx.extra.get(GUEST_WIDTH)
    if width is None:
        # A body checked on its own (no X86_PV_INFO before it): frames are u64.
        if n % 8:
            ctx.fail_length("a multiple of 8")  # §3.2
        return
    count = p2m_frame_count(t[0], t[1], width)
    want = 8 + 8 * count
    if n != want:
        # "X86_PV_P2M_FRAMES record wrong size"
        ctx.fail_length(
            f"8 + 8 x {count} = {want} (pfns {t[0]:#x}-{t[1]:#x}, {PAGE_SIZE // width} per frame)",
            "X86_PV_P2M_FRAMES length does not match its pfn range",
        )


def _decode_p2m_frames(body: memoryview, ctx: Ctx) -> PvP2mFrames:
    _check_p2m_frames(body, ctx)
    n = len(body)
    start, end = _P2MH_UNPACK(body)
    return PvP2mFrames(start, end, _u64_view(body, 8, (n - 8) // 8))


_PV_INFO = _fixed(X86PvInfo)


def _decode_pv_info(body: memoryview, ctx: Ctx) -> X86PvInfo:
    value: X86PvInfo = _PV_INFO[0](body, ctx)
    ctx.extra[GUEST_WIDTH] = value.guest_width
    return value


def _check_pv_info(body: memoryview, ctx: Ctx) -> None:
    _PV_INFO[2](body, ctx)
    ctx.extra[GUEST_WIDTH] = body[0]  # guest_width, checked to be 4 or 8


def _encode_p2m_frames(value: Any) -> Sequence[Any]:
    _expect(value, PvP2mFrames, "X86_PV_P2M_FRAMES")
    try:
        hdr = _P2MH.struct.pack(value.p2m_start_pfn, value.p2m_end_pfn)
    except Exception as exc:  # struct.error, TypeError
        raise EncodeError(f"X86_PV_P2M_FRAMES: header does not fit: {exc}") from None
    return (hdr, _u64_bytes(value.frames, "X86_PV_P2M_FRAMES frames"))


def _check_vcpu(body: memoryview, ctx: Ctx) -> int:
    """Check the vCPU header (§1.6, §3.2); return vcpu_id."""
    n = len(body)
    if n < 8:
        ctx.fail_length(">= 8 (vcpu header)")
    # A header-only record (zero content) is tolerated for all four types:
    # Errata 1 of the libxc pandoc, and handle_x86_pv_vcpu_blob() skips an
    # empty blob before any per-type size rule.
    t = _VCPU_UNPACK(body)
    if t[1]:
        _violated(ctx, _VCPUH_CHECK, t)  # rsvd
    vcpu_id: int = t[0]
    return vcpu_id


def _decode_vcpu(body: memoryview, ctx: Ctx) -> PvVcpu:
    return PvVcpu(_check_vcpu(body, ctx), bytes(body[8:]))


def _encode_vcpu(value: Any) -> Sequence[Any]:
    _expect(value, PvVcpu, "X86_PV_VCPU")
    try:
        hdr = _VCPUH.struct.pack(value.vcpu_id, 0)
    except Exception as exc:
        raise EncodeError(f"X86_PV_VCPU: vcpu_id does not fit u32: {exc}") from None
    return (hdr, value.context) if value.context else (hdr,)


def _check_shared_info(body: memoryview, ctx: Ctx) -> None:
    if len(body) != PAGE_SIZE:
        ctx.fail_length(PAGE_SIZE)  # §1.6: exactly one page


def _decode_shared_info(body: memoryview, ctx: Ctx) -> SharedInfo:
    _check_shared_info(body, ctx)
    return SharedInfo(bytes(body))


def _encode_shared_info(value: Any) -> Sequence[Any]:
    _expect(value, SharedInfo, "SHARED_INFO")
    if len(value.page) != PAGE_SIZE:
        raise EncodeError(f"SHARED_INFO: page is {len(value.page)} bytes, not {PAGE_SIZE}")
    return (value.page,)


def _decode_hvm_context(body: memoryview, ctx: Ctx) -> HvmContext:
    return decode_hvm_context(body, ctx)


def _check_hvm_context(body: memoryview, ctx: Ctx) -> None:
    check_hvm_context(body, ctx)


def _check_hvm_params(body: memoryview, ctx: Ctx) -> int:
    n = len(body)
    if n < 8:
        ctx.fail_length(">= 8 (count header)")
    t = _HPH_UNPACK(body)
    if t[1]:
        _violated(ctx, _HPH_CHECK, t)  # rsvd
    count: int = t[0]
    want = 8 + 16 * count
    if n != want:
        ctx.fail_length(f"8 + 16 x {count} = {want}")  # §3.2: exact 8 + 16 x count
    # count == 0 is tolerated (§1.5 errata).
    return count


def _decode_hvm_params(body: memoryview, ctx: Ctx) -> HvmParams:
    return HvmParams(_HPE.array(body, 8, _check_hvm_params(body, ctx)))


def _encode_hvm_params(value: Any) -> Sequence[Any]:
    _expect(value, HvmParams, "HVM_PARAMS")
    raw = _entries_bytes(value.entries, _HPE, "HVM_PARAMS")
    return (_HPH.struct.pack(raw.nbytes // _HPE.size, 0), raw)


def _decode_toolstack(body: memoryview, ctx: Ctx) -> Any:
    # §1.6/§3.2: deprecated, never to be used; the verifier always rejects it.
    raise RecordError(
        "TOOLSTACK record is deprecated and must not be used",
        offset=ctx.header,
        record_index=ctx.index,
        record_type=ctx.type,
        field="type",
    )


def _encode_toolstack(value: Any) -> Sequence[Any]:
    raise EncodeError("TOOLSTACK records are deprecated and are never written")


def _check_dirty_pfns(body: memoryview, ctx: Ctx) -> None:
    if len(body) % 8:
        ctx.fail_length("a multiple of 8")  # §1.6: u64 pfn[length / 8]


def _decode_dirty_pfns(body: memoryview, ctx: Ctx) -> DirtyPfnList:
    _check_dirty_pfns(body, ctx)
    n = len(body)
    return DirtyPfnList(_u64_view(body, 0, n // 8))


def _encode_dirty_pfns(value: Any) -> Sequence[Any]:
    _expect(value, DirtyPfnList, "CHECKPOINT_DIRTY_PFN_LIST")
    return (_u64_bytes(value.pfns, "CHECKPOINT_DIRTY_PFN_LIST pfns"),)


def _check_cpuid(body: memoryview, ctx: Ctx) -> None:
    n = len(body)
    if n == 0 or n % _CPUID.size:
        ctx.fail_length("a non-zero multiple of 24")  # §1.6/§3.2


def _decode_cpuid(body: memoryview, ctx: Ctx) -> CpuidPolicy:
    _check_cpuid(body, ctx)
    n = len(body)
    return CpuidPolicy(_CPUID.array(body, 0, n // _CPUID.size))


def _encode_cpuid(value: Any) -> Sequence[Any]:
    _expect(value, CpuidPolicy, "X86_CPUID_POLICY")
    raw = _entries_bytes(value.leaves, _CPUID, "X86_CPUID_POLICY")
    if not raw.nbytes:
        raise EncodeError("X86_CPUID_POLICY: at least one leaf is required")
    return (raw,)


def _decode_msr(body: memoryview, ctx: Ctx) -> MsrPolicy:
    n = len(body)
    if n == 0 or n % _MSR.size:
        ctx.fail_length("a non-zero multiple of 16")  # §1.6/§3.2
    arr = _MSR.array(body, 0, n // _MSR.size)
    v = _MSR.check_array(arr)  # §1.6: flags MBZ (declared values={0})
    if v is not None:
        ctx.fail_violation(v, prefix="entries", entry_size=_MSR.size)
    return MsrPolicy(arr)


def _check_msr(body: memoryview, ctx: Ctx) -> None:
    # The structural path: flags (the second u32 of each 16-byte entry) all
    # zero, read with a strided view; anything else is located by the decoder.
    n = len(body)
    if n and not n % _MSR.size and not any(memoryview(body).cast("I")[1::4]):
        return
    _decode_msr(body, ctx)


def _encode_msr(value: Any) -> Sequence[Any]:
    _expect(value, MsrPolicy, "X86_MSR_POLICY")
    raw = _entries_bytes(value.entries, _MSR, "X86_MSR_POLICY")
    if not raw.nbytes:
        raise EncodeError("X86_MSR_POLICY: at least one entry is required")
    if value.entries["flags"].any():
        raise EncodeError("X86_MSR_POLICY: flags must be zero")
    return (raw,)


# --- registration ------------------------------------------------------------


def _records() -> tuple[RecordSpec, ...]:
    """Every libxc record type, in type order (registered by :mod:`xenlu.registry`)."""
    out: list[RecordSpec] = []

    def add(
        type_code: int,
        name: str,
        decode: Callable[[memoryview, Ctx], Any],
        encode: Callable[[Any], Sequence[Any]],
        value_type: type | None,
        layouts: tuple[type[Packed], ...] = (),
        bulk: bool = False,
        doc: str = "",
    ) -> None:
        out.append(
            RecordSpec(
                family="libxc",
                type=type_code,
                name=name,
                decode=decode,
                encode=encode,
                value_type=value_type,
                bulk=bulk,
                doc=doc,
                layouts=layouts,
            )
        )

    R = RecType
    add(R.END, "END", _empty(_END), _encode_empty(End), End, doc="end of stream")
    add(
        R.PAGE_DATA,
        "PAGE_DATA",
        _decode_page_data,
        _encode_page_data,
        PageData,
        (PageDataHeader,),
        bulk=True,
        doc="pfn entries and page contents",
    )
    add(R.X86_PV_INFO, "X86_PV_INFO", _decode_pv_info, _PV_INFO[1], X86PvInfo, (X86PvInfo,))
    add(
        R.X86_PV_P2M_FRAMES,
        "X86_PV_P2M_FRAMES",
        _decode_p2m_frames,
        _encode_p2m_frames,
        PvP2mFrames,
        (PvP2mFramesHeader,),
        bulk=True,
    )
    for code, name in (
        (R.X86_PV_VCPU_BASIC, "X86_PV_VCPU_BASIC"),
        (R.X86_PV_VCPU_EXTENDED, "X86_PV_VCPU_EXTENDED"),
        (R.X86_PV_VCPU_XSAVE, "X86_PV_VCPU_XSAVE"),
    ):
        add(code, name, _decode_vcpu, _encode_vcpu, PvVcpu, (PvVcpuHeader,))
    add(R.SHARED_INFO, "SHARED_INFO", _decode_shared_info, _encode_shared_info, SharedInfo)
    dec, enc, chk = _fixed(X86TscInfo)
    add(R.X86_TSC_INFO, "X86_TSC_INFO", dec, enc, X86TscInfo, (X86TscInfo,))
    BODY_CHECKS[R.X86_TSC_INFO] = chk
    add(
        R.HVM_CONTEXT,
        "HVM_CONTEXT",
        _decode_hvm_context,
        encode_hvm_context,
        HvmContext,
        (HvmSaveHeader, HvmRtc411, HvmRtc414, ViridianVcpu411, ViridianVcpu413),
    )
    add(
        R.HVM_PARAMS,
        "HVM_PARAMS",
        _decode_hvm_params,
        _encode_hvm_params,
        HvmParams,
        (HvmParamsHeader, HvmParamEntry),
        bulk=True,
    )
    add(R.TOOLSTACK, "TOOLSTACK", _decode_toolstack, _encode_toolstack, None, doc="deprecated")
    add(R.X86_PV_VCPU_MSRS, "X86_PV_VCPU_MSRS", _decode_vcpu, _encode_vcpu, PvVcpu, (PvVcpuHeader,))
    add(R.VERIFY, "VERIFY", _empty(_VERIFY), _encode_empty(Verify), Verify)
    add(R.CHECKPOINT, "CHECKPOINT", _empty(_CHECKPOINT), _encode_empty(Checkpoint), Checkpoint)
    add(
        R.CHECKPOINT_DIRTY_PFN_LIST,
        "CHECKPOINT_DIRTY_PFN_LIST",
        _decode_dirty_pfns,
        _encode_dirty_pfns,
        DirtyPfnList,
        bulk=True,
    )
    add(
        R.STATIC_DATA_END,
        "STATIC_DATA_END",
        _empty(_SDE),
        _encode_empty(StaticDataEnd),
        StaticDataEnd,
    )
    add(
        R.X86_CPUID_POLICY,
        "X86_CPUID_POLICY",
        _decode_cpuid,
        _encode_cpuid,
        CpuidPolicy,
        (CpuidLeaf,),
        bulk=True,
    )
    add(
        R.X86_MSR_POLICY,
        "X86_MSR_POLICY",
        _decode_msr,
        _encode_msr,
        MsrPolicy,
        (MsrEntry,),
        bulk=True,
    )
    return tuple(out)


#: The libxc records (§1.5): the one explicit list :data:`~xenlu.registry.LIBXC` loads.
RECORDS = _records()
BODY_CHECKS.update(
    {
        RecType.END: _check_empty,
        RecType.VERIFY: _check_empty,
        RecType.CHECKPOINT: _check_empty,
        RecType.STATIC_DATA_END: _check_empty,
        RecType.X86_PV_INFO: _check_pv_info,
        RecType.X86_PV_P2M_FRAMES: _check_p2m_frames,
        **dict.fromkeys(PV_VCPU_TYPES, _check_vcpu),
        RecType.SHARED_INFO: _check_shared_info,
        RecType.HVM_CONTEXT: _check_hvm_context,
        RecType.X86_MSR_POLICY: _check_msr,
        RecType.HVM_PARAMS: _check_hvm_params,
        RecType.CHECKPOINT_DIRTY_PFN_LIST: _check_dirty_pfns,
        RecType.X86_CPUID_POLICY: _check_cpuid,
    }
)


# --- structural fast path: acceptors ---------------------------------------------

#: ``acc(buf, body_offset, length) -> bool``: True when the body certainly
#: passes every check of its record type. It builds nothing and never raises;
#: False means "not sure" and the record's check function (BODY_CHECKS or the
#: decoder) runs and raises the exact error. ``verify_libxc`` calls these per
#: record instead of slicing a memoryview and calling the checker (a small
#: PAGE_DATA costs ~0.3 µs here against ~6 µs in numpy, and no acceptor
#: needs numpy, so ``xenlu verify`` of a valid libxc stream never imports it).
Acceptor = Callable[[Any, int, int], bool]
BODY_ACCEPT: dict[int, Acceptor] = {}

_II = struct.Struct("<II").unpack_from
_IIQ = struct.Struct("<IIQ").unpack_from
_PFNS = {n: struct.Struct(f"<{n}Q").unpack_from for n in range(1, 33)}
_BELOW_16 = bytes(range(16))


def _accept_fixed(cls: type[Packed]) -> Acceptor:
    return cls.LAYOUT.acceptor(None)


def _accept_page_data(buf: Any, off: int, n: int) -> bool:
    # §1.6: count > 0, rsvd 0, no reserved pfn bits, no type 5-8, exact length.
    count: int
    rsvd: int
    raw: int
    ok, data = _TYPE_OK, _TYPE_DATA
    if n == 16:  # one pfn and no page: a type without data (XTAB, XALLOC, BROKEN)
        count, rsvd, raw = _IIQ(buf, off)
        t = raw >> 60
        return count == 1 and not rsvd and not raw & PAGE_DATA_RSVD_MASK and ok[t] > data[t]
    if n < 16:
        return False
    count, rsvd = _II(buf, off)
    if rsvd or not count or n < 8 + 8 * count:
        return False
    ndata = 0
    if count <= 32:
        for raw in _PFNS[count](buf, off + 8):
            t = raw >> 60
            if raw & PAGE_DATA_RSVD_MASK or not ok[t]:
                return False
            ndata += data[t]
    else:
        # The same rules on the pfns' top two bytes, taken with strided
        # slices and judged per distinct value (C loops, no numpy, no
        # object per pfn): byte 7 holds the type and bits 56-59, byte 6
        # bits 48-55, of which 52-55 are reserved.
        pfns = memoryview(buf)[off + 8 : off + 8 + 8 * count]
        if bytes(pfns[6::8]).translate(None, _BELOW_16):
            return False
        top = bytes(pfns[7::8])
        for v in set(top):
            t = v >> 4
            if v & 0x0F or not ok[t]:
                return False
            if data[t]:
                ndata += top.count(v)
    return n == 8 + 8 * count + PAGE_SIZE * ndata


def _accept_hvm_params(buf: Any, off: int, n: int) -> bool:
    if n < 8:
        return False
    count, rsvd = _II(buf, off)
    return not rsvd and n == 8 + 16 * count


def _accept_empty(buf: Any, off: int, n: int) -> bool:
    return n == 0


def _accept_vcpu(buf: Any, off: int, n: int) -> bool:
    # All four may be header-only (Errata 1, handle_x86_pv_vcpu_blob()); rsvd 0
    return n >= 8 and not _II(buf, off)[1]


BODY_ACCEPT.update(
    {
        RecType.PAGE_DATA: _accept_page_data,
        # No acceptor for X86_PV_INFO: its check records the guest width
        # that X86_PV_P2M_FRAMES needs, so it runs for every one.
        RecType.X86_TSC_INFO: _accept_fixed(X86TscInfo),
        RecType.HVM_PARAMS: _accept_hvm_params,
        RecType.VERIFY: _accept_empty,
        RecType.STATIC_DATA_END: _accept_empty,
        RecType.X86_PV_VCPU_BASIC: _accept_vcpu,
        RecType.X86_PV_VCPU_EXTENDED: _accept_vcpu,
        RecType.X86_PV_VCPU_XSAVE: _accept_vcpu,
        RecType.X86_PV_VCPU_MSRS: _accept_vcpu,
        RecType.SHARED_INFO: lambda buf, off, n: n == PAGE_SIZE,
        RecType.X86_CPUID_POLICY: lambda buf, off, n: n > 0 and n % _CPUID.size == 0,
    }
)
