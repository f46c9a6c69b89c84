"""Bodies of the xenstored migration stream's records: decode, check, encode, register.

Each function takes the stream's byte order (``'<'`` or ``'>'``, §Header
flags bit 0) and works through the declarations of
:mod:`xenlu.xenstore.records`. Variable parts are returned as zero-copy
slices of the body. Importing this module registers the records in
:data:`xenlu.core.registry.XENSTORE`.

>>> from xenlu.xenstore.records import Entries, NodeData, NodePerm
>>> owner = NodePerm(perm=ord("n"), flags=0, domid=0)
>>> n = NodeData(path=b"/local", value=b"", perms=Entries.of(NodePerm, [owner]))
>>> body = b"".join(encode_body(XsType.NODE_DATA, n, "<"))
>>> decode_body(XsType.NODE_DATA, memoryview(body), "<") == n
True
"""

from __future__ import annotations

import struct
from typing import Any

from xenlu.core.errors import EncodeError, FramingError, GrammarError, RecordError
from xenlu.core.layout import Layout, Violation
from xenlu.core.registry import Ctx, RecordSpec
from xenlu.xenstore.records import (
    CONN_RING,
    Buf,
    ConnectionData,
    ConnHead,
    ConnLens,
    DomainData,
    DomainHead,
    Entries,
    GlobalData,
    GlobalQuotaData,
    NodeData,
    NodeHead,
    NodePerm,
    QuotaHead,
    QuotaVal,
    RingSpec,
    SocketSpec,
    TransactionData,
    UniqueId,
    WatchData,
    WatchExtHead,
    WatchHead,
    XsType,
    st,
)

__all__ = ["check_length", "decode_body", "encode_body", "payload_len"]

# --- decoding -----------------------------------------------------------------------

_HEADS: dict[XsType, Layout] = {
    XsType.GLOBAL_DATA: GlobalData.LAYOUT,
    XsType.WATCH_DATA: WatchHead.LAYOUT,
    XsType.WATCH_DATA_EXTENDED: WatchExtHead.LAYOUT,
    XsType.TRANSACTION_DATA: TransactionData.LAYOUT,
    XsType.NODE_DATA: NodeHead.LAYOUT,
    XsType.GLOBAL_QUOTA_DATA: QuotaHead.LAYOUT,
    XsType.DOMAIN_DATA: DomainHead.LAYOUT,
}


def _round8(n: int) -> int:
    return (n + 7) & ~7


def _fixed(layout: Layout, body: memoryview, at: int, ctx: Ctx, order: str) -> tuple[Any, ...]:
    """The raw tuple of ``layout`` at body offset ``at``, rule-checked."""
    if at + layout.size > len(body):
        ctx.fail_length(f">= {at + layout.size} octets", "record too short for its fixed part")
    t = st(layout, order).unpack_from(body, at)
    v = layout.checker(None)(t)
    if v is not None:
        _fail_violation(ctx, v, at)
    return t


def _fail_violation(ctx: Ctx, v: Violation, at: int) -> None:
    ctx.fail(v.message, at=at + v.offset, field=v.field, expected=v.expected, got=v.got)


def _cstring(body: memoryview, at: int, n: int, ctx: Ctx, name: str) -> memoryview:
    """The ``n`` octets at ``at`` as a C string: NUL last, no NUL before (returned without NUL)."""
    s = body[at : at + n]
    # bytes.find runs in C: no per-byte Python loop over paths and tokens.
    nul = bytes(s).find(0)
    if nul != n - 1:
        if nul < 0:
            ctx.fail(
                "not NUL-terminated",
                at=at + n - 1,
                field=name,
                expected=0,
                got=body[at + n - 1],
            )
        ctx.fail(
            f"NUL inside {name}: a C reader stops there",
            at=at + nul,
            field=name,
            expected=f"first NUL at octet {n - 1}",
            got=f"NUL at octet {nul}",
        )
    return s[: n - 1]


