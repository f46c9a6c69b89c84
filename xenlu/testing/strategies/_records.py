"""Strategies for single records and declared layouts, derived from the declarations."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from xenlu.core.epochs import Epoch
from xenlu.core.errors import CallerError
from xenlu.core.layout import FieldInfo, Layout, Packed
from xenlu.core.registry import LIBXC, LIBXL, LU, RecordSpec
from xenlu.core.rules import Row, Rule
from xenlu.testing.strategies._base import (
    EXCLUDED,
    INVALID_MFN,
    U64,
    Draw,
    EpochArg,
    epoch_arg,
    supported_versions,
)

# --- fields and layouts (derived from the declarations) -------------------------

P = TypeVar("P", bound=Packed)


def _bounds(fi: FieldInfo) -> tuple[int, int]:
    bits = 8 * fi.size
    lo, hi = (
        (0, (1 << bits) - 1) if fi.kind == "uint" else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    )
    if fi.lo is not None:
        lo = max(lo, fi.lo)
    if fi.hi is not None:
        hi = min(hi, fi.hi)
    return lo, hi


_FIELD_CACHE: dict[tuple[int, Epoch | None], tuple[FieldInfo, SearchStrategy[Any]]] = {}


def field_values(fi: FieldInfo, epoch: Epoch | None = None) -> SearchStrategy[Any]:
    """Values of one declared field that its layout accepts in ``epoch``.

    Reserved fields are zero; ``bytes`` fields any bytes of their size;
    enumerated fields one of ``fi.allowed(epoch)``; flag fields any
    combination of ``fi.valid_mask(epoch)``; other integers any value of
    their width within ``lo``/``hi``.
    """
    hit = _FIELD_CACHE.get((id(fi), epoch))
    if hit is not None and hit[0] is fi:
        return hit[1]
    strat = _field_values(fi, epoch)
    _FIELD_CACHE[(id(fi), epoch)] = (fi, strat)
    return strat


def _field_values(fi: FieldInfo, epoch: Epoch | None) -> SearchStrategy[Any]:
    if fi.reserved:
        return st.just(bytes(fi.size) if fi.kind == "bytes" else 0)
    if fi.kind == "bytes":
        return st.binary(min_size=fi.size, max_size=fi.size)
    lo, hi = _bounds(fi)
    allowed = fi.allowed(epoch)
    if allowed is not None:
        ok = sorted(v for v in allowed if lo <= v <= hi)
        if not ok:
            raise CallerError(f"field {fi.name}: no allowed value in {epoch}")
        return st.sampled_from(ok)
    m = fi.valid_mask(epoch)
    if m is not None:
        strat = st.integers(0, m).map(lambda v: v & m)
        if lo > 0 or hi < m:
            strat = strat.filter(lambda v: lo <= v <= hi)
        return strat
    return st.integers(lo, hi)


def _layout(cls_or_layout: object) -> Layout:
    if isinstance(cls_or_layout, Layout):
        return cls_or_layout
    lay = getattr(cls_or_layout, "LAYOUT", None)
    if not isinstance(lay, Layout):
        raise CallerError(f"{cls_or_layout!r} is not a packed declaration")
    return lay


def _field_dicts(
    lay: Layout, epoch: Epoch | None, overrides: dict[str, SearchStrategy[Any]]
) -> SearchStrategy[dict[str, Any]]:
    """Field dicts of one entry: every field rule met, then every record rule repaired."""
    for k in overrides:
        lay.field(k)  # KeyError for a misspelt field
    base = st.fixed_dictionaries(
        {
            fi.name: overrides[fi.name] if fi.name in overrides else field_values(fi, epoch)
            for fi in lay.fields
        }
    )
    rules = [r for r in lay.rules(epoch).records if not r.pairwise]
    if not rules:
        return base

    @st.composite
    def repaired(draw: Draw) -> dict[str, Any]:
        return _repair(lay, rules, [draw(base)], draw)[0]

    return repaired()


def _repair(
    lay: Layout, rules: Sequence[Rule], rows: list[dict[str, Any]], draw: Draw
) -> list[dict[str, Any]]:
    """``rows`` changed by each broken rule's declared repair, in rule order.

    The record rules (:class:`~xenlu.core.rules.Rule`, declared beside their
    layout) say both what is wrong and how to make it right; a broken rule
    without a repair rejects the example.
    """

    def pick(lo: int, hi: int) -> int:
        return int(draw(st.integers(lo, hi)))

    def row(d: dict[str, Any], prev: Any = None) -> Any:
        return Row(lay.names, _tuple(lay, d), prev)

    for rule in rules:
        if rule.pairwise:
            rs = [row(d) for d in rows]
            if any(rule.bad(row(d, p)) for d, p in zip(rows[1:], rs, strict=False)):
                assume(rule.repair_all is not None)
                assert rule.repair_all is not None
                rows = rule.repair_all(rows, pick)
            continue
        out = []
        for d in rows:
            if rule.bad(row(d)):
                assume(rule.repair is not None)
                assert rule.repair is not None
                d = rule.repair(d, pick)
            out.append(d)
        rows = out
    return rows


def _tuple(lay: Layout, d: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(d[n] for n in lay.names)


@overload
def packed_values(
    cls: type[P], epoch: EpochArg = None, **overrides: SearchStrategy[Any]
) -> SearchStrategy[P]: ...
@overload
def packed_values(
    cls: Layout, epoch: EpochArg = None, **overrides: SearchStrategy[Any]
) -> SearchStrategy[Any]: ...
def packed_values(
    cls: type[P] | Layout, epoch: EpochArg = None, **overrides: SearchStrategy[Any]
) -> SearchStrategy[Any]:
    """Instances of a :func:`~xenlu.core.layout.packed` class whose every field is valid in
    ``epoch``.

    ``overrides`` replace the strategy of named fields.

    >>> from xenlu.lu.records import LuVersion
    >>> packed_values(LuVersion, xen_major=st.just(4)).example().xen_major
    4
    """
    lay = _layout(cls)
    return _field_dicts(lay, epoch_arg(epoch), overrides).map(
        lambda d: lay.from_tuple(_tuple(lay, d))
    )


def _array(lay: Layout, rows: Sequence[dict[str, Any]]) -> np.ndarray:
    a = np.zeros(len(rows), lay.dtype)
    for fi in lay.fields:
        if fi.reserved:
            continue
        col = [r[fi.name] for r in rows]
        if fi.kind == "bytes":
            a[fi.name] = np.array(col, dtype=f"V{fi.size}") if rows else a[fi.name]
        else:
            a[fi.name] = col
    return a


EntryFix = Callable[[Draw, dict[str, Any], Epoch | None], dict[str, Any]]


def entries(
    cls: type[Packed] | Layout,
    epoch: EpochArg = None,
    *,
    min_size: int = 0,
    max_size: int = 8,
    **overrides: SearchStrategy[Any],
) -> SearchStrategy[np.ndarray]:
    """Structured numpy arrays of a declared entry layout, every entry valid in ``epoch``.

    The array has exactly the layout's dtype (reserved fields zero), so
    :meth:`Layout.pack_array <xenlu.core.layout.Layout.pack_array>` writes it as is.

    >>> from xenlu.lu.records import OwnershipEntry
    >>> a = entries(OwnershipEntry, "4.11", min_size=2, max_size=2).example()
    >>> len(a), bool((a["nr_pages"] >= 1).all())
    (2, True)
    """
    return _entries(_layout(cls), epoch_arg(epoch), min_size, max_size, overrides)


def _entries(
    lay: Layout,
    epoch: Epoch | None,
    min_size: int,
    max_size: int,
    overrides: dict[str, SearchStrategy[Any]] | None = None,
) -> SearchStrategy[np.ndarray]:
    """Arrays whose entries meet the layout's field and record rules (pairwise ones too)."""
    row = _field_dicts(lay, epoch, overrides or {})
    pairwise = [r for r in lay.rules(epoch).records if r.pairwise]

    @st.composite
    def build(draw: Draw) -> np.ndarray:
        rows = draw(st.lists(row, min_size=min_size, max_size=max_size))
        if pairwise:
            rows = _repair(lay, pairwise, rows, draw)
        return _array(lay, rows)

    return build()


