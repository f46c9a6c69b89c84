"""§4.7: the P2M of every domain against ownership, the Xen pages and the grant maps."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xenlu.host.validation._arrays import (
    AMBIG,
    CHUNK,
    I64,
    NONE,
    U64,
    U64_MAX,
    Arr,
    cat,
    last_frame,
    overlaps,
    u64,
)
from xenlu.host.validation._host import Host, Table
from xenlu.host.validation._index import OwnerIndex, range_foreign, range_owner
from xenlu.host.validation._report import Out, Vals
from xenlu.lu.values import (
    INVALID_MFN,
    P2M_CLASS_LUT,
    P2M_TYPES,
    GrantMapFlag,
    P2mClass,
    P2mType,
    XenPageKind,
)

__all__ = ["check_p2m"]

# Plain ints of the enums for numpy: an IntEnum operand is not a "weak" Python
# int to numpy (it promotes to int64, and costs a conversion per call).
_C_OWN, _C_PAGING_IN = int(P2mClass.OWN), int(P2mClass.PAGING_IN)
_C_SHARED, _C_FOREIGN = int(P2mClass.SHARED), int(P2mClass.FOREIGN)
_MAP_FOREIGN = int(P2mType.map_foreign)
_GRANT_RW, _GRANT_RO = int(P2mType.grant_map_rw), int(P2mType.grant_map_ro)
_HOST_MAP, _READONLY = int(GrantMapFlag.host_map), int(GrantMapFlag.readonly)
_XEN_SHARED = int(XenPageKind.SHARED)

_TYPE_NAME = [P2M_TYPES.get(t, str(t)) for t in range(256)]
_INV = np.uint64(INVALID_MFN)
_ONE = np.uint64(1)
U32_MAX = (1 << 32) - 1
BLOCK = 1 << 14  # records per block of the fused pass (a few hundred KiB)


class _Rows:
    """Row lists collected chunk by chunk (with one aligned int column)."""

    def __init__(self) -> None:
        self.rows: list[I64] = []
        self.vals: list[I64] = []

    def add(self, base: int, where: I64, vals: I64 | None = None) -> None:
        if len(where):
            self.rows.append(base + where)
            self.vals.append(np.zeros(len(where), np.int64) if vals is None else vals)

    def get(self) -> tuple[I64, I64]:
        return cat(self.rows, np.int64), cat(self.vals, np.int64)


@dataclass
class _Scan:
    """What one pass over the P2M found, by rule (rows, first-frame owner)."""

    gfn_doms: set[int] = field(default_factory=set)
    own_bad: _Rows = field(default_factory=_Rows)
    own_multi: _Rows = field(default_factory=_Rows)
    f_un: _Rows = field(default_factory=_Rows)
    f_self: _Rows = field(default_factory=_Rows)
    f_multi: _Rows = field(default_factory=_Rows)
    shared: _Rows = field(default_factory=_Rows)
    grants: _Rows = field(default_factory=_Rows)


@dataclass
class _DomScan:
    """One domain's pass: local row indices by rule."""

    gfn_bad: bool
    own_miss: I64  # one-frame RAM extents whose frame the domain does not own
    own_miss_mfn: U64
    own_multi: I64
    foreign: I64
    shared: I64


def check_p2m(h: Host, idx: OwnerIndex, out: Out) -> None:
    """Every P2M rule of §4.7 in one pass per domain, then the exact checks of
    the few rows the pass flagged."""
    if h.p2m.n == 0:
        return
    scan = _scan(h, idx)
    _gfn_overlaps(h, scan.gfn_doms, out)
    _own_frames(h, idx, scan, out)
    _foreign_frames(h, idx, scan, out)
    _shared_frames(h, idx, scan, out)
    rows, first_owner = scan.grants.get()
    if len(rows):
        _check_grant_backing(h, rows, first_owner, out)


def _gfn_disordered(p: Arr, single: bool) -> bool:
    """Does a GFN range of the domain overlap or precede the one before it?
    In gfn order any overlap is an adjacent one; a domain out of gfn order
    gets the exact sweep too. (A range's last GFN is at or above its first,
    saturating, so "starts at or before the previous last" covers both.)
    Walked in windows, so temporaries stay small."""
    carry = -1
    for a in range(0, len(p), CHUNK):
        gfn = p["gfn"][a : a + CHUNK]
        if single:
            glast = gfn
        else:
            glast = gfn + (p["nr_pages"][a : a + CHUNK].astype(np.uint64) - _ONE)
            wrap = glast < gfn
            if wrap.any():
                glast[wrap] = _INV
        if bool((gfn[1:] <= glast[:-1]).any()) or int(gfn[0]) <= carry:
            return True
        carry = int(glast[-1])
    return False


