"""The Live Update stream: object model, decoder and encoder (LU spec §1–§4).

Theory of operation
-------------------
A stream is a global section, then one section per domain, then END (§2).
Each section is a run of records closed by LU_SECTION_END, which carries the
crc32c and length of the section's bytes. The decoder walks the records with
the shared framing loop (:func:`xenlu.framing.frames`), checks the grammar of
§2 as it goes with a small per-section state, hands each body to the
record's :class:`~xenlu.registry.RecordSpec` (LU records from
``xenlu.lu_records``, libxc records from ``xenlu.libxc``) together with the
stream's epoch, and checks each section's checksum over the input buffer
itself (no copy). Bulk records become zero-copy numpy views over the input.

:func:`verify_lu` gives the same verdicts without building the records: a
check-only pass that reads the repeatable bulk records (P2M, ownership,
page types, grant maps) with one ``unpack`` each and checks their entries
as one gathered array per type, shares :meth:`_Decoder.admit` (the §2
grammar) with the decoder for everything else, and falls back to
:func:`decode_lu` for the exact error whenever it is not sure.

A section keeps its records in stream order, so ``encode(decode(b)) == b``.
Equality of sections is *logical*: bulk records of one type compare as one
concatenated array, so a stream re-split at a different record size limit
still compares equal (``decode(encode(x)) == x``).

Example::

    >>> s = demo_stream()                      # doctest: +SKIP
    >>> data = encode_lu(s)                    # doctest: +SKIP
    >>> decode_lu(data) == s                   # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import os
import struct
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xenlu.epochs import Epoch, epoch_of, fmt_epoch, is_supported
from xenlu.errors import (
    CallerError,
    ChecksumError,
    EncodeError,
    FramingError,
    GrammarError,
    RecordError,
    UnknownRecordError,
    VersionError,
    XenLUError,
)
from xenlu.framing import (
    HDR,
    REC_LENGTH_MAX,
    BytesSink,
    RecordWriter,
    as_buffer,
    crc32c,
    frames,
    record_end,
)
from xenlu.lu_records import (
    BULK_TYPES,
    DOMID_XEN,
    ENTRY_RULES,
    LU_DOMAIN_LAYOUTS,
    Bulk,
    CountHeader,
    EvtchnAbi,
    GrantTable,
    IoreqServers,
    LuHostInfo,
    LuSectionEnd,
    LuVersion,
    T,
)
from xenlu.registry import LIBXC, LU, OPTIONAL, Ctx, Record, RecordSpec, UnknownRecord
from xenlu.values import Value, values_equal

# libxc records allowed in domain sections (§4.16) register themselves on import.
import xenlu.libxc  # noqa: F401  isort: skip

__all__ = [
    "GlobalSection",
    "LUDomain",
    "LUStream",
    "Section",
    "SectionInfo",
    "decode_domain_section",
    "decode_lu",
    "encode_lu",
    "encode_lu_to",
    "encode_section_to",
    "scan_lu",
    "verify_lu",
]

END = 0x00000000


class X:
    """libxc record types allowed inside an LU domain section (§4.16)."""

    X86_PV_INFO = 0x02
    X86_PV_VCPU_BASIC = 0x04
    X86_PV_VCPU_EXTENDED = 0x05
    X86_PV_VCPU_XSAVE = 0x06
    X86_TSC_INFO = 0x08
    HVM_CONTEXT = 0x09
    HVM_PARAMS = 0x0A
    X86_PV_VCPU_MSRS = 0x0C
    X86_CPUID_POLICY = 0x11
    X86_MSR_POLICY = 0x12


VCPU_TYPES = frozenset(
    (X.X86_PV_VCPU_BASIC, X.X86_PV_VCPU_EXTENDED, X.X86_PV_VCPU_XSAVE, X.X86_PV_VCPU_MSRS)
)

# §2 table: (min, max) per record type and domain type; None max = unbounded.
_PV, _HVM = 1, 2
_COUNTS: dict[int, dict[int, tuple[int, int | None]]] = {
    T.LU_P2M: {_PV: (0, 0), _HVM: (0, None)},
    T.LU_PAGE_OWNERSHIP: {_PV: (0, None), _HVM: (0, None)},
    T.LU_PAGE_TYPES: {_PV: (0, None), _HVM: (0, 0)},
    T.LU_GRANT_TABLE: {_PV: (0, 1), _HVM: (0, 1)},
    T.LU_GRANT_MAPS: {_PV: (0, None), _HVM: (0, None)},
    T.LU_EVTCHN_ABI: {_PV: (0, 1), _HVM: (0, 1)},
    T.LU_EVTCHNS: {_PV: (0, None), _HVM: (0, None)},
    T.LU_IOREQ_SERVERS: {_PV: (0, 0), _HVM: (0, 1)},
    X.X86_PV_INFO: {_PV: (1, 1), _HVM: (0, 0)},
    X.HVM_CONTEXT: {_PV: (0, 0), _HVM: (1, 1)},
    X.HVM_PARAMS: {_PV: (0, 0), _HVM: (0, 1)},
    X.X86_TSC_INFO: {_PV: (0, 1), _HVM: (0, 1)},
    X.X86_CPUID_POLICY: {_PV: (0, 1), _HVM: (0, 1)},
    X.X86_MSR_POLICY: {_PV: (0, 1), _HVM: (0, 1)},
    **{t: {_PV: (0, None), _HVM: (0, 0)} for t in VCPU_TYPES},
}
#: §2 order rules inside a domain section: type -> the type it must follow.
_AFTER: dict[int, int] = {T.LU_EVTCHNS: T.LU_EVTCHN_ABI, T.LU_GRANT_MAPS: T.LU_GRANT_TABLE}
_GLOBAL_REPEATABLE = frozenset((T.LU_REUSABLE_REGIONS, T.LU_XEN_PAGES))


class _DomainState:
    """The §2 grammar state of one domain section being read."""

    __slots__ = ("counts", "dtype", "vcpu_ids")

    def __init__(self, dtype: int) -> None:
        self.dtype = dtype
        self.counts: dict[int, int] = {}
        self.vcpu_ids: set[tuple[int, int]] = set()


def _name(t: int) -> str:
    spec = LU.get(t) or LIBXC.get(t)
    return spec.name if spec else f"{t:#010x}"


def _spec_for(t: int) -> RecordSpec | None:
    if t & 0x40000000:
        return LU.get(t)
    return LIBXC.get(t)


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

    @property
    def optional(self) -> list[UnknownRecord]:
        """Unknown records kept from the stream (optional, or mandatory when not strict)."""
        return [r.value for r in self.records if isinstance(r.value, UnknownRecord)]

    def record_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            n = _name(r.type)
            out[n] = out.get(n, 0) + 1
        return out

    def entry_counts(self) -> dict[str, int]:
        """Record name → number of entries, for records that carry entries."""
        out: dict[str, int] = {}
        for r in self.records:
            n = _entry_count(r.value)
            if n is not None:
                name = _name(r.type)
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


def _entry_count(value: Any) -> int | None:
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
        from xenlu.lu_records import RegionExtent

        return self.entries(T.LU_REUSABLE_REGIONS, RegionExtent.LAYOUT.dtype)

    @property
    def xen_pages(self) -> np.ndarray:
        from xenlu.lu_records import XenPagesExtent

        return self.entries(T.LU_XEN_PAGES, XenPagesExtent.LAYOUT.dtype)


@dataclass(eq=False)
class LUDomain(Section):
    """One domain section. ``info`` is its LU_DOMAIN (the first record).

    Bulk accessors (``p2m``, ``ownership``, ``page_types``, ``grant_maps``,
    ``evtchns``) return structured numpy arrays (zero-copy for one record).
    """

    @property
    def info(self) -> Any:
        """The LU_DOMAIN value (the first record of a valid section)."""
        info = self.one(T.LU_DOMAIN)
        if info is None:
            raise CallerError("domain section without an LU_DOMAIN record")
        return info

    @property
    def domid(self) -> int:
        return int(self.info.domid)

    @property
    def is_hvm(self) -> bool:
        return bool(self.info.domain_type == 2)

    @property
    def type_name(self) -> str:
        return "hvm" if self.is_hvm else "pv"

    def _dtype(self, type_code: int) -> np.dtype:
        spec = LU.get(type_code)
        assert spec is not None
        dt: np.dtype = spec.layouts[-1].LAYOUT.dtype
        return dt

    @property
    def p2m(self) -> np.ndarray:
        return self.entries(T.LU_P2M, self._dtype(T.LU_P2M))

    @property
    def ownership(self) -> np.ndarray:
        return self.entries(T.LU_PAGE_OWNERSHIP, self._dtype(T.LU_PAGE_OWNERSHIP))

    @property
    def page_types(self) -> np.ndarray:
        return self.entries(T.LU_PAGE_TYPES, self._dtype(T.LU_PAGE_TYPES))

    @property
    def grant_maps(self) -> np.ndarray:
        return self.entries(T.LU_GRANT_MAPS, self._dtype(T.LU_GRANT_MAPS))

    @property
    def evtchns(self) -> np.ndarray:
        chunks = self.chunks(T.LU_EVTCHNS)
        if chunks:
            return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        from xenlu.lu_records import EvtchnEntry415

        return np.zeros(0, EvtchnEntry415.LAYOUT.dtype)

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
    def pv_info(self) -> Any:
        return self.one(X.X86_PV_INFO)

    @property
    def hvm_context(self) -> Any:
        return self.one(X.HVM_CONTEXT)

    @property
    def hvm_params(self) -> Any:
        return self.one(X.HVM_PARAMS)

    @property
    def tsc_info(self) -> Any:
        return self.one(X.X86_TSC_INFO)

    def vcpus(self, type_code: int = X.X86_PV_VCPU_BASIC) -> list[Any]:
        """PV vCPU records of one kind (BASIC by default)."""
        return self.of_type(type_code)

    @classmethod
    def build(
        cls,
        info: Any,
        *,
        pv_info: Any = None,
        cpuid_policy: Any = None,
        msr_policy: Any = None,
        tsc_info: Any = None,
        p2m: np.ndarray | None = None,
        ownership: np.ndarray | None = None,
        page_types: np.ndarray | None = None,
        grant_table: GrantTable | None = None,
        grant_maps: np.ndarray | None = None,
        evtchn_abi: EvtchnAbi | None = None,
        evtchns: np.ndarray | None = None,
        ioreq_servers: IoreqServers | None = None,
        vcpus: Iterable[tuple[int, Any]] = (),
        hvm_context: Any = None,
        hvm_params: Any = None,
        optional: Iterable[UnknownRecord] = (),
    ) -> LUDomain:
        """A domain section in canonical record order; empty arrays are omitted.

        ``vcpus`` is a sequence of ``(record type, PvVcpu)``.
        """
        recs: list[Record] = [Record(T.LU_DOMAIN, info)]

        def add(t: int, v: Any) -> None:
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
            raise CallerError(f"Xen {fmt_epoch(version)} is outside 4.11 … 4.21")
        host = dataclasses.replace(host, nr_domains=len(domains))
        recs = [Record(T.LU_VERSION, LuVersion(xen_major=version[0], xen_minor=version[1]))]
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


def _grammar(msg: str, off: int, idx: int, t: int | None, **kw: Any) -> GrammarError:
    return GrammarError(msg, offset=off, record_index=idx, record_type=t, **kw)


class _Decoder:
    def __init__(self, buf: memoryview, strict: bool, verify_checksums: bool) -> None:
        self.buf = buf
        self.strict = strict
        self.verify = verify_checksums
        self.epoch: Epoch = (4, 11)

    def body(self, off: int, length: int) -> memoryview:
        return self.buf[off + 8 : off + 8 + length]

    def decode_record(self, idx: int, off: int, t: int, length: int) -> Any:
        spec = _spec_for(t)
        body = self.body(off, length)
        if spec is None:
            if not (t & OPTIONAL) and self.strict:
                raise UnknownRecordError(
                    "unknown mandatory record type",
                    offset=off,
                    record_index=idx,
                    record_type=t,
                    field="type",
                    expected="a known type or bit 31 set",
                )
            return UnknownRecord(t, bytes(body))
        return spec.decode(body, Ctx(idx, t, off + 8, length, self.epoch))

    def close(self, sec: Section, start: int, idx: int, off: int, length: int, domid: int) -> None:
        end: LuSectionEnd = self.decode_record(idx, off, T.LU_SECTION_END, length)
        lay = LuSectionEnd.LAYOUT
        sec.end = end
        sec.offset = start
        body = off + 8
        if end.domid != domid:
            raise ChecksumError(
                "LU_SECTION_END names another section",
                offset=body,
                record_index=idx,
                record_type=T.LU_SECTION_END,
                field="domid",
                expected=domid,
                got=end.domid,
            )
        if not self.verify:
            sec.checksum_ok = end.section_bytes == off - start and end.crc32c == crc32c(
                self.buf[start:off]
            )
            return
        if end.section_bytes != off - start:
            raise ChecksumError(
                "section length mismatch",
                offset=body + lay.field("section_bytes").offset,
                record_index=idx,
                record_type=T.LU_SECTION_END,
                field="section_bytes",
                expected=off - start,
                got=end.section_bytes,
            )
        crc = crc32c(self.buf[start:off])
        if end.crc32c != crc:
            raise ChecksumError(
                "section crc32c mismatch",
                offset=body + lay.field("crc32c").offset,
                record_index=idx,
                record_type=T.LU_SECTION_END,
                field="crc32c",
                expected=crc,
                got=end.crc32c,
            )
        sec.checksum_ok = True

    # -- global section (§2 global-section) ------------------------------
    def global_section(self, it: Iterator[tuple[int, int, int, int]]) -> tuple[GlobalSection, int]:
        try:
            idx, off, t, length = next(it)
        except StopIteration:
            raise FramingError("empty stream", offset=0, expected="LU_VERSION") from None
        if t != T.LU_VERSION:
            raise _grammar(
                "stream does not start with LU_VERSION",
                off,
                idx,
                t,
                field="type",
                expected=f"{T.LU_VERSION:#010x}",
                got=t,
            )
        ver: LuVersion = LU.by_name("LU_VERSION").decode(
            self.body(off, length), Ctx(idx, t, off + 8, length, None)
        )
        if not is_supported(ver.xen_major, ver.xen_minor):
            at = 0 if ver.xen_major != 4 else 4
            raise VersionError(
                f"Xen {ver.xen_major}.{ver.xen_minor} is not supported",
                offset=off + 8 + at,
                record_index=idx,
                record_type=t,
                field="xen_major" if at == 0 else "xen_minor",
                expected="4.11 … 4.21",
                got=f"{ver.xen_major}.{ver.xen_minor}",
            )
        self.epoch = epoch_of(ver.xen_major, ver.xen_minor)
        recs = [Record(t, ver, off)]
        seen_host = False
        for idx, off, t, length in it:
            if t == T.LU_SECTION_END:
                if not seen_host:
                    raise _grammar(
                        "LU_HOST_INFO missing",
                        off,
                        idx,
                        t,
                        field="type",
                        expected="LU_HOST_INFO before LU_SECTION_END",
                    )
                sec = GlobalSection(recs)
                self.close(sec, 0, idx, off, length, DOMID_XEN)
                return sec, idx + 1
            if t == T.LU_HOST_INFO:
                if seen_host:
                    raise _grammar("second LU_HOST_INFO", off, idx, t, field="type")
                seen_host = True
            elif t & OPTIONAL:
                pass
            elif t in _GLOBAL_REPEATABLE:
                if not seen_host:
                    raise _grammar(
                        f"{_name(t)} before LU_HOST_INFO",
                        off,
                        idx,
                        t,
                        field="type",
                        expected="LU_HOST_INFO",
                    )
            elif _spec_for(t) is None:
                pass  # unknown: decode_record raises UnknownRecordError when strict
            else:
                raise _grammar(
                    f"{_name(t)} not allowed in the global section", off, idx, t, field="type"
                )
            recs.append(Record(t, self.decode_record(idx, off, t, length), off))
        raise FramingError(
            "stream ends inside the global section", offset=len(self.buf), expected="LU_SECTION_END"
        )

    # -- a domain section (§2 domain-section) ----------------------------
    def domain_start(self, idx: int, off: int, t: int, length: int) -> tuple[Any, _DomainState]:
        """The LU_DOMAIN record opening a domain section, and the section's state."""
        if t != T.LU_DOMAIN:
            what = "optional record" if t & OPTIONAL else _name(t)
            raise _grammar(
                f"{what} before LU_DOMAIN: a domain section starts with LU_DOMAIN",
                off,
                idx,
                t,
                field="type",
                expected="LU_DOMAIN",
            )
        info = self.decode_record(idx, off, t, length)
        return info, _DomainState(int(info.domain_type))

    def admit(self, st: _DomainState, idx: int, off: int, t: int, length: int) -> Any:
        """One record inside a domain section (not LU_SECTION_END): §2's table
        and order rules against ``st``, then the body; returns its value."""
        if t == END:
            raise _grammar(
                "END inside a domain section",
                off,
                idx,
                t,
                field="type",
                expected="LU_SECTION_END",
            )
        if t & OPTIONAL:
            return self.decode_record(idx, off, t, length)
        dtype = st.dtype
        per_or_none = _COUNTS.get(t)
        if per_or_none is None:
            if _spec_for(t) is None:
                return self.decode_record(idx, off, t, length)
            raise _grammar(f"{_name(t)} not allowed in a domain section", off, idx, t, field="type")
        counts = st.counts
        n = counts.get(t, 0) + 1
        hi = per_or_none[dtype][1]
        if t in VCPU_TYPES:
            if dtype == _HVM:
                raise _grammar(f"{_name(t)} in an HVM domain", off, idx, t, field="type")
        elif hi is not None and n > hi:
            kind = "HVM" if dtype == 2 else "PV"
            raise _grammar(
                f"{_name(t)} not allowed here: at most {hi} in a {kind} domain",
                off,
                idx,
                t,
                field="type",
                expected=f"<= {hi}",
                got=n,
            )
        first = _AFTER.get(t)
        if first is not None and not counts.get(first):
            raise _grammar(
                f"{_name(t)} before {_name(first)}",
                off,
                idx,
                t,
                field="type",
                expected=f"{_name(first)} first",
            )
        counts[t] = n
        value = self.decode_record(idx, off, t, length)
        if t in VCPU_TYPES:
            key = (t, int(value.vcpu_id))
            if key in st.vcpu_ids:
                raise _grammar(
                    f"second {_name(t)} for vCPU {value.vcpu_id}", off, idx, t, field="type"
                )
            st.vcpu_ids.add(key)
        return value

    def domain_end(self, st: _DomainState, idx: int, off: int) -> None:
        """§2's minimum counts, checked at the section's LU_SECTION_END."""
        for rt, per in _COUNTS.items():
            lo = per[st.dtype][0]
            if st.counts.get(rt, 0) < lo:
                raise _grammar(
                    f"{_name(rt)} missing in a {'HVM' if st.dtype == 2 else 'PV'} domain",
                    off,
                    idx,
                    T.LU_SECTION_END,
                    field="type",
                    expected=f"{lo} {_name(rt)} record",
                )

    def domain_section(
        self, first: tuple[int, int, int, int], it: Iterator[tuple[int, int, int, int]]
    ) -> tuple[LUDomain, int]:
        idx, off, t, length = first
        start = off
        info, st = self.domain_start(idx, off, t, length)
        recs = [Record(t, info, off)]
        for idx, off, t, length in it:
            if t == T.LU_SECTION_END:
                self.domain_end(st, idx, off)
                sec = LUDomain(recs)
                self.close(sec, start, idx, off, length, int(info.domid))
                return sec, idx + 1
            recs.append(Record(t, self.admit(st, idx, off, t, length), off))
        raise FramingError(
            "stream ends inside a domain section", offset=len(self.buf), expected="LU_SECTION_END"
        )


