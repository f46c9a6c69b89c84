"""The conversion model: reports, the step table and helpers on the decoded model.

:mod:`xenlu.host.compat` is the public face; the steps live in
:mod:`xenlu.host._compat_steps`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, NoReturn

import numpy as np

from xenlu.core.epochs import EPOCHS, Epoch, EpochLike, as_epoch, fmt_epoch
from xenlu.core.errors import ConversionError
from xenlu.core.layout import FieldInfo
from xenlu.core.registry import Record
from xenlu.lu.host_records import LuVersion
from xenlu.lu.records import Bulk, T
from xenlu.lu.stream import GlobalSection, LUDomain, LUStream, X
from xenlu.migration.hvmctx import HvmContext, HvmEntry

__all__ = [
    "KINDS",
    "STEPS",
    "Cover",
    "Fill",
    "Loss",
    "Report",
    "Step",
    "StepFn",
    "StepLog",
    "StepResult",
    "bulk_map",
    "field_value",
    "inverse_kind",
    "map_hvm",
    "map_values",
    "new_fields",
    "new_stream",
    "register",
    "retype",
    "steps_between",
    "with_info",
]


#: Schema difference kinds a :class:`Cover` may name (see :mod:`xenlu.tools.schema`).
KINDS = (
    "record-added",
    "record-removed",
    "record-changed",
    "layout-added",
    "layout-removed",
    "size-changed",
    "field-added",
    "field-removed",
    "field-moved",
    "field-resized",
    "field-retyped",
    "field-reserved-changed",
    "flag-bit-added",
    "flag-bit-removed",
    "value-added",
    "value-removed",
    "bounds-changed",
)
_INVERSE = {
    "record-added": "record-removed",
    "layout-added": "layout-removed",
    "field-added": "field-removed",
    "flag-bit-added": "flag-bit-removed",
    "value-added": "value-removed",
}
_INVERSE.update({v: k for k, v in list(_INVERSE.items())})


def inverse_kind(kind: str) -> str:
    """The difference kind seen in the other direction (``field-added`` ↔ ``field-removed``).

    >>> inverse_kind("field-added"), inverse_kind("size-changed")
    ('field-removed', 'size-changed')
    """
    return _INVERSE.get(kind, kind)


# --- report -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fill:
    """A field the target layout has and the source lacked, filled by a §6 rule.

    ``field`` is a field name, a flag (``cdf_flags.iommu``), an HVM context
    entry field (``RTC.rtc_offset``, ``VIRIDIAN_VCPU[1].simp_msr``) or a bulk
    column (``fifo_lastq``; then ``value`` is the number of entries filled).
    """

    domid: int | None
    record: str
    field: str
    value: object
    rule: str
    step: str = ""


@dataclass(frozen=True, slots=True)
class Loss:
    """Information a lossy conversion (``allow_loss=True``) dropped or replaced."""

    domid: int | None
    record: str
    field: str
    value: object
    what: str
    step: str = ""


def _jsonable(v: object) -> object:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, np.generic):
        return v.item()
    return v


@dataclass
class Report:
    """What :func:`convert` did: the steps run, every fill and every loss.

    >>> r = Report("4.11", "4.12", "upgrade", ["4.11->4.12"], False, [], [])
    >>> r.to_json()["steps"], r.lossless
    (['4.11->4.12'], True)
    """

    source: str
    target: str
    direction: str  # "upgrade", "rollback" or "none"
    steps: list[str]
    allow_loss: bool
    fills: list[Fill] = field(default_factory=list)
    losses: list[Loss] = field(default_factory=list)

    @property
    def lossless(self) -> bool:
        """True when nothing was lost."""
        return not self.losses

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON data (``json.dumps`` works on it)."""
        return {
            "source": self.source,
            "target": self.target,
            "direction": self.direction,
            "steps": list(self.steps),
            "allow_loss": self.allow_loss,
            "fills": [
                {
                    "domid": f.domid,
                    "record": f.record,
                    "field": f.field,
                    "value": _jsonable(f.value),
                    "rule": f.rule,
                    "step": f.step,
                }
                for f in self.fills
            ],
            "losses": [
                {
                    "domid": x.domid,
                    "record": x.record,
                    "field": x.field,
                    "value": _jsonable(x.value),
                    "what": x.what,
                    "step": x.step,
                }
                for x in self.losses
            ],
        }

    def summary(self, max_lines: int = 30) -> str:
        """A short human summary: one line per (record, field, rule) group."""
        head = f"{self.direction} {self.source} -> {self.target}"
        if self.steps:
            head += f" via {', '.join(self.steps)}"
        doms = {f.domid for f in self.fills} | {x.domid for x in self.losses}
        lines = [
            head,
            f"{len(self.fills)} fills, {len(self.losses)} losses, in {len(doms)} domains",
        ]
        groups: dict[tuple[str, str, str, str], list[int | None]] = {}
        for f in self.fills:
            groups.setdefault(("fill", f.record, _stem(f.field), f.rule), []).append(f.domid)
        for x in self.losses:
            groups.setdefault(("LOSS", x.record, _stem(x.field), x.what), []).append(x.domid)
        for i, ((kind, rec, fld_, why), ds) in enumerate(groups.items()):
            if i == max_lines:
                lines.append(f"  … {len(groups) - max_lines} more groups (see --report)")
                break
            lines.append(f"  {kind} {rec}.{fld_} x{len(ds)} ({len(set(ds))} domains): {why}")
        return "\n".join(lines)