# --- record-level facts that are not layout rules --------------------------------
# Every record-level rule of a layout is declared beside it (``RULES``) with its
# repair, which _field_dicts and _entries apply; LU_VERSION's "a supported
# version of the epoch" is a fact of the stream (§3), not of the record.


def _fix_version(draw: Draw, d: dict[str, Any], epoch: Epoch | None) -> dict[str, Any]:
    major, minor = draw(st.sampled_from(supported_versions(epoch)))
    return {**d, "xen_major": major, "xen_minor": minor}


#: Record name → per-value stream fact for fixed records (applied to the field dict).
_FIXED_RULES: dict[str, EntryFix] = {"LU_VERSION": _fix_version}


# --- generic derivation from a RecordSpec ---------------------------------------


def spec_named(name: str, family: str | None) -> RecordSpec:
    from xenlu.core.registry import load

    load()
    fams = (family,) if family else ("lu", "libxc", "libxl")
    regs = {"lu": LU, "libxc": LIBXC, "libxl": LIBXL}
    for f in fams:
        if f not in regs:
            raise CallerError(f"unknown record family {f!r}; expected lu, libxc or libxl")
        try:
            return regs[f].by_name(name)
        except CallerError:
            continue
    raise CallerError(f"no record called {name!r} in {', '.join(fams)}")