def decode_lu(
    data: Any,
    *,
    strict: bool = True,
    verify_checksums: bool = True,
    memory: bool = False,
    on_global: Callable[[GlobalSection], None] | None = None,
) -> LUStream:
    """Decode and structurally verify a Live Update stream.

    ``data`` is bytes, a bytearray, memoryview, mmap or a path (mapped, not
    read). Bulk entries are zero-copy numpy views over it. Raises only
    :class:`~xenlu.errors.DecodeError` subclasses on bad input. With
    ``verify_checksums=False`` a checksum mismatch is recorded in
    ``section.checksum_ok`` instead of raised. ``memory=True`` (a stream in
    hand-over data pages, §5) ignores everything after END. ``on_global`` is
    called with the global section as soon as it is decoded and its checksum
    verified, before any domain section (the §5 reader uses it).

    >>> s = decode_lu(encode_lu(some_stream))   # doctest: +SKIP
    """
    # Decoding allocates only acyclic objects (records, values, numpy views);
    # the cyclic collector would otherwise walk them every few hundred
    # records (~25% of the time on streams of a million small records).
    gc_was_on = gc.isenabled()
    if gc_was_on:
        gc.disable()
    try:
        return _decode_lu(data, strict, verify_checksums, memory, on_global)
    finally:
        if gc_was_on:
            gc.enable()


