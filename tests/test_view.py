"""Issue 15 part 1: ``show``, ``dump``/``build`` (the JSON form) and ``diff``.

The JSON form round-trips byte-exactly (golden corpus, the libxc/libxl/xl
vectors, hypothesis streams of every family, unknown and count-0 records);
a hand edit is built, verified and seen; ``show`` prints spec names, hex and
flag names and stops at a fault with the error; ``diff`` finds field,
entry and section differences, and every difference between a 4.11 stream
and its 4.15 upgrade is one the conversion report names.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vectors.libxc_vectors import VECTORS
from xenlu import api
from xenlu.cli.app import main
from xenlu.core.errors import RecordError, XenLUError
from xenlu.core.registry import Record, UnknownRecord
from xenlu.host.compat import convert
from xenlu.lu.records import Bulk, T
from xenlu.lu.stream import LUStream, decode_lu, encode_lu
from xenlu.testing import strategies as S
from xenlu.testing.hostgen import make_host
from xenlu.tools.jsonform import JSON_FORMAT, JsonFormError, build, dumps, from_json, loads, to_json
from xenlu.tools.show import show_lines
from xenlu.tools.streamdiff import Difference, diff_streams

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_FILES = sorted(GOLDEN.glob("*/*.bin"))
VALID_VECTORS = [v for v in VECTORS if v.error is None]


def round_trip(data: bytes, fmt: str = "auto", inline_max: int = 64) -> bytes:
    """bytes → stream → JSON text → JSON data → bytes."""
    doc = to_json(api.decode(data, fmt), inline_max=inline_max)
    return build(loads(dumps(doc)))


# --- dump / build: byte-exact ----------------------------------------------------------


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_round_trip(path: Path) -> None:
    data = path.read_bytes()
    for inline_max in (64, 0, -1):  # lists, base64 columns, every column a list
        assert round_trip(data, "lu", inline_max) == data


@pytest.mark.parametrize("vec", VALID_VECTORS, ids=lambda v: v.name)
def test_vector_round_trip(vec: Any) -> None:
    assert round_trip(vec.data, vec.format) == vec.data
    assert round_trip(vec.data, vec.format, 0) == vec.data


@settings(max_examples=30, deadline=None)
@given(st.one_of(S.streams(max_domains=3), S.libxc_streams(), S.libxl_streams(xl=None)))
def test_round_trip_property_every_family(data: bytes) -> None:
    assert round_trip(data) == data
    assert round_trip(data, inline_max=0) == data


@settings(max_examples=15, deadline=None)
@given(S.wild_hosts(max_domains=3))
def test_round_trip_property_wild_hosts(host: LUStream) -> None:
    data = encode_lu(host)
    assert round_trip(data) == data


def _with_extra_records() -> bytes:
    """An LU stream with an unknown optional record and count-0 bulk records."""
    host = make_host("4.15", n_hvm=1, mem_mib=2, dom0_mem_mib=2)
    g = host.global_section
    empty = Bulk(np.zeros(0, dtype=g.one(T.LU_XEN_PAGES).entries.dtype))
    g.records.append(Record(T.LU_XEN_PAGES, empty))  # repeatable; count 0 (§4.4)
    unknown = UnknownRecord(0x8000_1234, bytes(range(13)))
    host.domains[0].records.append(Record(0x8000_1234, unknown))
    data = encode_lu(host)
    api.verify(data, "lu")
    return data


def test_unknown_and_count_zero_records_round_trip() -> None:
    data = _with_extra_records()
    doc = to_json(api.decode(data))
    recs = doc["domains"][0]["records"]
    assert {"type": "0x80001234", "name": "optional", "body": bytes(range(13)).hex()} in recs
    counts = [
        r["value"]["entries"]["count"]
        for r in doc["global_section"]["records"]
        if r["name"] == "LU_XEN_PAGES"
    ]
    assert 0 in counts
    assert build(loads(dumps(doc))) == data


def test_form_is_versioned_and_documented_names() -> None:
    data = (GOLDEN / "4.15" / "mixed.bin").read_bytes()
    doc = to_json(api.decode(data))
    assert doc["format"] == JSON_FORMAT and doc["family"] == "lu" and doc["epoch"] == "4.15"
    dom = doc["domains"][0]["records"][0]
    assert dom["name"] == "LU_DOMAIN" and dom["layout"] == "LU_DOMAIN@4.15"
    assert dom["value"]["max_vcpus"] == 2 and "rsvd" not in json.dumps(dom)
    p2m = next(r for r in doc["domains"][1]["records"] if r["name"] == "LU_P2M")
    assert list(p2m["value"]["entries"]["columns"]) == [
        "gfn",
        "mfn",
        "nr_pages",
        "p2m_type",
        "access",
    ]
    # Large arrays are base64 per column, and decode back with numpy.
    big = to_json(api.decode(data), inline_max=0)
    p2m = next(r for r in big["domains"][1]["records"] if r["name"] == "LU_P2M")
    assert set(p2m["value"]["entries"]["columns"]["gfn"]) == {"base64"}


# --- hand edits -----------------------------------------------------------------------


def _edit(doc: dict[str, Any], domid: int, field: str, value: Any) -> None:
    for sec in doc["domains"]:
        rec = sec["records"][0]
        if rec["value"]["domid"] == domid:
            rec["value"][field] = value
            return
    raise AssertionError(domid)


def test_hand_edit_is_built_and_seen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = (GOLDEN / "4.15" / "mixed.bin").read_bytes()
    doc = to_json(api.decode(data))
    _edit(doc, 0, "max_vcpus", 1)  # dom0 keeps its records for vCPUs 0 and 1
    edited = tmp_path / "e.json"
    edited.write_text(dumps(doc))
    out = tmp_path / "e.lu"
    assert main(["build", str(edited), "-o", str(out)]) == 0
    new = decode_lu(out.read_bytes())  # lengths and section crc32c recomputed
    assert new.domain(0).info.max_vcpus == 1
    assert main(["verify", "-q", str(out)]) == 0  # structurally still valid …
    capsys.readouterr()
    assert main(["validate", "--json", str(out)]) == 1  # … but the host is not
    codes = {f["code"] for f in json.loads(capsys.readouterr().out)["findings"]}
    assert "PV_VCPU_RANGE" in codes
    assert [d.to_json() for d in diff_streams(api.decode(data), new)] == [
        {
            "section": "domain 0",
            "domid": 0,
            "record": "LU_DOMAIN",
            "field": "max_vcpus",
            "kind": "changed",
            "old": 2,
            "new": 1,
        }
    ]


def test_invalid_hand_edit_is_refused_unless_no_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (GOLDEN / "4.15" / "mixed.bin").read_bytes()
    doc = to_json(api.decode(data))
    _edit(doc, 1, "domain_type", 7)  # not x86_pv (1) or x86_hvm (2)
    with pytest.raises(RecordError) as exc:
        build(doc)
    assert exc.value.field == "domain_type"
    src = tmp_path / "bad.json"
    src.write_text(dumps(doc))
    out = tmp_path / "bad.lu"
    assert main(["build", str(src), "-o", str(out)]) == 1
    assert not out.exists()
    assert "RecordError" in capsys.readouterr().err
    assert main(["build", "--no-check", str(src), "-o", str(out)]) == 0
    assert main(["verify", "-q", str(out)]) == 1


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda d: d.update(format="xenlu-json/0"), "format"),
        (lambda d: d.update(family="qemu"), "family"),
        (lambda d: d["domains"][0]["records"][0]["value"].pop("domid"), "domains[0].records[0]"),
        (
            lambda d: d["domains"][0]["records"][0]["value"].update(max_vcpus="many"),
            "domains[0].records[0].value.max_vcpus",
        ),
        (
            lambda d: d["domains"][0]["records"][0]["value"].update(max_vcpus=1 << 40),
            "",
        ),
        (
            lambda d: d["global_section"]["records"][2]["value"]["entries"].update(count=99),
            "global_section.records[2].value.entries.columns.start_mfn",
        ),
        (
            lambda d: d["global_section"]["records"][2]["value"]["entries"]["columns"].update(
                nope=[1]
            ),
            "global_section.records[2].value.entries.columns",
        ),
        (lambda d: d["global_section"]["records"][0].update(type="0x7777"), "records[0]"),
    ],
)
def test_bad_json_is_located(edit: Any, path: str) -> None:
    data = (GOLDEN / "4.15" / "mixed.bin").read_bytes()
    doc = to_json(api.decode(data))
    edit(doc)
    with pytest.raises(XenLUError) as exc:
        build(doc)
    if isinstance(exc.value, JsonFormError):
        assert path in exc.value.path, (path, str(exc.value))
    assert "Traceback" not in str(exc.value)


def test_from_json_rebuilds_equal_model() -> None:
    for vec in VALID_VECTORS[:8]:
        s = api.decode(vec.data, vec.format)
        assert from_json(json.loads(json.dumps(to_json(s)))) == s


# --- show ---------------------------------------------------------------------------------


def test_show_golden_text() -> None:
    text = "\n".join(show_lines((GOLDEN / "4.15" / "mixed.bin").read_bytes()))
    # Names, hex frame numbers, flag names, enum names, UUIDs, epoch labels.
    expected = [
        "#1 @0x10 0x40000001 LU_HOST_INFO 48 bytes",
        "    lu_bootmem_start         0x8000000",
        "      [1] start_mfn 0x2000–0x2007, kind LU_DATA, 8 pages",
        "    crc32c                   0x2f297e92",
        "#5 @0x128 0x40000010 LU_DOMAIN 72 bytes [LU_DOMAIN@4.15]",
        "    domain_type              1 (x86_pv)",
        "    handle                   00010203-0405-0607-0809-0a0b0c0d0e0f",
        "    vmtrace_size [4.15+]     0",
        "      [0] gfn 0x0–0x1f → mfn 0x20000–0x2001f, p2m_type ram_rw, access rwx, 32 pages",
        "      [2] gfn 0x200–0x201 → mfn 0x3000–0x3001, p2m_type ram_shared, access rwx, 2 pages",
        "      [2] mfn 0x10002, type l3, flags 0x2 (validated), type_count 0",
    ]
    for line in expected:
        assert line + "\n" in text + "\n", line
    assert "lu_state                 0x5 (running|privileged)" in text
    assert text.splitlines()[-1] == "#53 @0x1130 0x00000000 END"


def test_show_collapses_runs_and_all_lists_every_entry() -> None:
    host = make_host("4.15", n_hvm=1, mem_mib=64)
    data = encode_lu(host)
    short = list(show_lines(data, record="LU_PAGE_TYPES"))
    full = list(show_lines(data, record="LU_PAGE_TYPES", show_all=True))
    n = sum(len(d.page_types) for d in host.domains)
    assert any("runs" in line for line in short)
    assert len(full) > n > len(short)


def test_show_filters_domain_and_record() -> None:
    data = (GOLDEN / "4.15" / "mixed.bin").read_bytes()
    lines = list(show_lines(data, domain=1, record="LU_DOMAIN"))
    heads = [line for line in lines if line.startswith("#")]
    assert len(heads) == 1 and "LU_DOMAIN" in heads[0]
    assert any("domid                    1" in line for line in lines)


def test_show_broken_stream_lists_up_to_the_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (GOLDEN / "4.15" / "mixed.bin").read_bytes()
    cut = tmp_path / "cut.lu"
    cut.write_bytes(data[:700])
    assert main(["show", str(cut)]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("-- section: global")
    assert lines[-1].startswith("error: FramingError: offset 0x2a8")
    assert any(line.startswith("#11 ") for line in lines)
    assert err.count("\n") == 1 and "FramingError" in err


def test_show_checksum_fault_after_listing(capsys: pytest.CaptureFixture[str]) -> None:
    data = bytearray((GOLDEN / "4.13" / "pv.bin").read_bytes())
    s = decode_lu(bytes(data))
    end = s.domains[0].end
    assert end is not None
    # Flip a byte in the first domain's LU_DOMAIN handle: the record still
    # decodes, the section crc32c no longer matches.
    off = s.domains[0].records[0].offset
    assert off is not None
    data[off + 8 + 12] ^= 0xFF
    lines: list[str] = []
    with pytest.raises(XenLUError) as exc:
        lines.extend(show_lines(bytes(data)))
    assert type(exc.value).__name__ == "ChecksumError"
    assert lines and lines[-1].endswith("END")


@pytest.mark.parametrize("vec", VALID_VECTORS[:12], ids=lambda v: v.name)
def test_show_every_family(vec: Any) -> None:
    lines = list(show_lines(vec.data, vec.format))
    assert any(line.startswith("#") for line in lines)


def test_show_cli_memory_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xenlu.lu.handover import write_handover_file

    host = make_host("4.15", n_hvm=1, mem_mib=2, dom0_mem_mib=2)
    img = tmp_path / "mem.img"
    write_handover_file(host, str(img))
    start, size = host.host.lu_bootmem_start, host.host.lu_bootmem_size
    arg = f"{size >> 20}M@{start:#x}"
    rc = main(["show", "--liveupdate", arg, "--record", "LU_VERSION", str(img)])
    assert rc == 0, capsys.readouterr().err
    assert "xen_minor                15" in capsys.readouterr().out


# --- diff --------------------------------------------------------------------------------


def test_diff_identical_streams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = GOLDEN / "4.15" / "hvm.bin"
    assert main(["diff", str(p), str(p)]) == 0
    assert capsys.readouterr().out == "equal\n"
    assert main(["diff", "--json", str(p), str(p)]) == 0
    assert json.loads(capsys.readouterr().out)["equal"] is True


def test_diff_bulk_entries_added_removed_changed() -> None:
    a = make_host("4.15", n_hvm=1, mem_mib=8)
    b = decode_lu(encode_lu(a))
    dom = b.domains[1]
    i = next(k for k, r in enumerate(dom.records) if r.type == T.LU_PAGE_OWNERSHIP)
    arr = dom.records[i].value.entries.copy()
    arr = np.concatenate([arr[1:], arr[-1:]])  # drop the first, duplicate the last
    arr[0]["flags"] ^= 1
    dom.records[i] = Record(T.LU_PAGE_OWNERSHIP, Bulk(arr))
    diffs = diff_streams(a, b)
    assert len(diffs) == 1
    d = diffs[0]
    assert (d.section, d.record, d.field, d.kind) == (
        "domain 1",
        "LU_PAGE_OWNERSHIP",
        "entries",
        "entries",
    )
    assert d.counts["added"] == 1 and d.counts["removed"] == 1 and d.counts["changed"] == 1
    assert d.examples["changed"][0].startswith("start_mfn 0x")
    assert "flags" in d.examples["changed"][0]


def test_diff_split_records_compare_equal() -> None:
    host = make_host("4.15", n_hvm=1, mem_mib=8)
    a = decode_lu(encode_lu(host))
    b = decode_lu(encode_lu(host, max_record_bytes=256))  # bulk records split differently
    assert diff_streams(a, b) == []


def test_diff_sections_added_and_families(tmp_path: Path) -> None:
    a = make_host("4.15", n_hvm=2, mem_mib=2, dom0_mem_mib=2)
    b = make_host("4.15", n_hvm=1, mem_mib=2, dom0_mem_mib=2)
    kinds = {(d.section, d.kind) for d in diff_streams(a, b) if not d.record}
    assert ("domain 2", "removed") in kinds
    xc = api.decode(VALID_VECTORS[0].data, VALID_VECTORS[0].format)
    with pytest.raises(XenLUError, match="cannot compare"):
        diff_streams(a, xc)


def test_diff_libxc_field(tmp_path: Path) -> None:
    vec = next(v for v in VALID_VECTORS if v.name == "hvm_v3_valid")
    doc = to_json(api.decode(vec.data, "libxc"))
    tsc = next(r for r in doc["records"] if r["name"] == "X86_TSC_INFO")
    tsc["value"]["khz"] += 1
    a, b = api.decode(vec.data), from_json(doc)
    (d,) = diff_streams(a, b)
    assert (d.record, d.field, d.kind, d.new - d.old) == ("X86_TSC_INFO", "khz", "changed", 1)


def _named_by(report: Any, d: Difference) -> bool:
    """Whether the conversion report names the difference ``d``."""
    if d.record == "LU_VERSION":
        return bool(report.source != report.target)  # the version is what converting changes
    stem = d.field.split(".")[0].split("[")[0]
    for item in [*report.fills, *report.losses]:
        if item.record != d.record or item.domid != d.domid:
            continue
        names = {item.field.split(".")[0], item.field.split("[")[0]}
        text = getattr(item, "rule", "") or getattr(item, "what", "")
        if stem in names or d.field.startswith(item.field.split(".")[0]) or stem in text:
            return True
        if d.kind == "entries" and item.field in d.examples.get("fields added", []):
            return True
    return False


@pytest.mark.parametrize("target", ["4.15", "4.21"])
@pytest.mark.parametrize("source", ["hostgen", "4.11/epoch", "4.11/mixed", "4.13/hvm"])
def test_diff_upgrade_names_only_reported_changes(source: str, target: str) -> None:
    if source == "hostgen":
        old = make_host("4.11", n_hvm=2, mem_mib=4)
    else:
        old = decode_lu((GOLDEN / f"{source}.bin").read_bytes())
    new, report = convert(old, target)
    diffs = diff_streams(old, decode_lu(encode_lu(new)))
    assert diffs
    unnamed = [d.lines()[0] for d in diffs if not _named_by(report, d)]
    assert unnamed == []
    # A change the conversion did not make is not named by its report.
    doc = to_json(new)
    _edit(doc, 1, "max_vcpus", 7)
    extra = [d for d in diff_streams(old, from_json(doc)) if not _named_by(report, d)]
    assert [(d.domid, d.record, d.field) for d in extra] == [(1, "LU_DOMAIN", "max_vcpus")]


def test_diff_cli_differ_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = make_host("4.11", n_hvm=1, mem_mib=2, dom0_mem_mib=2)
    a, b = tmp_path / "a.lu", tmp_path / "b.lu"
    a.write_bytes(encode_lu(old))
    assert main(["convert", "--to", "4.15", str(a), str(b)]) == 0
    capsys.readouterr()
    assert main(["diff", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "LU_VERSION.xen_minor: 11 → 15" in out and out.rstrip().endswith("differences")
    assert main(["diff", "-q", str(a), str(b)]) == 1
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "name", ["libxl_xenstore_data_odd_strings", "xl_embedded_page_data_type_6", "hvm_v3_valid"]
)
def test_show_libxl_xl_up_to_the_fault(name: str) -> None:
    vec = next(v for v in VECTORS if v.name == name)
    lines: list[str] = []
    if vec.error is None:
        lines.extend(show_lines(vec.data, vec.format))
        assert lines[-1].lstrip().startswith("#") and lines[-1].endswith("END 0 bytes")
        return
    with pytest.raises(XenLUError) as exc:
        lines.extend(show_lines(vec.data, vec.format))
    assert type(exc.value).__name__ == vec.error and exc.value.offset == vec.offset  # type: ignore[attr-defined]
    # Every record before the faulty one is listed, the embedded libxc records too.
    listed = [ln.strip() for ln in lines if ln.strip().startswith("#")]
    assert listed and all(int(ln.split()[1][1:], 16) < vec.offset for ln in listed)
    assert any("X86_CPUID_POLICY" in ln for ln in listed)


def test_show_checkpointed_libxl_lists_decoded_stream() -> None:
    vec = next(v for v in VECTORS if v.name == "libxl_remus_two_checkpoints_valid")
    lines = list(show_lines(vec.data, "libxl"))
    heads = [ln for ln in lines if ln.startswith("#")]
    assert [h.split()[3] for h in heads][-2:] == ["CHECKPOINT_END", "END"]
    assert sum("LIBXL_HEADER" in ln for ln in lines) == 1


def test_diff_arrays_duplicate_keys_and_plain() -> None:
    from xenlu.tools.streamdiff import diff_arrays

    dt = np.dtype([("leaf", "<u4"), ("subleaf", "<u4"), ("a", "<u4")])
    a = np.array([(7, 0, 1), (7, 1, 2), (0, 0, 3)], dtype=dt)
    b = np.array([(0, 0, 3), (7, 0, 1), (7, 1, 5), (7, 2, 6)], dtype=dt)
    d = diff_arrays(a, b)
    assert d is not None
    assert d["counts"] == {"added": 1, "removed": 0, "changed": 1, "old": 3, "new": 4}
    assert diff_arrays(a, a.copy()) is None
    p = diff_arrays(np.array([1, 2, 3], "<u8"), np.array([2, 3, 4, 4], "<u8"), "pfns")
    assert p is not None and (p["counts"]["added"], p["counts"]["removed"]) == (2, 1)


def test_show_domain_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--domain", "1", str(GOLDEN / "4.15" / "pv.bin")]) == 0
    assert capsys.readouterr().out == "(no domain 1 in this stream)\n"
    xl = tmp_path / "save.xl"
    xl.write_bytes(next(v for v in VECTORS if v.name == "xl_valid").data)
    assert main(["show", "--domain", "1", str(xl)]) == 2
    assert "LU stream" in capsys.readouterr().err


def test_show_unknown_record_body_hex() -> None:
    text = "\n".join(show_lines(_with_extra_records()))
    assert "0x80001234 optional 13 bytes" in text
    assert "    body " + bytes(range(13)).hex() in text
    assert "LU_XEN_PAGES 8 bytes" in text  # the count-0 record: its count header only
    assert "entries: 0 entries" in text


def test_dump_stdout_build_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    src = GOLDEN / "4.12" / "epoch.bin"
    assert main(["dump", "--inline-max", "0", str(src)]) == 0
    text = capsys.readouterr().out
    assert json.loads(text)["format"] == JSON_FORMAT
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    out = tmp_path / "back.lu"
    assert main(["build", "-", "-o", str(out)]) == 0
    assert out.read_bytes() == src.read_bytes()


def _leaves(x: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(x, dict):
        for k, v in x.items():
            out += _leaves(v, (*path, k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out += _leaves(v, (*path, i))
    return [*out, path] if path else out


_EDIT_DOCS = [
    to_json(api.decode((GOLDEN / "4.15" / "mixed.bin").read_bytes())),
    to_json(api.decode(next(v for v in VALID_VECTORS if v.name == "xl_valid").data)),
]
_EDIT_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.sampled_from(["", "zz", "0x10", "O", "<U4", "AAAA", [], {}, {"base64": "!!"}, ["00"]]),
    st.just({"itemsize": 1 << 40, "fields": []}),
    st.just({"count": 1 << 40, "dtype": "<u8", "values": {"base64": "AAAAAAAAAAA="}}),
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(range(len(_EDIT_DOCS))), st.integers(min_value=0), _EDIT_VALUES)
def test_any_hand_edit_builds_or_raises_a_typed_error(which: int, at: int, value: Any) -> None:
    doc = json.loads(json.dumps(_EDIT_DOCS[which]))
    paths = _leaves(doc)
    path = paths[at % len(paths)]
    target = doc
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    # Either it builds, or a JsonFormError with its path / verify's located
    # error; anything else (TypeError, MemoryError …) fails the test.
    with contextlib.suppress(XenLUError):
        build(doc)


def test_diff_nested_streams_xl() -> None:
    by = {v.name: v for v in VALID_VECTORS}
    a = api.decode(by["xl_valid"].data)
    b = api.decode(by["xl_pv_valid"].data)
    diffs = diff_streams(a, b)
    where = {(d.record, d.field, d.kind) for d in diffs}
    assert ("stream/LIBXC_CONTEXT", "stream.domain.type", "changed") in where
    assert ("stream/LIBXC_CONTEXT/stream/X86_PV_INFO", "", "added") in where
    pages = next(d for d in diffs if d.field == "pages")
    assert pages.examples["removed"][0].startswith("pfn 0x0, type 0, page a5a5")
    assert diff_streams(a, api.decode(by["xl_valid"].data)) == []


_FAMILY_STREAMS = st.one_of(S.streams(max_domains=3), S.libxc_streams(), S.libxl_streams(xl=None))


@settings(max_examples=25, deadline=None)
@given(_FAMILY_STREAMS, _FAMILY_STREAMS)
def test_diff_property_any_two_streams(x: bytes, y: bytes) -> None:
    a, b = api.decode(x), api.decode(y)
    assert diff_streams(a, api.decode(x)) == []
    if api.format_of(a) != api.format_of(b):
        with pytest.raises(XenLUError, match="cannot compare"):
            diff_streams(a, b)
        return
    diffs = diff_streams(a, b)
    assert (diffs == []) == (x == y) or x != y  # equal bytes never differ
    for d in diffs:
        assert d.lines() and json.dumps(d.to_json())


_SHOW_INPUTS = [p.read_bytes() for p in GOLDEN_FILES[:8]] + [v.data for v in VALID_VECTORS[:12]]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(range(len(_SHOW_INPUTS))),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=3),
    st.integers(min_value=0),
)
def test_show_damaged_stream_raises_only_typed_errors(
    which: int, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(_SHOW_INPUTS[which])
    for at, byte in flips:
        data[at % len(data)] = byte
    data = data[: len(data) - cut % 64]
    with contextlib.suppress(XenLUError):
        for _ in show_lines(bytes(data)):
            pass


def test_diff_page_data_matched_by_pfn_across_batches() -> None:
    from xenlu.migration.libxc import PageData, RecType

    vec = next(v for v in VALID_VECTORS if v.name == "hvm_v3_valid")
    a = api.decode(vec.data)
    i, rec = next((i, r) for i, r in enumerate(a.records) if r.type == RecType.PAGE_DATA)
    pd = rec.value
    assert pd.page_count >= 1
    page = bytearray(pd.page(0))
    page[100] ^= 0xFF
    changed = PageData(pd.pfns.copy(), memoryview(bytes(page) + bytes(pd.pages[4096:])))
    records = list(a.records)
    records[i] = Record(rec.type, changed)
    b = type(a)(a.header, a.domain, records)
    (d,) = diff_streams(a, b)
    assert (d.record, d.field, d.counts["changed"], d.counts["added"]) == (
        "PAGE_DATA",
        "pages",
        1,
        0,
    )
    assert d.examples["changed"][0].startswith("pfn 0x")


def test_show_runs_collapse_invalid_mfn_ranges() -> None:
    from xenlu.lu.records import P2mEntry
    from xenlu.tools.show import _array_lines

    a = np.zeros(4, P2mEntry.LAYOUT.dtype)
    a["gfn"] = [0, 16, 32, 48]
    a["mfn"] = [(1 << 64) - 1, (1 << 64) - 1, (1 << 64) - 1, 0x100]
    a["nr_pages"] = 16
    a["p2m_type"] = [4, 4, 4, 0]  # mmio_dm ×3, then ram_rw
    a["access"] = 7
    lines = list(_array_lines("entries", a, False, "", (P2mEntry,)))
    assert lines == [
        "entries: 4 entries, 2 runs",
        "  [0] gfn 0x0–0x2f → mfn INVALID, p2m_type mmio_dm, access rwx, 48 pages",
        "  [3] gfn 0x30–0x3f → mfn 0x100–0x10f, p2m_type ram_rw, access rwx, 16 pages",
    ]


XEN_WRITTEN = sorted((Path(__file__).parent / "vectors" / "xen-written").glob("*.bin"))


@pytest.mark.parametrize("path", XEN_WRITTEN, ids=[p.name for p in XEN_WRITTEN])
def test_dump_build_round_trips_xen_written_files(path: Path) -> None:
    # Files Xen's own convert-legacy-stream wrote, bytes after END included
    # (issue 13: they belong to the container and are kept).
    data = path.read_bytes()
    text = dumps(to_json(api.decode(data)))
    assert api.encode(from_json(loads(text))) == data
