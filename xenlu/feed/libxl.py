"""The incremental reading of a libxl stream and of an xl save file
(reference §2, ``tools/xl/xl.h``), for :class:`xenlu.feed.decoder.Decoder`.

:class:`LibxlMachine` does for each record pushed to it what
``_decode_libxl_at`` of :mod:`xenlu.migration.libxl` does for each record it pulls:
the libxl grammar (one LIBXC_CONTEXT, END not at a CHECKPOINT,
CHECKPOINT_END only after one, no CHECKPOINT_STATE, no emulator record in
a PV domain's stream), the record's spec, and after LIBXC_CONTEXT (or a
CHECKPOINT_END closing a CHECKPOINT) the embedded libxc stream, read by
:class:`~xenlu.feed.libxc.LibxcMachine` with the grammar state carried
over the checkpoints. An xl save file's headers and optional data are
checked by :func:`~xenlu.migration.libxl.decode_xl` itself over the bytes before the
stream; its stream is then a libxl stream (STREAMv2) or a libxc one.
Record indices are shared by libxl and libxc records, as in the mapped
decoders; offsets are absolute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xenlu.core.errors import DecodeError, FramingError, UnknownRecordError
from xenlu.core.registry import LIBXL, OPTIONAL, Ctx
from xenlu.feed.events import Event, RecordEvent, WholeRecords, rebased
from xenlu.feed.libxc import LibxcMachine
from xenlu.migration.libxc_records import RecType
from xenlu.migration.libxc_stream import DHDR_SIZE, IHDR_SIZE
from xenlu.migration.libxl import (
    XL_HDR,
    XL_MAGIC,
    XL_MANDATORY_STREAMV2,
    check_order,
    decode_libxl,
    decode_libxl_header,
    decode_xl,
)
from xenlu.migration.libxl_records import LIBXL_HDR, LibxlType

__all__ = ["LibxlMachine"]

L = LibxlType
_LIBXC_HEAD = IHDR_SIZE + DHDR_SIZE
_XL_FIXED = len(XL_MAGIC) + XL_HDR.size

# Where the stream stands: libxl records, an embedded libxc stream, or (an
# xl save file without STREAMv2) a plain libxc stream.
_LIBXL, _LIBXC, _PLAIN = range(3)


# libxl and libxc records are checked whole.
class LibxlMachine(WholeRecords):
    """A libxl stream, or an xl save file (``xl=True``), pushed record by record."""

    def __init__(
        self, strict: bool, emit: Callable[[Event], None] | None, piece: int, xl: bool
    ) -> None:
        self.strict = strict
        self.emit = emit
        self.piece_min = piece
        self.xl = xl
        self.head = 0
        self.idx = 0
        self.ended = False
        self.final = False
        self.pending_head = 0
        self.mode = _LIBXL
        self.end_at = 0
        self.trailing = 0  # bytes after END (the container's), set by finish
        self.inner: LibxcMachine | None = None  # the libxc stream, once it started
        self.at_checkpoint = False
        self.libxl_version: int | None = None
        self.ctx = Ctx(None, 0, 0, 0, family="libxl")

    # -- headers ----------------------------------------------------------------------
    def start(self, buf: memoryview) -> bool:
        n = len(buf)
        at = 0
        if self.xl:
            if n < _XL_FIXED:
                return False
            mandatory, optlen = XL_HDR.unpack_from(buf, len(XL_MAGIC))[1::2]
            at = _XL_FIXED + optlen
            v2 = bool(mandatory & XL_MANDATORY_STREAMV2)
            # The xl header's own rules first, as decode_xl applies them (an
            # error past the header is the stream's, read below).
            try:
                decode_xl(buf[: min(n, at)], strict=self.strict)
            except DecodeError as exc:
                mine = exc.offset is not None and exc.offset < min(n, at)
                if mine and (exc.field != "optional_data_len" or n >= at):
                    raise
            if n < at + (LIBXL_HDR.size if v2 else _LIBXC_HEAD):
                return False
            if not v2:
                inner = LibxcMachine(self.strict, self.emit, self.piece_min, at=at)
                inner.start(buf)
                self.inner, self.mode, self.head = inner, _PLAIN, inner.head
                return True
        elif n < LIBXL_HDR.size:
            return False
        self.libxl_version = decode_libxl_header(buf, at).version
        self.head = at + LIBXL_HDR.size
        return True

    @property
    def info(self) -> dict[str, Any]:
        """The libxc headers' (when read) and the libxl header's version."""
        out: dict[str, Any] = dict(self.inner.info) if self.inner is not None else {}
        if self.mode == _PLAIN:  # an xl file around a libxc stream: its image version
            out["libxl_version"] = out.get("version")
        elif self.libxl_version is not None:
            out["libxl_version"] = self.libxl_version
        return out

    def head_short(self, buf: memoryview) -> None:
        if self.xl:
            decode_xl(buf, strict=self.strict)
        else:
            decode_libxl(buf, strict=self.strict)

    def take_head(self, buf: memoryview, pos: int, base: int) -> None:
        """The embedded libxc stream's image and domain headers (after LIBXC_CONTEXT)."""
        inner = LibxcMachine(self.strict, self.emit, self.piece_min, embedded=True)
        view = buf[pos : pos + _LIBXC_HEAD]
        try:
            inner.headers(view, 0)
        except DecodeError as exc:
            raise rebased(exc, base + pos) from None
        self.inner, self.mode, self.pending_head = inner, _LIBXC, 0

    def framed(self, exc: DecodeError) -> DecodeError:
        if self.mode == _LIBXL:
            exc.family = "libxl"  # a libxl record header: name the type as libxl
        return exc

    def start_of(self, index: int | None) -> int | None:
        return None

    # -- records ----------------------------------------------------------------------
    def record(self, buf: memoryview, pos: int, base: int, t: int, length: int, stop: int) -> None:
        inner = self.inner
        if self.mode != _LIBXL:
            assert inner is not None
            inner.idx = self.idx
            inner.record(buf, pos, base, t, length, stop)
            self.idx = inner.idx
            if inner.ended:
                if self.mode == _PLAIN:
                    self.ended, self.end_at = True, inner.end_at
                else:
                    self.at_checkpoint = inner.last == RecType.CHECKPOINT
                    self.mode, inner.ended = _LIBXL, False
            return
        idx, off = self.idx, base + pos
        self.idx = idx + 1
        spec = LIBXL.get(t)
        if spec is None:
            # Xen's reader fails every type it does not know, optional or not.
            if self.strict:
                raise UnknownRecordError(
                    "unknown optional libxl record type (libxl refuses every unknown type)"
                    if t & OPTIONAL
                    else "unknown mandatory libxl record type",
                    offset=off,
                    record_index=idx,
                    record_type=t,
                    field="type",
                    family="libxl",
                )
            self.event(idx, off, t, length)
            return
        check_order(t, off, idx, None if inner is None else inner.domain_type, self.at_checkpoint)
        ctx = self.ctx
        ctx.index, ctx.type, ctx.offset, ctx.length = idx, t, off + 8, length
        spec.decode(buf[pos + 8 : pos + 8 + length], ctx)
        self.event(idx, off, t, length)
        if t == L.LIBXC_CONTEXT:
            self.pending_head = _LIBXC_HEAD  # the libxc stream follows, headers first
        elif t == L.CHECKPOINT_END:
            self.mode = _LIBXC  # the next batch of libxc records, no headers
        elif t == L.END:
            self.ended, self.end_at = True, base + stop

    def event(self, idx: int, off: int, t: int, length: int) -> None:
        if self.emit is not None:
            self.emit(RecordEvent(idx, off, t, length, "libxl"))

    def finish(self, end: int) -> None:
        if self.mode != _LIBXL:
            assert self.inner is not None
            self.inner.idx = self.idx
            self.inner.finish(end)
            self.trailing = self.inner.trailing  # an xl file's plain libxc stream
            return
        if not self.ended:
            raise FramingError(
                "libxl stream ends before END",
                offset=end,
                record_index=self.idx,
                expected="another record (END missing)",
            )
        self.trailing = end - self.end_at  # the container's, as after a libxc END
