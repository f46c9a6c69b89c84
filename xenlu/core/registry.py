"""Record registries: type code → :class:`RecordSpec`, one registry per family.

Families: ``"libxc"`` (migration stream records 0x00–0x12), ``"libxl"``
(libxl stream records 0–5) and ``"lu"`` (Live-Update-only records, bit 30).
A registry refuses a second spec for a type code or name. Record bodies a
registry does not know decode to :class:`UnknownRecord`, which keeps the raw
bytes and re-encodes byte-exactly.

>>> LIBXC.get(0x0A).name
'HVM_PARAMS'
>>> record_name(0x40000010)
'LU_DOMAIN'
"""

from __future__ import annotations

import _thread
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, NoReturn

from xenlu.core.epochs import Epoch
from xenlu.core.errors import (
    CallerError,
    DecodeError,
    RecordError,
    UnknownRecordError,
    set_record_namer,
)
from xenlu.core.layout import Layout, Violation

__all__ = [
    "LIBXC",
    "LIBXL",
    "LU",
    "OPTIONAL",
    "XENSTORE",
    "Ctx",
    "Record",
    "RecordSpec",
    "Registry",
    "UnknownRecord",
    "fixed_record",
    "load",
    "record_name",
    "type_text",
    "unknown_mandatory",
]

#: Bit 31 of a record type: a reader that does not know the record skips it.
OPTIONAL = 0x80000000

Buffer = bytes | bytearray | memoryview

if TYPE_CHECKING:
    # PEP 696 defaults (typing.TypeVar has them from 3.13): a bare ``Record``
    # means ``Record[Any]``, so annotations written before Record was generic
    # stay valid; typing_extensions is needed by the type checker only.
    from typing_extensions import TypeVar

    V = TypeVar("V", default=Any, covariant=True)
else:
    from typing import TypeVar

    V = TypeVar("V", covariant=True)


class Ctx:
    """Where a record body sits, so a body decoder can raise located errors.

    ``offset`` is the absolute offset of the body (the record header is 8
    bytes before it). ``epoch`` is the LU epoch (None for libxc/libxl).
    """

    __slots__ = ("epoch", "extra", "family", "index", "length", "offset", "type")

    def __init__(
        self,
        index: int | None,
        type: int,
        offset: int,
        length: int,
        epoch: Epoch | None = None,
        extra: dict[str, Any] | None = None,
        family: str | None = None,
    ) -> None:
        self.family = family
        self.index = index
        self.type = type
        self.offset = offset
        self.length = length
        self.epoch = epoch
        self.extra = extra if extra is not None else {}

    @property
    def header(self) -> int:
        """Absolute offset of the record header."""
        return self.offset - 8

    def fail(
        self,
        message: str,
        *,
        at: int = 0,
        field: str | None = None,
        expected: object = None,
        got: object = None,
        cls: type[DecodeError] = RecordError,
    ) -> NoReturn:
        """Raise ``cls`` located at body offset ``at``."""
        raise cls(
            message,
            offset=self.offset + at,
            record_index=self.index,
            record_type=self.type,
            field=field,
            expected=expected,
            got=got,
            family=self.family,
        )

    def fail_length(self, expected: object, message: str = "body length wrong") -> NoReturn:
        """Raise a :class:`RecordError` on the length field of the record header."""
        raise RecordError(
            message,
            offset=self.header + 4,
            record_index=self.index,
            record_type=self.type,
            field="length",
            expected=expected,
            got=self.length,
            family=self.family,
        )

    def checked(self, lay: Layout, buf: Any, at: int = 0, prefix: str = "") -> tuple[Any, ...]:
        """The raw tuple of ``lay`` at body offset ``at``, after every rule of the epoch.

        Raises the :class:`RecordError` of the first rule broken (its field
        named ``prefix + field``); the caller has checked that it fits.
        """
        t: tuple[Any, ...] = lay.struct.unpack_from(buf, at)
        v = lay.checker(self.epoch)(t)
        if v is not None:
            self.fail_violation(v, at=at, prefix=prefix)
        return t

    def fail_violation(
        self, v: Violation, *, at: int = 0, prefix: str = "", entry_size: int | None = None
    ) -> NoReturn:
        """Raise a :class:`RecordError` for a layout :class:`Violation`.

        ``at`` is the body offset of the checked layout or array; for an
        array (``entry_size`` given) the field is named ``entries[i].name``.
        """
        name = f"{prefix}[{v.entry}].{v.field}" if entry_size is not None else prefix + v.field
        raise RecordError(
            v.message,
            offset=self.offset + at + v.offset,
            record_index=self.index,
            record_type=self.type,
            field=name,
            expected=v.expected,
            got=v.got,
            family=self.family,
        )


