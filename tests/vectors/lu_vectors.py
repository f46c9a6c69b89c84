"""Hand-built Live Update (LU) stream vectors.

Every byte here is written from the tables of the LU spec
(``shared/spec/lu-stream.md``, "spec" below) with :func:`struct.pack` and
:func:`crc32c.crc32c`. Nothing here uses xenlu's encoder: these vectors test it.

* :data:`GOLDEN`: valid streams. ``expected`` lists every record in stream
  order as ``(record name, fields)``; field names are the spec's, reserved
  fields and padding are left out, counts are implied by the lists.
* :data:`INVALID`: streams with one structural defect each (spec §7), with the
  error class, absolute offset and field that a decoder must report
  (``docs/conventions.md``). Every section checksum that a decoder can reach is
  correct unless the vector is about the checksum.
* :data:`SEMANTIC_ONLY`: structurally valid streams that break a rule relating
  two or more records (spec §7 "semantic"). A decoder must accept them;
  ``validate`` must report the finding named in ``rule``.

Conventions chosen where the spec leaves room:

* reserved fields are named ``rsvd`` when the record's layout in that epoch has
  one, else ``rsvd0``, ``rsvd1`` … in offset order;
* every GrammarError / UnknownRecordError reported at a record header carries
  ``field="type"`` (also when the record shows that another one is missing, or
  that ``nr_domains`` is wrong); domid order errors are at LU_DOMAIN ``domid``;
* ``field=None`` for truncated headers, a missing END (GrammarError at the end
  of the input), trailing bytes, a missing HVM_CONTEXT END entry (body end) and
  bytes after the HVM_CONTEXT END entry;
* a length above 128 MiB is refused from the header (``length`` at header + 4)
  before the missing body is noticed;
* an unknown mandatory type is an UnknownRecordError wherever it stands;
* the two-level rules for priority, pending and last fields are semantic
  (spec §7), so those vectors are in SEMANTIC_ONLY.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import crc32c

__all__ = ["GOLDEN", "INVALID", "SEMANTIC_ONLY", "LUVector"]


@dataclass(frozen=True)
class LUVector:
    """One LU stream and what a decoder must make of it."""

    name: str  # unique snake_case
    rule: str  # the spec rule (cite §) it exercises
    data: bytes
    expected: list[tuple[str, dict[str, Any]]] | None  # valid: every record in order
    error: str | None = None  # invalid: xenlu error class name
    offset: int | None = None  # absolute offset the error must report
    field: str | None = None  # error field name
    epoch: str = "4.11"


# ---------------------------------------------------------------------------
# Constants (spec §1, §4; reference §1.5)

Fields = dict[str, Any]
Expected = list[tuple[str, Fields]]
Ep = tuple[int, int]
Layout = tuple[tuple[str, str], ...]

TYPES: dict[str, int] = {
    "END": 0x00000000,
    "PAGE_DATA": 0x00000001,
    "X86_PV_INFO": 0x00000002,
    "X86_PV_P2M_FRAMES": 0x00000003,
    "X86_PV_VCPU_BASIC": 0x00000004,
    "X86_PV_VCPU_EXTENDED": 0x00000005,
    "X86_PV_VCPU_XSAVE": 0x00000006,
    "SHARED_INFO": 0x00000007,
    "X86_TSC_INFO": 0x00000008,
    "HVM_CONTEXT": 0x00000009,
    "HVM_PARAMS": 0x0000000A,
    "TOOLSTACK": 0x0000000B,
    "X86_PV_VCPU_MSRS": 0x0000000C,
    "VERIFY": 0x0000000D,
    "CHECKPOINT": 0x0000000E,
    "CHECKPOINT_DIRTY_PFN_LIST": 0x0000000F,
    "STATIC_DATA_END": 0x00000010,
    "X86_CPUID_POLICY": 0x00000011,
    "X86_MSR_POLICY": 0x00000012,
    "LU_VERSION": 0x40000000,
    "LU_HOST_INFO": 0x40000001,
    "LU_REUSABLE_REGIONS": 0x40000002,
    "LU_XEN_PAGES": 0x40000003,
    "LU_DOMAIN": 0x40000010,
    "LU_P2M": 0x40000012,
    "LU_PAGE_OWNERSHIP": 0x40000013,
    "LU_PAGE_TYPES": 0x40000014,
    "LU_GRANT_TABLE": 0x40000015,
    "LU_GRANT_MAPS": 0x40000016,
    "LU_EVTCHN_ABI": 0x40000017,
    "LU_EVTCHNS": 0x40000018,
    "LU_IOREQ_SERVERS": 0x40000019,
    "LU_SECTION_END": 0x4000007F,
}

DOMID_XEN = 0x7FF2
INVALID_MFN = 0xFFFF_FFFF_FFFF_FFFF
REC_LENGTH_MAX = 128 << 20
OPT_TYPE = 0xC0000099  # optional (bit 31) LU-only (bit 30) type nobody knows
HVM_FILE_MAGIC = 0x54381286

EPOCHS: tuple[Ep, ...] = (
    (4, 11),
    (4, 12),
    (4, 13),
    (4, 14),
    (4, 15),
    (4, 16),
    (4, 17),
    (4, 19),
    (4, 20),
    (4, 21),
)


def epoch_of(minor: int) -> Ep:
    """The epoch of Xen 4.``minor`` (spec §3)."""
    return max(e for e in EPOCHS if e <= (4, minor))


def _es(ep: Ep) -> str:
    return f"{ep[0]}.{ep[1]}"


def _blob(seed: int, n: int) -> bytes:
    """``n`` deterministic, non-zero-looking bytes."""
    return bytes((seed * 29 + 37 * i + 1) & 0xFF for i in range(n))


# ---------------------------------------------------------------------------
# Layouts, transcribed from the spec tables: (field, struct code), in order.


def _lay(*fields: tuple[str, str]) -> Layout:
    """Name reserved fields ``rsvd`` (one) or ``rsvd0``, ``rsvd1`` … (several)."""
    if sum(1 for n, _ in fields if n == "rsvd") <= 1:
        return tuple(fields)
    out: list[tuple[str, str]] = []
    k = 0
    for n, c in fields:
        if n == "rsvd":
            out.append((f"rsvd{k}", c))
            k += 1
        else:
            out.append((n, c))
    return tuple(out)


def _fmt(lay: Layout) -> str:
    return "<" + "".join(c for _, c in lay)


def size_of(lay: Layout) -> int:
    """The byte size of a layout."""
    return struct.calcsize(_fmt(lay))


def off_of(lay: Layout, name: str) -> int:
    """The offset of field ``name`` in a layout."""
    for i, (n, _) in enumerate(lay):
        if n == name:
            return struct.calcsize(_fmt(lay[:i]))
    raise KeyError(name)


def _pack(lay: Layout, d: Fields) -> bytes:
    vals: list[Any] = []
    for n, c in lay:
        if n.startswith("rsvd"):
            default: Any = bytes(struct.calcsize("<" + c)) if c.endswith("s") else 0
            vals.append(d.get(n, default))
        else:
            vals.append(d[n])
    return struct.pack(_fmt(lay), *vals)


L_VERSION = _lay(("xen_major", "I"), ("xen_minor", "I"))
L_HOST_INFO = _lay(
    ("page_shift", "I"),
    ("nr_domains", "I"),
    ("max_page", "Q"),
    ("lu_bootmem_start", "Q"),
    ("lu_bootmem_size", "Q"),
    ("gnttab_max_frames", "I"),
    ("gnttab_max_maptrack_frames", "I"),
    ("gnttab_max_version", "I"),
    ("rsvd", "I"),
)
L_SECTION_END = _lay(("domid", "H"), ("rsvd", "H"), ("crc32c", "I"), ("section_bytes", "Q"))
L_PV_INFO = _lay(("guest_width", "B"), ("pt_levels", "B"), ("rsvd", "6s"))
L_TSC_INFO = _lay(("mode", "I"), ("khz", "I"), ("nsec", "Q"), ("incarnation", "I"), ("rsvd", "I"))
L_VCPU_HDR = _lay(("vcpu_id", "I"), ("rsvd", "I"))
L_COUNT = _lay(("count", "I"), ("rsvd", "I"))
L_EXTENT = _lay(("start_mfn", "Q"), ("nr_pages", "Q"), ("kind", "I"), ("rsvd", "I"))
L_P2M = _lay(
    ("gfn", "Q"),
    ("mfn", "Q"),
    ("nr_pages", "I"),
    ("p2m_type", "B"),
    ("access", "B"),
    ("rsvd", "H"),
)
L_OWNERSHIP = _lay(("start_mfn", "Q"), ("nr_pages", "I"), ("flags", "I"))
L_PAGE_TYPES = _lay(("mfn", "Q"), ("type", "B"), ("flags", "B"), ("rsvd", "H"), ("type_count", "I"))
L_GRANT_MAPS = _lay(
    ("handle", "I"),
    ("ref", "I"),
    ("flags", "H"),
    ("granting_domid", "H"),
    ("vcpu", "I"),
    ("mfn", "Q"),
)
_EVTCHN_HEAD: tuple[tuple[str, str], ...] = (
    ("port", "I"),
    ("state", "B"),
    ("priority", "B"),
    ("notify_vcpu", "H"),
    ("remote_domid", "H"),
    ("xen_consumer", "B"),
    ("flags", "B"),
    ("detail", "I"),
)
L_EVTCHN_OLD = _lay(
    *_EVTCHN_HEAD, ("last_priority", "B"), ("rsvd", "B"), ("last_vcpu", "H"), ("rsvd", "I")
)
L_EVTCHN_NEW = _lay(*_EVTCHN_HEAD, ("fifo_lastq", "I"), ("rsvd", "I"))
L_HVM_PARAM = _lay(("index", "Q"), ("value", "Q"))
L_GT_HDR = _lay(
    ("version", "B"),
    ("rsvd", "3s"),
    ("nr_grant_frames", "I"),
    ("nr_status_frames", "I"),
    ("rsvd", "I"),
)
L_ABI_HDR = _lay(("abi", "I"), ("nr_control_blocks", "I"))
L_CB = _lay(("vcpu", "I"), ("offset", "I"), ("control_gfn", "Q"))
L_ABI_MID = _lay(("nr_event_array_pages", "I"), ("rsvd", "I"))
L_IOREQ_SERVER = _lay(
    ("id", "H"),
    ("dm_domid", "H"),
    ("enabled", "B"),
    ("bufioreq", "B"),
    ("nr_ranges", "H"),
    ("ioreq_gfn", "Q"),
    ("bufioreq_gfn", "Q"),
)
L_IOREQ_RANGE = _lay(("type", "I"), ("rsvd", "I"), ("start", "Q"), ("end", "Q"))
L_HVM_DESC = _lay(("typecode", "H"), ("instance", "H"), ("length", "I"))


def dom_layout(ep: Ep) -> Layout:
    """LU_DOMAIN by epoch (spec §4.6)."""
    g = "I" if ep < (4, 13) else "i"
    f: list[tuple[str, str]] = [
        ("domid", "H"),
        ("rsvd", "H"),
        ("domain_type", "I"),
        ("ssidref", "I"),
        ("handle", "16s"),
        ("cdf_flags", "I"),
        ("lu_state", "I"),
        ("max_vcpus", "I"),
        ("max_evtchn_port", "I"),
        ("emulation_flags", "I"),
        ("max_grant_frames", g),
        ("max_maptrack_frames", g),
    ]
    if ep >= (4, 13):
        f += [("iommu_opts", "I"), ("rsvd", "I")]
    if ep >= (4, 15):
        f += [("vmtrace_size", "I"), ("misc_flags", "I")]
    if ep >= (4, 16):
        f += [("grant_opts", "I"), ("cpupool_id" if ep >= (4, 17) else "rsvd", "I")]
    if ep >= (4, 21):
        f += [("altp2m_opts", "H"), ("nr_altp2m", "H"), ("rsvd", "I")]
    elif ep >= (4, 19):
        f += [("altp2m_opts", "I"), ("rsvd", "I")]
    return _lay(*f)


BULK = (
    "LU_REUSABLE_REGIONS",
    "LU_XEN_PAGES",
    "LU_P2M",
    "LU_PAGE_OWNERSHIP",
    "LU_PAGE_TYPES",
    "LU_GRANT_MAPS",
    "LU_EVTCHNS",
    "HVM_PARAMS",
)
VCPU_RECORDS = (
    "X86_PV_VCPU_BASIC",
    "X86_PV_VCPU_EXTENDED",
    "X86_PV_VCPU_XSAVE",
    "X86_PV_VCPU_MSRS",
)


def entry_layout(name: str, ep: Ep) -> Layout:
    """The entry layout of a count-prefixed record."""
    if name == "LU_EVTCHNS":
        return L_EVTCHN_NEW if ep >= (4, 15) else L_EVTCHN_OLD
    return {
        "LU_REUSABLE_REGIONS": L_EXTENT,
        "LU_XEN_PAGES": L_EXTENT,
        "LU_P2M": L_P2M,
        "LU_PAGE_OWNERSHIP": L_OWNERSHIP,
        "LU_PAGE_TYPES": L_PAGE_TYPES,
        "LU_GRANT_MAPS": L_GRANT_MAPS,
        "HVM_PARAMS": L_HVM_PARAM,
    }[name]


def pack_body(name: str, f: Fields, ep: Ep) -> bytes:
    """A record body from its fields. Extra keys (``count``, ``rsvd*``,
    ``nr_*``, ``length``) override derived or reserved values, for invalid vectors."""
    if name in BULK:
        ents: list[Fields] = f["entries"]
        lay = entry_layout(name, ep)
        head = _pack(L_COUNT, {"count": f.get("count", len(ents)), "rsvd": f.get("rsvd", 0)})
        return head + b"".join(_pack(lay, e) for e in ents)
    if name == "LU_VERSION":
        return _pack(L_VERSION, f)
    if name == "LU_HOST_INFO":
        return _pack(L_HOST_INFO, f)
    if name == "LU_DOMAIN":
        return _pack(dom_layout(f.get("layout_epoch", ep)), f)
    if name == "X86_PV_INFO":
        return _pack(L_PV_INFO, f)
    if name == "X86_TSC_INFO":
        return _pack(L_TSC_INFO, f)
    if name in VCPU_RECORDS:
        ctx: bytes = f["context"]
        return _pack(L_VCPU_HDR, f) + ctx
    if name == "LU_GRANT_TABLE":
        frames = [*f["grant_frames"], *f["status_frames"]]
        return _pack(L_GT_HDR, f) + b"".join(struct.pack("<Q", m) for m in frames)
    if name == "LU_EVTCHN_ABI":
        cbs: list[Fields] = f["control_blocks"]
        gfns: list[int] = f["event_array_gfns"]
        hdr = {"abi": f["abi"], "nr_control_blocks": f.get("nr_control_blocks", len(cbs))}
        mid = {
            "nr_event_array_pages": f.get("nr_event_array_pages", len(gfns)),
            "rsvd": f.get("rsvd", 0),
        }
        return (
            _pack(L_ABI_HDR, hdr)
            + b"".join(_pack(L_CB, cb) for cb in cbs)
            + _pack(L_ABI_MID, mid)
            + b"".join(struct.pack("<Q", g) for g in gfns)
        )
    if name == "LU_IOREQ_SERVERS":
        servers: list[Fields] = f["servers"]
        out = _pack(L_COUNT, {"count": f.get("count", len(servers)), "rsvd": f.get("rsvd", 0)})
        for s in servers:
            ranges: list[Fields] = s["ranges"]
            out += _pack(L_IOREQ_SERVER, {**s, "nr_ranges": s.get("nr_ranges", len(ranges))})
            out += b"".join(_pack(L_IOREQ_RANGE, r) for r in ranges)
        return out
    if name == "HVM_CONTEXT":
        out = b""
        for e in f["entries"]:
            data: bytes = e["data"]
            out += _pack(L_HVM_DESC, {**e, "length": e.get("length", len(data))}) + data
        return out
    if name == "END":
        return b""
    if name == "UNKNOWN":
        body: bytes = f["body"]
        return body
    raise KeyError(name)


# ---------------------------------------------------------------------------
# Records and streams


@dataclass(frozen=True)
class Rec:
    """One record: its expected (name, fields) and its bytes."""

    name: str
    type: int
    body: bytes
    fields: Fields
    pad: bytes | None = None  # padding override (default: zeros to 8)
    length: int | None = None  # header length override (default: len(body))


@dataclass(frozen=True)
class SecEnd:
    """LU_SECTION_END, checksummed over its section when assembled (spec §4.15)."""

    domid: int
    crc_xor: int = 0
    nbytes_delta: int = 0
    rsvd: int = 0
    extra: bytes = b""


Item = Rec | SecEnd


def rec(name: str, f: Fields, ep: Ep, *, pad: bytes | None = None) -> Rec:
    """Build a record from its fields."""
    rtype = f["type"] if name == "UNKNOWN" else TYPES[name]
    return Rec(name, rtype, pack_body(name, f, ep), f, pad=pad)


def raw(name: str, body: bytes, rtype: int | None = None) -> Rec:
    """A record from raw body bytes (for types with no expected shape)."""
    t = TYPES[name] if rtype is None else rtype
    return Rec(name, t, body, {"type": t, "body": body})


def unknown(rtype: int, body: bytes) -> Rec:
    return Rec("UNKNOWN", rtype, body, {"type": rtype, "body": body})


END_REC = Rec("END", 0, b"", {})


@dataclass(frozen=True)
class Built:
    """An assembled stream with the header offset of every item."""

    data: bytes
    offsets: tuple[int, ...]
    expected: Expected

    def hdr(self, i: int) -> int:
        return self.offsets[i]

    def body(self, i: int) -> int:
        return self.offsets[i] + 8


def assemble(items: Sequence[Item], trailer: bytes = b"") -> Built:
    """Frame the items; compute each LU_SECTION_END over its section."""
    out = bytearray()
    offs: list[int] = []
    exp: Expected = []
    start = 0
    for it in items:
        offs.append(len(out))
        if isinstance(it, SecEnd):
            nbytes = len(out) - start
            crc = crc32c.crc32c(bytes(out[start:]))
            body = (
                _pack(
                    L_SECTION_END,
                    {
                        "domid": it.domid,
                        "rsvd": it.rsvd,
                        "crc32c": crc ^ it.crc_xor,
                        "section_bytes": nbytes + it.nbytes_delta,
                    },
                )
                + it.extra
            )
            out += struct.pack("<II", TYPES["LU_SECTION_END"], len(body))
            out += body + bytes(-len(body) % 8)
            exp.append(
                (
                    "LU_SECTION_END",
                    {"domid": it.domid, "crc32c": crc, "section_bytes": nbytes},
                )
            )
            start = len(out)
        else:
            length = len(it.body) if it.length is None else it.length
            pad = bytes(-len(it.body) % 8) if it.pad is None else it.pad
            out += struct.pack("<II", it.type, length) + it.body + pad
            exp.append((it.name, it.fields))
    out += trailer
    return Built(bytes(out), tuple(offs), exp)


def find(items: Sequence[Item], name: str, domid: int | None = None, nth: int = 0) -> int:
    """Index of the ``nth`` record called ``name`` (within section ``domid``)."""
    cur = DOMID_XEN
    k = 0
    for i, it in enumerate(items):
        if isinstance(it, SecEnd):
            if name == "LU_SECTION_END" and (domid is None or it.domid == domid):
                if k == nth:
                    return i
                k += 1
            continue
        if it.name == "LU_DOMAIN":
            cur = it.fields["domid"]
        if it.name == name and (domid is None or cur == domid):
            if k == nth:
                return i
            k += 1
    raise KeyError((name, domid, nth))


def fields_of(items: Sequence[Item], i: int) -> Fields:
    it = items[i]
    assert isinstance(it, Rec)
    return it.fields


def put(items: Sequence[Item], i: int, *new: Item) -> list[Item]:
    """Replace item ``i`` by ``new`` (none: delete it)."""
    return [*items[:i], *new, *items[i + 1 :]]


def ins(items: Sequence[Item], i: int, *new: Item) -> list[Item]:
    """Insert ``new`` before item ``i``."""
    return [*items[:i], *new, *items[i:]]


def remake(items: Sequence[Item], i: int, ep: Ep, **changes: Any) -> list[Item]:
    """Rebuild record ``i`` with some fields changed."""
    it = items[i]
    assert isinstance(it, Rec)
    return put(items, i, rec(it.name, {**it.fields, **changes}, ep))


def remake_entry(
    items: Sequence[Item], i: int, ep: Ep, key: str, k: int, **changes: Any
) -> list[Item]:
    """Rebuild record ``i`` with entry ``k`` of list ``key`` changed."""
    lst = [dict(e) for e in fields_of(items, i)[key]]
    lst[k] = {**lst[k], **changes}
    return remake(items, i, ep, **{key: lst})


# ---------------------------------------------------------------------------
# The golden host (semantically plausible, spec §4 and §6)

HOST_INFO: Fields = {
    "page_shift": 12,
    "nr_domains": 2,
    "max_page": 0x100000,  # 4 GiB of RAM
    "lu_bootmem_start": 0x4000_0000,  # MFNs 0x40000-0x41FFF
    "lu_bootmem_size": 0x200_0000,
    "gnttab_max_frames": 64,
    "gnttab_max_maptrack_frames": 1024,
    "gnttab_max_version": 2,
}
REUSABLE: list[Fields] = [
    {"start_mfn": 0x1000, "nr_pages": 0x800, "kind": 1},  # FRAMETABLE
    {"start_mfn": 0x200, "nr_pages": 0x400, "kind": 2},  # XEN_IMAGE
    {"start_mfn": 0x2000, "nr_pages": 0x100, "kind": 3},  # SCRATCH
]
XEN_PAGES: list[Fields] = [
    {"start_mfn": 0x3000, "nr_pages": 0x400, "kind": 1},  # M2P
    {"start_mfn": 0x3400, "nr_pages": 0x40, "kind": 2},  # IOMMU_PT
    {"start_mfn": 0x3800, "nr_pages": 0x80, "kind": 3},  # LU_DATA
    {"start_mfn": 0x3900, "nr_pages": 0x10, "kind": 4},  # SHARED (DOMID_COW)
]


def global_section(
    ep: Ep,
    minor: int,
    *,
    nr_domains: int = 2,
    host: Fields | None = None,
    reusable: list[Fields] | None = None,
    xen_pages: list[Fields] | None = None,
    after_version: Sequence[Item] = (),
    extra: Sequence[Item] = (),
) -> list[Item]:
    """LU_VERSION, LU_HOST_INFO, LU_REUSABLE_REGIONS, LU_XEN_PAGES, LU_SECTION_END."""
    hi = {**HOST_INFO, "nr_domains": nr_domains, **(host or {})}
    items: list[Item] = [
        rec("LU_VERSION", {"xen_major": 4, "xen_minor": minor}, ep),
        *after_version,
        rec("LU_HOST_INFO", hi, ep),
    ]
    reusable = REUSABLE if reusable is None else reusable
    xen_pages = XEN_PAGES if xen_pages is None else xen_pages
    if reusable:
        items.append(rec("LU_REUSABLE_REGIONS", {"entries": reusable}, ep))
    if xen_pages:
        items.append(rec("LU_XEN_PAGES", {"entries": xen_pages}, ep))
    items += [*extra, SecEnd(DOMID_XEN)]
    return items


def dom_fields(ep: Ep, f: Fields) -> Fields:
    """Keep only the LU_DOMAIN fields that ``ep``'s layout has."""
    return {n: f[n] for n, _ in dom_layout(ep) if not n.startswith("rsvd")}


