"""Issue 14: validate and plan whose cost follows the stream, exact over u64.

* Adversarial shapes (global extents of 2**40 frames, tens of thousands of
  overlapping extents, nested and staircase ownership, one frame claimed by
  thousands of domains, a frame near 2**32): each is validated and planned
  in a subprocess under an address-space limit, and the peak of the memory
  traced during validate + plan must stay a small multiple of the stream's
  size; the findings are asserted exactly.
* Frame numbers at the u64 extremes (2**60, 2**64 - 1, ``max_page`` =
  2**64 - 1) for every ownership, P2M, region and grant rule that reads a
  frame number.
* The ``map_foreign`` extent over own and unowned frames: both rules, each
  naming the frame that breaks it.
* ``xenlu check``: verify + validate in one pass.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_validate import append, codes, edit, set_bulk, set_global_bulk, set_host
from xenlu.cli.app import main
from xenlu.core.registry import Record
from xenlu.host.restore_plan import plan
from xenlu.host.validation import Report, validate
from xenlu.lu.records import Bulk, P2mType, RegionKind, T, XenPageKind
from xenlu.lu.stream import LUDomain, LUStream, encode_lu
from xenlu.testing.hostgen import make_host

TOP = (1 << 64) - 1
F60 = 1 << 60
RAM = int(P2mType.ram_rw)
MAP_FOREIGN = int(P2mType.map_foreign)
OWN_FIELDS = ("start_mfn", "nr_pages")


@pytest.fixture(scope="module")
def small() -> LUStream:
    """dom0 PV, dom1 HVM, dom2 HVM (a grant_map P2M page of dom2 in dom1)."""
    return make_host((4, 16), n_hvm=2, mem_mib=1, dom0_mem_mib=1)


@pytest.fixture(scope="module")
def wide(small: LUStream) -> LUStream:
    """``small`` with max_page = 2**64 - 1: every frame number is in range."""
    return set_host(small, max_page=TOP)


def add_own(s: LUStream, domid: int, start: int, nr: int, flags: int = 0) -> LUStream:
    own = s.domain(domid).ownership
    return set_bulk(
        s, domid, T.LU_PAGE_OWNERSHIP, append(own, start_mfn=start, nr_pages=nr, flags=flags)
    )


def add_p2m(s: LUStream, domid: int, mfn: int, nr: int, typ: int = RAM) -> LUStream:
    p = s.domain(domid).p2m
    gfn = int((p["gfn"] + p["nr_pages"]).max()) + 0x10000
    return set_bulk(s, domid, T.LU_P2M, append(p, gfn=gfn, mfn=mfn, nr_pages=nr, p2m_type=typ))


def only(r: Report, code: str) -> list[dict[str, int | str]]:
    return [f.values for f in r.findings if f.code == code]


# --- u64 extremes: ownership ------------------------------------------------------


@pytest.mark.parametrize("frame", [F60, TOP - 1])
def test_frame_owned_twice_at_u64_extremes(wide: LUStream, frame: int) -> None:
    s = add_own(add_own(wide, 1, frame, 1), 2, frame, 1)
    r = validate(s)
    assert codes(r) == {"OWN_DUPLICATE"}, r.summary()
    got = {(f.domid, f.others, f.values["mfn"]) for f in r.findings}
    assert got == {(1, (2,), frame), (2, (1,), frame)}
    # one frame apart: no conflict (nothing is clipped to a common cap)
    assert validate(add_own(add_own(wide, 1, frame, 1), 2, frame - 1, 1)).findings == []


def test_frame_at_top_and_wrapping_extents_are_beyond_max_page(wide: LUStream) -> None:
    s = add_own(add_own(wide, 1, TOP, 1), 2, TOP, 1)
    r = validate(s)
    assert codes(r) == {"OWN_DUPLICATE", "OWN_BEYOND_MAX_PAGE"}
    assert {f.values["mfn"] for f in r.findings if f.code == "OWN_DUPLICATE"} == {TOP}
    # an extent whose end wraps past 2**64 saturates: beyond max_page, and it
    # overlaps an extent at the top frame
    s = add_own(add_own(wide, 1, TOP - 2, 9), 2, TOP, 1)
    r = validate(s)
    assert {(f.code, f.domid) for f in r.findings} == {
        ("OWN_BEYOND_MAX_PAGE", 1),
        ("OWN_BEYOND_MAX_PAGE", 2),
        ("OWN_DUPLICATE", 1),
        ("OWN_DUPLICATE", 2),
    }
    assert {f.values["mfn"] for f in r.findings if f.code == "OWN_DUPLICATE"} == {TOP}
    # max_page = 2**64 - 1 itself: the frame below it is in range
    assert validate(add_own(wide, 1, TOP - 1, 1)).findings == []


def test_regions_and_xen_pages_at_u64_extremes(wide: LUStream) -> None:
    reg = wide.reusable_regions.copy()
    reg = np.concatenate((reg, reg[:1]))
    reg["start_mfn"][-1], reg["nr_pages"][-1] = TOP - 15, 16
    reg["kind"][-1] = int(RegionKind(int(reg["kind"][0])))
    xp = wide.xen_pages.copy()
    xp = np.concatenate((xp, xp[:1]))
    xp["start_mfn"][-1], xp["nr_pages"][-1] = F60, 8
    xp["kind"][-1] = int(XenPageKind(int(xp["kind"][0])))
    s = set_global_bulk(set_global_bulk(wide, T.LU_REUSABLE_REGIONS, reg), T.LU_XEN_PAGES, xp)
    assert validate(s).findings == []
    s2 = add_own(add_own(s, 1, TOP - 1, 1), 2, F60 + 7, 4)
    r = validate(s2)
    assert codes(r) == {"OWN_IN_REUSABLE", "OWN_IN_XEN_PAGES", "OWN_BEYOND_MAX_PAGE"} - {
        "OWN_BEYOND_MAX_PAGE"
    }, r.summary()
    assert only(r, "OWN_IN_REUSABLE")[0]["mfn"] == TOP - 1
    assert only(r, "OWN_IN_REUSABLE")[0]["region_entry"] == len(reg) - 1
    assert only(r, "OWN_IN_XEN_PAGES")[0]["mfn"] == F60 + 7
    # two extents overlapping at the top frame, and one wrapping past it
    reg2 = np.concatenate((reg, reg[-1:]))
    reg2["start_mfn"][-1], reg2["nr_pages"][-1] = TOP, 1
    r = validate(set_global_bulk(s, T.LU_REUSABLE_REGIONS, reg2))
    assert codes(r) == {"EXTENT_OVERLAP"}
    assert {(f.entry, f.values["other_entry"]) for f in r.findings} == {
        (len(reg) - 1, len(reg)),
        (len(reg), len(reg) - 1),
    }
    xp2 = xp.copy()
    xp2["start_mfn"][-1], xp2["nr_pages"][-1] = TOP - 3, 1 << 40  # wraps: saturates at TOP
    r = validate(set_global_bulk(s, T.LU_XEN_PAGES, xp2))
    assert codes(r) == {"EXTENT_OVERLAP"}
    assert {f.record for f in r.findings} == {"LU_REUSABLE_REGIONS", "LU_XEN_PAGES"}


def test_bootmem_at_its_highest_address(wide: LUStream) -> None:
    # the bootmem ends at or below 4 GiB (§4.2): its last frame is 2**20 - 1
    start = (1 << 32) - (1 << 21)
    s = set_host(wide, lu_bootmem_start=start, lu_bootmem_size=1 << 20)
    assert validate(s).findings == []
    b0 = start >> 12
    r = validate(add_own(s, 1, b0 + 255, 2))
    assert codes(r) == {"OWN_IN_BOOTMEM"}
    assert only(r, "OWN_IN_BOOTMEM")[0]["mfn"] == b0 + 255
    reg = np.concatenate((s.reusable_regions, s.reusable_regions[:1]))
    reg["start_mfn"][-1], reg["nr_pages"][-1] = b0 - 1, 2
    r = validate(set_global_bulk(s, T.LU_REUSABLE_REGIONS, reg))
    assert codes(r) == {"EXTENT_IN_BOOTMEM"} and r.findings[0].entry == len(reg) - 1


# --- u64 extremes: P2M -----------------------------------------------------------------


@pytest.mark.parametrize("frame", [F60, TOP - 8])
def test_p2m_frames_at_u64_extremes(wide: LUStream, frame: int) -> None:
    s = add_own(wide, 1, frame, 4)
    assert validate(add_p2m(s, 1, frame, 4)).findings == []
    assert validate(add_p2m(s, 1, frame + 3, 1)).findings == []
    # a single frame past the owned ones, and a range running past them:
    # each finding names the exact frame (nothing is clipped to a cap)
    for mfn, nr in ((frame + 4, 1), (frame, 6)):
        r = validate(add_p2m(s, 1, mfn, nr))
        assert codes(r) == {"P2M_FRAME_NOT_OWNED"}, r.summary()
        assert only(r, "P2M_FRAME_NOT_OWNED")[0]["bad_mfn"] == frame + 4
    # owned by another domain at the top of the range
    s2 = add_own(s, 2, frame + 4, 4)
    r = validate(add_p2m(s2, 1, frame + 2, 4))
    f = next(x for x in r.findings if x.code == "P2M_FRAME_NOT_OWNED")
    assert f.values["bad_mfn"] == frame + 4 and f.values["owner"] == 2 and f.others == (2,)


def test_p2m_foreign_and_shared_at_u64_extremes(wide: LUStream) -> None:
    s = add_own(add_own(wide, 2, F60, 16), 1, F60 + 16, 16)
    # map_foreign of dom2's frames: fine; at the top, unowned
    assert validate(add_p2m(s, 1, F60, 16, MAP_FOREIGN)).findings == []
    r = validate(add_p2m(s, 1, TOP - 1, 1, MAP_FOREIGN))
    assert codes(r) == {"P2M_FOREIGN_UNOWNED"}
    assert only(r, "P2M_FOREIGN_UNOWNED")[0]["bad_mfn"] == TOP - 1
    r = validate(add_p2m(s, 1, F60 + 8, 16, MAP_FOREIGN))
    assert codes(r) == {"P2M_FOREIGN_SELF"}
    assert only(r, "P2M_FOREIGN_SELF")[0]["bad_mfn"] == F60 + 16
    # ram_shared inside a SHARED Xen pages extent at the top of the range
    xp = np.concatenate((s.xen_pages, s.xen_pages[:1]))
    xp["start_mfn"][-1], xp["nr_pages"][-1] = TOP - 63, 64
    xp["kind"][-1] = int(XenPageKind.SHARED)
    s3 = set_global_bulk(s, T.LU_XEN_PAGES, xp)
    shared = int(P2mType.ram_shared)
    assert validate(add_p2m(s3, 1, TOP - 63, 63, shared)).findings == []
    r = validate(add_p2m(s3, 1, F60, 4, shared))
    assert codes(r) == {"P2M_SHARED_OUTSIDE_COW"}


def test_map_foreign_over_own_then_unowned_frames_reports_both(wide: LUStream) -> None:
    # the case: 16 of the domain's own frames, then 16 unowned ones
    frame = 0x20000
    s = add_own(wide, 1, frame, 16)
    r = validate(add_p2m(s, 1, frame, 32, MAP_FOREIGN))
    got = {(f.code, f.values["bad_mfn"]) for f in r.findings}
    assert got == {("P2M_FOREIGN_SELF", frame), ("P2M_FOREIGN_UNOWNED", frame + 16)}
    msg = {f.code: f.message for f in r.findings}
    assert msg["P2M_FOREIGN_UNOWNED"] == "map_foreign frame 0x20010 is owned by no domain"
    assert msg["P2M_FOREIGN_SELF"] == "map_foreign frame 0x20000 is the domain's own"
    # unowned first, then own frames: the same two rules, the other frames
    s = add_own(wide, 1, frame + 16, 16)
    r = validate(add_p2m(s, 1, frame, 32, MAP_FOREIGN))
    got = {(f.code, f.values["bad_mfn"]) for f in r.findings}
    assert got == {("P2M_FOREIGN_SELF", frame + 16), ("P2M_FOREIGN_UNOWNED", frame)}


# --- u64 extremes: page types and grants -------------------------------------------------


def test_page_types_and_grant_frames_at_u64_extremes(wide: LUStream) -> None:
    s = add_own(add_own(wide, 1, F60, 2, flags=1), 2, TOP - 1, 1, flags=1)
    pt = s.domain(1).page_types
    s2 = set_bulk(s, 1, T.LU_PAGE_TYPES, append(pt, mfn=F60 + 1))
    assert "PT_NOT_OWNED" not in codes(validate(s2))
    r = validate(set_bulk(s, 1, T.LU_PAGE_TYPES, append(pt, mfn=TOP - 1)))
    assert codes(r) == {"PT_NOT_OWNED"}
    assert only(r, "PT_NOT_OWNED")[0] == {"mfn": TOP - 1, "owner": 2}
    # a grant frame at 2**60 (owned, XEN_HEAP), then at the top (dom2's)
    gt = s.domain(1).grant_table
    assert gt is not None

    def with_frame(mfn: int) -> LUStream:
        frames = np.array(gt.grant_frames, np.uint64).copy()
        frames[0] = mfn
        val = dataclasses.replace(gt, grant_frames=frames)
        recs = [
            Record(r.type, val) if r.type == T.LU_GRANT_TABLE else r for r in s.domain(1).records
        ]
        return LUStream(
            s.global_section, [LUDomain(recs) if d.domid == 1 else d for d in s.domains]
        )

    assert validate(with_frame(F60)).findings == []
    r = validate(with_frame(TOP - 1))
    assert codes(r) == {"GNT_FRAME_NOT_OWNED"}
    assert only(r, "GNT_FRAME_NOT_OWNED")[0]["mfn"] == TOP - 1


def test_grant_maps_at_u64_extremes(wide: LUStream) -> None:
    # dom1's grant_map P2M page of dom2 and its grant map, moved to 2**60
    gm = wide.domain(1).grant_maps
    p = wide.domain(1).p2m
    g = int(np.flatnonzero(np.isin(p["p2m_type"], [7, 8]))[0])
    old = int(p["mfn"][g])
    k = int(np.flatnonzero(gm["mfn"] == old)[0])
    s = set_bulk(wide, 1, T.LU_GRANT_MAPS, edit(gm, k, mfn=F60))
    s = set_bulk(s, 1, T.LU_P2M, edit(p, g, mfn=F60))
    r = validate(s)
    assert codes(r) == {"GMAP_FRAME_NOT_GRANTERS", "P2M_FOREIGN_UNOWNED"}, r.summary()
    assert only(r, "GMAP_FRAME_NOT_GRANTERS")[0]["mfn"] == F60
    assert only(r, "P2M_FOREIGN_UNOWNED")[0]["bad_mfn"] == F60
    assert validate(add_own(s, 2, F60, 1)).findings == []
    r = validate(add_own(s, 2, F60 + 1, 1))  # one frame off: nothing rounds them together
    assert codes(r) == {"GMAP_FRAME_NOT_GRANTERS", "P2M_FOREIGN_UNOWNED"}


# --- adversarial shapes: bounded memory, exact findings ------------------------------

_PROBE = textwrap.dedent(
    """
    import json, resource, sys, tracemalloc
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from xenlu.lu.stream import decode_lu
    from xenlu.host.validation import validate
    from xenlu.host.restore_plan import plan
    s = decode_lu(sys.argv[1])
    tracemalloc.start()
    r = validate(s, method=sys.argv[2])
    plan(s)
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"peak": peak, "counts": r.counts(), "json": len(r.dumps()),
                      "findings": [f.to_dict() for f in r.findings[:3]]}))
    """
)


def probe(s: LUStream, tmp_path: Path, method: str = "auto") -> tuple[int, dict[str, Any]]:
    """Validate and plan ``s`` in a subprocess under a 3 GiB address-space
    limit; (stream size, the probe's result with the traced peak)."""
    path = tmp_path / "s.lu"
    data = encode_lu(s)
    path.write_bytes(data)
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), method],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out: dict[str, Any] = json.loads(res.stdout)
    return len(data), out


