"""The conversion steps between adjacent epochs (LU spec §3, §6).

Each step is registered into :data:`xenlu.host._compat_model.STEPS` when this
module is imported by :mod:`xenlu.host.compat`. Steps that only add LU_DOMAIN
fields with a constant "as before" value are generated from the layouts
(:func:`_added_fields_steps`); the others are the semantic moves of §6,
written by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import xenlu.migration.libxc  # noqa: F401  (registers HVM_CONTEXT and the other libxc records)
from xenlu.core.epochs import Epoch, fmt_epoch
from xenlu.core.errors import CallerError
from xenlu.host._compat_model import (
    Cover,
    StepLog,
    bulk_map,
    field_value,
    map_hvm,
    new_fields,
    new_stream,
    register,
    retype,
    with_info,
)
from xenlu.lu.host_records import host_grant_limits, host_grant_version
from xenlu.lu.io_records import EvtchnEntry411, EvtchnEntry415
from xenlu.lu.records import (
    LU_DOMAIN_LAYOUTS,
    LuDomain411,
    LuDomain413,
    LuDomain415,
    LuDomain416,
    LuDomain419,
    LuDomain421,
    T,
)
from xenlu.lu.stream import LUStream
from xenlu.lu.values import (
    CDF_BITS,
    CDF_IOMMU,
    ECS_VIRQ,
    LU_STATE_IOMMU,
    CdfFlag,
    OwnershipFlag,
    P2mAccess,
    Virq,
)
from xenlu.migration.hvmctx import (
    TC_RTC,
    TC_VIRIDIAN_VCPU,
    HvmEntry,
    HvmRtc411,
    HvmRtc414,
    ViridianVcpu411,
    ViridianVcpu413,
)

__all__ = ["AS_BEFORE", "AsBefore", "layout_covers"]


def _nr_altp2m_for(altp2m_opts: int) -> int:
    # §6 (4.21 row): 10, the fixed count before 4.21, when the mode (bits 0-1) is not off.
    return 10 if altp2m_opts & 3 else 0


I32_MAX = 2**31 - 1
EXTRA = int(OwnershipFlag.extra)  # LU_PAGE_OWNERSHIP flag bit 2 (§4.8), valid from 4.14
VIRQ_ARGO = int(Virq.ARGO)  # §3 / §4.13: reserved in 4.11, ARGO from 4.12
R_PW = int(P2mAccess.r_pw)  # LU_P2M access 10 (§4.7), valid from 4.20


# HVM_CONTEXT entries that grow (reference §4.2): the new fields follow the old
# layout unchanged, so upgrade appends zeros and rollback truncates.
_VIR_OLD, _VIR_NEW = ViridianVcpu411.LAYOUT.size, ViridianVcpu413.LAYOUT.size
_VIR_FIELDS = new_fields(ViridianVcpu411, ViridianVcpu413)
_RTC_OLD, _RTC_NEW = HvmRtc411.LAYOUT.size, HvmRtc414.LAYOUT.size
_RTC_FIELDS = new_fields(HvmRtc411, HvmRtc414)
assert [f.name for f in _RTC_FIELDS] == ["rtc_offset"]


# --- the steps ----------------------------------------------------------------------

_D, _E, _H, _O, _P = "LU_DOMAIN", "LU_EVTCHNS", "HVM_CONTEXT", "LU_PAGE_OWNERSHIP", "LU_P2M"
_ZERO = "new field: 0 (§6)"


def _drop_cdf_bit(cdf_flags: int, domid: int, log: StepLog, flag: CdfFlag) -> int:
    """§6 rollback of a CDF bit the older epoch lacks (the epoch it is valid
    from comes from :class:`~xenlu.lu.records.CdfFlag`): lossless iff clear;
    ``cdf_flags`` without the bit."""
    bit = int(flag).bit_length() - 1
    named = CDF_BITS[bit]
    since = named[1] if isinstance(named, tuple) else None
    if cdf_flags & int(flag):
        log.lossy(
            domid,
            _D,
            f"cdf_flags.{flag.name}",
            cdf_flags,
            f"CDF bit {bit} ({flag.name}) is set and is not valid before Xen {since} (§6)",
            f"CDF bit {bit} {flag.name} cleared",
        )
    return cdf_flags & ~int(flag)


# 4.11 <-> 4.12 — §3: VIRQ 11 becomes ARGO (was reserved). §6 last row: a
# channel binding it is refused both ways; with accepted loss it is dropped.
def _virq11(stream: LUStream, log: StepLog, target: Epoch) -> LUStream:
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

        doms.append(bulk_map(d, T.LU_EVTCHNS, drop))
    return new_stream(stream, target, doms)


def _up_4_12(stream: LUStream, log: StepLog) -> LUStream:
    return _virq11(stream, log, (4, 12))


def _down_4_11(stream: LUStream, log: StepLog) -> LUStream:
    return _virq11(stream, log, (4, 11))


register(
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
_LIMITS = ("max_grant_frames", "max_maptrack_frames")


def _effective_limits(stream: LUStream) -> dict[str, int]:
    frames, maptrack = host_grant_limits(stream.host)
    return {"max_grant_frames": frames, "max_maptrack_frames": maptrack}


def _up_4_13(stream: LUStream, log: StepLog) -> LUStream:
    eff = _effective_limits(stream)
    doms = []
    for d in stream.domains:
        i, domid = d.info, d.domid
        limits = {}
        for name in _LIMITS:
            v = getattr(i, name)
            if v == eff[name]:
                # §6 (amended, issue 14): a 4.12 limit equal to the effective host
                # limit (§4.6) is what 4.13 says with -1, and what its rollback
                # gives back: the pair round-trips, and a host default above
                # 2^31-1 (e.g. maptrack 0xFFFFFFFF) upgrades again.
                log.fill(
                    domid,
                    _D,
                    name,
                    -1,
                    f"equal to the effective host limit {v}: -1, the host default (§4.6, §6)",
                )
                v = -1
            elif v > I32_MAX:
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
        info = retype(
            i,
            LuDomain413,
            cdf_flags=i.cdf_flags | (CDF_IOMMU if iommu else 0),
            lu_state=i.lu_state & ~LU_STATE_IOMMU,
            iommu_opts=0,
            **limits,
        )
        new = with_info(d, info)
        if d.is_hvm:

            def grow(e: HvmEntry, domid: int = domid) -> HvmEntry | None:
                if e.typecode != TC_VIRIDIAN_VCPU:
                    return None
                _expect_size(e, _VIR_OLD, domid, log)
                # §6: new MSR fields 0.
                for fi in _VIR_FIELDS:
                    log.fill(domid, _H, f"VIRIDIAN_VCPU[{e.instance}].{fi.name}", 0, _ZERO)
                return HvmEntry(e.typecode, e.instance, e.data + bytes(_VIR_NEW - _VIR_OLD))

            new = map_hvm(new, grow)
        doms.append(new)
    return new_stream(stream, (4, 13), doms)


def _expect_size(e: HvmEntry, size: int, domid: int, log: StepLog) -> None:
    if len(e.data) != size:
        raise CallerError(
            f"step {log.step}: domain {domid}: HVM_CONTEXT {e.name} entry of vCPU "
            f"{e.instance} is {len(e.data)} bytes, not {size}: not a valid stream"
        )


def _down_4_12(stream: LUStream, log: StepLog) -> LUStream:
    defaults = _effective_limits(stream)
    doms = []
    for d in stream.domains:
        i, domid = d.info_as(LuDomain413), d.domid
        limits = {}
        for name, eff in defaults.items():
            v = getattr(i, name)
            if v == -1:
                # §6: -1 (host default) becomes the effective limit (§4.6); the
                # upgrade turns that value back into -1.
                log.fill(
                    domid,
                    _D,
                    name,
                    eff,
                    "-1 (host default) → effective limit: LU_HOST_INFO default, "
                    "64 / 1024 where 0 (§4.6, §6)",
                )
                v = eff
            elif v < 0 or v == eff:
                # §6 (amended, issue 14): lossless means reversible. Another
                # negative value, or an explicit limit equal to the effective
                # one, would come back from 4.12 as -1: 4.12 cannot say it.
                log.lossy(
                    domid,
                    _D,
                    name,
                    v,
                    f"{name} {v} would come back from Xen 4.12 as -1: 4.12 cannot tell it "
                    f"from the host default (effective limit {eff}, §4.6, §6)",
                    f"{name} {v} rolled back as the effective limit {eff}",
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
        info = retype(
            i,
            LuDomain411,
            cdf_flags=i.cdf_flags & ~CDF_IOMMU,
            lu_state=i.lu_state | (LU_STATE_IOMMU if iommu else 0),
            **limits,
        )
        new = with_info(d, info)
        if d.is_hvm:

            def shrink(e: HvmEntry, domid: int = domid) -> HvmEntry | None:
                if e.typecode != TC_VIRIDIAN_VCPU:
                    return None
                _expect_size(e, _VIR_NEW, domid, log)
                # §6: lossless iff every new field is 0.
                for fi in _VIR_FIELDS:
                    for suffix, v in field_value(fi, e.data):
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

            new = map_hvm(new, shrink)
        doms.append(new)
    return new_stream(stream, (4, 12), doms)


register(
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
    "grant limits u32 → i32 (equal to the effective host limit → -1; else > 2^31-1 refused); "
    "lu_state.iommu → cdf_flags.iommu; "
    "iommu_opts 0; VIRIDIAN_VCPU 16 → 216 bytes, new MSRs 0",
    "grant limits i32 → u32 (-1 → effective limit; other negatives and explicit values equal "
    "to it are lossy); cdf_flags.iommu → lu_state.iommu; "
    "iommu_opts must be 0; VIRIDIAN_VCPU 216 → 16 bytes iff the new MSRs are 0",
    _up_4_13,
    _down_4_12,
)


# 4.13 <-> 4.14 — §6 rows: HVM_CONTEXT RTC 16 → 24 bytes (rtc_offset);
# LU_PAGE_OWNERSHIP flag EXTRA. LU layouts as 4.13.
def _up_4_14(stream: LUStream, log: StepLog) -> LUStream:
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

            d = map_hvm(d, grow)
        # §6: EXTRA upgrade fill is "clear": no 4.13 extent can have it, nothing to do.
        doms.append(d)
    return new_stream(stream, (4, 14), doms)


def _down_4_13(stream: LUStream, log: StepLog) -> LUStream:
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
                    for suffix, v in field_value(fi, e.data):
                        log.lossy(
                            domid,
                            _H,
                            f"RTC.{fi.name}{suffix}",
                            v,
                            "RTC rtc_offset is not 0 and Xen 4.13 has 16-byte RTC entries (§6)",
                            "rtc_offset dropped",
                        )
                return HvmEntry(e.typecode, e.instance, e.data[:_RTC_OLD])

            d = map_hvm(d, shrink)

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

        doms.append(bulk_map(d, T.LU_PAGE_OWNERSHIP, clear_extra))
    return new_stream(stream, (4, 13), doms)


register(
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


def _up_4_15(stream: LUStream, log: StepLog) -> LUStream:
    doms = []
    for d in stream.domains:
        i, domid = d.info, d.domid
        for name in ("vmtrace_size", "misc_flags", "cdf_flags.nested_virt"):
            log.fill(domid, _D, name, 0, _ZERO)
        new = with_info(d, retype(i, LuDomain415, vmtrace_size=0, misc_flags=0))

        def pack(arr: np.ndarray, base: int, domid: int = domid) -> np.ndarray:
            log.fill(
                domid,
                _E,
                "fifo_lastq",
                len(arr),
                "packed: last_vcpu | last_priority << 16 for every entry (§4.13, §6)",
            )
            return _pack_lastq(arr)

        doms.append(bulk_map(new, T.LU_EVTCHNS, pack))
    return new_stream(stream, (4, 15), doms)


def _down_4_14(stream: LUStream, log: StepLog) -> LUStream:
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
        cdf = _drop_cdf_bit(i.cdf_flags, domid, log, CdfFlag.nested_virt)
        info = retype(i, LuDomain413, cdf_flags=cdf)
        new = with_info(d, info)

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

        doms.append(bulk_map(new, T.LU_EVTCHNS, unpack))
    return new_stream(stream, (4, 14), doms)


register(
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
def _up_4_16(stream: LUStream, log: StepLog) -> LUStream:
    gv = host_grant_version(stream.host)
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
        doms.append(with_info(d, retype(d.info, LuDomain416, grant_opts=gv)))
    return new_stream(stream, (4, 16), doms)


def _down_4_15(stream: LUStream, log: StepLog) -> LUStream:
    gv = host_grant_version(stream.host)
    doms = []
    for d in stream.domains:
        i, domid = d.info_as(LuDomain416), d.domid
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
        cdf = _drop_cdf_bit(i.cdf_flags, domid, log, CdfFlag.vpmu)
        doms.append(with_info(d, retype(i, LuDomain415, cdf_flags=cdf)))
    return new_stream(stream, (4, 15), doms)


register(
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
# 4.17 <-> 4.19 — §6 row: altp2m_opts (u32).
# Both only add LU_DOMAIN fields whose "as before" value is a constant: the
# steps are generated from the two layouts (see _added_fields_steps).


@dataclass(frozen=True)
class AsBefore:
    """What an added field meant before it existed (§6): filled on upgrade,
    required (else a loss) on rollback. ``note`` names the value's meaning."""

    value: int
    note: str = ""


