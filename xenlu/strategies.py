"""Hypothesis strategies for every xenlu record, whole consistent hosts and their faults.

Fuzzing is part of the product: users fuzz their own restore code with the
streams these strategies make, and xenlu fuzzes its own decoders with them.
Everything here is **derived from the record declarations** (the
:class:`~xenlu.layout.Layout` of each :func:`~xenlu.layout.packed` class and
the :class:`~xenlu.registry.RecordSpec` of each record type): field widths,
allowed values, valid flag bits per epoch, ``lo``/``hi`` bounds and reserved
fields come from :attr:`Layout.fields <xenlu.layout.Layout.fields>`, counts
always match lengths, and only the few record-level rules that a declaration
cannot express (the ``_check_*`` functions of :mod:`xenlu.lu_records`) are
written out here. A record declared tomorrow with a fixed layout, a bulk
layout or an entry array gets a strategy without any change to this module.

This module needs `hypothesis <https://hypothesis.works>`_ (``pip install
'xenlu[hypothesis]'``); importing it without hypothesis raises
:class:`ImportError` saying so.

Public API
----------
* :func:`records` — values of one record type valid in one epoch (or in a
  plain libxc/libxl stream), e.g. ``records("LU_EVTCHNS", "4.15")``;
  :func:`record_names` lists every name :func:`records` knows.
* :func:`packed_values` / :func:`entries` — values / numpy arrays of any
  declared layout, for building your own strategies.
* :func:`hosts` — semantically consistent whole Live Update hosts
  (:class:`~xenlu.lu_stream.LUStream`), :func:`streams` — their bytes;
  :func:`wild_hosts` — structurally valid streams whose records relate at
  random (for fuzzing validators).
* :func:`libxc_models` / :func:`libxc_streams` — valid libxc v2/v3 streams
  (PV and HVM); :func:`libxl_streams` — libxl streams and xl save files.
* :func:`corruptions` — single-fault variants of a stream, each with the
  error class or validation finding code it must raise
  (:class:`Corruption`).

Examples::

    >>> from hypothesis import given
    >>> from xenlu.lu_stream import decode_lu, encode_lu
    >>> @given(hosts("4.11", max_domains=4))
    ... def test_roundtrip(host):
    ...     assert decode_lu(encode_lu(host)) == host
    >>> test_roundtrip()

    >>> from xenlu.registry import LU, Ctx
    >>> spec = LU.by_name("LU_EVTCHNS")
    >>> @given(records("LU_EVTCHNS", "4.15"))
    ... def test_body(value):
    ...     body = b"".join(bytes(p) for p in spec.encode(value))
    ...     ctx = Ctx(0, spec.type, 8, len(body), (4, 15))
    ...     assert spec.decode(memoryview(body), ctx) == value
    >>> test_body()

    >>> @given(streams("4.21").flatmap(corruptions))
    ... def test_faults_are_caught(c):
    ...     c.check()          # raises AssertionError unless caught as declared
"""

from __future__ import annotations

try:
    from hypothesis import assume
    from hypothesis import strategies as st
    from hypothesis.strategies import SearchStrategy
except ImportError as _exc:  # pragma: no cover - exercised only without hypothesis
    raise ImportError(
        "xenlu.strategies needs the optional dependency hypothesis: "
        "pip install 'xenlu[hypothesis]' (or pip install hypothesis)"
    ) from _exc

import dataclasses
import functools
import itertools
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xenlu.epochs import EPOCHS, MAX_VERSION, MIN_VERSION, Epoch, EpochLike, as_epoch, epoch_of
from xenlu.errors import (
    CallerError,
    ChecksumError,
    FramingError,
    RecordError,
    XenLUError,
)
from xenlu.framing import REC_LENGTH_MAX, crc32c, frames
from xenlu.layout import FieldInfo, Layout
from xenlu.registry import LIBXC, LIBXL, LU, OPTIONAL, Record, RecordSpec, UnknownRecord
from xenlu.rules import Row, Rule

__all__ = [
    "EXCLUDED",
    "FAULT_KINDS",
    "Corruption",
    "corruptions",
    "entries",
    "field_values",
    "hosts",
    "libxc_models",
    "libxc_streams",
    "libxl_streams",
    "packed_values",
    "record_names",
    "records",
    "streams",
    "supported_versions",
    "wild_hosts",
]

EpochArg = EpochLike | None
Draw = Callable[[SearchStrategy[Any]], Any]

INVALID_MFN = 0xFFFFFFFFFFFFFFFF
U64 = np.dtype("<u8")
MIB2 = 2 << 20
GIB4 = 1 << 32

#: Records :func:`records` deliberately has no strategy for, with the reason.
EXCLUDED: dict[tuple[str, str], str] = {
    ("libxc", "TOOLSTACK"): "deprecated: every decoder refuses it, so no valid value exists",
    ("libxl", "LIBXC_CONTEXT"): (
        "an empty marker whose value is the embedded libxc stream: see libxl_streams()"
    ),
}


# --- epochs -------------------------------------------------------------------


def _epoch(epoch: EpochArg) -> Epoch | None:
    """Normalise ``"4.18"`` / ``(4, 18)`` to the epoch (4, 17); None stays None."""
    return None if epoch is None else as_epoch(epoch)


def supported_versions(epoch: EpochArg = None) -> list[tuple[int, int]]:
    """Every Xen version 4.11 … 4.21 (whose epoch is ``epoch``, when given).

    >>> supported_versions("4.17")
    [(4, 17), (4, 18)]
    """
    e = _epoch(epoch)
    out = [(4, m) for m in range(MIN_VERSION[1], MAX_VERSION[1] + 1)]
    return [v for v in out if e is None or epoch_of(*v) == e]


def _epochs(epoch: EpochArg) -> SearchStrategy[Epoch]:
    e = _epoch(epoch)
    return st.just(e) if e is not None else st.sampled_from(EPOCHS)


# --- fields and layouts (derived from the declarations) -------------------------


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


def _layout(cls_or_layout: Any) -> Layout:
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

    The record rules (:class:`~xenlu.rules.Rule`, declared beside their
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


def packed_values(
    cls: Any, epoch: EpochArg = None, **overrides: SearchStrategy[Any]
) -> SearchStrategy[Any]:
    """Instances of a :func:`~xenlu.layout.packed` class whose every field is valid in ``epoch``.

    ``overrides`` replace the strategy of named fields.

    >>> from xenlu.lu_records import LuVersion
    >>> packed_values(LuVersion, xen_major=st.just(4)).example().xen_major
    4
    """
    lay = _layout(cls)
    return _field_dicts(lay, _epoch(epoch), overrides).map(lambda d: lay.from_tuple(_tuple(lay, d)))


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
    cls: Any,
    epoch: EpochArg = None,
    *,
    min_size: int = 0,
    max_size: int = 8,
    **overrides: SearchStrategy[Any],
) -> SearchStrategy[np.ndarray]:
    """Structured numpy arrays of a declared entry layout, every entry valid in ``epoch``.

    The array has exactly the layout's dtype (reserved fields zero), so
    :meth:`Layout.pack_array <xenlu.layout.Layout.pack_array>` writes it as is.

    >>> from xenlu.lu_records import OwnershipEntry
    >>> a = entries(OwnershipEntry, "4.11", min_size=2, max_size=2).example()
    >>> len(a), bool((a["nr_pages"] >= 1).all())
    (2, True)
    """
    return _entries(_layout(cls), _epoch(epoch), min_size, max_size, overrides)


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


def _spec(name: str, family: str | None) -> RecordSpec:
    from xenlu.registry import load

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


def _array_field(vt: Any) -> str | None:
    """The single ndarray field of a value dataclass (HvmParams, CpuidPolicy …)."""
    if not (isinstance(vt, type) and dataclasses.is_dataclass(vt)):
        return None
    fs = dataclasses.fields(vt)
    if len(fs) == 1 and str(fs[0].type) in ("np.ndarray", "numpy.ndarray", "ndarray"):
        return fs[0].name
    return None


