"""verify_lu: the check-only path gives decode_lu's verdict, error for error.

``_verify_fast`` may only say "valid" for a stream decode_lu accepts; when it
is not sure, verify_lu hands the stream to decode_lu for the exact error.
These tests hold it to the stronger property the fast path is built for:
its verdict equals decode_lu's on valid and invalid streams alike.
"""

from __future__ import annotations

import functools
import itertools
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xenlu
from tests.vectors.lu_vectors import GOLDEN, INVALID, SEMANTIC_ONLY, LUVector
from xenlu.core.epochs import EPOCHS
from xenlu.core.errors import DecodeError
from xenlu.core.framing import crc32c, frames
from xenlu.core.registry import Record, UnknownRecord
from xenlu.lu.check import _verify_fast
from xenlu.lu.records import Bulk, T
from xenlu.lu.stream import (
    LUDomain,
    decode_lu,
    encode_lu,
    scan_lu,
    verify_lu,
)
from xenlu.testing.hostgen import make_host


def _outcome(fn: Any, data: bytes) -> tuple[Any, ...] | None:
    try:
        fn(data)
    except DecodeError as e:
        return (type(e).__name__, e.offset, e.record_index, e.record_type, e.field, str(e))
    return None


def _reseal(data: bytes) -> bytes:
    """``data`` with every section's crc32c recomputed, so that an edit reaches
    the checks behind the checksum (framing permitting)."""
    buf = bytearray(data)
    try:
        sections = scan_lu(bytes(buf))
    except DecodeError:
        return data
    for sec in sections:
        if sec.end + 16 <= len(buf):
            struct.pack_into("<I", buf, sec.end + 12, crc32c(bytes(buf[sec.start : sec.end])))
    return bytes(buf)


def _ids(vs: list[LUVector]) -> list[str]:
    return [v.name for v in vs]


@pytest.mark.parametrize("vec", INVALID, ids=_ids(INVALID))
def test_invalid_vectors_same_error(vec: LUVector) -> None:
    want = _outcome(decode_lu, vec.data)
    assert want is not None
    assert not _verify_fast(memoryview(vec.data), True)
    assert _outcome(verify_lu, vec.data) == want


@pytest.mark.parametrize("vec", GOLDEN + SEMANTIC_ONLY, ids=_ids(GOLDEN + SEMANTIC_ONLY))
def test_valid_vectors_pass_the_fast_path(vec: LUVector) -> None:
    assert _verify_fast(memoryview(vec.data), True)
    verify_lu(vec.data)


@functools.cache
def _host_bytes(epoch: tuple[int, int], max_record_bytes: int) -> bytes:
    host = make_host(epoch, n_hvm=2, mem_mib=4, dom0_mem_mib=4, fragmentation=0.6, seed=11)
    return encode_lu(host, max_record_bytes=max_record_bytes)


@pytest.mark.parametrize("epoch", EPOCHS)
@pytest.mark.parametrize("max_record_bytes", [40, 64, 200, 4096, 1 << 27])
def test_hosts_of_every_epoch_and_split_pass_the_fast_path(
    epoch: tuple[int, int], max_record_bytes: int
) -> None:
    data = _host_bytes(epoch, max_record_bytes)
    assert _verify_fast(memoryview(data), True)
    assert xenlu.verify(data) == "lu"


@pytest.mark.parametrize(
    "cuts",
    [
        (0, 0, 1, 4, 5, 100),  # counts 0, 1, 3, 1, 95 (checked alone), rest
        (0, 0, 2, 3, 100),  # counts 0, 2, 1: as many entries as records
    ],
)
def test_empty_and_mixed_count_bulk_records(cuts: tuple[int, ...]) -> None:
    """Count-0 records (amendment A2), one-entry, few-entry and large records
    of one type in one section: every gather shape, and a bad second entry of
    the first multi-entry record is found."""
    host = make_host((4, 15), n_hvm=1, mem_mib=4, dom0_mem_mib=4, fragmentation=1.0, seed=2)
    dom = host.domains[1]
    p2m = dom.p2m
    parts = [p2m[a:b] for a, b in itertools.pairwise(cuts)] + [p2m[cuts[-1] :]]
    recs: list[Record] = []
    for r in dom.records:
        if r.type == T.LU_P2M:
            if not any(x.type == T.LU_P2M for x in recs):
                recs.extend(Record(T.LU_P2M, Bulk(part)) for part in parts)
        else:
            recs.append(r)
    host.domains[1] = LUDomain(recs)
    data = encode_lu(host)
    n_p2m = sum(1 for _, _, t, _ in frames(memoryview(data), 0, len(data), 0) if t == T.LU_P2M)
    assert n_p2m == len(parts)
    assert _verify_fast(memoryview(data), True)
    multi = next(part for part in parts if len(part) > 1)
    at = data.find(multi.tobytes()) + 24 + 22  # entries[1].rsvd
    bad = _reseal(data[:at] + b"\x01" + data[at + 1 :])
    assert not _verify_fast(memoryview(bad), True)
    assert _outcome(verify_lu, bad) == _outcome(decode_lu, bad) is not None


