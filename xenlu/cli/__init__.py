"""The ``xenlu`` command line; ``main`` is its entry point.

The names below are this package's public API; its modules are private to
the family. Names load on first use, so importing the package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xenlu.cli.app import (
        build_parser,
        inspect_summary,
        load_input,
        lu_listing,
        main,
        record_listing,
    )

__all__ = [
    "build_parser",
    "inspect_summary",
    "load_input",
    "lu_listing",
    "main",
    "record_listing",
]

_WHERE: dict[str, str] = {
    "build_parser": "xenlu.cli.app",
    "inspect_summary": "xenlu.cli.app",
    "load_input": "xenlu.cli.app",
    "lu_listing": "xenlu.cli.app",
    "main": "xenlu.cli.app",
    "record_listing": "xenlu.cli.app",
}


def __getattr__(name: str) -> object:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