def chan(
    ep: Ep,
    port: int,
    state: int,
    *,
    prio: int = 7,
    vcpu: int = 0,
    remote: int = 0,
    flags: int = 0,
    detail: int = 0,
    last_prio: int = 0,
    last_vcpu: int = 0,
) -> Fields:
    """One LU_EVTCHNS entry in ``ep``'s layout (spec §4.13)."""
    e: Fields = {
        "port": port,
        "state": state,
        "priority": prio,
        "notify_vcpu": vcpu,
        "remote_domid": remote,
        "xen_consumer": 0,
        "flags": flags,
        "detail": detail,
    }
    if ep >= (4, 15):
        e["fifo_lastq"] = (last_prio << 16) | last_vcpu
    else:
        e["last_priority"] = last_prio
        e["last_vcpu"] = last_vcpu
    return e


S_RESERVED, S_UNBOUND, S_INTERDOMAIN, S_PIRQ, S_VIRQ, S_IPI = 1, 2, 3, 4, 5, 6


def dom0_channels(ep: Ep, *, virq11: bool = False, extra: Sequence[Fields] = ()) -> list[Fields]:
    """Two-level channels of dom0 (priority 7, no pending, last fields 0)."""
    chans = [
        chan(ep, 1, S_VIRQ, vcpu=0, detail=0),  # VIRQ_TIMER vCPU 0
        chan(ep, 2, S_VIRQ, vcpu=1, detail=0),  # VIRQ_TIMER vCPU 1
        chan(ep, 3, S_INTERDOMAIN, remote=1, detail=5),  # <-> d1 port 5
        chan(ep, 4, S_PIRQ, detail=9),
        chan(ep, 5, S_UNBOUND, remote=1),
        chan(ep, 6, S_IPI, vcpu=3),
        chan(ep, 7, S_VIRQ, detail=2),  # VIRQ_CONSOLE
        chan(ep, 8, S_RESERVED),
    ]
    if virq11:
        chans.append(chan(ep, 10, S_VIRQ, detail=11))  # reserved in 4.11
    chans += extra
    return chans


def dom0_section(
    ep: Ep,
    *,
    channels: list[Fields] | None = None,
    dom: Fields | None = None,
    extra: Sequence[Item] = (),
) -> list[Item]:
    """A PV dom0, domid 0 (spec §2 PV column)."""
    d = dom_fields(
        ep,
        {
            "domid": 0,
            "domain_type": 1,
            "ssidref": 0,
            "handle": bytes(16),
            "cdf_flags": 0x20 if ep >= (4, 13) else 0,  # iommu from 4.13
            "lu_state": 0x5 | (0x8 if ep < (4, 13) else 0),  # RUNNING|PRIVILEGED (|IOMMU)
            "max_vcpus": 4,
            "max_evtchn_port": 1023,
            "emulation_flags": 0x100,  # XEN_X86_EMU_PIT
            "max_grant_frames": 64 if ep < (4, 13) else -1,
            "max_maptrack_frames": 1024 if ep < (4, 13) else -1,
            "iommu_opts": 0,
            "vmtrace_size": 0,
            "misc_flags": 0,
            "grant_opts": 2,
            "cpupool_id": 0,
            "altp2m_opts": 0,
            "nr_altp2m": 0,
            **(dom or {}),
        },
    )
    own: list[Fields] = [
        {"start_mfn": 0x10000, "nr_pages": 0x400, "flags": 0},
        {"start_mfn": 0x10400, "nr_pages": 4, "flags": 1},  # XEN_HEAP: grant frames
        {"start_mfn": 0x10600, "nr_pages": 1, "flags": 2},  # BROKEN
    ]
    if ep >= (4, 14):
        own.append({"start_mfn": 0x10500, "nr_pages": 2, "flags": 4})  # EXTRA
    types: list[Fields] = [
        {"mfn": 0x10010, "type": 4, "flags": 0x3, "type_count": 1},  # L4 pinned validated
        {"mfn": 0x10011, "type": 3, "flags": 0x2, "type_count": 1},
        {"mfn": 0x10012, "type": 2, "flags": 0x2, "type_count": 1},
        {"mfn": 0x10013, "type": 1, "flags": 0x2, "type_count": 3},
        {"mfn": 0x10014, "type": 1, "flags": 0xA, "type_count": 1},  # validated|partial
        {"mfn": 0x10020, "type": 7, "flags": 0, "type_count": 2},  # writable
        {"mfn": 0x10021, "type": 5, "flags": 0x2, "type_count": 1},  # seg_desc
        {"mfn": 0x10022, "type": 6, "flags": 0, "type_count": 1},  # shared
        {"mfn": 0x10030, "type": 0, "flags": 0, "type_count": 0},
    ]
    gt: Fields = {
        "version": 1,
        "nr_grant_frames": 4,
        "nr_status_frames": 0,
        "grant_frames": [0x10400, 0x10401, 0x10402, 0x10403],
        "status_frames": [],
    }
    abi: Fields = {"abi": 1, "control_blocks": [], "event_array_gfns": []}
    chans = dom0_channels(ep) if channels is None else channels
    return [
        rec("LU_DOMAIN", d, ep),
        rec("X86_PV_INFO", {"guest_width": 8, "pt_levels": 4}, ep),
        rec("LU_PAGE_OWNERSHIP", {"entries": own}, ep),
        rec("LU_PAGE_TYPES", {"entries": types}, ep),
        rec("LU_GRANT_TABLE", gt, ep),
        rec("LU_EVTCHN_ABI", abi, ep),
        rec("LU_EVTCHNS", {"entries": chans}, ep),
        rec("X86_PV_VCPU_BASIC", {"vcpu_id": 0, "context": _blob(1, 13)}, ep),
        rec("X86_PV_VCPU_BASIC", {"vcpu_id": 1, "context": _blob(2, 13)}, ep),
        rec(
            "X86_TSC_INFO",
            {"mode": 0, "khz": 2_400_000, "nsec": 0x12_3456_789A, "incarnation": 2},
            ep,
        ),
        *extra,
        SecEnd(0),
    ]


def hvm_p2m(ep: Ep, *, mmio_mfn: int = 0xFED00) -> list[Fields]:
    """Every p2m type once (spec §4.7), frames by the type table."""
    e: list[Fields] = [
        {"gfn": 0x0, "mfn": 0x20000, "nr_pages": 0xA0, "p2m_type": 0, "access": 7},
        {"gfn": 0xA0, "mfn": INVALID_MFN, "nr_pages": 0x20, "p2m_type": 4, "access": 7},
        {"gfn": 0xC0, "mfn": 0x200A0, "nr_pages": 0x20, "p2m_type": 3, "access": 5},
        {"gfn": 0x100, "mfn": 0x200C0, "nr_pages": 0x100, "p2m_type": 2, "access": 3},
        {"gfn": 0x200, "mfn": INVALID_MFN, "nr_pages": 0x40, "p2m_type": 6, "access": 7},
        {"gfn": 0x240, "mfn": 0x201C0, "nr_pages": 0x10, "p2m_type": 9, "access": 8},
        {"gfn": 0x250, "mfn": INVALID_MFN, "nr_pages": 0x8, "p2m_type": 10, "access": 9},
        {"gfn": 0x258, "mfn": INVALID_MFN, "nr_pages": 0x8, "p2m_type": 11, "access": 0},
        {"gfn": 0x260, "mfn": 0x201D0, "nr_pages": 1, "p2m_type": 13, "access": 0},
        {"gfn": 0x300, "mfn": 0x3900, "nr_pages": 4, "p2m_type": 12, "access": 1},
        {"gfn": 0xF0000, "mfn": 0x10100, "nr_pages": 1, "p2m_type": 7, "access": 3},
        {"gfn": 0xF0001, "mfn": 0x10101, "nr_pages": 1, "p2m_type": 8, "access": 1},
        {"gfn": 0xF0010, "mfn": 0x10200, "nr_pages": 2, "p2m_type": 14, "access": 3},
        {"gfn": 0xFE000, "mfn": mmio_mfn, "nr_pages": 0x10, "p2m_type": 5, "access": 2},
        {"gfn": 0xFEFF0, "mfn": 0x201E0, "nr_pages": 1, "p2m_type": 15, "access": 3},
        {"gfn": 0xFFF00, "mfn": INVALID_MFN, "nr_pages": 1, "p2m_type": 1, "access": 0},
    ]
    if ep >= (4, 20):
        e.append({"gfn": 0x400, "mfn": 0x201F0, "nr_pages": 4, "p2m_type": 0, "access": 10})
    return e


def hvm_ownership(ep: Ep) -> list[Fields]:
    own: list[Fields] = [
        {"start_mfn": 0x20000, "nr_pages": 0x1D0, "flags": 0},
        {"start_mfn": 0x201D0, "nr_pages": 1, "flags": 2},  # BROKEN
        {"start_mfn": 0x201D1, "nr_pages": 0x2F, "flags": 0},
        {"start_mfn": 0x20200, "nr_pages": 3, "flags": 1},  # XEN_HEAP grant + status
    ]
    if ep >= (4, 14):
        own.append({"start_mfn": 0x20300, "nr_pages": 1, "flags": 4})  # EXTRA
    return own


def hvm_channels(ep: Ep) -> list[Fields]:
    """FIFO channels of the HVM guest d1."""
    return [
        chan(ep, 1, S_VIRQ, vcpu=0, detail=0, last_prio=7),
        chan(ep, 2, S_VIRQ, vcpu=1, detail=0, last_prio=7, last_vcpu=1),
        chan(ep, 3, S_IPI, vcpu=1, prio=4, last_prio=4, last_vcpu=1),
        chan(ep, 4, S_UNBOUND, remote=0),
        chan(ep, 5, S_INTERDOMAIN, remote=0, detail=3, prio=5, last_prio=5),  # <-> d0 port 3
        chan(ep, 6, S_PIRQ, detail=20),
        chan(ep, 7, S_VIRQ, detail=16, prio=15, last_prio=15),  # VIRQ_ARCH_0
        chan(ep, 3000, S_IPI, prio=0, flags=1),  # beyond the 2 event-array pages: pending
    ]


def hvm_context_entries(ep: Ep, *, nr_vcpus: int = 2) -> list[Fields]:
    """HEADER, CPU ×vcpus, RTC, VIRIDIAN_VCPU ×vcpus, END (reference §4.2)."""
    header = struct.pack("<IIQII", HVM_FILE_MAGIC, 1, INVALID_MFN, 0x000306C3, 2_400_000)
    rtc = _blob(11, 14) + b"\x0b\x00"
    if ep >= (4, 14):
        rtc += struct.pack("<q", -3600 if ep >= (4, 15) else 0)
    viridian = 16 if ep < (4, 13) else 216
    ents: list[Fields] = [{"typecode": 1, "instance": 0, "data": header}]
    ents += [{"typecode": 2, "instance": v, "data": _blob(20 + v, 22)} for v in range(nr_vcpus)]
    ents.append({"typecode": 11, "instance": 0, "data": rtc})
    ents += [
        {"typecode": 17, "instance": v, "data": _blob(170 + v, viridian)} for v in range(nr_vcpus)
    ]
    ents.append({"typecode": 0, "instance": 0, "data": b""})
    return ents


