"""The Live Update hand-over: breadcrumb, MFN array and ``liveupdate=`` (LU spec §5).

Theory of operation
-------------------
xen#1 writes the encoded stream into *data pages* anywhere outside the LU
bootmem, then a physically contiguous *MFN array* of u64 MFNs naming those
pages in stream order (``ceil(nr_pages × 8 / 4096)`` pages), then the
*breadcrumb* ``{magic, mfn_array_maddr, nr_pages << 12}`` in the first page of
the LU bootmem. xen#2 is booted with ``liveupdate=<N>M@0x<start>``, finds the
breadcrumb there, maps the listed pages in order into one buffer and decodes
the stream from it.

A *memory image* here is a buffer (or a sparse file) whose byte offset is the
machine address: machine frame ``mfn`` occupies ``image[mfn*4096 :
(mfn+1)*4096]``. The core functions do no I/O; they take a buffer (``bytes``,
``bytearray``, ``memoryview`` or ``mmap``). :func:`write_handover_file`
creates or opens a sparse file and maps it; :func:`read_handover` also
accepts a path (mapped read-only by :func:`xenlu.framing.as_buffer`).

Errors: arguments that make no sense, or a placement the writer refuses, are
:class:`~xenlu.errors.CallerError`. A reader's §5 rule failure is a
:class:`~xenlu.errors.HandoverError` whose ``offset`` is a byte offset in the
*image* (of the breadcrumb field, of the MFN array entry, or of the record in
its data page) and whose ``field`` names the breadcrumb field
(``magic``, ``mfn_array_maddr``, ``nr_pages``), the array entry
(``mfn_array[i]``) or the record field. Any other decode error from the stream
is re-raised as the same class with its offset translated from the stream to
the image ("... (stream offset 0x…)" is appended to the message; the original
error is the ``__cause__``).

``liveupdate=`` and N
---------------------
kexec-tools writes ``N = (end - start) / 1 MiB + 1`` with ``end = start +
size - 1``, i.e. ``N = (size - 1) // MiB + 1``, which is ``size / MiB`` when
``size`` is a multiple of 1 MiB and rounds up otherwise. xenlu reads ``N``
as exactly ``N × 1 MiB`` (:func:`parse_liveupdate`) and writes only sizes that
are whole MiB (:func:`format_liveupdate` refuses others), so the two round
trip and agree with kexec-tools for every size they accept. An LU bootmem is
a multiple of 2 MiB anyway (§4.2).

Example, a round trip through a 16 MiB image::

    >>> img = bytearray(16 << 20)
    >>> h = write_handover(stream, img, bootmem=(2 << 20, 2 << 20))  # doctest: +SKIP
    >>> read_handover(img, format_liveupdate(2 << 20, 2 << 20)) == h.stream  # doctest: +SKIP
    True
"""

from __future__ import annotations

import itertools
import mmap
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xenlu.errors import CallerError, DecodeError, FramingError, HandoverError
from xenlu.framing import HDR, REC_LENGTH_MAX, as_buffer
from xenlu.lu_records import Bulk, LuHostInfo, T, XenPagesExtent
from xenlu.lu_stream import GlobalSection, LUStream, decode_lu, encode_lu_to
from xenlu.registry import Record

__all__ = [
    "LIVE_UPDATE_MAGIC",
    "LU_DATA",
    "MAX_NR_PAGES",
    "PAGE_SIZE",
    "Bootmem",
    "Breadcrumb",
    "Handover",
    "array_pages",
    "find_breadcrumb",
    "format_liveupdate",
    "parse_liveupdate",
    "read_handover",
    "write_handover",
    "write_handover_file",
]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
MIB = 1 << 20
_MIB2 = 2 << 20
#: Breadcrumb magic: ``0x4C69766555706461 & PAGE_MASK`` (RFC ``LIVE_UPDATE_MAGIC``).
LIVE_UPDATE_MAGIC = 0x4C69766555706000
#: Largest ``nr_pages`` a reader accepts (§5: "above 2^20" is rejected).
MAX_NR_PAGES = 1 << 20
#: LU_XEN_PAGES kind of the pages holding the stream and its MFN array (§4.5).
LU_DATA = 3
#: Where the writer's automatic placement starts looking (1 MiB: skip low memory).
DEFAULT_SEARCH_FROM_MFN = 0x100

_BREADCRUMB = struct.Struct("<QQQ")
_OFF_MAGIC, _OFF_ARRAY, _OFF_NR = 0, 8, 16
# MFNs are compared as int64; anything at or above this is beyond every image.
_CAP = 1 << 62
# A number as Xen's simple_strtoull(base 0) reads it, bounded to u64 so that
# no input reaches Python's int-digit limit: 0x-hex (16 digits at most) or
# decimal (20 digits at most). A leading 0 before more digits is refused:
# Xen would read it as octal, which no one writing an address means.
_NUM = r"(0[xX][0-9a-fA-F]{1,16}|[1-9][0-9]{0,19}|0)"
# Then Xen's parse_size_and_unit unit letters (K, M, G, T, B; any case).
_LIVEUPDATE_RE = re.compile(rf"(?:liveupdate=)?{_NUM}([kKmMgGtTbB]?)@{_NUM}([kKmMgGtTbB]?)")
_LU_EXPECTED = (
    "liveupdate=<N>M@0x<start> (Xen's size syntax: a size such as 64M, 1G or 65536K, "
    "a whole number of MiB; the start in bytes, hex 0x… or decimal, or with a unit)"
)
_UNIT_SHIFT = {"": 10, "b": 0, "k": 10, "m": 20, "g": 30, "t": 40}
_U64 = 1 << 64


def _shown(text: str) -> str:
    # Echo at most 40 characters of what the user gave: an error stays one line.
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _xen_number(digits: str, unit: str, default_shift: int) -> int:
    base = 16 if digits[:2] in ("0x", "0X") else 10
    return int(digits, base) << (_UNIT_SHIFT[unit.lower()] if unit else default_shift)


