"""The §2 grammar of a Live Update stream, as tables (LU spec §2, §4.15–§4.17).

A stream is a global section, domain sections in ascending domid order (as
many as LU_HOST_INFO.nr_domains says), then END. Each section opens with a
fixed record (LU_VERSION, LU_DOMAIN), admits the record types of its table
— how many of each per domain type, and which type must come first — and
closes with LU_SECTION_END, where the table's minimum counts are checked.

Everything here is data plus the few functions that read it, raising the
one :class:`~xenlu.core.errors.GrammarError` each rule names. The one walker
(:mod:`xenlu.lu.walk`) calls them for every record, whatever its handler
(build the stream, or check only); the check-only handler learns from the
same tables which records it may take in bulk (:func:`steady_types`).

>>> DOMAIN.counts[T.LU_P2M][PV], DOMAIN.counts[T.LU_P2M][HVM]
((0, 0), (0, None))
>>> DOMAIN.after[T.LU_EVTCHNS] == T.LU_EVTCHN_ABI
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xenlu.core.epochs import SUPPORTED_RANGE, Epoch, is_supported
from xenlu.core.errors import ChecksumError, FramingError, GrammarError, RecordError, VersionError
from xenlu.core.registry import LIBXC, LU, OPTIONAL, RecordSpec
from xenlu.lu.host_records import LuSectionEnd, LuVersion
from xenlu.lu.records import ENTRY_RULES, T
from xenlu.migration.libxc_records import PV_VCPU_TYPES
from xenlu.migration.libxc_records import RecType as X

__all__ = [
    "DOMAIN",
    "END",
    "GLOBAL",
    "HVM",
    "LIBXC_IN_LU",
    "PV",
    "VCPU_TYPES",
    "SectionGrammar",
    "SectionState",
    "admit",
    "admitted",
    "close",
    "name_of",
    "spec_for",
    "steady_types",
]

END = 0x00000000
#: LU_DOMAIN.domain_type values (§4.4); the global section has variant 0.
PV, HVM = 1, 2
#: The per-vCPU libxc records (§4.16): PV only, one per (type, vCPU id).
VCPU_TYPES = PV_VCPU_TYPES

#: (min, max) records of a type; None max = unbounded.
Card = tuple[int, int | None]


@dataclass(frozen=True)
class SectionGrammar:
    """One kind of section: its table and the words of its errors.

    ``counts`` maps a record type to its :data:`Card` per variant (domain
    type, or 0 in the global section); a known type absent from it is not
    allowed in this kind of section. ``after[t]`` is the type that must
    come before ``t``. ``per_vcpu`` types are unique per vCPU id. The
    ``*_msg`` strings are formatted with ``name``, ``first``, ``hi``,
    ``lo`` and ``kind`` (PV/HVM).
    """

    where: str
    counts: Mapping[int, Mapping[int, Card]]
    after: Mapping[int, int]
    per_vcpu: frozenset[int]
    too_many_msg: str
    too_many_bound: bool  # whether a "too many" error says expected/got
    before_msg: str
    before_expected: str
    missing_msg: str
    missing_expected: str
    end_inside: bool  # END gets its own error (a domain section)

    def kind(self, variant: int) -> str:
        return "HVM" if variant == HVM else "PV"


#: §2 global-section: LU_VERSION first (see :func:`open_global`), exactly one
#: LU_HOST_INFO, then any number of region and Xen-page records.
GLOBAL = SectionGrammar(
    where="the global section",
    counts={
        T.LU_HOST_INFO: {0: (1, 1)},
        T.LU_REUSABLE_REGIONS: {0: (0, None)},
        T.LU_XEN_PAGES: {0: (0, None)},
    },
    after={T.LU_REUSABLE_REGIONS: T.LU_HOST_INFO, T.LU_XEN_PAGES: T.LU_HOST_INFO},
    per_vcpu=frozenset(),
    too_many_msg="second {name}",
    too_many_bound=False,
    before_msg="{name} before {first}",
    before_expected="{first}",
    missing_msg="{name} missing",
    missing_expected="{name} before LU_SECTION_END",
    end_inside=False,
)

_ANY: Card = (0, None)
_ONE: Card = (0, 1)
_NONE: Card = (0, 0)

#: §2 domain-section table: (min, max) per record type and domain type.
DOMAIN = SectionGrammar(
    where="a domain section",
    counts={
        T.LU_P2M: {PV: _NONE, HVM: _ANY},
        T.LU_PAGE_OWNERSHIP: {PV: _ANY, HVM: _ANY},
        T.LU_PAGE_TYPES: {PV: _ANY, HVM: _NONE},
        T.LU_GRANT_TABLE: {PV: _ONE, HVM: _ONE},
        T.LU_GRANT_MAPS: {PV: _ANY, HVM: _ANY},
        T.LU_EVTCHN_ABI: {PV: _ONE, HVM: _ONE},
        T.LU_EVTCHNS: {PV: _ANY, HVM: _ANY},
        T.LU_IOREQ_SERVERS: {PV: _NONE, HVM: _ONE},
        X.X86_PV_INFO: {PV: (1, 1), HVM: _NONE},
        X.HVM_CONTEXT: {PV: _NONE, HVM: (1, 1)},
        X.HVM_PARAMS: {PV: _NONE, HVM: _ONE},
        X.X86_TSC_INFO: {PV: _ONE, HVM: _ONE},
        X.X86_CPUID_POLICY: {PV: _ONE, HVM: _ONE},
        X.X86_MSR_POLICY: {PV: _ONE, HVM: _ONE},
        **{t: {PV: _ANY, HVM: _NONE} for t in VCPU_TYPES},
    },
    #: §2 order rules inside a domain section: type -> the type it must follow.
    after={T.LU_EVTCHNS: T.LU_EVTCHN_ABI, T.LU_GRANT_MAPS: T.LU_GRANT_TABLE},
    per_vcpu=VCPU_TYPES,
    too_many_msg="{name} not allowed here: at most {hi} in a {kind} domain",
    too_many_bound=True,
    before_msg="{name} before {first}",
    before_expected="{first} first",
    missing_msg="{name} missing in a {kind} domain",
    missing_expected="{lo} {name} record",
    end_inside=True,
)


#: The libxc record types a domain section may hold (§4.16), from the table.
LIBXC_IN_LU = frozenset(t for t in DOMAIN.counts if not t & 0x40000000)


class SectionState:
    """Where one section being read stands: records seen per type, vCPU ids."""

    __slots__ = ("counts", "grammar", "variant", "vcpu_ids")

    def __init__(self, grammar: SectionGrammar, variant: int) -> None:
        self.grammar = grammar
        self.variant = variant
        self.counts: dict[int, int] = {}
        self.vcpu_ids: set[tuple[int, int]] = set()

    def prerequisites(self) -> frozenset[int]:
        """The ``after`` prerequisites already seen (what :func:`steady_types` keys on)."""
        return frozenset(t for t in self.grammar.after.values() if self.counts.get(t))


def name_of(t: int) -> str:
    """The record's name, or its type in hex when unknown."""
    spec = LU.get(t) or LIBXC.get(t)
    return spec.name if spec else f"{t:#010x}"


