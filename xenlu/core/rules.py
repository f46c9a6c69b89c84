"""Rules as data: every structural rule of a layout, written once, compiled once.

A :class:`~xenlu.core.layout.Layout` has two kinds of rules:

* **field rules** (:class:`FieldRule`), made from the ``fld(...)`` metadata
  of one field for one epoch: reserved fields zero, valid flag bits,
  allowed values, ``lo``/``hi`` bounds;
* **record-level rules** (:class:`Rule`), declared beside the layout in its
  ``RULES`` class attribute: a verdict over several columns of one entry
  (or of an entry and the one before it, ``pairwise=True``), the field it
  names, its message and, for the hypothesis strategies, a ``repair``.

:class:`RuleSet` holds the rules of one (layout, epoch) and derives from
them every way a rule is evaluated, so the same input gets the same
:class:`Violation` (field, message, expected, got) on every path:

* :meth:`RuleSet.source`: one Python expression over a raw tuple, compiled
  into the allocation-free acceptors of the single-record fast paths;
* :meth:`RuleSet.locate_tuple`: the exact first rule a raw tuple breaks;
* :meth:`RuleSet.clean_tests`: the vectorised "is every entry clean?"
  verdict for bulk arrays (bit-pattern tests of one 8-byte word folded into
  one OR-reduction, a derivation of the same rules);
* :meth:`RuleSet.clean`: that verdict and the record rules' screens in one
  fused pass over an array, step by step in the cache (screens as data,
  :class:`AtLeast` and :class:`OrIn`, share its reductions);
* :meth:`RuleSet.locate_fields`, :meth:`RuleSet.locate_records`: the first bad
  entry and rule of an array;
* :meth:`Rule.describe` and the ``fld`` metadata: the text schemas show.

A record-level rule's verdict is written once with the operators that
numpy arrays and Python ints share (``& | < > ==``) over a column
accessor, so the same lambda checks one decoded record and a whole array::

    >>> r = Rule("flags", "neither bit 0 nor bit 1", lambda c: c.flags & 3 == 0, "bit 0 or 1")
    >>> r.bad(Row(("flags",), (4,)))
    True
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xenlu.core.epochs import Epoch, fmt_epoch

if TYPE_CHECKING:
    import numpy as np

    from xenlu.core.layout import FieldInfo

__all__ = ["AtLeast", "FieldRule", "OrIn", "Pick", "Row", "Rule", "RuleSet", "Violation"]

_M64 = (1 << 64) - 1

#: ``pick(lo, hi)``: an integer in ``lo..hi`` chosen by the caller (a
#: hypothesis draw in :mod:`xenlu.testing.strategies`); repairs use nothing else.
Pick = Callable[[int, int], int]


@dataclass(frozen=True)
class Violation:
    """A structural rule broken by one entry: where and what."""

    entry: int  # index within the array (0 for a single record)
    field: str
    offset: int  # byte offset of the field within the checked buffer
    message: str
    expected: object
    got: object


# --- column accessors: one verdict lambda, two kinds of operands -------------------


class _RowOps:
    """The operations a verdict lambda may call on a :class:`Row`."""

    __slots__ = ()

    @staticmethod
    def isin(x: int, values: Iterable[int]) -> bool:
        return x in values

    @staticmethod
    def notin(x: int, values: Iterable[int]) -> bool:
        return x not in values

    @staticmethod
    def wrap64(x: int) -> int:
        """``x`` modulo 2**64 (numpy's u64 arithmetic wraps by itself)."""
        return x & _M64


@functools.cache
def row_type(names: tuple[str, ...]) -> Any:
    """The row class of a layout: a named tuple of its fields and ``prev``.

    Field access is a C-level tuple index, so a record rule costs about as
    much on one entry as a hand-written test did.
    """
    base = collections.namedtuple("Row", (*names, "prev"))  # type: ignore[misc]
    return type("Row", (base, _RowOps), {"__slots__": ()})


def Row(names: Sequence[str], values: Sequence[Any], prev: Any = None) -> Any:
    """The fields of one entry as Python ints (``c.flags``), for scalar verdicts.

    ``prev`` is the entry before, for pairwise rules.
    """
    return row_type(tuple(names))(*values, prev)


class Columns:
    """The fields of an array as numpy columns (``c.flags``), for vectorised verdicts."""

    __slots__ = ("_a", "prev")

    def __init__(self, arr: np.ndarray, prev: Columns | None = None):
        self._a = arr
        self.prev = prev

    def __getattr__(self, name: str) -> Any:
        try:
            return self._a[name]
        except (KeyError, ValueError):
            raise AttributeError(name) from None

    @staticmethod
    def isin(x: np.ndarray, values: Iterable[int]) -> np.ndarray:
        import numpy as np

        if x.dtype.kind == "u" and x.dtype.itemsize <= 2:  # a look-up table: ~5x np.isin
            lut: np.ndarray = _lut(tuple(values), x.dtype.itemsize)
            return lut[x]  # type: ignore[no-any-return]
        return np.isin(x, tuple(values))

    @staticmethod
    def notin(x: np.ndarray, values: Iterable[int]) -> np.ndarray:
        return ~Columns.isin(x, values)

    @staticmethod
    def wrap64(x: np.ndarray) -> np.ndarray:
        return x


@functools.lru_cache(maxsize=64)
def _lut(values: tuple[int, ...], itemsize: int) -> np.ndarray:
    """A bool table over every value of an unsigned ``itemsize``-byte column."""
    import numpy as np

    lut = np.zeros(1 << (8 * itemsize), dtype=bool)
    lut[[v for v in values if 0 <= v < len(lut)]] = True
    return lut


# --- screens as data: what one fused pass can answer for several rules at once ------


@dataclass(frozen=True)
class AtLeast:
    """A rule screen: the rule can break only on an entry whose ``field`` >= ``value``.

    Called on a chunk it is one max reduction; in :meth:`RuleSet.clean`
    every ``AtLeast`` screen of a layout is answered by one contiguous max
    over the chunk's 8-byte words (a field is at most the word it sits in,
    shifted down), and only when that max reaches the smallest threshold
    does each screen run by itself.

    >>> import numpy as np
    >>> a = np.array([(1,), (5,)], dtype=[("x", "<u8")])
    >>> AtLeast("x", 5)(a), AtLeast("x", 6)(a)
    (True, False)
    """

    field: str
    value: int

    def __call__(self, a: np.ndarray) -> bool:
        return bool(a[self.field].max() >= self.value)


@dataclass(frozen=True)
class OrIn:
    """A rule screen: the rule can break only when ``maybe[OR of field]`` is true.

    A value set can only hold values whose bits are all in the OR of a chunk
    (``maybe`` is indexed by every possible OR, 256 entries for a byte).
    In :meth:`RuleSet.clean` the OR of a field folded into a word test
    (:func:`fold_words`) comes from that test's reduction, so the screen
    costs no pass of its own.

    >>> import numpy as np
    >>> a = np.array([(1,), (2,)], dtype=[("t", "u1")])
    >>> OrIn("t", tuple(o == 3 for o in range(256)))(a)
    True
    """

    field: str
    maybe: tuple[bool, ...]

    def __call__(self, a: np.ndarray) -> bool:
        import numpy as np

        return self.maybe[int(np.bitwise_or.reduce(a[self.field]))]


# --- record-level rules ----------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A record-level rule over the columns of one entry, declared once.

    ``bad(c)`` is truthy where the rule is broken; ``c`` is a :class:`Row`
    or :class:`Columns` (``c.prev`` is the entry before, for ``pairwise``
    rules, which then apply to entries 1..n-1 of an array only).
    ``expected``/``got`` are constants or functions of ``c`` (default ``got``:
    the named field's value). ``repair(d, pick)`` returns the field dict
    ``d`` changed so that the rule holds (per entry); ``repair_all(rows,
    pick)`` does so for a whole list (pairwise rules). ``screen(chunk)``,
    when given, is a cheap test on an array chunk that is False only when
    no entry of the chunk can break the rule (a speed-up, never a verdict).
    ``when(c)`` limits the rule to layouts that have its fields.
    """

    field: str
    message: str
    bad: Callable[[Any], Any]
    expected: object = None
    got: Callable[[Any], object] | None = None
    repair: Callable[[dict[str, Any], Pick], dict[str, Any]] | None = None
    repair_all: Callable[[list[dict[str, Any]], Pick], list[dict[str, Any]]] | None = None
    screen: Callable[[np.ndarray], bool] | None = None
    pairwise: bool = False

    def describe(self) -> dict[str, object]:
        """The rule as schemas and docs show it: field, message, expected (when constant)."""
        d: dict[str, object] = {"field": self.field, "message": self.message}
        if self.expected is not None and not callable(self.expected):
            d["expected"] = self.expected
        if self.pairwise:
            d["between"] = "each entry and the one before it"
        return d

    def violation(self, c: Any, entry: int, offset: int) -> Violation:
        exp = self.expected(c) if callable(self.expected) else self.expected
        got = self.got(c) if self.got is not None else getattr(c, self.field)
        return Violation(entry, self.field, offset, self.message, exp, got)


# --- field rules -----------------------------------------------------------------


class FieldRule:
    """One rule of one field in one epoch, from the field's ``fld`` metadata.

    ``kind``: ``"zero"`` (reserved), ``"mask"`` (``param``: the invalid
    bits), ``"values"`` (``param``: the allowed set), ``"lo"``/``"hi"``.
    """

    __slots__ = ("expected", "field", "index", "kind", "message", "param")

    def __init__(
        self, index: int, fi: FieldInfo, kind: str, param: Any, message: str, expected: object
    ) -> None:
        self.index = index
        self.field = fi
        self.kind = kind
        self.param = param
        self.message = message
        self.expected = expected

    def ok(self, v: Any) -> bool:
        """The scalar verdict on one value (True: the rule holds)."""
        k, p = self.kind, self.param
        if k == "zero":
            return bool(v == p)
        if k == "mask":
            return not v & p
        if k == "values":
            return v in p
        return bool(v >= p) if k == "lo" else bool(v <= p)

    def source(self, ns: dict[str, Any]) -> str:
        """The verdict as a Python expression over ``t[index]`` (constants in ``ns``)."""
        i, k, p = self.index, self.kind, self.param
        if k == "zero":
            ns[f"z{i}"] = p
            return f"t[{i}] == z{i}"
        if k == "mask":
            return f"not t[{i}] & {p}"
        if k == "values":
            ns[f"a{i}"] = p
            return f"t[{i}] in a{i}"
        return f"t[{i}] {'>=' if k == 'lo' else '<='} {p}"

    def bad(self, col: np.ndarray) -> Any:
        """The vectorised verdict: True for each entry breaking the rule."""
        import numpy as np

        k, p, fi = self.kind, self.param, self.field
        if k == "zero":
            if fi.kind == "bytes":
                raw = np.ascontiguousarray(col).view(np.uint8).reshape(len(col), fi.size)
                return raw.any(axis=1)
            return col != 0
        if k == "mask":
            return (col & np.array(p, dtype=col.dtype)) != 0
        if k == "values":
            return ~np.isin(col, np.fromiter(p, dtype=np.int64))
        return (col < p) if k == "lo" else (col > p)

    def clean_tests(self, dt: np.dtype[Any]) -> list[tuple[str, str, Any]]:
        """The fast "any entry bad?" tests of this rule, constants precomputed.

        Value sets become range compares when contiguous and 256/64 Ki-entry
        look-up tables otherwise (``np.isin`` costs ~10x more per call).
        """
        import numpy as np

        k, p, fi = self.kind, self.param, self.field
        name = fi.name
        if k == "zero":
            return [("rbytes", name, fi.size) if fi.kind == "bytes" else ("ne", name, 0)]
        if k == "mask":
            return [("and", name, np.array(p, dtype=dt))]
        if k == "lo":
            return [("lt", name, p)]
        if k == "hi":
            return [("gt", name, p)]
        lo, hi = min(p), max(p)
        if len(p) == 1:
            return [("ne", name, lo)]
        if len(p) == hi - lo + 1:
            return ([("lt", name, lo)] if lo > 0 or fi.kind == "int" else []) + [("gt", name, hi)]
        if lo >= 0 and hi < (1 << 16):
            lut = np.ones(hi + 1, dtype=bool)
            lut[sorted(p)] = False
            return [("lut", name, (lut, hi, fi.kind == "int"))]
        return [("isin", name, np.fromiter(p, dtype=np.int64))]

    def violation(self, entry: int, got: Any, offset: int) -> Violation:
        return Violation(entry, self.field.name, offset, self.message, self.expected, got)


def field_rules(fields: Sequence[FieldInfo], epoch: Epoch | None) -> list[FieldRule]:
    """The field rules of ``fields`` in ``epoch``, in checking order."""
    label = "" if epoch is None else f" in epoch {fmt_epoch(epoch)}"
    out: list[FieldRule] = []
    for i, fi in enumerate(fields):
        if fi.reserved:
            zero = bytes(fi.size) if fi.kind == "bytes" else 0
            out.append(FieldRule(i, fi, "zero", zero, "reserved field not zero", 0))
            continue
        m = fi.valid_mask(epoch)
        if m is not None:
            bad_bits = ~m & ((1 << 8 * fi.size) - 1)
            msg = f"flag bits not valid{label}"
            out.append(FieldRule(i, fi, "mask", bad_bits, msg, f"only bits {m:#x}"))
        allowed = fi.allowed(epoch)
        if allowed is not None:
            msg = f"value not valid{label}"
            out.append(FieldRule(i, fi, "values", allowed, msg, fi.describe_bounds(epoch)))
        if fi.lo is not None:
            out.append(FieldRule(i, fi, "lo", fi.lo, "value too small", f">= {fi.lo}"))
        if fi.hi is not None:
            out.append(FieldRule(i, fi, "hi", fi.hi, "value too large", f"<= {fi.hi}"))
    return out


# --- the compiled rules of one (layout, epoch) --------------------------------------

#: Arrays of at most this many entries are checked entry by entry (struct
#: tuples and a generated predicate): numpy's per-call overhead (~1-2 µs per
#: operation) dominates below that.
TINY = 8
#: Entries per vectorised clean test: the temporaries stay in the L2 cache.
CLEAN_CHUNK = 1 << 16
#: Bytes of entries per step of the one fused clean pass (:meth:`RuleSet.clean`):
#: every field test and record-rule screen runs on a step while it is in the
#: L2 cache (2 MiB per core here), so each entry is read from memory once and
#: the later reductions cost ~0.3 ns an entry instead of ~4. Smaller steps pay
#: numpy's per-call overhead (~1-2 µs a reduction) more often.
CLEAN_BYTES = 1 << 18


class RuleSet:
    """Every rule of one layout in one epoch, and everything derived from them."""

    def __init__(
        self,
        fields: Sequence[FieldInfo],
        records: Sequence[Rule],
        epoch: Epoch | None,
        size: int,
        byteorder: str,
    ) -> None:
        self.fields = fields
        self.field_rules = field_rules(fields, epoch)
        names = {fi.name for fi in fields}
        self.records = tuple(r for r in records if r.field in names)
        self.names = tuple(fi.name for fi in fields)
        self._row = row_type(self.names)
        self._single = tuple(r.bad for r in self.records if not r.pairwise)
        self._pair = tuple(r.bad for r in self.records if r.pairwise)
        self._screened = tuple((r.screen, r.bad) for r in self.records if not r.pairwise)
        self._plan: Any = None
        self.size = size
        self.byteorder = byteorder
        self._offsets = {fi.name: fi.offset for fi in fields}
        self._tests: list[tuple[str, str, Any]] | None = None
        self._folded: list[tuple[str, str, Any]] | None = None

    # -- scalar ---------------------------------------------------------------
    def source(self) -> tuple[str, dict[str, Any]]:
        """The field rules as one Python expression over a raw tuple ``t``."""
        ns: dict[str, Any] = {}
        conds = [r.source(ns) for r in self.field_rules]
        return " and ".join(conds) or "True", ns

    def locate_fields_tuple(
        self, t: Sequence[Any], entry: int = 0, base: int = 0
    ) -> Violation | None:
        """The first field rule raw tuple ``t`` breaks (``base``: its byte offset)."""
        for r in self.field_rules:
            v = t[r.index]
            if not r.ok(v):
                return r.violation(entry, v, base + r.field.offset)
        return None

    def records_hold(self, t: Sequence[Any]) -> bool:
        """True when raw tuple ``t`` breaks no per-entry record rule."""
        row = self._row(*t, None)
        return not any(bad(row) for bad in self._single)

    def records_hold_rows(self, rows: Iterable[Sequence[Any]]) -> bool:
        """The verdict of every record rule on ``rows`` (raw tuples), nothing located."""
        new, cls, single, pair = tuple.__new__, self._row, self._single, self._pair
        prev = None
        for t in rows:
            row = new(cls, (*t, prev))  # the named tuple without its Python __new__
            for bad in single:
                if bad(row):
                    return False
            if prev is not None:
                for bad in pair:
                    if bad(row):
                        return False
            prev = row
        return True

    def locate_tuple(self, t: Sequence[Any], entry: int = 0, base: int = 0) -> Violation | None:
        """The first rule (field rules, then record rules) raw tuple ``t`` breaks."""
        v = self.locate_fields_tuple(t, entry, base)
        if v is not None:
            return v
        if self.records:
            row = self._row(*t, None)
            for rr in self.records:
                if not rr.pairwise and rr.bad(row):
                    return rr.violation(row, entry, base + self._offsets[rr.field])
        return None

    # -- arrays ---------------------------------------------------------------
    def clean_tests(self, dtype: np.dtype[Any], folded: bool) -> list[tuple[str, str, Any]]:
        """The vectorised clean tests of the field rules (see :func:`fold_words`)."""
        if self._tests is None:
            tests: list[tuple[str, str, Any]] = []
            for r in self.field_rules:
                tests.extend(r.clean_tests(dtype[r.field.name]))
            # _folded first: another thread (the LU verify's executor) that
            # sees _tests set must find _folded set too.
            self._folded = fold_words(tests, self.fields, self.size, self.byteorder)
            self._tests = tests
        return self._folded if folded else self._tests  # type: ignore[return-value]

    def locate_fields(self, arr: np.ndarray) -> Violation | None:
        """The first entry (then the first field rule) of ``arr`` breaking a field rule."""
        import numpy as np

        first: tuple[int, Violation] | None = None
        for r in self.field_rules:
            bad = r.bad(arr[r.field.name])
            if bad.any():
                idx = int(np.argmax(bad))
                if first is None or idx < first[0]:
                    col = arr[r.field.name]
                    got = bytes(col[idx].tobytes()) if r.field.kind == "bytes" else int(col[idx])
                    first = (idx, r.violation(idx, got, r.field.offset))
        return None if first is None else first[1]

    def records_ok_rows(self, rows: Sequence[tuple[Any, ...]]) -> Violation | None:
        """The first record rule broken by ``rows`` (raw tuples), rule by rule."""
        make = self._row
        objs: list[Any] = []
        prev = None
        for t in rows:
            prev = make(*t, prev)
            objs.append(prev)
        for rr in self.records:
            for i, row in enumerate(objs[1:] if rr.pairwise else objs, int(rr.pairwise)):
                if rr.bad(row):
                    return rr.violation(row, i, i * self.size + self._offsets[rr.field])
        return None

    def clean(
        self,
        arr: np.ndarray,
        tests: list[tuple[str, str, Any]],
        on_step: Callable[[int, int], object] | None = None,
    ) -> bool:
        """The fast verdict on ``arr``: True when no entry breaks a field or record rule.

        One fused pass: step by step (:data:`CLEAN_BYTES`), the field tests
        ``tests`` (:meth:`clean_tests`, folded when ``arr`` allows) and then
        each record rule's ``screen`` (and, only when a screen trips, the
        rule itself) run on the same step while it is in the cache, so each
        entry is read from memory once. With the folded tests the data
        screens share reductions: one OR per folded word answers its field
        tests and every :class:`OrIn` screen of its fields, one contiguous
        max answers every :class:`AtLeast` screen. Exactly the verdict of
        :func:`dirty` and :meth:`records_clean` together (a screen is only a
        sufficient condition for "no entry breaks the rule"); a False sends
        the caller to the exact locators, so errors are unchanged.
        ``on_step(start, stop)``, when given, runs before the tests of each
        step (entries ``start:stop``, in order, back to back) while the step
        is read anyway: the LU verify computes the section's crc32c there.
        """
        import numpy as np

        n = len(arr)
        step = max(CLEAN_BYTES // max(arr.dtype.itemsize, 1), 1)
        single, pair = self._screened, self._pair
        if tests is self._folded and tests is not self._tests:
            plan = self._screen_plan(tests)
        else:
            plan = None
        if plan is None:
            for s in range(0, n, step):
                part = arr[s : s + step]
                if on_step is not None:
                    on_step(s, s + len(part))
                if dirty(part, tests):
                    return False
                for screen, bad in single:
                    if (screen is None or screen(part)) and bad(Columns(part)).any():
                        return False
                if pair and not self._pairs_clean(arr, s, step):
                    return False
            return True
        word_tests, rest, floor, from_or, others, all_others = plan
        nw = self.size >> 3
        rows = arr.view(np.uint64).reshape(n, nw)
        flat = rows.reshape(-1)
        ors: dict[int, int] = {}
        for s in range(0, n, step):
            e = s + step
            if on_step is not None:
                on_step(s, min(e, n))
            for w, forbid, post in word_tests:
                o = ors[w] = int(np.bitwise_or.reduce(rows[s:e, w]))
                if o & forbid:
                    return False
                for shift, full, hi, fname in post:
                    if (o >> shift) & full > hi and arr[fname][s:e].max() > hi:
                        return False
            part = arr[s:e]
            if rest and dirty(part, rest):
                return False
            for i, w, shift, full, maybe in from_or:
                if maybe[(ors[w] >> shift) & full] and single[i][1](Columns(part)).any():
                    return False
            high = floor and int(flat[s * nw : e * nw].max()) >= floor
            for i in all_others if high else others:
                screen, bad = single[i]
                if (screen is None or screen(part)) and bad(Columns(part)).any():
                    return False
            if pair and not self._pairs_clean(arr, s, step):
                return False
        return True

    def _pairs_clean(self, arr: np.ndarray, s: int, step: int) -> bool:
        """No pairwise rule breaks between entries ``s - 1 .. s + step - 1`` of ``arr``."""
        ext = arr[s - 1 if s else 0 : s + step]  # the entry before the step: the overlap
        if len(ext) < 2:
            return True
        both = Columns(ext[1:], Columns(ext[:-1]))
        return not any(bad(both).any() for bad in self._pair)

    def _screen_plan(self, tests: list[tuple[str, str, Any]]) -> Any:
        """How :meth:`clean` runs the folded ``tests`` and answers the data screens.

        (word tests as (word, forbidden bits, post bounds); the other tests;
        the smallest word value an :class:`AtLeast` screen needs, 0 for
        none (a field >= v implies its word >= v << shift); for each
        :class:`OrIn` screen of a field inside a folded word, (rule index,
        word, shift, mask, table); the indices of the other screens; the
        same plus the ``AtLeast`` ones, for a step whose max reaches the floor).
        """
        if self._plan is not None:
            return self._plan
        word_tests = [(p[0], p[2], p[3]) for kind, _, p in tests if kind == "word"]
        folded_words = {w for w, _, _ in word_tests}
        rest = [t for t in tests if t[0] != "word"]
        by_name = {fi.name: fi for fi in self.fields}
        floor = 0
        from_or: list[tuple[int, int, int, int, tuple[bool, ...]]] = []
        others: list[int] = []
        at_least: list[int] = []
        for i, (sc, _) in enumerate(self._screened):
            fi = by_name.get(getattr(sc, "field", ""))
            if fi is None or fi.kind != "uint" or fi.offset // 8 != (fi.offset + fi.size - 1) // 8:
                others.append(i)  # not an unsigned field inside one word: screened alone
                continue
            word, byte = divmod(fi.offset, 8)
            if isinstance(sc, AtLeast) and sc.value > 0:
                v = sc.value << (8 * byte)
                floor = v if not floor else min(floor, v)
                at_least.append(i)
            elif isinstance(sc, OrIn) and word in folded_words:
                from_or.append((i, word, 8 * byte, (1 << 8 * fi.size) - 1, sc.maybe))
            else:
                others.append(i)
        self._plan = (
            word_tests,
            rest,
            floor,
            tuple(from_or),
            tuple(others),
            tuple(sorted(others + at_least)),
        )
        return self._plan

    def records_clean(self, arr: np.ndarray) -> bool:
        """The verdict of the record rules on ``arr``: True when no entry breaks one.

        Chunk by chunk, every rule on a chunk while it is in the cache, each
        rule's ``screen`` first so a clean chunk costs a reduction or two.
        """
        n = len(arr)
        for s in range(0, n, CLEAN_CHUNK):
            part = arr[s : s + CLEAN_CHUNK + 1]  # one more: the pairwise rules' overlap
            cols = Columns(part[:CLEAN_CHUNK])
            for rr in self.records:
                if rr.pairwise:
                    if len(part) > 1 and rr.bad(Columns(part[1:], Columns(part[:-1]))).any():
                        return False
                elif (rr.screen is None or rr.screen(part[:CLEAN_CHUNK])) and rr.bad(cols).any():
                    return False
        return True

    def locate_records(self, arr: np.ndarray) -> Violation | None:
        """The first entry of ``arr`` breaking each record rule, rule by rule."""
        import numpy as np

        if len(arr) <= TINY:
            return self.records_ok_rows(arr.tolist())
        for rr in self.records:
            if rr.pairwise:
                bad = np.asarray(rr.bad(Columns(arr[1:], Columns(arr[:-1]))))
                if bad.any():
                    return self._record_violation(rr, arr, int(np.argmax(bad)) + 1)
                continue
            bad = np.asarray(rr.bad(Columns(arr)))
            if bad.any():
                return self._record_violation(rr, arr, int(np.argmax(bad)))
        return None

    def _record_violation(self, rr: Rule, arr: np.ndarray, i: int) -> Violation:
        prev = self._row(*arr[i - 1].tolist(), None) if i else None
        row = self._row(*arr[i].tolist(), prev)
        return rr.violation(row, i, i * self.size + self._offsets[rr.field])


def fold_words(
    tests: list[tuple[str, str, Any]], fields: Sequence[FieldInfo], size: int, byteorder: str
) -> list[tuple[str, str, Any]]:
    """``tests`` with every bit-pattern test of one 8-byte word merged into one.

    Reserved fields, invalid flag bits and upper bounds of the form
    ``2**k - 1`` are all "these bits are zero in every entry", which one
    OR-reduction of the word column answers (a strided reduction costs
    about as much as one compare, so a P2M entry's rsvd, p2m_type and
    access tests become one pass instead of three). Other upper bounds
    ride along as a sufficient condition (every value <= the OR of all
    values), with their own compare only when the OR exceeds them.
    Little-endian layouts of whole words only; the unfolded tests stay in
    use for other arrays (:meth:`Layout.check_array` picks per array).
    """
    if byteorder != "<" or size % 8:
        return tests
    by_name = {fi.name: fi for fi in fields}
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
        ("word", "", (w, size // 8, forbid[w], tuple(post.get(w, ())))) for w in sorted(forbid)
    ]
    return words + rest


def dirty(part: np.ndarray, tests: list[tuple[str, str, Any]]) -> bool:
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
                if (o >> shift) & full > hi and part[fname].max() > hi:
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
