"""Tiny legacy (pre-Xen 4.6) save images, the input of Xen's ``convert-legacy-stream``.

The legacy format is the one Xen's ``tools/python/xen/migration/legacy.py``
documents (and ``convert-legacy-stream`` reads): a header (``p2m_size``, for
PV the extended-info blocks and the p2m frame list), a series of chunks (a
positive count is a batch of pfns with their pages; a negative one is a
metadata chunk; 0 ends the body), then the PV tail (unmapped pfns, per-vCPU
contexts, shared info) or the HVM tail (three "magic" pfns, the HVM context,
the qemu record). Everything is built here with :func:`struct.pack`; no Xen
code is used.

Run from the repository root::

    python3 tests/vectors/legacy_images.py OUTDIR

writes ``OUTDIR/<name>.legacy`` for every image in :data:`IMAGES`. With
``XEN_TOOLS_PYTHON`` pointing at Xen's ``tools/python`` it also runs Xen's
converter on each image (see ``xen-written/README.md``)::

    XEN_TOOLS_PYTHON=/tmp/xen/tools/python python3 tests/vectors/legacy_images.py \\
        --convert tests/vectors/xen-written
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PAGE = 4096

# Legacy chunk markers (legacy.py: CHUNK_*) and page types (bits 31-28 of a pfn).
CHUNK_END = 0
CHUNK_VCPU_INFO = -2
CHUNK_HVM_IDENT_PT = -3
CHUNK_TSC_INFO = -7
CHUNK_HVM_CONSOLE_PFN = -8
CHUNK_TOOLSTACK = -18
NOTAB, L1TAB, XTAB = 0x0, 0x1, 0xF

VCPU_64 = 0x1430  # "vcpu" extended-info block of a 64-bit guest (5168 bytes)
VCPU_32 = 0xAF0  # ... of a 32-bit guest (2800 bytes)
EXTD = 128  # extended vCPU context, present when the "extv" block is


def _pattern(seed: int, n: int) -> bytes:
    return bytes((seed + 7 * i) & 0xFF for i in range(n))


def _ulongs(twidth: int, values: list[int]) -> bytes:
    return struct.pack(("<%dI" if twidth == 32 else "<%dQ") % len(values), *values)


def _lpfn(ptype: int, pfn: int) -> int:
    return (ptype << 28) | pfn


def _page_batch(twidth: int, pfns: list[int]) -> bytes:
    """A positive chunk: count, pfns, then a page for every pfn of a type below 0xd."""
    pages = b"".join(
        bytes(PAGE) if p >> 28 == L1TAB else _pattern(p & 0xFF, PAGE) for p in pfns if p >> 28 < 0xD
    )
    return struct.pack("<i", len(pfns)) + _ulongs(twidth, pfns) + pages


def _tsc_chunk() -> bytes:
    # mode, nsec, khz, incarnation (legacy order)
    return struct.pack("<i", CHUNK_TSC_INFO) + struct.pack("<IQII", 0, 123_456_789, 2_400_000, 3)


def pv_image(twidth: int, guest_width: int) -> bytes:
    """A one-vCPU PV guest with 32 pfns: three pages, one vCPU, shared info."""
    vcpu_len = VCPU_64 if guest_width == 8 else VCPU_32
    p2m_size = 32
    out = _ulongs(twidth, [p2m_size])
    blocks = struct.pack("<4sI", b"vcpu", vcpu_len) + _pattern(0x40, vcpu_len)
    blocks += struct.pack("<4sI", b"extv", 0)
    out += _ulongs(twidth, [(1 << twidth) - 1]) + struct.pack("<I", len(blocks)) + blocks
    fpp = PAGE // guest_width
    out += _ulongs(twidth, [0x1234 + i for i in range((p2m_size - 1) // fpp + 1)])  # p2m frames
    out += struct.pack("<ii", CHUNK_VCPU_INFO, 0) + struct.pack("<Q", 1)  # max_id 0, vCPU 0 up
    out += _tsc_chunk()
    out += _page_batch(twidth, [_lpfn(NOTAB, 0), _lpfn(L1TAB, 1), _lpfn(XTAB, 2)])
    out += struct.pack("<i", CHUNK_END)
    out += struct.pack("<I", 0)  # no unmapped pfns
    out += _pattern(0x22, vcpu_len) + _pattern(0x33, EXTD)  # vCPU 0: basic, extended
    out += _pattern(0x11, PAGE)  # shared info
    return out


def _hvm_entry(typecode: int, instance: int, data: bytes) -> bytes:
    return struct.pack("<HHI", typecode, instance, len(data)) + data


def hvm_context() -> bytes:
    """HEADER, CPU, RTC (24 bytes, Xen >= 4.14 size), END: typecodes hvm_load knows."""
    header = struct.pack("<IIQII", 0x54381286, 1, 0, 0x906EA, 2_400_000)
    return (
        _hvm_entry(1, 0, header)
        + _hvm_entry(2, 0, _pattern(0x55, 1024))
        + _hvm_entry(11, 0, bytes(24))
        + _hvm_entry(0, 0, b"")
    )


def hvm_image() -> bytes:
    """A one-vCPU HVM guest: two pages, HVM params, a libxl physmap, context and qemu."""
    out = struct.pack("<Q", 0x100)  # p2m_size (64-bit toolstack)
    out += _page_batch(64, [_lpfn(NOTAB, 0), _lpfn(NOTAB, 1)])
    out += _tsc_chunk()
    out += struct.pack("<iIQ", CHUNK_HVM_IDENT_PT, 0, 0xFEFFD000)
    out += struct.pack("<iIQ", CHUNK_HVM_CONSOLE_PFN, 0, 0xFEFFF)
    # libxl toolstack data, version 1: one physmap entry; a 64-bit toolstack
    # leaked 4 bytes of padding after the NUL-terminated name.
    name = b"vga.vram\0"
    physmap = struct.pack("<QQQI", 0xF0000000, 0xF0000000, 0x800000, len(name)) + name + bytes(4)
    toolstack = struct.pack("<II", 1, 1) + physmap
    out += struct.pack("<iI", CHUNK_TOOLSTACK, len(toolstack)) + toolstack
    out += struct.pack("<i", CHUNK_END)
    out += struct.pack("<QQQ", 0xFEFF0, 0xFEFF1, 0xFEFFC)  # ioreq, bufioreq, store pfns
    ctx = hvm_context()
    out += struct.pack("<I", len(ctx)) + ctx
    qemu = b"QEVM" + _pattern(0x66, 59)
    out += b"DeviceModelRecord0002" + struct.pack("<I", len(qemu)) + qemu
    return out


def xl_wrap(legacy: bytes) -> bytes:
    """A legacy xl save file: xl magic and header (no STREAMv2), config, legacy image."""
    config = b'{"c_info": {"type": "hvm", "name": "legacy"}}\0'
    optional = struct.pack("<I", len(config)) + config
    magic = b"Xen saved domain, xl format\n \0 \r"
    return magic + struct.pack("<IIII", 0x01020304, 1, 0, len(optional)) + optional + legacy


@dataclass(frozen=True)
class Image:
    """A legacy image and how convert-legacy-stream is run on it."""

    name: str
    data: bytes
    twidth: int
    guest: str  # "pv" | "hvm"
    xl: bool = False


IMAGES = [
    Image("pv64", pv_image(64, 8), 64, "pv"),
    Image("pv32", pv_image(32, 4), 32, "pv"),
    Image("hvm", hvm_image(), 64, "hvm"),
    Image("xl-hvm", xl_wrap(hvm_image()), 64, "hvm", xl=True),
]

#: Every conversion: (output name, image, extra converter arguments).
CONVERSIONS: list[tuple[str, Image, list[str]]] = [
    (f"{img.name}-{fmt}{suffix}.bin", img, ["-f", fmt, *extra])
    for img in IMAGES
    for fmt in ("libxc", "libxl")
    for suffix, extra in (
        [("", []), ("-skip-qemu", ["--skip-qemu"])] if img.guest == "hvm" else [("", [])]
    )
    if not (fmt == "libxl" and suffix)  # --skip-qemu changes nothing for libxl
]


def convert(tools: Path, python: str, img: Image, args: list[str], src: Path, dst: Path) -> None:
    """Run Xen's convert-legacy-stream on ``src``, writing ``dst``."""
    cmd = [python, str(tools / "scripts" / "convert-legacy-stream")]
    cmd += ["-i", str(src), "-o", str(dst), "-w", str(img.twidth), "-g", img.guest, *args]
    if img.xl:
        cmd.append("-x")
    env = dict(os.environ, PYTHONPATH=str(tools))
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--convert", action="store_true", help="also run Xen's converter")
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    for img in IMAGES:
        (args.outdir / f"{img.name}.legacy").write_bytes(img.data)
    if not args.convert:
        return 0
    tools_env = os.environ.get("XEN_TOOLS_PYTHON")
    if not tools_env:
        print("--convert needs XEN_TOOLS_PYTHON (Xen's tools/python)", file=sys.stderr)
        return 2
    tools = Path(tools_env)
    for out, img, extra in CONVERSIONS:
        # The converter's -x path compares bytes with the str xl.MAGIC, so it
        # only works under Python 2; XEN_CONVERTER_PYTHON2 names that interpreter.
        python = os.environ.get("XEN_CONVERTER_PYTHON2", "python2") if img.xl else "python3"
        if img.xl and "XEN_CONVERTER_PYTHON2" not in os.environ:
            print(f"skipping {out}: set XEN_CONVERTER_PYTHON2", file=sys.stderr)
            continue
        convert(tools, python, img, extra, args.outdir / f"{img.name}.legacy", args.outdir / out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
