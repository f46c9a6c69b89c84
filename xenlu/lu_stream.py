"""Deprecated alias of ``xenlu.lu.stream``, removed in the next release.

Import from ``xenlu.lu`` instead. The old name is the same module object as
the new one, so attribute access and monkeypatching through either behave
alike.
"""

import sys
import warnings

import xenlu.lu.stream as _moved

warnings.warn(
    "xenlu.lu_stream is deprecated and will be removed in the next release: import from xenlu.lu",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
