"""The JSON form of every stream xenlu knows: ``xenlu dump`` and ``xenlu build``.

:func:`to_json` turns a decoded stream (LU, libxc, libxl, xl, xenstored) into
plain JSON data, :func:`from_json` turns that data back into the stream object, and
:func:`build` encodes it and runs :func:`xenlu.api.verify`'s checks. For
every valid stream ``b``: ``build(to_json(decode(b))) == b``, byte for byte.

The form (``"format": "xenlu-json/1"``; bump :data:`JSON_FORMAT` when its
shape changes) is derived from the stream classes and the record
declarations, never written by hand per record:

* the top level is the stream object: ``{"format": "xenlu-json/1",
  "family": "lu", ...}`` followed by the stream's own fields, by their names
  in the model (``global_section``/``domains`` for LU, ``header``/``domain``/
  ``records`` for libxc, ``header``/``records`` for libxl,
  ``mandatory_flags`` … ``stream`` for xl, ``version``/``big_endian``/
  ``records``/``unpadded`` for xenstored, where ``unpadded`` lists the
  indices of the records whose ``len`` excludes their padding). A nested stream (the libxc stream
  in LIBXC_CONTEXT, an xl file's stream) carries ``"family": "libxc"`` too.
* a record is ``{"type": "0x40000010", "name": "LU_DOMAIN", "value": {...}}``;
  the value's keys are the spec's field names (reserved fields left out:
  they are zero in every valid stream). Where one record type has one
  layout per epoch, ``"layout"`` names it (``"LU_DOMAIN@4.15"``). A record
  of a type xenlu does not know is ``{"type": ..., "name": "optional",
  "body": "<hex>"}``, kept byte-exactly. Lengths, padding, LU_SECTION_END
  (crc32c and size) and an LU stream's END are not in the form:
  :func:`build` recomputes them (a libxc or libxl END is a record of its
  stream's list, and is in it).
* a bulk array is ``{"count": N, "dtype": ..., "columns": {name: column}}``
  (a structured array, one column per field) or ``{"count": N, "dtype":
  "<u8", "values": column}``; ``dtype`` is numpy's little-endian type string
  (``"<u8"``) or, for a structured array, ``{"itemsize": 16, "fields":
  [[name, type, offset], ...]}``. A column is a JSON list when the array has
  at most ``inline_max`` entries (default 64), else ``{"base64": ...}`` of the
  column's little-endian values: a host's million-entry p2m is dumped and
  built by numpy and base64 at memory speed, never as one Python object per
  entry. Either spelling is accepted by :func:`build` (edit a column by
  replacing it with a list). A reserved column is written only when it is
  not all zero.
* a run of fixed-size entries over raw bytes (a xenstored node's
  permissions, a quota run: :class:`~xenlu.xenstore.records.Entries`, whose
  model field is ``Annotated[Entries, <declaration>]``) is a list of objects
  keyed by the declaration's field names, ``[{"perm": 110, "flags": 0,
  "domid": 1}]``, values as numbers whatever the stream's byte order (the
  stream's ``big_endian`` says how they are written back).
* a value that may be one of several declarations (a xenstored connection's
  ring or socket spec) is the one whose field names are exactly its keys.
* bytes are hex (``"0a1b"``) up to 64 bytes, else ``{"base64": ...}``;
  either spelling (and ``{"hex": ...}``) is accepted.
* integers are JSON numbers (u64 exact); a hand edit may also write them
  as text, ``"0x40000"`` or ``"262144"``.

A new stream family (a :class:`xenlu.api.Format` entry) gets the form, and
``show``/``diff``, by providing: a stream class that is a dataclass whose
fields are ints, bools, bytes, numpy arrays, :func:`~xenlu.core.layout.packed`
values, annotated ``Entries`` runs, nested dataclasses, tuples/lists/
frozensets of those, or a ``records`` list or tuple of :class:`Record`; for
each class holding a ``records`` list, an entry in :data:`RECORD_FAMILIES`
(its registry's lookup), with every :class:`~xenlu.core.registry.RecordSpec`'s
``value_type`` set; and an encoder that recomputes lengths and checksums.

>>> import json
>>> from xenlu.testing.hostgen import make_host
>>> from xenlu.api import encode
>>> data = encode(make_host("4.15", n_hvm=0, mem_mib=1, dom0_mem_mib=1))
>>> doc = to_json(decode(data))
>>> doc["format"], doc["family"], doc["global_section"]["records"][0]["name"]
('xenlu-json/1', 'lu', 'LU_VERSION')
>>> build(json.loads(json.dumps(doc))) == data
True
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import struct
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

import numpy as np

from xenlu.api import FORMAT_TABLE, decode, encode, format_of, verify
from xenlu.core.errors import CallerError
from xenlu.core.layout import Layout
from xenlu.core.registry import (
    LIBXC,
    LIBXL,
    LU,
    XENSTORE,
    Record,
    RecordSpec,
    UnknownRecord,
    record_name,
)
from xenlu.core.values import OMIT_EMPTY
from xenlu.tools.jsonform_text import JsonFormError, dump_to, dumps, loads
from xenlu.xenstore.records import Entries

__all__ = [
    "JSON_FORMAT",
    "RECORD_FAMILIES",
    "JsonFormError",
    "build",
    "dump_to",
    "dumps",
    "from_json",
    "loads",
    "to_json",
]

#: The ``format`` key of every dump; bump when the form's shape changes.
JSON_FORMAT = "xenlu-json/1"

#: Up to this many entries, array columns are JSON lists (editable by hand).
INLINE_MAX = 64
#: The largest entry a dtype may declare (every declared entry is far smaller).
_ITEMSIZE_MAX = 1 << 16
#: Up to this many bytes, a bytes value is a hex string.
_HEX_MAX = 64


# --- which registry a record list belongs to --------------------------------------


def _lu_or_libxc(t: int) -> RecordSpec | None:
    # LU spec §4: bit 30 marks a Live-Update-only record; the other records of
    # a domain section are libxc records (§4.16).
    return LU.get(t) if t & 0x40000000 else LIBXC.get(t)


#: Stream or section class name → the record spec of a type code in its
#: ``records`` list. A new stream family adds its classes here (see the
#: module notes: a Format entry, a stream dataclass, a registry).
RECORD_FAMILIES: dict[str, Callable[[int], RecordSpec | None]] = {
    "GlobalSection": _lu_or_libxc,
    "LUDomain": _lu_or_libxc,
    "Section": _lu_or_libxc,
    "LibxcStream": LIBXC.get,
    "LibxlStream": LIBXL.get,
    "XenstoreStream": XENSTORE.get,
}

_FAMILY_OF_CLASS = {"LibxlStream": "libxl", "LibxcStream": "libxc", "XenstoreStream": "xenstore"}


def record_spec(owner: str, rtype: int) -> RecordSpec | None:
    """The spec of a record of ``rtype`` in a ``records`` list of class ``owner``."""
    lookup = RECORD_FAMILIES.get(owner)
    return lookup(rtype) if lookup is not None else None


def record_label(owner: str, rtype: int) -> str:
    """The spec name of a record (``optional`` for an unknown optional type)."""
    spec = record_spec(owner, rtype)
    if spec is not None:
        return spec.name
    return record_name(rtype, _FAMILY_OF_CLASS.get(owner)) or f"{rtype:#010x}"


def _stream_name(obj: Any) -> str | None:
    return _stream_name_of_class(type(obj))


# --- model → JSON ---------------------------------------------------------------


def _b64(raw: Any) -> str:
    return base64.b64encode(raw).decode("ascii")


def _bytes_json(raw: bytes | bytearray | memoryview) -> Any:
    mv = memoryview(raw).cast("B") if isinstance(raw, memoryview) else memoryview(raw)
    if mv.nbytes <= _HEX_MAX:
        return bytes(mv).hex()
    return {"base64": _b64(mv)}


def _dtype_json(dt: np.dtype[Any]) -> Any:
    if dt.names is None:
        return dt.str
    assert dt.fields is not None
    return {
        "itemsize": dt.itemsize,
        "fields": [[n, dt.fields[n][0].str, dt.fields[n][1]] for n in dt.names],
    }


def _column_json(col: np.ndarray, inline: bool) -> Any:
    if inline:
        if col.dtype.kind == "V":
            return [bytes(x).hex() for x in col.tolist()]
        return col.tolist()
    # One contiguous little-endian copy of the column, then C-speed base64.
    return {"base64": _b64(np.ascontiguousarray(col).data.cast("B"))}


def array_json(arr: np.ndarray, inline_max: int = INLINE_MAX) -> dict[str, Any]:
    """The JSON form of a bulk array (see the module notes).

    >>> array_json(np.arange(3, dtype="<u8"))
    {'count': 3, 'dtype': '<u8', 'values': [0, 1, 2]}
    """
    n = len(arr)
    inline = inline_max < 0 or n <= inline_max
    out: dict[str, Any] = {"count": n, "dtype": _dtype_json(arr.dtype)}
    if arr.dtype.names is None:
        out["values"] = _column_json(arr, inline)
        return out
    cols: dict[str, Any] = {}
    for name in arr.dtype.names:
        col = arr[name]
        if name.startswith("rsvd") and not _nonzero(col):
            continue
        cols[name] = _column_json(col, inline)
    out["columns"] = cols
    return out


def _nonzero(col: np.ndarray) -> bool:
    if col.dtype.kind == "V":
        return bool(np.ascontiguousarray(col).view(np.uint8).any())
    return bool(col.any())


def _value_json(value: Any, inline_max: int) -> Any:
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bytes_json(value)
    if isinstance(value, np.ndarray):
        return array_json(value, inline_max)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Entries):
        return _entries_json(value, inline_max)
    if isinstance(value, (set, frozenset)):
        return sorted(_value_json(v, inline_max) for v in value)
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(r, Record) for r in value):
            raise CallerError("a record list outside a stream or section")
        return [_value_json(v, inline_max) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _object_json(value, inline_max)
    raise CallerError(f"cannot express a {type(value).__name__} in the JSON form")


def _entries_json(entries: Entries, inline_max: int) -> list[dict[str, Any]]:
    # A run of fixed-size entries (a node's permissions, quota values): one
    # object per entry, its keys the declaration's field names, its values in
    # host terms whatever the stream's byte order (the stream's big_endian
    # says how they are written back). Reserved fields only when non-zero.
    fields = entries.layout.fields
    return [
        {
            fi.name: _value_json(v, inline_max)
            for fi, v in zip(fields, t, strict=True)
            if not fi.reserved or _nonzero_value(v)
        }
        for t in entries.tuples()
    ]


def _nonzero_value(v: Any) -> bool:
    return any(v) if isinstance(v, bytes) else bool(v)


def _object_json(obj: Any, inline_max: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    name = _stream_name(obj)
    if name is not None:
        out["family"] = name
    owner = type(obj).__name__
    for f in dataclasses.fields(obj):
        if not f.compare or f.name.startswith("_"):
            continue  # decode-time facts (offsets, checksum verdicts), not content
        v = getattr(obj, f.name)
        if f.metadata.get(OMIT_EMPTY) and not v:
            continue  # bytes after an END: shown only when there are some
        if f.name == "records" and owner in RECORD_FAMILIES:
            out[f.name] = [record_json(owner, r, inline_max) for r in v]
        else:
            out[f.name] = _value_json(v, inline_max)
    return out


def record_json(owner: str, rec: Record, inline_max: int = INLINE_MAX) -> dict[str, Any]:
    """One record of a ``records`` list of class ``owner`` in the JSON form."""
    out: dict[str, Any] = {"type": f"{rec.type:#010x}", "name": record_label(owner, rec.type)}
    if isinstance(rec.value, UnknownRecord):
        out["body"] = bytes(rec.value.body).hex()
        return out
    spec = record_spec(owner, rec.type)
    if spec is not None and isinstance(spec.value_type, tuple):
        lay = getattr(type(rec.value), "LAYOUT", None)
        out["layout"] = lay.name if lay is not None else type(rec.value).__name__
    out["value"] = _value_json(rec.value, inline_max)
    return out


def to_json(stream: Any, *, inline_max: int = INLINE_MAX) -> dict[str, Any]:
    """The JSON form of a decoded or built stream (``inline_max < 0``: every column a list).

    Metadata keys (``xen_version``, ``epoch``) are for the reader; :func:`from_json`
    ignores them.
    """
    name = format_of(stream)
    head: dict[str, Any] = {"format": JSON_FORMAT}
    body = _object_json(stream, inline_max)
    if name == "lu":
        from xenlu.core.epochs import fmt_epoch

        head.update(family="lu", xen_version=stream.xen_version, epoch=fmt_epoch(stream.epoch))
    head.update(body)
    return head


# --- JSON → model ---------------------------------------------------------------


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls in _HINTS:
        return _HINTS[cls]
    # Only the dataclass fields, each in the namespace of the module that
    # declares it (annotations are strings; numpy may be a TYPE_CHECKING import).
    ns: dict[str, Any] = {"np": np}
    for klass in reversed(cls.__mro__):
        ns.update(vars(sys.modules[klass.__module__]))
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        t = f.type
        out[f.name] = eval(t, ns) if isinstance(t, str) else t  # our own annotations
    _HINTS[cls] = out
    return out


def _want(cond: bool, message: str, path: str) -> None:
    if not cond:
        raise JsonFormError(message, path)


def _int(x: Any, path: str) -> int:
    if isinstance(x, str):
        try:
            return int(x, 0)  # "0x40000010" and plain decimal text are both accepted
        except ValueError:
            pass
    _want(
        isinstance(x, int) and not isinstance(x, bool),
        f"expected an integer, got {_short(x)}",
        path,
    )
    return int(x)


def _raw(x: Any, path: str) -> bytes:
    try:
        if isinstance(x, str):
            return bytes.fromhex(x)
        if isinstance(x, dict) and set(x) == {"base64"} and isinstance(x["base64"], str):
            # strict_mode: the C check of the alphabet and padding (b64decode(validate=True)
            # runs a regular expression over the text first, 5x slower).
            return binascii.a2b_base64(x["base64"], strict_mode=True)
        if isinstance(x, dict) and set(x) == {"hex"} and isinstance(x["hex"], str):
            return bytes.fromhex(x["hex"])
    except (ValueError, binascii.Error) as exc:
        raise JsonFormError(f"bad bytes: {exc}", path) from None
    raise JsonFormError('expected bytes: "<hex>" or {"base64": "..."}', path)


def _dtype(x: Any, path: str) -> np.dtype[Any]:
    dt = _parse_dtype(x, path)
    kinds = [dt.fields[n][0].kind for n in dt.names] if dt.fields and dt.names else [dt.kind]
    if dt.hasobject or dt.subdtype is not None or any(k not in "uiV" for k in kinds):
        raise JsonFormError(
            f"bad dtype {dt.str}: only integers and raw bytes (u, i, V) are stream data",
            path + ".dtype",
        )
    return dt


def _parse_dtype(x: Any, path: str) -> np.dtype[Any]:
    try:
        if isinstance(x, str):
            return np.dtype(x)
        if isinstance(x, dict) and isinstance(x.get("fields"), list):
            fields = x["fields"]
            if not 0 < int(x["itemsize"]) <= _ITEMSIZE_MAX:
                raise ValueError(f"itemsize must be 1 … {_ITEMSIZE_MAX}")
            return np.dtype(
                {
                    "names": [str(f[0]) for f in fields],
                    "formats": [str(f[1]) for f in fields],
                    "offsets": [int(f[2]) for f in fields],
                    "itemsize": int(x["itemsize"]),
                }
            )
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        raise JsonFormError(f"bad dtype: {exc}", path + ".dtype") from None
    raise JsonFormError("bad dtype: expected a type string or {itemsize, fields}", path + ".dtype")


def _column(x: Any, dt: np.dtype[Any], count: int, path: str) -> np.ndarray:
    if isinstance(x, list):
        _want(len(x) == count, f"{len(x)} values, count says {count}", path)
        try:
            if dt.kind == "V":
                parts = [_raw(v, f"{path}[{i}]") for i, v in enumerate(x)]
                for i, part in enumerate(parts):
                    _want(len(part) == dt.itemsize, f"expected {dt.itemsize} bytes", f"{path}[{i}]")
                return np.frombuffer(b"".join(parts), dtype=dt) if count else np.zeros(0, dt)
            if any(isinstance(v, bool) or not isinstance(v, int) for v in x):
                bad = next(v for v in x if isinstance(v, bool) or not isinstance(v, int))
                raise JsonFormError(f"expected integers, got {_short(bad)}", path)
            return np.array(x, dtype=dt)
        except (OverflowError, ValueError) as exc:
            raise JsonFormError(f"value out of range for {dt.str}: {exc}", path) from None
    raw = _raw(x, path)
    _want(
        len(raw) == count * dt.itemsize,
        f"{len(raw)} bytes, expected {count} × {dt.itemsize}",
        path,
    )
    return np.frombuffer(raw, dtype=dt)


def array_from_json(x: Any, path: str = "") -> np.ndarray:
    """The numpy array of an :func:`array_json` object (missing columns are zero)."""
    _want(isinstance(x, dict) and "count" in x and "dtype" in x, "expected an array", path)
    count = _int(x["count"], path + ".count")
    _want(count >= 0, "negative count", path + ".count")
    dt = _dtype(x["dtype"], path)
    if dt.names is None:
        _want("values" in x, "expected values", path)
        return _column(x["values"], dt, count, path + ".values")
    cols = x.get("columns", {})
    _want(isinstance(cols, dict), "columns must be an object", path + ".columns")
    unknown = set(cols) - set(dt.names)
    if unknown:
        raise JsonFormError(f"no field {sorted(unknown)[0]!r} in the dtype", path + ".columns")
    assert dt.fields is not None
    # Every column is checked against count before the array is allocated: a
    # hand-edited count never allocates more than the columns hold.
    parsed: dict[str, np.ndarray] = {}
    for name in dt.names:
        if name in cols:
            sub = f"{path}.columns.{name}"
            parsed[name] = _column(cols[name], dt.fields[name][0], count, sub)
        else:
            _want(name.startswith("rsvd"), f"missing column {name!r}", path + ".columns")
    _want(bool(parsed) or count == 0, "no columns for a non-empty array", path + ".columns")
    arr = np.zeros(count, dtype=dt)
    for name, col in parsed.items():
        arr[name] = col
    return arr


def _union_pick(args: tuple[Any, ...], x: Any, path: str) -> Any:
    classes = [a for a in args if a is not type(None)]
    if isinstance(x, dict) and "family" in x:
        for a in classes:
            if isinstance(a, type) and _stream_class_name(x["family"]) == a.__name__:
                return a
        raise JsonFormError(f"a {_short(x['family'])} stream does not fit here", path)
    if len(classes) == 1:
        return classes[0]
    if all(a in (bytes, bytearray, memoryview) for a in classes):
        return bytes  # a raw buffer, whichever of the three the model holds
    if isinstance(x, dict):
        # Alternative declarations (a ring or a socket connection's spec): the
        # one whose fields are exactly the keys given.
        keys = set(x)
        fits = [
            a
            for a in classes
            if isinstance(a, type)
            and dataclasses.is_dataclass(a)
            and {f.name for f in dataclasses.fields(a) if f.init and f.compare} == keys
        ]
        if len(fits) == 1:
            return fits[0]
        names = ", ".join(getattr(a, "__name__", repr(a)) for a in classes)
        raise JsonFormError(f"the keys fit none or several of {names}", path)
    raise JsonFormError('ambiguous value: give its "family"', path)


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:39] + "…"


def _stream_class_name(name: Any) -> str | None:
    f = FORMAT_TABLE.get(name) if isinstance(name, str) else None
    return f.stream_class if f is not None else None


def _from(tp: Any, x: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        if base is Entries:
            # Annotated[Entries, NodePerm]: the run's entry declaration.
            return _entries_from(meta[0].LAYOUT, x, path)
        return _from(base, x, path)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if x is None and type(None) in args:
            return None
        return _from(_union_pick(args, x, path), x, path)
    if tp is bool:
        _want(isinstance(x, bool), f"expected true or false, got {_short(x)}", path)
        return x
    if tp is int:
        return _int(x, path)
    if tp is bytes:
        return _raw(x, path)
    if tp is memoryview:
        return memoryview(_raw(x, path))
    if tp is np.ndarray:
        return array_from_json(x, path)
    if origin is list:
        (arg,) = typing.get_args(tp)
        _want(isinstance(x, list), "expected a list", path)
        return [_from(arg, v, f"{path}[{i}]") for i, v in enumerate(x)]
    if origin is frozenset:
        (arg,) = typing.get_args(tp)
        _want(isinstance(x, list), "expected a list", path)
        return frozenset(_from(arg, v, f"{path}[{i}]") for i, v in enumerate(x))
    if origin is tuple:
        args = typing.get_args(tp)
        _want(isinstance(x, list), "expected a list", path)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from(args[0], v, f"{path}[{i}]") for i, v in enumerate(x))
        _want(len(x) == len(args), f"expected {len(args)} items", path)
        return tuple(
            _from(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, x, strict=True))
        )
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _object_from(tp, x, path)
    raise JsonFormError(f"cannot build a {tp!r} from JSON", path)


def _entries_from(layout: Layout, x: Any, path: str) -> Entries:
    """The :class:`Entries` of an :func:`_entries_json` list (reserved fields default to 0)."""
    _want(isinstance(x, list), f"expected a list of {layout.cls.__name__} entries", path)
    names = set(layout.names)
    packer = layout.struct  # the declaration's own (little-endian) byte order
    out = bytearray()
    for i, e in enumerate(x):
        sub = f"{path}[{i}]"
        _want(isinstance(e, dict), f"expected an object ({layout.cls.__name__})", sub)
        unknown = set(e) - names
        if unknown:
            raise JsonFormError(f"no field {sorted(unknown)[0]!r} in {layout.cls.__name__}", sub)
        vals: list[Any] = []
        for fi in layout.fields:
            if fi.name not in e:
                _want(fi.reserved, f"missing field {fi.name!r}", sub)
                vals.append(bytes(fi.size) if fi.kind == "bytes" else 0)
            elif fi.kind == "bytes":
                raw = _raw(e[fi.name], f"{sub}.{fi.name}")
                _want(len(raw) == fi.size, f"expected {fi.size} bytes", f"{sub}.{fi.name}")
                vals.append(raw)
            else:
                vals.append(_int(e[fi.name], f"{sub}.{fi.name}"))
        try:
            out += packer.pack(*vals)
        except struct.error as exc:
            raise JsonFormError(f"value out of range: {exc}", sub) from None
    return Entries(layout, bytes(out), layout.byteorder)


def _object_from(cls: type[Any], x: Any, path: str) -> Any:
    _want(isinstance(x, dict), f"expected an object ({cls.__name__})", path)
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    known = {"family"} if _stream_name_of_class(cls) else set()
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        known.add(f.name)
        if not f.compare:
            continue
        sub = f"{path}.{f.name}" if path else f.name
        if f.name not in x:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise JsonFormError(f"missing field {f.name!r}", path or cls.__name__)
            continue
        if f.name == "records" and cls.__name__ in RECORD_FAMILIES:
            _want(isinstance(x[f.name], list), "expected a list of records", sub)
            recs = [record_from(cls.__name__, r, f"{sub}[{i}]") for i, r in enumerate(x[f.name])]
            # A stream class may keep its records as a tuple (XenstoreStream).
            kwargs[f.name] = tuple(recs) if isinstance(f.default, tuple) else recs
        else:
            kwargs[f.name] = _from(hints[f.name], x[f.name], sub)
    extra = set(x) - known
    if path == "" and _stream_name_of_class(cls):
        extra -= {"format", "xen_version", "epoch"}  # metadata of the top level
    if extra:
        raise JsonFormError(
            f"no field {sorted(extra)[0]!r} in {cls.__name__}", path or cls.__name__
        )
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise JsonFormError(f"cannot make a {cls.__name__}: {exc}", path) from None


def _stream_name_of_class(cls: type[Any]) -> str | None:
    # By identity through the module the format table names (a stream class
    # may be defined in another module and re-exported there).
    for f in FORMAT_TABLE.values():
        mod = sys.modules.get(f.module)
        if mod is not None and getattr(mod, f.stream_class, None) is cls:
            return f.name
    return None


def _layout_class(spec: RecordSpec, rec: dict[str, Any], path: str) -> type[Any]:
    vt = spec.value_type
    if not isinstance(vt, tuple):
        _want(vt is not None, f"{spec.name} records carry no value", path)
        return typing.cast(type[Any], vt)
    want = rec.get("layout")
    for c in vt:
        lay = getattr(c, "LAYOUT", None)
        if want in (c.__name__, lay.name if lay is not None else None):
            return typing.cast(type[Any], c)
    if want is None and isinstance(rec.get("value"), dict):
        # No layout given: the one declaration whose fields are exactly the keys.
        keys = set(rec["value"])
        fits = [c for c in vt if {f.name for f in dataclasses.fields(c)} == keys]
        if len(fits) == 1:
            return typing.cast(type[Any], fits[0])
    names = ", ".join(c.LAYOUT.name if hasattr(c, "LAYOUT") else c.__name__ for c in vt)
    raise JsonFormError(f"layout {want!r} is not one of {names}", path + ".layout")


def record_from(owner: str, rec: Any, path: str) -> Record:
    """The :class:`Record` of one record's JSON form in a ``records`` list of ``owner``."""
    _want(isinstance(rec, dict) and "type" in rec, "expected a record with a type", path)
    rtype = _int(rec["type"], path + ".type")
    _want(0 <= rtype <= 0xFFFFFFFF, "record type out of range", path + ".type")
    if "body" in rec:
        _want("value" not in rec, "a record has a value or a body, not both", path)
        return Record(rtype, UnknownRecord(rtype, _raw(rec["body"], path + ".body")))
    spec = record_spec(owner, rtype)
    if spec is None:
        raise JsonFormError(f"unknown record type {rtype:#010x}: give its body as hex", path)
    _want("value" in rec, "missing value", path)
    cls = _layout_class(spec, rec, path)
    return Record(rtype, _from(cls, rec["value"], path + ".value"))


