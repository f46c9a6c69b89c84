"""The per-domain records of grants, event channels and ioreq servers (LU spec §4.10–§4.14).

The LU_GRANT_TABLE header and LU_GRANT_MAPS entries, LU_EVTCHN_ABI's
pieces and the LU_EVTCHNS entries (one declaration per epoch layout), and
LU_IOREQ_SERVERS' server and range: one declaration each, with their field
and record rules; and the values and body codecs of the three
variable-size records among them (:mod:`xenlu.lu.records` registers them).

    >>> evtchn_layout((4, 15)) is EvtchnEntry415, EvtchnEntry415.LAYOUT.size
    (True, 24)
    >>> GrantMapEntry.LAYOUT.size, ControlBlock.LAYOUT.size
    (24, 16)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from construct import Bytes, Int8ul, Int16ul, Int32ul, Int64ul

from xenlu.core.epochs import Epoch
from xenlu.core.errors import EncodeError
from xenlu.core.layout import Packed, Rsvd, by_epoch, fld, packed, packed_base, reserved
from xenlu.core.registry import Ctx
from xenlu.core.rules import Pick, Rule
from xenlu.core.values import Value
from xenlu.lu.host_records import CountHeader
from xenlu.lu.values import (
    ECS_INTERDOMAIN,
    ECS_IPI,
    ECS_RESERVED,
    ECS_UNBOUND,
    ECS_VIRQ,
    GNTMAP_DEVICE_MAP,
    GNTMAP_HOST_MAP,
    INVALID_MFN,
    BufIoreq,
    EvtchnAbiKind,
    EvtchnFlag,
    EvtchnState,
    GrantMapFlag,
    GrantVersion,
    IoreqRangeType,
)

# --- §4.11 LU_GRANT_MAPS ------------------------------------------------------


@packed(name="LU_GRANT_MAPS entry")
class GrantMapEntry(Packed):
    """§4.11: one maptrack entry of the mapping domain."""

    handle: int = fld(Int32ul)
    ref: int = fld(Int32ul)
    flags: int = fld(Int16ul, bits=GrantMapFlag)
    granting_domid: int = fld(Int16ul)
    vcpu: int = fld(Int32ul)
    mfn: int = fld(Int64ul)

    # §4.11: at least one of device_map, host_map.
    RULES = (
        Rule(
            "flags",
            "neither device_map nor host_map",
            lambda c: (c.flags & (GNTMAP_DEVICE_MAP | GNTMAP_HOST_MAP)) == 0,
            "bit 0 or 1",
            repair=lambda d, pick: d if d["flags"] & 3 else {**d, "flags": d["flags"] | pick(1, 3)},
        ),
    )


# --- §4.13 LU_EVTCHNS ---------------------------------------------------------


def _repair_ports(rows: list[dict[str, Any]], pick: Pick) -> list[dict[str, Any]]:
    """Unique ascending ports (port 0 is never listed), as many as ``rows``."""
    ports: set[int] = set()
    while len(ports) < len(rows):
        ports.add(pick(1, 0xFFFFFFFF))
    return [{**r, "port": p} for r, p in zip(rows, sorted(ports), strict=True)]


@packed_base
class EvtchnCommon(Packed):
    """LU_EVTCHNS entry offsets 0–15, the same in every epoch (§4.13)."""

    port: int = fld(Int32ul, lo=1, doc="port 0 is never listed")
    state: int = fld(Int8ul, values=EvtchnState)
    priority: int = fld(Int8ul, hi=15)
    notify_vcpu: int = fld(Int16ul)
    remote_domid: int = fld(Int16ul)
    xen_consumer: int = fld(Int8ul, values={0: "none"}, doc="must be 0 in revision 1")
    flags: int = fld(Int8ul, bits=EvtchnFlag)
    detail: int = fld(Int32ul, doc="remote port / pirq / virq, else 0")

    # §4.13, in this order (the first broken rule is the one reported).
    RULES = (
        # Ports ascend within a record (structural by §7).
        Rule(
            "port",
            "ports do not ascend",
            lambda c: c.port <= c.prev.port,
            lambda c: f"> {c.prev.port}",
            repair_all=_repair_ports,
            pairwise=True,
        ),
        Rule(
            "remote_domid",
            "remote_domid set for this state",
            lambda c: c.notin(c.state, (ECS_UNBOUND, ECS_INTERDOMAIN)) & (c.remote_domid != 0),
            0,
            repair=lambda d, pick: (
                d if d["state"] in (ECS_UNBOUND, ECS_INTERDOMAIN) else {**d, "remote_domid": 0}
            ),
        ),
        # detail: remote port / pirq / virq, else 0; virq 0-23.
        Rule(
            "detail",
            "detail set for this state",
            lambda c: c.isin(c.state, (ECS_RESERVED, ECS_UNBOUND, ECS_IPI)) & (c.detail != 0),
            0,
            repair=lambda d, pick: (
                {**d, "detail": 0} if d["state"] in (ECS_RESERVED, ECS_UNBOUND, ECS_IPI) else d
            ),
        ),
        Rule(
            "detail",
            "virq out of range",
            lambda c: (c.state == ECS_VIRQ) & (c.detail > 23),
            "0..23",
            repair=lambda d, pick: {**d, "detail": d["detail"] % 24} if d["state"] == 5 else d,
        ),
        Rule(
            "fifo_lastq",
            "last priority above 15",
            lambda c: ((c.fifo_lastq >> 16) & 0xFF) > 15,
            "<= 15",
            repair=lambda d, pick: {
                **d,
                "fifo_lastq": (d["fifo_lastq"] & 0xFFFF)
                | ((((d["fifo_lastq"] >> 16) & 0xFF) % 16) << 16),
            },
        ),
    )


@packed(name="LU_EVTCHNS entry@4.11", since="4.11", until="4.15")
class EvtchnEntry411(EvtchnCommon):
    """LU_EVTCHNS entry up to epoch 4.14: separate last_priority / last_vcpu."""

    last_priority: int = fld(Int8ul, hi=15)
    rsvd0: ClassVar[Rsvd] = reserved(Int8ul)
    last_vcpu: int = fld(Int16ul)
    rsvd1: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="LU_EVTCHNS entry@4.15", since="4.15")
class EvtchnEntry415(EvtchnCommon):
    """LU_EVTCHNS entry from epoch 4.15: the packed fifo_lastq."""

    fifo_lastq: int = fld(
        Int32ul,
        mask={0xFFFF: "last_vcpu", 0xFF0000: "last_priority"},
        doc="bits 0-15 last vcpu, 16-23 last priority, 24-31 zero",
    )
    rsvd1: ClassVar[Rsvd] = reserved(Int32ul)


#: epoch → the LU_EVTCHNS entry declaration of that epoch (from their since/until).
EVTCHN_LAYOUTS: dict[Epoch, type[EvtchnCommon]] = by_epoch(EvtchnEntry411, EvtchnEntry415)


def evtchn_layout(epoch: Epoch) -> type[EvtchnCommon]:
    """The LU_EVTCHNS entry class of ``epoch``."""
    return EVTCHN_LAYOUTS[epoch]


# --- §4.10, §4.12, §4.14, §4.15 variable-size records -------------------------


@packed(name="LU_GRANT_TABLE header")
class GrantTableHeader(Packed):
    version: int = fld(Int8ul, values=GrantVersion)
    rsvd0: ClassVar[Rsvd] = reserved(Bytes(3))
    nr_grant_frames: int = fld(Int32ul)
    nr_status_frames: int = fld(Int32ul, doc="0 for v1; ceil(nr_grant_frames / 8) for v2")
    rsvd1: ClassVar[Rsvd] = reserved(Int32ul)

    # §4.10: status frames only for v2, one per 8 grant frames.
    RULES = (
        Rule(
            "nr_status_frames",
            "nr_status_frames wrong for the table version",
            lambda c: c.nr_status_frames != (c.version != 1) * ((c.nr_grant_frames + 7) // 8),
            lambda c: (c.version != 1) * ((c.nr_grant_frames + 7) // 8),
            repair=lambda d, pick: {
                **d,
                "nr_status_frames": (d["version"] != 1) * ((d["nr_grant_frames"] + 7) // 8),
            },
        ),
    )


@packed(name="LU_EVTCHN_ABI header")
class EvtchnAbiHeader(Packed):
    abi: int = fld(Int32ul, values=EvtchnAbiKind)
    nr_control_blocks: int = fld(Int32ul)


@packed(name="LU_EVTCHN_ABI control block")
class ControlBlock(Packed):
    """A FIFO per-vCPU control block registration (§4.12)."""

    vcpu: int = fld(Int32ul)
    offset: int = fld(Int32ul, hi=4024, doc="8-aligned")
    control_gfn: int = fld(Int64ul)

    RULES = (
        Rule(
            "offset",
            "control block offset not 8-aligned",
            lambda c: (c.offset & 7) != 0,
            "a multiple of 8",
            repair=lambda d, pick: {**d, "offset": d["offset"] & ~7},
        ),
    )


@packed(name="LU_EVTCHN_ABI pages header")
class EvtchnPagesHeader(Packed):
    nr_event_array_pages: int = fld(Int32ul, hi=128)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)


@packed(name="LU_IOREQ_SERVERS server")
class IoreqServerHeader(Packed):
    id: int = fld(Int16ul)
    dm_domid: int = fld(Int16ul)
    enabled: int = fld(Int8ul, values={0: "no", 1: "yes"})
    bufioreq: int = fld(Int8ul, values=BufIoreq)
    nr_ranges: int = fld(Int16ul)
    ioreq_gfn: int = fld(Int64ul)
    bufioreq_gfn: int = fld(Int64ul, doc="INVALID_MFN exactly when bufioreq is 0")

    RULES = (
        Rule(
            "bufioreq_gfn",
            "bufioreq_gfn must be INVALID_MFN exactly when bufioreq is 0",
            lambda c: (c.bufioreq == 0) != (c.bufioreq_gfn == INVALID_MFN),
            lambda c: "INVALID_MFN" if c.bufioreq == 0 else "a gfn",
            repair=lambda d, pick: {
                **d,
                "bufioreq_gfn": INVALID_MFN
                if d["bufioreq"] == 0
                else (
                    pick(0, INVALID_MFN - 1)
                    if d["bufioreq_gfn"] == INVALID_MFN
                    else d["bufioreq_gfn"]
                ),
            },
        ),
    )


@packed(name="LU_IOREQ_SERVERS range")
class IoreqRange(Packed):
    type: int = fld(Int32ul, values=IoreqRangeType)
    rsvd: ClassVar[Rsvd] = reserved(Int32ul)
    start: int = fld(Int64ul)
    end: int = fld(Int64ul)

    RULES = (
        Rule(
            "start",
            "range start above end",
            lambda c: c.start > c.end,
            lambda c: f"<= {c.end:#x}",
            repair=lambda d, pick: (
                {**d, "start": d["end"], "end": d["start"]} if d["start"] > d["end"] else d
            ),
        ),
    )


# --- §4.10, §4.12, §4.14 values and body codecs --------------------------------

U64 = np.dtype("<u8")
_CH = CountHeader.LAYOUT


@dataclass(frozen=True, eq=False)
class GrantTable(Value):
    """§4.10 LU_GRANT_TABLE: version, and the MFNs of grant and status frames."""

    version: int
    grant_frames: np.ndarray  # '<u8'
    status_frames: np.ndarray  # '<u8'

    @property
    def nr_grant_frames(self) -> int:
        return len(self.grant_frames)

    @property
    def nr_status_frames(self) -> int:
        return len(self.status_frames)

    @property
    def nr_entries(self) -> int:
        """Grant entries the table holds: 512 per frame in v1, 256 in v2."""
        return self.nr_grant_frames * (512 if self.version == 1 else 256)


@dataclass(frozen=True, eq=False)
class EvtchnAbi(Value):
    """§4.12 LU_EVTCHN_ABI: the ABI, FIFO control blocks and event-array pages."""

    abi: int
    control_blocks: np.ndarray  # ControlBlock dtype
    event_array_gfns: np.ndarray  # '<u8'

    @property
    def is_fifo(self) -> bool:
        return self.abi == 2


@dataclass(frozen=True, eq=False)
class IoreqServer(Value):
    """One entry of §4.14 LU_IOREQ_SERVERS."""

    id: int
    dm_domid: int
    enabled: int
    bufioreq: int
    ioreq_gfn: int
    bufioreq_gfn: int
    ranges: np.ndarray  # IoreqRange dtype


@dataclass(frozen=True, eq=False)
class IoreqServers(Value):
    """§4.14 LU_IOREQ_SERVERS."""

    servers: tuple[IoreqServer, ...]


_GTH = GrantTableHeader.LAYOUT


def decode_grant_table(body: memoryview, ctx: Ctx) -> GrantTable:
    if len(body) < _GTH.size:
        ctx.fail_length(f">= {_GTH.size}")
    h: GrantTableHeader = _GTH.from_tuple(ctx.checked(_GTH, body))
    n = _GTH.size + 8 * (h.nr_grant_frames + h.nr_status_frames)
    if len(body) != n:
        ctx.fail_length(n)
    grant = np.frombuffer(body, U64, h.nr_grant_frames, _GTH.size)
    status = np.frombuffer(body, U64, h.nr_status_frames, _GTH.size + 8 * h.nr_grant_frames)
    return GrantTable(h.version, grant, status)


def encode_grant_table(value: Any) -> Sequence[Any]:
    if not isinstance(value, GrantTable):
        raise EncodeError(f"LU_GRANT_TABLE: expected GrantTable, got {type(value).__name__}")
    hdr = GrantTableHeader(
        version=value.version,
        nr_grant_frames=value.nr_grant_frames,
        nr_status_frames=value.nr_status_frames,
    )
    return [
        _GTH.pack(hdr),
        np.ascontiguousarray(value.grant_frames, U64).data.cast("B"),
        np.ascontiguousarray(value.status_frames, U64).data.cast("B"),
    ]


_EAH = EvtchnAbiHeader.LAYOUT
_CB = ControlBlock.LAYOUT
_EPH = EvtchnPagesHeader.LAYOUT


def decode_evtchn_abi(body: memoryview, ctx: Ctx) -> EvtchnAbi:
    if len(body) < _EAH.size:
        ctx.fail_length(f">= {_EAH.size + _EPH.size}")
    abi, ncb = ctx.checked(_EAH, body)
    if abi == 1 and ncb:
        ctx.fail(
            "two-level ABI with control blocks",
            at=4,
            field="nr_control_blocks",
            expected=0,
            got=ncb,
        )
    pages_at = _EAH.size + ncb * _CB.size
    if len(body) < pages_at + _EPH.size:
        ctx.fail_length(f">= {pages_at + _EPH.size}")
    cbs = _CB.array(body, _EAH.size, ncb)
    vio = _CB.check_array(cbs, ctx.epoch)
    if vio is not None:
        ctx.fail_violation(vio, at=_EAH.size, prefix="control_blocks", entry_size=_CB.size)
    npages = ctx.checked(_EPH, body, pages_at)[0]
    if abi == 1 and npages:
        ctx.fail(
            "two-level ABI with event-array pages",
            at=pages_at,
            field="nr_event_array_pages",
            expected=0,
            got=npages,
        )
    n = pages_at + _EPH.size + 8 * npages
    if len(body) != n:
        ctx.fail_length(n)
    gfns = np.frombuffer(body, U64, npages, pages_at + _EPH.size)
    return EvtchnAbi(abi, cbs, gfns)


def encode_evtchn_abi(value: Any) -> Sequence[Any]:
    if not isinstance(value, EvtchnAbi):
        raise EncodeError(f"LU_EVTCHN_ABI: expected EvtchnAbi, got {type(value).__name__}")
    cbs = np.ascontiguousarray(value.control_blocks, _CB.dtype)
    return [
        _EAH.pack(EvtchnAbiHeader(abi=value.abi, nr_control_blocks=len(cbs))),
        _CB.pack_array(cbs),
        _EPH.pack(EvtchnPagesHeader(nr_event_array_pages=len(value.event_array_gfns))),
        np.ascontiguousarray(value.event_array_gfns, U64).data.cast("B"),
    ]


_ISH = IoreqServerHeader.LAYOUT
_IR = IoreqRange.LAYOUT


def decode_ioreq_servers(body: memoryview, ctx: Ctx) -> IoreqServers:
    if len(body) < 8:
        ctx.fail_length(">= 8 (count header)")
    count, rsvd = _CH.unpack_tuple(body)
    if rsvd:
        ctx.fail("reserved field not zero", at=4, field="rsvd", expected=0, got=rsvd)
    pos = 8
    servers = []
    for i in range(count):
        if pos + _ISH.size > len(body):
            ctx.fail_length(f"room for server {i} of {count}")
        h: IoreqServerHeader = _ISH.from_tuple(ctx.checked(_ISH, body, pos, f"servers[{i}]."))
        rpos = pos + _ISH.size
        if rpos + h.nr_ranges * _IR.size > len(body):
            ctx.fail_length(f"room for {h.nr_ranges} ranges of server {i}")
        ranges = _IR.array(body, rpos, h.nr_ranges)
        vio = _IR.check_array(ranges, ctx.epoch)
        if vio is not None:
            ctx.fail_violation(vio, at=rpos, prefix=f"servers[{i}].ranges", entry_size=_IR.size)
        servers.append(
            IoreqServer(
                h.id, h.dm_domid, h.enabled, h.bufioreq, h.ioreq_gfn, h.bufioreq_gfn, ranges
            )
        )
        pos = rpos + h.nr_ranges * _IR.size
    if pos != len(body):
        ctx.fail_length(pos, "body longer than its servers")
    return IoreqServers(tuple(servers))


def encode_ioreq_servers(value: Any) -> Sequence[Any]:
    if not isinstance(value, IoreqServers):
        raise EncodeError(f"LU_IOREQ_SERVERS: expected IoreqServers, got {type(value).__name__}")
    parts: list[Any] = [_CH.pack(CountHeader(count=len(value.servers)))]
    for s in value.servers:
        ranges = np.ascontiguousarray(s.ranges, _IR.dtype)
        parts.append(
            _ISH.pack(
                IoreqServerHeader(
                    id=s.id,
                    dm_domid=s.dm_domid,
                    enabled=s.enabled,
                    bufioreq=s.bufioreq,
                    nr_ranges=len(ranges),
                    ioreq_gfn=s.ioreq_gfn,
                    bufioreq_gfn=s.bufioreq_gfn,
                )
            )
        )
        parts.append(_IR.pack_array(ranges))
    return parts