#: An LU bootmem: ``(start, size)`` in bytes, or ``liveupdate=`` text.
Bootmem = tuple[int, int] | str


# --- liveupdate= -----------------------------------------------------------------


def parse_liveupdate(text: str) -> tuple[int, int]:
    """``(start, size)`` in bytes from ``liveupdate=<size>@<start>`` (or the bare value).

    The size is read as Xen's ``parse_size_and_unit`` reads it: a number
    (``0x`` hex or decimal) and a unit ``K``, ``M``, ``G``, ``T`` or ``B``
    (no unit: KiB, as in Xen); it must be a whole number of MiB, at least
    1 MiB (kexec-tools writes ``<N>M``). The start is a number in bytes
    (kexec-tools writes ``@0x<start>``), or with a unit (``@64M``). Numbers
    are at most 64 bits; a leading ``0`` before more digits (octal to Xen) is
    refused. Surrounding whitespace is ignored. Anything else is a
    :class:`~xenlu.errors.CallerError` naming the expected form.

    >>> parse_liveupdate("liveupdate=512M@0x7e000000")
    (2113929216, 536870912)
    >>> parse_liveupdate("2M@0x200000") == (0x200000, 2 << 20)
    True
    >>> parse_liveupdate("1G@64M") == (64 << 20, 1 << 30)
    True
    >>> parse_liveupdate("65536K@2097152") == (2 << 20, 64 << 20)
    True
    """
    if not isinstance(text, str):
        raise CallerError(f"liveupdate: expected {_LU_EXPECTED}, got {type(text).__name__}")
    m = _LIVEUPDATE_RE.fullmatch(text.strip())
    if m is None:
        raise CallerError(f"liveupdate: expected {_LU_EXPECTED}, got {_shown(text)}")
    size = _xen_number(m.group(1), m.group(2), 10)
    start = _xen_number(m.group(3), m.group(4), 0)
    if size < MIB or size % MIB:
        raise CallerError(
            f"liveupdate: expected a size of N >= 1 whole MiB in {_LU_EXPECTED}, "
            f"got {size} bytes in {_shown(text)}"
        )
    if start + size > _U64:
        raise CallerError(
            f"liveupdate: expected a region below 2^64 in {_LU_EXPECTED}, got {_shown(text)}"
        )
    return start, size


