"""A self-contained C11 header per epoch, generated from xenlu's declarations.

``xenlu schema c-header --epoch X.Y`` prints ``xen_lu_<X.Y>.h``; ``make
schemas`` writes every epoch's header into ``include/`` (beside the JSON
schemas, from the same data). The header holds, for one epoch:

* the §1 framing: record header struct, alignment, ``REC_LENGTH_MAX``, the
  optional and Live-Update-only type bits;
* every record type code (LU records and the libxc records of §4.16) as an
  ``enum xen_lu_rec_type``;
* every fixed layout valid in the epoch as a ``struct`` with exact-width
  types and its reserved fields spelled out (``rsvd*``, never implicit
  padding), the entry layouts of the count-prefixed bulk records, the HVM
  context entries whose size depends on the epoch, and the §5 breadcrumb;
* a ``_Static_assert`` (``static_assert`` in C++) of every struct's size and
  of every field's offset;
* for every field, the names of its flag bits, masks and values as
  ``#define``\\ s, the mask of bits valid in this epoch (``..._VALID``), and
  two X-macros per struct: ``<S>_FIELDS(X)`` (every field) and
  ``<S>_RULES(X, p)`` (each structural rule of §7 as a C expression over a
  pointer ``p``: reserved fields zero, valid bits, allowed values, bounds),
  so a C reader checks exactly the rules xenlu checks.

The data come from :func:`xenlu.tools.schema.epoch_schema`, which derives every
layout from its one declaration (:class:`xenlu.core.layout.Layout`); nothing here
lists a field. Integers are little-endian on the wire and the structs are
in host order, so the header refuses to compile on a big-endian target.

>>> h = c_header("4.21")
>>> "struct xen_lu_domain {" in h and "XEN_LU_STATIC_ASSERT(sizeof(struct xen_lu_domain) == 88" in h
True
>>> c_name("EXTENT(LU_XEN_PAGES)"), c_name("LU_P2M entry"), c_name("XEN_CPUID_LEAF")
('xen_lu_xen_pages_extent', 'xen_lu_p2m_entry', 'xen_lu_cpuid_leaf')
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from xenlu.core import framing
from xenlu.core.epochs import EPOCHS, Epoch, as_epoch, fmt_epoch
from xenlu.core.layout import Layout
from xenlu.core.registry import LIBXC, OPTIONAL
from xenlu.lu import handover
from xenlu.lu.host_records import CountHeader
from xenlu.lu.values import (
    DOMID_COW,
    DOMID_MAX,
    DOMID_XEN,
    INVALID_MFN,
    P2M_HAS_FRAME,
    P2M_NO_FRAME,
)
from xenlu.migration import hvmctx
from xenlu.tools.schema import epoch_schema

__all__ = [
    "GENERATED_BY",
    "c_header",
    "c_name",
    "extra_layouts",
    "header_name",
    "write_headers",
    "write_texts",
]

GENERATED_BY = "xenlu schema c-header"

#: The layouts the artefacts add to the schema's, by the role that names them in
#: C and Kaitai (``struct xen_lu_rec_hdr`` …): the codecs' own declarations.
_EXTRA_ROLES = (
    ("REC_HDR", framing.RecordHeader),
    ("HVM_SAVE_DESCRIPTOR", hvmctx.HvmSaveDescriptor),
    ("BREADCRUMB", handover.BreadcrumbLayout),
)


def extra_layouts() -> dict[str, Layout]:
    """The layouts the artefacts add to the schema's: role → :class:`~xenlu.core.layout.Layout`.

    The record header (:class:`xenlu.core.framing.RecordHeader`), the HVM entry
    descriptor (:class:`xenlu.migration.hvmctx.HvmSaveDescriptor`) and the §5
    breadcrumb (:class:`xenlu.lu.handover.BreadcrumbLayout`), declared once
    where the codecs read and write them.
    """
    return {role: cls.LAYOUT for role, cls in _EXTRA_ROLES}


def c_name(role: str) -> str:
    """The C struct name of a layout role: ``xen_lu_`` + lower_snake, no ``LU_``/``XEN_``."""
    m = re.fullmatch(r"EXTENT\((.*)\)", role)
    if m:
        role = m.group(1) + " extent"
    for prefix in ("LU_", "XEN_"):
        if role.startswith(prefix):
            role = role[len(prefix) :]
            break
    return "xen_lu_" + re.sub(r"[^0-9a-z]+", "_", role.lower()).strip("_")


def _ident(text: str) -> str:
    """An upper-case C identifier fragment of a bit or value name."""
    s = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").upper()
    return s or "UNNAMED"


_CTYPE = {
    "u8": "uint8_t",
    "u16": "uint16_t",
    "u32": "uint32_t",
    "u64": "uint64_t",
    "i8": "int8_t",
    "i16": "int16_t",
    "i32": "int32_t",
    "i64": "int64_t",
}


def _lit(value: int, ftype: str) -> str:
    """A C integer constant of the field's type (no sign-compare warnings)."""
    if ftype.startswith("i"):
        return str(value) if value >= -(1 << 31) else f"({value + 1}LL - 1)"
    suffix = "ull" if ftype == "u64" or value > 0xFFFFFFFF else "u"
    return f"{value:#x}{suffix}" if value > 9 else f"{value}{suffix}"


