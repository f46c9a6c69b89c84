"""A plausible xenstored live-update stream for a set of domains (tests, golden, demo).

The shape follows what the C xenstored dumps (``lu_dump_state`` in
``tools/xenstored/lu.c``): GLOBAL_DATA, GLOBAL_QUOTA_DATA, each connection
followed by its watches, the committed nodes parents first, then
DOMAIN_DATA, then END. Everything is consistent by construction, so
:func:`xenlu.xenstore.validate.validate_xenstore` reports nothing.

>>> s = make_xenstore([0, 1, 2])
>>> s.tree().value("/local/domain/1/name")
b'guest1'
"""

from __future__ import annotations

from collections.abc import Sequence

from xenlu.core.registry import Record
from xenlu.xenstore.records import (
    DOMID_INVALID,
    ConnectionData,
    DomainData,
    Entries,
    GlobalData,
    GlobalQuotaData,
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
from xenlu.xenstore.stream import XenstoreStream

__all__ = ["make_xenstore", "node", "perms"]

_QUOTA = {"nodes": 1000, "watches": 128, "transactions": 10, "memory": 2 << 20}


def perms(owner: int, *others: tuple[str, int]) -> Entries:
    """Permissions: ``owner`` with ``n`` (the owner has full access), then ``others``."""
    items = [NodePerm(perm=ord("n"), flags=0, domid=owner)]
    items += [NodePerm(perm=ord(letter), flags=0, domid=d) for letter, d in others]
    return Entries.of(NodePerm, items)


def node(path: str, value: bytes = b"", owner: int = 0, *others: tuple[str, int]) -> Record:
    """A committed NODE_DATA record."""
    return Record(
        XsType.NODE_DATA, NodeData(path=path.encode(), value=value, perms=perms(owner, *others))
    )


def make_xenstore(
    domids: Sequence[int],
    *,
    version: int = 2,
    big_endian: bool = False,
    watch_depth: bool = True,
    transaction: bool = True,
) -> XenstoreStream:
    """A live-update stream of xenstored serving ``domids`` (0 is dom0 via a socket).

    dom0 gets a ring connection and a socket connection (the toolstack).
    Each guest gets a ring connection (port 10 + domid, unique id), two
    watches (one with a depth in version 2 when ``watch_depth``), its
    ``/local/domain/<id>`` subtree and a DOMAIN_DATA record; dom0's toolstack
    socket holds one open transaction with a pending node when ``transaction``.
    """
    conns, tx_conn = _connections(domids, version, watch_depth)
    if not transaction:
        tx_conn = None
    recs = [*_globals(), *conns]
    if tx_conn is not None:
        recs.append(Record(XsType.TRANSACTION_DATA, TransactionData(conn_id=tx_conn, tx_id=7)))
    recs += _nodes(domids, tx_conn)
    recs += _domains(domids, version)
    return XenstoreStream(version=version, big_endian=big_endian, records=tuple(recs))


def _globals() -> list[Record]:
    """GLOBAL_DATA (the C xenstored's socket and event channel fds) and the quotas."""
    return [
        Record(XsType.GLOBAL_DATA, GlobalData(rw_socket_fd=3, evtchn_fd=4)),
        Record(
            XsType.GLOBAL_QUOTA_DATA,
            GlobalQuotaData(
                n_dom_quota=len(_QUOTA),
                values=Entries.of(QuotaVal, [QuotaVal(value=v) for v in _QUOTA.values()]),
                names=quota_names(list(_QUOTA)),
            ),
        ),
    ]


def _connections(
    domids: Sequence[int], version: int, watch_depth: bool
) -> tuple[list[Record], int | None]:
    """Each domain's connections, each followed by its watches; and the
    conn-id of dom0's toolstack socket (None without dom0)."""
    recs: list[Record] = []
    conn_id = 0
    tx_conn = None
    for d in domids:
        conn_id += 1
        if d == 0:
            # dom0's kernel on its ring, the toolstack on the socket.
            ring = RingSpec(domid=0, tdomid=DOMID_INVALID, evtchn=10)
            recs.append(Record(XsType.CONNECTION_DATA, ConnectionData(conn_id=conn_id, spec=ring)))
            conn_id += 1
            spec: RingSpec | SocketSpec = SocketSpec(socket_fd=20)
            recs.append(Record(XsType.CONNECTION_DATA, ConnectionData(conn_id=conn_id, spec=spec)))
            recs.append(
                Record(
                    XsType.WATCH_DATA,
                    WatchData(conn_id=conn_id, wpath=b"@releaseDomain", token=b"xl"),
                )
            )
            tx_conn = conn_id
            continue
        spec = RingSpec(domid=d, tdomid=DOMID_INVALID, evtchn=10 + d)
        recs.append(
            Record(
                XsType.CONNECTION_DATA,
                ConnectionData(conn_id=conn_id, spec=spec, unique_id=0x1000 + d),
            )
        )
        recs.append(
            Record(
                XsType.WATCH_DATA,
                WatchData(conn_id=conn_id, wpath=b"device", token=b"backend"),
            )
        )
        if version >= 2 and watch_depth:
            recs.append(
                Record(
                    XsType.WATCH_DATA_EXTENDED,
                    WatchData(conn_id=conn_id, wpath=b"control", token=b"ctl", depth=1),
                )
            )
    return recs, tx_conn


def _nodes(domids: Sequence[int], tx_conn: int | None) -> list[Record]:
    """The committed nodes, parents first; the pending node of the open
    transaction of ``tx_conn`` (if any); the special nodes."""
    recs = [node("/"), node("/local"), node("/local/domain"), node("/tool")]
    for d in domids:
        base = f"/local/domain/{d}"
        recs.append(node(base, b"", 0, ("r", d)))
        recs.append(node(base + "/name", b"Domain-0" if d == 0 else f"guest{d}".encode(), d))
        recs.append(node(base + "/domid", str(d).encode(), d))
        if d:
            recs.append(node(base + "/device", b"", d))
            recs.append(node(base + "/control", b"", d))
            recs.append(node(base + "/control/shutdown", b"", d))
    if tx_conn is not None:
        recs.append(
            Record(
                XsType.NODE_DATA,
                NodeData(
                    conn_id=tx_conn,
                    tx_id=7,
                    access=2,
                    path=b"/tool/xl",
                    value=b"pending\0value",
                    perms=perms(0),
                ),
            )
        )
    recs += [node("@releaseDomain"), node("@introduceDomain")]
    return recs


def _domains(domids: Sequence[int], version: int) -> list[Record]:
    """A DOMAIN_DATA record per domain, with the default quotas."""
    recs = []
    for d in domids:
        vals = [QuotaVal(value=v) for v in _QUOTA.values()]
        recs.append(
            Record(
                XsType.DOMAIN_DATA,
                DomainData(
                    domain_id=d,
                    features=1 if version >= 2 else 0,
                    values=Entries.of(QuotaVal, vals),
                    names=quota_names(list(_QUOTA)),
                ),
            )
        )
    return recs
