"""``xenlu verify --tee --stop-on-error`` where the faulty record is larger
than the buffer, and the read-ahead thread that feeds the decoder (issue 18).

A record no larger than the buffer is held back until it is checked: the
copy stops exactly at its start. A record larger than the buffer is held
back up to the buffer, then forwarded a checked piece at a time while it is
clean: when it turns out faulty the copy stops after its last clean piece,
never after its faulty entry.
"""

from __future__ import annotations

import io
import os
import re
import threading
from pathlib import Path
from typing import IO, cast

import pytest

import xenlu
from xenlu.cli.stream import _run, _Tee
from xenlu.core.errors import DecodeError, InputError
from xenlu.feed.decoder import Decoder, RecordEvent, read_ahead
from xenlu.lu.records import T
from xenlu.testing.hostgen import make_host


class Trickle(io.RawIOBase):
    """A pipe that hands over at most ``step`` bytes per read."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self.step, len(self.data) - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def _stream() -> tuple[bytes, RecordEvent]:
    """A small LU stream and its LU_PAGE_OWNERSHIP record (2 KiB, 128 entries)."""
    data = xenlu.encode(make_host((4, 11), n_hvm=1, mem_mib=2, dom0_mem_mib=2))
    d = Decoder("lu")
    d.feed(data)
    d.close()
    while True:
        ev = d.next_event()
        if isinstance(ev, RecordEvent) and ev.type == T.LU_PAGE_OWNERSHIP:
            return data, ev


def _faulty(data: bytes, rec: RecordEvent) -> tuple[bytes, DecodeError]:
    """``data`` with one bit flipped in the second half of ``rec``'s entries,
    where the mapped verifier finds a fault of that record."""
    body = rec.offset + 16  # header, count header
    for at in range(body + (rec.length - 8) * 3 // 4, rec.offset + 8 + rec.length):
        for bit in range(8):
            bad = bytearray(data)
            bad[at] ^= 1 << bit
            try:
                xenlu.verify(bytes(bad))
            except DecodeError as exc:
                if exc.record_index == rec.index:
                    return bytes(bad), exc
    raise AssertionError("no fault found in the record")  # pragma: no cover


def _tee(data: bytes, limit: int, step: int) -> tuple[bytes, Exception | None]:
    sink = io.BytesIO()
    fmt, err = _run(cast(IO[bytes], Trickle(data, step)), "lu", _Tee(sink, "out"), True, limit)
    assert fmt == "lu"
    return sink.getvalue(), err


def test_stop_on_error_in_a_record_larger_than_the_buffer() -> None:
    data, rec = _stream()
    bad, want = _faulty(data, rec)
    assert want.offset is not None and want.offset > rec.offset + rec.length // 2
    # Larger than the buffer (64 bytes): forwarded while clean, stopped in it.
    got, err = _tee(bad, 64, 48)
    assert isinstance(err, DecodeError) and str(err) == str(want)
    assert bad.startswith(got)
    assert rec.offset < len(got) <= want.offset  # never past the faulty entry
    assert len(got) >= rec.offset + 8 + rec.length // 2 - 64  # the clean part went on
    # No larger than the buffer: held back whole, stopped exactly at its start.
    for step in (48, 1 << 20):
        got, err = _tee(bad, 1 << 16, step)
        assert str(err) == str(want) and got == bad[: rec.offset]
    # A good stream goes through whole, in pieces of any size.
    for limit, step in ((64, 1), (64, 48), (1 << 16, 1000)):
        got, err = _tee(data, limit, step)
        assert err is None and got == data


def test_read_ahead_hands_over_what_a_paused_pipe_has() -> None:
    """A pipe that pauses mid-record: the piece read so far is handed over
    (a migration's sender may wait for its receiver) — no deadlock."""
    r, w = os.pipe()
    got: list[bytes] = []
    with open(r, "rb", buffering=0) as src, open(w, "wb", buffering=0) as dst:
        dst.write(b"a" * 100)
        it = read_ahead(src, 1 << 16)
        got.append(bytes(next(it)))  # handed over while the writer is still open
        assert got == [b"a" * 100]

        def finish() -> None:
            dst.write(b"b" * 10)
            dst.close()

        t = threading.Thread(target=finish)
        t.start()
        got += [bytes(p) for p in it]
        t.join()
    assert b"".join(got) == b"a" * 100 + b"b" * 10


def test_read_ahead_errors_and_sizes() -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b: memoryview) -> int:  # type: ignore[override]
            raise OSError(5, "Input/output error")

    with pytest.raises(InputError, match="Input/output error"):
        list(read_ahead(Broken()))
    with pytest.raises(xenlu.core.errors.CallerError):
        list(read_ahead(io.BytesIO(b"x"), 0))
    data = bytes(range(256)) * 41
    assert b"".join(bytes(p) for p in read_ahead(Trickle(data, 7), 100, 2)) == data
    assert [len(p) for p in read_ahead(io.BytesIO(data), 4096)] == [4096, 4096, 2304]


