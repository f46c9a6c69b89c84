"""The fault makers of :func:`corruptions`, structural and semantic."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from xenlu.core.errors import CallerError, ChecksumError, FramingError, RecordError, XenLUError
from xenlu.core.layout import FieldInfo
from xenlu.core.registry import OPTIONAL, Record, UnknownRecord
from xenlu.testing.strategies._base import Draw
from xenlu.testing.strategies._corruptions import (
    FAULT_KINDS,
    SEMANTIC,
    Corruption,
    Site,
    Target,
    bad_bits,
    bad_values,
    field_at,
    finding_codes,
    put_field,
    target_of,
)
from xenlu.testing.strategies._hosts import max_port

if TYPE_CHECKING:
    from xenlu.lu.stream import LUStream
    from xenlu.migration.libxc_stream import LibxcStream


def corruptions(
    stream: bytes | LUStream | LibxcStream, *, kinds: Iterable[str] | None = None
) -> SearchStrategy[Corruption]:
    """Single-fault variants of a valid stream, each with how it must be caught.

    ``stream``: the bytes of a valid LU or libxc stream, or an
    :class:`~xenlu.lu.stream.LUStream` / :class:`~xenlu.migration.libxc_stream.LibxcStream`.
    ``kinds``: a subset of :data:`FAULT_KINDS` (every kind that applies when
    None). Structural faults name the :class:`~xenlu.core.errors.XenLUError`
    subclass the decoder must raise; in an LU stream every section checksum
    is recomputed after the change, so the named fault is the only one.
    Semantic faults (LU only) change the model and re-encode it; they name
    the finding code :func:`xenlu.host.validation.validate` must report.
    Fields to break are found by walking the declarations: reserved fields,
    flag fields with bits invalid in the epoch (those valid in another epoch
    first), enumerated and bounded fields.

    >>> c = corruptions(streams("4.11", max_domains=2).example(), kinds=["crc"]).example()
    >>> c.error.__name__
    'ChecksumError'
    >>> c.check()
    """
    t = target_of(stream)
    wanted = list(FAULT_KINDS) if kinds is None else list(kinds)
    for k in wanted:
        if k not in FAULT_KINDS:
            raise CallerError(f"unknown fault kind {k!r}; expected one of {', '.join(FAULT_KINDS)}")
    makers = {k: _MAKERS[k](t) for k in wanted if not (t.format != "lu" and k in SEMANTIC)}
    ok = [m for m in makers.values() if m is not None]
    if not ok:
        raise CallerError(f"corruptions(): none of {wanted} applies to this stream")
    return st.one_of(ok)


Maker = Callable[[Target], SearchStrategy[Corruption] | None]


def _field_sites(
    t: Target, pred: Callable[[FieldInfo], list[int]]
) -> list[tuple[Site, FieldInfo, list[int]]]:
    out = []
    for s in t.sites:
        for fi in s.layout.fields:
            vals = pred(fi)
            if vals:
                out.append((s, fi, vals))
    return out


def _patcher(
    t: Target,
    kind: str,
    error: type[XenLUError],
    cands: list[tuple[Site, FieldInfo, list[int]]],
    apply: Callable[[int, FieldInfo, int], int],
    what: str,
) -> SearchStrategy[Corruption] | None:
    if not cands:
        return None

    @st.composite
    def make(draw: Draw) -> Corruption:
        s, fi, vals = draw(st.sampled_from(cands))
        i = draw(st.integers(0, s.count - 1))
        at = s.offset + i * s.layout.size + fi.offset
        choice = draw(st.sampled_from(vals))
        buf = bytearray(t.data)
        old = field_at(buf, fi, at)
        new = apply(old, fi, choice)
        put_field(buf, fi, at, new)
        t.reseal(buf)
        entry = f"[{i}]" if s.count > 1 else ""
        return Corruption(
            kind,
            bytes(buf),
            error,
            None,
            f"{kind}: {s.record}{entry}.{fi.name} at {at:#x}: {what} {old:#x} -> {new:#x}",
            t.format,
        )

    return make()


def _mk_reserved(t: Target) -> SearchStrategy[Corruption] | None:
    cands = _field_sites(t, lambda fi: [1, 0x80] if fi.reserved else [])

    def apply(old: int, fi: FieldInfo, v: int) -> int:
        return old | v

    return _patcher(t, "reserved", RecordError, cands, apply, "reserved")


def _mk_flag(t: Target) -> SearchStrategy[Corruption] | None:
    cands = _field_sites(t, lambda fi: [] if fi.reserved else bad_bits(fi, t.epoch))
    return _patcher(t, "flag", RecordError, cands, lambda old, fi, b: old | (1 << b), "bits")


def _mk_value(t: Target) -> SearchStrategy[Corruption] | None:
    cands = _field_sites(t, lambda fi: bad_values(fi, t.epoch))
    return _patcher(t, "value", RecordError, cands, lambda old, fi, v: v, "value")


def _mk_length(t: Target) -> SearchStrategy[Corruption] | None:
    """A fixed-size record body grown by 8 zero bytes: its length no longer fits."""
    cands = [s for s in t.sites if s.whole and s.layout.size == _length_of(t, s.index)]
    if not cands:
        return None

    @st.composite
    def make(draw: Draw) -> Corruption:
        s = draw(st.sampled_from(cands))
        hdr = s.offset - 8
        buf = bytearray(t.data)
        ln = s.layout.size
        struct.pack_into("<I", buf, hdr + 4, ln + 8)
        end = s.offset + ln + (-ln & 7)
        buf[end:end] = bytes(8)
        t.reseal(buf, shift_at=hdr, by=8)
        return Corruption(
            "length",
            bytes(buf),
            RecordError,
            None,
            f"length: {s.record} (record #{s.index}) at {hdr:#x}: length {ln} -> {ln + 8}",
            t.format,
        )

    return make()


def _length_of(t: Target, idx: int) -> int:
    return next((ln for i, _, _, ln in t.records if i == idx), -1)


def _body_of(t: Target, idx: int) -> int:
    return next((off + 8 for i, off, _, _ in t.records if i == idx), -1)


def _mk_count(t: Target) -> SearchStrategy[Corruption] | None:
    """A count field off by one while the body keeps its length."""
    from xenlu.lu.host_records import CountHeader
    from xenlu.migration.libxc_records import HvmParamsHeader

    heads = (CountHeader.LAYOUT, HvmParamsHeader.LAYOUT)
    cands = [s for s in t.sites if s.layout in heads and s.offset == _body_of(t, s.index)]
    if not cands:
        return None

    @st.composite
    def make(draw: Draw) -> Corruption:
        s = draw(st.sampled_from(cands))
        buf = bytearray(t.data)
        (count,) = struct.unpack_from("<I", buf, s.offset)
        new = count + 1 if count == 0 or draw(st.booleans()) else count - 1
        struct.pack_into("<I", buf, s.offset, new)
        t.reseal(buf)
        return Corruption(
            "count",
            bytes(buf),
            RecordError,
            None,
            f"count: {s.record} (record #{s.index}) at {s.offset:#x}: count {count} -> {new}",
            t.format,
        )

    return make()


def _mk_truncation(t: Target) -> SearchStrategy[Corruption] | None:
    n = len(t.data)
    return st.integers(0, n - 1).map(
        lambda cut: Corruption(
            "truncation",
            t.data[:cut],
            FramingError,
            None,
            f"truncation: {n} bytes cut to {cut}",
            t.format,
        )
    )


def _mk_padding(t: Target) -> SearchStrategy[Corruption] | None:
    target = t
    padded = [(off, ln) for _, off, _, ln in t.records if ln % 8]
    if not padded:
        # Add an optional record with an odd-sized body (valid), then break its padding.
        target = _with_padded_optional(t)
        padded = [(off, ln) for _, off, _, ln in target.records if ln % 8]
        if not padded:
            return None

    @st.composite
    def make(draw: Draw) -> Corruption:
        off, ln = draw(st.sampled_from(padded))
        at = off + 8 + ln + draw(st.integers(0, (-ln & 7) - 1))
        buf = bytearray(target.data)
        buf[at] = draw(st.integers(1, 255))
        target.reseal(buf)
        return Corruption(
            "padding",
            bytes(buf),
            FramingError,
            None,
            f"padding: byte {at:#x} after the {ln}-byte body at {off:#x} set non-zero",
            target.format,
        )

    return make()


def _with_padded_optional(t: Target) -> Target:
    from xenlu.api import decode, encode

    model = t.model
    new: Any
    rec = Record(OPTIONAL | 0x1234, UnknownRecord(OPTIONAL | 0x1234, b"\x01\x02\x03"))
    if t.format == "lu":
        from xenlu.lu.stream import LUStream

        g = model.global_section
        g2 = dataclasses.replace(g, records=[*g.records, rec])
        new = LUStream(g2, model.domains)
    else:
        from xenlu.migration.libxc_stream import LibxcStream

        new = LibxcStream(model.header, model.domain, [*model.records[:-1], rec, model.records[-1]])
    data = encode(new)
    return Target(data, t.format, decode(data, t.format))


def _mk_crc(t: Target, field: str) -> SearchStrategy[Corruption] | None:
    if t.format != "lu" or not t.sections:
        return None
    from xenlu.lu.host_records import LuSectionEnd

    fi = LuSectionEnd.LAYOUT.field(field)

    @st.composite
    def make(draw: Draw) -> Corruption:
        s = draw(st.sampled_from(t.sections))
        at = s.end + 8 + fi.offset
        buf = bytearray(t.data)
        old = field_at(buf, fi, at)
        if field == "crc32c":
            new = old ^ (1 << draw(st.integers(0, 31)))
        else:
            new = old + draw(st.sampled_from([8, -8, 1])) if old >= 8 else old + 8
        put_field(buf, fi, at, new)
        return Corruption(
            "crc" if field == "crc32c" else "section_bytes",
            bytes(buf),
            ChecksumError,
            None,
            f"LU_SECTION_END of section {s.domid:#x} at {s.end:#x}: {field} {old:#x} -> {new:#x}",
            "lu",
        )

    return make()


# -- semantic faults: change the model, re-encode ---------------------------------


def _copy(model: Any) -> Any:
    from xenlu.lu.stream import GlobalSection, LUDomain, LUStream

    return LUStream(
        GlobalSection(list(model.global_section.records)),
        [LUDomain(list(d.records)) for d in model.domains],
    )


def _semantic(
    kind: str, build: Callable[[Draw, Any], tuple[Any, str] | None], t: Target
) -> SearchStrategy[Corruption] | None:
    from xenlu.lu.stream import encode_lu

    code = finding_codes()[kind]

    @st.composite
    def make(draw: Draw) -> Corruption:
        out = build(draw, _copy(t.model))
        if out is None:  # pragma: no cover - applicability is checked up front
            raise CallerError(f"{kind} does not apply")
        new, where = out
        return Corruption(kind, encode_lu(new), None, code, f"{kind}: {where}", "lu")

    return make()


def _mk_owned_twice(t: Target) -> SearchStrategy[Corruption] | None:
    from xenlu.lu.memory_records import OwnershipEntry
    from xenlu.lu.records import Bulk, T

    doms = [d for d in t.model.domains if len(d.ownership)]
    if not doms:
        return None

    def build(draw: Draw, m: Any) -> tuple[Any, str]:
        a = draw(st.sampled_from([d.domid for d in doms]))
        src = m.domain(a)
        o = src.ownership
        i = draw(st.integers(0, len(o) - 1))
        frame = int(o["start_mfn"][i]) + draw(st.integers(0, int(o["nr_pages"][i]) - 1))
        others = [d.domid for d in m.domains if d.domid != a]
        b = draw(st.sampled_from(others)) if others else a
        dst = m.domain(b)
        e = OwnershipEntry.LAYOUT.empty(1)
        e["start_mfn"], e["nr_pages"] = frame, 1
        dst.records.append(Record(T.LU_PAGE_OWNERSHIP, Bulk(e)))
        return m, f"frame {frame:#x} of domain {a} also owned by domain {b}"

    return _semantic("owned_twice", build, t)


def _mk_nonreciprocal(t: Target) -> SearchStrategy[Corruption] | None:
    from xenlu.lu.records import Bulk, T
    from xenlu.lu.values import ECS_INTERDOMAIN

    pairs = []
    for d in t.model.domains:
        ev = d.evtchns
        idx = np.flatnonzero(ev["state"] == ECS_INTERDOMAIN)
        if len(idx):
            pairs.append(d.domid)
    if not pairs:
        return None

    def build(draw: Draw, m: Any) -> tuple[Any, str]:
        d = m.domain(draw(st.sampled_from(pairs)))
        ev = d.evtchns.copy()
        i = int(draw(st.sampled_from(list(np.flatnonzero(ev["state"] == ECS_INTERDOMAIN)))))
        rdom = int(ev["remote_domid"][i])
        rport = int(ev["detail"][i])
        try:
            rev = m.domain(rdom).evtchns
            cands = [int(p) for p in rev["port"] if int(p) != rport]
        except CallerError:
            cands = []
        new = draw(st.sampled_from(cands)) if cands else rport + 1
        ev["detail"][i] = new
        # Keep every other record: put the changed channels back as one record.
        recs = [r for r in d.records if r.type != T.LU_EVTCHNS]
        d.records = [*recs, Record(T.LU_EVTCHNS, Bulk(ev))]
        port = int(ev["port"][i])
        return m, f"domain {d.domid} port {port} -> domain {rdom} port {new} (was {rport})"

    return _semantic("evtchn_nonreciprocal", build, t)


def _intervals(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sorted [start, end) frame intervals used by owners, the bootmem and Xen extents."""
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    for d in model.domains:
        o = d.ownership
        starts.append(o["start_mfn"].astype(np.uint64))
        ends.append(o["start_mfn"].astype(np.uint64) + o["nr_pages"].astype(np.uint64))
    for a in (model.reusable_regions, model.xen_pages):
        starts.append(a["start_mfn"].astype(np.uint64))
        ends.append(a["start_mfn"].astype(np.uint64) + a["nr_pages"].astype(np.uint64))
    h = model.host
    starts.append(np.array([h.lu_bootmem_start >> 12], np.uint64))
    ends.append(np.array([(h.lu_bootmem_start + h.lu_bootmem_size + 4095) >> 12], np.uint64))
    s = np.concatenate(starts)
    e = np.concatenate(ends)
    order = np.argsort(s)
    return s[order], e[order]


