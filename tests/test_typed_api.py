"""The typed seams of issue 12 item 5: decode overloads per format, the codec
table, ``Record[V]``, typed domain accessors and bulk accessors that return one
read-only array every time, whatever the number of records they span."""

from __future__ import annotations

import typing

import numpy as np
import pytest

import xenlu
from xenlu import api
from xenlu.core.errors import CallerError
from xenlu.core.framing import BytesSink
from xenlu.core.registry import Record
from xenlu.lu.records import (
    Bulk,
    LuDomain411,
    LuDomain413,
    LuDomain421,
    LuDomainCommon,
    LuVersion,
    T,
)
from xenlu.lu.stream import GlobalSection, LUDomain, LUStream, decode_lu, encode_lu
from xenlu.testing.hostgen import make_host

HOST = make_host((4, 16), n_hvm=1, mem_mib=2, dom0_mem_mib=2, fragmentation=1.0, seed=3)

BULK = {
    "p2m": T.LU_P2M,
    "ownership": T.LU_PAGE_OWNERSHIP,
    "page_types": T.LU_PAGE_TYPES,
    "grant_maps": T.LU_GRANT_MAPS,
    "evtchns": T.LU_EVTCHNS,
}


def _split(stream: LUStream) -> LUStream:
    """The same host with every bulk record of at least 2 entries cut in two."""
    domains = []
    for d in stream.domains:
        recs: list[Record] = []
        for r in d.records:
            if isinstance(r.value, Bulk) and len(r.value.entries) >= 2:
                a = r.value.entries
                half = len(a) // 2
                recs += [Record(r.type, Bulk(a[:half])), Record(r.type, Bulk(a[half:]))]
            else:
                recs.append(r)
        domains.append(LUDomain(recs))
    return LUStream(stream.global_section, domains)


def _shapes() -> list[tuple[str, LUStream]]:
    split = _split(HOST)
    return [
        ("built, one record", HOST),
        ("built, split", split),
        ("decoded, one record", decode_lu(encode_lu(HOST))),
        ("decoded, split", decode_lu(encode_lu(split))),
        ("decoded, split by the encoder", decode_lu(encode_lu(HOST, max_record_bytes=64))),
    ]


@pytest.mark.parametrize(("shape", "stream"), _shapes(), ids=[s for s, _ in _shapes()])
def test_bulk_accessors_same_read_only_array_every_time(shape: str, stream: LUStream) -> None:
    seen_split = False
    for d in stream.domains:
        for name, code in BULK.items():
            first = getattr(d, name)
            assert getattr(d, name) is first, (shape, d.domid, name)
            assert not first.flags.writeable, (shape, d.domid, name)
            with pytest.raises(ValueError):
                first[:1] = first[:1]
            n = len(d.chunks(code))
            seen_split |= n > 1
            assert len(first) == sum(len(c) for c in d.chunks(code))
            ref = HOST.domain(d.domid)
            assert np.array_equal(first, getattr(ref, name)), (shape, d.domid, name)
    g = stream.global_section
    for name in ("reusable_regions", "xen_pages"):
        assert getattr(g, name) is getattr(g, name)
        assert not getattr(g, name).flags.writeable
    assert seen_split == ("split" in shape)


def test_bulk_view_follows_a_change_of_records() -> None:
    """The cached array belongs to the records it was made from: replacing them
    gives the new entries, never a stale concatenation."""
    d = _split(HOST).domains[0]
    before = d.ownership
    assert len(d.chunks(T.LU_PAGE_OWNERSHIP)) > 1
    edited = before.copy()
    edited["nr_pages"][0] += 1
    d.records = [r for r in d.records if r.type != T.LU_PAGE_OWNERSHIP]
    d.records.append(Record(T.LU_PAGE_OWNERSHIP, Bulk(edited)))
    after = d.ownership
    assert after is not before and after is d.ownership
    assert int(after["nr_pages"][0]) == int(before["nr_pages"][0]) + 1
    assert not after.flags.writeable and edited.flags.writeable  # the record keeps its array


def test_empty_bulk_accessor_has_the_layout_dtype() -> None:
    d = LUDomain([Record(T.LU_DOMAIN, HOST.domains[0].info)])
    assert len(d.p2m) == 0 and d.p2m is d.p2m
    assert d.p2m.dtype == HOST.domains[1].p2m.dtype
    assert d.evtchns.dtype.names is not None and "port" in d.evtchns.dtype.names


def test_typed_domain_accessors() -> None:
    s = decode_lu(encode_lu(HOST))
    pv, hvm = s.domains[0], s.domains[1]
    assert isinstance(pv.info, LuDomainCommon)
    assert pv.pv_info is not None and pv.hvm_context is None
    assert hvm.hvm_context is not None and hvm.pv_info is None
    assert all(v.vcpu_id >= 0 for v in pv.vcpus())
    # info_as: the declaration of one epoch, typed, or a CallerError naming both.
    assert isinstance(pv.info_as(LuDomain413), LuDomain413)
    with pytest.raises(CallerError, match="LU_DOMAIN is LuDomain416, expected LuDomain421"):
        pv.info_as(LuDomain421)
    old = decode_lu(encode_lu(make_host((4, 11), n_hvm=0, mem_mib=1, dom0_mem_mib=1)))
    assert type(old.domains[0].info_as(LuDomain411)) is LuDomain411


def test_record_is_generic_in_its_value() -> None:
    r: Record[LuVersion] = Record(T.LU_VERSION, LuVersion(xen_major=4, xen_minor=19))
    assert Record[LuVersion] is not Record  # subscriptable at run time
    assert r == Record(T.LU_VERSION, LuVersion(xen_major=4, xen_minor=19))
    assert r.value.xen_minor == 19
    assert "LU_VERSION" in repr(r)
    assert GlobalSection([r]).version == (4, 19)


def test_decode_overloads_name_each_format_stream_class() -> None:
    """Each ``decode(data, "<format>")`` overload returns that format's stream class,
    as FORMAT_TABLE declares it; the catch-all overload returns AnyStream."""
    overloads = typing.get_overloads(api.decode)
    by_format: dict[str, str] = {}
    for fn in overloads:
        ann = fn.__annotations__
        fmt = ann["format"]
        if fmt.startswith("Literal["):
            by_format[fmt[len("Literal[") : -1].strip("'\"")] = ann["return"]
        else:
            assert ann["return"] == "AnyStream"
    assert by_format == {name: f.stream_class for name, f in api.FORMAT_TABLE.items()}
    members = {m.strip() for m in api.AnyStream.split("|")}
    assert members == {f.stream_class for f in api.FORMAT_TABLE.values()}
    assert set(typing.get_args(api.FormatName)) == set(api.FORMATS)


def test_every_format_entry_is_a_codec() -> None:
    """decode, verify and encode_to of each table entry work on their own stream."""
    from tests.vectors.libxc_vectors import VECTORS

    samples = {"lu": xenlu.encode(HOST)}
    for vec in VECTORS:
        if vec.error is None:
            samples.setdefault(vec.format, vec.data)
    for name, data in samples.items():
        fmt = api.FORMAT_TABLE[name]
        buf = memoryview(data)
        stream = fmt.decode(buf, True, None)
        assert isinstance(stream, fmt.stream_type())
        assert fmt.verify(buf, True, None) is None
        sink = BytesSink()
        assert fmt.encode_to(stream, sink) == len(data)
        assert sink.getvalue() == data
