"""The incremental decoder (issue 18): the same verdict and the same error —
class, offset, record index, record type, field, message — as verifying the
whole stream, whatever the pieces the stream arrives in.

Over the fault corpora (LU vectors, libxc/libxl/xl vectors, Xen-written
streams, the golden LU streams), over xenlu.testing.strategies streams cut at random points, with
and without single faults, and with a buffer so small that every bulk
record is checked in pieces; one byte at a time gives the same events as
the whole stream; verify_stream reads sockets and read()-only objects;
memory stays bounded on a stream far larger than the buffer.
"""

from __future__ import annotations

import io
import socket
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xenlu
from tests.vectors.libxc_vectors import ALL_VECTORS
from tests.vectors.lu_vectors import GOLDEN, INVALID, SEMANTIC_ONLY
from xenlu.api import sniff, verify
from xenlu.core.errors import CallerError, InputError, RecordError, XenLUError
from xenlu.core.registry import Record
from xenlu.feed.decoder import (
    NEED_DATA,
    Decoder,
    RecordEvent,
    SectionEvent,
    StreamEnd,
    verify_stream,
)
from xenlu.lu.records import Bulk, P2mEntry, T
from xenlu.lu.stream import LUDomain, encode_lu
from xenlu.testing import strategies as S
from xenlu.testing.hostgen import make_host

ROOT = Path(__file__).resolve().parent.parent
Sig = tuple[str, Any, Any, Any, Any, str] | None


def sig(exc: XenLUError | None) -> Sig:
    if exc is None:
        return None
    return (
        type(exc).__name__,
        getattr(exc, "offset", None),
        getattr(exc, "record_index", None),
        getattr(exc, "record_type", None),
        getattr(exc, "field", None),
        str(exc),
    )


def whole(data: bytes, fmt: str) -> Sig:
    try:
        verify(data, fmt)
    except XenLUError as exc:
        return sig(exc)
    return None


def pieces(data: bytes, fmt: str, cuts: list[int], limit: int = 16 << 20) -> Sig:
    d = Decoder(fmt, limit=limit)
    try:
        at = 0
        for c in [*cuts, len(data)]:
            d.feed(data[at:c])
            at = c
        d.close()
    except XenLUError as exc:
        return sig(exc)
    return None


def _corpus() -> list[tuple[str, bytes, str]]:
    cases = [(v.name, v.data, "lu") for v in GOLDEN + INVALID + SEMANTIC_ONLY]
    cases += [(v.name, v.data, v.format) for v in ALL_VECTORS]
    for p in sorted((ROOT / "tests" / "golden").glob("4.*/*.bin")):
        cases.append((str(p.relative_to(ROOT)), p.read_bytes(), "lu"))
    for p in sorted((ROOT / "tests" / "vectors" / "xen-written").rglob("*")):
        data = p.read_bytes() if p.is_file() else b""
        fmt = sniff(data)
        if fmt is not None and fmt != "xenstore":
            cases.append((p.name, data, fmt))
    return cases


CORPUS = _corpus()


