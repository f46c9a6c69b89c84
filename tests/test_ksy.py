"""The generated Kaitai Struct descriptions against xenlu.

The committed ``ksy/*.ksy`` must be what the declarations generate; the
Kaitai compiler (npm ``kaitai-struct-compiler``, installed once into
``build/kaitai``) compiles them to Python, and the parsers read every golden
LU stream and every valid libxc vector with the values xenlu decodes,
record by record and field by field.
"""

from __future__ import annotations

import importlib.util
from enum import IntEnum
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.golden.golden_json import stream_json
from tests.vectors.libxc_vectors import VECTORS
from xenlu.core.epochs import EPOCHS, fmt_epoch
from xenlu.core.registry import record_name
from xenlu.core.values import to_jsonable
from xenlu.lu.stream import decode_lu
from xenlu.migration.libxc_stream import decode_libxc
from xenlu.tools.ksy import LIBXC_KSY, ksy_name, libxc_ksy, lu_ksy
from xenlu.tools.schema import epoch_schema

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_FILES = sorted((ROOT / "tests" / "golden").glob("*/*.bin"))


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


kaitai = _load("xenlu_kaitai_tool", ROOT / "ksy" / "kaitai.py")


@pytest.mark.parametrize("epoch", EPOCHS, ids=fmt_epoch)
def test_committed_ksy_is_fresh(epoch: tuple[int, int]) -> None:
    path = ROOT / "ksy" / ksy_name(epoch)
    assert path.read_text(encoding="utf-8") == lu_ksy(epoch), f"{path} is stale: make schemas"


def test_committed_libxc_ksy_is_fresh() -> None:
    path = ROOT / "ksy" / LIBXC_KSY
    assert path.read_text(encoding="utf-8") == libxc_ksy(), f"{path} is stale: make schemas"