#: §6: the "as before" value of each LU_DOMAIN field a generated step adds.
AS_BEFORE: dict[str, AsBefore] = {
    "cpupool_id": AsBefore(0, "Pool-0"),
    "altp2m_opts": AsBefore(0),
}


def layout_covers(record: str, old: type[Any], new: type[Any]) -> tuple[Cover, ...]:
    """The schema differences from layout ``old`` to ``new`` when ``new`` only
    adds fields and drops reserved ones (anything else is a semantic move and
    needs a hand-written step)."""
    a = {f.name: f for f in old.LAYOUT.fields}
    b = {f.name: f for f in new.LAYOUT.fields}
    for name in a.keys() & b.keys():
        fa, fb = a[name], b[name]
        if (fa.offset, fa.size, fa.kind) != (fb.offset, fb.size, fb.kind) and not fa.reserved:
            raise TypeError(f"{new.__name__}.{name} moved or changed: not a field addition")
    gone = [n for n in a if n not in b]
    if any(not a[n].reserved for n in gone):
        raise TypeError(f"{new.__name__} drops a field of {old.__name__}: not a field addition")
    covers = [Cover(record, record, "size-changed")] if old.LAYOUT.size != new.LAYOUT.size else []
    covers += [Cover(record, n, "field-added") for n in b if n not in a]
    covers += [Cover(record, n, "field-removed") for n in gone]
    return tuple(covers)


