"""The incremental reading of a xenstored migration stream, for :class:`xenlu.feed.decoder.Decoder`.

The mapped reader (:func:`~xenlu.xenstore.stream.decode_xenstore`) checks
the 16-octet header (:func:`~xenlu.xenstore.stream.header`), then for each
record its framing (:func:`~xenlu.xenstore.stream.frame_at`) and its body
(:func:`~xenlu.xenstore.stream.record_value`), then that nothing follows END
(:func:`~xenlu.xenstore.stream.after_end`). :class:`XenstoreMachine` calls
the same functions in the same order, a record at a time, over the bytes
the decoder holds; an error located in those bytes is moved to its place in
the whole stream.

Its records are not in the 8-byte little-endian framing of the other
families (the byte order is the header's flag bit 0), so the machine frames
them itself (:meth:`XenstoreMachine.consume`). Each record is held whole
until it is checked (xenstored records are small: a node, a watch, a
connection); a WATCH_DATA_EXTENDED record is checked once the 8 octets after
it have arrived too, or the stream has ended, because the diagnosis of the C
writer's record quotes the header the C reader would take from them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xenlu.core.errors import DecodeError
from xenlu.feed.events import Event, RecordEvent, WholeRecords, rebased
from xenlu.xenstore.records import XsType
from xenlu.xenstore.stream import RECORD_HDR, STREAM_HDR, after_end, frame_at, header, record_value

__all__ = ["XenstoreMachine"]


class XenstoreMachine(WholeRecords):
    """The xenstored stream, pushed a piece at a time (see the module notes)."""

    head = STREAM_HDR.size
    pending_head = 0

    def __init__(self, strict: bool, emit: Callable[[Event], None] | None) -> None:
        self.strict = strict
        self.emit = emit
        self.idx = 0
        self.ended = False
        self.final = False
        self.end_stop = 0  # where END's record ends
        self.order = "<"
        self.unpack: Any = RECORD_HDR["<"].unpack_from
        self.extra: dict[str, Any] = {}
        #: The absolute offset up to which every byte is checked: the first
        #: record not yet checked, once the header is.
        self.upto = 0

    def start(self, buf: memoryview) -> bool:
        if len(buf) < STREAM_HDR.size:
            return False
        version, flags = header(buf)
        self.order = ">" if flags & 1 else "<"
        self.unpack = RECORD_HDR[self.order].unpack_from
        self.extra = {"order": self.order, "version": version, "strict": self.strict}
        self.upto = STREAM_HDR.size
        return True

    def head_short(self, buf: memoryview) -> None:
        header(buf)  # (raises: the header is truncated)

    def consume(self, buf: memoryview, pos: int, end: int, base: int) -> int:
        """Check every whole record of ``buf[pos:end]`` (absolute offset
        ``base``); the bytes used. After END, the rest is counted (at the
        stream's end, :func:`after_end` says whether there may be any)."""
        while not self.ended:
            if end - pos < 8:
                return pos
            rtype, length = self.unpack(buf, pos)
            stop = pos + 8 + length + (-length & 7)
            wait = stop + 8 if rtype == XsType.WATCH_DATA_EXTENDED else stop
            if wait > end and not (self.final and stop <= end):
                return pos
            self.take(buf, pos, end, base)
            pos = stop
            self.upto = base + pos
        return end

    def take(self, buf: memoryview, pos: int, end: int, base: int) -> None:
        """The record at ``buf[pos:]``: framing, then body, as the mapped reader."""
        idx = self.idx
        extra = {**self.extra, "buf": buf[:end]}
        try:
            rtype, length, stop = frame_at(buf, pos, end, idx, self.unpack)
            if rtype == XsType.END:
                self.ended = True
                self.end_stop = base + stop
            else:
                # Checked and dropped: the value is over the decoder's buffer.
                record_value(buf, pos, idx, rtype, length, extra)
        except DecodeError as exc:
            raise rebased(exc, base) from None
        if self.emit is not None:
            self.emit(RecordEvent(idx, base + pos, rtype, length, "xenstore"))
        self.idx = idx + 1

    def tail(self, buf: memoryview, base: int) -> None:
        """The stream ended with ``buf`` (at ``base``) held, not a whole record: why."""
        try:
            frame_at(buf, 0, len(buf), self.idx, self.unpack)
        except DecodeError as exc:
            raise rebased(exc, base) from None
        raise AssertionError("a whole record was left unread")  # pragma: no cover

    def finish(self, end: int) -> None:
        if not self.ended:
            with memoryview(b"") as mv:
                self.tail(mv, end)  # "stream ends without END"
        after_end(self.end_stop, end, self.idx - 1)

    def take_head(self, buf: memoryview, pos: int, base: int) -> None:  # pragma: no cover
        return None

    def framed(self, exc: DecodeError) -> DecodeError:  # pragma: no cover - consume frames
        return exc

    def record(
        self, buf: memoryview, pos: int, base: int, t: int, length: int, stop: int
    ) -> None:  # pragma: no cover - consume reads the records
        raise AssertionError

    def start_of(self, index: int | None) -> int | None:
        return None