def test_verify_v_of_a_pipe_lists_what_the_file_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``verify -v -`` lists the records as they flow: the same lines (and
    JSON object) as ``verify -v FILE``, for every corpus stream, valid or not
    (a faulty stream: the same error; the pipe lists the records before it)."""
    from tests.test_cli_contract import TEE_CORPUS, _stdin
    from xenlu.cli.app import main

    root = Path(__file__).resolve().parent
    extra = sorted(root.glob("golden/xenstore/*.xs")) + sorted(
        root.glob("vectors/xen-written/*.bin")
    )
    cases = [(n, d) for n, d, _ in TEE_CORPUS] + [(p.name, p.read_bytes()) for p in extra]
    f = tmp_path / "stream.bin"
    valid = 0
    for name, data in cases:
        f.write_bytes(data)
        for opts in (["--json"], []):
            rc = main(["verify", "-v", *opts, str(f)])
            want = capsys.readouterr()
            _stdin(monkeypatch, data)
            assert main(["verify", "-v", *opts, "-"]) == rc, name
            got = capsys.readouterr()
            assert got.err == want.err.replace(str(f), "-"), name
            if rc == 0:
                assert got.out == want.out.replace(str(f), "-"), name
                valid += 1
            elif opts:
                assert got.out == want.out.replace(str(f), "-"), name
            else:
                # The file lists nothing of a faulty stream; the pipe the
                # records before the fault, in order.
                assert want.out == "", name
                offs = [int(o, 16) for o in re.findall(r"^#\d+ @(0x[0-9a-f]+) ", got.out, re.M)]
                assert len(offs) == got.out.count("\n") and offs == sorted(offs), name
                at = re.search(r"offset (0x[0-9a-f]+)", got.err)
                assert at is None or all(o < int(at.group(1), 16) for o in offs), name
    assert valid > 50


def test_convert_of_a_pipe_over_the_limit_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """convert needs the whole stream: a pipe is read whole up to PIPE_LIMIT,
    refused (exit 1, one line) beyond it; under it, the file's conversion."""
    import xenlu.cli.convert
    from tests.test_cli_contract import _stdin
    from xenlu.cli.app import main

    data = xenlu.encode(make_host((4, 11), n_hvm=1, mem_mib=2, dom0_mem_mib=2))
    out = tmp_path / "out.lu"
    _stdin(monkeypatch, data)
    assert main(["convert", "-q", "--to", "4.15", "-", str(out)]) == 0
    by_pipe = out.read_bytes()
    assert main(["convert", "-q", "--to", "4.15", str(tmp_path / "in.lu"), str(out)]) != 0
    (tmp_path / "in.lu").write_bytes(data)
    assert main(["convert", "-q", "--to", "4.15", str(tmp_path / "in.lu"), str(out)]) == 0
    assert out.read_bytes() == by_pipe
    capsys.readouterr()
    monkeypatch.setattr(xenlu.cli.convert, "PIPE_LIMIT", len(data) - 1)
    _stdin(monkeypatch, data + bytes(1 << 20))
    assert main(["convert", "--to", "4.15", "-", str(tmp_path / "big.lu")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused: standard input is not a regular file" in err
    assert "save it to a file first" in err and not (tmp_path / "big.lu").exists()


def test_stop_on_error_in_a_xenstored_stream_stops_at_the_faulty_record() -> None:
    """xenstored streams are read record by record too: --stop-on-error
    forwards the records before the faulty one, byte for byte."""
    import struct

    from xenlu.xenstore.stream import frame_at

    root = Path(__file__).resolve().parent
    seen = 0
    for p in sorted((root / "golden" / "xenstore").glob("*.xs")):
        data = p.read_bytes()
        for at in range(0, len(data), 3):
            bad = bytearray(data)
            bad[at] ^= 0x41
            try:
                xenlu.verify(bytes(bad), "xenstore")
                continue
            except DecodeError as exc:
                want = exc
            if want.offset is not None and want.offset < 16:
                stop = 0  # the header
            else:
                assert want.record_index is not None
                unpack = struct.Struct(">II" if bad[15] & 1 else "<II").unpack_from
                stop = 16
                for i in range(want.record_index):
                    stop = frame_at(memoryview(bytes(bad)), stop, len(bad), i, unpack)[2]
            for step in (1, 5, 1 << 20):
                sink = io.BytesIO()
                _, err = _run(
                    cast(IO[bytes], Trickle(bytes(bad), step)),
                    "xenstore",
                    _Tee(sink, "out"),
                    True,
                    1 << 16,
                )
                assert str(err) == str(want), (p.name, at)
                assert sink.getvalue() == bytes(bad[:stop]), (p.name, at, step)
            seen += 1
    assert seen > 20