HVM_PARAMS: list[Fields] = [
    {"index": 1, "value": 0xFEFFC},  # STORE_PFN
    {"index": 5, "value": 0xFEFF1},  # IOREQ_PFN
    {"index": 6, "value": 0xFEFF2},  # BUFIOREQ_PFN
    {"index": 9, "value": 1},  # VIRIDIAN
    {"index": 17, "value": 0xFEFFD},  # CONSOLE_PFN
]


def hvm_section(
    ep: Ep,
    *,
    domid: int = 1,
    dom: Fields | None = None,
    p2m: list[Fields] | None = None,
    abi: Fields | None = None,
    channels: list[Fields] | None = None,
    params_first: bool = False,
    mmio_mfn: int = 0xFED00,
) -> list[Item]:
    """An HVM guest (spec §2 HVM column)."""
    cdf = 0x3  # hvm | hap
    if ep >= (4, 13):
        cdf |= 0x20  # iommu
    if ep >= (4, 15):
        cdf |= 0x40  # nested_virt
    if ep >= (4, 16):
        cdf |= 0x80  # vpmu
    d = dom_fields(
        ep,
        {
            "domid": domid,
            "domain_type": 2,
            "ssidref": 0,
            "handle": bytes(range(0x10, 0x20)),
            "cdf_flags": cdf,
            "lu_state": 0x1,  # RUNNING
            "max_vcpus": 2,
            "max_evtchn_port": 4095,
            "emulation_flags": 0x3FF,
            "max_grant_frames": 32,
            "max_maptrack_frames": 1024 if ep < (4, 13) else -1,
            "iommu_opts": 1,  # no_sharept
            "vmtrace_size": 0,
            "misc_flags": 1,  # msr_relaxed
            "grant_opts": 2,
            "cpupool_id": 1,
            "altp2m_opts": 1,  # mixed
            "nr_altp2m": 10,
            **(dom or {}),
        },
    )
    gt: Fields = {
        "version": 2,
        "nr_grant_frames": 2,
        "nr_status_frames": 1,
        "grant_frames": [0x20200, 0x20201],
        "status_frames": [0x20202],
    }
    maps: list[Fields] = [
        {"handle": 0, "ref": 8, "flags": 0x2, "granting_domid": 0, "vcpu": 0, "mfn": 0x10100},
        {"handle": 1, "ref": 9, "flags": 0x6, "granting_domid": 0, "vcpu": 1, "mfn": 0x10101},
        {"handle": 2, "ref": 10, "flags": 0x1, "granting_domid": 0, "vcpu": 0, "mfn": 0x10102},
    ]
    if abi is None:
        abi = {
            "abi": 2,
            "control_blocks": [
                {"vcpu": 0, "offset": 0x40, "control_gfn": 0x90},
                {"vcpu": 1, "offset": 0x40, "control_gfn": 0x91},
            ],
            "event_array_gfns": [0x92, 0x93],
        }
    ioreq: Fields = {
        "servers": [
            {
                "id": 0,
                "dm_domid": 0,
                "enabled": 1,
                "bufioreq": 2 if ep >= (4, 15) else 1,
                "ioreq_gfn": 0xFEFF1,
                "bufioreq_gfn": 0xFEFF2,
                "ranges": [
                    {"type": 0, "start": 0x3F8, "end": 0x3FF},
                    {"type": 1, "start": 0xFEBF_0000, "end": 0xFEBF_FFFF},
                    {"type": 2, "start": 0x10, "end": 0x10},
                ],
            },
            {
                "id": 1,
                "dm_domid": 0,
                "enabled": 0,
                "bufioreq": 0,
                "ioreq_gfn": 0xFEFF3,
                "bufioreq_gfn": INVALID_MFN,
                "ranges": [],
            },
        ]
    }
    ctx = rec("HVM_CONTEXT", {"entries": hvm_context_entries(ep)}, ep)
    params = rec("HVM_PARAMS", {"entries": HVM_PARAMS}, ep)
    tail: list[Item] = [params, ctx] if params_first else [ctx, params]
    return [
        rec("LU_DOMAIN", d, ep),
        rec("LU_P2M", {"entries": hvm_p2m(ep, mmio_mfn=mmio_mfn) if p2m is None else p2m}, ep),
        rec("LU_PAGE_OWNERSHIP", {"entries": hvm_ownership(ep)}, ep),
        rec("LU_GRANT_TABLE", gt, ep),
        rec("LU_GRANT_MAPS", {"entries": maps}, ep),
        rec("LU_EVTCHN_ABI", abi, ep),
        rec("LU_EVTCHNS", {"entries": hvm_channels(ep) if channels is None else channels}, ep),
        rec("LU_IOREQ_SERVERS", ioreq, ep),
        rec(
            "X86_TSC_INFO",
            {"mode": 2, "khz": 2_400_000, "nsec": 0x9_8765_4321, "incarnation": 1},
            ep,
        ),
        *tail,
        SecEnd(domid),
    ]


def pv32_section(ep: Ep, domid: int = 7) -> list[Item]:
    """A 32-bit PAE PV guest with SHINFO32, channel to dom0 port 9."""
    d = dom_fields(
        ep,
        {
            "domid": domid,
            "domain_type": 1,
            "ssidref": 0,
            "handle": bytes(range(0xA0, 0xB0)),
            "cdf_flags": 0,
            "lu_state": 0x11,  # RUNNING | SHINFO32
            "max_vcpus": 1,
            "max_evtchn_port": 1023,
            "emulation_flags": 0,
            "max_grant_frames": 1,
            "max_maptrack_frames": 0,
            "iommu_opts": 0,
            "vmtrace_size": 0,
            "misc_flags": 0,
            "grant_opts": 1,
            "cpupool_id": 0,
            "altp2m_opts": 0,
            "nr_altp2m": 0,
        },
    )
    own: list[Fields] = [
        {"start_mfn": 0x30000, "nr_pages": 0x100, "flags": 0},
        {"start_mfn": 0x30100, "nr_pages": 1, "flags": 1},
    ]
    types: list[Fields] = [
        {"mfn": 0x30010, "type": 3, "flags": 0x3, "type_count": 1},  # L3 pinned
        {"mfn": 0x30011, "type": 2, "flags": 0x6, "type_count": 1},  # L2 pae_xen_l2
        {"mfn": 0x30012, "type": 1, "flags": 0x2, "type_count": 1},
    ]
    msr = struct.pack("<IIQ", 0xC0000081, 0, 0x0023_0010_0000_0000)
    return [
        rec("LU_DOMAIN", d, ep),
        rec("LU_PAGE_OWNERSHIP", {"entries": own}, ep),
        rec("X86_PV_INFO", {"guest_width": 4, "pt_levels": 3}, ep),
        rec("LU_PAGE_TYPES", {"entries": types}, ep),
        rec(
            "LU_GRANT_TABLE",
            {
                "version": 1,
                "nr_grant_frames": 1,
                "nr_status_frames": 0,
                "grant_frames": [0x30100],
                "status_frames": [],
            },
            ep,
        ),
        rec("LU_EVTCHN_ABI", {"abi": 1, "control_blocks": [], "event_array_gfns": []}, ep),
        rec(
            "LU_EVTCHNS",
            {
                "entries": [
                    chan(ep, 1, S_VIRQ, detail=0),
                    chan(ep, 2, S_INTERDOMAIN, remote=0, detail=9),  # <-> d0 port 9
                ]
            },
            ep,
        ),
        rec("X86_PV_VCPU_BASIC", {"vcpu_id": 0, "context": _blob(3, 11)}, ep),
        rec("X86_PV_VCPU_EXTENDED", {"vcpu_id": 0, "context": _blob(4, 8)}, ep),
        rec("X86_PV_VCPU_XSAVE", {"vcpu_id": 0, "context": _blob(5, 24)}, ep),
        rec("X86_PV_VCPU_MSRS", {"vcpu_id": 0, "context": msr}, ep),
        SecEnd(domid),
    ]


def host(minor: int, *, virq11: bool = False) -> list[Item]:
    """The standard golden host: global section, PV dom0, HVM d1, END."""
    ep = epoch_of(minor)
    chans = dom0_channels(ep, virq11=virq11)
    return [
        *global_section(ep, minor),
        *dom0_section(ep, channels=chans),
        *hvm_section(ep),
        END_REC,
    ]


# ---------------------------------------------------------------------------
# GOLDEN


def _golden(name: str, rule: str, items: Sequence[Item], ep: Ep) -> LUVector:
    b = assemble(items)
    return LUVector(name, rule, b.data, copy.deepcopy(b.expected), epoch=_es(ep))


def _build_golden() -> list[LUVector]:
    out: list[LUVector] = []
    for minor in range(11, 22):
        ep = epoch_of(minor)
        out.append(
            _golden(
                f"golden_4_{minor}",
                f"§2 grammar, §3 epoch {_es(ep)} layouts (Xen 4.{minor}), §4 every record",
                host(minor),
                ep,
            )
        )

    # Three domains, one of them a 32-bit PV guest; HVM_PARAMS before HVM_CONTEXT.
    ep = (4, 21)
    d0_extra = [chan(ep, 9, S_INTERDOMAIN, remote=7, detail=2)]
    items: list[Item] = [
        *global_section(ep, 21, nr_domains=3),
        *dom0_section(ep, channels=dom0_channels(ep, extra=d0_extra)),
        *hvm_section(ep, params_first=True, dom={"altp2m_opts": 2, "nr_altp2m": 4}),
        *pv32_section(ep),
        END_REC,
    ]
    out.append(
        _golden(
            "golden_4_21_three_domains",
            "§2 any record order, HVM_PARAMS before HVM_CONTEXT, vCPU records; §4.12 SHINFO32",
            items,
            ep,
        )
    )

    # Bulk records repeated within one section.
    ep = (4, 15)
    items = host(15)
    i = find(items, "LU_P2M", 1)
    p2m = fields_of(items, i)["entries"]
    items = put(
        items,
        i,
        rec("LU_P2M", {"entries": p2m[:6]}, ep),
        rec("LU_P2M", {"entries": p2m[6:]}, ep),
    )
    i = find(items, "LU_EVTCHNS", 1)
    ch = fields_of(items, i)["entries"]
    items = put(
        items,
        i,
        rec("LU_EVTCHNS", {"entries": ch[:3]}, ep),
        rec("LU_EVTCHNS", {"entries": ch[3:]}, ep),
    )
    i = find(items, "LU_PAGE_OWNERSHIP", 0)
    own = fields_of(items, i)["entries"]
    items = put(
        items,
        i,
        rec("LU_PAGE_OWNERSHIP", {"entries": own[2:]}, ep),
        rec("LU_PAGE_OWNERSHIP", {"entries": own[:2]}, ep),
    )
    i = find(items, "LU_XEN_PAGES")
    xp = fields_of(items, i)["entries"]
    items = put(
        items,
        i,
        rec("LU_XEN_PAGES", {"entries": xp[:1]}, ep),
        rec("LU_XEN_PAGES", {"entries": xp[1:]}, ep),
    )
    out.append(
        _golden(
            "golden_4_15_split_bulk",
            "§1 bulk records may be repeated within one section (two LU_P2M, two LU_EVTCHNS)",
            items,
            ep,
        )
    )

    # Count-0 bulk records and empty libxc records (reference §1.5 errata).
    ep = (4, 13)
    items = host(13)
    items = ins(items, find(items, "LU_XEN_PAGES"), rec("LU_XEN_PAGES", {"entries": []}, ep))
    items = remake(items, find(items, "LU_PAGE_TYPES", 0), ep, entries=[])
    items = ins(items, find(items, "LU_P2M", 1) + 1, rec("LU_P2M", {"entries": []}, ep))
    items = remake(items, find(items, "HVM_PARAMS", 1), ep, entries=[])
    items = ins(
        items,
        find(items, "X86_TSC_INFO", 0),
        rec("X86_PV_VCPU_EXTENDED", {"vcpu_id": 0, "context": b""}, ep),
        rec("LU_EVTCHNS", {"entries": []}, ep),
    )
    out.append(
        _golden(
            "golden_4_13_count_zero",
            "§1 a decoder accepts count-0 bulk records; empty HVM_PARAMS / vCPU records",
            items,
            ep,
        )
    )

    # Optional records inside sections, after their first record (spec §1, §2 opt).
    ep = (4, 16)
    items = host(16)
    items = ins(items, 1, unknown(0x80000123, _blob(7, 5)))  # between LU_VERSION / HOST_INFO
    items = ins(items, find(items, "LU_SECTION_END", DOMID_XEN), unknown(OPT_TYPE, b""))
    items = ins(items, find(items, "LU_DOMAIN", 0) + 1, unknown(OPT_TYPE, _blob(8, 12)))
    items = ins(items, find(items, "LU_SECTION_END", 1), unknown(0xC0000100, _blob(9, 3)))
    out.append(
        _golden(
            "golden_4_16_optional_records",
            "§1 optional records (bit 31) inside a section after its first record are skipped"
            " and covered by the section checksum; §2 opt",
            items,
            ep,
        )
    )

    ep = (4, 11)
    out.append(
        _golden(
            "golden_4_11_virq11",
            "§4.13 a 4.11 stream may bind the then-reserved VIRQ 11 (valid; only conversion"
            " across 4.12 refuses it, §6)",
            host(11, virq11=True),
            ep,
        )
    )

    # Minimal sections: no extents, a PV domain with only what §2 requires, an HVM
    # domain with only LU_DOMAIN and a HEADER/END HVM_CONTEXT; bootmem ends at 4 GiB.
    ep = (4, 19)
    pv = dom_fields(
        ep,
        {
            "domid": 3,
            "domain_type": 1,
            "ssidref": 0x1234,
            "handle": bytes(16),
            "cdf_flags": 0,
            "lu_state": 0,
            "max_vcpus": 1,
            "max_evtchn_port": 0,
            "emulation_flags": 0,
            "max_grant_frames": -1,
            "max_maptrack_frames": -1,
            "iommu_opts": 0,
            "vmtrace_size": 0,
            "misc_flags": 0,
            "grant_opts": 1,
            "cpupool_id": 0,
            "altp2m_opts": 0,
        },
    )
    hv = {**pv, "domid": 0x7FEF, "domain_type": 2, "cdf_flags": 0x1, "altp2m_opts": 3}
    header = struct.pack("<IIQII", HVM_FILE_MAGIC, 1, 0, 0x000806EA, 0)
    ctx = [
        {"typecode": 1, "instance": 0, "data": header},
        {"typecode": 0, "instance": 0, "data": b""},
    ]
    items = [
        *global_section(
            ep,
            19,
            reusable=[],
            xen_pages=[],
            host={
                "lu_bootmem_start": 0xFE00_0000,
                "lu_bootmem_size": 0x200_0000,
                "gnttab_max_frames": 0,
                "gnttab_max_maptrack_frames": 0,
                "gnttab_max_version": 0,
            },
        ),
        rec("LU_DOMAIN", pv, ep),
        rec("X86_PV_INFO", {"guest_width": 8, "pt_levels": 4}, ep),
        SecEnd(3),
        rec("LU_DOMAIN", dom_fields(ep, hv), ep),
        rec("HVM_CONTEXT", {"entries": ctx}, ep),
        SecEnd(0x7FEF),
        END_REC,
    ]
    out.append(
        _golden(
            "golden_4_19_minimal",
            "§2 minimal sections (zero-or-more records absent); §4.2 bootmem ending at 4 GiB;"
            " host defaults 0 (unknown); highest ordinary domid 0x7FEF",
            items,
            ep,
        )
    )

    ep = (4, 20)
    items = [*global_section(ep, 20, nr_domains=0), END_REC]
    out.append(
        _golden(
            "golden_4_20_no_domains",
            "§2 domain-section* may be empty (nr_domains 0)",
            items,
            ep,
        )
    )

    # Boundary values that are still valid.
    ep = (4, 20)
    abi: Fields = {
        "abi": 2,
        "control_blocks": [
            {"vcpu": 0, "offset": 0, "control_gfn": 0x90},
            {"vcpu": 1, "offset": 4024, "control_gfn": 0x90},
        ],
        "event_array_gfns": list(range(0x100, 0x180)),  # 128 pages
    }
    chans = [
        chan(ep, 1, S_VIRQ, vcpu=0, detail=0, prio=0, last_prio=15, last_vcpu=1),
        chan(ep, 2, S_VIRQ, detail=23, prio=15),  # VIRQ_ARCH_7
        chan(ep, 5, S_INTERDOMAIN, remote=0, detail=3),
        chan(ep, 4095, S_IPI, vcpu=1, flags=1),
    ]
    items = [
        *global_section(ep, 20, host={"gnttab_max_version": 0}),
        *dom0_section(ep),
        *hvm_section(ep, abi=abi, channels=chans, mmio_mfn=0x1_0000_0000),
        END_REC,
    ]
    out.append(
        _golden(
            "golden_4_20_boundaries",
            "§4.12 control-block offset 0 and 4024, 128 event-array pages; §4.13 virq 23,"
            " priorities 0/15, fifo_lastq last priority 15; §4.7 mmio_direct above max_page",
            items,
            ep,
        )
    )
    return out


