"""The Live Update stream (LU spec §2-§4) and the kexec hand-over (§5).

The names below are this package's public API; its modules are private to
the family. Names load on first use, so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xenlu.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from xenlu.lu.handover import (
        LIVE_UPDATE_MAGIC,
        LU_DATA,
        MAX_NR_PAGES,
        PAGE_SIZE,
        Bootmem,
        Breadcrumb,
        BreadcrumbLayout,
        Handover,
        array_pages,
        find_breadcrumb,
        format_liveupdate,
        parse_liveupdate,
        read_handover,
        write_handover,
        write_handover_file,
    )
    from xenlu.lu.stream import (
        END,
        END_BYTES,
        VCPU_TYPES,
        GlobalSection,
        LUDomain,
        LUStream,
        Section,
        SectionInfo,
        X,
        decode_domain_section,
        decode_lu,
        decode_lu_overlapped,
        encode_lu,
        encode_lu_to,
        encode_section_to,
        gc_paused,
        scan_lu,
        verify_lu,
    )

__all__ = [
    "END",
    "END_BYTES",
    "LIVE_UPDATE_MAGIC",
    "LU_DATA",
    "MAX_NR_PAGES",
    "PAGE_SIZE",
    "VCPU_TYPES",
    "Bootmem",
    "Breadcrumb",
    "BreadcrumbLayout",
    "GlobalSection",
    "Handover",
    "LUDomain",
    "LUStream",
    "Section",
    "SectionInfo",
    "X",
    "array_pages",
    "decode_domain_section",
    "decode_lu",
    "decode_lu_overlapped",
    "encode_lu",
    "encode_lu_to",
    "encode_section_to",
    "find_breadcrumb",
    "format_liveupdate",
    "gc_paused",
    "parse_liveupdate",
    "read_handover",
    "scan_lu",
    "verify_lu",
    "write_handover",
    "write_handover_file",
]

_WHERE: dict[str, str] = {
    "Bootmem": "xenlu.lu.handover",
    "Breadcrumb": "xenlu.lu.handover",
    "BreadcrumbLayout": "xenlu.lu.handover",
    "END": "xenlu.lu.stream",
    "END_BYTES": "xenlu.lu.stream",
    "GlobalSection": "xenlu.lu.stream",
    "Handover": "xenlu.lu.handover",
    "LIVE_UPDATE_MAGIC": "xenlu.lu.handover",
    "LUDomain": "xenlu.lu.stream",
    "LUStream": "xenlu.lu.stream",
    "LU_DATA": "xenlu.lu.handover",
    "MAX_NR_PAGES": "xenlu.lu.handover",
    "PAGE_SIZE": "xenlu.lu.handover",
    "Section": "xenlu.lu.stream",
    "SectionInfo": "xenlu.lu.stream",
    "VCPU_TYPES": "xenlu.lu.stream",
    "X": "xenlu.lu.stream",
    "array_pages": "xenlu.lu.handover",
    "decode_domain_section": "xenlu.lu.stream",
    "decode_lu": "xenlu.lu.stream",
    "decode_lu_overlapped": "xenlu.lu.stream",
    "encode_lu": "xenlu.lu.stream",
    "encode_lu_to": "xenlu.lu.stream",
    "encode_section_to": "xenlu.lu.stream",
    "find_breadcrumb": "xenlu.lu.handover",
    "format_liveupdate": "xenlu.lu.handover",
    "gc_paused": "xenlu.lu.stream",
    "parse_liveupdate": "xenlu.lu.handover",
    "read_handover": "xenlu.lu.handover",
    "scan_lu": "xenlu.lu.stream",
    "verify_lu": "xenlu.lu.stream",
    "write_handover": "xenlu.lu.handover",
    "write_handover_file": "xenlu.lu.handover",
}


__getattr__ = lazy_getattr(__name__, _WHERE, globals())
