"""Value and bit names are declared once (issue 12): enums in lu_records, used by
``fld``, validate, compat, plan and the hand-over; the generated compat steps
and the breadcrumb layout match what was written by hand before."""

from __future__ import annotations

import enum
import struct
from typing import Any

import pytest
from construct import Int8ul, Int16ul, Int32ul

import xenlu.host._compat_steps as steps
import xenlu.lu.handover as ho
import xenlu.lu.records as L
from xenlu.core.epochs import EPOCHS, parse_epoch
from xenlu.core.layout import Packed, fld, packed
from xenlu.core.names import bit_names, epoch_limited, value_names
from xenlu.host.compat import STEPS, Cover

# fld name mappings that stay mappings: their names are not identifiers, or
# they name multi-bit groups, or a single placeholder value.
_MAPPINGS = {
    ("LU_HOST_INFO", "page_shift"),  # {12: "4 KiB"}
    ("LU_HOST_INFO", "gnttab_max_version"),  # {0: "unknown (2)", ...}
    ("LU_EVTCHNS entry@4.15", "fifo_lastq"),  # mask groups
    ("LU_IOREQ_SERVERS server", "enabled"),  # {0: "no", 1: "yes"}
}


def _name_enums() -> list[type[enum.IntEnum] | type[enum.IntFlag]]:
    return [
        v
        for v in vars(L).values()
        if isinstance(v, type)
        and issubclass(v, (enum.IntEnum, enum.IntFlag))
        and v.__module__ in (L.__name__, "xenlu.lu.values")  # lu_records re-exports them
    ]


def _layouts() -> list[Any]:
    seen: dict[int, Any] = {}
    for v in vars(L).values():
        lay = getattr(v, "LAYOUT", None)
        if lay is not None:
            seen[id(lay)] = lay
    return list(seen.values())


def test_every_fld_name_mapping_comes_from_an_enum() -> None:
    derived = []
    for e in _name_enums():
        derived.append(value_names(e))
        if issubclass(e, enum.IntFlag):
            derived.append(bit_names(e))
    checked = 0
    for lay in _layouts():
        for fi in lay.fields:
            for mapping in (fi.values, fi.bits):
                if mapping is None or (lay.name, fi.name) in _MAPPINGS:
                    continue
                if lay.name.startswith("LU_EVTCHNS") and fi.name == "xen_consumer":
                    continue  # {0: "none"}: "must be 0", not a set of names
                assert dict(mapping) in derived, (lay.name, fi.name, mapping)
                checked += 1
    assert checked >= 18


def test_legacy_constants_are_the_enum_members() -> None:
    assert (
        L.EvtchnState.interdomain,
        L.EvtchnState.virq,
        L.EvtchnState.pirq,
    ) == (L.ECS_INTERDOMAIN, L.ECS_VIRQ, L.ECS_PIRQ)
    assert L.LuState.shinfo32 == L.LU_STATE_SHINFO32 and L.LuState.iommu == L.LU_STATE_IOMMU
    assert (
        L.CdfFlag.iommu,
        L.CdfFlag.nested_virt,
        L.CdfFlag.vpmu,
    ) == (L.CDF_IOMMU, L.CDF_NESTED_VIRT, L.CDF_VPMU)
    assert (
        L.GrantMapFlag.host_map,
        L.GrantMapFlag.readonly,
    ) == (L.GNTMAP_HOST_MAP, L.GNTMAP_READONLY)
    assert {int(t): t.name for t in L.P2mType} == L.P2M_TYPES
    # Plain ints (``~`` of an IntFlag keeps only named bits: wrong for masks).
    assert type(L.CDF_IOMMU) is int and ~L.CDF_IOMMU == -33
    assert ho.LU_DATA == L.XenPageKind.LU_DATA
    assert L.PER_VCPU_VIRQS == (0, 1, 7, 13) and steps.VIRQ_ARGO == int(L.Virq.ARGO) == 11
    assert L.OwnershipFlag.extra == steps.EXTRA and L.P2mAccess.r_pw == steps.R_PW


def test_p2m_classes_derive_the_frame_rules() -> None:
    lut = L.P2M_CLASS_LUT
    assert set(L.P2M_CLASS) == set(L.P2mType)
    for t, c in L.P2M_CLASS.items():
        assert lut[int(t)] == c
    assert not lut[16:].any()  # unnamed types: NONE
    assert L.P2M_NO_FRAME == (1, 4, 6, 10)
    assert L.P2M_HAS_FRAME == (0, 2, 3, 5, 7, 8, 9, 12, 13, 14, 15)


def test_epoch_spans_reach_the_checks() -> None:
    access = L.P2mEntry.LAYOUT.field("access")
    assert 10 not in (access.allowed(parse_epoch("4.19")) or ())
    assert 10 in (access.allowed(parse_epoch("4.20")) or ())
    lay = L.LuDomain413.LAYOUT.field("cdf_flags")
    assert lay.valid_mask((4, 12)) == 0x1F and lay.valid_mask((4, 13)) == 0x3F
    lu_state = L.LuDomain413.LAYOUT.field("lu_state")
    assert lu_state.valid_mask((4, 11)) == 0x1F and lu_state.valid_mask((4, 13)) == 0x17