def _rules(f: dict[str, Any]) -> list[str]:
    """C expressions over ``(p)->field`` that are true when the field obeys its rules."""
    name, ftype = f["name"], f["type"]
    ref = f"(p)->{name}"
    if f.get("reserved"):
        if ftype == "bytes":
            return [f"xen_lu_all_zero((p)->{name}, {f['size']})"]
        return [f"{ref} == 0"]
    out: list[str] = []
    if "valid_mask" in f:
        full = (1 << (8 * f["size"])) - 1
        bad = full & ~int(f["valid_mask"], 16)
        if bad:
            out.append(f"({ref} & {_lit(bad, ftype)}) == 0")
    if "values" in f:
        vals = sorted(int(v) for v in f["values"])
        lo, hi = vals[0], vals[-1]
        if len(vals) == 1:
            out.append(f"{ref} == {_lit(lo, ftype)}")
        elif vals == list(range(lo, hi + 1)):
            parts = [] if lo == 0 and ftype.startswith("u") else [f"{ref} >= {_lit(lo, ftype)}"]
            parts.append(f"{ref} <= {_lit(hi, ftype)}")
            out.append(" && ".join(parts))
        else:
            out.append("(" + " || ".join(f"{ref} == {_lit(v, ftype)}" for v in vals) + ")")
    if "min" in f and not (f["min"] <= 0 and ftype.startswith("u")):
        out.append(f"{ref} >= {_lit(f['min'], ftype)}")
    if "max" in f:
        out.append(f"{ref} <= {_lit(f['max'], ftype)}")
    return out


def _any_of(var: str, values: Any) -> str:
    return " || ".join(f"({var}) == {v}u" for v in values)


def _struct(cname: str, desc: dict[str, Any], comment: str) -> list[str]:
    """The struct, its asserts, names and X-macros for one layout description."""
    up = cname.upper()
    size = desc["size"]
    out = [f"/* {comment}: {size} bytes */", f"struct {cname} {{"]
    align = 1
    for f in desc["fields"]:
        if f["type"] == "bytes":
            decl = f"uint8_t {f['name']}[{f['size']}];"
        else:
            decl = f"{_CTYPE[f['type']]} {f['name']};"
            align = max(align, f["size"])
        note = "  /* reserved: zero */" if f.get("reserved") else ""
        out.append(f"    {decl}{note}")
    out.append("};")
    if size % align:  # pragma: no cover - every declared layout is a multiple of its alignment
        raise ValueError(f"{cname}: {size} bytes is not a multiple of its alignment {align}")
    out.append(f"#define {up}_SIZE {size}u")
    out.append(f'XEN_LU_STATIC_ASSERT(sizeof(struct {cname}) == {size}, "{cname} size");')
    for f in desc["fields"]:
        out.append(
            f"XEN_LU_STATIC_ASSERT(offsetof(struct {cname}, {f['name']}) == {f['offset']}, "
            f'"{cname}.{f["name"]} offset");'
        )
    names: set[str] = set()

    def define(macro: str, value: str) -> None:
        if macro in names:  # pragma: no cover - two names sanitize alike
            raise ValueError(f"{cname}: two names make the macro {macro}")
        names.add(macro)
        out.append(f"#define {macro} {value}")

    for f in desc["fields"]:
        fup = f"{up}_{f['name'].upper()}"
        define(f"{fup}_OFFSET", f"{f['offset']}u")
        for bit, bname in (f.get("bits") or {}).items():
            one = "1ull" if f["size"] == 8 else "1u"
            define(f"{fup}_{_ident(bname)}", f"({one} << {int(bit)})")
        for mask, mname in (f.get("masks") or {}).items():
            define(f"{fup}_{_ident(mname)}_MASK", _lit(int(mask, 16), f["type"]))
        if "valid_mask" in f:
            define(f"{fup}_VALID", _lit(int(f["valid_mask"], 16), f["type"]))
        for value, vname in (f.get("values") or {}).items():
            define(f"{fup}_{_ident(vname)}", _lit(int(value), f["type"]))
        if "min" in f:
            define(f"{fup}_MIN", _lit(f["min"], f["type"]))
        if "max" in f:
            define(f"{fup}_MAX", _lit(f["max"], f["type"]))
    out.append(f"#define {up}_FIELDS(X) \\")
    out.extend(f"    X({cname}, {f['name']}) \\" for f in desc["fields"])
    out.append("    /* end */")
    rules = [(f["name"], r) for f in desc["fields"] for r in _rules(f)]
    out.append(f"#define {up}_RULES(X, p) \\")
    out.extend(f"    X({n}, {r}) \\" for n, r in rules)
    out.append("    /* end */")
    out.append("")
    return out


