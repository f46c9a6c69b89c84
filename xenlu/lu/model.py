"""The Live Update stream's object model: sections, domains, the stream (LU spec §2).

A section keeps its records in stream order, so ``encode(decode(b)) == b``.
Equality of sections is *logical*: bulk records of one type compare as one
concatenated array, so a stream re-split at a different record size limit
still compares equal (``decode(encode(x)) == x``). Decoding is
:mod:`xenlu.lu.walk`'s, encoding :mod:`xenlu.lu.encode`'s.

>>> Section([]).record_counts()
{}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from xenlu.core.epochs import SUPPORTED_RANGE, Epoch, epoch_of, fmt_epoch, is_supported
from xenlu.core.errors import CallerError, XenLUError
from xenlu.core.registry import LU, Record, UnknownRecord
from xenlu.core.values import Value, values_equal
from xenlu.lu.grammar import name_of
from xenlu.lu.host_records import LuHostInfo, LuSectionEnd, LuVersion
from xenlu.lu.io_records import EvtchnAbi, GrantTable, IoreqServers
from xenlu.lu.records import BULK_TYPES, LU_DOMAIN_LAYOUTS, Bulk, LuDomainCommon, LuDomainInfo, T
from xenlu.lu.values import DomainType
from xenlu.migration.hvmctx import HvmContext
from xenlu.migration.libxc_records import (
    CpuidPolicy,
    HvmParams,
    MsrPolicy,
    PvVcpu,
    X86PvInfo,
    X86TscInfo,
)
from xenlu.migration.libxc_records import RecType as X

__all__ = ["GlobalSection", "LUDomain", "LUStream", "Section", "SectionInfo"]

LayoutT = TypeVar("LayoutT", bound=LuDomainCommon)

# --- the model ----------------------------------------------------------------


@dataclass(eq=False)
class Section(Value):
    """The records of one section in stream order (LU_SECTION_END excluded).

    ``end`` is the LU_SECTION_END that closed it when decoded, ``offset`` its
    first byte and ``checksum_ok`` whether crc32c and size matched (None when
    not checked); none of them take part in equality.
    """

    records: list[Record]
    end: LuSectionEnd | None = field(default=None, compare=False)
    offset: int | None = field(default=None, compare=False)
    checksum_ok: bool | None = field(default=None, compare=False)

    def of_type(self, type_code: int) -> list[Any]:
        """Values of every record of ``type_code``, in stream order."""
        return [r.value for r in self.records if r.type == type_code]

    def one(self, type_code: int) -> Any:
        """The value of the record of ``type_code``, or None."""
        for r in self.records:
            if r.type == type_code:
                return r.value
        return None

    def chunks(self, type_code: int) -> list[np.ndarray]:
        """Zero-copy views of the entries of every bulk record of ``type_code``."""
        return [r.value.entries for r in self.records if r.type == type_code]

    def entries(self, type_code: int, dtype: np.dtype | None = None) -> np.ndarray:
        """All entries of the bulk records of ``type_code`` as one array.

        A single record is returned as its zero-copy view; several are
        concatenated (one copy). With no record, an empty array of ``dtype``.
        """
        parts = self.chunks(type_code)
        if len(parts) == 1:
            return parts[0]
        if parts:
            return np.concatenate(parts)
        return np.zeros(0, dtype=dtype if dtype is not None else np.uint8)

    def bulk_view(self, type_code: int, dtype: np.dtype) -> np.ndarray:
        """The entries of every bulk record of ``type_code`` as one read-only array.

        The same array object on every call while the section's bulk records
        of that type stay the same objects: a single record's entries (a
        decoded record's own read-only view, or a read-only view of a built
        record's array), one concatenation of several (made on first use),
        an empty array of ``dtype`` for none. Read-only in every shape, so a caller
        cannot change the records through it; ``.copy()`` to edit.

        >>> from xenlu.lu.records import Bulk, OwnershipEntry, T
        >>> a = OwnershipEntry.LAYOUT.empty(2)
        >>> s = Section([Record(T.LU_PAGE_OWNERSHIP, Bulk(a[:1])),
        ...              Record(T.LU_PAGE_OWNERSHIP, Bulk(a[1:]))])
        >>> v = s.bulk_view(T.LU_PAGE_OWNERSHIP, a.dtype)
        >>> v is s.bulk_view(T.LU_PAGE_OWNERSHIP, a.dtype), len(v), v.flags.writeable
        (True, 2, False)
        """
        parts = self.chunks(type_code)
        if len(parts) == 1 and not parts[0].flags.writeable:
            return parts[0]  # a decoded record: already a read-only view of the input
        cache: dict[int, tuple[list[np.ndarray], np.ndarray]]
        cache = self.__dict__.setdefault("_bulk_views", {})
        hit = cache.get(type_code)
        if (
            hit is not None
            and len(hit[0]) == len(parts)
            and all(a is b for a, b in zip(hit[0], parts, strict=True))
            and (parts or hit[1].dtype == dtype)
        ):
            return hit[1]
        if len(parts) == 1:
            view = parts[0].view()
        elif parts:
            view = np.concatenate(parts)
        else:
            view = np.zeros(0, dtype=dtype)
        view.flags.writeable = False
        # The parts are kept beside the view: their identity is the cache key.
        cache[type_code] = (parts, view)
        return view

    @property
    def optional(self) -> list[UnknownRecord]:
        """Unknown records kept from the stream (optional, or mandatory when not strict)."""
        return [r.value for r in self.records if isinstance(r.value, UnknownRecord)]

    def record_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            n = name_of(r.type)
            out[n] = out.get(n, 0) + 1
        return out

    def entry_counts(self) -> dict[str, int]:
        """Record name → number of entries, for records that carry entries."""
        out: dict[str, int] = {}
        for r in self.records:
            n = entry_count(r.value)
            if n is not None:
                name = name_of(r.type)
                out[name] = out.get(name, 0) + n
        return out

    def _logical(self) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for r in self.records:
            if r.type in BULK_TYPES:
                out.setdefault(("bulk", r.type), []).append(r.value.entries)
            else:
                out.setdefault(r.type, []).append(r.value)
        for k, v in out.items():
            if isinstance(k, tuple):
                out[k] = np.concatenate(v) if len(v) > 1 else v[0]
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Section) or type(self) is not type(other):
            return NotImplemented
        return values_equal(self._logical(), other._logical())

    __hash__ = None


def entry_count(value: Any) -> int | None:
    if isinstance(value, Bulk):
        return len(value.entries)
    for attr in ("entries", "leaves", "pfns"):
        v = getattr(value, attr, None)
        if v is not None and hasattr(v, "__len__"):
            return len(v)
    if isinstance(value, IoreqServers):
        return len(value.servers)
    if isinstance(value, GrantTable):
        return value.nr_grant_frames + value.nr_status_frames
    return None


@dataclass(eq=False)
class GlobalSection(Section):
    """The global section: LU_VERSION, LU_HOST_INFO, reusable regions, Xen pages."""

    @property
    def version(self) -> tuple[int, int]:
        v: LuVersion = self.one(T.LU_VERSION)
        return (v.xen_major, v.xen_minor)

    @property
    def host(self) -> LuHostInfo:
        h: LuHostInfo = self.one(T.LU_HOST_INFO)
        return h

    @property
    def reusable_regions(self) -> np.ndarray:
        """LU_REUSABLE_REGIONS entries (one read-only array, the same on every access)."""
        from xenlu.lu.host_records import RegionExtent

        return self.bulk_view(T.LU_REUSABLE_REGIONS, RegionExtent.LAYOUT.dtype)

    @property
    def xen_pages(self) -> np.ndarray:
        """LU_XEN_PAGES entries (one read-only array, the same on every access)."""
        from xenlu.lu.host_records import XenPagesExtent

        return self.bulk_view(T.LU_XEN_PAGES, XenPagesExtent.LAYOUT.dtype)


@dataclass(eq=False)
class LUDomain(Section):
    """One domain section. ``info`` is its LU_DOMAIN (the first record).

    Bulk accessors (``p2m``, ``ownership``, ``page_types``, ``grant_maps``,
    ``evtchns``) return one read-only structured numpy array each, the same
    object on every access: a zero-copy view of a single record, or one
    concatenation (made on first access) of a record the stream split into
    several. ``.copy()`` it to change entries, then put the copy back in a
    record.
    """

    @property
    def info(self) -> LuDomainInfo:
        """The LU_DOMAIN value (the first record of a valid section)."""
        info: LuDomainInfo | None = self.one(T.LU_DOMAIN)
        if info is None:
            raise CallerError("domain section without an LU_DOMAIN record")
        return info

    def info_as(self, layout: type[LayoutT]) -> LayoutT:
        """``info`` as the LU_DOMAIN declaration ``layout`` of one epoch, typed as such.

        For code that knows its stream's epoch (a conversion step) and reads
        a field only some epochs have; a :class:`CallerError` when the section
        holds another epoch's LU_DOMAIN.
        """
        info = self.info
        if not isinstance(info, layout):
            raise CallerError(
                f"domain {info.domid}: LU_DOMAIN is {type(info).__name__}, "
                f"expected {layout.__name__}"
            )
        return info

    @property
    def domid(self) -> int:
        return int(self.info.domid)

    @property
    def is_hvm(self) -> bool:
        return bool(self.info.domain_type == DomainType.x86_hvm)

    @property
    def type_name(self) -> str:
        return "hvm" if self.is_hvm else "pv"

    def _bulk(self, type_code: int) -> np.ndarray:
        spec = LU.get(type_code)
        assert spec is not None
        # The newest entry layout: the dtype of an empty array (no record to say).
        dt: np.dtype = spec.layouts[-1].LAYOUT.dtype
        return self.bulk_view(type_code, dt)

    @property
    def p2m(self) -> np.ndarray:
        """LU_P2M entries (§4.7)."""
        return self._bulk(T.LU_P2M)

    @property
    def ownership(self) -> np.ndarray:
        """LU_PAGE_OWNERSHIP entries (§4.8)."""
        return self._bulk(T.LU_PAGE_OWNERSHIP)

    @property
    def page_types(self) -> np.ndarray:
        """LU_PAGE_TYPES entries (§4.9)."""
        return self._bulk(T.LU_PAGE_TYPES)

    @property
    def grant_maps(self) -> np.ndarray:
        """LU_GRANT_MAPS entries (§4.11)."""
        return self._bulk(T.LU_GRANT_MAPS)

    @property
    def evtchns(self) -> np.ndarray:
        """LU_EVTCHNS entries (§4.13); an empty array has the 4.15 layout."""
        from xenlu.lu.io_records import EvtchnEntry415

        return self.bulk_view(T.LU_EVTCHNS, EvtchnEntry415.LAYOUT.dtype)

    @property
    def grant_table(self) -> GrantTable | None:
        gt: GrantTable | None = self.one(T.LU_GRANT_TABLE)
        return gt

    @property
    def evtchn_abi(self) -> EvtchnAbi | None:
        abi: EvtchnAbi | None = self.one(T.LU_EVTCHN_ABI)
        return abi

    @property
    def ioreq_servers(self) -> IoreqServers | None:
        s: IoreqServers | None = self.one(T.LU_IOREQ_SERVERS)
        return s

    @property
    def pv_info(self) -> X86PvInfo | None:
        """X86_PV_INFO (PV domains)."""
        v: X86PvInfo | None = self.one(X.X86_PV_INFO)
        return v

    @property
    def hvm_context(self) -> HvmContext | None:
        """HVM_CONTEXT (HVM domains)."""
        v: HvmContext | None = self.one(X.HVM_CONTEXT)
        return v

    @property
    def hvm_params(self) -> HvmParams | None:
        v: HvmParams | None = self.one(X.HVM_PARAMS)
        return v

    @property
    def tsc_info(self) -> X86TscInfo | None:
        v: X86TscInfo | None = self.one(X.X86_TSC_INFO)
        return v

    def vcpus(self, type_code: int = X.X86_PV_VCPU_BASIC) -> list[PvVcpu]:
        """PV vCPU records of one kind (BASIC by default)."""
        return self.of_type(type_code)

    @classmethod
    def build(
        cls,
        info: LuDomainInfo,
        *,
        pv_info: X86PvInfo | None = None,
        cpuid_policy: CpuidPolicy | None = None,
        msr_policy: MsrPolicy | None = None,
        tsc_info: X86TscInfo | None = None,
        p2m: np.ndarray | None = None,
        ownership: np.ndarray | None = None,
        page_types: np.ndarray | None = None,
        grant_table: GrantTable | None = None,
        grant_maps: np.ndarray | None = None,
        evtchn_abi: EvtchnAbi | None = None,
        evtchns: np.ndarray | None = None,
        ioreq_servers: IoreqServers | None = None,
        vcpus: Iterable[tuple[int, PvVcpu]] = (),
        hvm_context: HvmContext | None = None,
        hvm_params: HvmParams | None = None,
        optional: Iterable[UnknownRecord] = (),
    ) -> LUDomain:
        """A domain section in canonical record order; empty arrays are omitted.

        ``vcpus`` is a sequence of ``(record type, PvVcpu)``.
        """
        recs: list[Record] = [Record(T.LU_DOMAIN, info)]

        def add(t: int, v: object) -> None:
            if v is not None:
                recs.append(Record(t, v))

        def bulk(t: int, a: np.ndarray | None) -> None:
            if a is not None and len(a):
                recs.append(Record(t, Bulk(a)))

        add(X.X86_PV_INFO, pv_info)
        add(X.X86_CPUID_POLICY, cpuid_policy)
        add(X.X86_MSR_POLICY, msr_policy)
        add(X.X86_TSC_INFO, tsc_info)
        bulk(T.LU_P2M, p2m)
        bulk(T.LU_PAGE_OWNERSHIP, ownership)
        bulk(T.LU_PAGE_TYPES, page_types)
        add(T.LU_GRANT_TABLE, grant_table)
        bulk(T.LU_GRANT_MAPS, grant_maps)
        add(T.LU_EVTCHN_ABI, evtchn_abi)
        bulk(T.LU_EVTCHNS, evtchns)
        add(T.LU_IOREQ_SERVERS, ioreq_servers)
        for t, v in vcpus:
            add(t, v)
        add(X.HVM_CONTEXT, hvm_context)
        add(X.HVM_PARAMS, hvm_params)
        for u in optional:
            recs.append(Record(u.type, u))
        return cls(recs)


@dataclass(eq=False)
class LUStream(Value):
    """A decoded (or built) Live Update stream.

    >>> s = LUStream.build((4, 11), host=...)   # doctest: +SKIP
    """

    global_section: GlobalSection
    domains: list[LUDomain]

    @property
    def version(self) -> tuple[int, int]:
        return self.global_section.version

    @property
    def xen_version(self) -> str:
        return fmt_epoch(self.version)

    @property
    def epoch(self) -> Epoch:
        return epoch_of(*self.version)

    @property
    def host(self) -> LuHostInfo:
        return self.global_section.host

    @property
    def reusable_regions(self) -> np.ndarray:
        return self.global_section.reusable_regions

    @property
    def xen_pages(self) -> np.ndarray:
        return self.global_section.xen_pages

    @property
    def sections(self) -> list[Section]:
        return [self.global_section, *self.domains]

    @property
    def sections_ok(self) -> bool | None:
        """True when every section's checksum matched (None if not checked)."""
        oks = [s.checksum_ok for s in self.sections]
        if any(o is None for o in oks):
            return None
        return all(oks)

    def check_domain_layouts(self, error: type[XenLUError], needs: str) -> None:
        """Raise ``error`` unless every LU_DOMAIN is the declaration of the stream's epoch.

        ``needs`` says who needs it in the message ("Xen 4.15", "a Xen 4.15
        stream"): encoding and conversion both refuse a mixed stream, each
        with its own error class.
        """
        want = LU_DOMAIN_LAYOUTS[self.epoch]
        for d in self.domains:
            if type(d.info) is not want:
                raise error(
                    f"domain {d.domid}: LU_DOMAIN is {type(d.info).__name__}, "
                    f"but {needs} needs {want.__name__}"
                )

    def domain(self, domid: int) -> LUDomain:
        for d in self.domains:
            if d.domid == domid:
                return d
        raise CallerError(f"no domain {domid} in the stream")

    @classmethod
    def build(
        cls,
        version: tuple[int, int],
        *,
        host: LuHostInfo,
        reusable_regions: np.ndarray | None = None,
        xen_pages: np.ndarray | None = None,
        domains: Sequence[LUDomain] = (),
        optional: Iterable[UnknownRecord] = (),
    ) -> LUStream:
        """A stream in canonical order; ``host.nr_domains`` is set from ``domains``
        and the domains are sorted by domid."""
        if not is_supported(*version):
            raise CallerError(f"Xen {fmt_epoch(version)} is outside {SUPPORTED_RANGE}")
        host = dataclasses.replace(host, nr_domains=len(domains))
        recs: list[Record] = [
            Record(T.LU_VERSION, LuVersion(xen_major=version[0], xen_minor=version[1]))
        ]
        recs.append(Record(T.LU_HOST_INFO, host))
        if reusable_regions is not None and len(reusable_regions):
            recs.append(Record(T.LU_REUSABLE_REGIONS, Bulk(reusable_regions)))
        if xen_pages is not None and len(xen_pages):
            recs.append(Record(T.LU_XEN_PAGES, Bulk(xen_pages)))
        for u in optional:
            recs.append(Record(u.type, u))
        return cls(GlobalSection(recs), sorted(domains, key=lambda d: d.domid))


# --- decoding -------------------------------------------------------------------


@dataclass(frozen=True)
class SectionInfo:
    """Where a section lies: from :func:`scan_lu`."""

    domid: int  # DOMID_XEN for the global section
    start: int  # offset of its first record header
    end: int  # offset of its LU_SECTION_END header
    first_index: int  # record index of its first record
