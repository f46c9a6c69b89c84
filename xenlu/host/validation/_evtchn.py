"""§4.12, §4.13: event-channel ABI control blocks and the channels themselves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xenlu.host.validation._arrays import I64, Arr, Bool, cat, dups_after_first, field_or_zero
from xenlu.host.validation._host import Host
from xenlu.host.validation._report import Out, Vals
from xenlu.lu.values import (
    EVTCHN_PORTS_2L,
    EVTCHN_PORTS_2L_32,
    EVTCHN_PORTS_FIFO,
    EVTCHN_WORDS_PER_PAGE,
    PER_VCPU_VIRQS,
    EvtchnAbiKind,
    EvtchnFlag,
    EvtchnState,
    LuState,
)

__all__ = ["Peers", "check_evtchns", "interdomain_peers"]

# Plain ints for numpy (see _p2m).
_FIFO = int(EvtchnAbiKind.fifo)
_2L = int(EvtchnAbiKind.two_level)
_ABI_NAME = {int(k): k.name for k in EvtchnAbiKind}
_SHINFO32 = int(LuState.shinfo32)
_PENDING = int(EvtchnFlag.pending)
_INTERDOMAIN = int(EvtchnState.interdomain)
_VIRQ = int(EvtchnState.virq)
_PIRQ = int(EvtchnState.pirq)
#: §4.13: a two-level channel has the fixed priority 7.
_2L_PRIORITY = 7


@dataclass
class _Abi:
    """Per domain index: FIFO or not, event-array pages, port limit."""

    fifo: Bool
    pages: I64
    limit: I64


@dataclass
class _Channels:
    """LU_EVTCHNS of every domain as host-wide columns."""

    dom: I64
    ent: I64
    port: I64
    state: I64
    prio: I64
    notify: I64
    remote: I64
    flags: I64
    detail: I64
    last_prio: I64
    last_vcpu: I64
    myid: I64


def check_evtchns(h: Host, out: Out) -> None:
    """Every §4.12/§4.13 rule relating channels to their domain and to each other."""
    abi = _control_blocks(h, out)
    c = _channels(h)
    if c is None:
        return
    _port_rules(h, abi, c, out)
    _interdomain(h, c, out)
    _virqs_pirqs(c, out)


def _control_blocks(h: Host, out: Out) -> _Abi:
    """LU_EVTCHN_ABI: per-domain ABI facts, and the FIFO control blocks' vCPUs."""
    ids = h.domids
    cb_parts: list[Arr] = []
    cb_dom: list[int] = []
    abi_of = _Abi(np.zeros(h.nd, bool), np.zeros(h.nd, np.int64), np.zeros(h.nd, np.int64))
    for di, d in enumerate(h.doms):
        abi = d.evtchn_abi
        is_fifo = abi is not None and abi.abi == _FIFO
        abi_of.fifo[di] = is_fifo
        if abi is not None:
            abi_of.pages[di] = len(abi.event_array_gfns)
            if len(abi.control_blocks):
                cb_parts.append(np.asarray(abi.control_blocks["vcpu"]).astype(np.int64))
                cb_dom.append(di)
        # §4.12 ABI limits: FIFO 131072; two-level 4096, 1024 with the 32-bit shared_info.
        shinfo32 = int(d.info.lu_state) & _SHINFO32
        abi_lim = (
            EVTCHN_PORTS_FIFO if is_fifo else EVTCHN_PORTS_2L_32 if shinfo32 else EVTCHN_PORTS_2L
        )
        abi_of.limit[di] = min(abi_lim, int(d.info.max_evtchn_port) + 1)
    if not cb_parts:
        return abi_of
    lens = np.array([len(c) for c in cb_parts], np.int64)
    cdom = np.repeat(np.array(cb_dom, np.int64), lens)
    cv = np.concatenate(cb_parts)
    cent = np.arange(len(cv)) - np.repeat(np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    b = np.flatnonzero(cv >= h.max_vcpus[cdom])
    out.emit(
        "EVTCHN_CB_VCPU_RANGE",
        ids[cdom[b]],
        cent[b],
        "control block for vcpu {vcpu} >= max_vcpus {max_vcpus}",
        {"vcpu": cv[b], "max_vcpus": h.max_vcpus[cdom[b]]},
    )
    dup, first = dups_after_first(cdom, cv)
    out.emit(
        "EVTCHN_CB_DUPLICATE",
        ids[cdom[dup]],
        cent[dup],
        "second control block for vcpu {vcpu} (first: {first_entry})",
        {"vcpu": cv[dup], "first_entry": cent[first]},
    )
    return abi_of


def _channels(h: Host) -> _Channels | None:
    parts = [d.evtchns for d in h.doms]
    lens = np.array([len(x) for x in parts], np.int64)
    if not lens.sum():
        return None
    dom = np.repeat(np.arange(h.nd, dtype=np.int64), lens)
    offs = np.concatenate(([0], np.cumsum(lens)))
    lastq: list[Arr] = []
    lastv: list[Arr] = []
    for x in parts:
        if "fifo_lastq" in (x.dtype.names or ()):
            q = np.asarray(x["fifo_lastq"]).astype(np.int64)
            lastq.append((q >> 16) & 0xFF)
            lastv.append(q & 0xFFFF)
        else:
            lastq.append(field_or_zero(x, "last_priority"))
            lastv.append(field_or_zero(x, "last_vcpu"))
    return _Channels(
        dom,
        np.arange(int(lens.sum())) - np.repeat(offs[:-1], lens),
        cat([x["port"] for x in parts], np.int64),
        cat([x["state"] for x in parts], np.int64),
        cat([x["priority"] for x in parts], np.int64),
        cat([x["notify_vcpu"] for x in parts], np.int64),
        cat([x["remote_domid"] for x in parts], np.int64),
        cat([x["flags"] for x in parts], np.int64),
        cat([x["detail"] for x in parts], np.int64),
        cat(lastq, np.int64),
        cat(lastv, np.int64),
        h.domids[dom],
    )


def _port_rules(h: Host, abi: _Abi, c: _Channels, out: Out) -> None:
    """Per-channel rules: the port limit, vCPU ranges, the two-level constants."""
    dom, ent, port, myid = c.dom, c.ent, c.port, c.myid
    prio, notify, flags = c.prio, c.notify, c.flags
    last_prio, last_vcpu = c.last_prio, c.last_vcpu
    mv = h.max_vcpus[dom]
    f = abi.fifo[dom]
    limit, pages = abi.limit, abi.pages

    def simple(code: str, mask: Bool, msg: str, vals: dict[str, Arr]) -> None:
        b = np.flatnonzero(mask)
        out.emit(
            code,
            myid[b],
            ent[b],
            msg,
            {"port": port[b], **{k: v[b] for k, v in vals.items()}},
        )

    lim = limit[dom]
    simple(
        "EVTCHN_PORT_LIMIT",
        port >= lim,
        "port {port} >= limit {limit} ({abi})",
        {"limit": lim, "abi": np.where(f, _ABI_NAME[_FIFO], _ABI_NAME[_2L])},
    )
    simple(
        "EVTCHN_FIFO_BEYOND_ARRAY",
        f & (port < lim) & (port >= EVTCHN_WORDS_PER_PAGE * pages[dom]),
        "FIFO port {port} has no event word yet ({nr_event_array_pages} event-array pages)",
        {"nr_event_array_pages": pages[dom], "pending": flags & _PENDING},
    )
    dup, first = dups_after_first(dom, port)
    out.emit(
        "EVTCHN_PORT_DUPLICATE",
        myid[dup],
        ent[dup],
        "port {port} already listed by entry {first_entry}",
        {"port": port[dup], "first_entry": ent[first]},
    )
    simple(
        "EVTCHN_NOTIFY_VCPU_RANGE",
        notify >= mv,
        "port {port}: notify_vcpu {notify_vcpu} >= max_vcpus {max_vcpus}",
        {"notify_vcpu": notify, "max_vcpus": mv},
    )
    simple(
        "EVTCHN_LAST_VCPU_RANGE",
        f & (last_vcpu >= mv),
        "port {port}: last vcpu {last_vcpu} >= max_vcpus {max_vcpus}",
        {"last_vcpu": last_vcpu, "max_vcpus": mv},
    )
    simple(
        "EVTCHN_2L_PRIORITY",
        ~f & (prio != _2L_PRIORITY),
        "two-level port {port} has priority {priority}, not 7",
        {"priority": prio},
    )
    simple(
        "EVTCHN_2L_PENDING",
        ~f & ((flags & _PENDING) != 0),
        "two-level port {port} has the pending flag",
        {"flags": flags},
    )
    simple(
        "EVTCHN_2L_LAST",
        ~f & ((last_prio != 0) | (last_vcpu != 0)),
        "two-level port {port} has last priority {last_priority}, last vcpu {last_vcpu}",
        {"last_priority": last_prio, "last_vcpu": last_vcpu},
    )


@dataclass(frozen=True)
class Peers:
    """The other end of every interdomain channel (§4.13), host-wide.

    ``inter``: rows of the interdomain channels; ``found``: the remote
    (domid, port) is listed; ``peer``: that row (where found);
    ``back``: it is interdomain and names this channel back.
    """

    inter: I64
    found: Bool
    peer: I64
    back: Bool


def interdomain_peers(myid: I64, port: I64, state: I64, remote: I64, detail: I64) -> Peers:
    """:class:`Peers` of host-wide channel columns (``myid``: each row's domid).

    One sort of ``domid << 32 | port`` and one binary search per channel.
    """
    key = (myid << 32) | port
    korder = np.argsort(key, kind="stable")
    skey = key[korder]
    inter = np.flatnonzero(state == _INTERDOMAIN)
    rkey = (remote[inter] << 32) | detail[inter]
    pos = np.searchsorted(skey, rkey)
    posc = np.minimum(pos, len(skey) - 1)
    found = (pos < len(skey)) & (skey[posc] == rkey)
    q = korder[posc]
    back = (
        found & (state[q] == _INTERDOMAIN) & (remote[q] == myid[inter]) & (detail[q] == port[inter])
    )
    return Peers(inter, found, q, back)


def _interdomain(h: Host, c: _Channels, out: Out) -> None:
    """Interdomain channels: the remote (domid, port) exists and names this one back."""
    ent, port, state, remote, detail, myid = c.ent, c.port, c.state, c.remote, c.detail, c.myid
    p = interdomain_peers(myid, port, state, remote, detail)
    inter, found, q, back = p.inter, p.found, p.peer, p.back
    if not len(inter):
        return
    rdi = h.lookup(remote[inter])
    for code, mask, msg in (
        (
            "EVTCHN_REMOTE_DOMAIN_MISSING",
            rdi < 0,
            "port {port}: remote domain {remote_domid} is not in the stream",
        ),
        (
            "EVTCHN_REMOTE_PORT_MISSING",
            (rdi >= 0) & ~found,
            "port {port}: remote dom{remote_domid} port {remote_port} is not listed",
        ),
        (
            "EVTCHN_NOT_RECIPROCAL",
            found & ~back,
            "port {port}: remote dom{remote_domid} port {remote_port} does not name it back",
        ),
    ):
        b = np.flatnonzero(mask)
        rows = inter[b]
        rv: dict[str, Vals] = {
            "port": port[rows],
            "remote_domid": remote[rows],
            "remote_port": detail[rows],
        }
        if code == "EVTCHN_NOT_RECIPROCAL":
            qq = q[b]
            rv.update(
                remote_state=state[qq], remote_remote_domid=remote[qq], remote_detail=detail[qq]
            )
        out.emit(code, myid[rows], ent[rows], msg, rv, others=remote[rows])


def _virqs_pirqs(c: _Channels, out: Out) -> None:
    """VIRQs: per-vCPU ones once per vCPU, others once per domain; pirqs once."""
    dom, ent, port, state, notify, detail, myid = (
        c.dom,
        c.ent,
        c.port,
        c.state,
        c.notify,
        c.detail,
        c.myid,
    )
    virq = np.flatnonzero(state == _VIRQ)
    if len(virq):
        per = np.isin(detail[virq], PER_VCPU_VIRQS)
        for code, rows, vc in (
            ("EVTCHN_VCPU_VIRQ_DUPLICATE", virq[per], True),
            ("EVTCHN_VIRQ_DUPLICATE", virq[~per], False),
        ):
            if not len(rows):
                continue
            cols = (dom[rows], detail[rows], notify[rows]) if vc else (dom[rows], detail[rows])
            dup, first = dups_after_first(*cols)
            dr, fr = rows[dup], rows[first]
            vals: dict[str, Vals] = {
                "port": port[dr],
                "virq": detail[dr],
                "first_port": port[fr],
                "first_entry": ent[fr],
            }
            if vc:
                vals["vcpu"] = notify[dr]
            msg = "VIRQ {virq} already bound on port {first_port}"
            out.emit(code, myid[dr], ent[dr], msg + (" for vcpu {vcpu}" if vc else ""), vals)
    pirq = np.flatnonzero(state == _PIRQ)
    if len(pirq):
        dup, first = dups_after_first(dom[pirq], detail[pirq])
        dr, fr = pirq[dup], pirq[first]
        out.emit(
            "EVTCHN_PIRQ_DUPLICATE",
            myid[dr],
            ent[dr],
            "pirq {pirq} already bound on port {first_port}",
            {"port": port[dr], "pirq": detail[dr], "first_port": port[fr], "first_entry": ent[fr]},
        )
