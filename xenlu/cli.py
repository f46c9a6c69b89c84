"""The ``xenlu`` command line: a thin layer over the library.

Exit codes: 0 success / valid, 1 invalid input or refused operation (one
line per problem on stderr, with offset, record index and type), 2 usage
errors. ``FILE`` may be ``-`` for standard input.

    xenlu verify [--format auto|lu|libxc|libxl|xl|memory] [--liveupdate NM@0xS] [-q|-v] FILE
    xenlu inspect [--json] [--format …] FILE
    xenlu convert --to-v3 IN OUT             libxc/libxl/xl stream v2 → v3
    xenlu convert --to X.Y [--allow-loss] [--report R.json] IN OUT   LU upgrade/rollback
    xenlu validate … / xenlu plan … / xenlu schema …
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

# xenlu does no linear algebra: one OpenBLAS thread makes numpy's import (most
# of a short command's run time) cheaper. Set before numpy loads; a value the
# user set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from xenlu.api import FORMATS, decode, encode
from xenlu.errors import XenLUError
from xenlu.framing import as_buffer

__all__ = ["load_input", "main"]


def load_input(path: str, fmt: str = "auto", liveupdate: str | None = None) -> Any:
    """Decode FILE (``-`` = stdin) in ``fmt``; ``memory`` reads a hand-over image."""
    data: Any = sys.stdin.buffer.read() if path == "-" else path
    if fmt == "memory":
        if not liveupdate:
            raise _Usage("--format memory needs --liveupdate <N>M@0x<start>")
        from xenlu.handover import parse_liveupdate, read_handover

        return read_handover(as_buffer(data), parse_liveupdate(liveupdate))
    return decode(data, fmt)


class _Usage(Exception):
    pass


def _format_of(stream: Any) -> str:
    from xenlu.libxc_stream import LibxcStream
    from xenlu.libxl import LibxlStream, XlFile
    from xenlu.lu_stream import LUStream

    if isinstance(stream, LUStream):
        return "lu"
    if isinstance(stream, LibxcStream):
        return "libxc"
    if isinstance(stream, LibxlStream):
        return "libxl"
    if isinstance(stream, XlFile):
        return "xl"
    from xenlu.xenstore_stream import XenstoreStream

    if isinstance(stream, XenstoreStream):
        return "xenstore"
    return type(stream).__name__


def _records(stream: Any) -> list[tuple[str, Any]]:
    """Every record as (family, Record), in stream order, embedded streams flattened."""
    from xenlu.libxc_stream import LibxcStream
    from xenlu.libxl import LibxlStream, XlFile
    from xenlu.lu_stream import LUStream
    from xenlu.xenstore_stream import XenstoreStream

    out: list[tuple[str, Any]] = []
    if isinstance(stream, XenstoreStream):
        out += [("xenstore", r) for r in stream.records]
    elif isinstance(stream, LUStream):
        for sec in stream.sections:
            out += [("lu", r) for r in sec.records]
    elif isinstance(stream, LibxcStream):
        out += [("libxc", r) for r in stream.records]
    elif isinstance(stream, XlFile):
        out += _records(stream.stream)
    elif isinstance(stream, LibxlStream):
        for r in stream.records:
            out.append(("libxl", r))
            # LIBXC_CONTEXT holds the libxc stream; a CHECKPOINT_END the
            # libxc batch that resumes after it (libxl §2).
            inner = getattr(r.value, "stream", None) or getattr(r.value, "libxc", None)
            if isinstance(inner, LibxcStream):
                out += _records(inner)
    return out


def _body_len(family: str, rec: Any) -> int:
    from xenlu.registry import LIBXC, LIBXL, LU, XENSTORE, UnknownRecord

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
    from xenlu.registry import record_name

    fam = family if family in ("libxl", "xenstore") else None
    return record_name(rec.type, fam) or f"{rec.type:#010x}"


def _summary(stream: Any, nbytes: int) -> dict[str, Any]:
    recs = _records(stream)
    counts: dict[str, int] = {}
    totals: dict[str, int] = {}
    for fam, r in recs:
        n = _name(fam, r)
        counts[n] = counts.get(n, 0) + 1
        totals[n] = totals.get(n, 0) + _body_len(fam, r)
    fmt = _format_of(stream)
    if fmt == "lu":
        # LU_SECTION_END and END are framing, not model records: count them too.
        from xenlu.lu_records import LuSectionEnd

        n_sec = len(stream.sections)
        counts["LU_SECTION_END"] = n_sec
        totals["LU_SECTION_END"] = n_sec * LuSectionEnd.LAYOUT.size
        counts["END"], totals["END"] = 1, 0
    out: dict[str, Any] = {"format": fmt}
    if fmt == "xenstore":
        from xenlu.xenstore_stream import inspect_xenstore

        counts["END"], totals["END"] = 1, 0
        out.update(inspect_xenstore(stream))
    elif fmt == "lu":
        from xenlu.epochs import fmt_epoch

        out.update(
            version=1,  # LU spec revision
            xen_version=stream.xen_version,
            epoch=fmt_epoch(stream.epoch),
        )
    else:
        inner = stream.stream if fmt == "xl" else stream
        libxc = _inner_libxc(inner)
        out.update(
            version=libxc.version if libxc is not None else getattr(inner, "version", None),
            xen_version="{}.{}".format(*libxc.xen_version) if libxc is not None else None,
            domain_type=libxc.domain_type if libxc is not None else None,
        )
        if fmt in ("libxl", "xl"):
            out["libxl_version"] = getattr(getattr(inner, "header", None), "version", None)
    out.update(
        records=sum(counts.values()), bytes=nbytes, record_counts=counts, record_bytes=totals
    )
    if fmt == "lu":
        out["domains"] = [
            {
                "domid": d.domid,
                "type": d.type_name,
                "record_counts": d.record_counts(),
                "entry_counts": d.entry_counts(),
            }
            for d in stream.domains
        ]
        out["sections_ok"] = bool(stream.sections_ok)
    return out


def _inner_libxc(stream: Any) -> Any:
    from xenlu.libxc_stream import LibxcStream

    if isinstance(stream, LibxcStream):
        return stream
    for r in getattr(stream, "records", ()):
        inner = getattr(r.value, "stream", None)
        if isinstance(inner, LibxcStream):
            return inner
    return None


def _size(path: str, stream: Any) -> int:
    if path == "-":
        return len(encode(stream))
    import os

    return os.path.getsize(path)


# --- commands ---------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    if not args.verbose and args.format != "memory":
        from xenlu.api import verify

        data: Any = sys.stdin.buffer.read() if args.file == "-" else args.file
        fmt = verify(data, args.format)
        if not args.quiet:
            print(f"{args.file}: OK ({fmt})")
        return 0
    stream = load_input(args.file, args.format, args.liveupdate)
    if args.verbose:
        for i, (fam, r) in enumerate(_records(stream)):
            off = "" if r.offset is None else f"@{r.offset:#x} "
            print(f"#{i} {off}{r.type:#010x} {_name(fam, r)} {_body_len(fam, r)} bytes")
    if not args.quiet:
        print(f"{args.file}: OK ({_format_of(stream)})")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    stream = load_input(args.file, args.format, args.liveupdate)
    summary = _summary(stream, _size(args.file, stream))
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    keys = ("format", "version", "xen_version", "epoch", "domain_type", "records", "bytes")
    for k in keys:
        if summary.get(k) is not None:
            print(f"{k:12} {summary[k]}")
    print("records by type:")
    for name, n in sorted(summary["record_counts"].items()):
        print(f"  {name:28} {n:8}  {summary['record_bytes'][name]:12} bytes")
    for d in summary.get("domains", []):
        ents = ", ".join(f"{k} {v}" for k, v in sorted(d["entry_counts"].items()))
        print(f"domain {d['domid']:5} {d['type']:3}  {ents}")
    if "sections_ok" in summary:
        print(f"sections_ok  {summary['sections_ok']}")
    if summary["format"] == "xenstore":
        for k in ("connections", "nodes", "watches", "transactions", "node_data_bytes"):
            print(f"{k:16} {summary[k]}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    src = args.input
    if args.to_v3:
        out = _convert_v3(load_input(src, "auto"))
        _write(args.output, encode(out))
        return 0
    from xenlu.cli_compat import cmd_convert

    return cmd_convert(args)


def _convert_v3(stream: Any) -> Any:
    """v2 → v3 for a libxc stream, or the libxc stream inside libxl / xl."""
    import dataclasses

    from xenlu.libxc_stream import LibxcStream, convert_v2_to_v3
    from xenlu.libxl import LibxcContext, LibxlStream, XlFile

    if isinstance(stream, LibxcStream):
        return convert_v2_to_v3(stream)
    if isinstance(stream, XlFile):
        return dataclasses.replace(stream, stream=_convert_v3(stream.stream))
    if isinstance(stream, LibxlStream):
        recs = []
        for r in stream.records:
            if isinstance(r.value, LibxcContext):
                r = dataclasses.replace(r, value=LibxcContext(convert_v2_to_v3(r.value.stream)))
            recs.append(r)
        return dataclasses.replace(stream, records=recs)
    raise _Usage("convert --to-v3 works on libxc, libxl and xl streams")


def _write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` (``-``: stdout) atomically, so OUT may be IN."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".xenlu-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# --- parser -----------------------------------------------------------------


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="auto", choices=[*FORMATS, "memory"])
    p.add_argument("--liveupdate", metavar="<N>M@0x<start>", help="LU bootmem, for --format memory")
    p.add_argument("file", metavar="FILE", help="input file, - for stdin")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xenlu", description="Xen Live Update and migration streams, byte-exact."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("verify", help="structurally verify a stream")
    _add_input(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", help="no output, exit code only")
    g.add_argument("-v", "--verbose", action="store_true", help="print every record")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("inspect", help="summarise a stream")
    _add_input(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("convert", help="v2→v3 (libxc) or LU upgrade/rollback")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--to-v3", action="store_true", help="libxc/libxl/xl stream v2 → v3")
    g.add_argument("--to", metavar="X.Y", help="LU stream: target Xen version")
    p.add_argument("--allow-loss", action="store_true", help="perform a lossy rollback")
    p.add_argument("--report", metavar="FILE.json", help="write the conversion report")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.set_defaults(func=cmd_convert)

    for mod in ("xenlu.cli_validate", "xenlu.cli_compat"):
        try:
            module = __import__(mod, fromlist=["register"])
        except ImportError:
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args.func(args)
        return rc
    except _Usage as exc:
        print(f"xenlu: {exc}", file=sys.stderr)
        return 2
    except XenLUError as exc:
        name = getattr(args, "file", None) or getattr(args, "input", None) or "xenlu"
        print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
