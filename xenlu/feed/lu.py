"""The incremental reading of a Live Update stream (LU spec §1–§4), for
:class:`xenlu.feed.decoder.Decoder`.

:class:`LuMachine` is the walker of :mod:`xenlu.lu.walk` turned inside out:
the walker pulls records from a mapped buffer, the machine is pushed one
record at a time. What it does with each record is what the walker does,
with the same functions in the same order: :func:`~xenlu.lu.grammar.open_global`,
:func:`~xenlu.lu.grammar.admit`, the record's :class:`~xenlu.core.registry.RecordSpec`,
:func:`~xenlu.lu.grammar.admitted`, :func:`~xenlu.lu.grammar.close` at
LU_SECTION_END and the §4.15 section checks, :func:`~xenlu.lu.grammar.next_domain`,
:func:`~xenlu.lu.grammar.open_domain`, :func:`~xenlu.lu.grammar.domid_order`
(after the section, as the walker does) and :func:`~xenlu.lu.grammar.at_end`.

Between records it keeps a few counters and the section's running crc32c
(§4.15: the checksum continues record by record, ``crc32c(data, value)``).
A bulk record larger than the decoder's buffer whose entry rules look at
one entry at a time (:class:`~xenlu.lu.records.EntryRules` ``per_entry``)
is checked in entry-aligned pieces as it arrives with the layout's
:meth:`~xenlu.core.layout.Layout.check_array` and the record's entry rules; its
errors are raised once the record is whole, in the order the walker finds
them (framing, grammar, count header, first layout violation, first other
rule).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeAlias

from xenlu.core.epochs import Epoch, epoch_of
from xenlu.core.errors import DecodeError, FramingError
from xenlu.core.framing import crc32c, framing_error
from xenlu.core.registry import LU, Ctx, Record
from xenlu.feed.events import Event, RecordEvent, SectionEvent, rebased
from xenlu.lu.grammar import (
    DOMAIN,
    END,
    GLOBAL,
    SectionState,
    admit,
    admitted,
    at_end,
    check_version,
    close,
    domid_order,
    next_domain,
    open_domain,
    open_global,
    section_end_mismatch,
)
from xenlu.lu.host_records import CountHeader, LuSectionEnd, LuVersion
from xenlu.lu.model import entry_count
from xenlu.lu.records import ENTRY_RULES, T

# (From xenlu.lu.stream, the LU family's module in xenlu.api's format table:
# format_of() of the stream built here finds its class loaded.)
from xenlu.lu.stream import GlobalSection, LUDomain, LUStream, Section
from xenlu.lu.values import DOMID_XEN
from xenlu.lu.walk import record_value

__all__ = ["Keep", "LuMachine"]

#: What the machine keeps: nothing (False), every record (True), or inside
#: sections only the records of the mapping's types, each whole (None) or
#: as the compact copy its function makes.
Keep: TypeAlias = "bool | Mapping[int, Callable[[Any], Any] | None]"

_SEC_END = T.LU_SECTION_END
_CH = CountHeader.LAYOUT
_ENTRY_INDEX = re.compile(r"^entries\[(\d+)\]")

# Where the stream stands between records.
_FIRST, _IN_SECTION, _BETWEEN, _AFTER_END = range(4)


class _Big:
    """A bulk record taken in pieces: where it is, how far, what went wrong."""

    __slots__ = (
        "count",
        "done",
        "errors",
        "extra_err",
        "header",
        "idx",
        "lay",
        "layout_err",
        "left",
        "length",
        "off",
        "pad_left",
        "rules",
        "t",
    )

    def __init__(self, off: int, idx: int, t: int, length: int, header: bytes) -> None:
        self.off, self.idx, self.t, self.length, self.header = off, idx, t, length, header
        self.left = length  # body bytes to come
        self.pad_left = -length & 7
        self.done = 0  # entries checked
        self.count: int | None = None  # None until the count header is read
        self.errors: list[DecodeError] = []  # grammar, then count header
        self.layout_err: DecodeError | None = None
        self.extra_err: DecodeError | None = None
        self.rules = ENTRY_RULES[t]
        self.lay: Any = None


class LuMachine:
    """The LU stream, pushed record by record (see the module notes)."""

    head = 0
    pending_head = 0

    def __init__(
        self, strict: bool, emit: Callable[[Event], None] | None, piece: int, keep: Keep = False
    ) -> None:
        self.strict = strict
        #: Build the stream (values over private copies of the records, never
        #: over the decoder's buffer): :attr:`stream` once END is read.
        self.keep = bool(keep)
        #: A mapping: inside a section, only the records of its types are
        #: kept (LU_VERSION, LU_DOMAIN and LU_SECTION_END always are), each
        #: whole (None) or as its function's compact copy; every record is
        #: still decoded and checked.
        self.only: Mapping[int, Callable[[Any], Any] | None] | None = (
            None if isinstance(keep, bool) else keep
        )
        self.recs: list[Record] = []
        self.glob: GlobalSection | None = None
        self.domains: list[LUDomain] = []
        self.stream: LUStream | None = None
        self.piece_min = piece
        self.ended = False
        self.final = False
        self.emit = emit
        self.idx = 0
        self.mode = _FIRST
        self.epoch: Epoch = (4, 11)
        self.nr = 0
        self.ndom, self.last = 0, -1
        self.st = SectionState(GLOBAL, 0)
        self.sec_start = 0
        self.sec_domid = DOMID_XEN
        self.sec_first = (0, 0)  # record index and offset of the section's LU_DOMAIN
        self.crc = 0
        self.end_at = 0  # where END's record ends
        self.cur: _Big | None = None

    # -- the values the walker reads (Walker.record) ---------------------------------
    def value(self, body: memoryview, idx: int, off: int, t: int, length: int) -> Any:
        return record_value(body, idx, off, t, length, self.epoch, self.strict)

    # -- the machine ---------------------------------------------------------------
    def start(self, buf: memoryview) -> bool:
        return True  # §2: the stream starts with a record

    def take_head(self, buf: memoryview, pos: int, base: int) -> None:  # pragma: no cover
        return None

    def framed(self, exc: DecodeError) -> DecodeError:
        return exc

    def record(self, buf: memoryview, pos: int, base: int, t: int, length: int, stop: int) -> None:
        idx, off = self.idx, base + pos
        body = buf[pos + 8 : pos + 8 + length]
        mode = self.mode
        kept, compact = self.keep, None
        only = self.only
        if only is not None and mode == _IN_SECTION and t != _SEC_END:
            kept = t in only
            compact = only.get(t)
        if kept and compact is None:
            body = memoryview(bytes(body))  # the value outlives the buffer
        if mode == _IN_SECTION:
            if t == _SEC_END:
                self.section_end(body, idx, off, length)
            else:
                st = self.st
                admit(st, idx, off, t)
                value = self.value(body, idx, off, t, length)
                if t in st.grammar.per_vcpu:
                    admitted(st, idx, off, t, value)
                elif t == T.LU_HOST_INFO:
                    self.nr = value.nr_domains
                self.crc = crc32c(buf[pos:stop], self.crc)
                if kept:
                    # A compact copy holds only numbers, never the buffer.
                    self.recs.append(Record(t, value if compact is None else compact(value), off))
                if self.emit is not None:
                    self.emit(RecordEvent(idx, off, t, length, "lu", entry_count(value)))
                self.idx = idx + 1
                return
        elif mode == _BETWEEN:
            if t == END:
                # §4.17 with the stream's end not known yet: checked again at finish.
                at_end(self.ndom, self.nr, idx, off, length, off + 8, False)
                self.end_at = off + 8
                self.mode = _AFTER_END
                self.ended = True
                if self.keep:
                    assert self.glob is not None
                    self.stream = LUStream(self.glob, self.domains)
            else:
                next_domain(self.ndom, self.nr, idx, off, t)
                open_domain(idx, off, t)
                info = self.value(body, idx, off, t, length)
                self.open(DOMAIN, int(info.domain_type), off, int(info.domid), idx)
                self.crc = crc32c(buf[pos:stop])
                if self.keep:
                    self.recs = [Record(t, info, off)]
                if self.emit is not None:
                    self.emit(RecordEvent(idx, off, t, length, "lu", entry_count(info), info))
                self.idx = idx + 1
                return
        elif mode == _FIRST:
            open_global(0, 0, t)
            ver: LuVersion = LU.by_name("LU_VERSION").decode(body, Ctx(0, t, 8, length))
            check_version(ver, 0, 0)
            self.epoch = epoch_of(ver.xen_major, ver.xen_minor)
            self.open(GLOBAL, 0, 0, DOMID_XEN, 0)
            self.crc = crc32c(buf[pos:stop])
            if self.keep:
                self.recs = [Record(t, ver, off)]
            if self.emit is not None:
                self.emit(RecordEvent(idx, off, t, length, "lu", None, ver))
            self.idx = idx + 1
            return
        else:  # pragma: no cover - the decoder stops reading records after END
            raise AssertionError
        self.idx = idx + 1
        if self.emit is not None:
            self.emit(RecordEvent(idx, off, t, length, "lu"))

    def open(self, g: Any, variant: int, start: int, domid: int, idx: int) -> None:
        self.st = SectionState(g, variant)
        self.sec_start, self.sec_domid, self.sec_first = start, domid, (idx, start)
        self.mode = _IN_SECTION

    def section_end(self, body: memoryview, idx: int, off: int, length: int) -> None:
        """Walker.section's end and Walker.close (§2 minimum counts, §4.15)."""
        st = self.st
        close(st, idx, off)
        end: LuSectionEnd = self.value(body, idx, off, _SEC_END, length)
        start, domid = self.sec_start, self.sec_domid
        if end.domid != domid:
            raise section_end_mismatch("domid", idx, off, domid, end.domid)
        if end.section_bytes != off - start:
            raise section_end_mismatch("section_bytes", idx, off, off - start, end.section_bytes)
        if end.crc32c != self.crc:
            raise section_end_mismatch("crc32c", idx, off, self.crc, end.crc32c)
        if st.grammar is DOMAIN:
            first, first_off = self.sec_first
            domid_order(domid, self.last, first, first_off)
            self.ndom, self.last = self.ndom + 1, domid
        if self.keep:
            sec: Section = GlobalSection(self.recs) if st.grammar is GLOBAL else LUDomain(self.recs)
            sec.end, sec.offset, sec.checksum_ok = end, start, True
            if isinstance(sec, LUDomain):
                self.domains.append(sec)
            else:
                assert isinstance(sec, GlobalSection)
                self.glob = sec
            self.recs = []
        self.mode = _BETWEEN
        if self.emit is not None:
            self.emit(SectionEvent(domid, start, off + 8 + length + (-length & 7) - start))

    def finish(self, end: int) -> None:
        """Where the walker meets the end of its buffer."""
        if self.mode == _AFTER_END:
            at_end(self.ndom, self.nr, self.idx - 1, self.end_at - 8, 0, end, False)
            return
        if self.mode == _FIRST:
            raise FramingError("empty stream", offset=0, expected="LU_VERSION")
        if self.mode == _IN_SECTION:
            raise FramingError(
                f"stream ends inside {self.st.grammar.where}",
                offset=end,
                expected="LU_SECTION_END",
            )
        raise FramingError("stream ends without END", offset=end, expected="END record")

    def head_short(self, buf: memoryview) -> None:  # pragma: no cover - no headers
        return None

    def start_of(self, index: int | None) -> int | None:
        """The section's LU_DOMAIN (§2: its domid is checked at the section's end)."""
        first, off = self.sec_first
        return off if index == first else None

    # -- large bulk records in pieces -----------------------------------------------
    def big(self, t: int, length: int) -> bool:
        if self.mode != _IN_SECTION:
            return False
        if self.keep and (self.only is None or t in self.only):
            return False  # kept: its value needs the record whole
        rules = ENTRY_RULES.get(t)
        return rules is not None and rules.per_entry

    def begin_big(self, off: int, t: int, length: int, header: bytes) -> None:
        idx = self.idx
        cur = self.cur = _Big(off, idx, t, length, header)
        try:
            admit(self.st, idx, off, t)
        except DecodeError as exc:
            cur.errors.append(exc)
        cur.lay = cur.rules.layout_for(self.epoch).LAYOUT
        self.crc = crc32c(header, self.crc)

    def big_left(self) -> int:
        cur = self.cur
        return 0 if cur is None else cur.left + cur.pad_left

    def big_clean(self) -> int:
        cur = self.cur
        assert cur is not None
        if cur.errors or cur.layout_err is not None or cur.extra_err is not None:
            return cur.off  # faulty: nothing of it is vouched for
        return cur.off + 8 + cur.length - cur.left

    def big_need(self, held: int) -> int:
        cur = self.cur
        assert cur is not None
        if cur.count is None:
            return 8 - held  # the count header
        if cur.left:
            if cur.errors:
                return cur.left - held  # (only framed: never held)
            size: int = cur.lay.size
            return size - held % size  # the entry in progress
        return cur.pad_left - held

    def piece(self, buf: memoryview, pos: int, end: int) -> int:
        cur = self.cur
        assert cur is not None
        start = pos
        if cur.count is None:
            if end - pos < 8:
                return 0
            self.count_header(cur, buf[pos : pos + 8])
            self.crc = crc32c(buf[pos : pos + 8], self.crc)
            cur.left -= 8
            pos += 8
        if cur.left:
            avail = min(end - pos, cur.left)
            size = cur.lay.size
            if cur.errors:  # a bad count header: the body is only framed
                n = avail
                self.crc = crc32c(buf[pos : pos + n], self.crc)
            else:
                n = avail - avail % size
                if not n or (n < min(self.piece_min, cur.left) and not self.final):
                    return pos - start
                self.entries(cur, buf[pos : pos + n])  # (and the crc32c)
            cur.left -= n
            pos += n
            if cur.left:
                return pos - start
        if cur.pad_left:
            if end - pos < cur.pad_left:
                return pos - start
            pad = buf[pos : pos + cur.pad_left]
            if any(pad):
                # The framing rule of a whole record, over its header and padding.
                fake = bytearray(cur.header)
                fake[4:8] = (cur.length & 7).to_bytes(4, "little")
                fake += bytes(cur.length & 7) + pad
                with memoryview(fake) as mv:
                    exc = framing_error(mv, 0, len(fake), cur.idx)
                raise rebased(exc, cur.off + cur.length - (cur.length & 7))
            self.crc = crc32c(pad, self.crc)
            pos += cur.pad_left
            cur.pad_left = 0
        self.big_done(cur)
        return pos - start

    def count_header(self, cur: _Big, head: memoryview) -> None:
        """§4 count header, the rule the record's decoder applies to it."""
        ctx = Ctx(cur.idx, cur.t, cur.off + 8, cur.length, self.epoch)
        count, rsvd = _CH.unpack_tuple(head)
        size = cur.lay.size
        cur.count = count
        try:
            if rsvd:
                ctx.fail("reserved field not zero", at=4, field="rsvd", expected=0, got=rsvd)
            if cur.length != 8 + count * size:
                ctx.fail_length(f"8 + {count} x {size} = {8 + count * size}")
        except DecodeError as exc:
            cur.errors.append(exc)

    def entries(self, cur: _Big, data: memoryview) -> None:
        """Check the next entries: the layout's rules, then the record's
        others; the section's crc32c continues over them."""
        lay, size, k = cur.lay, cur.lay.size, cur.done
        arr = lay.array(data, 0, len(data) // size)
        cur.done = k + len(arr)
        if cur.layout_err is None and cur.extra_err is None:
            # The fast verdict with the crc32c in the same pass, each step
            # crc'd while in the cache (as lu_check does: _bulk's entry check
            # is the layout's check_array, so a clean verdict is the rules').
            crc, done = self.crc, 0

            def step(a: int, b: int) -> None:
                nonlocal crc, done
                crc = crc32c(data[a * size : b * size], crc)
                done = b * size

            if lay.check_array(arr, self.epoch, on_step=step) is None:
                self.crc = crc32c(data[done:], crc)
                return
        self.crc = crc32c(data, self.crc)
        if cur.layout_err is not None:
            return  # the record's first layout violation is known: it wins
        if cur.extra_err is None:
            ctx = Ctx(cur.idx, cur.t, cur.off + 8 + k * size, cur.length, self.epoch)
            try:
                cur.rules.check(arr, ctx)
                return
            except DecodeError as exc:
                extra = exc
        else:
            extra = None
        v = lay.check_array(arr, self.epoch)
        if v is not None:
            shifted = replace(v, entry=v.entry + k, offset=v.offset + k * size)
            ctx = Ctx(cur.idx, cur.t, cur.off + 8, cur.length, self.epoch)
            try:
                ctx.fail_violation(shifted, at=8, prefix="entries", entry_size=size)
            except DecodeError as exc:
                cur.layout_err = exc
        elif extra is not None:
            # Every rule looks at one entry (per_entry): the piece's first
            # violation is the record's, its index counted from the piece.
            if extra.field:
                extra.field = _ENTRY_INDEX.sub(
                    lambda m: f"entries[{int(m.group(1)) + k}]", extra.field
                )
            cur.extra_err = extra

    def big_done(self, cur: _Big) -> None:
        self.cur = None
        for exc in (*cur.errors, cur.layout_err, cur.extra_err):
            if exc is not None:
                raise exc
        self.idx = cur.idx + 1
        if self.emit is not None:
            self.emit(RecordEvent(cur.idx, cur.off, cur.t, cur.length, "lu", cur.count))

    def big_truncated(self, end: int) -> DecodeError:
        cur = self.cur
        assert cur is not None
        with memoryview(cur.header) as mv:
            exc = framing_error(mv, 0, end - cur.off, cur.idx)
        return rebased(exc, cur.off)