def layout_desc(layout: Any) -> dict[str, Any]:
    d: dict[str, Any] = layout.describe(None)
    return {"name": d["name"], "size": d["size"], "fields": d["fields"]}


def header_name(epoch: Epoch | str) -> str:
    """``xen_lu_<X.Y>.h``."""
    return f"xen_lu_{fmt_epoch(as_epoch(epoch))}.h"


def c_header(epoch: Epoch | str, schema: dict[str, Any] | None = None) -> str:
    """The C header of ``epoch`` (text), from ``schema`` (default: the code's).

    ``schema`` lets a caller generate from a modified declaration set
    (:func:`xenlu.tools.schema.epoch_schema` of patched layouts).
    """
    e = as_epoch(epoch)
    s = schema if schema is not None else epoch_schema(e)
    ep = fmt_epoch(e)
    guard = f"XEN_LU_{ep.replace('.', '_')}_H"
    lines = _preamble(e, s, guard)
    lines += _type_tables(s)
    seen = _struct_blocks(s, lines)
    lines += [
        "/* Every struct above as X(struct name, macro prefix) */",
        "#define XEN_LU_LAYOUTS(X) \\",
    ]
    lines.extend(f"    X({c}, {c.upper()}) \\" for c in seen)
    lines += ["    /* end */", ""]
    lines += ["/* HVM context typecodes (reference §4.2) */", "enum xen_lu_hvm_typecode {"]
    lines.extend(
        f"    XEN_LU_HVM_{_ident(n)} = {t}," for t, n in sorted(hvmctx.HVM_TYPECODES.items())
    )
    lines += [
        "};",
        f"#define XEN_LU_HVM_SAVE_CODE_MAX {hvmctx.HVM_SAVE_CODE_MAX}u",
    ]
    lines += _span_rules()
    lines += ["", "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {guard} */"]
    return "\n".join(lines) + "\n"


