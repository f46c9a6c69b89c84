"""``xenlu map`` and :mod:`xenlu.tools.memmap` (issue 15): the raster is exact
against frame-by-frame expansion on small hosts, the legend names every
category, a doubly-owned frame is marked, a 1 TiB-shaped host renders
quickly, an SVG stays small, and a missing matplotlib is exit 69."""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xenlu.cli.app import main
from xenlu.cli.io import Exit
from xenlu.core.registry import Record
from xenlu.lu.records import Bulk, T
from xenlu.lu.stream import GlobalSection, LUDomain, LUStream, encode_lu
from xenlu.testing.hostgen import make_host
from xenlu.tools.memmap import UNOWNED, _coverage, _depth, _runs, host_map, legend_names

pytest.importorskip("matplotlib")

LEGEND = ["unowned", "Xen pages", "LU data pages", "reusable regions", "LU bootmem", "dom0"]


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def set_host(s: LUStream, **kw: int) -> LUStream:
    recs = [
        Record(r.type, dataclasses.replace(r.value, **kw)) if r.type == T.LU_HOST_INFO else r
        for r in s.global_section.records
    ]
    return LUStream(GlobalSection(recs), s.domains)


def add_owned(s: LUStream, domid: int, starts: list[int], counts: list[int]) -> LUStream:
    """``s`` with ownership entries appended to domain ``domid``."""
    doms = []
    for d in s.domains:
        if d.domid == domid:
            own = d.ownership
            row = np.zeros(len(starts), own.dtype)
            row["start_mfn"], row["nr_pages"] = starts, counts
            arr = np.concatenate((own, row))
            d = LUDomain(
                [
                    Record(r.type, Bulk(arr)) if r.type == T.LU_PAGE_OWNERSHIP else r
                    for r in d.records
                ]
            )
        doms.append(d)
    return LUStream(s.global_section, doms)


@pytest.fixture(scope="module")
def host() -> LUStream:
    return make_host((4, 13), n_hvm=3, mem_mib=8, dom0_mem_mib=8, fragmentation=0.2, seed=7)


@pytest.fixture(scope="module")
def doubly_owned(host: LUStream) -> tuple[LUStream, int]:
    """``host`` with one RAM frame of dom1 owned by dom2 as well."""
    o = host.domain(1).ownership
    i = int(np.flatnonzero(o["flags"] == 0)[0])
    frame = int(o["start_mfn"][i]) + int(o["nr_pages"][i]) // 2
    return add_owned(host, 2, [frame], [1]), frame


# --- the raster ------------------------------------------------------------------------


def _expanded(s: np.ndarray, e: np.ndarray, n: int) -> np.ndarray:
    """Depth per frame by brute force (small n only: what host_map never does)."""
    depth = np.zeros(n + 1, np.int64)
    np.add.at(depth, s, 1)
    np.add.at(depth, e, -1)
    return np.cumsum(depth)[:n]