def _derive(spec: RecordSpec, epoch: Epoch | None) -> SearchStrategy[Any] | None:
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
            from xenlu.lu_records import Bulk

            return _entries(ent.LAYOUT, epoch, 0, 8).map(Bulk)
    field = _array_field(vt)
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
    from xenlu.lu_records import GrantTable, GrantTableHeader

    version = field_values(GrantTableHeader.LAYOUT.field("version"), epoch)

    @st.composite
    def build(draw: Draw) -> Any:
        v = draw(version)
        n = draw(st.integers(0, 9))
        status = -(-n // 8) if v == 2 else 0  # §4.10: ceil(n / 8) for v2, 0 for v1
        return GrantTable(v, draw(_u64s(n, min_size=n)), draw(_u64s(status, min_size=status)))

    return build()


def _evtchn_abi(epoch: Epoch | None) -> SearchStrategy[Any]:
    from xenlu.lu_records import ControlBlock, EvtchnAbi, EvtchnAbiHeader, EvtchnPagesHeader

    abi = field_values(EvtchnAbiHeader.LAYOUT.field("abi"), epoch)
    _, max_pages = _bounds(EvtchnPagesHeader.LAYOUT.field("nr_event_array_pages"))
    cbs = _entries(ControlBlock.LAYOUT, epoch, 0, 4)

    @st.composite
    def build(draw: Draw) -> Any:
        a = draw(abi)
        if a == 1:  # two-level: no control blocks, no event-array pages
            return EvtchnAbi(1, ControlBlock.LAYOUT.empty(0), np.zeros(0, U64))
        return EvtchnAbi(a, draw(cbs), draw(_u64s(min(max_pages, 6))))

    return build()


def _ioreq_servers(epoch: Epoch | None) -> SearchStrategy[Any]:
    from xenlu.lu_records import IoreqRange, IoreqServer, IoreqServerHeader, IoreqServers

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
    from xenlu.hvmctx import (
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
    from xenlu.libxc import DATA_PAGE_TYPES, PAGE_DATA_PFN_MASK, PAGE_SIZE, PFINFO, PageData

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
    from xenlu.libxc import PvP2mFrames, PvP2mFramesHeader

    hdr = _field_dicts(PvP2mFramesHeader.LAYOUT, epoch, {})
    return st.builds(
        lambda h, f: PvP2mFrames(h["p2m_start_pfn"], h["p2m_end_pfn"], f), hdr, _u64s(6)
    )


def _p2m_fitted(value: Any, guest_width: int) -> Any:
    """``value`` with as many frames as its pfn range needs at ``guest_width``,
    the range shortened so that the count stays small (at most 6 frames)."""
    from xenlu.libxc import PAGE_SIZE, PvP2mFrames, p2m_frame_count

    fpp = PAGE_SIZE // guest_width
    start = value.p2m_start_pfn
    end = min(value.p2m_end_pfn, (start // fpp + 6) * fpp - 1)
    count = p2m_frame_count(start, end, guest_width)
    frames = np.resize(np.asarray(value.frames, dtype=U64), count) if len(value.frames) else None
    if frames is None:
        frames = np.arange(count, dtype=U64)
    return PvP2mFrames(start, end, frames)


def _pv_vcpu(epoch: Epoch | None, basic: bool = False) -> SearchStrategy[Any]:
    from xenlu.libxc import PvVcpu, PvVcpuHeader

    vid = field_values(PvVcpuHeader.LAYOUT.field("vcpu_id"), epoch)
    # BASIC always carries a vcpu_guest_context; the others may be header-only.
    return st.builds(PvVcpu, vid, st.binary(min_size=1 if basic else 0, max_size=64))


def _shared_info(epoch: Epoch | None) -> SearchStrategy[Any]:
    from xenlu.libxc import PAGE_SIZE, SharedInfo

    return st.binary(min_size=1, max_size=16).map(lambda b: SharedInfo((b * PAGE_SIZE)[:PAGE_SIZE]))


def _dirty_pfns(epoch: Epoch | None) -> SearchStrategy[Any]:
    from xenlu.libxc import DirtyPfnList

    return _u64s(8).map(DirtyPfnList)


def _no_nul() -> SearchStrategy[bytes]:
    return st.binary(max_size=12).map(lambda b: b.replace(b"\0", b"x"))


def _emulator(epoch: Epoch | None, xenstore: bool) -> SearchStrategy[Any]:
    from xenlu.libxl import EmulatorContext, EmulatorHeader, EmulatorXenstoreData

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
    from xenlu.lu_grammar import LIBXC_IN_LU

    return LIBXC_IN_LU


def record_names(epoch: EpochArg = None, family: str | None = None) -> list[tuple[str, str]]:
    """``(family, name)`` of every record :func:`records` covers.

    With an ``epoch``: every LU record and every libxc record allowed in an
    LU domain section (LU spec §4.16). Without: every libxc and libxl record.
    Records in :data:`EXCLUDED` are left out.
    """
    from xenlu.registry import load

    load()
    if _epoch(epoch) is not None:  # the same spellings (and errors) as everywhere
        allowed = _lu_allowed_libxc()
        out = [("lu", s.name) for s in LU] + [("libxc", s.name) for s in LIBXC if s.type in allowed]
    else:
        out = [("libxc", s.name) for s in LIBXC] + [("libxl", s.name) for s in LIBXL]
    return [(f, n) for f, n in out if (family is None or f == family) and (f, n) not in EXCLUDED]


@functools.cache
def _records(name: str, epoch: Epoch | None, family: str | None) -> SearchStrategy[Any]:
    spec = _spec(name, family)
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
    strat = hand(epoch) if hand is not None else _derive(spec, epoch)
    if strat is None:
        raise CallerError(
            f"{spec.family} record {spec.name}: no strategy can be derived from its declaration "
            "(value type, layouts); add one to xenlu.strategies"
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
    return _records(name, _epoch(epoch), family)


# --- whole hosts --------------------------------------------------------------


@dataclass(frozen=True)
class _Knobs:
    version: tuple[int, int]
    n_hvm: int
    mem_mib: int
    dom0_mem_mib: int
    vcpus: int
    fragmentation: float
    seed: int
    fifo_every: int
    grant_v2_every: int


def hosts(
    epoch: EpochArg = None,
    *,
    min_domains: int = 1,
    max_domains: int = 6,
    max_mem_mib: int = 4,
    max_vcpus: int = 4,
    fragmentation: bool = True,
    variations: bool = True,
    convertible: bool = False,
) -> SearchStrategy[Any]:
    """Semantically consistent Live Update hosts (:class:`~xenlu.lu_stream.LUStream`).

    Built on :func:`xenlu.hostgen.make_host` with drawn knobs — Xen version
    within ``epoch`` (any epoch when None), 0 … ``max_domains - 1`` HVM guests
    beside the PV dom0, memory sizes up to ``max_mem_mib``, 1 … ``max_vcpus``
    vCPUs, fragmentation (0 … 1, when ``fragmentation``), FIFO / two-level
    event channels and grant tables v1 / v2 mixed by drawn ratios, a seed —
    and then, when ``variations``, drawn changes that keep the host
    consistent: sparse domain ids, a 32-bit PV dom0 (SHINFO32), dropped
    optional records, shuffled record order within the §2 rules, bulk records
    split into several, unknown optional records, pending FIFO events,
    per-domain flags, limits and grant versions, host grant defaults. Every
    frame is owned once, interdomain channels are reciprocal, grant maps
    point at frames their granting domain owns, P2M frames are owned as
    §4.7 says. ``convertible=True`` keeps every field that an older or newer
    epoch lacks at its conversion default, so the host converts losslessly
    to every epoch (LU spec §6).

    >>> from xenlu.lu_stream import decode_lu, encode_lu
    >>> h = hosts("4.11", max_domains=3).example()
    >>> decode_lu(encode_lu(h)) == h
    True
    """
    if not 1 <= min_domains <= max_domains:
        raise CallerError("hosts(): need 1 <= min_domains <= max_domains")
    if max_mem_mib < 1 or max_vcpus < 1:
        raise CallerError("hosts(): max_mem_mib and max_vcpus must be >= 1")
    epochs = _epochs(epoch)  # a bad spelling fails here, not at the first draw

    @st.composite
    def knobs(draw: Draw) -> _Knobs:
        e = draw(epochs)
        frag = 0.0
        if fragmentation:
            frag = draw(st.sampled_from([0.0, 0.0, 0.05, 0.3, 1.0]) | st.floats(0.0, 1.0))
        return _Knobs(
            version=draw(st.sampled_from(supported_versions(e))),
            n_hvm=draw(st.integers(min_domains - 1, max_domains - 1)),
            mem_mib=draw(st.integers(1, max_mem_mib)),
            dom0_mem_mib=draw(st.integers(1, max_mem_mib)),
            vcpus=draw(st.integers(1, max_vcpus)),
            fragmentation=frag,
            seed=draw(st.integers(0, 2**32 - 1)),
            fifo_every=draw(st.integers(0, 3)),
            grant_v2_every=draw(st.integers(0, 3)),
        )

    @st.composite
    def build(draw: Draw) -> Any:
        from xenlu.hostgen import make_host

        k = draw(knobs())
        host = make_host(
            k.version,
            n_hvm=k.n_hvm,
            mem_mib=k.mem_mib,
            dom0_mem_mib=k.dom0_mem_mib,
            vcpus=k.vcpus,
            fragmentation=k.fragmentation,
            seed=k.seed,
            fifo_every=k.fifo_every,
            grant_v2_every=k.grant_v2_every,
        )
        if variations:
            host = _vary(draw, host, convertible)
        return host

    return build()


def _const(value: Any) -> Callable[[Any], Any]:
    return lambda _old: value


def _replace_record(sec: Any, type_code: int, fn: Callable[[Any], Any]) -> None:
    sec.records = [Record(r.type, fn(r.value)) if r.type == type_code else r for r in sec.records]


def _vary(draw: Draw, host: Any, convertible: bool) -> Any:
    """Drawn changes to a consistent host that keep it consistent."""
    from xenlu.lu_records import (
        CDF_NESTED_VIRT,
        CDF_VPMU,
        LU_STATE_RUNNING,
        LU_STATE_SHINFO32,
        Bulk,
        T,
    )
    from xenlu.lu_stream import LUStream, X

    epoch = host.epoch
    doms = host.domains
    # 1. Sparse domain ids: dom0 stays 0, guests get ascending ids up to 0x7FEF.
    if len(doms) > 1 and draw(st.booleans()):
        new = sorted(
            draw(
                st.lists(
                    st.integers(1, 0x7FEF),
                    min_size=len(doms) - 1,
                    max_size=len(doms) - 1,
                    unique=True,
                )
            )
        )
        _renumber(host, {0: 0, **{d.domid: n for d, n in zip(doms[1:], new, strict=True)}})
    hinfo = host.host
    any_v2 = any(d.grant_table is not None and d.grant_table.version == 2 for d in doms)
    # 2. Host grant defaults: 0 = unknown, else at least what every table needs.
    if draw(st.booleans()):
        need = max((d.grant_table.nr_grant_frames for d in doms if d.grant_table), default=1)
        maxver = draw(st.sampled_from([0, 2] if any_v2 else [0, 1, 2]))
        if convertible:
            maxver = 2  # the derived grant_opts of an upgrade must equal hostgen's 2
        hinfo = dataclasses.replace(
            hinfo,
            gnttab_max_frames=draw(st.sampled_from([0, need, 64, 256])),
            gnttab_max_maptrack_frames=draw(st.sampled_from([0, 1024, 4096])),
            gnttab_max_version=maxver,
        )
        host.global_section.records = [
            Record(r.type, hinfo) if r.type == T.LU_HOST_INFO else r
            for r in host.global_section.records
        ]
    pv32 = draw(st.booleans()) if doms else False
    for d in doms:
        info = d.info
        fields: dict[str, Any] = {}
        hvm = d.is_hvm
        # 3. A 32-bit PV dom0: guest_width 4, 3-level page tables, SHINFO32 (§4.12).
        if not hvm and pv32 and _max_port(d) < 1024:
            fields["lu_state"] = info.lu_state | LU_STATE_SHINFO32
            _replace_record(
                d, X.X86_PV_INFO, lambda v: dataclasses.replace(v, guest_width=4, pt_levels=3)
            )
            pt = d.page_types.copy()
            pt["type"] = np.where(pt["type"] == 4, 3, pt["type"])
            _replace_record(d, T.LU_PAGE_TYPES, _const(Bulk(pt)))
        # 4. Per-domain flags and limits that no other record depends on.
        st_bits = fields.get("lu_state", info.lu_state)
        if draw(st.booleans()):
            st_bits &= ~LU_STATE_RUNNING
        fields["lu_state"] = st_bits
        fields["ssidref"] = draw(st.sampled_from([0, 0, 1, 0xFFFFFFFF]))
        cdf = info.cdf_flags | draw(st.sampled_from([0, 0, 4, 8, 16, 28]))  # s3/oos/xs bits
        top = _max_port(d)
        limit = (
            1024
            if (fields["lu_state"] & LU_STATE_SHINFO32)
            else (131072 if d.evtchn_abi is not None and d.evtchn_abi.abi == 2 else 4096)
        )
        fields["max_evtchn_port"] = draw(
            st.sampled_from(sorted({top, min(top + 1, limit - 1), limit - 1, info.max_evtchn_port}))
        )
        gt = d.grant_table
        nframes = gt.nr_grant_frames if gt is not None else 0
        nmaps = len(d.grant_maps)
        if epoch < (4, 13):
            big = [] if convertible else [0xFFFFFFFF]  # refused by the i32 of 4.13 (§6)
            fields["max_grant_frames"] = draw(st.sampled_from([max(nframes, 1), 64, *big]))
            fields["max_maptrack_frames"] = draw(st.sampled_from([max(-(-nmaps // 256), 1), 1024]))
        else:
            host_frames = hinfo.gnttab_max_frames or 64
            host_maps = hinfo.gnttab_max_maptrack_frames or 1024
            fields["max_grant_frames"] = draw(
                st.sampled_from([-1, max(nframes, 1), 64] if host_frames >= nframes else [nframes])
            )
            fields["max_maptrack_frames"] = draw(
                st.sampled_from([-1, 1024] if host_maps * 256 > nmaps else [1024])
            )
            if not convertible and draw(st.booleans()):
                fields["iommu_opts"] = 1
        if not convertible:
            if epoch >= (4, 15) and hvm and draw(st.booleans()):
                cdf |= CDF_NESTED_VIRT
            if epoch >= (4, 16) and draw(st.booleans()):
                cdf |= CDF_VPMU
            if epoch >= (4, 15):
                fields["vmtrace_size"] = draw(st.sampled_from([0, 0x10000]))
                fields["misc_flags"] = draw(st.integers(0, 1))
            if epoch >= (4, 16):
                need = gt.version if gt is not None else 1
                fields["grant_opts"] = draw(st.integers(need, 2))
            if epoch >= (4, 17):
                fields["cpupool_id"] = draw(st.sampled_from([0, 0, 1, 7]))
            if epoch >= (4, 19) and hvm:
                mode = draw(st.integers(0, 3))
                fields["altp2m_opts"] = mode
                if epoch >= (4, 21):
                    fields["nr_altp2m"] = draw(st.integers(1, 10)) if mode else 0
        fields["cdf_flags"] = cdf
        new_info = dataclasses.replace(info, **fields)
        d.records[0] = Record(T.LU_DOMAIN, new_info)
        # 5. Pending FIFO events (the pending flag is FIFO only, §4.13).
        if d.evtchn_abi is not None and d.evtchn_abi.abi == 2 and draw(st.booleans()):
            ev = d.evtchns.copy()
            ev["flags"] = (
                draw(st.lists(st.integers(0, 1), min_size=len(ev), max_size=len(ev)))
                if len(ev)
                else ev["flags"]
            )
            _replace_record(d, T.LU_EVTCHNS, _const(Bulk(ev)))
        # 6. Optional records that may be absent (§2 table).
        droppable = {X.X86_TSC_INFO, X.X86_CPUID_POLICY, X.X86_MSR_POLICY, X.HVM_PARAMS}
        droppable |= {X.X86_PV_VCPU_EXTENDED, X.X86_PV_VCPU_XSAVE}
        drop = draw(st.sets(st.sampled_from(sorted(droppable)), max_size=3))
        d.records = [r for r in d.records if r.type not in drop]
        # 7. Bulk records split into several (count 0 never written, §1).
        d.records = _split_bulk(draw, d.records)
        # 8. Record order within §2's rules, and unknown optional records.
        d.records = [d.records[0], *_shuffle(draw, d.records[1:])]
        d.records = _with_optional(draw, d.records)
    host.global_section.records = _with_optional(draw, host.global_section.records, after=1)
    return LUStream(host.global_section, host.domains)


def _max_port(d: Any) -> int:
    ev = d.evtchns
    return int(ev["port"].max()) if len(ev) else 0


def _renumber(host: Any, new: dict[int, int]) -> None:
    from xenlu.lu_records import Bulk, IoreqServer, IoreqServers, T

    lut = np.arange(0x10000, dtype=np.int64)
    for old, n in new.items():
        lut[old] = n
    for d in host.domains:
        recs = []
        for r in d.records:
            v = r.value
            if r.type == T.LU_DOMAIN:
                v = dataclasses.replace(v, domid=new[v.domid])
            elif r.type == T.LU_EVTCHNS:
                a = v.entries.copy()
                a["remote_domid"] = lut[a["remote_domid"]]
                v = Bulk(a)
            elif r.type == T.LU_GRANT_MAPS:
                a = v.entries.copy()
                a["granting_domid"] = lut[a["granting_domid"]]
                v = Bulk(a)
            elif r.type == T.LU_IOREQ_SERVERS:
                v = IoreqServers(
                    tuple(
                        IoreqServer(
                            s.id,
                            new.get(s.dm_domid, s.dm_domid),
                            s.enabled,
                            s.bufioreq,
                            s.ioreq_gfn,
                            s.bufioreq_gfn,
                            s.ranges,
                        )
                        for s in v.servers
                    )
                )
            recs.append(Record(r.type, v))
        d.records = recs


def _split_bulk(draw: Draw, recs: list[Record]) -> list[Record]:
    from xenlu.lu_records import BULK_TYPES, Bulk

    out: list[Record] = []
    for r in recs:
        n = len(r.value.entries) if r.type in BULK_TYPES else 0
        if n >= 2 and draw(st.integers(0, 3)) == 0:
            cuts = sorted(draw(st.sets(st.integers(1, n - 1), min_size=1, max_size=3)))
            edges = [0, *cuts, n]
            out += [
                Record(r.type, Bulk(r.value.entries[a:b])) for a, b in itertools.pairwise(edges)
            ]
        else:
            out.append(r)
    return out


def _shuffle(draw: Draw, recs: list[Record]) -> list[Record]:
    """A permutation keeping LU_EVTCHN_ABI before LU_EVTCHNS and LU_GRANT_TABLE before
    LU_GRANT_MAPS (§2); per-type order (bulk chunks, vCPUs) is kept."""
    from xenlu.lu_records import T

    if len(recs) < 2 or draw(st.integers(0, 2)) == 0:
        return recs
    keys = draw(st.lists(st.floats(0, 1), min_size=len(recs), max_size=len(recs)))
    first = {T.LU_EVTCHN_ABI: T.LU_EVTCHNS, T.LU_GRANT_TABLE: T.LU_GRANT_MAPS}
    # A bulk record's chunks keep their order: sort by (key of its type's first record).
    by_type: dict[int, float] = {}
    for r, k in zip(recs, keys, strict=True):
        by_type.setdefault(r.type, k)
    for head, tail in first.items():
        if head in by_type and tail in by_type and by_type[head] > by_type[tail]:
            by_type[head], by_type[tail] = by_type[tail], by_type[head]
    order = sorted(range(len(recs)), key=lambda i: (by_type[recs[i].type], i))
    return [recs[i] for i in order]


def _with_optional(draw: Draw, recs: list[Record], after: int = 1) -> list[Record]:
    """Insert up to two unknown optional records (bit 31) after the first ``after``."""
    n = draw(st.integers(0, 2)) if draw(st.integers(0, 3)) == 0 else 0
    out = list(recs)
    for _ in range(n):
        t = OPTIONAL | draw(st.integers(0, 0x7FFFFFFF))
        body = draw(st.binary(max_size=20))
        at = draw(st.integers(after, len(out)))
        out.insert(at, Record(t, UnknownRecord(t, body)))
    return out


def wild_hosts(epoch: EpochArg = None, *, max_domains: int = 4) -> SearchStrategy[Any]:
    """Structurally valid LU streams whose records relate at random.

    Every record comes from :func:`records` and the section grammar of §2 is
    kept (record counts per PV/HVM domain, LU_EVTCHN_ABI before LU_EVTCHNS,
    LU_GRANT_TABLE before LU_GRANT_MAPS, one PV vCPU record of a kind per
    vCPU id, ascending unique domids), but nothing ties records together:
    frames, ports, domids and vCPU ids point anywhere. The decoder accepts
    every such stream; :func:`xenlu.validate.validate` must report on it,
    never crash. Use :func:`hosts` for consistent hosts.
    """
    from xenlu.lu_records import BULK_TYPES, DOMID_MAX, T
    from xenlu.lu_stream import VCPU_TYPES, LUDomain, LUStream, X

    epochs = _epochs(epoch)  # a bad spelling fails here, not at the first draw

    @st.composite
    def build(draw: Draw) -> Any:
        e = draw(epochs)
        version = draw(st.sampled_from(supported_versions(e)))

        def rec(name: str) -> Any:
            return draw(records(name, e))

        host = rec("LU_HOST_INFO")
        domids = draw(st.lists(st.integers(0, DOMID_MAX), max_size=max_domains, unique=True))
        domains = []
        for domid in sorted(domids):
            info = dataclasses.replace(rec("LU_DOMAIN"), domid=domid)
            hvm = info.domain_type == 2
            recs = [Record(T.LU_DOMAIN, info)]
            recs.append(
                Record(X.HVM_CONTEXT, rec("HVM_CONTEXT"))
                if hvm
                else Record(X.X86_PV_INFO, rec("X86_PV_INFO"))
            )
            pairs = [("LU_GRANT_TABLE", "LU_GRANT_MAPS"), ("LU_EVTCHN_ABI", "LU_EVTCHNS")]
            for head, tail in pairs:
                if draw(st.booleans()):
                    recs.append(Record(LU.by_name(head).type, rec(head)))
                    for _ in range(draw(st.integers(0, 2))):
                        recs.append(Record(LU.by_name(tail).type, rec(tail)))
            many = ["LU_PAGE_OWNERSHIP", *(["LU_P2M"] if hvm else ["LU_PAGE_TYPES"])]
            for name in many:
                for _ in range(draw(st.integers(0, 2))):
                    recs.append(Record(LU.by_name(name).type, rec(name)))
            once = ["X86_TSC_INFO", "X86_CPUID_POLICY", "X86_MSR_POLICY"]
            once += ["LU_IOREQ_SERVERS", "HVM_PARAMS"] if hvm else []
            for name in once:
                if draw(st.booleans()):
                    spec = _spec(name, None)
                    recs.append(Record(spec.type, rec(name)))
            if not hvm:
                for t in sorted(VCPU_TYPES):
                    vname = LIBXC.name_of(t)
                    assert vname is not None
                    ids = draw(st.sets(st.integers(0, 3), max_size=2))
                    for vid in sorted(ids):
                        recs.append(Record(t, dataclasses.replace(rec(vname), vcpu_id=vid)))

            recs = [r for r in recs if r.type not in BULK_TYPES or len(r.value.entries)]
            domains.append(LUDomain(recs))
        return LUStream.build(version, host=host, domains=domains)

    return build()


def streams(epoch: EpochArg = None, **host_options: Any) -> SearchStrategy[bytes]:
    """Encoded bytes of :func:`hosts` (same options), with a drawn bulk-record size limit.

    >>> from xenlu.lu_stream import decode_lu
    >>> decode_lu(streams("4.16", max_domains=2).example()).epoch
    (4, 16)
    """
    from xenlu.lu_stream import encode_lu

    limit = st.sampled_from([REC_LENGTH_MAX, REC_LENGTH_MAX, 4096]) | st.integers(32, 512)
    return st.tuples(hosts(epoch, **host_options), limit).map(
        lambda hl: encode_lu(hl[0], max_record_bytes=hl[1])
    )


# --- libxc / libxl / xl streams ---------------------------------------------------


def libxc_models(
    version: int | None = None, *, domain_type: str | None = None
) -> SearchStrategy[Any]:
    """Valid libxc migration streams (:class:`~xenlu.libxc_stream.LibxcStream`).

    ``version`` 2 or 3 (either when None), ``domain_type`` ``"pv"`` or ``"hvm"``
    (either when None). Records come from :func:`records` and follow the
    reference grammar (§1.7, §1.8): in v3, X86_CPUID_POLICY / X86_MSR_POLICY
    and STATIC_DATA_END precede all memory and register content; PV-only and
    HVM-only records stay in their kind of stream; END closes the stream.
    """
    from xenlu.libxc import PV_VCPU_TYPES
    from xenlu.libxc import RecType as R
    from xenlu.libxc_stream import DomainHeader, ImageHeader, LibxcStream

    if version not in (None, 2, 3):
        raise CallerError("libxc_models(): version must be 2, 3 or None")
    if domain_type not in (None, "pv", "hvm"):
        raise CallerError("libxc_models(): domain_type must be 'pv', 'hvm' or None")

    def rec(t: int) -> SearchStrategy[Record]:
        name = LIBXC.name_of(t)
        assert name is not None
        return records(name, family="libxc").map(lambda v: Record(t, v))

    optional = st.builds(
        lambda t, b: Record(t, UnknownRecord(t, b)),
        st.integers(0, 0x7FFFFFFF).map(lambda t: OPTIONAL | t),
        st.binary(max_size=20),
    )

    @st.composite
    def build(draw: Draw) -> Any:
        v = version if version is not None else draw(st.sampled_from([2, 3]))
        kind = domain_type or draw(st.sampled_from(["pv", "hvm"]))
        pv = kind == "pv"
        dh = draw(packed_values(DomainHeader, type=st.just(1 if pv else 2)))
        static: list[Record] = []
        # PV strict order (§1.7): X86_PV_INFO, X86_PV_P2M_FRAMES, PAGE_DATA, vCPU records.
        core = pv and draw(st.booleans())
        if core:
            static.append(draw(rec(R.X86_PV_INFO)))
        if v == 3:
            for t in (R.X86_CPUID_POLICY, R.X86_MSR_POLICY):
                if draw(st.booleans()):
                    static.append(draw(rec(t)))
        # (CHECKPOINT_DIRTY_PFN_LIST is back channel only: never in these streams.)
        free = [R.VERIFY, R.X86_TSC_INFO]
        if pv:
            free.append(R.SHARED_INFO)
            later = [R.PAGE_DATA, R.X86_PV_P2M_FRAMES, *sorted(PV_VCPU_TYPES)] if core else []
        else:
            free += [R.PAGE_DATA, R.HVM_CONTEXT, R.HVM_PARAMS]
            later = []
        head: list[Record] = []
        if core:
            head = [draw(rec(R.X86_PV_P2M_FRAMES)), draw(rec(R.PAGE_DATA))]
        body = [draw(rec(t)) for t in draw(st.lists(st.sampled_from(free + later), max_size=5))]
        body += draw(st.lists(optional, max_size=1))
        body = [*head, *draw(st.permutations(body))]
        sde = [draw(rec(R.STATIC_DATA_END))] if v == 3 else []
        recs = [*static, *sde, *body]
        recs.append(Record(R.END, draw(records("END", family="libxc"))))
        if core:
            # X86_PV_P2M_FRAMES lists the frames its pfn range needs at the
            # guest width of X86_PV_INFO (handle_x86_pv_p2m_frames()).
            width = static[0].value.guest_width
            recs = [
                Record(r.type, _p2m_fitted(r.value, width)) if r.type == R.X86_PV_P2M_FRAMES else r
                for r in recs
            ]
        return LibxcStream(ImageHeader(version=v), dh, recs)

    return build()


def libxc_streams(
    version: int | None = None, *, domain_type: str | None = None
) -> SearchStrategy[bytes]:
    """The bytes of :func:`libxc_models` (valid libxc v2/v3 streams, PV and HVM).

    >>> from xenlu.libxc_stream import decode_libxc
    >>> decode_libxc(libxc_streams(3).example())[0].version
    3
    """
    from xenlu.libxc_stream import libxc_bytes

    return libxc_models(version, domain_type=domain_type).map(libxc_bytes)


def libxl_streams(
    version: int | None = None, *, xl: bool | None = False, as_bytes: bool = True
) -> SearchStrategy[Any]:
    """libxl streams wrapping :func:`libxc_models` (and, with ``xl``, xl save files).

    ``xl=False``: a libxl stream (header, LIBXC_CONTEXT + libxc stream,
    emulator records, END); ``xl=True``: an xl save file around a libxl
    stream (STREAMv2) or a bare libxc stream; ``xl=None``: either. Bytes
    unless ``as_bytes=False`` (then :class:`~xenlu.libxl.LibxlStream` /
    :class:`~xenlu.libxl.XlFile`).
    """
    import xenlu.libxl as libxl_mod
    from xenlu.libxl import (
        XL_MANDATORY_JSON,
        XL_MANDATORY_STREAMV2,
        LibxlHeader,
        LibxlStream,
        LibxlType,
        XlFile,
        libxl_bytes,
        xl_bytes,
        xl_optional_data,
    )

    L = LibxlType

    @st.composite
    def libxl(draw: Draw) -> Any:
        inner = draw(libxc_models(version))
        wrap = getattr(libxl_mod, "LibxcContext", None)  # the marker's value type, if any
        recs = [Record(L.LIBXC_CONTEXT, wrap(inner) if wrap is not None else inner)]
        # Emulator records follow an HVM guest's libxc stream only (libxl_stream_read.c).
        emu = st.sampled_from([L.EMULATOR_XENSTORE_DATA, L.EMULATOR_CONTEXT])
        for t in draw(st.lists(emu, max_size=2)) if inner.domain.type != 1 else []:
            name = LIBXL.name_of(t)
            assert name is not None
            recs.append(Record(t, draw(records(name, family="libxl"))))
        recs.append(Record(L.END, draw(records("END", family="libxl"))))
        return LibxlStream(LibxlHeader(options=draw(st.sampled_from([0, 2]))), recs)

    @st.composite
    def xlfile(draw: Draw) -> Any:
        v2 = draw(st.booleans())
        stream = draw(libxl()) if v2 else draw(libxc_models(version))
        mandatory = (XL_MANDATORY_STREAMV2 if v2 else 0) | draw(
            st.sampled_from([0, XL_MANDATORY_JSON])
        )
        # Optional data as xl save writes it: none, or u32 config_len + config + a tail.
        optional = draw(
            st.just(b"")
            | st.builds(xl_optional_data, st.binary(max_size=36), st.binary(max_size=4))
        )
        return XlFile(True, mandatory, draw(st.integers(0, 0xFFFFFFFF)), optional, stream)

    strat = libxl() if xl is False else xlfile() if xl else libxl() | xlfile()
    if not as_bytes:
        return strat
    return strat.map(lambda s: xl_bytes(s) if isinstance(s, XlFile) else libxl_bytes(s))


# --- single-fault corruptions ---------------------------------------------------

#: Every fault :func:`corruptions` can make; ``*`` marks semantic (validation) faults.
FAULT_KINDS: dict[str, str] = {
    "padding": "a non-zero padding byte after a record body (FramingError)",
    "reserved": "a reserved field set non-zero (RecordError)",
    "flag": "a flag bit not valid in the stream's epoch (RecordError)",
    "value": "a value outside a field's allowed values or lo/hi bounds (RecordError)",
    "length": "a fixed-size record 8 bytes longer than its layout (RecordError)",
    "count": "an entry count that disagrees with the body length (RecordError)",
    "truncation": "the stream cut short (FramingError)",
    "crc": "a wrong section crc32c (ChecksumError)",
    "section_bytes": "a wrong section byte count (ChecksumError)",
    "owned_twice": "* a frame owned by a second domain (or twice by one)",
    "evtchn_nonreciprocal": "* an interdomain channel whose remote does not name it back",
    "grant_map_unowned": "* a grant map whose frame its granting domain does not own",
    "port_above_max": "* an event channel port above its domain's max_evtchn_port",
}
_SEMANTIC = frozenset(k for k, v in FAULT_KINDS.items() if v.startswith("*"))

#: Fallback finding codes, used only while :mod:`xenlu.validate` does not say.
_DEFAULT_FINDINGS = {
    "owned_twice": "frame-owned-twice",
    "evtchn_nonreciprocal": "evtchn-not-reciprocal",
    "grant_map_unowned": "grant-map-mfn-not-owned",
    "port_above_max": "evtchn-port-above-max",
}


def _finding_codes() -> dict[str, str]:
    """Semantic fault kind → the finding code :func:`xenlu.validate.validate` reports."""
    try:
        import xenlu.validate as v
    except ImportError:
        return dict(_DEFAULT_FINDINGS)
    table = getattr(v, "CORRUPTION_FINDINGS", None)
    if isinstance(table, dict):
        return {**_DEFAULT_FINDINGS, **table}
    return dict(_DEFAULT_FINDINGS)


@dataclass(frozen=True)
class Corruption:
    """One single-fault variant of a valid stream and how it must be caught.

    Exactly one of ``error`` (a structural fault: the decoder of ``format``
    must raise that class) and ``finding`` (a semantic fault: the stream
    decodes, and :func:`xenlu.validate.validate` must report that code) is
    set. ``where`` says in words what was changed.
    """

    kind: str
    data: bytes
    error: type[XenLUError] | None
    finding: str | None
    where: str
    format: str = "lu"

    @property
    def semantic(self) -> bool:
        """True for a fault only validation can see."""
        return self.finding is not None

    def check(self) -> None:
        """Raise :class:`AssertionError` unless the fault is caught as declared.

        Semantic faults need :mod:`xenlu.validate` (:class:`ImportError` without it).
        """
        from xenlu.api import decode

        if self.error is not None:
            try:
                decode(self.data, self.format)
            except self.error:
                return
            except XenLUError as exc:
                raise AssertionError(
                    f"{self.where}: expected {self.error.__name__}, got {type(exc).__name__}: {exc}"
                ) from exc
            raise AssertionError(f"{self.where}: decoded, expected {self.error.__name__}")
        from xenlu.validate import validate

        stream = decode(self.data, self.format)
        report = validate(stream)
        codes = {f.code for f in report.findings}
        codes |= {o.code for o in getattr(report, "omitted", ())}
        if self.finding not in codes:
            raise AssertionError(
                f"{self.where}: validation did not report {self.finding}; "
                f"got {sorted(map(str, codes))}"
            )


@dataclass(frozen=True)
class _Site:
    """``count`` instances of ``layout`` at absolute ``offset`` (stride = layout size)."""

    layout: Layout
    offset: int
    count: int
    record: str
    index: int  # record index in the stream
    whole: bool = False  # the layout is the whole record body


def _value_sites(spec: RecordSpec, value: Any, body: int, blen: int, idx: int) -> list[_Site]:
    """Where each declared layout of one decoded record value lies in the input."""
    from xenlu.lu_records import (
        Bulk,
        ControlBlock,
        CountHeader,
        EvtchnAbi,
        EvtchnAbiHeader,
        EvtchnPagesHeader,
        GrantTable,
        GrantTableHeader,
        IoreqRange,
        IoreqServerHeader,
        IoreqServers,
    )

    n = spec.name

    def site(cls: Any, off: int, count: int = 1) -> _Site:
        return _Site(cls.LAYOUT if hasattr(cls, "LAYOUT") else cls, off, count, n, idx)

    lay = getattr(value, "LAYOUT", None)
    if isinstance(lay, Layout):
        return [_Site(lay, body, 1, n, idx, whole=True)]
    if isinstance(value, Bulk):
        ent = value.entries.dtype
        cls = next((c for c in spec.layouts if c.LAYOUT.dtype == ent), None)
        out = [site(CountHeader, body)]
        if cls is not None and len(value.entries):
            out.append(site(cls, body + 8, len(value.entries)))
        return out
    if isinstance(value, GrantTable):
        return [site(GrantTableHeader, body)]
    if isinstance(value, EvtchnAbi):
        k = len(value.control_blocks)
        out = [site(EvtchnAbiHeader, body), site(EvtchnPagesHeader, body + 8 + 16 * k)]
        if k:
            out.append(site(ControlBlock, body + 8, k))
        return out
    if isinstance(value, IoreqServers):
        out = [site(CountHeader, body)]
        pos = body + 8
        for s in value.servers:
            out.append(site(IoreqServerHeader, pos))
            if len(s.ranges):
                out.append(site(IoreqRange, pos + 24, len(s.ranges)))
            pos += 24 + 24 * len(s.ranges)
        return out
    if spec.name == "HVM_CONTEXT":
        return [site(spec.layouts[0], body + 8)]  # HEADER data after its descriptor
    if not spec.layouts:
        return []
    first = spec.layouts[0].LAYOUT
    arr_field = _array_field(type(value))
    if arr_field is not None:
        arr = getattr(value, arr_field)
        ent = spec.layouts[-1].LAYOUT
        at = body if first is ent else body + first.size
        out = [] if first is ent else [site(first, body)]
        if len(arr):
            out.append(site(ent, at, len(arr)))
        return out
    return [site(first, body)] if blen >= first.size else []


def _field_at(buf: bytearray, fi: FieldInfo, at: int) -> int:
    return int.from_bytes(buf[at : at + fi.size], "little", signed=fi.kind == "int")


def _put(buf: bytearray, fi: FieldInfo, at: int, v: int) -> None:
    buf[at : at + fi.size] = v.to_bytes(fi.size, "little", signed=fi.kind == "int")


def _bad_values(fi: FieldInfo, epoch: Epoch | None) -> list[int]:
    """Values of ``fi`` its layout refuses in ``epoch``, epoch-sensitive ones first."""
    if fi.kind == "bytes" or fi.reserved:
        return []
    bits = 8 * fi.size
    wmin, wmax = (
        (0, (1 << bits) - 1) if fi.kind == "uint" else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    )
    out: list[int] = []
    allowed = fi.allowed(epoch)
    if allowed is not None:
        other = sorted({v for e in EPOCHS for v in (fi.allowed(e) or ())} - set(allowed))
        out += other
        top = max(fi.values or {0: ""}) + 1
        if top <= wmax and top not in allowed:
            out.append(top)
    if fi.lo is not None and fi.lo - 1 >= wmin:
        out.append(fi.lo - 1)
    if fi.hi is not None and fi.hi + 1 <= wmax:
        out.append(fi.hi + 1)
    return out


def _bad_bits(fi: FieldInfo, epoch: Epoch | None) -> list[int]:
    """Single bits of ``fi`` not valid in ``epoch``, bits valid in another epoch first."""
    m = fi.valid_mask(epoch)
    if m is None:
        return []
    width = 8 * fi.size
    other = 0
    for e in EPOCHS:
        other |= fi.valid_mask(e) or 0
    first = [b for b in range(width) if (other >> b) & 1 and not (m >> b) & 1]
    rest = [b for b in range(width) if not (other >> b) & 1 and not (m >> b) & 1]
    return first + rest[:3]


class _Target:
    """A valid stream in bytes, with its model, epoch and the layout sites of its records."""

    def __init__(self, data: bytes, fmt: str, model: Any) -> None:
        self.data = data
        self.format = fmt
        self.model = model
        self.epoch: Epoch | None = model.epoch if fmt == "lu" else None
        self.sites: list[_Site] = []
        self.records: list[tuple[int, int, int, int]] = []  # index, header, type, length
        self.sections: list[Any] = []
        self._collect()

    def _collect(self) -> None:
        buf = memoryview(self.data)
        from xenlu.lu_records import LuSectionEnd

        if self.format == "lu":
            from xenlu.lu_stream import scan_lu

            self.sections = scan_lu(buf)
            start = 0
            recs = [r for sec in self.model.sections for r in sec.records]
            end = len(self.data) - 8
        else:
            from xenlu.libxc_stream import DHDR_SIZE, IHDR_SIZE

            start = IHDR_SIZE + DHDR_SIZE
            recs = list(self.model.records)
            end = len(self.data)
        self.records = list(frames(buf, start, end, 0))
        by_off = {off: (idx, t, ln) for idx, off, t, ln in self.records}
        for s in self.sections:
            self.sites.append(
                _Site(LuSectionEnd.LAYOUT, s.end + 8, 1, "LU_SECTION_END", by_off[s.end][0], True)
            )
        for r in recs:
            if r.offset is None or isinstance(r.value, UnknownRecord):
                continue
            idx, t, ln = by_off[r.offset]
            spec = _spec_by_type(t, self.format)
            if spec is None:
                continue
            self.sites += _value_sites(spec, r.value, r.offset + 8, ln, idx)

    def reseal(self, buf: bytearray, shift_at: int | None = None, by: int = 0) -> None:
        """Recompute every section's crc32c and byte count (LU only)."""
        if self.format != "lu":
            return
        for s in self.sections:
            start, end = s.start, s.end
            if shift_at is not None:
                start += by if start > shift_at else 0
                end += by if end > shift_at else 0
            body = end + 8
            buf[body + 4 : body + 8] = struct.pack("<I", crc32c(bytes(buf[start:end])))
            buf[body + 8 : body + 16] = struct.pack("<Q", end - start)


def _spec_by_type(t: int, fmt: str) -> RecordSpec | None:
    from xenlu.registry import load

    load()
    if fmt == "lu" and t & 0x40000000:
        return LU.get(t)
    return LIBXC.get(t)


def _target(stream: Any) -> _Target:
    from xenlu.api import decode, detect_format
    from xenlu.libxc_stream import LibxcStream, libxc_bytes
    from xenlu.lu_stream import LUStream, encode_lu

    if isinstance(stream, LUStream):
        data = encode_lu(stream)
        return _Target(data, "lu", decode(data, "lu"))
    if isinstance(stream, LibxcStream):
        data = libxc_bytes(stream)
        return _Target(data, "libxc", decode(data, "libxc"))
    if isinstance(stream, (bytes, bytearray, memoryview)):
        data = bytes(stream)
        fmt = detect_format(data)
        if fmt not in ("lu", "libxc"):
            raise CallerError(f"corruptions(): {fmt} streams are not supported (LU or libxc)")
        try:
            model = decode(data, fmt)
        except XenLUError as exc:
            raise CallerError(f"corruptions() needs a valid stream: {exc}") from exc
        return _Target(data, fmt, model)
    raise CallerError(
        f"corruptions(): expected stream bytes or a model, got {type(stream).__name__}"
    )


def corruptions(stream: Any, *, kinds: Iterable[str] | None = None) -> SearchStrategy[Corruption]:
    """Single-fault variants of a valid stream, each with how it must be caught.

    ``stream``: the bytes of a valid LU or libxc stream, or an
    :class:`~xenlu.lu_stream.LUStream` / :class:`~xenlu.libxc_stream.LibxcStream`.
    ``kinds``: a subset of :data:`FAULT_KINDS` (every kind that applies when
    None). Structural faults name the :class:`~xenlu.errors.XenLUError`
    subclass the decoder must raise; in an LU stream every section checksum
    is recomputed after the change, so the named fault is the only one.
    Semantic faults (LU only) change the model and re-encode it; they name
    the finding code :func:`xenlu.validate.validate` must report.
    Fields to break are found by walking the declarations: reserved fields,
    flag fields with bits invalid in the epoch (those valid in another epoch
    first), enumerated and bounded fields.

    >>> c = corruptions(streams("4.11", max_domains=2).example(), kinds=["crc"]).example()
    >>> c.error.__name__
    'ChecksumError'
    >>> c.check()
    """
    t = _target(stream)
    wanted = list(FAULT_KINDS) if kinds is None else list(kinds)
    for k in wanted:
        if k not in FAULT_KINDS:
            raise CallerError(f"unknown fault kind {k!r}; expected one of {', '.join(FAULT_KINDS)}")
    makers = {k: _MAKERS[k](t) for k in wanted if not (t.format != "lu" and k in _SEMANTIC)}
    ok = [m for m in makers.values() if m is not None]
    if not ok:
        raise CallerError(f"corruptions(): none of {wanted} applies to this stream")
    return st.one_of(ok)


Maker = Callable[[_Target], SearchStrategy[Corruption] | None]


def _field_sites(
    t: _Target, pred: Callable[[FieldInfo], list[int]]
) -> list[tuple[_Site, FieldInfo, list[int]]]:
    out = []
    for s in t.sites:
        for fi in s.layout.fields:
            vals = pred(fi)
            if vals:
                out.append((s, fi, vals))
    return out


def _patcher(
    t: _Target,
    kind: str,
    error: type[XenLUError],
    cands: list[tuple[_Site, FieldInfo, list[int]]],
    apply: Callable[[int, FieldInfo, int], int],
    what: str,
) -> SearchStrategy[Corruption] | None:
    if not cands:
        return None

    @st.composite
    def make(draw: Draw) -> Corruption:
        s, fi, vals = draw(st.sampled_from(cands))
        i = draw(st.integers(0, s.count - 1))
        at = s.offset + i * s.layout.size + fi.offset
        choice = draw(st.sampled_from(vals))
        buf = bytearray(t.data)
        old = _field_at(buf, fi, at)
        new = apply(old, fi, choice)
        _put(buf, fi, at, new)
        t.reseal(buf)
        entry = f"[{i}]" if s.count > 1 else ""
        return Corruption(
            kind,
            bytes(buf),
            error,
            None,
            f"{kind}: {s.record}{entry}.{fi.name} at {at:#x}: {what} {old:#x} -> {new:#x}",
            t.format,
        )

    return make()


def _mk_reserved(t: _Target) -> SearchStrategy[Corruption] | None:
    cands = _field_sites(t, lambda fi: [1, 0x80] if fi.reserved else [])

    def apply(old: int, fi: FieldInfo, v: int) -> int:
        return old | v

    return _patcher(t, "reserved", RecordError, cands, apply, "reserved")


def _mk_flag(t: _Target) -> SearchStrategy[Corruption] | None:
    cands = _field_sites(t, lambda fi: [] if fi.reserved else _bad_bits(fi, t.epoch))
    return _patcher(t, "flag", RecordError, cands, lambda old, fi, b: old | (1 << b), "bits")


def _mk_value(t: _Target) -> SearchStrategy[Corruption] | None:
    cands = _field_sites(t, lambda fi: _bad_values(fi, t.epoch))
    return _patcher(t, "value", RecordError, cands, lambda old, fi, v: v, "value")


def _mk_length(t: _Target) -> SearchStrategy[Corruption] | None:
    """A fixed-size record body grown by 8 zero bytes: its length no longer fits."""
    cands = [s for s in t.sites if s.whole and s.layout.size == _length_of(t, s.index)]
    if not cands:
        return None

    @st.composite
    def make(draw: Draw) -> Corruption:
        s = draw(st.sampled_from(cands))
        hdr = s.offset - 8
        buf = bytearray(t.data)
        ln = s.layout.size
        struct.pack_into("<I", buf, hdr + 4, ln + 8)
        end = s.offset + ln + (-ln & 7)
        buf[end:end] = bytes(8)
        t.reseal(buf, shift_at=hdr, by=8)
        return Corruption(
            "length",
            bytes(buf),
            RecordError,
            None,
            f"length: {s.record} (record #{s.index}) at {hdr:#x}: length {ln} -> {ln + 8}",
            t.format,
        )

    return make()


def _length_of(t: _Target, idx: int) -> int:
    return next((ln for i, _, _, ln in t.records if i == idx), -1)


def _body_of(t: _Target, idx: int) -> int:
    return next((off + 8 for i, off, _, _ in t.records if i == idx), -1)


def _mk_count(t: _Target) -> SearchStrategy[Corruption] | None:
    """A count field off by one while the body keeps its length."""
    from xenlu.libxc import HvmParamsHeader
    from xenlu.lu_records import CountHeader

    heads = (CountHeader.LAYOUT, HvmParamsHeader.LAYOUT)
    cands = [s for s in t.sites if s.layout in heads and s.offset == _body_of(t, s.index)]
    if not cands:
        return None

    @st.composite
    def make(draw: Draw) -> Corruption:
        s = draw(st.sampled_from(cands))
        buf = bytearray(t.data)
        (count,) = struct.unpack_from("<I", buf, s.offset)
        new = count + 1 if count == 0 or draw(st.booleans()) else count - 1
        struct.pack_into("<I", buf, s.offset, new)
        t.reseal(buf)
        return Corruption(
            "count",
            bytes(buf),
            RecordError,
            None,
            f"count: {s.record} (record #{s.index}) at {s.offset:#x}: count {count} -> {new}",
            t.format,
        )

    return make()


def _mk_truncation(t: _Target) -> SearchStrategy[Corruption] | None:
    n = len(t.data)
    return st.integers(0, n - 1).map(
        lambda cut: Corruption(
            "truncation",
            t.data[:cut],
            FramingError,
            None,
            f"truncation: {n} bytes cut to {cut}",
            t.format,
        )
    )


def _mk_padding(t: _Target) -> SearchStrategy[Corruption] | None:
    target = t
    padded = [(off, ln) for _, off, _, ln in t.records if ln % 8]
    if not padded:
        # Add an optional record with an odd-sized body (valid), then break its padding.
        target = _with_padded_optional(t)
        padded = [(off, ln) for _, off, _, ln in target.records if ln % 8]
        if not padded:
            return None

    @st.composite
    def make(draw: Draw) -> Corruption:
        off, ln = draw(st.sampled_from(padded))
        at = off + 8 + ln + draw(st.integers(0, (-ln & 7) - 1))
        buf = bytearray(target.data)
        buf[at] = draw(st.integers(1, 255))
        target.reseal(buf)
        return Corruption(
            "padding",
            bytes(buf),
            FramingError,
            None,
            f"padding: byte {at:#x} after the {ln}-byte body at {off:#x} set non-zero",
            target.format,
        )

    return make()


def _with_padded_optional(t: _Target) -> _Target:
    from xenlu.api import decode, encode

    model = t.model
    new: Any
    rec = Record(OPTIONAL | 0x1234, UnknownRecord(OPTIONAL | 0x1234, b"\x01\x02\x03"))
    if t.format == "lu":
        from xenlu.lu_stream import LUStream

        g = model.global_section
        g2 = dataclasses.replace(g, records=[*g.records, rec])
        new = LUStream(g2, model.domains)
    else:
        from xenlu.libxc_stream import LibxcStream

        new = LibxcStream(model.header, model.domain, [*model.records[:-1], rec, model.records[-1]])
    data = encode(new)
    return _Target(data, t.format, decode(data, t.format))


def _mk_crc(t: _Target, field: str) -> SearchStrategy[Corruption] | None:
    if t.format != "lu" or not t.sections:
        return None
    from xenlu.lu_records import LuSectionEnd

    fi = LuSectionEnd.LAYOUT.field(field)

    @st.composite
    def make(draw: Draw) -> Corruption:
        s = draw(st.sampled_from(t.sections))
        at = s.end + 8 + fi.offset
        buf = bytearray(t.data)
        old = _field_at(buf, fi, at)
        if field == "crc32c":
            new = old ^ (1 << draw(st.integers(0, 31)))
        else:
            new = old + draw(st.sampled_from([8, -8, 1])) if old >= 8 else old + 8
        _put(buf, fi, at, new)
        return Corruption(
            "crc" if field == "crc32c" else "section_bytes",
            bytes(buf),
            ChecksumError,
            None,
            f"LU_SECTION_END of section {s.domid:#x} at {s.end:#x}: {field} {old:#x} -> {new:#x}",
            "lu",
        )

    return make()


# -- semantic faults: change the model, re-encode ---------------------------------


def _copy(model: Any) -> Any:
    from xenlu.lu_stream import GlobalSection, LUDomain, LUStream

    return LUStream(
        GlobalSection(list(model.global_section.records)),
        [LUDomain(list(d.records)) for d in model.domains],
    )


def _semantic(
    kind: str, build: Callable[[Draw, Any], tuple[Any, str] | None], t: _Target
) -> SearchStrategy[Corruption] | None:
    from xenlu.lu_stream import encode_lu

    code = _finding_codes()[kind]

    @st.composite
    def make(draw: Draw) -> Corruption:
        out = build(draw, _copy(t.model))
        if out is None:  # pragma: no cover - applicability is checked up front
            raise CallerError(f"{kind} does not apply")
        new, where = out
        return Corruption(kind, encode_lu(new), None, code, f"{kind}: {where}", "lu")

    return make()


def _mk_owned_twice(t: _Target) -> SearchStrategy[Corruption] | None:
    from xenlu.lu_records import Bulk, OwnershipEntry, T

    doms = [d for d in t.model.domains if len(d.ownership)]
    if not doms:
        return None

    def build(draw: Draw, m: Any) -> tuple[Any, str]:
        a = draw(st.sampled_from([d.domid for d in doms]))
        src = m.domain(a)
        o = src.ownership
        i = draw(st.integers(0, len(o) - 1))
        frame = int(o["start_mfn"][i]) + draw(st.integers(0, int(o["nr_pages"][i]) - 1))
        others = [d.domid for d in m.domains if d.domid != a]
        b = draw(st.sampled_from(others)) if others else a
        dst = m.domain(b)
        e = OwnershipEntry.LAYOUT.empty(1)
        e["start_mfn"], e["nr_pages"] = frame, 1
        dst.records.append(Record(T.LU_PAGE_OWNERSHIP, Bulk(e)))
        return m, f"frame {frame:#x} of domain {a} also owned by domain {b}"

    return _semantic("owned_twice", build, t)


def _mk_nonreciprocal(t: _Target) -> SearchStrategy[Corruption] | None:
    from xenlu.lu_records import ECS_INTERDOMAIN, Bulk, T

    pairs = []
    for d in t.model.domains:
        ev = d.evtchns
        idx = np.flatnonzero(ev["state"] == ECS_INTERDOMAIN)
        if len(idx):
            pairs.append(d.domid)
    if not pairs:
        return None

    def build(draw: Draw, m: Any) -> tuple[Any, str]:
        d = m.domain(draw(st.sampled_from(pairs)))
        ev = d.evtchns.copy()
        i = int(draw(st.sampled_from(list(np.flatnonzero(ev["state"] == ECS_INTERDOMAIN)))))
        rdom = int(ev["remote_domid"][i])
        rport = int(ev["detail"][i])
        try:
            rev = m.domain(rdom).evtchns
            cands = [int(p) for p in rev["port"] if int(p) != rport]
        except CallerError:
            cands = []
        new = draw(st.sampled_from(cands)) if cands else rport + 1
        ev["detail"][i] = new
        # Keep every other record: put the changed channels back as one record.
        recs = [r for r in d.records if r.type != T.LU_EVTCHNS]
        d.records = [*recs, Record(T.LU_EVTCHNS, Bulk(ev))]
        port = int(ev["port"][i])
        return m, f"domain {d.domid} port {port} -> domain {rdom} port {new} (was {rport})"

    return _semantic("evtchn_nonreciprocal", build, t)


def _intervals(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sorted [start, end) frame intervals used by owners, the bootmem and Xen extents."""
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    for d in model.domains:
        o = d.ownership
        starts.append(o["start_mfn"].astype(np.uint64))
        ends.append(o["start_mfn"].astype(np.uint64) + o["nr_pages"].astype(np.uint64))
    for a in (model.reusable_regions, model.xen_pages):
        starts.append(a["start_mfn"].astype(np.uint64))
        ends.append(a["start_mfn"].astype(np.uint64) + a["nr_pages"].astype(np.uint64))
    h = model.host
    starts.append(np.array([h.lu_bootmem_start >> 12], np.uint64))
    ends.append(np.array([(h.lu_bootmem_start + h.lu_bootmem_size + 4095) >> 12], np.uint64))
    s = np.concatenate(starts)
    e = np.concatenate(ends)
    order = np.argsort(s)
    return s[order], e[order]


def _unowned_frame(model: Any) -> int | None:
    s, e = _intervals(model)
    f = int(model.host.max_page) - 1
    while f >= 0:
        hit = np.flatnonzero((s <= f) & (e > f))
        if not len(hit):
            return f
        f = int(s[hit].min()) - 1
    return None


def _mk_grant_unowned(t: _Target) -> SearchStrategy[Corruption] | None:
    from xenlu.lu_records import Bulk, T

    frame = _unowned_frame(t.model)
    if frame is None:
        return None
    cands = []
    for d in t.model.domains:
        gm = d.grant_maps
        if not len(gm):
            continue
        p2m = d.p2m
        mapped: set[int] = set()
        if len(p2m):
            sel = np.isin(p2m["p2m_type"], (7, 8))
            for mfn, n in zip(p2m["mfn"][sel], p2m["nr_pages"][sel], strict=True):
                mapped.update(range(int(mfn), int(mfn) + int(n)))
        ok = [i for i in range(len(gm)) if int(gm["mfn"][i]) not in mapped]
        if ok:
            cands.append((d.domid, ok))
    if not cands:
        return None

    def build(draw: Draw, m: Any) -> tuple[Any, str]:
        domid, ok = draw(st.sampled_from(cands))
        d = m.domain(domid)
        gm = d.grant_maps.copy()
        i = draw(st.sampled_from(ok))
        old = int(gm["mfn"][i])
        gm["mfn"][i] = frame
        recs = [r for r in d.records if r.type != T.LU_GRANT_MAPS]
        at = next(j for j, r in enumerate(recs) if r.type == T.LU_GRANT_TABLE) + 1
        d.records = [*recs[:at], Record(T.LU_GRANT_MAPS, Bulk(gm)), *recs[at:]]
        g = int(gm["granting_domid"][i])
        return m, (
            f"domain {domid} handle {int(gm['handle'][i])} maps frame {frame:#x} "
            f"(owned by nobody) from domain {g} (was {old:#x})"
        )

    return _semantic("grant_map_unowned", build, t)


def _mk_port_above_max(t: _Target) -> SearchStrategy[Corruption] | None:
    from xenlu.lu_records import T

    cands = [d.domid for d in t.model.domains if len(d.evtchns)]
    if not cands:
        return None

    def build(draw: Draw, m: Any) -> tuple[Any, str]:
        d = m.domain(draw(st.sampled_from(cands)))
        top = _max_port(d)
        info = dataclasses.replace(d.info, max_evtchn_port=top - 1)
        d.records[0] = Record(T.LU_DOMAIN, info)
        return m, f"domain {d.domid}: max_evtchn_port {top - 1} below its port {top}"

    return _semantic("port_above_max", build, t)


_MAKERS: dict[str, Maker] = {
    "padding": _mk_padding,
    "reserved": _mk_reserved,
    "flag": _mk_flag,
    "value": _mk_value,
    "length": _mk_length,
    "count": _mk_count,
    "truncation": _mk_truncation,
    "crc": lambda t: _mk_crc(t, "crc32c"),
    "section_bytes": lambda t: _mk_crc(t, "section_bytes"),
    "owned_twice": _mk_owned_twice,
    "evtchn_nonreciprocal": _mk_nonreciprocal,
    "grant_map_unowned": _mk_grant_unowned,
    "port_above_max": _mk_port_above_max,
}

# The xenstored migration stream's strategies (issue 17) live in their own module.
from xenlu.strategies_xenstore import XsCorruption as XsCorruption  # noqa: E402
from xenlu.strategies_xenstore import xenstore_corruptions as xenstore_corruptions  # noqa: E402
from xenlu.strategies_xenstore import xenstore_models as xenstore_models  # noqa: E402
from xenlu.strategies_xenstore import xenstore_streams as xenstore_streams  # noqa: E402