@pytest.mark.parametrize(("name", "data", "fmt"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_same_error_in_any_pieces(name: str, data: bytes, fmt: str) -> None:
    rng = np.random.default_rng(len(data))
    want = whole(data, fmt)
    assert whole(data, "auto") == pieces(data, "auto", [])
    splits = [[], sorted(rng.integers(0, len(data) + 1, 5).tolist())]
    if len(data) <= 4096:
        splits.append(list(range(1, len(data))))  # one byte at a time
    for cuts in splits:
        for limit in (16 << 20, 64):  # 64: every bulk record in pieces
            assert pieces(data, fmt, cuts, limit) == want, (name, limit, len(cuts))


@pytest.mark.parametrize(("name", "data", "fmt"), CORPUS[::7], ids=[c[0] for c in CORPUS[::7]])
def test_corpus_truncated_same_error(name: str, data: bytes, fmt: str) -> None:
    rng = np.random.default_rng(7)
    for cut in rng.integers(0, len(data) + 1, 6).tolist():
        assert pieces(data[:cut], fmt, [cut // 2], 64) == whole(data[:cut], fmt)


_CUTS = st.lists(st.integers(0, 1 << 20), max_size=6)


@settings(max_examples=40)
@given(S.streams(max_domains=3), _CUTS, st.sampled_from([64, 256, 16 << 20]))
def test_lu_streams_cut_anywhere(data: bytes, cuts: list[int], limit: int) -> None:
    cuts = sorted(c % (len(data) + 1) for c in cuts)
    assert pieces(data, "lu", cuts, limit) is None


@settings(max_examples=40)
@given(S.libxc_streams(), _CUTS)
def test_libxc_streams_cut_anywhere(data: bytes, cuts: list[int]) -> None:
    cuts = sorted(c % (len(data) + 1) for c in cuts)
    assert pieces(data, "libxc", cuts) is None


STRUCTURAL = [k for k in S.FAULT_KINDS if not S.FAULT_KINDS[k].startswith("*")]


@settings(max_examples=60)
@given(
    S.streams(max_domains=3).flatmap(lambda b: S.corruptions(b, kinds=STRUCTURAL)),
    _CUTS,
    st.sampled_from([64, 16 << 20]),
)
def test_lu_faults_same_error_through_pieces(c: S.Corruption, cuts: list[int], limit: int) -> None:
    cuts = sorted(x % (len(c.data) + 1) for x in cuts)
    got = pieces(c.data, "lu", cuts, limit)
    assert got == whole(c.data, "lu")
    assert got is not None and c.error is not None and got[0] == c.error.__name__


@settings(max_examples=40)
@given(S.libxc_streams().flatmap(lambda b: S.corruptions(b, kinds=STRUCTURAL)), _CUTS)
def test_libxc_faults_same_error_through_pieces(c: S.Corruption, cuts: list[int]) -> None:
    cuts = sorted(x % (len(c.data) + 1) for x in cuts)
    assert pieces(c.data, "libxc", cuts) == whole(c.data, "libxc")


@settings(max_examples=60, deadline=None)
@given(S.streams(max_domains=2), st.data())
def test_lu_any_flipped_bit_same_error(data: bytes, draw: Any) -> None:
    at = draw.draw(st.integers(0, len(data) * 8 - 1))
    bad = bytearray(data)
    bad[at >> 3] ^= 1 << (at & 7)
    cuts = sorted(c % (len(bad) + 1) for c in draw.draw(_CUTS))
    got, want = pieces(bytes(bad), "lu", cuts, 64), whole(bytes(bad), "lu")
    assert got == want, (at, cuts)


def _events(d: Decoder) -> list[Any]:
    out = []
    while (ev := d.next_event()) is not NEED_DATA:
        out.append(ev)
    return out


@settings(max_examples=15)
@given(S.streams(max_domains=2) | S.libxc_streams())
def test_one_byte_at_a_time_same_events(data: bytes) -> None:
    a = Decoder()
    a.feed(data)
    a.close()
    b = Decoder()
    got: list[Any] = []
    for i in range(len(data)):
        b.feed(data[i : i + 1])
        got += _events(b)
    b.close()
    got += _events(b)
    want = _events(a)
    assert got == want
    assert isinstance(want[-1], StreamEnd) and want[-1].size == len(data)


def test_lu_events_records_and_sections() -> None:
    host = make_host((4, 15), n_hvm=1, mem_mib=2, dom0_mem_mib=2)
    data = encode_lu(host)
    d = Decoder("lu")
    d.feed(data)
    d.close()
    evs = _events(d)
    recs = [e for e in evs if isinstance(e, RecordEvent)]
    secs = [e for e in evs if isinstance(e, SectionEvent)]
    first = recs[0]
    assert (first.index, first.offset, first.type, first.length) == (0, 0, T.LU_VERSION, 8)
    assert (first.value.xen_major, first.value.xen_minor) == (4, 15)
    doms = [r for r in recs if r.type == T.LU_DOMAIN]
    assert [r.value.domid for r in doms] == [dom.domid for dom in host.domains]
    p2m = [r for r in recs if r.type == T.LU_P2M]
    assert sum(r.entries or 0 for r in p2m) == sum(len(dom.p2m) for dom in host.domains)
    assert [r.index for r in recs] == list(range(len(recs)))
    assert recs[-1].type == 0 and recs[-1].offset + 8 == len(data)
    assert [s.domid for s in secs] == [0x7FF2, *[dom.domid for dom in host.domains]]
    assert sum(s.size for s in secs) + 8 == len(data)


def _big_p2m_stream(n: int, bad: dict[int, tuple[str, int]]) -> bytes:
    host = make_host((4, 11), n_hvm=1, mem_mib=2, dom0_mem_mib=2, seed=5)
    a = np.zeros(n, P2mEntry.LAYOUT.dtype)
    a["gfn"] = np.arange(n, dtype=np.uint64)
    a["mfn"] = a["gfn"] + np.uint64(0x100000)
    a["nr_pages"] = 1
    a["access"] = 7
    for i, (field, value) in bad.items():
        a[field][i] = value
    dom = host.domains[1]
    recs = [Record(r.type, Bulk(a)) if r.type == T.LU_P2M else r for r in dom.records]
    host.domains[1] = LUDomain(recs)
    return encode_lu(host)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {5000: ("p2m_type", 0xEE)},  # a layout rule, late in the record
        {100: ("nr_pages", 0), 5000: ("p2m_type", 0xEE)},  # a record rule first, a layout one later
        {100: ("p2m_type", 0xEE), 5000: ("p2m_type", 0xEF)},
        {3000: ("nr_pages", 0)},
    ],
)
def test_large_bulk_record_in_pieces(bad: dict[int, tuple[str, int]]) -> None:
    """A P2M record far larger than the buffer: checked in pieces, with the
    first error the whole record gets (layout rules before the record's others)."""
    data = _big_p2m_stream(8192, bad)
    want = whole(data, "lu")
    for limit, step in ((4096, 1000), (1024, 4096), (64, 7)):
        cuts = list(range(step, len(data), step))
        assert pieces(data, "lu", cuts, limit) == want, limit
    if bad:
        assert want is not None and want[0] == "RecordError"


def test_bounded_memory_on_a_stream_larger_than_the_buffer() -> None:
    data = _big_p2m_stream(1 << 18, {})  # a 6 MiB P2M record
    d = Decoder("lu", limit=256 << 10, events=False)
    tracemalloc.start()
    try:
        for at in range(0, len(data), 64 << 10):
            d.feed(data[at : at + (64 << 10)])
            assert d.buffered <= (256 << 10) + (64 << 10)
        d.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The stream is > 4 MiB; the decoder held a fraction of it at any time.
    assert len(data) > 4 << 20
    assert peak < 2 << 20


def test_verify_stream_over_a_socket_pair() -> None:
    data = encode_lu(make_host((4, 19), n_hvm=2, mem_mib=2, dom0_mem_mib=2))
    a, b = socket.socketpair()

    def send() -> None:
        with a:
            a.sendall(data)

    sender = threading.Thread(target=send)
    sender.start()
    with b.makefile("rb") as f:
        assert xenlu.verify_stream(f, chunk_size=4096) == "lu"
    sender.join()
    b.close()


def test_verify_stream_read_only_object_and_errors() -> None:
    data = bytearray(encode_lu(make_host((4, 11), n_hvm=1, mem_mib=2, dom0_mem_mib=2)))

    class ReadOnly:
        def __init__(self, b: bytes) -> None:
            self.f = io.BytesIO(b)

        def read(self, n: int) -> bytes:
            return self.f.read(min(n, 100))

    assert verify_stream(ReadOnly(bytes(data))) == "lu"
    data[200] ^= 0x10
    with pytest.raises(XenLUError) as exc:
        verify_stream(io.BytesIO(bytes(data)), chunk_size=7)
    assert sig(exc.value) == whole(bytes(data), "auto")

    class Broken(io.RawIOBase):
        def readinto(self, b: Any) -> int:
            raise OSError(5, "Input/output error")

    with pytest.raises(InputError) as ioerr:
        verify_stream(Broken())
    assert ioerr.value.errno == 5
    with pytest.raises(CallerError):
        verify_stream(io.BytesIO(b""), chunk_size=0)
    with pytest.raises(CallerError):
        Decoder("nope")


def test_decoder_after_error_and_close() -> None:
    d = Decoder("libxc")
    with pytest.raises(XenLUError) as first:
        d.feed(b"\x00" * 40)
    with pytest.raises(XenLUError) as again:
        d.feed(b"\x00")
    assert again.value is first.value
    ok = Decoder("lu")
    ok.feed(encode_lu(make_host((4, 11), n_hvm=0, dom0_mem_mib=2)))
    assert ok.close().format == "lu"
    assert ok.done
    with pytest.raises(CallerError):
        ok.feed(b"x")


def _xs_corpus() -> list[tuple[str, bytes]]:
    """The xenstored golden streams, each truncated and with every octet changed."""
    cases = []
    for p in sorted((ROOT / "tests/golden/xenstore").glob("*.xs")):
        data = p.read_bytes()
        cases.append((p.name, data))
        cases += [(f"{p.name}[:{n}]", data[:n]) for n in range(0, len(data), 5)]
        for at in range(len(data)):
            for x in (0x01, 0x80, 0xFF):
                bad = bytearray(data)
                bad[at] ^= x
                cases.append((f"{p.name}^{at}:{x}", bytes(bad)))
        cases.append((f"{p.name}+tail", data + bytes(9)))
    return cases


def test_xenstore_streams_same_error_in_any_pieces() -> None:
    """xenstored streams read record by record (xenlu.feed.xenstore): the
    mapped reader's error for every truncation and changed octet of the
    golden streams, in one piece, in random pieces and one byte at a time."""
    cases = _xs_corpus()
    assert len(cases) > 1000
    rng = np.random.default_rng(18)
    for i, (name, data) in enumerate(cases):
        want = whole(data, "xenstore")
        assert pieces(data, "xenstore", []) == want, name
        assert pieces(data, "auto", []) == whole(data, "auto"), name
        cuts = sorted(rng.integers(0, len(data) + 1, 4).tolist())
        assert pieces(data, "xenstore", cuts) == want, name
        if i % 17 == 0:
            assert pieces(data, "xenstore", list(range(1, len(data)))) == want, name


@settings(max_examples=40, deadline=None)
@given(S.xenstore_streams(), _CUTS)
def test_xenstore_streams_cut_anywhere(data: bytes, cuts: list[int]) -> None:
    assert pieces(data, "xenstore", sorted(c % (len(data) + 1) for c in cuts)) is None


@settings(max_examples=60, deadline=None)
@given(S.xenstore_streams().flatmap(lambda b: st.tuples(st.just(b), st.data())))
def test_xenstore_faults_same_error_through_pieces(case: tuple[bytes, Any]) -> None:
    data, draw = case
    stream = xenlu.decode(data, "xenstore")
    c = draw.draw(S.xenstore_corruptions(stream))
    cuts = draw.draw(_CUTS)
    bad = bytes(c.data)
    cuts = sorted(x % (len(bad) + 1) for x in cuts)
    assert pieces(bad, "xenstore", cuts) == whole(bad, "xenstore")


def test_xenstore_events_one_byte_at_a_time() -> None:
    """One event per record, END included, the same fed whole or byte by byte."""
    for p in sorted((ROOT / "tests/golden/xenstore").glob("*.xs")):
        data = p.read_bytes()
        try:
            n = len(xenlu.decode(data, "xenstore").records) + 1
        except XenLUError:
            continue
        whole_d, byte_d = Decoder("xenstore"), Decoder("auto")
        whole_d.feed(data)
        for i in range(len(data)):
            byte_d.feed(data[i : i + 1])
        assert whole_d.close() == byte_d.close()
        evs = _events(whole_d)
        assert evs == _events(byte_d)
        recs = [e for e in evs if isinstance(e, RecordEvent)]
        assert len(recs) == n and recs[-1].type == 0 and recs[0].offset == 16


@settings(max_examples=30)
@given(S.libxl_streams(xl=None), _CUTS)
def test_libxl_and_xl_streams_cut_anywhere(data: bytes, cuts: list[int]) -> None:
    cuts = sorted(c % (len(data) + 1) for c in cuts)
    assert pieces(data, "auto", cuts) is None


@settings(max_examples=40, deadline=None)
@given(S.libxl_streams(xl=None), st.data())
def test_libxl_and_xl_any_flipped_byte_same_error(data: bytes, draw: Any) -> None:
    at = draw.draw(st.integers(0, len(data) - 1))
    bad = bytearray(data)
    bad[at] ^= draw.draw(st.integers(1, 255))
    cuts = sorted(c % (len(bad) + 1) for c in draw.draw(_CUTS))
    fmt = "xl" if data[:4] == b"Xen " else "libxl"
    assert pieces(bytes(bad), fmt, cuts) == whole(bytes(bad), fmt), (at, cuts)


def test_record_error_class_exported() -> None:
    assert xenlu.Decoder is Decoder and xenlu.verify_stream is verify_stream
    assert issubclass(RecordError, XenLUError)
