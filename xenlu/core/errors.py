"""The exception hierarchy of xenlu.

Every public decode, verify, validate and convert function raises only
subclasses of :class:`XenLUError` on any input. A decode error locates the
problem: the absolute byte ``offset`` in the input, the ``record_index``
(0-based, counting every record of the stream, headers excluded), the
``record_type`` (printed in hex), the ``field`` (a dotted path such as
``entries[3].flags``), what was ``expected`` and what was found (``got``).

Hierarchy::

    XenLUError
    ├── DecodeError            input bytes are not a valid stream
    │   ├── FramingError       headers, record framing, padding, truncation
    │   │   └── UnknownRecordError   unknown mandatory record type
    │   ├── GrammarError       record in the wrong place, order or number
    │   ├── RecordError        a record body is malformed
    │   ├── ChecksumError      LU section crc32c or size mismatch
    │   ├── VersionError       unsupported stream or Xen version
    │   └── HandoverError      the breadcrumb / MFN array rules (spec §5)
    ├── CallerError            bad arguments or values given to xenlu (also ValueError)
    │   ├── EncodeError        a value cannot be encoded
    │   └── InputError         the input could not be read (carries errno)
    └── ConversionError        an upgrade or rollback is refused (spec §6)
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "CallerError",
    "ChecksumError",
    "ConversionError",
    "DecodeError",
    "EncodeError",
    "FramingError",
    "GrammarError",
    "HandoverError",
    "InputError",
    "RecordError",
    "UnknownRecordError",
    "VersionError",
    "XenLUError",
    "set_record_namer",
]

#: Names a record type in messages: ``(type_code, family) -> name or None``.
#: The registry installs its ``record_name`` when it loads: this module is
#: the lowest of all and imports nothing of xenlu (no import cycle).
_record_namer: Callable[[int, str | None], str | None] | None = None


def set_record_namer(namer: Callable[[int, str | None], str | None]) -> None:
    """Install the function that names record types in messages (the registry's)."""
    global _record_namer
    _record_namer = namer


def _fmt(value: object, count: bool = False) -> str:
    # Offsets, type codes and field values in hex; a byte count (``count``)
    # in decimal, so "expected 72 bytes, got 24" reads as one unit.
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value) if count or -9 <= value <= 9 else f"{value:#x}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return quote_bytes(value)
    return str(value)


def quote_bytes(value: bytes | bytearray | memoryview) -> str:
    """Bytes as a message shows them: never a Python literal (``b'...'``), but
    printable ASCII quoted, anything else in hex.

    >>> quote_bytes(b"/local/domain/1"), quote_bytes(b"\\x89PNG")
    ("'/local/domain/1'", '89504e47')
    """
    raw = bytes(value)
    text = raw.decode("ascii", "replace")
    return f"'{text}'" if text.isprintable() and raw.isascii() else raw.hex()


def _is_count(field: str | None, expected: object, got: object) -> bool:
    """Whether ``expected``/``got`` are byte counts: the field is one
    (``section_bytes``, ``optional_data_len``), or the other side says "bytes"."""
    if field and field.rsplit(".", 1)[-1].endswith(("_bytes", "_len")):
        return True
    return any(isinstance(v, str) and "byte" in v for v in (expected, got))


class XenLUError(Exception):
    """Root of every error xenlu raises."""