_SMALL = _host_bytes((4, 13), 40)


@settings(max_examples=400, deadline=None)
@given(
    data=st.sampled_from([_SMALL, _host_bytes((4, 19), 64), _host_bytes((4, 21), 1 << 27)]),
    edits=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from([0, 1, 2, 7, 8, 0x40, 0xFF])),
        min_size=1,
        max_size=3,
    ),
    cut=st.one_of(st.none(), st.floats(0, 1)),
    reseal=st.booleans(),
)
def test_mutated_streams_same_verdict_and_error(
    data: bytes, edits: list[tuple[float, int]], cut: float | None, reseal: bool
) -> None:
    buf = bytearray(data)
    for where, value in edits:
        buf[int(where * len(buf))] = value
    mutated = _reseal(bytes(buf)) if reseal else bytes(buf)
    if cut is not None:
        mutated = mutated[: int(cut * len(mutated))]
    want = _outcome(decode_lu, mutated)
    assert _verify_fast(memoryview(mutated), True) == (want is None)
    assert _outcome(verify_lu, mutated) == want


def test_header_edits_of_every_small_record() -> None:
    """Each record's count header made wrong, one at a time, in a small-record
    stream: the hot loop never accepts it."""
    mv = memoryview(_SMALL)
    heads = [off for _, off, t, _ in frames(mv, 0, len(mv), 0) if t == T.LU_P2M]
    for off in heads[:: max(1, len(heads) // 50)]:
        (count,) = struct.unpack_from("<I", _SMALL, off + 8)
        for patch in (struct.pack("<I", count + 1), struct.pack("<I", 1) + b"\0\0\0\1"):
            bad = _reseal(_SMALL[: off + 8] + patch + _SMALL[off + 8 + len(patch) :])
            assert not _verify_fast(memoryview(bad), True)
            assert _outcome(verify_lu, bad) == _outcome(decode_lu, bad)


def test_non_strict_unknown_mandatory_record() -> None:
    host = make_host((4, 11), n_hvm=1, mem_mib=4, dom0_mem_mib=4, seed=1)
    odd = Record(0x4000_0777, UnknownRecord(0x4000_0777, b"x"))
    host.domains[1] = LUDomain([*host.domains[1].records, odd])
    data = encode_lu(host)
    assert not _verify_fast(memoryview(data), True)
    assert _outcome(verify_lu, data) == _outcome(decode_lu, data) is not None
    assert _verify_fast(memoryview(data), False)
    verify_lu(data, strict=False)


def test_verify_of_a_mapped_file(tmp_path: Any) -> None:
    data = _host_bytes((4, 17), 1 << 27)
    path = tmp_path / "host.lu"
    path.write_bytes(data)
    verify_lu(path)
    assert xenlu.verify(path, "lu") == "lu"
    bad = data[:-20] + bytes([data[-20] ^ 1]) + data[-19:]  # last section's crc32c
    path.write_bytes(bad)
    assert _outcome(verify_lu, path) == _outcome(decode_lu, bad) is not None


def test_pending_records_are_checked_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a batch every 4 records, the verdicts stay the same (bounded memory)."""
    import xenlu.lu.check as lu_check

    monkeypatch.setattr(lu_check, "_FLUSH_MASK", 3)
    assert _verify_fast(memoryview(_SMALL), True)
    mv = memoryview(_SMALL)
    heads = [off for _, off, t, _ in frames(mv, 0, len(mv), 0) if t == T.LU_P2M]
    for off in heads[1:40:7]:
        bad = _reseal(_SMALL[: off + 16 + 22] + b"\x01" + _SMALL[off + 16 + 23 :])  # rsvd
        assert not _verify_fast(memoryview(bad), True)
        assert _outcome(verify_lu, bad) == _outcome(decode_lu, bad) is not None


@pytest.mark.parametrize("threads", [0, 2])
def test_large_records_and_checksums_with_and_without_an_executor(threads: int) -> None:
    """Large records and section checksums are checked inline, or on the
    executor the caller passes; the verdicts and errors are the same."""
    from concurrent.futures import ThreadPoolExecutor

    data = _host_bytes((4, 21), 1 << 27)
    mv = memoryview(data)
    big = [off for _, off, t, n in frames(mv, 0, len(mv), 0) if t == T.LU_P2M and n > 8 + 64 * 24]
    assert big
    at = big[0] + 16 + 5 * 24 + 22  # entries[5].rsvd of a large record
    bad = _reseal(data[:at] + b"\x01" + data[at + 1 :])
    crc = data[:-20] + bytes([data[-20] ^ 1]) + data[-19:]  # last section's crc32c
    with ThreadPoolExecutor(threads) if threads else _no_pool() as pool:
        assert _verify_fast(memoryview(data), True, pool)
        verify_lu(data, executor=pool)
        assert not _verify_fast(memoryview(bad), True, pool)
        assert _outcome(functools.partial(verify_lu, executor=pool), bad) == _outcome(
            decode_lu, bad
        )
        assert not _verify_fast(memoryview(crc), True, pool)
        got = _outcome(functools.partial(verify_lu, executor=pool), crc)
        assert got == _outcome(decode_lu, crc)
        assert "crc32c" in str(got)


class _no_pool:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_verify_in_a_forked_child() -> None:
    """xenlu keeps no worker pool of its own: a forked child verifies (no hang)."""
    import os
    import signal

    data = _host_bytes((4, 21), 1 << 27)
    verify_lu(data)
    pid = os.fork()
    if pid == 0:  # child: a hang here would be the old pool bug
        signal.alarm(20)
        code = 0
        try:
            verify_lu(data)
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_decode_with_an_executor_gives_the_same_stream_and_errors() -> None:
    """decode_lu(executor=...) walks the domain sections ahead on the executor:
    the same stream, and on every invalid input the same first error."""
    from concurrent.futures import ThreadPoolExecutor

    data = _host_bytes((4, 21), 1 << 27)
    mv = memoryview(data)
    heads = [off for _, off, t, _ in frames(mv, 0, len(mv), 0) if t == T.LU_P2M]
    bad_entry = _reseal(data[: heads[0] + 16 + 22] + b"\x01" + data[heads[0] + 16 + 23 :])
    bad_crc = data[:-20] + bytes([data[-20] ^ 1]) + data[-19:]
    cases = [data, bad_entry, bad_crc, data[:-9], *(v.data for v in INVALID)]
    with ThreadPoolExecutor(2) as pool:
        with_pool = functools.partial(decode_lu, executor=pool)
        assert with_pool(data) == decode_lu(data)
        for case in cases:
            assert _outcome(with_pool, case) == _outcome(decode_lu, case)


@settings(max_examples=200, deadline=None)
@given(a=st.binary(max_size=300), b=st.binary(max_size=300), zeros=st.integers(0, 5000))
def test_crc32c_combine_is_the_crc_of_the_concatenation(a: bytes, b: bytes, zeros: int) -> None:
    """The pieces of a section checked on several threads give its crc32c."""
    from xenlu.lu.check import crc32c_combine

    b = b + bytes(zeros)
    assert crc32c_combine(crc32c(a), crc32c(b), len(b)) == crc32c(a + b)


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("step_bytes", [64, 1000, 1 << 18])
def test_large_records_checked_with_the_crc_in_steps(
    monkeypatch: pytest.MonkeyPatch, threads: int, step_bytes: int
) -> None:
    """The large records' entries go through the crc32c step by step (steps
    of a few entries, steps that end mid-entry are rounded to whole entries,
    one step): a valid stream passes the one walk, and an entry edit in any
    step of a large record gives decode_lu's error."""
    from concurrent.futures import ThreadPoolExecutor

    import xenlu.core.rules as rules_mod

    monkeypatch.setattr(rules_mod, "CLEAN_BYTES", step_bytes)
    data = _host_bytes((4, 21), 1 << 27)
    mv = memoryview(data)
    big = [
        (off, n) for _, off, t, n in frames(mv, 0, len(mv), 0) if t == T.LU_P2M and n > 8 + 64 * 24
    ]
    assert big
    with ThreadPoolExecutor(threads) if threads else _no_pool() as pool:
        assert _verify_fast(mv, True, pool)
        for off, n in big[:2]:
            count = (n - 8) // 24
            for entry in (0, 3, count // 2, count - 1):
                at = off + 16 + entry * 24 + 22  # entries[entry].rsvd
                bad = _reseal(data[:at] + b"\x01" + data[at + 1 :])
                assert not _verify_fast(memoryview(bad), True, pool)
                got = _outcome(functools.partial(verify_lu, executor=pool), bad)
                assert got == _outcome(decode_lu, bad) is not None


_POOL: list[Any] = []


@settings(max_examples=150, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from([0, 1, 2, 7, 8, 0x40, 0xFF])),
        min_size=1,
        max_size=3,
    ),
    cut=st.one_of(st.none(), st.floats(0, 1)),
    reseal=st.booleans(),
)
def test_mutated_streams_same_verdict_and_error_on_an_executor(
    edits: list[tuple[float, int]], cut: float | None, reseal: bool
) -> None:
    """Large records and crc32c pieces on two threads: the same verdicts and
    errors as decode_lu, whatever the edits (a bad entry before a framing
    error of the same section included)."""
    from concurrent.futures import ThreadPoolExecutor

    if not _POOL:
        _POOL.append(ThreadPoolExecutor(2))
    pool = _POOL[0]
    buf = bytearray(_host_bytes((4, 21), 1 << 27))
    for where, value in edits:
        buf[int(where * len(buf))] = value
    mutated = _reseal(bytes(buf)) if reseal else bytes(buf)
    if cut is not None:
        mutated = mutated[: int(cut * len(mutated))]
    want = _outcome(decode_lu, mutated)
    assert _verify_fast(memoryview(mutated), True, pool) == (want is None)
    assert _outcome(functools.partial(verify_lu, executor=pool), mutated) == want


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("closing", ["domid", "section_bytes"])
def test_bad_large_record_before_a_bad_section_end(threads: int, closing: str) -> None:
    """Large records wait for their section's end to be checked with its
    crc32c; when that end is itself wrong, the earlier bad entry is still
    the first error (as decode_lu reports it)."""
    from concurrent.futures import ThreadPoolExecutor

    data = _host_bytes((4, 21), 1 << 27)
    mv = memoryview(data)
    off = next(o for _, o, t, n in frames(mv, 0, len(mv), 0) if t == T.LU_P2M and n > 8 + 64 * 24)
    at = off + 16 + 7 * 24 + 22  # entries[7].rsvd
    buf = bytearray(_reseal(data[:at] + b"\x01" + data[at + 1 :]))
    sec = next(s for s in scan_lu(bytes(buf)) if s.start <= off < s.end)
    buf[sec.end + (8 if closing == "domid" else 16)] ^= 1
    bad = bytes(buf)
    want = _outcome(decode_lu, bad)
    assert want is not None and want[0] == "RecordError"
    with ThreadPoolExecutor(threads) if threads else _no_pool() as pool:
        assert not _verify_fast(memoryview(bad), True, pool)
        assert _outcome(functools.partial(verify_lu, executor=pool), bad) == want