# ---------------------------------------------------------------------------
# INVALID


class _Inv:
    """Collects invalid vectors."""

    def __init__(self) -> None:
        self.out: list[LUVector] = []

    def add(
        self,
        name: str,
        rule: str,
        data: bytes,
        error: str,
        offset: int,
        field: str | None,
        ep: Ep,
    ) -> None:
        self.out.append(LUVector(name, rule, data, None, error, offset, field, _es(ep)))


def _entry_off(b: Built, i: int, lay: Layout, k: int, fld: str) -> int:
    return b.body(i) + 8 + k * size_of(lay) + off_of(lay, fld)


def _hvm_entry_off(entries: list[Fields], k: int) -> int:
    """Offset of HVM_CONTEXT entry ``k`` within the body."""
    return sum(8 + e.get("length", len(e["data"])) for e in entries[:k])


def _build_invalid() -> list[LUVector]:
    v = _Inv()
    _framing(v)
    _grammar(v)
    _versions(v)
    _global_records(v)
    _lu_domain(v)
    _memory_records(v)
    _grant_records(v)
    _evtchn_records(v)
    _ioreq_records(v)
    _section_end(v)
    _libxc_records(v)
    return v.out


def _framing(v: _Inv) -> None:
    ep = (4, 11)
    items = host(11)
    b = assemble(items)
    d = b.data

    v.add(
        "framing_empty_input",
        "§1 a stream starts with LU_VERSION; empty input is truncated at the first record header",
        b"",
        "FramingError",
        0,
        None,
        ep,
    )
    v.add(
        "framing_truncated_first_header",
        "§1 record header truncated",
        d[:4],
        "FramingError",
        0,
        None,
        ep,
    )
    i = find(items, "LU_DOMAIN", 1)
    v.add(
        "framing_truncated_header_mid_stream",
        "§1 record header truncated",
        d[: b.hdr(i) + 5],
        "FramingError",
        b.hdr(i),
        None,
        ep,
    )
    i = find(items, "LU_HOST_INFO")
    v.add(
        "framing_truncated_body",
        "§1 body runs past the end of the input",
        d[: b.body(i) + 20],
        "FramingError",
        b.hdr(i),
        "length",
        ep,
    )
    i = find(items, "X86_PV_VCPU_BASIC", 0)
    body_end = b.body(i) + 21
    v.add(
        "framing_truncated_padding",
        "§1 padding runs past the end of the input",
        d[: body_end + 1],
        "FramingError",
        b.hdr(i),
        "length",
        ep,
    )
    v.add(
        "framing_truncated_end_header",
        "§1 record header truncated (END)",
        d[:-4],
        "FramingError",
        len(d) - 8,
        None,
        ep,
    )
    v.add(
        "framing_missing_end",
        "§1/§2 the stream ends with END (an input that ends early is a truncation)",
        d[:-8],
        "FramingError",
        len(d) - 8,
        None,
        ep,
    )
    v.add(
        "framing_trailing_bytes_after_end",
        "§1 nothing may follow END in a stream file",
        d + bytes(8),
        "FramingError",
        len(d),
        None,
        ep,
    )
    v.add(
        "framing_trailing_byte_after_end",
        "§1 nothing may follow END in a stream file",
        d + b"\x00",
        "FramingError",
        len(d),
        None,
        ep,
    )

    # Non-zero padding: the section checksum is recomputed over the bad padding.
    i = find(items, "X86_PV_VCPU_BASIC", 0)
    it = items[i]
    assert isinstance(it, Rec)
    bad = put(items, i, Rec(it.name, it.type, it.body, it.fields, pad=b"\x00\x5a\x00"))
    b2 = assemble(bad)
    v.add(
        "framing_nonzero_padding",
        "§1 padding is zeros up to a multiple of 8",
        b2.data,
        "FramingError",
        b2.body(i) + len(it.body) + 1,
        "padding",
        ep,
    )
    i = find(items, "HVM_CONTEXT", 1)
    it = items[i]
    assert isinstance(it, Rec)
    assert len(it.body) % 8 == 4
    bad = put(items, i, Rec(it.name, it.type, it.body, it.fields, pad=b"\x01\x00\x00\x00"))
    b2 = assemble(bad)
    v.add(
        "framing_nonzero_padding_hvm_context",
        "§1 padding is zeros up to a multiple of 8",
        b2.data,
        "FramingError",
        b2.body(i) + len(it.body),
        "padding",
        ep,
    )

    # Body length above REC_LENGTH_MAX: checked on the header, before the body.
    i = find(items, "LU_XEN_PAGES")
    it = items[i]
    assert isinstance(it, Rec)
    bad = put(items, i, Rec(it.name, it.type, it.body, it.fields, length=REC_LENGTH_MAX + 1))
    b2 = assemble(bad)
    v.add(
        "framing_length_over_128mib",
        "§1 a record body is at most 128 MiB (REC_LENGTH_MAX)",
        b2.data,
        "FramingError",
        b2.hdr(i) + 4,
        "length",
        ep,
    )

    bad = put(items, len(items) - 1, Rec("END", 0, bytes(8), {}))
    b2 = assemble(bad)
    v.add(
        "end_nonzero_length",
        "§4.17 END is empty",
        b2.data,
        "RecordError",
        b2.hdr(len(items) - 1) + 4,
        "length",
        ep,
    )

    # Optional records outside a section or first in one (spec §1, §2).
    opt = unknown(OPT_TYPE, _blob(1, 8))
    b2 = assemble([opt, *items])
    v.add(
        "optional_record_first_in_stream",
        "§1 optional records only inside a section,"
        " after its first record; §1 the stream starts with LU_VERSION",
        b2.data,
        "GrammarError",
        0,
        "type",
        ep,
    )
    i = find(items, "LU_DOMAIN", 0)
    bad = ins(items, i, opt)
    b2 = assemble(bad)
    v.add(
        "optional_record_first_in_domain_section",
        "§1 optional records only after a"
        " section's first record (domain-section starts with LU_DOMAIN)",
        b2.data,
        "GrammarError",
        b2.hdr(i),
        "type",
        ep,
    )
    i = len(items) - 1
    bad = ins(items, i, unknown(0x80000001, b""))
    b2 = assemble(bad)
    v.add(
        "optional_record_between_last_section_and_end",
        "§1 optional records only inside"
        " a section; §2 stream := global-section domain-section* END",
        b2.data,
        "GrammarError",
        b2.hdr(i),
        "type",
        ep,
    )

    # Unknown mandatory records (bit 31 clear).
    ep = (4, 14)
    items = host(14)
    i = find(items, "LU_P2M", 1)
    bad = ins(items, i, unknown(0x4000005A, _blob(2, 16)))
    b2 = assemble(bad)
    v.add(
        "unknown_mandatory_lu_type",
        "§1 an unknown record without bit 31 is an error",
        b2.data,
        "UnknownRecordError",
        b2.hdr(i),
        "type",
        ep,
    )
    i = find(items, "LU_PAGE_TYPES", 0)
    bad = ins(items, i, unknown(0x40000011, _blob(3, 8)))
    b2 = assemble(bad)
    v.add(
        "unknown_mandatory_lu_type_gap",
        "§1 0x40000011 is not an LU record type (gap between LU_DOMAIN and LU_P2M)",
        b2.data,
        "UnknownRecordError",
        b2.hdr(i),
        "type",
        ep,
    )
    i = find(items, "LU_SECTION_END", DOMID_XEN)
    bad = ins(items, i, unknown(0x00000013, b""))
    b2 = assemble(bad)
    v.add(
        "unknown_mandatory_libxc_type",
        "§1 0x13 is a reserved mandatory libxc type",
        b2.data,
        "UnknownRecordError",
        b2.hdr(i),
        "type",
        ep,
    )


def _grammar(v: _Inv) -> None:
    ep = (4, 12)
    items = host(12)

    def g(
        name: str, rule: str, bad: Sequence[Item], at: int, e: Ep = ep, field: str = "type"
    ) -> None:
        b = assemble(bad)
        v.add(name, rule, b.data, "GrammarError", b.hdr(at), field, e)

    # Global section.
    g(
        "grammar_first_record_not_lu_version",
        "§1/§2 the stream starts with LU_VERSION",
        items[1:],
        0,
    )
    i = find(items, "LU_REUSABLE_REGIONS")
    g(
        "grammar_lu_version_twice",
        "§2 global-section has one LU_VERSION",
        ins(items, i, items[0]),
        i,
    )
    i = find(items, "LU_HOST_INFO")
    g(
        "grammar_host_info_missing",
        "§2 LU_HOST_INFO follows LU_VERSION (here LU_REUSABLE_REGIONS comes first)",
        put(items, i),
        i,
    )
    bad = [items[0], SecEnd(DOMID_XEN), *items[find(items, "LU_DOMAIN", 0) :]]
    g("grammar_host_info_missing_empty_global", "§2 LU_HOST_INFO is mandatory", bad, 1)
    g(
        "grammar_host_info_twice",
        "§2 global-section has one LU_HOST_INFO",
        ins(items, i + 1, items[i]),
        i + 1,
    )
    j = find(items, "LU_XEN_PAGES")
    g(
        "grammar_host_info_after_extents",
        "§2 LU_HOST_INFO precedes the extents",
        [items[0], items[j], items[i], *items[i + 1 : j], *items[j + 1 :]],
        1,
    )
    i = find(items, "LU_SECTION_END", DOMID_XEN)
    g(
        "grammar_domain_record_in_global_section",
        "§2 global-section holds only LU_REUSABLE_REGIONS, LU_XEN_PAGES and optional records",
        ins(items, i, rec("LU_PAGE_OWNERSHIP", {"entries": []}, ep)),
        i,
    )
    g(
        "grammar_tsc_info_in_global_section",
        "§2 libxc records only inside domain sections",
        ins(items, i, items[find(items, "X86_TSC_INFO", 0)]),
        i,
    )
    j = find(items, "LU_DOMAIN", 0)
    g(
        "grammar_global_section_end_missing",
        "§2 global-section ends with LU_SECTION_END",
        put(items, i),
        j - 1,
    )
    j = find(items, "LU_SECTION_END", 0)
    g(
        "grammar_global_record_in_domain_section",
        "§2 LU_XEN_PAGES only in the global section",
        ins(items, j, items[find(items, "LU_XEN_PAGES")]),
        j,
    )

    # nr_domains and domain order.
    i = find(items, "LU_HOST_INFO")
    bad = remake(items, i, ep, nr_domains=3)
    g(
        "grammar_nr_domains_too_many",
        "§2 LU_HOST_INFO.nr_domains equals the number of domain"
        " sections (END arrives after 2 of 3)",
        bad,
        len(items) - 1,
        field="nr_domains",
    )
    bad = remake(items, i, ep, nr_domains=1)
    g(
        "grammar_nr_domains_too_few",
        "§2 LU_HOST_INFO.nr_domains equals the number of domain"
        " sections (a second section follows 1 of 1)",
        bad,
        find(items, "LU_DOMAIN", 1),
        field="nr_domains",
    )
    s0 = find(items, "LU_DOMAIN", 0)
    s1 = find(items, "LU_DOMAIN", 1)
    e1 = find(items, "LU_SECTION_END", 1)
    bad = [*items[:s0], *items[s1 : e1 + 1], *items[s0:s1], *items[e1 + 1 :]]
    b = assemble(bad)
    at = s0 + (e1 + 1 - s1)
    v.add(
        "grammar_domains_not_ascending",
        "§2 domain sections appear in ascending domid order",
        b.data,
        "GrammarError",
        b.body(at),
        "domid",
        ep,
    )
    hvm2 = hvm_section(ep)  # a second section for domid 1
    bad = [*items[: e1 + 1], *hvm2, *items[e1 + 1 :]]
    bad = remake(bad, find(bad, "LU_HOST_INFO"), ep, nr_domains=3)
    b = assemble(bad)
    v.add(
        "grammar_domid_twice",
        "§2 a domid appears once",
        b.data,
        "GrammarError",
        b.body(e1 + 1),
        "domid",
        ep,
    )

    # Domain section structure.
    i = find(items, "X86_PV_INFO", 0)
    g(
        "grammar_domain_section_not_starting_with_lu_domain",
        "§2 LU_DOMAIN comes first",
        [*items[:s0], items[i], items[s0], *items[i + 1 :]],
        s0,
    )
    g(
        "grammar_lu_domain_twice_in_section",
        "§2 one LU_DOMAIN per section",
        ins(items, i + 1, items[s0]),
        i + 1,
    )
    e0 = find(items, "LU_SECTION_END", 0)
    g(
        "grammar_domain_section_end_missing",
        "§2 domain-section ends with LU_SECTION_END (the"
        " next LU_DOMAIN arrives inside the section)",
        put(items, e0),
        e0,
    )
    g(
        "grammar_last_section_end_missing",
        "§2 domain-section ends with LU_SECTION_END (END arrives inside the section)",
        put(items, e1),
        e1,
    )
    i = find(items, "LU_EVTCHN_ABI", 0)
    j = find(items, "LU_EVTCHNS", 0)
    assert j == i + 1
    g(
        "grammar_evtchns_before_abi",
        "§2 LU_EVTCHN_ABI precedes every LU_EVTCHNS",
        [*items[:i], items[j], items[i], *items[j + 1 :]],
        i,
    )
    g(
        "grammar_evtchns_without_abi",
        "§2 LU_EVTCHN_ABI precedes every LU_EVTCHNS (1 if there is any LU_EVTCHNS)",
        put(items, i),
        i,
    )
    i = find(items, "LU_GRANT_TABLE", 1)
    j = find(items, "LU_GRANT_MAPS", 1)
    assert j == i + 1
    g(
        "grammar_grant_maps_before_table",
        "§2 LU_GRANT_TABLE precedes every LU_GRANT_MAPS",
        [*items[:i], items[j], items[i], *items[j + 1 :]],
        i,
    )
    g(
        "grammar_grant_maps_without_table",
        "§2 LU_GRANT_TABLE precedes every LU_GRANT_MAPS",
        put(items, i),
        i,
    )
    g("grammar_grant_table_twice", "§2 LU_GRANT_TABLE 0-1", ins(items, i + 1, items[i]), i + 1)
    i = find(items, "LU_EVTCHN_ABI", 1)
    g("grammar_evtchn_abi_twice", "§2 LU_EVTCHN_ABI 0-1", ins(items, i + 1, items[i]), i + 1)

    # PV / HVM record counts (spec §2 table).
    pv_at = find(items, "X86_TSC_INFO", 0)
    hvm_at = find(items, "X86_TSC_INFO", 1)
    p2m = items[find(items, "LU_P2M", 1)]
    g("grammar_p2m_in_pv", "§2 LU_P2M: 0 in a PV domain", ins(items, pv_at, p2m), pv_at)
    types = items[find(items, "LU_PAGE_TYPES", 0)]
    g(
        "grammar_page_types_in_hvm",
        "§2 LU_PAGE_TYPES: 0 in an HVM domain",
        ins(items, hvm_at, types),
        hvm_at,
    )
    ioreq = items[find(items, "LU_IOREQ_SERVERS", 1)]
    g(
        "grammar_ioreq_servers_in_pv",
        "§2 LU_IOREQ_SERVERS: 0 in a PV domain",
        ins(items, pv_at, ioreq),
        pv_at,
    )
    g(
        "grammar_ioreq_servers_twice",
        "§2 LU_IOREQ_SERVERS: 0-1 in an HVM domain",
        ins(items, hvm_at, ioreq),
        hvm_at,
    )
    pvinfo = items[find(items, "X86_PV_INFO", 0)]
    g(
        "grammar_pv_info_missing",
        "§2 X86_PV_INFO: 1 in a PV domain (missing at LU_SECTION_END)",
        put(items, find(items, "X86_PV_INFO", 0)),
        e0 - 1,
    )
    g("grammar_pv_info_twice", "§2 X86_PV_INFO: 1 in a PV domain", ins(items, pv_at, pvinfo), pv_at)
    g(
        "grammar_pv_info_in_hvm",
        "§2 X86_PV_INFO: 0 in an HVM domain",
        ins(items, hvm_at, pvinfo),
        hvm_at,
    )
    ctx_i = find(items, "HVM_CONTEXT", 1)
    ctx = items[ctx_i]
    g(
        "grammar_hvm_context_missing",
        "§2 HVM_CONTEXT: 1 in an HVM domain (missing at LU_SECTION_END)",
        put(items, ctx_i),
        e1 - 1,
    )
    g(
        "grammar_hvm_context_twice",
        "§2 HVM_CONTEXT: 1 in an HVM domain (the second one is reported)",
        ins(items, ctx_i + 1, ctx),
        ctx_i + 1,
    )
    g(
        "grammar_hvm_context_in_pv",
        "§2 HVM_CONTEXT: 0 in a PV domain",
        ins(items, pv_at, ctx),
        pv_at,
    )
    params_i = find(items, "HVM_PARAMS", 1)
    params = items[params_i]
    g(
        "grammar_hvm_params_twice",
        "§2 HVM_PARAMS: 0-1 in an HVM domain (the second one is reported)",
        ins(items, params_i + 1, params),
        params_i + 1,
    )
    g(
        "grammar_hvm_params_in_pv",
        "§2 HVM_PARAMS: 0 in a PV domain",
        ins(items, pv_at, params),
        pv_at,
    )
    vcpu = items[find(items, "X86_PV_VCPU_BASIC", 0)]
    g(
        "grammar_pv_vcpu_in_hvm",
        "§2 X86_PV_VCPU_*: 0 in an HVM domain",
        ins(items, hvm_at, vcpu),
        hvm_at,
    )
    g(
        "grammar_pv_vcpu_basic_twice_same_vcpu",
        "§2 X86_PV_VCPU_BASIC: 0-1 per vCPU id",
        ins(items, pv_at, vcpu),
        pv_at,
    )
    tsc = items[pv_at]
    g(
        "grammar_tsc_info_twice",
        "§2 X86_TSC_INFO: 0-1 (the second one is reported)",
        ins(items, pv_at + 1, tsc),
        pv_at + 1,
    )

    # libxc records not allowed in an LU stream (spec §4.16).
    forbidden: list[tuple[str, bytes]] = [
        ("PAGE_DATA", struct.pack("<IIQ", 1, 0, (0xF << 60) | 0x10)),  # one XTAB pfn
        ("X86_PV_P2M_FRAMES", struct.pack("<IIQ", 0, 511, 0x10040)),
        ("SHARED_INFO", bytes(4096)),
        ("TOOLSTACK", _blob(4, 12)),
        ("VERIFY", b""),
        ("CHECKPOINT", b""),
        ("CHECKPOINT_DIRTY_PFN_LIST", struct.pack("<Q", 0x10)),
        ("STATIC_DATA_END", b""),
    ]
    for name, body in forbidden:
        g(
            f"grammar_{name.lower()}_in_domain_section",
            f"§4.16 {name} is not allowed in an LU stream",
            ins(items, pv_at, raw(name, body)),
            pv_at,
        )
    g(
        "grammar_end_inside_global_section",
        "§2 END only after the last section",
        [*items[:3], END_REC],
        3,
    )