def unknown_mandatory(
    offset: int, index: int, rtype: int, *, expected: str | None = None
) -> UnknownRecordError:
    """The error of an unknown record type without bit 31 (reference §1.4:
    a reader may skip only optional records), for every walker and reader."""
    return UnknownRecordError(
        "unknown mandatory record type",
        offset=offset,
        record_index=index,
        record_type=rtype,
        field="type",
        expected=expected,
    )


@dataclass(frozen=True)
class UnknownRecord:
    """A record whose type the registry does not know, kept byte-exactly.

    >>> UnknownRecord(0x80001234, b"\\x01\\x02\\x03")
    UnknownRecord(type=0x80001234 (optional), body=<3 bytes: 010203>)
    """

    type: int
    body: bytes

    def __repr__(self) -> str:
        n = len(self.body)
        head = bytes(self.body[:16]).hex() + ("..." if n > 16 else "")
        return f"UnknownRecord(type={type_text(self.type, self)}, body=<{n} bytes: {head}>)"

    @property
    def optional(self) -> bool:
        return bool(self.type & OPTIONAL)

    def body_for(self, rtype: int) -> tuple[bytes]:
        """The body parts to write for a record of type ``rtype`` holding this value."""
        if rtype != self.type:
            from xenlu.core.errors import EncodeError

            raise EncodeError(
                f"record type {rtype:#010x} holds an UnknownRecord of type {self.type:#010x}"
            )
        return (self.body,)


@dataclass(frozen=True)
class RecordSpec:
    """How one record type is decoded, checked and encoded.

    ``decode(body, ctx)`` returns the record's value or raises a located
    :class:`~xenlu.core.errors.DecodeError`; ``encode(value)`` returns the body as
    a sequence of buffers (no header, no padding), written without joining.
    """

    family: str
    type: int
    name: str
    decode: Callable[[memoryview, Ctx], Any]
    encode: Callable[[Any], Sequence[Buffer]]
    value_type: Any = None
    bulk: bool = False
    doc: str = ""
    layouts: tuple[Any, ...] = field(default=())
    #: ``check(body, ctx)``: the check-only verify of a body (raises like
    #: ``decode``, builds nothing); None: :meth:`verify` decodes.
    check: Callable[[memoryview, Ctx], object] | None = None
    #: epoch → declaration, for a record whose one layout changes with the
    #: epoch (LU_DOMAIN, the LU_EVTCHNS entry): the table derived from the
    #: declarations' ``since``/``until`` (:func:`~xenlu.core.layout.by_epoch`).
    by_epoch: Mapping[Epoch, Any] | None = None

    def __post_init__(self) -> None:
        # A plain int, not the family's IntEnum member: tables keyed by type are
        # looked up with the ints read from a stream, and an identical small
        # int key is found without a comparison (~5% of libxc verify).
        object.__setattr__(self, "type", int(self.type))

    def verify(self, body: memoryview, ctx: Ctx) -> None:
        """Check ``body`` as :attr:`decode` does (same errors), building nothing if possible."""
        if self.check is not None:
            self.check(body, ctx)
        else:
            self.decode(body, ctx)

    def layouts_in(self, epoch: Epoch | None) -> list[Any]:
        """The declarations this record uses in ``epoch``, in declaration order.

        Undated layouts always; of the dated ones (``packed(since=…,
        until=…)``), those whose epochs hold ``epoch`` (the newest when
        ``epoch`` is None).
        """
        from xenlu.core.layout import dated

        if self.by_epoch is not None:
            return [self.by_epoch[epoch if epoch is not None else max(self.by_epoch)]]
        return [
            c
            for c in self.layouts
            if (c.LAYOUT.until is None if epoch is None else dated(c, epoch))
        ]


