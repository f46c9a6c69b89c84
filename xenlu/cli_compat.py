"""Command-line pieces for cross-version work: ``convert --to`` and ``schema``.

:func:`register` adds to the ``xenlu`` command's subparsers:

* ``convert --to X.Y [--allow-loss] [--report FILE.json] IN OUT``: upgrade or
  roll back an LU stream (LU spec §3, §6); a refused rollback exits 1 with
  the refusal (domain, record, field, value). Added only when the caller
  has no ``convert`` command of its own (``xenlu.cli`` has one that calls
  :func:`xenlu.compat.convert` the same way).
* ``schema dump --epoch X.Y``: the epoch's schema as JSON on stdout.
* ``schema diff A B``: every difference from A to B, each covered or
  UNCOVERED by a registered step; exit 1 if any is uncovered. A and B are
  an epoch ``X.Y`` (its committed ``schemas/lu-X.Y.json``), a schema file,
  or ``code:X.Y`` (generated from the code now).
* ``schema write DIR``: write ``lu-<X.Y>.json`` for every epoch.

Each sets ``func(args) -> int``. A xenlu error prints one line on stderr and
returns 1; argparse reports usage errors with exit 2.

>>> import argparse
>>> p = argparse.ArgumentParser(prog="xenlu")
>>> register(p.add_subparsers(dest="command"))
>>> args = p.parse_args(["schema", "diff", "code:4.19", "code:4.20"])
>>> args.func(args)
LU_P2M LU_P2M entry:access.r_pw: value-added (None -> '10') [covered by 4.19->4.20]
1 difference, all covered
0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from xenlu.epochs import Epoch, fmt_epoch, is_supported, parse_epoch
from xenlu.errors import XenLUError

__all__ = ["cmd_convert", "cmd_schema_diff", "cmd_schema_dump", "cmd_schema_write", "register"]


def _version_arg(text: str) -> Epoch:
    """argparse type for ``X.Y``: a supported Xen version (usage error otherwise)."""
    try:
        v = parse_epoch(text)
    except XenLUError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not is_supported(*v):
        raise argparse.ArgumentTypeError(
            f"Xen {fmt_epoch(v)} is outside the supported range 4.11 … 4.21"
        )
    return v


def _fail(prog: str, exc: BaseException) -> int:
    line = " ".join(str(exc).split())
    print(f"xenlu {prog}: {type(exc).__name__}: {line}", file=sys.stderr)
    return 1


def _read(path: str) -> Any:
    from xenlu.lu_stream import decode_lu

    if path == "-":
        return decode_lu(sys.stdin.buffer.read())
    return decode_lu(path)


def _write(path: str, stream: Any) -> None:
    """Encode to ``path`` through a temporary file (IN may be OUT: the input is mapped)."""
    from xenlu.lu_stream import encode_lu_to

    if path == "-":
        encode_lu_to(stream, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            encode_lu_to(stream, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cmd_convert(args: argparse.Namespace) -> int:
    """``convert --to X.Y [--allow-loss] [--report FILE.json] IN OUT`` (LU streams)."""
    from xenlu.compat import convert
    from xenlu.errors import ConversionError
    from xenlu.lu_stream import LUStream

    to = args.to if isinstance(args.to, tuple) else _version_arg(str(args.to))
    try:
        stream = _read(args.input)
        if not isinstance(stream, LUStream):  # pragma: no cover - decode_lu returns one
            raise TypeError("not an LU stream")
        new, report = convert(stream, to=to, allow_loss=args.allow_loss)
    except ConversionError as exc:
        line = " ".join(str(exc).split())
        hint = "" if "even with allow_loss" in line else " (--allow-loss performs it and reports)"
        print(f"xenlu convert: refused: {line}{hint}", file=sys.stderr)
        return 1
    except (XenLUError, OSError) as exc:
        return _fail("convert", exc)
    try:
        if args.report:
            with open(args.report, "w", encoding="utf-8") as f:
                json.dump(report.to_json(), f, indent=2, ensure_ascii=False)
                f.write("\n")
        _write(args.output, new)
    except (XenLUError, OSError) as exc:
        return _fail("convert", exc)
    if not getattr(args, "quiet", False):
        out = sys.stderr if args.output == "-" else sys.stdout
        print(report.summary(), file=out)
    return 0


def cmd_schema_dump(args: argparse.Namespace) -> int:
    """``schema dump --epoch X.Y``: the schema as JSON on stdout."""
    from xenlu.schema import dumps, epoch_schema

    try:
        sys.stdout.write(dumps(epoch_schema(args.epoch)))
    except XenLUError as exc:
        return _fail("schema dump", exc)
    return 0


def cmd_schema_diff(args: argparse.Namespace) -> int:
    """``schema diff A B``: classify every difference; exit 1 if any is uncovered."""
    from xenlu.schema import diff

    try:
        diffs = diff(args.a, args.b)
    except XenLUError as exc:
        return _fail("schema diff", exc)
    for d in diffs:
        print(d)
    bad = [d for d in diffs if not d.covered]
    n = len(diffs)
    if not n:
        print("no differences")
    elif bad:
        print(f"{n} difference{'s' * (n != 1)}, {len(bad)} UNCOVERED by any registered step")
    else:
        print(f"{n} difference{'s' * (n != 1)}, all covered")
    return 1 if bad else 0


def cmd_schema_write(args: argparse.Namespace) -> int:
    """``schema write DIR``: write every epoch's schema file."""
    from xenlu.schema import write_schemas

    try:
        for p in write_schemas(args.dir):
            print(p)
    except (XenLUError, OSError) as exc:
        return _fail("schema write", exc)
    return 0


