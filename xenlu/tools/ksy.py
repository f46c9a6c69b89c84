"""Kaitai Struct descriptions (``.ksy``) of the LU stream and the libxc stream.

``xenlu schema ksy --epoch X.Y`` prints ``xen_lu_<X>_<Y>.ksy``; ``xenlu schema
ksy --libxc`` prints ``xen_libxc.ksy``; ``make schemas`` writes them all into
``ksy/``. Open one in the Kaitai Web IDE (https://ide.kaitai.io/) together
with a stream file to browse every record, or compile it with
``kaitai-struct-compiler`` into a parser for Go, Rust, Java, C++, Python …

What a description holds, generated from the same data as the JSON schemas
and the C headers (:func:`xenlu.tools.schema.epoch_schema`, i.e. the declarations):

* the §1 framing: ``record`` = type (an enum of every record type), length,
  body, padding to 8 bytes; the stream is records up to END;
* the body of each record type as a type switch on the type code: fixed
  layouts field by field with their exact types, count-prefixed bulk records
  as ``count`` + ``rsvd`` + ``count`` entries, the variable records (grant
  table, event-channel ABI, IOREQ servers, HVM context, PV vCPU records) by
  their parts;
* value names as enums, every flag bit and multi-bit group as a named
  boolean / integer instance, and reserved fields checked zero (``valid``).

Only how the variable records are put together is written here; every layout
and name comes from its declaration.

>>> text = lu_ksy("4.21")
>>> "id: xen_lu_4_21" in text and "lu_p2m:" in text
True
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

from xenlu.core import framing
from xenlu.core.epochs import EPOCHS, Epoch, as_epoch, fmt_epoch
from xenlu.core.registry import LIBXC, OPTIONAL
from xenlu.lu.host_records import CountHeader
from xenlu.tools.cgen import c_name, extra_layouts, layout_desc, write_texts
from xenlu.tools.schema import epoch_schema

__all__ = [
    "GENERATED_BY",
    "ksy_name",
    "libxc_ksy",
    "lu_ksy",
    "to_yaml",
    "write_ksy",
]

GENERATED_BY = "xenlu schema ksy"
LIBXC_KSY = "xen_libxc.ksy"

# --- a small YAML writer (block style; strings as JSON, which YAML reads) -----------

_PLAIN_VALUE = re.compile(r"^[a-z][a-z0-9_]*$")
# Words some YAML readers take for booleans or null: always quoted.
_YAML_WORDS = frozenset(("y", "n", "yes", "no", "on", "off", "true", "false", "null"))
_PLAIN_KEY = re.compile(r"^[a-z_][a-z0-9_-]*$")


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        if _PLAIN_VALUE.match(v) and v not in _YAML_WORDS:
            return v
        return json.dumps(v, ensure_ascii=False)
    raise TypeError(f"cannot write {v!r} as YAML")


def _key(k: Any) -> str:
    if isinstance(k, int):
        return f"{k:#x}" if k > 9 else str(k)
    if _PLAIN_KEY.match(k):
        return str(k)
    return json.dumps(k)


def _emit(v: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, str) and "\n" in x:
                out.append(f"{pad}{_key(k)}: |")
                out.extend(f"{pad}  {line}".rstrip() for line in x.rstrip("\n").split("\n"))
            elif (isinstance(x, dict) and x) or (isinstance(x, list) and x and not _flat(x)):
                out.append(f"{pad}{_key(k)}:")
                _emit(x, indent + 2, out)
            elif isinstance(x, list):
                out.append(f"{pad}{_key(k)}: [{', '.join(_scalar(i) for i in x)}]")
            else:
                out.append(f"{pad}{_key(k)}: {_scalar(x)}")
    elif isinstance(v, list):
        for x in v:
            sub: list[str] = []
            _emit(x, indent + 2, sub)
            out.append(f"{pad}- {sub[0].lstrip()}")
            out.extend(sub[1:])
    else:
        out.append(pad + _scalar(v))


def _flat(xs: list[Any]) -> bool:
    return all(not isinstance(x, dict | list) for x in xs)


def to_yaml(data: dict[str, Any]) -> str:
    """``data`` as block-style YAML (strings double-quoted, hex integer keys)."""
    out: list[str] = []
    _emit(data, 0, out)
    return "\n".join(out) + "\n"


# --- layouts -> Kaitai types --------------------------------------------------------


def _tid(role: str) -> str:
    """The Kaitai type id of a layout role (the C struct name without ``xen_lu_``)."""
    return c_name(role)[len("xen_lu_") :]


def _enum_id(name: str) -> str:
    s = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "unnamed"
    return s if s[0].isalpha() else f"v_{s}"


def _kaitai_type(f: dict[str, Any], big: bool) -> dict[str, Any]:
    if f["type"] == "bytes":
        return {"size": f["size"]}
    t = ("u" if f["type"][0] == "u" else "s") + str(f["size"])
    return {"type": t + ("be" if big and f["size"] > 1 else "")}


def _layout_type(
    tid: str,
    desc: dict[str, Any],
    enums: dict[str, dict[int, str]],
    big: bool = False,
    check_reserved: bool = True,
) -> dict[str, Any]:
    """One layout as a Kaitai type: seq of fields, enums, bit instances, reserved checks.

    ``check_reserved=False`` for layouts whose reserved bytes xenlu does not
    check either (HVM context entry data, LU spec §4.16: only sizes are).
    """
    seq: list[dict[str, Any]] = []
    instances: dict[str, Any] = {}
    for f in desc["fields"]:
        attr: dict[str, Any] = {"id": f["name"]}
        if f.get("reserved") and not check_reserved:
            attr.update(_kaitai_type(f, big))
            attr["doc"] = "reserved (not checked: xenlu checks HVM entry sizes only)"
            seq.append(attr)
            continue
        if f.get("reserved"):
            if f["type"] == "bytes":
                attr["contents"] = [0] * f["size"]
            else:
                attr.update(_kaitai_type(f, big))
                attr["valid"] = 0
            attr["doc"] = "reserved: zero"
            seq.append(attr)
            continue
        attr.update(_kaitai_type(f, big))
        if f.get("values"):
            eid = f"{tid}_{f['name']}"
            names: dict[int, str] = {}
            for v, n in f["values"].items():
                ident = _enum_id(n)
                while ident in names.values():
                    ident += "_"
                names[int(v)] = ident
            enums[eid] = names
            attr["enum"] = eid
        seq.append(attr)
        for bit, bname in (f.get("bits") or {}).items():
            instances[f"{f['name']}_{_enum_id(bname)}"] = {
                "value": f"({f['name']} & {1 << int(bit):#x}) != 0",
                "doc": f"{f['name']} bit {bit}",
            }
        for mask, mname in (f.get("masks") or {}).items():
            m = int(mask, 16)
            shift = (m & -m).bit_length() - 1
            instances[f"{f['name']}_{_enum_id(mname)}"] = {
                "value": f"({f['name']} & {m:#x}) >> {shift}",
                "doc": f"{f['name']} bits {mask}",
            }
    out: dict[str, Any] = {"seq": seq}
    if instances:
        out["instances"] = instances
    return out


#: The records of a stream, up to and with END (LU spec §2, libxc spec).
_RECORDS_TO_END = {
    "id": "records",
    "type": "record",
    "repeat": "until",
    "repeat-until": "_.type == rec_type::end",
}


def _count_prefixed(entry: str, name: str = "entries") -> dict[str, Any]:
    return {
        "seq": [
            {"id": "count", "type": "u4"},
            {"id": "rsvd", "type": "u4", "valid": 0, "doc": "reserved: zero"},
            _repeat(name, entry, "count"),
        ]
    }


_A = framing.REC_ALIGN


def _record_type(enum: str, cases: dict[str, str]) -> dict[str, Any]:
    """§1 framing: type, length, body (switch on the type), padding to 8 bytes."""
    return {
        "seq": [
            {"id": "type", "type": "u4", "enum": enum},
            {
                "id": "length",
                "type": "u4",
                "valid": {"max": framing.REC_LENGTH_MAX},
                "doc": "body length, padding excluded",
            },
            {"id": "body", "size": "length", "type": {"switch-on": "type", "cases": cases}},
            {
                "id": "padding",
                "size": f"({_A} - length % {_A}) % {_A}",
                "doc": "zeros up to a multiple of 8",
            },
        ],
        "instances": {
            "is_optional": {
                "value": f"(type.to_i & {OPTIONAL:#x}) != 0",
                "doc": "bit 31: a reader that does not know the type skips it",
            }
        },
    }


def _repeat(field: str, type_id: str, count: str) -> dict[str, Any]:
    """A field of ``count`` items of ``type_id`` (a count another field gives)."""
    return {"id": field, "type": type_id, "repeat": "expr", "repeat-expr": count}


def _variable_types(s: dict[str, Any], types: dict[str, Any]) -> dict[str, str]:
    """Types of the records whose bodies have several parts; record name -> type id."""
    recs = s["records"]
    out: dict[str, str] = {}
    if "LU_GRANT_TABLE" in recs:
        types["lu_grant_table"] = {
            "seq": [
                {"id": "header", "type": "grant_table_header"},
                _repeat("grant_frames", "u8", "header.nr_grant_frames"),
                _repeat("status_frames", "u8", "header.nr_status_frames"),
            ]
        }
        out["LU_GRANT_TABLE"] = "lu_grant_table"
    if "LU_EVTCHN_ABI" in recs:
        types["lu_evtchn_abi"] = {
            "seq": [
                {"id": "header", "type": "evtchn_abi_header"},
                _repeat("control_blocks", "evtchn_abi_control_block", "header.nr_control_blocks"),
                {"id": "pages", "type": "evtchn_abi_pages_header"},
                _repeat("event_array_gfns", "u8", "pages.nr_event_array_pages"),
            ]
        }
        out["LU_EVTCHN_ABI"] = "lu_evtchn_abi"
    if "LU_IOREQ_SERVERS" in recs:
        types["ioreq_server"] = {
            "seq": [
                {"id": "header", "type": "ioreq_servers_server"},
                _repeat("ranges", "ioreq_servers_range", "header.nr_ranges"),
            ]
        }
        types["lu_ioreq_servers"] = _count_prefixed("ioreq_server", "servers")
        out["LU_IOREQ_SERVERS"] = "lu_ioreq_servers"
    vcpu = [n for n in recs if n.startswith("X86_PV_VCPU_")]
    if vcpu:
        types["x86_pv_vcpu"] = {
            "seq": [
                {"id": "header", "type": "x86_pv_vcpu_header"},
                {"id": "context", "size-eos": True},
            ]
        }
        out.update(dict.fromkeys(vcpu, "x86_pv_vcpu"))
    if "HVM_CONTEXT" in recs:
        _hvm_context_types(recs["HVM_CONTEXT"], types)
        out["HVM_CONTEXT"] = "hvm_context"
    return out


def _hvm_context_types(hvm: dict[str, Any], types: dict[str, Any]) -> None:
    """HVM_CONTEXT: descriptor + entry (switched on the typecode), up to END."""
    cases = {
        int(d["hvm_typecode"]): _tid(role)
        for role, d in hvm["layouts"].items()
        if "hvm_typecode" in d
    }
    cases[1] = "hvm_save_header"
    types["hvm_entry"] = {
        "seq": [
            {"id": "desc", "type": "hvm_save_descriptor"},
            {
                "id": "data",
                "size": "desc.length",
                "type": {
                    "switch-on": "desc.typecode",
                    "cases": dict(sorted(cases.items())),
                },
            },
        ]
    }
    types["hvm_context"] = {
        "seq": [
            {
                "id": "entries",
                "type": "hvm_entry",
                "repeat": "until",
                "repeat-until": "_.desc.typecode == 0",
            }
        ],
        "doc": "HEADER first, END (typecode 0, instance 0, length 0) last, no padding",
    }


def _body_types(s: dict[str, Any], types: dict[str, Any], enums: dict[str, Any]) -> dict[str, str]:
    """Every layout as a type, every record body as a type; record name -> body type id."""
    recs = s["records"]
    extra = extra_layouts()
    layouts: dict[str, dict[str, Any]] = {
        "count_header": layout_desc(CountHeader.LAYOUT),
        "hvm_save_descriptor": layout_desc(extra["HVM_SAVE_DESCRIPTOR"]),
    }
    for r in recs.values():
        for role, d in r["layouts"].items():
            layouts.setdefault(_tid(role), d)
    for tid, d in layouts.items():
        types[tid] = _layout_type(tid, d, enums, check_reserved="hvm_typecode" not in d)
    body: dict[str, str] = {}
    for name, r in recs.items():
        roles = list(r["layouts"])
        if r["bulk"] and r["family"] == "lu":
            tid = name.lower()
            types[tid] = _count_prefixed(_tid(roles[0]))
            body[name] = tid
        elif r["bulk"] and len(roles) == 2:  # HVM_PARAMS: {count; rsvd} then entries
            tid = name.lower()
            types[tid] = _count_prefixed(_tid(roles[1]))
            body[name] = tid
        elif r["bulk"]:  # X86_CPUID_POLICY, X86_MSR_POLICY: entries to the end
            tid = name.lower()
            field = "leaves" if name == "X86_CPUID_POLICY" else "entries"
            types[tid] = {"seq": [{"id": field, "type": _tid(roles[0]), "repeat": "eos"}]}
            body[name] = tid
        elif (
            len(roles) == 1
            and name not in ("LU_GRANT_TABLE",)
            and not name.startswith("X86_PV_VCPU_")
        ):
            body[name] = _tid(roles[0])
    body.update(_variable_types(s, types))
    return body


def _type_enum(s: dict[str, Any]) -> dict[int, str]:
    codes = {int(r["type"], 16): n for n, r in s["records"].items()}
    for spec in LIBXC:
        codes.setdefault(spec.type, spec.name)
    return {t: n.lower() for t, n in sorted(codes.items())}


def ksy_name(epoch: Epoch | str) -> str:
    """``xen_lu_<X>_<Y>.ksy``."""
    return f"xen_lu_{fmt_epoch(as_epoch(epoch)).replace('.', '_')}.ksy"


def lu_ksy_data(epoch: Epoch | str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``.ksy`` of ``epoch`` as data (``schema``: default the code's)."""
    e = as_epoch(epoch)
    s = schema if schema is not None else epoch_schema(e)
    ep = fmt_epoch(e)
    types: dict[str, Any] = {}
    enums: dict[str, Any] = {}
    body = _body_types(s, types, enums)
    enums = {"rec_type": _type_enum(s), **dict(sorted(enums.items()))}
    cases = {f"rec_type::{n.lower()}": tid for n, tid in body.items()}
    types = {"record": _record_type("rec_type", cases), **dict(sorted(types.items()))}
    return {
        "meta": {
            "id": ksy_name(e)[: -len(".ksy")],
            "title": f"Xen Live Update stream, epoch {ep} (Xen {', '.join(s['xen_versions'])})",
            "application": "Xen Live Update (xen#1 to xen#2 across kexec), xenlu",
            "file-extension": "lu",
            "license": "MIT",
            "endian": "le",
        },
        "doc": (
            f"The Live Update stream ({s['spec']}) as Xen {ep} writes it: records\n"
            "with libxc framing from offset 0 (LU_VERSION first, END last), each\n"
            "padded to 8 bytes. Layouts are those of this epoch. Reserved fields\n"
            "must be zero (checked). Semantic rules (docs/lu-stream.md §7) and the\n"
            "section checksums are not checked here: use `xenlu verify`.\n"
            "\n"
            f"GENERATED by `{GENERATED_BY} --epoch {ep}` from xenlu's declarations;\n"
            "do not edit (`make schemas` regenerates it, a test keeps it fresh).\n"
        ),
        "doc-ref": "docs/lu-stream.md",
        "seq": [_RECORDS_TO_END],
        "types": types,
        "enums": enums,
    }