def bounded(size: int, got: dict[str, Any]) -> None:
    """Extra memory during validate + plan: at most 16 MiB plus 32x the stream."""
    peak = got["peak"]
    assert isinstance(peak, int)
    assert peak <= (16 << 20) + 32 * size, (peak, size)


@pytest.fixture(scope="module")
def tiny() -> LUStream:
    return make_host((4, 16), n_hvm=1, mem_mib=1, dom0_mem_mib=1)


def test_huge_global_extents(tiny: LUStream, tmp_path: Path) -> None:
    reg = tiny.reusable_regions.copy()
    reg["nr_pages"][0] = 1 << 40
    xp = tiny.xen_pages.copy()
    xp["start_mfn"][0], xp["nr_pages"][0] = 1 << 44, TOP - (1 << 44)
    s = set_global_bulk(set_global_bulk(tiny, T.LU_REUSABLE_REGIONS, reg), T.LU_XEN_PAGES, xp)
    s = set_host(s, lu_bootmem_start=0, lu_bootmem_size=1 << 32)
    size, got = probe(s, tmp_path)
    bounded(size, got)
    own = sum(len(d.ownership) for d in s.domains)
    # every owned extent lies in the bootmem and in region 0; every global
    # extent but the one moved to 2**44 lies in the bootmem, region 0
    # overlaps them all
    assert got["counts"] == {
        "EXTENT_IN_BOOTMEM": len(reg) + len(xp) - 1,
        "EXTENT_OVERLAP": len(reg) + len(xp) - 1,
        "OWN_IN_BOOTMEM": own,
        "OWN_IN_REUSABLE": own,
    }


