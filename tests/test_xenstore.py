"""The xenstored migration stream: round trips and hand-built structural vectors.

Every vector is written here octet by octet with ``struct`` (not with xenlu's
encoder) from ``docs/designs/xenstore-migration.md``; each asserts the error
class, the absolute offset and the field.
"""

from __future__ import annotations

import struct

import pytest

import xenlu
from xenlu.core.errors import DecodeError, FramingError, GrammarError, RecordError, VersionError
from xenlu.core.registry import Record, UnknownRecord
from xenlu.testing.xenstore_hostgen import make_xenstore
from xenlu.xenstore.cwriter import c_reader_view, c_watch_ext_record
from xenlu.xenstore.records import XsType
from xenlu.xenstore.stream import (
    XenstoreStream,
    decode_xenstore,
    encode_xenstore,
    inspect_xenstore,
)

H = 16  # header octets: the first record header is at 16, its body at 24


def hdr(version: int = 2, flags: int = 0) -> bytes:
    return b"xenstore" + struct.pack(">II", version, flags)


def rec(rtype: int, body: bytes, order: str = "<", length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return struct.pack(order + "II", rtype, n) + body + bytes(-len(body) & 7)


def end(order: str = "<") -> bytes:
    return struct.pack(order + "II", 0, 0)


def stream(*records: bytes, version: int = 2, order: str = "<") -> bytes:
    return hdr(version, int(order == ">")) + b"".join(records) + end(order)


def conn(conn_id: int = 1, ctype: int = 0, fields: int = 0, spec: bytes | None = None,
         in_data: bytes = b"", out_data: bytes = b"", resp: int = 0, tail: bytes = b"",
         order: str = "<") -> bytes:  # fmt: skip
    if spec is None:
        spec = struct.pack(order + "HHI", 1, 0x7FF4, 11)
    head = struct.pack(order + "IHH", conn_id, ctype, fields) + spec
    body = head + struct.pack(order + "HHI", len(in_data), resp, len(out_data))
    body += in_data + out_data
    return body + bytes(-len(body) & 7) + tail


def watch(conn_id: int = 1, path: bytes = b"/a\0", token: bytes = b"t\0", depth: int | None = None,
          pad: int = 0, order: str = "<") -> bytes:  # fmt: skip
    if depth is None:
        return struct.pack(order + "IHH", conn_id, len(path), len(token)) + path + token
    fixed = struct.pack(order + "IHHHH", conn_id, len(path), len(token), depth, pad)
    return fixed + path + token


def nodeb(path: bytes = b"/\0", value: bytes = b"", perms: bytes = b"n\0\0\0", conn_id: int = 0,
          tx: int = 0, access: int = 0, order: str = "<") -> bytes:  # fmt: skip
    fixed = struct.pack(order + "IIHHHH", conn_id, tx, len(path), len(value), access,
                        len(perms) // 4)  # fmt: skip
    return fixed + perms + path + value


def err(data: bytes, cls: type[DecodeError]) -> DecodeError:
    with pytest.raises(cls) as info:
        decode_xenstore(data)
    assert type(info.value) is cls, repr(info.value)
    return info.value


# --- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("big_endian", [False, True])
def test_every_record_type_round_trips_byte_exactly(version: int, big_endian: bool) -> None:
    s = make_xenstore([0, 1, 2], version=version, big_endian=big_endian)
    data = encode_xenstore(s)
    assert data[8:16] == struct.pack(">II", version, int(big_endian))
    d = decode_xenstore(data)
    assert d == s
    assert encode_xenstore(d) == data
    types = {r.type for r in d.records}
    want = set(XsType) - {XsType.END} - ({XsType.WATCH_DATA_EXTENDED} if version == 1 else set())
    assert types == want


def test_byte_orders_decode_to_the_same_values() -> None:
    le = decode_xenstore(encode_xenstore(make_xenstore([0, 3], big_endian=False)))
    be_bytes = encode_xenstore(le, big_endian=True)
    be = decode_xenstore(be_bytes)
    assert be.big_endian and be.records == le.records
    assert be_bytes != encode_xenstore(le)
    assert encode_xenstore(be, big_endian=False) == encode_xenstore(le)


def test_hand_built_big_endian_node_decodes() -> None:
    body = nodeb(b"/x\0", b"v", b"b\x01\x00\x05", order=">")
    d = decode_xenstore(stream(rec(5, body, ">"), order=">"))
    n = d.nodes[0]
    assert bytes(n.path) == b"/x" and bytes(n.value) == b"v"
    assert d.tree().perms("/x") == [("b", 5, True)]
    assert n.owner == 5


def test_unknown_records_are_kept_byte_exactly() -> None:
    data = stream(rec(0x9, b"abc"), rec(0xDEAD0001, bytes(range(16))))
    s = decode_xenstore(data)
    assert [r.value for r in s.unknown()] == [
        UnknownRecord(9, b"abc"),
        UnknownRecord(0xDEAD0001, bytes(range(16))),
    ]
    assert encode_xenstore(s) == data
    assert inspect_xenstore(s)["unknown_records"] == 2


def test_length_without_padding_is_accepted_and_kept() -> None:
    # §Records: len is the body's length, 0-7 padding octets follow; the C
    # writers count the padding in len. Both decode; each re-encodes as read.
    body = nodeb(b"/ab\0", b"x")  # 16 + 4 + 4 + 1 = 25 octets
    doc_style = stream(rec(5, body))
    c_style = stream(rec(5, body + bytes(7)))
    a, b = decode_xenstore(doc_style), decode_xenstore(c_style)
    assert a.records == b.records
    assert a.unpadded == {0} and b.unpadded == frozenset()
    assert encode_xenstore(a) == doc_style and encode_xenstore(b) == c_style


def test_connection_pending_data_and_unique_id() -> None:
    body = conn(fields=1, in_data=b"abc", out_data=b"hello", resp=2, tail=struct.pack("<Q", 77))
    s = decode_xenstore(stream(rec(2, body)))
    c = s.connections[0]
    assert bytes(c.in_data) == b"abc" and bytes(c.out_data) == b"hello"
    assert (c.out_resp_len, c.unique_id, c.spec.evtchn) == (2, 77, 11)  # type: ignore[union-attr]
    assert encode_xenstore(s) == stream(rec(2, body))


def test_api_detects_and_decodes_xenstore() -> None:
    data = encode_xenstore(make_xenstore([0, 1]))
    assert xenlu.detect_format(data) == "xenstore"
    s = xenlu.decode(data)
    assert isinstance(s, XenstoreStream)
    assert xenlu.decode(data, format="xenstore") == s
    assert xenlu.encode(s) == data
    assert xenlu.verify(data) == "xenstore"
    be = xenlu.decode(xenlu.encode(s, big_endian=True))
    assert be.big_endian and be.records == s.records


def test_tree_view_does_not_copy_values() -> None:
    data = encode_xenstore(make_xenstore([0, 1]))
    t = decode_xenstore(data).tree()
    assert isinstance(t["/local/domain/1/name"].value, memoryview)
    assert t.value("/local/domain/1/name") == b"guest1"
    assert t.children("/local/domain/1") == [
        "/local/domain/1/name",
        "/local/domain/1/domid",
        "/local/domain/1/device",
        "/local/domain/1/control",
    ]
    assert "/tool/xl" not in t  # pending in a transaction, not committed


# --- header and framing -------------------------------------------------------------


def test_header_truncated() -> None:
    e = err(b"xensto", FramingError)
    assert e.offset == 0


def test_bad_ident() -> None:
    e = err(b"xenstorX" + hdr()[8:] + end(), FramingError)
    assert (e.offset, e.field) == (0, "ident")


def test_unsupported_version() -> None:
    e = err(stream(version=3), VersionError)
    assert (e.offset, e.field, e.got) == (8, "version", 3)


def test_reserved_header_flags() -> None:
    e = err(hdr(2, 2) + end(), FramingError)
    assert (e.offset, e.field) == (12, "flags")


def test_missing_end() -> None:
    e = err(hdr() + rec(1, struct.pack("<ii", -1, 4)), FramingError)
    assert e.offset == H + 16 and "without END" in e.message


def test_record_header_truncated() -> None:
    e = err(hdr() + b"\0\0\0", FramingError)
    assert e.offset == H and e.record_index == 0


def test_body_past_end() -> None:
    e = err(hdr() + struct.pack("<II", 1, 64) + bytes(8), FramingError)
    assert (e.offset, e.field, e.record_type) == (H + 4, "length", 1)


def test_frame_padding_not_zero() -> None:
    data = hdr() + struct.pack("<II", 0x20, 3) + b"abc\0\0\x01\0\0" + end()
    e = err(data, FramingError)
    assert (e.offset, e.field) == (H + 8 + 5, "padding")


def test_data_after_end() -> None:
    e = err(stream() + bytes(8), FramingError)
    assert e.offset == H + 8 and "after END" in e.message


def test_end_with_body() -> None:
    e = err(hdr() + struct.pack("<II", 0, 8) + bytes(8), FramingError)
    assert (e.offset, e.field) == (H + 4, "length")


# --- record bodies ----------------------------------------------------------------


def test_global_data_wrong_length() -> None:
    e = err(stream(rec(1, bytes(4))), RecordError)
    assert (e.offset, e.field, e.record_type) == (H + 4, "length", 1)
    assert "(GLOBAL_DATA)" in str(e)


@pytest.mark.parametrize(
    ("body", "at", "name"),
    [
        (conn(conn_id=0), 0, "conn_id"),
        (conn(ctype=2), 4, "conn_type"),
        (conn(fields=2), 6, "fields"),
        (conn(ctype=1, spec=struct.pack("<iI", 5, 1)), 12, "pad"),
        (conn(out_data=b"ab", resp=3), 18, "out_resp_len"),
    ],
)
def test_connection_field_rules(body: bytes, at: int, name: str) -> None:
    e = err(stream(rec(2, body)), RecordError)
    assert (e.offset, e.field, e.record_index) == (H + 8 + at, name, 0)


def test_connection_length_does_not_match_data_lengths() -> None:
    body = bytearray(conn(in_data=b"abcd"))
    body[16:18] = struct.pack("<H", 12)  # claims 12 octets of read data
    e = err(stream(rec(2, bytes(body))), RecordError)
    assert (e.offset, e.field) == (H + 4, "length")


def test_connection_padding_before_unique_id() -> None:
    body = bytearray(conn(fields=1, in_data=b"a", tail=bytes(8)))
    body[30] = 1
    e = err(stream(rec(2, bytes(body))), FramingError)
    assert (e.offset, e.field) == (H + 8 + 25, "padding")


@pytest.mark.parametrize(
    ("body", "at", "name"),
    [
        (watch(path=b"/ab"), 8 + 2, "wpath"),
        (watch(path=b"/a\0b\0"), 8 + 2, "wpath"),
        (watch(token=b"tk"), 8 + 3 + 1, "token"),
        (watch(path=b""), 4, "wpath_len"),
    ],
)
def test_watch_string_rules(body: bytes, at: int, name: str) -> None:
    e = err(stream(rec(3, body)), RecordError)
    assert (e.offset, e.field) == (H + 8 + at, name)


def test_watch_extended_only_in_version_2() -> None:
    data = stream(rec(8, watch(depth=2)), version=1)
    e = err(data, GrammarError)
    assert (e.offset, e.field, e.record_type) == (H, "type", 8)
    s = decode_xenstore(data, strict=False)
    assert s.watches[0].depth == 2 and encode_xenstore(s) == data


def test_watch_extended_pad_not_zero() -> None:
    e = err(stream(rec(8, watch(depth=2, pad=1))), RecordError)
    assert (e.offset, e.field) == (H + 8 + 10, "pad")


@pytest.mark.parametrize("residue", range(8))
def test_c_writer_watch_extended_is_recognised(residue: int) -> None:
    # wpath-len + token-len = 24 + residue (token "t" + NUL = 2 octets).
    path = b"/local/domain/7/" + b"x" * (24 + residue - 2 - 17)
    rec_bytes = c_watch_ext_record(1, path, b"t")
    p, t = len(path) + 1, 2
    assert (p + t) % 8 == residue
    written = (8 + p + t + 7) & ~7
    length = struct.unpack_from("<I", rec_bytes, 4)[0]
    assert len(rec_bytes) == 8 + written and length == (12 + p + t + 7) & ~7
    assert length - written == (8 if residue in (0, 5, 6, 7) else 0)
    data = hdr() + rec(2, conn()) + rec_bytes + rec(5, nodeb()) + end()
    e = err(data, RecordError)
    assert (e.offset, e.field, e.record_index) == (H + 32 + 8 + 8, "depth", 1)
    assert "dump_state_watches" in e.message and "depth is not in the stream" in e.message
    assert "depth 27695" in e.message  # "/l" read as a little-endian u16
    assert ("the C reader takes the next 8 octets" in e.message) == (residue in (0, 5, 6, 7))
    if residue in (0, 5, 6, 7):
        # The next record is NODE_DATA: its conn_id and tx_id (0, 0) read as END.
        assert "END: it stops there" in e.message


def test_c_reader_view_of_c_writer_bytes() -> None:
    body = c_watch_ext_record(1, b"/local/domain/1/device", b"tok")[8:]
    view = c_reader_view(body)
    assert view == {"depth": 0x6C2F, "path": b"ocal/domain/1/device", "token": b"k"}


@pytest.mark.parametrize(
    ("body", "at", "name", "cls"),
    [
        (nodeb(perms=b"n\0\0\0x\0\1\0"), 16 + 4, "perms[1].perm", RecordError),
        (nodeb(perms=b"w\x02\0\0"), 17, "perms[0].flags", RecordError),
        (nodeb(access=4), 12, "access", RecordError),
        (nodeb(path=b"/a"), 16 + 4 + 1, "path", RecordError),
        (nodeb(path=b""), 8, "path_len", RecordError),
    ],
)
def test_node_rules(body: bytes, at: int, name: str, cls: type[DecodeError]) -> None:
    e = err(stream(rec(5, body)), cls)
    assert (e.offset, e.field) == (H + 8 + at, name)


def test_node_padding_inside_length_not_zero() -> None:
    body = nodeb(b"/\0", b"v") + b"\x05"  # 23 octets + 1 octet of padding counted in len
    e = err(stream(rec(5, body)), FramingError)
    assert (e.offset, e.field) == (H + 8 + 23, "padding")


def test_node_value_may_hold_nul() -> None:
    s = decode_xenstore(stream(rec(5, nodeb(b"/\0", b"a\0b"))))
    assert bytes(s.nodes[0].value) == b"a\0b"


def test_quota_names_fewer_than_values() -> None:
    body = struct.pack("<HH", 2, 0) + struct.pack("<II", 1, 2) + b"nodes\0watch"
    e = err(stream(rec(6, body)), RecordError)
    assert (e.offset, e.field) == (H + 8 + 12, "quota_names")


def test_domain_features_zero_in_version_1() -> None:
    body = struct.pack("<HHI", 1, 1, 1) + struct.pack("<I", 5) + b"nodes\0"
    e = err(stream(rec(7, body), version=1), RecordError)
    assert (e.offset, e.field) == (H + 8 + 4, "features")
    s = decode_xenstore(stream(rec(7, body), version=2))
    assert s.domains[0].quota == {"nodes": 5} and s.domains[0].features == 1


def test_record_after_end_type_in_records_is_refused() -> None:
    s = XenstoreStream(records=(Record(0, None),))
    with pytest.raises(xenlu.EncodeError):
        encode_xenstore(s)


@pytest.mark.parametrize(
    ("rtype", "body"),
    [
        (5, bytes(8)),  # NODE_DATA fixed part is 16 octets
        (3, bytes(4)),  # WATCH_DATA fixed part is 8
        (8, bytes(8)),  # WATCH_DATA_EXTENDED fixed part is 12
        (2, b"\1" + bytes(15)),  # CONNECTION_DATA fixed part is 24
        (4, bytes(16)),  # TRANSACTION_DATA is 8 octets
        (7, bytes(4)),  # DOMAIN_DATA fixed part is 8
    ],
)
def test_record_too_short_or_long_for_its_layout(rtype: int, body: bytes) -> None:
    e = err(stream(rec(rtype, body)), RecordError)
    assert (e.offset, e.field, e.record_type) == (H + 4, "length", rtype)


def test_quota_values_beyond_the_body() -> None:
    body = struct.pack("<HH", 3, 1) + struct.pack("<I", 1)  # 4 values announced, 1 present
    e = err(stream(rec(6, body)), RecordError)
    assert (e.offset, e.field) == (H + 4, "length")


def test_unique_id_flag_without_unique_id() -> None:
    e = err(stream(rec(2, conn(fields=1))), RecordError)
    assert (e.offset, e.field) == (H + 4, "length")


def test_watch_extended_c_writer_bytes_in_big_endian_are_recognised_too() -> None:
    body = c_watch_ext_record(1, b"/local/domain/2/x", b"tk", ">")
    e = err(stream(rec(2, conn(order=">"), ">") + body, order=">"), RecordError)
    assert e.field == "depth" and "dump_state_watches" in e.message


def test_errors_name_the_xenstore_record_type() -> None:
    e = err(stream(rec(4, bytes(16))), RecordError)
    assert "type 0x00000004 (TRANSACTION_DATA)" in str(e)
