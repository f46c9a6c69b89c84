"""``xenlu show``: every record of a stream, in the form a Xen engineer reads.

One line per record (index and header offset as errors give them, type in
hex, spec name, body length), then its fields by their declared names:
frame numbers and addresses in hex, flag words as bit names, enumerations
by name, a 16-byte ``handle`` as a UUID, and fields that exist only from
some epoch on labelled ``[4.15+]``. Bulk arrays show their count and the
first and last few runs, consecutive entries that continue one another
(``gfn``/``mfn`` advancing by ``nr_pages``, everything else equal) collapsed
into one line, computed with numpy.

Everything is derived from the declarations (:mod:`xenlu.core.layout` field
names, ``bits``/``mask``/``values``); which fields are addresses is the one
rule of :func:`is_address` (names ending in ``mfn``, ``gfn``, ``pfn``,
``addr``, ``start`` or ``end``, and arrays of ``frames``/``gfns``/``pfns``).

An LU or libxc stream is listed record by record from its framing, so a
broken stream shows every record up to the fault and then the error; the
whole-stream checks (:func:`xenlu.api.verify`) run last.

>>> from xenlu.testing.hostgen import make_host
>>> from xenlu.api import encode
>>> text = "\\n".join(show_lines(encode(make_host("4.15", n_hvm=1, mem_mib=4))))
>>> "LU_DOMAIN" in text and "cdf_flags" in text
True
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Generator, Iterator
from typing import Any

import numpy as np

from xenlu.api import FORMAT_TABLE, decode, detect_format, verify
from xenlu.core.epochs import Epoch, epoch_of, fmt_epoch
from xenlu.core.errors import DecodeError, XenLUError
from xenlu.core.framing import HDR, as_buffer, frames
from xenlu.core.layout import FieldInfo, Layout
from xenlu.core.registry import LIBXC, LIBXL, LU, Ctx, Record, UnknownRecord
from xenlu.lu.records import T
from xenlu.lu.walk import record_value
from xenlu.tools.jsonform import record_label, record_spec

__all__ = ["HEAD", "is_address", "show_lines"]

#: Runs shown at each end of a bulk array (``--all``: every entry).
HEAD = 3
_ADDR_SUFFIXES = ("mfn", "gfn", "pfn", "addr", "start", "end", "crc32c")
_ADDR_ARRAYS = ("frames", "gfns", "pfns")
_INDENT = "    "
_INVALID = (1 << 64) - 1


def is_address(name: str) -> bool:
    """Whether a field holds a frame number or an address (shown in hex).

    >>> is_address("start_mfn"), is_address("lu_bootmem_start"), is_address("max_vcpus")
    (True, True, False)
    """
    return name.endswith(_ADDR_SUFFIXES)


def _address_array(name: str) -> bool:
    return name.endswith(_ADDR_SUFFIXES) or name.endswith(_ADDR_ARRAYS)


# --- one value ------------------------------------------------------------------


def _named(named: Any) -> str:
    return named if isinstance(named, str) else str(named[0])


def _names(mapping: Any) -> dict[int, Any]:
    """A declared ``values``/``bits``/``mask`` table as ``{int: name}``: a mapping
    as declared, or an enum class (``IntEnum``/``IntFlag``) derived from one."""
    if mapping is None:
        return {}
    if isinstance(mapping, type) and issubclass(mapping, enum.Enum):
        return {int(m.value): m.name for m in mapping}
    return {int(k): v for k, v in dict(mapping).items()}


#: Header fields shown in hex although their names say nothing of addresses:
#: magics and identifiers (keyed by layout name and field).
HEX_FIELDS = frozenset(
    {
        ("IMAGE_HEADER", "marker"),
        ("IMAGE_HEADER", "id"),
        ("LIBXL_HEADER", "ident"),
        ("HVM_SAVE_HEADER", "magic"),
    }
)


def fmt_field(fi: FieldInfo | None, name: str, value: Any, layout: str | None = None) -> str:
    """One field's value as text: hex, flag names, enum name, UUID, or decimal.

    >>> fmt_field(None, "gfn", 4096), fmt_field(None, "count", 4096)
    ('0x1000', '4096')
    """
    if isinstance(value, (bytes, bytearray, memoryview, np.void)):
        raw = value.tobytes() if isinstance(value, np.void) else bytes(value)
        if name == "handle" and len(raw) == 16:
            return str(uuid.UUID(bytes=raw))
        return _hex_bytes(raw)
    v = int(value)
    if fi is not None and fi.values is not None:
        name_of = _names(fi.values).get(v)
        return f"{v} ({_named(name_of)})" if name_of is not None else f"{v} (not a known value)"
    if fi is not None and (fi.bits is not None or fi.mask is not None):
        return _flags(fi, v)
    if is_address(name) or (layout, name) in HEX_FIELDS:
        return f"{v:#x}"
    return str(v)


def _flags(fi: FieldInfo, v: int) -> str:
    if v == 0:
        return "0"
    names: list[str] = []
    rest = v
    bits = _names(fi.bits)
    if isinstance(fi.bits, type):  # an IntFlag: member values are masks, not bit numbers
        bits = {m.bit_length() - 1: n for m, n in bits.items() if m and not m & (m - 1)}
    for bit, named in sorted(bits.items()):
        if v >> bit & 1:
            names.append(_named(named))
            rest &= ~(1 << bit)
    for mask, named in sorted(_names(fi.mask).items()):
        if v & mask:
            shift = (mask & -mask).bit_length() - 1
            names.append(f"{_named(named)}={(v & mask) >> shift}")
            rest &= ~mask
    if rest:
        names.append(f"unknown {rest:#x}")
    return f"{v:#x} ({'|'.join(names)})"


def _hex_bytes(raw: bytes, limit: int = 32) -> str:
    if len(raw) <= limit:
        return raw.hex() or "(empty)"
    return f"{raw[:limit].hex()}… ({len(raw)} bytes)"


# --- layouts of values and arrays ------------------------------------------------


def _all_layouts() -> list[Layout]:
    lays: list[Layout] = []
    for reg in (LU, LIBXC, LIBXL):
        for spec in reg:
            for c in spec.layouts:
                lay = getattr(c, "LAYOUT", None)
                if isinstance(lay, Layout) and lay not in lays:
                    lays.append(lay)
    return lays


_BY_DTYPE: dict[np.dtype[Any], Layout] = {}


def layout_of(dt: np.dtype[Any], prefer: tuple[Any, ...] = ()) -> Layout | None:
    """The declared layout of an array's dtype: among ``prefer`` (the record's
    own layouts) first, since layouts of different records may share a dtype."""
    for c in prefer:
        lay = getattr(c, "LAYOUT", None)
        if isinstance(lay, Layout) and lay.dtype == dt:
            return lay
    if not _BY_DTYPE:
        for lay in _all_layouts():
            _BY_DTYPE.setdefault(lay.dtype, lay)
    return _BY_DTYPE.get(dt)


def _since(spec_types: Any, cls: type[Any]) -> dict[str, str]:
    """Fields of one epoch layout that earlier layouts of the record lack: name → "4.15+"."""
    if not isinstance(spec_types, tuple):
        return {}
    seen: set[str] = set()
    labels: dict[str, str] = {}
    for c in spec_types:
        lay = c.LAYOUT
        epoch = lay.name.rpartition("@")[2] if "@" in lay.name else ""
        for n in lay.names:
            if n not in seen and seen and epoch:
                labels[n] = f"{epoch}+"
        seen |= set(lay.names)
        if c is cls:
            break
    return labels


# --- arrays: runs collapsed -----------------------------------------------------


def _runs(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str], str | None]:
    """Start index and length (in pages) of each run of entries that continue one another.

    Address columns must advance by the entry's ``nr_pages`` (1 without one);
    every other non-reserved column must stay equal. Vectorised: one
    comparison per column, no Python object per entry.
    """
    names = [n for n in arr.dtype.names or () if not n.startswith("rsvd")]
    addr = [n for n in names if is_address(n)]
    size = "nr_pages" if "nr_pages" in names else None
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64), addr, size
    pages = arr[size].astype(np.uint64) if size else np.ones(n, np.uint64)
    if not addr:
        return np.arange(n), pages, addr, size
    cont = np.ones(n - 1, bool)
    for c in addr:
        col = arr[c].astype(np.uint64)
        # INVALID_MFN (no frames behind the entry, e.g. an MMIO hole) stays INVALID.
        invalid = (col[1:] == _INVALID) & (col[:-1] == _INVALID)
        cont &= (col[1:] == col[:-1] + pages[:-1]) | invalid
    for c in names:
        if c not in addr and c != size:
            col = arr[c]
            cont &= col[1:] == col[:-1]
    starts = np.flatnonzero(np.concatenate(([True], ~cont)))
    totals = np.add.reduceat(pages, starts) if n else pages
    return starts, totals, addr, size


def _entry_text(
    arr: np.ndarray, i: int, lay: Layout | None, addr: list[str], size: str | None, total: int
) -> str:
    row = arr[i]
    parts: list[str] = []
    spans = []
    for c in addr:
        lo = int(row[c])
        hi = lo + total - 1
        if lo == _INVALID:
            spans.append(f"{c} INVALID")  # INVALID_MFN: no frames behind the range
        else:
            spans.append(f"{c} {lo:#x}" if total == 1 else f"{c} {lo:#x}–{hi:#x}")
    if spans:
        parts.append(" → ".join(spans))
    for c in arr.dtype.names or ():
        if c in addr or c == size or c.startswith("rsvd"):
            continue
        fi = lay.field(c) if lay is not None and c in lay.names else None
        text = fmt_field(fi, c, row[c])
        if fi is not None and fi.values is not None and "(" in text:
            text = text[text.index("(") + 1 : -1]  # just the name: "ram_rw"
        parts.append(f"{c} {text}")
    if size is not None or (addr and total > 1):
        parts.append(f"{total} page{'s' if total != 1 else ''}")
    return ", ".join(parts)


def _array_lines(
    name: str, arr: np.ndarray, show_all: bool, pad: str, prefer: tuple[Any, ...] = ()
) -> Iterator[str]:
    n = len(arr)
    if arr.dtype.names is None:
        yield from _plain_array_lines(name, arr, show_all, pad)
        return
    lay = layout_of(arr.dtype, prefer)
    if show_all:
        starts = np.arange(n)
        size = "nr_pages" if "nr_pages" in arr.dtype.names else None
        addr = [c for c in arr.dtype.names if is_address(c) and not c.startswith("rsvd")]
        totals = arr[size].astype(np.uint64) if size else np.ones(n, np.uint64)
    else:
        starts, totals, addr, size = _runs(arr)
    nruns = len(starts)
    runs = f", {nruns} runs" if nruns != n else ""
    yield f"{pad}{name}: {n} {'entry' if n == 1 else 'entries'}{runs}"
    picks = list(range(nruns)) if show_all or nruns <= 2 * HEAD else [*range(HEAD), -1]
    if not show_all and nruns > 2 * HEAD:
        picks += range(nruns - HEAD, nruns)
    what = "runs" if nruns != n else "entries"
    for k in picks:
        if k < 0:
            yield f"{pad}  … {nruns - 2 * HEAD} more {what} …"
            continue
        text = _entry_text(arr, int(starts[k]), lay, addr, size, int(totals[k]))
        yield f"{pad}  [{int(starts[k])}] {text}"


def _plain_array_lines(name: str, arr: np.ndarray, show_all: bool, pad: str) -> Iterator[str]:
    n = len(arr)
    if not _address_array(name) or show_all:
        vals = arr.tolist() if show_all or n <= 2 * HEAD * 4 else None
        if vals is not None:
            fmt = (lambda v: f"{v:#x}") if _address_array(name) else str
            yield f"{pad}{name}: {n} entries: {' '.join(fmt(v) for v in vals) or '-'}"
            return
    # Runs of consecutive frame numbers: "pfn 0x0–0xff (256)".
    if n == 0:
        yield f"{pad}{name}: 0 entries"
        return
    a = arr.astype(np.uint64)
    brk = np.flatnonzero(a[1:] != a[:-1] + np.uint64(1)) + 1
    starts = np.concatenate(([0], brk))
    ends = np.concatenate((brk, [n]))
    texts = []
    nruns = len(starts)
    picks = (
        list(range(nruns)) if nruns <= 2 * HEAD else [*range(HEAD), -1, *range(nruns - HEAD, nruns)]
    )
    for k in picks:
        if k < 0:
            texts.append(f"… {nruns - 2 * HEAD} more runs …")
            continue
        lo, cnt = int(a[starts[k]]), int(ends[k] - starts[k])
        texts.append(f"{lo:#x}" if cnt == 1 else f"{lo:#x}–{lo + cnt - 1:#x} ({cnt})")
    yield f"{pad}{name}: {n} entries: {', '.join(texts)}"


# --- values ----------------------------------------------------------------------


def value_lines(
    value: Any,
    show_all: bool,
    pad: str,
    since: dict[str, str],
    prefer: tuple[Any, ...] = (),
) -> Iterator[str]:
    """The field lines of one record value (``prefer``: the record's declared layouts)."""
    lay: Layout | None = getattr(type(value), "LAYOUT", None)
    if lay is not None:
        for fi in lay.fields:
            if fi.reserved:
                continue
            label = f" [{since[fi.name]}]" if fi.name in since else ""
            text = fmt_field(fi, fi.name, getattr(value, fi.name), lay.name)
            yield f"{pad}{fi.name + label:24} {text}"
        return
    if not dataclasses.is_dataclass(value):
        return
    for f in dataclasses.fields(value):
        if not f.compare:
            continue
        v = getattr(value, f.name)
        yield from _member_lines(f.name, v, show_all, pad, prefer)


def _member_lines(
    name: str, v: Any, show_all: bool, pad: str, prefer: tuple[Any, ...] = ()
) -> Iterator[str]:
    if isinstance(v, np.ndarray):
        yield from _array_lines(name, v, show_all, pad, prefer)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        yield f"{pad}{name:24} {_hex_bytes(bytes(v))}"
    elif isinstance(v, bool) or v is None:
        yield f"{pad}{name:24} {v}"
    elif isinstance(v, int):
        yield f"{pad}{name:24} {fmt_field(None, name, v)}"
    elif isinstance(v, (list, tuple)):
        yield f"{pad}{name}: {len(v)}"
        items = list(enumerate(v))
        if not show_all and len(items) > 4 * HEAD:
            items = [*items[:HEAD], (-1, None), *items[-HEAD:]]
        for i, item in items:
            if i < 0:
                yield f"{pad}  … {len(v) - 2 * HEAD} more …"
            elif dataclasses.is_dataclass(item):
                head = ", ".join(
                    f"{f.name} {fmt_field(None, f.name, getattr(item, f.name))}"
                    for f in dataclasses.fields(item)
                    if isinstance(getattr(item, f.name), int)
                )
                label = getattr(item, "name", None)  # e.g. an HVM entry's typecode name
                label = f"{label}: " if isinstance(label, str) else ""
                yield f"{pad}  [{i}] {label}{head}"
                for f in dataclasses.fields(item):
                    sub = getattr(item, f.name)
                    if not isinstance(sub, int):
                        yield from _member_lines(f.name, sub, show_all, pad + "    ", prefer)
            else:
                yield f"{pad}  [{i}] {_plain(item)}"
    elif type(v).__name__ in {f.stream_class for f in FORMAT_TABLE.values()}:
        yield f"{pad}{name}: embedded {type(v).__name__}"
        yield from _model_lines(v, show_all, pad + "  ", None, None)
    elif dataclasses.is_dataclass(v):
        yield f"{pad}{name}:"
        yield from value_lines(v, show_all, pad + "  ", {})


def _plain(item: Any) -> str:
    if isinstance(item, (tuple, list)):
        return " = ".join(_plain(x) for x in item)
    if isinstance(item, (bytes, bytearray)):
        raw = bytes(item)
        text = raw.decode("ascii", "replace")
        return repr(text) if raw.isascii() and text.isprintable() else _hex_bytes(raw)
    return str(item)


def record_lines(
    owner: str,
    idx: int | None,
    rec: Record,
    length: int | None,
    show_all: bool,
    pad: str = "",
) -> Iterator[str]:
    """The lines of one record: its header line, then its fields."""
    name = record_label(owner, rec.type)
    at = f" @{rec.offset:#x}" if rec.offset is not None else ""
    num = f"#{idx}" if idx is not None else "#-"
    size = f" {length} bytes" if length is not None else ""
    lay = getattr(type(rec.value), "LAYOUT", None)
    spec = record_spec(owner, rec.type)
    multi = spec is not None and isinstance(spec.value_type, tuple)
    tag = f" [{lay.name}]" if multi and lay is not None else ""
    yield f"{pad}{num}{at} {rec.type:#010x} {name}{size}{tag}"
    if isinstance(rec.value, UnknownRecord):
        yield f"{pad}{_INDENT}body {_hex_bytes(rec.value.body, 64)}"
        return
    since = _since(spec.value_type, type(rec.value)) if spec is not None else {}
    prefer = spec.layouts if spec is not None else ()
    yield from value_lines(rec.value, show_all, pad + _INDENT, since, prefer)


# --- whole streams ---------------------------------------------------------------


def _model_lines(
    stream: Any, show_all: bool, pad: str, record: str | None, buf: memoryview | None
) -> Iterator[str]:
    """A decoded libxc/libxl/xl stream: headers, then every record (lengths from ``buf``)."""
    owner = type(stream).__name__
    for f in dataclasses.fields(stream):
        v = getattr(stream, f.name)
        if f.name == "records":
            for i, r in enumerate(v):
                if record is None or record_label(owner, r.type) == record:
                    n = None if buf is None or r.offset is None else _body_length(buf, r.offset)
                    yield from record_lines(owner, i, r, n, show_all, pad)
        elif type(v).__name__ in {g.stream_class for g in FORMAT_TABLE.values()}:
            yield f"{pad}{f.name}: {type(v).__name__}"
            yield from _model_lines(v, show_all, pad + "  ", record, buf)
        elif hasattr(type(v), "LAYOUT"):
            yield f"{pad}{f.name} ({type(v).LAYOUT.name})"
            yield from value_lines(v, show_all, pad + _INDENT, {})
        else:
            yield from _member_lines(f.name, v, show_all, pad)


def _lu_lines(
    buf: memoryview, show_all: bool, domain: int | None, record: str | None
) -> Iterator[str]:
    """An LU stream from its framing, record by record, so a fault ends the listing."""
    epoch: Epoch = (4, 11)
    current: int | None = None  # domid of the section being listed
    seen = False  # whether the --domain section was found
    for idx, off, t, length in frames(buf, 0, len(buf), 0):
        if t == 0:
            if domain is None and record in (None, "END"):
                yield f"#{idx} @{off:#x} 0x00000000 END"
            if domain is not None and not seen:
                yield f"(no domain {domain} in this stream)"
            return
        value = record_value(buf[off + 8 : off + 8 + length], idx, off, t, length, epoch, True)
        if t == T.LU_VERSION:
            epoch = epoch_of(value.xen_major, value.xen_minor)
        if t == T.LU_DOMAIN:
            current = value.domid
            seen = seen or current == domain
            if domain is None or domain == current:
                yield f"-- section: domain {current} ({_dtype_name(value)}) --"
        elif idx == 0 and domain is None:
            yield f"-- section: global (epoch {fmt_epoch(epoch)}) --"
        show = domain is None or (current is not None and domain == current)
        if show and (record is None or record_label("LUDomain", t) == record):
            yield from record_lines("LUDomain", idx, Record(t, value, off), length, show_all)
        if t == T.LU_SECTION_END:
            current = None
    raise DecodeError("stream ends without END", offset=len(buf), expected="END record")


def _dtype_name(dom: Any) -> str:
    fi = dom.LAYOUT.field("domain_type")
    return _named(_names(fi.values).get(dom.domain_type, str(dom.domain_type)))


def _libxc_lines(
    buf: memoryview, show_all: bool, record: str | None, start: int = 0, pad: str = ""
) -> Generator[str, None, int]:
    """A libxc stream at ``start`` from its framing (headers, then each record
    decoded alone); returns the offset after its END, or -1 at a CHECKPOINT
    (in a checkpointed libxl stream the libxl records resume after it)."""
    from xenlu.migration.libxc_records import RecType
    from xenlu.migration.libxc_stream import DomainHeader, ImageHeader

    ih = ImageHeader.LAYOUT
    dh = DomainHeader.LAYOUT
    if len(buf) - start < ih.size + dh.size:
        return len(buf)  # the whole-stream check reports the truncated header
    yield f"{pad}image header ({ih.name})"
    yield from value_lines(ih.unpack(buf, start), show_all, pad + _INDENT, {})
    yield f"{pad}domain header ({dh.name})"
    yield from value_lines(dh.unpack(buf, start + ih.size), show_all, pad + _INDENT, {})
    for idx, off, t, length in frames(buf, start + ih.size + dh.size, len(buf), 0):
        spec = LIBXC.get(t)
        body = buf[off + 8 : off + 8 + length]
        if spec is None or spec.value_type is None:
            value: Any = UnknownRecord(t, bytes(body))
        else:
            value = spec.decode(body, Ctx(idx, t, off + 8, length, family="libxc"))
        if record is None or record_label("LibxcStream", t) == record:
            rec = Record(t, value, off)
            yield from record_lines("LibxcStream", idx, rec, length, show_all, pad)
        if t == 0:
            return off + 8
        if t == RecType.CHECKPOINT:
            return -1
    return len(buf)


def _libxl_lines(
    buf: memoryview, show_all: bool, record: str | None, start: int
) -> Generator[str, None, bool]:
    """A libxl stream from its framing, the embedded libxc stream listed in place.
    Returns False at a CHECKPOINT_END (checkpoint batches are listed from the
    decoded model instead)."""
    from xenlu.migration.libxl_records import LibxlHeader, LibxlType

    lay = LibxlHeader.LAYOUT
    if len(buf) - start < lay.size:
        return True
    yield f"libxl header ({lay.name})"
    yield from value_lines(lay.unpack(buf, start), show_all, _INDENT, {})
    pos, idx = start + lay.size, 0
    while pos < len(buf):
        fr = next(frames(buf, pos, len(buf), idx), None)
        if fr is None:
            break
        idx, off, t, length = fr
        if t == LibxlType.CHECKPOINT_END:
            return False
        spec = LIBXL.get(t)
        body = buf[off + 8 : off + 8 + length]
        if spec is None or t == LibxlType.LIBXC_CONTEXT:
            value: Any = UnknownRecord(t, bytes(body))
        else:
            value = spec.decode(body, Ctx(idx, t, off + 8, length, family="libxl"))
        if record is None or record_label("LibxlStream", t) == record:
            if t == LibxlType.LIBXC_CONTEXT:
                yield f"#{idx} @{off:#x} {t:#010x} LIBXC_CONTEXT {length} bytes"
            else:
                yield from record_lines("LibxlStream", idx, Record(t, value, off), length, show_all)
        pos = off + 8 + length + (-length & 7)
        idx += 1
        if t == LibxlType.LIBXC_CONTEXT:
            yield f"{_INDENT}libxc stream @{pos:#x}"
            pos = yield from _libxc_lines(buf, show_all, record, pos, _INDENT)
            if pos < 0:  # checkpoint batches are listed from the decoded model
                return False
        if t == LibxlType.END:
            break
    return True


def _xl_lines(buf: memoryview, show_all: bool, record: str | None) -> Generator[str, None, bool]:
    from xenlu.migration.libxl import XL_HDR, XL_MAGIC, XL_MANDATORY_STREAMV2

    at = len(XL_MAGIC)
    if len(buf) < at + XL_HDR.size:
        return True
    byteorder, mandatory, optional, optlen = XL_HDR.unpack_from(buf, at)
    yield "xl header"
    yield f"{_INDENT}{'byteorder':24} {byteorder:#x}"
    yield f"{_INDENT}{'mandatory_flags':24} {mandatory:#x}"
    yield f"{_INDENT}{'optional_flags':24} {optional:#x}"
    yield f"{_INDENT}{'optional_data':24} {optlen} bytes"
    stream_at = at + XL_HDR.size + optlen
    if mandatory & XL_MANDATORY_STREAMV2:
        done = yield from _libxl_lines(buf, show_all, record, stream_at)
        return done
    yield from _libxc_lines(buf, show_all, record, stream_at)
    return True


def show_lines(
    data: Any,
    fmt: str = "auto",
    *,
    show_all: bool = False,
    domain: int | None = None,
    record: str | None = None,
) -> Iterator[str]:
    """The listing of a stream, line by line; the stream's first problem is raised
    after the lines of every record before it (the caller prints it)."""
    buf = as_buffer(data)
    name = detect_format(buf) if fmt == "auto" else fmt
    if name == "lu":
        yield from _lu_lines(buf, show_all, domain, record)
    elif name == "libxc":
        yield from _libxc_lines(buf, show_all, record)
    elif name in ("libxl", "xl"):
        walk = (
            _libxl_lines(buf, show_all, record, 0)
            if name == "libxl"
            else _xl_lines(buf, show_all, record)
        )
        lines: list[str] = []
        try:
            while True:
                lines.append(next(walk))
        except StopIteration as stop:
            walked = bool(stop.value)
        except XenLUError:
            yield from lines
            raise
        if walked:
            yield from lines
        else:
            # A checkpointed stream: the libxc batch after a CHECKPOINT_END has
            # no length of its own; list the decoded stream instead.
            try:
                stream = decode(buf, name)
            except XenLUError:
                yield from lines
                raise
            yield from _model_lines(stream, show_all, "", record, buf)
    else:
        # Any other family of the format table: its decoded stream, field by
        # field and record by record (a broken one shows only the error).
        yield f"{FORMAT_TABLE[name].title}"
        yield from _model_lines(decode(buf, name), show_all, "", record, buf)
    verify(buf, name)


def _body_length(buf: memoryview, offset: int) -> int:
    """The body length in the record header at ``offset``."""
    return int(HDR.unpack_from(buf, offset)[1])


def show_error(exc: XenLUError) -> str:
    """The line that ends a listing of a broken stream."""
    return f"error: {type(exc).__name__}: {exc}"
