"""The top-level contract: xenlu.decode / encode / encode_to / verify."""

from __future__ import annotations

import errno
import io
import mmap
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import xenlu
from tests.vectors.libxc_vectors import VECTORS
from xenlu.api import FORMAT_TABLE, describe_head, expect_format, format_of, sniff
from xenlu.core.epochs import as_epoch, as_version
from xenlu.host.compat import convert, steps_between
from xenlu.lu.stream import LUStream
from xenlu.testing import strategies as xs
from xenlu.testing.hostgen import make_host
from xenlu.tools.schema import epoch_schema

HOST = make_host((4, 16), n_hvm=2, mem_mib=2, dom0_mem_mib=2)
DATA = xenlu.encode(HOST)


def test_decode_accepts_bytes_memoryview_mmap_and_path(tmp_path: Path) -> None:
    path = tmp_path / "host.lu"
    path.write_bytes(DATA)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        from_mmap = xenlu.decode(m)
        assert from_mmap == HOST
        del from_mmap  # release the views before the map closes
    for data in (DATA, bytearray(DATA), memoryview(DATA), path, str(path)):
        s = xenlu.decode(data)
        assert isinstance(s, LUStream) and s == HOST


def test_explicit_formats_and_detection() -> None:
    assert xenlu.detect_format(DATA) == "lu"
    assert xenlu.decode(DATA, format="lu") == HOST
    assert xenlu.verify(DATA) == "lu"
    for vec in VECTORS:
        if vec.error is None:
            assert xenlu.detect_format(vec.data) == vec.format, vec.name
            stream = xenlu.decode(vec.data)
            assert xenlu.encode(stream) == vec.data, vec.name


def test_encode_to_a_sink() -> None:
    sink = io.BytesIO()
    assert xenlu.encode_to(HOST, sink) == len(DATA)
    assert sink.getvalue() == DATA


def test_bad_input_is_a_typed_error() -> None:
    with pytest.raises(xenlu.FramingError) as ei:
        xenlu.decode(b"not a stream at all")
    assert ei.value.offset == 0
    with pytest.raises(xenlu.FramingError):
        xenlu.decode(b"")
    with pytest.raises(xenlu.CallerError):
        xenlu.decode(DATA, format="nope")
    with pytest.raises(xenlu.CallerError):
        xenlu.decode(12345)
    with pytest.raises(xenlu.CallerError):
        xenlu.encode(object())
    with pytest.raises(xenlu.DecodeError):
        xenlu.decode(DATA, format="libxc")


# --- epochs: one set of spellings everywhere (issue 11) --------------------------------

EPOCH_TAKERS = {
    "make_host": lambda e: make_host(e, n_hvm=0, mem_mib=1, dom0_mem_mib=1).epoch,
    "epoch_schema": lambda e: epoch_schema(e)["epoch"],
    "convert": lambda e: convert(HOST, e)[0].xen_version,
    "steps_between": lambda e: [s.name for s in steps_between(e, (4, 11))],
    "xs.supported_versions": lambda e: xs.supported_versions(e),
    "xs.record_names": lambda e: len(xs.record_names(e)),
    "as_epoch": as_epoch,
}


@pytest.mark.parametrize("name", sorted(EPOCH_TAKERS))
def test_every_epoch_taker_accepts_the_same_spellings(name: str) -> None:
    take = EPOCH_TAKERS[name]
    want = take((4, 15))
    assert take("4.15") == want
    assert take(" 4.15 ") == want
    assert take([4, 15]) == want
    assert take((np.int64(4), np.uint8(15))) == want  # numpy integers are integers
    for bad in ("4", "latest", "4.15.1", "v4.15", 4.15, 415, (4,), (4, 15, 0), (True, 15), b"4.15"):
        with pytest.raises(xenlu.CallerError) as ei:
            take(bad)
        msg = str(ei.value)
        assert "'4.15' or (4, 15)" in msg and "4.11, 4.12" in msg and "4.21" in msg, msg
    for outside in ("5.0", (4, 10), (4, 22), "4.22"):
        with pytest.raises(xenlu.CallerError, match=r"outside the supported range.*epochs 4\.11"):
            take(outside)