def format_liveupdate(start: int, size: int) -> str:
    """The ``liveupdate=<N>M@0x<start>`` argument kexec-tools gives xen#2.

    ``size`` must be a positive multiple of 1 MiB (then N = size / MiB, the
    same as kexec-tools' ``(end - start) / MiB + 1``); ``start`` is written in
    lower-case hex.

    >>> format_liveupdate(0x7E000000, 512 << 20)
    'liveupdate=512M@0x7e000000'
    >>> parse_liveupdate(format_liveupdate(0x200000, 2 << 20))
    (2097152, 2097152)
    """
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise CallerError(f"liveupdate: expected a start address >= 0, got {start!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0 or size % MIB:
        raise CallerError(
            f"liveupdate: expected a size that is a positive multiple of 1 MiB, got {size!r}"
        )
    return f"liveupdate={size // MIB}M@{start:#x}"


def _bootmem(bootmem: Bootmem) -> tuple[int, int]:
    if isinstance(bootmem, str):
        return parse_liveupdate(bootmem)
    try:
        start, size = bootmem
    except (TypeError, ValueError):
        raise CallerError(
            f"bootmem: expected (start, size) or {_LU_EXPECTED}, got {bootmem!r}"
        ) from None
    for name, v in (("start", start), ("size", size)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise CallerError(f"bootmem {name}: expected an int, got {v!r}")
    start, size = int(start), int(size)
    if start < 0 or start % PAGE_SIZE:
        raise CallerError(f"bootmem start: expected a page-aligned address, got {start:#x}")
    if size <= 0 or size % PAGE_SIZE:
        raise CallerError(f"bootmem size: expected a positive multiple of 4096, got {size:#x}")
    return start, size


# --- breadcrumb ------------------------------------------------------------------


def array_pages(nr_pages: int) -> int:
    """Pages of the MFN array for ``nr_pages`` data pages: ``ceil(nr_pages × 8 / 4096)``.

    >>> array_pages(1), array_pages(512), array_pages(513)
    (1, 1, 2)
    """
    return (nr_pages * 8 + PAGE_SIZE - 1) // PAGE_SIZE


@dataclass(frozen=True)
class Breadcrumb:
    """The three u64 at ``lu_bootmem_start`` (§5).

    >>> b = Breadcrumb(LIVE_UPDATE_MAGIC, 0x5000, 3)
    >>> b.pack().hex()
    '006070556576694c00500000000000000030000000000000'
    >>> Breadcrumb.unpack(b.pack()) == b
    True
    """

    magic: int
    mfn_array_maddr: int
    #: Number of data pages (the third word is ``nr_pages << 12``).
    nr_pages: int

    @property
    def array_mfn(self) -> int:
        return self.mfn_array_maddr >> PAGE_SHIFT

    @property
    def array_pages(self) -> int:
        return array_pages(self.nr_pages)

    def pack(self) -> bytes:
        """The 24 bytes as xen#1 writes them."""
        return _BREADCRUMB.pack(self.magic, self.mfn_array_maddr, self.nr_pages << PAGE_SHIFT)

    @classmethod
    def unpack(cls, buf: Any, offset: int = 0) -> Breadcrumb:
        """Read the three words without checking them (see :func:`find_breadcrumb`).

        A third word that is not a multiple of 4096 is truncated here.
        """
        magic, maddr, size = _BREADCRUMB.unpack_from(buf, offset)
        return cls(magic, maddr, size >> PAGE_SHIFT)


def find_breadcrumb(image: Any, bootmem: Bootmem) -> Breadcrumb:
    """Read and check the breadcrumb at the start of the LU bootmem (§5).

    ``image`` is a buffer or a path; ``bootmem`` is ``(start, size)`` or the
    ``liveupdate=`` text. Raises :class:`~xenlu.errors.HandoverError` (offset
    of the breadcrumb field in the image) for a breadcrumb beyond the image
    end, a bad magic, a misaligned MFN array address, or a third word that is
    not a non-zero multiple of 4096 of at most 2^20 pages.

    >>> img = bytearray(8 << 20)
    >>> img[2 << 20 : (2 << 20) + 24] = Breadcrumb(LIVE_UPDATE_MAGIC, 0x100000, 2).pack()
    >>> find_breadcrumb(img, "liveupdate=2M@0x200000").nr_pages
    2
    """
    buf = as_buffer(image)
    start, _ = _bootmem(bootmem)
    return _check_breadcrumb(buf, start)


def _check_breadcrumb(buf: memoryview, start: int) -> Breadcrumb:
    if start + _BREADCRUMB.size > len(buf):
        raise HandoverError(
            "breadcrumb beyond the image end",
            offset=start,
            field="magic",
            expected=f"24 bytes at {start:#x}",
            got=f"image of {len(buf):#x} bytes",
        )
    magic, maddr, word = _BREADCRUMB.unpack_from(buf, start)
    # §5: "A reader rejects: a bad magic"
    if magic != LIVE_UPDATE_MAGIC:
        raise HandoverError(
            "bad breadcrumb magic",
            offset=start + _OFF_MAGIC,
            field="magic",
            expected=LIVE_UPDATE_MAGIC,
            got=magic,
        )
    # §5: "a misaligned MFN array address" (page aligned)
    if maddr % PAGE_SIZE:
        raise HandoverError(
            "MFN array address not page aligned",
            offset=start + _OFF_ARRAY,
            field="mfn_array_maddr",
            expected="a multiple of 4096",
            got=maddr,
        )
    # §5: "The third word is a non-zero multiple of 4096"
    if word % PAGE_SIZE:
        raise HandoverError(
            "breadcrumb page count word not a multiple of 4096",
            offset=start + _OFF_NR,
            field="nr_pages",
            expected="nr_pages << 12",
            got=word,
        )
    nr = word >> PAGE_SHIFT
    # §5: "nr_pages of 0 or above 2^20"
    if nr == 0 or nr > MAX_NR_PAGES:
        raise HandoverError(
            "nr_pages out of range",
            offset=start + _OFF_NR,
            field="nr_pages",
            expected=f"1 … {MAX_NR_PAGES:#x} pages",
            got=nr,
        )
    return Breadcrumb(magic, maddr, nr)


# --- page sets ---------------------------------------------------------------------


class _Intervals:
    """Half-open MFN intervals with a label each, for overlap tests."""

    def __init__(self) -> None:
        self._starts: list[np.ndarray] = []
        self._ends: list[np.ndarray] = []
        self._groups: list[np.ndarray] = []
        self.labels: list[str] = []
        self._built = False

    def add(self, starts: Any, counts: Any, label: str) -> None:
        s = np.minimum(np.asarray(starts, dtype=np.uint64), _CAP).astype(np.int64)
        c = np.minimum(np.asarray(counts, dtype=np.uint64), _CAP).astype(np.int64)
        self._starts.append(s.reshape(-1))
        self._ends.append((s + c).reshape(-1))
        self._groups.append(np.full(s.size, len(self.labels), dtype=np.int64))
        self.labels.append(label)
        self._built = False

    def _build(self) -> None:
        if self._built:
            return
        st = np.concatenate(self._starts) if self._starts else np.zeros(0, np.int64)
        en = np.concatenate(self._ends) if self._ends else np.zeros(0, np.int64)
        gr = np.concatenate(self._groups) if self._groups else np.zeros(0, np.int64)
        order = np.argsort(st, kind="stable")
        self.starts, self.ends, self.groups = st[order], en[order], gr[order]
        self.reach = np.maximum.accumulate(self.ends) if len(self.ends) else self.ends
        self._built = True

    def hits(self, mfns: np.ndarray) -> np.ndarray:
        """A bool mask: which of ``mfns`` (int64) lie inside some interval."""
        self._build()
        out = np.zeros(len(mfns), dtype=bool)
        if not len(self.starts) or not len(mfns):
            return out
        idx = np.searchsorted(self.starts, mfns, side="right") - 1
        ok = idx >= 0
        out[ok] = mfns[ok] < self.reach[idx[ok]]
        return out

    def label_of(self, mfn: int) -> str:
        self._build()
        m = (self.starts <= mfn) & (mfn < self.ends)
        return self.labels[int(self.groups[int(np.argmax(m))])]

    def first_free(self, need: int, lo: int, hi: int) -> int | None:
        """The lowest ``m >= lo`` with ``[m, m + need)`` free and ``m + need <= hi``."""
        self._build()
        if not len(self.starts):
            return lo if lo + need <= hi else None
        gap_lo = np.maximum(np.concatenate(([lo], self.reach)), lo)
        gap_hi = np.concatenate((self.starts, [hi]))
        gap_hi = np.minimum(gap_hi, hi)
        ok = np.nonzero(gap_hi - gap_lo >= need)[0]
        return int(gap_lo[ok[0]]) if len(ok) else None


def _clip(mfns: np.ndarray) -> np.ndarray:
    return np.minimum(mfns.astype(np.uint64), _CAP).astype(np.int64)


def _runs(mfns: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs of consecutive MFNs in list order: ``(first index, first mfn, length)``."""
    if not len(mfns):
        return []
    m = _clip(mfns)
    breaks = np.nonzero(np.diff(m) != 1)[0] + 1
    bounds = [0, *breaks.tolist(), len(m)]
    return [(a, int(m[a]), b - a) for a, b in itertools.pairwise(bounds)]


def _lu_data(xen_pages: np.ndarray) -> _Intervals:
    iv = _Intervals()
    sel = xen_pages[xen_pages["kind"] == LU_DATA] if len(xen_pages) else xen_pages
    iv.add(sel["start_mfn"], sel["nr_pages"], "LU_DATA")
    return iv


# --- writing ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Handover:
    """What :func:`write_handover` wrote.

    ``stream`` is the stream actually encoded: the caller's stream, or a copy
    whose LU_XEN_PAGES gained or extended an LU_DATA extent covering
    ``data_mfns`` and the array pages.
    """

    stream: LUStream
    breadcrumb: Breadcrumb
    data_mfns: tuple[int, ...]
    array_mfn: int
    stream_bytes: int

    @property
    def nr_pages(self) -> int:
        return len(self.data_mfns)

    @property
    def array_pages(self) -> int:
        return array_pages(len(self.data_mfns))


class _Count:
    def write(self, data: Any) -> int:
        return memoryview(data).nbytes


class _PageSink:
    """Writes a stream into the data pages of an image, page run by page run."""

    def __init__(self, image: memoryview, runs: list[tuple[int, int, int]]) -> None:
        self.image = image
        self.runs = [(i * PAGE_SIZE, m * PAGE_SIZE, n * PAGE_SIZE) for i, m, n in runs]
        self.capacity = sum(r[2] for r in self.runs)
        self.pos = 0
        self._run = 0

    def write(self, data: Any) -> int:
        mv = memoryview(data).cast("B")
        n = len(mv)
        if self.pos + n > self.capacity:
            raise CallerError("stream grew while being written")  # cannot happen
        done = 0
        while done < n:
            lstart, istart, rlen = self.runs[self._run]
            within = self.pos - lstart
            if within >= rlen:
                self._run += 1
                continue
            k = min(n - done, rlen - within)
            self.image[istart + within : istart + within + k] = mv[done : done + k]
            done += k
            self.pos += k
        return n


def _writable(image: Any) -> memoryview:
    if isinstance(image, (str, os.PathLike)):
        raise CallerError("write_handover takes a buffer; use write_handover_file for a path")
    try:
        mv = memoryview(image)
    except TypeError:
        raise CallerError(
            f"image: expected a bytearray, writable memoryview or mmap, got {type(image).__name__}"
        ) from None
    if mv.readonly:
        raise CallerError(
            f"image: expected a writable buffer, got a read-only {type(image).__name__}"
        )
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    return mv


def _forbidden(stream: LUStream, bs: int, bsize: int) -> _Intervals:
    """Frames the stream's pages may not use (LU bootmem, §4.3–§4.5, §4.8)."""
    iv = _Intervals()
    iv.add([bs >> PAGE_SHIFT], [bsize >> PAGE_SHIFT], "the LU bootmem")
    rr = stream.reusable_regions
    if len(rr):
        iv.add(rr["start_mfn"], rr["nr_pages"], "an LU_REUSABLE_REGIONS extent")
    xp = stream.xen_pages
    if len(xp):
        for kind, name in ((1, "M2P"), (2, "IOMMU_PT"), (4, "SHARED")):
            sel = xp[xp["kind"] == kind]
            if len(sel):
                iv.add(sel["start_mfn"], sel["nr_pages"], f"an LU_XEN_PAGES {name} extent")
        other = xp[~np.isin(xp["kind"], (1, 2, 3, 4))]
        if len(other):
            iv.add(other["start_mfn"], other["nr_pages"], "an LU_XEN_PAGES extent")
    for d in stream.domains:
        own = d.ownership
        if len(own):
            iv.add(own["start_mfn"], own["nr_pages"], f"frames owned by domain {d.domid}")
    return iv


def _check_placement(
    data: np.ndarray, array_mfn: int, nr_array: int, forbidden: _Intervals, limit: int, why: str
) -> None:
    arr = np.arange(array_mfn, array_mfn + nr_array, dtype=np.int64)
    for what, pages in (("data page", data), ("MFN array page", arr)):
        bad = np.nonzero(pages >= limit)[0]
        if len(bad):
            raise CallerError(f"{what} {int(pages[bad[0]]):#x} is not below {why} ({limit:#x})")
        hit = np.nonzero(forbidden.hits(pages))[0]
        if len(hit):
            m = int(pages[hit[0]])
            raise CallerError(f"{what} {m:#x} overlaps {forbidden.label_of(m)}")
    uniq, first = np.unique(data, return_index=True)
    if len(uniq) != len(data):
        dup = sorted(set(range(len(data))) - set(first.tolist()))[0]
        raise CallerError(f"data page {int(data[dup]):#x} is listed twice (page_mfns[{dup}])")
    inside = np.nonzero((data >= array_mfn) & (data < array_mfn + nr_array))[0]
    if len(inside):
        raise CallerError(f"data page {int(data[inside[0]]):#x} overlaps the MFN array")


def _with_lu_data(stream: LUStream, pages: np.ndarray) -> LUStream:
    """``stream``, or a copy whose LU_DATA extents cover every MFN in ``pages``.

    Existing LU_DATA extents that touch or adjoin the new pages are extended
    in place; pages next to none become new extents at the end of the list.
    """
    xp = stream.xen_pages
    if not len(xp):
        xp = XenPagesExtent.LAYOUT.empty(0)
    covered = _lu_data(xp)
    pages = np.unique(pages)
    new = pages[~covered.hits(pages)]
    if not len(new):
        return stream
    # (start, end, index of an existing LU_DATA entry or -1 for a new run)
    items: list[tuple[int, int, int]] = []
    kinds = xp["kind"]
    for i in np.nonzero(kinds == LU_DATA)[0].tolist():
        s = int(xp["start_mfn"][i])
        items.append((s, s + int(xp["nr_pages"][i]), i))
    for _, s, n in _runs(new):
        items.append((s, s + n, -1))
    items.sort()
    groups: list[list[tuple[int, int, int]]] = []
    for it in items:
        if groups and it[0] <= max(e for _, e, _ in groups[-1]):
            groups[-1].append(it)
        else:
            groups.append([it])
    replace: dict[int, tuple[int, int] | None] = {}  # entry index → merged extent or drop
    appended: list[tuple[int, int]] = []
    for g in groups:
        if all(i >= 0 for _, _, i in g):
            continue  # only existing extents: leave them as they are
        extent = (min(s for s, _, _ in g), max(e for _, e, _ in g))
        olds = sorted(i for _, _, i in g if i >= 0)
        if olds:
            replace[olds[0]] = extent
            for i in olds[1:]:
                replace[i] = None
        else:
            appended.append(extent)
    rows: list[tuple[int, int, int, int]] = []
    for i in range(len(xp)):
        if i in replace:
            ext = replace[i]
            if ext is not None:
                rows.append((ext[0], ext[1] - ext[0], LU_DATA, 0))
        else:
            rows.append(
                (
                    int(xp["start_mfn"][i]),
                    int(xp["nr_pages"][i]),
                    int(xp["kind"][i]),
                    int(xp["rsvd"][i]),
                )
            )
    rows.extend((s, e - s, LU_DATA, 0) for s, e in appended)
    entries = np.array(rows, dtype=XenPagesExtent.LAYOUT.dtype)
    rec = Record(T.LU_XEN_PAGES, Bulk(entries))
    old = stream.global_section.records
    recs: list[Record] = []
    placed = False
    for r in old:
        if r.type == T.LU_XEN_PAGES:
            if not placed:
                recs.append(rec)
                placed = True
            continue
        recs.append(Record(r.type, r.value))
    if not placed:
        after = max(
            i for i, r in enumerate(recs) if r.type in (T.LU_HOST_INFO, T.LU_REUSABLE_REGIONS)
        )
        recs.insert(after + 1, rec)
    return LUStream(GlobalSection(recs), list(stream.domains))


def _encoded_size(stream: LUStream, max_record_bytes: int) -> int:
    return encode_lu_to(stream, _Count(), max_record_bytes=max_record_bytes)


def _as_mfns(page_mfns: Sequence[int]) -> np.ndarray:
    out: list[int] = []
    for i, m in enumerate(page_mfns):
        if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or not 0 <= int(m) < _CAP:
            raise CallerError(f"page_mfns[{i}]: expected an MFN (int >= 0), got {m!r}")
        out.append(int(m))
    return np.array(out, dtype=np.int64)


def write_handover(
    stream: LUStream,
    image: Any,
    *,
    bootmem: Bootmem | None = None,
    data_start_mfn: int | None = None,
    page_mfns: Sequence[int] | None = None,
    array_mfn: int | None = None,
    search_from_mfn: int = DEFAULT_SEARCH_FROM_MFN,
    max_record_bytes: int = REC_LENGTH_MAX,
) -> Handover:
    """Write ``stream``, its MFN array and the breadcrumb into ``image`` (§5).

    ``image`` is a writable buffer (bytearray, writable memoryview, writable
    mmap) whose offset is the machine address; only the data pages, the array
    pages and the first bootmem page are written (a sparse file stays sparse).

    ``bootmem`` (``(start, size)`` or ``liveupdate=`` text) must equal the
    stream's LU_HOST_INFO bootmem; by default it is taken from there. Data
    pages are, in order of precedence:

    * ``page_mfns``: exactly these pages, in stream order, possibly scattered
      (as real xen#1 allocates them); the stream must fit in them, and the
      breadcrumb lists all of them;
    * ``data_start_mfn``: the fewest contiguous pages from there;
    * otherwise the lowest free run, inside one of the stream's LU_DATA
      extents if one is large enough, else at or above ``search_from_mfn``,
      that holds the data pages followed by the array.

    The MFN array goes at ``array_mfn``; by default right after contiguous data
    pages, or, with ``page_mfns``, in the lowest free run that fits (LU_DATA
    extents first, as above).

    The stream must describe its own allocation (§4.5, §5): when the data and
    array pages are not all inside LU_XEN_PAGES LU_DATA extents, a copy of the
    stream is encoded whose LU_DATA extents are extended or added to cover
    them, and the size is recomputed until the stream fits. The result says
    what was written. A placement that overlaps the LU bootmem, an
    LU_REUSABLE_REGIONS extent, an LU_XEN_PAGES extent of another kind or a
    domain's owned frames, or that is not below both ``max_page`` and the image
    end, is refused with :class:`~xenlu.errors.CallerError`.

    >>> img = bytearray(16 << 20)
    >>> h = write_handover(stream, img, data_start_mfn=0x800)   # doctest: +SKIP
    >>> (h.data_mfns[0], h.array_mfn, h.nr_pages)               # doctest: +SKIP
    (2048, 2049, 1)
    >>> read_handover(img, (h.stream.host.lu_bootmem_start,
    ...                     h.stream.host.lu_bootmem_size)) == h.stream  # doctest: +SKIP
    True
    """
    if not isinstance(stream, LUStream):
        raise CallerError(f"stream: expected an LUStream, got {type(stream).__name__}")
    mv = _writable(image)
    host: LuHostInfo | None = stream.global_section.one(T.LU_HOST_INFO)
    if host is None:
        raise CallerError("stream has no LU_HOST_INFO")
    own = (int(host.lu_bootmem_start), int(host.lu_bootmem_size))
    bs, bsize = _bootmem(own if bootmem is None else bootmem)
    if (bs, bsize) != own:
        raise CallerError(
            f"bootmem ({bs:#x}, {bsize:#x}) differs from the stream's LU_HOST_INFO "
            f"({own[0]:#x}, {own[1]:#x})"
        )
    # §4.2: 2 MiB aligned, a non-zero multiple of 2 MiB, below 4 GiB.
    if bs % _MIB2 or bsize % _MIB2 or bs + bsize > 1 << 32:
        raise CallerError(
            f"bootmem ({bs:#x}, {bsize:#x}): expected 2 MiB aligned, a multiple of 2 MiB, "
            "ending at or below 4 GiB (§4.2)"
        )
    if bs + PAGE_SIZE > len(mv):
        raise CallerError(
            f"image of {len(mv):#x} bytes does not hold the breadcrumb page at {bs:#x}"
        )
    if page_mfns is not None and data_start_mfn is not None:
        raise CallerError("give page_mfns or data_start_mfn, not both")
    for name, v in (
        ("data_start_mfn", data_start_mfn),
        ("array_mfn", array_mfn),
        ("search_from_mfn", search_from_mfn),
    ):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < _CAP):
            raise CallerError(f"{name}: expected an MFN (int >= 0), got {v!r}")
    image_pages = len(mv) >> PAGE_SHIFT
    max_page = int(host.max_page)
    limit = min(max_page, image_pages)
    why = "max_page" if max_page <= image_pages else "the image end"
    forbidden = _forbidden(stream, bs, bsize)

    # Free runs inside the stream's own LU_DATA extents come first (the
    # stream then already describes its allocation and is written as is).
    xp = stream.xen_pages
    own_data = sorted(
        (int(e["start_mfn"]), int(e["start_mfn"]) + int(e["nr_pages"]))
        for e in (xp[xp["kind"] == LU_DATA] if len(xp) else xp)
    )

    def place(busy: _Intervals, need: int) -> int:
        for lo, hi in own_data:
            at = busy.first_free(need, lo, min(hi, limit))
            if at is not None:
                return at
        at = busy.first_free(need, search_from_mfn, limit)
        if at is None:
            raise CallerError(
                f"no {need} free contiguous pages in an LU_DATA extent or at or above "
                f"{search_from_mfn:#x} and below {limit:#x}"
            )
        return at

    def layout(n: int) -> tuple[np.ndarray, int, int]:
        k = array_pages(n)
        if page_mfns is not None:
            data = _as_mfns(page_mfns)
            am = array_mfn
            if am is None:
                busy = _forbidden(stream, bs, bsize)
                busy.add(data, np.ones(len(data), np.int64), "a data page")
                am = place(busy, k)
            return data, am, k
        start = data_start_mfn
        if start is None:
            busy = forbidden
            if array_mfn is not None:
                busy = _forbidden(stream, bs, bsize)
                busy.add([array_mfn], [k], "the MFN array")
            start = place(busy, n if array_mfn is not None else n + k)
        am = array_mfn if array_mfn is not None else start + n
        return np.arange(start, start + n, dtype=np.int64), am, k

    base = _encoded_size(stream, max_record_bytes)
    if page_mfns is not None:
        n = len(page_mfns)
        if not 1 <= n <= MAX_NR_PAGES:
            raise CallerError(f"page_mfns: expected 1 … {MAX_NR_PAGES:#x} pages, got {n}")
    else:
        n = max(1, -(-base // PAGE_SIZE))
    for _ in range(64):
        if n > MAX_NR_PAGES:
            raise CallerError(f"stream of {base} bytes needs more than {MAX_NR_PAGES:#x} pages")
        data, am, k = layout(n)
        _check_placement(data, am, k, forbidden, limit, why)
        pages = np.concatenate((data, np.arange(am, am + k, dtype=np.int64)))
        out = _with_lu_data(stream, pages)
        size = base if out is stream else _encoded_size(out, max_record_bytes)
        need = max(1, -(-size // PAGE_SIZE))
        if need <= n:
            break
        if page_mfns is not None:
            raise CallerError(
                f"stream of {size} bytes needs {need} pages, page_mfns gives {len(page_mfns)}"
            )
        n = need
    else:  # pragma: no cover - the LU_DATA extents converge after two rounds
        raise CallerError("could not place the stream")

    runs = _runs(data)
    sink = _PageSink(mv, runs)
    written = encode_lu_to(out, sink, max_record_bytes=max_record_bytes)
    if written != size:  # pragma: no cover
        raise CallerError(f"stream size changed while writing ({size} → {written})")
    # Zero the rest of the data pages: nothing after END is read, but it
    # must not carry stale bytes either.
    tail = n * PAGE_SIZE - size
    if tail:
        sink.write(bytes(tail))
    # The MFN array: u64 MFNs of the data pages in stream order, then zeros.
    a0 = am * PAGE_SIZE
    mv[a0 : a0 + n * 8] = data.astype("<u8").tobytes()
    mv[a0 + n * 8 : a0 + k * PAGE_SIZE] = bytes(k * PAGE_SIZE - n * 8)
    # The breadcrumb owns the whole first page of the LU bootmem (§5).
    crumb = Breadcrumb(LIVE_UPDATE_MAGIC, a0, n)
    mv[bs : bs + PAGE_SIZE] = crumb.pack() + bytes(PAGE_SIZE - _BREADCRUMB.size)
    return Handover(out, crumb, tuple(int(m) for m in data), am, size)


def write_handover_file(
    stream: LUStream,
    path: str | os.PathLike[str],
    *,
    image_size: int | None = None,
    **kwargs: Any,
) -> Handover:
    """:func:`write_handover` into a (sparse) image file at ``path``.

    A missing file is created and extended with ``truncate`` to
    ``image_size`` (default ``max_page × 4096`` from the stream), so only the
    pages written take disk space; an existing file is grown to
    ``image_size`` if given and smaller. The file is mapped writable and
    flushed. Other keywords are those of :func:`write_handover`.

    >>> h = write_handover_file(stream, tmp / "mem.img", image_size=16 << 20)  # doctest: +SKIP
    >>> read_handover(tmp / "mem.img", "liveupdate=2M@0x200000") == h.stream  # doctest: +SKIP
    True
    """
    p = Path(path)
    if image_size is None:
        if not isinstance(stream, LUStream):
            raise CallerError(f"stream: expected an LUStream, got {type(stream).__name__}")
        image_size = int(stream.host.max_page) << PAGE_SHIFT
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size <= 0:
        raise CallerError(f"image_size: expected a positive int, got {image_size!r}")
    try:
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CallerError(f"cannot open {p}: {exc.strerror or exc}") from None
    try:
        if os.fstat(fd).st_size < image_size:
            os.ftruncate(fd, image_size)
        m = mmap.mmap(fd, 0, access=mmap.ACCESS_WRITE)
    except OSError as exc:
        os.close(fd)
        raise CallerError(f"cannot map {p}: {exc.strerror or exc}") from None
    try:
        h = write_handover(stream, m, **kwargs)
        m.flush()
        return h
    finally:
        m.close()
        os.close(fd)


# --- reading ---------------------------------------------------------------------------


class _Pages:
    """The data pages of a hand-over: stream offsets ↔ image offsets."""

    def __init__(self, buf: memoryview, mfns: np.ndarray, crumb_at: int) -> None:
        self.buf = buf
        self.mfns = mfns
        self.crumb_at = crumb_at
        self.nbytes = len(mfns) * PAGE_SIZE

    def image_offset(self, pos: int) -> int:
        """The image offset of stream offset ``pos`` (end of the last page past the end)."""
        page = min(pos >> PAGE_SHIFT, len(self.mfns) - 1)
        return int(self.mfns[page]) * PAGE_SIZE + (pos - page * PAGE_SIZE)

    def walk(self) -> int | None:
        """Framing pre-walk: the stream's length up to and including END.

        Raises :class:`HandoverError` when a record (or the missing END) runs
        past ``nr_pages × 4096`` (§5), chaining the :class:`FramingError` the
        decoder would give for the truncated buffer (stream offsets), so the
        decoder itself never meets a stream cut short by the pages. Returns
        None when a header is bad in a way the decoder reports itself (length
        above REC_LENGTH_MAX).
        A record header is 8 bytes at an 8-aligned offset, so it never
        straddles a page.
        """
        pos, index = 0, 0
        unpack = HDR.unpack_from
        while True:
            if pos + 8 > self.nbytes:
                # §5: "a stream that runs past nr_pages × 4096" (no END in the pages)
                cause = FramingError(
                    "stream ends without END", offset=pos, record_index=index, expected="END record"
                )
                raise HandoverError(
                    "stream runs past the data pages: no END within nr_pages × 4096 bytes",
                    offset=self.crumb_at + _OFF_NR,
                    record_index=index,
                    field="nr_pages",
                    expected=f"END within {self.nbytes:#x} bytes",
                    got=f"record #{index} at stream offset {pos:#x}",
                ) from cause
            at = self.image_offset(pos)
            rtype, length = (int(v) for v in unpack(self.buf, at))
            if length > REC_LENGTH_MAX:
                return None
            stop = pos + 8 + length + (-length & 7)
            if stop > self.nbytes:
                # §5: "a stream that runs past nr_pages × 4096"
                cause = FramingError(
                    "record body runs past the end of the input",
                    offset=pos,
                    record_index=index,
                    record_type=rtype,
                    field="length",
                    expected=f"{stop - pos - 8} bytes of body and padding",
                    got=max(0, self.nbytes - pos - 8),
                )
                raise HandoverError(
                    "stream runs past the data pages",
                    offset=at,
                    record_index=index,
                    record_type=rtype,
                    field="length",
                    expected=f"record to end within nr_pages × 4096 = {self.nbytes:#x} bytes",
                    got=f"ends at stream offset {stop:#x}",
                ) from cause
            if rtype == 0:  # END
                return stop
            pos, index = stop, index + 1

    def map(self, nbytes: int) -> memoryview:
        """The first ``nbytes`` of the stream as one buffer.

        Contiguous, in-order pages are a zero-copy view of the image;
        otherwise the pages are gathered into one bytearray (one copy of the
        ``nbytes`` used, not of every listed page).
        """
        used = self.mfns[: -(-nbytes // PAGE_SIZE)]
        runs = _runs(used)
        if len(runs) == 1:
            a = runs[0][1] * PAGE_SIZE
            return self.buf[a : a + nbytes]
        out = bytearray(nbytes)
        for i, m, n in runs:
            lo = i * PAGE_SIZE
            k = min(n * PAGE_SIZE, nbytes - lo)
            out[lo : lo + k] = self.buf[m * PAGE_SIZE : m * PAGE_SIZE + k]
        return memoryview(out).toreadonly()


def _relocated(err: DecodeError, pages: _Pages) -> DecodeError:
    """``err`` (stream offsets) as the same class with its offset in the image."""
    if err.offset is None:
        return err
    return type(err)(
        f"{err.message} (stream offset {err.offset:#x})",
        offset=pages.image_offset(err.offset),
        record_index=err.record_index,
        record_type=err.record_type,
        field=err.field,
        expected=err.expected,
        got=err.got,
    )


def _first_entry_hit(
    mask: np.ndarray, array_at: int, mfns: np.ndarray, message: str, expected: str
) -> None:
    bad = np.nonzero(mask)[0]
    if len(bad):
        i = int(bad[0])
        raise HandoverError(
            message,
            offset=array_at + 8 * i,
            field=f"mfn_array[{i}]",
            expected=expected,
            got=int(mfns[i]),
        )


def read_handover(image: Any, bootmem: Bootmem, *, strict: bool = True) -> LUStream:
    """Find, check, map and decode the stream a xen#1 handed over (§5).

    ``image`` is a buffer or a path (mapped read-only); ``bootmem`` is the
    ``liveupdate=`` text or ``(start, size)``. The rules of §5 "A reader
    rejects" are checked in the spec's order, each failure a
    :class:`~xenlu.errors.HandoverError` at an image offset; then the stream
    is decoded with :func:`~xenlu.lu_stream.decode_lu` (``memory=True``).
    The listed pages are mapped in order: pages that are contiguous and in
    order are a zero-copy view of the image, otherwise the used pages are
    gathered into one bytearray (one copy). Bulk entries of the result are
    views over that buffer.

    Precedence: every rule about the breadcrumb and the MFN array comes
    before decoding; the rules that need the decoded LU_HOST_INFO and the
    verified global section (bootmem, ``max_page``, LU_DATA coverage) are
    checked after the whole stream decoded, so a structural error anywhere in
    the stream is reported before them.

    >>> s = read_handover(img, "liveupdate=2M@0x200000")   # doctest: +SKIP
    >>> s.host.lu_bootmem_start                             # doctest: +SKIP
    2097152
    """
    buf = as_buffer(image)
    bs, bsize = _bootmem(bootmem)
    crumb = _check_breadcrumb(buf, bs)
    n, k = crumb.nr_pages, crumb.array_pages
    am = crumb.array_mfn
    a0 = crumb.mfn_array_maddr
    image_pages = len(buf) >> PAGE_SHIFT
    boot_lo, boot_hi = bs >> PAGE_SHIFT, (bs + bsize) >> PAGE_SHIFT

    # §5: "an MFN array page ... inside the LU bootmem"
    if am < boot_hi and am + k > boot_lo:
        raise HandoverError(
            "MFN array inside the LU bootmem",
            offset=bs + _OFF_ARRAY,
            field="mfn_array_maddr",
            expected=f"outside [{bs:#x}, {bs + bsize:#x})",
            got=a0,
        )
    # An MFN array page beyond the image end.
    if am + k > image_pages:
        raise HandoverError(
            "MFN array beyond the image end",
            offset=bs + _OFF_ARRAY,
            field="mfn_array_maddr",
            expected=f"{k} pages ending at or below {len(buf):#x}",
            got=a0,
        )
    raw = np.frombuffer(buf, dtype="<u8", count=n, offset=a0)
    mfns = _clip(raw)

    # §5: "... or data page inside the LU bootmem"
    _first_entry_hit(
        (mfns >= boot_lo) & (mfns < boot_hi),
        a0,
        raw,
        "data page inside the LU bootmem",
        f"an MFN outside [{boot_lo:#x}, {boot_hi:#x})",
    )
    # §5: "an MFN listed twice"
    _, first = np.unique(mfns, return_index=True)
    if len(first) != n:
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        i = int(np.nonzero(dup)[0][0])
        j = int(np.nonzero(mfns[:i] == mfns[i])[0][0])
        raise HandoverError(
            "MFN listed twice",
            offset=a0 + 8 * i,
            field=f"mfn_array[{i}]",
            expected=f"each MFN once (also at mfn_array[{j}])",
            got=int(raw[i]),
        )
    # §5: "... or listed as data and also holding the array"
    _first_entry_hit(
        (mfns >= am) & (mfns < am + k),
        a0,
        raw,
        "data page holds the MFN array",
        f"an MFN outside [{am:#x}, {am + k:#x})",
    )
    # A data page beyond the image end.
    _first_entry_hit(
        mfns >= image_pages,
        a0,
        raw,
        "data page beyond the image end",
        f"an MFN below {image_pages:#x}",
    )

    pages = _Pages(buf, mfns, bs)
    # §5: "a stream that runs past nr_pages × 4096" (raised by the pre-walk, so
    # the decoder never meets a stream truncated by the end of the pages)
    end = pages.walk()
    data = pages.map(end if end is not None else pages.nbytes)

    def check_global(glob: GlobalSection) -> None:
        # Runs as soon as the global section is decoded and its checksum
        # verified, before any domain section (§5's order).
        # §5: "an LU_HOST_INFO whose bootmem differs from the liveupdate= region"
        hi_index = next(i for i, r in enumerate(glob.records) if r.type == T.LU_HOST_INFO)
        hi_rec = glob.records[hi_index]
        host: LuHostInfo = hi_rec.value
        body = (hi_rec.offset or 0) + 8
        lay = LuHostInfo.LAYOUT
        for name, want in (("lu_bootmem_start", bs), ("lu_bootmem_size", bsize)):
            got = int(getattr(host, name))
            if got != want:
                raise HandoverError(
                    "LU_HOST_INFO bootmem differs from the liveupdate= region",
                    offset=pages.image_offset(body + lay.field(name).offset),
                    record_index=hi_index,
                    record_type=T.LU_HOST_INFO,
                    field=name,
                    expected=want,
                    got=got,
                )
        # §5: "once LU_HOST_INFO is decoded, any array or data page at or above max_page"
        max_page = int(host.max_page)
        if am + k > max_page:
            raise HandoverError(
                "MFN array page at or above max_page",
                offset=bs + _OFF_ARRAY,
                field="mfn_array_maddr",
                expected=f"{k} pages below max_page {max_page:#x}",
                got=a0,
            )
        _first_entry_hit(
            mfns >= max_page, a0, raw, "data page at or above max_page", f"below {max_page:#x}"
        )
        # §5: "once the global section's checksum is verified, any array or data
        # page outside every LU_XEN_PAGES LU_DATA extent" (decode_lu has verified
        # every checksum by now)
        cover = _lu_data(glob.xen_pages)
        arr = np.arange(am, am + k, dtype=np.int64)
        out = np.nonzero(~cover.hits(arr))[0]
        if len(out):
            raise HandoverError(
                "MFN array page outside every LU_XEN_PAGES LU_DATA extent",
                offset=bs + _OFF_ARRAY,
                field="mfn_array_maddr",
                expected="array pages inside LU_DATA extents",
                got=f"page {int(arr[out[0]]):#x}",
            )
        _first_entry_hit(
            ~cover.hits(mfns),
            a0,
            raw,
            "data page outside every LU_XEN_PAGES LU_DATA extent",
            "an MFN inside an LU_DATA extent",
        )

    try:
        stream = decode_lu(data, strict=strict, memory=True, on_global=check_global)
    except HandoverError:
        raise
    except DecodeError as exc:
        raise _relocated(exc, pages) from exc
    return stream