#: Streams at least this large decode their domain sections on several
#: threads (crc32c and numpy's loops release the GIL; sections are
#: independent, §4.15).
_PARALLEL_MIN_BYTES = 32 << 20
_POOL: list[ThreadPoolExecutor] = []
# A forked child inherits the pool object but not its threads: work queued
# there would wait forever. The child makes its own pool on first use.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOL.clear)


def _decode_sections_in_parallel(
    buf: memoryview, strict: bool, verify_checksums: bool
) -> LUStream | None:
    """The stream decoded with one task per domain section, or None.

    None means "not sure": any error, or any rule between sections (END,
    counts, domid order) not visibly met. The caller then decodes serially,
    which reports exactly the first problem in stream order.
    """
    pool = _worker_pool()
    if pool is None:
        return None
    try:
        secs = scan_lu(buf)
        if len(secs) < 3:
            return None
        dec = _Decoder(buf, strict, verify_checksums)
        glob, _ = dec.global_section(frames(buf, 0, len(buf), 0))
        version = glob.version
        futures = [
            pool.submit(
                decode_domain_section,
                buf,
                s.start,
                version,
                record_index=s.first_index,
                strict=strict,
                verify_checksums=verify_checksums,
            )
            for s in secs[1:]
        ]
        domains = [f.result() for f in futures]
    except XenLUError:
        return None
    last = secs[-1].end
    length = HDR.unpack_from(buf, last)[1]
    end = last + 8 + length + (-length & 7)
    if (
        end + 8 != len(buf)
        or HDR.unpack_from(buf, end) != (END, 0)
        or len(domains) != glob.host.nr_domains
        or any(a.domid >= b.domid for a, b in itertools.pairwise(domains))
    ):
        return None
    return LUStream(glob, domains)