def _versions(v: _Inv) -> None:
    for minor, ep in ((10, (4, 11)), (22, (4, 21))):
        items = remake(host(ep[1]), 0, ep, xen_minor=minor)
        b = assemble(items)
        v.add(
            f"version_4_{minor}",
            "§3 LU_VERSION outside 4.11 ... 4.21 is refused",
            b.data,
            "VersionError",
            b.body(0) + 4,
            "xen_minor",
            ep,
        )
    for major in (3, 5):
        items = remake(host(11), 0, (4, 11), xen_major=major)
        b = assemble(items)
        v.add(
            f"version_{major}_11",
            "§3 LU_VERSION outside 4.11 ... 4.21 is refused",
            b.data,
            "VersionError",
            b.body(0),
            "xen_major",
            (4, 11),
        )
    items = host(11)
    it = items[0]
    assert isinstance(it, Rec)
    b = assemble(put(items, 0, Rec(it.name, it.type, it.body + bytes(4), it.fields)))
    v.add(
        "lu_version_length",
        "§4.1 LU_VERSION is 8 bytes",
        b.data,
        "RecordError",
        4,
        "length",
        (4, 11),
    )


def _global_records(v: _Inv) -> None:
    ep = (4, 13)
    items = host(13)
    hi = find(items, "LU_HOST_INFO")

    def h(name: str, rule: str, fld: str, value: int) -> None:
        b = assemble(remake(items, hi, ep, **{fld: value}))
        v.add(name, rule, b.data, "RecordError", b.body(hi) + off_of(L_HOST_INFO, fld), fld, ep)

    h("host_info_page_shift_13", "§4.2 page_shift must be 12", "page_shift", 13)
    h(
        "host_info_bootmem_misaligned",
        "§4.2 lu_bootmem_start is 2 MiB aligned",
        "lu_bootmem_start",
        0x4010_0000,
    )
    h("host_info_bootmem_size_zero", "§4.2 lu_bootmem_size is non-zero", "lu_bootmem_size", 0)
    h(
        "host_info_bootmem_size_not_2mib_multiple",
        "§4.2 lu_bootmem_size is a multiple of 2 MiB",
        "lu_bootmem_size",
        0x210_0000,
    )
    b = assemble(remake(items, hi, ep, lu_bootmem_start=0xFFE0_0000, lu_bootmem_size=0x40_0000))
    v.add(
        "host_info_bootmem_above_4gib",
        "§4.2 lu_bootmem_start + size <= 4 GiB",
        b.data,
        "RecordError",
        b.body(hi) + off_of(L_HOST_INFO, "lu_bootmem_size"),
        "lu_bootmem_size",
        ep,
    )
    h(
        "host_info_gnttab_max_version_3",
        "§4.2 gnttab_max_version is 0, 1 or 2",
        "gnttab_max_version",
        3,
    )
    h("host_info_rsvd", "§4.2 rsvd must be zero", "rsvd", 1)
    it = items[hi]
    assert isinstance(it, Rec)
    b = assemble(put(items, hi, Rec(it.name, it.type, it.body[:40], it.fields)))
    v.add(
        "host_info_length",
        "§4.2 LU_HOST_INFO is 48 bytes",
        b.data,
        "RecordError",
        b.hdr(hi) + 4,
        "length",
        ep,
    )

    # Extents (spec §4.3-§4.5).
    ri = find(items, "LU_REUSABLE_REGIONS")
    xi = find(items, "LU_XEN_PAGES")

    def x(name: str, rule: str, i: int, k: int, fld: str, value: int) -> None:
        b = assemble(remake_entry(items, i, ep, "entries", k, **{fld: value}))
        v.add(
            name,
            rule,
            b.data,
            "RecordError",
            _entry_off(b, i, L_EXTENT, k, fld),
            f"entries[{k}].{fld}",
            ep,
        )

    x("reusable_nr_pages_zero", "§4.3 EXTENT nr_pages > 0", ri, 1, "nr_pages", 0)
    x("reusable_kind_0", "§4.4 kind 1-3", ri, 0, "kind", 0)
    x("reusable_kind_4", "§4.4 kind 1-3 (4 SHARED is a LU_XEN_PAGES kind)", ri, 2, "kind", 4)
    x("xen_pages_kind_5", "§4.5 kind 1-4", xi, 3, "kind", 5)
    x("xen_pages_nr_pages_zero", "§4.3 EXTENT nr_pages > 0", xi, 0, "nr_pages", 0)
    x("xen_pages_entry_rsvd", "§4.3 EXTENT rsvd must be zero", xi, 2, "rsvd", 0x100)
    b = assemble(remake(items, ri, ep, count=4))
    v.add(
        "reusable_count_length_mismatch",
        "§4 count-prefixed: length == 8 + count x 24",
        b.data,
        "RecordError",
        b.hdr(ri) + 4,
        "length",
        ep,
    )
    b = assemble(remake(items, ri, ep, rsvd=1))
    v.add(
        "reusable_header_rsvd",
        "§4 count-prefixed header rsvd must be zero",
        b.data,
        "RecordError",
        b.body(ri) + 4,
        "rsvd",
        ep,
    )
    it = items[xi]
    assert isinstance(it, Rec)
    b = assemble(put(items, xi, Rec(it.name, it.type, it.body + bytes(8), it.fields)))
    v.add(
        "xen_pages_length_not_entry_multiple",
        "§4 count-prefixed: length == 8 + count x 24",
        b.data,
        "RecordError",
        b.hdr(xi) + 4,
        "length",
        ep,
    )
    b = assemble(put(items, xi, Rec(it.name, it.type, bytes(4), it.fields)))
    v.add(
        "xen_pages_shorter_than_count_header",
        "§4 count-prefixed body is at least 8 bytes",
        b.data,
        "RecordError",
        b.hdr(xi) + 4,
        "length",
        ep,
    )


def _lu_domain(v: _Inv) -> None:
    def dv(
        name: str,
        rule: str,
        minor: int,
        domid: int,
        fld: str,
        changes: Fields,
        err_fld: str | None = None,
    ) -> None:
        ep = epoch_of(minor)
        items = host(minor)
        i = find(items, "LU_DOMAIN", domid)
        b = assemble(remake(items, i, ep, **changes))
        v.add(
            name,
            rule,
            b.data,
            "RecordError",
            b.body(i) + off_of(dom_layout(ep), fld),
            err_fld or fld,
            ep,
        )

    def cdf(minor: int, domid: int) -> int:
        items = host(minor)
        return int(fields_of(items, find(items, "LU_DOMAIN", domid))["cdf_flags"])

    def lus(minor: int, domid: int) -> int:
        items = host(minor)
        return int(fields_of(items, find(items, "LU_DOMAIN", domid))["lu_state"])

    dv(
        "lu_domain_cdf_iommu_4_11",
        "§4.6 CDF bit 5 iommu valid from 4.13",
        11,
        0,
        "cdf_flags",
        {"cdf_flags": cdf(11, 0) | 0x20},
    )
    dv(
        "lu_domain_cdf_iommu_4_12",
        "§4.6 CDF bit 5 iommu valid from 4.13",
        12,
        1,
        "cdf_flags",
        {"cdf_flags": cdf(12, 1) | 0x20},
    )
    dv(
        "lu_domain_cdf_nested_virt_4_14",
        "§4.6 CDF bit 6 nested_virt valid from 4.15",
        14,
        1,
        "cdf_flags",
        {"cdf_flags": cdf(14, 1) | 0x40},
    )
    dv(
        "lu_domain_cdf_vpmu_4_15",
        "§4.6 CDF bit 7 vpmu valid from 4.16",
        15,
        1,
        "cdf_flags",
        {"cdf_flags": cdf(15, 1) | 0x80},
    )
    dv(
        "lu_domain_cdf_bit8_4_21",
        "§4.6 CDF bits above 7 never valid",
        21,
        1,
        "cdf_flags",
        {"cdf_flags": cdf(21, 1) | 0x100},
    )
    dv(
        "lu_domain_cdf_hvm_on_pv",
        "§4.6 cdf_flags.hvm must agree with domain_type",
        13,
        0,
        "cdf_flags",
        {"cdf_flags": cdf(13, 0) | 0x1},
    )
    dv(
        "lu_domain_cdf_hvm_missing_on_hvm",
        "§4.6 cdf_flags.hvm must agree with domain_type",
        16,
        1,
        "cdf_flags",
        {"cdf_flags": cdf(16, 1) & ~0x1},
    )
    dv(
        "lu_domain_lu_state_iommu_4_13",
        "§4.6 lu_state bit 3 IOMMU valid before 4.13 only",
        13,
        0,
        "lu_state",
        {"lu_state": lus(13, 0) | 0x8},
    )
    dv(
        "lu_domain_lu_state_iommu_4_21",
        "§4.6 lu_state bit 3 IOMMU valid before 4.13 only",
        21,
        1,
        "lu_state",
        {"lu_state": lus(21, 1) | 0x8},
    )
    dv(
        "lu_domain_lu_state_bit5",
        "§4.6 lu_state bits 0-4 only",
        11,
        1,
        "lu_state",
        {"lu_state": lus(11, 1) | 0x20},
    )
    dv(
        "lu_domain_domain_type_3",
        "§4.6 domain_type 1 or 2",
        12,
        0,
        "domain_type",
        {"domain_type": 3},
    )
    dv(
        "lu_domain_domain_type_0",
        "§4.6 domain_type 1 or 2",
        17,
        0,
        "domain_type",
        {"domain_type": 0},
    )
    dv("lu_domain_max_vcpus_0", "§4.6 max_vcpus >= 1", 15, 1, "max_vcpus", {"max_vcpus": 0})
    dv(
        "lu_domain_emulation_flags_bit11",
        "§4.6 emulation_flags bits 0-10",
        14,
        1,
        "emulation_flags",
        {"emulation_flags": 0x800 | 0x3FF},
    )
    dv(
        "lu_domain_iommu_opts_bit1",
        "§4.6 iommu_opts bit 0 only",
        13,
        1,
        "iommu_opts",
        {"iommu_opts": 0x3},
    )
    dv(
        "lu_domain_misc_flags_bit1",
        "§4.6 misc_flags bit 0 only",
        15,
        0,
        "misc_flags",
        {"misc_flags": 0x2},
    )
    dv(
        "lu_domain_grant_opts_version_0",
        "§4.6 grant_opts version 1 or 2",
        16,
        0,
        "grant_opts",
        {"grant_opts": 0},
    )
    dv(
        "lu_domain_grant_opts_version_3",
        "§4.6 grant_opts version 1 or 2",
        17,
        1,
        "grant_opts",
        {"grant_opts": 3},
    )
    dv(
        "lu_domain_grant_opts_high_bits",
        "§4.6 grant_opts bits 4-31 zero",
        19,
        1,
        "grant_opts",
        {"grant_opts": 0x12},
    )
    dv(
        "lu_domain_altp2m_opts_bit2_4_19",
        "§4.6 altp2m_opts bits 0-1 only (u32)",
        19,
        1,
        "altp2m_opts",
        {"altp2m_opts": 0x5},
    )
    dv(
        "lu_domain_altp2m_opts_bit16_4_20",
        "§4.6 altp2m_opts bits 0-1 only (u32)",
        20,
        0,
        "altp2m_opts",
        {"altp2m_opts": 0x10000},
    )
    dv(
        "lu_domain_altp2m_opts_bit2_4_21",
        "§4.6 altp2m_opts bits 0-1 only (u16)",
        21,
        1,
        "altp2m_opts",
        {"altp2m_opts": 0x4 | 0x1},
    )
    dv(
        "lu_domain_nr_altp2m_with_mode_off",
        "§4.6 4.21 nr_altp2m > 0 exactly when the mode is not off",
        21,
        0,
        "nr_altp2m",
        {"nr_altp2m": 5},
    )
    dv(
        "lu_domain_nr_altp2m_zero_with_mode_on",
        "§4.6 4.21 nr_altp2m > 0 exactly when the mode is not off",
        21,
        1,
        "nr_altp2m",
        {"nr_altp2m": 0},
    )
    dv(
        "lu_domain_rsvd_4_11",
        "§4.6 rsvd (offset 2) must be zero",
        11,
        0,
        "rsvd",
        {"rsvd": 1},
        "rsvd0",  # xenlu names reserved fields by declaration: rsvd0 in every epoch
    )
    dv(
        "lu_domain_rsvd_offset_2_4_15",
        "§4.6 rsvd (offset 2) must be zero",
        15,
        1,
        "rsvd0",
        {"rsvd0": 0x100},
    )
    dv(
        "lu_domain_rsvd_offset_60_4_13",
        "§4.6 rsvd (offset 60) must be zero",
        13,
        1,
        "rsvd1",
        {"rsvd1": 1},
    )
    dv(
        "lu_domain_rsvd_offset_76_4_16",
        "§4.6 offset 76 is reserved in 4.16",
        16,
        1,
        "rsvd2",
        {"rsvd2": 1},
    )
    dv(
        "lu_domain_rsvd_offset_84_4_19",
        "§4.6 rsvd (offset 84) must be zero",
        19,
        0,
        "rsvd2",
        {"rsvd2": 1},
    )
    dv(
        "lu_domain_rsvd_offset_84_4_21",
        "§4.6 rsvd (offset 84) must be zero",
        21,
        1,
        "rsvd2",
        {"rsvd2": 0x80},
    )

    # A domid that is not an ordinary domain id (spec Conventions: 0 ... 0x7FEF).
    ep = (4, 14)
    items = host(14)
    i = find(items, "LU_DOMAIN", 1)
    items = remake(items, i, ep, domid=0x7FF0)
    items = put(items, find(items, "LU_SECTION_END", 1), SecEnd(0x7FF0))
    b = assemble(items)
    v.add(
        "lu_domain_domid_reserved",
        "§Conventions ordinary domain ids are 0 ... 0x7FEF",
        b.data,
        "RecordError",
        b.body(i),
        "domid",
        ep,
    )

    # Layout size for the epoch.
    for minor, layout_ep in (
        (11, (4, 13)),
        (15, (4, 13)),
        (16, (4, 15)),
        (17, (4, 19)),
        (19, (4, 17)),
        (13, (4, 11)),
    ):
        ep = epoch_of(minor)
        items = host(minor)
        i = find(items, "LU_DOMAIN", 1)
        f = dom_fields(layout_ep, {**HVM_FILL, **fields_of(items, i)})
        if layout_ep < (4, 13):  # u32 grant limits
            f["max_grant_frames"] &= 0xFFFF_FFFF
            f["max_maptrack_frames"] &= 0xFFFF_FFFF
        f["layout_epoch"] = layout_ep
        b = assemble(put(items, i, rec("LU_DOMAIN", f, ep)))
        size = size_of(dom_layout(layout_ep))
        v.add(
            f"lu_domain_size_{size}_in_4_{minor}",
            "§4.6 LU_DOMAIN size by epoch (4.11/4.12"
            " 56, 4.13/4.14 64, 4.15 72, 4.16/4.17 80, 4.19+ 88)",
            b.data,
            "RecordError",
            b.hdr(i) + 4,
            "length",
            ep,
        )