def _preamble(e: Epoch, s: dict[str, Any], guard: str) -> list[str]:
    """The header's comment, guard, includes, epoch and §1 constants, up to the
    opening of the record-type enum."""
    ep = fmt_epoch(e)
    return [
        "/* SPDX-License-Identifier: MIT */",
        "/*",
        f" * {header_name(e)}: the Xen Live Update stream ({s['spec']}), epoch {ep}",
        f" * (Xen {', '.join(s['xen_versions'])}). Layouts, type codes, flag and value names,",
        " * and the structural rules of docs/lu-stream.md §1, §4, §5 and §7.",
        " *",
        f" * GENERATED by `{GENERATED_BY} --epoch {ep}` from xenlu's declarations;",
        " * do not edit (`make schemas` regenerates it, a test keeps it fresh).",
        " *",
        " * Every integer is little-endian on the wire; the structs are in host",
        " * order, so this header is for little-endian hosts (x86, Arm). Fields",
        " * named rsvd* and pad* are reserved: written as zero, must be zero on read.",
        " * One epoch's header per translation unit: every epoch uses the same names.",
        " */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        "#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__",
        '#error "xen_lu headers describe little-endian structs"',
        "#endif",
        "#ifndef XEN_LU_STATIC_ASSERT",
        "#ifdef __cplusplus",
        "#define XEN_LU_STATIC_ASSERT(cond, msg) static_assert(cond, msg)",
        "#else",
        "#define XEN_LU_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)",
        "#endif",
        "#endif",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        f"#define XEN_LU_EPOCH_MAJOR {e[0]}",
        f"#define XEN_LU_EPOCH_MINOR {e[1]}",
        f'#define XEN_LU_EPOCH "{ep}"',
        f"#define XEN_LU_EPOCH_LAST_MINOR {int(s['xen_versions'][-1].split('.')[1])}",
        f"#define XEN_LU_FIRST_EPOCH_MAJOR {EPOCHS[0][0]}",
        f"#define XEN_LU_FIRST_EPOCH_MINOR {EPOCHS[0][1]}",
        f"#define XEN_LU_LAST_EPOCH_MAJOR {EPOCHS[-1][0]}",
        f"#define XEN_LU_LAST_EPOCH_MINOR {EPOCHS[-1][1]}",
        "",
        "/* §1 framing */",
        f"#define XEN_LU_REC_ALIGN {framing.REC_ALIGN}u",
        f"#define XEN_LU_REC_LENGTH_MAX {framing.REC_LENGTH_MAX:#x}u",
        f"#define XEN_LU_REC_OPTIONAL {OPTIONAL:#x}u",
        "#define XEN_LU_REC_LU_ONLY 0x40000000u",
        "",
        "/* Conventions */",
        f"#define XEN_LU_INVALID_MFN {INVALID_MFN:#x}ull",
        f"#define XEN_LU_DOMID_XEN {DOMID_XEN:#x}u",
        f"#define XEN_LU_DOMID_COW {DOMID_COW:#x}u",
        f"#define XEN_LU_DOMID_MAX {DOMID_MAX:#x}u",
        f"#define XEN_LU_PAGE_SHIFT {handover.PAGE_SHIFT}u",
        f"#define XEN_LU_MAX_NR_PAGES {handover.MAX_NR_PAGES:#x}u",
        "",
        "/* Record types (§4; §4.16 libxc records with their libxc codes) */",
        "enum xen_lu_rec_type {",
    ]


def _type_tables(s: dict[str, Any]) -> list[str]:
    """The record-type enum and X-macro tables, and the reserved-bytes helper."""
    lines: list[str] = []
    types: list[tuple[int, str]] = [(int(r["type"], 16), n) for n, r in s["records"].items()]
    end = LIBXC.get(0)
    if end is not None and all(t != 0 for t, _ in types):
        types.append((0, end.name))
    lines.extend(f"    XEN_LU_REC_{n} = {t:#010x}," for t, n in sorted(types))
    lines += [
        "};",
        "/* Every record type as X(name, code), for name tables */",
        "#define XEN_LU_REC_TYPES(X) \\",
    ]
    lines.extend(f"    X({n}, {t:#010x}u) \\" for t, n in sorted(types))
    lines += ["    /* end */", ""]
    lines.append("/* Every libxc record type (most are not allowed in an LU stream, §4.16) */")
    lines.append("#define XEN_LU_LIBXC_TYPES(X) \\")
    lines.extend(f"    X({spec.name}, {spec.type:#010x}u) \\" for spec in LIBXC)
    lines += ["    /* end */", ""]
    lines.append("/* Count-prefixed bulk records (§4): {u32 count; u32 rsvd} then entries */")
    for n, r in s["records"].items():
        if r["bulk"]:
            lines.append(f"#define XEN_LU_REC_{n}_BULK 1")
    lines.append("/* The Live-Update-only count-prefixed records as X(name) */")
    lines.append("#define XEN_LU_BULK_TYPES(X) \\")
    lines.extend(
        f"    X({n}) \\" for n, r in s["records"].items() if r["bulk"] and r["family"] == "lu"
    )
    lines.append("    /* end */")
    lines += [
        "",
        "#ifndef XEN_LU_ALL_ZERO_DEFINED",
        "#define XEN_LU_ALL_ZERO_DEFINED",
        "/* True when the n bytes at b are zero (reserved byte arrays). */",
        "static inline int xen_lu_all_zero(const uint8_t *b, size_t n)",
        "{",
        "    size_t i;",
        "    for (i = 0; i < n; i++)",
        "        if (b[i])",
        "            return 0;",
        "    return 1;",
        "}",
        "#endif",
        "",
    ]
    return lines


