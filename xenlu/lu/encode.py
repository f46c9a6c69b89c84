"""Encoding a Live Update stream (LU spec §1, §2, §4.15).

Records go to the sink in section order, each section closed by the
LU_SECTION_END that carries its crc32c and length; bulk arrays are written
as views (never joined) and split at ``max_record_bytes`` (§1).

>>> data = encode_lu(stream)                  # doctest: +SKIP
b'\\x00\\x00\\x00@'
"""

from __future__ import annotations

import numpy as np

from xenlu.core.errors import CallerError, EncodeError
from xenlu.core.framing import REC_LENGTH_MAX, BytesSink, RecordWriter, Sink
from xenlu.core.registry import UnknownRecord
from xenlu.lu.grammar import END, spec_for
from xenlu.lu.host_records import LuSectionEnd
from xenlu.lu.model import GlobalSection, LUDomain, LUStream, Section
from xenlu.lu.records import Bulk, T
from xenlu.lu.values import DOMID_XEN

__all__ = ["END_BYTES", "encode_lu", "encode_lu_to", "encode_section_to"]


def _split(entries: np.ndarray, max_body: int) -> list[np.ndarray]:
    per = (max_body - 8) // entries.dtype.itemsize
    if per < 1:
        raise CallerError(f"max_record_bytes {max_body} cannot hold one entry")
    if len(entries) <= per:
        return [entries]
    return [entries[i : i + per] for i in range(0, len(entries), per)]


def _write_section(w: RecordWriter, sec: Section, domid: int, max_body: int) -> None:
    w.begin_section()
    for r in sec.records:
        if isinstance(r.value, UnknownRecord):
            w.record(r.type, r.value.body_for(r.type))
            continue
        spec = spec_for(r.type)
        if spec is None:
            raise EncodeError(f"record type {r.type:#010x} is unknown and not an UnknownRecord")
        if spec.bulk and isinstance(r.value, Bulk) and len(r.value.entries):
            for part in _split(r.value.entries, max_body):
                w.record(r.type, spec.encode(Bulk(part)))
        else:
            w.record(r.type, spec.encode(r.value))
    crc, size = w.end_section()
    end = LuSectionEnd(domid=domid, crc32c=crc, section_bytes=size)
    w.record(T.LU_SECTION_END, [LuSectionEnd.LAYOUT.pack(end)])


def encode_lu_to(stream: LUStream, sink: Sink, *, max_record_bytes: int = REC_LENGTH_MAX) -> int:
    """Write ``stream`` to ``sink`` (anything with ``write``); return bytes written.

    Bulk records larger than ``max_record_bytes`` are split (§1); bulk
    arrays go to the sink as views, never joined into one buffer.
    """
    if not 16 <= max_record_bytes <= REC_LENGTH_MAX:
        raise CallerError(f"max_record_bytes must be 16 … {REC_LENGTH_MAX}")
    stream.check_domain_layouts(EncodeError, f"Xen {stream.xen_version}")
    w = RecordWriter(sink)
    _write_section(w, stream.global_section, DOMID_XEN, max_record_bytes)
    for d in stream.domains:
        _write_section(w, d, d.domid, max_record_bytes)
    w.record(END, [])
    return w.pos


#: The END record that closes every stream (§4.17).
END_BYTES = bytes(8)


def encode_section_to(
    section: Section, sink: Sink, *, max_record_bytes: int = REC_LENGTH_MAX
) -> int:
    """Write one section (its records, then its LU_SECTION_END) to ``sink``.

    A section's checksum covers only its own bytes (§4.15), so the sections
    of a stream can be encoded independently — on several threads, into
    separate buffers — and concatenated, followed by :data:`END_BYTES`::

        >>> parts = [io.BytesIO() for _ in s.sections]           # doctest: +SKIP
        >>> for sec, p in zip(s.sections, parts): encode_section_to(sec, p)  # doctest: +SKIP
        >>> b"".join(p.getvalue() for p in parts) + END_BYTES == encode_lu(s)  # doctest: +SKIP
        True
    """
    if not 16 <= max_record_bytes <= REC_LENGTH_MAX:
        raise CallerError(f"max_record_bytes must be 16 … {REC_LENGTH_MAX}")
    if isinstance(section, GlobalSection):
        domid = DOMID_XEN
    elif isinstance(section, LUDomain):
        domid = section.domid
    else:
        raise CallerError(f"expected a GlobalSection or LUDomain, got {type(section).__name__}")
    w = RecordWriter(sink)
    _write_section(w, section, domid, max_record_bytes)
    return w.pos


def encode_lu(stream: LUStream, *, max_record_bytes: int = REC_LENGTH_MAX) -> bytes:
    """The bytes of ``stream`` (see :func:`encode_lu_to`)."""
    sink = BytesSink()
    encode_lu_to(stream, sink, max_record_bytes=max_record_bytes)
    return sink.getvalue()