# Values for LU_DOMAIN fields a smaller layout lacks (used by the size vectors).
HVM_FILL: Fields = {
    "iommu_opts": 0,
    "vmtrace_size": 0,
    "misc_flags": 0,
    "grant_opts": 2,
    "cpupool_id": 0,
    "altp2m_opts": 0,
    "nr_altp2m": 0,
}


def _memory_records(v: _Inv) -> None:
    ep = (4, 19)
    items = host(19)
    pi = find(items, "LU_P2M", 1)
    p2m: list[Fields] = fields_of(items, pi)["entries"]

    def kof(ptype: int) -> int:
        return next(k for k, e in enumerate(p2m) if e["p2m_type"] == ptype)

    def pe(
        name: str,
        rule: str,
        k: int,
        fld: str,
        changes: Fields,
        e: Ep = ep,
        its: Sequence[Item] | None = None,
    ) -> None:
        src = items if its is None else its
        idx = find(src, "LU_P2M", 1)
        b = assemble(remake_entry(src, idx, e, "entries", k, **changes))
        v.add(
            name,
            rule,
            b.data,
            "RecordError",
            _entry_off(b, idx, L_P2M, k, fld),
            f"entries[{k}].{fld}",
            e,
        )

    pe("p2m_type_16", "§4.7 p2m_type 0-15", 2, "p2m_type", {"p2m_type": 16})
    pe("p2m_access_10_in_4_19", "§4.7 access 10 r_pw valid from 4.20", 3, "access", {"access": 10})
    pe(
        "p2m_access_10_in_4_11",
        "§4.7 access 10 r_pw valid from 4.20",
        0,
        "access",
        {"access": 10},
        (4, 11),
        host(11),
    )
    pe(
        "p2m_access_11_in_4_20",
        "§4.7 access 0-10 in 4.20",
        1,
        "access",
        {"access": 11},
        (4, 20),
        host(20),
    )
    pe("p2m_nr_pages_0", "§4.7 nr_pages > 0", 4, "nr_pages", {"nr_pages": 0})
    pe("p2m_entry_rsvd", "§4.7 rsvd must be zero", 5, "rsvd", {"rsvd": 1})
    for ptype, tname in (
        (1, "invalid"),
        (4, "mmio_dm"),
        (6, "populate_on_demand"),
        (10, "ram_paged"),
    ):
        pe(
            f"p2m_{tname}_with_frame",
            f"§4.7 p2m_type {ptype} {tname} has mfn INVALID_MFN",
            kof(ptype),
            "mfn",
            {"mfn": 0x20000},
        )
    for ptype, tname in (
        (0, "ram_rw"),
        (2, "ram_logdirty"),
        (5, "mmio_direct"),
        (7, "grant_map_rw"),
        (12, "ram_shared"),
        (14, "map_foreign"),
        (15, "ioreq_server"),
    ):
        pe(
            f"p2m_{tname}_without_frame",
            f"§4.7 p2m_type {ptype} {tname} needs a frame, not INVALID_MFN",
            kof(ptype),
            "mfn",
            {"mfn": INVALID_MFN},
        )
    b = assemble(remake(items, pi, ep, count=len(p2m) - 1))
    v.add(
        "p2m_count_length_mismatch",
        "§4 count-prefixed: length == 8 + count x 24",
        b.data,
        "RecordError",
        b.hdr(pi) + 4,
        "length",
        ep,
    )

    # LU_PAGE_OWNERSHIP (spec §4.8).
    ep = (4, 13)
    items = host(13)
    oi = find(items, "LU_PAGE_OWNERSHIP", 0)

    def oe(name: str, rule: str, k: int, fld: str, value: int) -> None:
        b = assemble(remake_entry(items, oi, ep, "entries", k, **{fld: value}))
        v.add(
            name,
            rule,
            b.data,
            "RecordError",
            _entry_off(b, oi, L_OWNERSHIP, k, fld),
            f"entries[{k}].{fld}",
            ep,
        )

    oe("ownership_extra_before_4_14", "§4.8 flag EXTRA valid from 4.14", 2, "flags", 0x4 | 0x2)
    oe("ownership_flag_bit3", "§4.8 flags bits 0-2", 0, "flags", 0x8)
    oe("ownership_nr_pages_0", "§4.8 nr_pages > 0", 1, "nr_pages", 0)
    b = assemble(remake(items, oi, ep, count=2))
    v.add(
        "ownership_count_length_mismatch",
        "§4 count-prefixed: length == 8 + count x 16",
        b.data,
        "RecordError",
        b.hdr(oi) + 4,
        "length",
        ep,
    )
    ep14 = (4, 14)
    items14 = host(14)
    oi14 = find(items14, "LU_PAGE_OWNERSHIP", 1)
    b = assemble(remake_entry(items14, oi14, ep14, "entries", 4, flags=0x8 | 0x4))
    v.add(
        "ownership_flag_bit3_4_14",
        "§4.8 flags bits 0-2 (EXTRA valid, bit 3 not)",
        b.data,
        "RecordError",
        _entry_off(b, oi14, L_OWNERSHIP, 4, "flags"),
        "entries[4].flags",
        ep14,
    )

    # LU_PAGE_TYPES (spec §4.9).
    ti = find(items, "LU_PAGE_TYPES", 0)

    def te(name: str, rule: str, k: int, fld: str, value: int, report: str = "") -> None:
        b = assemble(remake_entry(items, ti, ep, "entries", k, **{fld: value}))
        v.add(
            name,
            rule,
            b.data,
            "RecordError",
            _entry_off(b, ti, L_PAGE_TYPES, k, report or fld),
            f"entries[{k}].{report or fld}",
            ep,
        )

    te("page_types_type_8", "§4.9 type 0-7", 5, "type", 8)
    te("page_types_flags_bit4", "§4.9 flags bits 0-3", 2, "flags", 0x12)
    te(
        "page_types_pinned_not_page_table",
        "§4.9 a pinned page must be an L1-L4 page table (reported on its type)",
        5,
        "flags",
        0x1,
        "type",
    )
    te(
        "page_types_pinned_type_none",
        "§4.9 a pinned page must be an L1-L4 page table (reported on its type)",
        8,
        "flags",
        0x1,
        "type",
    )
    te("page_types_rsvd", "§4.9 rsvd must be zero", 0, "rsvd", 1)
    b = assemble(remake(items, ti, ep, count=10))
    v.add(
        "page_types_count_length_mismatch",
        "§4 count-prefixed: length == 8 + count x 16",
        b.data,
        "RecordError",
        b.hdr(ti) + 4,
        "length",
        ep,
    )


def _grant_records(v: _Inv) -> None:
    ep = (4, 17)
    items = host(17)
    g0 = find(items, "LU_GRANT_TABLE", 0)
    g1 = find(items, "LU_GRANT_TABLE", 1)

    def gt(name: str, rule: str, i: int, fld: str, changes: Fields) -> None:
        b = assemble(remake(items, i, ep, **changes))
        v.add(name, rule, b.data, "RecordError", b.body(i) + off_of(L_GT_HDR, fld), fld, ep)

    gt("grant_table_version_3", "§4.10 version 1 or 2", g0, "version", {"version": 3})
    gt("grant_table_version_0", "§4.10 version 1 or 2", g1, "version", {"version": 0})
    gt(
        "grant_table_v1_with_status_frames",
        "§4.10 nr_status_frames is 0 for v1",
        g0,
        "nr_status_frames",
        {"nr_status_frames": 1, "status_frames": [0x10403]},
    )
    gt(
        "grant_table_v2_too_many_status_frames",
        "§4.10 nr_status_frames is ceil(nr_grant_frames / 8) for v2",
        g1,
        "nr_status_frames",
        {"nr_status_frames": 2, "status_frames": [0x20202, 0x20203]},
    )
    gt(
        "grant_table_v2_no_status_frames",
        "§4.10 nr_status_frames is ceil(nr_grant_frames / 8) for v2",
        g1,
        "nr_status_frames",
        {"nr_status_frames": 0, "status_frames": []},
    )
    gt(
        "grant_table_rsvd0",
        "§4.10 rsvd (offset 1) must be zero",
        g0,
        "rsvd0",
        {"rsvd0": b"\x01\x00\x00"},
    )
    gt("grant_table_rsvd1", "§4.10 rsvd (offset 12) must be zero", g1, "rsvd1", {"rsvd1": 1})
    b = assemble(remake(items, g0, ep, grant_frames=[0x10400, 0x10401, 0x10402]))
    v.add(
        "grant_table_length_mismatch",
        "§4.10 length == 16 + 8 x (nr_grant_frames + nr_status_frames)",
        b.data,
        "RecordError",
        b.hdr(g0) + 4,
        "length",
        ep,
    )

    mi = find(items, "LU_GRANT_MAPS", 1)

    def gm(name: str, rule: str, k: int, value: int) -> None:
        b = assemble(remake_entry(items, mi, ep, "entries", k, flags=value))
        v.add(
            name,
            rule,
            b.data,
            "RecordError",
            _entry_off(b, mi, L_GRANT_MAPS, k, "flags"),
            f"entries[{k}].flags",
            ep,
        )

    gm(
        "grant_maps_neither_device_nor_host_map",
        "§4.11 at least one of device_map, host_map",
        1,
        0x4,
    )
    gm("grant_maps_flags_zero", "§4.11 at least one of device_map, host_map", 0, 0)
    gm("grant_maps_flag_bit5", "§4.11 GNTMAP bits 0-4 only", 2, 0x21)
    b = assemble(remake(items, mi, ep, count=4))
    v.add(
        "grant_maps_count_length_mismatch",
        "§4 count-prefixed: length == 8 + count x 24",
        b.data,
        "RecordError",
        b.hdr(mi) + 4,
        "length",
        ep,
    )


def _evtchn_records(v: _Inv) -> None:
    ep = (4, 15)
    items = host(15)
    a0 = find(items, "LU_EVTCHN_ABI", 0)
    a1 = find(items, "LU_EVTCHN_ABI", 1)

    def ab(name: str, rule: str, i: int, changes: Fields, off: int, fld: str) -> None:
        b = assemble(remake(items, i, ep, **changes))
        v.add(name, rule, b.data, "RecordError", b.body(i) + off, fld, ep)

    ab("evtchn_abi_3", "§4.12 abi 1 two-level or 2 FIFO", a1, {"abi": 3}, 0, "abi")
    ab("evtchn_abi_0", "§4.12 abi 1 two-level or 2 FIFO", a0, {"abi": 0}, 0, "abi")
    cb = {"vcpu": 0, "offset": 0x40, "control_gfn": 0x90}
    ab(
        "evtchn_abi_two_level_with_control_blocks",
        "§4.12 nr_control_blocks is 0 for two-level",
        a0,
        {"control_blocks": [cb]},
        4,
        "nr_control_blocks",
    )
    ab(
        "evtchn_abi_two_level_with_event_array",
        "§4.12 nr_event_array_pages is 0 for two-level",
        a0,
        {"event_array_gfns": [0x92]},
        8,
        "nr_event_array_pages",
    )
    cbs = fields_of(items, a1)["control_blocks"]
    ab(
        "evtchn_abi_control_block_offset_misaligned",
        "§4.12 control block offset 8-aligned",
        a1,
        {"control_blocks": [cbs[0], {**cbs[1], "offset": 0x44}]},
        8 + 16 + 4,
        "control_blocks[1].offset",
    )
    ab(
        "evtchn_abi_control_block_offset_above_4024",
        "§4.12 control block offset <= 4024",
        a1,
        {"control_blocks": [{**cbs[0], "offset": 4032}, cbs[1]]},
        8 + 4,
        "control_blocks[0].offset",
    )
    ab(
        "evtchn_abi_129_event_array_pages",
        "§4.12 FIFO nr_event_array_pages 0-128",
        a1,
        {"event_array_gfns": list(range(0x100, 0x181))},
        8 + 32,
        "nr_event_array_pages",
    )
    ab("evtchn_abi_rsvd", "§4.12 rsvd must be zero", a1, {"rsvd": 1}, 8 + 32 + 4, "rsvd")
    ab(
        "evtchn_abi_length_mismatch",
        "§4.12 length == 16 + 16 x nr_control_blocks + 8 x nr_event_array_pages",
        a1,
        {"nr_event_array_pages": 3},
        -4,
        "length",
    )

    def ch(
        name: str,
        rule: str,
        minor: int,
        domid: int,
        k: int,
        fld: str,
        changes: Fields,
        err: str | None = None,
    ) -> None:
        e = epoch_of(minor)
        its = host(minor)
        idx = find(its, "LU_EVTCHNS", domid)
        b = assemble(remake_entry(its, idx, e, "entries", k, **changes))
        lay = entry_layout("LU_EVTCHNS", e)
        v.add(
            name,
            rule,
            b.data,
            "RecordError",
            _entry_off(b, idx, lay, k, fld),
            f"entries[{k}].{err or fld}",
            e,
        )

    ch(
        "evtchns_state_0",
        "§4.13 state 1-6 (free ports are not listed)",
        15,
        0,
        3,
        "state",
        {"state": 0, "detail": 0},
    )
    ch("evtchns_state_7", "§4.13 state 1-6", 11, 1, 2, "state", {"state": 7})
    ch("evtchns_port_0", "§4.13 port 0 is never listed", 16, 0, 0, "port", {"port": 0})
    ch("evtchns_fifo_priority_16", "§4.13 priority 0-15", 15, 1, 2, "priority", {"priority": 16})
    ch(
        "evtchns_xen_consumer",
        "§4.13 xen_consumer must be 0",
        13,
        1,
        4,
        "xen_consumer",
        {"xen_consumer": 1},
    )
    ch("evtchns_flag_bit1", "§4.13 flags bit 0 only", 19, 1, 7, "flags", {"flags": 0x3})
    ch("evtchns_virq_24", "§4.13 virq detail 0-23", 12, 0, 6, "detail", {"detail": 24})
    ch(
        "evtchns_remote_domid_for_virq",
        "§4.13 remote_domid 0 unless unbound/interdomain",
        14,
        1,
        0,
        "remote_domid",
        {"remote_domid": 1},
    )
    ch("evtchns_detail_for_ipi", "§4.13 detail 0 for ipi", 17, 0, 5, "detail", {"detail": 1})
    ch(
        "evtchns_detail_for_unbound",
        "§4.13 detail 0 for unbound",
        20,
        1,
        3,
        "detail",
        {"detail": 7},
    )
    ch(
        "evtchns_fifo_lastq_bit24",
        "§4.13 fifo_lastq bits 24-31 zero",
        15,
        1,
        1,
        "fifo_lastq",
        {"fifo_lastq": (1 << 24) | (7 << 16) | 1},
    )
    ch(
        "evtchns_fifo_lastq_priority_16",
        "§4.13 last priority <= 15",
        16,
        1,
        0,
        "fifo_lastq",
        {"fifo_lastq": 16 << 16},
    )
    ch(
        "evtchns_last_priority_16",
        "§4.13 last priority <= 15 (<= 4.14 layout)",
        14,
        1,
        0,
        "last_priority",
        {"last_priority": 16},
    )
    ch("evtchns_rsvd_4_15", "§4.13 rsvd must be zero", 15, 1, 2, "rsvd", {"rsvd": 1}, "rsvd1")
    ch("evtchns_rsvd0_4_11", "§4.13 rsvd (offset 17) must be zero", 11, 1, 2, "rsvd0", {"rsvd0": 1})
    ch("evtchns_rsvd1_4_13", "§4.13 rsvd (offset 20) must be zero", 13, 0, 1, "rsvd1", {"rsvd1": 1})

    # Ports ascend within a record ("ascend": strictly, stays structural per §7).
    for minor, domid, perm, k, label in (
        (15, 0, [0, 2, 1, 3, 4, 5, 6, 7], 2, "not_ascending"),
        (12, 1, [0, 1, 2, 3, 4, 5, 6, 7], 3, "duplicate_in_record"),
    ):
        e = epoch_of(minor)
        its = host(minor)
        idx = find(its, "LU_EVTCHNS", domid)
        ents = [dict(fields_of(its, idx)["entries"][j]) for j in perm]
        if label == "duplicate_in_record":
            ents[3] = {**ents[3], "port": ents[2]["port"]}
        b = assemble(remake(its, idx, e, entries=ents))
        lay = entry_layout("LU_EVTCHNS", e)
        v.add(
            f"evtchns_ports_{label}",
            "§4.13 ports ascend within a record (§7 structural)",
            b.data,
            "RecordError",
            _entry_off(b, idx, lay, k, "port"),
            f"entries[{k}].port",
            e,
        )

    i = find(items, "LU_EVTCHNS", 1)
    b = assemble(remake(items, i, ep, count=9))
    v.add(
        "evtchns_count_length_mismatch",
        "§4 count-prefixed: length == 8 + count x 24",
        b.data,
        "RecordError",
        b.hdr(i) + 4,
        "length",
        ep,
    )


