"""How the owner index is built (LU spec §4.8): the sorted rows, the cells of
overlapping clusters, the packed keys and the per-domain sorted frame lists with
their duplicate check by value range. :mod:`xenlu.host.validation._index` holds the
index and its questions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from typing import TypeVar

import numpy as np

from xenlu.host.validation._arrays import (
    AMBIG,
    I64,
    U64,
    U64_MAX,
    Arr,
    last_frame,
    positions_in,
)
from xenlu.host.validation._host import Ownership

_ONE = np.uint64(1)
_T = TypeVar("_T")
_R = TypeVar("_R")

U32_MAX = (1 << 32) - 1
SLICE = 1 << 20  # elements per slice when a sorted key column is read
BLOCK = 1 << 15  # records per block of a fused pass (a few hundred KiB: stays in cache)


def narrow_rows(n: int) -> type:
    return np.int32 if n < (1 << 31) else np.int64


def sorted_rows(own: Ownership) -> tuple[Arr, Arr, Arr]:
    """Rows owning at least one frame ordered by (start, row), with their
    start and last frames in that order.

    Memory is what the 1 TiB host needs (issue 14): one ``uint64`` key per
    row (``start << b | row``) is filled window by window from the stream's
    own columns, sorted in place, then split slice by slice into the starts
    (``uint32`` when every start fits, exact either way) and the rows
    (``int32`` when the count allows); the last frames are the starts
    themselves when every extent is one frame.
    """
    n = own.n
    bits = max(1, n.bit_length())
    n_valid = 0
    top = 0
    single = True
    for _, _, c in own.chunks(("start_mfn", "nr_pages")):
        nr = c["nr_pages"]
        v = nr > 0
        cnt = int(v.sum())
        n_valid += cnt
        if cnt:
            top = max(top, int(c["start_mfn"][v].max()))
            single = single and bool((nr == 1).all())
    rdt = narrow_rows(n)
    if n_valid == 0:
        empty = np.zeros(0, np.uint64)
        return np.zeros(0, np.int64), empty, empty
    sdt = np.uint32 if top <= U32_MAX else np.uint64
    if top >= (1 << (64 - bits)):
        # frames too large to pack with the row: a stable argsort (any u64)
        start = own.col("start_mfn", np.uint64)
        nrc = own.col("nr_pages", np.uint64)
        rows = np.flatnonzero(nrc > 0)
        o = np.argsort(start[rows], kind="stable")
        order = rows[o]
        s = start[order]
        return order, s, (s if single else last_frame(s, nrc[order]))
    key = np.empty(n_valid, np.uint64)
    pos = 0
    sh = np.uint64(bits)
    for base, _, c in own.chunks(("start_mfn", "nr_pages")):
        st = c["start_mfn"].astype(np.uint64)
        r = np.arange(base, base + len(st), dtype=np.uint64)
        v = c["nr_pages"] > 0
        if not v.all():
            st, r = st[v], r[v]
        m = len(st)
        k = key[pos : pos + m]
        np.left_shift(st, sh, out=k)
        k |= r
        pos += m
    key.sort()
    mask = np.uint64((1 << bits) - 1)
    s_out = np.empty(n_valid, sdt)
    order = np.empty(n_valid, rdt)
    for a in range(0, n_valid, SLICE):
        k = key[a : a + SLICE]
        order[a : a + SLICE] = k & mask
        s_out[a : a + SLICE] = k >> sh
    del key
    if single:
        return order, s_out, s_out
    nrc = own.col("nr_pages", np.uint64)
    return order, s_out, last_frame(s_out.astype(np.uint64), nrc[order])


def cells(rows: I64, s: U64, lst: U64) -> tuple[U64, U64, I64]:
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


DB = 15  # domain bits of a packed key (domain indices < 2**15)
DMASK = (1 << DB) - 1


def packed_single(own: Ownership, nd: int) -> U64 | None:
    """The fragmented host's index in 8 bytes per frame: when every extent is
    one frame, ``start << 15 | domain`` sorted in place. None when an extent
    is longer or empty, a start does not fit, or two rows claim a frame."""
    if nd > DMASK or own.n < 2:
        return None
    for _, _, c in own.chunks(("start_mfn", "nr_pages")):
        if not bool((c["nr_pages"] == 1).all()) or int(c["start_mfn"].max()) >> (64 - DB):
            return None
    key = np.empty(own.n, np.uint64)
    sh = np.uint64(DB)
    for base, dom, c in own.chunks(("start_mfn",)):
        k = key[base : base + len(dom)]
        np.left_shift(c["start_mfn"].astype(np.uint64), sh, out=k)
        k |= dom.astype(np.uint64)
    key.sort()
    for a in range(0, own.n - 1, SLICE):
        k = key[a : a + SLICE + 1] >> sh
        if bool((k[1:] == k[:-1]).any()):
            return None
    return key


RANGES = 16  # value ranges of the duplicate check, at least (its memory: 1/16 of the frames)
#: ... and more on a large host, so that one range's slices (concatenated and
#: sorted, on each worker thread at once) stay about this size: the check
#: then adds a few MiB to the index's 4 bytes per frame, not a sixteenth of it.
RANGE_BYTES = 8 << 20


def pmap(ex: Executor | None, fn: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[_R]:
    """``map`` on the caller's executor when there is one (numpy's sorts and
    searches release the GIL, so two threads use two cores)."""
    return ex.map(fn, items) if ex is not None else map(fn, items)


def sorted_dom(part: Arr, watch: U64 | None = None) -> tuple[Arr | None, int, I64]:
    """One domain's owned frames sorted as ``uint32`` (4 bytes a frame), or
    None when an extent is not one frame or a frame does not fit; the
    domain's largest frame; and the positions of its records whose frame is
    one of the sorted frames ``watch`` (found in the same pass)."""
    n = len(part)
    hits: list[I64] = []
    if not n:
        return np.zeros(0, np.uint32), 0, np.zeros(0, np.int64)
    st, nr = part["start_mfn"], part["nr_pages"]
    s = np.empty(n, np.uint32)
    top = 0
    # One pass over the records, a cache-sized block at a time: the extent
    # lengths, the largest frame and the narrowing copy all read the block
    # while it is in cache (three separate passes would each stream the
    # whole record array from memory).
    for a in range(0, n, BLOCK):
        b = min(a + BLOCK, n)
        c = st[a:b]
        if int(nr[a:b].min()) != 1 or int(nr[a:b].max()) != 1:
            return None, 0, np.zeros(0, np.int64)
        top = max(top, int(c.max()))
        if top > U32_MAX:
            return None, top, np.zeros(0, np.int64)
        s[a:b] = c
        if watch is not None:
            hit = positions_in(c, watch)
            if len(hit):
                hits.append(a + hit)
    s.sort()
    return s, top, (np.concatenate(hits) if hits else np.zeros(0, np.int64))


def range_has_dup(args: tuple[list[Arr], int, int]) -> bool:
    """Is a frame of [lo, hi) owned twice (in two domains' sorted lists, or
    twice in one)?"""
    lists, lo, hi = args
    pieces = []
    for s in lists:
        a = int(np.searchsorted(s, np.uint32(lo), "left"))
        b = int(np.searchsorted(s, np.uint32(hi - 1), "right"))
        if b > a:
            pieces.append(s[a:b])
    if not pieces:
        return False
    if len(pieces) == 1:
        c = pieces[0]  # sorted already
    else:
        c = np.concatenate(pieces)
        c.sort()
    return bool((c[1:] == c[:-1]).any())


def dom_bounds(s: Arr, u0: U64, u1: U64) -> tuple[I64, I64]:
    """[a, b) of a domain's sorted ``uint32`` frames inside each [u0, u1],
    exact for any u64 bound (the query is clamped to the list's range, so
    ``searchsorted`` never converts the list)."""
    big = np.uint64(U32_MAX)
    a = np.searchsorted(s, np.minimum(u0, big).astype(np.uint32), "left").astype(np.int64)
    a[u0 > big] = len(s)
    b = np.searchsorted(s, np.minimum(u1, big).astype(np.uint32), "right").astype(np.int64)
    return a, b


def per_domain(
    own: Ownership, nd: int, ex: Executor | None, watch: U64 | None = None
) -> tuple[list[Arr], int, list[I64]] | None:
    """The fragmented host's index in 4 bytes per owned frame: each domain's
    frames sorted (``uint32``), when every extent is one frame below 2**32 and
    no frame is owned twice (checked by value range: each range's slices of
    the sorted lists are concatenated and sorted, so the check's memory is a
    slice of about ``RANGE_BYTES``). None otherwise (the packed or general form)."""
    if nd > DMASK or own.n < 2:
        return None
    res = list(pmap(ex, lambda part: sorted_dom(part, watch), own.parts))
    lists: list[Arr] = []
    for s, _, _ in res:
        if s is None:
            return None
        lists.append(s)
    top = max(t for _, t, _ in res)
    ranges = max(RANGES, sum(len(s) for s in lists) * 4 // RANGE_BYTES + 1)
    step = top // ranges + 1
    bounds = [(lists, a, min(a + step, top + 1)) for a in range(0, top + 1, step)]
    if any(pmap(ex, range_has_dup, bounds)):
        return None
    return lists, top, [w for _, _, w in res]
