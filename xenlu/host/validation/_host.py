"""The host as host-wide tables: one bulk record type of every domain as one array."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from xenlu.core.errors import CallerError
from xenlu.host.validation._arrays import (
    CHUNK,
    I64,
    NONE,
    U64,
    Arr,
    cat,
    field_or_zero,
    last_frame,
)
from xenlu.lu.grammar import VCPU_TYPES
from xenlu.lu.host_records import host_grant_limits
from xenlu.lu.records import T
from xenlu.lu.stream import LUDomain, LUStream
from xenlu.migration.hvmctx import HvmContext, HvmEntry
from xenlu.migration.libxc_records import PvVcpu
from xenlu.migration.libxc_records import RecType as X

__all__ = ["COLUMNS", "Host", "IoreqTable", "Ownership", "Table"]


def _vcpu_id(v: Any) -> Any:
    """A PV vCPU record as validate reads it: its ``vcpu_id`` (and that it is
    there: plan counts them), not its context blob."""
    return replace(v, context=b"") if isinstance(v, PvVcpu) else v


def _instances(v: Any) -> Any:
    """HVM_CONTEXT as validate reads it: each entry's typecode and instance
    (plan counts them), not its data."""
    if not isinstance(v, HvmContext):
        return v
    return HvmContext(tuple(HvmEntry(e.typecode, e.instance, b"") for e in v.entries))


#: What :func:`xenlu.host.validation.validate` and
#: :func:`xenlu.host.restore_plan.plan` read of an
#: :class:`~xenlu.lu.model.LUStream` besides LU_VERSION, LU_DOMAIN and
#: LU_SECTION_END: record type → None (kept whole) or the compact copy kept
#: in its place (only the fields they read). Records of any other type
#: (HVM_PARAMS, X86_TSC_INFO, X86_CPUID_POLICY, X86_MSR_POLICY, unknown
#: optional records) are never read by them. The incremental decoder keeps
#: only these for a pipe (``Decoder("lu", keep=COLUMNS)``): every byte is
#: still checked, the report is that of the whole stream.
#:
#: >>> from xenlu.lu.records import T
#: >>> T.LU_P2M in COLUMNS and COLUMNS[T.LU_P2M] is None
#: True
COLUMNS: Mapping[int, Callable[[Any], Any] | None] = {
    T.LU_HOST_INFO: None,  # host (grant limits, bootmem)
    T.LU_REUSABLE_REGIONS: None,
    T.LU_XEN_PAGES: None,
    T.LU_P2M: None,
    T.LU_PAGE_OWNERSHIP: None,
    T.LU_PAGE_TYPES: None,
    T.LU_GRANT_TABLE: None,
    T.LU_GRANT_MAPS: None,
    T.LU_EVTCHN_ABI: None,
    T.LU_EVTCHNS: None,
    T.LU_IOREQ_SERVERS: None,
    X.X86_PV_INFO: None,  # guest_width (SHINFO32)
    X.HVM_CONTEXT: _instances,
    **dict.fromkeys(VCPU_TYPES, _vcpu_id),
}


class Table:
    """One bulk record type of every domain, as one logical array.

    Row ``r`` is entry ``r - offs[d]`` of domain index ``d`` (domains in
    ascending domid order). Small tables are concatenated whole
    (:meth:`col`); large ones are walked in :meth:`chunks` and subsets are
    read with :meth:`take`, so no full-size copy is ever made.
    """

    def __init__(self, parts: Sequence[Arr]) -> None:
        self.parts = list(parts)
        lens = np.array([len(p) for p in self.parts], np.int64)
        self.lens = lens
        self.offs = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
        self.n = int(self.offs[-1])

    def dom_of(self, rows: I64) -> I64:
        return (np.searchsorted(self.offs, rows, side="right") - 1).astype(np.int64)

    def entry(self, rows: I64) -> I64:
        return rows - self.offs[self.dom_of(rows)]

    def dom_col(self) -> I64:
        return np.repeat(np.arange(len(self.parts), dtype=np.int64), self.lens)

    def entry_col(self) -> I64:
        return np.arange(self.n, dtype=np.int64) - np.repeat(self.offs[:-1], self.lens)

    def col(self, name: str, dtype: Any = np.int64) -> Arr:
        return cat([field_or_zero(p, name, dtype) for p in self.parts if len(p)], dtype)

    def take(self, name: str, rows: I64, dtype: Any = np.int64) -> Arr:
        """``col(name)[rows]`` without building the column; rows outside the
        table (callers clamp "not found" to 0, also on an empty table) give 0."""
        out = np.zeros(len(rows), dtype)
        d = self.dom_of(rows)
        inside = (rows >= 0) & (rows < self.n)
        for di in np.unique(d[inside]).tolist():
            sel = np.flatnonzero((d == di) & inside)
            part = self.parts[di]
            if name in (part.dtype.names or ()):
                # gather first, then convert: never a copy of the whole column
                out[sel] = part[name][rows[sel] - self.offs[di]]
        return out

    def chunks(
        self, names: Sequence[str], size: int = CHUNK
    ) -> Iterator[tuple[int, I64, dict[str, Arr]]]:
        """``(first row, domain column, {field: values})`` for consecutive
        windows of at most ``size`` rows; a window inside one domain is a view."""
        pos = 0
        while pos < self.n:
            end = min(pos + size, self.n)
            d0 = int(np.searchsorted(self.offs, pos, side="right")) - 1
            # a window ends at a domain's end unless the domain is small: the
            # windows of a host of many mid-sized domains stay views (no copy)
            edge = int(self.offs[d0 + 1])
            if end > edge and edge - pos >= size // 16:
                end = edge
            d1 = int(np.searchsorted(self.offs, end - 1, side="right")) - 1
            pieces: dict[str, list[Arr]] = {k: [] for k in names}
            counts: list[int] = []
            doms: list[int] = []
            for d in range(d0, d1 + 1):
                a = max(pos, int(self.offs[d])) - int(self.offs[d])
                b = min(end, int(self.offs[d + 1])) - int(self.offs[d])
                if b <= a:
                    continue
                part = self.parts[d]
                for k in names:
                    pieces[k].append(part[k][a:b])
                counts.append(b - a)
                doms.append(d)
            dom = np.repeat(np.array(doms, np.int64), counts)
            cols = {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in pieces.items()}
            yield pos, dom, cols
            pos = end


class Ownership(Table):
    """Ownership rows of all domains (§4.8)."""

    def span(self, rows: I64) -> tuple[U64, U64]:
        """(start, last) of some rows, exact uint64 (last saturates; see
        :func:`last_frame`)."""
        start = self.take("start_mfn", rows, np.uint64)
        return start, last_frame(start, self.take("nr_pages", rows, np.uint64))


class Host:
    """Per-domain facts of a stream, domains in ascending domid order."""

    def __init__(self, stream: LUStream) -> None:
        self.stream = stream
        self.doms: list[LUDomain] = sorted(stream.domains, key=lambda d: d.domid)
        ids = [d.domid for d in self.doms]
        if len(set(ids)) != len(ids):
            raise CallerError("a domid appears in two domain sections (a structural error)")
        self.nd = len(self.doms)
        self.domids = np.array(ids, np.int64)
        self.idx = np.full(1 << 16, -1, np.int64)
        self.idx[self.domids] = np.arange(self.nd)
        self.host = stream.host
        self.epoch = stream.epoch
        self.max_vcpus = np.array([int(d.info.max_vcpus) for d in self.doms], np.int64)
        self.own = Ownership([d.ownership for d in self.doms])
        self.p2m = Table([d.p2m for d in self.doms])

    def lookup(self, domids: Arr) -> I64:
        """Domids (any int) → domain indices, -1 where not in the stream."""
        d = np.asarray(domids).astype(np.int64)
        ok = (d >= 0) & (d < (1 << 16))
        return np.where(ok, self.idx[np.where(ok, d, 0)], -1)

    def owner_ids(self, d: I64) -> I64:
        """Owner domain indices → domids, -1 for none / ambiguous."""
        return np.where(d >= 0, self.domids[np.maximum(d, 0)] if self.nd else 0, -1)

    def owner_names(self, d: I64) -> list[int | str]:
        ids = self.domids
        return [int(ids[x]) if x >= 0 else "none" if x == NONE else "several" for x in d.tolist()]

    def effective(self, d: LUDomain, name: str) -> int:
        """§4.6 effective grant limit ``max_grant_frames`` / ``max_maptrack_frames``."""
        v = int(getattr(d.info, name))
        if v >= 0:
            return v
        frames, maptrack = host_grant_limits(self.host)
        return frames if name == "max_grant_frames" else maptrack

    def ioreq_servers(self) -> IoreqTable:
        """LU_IOREQ_SERVERS of every domain, one row per server (§4.14)."""
        dom: list[int] = []
        ent: list[int] = []
        sid: list[int] = []
        dm: list[int] = []
        ranges: list[Arr] = []
        for di, d in enumerate(self.doms):
            srv = d.ioreq_servers
            if srv is None:
                continue
            for j, s in enumerate(srv.servers):
                dom.append(di)
                ent.append(j)
                sid.append(int(s.id))
                dm.append(int(s.dm_domid))
                ranges.append(s.ranges)
        return IoreqTable(
            np.array(dom, np.int64),
            np.array(ent, np.int64),
            np.array(sid, np.int64),
            np.array(dm, np.int64),
            ranges,
        )


@dataclass(frozen=True)
class IoreqTable:
    """IOREQ servers of every domain: domain index, entry, id, emulating domid,
    and each server's range array."""

    dom: I64
    entry: I64
    id: I64
    dm_domid: I64
    ranges: list[Arr]