def test_many_copies_of_xen_page_extents(tiny: LUStream, tmp_path: Path) -> None:
    n = 40_000
    xp = np.repeat(tiny.xen_pages[:1], n)
    xp["start_mfn"], xp["nr_pages"] = 0, 1 << 40
    kept = tiny.xen_pages[np.asarray(tiny.xen_pages["kind"]) == int(XenPageKind.SHARED)]
    s = set_global_bulk(tiny, T.LU_XEN_PAGES, np.concatenate((xp, kept)))
    size, got = probe(s, tmp_path)
    bounded(size, got)
    counts = got["counts"]
    assert isinstance(counts, dict)
    own = sum(len(d.ownership) for d in s.domains)
    assert counts["OWN_IN_XEN_PAGES"] == own
    assert counts["EXTENT_IN_BOOTMEM"] == n  # the bootmem is below 2**40
    assert counts["EXTENT_OVERLAP"] >= n  # every copy overlaps the others
    assert got["json"] < 200_000  # 100 per code per domain


@pytest.mark.parametrize("method", ["auto", "dense", "interval"])
def test_nested_ownership_extents(tiny: LUStream, tmp_path: Path, method: str) -> None:
    n = 8000
    own = tiny.domain(1).ownership
    rows = np.zeros(n, own.dtype)
    rows["start_mfn"] = (1 << 33) + np.arange(n, dtype=np.uint64)
    rows["nr_pages"] = (1 << 31) - 2 * np.arange(n)
    s = set_host(set_bulk(tiny, 1, T.LU_PAGE_OWNERSHIP, np.concatenate((own, rows))), max_page=TOP)
    size, got = probe(s, tmp_path, method)
    bounded(size, got)
    assert got["counts"] == {"OWN_DUPLICATE": n}
    f = got["findings"]
    assert isinstance(f, list)
    assert f[0]["values"]["claimants"] == n and f[0]["others"] == []


