"""The restore plan of a Live Update stream (LU spec §6): passes, parallel
groups, every cross-domain edge and an estimated critical path.

Restore runs in passes; within a pass the domains are independent and may be
restored in parallel, and a pass starts when every domain has finished the
previous one (§6):

====  =====================================================================
pass  what
====  =====================================================================
0     create each domain (LU_DOMAIN), its P2M entries whose frames are its
      own, none, shared or device memory, its vCPUs
1     page ownership, grant-table frames
2     P2M grant_map / map_foreign entries, page types, event-channel ABI and
      every channel except the interdomain binding, grant maps, IOREQ
      servers, vCPU and HVM state
3     interdomain channel pairs, each bound once by the side with the lower
      (domid, port)
====  =====================================================================

An *edge* is a cross-domain dependency: domain ``from`` does work in
``pass`` that needs domain ``to`` to have finished ``depends_on_pass``
(:data:`EDGE_KINDS`). Edges are aggregated per (kind, from, to) with a
count of the entries behind them — never one object per entry. Every edge
points to an earlier pass, so each pass is **one** parallel group: a pass
never waits on work of the same pass. The planner checks this from the
table (:attr:`Plan.violations`); a future pass table that broke it would be
flagged, not silently scheduled. In pass 3 the binding side also writes the
remote's channel (Xen takes both domains' event locks), so binders of
different pairs of one domain contend for a lock, but neither waits for the
other: still one group.

Cost model of the critical path (an estimate in *entries*): the work of a
domain in a pass is the number of entries it restores there — pass 0: 1
(LU_DOMAIN) + max_vcpus + P2M extents of its own/none/shared/device frames;
pass 1: ownership extents + grant and status frames; pass 2: grant_map /
map_foreign P2M extents + page types + 1 (event-channel ABI) + control
blocks + channels + grant maps + IOREQ servers and their ranges + PV vCPU
records + HVM_CONTEXT entries; pass 3: the pairs it binds. With one worker
per domain a pass lasts as long as its largest domain, so the critical path
is the sum over passes of the maximum over domains; ``serial`` is the total
work and ``speedup`` their ratio.

>>> from xenlu.testing.hostgen import make_host
>>> p = plan(make_host((4, 11), n_hvm=2, mem_mib=4))
>>> [x.number for x in p.passes], p.passes[0].groups
([0, 1, 2, 3], [[0, 1, 2]])
>>> sorted({e.kind for x in p.passes for e in x.edges})
['evtchn_pair', 'grant_map', 'ioreq', 'p2m_grant']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from xenlu.host.validation import Host, Table, interdomain_peers, owner_index
from xenlu.lu.stream import VCPU_TYPES, LUStream
from xenlu.lu.values import P2M_CLASS_LUT, P2mClass, P2mType

__all__ = ["EDGE_KINDS", "PASSES", "Edge", "Pass", "Plan", "plan"]

I64 = npt.NDArray[np.int64]

# Plain ints of the enums for numpy (an IntEnum operand promotes to int64).
_FOREIGN = int(P2mClass.FOREIGN)
_MAP_FOREIGN = int(P2mType.map_foreign)

#: pass → what it restores (§6).
PASSES: dict[int, str] = {
    0: "create domains; P2M entries with own/none/shared/device frames; vCPUs",
    1: "page ownership; grant-table frames",
    2: (
        "grant_map/map_foreign P2M entries; page types; event-channel ABI and channels "
        "(not the interdomain binding); grant maps; IOREQ servers; vCPU and HVM state"
    ),
    3: "interdomain channel pairs, bound once by the lower (domid, port) side",
}

#: edge kind → (pass of the work, pass of the other domain it depends on), §6.
EDGE_KINDS: dict[str, tuple[int, int]] = {
    "p2m_grant": (2, 1),  # P2M grant_map frames need their owner's pass 1
    "p2m_foreign": (2, 1),  # P2M map_foreign frames likewise
    "grant_map": (2, 1),  # LU_GRANT_MAPS need the granting domain's pass 1
    "ioreq": (2, 0),  # an IOREQ server needs its emulating domain's pass 0
    "evtchn_pair": (3, 2),  # the binder needs both ends from pass 2
}


@dataclass(frozen=True)
class Edge:
    """``src`` does ``count`` entries of work in ``pass_`` that need ``dst``
    to have finished ``depends_on_pass``."""

    kind: str
    src: int
    dst: int
    pass_: int
    depends_on_pass: int
    count: int

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "from": self.src,
            "to": self.dst,
            "pass": self.pass_,
            "depends_on_pass": self.depends_on_pass,
            "count": self.count,
        }

    def __str__(self) -> str:
        return (
            f"{self.kind}: dom{self.src} -> dom{self.dst} x{self.count} "
            f"(pass {self.pass_} needs pass {self.depends_on_pass})"
        )


@dataclass
class Pass:
    """One pass: its parallel groups, the edges of work done in it, its cost."""

    number: int
    what: str
    groups: list[list[int]]
    edges: list[Edge]
    cost: int  # the largest domain's work in this pass
    critical_domid: int | None  # that domain (lowest domid on ties)
    work: int  # all domains' work in this pass

    def to_json(self) -> dict[str, Any]:
        return {
            "pass": self.number,
            "what": self.what,
            "groups": [list(g) for g in self.groups],
            "edges": [e.to_json() for e in self.edges],
            "cost": self.cost,
            "critical_domid": self.critical_domid,
            "work": self.work,
        }


@dataclass
class Plan:
    """The restore schedule of a stream (see the module doc)."""

    passes: list[Pass]
    violations: list[Edge] = field(default_factory=list)
    unresolved: dict[str, int] = field(default_factory=dict)

    @property
    def edges(self) -> list[Edge]:
        return [e for p in self.passes for e in p.edges]

    @property
    def parallel_ok(self) -> bool:
        """True when no edge points inside (or after) its own pass."""
        return not self.violations

    @property
    def critical_path(self) -> int:
        return sum(p.cost for p in self.passes)

    @property
    def serial(self) -> int:
        return sum(p.work for p in self.passes)

    def to_json(self) -> dict[str, Any]:
        """The plan as plain JSON data (``json.dumps`` works on it)."""
        crit = self.critical_path
        return {
            "passes": [p.to_json() for p in self.passes],
            "critical_path": {
                "units": "entries",
                "length": crit,
                "serial": self.serial,
                "speedup": round(self.serial / crit, 3) if crit else 1.0,
                "per_pass": [
                    {"pass": p.number, "cost": p.cost, "domid": p.critical_domid}
                    for p in self.passes
                ],
            },
            "parallel_ok": self.parallel_ok,
            "violations": [e.to_json() for e in self.violations],
            "unresolved": dict(sorted(self.unresolved.items())),
        }

    def dumps(self, indent: int | None = None) -> str:
        """:meth:`to_json` as a string, keys sorted."""
        return json.dumps(self.to_json(), indent=indent, sort_keys=True)

    def summary(self) -> str:
        """Passes, groups and edges, one per line."""
        lines: list[str] = []
        for p in self.passes:
            groups = " | ".join(" ".join(f"dom{d}" for d in g) for g in p.groups) or "-"
            crit = "" if p.critical_domid is None else f", longest dom{p.critical_domid}"
            lines.append(f"pass {p.number}: {p.what}")
            lines.append(f"  parallel: {groups}  (cost {p.cost}{crit})")
            lines += [f"  edge {e}" for e in p.edges]
        speed = self.serial / self.critical_path if self.critical_path else 1.0
        lines.append(
            f"critical path {self.critical_path} entries (serial {self.serial}, "
            f"x{speed:.2f} in parallel)"
        )
        if self.violations:
            lines += [f"VIOLATION {e}" for e in self.violations]
        for k, n in sorted(self.unresolved.items()):
            lines.append(f"unresolved {k}: {n} (see validate)")
        return "\n".join(lines)


def _edges(kind: str, src: I64, dst: I64, ids: I64) -> list[Edge]:
    """Aggregate (src, dst) domain-index pairs into edges with counts."""
    if not len(src):
        return []
    pass_, dep = EDGE_KINDS[kind]
    key = src.astype(np.int64) * (1 << 20) + dst.astype(np.int64)
    uk, cnt = np.unique(key, return_counts=True)
    return [
        Edge(kind, int(ids[k >> 20]), int(ids[k & ((1 << 20) - 1)]), pass_, dep, int(c))
        for k, c in zip(uk.tolist(), cnt.tolist(), strict=True)
    ]


def plan(stream: LUStream) -> Plan:
    """The restore plan of ``stream`` (§6): passes 0–3 with their parallel
    groups, every cross-domain edge with its pass, and the critical path.

    References that cannot be resolved (a missing domain, a frame no single
    domain owns, a channel that does not point back) give no edge; they are
    counted in :attr:`Plan.unresolved` — :func:`xenlu.host.validation.validate`
    reports them. Same input, same plan: domains are taken in domid order.

    >>> from xenlu.testing.hostgen import make_host
    >>> p = plan(make_host((4, 16), n_hvm=1, mem_mib=2))
    >>> [(e.kind, e.src, e.dst) for e in p.passes[3].edges]
    [('evtchn_pair', 0, 1)]
    """
    from xenlu.api import expect_format

    expect_format(stream, "lu", "plan")
    acc = _Acc(Host(stream))
    _p2m_edges(acc)
    _grant_map_edges(acc)
    _ioreq_edges(acc)
    _evtchn_edges(acc)
    _other_work(acc)
    return _plan_of(acc)


class _Acc:
    """Work per (pass, domain index), edges per pass and unresolved counts, as
    they are gathered."""

    def __init__(self, h: Host) -> None:
        self.h = h
        self.ids = h.domids
        self.work = np.zeros((4, h.nd), np.int64)
        self.edges: dict[int, list[Edge]] = {p: [] for p in PASSES}
        self.unresolved: dict[str, int] = {}

    def unres(self, kind: str, n: int) -> None:
        if n:
            self.unresolved[kind] = self.unresolved.get(kind, 0) + n

    def add(self, pass_: int, dom: I64) -> None:
        """One unit of work in ``pass_`` for each domain index in ``dom``."""
        self.work[pass_] += np.bincount(dom, minlength=self.h.nd)


def _p2m_edges(acc: _Acc) -> None:
    """P2M: foreign extents (grant_map, map_foreign) are pass 2, the rest pass 0."""
    h, tab = acc.h, acc.h.p2m
    foreign_rows: list[I64] = []
    for base, dom, c in tab.chunks(("p2m_type",)):
        fm = P2M_CLASS_LUT[c["p2m_type"]] == _FOREIGN
        acc.add(0, dom[~fm])
        if fm.any():
            foreign_rows.append(base + np.flatnonzero(fm))
    if not foreign_rows:
        return
    rows = np.concatenate(foreign_rows)
    d_from = tab.dom_of(rows)
    acc.add(2, d_from)
    # a few foreign frames: answered by one scan, no index is built
    owner = owner_index(h, lazy=True).dom_at(tab.take("mfn", rows, np.uint64))
    typ = tab.take("p2m_type", rows)
    ok = (owner >= 0) & (owner != d_from)
    for kind, tmask in (("p2m_grant", typ != _MAP_FOREIGN), ("p2m_foreign", typ == _MAP_FOREIGN)):
        sel = ok & tmask
        acc.edges[2] += _edges(kind, d_from[sel], owner[sel], acc.ids)
        acc.unres(kind, int((~ok & tmask).sum()))


def _grant_map_edges(acc: _Acc) -> None:
    """Grant maps (pass 2, on the granting domain's pass 1)."""
    h = acc.h
    gm = Table([d.grant_maps for d in h.doms])
    if not gm.n:
        return
    dom = gm.dom_col()
    acc.add(2, dom)
    gi = h.lookup(gm.col("granting_domid"))
    ok = (gi >= 0) & (gi != dom)
    acc.edges[2] += _edges("grant_map", dom[ok], gi[ok], acc.ids)
    acc.unres("grant_map", int((~ok).sum()))


def _ioreq_edges(acc: _Acc) -> None:
    """IOREQ servers (pass 2, on the emulator's pass 0)."""
    h = acc.h
    t = h.ioreq_servers()
    if not len(t.dom):
        return
    np.add.at(acc.work[2], t.dom, 1 + np.array([len(r) for r in t.ranges], np.int64))
    dmi = h.lookup(t.dm_domid)
    ok = (dmi >= 0) & (dmi != t.dom)
    acc.edges[2] += _edges("ioreq", t.dom[ok], dmi[ok], acc.ids)
    acc.unres("ioreq", int((~ok).sum()))


def _evtchn_edges(acc: _Acc) -> None:
    """Event channels: all of them in pass 2; reciprocal interdomain pairs in
    pass 3, bound by the side with the lower (domid, port)."""
    ev = Table([d.evtchns for d in acc.h.doms])
    if not ev.n:
        return
    dom = ev.dom_col()
    acc.add(2, dom)
    port = ev.col("port")
    state = ev.col("state")
    remote = ev.col("remote_domid")
    detail = ev.col("detail")
    myid = acc.ids[dom]
    peers = interdomain_peers(myid, port, state, remote, detail)
    inter, q, back = peers.inter, peers.peer, peers.back
    key = (myid[inter] << 32) | port[inter]
    rkey = (remote[inter] << 32) | detail[inter]
    binder = back & (key < rkey)
    b_rows, o_rows = inter[binder], q[binder]
    acc.add(3, dom[b_rows])
    cross = dom[b_rows] != dom[o_rows]
    acc.edges[3] += _edges("evtchn_pair", dom[b_rows][cross], dom[o_rows][cross], acc.ids)
    acc.unres("evtchn_pair", int((~back).sum()))


def _other_work(acc: _Acc) -> None:
    """The rest of the work per pass (the cost model of the module doc)."""
    work = acc.work
    for di, d in enumerate(acc.h.doms):
        work[0, di] += 1 + int(d.info.max_vcpus)
        gt = d.grant_table
        work[1, di] += len(d.ownership) + (
            0 if gt is None else gt.nr_grant_frames + gt.nr_status_frames
        )
        abi = d.evtchn_abi
        work[2, di] += len(d.page_types) + (0 if abi is None else 1 + len(abi.control_blocks))
        work[2, di] += sum(len(d.of_type(t)) for t in VCPU_TYPES)
        ctx = d.hvm_context
        work[2, di] += len(getattr(ctx, "entries", ()) or ())


def _plan_of(acc: _Acc) -> Plan:
    ids, nd = acc.ids, acc.h.nd
    passes: list[Pass] = []
    violations: list[Edge] = []
    for p, what in PASSES.items():
        w = acc.work[p]
        active = [int(ids[i]) for i in np.flatnonzero(w > 0).tolist()]
        es = sorted(acc.edges[p], key=lambda e: (e.kind, e.src, e.dst))
        violations += [e for e in es if e.depends_on_pass >= e.pass_]
        crit = int(np.argmax(w)) if nd and w.max() > 0 else None
        passes.append(
            Pass(
                p,
                what,
                [active] if active else [],
                es,
                int(w.max()) if nd else 0,
                None if crit is None else int(ids[crit]),
                int(w.sum()),
            )
        )
    return Plan(passes, violations, acc.unresolved)
