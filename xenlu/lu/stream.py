"""The Live Update stream: the public face of its model, walker and codecs (LU spec §1–§4).

Theory of operation
-------------------
A stream is a global section, then one section per domain, then END (§2).
Each section is a run of records closed by LU_SECTION_END, which carries the
crc32c and length of the section's bytes. The pieces:

* :mod:`xenlu.lu.model` — :class:`LUStream`, :class:`GlobalSection`,
  :class:`LUDomain`: records in stream order, bulk entries as zero-copy
  numpy views, logical equality;
* :mod:`xenlu.lu.grammar` — §2 as tables (which record types each section
  admits, how many per domain type, which must come first);
* :mod:`xenlu.lu.walk` — the one walker that reads a stream against those
  tables with a handler: :func:`decode_lu` builds the stream
  (:func:`decode_lu_overlapped`: the section checksums finish on another
  thread while the caller uses the stream);
* :mod:`xenlu.lu.check` — :func:`verify_lu`, the same walk with a handler
  that builds nothing and checks the steady bulk records in bulk;
* :mod:`xenlu.lu.encode` — :func:`encode_lu_to` and friends.

A section keeps its records in stream order, so ``encode(decode(b)) == b``;
``decode(encode(x)) == x`` for any split of the bulk records.

Example::

    >>> s = demo_stream()                      # doctest: +SKIP
    >>> data = encode_lu(s)                    # doctest: +SKIP
    >>> decode_lu(data) == s                   # doctest: +SKIP
    True
"""

from __future__ import annotations

from xenlu.lu.check import verify_lu
from xenlu.lu.encode import END_BYTES, encode_lu, encode_lu_to, encode_section_to
from xenlu.lu.grammar import END, VCPU_TYPES
from xenlu.lu.model import GlobalSection, LUDomain, LUStream, Section, SectionInfo
from xenlu.lu.walk import (
    decode_domain_section,
    decode_lu,
    decode_lu_overlapped,
    gc_paused,
    scan_lu,
)
from xenlu.migration.libxc_records import RecType

__all__ = [
    "END",
    "END_BYTES",
    "VCPU_TYPES",
    "GlobalSection",
    "LUDomain",
    "LUStream",
    "Section",
    "SectionInfo",
    "X",
    "decode_domain_section",
    "decode_lu",
    "decode_lu_overlapped",
    "encode_lu",
    "encode_lu_to",
    "encode_section_to",
    "gc_paused",
    "scan_lu",
    "verify_lu",
]

#: The libxc record types (§4.16 allows ten of them in a domain section: the
#: table :data:`xenlu.lu.grammar.DOMAIN` says which); the codes are
#: :class:`xenlu.migration.libxc.RecType`'s, not repeated here.
X = RecType
