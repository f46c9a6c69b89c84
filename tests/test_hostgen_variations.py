"""hostgen's variations (issue 12): one generator of consistent hosts.

:class:`xenlu.testing.hostgen.HostVariations` carries every change the strategies
used to make to a generated host; :func:`xenlu.testing.strategies.hosts` draws
only hostgen's knobs. The tests check each knob's effect, the refusals,
that the strategies still reach every kind of host (and shrink to the
simplest), and that ``convertible=True`` hosts convert to every version
(LU spec §6, amendment A5).
"""

from __future__ import annotations

import dataclasses
import io

import pytest
from hypothesis import HealthCheck, find, given, settings

from xenlu.core.epochs import EPOCHS
from xenlu.core.errors import CallerError
from xenlu.core.registry import OPTIONAL
from xenlu.host.compat import convert
from xenlu.host.validation import validate
from xenlu.lu.records import LU_STATE_RUNNING, LU_STATE_SHINFO32, T
from xenlu.lu.stream import LUStream, X, decode_lu, encode_lu
from xenlu.testing import strategies as S
from xenlu.testing.hostgen import (
    DomainVariations,
    HostPlan,
    HostVariations,
    Unknown,
    build_host,
    make_host,
    write_host,
)

SMALL = dict(n_hvm=2, mem_mib=1, dom0_mem_mib=1, vcpus=2, fifo_every=1, grant_v2_every=2)


def _clean(host: LUStream) -> None:
    assert decode_lu(encode_lu(host)) == host
    report = validate(host)
    assert not list(report.findings), [str(f) for f in report.findings]


def test_no_variations_is_the_plain_host() -> None:
    plain = encode_lu(make_host("4.15", **SMALL))
    assert encode_lu(make_host("4.15", **SMALL, variations=HostVariations())) == plain
    assert encode_lu(build_host(HostPlan("4.15", **SMALL))) == plain


def test_every_knob_takes_effect_and_the_host_stays_consistent() -> None:
    guest = DomainVariations(
        running=False,
        ssidref=7,
        cdf_flags=1 << 3,
        max_evtchn_port="above",
        max_grant_frames="need",
        max_maptrack_frames="xen",
        vmtrace_size=0x10000,
        pending=0b101,
        drop=frozenset({X.X86_TSC_INFO}),
        split=((T.LU_P2M, (1,)), (T.LU_EVTCHNS, (2, 3))),
        order=tuple(range(16, 0, -1)),
        unknown=(Unknown(0x1234, b"abc", 1),),
    )
    v = HostVariations(
        domids=(9, 0x7FEF),
        pv32=True,
        gnttab_max_frames="need",
        gnttab_max_maptrack_frames=4096,
        gnttab_max_version=2,
        unknown=(Unknown(5, b"", 0),),
        domains=(DomainVariations(), guest),
    )
    host = make_host("4.15", **SMALL, variations=v)
    _clean(host)
    assert [d.domid for d in host.domains] == [0, 9, 0x7FEF]
    assert host.host.gnttab_max_frames == 8 and host.host.gnttab_max_maptrack_frames == 4096
    assert host.global_section.records[1].type == OPTIONAL | 5
    dom0, g = host.domains[0], host.domains[1]
    assert dom0.info.lu_state & LU_STATE_SHINFO32 and dom0.one(X.X86_PV_INFO).guest_width == 4
    assert not g.info.lu_state & LU_STATE_RUNNING and g.info.ssidref == 7
    assert g.info.max_grant_frames == 4 and g.info.max_maptrack_frames == 1024
    assert g.info.vmtrace_size == 0x10000
    assert g.info.max_evtchn_port == int(g.evtchns["port"].max()) + 1
    assert list(g.evtchns["flags"][:4]) == [1, 0, 1, 0]
    assert not g.of_type(X.X86_TSC_INFO)
    assert len(g.chunks(T.LU_P2M)) == 2 and len(g.chunks(T.LU_EVTCHNS)) == 3
    assert any(r.type == OPTIONAL | 0x1234 for r in g.records)
    # Reverse keys: the records came out in another order, §2's pairs still in order.
    types = [r.type for r in g.records]
    assert types.index(T.LU_EVTCHN_ABI) < types.index(T.LU_EVTCHNS)
    assert types.index(T.LU_GRANT_TABLE) < types.index(T.LU_GRANT_MAPS)
    plain = make_host("4.15", **SMALL).domains[1]
    assert [t for t in types if t & OPTIONAL == 0] != [
        r.type for r in plain.records if r.type != X.X86_TSC_INFO
    ]


def test_write_host_writes_the_varied_host() -> None:
    v = HostVariations(domids=(3, 4), domains=(DomainVariations(split=((T.LU_PAGE_TYPES, (5,)),)),))
    buf = io.BytesIO()
    write_host(buf, "4.13", **SMALL, variations=v)
    assert buf.getvalue() == encode_lu(make_host("4.13", **SMALL, variations=v))


