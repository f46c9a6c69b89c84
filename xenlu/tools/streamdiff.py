"""``xenlu diff``: a semantic difference of two streams of one family.

Sections are matched by what they describe (LU: the global section, then
each domain by domid; other families: the stream's headers and records),
records by name and occurrence, fields by their declared names, so two
streams of different epochs compare field by field (a field only one
layout has is reported as added or removed). Bulk arrays (every entry of a
record type in a section, however it was split into records) are compared
as keyed sets, vectorised with numpy: the key is the layout's first field
(``gfn``, ``start_mfn``, ``mfn``, ``port`` …) with the entry's rank among
equal keys; entries are added, removed or changed, counted, and the first
few of each are listed. No Python object is made per entry.

>>> from xenlu.testing.hostgen import make_host
>>> a = make_host("4.15", n_hvm=1, mem_mib=4)
>>> diff_streams(a, a)
[]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import numpy as np

from xenlu.api import format_of
from xenlu.core.errors import CallerError
from xenlu.core.layout import FieldInfo
from xenlu.core.registry import Record, UnknownRecord
from xenlu.tools.jsonform import RECORD_FAMILIES, record_label, record_spec
from xenlu.tools.show import fmt_field

__all__ = ["SHOWN", "Difference", "diff_streams"]

#: Entries listed for each of added / removed / changed.
SHOWN = 3


@dataclass
class Difference:
    """One difference: where (section, record, field path) and what.

    ``kind`` is ``changed`` (``old`` → ``new``), ``added``/``removed`` (a
    section, record or field only one side has; ``new``/``old`` its value)
    or ``entries`` (a bulk array: ``counts`` of added/removed/changed
    entries and ``examples`` of each).
    """

    section: str
    record: str
    field: str
    kind: str
    old: Any = None
    new: Any = None
    counts: dict[str, int] = dc_field(default_factory=dict)
    examples: dict[str, list[str]] = dc_field(default_factory=dict)
    domid: int | None = None
    #: The declared field (names of flag bits and values in the text form).
    info: FieldInfo | None = dc_field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (``--json``)."""
        out: dict[str, Any] = {
            "section": self.section,
            "domid": self.domid,
            "record": self.record,
            "field": self.field,
            "kind": self.kind,
        }
        if self.kind == "entries":
            out.update(counts=self.counts, examples=self.examples)
        else:
            out.update(old=_plain(self.old), new=_plain(self.new))
        return out

    def lines(self) -> list[str]:
        """The text lines of this difference."""
        where = ".".join(p for p in (self.record, self.field) if p)
        head = f"{self.section}: {where}" if where else self.section
        if self.kind == "changed":
            old, new = (
                _text(self.field, self.old, self.info),
                _text(self.field, self.new, self.info),
            )
            return [f"{head}: {old} → {new}"]
        if self.kind == "added":
            return [f"{head}: added{_value_suffix(self.field, self.new, self.info)}"]
        if self.kind == "removed":
            return [f"{head}: removed{_value_suffix(self.field, self.old, self.info)}"]
        c = self.counts
        out = [
            f"{head}: {c['added']} added, {c['removed']} removed, {c['changed']} changed "
            f"({c['old']} → {c['new']} entries)"
        ]
        for sign, key in (("+", "added"), ("-", "removed"), ("~", "changed")):
            out += [f"    {sign} {e}" for e in self.examples.get(key, [])]
        for key in ("fields added", "fields removed"):
            if self.examples.get(key):
                out.append(f"    {key}: {', '.join(self.examples[key])}")
        return out


def _value_suffix(name: str, v: Any, info: FieldInfo | None = None) -> str:
    return "" if v is None else f" ({_text(name, v, info)})"


def _text(name: str, v: Any, info: FieldInfo | None = None) -> str:
    if isinstance(v, (bytes, bytearray, memoryview)):
        raw = bytes(v)
        return f"<{len(raw)} bytes {raw[:16].hex()}{'…' if len(raw) > 16 else ''}>"
    if isinstance(v, int) and not isinstance(v, bool):
        return fmt_field(info, name.rsplit(".", 1)[-1], v)
    return str(v)


