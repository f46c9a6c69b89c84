"""The declarative engine: everything derived from one declaration agrees."""

from __future__ import annotations

import dataclasses
import struct
from typing import ClassVar

import numpy as np
import pytest
from construct import Bytes, Int8ul, Int16ul, Int32sl, Int32ul, Int64ul
from hypothesis import given, settings
from hypothesis import strategies as st

from xenlu.core.epochs import EPOCHS
from xenlu.core.errors import EncodeError, RecordError
from xenlu.core.layout import Layout, Packed, Rsvd, fld, packed, reserved
from xenlu.core.registry import LU, Ctx
from xenlu.core.values import to_jsonable
from xenlu.lu.records import ENTRY_RULES
from xenlu.testing.strategies import entries


@packed(name="SAMPLE")
class Sample(Packed):
    a: int = fld(Int16ul, values={1: "one", 2: ("two", "4.13", None)})
    rsvd0: ClassVar[Rsvd] = reserved(Int16ul)
    flags: int = fld(Int32ul, bits={0: "x", 3: ("y", None, "4.13")})
    s: int = fld(Int32sl, lo=-1)
    n: int = fld(Int32ul, hi=10)
    raw: bytes = fld(Bytes(8))
    big: int = fld(Int64ul)


LAY: Layout = Sample.LAYOUT
VALUE = Sample(a=1, flags=9, s=-1, n=10, raw=b"abcdefgh", big=2**64 - 1)


def test_offsets_sizes_and_struct_agree_with_construct() -> None:
    assert LAY.size == 32
    assert [f.offset for f in LAY.fields] == [0, 2, 4, 8, 12, 16, 24]
    packed_bytes = VALUE.pack()
    assert len(packed_bytes) == LAY.size
    # The construct Struct derived from the same declaration builds the same bytes.
    built = LAY.construct.build(
        dict(a=1, rsvd0=0, flags=9, s=-1, n=10, raw=b"abcdefgh", big=2**64 - 1)
    )
    assert built == packed_bytes
    parsed = LAY.construct.parse(packed_bytes)
    assert parsed.big == VALUE.big and parsed.raw == VALUE.raw
    assert Sample.unpack(packed_bytes) == VALUE


def test_numpy_dtype_matches_struct() -> None:
    data = VALUE.pack() * 3
    arr = LAY.array(data, 0, 3)
    assert arr.dtype.itemsize == LAY.size
    assert list(arr["s"]) == [-1, -1, -1]
    assert int(arr["big"][0]) == 2**64 - 1
    assert not arr.flags.writeable
    assert bytes(LAY.pack_array(arr)) == data


def test_reserved_fields_are_not_dataclass_fields() -> None:
    assert "rsvd0" not in [f.name for f in dataclasses.fields(VALUE)]
    assert LAY.field("rsvd0").reserved
    assert "rsvd0" not in to_jsonable(VALUE)


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda b: b[:2] + b"\x01\x00" + b[4:], "rsvd0", "reserved field not zero"),
        (lambda b: b[:4] + b"\x02\x00\x00\x00" + b[8:], "flags", "flag bits not valid"),
        (lambda b: b"\x05\x00" + b[2:], "a", "value not valid"),
        (lambda b: b[:12] + b"\x0b\x00\x00\x00" + b[16:], "n", "value too large"),
        (lambda b: b[:8] + b"\xfe\xff\xff\xff" + b[12:], "s", "value too small"),
    ],
)
def test_checker_reports_field(mutate: object, field: str, message: str) -> None:
    raw = mutate(VALUE.pack())  # type: ignore[operator]
    v = LAY.checker((4, 11))(LAY.unpack_tuple(raw))
    assert v is not None and v.field == field and message in v.message
    # The vectorised checker finds the same violation at the same entry.
    arr = LAY.array(VALUE.pack() + raw, 0, 2)
    va = LAY.check_array(arr, (4, 11))
    assert va is not None and va.entry == 1 and va.field == field
    assert va.offset == LAY.size + LAY.field(field).offset


def test_epoch_limited_bits_and_values() -> None:
    ok11 = LAY.checker((4, 11))
    ok13 = LAY.checker((4, 13))
    bit3 = LAY.unpack_tuple(Sample(a=1, flags=8, s=0, n=0, raw=bytes(8), big=0).pack())
    assert ok11(bit3) is None and ok13(bit3) is not None  # valid before 4.13 only
    two = LAY.unpack_tuple(Sample(a=2, flags=0, s=0, n=0, raw=bytes(8), big=0).pack())
    assert ok11(two) is not None and ok13(two) is None  # valid from 4.13


def test_pack_out_of_range_is_encode_error() -> None:
    bad = Sample(a=70000, flags=0, s=0, n=0, raw=bytes(8), big=0)
    with pytest.raises(EncodeError, match="field a"):
        bad.pack()


def test_describe_is_json_ready() -> None:
    d = LAY.describe((4, 13))
    names = [f["name"] for f in d["fields"]]
    assert names == ["a", "rsvd0", "flags", "s", "n", "raw", "big"]
    flags = d["fields"][2]
    assert flags["valid_mask"] == "0x1" and flags["bits"] == {"0": "x"}


