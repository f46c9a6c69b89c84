"""Machine-readable per-epoch schemas, and a checker for differences between them.

:func:`epoch_schema` describes everything a Live Update stream of one epoch
may carry, generated **only** from the declarations: every LU record type
(``xenlu.lu.records``) with the layout(s) valid in that epoch, every libxc
record allowed in a domain section (LU spec §4.16) with its layouts, and the
HVM_CONTEXT entries whose size depends on the epoch (RTC, VIRIDIAN_VCPU).
Each field has its offset, size, type, reserved flag and, for that epoch,
its valid flag bits, allowed values and bounds (:meth:`Layout.describe`).
Docstrings are left out: a schema changes only when the wire does.

The committed files ``xenlu/schemas/lu-<X.Y>.json`` (:func:`write_schemas`,
run by ``make schemas``) freeze the layouts: a test compares them with the
code, so a wire change is always a reviewed diff. They ship inside the
package and are read through :mod:`importlib.resources`
(:func:`packaged_schemas`), so an installed xenlu finds them from any
directory; the current directory is never searched.

:func:`diff` classifies every difference between two schemas (record
added/removed, field added/removed/moved/resized/retyped, flag bits or
values added/removed, size changed …) and marks each as covered or not by
the registered upgrade/rollback steps of :mod:`xenlu.host.compat` between the two
epochs; :func:`uncovered` lists the ones no step handles.

>>> s = epoch_schema("4.13")
>>> [f["name"] for f in s["records"]["LU_DOMAIN"]["layouts"]["LU_DOMAIN"]["fields"]][-2:]
['iommu_opts', 'rsvd1']
>>> [str(d) for d in diff(epoch_schema("4.19"), epoch_schema("4.20"))]
["LU_P2M LU_P2M entry:access.r_pw: value-added (None -> '10') [covered by 4.19->4.20]"]
>>> uncovered("code:4.11", "code:4.21")
[]
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import xenlu.migration.libxc  # noqa: F401  (registers the libxc records)
from xenlu.core.epochs import EPOCHS, Epoch, EpochLike, as_epoch, epoch_of, fmt_epoch, parse_epoch
from xenlu.core.errors import CallerError, InputError
from xenlu.core.registry import LIBXC, LU, RecordSpec
from xenlu.lu.grammar import LIBXC_IN_LU
from xenlu.migration import hvmctx

__all__ = [
    "SCHEMA_FORMAT",
    "Difference",
    "adjacent_pairs",
    "default_schema_dir",
    "diff",
    "dumps",
    "epoch_schema",
    "load_schema",
    "loads_schema",
    "packaged_schemas",
    "record_schema",
    "schema_path",
    "uncovered",
    "write_schemas",
]

#: The ``format`` key of every schema file; bump when the schema's own shape changes.
SCHEMA_FORMAT = "xenlu-lu-schema/1"

SchemaLike = dict[str, Any] | str | os.PathLike[str] | EpochLike

# LU spec §4.16: the libxc records allowed inside a domain section.
_DOMAIN_LIBXC = sorted(LIBXC_IN_LU)


def _hvm_entry_layouts(epoch: Epoch) -> dict[type[Any], int]:
    """HVM_CONTEXT entry layouts valid in ``epoch`` → their typecode (LU spec §4.16)."""
    out: dict[type[Any], int] = {}
    for typecode in hvmctx.ENTRY_LAYOUTS:
        cls = hvmctx.entry_layout(typecode, epoch)
        if cls is not None:
            out[cls] = typecode
    return out


def _layouts(spec: RecordSpec, epoch: Epoch) -> list[type[Any]]:
    # Each declaration's since/until says which epochs use it (one per role).
    return spec.layouts_in(epoch)


def _describe(cls: type[Any], epoch: Epoch) -> dict[str, Any]:
    d = cls.LAYOUT.describe(epoch)
    fields = [{k: v for k, v in f.items() if k != "doc"} for f in d["fields"]]
    return {"name": d["name"], "size": d["size"], "fields": fields}


def record_schema(spec: RecordSpec, epoch: Epoch) -> dict[str, Any]:
    """The schema entry of one record in ``epoch`` (as in :func:`epoch_schema`'s ``records``).

    >>> from xenlu.core.registry import LU
    >>> record_schema(LU.by_name("LU_VERSION"), (4, 11))["layouts"]["LU_VERSION"]["size"]
    8
    """
    return _record(spec, epoch)


def _record(spec: RecordSpec, epoch: Epoch) -> dict[str, Any]:
    hvm = _hvm_entry_layouts(epoch) if spec.name == "HVM_CONTEXT" else {}
    layouts: dict[str, Any] = {}
    for cls in _layouts(spec, epoch):
        desc = _describe(cls, epoch)
        if cls in hvm:
            desc = {"hvm_typecode": hvm[cls], **desc}
        layouts[cls.LAYOUT.role] = desc
    return {
        "type": f"{spec.type:#010x}",
        "family": spec.family,
        "bulk": spec.bulk,
        "layouts": layouts,
    }


def epoch_schema(epoch: EpochLike) -> dict[str, Any]:
    """The schema of one epoch (a Xen version is rounded down to its epoch), as JSON data.

    >>> s = epoch_schema((4, 18))
    >>> s["epoch"], s["xen_versions"]
    ('4.17', ['4.17', '4.18'])
    >>> s["records"]["LU_P2M"]["layouts"]["LU_P2M entry"]["size"]
    24
    """
    e = as_epoch(epoch)
    nxt = EPOCHS[EPOCHS.index(e) + 1] if e != EPOCHS[-1] else (e[0], e[1] + 1)
    records: dict[str, Any] = {}
    for spec in LU:
        records[spec.name] = _record(spec, e)
    for t in _DOMAIN_LIBXC:
        spec_or_none = LIBXC.get(t)
        if spec_or_none is None:  # pragma: no cover - registry is loaded by the import
            raise CallerError(f"libxc record {t:#x} is not registered")
        records[spec_or_none.name] = _record(spec_or_none, e)
    return {
        "format": SCHEMA_FORMAT,
        "spec": "LU stream revision 1",
        "epoch": fmt_epoch(e),
        "xen_versions": [fmt_epoch((e[0], m)) for m in range(e[1], nxt[1])],
        "records": records,
    }


def dumps(schema: dict[str, Any]) -> str:
    """The canonical text of a schema: 2-space indented JSON, stable key order, final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def packaged_schemas() -> Traversable:
    """The schema files shipped inside the package (``xenlu/schemas/``)."""
    return files("xenlu").joinpath("schemas")


def default_schema_dir() -> Path:
    """The packaged schema directory as a file-system path (never the current directory).

    :class:`~xenlu.core.errors.CallerError` when the package is imported from an
    archive (zipimport); :func:`load_schema` reads the files even then.
    """
    d = packaged_schemas()
    if not isinstance(d, Path):  # pragma: no cover - zip imports only
        raise CallerError(f"the packaged schemas are not files on disk ({d}); use load_schema()")
    return d


def schema_path(epoch: EpochLike, directory: str | os.PathLike[str] | None = None) -> Path:
    """Where the committed schema of ``epoch`` lives: ``<dir>/lu-<X.Y>.json``.

    ``directory`` defaults to the packaged schemas (:func:`default_schema_dir`).
    """
    base = Path(directory) if directory is not None else default_schema_dir()
    return base / _schema_name(epoch)


def _schema_name(epoch: EpochLike) -> str:
    return f"lu-{fmt_epoch(as_epoch(epoch))}.json"


def write_schemas(directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``lu-<X.Y>.json`` for every epoch into ``directory``; return the paths.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     [p.name for p in write_schemas(d)][:2]
    ['lu-4.11.json', 'lu-4.12.json']
    """
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    out = []
    for e in EPOCHS:
        p = schema_path(e, base)
        p.write_text(dumps(epoch_schema(e)), encoding="utf-8")
        out.append(p)
    return out


_EPOCH_TEXT = re.compile(r"^\s*\d+\.\d+\s*$")


def loads_schema(text: str | bytes, source: str = "<string>") -> dict[str, Any]:
    """Parse the text of a schema file (e.g. read from standard input).

    :class:`~xenlu.core.errors.CallerError` if it is not JSON or not a schema;
    ``source`` names it in the message.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise CallerError(f"cannot read schema {source}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SCHEMA_FORMAT:
        raise CallerError(f"{source} is not a {SCHEMA_FORMAT} schema")
    return data


def load_schema(path_or_epoch: str | os.PathLike[str] | EpochLike) -> dict[str, Any]:
    """Load a schema file; an epoch (``"4.13"`` or ``(4, 13)``) loads its packaged file.

    A version inside an epoch loads that epoch's file (``"4.18"`` → 4.17).
    :class:`~xenlu.core.errors.InputError` (with ``errno``) if the file is
    missing or cannot be read, :class:`~xenlu.core.errors.CallerError` if it is
    not a schema.

    >>> load_schema("4.18")["epoch"]
    '4.17'
    """
    x = path_or_epoch
    if isinstance(x, (str, os.PathLike)) and not (isinstance(x, str) and _EPOCH_TEXT.match(x)):
        path = Path(x)
        try:
            text = path.read_bytes()
        except (OSError, ValueError) as exc:
            err = InputError(
                f"cannot read schema {path}: {getattr(exc, 'strerror', None) or exc}",
                errno=getattr(exc, "errno", None),
                filename=str(path),
            )
            raise err from exc
        return loads_schema(text, str(path))
    name = _schema_name(x)
    res = packaged_schemas().joinpath(name)
    try:
        text = res.read_bytes()
    except FileNotFoundError:
        raise CallerError(
            f"no packaged schema {name} in {packaged_schemas()} "
            "(generate the committed schemas with `make schemas`)"
        ) from None
    return loads_schema(text, f"xenlu/schemas/{name}")


def _as_schema(x: SchemaLike) -> dict[str, Any]:
    if isinstance(x, dict):
        return x
    if isinstance(x, str) and x.startswith("code:"):
        return epoch_schema(x[5:])
    return load_schema(x)


# --- differences -------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One difference between two schemas, and the step that covers it (if any).

    ``layout`` is the layout's role (its name without the epoch, e.g.
    ``LU_DOMAIN``, ``LU_EVTCHNS entry``, ``HVM_RTC``); ``item`` names a flag
    bit or an allowed value. :attr:`path` is what a
    :class:`~xenlu.host.compat.Cover` names.
    """

    kind: str
    record: str
    layout: str | None = None
    field: str | None = None
    item: str | None = None
    old: Any = None
    new: Any = None
    covered_by: str | None = None

    @property
    def path(self) -> str:
        """``layout:field.item``, ``layout:field``, ``layout`` or ``""`` (record level)."""
        if self.field is None:
            return self.layout or ""
        p = f"{self.layout}:{self.field}"
        return f"{p}.{self.item}" if self.item is not None else p

    @property
    def covered(self) -> bool:
        return self.covered_by is not None

    def __str__(self) -> str:
        where = f"{self.record} {self.path}".rstrip()
        cov = f"covered by {self.covered_by}" if self.covered_by else "UNCOVERED"
        return f"{where}: {self.kind} ({self.old!r} -> {self.new!r}) [{cov}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "record": self.record,
            "path": self.path,
            "old": self.old,
            "new": self.new,
            "covered_by": self.covered_by,
        }


def _by(items: Iterable[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {str(i[key]): i for i in items}


def _field_diffs(rec: str, role: str, a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    out: list[Difference] = []
    fa, fb = _by(a["fields"], "name"), _by(b["fields"], "name")
    for name, f in fa.items():
        if name not in fb:
            out.append(Difference("field-removed", rec, role, name, old=f["type"]))
    for name, f in fb.items():
        if name not in fa:
            out.append(Difference("field-added", rec, role, name, new=f["type"]))
    for name, x in fa.items():
        y = fb.get(name)
        if y is None:
            continue

        def d(
            kind: str,
            key: str,
            x: dict[str, Any] = x,
            y: dict[str, Any] = y,
            name: str = name,
        ) -> None:
            out.append(Difference(kind, rec, role, name, old=x.get(key), new=y.get(key)))

        if x["offset"] != y["offset"]:
            d("field-moved", "offset")
        if x["size"] != y["size"]:
            d("field-resized", "type")
        elif x["type"] != y["type"]:
            d("field-retyped", "type")
        if bool(x.get("reserved")) != bool(y.get("reserved")):
            d("field-reserved-changed", "reserved")
        for key, what in (("bits", "flag-bit"), ("masks", "flag-bit"), ("values", "value")):
            # bits {"5": "iommu"}, masks {"0xf": "max_version"}, values
            # {"10": "r_pw"}: by position; a renamed one is removed + added.
            ia, ib = x.get(key) or {}, y.get(key) or {}
            for pos in ia:
                if ib.get(pos) != ia[pos]:
                    out.append(Difference(f"{what}-removed", rec, role, name, ia[pos], old=pos))
            for pos in ib:
                if ia.get(pos) != ib[pos]:
                    out.append(Difference(f"{what}-added", rec, role, name, ib[pos], new=pos))
        if (x.get("min"), x.get("max")) != (y.get("min"), y.get("max")):
            out.append(
                Difference(
                    "bounds-changed",
                    rec,
                    role,
                    name,
                    old=[x.get("min"), x.get("max")],
                    new=[y.get("min"), y.get("max")],
                )
            )
    return out


def _raw_diff(a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    out: list[Difference] = []
    ra, rb = a.get("records", {}), b.get("records", {})
    for rec in ra.keys() - rb.keys():
        out.append(Difference("record-removed", rec, old=ra[rec].get("type")))
    for rec in rb.keys() - ra.keys():
        out.append(Difference("record-added", rec, new=rb[rec].get("type")))
    for rec in ra:
        if rec not in rb:
            continue
        x, y = ra[rec], rb[rec]
        for key in ("type", "family", "bulk"):
            if x.get(key) != y.get(key):
                out.append(Difference("record-changed", rec, item=key, old=x[key], new=y[key]))
        la, lb = x.get("layouts", {}), y.get("layouts", {})
        for role in la.keys() - lb.keys():
            out.append(Difference("layout-removed", rec, role, old=la[role]["size"]))
        for role in lb.keys() - la.keys():
            out.append(Difference("layout-added", rec, role, new=lb[role]["size"]))
        for role in la:
            if role not in lb:
                continue
            p, q = la[role], lb[role]
            if p["size"] != q["size"]:
                out.append(Difference("size-changed", rec, role, old=p["size"], new=q["size"]))
            if p.get("hvm_typecode") != q.get("hvm_typecode"):
                out.append(
                    Difference(
                        "record-changed",
                        rec,
                        role,
                        item="hvm_typecode",
                        old=p.get("hvm_typecode"),
                        new=q.get("hvm_typecode"),
                    )
                )
            out.extend(_field_diffs(rec, role, p, q))
    return sorted(out, key=lambda d: (d.record, d.path, d.kind))


def _schema_epoch(s: dict[str, Any]) -> Epoch | None:
    try:
        return epoch_of(*parse_epoch(str(s["epoch"])))
    except (KeyError, CallerError):
        return None


_FIELD_REPLACED = ("field-removed", "field-added")
_REPLACED: dict[str, tuple[str, str]] = {
    "field-moved": _FIELD_REPLACED,
    "field-resized": _FIELD_REPLACED,
    "field-retyped": _FIELD_REPLACED,
    "field-reserved-changed": _FIELD_REPLACED,
    "bounds-changed": _FIELD_REPLACED,
    "size-changed": ("layout-removed", "layout-added"),
}


def diff(a: SchemaLike, b: SchemaLike) -> list[Difference]:
    """Every difference from schema ``a`` to schema ``b``, each marked covered or not.

    ``a``/``b``: a schema dict, a schema file path, an epoch (its committed
    file) or ``"code:X.Y"`` (generated from the code). A difference is
    covered when a registered step of the chain between the two epochs
    (upgrade if ``a`` is older, rollback if newer) declares it; between two
    schemas of the same epoch nothing is covered.
    """
    from xenlu.host.compat import steps_between

    sa, sb = _as_schema(a), _as_schema(b)
    ea, eb = _schema_epoch(sa), _schema_epoch(sb)
    chain = steps_between(ea, eb) if ea is not None and eb is not None and ea != eb else []
    out = []
    for d in _raw_diff(sa, sb):
        by = [s.name for s in chain if s.covers_difference(d.record, d.path, d.kind)]
        if not by and d.kind in _REPLACED:
            # Across several steps a change may be "removed by one step, added
            # back by a later one" (LU_DOMAIN rsvd2: 76 in 4.16, gone in 4.17,
            # 84 from 4.19): covered when both steps are registered in order.
            removed, added = _REPLACED[d.kind]
            gone = [
                i for i, s in enumerate(chain) if s.covers_difference(d.record, d.path, removed)
            ]
            back = [i for i, s in enumerate(chain) if s.covers_difference(d.record, d.path, added)]
            if gone and back and min(gone) < max(back):
                by = [chain[min(gone)].name, chain[max(back)].name]
        out.append(
            Difference(
                d.kind, d.record, d.layout, d.field, d.item, d.old, d.new, ", ".join(by) or None
            )
        )
    return out


def uncovered(a: SchemaLike, b: SchemaLike) -> list[Difference]:
    """The differences from ``a`` to ``b`` that no registered step covers.

    >>> uncovered("code:4.14", "code:4.15")
    []
    """
    return [d for d in diff(a, b) if not d.covered]


def adjacent_pairs() -> Sequence[tuple[Epoch, Epoch]]:
    """Every pair of adjacent epochs, both directions."""
    up = list(itertools.pairwise(EPOCHS))
    return [*up, *((b, a) for a, b in up)]
