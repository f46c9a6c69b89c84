"""xenstored's Live Update state stream: decode, verify, encode, validate.

The names below are this package's public API; its modules are private to
the family. Names load on first use, so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xenlu.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from xenlu.xenstore.stream import (
        NodeTree,
        XenstoreStream,
        decode_xenstore,
        encode_xenstore,
        encode_xenstore_to,
        inspect_xenstore,
        stream_json,
        verify_xenstore,
    )
    from xenlu.xenstore.validate import CODES, XsFinding, XsReport, validate_xenstore

__all__ = [
    "CODES",
    "NodeTree",
    "XenstoreStream",
    "XsFinding",
    "XsReport",
    "decode_xenstore",
    "encode_xenstore",
    "encode_xenstore_to",
    "inspect_xenstore",
    "stream_json",
    "validate_xenstore",
    "verify_xenstore",
]

_WHERE: dict[str, str] = {
    "CODES": "xenlu.xenstore.validate",
    "NodeTree": "xenlu.xenstore.stream",
    "XenstoreStream": "xenlu.xenstore.stream",
    "XsFinding": "xenlu.xenstore.validate",
    "XsReport": "xenlu.xenstore.validate",
    "decode_xenstore": "xenlu.xenstore.stream",
    "encode_xenstore": "xenlu.xenstore.stream",
    "encode_xenstore_to": "xenlu.xenstore.stream",
    "inspect_xenstore": "xenlu.xenstore.stream",
    "stream_json": "xenlu.xenstore.stream",
    "validate_xenstore": "xenlu.xenstore.validate",
    "verify_xenstore": "xenlu.xenstore.stream",
}


__getattr__ = lazy_getattr(__name__, _WHERE, globals())