def _added_fields_steps(source: Epoch, target: Epoch) -> None:
    """Register the upgrade/rollback pair of an epoch boundary whose LU_DOMAIN
    only gains fields of :data:`AS_BEFORE`; every other layout is unchanged."""
    old, new = LU_DOMAIN_LAYOUTS[source], LU_DOMAIN_LAYOUTS[target]
    covers = layout_covers(_D, old, new)
    added = [
        (c.path, AS_BEFORE[c.path])
        for c in covers
        if c.kind == "field-added" and not new.LAYOUT.field(c.path).reserved
    ]

    def rule(ab: AsBefore) -> str:
        return f"new field: {ab.value}{', ' + ab.note if ab.note else ''} (§6)"

    def upgrade(stream: LUStream, log: StepLog) -> LUStream:
        doms = []
        for d in stream.domains:
            for name, ab in added:
                log.fill(d.domid, _D, name, ab.value, rule(ab))
            info = retype(d.info, new, **{name: ab.value for name, ab in added})
            doms.append(with_info(d, info))
        return new_stream(stream, target, doms)

    def rollback(stream: LUStream, log: StepLog) -> LUStream:
        doms = []
        for d in stream.domains:
            for name, ab in added:
                v = getattr(d.info, name)
                if v != ab.value:
                    log.lossy(
                        d.domid,
                        _D,
                        name,
                        v,
                        f"{name} is not {ab.value}{f' ({ab.note})' if ab.note else ''} and "
                        f"Xen {fmt_epoch(source)} has no such field (§6)",
                        f"{name} dropped",
                    )
            doms.append(with_info(d, retype(d.info, old)))
        return new_stream(stream, source, doms)

    up = "; ".join(f"{n} = {ab.value}{f' ({ab.note})' if ab.note else ''}" for n, ab in added)
    down = "; ".join(f"{n} must be {ab.value}" for n, ab in added)
    register(source, target, covers, up, down, upgrade, rollback)


