"""The events of the incremental decoders and what every family's machine
provides (:class:`Machine`); :mod:`xenlu.feed.decoder` drives the machines
(:mod:`xenlu.feed.lu`, :mod:`~xenlu.feed.libxc`, :mod:`~xenlu.feed.libxl`,
:mod:`~xenlu.feed.xenstore`), which import these types from here, not from
the decoder that picks them (no import cycle)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from xenlu.core.errors import DecodeError

__all__ = [
    "NEED_DATA",
    "Event",
    "Machine",
    "NeedData",
    "RecordEvent",
    "SectionEvent",
    "StreamEnd",
    "WholeRecords",
    "rebased",
]


class NeedData:
    """:meth:`Decoder.next_event`: no complete event yet; feed more bytes."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()


@dataclass(frozen=True)
class RecordEvent:
    """One record read and checked: where it is and what it is. No body is
    kept: ``entries`` is the number of entries a record carries (bulk
    entries, pfns, leaves …; None for others), ``value`` the decoded value
    of the few records that name the stream (LU_VERSION, LU_DOMAIN)."""

    index: int
    offset: int
    type: int
    length: int
    family: str
    entries: int | None = None
    value: Any = None


@dataclass(frozen=True)
class SectionEvent:
    """An LU section closed and checked (§4.15): its domid, first byte and size."""

    domid: int
    offset: int
    size: int


@dataclass(frozen=True)
class StreamEnd:
    """The stream ended where it may (after :meth:`Decoder.close`).

    ``trailing``: bytes after a libxc, libxl or xl stream's END, which belong
    to the container, not the stream (counted, not kept; the LU and
    xenstored streams allow none)."""

    format: str
    size: int
    trailing: int = 0
    #: bytes after the END entry of HVM_CONTEXT records (kept by decode).
    hvm_context_trailing: int = 0


Event = RecordEvent | SectionEvent | StreamEnd


class Machine(Protocol):
    """One family's reading of a stream: its headers, then its records."""

    #: Bytes of headers before the first record (libxc: 40; LU: 0), once known.
    head: int
    #: Bytes of a header expected next inside the stream (0: a record).
    pending_head: int
    #: The record index of the next record.
    idx: int
    #: True once the last record is read (what follows is counted, not read).
    ended: bool
    #: True at close: a large record's last piece may be shorter than usual.
    final: bool

    def start(self, buf: memoryview) -> bool:
        """Check the headers in ``buf`` (the stream's first bytes): False when
        more bytes are needed, else True with ``head`` set."""
        ...

    def take_head(self, buf: memoryview, pos: int, base: int) -> None:
        """Check the ``pending_head`` header bytes at ``buf[pos:]`` (raise when short)."""
        ...

    def framed(self, exc: DecodeError) -> DecodeError:
        """A framing error of the record in progress, as the family words it."""
        ...

    def record(self, buf: memoryview, pos: int, base: int, t: int, length: int, stop: int) -> None:
        """The whole record at ``buf[pos:stop]`` (absolute offset ``base + pos``)."""
        ...

    def big(self, t: int, length: int) -> bool:
        """Whether a record too large for the buffer may be taken in pieces."""
        ...

    def begin_big(self, off: int, t: int, length: int, header: bytes) -> None:
        """A large record's header has arrived (at absolute ``off``)."""
        ...

    def piece(self, buf: memoryview, pos: int, end: int) -> int:
        """Take body bytes of the large record from ``buf[pos:end]``; how many."""
        ...

    def big_left(self) -> int:
        """Bytes of the large record (body and padding) still to come; 0 when done."""
        ...

    def big_need(self, held: int) -> int:
        """With ``held`` bytes of the large record held, how many more let it progress."""
        ...

    def big_clean(self) -> int:
        """The absolute offset up to which the large record is found clean so far."""
        ...

    def big_truncated(self, end: int) -> DecodeError:
        """The error of a stream ending at ``end`` inside the large record."""
        ...

    def finish(self, end: int) -> None:
        """The stream ended at ``end`` on a record boundary: may it end here?"""
        ...

    def head_short(self, buf: memoryview) -> None:
        """The stream ended inside the headers (``buf`` is all of it): raise why."""
        ...

    def start_of(self, index: int | None) -> int | None:
        """Where record ``index`` starts, if it is an earlier record an error names."""
        ...


def rebased(exc: DecodeError, base: int) -> DecodeError:
    """``exc`` raised over a piece of the stream, located in the whole stream."""
    if base and exc.offset is not None:
        exc.offset += base
    return exc


class WholeRecords:
    """The large-record part of :class:`Machine` for a family whose records
    are all checked whole (``big`` is never true, so the rest is unreachable)."""

    def big(self, t: int, length: int) -> bool:
        return False

    def begin_big(self, off: int, t: int, length: int, header: bytes) -> None:  # pragma: no cover
        raise AssertionError

    def piece(self, buf: memoryview, pos: int, end: int) -> int:  # pragma: no cover
        raise AssertionError

    def big_left(self) -> int:
        return 0

    def big_need(self, held: int) -> int:  # pragma: no cover
        raise AssertionError

    def big_clean(self) -> int:  # pragma: no cover
        raise AssertionError

    def big_truncated(self, end: int) -> DecodeError:  # pragma: no cover
        raise AssertionError
