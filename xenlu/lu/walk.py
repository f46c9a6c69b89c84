"""The one walker of a Live Update stream (LU spec §1–§4), and decoding.

:class:`Walker` reads a stream record by record with
:func:`~xenlu.core.framing.frame_at`, asks the §2 tables of
:mod:`xenlu.lu.grammar` whether each record may come next, hands each body
to its :class:`~xenlu.core.registry.RecordSpec` with the stream's epoch, and
checks each section's LU_SECTION_END (§4.15) over the input buffer itself
(no copy). What it does with the records is its handler's business:

* :class:`Build` keeps them and returns the :class:`~xenlu.lu.model.LUStream`
  (:func:`decode_lu`);
* the check-only handler of :mod:`xenlu.lu.check` keeps nothing, and takes
  the runs of records the tables call steady (bulk records of a type that
  may repeat) in bulk, checking their entries as one gathered array.

Bulk records become zero-copy numpy views over the input.

>>> decode_lu(b"")
Traceback (most recent call last):
...
xenlu.core.errors.FramingError: offset 0x0: empty stream: expected LU_VERSION
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, wait
from typing import Any, Protocol

from xenlu.core.epochs import SUPPORTED_RANGE, Epoch, epoch_of, fmt_epoch, is_supported
from xenlu.core.errors import CallerError, ChecksumError, DecodeError, FramingError
from xenlu.core.framing import Source, as_buffer, crc32c, frame_at, frames, gc_paused
from xenlu.core.registry import LU, OPTIONAL, Ctx, Record, UnknownRecord, unknown_mandatory
from xenlu.lu.grammar import (
    DOMAIN,
    END,
    GLOBAL,
    SectionGrammar,
    SectionState,
    admit,
    admitted,
    at_end,
    check_version,
    close,
    domid_order,
    next_domain,
    open_domain,
    open_global,
    section_end_mismatch,
    spec_for,
)
from xenlu.lu.host_records import LuHostInfo, LuSectionEnd, LuVersion
from xenlu.lu.model import GlobalSection, LUDomain, LUStream, Section, SectionInfo
from xenlu.lu.records import T
from xenlu.lu.values import DOMID_XEN

__all__ = [
    "Build",
    "Handler",
    "PendingChecksums",
    "Walker",
    "decode_domain_section",
    "decode_lu",
    "decode_lu_overlapped",
    "gc_paused",
    "scan_lu",
]

_SEC_END = T.LU_SECTION_END
#: The types some other type must follow: seeing one may make records steady.
_PREREQUISITES = frozenset(DOMAIN.after.values())


def record_value(
    body: memoryview, idx: int, off: int, t: int, length: int, epoch: Epoch | None, strict: bool
) -> Any:
    """The value of one record of an LU stream (an LU or libxc record, §4.16)
    whose header is at ``off``: its body decoded by its spec, an
    :class:`~xenlu.core.registry.UnknownRecord` for an unknown optional type (or
    any unknown type when not ``strict``), else :class:`UnknownRecordError`.
    The one reading of a record body for every LU reader (walker, incremental
    decoder, ``show``)."""
    spec = spec_for(t)
    if spec is None:
        if not (t & OPTIONAL) and strict:
            raise unknown_mandatory(off, idx, t, expected="a known type or bit 31 set")
        return UnknownRecord(t, bytes(body))
    return spec.decode(body, Ctx(idx, t, off + 8, length, epoch))


class Handler(Protocol):
    """What the walker does with the records it reads (see :class:`Build`)."""

    #: Keep the records and build the sections (else the walk only checks).
    keep: bool

    def run(self, pos: int, idx: int, st: SectionState) -> tuple[int, int]:
        """Take the steady records at ``pos`` (:func:`~xenlu.lu.grammar.steady_types`)
        in bulk; return where the walker goes on. :class:`Build` takes none."""
        ...

    def section_done(self) -> None:
        """Every record of the section has been read (before its close rules)."""
        ...

    def defer_crc(self, start: int, stop: int, want: int) -> bool:
        """True when the handler checks ``crc32c(buf[start:stop]) == want`` itself, later."""
        ...


class Build:
    """The handler of :func:`decode_lu`: keep every record, check everything now."""

    keep = True

    def run(self, pos: int, idx: int, st: SectionState) -> tuple[int, int]:
        return pos, idx

    def section_done(self) -> None:
        return None

    def defer_crc(self, start: int, stop: int, want: int) -> bool:
        return False


#: Sections of at least this many bytes get their crc32c on the executor
#: (a smaller one is checked at once: a job would cost more than its crc).
CRC_JOB_MIN_BYTES = 1 << 20


class _BuildDeferred(Build):
    """:class:`Build` whose large sections' crc32c (§4.15) are jobs on an executor."""

    def __init__(self, buf: memoryview, executor: Executor) -> None:
        self.buf = buf
        self.executor = executor
        self.jobs: list[Future[int]] = []
        self.wants: list[int] = []

    def defer_crc(self, start: int, stop: int, want: int) -> bool:
        if stop - start < CRC_JOB_MIN_BYTES:
            return False
        # One job per section: one crc32c call, the GIL released throughout.
        self.jobs.append(self.executor.submit(crc32c, self.buf[start:stop]))
        self.wants.append(want)
        return True

    def wait(self) -> bool:
        """Wait for every job (none may outlive the caller's buffer); True when
        every deferred checksum matched."""
        wait(self.jobs)
        return all(
            job.exception() is None and job.result() == want
            for job, want in zip(self.jobs, self.wants, strict=True)
        )


