"""Strategies for whole Live Update hosts: consistent (hostgen plus drawn variations) and wild."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from xenlu.core.epochs import Epoch, epoch_of
from xenlu.core.errors import CallerError
from xenlu.core.framing import REC_LENGTH_MAX
from xenlu.core.registry import LIBXC, LU, Record
from xenlu.testing.strategies._base import (
    Draw,
    EpochArg,
    epoch_draws,
    supported_versions,
)
from xenlu.testing.strategies._records import records, spec_named

# --- whole hosts --------------------------------------------------------------

if TYPE_CHECKING:
    from xenlu.lu.stream import LUDomain, LUStream
    from xenlu.testing.hostgen import DomainVariations, HostPlan, HostVariations, Unknown


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
    """Semantically consistent Live Update hosts (:class:`~xenlu.lu.stream.LUStream`).

    Every host is :func:`xenlu.testing.hostgen.build_host` of a drawn
    :class:`~xenlu.testing.hostgen.HostPlan` (:func:`host_plans`, same options): Xen
    version within ``epoch`` (any epoch when None), 0 … ``max_domains - 1``
    HVM guests beside the PV dom0, memory sizes up to ``max_mem_mib``,
    1 … ``max_vcpus`` vCPUs, fragmentation (0 … 1, when ``fragmentation``),
    FIFO / two-level event channels and grant tables v1 / v2 mixed by drawn
    ratios, a seed — and, when ``variations``, drawn
    :class:`~xenlu.testing.hostgen.HostVariations`: sparse domain ids, a 32-bit PV
    dom0 (SHINFO32), dropped optional records, shuffled record order within
    the §2 rules, bulk records split into several, unknown optional records,
    pending FIFO events, per-domain flags, limits and grant versions, host
    grant defaults. The generator keeps the host consistent: every frame is
    owned once, interdomain channels are reciprocal, grant maps point at
    frames their granting domain owns, P2M frames are owned as §4.7 says.
    ``convertible=True`` draws only hosts that convert losslessly to every
    supported version (LU spec §6, amendment A5).

    >>> from xenlu.lu.stream import decode_lu, encode_lu
    >>> h = hosts("4.11", max_domains=3).example()
    >>> decode_lu(encode_lu(h)) == h
    True
    """
    from xenlu.testing.hostgen import build_host

    return host_plans(
        epoch,
        min_domains=min_domains,
        max_domains=max_domains,
        max_mem_mib=max_mem_mib,
        max_vcpus=max_vcpus,
        fragmentation=fragmentation,
        variations=variations,
        convertible=convertible,
    ).map(build_host)


def host_plans(
    epoch: EpochArg = None,
    *,
    min_domains: int = 1,
    max_domains: int = 6,
    max_mem_mib: int = 4,
    max_vcpus: int = 4,
    fragmentation: bool = True,
    variations: bool = True,
    convertible: bool = False,
) -> SearchStrategy[HostPlan]:
    """The :class:`~xenlu.testing.hostgen.HostPlan` knobs :func:`hosts` draws (same options).

    Only the generator's knobs are drawn here; what a consistent host is, is
    written once, in :mod:`xenlu.testing.hostgen`.

    >>> from xenlu.testing.hostgen import build_host
    >>> build_host(host_plans("4.13", max_domains=2).example()).xen_version in ("4.13", "4.14")
    True
    """
    from xenlu.testing.hostgen import HostPlan

    if not 1 <= min_domains <= max_domains:
        raise CallerError("hosts(): need 1 <= min_domains <= max_domains")
    if max_mem_mib < 1 or max_vcpus < 1:
        raise CallerError("hosts(): max_mem_mib and max_vcpus must be >= 1")
    epochs = epoch_draws(epoch)  # a bad spelling fails here, not at the first draw

    @st.composite
    def plans(draw: Draw) -> HostPlan:
        e = draw(epochs)
        frag = 0.0
        if fragmentation:
            frag = draw(st.sampled_from([0.0, 0.0, 0.05, 0.3, 1.0]) | st.floats(0.0, 1.0))
        plan = HostPlan(
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
        if variations:
            plan = dataclasses.replace(plan, variations=_host_variations(draw, plan, convertible))
        return plan

    return plans()


def _host_variations(draw: Draw, plan: HostPlan, convertible: bool) -> HostVariations:
    """The :class:`~xenlu.testing.hostgen.HostVariations` of one drawn plan."""
    from xenlu.lu.values import DOMID_MAX, XEN_MAX_GRANT_FRAMES, XEN_MAX_MAPTRACK_FRAMES
    from xenlu.testing.hostgen import HostVariations

    n = plan.n_hvm + 1
    domids = None
    if n > 1 and draw(st.booleans()):
        ids = st.lists(st.integers(1, DOMID_MAX), min_size=n - 1, max_size=n - 1, unique=True)
        domids = tuple(sorted(draw(ids)))
    grants: dict[str, Any] = {}
    if draw(st.booleans()):  # §4.2 host grant defaults: 0 = unknown, else what tables need
        any_v2 = any(plan.grant_v2(i) for i in range(n))
        grants = dict(
            gnttab_max_frames=draw(st.sampled_from([0, "need", XEN_MAX_GRANT_FRAMES, 256])),
            gnttab_max_maptrack_frames=draw(st.sampled_from([0, XEN_MAX_MAPTRACK_FRAMES, 4096])),
            # A convertible host keeps 2: the grant_opts an upgrade derives (§6).
            gnttab_max_version=2
            if convertible
            else draw(st.sampled_from([0, 2] if any_v2 else [0, 1, 2])),
        )
    pv32 = draw(st.booleans())
    epoch = epoch_of(*plan.version)
    doms = tuple(_domain_variations(draw, plan, i, epoch, convertible) for i in range(n))
    return HostVariations(
        domids=domids,
        pv32=pv32,
        unknown=_unknown(draw),
        domains=doms,
        convertible=convertible,
        **grants,
    )


def _domain_variations(
    draw: Draw, plan: HostPlan, i: int, epoch: Epoch, convertible: bool
) -> DomainVariations:
    """The :class:`~xenlu.testing.hostgen.DomainVariations` of the plan's ``i``-th domain."""
    from xenlu.lu.values import CdfFlag
    from xenlu.testing.hostgen import (
        DOMAIN_BULK,
        DROPPABLE,
        FREE_CDF,
        ORDER_SLOTS,
        DomainVariations,
    )

    # §4.6 CDF bits no other record depends on (none twice as likely).
    free = [0, 0, *(int(b) for b in CdfFlag if b & FREE_CDF), FREE_CDF]
    knobs: dict[str, Any] = dict(
        running=not draw(st.booleans()),
        ssidref=draw(st.sampled_from([0, 0, 1, 0xFFFFFFFF])),
        cdf_flags=draw(st.sampled_from(free)),
        max_evtchn_port=draw(st.sampled_from([None, "top", "above", "limit"])),
    )
    if epoch < (4, 13):
        big = [] if convertible else ["huge"]  # refused by the i32 of 4.13 (§6)
        knobs["max_grant_frames"] = draw(st.sampled_from(["need", "xen", *big]))
        knobs["max_maptrack_frames"] = draw(st.sampled_from(["need", "xen"]))
    else:
        knobs["max_grant_frames"] = draw(st.sampled_from([None, "need", "xen"]))
        knobs["max_maptrack_frames"] = draw(st.sampled_from([None, "xen"]))
        if not convertible and draw(st.booleans()):
            knobs["iommu_opts"] = 1
    if not convertible:
        knobs["cdf_flags"] |= _later_fields(draw, plan, i, epoch, knobs)
    if plan.fifo(i) and draw(st.booleans()):
        knobs["pending"] = draw(st.integers(0, 2**64 - 1))
    knobs["drop"] = frozenset(draw(st.sets(st.sampled_from(sorted(DROPPABLE)), max_size=3)))
    knobs["split"] = tuple(
        (t, tuple(sorted(draw(st.sets(st.integers(1, 2**16), min_size=1, max_size=3)))))
        for t in DOMAIN_BULK
        if draw(st.integers(0, 3)) == 3  # one in four; 0, the shrink target, splits nothing
    )
    if draw(st.integers(0, 2)):
        slots = st.lists(st.integers(0, 255), min_size=ORDER_SLOTS, max_size=ORDER_SLOTS)
        knobs["order"] = tuple(draw(slots))
    return DomainVariations(unknown=_unknown(draw), **knobs)