def test_strategies_take_epoch_spellings() -> None:
    from hypothesis import HealthCheck, given, settings

    seen: list[tuple[int, int]] = []

    @settings(max_examples=2, database=None, suppress_health_check=list(HealthCheck))
    @given(xs.hosts("4.15", max_domains=1), xs.hosts((4, 18), max_domains=1))
    def run(a: LUStream, b: LUStream) -> None:
        seen.extend([a.epoch, b.epoch])

    run()
    assert set(seen) == {(4, 15), (4, 17)}
    with pytest.raises(xenlu.CallerError, match="known epochs"):
        xs.hosts(4.15)
    with pytest.raises(xenlu.CallerError, match="known epochs"):
        xs.records("LU_EVTCHNS", "four")
    with pytest.raises(xenlu.CallerError, match="known epochs"):
        xs.streams("latest")


def test_float_epoch_says_why() -> None:
    with pytest.raises(xenlu.CallerError, match=r"cannot tell 4\.1 from 4\.10"):
        as_version(4.1)


# --- inputs: paths, pipes, FIFOs, file objects, views (issue 11) ---------------------------


def test_decode_accepts_file_objects(tmp_path: Path) -> None:
    path = tmp_path / "host.lu"
    path.write_bytes(DATA)
    with path.open("rb") as f:
        assert xenlu.decode(f) == HOST
    with path.open("rb", buffering=0) as f:
        assert xenlu.verify(f) == "lu"
    assert xenlu.decode(io.BytesIO(DATA)) == HOST
    # From the file object's position (a header already read by the caller).
    (tmp_path / "prefixed").write_bytes(b"HDR:" + DATA)
    with (tmp_path / "prefixed").open("rb") as f:
        assert f.read(4) == b"HDR:"
        assert xenlu.decode(f) == HOST


def test_pipes_fifos_and_dev_stdin_are_read_as_streams(tmp_path: Path) -> None:
    # Their st_size is 0: they must never be taken for empty files.
    r, w = os.pipe()
    with os.fdopen(r, "rb") as rf:
        t = threading.Thread(target=lambda: (os.write(w, DATA), os.close(w)))
        t.start()
        assert xenlu.verify(rf) == "lu"
        t.join()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as f:
            f.write(DATA)

    t = threading.Thread(target=feed)
    t.start()
    assert xenlu.decode(fifo) == HOST
    t.join()
    # /dev/stdin given as a path, stdin a pipe (as in `cat f | xenlu verify /dev/stdin`).
    code = "import xenlu; print(xenlu.verify('/dev/stdin'))"
    out = subprocess.run(
        [sys.executable, "-c", code], input=DATA, capture_output=True, check=True
    ).stdout
    assert out.split() == [b"lu"]
    # A character device: /dev/null reads as an empty stream (not an OSError).
    with pytest.raises(xenlu.FramingError, match="empty input"):
        xenlu.decode("/dev/null")


def test_unreadable_inputs_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(xenlu.InputError) as ei:
        xenlu.decode(tmp_path / "absent.lu")
    assert ei.value.errno == errno.ENOENT and ei.value.filename == str(tmp_path / "absent.lu")
    assert isinstance(ei.value.__cause__, FileNotFoundError)
    assert isinstance(ei.value, xenlu.CallerError)  # what it always was
    with pytest.raises(xenlu.InputError, match="Is a directory") as ei:
        xenlu.verify(tmp_path)
    assert ei.value.errno == errno.EISDIR
    with (tmp_path / "x").open("w") as text:
        text.write("hello")
    with (tmp_path / "x").open() as text, pytest.raises(xenlu.InputError, match="text mode"):
        xenlu.decode(text)
    f = (tmp_path / "x").open("rb")
    f.close()
    with pytest.raises(xenlu.InputError, match="closed file"):
        xenlu.decode(f)
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked"
        locked.write_bytes(DATA)
        locked.chmod(0)
        with pytest.raises(xenlu.InputError) as ei:
            xenlu.decode(locked)
        assert ei.value.errno == errno.EACCES


