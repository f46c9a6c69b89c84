"""The viewing and editing commands: ``xenlu show``, ``dump``, ``build`` and ``diff``.

They keep the contract of :mod:`xenlu.cli.io` (one line on stderr, exit
codes, outputs written atomically with :func:`~xenlu.cli.io.stage`).
"""

from __future__ import annotations

import argparse
import io
import json
from typing import IO, Any

from xenlu.api import FORMATS, encode, sniff
from xenlu.cli.io import (
    Exit,
    UsageError,
    add_input_options,
    decode_input,
    epilog,
    guarded,
    input_format,
    load_input,
    out,
    read_input,
    stage,
    stdout_binary,
)
from xenlu.cli.progress import progress
from xenlu.core.errors import XenLUError

__all__ = ["register"]


def _stream_bytes(args: argparse.Namespace, path: str) -> Any:
    """The stream bytes of FILE: a memory image's stream is re-encoded (its own offsets)."""
    fmt = input_format(args, "auto")
    if fmt == "memory":
        return fmt, encode(load_input(path, fmt, args.liveupdate))
    return fmt, read_input(path)


def cmd_show(args: argparse.Namespace) -> int:
    """``xenlu show``: every record, fields by name; a fault ends the listing."""
    from xenlu.tools.show import show_error, show_lines

    fmt, data = _stream_bytes(args, args.file)
    if args.domain is not None and fmt not in ("lu", "memory") and sniff(data) != "lu":
        raise UsageError("--domain selects a domain section of an LU stream")
    try:
        for line in show_lines(
            data,
            "lu" if fmt == "memory" else fmt,
            show_all=args.all,
            domain=args.domain,
            record=args.record,
        ):
            out(line)
    except XenLUError as exc:
        out(show_error(exc))
        raise
    return int(Exit.OK)


def _write_text(path: str, write: Any) -> None:
    if path == "-":
        f = io.TextIOWrapper(stdout_binary(), encoding="utf-8", write_through=False)
        write(f)
        f.flush()
        f.detach()
        return

    def fill(raw: IO[bytes]) -> None:
        text = io.TextIOWrapper(raw, encoding="utf-8")
        write(text)
        text.flush()
        text.detach()

    stage(path, fill).commit()


def cmd_dump(args: argparse.Namespace) -> int:
    """``xenlu dump``: the JSON form of a stream."""
    from xenlu.tools.jsonform import to_json
    from xenlu.tools.jsonform_text import dump_to

    fmt = input_format(args, "auto")
    data = read_input(args.file)
    with progress("dump", len(data)) as bar:
        bar.phase("decode")
        stream = decode_input(data, fmt, args.liveupdate)
        bar.phase("JSON form")
        doc = to_json(stream, inline_max=args.inline_max)
        bar.phase("write")
        _write_text(args.output, lambda f: dump_to(doc, f))
    return int(Exit.OK)


def cmd_build(args: argparse.Namespace) -> int:
    """``xenlu build``: stream bytes from a JSON form, then verify's checks."""
    from xenlu.tools.jsonform import build
    from xenlu.tools.jsonform_text import loads

    text = read_input(args.file)
    with progress("build", len(text)) as bar:
        bar.phase("parse")
        doc = loads(text)
        bar.phase("build" if args.no_check else "build and verify")
        data = build(doc, check=not args.no_check)
    if args.output == "-":
        sink = stdout_binary()
        sink.write(data)
        sink.flush()
    else:
        stage(args.output, lambda f: f.write(data)).commit()
    return int(Exit.OK)


def cmd_diff(args: argparse.Namespace) -> int:
    """``xenlu diff``: 0 equal, 1 different."""
    from xenlu.tools.streamdiff import diff_streams

    fmt = input_format(args, "auto")
    data_a, data_b = read_input(args.file), read_input(args.other)
    with progress("diff", len(data_a) + len(data_b), quiet=args.quiet) as bar:
        bar.phase("decode A")
        a = decode_input(data_a, fmt, args.liveupdate)
        bar.phase("decode B")
        b = decode_input(data_b, fmt, args.liveupdate)
        bar.phase("compare")
        diffs = diff_streams(a, b)
    if args.json:
        out(
            json.dumps(
                {
                    "a": args.file,
                    "b": args.other,
                    "equal": not diffs,
                    "differences": [d.to_json() for d in diffs],
                }
            )
        )
    elif not args.quiet:
        for d in diffs:
            for line in d.lines():
                out(line)
        out(f"{len(diffs)} difference{'s' if len(diffs) != 1 else ''}" if diffs else "equal")
    return int(Exit.INVALID if diffs else Exit.OK)


