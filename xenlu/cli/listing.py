"""What ``xenlu inspect`` and ``xenlu verify -v`` print about a stream: the
summary of its records and the listing of every record, for a mapped file
(:mod:`xenlu.cli.app`) and a pipe (:mod:`xenlu.cli.stream`) alike."""

from __future__ import annotations

import argparse
import json
import struct
from typing import Any

from xenlu.api import encode, format_of
from xenlu.cli.io import (
    out,
)
from xenlu.core.errors import XenLUError


def _records(stream: Any) -> list[tuple[str, Any]]:
    """Every record as (family, Record), in stream order, embedded streams flattened."""
    from xenlu.lu.stream import LUStream
    from xenlu.migration.libxc_stream import LibxcStream
    from xenlu.migration.libxl import LibxlStream, XlFile

    recs: list[tuple[str, Any]] = []
    if format_of(stream) == "xenstore":
        recs += [("xenstore", r) for r in stream.records]
    elif isinstance(stream, LUStream):
        for sec in stream.sections:
            recs += [("lu", r) for r in sec.records]
    elif isinstance(stream, LibxcStream):
        recs += [("libxc", r) for r in stream.records]
    elif isinstance(stream, XlFile):
        recs += _records(stream.stream)
    elif isinstance(stream, LibxlStream):
        for r in stream.records:
            recs.append(("libxl", r))
            # LIBXC_CONTEXT holds the libxc stream; a CHECKPOINT_END the
            # libxc batch that resumes after it (libxl §2).
            inner = getattr(r.value, "stream", None) or getattr(r.value, "libxc", None)
            if isinstance(inner, LibxcStream):
                recs += _records(inner)
    return recs


def _body_len(family: str, rec: Any) -> int:
    from xenlu.core.registry import LIBXC, LIBXL, LU, XENSTORE, UnknownRecord

    if isinstance(rec.value, UnknownRecord):
        return len(rec.value.body)
    reg = {"libxl": LIBXL, "xenstore": XENSTORE}.get(family) or (
        LU if rec.type & 0x40000000 else LIBXC
    )
    spec = reg.get(rec.type)
    if spec is None:
        return 0
    try:
        return sum(memoryview(p).nbytes for p in spec.encode(rec.value))
    except XenLUError:
        return 0


def _name(family: str, rec: Any) -> str:
    from xenlu.core.registry import record_name

    fam = family if family in ("libxl", "xenstore") else None
    return record_name(rec.type, fam) or f"{rec.type:#010x}"


def inspect_summary(stream: Any, nbytes: int) -> dict[str, Any]:
    """What ``xenlu inspect`` reports of a decoded ``stream`` of ``nbytes``
    bytes: format, versions, record counts and bytes by type, domains.

    >>> from xenlu.testing.hostgen import make_host
    >>> inspect_summary(make_host("4.15", n_hvm=0, mem_mib=1, dom0_mem_mib=1), 0)["epoch"]
    '4.15'
    """
    recs = _records(stream)
    counts: dict[str, int] = {}
    totals: dict[str, int] = {}
    for fam, r in recs:
        n = _name(fam, r)
        counts[n] = counts.get(n, 0) + 1
        totals[n] = totals.get(n, 0) + _body_len(fam, r)
    fmt = format_of(stream)
    if fmt == "lu":
        # LU_SECTION_END and END are framing, not model records: count them too.
        from xenlu.lu.host_records import LuSectionEnd

        n_sec = len(stream.sections)
        counts["LU_SECTION_END"] = n_sec
        totals["LU_SECTION_END"] = n_sec * LuSectionEnd.LAYOUT.size
        counts["END"], totals["END"] = 1, 0
    summary: dict[str, Any] = {"format": fmt}
    if fmt == "xenstore":
        from xenlu.xenstore.stream import inspect_xenstore

        counts["END"], totals["END"] = 1, 0
        summary.update(inspect_xenstore(stream))
    elif fmt == "lu":
        from xenlu.core.epochs import fmt_epoch

        summary.update(
            version=1,  # LU spec revision
            xen_version=stream.xen_version,
            epoch=fmt_epoch(stream.epoch),
        )
    else:
        inner = stream.stream if fmt == "xl" else stream
        libxc = _inner_libxc(inner)
        summary.update(
            version=libxc.version if libxc is not None else getattr(inner, "version", None),
            xen_version="{}.{}".format(*libxc.xen_version) if libxc is not None else None,
            domain_type=libxc.domain_type if libxc is not None else None,
        )
        if fmt in ("libxl", "xl"):
            summary["libxl_version"] = getattr(getattr(inner, "header", None), "version", None)
    summary.update(
        records=sum(counts.values()), bytes=nbytes, record_counts=counts, record_bytes=totals
    )
    summary.update(trailing_info(stream))
    if fmt == "lu":
        summary["domains"] = [
            {
                "domid": d.domid,
                "type": d.type_name,
                "record_counts": d.record_counts(),
                "entry_counts": d.entry_counts(),
            }
            for d in stream.domains
        ]
        summary["sections_ok"] = bool(stream.sections_ok)
    return summary


def trailing_info(stream: Any) -> dict[str, int]:
    """The bytes that follow an END and belong to no stream (issue 13): after
    the libxc/libxl END of a file, after the END entry of an HVM_CONTEXT.
    Xen's readers stop at END, so xenlu reports them and does not refuse them.
    """
    from xenlu.migration.hvmctx import HvmContext

    fmt = format_of(stream)
    if fmt not in ("libxc", "libxl", "xl"):
        return {}
    outer = stream.stream if fmt == "xl" else stream
    out = {"trailing_bytes": len(outer.trailing)}
    hvm = [r.value for _, r in _records(stream) if isinstance(r.value, HvmContext)]
    if any(c.trailing for c in hvm):
        out["hvm_context_trailing_bytes"] = sum(len(c.trailing) for c in hvm)
    return out