@pytest.mark.parametrize("free_core", [True, False])
def test_split_and_fused_sections_on_an_executor(
    monkeypatch: pytest.MonkeyPatch, free_core: bool
) -> None:
    """With an executor a section is checked split (its crc32c a job, its large
    records here) while a core is free, else in the fused pass, retried every
    _SPLIT_PROBE sections: both modes, and the switch between them, give
    decode_lu's verdict and first error."""
    from concurrent.futures import ThreadPoolExecutor

    import xenlu.lu.check as lu_check

    monkeypatch.setattr(lu_check, "_CRC_THREAD_MIN_BYTES", 0)
    monkeypatch.setattr(lu_check, "_SPLIT_PROBE", 2)
    monkeypatch.setattr(lu_check, "_core_was_free", lambda *_a: free_core)
    data = _host_bytes((4, 21), 1 << 27)
    mv = memoryview(data)
    big = [off for _, off, t, n in frames(mv, 0, len(mv), 0) if t == T.LU_P2M and n > 8 + 64 * 24]
    assert len(big) >= 2
    cases = [
        _reseal(data[: off + 16 + 5 * 24 + 22] + b"\x01" + data[off + 16 + 5 * 24 + 23 :])
        for off in big
    ]
    cases += [data[:-20] + bytes([data[-20] ^ 1]) + data[-19:], data[:-9]]
    seen: list[bool] = []
    split = lu_check.Check.defer_crc

    def defer_crc(self: Any, start: int, stop: int, want: int) -> bool:
        seen.append(self.fused_run == 0)
        return split(self, start, stop, want)

    monkeypatch.setattr(lu_check.Check, "defer_crc", defer_crc)
    with ThreadPoolExecutor(2) as pool:
        assert _verify_fast(mv, True, pool)
        assert all(seen) if free_core else (True in seen and False in seen)
        for bad in cases:
            got = _outcome(functools.partial(verify_lu, executor=pool), bad)
            assert got == _outcome(decode_lu, bad) is not None
