"""The host's machine memory as a raster of pixels: who holds each frame.

:func:`host_map` turns an LU stream into a :class:`HostMap`: the frames
``0 … max_page`` (LU spec §4.2; further if an extent reaches beyond it) laid
out row by row, each pixel ``frames_per_pixel`` frames, coloured by the
category holding most of its frames — an owning domain (§4.8
LU_PAGE_OWNERSHIP), Xen's pages (§4.5 LU_XEN_PAGES M2P / IOMMU_PT / SHARED),
the LU data pages (LU_XEN_PAGES LU_DATA, §5), the reusable regions (§4.4),
the LU bootmem (§4.2) or nothing — and flagged where a frame is claimed by
two extents (a *conflict*: owned twice, or owned and reserved; the frames
``validate`` reports as OWN_DUPLICATE, OWN_IN_*, EXTENT_*).

Cost follows the stream, not the frame numbers: every extent adds to at
most two partial pixels and one difference-array step (``np.bincount``), so
a 1 TiB-shaped host of a few extents costs what a 1 GiB one does; conflicts
come from one sort of the extent boundaries. No extent is ever expanded
into frames. No I/O here: :mod:`xenlu.cli.map` draws the picture.

>>> from xenlu.testing.hostgen import make_host
>>> m = host_map(make_host((4, 11), n_hvm=1, mem_mib=4, dom0_mem_mib=4))
>>> [c.name for c in m.categories][:3], m.conflict_frames
(['unowned', 'Xen pages', 'LU data pages'], 0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xenlu.lu.stream import LUStream

__all__ = ["Category", "HostMap", "host_map"]

I64 = npt.NDArray[np.int64]

#: Frames at or above this are beyond any x86-64 host (MFNs are < 2**40):
#: clipping here keeps every sum of frame numbers inside int64.
_CAP = 1 << 52
_PAGE_SHIFT = 12
_LU_DATA = 3  # LU_XEN_PAGES kind (§4.5)
#: Categories with fixed meaning, in this order; domains follow.
UNOWNED, XEN, LU_DATA, REUSABLE, BOOTMEM, OTHER_DOMAINS = range(6)
_FIXED = ("unowned", "Xen pages", "LU data pages", "reusable regions", "LU bootmem")


@dataclass(frozen=True)
class Category:
    """One colour of the map: its legend name and how many frames it holds."""

    name: str
    frames: int
    domid: int | None = None  # a domain's own category


@dataclass(frozen=True)
class HostMap:
    """The raster: ``pixels[i]`` is the category index of frames
    ``i * frames_per_pixel …``; ``conflict[i]`` is True when one of them is
    claimed twice. ``pixels`` has ``rows * width`` entries; those at or past
    ``nr_frames`` are -1 (beyond the host)."""

    width: int
    rows: int
    frames_per_pixel: int
    nr_frames: int  # the axis: max(max_page, the highest extent end)
    max_page: int
    pixels: npt.NDArray[np.int16]
    conflict: npt.NDArray[np.bool_]
    categories: list[Category]
    conflict_frames: int
    conflict_runs: I64  # (n, 2) int64: [start, end) frame runs claimed twice, sorted

    @property
    def row_bytes(self) -> int:
        """Bytes of machine memory one row of the raster stands for."""
        return self.width * self.frames_per_pixel << _PAGE_SHIFT


def _extents(start: npt.ArrayLike, count: npt.ArrayLike) -> tuple[I64, I64]:
    """``[start, end)`` as int64, clipped at :data:`_CAP` (u64 stays exact below it)."""
    s = np.minimum(np.asarray(start, dtype=np.uint64), _CAP).astype(np.int64)
    n = np.minimum(np.asarray(count, dtype=np.uint64), _CAP).astype(np.int64)
    return s, np.minimum(s + n, _CAP)


def _coverage(s: I64, e: I64, fpp: int, npix: int) -> I64:
    """Frames of ``[s, e)`` (possibly overlapping) inside each pixel of ``fpp`` frames.

    An extent adds its head and tail to their (partial) pixels and ``fpp`` to
    every pixel between through a difference array: O(extents + pixels).
    """
    keep = e > s
    s, e = s[keep], e[keep]
    if not len(s):
        return np.zeros(npix, np.int64)
    ps, pe = s // fpp, (e - 1) // fpp
    one = ps == pe
    # bincount sums in float64: exact, every partial sum is below 2**53.
    w = np.zeros(npix, np.float64)
    w += np.bincount(ps[one], weights=(e - s)[one], minlength=npix)
    m = ~one
    w += np.bincount(ps[m], weights=((ps[m] + 1) * fpp - s[m]), minlength=npix)
    w += np.bincount(pe[m], weights=(e[m] - pe[m] * fpp), minlength=npix)
    step = np.bincount(ps[m] + 1, minlength=npix + 1) - np.bincount(pe[m], minlength=npix + 1)
    full: I64 = np.cumsum(step[:npix]).astype(np.int64) * fpp
    return w.astype(np.int64) + full


def _depth(s: I64, e: I64) -> tuple[I64, I64]:
    """The boundaries of the extents ``[s, e)`` in order and the number of
    extents covering ``[pos[k], pos[k+1])``: one sort of one int64 key per
    boundary, ``pos << 1 | is_start``, so an end sorts before a start at the
    same frame (touching extents do not overlap). Frames are below
    :data:`_CAP`, so the key cannot overflow."""
    keep = e > s
    key = np.concatenate((e[keep] << 1, (s[keep] << 1) | 1))
    key.sort()
    depth = np.cumsum((key & 1) * 2 - 1)
    return key >> 1, depth


def _runs(pos: I64, depth: I64, depth_at_least: int) -> I64:
    """Maximal runs ``[start, end)`` covered ``depth_at_least`` or more times
    (``pos``, ``depth`` from :func:`_depth`), as an ``(n, 2)`` array."""
    if len(pos) < 2:
        return np.zeros((0, 2), np.int64)
    hot = np.flatnonzero((depth[:-1] >= depth_at_least) & (pos[1:] > pos[:-1]))
    runs = np.stack((pos[hot], pos[hot + 1]), axis=1)
    if len(runs) > 1:  # merge runs that touch (a depth change inside a run)
        brk = np.flatnonzero(runs[1:, 0] != runs[:-1, 1]) + 1
        first = np.concatenate(([0], brk))
        last = np.concatenate((brk - 1, [len(runs) - 1]))
        runs = np.stack((runs[first, 0], runs[last, 1]), axis=1)
    return runs


def _nice_fpp(nr_frames: int, pixels: int) -> int:
    """The smallest power of two frames per pixel that fits ``nr_frames`` in
    ``pixels`` (rows then start at round addresses)."""
    need = max(1, -(-nr_frames // pixels))
    return 1 << (need - 1).bit_length()


def host_map(
    stream: LUStream,
    *,
    width: int = 512,
    max_rows: int = 256,
    max_domains: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> HostMap:
    """The raster of ``stream``'s machine memory (see the module docstring).

    ``width`` pixels per row and at most ``max_rows`` rows; the
    ``max_domains`` domains owning most frames get their own colour, the
    rest share "other domains". ``progress(done, total)`` is called once per
    domain section (never per entry).

    >>> from xenlu.testing.hostgen import make_host
    >>> m = host_map(make_host((4, 13), n_hvm=1, mem_mib=4, dom0_mem_mib=4), width=64)
    >>> m.width, m.rows * m.width * m.frames_per_pixel >= m.nr_frames
    (64, True)
    """
    if width < 1 or max_rows < 1 or max_domains < 0:
        raise ValueError("width and max_rows must be >= 1, max_domains >= 0")
    h = stream.host
    total = len(stream.domains)
    # (category key, starts, ends) of every claim; the key of a domain is its row.
    xp, rr = stream.xen_pages, stream.reusable_regions
    xs, xe = _extents(xp["start_mfn"], xp["nr_pages"])
    data = xp["kind"] == _LU_DATA
    rs, re_ = _extents(rr["start_mfn"], rr["nr_pages"])
    b0 = int(h.lu_bootmem_start) >> _PAGE_SHIFT
    bs, be = _extents([b0], [int(h.lu_bootmem_size) >> _PAGE_SHIFT])
    doms: list[tuple[int, I64, I64]] = []
    for i, d in enumerate(stream.domains):
        own = d.ownership
        s, e = _extents(own["start_mfn"], own["nr_pages"])
        doms.append((d.domid, s, e))
        if progress is not None:
            progress(i + 1, total)
    ends = [int(x.max()) for x in (xe, re_, be, *(e for _, _, e in doms)) if len(x)]
    nr_frames = max([int(h.max_page), 1, *ends])
    fpp = _nice_fpp(nr_frames, width * max_rows)
    rows = -(-nr_frames // (fpp * width))
    npix = rows * width

    fixed: list[tuple[I64, I64]] = [
        (xs[~data], xe[~data]),
        (xs[data], xe[data]),
        (rs, re_),
        (bs, be),
    ]
    claims, cats, sizes = _categories(fixed, doms, max_domains)
    all_s = np.concatenate([xs, rs, bs, *(s for _, _, s, _ in sizes)])
    all_e = np.concatenate([xe, re_, be, *(e for _, _, _, e in sizes)])
    pixels, held, runs = _raster(claims, all_s, all_e, nr_frames, fpp, npix)
    conflict = _coverage(runs[:, 0], runs[:, 1], fpp, npix) > 0
    cats[UNOWNED] = Category(_FIXED[0], max(0, nr_frames - int(held.sum())))
    return HostMap(
        width=width,
        rows=rows,
        frames_per_pixel=fpp,
        nr_frames=nr_frames,
        max_page=int(h.max_page),
        pixels=pixels,
        conflict=conflict,
        categories=cats,
        conflict_frames=int((runs[:, 1] - runs[:, 0]).sum()),
        conflict_runs=runs,
    )


def _categories(
    fixed: list[tuple[I64, I64]], doms: list[tuple[int, I64, I64]], max_domains: int
) -> tuple[list[tuple[I64, I64]], list[Category], list[tuple[int, int, I64, I64]]]:
    """The claims in category order (the fixed ones, "other domains", then
    the ``max_domains`` largest domains by domid), their categories, and every
    domain as ``(frames, domid, starts, ends)``, largest first."""
    sizes = [(int((e - s).sum()), domid, s, e) for domid, s, e in doms]
    sizes.sort(key=lambda t: (-t[0], t[1]))
    own_cat = sorted(sizes[:max_domains], key=lambda t: t[1])
    rest = sizes[max_domains:]
    claims = list(fixed)
    cats = [Category(_FIXED[0], 0)]
    cats += [Category(n, int((e - s).sum())) for n, (s, e) in zip(_FIXED[1:], claims, strict=True)]
    other_s = np.concatenate([s for _, _, s, _ in rest] or [np.zeros(0, np.int64)])
    other_e = np.concatenate([e for _, _, _, e in rest] or [np.zeros(0, np.int64)])
    claims.append((other_s, other_e))
    cats.append(Category(f"other domains ({len(rest)})", int((other_e - other_s).sum())))
    for n, domid, s, e in own_cat:
        claims.append((s, e))
        cats.append(Category(f"dom{domid}", n, domid))
    return claims, cats, sizes


def _raster(
    claims: list[tuple[I64, I64]],
    all_s: I64,
    all_e: I64,
    nr_frames: int,
    fpp: int,
    npix: int,
) -> tuple[npt.NDArray[np.int16], I64, I64]:
    """The category of each pixel (1-based index into ``claims``, UNOWNED,
    -1 past the end), the frames of each pixel some claim holds, and the
    runs of frames two or more claims hold (``all_s``/``all_e``: every claim)."""
    # The dominant category per pixel: a running maximum, one category at a time.
    in_pixel = np.full(npix, fpp, np.int64)
    in_pixel[nr_frames // fpp :] = 0
    if nr_frames % fpp:
        in_pixel[nr_frames // fpp] = nr_frames % fpp
    best = np.zeros(npix, np.int64)
    pixels = np.zeros(npix, np.int16)
    for k, (s, e) in enumerate(claims, start=1):
        cov = _coverage(s, e, fpp, npix)
        win = cov > best
        best[win] = cov[win]
        pixels[win] = k
    pos, depth = _depth(all_s, all_e)
    union = _runs(pos, depth, 1)
    held = _coverage(union[:, 0], union[:, 1], fpp, npix)
    # Unowned wins where the free frames outnumber every claimant.
    pixels[(in_pixel - held) > best] = UNOWNED
    pixels[in_pixel == 0] = -1
    return pixels, held, _runs(pos, depth, 2)


def legend_names(m: HostMap) -> Sequence[str]:
    """The legend's entries, in drawing order (empty categories left out)."""
    return [c.name for c in m.categories if c.frames or c.name == _FIXED[0]]
