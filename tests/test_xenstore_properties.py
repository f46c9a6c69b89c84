"""Properties of xenstore streams: round trips both ways, consistency, faults caught."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xenlu.testing.strategies import (
    XsCorruption,
    xenstore_corruptions,
    xenstore_models,
    xenstore_streams,
)
from xenlu.testing.strategies_xenstore import XS_FAULT_KINDS
from xenlu.xenstore.stream import XenstoreStream, decode_xenstore, encode_xenstore
from xenlu.xenstore.validate import validate_xenstore


@given(xenstore_models())
def test_decode_of_encode_is_identity(s: XenstoreStream) -> None:
    assert decode_xenstore(encode_xenstore(s)) == s


@given(xenstore_streams())
def test_encode_of_decode_is_identity(data: bytes) -> None:
    assert encode_xenstore(decode_xenstore(data)) == data


@given(xenstore_models(), st.booleans())
def test_other_byte_order_holds_the_same_records(s: XenstoreStream, be: bool) -> None:
    other = decode_xenstore(encode_xenstore(s, big_endian=be))
    assert other.records == s.records and other.big_endian == be


@given(xenstore_models())
def test_models_are_consistent(s: XenstoreStream) -> None:
    r = validate_xenstore(s)
    assert r.findings == [] or r.codes() == {"XS_LEN_UNPADDED"}, r.summary()


@given(xenstore_models().flatmap(xenstore_corruptions))
def test_every_fault_is_caught(c: XsCorruption) -> None:
    assert c.kind in XS_FAULT_KINDS
    c.check()


def test_every_fault_kind_is_made() -> None:
    from hypothesis import find, settings

    for kind in XS_FAULT_KINDS:
        c = find(
            xenstore_models(version=2).flatmap(xenstore_corruptions),
            lambda c, kind=kind: c.kind == kind,  # type: ignore[misc]
            settings=settings(max_examples=2000, database=None),
        )
        c.check()
