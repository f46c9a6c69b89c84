"""``xenlu verify`` of a stream that flows: a pipe, FIFO, character device or
socket, and ``--tee OUT``.

The input is read a piece at a time into the incremental decoder
(:class:`xenlu.feed.decoder.Decoder`): memory stays bounded whatever the stream's
size, and the verdict and error are those of the mapped file. With
``--tee OUT`` (``-``: standard output) every byte read is written to OUT
unchanged; by default everything is forwarded, the first fault reported
at the end (exit 1); ``--stop-on-error`` forwards only records that have
been checked, and stops at the start of the faulty one, so the receiving
side of a migration sees a truncated stream and aborts. A file OUT is
written atomically (beside its target, renamed into place once the input
has ended, fault or not).
"""

from __future__ import annotations

import argparse
import json
from typing import IO, Any

from xenlu.cli.io import IOFailure, UsageError, error_json, out, stage, stdout_binary
from xenlu.cli.io import os_reason as _os_reason
from xenlu.cli.listing import Row, report_verified, row_line
from xenlu.core.errors import XenLUError
from xenlu.feed.decoder import (
    DEFAULT_CHUNK,
    DEFAULT_LIMIT,
    Decoder,
    RecordEvent,
    SectionEvent,
    StreamEnd,
    read_ahead,
    read_pieces,
)

__all__ = ["inspect_flowing", "list_flowing", "load_flowing", "verify_flowing"]


class _Tee:
    """Where the copy goes, and how much of the input went there."""

    def __init__(self, sink: IO[bytes], name: str) -> None:
        self.sink = sink
        self.name = name
        self.sent = 0

    def write(self, data: memoryview | bytes) -> None:
        try:
            self.sink.write(data)
        except OSError as exc:
            raise IOFailure(f"cannot write {self.name}: {_os_reason(exc)}") from None
        self.sent += len(data)


def _run(
    src: IO[bytes],
    fmt: str,
    tee: _Tee | None,
    stop_on_error: bool,
    limit: int,
) -> tuple[str, XenLUError | None]:
    """Read ``src`` to its end (or to the first fault when nothing needs the
    rest); the format and the first fault."""
    d = Decoder(fmt, limit=limit, events=False)
    err: XenLUError | None = None
    held = bytearray()  # --stop-on-error: read, not yet known good
    for piece in read_ahead(src, DEFAULT_CHUNK):
        if err is not None:
            if tee is not None and not stop_on_error:
                tee.write(piece)
                continue
            break
        if tee is not None and not stop_on_error:
            tee.write(piece)  # forwarded before it is checked: no delay downstream
        try:
            d.feed(piece)
        except XenLUError as exc:
            err = exc
        if tee is not None and stop_on_error:
            held += piece
            _forward(tee, held, d, err is None)
            if err is not None:
                break
    if err is None:
        try:
            d.close()
        except XenLUError as exc:
            err = exc
        if tee is not None and stop_on_error:
            _forward(tee, held, d, err is None)
    return d.format, err


def _forward(tee: _Tee, held: bytearray, d: Decoder, ok: bool) -> None:
    """Write the held bytes the decoder has checked: up to the record in
    progress (its start, when it is faulty). A record larger than the buffer
    is held back up to the buffer, then forwarded a checked piece at a time
    while no fault has been found in it (:attr:`Decoder.vouched`): when it
    turns out faulty, the output ends inside it, after its last clean piece."""
    upto = d.checked
    if ok and d.fed - upto > d.limit:
        upto = max(upto, d.vouched)
    if d.done:
        upto = d.fed
    n = upto - tee.sent
    if n > 0:
        with memoryview(held) as mv:
            tee.write(mv[:n])
        del held[:n]


def verify_flowing(args: argparse.Namespace, fmt: str, src: IO[bytes] | None) -> int:
    """``xenlu verify`` reading FILE as it flows (``src``), or any FILE with ``--tee``
    (not ``-v``, which lists a stream read whole)."""
    tee_path: str | None = args.tee
    if args.stop_on_error and tee_path is None:
        raise UsageError("--stop-on-error needs --tee OUT")
    if tee_path is not None and args.verbose:
        raise UsageError("-v lists a stream read whole: drop --tee")
    if tee_path == "-" and args.json:
        raise UsageError("--tee - writes the stream to stdout: drop --json")
    opened = src is None
    if src is None:
        try:
            src = open(args.file, "rb", buffering=0)  # noqa: SIM115 - closed below
        except OSError as exc:
            raise IOFailure(f"cannot read {args.file}: {_os_reason(exc)}") from None
    limit = DEFAULT_LIMIT
    result: list[Any] = []
    try:
        if tee_path is None:
            result[:] = _run(src, fmt, None, False, limit)
        elif tee_path == "-":
            sink = stdout_binary()
            result[:] = _run(src, fmt, _Tee(sink, "standard output"), args.stop_on_error, limit)
            try:
                sink.flush()
            except OSError as exc:
                raise IOFailure(f"cannot write standard output: {_os_reason(exc)}") from None
        else:

            def write(f: IO[bytes]) -> None:
                result[:] = _run(src, fmt, _Tee(f, tee_path), args.stop_on_error, limit)

            stage(tee_path, write).commit()
    finally:
        if opened or args.file != "-":
            src.close()
    got, err = result
    if err is not None:
        if args.json:
            out(json.dumps(error_json(err, None if fmt == "auto" else fmt, args.file)))
        raise err
    if args.json:
        obj: dict[str, Any] = {"file": args.file, "format": got, "valid": True, "error": None}
        out(json.dumps(obj))
        return 0
    if not args.quiet and tee_path != "-":
        out(f"{args.file}: OK ({got})")
    return 0


