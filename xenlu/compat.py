"""Cross-version conversion of Live Update streams: upgrade and rollback (LU spec §3, §6).

Every adjacent pair of epochs (§3: 4.11 → 4.12 → 4.13 → 4.14 → 4.15 → 4.16 →
4.17 → 4.19 → 4.20 → 4.21) has one **upgrade step** and one **rollback step**.
A step is a small pure function on the decoded model: it takes an
:class:`~xenlu.lu_stream.LUStream` of its source epoch and returns a new
stream of its target epoch, never touching the input. What it filled and
what it lost go to the caller as :class:`Fill` and :class:`Loss` rows.

Each step is registered in :data:`STEPS` with the schema differences it
covers (:class:`Cover`, e.g. ``("LU_DOMAIN", "iommu_opts", "field-added")``);
:mod:`xenlu.schema` checks that every layout difference between two epochs
is covered by a registered step.

:func:`convert` composes the steps for any pair of supported versions. The
target may be a version that is not an epoch (4.18): the steps run to its
epoch (4.17) and LU_VERSION gets the exact target version.

Rules (§6 table; each step cites its row):

* a field the target has and the source lacks is filled by its rule and
  reported;
* a rollback is refused with a :class:`~xenlu.errors.ConversionError` naming
  domain, record, field and value where the older layout cannot say the same
  thing, unless ``allow_loss``: then the field is dropped, a value the older
  layout cannot hold becomes the upgrade fill, a flag bit the older epoch
  lacks is cleared, and every loss is reported;
* LU_P2M access 10 (``r_pw``) is refused even with ``allow_loss``;
* a channel bound to VIRQ 11 is refused across 4.11 ↔ 4.12 both ways (with
  ``allow_loss`` it is dropped and reported).

Bulk arrays whose layout does not change are passed through as the same
objects; arrays that change (LU_EVTCHNS at 4.15, EXTRA cleared on rollback)
are converted with vectorised numpy.

Example::

    >>> from xenlu.hostgen import make_host
    >>> new, report = convert(make_host((4, 11), n_hvm=1, mem_mib=4), to=(4, 15))
    >>> new.xen_version, report.lossless
    ('4.15', True)
    >>> sorted({f.field for f in report.fills if f.record == "LU_DOMAIN"})[:3]
    ['cdf_flags.iommu', 'cdf_flags.nested_virt', 'iommu_opts']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, NoReturn

import numpy as np

import xenlu.libxc  # noqa: F401  (registers HVM_CONTEXT and the other libxc records)
from xenlu.epochs import EPOCHS, Epoch, EpochLike, as_epoch, as_version, epoch_of, fmt_epoch
from xenlu.errors import CallerError, ConversionError
from xenlu.hvmctx import (
    TC_RTC,
    TC_VIRIDIAN_VCPU,
    HvmContext,
    HvmEntry,
    HvmRtc411,
    HvmRtc414,
    ViridianVcpu411,
    ViridianVcpu413,
)
from xenlu.layout import FieldInfo
from xenlu.lu_records import (
    CDF_IOMMU,
    CDF_NESTED_VIRT,
    CDF_VPMU,
    ECS_VIRQ,
    LU_DOMAIN_LAYOUTS,
    LU_STATE_IOMMU,
    Bulk,
    EvtchnEntry411,
    EvtchnEntry415,
    LuDomain411,
    LuDomain413,
    LuDomain415,
    LuDomain416,
    LuDomain417,
    LuDomain419,
    LuDomain421,
    LuHostInfo,
    LuVersion,
    T,
)
from xenlu.lu_stream import GlobalSection, LUDomain, LUStream, X
from xenlu.registry import Record

__all__ = [
    "KINDS",
    "STEPS",
    "Cover",
    "Fill",
    "Loss",
    "Report",
    "Step",
    "StepResult",
    "convert",
    "inverse_kind",
    "steps_between",
]

#: Schema difference kinds a :class:`Cover` may name (see :mod:`xenlu.schema`).
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
StepFn = Callable[[LUStream, "_Log"], LUStream]


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
        log = _Log(self.name, allow_loss)
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


def _step_name(a: Epoch, b: Epoch) -> str:
    return f"{fmt_epoch(a)}->{fmt_epoch(b)}"


def _register(
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
        _step_name(source, target), source, target, "upgrade", upgrade, tuple(covers), up
    )
    STEPS[(target, source)] = Step(
        _step_name(target, source),
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


class _Log:
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


def _retype(info: Any, cls: type[Any], **values: Any) -> Any:
    """An LU_DOMAIN of layout ``cls`` with ``info``'s values for the fields both have."""
    kw = {n: getattr(info, n) for n in _init_names(cls) if n not in values}
    kw.update(values)
    return cls(**kw)


