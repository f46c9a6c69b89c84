"""What the C xenstored really writes for WATCH_DATA_EXTENDED, and what it reads back.

``docs/designs/xenstore-migration.md`` §WATCH_DATA_EXTENDED puts ``depth`` at
octet 8, two octets of ``pad`` at 10 and ``wpath`` at 12. Xen's C xenstored
(``tools/xenstored/watch.c`` and ``xenstore_state.h`` at Xen c447b73, since
4.22) disagrees three ways (see ``docs/xenstore-stream.md``):

* its writer, ``dump_state_watches``, sets the record length from the size of
  ``struct xs_state_watch_ext`` (12 octets: 10 of fields, 2 of tail padding)
  but writes only ``sizeof(struct xs_state_watch)`` (8) octets of it: no
  ``depth``, no ``pad``; ``wpath`` starts at octet 8; the zero padding
  after the token aligns what was written, not what the length says;
* its reader, ``read_state_watch_ext``, takes ``depth`` from octets 8-9 and
  the path from octet 10 (the struct's flexible array member), the token
  from ``10 + wpath-len``.

So with ``P`` = wpath-len and ``T`` = token-len the length field says
``round8(12 + P + T)`` while ``round8(8 + P + T)`` octets follow the header.
They agree when ``(P + T) mod 8`` is 1, 2, 3 or 4; for 0, 5, 6 and 7 the
length is 8 octets longer than what was written, and the record swallows the
next record's header.

xenlu reads and writes the document's layout; :func:`explain` recognises the
C writer's bytes so the error says what happened. :func:`c_watch_ext_record`
makes those bytes (the reproducer of ``tests/golden/xenstore``).

>>> rec = c_watch_ext_record(1, b"/local/domain/1/device", b"tok", "<")
>>> len(rec), rec[:8].hex()
(48, '0800000028000000')
"""

from __future__ import annotations

import struct
from typing import Any

from xenlu.core.errors import quote_bytes

__all__ = ["c_reader_view", "c_watch_ext_record", "explain"]


def _round8(n: int) -> int:
    return (n + 7) & ~7


def c_watch_ext_record(conn_id: int, wpath: bytes, token: bytes, order: str = "<") -> bytes:
    """Header and body exactly as the C ``dump_state_watches`` writes a watch with a depth.

    ``wpath`` and ``token`` exclude their NUL. The depth is not an argument:
    the C writer never writes it. The result ends 8-aligned (``dump_state_align``).
    """
    p, t = len(wpath) + 1, len(token) + 1
    length = _round8(12 + p + t)
    written = struct.pack(order + "IHH", conn_id, p, t) + wpath + b"\0" + token + b"\0"
    written += bytes(-len(written) & 7)
    return struct.pack(order + "II", 8, length) + written


def _cstr(b: bytes, at: int) -> bytes | None:
    nul = b.find(0, at)
    return None if nul < 0 else b[at:nul]


def c_reader_view(body: Any, order: str = "<") -> dict[str, Any]:
    """What C ``read_state_watch_ext`` takes from a WATCH_DATA_EXTENDED body.

    ``depth`` from octets 8-9, the path from octet 10, the token from
    ``10 + wpath-len`` (None where the string would run past the body).
    """
    b = bytes(body)
    _cid, p, _t = struct.unpack_from(order + "IHH", b, 0)
    (depth,) = struct.unpack_from(order + "H", b, 8) if len(b) >= 10 else (None,)
    return {"depth": depth, "path": _cstr(b, 10), "token": _cstr(b, 10 + p)}


def explain(body: Any, order: str, ctx: Any = None) -> str | None:
    """The diagnosis when ``body`` is the C writer's WATCH_DATA_EXTENDED, else None.

    ``ctx`` (a :class:`~xenlu.core.registry.Ctx` whose ``extra["buf"]`` is the
    whole input) lets the message say what the C reader takes as the next
    record header when the length overshoots.
    """
    b = bytes(body)
    n = len(b)
    if n < 8:
        return None
    _cid, p, t = struct.unpack_from(order + "IHH", b, 0)
    if p < 1 or t < 1:
        return None
    written = _round8(8 + p + t)
    if n != _round8(12 + p + t) or written > n:
        return None
    path, token = b[8 : 8 + p], b[8 + p : 8 + p + t]
    if path.find(0) != p - 1 or token.find(0) != t - 1:
        return None
    if b[8 + p + t : written] != bytes(written - 8 - p - t):
        return None
    seen = c_reader_view(b, order)
    msg = (
        "WATCH_DATA_EXTENDED written by the C xenstored (dump_state_watches writes only the "
        "8-octet WATCH_DATA fixed part: no depth, no pad, wpath at octet 8 instead of 12); "
        f"the watch is {quote_bytes(path[:-1])} token {quote_bytes(token[:-1])} and its depth "
        "is not in the stream; a C restore (read_state_watch_ext) would take depth "
        f"{seen['depth']} from the path's first two octets, path {quote_bytes(seen['path'])} "
        f"and token {quote_bytes(seen['token'])}"
    )
    if n == written + 8:
        (ntype, nlen) = struct.unpack_from(order + "II", b, written)
        msg += (
            f"; (wpath-len + token-len) mod 8 = {(p + t) % 8}, so the length counts 8 octets "
            f"that were never written and the next record's header (type {ntype:#x}, length "
            f"{nlen:#x}) lies inside this body"
        )
        buf = ctx.extra.get("buf") if ctx is not None else None
        if buf is not None and ctx.offset + n + 8 <= len(buf):
            ct, cl = struct.unpack_from(order + "II", buf, ctx.offset + n)
            msg += (
                f"; the C reader takes the next 8 octets as a header: type {ct:#x} length {cl:#x}"
            )
            if ct == 0:
                msg += " (END: it stops there and restores none of the later records)"
    return msg
