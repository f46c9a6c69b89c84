"""Rules as data (issue 12): one declaration, every path, the same verdict.

1. A record type declared here, in the test module alone, gets decode,
   encode, check-only verify, its schema entry, a hypothesis strategy and a
   vectorised array check from that one declaration.
2. The same bad entry fed through every path (single decode, bulk array,
   check-only verify of the entries and of a whole stream, the strategies'
   repair) gives the same error class, field and message.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np
import pytest
from construct import Int8ul, Int16ul, Int32ul
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xenlu.core.errors import DecodeError, RecordError
from xenlu.core.layout import Packed, Rsvd, Rule, fld, packed, reserved
from xenlu.core.registry import LU, Ctx, Record, RecordSpec, fixed_record
from xenlu.core.rules import Columns, Row
from xenlu.lu.records import (
    Bulk,
    CountHeader,
    EvtchnEntry415,
    P2mEntry,
    PageTypeEntry,
    RegionExtent,
    T,
)
from xenlu.lu.stream import LUDomain, decode_lu, encode_lu, verify_lu
from xenlu.testing.hostgen import make_host
from xenlu.testing.strategies import entries, packed_values
from xenlu.tools.schema import record_schema

# --- 1. a toy record, declared once ----------------------------------------------


@packed(name="TOY")
class Toy(Packed):
    """A toy record: an enumerated kind, a flags field, two reserved fields, a range."""

    kind: int = fld(Int8ul, values={1: "one", 2: "two"})
    flags: int = fld(Int8ul, bits={0: "on", 1: ("late", "4.15", None)})
    rsvd: ClassVar[Rsvd] = reserved(Int16ul)
    first: int = fld(Int32ul)
    last: int = fld(Int32ul)
    rsvd1: ClassVar[Rsvd] = reserved(Int32ul)

    RULES = (
        Rule(
            "last",
            "last below first",
            lambda c: c.last < c.first,
            lambda c: f">= {c.first}",
            repair=lambda d, pick: {**d, "last": pick(d["first"], 0xFFFFFFFF)},
        ),
    )


TOY_TYPE = 0x40000070
TOY = fixed_record("lu", TOY_TYPE, "TOY", Toy)


def _ctx(n: int, epoch: tuple[int, int] | None = (4, 15)) -> Ctx:
    return Ctx(3, TOY_TYPE, 0x100, n, epoch)


def _error(fn: Any, *args: Any) -> tuple[str, str | None, str, object, object]:
    with pytest.raises(DecodeError) as ei:
        fn(*args)
    e = ei.value
    return (type(e).__name__, e.field, e.message, e.expected, e.got)


def test_toy_decode_encode_verify() -> None:
    v = Toy(kind=2, flags=3, first=5, last=9)
    body = memoryview(b"".join(bytes(p) for p in TOY.encode(v)))
    assert len(body) == Toy.LAYOUT.size == 16
    assert TOY.decode(body, _ctx(16)) == v
    TOY.verify(body, _ctx(16))  # check-only: no error
    # The record rule, through decode and verify alike, located at its field.
    bad = memoryview(b"".join(bytes(p) for p in TOY.encode(Toy(kind=1, flags=0, first=9, last=4))))
    want = ("RecordError", "last", "last below first", ">= 9", 4)
    assert _error(TOY.decode, bad, _ctx(16)) == _error(TOY.verify, bad, _ctx(16)) == want
    with pytest.raises(RecordError) as ei:
        TOY.decode(bad, _ctx(16))
    assert ei.value.offset == 0x100 + 8
    # A flag bit of a later epoch, and a reserved field.
    assert _error(TOY.decode, body, _ctx(16, (4, 13)))[1:3] == (
        "flags",
        "flag bits not valid in epoch 4.13",
    )
    raw = bytearray(body)
    raw[2] = 1
    assert _error(TOY.verify, memoryview(raw), _ctx(16))[1:3] == (
        "rsvd",
        "reserved field not zero",
    )


def test_toy_schema_entry() -> None:
    entry = record_schema(TOY, (4, 15))
    assert entry["type"] == "0x40000070" and entry["family"] == "lu"
    lay = entry["layouts"]["TOY"]
    fields = {f["name"]: f for f in lay["fields"]}
    assert lay["size"] == 16
    assert fields["rsvd"]["reserved"] and fields["rsvd1"]["reserved"]
    assert fields["flags"]["valid_mask"] == "0x3"
    assert fields["kind"]["values"] == {"1": "one", "2": "two"}
    assert record_schema(TOY, (4, 13))["layouts"]["TOY"]["fields"][1]["valid_mask"] == "0x1"
    assert Toy.LAYOUT.describe((4, 15))["rules"] == [
        {"field": "last", "message": "last below first"}
    ]


@settings(max_examples=60, deadline=None)
@given(packed_values(Toy, "4.13"))
def test_toy_strategy_values_are_valid(v: Toy) -> None:
    assert Toy.LAYOUT.check(v, (4, 13)) is None
    body = memoryview(b"".join(bytes(p) for p in TOY.encode(v)))
    assert TOY.decode(body, _ctx(len(body), (4, 13))) == v


@settings(max_examples=30, deadline=None)
@given(entries(Toy, "4.15", min_size=9, max_size=40))
def test_toy_strategy_arrays_pass_the_vectorised_check(arr: np.ndarray) -> None:
    assert Toy.LAYOUT.check_array(arr, (4, 15)) is None


@pytest.mark.parametrize("n", [3, 40, 70000])
def test_toy_vectorised_check_names_the_first_bad_entry(n: int) -> None:
    lay = Toy.LAYOUT
    arr = lay.empty(n)
    arr["kind"] = 1
    arr["first"] = 4
    arr["last"] = 7
    assert lay.check_array(arr, (4, 15)) is None
    i = n - 2
    arr["last"][i] = 3
    arr["last"][n - 1] = 2
    v = lay.check_array(arr, (4, 15))
    one = lay.checker((4, 15))(tuple(arr[i].tolist()))
    assert v is not None and one is not None
    assert (v.entry, v.field, v.message, v.expected, v.got) == (
        i,
        "last",
        one.message,
        one.expected,
        one.got,
    )
    assert v.offset == i * lay.size + one.offset == i * 16 + 8
    # A field rule of a later entry does not hide the record rule of an earlier one,
    # but a field rule of any entry comes first (field rules, then record rules).
    arr["kind"][n - 1] = 7
    v = lay.check_array(arr, (4, 15))
    assert v is not None and (v.entry, v.field) == (n - 1, "kind")


# --- 2. the same bad entry through every path ---------------------------------------

#: (record, entry declaration, epoch, edit of one entry, field, message)
CASES: list[tuple[str, type[Any], tuple[int, int], dict[str, int], str, str]] = [
    ("LU_REUSABLE_REGIONS", RegionExtent, (4, 15), {"nr_pages": 0}, "nr_pages", "value too small"),
    (
        "LU_P2M",
        P2mEntry,
        (4, 15),
        {"p2m_type": 1, "mfn": 0x1234},
        "mfn",
        "p2m type has no frame",
    ),
    (
        "LU_PAGE_TYPES",
        PageTypeEntry,
        (4, 11),
        {"type": 6, "flags": 1},
        "type",
        "pinned page is not a page table",
    ),
    (
        "LU_EVTCHNS",
        EvtchnEntry415,
        (4, 17),
        {"state": 6, "remote_domid": 5, "detail": 0},
        "remote_domid",
        "remote_domid set for this state",
    ),
]


def _valid_entries(
    data: st.DataObject, cls: type[Any], epoch: tuple[int, int], n: int
) -> np.ndarray:
    arr = data.draw(entries(cls, epoch, min_size=n, max_size=n))
    assert cls.LAYOUT.check_array(arr, epoch) is None
    return arr


def _body(arr: np.ndarray) -> memoryview:
    hdr = CountHeader.LAYOUT.pack(CountHeader(count=len(arr)))
    return memoryview(hdr + arr.tobytes())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.large_base_example])
@given(data=st.data())
def test_same_bad_entry_same_error_on_every_path(case: Any, data: st.DataObject) -> None:
    name, cls, epoch, edit, field, message = case
    spec: RecordSpec = LU.by_name(name)
    lay = cls.LAYOUT
    seen = set()
    for n, i in ((1, 0), (5, 3), (12, 10)):  # single, tuple path (<= 8), vectorised path
        arr = _valid_entries(data, cls, epoch, n).copy()
        for k, val in edit.items():
            arr[k][i] = val
        body = _body(arr)
        ctx = Ctx(2, spec.type, 0x40, len(body), epoch)
        decoded = _error(spec.decode, body, ctx)
        verified = _error(spec.verify, body, ctx)
        with pytest.raises(RecordError) as ei:
            spec.decode(body, ctx)
        assert ei.value.offset == 0x40 + 8 + i * lay.size + lay.field(field).offset
        v = lay.check_array(arr, epoch)  # the entry-rules check of the verify path
        assert v is not None
        assert (
            decoded
            == verified
            == ("RecordError", f"entries[{i}].{field}", message, v.expected, v.got)
        )
        assert (v.field, v.message) == (field, message)
        one = lay.checker(epoch)(tuple(arr[i].tolist()))  # the entry alone
        assert one is not None and (one.field, one.message, one.got) == (field, message, v.got)
        seen.add((v.field, v.message, type(ei.value)))
    assert len(seen) == 1
    # The strategies' repair: the rule the strategies see broken in this entry
    # is the one every path reported, and its declared repair mends the entry.
    rules = lay.rules(epoch)
    row_t = tuple(arr[i].tolist())
    broken = [r for r in rules.records if not r.pairwise and r.bad(Row(lay.names, row_t))]
    if rules.locate_fields_tuple(row_t) is None:
        assert broken and (broken[0].field, broken[0].message) == (field, message)
        d = dict(zip(lay.names, row_t, strict=True))
        assert broken[0].repair is not None
        fixed = broken[0].repair(d, lambda lo, hi: lo)
        assert lay.checker(epoch)(tuple(fixed[k] for k in lay.names)) is None
    else:  # a field rule: the strategies draw only values that meet it
        assert not broken


@pytest.mark.parametrize("max_record_bytes", [40, 1 << 27])
def test_same_bad_entry_same_error_in_a_whole_stream(max_record_bytes: int) -> None:
    """verify_lu (check only, entries gathered across records) and decode_lu agree."""
    host = make_host((4, 15), n_hvm=1, mem_mib=4, dom0_mem_mib=4, fragmentation=1.0, seed=2)
    dom = host.domains[1]
    p2m = dom.p2m.copy()
    i = len(p2m) // 2
    p2m["p2m_type"][i] = 1
    p2m["mfn"][i] = 0x1234
    recs = [r for r in dom.records if r.type != T.LU_P2M]
    recs.insert(1, Record(T.LU_P2M, Bulk(p2m)))
    host.domains[1] = LUDomain(recs)
    data = encode_lu(host, max_record_bytes=max_record_bytes)
    a = _error(verify_lu, data)
    b = _error(decode_lu, data)
    k = 0 if max_record_bytes == 40 else i
    assert a == b == ("RecordError", f"entries[{k}].mfn", "p2m type has no frame", *a[3:])
    assert a[3:] == ("INVALID_MFN", 0x1234)


# --- 3. one verdict lambda, two kinds of operands -------------------------------------

_RULED = sorted(
    {cls.LAYOUT for spec in LU for cls in spec.layouts if cls.LAYOUT.record_rules} | {Toy.LAYOUT},
    key=lambda lay: lay.name,
)
_TRICKY = [0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 23, 24, 0x7F, 0x80, 0xFE, 0xFF]


@settings(max_examples=200, deadline=None)
@given(
    lay=st.sampled_from(_RULED),
    data=st.data(),
    n=st.integers(2, 12),
)
def test_record_rules_give_the_same_verdict_on_rows_and_columns(
    lay: Any, data: st.DataObject, n: int
) -> None:
    """Each record rule's one lambda judges Python ints and numpy columns alike."""
    raw = bytes(
        data.draw(st.lists(st.sampled_from(_TRICKY), min_size=n * lay.size, max_size=n * lay.size))
    )
    arr = np.frombuffer(raw, dtype=lay.dtype)
    rows = [tuple(r) for r in lay.struct.iter_unpack(raw)]
    for rule in lay.record_rules:
        if rule.field not in lay.names:
            continue
        if rule.pairwise:
            cols = rule.bad(Columns(arr[1:], Columns(arr[:-1])))
            one = [
                bool(rule.bad(Row(lay.names, t, Row(lay.names, p))))
                for p, t in itertools.pairwise(rows)
            ]
        else:
            cols = rule.bad(Columns(arr))
            one = [bool(rule.bad(Row(lay.names, t))) for t in rows]
        assert np.asarray(cols).tolist() == one, rule.message


@pytest.mark.parametrize("gfn", [0, 5, 2**64 - 1])
def test_empty_p2m_extent_wraps_nothing_on_rows_and_columns(gfn: int) -> None:
    """nr_pages 0 is refused by its field rule, never as a wrap: u32 ``0 - 1``
    wraps in numpy but not in Python, and the two paths must agree (found by
    the property test above)."""
    from xenlu.lu.memory_records import P2mEntry

    lay = P2mEntry.LAYOUT
    arr = np.zeros(1, lay.dtype)
    arr["gfn"], arr["nr_pages"] = gfn, 0
    (rule,) = [r for r in lay.record_rules if r.message == "gfn range wraps"]
    row = lay.struct.unpack(arr.tobytes())
    assert np.asarray(rule.bad(Columns(arr))).tolist() == [False]
    assert not rule.bad(Row(lay.names, row))
