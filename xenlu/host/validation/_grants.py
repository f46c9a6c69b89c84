"""§4.9 page types, §4.10 grant tables, §4.11 grant maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xenlu.host.validation._arrays import AMBIG, I64, Arr, dups_after_first
from xenlu.host.validation._host import Host, Table
from xenlu.host.validation._index import OwnerIndex
from xenlu.host.validation._report import Out
from xenlu.lu.host_records import host_grant_version
from xenlu.lu.stream import LUDomain
from xenlu.lu.values import MAPTRACK_PER_FRAME, OwnershipFlag

__all__ = ["check_grant_maps", "check_grant_tables", "check_page_types"]

_XEN_HEAP = int(OwnershipFlag.xen_heap)


def check_page_types(h: Host, idx: OwnerIndex, out: Out) -> None:
    tab = Table([d.page_types for d in h.doms])
    if not tab.n:
        return
    dom, ent = tab.dom_col(), tab.entry_col()
    mfn_u = tab.col("mfn", np.uint64)
    ids = h.domids
    rows, owner = idx.not_owned(dom, mfn_u)
    out.emit(
        "PT_NOT_OWNED",
        ids[dom[rows]],
        ent[rows],
        "page type for frame {mfn:#x} owned by {owner}",
        {"mfn": mfn_u[rows], "owner": h.owner_names(owner)},
        others=h.owner_ids(owner),
    )
    dup, first = dups_after_first(dom, mfn_u)
    out.emit(
        "PT_DUPLICATE",
        ids[dom[dup]],
        ent[dup],
        "mfn {mfn:#x} already typed by entry {first_entry}",
        {"mfn": mfn_u[dup], "first_entry": ent[first]},
    )


# --- §4.10 grant tables ---------------------------------------------------------


def _grant_version_max(h: Host, d: LUDomain) -> int:
    if hasattr(d.info, "grant_opts"):
        return int(d.info.grant_opts) & 0xF
    return host_grant_version(h.host)


def _grant_table_header(h: Host, d: LUDomain, out: Out) -> None:
    """§4.10: frame count and version against the domain's effective limits."""
    gt = d.grant_table
    assert gt is not None
    lim = h.effective(d, "max_grant_frames")
    if gt.nr_grant_frames > lim:
        out.emit(
            "GNT_TOO_MANY_FRAMES",
            [d.domid],
            None,
            "{nr_grant_frames} grant frames, effective max_grant_frames {max_grant_frames}",
            {"nr_grant_frames": gt.nr_grant_frames, "max_grant_frames": lim},
        )
    vmax = _grant_version_max(h, d)
    if gt.version > vmax:
        out.emit(
            "GNT_VERSION_ABOVE_MAX",
            [d.domid],
            None,
            "grant table v{version} above the maximum v{max_version} ({source})",
            {
                "version": gt.version,
                "max_version": vmax,
                "source": "grant_opts" if hasattr(d.info, "grant_opts") else "gnttab_max_version",
            },
        )


def check_grant_tables(h: Host, idx: OwnerIndex, out: Out) -> None:
    """§4.10: headers, then every grant and status frame against ownership."""
    own = h.own
    frames: list[Arr] = []
    fdom: list[int] = []
    fgrant: list[int] = []
    for di, d in enumerate(h.doms):
        gt = d.grant_table
        if gt is None:
            continue
        _grant_table_header(h, d, out)
        frames.append(np.concatenate((gt.grant_frames, gt.status_frames)).astype(np.uint64))
        fdom.append(di)
        fgrant.append(gt.nr_grant_frames)
    if not frames:
        return
    lens = np.array([len(f) for f in frames], np.int64)
    dom = np.repeat(np.array(fdom, np.int64), lens)
    offs = np.concatenate(([0], np.cumsum(lens)))
    ent = np.arange(int(lens.sum())) - np.repeat(offs[:-1], lens)
    nr_grant = np.repeat(np.array(fgrant, np.int64), lens)
    mfn_u = np.concatenate(frames)
    row = idx.row_at(mfn_u)
    odom = np.where(row >= 0, own.dom_of(np.maximum(row, 0)), row)
    oflags = np.where(row >= 0, own.take("flags", np.maximum(row, 0)), 0)
    ids = h.domids
    kind = np.where(ent < nr_grant, "grant", "status")
    kidx = np.where(ent < nr_grant, ent, ent - nr_grant)
    b = np.flatnonzero((odom != dom) & (odom != AMBIG))
    out.emit(
        "GNT_FRAME_NOT_OWNED",
        ids[dom[b]],
        ent[b],
        "{frame_kind} frame {index} ({mfn:#x}) is owned by {owner}",
        {
            "mfn": mfn_u[b],
            "frame_kind": kind[b],
            "index": kidx[b],
            "owner": h.owner_names(odom[b]),
        },
        others=h.owner_ids(odom[b]),
    )
    b = np.flatnonzero((odom == dom) & ((oflags & _XEN_HEAP) == 0))
    out.emit(
        "GNT_FRAME_NOT_XEN_HEAP",
        ids[dom[b]],
        ent[b],
        "{frame_kind} frame {index} ({mfn:#x}) is owned without XEN_HEAP",
        {
            "mfn": mfn_u[b],
            "frame_kind": kind[b],
            "index": kidx[b],
            "ownership_entry": own.entry(row[b]),
        },
    )


