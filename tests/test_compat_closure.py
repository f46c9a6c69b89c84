"""Conversions that close (issue 14): "lossless" means reversible.

Every conversion a report calls lossless — upgrade or rollback, between any
two supported versions — is undone by the conversion back: the same stream
(``==``) and the same bytes. Hosts come from :func:`xenlu.testing.strategies.hosts`
(every epoch, with and without ``convertible``) and from ``make_host``;
``tests/test_compat.py`` runs the same property over hosts whose
epoch-specific fields are perturbed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xenlu.core.epochs import EPOCHS, Epoch
from xenlu.core.errors import ConversionError
from xenlu.core.registry import Record
from xenlu.host.compat import convert
from xenlu.lu.records import EVTCHN_LAYOUTS, Bulk, T
from xenlu.lu.stream import LUDomain, LUStream, decode_lu, encode_lu
from xenlu.testing import strategies as S
from xenlu.testing.hostgen import make_host

#: Every epoch, and a version inside one (4.18 is in the 4.17 epoch).
TARGETS: tuple[Epoch, ...] = (*EPOCHS, (4, 18))


def assert_closes(s: LUStream, target: Epoch, allow_loss: bool = False) -> bool:
    """Convert ``s`` to ``target``; when the report says lossless, convert back
    and require the input again. True when the conversion was lossless."""
    try:
        out, rep = convert(s, target, allow_loss=allow_loss)
    except ConversionError:
        assert not allow_loss or target < s.epoch  # only the "never" row refuses then
        return False
    if not rep.lossless:
        return False
    back_in = decode_lu(encode_lu(out))  # what a reader of the target epoch sees
    assert back_in == out
    back, rep2 = convert(back_in, s.version)
    assert rep2.lossless, [str(x) for x in rep2.losses]
    assert back == s, f"{s.xen_version} -> {out.xen_version} -> back differs"
    assert encode_lu(back) == encode_lu(s)
    return True


@given(S.hosts(max_domains=3), st.sampled_from(TARGETS), st.booleans())
def test_strategy_hosts_close(s: LUStream, target: Epoch, allow_loss: bool) -> None:
    assert_closes(s, target, allow_loss)


@settings(max_examples=10)
@given(S.hosts(max_domains=3, convertible=True))
def test_convertible_hosts_close_to_every_version(s: LUStream) -> None:
    for target in TARGETS:
        assert_closes(s, target)


@pytest.mark.parametrize("source", EPOCHS, ids=lambda e: f"{e[0]}.{e[1]}")
@pytest.mark.parametrize("frag", [0.0, 1.0])
def test_make_host_hosts_close_both_ways(source: Epoch, frag: float) -> None:
    s = make_host(source, n_hvm=3, mem_mib=2, dom0_mem_mib=2, fragmentation=frag, seed=3)
    for target in TARGETS:
        # make_host keeps every field at its conversion default: all lossless.
        assert assert_closes(s, target), target


def _with_empty_evtchns(s: LUStream, domid: int) -> LUStream:
    """Domain ``domid`` with an extra count-0 LU_EVTCHNS record (§1: a decoder
    accepts one; spec amendment A2: it is re-encoded as given)."""
    empty = np.zeros(0, EVTCHN_LAYOUTS[s.epoch].LAYOUT.dtype)
    doms = []
    for d in s.domains:
        if d.domid == domid:
            recs = list(d.records)
            at = max(i for i, r in enumerate(recs) if r.type == T.LU_EVTCHNS) + 1
            recs.insert(at, Record(T.LU_EVTCHNS, Bulk(empty)))
            d = LUDomain(recs)
        doms.append(d)
    out = LUStream(s.global_section, doms)
    return decode_lu(encode_lu(out))


@pytest.mark.parametrize("source", [(4, 11), (4, 14), (4, 15), (4, 21)], ids=str)
def test_count_0_evtchns_record_survives_upgrade_and_rollback(source: Epoch) -> None:
    s = _with_empty_evtchns(make_host(source, n_hvm=2, mem_mib=1, dom0_mem_mib=1), 1)
    assert [len(a) for a in s.domain(1).chunks(T.LU_EVTCHNS)][-1] == 0
    for target in TARGETS:
        assert assert_closes(s, target), target
        out, _ = convert(s, target)
        assert [len(a) for a in out.domain(1).chunks(T.LU_EVTCHNS)][-1] == 0


def test_only_a_count_0_evtchns_record_survives() -> None:
    s = make_host((4, 11), n_hvm=1, mem_mib=1, dom0_mem_mib=1)
    d1 = s.domain(1)
    empty = np.zeros(0, EVTCHN_LAYOUTS[s.epoch].LAYOUT.dtype)
    recs = [Record(T.LU_EVTCHNS, Bulk(empty)) if r.type == T.LU_EVTCHNS else r for r in d1.records]
    s = decode_lu(encode_lu(LUStream(s.global_section, [s.domain(0), LUDomain(recs)])))
    up, rep = convert(s, (4, 15))
    assert rep.lossless and T.LU_EVTCHNS in {r.type for r in up.domain(1).records}
    assert assert_closes(s, (4, 21))


def test_grant_limits_close_across_4_13() -> None:
    # Issue 14: host maptrack default 0xFFFFFFFF, domains -1, rolled back to
    # 4.12 losslessly must upgrade again to the same stream.
    s = make_host((4, 19), n_hvm=2, mem_mib=1, dom0_mem_mib=1)
    host = dataclasses.replace(s.host, gnttab_max_maptrack_frames=0xFFFFFFFF)
    s = decode_lu(
        encode_lu(
            LUStream.build(
                s.version,
                host=host,
                reusable_regions=s.reusable_regions,
                xen_pages=s.xen_pages,
                domains=s.domains,
            )
        )
    )
    assert {d.info.max_maptrack_frames for d in s.domains} == {-1}
    for target in [(4, 11), (4, 12)]:
        assert assert_closes(s, target)
