"""The public entry points: decode, encode and verify any stream xenlu knows.

Formats: ``"lu"`` (Live Update stream), ``"libxc"`` (migration stream v2/v3),
``"libxl"`` (libxl stream with embedded libxc), ``"xl"`` (xl save file),
``"xenstore"`` (xenstored migration stream) and ``"auto"``, which looks at
the first bytes. Each format is one
:class:`Format` entry of :data:`FORMAT_TABLE` (how it is recognised, decoded,
verified and encoded, and its stream class); :func:`decode`, :func:`verify`,
:func:`encode_to` and :func:`format_of` only look things up there.

Given the wrong format, :func:`decode` and :func:`verify` say what the input
looks like instead of reporting a framing error in the middle of a header::

    offset 0x0: not an LU stream: looks like an xl save file

>>> from xenlu.testing.hostgen import make_host
>>> data = encode(make_host("4.15", n_hvm=0, mem_mib=1, dom0_mem_mib=1))
>>> detect_format(data), format_of(decode(data)), verify(data)
('lu', 'lu', 'lu')
>>> decode(b"\\x89PNG\\r\\n\\x1a\\n", "lu")
Traceback (most recent call last):
...
xenlu.core.errors.FramingError: offset 0x0: not an LU stream: unrecognised: first bytes \
89504e470d0a1a0a
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeAlias, TypeVar, overload

from xenlu.core.errors import CallerError, FramingError
from xenlu.core.framing import REC_LENGTH_MAX, Sink, Source, as_buffer
from xenlu.core.registry import FAMILY_RECORDS, RecordSpec

if TYPE_CHECKING:  # imported only for annotations: start-up of `xenlu verify` stays lean
    from concurrent.futures import Executor

    from xenlu.lu.stream import LUStream
    from xenlu.migration.libxc_stream import LibxcStream
    from xenlu.migration.libxl import LibxlStream, XlFile
    from xenlu.xenstore.stream import XenstoreStream

__all__ = [
    "FORMATS",
    "FORMAT_TABLE",
    "AnyStream",
    "Codec",
    "Format",
    "FormatName",
    "decode",
    "describe_head",
    "detect_format",
    "encode",
    "encode_to",
    "expect_format",
    "format_of",
    "sniff",
    "verify",
]


def _libxc_records() -> Sequence[RecordSpec]:
    from xenlu.migration.libxc import RECORDS

    return RECORDS


def _libxl_records() -> Sequence[RecordSpec]:
    from xenlu.migration.libxl_records import RECORDS

    return RECORDS


def _lu_records() -> Sequence[RecordSpec]:
    from xenlu.lu.records import RECORDS

    return RECORDS


def _xenstore_records() -> Sequence[RecordSpec]:
    from xenlu.xenstore.codec import RECORDS

    return RECORDS


# The registry is in the core and cannot name the families above it; this
# module, which knows them all, tells it where each family's RECORDS list is
# (imported on first use). xenlu/__init__ imports this module first.
FAMILY_RECORDS.update(
    libxc=_libxc_records, libxl=_libxl_records, lu=_lu_records, xenstore=_xenstore_records
)

_LIBXC_MARKER = b"\xff" * 8
_LIBXL_IDENT = b"LibxlFmt"
_XL_MAGIC = b"Xen saved domain, xl format\n \0 \r"
_XENSTORE_IDENT = b"xenstore"
_LU_FIRST = b"\x00\x00\x00\x40"  # LU_VERSION 0x40000000, little-endian (LU spec §1, §4.1)


# --- the format table ------------------------------------------------------------------

#: Every stream object :func:`decode` returns and :func:`encode_to` writes.
AnyStream: TypeAlias = "LUStream | LibxcStream | LibxlStream | XlFile | XenstoreStream"
#: A format name :func:`decode` and :func:`verify` take.
FormatName: TypeAlias = Literal["auto", "lu", "libxc", "libxl", "xl", "xenstore"]

S = TypeVar("S")
S_contra = TypeVar("S_contra", contravariant=True)


class Codec(Protocol[S]):
    """The codec of one stream family, stream class ``S``: what every
    :data:`FORMAT_TABLE` entry provides and :func:`decode` / :func:`verify` /
    :func:`encode_to` call.

    ``decode(buf, strict, executor)`` returns the stream object;
    ``verify(buf, strict, executor)`` raises the first problem (``executor``:
    optional threads a family may use, None for none); ``encode_to(stream,
    sink, **options)`` writes the stream and returns the bytes written.
    """

    def decode(self, buf: memoryview, strict: bool, executor: Executor | None, /) -> S: ...

    def verify(self, buf: memoryview, strict: bool, executor: Executor | None, /) -> None: ...

    def encode_to(self, stream: S, sink: Sink, /, **options: Any) -> int: ...


class _Encoder(Protocol[S_contra]):
    def __call__(self, stream: S_contra, sink: Sink, /, **options: Any) -> int: ...


@dataclass(frozen=True)
class Format(Generic[S]):
    """One stream family: how it is recognised, and its :class:`Codec`.

    ``signature`` is tested on the first 32 bytes; ``decode``, ``verify``
    and ``encode_to`` are the family's codec (the :class:`Codec` protocol).
    The stream class is named by module and class so that asking for it
    (:func:`format_of`) never imports a decoder.
    """

    name: str
    #: How a message names it: "an LU stream", "an xl save file".
    title: str
    signature: Callable[[bytes], bool]
    decode: Callable[[memoryview, bool, Executor | None], S]
    verify: Callable[[memoryview, bool, Executor | None], None]
    encode_to: _Encoder[S]
    module: str
    stream_class: str
    #: The codec uses the threads of an ``executor`` (LU: large records and
    #: section checksums beside the walk). A caller opts in to threads only
    #: for such a family: for the others an executor is never used, and
    #: making one (importing ``concurrent.futures``) costs start-up for nothing.
    threads: bool = False

    def stream_type(self) -> type[S]:
        """The stream class (imports its module)."""
        import importlib

        cls: type[S] = getattr(importlib.import_module(self.module), self.stream_class)
        return cls


def _lu_decode(buf: memoryview, strict: bool, executor: Executor | None) -> LUStream:
    from xenlu.lu.stream import decode_lu

    return decode_lu(buf, strict=strict, executor=executor)


def _lu_verify(buf: memoryview, strict: bool, executor: Executor | None) -> None:
    from xenlu.lu.stream import verify_lu

    verify_lu(buf, strict=strict, executor=executor)


def _lu_encode(stream: LUStream, sink: Sink, /, **options: Any) -> int:
    from xenlu.lu.stream import encode_lu_to

    return encode_lu_to(stream, sink, **options)


def _libxc_decode(buf: memoryview, strict: bool, executor: Executor | None) -> LibxcStream:
    from xenlu.migration.libxc_stream import decode_libxc

    stream, _end, _idx = decode_libxc(buf, strict=strict)
    return stream


def _libxc_verify(buf: memoryview, strict: bool, executor: Executor | None) -> None:
    # The structural path builds no value objects (same verdicts as decode).
    from xenlu.migration.libxc_stream import verify_libxc

    verify_libxc(buf, strict=strict)


def _libxl_decode(buf: memoryview, strict: bool, executor: Executor | None) -> LibxlStream:
    from xenlu.migration.libxl import decode_libxl

    return decode_libxl(buf, strict=strict)


def _xl_decode(buf: memoryview, strict: bool, executor: Executor | None) -> XlFile:
    from xenlu.migration.libxl import decode_xl

    return decode_xl(buf, strict=strict)


def _xenstore_decode(buf: memoryview, strict: bool, executor: Executor | None) -> XenstoreStream:
    from xenlu.xenstore.stream import decode_xenstore

    return decode_xenstore(buf, strict=strict)


def _xenstore_encode(stream: XenstoreStream, sink: Sink, /, **options: Any) -> int:
    from xenlu.xenstore.stream import encode_xenstore_to

    return encode_xenstore_to(stream, sink, **options)


def _verify_by_decoding(
    decoder: Callable[[memoryview, bool, Executor | None], object],
) -> Callable[[memoryview, bool, Executor | None], None]:
    def verify(buf: memoryview, strict: bool, executor: Executor | None) -> None:
        decoder(buf, strict, executor)

    return verify


def _writer_encoder(module: str, function: str) -> _Encoder[Any]:
    """``encode_to`` of a family whose encoder writes through a RecordWriter."""

    def encode_to(stream: Any, sink: Sink, /, **options: Any) -> int:
        import importlib

        from xenlu.core.framing import RecordWriter

        if options:
            raise CallerError(
                f"{function}: no options apply to this format, got {', '.join(sorted(options))}"
            )
        w = RecordWriter(sink)
        getattr(importlib.import_module(module), function)(stream, w)
        return w.pos

    return encode_to


_XL: Format[XlFile] = Format(
    "xl",
    "an xl save file",
    lambda head: head[:8] == _XL_MAGIC[:8],
    _xl_decode,
    _verify_by_decoding(_xl_decode),
    _writer_encoder("xenlu.migration.libxl", "encode_xl"),
    "xenlu.migration.libxl",
    "XlFile",
)

_LIBXL: Format[LibxlStream] = Format(
    "libxl",
    "a libxl stream",
    lambda head: head[:8] == _LIBXL_IDENT,
    _libxl_decode,
    _verify_by_decoding(_libxl_decode),
    _writer_encoder("xenlu.migration.libxl", "encode_libxl"),
    "xenlu.migration.libxl",
    "LibxlStream",
)

_LIBXC: Format[LibxcStream] = Format(
    "libxc",
    "a libxc migration stream",
    lambda head: head[:8] == _LIBXC_MARKER,
    _libxc_decode,
    _libxc_verify,
    _writer_encoder("xenlu.migration.libxc_stream", "encode_libxc"),
    "xenlu.migration.libxc_stream",
    "LibxcStream",
)

_LU: Format[LUStream] = Format(
    "lu",
    "an LU stream",
    lambda head: head[:4] == _LU_FIRST,
    _lu_decode,
    _lu_verify,
    _lu_encode,
    "xenlu.lu.stream",
    "LUStream",
    threads=True,
)

_XENSTORE: Format[XenstoreStream] = Format(
    "xenstore",
    "a xenstored migration stream",
    # xenstore-migration.md, Header: the 8-byte ident "xenstore".
    lambda head: head[:8] == _XENSTORE_IDENT,
    _xenstore_decode,
    _verify_by_decoding(_xenstore_decode),
    _xenstore_encode,
    "xenlu.xenstore.stream",
    "XenstoreStream",
)

#: Every format, in the order :func:`sniff` tries their signatures (the xl
#: magic before the libxl ident it may contain, the 8-byte markers before
#: the 4-byte LU record type).
FORMAT_TABLE: dict[str, Format[Any]] = {f.name: f for f in (_XL, _LIBXL, _LIBXC, _LU, _XENSTORE)}

if TYPE_CHECKING:
    # Each entry is its family's Codec: the type checker proves it here.
    _CODECS: tuple[
        Codec[XlFile],
        Codec[LibxlStream],
        Codec[LibxcStream],
        Codec[LUStream],
        Codec[XenstoreStream],
    ] = (_XL, _LIBXL, _LIBXC, _LU, _XENSTORE)

#: What ``format=`` accepts.
FORMATS = ("auto", *FORMAT_TABLE)


def _format(name: str) -> Format[Any]:
    try:
        return FORMAT_TABLE[name]
    except (KeyError, TypeError):
        raise CallerError(
            f"unknown format {name!r}; expected one of {', '.join(FORMATS)}"
        ) from None


# --- recognising an input ---------------------------------------------------------------

# Files people hand a stream reader by mistake: named so the message can say so.
_OTHER_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "a gzip-compressed file (decompress it first)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file (decompress it first)"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file (decompress it first)"),
    (b"BZh", "a bzip2-compressed file (decompress it first)"),
    (b"\x7fELF", "an ELF executable"),
    (b"QEVM", "a QEMU device-model save file"),
)


def sniff(data: Source) -> str | None:
    """The format whose signature the first bytes carry, or None.

    The one recognition rule of xenlu (:func:`detect_format`, the checks of
    an explicit ``format=`` and the command line use it).

    >>> sniff(b"LibxlFmt" + bytes(8)), sniff(b"hello")
    ('libxl', None)
    """
    head = bytes(as_buffer(data)[:32])
    for f in FORMAT_TABLE.values():
        if f.signature(head):
            return f.name
    return None


def describe_head(data: Source) -> str:
    """What the first bytes look like, for a message: "looks like an xl save file",
    "empty input" or "unrecognised: first bytes 89504e47…".

    >>> describe_head(b"Xen saved domain, xl format\\n \\0 \\r")
    'looks like an xl save file'
    >>> describe_head(b"")
    'empty input'
    """
    buf = as_buffer(data)
    if not len(buf):
        return "empty input"
    name = sniff(buf)
    if name is not None:
        return f"looks like {FORMAT_TABLE[name].title}"
    head = bytes(buf[:8])
    for magic, what in _OTHER_MAGICS:
        if head.startswith(magic):
            return f"looks like {what}"
    return f"unrecognised: first bytes {head.hex()}"


def detect_format(data: Source) -> str:
    """The format of a stream from its first bytes (``lu``, ``libxc``, ``libxl``, ``xl``).

    :class:`~xenlu.core.errors.FramingError` at offset 0 when no format matches,
    saying what the input looks like.

    >>> detect_format(b"\\xff" * 8 + bytes(16))
    'libxc'
    >>> detect_format(b"GIF89a")
    Traceback (most recent call last):
    ...
    xenlu.core.errors.FramingError: offset 0x0: not a stream xenlu knows (LU, libxc, libxl, xl): \