def from_json(doc: dict[str, Any]) -> Any:
    """The stream object of a JSON form (:class:`JsonFormError` says where it is wrong)."""
    _want(isinstance(doc, dict), "expected a JSON object", "")
    fmt = doc.get("format")
    if fmt != JSON_FORMAT:
        raise JsonFormError(
            f"format {_short(fmt)} is not {JSON_FORMAT!r} (not a xenlu dump)", "format"
        )
    name = doc.get("family")
    if _stream_class_name(name) is None:
        raise JsonFormError(
            f"family {_short(name)} is not one of {', '.join(FORMAT_TABLE)}", "family"
        )
    return _object_from(FORMAT_TABLE[str(name)].stream_type(), doc, "")


def build(doc: dict[str, Any], *, check: bool = True) -> bytes:
    """The stream bytes of a JSON form: lengths, padding, section crc32c and
    sizes recomputed, then (``check``) verified as :func:`xenlu.api.verify` does."""
    stream = from_json(doc)
    data = encode(stream)
    if check:
        verify(data, doc["family"])
    return data


def dump(data: Any, fmt: str = "auto", *, inline_max: int = INLINE_MAX) -> dict[str, Any]:
    """Decode ``data`` and return its JSON form."""
    return to_json(decode(data, fmt), inline_max=inline_max)
