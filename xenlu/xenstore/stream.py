"""The xenstored migration stream: decode, encode, verify, inspect, the node tree.

Layout (``docs/designs/xenstore-migration.md`` §Header, §Records): a 16-octet
big-endian header (``xenstore``, version, flags), then records of
``type``/``len`` in the byte order of flags bit 0, each body followed by zero
padding to 8 octets, the last one END. Record bodies are in
:mod:`xenlu.xenstore.records`.

Structural rules where the document is silent follow the C xenstored's
reader (``lu_read_state`` in ``tools/xenstored/lu.c``): a record type it does
not know is skipped, so xenlu keeps it as an
:class:`~xenlu.core.registry.UnknownRecord`, byte-exactly, and lists it in
:meth:`XenstoreStream.unknown`. Nothing may follow END.

>>> g = GlobalData(rw_socket_fd=-1, evtchn_fd=5)
>>> s = XenstoreStream(records=(Record(XsType.GLOBAL_DATA, g),))
>>> data = encode_xenstore(s)
>>> data[:8], decode_xenstore(data) == s
(b'xenstore', True)
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from xenlu.core.errors import CallerError, EncodeError, FramingError, VersionError
from xenlu.core.framing import BytesSink, Sink, as_buffer, padding_error
from xenlu.core.registry import Ctx, Record, UnknownRecord
from xenlu.xenstore.codec import decode_body, encode_body
from xenlu.xenstore.records import (
    IDENT,
    KNOWN_TYPES,
    VERSIONS,
    ConnectionData,
    DomainData,
    GlobalData,
    GlobalQuotaData,
    NodeData,
    TransactionData,
    WatchData,
    XsHeader,
    XsType,
)

__all__ = [
    "NodeTree",
    "XenstoreStream",
    "decode_xenstore",
    "encode_xenstore",
    "encode_xenstore_to",
    "inspect_xenstore",
    "stream_json",
    "verify_xenstore",
]

STREAM_HDR = XsHeader.LAYOUT
RECORD_HDR = {"<": struct.Struct("<II"), ">": struct.Struct(">II")}
_ZEROS = bytes(8)


@dataclass(frozen=True)
class XenstoreStream:
    """A decoded or built xenstored migration stream.

    ``records`` excludes the final END. ``unpadded`` holds the indices of the
    records whose ``len`` excludes their padding (the document's wording);
    every other record's ``len`` includes it, as the C xenstored writes and
    reads (see :func:`~xenlu.xenstore.records.check_length`).
    """

    version: int = 2
    big_endian: bool = False
    records: tuple[Record, ...] = ()
    unpadded: frozenset[int] = field(default=frozenset())

    @property
    def order(self) -> str:
        """The records' byte order: ``'<'`` or ``'>'`` (§Header flags bit 0)."""
        return ">" if self.big_endian else "<"

    def of_type(self, rtype: int) -> Iterator[Any]:
        """The values of every record of type ``rtype``."""
        return (r.value for r in self.records if r.type == rtype)

    @property
    def connections(self) -> list[ConnectionData]:
        return list(self.of_type(XsType.CONNECTION_DATA))

    @property
    def watches(self) -> list[WatchData]:
        return [
            r.value
            for r in self.records
            if r.type in (XsType.WATCH_DATA, XsType.WATCH_DATA_EXTENDED)
        ]

    @property
    def transactions(self) -> list[TransactionData]:
        return list(self.of_type(XsType.TRANSACTION_DATA))

    @property
    def nodes(self) -> list[NodeData]:
        return list(self.of_type(XsType.NODE_DATA))

    @property
    def domains(self) -> list[DomainData]:
        return list(self.of_type(XsType.DOMAIN_DATA))

    def unknown(self) -> list[Record]:
        """Records of a type the document does not define (kept byte-exactly)."""
        return [r for r in self.records if isinstance(r.value, UnknownRecord)]

    def tree(self) -> NodeTree:
        """The committed node tree: path → :class:`NodeData` (values not copied)."""
        return NodeTree(self)


class NodeTree(Mapping[str, NodeData]):
    """The committed nodes of a stream by path (``conn_id`` 0), later records winning.

    Values and permissions stay views into the stream; only the paths are
    decoded (as Latin-1, so every octet maps to one character).

    >>> s = XenstoreStream(records=(Record(XsType.NODE_DATA, NodeData(path=b"/", value=b"")),))
    >>> list(s.tree()), s.tree().value("/")
    (['/'], b'')
    """

    def __init__(self, stream: XenstoreStream) -> None:
        self._nodes: dict[str, NodeData] = {
            bytes(n.path).decode("latin-1"): n for n in stream.nodes if n.conn_id == 0
        }

    def __getitem__(self, path: str) -> NodeData:
        return self._nodes[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def value(self, path: str) -> bytes:
        """The value of ``path`` (a copy; ``tree[path].value`` is the view)."""
        return bytes(self._nodes[path].value)

    def perms(self, path: str) -> list[tuple[str, int, bool]]:
        """``(letter, domid, stale)`` of each permission of ``path``, owner first."""
        return [(chr(p), d, bool(f & 1)) for p, f, d in self._nodes[path].perms.tuples()]

    def children(self, path: str) -> list[str]:
        """The direct children of ``path`` present in the stream, in stream order."""
        pre = "/" if path == "/" else path + "/"
        return [
            p for p in self._nodes if p.startswith(pre) and p != "/" and "/" not in p[len(pre) :]
        ]


def header(buf: memoryview) -> tuple[int, int]:
    """The 16-octet header's version and flags, checked (§Header)."""
    if len(buf) < STREAM_HDR.size:
        raise FramingError(
            "header truncated",
            offset=0,
            expected=f"{STREAM_HDR.size} octets",
            got=len(buf),
            family="xenstore",
        )
    ident, version, flags = STREAM_HDR.unpack_tuple(buf, 0)
    if ident != IDENT:
        raise FramingError(
            "not a xenstore stream",
            offset=0,
            field="ident",
            expected="'xenstore'",
            got=bytes(ident).hex(),
            family="xenstore",
        )
    if version not in VERSIONS:
        raise VersionError(
            "unsupported xenstore stream version",
            offset=8,
            field="version",
            expected="1 or 2",
            got=version,
            family="xenstore",
        )
    if flags & ~1:
        raise FramingError(
            "reserved header flag bits set",
            offset=12,
            field="flags",
            expected="only bit 0 (endianness)",
            got=flags,
            family="xenstore",
        )
    return version, flags


def frame_at(buf: memoryview, pos: int, end: int, index: int, unpack: Any) -> tuple[int, int, int]:
    """``(type, len, stop)`` of the record whose header is at ``buf[pos:]``
    (``buf[:end]`` the input so far), framing checked: header and body
    within the input, padding zero, END without a body (§Records). The
    mapped reader and the incremental one (:mod:`xenlu.feed.xenstore`) both
    read every record here."""
    if pos + 8 > end:
        raise FramingError(
            "stream ends without END" if pos == end else "record header truncated",
            offset=pos,
            record_index=index,
            expected="an 8-octet record header",
            got=end - pos,
            family="xenstore",
        )
    rtype, length = unpack(buf, pos)
    body = pos + 8
    pad = -length & 7
    stop = body + length + pad
    if stop > end:
        raise FramingError(
            "record body runs past the end of the input",
            offset=pos + 4,
            record_index=index,
            record_type=rtype,
            field="length",
            expected=f"{length + pad} octets of body and padding",
            got=max(0, end - body),
            family="xenstore",
        )
    if pad and buf[stop - pad : stop] != _ZEROS[:pad]:
        raise padding_error(buf, stop, pad, index, rtype, "xenstore")
    if rtype == XsType.END and length:
        raise FramingError(
            "END has a body",
            offset=pos + 4,
            record_index=index,
            record_type=rtype,
            field="length",
            expected=0,
            got=length,
            family="xenstore",
        )
    return rtype, length, stop


def after_end(stop: int, end: int, index: int) -> None:
    """Nothing may follow END (at ``stop``; the input ends at ``end``)."""
    if stop != end:
        raise FramingError(
            "data after END",
            offset=stop,
            record_index=index + 1,
            expected="END last",
            got=f"{end - stop} more octets",
            family="xenstore",
        )


def _frames(buf: memoryview, order: str) -> Iterator[tuple[int, int, int, int]]:
    """``(index, header offset, type, len)`` of every record up to and including END."""
    unpack = RECORD_HDR[order].unpack_from
    end = len(buf)
    pos = STREAM_HDR.size
    index = 0
    while True:
        rtype, length, stop = frame_at(buf, pos, end, index, unpack)
        if rtype == XsType.END:
            after_end(stop, end, index)
            yield index, pos, rtype, length
            return
        yield index, pos, rtype, length
        index += 1
        pos = stop


def record_value(
    buf: memoryview, pos: int, index: int, rtype: int, length: int, extra: dict[str, Any]
) -> Any:
    """The value of the record at ``buf[pos:]`` (not END): its decoded body,
    or a type lu.c does not know kept byte-exactly (§Records: 0x9 and up
    reserved for future use; lu.c skips it). ``extra``: the stream's
    ``order``, ``version``, ``strict`` and ``buf`` (the input, whose bytes
    after the record a diagnosis may quote)."""
    body = buf[pos + 8 : pos + 8 + length]
    if rtype in KNOWN_TYPES:
        ctx = Ctx(index, rtype, pos + 8, length, extra=extra, family="xenstore")
        return decode_body(rtype, body, extra["order"], ctx)
    return UnknownRecord(rtype, bytes(body))


def decode_xenstore(data: Any, *, strict: bool = True) -> XenstoreStream:
    """Decode and structurally check a xenstored migration stream.

    ``strict=False`` keeps a WATCH_DATA_EXTENDED record in a version-1
    stream instead of refusing it. Raises :class:`~xenlu.core.errors.DecodeError`
    subclasses only.

    >>> decode_xenstore(b"xenstore" + bytes.fromhex("0000000200000000" + "00" * 8)).version
    2
    """
    buf = as_buffer(data)
    version, flags = header(buf)
    order = ">" if flags & 1 else "<"
    extra = {"order": order, "version": version, "strict": strict, "buf": buf}
    records: list[Record] = []
    unpadded: set[int] = set()
    for index, pos, rtype, length in _frames(buf, order):
        if rtype == XsType.END:
            break
        value = record_value(buf, pos, index, rtype, length, extra)
        if rtype in KNOWN_TYPES and length % 8:
            unpadded.add(index)
        records.append(Record(rtype, value, pos))
    return XenstoreStream(
        version=version,
        big_endian=bool(flags & 1),
        records=tuple(records),
        unpadded=frozenset(unpadded),
    )


def verify_xenstore(data: Any, *, strict: bool = True) -> int:
    """Structurally verify a stream; return its number of records (END included)."""
    return len(decode_xenstore(data, strict=strict).records) + 1


def encode_xenstore_to(
    stream: XenstoreStream, sink: Sink, *, big_endian: bool | None = None
) -> int:
    """Write ``stream`` to ``sink``; ``big_endian`` overrides the stream's byte order."""
    be = stream.big_endian if big_endian is None else big_endian
    order = ">" if be else "<"
    pack = RECORD_HDR[order].pack
    n = 0

    def put(b: Any) -> None:
        nonlocal n
        size = memoryview(b).nbytes
        if size:
            sink.write(b)
            n += size

    put(STREAM_HDR.pack(XsHeader(version=stream.version, flags=int(be))))
    for i, r in enumerate(stream.records):
        if r.type == XsType.END:
            raise EncodeError("END is written by the encoder, not held in records")
        if isinstance(r.value, UnknownRecord):
            parts: list[Any] = list(r.value.body_for(r.type))
            length = len(r.value.body)
        else:
            try:
                XsType(r.type)
            except ValueError:
                raise EncodeError(
                    f"record {i}: unknown type {r.type:#x} needs an UnknownRecord"
                ) from None
            parts = encode_body(r.type, r.value, order)
            length = sum(memoryview(p).nbytes for p in parts)
            if i not in stream.unpadded or not length % 8:
                # xenstore_state.h: the C writers count the padding in len.
                parts.append(_ZEROS[: -length & 7])
                length += -length & 7
        if length > 0xFFFFFFFF:
            raise EncodeError(f"record {i}: body of {length} octets does not fit len")
        put(pack(r.type, length))
        for p in parts:
            put(p)
        put(_ZEROS[: -length & 7])
    put(pack(XsType.END, 0))
    return n


def encode_xenstore(stream: XenstoreStream, *, big_endian: bool | None = None) -> bytes:
    """The bytes of ``stream`` (see :func:`encode_xenstore_to`)."""
    if not isinstance(stream, XenstoreStream):
        raise CallerError(f"cannot encode a {type(stream).__name__} as a xenstore stream")
    sink = BytesSink()
    encode_xenstore_to(stream, sink, big_endian=big_endian)
    return sink.getvalue()


def inspect_xenstore(stream: XenstoreStream) -> dict[str, Any]:
    """Counts for ``xenlu inspect --json``: records by type, connections, nodes, …"""
    by_type: dict[str, int] = {}
    for r in stream.records:
        name = XsType(r.type).name if r.type in KNOWN_TYPES else f"{r.type:#010x}"
        by_type[name] = by_type.get(name, 0) + 1
    by_type["END"] = 1
    conns = stream.connections
    nodes = stream.nodes
    committed = [n for n in nodes if n.conn_id == 0]
    return {
        "format": "xenstore",
        "version": stream.version,
        "endianness": "big" if stream.big_endian else "little",
        "records": len(stream.records) + 1,
        "records_by_type": dict(sorted(by_type.items())),
        "connections": {
            "ring": sum(1 for c in conns if c.conn_type == 0),
            "socket": sum(1 for c in conns if c.conn_type == 1),
        },
        "nodes": {"committed": len(committed), "pending": len(nodes) - len(committed)},
        "node_data_bytes": sum(memoryview(n.value).nbytes for n in nodes),
        "watches": len(stream.watches),
        "transactions": len(stream.transactions),
        "domain_records": len(stream.domains),
        "unknown_records": len(stream.unknown()),
        "global_data": any(isinstance(r.value, GlobalData) for r in stream.records),
    }


def _value_json(v: Any) -> dict[str, Any]:
    if isinstance(v, UnknownRecord):
        return {"body": v.body.hex()}
    if isinstance(v, ConnectionData):
        return {
            "conn_id": v.conn_id,
            "conn_type": v.conn_type,
            "spec": dataclasses.asdict(v.spec),
            "in_data": bytes(v.in_data).hex(),
            "out_data": bytes(v.out_data).hex(),
            "out_resp_len": v.out_resp_len,
            "unique_id": v.unique_id,
        }
    if isinstance(v, WatchData):
        return {
            "conn_id": v.conn_id,
            "wpath": _latin1(v.wpath),
            "token": _latin1(v.token),
            "depth": v.depth,
        }
    if isinstance(v, NodeData):
        return {
            "conn_id": v.conn_id,
            "tx_id": v.tx_id,
            "access": v.access,
            "perms": [[chr(p), f, d] for p, f, d in v.perms.tuples()],
            "path": _latin1(v.path),
            "value": bytes(v.value).hex(),
        }
    if isinstance(v, (GlobalQuotaData, DomainData)):
        out: dict[str, Any] = {}
        if isinstance(v, GlobalQuotaData):
            out["n_dom_quota"] = v.n_dom_quota
        else:
            out["domain_id"], out["features"] = v.domain_id, v.features
        out["values"] = list(v.values.column("value"))
        out["names"] = _latin1(v.names).split("\0")[:-1]
        return out
    return dataclasses.asdict(v)


def _latin1(b: Any) -> str:
    return bytes(b).decode("latin-1")


def stream_json(stream: XenstoreStream) -> dict[str, Any]:
    """Plain JSON data of ``stream``: header fields and ``[name, fields]`` per record.

    Paths, tokens and quota names as Latin-1 text, pending data and node
    values as hex; unknown records by their type in hex with the body.
    """
    recs: list[list[Any]] = []
    for i, r in enumerate(stream.records):
        name = XsType(r.type).name if r.type in KNOWN_TYPES else f"{r.type:#010x}"
        item: list[Any] = [name, _value_json(r.value)]
        if i in stream.unpadded:
            item.append("len-excludes-padding")
        recs.append(item)
    return {
        "version": stream.version,
        "endianness": "big" if stream.big_endian else "little",
        "records": recs,
    }