unrecognised: first bytes 474946383961
    """
    buf = as_buffer(data)
    name = sniff(buf)
    if name is None:
        raise FramingError(
            f"not a stream xenlu knows (LU, libxc, libxl, xl): {describe_head(buf)}",
            offset=0,
        )
    return name


def _plausible_lu(buf: memoryview) -> bool:
    """Whether a stream not starting with LU_VERSION is still worth decoding as LU.

    A first record header of a registered LU or libxc type, or an optional
    type, with a length within REC_LENGTH_MAX is a damaged LU stream, whose
    decoder names the exact problem (e.g. "first record not LU_VERSION");
    anything else is not an LU stream at all.
    """
    if len(buf) < 8:
        return True  # the decoder reports the truncated header
    from xenlu.core.framing import HDR
    from xenlu.core.registry import LIBXC, LU, OPTIONAL

    rtype, length = HDR.unpack_from(buf, 0)
    known = rtype & OPTIONAL or rtype in LU or rtype in LIBXC
    return bool(known) and length <= REC_LENGTH_MAX


def refuse_other_format(buf: memoryview, fmt: Format[Any]) -> None:
    """Refuse an input that is plainly not ``fmt`` with what it looks like instead.

    Another format's signature, or no signature where the format has a
    magic (libxc, libxl, xl), is a :class:`FramingError` at offset 0 naming
    what the input looks like; a damaged stream of the right family goes on
    to the decoder, which locates the damage.
    """
    name = sniff(buf)
    if name == fmt.name:
        return
    if name is None and len(buf) and fmt.name == "lu" and _plausible_lu(buf):
        return
    raise FramingError(f"not {fmt.title}: {describe_head(buf)}", offset=0)


# --- the entry points -------------------------------------------------------------------


def _format_for(buf: memoryview, format: str) -> Format[Any]:
    """The table entry for ``format`` (recognised from the bytes for "auto"),
    after refusing an input plainly of another format."""
    if format == "auto":
        return FORMAT_TABLE[detect_format(buf)]
    fmt = _format(format)
    refuse_other_format(buf, fmt)
    return fmt


@overload
def decode(
    data: Source, format: Literal["lu"], *, strict: bool = ..., executor: Executor | None = ...
) -> LUStream: ...
@overload
def decode(
    data: Source, format: Literal["libxc"], *, strict: bool = ..., executor: Executor | None = ...
) -> LibxcStream: ...
@overload
def decode(
    data: Source, format: Literal["libxl"], *, strict: bool = ..., executor: Executor | None = ...
) -> LibxlStream: ...
@overload
def decode(
    data: Source, format: Literal["xl"], *, strict: bool = ..., executor: Executor | None = ...
) -> XlFile: ...
@overload
def decode(
    data: Source,
    format: Literal["xenstore"],
    *,
    strict: bool = ...,
    executor: Executor | None = ...,
) -> XenstoreStream: ...
@overload
def decode(
    data: Source, format: str = ..., *, strict: bool = ..., executor: Executor | None = ...
) -> AnyStream: ...
def decode(
    data: Source, format: str = "auto", *, strict: bool = True, executor: Executor | None = None
) -> AnyStream:
    """Decode and structurally verify a stream.

    Typed per format: ``decode(data, "lu")`` is an
    :class:`~xenlu.lu.stream.LUStream` to a type checker, ``decode(data)``
    (``"auto"``) the union :data:`AnyStream`.

    ``data``: bytes, bytearray, memoryview, mmap, a path or a binary file
    object (see :func:`xenlu.core.framing.as_buffer`: a regular file is mapped
    read-only, never read into memory; a pipe is read). Returns an
    :class:`~xenlu.lu.stream.LUStream`,
    :class:`~xenlu.migration.libxc_stream.LibxcStream`,
    :class:`~xenlu.migration.libxl.LibxlStream` or :class:`~xenlu.migration.libxl.XlFile`.
    Raises only :class:`~xenlu.core.errors.XenLUError` subclasses; an input that
    is not of the requested ``format`` is a :class:`FramingError` at offset
    0 saying what it looks like. ``executor`` (optional, e.g. a
    ``ThreadPoolExecutor(2)``): threads a family may use (LU streams decode
    their domain sections ahead on it); the result is the same without.
    """
    buf = as_buffer(data)
    fmt = _format_for(buf, format)
    stream: AnyStream = fmt.decode(buf, strict, executor)
    return stream


def verify(
    data: Source, format: str = "auto", *, strict: bool = True, executor: Executor | None = None
) -> str:
    """Structurally verify a stream; return its format, raise the first problem.

    The same inputs, checks and errors as :func:`decode`; the structural
    paths build no value objects. ``executor`` (optional): LU streams check
    large records and section checksums on its threads; same verdict without.

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(2) as pool:             # doctest: +SKIP
    ...     verify("host.lu", executor=pool)
    'lu'
    """
    buf = as_buffer(data)
    fmt = _format_for(buf, format)
    fmt.verify(buf, strict, executor)
    return fmt.name


def format_of(stream: object) -> str:
    """The format name of a decoded or built stream object (``"lu"``, ``"xl"`` …).

    :class:`~xenlu.core.errors.CallerError` for anything that is not a stream
    xenlu encodes. A format's module is imported only for an object whose
    class (or a base) has that format's stream class name: the class may be
    loaded from its model module while the format's module is not yet (a
    stream built by the incremental decoder).
    """
    mro_names = {c.__name__ for c in type(stream).__mro__}
    for f in FORMAT_TABLE.values():
        if f.stream_class not in mro_names:
            continue
        mod = sys.modules.get(f.module)
        if mod is None:
            import importlib

            mod = importlib.import_module(f.module)
        cls = getattr(mod, f.stream_class, None)
        if cls is not None and isinstance(stream, cls):
            return f.name
    names = ", ".join(f.stream_class for f in FORMAT_TABLE.values())
    raise CallerError(f"not a stream xenlu encodes: {type(stream).__name__} (expected {names})")


def expect_format(stream: object, name: str, what: str) -> None:
    """Refuse a stream object of another format: ``what`` needs ``name``.

    For functions that take one family only (``compat.convert``, validation,
    restore plans), so an xl save file handed to them is a
    :class:`~xenlu.core.errors.CallerError` that says so, not an AttributeError.

    >>> from xenlu.migration.libxl import LibxlHeader, LibxlStream
    >>> expect_format(LibxlStream(LibxlHeader(), []), "lu", "convert")
    Traceback (most recent call last):
    ...
    xenlu.core.errors.CallerError: convert needs an LU stream, got a libxl stream (LibxlStream)
    """
    want = _format(name)
    try:
        got = format_of(stream)
    except CallerError:
        raise CallerError(
            f"{what} needs {want.title}, got a {type(stream).__name__}"
            f"{' (decode the bytes first: xenlu.decode(data))' if _is_data(stream) else ''}"
        ) from None
    if got != name:
        raise CallerError(
            f"{what} needs {want.title}, got {FORMAT_TABLE[got].title} ({type(stream).__name__})"
        )


def _is_data(x: object) -> bool:
    import os

    return isinstance(x, (bytes, bytearray, memoryview, str, os.PathLike))


def encode_to(stream: AnyStream, sink: Sink, **options: Any) -> int:
    """Write any decoded or built stream to ``sink``; return the bytes written.

    ``sink``: anything with ``write(buffer)`` (a file opened ``"wb"``, a
    socket's file, :class:`io.BytesIO`); buffers are handed to it as they
    are, never joined. A path is refused with a
    :class:`~xenlu.core.errors.CallerError`: choosing how a file is replaced
    (atomically, in place, its permissions) is the caller's business —
    ``with open(path, "wb") as f: encode_to(stream, f)``. ``options``:
    ``max_record_bytes`` for LU streams (:func:`~xenlu.lu.stream.encode_lu_to`).

    >>> import io
    >>> from xenlu.testing.hostgen import make_host
    >>> host = make_host("4.11", n_hvm=0, mem_mib=1, dom0_mem_mib=1)
    >>> encode_to(host, io.BytesIO()) == len(encode(host))
    True
    """
    import os

    if isinstance(sink, (str, bytes, os.PathLike)):
        raise CallerError(
            f"encode_to writes to a file object, not a path ({sink!r}): "
            'use `with open(path, "wb") as f: encode_to(stream, f)`, or encode(stream)'
        )
    if not callable(getattr(sink, "write", None)):
        raise CallerError(
            f"encode_to needs a sink with write(buffer) (a file opened 'wb', io.BytesIO), "
            f"got {type(sink).__name__}"
        )
    if isinstance(sink, io.TextIOBase):
        raise CallerError("encode_to needs a binary sink: the file is in text mode; open it 'wb'")
    fmt = FORMAT_TABLE[format_of(stream)]
    try:
        return fmt.encode_to(stream, sink, **options)
    except io.UnsupportedOperation as exc:  # e.g. a file opened for reading
        raise CallerError(f"cannot write to the sink: {exc}") from None
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise CallerError(f"encode_to: {exc}") from None
        raise


def encode(stream: AnyStream, **options: Any) -> bytes:
    """The bytes of any stream xenlu can encode (one join of the parts)."""
    from xenlu.core.framing import BytesSink

    sink = BytesSink()
    encode_to(stream, sink, **options)
    return sink.getvalue()
