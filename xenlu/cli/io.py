"""The command line's contract, in one place: exit codes, the error-to-exit
mapping, one-line messages, reading inputs and writing outputs atomically.

Every ``xenlu`` subcommand raises; :func:`guarded` (around each subcommand)
and :func:`report` turn what it raised into one line on stderr and an
:class:`Exit` code. Every file output goes through :func:`stage`. Nothing
here imports numpy (``xenlu verify -q`` of a libxc stream never loads it).

Exit codes (also in ``xenlu --help`` and the README):

====  ===========  =======================================================
code  name         meaning
====  ===========  =======================================================
0     OK           valid / done
1     INVALID      the stream is invalid, or a conversion was refused
2     USAGE        bad command line (option, value, combination)
69    UNAVAILABLE  an optional part of xenlu is not installed (``xenlu map``
                   needs ``xenlu[plot]``): the command and its input may be
                   fine, this installation cannot run it
70    INTERNAL     a bug in xenlu (one line; ``XENLU_DEBUG=1`` shows more)
74    IO           cannot read an input or write an output (missing file,
                   directory, closed stdin, unwritable or full output,
                   broken pipe)
130   INTERRUPTED  Ctrl-C
====  ===========  =======================================================

69, 70 and 74 are ``EX_UNAVAILABLE``, ``EX_SOFTWARE`` and ``EX_IOERR`` of
BSD's ``sysexits.h``. A missing optional dependency is neither an invalid
stream (1), a bad command line (2: the same line works once it is
installed) nor an I/O failure (74): it gets its own code so a script can
tell "install the extra" apart from the rest.

>>> int(Exit.IO), exit_code(OSError(28, "No space left on device"))
(74, <Exit.IO: 74>)
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import io
import mmap
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from enum import IntEnum
from typing import IO, TYPE_CHECKING, Any

from xenlu.core.errors import CallerError, ConversionError, DecodeError, InputError, XenLUError

if TYPE_CHECKING:
    from concurrent.futures import Executor

__all__ = [
    "EXIT_CODES",
    "THREADS_FROM_BYTES",
    "Exit",
    "IOFailure",
    "MissingDependency",
    "Staged",
    "UsageError",
    "epilog",
    "error_line",
    "exit_code",
    "guarded",
    "one_line",
    "open_flowing",
    "out",
    "read_input",
    "report",
    "stage",
    "worker_threads",
]


class Exit(IntEnum):
    """The exit codes of every ``xenlu`` subcommand."""

    OK = 0
    INVALID = 1
    USAGE = 2
    UNAVAILABLE = 69
    INTERNAL = 70
    IO = 74
    INTERRUPTED = 130


#: The exit-code paragraph every ``--help`` ends with.
EXIT_CODES = """\
exit codes: 0 valid / done, 1 the stream is invalid (or a conversion was
refused), 2 usage error, 74 cannot read an input or write an output
(missing file, directory, closed stdin, full disk, broken pipe),
69 an optional part is not installed, 70 a bug in xenlu, 130 interrupted.
A failure is one line on stderr."""


def epilog(*examples: str) -> str:
    """A subcommand's ``--help`` epilog: the exit codes, then its examples."""
    return EXIT_CODES + "\n\nexamples:\n" + "\n".join(f"  {e}" for e in examples)


class UsageError(Exception):
    """A command line that cannot be run as given (exit 2)."""


class IOFailure(Exception):
    """An input that cannot be read or an output that cannot be written (exit 74).

    The message names the user's path, never a temporary file.
    """


class MissingDependency(Exception):
    """An optional dependency the command needs is not installed (exit 69).

    The message says what to install.
    """


def exit_code(exc: BaseException) -> Exit:
    """The exit code for an exception a subcommand raised."""
    if isinstance(exc, KeyboardInterrupt):
        return Exit.INTERRUPTED
    if isinstance(exc, UsageError):
        return Exit.USAGE
    if isinstance(exc, MissingDependency):
        return Exit.UNAVAILABLE
    if isinstance(exc, (IOFailure, OSError, InputError)):
        return Exit.IO
    if isinstance(exc, XenLUError):
        return Exit.INVALID
    return Exit.INTERNAL


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(text.split())