# --- §4.11 grant maps -----------------------------------------------------------


@dataclass
class _GrantMaps:
    """LU_GRANT_MAPS of every domain as host-wide columns."""

    dom: I64
    ent: I64
    handle: I64
    ref: I64
    granter: I64
    vcpu: I64
    mfn_u: Arr
    gi: I64  # the granting domain's index, -1 when not in the stream


def check_grant_maps(h: Host, idx: OwnerIndex, out: Out) -> None:
    """§4.11: granting domain, ref, frame owner, handle and vCPU of every map."""
    tab = Table([d.grant_maps for d in h.doms])
    if not tab.n:
        return
    granter = tab.col("granting_domid")
    g = _GrantMaps(
        tab.dom_col(),
        tab.entry_col(),
        tab.col("handle"),
        tab.col("ref"),
        granter,
        tab.col("vcpu"),
        tab.col("mfn", np.uint64),
        h.lookup(granter),
    )
    _grant_maps_granter(h, idx, g, out)
    _grant_maps_local(h, g, out)


def _grant_maps_granter(h: Host, idx: OwnerIndex, g: _GrantMaps, out: Out) -> None:
    """The granting domain: present, not self, its table holds ref, it owns the frame."""
    ids = h.domids
    dom, ent, handle, ref, granter, mfn_u, gi = (
        g.dom,
        g.ent,
        g.handle,
        g.ref,
        g.granter,
        g.mfn_u,
        g.gi,
    )
    b = np.flatnonzero(gi < 0)
    out.emit(
        "GMAP_GRANTER_MISSING",
        ids[dom[b]],
        ent[b],
        "handle {handle}: granting domain {granting_domid} is not in the stream",
        {"handle": handle[b], "granting_domid": granter[b]},
        others=granter[b],
    )
    b = np.flatnonzero(gi == dom)
    out.emit(
        "GMAP_GRANTER_SELF",
        ids[dom[b]],
        ent[b],
        "handle {handle}: granting domain is the mapping domain",
        {"handle": handle[b], "granting_domid": granter[b]},
    )
    nr_ent = np.array(
        [0 if d.grant_table is None else d.grant_table.nr_entries for d in h.doms] + [0],
        np.int64,
    )
    has = gi >= 0
    b = np.flatnonzero(has & (ref >= nr_ent[np.where(has, gi, h.nd)]))
    out.emit(
        "GMAP_REF_OUT_OF_TABLE",
        ids[dom[b]],
        ent[b],
        "handle {handle}: ref {ref} outside dom{granting_domid}'s table of {table_entries}",
        {
            "handle": handle[b],
            "ref": ref[b],
            "granting_domid": granter[b],
            "table_entries": nr_ent[gi[b]],
        },
        others=granter[b],
    )
    od = idx.dom_at(mfn_u)
    b = np.flatnonzero(has & (od != gi) & (od != AMBIG))

    def gm_others(keep: I64) -> list[tuple[int, ...]]:
        r = b[keep]
        return [
            (int(g),) + ((int(ids[o]),) if o >= 0 else ())
            for g, o in zip(granter[r].tolist(), od[r].tolist(), strict=True)
        ]

    out.emit(
        "GMAP_FRAME_NOT_GRANTERS",
        ids[dom[b]],
        ent[b],
        "handle {handle}: frame {mfn:#x} is owned by {owner}, not dom{granting_domid}",
        {
            "handle": handle[b],
            "mfn": mfn_u[b],
            "granting_domid": granter[b],
            "owner": h.owner_names(od[b]),
        },
        others=gm_others,
    )


def _grant_maps_local(h: Host, g: _GrantMaps, out: Out) -> None:
    """The mapping domain's own limits: maptrack handles, duplicates, vCPUs."""
    ids = h.domids
    dom, ent, handle, vcpu = g.dom, g.ent, g.handle, g.vcpu
    lim = np.array(
        [MAPTRACK_PER_FRAME * h.effective(d, "max_maptrack_frames") for d in h.doms], np.int64
    )
    b = np.flatnonzero(handle >= lim[dom])
    out.emit(
        "GMAP_HANDLE_LIMIT",
        ids[dom[b]],
        ent[b],
        "handle {handle} >= maptrack limit {limit}",
        {"handle": handle[b], "limit": lim[dom[b]]},
    )
    dup, first = dups_after_first(dom, handle)
    out.emit(
        "GMAP_HANDLE_DUPLICATE",
        ids[dom[dup]],
        ent[dup],
        "handle {handle} already used by entry {first_entry}",
        {"handle": handle[dup], "first_entry": ent[first]},
    )
    b = np.flatnonzero(vcpu >= h.max_vcpus[dom])
    out.emit(
        "GMAP_VCPU_RANGE",
        ids[dom[b]],
        ent[b],
        "handle {handle}: vcpu {vcpu} >= max_vcpus {max_vcpus}",
        {"handle": handle[b], "vcpu": vcpu[b], "max_vcpus": h.max_vcpus[dom[b]]},
    )
