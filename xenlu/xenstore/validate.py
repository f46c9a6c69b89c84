"""Semantic checks of a xenstored migration stream, each with a stable code.

``decode`` checks each record by itself; :func:`validate_xenstore` checks
what relates records to each other (``docs/designs/xenstore-migration.md``
§Records: "Records upon which other records depend must always appear
earlier in the stream") and what the C xenstored's restore code
(``tools/xenstored/lu.c``, ``core.c``, ``domain.c``) would trip over. Every
finding is reported, not just the first; codes are listed in :data:`CODES`.

>>> from xenlu.testing.xenstore_hostgen import make_xenstore
>>> r = validate_xenstore(make_xenstore([0, 1, 2]))
>>> r.ok, r.findings, r.per_domain[1]
(True, [], {'nodes': 5, 'watches': 2, 'transactions': 0})
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from xenlu.core.registry import UnknownRecord
from xenlu.xenstore.records import (
    DOMID_INVALID,
    KNOWN_TYPES,
    ConnectionData,
    DomainData,
    NodeData,
    RingSpec,
    TransactionData,
    WatchData,
    XsType,
)
from xenlu.xenstore.stream import XenstoreStream

__all__ = ["CODES", "XsFinding", "XsReport", "validate_xenstore"]

Severity = Literal["error", "warning"]

#: Every code: severity and what it means.
CODES: dict[str, tuple[Severity, str]] = {
    "XS_GLOBAL_DUPLICATE": ("error", "more than one GLOBAL_DATA record"),
    "XS_CONN_DUPLICATE": ("error", "a conn-id used by two CONNECTION_DATA records"),
    "XS_CONN_DOMID": ("error", "a ring connection's domid or tdomid is a reserved domid"),
    "XS_CONN_DOMID_DUPLICATE": ("error", "two ring connections for one domain"),
    "XS_CONN_EVTCHN": ("error", "a ring connection's event channel port is 0 or >= 2^17"),
    "XS_CONN_TARGET_UNKNOWN": ("warning", "tdomid names a domain without a ring connection"),
    "XS_WATCH_NO_CONN": ("error", "a watch of a connection not defined earlier"),
    "XS_WATCH_DUPLICATE": ("error", "the same path and token watched twice by a connection"),
    "XS_WATCH_PATH": ("error", "a watch path that is empty or malformed"),
    "XS_TX_NO_CONN": ("error", "a transaction of a connection not defined earlier"),
    "XS_TX_DUPLICATE": ("error", "a transaction id used twice on a connection"),
    "XS_NODE_PATH": ("error", "a node path that is not absolute or is malformed"),
    "XS_NODE_DUPLICATE": ("error", "a committed node path given twice"),
    "XS_NODE_NO_PARENT": ("error", "a committed node whose parent is not known earlier"),
    "XS_NODE_NO_PERMS": ("error", "a committed node without permissions (perm1 is the owner)"),
    "XS_NODE_OWNER_UNKNOWN": ("warning", "a node owned by a domain the stream does not know"),
    "XS_NODE_TX_MISSING": ("error", "a pending node of a transaction not defined earlier"),
    "XS_NODE_DELETED_DATA": ("error", "a node deleted in a transaction with a value or access"),
    "XS_DOMAIN_NO_CONN": ("error", "DOMAIN_DATA for a domain without a ring connection"),
    "XS_DOMAIN_DUPLICATE": ("error", "DOMAIN_DATA twice for one domain"),
    "XS_QUOTA_EXCEEDED": ("warning", "a domain holds more than its quota"),
    "XS_UNKNOWN_RECORD": ("warning", "a record type the document does not define (skipped)"),
    "XS_LEN_UNPADDED": ("warning", "a record length without its padding (C reader desyncs)"),
}

#: xs_wire.h XENSTORE_ABS_PATH_MAX / XENSTORE_REL_PATH_MAX.
ABS_PATH_MAX = 3072
REL_PATH_MAX = 2048
#: xen.h DOMID_FIRST_RESERVED.
DOMID_FIRST_RESERVED = 0x7FF0
#: The largest number of event channel ports (FIFO ABI, 2^17).
EVTCHN_PORTS = 1 << 17
#: docs/misc/xenstore.txt: alphanumerics and -/_@; no doubled or trailing slash.
_ABS = re.compile(r"/|(?:/[A-Za-z0-9_@-]+)+")
_REL = re.compile(r"[A-Za-z0-9_@-]+(?:/[A-Za-z0-9_@-]+)*")
#: Special nodes the C xenstored dumps with non-absolute paths (core.c).
_SPECIAL = re.compile(r"@[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class XsFinding:
    """One semantic problem: the record that holds it, its connection and node.

    >>> f = XsFinding("error", "XS_WATCH_NO_CONN", "no connection 4", 3, "WATCH_DATA", conn_id=4)
    >>> str(f)
    'error XS_WATCH_NO_CONN record #3 WATCH_DATA conn 4: no connection 4'
    """

    severity: Severity
    code: str
    message: str
    record_index: int
    record: str
    conn_id: int | None = None
    path: str | None = None
    domid: int | None = None
    values: dict[str, int | str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "record_index": self.record_index,
            "record": self.record,
            "conn_id": self.conn_id,
            "path": self.path,
            "domid": self.domid,
            "values": {k: self.values[k] for k in sorted(self.values)},
        }

    def __str__(self) -> str:
        at = f"record #{self.record_index} {self.record}"
        if self.conn_id is not None:
            at += f" conn {self.conn_id}"
        if self.domid is not None:
            at += f" dom{self.domid}"
        if self.path is not None:
            at += f" {self.path}"
        return f"{self.severity} {self.code} {at}: {self.message}"


@dataclass
class XsReport:
    """Every finding in stream order, and the quota-relevant counts per domain."""

    findings: list[XsFinding]
    per_domain: dict[int, dict[str, int]]

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def nr_errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def nr_warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "xenstore",
            "ok": self.ok,
            "errors": self.nr_errors,
            "warnings": self.nr_warnings,
            "findings": [f.to_dict() for f in self.findings],
            "per_domain": {str(d): self.per_domain[d] for d in sorted(self.per_domain)},
        }

    def dumps(self, indent: int | None = None) -> str:
        return json.dumps(self.to_json(), indent=indent, sort_keys=True)

    def summary(self) -> str:
        lines = [str(f) for f in self.findings]
        for d in sorted(self.per_domain):
            c = self.per_domain[d]
            lines.append(
                f"dom{d}: {c['nodes']} nodes, {c['watches']} watches, "
                f"{c['transactions']} transactions"
            )
        lines.append(f"{self.nr_errors} errors, {self.nr_warnings} warnings")
        return "\n".join(lines)


def _text(b: Any) -> str:
    return bytes(b).decode("latin-1")


def _parent(path: str) -> str:
    cut = path.rfind("/")
    return "/" if cut <= 0 else path[:cut]


class _Out:
    def __init__(self) -> None:
        self.findings: list[XsFinding] = []

    def add(self, code: str, message: str, index: int, rtype: int, **kw: Any) -> None:
        sev = CODES[code][0]
        name = XsType(rtype).name if rtype in KNOWN_TYPES else f"{rtype:#010x}"
        self.findings.append(XsFinding(sev, code, message, index, name, **kw))


def validate_xenstore(stream: XenstoreStream, *, known_paths: tuple[str, ...] = ("/",)) -> XsReport:
    """Check the relations between records; report every finding.

    ``known_paths`` are nodes that exist before the stream is read (§NODE_DATA:
    a parent is known if it was in the node database already): ``/`` for a
    live update; a migration stream's target also has ``/local/domain`` etc.
    """
    walk = _Walk(stream, known_paths)
    for i, r in enumerate(stream.records):
        walk.record(i, r.type, r.value, i in stream.unpadded)
    walk.quotas()
    count = walk.count
    return XsReport(walk.out.findings, {d: count[d] for d in sorted(count)})


class _Walk:
    """What the records seen so far established, and one check per record kind."""

    def __init__(self, stream: XenstoreStream, known_paths: tuple[str, ...]) -> None:
        self.out = _Out()
        self.conns: dict[int, ConnectionData] = {}
        conn_recs = [r.value for r in stream.records if r.type == XsType.CONNECTION_DATA]
        self.later_conns = {c.conn_id for c in conn_recs}
        self.all_ring = {c.spec.domid for c in conn_recs if isinstance(c.spec, RingSpec)}
        self.ring_domids: dict[int, int] = {}  # domid → conn_id
        self.watches: set[tuple[int, bytes, bytes]] = set()
        self.txs: set[tuple[int, int]] = set()
        self.nodes: set[str] = set(known_paths)
        self.domains: set[int] = set()
        self.n_global = 0
        self.count: dict[int, dict[str, int]] = {}
        self.quota: dict[int, dict[str, int]] = {}

    def bump(self, domid: int, what: str) -> None:
        c = self.count.setdefault(domid, {"nodes": 0, "watches": 0, "transactions": 0})
        c[what] += 1

    def conn_domid(self, conn_id: int) -> int | None:
        c = self.conns.get(conn_id)
        return c.spec.domid if c is not None and isinstance(c.spec, RingSpec) else 0

    def record(self, i: int, t: int, v: Any, unpadded: bool) -> None:
        out = self.out
        if unpadded:
            out.add(
                "XS_LEN_UNPADDED",
                "len excludes the padding: lu.c reads exactly len octets, so the C "
                "xenstored would take the padding as the next record header",
                i,
                t,
            )
        if isinstance(v, UnknownRecord):
            out.add("XS_UNKNOWN_RECORD", "skipped by the C xenstored (lu.c)", i, t)
        elif t == XsType.GLOBAL_DATA:
            self.n_global += 1
            if self.n_global > 1:
                out.add("XS_GLOBAL_DUPLICATE", "GLOBAL_DATA again", i, t)
        elif t == XsType.CONNECTION_DATA:
            _check_conn(v, i, t, self.conns, self.ring_domids, self.all_ring, out)
        elif t in (XsType.WATCH_DATA, XsType.WATCH_DATA_EXTENDED):
            self.watch(i, t, v)
        elif t == XsType.TRANSACTION_DATA:
            self.transaction(i, t, v)
        elif t == XsType.NODE_DATA:
            _check_node(v, i, t, self.nodes, self.txs, self.all_ring, out, self.bump)
        elif t == XsType.DOMAIN_DATA:
            self.domain(i, t, v)

    def watch(self, i: int, t: int, w: WatchData) -> None:
        out = self.out
        if w.conn_id not in self.conns:
            where = "appears later" if w.conn_id in self.later_conns else "is not in the stream"
            out.add(
                "XS_WATCH_NO_CONN",
                f"connection {w.conn_id} {where}",
                i,
                t,
                conn_id=w.conn_id,
                path=_text(w.wpath),
            )
        else:
            self.bump(self.conn_domid(w.conn_id) or 0, "watches")
        key = (w.conn_id, bytes(w.wpath), bytes(w.token))
        if key in self.watches:
            out.add(
                "XS_WATCH_DUPLICATE",
                f"token {_text(w.token)!r} again",
                i,
                t,
                conn_id=w.conn_id,
                path=_text(w.wpath),
            )
        self.watches.add(key)
        p = _text(w.wpath)
        ok = (
            _ABS.fullmatch(p) is not None and len(p) < ABS_PATH_MAX
            if p.startswith("/")
            else (_REL.fullmatch(p) is not None and len(p) < REL_PATH_MAX)
        )
        if not ok:
            out.add("XS_WATCH_PATH", "malformed watch path", i, t, conn_id=w.conn_id, path=p)

    def transaction(self, i: int, t: int, x: TransactionData) -> None:
        if x.conn_id not in self.conns:
            self.out.add(
                "XS_TX_NO_CONN",
                f"connection {x.conn_id} not defined earlier",
                i,
                t,
                conn_id=x.conn_id,
                values={"tx_id": x.tx_id},
            )
        else:
            self.bump(self.conn_domid(x.conn_id) or 0, "transactions")
        if (x.conn_id, x.tx_id) in self.txs:
            self.out.add(
                "XS_TX_DUPLICATE",
                f"transaction {x.tx_id} again",
                i,
                t,
                conn_id=x.conn_id,
                values={"tx_id": x.tx_id},
            )
        self.txs.add((x.conn_id, x.tx_id))

    def domain(self, i: int, t: int, d: DomainData) -> None:
        if d.domain_id not in self.ring_domids:
            self.out.add(
                "XS_DOMAIN_NO_CONN",
                "no ring connection earlier: the C restore stops (domain not found)",
                i,
                t,
                domid=d.domain_id,
            )
        if d.domain_id in self.domains:
            self.out.add("XS_DOMAIN_DUPLICATE", "DOMAIN_DATA again", i, t, domid=d.domain_id)
        self.domains.add(d.domain_id)
        self.quota[d.domain_id] = {**d.quota, "_index": i}

    def quotas(self) -> None:
        """After the walk: a domain's nodes, watches and transactions against its quota."""
        for domid, q in self.quota.items():
            c = self.count.get(domid, {})
            for what in ("nodes", "watches", "transactions"):
                limit = q.get(what, 0)
                if limit and c.get(what, 0) > limit:
                    self.out.add(
                        "XS_QUOTA_EXCEEDED",
                        f"{c[what]} {what}, quota {limit}",
                        q["_index"],
                        XsType.DOMAIN_DATA,
                        domid=domid,
                        values={what: c[what], "quota": limit},
                    )


