"""Page sets and page-level I/O of the Live Update hand-over (LU spec §5).

:mod:`xenlu.lu.handover` is the public face: it checks the breadcrumb and the
arguments; this module places, writes and maps the data pages, and checks
the MFN array and the pages against the decoded global section.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from xenlu.core.errors import CallerError, DecodeError, FramingError, HandoverError
from xenlu.core.framing import HDR, REC_LENGTH_MAX
from xenlu.core.registry import Record
from xenlu.lu.host_records import LuHostInfo, XenPagesExtent
from xenlu.lu.records import Bulk, T
from xenlu.lu.stream import GlobalSection, LUStream
from xenlu.lu.values import PAGE_SIZE, XenPageKind

__all__ = [
    "LU_DATA",
    "ByteCount",
    "GlobalCheck",
    "Intervals",
    "MfnArray",
    "PageSink",
    "StreamPages",
    "check_listed_once",
    "check_mfn_array",
    "check_placement",
    "clip",
    "first_entry_hit",
    "forbidden",
    "lu_data",
    "page_runs",
    "relocated",
    "with_lu_data",
]

PAGE_SHIFT = PAGE_SIZE.bit_length() - 1
#: LU_XEN_PAGES kind of the pages holding the stream and its MFN array (§4.5).
LU_DATA = int(XenPageKind.LU_DATA)
# MFNs are compared as int64; anything at or above this is beyond every image.
_CAP = 1 << 62


class Intervals:
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


def clip(mfns: np.ndarray) -> np.ndarray:
    return np.minimum(mfns.astype(np.uint64), _CAP).astype(np.int64)


def page_runs(mfns: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs of consecutive MFNs in list order: ``(first index, first mfn, length)``."""
    if not len(mfns):
        return []
    m = clip(mfns)
    breaks = np.nonzero(np.diff(m) != 1)[0] + 1
    bounds = [0, *breaks.tolist(), len(m)]
    return [(a, int(m[a]), b - a) for a, b in itertools.pairwise(bounds)]


def lu_data(xen_pages: np.ndarray) -> Intervals:
    iv = Intervals()
    sel = xen_pages[xen_pages["kind"] == LU_DATA] if len(xen_pages) else xen_pages
    iv.add(sel["start_mfn"], sel["nr_pages"], XenPageKind.LU_DATA.name)
    return iv


# --- writing ---------------------------------------------------------------------------


class ByteCount:
    def write(self, data: Any) -> int:
        return memoryview(data).nbytes


class PageSink:
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


def forbidden(stream: LUStream, bs: int, bsize: int) -> Intervals:
    """Frames the stream's pages may not use (LU bootmem, §4.3–§4.5, §4.8)."""
    iv = Intervals()
    iv.add([bs >> PAGE_SHIFT], [bsize >> PAGE_SHIFT], "the LU bootmem")
    rr = stream.reusable_regions
    if len(rr):
        iv.add(rr["start_mfn"], rr["nr_pages"], "an LU_REUSABLE_REGIONS extent")
    xp = stream.xen_pages
    if len(xp):
        for kind in XenPageKind:
            if kind is XenPageKind.LU_DATA:
                continue
            sel = xp[xp["kind"] == int(kind)]
            if len(sel):
                iv.add(sel["start_mfn"], sel["nr_pages"], f"an LU_XEN_PAGES {kind.name} extent")
        other = xp[~np.isin(xp["kind"], [int(k) for k in XenPageKind])]
        if len(other):
            iv.add(other["start_mfn"], other["nr_pages"], "an LU_XEN_PAGES extent")
    for d in stream.domains:
        own = d.ownership
        if len(own):
            iv.add(own["start_mfn"], own["nr_pages"], f"frames owned by domain {d.domid}")
    return iv