def _later_fields(draw: Draw, plan: HostPlan, i: int, epoch: Epoch, knobs: dict[str, Any]) -> int:
    """LU_DOMAIN fields of later epochs away from their conversion default, into
    ``knobs``; returns the CDF bits to add (nested_virt, vpmu)."""
    from xenlu.lu.values import CdfFlag

    cdf = 0
    hvm = plan.hvm(i)
    if epoch >= (4, 15) and hvm and draw(st.booleans()):
        cdf |= CdfFlag.nested_virt
    if epoch >= (4, 16) and draw(st.booleans()):
        cdf |= CdfFlag.vpmu
    if epoch >= (4, 15):
        knobs["vmtrace_size"] = draw(st.sampled_from([0, 0x10000]))
        knobs["misc_flags"] = draw(st.integers(0, 1))
    if epoch >= (4, 16):
        knobs["grant_opts"] = draw(st.integers(2 if plan.grant_v2(i) else 1, 2))
    if epoch >= (4, 17):
        knobs["cpupool_id"] = draw(st.sampled_from([0, 0, 1, 7]))
    if epoch >= (4, 19) and hvm:
        mode = draw(st.integers(0, 3))
        knobs["altp2m_opts"] = mode
        if epoch >= (4, 21):
            knobs["nr_altp2m"] = draw(st.integers(1, 10)) if mode else 0
    return int(cdf)


