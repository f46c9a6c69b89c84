"""PAGE_DATA (libxc record 0x01, ``xen-formats.md`` §1.6): the pfn rules and the body codec.

The pfn entries are checked as one numpy array (never one Python object per
entry) on decode and encode, and by :func:`accept_page_data`, the
structural fast path's acceptor, without numpy.

    >>> import numpy as np
    >>> count_data_pages(np.array([0x5, 0xF << 60 | 0x6], dtype="<u8"))
    1
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from xenlu.core.errors import EncodeError
from xenlu.core.registry import Ctx
from xenlu.migration.libxc_records import (
    DATA_PAGE_TYPES,
    PAGE_DATA_RSVD_MASK,
    PAGE_SIZE,
    PFN_TYPES,
    U64,
    PageData,
    PageDataHeader,
    expect_value,
    u64_bytes,
    u64_view,
)

if TYPE_CHECKING:
    import numpy as np


_TYPE_OK = bytes(t in PFN_TYPES for t in range(16))
_TYPE_DATA = bytes(t in DATA_PAGE_TYPES for t in range(16))

_PDH = PageDataHeader.LAYOUT
_PDH_CHECK = _PDH.checker(None)


def _lut(table: bytes) -> np.ndarray:
    import numpy as np

    return np.frombuffer(table, dtype=np.bool_)


def _pfn_types(pfns: np.ndarray) -> np.ndarray:
    import numpy as np

    return (np.asarray(pfns, dtype=U64) >> np.uint64(60)).astype(np.intp)


def _bad_pfns(pfns: np.ndarray, types: np.ndarray) -> np.ndarray:
    """True for each pfn entry with reserved bits 52-59 set or an invalid type."""
    import numpy as np

    bad: np.ndarray = ((pfns & np.uint64(PAGE_DATA_RSVD_MASK)) != 0) | ~_lut(_TYPE_OK)[types]
    return bad


def count_data_pages(pfns: np.ndarray) -> int:
    """How many pfn entries carry a page of data (types 0–4 and 9–12, §1.6)."""
    import numpy as np

    return int(np.count_nonzero(_lut(_TYPE_DATA)[_pfn_types(pfns)]))


def decode_page_data(body: memoryview, ctx: Ctx) -> PageData:
    """§1.6: the PAGE_DATA body as zero-copy pfns and pages (RecordError when invalid)."""
    import numpy as np

    n = len(body)
    if n < 8:
        ctx.fail_length("> 8 (header and at least one pfn)")
    t = _PDH.unpack_tuple(body)
    v = _PDH_CHECK(t)
    if v is not None:
        ctx.fail_violation(v)  # count > 0, rsvd == 0
    count = t[0]
    pages_at = 8 + 8 * count
    if n < pages_at:
        ctx.fail_length(f">= {pages_at} (8 + 8 x {count} pfns)")
    pfns = u64_view(body, 8, count)
    types = _pfn_types(pfns)
    # §1.6: bits 59-52 reserved; types 5-8 invalid (verifier and restorer).
    bad = _bad_pfns(pfns, types)
    if bad.any():
        i = int(np.argmax(bad))
        raw = int(pfns[i])
        if raw & PAGE_DATA_RSVD_MASK:
            ctx.fail(
                "pfn reserved bits 52-59 set",
                at=8 + 8 * i,
                field=f"pfn[{i}]",
                expected="bits 52-59 zero",
                got=raw,
            )
        ctx.fail(
            "pfn type not valid",
            at=8 + 8 * i,
            field=f"pfn[{i}]",
            expected="type 0-4 or 9-15",
            got=raw >> 60,
        )
    # §1.6/§3.2: exact length = 8 + 8C + 4096 x (entries whose type carries data).
    ndata = int(np.count_nonzero(_lut(_TYPE_DATA)[types]))
    want = pages_at + PAGE_SIZE * ndata
    if n != want:
        ctx.fail_length(want, f"PAGE_DATA length wrong for {count} pfns with {ndata} data pages")
    return PageData(pfns, body[pages_at:])


def encode_page_data(value: Any) -> Sequence[Any]:
    """The PAGE_DATA body of ``value`` (a :class:`PageData`) as buffers."""
    import numpy as np

    expect_value(value, PageData, "PAGE_DATA")
    raw = u64_bytes(value.pfns, "PAGE_DATA pfns")
    pfns = np.frombuffer(raw, dtype=U64)
    count = len(pfns)
    if count == 0:
        raise EncodeError("PAGE_DATA: at least one pfn entry is required")
    types = _pfn_types(pfns)
    if _bad_pfns(pfns, types).any():
        raise EncodeError("PAGE_DATA: a pfn has reserved bits 52-59 set or a type 5-8")
    pages = memoryview(value.pages).cast("B")
    want = PAGE_SIZE * int(np.count_nonzero(_lut(_TYPE_DATA)[types]))
    if pages.nbytes != want:
        raise EncodeError(f"PAGE_DATA: pages hold {pages.nbytes} bytes, the pfns need {want}")
    return (_PDH.struct.pack(count, 0), raw, pages)


_II = struct.Struct("<II").unpack_from
_IIQ = struct.Struct("<IIQ").unpack_from
_PFNS = {n: struct.Struct(f"<{n}Q").unpack_from for n in range(1, 33)}
_BELOW_16 = bytes(range(16))


def accept_page_data(buf: Any, off: int, n: int) -> bool:
    """True when the body at ``buf[off:off + n]`` is certainly a valid PAGE_DATA."""
    # §1.6: count > 0, rsvd 0, no reserved pfn bits, no type 5-8, exact length.
    count: int
    rsvd: int
    raw: int
    ok, data = _TYPE_OK, _TYPE_DATA
    if n == 16:  # one pfn and no page: a type without data (XTAB, XALLOC, BROKEN)
        count, rsvd, raw = _IIQ(buf, off)
        t = raw >> 60
        return count == 1 and not rsvd and not raw & PAGE_DATA_RSVD_MASK and ok[t] > data[t]
    if n < 16:
        return False
    count, rsvd = _II(buf, off)
    if rsvd or not count or n < 8 + 8 * count:
        return False
    ndata = 0
    if count <= 32:
        for raw in _PFNS[count](buf, off + 8):
            t = raw >> 60
            if raw & PAGE_DATA_RSVD_MASK or not ok[t]:
                return False
            ndata += data[t]
    else:
        # The same rules on the pfns' top two bytes, taken with strided
        # slices and judged per distinct value (C loops, no numpy, no
        # object per pfn): byte 7 holds the type and bits 56-59, byte 6
        # bits 48-55, of which 52-55 are reserved.
        pfns = memoryview(buf)[off + 8 : off + 8 + 8 * count]
        if bytes(pfns[6::8]).translate(None, _BELOW_16):
            return False
        top = bytes(pfns[7::8])
        for v in set(top):
            t = v >> 4
            if v & 0x0F or not ok[t]:
                return False
            if data[t]:
                ndata += top.count(v)
    return n == 8 + 8 * count + PAGE_SIZE * ndata
