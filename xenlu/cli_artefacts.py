"""``xenlu schema c-header`` and ``xenlu schema ksy``: the generated artefacts.

* ``schema c-header --epoch X.Y [-o FILE]``: the C11 header of an epoch
  (:func:`xenlu.cgen.c_header`) on stdout or into FILE;
  ``schema c-header --dir DIR``: every epoch's ``xen_lu_<X.Y>.h`` into DIR.
* ``schema ksy --epoch X.Y [-o FILE]``: the Kaitai Struct description of an
  epoch's LU stream (:func:`xenlu.ksy.lu_ksy`); ``schema ksy --libxc``: of
  the libxc stream; ``schema ksy --dir DIR``: all of them into DIR.

Files are written through a temporary file and renamed. Exit 0 done, 2 usage,
3 when a file cannot be written.

>>> import argparse
>>> p = argparse.ArgumentParser(prog="xenlu")
>>> register_generators(p.add_subparsers().add_parser("schema").add_subparsers())
>>> p.parse_args(["schema", "c-header", "--epoch", "4.18"]).epoch
(4, 18)
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xenlu.epochs import Epoch, fmt_epoch, is_supported, parse_epoch
from xenlu.errors import XenLUError

__all__ = ["EXIT_IO", "cmd_c_header", "cmd_ksy", "register_generators"]

#: Exit code when an output file cannot be written.
EXIT_IO = 3


def _epoch_arg(text: str) -> Epoch:
    try:
        v = parse_epoch(text)
    except XenLUError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not is_supported(*v):
        raise argparse.ArgumentTypeError(
            f"Xen {fmt_epoch(v)} is outside the supported range 4.11 … 4.21"
        )
    return v


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _emit(prog: str, args: argparse.Namespace, items: list[tuple[str, Callable[[], str]]]) -> int:
    """Write each ``(file name, text maker)`` to --dir, or the one item to -o / stdout."""
    try:
        if args.dir is not None:
            base = Path(args.dir)
            base.mkdir(parents=True, exist_ok=True)
            for name, make in items:
                _atomic_write(base / name, make())
                print(base / name)
        elif args.output is not None:
            _atomic_write(Path(args.output), items[0][1]())
        else:
            sys.stdout.write(items[0][1]())
    except OSError as exc:
        print(f"xenlu schema {prog}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_IO
    return 0


def cmd_c_header(args: argparse.Namespace) -> int:
    """``schema c-header (--epoch X.Y [-o FILE] | --dir DIR)``."""
    from xenlu.cgen import c_header, header_name
    from xenlu.epochs import EPOCHS

    epochs = EPOCHS if args.dir is not None else [args.epoch]
    return _emit(
        "c-header",
        args,
        [(header_name(e), functools.partial(c_header, e)) for e in epochs],
    )


def cmd_ksy(args: argparse.Namespace) -> int:
    """``schema ksy (--epoch X.Y | --libxc) [-o FILE]`` or ``schema ksy --dir DIR``."""
    from xenlu.epochs import EPOCHS
    from xenlu.ksy import LIBXC_KSY, ksy_name, libxc_ksy, lu_ksy

    items: list[tuple[str, Callable[[], str]]] = []
    if args.dir is not None or args.epoch is not None:
        epochs = EPOCHS if args.dir is not None else [args.epoch]
        items += [(ksy_name(e), functools.partial(lu_ksy, e)) for e in epochs]
    if args.dir is not None or args.libxc:
        items.append((LIBXC_KSY, libxc_ksy))
    return _emit("ksy", args, items)


def register_generators(sub: Any) -> None:
    """Add ``c-header`` and ``ksy`` to the ``schema`` subcommands ``sub``."""
    p = sub.add_parser("c-header", help="the generated C11 header of an epoch")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--epoch", type=_epoch_arg, metavar="X.Y")
    g.add_argument("--dir", metavar="DIR", help="write xen_lu_<X.Y>.h for every epoch")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    p.set_defaults(func=cmd_c_header)
    p = sub.add_parser("ksy", help="the generated Kaitai Struct description")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--epoch", type=_epoch_arg, metavar="X.Y", help="an epoch's LU stream")
    g.add_argument("--libxc", action="store_true", help="the libxc migration stream")
    g.add_argument("--dir", metavar="DIR", help="write every .ksy into DIR")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    p.set_defaults(func=cmd_ksy)