def test_staircase_of_two_domains(tiny: LUStream, tmp_path: Path) -> None:
    n = 4000
    own = tiny.domain(1).ownership
    rows = np.zeros(n, own.dtype)
    rows["start_mfn"] = (1 << 33) + 1000 * np.arange(n, dtype=np.uint64)
    rows["nr_pages"] = 1 << 30
    s = set_bulk(tiny, 1, T.LU_PAGE_OWNERSHIP, np.concatenate((own, rows[0::2])))
    s = set_bulk(s, 0, T.LU_PAGE_OWNERSHIP, np.concatenate((s.domain(0).ownership, rows[1::2])))
    size, got = probe(set_host(s, max_page=TOP), tmp_path)
    bounded(size, got)
    assert got["counts"] == {"OWN_DUPLICATE": n}


def test_one_frame_claimed_by_thousands_of_domains(tiny: LUStream, tmp_path: Path) -> None:
    n = 6000
    d0 = tiny.domain(0)
    frame = int(d0.ownership["start_mfn"][0])
    row = np.zeros(1, d0.ownership.dtype)
    row["start_mfn"], row["nr_pages"] = frame, 1
    pv = [r for r in d0.records[1:] if r.type == 0x2]  # X86_PV_INFO, mandatory for PV
    doms = list(tiny.domains)
    for i in range(n):
        info = dataclasses.replace(d0.info, domid=100 + i)
        doms.append(
            LUDomain([Record(T.LU_DOMAIN, info), *pv, Record(T.LU_PAGE_OWNERSHIP, Bulk(row))])
        )
    s = set_host(LUStream(tiny.global_section, doms), nr_domains=len(doms))
    size, got = probe(s, tmp_path)
    bounded(size, got)
    # every claimant reported once, each naming a capped list of the others
    assert got["counts"] == {"OWN_DUPLICATE": n + 1}
    first = got["findings"]
    assert isinstance(first, list)
    assert first[0]["domid"] == 0 and first[0]["values"]["claimants"] == n + 1
    assert first[0]["others"] == list(range(100, 108))
    assert got["json"] < 600 * (n + 1)  # was 210 MB: every finding listed every claimant