def _decode_lu(
    data: Any,
    strict: bool,
    verify_checksums: bool,
    memory: bool,
    on_global: Callable[[GlobalSection], None] | None,
) -> LUStream:
    buf = as_buffer(data)
    if on_global is None and not memory and len(buf) >= _PARALLEL_MIN_BYTES:
        stream = _decode_sections_in_parallel(buf, strict, verify_checksums)
        if stream is not None:
            return stream
    dec = _Decoder(buf, strict, verify_checksums)
    it = frames(buf, 0, len(buf), 0)
    glob, _ = dec.global_section(it)
    if on_global is not None:
        on_global(glob)
    domains: list[LUDomain] = []
    last = -1
    nr = glob.host.nr_domains
    for idx, off, t, length in it:
        if t == END:
            if length:
                raise RecordError(
                    "END record not empty",
                    offset=off + 4,
                    record_index=idx,
                    record_type=t,
                    field="length",
                    expected=0,
                    got=length,
                )
            if len(domains) != nr:
                raise _grammar(
                    "number of domain sections differs from LU_HOST_INFO.nr_domains",
                    off,
                    idx,
                    t,
                    field="nr_domains",
                    expected=nr,
                    got=len(domains),
                )
            stop = off + 8
            if not memory and stop != len(buf):
                raise FramingError(
                    "bytes after END",
                    offset=stop,
                    expected="end of stream",
                    got=f"{len(buf) - stop} more bytes",
                )
            return LUStream(glob, domains)
        if len(domains) == nr and t == T.LU_DOMAIN:
            raise _grammar(
                "more domain sections than LU_HOST_INFO.nr_domains",
                off,
                idx,
                t,
                field="nr_domains",
                expected=nr,
                got=nr + 1,
            )
        dom, _ = dec.domain_section((idx, off, t, length), it)
        if dom.domid <= last:
            raise _grammar(
                "domain sections not in ascending domid order",
                off + 8,
                idx,
                t,
                field="domid",
                expected=f"> {last}",
                got=dom.domid,
            )
        last = dom.domid
        domains.append(dom)
    raise FramingError("stream ends without END", offset=len(buf), expected="END record")


