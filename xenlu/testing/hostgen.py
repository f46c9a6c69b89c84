"""Realistic, semantically consistent Live Update hosts, built with numpy.

:func:`make_host` builds a whole host for any supported Xen version: a PV
dom0 running the backends and device models, HVM guests with P2M, grant
tables (v1 and v2), FIFO and two-level event channels, IOREQ servers and
HVM context, plus the global section (bootmem, reusable regions, Xen
pages). Everything is consistent: every frame is owned once, P2M frames are
owned by the right domain, grant maps point at frames the granting domain
owns and at refs inside its table, interdomain channels are reciprocal. It
is used by ``make demo``, the tests, the property tests and the benchmarks.

It is deterministic for a given seed and scales with numpy, not Python
loops: ``fragmentation=1.0`` on a 64 GiB host yields 16.7 M single-frame
ownership entries in a few seconds.

>>> from xenlu.lu.stream import encode_lu, decode_lu
>>> host = make_host((4, 11), n_hvm=2, mem_mib=16)
>>> decode_lu(encode_lu(host)) == host
True

:func:`write_host` writes the very same host section by section to a file
or sink (:func:`host_sections` yields the sections), holding one domain at a
time: the benchmarks' 1 TiB host (268 M single-frame extents) streams to disk
in bounded memory. Both share one builder, so for the same arguments the
bytes are identical: ``write_host(sink, ...)`` writes ``encode_lu(make_host(...))``.

The builder itself is :mod:`xenlu.testing._hostgen_build` (one consistent host, every
record placed against the others); its variations live in
:mod:`xenlu.testing._hostgen_vary`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from xenlu.core.epochs import EpochLike, as_version
from xenlu.core.framing import REC_LENGTH_MAX
from xenlu.lu.stream import LUStream, Section
from xenlu.testing._hostgen_build import HostBuilder, cpuid_leaves, msr_entries
from xenlu.testing._hostgen_vary import (
    DOMAIN_BULK,
    DROPPABLE,
    FREE_CDF,
    ORDER_SLOTS,
    DomainVariations,
    HostVariations,
    Unknown,
)

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
    "msr_entries",
    "write_host",
]


@dataclass(frozen=True)
class HostPlan:
    """The knobs of :func:`make_host` (see there)."""

    version: tuple[int, int] = (4, 11)
    n_hvm: int = 3
    mem_mib: int = 64
    dom0_mem_mib: int = 64
    vcpus: int = 2
    fragmentation: float = 0.0
    seed: int = 0
    fifo_every: int = 2
    grant_v2_every: int = 2
    superpages: bool = False
    variations: HostVariations | None = None

    def __post_init__(self) -> None:
        # The one version parser: a HostPlan built by hand is checked as make_host's is.
        object.__setattr__(self, "version", as_version(self.version))

    # The facts of the i-th domain built (0 is dom0), for the builder and for
    # callers that choose variations (the strategies) alike.
    def hvm(self, i: int) -> bool:
        """Domain ``i`` is an HVM guest (dom0, ``i == 0``, is PV)."""
        return i != 0

    def fifo(self, i: int) -> bool:
        """Domain ``i`` uses FIFO event channels (every ``fifo_every``-th guest)."""
        return self.hvm(i) and self.fifo_every > 0 and i % self.fifo_every == 0

    def grant_v2(self, i: int) -> bool:
        """Domain ``i`` has a grant table v2 (every ``grant_v2_every``-th guest)."""
        return self.hvm(i) and self.grant_v2_every != 0 and i % self.grant_v2_every == 0


def make_host(
    version: EpochLike = (4, 11),
    *,
    n_hvm: int = 3,
    mem_mib: int = 64,
    dom0_mem_mib: int = 64,
    vcpus: int = 2,
    fragmentation: float = 0.0,
    seed: int = 0,
    fifo_every: int = 2,
    grant_v2_every: int = 2,
    superpages: bool = False,
    variations: HostVariations | None = None,
) -> LUStream:
    """A consistent host: a PV dom0 and ``n_hvm`` HVM guests of ``mem_mib`` MiB each.

    ``fragmentation`` (0 … 1) is the chance that two neighbouring frames of a
    domain land in different extents; extents of all domains are then
    interleaved in machine memory, like a long-running host. Every
    ``fifo_every``-th guest uses FIFO event channels and every
    ``grant_v2_every``-th guest grant-table v2. With ``superpages`` the first
    half of each domain's memory is mapped in 2 MiB extents (P2M and
    ownership), the rest fragmented. Layouts follow ``version``'s
    epoch, with every field an older xen#1 lacked at its upgrade default, so
    the host converts losslessly to any epoch. ``version`` is spelled
    ``"4.15"`` or ``(4, 15)`` (:func:`xenlu.core.epochs.as_version`).

    ``variations`` (a :class:`HostVariations`) changes the built host in
    ways that keep it consistent — sparse domain ids, a 32-bit PV dom0,
    per-domain flags and limits, host grant defaults, dropped optional
    records, bulk records split, shuffled record order, unknown optional
    records; :func:`xenlu.testing.strategies.hosts` draws them. Without it the host
    is the same, byte for byte, as before the option existed.

    >>> make_host("4.18", n_hvm=0, mem_mib=1, dom0_mem_mib=1).xen_version
    '4.18'
    """
    plan = HostPlan(
        as_version(version),
        n_hvm,
        mem_mib,
        dom0_mem_mib,
        vcpus,
        fragmentation,
        seed,
        fifo_every,
        grant_v2_every,
        superpages,
        variations,
    )
    return HostBuilder(plan).build()


def build_host(plan: HostPlan) -> LUStream:
    """The host of a :class:`HostPlan` (``make_host``'s knobs as one value).

    >>> v = HostVariations(domids=(5,), pv32=True)
    >>> [d.domid for d in build_host(HostPlan("4.15", n_hvm=1, mem_mib=1, variations=v)).domains]
    [0, 5]
    """
    return HostBuilder(plan).build()


def host_sections(
    version: EpochLike = (4, 11),
    *,
    n_hvm: int = 3,
    mem_mib: int = 64,
    dom0_mem_mib: int = 64,
    vcpus: int = 2,
    fragmentation: float = 0.0,
    seed: int = 0,
    fifo_every: int = 2,
    grant_v2_every: int = 2,
    superpages: bool = False,
    variations: HostVariations | None = None,
) -> Iterator[Section]:
    """The sections of ``make_host(...)`` (same arguments), one at a time.

    The global section comes first, then each domain's, each built only when
    asked for: a caller that encodes and drops each section holds one domain
    at a time (plus the frame layout, 4 bytes per extent when the host has
    fewer than 2^32 frames).

    >>> secs = list(host_sections("4.15", n_hvm=1, mem_mib=1, dom0_mem_mib=1))
    >>> secs == make_host("4.15", n_hvm=1, mem_mib=1, dom0_mem_mib=1).sections
    True
    """
    plan = HostPlan(
        as_version(version),
        n_hvm,
        mem_mib,
        dom0_mem_mib,
        vcpus,
        fragmentation,
        seed,
        fifo_every,
        grant_v2_every,
        superpages,
        variations,
    )
    return HostBuilder(plan).sections()


def write_host(
    target: str | os.PathLike[str] | Any,
    version: EpochLike = (4, 11),
    *,
    max_record_bytes: int = REC_LENGTH_MAX,
    **knobs: Any,
) -> int:
    """Write ``make_host(version, **knobs)`` section by section; return the bytes written.

    ``target`` is a path (written in place) or anything with ``write``. The
    bytes are those of ``encode_lu(make_host(version, **knobs))``, but only one
    domain is in memory at a time: a fully fragmented 1 TiB host streams to
    disk in a few GiB (see :func:`host_sections`).

    >>> import io
    >>> from xenlu.lu.stream import encode_lu
    >>> buf = io.BytesIO()
    >>> n = write_host(buf, "4.13", n_hvm=1, mem_mib=1, dom0_mem_mib=1, fragmentation=1.0)
    >>> buf.getvalue() == encode_lu(make_host("4.13", n_hvm=1, mem_mib=1, dom0_mem_mib=1,
    ...                                        fragmentation=1.0))
    True
    """
    from xenlu.lu.encode import END_BYTES, encode_section_to

    if isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as f:
            return write_host(f, version, max_record_bytes=max_record_bytes, **knobs)
    n = 0
    for sec in host_sections(version, **knobs):
        n += encode_section_to(sec, target, max_record_bytes=max_record_bytes)
        del sec
    target.write(END_BYTES)
    return n + len(END_BYTES)