def check_placement(
    data: np.ndarray, array_mfn: int, nr_array: int, forbidden: Intervals, limit: int, why: str
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


def with_lu_data(stream: LUStream, pages: np.ndarray) -> LUStream:
    """``stream``, or a copy whose LU_DATA extents cover every MFN in ``pages``.

    Existing LU_DATA extents that touch or adjoin the new pages are extended
    in place; pages next to none become new extents at the end of the list.
    """
    xp = stream.xen_pages
    if not len(xp):
        xp = XenPagesExtent.LAYOUT.empty(0)
    covered = lu_data(xp)
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
    for _, s, n in page_runs(new):
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


# --- reading ---------------------------------------------------------------------------


class StreamPages:
    """The data pages of a hand-over: stream offsets ↔ image offsets."""

    def __init__(self, buf: memoryview, mfns: np.ndarray, nr_pages_at: int) -> None:
        self.buf = buf
        self.mfns = mfns
        self.nr_pages_at = nr_pages_at  # image offset of the breadcrumb's nr_pages word
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
                    offset=self.nr_pages_at,
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
        runs = page_runs(used)
        if len(runs) == 1:
            a = runs[0][1] * PAGE_SIZE
            return self.buf[a : a + nbytes]
        out = bytearray(nbytes)
        for i, m, n in runs:
            lo = i * PAGE_SIZE
            k = min(n * PAGE_SIZE, nbytes - lo)
            out[lo : lo + k] = self.buf[m * PAGE_SIZE : m * PAGE_SIZE + k]
        return memoryview(out).toreadonly()


def relocated(err: DecodeError, pages: StreamPages) -> DecodeError:
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


def first_entry_hit(
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


@dataclass(frozen=True)
class MfnArray:
    """Where the breadcrumb puts the MFN array: its first MFN, its pages, its
    machine address, and the image offset of the breadcrumb word naming it."""

    mfn: int
    pages: int
    maddr: int
    field_at: int

    def reject(self, message: str, expected: str, got: object = None) -> NoReturn:
        """A §5 rule broken by the array as a whole: the error sits on the
        breadcrumb's ``mfn_array_maddr`` word."""
        raise HandoverError(
            message,
            offset=self.field_at,
            field="mfn_array_maddr",
            expected=expected,
            got=self.maddr if got is None else got,
        )


def check_mfn_array(
    buf: memoryview, n: int, array: MfnArray, bs: int, bsize: int
) -> tuple[np.ndarray, np.ndarray]:
    """§5's rules on the MFN array and the ``n`` data pages it lists, in the
    spec's order; the raw u64 entries and the MFNs clipped to int64."""
    k, am, a0 = array.pages, array.mfn, array.maddr
    image_pages = len(buf) >> PAGE_SHIFT
    boot_lo, boot_hi = bs >> PAGE_SHIFT, (bs + bsize) >> PAGE_SHIFT
    # §5: "an MFN array page ... inside the LU bootmem"
    if am < boot_hi and am + k > boot_lo:
        array.reject("MFN array inside the LU bootmem", f"outside [{bs:#x}, {bs + bsize:#x})")
    # An MFN array page beyond the image end.
    if am + k > image_pages:
        array.reject(
            "MFN array beyond the image end", f"{k} pages ending at or below {len(buf):#x}"
        )
    raw = np.frombuffer(buf, dtype="<u8", count=n, offset=a0)
    mfns = clip(raw)
    # §5: "... or data page inside the LU bootmem"
    first_entry_hit(
        (mfns >= boot_lo) & (mfns < boot_hi),
        a0,
        raw,
        "data page inside the LU bootmem",
        f"an MFN outside [{boot_lo:#x}, {boot_hi:#x})",
    )
    check_listed_once(raw, mfns, a0)
    # §5: "... or listed as data and also holding the array"
    first_entry_hit(
        (mfns >= am) & (mfns < am + k),
        a0,
        raw,
        "data page holds the MFN array",
        f"an MFN outside [{am:#x}, {am + k:#x})",
    )
    # A data page beyond the image end.
    first_entry_hit(
        mfns >= image_pages,
        a0,
        raw,
        "data page beyond the image end",
        f"an MFN below {image_pages:#x}",
    )
    return raw, mfns


def check_listed_once(raw: np.ndarray, mfns: np.ndarray, a0: int) -> None:
    """§5: "an MFN listed twice"."""
    n = len(mfns)
    _, first = np.unique(mfns, return_index=True)
    if len(first) == n:
        return
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


class GlobalCheck:
    """§5's rules that need the decoded, verified global section.

    Runs as soon as the global section is decoded and its checksum verified,
    before any domain section (§5's order).
    """

    def __init__(
        self,
        array: MfnArray,
        bs: int,
        bsize: int,
        raw: np.ndarray,
        mfns: np.ndarray,
        pages: StreamPages,
    ) -> None:
        self.array, self.bs, self.bsize = array, bs, bsize
        self.raw, self.mfns, self.pages = raw, mfns, pages

    def __call__(self, glob: GlobalSection) -> None:
        host = self._bootmem_agrees(glob)
        self._below_max_page(int(host.max_page))
        self._inside_lu_data(glob)

    def _bootmem_agrees(self, glob: GlobalSection) -> LuHostInfo:
        # §5: "an LU_HOST_INFO whose bootmem differs from the liveupdate= region"
        hi_index = next(i for i, r in enumerate(glob.records) if r.type == T.LU_HOST_INFO)
        hi_rec = glob.records[hi_index]
        host: LuHostInfo = hi_rec.value
        body = (hi_rec.offset or 0) + 8
        lay = LuHostInfo.LAYOUT
        for name, want in (("lu_bootmem_start", self.bs), ("lu_bootmem_size", self.bsize)):
            got = int(getattr(host, name))
            if got != want:
                raise HandoverError(
                    "LU_HOST_INFO bootmem differs from the liveupdate= region",
                    offset=self.pages.image_offset(body + lay.field(name).offset),
                    record_index=hi_index,
                    record_type=T.LU_HOST_INFO,
                    field=name,
                    expected=want,
                    got=got,
                )
        return host

    def _below_max_page(self, max_page: int) -> None:
        # §5: "once LU_HOST_INFO is decoded, any array or data page at or above max_page"
        am, k, a0 = self.array.mfn, self.array.pages, self.array.maddr
        if am + k > max_page:
            self.array.reject(
                "MFN array page at or above max_page", f"{k} pages below max_page {max_page:#x}"
            )
        first_entry_hit(
            self.mfns >= max_page,
            a0,
            self.raw,
            "data page at or above max_page",
            f"below {max_page:#x}",
        )

    def _inside_lu_data(self, glob: GlobalSection) -> None:
        # §5: "once the global section's checksum is verified, any array or data
        # page outside every LU_XEN_PAGES LU_DATA extent" (decode_lu has verified
        # every checksum by now)
        am, k, a0 = self.array.mfn, self.array.pages, self.array.maddr
        cover = lu_data(glob.xen_pages)
        arr = np.arange(am, am + k, dtype=np.int64)
        out = np.nonzero(~cover.hits(arr))[0]
        if len(out):
            self.array.reject(
                "MFN array page outside every LU_XEN_PAGES LU_DATA extent",
                "array pages inside LU_DATA extents",
                f"page {int(arr[out[0]]):#x}",
            )
        first_entry_hit(
            ~cover.hits(self.mfns),
            a0,
            self.raw,
            "data page outside every LU_XEN_PAGES LU_DATA extent",
            "an MFN inside an LU_DATA extent",
        )
