"""The grammar tables are the single source of both walks, decode and check-only.

Every case here is generated from the tables themselves
(:data:`xenlu.lu.grammar.GLOBAL`, :data:`xenlu.lu.grammar.DOMAIN`,
:data:`xenlu.migration.libxc_grammar.TABLES`): for each record type a table names, a
valid stream is edited so that the type comes once more (first, last), once
fewer, or again; decode and the check-only verify must then agree, error
for error, and — for LU — with what the table itself predicts. A second
group holds the rule that an invalid stream is walked at most twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from tests.vectors.libxc_vectors import VECTORS
from tests.vectors.lu_vectors import INVALID, LUVector
from xenlu.core.errors import DecodeError, GrammarError
from xenlu.core.registry import Record, UnknownRecord
from xenlu.lu.check import _verify_fast
from xenlu.lu.grammar import DOMAIN, GLOBAL, HVM, PV, SectionGrammar, name_of
from xenlu.lu.model import GlobalSection, LUDomain, LUStream, Section
from xenlu.lu.records import T
from xenlu.lu.stream import decode_lu, encode_lu, verify_lu
from xenlu.lu.walk import Walker
from xenlu.migration import libxc_stream
from xenlu.migration.libxc import DirtyPfnList, RecType
from xenlu.migration.libxc_grammar import TABLES
from xenlu.migration.libxc_stream import LibxcStream, decode_libxc, libxc_bytes, verify_libxc
from xenlu.testing.hostgen import make_host


def _outcome(fn: Callable[[bytes], Any], data: bytes) -> tuple[Any, ...] | None:
    """The error ``fn`` raises on ``data``: class, offset, index, type, field, message."""
    try:
        fn(data)
    except DecodeError as e:
        return (type(e).__name__, e.offset, e.record_index, e.record_type, e.field, str(e))
    return None


# --- LU: (section kind, variant, record type, edit) from the tables -----------------

_EDITS = ("first", "last", "again", "drop")


def _host() -> LUStream:
    return make_host((4, 19), n_hvm=1, mem_mib=2, dom0_mem_mib=2, seed=3)


@functools.cache
def _donors() -> dict[int, Any]:
    """A value of every record type the tables name, from a generated host."""
    out: dict[int, Any] = {}
    host = _host()
    for sec in host.sections:
        for r in sec.records:
            out.setdefault(r.type, r.value)
    # The host has no MSR list for its PV vCPUs: an empty one for vCPU 0.
    msrs = 0x0C
    basic = out[0x04]
    out.setdefault(msrs, dataclasses.replace(basic, context=b""))
    return out


def _fresh(g: SectionGrammar, t: int, value: Any) -> Any:
    """The donor as a record that may join a section: a new vCPU id for per-vCPU types."""
    if t in g.per_vcpu:
        return dataclasses.replace(value, vcpu_id=7)
    return value


def _key(g: SectionGrammar, r: Record) -> Any:
    return int(r.value.vcpu_id) if r.type in g.per_vcpu else None


def _table_refuses(g: SectionGrammar, variant: int, seq: list[tuple[int, Any]]) -> bool:
    """What the table says of a section whose records after the first are ``seq``."""
    counts: dict[int, int] = {}
    ids: set[tuple[int, Any]] = set()
    for t, key in seq:
        card = g.counts.get(t)
        if card is None:
            return True
        hi = card[variant][1]
        n = counts.get(t, 0) + 1
        if hi is not None and n > hi:
            return True
        first = g.after.get(t)
        if first is not None and not counts.get(first):
            return True
        if t in g.per_vcpu:
            if (t, key) in ids:
                return True
            ids.add((t, key))
        counts[t] = n
    return any(counts.get(t, 0) < per[variant][0] for t, per in g.counts.items())


def _cases() -> Iterator[tuple[str, int, int, str]]:
    for t in GLOBAL.counts:
        for edit in _EDITS:
            yield "global", 0, t, edit
    for variant in (PV, HVM):
        for t in DOMAIN.counts:
            for edit in _EDITS:
                yield "domain", variant, t, edit


def _edited(kind: str, variant: int, t: int, edit: str) -> tuple[bytes, bool] | None:
    """The host with one section edited, and whether the table refuses it
    (None when the edit changes nothing, e.g. "again" of an absent type)."""
    host = _host()
    g = GLOBAL if kind == "global" else DOMAIN
    sec: Section
    at = 0
    if kind == "global":
        sec = host.global_section
    else:
        at = next(i for i, d in enumerate(host.domains) if int(d.info.domain_type) == variant)
        sec = host.domains[at]
    recs = list(sec.records)
    donor = Record(t, _fresh(g, t, _donors()[t]))
    if edit == "first":
        recs.insert(1, donor)
    elif edit == "last":
        recs.append(donor)
    elif edit == "again":
        same = [r for r in recs if r.type == t]
        if not same:
            return None
        recs.append(Record(t, same[0].value))
    else:
        if not any(r.type == t for r in recs):
            return None
        recs = [r for r in recs if r.type != t]
    if kind == "global":
        host.global_section = GlobalSection(recs)
    else:
        host.domains[at] = LUDomain(recs)
    seq = [(r.type, _key(g, r)) for r in recs[1:]]
    return encode_lu(host), _table_refuses(g, variant, seq)


def _case_id(case: tuple[str, int, int, str]) -> str:
    kind, variant, t, edit = case
    where = kind if kind == "global" else ("pv" if variant == PV else "hvm")
    return f"{where}-{name_of(t)}-{edit}"


_CASES = list(_cases())


@pytest.mark.parametrize("case", _CASES, ids=[_case_id(c) for c in _CASES])
def test_every_table_entry_is_read_alike_by_decode_and_verify(
    case: tuple[str, int, int, str],
) -> None:
    edited = _edited(*case)
    if edited is None:
        return  # nothing to drop or repeat: the table entry is covered by its other edits
    data, refused = edited
    want = _outcome(decode_lu, data)
    assert _outcome(verify_lu, data) == want
    assert _verify_fast(memoryview(data), True) == (want is None)
    assert (want is not None and want[0] == GrammarError.__name__) == refused, want
    if refused:
        assert want is not None
        g = GLOBAL if case[0] == "global" else DOMAIN
        dependents = (u for u, first in g.after.items() if first == case[2])
        assert want[3] in (case[2], T.LU_SECTION_END, *dependents), want


def test_the_cases_cover_every_table_entry() -> None:
    covered = {(k, v, t) for k, v, t, e in _CASES if _edited(k, v, t, e) is not None}
    want = {("global", 0, t) for t in GLOBAL.counts}
    want |= {("domain", v, t) for v in (PV, HVM) for t in DOMAIN.counts}
    assert covered == want


# --- libxc: every table type inserted and dropped --------------------------------


@functools.cache
def _libxc_bases() -> list[LibxcStream]:
    valid = [v for v in VECTORS if v.format == "libxc" and v.error is None]
    out: list[LibxcStream] = []
    seen: set[tuple[int, int]] = set()
    for v in valid:
        s = decode_libxc(v.data)[0]
        key = (s.version, s.domain.type)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


@functools.cache
def _libxc_donors() -> dict[int, Record]:
    out: dict[int, Record] = {}
    for v in VECTORS:
        if v.format == "libxc" and v.error is None:
            for r in decode_libxc(v.data)[0].records:
                out.setdefault(r.type, Record(r.type, r.value))
    # No valid stream holds the COLO back-channel record (refused in every
    # forward stream, issue 13): a well-formed one from its own codec.
    dirty = RecType.CHECKPOINT_DIRTY_PFN_LIST
    out.setdefault(dirty, Record(dirty, DirtyPfnList(np.array([0x100], dtype="<u8"))))
    return out


def _libxc_cases() -> Iterator[tuple[int, int, int]]:
    types = sorted(set().union(*TABLES.values()))
    for version, dtype in sorted({(s.version, s.domain.type) for s in _libxc_bases()}):
        for t in types:
            yield version, dtype, t


def test_libxc_bases_cover_both_versions_and_domain_types() -> None:
    assert {(s.version, s.domain.type) for s in _libxc_bases()} == {
        (2, 1),
        (2, 2),
        (3, 1),
        (3, 2),
    }
    assert set().union(*TABLES.values()) <= set(_libxc_donors())


@pytest.mark.parametrize("case", list(_libxc_cases()), ids=lambda c: f"v{c[0]}-{c[1]}-{c[2]:#x}")
def test_every_libxc_table_type_is_read_alike_by_decode_and_verify(
    case: tuple[int, int, int],
) -> None:
    version, dtype, t = case
    base = next(s for s in _libxc_bases() if (s.version, s.domain.type) == (version, dtype))
    donor = _libxc_donors()[t]
    recs = base.records
    variants = [
        [donor, *recs],
        [*recs[: len(recs) // 2], donor, *recs[len(recs) // 2 :]],
        [*recs[:-1], donor, recs[-1]],
        [r for r in recs if r.type != t],
    ]
    for records in variants:
        data = libxc_bytes(LibxcStream(base.header, base.domain, list(records)))
        assert _outcome(verify_libxc, data) == _outcome(decode_libxc, data)


# --- at most two walks ------------------------------------------------------------


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Handler class name -> LU walks started (``Walker.stream`` calls)."""
    counts: dict[str, int] = {}
    stream = Walker.stream

    def counting(self: Walker, *a: Any, **kw: Any) -> Any:
        name = type(self.h).__name__
        counts[name] = counts.get(name, 0) + 1
        return stream(self, *a, **kw)

    monkeypatch.setattr(Walker, "stream", counting)
    return counts


