"""The text of xenlu's JSON form (:mod:`xenlu.tools.jsonform`): writing it, parsing it, its error.

:func:`dump_to` and :func:`dumps` write a form one record per line (diffable
and greppable), a long base64 column as one unscanned chunk; :func:`loads`
parses a dump's text and raises :class:`JsonFormError` when it is not a
JSON form object. :mod:`xenlu.tools.jsonform` re-exports all four.

    >>> dumps({"format": "xenlu-json/1", "family": "lu"})
    '{"format":"xenlu-json/1","family":"lu"}\\n'
    >>> loads("[]")
    Traceback (most recent call last):
    ...
    xenlu.tools.jsonform_text.JsonFormError: expected a JSON object at the top level
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from xenlu.core.errors import CallerError

__all__ = ["JsonFormError", "dump_to", "dumps", "loads"]


class JsonFormError(CallerError):
    """A JSON document that does not describe a stream; ``path`` says where.

    >>> str(JsonFormError("not an integer", "domains[0].records[1].value.max_vcpus"))
    'domains[0].records[1].value.max_vcpus: not an integer'
    """

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


# --- writing the text -----------------------------------------------------------


def _compact(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _chunks(v: Any, indent: int, key: str | None) -> Iterator[str]:
    pad = " " * indent
    if key == "records" and isinstance(v, list):
        # One record per line: diffable, greppable, and each line built alone.
        if not v:
            yield "[]"
            return
        yield "[\n"
        for i, rec in enumerate(v):
            yield pad + " "
            if isinstance(rec, dict) and isinstance(rec.get("value"), dict):
                yield from _record_line(rec)
            else:
                yield _compact(rec)
            yield ",\n" if i + 1 < len(v) else "\n"
        yield pad + "]"
        return
    if isinstance(v, dict) and v and not _flat(v):
        yield "{\n"
        items = list(v.items())
        for i, (k, x) in enumerate(items):
            yield f"{pad} {_compact(k)}: "
            yield from _chunks(x, indent + 1, k)
            yield ",\n" if i + 1 < len(items) else "\n"
        yield pad + "}"
        return
    if isinstance(v, list) and v and not _flat(v):
        yield "[\n"
        for i, x in enumerate(v):
            yield pad + " "
            yield from _chunks(x, indent + 1, None)
            yield ",\n" if i + 1 < len(v) else "\n"
        yield pad + "]"
        return
    yield _compact(v)


def _record_line(rec: dict[str, Any]) -> Iterator[str]:
    yield from _inline(rec)


#: Strings at least this long are written without json's escape scan: only
#: base64 text (A-Z a-z 0-9 + / =) is that long in a dump, and it needs none.
_RAW_MIN = 4096


def _inline(v: Any) -> Iterator[str]:
    """Compact JSON of ``v`` as chunks; a long base64 string is its own chunk, unscanned."""
    if isinstance(v, dict):
        b64 = v.get("base64") if len(v) == 1 else None
        if isinstance(b64, str) and len(b64) >= _RAW_MIN:
            yield '{"base64":"'
            yield b64
            yield '"}'
            return
        if not any(isinstance(x, (dict, list)) for x in v.values()):
            yield _compact(v)
            return
        yield "{"
        for i, (k, x) in enumerate(v.items()):
            yield ("," if i else "") + _compact(k) + ":"
            yield from _inline(x)
        yield "}"
        return
    yield _compact(v)


def _flat(v: Any) -> bool:
    """Small enough to print on one line."""
    if isinstance(v, dict):
        return not any(isinstance(x, (dict, list)) for x in v.values()) and len(v) <= 8
    if isinstance(v, list):
        return not any(isinstance(x, (dict, list)) for x in v)
    return True


def dump_to(doc: dict[str, Any], f: IO[str]) -> None:
    """Write a JSON form to a text file: one record per line, final newline."""
    for part in _chunks(doc, 0, None):
        f.write(part)
    f.write("\n")


def dumps(doc: dict[str, Any]) -> str:
    """The text :func:`dump_to` writes."""
    return "".join(_chunks(doc, 0, None)) + "\n"


def loads(text: str | bytes | bytearray | memoryview) -> dict[str, Any]:
    """Parse a dump's text; :class:`JsonFormError` when it is not a JSON form object."""
    if isinstance(text, memoryview):
        text = bytes(text)
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonFormError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise JsonFormError("expected a JSON object at the top level")
    return doc
