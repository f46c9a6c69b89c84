"""Hypothesis strategies for xenstored migration streams and their faults.

The strategies live in :mod:`xenlu.strategies` (``xenstore_models``,
``xenstore_streams``, ``xenstore_corruptions``, ``XsCorruption``,
``XS_FAULT_KINDS``); this module keeps the import path they had before.

>>> from hypothesis import given, settings
>>> from xenlu.xenstore_stream import decode_xenstore, encode_xenstore
>>> @settings(max_examples=5)
... @given(xenstore_models())
... def test_roundtrip(s):
...     assert decode_xenstore(encode_xenstore(s)) == s
>>> test_roundtrip()
"""

from xenlu.strategies._xenstore import (
    XS_FAULT_KINDS,
    XsCorruption,
    xenstore_corruptions,
    xenstore_models,
    xenstore_streams,
)

__all__ = [
    "XS_FAULT_KINDS",
    "XsCorruption",
    "xenstore_corruptions",
    "xenstore_models",
    "xenstore_streams",
]