def _struct_blocks(s: dict[str, Any], lines: list[str]) -> dict[str, dict[str, Any]]:
    """Append every layout's struct (each C name once) to ``lines``; return them by name."""
    extra = extra_layouts()
    seen: dict[str, dict[str, Any]] = {}
    blocks: list[tuple[str, dict[str, Any], str]] = [
        (c_name("REC_HDR"), layout_desc(extra["REC_HDR"]), "§1 record header")
    ]
    blocks.append((c_name("COUNT_HEADER"), layout_desc(CountHeader.LAYOUT), "§4 count header"))
    for rname, r in s["records"].items():
        for role, desc in r["layouts"].items():
            comment = f"{rname} ({r['type']}) {role}" if role != rname else f"{rname} ({r['type']})"
            if "hvm_typecode" in desc:
                comment += (
                    f", HVM context typecode {desc['hvm_typecode']}"
                    " (xenlu checks only its size, §4.16)"
                )
            blocks.append((c_name(role), desc, comment))
    blocks.append(
        (
            c_name("HVM_SAVE_DESCRIPTOR"),
            layout_desc(extra["HVM_SAVE_DESCRIPTOR"]),
            "HVM_CONTEXT entry descriptor",
        )
    )
    blocks.append((c_name("BREADCRUMB"), layout_desc(extra["BREADCRUMB"]), "§5 breadcrumb"))
    for cname, desc, comment in blocks:
        body = {k: desc[k] for k in ("size", "fields")}
        if cname in seen:
            if seen[cname] != body:  # pragma: no cover - one role, two shapes
                raise ValueError(f"{cname}: two different layouts share the name")
            continue
        seen[cname] = body
        lines.extend(_struct(cname, desc, comment))
        if "hvm_typecode" in desc:
            lines.insert(
                len(lines) - 1, f"#define {cname.upper()}_TYPECODE {desc['hvm_typecode']}u"
            )
    return seen


def _span_rules() -> list[str]:
    """The rules that span fields of one entry, as C macros (§4.7, §4.16)."""
    return [
        "",
        "/* Rules that span fields of one entry (§4.7, §4.16) */",
        "#define XEN_LU_P2M_TYPE_HAS_NO_FRAME(t) (" + _any_of("t", P2M_NO_FRAME) + ")",
        "#define XEN_LU_P2M_TYPE_NEEDS_FRAME(t) (" + _any_of("t", P2M_HAS_FRAME) + ")",
        "#define XEN_LU_HVM_TYPECODE_PER_VCPU(t) ("
        + _any_of("t", sorted(hvmctx.PER_VCPU_TYPECODES))
        + ")",
        "#define XEN_LU_HVM_MAX_INSTANCE(t) ("
        + "".join(f"(t) == {k}u ? {v}u : " for k, v in sorted(hvmctx.MAX_INSTANCE.items()))
        + "0u)",
    ]