@pytest.fixture(scope="session")
def parsers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every committed .ksy compiled to Python (npm failures fail, never skip)."""
    out = tmp_path_factory.mktemp("kaitai-python")
    try:
        kaitai.compile_ksy("python", out, sorted((ROOT / "ksy").glob("*.ksy")))
    except kaitai.KaitaiError as exc:
        pytest.fail(str(exc))
    return out


def _class(parsers: Path, stem: str) -> Any:
    mod = _load(stem, parsers / f"{stem}.py")
    return getattr(mod, "".join(p.capitalize() for p in stem.split("_")))


# --- Kaitai objects -> xenlu's JSON form of a decoded record ---------------------------


def _v(x: Any) -> Any:
    if isinstance(x, IntEnum):
        return int(x)
    if isinstance(x, bytes):
        return x.hex()
    if isinstance(x, list):
        return [_v(i) for i in x]
    return x


def _fields(obj: Any, desc: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        f["name"]: _v(getattr(obj, f["name"]))
        for f in desc["fields"]
        if not f.get("reserved") and f["name"] not in drop
    }


def _layouts(records: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return list(records[name]["layouts"].values())


def _record(records: dict[str, Any], rtype: int, body: Any) -> tuple[str, Any]:
    """One parsed record as ``(name, value)`` in the form of ``golden_json.stream_json``."""
    name = record_name(rtype)
    if isinstance(body, bytes) or name not in records:
        return "optional", {"type": rtype, "body": bytes(body).hex()}
    lay = _layouts(records, name)
    if name in ("LU_GRANT_TABLE",):
        return name, {
            "version": _v(body.header.version),
            "grant_frames": body.grant_frames,
            "status_frames": body.status_frames,
        }
    if name == "LU_EVTCHN_ABI":
        return name, {
            "abi": _v(body.header.abi),
            "control_blocks": [_fields(c, lay[1]) for c in body.control_blocks],
            "event_array_gfns": body.event_array_gfns,
        }
    if name == "LU_IOREQ_SERVERS":
        return name, {
            "servers": [
                {
                    **_fields(s.header, lay[1], drop=("nr_ranges",)),
                    "ranges": [_fields(r, lay[2]) for r in s.ranges],
                }
                for s in body.servers
            ]
        }
    if name == "HVM_CONTEXT":
        return name, {
            "entries": [
                {
                    "typecode": e.desc.typecode,
                    "instance": e.desc.instance,
                    "data": (e._raw_data if hasattr(e, "_raw_data") else e.data).hex(),
                }
                for e in body.entries
            ]
        }
    if name.startswith("X86_PV_VCPU_"):
        return name, {"vcpu_id": body.header.vcpu_id, "context": body.context.hex()}
    if name == "X86_CPUID_POLICY":
        return name, {"leaves": [_fields(e, lay[0]) for e in body.leaves]}
    if records[name]["bulk"]:
        return name, {"entries": [_fields(e, lay[-1]) for e in body.entries]}
    return name, _fields(body, lay[0])


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_kaitai_reads_golden_like_xenlu(parsers: Path, path: Path) -> None:
    data = path.read_bytes()
    stream = decode_lu(data)
    want = [tuple(r) for sec in stream_json(stream)["sections"] for r in sec]
    cls = _class(parsers, ksy_name(stream.epoch)[: -len(".ksy")])
    parsed = cls.from_bytes(data)
    records = epoch_schema(stream.epoch)["records"]
    got = [
        _record(records, int(r.type), r.body)
        for r in parsed.records
        if int(r.type) not in (0, 0x4000007F)  # END, LU_SECTION_END: not in the JSON form
    ]
    assert got == want
    # Framing: every record, its length and its padding, up to END.
    assert sum(8 + r.length + len(r.padding) for r in parsed.records) == len(data)
    ends = [r.body for r in parsed.records if int(r.type) == 0x4000007F]
    assert [e.section_bytes for e in ends] == [
        (stream.sections[i].end.section_bytes) for i in range(len(ends))
    ]


LIBXC_VALID = [v for v in VECTORS if v.error is None and v.format == "libxc"]


def test_kaitai_reads_libxc_vectors_like_xenlu(parsers: Path) -> None:
    assert LIBXC_VALID
    cls = _class(parsers, LIBXC_KSY[: -len(".ksy")])
    s = epoch_schema(EPOCHS[-1])["records"]
    for v in LIBXC_VALID:
        stream = decode_libxc(v.data)[0]
        parsed = cls.from_bytes(v.data)
        assert parsed.image_header.version == stream.header.version, v.name
        assert int(parsed.domain_header.type) == stream.domain.type, v.name
        assert [int(r.type) for r in parsed.records] == [r.type for r in stream.records], v.name
        for r, x in zip(parsed.records, stream.records, strict=True):
            name = record_name(x.type, "libxc")
            if name in s and name != "HVM_CONTEXT":
                assert _record(s, int(r.type), r.body)[1] == to_jsonable(x.value), (v.name, name)


def test_kaitai_refuses_reserved_fields_not_zero(parsers: Path) -> None:
    """Every vector whose one fault is a non-zero reserved field fails the ``valid`` check."""
    import kaitaistruct

    from tests.vectors.lu_vectors import INVALID
    from xenlu.core.epochs import epoch_of, parse_epoch

    faults = [v for v in INVALID if (v.field or "").split(".")[-1].startswith("rsvd")]
    assert len(faults) >= 20
    for v in faults:
        epoch = epoch_of(*parse_epoch(v.epoch))
        cls = _class(parsers, ksy_name(epoch)[: -len(".ksy")])
        with pytest.raises(kaitaistruct.ValidationFailedError):
            cls.from_bytes(v.data)


def test_kaitai_reads_every_structurally_valid_vector(parsers: Path) -> None:
    from tests.vectors.lu_vectors import GOLDEN, SEMANTIC_ONLY
    from xenlu.core.epochs import epoch_of, parse_epoch

    for v in [*GOLDEN, *SEMANTIC_ONLY]:
        epoch = epoch_of(*parse_epoch(v.epoch))
        parsed = _class(parsers, ksy_name(epoch)[: -len(".ksy")]).from_bytes(v.data)
        assert sum(8 + r.length + len(r.padding) for r in parsed.records) == len(v.data), v.name