def spec_for(t: int) -> RecordSpec | None:
    """The spec of an LU record (bit 30) or a libxc record allowed in LU (§4.16)."""
    if t & 0x40000000:
        return LU.get(t)
    return LIBXC.get(t)


def _err(msg: str, off: int, idx: int, t: int | None, **kw: Any) -> GrammarError:
    return GrammarError(msg, offset=off, record_index=idx, record_type=t, **kw)


def admit(st: SectionState, idx: int, off: int, t: int) -> None:
    """§2: may a record of type ``t`` come next in the section ``st``?

    Raises the located :class:`GrammarError`, else counts the record.
    Unknown types pass (their body decoder decides, §3); so do optional
    ones (bit 31).
    """
    g = st.grammar
    if t == END and g.end_inside:
        raise _err(
            "END inside a domain section", off, idx, t, field="type", expected="LU_SECTION_END"
        )
    if t & OPTIONAL:
        return
    card = g.counts.get(t)
    if card is None:
        if spec_for(t) is None:
            return
        raise _err(f"{name_of(t)} not allowed in {g.where}", off, idx, t, field="type")
    counts = st.counts
    n = counts.get(t, 0) + 1
    hi = card[st.variant][1]
    if hi is not None and n > hi:
        kind = g.kind(st.variant)
        if t in g.per_vcpu and hi == 0:
            raise _err(f"{name_of(t)} in an {kind} domain", off, idx, t, field="type")
        msg = g.too_many_msg.format(name=name_of(t), hi=hi, kind=kind)
        bound: dict[str, Any] = {"expected": f"<= {hi}", "got": n} if g.too_many_bound else {}
        raise _err(msg, off, idx, t, field="type", **bound)
    first = g.after.get(t)
    if first is not None and not counts.get(first):
        words = {"name": name_of(t), "first": name_of(first)}
        raise _err(
            g.before_msg.format(**words),
            off,
            idx,
            t,
            field="type",
            expected=g.before_expected.format(**words),
        )
    counts[t] = n


def admitted(st: SectionState, idx: int, off: int, t: int, value: Any) -> None:
    """§2 rules on the decoded record: one per-vCPU record per (type, vCPU)."""
    if t in st.grammar.per_vcpu:
        key = (t, int(value.vcpu_id))
        if key in st.vcpu_ids:
            raise _err(f"second {name_of(t)} for vCPU {value.vcpu_id}", off, idx, t, field="type")
        st.vcpu_ids.add(key)


def close(st: SectionState, idx: int, off: int) -> None:
    """§2's minimum counts, checked at the section's LU_SECTION_END."""
    g = st.grammar
    for t, per in g.counts.items():
        lo = per[st.variant][0]
        if st.counts.get(t, 0) < lo:
            words = {"name": name_of(t), "lo": lo, "kind": g.kind(st.variant)}
            raise _err(
                g.missing_msg.format(**words),
                off,
                idx,
                T.LU_SECTION_END,
                field="type",
                expected=g.missing_expected.format(**words),
            )


