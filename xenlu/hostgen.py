"""Deprecated alias of ``xenlu.testing.hostgen``, removed in the next release.

Import from ``xenlu.testing`` instead. The old name is the same module object as
the new one, so attribute access and monkeypatching through either behave
alike.
"""

import sys
import warnings

import xenlu.testing.hostgen as _moved

warnings.warn(
    "xenlu.hostgen is deprecated and will be removed in the next release: "
    "import from xenlu.testing",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