def _plain(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return str(v)


# --- arrays --------------------------------------------------------------------


def _keys(arr: np.ndarray, key: str | None) -> np.ndarray:
    """(key, rank among equal keys) of every entry, as 16 big-endian bytes that
    sort and compare like the pair (one void value per entry, no Python objects)."""
    n = len(arr)
    k = np.zeros(n, np.uint64) if key is None else arr[key].astype(np.uint64)
    order = np.argsort(k, kind="stable")
    ks = k[order]
    first = np.flatnonzero(np.concatenate(([True], ks[1:] != ks[:-1]))) if n else np.zeros(0, int)
    group_start = np.repeat(first, np.diff(np.concatenate((first, [n])))) if n else first
    rank = np.empty(n, np.uint64)
    rank[order] = np.arange(n, dtype=np.uint64) - group_start.astype(np.uint64)
    pair = np.empty(n, dtype=[("k", ">u8"), ("r", ">u8")])
    pair["k"] = k
    pair["r"] = rank
    return pair.view("V16")


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(
        np.array_equal(
            np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8)
        )
    )


def _unique_sorted(k: np.ndarray) -> bool:
    s = np.sort(k)
    return bool((s[1:] != s[:-1]).all())


def _match(a: np.ndarray, b: np.ndarray, key: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``a`` and ``b`` of the entries present in both (by key and rank)."""
    if key is not None:
        ka, kb = a[key].astype(np.uint64), b[key].astype(np.uint64)
        if len(ka) == len(kb) and np.array_equal(ka, kb):  # same keys, same order
            r = np.arange(len(ka))
            return r, r
        if _unique_sorted(ka) and _unique_sorted(kb):  # one u64 sort, no pairs
            _, ia, ib = np.intersect1d(ka, kb, assume_unique=True, return_indices=True)
            return ia, ib
    _, ia, ib = np.intersect1d(
        _keys(a, key), _keys(b, key), assume_unique=True, return_indices=True
    )
    return ia, ib


def _rows_differ(a: np.ndarray, b: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Which raw-bytes values (e.g. 4 KiB pages) differ, compared a chunk of
    rows at a time so the temporaries stay small."""
    n, size = len(a), a.dtype.itemsize
    out = np.zeros(n, bool)
    if size != b.dtype.itemsize:
        out[:] = True
        return out
    for i in range(0, n, chunk):
        x = np.ascontiguousarray(a[i : i + chunk]).view(np.uint8).reshape(-1, size)
        y = np.ascontiguousarray(b[i : i + chunk]).view(np.uint8).reshape(-1, size)
        out[i : i + chunk] = (x != y).any(axis=1)
    return out


def _row_text(arr: np.ndarray, i: int, prefer: tuple[Any, ...] = ()) -> str:
    row = arr[i]
    names = [n for n in arr.dtype.names or () if not n.startswith("rsvd")]
    if not names:
        return fmt_field(None, "value", row)
    from xenlu.tools.show import layout_of

    lay = layout_of(arr.dtype, prefer)
    return ", ".join(
        f"{n} {fmt_field(lay.field(n) if lay is not None and n in lay.names else None, n, row[n])}"
        for n in names
    )


def diff_arrays(
    a: np.ndarray, b: np.ndarray, name: str = "", prefer: tuple[Any, ...] = ()
) -> dict[str, Any] | None:
    """Counts and examples of entries added, removed and changed from ``a`` to ``b``;
    None when equal. Key: the first field (structured) or the value (plain)."""
    a_names = a.dtype.names
    b_names = b.dtype.names
    if a_names is None or b_names is None:
        # A plain array (pfns, frames): the values are the keys, named after the
        # array ("pfns" → "pfn", shown in hex like every frame number).
        label = (name.rsplit(".", 1)[-1] or "value").removesuffix("s")
        one = np.dtype([(label, np.uint64)])
        a = np.ascontiguousarray(a.astype(np.uint64)).view(one)
        b = np.ascontiguousarray(b.astype(np.uint64)).view(one)
        a_names, b_names = (label,), (label,)
    assert a_names is not None and b_names is not None
    if a.dtype == b.dtype and len(a) == len(b) and _same_bytes(a, b):
        return None
    key = a_names[0] if a_names[0] == b_names[0] and a.dtype[0].kind in "ui" else None
    ia, ib = _match(a, b, key)
    removed = np.ones(len(a), bool)
    removed[ia] = False
    added = np.ones(len(b), bool)
    added[ib] = False
    common = [n for n in a_names if n in b_names and not n.startswith("rsvd")]
    changed = np.zeros(len(ia), bool)
    for n in common:
        col_a, col_b = a[n][ia], b[n][ib]
        if col_a.dtype.kind == "V":
            changed |= _rows_differ(col_a, col_b)
        else:
            changed |= col_a.astype(np.int64 if col_a.dtype.kind == "i" else np.uint64) != (
                col_b.astype(np.int64 if col_b.dtype.kind == "i" else np.uint64)
            )
    n_add, n_rem, n_chg = int(added.sum()), int(removed.sum()), int(changed.sum())
    fields_added = [n for n in b_names if n not in a_names and not n.startswith("rsvd")]
    fields_removed = [n for n in a_names if n not in b_names and not n.startswith("rsvd")]
    if not (n_add or n_rem or n_chg or fields_added or fields_removed):
        return None
    ex: dict[str, list[str]] = {
        "added": [_row_text(b, int(i), prefer) for i in np.flatnonzero(added)[:SHOWN]],
        "removed": [_row_text(a, int(i), prefer) for i in np.flatnonzero(removed)[:SHOWN]],
        "changed": [],
    }
    for j in np.flatnonzero(changed)[:SHOWN]:
        i, k = int(ia[j]), int(ib[j])
        parts = [
            f"{n} {fmt_field(None, n, a[n][i])} → {fmt_field(None, n, b[n][k])}"
            for n in common
            if bytes(np.asarray(a[n][i]).tobytes()) != bytes(np.asarray(b[n][k]).tobytes())
            or a[n][i] != b[n][k]
        ]
        label = f"{key} {fmt_field(None, key, a[key][i])}: " if key else f"[{i}]: "
        ex["changed"].append(label + ", ".join(parts))
    if fields_added:
        ex["fields added"] = fields_added
    if fields_removed:
        ex["fields removed"] = fields_removed
    return {
        "counts": {
            "added": n_add,
            "removed": n_rem,
            "changed": n_chg,
            "old": len(a),
            "new": len(b),
        },
        "examples": ex,
    }


# --- values ----------------------------------------------------------------------


def _fields(v: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: getattr(v, f.name) for f in dataclasses.fields(v) if f.compare}
    return {}


def _diff_value(
    a: Any, b: Any, path: str, mk: Any, prefer: tuple[Any, ...] = ()
) -> Iterator[Difference]:
    """Differences between two values of one record (or one nested member);
    ``prefer``: the record's declared layouts (names of array entries)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        d = diff_arrays(a, b, path, prefer)
        if d is not None:
            yield mk(path, "entries", counts=d["counts"], examples=d["examples"])
        return
    if isinstance(a, (bytes, bytearray, memoryview)) and isinstance(
        b, (bytes, bytearray, memoryview)
    ):
        if bytes(a) != bytes(b):
            yield mk(path, "changed", bytes(a), bytes(b))
        return
    if _is_stream(a) and _is_stream(b):
        if type(a) is not type(b):  # e.g. an xl file holding a libxl vs a libxc stream
            yield mk(path, "changed", type(a).__name__, type(b).__name__)
        else:
            yield from _diff_model(a, b, path, mk)
        return
    fa, fb = _fields(a), _fields(b)
    if fa or fb:
        if _is_hvm_entries(a) and _is_hvm_entries(b):
            yield from _diff_hvm(a, b, path, mk)
            return
        lays = [getattr(type(x), "LAYOUT", None) for x in (b, a)]
        for name in [*fa, *(n for n in fb if n not in fa)]:
            sub = f"{path}.{name}" if path else name
            info = next((x.field(name) for x in lays if x is not None and name in x.names), None)
            for dif in (
                [mk(sub, "removed", fa[name], None)]
                if name not in fb
                else [mk(sub, "added", None, fb[name])]
                if name not in fa
                else _diff_value(fa[name], fb[name], sub, mk, prefer)
            ):
                if dif.field == sub and dif.info is None:
                    dif.info = info
                yield dif
        return
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        for i in range(max(len(a), len(b))):
            sub = f"{path}[{i}]"
            if i >= len(b):
                yield mk(sub, "removed", _summ(a[i]), None)
            elif i >= len(a):
                yield mk(sub, "added", None, _summ(b[i]))
            else:
                yield from _diff_value(a[i], b[i], sub, mk, prefer)
        return
    if type(a) is not type(b) and not (isinstance(a, int) and isinstance(b, int)):
        yield mk(path, "changed", _summ(a), _summ(b))
    elif a != b:
        yield mk(path, "changed", a, b)


def _summ(v: Any) -> Any:
    if isinstance(v, (int, bytes, str)) or v is None:
        return v
    return type(v).__name__


def _is_hvm_entries(v: Any) -> bool:
    return type(v).__name__ == "HvmContext"


def _diff_hvm(a: Any, b: Any, path: str, mk: Any) -> Iterator[Difference]:
    """HVM_CONTEXT: entries matched by (typecode, instance); RTC and
    VIRIDIAN_VCPU compared field by field through their epoch layouts."""
    from xenlu.migration.hvmctx import decode_entry_body

    ea = {(e.typecode, e.instance): e for e in a.entries}
    eb = {(e.typecode, e.instance): e for e in b.entries}
    for k in [*ea, *(k for k in eb if k not in ea)]:
        x, y = ea.get(k), eb.get(k)
        e = x if x is not None else y
        assert e is not None
        sub = f"{e.name}[{e.instance}]"
        if x is None:
            yield mk(sub, "added", None, y.data if y is not None else None)
        elif y is None:
            yield mk(sub, "removed", x.data, None)
        elif x.data != y.data:
            try:
                va, vb = decode_entry_body(x), decode_entry_body(y)
            except CallerError:
                yield mk(sub + ".data", "changed", x.data, y.data)
                continue
            yield from _diff_value(va, vb, sub, mk)


# --- streams -----------------------------------------------------------------------


def _is_stream(v: Any) -> bool:
    return type(v).__name__ in RECORD_FAMILIES or type(v).__name__ == "XlFile"


def _groups(owner: str, records: list[Record]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for r in records:
        name = record_label(owner, r.type)
        if isinstance(r.value, UnknownRecord):
            name = f"{name}({r.type:#010x})"
        out.setdefault(name, []).append(r)
    return out


def _single_array(v: Any) -> str | None:
    """The field name when a value is one bulk array and nothing else (LU bulk records)."""
    fs = _fields(v)
    if len(fs) == 1:
        ((name, x),) = fs.items()
        if isinstance(x, np.ndarray):
            return name
    return None


def _diff_records(owner: str, ra: list[Record], rb: list[Record], mk: Any) -> Iterator[Difference]:
    ga, gb = _groups(owner, ra), _groups(owner, rb)
    for name in [*ga, *(n for n in gb if n not in ga)]:
        xa, xb = ga.get(name, []), gb.get(name, [])
        rmk = _with_record(mk, name)
        if not xb:
            yield rmk("", "removed", f"{len(xa)} record(s)", None)
            continue
        if not xa:
            yield rmk("", "added", None, f"{len(xb)} record(s)")
            continue
        spec = record_spec(owner, xa[0].type)
        prefer = spec.layouts if spec is not None else ()
        joined = _JOINS.get(name)
        if joined is not None:
            # Records whose entries pair an array with data (PAGE_DATA): one
            # keyed array per stream, then compared like any bulk array.
            aa, bb = joined([r.value for r in xa]), joined([r.value for r in xb])
            yield from _diff_value(aa, bb, "pages", rmk, prefer)
            continue
        col = _single_array(xa[0].value)
        if col is not None and _single_array(xb[0].value) == col:
            # Bulk: every entry of this record type in the section, however split.
            aa = np.concatenate([getattr(r.value, col) for r in xa])
            bb = np.concatenate([getattr(r.value, col) for r in xb])
            yield from _diff_value(aa, bb, col, rmk, prefer)
            continue
        for i in range(max(len(xa), len(xb))):
            sub_mk = rmk if max(len(xa), len(xb)) == 1 else _with_record(mk, f"{name}[{i}]")
            if i >= len(xb):
                yield sub_mk("", "removed", None, None)
            elif i >= len(xa):
                yield sub_mk("", "added", None, None)
            elif isinstance(xa[i].value, UnknownRecord) or isinstance(xb[i].value, UnknownRecord):
                ba, bb_ = _body(xa[i].value), _body(xb[i].value)
                if ba != bb_:
                    yield sub_mk("body", "changed", ba, bb_)
            else:
                yield from _diff_value(xa[i].value, xb[i].value, "", sub_mk, prefer)


def _page_data_entries(values: list[Any]) -> np.ndarray:
    """Every PAGE_DATA entry of a stream as one array: pfn, type and page
    (4096 raw bytes; zero for types that carry none), so that pages are
    matched by pfn however the records batch them (libxc §1.6)."""
    from xenlu.migration.libxc_records import PAGE_SIZE

    dt = np.dtype([("pfn", "<u8"), ("type", "u1"), ("page", f"V{PAGE_SIZE}")])
    n = sum(len(v.pfns) for v in values)
    out = np.zeros(n, dt)
    at = 0
    for v in values:
        k = len(v.pfns)
        part = out[at : at + k]
        part["pfn"] = v.pfn_numbers
        part["type"] = v.types
        has = (v.types & 7) <= 4  # the entries that carry a page (libxc §1.6)
        if v.page_count:
            part["page"][has] = np.frombuffer(v.pages, dtype=f"V{PAGE_SIZE}")
        at += k
    return out


#: Record types whose entries are compared joined across records (by name).
_JOINS = {"PAGE_DATA": _page_data_entries}


def _body(v: Any) -> Any:
    return bytes(v.body) if isinstance(v, UnknownRecord) else type(v).__name__


def _with_record(mk: Any, name: str) -> Any:
    """A difference maker whose records are inside ``name``: a record (or the field
    path of a stream nested in one) prefixes the record names of what it holds."""

    def make(
        path: str, kind: str, old: Any = None, new: Any = None, *, record: str = "", **kw: Any
    ) -> Difference:
        d: Difference = mk(
            path, kind, old, new, record=f"{name}/{record}" if record else name, **kw
        )
        return d

    return make


def _diff_model(a: Any, b: Any, path: str, mk: Any) -> Iterator[Difference]:
    """A stream object field by field; its records by name (nested under ``path``)."""
    owner = type(a).__name__
    for f in dataclasses.fields(a):
        if not f.compare:
            continue
        va, vb = getattr(a, f.name), getattr(b, f.name)
        sub = f"{path}.{f.name}" if path else f.name
        if f.name == "records" and owner in RECORD_FAMILIES:
            yield from _diff_records(owner, va, vb, _with_record(mk, path) if path else mk)
        else:
            yield from _diff_value(va, vb, sub, mk)


def _maker(section: str, domid: int | None) -> Any:
    def make(
        path: str, kind: str, old: Any = None, new: Any = None, *, record: str = "", **kw: Any
    ) -> Difference:
        return Difference(section, record, path, kind, old, new, domid=domid, **kw)

    return make


def diff_streams(a: Any, b: Any) -> list[Difference]:
    """Every difference from stream ``a`` to stream ``b`` (decoded objects of one family).

    :class:`~xenlu.core.errors.CallerError` when the families differ.
    """
    fa, fb = format_of(a), format_of(b)
    if fa != fb:
        raise CallerError(f"cannot compare a {fa} stream with a {fb} stream")
    if fa != "lu":
        return list(_diff_model(a, b, "", _maker("stream", None)))
    out: list[Difference] = list(
        _diff_records(
            "GlobalSection",
            a.global_section.records,
            b.global_section.records,
            _maker("global", None),
        )
    )
    da = {d.domid: d for d in a.domains}
    db = {d.domid: d for d in b.domains}
    for domid in sorted(set(da) | set(db)):
        sec = f"domain {domid}"
        if domid not in db:
            out.append(Difference(sec, "", "", "removed", domid=domid))
        elif domid not in da:
            out.append(Difference(sec, "", "", "added", domid=domid))
        else:
            out += _diff_records(
                "LUDomain", da[domid].records, db[domid].records, _maker(sec, domid)
            )
    return out
