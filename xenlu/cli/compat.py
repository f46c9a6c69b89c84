"""Command-line pieces for cross-version work: ``convert --to`` and ``schema``.

:func:`register` adds to the ``xenlu`` command's subparsers:

* ``convert --to X.Y [--allow-loss] [--report FILE.json] IN OUT``: upgrade or
  roll back an LU stream (LU spec §3, §6); a refused rollback exits 1 with
  the refusal (domain, record, field, value). Added only when the caller
  has no ``convert`` command of its own (it is :mod:`xenlu.cli.convert`'s).
* ``schema dump --epoch X.Y``: the epoch's schema as JSON on stdout.
* ``schema diff A B``: every difference from A to B, each covered or
  UNCOVERED by a registered step; exit 1 if any is uncovered. A and B are
  an epoch ``X.Y`` (its schema shipped in the package,
  ``xenlu/schemas/lu-X.Y.json``), a schema file, ``-`` (a schema on
  standard input, for one of the two) or ``code:X.Y`` (generated from the
  code now).
* ``schema write DIR``: write ``lu-<X.Y>.json`` for every epoch.

Each sets ``func(args) -> int``. A failure prints one line on stderr and
returns the exit code of :mod:`xenlu.cli.io` (1 for a xenlu error).

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
import sys
from typing import Any

from xenlu.cli.convert import cmd_convert
from xenlu.cli.io import version_arg
from xenlu.core.epochs import SUPPORTED_RANGE
from xenlu.core.errors import XenLUError

__all__ = ["cmd_convert", "cmd_schema_diff", "cmd_schema_dump", "cmd_schema_write", "register"]


def _fail(prog: str, exc: BaseException) -> int:
    # One error-to-exit mapping for every subcommand (xenlu.cli.io).
    from xenlu.cli.io import report

    return report(prog, exc)


def cmd_schema_dump(args: argparse.Namespace) -> int:
    """``schema dump --epoch X.Y``: the schema as JSON on stdout."""
    from xenlu.tools.schema import dumps, epoch_schema

    try:
        sys.stdout.write(dumps(epoch_schema(args.epoch)))
    except XenLUError as exc:
        return _fail("schema dump", exc)
    return 0


def cmd_schema_diff(args: argparse.Namespace) -> int:
    """``schema diff A B``: classify every difference; exit 1 if any is uncovered."""
    from xenlu.tools.schema import diff

    if args.a == args.b == "-":
        print("xenlu schema diff: only one of A and B can be - (standard input)", file=sys.stderr)
        return 2
    try:
        diffs = diff(_schema_source(args.a), _schema_source(args.b))
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


def _schema_source(text: str) -> Any:
    """``-`` is a schema read from standard input; anything else goes to ``diff`` as it is."""
    if text != "-":
        return text
    from xenlu.core.errors import InputError
    from xenlu.tools.schema import loads_schema

    stdin = sys.stdin
    if stdin is None:  # started with standard input closed
        raise InputError("cannot read a schema from standard input: it is closed")
    try:
        data = stdin.buffer.read()
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot read a schema from standard input: {exc}", errno=getattr(exc, "errno", None)
        ) from exc
    return loads_schema(data, "<stdin>")


def cmd_schema_write(args: argparse.Namespace) -> int:
    """``schema write DIR``: write every epoch's schema file."""
    from xenlu.tools.schema import write_schemas

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
        version_arg(body)
    return text


def register(subparsers: Any) -> None:
    """Add ``convert`` (unless present), and ``schema dump|diff|write`` to ``subparsers``."""
    if "convert" not in getattr(subparsers, "choices", {}):
        from xenlu.cli.convert import register as register_convert

        register_convert(subparsers)

    from xenlu.cli.io import epilog

    raw = argparse.RawDescriptionHelpFormatter
    s = subparsers.add_parser(
        "schema",
        help="per-epoch schemas and the compatibility check",
        formatter_class=raw,
        epilog=epilog(
            "xenlu schema diff 4.14 4.15", "xenlu schema dump --epoch 4.15 > lu-4.15.json"
        ),
    )
    sub = s.add_subparsers(dest="schema_command", required=True)
    p = sub.add_parser(
        "dump",
        help="an epoch's schema as JSON",
        formatter_class=raw,
        epilog=epilog(
            "xenlu schema dump --epoch 4.15",
            "xenlu schema dump --epoch 4.15 | xenlu schema diff 4.14 -",
        ),
    )
    p.add_argument(
        "--epoch",
        required=True,
        type=version_arg,
        metavar="X.Y",
        help=f"Xen version {SUPPORTED_RANGE} (a version inside an epoch names that epoch)",
    )
    p.set_defaults(func=cmd_schema_dump)
    p = sub.add_parser(
        "diff",
        help="classify differences; exit 1 if any is uncovered",
        formatter_class=raw,
        epilog=epilog("xenlu schema diff 4.14 4.15", "xenlu schema diff 4.15 code:4.15"),
    )
    src = "X.Y (the packaged schema), code:X.Y, a schema file, or - (standard input)"
    p.add_argument("a", metavar="A", type=_epoch_or_source, help=src)
    p.add_argument("b", metavar="B", type=_epoch_or_source, help=src)
    p.set_defaults(func=cmd_schema_diff)
    p = sub.add_parser(
        "write",
        help="write lu-<X.Y>.json for every epoch into DIR",
        formatter_class=raw,
        epilog=epilog("xenlu schema write xenlu/schemas", "make schemas"),
    )
    p.add_argument("dir", metavar="DIR", help="directory to write into (created if missing)")
    p.set_defaults(func=cmd_schema_write)
    # Generated C header and Kaitai description (issue 16): xenlu/cli/artefacts.py.
    from xenlu.cli.artefacts import register_generators

    register_generators(sub)