@dataclass
class _Blocked:
    """What the blocked pass over one domain's P2M found (local rows)."""

    gfn_bad: bool
    q: Arr  # frames of the one-frame RAM extents, ``uint32``
    # their rows (None: every row, in order), as the blocks found them: a
    # (start, stop) range of a RAM-only block or a mixed block's (start,
    # mask); made into rows only for a domain with frames it does not own
    rows: list[tuple[int, int] | tuple[int, Arr]] | None

    def rows_at(self, pos: I64) -> I64:
        """The P2M rows of positions ``pos`` of :attr:`q`."""
        if self.rows is None:
            return pos
        r = cat(
            [
                np.arange(a, b) if isinstance(b, int) else a + np.flatnonzero(b)
                for a, b in self.rows
            ],
            np.int64,
        )
        return r[pos]

    multi: I64
    foreign: I64
    shared: I64


def _blocked(p: Arr) -> _Blocked | None:
    """One pass over a domain's P2M records, a cache-sized block at a time
    (separate passes for the types, the lengths, the frames and the gfn
    order would each stream the records from memory). A block of one-frame
    RAM extents only (the fragmented host) is settled by four reductions and
    a narrowing copy; other blocks get the class column. None when a frame
    to check against the owned list does not fit ``uint32`` (the general
    pass)."""
    n = len(p)
    gfn, mfn, nr, typ = p["gfn"], p["mfn"], p["nr_pages"], p["p2m_type"]
    q = np.empty(n, np.uint32)
    fill = 0
    rows: list[tuple[int, int] | tuple[int, Arr]] = []
    mixed = False
    multi: list[I64] = []
    foreign: list[I64] = []
    shared: list[I64] = []
    bad = False
    carry = -1
    for a in range(0, n, BLOCK):
        b = min(a + BLOCK, n)
        t, n1, m = typ[a:b], nr[a:b], mfn[a:b]
        lo, hi = int(t.min()), int(t.max())
        single = int(n1.min()) == 1 and int(n1.max()) == 1
        if single and bool((P2M_CLASS_LUT[lo : hi + 1] == _C_OWN).all()):
            if int(m.max()) > U32_MAX:
                return None
            q[fill : fill + b - a] = m
            fill += b - a
            rows.append((a, b))
        else:
            mixed = True
            cls = P2M_CLASS_LUT[t]
            one = n1 == 1
            own_t = (cls == _C_OWN) | ((cls == _C_PAGING_IN) & (m != _INV))
            keep = own_t & one  # 1 byte an entry kept, not 8 of a row number
            v = m[keep]
            if len(v):
                if int(v.max()) > U32_MAX:
                    return None
                q[fill : fill + len(v)] = v
                fill += len(v)
            rows.append((a, keep))
            multi.append(a + np.flatnonzero(own_t & ~one))
            foreign.append(a + np.flatnonzero(cls == _C_FOREIGN))
            shared.append(a + np.flatnonzero(cls == _C_SHARED))
        if not bad:
            # a GFN range overlaps or precedes the one before it iff it
            # starts at or below that one's last GFN (saturating)
            g = gfn[a:b]
            if single:
                glast = g
            else:
                glast = g + (n1.astype(np.uint64) - _ONE)
                wrap = glast < g
                if wrap.any():
                    glast[wrap] = _INV
            bad = bool((g[1:] <= glast[:-1]).any()) or int(g[0]) <= carry
            carry = int(glast[-1])
    return _Blocked(
        bad,
        q[:fill],
        rows if mixed else None,
        cat(multi, np.int64),
        cat(foreign, np.int64),
        cat(shared, np.int64),
    )


def _multi_own(cls: Arr | None, mfn: Arr, single: Arr) -> I64:
    """RAM extents of more than one frame (ram_paging_in: unless INVALID_MFN)."""
    if cls is None:
        return np.flatnonzero(~single)
    own_t = (cls == _C_OWN) | ((cls == _C_PAGING_IN) & (mfn != _INV))
    return np.flatnonzero(own_t & ~single)