class PendingChecksums:
    """The section checksums of :func:`decode_lu_overlapped` still being computed."""

    def __init__(self, buf: memoryview, handler: _BuildDeferred, strict: bool) -> None:
        self._buf, self._h, self._strict = buf, handler, strict

    def wait(self) -> bool:
        """Wait for every checksum job; True when all matched (nothing raised)."""
        return self._h.wait()

    def settle(self) -> None:
        """Wait for every checksum; when one does not match, raise the stream's
        first error exactly as :func:`decode_lu` does (it walks the stream again)."""
        if not self.wait():
            decode_lu(self._buf, strict=self._strict)
            # Only an input changed while it was read gets here.
            raise ChecksumError("a section crc32c did not match, then did")


class Walker:
    """One walk over an LU stream in ``buf`` with ``handler`` (§2)."""

    def __init__(
        self,
        buf: memoryview,
        handler: Handler,
        strict: bool,
        verify_checksums: bool = True,
        executor: Executor | None = None,
    ) -> None:
        self.executor = executor
        self.ahead: dict[tuple[int, int], Future[tuple[LUDomain | None, int, int, int]]] = {}
        self.buf = buf
        self.end = len(buf)
        self.h = handler
        self.strict = strict
        self.verify = verify_checksums
        self.epoch: Epoch = (4, 11)
        self.host: LuHostInfo | None = None

    def record(self, idx: int, off: int, t: int, length: int) -> Any:
        """The value of the record at ``off`` (its body decoded by its spec)."""
        body = self.buf[off + 8 : off + 8 + length]
        return record_value(body, idx, off, t, length, self.epoch, self.strict)

    # -- the stream (§2) ----------------------------------------------------
    def stream(
        self, memory: bool = False, on_global: Callable[[GlobalSection], None] | None = None
    ) -> LUStream | None:
        """Walk the whole stream; the stream when the handler keeps records."""
        buf, end = self.buf, self.end
        if end == 0:
            raise FramingError("empty stream", offset=0, expected="LU_VERSION")
        t, length, stop = frame_at(buf, 0, end, 0)
        open_global(0, 0, t)
        ver: LuVersion = LU.by_name("LU_VERSION").decode(buf[8 : 8 + length], Ctx(0, t, 8, length))
        check_version(ver, 0, 0)
        self.epoch = epoch_of(ver.xen_major, ver.xen_minor)
        glob, pos, idx = self.section(GLOBAL, 0, Record(t, ver, 0), 0, DOMID_XEN, stop, 1)
        assert self.host is not None
        if on_global is not None:
            assert isinstance(glob, GlobalSection)
            on_global(glob)
        try:
            if self.executor is not None:
                self.look_ahead(self.executor)
            domains = self.domains(pos, idx, memory)
        finally:
            for job in self.ahead.values():
                job.cancel()
            wait(self.ahead.values())  # none may outlive the call (the buffer may go)
        if domains is None:
            return None
        assert isinstance(glob, GlobalSection)
        return LUStream(glob, domains)

    def domains(self, pos: int, idx: int, memory: bool) -> list[LUDomain] | None:
        """The domain sections from ``pos`` and the END after them (§2, §4.17)."""
        buf, end = self.buf, self.end
        assert self.host is not None
        nr = self.host.nr_domains
        domains: list[LUDomain] = []
        ndom, last = 0, -1
        while pos < end:
            t, length, stop = frame_at(buf, pos, end, idx)
            if t == END:
                at_end(ndom, nr, idx, pos, length, end, memory)
                return domains if self.h.keep else None
            next_domain(ndom, nr, idx, pos, t)
            at, first = pos, idx
            job = self.ahead.pop((pos, idx), None)
            if job is not None:
                # The same walk of the same bytes, done ahead: the same
                # section, or the same error, as walking it here.
                dom, domid, pos, idx = job.result()
            else:
                dom, domid, pos, idx = self.domain(pos, idx, t, length, stop)
            domid_order(domid, last, first, at)
            if dom is not None:
                domains.append(dom)
            ndom, last = ndom + 1, domid
        raise FramingError("stream ends without END", offset=end, expected="END record")

    def look_ahead(self, executor: Executor) -> None:
        """Start walking every domain section that framing alone locates on
        ``executor`` (sections are independent, §4.15; crc32c and numpy
        release the GIL). A stream framing refuses gets no look-ahead."""
        try:
            secs = scan_lu(self.buf)
        except DecodeError:
            return
        for s in secs[1:]:
            ahead = Walker(self.buf, self.h, self.strict, self.verify)
            ahead.epoch = self.epoch
            job = executor.submit(ahead.domain_at, s.start, s.first_index)
            self.ahead[(s.start, s.first_index)] = job

    def domain_at(self, pos: int, idx: int) -> tuple[LUDomain | None, int, int, int]:
        """:meth:`domain` of the record at ``pos``."""
        t, length, stop = frame_at(self.buf, pos, self.end, idx)
        return self.domain(pos, idx, t, length, stop)

    def domain(
        self, pos: int, idx: int, t: int, length: int, stop: int
    ) -> tuple[LUDomain | None, int, int, int]:
        """The domain section whose first record is at ``pos`` (§2 domain-section):
        the section (when kept), its domid, and where the walk goes on."""
        open_domain(idx, pos, t)
        info = self.record(idx, pos, t, length)
        domid = int(info.domid)
        sec, nxt, nidx = self.section(
            DOMAIN, int(info.domain_type), Record(t, info, pos), pos, domid, stop, idx + 1
        )
        assert sec is None or isinstance(sec, LUDomain)
        return sec, domid, nxt, nidx

    def section(
        self,
        g: SectionGrammar,
        variant: int,
        first: Record,
        start: int,
        domid: int,
        pos: int,
        idx: int,
    ) -> tuple[Section | None, int, int]:
        """The records after ``first`` up to and including LU_SECTION_END."""
        buf, end, h = self.buf, self.end, self.h
        st = SectionState(g, variant)
        keep = h.keep
        recs = [first]
        run = h.run if g is DOMAIN else None
        per_vcpu = g.per_vcpu
        while True:
            if run is not None:
                pos, idx = run(pos, idx, st)
            if pos >= end:
                raise FramingError(
                    f"stream ends inside {g.where}", offset=end, expected="LU_SECTION_END"
                )
            t, length, stop = frame_at(buf, pos, end, idx)
            if t == _SEC_END:
                break
            admit(st, idx, pos, t)
            value = self.record(idx, pos, t, length)
            if t in per_vcpu:
                admitted(st, idx, pos, t, value)
            elif t == T.LU_HOST_INFO:
                self.host = value
            if keep:
                recs.append(Record(t, value, pos))
            pos, idx = stop, idx + 1
        h.section_done()
        close(st, idx, pos)
        sec: Section | None = None
        if keep:
            sec = GlobalSection(recs) if g is GLOBAL else LUDomain(recs)
        self.close(sec, start, idx, pos, length, domid)
        return sec, stop, idx + 1

    def close(
        self, sec: Section | None, start: int, idx: int, off: int, length: int, domid: int
    ) -> None:
        """§4.15: the section's LU_SECTION_END names it and matches its bytes."""
        end: LuSectionEnd = self.record(idx, off, _SEC_END, length)
        if sec is not None:
            sec.end = end
            sec.offset = start
        if end.domid != domid:
            raise section_end_mismatch("domid", idx, off, domid, end.domid)
        if not self.verify:
            if sec is not None:
                sec.checksum_ok = end.section_bytes == off - start and end.crc32c == crc32c(
                    self.buf[start:off]
                )
            return
        if end.section_bytes != off - start:
            raise section_end_mismatch("section_bytes", idx, off, off - start, end.section_bytes)
        if not self.h.defer_crc(start, off, end.crc32c):
            crc = crc32c(self.buf[start:off])
            if end.crc32c != crc:
                raise section_end_mismatch("crc32c", idx, off, crc, end.crc32c)
        if sec is not None:
            sec.checksum_ok = True


