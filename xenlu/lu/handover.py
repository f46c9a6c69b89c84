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
accepts a path (mapped read-only by :func:`xenlu.core.framing.as_buffer`).

Errors: arguments that make no sense, or a placement the writer refuses, are
:class:`~xenlu.core.errors.CallerError`. A reader's §5 rule failure is a
:class:`~xenlu.core.errors.HandoverError` whose ``offset`` is a byte offset in the
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

import mmap
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from construct import Int64ul

from xenlu.core.errors import CallerError, DecodeError, HandoverError
from xenlu.core.framing import REC_LENGTH_MAX, as_buffer
from xenlu.core.layout import Layout, Packed, fld, packed
from xenlu.lu._handover_pages import (
    LU_DATA,
    ByteCount,
    GlobalCheck,
    Intervals,
    MfnArray,
    PageSink,
    StreamPages,
    check_mfn_array,
    check_placement,
    forbidden,
    page_runs,
    relocated,
    with_lu_data,
)
from xenlu.lu.host_records import LuHostInfo
from xenlu.lu.records import T
from xenlu.lu.stream import LUStream, decode_lu, encode_lu_to
from xenlu.lu.values import MIB2, PAGE_SIZE

__all__ = [
    "LIVE_UPDATE_MAGIC",
    "LU_DATA",
    "MAX_NR_PAGES",
    "PAGE_SIZE",
    "Bootmem",
    "Breadcrumb",
    "BreadcrumbLayout",
    "Handover",
    "array_pages",
    "find_breadcrumb",
    "format_liveupdate",
    "parse_liveupdate",
    "read_handover",
    "write_handover",
    "write_handover_file",
]

PAGE_SHIFT = PAGE_SIZE.bit_length() - 1
MIB = 1 << 20
#: Breadcrumb magic: ``0x4C69766555706461 & PAGE_MASK`` (RFC ``LIVE_UPDATE_MAGIC``).
LIVE_UPDATE_MAGIC = 0x4C69766555706000
#: Largest ``nr_pages`` a reader accepts (§5: "above 2^20" is rejected).
MAX_NR_PAGES = 1 << 20
#: Where the writer's automatic placement starts looking (1 MiB: skip low memory).
DEFAULT_SEARCH_FROM_MFN = 0x100

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
    :class:`~xenlu.core.errors.CallerError` naming the expected form.

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


@packed(name="LU breadcrumb")
class BreadcrumbLayout(Packed):
    """§5: the three u64 xen#1 writes at ``lu_bootmem_start`` (the declaration
    :class:`Breadcrumb` packs and unpacks through)."""

    magic: int = fld(
        Int64ul, values={LIVE_UPDATE_MAGIC: "LIVE_UPDATE_MAGIC"}, doc="LIVE_UPDATE_MAGIC"
    )
    mfn_array_maddr: int = fld(Int64ul, doc="machine address of the MFN array, page aligned")
    nr_pages: int = fld(Int64ul, doc="number of data pages << 12, at most 2^20 pages")


_CRUMB: Layout = BreadcrumbLayout.LAYOUT
_OFF_ARRAY = _CRUMB.field("mfn_array_maddr").offset
_OFF_NR = _CRUMB.field("nr_pages").offset


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
        return _CRUMB.struct.pack(self.magic, self.mfn_array_maddr, self.nr_pages << PAGE_SHIFT)

    @classmethod
    def unpack(cls, buf: Any, offset: int = 0) -> Breadcrumb:
        """Read the three words without checking them (see :func:`find_breadcrumb`).

        A third word that is not a multiple of 4096 is truncated here.
        """
        magic, maddr, size = _CRUMB.unpack_tuple(buf, offset)
        return cls(magic, maddr, size >> PAGE_SHIFT)