def _general(idx: OwnerIndex, d: int, p: Arr) -> _DomScan:
    """One domain's P2M by whole-column passes (a frame to check does not
    fit ``uint32``: :func:`_blocked` declined)."""
    _e = np.zeros(0, np.int64)
    n_cls = int(P2M_CLASS_LUT.max()) + 1
    typ, mfn = p["p2m_type"], p["mfn"]
    single = p["nr_pages"] == 1
    all_single = bool(single.all())
    lo, hi = int(typ.min()), int(typ.max())
    if bool((P2M_CLASS_LUT[lo : hi + 1] == _C_OWN).all()):
        # every entry a RAM type (the types in [lo, hi] are): no class column
        cls = None
        count = np.zeros(n_cls, np.int64)
        own_t = None if all_single else single
    else:
        cls = P2M_CLASS_LUT[typ]
        count = np.bincount(cls, minlength=n_cls)
        own_t = cls == _C_OWN
        if count[_C_PAGING_IN]:
            own_t |= (cls == _C_PAGING_IN) & (mfn != _INV)
        if not all_single:
            own_t &= single
    # own_t: the one-frame RAM extents (None: every entry)
    if own_t is None:
        rows, fr = None, mfn
    else:
        rows = np.flatnonzero(own_t)
        fr = mfn[rows]
    owned = idx.owned_by(d, fr)
    miss = _e if owned.all() else np.flatnonzero(~owned)
    return _DomScan(
        _gfn_disordered(p, all_single),
        miss if rows is None else rows[miss],
        u64(fr[miss]),
        _e if all_single else _multi_own(cls, mfn, single),
        np.flatnonzero(cls == _C_FOREIGN) if cls is not None and count[_C_FOREIGN] else _e,
        np.flatnonzero(cls == _C_SHARED) if cls is not None and count[_C_SHARED] else _e,
    )


def _scan(h: Host, idx: OwnerIndex) -> _Scan:
    """One pass over the P2M of every domain (§4.7), a domain per task on the
    index's executor; owners are looked up afterwards, once, for the rows
    that need them (foreign extents, RAM frames the domain does not own)."""
    tab = h.p2m
    _e = np.zeros(0, np.int64)

    def one(d: int) -> _DomScan:
        p = tab.parts[d]
        if not len(p):
            return _DomScan(False, _e, np.zeros(0, np.uint64), _e, _e, _e)
        bl = _blocked(p)
        if bl is not None:
            # the one blocked pass gave every rule's rows and the frames to
            # check against the domain's owned list
            q = bl.q
            if not len(q) or idx.all_owned_sorting(d, q):
                miss = _e  # (q is sorted now: nothing below reads it then)
            else:
                q = _blocked(p).q  # type: ignore[union-attr]  # the frames again, in entry order
                owned = idx.owned_by(d, q)
                miss = _e if owned.all() else np.flatnonzero(~owned)
            return _DomScan(
                bl.gfn_bad,
                bl.rows_at(miss) if len(miss) else miss,
                u64(q[miss]),
                bl.multi,
                bl.foreign,
                bl.shared,
            )
        return _general(idx, d, p)

    s = _Scan()
    miss: list[I64] = []
    miss_f: list[U64] = []
    fr: list[I64] = []
    for d, r in enumerate(idx.map(one, range(h.nd))):
        base = int(tab.offs[d])
        if r.gfn_bad:
            s.gfn_doms.add(d)
        if len(r.own_miss):
            miss.append(base + r.own_miss)
            miss_f.append(r.own_miss_mfn)
        s.own_multi.add(base, r.own_multi)
        s.shared.add(base, r.shared)
        if len(r.foreign):
            fr.append(base + r.foreign)
    if miss:
        rows, f = np.concatenate(miss), np.concatenate(miss_f)
        d1 = idx.dom_at(f)
        b = np.flatnonzero((d1 != tab.dom_of(rows)) & (d1 != AMBIG))
        s.own_bad.add(0, rows[b], d1[b])
    if fr:
        rows = np.concatenate(fr)
        dom = tab.dom_of(rows)
        single = tab.take("nr_pages", rows) == 1
        typ = tab.take("p2m_type", rows)
        d1 = idx.dom_at(tab.take("mfn", rows, np.uint64))  # owner of each first frame
        b = np.flatnonzero(single & (d1 == NONE))
        s.f_un.add(0, rows[b], d1[b])
        b = np.flatnonzero(single & (d1 == dom))
        s.f_self.add(0, rows[b], d1[b])
        s.f_multi.add(0, rows[~single])
        b = np.flatnonzero(typ != _MAP_FOREIGN)
        s.grants.add(0, rows[b], d1[b])
    return s


def _span(tab: Table, rows: I64) -> tuple[U64, U64]:
    m = tab.take("mfn", rows, np.uint64)
    return m, last_frame(m, tab.take("nr_pages", rows, np.uint64))


def _base_vals(tab: Table, rows: I64) -> dict[str, Vals]:
    return {
        "gfn": tab.take("gfn", rows, np.uint64),
        "mfn": tab.take("mfn", rows, np.uint64),
        "nr_pages": tab.take("nr_pages", rows),
        "p2m_type": [_TYPE_NAME[t] for t in tab.take("p2m_type", rows).tolist()],
    }