def test_fld_takes_enums_and_mappings_alike() -> None:
    @epoch_limited(c=("4.15", None))
    class Colour(enum.IntEnum):
        a = 1
        b = 2
        c = 3

    class Bits(enum.IntFlag):
        x = 1
        y = 4

    @packed(name="toy")
    class Toy(Packed):
        bits: int = fld(Int32ul, bits=Bits)
        colour: int = fld(Int8ul, values=Colour)
        raw: int = fld(Int8ul, values={0: "zero"})
        pad: int = fld(Int16ul)

    f = Toy.LAYOUT.field
    assert f("colour").values == {1: "a", 2: "b", 3: ("c", "4.15", None)}
    assert f("colour").allowed((4, 14)) == frozenset({1, 2})
    assert f("bits").bits == {0: "x", 2: "y"} and f("bits").valid_mask(None) == 5
    assert f("raw").values == {0: "zero"}
    assert Toy.LAYOUT.check(Toy(colour=3, bits=1, raw=0, pad=0), (4, 14)) is not None
    assert Toy.LAYOUT.check(Toy(colour=3, bits=1, raw=0, pad=0), (4, 15)) is None


def test_names_refuse_what_they_cannot_say() -> None:
    with pytest.raises(TypeError, match="no member"):

        @epoch_limited(nope=("4.13", None))
        class E(enum.IntEnum):
            a = 1

    class Multi(enum.IntFlag):
        ab = 3

    with pytest.raises(TypeError, match="not a single bit"):
        bit_names(Multi)


def test_domain_facts_are_declared_once() -> None:
    host = L.LuHostInfo(
        page_shift=12,
        nr_domains=0,
        max_page=1,
        lu_bootmem_start=0,
        lu_bootmem_size=2 << 20,
        gnttab_max_frames=0,
        gnttab_max_maptrack_frames=7,
        gnttab_max_version=0,
    )
    assert L.host_grant_limits(host) == (L.XEN_MAX_GRANT_FRAMES, 7) == (64, 7)
    assert L.host_grant_version(host) == 2


# --- generated compat steps (item 7) --------------------------------------------------


def test_generated_steps_declare_the_hand_written_covers() -> None:
    d = "LU_DOMAIN"
    assert STEPS[(4, 16), (4, 17)].covers == (
        Cover(d, "cpupool_id", "field-added"),
        Cover(d, "rsvd2", "field-removed"),
    )
    assert STEPS[(4, 17), (4, 19)].covers == (
        Cover(d, "LU_DOMAIN", "size-changed"),
        Cover(d, "altp2m_opts", "field-added"),
        Cover(d, "rsvd2", "field-added"),
    )
    assert STEPS[(4, 16), (4, 17)].doc == "cpupool_id = 0 (Pool-0)"
    assert STEPS[(4, 17), (4, 16)].doc == "cpupool_id must be 0"
    assert STEPS[(4, 17), (4, 19)].doc == "altp2m_opts = 0"


def test_a_semantic_move_cannot_be_generated() -> None:
    # 4.20 -> 4.21 resizes altp2m_opts: a §6 move, written by hand.
    with pytest.raises(TypeError, match="moved or changed"):
        steps.layout_covers("LU_DOMAIN", L.LuDomain419, L.LuDomain421)
    assert set(steps.AS_BEFORE) == {"cpupool_id", "altp2m_opts"}
    assert len(STEPS) == 2 * (len(EPOCHS) - 1)


# --- the breadcrumb layout (§5) -------------------------------------------------------


def test_breadcrumb_layout_is_the_three_words() -> None:
    lay = ho.BreadcrumbLayout.LAYOUT
    assert lay.size == 24 and [f.offset for f in lay.fields] == [0, 8, 16]
    b = ho.Breadcrumb(ho.LIVE_UPDATE_MAGIC, 0x5000, 3)
    assert b.pack() == struct.pack("<QQQ", ho.LIVE_UPDATE_MAGIC, 0x5000, 3 << 12)
    assert lay.unpack(b.pack()).nr_pages == 3 << 12


# --- seams: no private names across modules -------------------------------------------

_HOST_LAYER = (
    "xenlu/host/validation",
    "xenlu/host/restore_plan.py",
    "xenlu/host/compat.py",
    "xenlu/host/_compat_model.py",
    "xenlu/host/_compat_steps.py",
    "xenlu/lu/handover.py",
    "xenlu/lu/_handover_pages.py",
    "xenlu/core/names.py",
)


def test_host_layer_imports_no_private_names() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    files: list[Path] = []
    for p in _HOST_LAYER:
        q = root / p
        files += sorted(q.glob("*.py")) if q.is_dir() else [q]
    assert len(files) >= 18
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xenlu"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{f.name} imports {private} from {node.module}"
