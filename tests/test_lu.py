"""LU stream decoder and encoder on generated hosts (spec §1–§4)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xenlu.core.epochs import EPOCHS
from xenlu.core.errors import (
    CallerError,
    ChecksumError,
    DecodeError,
    EncodeError,
    FramingError,
    GrammarError,
    RecordError,
    UnknownRecordError,
    VersionError,
    XenLUError,
)
from xenlu.core.framing import crc32c
from xenlu.core.registry import Record, UnknownRecord
from xenlu.lu.records import Bulk, LuSectionEnd, T
from xenlu.lu.stream import (
    LUStream,
    decode_domain_section,
    decode_lu,
    encode_lu,
    encode_lu_to,
    scan_lu,
)
from xenlu.testing.hostgen import make_host

VERSIONS = [*EPOCHS, (4, 18)]


@pytest.fixture(scope="module")
def host() -> LUStream:
    return make_host((4, 15), n_hvm=2, mem_mib=4, dom0_mem_mib=4, fragmentation=0.3, seed=7)


@pytest.fixture(scope="module")
def data(host: LUStream) -> bytes:
    return encode_lu(host)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"{v[0]}.{v[1]}")
def test_roundtrip_every_epoch(version: tuple[int, int]) -> None:
    s = make_host(version, n_hvm=3, mem_mib=4, dom0_mem_mib=4, fragmentation=0.2)
    b = encode_lu(s)
    d = decode_lu(b)
    assert d == s
    assert encode_lu(d) == b  # byte-exact re-encode
    assert d.version == version and d.sections_ok


def test_bulk_entries_are_zero_copy(data: bytes) -> None:
    d = decode_lu(data)
    backing = np.frombuffer(data, np.uint8)
    for dom in d.domains:
        for arr in (dom.ownership, dom.evtchns):
            assert np.shares_memory(arr, backing)
            assert not arr.flags.writeable


def test_split_bulk_records_compare_equal_and_concatenate(host: LUStream) -> None:
    small = encode_lu(host, max_record_bytes=8 + 24 * 3)
    d = decode_lu(small)
    assert d == host  # logical equality across a different split
    hvm = d.domain(1)
    assert len(hvm.chunks(T.LU_P2M)) > 1
    assert np.array_equal(hvm.p2m, host.domain(1).p2m)
    assert encode_lu(d, max_record_bytes=8 + 24 * 3) == small


def test_encode_to_sink_matches_encode(host: LUStream, data: bytes) -> None:
    sink = io.BytesIO()
    n = encode_lu_to(host, sink)
    assert n == len(data) and sink.getvalue() == data


def test_every_truncation_is_a_decode_error(data: bytes) -> None:
    step = max(1, len(data) // 1500)
    for cut in range(0, len(data), step):
        with pytest.raises(DecodeError):
            decode_lu(data[:cut])


def test_byte_mutations_raise_only_xenlu_errors(data: bytes) -> None:
    rng = np.random.default_rng(1)
    for pos in rng.integers(0, len(data), 400):
        b = bytearray(data)
        b[pos] ^= 1 << int(rng.integers(0, 8))
        with contextlib.suppress(XenLUError):
            decode_lu(bytes(b))


def test_section_checksums_detect_any_body_change(data: bytes) -> None:
    # Flip a byte inside a PV vCPU blob: structurally fine, only the crc catches it.
    d = decode_lu(data)
    dom0 = d.domains[0]
    rec = next(r for r in dom0.records if r.type == 0x04)
    assert rec.offset is not None
    pos = rec.offset + 8 + 8 + 100
    b = bytearray(data)
    b[pos] ^= 0xFF
    with pytest.raises(ChecksumError) as ei:
        decode_lu(bytes(b))
    assert ei.value.field == "crc32c"
    lax = decode_lu(bytes(b), verify_checksums=False)
    assert lax.sections_ok is False and lax.global_section.checksum_ok is True


def test_section_end_layout_and_crc(data: bytes) -> None:
    secs = scan_lu(data)
    assert secs[0].start == 0 and len(secs) == 4
    for s in secs:
        end = LuSectionEnd.unpack(data, s.end + 8)
        assert end.section_bytes == s.end - s.start
        assert end.crc32c == crc32c(data[s.start : s.end])


def test_domain_section_decodes_alone(host: LUStream, data: bytes) -> None:
    secs = scan_lu(data)
    whole = decode_lu(data)
    for s, dom in zip(secs[1:], whole.domains, strict=True):
        # Only this section's bytes (plus nothing else) are needed.
        alone = decode_domain_section(data[s.start : s.end + 24], 0, whole.version)
        assert alone == dom


def test_version_out_of_range() -> None:
    body = struct.pack("<II", 4, 22)
    with pytest.raises(VersionError) as ei:
        decode_lu(struct.pack("<II", T.LU_VERSION, 8) + body)
    assert ei.value.field == "xen_minor" and ei.value.offset == 12
    assert "4.11" in str(ei.value) and "4.22" in str(ei.value)


def test_stream_must_start_with_lu_version(data: bytes) -> None:
    with pytest.raises(GrammarError) as ei:
        decode_lu(data[24:])  # drop LU_VERSION
    assert ei.value.offset == 0 and ei.value.field == "type"


def test_bytes_after_end(data: bytes) -> None:
    with pytest.raises(FramingError) as ei:
        decode_lu(data + bytes(8))
    assert ei.value.offset == len(data)
    assert decode_lu(data + bytes(8), memory=True) == decode_lu(data)


def _rebuild(s: LUStream, dom_index: int, records: list[Record]) -> bytes:
    doms = list(s.domains)
    doms[dom_index] = dataclasses.replace(doms[dom_index], records=records)
    return encode_lu(LUStream(s.global_section, doms))


def test_grammar_rules(host: LUStream) -> None:
    dom0 = host.domains[0]
    hvm = host.domains[1]
    # LU_P2M in a PV domain.
    p2m = next(r for r in hvm.records if r.type == T.LU_P2M)
    with pytest.raises(GrammarError, match="LU_P2M"):
        decode_lu(_rebuild(host, 0, [*dom0.records, p2m]))
    # LU_EVTCHNS before LU_EVTCHN_ABI.
    recs = [r for r in dom0.records if r.type != T.LU_EVTCHN_ABI]
    with pytest.raises(GrammarError, match="LU_EVTCHN_ABI"):
        decode_lu(_rebuild(host, 0, recs))
    # HVM_CONTEXT missing in an HVM domain.
    recs = [r for r in hvm.records if r.type != 0x09]
    with pytest.raises(GrammarError, match="HVM_CONTEXT"):
        decode_lu(_rebuild(host, 1, recs))
    # Two HVM_PARAMS.
    params = next(r for r in hvm.records if r.type == 0x0A)
    with pytest.raises(GrammarError, match="HVM_PARAMS"):
        decode_lu(_rebuild(host, 1, [*hvm.records, params]))
    # PAGE_DATA is not allowed in a domain section.
    with pytest.raises(GrammarError):
        decode_lu(_rebuild(host, 1, [*hvm.records, Record(0x01, UnknownRecord(1, b""))]))


def test_unknown_records() -> None:
    s = make_host((4, 11), n_hvm=1, mem_mib=2, dom0_mem_mib=2)
    dom = s.domains[1]
    opt = Record(0xC0000099, UnknownRecord(0xC0000099, b"hello"))
    b = _rebuild(s, 1, [*dom.records, opt])
    d = decode_lu(b)
    assert d.domains[1].optional == [UnknownRecord(0xC0000099, b"hello")]
    assert encode_lu(d) == b
    mand = Record(0x4000005A, UnknownRecord(0x4000005A, b"x"))
    b = _rebuild(s, 1, [*dom.records, mand])
    with pytest.raises(UnknownRecordError) as ei:
        decode_lu(b)
    assert ei.value.record_type == 0x4000005A
    lax = decode_lu(b, strict=False)
    assert encode_lu(lax) == b
    # An optional record may not open a section.
    with pytest.raises(GrammarError):
        decode_lu(_rebuild(s, 1, [opt, *dom.records]))


def test_record_errors_name_entry_field_and_offset(host: LUStream, data: bytes) -> None:
    hvm = decode_lu(data).domains[1]
    rec = next(r for r in hvm.records if r.type == T.LU_P2M)
    assert rec.offset is not None
    entry1 = rec.offset + 8 + 8 + 24  # header, count header, entry 0
    b = bytearray(data)
    b[entry1 + 20] = 16  # p2m_type 16 is not a type
    with pytest.raises(RecordError) as ei:
        decode_lu(bytes(b), verify_checksums=False)
    e = ei.value
    assert e.field == "entries[1].p2m_type" and e.offset == entry1 + 20
    assert e.record_type == T.LU_P2M and "0x40000012" in str(e)


def test_no_allocation_proportional_to_a_huge_length_field(data: bytes) -> None:
    b = bytearray(data)
    struct.pack_into("<I", b, 20, 0x07FFFFF0)  # LU_HOST_INFO length: 128 MiB, past the end
    tracemalloc.start()
    with pytest.raises(FramingError):
        decode_lu(bytes(b))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 << 20


def test_encoder_refuses_wrong_epoch_layout(host: LUStream) -> None:
    old = make_host((4, 11), n_hvm=1, mem_mib=2, dom0_mem_mib=2)
    mixed = LUStream(host.global_section, [old.domains[0]])
    with pytest.raises(EncodeError, match="LuDomain411"):
        encode_lu(mixed)
    with pytest.raises(CallerError):
        encode_lu(host, max_record_bytes=8)


def test_empty_bulk_record_roundtrips(host: LUStream) -> None:
    dom0 = host.domains[0]
    empty = Record(T.LU_PAGE_OWNERSHIP, Bulk(dom0.ownership[:0]))
    b = _rebuild(host, 0, [*dom0.records, empty])
    assert encode_lu(decode_lu(b)) == b


def test_pic_has_two_instances_amendment_a1() -> None:
    # Xen saves both 8259s; spec §4.16 as amended (docs/spec-amendments.md A1).
    s = make_host((4, 14), n_hvm=1, mem_mib=2, dom0_mem_mib=2)
    ents = s.domains[1].hvm_context.entries
    assert [e.instance for e in ents if e.typecode == 3] == [0, 1]
    assert decode_lu(encode_lu(s)) == s
    from xenlu.migration.hvmctx import HvmContext, HvmEntry

    bad = HvmContext(
        tuple(HvmEntry(e.typecode, 2 if e.typecode == 3 else e.instance, e.data) for e in ents)
    )
    dom = s.domains[1]
    recs = [Record(r.type, bad) if r.type == 0x09 else r for r in dom.records]
    with pytest.raises(RecordError) as ei:
        decode_lu(_rebuild(s, 1, recs))
    assert ei.value.field is not None and ei.value.field.endswith(".instance")


def test_sections_encode_independently_and_in_parallel(host: LUStream, data: bytes) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from xenlu.lu.stream import END_BYTES, encode_section_to

    def one(sec: object) -> bytes:
        sink = io.BytesIO()
        encode_section_to(sec, sink)  # type: ignore[arg-type]
        return sink.getvalue()

    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(one, host.sections))
    assert b"".join(parts) + END_BYTES == data


def test_superpage_hosts_mix_2mib_and_fragmented_extents() -> None:
    s = make_host((4, 11), n_hvm=1, mem_mib=8, dom0_mem_mib=4, fragmentation=0.5, superpages=True)
    n = s.domains[1].p2m["nr_pages"]
    assert (n == 512).sum() == 2 and (n < 512).sum() > 10  # half of 8 MiB in 2 MiB extents
    assert decode_lu(encode_lu(s)) == s


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(9, 200),
    seed=st.integers(0, 2**32 - 1),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["p2m_type", "mfn", "gfn", "nr_pages"]),
            st.sampled_from([0, 1, 4, 6, 10, 11, 12, 15, 2**32 - 1, 2**64 - 2**32, 2**64 - 1]),
        ),
        max_size=3,
    ),
)
def test_p2m_fast_rules_agree_with_exact_rules(
    n: int, seed: int, edits: list[tuple[str, int]]
) -> None:
    """§4.7: the reduction screens of the P2M record rules never hide a violation."""
    from xenlu.lu.records import P2mEntry

    rng = np.random.default_rng(seed)
    lay = P2mEntry.LAYOUT
    arr = lay.empty(n)
    arr["gfn"] = np.arange(n, dtype=np.uint64) * np.uint64(7)
    arr["mfn"] = rng.integers(0, 2**40, n, dtype=np.uint64)
    arr["nr_pages"] = 1
    for name, value in edits:
        i = int(rng.integers(n))
        col = arr[name]
        # The layout's own rules run first (nr_pages >= 1), as in decoding.
        col[i] = max(value & int(np.iinfo(col.dtype).max), name == "nr_pages")
    rules = lay.rules((4, 11))
    exact = rules.locate_records(arr)  # every rule on the whole array, no screen
    assert rules.records_clean(arr) == (exact is None)
    if rules.locate_fields(arr) is None:
        assert lay.check_array(arr, (4, 11)) == exact
