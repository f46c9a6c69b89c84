"""``xenlu check``'s one walk: decode on this thread, section checksums on a worker.

:func:`~xenlu.lu.stream.decode_lu_overlapped` must give :func:`decode_lu`'s
stream for a valid input and its first error, field for field, for an
invalid one — whether the error is raised by the walk or by
:meth:`~xenlu.lu.walk.PendingChecksums.settle` after the caller used the
stream. The command gives the same verdicts with and without the worker.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xenlu.cli.io as cli_io
import xenlu.lu.walk as lu_walk
from tests.vectors.lu_vectors import INVALID
from xenlu.cli.app import main
from xenlu.core.errors import DecodeError
from xenlu.core.framing import frames
from xenlu.host.validation import validate
from xenlu.lu.records import T
from xenlu.lu.stream import decode_lu, decode_lu_overlapped, encode_lu, scan_lu
from xenlu.testing.hostgen import make_host


def _outcome(fn: Any, data: bytes) -> tuple[Any, ...] | None:
    try:
        fn(data)
    except DecodeError as e:
        return (type(e).__name__, e.offset, e.record_index, e.record_type, e.field, str(e))
    return None


def _overlapped(pool: ThreadPoolExecutor, data: bytes) -> None:
    """decode_lu_overlapped, the stream used (validated) before the settle."""
    stream, pending = decode_lu_overlapped(data, executor=pool)
    validate(stream)
    pending.settle()


_HOST: list[bytes] = []


def _host() -> bytes:
    if not _HOST:
        host = make_host((4, 21), n_hvm=2, mem_mib=4, dom0_mem_mib=4, fragmentation=0.6, seed=11)
        _HOST.append(encode_lu(host, max_record_bytes=1 << 27))
    return _HOST[0]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadPoolExecutor]:
    """Two workers; every section's crc32c a job, however small."""
    monkeypatch.setattr(lu_walk, "CRC_JOB_MIN_BYTES", 0)
    with ThreadPoolExecutor(2) as ex:
        yield ex


def test_the_same_stream_as_decode_lu(pool: ThreadPoolExecutor) -> None:
    data = _host()
    stream, pending = decode_lu_overlapped(data, executor=pool)
    assert pending.wait()
    pending.settle()
    assert stream == decode_lu(data)
    assert all(d.checksum_ok for d in stream.domains)


def test_a_bad_checksum_is_raised_by_settle(pool: ThreadPoolExecutor) -> None:
    """The walk returns; the settle raises decode_lu's ChecksumError."""
    data = _host()
    sec = scan_lu(data)[1]  # the first domain section
    bad = _flip(data, sec.end + 12)  # its LU_SECTION_END's crc32c
    stream, pending = decode_lu_overlapped(bad, executor=pool)
    assert len(stream.domains) == len(scan_lu(data)) - 1  # the walk went to the end
    assert not pending.wait()
    want = _outcome(decode_lu, bad)
    assert want is not None and want[0] == "ChecksumError" and want[4] == "crc32c"
    assert _outcome(lambda _d: pending.settle(), bad) == want


def test_a_bad_checksum_before_a_later_error_comes_first(pool: ThreadPoolExecutor) -> None:
    """A section's bytes edited (its crc32c no longer matches) and a later
    section truncated: the walk fails on the later one, but the first error
    is the checksum of the earlier one, as decode_lu reports it."""
    data = _host()
    secs = scan_lu(data)
    mv = memoryview(data)
    p2m = next(off for _, off, t, _n in frames(mv, 0, len(mv), 0) if t == T.LU_P2M)
    k = next(i for i, s in enumerate(secs) if s.start <= p2m < s.end)
    assert k + 1 < len(secs)
    bad = _flip(data, p2m + 16 + 3)  # an mfn byte: valid entry, wrong checksum
    bad = bad[: secs[k + 1].end - 4]  # the next section ends early
    want = _outcome(decode_lu, bad)
    assert want is not None and want[0] == "ChecksumError"
    assert _outcome(functools.partial(_overlapped, pool), bad) == want