def _count(text: str) -> int:
    try:
        n = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    return n


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, 78)


def _command(
    subparsers: Any, name: str, help: str, description: str, *examples: str
) -> argparse.ArgumentParser:
    """One subcommand: its help line, its description wrapped, its examples."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=_wrap(description),
        epilog=epilog(*examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return p


def register(subparsers: Any) -> None:
    """Add ``show``, ``dump``, ``build`` and ``diff`` to the ``xenlu`` parser."""
    _register_show(subparsers)
    _register_dump(subparsers)
    _register_build(subparsers)
    _register_diff(subparsers)


def _register_show(subparsers: Any) -> None:
    p = _command(
        subparsers,
        "show",
        "list every record with its fields",
        "List every record (index, offset, type, length) with its fields by "
        "their spec names: frame numbers in hex, flags and enumerations by name. Bulk "
        "arrays show their first and last runs. A broken stream is listed up to the fault, "
        "then the error.",
        "xenlu show host.lu | less",
        "xenlu show --domain 1 --record LU_P2M --all host.lu",
    )
    add_input_options(p, FORMATS, "auto")
    p.add_argument("--all", action="store_true", help="every entry of bulk arrays")
    p.add_argument("--domain", type=_count, metavar="N", help="only domain N's section (LU)")
    p.add_argument("--record", metavar="NAME", help="only records named NAME (e.g. LU_P2M)")
    p.set_defaults(func=guarded("show", cmd_show))


def _register_dump(subparsers: Any) -> None:
    p = _command(
        subparsers,
        "dump",
        "the JSON form of a stream (edit it, then build)",
        "Write the JSON form of a stream (format xenlu-json/1, described in "
        "the xenlu.tools.jsonform module): records by spec field names, bulk arrays column-wise, "
        "unknown records as hex. `xenlu build` turns it back into the same bytes.",
        "xenlu dump host.lu -o host.json",
        "xenlu dump --inline-max -1 guest.xl | jq '.stream.records[].name'",
    )
    add_input_options(p, FORMATS, "auto")
    p.add_argument("-o", "--output", default="-", metavar="OUT", help="output file (default -)")
    p.add_argument(
        "--inline-max",
        type=_count,
        default=64,
        metavar="N",
        help="arrays of at most N entries as JSON lists, larger ones base64 per column "
        "(default 64; -1: every array as lists)",
    )
    p.set_defaults(func=guarded("dump", cmd_dump))


def _register_build(subparsers: Any) -> None:
    p = _command(
        subparsers,
        "build",
        "stream bytes from a JSON form",
        "Build stream bytes from a JSON form: lengths, padding, section crc32c "
        "and sizes are recomputed, then the stream is verified (exit 1 when invalid, "
        "nothing written; --no-check writes it anyway).",
        "xenlu build host.json -o host.lu",
        "xenlu build --no-check broken.json -o fault.lu",
    )
    p.add_argument("file", metavar="FILE", help="JSON form; - for stdin")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file (- stdout)")
    p.add_argument("--no-check", action="store_true", help="write without verifying")
    p.set_defaults(func=guarded("build", cmd_build))


def _register_diff(subparsers: Any) -> None:
    p = _command(
        subparsers,
        "diff",
        "semantic difference of two streams",
        "Compare two streams of one family field by field (epochs may differ); "
        "bulk arrays as keyed sets (entries added, removed, changed). Exit 0 when equal, "
        "1 when they differ.",
        "xenlu diff host.lu host-4.15.lu",
        "xenlu diff --json monday.lu tuesday.lu | jq .differences",
    )
    add_input_options(p, FORMATS, "auto")
    p.add_argument("other", metavar="FILE2", help="the second stream")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.add_argument("-q", "--quiet", action="store_true", help="no output, exit code only")
    p.set_defaults(func=guarded("diff", cmd_diff))
