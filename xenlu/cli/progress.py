"""A progress bar on stderr for long commands, and nothing otherwise.

:func:`progress` is the one helper every subcommand uses::

    with progress("validate", len(data), quiet=args.quiet) as bar:
        bar.phase("decode")
        stream = decode(data)
        bar.phase("validate")
        report = validate(stream)

The bar is shown only when stderr is a terminal, the input is larger than
:data:`MIN_BYTES` (64 MiB) and ``quiet`` is false; otherwise every method is
a no-op and :mod:`tqdm` is never imported (``xenlu verify`` of a small file
does not pay for it). Updates come per phase, per section or per chunk —
never per entry — so the bar costs nothing measurable. A phase that is one
library call without a hook shows its name and a running clock (a small
thread refreshes the bar twice a second); :meth:`Progress.update` and
:meth:`Progress.advance` fill a bar for phases that report counts (a
library ``progress(done, total)`` callback, bytes written). The bar is
erased when the command ends, so the terminal keeps only the results.

tqdm is a core dependency: 80 KiB of pure Python without dependencies of
its own, imported lazily; rich would bring pygments and markdown-it.

>>> with progress("verify", 10) as bar:  # small input: no bar, no tqdm
...     bar.phase("decode")
...     bar.update(1, 2)
>>> bar.shown
False
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["MIN_BYTES", "Counting", "Progress", "progress"]

#: Inputs at least this large get a bar (when stderr is a terminal).
MIN_BYTES = 64 << 20

_KNOWN = "{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"
_UNKNOWN = "{desc} … [{elapsed}]"


class Progress:
    """The handle :func:`progress` yields; every method is a no-op when no bar is shown."""

    def __init__(self, bar: Any = None, command: str = "") -> None:
        self._bar = bar
        self._command = command

    @property
    def shown(self) -> bool:
        """True when a bar is on the terminal."""
        return self._bar is not None

    def phase(self, name: str, total: int | None = None) -> None:
        """Start phase ``name``; ``total`` units if it will report counts."""
        bar = self._bar
        if bar is None:
            return
        bar.bar_format = _UNKNOWN if total is None else _KNOWN
        bar.reset(total=total)
        bar.set_description_str(f"xenlu {self._command}: {name}", refresh=True)

    def update(self, done: int, total: int) -> None:
        """``done`` of ``total`` units of the current phase are done (a
        library ``progress(done, total)`` callback can be this method)."""
        bar = self._bar
        if bar is None:
            return
        if bar.total != total:
            bar.bar_format = _KNOWN
            bar.total = total
        bar.update(done - bar.n)

    def advance(self, n: int) -> None:
        """``n`` more units of the current phase are done."""
        if self._bar is not None:
            self._bar.update(n)


class Counting:
    """A binary sink that reports every ``write`` to a :class:`Progress`
    (one update per buffer the encoder hands over, i.e. per record or chunk)."""

    def __init__(self, sink: IO[bytes], bar: Progress) -> None:
        self._sink = sink
        self._bar = bar

    def write(self, buf: Any) -> int:
        n = self._sink.write(buf)
        self._bar.advance(memoryview(buf).nbytes)
        return n if n is not None else memoryview(buf).nbytes

    def flush(self) -> None:
        self._sink.flush()


def _wanted(size: int, quiet: bool, stream: IO[str] | None) -> bool:
    if quiet or size < MIN_BYTES or stream is None:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a file
        return False


@contextlib.contextmanager
def progress(command: str, size: int, *, quiet: bool = False) -> Iterator[Progress]:
    """A :class:`Progress` for ``xenlu COMMAND`` on an input of ``size`` bytes:
    a bar on stderr when stderr is a terminal, ``size >= MIN_BYTES`` and not
    ``quiet``; a no-op handle otherwise. The bar is erased on exit."""
    stream = sys.stderr
    if not _wanted(size, quiet, stream):
        yield Progress()
        return
    import threading

    from tqdm import tqdm  # lazily: only a command that shows a bar pays for it

    try:  # a terminal that reports no size (a fresh pty) gets 80×24
        cols, lines = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        cols, lines = 0, 0
    bar = tqdm(
        total=None,
        file=stream,
        leave=False,
        dynamic_ncols=cols > 0,
        ncols=None if cols > 0 else 80,
        nrows=None if lines > 0 else 24,  # tqdm hides a bar below the last row
        bar_format=_UNKNOWN,
        desc=f"xenlu {command}",
        mininterval=0.25,
    )
    stop = threading.Event()

    def tick() -> None:  # the clock of a phase that is one long call
        while not stop.wait(0.5):
            with contextlib.suppress(Exception):
                bar.refresh()

    ticker = threading.Thread(target=tick, name="xenlu-progress", daemon=True)
    ticker.start()
    try:
        yield Progress(bar, command)
    finally:
        stop.set()
        ticker.join()
        with contextlib.suppress(OSError, ValueError):
            bar.close()