def verify_lu(data: Any, *, strict: bool = True) -> None:
    """Structurally verify a Live Update stream; raise the first problem, else None.

    The same checks and the same errors as :func:`decode_lu`, without
    building the stream's value objects. A check-only pass runs first:
    records of the bulk types that may repeat cost a header read and an
    append, their entries are checked in one vectorised pass per type and
    section, and section checksums run on a worker thread. Anything that
    pass is not sure of — any error at all — hands the stream to
    :func:`decode_lu`, which raises the exact, located first error.

    >>> verify_lu(b"")
    Traceback (most recent call last):
    ...
    xenlu.errors.FramingError: offset 0x0: empty stream: expected LU_VERSION
    """
    buf = as_buffer(data)
    if not _verify_fast(buf, strict):
        decode_lu(buf, strict=strict)


#: Bulk records of at most this many entries are checked together with the
#: section's other small records of their type; larger ones one by one.
_GATHER_MAX_ENTRIES = 64
#: Sections of at least this many bytes get their crc32c on a worker thread.
_CRC_THREAD_MIN_BYTES = 1 << 20
_HOT: dict[tuple[int, frozenset[int], Epoch], dict[int, int]] = {}
_SEC_END_SIZE = LuSectionEnd.LAYOUT.size
#: A record header and the count header of a bulk body (§1, §4), read at once.
_HDR_COUNT = struct.Struct(HDR.format + CountHeader.LAYOUT.struct.format.lstrip("<"))


