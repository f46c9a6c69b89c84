"""Reading a pipe, socket or any file-like object in pieces for the incremental
decoders of :mod:`xenlu.feed.decoder`: :func:`read_ahead` reads on a second thread
into a ring of preallocated buffers, :func:`read_pieces` on the caller's.
No decoding here; :mod:`xenlu.feed.decoder` re-exports both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xenlu.core.errors import CallerError

__all__ = ["DEFAULT_CHUNK", "DEFAULT_DEPTH", "read_ahead", "read_pieces"]

#: What :func:`xenlu.feed.decoder.verify_stream` reads at a time (one buffer of the ring).
DEFAULT_CHUNK = 1 << 20
#: The buffers of :func:`read_ahead`'s ring.
DEFAULT_DEPTH = 3
#: How long :func:`read_ahead` waits for more bytes before handing a part-filled buffer over.
_PAUSE_MS = 5


def _read_into(readinto: Callable[[memoryview], int | None], mv: memoryview) -> int:
    from xenlu.core.errors import InputError

    try:
        n = readinto(mv)
    except OSError as exc:
        raise InputError(
            f"cannot read the stream: {exc.strerror or exc}", errno=exc.errno, strerror=exc.strerror
        ) from exc
    if n is None:
        raise InputError("cannot read the stream: no data available (non-blocking)")
    return n


def read_ahead(readable: Any, chunk_size: int = DEFAULT_CHUNK, depth: int = DEFAULT_DEPTH) -> Any:
    """Yield the bytes of ``readable`` in pieces of at most ``chunk_size``
    bytes, read by a second thread while the caller checks the last piece.

    The reading thread fills a ring of ``depth`` preallocated buffers with
    ``readinto`` (which releases the GIL, as do crc32c and the numpy checks:
    reading and checking use two cores). A buffer is handed over when full,
    at the end of the input, or as soon as nothing more is ready to read
    (``poll``), so a stream that pauses — a migration waiting for its
    receiver — is checked and forwarded up to where it paused. A piece is
    valid until the next is asked for. Without ``readinto``, the pieces of
    :func:`read_pieces`. An :class:`OSError` is an :class:`~xenlu.core.errors.InputError`.

    >>> import io
    >>> [bytes(p) for p in read_ahead(io.BytesIO(b"abcdefg"), 3)]
    [b'abc', b'def', b'g']
    """
    if chunk_size <= 0 or depth <= 0:
        raise CallerError(f"chunk_size and depth must be positive, got {chunk_size}, {depth}")
    readinto = getattr(readable, "readinto", None)
    if readinto is None:
        yield from read_pieces(readable, chunk_size)
        return
    import queue
    import select
    import threading

    ready: Callable[[], bool] | None = None
    try:
        poller = select.poll()
        poller.register(readable.fileno(), select.POLLIN)
        # Wait a little for more before handing a part-filled buffer over.
        ready = lambda: bool(poller.poll(_PAUSE_MS))  # noqa: E731
    except (AttributeError, OSError, ValueError):
        ready = None  # (io.BytesIO: UnsupportedOperation) every read is handed over
    views = [memoryview(bytearray(chunk_size)) for _ in range(depth)]
    free: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    full: queue.SimpleQueue[tuple[int, int] | BaseException] = queue.SimpleQueue()

    def fill() -> None:
        try:
            while True:
                i = free.get()
                if i is None:
                    return  # the caller stopped asking
                mv, n = views[i], 0
                while n < chunk_size:
                    got = _read_into(readinto, mv[n:])
                    n += got
                    if not got or ready is None or not ready():
                        break
                full.put((i, n))
                if not n:
                    return
        except BaseException as exc:  # handed to the caller, raised there
            full.put(exc)

    for i in range(depth):
        free.put(i)
    thread = threading.Thread(target=fill, name="xenlu-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = full.get()
            if isinstance(item, BaseException):
                raise item
            i, n = item
            if not n:
                return
            yield views[i][:n]
            free.put(i)
    finally:
        # The reader stops at its next buffer; one blocked in a read of a
        # stalled input ends with the input (a daemon thread: never waited for).
        free.put(None)


def read_pieces(readable: Any, chunk_size: int = DEFAULT_CHUNK) -> Any:
    """Yield the bytes of ``readable`` in pieces of at most ``chunk_size`` bytes.

    With ``readinto`` one buffer is reused: a piece is valid until the next.
    An :class:`OSError` is an :class:`~xenlu.core.errors.InputError`.
    """
    from xenlu.core.errors import InputError

    readinto = getattr(readable, "readinto", None)
    try:
        if readinto is not None:
            buf = bytearray(chunk_size)
            with memoryview(buf) as mv:
                while True:
                    n = readinto(mv)
                    if n is None:
                        raise InputError("cannot read the stream: no data available (non-blocking)")
                    if not n:
                        return
                    yield mv[:n]
        else:
            read = getattr(readable, "read", None)
            if read is None:
                raise CallerError(f"cannot read a {type(readable).__name__}: no readinto or read")
            while True:
                data = read(chunk_size)
                if data is None:
                    raise InputError("cannot read the stream: no data available (non-blocking)")
                if not data:
                    return
                if isinstance(data, str):
                    raise InputError("cannot read the stream: opened in text mode; use 'rb'")
                yield memoryview(data)
    except OSError as exc:
        raise InputError(
            f"cannot read the stream: {exc.strerror or exc}",
            errno=exc.errno,
            strerror=exc.strerror,
        ) from exc
