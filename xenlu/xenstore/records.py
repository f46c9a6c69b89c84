"""The xenstored migration stream's records, declared once (second record family).

The stream xenstored hands to its successor on a live update (and that
non-cooperative migration carries for one domain) is described by Xen's
``docs/designs/xenstore-migration.md``; section names below ("§Header",
"§CONNECTION_DATA", …) are that document's. The C structs of
``tools/xenstored/xenstore_state.h`` agree with it except where
``docs/xenstore-stream.md`` says otherwise.

Every fixed part is one :func:`~xenlu.core.layout.packed` declaration, written
little-endian; a big-endian stream (header flag bit 0, §Header) is read and
written through a :class:`struct.Struct` derived from the same declaration,
so both byte orders decode to the same values. Variable parts (paths, tokens,
node values, pending data, quota names) stay zero-copy ``memoryview`` slices
of the input; permission and quota arrays are :class:`Entries` over their raw
bytes (numpy views on demand).

>>> owner = NodePerm(perm=ord("n"), flags=0, domid=0)
>>> n = NodeData(path=b"/local", value=b"", perms=Entries.of(NodePerm, [owner]))
>>> n.owner, n.pending
(0, False)

Bodies are decoded, checked and encoded by :mod:`xenlu.xenstore.codec`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Annotated, Any, ClassVar

from construct import Bytes, Int8ul, Int16ul, Int32sl, Int32ub, Int32ul, Int64ul

from xenlu.core.layout import Layout, Packed, Rsvd, fld, packed, reserved

__all__ = [
    "CONN_RING",
    "CONN_SOCKET",
    "DOMID_INVALID",
    "IDENT",
    "KNOWN_TYPES",
    "VERSIONS",
    "ConnectionData",
    "DomainData",
    "Entries",
    "GlobalData",
    "GlobalQuotaData",
    "NodeData",
    "NodePerm",
    "QuotaVal",
    "RingSpec",
    "SocketSpec",
    "TransactionData",
    "WatchData",
    "XsHeader",
    "XsType",
    "quota_names",
]

#: §Header ``ident``: 'xenstore' in ASCII.
IDENT = b"xenstore"
#: §Header ``version``: the defined values.
VERSIONS = (1, 2)
#: xen.h DOMID_INVALID (the ``tdomid`` of a ring not subject to SET_TARGET).
DOMID_INVALID = 0x7FF4
CONN_RING = 0
CONN_SOCKET = 1

Buf = bytes | bytearray | memoryview


class XsType(IntEnum):
    """§Records ``type`` values."""

    END = 0
    GLOBAL_DATA = 1
    CONNECTION_DATA = 2
    WATCH_DATA = 3
    TRANSACTION_DATA = 4
    NODE_DATA = 5
    GLOBAL_QUOTA_DATA = 6
    DOMAIN_DATA = 7
    WATCH_DATA_EXTENDED = 8


#: The type codes the document defines (0x9 and up: reserved, kept as unknown).
KNOWN_TYPES = frozenset(int(t) for t in XsType)

# --- fixed parts (one declaration each) --------------------------------------------


@packed(name="xenstore header")
class XsHeader(Packed):
    """§Header: big-endian whatever the endianness flag says."""

    ident: bytes = fld(Bytes(8), doc="'xenstore'", default=IDENT)
    version: int = fld(Int32ub, doc="1 or 2", values={1: "v1", 2: "v2"})
    flags: int = fld(Int32ub, doc="bit 0: records are big-endian", bits={0: "big_endian"})


@packed(name="GLOBAL_DATA")
class GlobalData(Packed):
    """§GLOBAL_DATA (live update only): the listening socket and evtchn fds."""

    rw_socket_fd: int = fld(Int32sl, doc="socket accepting connections, -1 if unused")
    evtchn_fd: int = fld(Int32sl, doc="fd of the event channel driver")


@packed(name="CONNECTION_DATA")
class ConnHead(Packed):
    """§CONNECTION_DATA, first 8 octets."""

    conn_id: int = fld(Int32ul, doc="non-zero id used by later records", lo=1)
    conn_type: int = fld(Int16ul, doc="0 shared ring, 1 socket", values={0: "ring", 1: "socket"})
    fields: int = fld(Int16ul, doc="optional fields after data", bits={0: "unique_id"})


@packed(name="CONNECTION_DATA")
class RingSpec(Packed):
    """§CONNECTION_DATA ``conn-spec`` of a shared-ring connection."""

    domid: int = fld(Int16ul, doc="domain owning the shared page")
    tdomid: int = fld(Int16ul, doc="SET_TARGET domain or DOMID_INVALID")
    evtchn: int = fld(Int32ul, doc="xenstored's interdomain port for domid")


@packed(name="CONNECTION_DATA")
class SocketSpec(Packed):
    """§CONNECTION_DATA ``conn-spec`` of a socket connection (live update only)."""

    socket_fd: int = fld(Int32sl, doc="fd of the connected socket")
    pad: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="CONNECTION_DATA")
class ConnLens(Packed):
    """§CONNECTION_DATA pending-data lengths (octets 16-23)."""

    in_data_len: int = fld(Int16ul, doc="read, not yet processed")
    out_resp_len: int = fld(Int16ul, doc="partial response not yet written")
    out_data_len: int = fld(Int32ul, doc="pending output, partial response included")


@packed(name="UNIQUE_ID")
class UniqueId(Packed):
    """§CONNECTION_DATA ``unique-id`` (``fields`` bit 0), 8-aligned after data."""

    unique_id: int = fld(Int64ul, doc="unique identifier of the domain")


@packed(name="WATCH_DATA")
class WatchHead(Packed):
    """§WATCH_DATA fixed part."""

    conn_id: int = fld(Int32ul, doc="connection that issued WATCH")
    wpath_len: int = fld(Int16ul, doc="wpath octets incl. NUL", lo=1)
    token_len: int = fld(Int16ul, doc="token octets incl. NUL", lo=1)


@packed(name="WATCH_DATA_EXTENDED")
class WatchExtHead(Packed):
    """§WATCH_DATA_EXTENDED fixed part (version 2 and up)."""

    conn_id: int = fld(Int32ul, doc="connection that issued WATCH")
    wpath_len: int = fld(Int16ul, doc="wpath octets incl. NUL", lo=1)
    token_len: int = fld(Int16ul, doc="token octets incl. NUL", lo=1)
    depth: int = fld(Int16ul, doc="levels below wpath to match, 0xffff unlimited")
    pad: ClassVar[Rsvd] = reserved(Int16ul)


@packed(name="TRANSACTION_DATA")
class TransactionData(Packed):
    """§TRANSACTION_DATA: a transaction pending on a connection."""

    conn_id: int = fld(Int32ul, doc="connection that issued TRANSACTION_START")
    tx_id: int = fld(Int32ul, doc="transaction id passed back to the domain")


@packed(name="NODE_DATA")
class NodeHead(Packed):
    """§NODE_DATA fixed part."""

    conn_id: int = fld(Int32ul, doc="non-zero: node of a pending transaction")
    tx_id: int = fld(Int32ul, doc="transaction id (ignored when conn_id is 0)")
    path_len: int = fld(Int16ul, doc="path octets incl. NUL", lo=1)
    value_len: int = fld(Int16ul, doc="value octets (0 for a deleted node)")
    access: int = fld(Int16ul, doc="pending node: read/written", bits={0: "read", 1: "written"})
    perm_count: int = fld(Int16ul, doc="permission specifiers (0: deleted in a transaction)")


#: §NODE_DATA permission letters, as for SET_PERMS.
PERM_LETTERS = {ord("w"): "w", ord("r"): "r", ord("b"): "b", ord("n"): "n"}


@packed(name="NODE_DATA")
class NodePerm(Packed):
    """§NODE_DATA permission specifier (perm1 names the owner)."""

    perm: int = fld(Int8ul, doc="ASCII w, r, b or n", values=PERM_LETTERS)
    flags: int = fld(Int8ul, doc="bit 0: stale, ignore when checking", bits={0: "stale"})
    domid: int = fld(Int16ul, doc="domain the permission relates to")


@packed(name="GLOBAL_QUOTA_DATA")
class QuotaHead(Packed):
    """§GLOBAL_QUOTA_DATA fixed part."""

    n_dom_quota: int = fld(Int16ul, doc="per-domain default quota values")
    n_glob_quota: int = fld(Int16ul, doc="global-only quota values")


@packed(name="DOMAIN_DATA")
class DomainHead(Packed):
    """§DOMAIN_DATA fixed part."""

    domain_id: int = fld(Int16ul, doc="domain this record belongs to")
    n_quota: int = fld(Int16ul, doc="quota values")
    features: int = fld(Int32ul, doc="ring-page feature field (version 2 and up, else 0)")


@packed(name="quota-val")
class QuotaVal(Packed):
    """One §GLOBAL_QUOTA_DATA / §DOMAIN_DATA ``quota-val`` (0: unlimited)."""

    value: int = fld(Int32ul, doc="quota value, 0 unlimited")


# --- byte orders --------------------------------------------------------------------

_STRUCTS: dict[tuple[str, str], struct.Struct] = {}


def st(layout: Layout, order: str) -> struct.Struct:
    """The :class:`struct.Struct` of ``layout`` in byte order ``order`` ('<' or '>').

    Derived from the one declaration: same fields, same offsets, the stream's
    byte order (§Header flags bit 0).
    """
    key = (layout.name + "/" + layout.cls.__name__, order)
    st = _STRUCTS.get(key)
    if st is None:
        st = struct.Struct(order + "".join(fi.fmt for fi in layout.fields))
        _STRUCTS[key] = st
    return st


class Entries:
    """A run of fixed-size entries (permissions, quota values) over raw bytes.

    Keeps the raw ``memoryview`` and its byte order; equality compares the
    values, so the same permissions read from a little- and a big-endian
    stream are equal. :meth:`array` is a zero-copy numpy view.

    >>> e = Entries.of(QuotaVal, [QuotaVal(value=7), QuotaVal(value=0)])
    >>> len(e), e.column("value")
    (2, (7, 0))
    """

    __slots__ = ("layout", "order", "raw")

    def __init__(self, layout: Layout, raw: Buf, order: str = "<") -> None:
        self.layout = layout
        self.raw = raw if isinstance(raw, memoryview) else memoryview(raw)
        self.order = order

    @classmethod
    def of(cls, packed_cls: Any, items: Iterable[Any], order: str = "<") -> Entries:
        """Entries of ``packed_cls`` values (``NodePerm``, ``QuotaVal``)."""
        layout: Layout = packed_cls.LAYOUT
        packer = st(layout, order)
        raw = b"".join(packer.pack(*layout.as_tuple(v)) for v in items)
        return cls(layout, raw, order)

    def __len__(self) -> int:
        return self.raw.nbytes // self.layout.size

    def tuples(self) -> list[tuple[Any, ...]]:
        """Every entry as a raw tuple (one C-level ``iter_unpack``)."""
        return list(st(self.layout, self.order).iter_unpack(self.raw))

    def __iter__(self) -> Iterator[Any]:
        make = self.layout.from_tuple
        return (make(t) for t in self.tuples())

    def __getitem__(self, i: int) -> Any:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        return self.layout.from_tuple(
            st(self.layout, self.order).unpack_from(self.raw, (i % n) * self.layout.size)
        )

    def column(self, name: str) -> tuple[Any, ...]:
        """One field of every entry."""
        i = self.layout.names.index(name)
        return tuple(t[i] for t in self.tuples())

    def array(self) -> Any:
        """A zero-copy read-only numpy structured array in the stream's byte order."""
        import numpy as np

        dt = self.layout.dtype if self.order == "<" else self.layout.dtype.newbyteorder(">")
        return np.frombuffer(self.raw, dtype=dt)

    def raw_for(self, order: str) -> Buf:
        """The entries' bytes in byte order ``order`` (the raw view when it matches)."""
        if order == self.order:
            return self.raw
        packer = st(self.layout, order)
        return b"".join(packer.pack(*t) for t in self.tuples())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entries):
            return NotImplemented
        if self.layout is not other.layout:
            return False
        if self.order == other.order:
            return bytes(self.raw) == bytes(other.raw)
        return self.tuples() == other.tuples()

    def __hash__(self) -> int:
        return hash(tuple(self.tuples()))

    def __repr__(self) -> str:
        return f"Entries({self.layout.cls.__name__}, {self.tuples()!r})"


