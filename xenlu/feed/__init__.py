"""Incremental reading: push bytes as they arrive, get records as events.

One machine per stream family; :class:`Decoder` picks it from the first bytes.

The names below are this package's public API; its modules are private to
the family. Names load on first use, so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xenlu.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from xenlu.feed.decoder import (
        DEFAULT_CHUNK,
        DEFAULT_DEPTH,
        DEFAULT_LIMIT,
        NEED_DATA,
        Decoder,
        RecordEvent,
        SectionEvent,
        StreamEnd,
        WholeRecords,
        read_ahead,
        read_pieces,
        verify_stream,
    )

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

_WHERE: dict[str, str] = {
    "DEFAULT_CHUNK": "xenlu.feed.decoder",
    "DEFAULT_DEPTH": "xenlu.feed.decoder",
    "DEFAULT_LIMIT": "xenlu.feed.decoder",
    "Decoder": "xenlu.feed.decoder",
    "NEED_DATA": "xenlu.feed.decoder",
    "RecordEvent": "xenlu.feed.decoder",
    "SectionEvent": "xenlu.feed.decoder",
    "StreamEnd": "xenlu.feed.decoder",
    "WholeRecords": "xenlu.feed.decoder",
    "read_ahead": "xenlu.feed.decoder",
    "read_pieces": "xenlu.feed.decoder",
    "verify_stream": "xenlu.feed.decoder",
}


__getattr__ = lazy_getattr(__name__, _WHERE, globals())
