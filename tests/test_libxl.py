"""libxl streams and xl save files (xenlu.migration.libxl)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tests.vectors.libxc_vectors as V
from xenlu.core.errors import (
    DecodeError,
    EncodeError,
    FramingError,
    GrammarError,
    RecordError,
    UnknownRecordError,
    VersionError,
)
from xenlu.core.registry import LIBXL, Record, UnknownRecord
from xenlu.migration.libxc import Checkpoint, End, PageData, RecType, StaticDataEnd, X86TscInfo
from xenlu.migration.libxc_stream import (
    DomainHeader,
    ImageHeader,
    LibxcStream,
    decode_libxc,
    libxc_bytes,
)
from xenlu.migration.libxl import (
    XL_MAGIC,
    CheckpointEnd,
    CheckpointState,
    EmulatorContext,
    EmulatorXenstoreData,
    LibxcContext,
    LibxlHeader,
    LibxlStream,
    LibxlType,
    XlFile,
    decode_libxl,
    decode_xl,
    libxl_bytes,
    xl_bytes,
    xl_optional_data,
)

L = LibxlType
R = RecType


def libxc(records: list[Record] | None = None) -> LibxcStream:
    """An HVM v3 libxc stream (default: STATIC_DATA_END, END)."""
    if records is None:
        records = [Record(R.STATIC_DATA_END, StaticDataEnd()), Record(R.END, End())]
    return LibxcStream(
        ImageHeader(version=3),
        DomainHeader(type=2, page_shift=12, xen_major=4, xen_minor=17),
        records,
    )


def full_libxl() -> LibxlStream:
    return LibxlStream(
        LibxlHeader(options=2),
        [
            Record(L.LIBXC_CONTEXT, LibxcContext(libxc())),
            Record(
                L.EMULATOR_XENSTORE_DATA,
                EmulatorXenstoreData(2, 0, ((b"physmap/1/size", b"800000"), (b"k", b""))),
            ),
            Record(L.EMULATOR_CONTEXT, EmulatorContext(2, 0, b"QEVM" + bytes(13))),
            Record(L.EMULATOR_CONTEXT, EmulatorContext(0, 1, b"")),
            Record(L.END, End()),
        ],
    )


def checkpointed() -> LibxlStream:
    """libxc stops at CHECKPOINT twice; libxl records; libxc resumes after CHECKPOINT_END."""
    tsc = X86TscInfo(mode=0, khz=1, nsec=2, incarnation=3)
    first = libxc(
        [
            Record(R.STATIC_DATA_END, StaticDataEnd()),
            Record(R.X86_TSC_INFO, tsc),
            Record(R.CHECKPOINT, Checkpoint()),
        ]
    )

    def batch(*recs: Record) -> LibxcStream:
        return LibxcStream(first.header, first.domain, list(recs))

    return LibxlStream(
        LibxlHeader(),
        [
            Record(L.LIBXC_CONTEXT, LibxcContext(first)),
            Record(L.EMULATOR_CONTEXT, EmulatorContext(2, 0, b"qemu state 1")),
            Record(
                L.CHECKPOINT_END,
                CheckpointEnd(
                    batch(Record(R.X86_TSC_INFO, tsc), Record(R.CHECKPOINT, Checkpoint()))
                ),
            ),
            Record(L.EMULATOR_CONTEXT, EmulatorContext(2, 0, b"qemu state 2")),
            Record(L.CHECKPOINT_END, CheckpointEnd(batch(Record(R.END, End())))),
            Record(L.EMULATOR_XENSTORE_DATA, EmulatorXenstoreData(2, 0, ((b"k", b"v"),))),
            Record(L.END, End()),
        ],
    )


def outcome(fn: Callable[[], Any]) -> tuple[str, int | None, str | None] | None:
    try:
        fn()
    except DecodeError as exc:
        return (type(exc).__name__, exc.offset, exc.field)
    return None


# --- registry ------------------------------------------------------------------------


def test_libxl_registry_names() -> None:
    assert {s.type: s.name for s in LIBXL} == {
        0: "END",
        1: "LIBXC_CONTEXT",
        2: "EMULATOR_XENSTORE_DATA",
        3: "EMULATOR_CONTEXT",
        4: "CHECKPOINT_END",
        5: "CHECKPOINT_STATE",
    }


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("make", [full_libxl, checkpointed], ids=["full", "checkpointed"])
def test_libxl_round_trip(make: Callable[[], LibxlStream]) -> None:
    s = make()
    data = libxl_bytes(s)
    back = decode_libxl(data)
    assert back == s
    assert libxl_bytes(back) == data
    assert back.libxc == s.libxc


def test_libxl_bytes_round_trip_of_vector_streams() -> None:
    for parts in (V.libxl_parts(V.hvm_parts()), V.libxl_parts(V.pv_parts(2), emu=False)):
        data = V.build(parts).data
        assert libxl_bytes(decode_libxl(data)) == data


def test_libxl_record_indices_are_shared_with_libxc() -> None:
    s = decode_libxl(libxl_bytes(checkpointed()))
    inner = s.records[0].value.stream
    assert s.records[0].offset == 16
    assert inner.records[0].offset == 16 + 8 + 40
    # LIBXC_CONTEXT #0, libxc #1-#3, EMULATOR_CONTEXT #4, CHECKPOINT_END #5, libxc #6-#7 ...
    b = V.build(V.libxl_parts(V.before(V.hvm_parts(), "end", ("x", V.rec(0x13))), emu=False))
    with pytest.raises(UnknownRecordError) as e:
        decode_libxl(b.data)
    n_libxc = len(decode_libxc(V.build(V.hvm_parts()).data)[0].records)
    assert e.value.record_index == 1 + n_libxc - 1
    assert e.value.offset == b.at["x"]


def test_checkpointed_batches() -> None:
    s = decode_libxl(libxl_bytes(checkpointed()))
    ends = [r.value for r in s.records if r.type == L.CHECKPOINT_END]
    assert [[r.name for r in e.libxc.records] if e.libxc else None for e in ends] == [
        ["X86_TSC_INFO", "CHECKPOINT"],
        ["END"],
    ]


def test_libxl_grammar() -> None:
    s = full_libxl()
    s.records.insert(1, s.records[0])
    data = libxl_bytes(s)
    with pytest.raises(GrammarError) as e:
        decode_libxl(data)
    second = 16 + 8 + len(libxc_bytes(libxc()))
    assert (e.value.offset, e.value.field) == (second, "type")
    # END while the libxc stream stands at a CHECKPOINT: its END is missing.
    c = checkpointed()
    c.records = [c.records[0], Record(L.END, End())]
    with pytest.raises(GrammarError):
        decode_libxl(libxl_bytes(c))


def test_xenstore_data_pairs() -> None:
    spec = LIBXL.by_name("EMULATOR_XENSTORE_DATA")
    body = struct.pack("<II", 2, 1) + b"a\0b\0c\0\0"
    from xenlu.core.registry import Ctx

    v = spec.decode(memoryview(body), Ctx(0, 2, 8, len(body)))
    assert v == EmulatorXenstoreData(2, 1, ((b"a", b"b"), (b"c", b"")))
    assert b"".join(bytes(p) for p in spec.encode(v)) == body
    empty = spec.decode(memoryview(body[:8]), Ctx(0, 2, 8, 8))
    assert empty.pairs == ()
    for bad in (
        EmulatorXenstoreData(2, 0, ((b"a\0", b"b"),)),
        EmulatorXenstoreData(2, 0, ((b"a", "b"),)),  # type: ignore[arg-type]
        EmulatorXenstoreData(7, 0, ()),
    ):
        with pytest.raises(EncodeError):
            spec.encode(bad)
    with pytest.raises(RecordError) as e:
        spec.decode(memoryview(struct.pack("<II", 2, 1) + b"\0"), Ctx(0, 2, 8, 9))
    assert (e.value.offset, e.value.field) == (16, "data")


def test_libxl_encode_errors() -> None:
    for value, rtype in (
        (libxc(), L.LIBXC_CONTEXT),
        (End(), L.CHECKPOINT_END),
        (CheckpointState(control_id=9), L.CHECKPOINT_STATE),
        (EmulatorContext(9, 0, b""), L.EMULATOR_CONTEXT),
        (CheckpointEnd(), L.END),
    ):
        with pytest.raises(EncodeError):
            libxl_bytes(LibxlStream(LibxlHeader(), [Record(rtype, value)]))
    with pytest.raises(EncodeError):
        libxl_bytes(LibxlStream(LibxlHeader(), [Record(9, End())]))


def test_libxl_header_errors() -> None:
    good = libxl_bytes(full_libxl())
    for patch, cls, off, field in (
        (b"LibxlFmT", FramingError, 0, "ident"),
        (b"LibxlFmt\0\0\0\3", VersionError, 8, "version"),
        (b"LibxlFmt\0\0\0\2\x80\0\0\0", FramingError, 12, "options"),
    ):
        data = patch + good[len(patch) :]
        with pytest.raises(cls) as e:
            decode_libxl(data)
        assert (e.value.offset, e.value.field) == (off, field)
    assert decode_libxl(good).header.legacy


def test_unknown_libxl_records_lenient() -> None:
    s = full_libxl()
    s.records.insert(2, Record(6, UnknownRecord(6, b"mandatory")))
    data = libxl_bytes(s)
    with pytest.raises(UnknownRecordError):
        decode_libxl(data)
    assert decode_libxl(data, strict=False) == s


# --- xl ----------------------------------------------------------------------------


def test_xl_round_trips() -> None:
    for f in (
        XlFile(True, 3, 0x80000000, xl_optional_data(b'{"c_info": {}}\0'), full_libxl()),
        XlFile(True, 0, 0, b"", libxc()),
        XlFile(True, 2, 0, b"", checkpointed()),
    ):
        data = xl_bytes(f)
        assert data.startswith(XL_MAGIC)
        back = decode_xl(data)
        assert back == f
        assert xl_bytes(back) == data
    assert decode_xl(xl_bytes(XlFile(True, 1, 0, xl_optional_data(b"{}"), libxc()))).json_config


def test_xl_encode_errors() -> None:
    with pytest.raises(EncodeError):
        xl_bytes(XlFile(True, 0, 0, b"", full_libxl()))
    with pytest.raises(EncodeError):
        xl_bytes(XlFile(True, 2, 0, b"", libxc()))
    with pytest.raises(EncodeError):
        xl_bytes(XlFile(True, 8, 0, b"", libxc()))


def test_xl_wrong_byteorder_round_trips_to_an_error() -> None:
    data = xl_bytes(XlFile(False, 0, 0, b"", libxc()))
    with pytest.raises(FramingError) as e:
        decode_xl(data)
    assert (e.value.offset, e.value.field) == (32, "byteorder")


def test_xl_optional_data_past_end() -> None:
    data = xl_bytes(XlFile(True, 0, 0, xl_optional_data(b"abc"), libxc()))
    bad = data[:44] + struct.pack("<I", 10**6) + data[48:]
    with pytest.raises(FramingError) as e:
        decode_xl(bad)
    assert (e.value.offset, e.value.field) == (44, "optional_data_len")
    with pytest.raises(FramingError) as e:
        decode_xl(XL_MAGIC[:10])
    assert e.value.offset == 0


# --- robustness ---------------------------------------------------------------------


def small_inputs() -> list[tuple[Callable[[bytes], Any], bytes]]:
    return [
        (decode_libxl, libxl_bytes(full_libxl())),
        (decode_libxl, libxl_bytes(checkpointed())),
        (decode_xl, xl_bytes(XlFile(True, 3, 1, xl_optional_data(b"{}"), full_libxl()))),
        (decode_xl, xl_bytes(XlFile(True, 0, 0, b"", libxc()))),
    ]


def test_every_truncation_raises_only_decode_errors() -> None:
    for dec, data in small_inputs():
        for cut in range(len(data)):
            got = outcome(lambda d=data[:cut], f=dec: f(d))
            assert got is not None and got[0] == "FramingError", (cut, got)


def test_single_byte_mutations_raise_only_decode_errors() -> None:
    for dec, data in small_inputs():
        for pos in range(len(data)):
            for xor in (0x01, 0x80, 0xFF):
                mutated = bytearray(data)
                mutated[pos] ^= xor
                outcome(lambda d=bytes(mutated), f=dec: f(d))


def test_page_data_inside_xl_is_zero_copy() -> None:
    data = V.build(V.xl_parts(V.libxl_parts(V.hvm_parts()))).data
    f = decode_xl(data)
    assert isinstance(f.stream, LibxlStream)
    inner = f.stream.libxc
    assert inner is not None
    pd = next(r.value for r in inner.records if isinstance(r.value, PageData))
    assert pd.pages.obj is data


# --- Xen's own verifier (optional) ----------------------------------------------------


def simple_libxl() -> LibxlStream:
    return LibxlStream(
        LibxlHeader(),
        [
            Record(L.LIBXC_CONTEXT, LibxcContext(libxc())),
            Record(L.EMULATOR_CONTEXT, EmulatorContext(2, 0, b"qemu")),
            Record(L.END, End()),
        ],
    )


XEN_TOOLS = Path(os.environ.get("XEN_TOOLS_PYTHON", "/work/xen-tools/tools/python"))
VERIFY = XEN_TOOLS / "scripts" / "verify-stream-v2"


@pytest.mark.skipif(not VERIFY.exists(), reason="Xen's verify-stream-v2 is not available")
@pytest.mark.parametrize(
    ("fmt", "make"),
    [
        ("libxc", lambda: libxc_bytes(libxc())),
        ("libxl", lambda: libxl_bytes(simple_libxl())),
        ("xl", lambda: xl_bytes(XlFile(True, 3, 0, xl_optional_data(b"{}"), simple_libxl()))),
        ("xl", lambda: xl_bytes(XlFile(True, 0, 0, b"", libxc()))),
    ],
)
def test_xen_verifier_accepts_our_encoding(fmt: str, make: Callable[[], bytes]) -> None:
    data = make()
    with tempfile.NamedTemporaryFile(suffix=".bin") as tmp:
        tmp.write(data)
        tmp.flush()
        env = dict(os.environ, PYTHONPATH=str(XEN_TOOLS))
        res = subprocess.run(
            [sys.executable, str(VERIFY), "-q", "-f", fmt, "-i", tmp.name],
            env=env,
            capture_output=True,
            check=False,
        )
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-2000:]


# --- Xen's C readers (issue 13; docs/xen-readers.md) ----------------------------------


def _with(records: list[Record], *, pv: bool = False) -> bytes:
    """A libxl stream of ``records`` after an HVM (or PV) guest's libxc stream."""
    inner = libxc()
    if pv:
        inner = LibxcStream(
            inner.header,
            DomainHeader(type=1, page_shift=12, xen_major=4, xen_minor=17),
            inner.records,
        )
    first = Record(L.LIBXC_CONTEXT, LibxcContext(inner))
    return libxl_bytes(LibxlStream(LibxlHeader(), [first, *records, Record(L.END, End())]))


