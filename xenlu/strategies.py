"""Deprecated alias of ``xenlu.testing.strategies``, removed in the next release.

Import from ``xenlu.testing.strategies`` instead. The old name is the same module object as
the new one, so attribute access and monkeypatching through either behave
alike.
"""

import xenlu.testing.strategies as _moved
from xenlu.core.lazy import deprecated_alias

deprecated_alias(__name__, _moved, "xenlu.testing.strategies")