def lu_ksy(epoch: Epoch | str, schema: dict[str, Any] | None = None) -> str:
    """The ``.ksy`` text of ``epoch``."""
    return to_yaml(lu_ksy_data(epoch, schema))


def libxc_ksy() -> str:
    """The ``.ksy`` text of a libxc migration stream (v2/v3): headers, then records to END.

    Record bodies with a declared layout are described field by field; the
    others (PAGE_DATA pages, X86_PV_P2M_FRAMES, SHARED_INFO …) as their header
    layout then raw bytes. HVM_CONTEXT entries are split by descriptor.
    """
    from xenlu.migration.libxc_stream import DomainHeader, ImageHeader

    recs = _libxc_records()
    types: dict[str, Any] = {}
    enums: dict[str, Any] = {}
    body = _libxc_body_types(recs, types, enums)
    hvm_types: dict[str, Any] = {}
    body.update(_variable_types({"records": recs}, hvm_types))
    hvm_types.pop("lu_grant_table", None)
    types.update(hvm_types)
    types["hvm_save_descriptor"] = _layout_type(
        "hvm_save_descriptor", layout_desc(extra_layouts()["HVM_SAVE_DESCRIPTOR"]), enums
    )
    types["image_header"] = _layout_type(
        "image_header", layout_desc(ImageHeader.LAYOUT), enums, big=True
    )
    types["domain_header"] = _layout_type("domain_header", layout_desc(DomainHeader.LAYOUT), enums)
    rec_enum = {spec.type: spec.name.lower() for spec in LIBXC}
    cases = {f"rec_type::{n.lower()}": tid for n, tid in body.items()}
    types = {"record": _record_type("rec_type", cases), **dict(sorted(types.items()))}
    return to_yaml(
        {
            "meta": {
                "id": LIBXC_KSY[: -len(".ksy")],
                "title": "Xen libxc migration stream (v2 and v3)",
                "application": "Xen toolstack save/restore and migration (libxc), xenlu",
                "license": "MIT",
                "endian": "le",
            },
            "doc": (
                "A libxc migration stream: the big-endian image header, the domain\n"
                "header, then records with 8-byte framing up to END. Reserved fields\n"
                "must be zero (checked).\n"
                "\n"
                f"GENERATED by `{GENERATED_BY} --libxc` from xenlu's declarations;\n"
                "do not edit (`make schemas` regenerates it, a test keeps it fresh).\n"
            ),
            "doc-ref": "https://xenbits.xen.org/docs/unstable/specs/libxc-migration-stream.html",
            "seq": [
                {"id": "image_header", "type": "image_header"},
                {"id": "domain_header", "type": "domain_header"},
                _RECORDS_TO_END,
            ],
            "types": types,
            "enums": {"rec_type": rec_enum, **dict(sorted(enums.items()))},
        }
    )


