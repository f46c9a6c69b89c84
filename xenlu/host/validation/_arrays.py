"""Numpy helpers shared by the checks: exact frame numbers, duplicates, overlaps.

Every frame number is a ``uint64``, exact over the whole range (``max_page``
is a u64, LU spec §4.2); the inclusive last frame of an extent saturates at
:data:`U64_MAX` instead of wrapping (such an extent is beyond ``max_page``
and reported so). Domain-valued columns are int64 (with :data:`NONE`,
:data:`AMBIG`); frame columns never mix with them in arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "AMBIG",
    "CHUNK",
    "I64",
    "NONE",
    "U64",
    "U64_MAX",
    "Arr",
    "Bool",
    "cat",
    "dups_after_first",
    "expand",
    "field_or_zero",
    "group_starts",
    "last_frame",
    "overlaps",
    "positions_in",
    "ss_right",
    "u64",
]

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]
Arr = npt.NDArray[Any]

#: The largest frame number (and the saturated last frame of an extent that
#: would wrap past it).
U64_MAX = np.uint64((1 << 64) - 1)
NONE = -1  # "no owner" in owner-domain / owner-row columns
AMBIG = -2  # a frame owned twice: rules needing its owner skip it (OWN_DUPLICATE reports it)

#: Entries per chunk when a host-wide table is walked in pieces: temporaries
#: stay a few MiB, so the allocator reuses them instead of faulting in fresh
#: pages for every full-size intermediate.
CHUNK = 1 << 20


def u64(a: Arr) -> U64:
    """Frame numbers as exact uint64 (a view when they already are)."""
    return np.asarray(a).astype(np.uint64, copy=False)


def last_frame(start: U64, n: Arr) -> U64:
    """Inclusive last frame of [start, start + n) for n >= 1, exact, saturating
    at :data:`U64_MAX` where the sum wraps; ``start`` itself where n == 0
    (callers that care test ``n > 0``: an empty extent owns nothing).

    >>> last_frame(np.array([5, 2**64 - 2], np.uint64), np.array([3, 9]))
    array([                   7, 18446744073709551615], dtype=uint64)
    """
    s = u64(start)
    nn = np.asarray(n).astype(np.uint64)
    if len(nn) and bool((nn == 1).all()):
        return s.copy()
    nn[nn == 0] = 1
    out: U64 = s + (nn - np.uint64(1))
    wrap = out < s
    if wrap.any():
        out[wrap] = U64_MAX
    return out


_HASH = 1 << 16  # slots of the filter of :func:`positions_in`


def _low16(col: Arr) -> Arr:
    """The low 16 bits of an integer column: a zero-copy view of a
    little-endian column (also a strided record field), else a copy."""
    dt = col.dtype
    if (
        col.ndim == 1
        and dt.kind == "u"
        and dt.itemsize == 8
        and dt.byteorder in ("<", "=")
        and (np.little_endian or dt.byteorder == "<")
    ):
        return col[:, None].view(np.dtype("<u2"))[:, 0]
    return col.astype(np.uint16)


def positions_in(col: Arr, uq: U64) -> I64:
    """Positions of ``col`` whose value is one of the sorted distinct frames
    ``uq`` (a few, e.g. grant frames), in ascending order.

    One pass over the column through a 64 Ki-slot filter on the low 16 bits
    (a cache-resident table: a gather per entry, where ``np.isin`` compares
    every entry with every frame); only the rare candidates are compared
    exactly. Exact for any u64 value.

    >>> positions_in(np.array([7, 2**64 - 1, 7 + 2**16], np.uint64), np.array([7], np.uint64))
    array([0])
    """
    if not len(uq) or not len(col):
        return np.zeros(0, np.int64)
    if len(uq) > _HASH // 16:
        # many frames: a binary search per entry beats a filter that passes most
        j = np.searchsorted(uq, col)
        jc = np.minimum(j, len(uq) - 1)
        hit: I64 = np.flatnonzero(uq[jc] == col)
        return hit
    tab = np.zeros(_HASH, bool)
    tab[(u64(uq) & np.uint64(_HASH - 1)).astype(np.intp)] = True
    cand = np.flatnonzero(np.take(tab, _low16(np.asarray(col))))
    if not len(cand):
        return cand
    v = u64(col[cand])
    j = np.minimum(np.searchsorted(uq, v), len(uq) - 1)
    found: I64 = cand[uq[j] == v]
    return found


def field_or_zero(a: Arr, name: str, dtype: Any = np.int64) -> Arr:
    names = a.dtype.names or ()
    if name in names:
        return np.asarray(a[name]).astype(dtype)
    return np.zeros(len(a), dtype)


def cat(parts: Sequence[Arr], dtype: Any) -> Arr:
    if not parts:
        return np.zeros(0, dtype)
    return np.concatenate([np.asarray(p).astype(dtype, copy=False) for p in parts])


def expand(start: I64, count: I64) -> tuple[I64, I64]:
    """``start[i] + 0 … count[i]-1`` for every i, and the i of each value."""
    count = np.maximum(count, 0)
    total = int(count.sum())
    which = np.repeat(np.arange(len(start), dtype=np.int64), count)
    base = np.repeat(np.cumsum(count) - count, count)
    return np.repeat(start, count) + (np.arange(total, dtype=np.int64) - base), which


def ss_right(table: Arr, q: Arr) -> I64:
    """``searchsorted(table, q, 'right')``; large unsorted queries are sorted
    first (binary searches with random keys over a large table miss the
    cache): one ``np.sort`` of ``q << b | position`` where that fits in 64
    bits (frame numbers of any real host), a stable ``argsort`` otherwise."""
    n = len(q)
    if n <= 65536 or len(table) <= 4096:
        return np.searchsorted(table, q, side="right").astype(np.int64)
    out = np.empty(n, np.int64)
    bits = (n - 1).bit_length()
    qa = np.asarray(q)
    if qa.dtype == np.uint64 and int(qa.max()) < (1 << (64 - bits)):
        key = qa << np.uint64(bits)
        key |= np.arange(n, dtype=np.uint64)
        key.sort()
        pos = (key & np.uint64((1 << bits) - 1)).astype(np.intp)
        key >>= np.uint64(bits)
        out[pos] = np.searchsorted(table, key, side="right")
        return out
    order = np.argsort(qa, kind="stable")
    out[order] = np.searchsorted(table, qa[order], side="right")
    return out


def group_starts(sorted_keys: Arr) -> I64:
    """Positions where a new value starts in a sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64)
    head = np.ones(len(sorted_keys), bool)
    head[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return np.flatnonzero(head)


def dups_after_first(*cols: Arr) -> tuple[I64, I64]:
    """Rows whose key (``cols``, the first most significant) occurred at an
    earlier row; and that earlier (first) row. Stable: rows keep entry order."""
    n = len(cols[0])
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.lexsort(tuple(reversed(cols)))
    same = np.ones(n - 1, bool)
    for c in cols:
        s = c[order]
        same &= s[1:] == s[:-1]
    if not same.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new = np.ones(n, bool)
    new[1:] = ~same
    head = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    pos = np.flatnonzero(~new)
    return order[pos].astype(np.int64), order[head[pos]].astype(np.int64)


def overlaps(start: Arr, last: Arr, group: I64, same_only: bool) -> list[tuple[int, I64, I64]]:
    """For intervals ``[start, last]`` (inclusive), which rows overlap another row
    of each group. Returns ``[(group, rows, witness_rows)]``: ``rows`` overlap
    at least one *other* row of ``group`` and ``witness_rows`` is one such row.
    ``same_only``: only overlaps within a row's own group.

    Per group: the prefix maximum of ``last`` over the group's earlier rows
    (sorted by start) decides overlap with an earlier row; the group's next
    row (smallest later start) decides overlap with a later one. O(n log n)
    per group, no pair enumeration.
    """
    m = len(start)
    out: list[tuple[int, I64, I64]] = []
    if m < 2:
        return out
    order = np.lexsort((np.arange(m), start))
    s, lst, g = start[order], last[order], group[order]
    every = np.arange(m)
    for gi in np.unique(g).tolist():
        p = np.flatnonzero(g == gi)
        if same_only and len(p) < 2:
            continue
        lp = lst[p]
        pm = np.maximum.accumulate(lp)
        holder = np.maximum.accumulate(np.where(lp == pm, np.arange(len(p)), 0))
        q = p if same_only else every
        j = np.searchsorted(p, q, side="left") - 1
        jc = np.maximum(j, 0)
        e_hit = (j >= 0) & (pm[jc] >= s[q])
        e_wit = p[holder[jc]]
        j2 = np.searchsorted(p, q, side="right")
        j2c = np.minimum(j2, len(p) - 1)
        l_hit = (j2 < len(p)) & (s[p[j2c]] <= lst[q])
        l_wit = p[j2c]
        hit = e_hit | l_hit
        if hit.any():
            wit = np.where(e_hit, e_wit, l_wit)[hit]
            out.append((int(gi), order[q[hit]].astype(np.int64), order[wit].astype(np.int64)))
    return out
