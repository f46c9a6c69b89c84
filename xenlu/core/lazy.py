"""The lazy names of a package facade: each subpackage's ``__init__`` lists
which module defines each public name (its ``_WHERE``) and imports that
module only when the name is first asked for, so importing a package costs
nothing (``xenlu verify`` of a libxc stream never loads numpy).

>>> ns: dict[str, object] = {}
>>> getattr_ = lazy_getattr("pkg", {"sqrt": "math"}, ns)
>>> getattr_("sqrt")(4.0), "sqrt" in ns
(2.0, True)
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType

__all__ = ["deprecated_alias", "lazy_getattr"]


def lazy_getattr(
    package: str, where: Mapping[str, str], namespace: dict[str, object]
) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: a name of ``where`` is read
    from its module on first use and kept in ``namespace`` (the package's
    ``globals()``), so later uses are plain attribute reads; any other name
    is an :class:`AttributeError`."""

    def __getattr__(name: str) -> object:
        try:
            module = where[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__


def deprecated_alias(old: str, moved: ModuleType, public: str) -> None:
    """Make the module ``old`` (an import path of an earlier release) the very
    module ``moved`` is, so attribute access and monkeypatching through
    either name behave alike, with a :class:`DeprecationWarning` that names
    ``public``, the path to import from now."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release: import from {public}",
        DeprecationWarning,
        stacklevel=3,  # the module that imported ``old``, past the alias itself
    )
    sys.modules[old] = moved