def _ioreq_records(v: _Inv) -> None:
    ep = (4, 16)
    items = host(16)
    i = find(items, "LU_IOREQ_SERVERS", 1)
    servers: list[Fields] = fields_of(items, i)["servers"]
    s1_off = 8 + 24 + 24 * len(servers[0]["ranges"])

    def sv(name: str, rule: str, k: int, fld: str, value: int, base: int) -> None:
        ss = [dict(s) for s in servers]
        ss[k][fld] = value
        b = assemble(remake(items, i, ep, servers=ss))
        v.add(
            name,
            rule,
            b.data,
            "RecordError",
            b.body(i) + base + off_of(L_IOREQ_SERVER, fld),
            f"servers[{k}].{fld}",
            ep,
        )

    sv("ioreq_enabled_2", "§4.14 enabled 0/1", 0, "enabled", 2, 8)
    sv("ioreq_bufioreq_3", "§4.14 bufioreq 0 off, 1 on, 2 atomic", 1, "bufioreq", 3, s1_off)
    sv(
        "ioreq_bufioreq_gfn_invalid_when_on",
        "§4.14 bufioreq_gfn is INVALID_MFN exactly when bufioreq is 0",
        0,
        "bufioreq_gfn",
        INVALID_MFN,
        8,
    )
    sv(
        "ioreq_bufioreq_gfn_set_when_off",
        "§4.14 bufioreq_gfn is INVALID_MFN exactly when bufioreq is 0",
        1,
        "bufioreq_gfn",
        0xFEFF4,
        s1_off,
    )

    def rg(name: str, rule: str, j: int, fld: str, changes: Fields) -> None:
        ss = [dict(s) for s in servers]
        rs = [dict(r) for r in ss[0]["ranges"]]
        rs[j] = {**rs[j], **changes}
        ss[0]["ranges"] = rs
        b = assemble(remake(items, i, ep, servers=ss))
        off = b.body(i) + 8 + 24 + 24 * j + off_of(L_IOREQ_RANGE, fld)
        v.add(name, rule, b.data, "RecordError", off, f"servers[0].ranges[{j}].{fld}", ep)

    rg("ioreq_range_type_3", "§4.14 range type 0 portio, 1 mmio, 2 pci", 2, "type", {"type": 3})
    rg(
        "ioreq_range_start_after_end",
        "§4.14 range start <= end (reported on start)",
        1,
        "start",
        {"end": 0xFEBE_FFFF},
    )
    rg("ioreq_range_rsvd", "§4.14 range rsvd must be zero", 0, "rsvd", {"rsvd": 1})
    b = assemble(remake(items, i, ep, rsvd=1))
    v.add(
        "ioreq_header_rsvd",
        "§4.14 rsvd must be zero",
        b.data,
        "RecordError",
        b.body(i) + 4,
        "rsvd",
        ep,
    )
    b = assemble(remake(items, i, ep, count=3))
    v.add(
        "ioreq_count_length_mismatch",
        "§4.14 the body holds exactly count servers",
        b.data,
        "RecordError",
        b.hdr(i) + 4,
        "length",
        ep,
    )
    ss = [dict(s) for s in servers]
    ss[0]["nr_ranges"] = 4
    b = assemble(remake(items, i, ep, servers=ss))
    v.add(
        "ioreq_nr_ranges_length_mismatch",
        "§4.14 the body holds exactly nr_ranges ranges per server",
        b.data,
        "RecordError",
        b.hdr(i) + 4,
        "length",
        ep,
    )


def _section_end(v: _Inv) -> None:
    ep = (4, 21)
    items = host(21)
    se = find(items, "LU_SECTION_END", DOMID_XEN)
    s0 = find(items, "LU_SECTION_END", 0)
    s1 = find(items, "LU_SECTION_END", 1)

    def ck(
        name: str, rule: str, i: int, new: SecEnd, fld: str, off: int, err: str = "ChecksumError"
    ) -> None:
        b = assemble(put(items, i, new))
        v.add(name, rule, b.data, err, b.body(i) + off, fld, ep)

    ck(
        "section_end_crc_global",
        "§4.15 crc32c of the section's bytes",
        se,
        SecEnd(DOMID_XEN, crc_xor=0x1),
        "crc32c",
        4,
    )
    ck(
        "section_end_crc_domain",
        "§4.15 crc32c of the section's bytes",
        s1,
        SecEnd(1, crc_xor=0x8000_0000),
        "crc32c",
        4,
    )
    ck(
        "section_end_section_bytes_global",
        "§4.15 section_bytes",
        se,
        SecEnd(DOMID_XEN, nbytes_delta=8),
        "section_bytes",
        8,
    )
    ck(
        "section_end_section_bytes_domain",
        "§4.15 section_bytes",
        s0,
        SecEnd(0, nbytes_delta=-8),
        "section_bytes",
        8,
    )
    ck(
        "section_end_domid_global",
        "§4.15 domid of the section (DOMID_XEN for the global section)",
        se,
        SecEnd(0),
        "domid",
        0,
    )
    ck("section_end_domid_domain", "§4.15 domid of the section", s1, SecEnd(2), "domid", 0)
    ck(
        "section_end_domid_xen_for_domain",
        "§4.15 domid of the section",
        s0,
        SecEnd(DOMID_XEN),
        "domid",
        0,
    )
    ck(
        "section_end_rsvd",
        "§4.15 rsvd must be zero",
        s1,
        SecEnd(1, rsvd=1),
        "rsvd",
        2,
        "RecordError",
    )
    b = assemble(put(items, s0, SecEnd(0, extra=bytes(8))))
    v.add(
        "section_end_length",
        "§4.15 LU_SECTION_END is 16 bytes",
        b.data,
        "RecordError",
        b.hdr(s0) + 4,
        "length",
        ep,
    )

    # Corruption inside a section: the records stay valid, the checksum does not.
    b = assemble(items)
    pi = find(items, "HVM_PARAMS", 1)
    pos = b.body(pi) + 8 + 8  # value of the first param
    data = bytearray(b.data)
    data[pos] ^= 0x04
    v.add(
        "section_end_crc_corrupted_body",
        "§4.15 crc32c covers every byte of the section",
        bytes(data),
        "ChecksumError",
        b.body(s1) + 4,
        "crc32c",
        ep,
    )
    pos = b.body(0) + 4  # inside the global section: LU_VERSION minor 21 -> 20 is valid
    data = bytearray(b.data)
    data[pos] ^= 0x01
    v.add(
        "section_end_crc_covers_lu_version",
        "§4.15 the global section starts at offset 0 (LU_VERSION is covered)",
        bytes(data),
        "ChecksumError",
        b.body(se) + 4,
        "crc32c",
        ep,
    )
    i = find(items, "LU_DOMAIN", 1)
    opt_items = ins(items, i + 1, unknown(OPT_TYPE, _blob(5, 8)))
    b = assemble(opt_items)
    se1 = find(opt_items, "LU_SECTION_END", 1)
    oi = i + 1
    data = bytearray(b.data)
    data[b.body(oi)] ^= 0xFF
    v.add(
        "section_end_crc_covers_optional_record",
        "§1 optional records are covered by the section's checksum",
        bytes(data),
        "ChecksumError",
        b.body(se1) + 4,
        "crc32c",
        ep,
    )


def _libxc_records(v: _Inv) -> None:
    ep = (4, 17)
    items = host(18)  # Xen 4.18, epoch 4.17
    pv = find(items, "X86_PV_INFO", 0)

    def fx(name: str, rule: str, i: int, lay: Layout, fld: str, changes: Fields) -> None:
        b = assemble(remake(items, i, ep, **changes))
        v.add(name, rule, b.data, "RecordError", b.body(i) + off_of(lay, fld), fld, ep)

    def ln(name: str, rule: str, i: int, body: bytes) -> None:
        it = items[i]
        assert isinstance(it, Rec)
        b = assemble(put(items, i, Rec(it.name, it.type, body, it.fields)))
        v.add(name, rule, b.data, "RecordError", b.hdr(i) + 4, "length", ep)

    fx(
        "pv_info_guest_width_5",
        "§4.16/ref §1.6 X86_PV_INFO guest_width 4 or 8",
        pv,
        L_PV_INFO,
        "guest_width",
        {"guest_width": 5},
    )
    fx(
        "pv_info_pt_levels_2",
        "§4.16/ref §1.6 X86_PV_INFO pt_levels 3 or 4",
        pv,
        L_PV_INFO,
        "pt_levels",
        {"pt_levels": 2},
    )
    fx(
        "pv_info_rsvd",
        "§4.16/ref §1.6 X86_PV_INFO reserved bytes zero",
        pv,
        L_PV_INFO,
        "rsvd",
        {"rsvd": b"\x01" + bytes(5)},
    )
    ln(
        "pv_info_length",
        "§4.16/ref §1.6 X86_PV_INFO is 8 bytes",
        pv,
        struct.pack("<BB6s", 8, 4, bytes(6)) + bytes(8),
    )
    ts = find(items, "X86_TSC_INFO", 0)
    fx(
        "tsc_info_rsvd",
        "§4.16/ref §1.6 X86_TSC_INFO reserved zero",
        ts,
        L_TSC_INFO,
        "rsvd",
        {"rsvd": 1},
    )
    ln("tsc_info_length", "§4.16/ref §1.6 X86_TSC_INFO is 24 bytes", ts, bytes(16))
    vc = find(items, "X86_PV_VCPU_BASIC", 0)
    fx(
        "pv_vcpu_rsvd",
        "§4.16/ref §1.6 vCPU record header reserved zero",
        vc,
        L_VCPU_HDR,
        "rsvd",
        {"rsvd": 1},
    )
    ln("pv_vcpu_shorter_than_header", "§4.16/ref §1.6 vCPU record length >= 8", vc, bytes(4))
    hp = find(items, "HVM_PARAMS", 1)
    b = assemble(remake(items, hp, ep, rsvd=1))
    v.add(
        "hvm_params_rsvd",
        "§4.16/ref §1.6 HVM_PARAMS reserved zero",
        b.data,
        "RecordError",
        b.body(hp) + 4,
        "rsvd",
        ep,
    )
    b = assemble(remake(items, hp, ep, count=6))
    v.add(
        "hvm_params_count_length_mismatch",
        "§4.16/ref §1.6 HVM_PARAMS length == 8 + 16 x count",
        b.data,
        "RecordError",
        b.hdr(hp) + 4,
        "length",
        ep,
    )

    # HVM_CONTEXT (spec §4.16, reference §4.2): entries 0 HEADER, 1-2 CPU, 3 RTC,
    # 4-5 VIRIDIAN_VCPU, 6 END.
    def hc(
        name: str, rule: str, minor: int, k: int, fld: str, change: Any, at: int | None = None
    ) -> None:
        e = epoch_of(minor)
        its = host(minor)
        idx = find(its, "HVM_CONTEXT", 1)
        ents = [dict(x) for x in fields_of(its, idx)["entries"]]
        ents = change(ents)
        b = assemble(remake(its, idx, e, entries=ents))
        kk = k if at is None else at
        off = b.body(idx) + _hvm_entry_off(ents, kk) + off_of(L_HVM_DESC, fld)
        v.add(name, rule, b.data, "RecordError", off, f"entries[{kk}].{fld}", e)

    def setdata(k: int, data: bytes) -> Any:
        def f(ents: list[Fields]) -> list[Fields]:
            ents[k] = {**ents[k], "data": data}
            return ents

        return f

    def setf(k: int, **ch: Any) -> Any:
        def f(ents: list[Fields]) -> list[Fields]:
            ents[k] = {**ents[k], **ch}
            return ents

        return f

    hc(
        "hvm_context_rtc_24_in_4_13",
        "§4.16 RTC (11) is 16 bytes before 4.14",
        13,
        3,
        "length",
        setdata(3, _blob(11, 24)),
    )
    hc(
        "hvm_context_rtc_16_in_4_14",
        "§4.16 RTC (11) is 24 bytes from 4.14",
        14,
        3,
        "length",
        setdata(3, _blob(11, 16)),
    )
    hc(
        "hvm_context_rtc_16_in_4_21",
        "§4.16 RTC (11) is 24 bytes from 4.14",
        21,
        3,
        "length",
        setdata(3, _blob(11, 16)),
    )
    hc(
        "hvm_context_viridian_vcpu_216_in_4_12",
        "§4.16 VIRIDIAN_VCPU (17) is 16 bytes before 4.13",
        12,
        5,
        "length",
        setdata(5, _blob(171, 216)),
    )
    hc(
        "hvm_context_viridian_vcpu_16_in_4_13",
        "§4.16 VIRIDIAN_VCPU (17) is 216 bytes from 4.13",
        13,
        4,
        "length",
        setdata(4, _blob(170, 16)),
    )
    hc(
        "hvm_context_typecode_21",
        "§4.16 typecodes 1-20 only",
        15,
        3,
        "typecode",
        setf(3, typecode=21),
    )
    hc(
        "hvm_context_instance_nonzero_rtc",
        "§4.16 typecodes that are not per-vCPU have instance 0",
        19,
        3,
        "instance",
        setf(3, instance=1),
    )
    hc(
        "hvm_context_instance_nonzero_header",
        "§4.16 typecodes that are not per-vCPU have instance 0",
        11,
        0,
        "instance",
        setf(0, instance=1),
    )
    hc(
        "hvm_context_no_header",
        "§4.16 HVM_CONTEXT starts with HEADER",
        17,
        0,
        "typecode",
        lambda ents: ents[1:],
    )
    hc(
        "hvm_context_entry_runs_past_body",
        "ref §4.2 an entry's data lies within the body",
        20,
        2,
        "length",
        setf(2, length=22 + 2000),
    )
    hc(
        "hvm_context_end_with_data",
        "ref §4.2 END has length 0",
        14,
        6,
        "length",
        setf(6, data=b"\x00\x00\x00\x00"),
    )

    # X86_CPUID_POLICY / X86_MSR_POLICY (reference §1.6): non-zero multiples of 24 / 16.
    leaf = struct.pack("<6I", 0x7, 0, 0, 0x029C_6FBF, 0, 0)
    msr = struct.pack("<IIQ", 0xCE, 0, 0x8000_0000)
    for name, rtype, body, rule in (
        ("cpuid_policy_length_not_24_multiple", 0x11, leaf + bytes(4), "non-zero multiple of 24"),
        ("cpuid_policy_empty", 0x11, b"", "non-zero multiple of 24"),
        ("msr_policy_length_not_16_multiple", 0x12, msr + bytes(8), "non-zero multiple of 16"),
        ("msr_policy_empty", 0x12, b"", "non-zero multiple of 16"),
    ):
        at = find(items, "X86_TSC_INFO", 1)
        b = assemble(ins(items, at, Rec("POLICY", rtype, body, {})))
        v.add(
            name,
            f"§4.16/ref §1.6 policy record length: {rule}",
            b.data,
            "RecordError",
            b.hdr(at) + 4,
            "length",
            ep,
        )
    at = find(items, "X86_TSC_INFO", 0)
    pol = Rec("POLICY", 0x11, leaf, {})
    b = assemble(ins(items, at, pol, pol))
    v.add(
        "grammar_cpuid_policy_twice",
        "§2 X86_CPUID_POLICY: 0-1",
        b.data,
        "GrammarError",
        b.hdr(at + 1),
        "type",
        ep,
    )

    # An END entry in the middle: everything after it is "bytes after the END entry",
    # reported at the first of them with no field (as xenlu/migration/hvmctx.py and the libxc
    # vectors decided).
    e = (4, 16)
    its = host(16)
    idx = find(its, "HVM_CONTEXT", 1)
    ents = [dict(x) for x in fields_of(its, idx)["entries"]]
    ents[3] = {"typecode": 0, "instance": 0, "data": b""}
    b = assemble(remake(its, idx, e, entries=ents))
    v.add(
        "hvm_context_end_entry_in_middle",
        "§4.16 HVM_CONTEXT ends with END: nothing may follow the END entry",
        b.data,
        "RecordError",
        b.body(idx) + _hvm_entry_off(ents, 4),
        None,
        e,
    )

    e = (4, 19)
    its = host(19)
    idx = find(its, "HVM_CONTEXT", 1)
    ents = [dict(x) for x in fields_of(its, idx)["entries"]][:-1]
    b = assemble(remake(its, idx, e, entries=ents))
    it = b.body(idx) + _hvm_entry_off(ents, len(ents))
    v.add(
        "hvm_context_no_end",
        "§4.16 HVM_CONTEXT ends with END (missing at the body end)",
        b.data,
        "RecordError",
        it,
        None,
        e,
    )


# ---------------------------------------------------------------------------
# SEMANTIC_ONLY


