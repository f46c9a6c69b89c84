"""Frozen schemas (xenlu/schemas/lu-<X.Y>.json) and the compatibility check (issue 4).

* The committed schemas equal what the code's declarations generate, byte
  for byte: a wire change is always a reviewed diff (regenerate with
  ``make schemas``).
* Every difference between adjacent epochs is covered by a registered
  upgrade/rollback step of xenlu.host.compat.
* A test mutates a copy of a declaration and shows both checks catch it.
"""

from __future__ import annotations

import argparse
import copy
import errno
import io
from pathlib import Path
from typing import Any, ClassVar

import pytest
from construct import Int16ul, Int32sl, Int32ul

from xenlu.cli.compat import register
from xenlu.core.epochs import EPOCHS, Epoch, fmt_epoch
from xenlu.core.errors import CallerError, InputError
from xenlu.core.layout import Rsvd, fld, packed, reserved
from xenlu.lu import records as lu_records
from xenlu.lu.records import LuDomain413, LuDomainCommon
from xenlu.tools.schema import (
    Difference,
    adjacent_pairs,
    diff,
    dumps,
    epoch_schema,
    load_schema,
    loads_schema,
    packaged_schemas,
    schema_path,
    uncovered,
    write_schemas,
)

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "xenlu" / "schemas"
IDS = [fmt_epoch(e) for e in EPOCHS]
PAIRS = adjacent_pairs()
PAIR_IDS = [f"{fmt_epoch(a)}->{fmt_epoch(b)}" for a, b in PAIRS]


# --- the schema test logic (also run against a mutated declaration below) ---------


def committed_differences(epoch: Epoch) -> list[Difference]:
    """Differences from the committed schema of ``epoch`` to the code's."""
    return diff(load_schema(schema_path(epoch, SCHEMAS)), epoch_schema(epoch))


def committed_message(epoch: Epoch, diffs: list[Difference]) -> str:
    return (
        f"xenlu/schemas/lu-{fmt_epoch(epoch)}.json differs from the code's declarations "
        f"({len(diffs)} differences); first: {diffs[0]}. If the wire change is intended, "
        "register an upgrade/rollback step covering it in xenlu/host/compat.py, regenerate "
        "with `make schemas` and commit the schema diff for review."
    )


def uncovered_message(a: Epoch, b: Epoch, bad: list[Difference]) -> str:
    names = "; ".join(str(d) for d in bad)
    return (
        f"{len(bad)} difference(s) from {fmt_epoch(a)} to {fmt_epoch(b)} are not covered by any "
        f"registered step in xenlu/host/compat.py: {names}"
    )


# --- committed schemas ---------------------------------------------------------------


@pytest.mark.parametrize("epoch", EPOCHS, ids=IDS)
def test_committed_schema_equals_code(epoch: Epoch) -> None:
    diffs = committed_differences(epoch)
    assert not diffs, committed_message(epoch, diffs)
    assert epoch_schema(epoch) == load_schema(schema_path(epoch, SCHEMAS))


@pytest.mark.parametrize("epoch", EPOCHS, ids=IDS)
def test_committed_schema_text_is_canonical(epoch: Epoch) -> None:
    text = schema_path(epoch, SCHEMAS).read_text(encoding="utf-8")
    assert text == dumps(epoch_schema(epoch)), (
        f"xenlu/schemas/lu-{fmt_epoch(epoch)}.json is not in canonical form: run `make schemas`"
    )
    assert text.endswith("}\n")


def test_write_schemas_writes_every_epoch(tmp_path: Path) -> None:
    paths = write_schemas(tmp_path)
    assert [p.name for p in paths] == [f"lu-{fmt_epoch(e)}.json" for e in EPOCHS]
    for e, p in zip(EPOCHS, paths, strict=True):
        assert p.read_text(encoding="utf-8") == (SCHEMAS / p.name).read_text(encoding="utf-8")
        assert load_schema(p) == epoch_schema(e)


