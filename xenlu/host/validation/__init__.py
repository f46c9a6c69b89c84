"""Whole-host semantic validation of a Live Update stream (LU spec §7).

``verify`` (the decoder) is structural: every record is well-formed by
itself. :func:`validate` checks every rule that relates two or more records
or entries — ownership across domains, references from one record to
another or to another domain, vCPU bounds against LU_DOMAIN, ports against
the ABI record, uniqueness and non-overlap — and reports **every** finding,
not just the first, each with a stable code (see :data:`CODES`).

>>> from xenlu.testing.hostgen import make_host
>>> report = validate(make_host((4, 11), n_hvm=2, mem_mib=4))
>>> report.ok, report.findings
(True, [])

Theory of operation
-------------------
Every check works on host-wide columns: the entries of one bulk record type
of all domains concatenated (in ascending domid order) with a domain column
built by ``np.repeat``; no check loops over entries in Python (loops run
over domains or over the bounded set of findings that are reported). The
two big tables, ownership and P2M, are walked in windows of 1 Mi rows of
that same concatenation, so temporaries stay a few MiB and are reused.

Ownership (§4.8) is the heart of it. Frames are resolved through one
*owner index* over **sorted extents** (``_index``): one ``np.sort`` of the
extent starts (packed with their row), a running maximum of their ends
splits them into clusters of overlapping rows (a cluster of more than one
row is a set of duplicates, cut into cells by one sort of its boundary
keys), and every lookup is a ``searchsorted`` on the disjoint segment
starts with a check of the segment end. A fragmented host (one-frame
extents, the common case at scale) keeps only each domain's frames, sorted
(4 bytes a frame); each domain's P2M and page-type frames are merged with
its own list, so no lookup per entry touches a host-wide table. No extent is expanded into its
frames and no frame-sized array exists: cost follows the stream's entries,
not the frame numbers in it, and every frame number is an exact ``uint64``
(frames up to ``2**64 - 1``; an extent whose end would wrap saturates
there and is beyond ``max_page`` anyway).

A frame claimed by several ownership entries is *ambiguous*: it is
reported as ``OWN_DUPLICATE`` on every claimant (naming one overlapping
entry, at most eight other claimant domains, and ``claimants``, the number
of entries of the cluster), and the rules that need a frame's owner (P2M,
page types, grant frames and maps) skip it rather than cascading.
Ownership is also described as maximal *runs* of frames with the same owner
(or none, or ambiguous), so a P2M extent of any length is checked with two
run lookups instead of being expanded frame by frame; an extent breaking
two rules (``map_foreign`` over its own and unowned frames) gets both
findings, each naming the frame that breaks it.

The bounded output: a rule broken by millions of entries yields the first
``max_per_code`` findings (by entry index) per code per domain; the rest
are counted in :attr:`Report.omitted`.

Decisions where the spec leaves room:

* A finding sits on the entry that holds the offending value. Where two
  entries conflict symmetrically (a frame owned twice, overlapping GFN
  ranges, overlapping extents, overlapping IOREQ ranges) each entry gets a
  finding naming the other. Where a key must be unique (page-type mfn,
  grant handle, port, control-block vCPU, IOREQ id, VIRQ, pirq), every
  occurrence after the first gets one, with ``first_entry``.
* ``others`` names every other domain involved, as the records name them:
  a granting, emulating or remote domain that is missing from the stream
  is still named (its absence is the finding).
* A FIFO port at or beyond ``1024 × nr_event_array_pages`` is valid by
  §4.12 (its pending state is the ``pending`` flag); it is reported as the
  *warning* ``EVTCHN_FIFO_BEYOND_ARRAY`` because the guest has not yet
  given it an event word.
* Global-section findings (extents) carry ``domid`` = ``DOMID_XEN``, the
  domid of the global section's LU_SECTION_END (§4.15).
* LU_GRANT_TABLE findings: ``entry`` is the index of the frame in the
  grant frames followed by the status frames.

Layout of the package (one module per spec section; the checks share the
host tables, the owner index and the emitter):

* ``_codes`` — the finding codes; ``_report`` — :class:`Finding`,
  :class:`Report` and the bounded emitter;
* ``_arrays`` — numpy helpers; ``_host`` — :class:`Host` and its tables;
* ``_index`` — the owner index (the only module that knows how ownership is
  looked up);
* ``_ownership`` §4.3/§4.8, ``_p2m`` §4.7, ``_grants`` §4.9–§4.11,
  ``_evtchn`` §4.12/§4.13, ``_domain`` §4.14 and the vCPU rules.

:class:`Host`, :class:`Table`, :func:`owner_index` and
:func:`interdomain_peers` are the public seam other host-level tools
(:mod:`xenlu.host.restore_plan`) build on.
"""