_added_fields_steps((4, 16), (4, 17))
_added_fields_steps((4, 17), (4, 19))


# 4.19 <-> 4.20 — §6 row: LU_P2M access 10 r_pw. Upgrade: nothing to fill.
# Rollback: refused where an extent uses it, even with accepted loss ("never").
def _up_4_20(stream: LUStream, log: StepLog) -> LUStream:
    return new_stream(stream, (4, 20), list(stream.domains))


def _down_4_19(stream: LUStream, log: StepLog) -> LUStream:
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
    return new_stream(stream, (4, 19), list(stream.domains))


register(
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
def _up_4_21(stream: LUStream, log: StepLog) -> LUStream:
    doms = []
    for d in stream.domains:
        nr = _nr_altp2m_for(d.info_as(LuDomain419).altp2m_opts)
        log.fill(
            d.domid,
            _D,
            "nr_altp2m",
            nr,
            "derived: 10 (the fixed count before 4.21) when the altp2m mode is not off, "
            "else 0 (§6)",
        )
        doms.append(with_info(d, retype(d.info, LuDomain421, nr_altp2m=nr)))
    return new_stream(stream, (4, 21), doms)


def _down_4_20(stream: LUStream, log: StepLog) -> LUStream:
    doms = []
    for d in stream.domains:
        i = d.info_as(LuDomain421)
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
        doms.append(with_info(d, retype(i, LuDomain419)))
    return new_stream(stream, (4, 20), doms)


register(
    (4, 20),
    (4, 21),
    (Cover(_D, "altp2m_opts", "field-resized"), Cover(_D, "nr_altp2m", "field-added")),
    "altp2m_opts u32 → u16; nr_altp2m derived: 10 when the altp2m mode is on, else 0",
    "nr_altp2m must equal 10 when the altp2m mode is on, else 0",
    _up_4_21,
    _down_4_20,
)