@pytest.mark.parametrize("vec", INVALID, ids=[v.name for v in INVALID])
def test_an_invalid_lu_stream_is_walked_at_most_twice(vec: LUVector, walks: dict[str, int]) -> None:
    exact = _raised(decode_lu, vec.data)
    walks.clear()
    with pytest.raises(DecodeError):
        verify_lu(vec.data)
    assert walks.get("Check") == 1
    assert sum(walks.values()) <= 2
    if type(exact) is GrammarError:
        # The check-only walk reads grammar through the same tables, so it
        # raises a grammar error itself.
        assert walks == {"Check": 1}


def _raised(fn: Callable[[bytes], Any], data: bytes) -> BaseException | None:
    try:
        fn(data)
    except DecodeError as e:
        return e
    return None


def test_a_bad_gathered_entry_takes_the_second_walk(walks: dict[str, int]) -> None:
    """A bad entry in a small bulk record is found by the gathered check,
    which is not sure where: the exact walk locates it (two walks)."""
    host = make_host((4, 15), n_hvm=1, mem_mib=2, dom0_mem_mib=2, seed=5)
    data = bytearray(encode_lu(host, max_record_bytes=40))
    mv = memoryview(bytes(data))
    from xenlu.core.framing import crc32c, frames
    from xenlu.lu.records import T
    from xenlu.lu.stream import scan_lu

    off = next(o for _, o, t, _ in frames(mv, 0, len(mv), 0) if t == T.LU_P2M)
    data[off + 16 + 22] = 1  # entries[0].rsvd
    for sec in scan_lu(bytes(data)):
        crc = crc32c(bytes(data[sec.start : sec.end]))
        data[sec.end + 12 : sec.end + 16] = crc.to_bytes(4, "little")
    bad = bytes(data)
    with pytest.raises(DecodeError) as exc:
        verify_lu(bad)
    assert walks == {"Check": 1, "Build": 1}
    assert _outcome(verify_lu, bad) == _outcome(decode_lu, bad)
    assert exc.value.field is not None and "rsvd" in exc.value.field


