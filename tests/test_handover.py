"""The Live Update hand-over: breadcrumb, MFN array, liveupdate= (LU spec §5)."""

from __future__ import annotations

import doctest
import mmap
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xenlu.lu.handover as handover
from xenlu.core.errors import CallerError, FramingError, HandoverError, RecordError, XenLUError
from xenlu.core.framing import HDR
from xenlu.core.registry import UnknownRecord
from xenlu.lu.handover import (
    LIVE_UPDATE_MAGIC,
    LU_DATA,
    MAX_NR_PAGES,
    PAGE_SIZE,
    Breadcrumb,
    array_pages,
    find_breadcrumb,
    format_liveupdate,
    parse_liveupdate,
    read_handover,
    write_handover,
    write_handover_file,
)
from xenlu.lu.records import LuHostInfo, RegionExtent, T, XenPagesExtent
from xenlu.lu.stream import LUStream, encode_lu

BS, BSIZE = 0x200000, 0x200000  # LU bootmem: MFNs 0x200 … 0x3FF
BOOT = (BS, BSIZE)
LIVEUPDATE = "liveupdate=2M@0x200000"
IMG = 8 << 20  # 2048 pages
MAX_PAGE = 0x800


def host(max_page: int = MAX_PAGE, bs: int = BS, bsize: int = BSIZE) -> LuHostInfo:
    return LuHostInfo(
        page_shift=12,
        nr_domains=0,
        max_page=max_page,
        lu_bootmem_start=bs,
        lu_bootmem_size=bsize,
        gnttab_max_frames=64,
        gnttab_max_maptrack_frames=1024,
        gnttab_max_version=2,
    )


def extents(dtype: Any, *rows: tuple[int, int, int]) -> np.ndarray:
    a = np.zeros(len(rows), dtype)
    for i, (s, n, k) in enumerate(rows):
        a[i] = (s, n, k, 0)
    return a