def fixed_record(
    family: str,
    type_code: int,
    name: str,
    cls: Any,
    *,
    check_encode: bool = False,
    doc: str = "",
) -> RecordSpec:
    """The :class:`RecordSpec` of a record whose body is exactly one ``cls`` value.

    Everything comes from the declaration: decode and check-only verify
    test the length, then the layout's field rules and record rules
    (``RULES``) of the context's epoch; encode packs the value (after the
    same rules when ``check_encode``).

    >>> from xenlu.lu.records import LuVersion
    >>> spec = fixed_record("lu", 0x40000000, "LU_VERSION", LuVersion)
    >>> spec.decode(memoryview(bytes([4, 0, 0, 0, 15, 0, 0, 0])), Ctx(0, 0, 8, 8)).xen_minor
    15
    """
    from xenlu.core.errors import EncodeError

    lay = cls.LAYOUT
    size = lay.size
    make = lay.from_tuple

    def decode(body: memoryview, ctx: Ctx) -> Any:
        if len(body) != size:
            ctx.fail_length(size)
        return make(ctx.checked(lay, body))

    def check(body: memoryview, ctx: Ctx) -> None:
        if len(body) != size:
            ctx.fail_length(size)
        ctx.checked(lay, body)

    def encode(value: Any) -> Sequence[Buffer]:
        if not isinstance(value, cls):
            raise EncodeError(f"{lay.name}: expected {cls.__name__}, got {type(value).__name__}")
        if check_encode:
            v = lay.check(value)
            if v is not None:
                raise EncodeError(
                    f"{lay.name}: field {v.field}: {v.message}: expected {v.expected}, "
                    f"got {v.got!r}"
                )
        return (lay.pack(value),)

    return RecordSpec(
        family, type_code, name, decode, encode, cls, doc=doc, layouts=(cls,), check=check
    )


