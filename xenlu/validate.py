"""Whole-host semantic validation of a Live Update stream (LU spec §7).

``verify`` (the decoder) is structural: every record is well-formed by
itself. :func:`validate` checks every rule that relates two or more records
or entries — ownership across domains, references from one record to
another or to another domain, vCPU bounds against LU_DOMAIN, ports against
the ABI record, uniqueness and non-overlap — and reports **every** finding,
not just the first, each with a stable code (see :data:`CODES`).

>>> from xenlu.hostgen import make_host
>>> report = validate(make_host((4, 11), n_hvm=2, mem_mib=4))
>>> report.ok, report.findings
(True, [])

Theory of operation
-------------------
Every check works on host-wide columns: the entries of one bulk record type
of all domains concatenated (in ascending domid order) with a domain column
built by ``np.repeat``; no check loops over entries in Python (loops run
over domains or over the bounded set of findings that are reported). The
two big tables, ownership and P2M, are walked in windows of 1 Mi rows of
that same concatenation, so temporaries stay a few MiB and are reused.

Ownership (§4.8) is the heart of it. Frames are resolved through an
*owner index* with two interchangeable implementations that give the same
answers:

* **dense** — for fragmented hosts (the highest owned frame M and the
  owned frames at most ~8 per entry): a frame → ``domain << 32 | entry``
  map over ``[0, M)``, filled by one scatter; a second gather finds every
  frame claimed twice. The owner of a P2M, grant-map, page-type or grant
  frame is then one gather. This keeps a 64 GiB host of 16.7 M
  single-frame extents at about the time of ``np.sort`` of its frame
  column (``benchmarks/bench_validate.py``).
* **interval** — otherwise (few large extents, or a sparse frame space):
  one ``np.sort`` of all extent starts (packed with their row) and a
  ``cummax`` of their ends finds every extent overlapping another; lookups
  use ``searchsorted`` over the sorted, disjoint owner segments (queries
  are sorted first when large).

Both mark a frame claimed by several ownership entries as *ambiguous*: it is
reported once, as ``OWN_DUPLICATE`` on every claimant, and the rules that
need a frame's owner (P2M, page types, grant frames and maps) skip it
rather than cascading. Both describe ownership as maximal *runs* of frames
with the same owner (or none, or ambiguous), so a P2M extent of any length
is checked with two run lookups instead of being expanded frame by frame.

The bounded output: a rule broken by millions of entries yields the first
``max_per_code`` findings (by entry index) per code per domain; the rest
are counted in :attr:`Report.omitted`.

Decisions where the spec leaves room:

* A finding sits on the entry that holds the offending value. Where two
  entries conflict symmetrically (a frame owned twice, overlapping GFN
  ranges, overlapping extents, overlapping IOREQ ranges) each entry gets a
  finding naming the other. Where a key must be unique (page-type mfn,
  grant handle, port, control-block vCPU, IOREQ id, VIRQ, pirq), every
  occurrence after the first gets one, with ``first_entry``.
* ``others`` names every other domain involved, as the records name them:
  a granting, emulating or remote domain that is missing from the stream
  is still named (its absence is the finding).
* A FIFO port at or beyond ``1024 × nr_event_array_pages`` is valid by
  §4.12 (its pending state is the ``pending`` flag); it is reported as the
  *warning* ``EVTCHN_FIFO_BEYOND_ARRAY`` because the guest has not yet
  given it an event word.
* Global-section findings (extents) carry ``domid`` = ``DOMID_XEN``, the
  domid of the global section's LU_SECTION_END (§4.15).
* LU_GRANT_TABLE findings: ``entry`` is the index of the frame in the
  grant frames followed by the status frames.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from xenlu.errors import CallerError
from xenlu.lu_records import (
    DOMID_XEN,
    ECS_INTERDOMAIN,
    ECS_PIRQ,
    ECS_VIRQ,
    GNTMAP_HOST_MAP,
    GNTMAP_READONLY,
    INVALID_MFN,
    LU_STATE_SHINFO32,
    P2M_TYPES,
    PER_VCPU_VIRQS,
)
from xenlu.lu_stream import VCPU_TYPES, LUDomain, LUStream, X

__all__ = [
    "CODES",
    "CORRUPTION_FINDINGS",
    "Finding",
    "Omitted",
    "Report",
    "validate",
]

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]
Arr = npt.NDArray[Any]
Severity = Literal["error", "warning"]
Method = Literal["auto", "dense", "interval"]

#: Frames at or above this are beyond any host (x86-64 MFNs are < 2**40);
#: internally every frame number is an int64 clipped here, so sums never overflow.
CAP = 1 << 60
_XEN_HEAP = 1
_PAGE_SHIFT = 12
_NONE = -1  # "no owner" in owner-domain / owner-row columns
_AMBIG = -2  # a frame owned twice: rules needing its owner skip it (OWN_DUPLICATE reports it)

# --- the finding codes ------------------------------------------------------------

#: code → (severity, record, description). Stable: tests and tools key on these.
CODES: dict[str, tuple[Severity, str, str]] = {
    # §4.3 global extents
    "EXTENT_OVERLAP": (
        "error",
        "LU_REUSABLE_REGIONS",
        "an LU_REUSABLE_REGIONS / LU_XEN_PAGES extent overlaps another extent",
    ),
    "EXTENT_IN_BOOTMEM": (
        "error",
        "LU_REUSABLE_REGIONS",
        "an LU_REUSABLE_REGIONS / LU_XEN_PAGES extent overlaps the LU bootmem",
    ),
    # §4.8 ownership
    "OWN_DUPLICATE": (
        "error",
        "LU_PAGE_OWNERSHIP",
        "a frame is owned twice (by two domains, or twice by one)",
    ),
    "OWN_BEYOND_MAX_PAGE": ("error", "LU_PAGE_OWNERSHIP", "an owned frame is at or above max_page"),
    "OWN_IN_BOOTMEM": ("error", "LU_PAGE_OWNERSHIP", "an owned frame lies in the LU bootmem"),
    "OWN_IN_REUSABLE": (
        "error",
        "LU_PAGE_OWNERSHIP",
        "an owned frame lies in an LU_REUSABLE_REGIONS extent",
    ),
    "OWN_IN_XEN_PAGES": (
        "error",
        "LU_PAGE_OWNERSHIP",
        "an owned frame lies in an LU_XEN_PAGES extent",
    ),
    # §4.7 P2M
    "P2M_GFN_OVERLAP": ("error", "LU_P2M", "GFN ranges of one domain overlap"),
    "P2M_FRAME_NOT_OWNED": (
        "error",
        "LU_P2M",
        "a RAM-type P2M extent maps a frame the domain does not own",
    ),
    "P2M_SHARED_OUTSIDE_COW": (
        "error",
        "LU_P2M",
        "a ram_shared extent lies outside every LU_XEN_PAGES SHARED extent",
    ),
    "P2M_FOREIGN_UNOWNED": (
        "error",
        "LU_P2M",
        "a grant_map / map_foreign extent maps a frame no domain owns",
    ),
    "P2M_FOREIGN_SELF": (
        "error",
        "LU_P2M",
        "a grant_map / map_foreign extent maps a frame of the domain itself",
    ),
    "P2M_GRANT_UNBACKED": (
        "error",
        "LU_P2M",
        "a grant_map page has no matching LU_GRANT_MAPS entry of its own",
    ),
    # §4.9 page types
    "PT_NOT_OWNED": ("error", "LU_PAGE_TYPES", "a page type is given for a frame not owned"),
    "PT_DUPLICATE": ("error", "LU_PAGE_TYPES", "an mfn appears twice in a domain's page types"),
    # §4.10 grant table
    "GNT_TOO_MANY_FRAMES": (
        "error",
        "LU_GRANT_TABLE",
        "nr_grant_frames exceeds the effective max_grant_frames",
    ),
    "GNT_VERSION_ABOVE_MAX": (
        "error",
        "LU_GRANT_TABLE",
        "the table version exceeds grant_opts (>= 4.16) or the host maximum",
    ),
    "GNT_FRAME_NOT_OWNED": (
        "error",
        "LU_GRANT_TABLE",
        "a grant or status frame is not owned by its domain",
    ),
    "GNT_FRAME_NOT_XEN_HEAP": (
        "error",
        "LU_GRANT_TABLE",
        "a grant or status frame is owned without the XEN_HEAP flag",
    ),
    # §4.11 grant maps
    "GMAP_GRANTER_MISSING": ("error", "LU_GRANT_MAPS", "the granting domain is not in the stream"),
    "GMAP_GRANTER_SELF": ("error", "LU_GRANT_MAPS", "the granting domain is the mapping domain"),
    "GMAP_REF_OUT_OF_TABLE": (
        "error",
        "LU_GRANT_MAPS",
        "the grant ref lies outside the granting domain's table",
    ),
    "GMAP_FRAME_NOT_GRANTERS": (
        "error",
        "LU_GRANT_MAPS",
        "the mapped frame is not owned by the granting domain",
    ),
    "GMAP_HANDLE_LIMIT": (
        "error",
        "LU_GRANT_MAPS",
        "the handle is >= effective max_maptrack_frames x 256",
    ),
    "GMAP_HANDLE_DUPLICATE": ("error", "LU_GRANT_MAPS", "a handle appears twice in a domain"),
    "GMAP_VCPU_RANGE": ("error", "LU_GRANT_MAPS", "the vcpu is >= max_vcpus"),
    # §4.12 / §4.13 event channels
    "EVTCHN_PORT_LIMIT": (
        "error",
        "LU_EVTCHNS",
        "port >= min(ABI limit, max_evtchn_port + 1)",
    ),
    "EVTCHN_FIFO_BEYOND_ARRAY": (
        "warning",
        "LU_EVTCHNS",
        "a FIFO port beyond 1024 x nr_event_array_pages has no event word yet",
    ),
    "EVTCHN_PORT_DUPLICATE": ("error", "LU_EVTCHNS", "a port appears twice in a domain"),
    "EVTCHN_NOTIFY_VCPU_RANGE": ("error", "LU_EVTCHNS", "notify_vcpu is >= max_vcpus"),
    "EVTCHN_LAST_VCPU_RANGE": ("error", "LU_EVTCHNS", "the FIFO last vcpu is >= max_vcpus"),
    "EVTCHN_2L_PRIORITY": ("error", "LU_EVTCHNS", "a two-level channel's priority is not 7"),
    "EVTCHN_2L_PENDING": ("error", "LU_EVTCHNS", "a two-level channel has the pending flag"),
    "EVTCHN_2L_LAST": ("error", "LU_EVTCHNS", "a two-level channel's last fields are not zero"),
    "EVTCHN_REMOTE_DOMAIN_MISSING": (
        "error",
        "LU_EVTCHNS",
        "an interdomain channel's remote domain is not in the stream",
    ),
    "EVTCHN_REMOTE_PORT_MISSING": (
        "error",
        "LU_EVTCHNS",
        "an interdomain channel's remote port is not listed",
    ),
    "EVTCHN_NOT_RECIPROCAL": (
        "error",
        "LU_EVTCHNS",
        "an interdomain channel's remote is not an interdomain channel naming it back",
    ),
    "EVTCHN_VIRQ_DUPLICATE": ("error", "LU_EVTCHNS", "a global VIRQ is bound twice in a domain"),
    "EVTCHN_VCPU_VIRQ_DUPLICATE": (
        "error",
        "LU_EVTCHNS",
        "a per-vCPU VIRQ is bound twice on one vCPU",
    ),
    "EVTCHN_PIRQ_DUPLICATE": ("error", "LU_EVTCHNS", "a pirq is bound twice in a domain"),
    "EVTCHN_CB_VCPU_RANGE": ("error", "LU_EVTCHN_ABI", "a control block's vcpu is >= max_vcpus"),
    "EVTCHN_CB_DUPLICATE": (
        "error",
        "LU_EVTCHN_ABI",
        "two control blocks are registered for one vCPU",
    ),
    # §4.6 / §4.12 SHINFO32
    "SHINFO32_MISMATCH": (
        "error",
        "LU_DOMAIN",
        "PV lu_state SHINFO32 disagrees with X86_PV_INFO guest_width == 4",
    ),
    # §4.14 IOREQ servers
    "IOREQ_DM_MISSING": ("error", "LU_IOREQ_SERVERS", "the emulating domain is not in the stream"),
    "IOREQ_DM_SELF": ("error", "LU_IOREQ_SERVERS", "the emulating domain is the domain itself"),
    "IOREQ_ID_DUPLICATE": ("error", "LU_IOREQ_SERVERS", "a server id appears twice in a domain"),
    "IOREQ_RANGE_OVERLAP": (
        "error",
        "LU_IOREQ_SERVERS",
        "two ranges of one type within one server overlap",
    ),
    # §2 / §4.16 vCPU ids
    "PV_VCPU_RANGE": ("error", "X86_PV_VCPU_BASIC", "a PV vCPU record's vcpu_id is >= max_vcpus"),
    "HVM_INSTANCE_RANGE": (
        "error",
        "HVM_CONTEXT",
        "a per-vCPU HVM_CONTEXT entry's instance is >= max_vcpus",
    ),
}

#: Fault kinds of :mod:`xenlu.strategies` → the code that reports them.
CORRUPTION_FINDINGS: dict[str, str] = {
    "owned_twice": "OWN_DUPLICATE",
    "evtchn_nonreciprocal": "EVTCHN_NOT_RECIPROCAL",
    "grant_map_unowned": "GMAP_FRAME_NOT_GRANTERS",
    "port_above_max": "EVTCHN_PORT_LIMIT",
}

_RECORD_RANK = {
    name: i
    for i, name in enumerate(
        (
            "LU_HOST_INFO",
            "LU_REUSABLE_REGIONS",
            "LU_XEN_PAGES",
            "LU_DOMAIN",
            "X86_PV_INFO",
            "LU_P2M",
            "LU_PAGE_OWNERSHIP",
            "LU_PAGE_TYPES",
            "LU_GRANT_TABLE",
            "LU_GRANT_MAPS",
            "LU_EVTCHN_ABI",
            "LU_EVTCHNS",
            "LU_IOREQ_SERVERS",
            "X86_PV_VCPU_BASIC",
            "X86_PV_VCPU_EXTENDED",
            "X86_PV_VCPU_XSAVE",
            "X86_PV_VCPU_MSRS",
            "HVM_CONTEXT",
        )
    )
}
_VCPU_RECORD_NAMES = {
    X.X86_PV_VCPU_BASIC: "X86_PV_VCPU_BASIC",
    X.X86_PV_VCPU_EXTENDED: "X86_PV_VCPU_EXTENDED",
    X.X86_PV_VCPU_XSAVE: "X86_PV_VCPU_XSAVE",
    X.X86_PV_VCPU_MSRS: "X86_PV_VCPU_MSRS",
}
_REGION_KINDS = {1: "FRAMETABLE", 2: "XEN_IMAGE", 3: "SCRATCH"}
_XEN_KINDS = {1: "M2P", 2: "IOMMU_PT", 3: "LU_DATA", 4: "SHARED"}
_XEN_SHARED = 4

# §4.7 P2M frame classes, by p2m_type.
# _C_NONE (INVALID_MFN types) and _C_DEVICE (mmio_direct, any frame) need no lookup.
_C_NONE, _C_OWN, _C_PAGING_IN, _C_SHARED, _C_FOREIGN, _C_DEVICE = 0, 1, 2, 3, 4, 5
_P2M_CLASS = np.zeros(256, np.int8)
_P2M_CLASS[[0, 2, 3, 9, 13, 15]] = _C_OWN
_P2M_CLASS[11] = _C_PAGING_IN
_P2M_CLASS[12] = _C_SHARED
_P2M_CLASS[[7, 8, 14]] = _C_FOREIGN
_P2M_CLASS[5] = _C_DEVICE
_GRANT_RW, _GRANT_RO = 7, 8

# Typecodes saved once per vCPU (reference §4.2); xenlu.hvmctx says the same.
_PER_VCPU_TYPECODES = (2, 5, 6, 14, 16, 17, 18, 19, 20)


# --- findings and the report ---------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One semantic problem of a stream.

    ``domid`` is the domain whose record holds the offending entry
    (``DOMID_XEN`` for the global section); ``others`` every other domain
    involved; ``entry`` the index within that domain's logical array of
    ``record`` (None for a whole-record finding); ``values`` the offending
    values.

    >>> f = Finding("error", "OWN_DUPLICATE", "frame 0x10 owned twice", 1, (2,),
    ...             "LU_PAGE_OWNERSHIP", 5, {"mfn": 16})
    >>> str(f)
    'error OWN_DUPLICATE dom1 LU_PAGE_OWNERSHIP[5]: frame 0x10 owned twice (others: dom2)'
    """

    severity: Severity
    code: str
    message: str
    domid: int
    others: tuple[int, ...]
    record: str
    entry: int | None
    values: dict[str, int | str] = field(default_factory=dict)

    def sort_key(self) -> tuple[Any, ...]:
        """Global section first, then by domid, record, entry, code."""
        return (
            self.domid != DOMID_XEN,
            self.domid,
            _RECORD_RANK.get(self.record, 99),
            self.record,
            -1 if self.entry is None else self.entry,
            self.code,
            self.others,
            self.message,
            tuple(sorted((k, str(v)) for k, v in self.values.items())),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``values`` keys sorted)."""
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "domid": self.domid,
            "others": list(self.others),
            "record": self.record,
            "entry": self.entry,
            "values": {k: self.values[k] for k in sorted(self.values)},
        }

    def __str__(self) -> str:
        who = "xen" if self.domid == DOMID_XEN else f"dom{self.domid}"
        at = self.record if self.entry is None else f"{self.record}[{self.entry}]"
        tail = ""
        if self.others:
            tail = " (others: " + ", ".join(f"dom{d}" for d in self.others) + ")"
        return f"{self.severity} {self.code} {who} {at}: {self.message}{tail}"


@dataclass(frozen=True)
class Omitted:
    """Findings of one code in one domain beyond the report's cap."""

    code: str
    domid: int
    severity: Severity
    total: int
    reported: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "domid": self.domid,
            "severity": self.severity,
            "total": self.total,
            "reported": self.reported,
        }