def find_breadcrumb(image: Any, bootmem: Bootmem) -> Breadcrumb:
    """Read and check the breadcrumb at the start of the LU bootmem (§5).

    ``image`` is a buffer or a path; ``bootmem`` is ``(start, size)`` or the
    ``liveupdate=`` text. Raises :class:`~xenlu.core.errors.HandoverError` (offset
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
    if start + _CRUMB.size > len(buf):
        raise HandoverError(
            "breadcrumb beyond the image end",
            offset=start,
            field="magic",
            expected=f"{_CRUMB.size} bytes at {start:#x}",
            got=f"image of {len(buf):#x} bytes",
        )
    magic, maddr, word = _CRUMB.unpack_tuple(buf, start)
    nr = word >> PAGE_SHIFT
    # §5 "A reader rejects", in the spec's order: a bad magic; a misaligned MFN
    # array address; a third word that is not a non-zero multiple of 4096;
    # nr_pages of 0 or above 2^20. (broken, message, field, expected, got)
    rules: tuple[tuple[bool, str, str, object, int], ...] = (
        (magic != LIVE_UPDATE_MAGIC, "bad breadcrumb magic", "magic", LIVE_UPDATE_MAGIC, magic),
        (
            maddr % PAGE_SIZE != 0,
            "MFN array address not page aligned",
            "mfn_array_maddr",
            "a multiple of 4096",
            maddr,
        ),
        (
            word % PAGE_SIZE != 0,
            "breadcrumb page count word not a multiple of 4096",
            "nr_pages",
            "nr_pages << 12",
            word,
        ),
        (
            nr == 0 or nr > MAX_NR_PAGES,
            "nr_pages out of range",
            "nr_pages",
            f"1 … {MAX_NR_PAGES:#x} pages",
            nr,
        ),
    )
    for broken, message, name, expected, got in rules:
        if broken:
            raise HandoverError(
                message,
                offset=start + _CRUMB.field(name).offset,
                field=name,
                expected=expected,
                got=got,
            )
    return Breadcrumb(magic, maddr, nr)


# --- writing ---------------------------------------------------------------------------


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


def _encoded_size(stream: LUStream, max_record_bytes: int) -> int:
    return encode_lu_to(stream, ByteCount(), max_record_bytes=max_record_bytes)


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
    end, is refused with :class:`~xenlu.core.errors.CallerError`.

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
    host, bs, bsize = _writer_bootmem(stream, mv, bootmem)
    if page_mfns is not None and data_start_mfn is not None:
        raise CallerError("give page_mfns or data_start_mfn, not both")
    for name, v in (
        ("data_start_mfn", data_start_mfn),
        ("array_mfn", array_mfn),
        ("search_from_mfn", search_from_mfn),
    ):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < _CAP):
            raise CallerError(f"{name}: expected an MFN (int >= 0), got {v!r}")
    placer = _Placer(stream, host, len(mv), bs, bsize, search_from_mfn)
    placer.page_mfns, placer.data_start_mfn, placer.array_mfn = page_mfns, data_start_mfn, array_mfn
    fit = _fit(stream, placer, max_record_bytes)
    crumb = _write_pages(mv, bs, fit, max_record_bytes)
    return Handover(fit.stream, crumb, tuple(int(m) for m in fit.data), fit.array_mfn, fit.size)


def _writer_bootmem(
    stream: LUStream, mv: memoryview, bootmem: Bootmem | None
) -> tuple[LuHostInfo, int, int]:
    """The stream's LU_HOST_INFO and bootmem, checked against ``bootmem`` and the image."""
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
    if bs % MIB2 or bsize % MIB2 or bs + bsize > 1 << 32:
        raise CallerError(
            f"bootmem ({bs:#x}, {bsize:#x}): expected 2 MiB aligned, a multiple of 2 MiB, "
            "ending at or below 4 GiB (§4.2)"
        )
    if bs + PAGE_SIZE > len(mv):
        raise CallerError(
            f"image of {len(mv):#x} bytes does not hold the breadcrumb page at {bs:#x}"
        )
    return host, bs, bsize


