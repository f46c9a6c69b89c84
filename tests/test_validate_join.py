"""The owner index's forms against a brute force over frames (issue 14).

The per-domain form (each domain's frames sorted, P2M frames merged with
them), the packed form and the general form must answer every ownership
question exactly as a frame-by-frame reference does, on random small hosts
with overlapping extents, holes, foreign mappings and frames at the u64
extremes; and :func:`validate` and :func:`plan` must give the same report
and plan whichever form is taken.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xenlu.host.validation._index as index
from tests.test_validate import set_bulk, set_host
from xenlu.host.restore_plan import plan
from xenlu.host.validation import Host, owner_index, validate
from xenlu.host.validation._arrays import AMBIG, NONE
from xenlu.host.validation._index import range_foreign, range_owner
from xenlu.lu.records import P2mType, T
from xenlu.lu.stream import LUStream
from xenlu.testing.hostgen import make_host

TOP = (1 << 64) - 1
# frames near every boundary the index has: small, 2**32 (the u32 lists),
# 2**49 (the packed key), 2**60 and the top of the u64 range
EXTREME = [1 << 32, (1 << 32) - 1, (1 << 32) - 2, 1 << 49, 1 << 60, (1 << 60) + 1, TOP - 1, TOP]
P2M_TYPES = [
    int(P2mType.ram_rw),
    int(P2mType.ram_rw),
    int(P2mType.map_foreign),
    int(P2mType.grant_map_rw),
    int(P2mType.ram_shared),
    int(P2mType.ram_paging_in),
]

BASE = make_host((4, 16), n_hvm=2, mem_mib=1, dom0_mem_mib=1, fragmentation=1.0, seed=5)
DOMIDS = [d.domid for d in BASE.domains]


@st.composite
def hosts(draw: st.DrawFn) -> LUStream:
    """BASE with every domain's ownership and P2M replaced by random rows:
    either a fragmented host (distinct one-frame extents below 2**32, the
    per-domain form) or extents of any length anywhere, overlapping."""
    fragmented = draw(st.booleans())
    frame = st.one_of(st.integers(0, 48), st.sampled_from(EXTREME))
    s = set_host(BASE, max_page=TOP)
    if fragmented:
        pool = draw(st.lists(st.integers(0, 64), min_size=2, max_size=40, unique=True))
        cut = sorted(draw(st.lists(st.integers(0, len(pool)), min_size=2, max_size=2)))
        owned = [pool[: cut[0]], pool[cut[0] : cut[1]], pool[cut[1] :]]
    for k, domid in enumerate(DOMIDS):
        d = s.domain(domid)
        if fragmented:
            rows = [(f, 1) for f in owned[k]]
        else:
            rows = draw(st.lists(st.tuples(frame, st.sampled_from([0, 1, 1, 2, 3, 7])), max_size=8))
        own = np.zeros(len(rows), d.ownership.dtype)
        own["start_mfn"] = [r[0] for r in rows]
        own["nr_pages"] = [r[1] for r in rows]
        s = set_bulk(s, domid, T.LU_PAGE_OWNERSHIP, own)
        maps = draw(
            st.lists(
                st.tuples(frame, st.sampled_from([1, 1, 1, 2, 5]), st.sampled_from(P2M_TYPES)),
                max_size=10,
            )
        )
        p2m = np.zeros(len(maps), d.p2m.dtype)
        p2m["gfn"] = np.arange(len(maps)) * 16
        p2m["mfn"] = [m[0] for m in maps]
        p2m["nr_pages"] = [m[1] for m in maps]
        p2m["p2m_type"] = [m[2] for m in maps]
        s = set_bulk(s, domid, T.LU_P2M, p2m)
    return s


def claims(s: LUStream) -> dict[int, list[tuple[int, int]]]:
    """The reference: frame -> [(row, domain index)] for every owned frame,
    extent by extent (the last frame saturates at 2**64 - 1)."""
    h = Host(s)
    out: dict[int, list[tuple[int, int]]] = {}
    for row in range(h.own.n):
        d = int(h.own.dom_of(np.array([row]))[0])
        e = row - int(h.own.offs[d])
        start = int(h.own.parts[d]["start_mfn"][e])
        nr = int(h.own.parts[d]["nr_pages"][e])
        for f in range(start, min(start + nr - 1, TOP) + 1):
            out.setdefault(f, []).append((row, d))
    return out


def ref_dom(c: dict[int, list[tuple[int, int]]], f: int) -> int:
    who = c.get(f, [])
    return NONE if not who else who[0][1] if len(who) == 1 else AMBIG


@contextmanager
def form(name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Force one form of the index: "auto", "packed" or "general"."""
    with monkeypatch.context() as m:
        if name in ("packed", "general"):
            m.setattr(index, "per_domain", lambda own, nd, ex, watch=None: None)
        if name == "general":
            m.setattr(index, "packed_single", lambda own, nd: None)
        yield


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hosts())
def test_index_forms_match_brute_force(s: LUStream) -> None:
    c = claims(s)
    h = Host(s)
    queries = sorted({q for f in c for q in (f, max(f - 1, 0), min(f + 1, TOP))} | set(EXTREME))
    qa = np.array(queries, np.uint64)
    want = np.array([ref_dom(c, q) for q in queries], np.int64)
    dup_ref = sorted({r for who in c.values() if len(who) > 1 for r, _ in who})
    p2m_d = h.p2m.dom_of(np.arange(h.p2m.n))
    m = h.p2m.col("mfn", np.uint64)
    last = np.array(
        [min(int(a) + int(n) - 1, TOP) for a, n in zip(m, h.p2m.col("nr_pages"), strict=True)],
        np.uint64,
    )
    mp = pytest.MonkeyPatch()
    results = []
    for name in ("auto", "packed", "general", "lazy"):
        with form(name, mp):
            idx = owner_index(h, lazy=name == "lazy")
            assert (idx.dom_at(qa) == want).all(), name
            if name == "lazy":
                continue
            assert sorted(idx.dup_rows.tolist()) == dup_ref
            for d in range(h.nd):
                ob = idx.owned_by(d, qa)
                # True only for a claimant; always True for the only claimant
                assert all(d in [x for _, x in c.get(q, [])] for q in qa[ob].tolist())
                assert ob[want == d].all()
            rows = idx.row_at(qa)
            ref_rows = [c[q][0][0] if len(c.get(q, [])) == 1 else None for q in queries]
            for got, exp in zip(rows.tolist(), ref_rows, strict=True):
                if exp is not None:
                    assert got == exp
            if h.p2m.n:
                ok, bad, owner = range_owner(idx, m, last, p2m_d)
                un, un_f, sf, sf_f, first = range_foreign(idx, m, last, p2m_d)
                for i in range(h.p2m.n):
                    frames = range(int(m[i]), int(last[i]) + 1)
                    doms = [ref_dom(c, f) for f in frames]
                    d = int(p2m_d[i])
                    not_mine = [f for f, x in zip(frames, doms, strict=True) if x not in (d, AMBIG)]
                    assert bool(ok[i]) == (not not_mine)
                    if not_mine:
                        assert int(bad[i]) == not_mine[0]
                        assert int(owner[i]) == ref_dom(c, not_mine[0])
                    unowned = [f for f, x in zip(frames, doms, strict=True) if x == NONE]
                    mine = [f for f, x in zip(frames, doms, strict=True) if x == d]
                    assert bool(un[i]) == bool(unowned) and bool(sf[i]) == bool(mine)
                    assert not unowned or int(un_f[i]) == unowned[0]
                    assert not mine or int(sf_f[i]) == mine[0]
                    assert int(first[i]) == doms[0]
                # rows owning a frame of the intervals that no other row claims
                # (an ambiguous frame is OWN_DUPLICATE's)
                hit = idx.frames_hit(m, last)
                ref_hit = sorted(
                    {
                        r
                        for i in range(h.p2m.n)
                        for f, who in c.items()
                        if int(m[i]) <= f <= int(last[i]) and len(who) == 1
                        for r, _ in who
                    }
                )
                assert hit.tolist() == ref_hit
            results.append((validate(s).findings, plan(s).to_json()))
    mp.undo()
    with ThreadPoolExecutor(2) as ex:
        assert validate(s, executor=ex).findings == results[0][0]
    assert all(r == results[0] for r in results[1:])