@pytest.mark.parametrize("seed", range(30))
def test_coverage_and_runs_match_frame_by_frame(seed: int) -> None:
    r = random.Random(seed)
    n = r.randrange(1, 3000)
    k = r.randrange(0, 40)
    s = np.array([r.randrange(n) for _ in range(k)], np.int64)
    e = np.minimum(s + np.array([r.randrange(0, 300) for _ in range(k)], np.int64), n)
    fpp = r.choice([1, 2, 4, 16, 64, 1024])
    npix = -(-n // fpp)
    depth = _expanded(s, e, n)
    per_pixel = np.add.reduceat(np.pad(depth, (0, npix * fpp - n)), np.arange(0, npix * fpp, fpp))
    assert (_coverage(s, e, fpp, npix) == per_pixel).all()
    for at_least in (1, 2, 3):
        frames = np.zeros(n, bool)
        for a, b in _runs(*_depth(s, e), at_least):
            assert not frames[a:b].any()  # disjoint, maximal runs
            frames[a:b] = True
        assert (frames == (depth >= at_least)).all()


def test_host_map_counts_every_frame_once(host: LUStream) -> None:
    m = host_map(host, width=64)
    assert m.conflict_frames == 0 and not m.conflict.any()
    held = sum(c.frames for c in m.categories[1:])
    assert m.categories[UNOWNED].frames + held == m.nr_frames == m.max_page
    by_dom = {c.domid: c.frames for c in m.categories if c.domid is not None}
    assert by_dom == {d.domid: int(d.ownership["nr_pages"].sum()) for d in host.domains}
    assert (m.pixels[: -(-m.nr_frames // m.frames_per_pixel)] >= 0).all()
    assert (m.pixels[-(-m.nr_frames // m.frames_per_pixel) :] == -1).all()
    assert set(LEGEND) <= set(legend_names(m))


def test_many_domains_share_a_colour(host: LUStream) -> None:
    m = host_map(host, max_domains=2)
    names = [c.name for c in m.categories]
    assert "other domains (2)" in names and sum(n.startswith("dom") for n in names) == 2


def test_doubly_owned_frame_is_a_conflict(doubly_owned: tuple[LUStream, int]) -> None:
    s, frame = doubly_owned
    m = host_map(s, width=64)
    assert m.conflict_frames == 1
    assert m.conflict_runs.tolist() == [[frame, frame + 1]]
    assert np.flatnonzero(m.conflict).tolist() == [frame // m.frames_per_pixel]


def test_one_tib_host_costs_what_its_extents_cost(host: LUStream) -> None:
    big = set_host(host, max_page=1 << 28)  # 1 TiB of 4 KiB frames
    big = add_owned(big, 3, [(1 << 28) - (1 << 20), 1 << 27], [1 << 20, (1 << 32) - 1])
    t = time.perf_counter()
    m = host_map(big)
    assert time.perf_counter() - t < 2.0  # a frame map would be 2**28 entries
    assert m.nr_frames == (1 << 27) + (1 << 32) - 1 > 1 << 28
    assert m.rows <= 256 and m.rows * m.width * m.frames_per_pixel >= m.nr_frames
    assert m.conflict_frames == 1 << 20  # the two new extents overlap
    dom3 = next(c for c in m.categories if c.domid == 3)
    assert (
        dom3.frames == int(host.domain(3).ownership["nr_pages"].sum()) + (1 << 20) + (1 << 32) - 1
    )


# --- the command -----------------------------------------------------------------------


def test_map_svg_has_legend_axis_and_bounded_elements(
    host: LUStream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "host.lu"
    src.write_bytes(encode_lu(host))
    out = tmp_path / "host.svg"
    assert run(["map", str(src), "-o", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"{out}: ")
    svg = out.read_text()
    for name in LEGEND:
        assert f">{name} (" in svg, name
    assert "machine address" in svg and "1 pixel = " in svg
    assert "conflict" not in svg
    assert svg.count("<image") == 1 and svg.count("<") < 1500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host.lu", "host.svg"]


def test_map_marks_conflicts_in_red(
    doubly_owned: tuple[LUStream, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from matplotlib.image import imread

    src = tmp_path / "dup.lu"
    src.write_bytes(encode_lu(doubly_owned[0]))
    assert run(["map", str(src), "-o", str(tmp_path / "dup.svg")]) == 0
    assert ">conflict: 1 frame claimed twice<" in (tmp_path / "dup.svg").read_text()
    assert run(["map", "-q", str(src), "-o", str(tmp_path / "dup.png")]) == 0
    assert capsys.readouterr().out.count("1 frame claimed twice") == 1  # the SVG run's line
    rgb = (imread(str(tmp_path / "dup.png"))[..., :3] * 255).round()
    red = (rgb[..., 0] >= 200) & (rgb[..., 1] <= 40) & (rgb[..., 2] <= 40)
    assert red.sum() > 20  # the pixel, its mark and the legend swatch


def test_map_many_conflicts_keep_the_svg_small(host: LUStream, tmp_path: Path) -> None:
    o = host.domain(1).ownership
    frames = [int(f) for f in o["start_mfn"][:400]]
    src = tmp_path / "many.lu"
    src.write_bytes(encode_lu(add_owned(host, 2, frames, [1] * len(frames))))
    assert run(["map", "-q", str(src), "-o", str(tmp_path / "many.svg")]) == 0
    svg = (tmp_path / "many.svg").read_text()
    assert ">conflict: 400 frames claimed twice<" in svg and svg.count("<") < 1500


def test_map_one_tib_png(host: LUStream, tmp_path: Path) -> None:
    big = add_owned(set_host(host, max_page=1 << 28), 3, [(1 << 28) - (1 << 18)], [1 << 18])
    src = tmp_path / "tib.lu"
    src.write_bytes(encode_lu(big))
    assert run(["map", "-q", str(src), "-o", str(tmp_path / "tib.png")]) == 0
    assert (tmp_path / "tib.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_map_needs_matplotlib(
    host: LUStream,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = tmp_path / "host.lu"
    src.write_bytes(encode_lu(host))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    assert run(["map", str(src), "-o", str(tmp_path / "h.png")]) == Exit.UNAVAILABLE == 69
    err = capsys.readouterr().err
    assert err == "xenlu map: xenlu map needs matplotlib: pip install 'xenlu[plot]'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host.lu"]


@pytest.mark.parametrize(
    "argv",
    [["F", "-o", "x.jpg"], ["F"], ["--width", "8", "F", "-o", "x.png"], ["--format", "xl", "F"]],
)
def test_map_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["map", *argv]) == Exit.USAGE
    assert len(capsys.readouterr().err.splitlines()) == 1
