"""The streaming host generator (issue 14): write_host writes encode_lu(make_host(...)).

Exact byte equality holds (one builder, the same seeded draws in the same
order), so the tests assert it, for every epoch and the layouts the
fragmentation knobs produce; the memory bound is checked in a subprocess
with ``ru_maxrss`` against the frame count.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from xenlu.core.epochs import EPOCHS
from xenlu.host.validation import validate
from xenlu.lu.stream import GlobalSection, decode_lu, encode_lu
from xenlu.testing.hostgen import host_sections, make_host, write_host

SHAPES: list[dict[str, Any]] = [
    dict(n_hvm=2, mem_mib=2, dom0_mem_mib=1),
    dict(n_hvm=3, mem_mib=2, dom0_mem_mib=2, fragmentation=1.0, seed=7),
    dict(n_hvm=1, mem_mib=4, dom0_mem_mib=1, fragmentation=0.4, seed=3),
    dict(n_hvm=2, mem_mib=4, dom0_mem_mib=2, fragmentation=0.5, superpages=True, seed=11),
    dict(n_hvm=0, mem_mib=1, dom0_mem_mib=1, fragmentation=1.0),
]


@pytest.mark.parametrize("version", EPOCHS, ids=lambda v: f"{v[0]}.{v[1]}")
@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_streamed_bytes_equal_encoded_host(version: tuple[int, int], shape: int) -> None:
    knobs = SHAPES[shape]
    want = encode_lu(make_host(version, **knobs))
    buf = io.BytesIO()
    assert write_host(buf, version, **knobs) == len(want)
    assert buf.getvalue() == want


def test_sections_equal_and_validate_clean(tmp_path: Path) -> None:
    knobs: dict[str, Any] = dict(n_hvm=4, mem_mib=2, dom0_mem_mib=2, fragmentation=1.0, seed=5)
    secs = list(host_sections("4.15", **knobs))
    host = make_host("4.15", **knobs)
    assert secs == host.sections
    assert isinstance(secs[0], GlobalSection)
    assert secs[0].host.nr_domains == 5
    path = tmp_path / "host.lu"
    n = write_host(path, "4.15", max_record_bytes=4096, **knobs)
    assert n == path.stat().st_size
    streamed = decode_lu(path)
    assert streamed == host
    assert validate(streamed).ok


def test_memory_is_bounded_by_one_domain(tmp_path: Path) -> None:
    # 33 domains x 64 MiB, every frame its own extent: 2.1 GiB of RAM,
    # 540 k frames; make_host would hold ~45 bytes per frame for the whole
    # host, the stream holds the layout (~12 bytes per frame at peak) and
    # one domain (~16 k frames).
    code = textwrap.dedent(
        """
        import resource, sys
        from xenlu.testing.hostgen import write_host
        n = write_host(sys.argv[1], "4.15", n_hvm=32, mem_mib=64, dom0_mem_mib=64,
                       fragmentation=1.0, seed=2)
        print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    base = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, xenlu.testing.hostgen, xenlu.lu.stream; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "h.lu")],
        capture_output=True,
        text=True,
        check=True,
    )
    nbytes, rss_kib = map(int, out.stdout.split())
    frames = 33 * 64 * 256
    assert nbytes > 38 * frames  # a P2M entry (24 B) and an ownership entry (16 B) per frame
    extra = (rss_kib - int(base.stdout)) * 1024
    assert extra < 16 * frames + (16 << 20), (extra, nbytes)