def test_schema_content_follows_the_spec() -> None:
    s13 = epoch_schema((4, 13))
    dom = s13["records"]["LU_DOMAIN"]["layouts"]["LU_DOMAIN"]
    assert dom["size"] == 64 and dom["name"] == "LU_DOMAIN@4.13"
    f = {x["name"]: x for x in dom["fields"]}
    assert f["max_grant_frames"]["type"] == "i32"
    assert f["cdf_flags"]["bits"]["5"] == "iommu" and "6" not in f["cdf_flags"]["bits"]
    assert "3" not in f["lu_state"]["bits"]
    assert f["rsvd1"] == {"name": "rsvd1", "offset": 60, "size": 4, "type": "u32", "reserved": True}
    hvm = s13["records"]["HVM_CONTEXT"]["layouts"]
    assert hvm["HVM_VIRIDIAN_VCPU"]["size"] == 216 and hvm["HVM_RTC"]["size"] == 16
    assert hvm["HVM_RTC"]["hvm_typecode"] == 11
    # Every libxc record allowed in a domain section (§4.16), and no other.
    libxc = {n for n, r in s13["records"].items() if r["family"] == "libxc"}
    assert libxc == {
        "X86_PV_INFO",
        "X86_PV_VCPU_BASIC",
        "X86_PV_VCPU_EXTENDED",
        "X86_PV_VCPU_XSAVE",
        "X86_TSC_INFO",
        "HVM_CONTEXT",
        "HVM_PARAMS",
        "X86_PV_VCPU_MSRS",
        "X86_CPUID_POLICY",
        "X86_MSR_POLICY",
    }
    p2m = epoch_schema("4.20")["records"]["LU_P2M"]["layouts"]["LU_P2M entry"]["fields"]
    assert {x["name"]: x for x in p2m}["access"]["values"]["10"] == "r_pw"
    assert (
        "10"
        not in {
            x["name"]: x
            for x in epoch_schema("4.19")["records"]["LU_P2M"]["layouts"]["LU_P2M entry"]["fields"]
        }["access"]["values"]
    )
    assert epoch_schema("4.18") == epoch_schema("4.17")  # 4.18 lies in epoch 4.17


# --- coverage --------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=PAIR_IDS)
def test_every_adjacent_difference_is_covered(a: Epoch, b: Epoch) -> None:
    bad = uncovered(epoch_schema(a), epoch_schema(b))
    assert bad == [], uncovered_message(a, b, bad)


def test_every_pair_of_epochs_is_covered() -> None:
    schemas = {e: epoch_schema(e) for e in EPOCHS}
    for a in EPOCHS:
        for b in EPOCHS:
            bad = uncovered(schemas[a], schemas[b])
            assert bad == [], uncovered_message(a, b, bad)


def test_every_registered_cover_matches_a_real_difference() -> None:
    # A step must not claim a difference that does not exist (stale covers).
    from xenlu.host.compat import STEPS

    for (a, b), step in STEPS.items():
        diffs = diff(epoch_schema(a), epoch_schema(b))
        for c in step.covers:
            assert any(
                d.record == c.record
                and d.kind == c.kind
                and c.path in (d.path, d.path.split(":", 1)[-1])
                for d in diffs
            ), f"step {step.name} covers {c} but there is no such difference"


def test_same_epoch_differences_are_never_covered() -> None:
    a = epoch_schema((4, 15))
    b = copy.deepcopy(a)
    evt = b["records"]["LU_EVTCHNS"]["layouts"]["LU_EVTCHNS entry"]["fields"]
    evt[8]["type"] = "i32"  # fifo_lastq retyped, in the same epoch
    bad = uncovered(a, b)
    assert [(d.kind, d.path) for d in bad] == [("field-retyped", "LU_EVTCHNS entry:fifo_lastq")]


