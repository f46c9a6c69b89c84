"""The exact JSON form of a decoded golden stream (used by make_golden.py and test_golden.py).

A stream becomes ``{"xen_version": "X.Y", "epoch": "X.Y", "sections": [...]}``
where each section (global first, then each domain in stream order) is a
list of ``[record name, value]`` pairs in stream order, LU_SECTION_END
excluded; each value has the decoded record's fields (reserved fields
dropped, bytes as hex, arrays as lists of dicts). Unknown optional records
are named ``optional`` with value ``{"type": int, "body": hex}``.

The frozen ``.json`` files keep this row-wise shape (written once; the
corpus never changes), but it is computed from the package's JSON form
(:func:`xenlu.tools.jsonform.to_json`, every column a list) by :func:`golden_form`,
so the frozen files also pin every field of ``xenlu dump``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from xenlu.lu.stream import LUStream
from xenlu.tools.jsonform import to_json

__all__ = ["dumps", "golden_form", "stream_json"]


def _rows(arr: dict[str, Any]) -> Any:
    """A JSON-form array as the golden form: a list (plain) or a list of dicts."""
    if "values" in arr:
        return arr["values"]
    names = [f[0] for f in arr["dtype"]["fields"] if not f[0].startswith("rsvd")]
    cols = [arr["columns"][n] for n in names]
    if not cols:
        return [{} for _ in range(arr["count"])]
    return [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)]


def _value(v: Any) -> Any:
    if isinstance(v, dict):
        if "count" in v and "dtype" in v:
            return _rows(v)
        if set(v) == {"base64"}:
            return base64.b64decode(v["base64"]).hex()
        return {k: _value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_value(x) for x in v]
    return v


def _record(rec: dict[str, Any]) -> list[Any]:
    if "body" in rec:
        return [rec["name"], {"type": int(rec["type"], 16), "body": rec["body"]}]
    return [rec["name"], _value(rec["value"])]


def golden_form(doc: dict[str, Any]) -> dict[str, Any]:
    """The golden data of an LU stream's JSON form (``to_json(s, inline_max=-1)``)."""
    sections = [doc["global_section"], *doc["domains"]]
    return {
        "xen_version": doc["xen_version"],
        "epoch": doc["epoch"],
        "sections": [[_record(r) for r in sec["records"]] for sec in sections],
    }


def stream_json(stream: LUStream) -> dict[str, Any]:
    """The golden JSON data of ``stream``."""
    return golden_form(to_json(stream, inline_max=-1))


def dumps(data: dict[str, Any]) -> str:
    """The file text: one record per line (compact JSON), sections in order, final newline."""

    def compact(v: Any) -> str:
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)

    head = ",\n".join(f" {compact(k)}: {compact(v)}" for k, v in data.items() if k != "sections")
    secs = ",\n".join(
        " [\n" + ",\n".join(f"  {compact(rec)}" for rec in sec) + "\n ]" for sec in data["sections"]
    )
    return "{\n" + head + ',\n "sections": [\n' + secs + "\n ]\n}\n"