def os_reason(exc: OSError) -> str:
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        return "broken pipe"
    return exc.strerror or type(exc).__name__


def error_line(command: str, exc: BaseException, file: str | None = None) -> str:
    """The one line printed on stderr for ``exc`` raised by ``command``.

    Stream errors name the file and the error class (with offset, record
    index, type and field, from :mod:`xenlu.core.errors`); a refused conversion
    says "refused"; I/O errors say what could not be done, with the user's
    path; usage errors say what is wrong with the command line.

    >>> error_line("verify", UsageError("--liveupdate needs --format memory"))
    'xenlu verify: --liveupdate needs --format memory'
    >>> error_line("verify", OSError(32, "Broken pipe"))
    'xenlu verify: cannot write standard output: broken pipe'
    """
    head = f"xenlu {command}:" if command else "xenlu:"
    if isinstance(exc, KeyboardInterrupt):
        body = "interrupted"
    elif isinstance(exc, ConversionError):
        body = f"refused: {exc}"
    elif isinstance(exc, XenLUError):
        where = f"{file}: " if file else ""
        body = f"{where}{type(exc).__name__}: {exc}"
    elif isinstance(exc, (UsageError, IOFailure, MissingDependency)):
        body = str(exc)
    elif isinstance(exc, OSError) and exc.filename is not None:
        body = f"{exc.filename}: {os_reason(exc)}"
    elif isinstance(exc, OSError):
        # An OSError without a file name that escaped the named reads and
        # writes is a write to standard output (print, flush).
        body = f"cannot write standard output: {os_reason(exc)}"
    else:
        body = f"internal error: {type(exc).__name__}: {exc} (please report)"
    return one_line(f"{head} {body}")


def error_json(exc: XenLUError, fmt: str | None, file: str) -> dict[str, Any]:
    """The JSON object ``verify --json`` and ``validate --json`` print for a stream error.

    ``class``, ``message`` and, for a decode error, ``offset``,
    ``record_index``, ``record_type`` (int), ``record_name``, ``field``,
    ``expected`` and ``got`` (ints stay ints; other values become text).
    """

    def plain(v: object) -> object:
        if v is None or isinstance(v, (bool, int, str)):
            return v
        return str(v)

    err: dict[str, Any] = {"class": type(exc).__name__, "message": one_line(str(exc))}
    if isinstance(exc, DecodeError):
        err.update(
            message=one_line(exc.message),
            offset=exc.offset,
            record_index=exc.record_index,
            record_type=exc.record_type,
            record_name=exc.record_name,
            field=exc.field,
            expected=plain(exc.expected),
            got=plain(exc.got),
        )
    return {"file": file, "format": fmt, "valid": False, "error": err}


def report(command: str, exc: BaseException, file: str | None = None) -> int:
    """Print ``exc`` as one line on stderr; return its exit code.

    An internal error (not an input, output or usage problem) is re-raised
    when ``XENLU_DEBUG`` is set, for its traceback.
    """
    code = exit_code(exc)
    if code == Exit.INTERNAL and os.environ.get("XENLU_DEBUG"):
        raise exc
    if isinstance(exc, OSError) and exc.filename is None:
        silence_stdout()
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            print(error_line(command, exc, file), file=sys.stderr)
            sys.stderr.flush()
    return int(code)


def guarded(command: str, fn: Callable[[Any], int]) -> Callable[[Any], int]:
    """``fn(args)`` under the contract: whatever it raises (Ctrl-C too) becomes
    one line on stderr and an :class:`Exit` code; stdout is flushed inside, so
    a full disk or a closed pipe is reported, not lost at exit."""

    @functools.wraps(fn)
    def run(args: Any) -> int:
        try:
            rc = fn(args)
            flush_stdout()
            return rc
        except (Exception, KeyboardInterrupt) as exc:
            file = getattr(args, "file", None) or getattr(args, "input", None)
            return report(command, exc, file if isinstance(file, str) else None)

    return run


