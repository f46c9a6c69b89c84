"""The ``xenlu`` command line: a thin layer over the library.

    xenlu verify [--format auto|lu|libxc|libxl|xl|memory] [--liveupdate SIZE@START]
                 [-q|-v] [--json] [--tee OUT [--stop-on-error]] FILE
    xenlu inspect [--json] [--format …] [--liveupdate SIZE@START] FILE
    xenlu convert --to-v3 IN OUT             libxc/libxl/xl stream v2 → v3
    xenlu convert --to X.Y [--allow-loss] [--report R.json] IN OUT   LU upgrade/rollback
    xenlu convert --dry-run --to X.Y [--allow-loss] [--json] IN      the pre-flight
    xenlu map FILE -o OUT.png|OUT.svg        picture of the host's memory (xenlu[plot])
    xenlu validate … / xenlu check … / xenlu plan … / xenlu schema …

``FILE`` may be ``-`` for standard input; ``verify``, ``inspect`` and
``validate`` read a pipe, FIFO, character device or socket as it flows
(:mod:`xenlu.cli.stream`); other commands read it to its end. Every
subcommand keeps one contract (:mod:`xenlu.cli.io`):
exit 0 valid / done, 1 the stream is invalid or a conversion was refused,
2 usage error, 74 an input or output failed (missing file, directory, closed
stdin, full disk, broken pipe), 69 an optional part is not installed, 70 a
bug in xenlu, 130 interrupted; a failure is exactly one line on stderr,
never a traceback; files are written atomically.

>>> main(["--version"])  # doctest: +SKIP
xenlu 0.1.0.dev0
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

# xenlu does no linear algebra: one OpenBLAS thread makes numpy's import (most
# of a short command's run time) cheaper. Set before numpy loads; a value the
# user set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from xenlu import __version__
from xenlu.api import FORMATS, encode, format_of
from xenlu.cli.io import (
    Exit,
    UsageError,
    add_input_options,
    decode_input,
    epilog,
    error_json,
    flush_stdout,
    guarded,
    input_format,
    load_input,
    one_line,
    open_flowing,
    out,
    read_input,
    report,
    worker_threads,
)
from xenlu.cli.listing import (
    inspect_summary,
    lu_listing,
    print_summary,
    record_listing,
    report_verified,
    trailing_info,
)
from xenlu.cli.progress import progress
from xenlu.core.errors import XenLUError

__all__ = ["build_parser", "inspect_summary", "load_input", "lu_listing", "main", "record_listing"]


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        # Whatever the user typed is echoed at most 40 characters long.
        text = re.sub(r"\S{41,}", lambda m: m.group()[:40] + "…", one_line(message))
        self.exit(int(Exit.USAGE), f"{self.prog}: {text} (see '{self.prog} --help')\n")


def cmd_verify(args: argparse.Namespace) -> int:
    """``xenlu verify``: 0 valid, 1 invalid; ``-v`` lists the records, ``--json`` one object."""
    from xenlu.api import verify

    if args.quiet and args.json:
        raise UsageError("-q and --json exclude each other")
    fmt = input_format(args, "auto")
    if args.tee is not None or args.stop_on_error:
        if fmt == "memory":
            raise UsageError("--tee and --stop-on-error read a stream, not a memory image")
        from xenlu.cli.stream import verify_flowing

        return verify_flowing(args, fmt, open_flowing(args.file))
    if fmt != "memory":
        src = open_flowing(args.file)
        if src is not None:  # a pipe, FIFO, device or socket: checked as it flows
            from xenlu.cli.stream import list_flowing, verify_flowing

            return (list_flowing if args.verbose else verify_flowing)(args, fmt, src)
    data = read_input(args.file)
    rows = None
    after: dict[str, int] = {}
    try:
        with progress("verify", len(data), quiet=args.quiet) as bar:
            # One library call: the bar shows the phase and a clock (no
            # hook inside the walkers yet).
            bar.phase("verify")
            if fmt != "memory" and not args.verbose:
                with worker_threads(data, fmt) as pool:
                    got = verify(data, fmt, executor=pool)
            else:
                stream = decode_input(data, fmt, args.liveupdate)
                got = format_of(stream)
                if args.verbose:
                    bar.phase("list records")
                    rows = record_listing(stream, data, fmt)
                    after = trailing_info(stream)
    except XenLUError as exc:
        if args.json:
            out(json.dumps(error_json(exc, None if fmt == "auto" else fmt, args.file)))
        raise
    return report_verified(args, got, rows, after, len(data))


def cmd_inspect(args: argparse.Namespace) -> int:
    """``xenlu inspect``: versions, record counts and bytes, domains."""
    fmt = input_format(args, "auto")
    if fmt != "memory":
        src = open_flowing(args.file)
        if src is not None:  # a pipe, FIFO, device or socket: read as it flows
            from xenlu.cli.stream import inspect_flowing

            return inspect_flowing(args, fmt, src)
    data = read_input(args.file)
    stream = decode_input(data, fmt, args.liveupdate)
    # The stream's size: in a memory image, the stream's bytes, not the image's.
    nbytes = len(encode(stream)) if fmt == "memory" else len(data)
    return print_summary(inspect_summary(stream, nbytes), args.json)


def build_parser() -> argparse.ArgumentParser:
    """The ``xenlu`` parser with every subcommand."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="xenlu",
        description="Xen Live Update and migration streams, byte-exact.",
        epilog=epilog("xenlu verify host.lu", "xenlu convert --to 4.15 host.lu host-4.15.lu"),
        formatter_class=raw,
    )
    parser.add_argument("--version", action="version", version=f"xenlu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "verify",
        help="structurally verify a stream",
        description="Structurally verify a stream: framing, grammar, record bodies, checksums.",
        epilog=epilog(
            "xenlu verify -q guest.xc && echo valid",
            "xenlu verify --json --liveupdate 64M@0x8000000 memory.img",
            "xl save -p guest /dev/stdout | xenlu verify --tee guest.save -",
        ),
        formatter_class=raw,
    )
    add_input_options(p, FORMATS, "auto")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-q", "--quiet", action="store_true", help="no output (no progress bar), exit code only"
    )
    g.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="list every record: index and offset as errors give them, type, name, length",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: file, format, valid, error (class, offset, record_index, "
        "record_type, field, expected, got)",
    )
    p.add_argument(
        "--tee",
        metavar="OUT",
        help="copy the stream to OUT (- for stdout) unchanged while verifying it, "
        "e.g. inside a migration pipeline; the copy is byte-identical",
    )
    p.add_argument(
        "--stop-on-error",
        action="store_true",
        help="with --tee: forward only checked records and stop at the start of the "
        "first faulty one (the receiving side then sees a truncated stream)",
    )
    p.set_defaults(func=guarded("verify", cmd_verify))

    p = sub.add_parser(
        "inspect",
        help="summarise a stream",
        description="Summarise a stream: versions, record counts and bytes, domains.",
        epilog=epilog("xenlu inspect host.lu", "xenlu inspect --json guest.xl | jq .records"),
        formatter_class=raw,
    )
    add_input_options(p, FORMATS, "auto")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=guarded("inspect", cmd_inspect))

    # A subcommand module that fails to import is a bug: let it show.
    for name in (
        "xenlu.cli.convert",
        "xenlu.cli.validate",
        "xenlu.cli.compat",
        "xenlu.cli.map",
        "xenlu.cli.view",
    ):
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (argparse exits 2 on a usage error, 0 on --help)."""
    command = ""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = " ".join(
            c for c in (args.command, getattr(args, "schema_command", None)) if c is not None
        )
        rc: int = args.func(args)
        flush_stdout()
        return rc
    except (Exception, KeyboardInterrupt) as exc:
        # The subcommands map their own failures (xenlu.cli.io.guarded);
        # this is Ctrl-C while parsing, a failure before a command ran, or
        # one that a command without the guard let through.
        return report(command, exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
