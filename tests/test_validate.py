"""Semantic validation (LU spec §7): one test per finding code, clean hosts,
scale bounds, determinism, the hand-built SEMANTIC_ONLY vectors, the CLI and
a property test over random hosts with single injected corruptions.

Every fault is made by an *injector*: ``(stream, rng) -> (stream, expected)``
where ``expected`` is the exact set of ``(record, domid, entry, others)`` the
report must hold for that code, or None when the host has nothing to corrupt
that way. The unit tests run each injector on one fixed host; the property
test runs a random injector on random hosts.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from xenlu.cli.app import main
from xenlu.core.registry import Record
from xenlu.host.validation import CODES, CORRUPTION_FINDINGS, Finding, Report, validate
from xenlu.lu.records import (
    DOMID_XEN,
    ECS_INTERDOMAIN,
    ECS_IPI,
    ECS_PIRQ,
    ECS_VIRQ,
    LU_STATE_SHINFO32,
    Bulk,
    EvtchnAbi,
    GrantTable,
    IoreqServers,
    T,
)
from xenlu.lu.stream import GlobalSection, LUDomain, LUStream, X, encode_lu
from xenlu.testing.hostgen import make_host

Key = tuple[str, int, int | None, tuple[int, ...]]
Injected = tuple[LUStream, set[Key]]
Injector = Callable[[LUStream, random.Random], Injected | None]

MISSING = 0x7000  # a domid that no generated host has


# --- building corrupted streams ------------------------------------------------------


def _dom(s: LUStream, domid: int) -> LUDomain:
    return s.domain(domid)


def _replace_dom(s: LUStream, domid: int, records: list[Record]) -> LUStream:
    doms = [LUDomain(records) if d.domid == domid else d for d in s.domains]
    return LUStream(s.global_section, doms)


def set_records(s: LUStream, domid: int, t: int, values: list[Any]) -> LUStream:
    """Replace every record of type ``t`` by ``values`` (at the first one's place)."""
    recs = _dom(s, domid).records
    at = next((i for i, r in enumerate(recs) if r.type == t), len(recs))
    kept = [r for r in recs if r.type != t]
    at = min(at, len(kept))
    return _replace_dom(s, domid, kept[:at] + [Record(t, v) for v in values] + kept[at:])


def set_bulk(s: LUStream, domid: int, t: int, arr: np.ndarray) -> LUStream:
    return set_records(s, domid, t, [Bulk(arr)])


def set_info(s: LUStream, domid: int, **kw: Any) -> LUStream:
    recs = list(_dom(s, domid).records)
    recs[0] = Record(T.LU_DOMAIN, dataclasses.replace(recs[0].value, **kw))
    return _replace_dom(s, domid, recs)


def set_host(s: LUStream, **kw: Any) -> LUStream:
    recs = [
        Record(r.type, dataclasses.replace(r.value, **kw)) if r.type == T.LU_HOST_INFO else r
        for r in s.global_section.records
    ]
    return LUStream(GlobalSection(recs), s.domains)


def set_global_bulk(s: LUStream, t: int, arr: np.ndarray) -> LUStream:
    recs = [r for r in s.global_section.records if r.type != t] + [Record(t, Bulk(arr))]
    return LUStream(GlobalSection(recs), s.domains)


def append(arr: np.ndarray, **fields: Any) -> np.ndarray:
    row = np.zeros(1, arr.dtype)
    for k, v in fields.items():
        row[k] = v
    return np.concatenate((arr, row))


def edit(arr: np.ndarray, i: int, **fields: Any) -> np.ndarray:
    a = arr.copy()
    for k, v in fields.items():
        a[k][i] = v
    return a


def free_frame(s: LUStream, r: random.Random) -> int:
    """A frame below max_page that nothing owns or reserves (hostgen keeps the
    last 4096 frames below max_page free)."""
    return int(s.host.max_page) - 1 - r.randrange(64)


def free_gfn(d: LUDomain) -> int:
    p = d.p2m
    return int((p["gfn"] + p["nr_pages"]).max()) + 0x10000 if len(p) else 0x100000


def ram_frame(d: LUDomain, r: random.Random) -> tuple[int, int]:
    """(ownership entry, frame) of a RAM (not XEN_HEAP) frame of ``d``."""
    o = d.ownership
    i = r.choice(np.flatnonzero(o["flags"] == 0).tolist())
    return i, int(o["start_mfn"][i]) + r.randrange(int(o["nr_pages"][i]))


def hvm(s: LUStream) -> list[LUDomain]:
    return [d for d in s.domains if d.is_hvm]


def fifo(s: LUStream) -> list[LUDomain]:
    return [d for d in s.domains if d.evtchn_abi is not None and d.evtchn_abi.abi == 2]


def two_level(s: LUStream) -> list[LUDomain]:
    return [d for d in s.domains if d.evtchn_abi is not None and d.evtchn_abi.abi == 1]


def new_channel(d: LUDomain, port: int, state: int, **kw: Any) -> np.ndarray:
    ev = d.evtchns
    fields: dict[str, Any] = {"port": port, "state": state, "priority": 7, **kw}
    return append(ev, **fields)


def next_port(d: LUDomain) -> int:
    ev = d.evtchns
    return int(ev["port"].max()) + 1 if len(ev) else 1


def _others(domid: int, *ids: int) -> tuple[int, ...]:
    return tuple(sorted(set(ids) - {domid}))


# --- injectors, one per code -------------------------------------------------------------

INJECT: dict[str, Injector] = {}


def injector(code: str) -> Callable[[Injector], Injector]:
    def deco(f: Injector) -> Injector:
        INJECT[code] = f
        return f

    return deco


@injector("EXTENT_OVERLAP")
def _extent_overlap(s: LUStream, r: random.Random) -> Injected | None:
    xp = s.xen_pages
    j = r.randrange(len(xp))
    start = int(xp["start_mfn"][j]) + r.randrange(int(xp["nr_pages"][j]))
    reg = s.reusable_regions
    s2 = set_global_bulk(s, T.LU_REUSABLE_REGIONS, append(reg, start_mfn=start, nr_pages=1, kind=3))
    return s2, {
        ("LU_REUSABLE_REGIONS", DOMID_XEN, len(reg), ()),
        ("LU_XEN_PAGES", DOMID_XEN, j, ()),
    }


@injector("EXTENT_IN_BOOTMEM")
def _extent_in_bootmem(s: LUStream, r: random.Random) -> Injected | None:
    b0 = int(s.host.lu_bootmem_start) >> 12
    reg = s.reusable_regions
    arr = append(reg, start_mfn=b0 + r.randrange(16), nr_pages=1 + r.randrange(4), kind=3)
    return set_global_bulk(s, T.LU_REUSABLE_REGIONS, arr), {
        ("LU_REUSABLE_REGIONS", DOMID_XEN, len(reg), ())
    }


@injector("OWN_DUPLICATE")
def _own_duplicate(s: LUStream, r: random.Random) -> Injected | None:
    a = r.choice(s.domains)
    b = r.choice(s.domains)  # may be a: owned twice by one domain
    i, frame = ram_frame(a, r)
    own = b.ownership
    s2 = set_bulk(
        s, b.domid, T.LU_PAGE_OWNERSHIP, append(own, start_mfn=frame, nr_pages=1, flags=0)
    )
    return s2, {
        ("LU_PAGE_OWNERSHIP", b.domid, len(own), _others(b.domid, a.domid)),
        ("LU_PAGE_OWNERSHIP", a.domid, i, _others(a.domid, b.domid)),
    }


@injector("OWN_BEYOND_MAX_PAGE")
def _own_beyond(s: LUStream, r: random.Random) -> Injected | None:
    d = r.choice(s.domains)
    own = d.ownership
    frame = int(s.host.max_page) - r.randrange(2)
    arr = append(own, start_mfn=frame, nr_pages=2 + r.randrange(3), flags=0)
    return set_bulk(s, d.domid, T.LU_PAGE_OWNERSHIP, arr), {
        ("LU_PAGE_OWNERSHIP", d.domid, len(own), ())
    }


def _own_in(s: LUStream, r: random.Random, start: int, n: int) -> Injected:
    d = r.choice(s.domains)
    own = d.ownership
    arr = append(own, start_mfn=start + r.randrange(n), nr_pages=1, flags=0)
    return set_bulk(s, d.domid, T.LU_PAGE_OWNERSHIP, arr), {
        ("LU_PAGE_OWNERSHIP", d.domid, len(own), ())
    }


@injector("OWN_IN_BOOTMEM")
def _own_in_bootmem(s: LUStream, r: random.Random) -> Injected | None:
    return _own_in(s, r, int(s.host.lu_bootmem_start) >> 12, int(s.host.lu_bootmem_size) >> 12)


@injector("OWN_IN_REUSABLE")
def _own_in_reusable(s: LUStream, r: random.Random) -> Injected | None:
    reg = s.reusable_regions
    j = r.randrange(len(reg))
    return _own_in(s, r, int(reg["start_mfn"][j]), int(reg["nr_pages"][j]))


@injector("OWN_IN_XEN_PAGES")
def _own_in_xen_pages(s: LUStream, r: random.Random) -> Injected | None:
    xp = s.xen_pages
    j = r.randrange(len(xp))
    return _own_in(s, r, int(xp["start_mfn"][j]), int(xp["nr_pages"][j]))


@injector("P2M_GFN_OVERLAP")
def _p2m_gfn_overlap(s: LUStream, r: random.Random) -> Injected | None:
    if not hvm(s):
        return None
    d = r.choice(hvm(s))
    p = d.p2m
    i = r.randrange(len(p))
    gfn = int(p["gfn"][i]) + r.randrange(int(p["nr_pages"][i]))
    arr = append(p, gfn=gfn, mfn=2**64 - 1, nr_pages=1, p2m_type=4, access=7)  # mmio_dm
    return set_bulk(s, d.domid, T.LU_P2M, arr), {
        ("LU_P2M", d.domid, len(p), ()),
        ("LU_P2M", d.domid, i, ()),
    }


@injector("P2M_FRAME_NOT_OWNED")
def _p2m_not_owned(s: LUStream, r: random.Random) -> Injected | None:
    if not hvm(s):
        return None
    d = r.choice(hvm(s))
    p = d.p2m
    i = r.choice(np.flatnonzero(p["p2m_type"] == 0).tolist())
    mfn = int(s.host.max_page) - 4096 + r.randrange(64)  # the free tail below max_page
    arr = edit(p, i, mfn=mfn)
    return set_bulk(s, d.domid, T.LU_P2M, arr), {("LU_P2M", d.domid, i, ())}


def _p2m_append(s: LUStream, r: random.Random, typ: int, mfn: int, n: int = 1) -> Injected:
    d = r.choice(hvm(s))
    p = d.p2m
    arr = append(p, gfn=free_gfn(d), mfn=mfn, nr_pages=n, p2m_type=typ, access=7)
    return set_bulk(s, d.domid, T.LU_P2M, arr), {("LU_P2M", d.domid, len(p), ())}


@injector("P2M_SHARED_OUTSIDE_COW")
def _p2m_shared(s: LUStream, r: random.Random) -> Injected | None:
    if not hvm(s):
        return None
    return _p2m_append(s, r, 12, free_frame(s, r))


@injector("P2M_FOREIGN_UNOWNED")
def _p2m_foreign_unowned(s: LUStream, r: random.Random) -> Injected | None:
    if not hvm(s):
        return None
    return _p2m_append(s, r, 14, free_frame(s, r))


@injector("P2M_FOREIGN_SELF")
def _p2m_foreign_self(s: LUStream, r: random.Random) -> Injected | None:
    if not hvm(s):
        return None
    d = r.choice(hvm(s))
    _, frame = ram_frame(d, r)
    p = d.p2m
    arr = append(p, gfn=free_gfn(d), mfn=frame, nr_pages=1, p2m_type=14, access=7)
    return set_bulk(s, d.domid, T.LU_P2M, arr), {("LU_P2M", d.domid, len(p), ())}


@injector("P2M_GRANT_UNBACKED")
def _p2m_grant_unbacked(s: LUStream, r: random.Random) -> Injected | None:
    if not hvm(s) or len(s.domains) < 2:
        return None
    d = r.choice(hvm(s))
    owner = r.choice([x for x in s.domains if x.domid != d.domid])
    _, frame = ram_frame(owner, r)
    p = d.p2m
    typ = r.choice((7, 8))
    arr = append(p, gfn=free_gfn(d), mfn=frame, nr_pages=1, p2m_type=typ, access=7)
    return set_bulk(s, d.domid, T.LU_P2M, arr), {("LU_P2M", d.domid, len(p), (owner.domid,))}


@injector("PT_NOT_OWNED")
def _pt_not_owned(s: LUStream, r: random.Random) -> Injected | None:
    d = next(x for x in s.domains if not x.is_hvm)
    pt = d.page_types
    i = r.randrange(len(pt))
    arr = edit(pt, i, mfn=free_frame(s, r), flags=0, type=7)
    return set_bulk(s, d.domid, T.LU_PAGE_TYPES, arr), {("LU_PAGE_TYPES", d.domid, i, ())}


@injector("PT_DUPLICATE")
def _pt_duplicate(s: LUStream, r: random.Random) -> Injected | None:
    d = next(x for x in s.domains if not x.is_hvm)
    pt = d.page_types
    i = 1 + r.randrange(len(pt) - 1)
    j = r.randrange(i)
    arr = edit(pt, i, mfn=int(pt["mfn"][j]))
    return set_bulk(s, d.domid, T.LU_PAGE_TYPES, arr), {("LU_PAGE_TYPES", d.domid, i, ())}


@injector("GNT_TOO_MANY_FRAMES")
def _gnt_too_many(s: LUStream, r: random.Random) -> Injected | None:
    d = r.choice(s.domains)
    gt = d.grant_table
    assert gt is not None
    return set_info(s, d.domid, max_grant_frames=gt.nr_grant_frames - 1), {
        ("LU_GRANT_TABLE", d.domid, None, ())
    }


@injector("GNT_VERSION_ABOVE_MAX")
def _gnt_version(s: LUStream, r: random.Random) -> Injected | None:
    v2 = [d for d in s.domains if d.grant_table is not None and d.grant_table.version == 2]
    if not v2:
        return None
    if s.epoch >= (4, 16):
        d = r.choice(v2)
        return set_info(s, d.domid, grant_opts=1), {("LU_GRANT_TABLE", d.domid, None, ())}
    return set_host(s, gnttab_max_version=1), {("LU_GRANT_TABLE", d.domid, None, ()) for d in v2}


@injector("GNT_FRAME_NOT_OWNED")
def _gnt_frame_not_owned(s: LUStream, r: random.Random) -> Injected | None:
    d = r.choice(s.domains)
    gt = d.grant_table
    assert gt is not None
    k = r.randrange(gt.nr_grant_frames)
    frames = gt.grant_frames.copy()
    frames[k] = free_frame(s, r)
    s2 = set_records(
        s, d.domid, T.LU_GRANT_TABLE, [GrantTable(gt.version, frames, gt.status_frames)]
    )
    return s2, {("LU_GRANT_TABLE", d.domid, k, ())}


@injector("GNT_FRAME_NOT_XEN_HEAP")
def _gnt_not_heap(s: LUStream, r: random.Random) -> Injected | None:
    d = r.choice(s.domains)
    gt = d.grant_table
    assert gt is not None
    frames = np.concatenate((gt.grant_frames, gt.status_frames))
    k = r.randrange(len(frames))
    own = d.ownership
    i = int(np.flatnonzero(own["start_mfn"] == frames[k])[0])
    s2 = set_bulk(s, d.domid, T.LU_PAGE_OWNERSHIP, edit(own, i, flags=0))
    return s2, {("LU_GRANT_TABLE", d.domid, k, ())}


def _pv_maps(s: LUStream) -> LUDomain | None:
    """A PV domain with grant maps (none of them backs a P2M page)."""
    return next((d for d in s.domains if not d.is_hvm and len(d.grant_maps)), None)


def _gmap_edit(
    s: LUStream, r: random.Random, others: Callable[[np.ndarray, int], tuple[int, ...]], **kw: Any
) -> Injected | None:
    d = _pv_maps(s)
    if d is None:
        return None
    gm = d.grant_maps
    i = r.randrange(len(gm))
    fields = {k: (v(gm, i) if callable(v) else v) for k, v in kw.items()}
    arr = edit(gm, i, **fields)
    return set_bulk(s, d.domid, T.LU_GRANT_MAPS, arr), {
        ("LU_GRANT_MAPS", d.domid, i, _others(d.domid, *others(arr, i)))
    }


@injector("GMAP_GRANTER_MISSING")
def _gmap_missing(s: LUStream, r: random.Random) -> Injected | None:
    return _gmap_edit(s, r, lambda a, i: (MISSING,), granting_domid=MISSING)


@injector("GMAP_GRANTER_SELF")
def _gmap_self(s: LUStream, r: random.Random) -> Injected | None:
    d = _pv_maps(s)
    if d is None:
        return None
    _, frame = ram_frame(d, r)
    return _gmap_edit(s, r, lambda a, i: (), granting_domid=d.domid, mfn=frame, ref=0)


@injector("GMAP_REF_OUT_OF_TABLE")
def _gmap_ref(s: LUStream, r: random.Random) -> Injected | None:
    def ref(a: np.ndarray, i: int) -> int:
        gt = s.domain(int(a["granting_domid"][i])).grant_table
        return 0 if gt is None else gt.nr_entries + r.randrange(4)

    return _gmap_edit(s, r, lambda a, i: (int(a["granting_domid"][i]),), ref=ref)


@injector("GMAP_FRAME_NOT_GRANTERS")
def _gmap_frame(s: LUStream, r: random.Random) -> Injected | None:
    return _gmap_edit(s, r, lambda a, i: (int(a["granting_domid"][i]),), mfn=free_frame(s, r))


@injector("GMAP_HANDLE_LIMIT")
def _gmap_handle_limit(s: LUStream, r: random.Random) -> Injected | None:
    d = _pv_maps(s)
    if d is None:
        return None
    v = int(d.info.max_maptrack_frames)
    lim = 256 * (v if v >= 0 else int(s.host.gnttab_max_maptrack_frames) or 1024)
    return _gmap_edit(s, r, lambda a, i: (), handle=lim + r.randrange(8))


@injector("GMAP_HANDLE_DUPLICATE")
def _gmap_handle_dup(s: LUStream, r: random.Random) -> Injected | None:
    d = _pv_maps(s)
    if d is None or len(d.grant_maps) < 2:
        return None
    gm = d.grant_maps
    i = 1 + r.randrange(len(gm) - 1)
    arr = edit(gm, i, handle=int(gm["handle"][r.randrange(i)]))
    return set_bulk(s, d.domid, T.LU_GRANT_MAPS, arr), {("LU_GRANT_MAPS", d.domid, i, ())}


@injector("GMAP_VCPU_RANGE")
def _gmap_vcpu(s: LUStream, r: random.Random) -> Injected | None:
    d = _pv_maps(s)
    if d is None:
        return None
    return _gmap_edit(s, r, lambda a, i: (), vcpu=int(d.info.max_vcpus) + r.randrange(3))


def _chan_append(s: LUStream, d: LUDomain, *chans: dict[str, Any]) -> tuple[LUStream, int]:
    ev = d.evtchns
    for c in chans:
        ev = append(ev, **{"priority": 7, **c})
    return set_bulk(s, d.domid, T.LU_EVTCHNS, ev), len(d.evtchns)


def _limit(d: LUDomain) -> int:
    abi = d.evtchn_abi
    lim = 131072 if abi is not None and abi.abi == 2 else 4096
    if abi is not None and abi.abi == 1 and int(d.info.lu_state) & LU_STATE_SHINFO32:
        lim = 1024
    return min(lim, int(d.info.max_evtchn_port) + 1)


@injector("EVTCHN_PORT_LIMIT")
def _port_limit(s: LUStream, r: random.Random) -> Injected | None:
    d = r.choice(s.domains)
    s2, i = _chan_append(s, d, {"port": _limit(d) + r.randrange(3), "state": ECS_IPI})
    return s2, {("LU_EVTCHNS", d.domid, i, ())}


@injector("EVTCHN_FIFO_BEYOND_ARRAY")
def _fifo_beyond(s: LUStream, r: random.Random) -> Injected | None:
    if not fifo(s):
        return None
    d = r.choice(fifo(s))
    abi = d.evtchn_abi
    assert abi is not None
    port = 1024 * len(abi.event_array_gfns) + r.randrange(100)
    s2, i = _chan_append(s, d, {"port": max(port, next_port(d)), "state": ECS_IPI, "flags": 1})
    return s2, {("LU_EVTCHNS", d.domid, i, ())}


def _ipi(d: LUDomain, r: random.Random) -> int:
    return int(r.choice(np.flatnonzero(d.evtchns["state"] == ECS_IPI).tolist()))


@injector("EVTCHN_PORT_DUPLICATE")
def _port_dup(s: LUStream, r: random.Random) -> Injected | None:
    d = r.choice(s.domains)
    ev = d.evtchns
    i = _ipi(d, r)
    s2 = set_records(s, d.domid, T.LU_EVTCHNS, [Bulk(ev), Bulk(ev[i : i + 1].copy())])
    return s2, {("LU_EVTCHNS", d.domid, len(ev), ())}


def _chan_edit(s: LUStream, d: LUDomain, i: int, **kw: Any) -> LUStream:
    return set_bulk(s, d.domid, T.LU_EVTCHNS, edit(d.evtchns, i, **kw))


def _last_fields(d: LUDomain, prio: int, vcpu: int) -> dict[str, int]:
    if "fifo_lastq" in (d.evtchns.dtype.names or ()):
        return {"fifo_lastq": (prio << 16) | vcpu}
    return {"last_priority": prio, "last_vcpu": vcpu}


@injector("EVTCHN_NOTIFY_VCPU_RANGE")
def _notify(s: LUStream, r: random.Random) -> Injected | None:
    d = r.choice(s.domains)
    i = _ipi(d, r)
    s2 = _chan_edit(s, d, i, notify_vcpu=int(d.info.max_vcpus) + r.randrange(3))
    return s2, {("LU_EVTCHNS", d.domid, i, ())}


@injector("EVTCHN_LAST_VCPU_RANGE")
def _last_vcpu(s: LUStream, r: random.Random) -> Injected | None:
    if not fifo(s):
        return None
    d = r.choice(fifo(s))
    i = _ipi(d, r)
    s2 = _chan_edit(s, d, i, **_last_fields(d, 7, int(d.info.max_vcpus) + r.randrange(3)))
    return s2, {("LU_EVTCHNS", d.domid, i, ())}


def _two_level_edit(s: LUStream, r: random.Random, **kw: Any) -> Injected | None:
    if not two_level(s):
        return None
    d = r.choice(two_level(s))
    i = _ipi(d, r)
    fields = {k: (v(d) if callable(v) else v) for k, v in kw.items()}
    return _chan_edit(s, d, i, **fields), {("LU_EVTCHNS", d.domid, i, ())}


@injector("EVTCHN_2L_PRIORITY")
def _2l_priority(s: LUStream, r: random.Random) -> Injected | None:
    return _two_level_edit(s, r, priority=r.choice((0, 3, 8, 15)))


@injector("EVTCHN_2L_PENDING")
def _2l_pending(s: LUStream, r: random.Random) -> Injected | None:
    return _two_level_edit(s, r, flags=1)


@injector("EVTCHN_2L_LAST")
def _2l_last(s: LUStream, r: random.Random) -> Injected | None:
    if not two_level(s):
        return None
    d = r.choice(two_level(s))
    i = _ipi(d, r)
    s2 = _chan_edit(s, d, i, **_last_fields(d, r.randrange(16), 1))
    return s2, {("LU_EVTCHNS", d.domid, i, ())}


def _interdomain(s: LUStream, r: random.Random, remote: int, rport: int) -> Injected:
    d = r.choice(s.domains)
    chan = {"port": next_port(d), "state": ECS_INTERDOMAIN, "remote_domid": remote}
    s2, i = _chan_append(s, d, {**chan, "detail": rport})
    return s2, {("LU_EVTCHNS", d.domid, i, _others(d.domid, remote))}


@injector("EVTCHN_REMOTE_DOMAIN_MISSING")
def _remote_domain(s: LUStream, r: random.Random) -> Injected | None:
    return _interdomain(s, r, MISSING, 1)


@injector("EVTCHN_REMOTE_PORT_MISSING")
def _remote_port(s: LUStream, r: random.Random) -> Injected | None:
    b = r.choice(s.domains)
    return _interdomain(s, r, b.domid, 100000 + r.randrange(1000))


@injector("EVTCHN_NOT_RECIPROCAL")
def _not_reciprocal(s: LUStream, r: random.Random) -> Injected | None:
    b = r.choice(s.domains)
    return _interdomain(s, r, b.domid, int(b.evtchns["port"][_ipi(b, r)]))


@injector("EVTCHN_VIRQ_DUPLICATE")
def _virq_dup(s: LUStream, r: random.Random) -> Injected | None:
    d = r.choice(s.domains)
    p = next_port(d)
    virq = r.choice((4, 5, 6, 8, 9))  # global VIRQs hostgen never binds
    s2, i = _chan_append(
        s,
        d,
        {"port": p, "state": ECS_VIRQ, "detail": virq},
        {"port": p + 1, "state": ECS_VIRQ, "detail": virq, "notify_vcpu": 0},
    )
    return s2, {("LU_EVTCHNS", d.domid, i + 1, ())}


@injector("EVTCHN_VCPU_VIRQ_DUPLICATE")
def _vcpu_virq_dup(s: LUStream, r: random.Random) -> Injected | None:
    d = r.choice(s.domains)
    vcpu = r.randrange(int(d.info.max_vcpus))  # hostgen binds VIRQ_TIMER on every vCPU
    chan = {"port": next_port(d), "state": ECS_VIRQ, "detail": 0, "notify_vcpu": vcpu}
    s2, i = _chan_append(s, d, chan)
    return s2, {("LU_EVTCHNS", d.domid, i, ())}


@injector("EVTCHN_PIRQ_DUPLICATE")
def _pirq_dup(s: LUStream, r: random.Random) -> Injected | None:
    d = r.choice(s.domains)
    p = next_port(d)
    pirq = r.randrange(16, 256)
    s2, i = _chan_append(
        s,
        d,
        {"port": p, "state": ECS_PIRQ, "detail": pirq},
        {"port": p + 1, "state": ECS_PIRQ, "detail": pirq},
    )
    return s2, {("LU_EVTCHNS", d.domid, i + 1, ())}


def _cb_edit(s: LUStream, d: LUDomain, k: int, vcpu: int) -> LUStream:
    abi = d.evtchn_abi
    assert abi is not None
    cbs = edit(abi.control_blocks, k, vcpu=vcpu)
    return set_records(s, d.domid, T.LU_EVTCHN_ABI, [EvtchnAbi(abi.abi, cbs, abi.event_array_gfns)])


@injector("EVTCHN_CB_VCPU_RANGE")
def _cb_vcpu(s: LUStream, r: random.Random) -> Injected | None:
    ds = [d for d in fifo(s) if d.evtchn_abi is not None and len(d.evtchn_abi.control_blocks)]
    if not ds:
        return None
    d = r.choice(ds)
    assert d.evtchn_abi is not None
    k = r.randrange(len(d.evtchn_abi.control_blocks))
    s2 = _cb_edit(s, d, k, int(d.info.max_vcpus) + r.randrange(3))
    return s2, {("LU_EVTCHN_ABI", d.domid, k, ())}


@injector("EVTCHN_CB_DUPLICATE")
def _cb_dup(s: LUStream, r: random.Random) -> Injected | None:
    ds = [d for d in fifo(s) if d.evtchn_abi is not None and len(d.evtchn_abi.control_blocks) > 1]
    if not ds:
        return None
    d = r.choice(ds)
    assert d.evtchn_abi is not None
    cbs = d.evtchn_abi.control_blocks
    k = 1 + r.randrange(len(cbs) - 1)
    s2 = _cb_edit(s, d, k, int(cbs["vcpu"][r.randrange(k)]))
    return s2, {("LU_EVTCHN_ABI", d.domid, k, ())}


@injector("SHINFO32_MISMATCH")
def _shinfo32(s: LUStream, r: random.Random) -> Injected | None:
    d = next(x for x in s.domains if not x.is_hvm)
    return set_info(s, d.domid, lu_state=int(d.info.lu_state) ^ LU_STATE_SHINFO32), {
        ("LU_DOMAIN", d.domid, None, ())
    }


def _ioreq(
    s: LUStream,
    r: random.Random,
    f: Callable[[list[Any]], list[Any]],
    entry: int,
    others: Callable[[LUDomain], tuple[int, ...]] = lambda d: (),
) -> Injected | None:
    ds = [d for d in s.domains if d.ioreq_servers is not None]
    if not ds:
        return None
    d = r.choice(ds)
    assert d.ioreq_servers is not None
    servers = f(list(d.ioreq_servers.servers))
    s2 = set_records(s, d.domid, T.LU_IOREQ_SERVERS, [IoreqServers(tuple(servers))])
    return s2, {("LU_IOREQ_SERVERS", d.domid, entry, _others(d.domid, *others(d)))}


@injector("IOREQ_DM_MISSING")
def _ioreq_missing(s: LUStream, r: random.Random) -> Injected | None:
    return _ioreq(
        s,
        r,
        lambda sv: [dataclasses.replace(sv[0], dm_domid=MISSING), *sv[1:]],
        0,
        lambda d: (MISSING,),
    )


@injector("IOREQ_DM_SELF")
def _ioreq_self(s: LUStream, r: random.Random) -> Injected | None:
    ds = [d for d in s.domains if d.ioreq_servers is not None]
    if not ds:
        return None
    d = r.choice(ds)
    assert d.ioreq_servers is not None
    sv = list(d.ioreq_servers.servers)
    sv[0] = dataclasses.replace(sv[0], dm_domid=d.domid)
    s2 = set_records(s, d.domid, T.LU_IOREQ_SERVERS, [IoreqServers(tuple(sv))])
    return s2, {("LU_IOREQ_SERVERS", d.domid, 0, ())}


@injector("IOREQ_ID_DUPLICATE")
def _ioreq_id(s: LUStream, r: random.Random) -> Injected | None:
    return _ioreq(s, r, lambda sv: [*sv, sv[0]], 1)


@injector("IOREQ_RANGE_OVERLAP")
def _ioreq_range(s: LUStream, r: random.Random) -> Injected | None:
    def f(sv: list[Any]) -> list[Any]:
        rg = sv[0].ranges
        j = r.randrange(len(rg))
        new = append(
            rg, type=int(rg["type"][j]), start=int(rg["end"][j]), end=int(rg["end"][j]) + 4
        )
        return [dataclasses.replace(sv[0], ranges=new), *sv[1:]]

    return _ioreq(s, r, f, 0)


@injector("PV_VCPU_RANGE")
def _pv_vcpu(s: LUStream, r: random.Random) -> Injected | None:
    d = next(x for x in s.domains if not x.is_hvm)
    t = r.choice(sorted({rec.type for rec in d.records if rec.type in (4, 5, 6, 0x0C)}))
    vs = d.of_type(t)
    k = r.randrange(len(vs))
    vs[k] = dataclasses.replace(vs[k], vcpu_id=int(d.info.max_vcpus) + r.randrange(3))
    name = {4: "X86_PV_VCPU_BASIC", 5: "X86_PV_VCPU_EXTENDED", 6: "X86_PV_VCPU_XSAVE"}[t]
    return set_records(s, d.domid, t, vs), {(name, d.domid, k, ())}


@injector("HVM_INSTANCE_RANGE")
def _hvm_instance(s: LUStream, r: random.Random) -> Injected | None:
    if not hvm(s):
        return None
    d = r.choice(hvm(s))
    ctx = d.hvm_context
    per_vcpu = [i for i, e in enumerate(ctx.entries) if e.typecode in (2, 5, 6, 14, 17)]
    k = r.choice(per_vcpu)
    ents = list(ctx.entries)
    ents[k] = dataclasses.replace(ents[k], instance=int(d.info.max_vcpus) + r.randrange(3))
    s2 = set_records(s, d.domid, X.HVM_CONTEXT, [type(ctx)(tuple(ents))])
    return s2, {("HVM_CONTEXT", d.domid, k, ())}


# --- helpers for the assertions ---------------------------------------------------


def keys(report: Report, code: str) -> set[Key]:
    return {(f.record, f.domid, f.entry, f.others) for f in report.findings if f.code == code}


def codes(report: Report) -> set[str]:
    return {f.code for f in report.findings}


@pytest.fixture(scope="module")
def base() -> LUStream:
    """dom0 PV (two-level, grant v1), dom1 HVM (two-level, v1, a grant_map P2M
    page of dom2), dom2 HVM (FIFO, grant v2)."""
    return make_host((4, 16), n_hvm=2, mem_mib=2, dom0_mem_mib=2, vcpus=2)


def check(base: LUStream, code: str, seed: int = 0) -> Report:
    got = INJECT[code](base, random.Random(seed))
    assert got is not None
    stream, expected = got
    report = validate(stream)
    assert codes(report) == {code}, report.summary()
    assert keys(report, code) == expected, report.summary()
    # the two owner indexes agree on every injected fault
    assert validate(stream, method="interval").findings == report.findings
    assert validate(stream, method="dense").findings == report.findings
    return report


# --- the clean host ---------------------------------------------------------------


@pytest.mark.parametrize("version", [(4, 11), (4, 13), (4, 15), (4, 18), (4, 21)])
@pytest.mark.parametrize("method", ["auto", "dense", "interval"])
def test_clean_hosts_have_no_findings(version: tuple[int, int], method: Any) -> None:
    host = make_host(version, n_hvm=3, mem_mib=2, dom0_mem_mib=2, fragmentation=0.3, seed=7)
    report = validate(host, method=method)
    assert report.findings == [] and report.omitted == [] and report.ok


def test_demo_host_is_clean() -> None:
    host = make_host(
        (4, 11), n_hvm=6, mem_mib=64, dom0_mem_mib=128, vcpus=4, fragmentation=0.05, seed=2026
    )
    assert validate(host).findings == []


def test_every_code_has_an_injector_and_a_test() -> None:
    assert set(INJECT) == set(CODES)
    tested = {
        name[len("test_code_") :].upper() for name in globals() if name.startswith("test_code_")
    }
    assert tested == set(CODES)
    assert set(CORRUPTION_FINDINGS.values()) <= set(CODES)


# --- one test per finding code ---------------------------------------------------------


def test_code_extent_overlap(base: LUStream) -> None:
    r = check(base, "EXTENT_OVERLAP")
    f = r.findings[0]
    assert f.domid == DOMID_XEN and f.severity == "error"
    assert {x.values["other_record"] for x in r.findings} == {"LU_XEN_PAGES", "LU_REUSABLE_REGIONS"}


def test_code_extent_in_bootmem(base: LUStream) -> None:
    r = check(base, "EXTENT_IN_BOOTMEM")
    assert r.findings[0].values["bootmem_start_mfn"] == base.host.lu_bootmem_start >> 12


def test_code_own_duplicate(base: LUStream) -> None:
    # across domains: both claimants, each naming the other
    s, _ = INJECT["OWN_DUPLICATE"](base, random.Random(0)) or (base, set())
    r = validate(s)
    dup = [f for f in r.findings if f.code == "OWN_DUPLICATE"]
    assert len(dup) == 2 and codes(r) == {"OWN_DUPLICATE"}
    # a fixed cross-domain case with known coordinates
    own2 = base.domain(2).ownership
    frame = int(base.domain(1).ownership["start_mfn"][0]) + 5
    s = set_bulk(base, 2, T.LU_PAGE_OWNERSHIP, append(own2, start_mfn=frame, nr_pages=1))
    r = validate(s)
    assert keys(r, "OWN_DUPLICATE") == {
        ("LU_PAGE_OWNERSHIP", 1, 0, (2,)),
        ("LU_PAGE_OWNERSHIP", 2, len(own2), (1,)),
    }
    assert codes(r) == {"OWN_DUPLICATE"}  # dom1's P2M over the frame does not cascade
    f = next(x for x in r.findings if x.domid == 2)
    assert (
        f.values["mfn"] == frame and f.values["other_domid"] == 1 and f.values["other_entry"] == 0
    )
    # twice by one domain
    for seed in range(20):
        check(base, "OWN_DUPLICATE", seed)


def test_own_duplicate_three_claimants(base: LUStream) -> None:
    frame = int(base.domain(1).ownership["start_mfn"][0])
    s = base
    for d in (0, 2):
        own = s.domain(d).ownership
        s = set_bulk(s, d, T.LU_PAGE_OWNERSHIP, append(own, start_mfn=frame, nr_pages=1))
    r = validate(s)
    got = {(f.domid, f.others) for f in r.findings}
    assert got == {(0, (1, 2)), (1, (0, 2)), (2, (0, 1))}
    assert validate(s, method="interval").findings == r.findings


def test_code_own_beyond_max_page(base: LUStream) -> None:
    r = check(base, "OWN_BEYOND_MAX_PAGE")
    assert r.findings[0].values["max_page"] == base.host.max_page


def test_code_own_in_bootmem(base: LUStream) -> None:
    check(base, "OWN_IN_BOOTMEM")


def test_code_own_in_reusable(base: LUStream) -> None:
    r = check(base, "OWN_IN_REUSABLE")
    assert r.findings[0].values["kind"] in ("FRAMETABLE", "XEN_IMAGE", "SCRATCH")


def test_code_own_in_xen_pages(base: LUStream) -> None:
    r = check(base, "OWN_IN_XEN_PAGES")
    assert r.findings[0].values["kind"] in ("M2P", "IOMMU_PT", "LU_DATA", "SHARED")


def test_code_p2m_gfn_overlap(base: LUStream) -> None:
    check(base, "P2M_GFN_OVERLAP")


def test_code_p2m_frame_not_owned(base: LUStream) -> None:
    check(base, "P2M_FRAME_NOT_OWNED")
    # a RAM extent moved onto another domain's frames names that owner
    p = base.domain(1).p2m
    frame = int(base.domain(2).ownership["start_mfn"][0])
    r = validate(set_bulk(base, 1, T.LU_P2M, edit(p, 0, mfn=frame)))
    f = next(x for x in r.findings if x.code == "P2M_FRAME_NOT_OWNED")
    assert (f.domid, f.entry, f.others, f.values["owner"]) == (1, 0, (2,), 2)
    # an extent that runs off the end of its owner's frames: first frame past them
    r = validate(set_bulk(base, 1, T.LU_P2M, edit(p, 0, nr_pages=513)))
    f = next(x for x in r.findings if x.code == "P2M_FRAME_NOT_OWNED")
    assert f.values["bad_mfn"] == int(p["mfn"][0]) + 512


def test_code_p2m_shared_outside_cow(base: LUStream) -> None:
    check(base, "P2M_SHARED_OUTSIDE_COW")


def test_code_p2m_foreign_unowned(base: LUStream) -> None:
    check(base, "P2M_FOREIGN_UNOWNED")


def test_code_p2m_foreign_self(base: LUStream) -> None:
    check(base, "P2M_FOREIGN_SELF")


def test_code_p2m_grant_unbacked(base: LUStream) -> None:
    check(base, "P2M_GRANT_UNBACKED")
    # readonly must match the type: dom1's grant_map_rw page turned ro
    p = base.domain(1).p2m
    i = int(np.flatnonzero(p["p2m_type"] == 7)[0])
    r = validate(set_bulk(base, 1, T.LU_P2M, edit(p, i, p2m_type=8)))
    assert keys(r, "P2M_GRANT_UNBACKED") == {("LU_P2M", 1, i, (2,))}
    # one entry backs one page: a second page on the same frame is unbacked
    q = append(p, gfn=free_gfn(base.domain(1)), mfn=int(p["mfn"][i]), nr_pages=1, p2m_type=7)
    r = validate(set_bulk(base, 1, T.LU_P2M, q))
    assert {f.entry for f in r.findings if f.code == "P2M_GRANT_UNBACKED"} == {i, len(p)}


def test_code_pt_not_owned(base: LUStream) -> None:
    check(base, "PT_NOT_OWNED")


def test_code_pt_duplicate(base: LUStream) -> None:
    r = check(base, "PT_DUPLICATE")
    assert r.findings[0].values["first_entry"] < r.findings[0].entry  # type: ignore[operator]


def test_code_gnt_too_many_frames(base: LUStream) -> None:
    check(base, "GNT_TOO_MANY_FRAMES")
    # before 4.13 the limit is a u32; from 4.13 a negative value is the host default
    old = make_host((4, 12), n_hvm=1, mem_mib=2, dom0_mem_mib=2)
    r = validate(set_info(old, 1, max_grant_frames=1))
    assert keys(r, "GNT_TOO_MANY_FRAMES") == {("LU_GRANT_TABLE", 1, None, ())}
    r = validate(set_host(base, gnttab_max_frames=2))  # -1 → host default 2 < 4 / 8 frames
    assert {f.domid for f in r.findings if f.code == "GNT_TOO_MANY_FRAMES"} == {0, 1, 2}


def test_code_gnt_version_above_max(base: LUStream) -> None:
    check(base, "GNT_VERSION_ABOVE_MAX")  # 4.16: grant_opts
    old = make_host((4, 13), n_hvm=2, mem_mib=2, dom0_mem_mib=2)
    assert validate(set_host(old, gnttab_max_version=0)).ok  # 0 = unknown, meaning 2
    r = validate(set_host(old, gnttab_max_version=1))
    assert keys(r, "GNT_VERSION_ABOVE_MAX") == {("LU_GRANT_TABLE", 2, None, ())}
    assert r.findings[0].values["source"] == "gnttab_max_version"


def test_code_gnt_frame_not_owned(base: LUStream) -> None:
    check(base, "GNT_FRAME_NOT_OWNED")
    # a status frame: entry = nr_grant_frames + index
    gt = base.domain(2).grant_table
    assert gt is not None
    st_ = gt.status_frames.copy()
    st_[0] = int(base.domain(1).ownership["start_mfn"][0])
    r = validate(set_records(base, 2, T.LU_GRANT_TABLE, [GrantTable(2, gt.grant_frames, st_)]))
    f = r.findings[0]
    assert (f.code, f.entry, f.others, f.values["frame_kind"]) == (
        "GNT_FRAME_NOT_OWNED",
        gt.nr_grant_frames,
        (1,),
        "status",
    )


def test_code_gnt_frame_not_xen_heap(base: LUStream) -> None:
    check(base, "GNT_FRAME_NOT_XEN_HEAP")


def test_code_gmap_granter_missing(base: LUStream) -> None:
    r = check(base, "GMAP_GRANTER_MISSING")
    assert r.findings[0].others == (MISSING,)


def test_code_gmap_granter_self(base: LUStream) -> None:
    check(base, "GMAP_GRANTER_SELF")


def test_code_gmap_ref_out_of_table(base: LUStream) -> None:
    r = check(base, "GMAP_REF_OUT_OF_TABLE")
    f = r.findings[0]
    assert f.values["ref"] >= f.values["table_entries"]  # type: ignore[operator]


def test_code_gmap_frame_not_granters(base: LUStream) -> None:
    check(base, "GMAP_FRAME_NOT_GRANTERS")
    # the frame of a third domain: both the granter and the owner are named
    gm = base.domain(0).grant_maps
    i = int(np.flatnonzero(gm["granting_domid"] == 1)[0])
    frame = int(base.domain(2).ownership["start_mfn"][0])
    r = validate(set_bulk(base, 0, T.LU_GRANT_MAPS, edit(gm, i, mfn=frame)))
    assert keys(r, "GMAP_FRAME_NOT_GRANTERS") == {("LU_GRANT_MAPS", 0, i, (1, 2))}


def test_code_gmap_handle_limit(base: LUStream) -> None:
    check(base, "GMAP_HANDLE_LIMIT")


def test_code_gmap_handle_duplicate(base: LUStream) -> None:
    check(base, "GMAP_HANDLE_DUPLICATE")


def test_code_gmap_vcpu_range(base: LUStream) -> None:
    check(base, "GMAP_VCPU_RANGE")


def test_code_evtchn_port_limit(base: LUStream) -> None:
    for seed in range(6):  # every domain: two-level 4096 / max_evtchn_port, FIFO 131072
        check(base, "EVTCHN_PORT_LIMIT", seed)
    # the 32-bit shared_info limit of 1024 (a PV guest with guest_width 4)
    from xenlu.migration.libxc import X86PvInfo

    s = set_info(base, 0, lu_state=int(base.domain(0).info.lu_state) | LU_STATE_SHINFO32)
    s = set_records(s, 0, X.X86_PV_INFO, [X86PvInfo(guest_width=4, pt_levels=3)])
    assert validate(s).ok
    s, _ = _chan_append(s, s.domain(0), {"port": 1024, "state": ECS_IPI})
    r = validate(s)
    assert codes(r) == {"EVTCHN_PORT_LIMIT"} and r.findings[0].values["limit"] == 1024


def test_code_evtchn_fifo_beyond_array(base: LUStream) -> None:
    r = check(base, "EVTCHN_FIFO_BEYOND_ARRAY")
    assert r.ok and r.findings[0].severity == "warning" and r.nr_warnings == 1


def test_code_evtchn_port_duplicate(base: LUStream) -> None:
    check(base, "EVTCHN_PORT_DUPLICATE")


def test_code_evtchn_notify_vcpu_range(base: LUStream) -> None:
    check(base, "EVTCHN_NOTIFY_VCPU_RANGE")


def test_code_evtchn_last_vcpu_range(base: LUStream) -> None:
    check(base, "EVTCHN_LAST_VCPU_RANGE")
    old = make_host((4, 14), n_hvm=2, mem_mib=2, dom0_mem_mib=2)  # separate last_vcpu field
    got = INJECT["EVTCHN_LAST_VCPU_RANGE"](old, random.Random(1))
    assert got is not None
    assert keys(validate(got[0]), "EVTCHN_LAST_VCPU_RANGE") == got[1]


def test_code_evtchn_2l_priority(base: LUStream) -> None:
    check(base, "EVTCHN_2L_PRIORITY")


def test_code_evtchn_2l_pending(base: LUStream) -> None:
    check(base, "EVTCHN_2L_PENDING")


def test_code_evtchn_2l_last(base: LUStream) -> None:
    check(base, "EVTCHN_2L_LAST")


def test_code_evtchn_remote_domain_missing(base: LUStream) -> None:
    r = check(base, "EVTCHN_REMOTE_DOMAIN_MISSING")
    assert r.findings[0].others == (MISSING,)


def test_code_evtchn_remote_port_missing(base: LUStream) -> None:
    check(base, "EVTCHN_REMOTE_PORT_MISSING")


def test_code_evtchn_not_reciprocal(base: LUStream) -> None:
    check(base, "EVTCHN_NOT_RECIPROCAL")
    # breaking one end of a pair shows on both ends, each naming the other
    ev = base.domain(1).evtchns
    i = int(np.flatnonzero(ev["state"] == ECS_INTERDOMAIN)[0])
    r = validate(set_bulk(base, 1, T.LU_EVTCHNS, edit(ev, i, detail=1)))
    assert {(f.domid, f.others) for f in r.findings} == {(1, (0,)), (0, (1,))}


def test_code_evtchn_virq_duplicate(base: LUStream) -> None:
    check(base, "EVTCHN_VIRQ_DUPLICATE")


def test_code_evtchn_vcpu_virq_duplicate(base: LUStream) -> None:
    r = check(base, "EVTCHN_VCPU_VIRQ_DUPLICATE")
    assert r.findings[0].values["virq"] == 0
    # the same per-vCPU VIRQ on two different vCPUs is fine
    d = base.domain(1)
    s, _ = _chan_append(base, d, {"port": next_port(d), "state": ECS_VIRQ, "detail": 7})
    s, _ = _chan_append(
        s, s.domain(1), {"port": next_port(d) + 1, "state": ECS_VIRQ, "detail": 7, "notify_vcpu": 1}
    )
    assert validate(s).findings == []


def test_code_evtchn_pirq_duplicate(base: LUStream) -> None:
    check(base, "EVTCHN_PIRQ_DUPLICATE")


def test_code_evtchn_cb_vcpu_range(base: LUStream) -> None:
    check(base, "EVTCHN_CB_VCPU_RANGE")


def test_code_evtchn_cb_duplicate(base: LUStream) -> None:
    check(base, "EVTCHN_CB_DUPLICATE")


def test_code_shinfo32_mismatch(base: LUStream) -> None:
    check(base, "SHINFO32_MISMATCH")


def test_code_ioreq_dm_missing(base: LUStream) -> None:
    check(base, "IOREQ_DM_MISSING")


def test_code_ioreq_dm_self(base: LUStream) -> None:
    check(base, "IOREQ_DM_SELF")


def test_code_ioreq_id_duplicate(base: LUStream) -> None:
    check(base, "IOREQ_ID_DUPLICATE")


def test_code_ioreq_range_overlap(base: LUStream) -> None:
    r = check(base, "IOREQ_RANGE_OVERLAP")
    assert len(r.findings) == 2  # both ranges, on server 0
    assert {f.values["range"] for f in r.findings} == {f.values["other_range"] for f in r.findings}


def test_code_pv_vcpu_range(base: LUStream) -> None:
    check(base, "PV_VCPU_RANGE")


def test_code_hvm_instance_range(base: LUStream) -> None:
    check(base, "HVM_INSTANCE_RANGE")


# --- minimal hand-built streams -------------------------------------------------------


def test_minimal_built_stream(base: LUStream) -> None:
    """A two-domain stream built from scratch with LUStream.build / LUDomain.build."""
    from xenlu.lu.records import LuHostInfo, OwnershipEntry

    info0 = dataclasses.replace(base.domain(0).info)
    info1 = dataclasses.replace(base.domain(0).info, domid=1)
    own = np.zeros(1, OwnershipEntry.LAYOUT.dtype)
    own["start_mfn"], own["nr_pages"] = 0x10000, 16
    other = own.copy()
    other["start_mfn"] = 0x1000F  # last frame of dom0's extent
    host = LuHostInfo(
        page_shift=12,
        nr_domains=2,
        max_page=0x20000,
        lu_bootmem_start=0x8000000,
        lu_bootmem_size=0x200000,
        gnttab_max_frames=0,
        gnttab_max_maptrack_frames=0,
        gnttab_max_version=0,
    )
    pv = base.domain(0).pv_info
    doms = [
        LUDomain.build(info1, pv_info=pv, ownership=other),
        LUDomain.build(info0, pv_info=pv, ownership=own),
    ]
    r = validate(LUStream.build((4, 16), host=host, domains=doms))
    assert [(f.code, f.domid, f.entry, f.others) for f in r.findings] == [
        ("OWN_DUPLICATE", 0, 0, (1,)),
        ("OWN_DUPLICATE", 1, 0, (0,)),
    ]
    assert r.findings[0].values["mfn"] == 0x1000F


def test_empty_stream_is_clean(base: LUStream) -> None:
    s = LUStream.build((4, 21), host=base.host)
    assert validate(s).findings == []


def test_duplicate_domid_is_a_caller_error(base: LUStream) -> None:
    from xenlu.core.errors import CallerError

    with pytest.raises(CallerError):
        validate(LUStream(base.global_section, [*base.domains, base.domains[0]]))


# --- scale: bounded output, determinism -----------------------------------------------


def test_findings_are_capped_per_code_per_domain() -> None:
    host = make_host((4, 16), n_hvm=1, mem_mib=1, dom0_mem_mib=1, fragmentation=1.0, seed=3)
    own1 = host.domain(1).ownership
    ram = own1[own1["flags"] == 0]
    own0 = host.domain(0).ownership
    s = set_bulk(host, 0, T.LU_PAGE_OWNERSHIP, np.concatenate((own0, ram)))
    r = validate(s, max_per_code=10)
    per = {d: sum(1 for f in r.findings if f.domid == d) for d in (0, 1)}
    assert per == {0: 10, 1: 10}
    om = {(o.domid, o.code): (o.total, o.reported) for o in r.omitted}
    assert om == {(0, "OWN_DUPLICATE"): (len(ram), 10), (1, "OWN_DUPLICATE"): (len(ram), 10)}
    assert r.counts() == {"OWN_DUPLICATE": 2 * len(ram)} and r.nr_errors == 2 * len(ram)
    # the first N by entry index
    assert [f.entry for f in r.findings if f.domid == 0] == list(range(len(own0), len(own0) + 10))
    assert validate(s, max_per_code=10, method="interval").findings == r.findings
    assert "more OWN_DUPLICATE" in r.summary()


def test_report_order_and_json_are_deterministic(base: LUStream) -> None:
    s = base
    for code in ("OWN_DUPLICATE", "EVTCHN_PIRQ_DUPLICATE", "EXTENT_OVERLAP", "GMAP_VCPU_RANGE"):
        got = INJECT[code](s, random.Random(5))
        assert got is not None
        s = got[0]
    r1, r2 = validate(s), validate(s)
    assert r1.dumps() == r2.dumps()
    assert r1.findings == sorted(r1.findings, key=Finding.sort_key)
    assert r1.findings[0].domid == DOMID_XEN  # the global section first
    shuffled = LUStream(s.global_section, list(reversed(s.domains)))
    assert validate(shuffled).dumps() == r1.dumps()
    data = json.loads(r1.dumps())
    assert set(data) == {
        "ok",
        "errors",
        "warnings",
        "max_per_code",
        "method",
        "findings",
        "omitted",
    }
    assert set(data["findings"][0]) == {
        "severity",
        "code",
        "message",
        "domid",
        "others",
        "record",
        "entry",
        "values",
    }


def test_bootmem_check_can_be_skipped(base: LUStream) -> None:
    got = INJECT["OWN_IN_BOOTMEM"](base, random.Random(0))
    assert got is not None
    assert validate(got[0], bootmem_check=False).findings == []


# --- the hand-built vectors --------------------------------------------------------------

SEMANTIC_CODES = {
    "sem_port_above_max_evtchn_port": {"EVTCHN_PORT_LIMIT"},
    "sem_port_above_two_level_limit": {"EVTCHN_PORT_LIMIT"},
    "sem_notify_vcpu_ge_max_vcpus": {"EVTCHN_NOTIFY_VCPU_RANGE"},
    "sem_two_level_priority_not_7": {"EVTCHN_2L_PRIORITY"},
    "sem_two_level_pending": {"EVTCHN_2L_PENDING"},
    "sem_two_level_last_fields_nonzero": {"EVTCHN_2L_LAST"},
    "sem_fifo_last_vcpu_ge_max_vcpus": {"EVTCHN_LAST_VCPU_RANGE"},
    "sem_control_block_vcpu_ge_max_vcpus": {"EVTCHN_CB_VCPU_RANGE"},
    "sem_control_block_vcpu_twice": {"EVTCHN_CB_DUPLICATE"},
    "sem_control_blocks_more_than_max_vcpus": {"EVTCHN_CB_VCPU_RANGE"},
    "sem_port_twice_across_records": {"EVTCHN_PORT_DUPLICATE"},
    "sem_interdomain_not_reciprocal": {"EVTCHN_NOT_RECIPROCAL"},
    # d0's channel to d9 also leaves d1's partner channel unanswered
    "sem_interdomain_remote_domain_missing": {
        "EVTCHN_REMOTE_DOMAIN_MISSING",
        "EVTCHN_NOT_RECIPROCAL",
    },
    "sem_virq_bound_twice_per_vcpu": {"EVTCHN_VCPU_VIRQ_DUPLICATE"},
    "sem_global_virq_bound_twice": {"EVTCHN_VIRQ_DUPLICATE"},
    "sem_pirq_bound_twice": {"EVTCHN_PIRQ_DUPLICATE"},
    "sem_port_above_shinfo32_limit": {"EVTCHN_PORT_LIMIT"},
    "sem_shinfo32_without_32bit_guest": {"SHINFO32_MISMATCH"},
    "sem_32bit_guest_without_shinfo32": {"SHINFO32_MISMATCH"},
    "sem_grant_map_vcpu_ge_max_vcpus": {"GMAP_VCPU_RANGE"},
    "sem_grant_map_handle_twice": {"GMAP_HANDLE_DUPLICATE"},
    "sem_grant_map_handle_above_maptrack": {"GMAP_HANDLE_LIMIT"},
    "sem_grant_map_granting_domain_missing": {"GMAP_GRANTER_MISSING"},
    "sem_grant_map_granting_self": {"GMAP_GRANTER_SELF"},
    "sem_grant_map_mfn_not_owned_by_granter": {"GMAP_FRAME_NOT_GRANTERS"},
    "sem_grant_map_ref_outside_table": {"GMAP_REF_OUT_OF_TABLE"},
    "sem_grant_version_above_grant_opts": {"GNT_VERSION_ABOVE_MAX"},
    "sem_grant_frames_above_max": {"GNT_TOO_MANY_FRAMES"},
    "sem_grant_frame_not_xen_heap": {"GNT_FRAME_NOT_XEN_HEAP"},
    "sem_grant_frame_not_owned": {"GNT_FRAME_NOT_OWNED"},
    "sem_grant_version_above_host_max": {"GNT_VERSION_ABOVE_MAX"},
    "sem_grant_frames_above_max_u32": {"GNT_TOO_MANY_FRAMES"},
    "sem_frame_owned_by_two_domains": {"OWN_DUPLICATE"},
    "sem_frame_owned_twice_in_domain": {"OWN_DUPLICATE"},
    "sem_owned_frame_above_max_page": {"OWN_BEYOND_MAX_PAGE"},
    "sem_owned_frame_in_bootmem": {"OWN_IN_BOOTMEM"},
    "sem_owned_frame_in_reusable_region": {"OWN_IN_REUSABLE"},
    "sem_owned_frame_in_xen_pages": {"OWN_IN_XEN_PAGES"},
    "sem_extents_overlap": {"EXTENT_OVERLAP"},
    "sem_extent_overlaps_bootmem": {"EXTENT_IN_BOOTMEM"},
    "sem_page_type_mfn_not_owned": {"PT_NOT_OWNED"},
    "sem_page_type_mfn_twice": {"PT_DUPLICATE"},
    "sem_p2m_ram_frame_not_owned": {"P2M_FRAME_NOT_OWNED"},
    # the page now maps the domain's own frame, which its grant map does not name
    "sem_p2m_grant_map_frame_own": {"P2M_FOREIGN_SELF", "P2M_GRANT_UNBACKED"},
    "sem_p2m_foreign_frame_unowned": {"P2M_FOREIGN_UNOWNED"},
    "sem_p2m_shared_outside_shared_extent": {"P2M_SHARED_OUTSIDE_COW"},
    "sem_p2m_gfn_overlap": {"P2M_GFN_OVERLAP"},
    "sem_p2m_grant_map_without_maptrack": {"P2M_GRANT_UNBACKED"},
    "sem_p2m_grant_map_ro_mismatch": {"P2M_GRANT_UNBACKED"},
    "sem_ioreq_dm_domain_missing": {"IOREQ_DM_MISSING"},
    "sem_ioreq_dm_domain_self": {"IOREQ_DM_SELF"},
    "sem_ioreq_server_id_twice": {"IOREQ_ID_DUPLICATE"},
    "sem_ioreq_ranges_overlap": {"IOREQ_RANGE_OVERLAP"},
    "sem_hvm_context_instance_ge_max_vcpus": {"HVM_INSTANCE_RANGE"},
    "sem_pv_vcpu_id_ge_max_vcpus": {"PV_VCPU_RANGE"},
}

try:
    from tests.vectors.lu_vectors import GOLDEN, SEMANTIC_ONLY
except ImportError:  # pragma: no cover - written alongside
    GOLDEN, SEMANTIC_ONLY = [], []

# The golden hosts keep a FIFO port beyond their event array (valid, §4.12): a warning.
BENIGN = {"EVTCHN_FIFO_BEYOND_ARRAY"}


@pytest.mark.parametrize("vec", SEMANTIC_ONLY, ids=lambda v: v.name)
def test_semantic_only_vectors(vec: Any) -> None:
    from xenlu.lu.stream import decode_lu

    stream = decode_lu(vec.data)  # structurally valid
    report = validate(stream)
    assert not report.ok, vec.rule
    errors = {f.code for f in report.errors}
    if vec.name in SEMANTIC_CODES:
        assert errors == SEMANTIC_CODES[vec.name], (vec.rule, report.summary())
    assert validate(stream, method="interval").findings == report.findings


@pytest.mark.parametrize("vec", GOLDEN, ids=lambda v: v.name)
def test_golden_vectors_have_no_errors(vec: Any) -> None:
    from xenlu.lu.stream import decode_lu

    report = validate(decode_lu(vec.data))
    assert report.ok and codes(report) <= BENIGN, report.summary()


# --- the command line -------------------------------------------------------------------


def test_cli_validate(base: LUStream, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.lu"
    good.write_bytes(encode_lu(base))
    assert main(["validate", str(good)]) == 0
    assert "OK: 0 errors, 0 warnings" in capsys.readouterr().out
    got = INJECT["OWN_DUPLICATE"](base, random.Random(0))
    assert got is not None
    bad = tmp_path / "bad.lu"
    bad.write_bytes(encode_lu(got[0]))
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "OWN_DUPLICATE" in out and "INVALID: 2 errors" in out
    assert main(["validate", "--json", str(bad)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["errors"] == 2 and data["findings"][0]["code"] == "OWN_DUPLICATE"
    # warnings fail only with --strict
    got = INJECT["EVTCHN_FIFO_BEYOND_ARRAY"](base, random.Random(0))
    assert got is not None
    warn = tmp_path / "warn.lu"
    warn.write_bytes(encode_lu(got[0]))
    assert main(["validate", str(warn)]) == 0
    assert main(["validate", "--strict", str(warn)]) == 1
    capsys.readouterr()
    # a stream that does not decode: one line on stderr, exit 1
    trunc = tmp_path / "trunc.lu"
    trunc.write_bytes(good.read_bytes()[:3000])
    assert main(["validate", str(trunc)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "FramingError" in err[0]


def test_cli_validate_memory_image(
    base: LUStream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xenlu.lu.handover import format_liveupdate, write_handover_file

    image = tmp_path / "mem.img"
    write_handover_file(base, str(image))
    option = format_liveupdate(base.host.lu_bootmem_start, base.host.lu_bootmem_size)
    arg = option.split("=", 1)[1]
    assert main(["validate", "--format", "memory", "--liveupdate", arg, str(image)]) == 0
    assert main(["validate", "--format", "memory", str(image)]) == 2  # usage: needs --liveupdate
    capsys.readouterr()


# --- property: random consistent hosts, single corruptions --------------------------------

host_params = st.fixed_dictionaries(
    {
        "version": st.sampled_from(
            [
                (4, 11),
                (4, 12),
                (4, 13),
                (4, 14),
                (4, 15),
                (4, 16),
                (4, 18),
                (4, 19),
                (4, 20),
                (4, 21),
            ]
        ),
        "n_hvm": st.integers(0, 3),
        "mem_mib": st.integers(1, 3),
        "dom0_mem_mib": st.integers(1, 3),
        "vcpus": st.integers(1, 3),
        "fragmentation": st.sampled_from([0.0, 0.05, 0.5, 1.0]),
        "seed": st.integers(0, 2**16),
        "fifo_every": st.integers(0, 2),
        "grant_v2_every": st.integers(0, 2),
    }
)


@settings(max_examples=40)
@given(host_params)
def test_property_random_hosts_validate_clean(params: dict[str, Any]) -> None:
    version = params.pop("version")
    host = make_host(version, **params)
    report = validate(host)
    assert report.findings == [], report.summary()
    assert validate(host, method="interval").findings == []


@settings(max_examples=150)
@given(host_params, st.sampled_from(sorted(INJECT)), st.integers(0, 2**32 - 1))
def test_property_single_corruption_is_found(params: dict[str, Any], code: str, seed: int) -> None:
    version = params.pop("version")
    host = make_host(version, **params)
    got = INJECT[code](host, random.Random(seed))
    assume(got is not None)
    assert got is not None
    stream, expected = got
    report = validate(stream)
    assert codes(report) == {code}, report.summary()
    assert keys(report, code) == expected, report.summary()
    assert validate(stream, method="interval").findings == report.findings
    assert validate(stream, method="dense").findings == report.findings


def test_grant_table_on_a_host_without_any_ownership() -> None:
    # Found by fuzz/fuzz_validate.py: every owner lookup misses on an empty
    # ownership table; the grant frames must be reported, not crash.
    host = make_host((4, 11), n_hvm=1, mem_mib=2, dom0_mem_mib=2)
    doms = [
        dataclasses.replace(d, records=[r for r in d.records if r.type != 0x40000013])
        for d in host.domains
    ]
    stripped = LUStream(host.global_section, doms)
    report = validate(stripped)
    assert "GNT_FRAME_NOT_OWNED" in codes(report)
    assert all(isinstance(f, Finding) for f in report.findings)
