"""Record framing shared by every stream family (LU spec §1, reference §1.4).

A record is ``{u32 type; u32 length}``, ``length`` body bytes, then zero
padding to a multiple of 8. Reading never copies a body: :func:`frames`
yields offsets into a ``memoryview`` over bytes, a bytearray or an ``mmap``.
Writing goes through :class:`RecordWriter`, which hands each buffer to the
sink as it is (no join) and can keep a running crc32c for LU sections.

>>> w = RecordWriter(BytesSink())
>>> w.record(0x0A, [b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00", bytes(16)])
>>> [f[2:] for f in frames(memoryview(w.sink.getvalue()), 0, 32, 0)]
[(10, 24)]
"""

from __future__ import annotations

import errno
import gc
import io
import mmap
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

from construct import Int32ul

from xenlu.core.errors import CallerError, FramingError, InputError
from xenlu.core.layout import Packed, fld, packed

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "HDR",
    "REC_ALIGN",
    "REC_LENGTH_MAX",
    "BytesSink",
    "RecordHeader",
    "RecordWriter",
    "Sink",
    "Source",
    "as_buffer",
    "crc32c",
    "frame_at",
    "frames",
    "gc_paused",
    "pad_len",
    "padding_error",
    "written_bytes",
]


@packed(name="RECORD_HEADER")
class RecordHeader(Packed):
    """The 8-byte header of every record (LU spec §1, reference §1.4).

    >>> RecordHeader(type=0x40000000, length=8).pack().hex()
    '0000004008000000'
    """

    type: int = fld(Int32ul, doc="record type; bit 31 set: optional record")
    length: int = fld(Int32ul, doc="body bytes, padding excluded; <= REC_LENGTH_MAX")


#: The header's ``struct`` (``<II``), for the loops that read one per record.
HDR = RecordHeader.LAYOUT.struct
REC_ALIGN = 8
#: Largest record body (libxc ``REC_LENGTH_MAX``, LU spec §1).
REC_LENGTH_MAX = 128 << 20
_ZEROS = bytes(8)


_V = TypeVar("_V")
_CRC32C: list[Any] = []


def _load_crc32c() -> Any:
    """The ``crc32c`` function of the ``crc32c`` package, its compiled module
    loaded on its own when it can be.

    The package's ``__init__`` reads its metadata through
    ``importlib.metadata`` (25 ms, a twentieth of ``xenlu verify`` of a
    2.5 GiB host); the function itself is in the ``_crc32c`` extension
    beside it. Anything unexpected in that layout: the plain import.
    """
    import importlib.machinery
    import importlib.util

    try:
        pkg = importlib.util.find_spec("crc32c")  # finds it, runs nothing
        dirs = list(pkg.submodule_search_locations or ()) if pkg is not None else []
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(dirs[0], "_crc32c" + suffix) if dirs else ""
            if path and os.path.isfile(path):
                loader = importlib.machinery.ExtensionFileLoader("crc32c._crc32c", path)
                spec = importlib.util.spec_from_file_location("crc32c._crc32c", path, loader=loader)
                if spec is None:
                    break
                mod = importlib.util.module_from_spec(spec)
                loader.exec_module(mod)
                return mod.crc32c
    except (ImportError, OSError, AttributeError):
        pass
    import crc32c as _crc32c

    return _crc32c.crc32c