@pytest.mark.parametrize("method", ["dense", "interval"])
def test_frame_near_2_32_costs_nothing(tiny: LUStream, tmp_path: Path, method: str) -> None:
    s = set_host(add_own(tiny, 1, (1 << 32) - 5, 1), max_page=TOP)
    size, got = probe(s, tmp_path, method)
    bounded(size, got)
    assert got["counts"] == {}


# --- xenlu check -------------------------------------------------------------------------


def test_cli_check(small: LUStream, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.lu"
    good.write_bytes(encode_lu(small))
    assert main(["check", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: OK (lu): 0 errors, 0 warnings\n"
    bad = tmp_path / "bad.lu"
    frame = int(small.domain(1).ownership["start_mfn"][0])
    bad.write_bytes(encode_lu(add_own(small, 2, frame, 1)))
    assert main(["check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "OWN_DUPLICATE" in out and out.endswith(": INVALID (lu): 2 errors, 0 warnings\n")
    assert main(["check", "--json", str(bad)]) == 1
    obj = json.loads(capsys.readouterr().out)
    assert obj["valid"] is True and obj["format"] == "lu" and obj["error"] is None
    assert obj["report"] == validate(add_own(small, 2, frame, 1)).to_json()
    # a stream that does not decode: verify's verdict, one line, exit 1
    trunc = tmp_path / "trunc.lu"
    trunc.write_bytes(good.read_bytes()[:3000])
    assert main(["check", "--json", str(trunc)]) == 1
    cap = capsys.readouterr()
    assert json.loads(cap.out)["valid"] is False and len(cap.err.splitlines()) == 1
    assert main(["verify", "--json", str(trunc)]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == json.loads(cap.out)["error"]


def test_plan_uses_the_same_index(small: LUStream) -> None:
    # a foreign mapping of a frame at 2**60 owned by dom2 is a p2m_foreign edge
    s = add_p2m(add_own(set_host(small, max_page=TOP), 2, F60, 1), 1, F60, 1, MAP_FOREIGN)
    edges = [e for p in plan(s).to_json()["passes"] for e in p["edges"]]
    assert any(e["kind"] == "p2m_foreign" and e["from"] == 1 and e["to"] == 2 for e in edges)
    # one frame off (unowned): unresolved, not an edge to a clipped owner
    s2 = add_p2m(add_own(set_host(small, max_page=TOP), 2, F60, 1), 1, F60 + 1, 1, MAP_FOREIGN)
    edges = [e for p in plan(s2).to_json()["passes"] for e in p["edges"]]
    assert not any(e["kind"] == "p2m_foreign" for e in edges)


# --- the packed form of a fragmented host agrees with the general one ----------------


def test_packed_and_general_owner_index_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    import xenlu.host.validation._index as index

    host = make_host((4, 16), n_hvm=2, mem_mib=1, dom0_mem_mib=1, fragmentation=1.0, seed=3)
    assert all(bool((d.ownership["nr_pages"] == 1).all()) for d in host.domains)
    h_own = index.Host(host).own
    assert index.packed_single(h_own, 3) is not None  # the packed form is taken
    f0 = int(host.domain(1).ownership["start_mfn"][3])
    f2 = int(host.domain(2).ownership["start_mfn"][5])
    gt = host.domain(1).grant_table
    assert gt is not None
    pt = host.domain(1).page_types
    cases = [
        host,
        add_p2m(host, 1, f2, 1),  # P2M_FRAME_NOT_OWNED
        add_p2m(host, 1, f0, 1, MAP_FOREIGN),  # P2M_FOREIGN_SELF
        set_bulk(host, 1, T.LU_PAGE_TYPES, append(pt, mfn=f2)),  # PT_NOT_OWNED
        set_host(host, lu_bootmem_start=0, lu_bootmem_size=int(f0 + 1) << 12),  # OWN_IN_BOOTMEM
        set_host(add_own(host, 2, TOP - 1, 1), max_page=TOP),  # a frame too large to pack
    ]
    reports = [validate(s) for s in cases]
    plans = [plan(s).to_json() for s in cases]
    assert reports[0].findings == [] and all(r.findings for r in reports[1:5])
    idx = index.owner_index(index.Host(host))
    frames = np.concatenate([d.ownership["start_mfn"] for d in host.domains])
    rows_packed = idx.row_at(frames)
    monkeypatch.setattr(index, "packed_single", lambda own, nd: None)
    monkeypatch.setattr(index, "per_domain", lambda own, nd, ex, watch=None: None)
    assert [validate(s).findings for s in cases] == [r.findings for r in reports]
    assert [plan(s).to_json() for s in cases] == plans
    general = index.owner_index(index.Host(host))
    assert general._key is None
    assert (general.row_at(frames) == rows_packed).all()
    assert (rows_packed == np.arange(len(frames))).all()
