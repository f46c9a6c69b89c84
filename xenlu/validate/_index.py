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

Every check asks ownership questions only through :class:`OwnerIndex`,
:func:`range_owner` and :func:`range_foreign`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from xenlu.errors import CallerError
from xenlu.validate._arrays import (
    AMBIG,
    I64,
    NONE,
    U64,
    U64_MAX,
    Arr,
    Bool,
    expand,
    last_frame,
    ss_right,
    u64,
)
from xenlu.validate._host import Host, Ownership

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


def _sorted_rows(own: Ownership) -> tuple[I64, U64, U64]:
    """Rows owning at least one frame ordered by (start, row), with their
    start and last frames in that order."""
    start = u64(own.col("start_mfn", np.uint64))
    nr = own.col("nr_pages", np.uint64)
    n = len(start)
    bits = max(1, n.bit_length())
    valid = nr > 0
    all_valid = bool(valid.all())
    rows = np.arange(n, dtype=np.int64) if all_valid else np.flatnonzero(valid)
    st = start if all_valid else start[rows]
    if not len(rows):
        return rows, st, st.copy()
    if int(st.max()) < (1 << (64 - bits)):
        # one np.sort of a packed key: start in the high bits, row in the low
        key = (st << np.uint64(bits)) | rows.astype(np.uint64)
        del st
        key.sort()
        order = (key & np.uint64((1 << bits) - 1)).astype(np.int64)
        key >>= np.uint64(bits)
        s = key
    else:
        o = np.argsort(st, kind="stable")
        order, s = rows[o], st[o]
    # single-frame extents (a fragmented host): the last frames are the starts
    lst = s if bool((nr == 1).all()) else last_frame(s, nr[order])
    return order, s, lst


