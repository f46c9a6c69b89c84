"""The declarative record engine: one declaration per fixed-size layout.

A layout is declared once, as a frozen dataclass whose fields carry their
construct type and their rules::

    @packed
    class LuVersion(Packed):
        xen_major: int = fld(Int32ul, doc="Xen major version")
        xen_minor: int = fld(Int32ul)

Everything else is derived from that declaration by :class:`Layout`:

* the construct ``Struct`` (:attr:`Layout.construct`), used for documentation,
  schema export and as a slow reference implementation in tests;
* a precomputed :class:`struct.Struct` (:attr:`Layout.struct`) and a fast
  constructor, so hot paths never interpret construct;
* a numpy structured dtype (:attr:`Layout.dtype`) for bulk entries, decoded
  zero-copy with ``np.frombuffer``;
* per-epoch structural checks (reserved fields zero, valid flag bits, allowed
  values and ranges, and the record-level rules declared beside the layout in
  ``RULES``) for one entry (:meth:`Layout.check`) and vectorised over a whole
  array (:meth:`Layout.check_array`), all compiled once per epoch from one
  rule list (:meth:`Layout.rules`, :mod:`xenlu.core.rules`), so every path gives
  the same error;
* for a record whose layout changes with the epoch, ``packed(since=…,
  until=…)`` on each declaration, read by :func:`layout_for` / :func:`by_epoch`;
* a JSON description (:meth:`Layout.describe`) for ``schemas/``.

Reserved fields (``rsvd: ClassVar[Rsvd] = reserved(Int32ul)``) take part in
the byte layout but not in the dataclass: they are written as zero and must be
zero on read (LU spec "Conventions"; libxc spec: written as zero).

Example, decode and encode::

    >>> from xenlu.lu.records import LuVersion
    >>> v = LuVersion.LAYOUT.unpack(b"\\x04\\0\\0\\0\\x0b\\0\\0\\0")
    >>> v.xen_minor
    11
    >>> LuVersion.LAYOUT.pack(v)
    b'\\x04\\x00\\x00\\x00\\x0b\\x00\\x00\\x00'
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, dataclass_transform

import construct as cs

if TYPE_CHECKING:
    import numpy as np
# numpy is imported where an array is made or checked, not here: paths that
# never touch a bulk array (the libxc verify command) skip its ~45 ms import.

from xenlu.core import names
from xenlu.core.epochs import Epoch, parse_epoch
from xenlu.core.rules import TINY, Rule, RuleSet, Violation

__all__ = [
    "FieldInfo",
    "Layout",
    "Packed",
    "Rsvd",
    "Rule",
    "RuleSet",
    "Violation",
    "by_epoch",
    "dated",
    "fld",
    "layout_for",
    "packed",
    "packed_base",
    "reserved",
]

# A bit or value name, optionally limited to epochs (see xenlu.core.names).
Named = names.Named

_META = "xenlu"


def fld(
    subcon: Any,
    *,
    doc: str = "",
    bits: names.NameSource | None = None,
    mask: names.NameSource | None = None,
    values: names.NameSource | None = None,
    lo: int | None = None,
    hi: int | None = None,
    default: Any = dataclasses.MISSING,
) -> Any:
    """Declare one field of a :func:`packed` layout.

    ``subcon`` is a construct ``FormatField`` (``Int8ul`` … ``Int64sl``) or
    ``Bytes(n)``. ``bits`` names the valid single bits (bit number → name);
    ``mask`` names valid multi-bit groups (mask value → name); together they
    make the field's valid-bit mask, and every other bit is an error.
    ``values`` lists the allowed values; ``lo``/``hi`` bound the value
    (inclusive). Each name may be limited to epochs, see ``Named``.
    ``bits``/``values``/``mask`` take an ``IntFlag``/``IntEnum`` (the names
    declared once, :mod:`xenlu.core.names`) or a mapping.
    ``default`` makes the field optional in the constructor (header magics).
    Reserved fields are declared with :func:`reserved` instead.
    """
    meta = {
        "subcon": subcon,
        "doc": doc,
        "reserved": False,
        "bits": names.bit_names(bits) if bits else None,
        "mask": names.value_names(mask) if mask else None,
        "values": names.value_names(values) if values else None,
        "lo": lo,
        "hi": hi,
    }
    return dataclasses.field(default=default, metadata={_META: meta})


class Rsvd:
    """A reserved field: part of the byte layout, not of the dataclass.

    Declared as ``rsvd0: ClassVar[Rsvd] = reserved(Int16ul)``; it is written as
    zero and must be zero on read.
    """

    __slots__ = ("subcon",)

    def __init__(self, subcon: Any) -> None:
        self.subcon = subcon


def reserved(subcon: Any) -> Rsvd:
    """Declare a reserved field (see :class:`Rsvd`)."""
    return Rsvd(subcon)


def _in_epoch(named: Named, epoch: Epoch | None) -> bool:
    if isinstance(named, str) or epoch is None:
        return True
    _, since, until = named
    if since is not None and epoch < parse_epoch(since):
        return False
    return not (until is not None and epoch >= parse_epoch(until))


def _name(named: Named) -> str:
    return named if isinstance(named, str) else named[0]


@dataclass(frozen=True)
class FieldInfo:
    """One field of a layout, as derived from its declaration."""

    name: str
    offset: int
    size: int
    kind: str  # "uint", "int" or "bytes"
    fmt: str  # struct format character(s), without byte order
    reserved: bool
    doc: str
    bits: Mapping[int, Named] | None
    mask: Mapping[int, Named] | None
    values: Mapping[int, Named] | None
    lo: int | None
    hi: int | None

    def valid_mask(self, epoch: Epoch | None) -> int | None:
        """The valid-bit mask of a flags field in ``epoch`` (None: not a flags field)."""
        if self.bits is None and self.mask is None:
            return None
        m = 0
        for bit, named in (self.bits or {}).items():
            if _in_epoch(named, epoch):
                m |= 1 << bit
        for value, named in (self.mask or {}).items():
            if _in_epoch(named, epoch):
                m |= value
        return m

    def allowed(self, epoch: Epoch | None) -> frozenset[int] | None:
        """The allowed values in ``epoch`` (None: not an enumerated field)."""
        if self.values is None:
            return None
        return frozenset(v for v, n in self.values.items() if _in_epoch(n, epoch))

    def describe_bounds(self, epoch: Epoch | None) -> str:
        parts = []
        allowed = self.allowed(epoch)
        if allowed is not None:
            parts.append("one of " + ", ".join(str(v) for v in sorted(allowed)))
        if self.lo is not None and self.hi is not None:
            parts.append(f"{self.lo}..{self.hi}")
        elif self.lo is not None:
            parts.append(f">= {self.lo}")
        elif self.hi is not None:
            parts.append(f"<= {self.hi}")
        return " and ".join(parts)


def _role(name: str) -> str:
    """``name`` without a trailing ``@4.13`` / ``(4.13)``: the role a dated layout plays."""
    for opening, closing in (("@", ""), ("(", ")")):
        head, sep, tail = name.rpartition(opening)
        text = tail.removesuffix(closing) if tail.endswith(closing) else ""
        major, dot, minor = text.partition(".")
        if sep and dot and major.isdigit() and minor.isdigit():
            return head
    return name


def _field_shape(name: str, subcon: Any) -> tuple[str, str, int, str | None]:
    """(kind, struct fmt, size, byte order or None) of a supported construct subcon."""
    if isinstance(subcon, cs.FormatField):
        code = subcon.fmtstr
        order, ch = code[0], code[1:]
        if order not in "<>":
            raise TypeError(f"field {name}: use an explicit byte order (Int32ul / Int32ub)")
        signed = ch.islower()
        size = struct.calcsize("<" + ch)
        return ("int" if signed else "uint", ch, size, order if size > 1 else None)
    if isinstance(subcon, cs.Bytes) and isinstance(subcon.length, int):
        return ("bytes", f"{subcon.length}s", subcon.length, None)
    raise TypeError(f"field {name}: unsupported construct type {subcon!r}")


def _declared_fields(cls: type[Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, fld metadata) of every field of ``cls`` in byte order.

    Byte order = annotation order, base classes first; reserved placeholders
    (ClassVar Rsvd) interleave with dataclass fields.
    """
    dc_fields = {f.name: f for f in dataclasses.fields(cls)}
    order: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for klass in reversed(cls.__mro__):
        for fname in vars(klass).get("__annotations__", {}):
            if fname in seen:
                continue
            attr = vars(klass).get(fname)
            if isinstance(attr, Rsvd):
                meta: dict[str, Any] = {
                    "subcon": attr.subcon,
                    "doc": "",
                    "reserved": True,
                    "bits": None,
                    "mask": None,
                    "values": None,
                    "lo": None,
                    "hi": None,
                }
            elif fname in dc_fields:
                meta_or_none = dc_fields[fname].metadata.get(_META)
                if meta_or_none is None:
                    raise TypeError(f"{cls.__name__}.{fname} is not declared with fld()")
                meta = dict(meta_or_none)
            else:
                continue
            seen.add(fname)
            order.append((fname, meta))
    return order