class Registry:
    """Type code → :class:`RecordSpec` for one family; refuses duplicates."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._by_type: dict[int, RecordSpec] = {}
        self._by_name: dict[str, RecordSpec] = {}

    def add(self, spec: RecordSpec) -> RecordSpec:
        """Register ``spec``; :class:`CallerError` on a duplicate type or name."""
        if spec.family != self.family:
            raise CallerError(f"{spec.name} is a {spec.family} record, not {self.family}")
        if spec.type in self._by_type:
            raise CallerError(
                f"duplicate {self.family} record type {spec.type:#010x}: "
                f"{spec.name} and {self._by_type[spec.type].name}"
            )
        if spec.name in self._by_name:
            raise CallerError(f"duplicate {self.family} record name {spec.name}")
        self._by_type[spec.type] = spec
        self._by_name[spec.name] = spec
        return spec

    def get(self, type_code: int) -> RecordSpec | None:
        spec = self._by_type.get(type_code)
        if spec is None and not _loaded and self.family not in _families:
            # (a family is in _families only once all its records are in:
            # a thread that asks while another registers it waits in load())
            _load(self.family)
            spec = self._by_type.get(type_code)
        return spec

    def by_name(self, name: str) -> RecordSpec:
        _load(self.family)
        try:
            return self._by_name[name]
        except KeyError:
            raise CallerError(f"no {self.family} record called {name!r}") from None

    def name_of(self, type_code: int) -> str | None:
        spec = self.get(type_code)
        return spec.name if spec else None

    def __iter__(self) -> Iterator[RecordSpec]:
        _load(self.family)
        return iter(sorted(self._by_type.values(), key=lambda s: s.type))

    def __contains__(self, type_code: object) -> bool:
        _load(self.family)
        return type_code in self._by_type

    def __len__(self) -> int:
        _load(self.family)
        return len(self._by_type)


LIBXC = Registry("libxc")
LIBXL = Registry("libxl")
LU = Registry("lu")
#: The xenstored migration stream (docs/designs/xenstore-migration.md).
XENSTORE = Registry("xenstore")


def record_name(type_code: int, family: str | None = None) -> str | None:
    """The name of ``type_code`` (LU first, then libxc, unless ``family`` is given)."""
    _load()
    regs = {"lu": (LU,), "libxc": (LIBXC,), "libxl": (LIBXL,), "xenstore": (XENSTORE,)}.get(
        family or "", (LU, LIBXC)
    )
    for reg in regs:
        n = reg.name_of(type_code)
        if n:
            return n
    if type_code & OPTIONAL and family != "xenstore":  # xenstore types have no optional bit
        return "optional"
    return None


def type_text(type_code: int, value: object = None) -> str:
    """``0x40000000 (LU_VERSION)``: a record type in hex with its name, as messages show it.

    ``value`` (the record's value, when known) tells families apart where
    their type codes overlap: libxl record 1 is LIBXC_CONTEXT, libxc record
    1 PAGE_DATA.

    >>> type_text(0x40000010), type_text(0x1234)
    ('0x40000010 (LU_DOMAIN)', '0x00001234')
    """
    name = None
    if value is not None:
        for reg in (LU, LIBXC, LIBXL):
            spec = reg.get(type_code)
            if spec is not None and spec.value_type and isinstance(value, spec.value_type):
                name = spec.name
                break
    name = name or record_name(type_code)
    return f"{type_code:#010x} ({name})" if name else f"{type_code:#010x}"


_loaded = False


#: Family → its one explicit list of records (each family module's
#: ``RECORDS``), as a function that imports that module. The registry is in
#: the core, below the families, so it cannot name them without an import
#: cycle: :mod:`xenlu.api`, which knows every family, fills this table when
#: it loads, and ``xenlu/__init__`` imports it before anything else. A
#: registry adds its family's list on first use, so ``xenlu verify`` of a
#: libxc stream never imports the LU and libxl record modules (about 40 ms
#: of start-up).
FAMILY_RECORDS: dict[str, Callable[[], Sequence[RecordSpec]]] = {}
#: The families whose records are all registered (a family is added only
#: once every record is in, so a lookup that finds its family here needs no
#: lock), and the ones being registered now.
_families: set[str] = set()
_loading: set[str] = set()
#: Held while a family registers. Decoding runs on worker threads (an LU
#: stream's sections in parallel), so two threads may ask for a family at
#: once; the second waits until the first has added every record. Reentrant:
#: importing a family's modules may ask for the family being registered
#: (it is in ``_loading``, so that asks nothing more).
_lock = _thread.RLock()


def load(family: str | None = None) -> None:
    """Register the records of ``family`` (of every family when None), once.

    Safe to call from several threads at once (see ``_lock``).
    """
    global _loaded
    if _loaded:
        return
    regs = {"libxc": LIBXC, "libxl": LIBXL, "lu": LU, "xenstore": XENSTORE}
    with _lock:
        for fam in FAMILY_RECORDS if family is None else (family,):
            if fam not in _families and fam not in _loading:
                _loading.add(fam)
                try:
                    for spec in FAMILY_RECORDS[fam]():
                        regs[fam].add(spec)
                finally:
                    _loading.discard(fam)
                _families.add(fam)
        _loaded = bool(FAMILY_RECORDS) and len(_families) == len(FAMILY_RECORDS)


_load = load  # the former private name, kept for callers written against it


@dataclass(frozen=True)
class Record(Generic[V]):
    """One record of a stream: its type code and decoded value.

    Generic in its value: ``Record[LuDomain415]``, ``Record[Bulk]``; a bare
    ``Record`` is ``Record[Any]``. ``offset`` (the record header's absolute
    offset when decoded) does not take part in equality.

    >>> from xenlu.lu.records import LuVersion, T
    >>> r: Record[LuVersion] = Record(T.LU_VERSION, LuVersion(xen_major=4, xen_minor=19))
    >>> r.value.xen_minor
    19
    """

    type: int
    value: V
    offset: int | None = field(default=None, compare=False, repr=False)

    def __repr__(self) -> str:
        # The type in hex with its name, as error messages print it.
        return f"Record(type={type_text(self.type, self.value)}, value={self.value!r})"

    @property
    def name(self) -> str:
        """The LU or libxc name of the type (libxl records: ``record_name(t, "libxl")``)."""
        return record_name(self.type) or f"{self.type:#010x}"


# Error messages name record types through the registry; errors sits below it.
set_record_namer(record_name)
