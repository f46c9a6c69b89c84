"""Deprecated alias of ``xenlu.host.validation``, removed in the next release.

Import from ``xenlu.host`` instead. The old name is the same module object as
the new one, so attribute access and monkeypatching through either behave
alike.
"""

import sys
import warnings

import xenlu.host.validation as _moved

warnings.warn(
    "xenlu.validate is deprecated and will be removed in the next release: import from xenlu.host",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