from __future__ import annotations

from concurrent.futures import Executor

import numpy as np

from xenlu.core.errors import CallerError
from xenlu.host.validation._codes import CODES, CORRUPTION_FINDINGS, Severity
from xenlu.host.validation._domain import check_ioreq, check_vcpus
from xenlu.host.validation._evtchn import Peers, check_evtchns, interdomain_peers
from xenlu.host.validation._grants import check_grant_maps, check_grant_tables, check_page_types
from xenlu.host.validation._host import COLUMNS, Host, IoreqTable, Table
from xenlu.host.validation._index import Method, OwnerIndex, owner_index
from xenlu.host.validation._ownership import check_ownership
from xenlu.host.validation._p2m import check_p2m
from xenlu.host.validation._report import Finding, Omitted, Out, Report
from xenlu.lu.stream import LUStream
from xenlu.lu.values import DOMID_XEN

__all__ = [
    "CODES",
    "COLUMNS",
    "CORRUPTION_FINDINGS",
    "Finding",
    "Host",
    "IoreqTable",
    "Method",
    "Omitted",
    "OwnerIndex",
    "Peers",
    "Report",
    "Severity",
    "Table",
    "interdomain_peers",
    "owner_index",
    "validate",
]


def validate(
    stream: LUStream,
    *,
    bootmem_check: bool = True,
    max_per_code: int = 100,
    method: Method = "auto",
    executor: Executor | None = None,
) -> Report:
    """Check every semantic rule of LU spec §7 over the whole host.

    ``bootmem_check=False`` skips the rules about the LU bootmem (owned
    frames and extents inside it). ``max_per_code`` bounds the findings per
    code per domain (the rest are counted in :attr:`Report.omitted`).
    ``method`` is kept for compatibility: ``"auto"``, ``"dense"`` and
    ``"interval"`` (the two indexes of earlier releases) all use the one
    sorted-extent owner index, so they give the same report. ``executor``
    (optional, the caller's: the library keeps no pool) runs the per-domain
    sorts and merges of the owner index on its threads; the report is the
    same with or without it.

    >>> from xenlu.testing.hostgen import make_host
    >>> validate(make_host((4, 16), n_hvm=1, mem_mib=2)).ok
    True
    """
    from xenlu.api import expect_format

    expect_format(stream, "lu", "validate")
    if max_per_code < 1:
        raise CallerError("max_per_code must be >= 1")
    if method not in ("auto", "dense", "interval"):
        raise CallerError(f"unknown method {method!r}; expected auto, dense or interval")
    h = Host(stream)
    out = Out(max_per_code)
    idx = owner_index(h, method, executor, watch=_grant_frames(h))
    check_ownership(h, idx, out, bootmem_check)
    check_p2m(h, idx, out)
    check_page_types(h, idx, out)
    check_grant_tables(h, idx, out)
    check_grant_maps(h, idx, out)
    check_evtchns(h, out)
    check_ioreq(h, out)
    check_vcpus(h, out)
    findings = sorted(out.findings, key=Finding.sort_key)
    omitted = sorted(out.omitted, key=lambda o: (o.domid != DOMID_XEN, o.domid, o.code))
    return Report(findings, omitted, max_per_code, idx.name)


def _grant_frames(h: Host) -> np.ndarray | None:
    """Every grant and status frame of the host (their owners' rows are
    looked up by the grant-table rules), or None when there are none."""
    fr = [
        np.concatenate((gt.grant_frames, gt.status_frames)).astype(np.uint64)
        for d in h.doms
        if (gt := d.grant_table) is not None
    ]
    return np.concatenate(fr) if fr else None
