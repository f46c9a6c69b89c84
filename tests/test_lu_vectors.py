"""Hand-built LU vectors (tests/vectors/lu_vectors.py), written from the spec
tables without xenlu's encoder: golden streams decode to the expected records
and re-encode byte-identically; each invalid stream raises the expected error
class at the expected offset and field."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import xenlu.core.errors as errors
from tests.vectors.lu_vectors import GOLDEN, INVALID, SEMANTIC_ONLY, LUVector
from xenlu.core.epochs import fmt_epoch
from xenlu.core.errors import DecodeError
from xenlu.core.registry import UnknownRecord, record_name
from xenlu.core.values import OMIT_EMPTY
from xenlu.lu.records import GrantTable
from xenlu.lu.stream import LUStream, decode_lu, encode_lu


def _plain(value: Any) -> Any:
    """A decoded value in the vectors' expected shape (spec field names, no reserved)."""
    if isinstance(value, UnknownRecord):
        return {"type": value.type, "body": value.body}
    if isinstance(value, np.ndarray):
        if value.dtype.names:
            names = [n for n in value.dtype.names if not n.startswith("rsvd")]
            return [
                {n: (bytes(row[n]) if value.dtype[n].kind == "V" else int(row[n])) for n in names}
                for row in value
            ]
        return [int(x) for x in value]
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (f.metadata.get("xenlu") or {}).get("reserved")
            # bytes after an END (HvmContext.trailing): shown only when present
            and not (f.metadata.get(OMIT_EMPTY) and not getattr(value, f.name))
        }
        if isinstance(value, GrantTable):
            out["nr_grant_frames"] = value.nr_grant_frames
            out["nr_status_frames"] = value.nr_status_frames
        return out
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _flatten(stream: LUStream) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for sec in stream.sections:
        for r in sec.records:
            name = "UNKNOWN" if isinstance(r.value, UnknownRecord) else record_name(r.type)
            assert name is not None
            out.append((name, _plain(r.value)))
        assert sec.end is not None
        out.append(("LU_SECTION_END", _plain(sec.end)))
    out.append(("END", {}))
    return out


def _ids(vs: list[LUVector]) -> list[str]:
    return [v.name for v in vs]


@pytest.mark.parametrize("vec", GOLDEN, ids=_ids(GOLDEN))
def test_golden(vec: LUVector) -> None:
    stream = decode_lu(vec.data)
    assert fmt_epoch(stream.epoch) == vec.epoch
    got = _flatten(stream)
    assert vec.expected is not None
    assert [n for n, _ in got] == [n for n, _ in vec.expected]
    for i, ((name, g), (_, want)) in enumerate(zip(got, vec.expected, strict=True)):
        assert g == want, f"record #{i} {name}"
    assert encode_lu(stream) == vec.data, "re-encoding is not byte-identical"


@pytest.mark.parametrize("vec", INVALID, ids=_ids(INVALID))
def test_invalid(vec: LUVector) -> None:
    cls = getattr(errors, vec.error or "")
    with pytest.raises(DecodeError) as info:
        decode_lu(vec.data)
    exc = info.value
    assert type(exc) is cls, f"{type(exc).__name__} instead of {vec.error}: {exc}"
    assert exc.offset == vec.offset, f"offset {exc.offset} instead of {vec.offset}: {exc}"
    assert exc.field == vec.field, f"field {exc.field!r} instead of {vec.field!r}: {exc}"


@pytest.mark.parametrize("vec", SEMANTIC_ONLY, ids=_ids(SEMANTIC_ONLY))
def test_semantic_only_vectors_are_structurally_valid(vec: LUVector) -> None:
    stream = decode_lu(vec.data)
    assert encode_lu(stream) == vec.data


def test_every_epoch_has_a_golden_stream() -> None:
    assert {v.epoch for v in GOLDEN} >= {
        "4.11",
        "4.12",
        "4.13",
        "4.14",
        "4.15",
        "4.16",
        "4.17",
        "4.19",
        "4.20",
        "4.21",
    }