def decode_lu(
    data: Source,
    *,
    strict: bool = True,
    verify_checksums: bool = True,
    memory: bool = False,
    on_global: Callable[[GlobalSection], None] | None = None,
    executor: Executor | None = None,
) -> LUStream:
    """Decode and structurally verify a Live Update stream.

    ``data`` is bytes, a bytearray, memoryview, mmap or a path (mapped, not
    read). Bulk entries are zero-copy numpy views over it. Raises only
    :class:`~xenlu.core.errors.DecodeError` subclasses on bad input. With
    ``verify_checksums=False`` a checksum mismatch is recorded in
    ``section.checksum_ok`` instead of raised. ``memory=True`` (a stream in
    hand-over data pages, §5) ignores everything after END. ``on_global`` is
    called with the global section as soon as it is decoded and its checksum
    verified, before any domain section (the §5 reader uses it). The
    cyclic GC is paused meanwhile (:func:`~xenlu.core.framing.gc_paused`).
    With ``executor`` (a :class:`concurrent.futures.Executor`) the domain
    sections are decoded ahead on it; the result and any error are the
    same as without.

    >>> s = decode_lu(encode_lu(some_stream))   # doctest: +SKIP
    """
    buf = as_buffer(data)
    with gc_paused():
        walker = Walker(buf, Build(), strict, verify_checksums, executor)
        stream = walker.stream(memory, on_global)
    assert stream is not None
    return stream