def _build_semantic() -> list[LUVector]:
    out: list[LUVector] = []

    def s(name: str, rule: str, items: Sequence[Item], ep: Ep) -> None:
        out.append(LUVector(name, rule, assemble(items).data, None, epoch=_es(ep)))

    ep = (4, 15)
    items = host(15)
    d0 = find(items, "LU_DOMAIN", 0)
    d1 = find(items, "LU_DOMAIN", 1)
    c0 = find(items, "LU_EVTCHNS", 0)
    c1 = find(items, "LU_EVTCHNS", 1)
    a1 = find(items, "LU_EVTCHN_ABI", 1)

    # Event channels.
    s(
        "sem_port_above_max_evtchn_port",
        "§4.12 port < max_evtchn_port + 1 (d0 port 8, max_evtchn_port 7)",
        remake(items, d0, ep, max_evtchn_port=7),
        ep,
    )
    big = remake(items, d0, ep, max_evtchn_port=8191)
    big = remake(big, c0, ep, entries=[*fields_of(big, c0)["entries"], chan(ep, 4096, S_IPI)])
    s("sem_port_above_two_level_limit", "§4.12 two-level ABI limit 4096 (d0 port 4096)", big, ep)
    s(
        "sem_notify_vcpu_ge_max_vcpus",
        "§7 notify_vcpu < max_vcpus (d1 port 3 vCPU 1,"
        " max_vcpus 1 also breaks HVM_CONTEXT instances)",
        remake_entry(items, c1, ep, "entries", 3, notify_vcpu=2),
        ep,
    )
    s(
        "sem_two_level_priority_not_7",
        "§4.13/§7 two-level priority must be 7 (d0 port 4)",
        remake_entry(items, c0, ep, "entries", 3, priority=3),
        ep,
    )
    s(
        "sem_two_level_pending",
        "§4.13/§7 pending flag is FIFO only (d0 port 6)",
        remake_entry(items, c0, ep, "entries", 5, flags=1),
        ep,
    )
    s(
        "sem_two_level_last_fields_nonzero",
        "§4.13/§7 last fields all zero for two-level (d0 port 1)",
        remake_entry(items, c0, ep, "entries", 0, fifo_lastq=(7 << 16) | 1),
        ep,
    )
    s(
        "sem_fifo_last_vcpu_ge_max_vcpus",
        "§4.13/§7 last vcpu < max_vcpus (d1 port 1)",
        remake_entry(items, c1, ep, "entries", 0, fifo_lastq=(7 << 16) | 2),
        ep,
    )
    cbs = fields_of(items, a1)["control_blocks"]
    s(
        "sem_control_block_vcpu_ge_max_vcpus",
        "§4.12/§7 control block vcpu < max_vcpus (d1)",
        remake(items, a1, ep, control_blocks=[cbs[0], {**cbs[1], "vcpu": 2}]),
        ep,
    )
    s(
        "sem_control_block_vcpu_twice",
        "§4.12/§7 one control block per vCPU at most (d1 vCPU 0)",
        remake(items, a1, ep, control_blocks=[cbs[0], {**cbs[1], "vcpu": 0}]),
        ep,
    )
    three = [*cbs, {"vcpu": 2, "offset": 0x40, "control_gfn": 0x94}]
    s(
        "sem_control_blocks_more_than_max_vcpus",
        "§4.12 nr_control_blocks <= max_vcpus (d1: 3 blocks, 2 vCPUs)",
        remake(items, a1, ep, control_blocks=three),
        ep,
    )
    ents = fields_of(items, c1)["entries"]
    split = put(
        items,
        c1,
        rec("LU_EVTCHNS", {"entries": ents[:4]}, ep),
        rec("LU_EVTCHNS", {"entries": [ents[3], *ents[4:]]}, ep),
    )
    s(
        "sem_port_twice_across_records",
        "§4.13/§7 port unique in the domain (d1 port 4 in two LU_EVTCHNS records)",
        split,
        ep,
    )
    s(
        "sem_interdomain_not_reciprocal",
        "§4.13 interdomain channel names one naming it back (d1 port 5 -> d0 port 4, a pirq)",
        remake_entry(items, c1, ep, "entries", 4, detail=4),
        ep,
    )
    s(
        "sem_interdomain_remote_domain_missing",
        "§4.13 interdomain remote exists in this stream (d0 port 3 -> d9)",
        remake_entry(items, c0, ep, "entries", 2, remote_domid=9),
        ep,
    )
    s(
        "sem_virq_bound_twice_per_vcpu",
        "§4.13 per-vCPU VIRQ once per vCPU (d0 VIRQ_TIMER vCPU 0 on ports 1 and 2)",
        remake_entry(items, c0, ep, "entries", 1, notify_vcpu=0),
        ep,
    )
    s(
        "sem_global_virq_bound_twice",
        "§4.13 global VIRQ once per domain (d1 VIRQ_ARCH_0 on ports 6 and 7)",
        remake_entry(items, c1, ep, "entries", 5, state=S_VIRQ, detail=16),
        ep,
    )
    s(
        "sem_pirq_bound_twice",
        "§4.13 a pirq once per domain (d0 pirq 9 on ports 4 and 7)",
        remake_entry(items, c0, ep, "entries", 6, state=S_PIRQ, detail=9),
        ep,
    )
    pv32 = [
        *global_section(ep, 15, nr_domains=3),
        *dom0_section(
            ep, channels=dom0_channels(ep, extra=[chan(ep, 9, S_INTERDOMAIN, remote=7, detail=2)])
        ),
        *hvm_section(ep),
        *pv32_section(ep),
        END_REC,
    ]
    d7 = find(pv32, "LU_DOMAIN", 7)
    c7 = find(pv32, "LU_EVTCHNS", 7)
    bad = remake(pv32, d7, ep, max_evtchn_port=2047)
    bad = remake(bad, c7, ep, entries=[*fields_of(bad, c7)["entries"], chan(ep, 1024, S_IPI)])
    s(
        "sem_port_above_shinfo32_limit",
        "§4.12 two-level limit 1024 with SHINFO32 (d7 port 1024)",
        bad,
        ep,
    )
    s(
        "sem_shinfo32_without_32bit_guest",
        "§4.12 SHINFO32 exactly when guest_width == 4 (d0)",
        remake(items, d0, ep, lu_state=0x5 | 0x10),
        ep,
    )
    s(
        "sem_32bit_guest_without_shinfo32",
        "§4.12 SHINFO32 exactly when guest_width == 4 (d7)",
        remake(pv32, d7, ep, lu_state=0x1),
        ep,
    )

    # Grant tables and maps.
    ep = (4, 16)
    items = host(16)
    d1 = find(items, "LU_DOMAIN", 1)
    g0 = find(items, "LU_GRANT_TABLE", 0)
    m1 = find(items, "LU_GRANT_MAPS", 1)
    s(
        "sem_grant_map_vcpu_ge_max_vcpus",
        "§4.11 vcpu < max_vcpus (d1 handle 2)",
        remake_entry(items, m1, ep, "entries", 2, vcpu=5),
        ep,
    )
    s(
        "sem_grant_map_handle_twice",
        "§4.11 handle unique in the domain (d1 handle 0)",
        remake_entry(items, m1, ep, "entries", 2, handle=0),
        ep,
    )
    s(
        "sem_grant_map_handle_above_maptrack",
        "§4.11 handle < max_maptrack_frames x 256 (d1 max_maptrack_frames 1)",
        remake_entry(
            remake(items, d1, ep, max_maptrack_frames=1), m1, ep, "entries", 2, handle=256
        ),
        ep,
    )
    s(
        "sem_grant_map_granting_domain_missing",
        "§4.11 granting_domid another domain of this stream (d1 -> d4)",
        remake_entry(items, m1, ep, "entries", 2, granting_domid=4),
        ep,
    )
    s(
        "sem_grant_map_granting_self",
        "§4.11 granting_domid another domain (d1 -> d1)",
        remake_entry(items, m1, ep, "entries", 2, granting_domid=1, mfn=0x20010),
        ep,
    )
    s(
        "sem_grant_map_mfn_not_owned_by_granter",
        "§4.11 mfn owned by granting_domid (d1 maps its own 0x20010 from d0)",
        remake_entry(items, m1, ep, "entries", 2, mfn=0x20010),
        ep,
    )
    s(
        "sem_grant_map_ref_outside_table",
        "§7 grant ref inside the granting table (d0 v1 4 frames = 2048 refs; ref 2048)",
        remake_entry(items, m1, ep, "entries", 2, ref=2048),
        ep,
    )
    s(
        "sem_grant_version_above_grant_opts",
        "§4.10 version at most grant_opts from 4.16 (d1 grant_opts 1, table v2)",
        remake(items, d1, ep, grant_opts=1),
        ep,
    )
    s(
        "sem_grant_frames_above_max",
        "§4.10 nr_grant_frames <= effective max_grant_frames (d1 max 1, 2 frames)",
        remake(items, d1, ep, max_grant_frames=1),
        ep,
    )
    own0 = find(items, "LU_PAGE_OWNERSHIP", 0)
    s(
        "sem_grant_frame_not_xen_heap",
        "§4.10 grant frames owned with XEN_HEAP (d0 0x10400 without)",
        remake_entry(items, own0, ep, "entries", 1, flags=0),
        ep,
    )
    s(
        "sem_grant_frame_not_owned",
        "§4.10 grant frames owned by the domain (d0 frame 0x10700)",
        remake(items, g0, ep, grant_frames=[0x10400, 0x10401, 0x10402, 0x10700]),
        ep,
    )
    e13 = (4, 13)
    i13 = host(13)
    s(
        "sem_grant_version_above_host_max",
        "§4.10 before 4.16 version at most gnttab_max_version (host 1, d1 v2)",
        remake(i13, find(i13, "LU_HOST_INFO"), e13, gnttab_max_version=1),
        e13,
    )
    e12 = (4, 12)
    i12 = host(12)
    s(
        "sem_grant_frames_above_max_u32",
        "§4.10 nr_grant_frames <= max_grant_frames (4.12 d1 max 1)",
        remake(i12, find(i12, "LU_DOMAIN", 1), e12, max_grant_frames=1),
        e12,
    )

    # Memory.
    ep = (4, 17)
    items = host(17)
    ri = find(items, "LU_REUSABLE_REGIONS")
    own0 = find(items, "LU_PAGE_OWNERSHIP", 0)
    own1 = find(items, "LU_PAGE_OWNERSHIP", 1)
    t0 = find(items, "LU_PAGE_TYPES", 0)
    p1 = find(items, "LU_P2M", 1)
    o0 = fields_of(items, own0)["entries"]
    s(
        "sem_frame_owned_by_two_domains",
        "§4.8 a frame is owned by at most one domain (d0 and d1 own 0x20000)",
        remake(items, own0, ep, entries=[*o0, {"start_mfn": 0x20000, "nr_pages": 1, "flags": 0}]),
        ep,
    )
    s(
        "sem_frame_owned_twice_in_domain",
        "§4.8 a frame is owned at most once (d0 0x10010 in two extents)",
        remake(items, own0, ep, entries=[*o0, {"start_mfn": 0x10010, "nr_pages": 1, "flags": 0}]),
        ep,
    )
    s(
        "sem_owned_frame_above_max_page",
        "§4.8 owned frames lie below max_page (d0 0x100000)",
        remake(items, own0, ep, entries=[*o0, {"start_mfn": 0x100000, "nr_pages": 1, "flags": 0}]),
        ep,
    )
    s(
        "sem_owned_frame_in_bootmem",
        "§4.8 owned frames never lie in the LU bootmem (d0 0x40000)",
        remake(items, own0, ep, entries=[*o0, {"start_mfn": 0x40000, "nr_pages": 1, "flags": 0}]),
        ep,
    )
    s(
        "sem_owned_frame_in_reusable_region",
        "§4.8 owned frames never lie in an LU_REUSABLE_REGIONS extent (d0 0x1000)",
        remake(items, own0, ep, entries=[*o0, {"start_mfn": 0x1000, "nr_pages": 1, "flags": 0}]),
        ep,
    )
    s(
        "sem_owned_frame_in_xen_pages",
        "§4.8 owned frames never lie in an LU_XEN_PAGES extent (d1 0x3800 LU_DATA)",
        remake(
            items,
            own1,
            ep,
            entries=[
                *fields_of(items, own1)["entries"],
                {"start_mfn": 0x3800, "nr_pages": 1, "flags": 0},
            ],
        ),
        ep,
    )
    rr = fields_of(items, ri)["entries"]
    s(
        "sem_extents_overlap",
        "§4.3 extents do not overlap each other (REUSABLE 0x1000 and XEN_PAGES M2P 0x3000)",
        remake(items, ri, ep, entries=[*rr, {"start_mfn": 0x2F00, "nr_pages": 0x200, "kind": 3}]),
        ep,
    )
    s(
        "sem_extent_overlaps_bootmem",
        "§4.3 extents do not overlap the LU bootmem",
        remake(items, ri, ep, entries=[*rr, {"start_mfn": 0x41000, "nr_pages": 0x10, "kind": 3}]),
        ep,
    )
    s(
        "sem_page_type_mfn_not_owned",
        "§4.9 page-type mfn owned by this domain (d0 0x20000)",
        remake_entry(items, t0, ep, "entries", 5, mfn=0x20000),
        ep,
    )
    s(
        "sem_page_type_mfn_twice",
        "§4.9 an mfn appears once per domain (d0 0x10010)",
        remake_entry(items, t0, ep, "entries", 5, mfn=0x10010),
        ep,
    )
    s(
        "sem_p2m_ram_frame_not_owned",
        "§4.7 ram_rw frames owned by this domain (d1 -> d0 0x10000)",
        remake_entry(items, p1, ep, "entries", 0, mfn=0x10000, nr_pages=0x10),
        ep,
    )
    s(
        "sem_p2m_grant_map_frame_own",
        "§4.7 grant_map frames owned by another domain (d1 own 0x20010)",
        remake_entry(items, p1, ep, "entries", 10, mfn=0x20010),
        ep,
    )
    s(
        "sem_p2m_foreign_frame_unowned",
        "§4.7 map_foreign frames owned by another domain of this stream (0x50000 unowned)",
        remake_entry(items, p1, ep, "entries", 12, mfn=0x50000),
        ep,
    )
    s(
        "sem_p2m_shared_outside_shared_extent",
        "§4.7 ram_shared frames inside an LU_XEN_PAGES SHARED extent (0x3000 is M2P)",
        remake_entry(items, p1, ep, "entries", 9, mfn=0x3000),
        ep,
    )
    s(
        "sem_p2m_gfn_overlap",
        "§4.7 GFN ranges of one domain do not overlap (d1 gfn 0x50)",
        remake_entry(items, p1, ep, "entries", 1, gfn=0x50),
        ep,
    )
    s(
        "sem_p2m_grant_map_without_maptrack",
        "§4.7 each grant_map page has its own"
        " LU_GRANT_MAPS entry (d1 gfn 0xF0000 -> 0x10103, no entry)",
        remake_entry(items, p1, ep, "entries", 10, mfn=0x10103),
        ep,
    )
    s(
        "sem_p2m_grant_map_ro_mismatch",
        "§4.7 readonly set iff the type is grant_map_ro (d1 handle 1 mapped ro, p2m type 7)",
        remake_entry(items, p1, ep, "entries", 11, p2m_type=7),
        ep,
    )

    # IOREQ servers, vCPU ids, HVM_CONTEXT instances.
    ep = (4, 20)
    items = host(20)
    io = find(items, "LU_IOREQ_SERVERS", 1)
    servers = [dict(x) for x in fields_of(items, io)["servers"]]
    s(
        "sem_ioreq_dm_domain_missing",
        "§4.14 dm_domid another domain of this stream (d6)",
        remake(items, io, ep, servers=[{**servers[0], "dm_domid": 6}, servers[1]]),
        ep,
    )
    s(
        "sem_ioreq_dm_domain_self",
        "§4.14 dm_domid another domain (d1 emulates itself)",
        remake(items, io, ep, servers=[{**servers[0], "dm_domid": 1}, servers[1]]),
        ep,
    )
    s(
        "sem_ioreq_server_id_twice",
        "§4.14 server id unique in the domain (id 0 twice)",
        remake(items, io, ep, servers=[servers[0], {**servers[1], "id": 0}]),
        ep,
    )
    rs = [*servers[0]["ranges"], {"type": 0, "start": 0x3FC, "end": 0x400}]
    s(
        "sem_ioreq_ranges_overlap",
        "§4.14 ranges of one type within one server do not overlap"
        " (portio 0x3F8-0x3FF and 0x3FC-0x400)",
        remake(items, io, ep, servers=[{**servers[0], "ranges": rs}, servers[1]]),
        ep,
    )
    hc = find(items, "HVM_CONTEXT", 1)
    s(
        "sem_hvm_context_instance_ge_max_vcpus",
        "§4.16/§7 per-vCPU instance < max_vcpus (d1 CPU instance 2)",
        remake_entry(items, hc, ep, "entries", 2, instance=2),
        ep,
    )
    vc = find(items, "X86_PV_VCPU_BASIC", 0, 1)
    s(
        "sem_pv_vcpu_id_ge_max_vcpus",
        "§2/§7 PV vCPU record id < max_vcpus (d0 vCPU 4)",
        remake(items, vc, ep, vcpu_id=4),
        ep,
    )
    return out


GOLDEN: list[LUVector] = _build_golden()
INVALID: list[LUVector] = _build_invalid()
SEMANTIC_ONLY: list[LUVector] = _build_semantic()