# --- record values ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ConnectionData:
    """§CONNECTION_DATA: one connection with its pending data.

    ``spec`` is a :class:`RingSpec` (``conn-type`` 0) or :class:`SocketSpec`
    (1); ``in_data`` / ``out_data`` are the pending octets (zero-copy views
    when decoded); ``unique_id`` is present when ``fields`` bit 0 is set.
    """

    conn_id: int
    spec: RingSpec | SocketSpec
    in_data: Buf = b""
    out_data: Buf = b""
    out_resp_len: int = 0
    unique_id: int | None = None

    @property
    def conn_type(self) -> int:
        return CONN_RING if isinstance(self.spec, RingSpec) else CONN_SOCKET


@dataclass(frozen=True, kw_only=True)
class WatchData:
    """§WATCH_DATA (``depth`` None) or §WATCH_DATA_EXTENDED (``depth`` set).

    ``wpath`` and ``token`` exclude their NUL terminators.
    """

    conn_id: int
    wpath: Buf
    token: Buf
    depth: int | None = None

    @property
    def type(self) -> XsType:
        return XsType.WATCH_DATA if self.depth is None else XsType.WATCH_DATA_EXTENDED


@dataclass(frozen=True, kw_only=True)
class NodeData:
    """§NODE_DATA: a committed node (``conn_id`` 0) or a transaction's pending node.

    ``path`` excludes its NUL terminator; ``value`` may hold NUL octets.
    """

    path: Buf
    value: Buf = b""
    # Annotated with the entry declaration: the JSON form (xenlu.tools.jsonform)
    # reads a run of entries back through it.
    perms: Annotated[Entries, NodePerm] = field(
        default_factory=lambda: Entries(NodePerm.LAYOUT, b"")
    )
    conn_id: int = 0
    tx_id: int = 0
    access: int = 0

    @property
    def owner(self) -> int | None:
        """perm1's domid: the domain owning the node (None without permissions)."""
        if not len(self.perms):
            return None
        return int(self.perms[0].domid)

    @property
    def pending(self) -> bool:
        return self.conn_id != 0


@dataclass(frozen=True, kw_only=True)
class GlobalQuotaData:
    """§GLOBAL_QUOTA_DATA: ``values`` (per-domain ones first) and their ``names``.

    ``names`` is the raw block of NUL-terminated names (exact bytes).
    """

    n_dom_quota: int
    values: Annotated[Entries, QuotaVal]
    names: Buf

    @property
    def quota(self) -> dict[str, int]:
        """name → value."""
        return dict(zip(_split_names(self.names), self.values.column("value"), strict=True))


@dataclass(frozen=True, kw_only=True)
class DomainData:
    """§DOMAIN_DATA: one domain's quota and (version 2) ``features``."""

    domain_id: int
    values: Annotated[Entries, QuotaVal]
    names: Buf
    features: int = 0

    @property
    def quota(self) -> dict[str, int]:
        """name → value."""
        return dict(zip(_split_names(self.names), self.values.column("value"), strict=True))


def quota_names(names: Sequence[str]) -> bytes:
    """The ``quota-names`` block of ``names`` (each NUL-terminated)."""
    return b"".join(n.encode() + b"\0" for n in names)


def _split_names(block: Buf) -> list[str]:
    return [n.decode("latin-1") for n in bytes(block).split(b"\0")[:-1]]