def _read_head(src: IO[bytes], n: int) -> bytes:
    head = b""
    for piece in read_pieces(src, n):
        head += bytes(piece)
        if len(head) >= n:
            break
    return head


class _Tally:
    """What ``inspect`` of a flowing stream counts from the decoder's events."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.totals: dict[str, int] = {}
        self.domains: list[dict[str, Any]] = []
        self.dom: dict[str, Any] | None = None
        self.version: tuple[int, int] | None = None

    def drain(self, d: Decoder) -> None:
        """Count every event the decoder has ready."""
        while True:
            ev = d.next_event()
            if isinstance(ev, SectionEvent):
                self.dom = None
            elif isinstance(ev, RecordEvent):
                self.record(ev)
            elif not isinstance(ev, StreamEnd):
                return

    def record(self, ev: RecordEvent) -> None:
        from xenlu.core.registry import record_name
        from xenlu.lu.grammar import HVM, name_of
        from xenlu.lu.records import T

        name = record_name(ev.type, "libxl" if ev.family == "libxl" else None)
        name = name or f"{ev.type:#010x}"
        self.counts[name] = self.counts.get(name, 0) + 1
        self.totals[name] = self.totals.get(name, 0) + ev.length
        if ev.type == T.LU_VERSION and ev.value is not None:
            self.version = (ev.value.xen_major, ev.value.xen_minor)
        elif ev.type == T.LU_DOMAIN and ev.value is not None:
            info = ev.value
            kind = "hvm" if info.domain_type == HVM else "pv"
            self.dom = {"domid": info.domid, "type": kind, "record_counts": {}, "entry_counts": {}}
            self.domains.append(self.dom)
        dom = self.dom
        if dom is not None and ev.type != T.LU_SECTION_END:
            lu_name = name_of(ev.type)  # (LUDomain.record_counts' naming)
            rc = dom["record_counts"]
            rc[lu_name] = rc.get(lu_name, 0) + 1
            if ev.entries is not None:
                ec = dom["entry_counts"]
                ec[lu_name] = ec.get(lu_name, 0) + ev.entries

    def summary(self, d: Decoder, end: StreamEnd) -> dict[str, Any]:
        """The summary of the mapped file (:func:`xenlu.cli.listing.inspect_summary`'s keys)."""
        from xenlu.core.epochs import epoch_of, fmt_epoch

        got = d.format
        summary: dict[str, Any] = {"format": got}
        if got == "lu":
            assert self.version is not None
            summary.update(
                version=1,
                xen_version=fmt_epoch(self.version),
                epoch=fmt_epoch(epoch_of(*self.version)),
            )
        else:
            info = d.headers
            summary.update(
                version=info.get("version"),
                xen_version=info.get("xen_version"),
                domain_type=info.get("domain_type"),
            )
            if got in ("libxl", "xl"):
                summary["libxl_version"] = info.get("libxl_version")
        summary.update(
            records=sum(self.counts.values()),
            bytes=end.size,
            record_counts=self.counts,
            record_bytes=self.totals,
        )
        if got in ("libxc", "libxl", "xl"):
            summary["trailing_bytes"] = end.trailing  # after END: the container's (issue 13)
            if end.hvm_context_trailing:
                summary["hvm_context_trailing_bytes"] = end.hvm_context_trailing
        if got == "lu":
            summary["domains"] = self.domains
            summary["sections_ok"] = True
        return summary


def inspect_flowing(args: argparse.Namespace, fmt: str, src: IO[bytes]) -> int:
    """``xenlu inspect`` of FILE read as it flows: the summary of the mapped
    file, built from the decoder's events (counts per record type, bytes,
    LU domains and their entry counts) in bounded memory. A xenstored stream
    (no incremental reader yet) is read whole."""
    from xenlu.api import sniff
    from xenlu.cli.io import decode_input as _decode
    from xenlu.cli.listing import inspect_summary as _summary
    from xenlu.cli.listing import print_summary

    try:
        head = _read_head(src, 32)
        if fmt == "xenstore" or (fmt == "auto" and sniff(head) == "xenstore"):
            from xenlu.cli.io import read_all as _read_all

            data = head + _read_all(src)
            return print_summary(_summary(_decode(data, fmt, None), len(data)), args.json)
        d = Decoder(fmt)
        tally = _Tally()
        if head:
            d.feed(head)
            tally.drain(d)
        for piece in read_ahead(src, DEFAULT_CHUNK):
            d.feed(piece)
            tally.drain(d)
        end = d.close()
        tally.drain(d)
    finally:
        if args.file != "-":
            src.close()
    return print_summary(tally.summary(d, end), args.json)


def list_flowing(args: argparse.Namespace, fmt: str, src: IO[bytes]) -> int:
    """``xenlu verify -v`` of FILE read as it flows: each record is listed
    once it is checked (text: a line at a time, never the stream held;
    ``--json``: one object at the end, a few fields per record). A faulty
    stream lists the records before the fault, then its error. A xenstored
    stream (no incremental reader yet) is read whole."""
    rows: list[Row] = []
    try:
        got, end = _list_rows(args, fmt, src, rows)
    except XenLUError as exc:
        if args.json:
            out(json.dumps(error_json(exc, None if fmt == "auto" else fmt, args.file)))
        raise
    finally:
        if args.file != "-":
            src.close()
    after: dict[str, int] = {}
    if end is not None and got in ("libxc", "libxl", "xl"):
        after["trailing_bytes"] = end.trailing
        if end.hvm_context_trailing:
            after["hvm_context_trailing_bytes"] = end.hvm_context_trailing
    size = None if end is None else end.size
    return report_verified(args, got, rows, after, size, rows_printed=True)


def _list_rows(
    args: argparse.Namespace, fmt: str, src: IO[bytes], rows: list[Row]
) -> tuple[str, StreamEnd | None]:
    """Read ``src`` for ``verify -v``: print each record's line (text) or
    keep its row (JSON); the format and the stream's end."""
    from xenlu.api import sniff
    from xenlu.core.registry import record_name

    head = _read_head(src, 32)
    if fmt == "xenstore" or (fmt == "auto" and sniff(head) == "xenstore"):
        from xenlu.cli.io import decode_input as _decode
        from xenlu.cli.io import read_all as _read_all
        from xenlu.cli.listing import record_listing

        data = head + _read_all(src)
        rows += record_listing(_decode(data, "xenstore", None), data, "xenstore")
        if not args.json:
            for row in rows:
                out(row_line(row))
        return "xenstore", None
    d = Decoder(fmt)
    n = 0

    def drain() -> None:
        nonlocal n
        while isinstance(ev := d.next_event(), (RecordEvent, SectionEvent, StreamEnd)):
            if not isinstance(ev, RecordEvent):
                continue
            name = record_name(ev.type, "libxl" if ev.family == "libxl" else None)
            # LU: numbered as errors number them; others: in stream order.
            i = ev.index if ev.family == "lu" else n
            row = (i, ev.offset, name or f"{ev.type:#010x}", ev.type, ev.length)
            n += 1
            if args.json:
                rows.append(row)
            else:
                out(row_line(row))

    if head:
        d.feed(head)
        drain()
    for piece in read_ahead(src, DEFAULT_CHUNK):
        d.feed(piece)
        drain()
    end = d.close()
    drain()
    return d.format, end


def load_flowing(
    args: argparse.Namespace, fmt: str, src: IO[bytes], families: tuple[str, ...]
) -> Any:
    """The decoded stream of FILE read as it flows, for ``xenlu validate``,
    ``check`` and ``plan``: an LU stream is checked record by record as
    ``verify`` checks it, and only what validate and plan read is kept
    (:data:`xenlu.host.validation.COLUMNS`: the per-domain columns, each
    over its own copy of its record; vCPU blobs and HVM context data
    reduced to their ids; HVM_PARAMS, TSC, CPUID/MSR policies and unknown
    records dropped); the input itself is never held. A xenstored stream (no
    incremental reader yet) is read whole. ``fmt`` ``auto`` reads anything
    but an allowed other family as LU, as :func:`xenlu.cli.validate._read` does."""
    from xenlu.api import sniff
    from xenlu.cli.io import decode_input as _decode

    try:
        head = _read_head(src, 32)
        if fmt == "auto":
            fmt = "xenstore" if "xenstore" in families and sniff(head) == "xenstore" else "lu"
        if fmt != "lu":
            from xenlu.cli.io import read_all as _read_all

            return _decode(head + _read_all(src), fmt, None)
        from xenlu.host.validation import COLUMNS

        # Kept records are held whole (their values need them); a large bulk
        # record that is not kept is checked in pieces of the default buffer.
        d = Decoder("lu", events=False, keep=COLUMNS)
        if head:
            d.feed(head)
        for piece in read_ahead(src, DEFAULT_CHUNK):
            d.feed(piece)
        d.close()
        return d.stream
    finally:
        if args.file != "-":
            src.close()
