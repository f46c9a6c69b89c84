"""libxc migration-stream records 0x00–0x12: body codecs and the one record list.

Reference: ``xen-formats.md`` §1.5 (type table), §1.6 (body layouts) and
§3.2 (what Xen's verifier checks). Every fixed layout is declared once as a
:func:`~xenlu.core.layout.packed` class in :mod:`xenlu.migration.libxc_records` (with the
type codes and the value classes; every name stays importable from here),
PAGE_DATA's codec is :mod:`xenlu.migration.libxc_page_data`; bulk entries (PAGE_DATA pfns,
X86_PV_P2M_FRAMES, HVM_PARAMS, CPUID leaves, MSR entries, dirty pfns) are
zero-copy read-only numpy views of the input, and PAGE_DATA page contents
are one ``memoryview`` over the whole page block, never copied per page.

Every record type is listed in :data:`RECORDS`, which
:data:`~xenlu.core.registry.LIBXC` loads on first use.
A body decoder takes the body ``memoryview`` and a :class:`~xenlu.core.registry.Ctx`
and returns the value, or raises a located :class:`~xenlu.core.errors.RecordError`;
an encoder returns the body as a list of buffers (no header, no padding).

Decode and encode one record body::

    >>> from xenlu.core.registry import LIBXC, Ctx
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
from typing import TYPE_CHECKING, Any, NoReturn

from xenlu.core.errors import EncodeError, RecordError
from xenlu.core.layout import Layout, Packed, Violation
from xenlu.core.registry import Ctx, RecordSpec, fixed_record
from xenlu.migration.hvmctx import (
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
from xenlu.migration.libxc_page_data import (
    accept_page_data,
    count_data_pages,
    decode_page_data,
    encode_page_data,
)
from xenlu.migration.libxc_records import (
    DATA_PAGE_TYPES,
    PAGE_DATA_PFN_MASK,
    PAGE_DATA_RSVD_MASK,
    PAGE_DATA_TYPE_MASK,
    PAGE_SIZE,
    PFINFO,
    PFN_TYPES,
    PV_VCPU_TYPES,
    U64,
    Checkpoint,
    CpuidLeaf,
    CpuidPolicy,
    DirtyPfnList,
    End,
    HvmParamEntry,
    HvmParams,
    HvmParamsHeader,
    MsrEntry,
    MsrPolicy,
    PageData,
    PageDataHeader,
    PvP2mFrames,
    PvP2mFramesHeader,
    PvVcpu,
    PvVcpuHeader,
    RecType,
    SharedInfo,
    StaticDataEnd,
    Verify,
    X86PvInfo,
    X86TscInfo,
    expect_value,
    p2m_frame_count,
    u64_bytes,
    u64_view,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "BODY_ACCEPT",
    "BODY_CHECKS",
    "DATA_PAGE_TYPES",
    "GUEST_WIDTH",
    "PAGE_DATA_PFN_MASK",
    "PAGE_DATA_RSVD_MASK",
    "PAGE_DATA_TYPE_MASK",
    "PAGE_SIZE",
    "PFINFO",
    "PFN_TYPES",
    "PV_VCPU_TYPES",
    "RECORDS",
    "U64",
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

_END, _VERIFY, _CHECKPOINT, _SDE = End(), Verify(), Checkpoint(), StaticDataEnd()


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


def _check_encode(lay: Layout, value: Any) -> None:
    v = lay.check(value)
    if v is not None:
        raise EncodeError(
            f"{lay.name}: field {v.field}: {v.message}: expected {v.expected}, got {v.got!r}"
        )


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
        expect_value(value, cls, cls.__name__)
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
    return PvP2mFrames(start, end, u64_view(body, 8, (n - 8) // 8))


_PV_INFO = _fixed(X86PvInfo)


def _decode_pv_info(body: memoryview, ctx: Ctx) -> X86PvInfo:
    value: X86PvInfo = _PV_INFO[0](body, ctx)
    ctx.extra[GUEST_WIDTH] = value.guest_width
    return value


def _check_pv_info(body: memoryview, ctx: Ctx) -> None:
    _PV_INFO[2](body, ctx)
    ctx.extra[GUEST_WIDTH] = body[0]  # guest_width, checked to be 4 or 8


def _encode_p2m_frames(value: Any) -> Sequence[Any]:
    expect_value(value, PvP2mFrames, "X86_PV_P2M_FRAMES")
    try:
        hdr = _P2MH.struct.pack(value.p2m_start_pfn, value.p2m_end_pfn)
    except Exception as exc:  # struct.error, TypeError
        raise EncodeError(f"X86_PV_P2M_FRAMES: header does not fit: {exc}") from None
    return (hdr, u64_bytes(value.frames, "X86_PV_P2M_FRAMES frames"))


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
    expect_value(value, PvVcpu, "X86_PV_VCPU")
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
    expect_value(value, SharedInfo, "SHARED_INFO")
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
    expect_value(value, HvmParams, "HVM_PARAMS")
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
    return DirtyPfnList(u64_view(body, 0, n // 8))


def _encode_dirty_pfns(value: Any) -> Sequence[Any]:
    expect_value(value, DirtyPfnList, "CHECKPOINT_DIRTY_PFN_LIST")
    return (u64_bytes(value.pfns, "CHECKPOINT_DIRTY_PFN_LIST pfns"),)


def _check_cpuid(body: memoryview, ctx: Ctx) -> None:
    n = len(body)
    if n == 0 or n % _CPUID.size:
        ctx.fail_length("a non-zero multiple of 24")  # §1.6/§3.2


def _decode_cpuid(body: memoryview, ctx: Ctx) -> CpuidPolicy:
    _check_cpuid(body, ctx)
    n = len(body)
    return CpuidPolicy(_CPUID.array(body, 0, n // _CPUID.size))


def _encode_cpuid(value: Any) -> Sequence[Any]:
    expect_value(value, CpuidPolicy, "X86_CPUID_POLICY")
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
    expect_value(value, MsrPolicy, "X86_MSR_POLICY")
    raw = _entries_bytes(value.entries, _MSR, "X86_MSR_POLICY")
    if not raw.nbytes:
        raise EncodeError("X86_MSR_POLICY: at least one entry is required")
    if value.entries["flags"].any():
        raise EncodeError("X86_MSR_POLICY: flags must be zero")
    return (raw,)


# --- registration ------------------------------------------------------------


def _spec(
    code: RecType,
    codec: tuple[Decoder, Encoder],
    value_type: type | None,
    layouts: tuple[type[Packed], ...] = (),
    *,
    bulk: bool = False,
    doc: str = "",
) -> RecordSpec:
    """The RecordSpec of libxc record ``code`` (named as in :class:`RecType`)."""
    decode, encode = codec
    return RecordSpec(
        "libxc", code, code.name, decode, encode, value_type, bulk=bulk, doc=doc, layouts=layouts
    )


def _records() -> tuple[RecordSpec, ...]:
    """Every libxc record type, in type order (registered by :mod:`xenlu.core.registry`)."""
    R = RecType
    tsc_decode, tsc_encode, tsc_check = _fixed(X86TscInfo)
    BODY_CHECKS[R.X86_TSC_INFO] = tsc_check
    vcpu = (_decode_vcpu, _encode_vcpu)
    hvm_layouts = (HvmSaveHeader, HvmRtc411, HvmRtc414, ViridianVcpu411, ViridianVcpu413)
    specs = [
        _spec(R.END, (_empty(_END), _encode_empty(End)), End, doc="end of stream"),
        _spec(
            R.PAGE_DATA,
            (decode_page_data, encode_page_data),
            PageData,
            (PageDataHeader,),
            bulk=True,
            doc="pfn entries and page contents",
        ),
        _spec(R.X86_PV_INFO, (_decode_pv_info, _PV_INFO[1]), X86PvInfo, (X86PvInfo,)),
        _spec(
            R.X86_PV_P2M_FRAMES,
            (_decode_p2m_frames, _encode_p2m_frames),
            PvP2mFrames,
            (PvP2mFramesHeader,),
            bulk=True,
        ),
        *(_spec(code, vcpu, PvVcpu, (PvVcpuHeader,)) for code in sorted(PV_VCPU_TYPES)),
        _spec(R.SHARED_INFO, (_decode_shared_info, _encode_shared_info), SharedInfo),
        _spec(R.X86_TSC_INFO, (tsc_decode, tsc_encode), X86TscInfo, (X86TscInfo,)),
        _spec(R.HVM_CONTEXT, (_decode_hvm_context, encode_hvm_context), HvmContext, hvm_layouts),
        _spec(
            R.HVM_PARAMS,
            (_decode_hvm_params, _encode_hvm_params),
            HvmParams,
            (HvmParamsHeader, HvmParamEntry),
            bulk=True,
        ),
        _spec(R.TOOLSTACK, (_decode_toolstack, _encode_toolstack), None, doc="deprecated"),
        _spec(R.VERIFY, (_empty(_VERIFY), _encode_empty(Verify)), Verify),
        _spec(R.CHECKPOINT, (_empty(_CHECKPOINT), _encode_empty(Checkpoint)), Checkpoint),
        _spec(
            R.CHECKPOINT_DIRTY_PFN_LIST,
            (_decode_dirty_pfns, _encode_dirty_pfns),
            DirtyPfnList,
            bulk=True,
        ),
        _spec(R.STATIC_DATA_END, (_empty(_SDE), _encode_empty(StaticDataEnd)), StaticDataEnd),
        _spec(
            R.X86_CPUID_POLICY, (_decode_cpuid, _encode_cpuid), CpuidPolicy, (CpuidLeaf,), bulk=True
        ),
        _spec(R.X86_MSR_POLICY, (_decode_msr, _encode_msr), MsrPolicy, (MsrEntry,), bulk=True),
    ]
    return tuple(sorted(specs, key=lambda s: s.type))


#: The libxc records (§1.5): the one explicit list :data:`~xenlu.core.registry.LIBXC` loads.
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


def _accept_fixed(cls: type[Packed]) -> Acceptor:
    return cls.LAYOUT.acceptor(None)


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
        RecType.PAGE_DATA: accept_page_data,
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