def payload_len(rtype: int, body: memoryview, order: str) -> int | None:
    """Octets of the record's payload (fixed + variable parts), None if unknown type."""

    if rtype == XsType.END:
        return 0
    if rtype == XsType.CONNECTION_DATA:
        if len(body) < 24:
            return 24
        in_len, _resp, out_len = st(ConnLens.LAYOUT, order).unpack_from(body, 16)
        n: int = 24 + in_len + out_len
        (fields,) = struct.unpack_from(order + "H", body, 6)
        return _round8(n) + 8 if fields & 1 else n
    try:
        layout = _HEADS[XsType(rtype)]
    except (ValueError, KeyError):
        return None
    if len(body) < layout.size:
        return layout.size
    t: tuple[int, ...] = st(layout, order).unpack_from(body, 0)
    if rtype in (XsType.WATCH_DATA, XsType.WATCH_DATA_EXTENDED):
        return layout.size + t[1] + t[2]
    if rtype == XsType.NODE_DATA:
        return 16 + 4 * t[5] + t[2] + t[3]
    if rtype in (XsType.GLOBAL_QUOTA_DATA, XsType.DOMAIN_DATA):
        n = t[0] + t[1] if rtype == XsType.GLOBAL_QUOTA_DATA else t[1]
        at = layout.size + 4 * n
        if at > len(body):
            return at
        return at + _names_len(body, at, n)
    return layout.size


def _names_len(body: memoryview, at: int, n: int) -> int:
    """Octets of ``n`` NUL-terminated names at ``at`` (up to the body's end if fewer)."""
    raw = bytes(body[at:])
    pos = 0
    for _ in range(n):  # one C-level find per name, never per byte
        nul = raw.find(0, pos)
        if nul < 0:
            return len(raw) + 1  # one more than there is: the length check reports it
        pos = nul + 1
    return pos


_NODE = NodeHead.LAYOUT
_NODE_ST = {"<": st(_NODE, "<"), ">": st(_NODE, ">")}
_NODE_CHECK = _NODE.checker(None)
_PERM_LETTERS = frozenset(b"wrbn")
_ZEROS = bytes(8)


def _new(cls: type[Any], fields: dict[str, Any]) -> Any:
    """A frozen record value without its ``__init__``: the decoder has every
    field already checked, and this is the per-node hot path (a frozen
    dataclass ``__init__`` costs several times more)."""
    obj = object.__new__(cls)
    obj.__dict__.update(fields)
    return obj


def _check_len(body: memoryview, need: int, ctx: Ctx) -> None:
    """``len`` is the payload or the payload rounded up to 8; padding inside is zero."""
    n = len(body)
    if n == need:
        return
    if n != (need + 7) & ~7:
        ctx.fail_length(
            f"{need} (the sub-lengths) or {_round8(need)} (rounded up to 8)",
            "record length does not match its sub-lengths",
        )
    if body[need:] != _ZEROS[: n - need]:
        first = next(i for i in range(need, n) if body[i])
        ctx.fail(
            "padding not zero",
            at=first,
            field="padding",
            expected=0,
            got=body[first],
            cls=FramingError,
        )


def check_length(rtype: int, body: memoryview, ctx: Ctx, order: str) -> bool:
    """Check ``len`` against the sub-lengths; True when ``len`` includes the padding.

    §Records: ``len`` is the length of the body and 0-7 zero octets of padding
    follow. ``xenstore_state.h`` ("All records have a length of a multiple of
    8 bytes") and the C writers put that padding inside ``len``. Both are
    accepted: ``len`` is the payload or the payload rounded up to 8, and
    padding inside ``len`` must be zero (§Records NOTE).
    """
    need = payload_len(rtype, body, order)
    assert need is not None
    _check_len(body, need, ctx)
    n = len(body)
    return n != need or n % 8 == 0


def _decode_connection(body: memoryview, ctx: Ctx, order: str) -> ConnectionData:
    conn_id, conn_type, fields = _fixed(ConnHead.LAYOUT, body, 0, ctx, order)
    spec_layout = RingSpec.LAYOUT if conn_type == CONN_RING else SocketSpec.LAYOUT
    spec = spec_layout.from_tuple(_fixed(spec_layout, body, 8, ctx, order))
    in_len, resp_len, out_len = _fixed(ConnLens.LAYOUT, body, 16, ctx, order)
    check_length(XsType.CONNECTION_DATA, body, ctx, order)
    if resp_len > out_len:
        ctx.fail(
            "partial response longer than the pending output",
            at=18,
            field="out_resp_len",
            expected=f"<= out_data_len {out_len}",
            got=resp_len,
        )
    end = 24 + in_len + out_len
    unique_id = None
    if fields & 1:
        at = _round8(end)
        if bytes(body[end:at]) != bytes(at - end):
            ctx.fail("padding before unique-id not zero", at=end, field="padding", cls=FramingError)
        (unique_id,) = st(UniqueId.LAYOUT, order).unpack_from(body, at)
    return ConnectionData(
        conn_id=conn_id,
        spec=spec,
        in_data=body[24 : 24 + in_len],
        out_data=body[24 + in_len : end],
        out_resp_len=resp_len,
        unique_id=unique_id,
    )