def crc32c(data: Buffer, value: int = 0) -> int:
    """Castagnoli CRC of ``data`` continuing from ``value`` (releases the GIL).

    Loaded on first use (:func:`_load_crc32c`: libxc/libxl verification
    never needs it).

    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    if not _CRC32C:
        _CRC32C.append(_load_crc32c())
    return int(_CRC32C[0](data, value))


def pad_len(length: int) -> int:
    """Zero bytes that follow a body of ``length`` bytes."""
    return -length & 7


def _input_error(exc: OSError, what: str) -> InputError:
    reason = exc.strerror or str(exc)
    err = InputError(
        f"cannot read {what}: {reason}",
        errno=exc.errno,
        strerror=exc.strerror,
        filename=None if exc.filename is None else os.fsdecode(exc.filename),
    )
    err.__cause__ = exc
    return err


def _from_file(f: Any, what: str) -> memoryview:
    """The bytes of an open binary file from its current position.

    A regular file is mapped read-only (nothing copied); anything else — a
    pipe, FIFO, socket, character device, ``/dev/stdin`` — is read to its
    end: its ``st_size`` (0) says nothing about how much it holds.
    """
    try:
        fd = f.fileno()
    except (OSError, AttributeError, ValueError):
        fd = None  # io.BytesIO and other in-memory files, or a closed file (read says which)
    if fd is not None:
        try:
            st = os.fstat(fd)
        except OSError as exc:
            raise _input_error(exc, what) from exc
        if stat.S_ISDIR(st.st_mode):
            raise InputError(
                f"cannot read {what}: Is a directory",
                errno=errno.EISDIR,
                strerror=os.strerror(errno.EISDIR),
                filename=what,
            )
        # A regular file of size 0 may still be a /proc or sysfs file whose
        # size is not known: reading it costs nothing when it really is empty.
        if stat.S_ISREG(st.st_mode) and st.st_size > 0:
            try:
                m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                m = None  # a file system without mmap: read it below
            if m is not None:
                try:
                    pos = f.tell()
                except (OSError, AttributeError, ValueError):
                    pos = 0
                return memoryview(m)[pos:]
    try:
        data = f.read()
    except ValueError as exc:  # I/O on a closed file
        raise InputError(f"cannot read {what}: {exc}") from exc
    except OSError as exc:
        raise _input_error(exc, what) from exc
    if data is None:  # a non-blocking file with nothing to read yet
        raise InputError(f"cannot read {what}: no data available (non-blocking file)")
    if isinstance(data, str):
        raise InputError(f"cannot read {what}: opened in text mode; open it with 'rb'")
    return memoryview(data)


#: Every input :func:`as_buffer` takes: a buffer (bytes, bytearray,
#: memoryview, mmap, numpy array), a path, or a binary file object.
Source: TypeAlias = "Buffer | str | os.PathLike[str] | os.PathLike[bytes] | IO[bytes]"


def as_buffer(data: Any) -> memoryview:
    """A read-only, contiguous byte ``memoryview`` over any input xenlu accepts.

    * ``bytes``, ``bytearray``, ``mmap``, a C-contiguous ``memoryview`` or
      any other object with the buffer protocol (a numpy array): viewed, not
      copied;
    * a path (``str`` or ``os.PathLike``) or a binary file object (anything
      with ``read()``, e.g. ``open(f, "rb")``, ``sys.stdin.buffer``,
      ``io.BytesIO``): a regular file is mapped read-only with ``mmap``
      (from the file object's position); a pipe, FIFO, socket or character
      device — ``/dev/stdin``, ``<(cat f)`` — is read to its end.

    Errors: :class:`~xenlu.core.errors.InputError` when the input cannot be read
    (missing, unreadable, a directory, a closed or text-mode file; it
    carries ``errno``), :class:`~xenlu.core.errors.CallerError` for anything
    else it cannot take (a non-contiguous view, a path containing NUL, an
    unsupported type).

    >>> as_buffer(b"abc").tolist(), as_buffer(bytearray(2)).readonly
    ([97, 98, 99], True)
    >>> as_buffer(memoryview(b"abcd")[::2])
    Traceback (most recent call last):
    ...
    xenlu.core.errors.CallerError: a non-contiguous memoryview cannot be read in place; \
pass bytes(view) (a copy) or the buffer it views
    """
    if isinstance(data, (bytes, bytearray, memoryview, mmap.mmap)):
        try:
            mv = memoryview(data)
        except ValueError as exc:  # a closed mmap
            raise CallerError(f"cannot view the {type(data).__name__}: {exc}") from None
    elif isinstance(data, (str, os.PathLike)):
        try:
            path = os.fspath(data)
            f = open(path, "rb", buffering=0)  # noqa: SIM115 (closed below; a map outlives it)
        except ValueError:  # embedded NUL
            raise CallerError(f"a path cannot contain a NUL byte: {data!r}") from None
        except TypeError:  # os.fspath gave bytes or something else
            raise CallerError(f"not a usable path: {data!r}") from None
        except OSError as exc:
            raise _input_error(exc, str(path)) from exc
        with f:
            mv = _from_file(f, str(path))
    elif callable(getattr(data, "read", None)):
        what = str(getattr(data, "name", None) or type(data).__name__)
        if isinstance(data, io.TextIOBase):
            # Its position is an opaque cookie and its read() gives str.
            raise InputError(f"cannot read {what}: opened in text mode; open it with 'rb'")
        mv = _from_file(data, what)
    else:
        try:
            mv = memoryview(data)
        except TypeError:
            raise CallerError(
                "expected bytes, bytearray, memoryview, mmap, a path or a binary file "
                f"object, got {type(data).__name__}"
            ) from None
    if not mv.c_contiguous:
        raise CallerError(
            "a non-contiguous memoryview cannot be read in place; "
            "pass bytes(view) (a copy) or the buffer it views"
        )
    if mv.ndim != 1 or mv.itemsize != 1 or mv.format != "B":
        mv = mv.cast("B")
    return mv.toreadonly()


def frame_at(buf: memoryview, pos: int, end: int, index: int) -> tuple[int, int, int]:
    """``(type, length, next offset)`` of the record whose header is at ``pos``.

    Checks the framing only (LU spec §1, reference §1.4): a whole header,
    ``length ≤ REC_LENGTH_MAX``, the body and its padding inside ``end``,
    and zero padding; raises the located :class:`FramingError` otherwise.
    """
    if pos + 8 <= end:
        rtype, length = HDR.unpack_from(buf, pos)
        stop = pos + 8 + length + (-length & 7)
        if (
            length <= REC_LENGTH_MAX
            and stop <= end
            and (
                not length & 7 or buf[pos + 8 + length : stop] == _ZEROS[: stop - pos - 8 - length]
            )
        ):
            return rtype, length, stop
    raise framing_error(buf, pos, end, index)


def framing_error(buf: memoryview, pos: int, end: int, index: int) -> FramingError:
    """Why :func:`frame_at` refuses the record at ``pos``."""
    if pos + 8 > end:
        return FramingError(
            "record header truncated",
            offset=pos,
            record_index=index,
            expected="8 header bytes",
            got=end - pos,
        )
    rtype, length = HDR.unpack_from(buf, pos)
    if length > REC_LENGTH_MAX:
        return FramingError(
            "record body longer than REC_LENGTH_MAX",
            offset=pos + 4,
            record_index=index,
            record_type=rtype,
            field="length",
            expected=f"<= {REC_LENGTH_MAX:#x}",
            got=length,
        )
    body = pos + 8
    pad = -length & 7
    stop = body + length + pad
    if stop > end:
        return FramingError(
            "record body runs past the end of the input",
            offset=pos,
            record_index=index,
            record_type=rtype,
            field="length",
            expected=f"{length + pad} bytes of body and padding",
            got=max(0, end - body),
        )
    return padding_error(buf, stop, pad, index, rtype)


def padding_error(
    buf: memoryview,
    stop: int,
    pad: int,
    index: int | None,
    rtype: int,
    family: str | None = None,
) -> FramingError:
    """The error for a record whose ``pad`` padding bytes before ``stop`` are not
    all zero, located at the first non-zero one (LU spec §1; every family)."""
    first = next(i for i in range(stop - pad, stop) if buf[i])
    return FramingError(
        "padding not zero",
        offset=first,
        record_index=index,
        record_type=rtype,
        field="padding",
        expected=0,
        got=buf[first],
        family=family,
    )


def frames(buf: memoryview, pos: int, end: int, index: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(index, header_offset, type, length)`` for each record in ``buf[pos:end]``.

    Each record is read by :func:`frame_at` (framing checks only). The
    caller stops the iteration at END. Raises :class:`FramingError`; when
    the input ends exactly at a record boundary the generator simply stops.
    """
    while pos < end:
        rtype, length, stop = frame_at(buf, pos, end, index)
        yield index, pos, rtype, length
        index += 1
        pos = stop


class Sink(Protocol):
    """Anything with ``write(buffer)``: a file, ``io.BytesIO``, a socket wrapper."""

    def write(self, data: Buffer, /) -> object: ...


class BytesSink:
    """An in-memory sink that keeps the written buffers and joins them once.

    Array buffers are kept as views, so building the result costs one copy
    (``getvalue``), not one per write plus one at the end as with BytesIO.
    """

    def __init__(self) -> None:
        self.parts: list[Buffer] = []

    def write(self, data: Buffer, /) -> int:
        self.parts.append(data)
        return memoryview(data).nbytes

    def getvalue(self) -> bytes:
        """Everything written, as one ``bytes``."""
        return b"".join(self.parts)


class RecordWriter:
    """Writes framed records to a sink, never joining buffers.

    Keeps the byte position and, between :meth:`begin_section` and
    :meth:`end_section`, a running crc32c of everything written.
    """

    def __init__(self, sink: Sink, start: int = 0) -> None:
        self.sink = sink
        self._write = sink.write
        self.pos = start
        self._crc: int | None = None
        self._section_start = 0

    def write(self, data: Buffer) -> None:
        """Write raw bytes (headers of container formats)."""
        n = memoryview(data).nbytes
        if n:
            self._write(data)
            if self._crc is not None:
                self._crc = crc32c(data, self._crc)
            self.pos += n

    def record(self, rtype: int, parts: Iterable[Buffer]) -> None:
        """Write one record: header, the body parts in order, zero padding."""
        views = [p if isinstance(p, memoryview) else memoryview(p) for p in parts]
        length = sum(v.nbytes for v in views)
        if length > REC_LENGTH_MAX:
            raise CallerError(
                f"record {rtype:#010x}: body of {length} bytes exceeds "
                f"REC_LENGTH_MAX {REC_LENGTH_MAX}"
            )
        self.write(HDR.pack(rtype & 0xFFFFFFFF, length))
        for v in views:
            self.write(v)
        pad = -length & 7
        if pad:
            self.write(_ZEROS[:pad])

    def begin_section(self) -> None:
        self._crc = 0
        self._section_start = self.pos

    def end_section(self) -> tuple[int, int]:
        """Stop the running checksum; return ``(crc32c, section_bytes)``."""
        crc = self._crc or 0
        self._crc = None
        return crc, self.pos - self._section_start


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the ``with`` block.

    Decoding allocates only acyclic objects (records, values, numpy views);
    the cyclic collector would otherwise walk all of them every few hundred
    records (a quarter of the time on streams of a million small records).
    The switch is process-wide, so it is used around one decode at a time
    and restored on the way out, however the block ends.

    >>> with gc_paused():
    ...     pass
    """
    was_on = gc.isenabled()
    if was_on:
        gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def written_bytes(write: Callable[[_V, RecordWriter], None], value: _V) -> bytes:
    """What ``write(value, writer)`` writes, as one ``bytes`` (the ``*_bytes``
    conveniences of the libxc, libxl and xl encoders).

    >>> written_bytes(lambda v, w: w.record(v, []), 7).hex()
    '0700000000000000'
    """
    sink = BytesSink()
    write(value, RecordWriter(sink))
    return sink.getvalue()
