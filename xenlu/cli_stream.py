"""``xenlu verify`` of a stream that flows: a pipe, FIFO, character device or
socket, and ``--tee OUT``.

The input is read a piece at a time into the incremental decoder
(:class:`xenlu.feed.Decoder`): memory stays bounded whatever the stream's
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

from xenlu.cli_io import IOFailure, UsageError, _os_reason, error_json, out, stage, stdout_binary
from xenlu.errors import XenLUError
from xenlu.feed import DEFAULT_CHUNK, DEFAULT_LIMIT, Decoder, read_pieces

__all__ = ["verify_flowing"]


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
    for piece in read_pieces(src, DEFAULT_CHUNK):
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
    progress (its start, when it is faulty); while a record larger than the
    buffer is being checked, its pieces as they pass."""
    upto = d.checked
    if ok and d.fed - upto > d.limit:
        upto = d.fed - d.buffered
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
        if opened:
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
