"""The per-domain records of guest memory (LU spec §4.7–§4.9).

The entries of LU_P2M, LU_PAGE_OWNERSHIP and LU_PAGE_TYPES with their
field and record rules (:mod:`xenlu.lu.records` registers them).

    >>> P2mEntry.LAYOUT.size, OwnershipEntry.LAYOUT.size, PageTypeEntry.LAYOUT.size
    (24, 16, 16)
"""

from __future__ import annotations

from typing import Any, ClassVar

from construct import Int8ul, Int16ul, Int32ul, Int64ul

from xenlu.core.layout import Packed, Rsvd, fld, packed, reserved
from xenlu.core.rules import AtLeast, OrIn, Pick, Rule
from xenlu.lu.values import (
    INVALID_MFN,
    P2M_HAS_FRAME,
    P2M_NO_FRAME,
    PT_PINNED,
    OwnershipFlag,
    P2mAccess,
    P2mType,
    PageType,
    PageTypeFlag,
)

# --- §4.7 – §4.9 bulk entries ------------------------------------------------

#: [OR of a chunk's p2m types]: could the chunk hold a type with no frame?
_P2M_MAYBE_NO_FRAME = tuple(any(t & ~o == 0 for t in P2M_NO_FRAME) for o in range(256))
#: nr_pages < 2^32, so only a gfn at or above 2^64 - 2^32 can wrap.
_GFN_MAY_WRAP = 0xFFFFFFFF00000000


def _repair_mfn(d: dict[str, Any], pick: Pick) -> dict[str, Any]:
    t = d["p2m_type"]
    if t in P2M_NO_FRAME:
        return {**d, "mfn": INVALID_MFN}
    if t in P2M_HAS_FRAME and d["mfn"] == INVALID_MFN:
        return {**d, "mfn": pick(0, INVALID_MFN - 1)}
    return d


def _repair_wrap(d: dict[str, Any], pick: Pick) -> dict[str, Any]:
    if d["gfn"] + d["nr_pages"] - 1 > INVALID_MFN:
        return {**d, "gfn": INVALID_MFN + 1 - d["nr_pages"]}
    return d


@packed(name="LU_P2M entry")
class P2mEntry(Packed):
    """§4.7: one P2M extent gfn+i → mfn+i."""

    gfn: int = fld(Int64ul)
    mfn: int = fld(Int64ul, doc="INVALID_MFN for types with no frame")
    nr_pages: int = fld(Int32ul, lo=1)
    p2m_type: int = fld(Int8ul, values=P2mType)
    access: int = fld(Int8ul, values=P2mAccess)
    rsvd: ClassVar[Rsvd] = reserved(Int16ul)

    # §4.7 frame rules that one entry shows by itself. Each screen is one
    # reduction per 64 Ki entries (INVALID_MFN is the largest u64; a type set
    # can only hold values whose bits are in its OR), so a clean array costs
    # three reductions and no temporaries.
    RULES = (
        Rule(
            "mfn",
            "p2m type has no frame",
            lambda c: c.isin(c.p2m_type, P2M_NO_FRAME) & (c.mfn != INVALID_MFN),
            "INVALID_MFN",
            repair=_repair_mfn,
            screen=OrIn("p2m_type", _P2M_MAYBE_NO_FRAME),
        ),
        Rule(
            "mfn",
            "p2m type needs a frame",
            lambda c: c.isin(c.p2m_type, P2M_HAS_FRAME) & (c.mfn == INVALID_MFN),
            "an MFN",
            repair=_repair_mfn,
            screen=AtLeast("mfn", INVALID_MFN),
        ),
        # An extent must not wrap the 64-bit gfn/mfn space. An empty extent
        # (nr_pages 0, refused by the field's own lo=1) wraps nothing; the
        # guard also keeps numpy's u32 ``nr_pages - 1`` from wrapping where
        # Python's int goes to -1, so rows and columns agree.
        Rule(
            "nr_pages",
            "gfn range wraps",
            lambda c: (c.nr_pages != 0) & (c.wrap64(c.gfn + (c.nr_pages - 1)) < c.gfn),
            "no overflow",
            repair=_repair_wrap,
            screen=AtLeast("gfn", _GFN_MAY_WRAP),
        ),
    )


@packed(name="LU_PAGE_OWNERSHIP entry")
class OwnershipEntry(Packed):
    """§4.8: frames start_mfn … start_mfn+nr_pages-1 owned by the section's domain."""

    start_mfn: int = fld(Int64ul)
    nr_pages: int = fld(Int32ul, lo=1)
    flags: int = fld(Int32ul, bits=OwnershipFlag)


@packed(name="LU_PAGE_TYPES entry")
class PageTypeEntry(Packed):
    """§4.9: the stable type of one PV page (not xen#1's type_info bits)."""

    mfn: int = fld(Int64ul)
    type: int = fld(Int8ul, values=PageType)
    flags: int = fld(Int8ul, bits=PageTypeFlag)
    rsvd: ClassVar[Rsvd] = reserved(Int16ul)
    type_count: int = fld(Int32ul)

    # §4.9: a pinned page must be an L1-L4 page table.
    RULES = (
        Rule(
            "type",
            "pinned page is not a page table",
            lambda c: ((c.flags & PT_PINNED) != 0) & ((c.type < 1) | (c.type > 4)),
            "1..4",
            repair=lambda d, pick: (
                {**d, "type": pick(1, 4)} if d["flags"] & 1 and not 1 <= d["type"] <= 4 else d
            ),
        ),
    )
