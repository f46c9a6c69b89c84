"""The restore planner (LU spec §6): passes, parallel groups, cross-domain
edges with their passes, the binding side of interdomain pairs, the critical
path and determinism."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_validate import (
    _chan_append,
    append,
    edit,
    free_gfn,
    next_port,
    set_bulk,
)
from xenlu.cli.app import main
from xenlu.host.restore_plan import EDGE_KINDS, PASSES, Edge, Plan, plan
from xenlu.host.validation import validate
from xenlu.lu.records import ECS_INTERDOMAIN, T
from xenlu.lu.stream import LUStream, encode_lu
from xenlu.testing.hostgen import make_host


@pytest.fixture(scope="module")
def base() -> LUStream:
    """dom0 PV backend, dom1 and dom2 HVM; dom1 maps one grant of dom2 via its P2M."""
    return make_host((4, 16), n_hvm=2, mem_mib=2, dom0_mem_mib=2, vcpus=2)


def edge_set(p: Plan) -> set[tuple[str, int, int, int, int, int]]:
    return {(e.kind, e.src, e.dst, e.pass_, e.depends_on_pass, e.count) for e in p.edges}


def test_passes_groups_and_edges_of_a_known_host(base: LUStream) -> None:
    p = plan(base)
    assert [x.number for x in p.passes] == [0, 1, 2, 3]
    assert [x.what for x in p.passes] == list(PASSES.values())
    # every domain works in passes 0-2, as one parallel group; only binders in pass 3
    assert [x.groups for x in p.passes] == [[[0, 1, 2]], [[0, 1, 2]], [[0, 1, 2]], [[0]]]
    assert edge_set(p) == {
        # dom0 (the backend) maps two grants of each guest; dom1 one of dom2
        ("grant_map", 0, 1, 2, 1, 2),
        ("grant_map", 0, 2, 2, 1, 2),
        ("grant_map", 1, 2, 2, 1, 1),
        # dom1's P2M grant_map page: a frame of dom2
        ("p2m_grant", 1, 2, 2, 1, 1),
        # both guests' device model runs in dom0
        ("ioreq", 1, 0, 2, 0, 1),
        ("ioreq", 2, 0, 2, 0, 1),
        # xenstore and console pairs, bound by dom0 (the lower domid)
        ("evtchn_pair", 0, 1, 3, 2, 2),
        ("evtchn_pair", 0, 2, 3, 2, 2),
    }
    # an edge sits in the pass of its work
    for x in p.passes:
        assert all(e.pass_ == x.number for e in x.edges)
    assert p.parallel_ok and p.violations == [] and p.unresolved == {}


def test_every_edge_points_to_an_earlier_pass() -> None:
    for kind, (work, dep) in EDGE_KINDS.items():
        assert dep < work, kind
    assert plan(make_host((4, 21), n_hvm=3, mem_mib=2, fragmentation=0.5)).parallel_ok


def test_a_same_pass_edge_is_flagged(base: LUStream, monkeypatch: pytest.MonkeyPatch) -> None:
    import xenlu.host.restore_plan as P

    monkeypatch.setitem(P.EDGE_KINDS, "ioreq", (2, 2))  # a pass table that breaks parallelism
    p = plan(base)
    assert not p.parallel_ok
    assert {(e.kind, e.src, e.dst) for e in p.violations} == {("ioreq", 1, 0), ("ioreq", 2, 0)}
    assert p.to_json()["parallel_ok"] is False and "VIOLATION" in p.summary()


def test_interdomain_pair_is_bound_by_the_lower_domid_port(base: LUStream) -> None:
    # dom1 port P1 <-> dom2 port P2 with P2 < P1: dom1 binds (domid first).
    d1, d2 = base.domain(1), base.domain(2)
    p1, p2 = next_port(d1) + 50, next_port(d2)
    s, _ = _chan_append(
        base, d1, {"port": p1, "state": ECS_INTERDOMAIN, "remote_domid": 2, "detail": p2}
    )
    s, _ = _chan_append(
        s, s.domain(2), {"port": p2, "state": ECS_INTERDOMAIN, "remote_domid": 1, "detail": p1}
    )
    # a loopback pair inside dom2: bound once, by its lower port; no cross-domain edge
    q = p2 + 1
    s, _ = _chan_append(
        s, s.domain(2), {"port": q, "state": ECS_INTERDOMAIN, "remote_domid": 2, "detail": q + 1}
    )
    s, _ = _chan_append(
        s, s.domain(2), {"port": q + 1, "state": ECS_INTERDOMAIN, "remote_domid": 2, "detail": q}
    )
    assert validate(s).ok
    p = plan(s)
    pairs = {(e.src, e.dst, e.count) for e in p.passes[3].edges}
    assert pairs == {(0, 1, 2), (0, 2, 2), (1, 2, 1)}
    assert p.passes[3].groups == [[0, 1, 2]]
    base_work = plan(base).passes[3].work
    assert p.passes[3].work == base_work + 2  # dom1's bind and dom2's loopback bind


def test_foreign_and_unresolved_references(base: LUStream) -> None:
    d1 = base.domain(1)
    frame = int(base.domain(0).ownership["start_mfn"][0])
    p2m = append(d1.p2m, gfn=free_gfn(d1), mfn=frame, nr_pages=4, p2m_type=14, access=7)
    s = set_bulk(base, 1, T.LU_P2M, p2m)
    p = plan(s)
    assert ("p2m_foreign", 1, 0, 2, 1, 1) in edge_set(p)
    # a grant map to a missing domain and a one-sided channel: no edge, counted
    gm = base.domain(0).grant_maps
    s = set_bulk(s, 0, T.LU_GRANT_MAPS, edit(gm, 0, granting_domid=0x7000))
    ev = base.domain(1).evtchns
    i = int(np.flatnonzero(ev["state"] == ECS_INTERDOMAIN)[0])
    s = set_bulk(s, 1, T.LU_EVTCHNS, edit(ev, i, detail=1))
    p = plan(s)
    assert p.unresolved == {"grant_map": 1, "evtchn_pair": 2}
    assert ("grant_map", 0, 1, 2, 1, 1) in edge_set(p)  # one of dom0's two maps of dom1 left
    assert ("evtchn_pair", 0, 1, 3, 2, 1) in edge_set(p)
    assert "unresolved grant_map: 1" in p.summary()


def test_edges_are_aggregated_with_counts() -> None:
    host = make_host((4, 21), n_hvm=2, mem_mib=2, fragmentation=1.0, seed=4)
    d0 = host.domain(0)
    gm = d0.grant_maps
    extra = np.repeat(gm[:1], 5000)
    extra["handle"] = np.arange(len(gm), len(gm) + 5000)
    s = set_bulk(host, 0, T.LU_GRANT_MAPS, np.concatenate((gm, extra)))
    p = plan(s)
    maps = [e for e in p.edges if e.kind == "grant_map" and e.src == 0 and e.dst == 1]
    assert len(maps) == 1 and maps[0].count == 5002


def test_critical_path_cost_model(base: LUStream) -> None:
    p = plan(base)
    d0, d1, d2 = (base.domain(i) for i in (0, 1, 2))
    # pass 1: ownership extents + grant and status frames
    w1 = {
        d.domid: len(d.ownership)
        + d.grant_table.nr_grant_frames  # type: ignore[union-attr]
        + d.grant_table.nr_status_frames  # type: ignore[union-attr]
        for d in (d0, d1, d2)
    }
    assert p.passes[1].cost == max(w1.values()) and p.passes[1].work == sum(w1.values())
    assert p.passes[1].critical_domid == max(w1, key=lambda k: (w1[k], -k))
    # pass 0: 1 + max_vcpus + non-foreign P2M extents
    w0 = {d.domid: 1 + d.info.max_vcpus + int((d.p2m["p2m_type"] != 7).sum()) for d in (d0, d1, d2)}
    assert p.passes[0].work == sum(w0.values())
    assert p.critical_path == sum(x.cost for x in p.passes)
    cp = p.to_json()["critical_path"]
    assert cp["length"] == p.critical_path and cp["serial"] == p.serial
    assert cp["speedup"] == round(p.serial / p.critical_path, 3)
    assert [x["pass"] for x in cp["per_pass"]] == [0, 1, 2, 3]


def test_json_shape(base: LUStream) -> None:
    data = plan(base).to_json()
    json.dumps(data)
    assert set(data) >= {"passes", "critical_path"}
    for x in data["passes"]:
        assert set(x) >= {"pass", "groups", "edges"}
        for e in x["edges"]:
            assert set(e) == {"kind", "from", "to", "pass", "depends_on_pass", "count"}


def test_same_input_same_plan(base: LUStream) -> None:
    assert plan(base).dumps() == plan(base).dumps()
    for seed in range(3):
        doms = list(base.domains)
        random.Random(seed).shuffle(doms)
        assert plan(LUStream(base.global_section, doms)).dumps() == plan(base).dumps()


@settings(max_examples=15)
@given(
    st.sampled_from([(4, 11), (4, 14), (4, 15), (4, 17), (4, 21)]),
    st.integers(0, 3),
    st.sampled_from([0.0, 0.3, 1.0]),
    st.integers(0, 1000),
)
def test_property_plans_of_random_hosts(
    version: tuple[int, int], n_hvm: int, frag: float, seed: int
) -> None:
    host = make_host(version, n_hvm=n_hvm, mem_mib=2, fragmentation=frag, seed=seed)
    p = plan(host)
    assert p.parallel_ok and p.unresolved == {}
    assert all(e.depends_on_pass < e.pass_ and e.src != e.dst for e in p.edges)
    ids = sorted(d.domid for d in host.domains)
    assert p.passes[0].groups == [ids]
    # every interdomain pair is bound exactly once: dom0 binds 2 per guest
    pairs = sum(e.count for e in p.passes[3].edges)
    assert pairs == 2 * n_hvm
    doms = list(reversed(host.domains))
    assert plan(LUStream(host.global_section, doms)).to_json() == p.to_json()


def test_cli_plan(base: LUStream, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "host.lu"
    f.write_bytes(encode_lu(base))
    assert main(["plan", str(f)]) == 0
    out = capsys.readouterr().out
    assert "pass 3" in out and "evtchn_pair: dom0 -> dom1 x2" in out and "critical path" in out
    assert main(["plan", "--json", str(f)]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert [x["pass"] for x in data["passes"]] == [0, 1, 2, 3]
    assert data["passes"][2]["groups"] == [[0, 1, 2]]
    bad = tmp_path / "bad.lu"
    bad.write_bytes(f.read_bytes()[:100])
    assert main(["plan", str(bad)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_edge_str() -> None:
    e = Edge("grant_map", 0, 1, 2, 1, 3)
    assert str(e) == "grant_map: dom0 -> dom1 x3 (pass 2 needs pass 1)"