def test_the_same_errors_on_the_invalid_vectors(pool: ThreadPoolExecutor) -> None:
    data = _host()
    mv = memoryview(data)
    heads = [off for _, off, t, _ in frames(mv, 0, len(mv), 0) if t == T.LU_P2M]
    cases = [
        _flip(data, heads[0] + 16 + 22),  # a reserved byte, checksum not resealed
        _flip(data, len(data) - 20),  # the last section's crc32c
        data[:-9],
        *(v.data for v in INVALID),
    ]
    for case in cases:
        assert _outcome(functools.partial(_overlapped, pool), case) == _outcome(decode_lu, case)


_POOL: list[ThreadPoolExecutor] = []


@settings(max_examples=100, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from([0, 1, 7, 0x40, 0xFF])),
        min_size=1,
        max_size=3,
    ),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_mutated_streams_same_error_as_decode_lu(
    edits: list[tuple[float, int]], cut: float | None
) -> None:
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(2))
    buf = bytearray(_host())
    for where, value in edits:
        buf[int(where * len(buf))] = value
    mutated = bytes(buf) if cut is None else bytes(buf[: int(cut * len(buf))])
    old = lu_walk.CRC_JOB_MIN_BYTES
    lu_walk.CRC_JOB_MIN_BYTES = 0
    try:
        got = _outcome(functools.partial(_overlapped, _POOL[0]), mutated)
    finally:
        lu_walk.CRC_JOB_MIN_BYTES = old
    assert got == _outcome(decode_lu, mutated)


@pytest.mark.parametrize("threads_from", [0, 1 << 40])
def test_cli_check_with_and_without_the_worker(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    threads_from: int,
) -> None:
    """``xenlu check`` with the overlapped walk (every input "large") and
    without it: the same output, exit codes and error lines."""
    monkeypatch.setattr(cli_io, "THREADS_FROM_BYTES", threads_from)
    monkeypatch.setattr(lu_walk, "CRC_JOB_MIN_BYTES", 0)
    data = _host()
    good = tmp_path / "good.lu"
    good.write_bytes(data)
    assert main(["check", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: OK (lu): 0 errors, 0 warnings\n"
    assert main(["check", "--json", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["report"] == validate(decode_lu(data)).to_json()
    bad = tmp_path / "bad.lu"
    bad.write_bytes(_flip(data, scan_lu(data)[1].end + 12))
    assert main(["check", "--json", str(bad)]) == 1
    cap = capsys.readouterr()
    assert json.loads(cap.out)["valid"] is False and len(cap.err.splitlines()) == 1
    assert main(["verify", "--json", str(bad)]) == 1
    verify_out = capsys.readouterr()
    assert json.loads(verify_out.out)["error"] == json.loads(cap.out)["error"]
    assert "crc32c" in json.loads(cap.out)["error"]["message"]


@pytest.mark.parametrize("layout", ["as installed", "unexpected"])
def test_crc32c_without_the_package_init(monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    """The crc32c extension is loaded on its own (no importlib.metadata at
    start-up); a package laid out otherwise gets the plain import. The same
    function either way."""
    import importlib.util
    import subprocess
    import sys

    import crc32c as pkg

    from xenlu.core.framing import _load_crc32c

    if layout == "unexpected":
        monkeypatch.setattr(importlib.util, "find_spec", lambda _name: None)
    fn = _load_crc32c()
    for data in (b"", b"123456789", bytes(range(256)) * 9):
        assert fn(data) == pkg.crc32c(data)
        assert fn(data, 0x1234) == pkg.crc32c(data, 0x1234)
    code = (
        "import sys; from xenlu.core.framing import crc32c; crc32c(b'x'); "
        "print('importlib.metadata' in sys.modules, 'crc32c' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
