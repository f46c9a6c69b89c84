"""Hypothesis strategies for every xenlu record, whole consistent hosts and their faults.

Fuzzing is part of the product: users fuzz their own restore code with the
streams these strategies make, and xenlu fuzzes its own decoders with them.
Everything here is **derived from the record declarations** (the
:class:`~xenlu.core.layout.Layout` of each :func:`~xenlu.core.layout.packed` class and
the :class:`~xenlu.core.registry.RecordSpec` of each record type): field widths,
allowed values, valid flag bits per epoch, ``lo``/``hi`` bounds and reserved
fields come from :attr:`Layout.fields <xenlu.core.layout.Layout.fields>`, counts
always match lengths, and only the few record-level rules that a declaration
cannot express (the ``_check_*`` functions of :mod:`xenlu.lu.records`) are
written out here. A record declared tomorrow with a fixed layout, a bulk
layout or an entry array gets a strategy without any change to this module.

This module needs `hypothesis <https://hypothesis.works>`_ (``pip install
'xenlu[hypothesis]'``); importing it without hypothesis raises
:class:`ImportError` saying so.

The code lives in private modules by theme — ``_records`` (single records
and layouts), ``_hosts`` (whole LU hosts), ``_libxc`` (libxc/libxl/xl
streams), ``_corruptions`` and ``_faults`` (single-fault variants),
``_xenstore`` (xenstored migration streams) — and
every public name is imported here; ``xenlu.testing.strategies`` is the only import
path to use.

Public API
----------
* :func:`records` — values of one record type valid in one epoch (or in a
  plain libxc/libxl stream), e.g. ``records("LU_EVTCHNS", "4.15")``;
  :func:`record_names` lists every name :func:`records` knows.
* :func:`packed_values` / :func:`entries` — values / numpy arrays of any
  declared layout, for building your own strategies.
* :func:`hosts` — semantically consistent whole Live Update hosts, built by
  :mod:`xenlu.testing.hostgen` from the knobs :func:`host_plans` draws
  (:class:`~xenlu.lu.stream.LUStream`), :func:`streams` — their bytes;
  :func:`wild_hosts` — structurally valid streams whose records relate at
  random (for fuzzing validators).
* :func:`libxc_models` / :func:`libxc_streams` — valid libxc v2/v3 streams
  (PV and HVM); :func:`libxl_streams` — libxl streams and xl save files.
* :func:`corruptions` — single-fault variants of a stream, each with the
  error class or validation finding code it must raise
  (:class:`Corruption`).

Examples::

    >>> from hypothesis import given
    >>> from xenlu.lu.stream import decode_lu, encode_lu
    >>> @given(hosts("4.11", max_domains=4))
    ... def test_roundtrip(host):
    ...     assert decode_lu(encode_lu(host)) == host
    >>> test_roundtrip()

    >>> from xenlu.core.registry import LU, Ctx
    >>> spec = LU.by_name("LU_EVTCHNS")
    >>> @given(records("LU_EVTCHNS", "4.15"))
    ... def test_body(value):
    ...     body = b"".join(bytes(p) for p in spec.encode(value))
    ...     ctx = Ctx(0, spec.type, 8, len(body), (4, 15))
    ...     assert spec.decode(memoryview(body), ctx) == value
    >>> test_body()

    >>> @given(streams("4.21").flatmap(corruptions))
    ... def test_faults_are_caught(c):
    ...     c.check()          # raises AssertionError unless caught as declared
"""

from __future__ import annotations

try:
    import hypothesis as _hypothesis  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised only without hypothesis
    raise ImportError(
        "xenlu.testing.strategies needs the optional dependency hypothesis: "
        "pip install 'xenlu[hypothesis]' (or pip install hypothesis)"
    ) from _exc

import inspect

# ``st`` is in this namespace because the examples of the docstrings use it.
from hypothesis import strategies as st  # noqa: F401

from xenlu.testing.strategies import _base, _corruptions, _faults, _hosts, _libxc, _records
from xenlu.testing.strategies._base import EXCLUDED, supported_versions
from xenlu.testing.strategies._corruptions import FAULT_KINDS, Corruption
from xenlu.testing.strategies._faults import corruptions
from xenlu.testing.strategies._hosts import host_plans, hosts, streams, wild_hosts
from xenlu.testing.strategies._libxc import libxc_models, libxc_streams, libxl_streams

# The tests reach the derived strategy of one record as ``strategies._derive``.
from xenlu.testing.strategies._records import derive as _derive  # noqa: F401
from xenlu.testing.strategies._records import (
    entries,
    field_values,
    packed_values,
    record_names,
    records,
)

# The xenstored migration stream's strategies (issue 17).
from xenlu.testing.strategies._xenstore import XsCorruption as XsCorruption
from xenlu.testing.strategies._xenstore import xenstore_corruptions as xenstore_corruptions
from xenlu.testing.strategies._xenstore import xenstore_models as xenstore_models
from xenlu.testing.strategies._xenstore import xenstore_streams as xenstore_streams

__all__ = [
    "EXCLUDED",
    "FAULT_KINDS",
    "Corruption",
    "corruptions",
    "entries",
    "field_values",
    "host_plans",
    "hosts",
    "libxc_models",
    "libxc_streams",
    "libxl_streams",
    "packed_values",
    "record_names",
    "records",
    "streams",
    "supported_versions",
    "wild_hosts",
]

#: doctest looks at this module's own objects only: name the documented functions
#: and classes of the private modules so that ``doctest.testmod(xenlu.testing.strategies)``
#: runs every example of the package.
__test__ = {
    f"{m.__name__}.{name}": obj
    for m in (_base, _records, _hosts, _libxc, _corruptions, _faults)
    for name, obj in vars(m).items()
    if (inspect.isfunction(obj) or inspect.isclass(obj))
    and obj.__module__ == m.__name__
    and ">>>" in (obj.__doc__ or "")
}