def _stem(path: str) -> str:
    # "VIRIDIAN_VCPU[3].sint_msr[2]" -> "VIRIDIAN_VCPU[*].sint_msr[*]"
    out, depth = [], 0
    for ch in path:
        if ch == "[":
            depth += 1
            out.append("[*")
        elif ch == "]":
            depth -= 1
            out.append("]")
        elif not depth:
            out.append(ch)
    return "".join(out)


# --- step table -----------------------------------------------------------------


@dataclass(frozen=True)
class Cover:
    """A schema difference a step handles: ``(record, path, kind)``.

    ``path`` is a field (``iommu_opts``), optionally qualified by its layout
    (``HVM_RTC:rtc_offset``), a flag bit or value (``cdf_flags.iommu``,
    ``access.r_pw``), or a layout name for ``size-changed``.
    """

    record: str
    path: str
    kind: str

    def inverse(self) -> Cover:
        """The same difference seen from the other side."""
        return Cover(self.record, self.path, inverse_kind(self.kind))


class StepResult(NamedTuple):
    """A step's output: the new stream and what it filled and lost."""

    stream: LUStream
    fills: tuple[Fill, ...]
    losses: tuple[Loss, ...]


#: A step function: a stream of the source epoch in, a new one of the target out.
StepFn = Callable[[LUStream, "StepLog"], LUStream]


@dataclass(frozen=True)
class Step:
    """One registered upgrade or rollback step between adjacent epochs."""

    name: str  # "4.12->4.13"
    source: Epoch
    target: Epoch
    direction: Literal["upgrade", "rollback"]
    func: StepFn
    covers: tuple[Cover, ...]
    doc: str

    def apply(self, stream: LUStream, allow_loss: bool = False) -> StepResult:
        """Run the step on ``stream`` (of epoch :attr:`source`); the input is not changed."""
        log = StepLog(self.name, allow_loss)
        out = self.func(stream, log)
        return StepResult(out, tuple(log.fills), tuple(log.losses))

    def covers_difference(self, record: str, path: str, kind: str) -> bool:
        """True when this step declares it handles ``(record, path, kind)``.

        An unqualified field path in a cover matches that field in any layout
        of the record; ``path`` may be qualified as ``layout:field[.item]``.
        """
        bare = path.split(":", 1)[1] if ":" in path else path
        for c in self.covers:
            if c.record == record and c.kind == kind and c.path in (path, bare):
                return True
        return False


#: (source epoch, target epoch) → the step; both directions for every adjacent pair.
STEPS: dict[tuple[Epoch, Epoch], Step] = {}


def step_name(a: Epoch, b: Epoch) -> str:
    return f"{fmt_epoch(a)}->{fmt_epoch(b)}"


def register(
    source: Epoch,
    target: Epoch,
    covers: Sequence[Cover],
    up: str,
    down: str,
    upgrade: StepFn,
    rollback: StepFn,
) -> None:
    """Register the upgrade and rollback of one epoch boundary.

    ``covers`` are given upgrade-wise; the rollback covers their inverses.
    """
    STEPS[(source, target)] = Step(
        step_name(source, target), source, target, "upgrade", upgrade, tuple(covers), up
    )
    STEPS[(target, source)] = Step(
        step_name(target, source),
        target,
        source,
        "rollback",
        rollback,
        tuple(c.inverse() for c in covers),
        down,
    )


def steps_between(source: EpochLike, target: EpochLike) -> list[Step]:
    """The chain of registered steps from the epoch of ``source`` to that of ``target``.

    >>> [s.name for s in steps_between((4, 13), "4.11")]
    ['4.13->4.12', '4.12->4.11']
    """
    i, j = EPOCHS.index(as_epoch(source)), EPOCHS.index(as_epoch(target))
    pairs = (
        [(EPOCHS[k], EPOCHS[k + 1]) for k in range(i, j)]
        if i <= j
        else [(EPOCHS[k], EPOCHS[k - 1]) for k in range(i, j, -1)]
    )
    return [STEPS[p] for p in pairs]


# --- per-step bookkeeping --------------------------------------------------------


