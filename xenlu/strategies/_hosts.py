"""Strategies for whole Live Update hosts: consistent (hostgen plus drawn variations) and wild."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from xenlu.epochs import Epoch
from xenlu.errors import CallerError
from xenlu.framing import REC_LENGTH_MAX
from xenlu.registry import LIBXC, LU, OPTIONAL, Record, UnknownRecord
from xenlu.strategies._base import (
    Draw,
    EpochArg,
    epoch_draws,
    supported_versions,
)
from xenlu.strategies._records import records, spec_named

# --- whole hosts --------------------------------------------------------------

if TYPE_CHECKING:
    from xenlu.lu_stream import LUDomain, LUStream


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
) -> SearchStrategy[LUStream]:
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
    epochs = epoch_draws(epoch)  # a bad spelling fails here, not at the first draw

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
    def build(draw: Draw) -> LUStream:
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
    from xenlu.lu_stream import LUStream

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
    hinfo = _vary_host_grants(draw, host, convertible)
    pv32 = draw(st.booleans()) if doms else False
    for d in doms:
        _vary_domain(draw, d, host.epoch, hinfo, pv32=pv32, convertible=convertible)
    host.global_section.records = _with_optional(draw, host.global_section.records, after=1)
    return LUStream(host.global_section, host.domains)


def _vary_host_grants(draw: Draw, host: Any, convertible: bool) -> Any:
    """2. Host grant defaults: 0 = unknown, else at least what every table needs (§4.2)."""
    from xenlu.lu_records import T
    from xenlu.lu_values import XEN_MAX_GRANT_FRAMES, XEN_MAX_MAPTRACK_FRAMES, GrantVersion

    hinfo = host.host
    doms = host.domains
    if not draw(st.booleans()):
        return hinfo
    v2 = GrantVersion.v2
    any_v2 = any(d.grant_table is not None and d.grant_table.version == v2 for d in doms)
    need = max((d.grant_table.nr_grant_frames for d in doms if d.grant_table), default=1)
    maxver = draw(st.sampled_from([0, 2] if any_v2 else [0, 1, 2]))
    if convertible:
        maxver = int(v2)  # the derived grant_opts of an upgrade must equal hostgen's 2
    hinfo = dataclasses.replace(
        hinfo,
        gnttab_max_frames=draw(st.sampled_from([0, need, XEN_MAX_GRANT_FRAMES, 256])),
        gnttab_max_maptrack_frames=draw(st.sampled_from([0, XEN_MAX_MAPTRACK_FRAMES, 4096])),
        gnttab_max_version=maxver,
    )
    host.global_section.records = [
        Record(r.type, hinfo) if r.type == T.LU_HOST_INFO else r
        for r in host.global_section.records
    ]
    return hinfo


def _is_fifo(d: Any) -> bool:
    from xenlu.lu_values import EvtchnAbiKind

    return d.evtchn_abi is not None and d.evtchn_abi.abi == EvtchnAbiKind.fifo


def _vary_domain(
    draw: Draw, d: Any, epoch: Epoch, hinfo: Any, *, pv32: bool, convertible: bool
) -> None:
    """Steps 3-8 of :func:`_vary` for one domain."""
    from xenlu.lu_records import Bulk, T
    from xenlu.lu_stream import X
    from xenlu.lu_values import EVTCHN_PORTS_2L_32, LU_STATE_SHINFO32, PageType

    fields: dict[str, Any] = {}
    # 3. A 32-bit PV dom0: guest_width 4, 3-level page tables, SHINFO32 (§4.12).
    if not d.is_hvm and pv32 and max_port(d) < EVTCHN_PORTS_2L_32:
        fields["lu_state"] = d.info.lu_state | LU_STATE_SHINFO32
        _replace_record(
            d, X.X86_PV_INFO, lambda v: dataclasses.replace(v, guest_width=4, pt_levels=3)
        )
        pt = d.page_types.copy()
        pt["type"] = np.where(pt["type"] == PageType.l4, PageType.l3, pt["type"])
        _replace_record(d, T.LU_PAGE_TYPES, _const(Bulk(pt)))
    # 4. Per-domain flags and limits that no other record depends on.
    _vary_domain_fields(draw, d, epoch, hinfo, fields, convertible)
    d.records[0] = Record(T.LU_DOMAIN, dataclasses.replace(d.info, **fields))
    # 5. Pending FIFO events (the pending flag is FIFO only, §4.13).
    if _is_fifo(d) and draw(st.booleans()):
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


def _vary_domain_fields(
    draw: Draw, d: Any, epoch: Epoch, hinfo: Any, fields: dict[str, Any], convertible: bool
) -> None:
    """4. LU_DOMAIN flags and limits no other record depends on, into ``fields``."""
    from xenlu.lu_values import (
        EVTCHN_PORTS_2L,
        EVTCHN_PORTS_2L_32,
        EVTCHN_PORTS_FIFO,
        LU_STATE_RUNNING,
        LU_STATE_SHINFO32,
        CdfFlag,
    )

    info = d.info
    st_bits = fields.get("lu_state", info.lu_state)
    if draw(st.booleans()):
        st_bits &= ~LU_STATE_RUNNING
    fields["lu_state"] = st_bits
    fields["ssidref"] = draw(st.sampled_from([0, 0, 1, 0xFFFFFFFF]))
    # The bits no other record depends on: s3_integrity, oos_off, xs_domain.
    s3, oos, xs = CdfFlag.s3_integrity, CdfFlag.oos_off, CdfFlag.xs_domain
    bits = [0, 0, int(s3), int(oos), int(xs), int(s3 | oos | xs)]
    cdf = info.cdf_flags | draw(st.sampled_from(bits))
    top = max_port(d)
    if fields["lu_state"] & LU_STATE_SHINFO32:
        limit = EVTCHN_PORTS_2L_32
    else:
        limit = EVTCHN_PORTS_FIFO if _is_fifo(d) else EVTCHN_PORTS_2L
    fields["max_evtchn_port"] = draw(
        st.sampled_from(sorted({top, min(top + 1, limit - 1), limit - 1, info.max_evtchn_port}))
    )
    _vary_grant_limits(draw, d, epoch, hinfo, fields, convertible)
    if not convertible:
        cdf |= _vary_new_fields(draw, d, epoch, fields)
    fields["cdf_flags"] = cdf


def _vary_grant_limits(
    draw: Draw, d: Any, epoch: Epoch, hinfo: Any, fields: dict[str, Any], convertible: bool
) -> None:
    """LU_DOMAIN max_grant_frames / max_maptrack_frames (and iommu_opts) (§4.6, §6)."""
    from xenlu.lu_host_records import host_grant_limits
    from xenlu.lu_values import MAPTRACK_PER_FRAME, XEN_MAX_GRANT_FRAMES, XEN_MAX_MAPTRACK_FRAMES

    gt = d.grant_table
    nframes = gt.nr_grant_frames if gt is not None else 0
    nmaps = len(d.grant_maps)
    if epoch < (4, 13):
        big = [] if convertible else [0xFFFFFFFF]  # refused by the i32 of 4.13 (§6)
        fields["max_grant_frames"] = draw(
            st.sampled_from([max(nframes, 1), XEN_MAX_GRANT_FRAMES, *big])
        )
        fields["max_maptrack_frames"] = draw(
            st.sampled_from([max(-(-nmaps // MAPTRACK_PER_FRAME), 1), XEN_MAX_MAPTRACK_FRAMES])
        )
        return
    host_frames, host_maps = host_grant_limits(hinfo)
    fields["max_grant_frames"] = draw(
        st.sampled_from(
            [-1, max(nframes, 1), XEN_MAX_GRANT_FRAMES] if host_frames >= nframes else [nframes]
        )
    )
    fields["max_maptrack_frames"] = draw(
        st.sampled_from(
            [-1, XEN_MAX_MAPTRACK_FRAMES]
            if host_maps * MAPTRACK_PER_FRAME > nmaps
            else [XEN_MAX_MAPTRACK_FRAMES]
        )
    )
    if not convertible and draw(st.booleans()):
        fields["iommu_opts"] = 1


def _vary_new_fields(draw: Draw, d: Any, epoch: Epoch, fields: dict[str, Any]) -> int:
    """LU_DOMAIN fields of later epochs set away from their conversion default;
    returns the cdf_flags bits to add."""
    from xenlu.lu_values import CdfFlag

    cdf = 0
    hvm = d.is_hvm
    if epoch >= (4, 15) and hvm and draw(st.booleans()):
        cdf |= CdfFlag.nested_virt
    if epoch >= (4, 16) and draw(st.booleans()):
        cdf |= CdfFlag.vpmu
    if epoch >= (4, 15):
        fields["vmtrace_size"] = draw(st.sampled_from([0, 0x10000]))
        fields["misc_flags"] = draw(st.integers(0, 1))
    if epoch >= (4, 16):
        gt = d.grant_table
        need = gt.version if gt is not None else 1
        fields["grant_opts"] = draw(st.integers(need, 2))
    if epoch >= (4, 17):
        fields["cpupool_id"] = draw(st.sampled_from([0, 0, 1, 7]))
    if epoch >= (4, 19) and hvm:
        mode = draw(st.integers(0, 3))
        fields["altp2m_opts"] = mode
        if epoch >= (4, 21):
            fields["nr_altp2m"] = draw(st.integers(1, 10)) if mode else 0
    return int(cdf)


def max_port(d: LUDomain) -> int:
    ev = d.evtchns
    return int(ev["port"].max()) if len(ev) else 0


def _renumber(host: Any, new: dict[int, int]) -> None:
    from xenlu.lu_io_records import IoreqServer, IoreqServers
    from xenlu.lu_records import Bulk, T

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


def wild_hosts(epoch: EpochArg = None, *, max_domains: int = 4) -> SearchStrategy[LUStream]:
    """Structurally valid LU streams whose records relate at random.

    Every record comes from :func:`records` and the section grammar of §2 is
    kept (record counts per PV/HVM domain, LU_EVTCHN_ABI before LU_EVTCHNS,
    LU_GRANT_TABLE before LU_GRANT_MAPS, one PV vCPU record of a kind per
    vCPU id, ascending unique domids), but nothing ties records together:
    frames, ports, domids and vCPU ids point anywhere. The decoder accepts
    every such stream; :func:`xenlu.validate.validate` must report on it,
    never crash. Use :func:`hosts` for consistent hosts.
    """
    from xenlu.lu_records import BULK_TYPES, T
    from xenlu.lu_stream import VCPU_TYPES, LUDomain, LUStream, X
    from xenlu.lu_values import DOMID_MAX, DomainType

    epochs = epoch_draws(epoch)  # a bad spelling fails here, not at the first draw

    @st.composite
    def build(draw: Draw) -> LUStream:
        e = draw(epochs)
        version = draw(st.sampled_from(supported_versions(e)))

        def rec(name: str) -> Any:
            return draw(records(name, e))

        host = rec("LU_HOST_INFO")
        domids = draw(st.lists(st.integers(0, DOMID_MAX), max_size=max_domains, unique=True))
        domains = []
        for domid in sorted(domids):
            info = dataclasses.replace(rec("LU_DOMAIN"), domid=domid)
            hvm = info.domain_type == DomainType.x86_hvm
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
                    spec = spec_named(name, None)
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