def _hot_types(dtype: int, seen: frozenset[int], epoch: Epoch) -> dict[int, int]:
    """type -> entry size, for the bulk records that, in a domain section of
    ``dtype`` whose §2 order prerequisites ``seen`` are met, are allowed any
    number of times and leave the grammar state unchanged; derived from
    :data:`_COUNTS` and :data:`_AFTER`, the table :meth:`_Decoder.admit` uses."""
    key = (dtype, seen, epoch)
    hot = _HOT.get(key)
    if hot is None:
        hot = {}
        for t, per in _COUNTS.items():
            rules = ENTRY_RULES.get(t)
            if rules is None or not rules.per_entry or per[dtype] != (0, None):
                continue
            first = _AFTER.get(t)
            if first is not None and first not in seen:
                continue
            size = rules.layout_for(epoch).LAYOUT.size
            if size % 8 == 0:  # bodies need no padding
                hot[t] = size
        _HOT[key] = hot
    return hot


def _hot(
    pending: dict[int, array[int]], dtype: int, seen: frozenset[int], epoch: Epoch
) -> dict[int, tuple[int, Callable[[int], None]]]:
    """The hot types of a section: entry size and the append of their pending heads."""
    return {t: (size, pending[t].append) for t, size in _hot_types(dtype, seen, epoch).items()}


def _entries_ok(words: np.ndarray | None, rt: int, heads: array[int], epoch: Epoch) -> bool:
    """Check the entries of the small bulk records at ``heads`` as one array."""
    if words is None:
        return False
    rules = ENTRY_RULES[rt]
    lay = rules.layout_for(epoch).LAYOUT
    at = np.frombuffer(heads, dtype=np.int64)  # released on return: heads is then cleared
    counts = words.view(np.uint32)[(at + 8) >> 2].astype(np.int64)
    per = lay.size >> 3
    nwords = counts * per
    total = int(nwords.sum())
    if total == 0:
        return True
    starts = (at + 16) >> 3
    if int(counts.min()) == 1 == int(counts.max()):  # the usual small case
        idx = starts[:, None] + np.arange(per)
    else:
        first = np.cumsum(nwords) - nwords
        idx = np.arange(total, dtype=np.int64) + np.repeat(starts - first, nwords)
    idx = idx.reshape(-1)
    if int(idx[-1]) >= len(words):  # (heads ascend, so the last word is the largest)
        return False
    entries = words[idx].view(lay.dtype)
    return rules.ok(entries, epoch)


#: Pending small records are checked every 64 Ki records, not only at the
#: end of their section, so memory stays bounded on any stream.
_FLUSH_MASK = 0xFFFF


def _flush(words: np.ndarray | None, pending: dict[int, array[int]], epoch: Epoch) -> bool:
    """Check and forget the pending small records of every type."""
    for rt, heads in pending.items():
        if heads:
            if not _entries_ok(words, rt, heads, epoch):
                return False
            del heads[:]
    return True


def _big_ok(buf: memoryview, pos: int, t: int, count: int, epoch: Epoch) -> bool:
    """The entries of the large bulk record at ``pos`` (in place, zero-copy)."""
    rules = ENTRY_RULES[t]
    return rules.ok(rules.layout_for(epoch).LAYOUT.array(buf, pos + 16, count), epoch)


def _verify_fast(buf: memoryview, strict: bool) -> bool:
    """True when the stream is certainly valid; False when not sure."""
    jobs: list[tuple[Any, object]] = []
    try:
        return _verify_fast_unsafe(buf, strict, jobs)
    except (XenLUError, struct.error):
        return False
    finally:
        # No worker may outlive the call: the caller may close the mapping
        # the slices and arrays point into.
        for f, _ in jobs:
            f.exception()


