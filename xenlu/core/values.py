"""Value helpers shared by the object models: array-aware equality and JSON.

Record values are frozen dataclasses; bulk entries inside them are numpy
structured arrays. :class:`Value` gives such dataclasses an ``__eq__`` that
compares arrays by dtype and content, and :func:`to_jsonable` turns any model
object into plain JSON data (reserved fields dropped, bytes as hex).

>>> import numpy as np
>>> values_equal(np.arange(3), np.arange(3))
True
>>> to_jsonable(b"\\x01\\xff")
'01ff'
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Value", "array_records", "omitted_when_empty", "to_jsonable", "values_equal"]


def values_equal(a: object, b: object) -> bool:
    """Equality that understands numpy arrays, memoryviews and nested containers."""
    import numpy as np

    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        if a.shape != b.shape:
            return False
        if a.dtype.names != b.dtype.names:
            return False
        if a.dtype.names:
            return all(np.array_equal(_plain(a[n]), _plain(b[n])) for n in a.dtype.names)
        return bool(np.array_equal(a, b))
    if isinstance(a, memoryview):
        a = a.tobytes()
    if isinstance(b, memoryview):
        b = b.tobytes()
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _plain(col: np.ndarray) -> np.ndarray:
    # Void (raw bytes) columns compare through a uint8 view.
    import numpy as np

    if col.dtype.kind == "V":
        return col.view(np.uint8)
    return col


class Value:
    """Mixin for ``@dataclass(eq=False)`` models that may hold numpy arrays."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return all(
            values_equal(getattr(self, f.name), getattr(other, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.compare
        )

    __hash__ = None  # type: ignore[assignment]


def array_records(arr: np.ndarray) -> list[dict[str, Any]]:
    """A structured array as a list of dicts, reserved fields (``rsvd*``) dropped."""
    names = [n for n in (arr.dtype.names or ()) if not n.startswith("rsvd")]
    cols = []
    for n in names:
        col = arr[n]
        if col.dtype.kind == "V":
            cols.append([bytes(x).hex() for x in col.tolist()])
        else:
            cols.append(col.tolist())
    return (
        [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)]
        if cols
        else [{} for _ in range(len(arr))]
    )


OMIT_EMPTY = "xenlu.omit_empty"


def omitted_when_empty() -> Any:
    """A ``bytes`` dataclass field, default empty, that JSON shows only when not
    empty (the bytes after an END: rare, and absent from every frozen output).

    >>> @dataclasses.dataclass
    ... class S:
    ...     trailing: bytes = omitted_when_empty()
    >>> to_jsonable(S()), to_jsonable(S(b"\\x01"))
    ({}, {'trailing': '01'})
    """
    return dataclasses.field(default=b"", metadata={OMIT_EMPTY: True})


def to_jsonable(value: Any) -> Any:
    """Plain JSON data for any model value (dataclass, array, bytes, enum …).

    Reserved fields are not dataclass fields (``layout.reserved``), so they
    never appear; a field declared with :func:`omitted_when_empty` appears
    only when it holds something.
    """
    import numpy as np

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, np.ndarray):
        if value.dtype.names:
            return array_records(value)
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.name.startswith("_")
            and not (f.metadata.get(OMIT_EMPTY) and not getattr(value, f.name))
        }
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return str(value)
