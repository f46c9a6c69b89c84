"""The record grammar of a libxc stream, as tables (reference §1.7, §1.8).

Each record type that the grammar constrains has a *class*:

* content (memory and register state: PAGE_DATA, X86_PV_P2M_FRAMES, the PV
  vCPU records, SHARED_INFO, HVM_CONTEXT, HVM_PARAMS, X86_TSC_INFO) — in
  v3 only after STATIC_DATA_END;
* wrong domain (HVM_CONTEXT/HVM_PARAMS in a PV stream; X86_PV_INFO,
  X86_PV_P2M_FRAMES, the PV vCPU records and SHARED_INFO in an HVM one);
* v3 only (X86_CPUID_POLICY, X86_MSR_POLICY); STATIC_DATA_END (v3 only, once);
* back channel (CHECKPOINT_DIRTY_PFN_LIST): the pandoc marks it "(Secondary
  -> Primary)", "only applicable in the backchannel of a checkpointed
  stream"; no handler of Xen's forward restorer takes it, so ``restore()``
  fails it ("Mandatory record ... not handled"). xenlu reads forward
  streams only, so it is refused wherever it appears (a COLO back-channel
  reader would be a separate format);
* free (any other type).

PV streams keep a strict order (§1.7), written as stages: X86_PV_INFO sets
stage 1, X86_PV_P2M_FRAMES needs 1 and sets 2, PAGE_DATA needs 2 and sets 3,
the PV vCPU records need 3. X86_PV_INFO comes once: a record that sets a
stage already reached is a duplicate for the types in ``PV_ONCE`` (Xen's
``handle_x86_pv_info()``: "Already received X86_PV_INFO record"). A v3
stream must contain STATIC_DATA_END before it ends (§1.8).

:func:`admit` is the one reading of these tables; the walker
(:mod:`xenlu.migration.libxc_stream`) calls it for each record, and its check-only
handler asks :func:`steady` which types it may take without asking (those
:func:`admit` accepts without changing the state).

>>> st = State(3, DHDR_TYPE_HVM)
>>> sorted(t for t in steady(st, (0x01, 0x09, 0x10), False))
[]
>>> admit(st, 0, 40, 0x10); sorted(steady(st, (0x01, 0x09, 0x10), False))
[1, 9]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xenlu.core.errors import GrammarError
from xenlu.core.registry import LIBXC, Record
from xenlu.migration.libxc_records import PV_VCPU_TYPES, RecType

__all__ = [
    "CONTENT",
    "DHDR_TYPE_HVM",
    "DHDR_TYPE_PV",
    "State",
    "admit",
    "at_end",
    "steady",
]

_R = RecType
DHDR_TYPE_PV = 1
DHDR_TYPE_HVM = 2

# Grammar classes.
FREE, CONTENT_CLS, WRONG_DOMAIN, V3_ONLY, SDE_CLS, BACK_CHANNEL = 0, 1, 2, 3, 4, 5

#: Memory and register content: after STATIC_DATA_END in v3 (§1.7).
CONTENT = frozenset(
    (
        _R.PAGE_DATA,
        _R.X86_PV_P2M_FRAMES,
        *PV_VCPU_TYPES,
        _R.SHARED_INFO,
        _R.HVM_CONTEXT,
        _R.HVM_PARAMS,
        _R.X86_TSC_INFO,
    )
)
PV_ONLY = frozenset((_R.X86_PV_INFO, _R.X86_PV_P2M_FRAMES, *PV_VCPU_TYPES, _R.SHARED_INFO))
HVM_ONLY = frozenset((_R.HVM_CONTEXT, _R.HVM_PARAMS))
V3_ONLY_TYPES = frozenset((_R.X86_CPUID_POLICY, _R.X86_MSR_POLICY))
#: Records of the COLO back channel (Secondary -> Primary), never in a forward stream.
BACK_CHANNEL_TYPES = frozenset((_R.CHECKPOINT_DIRTY_PFN_LIST,))

# §1.7 PV strict order as stages: a record needs the stage its predecessor sets.
PV_STAGE_SETS = {_R.X86_PV_INFO: 1, _R.X86_PV_P2M_FRAMES: 2, _R.PAGE_DATA: 3}
PV_STAGE_NEEDS = {_R.X86_PV_P2M_FRAMES: 1, _R.PAGE_DATA: 2, **dict.fromkeys(PV_VCPU_TYPES, 3)}
PV_STAGE_NAMES = {1: "X86_PV_INFO", 2: "X86_PV_P2M_FRAMES", 3: "PAGE_DATA"}
#: Stage setters that come once per stream (several X86_PV_P2M_FRAMES and
#: PAGE_DATA records are normal).
PV_ONCE = frozenset((_R.X86_PV_INFO,))

#: type -> (grammar class, PV stage needed, PV stage set)
GrammarTable = dict[int, tuple[int, int, int]]


def _table(domain_type: int) -> GrammarTable:
    pv = domain_type == DHDR_TYPE_PV
    classes = dict.fromkeys(CONTENT, CONTENT_CLS)
    classes.update(dict.fromkeys(HVM_ONLY if pv else PV_ONLY, WRONG_DOMAIN))
    classes.update(dict.fromkeys(V3_ONLY_TYPES, V3_ONLY))
    classes[_R.STATIC_DATA_END] = SDE_CLS
    classes.update(dict.fromkeys(BACK_CHANNEL_TYPES, BACK_CHANNEL))
    if pv:
        for t in PV_STAGE_SETS:
            classes.setdefault(t, FREE)
    return {
        t: (c, PV_STAGE_NEEDS.get(t, 0) if pv else 0, PV_STAGE_SETS.get(t, 0) if pv else 0)
        for t, c in classes.items()
    }


TABLES = {DHDR_TYPE_PV: _table(DHDR_TYPE_PV), DHDR_TYPE_HVM: _table(DHDR_TYPE_HVM)}


class State:
    """Where a libxc stream stands: version, STATIC_DATA_END seen, PV stage."""

    __slots__ = ("kind", "pv_stage", "seen_sde", "table", "v3")

    def __init__(self, version: int, domain_type: int) -> None:
        self.v3 = version >= 3
        self.table = TABLES[domain_type]
        self.kind = "PV" if domain_type == DHDR_TYPE_PV else "HVM"
        self.seen_sde = False
        self.pv_stage = 0

    def key(self) -> tuple[int, bool, bool, int]:
        """What :func:`admit` reads (the cache key of :func:`steady`)."""
        return (id(self.table), self.v3, self.seen_sde, self.pv_stage)

    def copy(self) -> State:
        other = State.__new__(State)
        other.v3, other.table, other.kind = self.v3, self.table, self.kind
        other.seen_sde, other.pv_stage = self.seen_sde, self.pv_stage
        return other

    def replay(self, records: Iterable[Record]) -> None:
        """Advance the state over already decoded (valid) records."""
        for r in records:
            admit(self, 0, 0, r.type)


def _name(t: int) -> str:
    return LIBXC.name_of(t) or f"{t:#010x}"


def _err(msg: str, offset: int, index: int, rtype: int, **kw: Any) -> GrammarError:
    return GrammarError(
        msg, offset=offset, record_index=index, record_type=rtype, field="type", **kw
    )


def admit(st: State, index: int, hpos: int, rtype: int) -> None:
    """May a record of ``rtype`` come next (§1.7, §1.8)? Raise the located
    :class:`GrammarError` (at the record header, field ``type``), else
    advance the state."""
    g = st.table.get(rtype)
    if g is None:
        return
    cls, need, sets = g
    if cls == WRONG_DOMAIN:
        raise _err(f"{_name(rtype)} not allowed in a {st.kind} stream", hpos, index, rtype)
    if cls == BACK_CHANNEL:
        raise _err(
            f"{_name(rtype)} belongs to the COLO back channel, not to a forward stream",
            hpos,
            index,
            rtype,
            expected="a forward-stream record",
        )
    if need > st.pv_stage:
        # §1.7: PV strict order.
        first = PV_STAGE_NAMES[need]
        raise _err(
            f"{_name(rtype)} before {first} in a PV stream",
            hpos,
            index,
            rtype,
            expected=f"{first} first",
        )
    if sets > st.pv_stage:
        st.pv_stage = sets
    elif sets and rtype in PV_ONCE:
        raise _err(f"second {_name(rtype)}", hpos, index, rtype)
    if cls == CONTENT_CLS:
        if st.v3 and not st.seen_sde:
            # §1.7: STATIC_DATA_END before any memory or register content.
            raise _err(
                f"{_name(rtype)} before STATIC_DATA_END in a v3 stream",
                hpos,
                index,
                rtype,
                expected="STATIC_DATA_END first",
            )
    elif cls != FREE:
        if not st.v3:
            # §1.8: STATIC_DATA_END, CPUID and MSR policy records are v3 only.
            raise _err(
                f"{_name(rtype)} not allowed in a v2 stream", hpos, index, rtype, expected="v3"
            )
        if cls == SDE_CLS:
            if st.seen_sde:
                raise _err("second STATIC_DATA_END", hpos, index, rtype)
            st.seen_sde = True


def at_end(st: State, index: int, hpos: int, rtype: int) -> None:
    """§1.8: a v3 stream contains STATIC_DATA_END ("missing" errors name no
    field; Xen's verifier misses this)."""
    if st.v3 and not st.seen_sde:
        raise GrammarError(
            f"v3 stream reaches {_name(rtype)} without STATIC_DATA_END",
            offset=hpos,
            record_index=index,
            record_type=rtype,
            expected="a STATIC_DATA_END record",
        )


def is_last(rtype: int, embedded: bool) -> bool:
    """END closes a stream; CHECKPOINT too inside a libxl stream."""
    return rtype == _R.END or (embedded and rtype == _R.CHECKPOINT)


_STEADY: dict[tuple[Any, ...], frozenset[int]] = {}


def steady(st: State, types: Iterable[int], embedded: bool) -> frozenset[int]:
    """The types among ``types`` that :func:`admit` accepts in ``st`` without
    changing it (and that do not close the stream): derived by asking
    :func:`admit` itself, so the table has one reading."""
    kinds = tuple(types)
    key = (*st.key(), embedded, kinds)
    out = _STEADY.get(key)
    if out is None:
        here = st.key()
        keep = set()
        for t in kinds:
            if is_last(t, embedded):
                continue
            probe = st.copy()
            try:
                admit(probe, 0, 0, t)
            except GrammarError:
                continue
            if probe.key() == here:
                keep.add(t)
        out = _STEADY[key] = frozenset(keep)
    return out