def _gfn_overlaps(h: Host, gfn_doms: set[int], out: Out) -> None:
    """GFN overlaps, exactly, in the domains the scan flagged."""
    for di in sorted(gfn_doms):
        p = h.doms[di].p2m
        flip = np.uint64(1 << 63)
        g = p["gfn"].astype(np.uint64)
        gl = g + (p["nr_pages"].astype(np.uint64) - _ONE)
        gl = np.where(gl < g, _INV, gl)
        res = overlaps(
            (g ^ flip).view(np.int64), (gl ^ flip).view(np.int64), np.zeros(len(p), np.int64), True
        )
        if not res:
            continue
        rr, ww = res[0][1], res[0][2]
        out.emit(
            "P2M_GFN_OVERLAP",
            np.full(len(rr), h.domids[di], np.int64),
            rr,
            "gfn {gfn:#x}+{nr_pages} overlaps entry {other_entry} (gfn {other_gfn:#x})",
            {
                "gfn": g[rr],
                "nr_pages": np.asarray(p["nr_pages"])[rr],
                "other_entry": ww,
                "other_gfn": g[ww],
            },
        )


def _own_frames(h: Host, idx: OwnerIndex, s: _Scan, out: Out) -> None:
    """RAM types: every frame owned by this domain (ram_paging_in: or INVALID_MFN)."""
    tab = h.p2m
    rows, owner = s.own_bad.get()
    bad = tab.take("mfn", rows, np.uint64)
    mrows, _ = s.own_multi.get()
    if len(mrows):
        m, last = _span(tab, mrows)
        ok, mbad, mowner = range_owner(idx, m, last, tab.dom_of(mrows))
        nb = np.flatnonzero(~ok)
        rows = np.concatenate((rows, mrows[nb]))
        bad = np.concatenate((bad, mbad[nb]))
        owner = np.concatenate((owner, mowner[nb]))
    out.emit(
        "P2M_FRAME_NOT_OWNED",
        h.domids[tab.dom_of(rows)],
        tab.entry(rows),
        "{p2m_type} frame {bad_mfn:#x} is owned by {owner}, not this domain",
        {**_base_vals(tab, rows), "bad_mfn": bad, "owner": h.owner_names(owner)},
        others=h.owner_ids(owner),
    )


def _foreign_frames(h: Host, idx: OwnerIndex, s: _Scan, out: Out) -> None:
    """grant_map / map_foreign: owned by another domain of this stream."""
    tab = h.p2m
    un_rows, un_own = s.f_un.get()
    sf_rows, sf_own = s.f_self.get()
    un_bad = tab.take("mfn", un_rows, np.uint64)
    sf_bad = tab.take("mfn", sf_rows, np.uint64)
    mrows, _ = s.f_multi.get()
    if len(mrows):
        # every rule an extent breaks is reported, each naming its own frame
        m, last = _span(tab, mrows)
        un, un_f, sf, sf_f, fowner = range_foreign(idx, m, last, tab.dom_of(mrows))
        un_rows = np.concatenate((un_rows, mrows[un]))
        un_bad = np.concatenate((un_bad, un_f[un]))
        un_own = np.concatenate((un_own, fowner[un]))
        sf_rows = np.concatenate((sf_rows, mrows[sf]))
        sf_bad = np.concatenate((sf_bad, sf_f[sf]))
        sf_own = np.concatenate((sf_own, fowner[sf]))
    for code, rows, bad, owner, msg in (
        (
            "P2M_FOREIGN_UNOWNED",
            un_rows,
            un_bad,
            un_own,
            "{p2m_type} frame {bad_mfn:#x} is owned by no domain",
        ),
        (
            "P2M_FOREIGN_SELF",
            sf_rows,
            sf_bad,
            sf_own,
            "{p2m_type} frame {bad_mfn:#x} is the domain's own",
        ),
    ):
        out.emit(
            code,
            h.domids[tab.dom_of(rows)],
            tab.entry(rows),
            msg,
            {**_base_vals(tab, rows), "bad_mfn": bad},
            others=h.owner_ids(owner),
        )