def _decode_watch(body: memoryview, ctx: Ctx, order: str, ext: bool) -> WatchData:
    layout = WatchExtHead.LAYOUT if ext else WatchHead.LAYOUT
    if ext:
        if ctx.extra.get("version", 2) < 2 and ctx.extra.get("strict", True):
            raise GrammarError(
                "WATCH_DATA_EXTENDED is valid only in version 2 and later",
                offset=ctx.header,
                record_index=ctx.index,
                record_type=ctx.type,
                family="xenstore",
                field="type",
                expected="stream version >= 2",
                got=ctx.extra.get("version"),
            )
        from xenlu.xenstore.cwriter import explain

        try:
            return _decode_watch_fields(body, ctx, order, layout)
        except RecordError as exc:
            why = explain(body, order, ctx)
            if why is not None:
                raise RecordError(
                    why,
                    offset=ctx.offset + 8,
                    record_index=ctx.index,
                    record_type=ctx.type,
                    field="depth",
                    family="xenstore",
                ) from exc
            raise
    return _decode_watch_fields(body, ctx, order, layout)


def _decode_watch_fields(body: memoryview, ctx: Ctx, order: str, layout: Layout) -> WatchData:
    t = _fixed(layout, body, 0, ctx, order)
    conn_id, plen, tlen = t[0], t[1], t[2]
    check_length(ctx.type, body, ctx, order)
    at = layout.size
    wpath = _cstring(body, at, plen, ctx, "wpath")
    token = _cstring(body, at + plen, tlen, ctx, "token")
    return WatchData(conn_id=conn_id, wpath=wpath, token=token, depth=t[3] if len(t) > 3 else None)


def _decode_node(body: memoryview, ctx: Ctx, order: str) -> NodeData:
    if len(body) < 16:
        _fixed(_NODE, body, 0, ctx, order)
    t = _NODE_ST[order].unpack_from(body, 0)
    if _NODE_CHECK(t) is not None:
        _fixed(_NODE, body, 0, ctx, order)  # raises the located violation
    conn_id, tx_id, plen, vlen, access, nperm = t
    at = 16 + 4 * nperm
    _check_len(body, at + plen + vlen, ctx)
    praw = body[16:at]
    # Permission letters and flags (§NODE_DATA perm, flags): one specifier is
    # checked directly, more with C-level translate over the strided columns;
    # no Python loop per specifier.
    if nperm != 1 or praw[0] not in _PERM_LETTERS or praw[1] > 1:
        _check_perms(praw, ctx)
    path = _cstring(body, at, plen, ctx, "path")
    return _new(  # type: ignore[no-any-return]
        NodeData,
        {
            "path": path,
            "value": body[at + plen : at + plen + vlen],
            "perms": Entries(NodePerm.LAYOUT, praw, order),
            "conn_id": conn_id,
            "tx_id": tx_id,
            "access": access,
        },
    )


def _check_perms(praw: memoryview, ctx: Ctx) -> None:
    letters = bytes(praw[0::4])
    bad = letters.translate(None, b"wrbn")
    if bad:
        i = letters.index(bad[0])
        ctx.fail(
            "permission letter not w, r, b or n",
            at=16 + 4 * i,
            field=f"perms[{i}].perm",
            expected="one of 'w', 'r', 'b', 'n'",
            got=bad[0],
        )
    flags = bytes(praw[1::4])
    bad = flags.translate(None, b"\0\1")
    if bad:
        i = flags.index(bad[0])
        ctx.fail(
            "permission flag bits not valid",
            at=17 + 4 * i,
            field=f"perms[{i}].flags",
            expected="only bits 0x1",
            got=bad[0],
        )