def _converters(
    cls: type[Any], fields: Sequence[FieldInfo]
) -> tuple[Callable[[tuple[Any, ...]], Any], Callable[[Any], tuple[Any, ...]]]:
    """``make(raw tuple) -> value`` and ``as_tuple(value) -> raw tuple`` of a layout.

    Plain closures: exec-generated ones measured within noise for ``make``
    (0.5-6.5 µs either way, dominated by the frozen dataclass's __init__),
    and ``as_tuple`` only runs when encoding a fixed record. Reserved fields
    are not in the dataclass; they pack as 0.
    """
    init_names = {f.name for f in dataclasses.fields(cls) if f.init}
    pairs = tuple((fi.name, i) for i, fi in enumerate(fields) if fi.name in init_names)
    zeros = tuple(
        (i, bytes(fi.size) if fi.kind == "bytes" else 0)
        for i, fi in enumerate(fields)
        if fi.name not in init_names
    )
    get = operator.attrgetter(*(n for n, _ in pairs)) if pairs else None

    def make(t: tuple[Any, ...]) -> Any:
        return cls(**{n: t[i] for n, i in pairs})

    def as_tuple(v: Any) -> tuple[Any, ...]:
        got = get(v) if get is not None else ()
        out = list(got) if len(pairs) > 1 else [got] if pairs else []
        for i, zero in zeros:
            out.insert(i, zero)
        return tuple(out)

    return make, as_tuple