def _shared_frames(h: Host, idx: OwnerIndex, s: _Scan, out: Out) -> None:
    """ram_shared: inside an LU_XEN_PAGES SHARED extent (merged when adjacent)."""
    tab = h.p2m
    rows, _ = s.shared.get()
    if not len(rows):
        return
    m, last = _span(tab, rows)
    xp = h.stream.xen_pages
    sh = xp[np.asarray(xp["kind"]) == _XEN_SHARED] if len(xp) else xp
    inside = np.zeros(len(rows), bool)
    if len(sh):
        keep = np.asarray(sh["nr_pages"]) > 0
        s0 = u64(sh["start_mfn"])[keep]
        s1 = last_frame(s0, sh["nr_pages"][keep])
        o = np.argsort(s0, kind="stable")
        s0, s1 = s0[o], s1[o]
        cm = np.maximum.accumulate(s1)
        head = np.ones(len(s0), bool)
        # adjacent extents merge; nothing follows an extent reaching U64_MAX
        head[1:] = (cm[:-1] < U64_MAX) & (s0[1:] > cm[:-1] + np.uint64(1))
        hs = np.flatnonzero(head)
        ends = np.concatenate((hs[1:] - 1, [len(s0) - 1]))
        r0, r1 = s0[hs], cm[ends]
        k = np.searchsorted(r0, m, side="right") - 1
        kc = np.maximum(k, 0)
        inside = (k >= 0) & (m >= r0[kc]) & (last <= r1[kc])
    rows = rows[~inside]
    out.emit(
        "P2M_SHARED_OUTSIDE_COW",
        h.domids[tab.dom_of(rows)],
        tab.entry(rows),
        "ram_shared frames {mfn:#x}+{nr_pages} are not all in a SHARED extent",
        _base_vals(tab, rows),
        others=h.owner_ids(idx.dom_at(tab.take("mfn", rows, np.uint64))),
    )


def _check_grant_backing(h: Host, g: I64, first_owner: I64, out: Out) -> None:
    """§4.7: each grant_map page has its own LU_GRANT_MAPS entry of the domain
    (same mfn, host_map, readonly iff type 8); one entry backs one page.

    Without expanding extents: per (domain, readonly) the supply of entries
    per mfn is compared with the demand (extents covering that mfn); an
    extent is backed when every one of its pages is an mfn whose supply
    covers its demand. Where demand exceeds supply every extent involved is
    reported.
    """
    tab = h.p2m
    typ = tab.take("p2m_type", g)
    es_all = tab.take("mfn", g, np.uint64)
    el_all = last_frame(es_all, tab.take("nr_pages", g, np.uint64))
    gdom = tab.dom_of(g)
    unbacked = np.zeros(len(g), np.uint64)
    for di in np.unique(gdom).tolist():
        gm = h.doms[di].grant_maps
        fl = np.asarray(gm["flags"]).astype(np.int64) if len(gm) else np.zeros(0, np.int64)
        host_map = (fl & _HOST_MAP) != 0
        ro_e = (fl & _READONLY) != 0
        mfn_e = u64(gm["mfn"]) if len(gm) else np.zeros(0, np.uint64)
        for ro, t in ((False, _GRANT_RW), (True, _GRANT_RO)):
            ext = np.flatnonzero((gdom == di) & (typ == t))
            if not len(ext):
                continue
            es, el = es_all[ext], el_all[ext]
            supply_mfn, supply = np.unique(mfn_e[host_map & (ro_e == ro)], return_counts=True)
            demand = np.searchsorted(np.sort(es), supply_mfn, "right") - np.searchsorted(
                np.sort(el), supply_mfn, "left"
            )
            good = supply_mfn[(supply >= demand) & (demand >= 1)]
            n_good = np.searchsorted(good, el, "right") - np.searchsorted(good, es, "left")
            # exact in u64: frames - good, saturating where the extent spans 2**64
            nfr_m1 = el - es
            ng = n_good.astype(np.uint64)
            unb = np.where(ng <= nfr_m1, nfr_m1 - ng + np.uint64(1), np.uint64(0))
            unb[(nfr_m1 == U64_MAX) & (ng == 0)] = U64_MAX
            unbacked[ext] = unb
    b = np.flatnonzero(unbacked > 0)
    rows = g[b]
    out.emit(
        "P2M_GRANT_UNBACKED",
        h.domids[gdom[b]],
        tab.entry(rows),
        "{unbacked} of {nr_pages} {p2m_type} pages at {mfn:#x} lack their own matching grant map",
        {
            "gfn": tab.take("gfn", rows, np.uint64),
            "mfn": tab.take("mfn", rows, np.uint64),
            "nr_pages": tab.take("nr_pages", rows),
            "p2m_type": [P2M_TYPES[_GRANT_RO if t == _GRANT_RO else _GRANT_RW] for t in typ[b]],
            "unbacked": unbacked[b],
        },
        others=h.owner_ids(first_owner[b]),
    )