def _decode_quota(body: memoryview, ctx: Ctx, order: str, glob: bool) -> Any:
    layout = QuotaHead.LAYOUT if glob else DomainHead.LAYOUT
    t = _fixed(layout, body, 0, ctx, order)
    n = t[0] + t[1] if glob else t[1]
    at = layout.size + 4 * n
    if at > len(body):
        ctx.fail_length(
            f">= {at} octets for {n} quota values", "record too short for its quota values"
        )
    names_at = at
    nlen = _names_len(body, at, n)
    if names_at + nlen > len(body):
        ctx.fail(
            "fewer quota names than quota values",
            at=names_at,
            field="quota_names",
            expected=f"{n} NUL-terminated names",
            got=bytes(body[names_at:]).count(0),
        )
    check_length(ctx.type, body, ctx, order)
    values = Entries(QuotaVal.LAYOUT, body[layout.size : at], order)
    names = body[names_at : names_at + nlen]
    if glob:
        return GlobalQuotaData(n_dom_quota=t[0], values=values, names=names)
    features = t[2]
    if features and ctx.extra.get("version", 2) < 2:
        # §DOMAIN_DATA: features only valid for version 2 and later; §Records
        # NOTE: fields not valid in the used version must be written as zero.
        ctx.fail(
            "features is valid only in version 2 and later",
            at=4,
            field="features",
            expected=0,
            got=features,
        )
    return DomainData(domain_id=t[0], features=features, values=values, names=names)


def _decode_fixed(body: memoryview, ctx: Ctx, order: str) -> Any:
    layout = _HEADS[XsType(ctx.type)]
    v = layout.from_tuple(_fixed(layout, body, 0, ctx, order))
    _check_len(body, layout.size, ctx)
    return v


def _decode_end(body: memoryview, ctx: Ctx, order: str) -> None:
    if len(body):
        ctx.fail_length(0, "END has no body")


_DECODERS: dict[int, Any] = {
    XsType.END: _decode_end,
    XsType.GLOBAL_DATA: _decode_fixed,
    XsType.CONNECTION_DATA: _decode_connection,
    XsType.WATCH_DATA: lambda b, c, o: _decode_watch(b, c, o, False),
    XsType.TRANSACTION_DATA: _decode_fixed,
    XsType.NODE_DATA: _decode_node,
    XsType.GLOBAL_QUOTA_DATA: lambda b, c, o: _decode_quota(b, c, o, True),
    XsType.DOMAIN_DATA: lambda b, c, o: _decode_quota(b, c, o, False),
    XsType.WATCH_DATA_EXTENDED: lambda b, c, o: _decode_watch(b, c, o, True),
}


def decode_body(rtype: int, body: memoryview, order: str, ctx: Ctx | None = None) -> Any:
    """Decode and check the body of a known record type in byte order ``order``."""
    if ctx is None:
        ctx = Ctx(None, rtype, 8, len(body), family="xenstore")
    return _DECODERS[rtype](body, ctx, order)


# --- encoding -----------------------------------------------------------------------


def _pack(layout: Layout, value: Any, order: str) -> bytes:
    try:
        return st(layout, order).pack(*layout.as_tuple(value))
    except struct.error:
        return layout.pack(value)  # raises EncodeError naming the field


def _put(layout: Layout, order: str, *values: int) -> bytes:
    try:
        return st(layout, order).pack(*values)
    except struct.error as exc:
        raise EncodeError(f"{layout.name}: a length or count does not fit ({exc})") from None


