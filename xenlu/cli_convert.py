"""``xenlu convert``: libxc v2 → v3, and LU upgrade / rollback.

    xenlu convert --to-v3 IN OUT
    xenlu convert --to X.Y [--allow-loss] [--report R.json] [-q] IN OUT

OUT is written atomically (:mod:`xenlu.cli_io`); it may be IN (converted in
place, keeping IN's mode) or ``-`` (standard output). The report is written
only once OUT is: both are staged first, then renamed into place. Options
that do not apply to ``--to-v3`` are usage errors.

>>> import argparse
>>> p = argparse.ArgumentParser(prog="xenlu")
>>> register(p.add_subparsers(dest="command"))
>>> p.parse_args(["convert", "--to", "4.15", "in.lu", "out.lu"]).to
(4, 15)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import IO, Any

from xenlu.cli_io import UsageError, epilog, guarded, out, read_input, stage, stdout_binary
from xenlu.errors import CallerError, ConversionError

__all__ = ["cmd_convert", "register"]


def _convert_v3(stream: Any) -> Any:
    """v2 → v3 for a libxc stream, or the libxc stream inside libxl / xl."""
    from xenlu.libxc_stream import LibxcStream, convert_v2_to_v3
    from xenlu.libxl import LibxcContext, LibxlStream, XlFile

    def libxc(s: LibxcStream) -> LibxcStream:
        if s.version != 2:
            raise ConversionError(f"the libxc stream is already version {s.version}")
        return convert_v2_to_v3(s)

    if isinstance(stream, LibxcStream):
        return libxc(stream)
    if isinstance(stream, XlFile):
        return dataclasses.replace(stream, stream=_convert_v3(stream.stream))
    if isinstance(stream, LibxlStream):
        recs = []
        for r in stream.records:
            if isinstance(r.value, LibxcContext):
                r = dataclasses.replace(r, value=LibxcContext(libxc(r.value.stream)))
            recs.append(r)
        return dataclasses.replace(stream, records=recs)
    raise CallerError(
        "an LU stream: --to-v3 converts libxc, libxl and xl streams (--to X.Y converts LU streams)"
    )


def _check_options(args: argparse.Namespace) -> None:
    if args.to_v3:
        extra = [o for o, v in (("--report", args.report), ("--allow-loss", args.allow_loss)) if v]
        if extra:
            verb = "apply" if len(extra) > 1 else "applies"
            raise UsageError(f"{' and '.join(extra)} {verb} to --to X.Y only, not to --to-v3")
    if args.report is not None and args.report == "-":
        raise UsageError("--report needs a file name (standard output carries OUT or the summary)")
    if args.report is not None and args.report in (args.input, args.output):
        raise UsageError("--report must name a file other than IN and OUT")


def cmd_convert(args: argparse.Namespace) -> int:
    """``convert --to-v3 IN OUT`` or ``convert --to X.Y [...] IN OUT``; raises on failure."""
    from xenlu.api import decode, encode_to

    _check_options(args)
    data = read_input(args.input)
    report: Any = None
    if args.to_v3:
        new = _convert_v3(decode(data, "auto"))
    else:
        from xenlu.compat import convert

        stream = decode(data, "lu")
        try:
            new, report = convert(stream, to=args.to, allow_loss=args.allow_loss)
        except ConversionError as exc:
            line = " ".join(str(exc).split())
            hint = (
                "" if "even with allow_loss" in line else " (--allow-loss performs it and reports)"
            )
            raise ConversionError(line + hint) from None

    def write_out(f: IO[bytes]) -> None:
        encode_to(new, f)

    def write_report(f: IO[bytes]) -> None:
        text = json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
        f.write(text.encode("utf-8"))

    if args.output == "-":
        sink = stdout_binary()
        write_out(sink)
        sink.flush()
        if report is not None and args.report:
            stage(args.report, write_report).commit()
    else:
        staged = stage(args.output, write_out)
        try:
            rep = stage(args.report, write_report) if report is not None and args.report else None
        except BaseException:
            staged.discard()
            raise
        staged.commit()
        if rep is not None:
            rep.commit()
    if report is not None and not args.quiet:
        if args.output == "-":
            print(report.summary(), file=sys.stderr)
        else:
            out(report.summary())
    return 0


def _version(text: str) -> Any:
    from xenlu.cli_compat import _version_arg

    return _version_arg(text)


def register(subparsers: Any) -> None:
    """Add the ``convert`` command to the ``xenlu`` parser."""
    p = subparsers.add_parser(
        "convert",
        help="libxc v2 → v3, or LU upgrade / rollback",
        description="Convert a stream and write it atomically to OUT (OUT may be IN, or -).",
        epilog=epilog(
            "xenlu convert --to-v3 guest-v2.xc guest-v3.xc",
            "xenlu convert --to 4.15 --allow-loss --report r.json host.lu host-4.15.lu",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--to-v3", action="store_true", help="libxc stream v2 → v3 (also inside libxl and xl)"
    )
    g.add_argument(
        "--to",
        type=_version,
        metavar="X.Y",
        help="LU stream: upgrade or roll back to Xen X.Y (4.11 … 4.21)",
    )
    p.add_argument(
        "--allow-loss",
        action="store_true",
        help="--to only: perform a lossy rollback and list every loss",
    )
    p.add_argument(
        "--report",
        metavar="R.json",
        help="--to only: write the conversion report (fills, losses) as JSON, after OUT",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stdout")
    p.add_argument("input", metavar="IN", help="input stream, - for stdin")
    p.add_argument("output", metavar="OUT", help="output file (written atomically), - for stdout")
    p.set_defaults(func=guarded("convert", cmd_convert))