def _check_conn(
    c: ConnectionData,
    i: int,
    t: int,
    conns: dict[int, ConnectionData],
    ring_domids: dict[int, int],
    all_ring: set[int],
    out: _Out,
) -> None:
    if c.conn_id in conns:
        out.add("XS_CONN_DUPLICATE", f"conn-id {c.conn_id} again", i, t, conn_id=c.conn_id)
    conns[c.conn_id] = c
    s = c.spec
    if not isinstance(s, RingSpec):
        return
    if s.domid >= DOMID_FIRST_RESERVED or (
        s.tdomid != DOMID_INVALID and s.tdomid >= DOMID_FIRST_RESERVED
    ):
        out.add(
            "XS_CONN_DOMID",
            "reserved domid",
            i,
            t,
            conn_id=c.conn_id,
            domid=s.domid,
            values={"tdomid": s.tdomid},
        )
    if s.domid in ring_domids:
        out.add(
            "XS_CONN_DOMID_DUPLICATE",
            f"conn {ring_domids[s.domid]} is already dom{s.domid}'s ring",
            i,
            t,
            conn_id=c.conn_id,
            domid=s.domid,
        )
    ring_domids.setdefault(s.domid, c.conn_id)
    if s.evtchn == 0 or s.evtchn >= EVTCHN_PORTS:
        out.add(
            "XS_CONN_EVTCHN",
            f"port {s.evtchn} cannot be an interdomain channel",
            i,
            t,
            conn_id=c.conn_id,
            domid=s.domid,
            values={"evtchn": s.evtchn},
        )
    if s.tdomid != DOMID_INVALID and s.tdomid not in all_ring:
        out.add(
            "XS_CONN_TARGET_UNKNOWN",
            f"target dom{s.tdomid} has no ring connection",
            i,
            t,
            conn_id=c.conn_id,
            domid=s.domid,
            values={"tdomid": s.tdomid},
        )