def test_checkpoint_end_must_close_a_checkpoint() -> None:
    data = _with([Record(L.CHECKPOINT_END, CheckpointEnd())])
    with pytest.raises(GrammarError) as e:
        decode_libxl(data)
    assert (e.value.record_type, e.value.field) == (L.CHECKPOINT_END, "type")
    assert e.value.offset == len(data) - 16
    with pytest.raises(GrammarError):
        decode_libxl(data, strict=False)


def test_checkpoint_state_is_refused_in_a_stream_but_its_body_codec_stays() -> None:
    data = _with([Record(L.CHECKPOINT_STATE, CheckpointState(control_id=1))])
    with pytest.raises(GrammarError) as e:
        decode_libxl(data)
    assert (e.value.offset, e.value.field) == (len(data) - 24, "type")
    spec = LIBXL.by_name("CHECKPOINT_STATE")
    from xenlu.core.registry import Ctx

    body = struct.pack("<II", 3, 0)
    assert spec.decode(memoryview(body), Ctx(0, 5, 8, 8)) == CheckpointState(control_id=3)
    for bad, field, off in ((struct.pack("<II", 4, 0), "control_id", 8), (b"", "length", 4)):
        with pytest.raises(RecordError) as r:
            spec.decode(memoryview(bad), Ctx(0, 5, 8, len(bad)))
        assert (r.value.field, r.value.offset) == (field, off)