def _libxc_records() -> dict[str, Any]:
    """Every libxc record as the schema gives it: type, bulk, layouts by role."""
    recs: dict[str, Any] = {}
    for spec in LIBXC:
        layouts: dict[str, Any] = {}
        for cls in spec.layouts:
            role = re.sub(r"(@\d+\.\d+|\(\d+\.\d+\))$", "", cls.LAYOUT.name)
            if spec.name == "HVM_CONTEXT" and role != "HVM_SAVE_HEADER":
                # RTC / VIRIDIAN_VCPU sizes follow the Xen version, which a
                # libxc stream's layout does not fix: those entries stay raw.
                continue
            layouts.setdefault(role, layout_desc(cls.LAYOUT))
        recs[spec.name] = {
            "type": f"{spec.type:#010x}",
            "family": "libxc",
            "bulk": spec.bulk,
            "layouts": layouts,
        }
    return recs


def _libxc_body_types(
    recs: dict[str, Any], types: dict[str, Any], enums: dict[str, Any]
) -> dict[str, str]:
    """Every libxc layout as a type, and the body type of each record whose
    body is not of several parts; record name -> body type id."""
    body = {}
    for name, r in recs.items():
        roles = list(r["layouts"])
        for role in roles:
            d = r["layouts"][role]
            types.setdefault(_tid(role), _layout_type(_tid(role), d, enums))
        if not roles:
            continue
        if name in ("X86_CPUID_POLICY", "X86_MSR_POLICY"):
            tid = name.lower()
            field = "leaves" if name == "X86_CPUID_POLICY" else "entries"
            types[tid] = {"seq": [{"id": field, "type": _tid(roles[0]), "repeat": "eos"}]}
            body[name] = tid
        elif name == "HVM_PARAMS":
            types["hvm_params"] = _count_prefixed(_tid(roles[1]))
            body[name] = "hvm_params"
        elif name in ("X86_PV_INFO", "X86_TSC_INFO"):
            body[name] = _tid(roles[0])
        elif name != "HVM_CONTEXT" and not name.startswith("X86_PV_VCPU_"):
            tid = name.lower()
            types[tid] = {
                "seq": [
                    {"id": "header", "type": _tid(roles[0])},
                    {"id": "rest", "size-eos": True},
                ]
            }
            body[name] = tid
    return body


def write_ksy(directory: str | os.PathLike[str]) -> list[Path]:
    """Write every epoch's ``.ksy`` and ``xen_libxc.ksy`` into ``directory``; return the paths."""
    items = [(ksy_name(e), functools.partial(lu_ksy, e)) for e in EPOCHS]
    return write_texts(directory, [*items, (LIBXC_KSY, libxc_ksy)])