def _fixed_layout(spec: RecordSpec, epoch: Epoch | None) -> type[Any] | None:
    """The declaration of a fixed record in ``epoch``, or None if it is not one."""
    vt = spec.value_type
    vts = vt if isinstance(vt, tuple) else (vt,)
    cands = [c for c in spec.layouts_in(epoch) if c in vts]
    return cands[0] if len(cands) == 1 else None


def _bulk_layout(spec: RecordSpec, epoch: Epoch | None) -> type[Any] | None:
    """The entry declaration of an LU bulk record in ``epoch`` (its one dated layout)."""
    cands = spec.layouts_in(epoch)
    return cands[0] if len(cands) == 1 else None


def array_field(vt: object) -> str | None:
    """The single ndarray field of a value dataclass (HvmParams, CpuidPolicy …)."""
    if not (isinstance(vt, type) and dataclasses.is_dataclass(vt)):
        return None
    fs = dataclasses.fields(vt)
    if len(fs) == 1 and str(fs[0].type) in ("np.ndarray", "numpy.ndarray", "ndarray"):
        return fs[0].name
    return None


def derive(spec: RecordSpec, epoch: Epoch | None) -> SearchStrategy[Any] | None:
    """A strategy from the declaration alone (plus the few record-level rules)."""
    vt = spec.value_type
    # Empty records: END, VERIFY, CHECKPOINT, STATIC_DATA_END, CHECKPOINT_END.
    if (
        isinstance(vt, type)
        and dataclasses.is_dataclass(vt)
        and not isinstance(getattr(vt, "LAYOUT", None), Layout)
        and all(
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            for f in dataclasses.fields(vt)
        )
    ):
        return st.just(vt())
    cls = _fixed_layout(spec, epoch)
    if cls is not None:
        lay = cls.LAYOUT
        rule = _FIXED_RULES.get(spec.name)

        @st.composite
        def fixed(draw: Draw) -> Any:
            d = draw(_field_dicts(lay, epoch, {}))
            if rule is not None:
                d = rule(draw, d, epoch)
            return lay.from_tuple(_tuple(lay, d))

        return fixed()
    if spec.bulk and spec.family == "lu":
        ent = _bulk_layout(spec, epoch)
        if ent is not None:
            from xenlu.lu.records import Bulk

            return _entries(ent.LAYOUT, epoch, 0, 8).map(Bulk)
    field = array_field(vt)
    if field is not None and spec.layouts:
        ent_lay = spec.layouts[-1].LAYOUT
        return _entries(ent_lay, epoch, 1, 8).map(lambda a: vt(**{field: a}))
    return None


# --- hand-written strategies for variable-size records --------------------------


def _u64s(max_size: int = 8, *, min_size: int = 0) -> SearchStrategy[np.ndarray]:
    return st.lists(st.integers(0, INVALID_MFN), min_size=min_size, max_size=max_size).map(
        lambda xs: np.array(xs, dtype=U64)
    )


