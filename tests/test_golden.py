"""The frozen golden corpus (tests/golden/<X.Y>/): every later xenlu decodes it unchanged.

Each ``<name>.bin`` was written once by the encoder (tests/golden/make_golden.py)
with its decoded form ``<name>.json`` (tests/golden/golden_json.py). Every
golden must decode to its JSON unchanged, re-encode byte-exactly, and upgrade
to every newer epoch (LU spec §3, §6) into a stream that decodes under the
target epoch; the upgrade then rolls back to the original exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from golden.golden_json import stream_json

from xenlu.core.epochs import EPOCHS, fmt_epoch, parse_epoch
from xenlu.host.compat import convert
from xenlu.lu.stream import decode_lu, encode_lu

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*/*.bin"))
IDS = [f"{p.parent.name}/{p.stem}" for p in FILES]


def test_corpus_covers_every_epoch() -> None:
    want = {fmt_epoch(e) for e in EPOCHS}
    have = {p.parent.name for p in FILES}
    assert have == want, f"golden epochs missing: {sorted(want - have)}"
    for e in want:
        names = {p.stem for p in (GOLDEN / e).glob("*.bin")}
        assert {"pv", "hvm", "mixed", "epoch"} <= names, (e, names)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_decodes_to_frozen_json(path: Path) -> None:
    stream = decode_lu(path.read_bytes())
    want = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    got = json.loads(json.dumps(stream_json(stream)))
    assert got["xen_version"] == path.parent.name
    assert got == want


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_reencodes_byte_exactly(path: Path) -> None:
    data = path.read_bytes()
    assert encode_lu(decode_lu(data)) == data


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_upgrades_to_every_newer_epoch(path: Path) -> None:
    stream = decode_lu(path.read_bytes())
    source = parse_epoch(path.parent.name)
    for target in (e for e in EPOCHS if e > source):
        up, report = convert(stream, to=target)
        assert report.lossless and report.direction == "upgrade"
        back = decode_lu(encode_lu(up))  # decodes (and verifies) under the target epoch
        assert back.epoch == target and back.version == target
        assert back == up
        # ... and the original is restored exactly from the upgraded stream.
        down, rep = convert(back, to=source)
        assert rep.lossless, [str(x) for x in rep.losses]
        assert down == stream
        assert encode_lu(down) == path.read_bytes()