@pytest.mark.parametrize(
    ("version", "v"),
    [
        ("4.15", HostVariations(domids=(1,))),  # two guests, one id
        ("4.15", HostVariations(domids=(5, 2))),  # not ascending
        ("4.15", HostVariations(gnttab_max_frames=2)),  # below the largest table
        ("4.15", HostVariations(gnttab_max_version=1)),  # a v2 table exists
        ("4.15", HostVariations(domains=(DomainVariations(max_grant_frames="huge"),))),
        ("4.11", HostVariations(domains=(DomainVariations(vmtrace_size=1),))),
        ("4.11", HostVariations(domains=(DomainVariations(cdf_flags=1 << 7),))),
        ("4.15", HostVariations(domains=(DomainVariations(drop=frozenset({T.LU_P2M})),))),
        ("4.15", HostVariations(domains=(DomainVariations(),) * 4)),
        ("4.15", HostVariations(convertible=True, domains=(DomainVariations(iommu_opts=1),))),
        ("4.15", HostVariations(convertible=True, gnttab_max_version=0)),
    ],
)
def test_inconsistent_knobs_are_refused(version: str, v: HostVariations) -> None:
    with pytest.raises(CallerError):
        make_host(version, **SMALL, variations=v)


# --- the strategies keep their reach ------------------------------------------------

REACH = {
    "sparse domids": lambda h: any(d.domid > len(h.domains) for d in h.domains),
    "32-bit PV dom0": lambda h: bool(h.domains[0].info.lu_state & LU_STATE_SHINFO32),
    "split bulk record": lambda h: any(
        len(d.chunks(t)) > 1 for d in h.domains for t in (T.LU_PAGE_OWNERSHIP, T.LU_EVTCHNS)
    ),
    "unknown record": lambda h: any(r.type & OPTIONAL for s in h.sections for r in s.records),
    "pending FIFO event": lambda h: any(d.evtchns["flags"].any() for d in h.domains),
    "dropped record": lambda h: not h.domains[0].of_type(X.X86_MSR_POLICY),
    "grant limit 0xFFFFFFFF": lambda h: any(
        d.info.max_grant_frames == 0xFFFFFFFF for d in h.domains
    ),
    "nested_virt": lambda h: any(d.info.cdf_flags & (1 << 6) for d in h.domains),
    "host grant default": lambda h: h.host.gnttab_max_frames == 256,
    "GRANT_MAPS before EVTCHN_ABI": lambda h: any(
        [r.type for r in d.records].index(T.LU_GRANT_MAPS)
        < [r.type for r in d.records].index(T.LU_EVTCHN_ABI)
        for d in h.domains
        if d.of_type(T.LU_GRANT_MAPS)
    ),
}


_SEEN: set[str] = set()


@settings(
    max_examples=300, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
@given(S.hosts(max_domains=3, max_mem_mib=1, max_vcpus=2))
def _draw_kinds(host: LUStream) -> None:
    _SEEN.update(kind for kind, seen in REACH.items() if seen(host))


def test_strategies_still_reach_every_kind_of_host() -> None:
    _SEEN.clear()
    _draw_kinds()
    assert sorted(_SEEN) == sorted(REACH)


def test_strategies_still_shrink_to_the_simplest_host() -> None:
    found = find(
        S.hosts(max_domains=2, max_mem_mib=1, max_vcpus=1),
        REACH["32-bit PV dom0"],
        settings=settings(max_examples=500, database=None, suppress_health_check=list(HealthCheck)),
    )
    # No guest, nothing else varied: dom0's records as built, none split or added.
    assert len(found.domains) == 1
    plain = make_host(found.version, n_hvm=0, mem_mib=1, dom0_mem_mib=1, vcpus=1)
    assert [r.type for r in found.domains[0].records] == [r.type for r in plain.domains[0].records]
    assert [r.type for r in found.global_section.records] == [
        r.type for r in plain.global_section.records
    ]


# --- convertible=True: every conversion succeeds (A5) -------------------------------


@settings(max_examples=40, deadline=None)
@given(S.hosts(max_domains=3, max_mem_mib=2, convertible=True))
def test_convertible_hosts_convert_to_every_version(host: LUStream) -> None:
    for target in (*EPOCHS, (4, 18)):
        out, report = convert(host, target)  # a refusal (ConversionError) fails the test
        assert report.lossless, [str(x) for x in report.losses]
        back, report2 = convert(decode_lu(encode_lu(out)), host.version)
        assert report2.lossless and back == host
        assert encode_lu(back) == encode_lu(host)


def test_convertible_writes_an_effective_explicit_limit_as_minus_one() -> None:
    """A5: from 4.13 an explicit grant limit equal to the effective host default
    rolls back to −1, which 4.12 cannot tell apart: a convertible host writes −1."""
    xen = DomainVariations(max_grant_frames="xen", max_maptrack_frames="xen")
    v = HostVariations(domains=(xen, xen, xen))
    loose = make_host("4.15", **SMALL, variations=v)
    assert {d.info.max_grant_frames for d in loose.domains} == {64}
    tight = make_host("4.15", **SMALL, variations=dataclasses.replace(v, convertible=True))
    assert {d.info.max_grant_frames for d in tight.domains} == {-1}
    assert {d.info.max_maptrack_frames for d in tight.domains} == {-1}
    for target in EPOCHS:
        assert convert(tight, target)[1].lossless


def test_hostgen_docstring_examples() -> None:
    import doctest

    import xenlu.testing._hostgen_vary
    import xenlu.testing.hostgen

    for module in (xenlu.testing.hostgen, xenlu.testing._hostgen_vary):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0
    assert doctest.testmod(xenlu.testing.hostgen).attempted >= 5
