"""``xenlu map``: a picture of an LU host's machine memory (PNG or SVG).

    xenlu map [-q] [--width N] [--format lu|memory] [--liveupdate SIZE@START] FILE -o OUT

The raster comes from :func:`xenlu.tools.memmap.host_map` (numpy, from the
extents); this module only draws it with matplotlib, an optional extra
(``pip install 'xenlu[plot]'``): without it the command says so and exits
69 (:class:`~xenlu.cli.io.MissingDependency`). The picture is one image
element, a legend, an address axis and at most :data:`MAX_MARKS` conflict
marks, so an SVG's element count does not grow with the host. OUT is
written atomically; its suffix (``.png``, ``.svg``) chooses the format.

>>> import argparse
>>> ap = argparse.ArgumentParser(prog="xenlu")
>>> register(ap.add_subparsers(dest="command"))
>>> ap.parse_args(["map", "host.lu", "-o", "host.svg"]).output
'host.svg'
"""

from __future__ import annotations

import argparse
import os
from typing import IO, Any

from xenlu.cli.io import (
    MissingDependency,
    UsageError,
    add_input_options,
    decode_input,
    epilog,
    guarded,
    input_format,
    out,
    read_input,
    stage,
)
from xenlu.cli.progress import progress
from xenlu.core.errors import CallerError

__all__ = ["FORMATS", "MAX_MARKS", "cmd_map", "register", "render"]

#: Output formats, by file suffix.
FORMATS = {".png": "png", ".svg": "svg"}
#: Conflict marks drawn at most (beyond, conflicting pixels are still red).
MAX_MARKS = 64
_INSTALL = "xenlu map needs matplotlib: pip install 'xenlu[plot]'"

# Fixed categories (xenlu.tools.memmap order), then the domains' colours; red is
# kept for conflicts, white for addresses beyond the host.
_FIXED_COLOURS = ("#e8e8e8", "#4d4d4d", "#000000", "#c7c7a0", "#8c564b", "#b0b0b0")
_DOMAIN_COLOURS = (
    "#1f77b4",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#17becf",
    "#bcbd22",
    "#e377c2",
    "#aec7e8",
    "#98df8a",
    "#ffbb78",
    "#c5b0d5",
    "#9edae5",
    "#dbdb8d",
    "#f7b6d2",
    "#393b79",
    "#637939",
)
_CONFLICT = "#e00000"
_BEYOND = "#ffffff"