def _grant_table(epoch: Epoch | None) -> SearchStrategy[Any]:
    from xenlu.lu.io_records import GrantTable, GrantTableHeader
    from xenlu.lu.values import GrantVersion

    version = field_values(GrantTableHeader.LAYOUT.field("version"), epoch)

    @st.composite
    def build(draw: Draw) -> Any:
        v = draw(version)
        n = draw(st.integers(0, 9))
        status = -(-n // 8) if v == GrantVersion.v2 else 0  # §4.10: ceil(n / 8) for v2, 0 for v1
        return GrantTable(v, draw(_u64s(n, min_size=n)), draw(_u64s(status, min_size=status)))

    return build()


def _evtchn_abi(epoch: Epoch | None) -> SearchStrategy[Any]:
    from xenlu.lu.io_records import ControlBlock, EvtchnAbi, EvtchnAbiHeader, EvtchnPagesHeader
    from xenlu.lu.values import EvtchnAbiKind

    abi = field_values(EvtchnAbiHeader.LAYOUT.field("abi"), epoch)
    _, max_pages = _bounds(EvtchnPagesHeader.LAYOUT.field("nr_event_array_pages"))
    cbs = _entries(ControlBlock.LAYOUT, epoch, 0, 4)

    @st.composite
    def build(draw: Draw) -> Any:
        a = draw(abi)
        if a == EvtchnAbiKind.two_level:  # two-level: no control blocks, no event-array pages
            return EvtchnAbi(1, ControlBlock.LAYOUT.empty(0), np.zeros(0, U64))
        return EvtchnAbi(a, draw(cbs), draw(_u64s(min(max_pages, 6))))

    return build()


def _ioreq_servers(epoch: Epoch | None) -> SearchStrategy[Any]:
    from xenlu.lu.io_records import IoreqRange, IoreqServer, IoreqServerHeader, IoreqServers

    hdr = _field_dicts(IoreqServerHeader.LAYOUT, epoch, {})
    ranges = _entries(IoreqRange.LAYOUT, epoch, 0, 3)

    @st.composite
    def server(draw: Draw) -> IoreqServer:
        h = draw(hdr)  # the header's record rules (bufioreq_gfn) already repaired
        return IoreqServer(
            h["id"],
            h["dm_domid"],
            h["enabled"],
            h["bufioreq"],
            h["ioreq_gfn"],
            h["bufioreq_gfn"],
            draw(ranges),
        )

    return st.lists(server(), max_size=3).map(lambda xs: IoreqServers(tuple(xs)))


def _hvm_context(epoch: Epoch | None) -> SearchStrategy[Any]:
    from xenlu.migration.hvmctx import (
        HVM_SAVE_CODE_MAX,
        PER_VCPU_TYPECODES,
        TC_RTC,
        TC_VIRIDIAN_VCPU,
        HvmContext,
        HvmEntry,
        HvmRtc411,
        HvmRtc414,
        HvmSaveHeader,
        ViridianVcpu411,
        ViridianVcpu413,
    )

    header = packed_values(HvmSaveHeader, None)
    # LU spec §4.16: the two entries whose size changed are checked by epoch.
    sized: dict[int, Any] = {}
    if epoch is not None:
        sized[TC_RTC] = HvmRtc411 if epoch < (4, 14) else HvmRtc414
        sized[TC_VIRIDIAN_VCPU] = ViridianVcpu411 if epoch < (4, 13) else ViridianVcpu413
    # hvm_load() has no handler above HVM_SAVE_CODE_MAX (libxc and LU alike).
    top = HVM_SAVE_CODE_MAX

    @st.composite
    def entry(draw: Draw) -> HvmEntry:
        tc = draw(st.integers(2, top))
        per_vcpu = tc in PER_VCPU_TYPECODES or epoch is None
        inst = draw(st.integers(0, 3)) if per_vcpu else 0
        if tc in sized:
            data = draw(packed_values(sized[tc], epoch)).pack()
        else:
            data = draw(st.binary(max_size=48))
        return HvmEntry(tc, inst, data)

    @st.composite
    def build(draw: Draw) -> Any:
        return HvmContext.build(draw(header), draw(st.lists(entry(), max_size=6)))

    return build()


def _page_data(epoch: Epoch | None) -> SearchStrategy[Any]:
    from xenlu.migration.libxc_records import (
        DATA_PAGE_TYPES,
        PAGE_DATA_PFN_MASK,
        PAGE_SIZE,
        PFINFO,
        PageData,
    )

    @st.composite
    def build(draw: Draw) -> Any:
        pairs = draw(
            st.lists(
                st.tuples(st.sampled_from(sorted(PFINFO)), st.integers(0, PAGE_DATA_PFN_MASK)),
                min_size=1,
                max_size=5,
            )
        )
        pfns = np.array([(t << 60) | n for t, n in pairs], dtype=U64)
        pages = b"".join(
            (draw(st.binary(min_size=1, max_size=8)) * PAGE_SIZE)[:PAGE_SIZE]
            for t, _ in pairs
            if t in DATA_PAGE_TYPES
        )
        return PageData(pfns, memoryview(pages))

    return build()


def _p2m_frames(epoch: Epoch | None) -> SearchStrategy[Any]:
    from xenlu.migration.libxc_records import PvP2mFrames, PvP2mFramesHeader

    hdr = _field_dicts(PvP2mFramesHeader.LAYOUT, epoch, {})
    return st.builds(
        lambda h, f: PvP2mFrames(h["p2m_start_pfn"], h["p2m_end_pfn"], f), hdr, _u64s(6)
    )


def _pv_vcpu(epoch: Epoch | None, basic: bool = False) -> SearchStrategy[Any]:
    from xenlu.migration.libxc_records import PvVcpu, PvVcpuHeader

    vid = field_values(PvVcpuHeader.LAYOUT.field("vcpu_id"), epoch)
    # BASIC always carries a vcpu_guest_context; the others may be header-only.
    return st.builds(PvVcpu, vid, st.binary(min_size=1 if basic else 0, max_size=64))


def _shared_info(epoch: Epoch | None) -> SearchStrategy[Any]:
    from xenlu.migration.libxc_records import PAGE_SIZE, SharedInfo

    return st.binary(min_size=1, max_size=16).map(lambda b: SharedInfo((b * PAGE_SIZE)[:PAGE_SIZE]))


def _dirty_pfns(epoch: Epoch | None) -> SearchStrategy[Any]:
    from xenlu.migration.libxc_records import DirtyPfnList

    return _u64s(8).map(DirtyPfnList)


def _no_nul() -> SearchStrategy[bytes]:
    return st.binary(max_size=12).map(lambda b: b.replace(b"\0", b"x"))


def _emulator(epoch: Epoch | None, xenstore: bool) -> SearchStrategy[Any]:
    from xenlu.migration.libxl_records import EmulatorContext, EmulatorHeader, EmulatorXenstoreData

    hdr = _field_dicts(EmulatorHeader.LAYOUT, None, {})
    if xenstore:
        # Keys: relative, non-empty, "alphanumeric ASCII and -/_@" (libxl spec).
        head = st.sampled_from(b"abcXYZ019-_@")
        rest = st.lists(st.sampled_from(b"abcXYZ019-_@/"), max_size=11)
        key = st.builds(lambda h, r: bytes([h, *r]), head, rest)
        pairs = st.lists(st.tuples(key, _no_nul()), max_size=4).map(tuple)
        return st.builds(
            lambda h, p: EmulatorXenstoreData(h["emulator_id"], h["index"], p), hdr, pairs
        )
    return st.builds(
        lambda h, b: EmulatorContext(h["emulator_id"], h["index"], b), hdr, st.binary(max_size=64)
    )


_HAND: dict[tuple[str, str], Callable[[Epoch | None], SearchStrategy[Any]]] = {
    ("lu", "LU_GRANT_TABLE"): _grant_table,
    ("lu", "LU_EVTCHN_ABI"): _evtchn_abi,
    ("lu", "LU_IOREQ_SERVERS"): _ioreq_servers,
    ("libxc", "PAGE_DATA"): _page_data,
    ("libxc", "X86_PV_P2M_FRAMES"): _p2m_frames,
    ("libxc", "X86_PV_VCPU_BASIC"): lambda e: _pv_vcpu(e, basic=True),
    ("libxc", "X86_PV_VCPU_EXTENDED"): _pv_vcpu,
    ("libxc", "X86_PV_VCPU_XSAVE"): _pv_vcpu,
    ("libxc", "X86_PV_VCPU_MSRS"): _pv_vcpu,
    ("libxc", "SHARED_INFO"): _shared_info,
    ("libxc", "HVM_CONTEXT"): _hvm_context,
    ("libxc", "CHECKPOINT_DIRTY_PFN_LIST"): _dirty_pfns,
    ("libxl", "EMULATOR_XENSTORE_DATA"): lambda e: _emulator(e, True),
    ("libxl", "EMULATOR_CONTEXT"): lambda e: _emulator(e, False),
}


def _lu_allowed_libxc() -> frozenset[int]:
    from xenlu.lu.grammar import LIBXC_IN_LU

    return LIBXC_IN_LU


def record_names(epoch: EpochArg = None, family: str | None = None) -> list[tuple[str, str]]:
    """``(family, name)`` of every record :func:`records` covers.

    With an ``epoch``: every LU record and every libxc record allowed in an
    LU domain section (LU spec §4.16). Without: every libxc and libxl record.
    Records in :data:`EXCLUDED` are left out.
    """
    from xenlu.core.registry import load

    load()
    if epoch_arg(epoch) is not None:  # the same spellings (and errors) as everywhere
        allowed = _lu_allowed_libxc()
        out = [("lu", s.name) for s in LU] + [("libxc", s.name) for s in LIBXC if s.type in allowed]
    else:
        out = [("libxc", s.name) for s in LIBXC] + [("libxl", s.name) for s in LIBXL]
    return [(f, n) for f, n in out if (family is None or f == family) and (f, n) not in EXCLUDED]


@functools.cache
def _records(name: str, epoch: Epoch | None, family: str | None) -> SearchStrategy[Any]:
    spec = spec_named(name, family)
    key = (spec.family, spec.name)
    if key in EXCLUDED:
        raise CallerError(f"{spec.family} record {spec.name} has no strategy: {EXCLUDED[key]}")
    if spec.family == "lu" and epoch is None:
        raise CallerError(
            f"{name} is a Live Update record: give its epoch, e.g. records({name!r}, '4.15')"
        )
    if (
        spec.family != "lu"
        and epoch is not None
        and (spec.family != "libxc" or spec.type not in _lu_allowed_libxc())
    ):
        raise CallerError(
            f"{spec.family} record {spec.name} is not allowed in a Live Update stream "
            "(LU spec §4.16): call records() without an epoch"
        )
    hand = _HAND.get(key)
    strat = hand(epoch) if hand is not None else derive(spec, epoch)
    if strat is None:
        raise CallerError(
            f"{spec.family} record {spec.name}: no strategy can be derived from its declaration "
            "(value type, layouts); add one to xenlu.testing.strategies"
        )
    return strat


def records(name: str, epoch: EpochArg = None, *, family: str | None = None) -> SearchStrategy[Any]:
    """Values of the record ``name`` that its decoder accepts in ``epoch``.

    ``name`` is the conventions' record name (``"LU_DOMAIN"``, ``"HVM_CONTEXT"``,
    ``"EMULATOR_CONTEXT"`` …), looked up in the LU, then libxc, then libxl
    registry unless ``family`` says which (libxc and libxl both have END).
    LU records need an ``epoch`` (``"4.15"`` or ``(4, 15)``; a version such
    as ``"4.18"`` means its epoch). A libxc record with an epoch is one
    allowed in an LU domain section and obeys the LU rules for it (e.g.
    HVM_CONTEXT entry sizes); without an epoch, a plain libxc/libxl record.

    The value is what ``spec.decode`` returns and ``spec.encode`` takes, so
    ``spec.decode(body(spec.encode(v)), ctx) == v`` for every drawn ``v``.
    Structural rules only: cross-record rules (ownership, vCPU bounds …) are
    the business of :func:`hosts`.
    """
    return _records(name, epoch_arg(epoch), family)
