"""libxc records (xenlu.migration.libxc, xenlu.migration.hvmctx) and streams
(xenlu.migration.libxc_stream).

Byte inputs are built with the independent struct-based builders of
``tests/vectors/libxc_vectors.py``; values are built with xenlu's model.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tests.vectors.libxc_vectors as V
from xenlu.core.errors import (
    CallerError,
    DecodeError,
    EncodeError,
    FramingError,
    GrammarError,
    RecordError,
    UnknownRecordError,
)
from xenlu.core.framing import BytesSink, RecordWriter
from xenlu.core.registry import LIBXC, Ctx, Record, UnknownRecord
from xenlu.migration.hvmctx import (
    HVM_FILE_MAGIC,
    HvmContext,
    HvmEntry,
    HvmRtc411,
    HvmRtc414,
    HvmSaveHeader,
    ViridianVcpu411,
    ViridianVcpu413,
    check_hvm_context,
    decode_entry_body,
    decode_hvm_context,
    encode_hvm_context,
    entry_from_body,
)
from xenlu.migration.libxc import (
    BODY_CHECKS,
    Checkpoint,
    CpuidLeaf,
    CpuidPolicy,
    DirtyPfnList,
    End,
    HvmParamEntry,
    HvmParams,
    MsrEntry,
    MsrPolicy,
    PageData,
    PvP2mFrames,
    PvVcpu,
    RecType,
    SharedInfo,
    StaticDataEnd,
    Verify,
    X86PvInfo,
    X86TscInfo,
    count_data_pages,
)
from xenlu.migration.libxc_stream import (
    DomainHeader,
    ImageHeader,
    LibxcStream,
    convert_v2_to_v3,
    decode_libxc,
    decode_libxc_continuation,
    encode_libxc,
    libxc_bytes,
    verify_libxc,
)

R = RecType
PAGE = 4096


# --- helpers -------------------------------------------------------------------


def hvm_header() -> HvmSaveHeader:
    return HvmSaveHeader(
        magic=HVM_FILE_MAGIC, version=1, changeset=2**64 - 1, cpuid=0x906EA, gtsc_khz=2_000_000
    )


def pfn(t: int, n: int) -> int:
    return (t << 60) | n


def cpuid(*leaves: tuple[int, ...]) -> np.ndarray:
    return np.array(list(leaves), dtype=CpuidLeaf.LAYOUT.dtype)


def msrs(*entries: tuple[int, int, int]) -> np.ndarray:
    return np.array(list(entries), dtype=MsrEntry.LAYOUT.dtype)


def params(*entries: tuple[int, int]) -> np.ndarray:
    return np.array(list(entries), dtype=HvmParamEntry.LAYOUT.dtype)


def page_data(words: list[int], fill: int = 0xA5) -> PageData:
    pfns = np.array(words, dtype="<u8")
    return PageData(pfns, memoryview(bytes([fill]) * (PAGE * count_data_pages(pfns))))


def stream(dtype: int, records: list[Record], version: int = 3) -> LibxcStream:
    return LibxcStream(
        ImageHeader(version=version),
        DomainHeader(type=dtype, page_shift=12, xen_major=4, xen_minor=19),
        records,
    )


def pv_stream(version: int = 3) -> LibxcStream:
    """A PV stream with every PV record type and small bodies."""
    recs = [Record(R.X86_PV_INFO, X86PvInfo(guest_width=8, pt_levels=4))]
    if version == 3:
        recs += [
            Record(R.X86_CPUID_POLICY, CpuidPolicy(cpuid((0, 0xFFFFFFFF, 0xD, 1, 2, 3)))),
            Record(R.X86_MSR_POLICY, MsrPolicy(msrs((0xCE, 0, 1 << 31)))),
            Record(R.STATIC_DATA_END, StaticDataEnd()),
        ]
    recs += [
        Record(R.X86_PV_P2M_FRAMES, PvP2mFrames(0, 511, np.array([0x1234], dtype="<u8"))),
        Record(R.PAGE_DATA, page_data([pfn(0xF, 1), pfn(0xE, 2), pfn(0xD, 3)])),
        Record(R.X86_TSC_INFO, X86TscInfo(mode=1, khz=2_000_000, nsec=5, incarnation=2)),
        Record(R.SHARED_INFO, SharedInfo(bytes(PAGE))),
        Record(R.X86_PV_VCPU_BASIC, PvVcpu(0, b"\x01" * 24)),
        Record(R.X86_PV_VCPU_EXTENDED, PvVcpu(0, b"")),
        Record(R.X86_PV_VCPU_XSAVE, PvVcpu(0, b"\x02" * 5)),
        Record(R.X86_PV_VCPU_MSRS, PvVcpu(0, struct.pack("<IIQ", 0xC0000080, 0, 0xD01))),
        Record(0x80000042, UnknownRecord(0x80000042, b"opt")),
        Record(R.END, End()),
    ]
    return stream(1, recs, version)


def hvm_stream(version: int = 3, pages: bool = False) -> LibxcStream:
    """An HVM stream with every HVM record type and small bodies."""
    recs: list[Record] = []
    if version == 3:
        recs += [
            Record(R.X86_CPUID_POLICY, CpuidPolicy(cpuid((7, 0, 0, 0x9C6FBB, 0, 0xBC000400)))),
            Record(R.X86_MSR_POLICY, MsrPolicy(msrs((0x10A, 0, 4), (0xCE, 0, 0)))),
            Record(R.STATIC_DATA_END, StaticDataEnd()),
        ]
    words = [pfn(0, 0x10), pfn(0xF, 0x11)] if pages else [pfn(0xF, 0x11)]
    ctx = HvmContext.build(
        hvm_header(),
        [
            HvmEntry(2, 0, b"\x07" * 12),
            HvmEntry(11, 0, bytes(24)),
            HvmEntry(17, 1, bytes(216)),
            HvmEntry(20, 0, b"x"),
        ],
    )
    recs += [
        Record(R.PAGE_DATA, page_data(words)),
        Record(R.VERIFY, Verify()),
        Record(R.PAGE_DATA, page_data(words)),
        Record(R.X86_TSC_INFO, X86TscInfo(mode=0, khz=1, nsec=2, incarnation=3)),
        Record(R.HVM_CONTEXT, ctx),
        Record(R.HVM_PARAMS, HvmParams(params((1, 0xFEFFC), (5, 0xFEFF0)))),
        # (no CHECKPOINT_DIRTY_PFN_LIST: back channel only, refused here)
        Record(R.CHECKPOINT, Checkpoint()),
        Record(R.END, End()),
    ]
    return stream(2, recs, version)


def outcome(fn: Callable[[], Any]) -> tuple[str, int | None, str | None] | None:
    """None on success, else (class name, offset, field); any non-DecodeError fails."""
    try:
        fn()
    except DecodeError as exc:
        return (type(exc).__name__, exc.offset, exc.field)
    return None


# --- registry and layouts --------------------------------------------------------


def test_every_record_type_is_registered_under_its_conventions_name() -> None:
    names = {
        0x00: "END",
        0x01: "PAGE_DATA",
        0x02: "X86_PV_INFO",
        0x03: "X86_PV_P2M_FRAMES",
        0x04: "X86_PV_VCPU_BASIC",
        0x05: "X86_PV_VCPU_EXTENDED",
        0x06: "X86_PV_VCPU_XSAVE",
        0x07: "SHARED_INFO",
        0x08: "X86_TSC_INFO",
        0x09: "HVM_CONTEXT",
        0x0A: "HVM_PARAMS",
        0x0B: "TOOLSTACK",
        0x0C: "X86_PV_VCPU_MSRS",
        0x0D: "VERIFY",
        0x0E: "CHECKPOINT",
        0x0F: "CHECKPOINT_DIRTY_PFN_LIST",
        0x10: "STATIC_DATA_END",
        0x11: "X86_CPUID_POLICY",
        0x12: "X86_MSR_POLICY",
    }
    assert {s.type: s.name for s in LIBXC} == names
    for spec in LIBXC:
        assert spec.family == "libxc"


@pytest.mark.parametrize(
    ("cls", "size", "fmt"),
    [
        (X86PvInfo, 8, "<BB6s"),
        (X86TscInfo, 24, "<IIQII"),
        (CpuidLeaf, 24, "<6I"),
        (MsrEntry, 16, "<IIQ"),
        (HvmParamEntry, 16, "<QQ"),
        (HvmSaveHeader, 24, "<IIQII"),
        (HvmRtc411, 16, "<14sBB"),
        (HvmRtc414, 24, "<14sBBq"),
        (ViridianVcpu411, 16, "<QB7s"),
        (ViridianVcpu413, 216, "<QB7sQ128s32s32s"),
        (DomainHeader, 16, "<IHHII"),
    ],
)
def test_layout_sizes_match_the_reference(cls: Any, size: int, fmt: str) -> None:
    assert cls.LAYOUT.size == size == struct.calcsize(fmt)
    assert cls.LAYOUT.dtype.itemsize == size


def test_msr_policy_note_field_order() -> None:
    # §1.6: libxc.py's "QII" has the wrong order; ours is idx, flags, val.
    assert MsrEntry.LAYOUT.names == ("idx", "flags", "val")
    assert CpuidLeaf.LAYOUT.names == ("leaf", "subleaf", "a", "b", "c", "d")
    assert HvmParamEntry.LAYOUT.names == ("index", "value")


# --- round trips -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [pv_stream, lambda: pv_stream(2), hvm_stream, lambda: hvm_stream(2, pages=True)],
    ids=["pv3", "pv2", "hvm3", "hvm2"],
)
def test_model_round_trip(make: Callable[[], LibxcStream]) -> None:
    s = make()
    data = libxc_bytes(s)
    back, end, nxt = decode_libxc(data)
    assert back == s
    assert end == len(data)
    assert nxt == len(s.records)
    assert libxc_bytes(back) == data
    verify_libxc(data)
    # offsets are recorded but do not take part in equality
    assert back.records[0].offset == 40


@pytest.mark.parametrize(
    "parts",
    [V.hvm_parts(3), V.hvm_parts(2), V.pv_parts(3), V.pv_parts(2), V.pv_parts(3, width=4)],
    ids=["hvm3", "hvm2", "pv3", "pv2", "pv3-32"],
)
def test_bytes_round_trip(parts: list[V.Part]) -> None:
    data = V.build(parts).data
    s, _, _ = decode_libxc(data)
    assert libxc_bytes(s) == data


def test_stream_properties() -> None:
    s, _, _ = decode_libxc(V.build(V.pv_parts(3)).data)
    assert (s.version, s.xen_version, s.domain_type) == (3, (4, 19), "pv")
    h, _, _ = decode_libxc(V.build(V.hvm_parts(2)).data)
    assert (h.version, h.domain_type) == (2, "hvm")
    assert [r.name for r in h.records_of(R.END)] == ["END"]


def test_encode_libxc_writes_to_a_sink_without_joining() -> None:
    parts: list[Any] = []

    class Sink:
        def write(self, data: Any) -> int:
            parts.append(data)
            return memoryview(data).nbytes

    s = hvm_stream(pages=True)
    encode_libxc(s, RecordWriter(Sink()))
    pages = s.records[3].value.pages
    assert any(isinstance(p, memoryview) and p.obj is pages.obj for p in parts)
    assert b"".join(bytes(p) for p in parts) == libxc_bytes(s)


# --- PAGE_DATA -------------------------------------------------------------------


def test_page_data_is_zero_copy() -> None:
    data = bytearray(V.build(V.pv_parts(3)).data)
    s, _, _ = decode_libxc(data)
    pd = s.records_of(R.PAGE_DATA)[0].value
    whole = np.frombuffer(data, dtype=np.uint8)
    assert np.shares_memory(np.frombuffer(pd.pages, dtype=np.uint8), whole)
    assert np.shares_memory(pd.pfns, whole)
    assert pd.pages.obj is data
    assert not pd.pfns.flags.writeable
    # the view sees the input: change a byte of the first page in place
    rec_at = s.records_of(R.PAGE_DATA)[0].offset
    assert rec_at is not None
    first_page_at = rec_at + 8 + 8 + 8 * len(pd.pfns)
    data[first_page_at] ^= 0xFF
    assert pd.pages[0] == data[first_page_at]


def test_page_data_helpers() -> None:
    pd = page_data([pfn(0, 5), pfn(0xF, 6), pfn(0xC, 7), pfn(0xE, 8)])
    assert pd.types.tolist() == [0, 15, 12, 14]
    assert pd.pfn_numbers.tolist() == [5, 6, 7, 8]
    assert pd.page_count == 2
    assert len(pd.page(1)) == PAGE


def test_page_data_encode_refuses_inconsistent_values() -> None:
    spec = LIBXC.get(R.PAGE_DATA)
    assert spec is not None
    with pytest.raises(EncodeError):
        spec.encode(PageData(np.array([pfn(0, 1)], dtype="<u8"), memoryview(b"")))
    with pytest.raises(EncodeError):
        spec.encode(PageData(np.array([], dtype="<u8"), memoryview(b"")))
    with pytest.raises(EncodeError):
        spec.encode(PageData(np.array([pfn(6, 1)], dtype="<u8"), memoryview(bytes(PAGE))))
    with pytest.raises(EncodeError):
        spec.encode(PageData(np.array([1 << 55], dtype="<u8"), memoryview(bytes(PAGE))))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 15]),
            st.integers(0, (1 << 52) - 1),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_page_data_property_round_trip(words: list[tuple[int, int]]) -> None:
    pd = page_data([pfn(t, n) for t, n in words], fill=0x3C)
    s = hvm_stream()
    s.records[3] = Record(R.PAGE_DATA, pd)
    back, _, _ = decode_libxc(libxc_bytes(s))
    assert back == s
    assert back.records[3].value.types.tolist() == [t for t, _ in words]


# --- per-record body checks not covered by the vector corpus ---------------------


def body_ctx(rtype: int, n: int, epoch: tuple[int, int] | None = None) -> Ctx:
    return Ctx(3, rtype, 1000, n, epoch=epoch)


def decode_body(rtype: int, body: bytes, epoch: tuple[int, int] | None = None) -> Any:
    spec = LIBXC.get(rtype)
    assert spec is not None
    return spec.decode(memoryview(body), body_ctx(rtype, len(body), epoch))


def test_tsc_mode_above_3_is_rejected() -> None:
    with pytest.raises(RecordError) as e:
        decode_body(R.X86_TSC_INFO, struct.pack("<IIQII", 4, 1, 2, 3, 0))
    assert (e.value.offset, e.value.field, e.value.record_index) == (1000, "mode", 3)


def test_toolstack_is_refused_both_ways() -> None:
    with pytest.raises(RecordError) as e:
        decode_body(R.TOOLSTACK, b"abc")
    assert (e.value.offset, e.value.field) == (992, "type")
    spec = LIBXC.get(R.TOOLSTACK)
    assert spec is not None
    with pytest.raises(EncodeError):
        spec.encode(b"abc")


def test_vcpu_records_accept_header_only() -> None:
    # Errata 1 and handle_x86_pv_vcpu_blob(): all four, BASIC included (issue 13).
    for t in (R.X86_PV_VCPU_BASIC, R.X86_PV_VCPU_EXTENDED, R.X86_PV_VCPU_XSAVE, R.X86_PV_VCPU_MSRS):
        assert decode_body(t, struct.pack("<II", 7, 0)) == PvVcpu(7, b"")
    with pytest.raises(RecordError) as e:
        decode_body(R.X86_PV_VCPU_BASIC, struct.pack("<I", 7))
    assert (e.value.offset, e.value.field) == (996, "length")


def test_dirty_pfn_list_may_be_empty() -> None:
    assert decode_body(R.CHECKPOINT_DIRTY_PFN_LIST, b"") == DirtyPfnList(np.array([], dtype="<u8"))


@pytest.mark.parametrize(
    ("value", "rtype"),
    [
        (X86PvInfo(guest_width=5, pt_levels=4), R.X86_PV_INFO),
        (X86TscInfo(mode=9, khz=0, nsec=0, incarnation=0), R.X86_TSC_INFO),
        (PvVcpu(2**32, b""), R.X86_PV_VCPU_BASIC),
        (SharedInfo(b"short"), R.SHARED_INFO),
        (MsrPolicy(msrs((1, 1, 1))), R.X86_MSR_POLICY),
        (CpuidPolicy(cpuid()), R.X86_CPUID_POLICY),
        (HvmParams(np.zeros(2, dtype="<u8")), R.HVM_PARAMS),
        (End(), R.VERIFY),
        ("not a value", R.END),
    ],
)
def test_encode_errors(value: Any, rtype: int) -> None:
    spec = LIBXC.get(rtype)
    assert spec is not None
    with pytest.raises(EncodeError):
        spec.encode(value)


def test_body_checks_agree_with_decoders() -> None:
    # Every check-only function raises exactly what the decoder raises.
    bodies = {
        R.END: [b"", b"x"],
        R.X86_PV_INFO: [bytes([8, 4]) + bytes(6), bytes([8, 3]) + b"\1" + bytes(5), b"\0"],
        R.X86_TSC_INFO: [bytes(24), struct.pack("<IIQII", 5, 0, 0, 0, 0), bytes(23)],
        R.X86_PV_P2M_FRAMES: [bytes(16), bytes(12), bytes(4)],
        R.X86_PV_VCPU_BASIC: [bytes(9), bytes(8), struct.pack("<II", 0, 1) + b"x"],
        R.X86_PV_VCPU_MSRS: [bytes(8), bytes(7)],
        R.SHARED_INFO: [bytes(PAGE), bytes(10)],
        R.HVM_PARAMS: [bytes(8), struct.pack("<II", 1, 0), struct.pack("<II", 0, 1)],
        R.CHECKPOINT_DIRTY_PFN_LIST: [bytes(8), bytes(3)],
        R.X86_CPUID_POLICY: [bytes(24), bytes(25)],
        R.HVM_CONTEXT: [
            b"".join(encode_hvm_context(HvmContext.build(hvm_header(), []))),
            b"\1\0\0\0\x18\0\0\0",
        ],
    }
    for rtype, cases in bodies.items():
        check = BODY_CHECKS[rtype]
        for body in cases:
            a = outcome(lambda b=body, t=rtype: decode_body(t, b))
            b = outcome(lambda b=body, t=rtype, c=check: c(memoryview(b), body_ctx(t, len(b))))
            assert a == b, (rtype, body)


# --- HVM_CONTEXT -------------------------------------------------------------------


def blob(*entries: bytes) -> bytes:
    return V.hvm_header() + b"".join(entries) + V.HVM_END_ENTRY


def hvm_fail(body: bytes, epoch: tuple[int, int] | None) -> tuple[int | None, str | None]:
    with pytest.raises(RecordError) as e:
        decode_hvm_context(memoryview(body), body_ctx(R.HVM_CONTEXT, len(body), epoch))
    return (e.value.offset, e.value.field)


def test_hvm_context_decode_and_names() -> None:
    body = blob(V.hvm_entry(2, 3, bytes(10)), V.hvm_entry(11, 0, bytes(16)))
    ctx = decode_hvm_context(memoryview(body))
    assert [e.name for e in ctx.entries] == ["HEADER", "CPU", "RTC", "END"]
    assert ctx.entries[1].per_vcpu and not ctx.entries[2].per_vcpu
    assert ctx.header.magic == HVM_FILE_MAGIC
    assert [e.typecode for e in ctx.body_entries()] == [2, 11]
    assert HvmEntry(40, 0, b"").name == "UNKNOWN(40)"
    assert b"".join(encode_hvm_context(ctx)) == body


def test_hvm_context_end_entry_rules() -> None:
    base = V.hvm_header()
    at = 1000 + len(base)
    assert hvm_fail(base + struct.pack("<HHI", 0, 1, 0), None) == (at + 2, "entries[1].instance")
    bad_len = base + struct.pack("<HHI", 0, 0, 4) + bytes(4)
    assert hvm_fail(bad_len, None) == (at + 4, "entries[1].length")
    assert hvm_fail(base + b"\0\0\0", None) == (at, "entries[1]")


def test_hvm_context_lu_checks() -> None:
    hdr = V.hvm_header()
    at = 1000 + len(hdr)
    # typecodes 1-20 only: in a libxc stream too, as hvm_load() refuses the
    # others (issue 13)
    body = blob(V.hvm_entry(21, 0, b""))
    assert hvm_fail(body, None) == (at, "entries[1].typecode")
    assert hvm_fail(body, (4, 19)) == (at, "entries[1].typecode")
    assert decode_hvm_context(memoryview(blob(V.hvm_entry(20, 0, b"")))).entries[1].typecode == 20
    # instance 0 unless per-vCPU; PIC (3) may also use 1 (amendment A1)
    assert hvm_fail(blob(V.hvm_entry(3, 2, bytes(4))), (4, 19)) == (at + 2, "entries[1].instance")
    assert hvm_fail(blob(V.hvm_entry(4, 1, bytes(4))), (4, 19)) == (at + 2, "entries[1].instance")
    for tc in (2, 5, 6, 14, 16, 18, 19, 20):
        decode_hvm_context(
            memoryview(blob(V.hvm_entry(tc, 5, bytes(8)))),
            body_ctx(R.HVM_CONTEXT, 0, (4, 19)),
        )
    # HEADER instance 0 in LU streams
    hdr1 = struct.pack("<HHI", 1, 1, 24) + hdr[8:]
    assert hvm_fail(hdr1 + V.HVM_END_ENTRY, (4, 19)) == (1002, "entries[0].instance")
    decode_hvm_context(memoryview(hdr1 + V.HVM_END_ENTRY))  # not checked outside LU
    # RTC: 16 bytes before 4.14, 24 from 4.14
    rtc16, rtc24 = blob(V.hvm_entry(11, 0, bytes(16))), blob(V.hvm_entry(11, 0, bytes(24)))
    decode_hvm_context(memoryview(rtc16), body_ctx(9, 0, (4, 13)))
    decode_hvm_context(memoryview(rtc24), body_ctx(9, 0, (4, 14)))
    assert hvm_fail(rtc24, (4, 13)) == (at + 4, "entries[1].length")
    assert hvm_fail(rtc16, (4, 14)) == (at + 4, "entries[1].length")
    # VIRIDIAN_VCPU: 16 bytes before 4.13, 216 from 4.13
    vv16, vv216 = blob(V.hvm_entry(17, 1, bytes(16))), blob(V.hvm_entry(17, 1, bytes(216)))
    decode_hvm_context(memoryview(vv16), body_ctx(9, 0, (4, 12)))
    decode_hvm_context(memoryview(vv216), body_ctx(9, 0, (4, 13)))
    assert hvm_fail(vv216, (4, 12)) == (at + 4, "entries[1].length")
    assert hvm_fail(vv16, (4, 21)) == (at + 4, "entries[1].length")
    # other sizes are not checked
    decode_hvm_context(memoryview(blob(V.hvm_entry(2, 0, bytes(3)))), body_ctx(9, 0, (4, 11)))


def test_hvm_context_entry_bodies() -> None:
    rtc = HvmRtc414(cmos_data=bytes(range(14)), cmos_index=3, rtc_offset=-5)
    e = entry_from_body(rtc)
    assert (e.typecode, len(e.data)) == (11, 24)
    assert decode_entry_body(e) == rtc
    old = decode_entry_body(HvmEntry(11, 0, bytes(16)))
    assert isinstance(old, HvmRtc411)
    vv = ViridianVcpu413(
        vp_assist_msr=1,
        apic_assist_pending=1,
        simp_msr=2,
        sint_msr=bytes(128),
        stimer_config_msr=bytes(32),
        stimer_count_msr=bytes(32),
    )
    e = entry_from_body(vv, instance=3)
    assert (e.typecode, e.instance, len(e.data)) == (17, 3, 216)
    assert decode_entry_body(e) == vv
    assert isinstance(decode_entry_body(HvmEntry(17, 0, bytes(16))), ViridianVcpu411)
    with pytest.raises(CallerError):
        decode_entry_body(HvmEntry(11, 0, bytes(20)))
    with pytest.raises(CallerError):
        decode_entry_body(HvmEntry(2, 0, bytes(16)))
    with pytest.raises(CallerError):
        entry_from_body(hvm_header())


def test_hvm_context_encode_errors() -> None:
    with pytest.raises(EncodeError):
        encode_hvm_context(HvmContext((HvmEntry(0, 0, b""),)))
    with pytest.raises(EncodeError):
        encode_hvm_context(HvmContext((HvmEntry(1, 0, bytes(24)), HvmEntry(2, 0, b""))))
    end = HvmEntry(0, 0, b"")
    with pytest.raises(EncodeError):
        encode_hvm_context(HvmContext((HvmEntry(1, 0, bytes(24)), end, end)))
    with pytest.raises(EncodeError):
        encode_hvm_context(HvmContext((HvmEntry(1, 0, bytes(24)), HvmEntry(2, 70000, b""), end)))
    with pytest.raises(CallerError):
        _ = HvmContext((HvmEntry(2, 0, b""),)).header


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        # Typecodes Xen's hvm_load() has handlers for (2..HVM_SAVE_CODE_MAX).
        st.tuples(st.integers(2, 20), st.integers(0, 65535), st.binary(max_size=40)),
        max_size=8,
    ),
    st.binary(max_size=12),
)
def test_hvm_context_property_round_trip(
    entries: list[tuple[int, int, bytes]], trailing: bytes
) -> None:
    built = HvmContext.build(hvm_header(), [HvmEntry(t, i, d) for t, i, d in entries])
    ctx = HvmContext(built.entries, trailing)  # bytes after END: kept, not judged
    body = b"".join(encode_hvm_context(ctx))
    assert decode_hvm_context(memoryview(body)) == ctx
    check_hvm_context(memoryview(body))


# --- grammar ----------------------------------------------------------------------


def test_checkpoint_ends_an_embedded_stream_only() -> None:
    s = hvm_stream()
    s.records = [*s.records[:-2], Record(R.CHECKPOINT, Checkpoint())]
    data = libxc_bytes(s) + b"libxl records follow"
    batch, end, nxt = decode_libxc(data, embedded=True)
    assert batch.records[-1].type == R.CHECKPOINT
    assert end == len(data) - len(b"libxl records follow")
    assert nxt == len(s.records)
    with pytest.raises(FramingError):
        decode_libxc(data)  # not embedded: CHECKPOINT is an ordinary record


def test_continuation_batch_carries_the_grammar_state() -> None:
    first = hvm_stream()
    first.records = [*first.records[:-2], Record(R.CHECKPOINT, Checkpoint())]
    more = [Record(R.PAGE_DATA, page_data([pfn(0xF, 9)])), Record(R.END, End())]
    w = RecordWriter(BytesSink())
    for r in more:
        w.record(r.type, LIBXC.by_name(r.name).encode(r.value))
    sink = w.sink
    assert isinstance(sink, BytesSink)
    raw = sink.getvalue()
    batch, end, nxt = decode_libxc_continuation(raw, 0, 50, first, history=first.records)
    assert [r.type for r in batch.records] == [R.PAGE_DATA, R.END]
    assert (end, nxt) == (len(raw), 52)
    with pytest.raises(GrammarError) as e:
        decode_libxc_continuation(raw, 0, 50, first, history=())
    assert (e.value.offset, e.value.record_index) == (0, 50)


def test_unknown_records_strict_and_lenient() -> None:
    b = V.build(V.before(V.hvm_parts(), "end", ("x", V.rec(0x13, b"abc"))))
    with pytest.raises(UnknownRecordError):
        decode_libxc(b.data)
    s, _, _ = decode_libxc(b.data, strict=False)
    x = s.records[-2]
    assert x.value == UnknownRecord(0x13, b"abc") and not x.value.optional
    assert libxc_bytes(s) == b.data
    with pytest.raises(UnknownRecordError):
        verify_libxc(b.data)
    verify_libxc(b.data, strict=False)


def test_grammar_errors_carry_index_and_type() -> None:
    b = V.build(V.after(V.hvm_parts(), "sde", ("sde2", V.rec(R.STATIC_DATA_END))))
    with pytest.raises(GrammarError) as e:
        decode_libxc(b.data)
    assert (e.value.record_index, e.value.record_type) == (3, R.STATIC_DATA_END)
    assert "STATIC_DATA_END" in str(e.value)


def test_pv_vcpu_before_page_data_is_a_grammar_error() -> None:
    parts = V.moved(V.pv_parts(3), "basic", "p2m")
    b = V.build(parts)
    with pytest.raises(GrammarError) as e:
        decode_libxc(b.data)
    assert (e.value.offset, e.value.field) == (b.at["basic"], "type")


def test_encoder_does_not_check_grammar_but_rejects_bad_values() -> None:
    s = stream(2, [Record(R.END, End())])
    s.records.insert(0, Record(R.X86_PV_INFO, X86PvInfo(guest_width=8, pt_levels=4)))
    data = libxc_bytes(s)  # an HVM stream with X86_PV_INFO: encodable, not decodable
    with pytest.raises(GrammarError):
        decode_libxc(data)
    with pytest.raises(EncodeError):
        libxc_bytes(stream(2, [Record(0x13, End())]))
    with pytest.raises(EncodeError):
        libxc_bytes(stream(2, [Record(0x13, UnknownRecord(0x14, b""))]))
    with pytest.raises(EncodeError):
        libxc_bytes(stream(2, [Record(R.END, Verify())]))
    with pytest.raises(EncodeError):
        ImageHeader(version=-1).pack()


# --- v2 -> v3 -----------------------------------------------------------------------


def test_convert_v2_to_v3_pv_inserts_before_p2m_frames() -> None:
    v2, _, _ = decode_libxc(V.build(V.pv_parts(2)).data)
    v3 = convert_v2_to_v3(v2)
    assert v3.version == 3 and v2.version == 2
    names = [r.name for r in v3.records]
    assert names[:3] == ["X86_PV_INFO", "STATIC_DATA_END", "X86_PV_P2M_FRAMES"]
    assert [r for r in v3.records if r.type != R.STATIC_DATA_END] == v2.records
    back, _, _ = decode_libxc(libxc_bytes(v3))
    assert back == v3
    # every other record is byte-identical
    assert libxc_bytes(v3)[40:].replace(b"\x10\0\0\0\0\0\0\0", b"", 1) == libxc_bytes(v2)[40:]


def test_convert_v2_to_v3_hvm_inserts_before_page_data() -> None:
    v2 = hvm_stream(2, pages=True)
    v3 = convert_v2_to_v3(v2)
    assert [r.name for r in v3.records][:2] == ["STATIC_DATA_END", "PAGE_DATA"]
    assert decode_libxc(libxc_bytes(v3))[0] == v3


def test_convert_v2_to_v3_without_anchor() -> None:
    # No PAGE_DATA: before the first record v3 wants after STATIC_DATA_END.
    v2 = stream(2, [Record(R.X86_TSC_INFO, X86TscInfo(mode=0, khz=1, nsec=1, incarnation=0))], 2)
    v2.records.append(Record(R.END, End()))
    v3 = convert_v2_to_v3(v2)
    assert [r.name for r in v3.records] == ["STATIC_DATA_END", "X86_TSC_INFO", "END"]
    # Nothing at all: before END.
    bare = convert_v2_to_v3(stream(2, [Record(R.END, End())], 2))
    assert [r.name for r in bare.records] == ["STATIC_DATA_END", "END"]
    decode_libxc(libxc_bytes(bare))
    with pytest.raises(CallerError):
        convert_v2_to_v3(bare)


# --- robustness ---------------------------------------------------------------------


def small_streams() -> list[bytes]:
    return [libxc_bytes(hvm_stream()), libxc_bytes(pv_stream()), libxc_bytes(pv_stream(2))]


def test_every_truncation_raises_only_decode_errors() -> None:
    for data in small_streams():
        for cut in range(len(data)):
            got = outcome(lambda d=data[:cut]: decode_libxc(d))
            assert got is not None and got[0] == "FramingError", (cut, got)
            assert got == outcome(lambda d=data[:cut]: verify_libxc(d))


def test_single_byte_mutations_raise_only_decode_errors() -> None:
    for data in small_streams():
        for pos in range(len(data)):
            for xor in (0x01, 0x80, 0xFF):
                mutated = bytearray(data)
                mutated[pos] ^= xor
                m = bytes(mutated)
                a = outcome(lambda d=m: decode_libxc(d))
                b = outcome(lambda d=m: verify_libxc(d))
                assert a == b, (pos, xor, a, b)


def test_vector_streams_mutated_raise_only_decode_errors() -> None:
    data = V.build(V.hvm_parts(3)).data
    for pos in range(0, len(data), 7):
        mutated = bytearray(data)
        mutated[pos] = (mutated[pos] + 0x41) & 0xFF
        outcome(lambda d=bytes(mutated): decode_libxc(d))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_after_valid_headers(tail: bytes) -> None:
    head = libxc_bytes(stream(2, []))
    outcome(lambda: decode_libxc(head + tail))
    outcome(lambda: decode_libxc(head + tail, strict=False))


@pytest.mark.parametrize("count", [0, 1, 2])
@pytest.mark.parametrize("rsvd", [0, 1])
@pytest.mark.parametrize("ptype", range(16))
@pytest.mark.parametrize("low", [0x1234, 0x0010_0000_0000_0000])
def test_page_data_acceptor_of_one_pfn_agrees_with_the_check(
    count: int, rsvd: int, ptype: int, low: int
) -> None:
    """The 16-byte PAGE_DATA shortcut of the structural fast path (§1.6)."""
    from xenlu.migration.libxc import BODY_ACCEPT

    body = struct.pack("<IIQ", count, rsvd, ptype << 60 | low)
    ctx = Ctx(0, R.PAGE_DATA, 8, len(body))
    spec = LIBXC.get(R.PAGE_DATA)
    assert spec is not None
    exact = outcome(lambda: spec.decode(memoryview(body), ctx)) is None
    assert BODY_ACCEPT[R.PAGE_DATA](body, 0, len(body)) == exact


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(33, 300),
    types=st.lists(st.integers(0, 15), min_size=1, max_size=4),
    rsvd_at=st.one_of(st.none(), st.integers(52, 59)),
    pages_delta=st.sampled_from([0, 0, 0, -1, 1]),
    seed=st.integers(0, 2**32 - 1),
)
def test_page_data_acceptor_of_many_pfns_agrees_with_the_check(
    count: int, types: list[int], rsvd_at: int | None, pages_delta: int, seed: int
) -> None:
    """The strided (numpy-free) PAGE_DATA acceptor for more than 32 pfns (§1.6)."""
    import random

    from xenlu.migration.libxc import BODY_ACCEPT

    rng = random.Random(seed)
    pfns = [rng.choice(types) << 60 | rng.randrange(1 << 40) for _ in range(count)]
    if rsvd_at is not None:
        pfns[rng.randrange(count)] |= 1 << rsvd_at
    ndata = sum(1 for p in pfns if (p >> 60) & 7 <= 4)
    body = struct.pack(f"<II{count}Q", count, 0, *pfns) + bytes(4096 * max(0, ndata + pages_delta))
    spec = LIBXC.get(R.PAGE_DATA)
    assert spec is not None
    ctx = Ctx(0, R.PAGE_DATA, 8, len(body))
    exact = outcome(lambda: spec.decode(memoryview(body), ctx)) is None
    assert BODY_ACCEPT[R.PAGE_DATA](memoryview(body), 0, len(body)) == exact


def test_libxc_verify_command_needs_no_numpy(tmp_path: Any) -> None:
    """`xenlu verify` of valid libxc streams (here with 1024-pfn PAGE_DATA
    records) never imports numpy: its ~45 ms import would be most of the
    command's time on page-heavy streams (benchmarks, Xen-verifier rows)."""
    import subprocess
    import sys

    recs = [Record(R.STATIC_DATA_END, StaticDataEnd())]
    pfns = np.arange(1024, dtype="<u8")
    recs += [
        Record(R.PAGE_DATA, PageData(pfns + i * 1024, memoryview(bytes(4096 * 1024))))
        for i in range(2)
    ]
    recs.append(Record(R.END, End()))
    path = tmp_path / "pages.libxc"
    path.write_bytes(libxc_bytes(stream(2, recs)))
    paths = [path]
    for v in V.VECTORS:
        if v.error is None and v.format == "libxc":
            p = tmp_path / f"{v.name}.libxc"
            p.write_bytes(v.data)
            paths.append(p)
    code = (
        "import sys\nfrom xenlu.cli.app import main\n"
        "codes = [main(['verify', '-q', '--format', 'libxc', p]) for p in sys.argv[1:]]\n"
        "print(codes, 'numpy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"{[0] * len(paths)} False", out.stdout + out.stderr