def test_unknown_optional_libxl_record_is_refused_unless_lenient() -> None:
    s = full_libxl()
    s.records.insert(2, Record(0x80000006, UnknownRecord(0x80000006, b"optional")))
    data = libxl_bytes(s)
    with pytest.raises(UnknownRecordError) as e:
        decode_libxl(data)
    assert (e.value.record_type, e.value.field) == (0x80000006, "type")
    assert "optional" in str(e.value)
    assert decode_libxl(data, strict=False) == s


def test_emulator_records_need_an_hvm_guest() -> None:
    for rec in (
        Record(L.EMULATOR_CONTEXT, EmulatorContext(2, 0, b"QEVM")),
        Record(L.EMULATOR_XENSTORE_DATA, EmulatorXenstoreData(2, 0, ())),
    ):
        assert decode_libxl(_with([rec])).records[1] == rec
        with pytest.raises(GrammarError) as e:
            decode_libxl(_with([rec], pv=True))
        assert e.value.record_type == rec.type


@pytest.mark.parametrize(
    ("data", "at"),
    [
        (b"\0v\0", 16),  # empty key
        (b"ok\0v\0/abs\0v\0", 21),  # absolute key
        (b"a b\0v\0", 16),  # space
        (b"k\xc3\xa9\0v\0", 16),  # non-ASCII
        (b"k.x\0v\0", 16),  # "." is not in the alphabet
    ],
)
def test_xenstore_keys_follow_the_spec(data: bytes, at: int) -> None:
    from xenlu.core.registry import Ctx

    spec = LIBXL.by_name("EMULATOR_XENSTORE_DATA")
    body = struct.pack("<II", 2, 0) + data
    with pytest.raises(RecordError) as e:
        spec.decode(memoryview(body), Ctx(0, 2, 8, len(body)))
    assert (e.value.offset, e.value.field) == (at, "data")
    key = data.split(b"\0")[::2][-2 if data.startswith(b"ok") else 0]
    with pytest.raises(EncodeError):
        spec.encode(EmulatorXenstoreData(2, 0, ((key, b"v"),)))


