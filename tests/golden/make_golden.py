"""Write the golden corpus: a few small LU streams per epoch, encoded once and frozen.

Run once, from the repository root::

    python tests/golden/make_golden.py            # refuses to overwrite
    python tests/golden/make_golden.py --force    # only to add a new epoch

For every epoch 4.11 … 4.21 it writes ``tests/golden/<X.Y>/<name>.bin`` (the
encoder's bytes) and ``<name>.json`` (the decoded stream in the form of
``golden_json.stream_json``):

* ``pv``: one PV domain (dom0) with page types, a v1 grant table, two-level
  event channels and PV vCPU records;
* ``hvm``: one HVM guest with P2M, HVM_CONTEXT (RTC and VIRIDIAN_VCPU at the
  epoch's sizes), HVM_PARAMS and FIFO event channels;
* ``mixed``: dom0 and two HVM guests using every record family: reusable
  regions and Xen pages, P2M grant/shared/MMIO extents, grant tables v1/v2
  and grant maps, interdomain channels, IOREQ servers, CPUID/MSR policies,
  every PV vCPU record kind and an optional (bit 31) record;
* ``epoch``: the ``mixed`` host with every epoch-specific field this epoch
  has set to a non-default value (IOMMU bit, iommu_opts, negative grant
  limits, non-zero VIRIDIAN MSRs and rtc_offset, EXTRA, vmtrace_size,
  misc_flags, nested_virt, fifo_lastq, grant_opts, vpmu, cpupool_id,
  altp2m_opts, r_pw, nr_altp2m, an ARGO VIRQ 11 channel from 4.12). Every
  value survives an upgrade to any newer epoch.

The streams are structurally valid and describe a consistent host (frames
owned once, grant frames XEN_HEAP, reciprocal interdomain channels), and
each file stays a few KiB.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from golden_json import dumps, stream_json  # noqa: E402

from xenlu.core.epochs import EPOCHS, Epoch, fmt_epoch  # noqa: E402
from xenlu.core.registry import UnknownRecord  # noqa: E402
from xenlu.lu.records import (  # noqa: E402
    EVTCHN_LAYOUTS,
    INVALID_MFN,
    LU_DOMAIN_LAYOUTS,
    ControlBlock,
    EvtchnAbi,
    GrantMapEntry,
    GrantTable,
    IoreqRange,
    IoreqServer,
    IoreqServers,
    LuHostInfo,
    OwnershipEntry,
    P2mEntry,
    PageTypeEntry,
    RegionExtent,
    XenPagesExtent,
)
from xenlu.lu.stream import LUDomain, LUStream, X, decode_lu, encode_lu  # noqa: E402
from xenlu.migration.hvmctx import HvmContext, HvmEntry, HvmSaveHeader  # noqa: E402
from xenlu.migration.libxc import (  # noqa: E402
    CpuidLeaf,
    CpuidPolicy,
    HvmParamEntry,
    HvmParams,
    MsrEntry,
    MsrPolicy,
    PvVcpu,
    X86PvInfo,
    X86TscInfo,
)

NAMES = ("pv", "hvm", "mixed", "epoch")
PAGES = 32  # RAM pages per domain
RAM = {0: 0x10000, 1: 0x20000, 2: 0x30000}  # first RAM MFN per domain
HEAP = {0: 0x18000, 1: 0x28000, 2: 0x38000}  # Xen-heap frames (grant frames) per domain
SHARED = 0x3000  # LU_XEN_PAGES SHARED extent (DOMID_COW)
MMIO = 0x1_0000_0000 >> 12  # device memory above max_page
ECS_UNBOUND, ECS_INTERDOMAIN, ECS_VIRQ, ECS_IPI = 2, 3, 5, 6


def _pattern(n: int, seed: int) -> bytes:
    return bytes((seed * 31 + i * 7) & 0xFF for i in range(n))


def host_info(gnttab_max_version: int = 2) -> LuHostInfo:
    return LuHostInfo(
        page_shift=12,
        nr_domains=0,
        max_page=0x40000,
        lu_bootmem_start=0x0800_0000,
        lu_bootmem_size=0x0020_0000,
        gnttab_max_frames=32,
        gnttab_max_maptrack_frames=0,  # unknown: Xen's default 1024 applies (§4.6)
        gnttab_max_version=gnttab_max_version,
    )


def global_arrays() -> tuple[np.ndarray, np.ndarray]:
    reg = np.zeros(3, RegionExtent.LAYOUT.dtype)
    reg["start_mfn"], reg["nr_pages"] = [0x100, 0x5000, 0x6000], [0x80, 32, 16]
    reg["kind"] = [2, 1, 3]  # XEN_IMAGE, FRAMETABLE, SCRATCH
    xp = np.zeros(4, XenPagesExtent.LAYOUT.dtype)
    xp["start_mfn"] = [0x1000, 0x2000, SHARED, 0x4000]
    xp["nr_pages"] = [16, 8, 4, 4]
    xp["kind"] = [1, 3, 4, 2]
    return reg, xp


def domain_info(e: Epoch, domid: int, hvm: bool, special: bool) -> Any:
    """LU_DOMAIN of epoch ``e``; ``special`` sets every epoch-specific field."""
    cls = LU_DOMAIN_LAYOUTS[e]
    cdf = 0b11 if hvm else 0  # hvm + hap
    lu_state = 1 | (4 if domid == 0 else 0)  # running (+ privileged)
    f: dict[str, Any] = dict(
        domid=domid,
        domain_type=2 if hvm else 1,
        ssidref=0,
        handle=bytes(range(domid * 16, domid * 16 + 16)),
        cdf_flags=cdf,
        lu_state=lu_state,
        max_vcpus=2,
        max_evtchn_port=1023 if not hvm else 4095,
        emulation_flags=0x7FF if hvm else 0,
    )
    iommu = special and domid == 0
    if e < (4, 13):
        if iommu:
            f["lu_state"] |= 8  # IOMMU, lu_state bit 3 before 4.13
        big = 0x7FFF_FFFF if special else 32  # the largest u32 an upgrade keeps
        f.update(max_grant_frames=big if domid == 0 else 32, max_maptrack_frames=1024)
    else:
        if iommu:
            f["cdf_flags"] |= 1 << 5
        f.update(
            max_grant_frames=-1 if special else 32,
            max_maptrack_frames=-1 if special else 1024,
            iommu_opts=1 if iommu else 0,
        )
    if e >= (4, 15):
        f.update(vmtrace_size=0x10000 if special and hvm else 0, misc_flags=int(special))
        if special and hvm:
            f["cdf_flags"] |= 1 << 6  # nested_virt
    if e >= (4, 16):
        f.update(grant_opts=1 if special and domid == 0 else 2)  # dom0's table is v1
        if special and hvm:
            f["cdf_flags"] |= 1 << 7  # vpmu
    if e >= (4, 17):
        f.update(cpupool_id=3 if special and domid == 1 else 0)
    if e >= (4, 19):
        f.update(altp2m_opts=2 if special and domid == 1 else 0)
    if e >= (4, 21):
        f.update(nr_altp2m=4 if special and domid == 1 else 0)
    return cls(**f)


def ownership(e: Epoch, domid: int, n_heap: int, special: bool) -> np.ndarray:
    a = np.zeros(3, OwnershipEntry.LAYOUT.dtype)
    a["start_mfn"] = [RAM[domid], RAM[domid] + PAGES // 2, HEAP[domid]]
    a["nr_pages"] = [PAGES // 2, PAGES // 2, n_heap]
    a["flags"] = [0, 4 if special and e >= (4, 14) else 0, 1]  # EXTRA (≥4.14), XEN_HEAP
    return a


def grant_table(domid: int, v2: bool) -> GrantTable:
    n = 2
    gf = np.array([HEAP[domid], HEAP[domid] + 1], np.uint64)
    sf = np.array([HEAP[domid] + 2], np.uint64) if v2 else np.zeros(0, np.uint64)
    return GrantTable(2 if v2 else 1, gf[:n], sf)


def evtchns(e: Epoch, rows: list[tuple[int, ...]], fifo: bool) -> np.ndarray:
    """rows: (port, state, notify_vcpu, remote_domid, detail)."""
    lay = EVTCHN_LAYOUTS[e].LAYOUT
    a = np.zeros(len(rows), lay.dtype)
    cols = np.array(sorted(rows), np.int64)
    a["port"], a["state"], a["notify_vcpu"] = cols[:, 0], cols[:, 1], cols[:, 2]
    a["remote_domid"], a["detail"] = cols[:, 3], cols[:, 4]
    if fifo:
        prio = np.where(cols[:, 1] == ECS_VIRQ, 3, 7)
        a["priority"] = prio
        a["flags"] = np.where(cols[:, 0] == 2, 1, 0)  # one pending
        last_vcpu = cols[:, 2]
        if "fifo_lastq" in lay.names:
            a["fifo_lastq"] = (prio << 16) | last_vcpu
        else:
            a["last_priority"], a["last_vcpu"] = prio, last_vcpu
    else:
        a["priority"] = 7
    return a


def evtchn_abi(fifo: bool, domid: int) -> EvtchnAbi:
    if not fifo:
        return EvtchnAbi(1, np.zeros(0, ControlBlock.LAYOUT.dtype), np.zeros(0, np.uint64))
    cb = np.zeros(2, ControlBlock.LAYOUT.dtype)
    cb["vcpu"], cb["offset"], cb["control_gfn"] = [0, 1], [0, 64], [PAGES - 4, PAGES - 4]
    return EvtchnAbi(2, cb, np.array([PAGES - 5], np.uint64))


def hvm_context(e: Epoch, domid: int, special: bool) -> HvmContext:
    hdr = HvmSaveHeader(
        magic=0x54381286, version=1, changeset=0xFFFFFFFFFFFFFFFF, cpuid=0x906EA, gtsc_khz=2_000_000
    )
    ents = [HvmEntry(2, i, _pattern(48, domid + i)) for i in range(2)]  # CPU (short blob)
    ents += [HvmEntry(5, i, _pattern(16, 7 + i)) for i in range(2)]  # LAPIC
    ents.append(HvmEntry(10, 0, _pattern(24, 3)))  # PIT
    rtc = _pattern(14, domid) + b"\x0b\x00"  # cmos_data, cmos_index, pad0
    if e >= (4, 14):
        rtc += struct.pack("<q", -3600 if special else 0)  # rtc_offset
    ents.append(HvmEntry(11, 0, rtc))
    for i in range(2):
        vir = struct.pack("<QB7x", 0x1000 * (i + 1) | 1, i)  # vp_assist_msr, pending
        if e >= (4, 13):
            simp = 0x2001 if special else 0
            sint = struct.pack("<16Q", *([0x10000 | 0xF0 if special else 0] + [0] * 15))
            vir += struct.pack("<Q", simp) + sint + bytes(64)
        ents.append(HvmEntry(17, i, vir))
    ents += [HvmEntry(19, i, struct.pack("<Q", 0x1234 * i)) for i in range(2)]  # TSC_ADJUST
    return HvmContext.build(hdr, ents)


def policies() -> dict[str, Any]:
    cpuid = np.zeros(2, CpuidLeaf.LAYOUT.dtype)
    cpuid["leaf"], cpuid["subleaf"], cpuid["a"] = [0, 7], [0xFFFFFFFF, 0], [0xD, 0]
    msr = np.zeros(1, MsrEntry.LAYOUT.dtype)
    msr["idx"], msr["val"] = 0xCE, 0x80000000
    return dict(cpuid_policy=CpuidPolicy(cpuid), msr_policy=MsrPolicy(msr))


def pv_domain(e: Epoch, special: bool, guests: tuple[int, ...]) -> LUDomain:
    pt = np.zeros(6, PageTypeEntry.LAYOUT.dtype)
    pt["mfn"] = RAM[0] + np.arange(6)
    pt["type"] = [4, 4, 3, 2, 1, 7]
    pt["flags"] = [3, 3, 2, 2, 2, 0]  # L4s pinned + validated
    pt["type_count"] = [0, 0, 0, 0, 0, 1]
    rows = [(1, ECS_VIRQ, 0, 0, 0), (2, ECS_VIRQ, 1, 0, 0), (3, ECS_IPI, 0, 0, 0)]
    rows.append((4, ECS_VIRQ, 0, 0, 2))  # VIRQ_CONSOLE
    for k, g in enumerate(guests):
        rows.append((10 + k, ECS_INTERDOMAIN, 0, g, 5))  # ↔ guest port 5
    maps = np.zeros(len(guests), GrantMapEntry.LAYOUT.dtype)
    if guests:
        maps["handle"] = np.arange(len(guests))
        maps["ref"] = 8
        maps["flags"] = 2  # host_map
        maps["granting_domid"] = guests
        maps["mfn"] = [RAM[g] + PAGES - 1 for g in guests]
    vcpus: list[tuple[int, Any]] = []
    for cpu in range(2):
        vcpus.append((X.X86_PV_VCPU_BASIC, PvVcpu(cpu, _pattern(64, cpu))))
        if guests:  # the mixed host: every PV vCPU record kind
            vcpus.append((X.X86_PV_VCPU_EXTENDED, PvVcpu(cpu, _pattern(16, cpu + 2))))
            vcpus.append((X.X86_PV_VCPU_XSAVE, PvVcpu(cpu, _pattern(32, cpu + 4))))
            vcpus.append((X.X86_PV_VCPU_MSRS, PvVcpu(cpu, _pattern(16, cpu + 6))))
    return LUDomain.build(
        domain_info(e, 0, False, special),
        pv_info=X86PvInfo(guest_width=8, pt_levels=4),
        tsc_info=X86TscInfo(mode=0, khz=2_000_000, nsec=10**9, incarnation=1),
        ownership=ownership(e, 0, 2, special),
        page_types=pt,
        grant_table=grant_table(0, False),
        grant_maps=maps if guests else None,
        evtchn_abi=evtchn_abi(False, 0),
        evtchns=evtchns(e, rows, False),
        vcpus=vcpus,
        **(policies() if guests else {}),
    )


def hvm_domain(e: Epoch, domid: int, special: bool, mixed: bool) -> LUDomain:
    p2m = [(0, RAM[domid], PAGES, 0)]  # ram_rw
    maps = None
    if mixed and domid == 1:
        # A grant of domain 2 mapped through the P2M, with its maptrack entry (§4.7).
        mfn = RAM[2] + PAGES - 2
        p2m.append((0x100, mfn, 1, 7))  # grant_map_rw
        p2m.append((0x200, SHARED, 2, 12))  # ram_shared
        p2m.append((0x300, INVALID_MFN, 0x10, 4))  # mmio_dm
        p2m.append((0x400, MMIO, 0x10, 5))  # mmio_direct (BAR above max_page)
        maps = np.zeros(1, GrantMapEntry.LAYOUT.dtype)
        maps["ref"], maps["flags"], maps["granting_domid"], maps["mfn"] = 9, 2, 2, mfn
    a = np.zeros(len(p2m), P2mEntry.LAYOUT.dtype)
    cols = np.array(p2m, np.uint64)
    a["gfn"], a["mfn"], a["nr_pages"], a["p2m_type"] = (
        cols[:, 0],
        cols[:, 1],
        cols[:, 2],
        cols[:, 3],
    )
    a["access"] = 7
    if special and e >= (4, 20):
        a["access"][0] = 10  # r_pw
    fifo = domid == 1 or not mixed
    rows = [(1, ECS_VIRQ, 0, 0, 0), (2, ECS_VIRQ, 1, 0, 0), (3, ECS_IPI, 1, 0, 0)]
    rows.append((4, ECS_UNBOUND, 0, 0, 0))
    if mixed:
        rows.append((5, ECS_INTERDOMAIN, 0, 0, 10 + (domid - 1)))  # ↔ dom0
    if special and e >= (4, 12) and domid == 1:
        rows.append((6, ECS_VIRQ, 0, 0, 11))  # VIRQ 11 = ARGO from 4.12
    v2 = domid == 2
    servers = None
    if mixed:
        ranges = np.zeros(2, IoreqRange.LAYOUT.dtype)
        ranges["type"], ranges["start"], ranges["end"] = (
            [0, 1],
            [0x3F8, 0xFEB00000],
            [0x3FF, 0xFEB0FFFF],
        )
        servers = IoreqServers((IoreqServer(1, 0, 1, 1, PAGES - 2, PAGES - 3, ranges),))
    params = np.zeros(2, HvmParamEntry.LAYOUT.dtype)
    params["index"], params["value"] = [1, 2], [PAGES - 6, 4]  # store pfn, store evtchn
    return LUDomain.build(
        domain_info(e, domid, True, special),
        tsc_info=X86TscInfo(mode=2, khz=2_000_000, nsec=5 * 10**9, incarnation=domid),
        p2m=a,
        ownership=ownership(e, domid, 3 if v2 else 2, special),
        grant_table=grant_table(domid, v2),
        grant_maps=maps,
        evtchn_abi=evtchn_abi(fifo, domid),
        evtchns=evtchns(e, rows, fifo),
        ioreq_servers=servers,
        hvm_context=hvm_context(e, domid, special),
        hvm_params=HvmParams(params),
        optional=[UnknownRecord(0xC0000123, b"optional!")] if mixed and domid == 2 else (),
        **(policies() if mixed else {}),
    )


def build_streams(e: Epoch) -> dict[str, LUStream]:
    """The golden streams of epoch ``e``, by name."""
    reg, xp = global_arrays()
    out = {
        "pv": LUStream.build(e, host=host_info(), domains=[pv_domain(e, False, ())]),
        "hvm": LUStream.build(e, host=host_info(0), domains=[hvm_domain(e, 1, False, False)]),
    }
    for name, special in (("mixed", False), ("epoch", True)):
        doms = [pv_domain(e, special, (1, 2))] + [hvm_domain(e, g, special, True) for g in (1, 2)]
        out[name] = LUStream.build(
            e, host=host_info(), reusable_regions=reg, xen_pages=xp, domains=doms
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--force", action="store_true", help="overwrite existing golden files")
    ap.add_argument("--out", default=str(HERE), help="corpus directory")
    args = ap.parse_args(argv)
    for e in EPOCHS:
        d = Path(args.out) / fmt_epoch(e)
        d.mkdir(parents=True, exist_ok=True)
        for name, stream in build_streams(e).items():
            data = encode_lu(stream)
            back = decode_lu(data)  # the frozen JSON is what the decoder says
            assert back == stream, (e, name)
            for path, content in ((d / f"{name}.bin", data), (d / f"{name}.json", None)):
                if path.exists() and not args.force:
                    print(f"{path} exists, kept (frozen; --force to overwrite)")
                    continue
                if content is None:
                    path.write_text(dumps(stream_json(back)), encoding="utf-8")
                else:
                    path.write_bytes(content)
                print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