def test_per_domain_form_is_taken_on_a_fragmented_host() -> None:
    h = Host(BASE)
    idx = owner_index(h)
    assert idx._dsort is not None and idx._key is None  # 4 bytes an owned frame
    assert sum(len(s) for s in idx._dsort) == h.own.n
    assert all(s.dtype == np.uint32 for s in idx._dsort)
    # a frame owned twice, or one at 2**32: a global form
    for start in (int(BASE.domain(2).ownership["start_mfn"][0]), 1 << 32):
        own = BASE.domain(1).ownership.copy()
        own["start_mfn"][0] = start
        assert owner_index(Host(set_bulk(BASE, 1, T.LU_PAGE_OWNERSHIP, own)))._dsort is None


@pytest.mark.parametrize("range_bytes", [4, 64, 8 << 20])
def test_duplicate_check_by_value_range_at_any_slice_size(
    range_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-domain form's duplicate check cuts the frames into value ranges
    of about RANGE_BYTES (many on a large host): a frame owned twice is found
    whichever range it falls in, the first frame or the last included."""
    import xenlu.host.validation._index_build as build

    monkeypatch.setattr(build, "RANGE_BYTES", range_bytes)
    assert owner_index(Host(BASE))._dsort is not None
    frames = np.sort(np.concatenate([d.ownership["start_mfn"] for d in BASE.domains]))
    for dup in (int(frames[0]), int(frames[len(frames) // 2]), int(frames[-1])):
        own = BASE.domain(1).ownership.copy()
        if int(own["start_mfn"][0]) == dup:  # claim another domain's frame instead
            own = BASE.domain(2).ownership.copy()
            own["start_mfn"][-1] = int(BASE.domain(1).ownership["start_mfn"][0])
            bad = set_bulk(BASE, 2, T.LU_PAGE_OWNERSHIP, own)
        else:
            own["start_mfn"][0] = dup
            bad = set_bulk(BASE, 1, T.LU_PAGE_OWNERSHIP, own)
        assert owner_index(Host(bad))._dsort is None