T = TypeVar("T", bound="Packed")


class Layout:
    """Everything derived from one :func:`packed` declaration."""

    def __init__(self, cls: type[Any], name: str) -> None:
        self.cls = cls
        self.name = name
        #: The epochs this declaration is used in (see :func:`packed`); the role
        #: it plays in its record whatever the epoch.
        self.since: Epoch | None = None
        self.until: Epoch | None = None
        self.role = _role(name)
        fields: list[FieldInfo] = []
        subcons: list[Any] = []
        offset = 0
        orders: set[str] = set()
        for fname, meta in _declared_fields(cls):
            kind, ch, size, byteorder = _field_shape(fname, meta["subcon"])
            if byteorder:
                orders.add(byteorder)
            if kind != "bytes" and offset % size:
                raise TypeError(f"{cls.__name__}.{fname} is not aligned to its size")
            fields.append(
                FieldInfo(
                    name=fname,
                    offset=offset,
                    size=size,
                    kind=kind,
                    fmt=ch,
                    reserved=meta["reserved"],
                    doc=meta["doc"],
                    bits=meta["bits"],
                    mask=meta["mask"],
                    values=meta["values"],
                    lo=meta["lo"],
                    hi=meta["hi"],
                )
            )
            subcons.append(fname / meta["subcon"])
            offset += size
        self.fields: tuple[FieldInfo, ...] = tuple(fields)
        self.size = offset
        self.construct = cs.Struct(*subcons)
        if len(orders) > 1:
            raise TypeError(f"{cls.__name__} mixes little- and big-endian fields")
        #: ``"<"`` (every stream record) or ``">"`` (the big-endian libxc and
        #: libxl image headers, reference §1.2 and §2).
        self.byteorder = orders.pop() if orders else "<"
        self.struct = struct.Struct(self.byteorder + "".join(fi.fmt for fi in fields))
        assert self.struct.size == self.size, (cls.__name__, self.struct.size, self.size)
        self.names: tuple[str, ...] = tuple(fi.name for fi in fields)
        self._by_name = {fi.name: fi for fi in fields}
        self._checkers: dict[Epoch | None, Callable[[tuple[Any, ...]], Violation | None]] = {}
        self._oks: dict[tuple[str, Epoch | None], Any] = {}
        self._rulesets: dict[Epoch | None, RuleSet] = {}
        self._tinies: dict[Epoch | None, Callable[[np.ndarray], Violation | None]] = {}
        #: Record-level rules declared in the class's ``RULES`` (see :class:`Rule`).
        self.record_rules: tuple[Rule, ...] = tuple(getattr(cls, "RULES", ()))
        self._make, self._as_tuple = _converters(cls, self.fields)

    @functools.cached_property
    def dtype(self) -> np.dtype[Any]:
        """The numpy structured dtype of one entry (made on first use)."""
        import numpy as np

        return np.dtype(
            {
                "names": list(self.names),
                "formats": [
                    f"V{fi.size}"
                    if fi.kind == "bytes"
                    else f"{self.byteorder}{fi.kind[0]}{fi.size}"
                    for fi in self.fields
                ],
                "offsets": [fi.offset for fi in self.fields],
                "itemsize": self.size,
            }
        )

    # -- single records -------------------------------------------------
    def field(self, name: str) -> FieldInfo:
        """The :class:`FieldInfo` called ``name``."""
        return self._by_name[name]

    def unpack(self, buf: Any, offset: int = 0) -> Any:
        """Decode one value at ``offset`` of ``buf`` (no rule checks)."""
        return self._make(self.struct.unpack_from(buf, offset))

    def unpack_tuple(self, buf: Any, offset: int = 0) -> tuple[Any, ...]:
        """Decode the raw field values at ``offset`` as a tuple."""
        return self.struct.unpack_from(buf, offset)

    def from_tuple(self, values: tuple[Any, ...]) -> Any:
        """Build the dataclass from raw field values in declaration order."""
        return self._make(values)

    def as_tuple(self, value: Any) -> tuple[Any, ...]:
        """The raw field values of ``value`` in declaration order."""
        return self._as_tuple(value)

    def pack(self, value: Any) -> bytes:
        """Encode ``value``; :class:`~xenlu.core.errors.EncodeError` if a field does not fit."""
        try:
            return self.struct.pack(*self.as_tuple(value))
        except struct.error as exc:
            from xenlu.core.errors import EncodeError

            raise EncodeError(f"{self.name}: {self._pack_problem(value)} ({exc})") from None

    def _pack_problem(self, value: Any) -> str:
        for fi, v in zip(self.fields, self.as_tuple(value), strict=True):
            try:
                struct.pack(self.byteorder + fi.fmt, v)
            except struct.error:
                return f"field {fi.name} = {v!r} does not fit {fi.kind}{fi.size * 8}"
        return "a field does not fit"

    # -- rules ------------------------------------------------------------
    def rules(self, epoch: Epoch | None) -> RuleSet:
        """The field and record rules of ``epoch``, compiled once (see :mod:`xenlu.core.rules`)."""
        try:
            return self._rulesets[epoch]
        except KeyError:
            rs = self._rulesets[epoch] = RuleSet(
                self.fields, self.record_rules, epoch, self.size, self.byteorder
            )
            return rs

    def _compile(
        self, key: tuple[str, Epoch | None], head: str, expr: str, records: bool = True
    ) -> Any:
        """A function generated from the rules of one epoch, cached.

        ``head`` is the ``def`` line and any statements before the verdict;
        ``expr`` the verdict over the rules' expression ``ok``. Generated code
        stays where a benchmark pays for it: one inlined expression over the
        raw tuple is ~3x faster than a loop over rule objects (the
        allocation-free acceptors of the libxc and LU fast paths). With
        ``records``, the layout's per-entry record rules follow the field rules.
        """
        try:
            return self._oks[key]
        except KeyError:
            pass
        rs = self.rules(key[1])
        body, ns = rs.source()
        ns["unpack"] = self.struct.unpack_from
        ns["records_ok"] = rs.records_hold
        if records and rs.records:
            body = f"({body}) and records_ok(t)"
        exec(head + "    return " + expr.replace("ok", f"({body})", 1) + "\n", ns)
        fn = self._oks[key] = ns["fn"]
        return fn

    def checker(self, epoch: Epoch | None) -> Callable[[tuple[Any, ...]], Violation | None]:
        """A function that returns the first rule a raw tuple breaks, or None."""
        try:
            return self._checkers[epoch]
        except KeyError:
            pass
        ok = self._compile(("one", epoch), "def fn(t):\n", "ok")
        locate = self.rules(epoch).locate_tuple

        def check(t: tuple[Any, ...]) -> Violation | None:
            return None if ok(t) else locate(t)

        self._checkers[epoch] = check
        return check

    def check(self, value: Any, epoch: Epoch | None = None) -> Violation | None:
        """The first structural rule ``value`` breaks in ``epoch``, or None."""
        return self.checker(epoch)(self.as_tuple(value))

    def acceptor(self, epoch: Epoch | None) -> Callable[[Any, int, int], bool]:
        """A generated ``acc(buf, off, n)``: True when the ``n`` bytes at ``off``
        are exactly one value of this layout that breaks no rule of ``epoch``.

        The fast "is it clean?" verdict of the structural paths (one call per
        record: length test, unpack and every rule); :meth:`checker` says
        which rule broke.
        """
        head = f"def fn(buf, off, n):\n    if n != {self.size}:\n        return False\n"
        fn: Callable[[Any, int, int], bool] = self._compile(
            ("buf", epoch), head + "    t = unpack(buf, off)\n", "ok"
        )
        return fn

    def _tuple_ok(self, epoch: Epoch | None) -> Callable[[Any], bool]:
        """A generated predicate: True when no tuple of an iterable breaks a field rule."""
        fn: Callable[[Any], bool] = self._compile(
            ("all", epoch), "def fn(ts):\n", "all(ok for t in ts)", records=False
        )
        return fn

    # -- bulk arrays ----------------------------------------------------
    def array(self, buf: Any, offset: int, count: int) -> np.ndarray:
        """A zero-copy read-only structured array of ``count`` entries at ``offset``."""
        import numpy as np

        arr = np.frombuffer(buf, dtype=self.dtype, count=count, offset=offset)
        if arr.flags.writeable:
            arr.flags.writeable = False
        return arr

    def empty(self, count: int = 0) -> np.ndarray:
        """A zero-filled array of ``count`` entries (reserved fields already zero)."""
        import numpy as np

        return np.zeros(count, dtype=self.dtype)

    def _tiny(self, epoch: Epoch | None) -> Callable[[np.ndarray], Violation | None]:
        """:meth:`check_array` of a few entries: struct tuples, no numpy call."""
        try:
            return self._tinies[epoch]
        except KeyError:
            pass
        rs = self.rules(epoch)
        fields_ok = self._tuple_ok(epoch)
        it = self.struct.iter_unpack
        size = self.size

        def locate(rows: list[tuple[Any, ...]]) -> Violation | None:
            for i, t in enumerate(rows):
                v = rs.locate_fields_tuple(t, i, i * size)
                if v is not None:
                    return v
            return None if rs.records_hold_rows(rows) else rs.records_ok_rows(rows)

        def tiny(arr: np.ndarray) -> Violation | None:
            if fields_ok(it(arr.tobytes())):
                return None
            return locate(list(it(arr.tobytes())))

        def tiny_records(arr: np.ndarray) -> Violation | None:
            rows = list(it(arr.tobytes()))
            if fields_ok(rows) and rs.records_hold_rows(rows):
                return None
            return locate(rows)

        fn = self._tinies[epoch] = tiny_records if rs.records else tiny
        return fn

    def check_array(
        self,
        arr: np.ndarray,
        epoch: Epoch | None = None,
        chunk: int = 1 << 20,
        on_step: Callable[[int, int], object] | None = None,
    ) -> Violation | None:
        """The first rule broken by any entry, vectorised, or None.

        Field rules first (the first bad entry, then the first rule of that
        entry), then each record rule in declaration order (its first bad
        entry); the same :class:`Violation` as :meth:`checker` gives for that
        entry alone. Works in chunks so the temporaries stay small on
        host-sized arrays. ``on_step``: see :meth:`RuleSet.clean` (steps of
        the fast pass only; arrays of at most ``TINY`` entries have none).
        """
        n = len(arr)
        if n <= TINY:
            return self._tiny(epoch)(arr) if n else None
        rs = self.rules(epoch)
        # Fast verdict first: is every entry clean? Only when it is not does
        # the exact (slower) search run, so errors are unchanged.
        folded = bool(arr.flags.c_contiguous and arr.dtype == self.dtype)
        tests = rs.clean_tests(self.dtype, folded)
        if rs.clean(arr, tests, on_step):  # one fused pass over the entries
            return None
        for start in range(0, n, chunk):
            v = rs.locate_fields(arr[start : start + chunk])
            if v is not None:
                entry = start + v.entry
                off = entry * self.size + v.offset
                return Violation(entry, v.field, off, v.message, v.expected, v.got)
        if rs.records and not rs.records_clean(arr):
            return rs.locate_records(arr)
        return None

    def pack_array(self, arr: np.ndarray) -> memoryview:
        """The bytes of a structured array in this layout, without a copy if possible."""
        import numpy as np

        a = np.ascontiguousarray(arr, dtype=self.dtype)
        return a.data.cast("B")

    # -- description ----------------------------------------------------
    def describe(self, epoch: Epoch | None = None) -> dict[str, Any]:
        """A JSON-ready description of the layout as seen in ``epoch``."""
        out_fields = []
        for fi in self.fields:
            d: dict[str, Any] = {
                "name": fi.name,
                "offset": fi.offset,
                "size": fi.size,
                "type": ("u" if fi.kind == "uint" else "i" if fi.kind == "int" else "bytes")
                + (str(fi.size * 8) if fi.kind != "bytes" else ""),
            }
            if fi.reserved:
                d["reserved"] = True
            if fi.doc:
                d["doc"] = fi.doc
            m = fi.valid_mask(epoch)
            if m is not None:
                d["valid_mask"] = f"{m:#x}"
                d["bits"] = {
                    str(b): _name(n)
                    for b, n in sorted((fi.bits or {}).items())
                    if _in_epoch(n, epoch)
                }
                if fi.mask:
                    d["masks"] = {
                        f"{v:#x}": _name(n)
                        for v, n in sorted(fi.mask.items())
                        if _in_epoch(n, epoch)
                    }
            allowed = fi.allowed(epoch)
            if allowed is not None and fi.values is not None:
                d["values"] = {
                    str(v): _name(n) for v, n in sorted(fi.values.items()) if v in allowed
                }
            if fi.lo is not None:
                d["min"] = fi.lo
            if fi.hi is not None:
                d["max"] = fi.hi
            out_fields.append(d)
        out: dict[str, Any] = {"name": self.name, "size": self.size, "fields": out_fields}
        records = self.rules(epoch).records
        if records:  # the record-level rules, as their errors name them
            out["rules"] = [r.describe() for r in records]
        if self.byteorder == ">":
            out["byteorder"] = "big"
        return out

    def __repr__(self) -> str:
        return f"<Layout {self.name} {self.size} bytes>"