def _verify_fast_unsafe(buf: memoryview, strict: bool, jobs: list[tuple[Any, object]]) -> bool:
    end = len(buf)
    dec = _Decoder(buf, strict, True)
    glob, idx = dec.global_section(frames(buf, 0, end, 0))
    epoch = dec.epoch
    assert glob.end is not None
    pos = glob.end.section_bytes + 8 + _SEC_END_SIZE
    nr = glob.host.nr_domains
    # A u64 view of the stream for gathering entries: records start 8-aligned.
    words = np.frombuffer(buf, np.uint64, count=end >> 3) if end >= 8 else None
    pool = _worker_pool()
    unpack = HDR.unpack_from
    unpack16 = _HDR_COUNT.unpack_from
    last16 = end - 16
    flush_mask = _FLUSH_MASK
    rec_max = REC_LENGTH_MAX
    gather_max = _GATHER_MAX_ENTRIES
    sec_end, lu_end = T.LU_SECTION_END, END
    ndom, last = 0, -1
    while True:
        t, length = unpack(buf, pos)
        if t == lu_end:
            if length or ndom != nr or pos + 8 != end:
                return False
            break
        if ndom == nr:
            return False
        stop = record_end(buf, pos, length, end)
        if stop < 0:
            return False
        info, st = dec.domain_start(idx, pos, t, length)
        domid = int(info.domid)
        if domid <= last:
            return False
        start, pos, idx = pos, stop, idx + 1
        seen: frozenset[int] = frozenset()
        pending: dict[int, array[int]] = {rt: array("q") for rt in _COUNTS}
        hot = _hot(pending, st.dtype, seen, epoch)
        while True:
            # The hot loop: repeatable bulk records, framing and count header
            # read with one unpack (§1 framing, §4 count header), entries
            # deferred. Any other record drops to the code below.
            e = None
            if pos <= last16:
                t, length, count, rsvd = unpack16(buf, pos)
                e = hot.get(t)
            while e is not None:
                size, gather = e
                if rsvd or length != 8 + count * size:
                    return False
                if count <= gather_max:
                    # A body past the end fails the next header read, and
                    # _entries_ok refuses entries past it.
                    gather(pos)
                elif length > rec_max or pos + 8 + length > end:
                    return False
                elif pool is not None:
                    jobs.append((pool.submit(_big_ok, buf, pos, t, count, epoch), True))
                elif not _big_ok(buf, pos, t, count, epoch):
                    return False
                pos += 8 + length
                idx += 1
                if not idx & flush_mask and not _flush(words, pending, epoch):
                    return False  # (bounded memory: 8 bytes per pending record)
                if pos > last16:
                    break
                t, length, count, rsvd = unpack16(buf, pos)
                e = hot.get(t)
            t, length = unpack(buf, pos)
            stop = record_end(buf, pos, length, end)
            if stop < 0:
                return False
            if t == sec_end:
                break
            dec.admit(st, idx, pos, t, length)
            if t in _AFTER_FIRST and t not in seen:
                seen = seen | {t}
                hot = _hot(pending, st.dtype, seen, epoch)
            pos, idx = stop, idx + 1
        dec.domain_end(st, idx, pos)
        if not _flush(words, pending, epoch):
            return False
        # The record's own rules (length, rsvd) by its declaration, §4.15.
        close: LuSectionEnd = dec.decode_record(idx, pos, sec_end, length)
        if close.domid != domid or close.section_bytes != pos - start:
            return False
        if pool is not None and pos - start >= _CRC_THREAD_MIN_BYTES:
            jobs.append((pool.submit(crc32c, buf[start:pos]), close.crc32c))
        elif crc32c(buf[start:pos]) != close.crc32c:
            return False
        pos, idx = stop, idx + 1
        ndom, last = ndom + 1, domid
    return all(f.result() == want for f, want in jobs)


#: The types some other type must follow (:data:`_AFTER`'s values).
_AFTER_FIRST = frozenset(_AFTER.values())


def _worker_pool() -> ThreadPoolExecutor | None:
    """The shared pool for section decoding, checksums and large checks
    (None on one CPU: a thread would only add switching)."""
    workers = min(4, os.cpu_count() or 1)
    if workers < 2:
        return None
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(workers, thread_name_prefix="xenlu-section"))
    return _POOL[0]


def scan_lu(data: Any) -> list[SectionInfo]:
    """Locate every section by framing alone (no body decoding, no checksums).

    Lets callers verify or decode sections independently, e.g. in parallel.
    """
    buf = as_buffer(data)
    out: list[SectionInfo] = []
    start, first, domid = 0, 0, DOMID_XEN
    from struct import unpack_from

    for idx, off, t, length in frames(buf, 0, len(buf), 0):
        if t == T.LU_DOMAIN and length >= 2:
            domid = unpack_from("<H", buf, off + 8)[0]
        if t == T.LU_SECTION_END:
            out.append(SectionInfo(domid, start, off, first))
            start, first = off + 8 + length + (-length & 7), idx + 1
        if t == END:
            break
    return out