# --- standard streams ---------------------------------------------------------------


def out(text: str = "") -> None:
    """Print one line of results on stdout (a closed stdout is an I/O error)."""
    if sys.stdout is None:
        raise IOFailure("cannot write standard output: it is closed")
    print(text)


def stdout_binary() -> IO[bytes]:
    """Standard output for bytes (a closed stdout is an I/O error)."""
    if sys.stdout is None:
        raise IOFailure("cannot write standard output: it is closed")
    return sys.stdout.buffer


def flush_stdout() -> None:
    """Flush stdout inside the error mapping, so a full disk or a closed pipe is seen."""
    if sys.stdout is not None:
        sys.stdout.flush()


def silence_stdout() -> None:
    """After stdout failed: point it at /dev/null so the interpreter's own
    flush at exit does not print a second message."""
    if sys.stdout is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file: nothing to redirect
        pass


# --- inputs ------------------------------------------------------------------------


def read_all(f: IO[bytes], limit: int | None = None, name: str = "-") -> bytes:
    chunks: list[bytes] = []
    n = 0
    while chunk := f.read(1 << 20):
        chunks.append(chunk)
        n += len(chunk)
        if limit is not None and n > limit:
            raise ConversionError(
                f"{name} is not a regular file and holds more than {limit >> 20} MiB: "
                "this command needs the whole stream in memory; save it to a file first "
                "(a file is mapped, not read)"
            )
    return b"".join(chunks)


def open_flowing(path: str) -> IO[bytes] | None:
    """FILE opened for reading as it flows when it is not a regular file
    (``-``, a pipe, FIFO, character device or socket): an unbuffered binary
    file the caller closes. None for a regular file (map it:
    :func:`read_input`). A missing or unreadable FILE is an :class:`IOFailure`.
    """
    if path == "-":
        if sys.stdin is None:
            raise IOFailure("cannot read standard input: it is closed")
        try:
            fd = sys.stdin.fileno()
            st = os.fstat(fd)
        except io.UnsupportedOperation:  # not a file (a test's BytesIO): read as it flows
            return getattr(sys.stdin, "buffer", None)
        except (OSError, ValueError) as exc:
            reason = os_reason(exc) if isinstance(exc, OSError) else "it is closed"
            raise IOFailure(f"cannot read standard input: {reason}") from None
        if stat.S_ISREG(st.st_mode):
            return None
        return open(fd, "rb", buffering=0, closefd=False)
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            return None  # (read_input names the directory)
        return open(path, "rb", buffering=0)
    except OSError as exc:
        raise IOFailure(f"cannot read {path}: {os_reason(exc)}") from None
    except ValueError as exc:  # a path with NUL
        raise UsageError(f"cannot read {path!r}: {exc}") from None


def read_input(path: str, pipe_limit: int | None = None) -> bytes | memoryview:
    """The bytes of FILE: ``-`` is standard input; a regular file is mapped
    read-only (nothing copied); a pipe, FIFO or character device is read to
    its end (its size says nothing), refused (:class:`ConversionError`) once
    it passes ``pipe_limit`` bytes; a directory or a missing or unreadable
    file is an :class:`IOFailure` naming ``path``.
    """
    if path == "-":
        if sys.stdin is None:
            raise IOFailure("cannot read standard input: it is closed")
        try:
            return read_all(sys.stdin.buffer, pipe_limit, "standard input")
        except OSError as exc:
            raise IOFailure(f"cannot read standard input: {os_reason(exc)}") from None
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if stat.S_ISDIR(st.st_mode):  # pragma: no cover - open() refuses first on Linux
                raise IOFailure(f"cannot read {path}: Is a directory")
            if not stat.S_ISREG(st.st_mode):
                return read_all(f, pipe_limit, path)
            if st.st_size == 0:
                return b""
            return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    except OSError as exc:
        raise IOFailure(f"cannot read {path}: {os_reason(exc)}") from None
    except ValueError as exc:  # a path with NUL
        raise UsageError(f"cannot read {path!r}: {exc}") from None