def test_a_valid_lu_stream_is_walked_once(walks: dict[str, int]) -> None:
    verify_lu(encode_lu(_host(), max_record_bytes=64))
    assert walks == {"Check": 1}


def test_libxc_verify_is_one_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """libxc's check-only walk raises the exact error itself: one walk, valid or not."""
    calls: list[str] = []
    walk = libxc_stream._walk

    def counting(*a: Any) -> Any:
        calls.append(type(a[-1]).__name__)
        return walk(*a)

    monkeypatch.setattr(libxc_stream, "_walk", counting)
    for v in VECTORS:
        if v.format != "libxc":
            continue
        calls.clear()
        with contextlib.suppress(DecodeError):
            verify_libxc(v.data)
        assert calls in ([], ["Check"]), v.name  # [] : refused by the headers


def test_unknown_record_in_a_kept_section_is_unknown_not_grammar() -> None:
    """A type no table names passes the grammar (§3: its body decoder decides)."""
    host = _host()
    odd = Record(0x4000_0555, UnknownRecord(0x4000_0555, b"abc"))
    host.domains[0] = LUDomain([*host.domains[0].records, odd])
    data = encode_lu(host)
    want = _outcome(decode_lu, data)
    assert want is not None and want[0] == "UnknownRecordError"
    assert _outcome(verify_lu, data) == want
    verify_lu(data, strict=False)