def _with_info(d: LUDomain, info: Any) -> LUDomain:
    return LUDomain([Record(T.LU_DOMAIN, info), *d.records[1:]])


def _stream(src: LUStream, version: Epoch, domains: list[LUDomain]) -> LUStream:
    """A new stream: ``src``'s global section with LU_VERSION = ``version``, and ``domains``."""
    ver = LuVersion(xen_major=version[0], xen_minor=version[1])
    recs = [
        Record(T.LU_VERSION, ver) if r.type == T.LU_VERSION else r
        for r in src.global_section.records
    ]
    return LUStream(GlobalSection(recs), domains)


def _map_values(d: LUDomain, type_code: int, fn: Callable[[Any], Any]) -> LUDomain:
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


def _bulk_map(
    d: LUDomain, type_code: int, fn: Callable[[np.ndarray, int], np.ndarray | None]
) -> LUDomain:
    """Apply ``fn(entries, base)`` to every bulk record of ``type_code``.

    ``base`` is the index of the record's first entry among all the domain's
    entries of that type. ``fn`` returns the same array (record kept as is),
    a new array, or None / an empty array (record dropped: §1, an encoder
    never writes count 0).
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
        if new is None or not len(new):
            return None
        return Bulk(new)

    return _map_values(d, type_code, one)


def _effective_limits(host: LuHostInfo) -> tuple[int, int]:
    # §4.6: the effective limits of a negative value are LU_HOST_INFO's host
    # defaults; where those are 0 (unknown), Xen's defaults 64 / 1024.
    return (host.gnttab_max_frames or 64, host.gnttab_max_maptrack_frames or 1024)


def _host_grant_version(host: LuHostInfo) -> int:
    # §4.2 / §6: gnttab_max_version 0 means unknown, i.e. 2.
    return host.gnttab_max_version or 2


def _nr_altp2m_for(altp2m_opts: int) -> int:
    # §6 (4.21 row): 10, the fixed count before 4.21, when the mode (bits 0-1) is not off.
    return 10 if altp2m_opts & 3 else 0


I32_MAX = 2**31 - 1
EXTRA = 1 << 2  # LU_PAGE_OWNERSHIP flag bit 2 (§4.8), valid from 4.14
VIRQ_ARGO = 11  # §3 / §4.13: reserved in 4.11, ARGO from 4.12
R_PW = 10  # LU_P2M access 10 (§4.7), valid from 4.20


def _new_fields(old: type[Any], new: type[Any]) -> tuple[FieldInfo, ...]:
    """The fields ``new`` adds after the common prefix of ``old`` (checked, not assumed)."""
    a, b = old.LAYOUT, new.LAYOUT
    for fa, fb in zip(a.fields, b.fields, strict=False):
        if (fa.name, fa.offset, fa.size, fa.kind) != (fb.name, fb.offset, fb.size, fb.kind):
            raise TypeError(f"{b.name} does not extend {a.name} at field {fa.name}")
    return tuple(f for f in b.fields if f.offset >= a.size)


# HVM_CONTEXT entries that grow (reference §4.2): the new fields follow the old
# layout unchanged, so upgrade appends zeros and rollback truncates.
_VIR_OLD, _VIR_NEW = ViridianVcpu411.LAYOUT.size, ViridianVcpu413.LAYOUT.size
_VIR_FIELDS = _new_fields(ViridianVcpu411, ViridianVcpu413)
_RTC_OLD, _RTC_NEW = HvmRtc411.LAYOUT.size, HvmRtc414.LAYOUT.size
_RTC_FIELDS = _new_fields(HvmRtc411, HvmRtc414)
assert [f.name for f in _RTC_FIELDS] == ["rtc_offset"]


def _map_hvm(d: LUDomain, fn: Callable[[HvmEntry], HvmEntry | None]) -> LUDomain:
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

    return _map_values(d, X.HVM_CONTEXT, ctx)


def _u64s(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<u8")


def _field_value(fi: FieldInfo, data: bytes) -> list[tuple[str, int]]:
    """The non-zero parts of field ``fi`` in ``data``: [(suffix, value)]."""
    raw = data[fi.offset : fi.offset + fi.size]
    if fi.kind == "bytes":
        words = _u64s(raw)
        return [(f"[{k}]", int(words[k])) for k in np.flatnonzero(words)]
    v = int.from_bytes(raw, "little", signed=fi.kind == "int")
    return [("", v)] if v else []


def _check_same_layouts(stream: LUStream) -> None:
    want = LU_DOMAIN_LAYOUTS[stream.epoch]
    for d in stream.domains:
        if type(d.info) is not want:
            raise CallerError(
                f"domain {d.domid}: LU_DOMAIN is {type(d.info).__name__}, but a "
                f"Xen {stream.xen_version} stream needs {want.__name__}"
            )


# --- the steps ----------------------------------------------------------------------

_D, _E, _H, _O, _P = "LU_DOMAIN", "LU_EVTCHNS", "HVM_CONTEXT", "LU_PAGE_OWNERSHIP", "LU_P2M"
_ZERO = "new field: 0 (§6)"


# 4.11 <-> 4.12 — §3: VIRQ 11 becomes ARGO (was reserved). §6 last row: a
# channel binding it is refused both ways; with accepted loss it is dropped.
def _virq11(stream: LUStream, log: _Log, target: Epoch) -> LUStream:
    was, now = ("reserved", "ARGO") if target > stream.epoch else ("ARGO", "reserved")
    doms = []
    for d in stream.domains:
        domid = d.domid

        def drop(arr: np.ndarray, base: int, domid: int = domid) -> np.ndarray:
            hit = (arr["state"] == ECS_VIRQ) & (arr["detail"] == VIRQ_ARGO)
            if not hit.any():
                return arr
            for i in np.flatnonzero(hit):
                log.lossy(
                    domid,
                    _E,
                    f"entries[{base + int(i)}].detail",
                    VIRQ_ARGO,
                    f"event channel port {int(arr['port'][i])} binds VIRQ 11, {was} in "
                    f"Xen {fmt_epoch(stream.epoch)} and {now} in {fmt_epoch(target)}: "
                    "its meaning differs between the epochs (§6)",
                    f"channel port {int(arr['port'][i])} (VIRQ 11) dropped",
                )
            kept: np.ndarray = arr[~hit]
            return kept

        doms.append(_bulk_map(d, T.LU_EVTCHNS, drop))
    return _stream(stream, target, doms)


def _up_4_12(stream: LUStream, log: _Log) -> LUStream:
    return _virq11(stream, log, (4, 12))


def _down_4_11(stream: LUStream, log: _Log) -> LUStream:
    return _virq11(stream, log, (4, 11))


_register(
    (4, 11),
    (4, 12),
    (),  # no layout change: VIRQ 11 is a change of meaning, checked by the steps
    "VIRQ 11 reserved → ARGO: a channel binding it is refused (allow_loss: dropped)",
    "VIRQ 11 ARGO → reserved: a channel binding it is refused (allow_loss: dropped)",
    _up_4_12,
    _down_4_11,
)


# 4.12 <-> 4.13 — §6 rows: grant limits u32 → i32; CDF bit 5 iommu ↔ lu_state
# bit 3; iommu_opts; HVM_CONTEXT VIRIDIAN_VCPU 16 → 216 bytes.
def _up_4_13(stream: LUStream, log: _Log) -> LUStream:
    doms = []
    for d in stream.domains:
        i, domid = d.info, d.domid
        limits = {}
        for name in ("max_grant_frames", "max_maptrack_frames"):
            v = getattr(i, name)
            if v > I32_MAX:
                # §6: a u32 above 2^31-1 is refused; with accepted loss -1 (host default).
                log.lossy(
                    domid,
                    _D,
                    name,
                    v,
                    "grant limit above 2^31-1 does not fit the i32 of Xen 4.13 (§6)",
                    "replaced by -1, the host default",
                )
                v = -1
            limits[name] = v
        iommu = i.lu_state & LU_STATE_IOMMU
        # §6: the iommu bit moves from lu_state bit 3 into CDF bit 5.
        log.fill(domid, _D, "cdf_flags.iommu", int(bool(iommu)), "moved from lu_state bit 3 (§6)")
        log.fill(domid, _D, "iommu_opts", 0, _ZERO)
        info = _retype(
            i,
            LuDomain413,
            cdf_flags=i.cdf_flags | (CDF_IOMMU if iommu else 0),
            lu_state=i.lu_state & ~LU_STATE_IOMMU,
            iommu_opts=0,
            **limits,
        )
        new = _with_info(d, info)
        if d.is_hvm:

            def grow(e: HvmEntry, domid: int = domid) -> HvmEntry | None:
                if e.typecode != TC_VIRIDIAN_VCPU:
                    return None
                _expect_size(e, _VIR_OLD, domid, log)
                # §6: new MSR fields 0.
                for fi in _VIR_FIELDS:
                    log.fill(domid, _H, f"VIRIDIAN_VCPU[{e.instance}].{fi.name}", 0, _ZERO)
                return HvmEntry(e.typecode, e.instance, e.data + bytes(_VIR_NEW - _VIR_OLD))

            new = _map_hvm(new, grow)
        doms.append(new)
    return _stream(stream, (4, 13), doms)


def _expect_size(e: HvmEntry, size: int, domid: int, log: _Log) -> None:
    if len(e.data) != size:
        raise CallerError(
            f"step {log.step}: domain {domid}: HVM_CONTEXT {e.name} entry of vCPU "
            f"{e.instance} is {len(e.data)} bytes, not {size}: not a valid stream"
        )


def _down_4_12(stream: LUStream, log: _Log) -> LUStream:
    frames, maptrack = _effective_limits(stream.host)
    defaults = {"max_grant_frames": frames, "max_maptrack_frames": maptrack}
    doms = []
    for d in stream.domains:
        i, domid = d.info, d.domid
        limits = {}
        for name, eff in defaults.items():
            v = getattr(i, name)
            if v < 0:
                # §6: always lossless: a negative value becomes the effective limit (§4.6).
                log.fill(
                    domid,
                    _D,
                    name,
                    eff,
                    "negative (host default) → effective limit: LU_HOST_INFO default, "
                    "64 / 1024 where 0 (§4.6, §6)",
                )
                v = eff
            limits[name] = v
        iommu = i.cdf_flags & CDF_IOMMU
        # §6: CDF bit 5 moves back to lu_state bit 3.
        log.fill(domid, _D, "lu_state.iommu", int(bool(iommu)), "moved from cdf_flags bit 5 (§6)")
        if i.iommu_opts:
            log.lossy(
                domid,
                _D,
                "iommu_opts",
                i.iommu_opts,
                "iommu_opts is not 0 and Xen 4.12 has no such field (§6)",
                "iommu_opts dropped",
            )
        info = _retype(
            i,
            LuDomain411,
            cdf_flags=i.cdf_flags & ~CDF_IOMMU,
            lu_state=i.lu_state | (LU_STATE_IOMMU if iommu else 0),
            **limits,
        )
        new = _with_info(d, info)
        if d.is_hvm:

            def shrink(e: HvmEntry, domid: int = domid) -> HvmEntry | None:
                if e.typecode != TC_VIRIDIAN_VCPU:
                    return None
                _expect_size(e, _VIR_NEW, domid, log)
                # §6: lossless iff every new field is 0.
                for fi in _VIR_FIELDS:
                    for suffix, v in _field_value(fi, e.data):
                        log.lossy(
                            domid,
                            _H,
                            f"VIRIDIAN_VCPU[{e.instance}].{fi.name}{suffix}",
                            v,
                            "VIRIDIAN_VCPU cannot shrink to the 16 bytes of Xen 4.12: "
                            "a 4.13 MSR field is not 0 (§6)",
                            "MSR value dropped",
                        )
                return HvmEntry(e.typecode, e.instance, e.data[:_VIR_OLD])

            new = _map_hvm(new, shrink)
        doms.append(new)
    return _stream(stream, (4, 12), doms)


_register(
    (4, 12),
    (4, 13),
    (
        Cover(_D, "LU_DOMAIN", "size-changed"),
        Cover(_D, "max_grant_frames", "field-retyped"),
        Cover(_D, "max_maptrack_frames", "field-retyped"),
        Cover(_D, "cdf_flags.iommu", "flag-bit-added"),
        Cover(_D, "lu_state.iommu", "flag-bit-removed"),
        Cover(_D, "iommu_opts", "field-added"),
        Cover(_D, "rsvd1", "field-added"),
        Cover(_H, "HVM_VIRIDIAN_VCPU", "size-changed"),
        *(Cover(_H, f"HVM_VIRIDIAN_VCPU:{f.name}", "field-added") for f in _VIR_FIELDS),
    ),
    "grant limits u32 → i32 (> 2^31-1 refused); lu_state.iommu → cdf_flags.iommu; "
    "iommu_opts 0; VIRIDIAN_VCPU 16 → 216 bytes, new MSRs 0",
    "grant limits i32 → u32 (negative → effective limit); cdf_flags.iommu → lu_state.iommu; "
    "iommu_opts must be 0; VIRIDIAN_VCPU 216 → 16 bytes iff the new MSRs are 0",
    _up_4_13,
    _down_4_12,
)


# 4.13 <-> 4.14 — §6 rows: HVM_CONTEXT RTC 16 → 24 bytes (rtc_offset);
# LU_PAGE_OWNERSHIP flag EXTRA. LU layouts as 4.13.
def _up_4_14(stream: LUStream, log: _Log) -> LUStream:
    doms = []
    for d in stream.domains:
        if d.is_hvm:
            domid = d.domid

            def grow(e: HvmEntry, domid: int = domid) -> HvmEntry | None:
                if e.typecode != TC_RTC:
                    return None
                _expect_size(e, _RTC_OLD, domid, log)
                log.fill(domid, _H, "RTC.rtc_offset", 0, "new field: rtc_offset = 0 (§6)")
                return HvmEntry(e.typecode, e.instance, e.data + bytes(_RTC_NEW - _RTC_OLD))

            d = _map_hvm(d, grow)
        # §6: EXTRA upgrade fill is "clear": no 4.13 extent can have it, nothing to do.
        doms.append(d)
    return _stream(stream, (4, 14), doms)


def _down_4_13(stream: LUStream, log: _Log) -> LUStream:
    doms = []
    for d in stream.domains:
        domid = d.domid
        if d.is_hvm:

            def shrink(e: HvmEntry, domid: int = domid) -> HvmEntry | None:
                if e.typecode != TC_RTC:
                    return None
                _expect_size(e, _RTC_NEW, domid, log)
                # §6: lossless iff rtc_offset == 0.
                for fi in _RTC_FIELDS:
                    for suffix, v in _field_value(fi, e.data):
                        log.lossy(
                            domid,
                            _H,
                            f"RTC.{fi.name}{suffix}",
                            v,
                            "RTC rtc_offset is not 0 and Xen 4.13 has 16-byte RTC entries (§6)",
                            "rtc_offset dropped",
                        )
                return HvmEntry(e.typecode, e.instance, e.data[:_RTC_OLD])

            d = _map_hvm(d, shrink)

        def clear_extra(arr: np.ndarray, base: int, domid: int = domid) -> np.ndarray:
            # §6: lossless iff EXTRA is clear on every extent (vectorised check).
            hit = (arr["flags"] & EXTRA) != 0
            if not hit.any():
                return arr
            first = int(np.argmax(hit))
            n = int(np.count_nonzero(hit))
            log.lossy(
                domid,
                _O,
                f"entries[{base + first}].flags",
                int(arr["flags"][first]),
                f"flag EXTRA (PGC_extra) is set on {n} extents and is not valid before "
                "Xen 4.14 (§6)",
                f"flag EXTRA cleared on {n} extents",
            )
            out = arr.copy()
            out["flags"] &= np.uint32(~EXTRA & 0xFFFFFFFF)
            return out

        doms.append(_bulk_map(d, T.LU_PAGE_OWNERSHIP, clear_extra))
    return _stream(stream, (4, 13), doms)


_register(
    (4, 13),
    (4, 14),
    (
        Cover(_H, "HVM_RTC", "size-changed"),
        *(Cover(_H, f"HVM_RTC:{f.name}", "field-added") for f in _RTC_FIELDS),
        Cover(_O, "flags.extra", "flag-bit-added"),
    ),
    "RTC 16 → 24 bytes, rtc_offset 0; LU_PAGE_OWNERSHIP flag EXTRA becomes valid",
    "RTC 24 → 16 bytes iff rtc_offset is 0; EXTRA must be clear (allow_loss: cleared)",
    _up_4_14,
    _down_4_13,
)


# 4.14 <-> 4.15 — §6 rows: vmtrace_size, misc_flags, CDF bit 6; LU_EVTCHNS
# last_priority / last_vcpu ↔ fifo_lastq (§4.13 packing).
_EV_OLD, _EV_NEW = EvtchnEntry411.LAYOUT, EvtchnEntry415.LAYOUT
assert _EV_OLD.size == _EV_NEW.size == 24
assert [(f.name, f.offset) for f in _EV_OLD.fields[:8]] == [
    (f.name, f.offset) for f in _EV_NEW.fields[:8]
]
assert _EV_OLD.field("last_priority").offset == 16 and _EV_OLD.field("last_vcpu").offset == 18
assert _EV_NEW.field("fifo_lastq").offset == 16
_U16, _U8, _SH16, _SH24 = np.uint64(0xFFFF), np.uint64(0xFF), np.uint64(16), np.uint64(24)


def _words(arr: np.ndarray) -> np.ndarray:
    """The entries as a writable (n, 3) array of u64 words (one copy)."""
    raw: np.ndarray = np.ascontiguousarray(arr).view("<u8").reshape(len(arr), 3).copy()
    return raw


def _pack_lastq(arr: np.ndarray) -> np.ndarray:
    # §4.13: word 2 of a 4.11 entry is last_priority | last_vcpu << 16 (rsvd
    # zero); fifo_lastq is last_vcpu | last_priority << 16, then u32 rsvd.
    w = _words(arr)
    x = w[:, 2]
    w[:, 2] = ((x >> _SH16) & _U16) | ((x & _U8) << _SH16)
    out: np.ndarray = w.reshape(-1).view(_EV_NEW.dtype)
    return out


def _unpack_lastq(arr: np.ndarray) -> np.ndarray:
    w = _words(arr)
    y = w[:, 2]
    w[:, 2] = ((y >> _SH16) & _U8) | ((y & _U16) << _SH16)
    out: np.ndarray = w.reshape(-1).view(_EV_OLD.dtype)
    return out


def _up_4_15(stream: LUStream, log: _Log) -> LUStream:
    doms = []
    for d in stream.domains:
        i, domid = d.info, d.domid
        for name in ("vmtrace_size", "misc_flags", "cdf_flags.nested_virt"):
            log.fill(domid, _D, name, 0, _ZERO)
        new = _with_info(d, _retype(i, LuDomain415, vmtrace_size=0, misc_flags=0))

        def pack(arr: np.ndarray, base: int, domid: int = domid) -> np.ndarray:
            log.fill(
                domid,
                _E,
                "fifo_lastq",
                len(arr),
                "packed: last_vcpu | last_priority << 16 for every entry (§4.13, §6)",
            )
            return _pack_lastq(arr)

        doms.append(_bulk_map(new, T.LU_EVTCHNS, pack))
    return _stream(stream, (4, 15), doms)


def _down_4_14(stream: LUStream, log: _Log) -> LUStream:
    doms = []
    for d in stream.domains:
        i, domid = d.info, d.domid
        # §6: lossless iff vmtrace_size, misc_flags and CDF bit 6 are 0.
        for name in ("vmtrace_size", "misc_flags"):
            v = getattr(i, name)
            if v:
                log.lossy(
                    domid,
                    _D,
                    name,
                    v,
                    f"{name} is not 0 and Xen 4.14 has no such field (§6)",
                    f"{name} dropped",
                )
        if i.cdf_flags & CDF_NESTED_VIRT:
            log.lossy(
                domid,
                _D,
                "cdf_flags.nested_virt",
                i.cdf_flags,
                "CDF bit 6 (nested_virt) is set and is not valid before Xen 4.15 (§6)",
                "CDF bit 6 nested_virt cleared",
            )
        info = _retype(i, LuDomain413, cdf_flags=i.cdf_flags & ~CDF_NESTED_VIRT)
        new = _with_info(d, info)

        def unpack(arr: np.ndarray, base: int, domid: int = domid) -> np.ndarray:
            # §6: always lossless; bits 24-31 are zero in any valid stream (§4.13).
            high = (arr["fifo_lastq"] >> np.uint32(24)) != 0
            if high.any():
                k = int(np.argmax(high))
                log.lossy(
                    domid,
                    _E,
                    f"entries[{base + k}].fifo_lastq",
                    int(arr["fifo_lastq"][k]),
                    "fifo_lastq bits 24-31 are not zero (§4.13)",
                    "fifo_lastq bits 24-31 dropped",
                )
            return _unpack_lastq(arr)

        doms.append(_bulk_map(new, T.LU_EVTCHNS, unpack))
    return _stream(stream, (4, 14), doms)


_register(
    (4, 14),
    (4, 15),
    (
        Cover(_D, "LU_DOMAIN", "size-changed"),
        Cover(_D, "vmtrace_size", "field-added"),
        Cover(_D, "misc_flags", "field-added"),
        Cover(_D, "cdf_flags.nested_virt", "flag-bit-added"),
        Cover(_E, "last_priority", "field-removed"),
        Cover(_E, "rsvd0", "field-removed"),
        Cover(_E, "last_vcpu", "field-removed"),
        Cover(_E, "fifo_lastq", "field-added"),
    ),
    "vmtrace_size, misc_flags, CDF bit 6 = 0; LU_EVTCHNS last_priority/last_vcpu → fifo_lastq",
    "vmtrace_size, misc_flags, CDF bit 6 must be 0; fifo_lastq → last_priority/last_vcpu",
    _up_4_15,
    _down_4_14,
)


# 4.15 <-> 4.16 — §6 rows: grant_opts derived from LU_HOST_INFO
# gnttab_max_version (2 where 0); CDF bit 7 vpmu.
def _up_4_16(stream: LUStream, log: _Log) -> LUStream:
    gv = _host_grant_version(stream.host)
    doms = []
    for d in stream.domains:
        log.fill(
            d.domid,
            _D,
            "grant_opts",
            gv,
            "derived: LU_HOST_INFO gnttab_max_version, 2 where 0 (§6)",
        )
        log.fill(d.domid, _D, "cdf_flags.vpmu", 0, _ZERO)
        doms.append(_with_info(d, _retype(d.info, LuDomain416, grant_opts=gv)))
    return _stream(stream, (4, 16), doms)


def _down_4_15(stream: LUStream, log: _Log) -> LUStream:
    gv = _host_grant_version(stream.host)
    doms = []
    for d in stream.domains:
        i, domid = d.info, d.domid
        # §6: lossless iff grant_opts equals the host-derived value.
        if i.grant_opts != gv:
            log.lossy(
                domid,
                _D,
                "grant_opts",
                i.grant_opts,
                f"grant_opts differs from the value derived from LU_HOST_INFO "
                f"gnttab_max_version ({gv}); Xen 4.15 cannot say it (§6)",
                f"grant_opts dropped (4.15 implies {gv})",
            )
        if i.cdf_flags & CDF_VPMU:
            log.lossy(
                domid,
                _D,
                "cdf_flags.vpmu",
                i.cdf_flags,
                "CDF bit 7 (vpmu) is set and is not valid before Xen 4.16 (§6)",
                "CDF bit 7 vpmu cleared",
            )
        doms.append(_with_info(d, _retype(i, LuDomain415, cdf_flags=i.cdf_flags & ~CDF_VPMU)))
    return _stream(stream, (4, 15), doms)


_register(
    (4, 15),
    (4, 16),
    (
        Cover(_D, "LU_DOMAIN", "size-changed"),
        Cover(_D, "grant_opts", "field-added"),
        Cover(_D, "rsvd2", "field-added"),
        Cover(_D, "cdf_flags.vpmu", "flag-bit-added"),
    ),
    "grant_opts derived from LU_HOST_INFO gnttab_max_version (2 where 0); CDF bit 7 = 0",
    "grant_opts must equal the host-derived value; CDF bit 7 vpmu must be clear",
    _up_4_16,
    _down_4_15,
)


# 4.16 <-> 4.17 — §6 row: cpupool_id (offset 76, reserved in 4.16).
def _up_4_17(stream: LUStream, log: _Log) -> LUStream:
    doms = []
    for d in stream.domains:
        log.fill(d.domid, _D, "cpupool_id", 0, "new field: 0, Pool-0 (§6)")
        doms.append(_with_info(d, _retype(d.info, LuDomain417, cpupool_id=0)))
    return _stream(stream, (4, 17), doms)


def _down_4_16(stream: LUStream, log: _Log) -> LUStream:
    doms = []
    for d in stream.domains:
        if d.info.cpupool_id:
            log.lossy(
                d.domid,
                _D,
                "cpupool_id",
                d.info.cpupool_id,
                "cpupool_id is not 0 (Pool-0) and Xen 4.16 has no such field (§6)",
                "cpupool_id dropped",
            )
        doms.append(_with_info(d, _retype(d.info, LuDomain416)))
    return _stream(stream, (4, 16), doms)


_register(
    (4, 16),
    (4, 17),
    (Cover(_D, "cpupool_id", "field-added"), Cover(_D, "rsvd2", "field-removed")),
    "cpupool_id = 0 (Pool-0)",
    "cpupool_id must be 0",
    _up_4_17,
    _down_4_16,
)


# 4.17 <-> 4.19 — §6 row: altp2m_opts (u32).
def _up_4_19(stream: LUStream, log: _Log) -> LUStream:
    doms = []
    for d in stream.domains:
        log.fill(d.domid, _D, "altp2m_opts", 0, _ZERO)
        doms.append(_with_info(d, _retype(d.info, LuDomain419, altp2m_opts=0)))
    return _stream(stream, (4, 19), doms)


def _down_4_17(stream: LUStream, log: _Log) -> LUStream:
    doms = []
    for d in stream.domains:
        if d.info.altp2m_opts:
            log.lossy(
                d.domid,
                _D,
                "altp2m_opts",
                d.info.altp2m_opts,
                "altp2m_opts is not 0 and Xen 4.17 has no such field (§6)",
                "altp2m_opts dropped",
            )
        doms.append(_with_info(d, _retype(d.info, LuDomain417)))
    return _stream(stream, (4, 17), doms)


_register(
    (4, 17),
    (4, 19),
    (
        Cover(_D, "LU_DOMAIN", "size-changed"),
        Cover(_D, "altp2m_opts", "field-added"),
        Cover(_D, "rsvd2", "field-added"),
    ),
    "altp2m_opts = 0",
    "altp2m_opts must be 0",
    _up_4_19,
    _down_4_17,
)


# 4.19 <-> 4.20 — §6 row: LU_P2M access 10 r_pw. Upgrade: nothing to fill.
# Rollback: refused where an extent uses it, even with accepted loss ("never").
def _up_4_20(stream: LUStream, log: _Log) -> LUStream:
    return _stream(stream, (4, 20), list(stream.domains))


def _down_4_19(stream: LUStream, log: _Log) -> LUStream:
    for d in stream.domains:
        base = 0
        for arr in d.chunks(T.LU_P2M):
            hit = arr["access"] == R_PW
            if hit.any():
                k = int(np.argmax(hit))
                log.refuse(
                    d.domid,
                    _P,
                    f"entries[{base + k}].access",
                    R_PW,
                    f"P2M access 10 (r_pw) at gfn {int(arr['gfn'][k]):#x} has no equivalent "
                    "before Xen 4.20; refused even with allow_loss (§6)",
                )
            base += len(arr)
    return _stream(stream, (4, 19), list(stream.domains))


_register(
    (4, 19),
    (4, 20),
    (Cover(_P, "access.r_pw", "value-added"),),
    "LU_P2M access 10 (r_pw) becomes valid",
    "refused if any LU_P2M extent uses access 10 (r_pw), even with allow_loss",
    _up_4_20,
    _down_4_19,
)


# 4.20 <-> 4.21 — §6 row: altp2m_opts u32 → {u16 altp2m_opts; u16 nr_altp2m},
# nr_altp2m derived: 10 when the altp2m mode is not off, else 0.
def _up_4_21(stream: LUStream, log: _Log) -> LUStream:
    doms = []
    for d in stream.domains:
        nr = _nr_altp2m_for(d.info.altp2m_opts)
        log.fill(
            d.domid,
            _D,
            "nr_altp2m",
            nr,
            "derived: 10 (the fixed count before 4.21) when the altp2m mode is not off, "
            "else 0 (§6)",
        )
        doms.append(_with_info(d, _retype(d.info, LuDomain421, nr_altp2m=nr)))
    return _stream(stream, (4, 21), doms)


def _down_4_20(stream: LUStream, log: _Log) -> LUStream:
    doms = []
    for d in stream.domains:
        i = d.info
        want = _nr_altp2m_for(i.altp2m_opts)
        if i.nr_altp2m != want:
            log.lossy(
                d.domid,
                _D,
                "nr_altp2m",
                i.nr_altp2m,
                f"nr_altp2m differs from the fixed count of Xen 4.20 ({want}) (§6)",
                f"nr_altp2m dropped (4.20 implies {want})",
            )
        doms.append(_with_info(d, _retype(i, LuDomain419)))
    return _stream(stream, (4, 20), doms)


_register(
    (4, 20),
    (4, 21),
    (Cover(_D, "altp2m_opts", "field-resized"), Cover(_D, "nr_altp2m", "field-added")),
    "altp2m_opts u32 → u16; nr_altp2m derived: 10 when the altp2m mode is on, else 0",
    "nr_altp2m must equal 10 when the altp2m mode is on, else 0",
    _up_4_21,
    _down_4_20,
)

assert len(STEPS) == 2 * (len(EPOCHS) - 1)
assert {LuDomain411, LuDomain413, LuDomain415, LuDomain416, LuDomain417, LuDomain419} | {
    LuDomain421
} == set(LU_DOMAIN_LAYOUTS.values())


# --- convert --------------------------------------------------------------------------


def convert(
    stream: LUStream, to: EpochLike, *, allow_loss: bool = False
) -> tuple[LUStream, Report]:
    """Upgrade or roll back ``stream`` to Xen version ``to`` (LU spec §3, §6).

    Runs one registered step per epoch boundary crossed, then sets LU_VERSION
    to exactly ``to`` (which may lie inside an epoch, e.g. 4.18). The input
    is never modified; unchanged bulk arrays are shared with it.

    Raises :class:`~xenlu.errors.ConversionError` (naming step, domain,
    record, field and value) where a rollback would lose information, unless
    ``allow_loss``; an LU_P2M ``r_pw`` rollback is refused even then.

    >>> from xenlu.hostgen import make_host
    >>> up, rep = convert(make_host((4, 11), n_hvm=1, mem_mib=4), "4.18")
    >>> up.xen_version, rep.steps[-1]
    ('4.18', '4.16->4.17')
    >>> down, rep = convert(up, (4, 11))
    >>> rep.direction, rep.lossless
    ('rollback', True)
    """
    from xenlu.api import expect_format

    expect_format(stream, "lu", "convert")
    target = as_version(to)
    source = stream.version
    _check_same_layouts(stream)
    chain = steps_between(stream.epoch, epoch_of(*target))
    fills: list[Fill] = []
    losses: list[Loss] = []
    cur = stream
    for step in chain:
        res = step.apply(cur, allow_loss)
        cur = res.stream
        fills += res.fills
        losses += res.losses
    # Exact target version; domain sections the steps passed through untouched
    # get a fresh record list so the result shares no mutable container with
    # the input (records and arrays are immutable and stay shared).
    originals = {id(d) for d in stream.domains}
    domains = [LUDomain(list(d.records)) if id(d) in originals else d for d in cur.domains]
    out = _stream(cur, target, domains)
    direction = "upgrade" if target > source else "rollback" if target < source else "none"
    report = Report(
        fmt_epoch(source),
        fmt_epoch(target),
        direction,
        [s.name for s in chain],
        allow_loss,
        fills,
        losses,
    )
    return out, report
