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
  values and ranges) for one entry (:meth:`Layout.check`) and vectorised over
  a whole array (:meth:`Layout.check_array`);
* a JSON description (:meth:`Layout.describe`) for ``schemas/``.

Reserved fields (``rsvd: ClassVar[Rsvd] = reserved(Int32ul)``) take part in
the byte layout but not in the dataclass: they are written as zero and must be
zero on read (LU spec "Conventions"; libxc spec: written as zero).

Example, decode and encode::

    >>> v = LuVersion.LAYOUT.unpack(b"\\x04\\0\\0\\0\\x0b\\0\\0\\0")
    >>> v.xen_minor
    11
    >>> LuVersion.LAYOUT.pack(v)
    b'\\x04\\x00\\x00\\x00\\x0b\\x00\\x00\\x00'
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, dataclass_transform

import construct as cs

if TYPE_CHECKING:
    import numpy as np
# numpy is imported where an array is made or checked, not here: paths that
# never touch a bulk array (the libxc verify command) skip its ~45 ms import.

from xenlu import names
from xenlu.epochs import Epoch, fmt_epoch, parse_epoch

__all__ = [
    "FieldInfo",
    "Layout",
    "Packed",
    "Rsvd",
    "Violation",
    "fld",
    "packed",
    "packed_base",
    "reserved",
]

# A bit or value name, optionally limited to epochs (see xenlu.names).
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
    declared once, :mod:`xenlu.names`) or a mapping.
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


def _span(named: Named) -> dict[str, str]:
    if isinstance(named, str):
        return {}
    _, since, until = named
    out = {}
    if since:
        out["since"] = since
    if until:
        out["until"] = until
    return out


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


@dataclass(frozen=True)
class Violation:
    """A structural rule broken by one entry: where and what."""

    entry: int  # index within the array (0 for a single record)
    field: str
    offset: int  # byte offset of the field within the checked buffer
    message: str
    expected: object
    got: object


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


T = TypeVar("T", bound="Packed")


