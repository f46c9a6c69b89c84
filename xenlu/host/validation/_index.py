"""The owner index: frame → owner and ownership runs (LU spec §4.8).

One algorithm over **sorted extents** (issue 14): the ownership rows are
sorted once by start (a single ``np.sort`` of ``start << b | row`` where that
fits in 64 bits, a stable ``argsort`` otherwise); a running maximum of their
last frames splits them into *clusters* of mutually overlapping rows. A row
alone in its cluster is a disjoint *segment*; the rows of a larger cluster
(every one of them claims a frame another one claims) are cut into
elementary cells by one sort of their boundary keys and a sweep (prefix
sums of +1/−1 and of the row ids give each cell its cover count and, when
the count is 1, its row). Lookups are ``np.searchsorted`` on the segment
starts with a check of the segment end. No extent is ever expanded into its
frames and no frame-sized array exists: time O(n log n) and memory O(n) in
the ownership rows, whatever frame numbers they hold; every frame number is
an exact ``uint64``.

A fragmented host (every extent one frame below 2**32, no frame owned
twice: the worst case for memory, and the common one) takes the
*per-domain* form: each domain's frames sorted as ``uint32`` (4 bytes per
owned frame, the sorts on the caller's executor); that no frame is owned
twice is checked by value range (each range's slices of the sorted lists
concatenated and sorted, a sixteenth of the frames at a time). A P2M or
page-type frame is checked against its own domain's list by a merge of two
sorted runs (:meth:`OwnerIndex.owned_by`), never by a lookup per entry in a
host-wide table; owners are looked up (a search of every domain's list)
only for the few frames that need them. Questions the per-domain form
cannot answer cheaply (a large lookup batch, the runs of a multi-frame
range over the whole host) build one of the global forms, once.

The *packed* global form: ``start << 15 | domain`` per row, sorted in place
(8 bytes per owned frame); rows are recovered only for the few frames that
need them (grant frames, frames inside a global extent) from their owners'
ownership records. Large lookup batches are sorted first so the searches
walk the index in order. A *lazy* index (``plan``) answers a few lookups by
one scan of the ownership records and builds nothing.

Every check asks ownership questions only through :class:`OwnerIndex`,
:func:`range_owner` and :func:`range_foreign`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from typing import Literal, TypeVar

import numpy as np

from xenlu.core.errors import CallerError
from xenlu.host.validation._arrays import (
    AMBIG,
    I64,
    NONE,
    U64,
    U64_MAX,
    Arr,
    Bool,
    cat,
    expand,
    last_frame,
    positions_in,
    ss_right,
    u64,
)
from xenlu.host.validation._host import Host, Ownership
from xenlu.host.validation._index_build import (
    DB,
    DMASK,
    SLICE,
    U32_MAX,
    cells,
    dom_bounds,
    packed_single,
    per_domain,
    pmap,
    sorted_rows,
)

__all__ = [
    "Method",
    "OwnerIndex",
    "owner_index",
    "range_foreign",
    "range_owner",
]

#: ``"dense"`` and ``"interval"`` name the two indexes of earlier releases;
#: both now select the one sorted-extent index (same findings, kept so that
#: callers passing them keep working).
Method = Literal["auto", "dense", "interval"]

_ONE = np.uint64(1)
#: At most this many watched frames (the filter of ``positions_in`` stays selective)
WATCH_MAX = 4096
_T = TypeVar("_T")
_R = TypeVar("_R")


class OwnerIndex:
    """Frame → owner (ownership row, domain index) and ownership runs.

    Unowned frames give ``NONE``, frames owned twice ``AMBIG`` (row and
    domain). A run is a maximal range of frames with the same owner domain;
    the runs cover ``[0, 2**64 - 1]``.

    Attributes: ``seg_start``/``seg_last`` (uint64) and ``seg_row``/``seg_dom``
    (int64) the sorted disjoint owned segments; ``dup_rows`` the rows claiming
    a frame another row claims; ``cluster_rows`` those rows grouped by cluster
    (``cluster_of[i]`` is the cluster of ``dup_rows[i]``) and, for each, the
    row whose overlap makes it a claimant (``witness``).

    >>> from xenlu.testing.hostgen import make_host
    >>> idx = owner_index(Host(make_host((4, 16), n_hvm=1, mem_mib=2)))
    >>> int(idx.dom_at(np.array([2**64 - 1], np.uint64))[0]) == NONE
    True
    """

    name = "sorted"

    def __init__(
        self,
        own: Ownership,
        executor: Executor | None = None,
        lazy: bool = False,
        watch: Arr | None = None,
    ) -> None:
        self.own = own
        self._ex = executor
        # frames whose rows will be asked for (the grant frames): the build's
        # pass over the records finds them, so row_at needs no second pass
        self._watch: U64 | None = None
        if watch is not None and 0 < len(watch) <= WATCH_MAX:
            self._watch = np.unique(u64(watch))
        self._watch_hits: list[I64] | None = None
        self._runs: tuple[U64, U64, I64] | None = None
        self._segs: tuple[Arr, Arr, Arr, Arr] | None = None
        self._key: U64 | None = None
        e = np.zeros(0, np.int64)
        self._dups: tuple[I64, I64, I64] = (e, e, e)
        self._dsort: list[Arr] | None = None
        self._top: int | None = None
        self._pending = True
        if not lazy:
            self._ensure()

    def _ensure(self) -> None:
        """Build the index (a lazy index answers a few lookups by a scan of
        the ownership records first, see :meth:`dom_at`)."""
        if not self._pending:
            return
        self._pending = False
        pd = per_domain(self.own, len(self.own.parts), self._ex, self._watch)
        if pd is None:
            self._global()
        else:
            self._dsort, self._top, self._watch_hits = pd

    @property
    def dup_rows(self) -> I64:
        self._ensure()
        return self._dups[0]

    @property
    def dup_witness(self) -> I64:
        self._ensure()
        return self._dups[1]

    @property
    def dup_cluster(self) -> I64:
        self._ensure()
        return self._dups[2]

    def _dom_scan(self, f: U64) -> I64:
        """Owner domain of a few frames without an index: one pass over every
        ownership record (extents by their bounds, so exact for any length;
        a frame covered twice is AMBIG)."""
        uq, inv = np.unique(f, return_inverse=True)
        m = len(uq)
        cover = np.zeros(m + 1, np.int64)
        dsum = np.zeros(m + 1, np.int64)

        def one(d: int) -> tuple[int, I64, I64]:
            part = self.own.parts[d]
            st, nr = part["start_mfn"], part["nr_pages"]
            if bool((nr == 1).all()):
                hit = positions_in(st, uq)
                a = np.searchsorted(uq, u64(st[hit]), "left")
                return d, a, a + 1
            keep = np.flatnonzero(nr > 0)
            s0 = u64(st[keep])
            a = np.searchsorted(uq, s0, "left")
            b = np.searchsorted(uq, last_frame(s0, nr[keep]), "right")
            w = np.flatnonzero(b > a)
            return d, a[w], b[w]

        for d, a, b in self.map(one, range(len(self.own.parts))):
            if len(a):
                cover += np.bincount(a, minlength=m + 1) - np.bincount(b, minlength=m + 1)
                dsum += d * (np.bincount(a, minlength=m + 1) - np.bincount(b, minlength=m + 1))
        cov = np.cumsum(cover)[:m]
        ds = np.cumsum(dsum)[:m]
        dom = np.where(cov == 0, NONE, np.where(cov == 1, ds, AMBIG))
        return dom[inv].astype(np.int64)

    def _global(self) -> None:
        """Build one of the global forms (packed, else general) and leave the
        per-domain form: the questions it cannot answer cheaply (segments,
        runs, large lookup batches) come here, once."""
        own = self.own
        self._dsort = None
        self._key = packed_single(own, len(own.parts))
        if self._key is not None:
            return
        order, s, lst = sorted_rows(own)
        n = len(order)
        dom = np.empty(n, np.int16)
        for a in range(0, n, SLICE):
            dom[a : a + SLICE] = own.dom_of(order[a : a + SLICE])
        in_dup = np.zeros(n, bool)
        if n > 1:
            # lst is s itself for single-frame rows: then no cummax is needed
            cm = lst if lst is s else np.maximum.accumulate(lst)
            new = np.ones(n, bool)
            np.greater(s[1:], cm[:-1], out=new[1:])
            if not new.all():
                heads = np.flatnonzero(new)
                size = np.diff(np.concatenate((heads, [n])))
                cid = np.cumsum(new) - 1
                in_dup = size[cid] > 1
        if in_dup.any():
            p = np.flatnonzero(in_dup)
            # witness: the earlier row holding the running maximum (every
            # non-head row of a cluster overlaps it), for a head the next row
            s, lst = s.astype(np.uint64), lst.astype(np.uint64)
            order = order.astype(np.int64)
            hold = np.maximum.accumulate(np.where(lst == cm, np.arange(n), 0))
            wit = np.where(new[p], p + 1, hold[np.maximum(p - 1, 0)])
            self._dups = (order[p], order[wit], cid[p])
            cs, cl, cr = cells(order[p], s[p], lst[p])
            clean = ~in_dup
            seg_s = np.concatenate((s[clean], cs))
            o = np.argsort(seg_s, kind="stable")
            seg_row = np.concatenate((order[clean], cr))[o]
            rd = own.dom_of(np.maximum(seg_row, 0)) if len(seg_row) else seg_row
            self._segs = (
                seg_s[o],
                np.concatenate((lst[clean], cl))[o],
                seg_row,
                np.where(seg_row >= 0, rd, seg_row).astype(np.int16),
            )
        else:
            self._segs = (s, lst, order, dom)

    # --- the per-domain form ------------------------------------------------------

    def last_frame_max(self) -> int | None:
        """The largest owned frame when the index knows it (the per-domain
        form: every extent one frame), else None."""
        self._ensure()
        return self._top

    def map(self, fn: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[_R]:
        """``map`` on the executor the index was given (or in this thread)."""
        return pmap(self._ex, fn, items)

    def _small(self, n: int) -> bool:
        """Is a batch of ``n`` lookups cheaper per domain than one global form?"""
        return self._dsort is not None and 4 * n * len(self._dsort) <= self.own.n

    def _dom_per_domain(self, f: U64) -> I64:
        """Owner domain of each frame by a search of every domain's list (no
        frame is owned twice in this form, so at most one domain answers)."""
        lists = self._dsort
        assert lists is not None
        out = np.full(len(f), NONE, np.int64)
        fit = np.flatnonzero(f <= np.uint64(U32_MAX))
        if not len(fit):
            return out
        o = np.argsort(f[fit], kind="stable")
        pos = fit[o]
        q = f[pos].astype(np.uint32)

        def one(d: int) -> I64:
            s = lists[d]
            if not len(s):
                return np.zeros(0, np.int64)
            k = np.searchsorted(s, q)
            return np.flatnonzero(s[np.minimum(k, len(s) - 1)] == q)

        for d, hit in enumerate(self.map(one, range(len(lists)))):
            out[pos[hit]] = d
        return out

    def owned_by(self, d: int, frames: Arr) -> Bool:
        """Is each frame owned by domain index ``d``? True where ``d`` is the
        only claimant, False where it is none; a frame ``d`` shares with
        another claimant may give either (callers look such frames up).

        In the per-domain form a batch as large as the domain's list is
        merged with it (the sorted queries and the list are two sorted runs:
        a stable sort of both is one linear merge): when that adds no value,
        every frame is owned. Otherwise, and for a small batch, the sorted
        queries are searched in the list.
        """
        self._ensure()
        lists = self._dsort
        if lists is None:
            same: Bool = self._lookup(u64(frames), False) == d
            return same
        s = lists[d]
        f = np.asarray(frames)
        n = len(f)
        if not n or not len(s):
            return np.zeros(n, bool)
        if int(f.max()) > U32_MAX:
            fu = u64(f)
            a, b = dom_bounds(s, fu, fu)
            return b > a
        q = f.astype(np.uint32)
        if 8 * n >= len(s):
            qs = np.sort(q)
            m = np.concatenate((s, qs))
            m.sort(kind="stable")
            if int(np.count_nonzero(m[1:] != m[:-1])) + 1 == len(s):
                return np.ones(n, bool)
        o = np.argsort(q, kind="stable")
        qs = q[o]
        out = np.empty(n, bool)
        out[o] = s[np.minimum(np.searchsorted(s, qs), len(s) - 1)] == qs
        return out

    def all_owned_sorting(self, d: int, q: Arr) -> bool:
        """Does domain ``d`` own every frame of the ``uint32`` array ``q``?
        ``q`` is sorted in place (no copy: on a 1 TiB host that is 8 MiB a
        domain on each worker thread); False also when the fast proof does
        not apply, and the caller then asks :meth:`owned_by` frame by frame."""
        self._ensure()
        s = self._dsort[d] if self._dsort is not None else None
        if s is None or not len(q) or not len(s):
            return False
        q.sort()
        return self._proven(s, q)

    @staticmethod
    def _proven(s: Arr, qs: Arr) -> bool:
        """Every value of the sorted ``qs`` is in the sorted owned list ``s``."""
        if len(qs) <= len(s) and _few_extra(qs, s):
            return True
        if 8 * len(qs) >= len(s):
            # the sorted frames and the list are two sorted runs: a stable
            # sort of both is one linear merge; no new value: all owned
            m = np.concatenate((s, qs))
            m.sort(kind="stable")
            return int(np.count_nonzero(m[1:] != m[:-1])) + 1 == len(s)
        return False

    def not_owned(self, dom: I64, frames: Arr) -> tuple[I64, I64]:
        """Positions whose frame is not owned by their domain index ``dom``
        (and not owned twice: OWN_DUPLICATE reports that), with the owner
        (NONE or a domain): :meth:`owned_by` per domain, owners looked up for
        the misses only."""
        f = np.asarray(frames)
        miss: list[I64] = []
        for d in np.unique(dom).tolist():
            sel = np.flatnonzero(dom == d)
            miss.append(sel[~self.owned_by(int(d), f[sel])])
        pos = cat(miss, np.int64)
        d1 = self.dom_at(u64(f[pos])) if len(pos) else np.zeros(0, np.int64)
        b = np.flatnonzero((d1 != dom[pos]) & (d1 != AMBIG))
        return pos[b], d1[b]

    # --- the sorted disjoint segments ---------------------------------------------

    @property
    def segs(self) -> tuple[Arr, Arr, Arr, Arr]:
        """(start, last, row, domain) of the sorted disjoint owned segments;
        built from the packed keys on first use in the packed form."""
        self._ensure()
        if self._dsort is not None:
            self._global()
        if self._segs is None:
            key = self._key
            assert key is not None
            st = key >> np.uint64(DB)
            self._segs = (st, st, np.zeros(0, np.int64), (key & np.uint64(DMASK)).astype(np.int16))
        return self._segs

    @property
    def seg_start(self) -> Arr:
        return self.segs[0]

    @property
    def seg_last(self) -> Arr:
        return self.segs[1]

    @property
    def seg_dom(self) -> Arr:
        return self.segs[3]

    # --- point lookups ------------------------------------------------------------

    def _resolve(self, f: U64, rows: bool) -> I64:
        """Owner domain (or row) of each frame, in any order."""
        key = self._key
        if key is not None and not rows:
            fits = f < np.uint64(1 << (64 - DB))
            q = np.where(fits, f, np.uint64(0)) << np.uint64(DB)
            q |= np.uint64(DMASK)
            k = np.searchsorted(key, q, side="right") - 1
            kk = key[np.maximum(k, 0)]
            ok = fits & (k >= 0) & ((kk >> np.uint64(DB)) == f)
            return np.where(ok, (kk & np.uint64(DMASK)).astype(np.int64), NONE)
        st, last, row, dom = self.segs
        out = np.full(len(f), NONE, np.int64)
        if not len(st):
            return out
        k = np.searchsorted(st, self._q(f), side="right") - 1
        kc = np.maximum(k, 0)
        ok = (k >= 0) & (f <= last[kc])
        out[ok] = (row if rows else dom)[kc[ok]]
        return out

    def _lookup(self, frames: Arr, rows: bool) -> I64:
        """The owner domain (or row) of each frame, NONE where none.

        A large batch is sorted first (one ``np.sort`` of ``frame << b |
        position`` where that fits), so the binary searches and the gathers
        walk memory in order; only the answer is scattered back.
        """
        f = u64(frames)
        n = len(f)
        if n <= 65536:
            return self._resolve(f, rows)
        bits = (n - 1).bit_length()
        big = f >= np.uint64(1 << (64 - bits))
        if big.any():  # INVALID_MFN and other huge frames: looked up apart
            out = np.full(n, NONE, np.int64)
            nb = np.flatnonzero(big)
            out[nb] = self._resolve(f[nb], rows)
            if len(nb) < n:
                sm = np.flatnonzero(~big)
                out[sm] = self._lookup(f[sm], rows)
            return out
        key = f << np.uint64(bits)
        key |= np.arange(n, dtype=np.uint64)
        key.sort()
        pos = (key & np.uint64((1 << bits) - 1)).astype(np.intp)
        key >>= np.uint64(bits)
        out = np.empty(n, np.int64)
        out[pos] = self._resolve(key, rows)
        return out

    def _q(self, f: U64) -> Arr:
        """Queries in the segment table's dtype, so ``searchsorted`` never
        converts the table: above a ``uint32`` table's range a frame clamps
        to 2**32 - 1, which every start is at or below (exact for 'right')."""
        if self.seg_start.dtype == np.uint32:
            return np.minimum(f, np.uint64(U32_MAX)).astype(np.uint32)
        return f

    def _rows_by_scan(self, frames: U64, doms: I64) -> I64:
        """Packed or per-domain form (no two rows share a frame): the row
        owning each frame, by one pass over the ownership of the owning
        domains only (a domain per task on the index's executor)."""
        out = np.full(len(frames), NONE, np.int64)
        own = self.own

        def one(d: int) -> tuple[I64, I64]:
            sel = np.flatnonzero(doms == d)
            uq, inv = np.unique(frames[sel], return_inverse=True)
            st = own.parts[d]["start_mfn"]
            row_of = np.full(len(uq), NONE, np.int64)
            wh, wf = self._watch_hits, self._watch
            if wh is not None and wf is not None and bool(np.isin(uq, wf).all()):
                # the build's pass found every record holding a watched frame
                cand = wh[d]
                hit = cand[np.isin(u64(st[cand]), uq)]
            else:
                # a few frames (grant frames): one filtered pass over the records
                hit = positions_in(st, uq)
            row_of[np.searchsorted(uq, u64(st[hit]))] = int(own.offs[d]) + hit
            return sel, row_of[inv]

        for sel, rows in self.map(one, np.unique(doms).tolist()):
            out[sel] = rows
        return out

    def row_at(self, frames: Arr) -> I64:
        """The ownership row of each frame (NONE, AMBIG)."""
        self._ensure()
        if self._key is not None or self._dsort is not None:
            # no frame is owned twice: rows come from the owners' own records
            f = u64(frames)
            out = np.full(len(f), NONE, np.int64)
            d = self.dom_at(f)
            owned = np.flatnonzero(d >= 0)
            if len(owned):
                out[owned] = self._rows_by_scan(f[owned], d[owned])
            return out
        return self._lookup(frames, True)

    def dom_at(self, frames: Arr) -> I64:
        """The owner domain index of each frame (NONE, AMBIG); a lazy index
        answers a batch of at most 64 distinct frames by a scan."""
        if self._pending:
            f = u64(frames)
            if len(f) <= 64 or len(np.unique(f)) <= 64:
                return self._dom_scan(f)
            self._ensure()
        if self._dsort is not None:
            if self._small(len(frames)):
                return self._dom_per_domain(u64(frames))
            self._global()
        return self._lookup(frames, False)

    # --- runs -----------------------------------------------------------------------

    @property
    def runs(self) -> tuple[U64, U64, I64]:
        """(start, last, domain) of the maximal runs covering [0, 2**64 - 1]."""
        if self._runs is None:
            self._runs = _runs_from_segments(self.seg_start, self.seg_last, self.seg_dom)
        return self._runs

    @property
    def runs_start(self) -> U64:
        return self.runs[0]

    @property
    def runs_dom(self) -> I64:
        return self.runs[2]

    def run_of(self, frames: Arr) -> I64:
        return ss_right(self.runs[0], u64(frames)) - 1

    def _ss(self, q: U64) -> I64:
        return ss_right(self.seg_start, self._q(u64(q)))

    # --- ranges ---------------------------------------------------------------------

    def _gather(self, u0: U64, u1: U64) -> tuple[Arr, I64]:
        """Per-domain form: every owned frame inside the disjoint sorted
        pieces [u0, u1], with its domain (frames the stream lists one by one:
        the work follows the stream, not the pieces' lengths)."""
        lists = self._dsort
        assert lists is not None
        fr: list[Arr] = []
        dm: list[I64] = []
        for d, s in enumerate(lists):
            if not len(s):
                continue
            a, b = dom_bounds(s, u0, u1)
            ks, _ = expand(a, b - a)
            if len(ks):
                fr.append(s[ks])
                dm.append(np.full(len(ks), d, np.int64))
        return cat(fr, np.uint64), cat(dm, np.int64)

    def frames_hit(self, start: U64, last: U64) -> I64:
        """Rows owning a frame of any interval [start, last] (the global
        extents), without expanding them: the intervals are merged into a
        disjoint union and each union piece selects a contiguous range of
        segments, so the work is O(segments + intervals)."""
        self._ensure()
        if not len(start) or not self.own.n:
            return np.zeros(0, np.int64)
        u0, u1 = _union(start, last)
        if self._dsort is not None:
            hf, hd = self._gather(u0, u1)
            if not len(hf):
                return np.zeros(0, np.int64)
            rows = self._rows_by_scan(hf, hd)
            return np.unique(rows[rows >= 0])
        n_seg = len(self._key) if self._key is not None else len(self.seg_start)
        if not n_seg:
            return np.zeros(0, np.int64)
        key = self._key
        if key is not None:
            # packed form: the frames inside each piece are a key range; only
            # those (usually none) are mapped back to their rows
            sh = np.uint64(DB)
            fits = u0 < np.uint64(1 << (64 - DB))
            u0f, u1f = u0[fits], np.minimum(u1[fits], np.uint64((1 << (64 - DB)) - 1))
            a = np.searchsorted(key, u0f << sh, side="left")
            b = np.searchsorted(key, (u1f << sh) | np.uint64(DMASK), side="right")
            ks, _ = expand(a.astype(np.int64), (b - a).astype(np.int64))
            if not len(ks):
                return np.zeros(0, np.int64)
            hk = key[ks]
            rows = self._rows_by_scan(hk >> sh, (hk & np.uint64(DMASK)).astype(np.int64))
            return np.unique(rows[rows >= 0])
        st, last_, row, _ = self.segs
        k0 = np.maximum(self._ss(u0) - 1, 0)
        k1 = self._ss(u1)  # exclusive
        ks, which = expand(k0, np.maximum(k1 - k0, 0))
        hit = (st[ks] <= u1[which]) & (last_[ks] >= u0[which])
        r = row[ks[hit]]
        return np.unique(r[r >= 0])

    def runs_for(self, start: U64, last: U64) -> tuple[U64, I64]:
        """(start, domain) of runs that agree with :attr:`runs` on every frame
        of the intervals [start, last]: the whole runs, or in the per-domain
        form runs built from the owned frames inside the intervals only."""
        self._ensure()
        if self._dsort is None or not len(start):
            r = self.runs
            return r[0], r[2]
        u0, u1 = _union(start, last)
        hf, hd = self._gather(u0, u1)
        o = np.argsort(hf, kind="stable")
        hf, hd = hf[o], hd[o]
        rs, _, rd = _runs_from_segments(hf, hf, hd)
        return rs, rd


#: :func:`_few_extra` gives up beyond this many owned frames missing from
#: the sorted frames (each costs one comparison pass)
_EXTRA = 16


def _few_extra(qs: Arr, s: Arr) -> bool:
    """Are the sorted frames ``qs`` the strictly increasing list ``s`` less
    at most :data:`_EXTRA` of its values (a domain owning a few frames it
    does not map)? Exact when True; False only means "not proven": each
    mismatch must be a value of ``s`` to skip, found by one comparison of
    the remaining runs, so the cost is a few linear passes, not a merge."""
    k = len(s) - len(qs)
    if k > _EXTRA:
        return False
    i = j = 0
    while i < len(qs):
        ne = qs[i:] != s[j : j + len(qs) - i]
        p = int(ne.argmax())
        if not ne[p]:
            return True
        # s[j + p] is not among the frames: skippable once per extra value
        if j - i >= k or qs[i + p] <= s[j + p]:
            return False
        i += p
        j += p + 1
    return True


def _union(start: U64, last: U64) -> tuple[U64, U64]:
    """The disjoint sorted pieces of a union of intervals [start, last]."""
    o = np.argsort(start, kind="stable")
    s0, s1 = u64(start)[o], u64(last)[o]
    cm = np.maximum.accumulate(s1)
    head = np.ones(len(s0), bool)
    head[1:] = s0[1:] > cm[:-1]
    hs = np.flatnonzero(head)
    return s0[hs], cm[np.concatenate((hs[1:] - 1, [len(s0) - 1]))]


def _runs_from_segments(seg_start: U64, seg_last: U64, seg_dom: I64) -> tuple[U64, U64, I64]:
    """Maximal runs over [0, 2**64 - 1] from sorted disjoint segments, gaps NONE."""
    n = len(seg_start)
    if n == 0:
        return np.array([0], np.uint64), np.array([U64_MAX], np.uint64), np.array([NONE])
    brk = np.ones(n, bool)
    brk[1:] = (seg_start[1:] != seg_last[:-1] + _ONE) | (seg_dom[1:] != seg_dom[:-1])
    heads = np.flatnonzero(brk)
    tails = np.concatenate((heads[1:] - 1, [n - 1]))
    rs, rl, rd = seg_start[heads], seg_last[tails], seg_dom[heads]
    k = len(rs)
    gap_before = np.ones(k, bool)
    gap_before[0] = rs[0] > 0
    gap_before[1:] = rs[1:] > rl[:-1] + _ONE
    ng = int(gap_before.sum())
    tail_gap = bool(rl[-1] < U64_MAX)
    total = k + ng + int(tail_gap)
    out_s = np.empty(total, np.uint64)
    out_l = np.empty(total, np.uint64)
    out_d = np.empty(total, np.int64)
    run_pos = np.arange(k) + np.cumsum(gap_before)
    out_s[run_pos], out_l[run_pos], out_d[run_pos] = rs, rl, rd
    gi = np.flatnonzero(gap_before)
    gap_pos = run_pos[gi] - 1
    prev_last = rl[np.maximum(gi - 1, 0)] + _ONE
    out_s[gap_pos] = np.where(gi > 0, prev_last, np.uint64(0))
    out_l[gap_pos] = rs[gi] - _ONE
    out_d[gap_pos] = NONE
    if tail_gap:
        out_s[-1], out_l[-1], out_d[-1] = rl[-1] + _ONE, U64_MAX, NONE
    return out_s, out_l, out_d


def owner_index(
    h: Host,
    method: Method = "auto",
    executor: Executor | None = None,
    lazy: bool = False,
    watch: Arr | None = None,
) -> OwnerIndex:
    """The owner index of a host. ``method`` is accepted for compatibility:
    ``"dense"``, ``"interval"`` and ``"auto"`` all select the sorted-extent
    index (one algorithm, exact over u64, memory O(rows)). ``executor``
    (optional, the caller's) runs its per-domain sorts on several threads.
    ``lazy`` defers the build until a question needs it: a few owner lookups
    (:meth:`OwnerIndex.dom_at`) are answered by one scan of the records.
    ``watch``: frames whose ownership rows will be asked for (at most
    :data:`WATCH_MAX`, e.g. the grant frames), found during the build."""
    if method not in ("auto", "dense", "interval"):
        raise CallerError(f"unknown method {method!r}; expected auto, dense or interval")
    return OwnerIndex(h.own, executor, lazy, watch)


# --- range queries (P2M extents) ---------------------------------------------------


def first_run_not_in(
    rd: I64, k0: I64, k1: I64, want: I64, bad_of: Callable[[I64, int], Bool]
) -> I64:
    """Per query, the first run in [k0, k1] that is bad for its domain ``want``
    (``bad_of(runs_dom, want)``), or -1. One vectorised pass per domain."""
    res = np.full(len(k0), -1, np.int64)
    for d in np.unique(want).tolist():
        sel = np.flatnonzero(want == d)
        pos = np.flatnonzero(bad_of(rd, int(d)))
        if not len(pos):
            continue
        j = np.searchsorted(pos, k0[sel])
        jc = np.minimum(j, len(pos) - 1)
        hit = (j < len(pos)) & (pos[jc] <= k1[sel])
        res[sel[hit]] = pos[jc[hit]]
    return res


def range_owner(idx: OwnerIndex, m: U64, last: U64, want: I64) -> tuple[Bool, U64, I64]:
    """Is every frame of [m, last] owned by domain ``want`` (or ambiguous)?
    Also the first frame that is not, and its owner (NONE if unowned)."""
    rs, rd = idx.runs_for(m, last)
    k0, k1 = ss_right(rs, u64(m)) - 1, ss_right(rs, u64(last)) - 1
    d0 = rd[k0]
    mine = (d0 == want) | (d0 == AMBIG)
    ok = (k0 == k1) & mine
    bad = u64(m).copy()
    owner = d0.copy()
    multi = np.flatnonzero(~ok & mine)  # starts well, spans several runs
    if len(multi):
        first = first_run_not_in(
            rd, k0[multi], k1[multi], want[multi], lambda r, d: (r != d) & (r != AMBIG)
        )
        good = first < 0
        ok[multi[good]] = True
        fb = multi[~good]
        bad[fb] = np.maximum(bad[fb], rs[first[~good]])
        owner[fb] = rd[first[~good]]
    return ok, bad, owner


def range_foreign(
    idx: OwnerIndex, m: U64, last: U64, mine: I64
) -> tuple[Bool, U64, Bool, U64, I64]:
    """Is every frame of [m, last] owned by a domain other than ``mine`` (or
    ambiguous)? Returns (some frame unowned, the first unowned frame, some
    frame ``mine``'s, the first such frame, the owner of the first frame):
    each rule an extent breaks is reported with the frame that breaks it."""
    rs, rd = idx.runs_for(m, last)
    k0, k1 = ss_right(rs, u64(m)) - 1, ss_right(rs, u64(last)) - 1
    fn = first_run_not_in(rd, k0, k1, mine, lambda r, d: r == NONE)
    fs = first_run_not_in(rd, k0, k1, mine, lambda r, d: r == d)
    mu = u64(m)
    un_frame = np.where(fn >= 0, np.maximum(mu, rs[np.maximum(fn, 0)]), mu)
    self_frame = np.where(fs >= 0, np.maximum(mu, rs[np.maximum(fs, 0)]), mu)
    return fn >= 0, un_frame, fs >= 0, self_frame, rd[k0]
