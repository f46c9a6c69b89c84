"""The exact JSON form of a decoded golden stream (used by make_golden.py and test_golden.py).

A stream becomes ``{"xen_version": "X.Y", "epoch": "X.Y", "sections": [...]}``
where each section (global first, then each domain in stream order) is a
list of ``[record name, value]`` pairs in stream order, LU_SECTION_END
excluded, and each value is :func:`xenlu.values.to_jsonable` of the decoded
record value (reserved fields dropped, bytes as hex, arrays as lists of
dicts). Unknown optional records are named ``optional``.
"""

from __future__ import annotations

import json
from typing import Any

from xenlu.epochs import fmt_epoch
from xenlu.lu_stream import LUStream
from xenlu.values import to_jsonable

__all__ = ["dumps", "stream_json"]


def stream_json(stream: LUStream) -> dict[str, Any]:
    """The golden JSON data of ``stream``."""
    return {
        "xen_version": stream.xen_version,
        "epoch": fmt_epoch(stream.epoch),
        "sections": [
            [[r.name, to_jsonable(r.value)] for r in sec.records] for sec in stream.sections
        ],
    }


def dumps(data: dict[str, Any]) -> str:
    """The file text: one record per line (compact JSON), sections in order, final newline."""

    def compact(v: Any) -> str:
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)

    head = ",\n".join(f" {compact(k)}: {compact(v)}" for k, v in data.items() if k != "sections")
    secs = ",\n".join(
        " [\n" + ",\n".join(f"  {compact(rec)}" for rec in sec) + "\n ]" for sec in data["sections"]
    )
    return "{\n" + head + ',\n "sections": [\n' + secs + "\n ]\n}\n"
