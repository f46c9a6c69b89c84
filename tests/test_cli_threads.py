"""The command line makes worker threads only where a codec uses them.

A large libxc/libxl/xl/xenstore input got a two-thread executor that no
codec of those families takes: the ``concurrent.futures`` import and the
threads cost every ``xenlu verify`` of such a file ~5 ms of start-up (issue
12's ``xen_pages`` row). Which family uses threads is the ``threads`` flag
of its :data:`xenlu.api.FORMAT_TABLE` entry.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from xenlu.api import FORMAT_TABLE
from xenlu.cli.io import THREADS_FROM_BYTES, worker_threads


def test_only_lu_codecs_take_threads() -> None:
    assert {f.name for f in FORMAT_TABLE.values() if f.threads} == {"lu"}


def test_large_input_of_a_family_without_threads_gets_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    big = bytearray(THREADS_FROM_BYTES)
    big[:8] = b"\xff" * 8  # the libxc image header's marker
    for fmt in ("libxc", "auto", "xl", "libxl", "xenstore"):
        with worker_threads(big, fmt) as pool:
            assert pool is None, fmt


def test_large_lu_input_gets_threads_named_or_recognised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from xenlu.api import encode
    from xenlu.testing.hostgen import make_host

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    head = encode(make_host("4.15", n_hvm=0, mem_mib=1, dom0_mem_mib=1))
    big = bytearray(THREADS_FROM_BYTES)
    big[: len(head)] = head
    for fmt in ("lu", "auto"):
        with worker_threads(big, fmt) as pool:
            assert isinstance(pool, ThreadPoolExecutor), fmt
            assert pool.submit(sum, (1, 2)).result() == 3