def _check_node(
    n: NodeData,
    i: int,
    t: int,
    nodes: set[str],
    txs: set[tuple[int, int]],
    all_ring: set[int],
    out: _Out,
    bump: Any,
) -> None:
    path = _text(n.path)
    special = _SPECIAL.fullmatch(path) is not None
    if not special and (_ABS.fullmatch(path) is None or len(path) >= ABS_PATH_MAX):
        out.add("XS_NODE_PATH", "not an absolute well-formed path", i, t, path=path)
    if n.pending:
        if (n.conn_id, n.tx_id) not in txs:
            out.add(
                "XS_NODE_TX_MISSING",
                f"transaction {n.tx_id} of connection {n.conn_id} not defined earlier",
                i,
                t,
                conn_id=n.conn_id,
                path=path,
                values={"tx_id": n.tx_id},
            )
        if not len(n.perms) and (memoryview(n.value).nbytes or n.access):
            out.add(
                "XS_NODE_DELETED_DATA",
                "perm-count 0 (deleted) but value-len or access not 0",
                i,
                t,
                conn_id=n.conn_id,
                path=path,
                values={"value_len": memoryview(n.value).nbytes, "access": n.access},
            )
        return
    if path in nodes and path != "/":
        out.add("XS_NODE_DUPLICATE", "committed node given again", i, t, path=path)
    if not special and path != "/" and _parent(path) not in nodes:
        out.add(
            "XS_NODE_NO_PARENT",
            f"parent {_parent(path)} not known earlier",
            i,
            t,
            path=path,
        )
    nodes.add(path)
    owner = n.owner
    if owner is None:
        out.add("XS_NODE_NO_PERMS", "perm-count 0 on a committed node", i, t, path=path)
        return
    bump(owner, "nodes")
    if owner != 0 and owner not in all_ring:
        out.add(
            "XS_NODE_OWNER_UNKNOWN",
            f"owner dom{owner} has no ring connection",
            i,
            t,
            path=path,
            domid=owner,
        )