def test_diff_classifies_every_kind() -> None:
    a = epoch_schema((4, 16))
    b = copy.deepcopy(a)
    recs: dict[str, Any] = b["records"]
    del recs["LU_IOREQ_SERVERS"]
    recs["LU_NEW"] = {"type": "0x40000020", "family": "lu", "bulk": False, "layouts": {}}
    recs["LU_VERSION"]["type"] = "0x40000099"
    lay = recs["LU_HOST_INFO"]["layouts"]["LU_HOST_INFO"]
    lay["size"] = 56
    fields = {f["name"]: f for f in lay["fields"]}
    fields["nr_domains"]["offset"] = 44
    fields["max_page"]["size"], fields["max_page"]["type"] = 4, "u32"
    fields["gnttab_max_frames"]["type"] = "i32"
    fields["page_shift"]["values"] = {"13": "8 KiB"}
    fields["gnttab_max_version"]["reserved"] = True
    lay["fields"].append({"name": "extra", "offset": 48, "size": 8, "type": "u64"})
    lay["fields"].remove(fields["lu_bootmem_size"])
    dom = recs["LU_DOMAIN"]["layouts"]["LU_DOMAIN"]["fields"]
    cdf = next(f for f in dom if f["name"] == "cdf_flags")
    cdf["bits"]["8"] = "new_bit"
    del cdf["bits"]["0"]
    mvc = next(f for f in dom if f["name"] == "max_vcpus")
    mvc["min"] = 2
    del recs["HVM_CONTEXT"]["layouts"]["HVM_RTC"]
    kinds = {(d.kind, d.record, d.path) for d in diff(a, b)}
    assert kinds == {
        ("record-removed", "LU_IOREQ_SERVERS", ""),
        ("record-added", "LU_NEW", ""),
        ("record-changed", "LU_VERSION", ""),
        ("size-changed", "LU_HOST_INFO", "LU_HOST_INFO"),
        ("field-moved", "LU_HOST_INFO", "LU_HOST_INFO:nr_domains"),
        ("field-resized", "LU_HOST_INFO", "LU_HOST_INFO:max_page"),
        ("field-retyped", "LU_HOST_INFO", "LU_HOST_INFO:gnttab_max_frames"),
        ("value-removed", "LU_HOST_INFO", "LU_HOST_INFO:page_shift.4 KiB"),
        ("value-added", "LU_HOST_INFO", "LU_HOST_INFO:page_shift.8 KiB"),
        ("field-reserved-changed", "LU_HOST_INFO", "LU_HOST_INFO:gnttab_max_version"),
        ("field-added", "LU_HOST_INFO", "LU_HOST_INFO:extra"),
        ("field-removed", "LU_HOST_INFO", "LU_HOST_INFO:lu_bootmem_size"),
        ("flag-bit-added", "LU_DOMAIN", "LU_DOMAIN:cdf_flags.new_bit"),
        ("flag-bit-removed", "LU_DOMAIN", "LU_DOMAIN:cdf_flags.hvm"),
        ("bounds-changed", "LU_DOMAIN", "LU_DOMAIN:max_vcpus"),
        ("layout-removed", "HVM_CONTEXT", "HVM_RTC"),
    }
    assert all(not d.covered for d in diff(a, b))  # same epoch: nothing is covered


def test_load_schema_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert load_schema("4.18")["epoch"] == "4.17"
    assert load_schema((4, 13)) == load_schema(SCHEMAS / "lu-4.13.json")
    with pytest.raises(InputError, match=r"cannot read schema .*missing\.json") as missing:
        load_schema(tmp_path / "missing.json")
    assert missing.value.errno == errno.ENOENT
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(CallerError, match="not a xenlu-lu-schema"):
        load_schema(tmp_path / "bad.json")
    assert diff("code:4.13", "4.13") == []


# --- a mutated copy of a declaration is caught ------------------------------------------


@packed(name="LU_DOMAIN@4.13")
class MutatedLuDomain413(LuDomainCommon):
    """A copy of LU_DOMAIN@4.13 with iommu_opts resized from u32 to u16 (never registered)."""

    max_grant_frames: int = fld(Int32sl, doc="negative = host default")
    max_maptrack_frames: int = fld(Int32sl, doc="negative = host default")
    iommu_opts: int = fld(Int16ul, bits={0: "no_sharept"})
    rsvd_pad: ClassVar[Rsvd] = reserved(Int16ul)
    rsvd1: ClassVar[Rsvd] = reserved(Int32ul)


def test_mutated_declaration_fails_the_schema_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    # The copy has the real one's size and every other field unchanged.
    assert MutatedLuDomain413.LAYOUT.size == LuDomain413.LAYOUT.size
    monkeypatch.setitem(lu_records.LU_DOMAIN_LAYOUTS, (4, 13), MutatedLuDomain413)

    # 1. The committed schema no longer equals the code: the test names the field.
    diffs = committed_differences((4, 13))
    got = {(d.kind, d.path) for d in diffs}
    assert ("field-resized", "LU_DOMAIN:iommu_opts") in got
    assert ("field-added", "LU_DOMAIN:rsvd_pad") in got
    msg = committed_message((4, 13), diffs)
    assert "lu-4.13.json" in msg and "make schemas" in msg and "iommu_opts" in msg
    assert committed_differences((4, 12)) == []  # other epochs are untouched

    # 2. Even with the schema regenerated, the change is not covered by any step.
    bad = uncovered(epoch_schema((4, 13)), epoch_schema((4, 14)))
    assert ("field-resized", "LU_DOMAIN:iommu_opts") in {(d.kind, d.path) for d in bad}
    assert "iommu_opts" in uncovered_message((4, 13), (4, 14), bad)
    bad = uncovered(epoch_schema((4, 12)), epoch_schema((4, 13)))
    assert [(d.kind, d.path) for d in bad] == [("field-added", "LU_DOMAIN:rsvd_pad")]


# --- CLI --------------------------------------------------------------------------------


def _run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="xenlu")
    register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    rc: int = args.func(args)
    return rc