# --- outputs -----------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Staged:
    """A file written to a temporary name beside its target; :meth:`commit`
    renames it into place, :meth:`discard` removes it. See :func:`stage`."""

    def __init__(self, path: str, target: str, tmp: str | None) -> None:
        self.path = path  # as the user wrote it (messages)
        self.target = target  # the file replaced (symlinks resolved)
        self.tmp = tmp  # None: written in place (a device or FIFO)

    def commit(self) -> None:
        """Rename the temporary file over the target (atomic), then sync the folder."""
        if self.tmp is None:
            return
        try:
            os.replace(self.tmp, self.target)
        except OSError as exc:
            self.discard()
            raise IOFailure(f"cannot write {self.path}: {os_reason(exc)}") from None
        self.tmp = None
        with contextlib.suppress(OSError):
            dfd = os.open(os.path.dirname(self.target), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def discard(self) -> None:
        """Remove the temporary file (if it is still there)."""
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            self.tmp = None


def _write_through(path: str, target: str, write: Callable[[IO[bytes]], object]) -> Staged:
    # /dev/null, a FIFO, a terminal: written directly, never replaced by a file.
    try:
        with open(target, "wb") as f:
            write(f)
            f.flush()
    except OSError as exc:
        raise IOFailure(f"cannot write {path}: {os_reason(exc)}") from None
    return Staged(path, target, None)


def stage(path: str, write: Callable[[IO[bytes]], object]) -> Staged:
    """Write ``path``'s new content to a temporary file in its folder.

    ``write(f)`` fills the file; it is then flushed and fsynced. The file's
    mode is the existing target's (converting in place keeps it), otherwise
    0666 minus the umask, as ``open()`` would make it. Any failure removes
    the temporary file and raises :class:`IOFailure` naming ``path``
    (exceptions from ``write`` itself, e.g. an encode error, pass through
    after the clean-up). An existing target that is not a regular file
    (``/dev/null``, a FIFO) is written directly.
    """
    target = os.path.realpath(path)
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise IOFailure(f"cannot write {path}: {os_reason(exc)}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IOFailure(f"cannot write {path}: Is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        return _write_through(path, target, write)
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
    import tempfile  # only commands that write files pay for its import

    try:
        name = os.path.basename(target)
        fd, tmp = tempfile.mkstemp(
            dir=os.path.dirname(target), prefix=f".{name}.", suffix=".xenlu-tmp"
        )
    except OSError as exc:
        raise IOFailure(f"cannot write {path}: {os_reason(exc)}") from None
    staged = Staged(path, target, tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
    except OSError as exc:
        staged.discard()
        raise IOFailure(f"cannot write {path}: {os_reason(exc)}") from None
    except BaseException:
        staged.discard()
        raise
    return staged


#: Inputs from this size on get a second thread (section checksums and large
#: records are checked beside the walk; LU domain sections decode ahead).
THREADS_FROM_BYTES = 32 << 20


@contextlib.contextmanager
def worker_threads(data: Any, fmt: str = "lu") -> Iterator[Executor | None]:
    """A two-thread executor for a large input in a format whose codec uses
    threads (``fmt``, "auto" recognised from the bytes) on a machine with two
    or more CPUs, else None. The library keeps no pool of its own (its
    parallelism is opt-in): the command line opts in, for inputs where it
    pays, and the threads end with the command.

    >>> with worker_threads(b"", "libxc") as pool:
    ...     pool is None
    True
    """
    if len(data) < THREADS_FROM_BYTES or (os.cpu_count() or 1) < 2:
        yield None
        return
    from xenlu.api import FORMAT_TABLE, sniff

    family = FORMAT_TABLE.get((sniff(data) if fmt == "auto" else fmt) or "")
    if family is None or not family.threads:
        yield None
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2, thread_name_prefix="xenlu") as pool:
        yield pool


# --- shared helpers of the reading subcommands ---------------------------------


_LIVEUPDATE_HELP = (
    "the LU bootmem as Xen's liveupdate= option gives it, e.g. 64M@0x8000000 or "
    "1G@0x40000000 (size K/M/G/T, start in bytes, hex or decimal); implies --format memory"
)


def _liveupdate_arg(text: str) -> tuple[int, int]:
    """argparse type for ``--liveupdate``: Xen's syntax, a usage error otherwise."""
    from xenlu.lu.handover import parse_liveupdate

    try:
        return parse_liveupdate(text)
    except CallerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_input_options(p: argparse.ArgumentParser, formats: Sequence[str], default: str) -> None:
    """``--format``, ``--liveupdate`` and FILE, shared by every reading subcommand.

    >>> p = argparse.ArgumentParser()
    >>> add_input_options(p, ["lu"], "lu")
    >>> p.parse_args(["--liveupdate", "64M@0x8000000", "img"]).liveupdate
    (134217728, 67108864)
    """
    p.add_argument(
        "--format",
        default=None,
        choices=[*formats, "memory"],
        help=f"input format (default {default}); memory: a memory image holding the hand-over",
    )
    p.add_argument(
        "--liveupdate", type=_liveupdate_arg, metavar="SIZE@START", help=_LIVEUPDATE_HELP
    )
    p.add_argument(
        "file",
        metavar="FILE",
        help="input file; - for stdin (verify, inspect and validate read a pipe as it flows)",
    )


def input_format(args: argparse.Namespace, default: str) -> str:
    """The input format of a reading subcommand (``--format``, ``--liveupdate``):
    ``--liveupdate`` implies ``memory`` and needs no other.

    >>> from argparse import Namespace
    >>> input_format(Namespace(format=None, liveupdate=(0, 1 << 26)), "auto")
    'memory'
    """
    fmt: str | None = args.format
    if args.liveupdate is not None:
        if fmt not in (None, "memory"):
            raise UsageError(
                f"--liveupdate reads a memory image: drop --format {fmt} (or use --format memory)"
            )
        return "memory"
    if fmt == "memory":
        raise UsageError("--format memory needs --liveupdate SIZE@START (e.g. 64M@0x8000000)")
    return fmt or default


def decode_input(data: Any, fmt: str, liveupdate: Any) -> Any:
    """Decode the bytes a subcommand read: a stream in ``fmt`` (two worker
    threads for a large one), or for ``memory`` the hand-over found in the
    memory image at ``liveupdate``.

    >>> from xenlu.api import encode
    >>> from xenlu.testing.hostgen import make_host
    >>> data = encode(make_host("4.15", n_hvm=0, mem_mib=1, dom0_mem_mib=1))
    >>> decode_input(data, "auto", None).epoch
    (4, 15)
    """
    if fmt == "memory":
        from xenlu.lu.handover import read_handover

        return read_handover(data, liveupdate)
    from xenlu.api import decode

    with worker_threads(data, fmt) as pool:
        return decode(data, fmt, executor=pool)


def load_input(path: str, fmt: str = "auto", liveupdate: Any = None) -> Any:
    """Decode FILE (``-`` = stdin) in ``fmt``; ``memory`` reads a hand-over image.

    ``liveupdate`` is the LU bootmem: ``liveupdate=`` text or ``(start, size)``.
    Raises :class:`UsageError` for ``memory`` without it,
    :class:`IOFailure` when FILE cannot be read.
    """
    if fmt == "memory" and not liveupdate:
        raise UsageError("--format memory needs --liveupdate SIZE@START (e.g. 64M@0x8000000)")
    return decode_input(read_input(path), fmt, liveupdate)


def version_arg(text: str) -> tuple[int, int]:
    """argparse type for ``X.Y``: a supported Xen version (usage error otherwise).

    >>> version_arg("4.15")
    (4, 15)
    """
    from xenlu.core.epochs import SUPPORTED_RANGE, fmt_epoch, is_supported, parse_epoch

    try:
        v = parse_epoch(text)
    except XenLUError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not is_supported(*v):
        raise argparse.ArgumentTypeError(
            f"Xen {fmt_epoch(v)} is outside the supported range {SUPPORTED_RANGE}"
        )
    return v
