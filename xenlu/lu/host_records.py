"""The global LU records and the framing pieces of the domain records (LU spec §4.1–§4.5, §4.15).

LU_VERSION, LU_HOST_INFO, the extents of LU_REUSABLE_REGIONS and
LU_XEN_PAGES, the ``{count; rsvd}`` header of every count-prefixed record,
and LU_SECTION_END: one declaration each, from which the codecs, dtypes,
checks and schemas are derived (:mod:`xenlu.lu.records` registers them).

    >>> LuVersion.LAYOUT.size, LuSectionEnd.LAYOUT.size
    (8, 16)
    >>> host_grant_limits(LuHostInfo.LAYOUT.from_tuple((12, 1, 1 << 20, 0, 2 << 20, 0, 0, 2)))
    (64, 1024)
"""

from __future__ import annotations

from typing import Any, ClassVar

from construct import Int16ul, Int32ul, Int64ul

from xenlu.core.layout import Packed, Rsvd, fld, packed, reserved
from xenlu.core.rules import Pick, Rule
from xenlu.lu.values import (
    GIB4,
    MIB2,
    XEN_MAX_GRANT_FRAMES,
    XEN_MAX_MAPTRACK_FRAMES,
    GrantVersion,
    RegionKind,
    XenPageKind,
)

# --- §4.1 – §4.3 -------------------------------------------------------------


@packed(name="LU_VERSION")
class LuVersion(Packed):
    """§4.1: the version of the Xen that produced the stream."""

    xen_major: int = fld(Int32ul, doc="Xen major version of xen#1")
    xen_minor: int = fld(Int32ul, doc="Xen minor version of xen#1")


@packed(name="LU_HOST_INFO")
class LuHostInfo(Packed):
    """§4.2: host-wide facts xen#2 needs before any domain."""

    page_shift: int = fld(Int32ul, values={12: "4 KiB"}, doc="must be 12")
    nr_domains: int = fld(Int32ul, doc="number of domain sections")
    max_page: int = fld(Int64ul, doc="one past the highest RAM MFN")
    lu_bootmem_start: int = fld(Int64ul, doc="machine address of the LU bootmem, 2 MiB aligned")
    lu_bootmem_size: int = fld(Int64ul, doc="non-zero multiple of 2 MiB; start + size <= 4 GiB")
    gnttab_max_frames: int = fld(Int32ul, doc="xen#1's host default (0 = unknown)")
    gnttab_max_maptrack_frames: int = fld(Int32ul, doc="xen#1's host default (0 = unknown)")
    gnttab_max_version: int = fld(
        Int32ul, values={0: "unknown (2)", 1: "v1", 2: "v2"}, doc="host maximum grant version"
    )
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)

    # §4.2: the LU bootmem is 2 MiB aligned, a non-zero multiple of 2 MiB
    # and ends at or below 4 GiB.
    RULES = (
        Rule(
            "lu_bootmem_start",
            "LU bootmem not 2 MiB aligned",
            lambda c: c.lu_bootmem_start % MIB2 != 0,
            "a multiple of 0x200000",
            repair=lambda d, pick: _repair_bootmem(d, pick),
        ),
        Rule(
            "lu_bootmem_size",
            "LU bootmem size not a non-zero multiple of 2 MiB",
            lambda c: (c.lu_bootmem_size == 0) | (c.lu_bootmem_size % MIB2 != 0),
            "a non-zero multiple of 0x200000",
            repair=lambda d, pick: _repair_bootmem(d, pick),
        ),
        Rule(
            "lu_bootmem_size",
            "LU bootmem ends above 4 GiB",
            lambda c: (c.lu_bootmem_start > GIB4) | (c.lu_bootmem_size > GIB4 - c.lu_bootmem_start),
            f"start + size <= {GIB4:#x}",
            got=lambda c: c.lu_bootmem_start + c.lu_bootmem_size,
            repair=lambda d, pick: _repair_bootmem(d, pick),
        ),
    )


def _repair_bootmem(d: dict[str, Any], pick: Pick) -> dict[str, Any]:
    """A valid LU bootmem (§4.2), keeping the start when it is valid."""
    start = d["lu_bootmem_start"]
    if start % MIB2 or start >= GIB4:
        start = pick(0, GIB4 // MIB2 - 1) * MIB2
    size = pick(1, (GIB4 - start) // MIB2) * MIB2
    return {**d, "lu_bootmem_start": start, "lu_bootmem_size": size}


@packed(name="COUNT_HEADER")
class CountHeader(Packed):
    """The ``{u32 count; u32 rsvd}`` prefix of count-prefixed records (§4)."""

    count: int = fld(Int32ul)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="EXTENT(LU_REUSABLE_REGIONS)")
class RegionExtent(Packed):
    """§4.3/§4.4: memory xen#2 may use before it has consumed the stream."""

    start_mfn: int = fld(Int64ul)
    nr_pages: int = fld(Int64ul, lo=1)
    kind: int = fld(Int32ul, values=RegionKind)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="EXTENT(LU_XEN_PAGES)")
class XenPagesExtent(Packed):
    """§4.3/§4.5: hypervisor pages that must be kept as they are."""

    start_mfn: int = fld(Int64ul)
    nr_pages: int = fld(Int64ul, lo=1)
    kind: int = fld(Int32ul, values=XenPageKind)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="LU_SECTION_END")
class LuSectionEnd(Packed):
    """§4.15: closes a section with its crc32c and byte count."""

    domid: int = fld(Int16ul, doc="DOMID_XEN for the global section")
    rsvd: ClassVar[Rsvd] = reserved(Int16ul)
    crc32c: int = fld(Int32ul)
    section_bytes: int = fld(Int64ul)


# --- host-wide defaults (§4.2, §4.6) -------------------------------------------


def host_grant_limits(host: LuHostInfo) -> tuple[int, int]:
    """§4.6: the (grant frames, maptrack frames) limits of a domain whose
    LU_DOMAIN says -1: LU_HOST_INFO's host defaults, Xen's where those are 0."""
    return (
        int(host.gnttab_max_frames) or XEN_MAX_GRANT_FRAMES,
        int(host.gnttab_max_maptrack_frames) or XEN_MAX_MAPTRACK_FRAMES,
    )


def host_grant_version(host: LuHostInfo) -> int:
    """§4.2 / §6: LU_HOST_INFO gnttab_max_version, where 0 (unknown) means 2."""
    return int(host.gnttab_max_version) or int(GrantVersion.v2)
