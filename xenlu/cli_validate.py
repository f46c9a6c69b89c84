"""``xenlu validate`` and ``xenlu plan``: the semantic checks of LU spec §7 and
the restore plan of §6 on the command line.

    xenlu validate [--json] [--strict] [--format lu|xenstore|memory] [--liveupdate …] FILE
    xenlu plan [--json] [--format lu|memory] [--liveupdate <N>M@0x<start>] FILE

``validate`` exits 0 when there is no error, 1 when there is one (warnings
fail only with ``--strict``); ``plan`` exits 0. A stream that does not decode
is one line on stderr and exit 1, like ``xenlu verify``.

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

from xenlu.errors import CallerError, XenLUError

__all__ = ["cmd_plan", "cmd_validate", "register"]


def _load(args: argparse.Namespace) -> Any:
    """The LU stream of FILE (``--format memory``: read from a hand-over image)."""
    from xenlu.cli import load_input
    from xenlu.lu_stream import LUStream
    from xenlu.xenstore_stream import XenstoreStream

    fmt = args.format
    if fmt == "lu" and args.file != "-" and args.command == "validate":
        from xenlu.api import detect_format

        try:
            if detect_format(args.file) == "xenstore":
                fmt = "xenstore"
        except XenLUError:
            pass  # decoding as LU below reports it
    stream = load_input(args.file, fmt, args.liveupdate)
    if isinstance(stream, XenstoreStream) and args.command == "validate":
        return stream
    if not isinstance(stream, LUStream):
        raise CallerError(f"{args.file} is not a Live Update stream")
    return stream


def _fail(args: argparse.Namespace, exc: XenLUError) -> int:
    print(f"{args.file}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


def cmd_validate(args: argparse.Namespace) -> int:
    """``xenlu validate``: 0 without errors, 1 with errors (or warnings and ``--strict``)."""
    from xenlu.validate import validate
    from xenlu.xenstore_stream import XenstoreStream
    from xenlu.xenstore_validate import validate_xenstore

    try:
        stream = _load(args)
        if isinstance(stream, XenstoreStream):
            report: Any = validate_xenstore(stream)
        else:
            report = validate(
                stream,
                bootmem_check=not args.no_bootmem_check,
                max_per_code=args.max_per_code,
            )
    except XenLUError as exc:
        return _fail(args, exc)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        for line in report.summary().splitlines()[:-1]:
            print(line)
        state = "OK" if report.ok else "INVALID"
        print(f"{args.file}: {state}: {report.nr_errors} errors, {report.nr_warnings} warnings")
    if not report.ok:
        return 1
    return 1 if args.strict and report.nr_warnings else 0


def cmd_plan(args: argparse.Namespace) -> int:
    """``xenlu plan``: print the passes, parallel groups and edges."""
    from xenlu.plan import plan

    try:
        p = plan(_load(args))
    except XenLUError as exc:
        return _fail(args, exc)
    if args.json:
        print(json.dumps(p.to_json(), indent=2, sort_keys=True))
    else:
        print(p.summary())
    return 0


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--format",
        default="lu",
        choices=["lu", "xenstore", "memory"],
        help="an LU stream file, a xenstored migration stream, or a memory image with the "
        "hand-over (needs --liveupdate); an LU stream file starting 'xenstore' is taken as one",
    )
    p.add_argument("--liveupdate", metavar="<N>M@0x<start>", help="LU bootmem, for --format memory")
    p.add_argument("file", metavar="FILE", help="input file, - for stdin")


def register(subparsers: Any) -> None:
    """Add the ``validate`` and ``plan`` commands to the ``xenlu`` parser."""
    p = subparsers.add_parser("validate", help="whole-host semantic checks (LU spec §7)")
    _add_input(p)
    p.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    p.add_argument(
        "--max-per-code",
        type=int,
        default=100,
        metavar="N",
        help="findings reported per code per domain (default 100; the rest are counted)",
    )
    p.add_argument(
        "--no-bootmem-check",
        action="store_true",
        help="skip the rules about frames and extents inside the LU bootmem",
    )
    p.set_defaults(func=cmd_validate)

    p = subparsers.add_parser("plan", help="restore passes, parallel groups and edges (§6)")
    _add_input(p)
    p.set_defaults(func=cmd_plan)
