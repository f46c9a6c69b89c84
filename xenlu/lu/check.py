"""Check-only verification of a Live Update stream: :func:`verify_lu`.

The same walk as :func:`~xenlu.lu.walk.decode_lu` (:class:`~xenlu.lu.walk.Walker`
and the §2 tables of :mod:`xenlu.lu.grammar`), with a handler that keeps no
record and takes the steady records — the bulk records, entries checked one
by one, that the table lets a domain section hold any number of (P2M,
ownership, page types, grant maps once the grant table is seen;
:func:`~xenlu.lu.grammar.steady_types`) — in bulk: a header and count read with one ``unpack``, the
entries of small records gathered and checked as one array per type and
section, large records checked in place. Every other record goes through
the walker's exact path, so a grammar, framing or body error it raises is
the stream's first error once the gathered entries are known to be good.

Whenever the handler is not sure — a gathered array with a bad entry, a
count header out of line, a deferred checksum that does not match — the
stream goes to :func:`~xenlu.lu.walk.decode_lu`, which raises the exact,
located first error: at most two walks.

Large records are checked at their section's end. On one thread, in the
same pass as the section's crc32c (§4.15): step by step, each step's bytes
go through crc32c and every field test and record-rule screen while they
are in the cache, so each byte is read from memory once. Parallelism is
opt-in: with ``executor`` (a :class:`concurrent.futures.Executor`), the
work is split by kind — a section's crc32c is one job on the executor (one
call that releases the GIL throughout) while the calling thread checks the
section's large records, both reading the section at the same time. On a
machine with a free core that is 0.33 s instead of 0.45 s for a 2.5 GiB
host (fused pieces on two workers were no faster than one thread: every
256 KiB step passed the GIL back and forth). It costs about a quarter more
CPU (the checks no longer find the bytes in the cache the crc32c just
filled), so when there is no free core — this thread waited for one during
a section's checks, or the section's crc32c job was not done by the time
they were — the next sections take the fused pass on this thread, and the
split is tried again every :data:`_SPLIT_PROBE` sections.
:func:`crc32c_combine` joins the checksums of a section checked in pieces.

>>> verify_lu(b"")
Traceback (most recent call last):
...
xenlu.core.errors.FramingError: offset 0x0: empty stream: expected LU_VERSION
"""

from __future__ import annotations

import struct
import time
from array import array
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np

from xenlu.core.epochs import Epoch
from xenlu.core.errors import XenLUError
from xenlu.core.framing import HDR, REC_LENGTH_MAX, as_buffer, crc32c
from xenlu.lu.grammar import SectionState, steady_types
from xenlu.lu.host_records import CountHeader
from xenlu.lu.records import ENTRY_RULES
from xenlu.lu.walk import Walker, decode_lu

__all__ = ["verify_lu"]

#: Bulk records of at most this many entries are checked together with the
#: section's other small records of their type; larger ones one by one.
_GATHER_MAX_ENTRIES = 64
#: Sections of at least this many bytes get their crc32c on the executor.
_CRC_THREAD_MIN_BYTES = 1 << 20
#: With an executor but no free core, sections are checked in the fused
#: single pass, and every this many the split is tried again.
_SPLIT_PROBE = 16
#: Pending small records are checked every 64 Ki records, not only at the
#: end of their section, so memory stays bounded on any stream.
_FLUSH_MASK = 0xFFFF
#: A record header and the count header of a bulk body (§1, §4), read at once.
_HDR_COUNT = struct.Struct(HDR.format + CountHeader.LAYOUT.struct.format.lstrip("<"))


class _Doubt(Exception):
    """The check-only handler is not sure: the exact pass decides."""