def _unknown(draw: Draw) -> tuple[Unknown, ...]:
    """Up to two unknown optional records (bit 31), in one section of four."""
    from xenlu.testing.hostgen import Unknown

    n = draw(st.integers(0, 2)) if draw(st.integers(0, 3)) == 3 else 0
    return tuple(
        Unknown(
            draw(st.integers(0, 0x7FFFFFFF)),
            draw(st.binary(max_size=20)),
            draw(st.integers(0, 2**16)),
        )
        for _ in range(n)
    )


def max_port(d: LUDomain) -> int:
    ev = d.evtchns
    return int(ev["port"].max()) if len(ev) else 0


def wild_hosts(epoch: EpochArg = None, *, max_domains: int = 4) -> SearchStrategy[LUStream]:
    """Structurally valid LU streams whose records relate at random.

    Every record comes from :func:`records` and the section grammar of §2 is
    kept (record counts per PV/HVM domain, LU_EVTCHN_ABI before LU_EVTCHNS,
    LU_GRANT_TABLE before LU_GRANT_MAPS, one PV vCPU record of a kind per
    vCPU id, ascending unique domids), but nothing ties records together:
    frames, ports, domids and vCPU ids point anywhere. The decoder accepts
    every such stream; :func:`xenlu.host.validation.validate` must report on it,
    never crash. Use :func:`hosts` for consistent hosts.
    """
    from xenlu.lu.records import BULK_TYPES, T
    from xenlu.lu.stream import VCPU_TYPES, LUDomain, LUStream, X
    from xenlu.lu.values import DOMID_MAX, DomainType

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

    >>> from xenlu.lu.stream import decode_lu
    >>> decode_lu(streams("4.16", max_domains=2).example()).epoch
    (4, 16)
    """
    from xenlu.lu.stream import encode_lu

    limit = st.sampled_from([REC_LENGTH_MAX, REC_LENGTH_MAX, 4096]) | st.integers(32, 512)
    return st.tuples(hosts(epoch, **host_options), limit).map(
        lambda hl: encode_lu(hl[0], max_record_bytes=hl[1])
    )