def write_headers(directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``xen_lu_<X.Y>.h`` for every epoch into ``directory``; return the paths."""
    items = [(header_name(e), functools.partial(c_header, e)) for e in EPOCHS]
    return write_texts(directory, items)


def write_texts(
    directory: str | os.PathLike[str], items: Sequence[tuple[str, Callable[[], str]]]
) -> list[Path]:
    """Write each ``(file name, text maker)`` into ``directory`` (created if
    missing), as UTF-8; return the paths.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     [p.name for p in write_texts(d, [("a.h", lambda: "x")])]
    ['a.h']
    """
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    out = []
    for name, make in items:
        p = base / name
        p.write_text(make(), encoding="utf-8")
        out.append(p)
    return out


# --- the description the C writer reads ---------------------------------------------

DESCRIPTION_FORMAT = "xenlu-lu-description 1"


def _struct_line(role: str, desc: dict[str, Any], body: bytes, at: int) -> str:
    """``struct <name> field=value …`` for the layout at ``body[at:]`` (no reserved fields)."""
    parts = [f"struct {c_name(role)[len('xen_lu_') :]}"]
    for f in desc["fields"]:
        if f.get("reserved"):
            continue
        raw = body[at + f["offset"] : at + f["offset"] + f["size"]]
        if f["type"] == "bytes":
            parts.append(f"{f['name']}=hex:{raw.hex()}")
        else:
            value = int.from_bytes(raw, "little", signed=f["type"].startswith("i"))
            parts.append(f"{f['name']}={value}")
    return " ".join(parts)


def _raw_line(data: bytes) -> list[str]:
    return [f"raw {data.hex()}"] if data else []


def describe_stream(data: bytes | bytearray | memoryview) -> str:
    """The field-level text description of a valid LU stream that ``xenlu-c write`` reads.

    One directive per line: ``epoch X.Y``; ``record NAME`` (or ``record 0x…``
    for an unknown optional type) opens a record; ``struct NAME field=value …``
    appends one layout of the generated header, by field name, with omitted
    (reserved) fields zero; ``raw HEX`` appends bytes no fixed layout covers;
    ``section-end DOMID`` writes LU_SECTION_END with the checksum and byte
    count the writer computes (§4.15); ``end`` writes END. Record lengths and
    padding are the writer's (§1). The stream must be valid
    (:func:`xenlu.lu.stream.verify_lu` it first).

    >>> from xenlu.testing.hostgen import make_host
    >>> from xenlu.lu.stream import encode_lu
    >>> text = describe_stream(encode_lu(make_host((4, 21), n_hvm=1)))
    >>> text.splitlines()[1:4]
    ['epoch 4.21', 'record LU_VERSION', 'struct version xen_major=4 xen_minor=21']
    """
    buf = bytes(data)
    major, minor = (int.from_bytes(buf[o : o + 4], "little") for o in (8, 12))
    e = as_epoch((major, minor))
    s = epoch_schema(e)
    by_type = {int(r["type"], 16): (n, r) for n, r in s["records"].items()}
    desc_of = {role: d for r in s["records"].values() for role, d in r["layouts"].items()}
    hvm_desc = layout_desc(extra_layouts()["HVM_SAVE_DESCRIPTOR"])
    count_desc = layout_desc(CountHeader.LAYOUT)
    lines = [DESCRIPTION_FORMAT, f"epoch {fmt_epoch(e)}"]
    off = 0
    while off + 8 <= len(buf):
        rtype, length = (int.from_bytes(buf[off + o : off + o + 4], "little") for o in (0, 4))
        body = buf[off + 8 : off + 8 + length]
        off += 8 + length + (-length % 8)
        known = by_type.get(rtype)
        if rtype == 0 and length == 0:
            lines.append("end")
            break
        if known is None:
            lines += [f"record {rtype:#010x}", *_raw_line(body)]
            continue
        name, rec = known
        if name == "LU_SECTION_END":
            lines.append(f"section-end {int.from_bytes(body[0:2], 'little')}")
            continue
        lines.append(f"record {name}")
        roles = list(rec["layouts"])
        if rec["bulk"] and rec["family"] == "lu":
            (role,) = roles
            size = rec["layouts"][role]["size"]
            lines.append(_struct_line("COUNT_HEADER", count_desc, body, 0))
            lines += [
                _struct_line(role, rec["layouts"][role], body, at)
                for at in range(8, len(body), size)
            ]
        elif rec["bulk"]:
            # libxc bulk records: an optional {count; rsvd} header, then entries.
            at = 0
            if len(roles) == 2:
                lines.append(_struct_line(roles[0], rec["layouts"][roles[0]], body, 0))
                at = rec["layouts"][roles[0]]["size"]
            role = roles[-1]
            size = rec["layouts"][role]["size"]
            lines += [
                _struct_line(role, rec["layouts"][role], body, a)
                for a in range(at, len(body), size)
            ]
        elif name == "HVM_CONTEXT":
            # Each entry: its descriptor as a struct, its data as raw bytes.
            at = 0
            while at + 8 <= len(body):
                n = int.from_bytes(body[at + 4 : at + 8], "little")
                lines.append(_struct_line("HVM_SAVE_DESCRIPTOR", hvm_desc, body, at))
                lines += _raw_line(body[at + 8 : at + 8 + n])
                at += 8 + n
        else:
            # A fixed layout, or a header layout followed by variable data.
            role = roles[0]
            size = desc_of[role]["size"]
            lines.append(_struct_line(role, rec["layouts"][role], body, 0))
            lines += _raw_line(body[size:])
    return "\n".join(lines) + "\n"


def canonical_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The part of an LU summary that ``xenlu inspect --json`` and ``xenlu-c read`` both give.

    Format, Xen version, epoch, record and byte totals, records per type, and
    per domain: domid, type, records per type and the entry counts of the
    count-prefixed LU records (§4). Applied to both outputs before comparing.
    """
    from xenlu.core.registry import LU

    bulk = {spec.name for spec in LU if spec.bulk}
    return {
        "format": summary["format"],
        "xen_version": summary["xen_version"],
        "epoch": summary["epoch"],
        "records": summary["records"],
        "bytes": summary["bytes"],
        "record_counts": dict(summary["record_counts"]),
        "domains": [
            {
                "domid": d["domid"],
                "type": d["type"],
                "record_counts": dict(d["record_counts"]),
                "entry_counts": {k: v for k, v in d["entry_counts"].items() if k in bulk},
            }
            for d in summary["domains"]
        ],
    }
