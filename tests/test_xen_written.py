"""Files written by Xen's own ``convert-legacy-stream`` (``tests/vectors/xen-written``).

Each converter output must decode and re-encode byte-exactly; the legacy
inputs must be exactly what ``tests/vectors/legacy_images.py`` generates, so
the corpus can be remade (``tests/vectors/xen-written/README.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.vectors.legacy_images import CONVERSIONS, IMAGES
from xenlu.migration.libxc_stream import decode_libxc, libxc_bytes
from xenlu.migration.libxl import LibxlStream, decode_libxl, decode_xl, libxl_bytes, xl_bytes

HERE = Path(__file__).parent / "vectors" / "xen-written"

#: Outputs that hold bytes after the libxc END: ``-f libxc`` on an HVM image
#: appends the raw qemu record (DeviceModelRecord0002), which Xen's restore
#: never reads as part of the libxc stream; xenlu keeps it as ``trailing``.
TRAILING = {"hvm-libxc.bin", "xl-hvm-libxc.bin"}


def _format(name: str) -> str:
    if name.startswith("xl-"):
        return "xl"
    return "libxl" if "-libxl" in name else "libxc"


def _round_trip(name: str, data: bytes) -> Any:
    fmt = _format(name)
    if fmt == "xl":
        f = decode_xl(data)
        assert xl_bytes(f) == data
        return f.stream
    if fmt == "libxl":
        s = decode_libxl(data)
        assert libxl_bytes(s) == data
        return s
    stream, end, _ = decode_libxc(data)
    assert data[end:] == stream.trailing
    assert libxc_bytes(stream) == data
    return stream


OUTPUTS = [out for out, _, _ in CONVERSIONS]


def test_every_conversion_is_committed() -> None:
    assert sorted(p.name for p in HERE.glob("*.bin")) == sorted(OUTPUTS)


@pytest.mark.parametrize("name", OUTPUTS)
def test_xen_written_file_round_trips(name: str) -> None:
    stream = _round_trip(name, (HERE / name).read_bytes())
    # The qemu record after the libxc END is the container's, kept verbatim.
    trailing = stream.trailing
    if name in TRAILING:
        assert trailing.startswith(b"DeviceModelRecord0002")
    else:
        assert trailing == b""
    if isinstance(stream, LibxlStream):
        assert stream.header.legacy  # the converter sets options bit 1
        assert stream.libxc is not None and stream.libxc.domain.xen_major == 0
    else:
        assert stream.domain.xen_major == 0  # "converted from legacy" (xen_major 0)


@pytest.mark.parametrize("img", IMAGES, ids=[i.name for i in IMAGES])
def test_legacy_inputs_are_remade_exactly(img: Any) -> None:
    assert (HERE / f"{img.name}.legacy").read_bytes() == img.data


def test_hvm_libxl_output_carries_the_physmap_as_xenstore_keys() -> None:
    s = decode_libxl((HERE / "hvm-libxl.bin").read_bytes())
    (xs,) = [r.value for r in s.records if r.type == 2]
    assert dict(xs.pairs) == {
        b"physmap/f0000000/start_addr": b"f0000000",
        b"physmap/f0000000/size": b"800000",
        b"physmap/f0000000/name": b"vga.vram",
    }
