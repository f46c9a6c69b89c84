"""Shared pieces of the xenlu fuzz targets: the hand-over image layout and the invariants.

Each ``check_*`` function is the invariant one target asserts on one input;
``tests/test_regressions.py`` replays saved crash inputs through the same
checks (it imports this module by path). Every check lets a
:class:`~xenlu.core.errors.XenLUError` pass and turns anything else into a crash.
"""

from __future__ import annotations

import contextlib
from typing import Any

from xenlu import api
from xenlu.core.errors import XenLUError

#: The hand-over image a fuzz input is laid into (LU spec §5): the first
#: ``PAGE`` bytes of the input are the breadcrumb page at the bootmem start
#: (machine address 0), the rest lands at ``DATA_AT`` (just above the 2 MiB
#: bootmem), where the MFN array and data pages of the seeds live.
PAGE = 4096
BOOTMEM = (0, 2 << 20)
DATA_AT = 2 << 20
IMAGE_SIZE = 3 << 20
MAX_PAGE = IMAGE_SIZE // PAGE


def lay_image(image: bytearray, data: bytes) -> int:
    """Write ``data`` into ``image`` as described above; return the highest byte touched."""
    head = data[:PAGE]
    image[: len(head)] = head
    rest = data[PAGE : PAGE + IMAGE_SIZE - DATA_AT]
    image[DATA_AT : DATA_AT + len(rest)] = rest
    return DATA_AT + len(rest)


def compact_image(image: bytes | bytearray, used_end: int) -> bytes:
    """The fuzz input that :func:`lay_image` turns back into ``image``."""
    return bytes(image[:PAGE]) + bytes(image[DATA_AT:used_end])


def check_lu(data: bytes) -> None:
    """LU decoder: only XenLUError; a decoded stream re-encodes byte-exactly;
    verify_lu's check-only pass accepts exactly what decode_lu accepts."""
    from xenlu.lu.stream import (
        _verify_fast,
        decode_domain_section,
        decode_lu,
        encode_lu,
        scan_lu,
    )

    try:
        stream = decode_lu(data)
    except XenLUError:
        stream = None
    if _verify_fast(memoryview(data), True) != (stream is not None):
        raise AssertionError("verify_lu's fast verdict differs from decode_lu's")
    if stream is not None:
        again = encode_lu(stream)
        if again != data:
            raise AssertionError("decode_lu succeeded but encode_lu(decode_lu(b)) != b")
    try:
        lenient = decode_lu(data, strict=False, verify_checksums=False, memory=True)
    except XenLUError:
        return
    try:
        infos = scan_lu(data)
    except XenLUError:
        return
    for info in infos[1:]:
        with contextlib.suppress(XenLUError):
            decode_domain_section(data, info.start, lenient.version, strict=False)


def check_libxc(data: bytes) -> None:
    """libxc / libxl / xl decoders (and api.decode auto): only XenLUError; exact re-encode."""
    from xenlu.migration.libxc_stream import decode_libxc
    from xenlu.migration.libxl import decode_libxl, decode_xl

    for fn in (decode_libxc, decode_libxl, decode_xl):
        with contextlib.suppress(XenLUError):
            fn(data)
    try:
        stream = api.decode(data)
    except XenLUError:
        return
    again = api.encode(stream)
    if again != data:
        raise AssertionError("api.decode succeeded but api.encode(api.decode(b)) != b")
    with contextlib.suppress(XenLUError):
        api.decode(data, strict=False)


def check_handover(data: bytes, image: bytearray | None = None) -> None:
    """Hand-over reader over a small image: only XenLUError."""
    from xenlu.lu.handover import read_handover

    img = bytearray(IMAGE_SIZE) if image is None else image
    end = lay_image(img, data)
    try:
        for bootmem in (BOOTMEM, f"liveupdate={BOOTMEM[1] >> 20}M@{BOOTMEM[0]:#x}"):
            with contextlib.suppress(XenLUError):
                read_handover(img, bootmem)
    finally:
        if image is not None:  # leave the shared image zeroed for the next input
            img[:PAGE] = bytes(PAGE)
            img[DATA_AT:end] = bytes(end - DATA_AT)


def check_validate(data: bytes) -> None:
    """Decode (leniently) then validate: only XenLUError, from both."""
    from xenlu.host.validation import validate
    from xenlu.lu.stream import decode_lu

    try:
        stream = decode_lu(data, strict=False, verify_checksums=False)
    except XenLUError:
        return
    try:
        report: Any = validate(stream)
    except XenLUError:
        return
    report.dumps()


CHECKS = {
    "lu": check_lu,
    "libxc": check_libxc,
    "handover": check_handover,
    "validate": check_validate,
}
