"""Write the xenstore golden streams from the design document's tables, with plain struct.

Run once (``python tests/golden/xenstore/make_xenstore_golden.py``); the
streams are then frozen. This writer does not use xenlu's encoder: every
octet comes from the layouts of ``docs/designs/xenstore-migration.md`` (Xen
c447b73) as written below, so the golden test checks xenlu's decoder and
encoder against an independent reading of the document. The expected JSON
is xenlu's ``stream_json`` of the decoded stream, reviewed by hand when made.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

HERE = Path(__file__).parent
DOMID_INVALID = 0x7FF4
Perms = tuple[tuple[str, int, int], ...]


def r8(n: int) -> int:
    return (n + 7) & ~7


class W:
    """One stream: §Header big-endian, records in byte order ``o``."""

    def __init__(self, version: int, o: str, padded: bool = True) -> None:
        self.o, self.padded = o, padded
        self.out = b"xenstore" + struct.pack(">II", version, int(o == ">"))

    def rec(self, rtype: int, body: bytes) -> None:
        # §Records: type, len, body, 0-7 zero octets of padding. The C
        # writers count the padding in len (padded=True); the document's
        # wording does not (padded=False).
        pad = bytes(-len(body) & 7)
        if self.padded:
            self.out += struct.pack(self.o + "II", rtype, len(body) + len(pad)) + body + pad
        else:
            self.out += struct.pack(self.o + "II", rtype, len(body)) + body + pad

    def end(self) -> bytes:
        return self.out + struct.pack(self.o + "II", 0, 0)

    # §GLOBAL_DATA
    def glob(self, rw_fd: int, ev_fd: int) -> None:
        self.rec(1, struct.pack(self.o + "ii", rw_fd, ev_fd))

    # §CONNECTION_DATA with the shared-ring or socket conn-spec
    def conn(self, cid: int, ring: tuple[int, int, int] | None, sock_fd: int = -1,
             in_d: bytes = b"", out_d: bytes = b"", resp: int = 0,
             uid: int | None = None) -> None:  # fmt: skip
        o = self.o
        fields = 0 if uid is None else 1
        spec = struct.pack(o + "HHI", *ring) if ring else struct.pack(o + "iI", sock_fd, 0)
        b = struct.pack(o + "IHH", cid, 0 if ring else 1, fields) + spec
        b += struct.pack(o + "HHI", len(in_d), resp, len(out_d)) + in_d + out_d
        if uid is not None:
            b += bytes(-len(b) & 7) + struct.pack(o + "Q", uid)
        self.rec(2, b)

    # §WATCH_DATA / §WATCH_DATA_EXTENDED
    def watch(self, cid: int, path: bytes, token: bytes, depth: int | None = None) -> None:
        o, p, t = self.o, path + b"\0", token + b"\0"
        if depth is None:
            self.rec(3, struct.pack(o + "IHH", cid, len(p), len(t)) + p + t)
        else:
            self.rec(8, struct.pack(o + "IHHHH", cid, len(p), len(t), depth, 0) + p + t)

    # §TRANSACTION_DATA
    def tx(self, cid: int, txid: int) -> None:
        self.rec(4, struct.pack(self.o + "II", cid, txid))

    # §NODE_DATA with permission specifiers (perm, flags, domid)
    def node(self, path: bytes, value: bytes = b"", perms: Perms = (("n", 0, 0),),
             cid: int = 0, txid: int = 0, access: int = 0) -> None:  # fmt: skip
        o, p = self.o, path + b"\0"
        b = struct.pack(o + "IIHHHH", cid, txid, len(p), len(value), access, len(perms))
        b += b"".join(struct.pack(o + "BBH", ord(c), f, d) for c, f, d in perms)
        self.rec(5, b + p + value)

    # §GLOBAL_QUOTA_DATA / §DOMAIN_DATA
    def quota(self, names: list[str], vals: list[int], domid: int | None = None,
              features: int = 0) -> None:  # fmt: skip
        o = self.o
        tail = struct.pack(o + f"{len(vals)}I", *vals) + b"".join(n.encode() + b"\0" for n in names)
        if domid is None:
            self.rec(6, struct.pack(o + "HH", len(vals), 0) + tail)
        else:
            self.rec(7, struct.pack(o + "HHI", domid, len(vals), features) + tail)


def host(version: int, o: str, padded: bool = True, unknown: bool = False) -> bytes:
    w = W(version, o, padded)
    w.glob(3, 4)
    w.quota(["nodes", "watches"], [1000, 128])
    w.conn(1, (1, DOMID_INVALID, 11), in_d=b"\x01\0\0\0abc", out_d=b"0123456789", resp=4,
           uid=0x1234 if version >= 2 else None)  # fmt: skip
    w.watch(1, b"device", b"tok")
    if version >= 2:
        w.watch(1, b"control", b"ctl", depth=2)
    w.conn(2, None, sock_fd=20)
    w.watch(2, b"@releaseDomain", b"xl")
    w.tx(2, 3)
    if unknown:
        w.rec(9, b"later")  # §Records: 0x9 and up reserved for future use
    w.node(b"/")
    w.node(b"/local")
    w.node(b"/local/domain")
    w.node(b"/local/domain/1", b"", (("n", 0, 0), ("r", 0, 1)))
    w.node(b"/local/domain/1/name", b"guest", (("n", 0, 1), ("b", 1, 0)))
    w.node(b"/tool")
    w.node(b"/tool/x", b"v\0w", (("n", 0, 0),), cid=2, txid=3, access=3)
    w.node(b"/tool/y", b"", (), cid=2, txid=3, access=0)
    w.node(b"@releaseDomain")
    w.quota(["nodes"], [50], domid=1, features=1 if version >= 2 else 0)
    return w.end()


def c_watch_ext(path: bytes, token: bytes) -> bytes:
    """The C xenstored's WATCH_DATA_EXTENDED (tools/xenstored/watch.c dump_state_watches):
    len from the 12-octet struct, but only the 8-octet WATCH_DATA fixed part written."""
    p, t = len(path) + 1, len(token) + 1
    b = struct.pack("<IHH", 1, p, t) + path + b"\0" + token + b"\0"
    return struct.pack("<II", 8, r8(12 + p + t)) + b + bytes(-len(b) & 7)


def reproducer(path: bytes, token: bytes) -> bytes:
    w = W(2, "<")
    w.conn(1, (1, DOMID_INVALID, 11), uid=0x1234)
    w.out += c_watch_ext(path, token)
    w.node(b"/")
    w.node(b"/local")
    return w.end()


STREAMS = {
    "v1-le": host(1, "<"),
    "v1-be": host(1, ">"),
    "v2-le": host(2, "<"),
    "v2-be": host(2, ">"),
    "v2-le-doc-lengths": host(2, "<", padded=False, unknown=True),
}
REPRODUCERS = {
    # (wpath-len + token-len) mod 8 = 3: lengths agree, depth/path/token misread.
    "c-watch-ext-in-sync": reproducer(b"/local/domain/1/device", b"tok"),
    # mod 8 = 5: len 8 octets too long; the C reader then sees END and stops.
    "c-watch-ext-desync": reproducer(b"/local/domain/1/d", b"ab"),
}


def main() -> None:
    sys.path.insert(0, str(HERE.parents[2]))
    from xenlu.core.errors import DecodeError
    from xenlu.xenstore.stream import decode_xenstore, stream_json

    for name, data in STREAMS.items():
        (HERE / f"{name}.xs").write_bytes(data)
        text = json.dumps(stream_json(decode_xenstore(data)), indent=1, ensure_ascii=False)
        (HERE / f"{name}.json").write_text(text + "\n", encoding="utf-8")
    for name, data in REPRODUCERS.items():
        (HERE / f"{name}.xs").write_bytes(data)
        try:
            decode_xenstore(data)
        except DecodeError as exc:
            err = {
                "error": type(exc).__name__,
                "offset": exc.offset,
                "record_index": exc.record_index,
                "record_type": exc.record_type,
                "field": exc.field,
                "message": exc.message,
            }
        else:  # pragma: no cover - the point of the file is that it fails
            raise SystemExit(f"{name} decoded")
        (HERE / f"{name}.json").write_text(json.dumps(err, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
