"""The owner index: frame → owner and ownership runs (LU spec §4.8).

Two interchangeable implementations give the same answers (see the package
doc): :class:`DenseIndex`, a frame → ``domain << 32 | entry`` map, and
:class:`IntervalIndex`, sorted disjoint owner segments. Every check asks
ownership questions only through :class:`OwnerIndex`, :func:`range_owner`
and :func:`range_foreign`, so a new index (issue 14: 1 TiB hosts) changes
this module alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np

from xenlu.errors import CallerError
from xenlu.validate._arrays import (
    AMBIG,
    CAP,
    I64,
    NONE,
    Arr,
    Bool,
    expand,
    i64,
    last_frame,
    ss_right,
)
from xenlu.validate._host import Host, Ownership

__all__ = [
    "DenseIndex",
    "IntervalIndex",
    "Method",
    "OwnerIndex",
    "owner_index",
    "range_foreign",
    "range_owner",
]

Method = Literal["auto", "dense", "interval"]

_ENT_MASK = (1 << 32) - 1
_V_NONE = -1  # dense map value of an unowned frame: >> 32 gives NONE
_V_AMBIG = -(2 << 32)  # … of a frame owned twice: >> 32 gives AMBIG


class OwnerIndex:
    """Frame → owner (ownership row, domain index) and ownership runs.

    Unowned frames give ``NONE``, frames owned twice ``AMBIG`` (row and
    domain). A run is a maximal range of frames with the same owner domain;
    the runs cover ``[0, CAP]``.
    """

    own: Ownership
    runs_start: I64
    runs_last: I64
    runs_dom: I64
    dup_rows: I64  # rows claiming a frame another row claims too
    name: str

    def row_at(self, frames: Arr) -> I64:
        raise NotImplementedError

    def dom_at(self, frames: Arr) -> I64:
        raise NotImplementedError

    def run_of(self, frames: I64) -> I64:
        raise NotImplementedError

    def frames_hit(self, start: I64, last: I64) -> I64:
        """Rows owning a frame of any interval [start, last] (for the few global
        extents); claimants of a frame owned twice are dup rows anyway."""
        raise NotImplementedError


def _runs_from_segments(seg_start: I64, seg_last: I64, seg_dom: I64) -> tuple[I64, I64, I64]:
    """Maximal runs over [0, CAP] from sorted disjoint segments, gaps as NONE."""
    n = len(seg_start)
    if n == 0:
        return (
            np.array([0], np.int64),
            np.array([CAP], np.int64),
            np.array([NONE], np.int64),
        )
    brk = np.ones(n, bool)
    brk[1:] = (seg_start[1:] != seg_last[:-1] + 1) | (seg_dom[1:] != seg_dom[:-1])
    heads = np.flatnonzero(brk)
    tails = np.concatenate((heads[1:] - 1, [n - 1]))
    rs, rl, rd = seg_start[heads], seg_last[tails], seg_dom[heads]
    k = len(rs)
    gap_before = np.ones(k, bool)
    gap_before[0] = rs[0] > 0
    gap_before[1:] = rs[1:] > rl[:-1] + 1
    # interleave: [gap_0?] run_0 [gap_1?] run_1 ... [final gap]
    ng = int(gap_before.sum())
    tail_gap = bool(rl[-1] < CAP)
    total = k + ng + int(tail_gap)
    out_s = np.empty(total, np.int64)
    out_l = np.empty(total, np.int64)
    out_d = np.empty(total, np.int64)
    run_pos = np.arange(k) + np.cumsum(gap_before)
    out_s[run_pos], out_l[run_pos], out_d[run_pos] = rs, rl, rd
    gi = np.flatnonzero(gap_before)
    gap_pos = run_pos[gi] - 1
    out_s[gap_pos] = np.where(gi > 0, rl[np.maximum(gi - 1, 0)] + 1, 0)
    out_l[gap_pos] = rs[gi] - 1
    out_d[gap_pos] = NONE
    if tail_gap:
        out_s[-1], out_l[-1], out_d[-1] = rl[-1] + 1, CAP, NONE
    return out_s, out_l, out_d


def _own_chunks(own: Ownership) -> Iterator[tuple[I64, I64]]:
    """(frames, map values) of every owned frame below CAP, chunk by chunk;
    a map value is ``domain << 32 | entry``."""
    for base, dom, c in own.chunks(("start_mfn", "nr_pages")):
        start = i64(c["start_mfn"])
        nr = c["nr_pages"]
        ent = np.arange(base, base + len(dom), dtype=np.int64) - own.offs[dom]
        val = (dom << 32) | ent
        if bool((nr == 1).all()) and bool((start < CAP).all()):
            yield start, val
            continue
        last = last_frame(start, nr)
        ok = (start < CAP) & (last >= start)
        fr, which = expand(start[ok], (last - start + 1)[ok])
        yield fr, val[ok][which]


class DenseIndex(OwnerIndex):
    """A frame → ``domain << 32 | entry`` map over [0, M): one scatter to fill
    it, one gather to find every frame claimed twice (see module doc)."""

    name = "dense"

    def __init__(self, own: Ownership, m: int) -> None:
        self.own = own
        self.m = m
        mp = np.full(m + 1, _V_NONE, np.int64)  # slot m: sentinel for frames >= m
        for fr, val in _own_chunks(own):
            mp[fr] = val
        # A frame claimed twice keeps one claimant; every other one reads back
        # a different value.
        lost_f: list[I64] = []
        lost_v: list[I64] = []
        for fr, val in _own_chunks(own):
            lose = mp[fr] != val
            if lose.any():
                lost_f.append(fr[lose])
                lost_v.append(val[lose])
        if lost_f:
            lf = np.concatenate(lost_f)
            vals = np.concatenate((np.concatenate(lost_v), mp[lf]))
            self.dup_rows = np.unique(self._rows(vals))
            mp[lf] = _V_AMBIG
        else:
            self.dup_rows = np.zeros(0, np.int64)
        self.map = mp
        self._rid: Arr | None = None

    def _rows(self, v: I64) -> I64:
        d = v >> 32
        return np.where(v >= 0, self.own.offs[np.maximum(d, 0)] + (v & _ENT_MASK), d)

    def _get(self, frames: Arr) -> I64:
        f = np.asarray(frames)
        if f.dtype.kind == "u":
            f = np.minimum(f, np.uint64(self.m)).view(np.int64)
        else:
            f = np.minimum(f, self.m)
        out: I64 = self.map[f]
        return out

    def row_at(self, frames: Arr) -> I64:
        return self._rows(self._get(frames))

    def dom_at(self, frames: Arr) -> I64:
        return self._get(frames) >> 32

    def _build_runs(self) -> None:
        m = self.m
        if m == 0:
            self.runs_start = np.array([0], np.int64)
            self.runs_last = np.array([CAP], np.int64)
            self.runs_dom = np.array([NONE], np.int64)
            self._rid = np.zeros(1, np.int32)
            return
        dm = (self.map[:m] >> 32).astype(np.int32)
        b = (np.flatnonzero(dm[1:] != dm[:-1]) + 1).astype(np.int64)
        heads = np.concatenate(([0], b)).astype(np.int64)
        lasts = np.concatenate((b - 1, [m - 1])).astype(np.int64)
        # frames >= m: one final unowned run (frame m - 1 is owned by construction)
        self.runs_start = np.concatenate((heads, [m]))
        self.runs_last = np.concatenate((lasts, [CAP]))
        self.runs_dom = np.concatenate((dm[heads].astype(np.int64), [NONE]))
        rid = np.zeros(m + 1, np.int32)
        rid[b] = 1
        rid[m] = 1
        self._rid = np.cumsum(rid, dtype=np.int32)

    def run_of(self, frames: I64) -> I64:
        if self._rid is None:
            self._build_runs()
        assert self._rid is not None
        return self._rid[np.minimum(frames, self.m)].astype(np.int64)

    def frames_hit(self, start: I64, last: I64) -> I64:
        s = np.minimum(start, self.m)
        e = np.minimum(last + 1, self.m)
        fr, _ = expand(s, e - s)
        if not len(fr):
            return np.zeros(0, np.int64)
        r = self._rows(self.map[fr])
        return np.unique(r[r >= 0])


def _sort_rows(start: I64, valid: Bool) -> tuple[I64, I64]:
    """The valid rows ordered by (start, row), and their starts. One ``np.sort``
    of ``start << bits | row`` where that fits in 63 bits (any real host),
    else a stable argsort."""
    all_valid = bool(valid.all())
    rows = np.arange(len(start), dtype=np.int64) if all_valid else np.flatnonzero(valid)
    st_ = start if all_valid else start[rows]
    bits = max(1, len(start).bit_length())
    if not len(rows) or int(st_.max()) < (1 << (62 - bits)):
        key = (st_ << bits) | rows
        key.sort()
        return key & ((1 << bits) - 1), key >> bits
    order = rows[np.argsort(st_, kind="stable")]
    return order, start[order]


class IntervalIndex(OwnerIndex):
    """Sorted disjoint owner segments (see module doc)."""

    name = "interval"

    def __init__(self, own: Ownership) -> None:
        self.own = own
        start, last, dom, valid = own.full()
        order, s = _sort_rows(start, valid)
        lst = last[order]
        # Every row overlapping an earlier one, and its witness (§4.8).
        if len(order) > 1:
            cm = np.maximum.accumulate(lst)
            hold = np.maximum.accumulate(np.where(lst == cm, np.arange(len(lst)), 0))
            p = np.flatnonzero(s[1:] <= cm[:-1]) + 1
            self.dup_rows = np.unique(np.concatenate((order[p], order[hold[p - 1]])))
        else:
            self.dup_rows = np.zeros(0, np.int64)
        clean = order[~np.isin(order, self.dup_rows)] if len(self.dup_rows) else order
        seg_s, seg_l, seg_r = start[clean], last[clean], clean
        if len(self.dup_rows):
            cs, cl, cr = self._cells(start, last, self.dup_rows)
            at = np.searchsorted(seg_s, cs)
            seg_s = np.insert(seg_s, at, cs)
            seg_l = np.insert(seg_l, at, cl)
            seg_r = np.insert(seg_r, at, cr)
        self.seg_start, self.seg_last, self.seg_row = seg_s, seg_l, seg_r
        seg_d = np.where(seg_r >= 0, dom[np.maximum(seg_r, 0)], seg_r)
        self.runs_start, self.runs_last, self.runs_dom = _runs_from_segments(seg_s, seg_l, seg_d)

    @staticmethod
    def _cells(start: I64, last: I64, rows: I64) -> tuple[I64, I64, I64]:
        """Elementary cells of overlapping rows: owned by one row, or AMBIG."""
        bps = np.unique(np.concatenate((start[rows], last[rows] + 1)))
        c0 = np.searchsorted(bps, start[rows])
        c1 = np.searchsorted(bps, last[rows] + 1)
        cells, which = expand(c0.astype(np.int64), (c1 - c0).astype(np.int64))
        owner = np.full(len(bps) - 1, NONE, np.int64)
        owner[cells] = rows[which]
        cover = np.bincount(cells, minlength=len(bps) - 1)
        cov = np.flatnonzero(cover > 0)
        return bps[cov], bps[cov + 1] - 1, np.where(cover[cov] > 1, AMBIG, owner[cov])

    def row_at(self, frames: Arr) -> I64:
        f = i64(frames)
        if not len(self.seg_start):
            return np.full(len(f), NONE, np.int64)
        k = ss_right(self.seg_start, f) - 1
        kc = np.maximum(k, 0)
        ok = (k >= 0) & (f <= self.seg_last[kc])
        return np.where(ok, self.seg_row[kc], NONE).astype(np.int64)

    def dom_at(self, frames: Arr) -> I64:
        return self.runs_dom[self.run_of(i64(frames))]

    def run_of(self, frames: I64) -> I64:
        return ss_right(self.runs_start, frames) - 1

    def frames_hit(self, start: I64, last: I64) -> I64:
        if not len(self.seg_start) or not len(start):
            return np.zeros(0, np.int64)
        # segments intersecting [start, last]: from the one containing start
        k0 = np.maximum(ss_right(self.seg_start, start) - 1, 0)
        k1 = ss_right(self.seg_start, last)  # exclusive
        ks, which = expand(k0, k1 - k0)
        hit = (self.seg_start[ks] <= last[which]) & (self.seg_last[ks] >= start[which])
        r = self.seg_row[ks[hit]]
        return np.unique(r[r >= 0])


def owner_index(h: Host, method: Method = "auto") -> OwnerIndex:
    """The owner index of a host: ``method`` ``"dense"``, ``"interval"`` or ``"auto"``
    (the dense map where it costs at most ~2x the input, else intervals)."""
    own = h.own
    m = 0
    frames = 0
    rows = 0
    for _, _, c in own.chunks(("start_mfn", "nr_pages")):
        start = i64(c["start_mfn"])
        last = last_frame(start, c["nr_pages"])
        ok = (start < CAP) & (last >= start)
        if ok.any():
            m = max(m, int(last[ok].max()) + 1)
            frames += int((last - start + 1)[ok].sum())
            rows += int(ok.sum())
    if method == "auto":
        queries = h.p2m.n + sum(len(d.page_types) + len(d.grant_maps) for d in h.doms)
        # the map costs 8 bytes per frame: allow 8 frames per entry (~2x the input size)
        budget = 8 * (rows + queries) + (1 << 20)
        method = "dense" if m <= (1 << 30) and m <= budget and frames <= budget else "interval"
    if method == "dense":
        if m > (1 << 34):
            raise CallerError(f"dense owner index over {m} frames refused; use method='interval'")
        return DenseIndex(own, m)
    return IntervalIndex(own)


# --- range queries (P2M extents) ---------------------------------------------------


def first_run_not_in(
    idx: OwnerIndex, k0: I64, k1: I64, want: I64, bad_of: Callable[[I64, int], Bool]
) -> I64:
    """Per query, the first run in [k0, k1] that is bad for its domain ``want``
    (``bad_of(runs_dom, want)``), or -1. One vectorised pass per domain."""
    res = np.full(len(k0), -1, np.int64)
    for d in np.unique(want).tolist():
        sel = np.flatnonzero(want == d)
        pos = np.flatnonzero(bad_of(idx.runs_dom, int(d)))
        if not len(pos):
            continue
        j = np.searchsorted(pos, k0[sel])
        jc = np.minimum(j, len(pos) - 1)
        hit = (j < len(pos)) & (pos[jc] <= k1[sel])
        res[sel[hit]] = pos[jc[hit]]
    return res


def range_owner(idx: OwnerIndex, m: I64, last: I64, want: I64) -> tuple[Bool, I64, I64]:
    """Is every frame of [m, last] owned by domain ``want`` (or ambiguous)?
    Also the first frame that is not, and its owner (NONE if unowned)."""
    k0, k1 = idx.run_of(m), idx.run_of(last)
    d0 = idx.runs_dom[k0]
    mine = (d0 == want) | (d0 == AMBIG)
    ok = (k0 == k1) & mine
    bad = m.copy()
    owner = d0.copy()
    multi = np.flatnonzero(~ok & mine)  # starts well, spans several runs
    if len(multi):
        first = first_run_not_in(
            idx, k0[multi], k1[multi], want[multi], lambda rd, d: (rd != d) & (rd != AMBIG)
        )
        good = first < 0
        ok[multi[good]] = True
        fb = multi[~good]
        bad[fb] = np.maximum(m[fb], idx.runs_start[first[~good]])
        owner[fb] = idx.runs_dom[first[~good]]
    return ok, bad, owner


def range_foreign(idx: OwnerIndex, m: I64, last: I64, mine: I64) -> tuple[Bool, Bool, I64, I64]:
    """Is every frame of [m, last] owned by a domain other than ``mine`` (or
    ambiguous)? Returns (some frame unowned, some frame ``mine``'s, the first
    such frame, the owner of the first frame)."""
    k0, k1 = idx.run_of(m), idx.run_of(last)
    rd = idx.runs_dom
    fn = first_run_not_in(idx, k0, k1, mine, lambda r, d: r == NONE)
    fs = first_run_not_in(idx, k0, k1, mine, lambda r, d: r == d)
    big = np.iinfo(np.int64).max
    fb = np.minimum(np.where(fn >= 0, fn, big), np.where(fs >= 0, fs, big))
    bad_frame = np.where(fb < big, np.maximum(m, idx.runs_start[np.minimum(fb, len(rd) - 1)]), m)
    return fn >= 0, fs >= 0, bad_frame, rd[k0]
