"""``xenlu validate``, ``xenlu check`` and ``xenlu plan``: the semantic
checks of LU spec §7 (``check``: with verify's, in one pass) and the restore
plan of §6 on the command line.

    xenlu validate [--json|-q] [--strict] [--format lu|xenstore|memory] [--liveupdate …] FILE
    xenlu check [--json|-q] [--strict] [--format lu|xenstore|memory] [--liveupdate …] FILE
    xenlu plan [--json] [--format lu|memory] [--liveupdate SIZE@START] FILE

``validate`` exits 0 when there is no error, 1 when there is one (warnings
fail only with ``--strict``); ``plan`` exits 0. A stream that does not decode
is one line on stderr and exit 1, like ``xenlu verify`` (``validate --json``
also prints verify's JSON error object on stdout). The other exit codes are
those of :mod:`xenlu.cli.io`.

>>> import argparse
>>> ap = argparse.ArgumentParser(prog="xenlu")
>>> register(ap.add_subparsers(dest="command"))
>>> ap.parse_args(["validate", "--json", "host.lu"]).json
True
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from xenlu.cli.io import UsageError, add_input_options, epilog, error_json, guarded, out, read_input
from xenlu.cli.progress import progress
from xenlu.core.errors import XenLUError

__all__ = ["cmd_check", "cmd_plan", "cmd_validate", "register"]


class _Input:
    """FILE as ``validate``/``plan`` take it: its format and either its bytes
    (a regular file, mapped) or, for a pipe, FIFO, device or socket, the
    stream already decoded as it flowed (the input itself never held)."""

    def __init__(self, fmt: str, data: Any = None, stream: Any = None) -> None:
        self.fmt, self.data, self.stream = fmt, data, stream

    def size(self) -> int:
        return len(self.data) if self.data is not None else 0  # a pipe: unknown

    def load(self, args: argparse.Namespace) -> Any:
        """The stream (``memory``: read from a hand-over image)."""
        if self.stream is not None:
            return self.stream
        from xenlu.cli.io import decode_input as _decode

        return _decode(self.data, self.fmt, args.liveupdate)


def _read(args: argparse.Namespace, families: tuple[str, ...] = ("lu",)) -> _Input:
    """FILE with its format (a usage error before any I/O): LU, a memory
    image holding the hand-over (``--liveupdate``) or, where ``families``
    allows it, a xenstored stream (recognised by its ident when no
    ``--format`` is given)."""
    from xenlu.api import sniff
    from xenlu.cli.io import input_format as _input_format
    from xenlu.cli.io import open_flowing

    fmt = _input_format(args, "auto")
    src = open_flowing(args.file) if fmt != "memory" else None
    if src is not None:  # a pipe, FIFO, device or socket: read as it flows
        from xenlu.cli.stream import load_flowing

        return _Input(fmt, stream=load_flowing(args, fmt, src, families))
    data = read_input(args.file)
    if fmt == "auto":
        # Anything not recognised as another allowed family is read as LU, so
        # an xl file gets "not an LU stream: looks like an xl save file".
        fmt = "xenstore" if "xenstore" in families and sniff(data) == "xenstore" else "lu"
    return _Input(fmt, data)


def _report(args: argparse.Namespace, stream: Any, executor: Any = None) -> Any:
    """The validation report of a decoded stream; ``executor`` (the CLI's
    two worker threads for a large mapped input, or None) runs the owner
    index's sorts and merges."""
    from xenlu.api import format_of

    if format_of(stream) == "xenstore":
        from xenlu.xenstore.validate import validate_xenstore

        return validate_xenstore(stream)
    from xenlu.host.validation import validate

    return validate(
        stream,
        bootmem_check=not args.no_bootmem_check,
        max_per_code=args.max_per_code,
        executor=executor,
    )


def _overlapped(args: argparse.Namespace, inp: _Input, bar: Any) -> tuple[Any, Any] | None:
    """``check`` of a large mapped LU stream: (stream, report), validated while
    the section checksums finish on the second thread; None for any other input.

    The one walk decodes the stream on this thread (every structural check,
    bulk records as zero-copy views over the mapping, handed to validate as
    they are), each section's crc32c runs on the worker meanwhile and is
    settled once validate is done: a checksum that does not match raises
    the error ``verify`` raises, and the report is dropped.
    """
    if inp.fmt != "lu" or inp.data is None:
        return None
    from xenlu.cli.io import worker_threads

    with worker_threads(inp.data) as pool:
        if pool is None:
            return None
        from xenlu.lu.stream import decode_lu_overlapped

        stream, pending = decode_lu_overlapped(inp.data, executor=pool)
        bar.phase("validate")
        try:
            report = _report(args, stream, pool)
        except Exception:
            pending.settle()  # a bad checksum is the stream's first error
            raise
        except BaseException:
            pending.wait()  # (no worker outlives the mapping)
            raise
        pending.settle()
        return stream, report


def _validated(args: argparse.Namespace, command: str) -> tuple[Any, Any]:
    """FILE decoded once (a pipe as it flows) and validated: (stream, report).
    With ``--json``, a stream that does not decode prints ``verify --json``'s
    error object before the error goes to the contract."""
    if args.quiet and args.json:
        raise UsageError("-q and --json exclude each other")
    try:
        inp = _read(args, ("lu", "xenstore"))
        with progress(command, inp.size(), quiet=args.quiet) as bar:
            bar.phase("decode")
            got = _overlapped(args, inp, bar) if command == "check" else None
            if got is not None:
                return got
            stream = inp.load(args)
            bar.phase("validate")
            from xenlu.cli.io import worker_threads

            # a large mapped input: the owner index sorts and merges on two threads
            with worker_threads(inp.data if inp.data is not None else b"") as ex:
                return stream, _report(args, stream, ex)
    except XenLUError as exc:
        if args.json:  # the same object as ``verify --json``
            fmt = args.format if args.format not in (None, "auto") else None
            out(json.dumps(error_json(exc, fmt, args.file)))
        raise