class DecodeError(XenLUError):
    """The input is not a valid stream.

    Attributes are ``None`` where they do not apply (a header error has no
    record index).

    >>> e = RecordError("bad flags", offset=0x40, record_index=2,
    ...                 record_type=0x40000010, field="cdf_flags",
    ...                 expected="bits 0-4", got=0x20)
    >>> print(str(e).replace(": ", ":\n"))
    offset 0x40:
    record #2 type 0x40000010 (LU_DOMAIN):
    field cdf_flags:
    bad flags:
    expected bits 0-4, got 0x20
    """

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        record_index: int | None = None,
        record_type: int | None = None,
        field: str | None = None,
        expected: object = None,
        got: object = None,
        family: str | None = None,
    ) -> None:
        self.message = message
        self.offset = offset
        self.record_index = record_index
        self.record_type = record_type
        self.field = field
        self.expected = expected
        self.got = got
        #: Record family ("lu", "libxc", "libxl") used to name ``record_type``;
        #: None means LU, then libxc.
        self.family = family
        super().__init__(message)

    def __str__(self) -> str:
        return self._render()

    @property
    def record_name(self) -> str | None:
        """The registered name of ``record_type``, if known."""
        if self.record_type is None:
            return None
        if _record_namer is None:
            return None
        return _record_namer(self.record_type, self.family)

    def _render(self) -> str:
        parts: list[str] = []
        if self.offset is not None:
            parts.append(f"offset {self.offset:#x}")
        if self.record_index is not None or self.record_type is not None:
            rec = "record"
            if self.record_index is not None:
                rec += f" #{self.record_index}"
            if self.record_type is not None:
                rec += f" type {self.record_type:#010x}"
                name = self.record_name
                if name:
                    rec += f" ({name})"
            parts.append(rec)
        if self.field:
            parts.append(f"field {self.field}")
        msg = self.message
        count = _is_count(self.field, self.expected, self.got)
        if self.expected is not None:
            msg += f": expected {_fmt(self.expected, count)}"
            if self.got is not None:
                msg += f", got {_fmt(self.got, count)}"
        elif self.got is not None:
            msg += f": got {_fmt(self.got, count)}"
        parts.append(msg)
        return ": ".join(parts)

    def __reduce__(self) -> tuple[object, ...]:
        # Keep keyword attributes across pickling (multiprocessing, hypothesis).
        return (
            _rebuild,
            (
                type(self),
                self.message,
                self.offset,
                self.record_index,
                self.record_type,
                self.field,
                self.expected,
                self.got,
                self.family,
            ),
        )


def _rebuild(
    cls: type[DecodeError],
    message: str,
    offset: int | None,
    record_index: int | None,
    record_type: int | None,
    field: str | None,
    expected: object,
    got: object,
    family: str | None = None,
) -> DecodeError:
    return cls(
        message,
        offset=offset,
        record_index=record_index,
        record_type=record_type,
        field=field,
        expected=expected,
        got=got,
        family=family,
    )


class FramingError(DecodeError):
    """Image/domain headers, record headers, padding, length limits, truncation."""


class UnknownRecordError(FramingError):
    """A record type that is not known and not optional (bit 31 clear)."""


class GrammarError(DecodeError):
    """A record in the wrong section, order or number (LU spec §2)."""


class RecordError(DecodeError):
    """A record body is malformed for its type (and epoch)."""


class ChecksumError(DecodeError):
    """An LU section's crc32c or byte count does not match LU_SECTION_END."""


class VersionError(DecodeError):
    """A stream version or Xen version that xenlu does not support."""


class HandoverError(DecodeError):
    """The breadcrumb, MFN array or data pages break LU spec §5."""


class CallerError(XenLUError, ValueError):
    """Bad arguments or values passed to a xenlu function."""


class EncodeError(CallerError):
    """A value cannot be encoded (out of range, wrong type, inconsistent)."""


class InputError(CallerError):
    """The input could not be read: a missing or unreadable path, a directory,
    a closed file, a read that failed.

    ``errno`` and ``strerror`` are those of the operating-system error (the
    :class:`OSError` is also the exception's ``__cause__``), ``filename`` the
    path when there is one; ``errno`` is None when no system call failed (a
    text-mode file object, for instance). A command line maps this class to
    its I/O exit code, not to "the stream is invalid".

    >>> e = InputError("cannot read x.lu: No such file or directory", errno=2, filename="x.lu")
    >>> e.errno, e.filename, str(e)
    (2, 'x.lu', 'cannot read x.lu: No such file or directory')
    """

    def __init__(
        self,
        message: str,
        *,
        errno: int | None = None,
        strerror: str | None = None,
        filename: str | None = None,
    ) -> None:
        self.errno = errno
        self.strerror = strerror
        self.filename = filename
        super().__init__(message)


class ConversionError(XenLUError):
    """An upgrade or rollback step is refused (LU spec §6).

    Names the domain, record, field and value that cannot cross the step.
    """

    def __init__(
        self,
        message: str,
        *,
        domid: int | None = None,
        record: str | None = None,
        field: str | None = None,
        value: object = None,
        step: str | None = None,
    ) -> None:
        self.message = message
        self.domid = domid
        self.record = record
        self.field = field
        self.value = value
        self.step = step
        where = []
        if step:
            where.append(f"step {step}")
        if domid is not None:
            where.append(f"domain {domid}")
        if record:
            where.append(f"record {record}")
        if field:
            where.append(f"field {field}")
        text = ": ".join([*where, message])
        if value is not None:
            text += f" (value {_fmt(value)})"
        super().__init__(text)
