"""Streams that flow: the incremental decoder (:class:`Decoder`) and :func:`verify_stream`.

A migration stream arrives down a pipe or a socket; it is not a file to
map. :class:`Decoder` takes its bytes in pieces of any size (one byte at a
time included) with :meth:`Decoder.feed`, hands out what it has read with
:meth:`Decoder.next_event`, and says with :meth:`Decoder.close` whether the
stream ended where it may end. It does no I/O of its own.

It is not a second reader: the records go through the same §2 grammar
tables and body rules as the mapped walkers (:mod:`xenlu.feed.lu` feeds
:func:`~xenlu.lu.grammar.admit`/:func:`~xenlu.lu.grammar.close` record by
record, :mod:`xenlu.feed.libxc` feeds
:func:`~xenlu.migration.libxc_grammar.admit`), so every input gets the same verdict
and the same error — class, offset, record index, record type, field — as
:func:`xenlu.verify` of the whole stream.

Memory is bounded: a record is held whole only until it is checked, and a
bulk record larger than the buffer (``limit``, default 16 MiB) is checked
in entry-aligned pieces as it arrives (LU, §4), its section's crc32c
computed as the bytes pass (§4.15). What the decoder keeps between records
is a few counters per section.

The framing shared by LU and libxc streams (8-byte header, body, zero
padding to 8 bytes; LU spec §1, reference §1.4) is read here; each family's
machine gets whole records (or the pieces of a large bulk record).

>>> d = Decoder("lu")
>>> d.feed(b"")
>>> d.next_event()
NEED_DATA

Verifying a stream that arrives over a socket (any object with
``readinto`` or ``read``):

>>> import socket, threading, xenlu
>>> from xenlu.testing.hostgen import make_host
>>> data = xenlu.encode(make_host((4, 11), n_hvm=1, mem_mib=2, dom0_mem_mib=2))
>>> a, b = socket.socketpair()
>>> def send():
...     with a:
...         a.sendall(data)
>>> sender = threading.Thread(target=send)
>>> sender.start()
>>> with b.makefile("rb") as f:
...     verify_stream(f)
'lu'
>>> sender.join(); b.close()

Events, fed one byte at a time:

>>> d = Decoder("lu")
>>> for i in range(len(data)):
...     d.feed(data[i : i + 1])
>>> ev = d.next_event()
>>> ev.index, ev.offset, hex(ev.type), ev.length, ev.value.xen_major, ev.value.xen_minor
(0, 0, '0x40000000', 8, 4, 11)
>>> d.close().size == len(data)
True
"""

from __future__ import annotations

import mmap
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from xenlu.core.errors import CallerError, XenLUError
from xenlu.core.framing import HDR, REC_LENGTH_MAX, framing_error
from xenlu.feed.events import (
    NEED_DATA,
    Event,
    Machine,
    NeedData,
    RecordEvent,
    SectionEvent,
    StreamEnd,
    WholeRecords,
    rebased,
)
from xenlu.feed.pipe import DEFAULT_CHUNK, DEFAULT_DEPTH, read_ahead, read_pieces

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_DEPTH",
    "DEFAULT_LIMIT",
    "NEED_DATA",
    "Decoder",
    "RecordEvent",
    "SectionEvent",
    "StreamEnd",
    "WholeRecords",
    "read_ahead",
    "read_pieces",
    "verify_stream",
]

#: The default buffer: no record smaller than this is split.
DEFAULT_LIMIT = 16 << 20
#: What :meth:`Decoder.feed` copies at a time while the headers are incomplete.
_TOP_UP = 1 << 16