def test_cli_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert _run(["schema", "diff", "4.12", "code:4.13"]) == 0
    out = capsys.readouterr().out
    assert "LU_DOMAIN LU_DOMAIN:iommu_opts: field-added" in out and "all covered" in out
    assert _run(["schema", "diff", "code:4.13", "4.13"]) == 0
    assert "no differences" in capsys.readouterr().out
    # An uncovered difference: exit 1, named.
    bad = epoch_schema((4, 13))
    bad["records"]["LU_DOMAIN"]["layouts"]["LU_DOMAIN"]["fields"][-2]["type"] = "i32"
    (tmp_path / "bad.json").write_text(dumps(bad))
    assert _run(["schema", "diff", "code:4.13", str(tmp_path / "bad.json")]) == 1
    assert "iommu_opts: field-retyped ('u32' -> 'i32') [UNCOVERED]" in capsys.readouterr().out
    # dump and write
    assert _run(["schema", "dump", "--epoch", "4.18"]) == 0
    assert capsys.readouterr().out == dumps(epoch_schema("4.17"))
    assert _run(["schema", "write", str(tmp_path / "s")]) == 0
    assert len(list((tmp_path / "s").glob("lu-*.json"))) == len(EPOCHS)
    # errors: one line on stderr; a missing file is I/O (74); usage errors exit 2
    assert _run(["schema", "diff", "4.13", str(tmp_path / "none.json")]) == 74
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.json" in err
    with pytest.raises(SystemExit) as exc:
        _run(["schema", "dump", "--epoch", "5.0"])
    assert exc.value.code == 2


# --- packaged schemas (issue 11) ----------------------------------------------------------


def test_epoch_schemas_come_from_the_package_never_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A decoy schemas/ in the current directory is ignored.
    (tmp_path / "schemas").mkdir()
    decoy = epoch_schema((4, 14))
    decoy["records"]["LU_DOMAIN"]["type"] = "0x40000099"
    (tmp_path / "schemas" / "lu-4.14.json").write_text(dumps(decoy))
    monkeypatch.chdir(tmp_path)
    assert schema_path((4, 14)) == SCHEMAS / "lu-4.14.json"
    assert Path(str(packaged_schemas())) == SCHEMAS
    assert load_schema("4.14") == epoch_schema((4, 14)) == load_schema([4, 14])
    assert diff("4.14", "code:4.14") == []
    assert load_schema("4.18") == load_schema((4, 17))  # rounded down to its epoch
    # A relative path is a file, not an epoch: read from the current directory.
    assert load_schema("schemas/lu-4.14.json") == decoy
    with pytest.raises(CallerError, match=r"known epochs"):
        load_schema((4, 15, 1))


def test_loads_schema_refuses_what_is_not_a_schema(tmp_path: Path) -> None:
    assert loads_schema(dumps(epoch_schema("4.15")), "x") == epoch_schema("4.15")
    with pytest.raises(CallerError, match="cannot read schema <stdin>: not JSON"):
        loads_schema("{nope", "<stdin>")
    with pytest.raises(CallerError, match="cannot read schema <stdin>: not JSON"):
        loads_schema(b"\xff\xfe", "<stdin>")
    with pytest.raises(CallerError, match="<stdin> is not a xenlu-lu-schema/1 schema"):
        loads_schema("[1, 2]", "<stdin>")
    with pytest.raises(InputError, match="Is a directory") as ei:
        load_schema(tmp_path)
    assert ei.value.errno == errno.EISDIR


def _diff_text(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert _run(argv) == 0
    return capsys.readouterr().out


def test_cli_schema_diff_reads_standard_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's pipe: xenlu schema dump --epoch 4.15 | xenlu schema diff 4.14 -
    monkeypatch.chdir(tmp_path)
    dumped = _diff_text(["schema", "dump", "--epoch", "4.15"], capsys)
    expected = _diff_text(["schema", "diff", "4.14", "4.15"], capsys)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(dumped.encode())))
    assert _diff_text(["schema", "diff", "4.14", "-"], capsys) == expected
    assert expected.endswith("8 differences, all covered\n")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(dumped.encode())))
    assert "all covered" in _diff_text(["schema", "diff", "-", "4.14"], capsys)  # rollback
    # Bad input on stdin, closed stdin, both sides from stdin.
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"not json")))
    assert _run(["schema", "diff", "4.14", "-"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "<stdin>: not JSON" in err
    monkeypatch.setattr("sys.stdin", None)  # closed standard input is I/O, exit 74
    assert _run(["schema", "diff", "4.14", "-"]) == 74
    assert "standard input: it is closed" in capsys.readouterr().err
    assert _run(["schema", "diff", "-", "-"]) == 2
    assert "only one of A and B" in capsys.readouterr().err
