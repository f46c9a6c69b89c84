"""``xenlu schema c-header`` and ``xenlu schema ksy``: the generated artefacts.

* ``schema c-header --epoch X.Y [-o FILE]``: the C11 header of an epoch
  (:func:`xenlu.tools.cgen.c_header`) on stdout or into FILE;
  ``schema c-header --dir DIR``: every epoch's ``xen_lu_<X.Y>.h`` into DIR.
* ``schema ksy --epoch X.Y [-o FILE]``: the Kaitai Struct description of an
  epoch's LU stream (:func:`xenlu.tools.ksy.lu_ksy`); ``schema ksy --libxc``: of
  the libxc stream; ``schema ksy --dir DIR``: all of them into DIR.

Files are written atomically (:func:`xenlu.cli.io.stage`); the exit codes
are those of :mod:`xenlu.cli.io` (0 done, 2 usage, 74 a file cannot be
written).

>>> import argparse
>>> p = argparse.ArgumentParser(prog="xenlu")
>>> register_generators(p.add_subparsers().add_parser("schema").add_subparsers())
>>> p.parse_args(["schema", "c-header", "--epoch", "4.18"]).epoch
(4, 18)
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from xenlu.cli.io import IOFailure, epilog, guarded, out, stage, version_arg

__all__ = ["cmd_c_header", "cmd_ksy", "register_generators"]


def _emit(args: argparse.Namespace, items: list[tuple[str, Callable[[], str]]]) -> int:
    """Write each ``(file name, text maker)`` to --dir, or the one item to -o / stdout."""

    def writer(make: Callable[[], str]) -> Callable[[IO[bytes]], object]:
        return lambda f: f.write(make().encode("utf-8"))

    if args.dir is not None:
        base = Path(args.dir)
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IOFailure(f"cannot create {args.dir}: {exc.strerror or exc}") from None
        for name, make in items:
            stage(str(base / name), writer(make)).commit()
            out(str(base / name))
    elif args.output is not None:
        stage(args.output, writer(items[0][1])).commit()
    else:
        if sys.stdout is None:
            raise IOFailure("cannot write standard output: it is closed")
        sys.stdout.write(items[0][1]())  # the text exactly (the guard flushes it)
    return 0


def cmd_c_header(args: argparse.Namespace) -> int:
    """``schema c-header (--epoch X.Y [-o FILE] | --dir DIR)``."""
    from xenlu.core.epochs import EPOCHS
    from xenlu.tools.cgen import c_header, header_name

    epochs = EPOCHS if args.dir is not None else [args.epoch]
    return _emit(args, [(header_name(e), functools.partial(c_header, e)) for e in epochs])


def cmd_ksy(args: argparse.Namespace) -> int:
    """``schema ksy (--epoch X.Y | --libxc) [-o FILE]`` or ``schema ksy --dir DIR``."""
    from xenlu.core.epochs import EPOCHS
    from xenlu.tools.ksy import LIBXC_KSY, ksy_name, libxc_ksy, lu_ksy

    items: list[tuple[str, Callable[[], str]]] = []
    if args.dir is not None or args.epoch is not None:
        epochs = EPOCHS if args.dir is not None else [args.epoch]
        items += [(ksy_name(e), functools.partial(lu_ksy, e)) for e in epochs]
    if args.dir is not None or args.libxc:
        items.append((LIBXC_KSY, libxc_ksy))
    return _emit(args, items)


def register_generators(sub: Any) -> None:
    """Add ``c-header`` and ``ksy`` to the ``schema`` subcommands ``sub``."""
    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "c-header",
        help="the generated C11 header of an epoch",
        formatter_class=raw,
        epilog=epilog("xenlu schema c-header --epoch 4.15 -o xen_lu_4.15.h", "make schemas"),
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--epoch", type=version_arg, metavar="X.Y", help="the epoch's header")
    g.add_argument("--dir", metavar="DIR", help="write xen_lu_<X.Y>.h for every epoch")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    p.set_defaults(func=guarded("schema c-header", cmd_c_header))
    p = sub.add_parser(
        "ksy",
        help="the generated Kaitai Struct description",
        formatter_class=raw,
        epilog=epilog(
            "xenlu schema ksy --epoch 4.15 -o xen_lu_4_15.ksy", "xenlu schema ksy --libxc"
        ),
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--epoch", type=version_arg, metavar="X.Y", help="an epoch's LU stream")
    g.add_argument("--libxc", action="store_true", help="the libxc migration stream")
    g.add_argument("--dir", metavar="DIR", help="write every .ksy into DIR")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    p.set_defaults(func=guarded("schema ksy", cmd_ksy))
