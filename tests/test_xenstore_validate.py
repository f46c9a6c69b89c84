"""Semantic checks of xenstore streams: every code triggered alone."""

from __future__ import annotations

import dataclasses

import pytest

from xenlu.core.registry import Record, UnknownRecord
from xenlu.testing.xenstore_hostgen import make_xenstore, node, perms
from xenlu.xenstore.records import (
    DOMID_INVALID,
    ConnectionData,
    DomainData,
    Entries,
    GlobalData,
    NodeData,
    QuotaVal,
    RingSpec,
    SocketSpec,
    TransactionData,
    WatchData,
    XsType,
    quota_names,
)
from xenlu.xenstore.stream import XenstoreStream, decode_xenstore, encode_xenstore
from xenlu.xenstore.validate import CODES, validate_xenstore

BASE = make_xenstore([0, 1])
RECS = list(BASE.records)
# conn 1: dom0 ring, conn 2: toolstack socket (transaction 7), conn 3: dom1 ring.
FIRST_NODE = next(i for i, r in enumerate(RECS) if r.type == XsType.NODE_DATA)


def ring(conn_id: int, domid: int, evtchn: int = 30, tdomid: int = DOMID_INVALID) -> Record:
    spec = RingSpec(domid=domid, tdomid=tdomid, evtchn=evtchn)
    return Record(XsType.CONNECTION_DATA, ConnectionData(conn_id=conn_id, spec=spec))


def dom(domid: int, **quota: int) -> Record:
    vals = Entries.of(QuotaVal, [QuotaVal(value=v) for v in quota.values()])
    return Record(
        XsType.DOMAIN_DATA,
        DomainData(domain_id=domid, values=vals, names=quota_names(list(quota))),
    )


def codes(recs: list[Record], **kw: object) -> set[str]:
    s = dataclasses.replace(BASE, records=tuple(recs), **kw)  # type: ignore[arg-type]
    # The same verdict on the decoded stream: validation works on what decode gives.
    assert validate_xenstore(decode_xenstore(encode_xenstore(s))).codes() == (
        validate_xenstore(s).codes()
    )
    return validate_xenstore(s).codes()


def insert(at: int, *new: Record) -> list[Record]:
    return RECS[:at] + list(new) + RECS[at:]


def test_base_is_clean() -> None:
    r = validate_xenstore(BASE)
    assert r.ok and r.findings == []
    assert r.per_domain == {
        0: {"nodes": 10, "watches": 1, "transactions": 1},
        1: {"nodes": 5, "watches": 2, "transactions": 0},
    }


PENDING = Record(
    XsType.NODE_DATA,
    NodeData(conn_id=2, tx_id=99, path=b"/tool/p", value=b"", perms=perms(0)),
)
DELETED = Record(XsType.NODE_DATA, NodeData(conn_id=2, tx_id=7, path=b"/tool/d", value=b"x"))
W = next(r for r in RECS if r.type == XsType.WATCH_DATA and r.value.conn_id == 3)

CASES: dict[str, list[Record]] = {
    "XS_GLOBAL_DUPLICATE": insert(
        1, Record(XsType.GLOBAL_DATA, GlobalData(rw_socket_fd=-1, evtchn_fd=4))
    ),
    "XS_CONN_DUPLICATE": insert(
        4, Record(XsType.CONNECTION_DATA, ConnectionData(conn_id=2, spec=SocketSpec(socket_fd=9)))
    ),
    "XS_CONN_DOMID": insert(FIRST_NODE, ring(9, 0x7FF2)),
    "XS_CONN_DOMID_DUPLICATE": insert(FIRST_NODE, ring(9, 1)),
    "XS_CONN_EVTCHN": insert(FIRST_NODE, ring(9, 5, evtchn=0)),
    "XS_CONN_TARGET_UNKNOWN": insert(FIRST_NODE, ring(9, 5, tdomid=6)),
    "XS_WATCH_NO_CONN": insert(
        FIRST_NODE, Record(XsType.WATCH_DATA, WatchData(conn_id=42, wpath=b"a", token=b"t"))
    ),
    "XS_WATCH_DUPLICATE": insert(FIRST_NODE, W),
    "XS_WATCH_PATH": insert(
        FIRST_NODE, Record(XsType.WATCH_DATA, WatchData(conn_id=3, wpath=b"/a//b", token=b"t"))
    ),
    "XS_TX_NO_CONN": insert(
        FIRST_NODE, Record(XsType.TRANSACTION_DATA, TransactionData(conn_id=42, tx_id=1))
    ),
    "XS_TX_DUPLICATE": insert(
        FIRST_NODE, Record(XsType.TRANSACTION_DATA, TransactionData(conn_id=2, tx_id=7))
    ),
    "XS_NODE_PATH": [*RECS, node("/local/bad path")],
    "XS_NODE_DUPLICATE": [*RECS, node("/local/domain/1/name", b"again", 1)],
    "XS_NODE_NO_PARENT": [*RECS, node("/nothere/x")],
    "XS_NODE_NO_PERMS": [*RECS, Record(XsType.NODE_DATA, NodeData(path=b"/tool/np"))],
    "XS_NODE_OWNER_UNKNOWN": [*RECS, node("/tool/o", b"", 9)],
    "XS_NODE_TX_MISSING": [*RECS, PENDING],
    "XS_NODE_DELETED_DATA": [*RECS, DELETED],
    "XS_DOMAIN_NO_CONN": [*RECS, dom(5, nodes=10)],
    "XS_DOMAIN_DUPLICATE": [*RECS, RECS[-1]],
    "XS_QUOTA_EXCEEDED": [*RECS[:-1], dom(1, nodes=2)],
    "XS_UNKNOWN_RECORD": [*RECS, Record(0x20, UnknownRecord(0x20, b"future"))],
}


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_alone(code: str) -> None:
    if code == "XS_LEN_UNPADDED":
        # The "/" node: 16 + 4 + 2 octets of payload, len written without padding.
        got = codes(RECS, unpadded=frozenset({FIRST_NODE}))
    else:
        got = codes(CASES[code])
    assert got == {code}


def test_findings_name_connection_node_and_record() -> None:
    s = dataclasses.replace(BASE, records=tuple(CASES["XS_NODE_TX_MISSING"]))
    (f,) = validate_xenstore(s).findings
    assert (f.conn_id, f.path, f.record, f.values) == (2, "/tool/p", "NODE_DATA", {"tx_id": 99})
    assert str(f).startswith(f"error XS_NODE_TX_MISSING record #{len(RECS)} NODE_DATA conn 2")


def test_watch_before_its_connection_says_so() -> None:
    recs = [r for r in RECS if r is not W]
    recs.insert(2, W)  # dom1's watch moved before every connection
    s = dataclasses.replace(BASE, records=tuple(recs))
    (f,) = validate_xenstore(s).findings
    assert f.code == "XS_WATCH_NO_CONN" and "appears later" in f.message


def test_migration_stream_with_known_parents() -> None:
    recs = [r for r in RECS if r.type == XsType.NODE_DATA and r.value.conn_id == 0]
    recs = [r for r in recs if bytes(r.value.path).startswith(b"/local/domain/1")]
    s = XenstoreStream(records=(ring(1, 1, 11), *recs))
    assert validate_xenstore(s).codes() == {"XS_NODE_NO_PARENT"}
    assert validate_xenstore(s, known_paths=("/", "/local", "/local/domain")).ok