def _verdict(args: argparse.Namespace, report: Any, what: str = "") -> int:
    """Print the findings and the one-line verdict (unless ``-q``); the exit code."""
    if not args.quiet and not args.json:
        for line in report.summary().splitlines()[:-1]:
            out(line)
        state = "OK" if report.ok else "INVALID"
        out(f"{args.file}: {state}{what}: {report.nr_errors} errors, {report.nr_warnings} warnings")
    if not report.ok:
        return 1
    return 1 if args.strict and report.nr_warnings else 0


def cmd_validate(args: argparse.Namespace) -> int:
    """``xenlu validate``: 0 without errors, 1 with errors (or warnings and ``--strict``)."""
    _stream, report = _validated(args, "validate")
    if args.json:
        _print_json(report.to_json())
    return _verdict(args, report)


def _print_json(obj: Any) -> None:
    """``out(json.dumps(obj, indent=2, sort_keys=True))``, the same text,
    written as it is encoded: an indented ``dumps`` first holds every piece
    of the text in a list (for a report of thousands of findings, several
    times the report's size)."""
    if sys.stdout is None:
        out()  # the I/O error of a closed stdout
    json.dump(obj, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def cmd_check(args: argparse.Namespace) -> int:
    """``xenlu check``: verify and validate in one mapping of FILE; 0 when it
    decodes and has no semantic error, 1 otherwise (warnings with ``--strict``).

    The stream is decoded once (every structural check of ``verify``; bulk
    entries stay zero-copy views over the mapping) and validated in place.
    For a large mapped LU file the section checksums run on a second thread
    meanwhile and are settled after validate: a bad one is the error
    ``verify`` gives, the report is dropped. ``--json`` prints verify's
    object with the report under ``report``.
    """
    from xenlu.api import format_of

    stream, report = _validated(args, "check")
    fmt = format_of(stream)
    if args.json:
        obj = {"file": args.file, "format": fmt, "valid": True, "error": None}
        obj["report"] = report.to_json()
        out(json.dumps(obj, indent=2, sort_keys=True))
    return _verdict(args, report, f" ({fmt})")


def cmd_plan(args: argparse.Namespace) -> int:
    """``xenlu plan``: print the passes, parallel groups and edges."""
    from xenlu.host.restore_plan import plan

    inp = _read(args)
    with progress("plan", inp.size(), quiet=args.quiet) as bar:
        bar.phase("decode")
        stream = inp.load(args)
        bar.phase("plan")
        p = plan(stream)
    if args.json:
        out(json.dumps(p.to_json(), indent=2, sort_keys=True))
    else:
        out(p.summary())
    return 0


def _positive(text: str) -> int:
    """argparse type: a decimal integer >= 1 (at most 9 digits)."""
    t = text.strip()
    if not (t.isdigit() and t.isascii() and len(t) <= 9 and int(t) >= 1):
        shown = text if len(text) <= 20 else text[:20] + "…"
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {shown!r}")
    return int(t)


def register(subparsers: Any) -> None:
    """Add the ``validate``, ``check`` and ``plan`` commands to the ``xenlu`` parser."""
    raw = argparse.RawDescriptionHelpFormatter
    for name, fn, help_, desc, examples in (
        (
            "validate",
            cmd_validate,
            "whole-host semantic checks (LU spec §7; xenstored streams too)",
            "Check every rule of LU spec §7 that relates two or more records "
            "(for a xenstored migration stream: its connections, nodes, watches and "
            "transactions).",
            (
                "xenlu validate --strict host.lu",
                "xenlu validate --json --liveupdate 64M@0x8000000 memory.img | jq .findings",
            ),
        ),
        (
            "check",
            cmd_check,
            "verify and validate in one pass over the file",
            "Verify FILE (every structural check of 'xenlu verify') and validate it "
            "(every rule of 'xenlu validate') in one mapping, each byte read once.",
            ("xenlu check host.lu", "xenlu check --json host.lu | jq .report.errors"),
        ),
    ):
        p = subparsers.add_parser(
            name, help=help_, description=desc, epilog=epilog(*examples), formatter_class=raw
        )
        p.add_argument("--json", action="store_true", help="print one JSON object")
        add_input_options(p, ["lu", "xenstore"], "an LU stream, or a xenstored stream by its ident")
        p.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
        p.add_argument(
            "-q", "--quiet", action="store_true", help="no output (no progress bar), exit code only"
        )
        p.add_argument(
            "--max-per-code",
            type=_positive,
            default=100,
            metavar="N",
            help="findings reported per code per domain (default 100; the rest are counted)",
        )
        p.add_argument(
            "--no-bootmem-check",
            action="store_true",
            help="skip the rules about frames and extents inside the LU bootmem",
        )
        p.set_defaults(func=guarded(name, fn))

    p = subparsers.add_parser(
        "plan",
        help="restore passes, parallel groups and edges (§6)",
        description="The restore plan of an LU stream: passes, parallel groups, edges.",
        epilog=epilog("xenlu plan host.lu", "xenlu plan --json host.lu | jq '.passes[].groups'"),
        formatter_class=raw,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_input_options(p, ["lu"], "lu")
    p.set_defaults(func=guarded("plan", cmd_plan))