def _entries_ok(words: np.ndarray | None, rt: int, heads: array[int], epoch: Epoch) -> bool:
    """Check the entries of the small bulk records at ``heads`` as one array."""
    if words is None:
        return False
    rules = ENTRY_RULES[rt]
    lay = rules.layout_for(epoch).LAYOUT
    at = np.frombuffer(heads, dtype=np.int64)  # released on return: heads is then cleared
    counts = words.view(np.uint32)[(at + 8) >> 2].astype(np.int64)
    per = lay.size >> 3
    nwords = counts * per
    total = int(nwords.sum())
    if total == 0:
        return True
    starts = (at + 16) >> 3
    if int(counts.min()) == 1 == int(counts.max()):  # the usual small case
        idx = starts[:, None] + np.arange(per)
    else:
        first = np.cumsum(nwords) - nwords
        idx = np.arange(total, dtype=np.int64) + np.repeat(starts - first, nwords)
    idx = idx.reshape(-1)
    if int(idx[-1]) >= len(words):  # (heads ascend, so the last word is the largest)
        return False
    entries = words[idx].view(lay.dtype)
    return rules.ok(entries, epoch)


def _big_ok(buf: memoryview, pos: int, t: int, count: int, epoch: Epoch) -> bool:
    """The entries of the large bulk record at ``pos`` (in place, zero-copy)."""
    rules = ENTRY_RULES[t]
    return rules.ok(rules.layout_for(epoch).LAYOUT.array(buf, pos + 16, count), epoch)


def _core_was_free(wall: float, cpu: float, job: Future[Any]) -> bool:
    """Did the split of a section's checks (this thread, from ``wall`` and
    ``cpu`` on) and its crc32c ``job`` find two cores? Not when this thread
    was kept off a core for a quarter of its checks, nor when the crc32c is
    not done when they are: then the fused pass, which costs less CPU, is
    faster (the verdicts are the same either way)."""
    waited = time.thread_time() - cpu < 0.75 * (time.perf_counter() - wall)
    return not waited and job.done()


#: A large record of a section: (offset, type, count, offset past its end).
_Big = tuple[int, int, int, int]


def _piece(
    buf: memoryview, lo: int, hi: int, big: _Big | None, epoch: Epoch, crc: int = 0
) -> tuple[bool, int]:
    """Bytes ``lo:hi`` of a section, holding at most the large record ``big``:
    (its entries break no rule, the crc32c continued from ``crc``).

    The entries are checked by the layout's fused pass
    (:meth:`~xenlu.core.rules.RuleSet.clean`), which hands each step to the crc
    before its tests (§4.15 checksum, §4 entry rules: one read of each byte).
    """
    if big is None:
        return True, crc32c(buf[lo:hi], crc)
    pos, t, count, _ = big
    first = pos + 16  # record header and count header (§1, §4)
    crc = crc32c(buf[lo:first], crc)
    lay = ENTRY_RULES[t].layout_for(epoch).LAYOUT
    size = lay.size
    done = first

    def step(a: int, b: int) -> None:
        nonlocal crc, done
        crc = crc32c(buf[first + a * size : first + b * size], crc)
        done = first + b * size

    # (_bulk's entry check is check_array: the same verdict as ENTRY_RULES[t].ok)
    ok = lay.check_array(lay.array(buf, first, count), epoch, on_step=step) is None
    return ok, crc32c(buf[done:hi], crc) if ok else crc


