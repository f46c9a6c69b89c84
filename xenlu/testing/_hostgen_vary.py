"""The variations of :mod:`xenlu.testing.hostgen`: changes to a built host that keep it consistent.

:class:`HostVariations` (with one :class:`DomainVariations` per domain) is a
plain value: :func:`xenlu.testing.hostgen.make_host` applies it to the host its
builder made, section by section, so ``write_host`` streams a varied host
as it streams a plain one. Knobs whose useful values depend on the built
host (a port limit, a grant limit, where to cut a bulk record) name a
*choice* that is resolved against it here, so a caller — the hypothesis
strategies of :mod:`xenlu.testing.strategies` above all — draws knobs without
knowing the host, and every combination of knobs gives a consistent host.
Resolving a choice never makes the host inconsistent: a limit the host
cannot honour falls back to the one it needs.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from xenlu.core.epochs import Epoch
from xenlu.core.errors import CallerError
from xenlu.core.registry import OPTIONAL, Record, UnknownRecord
from xenlu.lu.host_records import LuHostInfo, host_grant_limits
from xenlu.lu.io_records import IoreqServers
from xenlu.lu.model import GlobalSection, LUDomain
from xenlu.lu.records import BULK_TYPES, Bulk, T
from xenlu.lu.values import (
    DOMID_MAX,
    EVTCHN_PORTS_2L,
    EVTCHN_PORTS_2L_32,
    EVTCHN_PORTS_FIFO,
    LU_STATE_RUNNING,
    LU_STATE_SHINFO32,
    MAPTRACK_PER_FRAME,
    XEN_MAX_GRANT_FRAMES,
    XEN_MAX_MAPTRACK_FRAMES,
    CdfFlag,
    GrantVersion,
    PageType,
)
from xenlu.migration.libxc_records import RecType as X

#: A per-domain grant limit: the domain's own need, Xen's built-in default, or
#: 0xFFFFFFFF (below 4.13 only: the i32 of 4.13 refuses it, §6). None keeps
#: the generator's value (Xen's default below 4.13, −1 "host default" from 4.13).
GrantChoice = Literal["need", "xen", "huge"]
#: LU_DOMAIN max_evtchn_port: the highest port in use, one above it, or the
#: ABI's last port (None keeps the generator's value).
PortChoice = Literal["top", "above", "limit"]

#: Optional records a domain section may leave out (§2 table).
DROPPABLE: frozenset[int] = frozenset(
    {
        X.X86_TSC_INFO,
        X.X86_CPUID_POLICY,
        X.X86_MSR_POLICY,
        X.HVM_PARAMS,
        X.X86_PV_VCPU_EXTENDED,
        X.X86_PV_VCPU_XSAVE,
    }
)
#: The bulk records of a domain section that :attr:`DomainVariations.split` may cut.
DOMAIN_BULK: tuple[int, ...] = tuple(
    sorted(t for t in BULK_TYPES if t not in (T.LU_REUSABLE_REGIONS, T.LU_XEN_PAGES))
)
#: CDF bits no other record depends on, in every epoch.
FREE_CDF = int(CdfFlag.s3_integrity | CdfFlag.oos_off | CdfFlag.xs_domain)
#: LU_DOMAIN fields of later epochs that :class:`DomainVariations` may set.
LATER_FIELDS = (
    "iommu_opts",
    "vmtrace_size",
    "misc_flags",
    "grant_opts",
    "cpupool_id",
    "altp2m_opts",
    "nr_altp2m",
)
#: How many record types of a domain section :attr:`DomainVariations.order` ranks.
ORDER_SLOTS = 16


@dataclass(frozen=True)
class Unknown:
    """An unknown optional record (type bit 31 set, §1) inserted into a section.

    ``at`` counts positions after the section's first record, modulo their number.
    """

    type: int
    body: bytes = b""
    at: int = 0


@dataclass(frozen=True)
class DomainVariations:
    """Changes to one domain section (the i-th built: 0 is the PV dom0, then the HVM guests).

    * ``running`` False clears LU_STATE running; ``ssidref``; ``cdf_flags`` are
      CDF bits added (:data:`FREE_CDF`, and nested_virt (HVM, 4.15+), vpmu (4.16+)).
    * ``max_evtchn_port``, ``max_grant_frames``, ``max_maptrack_frames``: the
      choices :data:`PortChoice` / :data:`GrantChoice` (maptrack: "need" or
      "xen"); a limit the host default cannot honour becomes the need (§4.6).
    * ``iommu_opts`` … ``nr_altp2m``: LU_DOMAIN fields of later epochs
      (None keeps the conversion default; set only in epochs that have them).
    * ``pending``: bit i is the pending flag of the i-th event channel (FIFO only, §4.13).
    * ``drop``: record types of :data:`DROPPABLE` left out.
    * ``split``: ``(bulk type, cuts)``: the record is cut before entries
      ``1 + (c - 1) % (n - 1)`` (n ≥ 2 entries; §1 never writes count 0).
    * ``order``: sort keys of the record types after LU_DOMAIN, by first
      appearance (missing keys are 0; ties keep the built order). §2's
      LU_EVTCHN_ABI before LU_EVTCHNS and LU_GRANT_TABLE before LU_GRANT_MAPS
      are kept, and so is the order within a type (bulk chunks, vCPUs).
    * ``unknown``: unknown optional records inserted after the shuffle.
    """

    running: bool = True
    ssidref: int = 0
    cdf_flags: int = 0
    max_evtchn_port: PortChoice | None = None
    max_grant_frames: GrantChoice | None = None
    max_maptrack_frames: Literal["need", "xen"] | None = None
    iommu_opts: int | None = None
    vmtrace_size: int | None = None
    misc_flags: int | None = None
    grant_opts: int | None = None
    cpupool_id: int | None = None
    altp2m_opts: int | None = None
    nr_altp2m: int | None = None
    pending: int = 0
    drop: frozenset[int] = frozenset()
    split: tuple[tuple[int, tuple[int, ...]], ...] = ()
    order: tuple[int, ...] = ()
    unknown: tuple[Unknown, ...] = ()


@dataclass(frozen=True)
class HostVariations:
    """Changes to a whole generated host (:func:`xenlu.testing.hostgen.make_host`'s ``variations``).

    * ``domids``: the guests' domain ids, ascending in 1 … 0x7FEF (dom0 stays 0).
    * ``pv32``: a 32-bit PV dom0 — guest_width 4, 3-level page tables,
      LU_STATE shinfo32 (§4.12) — where its ports fit the 32-bit limit.
    * ``gnttab_max_frames`` (an int, 0 = unknown, or "need": the largest
      table), ``gnttab_max_maptrack_frames``, ``gnttab_max_version``: the
      host grant defaults of LU_HOST_INFO (§4.2); None keeps the generator's.
    * ``unknown``: unknown optional records in the global section.
    * ``domains``: one :class:`DomainVariations` per domain (missing ones change nothing).
    * ``convertible``: the host converts losslessly to every supported
      version (LU spec §6, amendment A5): knobs of later epochs, 0xFFFFFFFF
      grant limits and a grant version other than 2 are refused, and an
      explicit grant limit equal to the effective host default (which 4.12
      cannot tell from −1) is written as −1.
    """

    domids: tuple[int, ...] | None = None
    pv32: bool = False
    gnttab_max_frames: int | Literal["need"] | None = None
    gnttab_max_maptrack_frames: int | None = None
    gnttab_max_version: int | None = None
    unknown: tuple[Unknown, ...] = ()
    domains: tuple[DomainVariations, ...] = ()
    convertible: bool = False


def _replace(recs: list[Record], type_code: int, fn: Callable[[Any], Any]) -> list[Record]:
    return [Record(r.type, fn(r.value)) if r.type == type_code else r for r in recs]


def _insert_unknown(recs: list[Record], unknown: tuple[Unknown, ...]) -> list[Record]:
    out = list(recs)
    for u in unknown:
        t = OPTIONAL | (u.type & 0x7FFFFFFF)
        out.insert(1 + u.at % len(out), Record(t, UnknownRecord(t, bytes(u.body))))
    return out


def _max_port(ev: np.ndarray) -> int:
    return int(ev["port"].max()) if len(ev) else 0


class Varier:
    """Applies one :class:`HostVariations` to the sections of one built host, in order."""

    def __init__(
        self,
        v: HostVariations,
        epoch: Epoch,
        *,
        n_domains: int,
        need_frames: int,
        any_v2: bool,
    ) -> None:
        self.v, self.epoch = v, epoch
        self.need_frames, self.any_v2 = need_frames, any_v2
        self.hinfo: LuHostInfo | None = None
        self.new: dict[int, int] | None = None
        if v.domids is not None:
            ids = list(v.domids)
            if (
                len(ids) != n_domains - 1
                or ids != sorted(set(ids))
                or (ids and not 1 <= ids[0] <= ids[-1] <= DOMID_MAX)
            ):
                raise CallerError(
                    f"variations.domids: need {n_domains - 1} ascending unique ids "
                    f"in 1 … {DOMID_MAX:#x}, got {ids}"
                )
            self.new = {0: 0, **{i + 1: n for i, n in enumerate(ids)}}
        if len(v.domains) > n_domains:
            raise CallerError(f"variations.domains: {len(v.domains)} for {n_domains} domains")
        if v.convertible:
            self._check_convertible()

    def _check_convertible(self) -> None:
        v = self.v
        if v.gnttab_max_version not in (None, int(GrantVersion.v2)):
            raise CallerError("a convertible host keeps gnttab_max_version 2 (§6, grant_opts)")
        for i, dv in enumerate(v.domains):
            later = [f for f in LATER_FIELDS if getattr(dv, f) is not None]
            if later or dv.max_grant_frames == "huge" or dv.cdf_flags & ~FREE_CDF:
                raise CallerError(
                    f"variations.domains[{i}]: a convertible host keeps "
                    f"{later or 'its grant limits and CDF bits'} convertible (§6)"
                )

    # -- global section ------------------------------------------------------------
    def global_section(self, sec: GlobalSection) -> GlobalSection:
        v = self.v
        hinfo = sec.host
        changes: dict[str, int] = {}
        if v.gnttab_max_frames is not None:
            frames = v.gnttab_max_frames
            frames = self.need_frames if frames == "need" else int(frames)
            if frames and frames < self.need_frames:
                raise CallerError(
                    f"variations.gnttab_max_frames {frames} is below the "
                    f"{self.need_frames} frames of the largest grant table (§4.2)"
                )
            changes["gnttab_max_frames"] = frames
        if v.gnttab_max_maptrack_frames is not None:
            changes["gnttab_max_maptrack_frames"] = int(v.gnttab_max_maptrack_frames)
        if v.gnttab_max_version is not None:
            if v.gnttab_max_version == GrantVersion.v1 and self.any_v2:
                raise CallerError("variations.gnttab_max_version 1 with a v2 grant table (§4.2)")
            changes["gnttab_max_version"] = int(v.gnttab_max_version)
        recs = sec.records
        if changes:
            hinfo = dataclasses.replace(hinfo, **changes)
            recs = _replace(recs, T.LU_HOST_INFO, lambda _: hinfo)
        self.hinfo = hinfo
        return GlobalSection(_insert_unknown(recs, v.unknown))

    # -- domain sections -----------------------------------------------------------
    def domain(self, i: int, dom: LUDomain, *, fifo: bool) -> LUDomain:
        """Domain section ``i`` varied (the global section must have been varied first)."""
        if self.hinfo is None:
            raise CallerError("Varier.domain before Varier.global_section")
        dv = self.v.domains[i] if i < len(self.v.domains) else DomainVariations()
        recs = list(dom.records)
        if self.new is not None:
            recs = _renumber(recs, self.new)
        d = LUDomain(recs)
        fields: dict[str, Any] = {}
        if self.v.pv32 and not d.is_hvm and _max_port(d.evtchns) < EVTCHN_PORTS_2L_32:
            recs = self._pv32(recs, d)
            fields["lu_state"] = d.info.lu_state | LU_STATE_SHINFO32
        self._fields(dv, d, fields, fifo)
        recs[0] = Record(T.LU_DOMAIN, dataclasses.replace(d.info, **fields))
        if fifo and dv.pending:
            ev = d.evtchns.copy()
            ev["flags"] = [(dv.pending >> k) & 1 for k in range(len(ev))]
            recs = _replace(recs, T.LU_EVTCHNS, lambda _: Bulk(ev))
        bad = dv.drop - DROPPABLE
        if bad:
            raise CallerError(f"variations.drop: {sorted(bad)} may not be left out (§2)")
        recs = [r for r in recs if r.type not in dv.drop]
        recs = _split(recs, dict(dv.split))
        recs = [recs[0], *_shuffle(recs[1:], dv.order)]
        return LUDomain(_insert_unknown(recs, dv.unknown))

    @staticmethod
    def _pv32(recs: list[Record], d: LUDomain) -> list[Record]:
        """§4.12: a 32-bit PV guest: guest_width 4, 3-level page tables (L4 → L3)."""
        recs = _replace(
            recs, X.X86_PV_INFO, lambda v: dataclasses.replace(v, guest_width=4, pt_levels=3)
        )
        pt = d.page_types.copy()
        pt["type"] = np.where(pt["type"] == PageType.l4, PageType.l3, pt["type"])
        return _replace(recs, T.LU_PAGE_TYPES, lambda _: Bulk(pt))

    def _fields(
        self, dv: DomainVariations, d: LUDomain, fields: dict[str, Any], fifo: bool
    ) -> None:
        """LU_DOMAIN flags and limits no other record depends on (§4.6)."""
        info = d.info
        lu_state = fields.get("lu_state", info.lu_state)
        fields["lu_state"] = lu_state if dv.running else lu_state & ~LU_STATE_RUNNING
        fields["ssidref"] = dv.ssidref
        cdf = int(dv.cdf_flags)
        later = {
            CdfFlag.nested_virt: d.is_hvm and self.epoch >= (4, 15),
            CdfFlag.vpmu: self.epoch >= (4, 16),
        }
        if cdf & ~FREE_CDF & ~sum(int(b) for b, ok in later.items() if ok):
            raise CallerError(f"variations: CDF bits {cdf:#x} not free in domain {d.domid}")
        fields["cdf_flags"] = info.cdf_flags | cdf
        if dv.max_evtchn_port is not None:
            if fields["lu_state"] & LU_STATE_SHINFO32:
                limit = EVTCHN_PORTS_2L_32
            else:
                limit = EVTCHN_PORTS_FIFO if fifo else EVTCHN_PORTS_2L
            top = _max_port(d.evtchns)
            choice = {"top": top, "above": min(top + 1, limit - 1), "limit": limit - 1}
            fields["max_evtchn_port"] = choice[dv.max_evtchn_port]
        self._grant_limits(dv, d, fields)
        names = {f.name for f in dataclasses.fields(info)}
        for name in LATER_FIELDS:
            value = getattr(dv, name)
            if value is None:
                continue
            if name not in names:
                raise CallerError(f"variations: LU_DOMAIN has no {name} in epoch {self.epoch}")
            fields[name] = value

    def _grant_limits(self, dv: DomainVariations, d: LUDomain, fields: dict[str, Any]) -> None:
        """max_grant_frames / max_maptrack_frames (§4.6; −1 from 4.13, §6, A5)."""
        assert self.hinfo is not None
        gt = d.grant_table
        nframes = gt.nr_grant_frames if gt is not None else 0
        nmaps = len(d.grant_maps)
        need = {
            "max_grant_frames": max(nframes, 1),
            "max_maptrack_frames": max(-(-nmaps // MAPTRACK_PER_FRAME), 1),
        }
        xen = {
            "max_grant_frames": XEN_MAX_GRANT_FRAMES,
            "max_maptrack_frames": XEN_MAX_MAPTRACK_FRAMES,
        }
        host_frames, host_maps = host_grant_limits(self.hinfo)
        # −1 (from 4.13) is the host default: only where that covers what the domain uses.
        host_ok = {
            "max_grant_frames": (host_frames >= nframes, host_frames),
            "max_maptrack_frames": (host_maps * MAPTRACK_PER_FRAME > nmaps, host_maps),
        }
        for name in ("max_grant_frames", "max_maptrack_frames"):
            choice = getattr(dv, name)
            if self.epoch < (4, 13):
                if choice == "huge":
                    fields[name] = 0xFFFFFFFF
                elif choice is not None:
                    fields[name] = need[name] if choice == "need" else xen[name]
                continue
            if choice == "huge":
                raise CallerError(f"variations: {name} 0xFFFFFFFF is −1 from Xen 4.13 (§6)")
            ok, effective = host_ok[name]
            value = -1 if choice is None else need[name] if choice == "need" else xen[name]
            if value == -1 and not ok:
                value = need[name] if name == "max_grant_frames" else xen[name]
            if self.v.convertible and value == effective and ok:
                value = -1  # A5: 4.12 cannot tell an explicit effective limit from −1
            fields[name] = value


def _renumber(recs: list[Record], new: dict[int, int]) -> list[Record]:
    """Domain ids through ``new`` in LU_DOMAIN, channels, grant maps and IOREQ servers."""
    lut = np.arange(0x10000, dtype=np.int64)
    for old, n in new.items():
        lut[old] = n
    out = []
    for r in recs:
        v = r.value
        if r.type == T.LU_DOMAIN:
            v = dataclasses.replace(v, domid=new[v.domid])
        elif r.type == T.LU_EVTCHNS:
            a = v.entries.copy()
            a["remote_domid"] = lut[a["remote_domid"]]
            v = Bulk(a)
        elif r.type == T.LU_GRANT_MAPS:
            a = v.entries.copy()
            a["granting_domid"] = lut[a["granting_domid"]]
            v = Bulk(a)
        elif r.type == T.LU_IOREQ_SERVERS:
            v = IoreqServers(
                tuple(
                    dataclasses.replace(s, dm_domid=new.get(s.dm_domid, s.dm_domid))
                    for s in v.servers
                )
            )
        out.append(Record(r.type, v))
    return out


def _split(recs: list[Record], cuts: dict[int, tuple[int, ...]]) -> list[Record]:
    out: list[Record] = []
    for r in recs:
        n = len(r.value.entries) if r.type in cuts else 0
        if n < 2:
            out.append(r)
            continue
        at = sorted({1 + (c - 1) % (n - 1) for c in cuts[r.type]})
        edges = [0, *at, n]
        out += [Record(r.type, Bulk(r.value.entries[a:b])) for a, b in itertools.pairwise(edges)]
    return out


def _shuffle(recs: list[Record], keys: tuple[int, ...]) -> list[Record]:
    """Records sorted by their type's key, §2's pairs kept in order (see ``order``)."""
    if not keys:
        return recs
    by_type: dict[int, int] = {}
    for r in recs:
        if r.type not in by_type:
            k = len(by_type)
            by_type[r.type] = keys[k] if k < len(keys) else 0
    first = {T.LU_EVTCHN_ABI: T.LU_EVTCHNS, T.LU_GRANT_TABLE: T.LU_GRANT_MAPS}
    for head, tail in first.items():
        if head in by_type and tail in by_type and by_type[head] > by_type[tail]:
            by_type[head], by_type[tail] = by_type[tail], by_type[head]
    # Ties: a head sorts before its tail (its first record came first in the built order).
    order = sorted(range(len(recs)), key=lambda i: (by_type[recs[i].type], i))
    return [recs[i] for i in order]