def test_every_registered_lu_layout_is_consistent() -> None:
    for spec in LU:
        for cls in spec.layouts:
            lay = cls.LAYOUT
            assert lay.struct.size == lay.size == lay.dtype.itemsize
            assert lay.construct.sizeof() == lay.size


def test_fixed_record_spec_errors_are_located() -> None:
    spec = LU.by_name("LU_VERSION")
    with pytest.raises(RecordError) as ei:
        spec.decode(memoryview(b"\x04\0\0\0"), Ctx(3, spec.type, 0x108, 4))
    e = ei.value
    assert (e.offset, e.record_index, e.field, e.record_type) == (0x104, 3, "length", spec.type)


def test_misaligned_declaration_is_refused() -> None:
    with pytest.raises(TypeError, match="not aligned"):

        @packed(name="TINY")
        class Tiny(Packed):
            b: int = fld(Int8ul)
            h: int = fld(Int16ul)


def test_big_endian_layouts_derive_the_same_way() -> None:
    from xenlu.migration.libxc_stream import ImageHeader
    from xenlu.migration.libxl import LibxlHeader

    lay = ImageHeader.LAYOUT
    assert lay.byteorder == ">" and lay.size == 24
    assert lay.struct.unpack(ImageHeader().pack()) == struct.unpack(">QIIHHI", ImageHeader().pack())
    raw = ImageHeader(version=2).pack()
    assert raw == lay.construct.build(
        dict(marker=2**64 - 1, id=0x58454E46, version=2, options=0, rsvd0=0, rsvd1=0)
    )
    assert int(lay.array(raw, 0, 1)["version"][0]) == 2
    assert lay.describe()["byteorder"] == "big"
    assert LibxlHeader.LAYOUT.struct.size == struct.calcsize(">QII") == 16


def test_mixed_byte_order_is_refused() -> None:
    from construct import Int32ub

    with pytest.raises(TypeError, match="mixes"):

        @packed(name="MIXED")
        class Mixed(Packed):
            a: int = fld(Int32ul)
            b: int = fld(Int32ub)


_ALL_LAYOUTS = sorted(
    {cls.LAYOUT for spec in LU for cls in spec.layouts} | {LAY}, key=lambda lay: lay.name
)
_TRICKY = [0, 1, 2, 3, 4, 7, 8, 9, 10, 15, 16, 23, 24, 0x7F, 0x80, 0xFE, 0xFF]


@settings(max_examples=300, deadline=None)
@given(
    lay=st.sampled_from(_ALL_LAYOUTS),
    epoch=st.sampled_from(EPOCHS),
    n=st.integers(9, 40),
    seed=st.integers(0, 2**32 - 1),
    flips=st.integers(0, 3),
)
def test_fast_clean_verdict_never_hides_a_violation(
    lay: Layout, epoch: tuple[int, int], n: int, seed: int, flips: int
) -> None:
    """check_array's folded word tests say "clean" exactly when no rule breaks."""
    rng = np.random.default_rng(seed)
    raw = np.zeros(n * lay.size, np.uint8)
    # Mostly sensible entries: lower bounds met, then a few tricky bytes.
    arr = raw.view(lay.dtype)
    for fi in lay.fields:
        if fi.kind != "bytes" and not fi.reserved:
            low = fi.lo if fi.lo is not None else min(fi.allowed(epoch) or {0})
            arr[fi.name] = max(low, 0)
    for _ in range(flips):
        raw[rng.integers(len(raw))] = rng.choice(_TRICKY)
    got = lay.check_array(arr, epoch)
    rules = lay.rules(epoch)  # the exact locators, field rules then record rules
    exact = rules.locate_fields(arr)
    if exact is not None:  # located by field offset within its entry
        exact = dataclasses.replace(exact, offset=exact.entry * lay.size + exact.offset)
    else:
        exact = rules.locate_records(arr)
    assert (got is None) == (exact is None)
    if exact is not None and got is not None:
        assert (got.entry, got.field, got.message) == (exact.entry, exact.field, exact.message)
        assert got.offset == exact.offset


_BIG = [2**64 - 1, 2**64 - 2, 2**64 - 2**32, 2**64 - 2**32 - 1, 2**63, 2**32 - 1]


