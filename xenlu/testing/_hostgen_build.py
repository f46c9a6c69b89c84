"""The builder behind :mod:`xenlu.testing.hostgen`: one consistent host, every record placed
against the others (private; :func:`xenlu.testing.hostgen.make_host` and friends are the API)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from xenlu.core.epochs import epoch_of
from xenlu.core.registry import Record
from xenlu.lu.host_records import LuHostInfo, RegionExtent, XenPagesExtent
from xenlu.lu.io_records import (
    EVTCHN_LAYOUTS,
    ControlBlock,
    EvtchnAbi,
    GrantMapEntry,
    GrantTable,
    IoreqRange,
    IoreqServer,
    IoreqServers,
)
from xenlu.lu.memory_records import OwnershipEntry, P2mEntry, PageTypeEntry
from xenlu.lu.records import LU_DOMAIN_LAYOUTS, T
from xenlu.lu.stream import GlobalSection, LUDomain, LUStream, Section, X
from xenlu.lu.values import (
    CDF_HVM,
    CDF_IOMMU,
    DOMID_COW,
    ECS_INTERDOMAIN,
    ECS_IPI,
    ECS_VIRQ,
    INVALID_MFN,
    LU_STATE_IOMMU,
    LU_STATE_PRIVILEGED,
    LU_STATE_RUNNING,
)
from xenlu.testing._hostgen_vary import (
    Varier,
)

if TYPE_CHECKING:
    from xenlu.testing.hostgen import HostPlan


PAGES_PER_MIB = 256
BOOTMEM_START = 0x0800_0000  # 128 MiB, 2 MiB aligned (§4.2)
BOOTMEM_SIZE = 0x0400_0000  # 64 MiB
HEAP_BASE_MFN = 0x10000  # guest memory starts at 256 MiB
XEN_HEAP = 1
VIRQ_TIMER, VIRQ_DEBUG, VIRQ_CONSOLE, VIRQ_DOM_EXC = 0, 1, 2, 3
HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN = 1, 2
HVM_PARAM_IOREQ_PFN, HVM_PARAM_BUFIOREQ_PFN = 5, 6
HVM_PARAM_CONSOLE_PFN, HVM_PARAM_CONSOLE_EVTCHN = 17, 18


class _Alloc:
    """A bump allocator over MFNs above HEAP_BASE_MFN (outside the bootmem)."""

    def __init__(self, start: int) -> None:
        self.next = start

    def take(self, n: int) -> int:
        at = self.next
        self.next += n
        return at


SUPERPAGE = 512  # 2 MiB in 4 KiB frames


def _split(
    total: int, fragmentation: float, rng: np.random.Generator, superpages: bool = False
) -> np.ndarray:
    """Extent lengths summing to ``total``; each of the total-1 gaps is cut with
    probability ``fragmentation`` (1.0 → single frames). With ``superpages``
    the first half is laid out in 2 MiB extents and only the rest fragmented."""
    if superpages and total >= 2 * SUPERPAGE:
        big = (total // 2) // SUPERPAGE * SUPERPAGE
        head = np.full(big // SUPERPAGE, SUPERPAGE, np.int64)
        return np.concatenate((head, _split(total - big, fragmentation, rng)))
    if total <= 0:
        return np.zeros(0, np.int64)
    if fragmentation >= 1.0:
        return np.ones(total, np.int64)
    if fragmentation <= 0.0 or total == 1:
        return np.array([total], np.int64)
    cuts = np.flatnonzero(rng.random(total - 1) < fragmentation) + 1
    edges = np.concatenate(([0], cuts, [total]))
    return np.diff(edges).astype(np.int64)


def _extents(dtype: np.dtype, starts: np.ndarray, lengths: np.ndarray, kinds: Any) -> np.ndarray:
    a = np.zeros(len(starts), dtype)
    a["start_mfn"] = starts
    a["nr_pages"] = lengths
    a["kind"] = kinds
    return a


def _blob(rng: np.random.Generator, n: int) -> bytes:
    return rng.integers(0, 256, n, dtype=np.uint8).tobytes()


class HostBuilder:
    def __init__(self, plan: HostPlan) -> None:
        self.p = plan
        self.epoch = epoch_of(*plan.version)
        self.rng = np.random.default_rng(plan.seed)
        self.alloc = _Alloc(HEAP_BASE_MFN)
        self.domids = [0, *range(1, plan.n_hvm + 1)]
        # per-domain products filled in as we go
        self.heap: dict[int, list[tuple[int, int]]] = {d: [] for d in self.domids}
        self.grant_frames: dict[int, GrantTable] = {}
        self.maps: dict[int, list[tuple[int, int, int, int, int]]] = {d: [] for d in self.domids}
        self.evtchns: dict[int, list[tuple[int, ...]]] = {d: [] for d in self.domids}
        self.next_port: dict[int, int] = dict.fromkeys(self.domids, 1)
        self.p2m_extra: dict[int, list[tuple[int, int, int, int]]] = {d: [] for d in self.domids}

    # -- memory ------------------------------------------------------------
    def _layout_ram(self) -> None:
        p = self.p
        mib = {0: p.dom0_mem_mib, **dict.fromkeys(self.domids[1:], p.mem_mib)}
        # Extent lengths per domain; None where every extent is one frame
        # (fragmentation 1.0), so the 1 TiB host holds no 2 GiB array of ones.
        lengths: list[np.ndarray | None] = []
        counts: list[int] = []
        for d in self.domids:
            lens = _split(mib[d] * PAGES_PER_MIB, p.fragmentation, self.rng, p.superpages)
            counts.append(len(lens))
            lengths.append(None if len(lens) == int(lens.sum()) else lens)
        n = sum(counts)
        frames = sum(c if x is None else int(x.sum()) for c, x in zip(counts, lengths, strict=True))
        # Interleave every domain's extents in machine memory: a random
        # permutation of all extents, laid out back to back. Extent indices
        # and offsets are kept in the narrowest dtype that holds them (the
        # 1 TiB host has 268 M extents: 1 GiB each as u32, not 2 GiB as i64);
        # shuffling a u32 arange draws exactly what ``rng.permutation(n)`` draws.
        idx_t = np.uint32 if n < (1 << 32) else np.int64
        order = np.arange(n, dtype=idx_t)
        if p.fragmentation > 0:
            self.rng.shuffle(order)
        self.ram_base = self.alloc.take(frames)
        if frames == n:  # single-frame extents: offset of extent order[i] is i
            offs = np.empty(n, idx_t)
            step = 1 << 24  # scatter in slices: no second n-sized temporary
            for i in range(0, n, step):
                part = order[i : i + step]
                offs[part] = np.arange(i, i + len(part), dtype=idx_t)
        else:
            all_len = np.concatenate(
                [
                    np.ones(c, np.int64) if x is None else x
                    for c, x in zip(counts, lengths, strict=True)
                ]
            )
            run = all_len[order]
            np.cumsum(run, out=run)  # end of each extent, in machine order
            offs = np.empty(n, np.int64)
            offs[order[1:]] = run[:-1]
            offs[order[:1]] = 0
            del all_len, run
        del order
        self.ram_lens = lengths
        self.ram_offs = offs
        self.ram_at = np.concatenate(([0], np.cumsum(counts))).tolist()
        self.ram_cache: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None

    def _ram(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        """The domain's RAM extents (starts, lengths; gfn order), as int64.

        Built on demand from the compact layout (the one domain in hand is cached).
        """
        if self.ram_cache is not None and self.ram_cache[0] == d:
            return self.ram_cache[1]
        i = self.domids.index(d)
        lo, hi = self.ram_at[i], self.ram_at[i + 1]
        starts = self.ram_offs[lo:hi].astype(np.int64)
        starts += self.ram_base
        lens = self.ram_lens[i]
        ram = (starts, np.ones(hi - lo, np.int64) if lens is None else lens)
        self.ram_cache = (d, ram)
        return ram

    def _frame(self, d: int, i: int) -> int:
        """The MFN of the domain's i-th RAM frame (gfn order)."""
        starts, lens = self._ram(d)
        if self.ram_lens[self.domids.index(d)] is None:
            return int(starts[i])
        ends = np.cumsum(lens)
        k = int(np.searchsorted(ends, i, side="right"))
        before = int(ends[k - 1]) if k else 0
        return int(starts[k]) + (i - before)

    def _heap_page(self, d: int, n: int = 1) -> int:
        mfn = self.alloc.take(n)
        self.heap[d].append((mfn, n))
        return mfn

    # -- grant tables ------------------------------------------------------
    def _grant_tables(self) -> None:
        for i, d in enumerate(self.domids):
            v2 = self.p.grant_v2(i)
            n = 4 if d else 8
            gf = np.array([self._heap_page(d) for _ in range(n)], np.uint64)
            sf = np.array([self._heap_page(d) for _ in range(-(-n // 8))] if v2 else [], np.uint64)
            self.grant_frames[d] = GrantTable(2 if v2 else 1, gf, sf)

    def _grant_map(
        self, mapper: int, granter: int, ref: int, frame_index: int, readonly: bool = False
    ) -> int:
        mfn = self._frame(granter, frame_index)
        handle = len(self.maps[mapper])
        flags = 2 | (4 if readonly else 0)  # host_map (+ readonly)
        self.maps[mapper].append((handle, ref, flags, granter, mfn))
        return mfn

    # -- event channels ----------------------------------------------------
    def _port(self, d: int) -> int:
        port = self.next_port[d]
        self.next_port[d] += 1
        return port

    def _chan(
        self, d: int, state: int, vcpu: int = 0, remote: int = 0, detail: int = 0, priority: int = 7
    ) -> int:
        port = self._port(d)
        self.evtchns[d].append((port, state, priority, vcpu, remote, detail))
        return port

    def _event_channels(self) -> None:
        v = self.p.vcpus
        for d in self.domids:
            for cpu in range(v):
                self._chan(d, ECS_VIRQ, cpu, detail=VIRQ_TIMER)
                self._chan(d, ECS_IPI, cpu)
            if d == 0:
                self._chan(0, ECS_VIRQ, 0, detail=VIRQ_CONSOLE)
                self._chan(0, ECS_VIRQ, 0, detail=VIRQ_DOM_EXC)
        self.store_port: dict[int, int] = {}
        self.console_port: dict[int, int] = {}
        for g in self.domids[1:]:
            for kind in ("store", "console"):
                # Reciprocal pair: dom0 port ↔ guest port (§4.13).
                p0 = self._port(0)
                pg = self._port(g)
                self.evtchns[0].append((p0, ECS_INTERDOMAIN, 7, 0, g, pg))
                self.evtchns[g].append((pg, ECS_INTERDOMAIN, 7, 0, 0, p0))
                (self.store_port if kind == "store" else self.console_port)[g] = pg

    def _evtchn_array(self, d: int, fifo: bool) -> np.ndarray:
        lay = EVTCHN_LAYOUTS[self.epoch].LAYOUT
        rows = sorted(self.evtchns[d])
        a = np.zeros(len(rows), lay.dtype)
        if not rows:
            return a
        cols = np.array(rows, np.int64)
        a["port"], a["state"], a["notify_vcpu"] = cols[:, 0], cols[:, 1], cols[:, 3]
        a["remote_domid"], a["detail"] = cols[:, 4], cols[:, 5]
        if fifo:
            prio = np.where(cols[:, 1] == ECS_VIRQ, 3, cols[:, 2])
            a["priority"] = prio
            if "fifo_lastq" in lay.names:
                a["fifo_lastq"] = (prio << 16) | cols[:, 3]
            else:
                a["last_priority"], a["last_vcpu"] = prio, cols[:, 3]
        else:
            a["priority"] = 7
        return a

    # -- domains -----------------------------------------------------------
    def _domain_info(self, d: int, hvm: bool) -> Any:
        cls = LU_DOMAIN_LAYOUTS[self.epoch]
        e = self.epoch
        cdf = (CDF_HVM | 2) if hvm else 0  # hvm + hap
        lu_state = LU_STATE_RUNNING | (LU_STATE_PRIVILEGED if d == 0 else 0)
        iommu = d == 0
        if iommu:
            # The IOMMU bit lives in lu_state before 4.13, in CDF from 4.13 (§6).
            if e >= (4, 13):
                cdf |= CDF_IOMMU
            else:
                lu_state |= LU_STATE_IOMMU
        fields: dict[str, Any] = dict(
            domid=d,
            domain_type=2 if hvm else 1,
            ssidref=0,
            handle=bytes(self.rng.integers(0, 256, 16, dtype=np.uint8)),
            cdf_flags=cdf,
            lu_state=lu_state,
            max_vcpus=self.p.vcpus,
            max_evtchn_port=4095 if not hvm else 131071,
            emulation_flags=0x3FF if hvm else 0,
        )
        if e < (4, 13):
            fields.update(max_grant_frames=64, max_maptrack_frames=1024)
        else:
            fields.update(max_grant_frames=-1, max_maptrack_frames=-1, iommu_opts=0)
        if e >= (4, 15):
            fields.update(vmtrace_size=0, misc_flags=0)
        if e >= (4, 16):
            fields.update(grant_opts=2)
        if e >= (4, 17):
            fields.update(cpupool_id=0)
        if e >= (4, 19):
            fields.update(altp2m_opts=0)
        if e >= (4, 21):
            fields.update(nr_altp2m=0)
        return cls(**fields)

    def _ownership(self, d: int) -> np.ndarray:
        starts, lens = self._ram(d)
        heap = self.heap[d]
        lay = OwnershipEntry.LAYOUT
        a = np.zeros(len(starts) + len(heap), lay.dtype)
        a["start_mfn"][: len(starts)] = starts
        a["nr_pages"][: len(starts)] = lens
        if heap:
            h = np.array(heap, np.int64)
            a["start_mfn"][len(starts) :] = h[:, 0]
            a["nr_pages"][len(starts) :] = h[:, 1]
            a["flags"][len(starts) :] = XEN_HEAP
        return a

    def _grant_maps(self, d: int) -> np.ndarray:
        a = np.zeros(len(self.maps[d]), GrantMapEntry.LAYOUT.dtype)
        if self.maps[d]:
            m = np.array(self.maps[d], np.int64)
            a["handle"], a["ref"], a["flags"] = m[:, 0], m[:, 1], m[:, 2]
            a["granting_domid"], a["mfn"] = m[:, 3], m[:, 4]
            a["vcpu"] = a["handle"] % self.p.vcpus
        return a

    def _p2m(self, d: int, total_pages: int) -> np.ndarray:
        starts, lens = self._ram(d)
        extra = self.p2m_extra[d]
        lay = P2mEntry.LAYOUT
        a = np.zeros(len(starts) + len(extra), lay.dtype)
        n = len(starts)
        a["gfn"][:n] = np.concatenate(([0], np.cumsum(lens)[:-1]))
        a["mfn"][:n] = starts
        a["nr_pages"][:n] = lens
        a["access"][:n] = 7  # rwx
        if extra:
            e = np.array(extra, np.uint64)
            a["gfn"][n:], a["mfn"][n:], a["nr_pages"][n:], a["p2m_type"][n:] = (
                e[:, 0],
                e[:, 1],
                e[:, 2],
                e[:, 3],
            )
            a["access"][n:] = 7
        gfn = a["gfn"]
        if len(gfn) < 2 or bool((gfn[1:] >= gfn[:-1]).all()):
            return a  # already in gfn order (RAM, then the extras above it)
        order = np.argsort(gfn, kind="stable")
        return a[order]

    def _hvm_context(self, d: int) -> Any:
        from xenlu.migration.hvmctx import HvmContext, HvmEntry, HvmSaveHeader

        v = self.p.vcpus
        hdr = HvmSaveHeader(
            magic=0x54381286,
            version=1,
            changeset=0xFFFFFFFFFFFFFFFF,
            cpuid=0x000A0F11,
            gtsc_khz=2_500_000,
        )
        rtc_size = 24 if self.epoch >= (4, 14) else 16
        vir_size = 216 if self.epoch >= (4, 13) else 16
        ents = [HvmEntry(1, 0, HvmSaveHeader.LAYOUT.pack(hdr))]
        ents += [HvmEntry(2, i, _blob(self.rng, 1024)) for i in range(v)]  # CPU
        ents += [HvmEntry(3, i, _blob(self.rng, 8)) for i in (0, 1)]  # PIC master, slave
        ents.append(HvmEntry(4, 0, _blob(self.rng, 216)))  # IOAPIC
        ents += [HvmEntry(5, i, _blob(self.rng, 16)) for i in range(v)]  # LAPIC
        ents += [HvmEntry(6, i, _blob(self.rng, 1024)) for i in range(v)]  # LAPIC_REGS
        ents.append(HvmEntry(10, 0, _blob(self.rng, 64)))  # PIT
        rtc = bytearray(_blob(self.rng, 16))
        rtc[15] = 0  # pad0 is reserved
        ents.append(HvmEntry(11, 0, bytes(rtc) + bytes(rtc_size - 16)))  # rtc_offset = 0
        ents += [HvmEntry(14, i, _blob(self.rng, 8 * 11)) for i in range(v)]  # MTRR
        for i in range(v):  # VIRIDIAN_VCPU: vp_assist_msr, pending, zero pad, new MSRs 0
            vir = _blob(self.rng, 9) + bytes(7) + bytes(vir_size - 16)
            ents.append(HvmEntry(17, i, vir))
        ents.append(HvmEntry(0, 0, b""))
        return HvmContext(tuple(ents))

    def _prepare(self) -> None:
        """Everything but the domain sections: memory, grants, channels, Xen pages."""
        p = self.p
        self._layout_ram()
        self._grant_tables()
        self._event_channels()
        self.mem_pages = mem_pages = {
            0: p.dom0_mem_mib * PAGES_PER_MIB,
            **dict.fromkeys(self.domids[1:], p.mem_mib * PAGES_PER_MIB),
        }
        # dom0 (the backend) maps two grants of every guest; the first HVM
        # guest also maps one grant of the second, through its P2M.
        for g in self.domids[1:]:
            self._grant_map(0, g, ref=8, frame_index=mem_pages[g] - 1)
            self._grant_map(0, g, ref=9, frame_index=mem_pages[g] - 2, readonly=True)
        if p.n_hvm >= 2:
            mfn = self._grant_map(1, 2, ref=10, frame_index=mem_pages[2] - 3)
            self.p2m_extra[1].append((mem_pages[1] + 0x100, mfn, 1, 7))  # grant_map_rw
        # shared (DOMID_COW) pages and device memory
        shared_start = self.alloc.take(16)
        if p.n_hvm >= 1:
            self.p2m_extra[1].append((mem_pages[1] + 0x200, shared_start, 4, 12))  # ram_shared
            self.p2m_extra[1].append((mem_pages[1] + 0x300, INVALID_MFN, 0x20, 4))  # mmio_dm
        m2p_pages = max(1, self.alloc.next // 512)
        m2p = self.alloc.take(m2p_pages)
        iommu_pt = self.alloc.take(64)
        max_page = self.alloc.next + 4096
        if p.n_hvm >= 1:
            self.p2m_extra[1].append((mem_pages[1] + 0x1000, max_page + 0x1000, 16, 5))  # BAR
        # Room for the stream and its MFN array (LU_DATA, §4.5): estimated
        # generously from the entry counts.
        est = 1 << 20
        for i in range(len(self.domids)):
            est += 40 * (self.ram_at[i + 1] - self.ram_at[i]) + (1 << 16)
        lu_pages = -(-est // 4096) + 16
        lu_data = self.alloc.take(lu_pages)
        max_page = max(max_page, self.alloc.next + 4096)

        self.shared_start, self.m2p, self.m2p_pages = shared_start, m2p, m2p_pages
        self.iommu_pt, self.lu_data, self.lu_pages = iommu_pt, lu_data, lu_pages
        self.max_page = max_page

    def _domain(self, i: int, d: int) -> LUDomain:
        """The section of domain ``d`` (the ``i``-th), consuming the seeded draws in order."""
        from xenlu.migration.hvmctx import HvmContext  # noqa: F401 - libxc records register on import
        from xenlu.migration.libxc_records import (
            CpuidLeaf,
            CpuidPolicy,
            MsrEntry,
            MsrPolicy,
            X86TscInfo,
        )

        fifo = self.p.fifo(i)
        info = self._domain_info(d, self.p.hvm(i))
        common: dict[str, Any] = dict(
            tsc_info=X86TscInfo(mode=0, khz=2_500_000, nsec=123_456_789 * (d + 1), incarnation=d),
            cpuid_policy=CpuidPolicy(cpuid_leaves(CpuidLeaf)),
            msr_policy=MsrPolicy(msr_entries(MsrEntry)),
            ownership=None,
            grant_table=self.grant_frames[d],
            grant_maps=self._grant_maps(d),
            evtchn_abi=self._evtchn_abi(d, fifo),
            evtchns=self._evtchn_array(d, fifo),
        )
        if self.p.hvm(i):
            return self._hvm_domain(d, info, common)
        return self._pv_domain(d, info, common)

    def _evtchn_abi(self, d: int, fifo: bool) -> EvtchnAbi:
        """LU_EVTCHN_ABI: FIFO with one control block per vCPU, or two-level (§4.12)."""
        if not fifo:
            return EvtchnAbi(1, np.zeros(0, ControlBlock.LAYOUT.dtype), np.zeros(0, np.uint64))
        v, top = self.p.vcpus, self.mem_pages[d]
        cb = np.zeros(v, ControlBlock.LAYOUT.dtype)
        cb["vcpu"] = np.arange(v)
        cb["offset"] = 0
        cb["control_gfn"] = top - 16 + np.arange(v)
        return EvtchnAbi(2, cb, np.array([top - 20], np.uint64))

    def _hvm_domain(self, d: int, info: Any, common: dict[str, Any]) -> LUDomain:
        """An HVM guest: P2M, an IOREQ server, HVM context and params on top of ``common``."""
        from xenlu.migration.libxc_records import HvmParamEntry, HvmParams

        top = self.mem_pages[d]
        ranges = np.zeros(3, IoreqRange.LAYOUT.dtype)
        ranges["type"] = [0, 1, 2]
        ranges["start"] = [0x3F8, 0xFEBF0000, 0x0008]
        ranges["end"] = [0x3FF, 0xFEBFFFFF, 0x0008]
        servers = IoreqServers((IoreqServer(0, 0, 1, 1, top - 2, top - 3, ranges),))
        params = np.zeros(6, HvmParamEntry.LAYOUT.dtype)
        params["index"] = [
            HVM_PARAM_STORE_PFN,
            HVM_PARAM_STORE_EVTCHN,
            HVM_PARAM_IOREQ_PFN,
            HVM_PARAM_BUFIOREQ_PFN,
            HVM_PARAM_CONSOLE_PFN,
            HVM_PARAM_CONSOLE_EVTCHN,
        ]
        params["value"] = [
            top - 4,
            self.store_port[d],
            top - 2,
            top - 3,
            top - 5,
            self.console_port[d],
        ]
        return LUDomain.build(
            info,
            p2m=self._p2m(d, top),
            ioreq_servers=servers,
            hvm_context=self._hvm_context(d),
            hvm_params=HvmParams(params),
            **{**common, "ownership": self._ownership(d)},
        )

    def _pv_domain(self, d: int, info: Any, common: dict[str, Any]) -> LUDomain:
        """The PV dom0: page types and the three vCPU records per vCPU on top of ``common``."""
        from xenlu.migration.libxc_records import PvVcpu, X86PvInfo

        pt = self._page_types(d)
        vcpu_recs = []
        for cpu in range(self.p.vcpus):
            vcpu_recs.append((X.X86_PV_VCPU_BASIC, PvVcpu(cpu, _blob(self.rng, 5168))))
            vcpu_recs.append((X.X86_PV_VCPU_EXTENDED, PvVcpu(cpu, _blob(self.rng, 128))))
            vcpu_recs.append((X.X86_PV_VCPU_XSAVE, PvVcpu(cpu, _blob(self.rng, 832))))
        return LUDomain.build(
            info,
            pv_info=X86PvInfo(guest_width=8, pt_levels=4),
            page_types=pt,
            vcpus=vcpu_recs,
            **{**common, "ownership": self._ownership(d)},
        )

    def _global(self) -> tuple[LuHostInfo, np.ndarray, np.ndarray]:
        """LU_HOST_INFO (nr_domains 0: set by the caller), regions, Xen pages."""
        max_page = self.max_page
        host = LuHostInfo(
            page_shift=12,
            nr_domains=0,
            max_page=max_page,
            lu_bootmem_start=BOOTMEM_START,
            lu_bootmem_size=BOOTMEM_SIZE,
            gnttab_max_frames=64,
            gnttab_max_maptrack_frames=1024,
            gnttab_max_version=2,
        )
        frametable_pages = -(-max_page * 32 // 4096)
        regions = _extents(
            RegionExtent.LAYOUT.dtype,
            np.array([0x1000, 0x2000, 0x3000 + 0x100]),
            np.array([0x800, min(frametable_pages, 0x1000), 0x100]),
            [2, 1, 3],
        )
        xen_pages = _extents(
            XenPagesExtent.LAYOUT.dtype,
            np.array([self.m2p, self.iommu_pt, self.lu_data, self.shared_start]),
            np.array([self.m2p_pages, 64, self.lu_pages, 16]),
            [1, 2, 3, 4],
        )
        # DOMID_COW owns the SHARED extent; it is not a domain section (§4.5).
        assert DOMID_COW == 0x7FF3
        return host, regions, xen_pages

    def build(self) -> LUStream:
        # One path for both: the sections are those write_host streams.
        glob, *doms = self.sections()
        assert isinstance(glob, GlobalSection)
        return LUStream(glob, [d for d in doms if isinstance(d, LUDomain)])

    def sections(self) -> Iterator[Section]:
        """The global section, then each domain's, built (and varied) one at a time."""
        self._prepare()
        host, regions, xen_pages = self._global()
        n = len(self.domids)
        # LUStream.build is the one place that lays out the global section's
        # records; nr_domains is the number of domain sections that follow.
        g = LUStream.build(
            self.p.version, host=host, reusable_regions=regions, xen_pages=xen_pages
        ).global_section
        host_n = dataclasses.replace(host, nr_domains=n)
        glob = GlobalSection(
            [Record(r.type, host_n) if r.type == T.LU_HOST_INFO else r for r in g.records]
        )
        if self.p.variations is None:
            yield glob
            for i, d in enumerate(self.domids):
                yield self._domain(i, d)
            return
        tables = self.grant_frames.values()
        vary = Varier(
            self.p.variations,
            self.epoch,
            n_domains=n,
            need_frames=max(gt.nr_grant_frames for gt in tables),
            any_v2=any(gt.version == 2 for gt in tables),
        )
        yield vary.global_section(glob)
        for i, d in enumerate(self.domids):
            yield vary.domain(i, self._domain(i, d), fifo=self.p.fifo(i))

    def _page_types(self, d: int) -> np.ndarray:
        """PV page types: a pinned L4 per vCPU, its L3/L2/L1 tables, writable pages."""
        starts, lens = self._ram(d)
        n_frames = int(lens.sum())
        n = min(n_frames, 64 + n_frames // 8)
        idx = np.arange(n)
        # MFN of the i-th RAM frame for i < n, vectorised over extents.
        ends = np.cumsum(lens)
        k = np.searchsorted(ends, idx, side="right")
        before = np.where(k > 0, ends[np.maximum(k - 1, 0)], 0)
        mfns = starts[k] + (idx - before)
        a = np.zeros(n, PageTypeEntry.LAYOUT.dtype)
        a["mfn"] = mfns
        v = self.p.vcpus
        types = np.full(n, 7, np.uint8)  # writable
        types[:v] = 4  # one L4 per vCPU
        types[v : v + 2 * v] = 3
        types[3 * v : 3 * v + 8] = 2
        types[3 * v + 8 : 3 * v + 40] = 1
        a["type"] = types
        flags = np.where(types <= 4, 2, 0).astype(np.uint8)  # validated
        flags[:v] |= 1  # L4s pinned
        a["flags"] = flags
        a["type_count"] = np.where(types == 7, 1, 0)
        return a


def cpuid_leaves(leaf_cls: Any) -> np.ndarray:
    a = np.zeros(3, leaf_cls.LAYOUT.dtype)
    a["leaf"] = [0, 1, 7]
    a["subleaf"] = [0xFFFFFFFF, 0xFFFFFFFF, 0]
    a["a"] = [0xD, 0x000A0F11, 0]
    a["b"] = [0x68747541, 0x00020800, 0x219C97A9]
    return a


def msr_entries(msr_cls: Any) -> np.ndarray:
    a = np.zeros(2, msr_cls.LAYOUT.dtype)
    a["idx"] = [0xCE, 0x10A]
    a["val"] = [0, 0x0000_0000_0C00_0000]
    return a
