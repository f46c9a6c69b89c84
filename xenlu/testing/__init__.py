"""Consistent test hosts and xenstored trees.

``xenlu.testing.strategies`` holds the hypothesis strategies (it needs
the ``hypothesis`` extra).

The names below are this package's public API; its modules are private to
the family. Names load on first use, so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xenlu.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from xenlu.testing.hostgen import (
        DOMAIN_BULK,
        DROPPABLE,
        FREE_CDF,
        ORDER_SLOTS,
        DomainVariations,
        HostPlan,
        HostVariations,
        Unknown,
        build_host,
        cpuid_leaves,
        host_sections,
        make_host,
        msr_entries,
        write_host,
    )
    from xenlu.testing.xenstore_hostgen import make_xenstore, node, perms

__all__ = [
    "DOMAIN_BULK",
    "DROPPABLE",
    "FREE_CDF",
    "ORDER_SLOTS",
    "DomainVariations",
    "HostPlan",
    "HostVariations",
    "Unknown",
    "build_host",
    "cpuid_leaves",
    "host_sections",
    "make_host",
    "make_xenstore",
    "msr_entries",
    "node",
    "perms",
    "write_host",
]

_WHERE: dict[str, str] = {
    "DOMAIN_BULK": "xenlu.testing.hostgen",
    "DROPPABLE": "xenlu.testing.hostgen",
    "DomainVariations": "xenlu.testing.hostgen",
    "FREE_CDF": "xenlu.testing.hostgen",
    "HostPlan": "xenlu.testing.hostgen",
    "HostVariations": "xenlu.testing.hostgen",
    "ORDER_SLOTS": "xenlu.testing.hostgen",
    "Unknown": "xenlu.testing.hostgen",
    "build_host": "xenlu.testing.hostgen",
    "cpuid_leaves": "xenlu.testing.hostgen",
    "host_sections": "xenlu.testing.hostgen",
    "make_host": "xenlu.testing.hostgen",
    "make_xenstore": "xenlu.testing.xenstore_hostgen",
    "msr_entries": "xenlu.testing.hostgen",
    "node": "xenlu.testing.xenstore_hostgen",
    "perms": "xenlu.testing.xenstore_hostgen",
    "write_host": "xenlu.testing.hostgen",
}


__getattr__ = lazy_getattr(__name__, _WHERE, globals())