def test_xenstore_key_alphabet_and_free_values() -> None:
    from xenlu.core.registry import Ctx

    spec = LIBXL.by_name("EMULATOR_XENSTORE_DATA")
    value = EmulatorXenstoreData(2, 0, ((b"aZ9-/_@x", b"any text: \xff ok"),))
    body = b"".join(bytes(p) for p in spec.encode(value))
    assert spec.decode(memoryview(body), Ctx(0, 2, 8, len(body))) == value


def test_xl_optional_data_is_config_len_then_config() -> None:
    f = XlFile(True, 3, 0, xl_optional_data(b'{"x": 1}\0', b"tail"), full_libxl())
    data = xl_bytes(f)
    assert data[44:48] == struct.pack("<I", 17)  # optional_data_len
    assert data[48:52] == struct.pack("<I", 9)  # config_len
    back = decode_xl(data)
    assert back == f and back.config == b'{"x": 1}\0'
    assert xl_bytes(back) == data
    assert XlFile(True, 2, 0, b"", full_libxl()).config is None
    # What real xl save writes without a config: config_len 0.
    assert (
        decode_xl(xl_bytes(XlFile(True, 2, 0, xl_optional_data(b""), full_libxl()))).config == b""
    )


@pytest.mark.parametrize(
    ("optional", "offset", "field"),
    [
        (b"\x01\x00", 44, "optional_data_len"),  # too short for config_len
        (struct.pack("<I", 5) + b"abcd", 48, "config_len"),  # config past the optional data
        (struct.pack("<I", 2**32 - 1), 48, "config_len"),
    ],
)
def test_xl_savefile_truncated(optional: bytes, offset: int, field: str) -> None:
    head = XL_MAGIC + struct.pack("<IIII", 0x01020304, 2, 0, len(optional))
    data = head + optional + libxl_bytes(full_libxl())
    with pytest.raises(FramingError) as e:
        decode_xl(data)
    assert (e.value.offset, e.value.field) == (offset, field)
    with pytest.raises(EncodeError):
        xl_bytes(XlFile(True, 2, 0, optional, full_libxl()))
    with pytest.raises(EncodeError):
        _ = XlFile(True, 2, 0, optional, full_libxl()).config