def _unowned_frame(model: Any) -> int | None:
    s, e = _intervals(model)
    f = int(model.host.max_page) - 1
    while f >= 0:
        hit = np.flatnonzero((s <= f) & (e > f))
        if not len(hit):
            return f
        f = int(s[hit].min()) - 1
    return None


def _mk_grant_unowned(t: Target) -> SearchStrategy[Corruption] | None:
    from xenlu.lu.records import Bulk, T
    from xenlu.lu.values import P2mType

    frame = _unowned_frame(t.model)
    if frame is None:
        return None
    cands = []
    for d in t.model.domains:
        gm = d.grant_maps
        if not len(gm):
            continue
        p2m = d.p2m
        mapped: set[int] = set()
        if len(p2m):
            sel = np.isin(p2m["p2m_type"], (P2mType.grant_map_rw, P2mType.grant_map_ro))
            for mfn, n in zip(p2m["mfn"][sel], p2m["nr_pages"][sel], strict=True):
                mapped.update(range(int(mfn), int(mfn) + int(n)))
        ok = [i for i in range(len(gm)) if int(gm["mfn"][i]) not in mapped]
        if ok:
            cands.append((d.domid, ok))
    if not cands:
        return None

    def build(draw: Draw, m: Any) -> tuple[Any, str]:
        domid, ok = draw(st.sampled_from(cands))
        d = m.domain(domid)
        gm = d.grant_maps.copy()
        i = draw(st.sampled_from(ok))
        old = int(gm["mfn"][i])
        gm["mfn"][i] = frame
        recs = [r for r in d.records if r.type != T.LU_GRANT_MAPS]
        at = next(j for j, r in enumerate(recs) if r.type == T.LU_GRANT_TABLE) + 1
        d.records = [*recs[:at], Record(T.LU_GRANT_MAPS, Bulk(gm)), *recs[at:]]
        g = int(gm["granting_domid"][i])
        return m, (
            f"domain {domid} handle {int(gm['handle'][i])} maps frame {frame:#x} "
            f"(owned by nobody) from domain {g} (was {old:#x})"
        )

    return _semantic("grant_map_unowned", build, t)