def encode_body(rtype: int, value: Any, order: str) -> list[Buf]:
    """The body parts (no header, no final padding) of a known record in ``order``."""
    t = XsType(rtype)
    if t == XsType.END:
        return []
    if t in (XsType.GLOBAL_DATA, XsType.TRANSACTION_DATA):
        return [_pack(_HEADS[t], value, order)]
    if t == XsType.CONNECTION_DATA:
        v: Any = value
        fields = 0 if v.unique_id is None else 1
        in_n, out_n = memoryview(v.in_data).nbytes, memoryview(v.out_data).nbytes
        parts: list[Buf] = [
            _put(ConnHead.LAYOUT, order, v.conn_id, v.conn_type, fields),
            _pack(type(v.spec).LAYOUT, v.spec, order),
            _put(ConnLens.LAYOUT, order, in_n, v.out_resp_len, out_n),
            v.in_data,
            v.out_data,
        ]
        if v.unique_id is not None:
            n = 24 + in_n + out_n
            parts.append(bytes(_round8(n) - n))
            parts.append(_put(UniqueId.LAYOUT, order, v.unique_id))
        return parts
    if t in (XsType.WATCH_DATA, XsType.WATCH_DATA_EXTENDED):
        if value.type != t:
            raise EncodeError(f"{t.name} record holds a watch with depth {value.depth!r}")
        p, k = memoryview(value.wpath).nbytes + 1, memoryview(value.token).nbytes + 1
        head = (
            _put(WatchHead.LAYOUT, order, value.conn_id, p, k)
            if value.depth is None
            else _put(WatchExtHead.LAYOUT, order, value.conn_id, p, k, value.depth, 0)
        )
        return [head, value.wpath, b"\0", value.token, b"\0"]
    if t == XsType.NODE_DATA:
        nd: Any = value
        p = memoryview(nd.path).nbytes + 1
        head = _put(
            NodeHead.LAYOUT,
            order,
            nd.conn_id,
            nd.tx_id,
            p,
            memoryview(nd.value).nbytes,
            nd.access,
            len(nd.perms),
        )
        return [head, nd.perms.raw_for(order), nd.path, b"\0", nd.value]
    if t == XsType.GLOBAL_QUOTA_DATA:
        q: Any = value
        total = len(q.values)
        head = _put(QuotaHead.LAYOUT, order, q.n_dom_quota, total - q.n_dom_quota)
        return [head, q.values.raw_for(order), q.names]
    d: Any = value
    head = _put(DomainHead.LAYOUT, order, d.domain_id, len(d.values), d.features)
    return [head, d.values.raw_for(order), d.names]


# --- registration -------------------------------------------------------------------

_DOCS = {
    XsType.END: "end of the stream (§END)",
    XsType.GLOBAL_DATA: "listening socket and evtchn fds (§GLOBAL_DATA)",
    XsType.CONNECTION_DATA: "a connection and its pending data (§CONNECTION_DATA)",
    XsType.WATCH_DATA: "a registered watch (§WATCH_DATA)",
    XsType.TRANSACTION_DATA: "a pending transaction (§TRANSACTION_DATA)",
    XsType.NODE_DATA: "a committed or pending node (§NODE_DATA)",
    XsType.GLOBAL_QUOTA_DATA: "global quota settings (§GLOBAL_QUOTA_DATA)",
    XsType.DOMAIN_DATA: "one domain's quota and features (§DOMAIN_DATA)",
    XsType.WATCH_DATA_EXTENDED: "a watch with a depth, version 2 (§WATCH_DATA_EXTENDED)",
}
_VALUE_TYPES: dict[XsType, Any] = {
    XsType.END: type(None),
    XsType.GLOBAL_DATA: GlobalData,
    XsType.CONNECTION_DATA: ConnectionData,
    XsType.WATCH_DATA: WatchData,
    XsType.TRANSACTION_DATA: TransactionData,
    XsType.NODE_DATA: NodeData,
    XsType.GLOBAL_QUOTA_DATA: GlobalQuotaData,
    XsType.DOMAIN_DATA: DomainData,
    XsType.WATCH_DATA_EXTENDED: WatchData,
}
_LAYOUTS: dict[XsType, tuple[Layout, ...]] = {
    XsType.CONNECTION_DATA: (
        ConnHead.LAYOUT,
        RingSpec.LAYOUT,
        SocketSpec.LAYOUT,
        ConnLens.LAYOUT,
        UniqueId.LAYOUT,
    ),
    XsType.NODE_DATA: (NodeHead.LAYOUT, NodePerm.LAYOUT),
    XsType.GLOBAL_QUOTA_DATA: (QuotaHead.LAYOUT, QuotaVal.LAYOUT),
    XsType.DOMAIN_DATA: (DomainHead.LAYOUT, QuotaVal.LAYOUT),
}


def _spec(t: XsType) -> RecordSpec:
    def dec(body: memoryview, ctx: Ctx) -> Any:
        return decode_body(t, body, ctx.extra.get("order", "<"), ctx)

    def enc(value: Any) -> list[Buf]:
        return encode_body(t, value, "<")

    layouts = _LAYOUTS.get(t) or ((_HEADS[t],) if t in _HEADS else ())
    return RecordSpec(
        family="xenstore",
        type=int(t),
        name=t.name,
        decode=dec,
        encode=enc,
        value_type=_VALUE_TYPES[t],
        doc=_DOCS[t],
        layouts=layouts,
    )


#: The family's one explicit list of records (``registry.XENSTORE`` adds it on
#: first use; importing this module registers nothing).
RECORDS: tuple[RecordSpec, ...] = tuple(_spec(t) for t in XsType)
