"""The finding codes of :func:`xenlu.host.validation.validate`: severity, record, description.

Stable: tests and tools key on these codes.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["CODES", "CORRUPTION_FINDINGS", "RECORD_RANK", "Severity"]

Severity = Literal["error", "warning"]

#: code → (severity, record, description). Stable: tests and tools key on these.
CODES: dict[str, tuple[Severity, str, str]] = {
    # §4.3 global extents
    "EXTENT_OVERLAP": (
        "error",
        "LU_REUSABLE_REGIONS",
        "an LU_REUSABLE_REGIONS / LU_XEN_PAGES extent overlaps another extent",
    ),
    "EXTENT_IN_BOOTMEM": (
        "error",
        "LU_REUSABLE_REGIONS",
        "an LU_REUSABLE_REGIONS / LU_XEN_PAGES extent overlaps the LU bootmem",
    ),
    # §4.8 ownership
    "OWN_DUPLICATE": (
        "error",
        "LU_PAGE_OWNERSHIP",
        "a frame is owned twice (by two domains, or twice by one)",
    ),
    "OWN_BEYOND_MAX_PAGE": ("error", "LU_PAGE_OWNERSHIP", "an owned frame is at or above max_page"),
    "OWN_IN_BOOTMEM": ("error", "LU_PAGE_OWNERSHIP", "an owned frame lies in the LU bootmem"),
    "OWN_IN_REUSABLE": (
        "error",
        "LU_PAGE_OWNERSHIP",
        "an owned frame lies in an LU_REUSABLE_REGIONS extent",
    ),
    "OWN_IN_XEN_PAGES": (
        "error",
        "LU_PAGE_OWNERSHIP",
        "an owned frame lies in an LU_XEN_PAGES extent",
    ),
    # §4.7 P2M
    "P2M_GFN_OVERLAP": ("error", "LU_P2M", "GFN ranges of one domain overlap"),
    "P2M_FRAME_NOT_OWNED": (
        "error",
        "LU_P2M",
        "a RAM-type P2M extent maps a frame the domain does not own",
    ),
    "P2M_SHARED_OUTSIDE_COW": (
        "error",
        "LU_P2M",
        "a ram_shared extent lies outside every LU_XEN_PAGES SHARED extent",
    ),
    "P2M_FOREIGN_UNOWNED": (
        "error",
        "LU_P2M",
        "a grant_map / map_foreign extent maps a frame no domain owns",
    ),
    "P2M_FOREIGN_SELF": (
        "error",
        "LU_P2M",
        "a grant_map / map_foreign extent maps a frame of the domain itself",
    ),
    "P2M_GRANT_UNBACKED": (
        "error",
        "LU_P2M",
        "a grant_map page has no matching LU_GRANT_MAPS entry of its own",
    ),
    # §4.9 page types
    "PT_NOT_OWNED": ("error", "LU_PAGE_TYPES", "a page type is given for a frame not owned"),
    "PT_DUPLICATE": ("error", "LU_PAGE_TYPES", "an mfn appears twice in a domain's page types"),
    # §4.10 grant table
    "GNT_TOO_MANY_FRAMES": (
        "error",
        "LU_GRANT_TABLE",
        "nr_grant_frames exceeds the effective max_grant_frames",
    ),
    "GNT_VERSION_ABOVE_MAX": (
        "error",
        "LU_GRANT_TABLE",
        "the table version exceeds grant_opts (>= 4.16) or the host maximum",
    ),
    "GNT_FRAME_NOT_OWNED": (
        "error",
        "LU_GRANT_TABLE",
        "a grant or status frame is not owned by its domain",
    ),
    "GNT_FRAME_NOT_XEN_HEAP": (
        "error",
        "LU_GRANT_TABLE",
        "a grant or status frame is owned without the XEN_HEAP flag",
    ),
    # §4.11 grant maps
    "GMAP_GRANTER_MISSING": ("error", "LU_GRANT_MAPS", "the granting domain is not in the stream"),
    "GMAP_GRANTER_SELF": ("error", "LU_GRANT_MAPS", "the granting domain is the mapping domain"),
    "GMAP_REF_OUT_OF_TABLE": (
        "error",
        "LU_GRANT_MAPS",
        "the grant ref lies outside the granting domain's table",
    ),
    "GMAP_FRAME_NOT_GRANTERS": (
        "error",
        "LU_GRANT_MAPS",
        "the mapped frame is not owned by the granting domain",
    ),
    "GMAP_HANDLE_LIMIT": (
        "error",
        "LU_GRANT_MAPS",
        "the handle is >= effective max_maptrack_frames x 256",
    ),
    "GMAP_HANDLE_DUPLICATE": ("error", "LU_GRANT_MAPS", "a handle appears twice in a domain"),
    "GMAP_VCPU_RANGE": ("error", "LU_GRANT_MAPS", "the vcpu is >= max_vcpus"),
    # §4.12 / §4.13 event channels
    "EVTCHN_PORT_LIMIT": (
        "error",
        "LU_EVTCHNS",
        "port >= min(ABI limit, max_evtchn_port + 1)",
    ),
    "EVTCHN_FIFO_BEYOND_ARRAY": (
        "warning",
        "LU_EVTCHNS",
        "a FIFO port beyond 1024 x nr_event_array_pages has no event word yet",
    ),
    "EVTCHN_PORT_DUPLICATE": ("error", "LU_EVTCHNS", "a port appears twice in a domain"),
    "EVTCHN_NOTIFY_VCPU_RANGE": ("error", "LU_EVTCHNS", "notify_vcpu is >= max_vcpus"),
    "EVTCHN_LAST_VCPU_RANGE": ("error", "LU_EVTCHNS", "the FIFO last vcpu is >= max_vcpus"),
    "EVTCHN_2L_PRIORITY": ("error", "LU_EVTCHNS", "a two-level channel's priority is not 7"),
    "EVTCHN_2L_PENDING": ("error", "LU_EVTCHNS", "a two-level channel has the pending flag"),
    "EVTCHN_2L_LAST": ("error", "LU_EVTCHNS", "a two-level channel's last fields are not zero"),
    "EVTCHN_REMOTE_DOMAIN_MISSING": (
        "error",
        "LU_EVTCHNS",
        "an interdomain channel's remote domain is not in the stream",
    ),
    "EVTCHN_REMOTE_PORT_MISSING": (
        "error",
        "LU_EVTCHNS",
        "an interdomain channel's remote port is not listed",
    ),
    "EVTCHN_NOT_RECIPROCAL": (
        "error",
        "LU_EVTCHNS",
        "an interdomain channel's remote is not an interdomain channel naming it back",
    ),
    "EVTCHN_VIRQ_DUPLICATE": ("error", "LU_EVTCHNS", "a global VIRQ is bound twice in a domain"),
    "EVTCHN_VCPU_VIRQ_DUPLICATE": (
        "error",
        "LU_EVTCHNS",
        "a per-vCPU VIRQ is bound twice on one vCPU",
    ),
    "EVTCHN_PIRQ_DUPLICATE": ("error", "LU_EVTCHNS", "a pirq is bound twice in a domain"),
    "EVTCHN_CB_VCPU_RANGE": ("error", "LU_EVTCHN_ABI", "a control block's vcpu is >= max_vcpus"),
    "EVTCHN_CB_DUPLICATE": (
        "error",
        "LU_EVTCHN_ABI",
        "two control blocks are registered for one vCPU",
    ),
    # §4.6 / §4.12 SHINFO32
    "SHINFO32_MISMATCH": (
        "error",
        "LU_DOMAIN",
        "PV lu_state SHINFO32 disagrees with X86_PV_INFO guest_width == 4",
    ),
    # §4.14 IOREQ servers
    "IOREQ_DM_MISSING": ("error", "LU_IOREQ_SERVERS", "the emulating domain is not in the stream"),
    "IOREQ_DM_SELF": ("error", "LU_IOREQ_SERVERS", "the emulating domain is the domain itself"),
    "IOREQ_ID_DUPLICATE": ("error", "LU_IOREQ_SERVERS", "a server id appears twice in a domain"),
    "IOREQ_RANGE_OVERLAP": (
        "error",
        "LU_IOREQ_SERVERS",
        "two ranges of one type within one server overlap",
    ),
    # §2 / §4.16 vCPU ids
    "PV_VCPU_RANGE": ("error", "X86_PV_VCPU_BASIC", "a PV vCPU record's vcpu_id is >= max_vcpus"),
    "HVM_INSTANCE_RANGE": (
        "error",
        "HVM_CONTEXT",
        "a per-vCPU HVM_CONTEXT entry's instance is >= max_vcpus",
    ),
}

#: Fault kinds of :mod:`xenlu.testing.strategies` → the code that reports them.
CORRUPTION_FINDINGS: dict[str, str] = {
    "owned_twice": "OWN_DUPLICATE",
    "evtchn_nonreciprocal": "EVTCHN_NOT_RECIPROCAL",
    "grant_map_unowned": "GMAP_FRAME_NOT_GRANTERS",
    "port_above_max": "EVTCHN_PORT_LIMIT",
}

RECORD_RANK = {
    name: i
    for i, name in enumerate(
        (
            "LU_HOST_INFO",
            "LU_REUSABLE_REGIONS",
            "LU_XEN_PAGES",
            "LU_DOMAIN",
            "X86_PV_INFO",
            "LU_P2M",
            "LU_PAGE_OWNERSHIP",
            "LU_PAGE_TYPES",
            "LU_GRANT_TABLE",
            "LU_GRANT_MAPS",
            "LU_EVTCHN_ABI",
            "LU_EVTCHNS",
            "LU_IOREQ_SERVERS",
            "X86_PV_VCPU_BASIC",
            "X86_PV_VCPU_EXTENDED",
            "X86_PV_VCPU_XSAVE",
            "X86_PV_VCPU_MSRS",
            "HVM_CONTEXT",
        )
    )
}