_STEADY: dict[tuple[int, int, frozenset[int], Epoch], dict[int, int]] = {}


def steady_types(st: SectionState, epoch: Epoch) -> dict[int, int]:
    """type -> entry size, for the bulk records :func:`admit` takes any number
    of times in ``st`` without a change that matters: no bound, no minimum,
    prerequisite met, not itself a prerequisite not yet seen, entries
    checked one by one (so many records' entries may be checked as one
    array) and 8-byte entries (bodies need no padding)."""
    g = st.grammar
    seen = st.prerequisites()
    key = (id(g), st.variant, seen, epoch)
    hot = _STEADY.get(key)
    if hot is None:
        hot = {}
        for t, per in g.counts.items():
            rules = ENTRY_RULES.get(t)
            if rules is None or not rules.per_entry or per[st.variant] != _ANY:
                continue
            first = g.after.get(t)
            if first is not None and first not in seen:
                continue
            if t in g.after.values() and t not in seen:
                continue
            size = rules.layout_for(epoch).LAYOUT.size
            if size % 8 == 0:
                hot[t] = size
        _STEADY[key] = hot
    return hot


# --- the stream around the sections (§2 stream, §4.1, §4.17) -----------------


def open_global(idx: int, off: int, t: int) -> None:
    """§2: a stream starts with LU_VERSION."""
    if t != T.LU_VERSION:
        raise _err(
            "stream does not start with LU_VERSION",
            off,
            idx,
            t,
            field="type",
            expected=f"{T.LU_VERSION:#010x}",
            got=t,
        )


def check_version(ver: LuVersion, idx: int, off: int) -> None:
    """§4.1: the epochs xenlu knows."""
    if not is_supported(ver.xen_major, ver.xen_minor):
        at = 0 if ver.xen_major != 4 else 4
        raise VersionError(
            f"Xen {ver.xen_major}.{ver.xen_minor} is not supported",
            offset=off + 8 + at,
            record_index=idx,
            record_type=T.LU_VERSION,
            field="xen_major" if at == 0 else "xen_minor",
            expected=SUPPORTED_RANGE,
            got=f"{ver.xen_major}.{ver.xen_minor}",
        )


def open_domain(idx: int, off: int, t: int) -> None:
    """§2: a domain section starts with LU_DOMAIN."""
    if t != T.LU_DOMAIN:
        what = "optional record" if t & OPTIONAL else name_of(t)
        raise _err(
            f"{what} before LU_DOMAIN: a domain section starts with LU_DOMAIN",
            off,
            idx,
            t,
            field="type",
            expected="LU_DOMAIN",
        )


def next_domain(ndom: int, nr: int, idx: int, off: int, t: int) -> None:
    """§2: no more domain sections than LU_HOST_INFO.nr_domains."""
    if ndom == nr and t == T.LU_DOMAIN:
        raise _err(
            "more domain sections than LU_HOST_INFO.nr_domains",
            off,
            idx,
            t,
            field="nr_domains",
            expected=nr,
            got=nr + 1,
        )


def domid_order(domid: int, last: int, idx: int, off: int) -> None:
    """§2: domain sections in ascending domid order."""
    if domid <= last:
        raise _err(
            "domain sections not in ascending domid order",
            off + 8,
            idx,
            T.LU_DOMAIN,
            field="domid",
            expected=f"> {last}",
            got=domid,
        )


def at_end(ndom: int, nr: int, idx: int, off: int, length: int, end: int, memory: bool) -> None:
    """§4.17: END is empty, comes after nr_domains sections, and is the last
    record (in memory, §5, whatever follows it is not the stream's)."""
    if length:
        raise RecordError(
            "END record not empty",
            offset=off + 4,
            record_index=idx,
            record_type=END,
            field="length",
            expected=0,
            got=length,
        )
    if ndom != nr:
        raise _err(
            "number of domain sections differs from LU_HOST_INFO.nr_domains",
            off,
            idx,
            END,
            field="nr_domains",
            expected=nr,
            got=ndom,
        )
    stop = off + 8
    if not memory and stop != end:
        raise FramingError(
            "bytes after END",
            offset=stop,
            expected="end of stream",
            got=f"{end - stop} more bytes",
        )


_SECTION_END_MISMATCH = {
    "domid": "LU_SECTION_END names another section",
    "section_bytes": "section length mismatch",
    "crc32c": "section crc32c mismatch",
}


def section_end_mismatch(field: str, idx: int, off: int, expected: int, got: int) -> ChecksumError:
    """§4.15: the LU_SECTION_END record ``idx`` (its header at ``off``)
    disagrees with its section in ``field`` (``domid``, ``section_bytes`` or
    ``crc32c``); the mapped walker and the incremental machine raise this."""
    return ChecksumError(
        _SECTION_END_MISMATCH[field],
        offset=off + 8 + LuSectionEnd.LAYOUT.field(field).offset,
        record_index=idx,
        record_type=T.LU_SECTION_END,
        field=field,
        expected=expected,
        got=got,
    )
