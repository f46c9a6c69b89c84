"""Strategies for libxc migration streams, libxl streams and xl save files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from xenlu.core.errors import CallerError
from xenlu.core.registry import LIBXC, LIBXL, OPTIONAL, Record, UnknownRecord
from xenlu.testing.strategies._base import U64, Draw
from xenlu.testing.strategies._records import packed_values, records

# --- libxc / libxl / xl streams ---------------------------------------------------

if TYPE_CHECKING:
    from xenlu.migration.libxc_stream import LibxcStream
    from xenlu.migration.libxl import LibxlStream, XlFile


def _p2m_fitted(value: Any, guest_width: int) -> Any:
    """``value`` with as many frames as its pfn range needs at ``guest_width``,
    the range shortened so that the count stays small (at most 6 frames)."""
    from xenlu.migration.libxc_records import PAGE_SIZE, PvP2mFrames, p2m_frame_count

    fpp = PAGE_SIZE // guest_width
    start = value.p2m_start_pfn
    end = min(value.p2m_end_pfn, (start // fpp + 6) * fpp - 1)
    count = p2m_frame_count(start, end, guest_width)
    frames = np.resize(np.asarray(value.frames, dtype=U64), count) if len(value.frames) else None
    if frames is None:
        frames = np.arange(count, dtype=U64)
    return PvP2mFrames(start, end, frames)


def libxc_models(
    version: int | None = None, *, domain_type: str | None = None
) -> SearchStrategy[LibxcStream]:
    """Valid libxc migration streams (:class:`~xenlu.migration.libxc_stream.LibxcStream`).

    ``version`` 2 or 3 (either when None), ``domain_type`` ``"pv"`` or ``"hvm"``
    (either when None). Records come from :func:`records` and follow the
    reference grammar (§1.7, §1.8): in v3, X86_CPUID_POLICY / X86_MSR_POLICY
    and STATIC_DATA_END precede all memory and register content; PV-only and
    HVM-only records stay in their kind of stream; END closes the stream.
    """
    from xenlu.migration.libxc_records import PV_VCPU_TYPES
    from xenlu.migration.libxc_records import RecType as R
    from xenlu.migration.libxc_stream import DomainHeader, ImageHeader, LibxcStream

    if version not in (None, 2, 3):
        raise CallerError("libxc_models(): version must be 2, 3 or None")
    if domain_type not in (None, "pv", "hvm"):
        raise CallerError("libxc_models(): domain_type must be 'pv', 'hvm' or None")

    def rec(t: int) -> SearchStrategy[Record]:
        name = LIBXC.name_of(t)
        assert name is not None
        return records(name, family="libxc").map(lambda v: Record(t, v))

    optional = st.builds(
        lambda t, b: Record(t, UnknownRecord(t, b)),
        st.integers(0, 0x7FFFFFFF).map(lambda t: OPTIONAL | t),
        st.binary(max_size=20),
    )

    @st.composite
    def build(draw: Draw) -> LibxcStream:
        v = version if version is not None else draw(st.sampled_from([2, 3]))
        kind = domain_type or draw(st.sampled_from(["pv", "hvm"]))
        pv = kind == "pv"
        dh = draw(packed_values(DomainHeader, type=st.just(1 if pv else 2)))
        static: list[Record] = []
        # PV strict order (§1.7): X86_PV_INFO, X86_PV_P2M_FRAMES, PAGE_DATA, vCPU records.
        core = pv and draw(st.booleans())
        if core:
            static.append(draw(rec(R.X86_PV_INFO)))
        if v == 3:
            for t in (R.X86_CPUID_POLICY, R.X86_MSR_POLICY):
                if draw(st.booleans()):
                    static.append(draw(rec(t)))
        # (CHECKPOINT_DIRTY_PFN_LIST is back channel only: never in these streams.)
        free = [R.VERIFY, R.X86_TSC_INFO]
        if pv:
            free.append(R.SHARED_INFO)
            later = [R.PAGE_DATA, R.X86_PV_P2M_FRAMES, *sorted(PV_VCPU_TYPES)] if core else []
        else:
            free += [R.PAGE_DATA, R.HVM_CONTEXT, R.HVM_PARAMS]
            later = []
        head: list[Record] = []
        if core:
            head = [draw(rec(R.X86_PV_P2M_FRAMES)), draw(rec(R.PAGE_DATA))]
        body = [draw(rec(t)) for t in draw(st.lists(st.sampled_from(free + later), max_size=5))]
        body += draw(st.lists(optional, max_size=1))
        body = [*head, *draw(st.permutations(body))]
        sde = [draw(rec(R.STATIC_DATA_END))] if v == 3 else []
        recs = [*static, *sde, *body]
        recs.append(Record(R.END, draw(records("END", family="libxc"))))
        if core:
            # X86_PV_P2M_FRAMES lists the frames its pfn range needs at the
            # guest width of X86_PV_INFO (handle_x86_pv_p2m_frames()).
            width = static[0].value.guest_width
            recs = [
                Record(r.type, _p2m_fitted(r.value, width)) if r.type == R.X86_PV_P2M_FRAMES else r
                for r in recs
            ]
        return LibxcStream(ImageHeader(version=v), dh, recs)

    return build()


def libxc_streams(
    version: int | None = None, *, domain_type: str | None = None
) -> SearchStrategy[bytes]:
    """The bytes of :func:`libxc_models` (valid libxc v2/v3 streams, PV and HVM).

    >>> from xenlu.migration.libxc_stream import decode_libxc
    >>> decode_libxc(libxc_streams(3).example())[0].version
    3
    """
    from xenlu.migration.libxc_stream import libxc_bytes

    return libxc_models(version, domain_type=domain_type).map(libxc_bytes)


def libxl_streams(
    version: int | None = None, *, xl: bool | None = False, as_bytes: bool = True
) -> SearchStrategy[bytes] | SearchStrategy[LibxlStream | XlFile]:
    """libxl streams wrapping :func:`libxc_models` (and, with ``xl``, xl save files).

    ``xl=False``: a libxl stream (header, LIBXC_CONTEXT + libxc stream,
    emulator records, END); ``xl=True``: an xl save file around a libxl
    stream (STREAMv2) or a bare libxc stream; ``xl=None``: either. Bytes
    unless ``as_bytes=False`` (then :class:`~xenlu.migration.libxl.LibxlStream` /
    :class:`~xenlu.migration.libxl.XlFile`).
    """
    import xenlu.migration.libxl as libxl_mod
    from xenlu.migration.libxl import (
        XL_MANDATORY_JSON,
        XL_MANDATORY_STREAMV2,
        LibxlStream,
        XlFile,
        libxl_bytes,
        xl_bytes,
        xl_optional_data,
    )
    from xenlu.migration.libxl_records import LibxlHeader, LibxlType

    L = LibxlType

    @st.composite
    def libxl(draw: Draw) -> Any:
        inner = draw(libxc_models(version))
        wrap = getattr(libxl_mod, "LibxcContext", None)  # the marker's value type, if any
        recs = [Record(L.LIBXC_CONTEXT, wrap(inner) if wrap is not None else inner)]
        # Emulator records follow an HVM guest's libxc stream only (libxl_stream_read.c).
        emu = st.sampled_from([L.EMULATOR_XENSTORE_DATA, L.EMULATOR_CONTEXT])
        for t in draw(st.lists(emu, max_size=2)) if inner.domain.type != 1 else []:
            name = LIBXL.name_of(t)
            assert name is not None
            recs.append(Record(t, draw(records(name, family="libxl"))))
        recs.append(Record(L.END, draw(records("END", family="libxl"))))
        return LibxlStream(LibxlHeader(options=draw(st.sampled_from([0, 2]))), recs)

    @st.composite
    def xlfile(draw: Draw) -> Any:
        v2 = draw(st.booleans())
        stream = draw(libxl()) if v2 else draw(libxc_models(version))
        mandatory = (XL_MANDATORY_STREAMV2 if v2 else 0) | draw(
            st.sampled_from([0, XL_MANDATORY_JSON])
        )
        # Optional data as xl save writes it: none, or u32 config_len + config + a tail.
        optional = draw(
            st.just(b"")
            | st.builds(xl_optional_data, st.binary(max_size=36), st.binary(max_size=4))
        )
        return XlFile(True, mandatory, draw(st.integers(0, 0xFFFFFFFF)), optional, stream)

    strat = libxl() if xl is False else xlfile() if xl else libxl() | xlfile()
    if not as_bytes:
        return strat
    return strat.map(lambda s: xl_bytes(s) if isinstance(s, XlFile) else libxl_bytes(s))
