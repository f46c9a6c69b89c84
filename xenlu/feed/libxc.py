"""The incremental reading of a libxc stream (reference §1.2–§1.8), for
:class:`xenlu.feed.decoder.Decoder`.

:class:`LibxcMachine` does for each record pushed to it what the walker of
:mod:`xenlu.migration.libxc_stream` does for each record it pulls: the image and
domain header checks (``decode_headers``), :func:`~xenlu.migration.libxc_grammar.admit`
against the grammar tables, the record's body check (the check-only
functions of :func:`~xenlu.migration.libxc_stream.verify_libxc`), and at END
:func:`~xenlu.migration.libxc_grammar.at_end`. Nothing is kept between records but
the grammar :class:`~xenlu.migration.libxc_grammar.State`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xenlu.core.errors import DecodeError, FramingError
from xenlu.core.registry import OPTIONAL, Ctx, unknown_mandatory
from xenlu.feed.events import Event, RecordEvent, WholeRecords
from xenlu.migration.libxc_grammar import DHDR_TYPE_PV, State, admit, at_end, is_last
from xenlu.migration.libxc_stream import DHDR_SIZE, IHDR_SIZE, body_fns, decode_headers

__all__ = ["LibxcMachine"]


# libxc records are checked whole (PAGE_DATA batches are at most a few MiB).
class LibxcMachine(WholeRecords):
    """The libxc stream, pushed record by record (see the module notes).

    ``at``: where its image header is (an xl save file's stream follows the
    xl header); ``embedded``: a libxc stream inside a libxl stream, which
    ends at END or CHECKPOINT and may be followed by other bytes.
    """

    pending_head = 0

    def __init__(
        self,
        strict: bool,
        emit: Callable[[Event], None] | None,
        piece: int,
        at: int = 0,
        embedded: bool = False,
    ) -> None:
        self.strict = strict
        self.emit = emit
        self.at = at
        self.head = at + IHDR_SIZE + DHDR_SIZE
        self.embedded = embedded
        self.idx = 0
        self.ended = False
        self.final = False
        self.end_at = 0
        self.trailing = 0  # bytes after END (the container's), set by finish
        self.last = -1  # the type of the record that ended the stream
        self.st: State | None = None
        self.domain_type = 0
        self.info: dict[str, Any] = {}
        self.bodies = body_fns(False)
        self.ctx = Ctx(None, 0, 0, 0)

    def start(self, buf: memoryview) -> bool:
        if len(buf) < self.head:
            return False
        self.headers(buf, self.at)
        return True

    def headers(self, buf: memoryview, at: int) -> None:
        """§1.2, §1.3: the image and domain headers at ``buf[at:]``."""
        header, domain = decode_headers(buf, at)
        self.st = State(header.version, domain.type)
        self.domain_type = domain.type
        self.info = {
            "version": header.version,
            "xen_version": f"{domain.xen_major}.{domain.xen_minor}",
            "domain_type": "pv" if domain.type == DHDR_TYPE_PV else "hvm",
        }

    def head_short(self, buf: memoryview) -> None:
        decode_headers(buf, self.at)

    def take_head(self, buf: memoryview, pos: int, base: int) -> None:  # pragma: no cover
        return None

    def framed(self, exc: DecodeError) -> DecodeError:
        return exc

    def start_of(self, index: int | None) -> int | None:
        return None  # every libxc error names the record in progress

    def record(self, buf: memoryview, pos: int, base: int, t: int, length: int, stop: int) -> None:
        st = self.st
        assert st is not None
        idx, off = self.idx, base + pos
        admit(st, idx, off, t)
        fn = self.bodies.get(t)
        if fn is None:
            if self.strict and not t & OPTIONAL:
                raise unknown_mandatory(off, idx, t)
        else:
            ctx = self.ctx
            ctx.index, ctx.type, ctx.offset, ctx.length = idx, t, off + 8, length
            fn(buf[pos + 8 : pos + 8 + length], ctx)
        if is_last(t, self.embedded):
            at_end(st, idx, off, t)
            self.ended = True
            self.last = t
            self.end_at = base + stop
        self.idx = idx + 1
        if self.emit is not None:
            self.emit(RecordEvent(idx, off, t, length, "libxc"))

    def finish(self, end: int) -> None:
        if not self.ended:
            raise FramingError(
                "stream ends before END",
                offset=end,
                record_index=self.idx,
                expected="another record (END missing)",
            )
        if not self.embedded:
            # Bytes after END belong to the container (reference §1.4; what
            # Xen's convert-legacy-stream writes after an HVM stream): counted.
            self.trailing = end - self.end_at