def decode_lu_overlapped(
    data: Source, *, strict: bool = True, executor: Executor
) -> tuple[LUStream, PendingChecksums]:
    """:func:`decode_lu`, returning before the section checksums are known.

    This thread decodes (framing, grammar, field and record rules, the bulk
    records as zero-copy views) while each large section's crc32c (§4.15)
    runs on ``executor`` (crc32c releases the GIL): the caller can start
    working on the stream — ``xenlu check`` validates it — while the
    checksums finish on the second core. Call the returned
    :meth:`PendingChecksums.settle` before trusting the stream or its
    results: it raises the error :func:`decode_lu` would have raised when a
    checksum does not match. Any other error is raised here, the same as
    :func:`decode_lu`'s (a checksum failing before it takes precedence).

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(1) as pool:                 # doctest: +SKIP
    ...     stream, pending = decode_lu_overlapped("host.lu", executor=pool)
    ...     report = validate(stream)
    ...     pending.settle()
    """
    buf = as_buffer(data)
    h = _BuildDeferred(buf, executor)
    pending = PendingChecksums(buf, h, strict)
    try:
        with gc_paused():
            stream = Walker(buf, h, strict).stream()
    except DecodeError:
        # A section before the error may have a bad checksum: that error
        # comes first (pending.settle walks again and raises it).
        pending.settle()
        raise
    except BaseException:
        h.wait()
        raise
    assert stream is not None
    return stream, pending


def scan_lu(data: Source) -> list[SectionInfo]:
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
    data: Source,
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
        raise CallerError(f"Xen {fmt_epoch(version)} is outside {SUPPORTED_RANGE}")
    w = Walker(buf, Build(), strict, verify_checksums)
    w.epoch = epoch_of(*version)
    idx = record_index if record_index is not None else 0
    if offset >= len(buf):
        raise FramingError("no section at offset", offset=offset, expected="LU_DOMAIN")
    t, length, stop = frame_at(buf, offset, len(buf), idx)
    dom, _, _, _ = w.domain(offset, idx, t, length, stop)
    assert dom is not None
    return dom