def _gf2_times(mat: tuple[int, ...], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _zeros_operators() -> list[tuple[int, ...]]:
    """The GF(2) operators that append 2**k zero bytes to a crc32c, k = 0..63."""
    op: tuple[int, ...] = (0x82F63B78, *(1 << n for n in range(31)))  # one zero bit
    for _ in range(3):  # 2, 4, 8 bits
        op = tuple(_gf2_times(op, op[n]) for n in range(32))
    ops = [op]
    for _ in range(63):
        op = tuple(_gf2_times(op, op[n]) for n in range(32))
        ops.append(op)
    return ops


_ZEROS: list[tuple[int, ...]] = []


def crc32c_combine(crc1: int, crc2: int, len2: int) -> int:
    """The crc32c of ``A + B`` from ``crc1`` of A, ``crc2`` of B and ``len(B)``.

    The pieces of a section checked on several threads each have their own
    crc32c; their section's is combined here (the GF(2) method of zlib's
    crc32_combine: append len2 zero bytes to crc1, then add crc2).

    >>> from xenlu.core.framing import crc32c
    >>> crc32c_combine(crc32c(b"live "), crc32c(b"update"), 6) == crc32c(b"live update")
    True
    """
    if not _ZEROS:
        _ZEROS.extend(_zeros_operators())
    k = 0
    while len2:
        if len2 & 1:
            crc1 = _gf2_times(_ZEROS[k], crc1)
        len2 >>= 1
        k += 1
    return crc1 ^ crc2


class Check:
    """The check-only handler: keeps nothing, takes steady records in bulk."""

    keep = False

    def __init__(self, buf: memoryview, executor: Executor | None = None) -> None:
        self.buf = buf
        self.end = len(buf)
        self.executor = executor
        self.walker: Walker | None = None
        # A u64 view of the stream for gathering entries: records start 8-aligned.
        self.words = np.frombuffer(buf, np.uint64, count=self.end >> 3) if self.end >= 8 else None
        self.pending: dict[int, array[int]] = {}
        #: Section crc32c jobs on the executor and the checksum each must give.
        self.jobs: list[tuple[Future[Any], object]] = []
        #: The large records of the open section, checked with its crc32c.
        self.bigs: list[_Big] = []
        self._hot_for: tuple[SectionState | None, int] = (None, -1)
        self._hot: dict[int, tuple[int, Callable[[int], None]]] = {}
        #: Sections checked in the fused pass since a crc32c job last lagged
        #: (0: split the next one).
        self.fused_run = 0

    @property
    def epoch(self) -> Epoch:
        assert self.walker is not None
        return self.walker.epoch

    def _steady(self, st: SectionState) -> dict[int, tuple[int, Callable[[int], None]]]:
        """The steady types of ``st``: entry size and the append of their pending heads.
        (A section's prerequisites change only when a new type appears.)"""
        key = (st, len(st.counts))
        if key[0] is not self._hot_for[0] or key[1] != self._hot_for[1]:
            pending = self.pending
            hot = {}
            for t, size in steady_types(st, self.epoch).items():
                heads = pending.setdefault(t, array("q"))
                hot[t] = (size, heads.append)
            self._hot_for, self._hot = key, hot
        return self._hot

    def run(self, pos: int, idx: int, st: SectionState) -> tuple[int, int]:
        """Take the steady records from ``pos``: framing and count header with one
        unpack (§1 framing, §4 count header), entries deferred."""
        hot = self._steady(st)
        if not hot:
            return pos, idx
        buf, end = self.buf, self.end
        unpack16 = _HDR_COUNT.unpack_from
        last16 = end - 16
        gather_max, rec_max, flush_mask = _GATHER_MAX_ENTRIES, REC_LENGTH_MAX, _FLUSH_MASK
        while pos <= last16:
            t, length, count, rsvd = unpack16(buf, pos)
            e = hot.get(t)
            if e is None:
                break
            size, gather = e
            if rsvd or length != 8 + count * size:
                raise _Doubt
            if count <= gather_max:
                # A body past the end fails the next header read, and
                # _entries_ok refuses entries past it.
                gather(pos)
            elif length > rec_max or pos + 8 + length > end:
                raise _Doubt
            else:  # checked with the section's crc32c (defer_crc)
                self.bigs.append((pos, t, count, pos + 8 + length))
            pos += 8 + length
            idx += 1
            if not idx & flush_mask:
                self.section_done()  # (bounded memory: 8 bytes per pending record)
        return pos, idx

    def section_done(self) -> None:
        """Check and forget the pending small records of every type."""
        for rt, heads in self.pending.items():
            if heads:
                if not _entries_ok(self.words, rt, heads, self.epoch):
                    raise _Doubt
                del heads[:]

    def bigs_ok(self) -> bool:
        """Check the open section's large records alone (the walk stopped inside it)."""
        bigs, self.bigs = self.bigs, []
        return all(_big_ok(self.buf, p, t, n, self.epoch) for p, t, n, _ in bigs)

    def defer_crc(self, start: int, stop: int, want: int) -> bool:
        """The section ``start:stop`` is framed; check its large records and its
        crc32c ``want``: in one pass here, or here and on the executor. False:
        the walker computes the crc32c itself (no large record, no executor or
        a small section)."""
        bigs, self.bigs = self.bigs, []
        buf, epoch, ex = self.buf, self.epoch, self.executor
        if not bigs and (ex is None or stop - start < _CRC_THREAD_MIN_BYTES):
            return False
        if ex is not None and self.fused_run == 0:
            # Split by kind, not by bytes (see the module notes): the
            # section's crc32c is one job, its large records are checked here.
            job = ex.submit(crc32c, buf[start:stop])
            self.jobs.append((job, want))
            wall, cpu = time.perf_counter(), time.thread_time()
            for pos, t, count, _ in bigs:
                if not _big_ok(buf, pos, t, count, epoch):
                    raise _Doubt
            self.fused_run = 0 if not bigs or _core_was_free(wall, cpu, job) else 1
            return True
        if ex is not None:
            self.fused_run = (self.fused_run + 1) % _SPLIT_PROBE
        # Pieces: the bytes up to the end of each large record, then the rest.
        cuts: list[tuple[int, int, _Big | None]] = []
        lo = start
        for big in bigs:
            cuts.append((lo, big[3], big))
            lo = big[3]
        cuts.append((lo, stop, None))
        crc = 0
        for a, b, piece in cuts:
            ok, crc = _piece(buf, a, b, piece, epoch, crc)
            if not ok:
                raise _Doubt
        if crc != want:
            raise _Doubt  # (the exact pass names the checksum error)
        return True

    def settle(self) -> bool:
        """Wait for every job; True when all the deferred checks passed.

        No worker may outlive the call: the caller may close the mapping
        the slices and arrays point into.
        """
        ok = True
        for job, want in self.jobs:
            if job.exception() is not None or job.result() != want:
                ok = False
        self.jobs.clear()
        return ok


def _check(buf: memoryview, strict: bool, executor: Executor | None) -> bool:
    """The check-only walk: True when valid; False when not sure. Raises the
    stream's first error when it is sure of it."""
    h = Check(buf, executor)
    h.walker = w = Walker(buf, h, strict)
    try:
        w.stream()
        h.section_done()
        if h.bigs and not h.bigs_ok():  # (every section's close takes its own)
            raise _Doubt
    except _Doubt:
        h.settle()
        return False
    except XenLUError:
        # Every record before the error was checked (pending entries are
        # flushed at each section's end and just now, the open section's
        # large records too), so it is the first.
        try:
            h.section_done()
            if not h.bigs_ok():
                raise _Doubt
        except _Doubt:
            h.settle()
            return False
        if not h.settle():
            return False
        raise
    except BaseException:
        h.settle()
        raise
    return h.settle()


def _verify_fast(buf: memoryview, strict: bool, executor: Executor | None = None) -> bool:
    """True when the check-only walk alone finds the stream valid."""
    try:
        return _check(buf, strict, executor)
    except XenLUError:
        return False


def verify_lu(data: Any, *, strict: bool = True, executor: Executor | None = None) -> None:
    """Structurally verify a Live Update stream; raise the first problem, else None.

    The same checks and the same errors as :func:`~xenlu.lu.walk.decode_lu`,
    without building the stream's value objects (see the module notes).
    ``executor`` (optional) checks large records and section checksums on
    other threads.

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(2) as pool:             # doctest: +SKIP
    ...     verify_lu("host.lu", executor=pool)
    """
    buf = as_buffer(data)
    if not _check(buf, strict, executor):
        decode_lu(buf, strict=strict)