@settings(max_examples=400, deadline=None)
@given(
    lay=st.sampled_from(_ALL_LAYOUTS),
    epoch=st.sampled_from(EPOCHS),
    n=st.integers(9, 90),
    seed=st.integers(0, 2**32 - 1),
    flips=st.integers(0, 3),
    bigs=st.integers(0, 2),
    step=st.integers(1, 9),
    strided=st.booleans(),
)
def test_fused_clean_pass_never_hides_a_violation(
    lay: Layout,
    epoch: tuple[int, int],
    n: int,
    seed: int,
    flips: int,
    bigs: int,
    step: int,
    strided: bool,
) -> None:
    """RuleSet.clean (one fused pass, steps of ``step`` entries so violations
    land in every step and across step boundaries, folded or not) is True
    exactly when no field or record rule breaks, and check_array then gives
    the exact locators' first violation. ``bigs`` puts values near 2**64 in
    u64 fields, so the AtLeast screens trip; the OrIn screens trip on the
    flipped bytes."""
    rng = np.random.default_rng(seed)
    raw = np.zeros((2 if strided else 1) * n * lay.size, np.uint8)
    base = raw.view(lay.dtype)
    for fi in lay.fields:
        if fi.kind != "bytes" and not fi.reserved:
            low = fi.lo if fi.lo is not None else min(fi.allowed(epoch) or {0})
            base[fi.name] = max(low, 0)
    for _ in range(flips):
        raw[rng.integers(len(raw))] = rng.choice(_TRICKY)
    wide = [fi.name for fi in lay.fields if fi.kind == "uint" and fi.size == 8]
    for _ in range(bigs if wide else 0):
        base[str(rng.choice(wide))][rng.integers(len(base))] = _BIG[rng.integers(len(_BIG))]
    arr = base[::2] if strided else base
    verdicts, got, exact = _clean_verdicts_and_check(lay, arr, epoch, step)
    assert verdicts == {exact is None}
    assert got == exact


def _clean_verdicts_and_check(
    lay: Layout, arr: np.ndarray, epoch: tuple[int, int], step: int
) -> tuple[set[bool], object, object]:
    """(RuleSet.clean's verdicts folded and not, check_array, the exact locators)
    with steps of ``step`` entries."""
    from xenlu.core import rules as rules_mod

    rules = lay.rules(epoch)
    exact = rules.locate_fields(arr)
    if exact is not None:  # located by field offset within its entry
        exact = dataclasses.replace(exact, offset=exact.entry * lay.size + exact.offset)
    else:
        exact = rules.locate_records(arr)
    saved = rules_mod.CLEAN_BYTES
    rules_mod.CLEAN_BYTES = step * lay.size
    try:
        folded = bool(arr.flags.c_contiguous)
        verdicts = {rules.clean(arr, rules.clean_tests(lay.dtype, f)) for f in {folded, False}}
        got = lay.check_array(arr, epoch)
    finally:
        rules_mod.CLEAN_BYTES = saved
    return verdicts, got, exact


_EDITS = [0, 1, 2, 3, 4, 6, 7, 10, 12, 15, 16, 0xFF, 0x100, 0xFFFF]
_EDITS += [2**32 - 1, 2**63, 2**64 - 2**32 - 1, 2**64 - 2**32, 2**64 - 2, 2**64 - 1]


@settings(max_examples=400, deadline=None)
@given(
    data=st.data(),
    rt=st.sampled_from(sorted(ENTRY_RULES)),
    epoch=st.sampled_from(EPOCHS),
    step=st.integers(1, 9),
)
def test_fused_clean_pass_on_valid_bulk_entries_with_edits(
    data: st.DataObject, rt: int, epoch: tuple[int, int], step: int
) -> None:
    """The bulk entry layouts (P2M, ownership, page types, grant maps, …):
    valid entries from the strategies, then up to three fields set to edge
    values (0, type codes, 2**64 - 2**32, INVALID_MFN, …) anywhere, so every
    screen trips and every rule breaks in some example, in any step. The
    fused pass says clean exactly when the exact locators find nothing."""
    cls = ENTRY_RULES[rt].layout_for(epoch)
    lay: Layout = cls.LAYOUT
    arr = data.draw(entries(cls, epoch, min_size=9, max_size=60)).copy()
    raw = arr.view(np.uint8).reshape(len(arr), lay.size)
    for _ in range(data.draw(st.integers(0, 3))):
        i = data.draw(st.integers(0, len(arr) - 1))
        fi = data.draw(st.sampled_from(lay.fields))
        codes = sorted(fi.allowed(epoch) or ())  # a valid code may break a record rule
        v = data.draw(st.sampled_from(_EDITS + codes + codes))
        raw[i, fi.offset : fi.offset + fi.size] = list(
            (v % 2 ** (8 * fi.size)).to_bytes(fi.size, "little")
        )
    verdicts, got, exact = _clean_verdicts_and_check(lay, arr, epoch, step)
    assert verdicts == {exact is None}
    assert got == exact


@settings(max_examples=300, deadline=None)
@given(
    lay=st.sampled_from(_ALL_LAYOUTS),
    epoch=st.sampled_from([None, *EPOCHS]),
    data=st.data(),
    extra=st.sampled_from([0, 0, 0, -1, 8]),
)
def test_acceptor_is_checker_with_length(
    lay: Layout, epoch: tuple[int, int] | None, data: st.DataObject, extra: int
) -> None:
    """Layout.acceptor(buf, off, n) is "n is the size and no rule breaks"."""
    raw = data.draw(st.lists(st.sampled_from(_TRICKY), min_size=lay.size, max_size=lay.size))
    buf = bytes(raw) + bytes(8)
    n = lay.size + extra
    want = n == lay.size and lay.checker(epoch)(lay.unpack_tuple(buf)) is None
    assert lay.acceptor(epoch)(buf, 0, n) == want