def test_views_and_paths_xenlu_cannot_take_are_caller_errors() -> None:
    with pytest.raises(xenlu.CallerError, match="non-contiguous"):
        xenlu.decode(memoryview(DATA)[::2])
    with pytest.raises(xenlu.CallerError, match="non-contiguous"):
        xenlu.verify(np.frombuffer(DATA, np.uint8)[::2])
    with pytest.raises(xenlu.CallerError, match="NUL"):
        xenlu.decode("a\0b.lu")
    with pytest.raises(xenlu.CallerError, match="NUL"):
        xenlu.verify(Path("x\0"))
    # A contiguous numpy array or a 2-D view is viewed as bytes.
    assert xenlu.decode(np.frombuffer(DATA, np.uint8)) == HOST
    assert xenlu.verify(memoryview(DATA).cast("B", (len(DATA) // 8, 8))) == "lu"


# --- wrong formats: say what the input looks like (issue 11) -------------------------------

PNG = bytes.fromhex("89504e470d0a1a0a0000000d494844520000000100000001")
SAMPLES: dict[str, bytes] = {"lu": DATA}
for _v in VECTORS:
    if _v.error is None:
        SAMPLES.setdefault(_v.format, _v.data)
LOOKS = {
    "lu": "looks like an LU stream",
    "libxc": "looks like a libxc migration stream",
    "libxl": "looks like a libxl stream",
    "xl": "looks like an xl save file",
    "png": "unrecognised: first bytes 89504e470d0a1a0a",
    "random": "unrecognised: first bytes 5eed5eed5eed5eed",
    "empty": "empty input",
    "gzip": "looks like a gzip-compressed file (decompress it first)",
}
TITLES = {
    "lu": "not an LU stream",
    "libxc": "not a libxc migration stream",
    "libxl": "not a libxl stream",
    "xl": "not an xl save file",
}


@pytest.mark.parametrize("want", sorted(TITLES))
def test_wrong_format_says_what_the_input_looks_like(want: str) -> None:
    assert set(SAMPLES) == set(TITLES)
    inputs = {
        **SAMPLES,
        "png": PNG,
        "random": bytes.fromhex("5eed5eed5eed5eed") * 8,
        "empty": b"",
        "gzip": b"\x1f\x8b\x08\x00" + bytes(28),
    }
    for name, data in inputs.items():
        if name == want:
            assert xenlu.verify(data, want) == want
            continue
        for fn in (xenlu.decode, xenlu.verify):
            with pytest.raises(xenlu.FramingError) as ei:
                fn(data, want)
            assert str(ei.value) == f"offset 0x0: {TITLES[want]}: {LOOKS[name]}", name
            assert ei.value.offset == 0


def test_damaged_lu_stream_still_gets_its_located_error() -> None:
    # A stream that starts with another LU record is LU, damaged: the decoder
    # names the rule (GrammarError at record 0), not "not an LU stream".
    from xenlu.lu.stream import decode_lu

    second = 8 + int.from_bytes(DATA[4:8], "little")
    second += -second & 7
    with pytest.raises(xenlu.GrammarError) as ei:
        xenlu.decode(DATA[second:], "lu")
    with pytest.raises(xenlu.GrammarError) as direct:
        decode_lu(DATA[second:])
    assert str(ei.value) == str(direct.value)


def test_detect_format_on_unknown_input() -> None:
    for data, looks in ((PNG, LOOKS["png"]), (b"", "empty input")):
        with pytest.raises(xenlu.FramingError) as ei:
            xenlu.detect_format(data)
        assert str(ei.value) == (
            f"offset 0x0: not a stream xenlu knows (LU, libxc, libxl, xl): {looks}"
        )
    assert sniff(PNG) is None and describe_head(PNG) == LOOKS["png"]
    for fmt, data in SAMPLES.items():
        assert sniff(data) == fmt == xenlu.detect_format(data)


# --- the format table and encode_to sinks (issue 11) ----------------------------------------


def test_format_table_drives_decode_verify_encode_and_format_of() -> None:
    assert tuple(xenlu.FORMATS) == ("auto", *FORMAT_TABLE)
    for fmt, data in SAMPLES.items():
        entry = FORMAT_TABLE[fmt]
        stream = xenlu.decode(data, fmt)
        assert type(stream) is entry.stream_type()
        assert format_of(stream) == fmt
        assert xenlu.encode(stream) == data
        sink = io.BytesIO()
        assert xenlu.encode_to(stream, sink) == len(data) and sink.getvalue() == data
    with pytest.raises(xenlu.CallerError, match="not a stream xenlu encodes: dict"):
        format_of({})


def test_encode_to_refuses_what_it_cannot_write_to(tmp_path: Path) -> None:
    target = tmp_path / "out.lu"
    for path in (str(target), target):
        with pytest.raises(xenlu.CallerError, match='open\\(path, "wb"\\)'):
            xenlu.encode_to(HOST, path)
    assert not target.exists()
    with pytest.raises(xenlu.CallerError, match="write"):
        xenlu.encode_to(HOST, object())
    with target.open("w") as text, pytest.raises(xenlu.CallerError, match="text mode"):
        xenlu.encode_to(HOST, text)
    target.write_bytes(b"")
    with target.open("rb") as ro, pytest.raises(xenlu.CallerError, match="cannot write"):
        xenlu.encode_to(HOST, ro)
    with pytest.raises(xenlu.CallerError, match="not a stream xenlu encodes"):
        xenlu.encode_to({"not": "a stream"}, io.BytesIO())
    with pytest.raises(xenlu.CallerError, match="no options apply"):
        xenlu.encode_to(xenlu.decode(SAMPLES["libxc"]), io.BytesIO(), max_record_bytes=64)
    with pytest.raises(xenlu.CallerError, match="unexpected keyword"):
        xenlu.encode_to(HOST, io.BytesIO(), nonsense=1)
    # The documented way to a path.
    with target.open("wb") as f:
        assert xenlu.encode_to(HOST, f) == len(DATA)
    assert target.read_bytes() == DATA


def test_lu_only_functions_refuse_other_streams() -> None:
    xl = xenlu.decode(SAMPLES["xl"])
    with pytest.raises(
        xenlu.CallerError, match=r"^convert needs an LU stream, got an xl save file"
    ):
        convert(xl, "4.15")
    from xenlu.host.restore_plan import plan
    from xenlu.host.validation import validate

    for fn, name in ((validate, "validate"), (plan, "plan")):
        with pytest.raises(xenlu.CallerError, match=rf"^{name} needs an LU stream, got an xl"):
            fn(xl)
    with pytest.raises(xenlu.CallerError, match="decode the bytes first"):
        expect_format(DATA, "lu", "convert")
    expect_format(HOST, "lu", "convert")


# --- record reprs: type codes in hex with their name (issue 11) ------------------------------


def test_record_reprs_show_type_codes_in_hex_with_the_name() -> None:
    from xenlu.core.registry import OPTIONAL, Record, UnknownRecord

    first = HOST.global_section.records[0]
    assert repr(first).startswith("Record(type=0x40000000 (LU_VERSION), value=LuVersion(")
    assert "type=0x40000010 (LU_DOMAIN)" in repr(HOST.domains[0].records[0])
    libxl = xenlu.decode(SAMPLES["libxl"])
    # libxl record 1 is LIBXC_CONTEXT, not libxc's PAGE_DATA: the value decides.
    assert repr(libxl.records[0]).startswith("Record(type=0x00000001 (LIBXC_CONTEXT), ")
    with_pages = next(
        s
        for s in (xenlu.decode(v.data) for v in VECTORS if v.error is None and v.format == "libxc")
        if any(r.type == 1 for r in s.records)
    )
    assert "Record(type=0x00000001 (PAGE_DATA), value=PageData(" in repr(with_pages)
    unknown = UnknownRecord(OPTIONAL | 0x1234, bytes(range(20)))
    assert repr(Record(unknown.type, unknown)) == (
        "Record(type=0x80001234 (optional), value=UnknownRecord(type=0x80001234 (optional), "
        "body=<20 bytes: 000102030405060708090a0b0c0d0e0f...>))"
    )
    assert repr(UnknownRecord(0x77, b"")) == "UnknownRecord(type=0x00000077, body=<0 bytes: >)"


def test_lu_only_commands_name_what_they_were_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command line asks xenlu.decode for "lu", so it gets the same message.
    from xenlu.cli.app import main

    xl = tmp_path / "saved.xl"
    xl.write_bytes(SAMPLES["xl"])
    for argv in (
        ["convert", "--to", "4.15", str(xl), str(tmp_path / "out.lu")],
        ["verify", "--format", "lu", str(xl)],
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not an LU stream: looks like an xl save file" in err
    assert not (tmp_path / "out.lu").exists()


def test_format_of_a_stream_whose_format_module_is_not_loaded_yet() -> None:
    """A stream built from the model classes (the incremental decoder does)
    is recognised in a fresh process, before its format's module is imported."""
    import subprocess
    import sys

    code = (
        "import sys, xenlu.lu.model as m\n"
        "assert 'xenlu.lu.stream' not in sys.modules\n"
        "from xenlu.api import format_of\n"
        "print(format_of(m.LUStream.__new__(m.LUStream)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "lu"
