"""The bytes of ``make_host`` / ``host_sections`` / ``write_host`` are pinned (issue 12).

The golden corpus, ``make demo`` and the benchmark inputs are built by
:mod:`xenlu.testing.hostgen`; when the host generator takes new options (the
variations the strategies draw), its output for every argument set of
before must stay the same bytes. The digests below were taken before the
generator was unified with the strategies' variations.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest

from xenlu.lu.encode import END_BYTES, encode_section_to
from xenlu.lu.stream import encode_lu
from xenlu.testing.hostgen import host_sections, make_host, write_host

PINNED: list[tuple[str, dict[str, Any], int, str]] = [
    ("4.11", {}, 64624, "5d43b1ef3e31d631c19966587492500a38d525db1fab28ddf6d4a89a52bb1b9f"),
    (
        "4.13",
        dict(n_hvm=2, mem_mib=2, dom0_mem_mib=1, fragmentation=1.0, seed=7),
        72400,
        "1fd61029e1f24cdfb6890f812fcddef15ec69e0b7f710b960f72273150647a46",
    ),
    (
        "4.15",
        dict(
            n_hvm=3,
            mem_mib=4,
            dom0_mem_mib=2,
            vcpus=3,
            fragmentation=0.4,
            seed=3,
            fifo_every=1,
            grant_v2_every=3,
        ),
        101472,
        "1c7a8bbf8e482979620d1bfdb1c187ddc449ef744cd575f0505c93bfdcaf9c34",
    ),
    (
        "4.17",
        dict(n_hvm=2, mem_mib=4, dom0_mem_mib=2, fragmentation=0.5, superpages=True, seed=11),
        53376,
        "c9e0eb4c728398b898acde63776a55ba21bf748de16790f484ca86eac5a43b0e",
    ),
    (
        "4.21",
        dict(n_hvm=0, mem_mib=1, dom0_mem_mib=1, fragmentation=1.0, fifo_every=0, grant_v2_every=0),
        19008,
        "4ac9582b54c3f1d4db64e9cc79498ae7254b2a7769f31c57f28b9a9de6d1f2be",
    ),
    (
        "4.19",
        dict(n_hvm=4, mem_mib=1, dom0_mem_mib=1, vcpus=1, seed=2**32 - 1),
        23896,
        "3e7a7f461ef278cbf52bcca7fb8d0526d64fd3c145f52c60fcd7fdedc52f56ac",
    ),
]


def _digest(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("version", "knobs", "size", "sha"), PINNED, ids=lambda x: str(x)[:12])
def test_make_host_bytes_are_pinned(
    version: str, knobs: dict[str, Any], size: int, sha: str
) -> None:
    assert _digest(encode_lu(make_host(version, **knobs))) == (size, sha)


@pytest.mark.parametrize(("version", "knobs", "size", "sha"), PINNED, ids=lambda x: str(x)[:12])
def test_write_host_and_host_sections_bytes_are_pinned(
    version: str, knobs: dict[str, Any], size: int, sha: str
) -> None:
    buf = io.BytesIO()
    assert write_host(buf, version, **knobs) == size
    assert _digest(buf.getvalue()) == (size, sha)
    buf = io.BytesIO()
    for sec in host_sections(version, **knobs):
        encode_section_to(sec, buf)
    buf.write(END_BYTES)
    assert _digest(buf.getvalue()) == (size, sha)
