"""The JSON form (``xenlu dump`` / ``xenlu build``) of xenstored migration streams.

``build(dump(b)) == b`` byte-exactly for every valid golden xenstore stream
(both byte orders, both versions, the document-length variant with its
reserved record type) and for hypothesis streams; permission and quota runs
are lists of objects by field name; a hand edit of a node's value or a
permission is built and seen by ``verify`` / ``validate``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_view import _EDIT_VALUES, _leaves
from xenlu import api
from xenlu.cli.app import main
from xenlu.core.errors import XenLUError
from xenlu.testing import strategies as S
from xenlu.testing.xenstore_hostgen import make_xenstore
from xenlu.tools.jsonform import JsonFormError, build, dumps, from_json, loads, to_json
from xenlu.xenstore.records import XsType
from xenlu.xenstore.stream import XenstoreStream, decode_xenstore, encode_xenstore

GOLDEN = Path(__file__).parent / "golden" / "xenstore"
# The c-watch-ext-* and xenstored-watch-depth streams are invalid on purpose
# (their .json is the expected error): there is nothing to dump.
VALID = [
    p
    for p in sorted(GOLDEN.glob("*.xs"))
    if "error" not in json.loads(p.with_suffix(".json").read_text())
]


def round_trip(data: bytes, inline_max: int = 64) -> bytes:
    """bytes → stream → JSON text → JSON data → bytes."""
    doc = to_json(api.decode(data, "xenstore"), inline_max=inline_max)
    return build(loads(dumps(doc)))


def test_golden_set_is_the_documented_one() -> None:
    names = {p.stem for p in VALID}
    assert {"v1-le", "v1-be", "v2-le", "v2-be", "v2-le-doc-lengths"} <= names
    assert {"xenstored-v1", "xenstored-v2", "xenstored-connections"} <= names


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_golden_round_trip(path: Path) -> None:
    data = path.read_bytes()
    for inline_max in (64, 0, -1):
        assert round_trip(data, inline_max) == data


def test_byte_order_version_and_unpadded_lengths_are_in_the_form() -> None:
    doc = to_json(api.decode((GOLDEN / "v1-be.xs").read_bytes()))
    assert (doc["family"], doc["version"], doc["big_endian"]) == ("xenstore", 1, True)
    assert "unpadded" not in doc or doc["unpadded"] == []
    data = (GOLDEN / "v2-le-doc-lengths.xs").read_bytes()
    doc = to_json(api.decode(data))
    stream = decode_xenstore(data)
    assert doc["unpadded"] == sorted(stream.unpadded) and doc["unpadded"]
    # The reserved record type 0x9 is kept as its body, byte-exactly.
    reserved = [r for r in doc["records"] if r["type"] == "0x00000009"]
    assert reserved and set(reserved[0]) == {"type", "name", "body"}
    # Same content, other byte order: the entries' JSON is identical.
    le = to_json(api.decode((GOLDEN / "v1-le.xs").read_bytes()))
    be = to_json(api.decode((GOLDEN / "v1-be.xs").read_bytes()))
    assert le["records"] == be["records"] and le["big_endian"] != be["big_endian"]


def test_entries_are_objects_by_field_name() -> None:
    doc = to_json(api.decode((GOLDEN / "v2-le.xs").read_bytes()))
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in doc["records"]:
        by_name.setdefault(r["name"], []).append(r)
    quota = by_name["GLOBAL_QUOTA_DATA"][0]["value"]["values"]
    assert quota and all(set(q) == {"value"} for q in quota)
    perms = [p for n in by_name["NODE_DATA"] for p in n["value"]["perms"]]
    assert perms and all(set(p) == {"perm", "flags", "domid"} for p in perms)
    assert any(p["flags"] == 1 for p in perms)  # the stale permission
    assert from_json(doc) == decode_xenstore((GOLDEN / "v2-le.xs").read_bytes())


@settings(max_examples=40, deadline=None)
@given(S.xenstore_streams())
def test_round_trip_property(data: bytes) -> None:
    assert round_trip(data) == data
    assert round_trip(data, inline_max=0) == data


def _node(doc: dict[str, Any], path: bytes) -> dict[str, Any]:
    for r in doc["records"]:
        if r["name"] == "NODE_DATA" and bytes.fromhex(r["value"]["path"]) == path:
            return dict(r["value"])
    raise AssertionError(path)


def test_hand_edit_value_and_permission_is_built_and_seen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = encode_xenstore(make_xenstore([0, 1, 2], big_endian=True))
    src = tmp_path / "state_dump"
    src.write_bytes(data)
    dumped = tmp_path / "xs.json"
    assert main(["dump", str(src), "-o", str(dumped)]) == 0
    doc = json.loads(dumped.read_text())
    name = _node(doc, b"/local/domain/1/name")
    name["value"] = b"renamed".hex()
    # A permission in text form: domain 7 (unknown to the stream) owns the node.
    name["perms"] = [{"perm": ord("n"), "flags": 0, "domid": "7"}]
    for r in doc["records"]:
        if r["name"] == "NODE_DATA" and r["value"]["path"] == name["path"]:
            r["value"] = name
    dumped.write_text(dumps(doc))
    out = tmp_path / "edited"
    assert main(["build", str(dumped), "-o", str(out)]) == 0
    new = out.read_bytes()
    assert new != data
    stream = decode_xenstore(new)
    assert stream.big_endian  # the byte order survives the edit
    edited = [n for n in stream.of_type(XsType.NODE_DATA) if n.path == b"/local/domain/1/name"]
    assert bytes(edited[0].value) == b"renamed" and edited[0].owner == 7
    capsys.readouterr()
    assert main(["verify", "-q", str(out)]) == 0
    assert main(["validate", "--json", str(out)]) == 0  # a warning, not an error …
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert {f["code"] for f in findings} == {"XS_NODE_OWNER_UNKNOWN"}
    assert main(["validate", "--strict", str(out)]) == 1  # … that --strict fails
    capsys.readouterr()
    assert main(["validate", "--strict", str(src)]) == 0  # the original has none


def test_invalid_permission_letter_is_refused_by_build() -> None:
    doc = to_json(api.decode(encode_xenstore(make_xenstore([0, 1]))))
    for r in doc["records"]:
        if r["name"] == "NODE_DATA":
            r["value"]["perms"][0]["perm"] = ord("x")
            break
    with pytest.raises(XenLUError) as info:
        build(doc)
    assert "perm" in str(info.value)
    # Without the check the bytes are made (for building corrupt test streams).
    assert isinstance(build(doc, check=False), bytes)


@pytest.mark.parametrize(
    ("edit", "where", "message"),
    [
        (
            lambda v: v["perms"].append({"perm": 110, "flags": 0}),
            ".perms[1]",
            "missing field 'domid'",
        ),
        (
            lambda v: v["perms"].__setitem__(0, {"perm": 110, "flags": 0, "domid": 0, "x": 1}),
            ".perms[0]",
            "no field 'x'",
        ),
        (lambda v: v["perms"][0].__setitem__("domid", 1 << 16), ".perms[0]", "out of range"),
        (
            lambda v: v["perms"][0].__setitem__("flags", "many"),
            ".perms[0].flags",
            "expected an integer",
        ),
        (lambda v: v.__setitem__("perms", {"perm": 110}), ".perms", "expected a list"),
    ],
)
def test_bad_entries_are_located(edit: Any, where: str, message: str) -> None:
    doc = to_json(api.decode(encode_xenstore(make_xenstore([0]))))
    i = next(i for i, r in enumerate(doc["records"]) if r["name"] == "NODE_DATA")
    edit(doc["records"][i]["value"])
    with pytest.raises(JsonFormError) as info:
        from_json(doc)
    assert info.value.path == f"records[{i}].value{where}"
    assert message in str(info.value)


def test_connection_spec_is_picked_by_its_keys() -> None:
    stream = make_xenstore([0, 1])
    doc = to_json(stream)
    specs = [r["value"]["spec"] for r in doc["records"] if r["name"] == "CONNECTION_DATA"]
    assert {"socket_fd"} in [set(s) for s in specs]
    assert {"domid", "tdomid", "evtchn"} in [set(s) for s in specs]
    back = from_json(json.loads(json.dumps(doc)))
    assert isinstance(back, XenstoreStream) and back == stream
    conn = next(r for r in doc["records"] if r["name"] == "CONNECTION_DATA")
    conn["value"]["spec"] = {"domid": 1, "socket_fd": 3}
    with pytest.raises(JsonFormError, match="fit none or several"):
        from_json(doc)


_EDIT_DOC = to_json(api.decode((GOLDEN / "v2-le-doc-lengths.xs").read_bytes()))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0), _EDIT_VALUES)
def test_any_hand_edit_builds_or_raises_a_typed_error(at: int, value: Any) -> None:
    doc = json.loads(json.dumps(_EDIT_DOC))
    paths = _leaves(doc)
    path = paths[at % len(paths)]
    target = doc
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    # Either it builds, or a JsonFormError with its path / verify's located
    # error; anything else (TypeError, struct.error …) fails the test.
    with contextlib.suppress(XenLUError):
        build(doc)
