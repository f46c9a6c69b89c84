"""The frozen xenstore golden streams (tests/golden/xenstore/, see its README).

Each ``v*`` / ``c-*`` stream was written once from the design document's
tables with plain ``struct`` (not xenlu's encoder); each ``xenstored-*`` one
by the C xenstored's own dump code (see the README). Streams decode to their
frozen JSON and re-encode byte-exactly; the C-writer reproducers fail with
their frozen error. Also runs the doctests of the xenstore modules.
"""

from __future__ import annotations

import doctest
import importlib
import json
from pathlib import Path

import pytest

import xenlu
from xenlu.core.errors import DecodeError
from xenlu.xenstore.stream import decode_xenstore, encode_xenstore, stream_json
from xenlu.xenstore.validate import validate_xenstore

GOLDEN = Path(__file__).parent / "golden" / "xenstore"
FILES = sorted(GOLDEN.glob("*.xs"))


def _fails(p: Path) -> bool:
    return "error" in json.loads(p.with_suffix(".json").read_text(encoding="utf-8"))


STREAMS = [p for p in FILES if not _fails(p)]
REPRODUCERS = [p for p in FILES if _fails(p)]


def test_corpus_is_complete() -> None:
    assert {p.stem for p in STREAMS} == {
        "v1-le",
        "v1-be",
        "v2-le",
        "v2-be",
        "v2-le-doc-lengths",
        "xenstored-v1",
        "xenstored-v2",
        "xenstored-connections",
    }
    assert {p.stem for p in REPRODUCERS} == {
        "c-watch-ext-in-sync",
        "c-watch-ext-desync",
        "xenstored-watch-depth",
    }


def test_real_c_writer_watch_matches_the_model() -> None:
    # xenstored-watch-depth.xs came from the C xenstored's own dump_state_watches
    # (see the README); xenlu's model of that writer produces the same octets.
    from xenlu.xenstore.cwriter import c_watch_ext_record

    data = (GOLDEN / "xenstored-watch-depth.xs").read_bytes()
    assert data[16:-8] == c_watch_ext_record(1, b"/local/domain/1/d", b"ab")


@pytest.mark.parametrize("path", STREAMS, ids=[p.stem for p in STREAMS])
def test_decodes_to_frozen_json_and_reencodes(path: Path) -> None:
    data = path.read_bytes()
    assert xenlu.detect_format(data) == "xenstore"
    s = decode_xenstore(data)
    want = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert json.loads(json.dumps(stream_json(s))) == want
    assert encode_xenstore(s) == data


def test_both_byte_orders_hold_the_same_records() -> None:
    for v in ("v1", "v2"):
        le = decode_xenstore((GOLDEN / f"{v}-le.xs").read_bytes())
        be = decode_xenstore((GOLDEN / f"{v}-be.xs").read_bytes())
        assert le.records == be.records
        assert encode_xenstore(le, big_endian=True) == (GOLDEN / f"{v}-be.xs").read_bytes()


def test_validation_of_the_golden_streams() -> None:
    # dom0 has no ring connection in these minimal streams: nodes it owns are fine (0),
    # the guest's DOMAIN_DATA has its ring. The doc-lengths stream warns as it should.
    for p in STREAMS:
        if p.stem == "xenstored-connections":
            continue  # connections only: dom1's watch and dom2's target, no nodes, no DOMAIN_DATA
        codes = validate_xenstore(decode_xenstore(p.read_bytes())).codes()
        want = {"XS_LEN_UNPADDED", "XS_UNKNOWN_RECORD"} if "doc" in p.stem else set()
        assert codes == want, p.stem


@pytest.mark.parametrize("path", REPRODUCERS, ids=[p.stem for p in REPRODUCERS])
def test_c_writer_reproducers_fail_with_frozen_error(path: Path) -> None:
    want = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    with pytest.raises(DecodeError) as info:
        decode_xenstore(path.read_bytes())
    e = info.value
    got = {
        "error": type(e).__name__,
        "offset": e.offset,
        "record_index": e.record_index,
        "record_type": e.record_type,
        "field": e.field,
        "message": e.message,
    }
    assert got == want


@pytest.mark.parametrize(
    "name",
    [
        "xenlu.xenstore.records",
        "xenlu.xenstore.codec",
        "xenlu.xenstore.stream",
        "xenlu.xenstore.cwriter",
        "xenlu.xenstore.validate",
        "xenlu.testing.xenstore_hostgen",
        "xenlu.testing.strategies_xenstore",
    ],
)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