class _Placer:
    """Where the data pages and the MFN array go (see :func:`write_handover`)."""

    page_mfns: Sequence[int] | None = None
    data_start_mfn: int | None = None
    array_mfn: int | None = None

    def __init__(
        self,
        stream: LUStream,
        host: LuHostInfo,
        image_bytes: int,
        bs: int,
        bsize: int,
        search_from_mfn: int,
    ) -> None:
        self.stream, self.bs, self.bsize = stream, bs, bsize
        self.search_from_mfn = search_from_mfn
        image_pages = image_bytes >> PAGE_SHIFT
        max_page = int(host.max_page)
        self.limit = min(max_page, image_pages)
        self.why = "max_page" if max_page <= image_pages else "the image end"
        self.forbidden = forbidden(stream, bs, bsize)
        # Free runs inside the stream's own LU_DATA extents come first (the
        # stream then already describes its allocation and is written as is).
        xp = stream.xen_pages
        self.own_data = sorted(
            (int(e["start_mfn"]), int(e["start_mfn"]) + int(e["nr_pages"]))
            for e in (xp[xp["kind"] == LU_DATA] if len(xp) else xp)
        )

    def place(self, busy: Intervals, need: int) -> int:
        for lo, hi in self.own_data:
            at = busy.first_free(need, lo, min(hi, self.limit))
            if at is not None:
                return at
        at = busy.first_free(need, self.search_from_mfn, self.limit)
        if at is None:
            raise CallerError(
                f"no {need} free contiguous pages in an LU_DATA extent or at or above "
                f"{self.search_from_mfn:#x} and below {self.limit:#x}"
            )
        return at

    def layout(self, n: int) -> tuple[np.ndarray, int, int]:
        """(data page MFNs, array MFN, array pages) for ``n`` data pages."""
        k = array_pages(n)
        array_mfn = self.array_mfn
        if self.page_mfns is not None:
            data = _as_mfns(self.page_mfns)
            am = array_mfn
            if am is None:
                busy = forbidden(self.stream, self.bs, self.bsize)
                busy.add(data, np.ones(len(data), np.int64), "a data page")
                am = self.place(busy, k)
            return data, am, k
        start = self.data_start_mfn
        if start is None:
            busy = self.forbidden
            if array_mfn is not None:
                busy = forbidden(self.stream, self.bs, self.bsize)
                busy.add([array_mfn], [k], "the MFN array")
            start = self.place(busy, n if array_mfn is not None else n + k)
        am = array_mfn if array_mfn is not None else start + n
        return np.arange(start, start + n, dtype=np.int64), am, k


@dataclass(frozen=True)
class _Fit:
    """A placement the encoded stream fits in."""

    stream: LUStream  # as encoded (LU_DATA extents may have grown)
    data: np.ndarray
    array_mfn: int
    array_pages: int
    size: int  # stream bytes


def _fit(stream: LUStream, placer: _Placer, max_record_bytes: int) -> _Fit:
    """Place, extend LU_DATA to cover the placement, re-measure, until it fits."""
    page_mfns = placer.page_mfns
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
        data, am, k = placer.layout(n)
        check_placement(data, am, k, placer.forbidden, placer.limit, placer.why)
        pages = np.concatenate((data, np.arange(am, am + k, dtype=np.int64)))
        out = with_lu_data(stream, pages)
        size = base if out is stream else _encoded_size(out, max_record_bytes)
        need = max(1, -(-size // PAGE_SIZE))
        if need <= n:
            return _Fit(out, data, am, k, size)
        if page_mfns is not None:
            raise CallerError(
                f"stream of {size} bytes needs {need} pages, page_mfns gives {len(page_mfns)}"
            )
        n = need
    raise CallerError(  # pragma: no cover - the LU_DATA extents converge after two rounds
        "could not place the stream"
    )


def _write_pages(mv: memoryview, bs: int, fit: _Fit, max_record_bytes: int) -> Breadcrumb:
    """Encode into the data pages, then the MFN array, then the breadcrumb (§5)."""
    data, am, k, size = fit.data, fit.array_mfn, fit.array_pages, fit.size
    n = len(data)
    sink = PageSink(mv, page_runs(data))
    written = encode_lu_to(fit.stream, sink, max_record_bytes=max_record_bytes)
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
    mv[bs : bs + PAGE_SIZE] = crumb.pack() + bytes(PAGE_SIZE - _CRUMB.size)
    return crumb


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


def read_handover(image: Any, bootmem: Bootmem, *, strict: bool = True) -> LUStream:
    """Find, check, map and decode the stream a xen#1 handed over (§5).

    ``image`` is a buffer or a path (mapped read-only); ``bootmem`` is the
    ``liveupdate=`` text or ``(start, size)``. The rules of §5 "A reader
    rejects" are checked in the spec's order, each failure a
    :class:`~xenlu.core.errors.HandoverError` at an image offset; then the stream
    is decoded with :func:`~xenlu.lu.stream.decode_lu` (``memory=True``).
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
    array = MfnArray(crumb.array_mfn, crumb.array_pages, crumb.mfn_array_maddr, bs + _OFF_ARRAY)
    raw, mfns = check_mfn_array(buf, crumb.nr_pages, array, bs, bsize)
    pages = StreamPages(buf, mfns, bs + _OFF_NR)
    # §5: "a stream that runs past nr_pages × 4096" (raised by the pre-walk, so
    # the decoder never meets a stream truncated by the end of the pages)
    end = pages.walk()
    data = pages.map(end if end is not None else pages.nbytes)
    check_global = GlobalCheck(array, bs, bsize, raw, mfns, pages)
    try:
        stream = decode_lu(data, strict=strict, memory=True, on_global=check_global)
    except HandoverError:
        raise
    except DecodeError as exc:
        raise relocated(exc, pages) from exc
    return stream