class Packed:
    """Base of every :func:`packed` declaration."""

    __slots__ = ()
    LAYOUT: ClassVar[Layout]
    #: Record-level rules of the layout (:class:`~xenlu.core.rules.Rule`), declared beside it.
    RULES: ClassVar[tuple[Rule, ...]] = ()

    def pack(self) -> bytes:
        """Encode this value in its layout."""
        return self.LAYOUT.pack(self)

    @classmethod
    def unpack(cls: type[T], buf: Any, offset: int = 0) -> T:
        """Decode a value of this layout at ``offset`` of ``buf`` (no rule checks)."""
        value: T = cls.LAYOUT.unpack(buf, offset)
        return value


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(fld,))
def packed(
    cls: type[T] | None = None,
    *,
    name: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Any:
    """Make ``cls`` a frozen keyword-only dataclass and derive its :class:`Layout`.

    ``since``/``until`` date a layout that one record uses in some epochs
    only (from ``since``, before ``until``); :func:`by_epoch` and
    :func:`layout_for` choose among such declarations. The layout's
    :attr:`~Layout.role` is its name without an epoch suffix
    (``"LU_DOMAIN@4.13"`` plays the role ``"LU_DOMAIN"``).
    """

    def wrap(c: type[T]) -> type[T]:
        dc: type[T] = dataclass(frozen=True, kw_only=True, slots=True)(c)
        lay = dc.LAYOUT = Layout(dc, name or c.__name__)
        lay.since = parse_epoch(since) if since else None
        lay.until = parse_epoch(until) if until else None
        return dc

    if cls is None:
        return wrap
    return wrap(cls)


def dated(cls: type[Any], epoch: Epoch) -> bool:
    """True when the declaration ``cls`` is the one its record uses in ``epoch``."""
    lay: Layout = cls.LAYOUT
    return (lay.since is None or epoch >= lay.since) and (lay.until is None or epoch < lay.until)


def layout_for(classes: Iterable[type[Any]], epoch: Epoch) -> type[Any] | None:
    """The one declaration of ``classes`` dated for ``epoch`` (None: none is).

    >>> from xenlu.lu.records import EvtchnEntry411, EvtchnEntry415
    >>> layout_for((EvtchnEntry411, EvtchnEntry415), (4, 17)).__name__
    'EvtchnEntry415'
    """
    found = [c for c in classes if dated(c, epoch)]
    if len(found) > 1:
        raise TypeError(f"{[c.LAYOUT.name for c in found]} are all dated for {epoch}")
    return found[0] if found else None


def by_epoch(*classes: type[Any]) -> dict[Epoch, type[Any]]:
    """Epoch → the declaration of ``classes`` dated for it, for every epoch.

    >>> from xenlu.lu.records import EvtchnEntry411, EvtchnEntry415
    >>> by_epoch(EvtchnEntry411, EvtchnEntry415)[(4, 14)].__name__
    'EvtchnEntry411'
    """
    from xenlu.core.epochs import EPOCHS

    out: dict[Epoch, type[Any]] = {}
    for e in EPOCHS:
        cls = layout_for(classes, e)
        if cls is None:
            raise TypeError(f"no declaration of {[c.LAYOUT.name for c in classes]} for {e}")
        out[e] = cls
    return out


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(fld,))
def packed_base(cls: type[T]) -> type[T]:
    """A dataclass holding fields shared by several :func:`packed` layouts."""
    return dataclass(frozen=True, kw_only=True, slots=True)(cls)