def _size(nbytes: int) -> str:
    """``nbytes`` in the largest binary unit that keeps it whole-ish."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            v = f"{nbytes / (1 << shift):.1f}".removesuffix(".0")
            return f"{v} {unit}"
    return f"{nbytes} B" if nbytes else "0"


def _colour(index: int) -> str:
    if index < len(_FIXED_COLOURS):
        return _FIXED_COLOURS[index]
    return _DOMAIN_COLOURS[(index - len(_FIXED_COLOURS)) % len(_DOMAIN_COLOURS)]


def render(m: Any, title: str, fmt: str, sink: IO[bytes]) -> None:
    """Draw the :class:`~xenlu.tools.memmap.HostMap` ``m`` as ``fmt`` (png, svg) into ``sink``."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependency(_INSTALL) from None

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "xenlu"}):
        fig = Figure(figsize=(10, 6.2), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.imshow(_image(m), aspect="auto", interpolation="nearest", origin="upper")
        ax.set_title(title, fontsize=10)
        _address_axes(ax, m)
        handles = _legend(ax, m)
        ax.set_xlim(-0.5, m.width - 0.5)
        ax.set_ylim(m.rows - 0.5, -0.5)
        fig.legend(
            handles=handles,
            loc="outside right upper",
            fontsize=8,
            frameon=False,
            title="frames held by",
            title_fontsize=8,
        )
        if fmt == "svg":
            fig.savefig(sink, format="svg", metadata={"Date": None})
            return
        import io

        from PIL import Image  # matplotlib's own dependency

        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
    # A palette PNG: the picture is a few flat colours and anti-aliased text,
    # so 256 colours keep it exact to the eye at a third of the size.
    buf.seek(0)
    with Image.open(buf) as im:
        pal = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        pal.save(sink, format="png", optimize=True)


def _image(m: Any) -> Any:
    """The RGB picture of ``m``: a colour per category, conflicts red, past the end white."""
    import numpy as np
    from matplotlib.colors import to_rgb

    ncat = len(m.categories)
    rgb = np.array([to_rgb(_colour(i)) for i in range(ncat)] + [to_rgb(_BEYOND)])
    idx = np.where(m.pixels < 0, ncat, m.pixels)
    img = rgb[idx]
    img[m.conflict] = to_rgb(_CONFLICT)
    return img.reshape(m.rows, m.width, 3)


def _address_axes(ax: Any, m: Any) -> None:
    """Rows top to bottom, each ``m.row_bytes`` of machine memory; columns the
    offset within the row."""
    import numpy as np

    page = 1 << 12
    row_bytes = m.row_bytes
    # Ticks every power-of-two rows: round addresses (row_bytes is one too).
    step = 1 << max(0, (m.rows - 1) // 8).bit_length()
    rows = np.arange(0, m.rows + 1, step)
    ax.set_yticks(rows - 0.5)
    ax.set_yticklabels([f"{int(r) * row_bytes:#x} ({_size(int(r) * row_bytes)})" for r in rows])
    ax.set_ylabel("machine address (row start)")
    cols = np.linspace(0, m.width, 5).round().astype(int)
    ax.set_xticks(cols - 0.5)
    ax.set_xticklabels([f"+{_size(int(c) * m.frames_per_pixel * page)}" for c in cols])
    ax.set_xlabel(
        f"offset within the row; 1 pixel = {_size(m.frames_per_pixel * page)}"
        f" ({m.frames_per_pixel} frames), 1 row = {_size(row_bytes)}"
    )
    ax.tick_params(labelsize=8)


def _legend(ax: Any, m: Any) -> list[Any]:
    """The legend's patches (categories holding frames); where frames are
    claimed twice, marks beside the conflicting pixels and a patch for them."""
    import numpy as np
    from matplotlib.patches import Patch

    page = 1 << 12
    handles = [
        Patch(
            facecolor=_colour(i),
            edgecolor="#808080",
            label=f"{c.name} ({_size(c.frames * page)})",
        )
        for i, c in enumerate(m.categories)
        if c.frames or i == 0
    ]
    if m.conflict.any():
        hot = np.flatnonzero(m.conflict)
        # A mark beside each conflicting pixel (the first MAX_MARKS): one
        # frame in a terabyte is a single pixel, too small to see alone.
        hot = hot[np.unique(hot // max(1, m.width // 64), return_index=True)[1]][:MAX_MARKS]
        ax.scatter(
            hot % m.width,
            hot // m.width,
            s=60,
            facecolors="none",
            edgecolors=_CONFLICT,
            linewidths=1.5,
            zorder=3,
        )
        n = m.conflict_frames
        label = f"conflict: {n} frame{'s' * (n != 1)} claimed twice"
        handles.append(Patch(facecolor=_CONFLICT, label=label))
    return handles


def _output_format(path: str) -> str:
    fmt = FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise UsageError(f"-o {path}: the name must end in .png or .svg (it chooses the format)")
    return fmt


def cmd_map(args: argparse.Namespace) -> int:
    """``xenlu map FILE -o OUT``: draw the host; print one summary line."""
    from xenlu.lu.stream import LUStream
    from xenlu.tools.memmap import host_map

    fmt = _output_format(args.output)
    try:  # before the work: a missing extra is said at once
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependency(_INSTALL) from None
    informat = input_format(args, "lu")
    data = read_input(args.file)
    with progress("map", len(data), quiet=args.quiet) as bar:
        bar.phase("decode")
        stream = decode_input(data, informat, args.liveupdate)
        if not isinstance(stream, LUStream):  # pragma: no cover - lu and memory give one
            raise CallerError(f"{args.file} is not a Live Update stream")
        bar.phase("aggregate", total=len(stream.domains))
        m = host_map(stream, width=args.width, progress=bar.update)
        h = stream.host
        title = (
            f"{os.path.basename(args.file)}: Xen {stream.xen_version} host, "
            f"{_size(m.max_page << 12)} (max_page {m.max_page:#x}), "
            f"{len(stream.domains)} domains"
        )
        bar.phase("render")
        staged = stage(args.output, lambda f: render(m, title, fmt, f))
        staged.commit()
    if not args.quiet:
        n = m.conflict_frames
        state = f"{n} frame{'s' * (n != 1)} claimed twice" if n else "no conflict"
        out(
            f"{args.output}: {m.rows}×{m.width} pixels of {_size(m.frames_per_pixel << 12)}, "
            f"{len(stream.domains)} domains, bootmem {h.lu_bootmem_size >> 20} MiB, {state}"
        )
    return 0


def _width(text: str) -> int:
    t = text.strip()
    if not (t.isdigit() and t.isascii() and len(t) <= 5 and 64 <= int(t) <= 4096):
        raise argparse.ArgumentTypeError(f"expected an integer 64 … 4096, got {text[:20]!r}")
    return int(t)


def register(subparsers: Any) -> None:
    """Add the ``map`` command to the ``xenlu`` parser."""
    p = subparsers.add_parser(
        "map",
        help="picture of the host's machine memory (PNG or SVG)",
        description=(
            "Draw an LU stream's machine memory: frames coloured by owning domain, Xen's "
            "pages, the LU data pages, the reusable regions, the LU bootmem and unowned "
            "frames; frames claimed twice marked in red. Needs matplotlib: "
            "pip install 'xenlu[plot]'."
        ),
        epilog=epilog(
            "xenlu map host.lu -o host.png",
            "xenlu map --liveupdate 64M@0x8000000 memory.img -o host.svg",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="picture to write (atomically): OUT.png or OUT.svg",
    )
    p.add_argument(
        "--width",
        type=_width,
        default=512,
        metavar="N",
        help="pixels per row (64 … 4096, default 512); rows follow from the host's size",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line, no progress bar")
    add_input_options(p, ["lu"], "lu")
    p.set_defaults(func=guarded("map", cmd_map))
