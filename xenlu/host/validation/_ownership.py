"""§4.3, §4.8: page ownership against itself, max_page, the bootmem and the global extents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xenlu.host.validation._arrays import (
    I64,
    U64,
    Arr,
    cat,
    group_starts,
    last_frame,
    overlaps,
    u64,
)
from xenlu.host.validation._host import Host
from xenlu.host.validation._index import OwnerIndex
from xenlu.host.validation._report import Out, Vals
from xenlu.lu.values import DOMID_XEN, PAGE_SIZE, RegionKind, XenPageKind

__all__ = ["check_ownership"]

_PAGE_SHIFT = PAGE_SIZE.bit_length() - 1
_REGION_KINDS = {int(k): k.name for k in RegionKind}
_XEN_KINDS = {int(k): k.name for k in XenPageKind}


#: At most this many other claimants are named in one OWN_DUPLICATE finding
#: (``claimants`` counts them all): a frame claimed by thousands of domains
#: keeps every finding small.
OTHERS_CAP = 8


def check_ownership(h: Host, idx: OwnerIndex, out: Out, bootmem_check: bool) -> None:
    """Every ownership rule of §4.3/§4.8; one finding per conflicting entry."""
    _beyond_max_page(h, idx, out)
    _duplicates(h, idx, out)
    ps = _pseudo_rows(h, bootmem_check)
    c = _conflicts(h, idx, ps)
    if c is None:
        return
    _in_pseudo(h, ps, c, out)
    _extent_overlaps(ps, c, out)


def _beyond_max_page(h: Host, idx: OwnerIndex, out: Out) -> None:
    """Frames at or above max_page (exact u64 arithmetic: start + nr > max_page)."""
    host, own = h.host, h.own
    top = idx.last_frame_max()
    if top is not None and top < int(host.max_page):
        return  # the index saw every frame: none reaches max_page
    mp = np.uint64(host.max_page)
    beyond: list[I64] = []
    for base, _, c in own.chunks(("start_mfn", "nr_pages")):
        su = c["start_mfn"]
        nr = c["nr_pages"].astype(np.uint64)
        if len(su) and int(su.max()) + int(nr.max()) <= int(host.max_page):
            continue
        bad = (nr > mp) | (su > mp - np.minimum(nr, mp))
        beyond.append(base + np.flatnonzero(bad))
    rows = cat(beyond, np.int64)
    out.emit(
        "OWN_BEYOND_MAX_PAGE",
        h.domids[own.dom_of(rows)],
        own.entry(rows),
        "extent {start_mfn:#x}+{nr_pages} reaches max_page {max_page:#x}",
        {
            "start_mfn": own.take("start_mfn", rows, np.uint64),
            "nr_pages": own.take("nr_pages", rows),
            "max_page": int(host.max_page),
        },
    )


@dataclass
class _Pseudo:
    """Pseudo rows: the bootmem, reusable regions and Xen pages (§4.3, §4.8).

    Groups ``boot``, ``region``, ``xen`` follow the domain indices.
    """

    boot: int
    region: int
    xen: int
    own: int
    boot_vals: dict[str, Vals]
    su: Arr
    nr: Arr
    group: I64
    ref: I64
    start: U64
    last: U64
    reg: Arr
    xen_pages: Arr


def _pseudo_rows(h: Host, bootmem_check: bool) -> _Pseudo:
    host = h.host
    nd = h.nd
    g_boot, g_region, g_xen, g_own = nd, nd + 1, nd + 2, nd + 3
    reg = h.stream.reusable_regions
    xen = h.stream.xen_pages
    b0 = int(host.lu_bootmem_start) >> _PAGE_SHIFT
    bn = (int(host.lu_bootmem_size) + PAGE_SIZE - 1) >> _PAGE_SHIFT
    su_parts: list[Arr] = []
    nr_parts: list[Arr] = []
    g_parts: list[Arr] = []
    ref_parts: list[Arr] = []
    if bootmem_check and bn:
        su_parts.append(np.array([b0], np.uint64))
        nr_parts.append(np.array([bn], np.uint64))
        g_parts.append(np.array([g_boot], np.int64))
        ref_parts.append(np.array([0], np.int64))
    for arr, g in ((reg, g_region), (xen, g_xen)):
        if len(arr):
            su_parts.append(arr["start_mfn"])
            nr_parts.append(arr["nr_pages"])
            g_parts.append(np.full(len(arr), g, np.int64))
            ref_parts.append(np.arange(len(arr), dtype=np.int64))
    p_su = cat(su_parts, np.uint64)
    p_nr = cat(nr_parts, np.uint64)
    p_start = u64(p_su)
    p_last = last_frame(p_start, p_nr)
    keep = p_nr > 0  # an empty extent covers nothing
    return _Pseudo(
        g_boot,
        g_region,
        g_xen,
        g_own,
        {"bootmem_start_mfn": b0, "bootmem_pages": bn},
        p_su[keep],
        p_nr[keep],
        cat(g_parts, np.int64)[keep],
        cat(ref_parts, np.int64)[keep],
        p_start[keep],
        p_last[keep],
        reg,
        xen,
    )


@dataclass
class _Conflicts:
    """The ownership rows inside a global extent, plus the pseudo rows, and
    their overlaps as (row, group, witness) triples sorted by (row, group);
    rows and witnesses index ``sub`` followed by the pseudo rows. The
    ownership rows form one group (their duplicates are the index's)."""

    sub: I64
    ns: int
    start: Arr
    sdom: I64
    group: I64
    tr: I64
    tg: I64
    tw: I64


def _conflicts(h: Host, idx: OwnerIndex, ps: _Pseudo) -> _Conflicts | None:
    own = h.own
    # Only rows owning a frame of a pseudo extent matter here; the overlap
    # sweep then runs over them and the pseudo rows, in four groups.
    sub = idx.frames_hit(ps.start, ps.last) if len(ps.start) else np.zeros(0, np.int64)
    if len(sub) == 0 and len(ps.start) < 2:
        return None
    s_start, s_last = own.span(sub)
    start = np.concatenate((s_start, ps.start))
    last = np.concatenate((s_last, ps.last))
    sdom = own.dom_of(sub)
    group = np.concatenate((np.full(len(sub), ps.own, np.int64), ps.group))
    res = overlaps(start, last, group, same_only=False)
    if res:
        tr = np.concatenate([r for _, r, _ in res])
        tg = np.concatenate([np.full(len(r), g, np.int64) for g, r, _ in res])
        tw = np.concatenate([w for _, _, w in res])
    else:
        tr = tg = tw = np.zeros(0, np.int64)
    o = np.lexsort((tg, tr))
    return _Conflicts(sub, len(sub), start, sdom, group, tr[o], tg[o], tw[o])


def _duplicates(h: Host, idx: OwnerIndex, out: Out) -> None:
    """OWN_DUPLICATE: an ownership row claiming a frame another row claims.

    One finding per claimant row, naming one row it overlaps (``other_*``,
    ``mfn`` the first frame they share) and the other domains of its cluster
    of overlapping rows (at most :data:`OTHERS_CAP`; ``claimants`` counts the
    rows of the cluster), so a frame claimed by N domains costs O(N), not
    O(N²), and the per-domain cap bounds the report.
    """
    own = h.own
    rows, wit, cl = idx.dup_rows, idx.dup_witness, idx.dup_cluster
    if not len(rows):
        return
    rdom = own.dom_of(rows)
    wdom = own.dom_of(wit)
    rs, _ = own.span(rows)
    ws, _ = own.span(wit)
    # distinct (cluster, domain) pairs, sorted: each cluster's domain list
    pairs = np.unique(cl * (1 << 16) + rdom)
    p_cl, p_dom = pairs >> 16, pairs & 0xFFFF
    c_lo = np.searchsorted(p_cl, cl, "left")
    c_hi = np.searchsorted(p_cl, cl, "right")
    _, inv, cnt = np.unique(cl, return_inverse=True, return_counts=True)
    n_rows = cnt[inv]

    def others_dup(keep: I64) -> list[tuple[int, ...]]:
        res_: list[tuple[int, ...]] = []
        for k in keep.tolist():
            mine = int(rdom[k])
            # the cluster's first domains only: O(cap) per finding, not O(N)
            hi = min(int(c_hi[k]), int(c_lo[k]) + OTHERS_CAP + 1)
            ds = [int(d) for d in p_dom[c_lo[k] : hi].tolist() if d != mine]
            res_.append(tuple(int(h.domids[d]) for d in ds[:OTHERS_CAP]))
        return res_

    out.emit(
        "OWN_DUPLICATE",
        h.domids[rdom],
        own.entry(rows),
        "frame {mfn:#x} is also owned by dom{other_domid} (entry {other_entry})",
        {
            "start_mfn": rs,
            "nr_pages": own.take("nr_pages", rows, np.uint64),
            "mfn": np.maximum(rs, ws),
            "other_domid": h.domids[wdom],
            "other_entry": own.entry(wit),
            "claimants": n_rows,
        },
        others=others_dup,
    )


def _kinds(arr: Arr, names: dict[int, str], refs: I64) -> list[int | str]:
    return [names.get(int(k), str(int(k))) for k in np.asarray(arr["kind"])[refs].tolist()]


def _in_pseudo(h: Host, ps: _Pseudo, c: _Conflicts, out: Out) -> None:
    """Ownership rows inside the bootmem, a reusable region or a Xen pages extent."""
    own = h.own

    def pseudo(code: str, g: int, extra: Callable[[I64], dict[str, Vals]], msg: str) -> None:
        m_ = (c.tr < c.ns) & (c.tg == g)
        if not m_.any():
            return
        rr_, ww_ = c.tr[m_], c.tw[m_]
        rows_ = c.sub[rr_]
        vals: dict[str, Vals] = {
            "start_mfn": own.take("start_mfn", rows_, np.uint64),
            "nr_pages": own.take("nr_pages", rows_),
            "mfn": np.maximum(c.start[rr_], c.start[ww_]),
        }
        vals.update(extra(ww_ - c.ns))
        out.emit(code, h.domids[c.sdom[rr_]], own.entry(rows_), msg, vals)

    pseudo(
        "OWN_IN_BOOTMEM", ps.boot, lambda w: ps.boot_vals, "frame {mfn:#x} lies in the LU bootmem"
    )
    pseudo(
        "OWN_IN_REUSABLE",
        ps.region,
        lambda w: {"region_entry": ps.ref[w], "kind": _kinds(ps.reg, _REGION_KINDS, ps.ref[w])},
        "frame {mfn:#x} lies in reusable region {region_entry} ({kind})",
    )
    pseudo(
        "OWN_IN_XEN_PAGES",
        ps.xen,
        lambda w: {
            "xen_pages_entry": ps.ref[w],
            "kind": _kinds(ps.xen_pages, _XEN_KINDS, ps.ref[w]),
        },
        "frame {mfn:#x} lies in Xen pages extent {xen_pages_entry} ({kind})",
    )


def _extent_overlaps(ps: _Pseudo, c: _Conflicts, out: Out) -> None:
    """Global extents against each other and the bootmem (§4.3)."""
    psub = c.tr >= c.ns
    names = {ps.region: "LU_REUSABLE_REGIONS", ps.xen: "LU_XEN_PAGES"}
    for code, groups, msg in (
        (
            "EXTENT_OVERLAP",
            (ps.region, ps.xen),
            "extent {start_mfn:#x}+{nr_pages} overlaps {other_record}[{other_entry}]",
        ),
        (
            "EXTENT_IN_BOOTMEM",
            (ps.boot,),
            "extent {start_mfn:#x}+{nr_pages} overlaps the LU bootmem",
        ),
    ):
        m_ = psub & np.isin(c.tg, groups) & (c.group[c.tr] != ps.boot)
        if not m_.any():
            continue
        r_, w_ = c.tr[m_], c.tw[m_]
        first = group_starts(r_)  # one finding per extent: its first overlapping group
        r_, w_ = r_[first] - c.ns, w_[first] - c.ns
        vals: dict[str, Vals] = {"start_mfn": ps.su[r_], "nr_pages": ps.nr[r_]}
        if code == "EXTENT_OVERLAP":
            vals["other_record"] = [names[int(g)] for g in ps.group[w_].tolist()]
            vals["other_entry"] = ps.ref[w_]
        else:
            vals.update(ps.boot_vals)
        out.emit(
            code,
            np.full(len(r_), DOMID_XEN, np.int64),
            ps.ref[r_],
            msg,
            vals,
            record=[names[int(g)] for g in ps.group[r_].tolist()],
        )