def stream(
    *,
    max_page: int = MAX_PAGE,
    xen_pages: list[tuple[int, int, int]] | None = None,
    regions: list[tuple[int, int, int]] | None = None,
    pad: int = 0,
    bs: int = BS,
) -> LUStream:
    """A small stream with zero domains; ``pad`` bytes of an optional record."""
    return LUStream.build(
        (4, 15),
        host=host(max_page, bs=bs),
        reusable_regions=extents(RegionExtent.LAYOUT.dtype, *regions) if regions else None,
        xen_pages=extents(XenPagesExtent.LAYOUT.dtype, *xen_pages) if xen_pages else None,
        optional=[UnknownRecord(0x80000123, (bytes(range(256)) * (pad // 256 + 1))[:pad])]
        if pad
        else (),
    )


def raw_image(
    data: bytes,
    data_mfns: list[int],
    array_mfn: int,
    *,
    nr_pages: int | None = None,
    size: int = IMG,
    bs: int = BS,
) -> bytearray:
    """An image written without any of the writer's checks."""
    img = bytearray(size)
    for i, m in enumerate(data_mfns):
        chunk = data[i * PAGE_SIZE : (i + 1) * PAGE_SIZE]
        img[m * PAGE_SIZE : m * PAGE_SIZE + len(chunk)] = chunk
    arr = np.array(data_mfns, "<u8").tobytes()
    img[array_mfn * PAGE_SIZE : array_mfn * PAGE_SIZE + len(arr)] = arr
    n = len(data_mfns) if nr_pages is None else nr_pages
    img[bs : bs + 24] = Breadcrumb(LIVE_UPDATE_MAGIC, array_mfn * PAGE_SIZE, n).pack()
    return img


def set_u64(img: bytearray, at: int, value: int) -> None:
    struct.pack_into("<Q", img, at, value)


def expect(img: Any, offset: int, field: str, bootmem: Any = BOOT) -> HandoverError:
    with pytest.raises(HandoverError) as ei:
        read_handover(img, bootmem)
    assert ei.value.offset == offset, str(ei.value)
    assert ei.value.field == field, str(ei.value)
    assert ei.value.expected is not None
    return ei.value


# --- liveupdate= ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("liveupdate=2M@0x200000", (0x200000, 2 << 20)),
        ("2M@0x200000", (0x200000, 2 << 20)),
        ("  liveupdate=512M@0x7E000000\n", (0x7E000000, 512 << 20)),
        ("liveupdate=1M@0x0", (0, 1 << 20)),
        # Xen's parse_size_and_unit: units, hex or decimal, no unit = KiB
        ("1G@0x0", (0, 1 << 30)),
        ("65536K@0x200000", (0x200000, 64 << 20)),
        ("0x400m@64M", (64 << 20, 1 << 30)),
        ("2048@2097152", (2 << 20, 2 << 20)),
        ("2M@200000", (200000, 2 << 20)),
    ],
)
def test_parse_liveupdate(text: str, want: tuple[int, int]) -> None:
    assert parse_liveupdate(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "",
        "liveupdate=",
        "liveupdate=2M",
        "liveupdate=2@0x200000",
        "liveupdate=2M@0200000",
        "liveupdate=1M@0x1" + "0" * 16,
        "liveupdate=" + "9" * 5000 + "M@0x200000",
        "liveupdate=1T@0xffffffffffffffff",
        "liveupdate=2MB@0x200000",
        "liveupdate=2K@0x200000",
        "liveupdate=0M@0x200000",
        "liveupdate=-2M@0x200000",
        "liveupdate=2M@0x",
        "liveupdate=2M@0xzz",
        "lu=2M@0x200000",
        "liveupdate=2M@0x200000 console=com1",
        "liveupdate = 2M@0x200000",
    ],
)
def test_parse_liveupdate_rejects(text: str) -> None:
    with pytest.raises(CallerError, match=r"liveupdate=<N>M@0x<start>"):
        parse_liveupdate(text)


def test_parse_liveupdate_rejects_non_text() -> None:
    with pytest.raises(CallerError, match="expected"):
        parse_liveupdate(b"2M@0x200000")  # type: ignore[arg-type]


@pytest.mark.parametrize("mib", [1, 2, 64, 4095])
def test_format_liveupdate_matches_kexec_tools(mib: int) -> None:
    start, size = 0x7E000000, mib << 20
    end = start + size - 1
    n_kexec = (end - start) // (1 << 20) + 1  # kexec-tools cmdline_add_liveupdate
    text = format_liveupdate(start, size)
    assert text == f"liveupdate={n_kexec}M@0x7e000000"
    assert parse_liveupdate(text) == (start, size)


@pytest.mark.parametrize(
    ("start", "size"), [(0x200000, 0), (0x200000, (2 << 20) + 1), (0x200000, -1), (-1, 1 << 20)]
)
def test_format_liveupdate_rejects(start: int, size: int) -> None:
    with pytest.raises(CallerError, match="expected"):
        format_liveupdate(start, size)


def test_array_pages() -> None:
    assert [array_pages(n) for n in (1, 511, 512, 513, MAX_NR_PAGES)] == [1, 1, 1, 2, 2048]


def test_docstring_examples() -> None:
    result = doctest.testmod(handover, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


# --- round trips ----------------------------------------------------------------------


def test_roundtrip_contiguous_adds_lu_data_extent() -> None:
    s = stream(xen_pages=[(0x700, 4, 1)])
    img = bytearray(IMG)
    h = write_handover(s, img, bootmem=LIVEUPDATE, data_start_mfn=0x100)
    assert h.data_mfns == (0x100,) and h.array_mfn == 0x101 and h.nr_pages == 1
    # The stream gained an LU_DATA extent for the data page and the array.
    assert h.stream is not s
    xp = h.stream.xen_pages
    assert xp.tolist() == [(0x700, 4, 1, 0), (0x100, 2, LU_DATA, 0)]
    assert len(encode_lu(h.stream)) == h.stream_bytes
    # Breadcrumb, then zeros for the rest of the first bootmem page.
    assert struct.unpack_from("<QQQ", img, BS) == (LIVE_UPDATE_MAGIC, 0x101000, 1 << 12)
    assert not any(img[BS + 24 : BS + PAGE_SIZE])
    assert struct.unpack_from("<Q", img, 0x101000)[0] == 0x100
    assert find_breadcrumb(img, LIVEUPDATE) == h.breadcrumb
    out = read_handover(img, LIVEUPDATE)
    assert out == h.stream
    # Contiguous pages are decoded in place: zero-copy views of the image.
    assert np.shares_memory(out.xen_pages, np.frombuffer(img, np.uint8))
    # Nothing outside the data page, the array and the breadcrumb page.
    used = bytearray(img)
    for lo, hi in ((0x100000, 0x102000), (BS, BS + PAGE_SIZE)):
        used[lo:hi] = bytes(hi - lo)
    assert not any(used)


def test_roundtrip_default_placement_and_existing_extent() -> None:
    s = stream(xen_pages=[(0x500, 8, LU_DATA)], regions=[(0x100, 0x10, 2)])
    img = bytearray(IMG)
    h = write_handover(s, img)
    # Placed inside the stream's own LU_DATA extent: written unchanged.
    assert h.stream is s and h.data_mfns == (0x500,) and h.array_mfn == 0x501
    assert read_handover(img, BOOT) == s


def test_existing_lu_data_extent_is_extended_in_place() -> None:
    s = stream(xen_pages=[(0x100, 1, LU_DATA), (0x700, 4, 2)])
    h = write_handover(s, bytearray(IMG), data_start_mfn=0x101)
    assert h.stream.xen_pages.tolist() == [(0x100, 3, LU_DATA, 0), (0x700, 4, 2, 0)]


def test_lu_xen_pages_record_inserted_after_reusable_regions() -> None:
    s = stream(regions=[(0x700, 4, 3)], pad=512)
    h = write_handover(s, bytearray(IMG), data_start_mfn=0x100)
    types = [r.type for r in h.stream.global_section.records]
    assert types == [
        T.LU_VERSION,
        T.LU_HOST_INFO,
        T.LU_REUSABLE_REGIONS,
        T.LU_XEN_PAGES,
        0x80000123,
    ]


def test_roundtrip_multi_page_contiguous() -> None:
    s = stream(pad=3 * PAGE_SIZE)
    img = bytearray(IMG)
    h = write_handover(s, img, data_start_mfn=0x400)
    assert h.nr_pages == 4 and h.data_mfns == (0x400, 0x401, 0x402, 0x403)
    assert h.stream_bytes > 3 * PAGE_SIZE
    assert read_handover(img, BOOT) == h.stream


def test_roundtrip_scattered_pages_gathered() -> None:
    s = stream(pad=2 * PAGE_SIZE)
    img = bytearray(IMG)
    mfns = [0x7F0, 0x120, 0x121, 0x450, 0x600]  # out of order, with a run; one spare
    h = write_handover(s, img, page_mfns=mfns)
    assert h.data_mfns == tuple(mfns) and h.nr_pages == 5
    got = np.frombuffer(img, "<u8", count=5, offset=h.array_mfn * PAGE_SIZE)
    assert got.tolist() == mfns
    # Every listed page and the array lie inside LU_DATA extents.
    xp = h.stream.xen_pages
    data = xp[xp["kind"] == LU_DATA]
    for m in [*mfns, h.array_mfn]:
        assert ((data["start_mfn"] <= m) & (m < data["start_mfn"] + data["nr_pages"])).any()
    out = read_handover(img, BOOT)
    assert out == h.stream
    assert not np.shares_memory(out.xen_pages, np.frombuffer(img, np.uint8))


def test_stream_that_already_covers_itself_is_written_unchanged() -> None:
    s = stream(xen_pages=[(0x100, 4, LU_DATA)])
    img = bytearray(IMG)
    h = write_handover(s, img, page_mfns=[0x102, 0x100], array_mfn=0x103)
    assert h.stream is s
    assert read_handover(img, BOOT) == s


def test_sparse_file_image(tmp_path: Path) -> None:
    s = stream(xen_pages=[(0x100, 0x10, LU_DATA)], pad=PAGE_SIZE)
    path = tmp_path / "mem.img"
    size = 64 << 20
    h = write_handover_file(s, path, image_size=size, page_mfns=[0x10A, 0x104])
    assert path.stat().st_size == size
    blocks = getattr(os.stat(path), "st_blocks", None)
    if blocks is not None:
        assert blocks * 512 < size // 4  # sparse: only the pages written
    assert read_handover(path, LIVEUPDATE) == h.stream
    assert read_handover(str(path), BOOT) == h.stream
    # An existing image is reused, not truncated.
    h2 = write_handover_file(s, path, data_start_mfn=0x108)
    assert path.stat().st_size == size
    assert read_handover(path, BOOT) == h2.stream


def test_sparse_file_default_size_is_max_page(tmp_path: Path) -> None:
    s = stream()
    path = tmp_path / "mem.img"
    h = write_handover_file(s, path)
    assert path.stat().st_size == MAX_PAGE * PAGE_SIZE
    assert read_handover(path, BOOT) == h.stream


def test_roundtrip_with_domains() -> None:
    hostgen = pytest.importorskip("xenlu.testing.hostgen")
    s: LUStream = hostgen.make_host((4, 15), n_hvm=1, mem_mib=4, dom0_mem_mib=4, seed=3)
    size = int(s.host.max_page) * PAGE_SIZE
    boot = format_liveupdate(int(s.host.lu_bootmem_start), int(s.host.lu_bootmem_size))
    img = mmap.mmap(-1, size)
    h = write_handover(s, img)
    assert h.stream is s  # placed inside the host's own LU_DATA extent
    assert read_handover(img, boot) == s
    # Scattered inside the LU_DATA extent, shuffled.
    xp = s.xen_pages
    ext = xp[xp["kind"] == LU_DATA][0]
    lo, n = int(ext["start_mfn"]), int(ext["nr_pages"])
    rng = np.random.default_rng(5)
    mfns = (lo + rng.permutation(n - 1)[: h.nr_pages + 2]).tolist()
    img2 = mmap.mmap(-1, size)
    h2 = write_handover(s, img2, page_mfns=mfns)
    assert h2.stream is s
    assert read_handover(img2, boot) == s


# --- the writer refuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data_start_mfn": 0x3FF}, "LU bootmem"),
        ({"data_start_mfn": 0x1FF}, "LU bootmem"),  # the array page lands in it
        ({"page_mfns": [0x100, 0x250]}, "LU bootmem"),
        ({"data_start_mfn": 0x100, "array_mfn": 0x300}, "MFN array page 0x300 overlaps the LU"),
        ({"data_start_mfn": MAX_PAGE}, "max_page"),
        ({"data_start_mfn": MAX_PAGE - 1}, "max_page"),  # the array page
        ({"data_start_mfn": 0x700}, "M2P"),
        ({"data_start_mfn": 0x6FF}, "IOMMU_PT|M2P"),
        ({"page_mfns": [0x100, 0x101, 0x682]}, "SHARED"),
        ({"data_start_mfn": 0x5FF}, "LU_REUSABLE_REGIONS"),
        ({"page_mfns": [0x100, 0x101, 0x100]}, r"listed twice \(page_mfns\[2\]\)"),
        ({"page_mfns": [0x100, 0x101], "array_mfn": 0x101}, "overlaps the MFN array"),
        ({"page_mfns": [0x100], "data_start_mfn": 0x100}, "not both"),
        ({"page_mfns": []}, "expected 1"),
        ({"page_mfns": [-1]}, r"page_mfns\[0\]"),
        ({"page_mfns": [1.5]}, r"page_mfns\[0\]"),
        ({"data_start_mfn": -3}, "data_start_mfn"),
        ({"bootmem": (0x400000, BSIZE)}, "differs from the stream"),
        ({"bootmem": "liveupdate=4M@0x200000"}, "differs from the stream"),
        ({"bootmem": "2M@0200000"}, "liveupdate=<N>M@0x<start>"),
        ({"bootmem": (BS, 1)}, "bootmem size"),
    ],
)
def test_writer_refuses(kwargs: dict[str, Any], match: str) -> None:
    s = stream(
        xen_pages=[(0x6F0, 0x10, 2), (0x700, 4, 1), (0x680, 4, 4)], regions=[(0x600, 0x10, 1)]
    )
    img = bytearray(IMG)
    with pytest.raises(CallerError, match=match):
        write_handover(s, img, **kwargs)
    assert not any(img)  # nothing written


