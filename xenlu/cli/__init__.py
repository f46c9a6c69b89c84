"""The ``xenlu`` command line; ``main`` is its entry point.

The names below are this package's public API; its modules are private to
the family. Names load on first use, so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xenlu.core.lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _WHERE, globals())