def _cells(rows: I64, s: U64, lst: U64) -> tuple[U64, U64, I64]:
    """Elementary cells of overlapping rows (any order): (start, last, owner
    row or AMBIG) for every maximal range covered at least once.

    Boundaries are the starts and the ends + 1 (an end at ``U64_MAX`` has
    none: coverage runs to the top); one sort of the boundary keys and two
    prefix sums give each cell its cover count and, where it is 1, its row.
    """
    has_end = lst < U64_MAX
    pos = np.concatenate((s, lst[has_end] + _ONE))
    dc = np.concatenate((np.ones(len(s), np.int64), np.full(int(has_end.sum()), -1, np.int64)))
    dr = np.concatenate((rows, -rows[has_end]))
    o = np.argsort(pos, kind="stable")
    pos, dc, dr = pos[o], dc[o], dr[o]
    head = np.ones(len(pos), bool)
    head[1:] = pos[1:] != pos[:-1]
    hs = np.flatnonzero(head)
    cover = np.cumsum(dc)
    rsum = np.cumsum(dr)
    # state after the last event at each distinct boundary
    ends = np.concatenate((hs[1:] - 1, [len(pos) - 1]))
    c_start = pos[hs]
    c_cover = cover[ends]
    c_row = rsum[ends]
    c_last = np.empty(len(hs), np.uint64)
    c_last[:-1] = c_start[1:] - _ONE
    c_last[-1] = U64_MAX
    keep = c_cover > 0
    owner = np.where(c_cover == 1, c_row, AMBIG)
    return c_start[keep], c_last[keep], owner[keep].astype(np.int64)


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

    >>> from xenlu.hostgen import make_host
    >>> idx = owner_index(Host(make_host((4, 16), n_hvm=1, mem_mib=2)))
    >>> int(idx.dom_at(np.array([2**64 - 1], np.uint64))[0]) == NONE
    True
    """

    name = "sorted"

    def __init__(self, own: Ownership) -> None:
        self.own = own
        order, s, lst = _sorted_rows(own)
        n = len(order)
        dom = own.dom_of(order) if n else np.zeros(0, np.int64)
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
            hold = np.maximum.accumulate(np.where(lst == cm, np.arange(n), 0))
            wit = np.where(new[p], p + 1, hold[np.maximum(p - 1, 0)])
            self.dup_rows = order[p]
            self.dup_witness = order[wit]
            self.dup_cluster = cid[p]
            cs, cl, cr = _cells(order[p], s[p], lst[p])
            clean = ~in_dup
            seg_s = np.concatenate((s[clean], cs))
            o = np.argsort(seg_s, kind="stable")
            self.seg_start = seg_s[o]
            self.seg_last = np.concatenate((lst[clean], cl))[o]
            self.seg_row = np.concatenate((order[clean], cr))[o]
            rd = own.dom_of(np.maximum(self.seg_row, 0)) if len(self.seg_row) else self.seg_row
            self.seg_dom = np.where(self.seg_row >= 0, rd, self.seg_row)
        else:
            self.dup_rows = self.dup_witness = self.dup_cluster = np.zeros(0, np.int64)
            self.seg_start, self.seg_last, self.seg_row = s, lst, order
            self.seg_dom = dom
        self._runs: tuple[U64, U64, I64] | None = None

    # --- point lookups ------------------------------------------------------------

    def _lookup(self, frames: Arr, col: I64) -> I64:
        """``col`` of the segment holding each frame, NONE where none does.

        A large batch is sorted first (one ``np.sort`` of ``frame << b |
        position`` where that fits), so the binary searches, the segment-end
        check and the gather of ``col`` all walk memory in order; only the
        answer is scattered back to the queries' order.
        """
        f = u64(frames)
        n = len(f)
        out = np.full(n, NONE, np.int64)
        if not len(self.seg_start) or not n:
            return out
        bits = max(1, (n - 1).bit_length())
        big = f >= np.uint64(1 << (64 - bits))
        if n <= 65536 or bool(big.all()):
            k = ss_right(self.seg_start, f) - 1
            kc = np.maximum(k, 0)
            ok = (k >= 0) & (f <= self.seg_last[kc])
            out[ok] = col[kc[ok]]
            return out
        if big.any():  # INVALID_MFN and other huge frames: looked up apart
            for part in (np.flatnonzero(big), np.flatnonzero(~big)):
                out[part] = self._lookup(f[part], col)
            return out
        key = f << np.uint64(bits)
        key |= np.arange(n, dtype=np.uint64)
        key.sort()
        pos = (key & np.uint64((1 << bits) - 1)).astype(np.intp)
        key >>= np.uint64(bits)
        k = np.searchsorted(self.seg_start, key, side="right") - 1
        kc = np.maximum(k, 0)
        ok = (k >= 0) & (key <= self.seg_last[kc])
        out[pos] = np.where(ok, col[kc], NONE)
        return out

    def row_at(self, frames: Arr) -> I64:
        """The ownership row of each frame (NONE, AMBIG)."""
        return self._lookup(frames, self.seg_row)

    def dom_at(self, frames: Arr) -> I64:
        """The owner domain index of each frame (NONE, AMBIG)."""
        return self._lookup(frames, self.seg_dom)

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

    # --- ranges ---------------------------------------------------------------------

    def frames_hit(self, start: U64, last: U64) -> I64:
        """Rows owning a frame of any interval [start, last] (the global
        extents), without expanding them: the intervals are merged into a
        disjoint union and each union piece selects a contiguous range of
        segments, so the work is O(segments + intervals)."""
        if not len(self.seg_start) or not len(start):
            return np.zeros(0, np.int64)
        o = np.argsort(start, kind="stable")
        s0, s1 = u64(start)[o], u64(last)[o]
        cm = np.maximum.accumulate(s1)
        head = np.ones(len(s0), bool)
        head[1:] = s0[1:] > cm[:-1]
        hs = np.flatnonzero(head)
        u0 = s0[hs]
        u1 = cm[np.concatenate((hs[1:] - 1, [len(s0) - 1]))]
        k0 = np.maximum(ss_right(self.seg_start, u0) - 1, 0)
        k1 = ss_right(self.seg_start, u1)  # exclusive
        ks, which = expand(k0, np.maximum(k1 - k0, 0))
        hit = (self.seg_start[ks] <= u1[which]) & (self.seg_last[ks] >= u0[which])
        r = self.seg_row[ks[hit]]
        return np.unique(r[r >= 0])


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


def owner_index(h: Host, method: Method = "auto") -> OwnerIndex:
    """The owner index of a host. ``method`` is accepted for compatibility:
    ``"dense"``, ``"interval"`` and ``"auto"`` all select the sorted-extent
    index (one algorithm, exact over u64, memory O(rows))."""
    if method not in ("auto", "dense", "interval"):
        raise CallerError(f"unknown method {method!r}; expected auto, dense or interval")
    return OwnerIndex(h.own)


# --- range queries (P2M extents) ---------------------------------------------------


def first_run_not_in(
    idx: OwnerIndex, k0: I64, k1: I64, want: I64, bad_of: Callable[[I64, int], Bool]
) -> I64:
    """Per query, the first run in [k0, k1] that is bad for its domain ``want``
    (``bad_of(runs_dom, want)``), or -1. One vectorised pass per domain."""
    res = np.full(len(k0), -1, np.int64)
    rd = idx.runs_dom
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
    k0, k1 = idx.run_of(m), idx.run_of(last)
    rs, rd = idx.runs_start, idx.runs_dom
    d0 = rd[k0]
    mine = (d0 == want) | (d0 == AMBIG)
    ok = (k0 == k1) & mine
    bad = u64(m).copy()
    owner = d0.copy()
    multi = np.flatnonzero(~ok & mine)  # starts well, spans several runs
    if len(multi):
        first = first_run_not_in(
            idx, k0[multi], k1[multi], want[multi], lambda r, d: (r != d) & (r != AMBIG)
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
    k0, k1 = idx.run_of(m), idx.run_of(last)
    rs, rd = idx.runs_start, idx.runs_dom
    fn = first_run_not_in(idx, k0, k1, mine, lambda r, d: r == NONE)
    fs = first_run_not_in(idx, k0, k1, mine, lambda r, d: r == d)
    mu = u64(m)
    un_frame = np.where(fn >= 0, np.maximum(mu, rs[np.maximum(fn, 0)]), mu)
    self_frame = np.where(fs >= 0, np.maximum(mu, rs[np.maximum(fs, 0)]), mu)
    return fn >= 0, un_frame, fs >= 0, self_frame, rd[k0]