class Layout:
    """Everything derived from one :func:`packed` declaration."""

    def __init__(self, cls: type[Any], name: str) -> None:
        self.cls = cls
        self.name = name
        fields: list[FieldInfo] = []
        subcons: list[Any] = []
        offset = 0
        dc_fields = {f.name: f for f in dataclasses.fields(cls)}
        order: list[tuple[str, dict[str, Any]]] = []
        seen: set[str] = set()
        # Byte order = annotation order, base classes first; reserved
        # placeholders (ClassVar Rsvd) interleave with dataclass fields.
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
        orders: set[str] = set()
        for fname, meta in order:
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
        self._oks: dict[tuple[str, Epoch | None], Callable[[Any], bool]] = {}
        self._tests: dict[Epoch | None, list[tuple[str, str, Any]]] = {}
        self._folded: dict[Epoch | None, list[tuple[str, str, Any]]] = {}
        # Generated converters between the raw tuple and the keyword-only
        # dataclass: hot paths call them once per small record, never per
        # bulk entry. Reserved fields are not in the dataclass; they pack as 0.
        init_names = {f.name for f in dataclasses.fields(cls) if f.init}
        args = ", ".join(f"{n}=t[{i}]" for i, n in enumerate(self.names) if n in init_names)
        items = ", ".join(
            repr(bytes(fi.size) if fi.kind == "bytes" else 0)
            if fi.reserved and fi.name not in init_names
            else f"v.{fi.name}"
            for fi in fields
        )
        ns: dict[str, Any] = {"cls": cls}
        exec(f"def make(t):\n    return cls({args})\n", ns)
        exec(f"def as_tuple(v):\n    return ({items},)\n", ns)
        self._make: Callable[[tuple[Any, ...]], Any] = ns["make"]
        self._as_tuple: Callable[[Any], tuple[Any, ...]] = ns["as_tuple"]

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
        """Encode ``value``; :class:`~xenlu.errors.EncodeError` if a field does not fit."""
        try:
            return self.struct.pack(*self.as_tuple(value))
        except struct.error as exc:
            from xenlu.errors import EncodeError

            raise EncodeError(f"{self.name}: {self._pack_problem(value)} ({exc})") from None

    def _pack_problem(self, value: Any) -> str:
        for fi, v in zip(self.fields, self.as_tuple(value), strict=True):
            try:
                struct.pack(self.byteorder + fi.fmt, v)
            except struct.error:
                return f"field {fi.name} = {v!r} does not fit {fi.kind}{fi.size * 8}"
        return "a field does not fit"

    def checker(self, epoch: Epoch | None) -> Callable[[tuple[Any, ...]], Violation | None]:
        """A function that returns the first rule a raw tuple breaks, or None."""
        try:
            return self._checkers[epoch]
        except KeyError:
            pass
        rules: list[tuple[int, FieldInfo, str, Any]] = []
        for i, fi in enumerate(self.fields):
            if fi.reserved:
                zero: Any = bytes(fi.size) if fi.kind == "bytes" else 0
                rules.append((i, fi, "zero", zero))
                continue
            m = fi.valid_mask(epoch)
            if m is not None:
                rules.append((i, fi, "mask", m))
            allowed = fi.allowed(epoch)
            if allowed is not None:
                rules.append((i, fi, "values", allowed))
            if fi.lo is not None:
                rules.append((i, fi, "lo", fi.lo))
            if fi.hi is not None:
                rules.append((i, fi, "hi", fi.hi))
        label = "" if epoch is None else f" in epoch {fmt_epoch(epoch)}"

        def check(t: tuple[Any, ...]) -> Violation | None:
            for i, fi, rule, p in rules:
                v = t[i]
                if rule == "zero":
                    if v != p:
                        return Violation(0, fi.name, fi.offset, "reserved field not zero", 0, v)
                elif rule == "mask":
                    if v & ~p:
                        return Violation(
                            0,
                            fi.name,
                            fi.offset,
                            f"flag bits not valid{label}",
                            f"only bits {p:#x}",
                            v,
                        )
                elif rule == "values":
                    if v not in p:
                        return Violation(
                            0,
                            fi.name,
                            fi.offset,
                            f"value not valid{label}",
                            fi.describe_bounds(epoch),
                            v,
                        )
                elif rule == "lo":
                    if v < p:
                        return Violation(0, fi.name, fi.offset, "value too small", f">= {p}", v)
                elif v > p:
                    return Violation(0, fi.name, fi.offset, "value too large", f"<= {p}", v)
            return None

        self._checkers[epoch] = check
        return check

    def check(self, value: Any, epoch: Epoch | None = None) -> Violation | None:
        """The first structural rule ``value`` breaks in ``epoch``, or None."""
        return self.checker(epoch)(self.as_tuple(value))

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

    def _rules_source(self, epoch: Epoch | None) -> tuple[str, dict[str, Any]]:
        """Every rule of ``epoch`` as one Python expression over a raw tuple ``t``."""
        conds: list[str] = []
        ns: dict[str, Any] = {}
        for i, fi in enumerate(self.fields):
            if fi.reserved:
                ns[f"z{i}"] = bytes(fi.size) if fi.kind == "bytes" else 0
                conds.append(f"t[{i}] == z{i}")
                continue
            m = fi.valid_mask(epoch)
            if m is not None:
                conds.append(f"not t[{i}] & {~m & ((1 << 8 * fi.size) - 1)}")
            allowed = fi.allowed(epoch)
            if allowed is not None:
                ns[f"a{i}"] = frozenset(allowed)
                conds.append(f"t[{i}] in a{i}")
            if fi.lo is not None:
                conds.append(f"t[{i}] >= {fi.lo}")
            if fi.hi is not None:
                conds.append(f"t[{i}] <= {fi.hi}")
        return " and ".join(conds) or "True", ns

    def acceptor(self, epoch: Epoch | None) -> Callable[[Any, int, int], bool]:
        """A generated ``acc(buf, off, n)``: True when the ``n`` bytes at ``off``
        are exactly one value of this layout that breaks no rule of ``epoch``.

        The fast "is it clean?" verdict of the structural paths (one call per
        record: length test, unpack and every rule); :meth:`checker` says
        which rule broke.
        """
        key = ("buf", epoch)
        try:
            return self._oks[key]  # type: ignore[return-value]
        except KeyError:
            pass
        body, ns = self._rules_source(epoch)
        ns["unpack"] = self.struct.unpack_from
        exec(
            f"def acc(buf, off, n):\n    if n != {self.size}:\n        return False\n"
            f"    t = unpack(buf, off)\n    return {body}\n",
            ns,
        )
        fn: Callable[[Any, int, int], bool] = ns["acc"]
        self._oks[key] = fn  # type: ignore[assignment]
        return fn

    def _tuple_ok(self, epoch: Epoch | None) -> Callable[[Any], bool]:
        """A generated predicate: True when no tuple of an iterable breaks a rule."""
        key = ("all", epoch)
        try:
            return self._oks[key]
        except KeyError:
            pass
        body, ns = self._rules_source(epoch)
        exec(f"def ok(ts):\n    return all({body} for t in ts)\n", ns)
        fn: Callable[[Any], bool] = ns["ok"]
        self._oks[key] = fn
        return fn

    def _clean_tests(self, epoch: Epoch | None) -> list[tuple[str, str, Any]]:
        """Vectorised "any entry bad?" tests, one per rule, constants precomputed.

        Value sets become range compares when contiguous and 256/64 Ki-entry
        look-up tables otherwise (``np.isin`` costs ~10x more per call).
        """
        import numpy as np

        try:
            return self._tests[epoch]
        except KeyError:
            pass
        tests: list[tuple[str, str, Any]] = []
        for fi in self.fields:
            if fi.reserved:
                tests.append(
                    ("rbytes", fi.name, fi.size) if fi.kind == "bytes" else ("ne", fi.name, 0)
                )
                continue
            dt = self.dtype[fi.name]
            m = fi.valid_mask(epoch)
            if m is not None:
                tests.append(("and", fi.name, np.array(~m & ((1 << 8 * fi.size) - 1), dtype=dt)))
            allowed = fi.allowed(epoch)
            if allowed is not None:
                lo, hi = min(allowed), max(allowed)
                if len(allowed) == 1:
                    tests.append(("ne", fi.name, lo))
                elif len(allowed) == hi - lo + 1:
                    if lo > 0 or fi.kind == "int":
                        tests.append(("lt", fi.name, lo))
                    tests.append(("gt", fi.name, hi))
                elif lo >= 0 and hi < (1 << 16):
                    lut = np.ones(hi + 1, dtype=bool)
                    lut[sorted(allowed)] = False
                    tests.append(("lut", fi.name, (lut, hi, fi.kind == "int")))
                else:
                    tests.append(("isin", fi.name, np.fromiter(allowed, dtype=np.int64)))
            if fi.lo is not None:
                tests.append(("lt", fi.name, fi.lo))
            if fi.hi is not None:
                tests.append(("gt", fi.name, fi.hi))
        self._tests[epoch] = tests
        self._folded[epoch] = self._fold_words(tests)
        return tests

    def _fold_words(self, tests: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
        """``tests`` with every bit-pattern test of one 8-byte word merged into one.

        Reserved fields, invalid flag bits and upper bounds of the form
        ``2**k - 1`` are all "these bits are zero in every entry", which one
        OR-reduction of the word column answers (a strided reduction costs
        about as much as one compare, so a P2M entry's rsvd, p2m_type and
        access tests become one pass instead of three). Other upper bounds
        ride along as a sufficient condition (every value <= the OR of all
        values), with their own compare only when the OR exceeds them.
        Little-endian layouts of whole words only; the unfolded tests stay in
        use for other arrays (:meth:`check_array` picks per array).
        """
        if self.byteorder != "<" or self.size % 8:
            return tests
        by_name = {fi.name: fi for fi in self.fields}
        forbid: dict[int, int] = {}
        post: dict[int, list[tuple[int, int, int, str]]] = {}
        rest: list[tuple[str, str, Any]] = []
        for test in tests:
            kind, name, p = test
            fi = by_name[name]
            word, shift = divmod(fi.offset, 8)
            if fi.kind != "uint" or (fi.offset + fi.size - 1) // 8 != word:
                rest.append(test)
                continue
            shift *= 8
            full = (1 << 8 * fi.size) - 1
            if kind == "ne" and p == 0:
                forbid[word] = forbid.get(word, 0) | full << shift
            elif kind == "and":
                forbid[word] = forbid.get(word, 0) | int(p) << shift
            elif kind == "gt" and not (p + 1) & p:
                forbid[word] = forbid.get(word, 0) | (full & ~p) << shift
            elif kind == "gt":
                post.setdefault(word, []).append((shift, full, int(p), name))
                forbid.setdefault(word, 0)
            else:
                rest.append(test)
        words = [
            ("word", "", (w, self.size // 8, forbid[w], tuple(post.get(w, ()))))
            for w in sorted(forbid)
        ]
        return words + rest

    def check_array(
        self, arr: np.ndarray, epoch: Epoch | None = None, chunk: int = 1 << 20
    ) -> Violation | None:
        """The first structural rule broken by any entry, vectorised, or None.

        Works in chunks so the temporaries stay small on host-sized arrays.
        """
        n = len(arr)
        # Fast verdict first: is every entry clean? Only when it is not does
        # the exact (slower) search below run, so errors are unchanged.
        if n <= _TINY:
            if n == 0 or self._tuple_ok(epoch)(self.struct.iter_unpack(arr.tobytes())):
                return None
        else:
            tests = self._clean_tests(epoch)
            if arr.flags.c_contiguous and arr.dtype == self.dtype:
                tests = self._folded[epoch]
            step = _CLEAN_CHUNK
            if not any(_dirty(arr[s : s + step], tests) for s in range(0, n, step)):
                return None
        for start in range(0, n, chunk):
            part = arr[start : start + chunk]
            v = self._check_chunk(part, epoch)
            if v is not None:
                entry = start + v.entry
                return Violation(
                    entry,
                    v.field,
                    entry * self.size + v.offset,
                    v.message,
                    v.expected,
                    v.got,
                )
        return None

    def _check_chunk(self, arr: np.ndarray, epoch: Epoch | None) -> Violation | None:
        import numpy as np

        first: tuple[int, Violation] | None = None
        label = "" if epoch is None else f" in epoch {fmt_epoch(epoch)}"
        for fi in self.fields:
            col = arr[fi.name]
            bad: Any = None
            msg, expected = "", ""
            if fi.reserved:
                if fi.kind == "bytes":
                    raw = np.ascontiguousarray(col).view(np.uint8).reshape(len(arr), fi.size)
                    bad = raw.any(axis=1)
                else:
                    bad = col != 0
                msg, expected = "reserved field not zero", "0"
            else:
                m = fi.valid_mask(epoch)
                allowed = fi.allowed(epoch)
                conds = []
                if m is not None:
                    conds.append(((col & ~np.array(m, dtype=col.dtype)) != 0, f"only bits {m:#x}"))
                if allowed is not None:
                    conds.append(
                        (
                            ~np.isin(col, np.fromiter(allowed, dtype=np.int64)),
                            fi.describe_bounds(epoch),
                        )
                    )
                if fi.lo is not None:
                    conds.append((col < fi.lo, f">= {fi.lo}"))
                if fi.hi is not None:
                    conds.append((col > fi.hi, f"<= {fi.hi}"))
                for cond, exp in conds:
                    if cond.any():
                        idx = int(np.argmax(cond))
                        if first is None or idx < first[0]:
                            got = int(col[idx])
                            kind = (
                                "flag bits not valid"
                                if exp.startswith("only bits")
                                else ("value not valid")
                            )
                            first = (
                                idx,
                                Violation(idx, fi.name, fi.offset, kind + label, exp, got),
                            )
                continue
            if bad is not None and bad.any():
                idx = int(np.argmax(bad))
                if first is None or idx < first[0]:
                    got_v: object = (
                        bytes(col[idx].tobytes()) if fi.kind == "bytes" else int(col[idx])
                    )
                    first = (idx, Violation(idx, fi.name, fi.offset, msg, expected, got_v))
        return None if first is None else first[1]

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
        if self.byteorder == ">":
            out["byteorder"] = "big"
        return out

    def __repr__(self) -> str:
        return f"<Layout {self.name} {self.size} bytes>"


#: Arrays of at most this many entries are checked entry by entry (struct
#: tuples and a generated predicate): numpy's per-call overhead (~1-2 µs per
#: operation) dominates below that.
_TINY = 8
#: Entries per vectorised clean test: the temporaries stay in the L2 cache.
_CLEAN_CHUNK = 1 << 16


def _dirty(part: np.ndarray, tests: list[tuple[str, str, Any]]) -> bool:
    """True when some entry of ``part`` breaks one of ``tests``."""
    import numpy as np

    for kind, name, p in tests:
        if kind == "word":
            w, nwords, forbid, post = p
            col = part.view(np.uint64).reshape(len(part), nwords)[:, w]
            o = int(np.bitwise_or.reduce(col))
            if o & forbid:
                return True
            for shift, full, hi, fname in post:
                if (o >> shift) & full > hi and (part[fname] > hi).any():
                    return True
            continue
        col = part[name]
        if kind == "ne":
            bad = col != p
        elif kind == "and":
            bad = (col & p) != 0
        elif kind == "lt":  # a reduction makes no temporary array
            if col.min() < p:
                return True
            continue
        elif kind == "gt":
            if col.max() > p:
                return True
            continue
        elif kind == "lut":
            lut, hi, signed = p
            bad = (col > hi) | lut[np.clip(col, 0, hi)]
            if signed:
                bad |= col < 0
        elif kind == "rbytes":
            bad = np.ascontiguousarray(col).view(np.uint8).reshape(len(part), p).any(axis=1)
        else:
            bad = ~np.isin(col, p)
        if bad.any():
            return True
    return False


class Packed:
    """Base of every :func:`packed` declaration."""

    __slots__ = ()
    LAYOUT: ClassVar[Layout]

    def pack(self) -> bytes:
        """Encode this value in its layout."""
        return self.LAYOUT.pack(self)

    @classmethod
    def unpack(cls: type[T], buf: Any, offset: int = 0) -> T:
        """Decode a value of this layout at ``offset`` of ``buf`` (no rule checks)."""
        value: T = cls.LAYOUT.unpack(buf, offset)
        return value


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(fld,))
def packed(cls: type[T] | None = None, *, name: str | None = None) -> Any:
    """Make ``cls`` a frozen keyword-only dataclass and derive its :class:`Layout`."""

    def wrap(c: type[T]) -> type[T]:
        dc: type[T] = dataclass(frozen=True, kw_only=True, slots=True)(c)
        dc.LAYOUT = Layout(dc, name or c.__name__)
        return dc

    if cls is None:
        return wrap
    return wrap(cls)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(fld,))
def packed_base(cls: type[T]) -> type[T]:
    """A dataclass holding fields shared by several :func:`packed` layouts."""
    return dataclass(frozen=True, kw_only=True, slots=True)(cls)