@dataclass
class Report:
    """The result of :func:`validate`: every finding, in a deterministic order.

    >>> r = Report([], [], 100)
    >>> r.ok, r.to_json()["errors"], r.dumps()[:32]
    (True, 0, '{"errors": 0, "findings": [], "m')
    """

    findings: list[Finding]
    omitted: list[Omitted]
    max_per_code: int
    method: str = "auto"

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not any(f.severity == "error" for f in self.findings)

    def counts(self) -> dict[str, int]:
        """code → number of findings, omitted ones included."""
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.code] = out.get(f.code, 0) + 1
        for o in self.omitted:
            out[o.code] = out.get(o.code, 0) + o.total - o.reported
        return dict(sorted(out.items()))

    def _total(self, severity: str) -> int:
        n = sum(1 for f in self.findings if f.severity == severity)
        return n + sum(o.total - o.reported for o in self.omitted if o.severity == severity)

    @property
    def nr_errors(self) -> int:
        """Errors, omitted ones included."""
        return self._total("error")

    @property
    def nr_warnings(self) -> int:
        """Warnings, omitted ones included."""
        return self._total("warning")

    def codes(self) -> set[str]:
        """Every code reported."""
        return {f.code for f in self.findings}

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON data (``json.dumps`` works on it)."""
        return {
            "ok": self.ok,
            "errors": self.nr_errors,
            "warnings": self.nr_warnings,
            "max_per_code": self.max_per_code,
            "method": self.method,
            "findings": [f.to_dict() for f in self.findings],
            "omitted": [o.to_dict() for o in self.omitted],
        }

    def dumps(self, indent: int | None = None) -> str:
        """:meth:`to_json` as a string, keys sorted."""
        return json.dumps(self.to_json(), indent=indent, sort_keys=True)

    def summary(self) -> str:
        """One line per finding, then a count line."""
        lines = [str(f) for f in self.findings]
        for o in self.omitted:
            who = "xen" if o.domid == DOMID_XEN else f"dom{o.domid}"
            lines.append(f"... {o.total - o.reported} more {o.code} in {who}")
        lines.append(f"{self.nr_errors} errors, {self.nr_warnings} warnings")
        return "\n".join(lines)


# --- numpy helpers ------------------------------------------------------------------

#: Entries per chunk when a host-wide table is walked in pieces: temporaries
#: stay a few MiB, so the allocator reuses them instead of faulting in fresh
#: pages for every full-size intermediate.
_CHUNK = 1 << 20


def _i64(a: Arr) -> I64:
    """Frame numbers as int64, clipped to :data:`CAP` (INVALID_MFN and the absurd → CAP)."""
    u = np.asarray(a)
    if u.dtype.kind == "u":
        return np.minimum(u.astype(np.uint64, copy=False), np.uint64(CAP)).view(np.int64)
    return np.clip(u.astype(np.int64), 0, CAP)


def _last(start: I64, n: Arr) -> I64:
    """Inclusive last frame of [start, start + n), clipped to CAP."""
    nn = np.minimum(np.asarray(n).astype(np.uint64), np.uint64(CAP)).view(np.int64)
    out: I64 = np.minimum(start + nn - 1, CAP)
    return out


def _field(a: Arr, name: str, dtype: Any = np.int64) -> Arr:
    names = a.dtype.names or ()
    if name in names:
        return np.asarray(a[name]).astype(dtype)
    return np.zeros(len(a), dtype)


def _cat(parts: Sequence[Arr], dtype: Any) -> Arr:
    if not parts:
        return np.zeros(0, dtype)
    return np.concatenate([np.asarray(p).astype(dtype, copy=False) for p in parts])


def _expand(start: I64, count: I64) -> tuple[I64, I64]:
    """``start[i] + 0 … count[i]-1`` for every i, and the i of each value."""
    count = np.maximum(count, 0)
    total = int(count.sum())
    which = np.repeat(np.arange(len(start), dtype=np.int64), count)
    base = np.repeat(np.cumsum(count) - count, count)
    return np.repeat(start, count) + (np.arange(total, dtype=np.int64) - base), which


def _ss_right(table: Arr, q: Arr) -> I64:
    """``searchsorted(table, q, 'right')``; large unsorted queries are sorted first
    (binary searches with random keys over a large table miss the cache)."""
    if len(q) > 65536 and len(table) > 4096:
        order = np.argsort(q, kind="stable")
        out = np.empty(len(q), np.int64)
        out[order] = np.searchsorted(table, q[order], side="right")
        return out
    return np.searchsorted(table, q, side="right").astype(np.int64)


def _group_starts(sorted_keys: Arr) -> I64:
    """Positions where a new value starts in a sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64)
    head = np.ones(len(sorted_keys), bool)
    head[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return np.flatnonzero(head)


def _dups_after_first(*cols: Arr) -> tuple[I64, I64]:
    """Rows whose key (``cols``, the first most significant) occurred at an
    earlier row; and that earlier (first) row. Stable: rows keep entry order."""
    n = len(cols[0])
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.lexsort(tuple(reversed(cols)))
    same = np.ones(n - 1, bool)
    for c in cols:
        s = c[order]
        same &= s[1:] == s[:-1]
    if not same.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new = np.ones(n, bool)
    new[1:] = ~same
    head = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    pos = np.flatnonzero(~new)
    return order[pos].astype(np.int64), order[head[pos]].astype(np.int64)


def _overlaps(start: Arr, last: Arr, group: I64, same_only: bool) -> list[tuple[int, I64, I64]]:
    """For intervals ``[start, last]`` (inclusive), which rows overlap another row
    of each group. Returns ``[(group, rows, witness_rows)]``: ``rows`` overlap
    at least one *other* row of ``group`` and ``witness_rows`` is one such row.
    ``same_only``: only overlaps within a row's own group.

    Per group: the prefix maximum of ``last`` over the group's earlier rows
    (sorted by start) decides overlap with an earlier row; the group's next
    row (smallest later start) decides overlap with a later one. O(n log n)
    per group, no pair enumeration.
    """
    m = len(start)
    out: list[tuple[int, I64, I64]] = []
    if m < 2:
        return out
    order = np.lexsort((np.arange(m), start))
    s, lst, g = start[order], last[order], group[order]
    every = np.arange(m)
    for gi in np.unique(g).tolist():
        p = np.flatnonzero(g == gi)
        if same_only and len(p) < 2:
            continue
        lp = lst[p]
        pm = np.maximum.accumulate(lp)
        holder = np.maximum.accumulate(np.where(lp == pm, np.arange(len(p)), 0))
        q = p if same_only else every
        j = np.searchsorted(p, q, side="left") - 1
        jc = np.maximum(j, 0)
        e_hit = (j >= 0) & (pm[jc] >= s[q])
        e_wit = p[holder[jc]]
        j2 = np.searchsorted(p, q, side="right")
        j2c = np.minimum(j2, len(p) - 1)
        l_hit = (j2 < len(p)) & (s[p[j2c]] <= lst[q])
        l_wit = p[j2c]
        hit = e_hit | l_hit
        if hit.any():
            wit = np.where(e_hit, e_wit, l_wit)[hit]
            out.append((int(gi), order[q[hit]].astype(np.int64), order[wit].astype(np.int64)))
    return out


# --- host-wide tables ---------------------------------------------------------------


class _Table:
    """One bulk record type of every domain, as one logical array.

    Row ``r`` is entry ``r - offs[d]`` of domain index ``d`` (domains in
    ascending domid order). Small tables are concatenated whole
    (:meth:`col`); large ones are walked in :meth:`chunks` and subsets are
    read with :meth:`take`, so no full-size copy is ever made.
    """

    def __init__(self, parts: Sequence[Arr]) -> None:
        self.parts = list(parts)
        lens = np.array([len(p) for p in self.parts], np.int64)
        self.lens = lens
        self.offs = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
        self.n = int(self.offs[-1])

    def dom_of(self, rows: I64) -> I64:
        return (np.searchsorted(self.offs, rows, side="right") - 1).astype(np.int64)

    def entry(self, rows: I64) -> I64:
        return rows - self.offs[self.dom_of(rows)]

    def dom_col(self) -> I64:
        return np.repeat(np.arange(len(self.parts), dtype=np.int64), self.lens)

    def entry_col(self) -> I64:
        return np.arange(self.n, dtype=np.int64) - np.repeat(self.offs[:-1], self.lens)

    def col(self, name: str, dtype: Any = np.int64) -> Arr:
        return _cat([_field(p, name, dtype) for p in self.parts if len(p)], dtype)

    def take(self, name: str, rows: I64, dtype: Any = np.int64) -> Arr:
        """``col(name)[rows]`` without building the column; rows outside the
        table (callers clamp "not found" to 0, also on an empty table) give 0."""
        out = np.zeros(len(rows), dtype)
        d = self.dom_of(rows)
        inside = (rows >= 0) & (rows < self.n)
        for di in np.unique(d[inside]).tolist():
            sel = np.flatnonzero((d == di) & inside)
            out[sel] = _field(self.parts[di], name, dtype)[rows[sel] - self.offs[di]]
        return out

    def chunks(
        self, names: Sequence[str], size: int = _CHUNK
    ) -> Iterator[tuple[int, I64, dict[str, Arr]]]:
        """``(first row, domain column, {field: values})`` for consecutive
        windows of at most ``size`` rows; a window inside one domain is a view."""
        pos = 0
        while pos < self.n:
            end = min(pos + size, self.n)
            d0 = int(np.searchsorted(self.offs, pos, side="right")) - 1
            d1 = int(np.searchsorted(self.offs, end - 1, side="right")) - 1
            pieces: dict[str, list[Arr]] = {k: [] for k in names}
            counts: list[int] = []
            doms: list[int] = []
            for d in range(d0, d1 + 1):
                a = max(pos, int(self.offs[d])) - int(self.offs[d])
                b = min(end, int(self.offs[d + 1])) - int(self.offs[d])
                if b <= a:
                    continue
                part = self.parts[d]
                for k in names:
                    pieces[k].append(part[k][a:b])
                counts.append(b - a)
                doms.append(d)
            dom = np.repeat(np.array(doms, np.int64), counts)
            cols = {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in pieces.items()}
            yield pos, dom, cols
            pos = end


# --- the owner index ---------------------------------------------------------------


class _Ownership(_Table):
    """Ownership rows of all domains (§4.8)."""

    _full: tuple[I64, I64, I64, Bool] | None = None

    def full(self) -> tuple[I64, I64, I64, Bool]:
        """Whole columns (start, last, domain, valid) — for the interval index."""
        if self._full is None:
            start = _i64(self.col("start_mfn", np.uint64))
            last = _last(start, self.col("nr_pages"))
            valid = (start < CAP) & (last >= start)
            self._full = (start, last, self.dom_col(), valid)
        return self._full

    def span(self, rows: I64) -> tuple[I64, I64]:
        """(start, last) of some rows."""
        start = _i64(self.take("start_mfn", rows, np.uint64))
        return start, _last(start, self.take("nr_pages", rows))


_ENT_MASK = (1 << 32) - 1
_V_NONE = -1  # dense map value of an unowned frame: >> 32 gives _NONE
_V_AMBIG = -(2 << 32)  # … of a frame owned twice: >> 32 gives _AMBIG


class _Index:
    """Frame → owner (ownership row, domain index) and ownership runs.

    Unowned frames give ``_NONE``, frames owned twice ``_AMBIG`` (row and
    domain). A run is a maximal range of frames with the same owner domain;
    the runs cover ``[0, CAP]``.
    """

    own: _Ownership
    runs_start: I64
    runs_last: I64
    runs_dom: I64
    dup_rows: I64  # rows claiming a frame another row claims too
    name: str

    def row_at(self, frames: Arr) -> I64:
        raise NotImplementedError

    def dom_at(self, frames: Arr) -> I64:
        raise NotImplementedError

    def run_of(self, frames: I64) -> I64:
        raise NotImplementedError

    def frames_hit(self, start: I64, last: I64) -> I64:
        """Rows owning a frame of any interval [start, last] (for the few global
        extents); claimants of a frame owned twice are dup rows anyway."""
        raise NotImplementedError


def _runs_from_segments(seg_start: I64, seg_last: I64, seg_dom: I64) -> tuple[I64, I64, I64]:
    """Maximal runs over [0, CAP] from sorted disjoint segments, gaps as _NONE."""
    n = len(seg_start)
    if n == 0:
        return (
            np.array([0], np.int64),
            np.array([CAP], np.int64),
            np.array([_NONE], np.int64),
        )
    brk = np.ones(n, bool)
    brk[1:] = (seg_start[1:] != seg_last[:-1] + 1) | (seg_dom[1:] != seg_dom[:-1])
    heads = np.flatnonzero(brk)
    tails = np.concatenate((heads[1:] - 1, [n - 1]))
    rs, rl, rd = seg_start[heads], seg_last[tails], seg_dom[heads]
    k = len(rs)
    gap_before = np.ones(k, bool)
    gap_before[0] = rs[0] > 0
    gap_before[1:] = rs[1:] > rl[:-1] + 1
    # interleave: [gap_0?] run_0 [gap_1?] run_1 ... [final gap]
    ng = int(gap_before.sum())
    tail_gap = bool(rl[-1] < CAP)
    total = k + ng + int(tail_gap)
    out_s = np.empty(total, np.int64)
    out_l = np.empty(total, np.int64)
    out_d = np.empty(total, np.int64)
    run_pos = np.arange(k) + np.cumsum(gap_before)
    out_s[run_pos], out_l[run_pos], out_d[run_pos] = rs, rl, rd
    gi = np.flatnonzero(gap_before)
    gap_pos = run_pos[gi] - 1
    out_s[gap_pos] = np.where(gi > 0, rl[np.maximum(gi - 1, 0)] + 1, 0)
    out_l[gap_pos] = rs[gi] - 1
    out_d[gap_pos] = _NONE
    if tail_gap:
        out_s[-1], out_l[-1], out_d[-1] = rl[-1] + 1, CAP, _NONE
    return out_s, out_l, out_d


def _own_chunks(own: _Ownership) -> Iterator[tuple[I64, I64]]:
    """(frames, map values) of every owned frame below CAP, chunk by chunk;
    a map value is ``domain << 32 | entry``."""
    for base, dom, c in own.chunks(("start_mfn", "nr_pages")):
        start = _i64(c["start_mfn"])
        nr = c["nr_pages"]
        ent = np.arange(base, base + len(dom), dtype=np.int64) - own.offs[dom]
        val = (dom << 32) | ent
        if bool((nr == 1).all()) and bool((start < CAP).all()):
            yield start, val
            continue
        last = _last(start, nr)
        ok = (start < CAP) & (last >= start)
        fr, which = _expand(start[ok], (last - start + 1)[ok])
        yield fr, val[ok][which]


class _DenseIndex(_Index):
    """A frame → ``domain << 32 | entry`` map over [0, M): one scatter to fill
    it, one gather to find every frame claimed twice (see module doc)."""

    name = "dense"

    def __init__(self, own: _Ownership, m: int) -> None:
        self.own = own
        self.m = m
        mp = np.full(m + 1, _V_NONE, np.int64)  # slot m: sentinel for frames >= m
        for fr, val in _own_chunks(own):
            mp[fr] = val
        # A frame claimed twice keeps one claimant; every other one reads back
        # a different value.
        lost_f: list[I64] = []
        lost_v: list[I64] = []
        for fr, val in _own_chunks(own):
            lose = mp[fr] != val
            if lose.any():
                lost_f.append(fr[lose])
                lost_v.append(val[lose])
        if lost_f:
            lf = np.concatenate(lost_f)
            vals = np.concatenate((np.concatenate(lost_v), mp[lf]))
            self.dup_rows = np.unique(self._rows(vals))
            mp[lf] = _V_AMBIG
        else:
            self.dup_rows = np.zeros(0, np.int64)
        self.map = mp
        self._rid: Arr | None = None

    def _rows(self, v: I64) -> I64:
        d = v >> 32
        return np.where(v >= 0, self.own.offs[np.maximum(d, 0)] + (v & _ENT_MASK), d)

    def _get(self, frames: Arr) -> I64:
        f = np.asarray(frames)
        if f.dtype.kind == "u":
            f = np.minimum(f, np.uint64(self.m)).view(np.int64)
        else:
            f = np.minimum(f, self.m)
        out: I64 = self.map[f]
        return out

    def row_at(self, frames: Arr) -> I64:
        return self._rows(self._get(frames))

    def dom_at(self, frames: Arr) -> I64:
        return self._get(frames) >> 32

    def _build_runs(self) -> None:
        m = self.m
        if m == 0:
            self.runs_start = np.array([0], np.int64)
            self.runs_last = np.array([CAP], np.int64)
            self.runs_dom = np.array([_NONE], np.int64)
            self._rid = np.zeros(1, np.int32)
            return
        dm = (self.map[:m] >> 32).astype(np.int32)
        b = (np.flatnonzero(dm[1:] != dm[:-1]) + 1).astype(np.int64)
        heads = np.concatenate(([0], b)).astype(np.int64)
        lasts = np.concatenate((b - 1, [m - 1])).astype(np.int64)
        # frames >= m: one final unowned run (frame m - 1 is owned by construction)
        self.runs_start = np.concatenate((heads, [m]))
        self.runs_last = np.concatenate((lasts, [CAP]))
        self.runs_dom = np.concatenate((dm[heads].astype(np.int64), [_NONE]))
        rid = np.zeros(m + 1, np.int32)
        rid[b] = 1
        rid[m] = 1
        self._rid = np.cumsum(rid, dtype=np.int32)

    def run_of(self, frames: I64) -> I64:
        if self._rid is None:
            self._build_runs()
        assert self._rid is not None
        return self._rid[np.minimum(frames, self.m)].astype(np.int64)

    def frames_hit(self, start: I64, last: I64) -> I64:
        s = np.minimum(start, self.m)
        e = np.minimum(last + 1, self.m)
        fr, _ = _expand(s, e - s)
        if not len(fr):
            return np.zeros(0, np.int64)
        r = self._rows(self.map[fr])
        return np.unique(r[r >= 0])


def _sort_rows(start: I64, valid: Bool) -> tuple[I64, I64]:
    """The valid rows ordered by (start, row), and their starts. One ``np.sort``
    of ``start << bits | row`` where that fits in 63 bits (any real host),
    else a stable argsort."""
    all_valid = bool(valid.all())
    rows = np.arange(len(start), dtype=np.int64) if all_valid else np.flatnonzero(valid)
    st_ = start if all_valid else start[rows]
    bits = max(1, len(start).bit_length())
    if not len(rows) or int(st_.max()) < (1 << (62 - bits)):
        key = (st_ << bits) | rows
        key.sort()
        return key & ((1 << bits) - 1), key >> bits
    order = rows[np.argsort(st_, kind="stable")]
    return order, start[order]


class _IntervalIndex(_Index):
    """Sorted disjoint owner segments (see module doc)."""

    name = "interval"

    def __init__(self, own: _Ownership) -> None:
        self.own = own
        start, last, dom, valid = own.full()
        order, s = _sort_rows(start, valid)
        lst = last[order]
        # Every row overlapping an earlier one, and its witness (§4.8).
        if len(order) > 1:
            cm = np.maximum.accumulate(lst)
            hold = np.maximum.accumulate(np.where(lst == cm, np.arange(len(lst)), 0))
            p = np.flatnonzero(s[1:] <= cm[:-1]) + 1
            self.dup_rows = np.unique(np.concatenate((order[p], order[hold[p - 1]])))
        else:
            self.dup_rows = np.zeros(0, np.int64)
        clean = order[~np.isin(order, self.dup_rows)] if len(self.dup_rows) else order
        seg_s, seg_l, seg_r = start[clean], last[clean], clean
        if len(self.dup_rows):
            cs, cl, cr = self._cells(start, last, self.dup_rows)
            at = np.searchsorted(seg_s, cs)
            seg_s = np.insert(seg_s, at, cs)
            seg_l = np.insert(seg_l, at, cl)
            seg_r = np.insert(seg_r, at, cr)
        self.seg_start, self.seg_last, self.seg_row = seg_s, seg_l, seg_r
        seg_d = np.where(seg_r >= 0, dom[np.maximum(seg_r, 0)], seg_r)
        self.runs_start, self.runs_last, self.runs_dom = _runs_from_segments(seg_s, seg_l, seg_d)

    @staticmethod
    def _cells(start: I64, last: I64, rows: I64) -> tuple[I64, I64, I64]:
        """Elementary cells of overlapping rows: owned by one row, or _AMBIG."""
        bps = np.unique(np.concatenate((start[rows], last[rows] + 1)))
        c0 = np.searchsorted(bps, start[rows])
        c1 = np.searchsorted(bps, last[rows] + 1)
        cells, which = _expand(c0.astype(np.int64), (c1 - c0).astype(np.int64))
        owner = np.full(len(bps) - 1, _NONE, np.int64)
        owner[cells] = rows[which]
        cover = np.bincount(cells, minlength=len(bps) - 1)
        cov = np.flatnonzero(cover > 0)
        return bps[cov], bps[cov + 1] - 1, np.where(cover[cov] > 1, _AMBIG, owner[cov])

    def row_at(self, frames: Arr) -> I64:
        f = _i64(frames)
        if not len(self.seg_start):
            return np.full(len(f), _NONE, np.int64)
        k = _ss_right(self.seg_start, f) - 1
        kc = np.maximum(k, 0)
        ok = (k >= 0) & (f <= self.seg_last[kc])
        return np.where(ok, self.seg_row[kc], _NONE).astype(np.int64)

    def dom_at(self, frames: Arr) -> I64:
        return self.runs_dom[self.run_of(_i64(frames))]

    def run_of(self, frames: I64) -> I64:
        return _ss_right(self.runs_start, frames) - 1

    def frames_hit(self, start: I64, last: I64) -> I64:
        if not len(self.seg_start) or not len(start):
            return np.zeros(0, np.int64)
        # segments intersecting [start, last]: from the one containing start
        k0 = np.maximum(_ss_right(self.seg_start, start) - 1, 0)
        k1 = _ss_right(self.seg_start, last)  # exclusive
        ks, which = _expand(k0, k1 - k0)
        hit = (self.seg_start[ks] <= last[which]) & (self.seg_last[ks] >= start[which])
        r = self.seg_row[ks[hit]]
        return np.unique(r[r >= 0])


# --- the host ---------------------------------------------------------------------


class _Host:
    """Per-domain facts of a stream, domains in ascending domid order."""

    def __init__(self, stream: LUStream) -> None:
        self.stream = stream
        self.doms: list[LUDomain] = sorted(stream.domains, key=lambda d: d.domid)
        ids = [d.domid for d in self.doms]
        if len(set(ids)) != len(ids):
            raise CallerError("a domid appears in two domain sections (a structural error)")
        self.nd = len(self.doms)
        self.domids = np.array(ids, np.int64)
        self.idx = np.full(1 << 16, -1, np.int64)
        self.idx[self.domids] = np.arange(self.nd)
        self.host = stream.host
        self.epoch = stream.epoch
        self.max_vcpus = np.array([int(d.info.max_vcpus) for d in self.doms], np.int64)
        self.own = _Ownership([d.ownership for d in self.doms])
        self.p2m = _Table([d.p2m for d in self.doms])

    def lookup(self, domids: Arr) -> I64:
        """Domids (any int) → domain indices, -1 where not in the stream."""
        d = np.asarray(domids).astype(np.int64)
        ok = (d >= 0) & (d < (1 << 16))
        return np.where(ok, self.idx[np.where(ok, d, 0)], -1)

    def owner_ids(self, d: I64) -> I64:
        """Owner domain indices → domids, -1 for none / ambiguous."""
        return np.where(d >= 0, self.domids[np.maximum(d, 0)] if self.nd else 0, -1)

    def owner_names(self, d: I64) -> list[int | str]:
        ids = self.domids
        return [int(ids[x]) if x >= 0 else "none" if x == _NONE else "several" for x in d.tolist()]

    def effective(self, d: LUDomain, name: str, host_default: int, xen_default: int) -> int:
        """§4.6 effective grant limits."""
        v = int(getattr(d.info, name))
        if v >= 0:
            return v
        return host_default if host_default else xen_default


# --- the emitter ------------------------------------------------------------------

Vals = Arr | Sequence[int | str] | int | str | Callable[[I64], Sequence[int | str]]
Others = Arr | Callable[[I64], Sequence[tuple[int, ...]]] | None


class _Out:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.findings: list[Finding] = []
        self.omitted: list[Omitted] = []

    def emit(
        self,
        code: str,
        domid: Arr | Sequence[int],
        entry: Arr | Sequence[int] | None,
        message: str,
        values: dict[str, Vals],
        others: Others = None,
        record: str | Sequence[str] | None = None,
    ) -> None:
        """Findings for candidates ``i`` (arrays aligned on i): the first
        ``cap`` per domid by entry, the rest counted as omitted."""
        dom = np.asarray(domid, np.int64)
        n = len(dom)
        if n == 0:
            return
        severity, default_record, _ = CODES[code]
        ent = np.zeros(n, np.int64) if entry is None else np.asarray(entry, np.int64)
        order = np.lexsort((np.arange(n), ent, dom))
        ds = dom[order]
        heads = _group_starts(ds)
        sizes = np.diff(np.concatenate((heads, [n])))
        grp = np.repeat(np.arange(len(heads)), sizes)
        rank = np.arange(n) - heads[grp]
        keep = order[rank < self.cap]
        for hd, size in zip(heads.tolist(), sizes.tolist(), strict=True):
            if size > self.cap:
                self.omitted.append(Omitted(code, int(ds[hd]), severity, size, self.cap))
        cols = {k: _take(v, keep) for k, v in values.items()}
        oth: list[tuple[int, ...]]
        if others is None:
            oth = [()] * len(keep)
        elif callable(others):
            oth = list(others(keep))
        else:
            oa = np.asarray(others, np.int64)[keep]
            mine = dom[keep]
            oth = [
                (o,) if o >= 0 and o != d else ()
                for o, d in zip(oa.tolist(), mine.tolist(), strict=True)
            ]
        if record is None or isinstance(record, str):
            recs = [record or default_record] * len(keep)
        else:
            recs = [record[i] for i in keep.tolist()]
        for j, i in enumerate(keep.tolist()):
            vals = {k: c[j] for k, c in cols.items()}
            self.findings.append(
                Finding(
                    severity,
                    code,
                    message.format(**vals),
                    int(dom[i]),
                    tuple(sorted(set(oth[j]) - {int(dom[i])})),
                    recs[j],
                    None if entry is None else int(ent[i]),
                    vals,
                )
            )


def _take(v: Vals, keep: I64) -> list[int | str]:
    if callable(v):
        return list(v(keep))
    if isinstance(v, (int, str)):
        return [v] * len(keep)
    if isinstance(v, np.ndarray):
        return [x if isinstance(x, str) else int(x) for x in v[keep].tolist()]
    seq = list(v)
    return [seq[i] for i in keep.tolist()]


# --- validate ---------------------------------------------------------------------


def validate(
    stream: LUStream,
    *,
    bootmem_check: bool = True,
    max_per_code: int = 100,
    method: Method = "auto",
) -> Report:
    """Check every semantic rule of LU spec §7 over the whole host.

    ``bootmem_check=False`` skips the rules about the LU bootmem (owned
    frames and extents inside it). ``max_per_code`` bounds the findings per
    code per domain (the rest are counted in :attr:`Report.omitted`).
    ``method`` forces the owner index (``"dense"`` or ``"interval"``); both
    give the same report, ``"auto"`` picks the faster.

    >>> from xenlu.hostgen import make_host
    >>> validate(make_host((4, 16), n_hvm=1, mem_mib=2)).ok
    True
    """
    if max_per_code < 1:
        raise CallerError("max_per_code must be >= 1")
    if method not in ("auto", "dense", "interval"):
        raise CallerError(f"unknown method {method!r}; expected auto, dense or interval")
    h = _Host(stream)
    out = _Out(max_per_code)
    idx = owner_index(h, method)
    _check_ownership(h, idx, out, bootmem_check)
    _check_p2m(h, idx, out)
    _check_page_types(h, idx, out)
    _check_grant_tables(h, idx, out)
    _check_grant_maps(h, idx, out)
    _check_evtchns(h, out)
    _check_ioreq(h, out)
    _check_vcpus(h, out)
    findings = sorted(out.findings, key=Finding.sort_key)
    omitted = sorted(out.omitted, key=lambda o: (o.domid != DOMID_XEN, o.domid, o.code))
    return Report(findings, omitted, max_per_code, idx.name)


def owner_index(h: _Host, method: Method = "auto") -> _Index:
    """The owner index of a host (also used by :mod:`xenlu.plan`)."""
    own = h.own
    m = 0
    frames = 0
    rows = 0
    for _, _, c in own.chunks(("start_mfn", "nr_pages")):
        start = _i64(c["start_mfn"])
        last = _last(start, c["nr_pages"])
        ok = (start < CAP) & (last >= start)
        if ok.any():
            m = max(m, int(last[ok].max()) + 1)
            frames += int((last - start + 1)[ok].sum())
            rows += int(ok.sum())
    if method == "auto":
        queries = h.p2m.n + sum(len(d.page_types) + len(d.grant_maps) for d in h.doms)
        # the map costs 8 bytes per frame: allow 8 frames per entry (~2x the input size)
        budget = 8 * (rows + queries) + (1 << 20)
        method = "dense" if m <= (1 << 30) and m <= budget and frames <= budget else "interval"
    if method == "dense":
        if m > (1 << 34):
            raise CallerError(f"dense owner index over {m} frames refused; use method='interval'")
        return _DenseIndex(own, m)
    return _IntervalIndex(own)


# --- §4.3, §4.8: ownership and global extents --------------------------------------


def _check_ownership(h: _Host, idx: _Index, out: _Out, bootmem_check: bool) -> None:
    host = h.host
    own = h.own
    # Frames at or above max_page (exact u64 arithmetic: start + nr > max_page).
    mp = np.uint64(host.max_page)
    beyond: list[I64] = []
    for base, _, c in own.chunks(("start_mfn", "nr_pages")):
        su = c["start_mfn"]
        nr = c["nr_pages"].astype(np.uint64)
        if len(su) and int(su.max()) + int(nr.max()) <= int(host.max_page):
            continue
        bad = (nr > mp) | (su > mp - np.minimum(nr, mp))
        beyond.append(base + np.flatnonzero(bad))
    rows = _cat(beyond, np.int64)
    out.emit(
        "OWN_BEYOND_MAX_PAGE",
        h.domids[own.dom_of(rows)],
        own.entry(rows),
        "extent {start_mfn:#x}+{nr_pages} reaches max_page {max_page:#x}",
        {
            "start_mfn": own.take("start_mfn", rows, np.uint64),
            "nr_pages": own.take("nr_pages", rows),
            "max_page": int(host.max_page),
        },
    )

    # Pseudo rows: the bootmem, reusable regions and Xen pages (§4.3, §4.8).
    nd = h.nd
    g_boot, g_region, g_xen = nd, nd + 1, nd + 2
    reg = h.stream.reusable_regions
    xen = h.stream.xen_pages
    b0 = int(host.lu_bootmem_start) >> _PAGE_SHIFT
    bn = (int(host.lu_bootmem_size) + 4095) >> _PAGE_SHIFT
    boot_vals: dict[str, Vals] = {"bootmem_start_mfn": b0, "bootmem_pages": bn}
    su_parts: list[Arr] = []
    nr_parts: list[Arr] = []
    g_parts: list[Arr] = []
    ref_parts: list[Arr] = []
    if bootmem_check and bn:
        su_parts.append(np.array([b0], np.uint64))
        nr_parts.append(np.array([bn], np.uint64))
        g_parts.append(np.array([g_boot], np.int64))
        ref_parts.append(np.array([0], np.int64))
    for arr, g in ((reg, g_region), (xen, g_xen)):
        if len(arr):
            su_parts.append(arr["start_mfn"])
            nr_parts.append(arr["nr_pages"])
            g_parts.append(np.full(len(arr), g, np.int64))
            ref_parts.append(np.arange(len(arr), dtype=np.int64))
    p_su = _cat(su_parts, np.uint64)
    p_nr = _cat(nr_parts, np.uint64)
    p_group = _cat(g_parts, np.int64)
    p_ref = _cat(ref_parts, np.int64)
    p_start = _i64(p_su)
    p_last = _last(p_start, p_nr)
    keep = p_start < CAP
    p_su, p_nr, p_group, p_ref = p_su[keep], p_nr[keep], p_group[keep], p_ref[keep]
    p_start, p_last = p_start[keep], p_last[keep]

    # The subset of ownership rows that conflict with anything: rows claiming a
    # frame another row claims, and rows owning a frame of a pseudo extent.
    hit = idx.frames_hit(p_start, p_last) if len(p_start) else np.zeros(0, np.int64)
    sub = np.unique(np.concatenate((idx.dup_rows, hit)))
    if len(sub) == 0 and len(p_start) < 2:
        return
    # Exact involvement within that (small) subset plus the pseudo rows.
    s_start, s_last = own.span(sub)
    start = np.concatenate((s_start, p_start))
    last = np.concatenate((s_last, p_last))
    sdom = own.dom_of(sub)
    group = np.concatenate((sdom, p_group))
    ns = len(sub)
    res = _overlaps(start, last, group, same_only=False)
    # (row, group, witness) triples; rows and witnesses index the subset + pseudo rows
    if res:
        tr = np.concatenate([r for _, r, _ in res])
        tg = np.concatenate([np.full(len(r), g, np.int64) for g, r, _ in res])
        tw = np.concatenate([w for _, _, w in res])
    else:
        tr = tg = tw = np.zeros(0, np.int64)
    o = np.lexsort((tg, tr))
    tr, tg, tw = tr[o], tg[o], tw[o]

    # OWN_DUPLICATE: an ownership row overlapping an ownership row.
    real = (tr < ns) & (tg < nd)
    all_r, all_g = tr[real], tg[real]
    if len(all_r):
        first = _group_starts(all_r)
        rr, rg, rw = all_r[first], all_g[first], tw[real][first]
        rows = sub[rr]

        def others_dup(keep: I64) -> list[tuple[int, ...]]:
            res_: list[tuple[int, ...]] = []
            for k in keep.tolist():
                lo = int(np.searchsorted(all_r, rr[k], "left"))
                hi = int(np.searchsorted(all_r, rr[k], "right"))
                res_.append(tuple(int(h.domids[g]) for g in all_g[lo:hi].tolist()))
            return res_

        out.emit(
            "OWN_DUPLICATE",
            h.domids[sdom[rr]],
            own.entry(rows),
            "frame {mfn:#x} is also owned by dom{other_domid} (entry {other_entry})",
            {
                "start_mfn": own.take("start_mfn", rows, np.uint64),
                "nr_pages": own.take("nr_pages", rows),
                "mfn": np.maximum(start[rr], start[rw]),
                "other_domid": h.domids[rg],
                "other_entry": own.entry(sub[rw]),
            },
            others=others_dup,
        )

    def pseudo(code: str, g: int, extra: Callable[[I64], dict[str, Vals]], msg: str) -> None:
        m_ = (tr < ns) & (tg == g)
        if not m_.any():
            return
        rr_, ww_ = tr[m_], tw[m_]
        rows_ = sub[rr_]
        vals: dict[str, Vals] = {
            "start_mfn": own.take("start_mfn", rows_, np.uint64),
            "nr_pages": own.take("nr_pages", rows_),
            "mfn": np.maximum(start[rr_], start[ww_]),
        }
        vals.update(extra(ww_ - ns))
        out.emit(code, h.domids[sdom[rr_]], own.entry(rows_), msg, vals)

    def kinds(arr: Arr, names: dict[int, str], refs: I64) -> list[int | str]:
        return [names.get(int(k), str(int(k))) for k in np.asarray(arr["kind"])[refs].tolist()]

    pseudo("OWN_IN_BOOTMEM", g_boot, lambda w: boot_vals, "frame {mfn:#x} lies in the LU bootmem")
    pseudo(
        "OWN_IN_REUSABLE",
        g_region,
        lambda w: {"region_entry": p_ref[w], "kind": kinds(reg, _REGION_KINDS, p_ref[w])},
        "frame {mfn:#x} lies in reusable region {region_entry} ({kind})",
    )
    pseudo(
        "OWN_IN_XEN_PAGES",
        g_xen,
        lambda w: {"xen_pages_entry": p_ref[w], "kind": kinds(xen, _XEN_KINDS, p_ref[w])},
        "frame {mfn:#x} lies in Xen pages extent {xen_pages_entry} ({kind})",
    )

    # Global extents against each other and the bootmem (§4.3).
    psub = tr >= ns
    names = {g_region: "LU_REUSABLE_REGIONS", g_xen: "LU_XEN_PAGES"}
    for code, groups, msg in (
        (
            "EXTENT_OVERLAP",
            (g_region, g_xen),
            "extent {start_mfn:#x}+{nr_pages} overlaps {other_record}[{other_entry}]",
        ),
        (
            "EXTENT_IN_BOOTMEM",
            (g_boot,),
            "extent {start_mfn:#x}+{nr_pages} overlaps the LU bootmem",
        ),
    ):
        m_ = psub & np.isin(tg, groups) & (group[tr] != g_boot)
        if not m_.any():
            continue
        r_, w_ = tr[m_], tw[m_]
        first = _group_starts(r_)  # one finding per extent: its first overlapping group
        r_, w_ = r_[first] - ns, w_[first] - ns
        vals: dict[str, Vals] = {"start_mfn": p_su[r_], "nr_pages": p_nr[r_]}
        if code == "EXTENT_OVERLAP":
            vals["other_record"] = [names[int(g)] for g in p_group[w_].tolist()]
            vals["other_entry"] = p_ref[w_]
        else:
            vals.update(boot_vals)
        out.emit(
            code,
            np.full(len(r_), DOMID_XEN, np.int64),
            p_ref[r_],
            msg,
            vals,
            record=[names[int(g)] for g in p_group[r_].tolist()],
        )


# --- §4.7 P2M --------------------------------------------------------------------


def _first_run_not_in(
    idx: _Index, k0: I64, k1: I64, want: I64, bad_of: Callable[[I64, int], Bool]
) -> I64:
    """Per query, the first run in [k0, k1] that is bad for its domain ``want``
    (``bad_of(runs_dom, want)``), or -1. One vectorised pass per domain."""
    res = np.full(len(k0), -1, np.int64)
    for d in np.unique(want).tolist():
        sel = np.flatnonzero(want == d)
        pos = np.flatnonzero(bad_of(idx.runs_dom, int(d)))
        if not len(pos):
            continue
        j = np.searchsorted(pos, k0[sel])
        jc = np.minimum(j, len(pos) - 1)
        hit = (j < len(pos)) & (pos[jc] <= k1[sel])
        res[sel[hit]] = pos[jc[hit]]
    return res


def _range_owner(idx: _Index, m: I64, last: I64, want: I64) -> tuple[Bool, I64, I64]:
    """Is every frame of [m, last] owned by domain ``want`` (or ambiguous)?
    Also the first frame that is not, and its owner (_NONE if unowned)."""
    k0, k1 = idx.run_of(m), idx.run_of(last)
    d0 = idx.runs_dom[k0]
    mine = (d0 == want) | (d0 == _AMBIG)
    ok = (k0 == k1) & mine
    bad = m.copy()
    owner = d0.copy()
    multi = np.flatnonzero(~ok & mine)  # starts well, spans several runs
    if len(multi):
        first = _first_run_not_in(
            idx, k0[multi], k1[multi], want[multi], lambda rd, d: (rd != d) & (rd != _AMBIG)
        )
        good = first < 0
        ok[multi[good]] = True
        fb = multi[~good]
        bad[fb] = np.maximum(m[fb], idx.runs_start[first[~good]])
        owner[fb] = idx.runs_dom[first[~good]]
    return ok, bad, owner


def _range_foreign(idx: _Index, m: I64, last: I64, mine: I64) -> tuple[Bool, Bool, I64, I64]:
    """Is every frame of [m, last] owned by a domain other than ``mine`` (or
    ambiguous)? Returns (some frame unowned, some frame ``mine``'s, the first
    such frame, the owner of the first frame)."""
    k0, k1 = idx.run_of(m), idx.run_of(last)
    rd = idx.runs_dom
    fn = _first_run_not_in(idx, k0, k1, mine, lambda r, d: r == _NONE)
    fs = _first_run_not_in(idx, k0, k1, mine, lambda r, d: r == d)
    big = np.iinfo(np.int64).max
    fb = np.minimum(np.where(fn >= 0, fn, big), np.where(fs >= 0, fs, big))
    bad_frame = np.where(fb < big, np.maximum(m, idx.runs_start[np.minimum(fb, len(rd) - 1)]), m)
    return fn >= 0, fs >= 0, bad_frame, rd[k0]


class _Rows:
    """Row lists collected chunk by chunk (with one aligned int column)."""

    def __init__(self) -> None:
        self.rows: list[I64] = []
        self.vals: list[I64] = []

    def add(self, base: int, where: I64, vals: I64 | None = None) -> None:
        if len(where):
            self.rows.append(base + where)
            self.vals.append(np.zeros(len(where), np.int64) if vals is None else vals)

    def get(self) -> tuple[I64, I64]:
        return _cat(self.rows, np.int64), _cat(self.vals, np.int64)


def _check_p2m(h: _Host, idx: _Index, out: _Out) -> None:
    tab = h.p2m
    if tab.n == 0:
        return
    ids = h.domids
    type_name = [P2M_TYPES.get(t, str(t)) for t in range(256)]
    inv = np.uint64(INVALID_MFN)
    one = np.uint64(1)
    gfn_doms: set[int] = set()
    carry: tuple[int, int, int] | None = None
    own_bad, own_multi = _Rows(), _Rows()
    f_un, f_self, f_multi = _Rows(), _Rows(), _Rows()
    shared, grants = _Rows(), _Rows()
    # One pass over the P2M of every domain, in chunks (§4.7).
    for base, dom, c in tab.chunks(("gfn", "mfn", "nr_pages", "p2m_type")):
        gfn = c["gfn"]
        nr = c["nr_pages"]
        mfn = c["mfn"]
        typ = c["p2m_type"]
        # GFN ranges: in (domain, gfn) order any overlap is an adjacent one;
        # a domain out of gfn order gets the exact sweep too.
        glast = gfn + (nr.astype(np.uint64) - one)
        wrap = glast < gfn
        if wrap.any():
            glast[wrap] = inv
        same = dom[1:] == dom[:-1]
        flag = same & ((gfn[1:] < gfn[:-1]) | (gfn[1:] <= glast[:-1]))
        if flag.any():
            gfn_doms.update(np.unique(dom[1:][flag]).tolist())
        first = int(gfn[0])
        if (
            carry is not None
            and carry[0] == int(dom[0])
            and (first < carry[1] or first <= carry[2])
        ):
            gfn_doms.add(int(dom[0]))
        carry = (int(dom[-1]), int(gfn[-1]), int(glast[-1]))
        # Frame rules by type.
        cls = _P2M_CLASS[typ]
        d1 = idx.dom_at(mfn)  # owner of each extent's first frame
        single = nr == 1
        own_t = (cls == _C_OWN) | ((cls == _C_PAGING_IN) & (mfn != inv))
        ok1 = (d1 == dom) | (d1 == _AMBIG)
        b = np.flatnonzero(own_t & single & ~ok1)
        own_bad.add(base, b, d1[b])
        own_multi.add(base, np.flatnonzero(own_t & ~single))
        foreign = cls == _C_FOREIGN
        if foreign.any():
            b = np.flatnonzero(foreign & single & (d1 == _NONE))
            f_un.add(base, b, d1[b])
            b = np.flatnonzero(foreign & single & (d1 == dom))
            f_self.add(base, b, d1[b])
            f_multi.add(base, np.flatnonzero(foreign & ~single))
            b = np.flatnonzero(foreign & (typ != 14))
            grants.add(base, b, d1[b])
        shared.add(base, np.flatnonzero(cls == _C_SHARED))

    def span(rows: I64) -> tuple[I64, I64]:
        m = _i64(tab.take("mfn", rows, np.uint64))
        return m, _last(m, tab.take("nr_pages", rows))

    def base_vals(rows: I64) -> dict[str, Vals]:
        return {
            "gfn": tab.take("gfn", rows, np.uint64),
            "mfn": tab.take("mfn", rows, np.uint64),
            "nr_pages": tab.take("nr_pages", rows),
            "p2m_type": [type_name[t] for t in tab.take("p2m_type", rows).tolist()],
        }

    # GFN overlaps, exactly, in the domains flagged above.
    for di in sorted(gfn_doms):
        p = h.doms[di].p2m
        flip = np.uint64(1 << 63)
        g = p["gfn"].astype(np.uint64)
        gl = g + (p["nr_pages"].astype(np.uint64) - one)
        gl = np.where(gl < g, inv, gl)
        res = _overlaps(
            (g ^ flip).view(np.int64), (gl ^ flip).view(np.int64), np.zeros(len(p), np.int64), True
        )
        if not res:
            continue
        rr, ww = res[0][1], res[0][2]
        out.emit(
            "P2M_GFN_OVERLAP",
            np.full(len(rr), ids[di], np.int64),
            rr,
            "gfn {gfn:#x}+{nr_pages} overlaps entry {other_entry} (gfn {other_gfn:#x})",
            {
                "gfn": g[rr],
                "nr_pages": np.asarray(p["nr_pages"])[rr],
                "other_entry": ww,
                "other_gfn": g[ww],
            },
        )

    # RAM types: every frame owned by this domain (ram_paging_in: or INVALID_MFN).
    rows, owner = own_bad.get()
    bad = _i64(tab.take("mfn", rows, np.uint64))
    mrows, _ = own_multi.get()
    if len(mrows):
        m, last = span(mrows)
        ok, mbad, mowner = _range_owner(idx, m, last, tab.dom_of(mrows))
        nb = np.flatnonzero(~ok)
        rows = np.concatenate((rows, mrows[nb]))
        bad = np.concatenate((bad, mbad[nb]))
        owner = np.concatenate((owner, mowner[nb]))
    out.emit(
        "P2M_FRAME_NOT_OWNED",
        ids[tab.dom_of(rows)],
        tab.entry(rows),
        "{p2m_type} frame {bad_mfn:#x} is owned by {owner}, not this domain",
        {**base_vals(rows), "bad_mfn": bad, "owner": h.owner_names(owner)},
        others=h.owner_ids(owner),
    )

    # grant_map / map_foreign: owned by another domain of this stream.
    un_rows, un_own = f_un.get()
    sf_rows, sf_own = f_self.get()
    un_bad = _i64(tab.take("mfn", un_rows, np.uint64))
    sf_bad = _i64(tab.take("mfn", sf_rows, np.uint64))
    mrows, _ = f_multi.get()
    if len(mrows):
        m, last = span(mrows)
        un, sf, fbad, fowner = _range_foreign(idx, m, last, tab.dom_of(mrows))
        un_rows = np.concatenate((un_rows, mrows[un]))
        un_bad = np.concatenate((un_bad, fbad[un]))
        un_own = np.concatenate((un_own, fowner[un]))
        s_ = sf & ~un
        sf_rows = np.concatenate((sf_rows, mrows[s_]))
        sf_bad = np.concatenate((sf_bad, fbad[s_]))
        sf_own = np.concatenate((sf_own, fowner[s_]))
    for code, rows, bad, owner, msg in (
        (
            "P2M_FOREIGN_UNOWNED",
            un_rows,
            un_bad,
            un_own,
            "{p2m_type} frame {bad_mfn:#x} is owned by no domain",
        ),
        (
            "P2M_FOREIGN_SELF",
            sf_rows,
            sf_bad,
            sf_own,
            "{p2m_type} frame {bad_mfn:#x} is the domain's own",
        ),
    ):
        out.emit(
            code,
            ids[tab.dom_of(rows)],
            tab.entry(rows),
            msg,
            {**base_vals(rows), "bad_mfn": bad},
            others=h.owner_ids(owner),
        )

    # ram_shared: inside an LU_XEN_PAGES SHARED extent (merged when adjacent).
    rows, _ = shared.get()
    if len(rows):
        m, last = span(rows)
        xp = h.stream.xen_pages
        sh = xp[np.asarray(xp["kind"]) == _XEN_SHARED] if len(xp) else xp
        inside = np.zeros(len(rows), bool)
        if len(sh):
            s0 = _i64(sh["start_mfn"])
            s1 = _last(s0, sh["nr_pages"])
            o = np.argsort(s0, kind="stable")
            s0, s1 = s0[o], s1[o]
            cm = np.maximum.accumulate(s1)
            head = np.ones(len(s0), bool)
            head[1:] = s0[1:] > cm[:-1] + 1
            hs = np.flatnonzero(head)
            ends = np.concatenate((hs[1:] - 1, [len(s0) - 1]))
            r0, r1 = s0[hs], cm[ends]
            k = np.searchsorted(r0, m, side="right") - 1
            kc = np.maximum(k, 0)
            inside = (k >= 0) & (m >= r0[kc]) & (last <= r1[kc])
        rows = rows[~inside]
        out.emit(
            "P2M_SHARED_OUTSIDE_COW",
            ids[tab.dom_of(rows)],
            tab.entry(rows),
            "ram_shared frames {mfn:#x}+{nr_pages} are not all in a SHARED extent",
            base_vals(rows),
            others=h.owner_ids(idx.dom_at(tab.take("mfn", rows, np.uint64))),
        )

    rows, first_owner = grants.get()
    if len(rows):
        _check_grant_backing(h, rows, first_owner, out)


def _check_grant_backing(h: _Host, g: I64, first_owner: I64, out: _Out) -> None:
    """§4.7: each grant_map page has its own LU_GRANT_MAPS entry of the domain
    (same mfn, host_map, readonly iff type 8); one entry backs one page.

    Without expanding extents: per (domain, readonly) the supply of entries
    per mfn is compared with the demand (extents covering that mfn); an
    extent is backed when every one of its pages is an mfn whose supply
    covers its demand. Where demand exceeds supply every extent involved is
    reported.
    """
    tab = h.p2m
    typ = tab.take("p2m_type", g)
    es_all = _i64(tab.take("mfn", g, np.uint64))
    el_all = _last(es_all, tab.take("nr_pages", g))
    gdom = tab.dom_of(g)
    unbacked = np.zeros(len(g), np.int64)
    for di in np.unique(gdom).tolist():
        gm = h.doms[di].grant_maps
        fl = np.asarray(gm["flags"]).astype(np.int64) if len(gm) else np.zeros(0, np.int64)
        host_map = (fl & GNTMAP_HOST_MAP) != 0
        ro_e = (fl & GNTMAP_READONLY) != 0
        mfn_e = _i64(gm["mfn"]) if len(gm) else np.zeros(0, np.int64)
        for ro, t in ((False, _GRANT_RW), (True, _GRANT_RO)):
            ext = np.flatnonzero((gdom == di) & (typ == t))
            if not len(ext):
                continue
            es, el = es_all[ext], el_all[ext]
            supply_mfn, supply = np.unique(mfn_e[host_map & (ro_e == ro)], return_counts=True)
            demand = np.searchsorted(np.sort(es), supply_mfn, "right") - np.searchsorted(
                np.sort(el), supply_mfn, "left"
            )
            good = supply_mfn[(supply >= demand) & (demand >= 1)]
            n_good = np.searchsorted(good, el, "right") - np.searchsorted(good, es, "left")
            unbacked[ext] = (el - es + 1) - n_good
    b = np.flatnonzero(unbacked > 0)
    rows = g[b]
    out.emit(
        "P2M_GRANT_UNBACKED",
        h.domids[gdom[b]],
        tab.entry(rows),
        "{unbacked} of {nr_pages} {p2m_type} pages at {mfn:#x} lack their own matching grant map",
        {
            "gfn": tab.take("gfn", rows, np.uint64),
            "mfn": tab.take("mfn", rows, np.uint64),
            "nr_pages": tab.take("nr_pages", rows),
            "p2m_type": ["grant_map_ro" if t == _GRANT_RO else "grant_map_rw" for t in typ[b]],
            "unbacked": unbacked[b],
        },
        others=h.owner_ids(first_owner[b]),
    )


# --- §4.9 page types ------------------------------------------------------------


def _check_page_types(h: _Host, idx: _Index, out: _Out) -> None:
    tab = _Table([d.page_types for d in h.doms])
    if not tab.n:
        return
    dom, ent = tab.dom_col(), tab.entry_col()
    mfn_u = tab.col("mfn", np.uint64)
    ids = h.domids
    d = idx.dom_at(mfn_u)
    rows = np.flatnonzero((d != dom) & (d != _AMBIG))
    out.emit(
        "PT_NOT_OWNED",
        ids[dom[rows]],
        ent[rows],
        "page type for frame {mfn:#x} owned by {owner}",
        {"mfn": mfn_u[rows], "owner": h.owner_names(d[rows])},
        others=h.owner_ids(d[rows]),
    )
    dup, first = _dups_after_first(dom, mfn_u)
    out.emit(
        "PT_DUPLICATE",
        ids[dom[dup]],
        ent[dup],
        "mfn {mfn:#x} already typed by entry {first_entry}",
        {"mfn": mfn_u[dup], "first_entry": ent[first]},
    )


# --- §4.10 grant tables ---------------------------------------------------------


def _grant_version_max(h: _Host, d: LUDomain) -> int:
    if hasattr(d.info, "grant_opts"):
        return int(d.info.grant_opts) & 0xF
    return int(h.host.gnttab_max_version) or 2


def _check_grant_tables(h: _Host, idx: _Index, out: _Out) -> None:
    host = h.host
    own = h.own
    frames: list[Arr] = []
    fdom: list[int] = []
    fgrant: list[int] = []
    for di, d in enumerate(h.doms):
        gt = d.grant_table
        if gt is None:
            continue
        lim = h.effective(d, "max_grant_frames", int(host.gnttab_max_frames), 64)
        if gt.nr_grant_frames > lim:
            out.emit(
                "GNT_TOO_MANY_FRAMES",
                [d.domid],
                None,
                "{nr_grant_frames} grant frames, effective max_grant_frames {max_grant_frames}",
                {"nr_grant_frames": gt.nr_grant_frames, "max_grant_frames": lim},
            )
        vmax = _grant_version_max(h, d)
        if gt.version > vmax:
            out.emit(
                "GNT_VERSION_ABOVE_MAX",
                [d.domid],
                None,
                "grant table v{version} above the maximum v{max_version} ({source})",
                {
                    "version": gt.version,
                    "max_version": vmax,
                    "source": "grant_opts"
                    if hasattr(d.info, "grant_opts")
                    else "gnttab_max_version",
                },
            )
        frames.append(np.concatenate((gt.grant_frames, gt.status_frames)).astype(np.uint64))
        fdom.append(di)
        fgrant.append(gt.nr_grant_frames)
    if not frames:
        return
    lens = np.array([len(f) for f in frames], np.int64)
    dom = np.repeat(np.array(fdom, np.int64), lens)
    offs = np.concatenate(([0], np.cumsum(lens)))
    ent = np.arange(int(lens.sum())) - np.repeat(offs[:-1], lens)
    nr_grant = np.repeat(np.array(fgrant, np.int64), lens)
    mfn_u = np.concatenate(frames)
    row = idx.row_at(mfn_u)
    odom = np.where(row >= 0, own.dom_of(np.maximum(row, 0)), row)
    oflags = np.where(row >= 0, own.take("flags", np.maximum(row, 0)), 0)
    ids = h.domids
    kind = np.where(ent < nr_grant, "grant", "status")
    kidx = np.where(ent < nr_grant, ent, ent - nr_grant)
    b = np.flatnonzero((odom != dom) & (odom != _AMBIG))
    out.emit(
        "GNT_FRAME_NOT_OWNED",
        ids[dom[b]],
        ent[b],
        "{frame_kind} frame {index} ({mfn:#x}) is owned by {owner}",
        {
            "mfn": mfn_u[b],
            "frame_kind": kind[b],
            "index": kidx[b],
            "owner": h.owner_names(odom[b]),
        },
        others=h.owner_ids(odom[b]),
    )
    b = np.flatnonzero((odom == dom) & ((oflags & _XEN_HEAP) == 0))
    out.emit(
        "GNT_FRAME_NOT_XEN_HEAP",
        ids[dom[b]],
        ent[b],
        "{frame_kind} frame {index} ({mfn:#x}) is owned without XEN_HEAP",
        {
            "mfn": mfn_u[b],
            "frame_kind": kind[b],
            "index": kidx[b],
            "ownership_entry": own.entry(row[b]),
        },
    )


# --- §4.11 grant maps -----------------------------------------------------------


def _check_grant_maps(h: _Host, idx: _Index, out: _Out) -> None:
    tab = _Table([d.grant_maps for d in h.doms])
    if not tab.n:
        return
    ids = h.domids
    dom, ent = tab.dom_col(), tab.entry_col()
    handle = tab.col("handle")
    ref = tab.col("ref")
    granter = tab.col("granting_domid")
    vcpu = tab.col("vcpu")
    mfn_u = tab.col("mfn", np.uint64)
    gi = h.lookup(granter)
    host = h.host

    b = np.flatnonzero(gi < 0)
    out.emit(
        "GMAP_GRANTER_MISSING",
        ids[dom[b]],
        ent[b],
        "handle {handle}: granting domain {granting_domid} is not in the stream",
        {"handle": handle[b], "granting_domid": granter[b]},
        others=granter[b],
    )
    b = np.flatnonzero(gi == dom)
    out.emit(
        "GMAP_GRANTER_SELF",
        ids[dom[b]],
        ent[b],
        "handle {handle}: granting domain is the mapping domain",
        {"handle": handle[b], "granting_domid": granter[b]},
    )
    nr_ent = np.array(
        [0 if d.grant_table is None else d.grant_table.nr_entries for d in h.doms] + [0],
        np.int64,
    )
    has = gi >= 0
    b = np.flatnonzero(has & (ref >= nr_ent[np.where(has, gi, h.nd)]))
    out.emit(
        "GMAP_REF_OUT_OF_TABLE",
        ids[dom[b]],
        ent[b],
        "handle {handle}: ref {ref} outside dom{granting_domid}'s table of {table_entries}",
        {
            "handle": handle[b],
            "ref": ref[b],
            "granting_domid": granter[b],
            "table_entries": nr_ent[gi[b]],
        },
        others=granter[b],
    )
    od = idx.dom_at(mfn_u)
    b = np.flatnonzero(has & (od != gi) & (od != _AMBIG))

    def gm_others(keep: I64) -> list[tuple[int, ...]]:
        r = b[keep]
        return [
            (int(g),) + ((int(ids[o]),) if o >= 0 else ())
            for g, o in zip(granter[r].tolist(), od[r].tolist(), strict=True)
        ]

    out.emit(
        "GMAP_FRAME_NOT_GRANTERS",
        ids[dom[b]],
        ent[b],
        "handle {handle}: frame {mfn:#x} is owned by {owner}, not dom{granting_domid}",
        {
            "handle": handle[b],
            "mfn": mfn_u[b],
            "granting_domid": granter[b],
            "owner": h.owner_names(od[b]),
        },
        others=gm_others,
    )
    lim = np.array(
        [
            256 * h.effective(d, "max_maptrack_frames", int(host.gnttab_max_maptrack_frames), 1024)
            for d in h.doms
        ],
        np.int64,
    )
    b = np.flatnonzero(handle >= lim[dom])
    out.emit(
        "GMAP_HANDLE_LIMIT",
        ids[dom[b]],
        ent[b],
        "handle {handle} >= maptrack limit {limit}",
        {"handle": handle[b], "limit": lim[dom[b]]},
    )
    dup, first = _dups_after_first(dom, handle)
    out.emit(
        "GMAP_HANDLE_DUPLICATE",
        ids[dom[dup]],
        ent[dup],
        "handle {handle} already used by entry {first_entry}",
        {"handle": handle[dup], "first_entry": ent[first]},
    )
    b = np.flatnonzero(vcpu >= h.max_vcpus[dom])
    out.emit(
        "GMAP_VCPU_RANGE",
        ids[dom[b]],
        ent[b],
        "handle {handle}: vcpu {vcpu} >= max_vcpus {max_vcpus}",
        {"handle": handle[b], "vcpu": vcpu[b], "max_vcpus": h.max_vcpus[dom[b]]},
    )


# --- §4.12, §4.13 event channels ---------------------------------------------------


def _check_evtchns(h: _Host, out: _Out) -> None:
    ids = h.domids
    # LU_EVTCHN_ABI control blocks
    cb_parts: list[Arr] = []
    cb_dom: list[int] = []
    fifo = np.zeros(h.nd, bool)
    pages = np.zeros(h.nd, np.int64)
    limit = np.zeros(h.nd, np.int64)
    for di, d in enumerate(h.doms):
        abi = d.evtchn_abi
        is_fifo = abi is not None and abi.abi == 2
        fifo[di] = is_fifo
        if abi is not None:
            pages[di] = len(abi.event_array_gfns)
            if len(abi.control_blocks):
                cb_parts.append(np.asarray(abi.control_blocks["vcpu"]).astype(np.int64))
                cb_dom.append(di)
        # §4.12 ABI limits: FIFO 131072; two-level 4096, 1024 with the 32-bit shared_info.
        shinfo32 = int(d.info.lu_state) & LU_STATE_SHINFO32
        abi_lim = 131072 if is_fifo else 1024 if shinfo32 else 4096
        limit[di] = min(abi_lim, int(d.info.max_evtchn_port) + 1)
    if cb_parts:
        lens = np.array([len(c) for c in cb_parts], np.int64)
        cdom = np.repeat(np.array(cb_dom, np.int64), lens)
        cv = np.concatenate(cb_parts)
        cent = np.arange(len(cv)) - np.repeat(np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
        b = np.flatnonzero(cv >= h.max_vcpus[cdom])
        out.emit(
            "EVTCHN_CB_VCPU_RANGE",
            ids[cdom[b]],
            cent[b],
            "control block for vcpu {vcpu} >= max_vcpus {max_vcpus}",
            {"vcpu": cv[b], "max_vcpus": h.max_vcpus[cdom[b]]},
        )
        dup, first = _dups_after_first(cdom, cv)
        out.emit(
            "EVTCHN_CB_DUPLICATE",
            ids[cdom[dup]],
            cent[dup],
            "second control block for vcpu {vcpu} (first: {first_entry})",
            {"vcpu": cv[dup], "first_entry": cent[first]},
        )

    parts = [d.evtchns for d in h.doms]
    lens = np.array([len(x) for x in parts], np.int64)
    if not lens.sum():
        return
    dom = np.repeat(np.arange(h.nd, dtype=np.int64), lens)
    offs = np.concatenate(([0], np.cumsum(lens)))
    ent = np.arange(int(lens.sum())) - np.repeat(offs[:-1], lens)
    port = _cat([x["port"] for x in parts], np.int64)
    state = _cat([x["state"] for x in parts], np.int64)
    prio = _cat([x["priority"] for x in parts], np.int64)
    notify = _cat([x["notify_vcpu"] for x in parts], np.int64)
    remote = _cat([x["remote_domid"] for x in parts], np.int64)
    flags = _cat([x["flags"] for x in parts], np.int64)
    detail = _cat([x["detail"] for x in parts], np.int64)
    lastq: list[Arr] = []
    lastv: list[Arr] = []
    for x in parts:
        if "fifo_lastq" in (x.dtype.names or ()):
            q = np.asarray(x["fifo_lastq"]).astype(np.int64)
            lastq.append((q >> 16) & 0xFF)
            lastv.append(q & 0xFFFF)
        else:
            lastq.append(_field(x, "last_priority"))
            lastv.append(_field(x, "last_vcpu"))
    last_prio = _cat(lastq, np.int64)
    last_vcpu = _cat(lastv, np.int64)
    mv = h.max_vcpus[dom]
    myid = ids[dom]
    f = fifo[dom]

    def simple(code: str, mask: Bool, msg: str, vals: dict[str, Arr]) -> None:
        b = np.flatnonzero(mask)
        out.emit(
            code,
            myid[b],
            ent[b],
            msg,
            {"port": port[b], **{k: v[b] for k, v in vals.items()}},
        )

    lim = limit[dom]
    simple(
        "EVTCHN_PORT_LIMIT",
        port >= lim,
        "port {port} >= limit {limit} ({abi})",
        {"limit": lim, "abi": np.where(f, "fifo", "two_level")},
    )
    simple(
        "EVTCHN_FIFO_BEYOND_ARRAY",
        f & (port < lim) & (port >= 1024 * pages[dom]),
        "FIFO port {port} has no event word yet ({nr_event_array_pages} event-array pages)",
        {"nr_event_array_pages": pages[dom], "pending": flags & 1},
    )
    dup, first = _dups_after_first(dom, port)
    out.emit(
        "EVTCHN_PORT_DUPLICATE",
        myid[dup],
        ent[dup],
        "port {port} already listed by entry {first_entry}",
        {"port": port[dup], "first_entry": ent[first]},
    )
    simple(
        "EVTCHN_NOTIFY_VCPU_RANGE",
        notify >= mv,
        "port {port}: notify_vcpu {notify_vcpu} >= max_vcpus {max_vcpus}",
        {"notify_vcpu": notify, "max_vcpus": mv},
    )
    simple(
        "EVTCHN_LAST_VCPU_RANGE",
        f & (last_vcpu >= mv),
        "port {port}: last vcpu {last_vcpu} >= max_vcpus {max_vcpus}",
        {"last_vcpu": last_vcpu, "max_vcpus": mv},
    )
    simple(
        "EVTCHN_2L_PRIORITY",
        ~f & (prio != 7),
        "two-level port {port} has priority {priority}, not 7",
        {"priority": prio},
    )
    simple(
        "EVTCHN_2L_PENDING",
        ~f & ((flags & 1) != 0),
        "two-level port {port} has the pending flag",
        {"flags": flags},
    )
    simple(
        "EVTCHN_2L_LAST",
        ~f & ((last_prio != 0) | (last_vcpu != 0)),
        "two-level port {port} has last priority {last_priority}, last vcpu {last_vcpu}",
        {"last_priority": last_prio, "last_vcpu": last_vcpu},
    )

    # Interdomain channels: the remote (domid, port) exists and names this one back.
    key = (myid << 32) | port
    korder = np.argsort(key, kind="stable")
    skey = key[korder]
    inter = np.flatnonzero(state == ECS_INTERDOMAIN)
    if len(inter):
        rdi = h.lookup(remote[inter])
        rkey = (remote[inter] << 32) | detail[inter]
        pos = np.searchsorted(skey, rkey)
        posc = np.minimum(pos, len(skey) - 1)
        found = (pos < len(skey)) & (skey[posc] == rkey)
        q = korder[posc]
        back = (
            found
            & (state[q] == ECS_INTERDOMAIN)
            & (remote[q] == myid[inter])
            & (detail[q] == port[inter])
        )
        rv: dict[str, Vals] = {}
        for code, mask, msg in (
            (
                "EVTCHN_REMOTE_DOMAIN_MISSING",
                rdi < 0,
                "port {port}: remote domain {remote_domid} is not in the stream",
            ),
            (
                "EVTCHN_REMOTE_PORT_MISSING",
                (rdi >= 0) & ~found,
                "port {port}: remote dom{remote_domid} port {remote_port} is not listed",
            ),
            (
                "EVTCHN_NOT_RECIPROCAL",
                found & ~back,
                "port {port}: remote dom{remote_domid} port {remote_port} does not name it back",
            ),
        ):
            b = np.flatnonzero(mask)
            rows = inter[b]
            rv = {
                "port": port[rows],
                "remote_domid": remote[rows],
                "remote_port": detail[rows],
            }
            if code == "EVTCHN_NOT_RECIPROCAL":
                qq = q[b]
                rv.update(
                    remote_state=state[qq], remote_remote_domid=remote[qq], remote_detail=detail[qq]
                )
            out.emit(code, myid[rows], ent[rows], msg, rv, others=remote[rows])

    # VIRQs: per-vCPU ones once per vCPU, others once per domain; pirqs once.
    virq = np.flatnonzero(state == ECS_VIRQ)
    if len(virq):
        per = np.isin(detail[virq], PER_VCPU_VIRQS)
        for code, rows, vc in (
            ("EVTCHN_VCPU_VIRQ_DUPLICATE", virq[per], True),
            ("EVTCHN_VIRQ_DUPLICATE", virq[~per], False),
        ):
            if not len(rows):
                continue
            cols = (dom[rows], detail[rows], notify[rows]) if vc else (dom[rows], detail[rows])
            dup, first = _dups_after_first(*cols)
            dr, fr = rows[dup], rows[first]
            vals: dict[str, Vals] = {
                "port": port[dr],
                "virq": detail[dr],
                "first_port": port[fr],
                "first_entry": ent[fr],
            }
            if vc:
                vals["vcpu"] = notify[dr]
            msg = "VIRQ {virq} already bound on port {first_port}"
            out.emit(code, myid[dr], ent[dr], msg + (" for vcpu {vcpu}" if vc else ""), vals)
    pirq = np.flatnonzero(state == ECS_PIRQ)
    if len(pirq):
        dup, first = _dups_after_first(dom[pirq], detail[pirq])
        dr, fr = pirq[dup], pirq[first]
        out.emit(
            "EVTCHN_PIRQ_DUPLICATE",
            myid[dr],
            ent[dr],
            "pirq {pirq} already bound on port {first_port}",
            {"port": port[dr], "pirq": detail[dr], "first_port": port[fr], "first_entry": ent[fr]},
        )


# --- §4.14 IOREQ servers --------------------------------------------------------


def _check_ioreq(h: _Host, out: _Out) -> None:
    ids = h.domids
    sdom: list[int] = []
    sent: list[int] = []
    sid: list[int] = []
    sdm: list[int] = []
    ranges: list[Arr] = []
    for di, d in enumerate(h.doms):
        srv = d.ioreq_servers
        if srv is None:
            continue
        for j, s in enumerate(srv.servers):
            sdom.append(di)
            sent.append(j)
            sid.append(int(s.id))
            sdm.append(int(s.dm_domid))
            ranges.append(s.ranges)
    if not sdom:
        return
    dom = np.array(sdom, np.int64)
    ent = np.array(sent, np.int64)
    sid_a = np.array(sid, np.int64)
    dm = np.array(sdm, np.int64)
    dmi = h.lookup(dm)
    b = np.flatnonzero(dmi < 0)
    out.emit(
        "IOREQ_DM_MISSING",
        ids[dom[b]],
        ent[b],
        "server {id}: emulating domain {dm_domid} is not in the stream",
        {"id": sid_a[b], "dm_domid": dm[b]},
        others=dm[b],
    )
    b = np.flatnonzero(dmi == dom)
    out.emit(
        "IOREQ_DM_SELF",
        ids[dom[b]],
        ent[b],
        "server {id}: the domain emulates itself",
        {"id": sid_a[b], "dm_domid": dm[b]},
    )
    dup, first = _dups_after_first(dom, sid_a)
    out.emit(
        "IOREQ_ID_DUPLICATE",
        ids[dom[dup]],
        ent[dup],
        "server id {id} already used by server {first_entry}",
        {"id": sid_a[dup], "first_entry": ent[first]},
    )
    # ranges of one type within one server: group = (server row, type)
    lens = np.array([len(r) for r in ranges], np.int64)
    if not lens.sum():
        return
    srow = np.repeat(np.arange(len(ranges), dtype=np.int64), lens)
    ridx = np.arange(int(lens.sum())) - np.repeat(np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    rtype = _cat([r["type"] for r in ranges], np.int64)
    flip = np.uint64(1 << 63)
    rs = (_cat([r["start"] for r in ranges], np.uint64) ^ flip).view(np.int64)
    re_ = (_cat([r["end"] for r in ranges], np.uint64) ^ flip).view(np.int64)
    res = _overlaps(rs, re_, srow * 4 + rtype, same_only=True)
    if not res:
        return
    rr = np.concatenate([r for _, r, _ in res])
    ww = np.concatenate([w for _, _, w in res])
    sr = srow[rr]
    out.emit(
        "IOREQ_RANGE_OVERLAP",
        ids[dom[sr]],
        ent[sr],
        "server {id}: {type} range {range} overlaps range {other_range}",
        {
            "id": sid_a[sr],
            "range": ridx[rr],
            "other_range": ridx[ww],
            "type": [{0: "portio", 1: "mmio", 2: "pci"}.get(int(t), str(t)) for t in rtype[rr]],
            "start": (rs[rr].view(np.uint64) ^ flip),
            "end": (re_[rr].view(np.uint64) ^ flip),
        },
    )


# --- §2, §4.6, §4.16: vCPU records, HVM_CONTEXT instances, SHINFO32 -----------------------


def _check_vcpus(h: _Host, out: _Out) -> None:
    ids_d: list[int] = []
    ents: list[int] = []
    recs: list[str] = []
    vids: list[int] = []
    mvs: list[int] = []
    hd: list[int] = []
    he: list[int] = []
    ht: list[int] = []
    hi: list[int] = []
    hm: list[int] = []
    try:
        from xenlu.hvmctx import PER_VCPU_TYPECODES

        per_vcpu = tuple(sorted(PER_VCPU_TYPECODES))
    except ImportError:  # pragma: no cover - written alongside
        per_vcpu = _PER_VCPU_TYPECODES
    for d in h.doms:
        mv = int(d.info.max_vcpus)
        for t in sorted(VCPU_TYPES):
            vs = d.of_type(t)
            for j, v in enumerate(vs):
                vid = int(getattr(v, "vcpu_id", 0))
                if vid >= mv:
                    ids_d.append(d.domid)
                    ents.append(j)
                    recs.append(_VCPU_RECORD_NAMES[t])
                    vids.append(vid)
                    mvs.append(mv)
        ctx = d.hvm_context
        entries = getattr(ctx, "entries", None)
        if entries:
            tc = np.fromiter((e.typecode for e in entries), np.int64, len(entries))
            ins = np.fromiter((e.instance for e in entries), np.int64, len(entries))
            b = np.flatnonzero(np.isin(tc, per_vcpu) & (ins >= mv))
            hd += [d.domid] * len(b)
            he += b.tolist()
            ht += tc[b].tolist()
            hi += ins[b].tolist()
            hm += [mv] * len(b)
        if not d.is_hvm:
            info = d.pv_info
            gw = getattr(info, "guest_width", None)
            if gw is not None:
                sh = bool(int(d.info.lu_state) & LU_STATE_SHINFO32)
                if sh != (int(gw) == 4):
                    out.emit(
                        "SHINFO32_MISMATCH",
                        [d.domid],
                        None,
                        "lu_state SHINFO32 is {shinfo32}, X86_PV_INFO guest_width {guest_width}",
                        {
                            "shinfo32": int(sh),
                            "guest_width": int(gw),
                            "lu_state": int(d.info.lu_state),
                        },
                    )
    out.emit(
        "PV_VCPU_RANGE",
        ids_d,
        ents,
        "vcpu_id {vcpu_id} >= max_vcpus {max_vcpus}",
        {"vcpu_id": vids, "max_vcpus": mvs},
        record=recs,
    )
    out.emit(
        "HVM_INSTANCE_RANGE",
        hd,
        he,
        "typecode {typecode} instance {instance} >= max_vcpus {max_vcpus}",
        {"typecode": ht, "instance": hi, "max_vcpus": hm},
    )
