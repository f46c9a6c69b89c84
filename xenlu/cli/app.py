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
import struct
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

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
from xenlu.cli.progress import progress
from xenlu.core.errors import XenLUError

__all__ = ["build_parser", "inspect_summary", "load_input", "lu_listing", "main", "record_listing"]


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        # Whatever the user typed is echoed at most 40 characters long.
        text = re.sub(r"\S{41,}", lambda m: m.group()[:40] + "…", one_line(message))
        self.exit(int(Exit.USAGE), f"{self.prog}: {text} (see '{self.prog} --help')\n")


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
    summary.update(_trailing(stream))
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


def _trailing(stream: Any) -> dict[str, int]:
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
                    after = _trailing(stream)
    except XenLUError as exc:
        if args.json:
            out(json.dumps(error_json(exc, None if fmt == "auto" else fmt, args.file)))
        raise
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
    for i, off, name, t, n in rows or ():
        at = "" if off is None else f"@{off:#x} "
        out(f"#{i} {at}{t:#010x} {name} {n} bytes")
    if after.get("trailing_bytes"):
        n = after["trailing_bytes"]
        out(f"{n} bytes after END @{len(data) - n:#x}: not part of the stream (kept)")
    if after.get("hvm_context_trailing_bytes"):
        n = after["hvm_context_trailing_bytes"]
        out(f"{n} bytes after the HVM_CONTEXT END entry: not read by Xen (kept)")
    if not args.quiet:
        out(f"{args.file}: OK ({got})")
    return 0


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