def _mk_port_above_max(t: Target) -> SearchStrategy[Corruption] | None:
    from xenlu.lu.records import T

    cands = [d.domid for d in t.model.domains if len(d.evtchns)]
    if not cands:
        return None

    def build(draw: Draw, m: Any) -> tuple[Any, str]:
        d = m.domain(draw(st.sampled_from(cands)))
        top = max_port(d)
        info = dataclasses.replace(d.info, max_evtchn_port=top - 1)
        d.records[0] = Record(T.LU_DOMAIN, info)
        return m, f"domain {d.domid}: max_evtchn_port {top - 1} below its port {top}"

    return _semantic("port_above_max", build, t)


_MAKERS: dict[str, Maker] = {
    "padding": _mk_padding,
    "reserved": _mk_reserved,
    "flag": _mk_flag,
    "value": _mk_value,
    "length": _mk_length,
    "count": _mk_count,
    "truncation": _mk_truncation,
    "crc": lambda t: _mk_crc(t, "crc32c"),
    "section_bytes": lambda t: _mk_crc(t, "section_bytes"),
    "owned_twice": _mk_owned_twice,
    "evtchn_nonreciprocal": _mk_nonreciprocal,
    "grant_map_unowned": _mk_grant_unowned,
    "port_above_max": _mk_port_above_max,
}