def _epoch_or_source(text: str) -> str:
    # "X.Y", "code:X.Y" or a path; versions are checked here (usage error).
    body = text[5:] if text.startswith("code:") else text
    if body.replace(".", "").isdigit() and body.count(".") == 1:
        _version_arg(body)
    return text


def register(subparsers: Any) -> None:
    """Add ``convert`` (unless present), and ``schema dump|diff|write`` to ``subparsers``."""
    if "convert" not in getattr(subparsers, "choices", {}):
        p = subparsers.add_parser("convert", help="upgrade or roll back an LU stream")
        p.add_argument("--to", required=True, type=_version_arg, metavar="X.Y")
        p.add_argument("--allow-loss", action="store_true", help="perform a lossy rollback")
        p.add_argument("--report", metavar="FILE.json", help="write the conversion report")
        p.add_argument("-q", "--quiet", action="store_true", help="no summary")
        p.add_argument("input", metavar="IN")
        p.add_argument("output", metavar="OUT")
        p.set_defaults(func=cmd_convert)

    s = subparsers.add_parser("schema", help="per-epoch schemas and the compatibility check")
    sub = s.add_subparsers(dest="schema_command", required=True)
    p = sub.add_parser("dump", help="an epoch's schema as JSON")
    p.add_argument("--epoch", required=True, type=_version_arg, metavar="X.Y")
    p.set_defaults(func=cmd_schema_dump)
    p = sub.add_parser("diff", help="classify differences; exit 1 if any is uncovered")
    p.add_argument("a", metavar="A", type=_epoch_or_source, help="X.Y, code:X.Y or a file")
    p.add_argument("b", metavar="B", type=_epoch_or_source, help="X.Y, code:X.Y or a file")
    p.set_defaults(func=cmd_schema_diff)
    p = sub.add_parser("write", help="write schemas/lu-<X.Y>.json for every epoch")
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(func=cmd_schema_write)
    # Generated C header and Kaitai description (issue 16): xenlu/cli_artefacts.py.
    from xenlu.cli_artefacts import register_generators

    register_generators(sub)
