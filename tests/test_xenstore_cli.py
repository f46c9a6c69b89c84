"""``xenlu verify`` / ``inspect`` / ``validate`` on xenstored migration streams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xenlu.cli.app import main
from xenlu.testing.xenstore_hostgen import make_xenstore, node
from xenlu.xenstore.cwriter import c_watch_ext_record
from xenlu.xenstore.stream import encode_xenstore


@pytest.fixture
def xs_file(tmp_path: Path) -> Path:
    p = tmp_path / "state_dump"
    p.write_bytes(encode_xenstore(make_xenstore([0, 1, 2], big_endian=True)))
    return p


def test_verify_auto_detects(xs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(xs_file)]) == 0
    assert capsys.readouterr().out.strip() == f"{xs_file}: OK (xenstore)"
    assert main(["verify", "-v", "--format", "xenstore", str(xs_file)]) == 0
    out = capsys.readouterr().out
    assert "#0 @0x10 0x00000001 GLOBAL_DATA 8 bytes" in out


def test_inspect_json_counts(xs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--json", str(xs_file)]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["format"] == "xenstore" and j["endianness"] == "big" and j["version"] == 2
    assert j["connections"] == {"ring": 3, "socket": 1}
    assert j["nodes"] == {"committed": 21, "pending": 1}
    assert (j["watches"], j["transactions"], j["node_data_bytes"]) == (5, 1, 36)
    assert j["record_counts"]["NODE_DATA"] == 22 and j["record_counts"]["END"] == 1
    assert j["bytes"] == xs_file.stat().st_size


def test_validate_ok_and_findings(
    xs_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(xs_file)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{xs_file}: OK: 0 errors, 0 warnings"
    s = make_xenstore([0, 1])
    bad = tmp_path / "bad"
    bad.write_bytes(encode_xenstore(type(s)(records=(*s.records, node("/no/parent")))))
    assert main(["validate", "--json", str(bad)]) == 1
    j = json.loads(capsys.readouterr().out)
    assert [f["code"] for f in j["findings"]] == ["XS_NODE_NO_PARENT"]
    assert j["findings"][0]["path"] == "/no/parent"


def test_c_writer_watch_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = make_xenstore([0, 1])
    data = bytearray(encode_xenstore(type(s)(records=s.records[:3])))[:-8]
    data += c_watch_ext_record(1, b"/local/domain/0/backend", b"be") + bytes(8)
    p = tmp_path / "c_dump"
    p.write_bytes(bytes(data))
    assert main(["verify", str(p)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "field depth" in err and "dump_state_watches" in err


def test_show_names_xenstore_records_and_dump_builds_them_back(
    xs_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(xs_file)]) == 0
    heads = [ln.split()[3] for ln in capsys.readouterr().out.splitlines() if ln.startswith("#")]
    assert heads[0] == "GLOBAL_DATA" and "CONNECTION_DATA" in heads and "NODE_DATA" in heads
    assert "PAGE_DATA" not in heads  # not libxc's names for the same type codes
    assert main(["diff", str(xs_file), str(xs_file)]) == 0
    capsys.readouterr()
    # Issue 17: the JSON form covers xenstored streams (dump used to refuse them).
    out = tmp_path / "xs.json"
    assert main(["dump", str(xs_file), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert (doc["family"], doc["big_endian"]) == ("xenstore", True)
    names = [r["name"] for r in doc["records"]]
    assert names[0] == "GLOBAL_DATA" and "NODE_DATA" in names and "PAGE_DATA" not in names
    back = tmp_path / "back"
    assert main(["build", str(out), "-o", str(back)]) == 0
    assert back.read_bytes() == xs_file.read_bytes()
