"""Hypothesis strategies for xenstored migration streams and their faults.

* :func:`xenstore_models` — :class:`~xenlu.xenstore.stream.XenstoreStream`
  values consistent by construction: connections (rings with plausible
  ports, a toolstack socket with pending data), watches, transactions,
  a committed node tree (parents first, owners known), pending and deleted
  nodes of existing transactions, DOMAIN_DATA per ring domain; version 1
  or 2, either byte order, ``len`` with or without padding.
  :func:`validate_xenstore <xenlu.xenstore.validate.validate_xenstore>`
  reports nothing for them.
* :func:`xenstore_streams` — their bytes.
* :func:`xenstore_corruptions` — single-fault variants, each with the error
  class (structural) or finding code (semantic) that must catch it
  (:class:`XsCorruption`).

Field values come from the declarations where a field is free (fds, ids,
unique ids); where records relate to each other the values are chosen so
they agree.

Public names are imported by :mod:`xenlu.testing.strategies` (and, for code written
before the package, :mod:`xenlu.testing.strategies_xenstore`).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from xenlu.core.errors import FramingError, RecordError, VersionError, XenLUError
from xenlu.core.registry import Record
from xenlu.lu.values import EVTCHN_PORTS_FIFO
from xenlu.testing.strategies._corruptions import expect_refused
from xenlu.xenstore.codec import encode_body
from xenlu.xenstore.records import (
    DOMID_INVALID,
    VERSIONS,
    ConnectionData,
    DomainData,
    Entries,
    GlobalData,
    NodeData,
    NodePerm,
    QuotaVal,
    RingSpec,
    SocketSpec,
    TransactionData,
    WatchData,
    XsType,
    quota_names,
)
from xenlu.xenstore.stream import XenstoreStream, decode_xenstore, encode_xenstore

__all__ = [
    "XS_FAULT_KINDS",
    "XsCorruption",
    "xenstore_corruptions",
    "xenstore_models",
    "xenstore_streams",
]

Draw = Callable[[SearchStrategy[Any]], Any]

_NAME = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=8)
_I32 = st.integers(-1, 0x7FFFFFFF)


def _perms(draw: Draw, owner: int, domids: list[int]) -> Entries:
    items = [NodePerm(perm=ord(draw(st.sampled_from("wrbn"))), flags=0, domid=owner)]
    for _ in range(draw(st.integers(0, 2))):
        items.append(
            NodePerm(
                perm=ord(draw(st.sampled_from("wrbn"))),
                flags=draw(st.integers(0, 1)),
                domid=draw(st.sampled_from([0, *domids])),
            )
        )
    return Entries.of(NodePerm, items)


@st.composite
def xenstore_models(
    draw: Draw,
    version: int | None = None,
    big_endian: bool | None = None,
    max_domains: int = 3,
    max_nodes: int = 12,
) -> XenstoreStream:
    """A consistent xenstored live-update stream (see the module docstring).

    >>> from hypothesis import given, settings
    >>> from xenlu.xenstore.stream import decode_xenstore, encode_xenstore
    >>> @settings(max_examples=5)
    ... @given(xenstore_models())
    ... def test_roundtrip(s):
    ...     assert decode_xenstore(encode_xenstore(s)) == s
    >>> test_roundtrip()
    """
    ver = draw(st.sampled_from(VERSIONS)) if version is None else version
    be = draw(st.booleans()) if big_endian is None else big_endian
    domids = sorted(draw(st.sets(st.integers(1, 0x7FEF), max_size=max_domains)))
    recs: list[Record] = []
    if draw(st.booleans()):
        recs.append(
            Record(XsType.GLOBAL_DATA, GlobalData(rw_socket_fd=draw(_I32), evtchn_fd=draw(_I32)))
        )
    conn_ids = _connections(draw, domids, recs)
    _watches(draw, ver, conn_ids, recs)
    tx_ids = sorted(draw(st.sets(st.integers(1, 0xFFFFFFFF), max_size=2)))
    recs += [Record(XsType.TRANSACTION_DATA, TransactionData(conn_id=1, tx_id=t)) for t in tx_ids]
    _nodes(draw, domids, tx_ids, max_nodes, recs)
    for d in domids:
        if draw(st.booleans()):
            names = ["nodes", "watches", "transactions"]
            vals = Entries.of(QuotaVal, [QuotaVal(value=0) for _ in names])  # 0: unlimited
            features = draw(st.integers(0, 0xFFFFFFFF)) if ver >= 2 else 0
            dd = DomainData(domain_id=d, values=vals, names=quota_names(names), features=features)
            recs.append(Record(XsType.DOMAIN_DATA, dd))
    unpadded: frozenset[int] = frozenset()
    if draw(st.booleans()):
        # The document's wording: len without the padding, where there is any.
        order = ">" if be else "<"
        unpadded = frozenset(
            i
            for i, r in enumerate(recs)
            if sum(memoryview(p).nbytes for p in encode_body(r.type, r.value, order)) % 8
        )
    return XenstoreStream(version=ver, big_endian=be, records=tuple(recs), unpadded=unpadded)


def _connections(draw: Draw, domids: list[int], recs: list[Record]) -> list[int]:
    """The toolstack socket (conn 1, with pending data) and one ring per domain;
    appends their CONNECTION_DATA and returns every conn-id."""
    out_data = draw(st.binary(max_size=24))
    sock = ConnectionData(
        conn_id=1,
        spec=SocketSpec(socket_fd=draw(_I32)),
        in_data=draw(st.binary(max_size=24)),
        out_data=out_data,
        out_resp_len=draw(st.integers(0, len(out_data))),
    )
    recs.append(Record(XsType.CONNECTION_DATA, sock))
    ports = draw(
        st.lists(st.integers(1, EVTCHN_PORTS_FIFO - 1), min_size=len(domids), max_size=len(domids))
    )
    conn_ids = [1]
    for i, d in enumerate(domids):
        cid = i + 2
        conn_ids.append(cid)
        tdomid = draw(st.sampled_from([DOMID_INVALID, *domids]))
        uid = draw(st.none() | st.integers(0, (1 << 64) - 1))
        spec = RingSpec(domid=d, tdomid=tdomid, evtchn=ports[i])
        recs.append(
            Record(XsType.CONNECTION_DATA, ConnectionData(conn_id=cid, spec=spec, unique_id=uid))
        )
    return conn_ids


def _watches(draw: Draw, ver: int, conn_ids: list[int], recs: list[Record]) -> None:
    """Up to two watches per connection, no (conn, path, token) twice."""
    seen: set[tuple[int, str, str]] = set()
    for cid in conn_ids:
        for _ in range(draw(st.integers(0, 2))):
            path = draw(_NAME) if draw(st.booleans()) else "/" + draw(_NAME)
            token = draw(_NAME)
            if (cid, path, token) in seen:
                continue
            seen.add((cid, path, token))
            depth = draw(st.none() | st.integers(0, 0xFFFF)) if ver >= 2 else None
            w = WatchData(conn_id=cid, wpath=path.encode(), token=token.encode(), depth=depth)
            recs.append(Record(w.type, w))


def _nodes(
    draw: Draw, domids: list[int], tx_ids: list[int], max_nodes: int, recs: list[Record]
) -> None:
    """The committed tree (parents first, owners known), then one pending or
    deleted node per transaction."""
    paths = ["/"]
    owners = [0, *domids]
    recs.append(Record(XsType.NODE_DATA, NodeData(path=b"/", perms=_perms(draw, 0, domids))))
    for _ in range(draw(st.integers(0, max_nodes))):
        parent = draw(st.sampled_from(paths))
        path = ("" if parent == "/" else parent) + "/" + draw(_NAME)
        if path in paths:
            continue
        paths.append(path)
        n = NodeData(
            path=path.encode(),
            value=draw(st.binary(max_size=16)),
            perms=_perms(draw, draw(st.sampled_from(owners)), domids),
        )
        recs.append(Record(XsType.NODE_DATA, n))
    for t in tx_ids:
        deleted = draw(st.booleans())
        n = NodeData(
            conn_id=1,
            tx_id=t,
            path=("/" + draw(_NAME)).encode(),
            value=b"" if deleted else draw(st.binary(max_size=8)),
            access=0 if deleted else draw(st.integers(0, 3)),
            perms=Entries.of(NodePerm, []) if deleted else _perms(draw, 0, domids),
        )
        recs.append(Record(XsType.NODE_DATA, n))


def xenstore_streams(**kw: Any) -> SearchStrategy[bytes]:
    """The bytes of :func:`xenstore_models` (same arguments)."""
    return xenstore_models(**kw).map(encode_xenstore)


#: Every fault :func:`xenstore_corruptions` makes; ``*`` marks semantic faults.
XS_FAULT_KINDS: dict[str, str] = {
    "truncation": "the stream cut short (FramingError)",
    "version": "header version 3 (VersionError)",
    "padding": "a non-zero padding octet inside a node record's len (FramingError)",
    "reserved": "the socket conn-spec pad set (RecordError)",
    "conn_type": "conn-type 7 (RecordError)",
    "perm": "a permission letter not w, r, b or n (RecordError)",
    "nul": "a node path's NUL terminator replaced (RecordError)",
    "length": "GLOBAL_DATA's len 8 octets longer (RecordError)",
    "watch_no_conn": "* a watch of a connection that does not exist",
    "node_no_parent": "* a committed node without a parent",
    "tx_missing": "* a pending node of a transaction that does not exist",
    "domain_no_conn": "* DOMAIN_DATA of a domain without a ring connection",
    "conn_duplicate": "* a conn-id used twice",
}
_FINDINGS = {
    "watch_no_conn": "XS_WATCH_NO_CONN",
    "node_no_parent": "XS_NODE_NO_PARENT",
    "tx_missing": "XS_NODE_TX_MISSING",
    "domain_no_conn": "XS_DOMAIN_NO_CONN",
    "conn_duplicate": "XS_CONN_DUPLICATE",
}


@dataclass(frozen=True)
class XsCorruption:
    """One single-fault variant of a valid xenstore stream and how it must be caught."""

    kind: str
    data: bytes
    error: type[XenLUError] | None
    finding: str | None
    where: str

    def check(self) -> None:
        """Raise :class:`AssertionError` unless the fault is caught as declared."""
        from xenlu.xenstore.validate import validate_xenstore

        if self.error is not None:
            expect_refused(lambda: decode_xenstore(self.data), self.error, self.where)
            return
        codes = validate_xenstore(decode_xenstore(self.data)).codes()
        if self.finding not in codes:
            raise AssertionError(f"{self.where}: expected {self.finding}, got {sorted(codes)}")


def _set(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


@st.composite
def xenstore_corruptions(draw: Draw, stream: XenstoreStream) -> XsCorruption:
    """A single-fault variant of ``stream`` (a valid model) with how it must be caught."""
    data = encode_xenstore(stream)
    dec = decode_xenstore(data)
    o = dec.order
    recs = list(dec.records)
    nodes = [r for r in recs if r.type == XsType.NODE_DATA]
    committed = [r for r in nodes if r.value.conn_id == 0]
    kinds = ["truncation", "version", "reserved", "conn_type", "perm", "nul"]
    kinds += ["watch_no_conn", "node_no_parent", "tx_missing", "domain_no_conn", "conn_duplicate"]
    glob = [r for r in recs if r.type == XsType.GLOBAL_DATA]
    if glob:
        kinds.append("length")

    def off(r: Record) -> int:
        assert r.offset is not None  # decoded records know their offset
        return r.offset

    def payload(r: Record) -> int:
        return sum(memoryview(p).nbytes for p in encode_body(r.type, r.value, o))

    padded = [
        r
        for i, r in enumerate(recs)
        if r.type == XsType.NODE_DATA
        and payload(r) % 8
        and i not in dec.unpadded
        and len(r.value.perms)
    ]
    if padded:
        kinds.append("padding")
    kind = draw(st.sampled_from(kinds))

    if kind == "truncation":
        cut = draw(st.integers(0, len(data) - 1))
        return XsCorruption(kind, data[:cut], FramingError, None, f"cut at {cut}")
    if kind == "version":
        return XsCorruption(
            kind, _set(data, 8, struct.pack(">I", 3)), VersionError, None, "version 3"
        )
    if kind == "reserved":
        at = off(recs[0 if recs[0].type == XsType.CONNECTION_DATA else 1])
        return XsCorruption(kind, _set(data, at + 8 + 12, b"\1"), RecordError, None, "socket pad")
    if kind == "conn_type":
        r = draw(st.sampled_from([r for r in recs if r.type == XsType.CONNECTION_DATA]))
        return XsCorruption(
            kind, _set(data, off(r) + 12, struct.pack(o + "H", 7)), RecordError, None,
            f"conn-type of record at {off(r):#x}",
        )  # fmt: skip
    if kind == "perm":
        r = draw(st.sampled_from(committed))
        return XsCorruption(kind, _set(data, off(r) + 8 + 16, b"x"), RecordError, None, "perm1")
    if kind == "nul":
        r = draw(st.sampled_from(committed))
        at = off(r) + 8 + 16 + 4 * len(r.value.perms) + memoryview(r.value.path).nbytes
        return XsCorruption(kind, _set(data, at, b"a"), RecordError, None, "path NUL")
    if kind == "length":
        r = glob[0]
        bad = data[: off(r) + 4] + struct.pack(o + "I", 16) + data[off(r) + 8 : off(r) + 16]
        bad += bytes(8) + data[off(r) + 16 :]
        return XsCorruption(kind, bad, RecordError, None, "GLOBAL_DATA len 16")
    if kind == "padding":
        r = draw(st.sampled_from(padded))
        at = off(r) + 8 + payload(r)
        return XsCorruption(kind, _set(data, at, b"\1"), FramingError, None, "padding in len")
    return _semantic_fault(kind, stream, dec)


def _semantic_fault(kind: str, stream: XenstoreStream, dec: XenstoreStream) -> XsCorruption:
    """A record added to the model (re-encoded) that only validation can see."""
    recs = list(dec.records)
    committed = [r for r in recs if r.type == XsType.NODE_DATA and r.value.conn_id == 0]

    def model(extra: Record, at: int | None = None) -> bytes:
        new = list(stream.records)
        new.insert(len(new) if at is None else at, extra)
        return encode_xenstore(
            dataclasses.replace(stream, records=tuple(new), unpadded=frozenset())
        )

    n_conns = sum(1 for r in recs if r.type == XsType.CONNECTION_DATA)
    if kind == "watch_no_conn":
        w = WatchData(conn_id=n_conns + 5, wpath=b"x", token=b"t")
        bad = model(Record(XsType.WATCH_DATA, w))
    elif kind == "node_no_parent":
        # Longer than any generated name (8), so never a parent in the tree.
        orphan = NodeData(path=b"/no-such-parent/child", perms=committed[0].value.perms)
        bad = model(Record(XsType.NODE_DATA, orphan))
    elif kind == "tx_missing":
        n = NodeData(conn_id=1, tx_id=0, path=b"/p", perms=committed[0].value.perms)
        bad = model(Record(XsType.NODE_DATA, n))
    elif kind == "domain_no_conn":
        rings = {c.spec.domid for c in dec.connections if isinstance(c.spec, RingSpec)}
        free = next(d for d in range(1, 0x7FF0) if d not in rings)
        dd = DomainData(domain_id=free, values=Entries.of(QuotaVal, []), names=b"")
        bad = model(Record(XsType.DOMAIN_DATA, dd))
    else:
        sock = next(r for r in stream.records if r.type == XsType.CONNECTION_DATA)
        bad = model(sock, at=stream.records.index(sock) + 1)
    return XsCorruption(kind, bad, None, _FINDINGS[kind], XS_FAULT_KINDS[kind])
