"""§4.14 IOREQ servers; §2, §4.6, §4.16 vCPU records, HVM_CONTEXT instances, SHINFO32."""

from __future__ import annotations

import numpy as np

from xenlu.core.registry import record_name
from xenlu.host.validation._arrays import I64, Arr, cat, dups_after_first, overlaps
from xenlu.host.validation._host import Host
from xenlu.host.validation._report import Out
from xenlu.lu.stream import VCPU_TYPES, LUDomain
from xenlu.lu.values import IoreqRangeType, LuState
from xenlu.migration.hvmctx import PER_VCPU_TYPECODES

__all__ = ["check_ioreq", "check_vcpus"]

_RANGE_TYPES = {int(t): t.name for t in IoreqRangeType}
_SHINFO32 = int(LuState.shinfo32)
_PER_VCPU = tuple(sorted(PER_VCPU_TYPECODES))


# --- §4.14 IOREQ servers --------------------------------------------------------


def check_ioreq(h: Host, out: Out) -> None:
    """§4.14: emulating domain, server ids, and ranges of one type not overlapping."""
    ids = h.domids
    t = h.ioreq_servers()
    if not len(t.dom):
        return
    dom, ent, sid_a, dm, ranges = t.dom, t.entry, t.id, t.dm_domid, t.ranges
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
    dup, first = dups_after_first(dom, sid_a)
    out.emit(
        "IOREQ_ID_DUPLICATE",
        ids[dom[dup]],
        ent[dup],
        "server id {id} already used by server {first_entry}",
        {"id": sid_a[dup], "first_entry": ent[first]},
    )
    _ioreq_ranges(h, dom, ent, sid_a, ranges, out)


def _ioreq_ranges(h: Host, dom: I64, ent: I64, sid_a: I64, ranges: list[Arr], out: Out) -> None:
    """Ranges of one type within one server: group = (server row, type)."""
    ids = h.domids
    lens = np.array([len(r) for r in ranges], np.int64)
    if not lens.sum():
        return
    srow = np.repeat(np.arange(len(ranges), dtype=np.int64), lens)
    ridx = np.arange(int(lens.sum())) - np.repeat(np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    rtype = cat([r["type"] for r in ranges], np.int64)
    flip = np.uint64(1 << 63)
    rs = (cat([r["start"] for r in ranges], np.uint64) ^ flip).view(np.int64)
    re_ = (cat([r["end"] for r in ranges], np.uint64) ^ flip).view(np.int64)
    res = overlaps(rs, re_, srow * 4 + rtype, same_only=True)
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
            "type": [_RANGE_TYPES.get(int(t), str(t)) for t in rtype[rr]],
            "start": (rs[rr].view(np.uint64) ^ flip),
            "end": (re_[rr].view(np.uint64) ^ flip),
        },
    )


# --- §2, §4.6, §4.16: vCPU records, HVM_CONTEXT instances, SHINFO32 -----------------


class _Hits:
    """Candidates of one finding code, collected domain by domain."""

    def __init__(self, *names: str) -> None:
        self.domid: list[int] = []
        self.entry: list[int] = []
        self.cols: dict[str, list[int]] = {n: [] for n in names}
        self.record: list[str] = []

    def add(self, domid: int, entry: int, **vals: int) -> None:
        self.domid.append(domid)
        self.entry.append(entry)
        for k, v in vals.items():
            self.cols[k].append(v)


def check_vcpus(h: Host, out: Out) -> None:
    """vCPU ids of the PV vCPU records and per-vCPU HVM_CONTEXT instances below
    max_vcpus; SHINFO32 agreeing with X86_PV_INFO's guest width."""
    pv = _Hits("vcpu_id", "max_vcpus")
    hvm = _Hits("typecode", "instance", "max_vcpus")
    for d in h.doms:
        mv = int(d.info.max_vcpus)
        _pv_vcpus(d, mv, pv)
        _hvm_instances(d, mv, hvm)
        if not d.is_hvm:
            _shinfo32(d, out)
    out.emit(
        "PV_VCPU_RANGE",
        pv.domid,
        pv.entry,
        "vcpu_id {vcpu_id} >= max_vcpus {max_vcpus}",
        {"vcpu_id": pv.cols["vcpu_id"], "max_vcpus": pv.cols["max_vcpus"]},
        record=pv.record,
    )
    out.emit(
        "HVM_INSTANCE_RANGE",
        hvm.domid,
        hvm.entry,
        "typecode {typecode} instance {instance} >= max_vcpus {max_vcpus}",
        {k: hvm.cols[k] for k in ("typecode", "instance", "max_vcpus")},
    )


def _pv_vcpus(d: LUDomain, mv: int, hits: _Hits) -> None:
    for t in sorted(VCPU_TYPES):
        for j, v in enumerate(d.of_type(t)):
            vid = int(getattr(v, "vcpu_id", 0))
            if vid >= mv:
                hits.add(d.domid, j, vcpu_id=vid, max_vcpus=mv)
                hits.record.append(record_name(t, "libxc") or hex(t))


def _hvm_instances(d: LUDomain, mv: int, hits: _Hits) -> None:
    entries = getattr(d.hvm_context, "entries", None)
    if not entries:
        return
    tc = np.fromiter((e.typecode for e in entries), np.int64, len(entries))
    ins = np.fromiter((e.instance for e in entries), np.int64, len(entries))
    for j in np.flatnonzero(np.isin(tc, _PER_VCPU) & (ins >= mv)).tolist():
        hits.add(d.domid, j, typecode=int(tc[j]), instance=int(ins[j]), max_vcpus=mv)


def _shinfo32(d: LUDomain, out: Out) -> None:
    """§4.6: lu_state SHINFO32 is set exactly for a 32-bit PV guest (guest_width 4)."""
    gw = getattr(d.pv_info, "guest_width", None)
    if gw is None:
        return
    sh = bool(int(d.info.lu_state) & _SHINFO32)
    if sh != (int(gw) == 4):
        out.emit(
            "SHINFO32_MISMATCH",
            [d.domid],
            None,
            "lu_state SHINFO32 is {shinfo32}, X86_PV_INFO guest_width {guest_width}",
            {"shinfo32": int(sh), "guest_width": int(gw), "lu_state": int(d.info.lu_state)},
        )