def _machine(
    fmt: str, strict: bool, emit: Callable[[Event], None] | None, limit: int, keep: Any
) -> Machine:
    # A large record read in place is checked in pieces of at least 1/256 of
    # the buffer (64 KiB by default): fewer bytes are held (copied) instead.
    piece = max(limit // 256, 64)
    if fmt == "lu":
        from xenlu.feed.lu import LuMachine

        return LuMachine(strict, emit, piece, keep)
    if fmt == "libxc":
        from xenlu.feed.libxc import LibxcMachine

        return LibxcMachine(strict, emit, piece)
    if fmt in ("libxl", "xl"):
        from xenlu.feed.libxl import LibxlMachine

        return LibxlMachine(strict, emit, piece, xl=fmt == "xl")
    from xenlu.feed.xenstore import XenstoreMachine

    return XenstoreMachine(strict, emit)


class Decoder:
    """The incremental decoder of one stream: ``feed`` bytes, read events, ``close``.

    ``format`` is ``"lu"``, ``"libxc"``, ``"libxl"``, ``"xl"``,
    ``"xenstore"`` or ``"auto"`` (recognised from the first 32 bytes, as
    :func:`xenlu.detect_format` does). Errors are those of
    :func:`xenlu.verify` of the whole stream, raised by the :meth:`feed` or
    :meth:`close` that completes the faulty record, and again by any later
    call. ``limit`` bounds the bytes held (default 16 MiB); ``events=False``
    queues no events (verification only); ``keep=True`` (LU) also builds the
    decoded stream (:attr:`stream`); ``keep`` a mapping (LU) builds it with
    only the records of the mapping's types inside sections (type → None:
    kept whole, or a function: the compact copy kept in its place; e.g.
    :data:`xenlu.host.validation.COLUMNS`, what validate reads). Every
    record is decoded and checked either way: only what is kept changes.

    >>> d = Decoder("libxc")
    >>> d.feed(bytes.fromhex("ffffffffffffffff58454e4600000003" + "00" * 8))
    >>> d.next_event()
    NEED_DATA
    >>> d.close()
    Traceback (most recent call last):
    ...
    xenlu.core.errors.FramingError: offset 0x18: domain header truncated: expected 16 bytes, got 0
    """

    def __init__(
        self,
        format: str = "auto",
        *,
        strict: bool = True,
        limit: int = DEFAULT_LIMIT,
        events: bool = True,
        keep: bool | Mapping[int, Callable[[Any], Any] | None] = False,
    ) -> None:
        from xenlu.api import FORMAT_TABLE

        if format != "auto" and format not in FORMAT_TABLE:
            names = ", ".join(("auto", *FORMAT_TABLE))
            raise CallerError(f"unknown format {format!r}; expected one of {names}")
        if limit < 64:
            raise CallerError(f"limit {limit} is too small: at least 64 bytes")
        self.format = format
        self.strict = strict
        self.limit = limit
        self.keep = keep
        self._events: deque[Event] = deque()
        self._emit = self._events.append if events else None
        self._m: Machine | None = None
        # The bytes held: _buf[_lo:_hi], the first at absolute offset _base.
        self._buf: bytearray | mmap.mmap = bytearray()
        self._lo = self._hi = 0
        self._base = 0
        self._started = False
        self._error: XenLUError | None = None
        self._closed = False
        self._done = False
        #: Bytes fed so far.
        self.fed = 0
        #: The absolute offset up to which every record has been read and
        #: checked: the start of the record in progress, after an error the
        #: start of the faulty record.
        self.checked = 0

    # -- the public face ----------------------------------------------------------
    def feed(self, data: Any) -> None:
        """Take the next bytes of the stream (bytes, bytearray, memoryview)."""
        self._usable()
        mv = memoryview(data).cast("B")
        n = len(mv)
        if not n:
            return
        self.fed += n
        used = 0
        try:
            # A record or header is partly held: copy in only what it lacks
            # (at most the rest of a record, a few bytes for a large record
            # in progress), then read the rest of ``data`` in place.
            while self._hi != self._lo and used < n:
                k = min(n - used, self._need())
                self.get_buffer(k)[:] = mv[used : used + k]
                self._hi += k
                used += k
                self._run_buffered(top_up=True)
            if used < n:
                rest = mv[used:]
                got = self._run(rest, self._base)
                self._base += got
                if got < len(rest):
                    self.get_buffer(len(rest) - got)[:] = rest[got:]
                    self._hi += len(rest) - got
        except XenLUError as exc:
            self._failed(exc)
            raise

    def _need(self) -> int:
        """Bytes the held partial header or record lacks before it can be read."""
        m, held = self._m, self.buffered
        if m is None or not self._started or hasattr(m, "consume"):
            return _TOP_UP  # the headers (their size is known once read); xenstored records
        if m.big_left():
            return max(m.big_need(held), 1)
        if m.pending_head:
            return max(m.pending_head - held, 1)
        if held < 8:
            return 8 - held
        length: int = HDR.unpack_from(self._buf, self._lo)[1]
        return max(8 + length + (-length & 7) - held, 1)

    def get_buffer(self, n: int) -> memoryview:
        """A writable view of ``n`` bytes for the next bytes of the stream; say
        how many were written with :meth:`buffer_updated` (no copy: read
        straight into it, ``readable.readinto(d.get_buffer(n))``)."""
        self._usable()
        buf, lo, hi = self._buf, self._lo, self._hi
        if len(buf) - hi < n:
            live = hi - lo
            if len(buf) >= live + n and live <= lo:
                # Move the held bytes to the front when that costs no more
                # than the bytes it frees (amortised: each byte moves once).
                with memoryview(buf) as mv:  # (apart: live <= lo; no resize)
                    mv[:live] = mv[lo:hi]
            else:
                # The buffer: an anonymous mapping of limit + n bytes, whose
                # pages cost memory only once written (the held bytes stay
                # at its front). Larger only for a record that must be held
                # whole and is larger than the limit. Never resized in place:
                # a view of the old buffer may live on.
                grown = mmap.mmap(-1, max(live + n, 2 * len(buf), self.limit + n))
                with memoryview(grown) as dst, memoryview(buf) as src:
                    dst[:live] = src[lo:hi]
                self._buf = buf = grown
            self._lo, self._hi = lo, hi = 0, live
        return memoryview(buf)[hi : hi + n]

    def buffer_updated(self, n: int) -> None:
        """``n`` bytes were written at the start of the last :meth:`get_buffer` view."""
        self._usable()
        self._hi += n
        self.fed += n
        try:
            self._run_buffered()
        except XenLUError as exc:
            self._failed(exc)
            raise

    def _failed(self, exc: XenLUError) -> None:
        self._error = exc
        upto = getattr(self._m, "upto", None)  # (a machine framing its own records)
        if upto is not None:
            self.checked = max(self.checked, int(upto))
        # An error may name a record before the one in progress (LU: the
        # order of domids is known at the section's end): that one is faulty.
        at = None if self._m is None else self._m.start_of(getattr(exc, "record_index", None))
        if at is not None and at < self.checked:
            self.checked = at

    def _usable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise CallerError("more bytes after close()")

    def next_event(self) -> Event | NeedData:
        """The next event, or :data:`NEED_DATA` when there is none yet."""
        if self._events:
            return self._events.popleft()
        if self._error is not None:
            raise self._error
        return NEED_DATA

    def close(self) -> StreamEnd:
        """The stream has ended: raise why it may not end here, else :class:`StreamEnd`."""
        if self._error is not None:
            raise self._error
        if self._done:
            return StreamEnd(self.format, self.fed, *self._trailing())
        self._closed = True
        try:
            end = self._finish()
        except XenLUError as exc:
            self._failed(exc)
            raise
        self._done = True
        ev = StreamEnd(self.format, end, *self._trailing())
        if self._emit is not None:
            self._emit(ev)
        return ev

    @property
    def stream(self) -> Any:
        """With ``keep=True``, an LU stream: the decoded
        :class:`~xenlu.lu.model.LUStream` once :meth:`close` accepted it
        (its values hold copies of the records, not the decoder's buffer;
        every record is held whole), else None."""
        return getattr(self._m, "stream", None) if self._done else None

    @property
    def headers(self) -> dict[str, Any]:
        """What the stream's headers say (libxc/libxl/xl: ``version``,
        ``xen_version``, ``domain_type``, ``libxl_version``), once read."""
        return dict(getattr(self._m, "info", {}))

    @property
    def done(self) -> bool:
        """True once :meth:`close` found the stream whole and valid."""
        return self._done

    @property
    def vouched(self) -> int:
        """The absolute offset up to which the bytes are known good: :attr:`checked`,
        or inside a large record in progress (checked in pieces) the end of
        its last piece found clean, while no fault has been found in it."""
        m = self._m
        if self._error is None and m is not None and m.big_left():
            return max(self.checked, m.big_clean())
        return self.checked

    @property
    def buffered(self) -> int:
        """Bytes held now (a partial record or header)."""
        return self._hi - self._lo

    # -- the engine -----------------------------------------------------------------
    def _held(self) -> memoryview:
        return memoryview(self._buf)[self._lo : self._hi]

    def _run_buffered(self, top_up: bool = False) -> None:
        m = self._m
        if top_up and m is not None and m.big_left():
            # The held bytes complete the large record's entry in progress:
            # take them now, short as the piece is.
            m.final = True
        try:
            with self._held() as mv:
                used = self._run(mv, self._base)
        finally:
            if top_up and m is not None:
                m.final = False
        self._lo += used
        self._base += used
        if self._lo == self._hi:
            self._lo = self._hi = 0

    def _start(self, mv: memoryview, base: int, final: bool) -> int:
        """Recognise the format and check the headers once enough bytes are here."""
        if self._m is None:
            if len(mv) < 32 and not final:
                return 0
            from xenlu.api import FORMAT_TABLE, detect_format, refuse_other_format

            head = mv[:32]
            if self.format == "auto":
                fmt = detect_format(head)
            else:
                fmt = self.format
                refuse_other_format(head, FORMAT_TABLE[fmt])
            self.format = fmt
            self._m = _machine(fmt, self.strict, self._emit, self.limit, self.keep)
        m = self._m
        if not m.start(mv):
            if final:
                m.head_short(mv)
            return 0
        self._started = True
        self.checked = m.head
        return m.head

    def _run(self, mv: memoryview, base: int) -> int:
        """Take every complete record of ``mv`` (absolute offset ``base``); bytes used."""
        pos, end = 0, len(mv)
        if not self._started:
            if base:  # pragma: no cover - the head is always at offset 0
                raise AssertionError
            pos = self._start(mv, base, False)
            if not self._started:
                return 0
        m = self._m
        assert m is not None
        limit = self.limit
        unpack = HDR.unpack_from
        while True:
            if m.ended:
                return end  # §4.17, §1.4: counted (finish says what it makes of them)
            consume = getattr(m, "consume", None)
            if consume is not None:  # a family with its own framing (xenstored)
                used: int = consume(mv, pos, end, base)
                self.checked = int(getattr(m, "upto"))  # noqa: B009 - not in Machine
                return end if m.ended else used
            if m.big_left():
                n = m.piece(mv, pos, end)
                pos += n
                if m.big_left():
                    return pos
                self.checked = base + pos
                continue
            h = m.pending_head
            if h:  # a header inside the stream (an embedded libxc stream's)
                if end - pos < h:
                    return pos
                m.take_head(mv, pos, base)
                pos += h
                self.checked = base + pos
                continue
            if end - pos < 8:
                return pos
            t, length = unpack(mv, pos)
            if length > REC_LENGTH_MAX:
                raise m.framed(rebased(framing_error(mv, pos, end, m.idx), base))
            stop = pos + 8 + length + (-length & 7)
            if stop > end:
                if stop - pos > limit and m.big(t, length):
                    m.begin_big(base + pos, t, length, bytes(mv[pos : pos + 8]))
                    pos += 8
                    continue
                return pos
            if length & 7 and any(mv[stop - (-length & 7) : stop]):
                raise m.framed(rebased(framing_error(mv, pos, end, m.idx), base))
            m.record(mv, pos, base, t, length, stop)
            pos = stop
            self.checked = base + pos

    def _trailing(self) -> tuple[int, int]:
        from xenlu.migration.hvmctx import TRAILING_KEY

        m = self._m
        ctx = getattr(getattr(m, "inner", None) or m, "ctx", None)
        hvm = ctx.extra.get(TRAILING_KEY, 0) if ctx is not None else 0
        return int(getattr(m, "trailing", 0)), int(hvm)

    def _finish(self) -> int:
        end = self._base + self.buffered
        if not self._started:
            if self.buffered:
                with self._held() as mv:
                    used = self._start(mv, 0, True)
                if self._started:  # the headers were whole after all (xenstored: 16 bytes)
                    self._lo += used
                    self._base += used
                    self._run_buffered()
            else:
                self._start(memoryview(b""), 0, True)
        if not self._started:
            return end  # (unreachable: head_short raised why the headers are short)
        m = self._m
        assert m is not None
        if m.big_left() and self.buffered:
            m.final = True  # the last piece of a large record may be short
            self._run_buffered()
        if m.big_left():
            raise m.big_truncated(end)
        if m.pending_head:
            with self._held() as mv:
                m.take_head(mv, 0, self._base)  # (short: raises the truncated header)
        tail = getattr(m, "tail", None)
        if tail is not None and self.buffered:
            m.final = True  # (xenstored: a record waiting for the bytes after it)
            self._run_buffered()
            if self.buffered:
                with self._held() as mv:
                    tail(mv, self._base)
        if self.buffered:
            # A partial record: the framing error the whole stream gets here.
            with self._held() as mv:
                raise m.framed(rebased(framing_error(mv, 0, len(mv), m.idx), self._base))
        m.finish(end)
        return end


def verify_stream(
    readable: Any,
    format: str = "auto",
    *,
    chunk_size: int = DEFAULT_CHUNK,
    strict: bool = True,
    limit: int = DEFAULT_LIMIT,
    on_data: Callable[[memoryview], None] | None = None,
) -> str:
    """Verify a stream read from ``readable`` to its end in bounded memory; its format.

    ``readable`` is anything with ``readinto`` (read straight into the
    decoder's buffer, no copy) or ``read`` — a pipe, a socket's
    ``makefile("rb")``, an HTTP body. Raises the stream's first error, the
    same as :func:`xenlu.verify` of the whole stream, or
    :class:`~xenlu.core.errors.InputError` when a read fails. ``on_data`` (optional) sees every
    piece as it is read, before it is checked (a tee).

    >>> import io
    >>> verify_stream(io.BytesIO(b""), "libxc")
    Traceback (most recent call last):
    ...
    xenlu.core.errors.FramingError: offset 0x0: not a libxc migration stream: empty input
    """
    if chunk_size <= 0:
        raise CallerError(f"chunk_size must be positive, got {chunk_size}")
    d = Decoder(format, strict=strict, limit=limit, events=False)
    for piece in read_ahead(readable, chunk_size):
        if on_data is not None:
            on_data(piece)
        d.feed(piece)
    d.close()
    return d.format