def _inner_libxc(stream: Any) -> Any:
    from xenlu.migration.libxc_stream import LibxcStream

    if isinstance(stream, LibxcStream):
        return stream
    for r in getattr(stream, "records", ()):
        inner = getattr(r.value, "stream", None)
        if isinstance(inner, LibxcStream):
            return inner
    return None


# --- commands ---------------------------------------------------------------


def lu_listing(buf: Any) -> list[tuple[int, int | None, str, int, int]]:
    """Every record of an LU stream by framing: LU_SECTION_END and END too,
    numbered as errors number them (every record from 0, headers excluded),
    as ``(index, offset, name, type, body length)``.

    >>> from xenlu.api import encode
    >>> from xenlu.testing.hostgen import make_host
    >>> lu_listing(encode(make_host("4.15", n_hvm=0, mem_mib=1, dom0_mem_mib=1)))[-1][2:]
    ('END', 0, 0)
    """
    from xenlu.core.framing import as_buffer, frames
    from xenlu.core.registry import record_name

    mv = as_buffer(buf)
    rows: list[tuple[int, int | None, str, int, int]] = []
    for idx, off, t, length in frames(mv, 0, len(mv), 0):
        rows.append((idx, off, record_name(t) or f"{t:#010x}", t, length))
        if t == 0:  # END
            break
    return rows


def record_listing(stream: Any, data: Any, fmt: str) -> list[tuple[int, int | None, str, int, int]]:
    """``(index, offset, name, type, body length)`` of every record, in stream order."""
    if format_of(stream) == "lu":
        # A memory image is re-encoded: the stream's own bytes (offsets in the stream).
        return lu_listing(encode(stream) if fmt == "memory" else data)
    rows = []
    hdr = struct.Struct("<II")
    for i, (fam, r) in enumerate(_records(stream)):
        # The header's length where the record was read (xenstored streams may
        # be big-endian, and may count padding or not: their decoded length).
        framed = r.offset is not None and fam != "xenstore"
        n = hdr.unpack_from(data, r.offset)[1] if framed else _body_len(fam, r)
        rows.append((i, r.offset, _name(fam, r), r.type, n))
    return rows


def print_summary(summary: dict[str, Any], as_json: bool) -> int:
    """Print what ``xenlu inspect`` found (one JSON object with ``as_json``)."""
    if as_json:
        out(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    keys = ("format", "version", "xen_version", "epoch", "domain_type", "records", "bytes")
    for k in keys:
        if summary.get(k) is not None:
            out(f"{k:12} {summary[k]}")
    out("records by type:")
    for name, n in sorted(summary["record_counts"].items()):
        out(f"  {name:28} {n:8}  {summary['record_bytes'][name]:12} bytes")
    for d in summary.get("domains", []):
        ents = ", ".join(f"{k} {v}" for k, v in sorted(d["entry_counts"].items()))
        out(f"domain {d['domid']:5} {d['type']:3}  {ents}")
    if "sections_ok" in summary:
        out(f"sections_ok  {summary['sections_ok']}")
    for k in ("trailing_bytes", "hvm_context_trailing_bytes"):
        if k in summary:
            out(f"{k} {summary[k]}")
    if summary["format"] == "xenstore":
        for k in ("connections", "nodes", "watches", "transactions", "node_data_bytes"):
            out(f"{k:16} {summary[k]}")
    return 0


# --- parser -----------------------------------------------------------------


#: One record of ``verify -v``: (index, offset or None, name, type, body length).
Row = tuple[int, "int | None", str, int, int]


def row_line(row: Row) -> str:
    """One record of ``verify -v`` as text."""
    i, off, name, t, n = row
    at = "" if off is None else f"@{off:#x} "
    return f"#{i} {at}{t:#010x} {name} {n} bytes"


def report_verified(
    args: argparse.Namespace,
    got: str,
    rows: list[Row] | None,
    after: dict[str, int],
    size: int | None,
    *,
    rows_printed: bool = False,
) -> int:
    """The end of ``xenlu verify`` of a valid stream, mapped or read as it
    flowed: the ``--json`` object, or the record lines (``-v``; unless
    ``rows_printed``), what follows END (``after``, from
    :func:`trailing_info`; ``size`` the stream's bytes) and the verdict line."""
    if args.json:
        obj: dict[str, Any] = {"file": args.file, "format": got, "valid": True, "error": None}
        if rows is not None:
            obj["records"] = [
                {"index": i, "offset": o, "type": t, "name": n, "length": ln}
                for i, o, n, t, ln in rows
            ]
            obj.update(after)
        out(json.dumps(obj))
        return 0
    if not rows_printed:
        for row in rows or ():
            out(row_line(row))
    if after.get("trailing_bytes") and size is not None:
        k = after["trailing_bytes"]
        out(f"{k} bytes after END @{size - k:#x}: not part of the stream (kept)")
    if after.get("hvm_context_trailing_bytes"):
        k = after["hvm_context_trailing_bytes"]
        out(f"{k} bytes after the HVM_CONTEXT END entry: not read by Xen (kept)")
    if not args.quiet:
        out(f"{args.file}: OK ({got})")
    return 0