def test_writer_refuses_the_image_end() -> None:
    s = stream(max_page=0x10000)
    with pytest.raises(CallerError, match="image end"):
        write_handover(s, bytearray(IMG), data_start_mfn=IMG // PAGE_SIZE - 1)
    with pytest.raises(CallerError, match="breadcrumb page"):
        write_handover(s, bytearray(BS + 16))


def test_writer_refuses_owned_frames() -> None:
    hostgen = pytest.importorskip("xenlu.testing.hostgen")
    s: LUStream = hostgen.make_host((4, 15), n_hvm=1, mem_mib=4, dom0_mem_mib=4)
    dom = s.domains[1]
    owned = int(dom.ownership["start_mfn"][0])
    img = mmap.mmap(-1, int(s.host.max_page) * PAGE_SIZE)
    with pytest.raises(CallerError, match=f"owned by domain {dom.domid}"):
        write_handover(s, img, page_mfns=[owned])


def test_writer_refuses_bad_images_and_streams() -> None:
    s = stream()
    with pytest.raises(CallerError, match="writable"):
        write_handover(s, bytes(IMG))
    with pytest.raises(CallerError, match="writable"):
        write_handover(s, memoryview(bytearray(IMG)).toreadonly())
    with pytest.raises(CallerError, match="write_handover_file"):
        write_handover(s, "/tmp/image")
    with pytest.raises(CallerError, match="bytearray"):
        write_handover(s, 42)
    with pytest.raises(CallerError, match="LUStream"):
        write_handover(b"", bytearray(IMG))  # type: ignore[arg-type]
    with pytest.raises(CallerError, match="2 MiB"):
        write_handover(stream(bs=0x201000), bytearray(IMG))


def test_writer_refuses_too_few_pages() -> None:
    s = stream(pad=2 * PAGE_SIZE)
    with pytest.raises(CallerError, match="page_mfns gives 2"):
        write_handover(s, bytearray(IMG), page_mfns=[0x100, 0x101])


def test_writer_iterates_until_the_stream_fits() -> None:
    # Sized so that the stream fills one page but 8 bytes before the LU_DATA
    # extent is added; the extent (and its record header) then need a second.
    s = stream(pad=PAGE_SIZE - len(encode_lu(stream(pad=8))))
    s0 = len(encode_lu(s))
    assert s0 == PAGE_SIZE - 8
    img = bytearray(IMG)
    h = write_handover(s, img, data_start_mfn=0x100)
    assert h.stream_bytes > s0
    assert h.nr_pages == -(-h.stream_bytes // PAGE_SIZE)
    assert read_handover(img, BOOT) == h.stream


# --- the reader rejects (§5, in order) -----------------------------------------------------


@pytest.fixture
def scattered() -> tuple[bytearray, Any]:
    """A valid image: three scattered data pages, array at 0x130."""
    s = stream(xen_pages=[(0x100, 0x40, LU_DATA)], pad=2 * PAGE_SIZE)
    img = bytearray(IMG)
    h = write_handover(s, img, page_mfns=[0x120, 0x110, 0x111], array_mfn=0x130)
    assert h.stream is s
    return img, h


A0 = 0x130 * PAGE_SIZE  # the MFN array's image offset in ``scattered``


def test_reader_accepts_the_fixture(scattered: tuple[bytearray, Any]) -> None:
    img, h = scattered
    assert read_handover(img, BOOT) == h.stream


def test_reject_breadcrumb_beyond_image() -> None:
    expect(bytearray(BS + 8), BS, "magic")


def test_reject_bad_magic(scattered: tuple[bytearray, Any]) -> None:
    img, _ = scattered
    set_u64(img, BS, LIVE_UPDATE_MAGIC | 0x61)
    e = expect(img, BS, "magic")
    assert e.expected == LIVE_UPDATE_MAGIC and e.got == LIVE_UPDATE_MAGIC | 0x61
    set_u64(img, BS + 8, A0 + 8)  # also misaligned: the magic is reported first
    expect(img, BS, "magic")


def test_reject_misaligned_array(scattered: tuple[bytearray, Any]) -> None:
    img, _ = scattered
    set_u64(img, BS + 8, A0 + 8)
    assert expect(img, BS + 8, "mfn_array_maddr").got == A0 + 8


@pytest.mark.parametrize("word", [0, 3 << 12 | 1, (MAX_NR_PAGES + 1) << 12, 2**64 - 4096])
def test_reject_nr_pages(scattered: tuple[bytearray, Any], word: int) -> None:
    img, _ = scattered
    set_u64(img, BS + 16, word)
    expect(img, BS + 16, "nr_pages")


def test_reject_array_in_bootmem(scattered: tuple[bytearray, Any]) -> None:
    img, _ = scattered
    set_u64(img, BS + 8, BS + 2 * PAGE_SIZE)
    expect(img, BS + 8, "mfn_array_maddr")
    set_u64(img, BS + 8, BS - PAGE_SIZE)  # one page before; 513 entries need 2 pages
    set_u64(img, BS + 16, 513 << 12)
    expect(img, BS + 8, "mfn_array_maddr")


def test_reject_array_beyond_image(scattered: tuple[bytearray, Any]) -> None:
    img, _ = scattered
    set_u64(img, BS + 8, IMG)
    expect(img, BS + 8, "mfn_array_maddr")
    set_u64(img, BS + 8, 2**64 - PAGE_SIZE)
    expect(img, BS + 8, "mfn_array_maddr")


def test_reject_data_page_in_bootmem(scattered: tuple[bytearray, Any]) -> None:
    img, _ = scattered
    set_u64(img, A0 + 8, 0x3FF)
    assert expect(img, A0 + 8, "mfn_array[1]").got == 0x3FF
    set_u64(img, A0 + 16, 0x120)  # also listed twice: the bootmem rule comes first
    expect(img, A0 + 8, "mfn_array[1]")


def test_reject_mfn_listed_twice(scattered: tuple[bytearray, Any]) -> None:
    img, _ = scattered
    set_u64(img, A0 + 16, 0x120)
    e = expect(img, A0 + 16, "mfn_array[2]")
    assert e.got == 0x120 and "mfn_array[0]" in str(e.expected)


def test_reject_data_page_holding_the_array(scattered: tuple[bytearray, Any]) -> None:
    img, _ = scattered
    set_u64(img, A0 + 8, 0x130)
    assert expect(img, A0 + 8, "mfn_array[1]").got == 0x130


def test_reject_data_page_beyond_image(scattered: tuple[bytearray, Any]) -> None:
    img, _ = scattered
    set_u64(img, A0 + 16, IMG // PAGE_SIZE)
    expect(img, A0 + 16, "mfn_array[2]")
    set_u64(img, A0 + 16, 2**64 - 1)
    expect(img, A0 + 16, "mfn_array[2]")


def test_reject_stream_running_past_the_pages(scattered: tuple[bytearray, Any]) -> None:
    img, _ = scattered
    set_u64(img, BS + 16, 2 << 12)  # the stream needs 3 pages
    # The optional record (#3, after LU_VERSION, LU_HOST_INFO and LU_XEN_PAGES)
    # starts in page 0 (0x120) and ends in page 2.
    e = expect(img, 0x120 * PAGE_SIZE + 16 + 56 + 40, "length")
    assert e.record_index == 3 and e.record_type == 0x80000123
    assert "runs past" in str(e)
    assert isinstance(e.__cause__, FramingError) and e.__cause__.offset == 16 + 56 + 40


def test_reject_stream_without_end_in_the_pages() -> None:
    # LU_VERSION (16 bytes) and an optional record filling the page exactly.
    data = HDR.pack(T.LU_VERSION, 8) + struct.pack("<II", 4, 15)
    data += HDR.pack(0x80000001, PAGE_SIZE - 24) + bytes(PAGE_SIZE - 24)
    assert len(data) == PAGE_SIZE
    img = raw_image(data, [0x100], 0x101)
    e = expect(img, BS + 16, "nr_pages")
    assert e.record_index == 2
    assert isinstance(e.__cause__, FramingError) and e.__cause__.offset == PAGE_SIZE


def _bootmem_offsets(h: Any) -> tuple[int, int]:
    """Image offsets of LU_HOST_INFO lu_bootmem_start / _size in the first data page."""
    at = encode_lu(h.stream).index(struct.pack("<QQ", BS, BSIZE))
    assert at < PAGE_SIZE
    at += h.data_mfns[0] * PAGE_SIZE
    return at, at + 8


def test_reject_host_info_bootmem_start() -> None:
    s = stream(xen_pages=[(0x100, 0x10, LU_DATA)])
    img = bytearray(IMG)
    h = write_handover(s, img, data_start_mfn=0x100)
    # liveupdate= names another region whose first page holds the same breadcrumb.
    other = 0x400000
    img[other : other + PAGE_SIZE] = img[BS : BS + PAGE_SIZE]
    e = expect(img, _bootmem_offsets(h)[0], "lu_bootmem_start", bootmem=(other, BSIZE))
    assert e.record_type == T.LU_HOST_INFO and e.record_index == 1
    assert e.expected == other and e.got == BS
    # The offset is the field's: LU_HOST_INFO body (stream offset 24) + 16.
    assert e.offset == 0x100 * PAGE_SIZE + 24 + LuHostInfo.LAYOUT.field("lu_bootmem_start").offset


def test_reject_host_info_bootmem_size() -> None:
    s = stream(xen_pages=[(0x100, 0x10, LU_DATA)])
    img = bytearray(IMG)
    h = write_handover(s, img, data_start_mfn=0x100)
    e = expect(img, _bootmem_offsets(h)[1], "lu_bootmem_size", bootmem="liveupdate=4M@0x200000")
    assert e.expected == 4 << 20 and e.got == BSIZE


def test_reject_data_page_at_or_above_max_page() -> None:
    s = stream(max_page=0x180, xen_pages=[(0x100, 0x100, LU_DATA)])
    data = encode_lu(s)
    e = expect(raw_image(data, [0x180], 0x101), 0x101 * PAGE_SIZE, "mfn_array[0]")
    assert e.got == 0x180


def test_reject_array_at_or_above_max_page() -> None:
    s = stream(max_page=0x180, xen_pages=[(0x100, 0x100, LU_DATA)])
    data = encode_lu(s)
    e = expect(raw_image(data, [0x101], 0x180), BS + 8, "mfn_array_maddr")
    assert e.got == 0x180 * PAGE_SIZE


def test_reject_array_outside_lu_data() -> None:
    s = stream(xen_pages=[(0x100, 1, LU_DATA), (0x140, 1, 1)])
    e = expect(raw_image(encode_lu(s), [0x100], 0x101), BS + 8, "mfn_array_maddr")
    assert "LU_DATA" in str(e)


def test_reject_data_page_outside_lu_data() -> None:
    s = stream(xen_pages=[(0x100, 2, LU_DATA)], pad=PAGE_SIZE)
    data = encode_lu(s)
    assert PAGE_SIZE < len(data) <= 2 * PAGE_SIZE
    e = expect(raw_image(data, [0x100, 0x105], 0x101), 0x101 * PAGE_SIZE + 8, "mfn_array[1]")
    assert e.got == 0x105


def test_reject_no_lu_data_extent_at_all() -> None:
    expect(raw_image(encode_lu(stream()), [0x100], 0x101), BS + 8, "mfn_array_maddr")


def test_decode_errors_carry_image_offsets(scattered: tuple[bytearray, Any]) -> None:
    img, _ = scattered
    # LU_HOST_INFO's rsvd (body offset 44) in the first data page (0x120).
    at = 0x120 * PAGE_SIZE + 16 + 8 + 44
    img[at] = 1
    with pytest.raises(RecordError) as ei:
        read_handover(img, BOOT)
    assert ei.value.offset == at and ei.value.field == "rsvd"
    assert "stream offset 0x44" in str(ei.value)
    assert isinstance(ei.value.__cause__, RecordError)
    assert ei.value.__cause__.offset == 0x44


def test_reader_bad_arguments() -> None:
    with pytest.raises(CallerError, match="bootmem start"):
        read_handover(bytearray(IMG), (BS + 1, BSIZE))
    with pytest.raises(CallerError, match="liveupdate=<N>M@0x<start>"):
        read_handover(bytearray(IMG), "liveupdate=2M")
    with pytest.raises(CallerError):
        read_handover(bytearray(IMG), 5)  # type: ignore[arg-type]
    with pytest.raises(CallerError):
        read_handover(12, BOOT)


def test_breadcrumb_pack_unpack() -> None:
    b = Breadcrumb(LIVE_UPDATE_MAGIC, 0x1234000, 7)
    assert Breadcrumb.unpack(b.pack()) == b
    assert b.array_mfn == 0x1234 and b.array_pages == 1
    assert b.pack()[16:] == struct.pack("<Q", 7 << 12)


# --- robustness -------------------------------------------------------------------------


def test_random_corruption_raises_only_xenlu_errors(scattered: tuple[bytearray, Any]) -> None:
    img, h = scattered
    rng = np.random.default_rng(20240611)
    regions = [
        (BS, BS + 24),
        (A0, A0 + 24),
        *((m * PAGE_SIZE, m * PAGE_SIZE + PAGE_SIZE) for m in h.data_mfns),
    ]
    data_end = h.data_mfns[-1] * PAGE_SIZE + h.stream_bytes - 2 * PAGE_SIZE
    regions[-1] = (regions[-1][0], data_end)
    outcomes: dict[str, int] = {}
    for _ in range(600):
        saved: list[tuple[int, int]] = []
        for _ in range(int(rng.integers(1, 4))):
            lo, hi = regions[int(rng.integers(len(regions)))]
            at = int(rng.integers(lo, hi))
            saved.append((at, img[at]))
            img[at] = int(rng.integers(256)) if rng.random() < 0.7 else img[at] ^ 0xFF
        try:
            read_handover(img, BOOT)
            key = "ok"
        except XenLUError as exc:
            key = type(exc).__name__
        outcomes[key] = outcomes.get(key, 0) + 1
        for at, v in reversed(saved):
            img[at] = v
    assert read_handover(img, BOOT) == h.stream  # restored
    assert outcomes.get("HandoverError", 0) > 0
    assert len(outcomes) >= 3, outcomes