def decode_domain_section(
    data: Any,
    offset: int,
    version: tuple[int, int],
    *,
    record_index: int | None = None,
    strict: bool = True,
    verify_checksums: bool = True,
) -> LUDomain:
    """Decode and verify one domain section on its own (§4.15).

    ``offset`` is the offset of its LU_DOMAIN header; ``version`` comes from
    the global section. No other domain section is read.
    """
    buf = as_buffer(data)
    if not is_supported(*version):
        raise CallerError(f"Xen {fmt_epoch(version)} is outside 4.11 … 4.21")
    dec = _Decoder(buf, strict, verify_checksums)
    dec.epoch = epoch_of(*version)
    it = frames(buf, offset, len(buf), record_index if record_index is not None else 0)
    try:
        first = next(it)
    except StopIteration:
        raise FramingError("no section at offset", offset=offset, expected="LU_DOMAIN") from None
    dom, _ = dec.domain_section(first, it)
    return dom


# --- encoding -------------------------------------------------------------------


def _split(entries: np.ndarray, max_body: int) -> list[np.ndarray]:
    per = (max_body - 8) // entries.dtype.itemsize
    if per < 1:
        raise CallerError(f"max_record_bytes {max_body} cannot hold one entry")
    if len(entries) <= per:
        return [entries]
    return [entries[i : i + per] for i in range(0, len(entries), per)]


def _write_section(w: RecordWriter, sec: Section, domid: int, max_body: int) -> None:
    w.begin_section()
    for r in sec.records:
        if isinstance(r.value, UnknownRecord):
            w.record(r.type, r.value.body_for(r.type))
            continue
        spec = _spec_for(r.type)
        if spec is None:
            raise EncodeError(f"record type {r.type:#010x} is unknown and not an UnknownRecord")
        if spec.bulk and isinstance(r.value, Bulk) and len(r.value.entries):
            for part in _split(r.value.entries, max_body):
                w.record(r.type, spec.encode(Bulk(part)))
        else:
            w.record(r.type, spec.encode(r.value))
    crc, size = w.end_section()
    end = LuSectionEnd(domid=domid, crc32c=crc, section_bytes=size)
    w.record(T.LU_SECTION_END, [LuSectionEnd.LAYOUT.pack(end)])


def _check_epoch_layouts(stream: LUStream) -> None:
    want = LU_DOMAIN_LAYOUTS[stream.epoch]
    for d in stream.domains:
        if type(d.info) is not want:
            raise EncodeError(
                f"domain {d.domid}: LU_DOMAIN is {type(d.info).__name__}, "
                f"but Xen {stream.xen_version} needs {want.__name__}"
            )


def encode_lu_to(stream: LUStream, sink: Any, *, max_record_bytes: int = REC_LENGTH_MAX) -> int:
    """Write ``stream`` to ``sink`` (anything with ``write``); return bytes written.

    Bulk records larger than ``max_record_bytes`` are split (§1); bulk
    arrays go to the sink as views, never joined into one buffer.
    """
    if not 16 <= max_record_bytes <= REC_LENGTH_MAX:
        raise CallerError(f"max_record_bytes must be 16 … {REC_LENGTH_MAX}")
    _check_epoch_layouts(stream)
    w = RecordWriter(sink)
    _write_section(w, stream.global_section, DOMID_XEN, max_record_bytes)
    for d in stream.domains:
        _write_section(w, d, d.domid, max_record_bytes)
    w.record(END, [])
    return w.pos


#: The END record that closes every stream (§4.17).
END_BYTES = bytes(8)


def encode_section_to(
    section: Section, sink: Any, *, max_record_bytes: int = REC_LENGTH_MAX
) -> int:
    """Write one section (its records, then its LU_SECTION_END) to ``sink``.

    A section's checksum covers only its own bytes (§4.15), so the sections
    of a stream can be encoded independently — on several threads, into
    separate buffers — and concatenated, followed by :data:`END_BYTES`::

        >>> parts = [io.BytesIO() for _ in s.sections]           # doctest: +SKIP
        >>> for sec, p in zip(s.sections, parts): encode_section_to(sec, p)  # doctest: +SKIP
        >>> b"".join(p.getvalue() for p in parts) + END_BYTES == encode_lu(s)  # doctest: +SKIP
        True
    """
    if not 16 <= max_record_bytes <= REC_LENGTH_MAX:
        raise CallerError(f"max_record_bytes must be 16 … {REC_LENGTH_MAX}")
    if isinstance(section, GlobalSection):
        domid = DOMID_XEN
    elif isinstance(section, LUDomain):
        domid = section.domid
    else:
        raise CallerError(f"expected a GlobalSection or LUDomain, got {type(section).__name__}")
    w = RecordWriter(sink)
    _write_section(w, section, domid, max_record_bytes)
    return w.pos


def encode_lu(stream: LUStream, *, max_record_bytes: int = REC_LENGTH_MAX) -> bytes:
    """The bytes of ``stream`` (see :func:`encode_lu_to`)."""
    sink = BytesSink()
    encode_lu_to(stream, sink, max_record_bytes=max_record_bytes)
    return sink.getvalue()