class StepLog:
    """Fills and losses of one step run, and the refusal policy."""

    __slots__ = ("allow_loss", "fills", "losses", "step")

    def __init__(self, step: str, allow_loss: bool) -> None:
        self.step = step
        self.allow_loss = allow_loss
        self.fills: list[Fill] = []
        self.losses: list[Loss] = []

    def fill(self, domid: int | None, record: str, field: str, value: object, rule: str) -> None:
        self.fills.append(Fill(domid, record, field, value, rule, self.step))

    def lossy(
        self,
        domid: int | None,
        record: str,
        field: str,
        value: object,
        refusal: str,
        what: str,
    ) -> None:
        """Refuse (default) or, with ``allow_loss``, record the loss and go on."""
        if not self.allow_loss:
            self.refuse(domid, record, field, value, refusal)
        self.losses.append(Loss(domid, record, field, value, what, self.step))

    def refuse(
        self, domid: int | None, record: str, field: str, value: object, message: str
    ) -> NoReturn:
        raise ConversionError(
            message, domid=domid, record=record, field=field, value=value, step=self.step
        )


# --- helpers on the model ---------------------------------------------------------

_INIT_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _init_names(cls: type[Any]) -> tuple[str, ...]:
    try:
        return _INIT_NAMES[cls]
    except KeyError:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.init)
        _INIT_NAMES[cls] = names
        return names


def retype(info: Any, cls: type[Any], **values: Any) -> Any:
    """An LU_DOMAIN of layout ``cls`` with ``info``'s values for the fields both have."""
    kw = {n: getattr(info, n) for n in _init_names(cls) if n not in values}
    kw.update(values)
    return cls(**kw)


def with_info(d: LUDomain, info: Any) -> LUDomain:
    return LUDomain([Record(T.LU_DOMAIN, info), *d.records[1:]])


def new_stream(src: LUStream, version: Epoch, domains: list[LUDomain]) -> LUStream:
    """A new stream: ``src``'s global section with LU_VERSION = ``version``, and ``domains``."""
    ver = LuVersion(xen_major=version[0], xen_minor=version[1])
    recs = [
        Record(T.LU_VERSION, ver) if r.type == T.LU_VERSION else r
        for r in src.global_section.records
    ]
    return LUStream(GlobalSection(recs), domains)


def map_values(d: LUDomain, type_code: int, fn: Callable[[Any], Any]) -> LUDomain:
    """``d`` with ``fn`` applied to every record of ``type_code`` (None drops the record).

    Returns ``d`` itself when no value changed.
    """
    out: list[Record] = []
    changed = False
    for r in d.records:
        if r.type != type_code:
            out.append(r)
            continue
        v = fn(r.value)
        if v is r.value:
            out.append(r)
            continue
        changed = True
        if v is not None:
            out.append(Record(r.type, v))
    return LUDomain(out) if changed else d


def bulk_map(
    d: LUDomain, type_code: int, fn: Callable[[np.ndarray, int], np.ndarray | None]
) -> LUDomain:
    """Apply ``fn(entries, base)`` to every bulk record of ``type_code``.

    ``base`` is the index of the record's first entry among all the domain's
    entries of that type. ``fn`` returns the same array (record kept as is),
    a new array, or None / an empty array (record dropped: §1, an encoder
    never writes count 0). A record that had count 0 in the input keeps
    count 0 (spec amendment A2: it is written back as given, so a
    conversion and its inverse give the input back).
    """
    base = 0

    def one(value: Bulk) -> Bulk | None:
        nonlocal base
        arr = value.entries
        at = base
        base += len(arr)
        new = fn(arr, at)
        if new is arr:
            return value
        if new is None or (not len(new) and len(arr)):
            return None
        return Bulk(new)

    return map_values(d, type_code, one)


def new_fields(old: type[Any], new: type[Any]) -> tuple[FieldInfo, ...]:
    """The fields ``new`` adds after the common prefix of ``old`` (checked, not assumed)."""
    a, b = old.LAYOUT, new.LAYOUT
    for fa, fb in zip(a.fields, b.fields, strict=False):
        if (fa.name, fa.offset, fa.size, fa.kind) != (fb.name, fb.offset, fb.size, fb.kind):
            raise TypeError(f"{b.name} does not extend {a.name} at field {fa.name}")
    return tuple(f for f in b.fields if f.offset >= a.size)


def map_hvm(d: LUDomain, fn: Callable[[HvmEntry], HvmEntry | None]) -> LUDomain:
    """``d`` with ``fn`` applied to every HVM_CONTEXT entry (None keeps it unchanged)."""

    def ctx(value: HvmContext) -> HvmContext:
        ents = list(value.entries)
        changed = False
        for i, e in enumerate(ents):
            new = fn(e)
            if new is not None and new is not e:
                ents[i] = new
                changed = True
        return HvmContext(tuple(ents)) if changed else value

    return map_values(d, X.HVM_CONTEXT, ctx)


def _u64s(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<u8")


def field_value(fi: FieldInfo, data: bytes) -> list[tuple[str, int]]:
    """The non-zero parts of field ``fi`` in ``data``: [(suffix, value)]."""
    raw = data[fi.offset : fi.offset + fi.size]
    if fi.kind == "bytes":
        words = _u64s(raw)
        return [(f"[{k}]", int(words[k])) for k in np.flatnonzero(words)]
    v = int.from_bytes(raw, "little", signed=fi.kind == "int")
    return [("", v)] if v else []
