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
import io
import mmap
import os
import stat
import struct
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from xenlu.errors import CallerError, FramingError, InputError

__all__ = [
    "HDR",
    "REC_ALIGN",
    "REC_LENGTH_MAX",
    "BytesSink",
    "RecordWriter",
    "Sink",
    "as_buffer",
    "crc32c",
    "frames",
    "pad_len",
]

HDR = struct.Struct("<II")
REC_ALIGN = 8
#: Largest record body (libxc ``REC_LENGTH_MAX``, LU spec §1).
REC_LENGTH_MAX = 128 << 20
_ZEROS = bytes(8)


_CRC32C: list[Any] = []


def crc32c(data: Any, value: int = 0) -> int:
    """Castagnoli CRC of ``data`` continuing from ``value`` (releases the GIL).

    The ``crc32c`` package is imported on first use: its ``__init__`` reads
    package metadata through ``importlib.metadata`` (about 25 ms of start-up
    that libxc/libxl verification never needs).
    """
    if not _CRC32C:
        import crc32c as _crc32c

        _CRC32C.append(_crc32c.crc32c)
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

    Errors: :class:`~xenlu.errors.InputError` when the input cannot be read
    (missing, unreadable, a directory, a closed or text-mode file; it
    carries ``errno``), :class:`~xenlu.errors.CallerError` for anything
    else it cannot take (a non-contiguous view, a path containing NUL, an
    unsupported type).

    >>> as_buffer(b"abc").tolist(), as_buffer(bytearray(2)).readonly
    ([97, 98, 99], True)
    >>> as_buffer(memoryview(b"abcd")[::2])
    Traceback (most recent call last):
    ...
    xenlu.errors.CallerError: a non-contiguous memoryview cannot be read in place; \
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


def record_end(buf: memoryview, pos: int, length: int, end: int) -> int:
    """The offset after the record at ``pos`` whose header says ``length``, or
    -1 when :func:`frames` would refuse it (too long, past ``end``, padding
    not zero). The structural fast paths ask this; :func:`frames` says why.
    """
    stop = pos + 8 + length + (-length & 7)
    if length > REC_LENGTH_MAX or stop > end:
        return -1
    if length & 7 and buf[pos + 8 + length : stop] != _ZEROS[: stop - pos - 8 - length]:
        return -1
    return stop


def frames(buf: memoryview, pos: int, end: int, index: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(index, header_offset, type, length)`` for each record in ``buf[pos:end]``.

    Checks the framing only: a whole header, ``length ≤ REC_LENGTH_MAX``, the
    body and its padding inside ``end``, and zero padding. The caller stops
    the iteration at END. Raises :class:`FramingError`; when the input ends
    exactly at a record boundary the generator simply stops.
    """
    unpack = HDR.unpack_from
    while pos < end:
        if pos + 8 > end:
            raise FramingError(
                "record header truncated",
                offset=pos,
                record_index=index,
                expected="8 header bytes",
                got=end - pos,
            )
        rtype, length = unpack(buf, pos)
        if length > REC_LENGTH_MAX:
            raise FramingError(
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
            raise FramingError(
                "record body runs past the end of the input",
                offset=pos,
                record_index=index,
                record_type=rtype,
                field="length",
                expected=f"{length + pad} bytes of body and padding",
                got=max(0, end - body),
            )
        if pad and buf[stop - pad : stop] != _ZEROS[:pad]:
            first = next(i for i in range(stop - pad, stop) if buf[i])
            raise FramingError(
                "padding not zero",
                offset=first,
                record_index=index,
                record_type=rtype,
                field="padding",
                expected=0,
                got=buf[first],
            )
        yield index, pos, rtype, length
        index += 1
        pos = stop


class Sink(Protocol):
    """Anything with ``write(buffer)``: a file, ``io.BytesIO``, a socket wrapper."""

    def write(self, data: Any, /) -> Any: ...


class BytesSink:
    """An in-memory sink that keeps the written buffers and joins them once.

    Array buffers are kept as views, so building the result costs one copy
    (``getvalue``), not one per write plus one at the end as with BytesIO.
    """

    def __init__(self) -> None:
        self.parts: list[Any] = []

    def write(self, data: Any, /) -> int:
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

    def write(self, data: Any) -> None:
        """Write raw bytes (headers of container formats)."""
        n = memoryview(data).nbytes
        if n:
            self._write(data)
            if self._crc is not None:
                self._crc = crc32c(data, self._crc)
            self.pos += n

    def record(self, rtype: int, parts: Iterable[Any]) -> None:
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
