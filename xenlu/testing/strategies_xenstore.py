"""Hypothesis strategies for xenstored migration streams and their faults.

The strategies live in :mod:`xenlu.testing.strategies` (``xenstore_models``,
``xenstore_streams``, ``xenstore_corruptions``, ``XsCorruption``,
``XS_FAULT_KINDS``); this module keeps the import path they had before.
"""

from xenlu.testing.strategies._xenstore import (
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

#: ``doctest.testmod`` of this module runs the examples of the strategies it names.
__test__ = {"xenstore_models": xenstore_models}
