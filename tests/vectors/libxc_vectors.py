"""Hand-built byte vectors for the libxc, libxl and xl stream decoders.

Every vector is assembled here with :func:`struct.pack`, directly from the
tables of the project's Xen format notes (cited as "§n.m" below; not in this
repository: they summarise Xen's ``docs/specs/libxc-migration-stream.pandoc``,
``libxl-migration-stream.pandoc`` and the C readers),
never with xenlu's own encoder. Each vector says whether xenlu must accept
it (``error is None``) or which error class it must raise, at which absolute
offset and with which ``field``, following ``docs/conventions.md``.

The verdict is Xen's C restorer's, or the spec's where the C code never
looks (``docs/xen-readers.md``); ``c_differs``, ``spec_differs`` and
``c_ref`` say where and why. ``xen_verifier_differs`` documents why Xen's own
``verify-stream-v2`` gives a different verdict (reference §3.2 and §3.3);
``run_xen_verifier.py`` checks that every disagreement is one of those.
``pending`` marks a verdict xenlu does not reach yet (issue 13); those
vectors are in ``PENDING``, the others in ``VECTORS``.

Base streams follow what a current writer emits (§1.7): realistic blob sizes
(§1.6), a p2m frame list consistent with ``p2m_end_pfn``, page-table pages
full of zeros and data pages with a non-zero pattern. A vector changes one
thing in such a stream, so that exactly one rule is broken.

Decisions where the reference leaves room (see ``README.md``):

* check order inside a body: the body must be long enough for its fixed
  header (else ``length``); then the fixed-header fields in field order;
  then array entries in order; then the total length (``length``);
* reserved fields are ``rsvd`` (one per record) or ``rsvd0``/``rsvd1``
  (image header ``_res1``/``_res2``); the 6-byte X86_PV_INFO reserved area
  is one field ``rsvd`` at body offset 2;
* a record that must not be used at all (TOOLSTACK) is reported like a
  misplaced record: record header offset, field ``type``;
* "missing" errors (no END, no STATIC_DATA_END, no HVM_CONTEXT END entry)
  and trailing bytes carry ``field=None``;
* HVM_CONTEXT entries are ``entries[i]`` with descriptor fields
  ``typecode``/``instance``/``length`` and HEADER fields ``magic``/``version``;
* the libxl header ``version`` is a :class:`VersionError`, like libxc's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

__all__ = ["ALL_VECTORS", "PENDING", "VECTORS", "Vector"]


@dataclass(frozen=True)
class Vector:
    """One input and the verdict xenlu must reach on it."""

    name: str  # unique, snake_case
    rule: str  # the reference rule exercised (cites § of xen-formats.md)
    format: str  # "libxc" | "libxl" | "xl"
    data: bytes
    error: str | None  # None = valid; else the xenlu error class name
    offset: int | None = None  # absolute offset the error must report
    field: str | None = None  # expected error field, where conventions.md defines one
    xen_verifier_differs: str | None = None  # why Xen's verifier disagrees, if it does
    # The verdict of Xen's C restorer (tools/libs/guest, tools/libs/light,
    # tools/xl, xen/arch/x86/hvm/save.c; docs/xen-readers.md) is ``error``'s
    # unless ``c_differs`` says why it is not and why xenlu keeps its own.
    c_differs: str | None = None
    # The pandoc spec's verdict is ``error``'s unless ``spec_differs`` says
    # why not (the spec is silent or contradicts Xen's writer and reader).
    spec_differs: str | None = None
    # The C function and message that decide the verdict, where the C
    # restorer rather than the pandoc text is the authority.
    c_ref: str | None = None
    # xenlu does not reach ``error``'s verdict yet: why, and what will fix it.
    # The test is xfail(strict=True) on the verdict alone, so it flips loudly.
    pending: str | None = None


# --------------------------------------------------------------------------
# Constants, from the reference tables.

PAGE = 4096
REC_LENGTH_MAX = 128 << 20  # §1.4

IHDR_MARKER = 0xFFFF_FFFF_FFFF_FFFF  # §1.2
IHDR_ID = 0x58454E46  # "XENF"
IHDR_SIZE = 24
DHDR_SIZE = 16
DHDR_PV = 1  # §1.3
DHDR_HVM = 2

# libxc record types (§1.5)
END = 0x00
PAGE_DATA = 0x01
X86_PV_INFO = 0x02
X86_PV_P2M_FRAMES = 0x03
X86_PV_VCPU_BASIC = 0x04
X86_PV_VCPU_EXTENDED = 0x05
X86_PV_VCPU_XSAVE = 0x06
SHARED_INFO = 0x07
X86_TSC_INFO = 0x08
HVM_CONTEXT = 0x09
HVM_PARAMS = 0x0A
TOOLSTACK = 0x0B
X86_PV_VCPU_MSRS = 0x0C
VERIFY = 0x0D
CHECKPOINT = 0x0E
CHECKPOINT_DIRTY_PFN_LIST = 0x0F
STATIC_DATA_END = 0x10
X86_CPUID_POLICY = 0x11
X86_MSR_POLICY = 0x12
REC_TYPE_OPTIONAL = 0x8000_0000

# PAGE_DATA pfn types (§1.6), stored in bits 63-60 of each pfn entry
NOTAB = 0x0
L1TAB, L2TAB, L3TAB, L4TAB = 0x1, 0x2, 0x3, 0x4
L1TAB_PIN, L2TAB_PIN, L3TAB_PIN, L4TAB_PIN = 0x9, 0xA, 0xB, 0xC
BROKEN, XALLOC, XTAB = 0xD, 0xE, 0xF
DATA_TYPES = frozenset({0, 1, 2, 3, 4, 9, 10, 11, 12})

# HVM save blob (§4.2)
HVM_FILE_MAGIC = 0x54381286
HVM_FILE_VERSION = 1
HVM_CODE_END, HVM_CODE_HEADER, HVM_CODE_CPU, HVM_CODE_RTC = 0, 1, 2, 11

# libxl (§2)
LIBXL_IDENT = 0x4C6962786C466D74  # "LibxlFmt"
LIBXL_VERSION = 2
LIBXL_HDR_SIZE = 16
LIBXL_END = 0
LIBXC_CONTEXT = 1
EMULATOR_XENSTORE_DATA = 2
EMULATOR_CONTEXT = 3
CHECKPOINT_END = 4
CHECKPOINT_STATE = 5
EMU_QEMU_UPSTREAM = 2

# xl save file (§2)
XL_MAGIC = b"Xen saved domain, xl format\n \0 \r"
XL_BYTEORDER = 0x01020304
XL_FLAG_JSON = 1
XL_FLAG_STREAMV2 = 2
XL_HDR_SIZE = 32 + 16

# Realistic blob sizes (§1.6)
BASIC_64 = 5168
BASIC_32 = 2800
EXTENDED_SIZE = 128
XSAVE_SIZE = 16 + 576  # xcr0, xcr0_accum, then a legacy + header xsave area


# --------------------------------------------------------------------------
# Low-level builders.


def ihdr(
    version: int = 3,
    *,
    marker: int = IHDR_MARKER,
    ident: int = IHDR_ID,
    options: int = 0,
    res1: int = 0,
    res2: int = 0,
) -> bytes:
    """Image header, big-endian (§1.2)."""
    return struct.pack(">QIIHHI", marker, ident, version, options, res1, res2)


def dhdr(
    gtype: int,
    *,
    page_shift: int = 12,
    rsvd: int = 0,
    major: int = 4,
    minor: int = 19,
) -> bytes:
    """Domain header, little-endian (§1.3)."""
    return struct.pack("<IHHII", gtype, page_shift, rsvd, major, minor)


def rec(
    rtype: int, body: bytes = b"", *, length: int | None = None, pad: bytes | None = None
) -> bytes:
    """A record: header, body, then zero padding to a multiple of 8 (§1.4).

    ``length`` overrides the header's length field; ``pad`` replaces the padding.
    """
    if length is None:
        length = len(body)
    if pad is None:
        pad = bytes(-len(body) % 8)
    return struct.pack("<II", rtype, length) + body + pad


def pfn(ptype: int, number: int, resv: int = 0) -> int:
    """One PAGE_DATA pfn entry: type in bits 63-60, reserved 59-52, pfn 51-0 (§1.6)."""
    return (ptype << 60) | (resv << 52) | number


def page_for(word: int) -> bytes:
    """The page contents the builders use for one data-carrying pfn entry."""
    ptype = word >> 60
    if ptype == NOTAB:
        return bytes([(word & 0xFF) ^ 0xA5]) * PAGE
    return bytes(PAGE)  # page tables: no present entries


def page_data(
    words: list[int],
    pages: bytes | None = None,
    *,
    count: int | None = None,
    rsvd: int = 0,
) -> bytes:
    """PAGE_DATA body: {u32 count, u32 rsvd}, pfn[count], pages (§1.6)."""
    if pages is None:
        pages = b"".join(page_for(w) for w in words if (w >> 60) in DATA_TYPES)
    if count is None:
        count = len(words)
    head = struct.pack("<II", count, rsvd)
    return head + b"".join(struct.pack("<Q", w) for w in words) + pages


def pv_info(width: int = 8, levels: int = 4, rsvd: bytes = bytes(6)) -> bytes:
    """X86_PV_INFO body (§1.6)."""
    return struct.pack("<BB6s", width, levels, rsvd)


def p2m_frames(start: int, end: int, frames: list[int]) -> bytes:
    """X86_PV_P2M_FRAMES body (§1.6)."""
    return struct.pack("<II", start, end) + b"".join(struct.pack("<Q", f) for f in frames)


def vcpu(vcpu_id: int, blob: bytes, rsvd: int = 0) -> bytes:
    """X86_PV_VCPU_{BASIC,EXTENDED,XSAVE,MSRS} body (§1.6)."""
    return struct.pack("<II", vcpu_id, rsvd) + blob


def msrs_blob(entries: list[tuple[int, int]]) -> bytes:
    """X86_PV_VCPU_MSRS blob: {u32 index; u32 reserved; u64 value}[] (§1.6)."""
    return b"".join(struct.pack("<IIQ", idx, 0, val) for idx, val in entries)


def tsc_info(
    mode: int = 0,
    khz: int = 2_000_000,
    nsec: int = 123_456_789,
    incarnation: int = 0,
    rsvd: int = 0,
) -> bytes:
    """X86_TSC_INFO body, ``<IIQII`` (§1.6)."""
    return struct.pack("<IIQII", mode, khz, nsec, incarnation, rsvd)


def hvm_params(entries: list[tuple[int, int]], *, count: int | None = None, rsvd: int = 0) -> bytes:
    """HVM_PARAMS body: {u32 count, u32 rsvd}, {u64 index, u64 value}[] (§1.6)."""
    if count is None:
        count = len(entries)
    return struct.pack("<II", count, rsvd) + b"".join(struct.pack("<QQ", i, v) for i, v in entries)


def cpuid_policy(leaves: list[tuple[int, int, int, int, int, int]]) -> bytes:
    """X86_CPUID_POLICY body: xen_cpuid_leaf_t[], 24 bytes each (§1.6)."""
    return b"".join(struct.pack("<6I", *leaf) for leaf in leaves)


def msr_policy(entries: list[tuple[int, int, int]]) -> bytes:
    """X86_MSR_POLICY body: {u32 idx; u32 flags; u64 val}[], 16 bytes each (§1.6)."""
    return b"".join(struct.pack("<IIQ", idx, flags, val) for idx, flags, val in entries)


def hvm_entry(typecode: int, instance: int, data: bytes, *, length: int | None = None) -> bytes:
    """One HVM save entry: descriptor ``<HHI`` then data, no padding (§4.2)."""
    if length is None:
        length = len(data)
    return struct.pack("<HHI", typecode, instance, length) + data


def hvm_header(
    magic: int = HVM_FILE_MAGIC,
    version: int = HVM_FILE_VERSION,
    changeset: int = 0xFFFF_FFFF_FFFF_FFFF,
    cpuid: int = 0x000906EA,
    gtsc_khz: int = 2_000_000,
) -> bytes:
    """The HEADER entry (typecode 1, instance 0, 24 bytes of data) (§4.2)."""
    return hvm_entry(
        HVM_CODE_HEADER, 0, struct.pack("<IIQII", magic, version, changeset, cpuid, gtsc_khz)
    )


HVM_END_ENTRY = hvm_entry(HVM_CODE_END, 0, b"")


def libxl_hdr(*, ident: int = LIBXL_IDENT, version: int = LIBXL_VERSION, options: int = 0) -> bytes:
    """libxl header, big-endian ``!QII`` (§2)."""
    return struct.pack(">QII", ident, version, options)


def emulator(emu_id: int, index: int, data: bytes) -> bytes:
    """Emulator sub-header {u32 emulator_id; u32 index} then data (§2)."""
    return struct.pack("<II", emu_id, index) + data


def xl_hdr(
    optional: bytes,
    *,
    magic: bytes = XL_MAGIC,
    byteorder: int = XL_BYTEORDER,
    mandatory: int = XL_FLAG_JSON | XL_FLAG_STREAMV2,
    optional_flags: int = 0,
) -> bytes:
    """xl save-file magic, ``=IIII`` header (little-endian here) and optional data (§2)."""
    head = struct.pack("<IIII", byteorder, mandatory, optional_flags, len(optional))
    return magic + head + optional


def xl_optional(config: bytes, tail: bytes = b"") -> bytes:
    """xl optional data as ``xl save`` writes it: u32 config length, the config (xl.h)."""
    return struct.pack("<I", len(config)) + config + tail


XL_CONFIG = b'{"c_info": {"type": "hvm", "name": "guest"}, "b_info": {"max_vcpus": 1}}\x00'
# libxl builds the domain the config names; the libxc stream must be of that type.
XL_CONFIG_PV = b'{"c_info": {"type": "pv", "name": "guest"}, "b_info": {"max_vcpus": 1}}\x00'


# --------------------------------------------------------------------------
# Streams as named parts, so that a vector can swap, insert or drop one part
# and still know every part's absolute offset.

Part = tuple[str, bytes]


@dataclass(frozen=True)
class Built:
    """Assembled input with the absolute offset of each named part."""

    data: bytes
    at: dict[str, int]

    def body(self, key: str) -> int:
        """Absolute offset of a record's body."""
        return self.at[key] + 8

    def body_end(self, key: str) -> int:
        """Absolute offset just past a record's body (before padding)."""
        (length,) = struct.unpack_from("<I", self.data, self.at[key] + 4)
        return self.at[key] + 8 + int(length)

    def after(self, key: str) -> int:
        """Absolute offset just past a whole part (record with its padding)."""
        keys = list(self.at)
        i = keys.index(key)
        return self.at[keys[i + 1]] if i + 1 < len(keys) else len(self.data)


def build(parts: list[Part]) -> Built:
    """Concatenate parts, recording where each one starts."""
    at: dict[str, int] = {}
    out = bytearray()
    for key, blob in parts:
        if key in at:
            raise ValueError(f"duplicate part key {key}")
        at[key] = len(out)
        out += blob
    return Built(bytes(out), at)


def _index(parts: list[Part], key: str) -> int:
    for i, (k, _) in enumerate(parts):
        if k == key:
            return i
    raise KeyError(key)


def swap(parts: list[Part], key: str, blob: bytes) -> list[Part]:
    """Replace one part, keeping its key."""
    i = _index(parts, key)
    return [*parts[:i], (key, blob), *parts[i + 1 :]]


def before(parts: list[Part], key: str, new: Part) -> list[Part]:
    """Insert a part before ``key``."""
    i = _index(parts, key)
    return [*parts[:i], new, *parts[i:]]


def after(parts: list[Part], key: str, new: Part) -> list[Part]:
    """Insert a part after ``key``."""
    i = _index(parts, key)
    return [*parts[: i + 1], new, *parts[i + 1 :]]


def without(parts: list[Part], *keys: str) -> list[Part]:
    """Drop parts."""
    return [(k, b) for k, b in parts if k not in keys]


def moved(parts: list[Part], key: str, dest: str) -> list[Part]:
    """Move part ``key`` to just before part ``dest``."""
    blob = parts[_index(parts, key)][1]
    return before(without(parts, key), dest, (key, blob))


CPUID_LEAVES = [
    (0x0, 0xFFFF_FFFF, 0xD, 0x756E6547, 0x6C65746E, 0x49656E69),
    (0x7, 0x0, 0x0, 0x009C6FBB, 0x0, 0xBC000400),
]
MSR_ENTRIES = [(0xCE, 0, 0x0000_0000_8000_0000), (0x10A, 0, 0x0000_0000_0000_0004)]
HVM_PARAM_ENTRIES = [(1, 0xFEFFC), (5, 0xFEFF0), (17, 0xFEFFF)]  # STORE, IOREQ, CONSOLE pfns


def hvm_ctx_blob() -> bytes:
    """A well-formed HVM save blob: HEADER, CPU, RTC, CPU_XSAVE (16), END (§4.2).

    Its length (8+24 + 8+1024 + 8+16 + 8+5 + 8 = 1109) is not a multiple
    of 8, so the record carries 3 bytes of padding.
    """
    return (
        hvm_header()
        + hvm_entry(HVM_CODE_CPU, 0, bytes(range(256)) * 4)
        + hvm_entry(HVM_CODE_RTC, 0, bytes(16))
        + hvm_entry(16, 0, b"\x01\x02\x03\x04\x05")
        + HVM_END_ENTRY
    )


def libxc_head(gtype: int, version: int = 3) -> list[Part]:
    return [("ihdr", ihdr(version)), ("dhdr", dhdr(gtype))]


def hvm_parts(version: int = 3) -> list[Part]:
    """An HVM stream in writer order (§1.7)."""
    parts = libxc_head(DHDR_HVM, version)
    if version >= 3:
        parts += [
            ("cpuid", rec(X86_CPUID_POLICY, cpuid_policy(CPUID_LEAVES))),
            ("msr", rec(X86_MSR_POLICY, msr_policy(MSR_ENTRIES))),
            ("sde", rec(STATIC_DATA_END)),
        ]
    parts += [
        ("page", rec(PAGE_DATA, page_data([pfn(NOTAB, 0x0), pfn(XTAB, 0x1)]))),
        ("tsc", rec(X86_TSC_INFO, tsc_info())),
        ("ctx", rec(HVM_CONTEXT, hvm_ctx_blob())),
        ("params", rec(HVM_PARAMS, hvm_params(HVM_PARAM_ENTRIES))),
        ("end", rec(END)),
    ]
    return parts


def pv_parts(version: int = 3, width: int = 8) -> list[Part]:
    """A PV stream in writer order (§1.7), for a 64-bit (width 8) or 32-bit guest."""
    levels = 4 if width == 8 else 3
    fpp = PAGE // width  # p2m entries per frame
    basic = BASIC_64 if width == 8 else BASIC_32
    parts = libxc_head(DHDR_PV, version)
    parts.append(("pv_info", rec(X86_PV_INFO, pv_info(width, levels))))
    if version >= 3:
        parts += [
            ("cpuid", rec(X86_CPUID_POLICY, cpuid_policy(CPUID_LEAVES))),
            ("msr", rec(X86_MSR_POLICY, msr_policy(MSR_ENTRIES))),
            ("sde", rec(STATIC_DATA_END)),
        ]
    words = [pfn(NOTAB, 0x10), pfn(L1TAB, 0x11), pfn(XTAB, 0x12)]
    parts += [
        ("p2m", rec(X86_PV_P2M_FRAMES, p2m_frames(0, fpp - 1, [0x1234]))),
        ("page", rec(PAGE_DATA, page_data(words))),
        ("tsc", rec(X86_TSC_INFO, tsc_info())),
        ("shinfo", rec(SHARED_INFO, bytes([0x11]) * PAGE)),
        ("basic", rec(X86_PV_VCPU_BASIC, vcpu(0, bytes([0x22]) * basic))),
        ("ext", rec(X86_PV_VCPU_EXTENDED, vcpu(0, bytes([0x33]) * EXTENDED_SIZE))),
        ("xsave", rec(X86_PV_VCPU_XSAVE, vcpu(0, bytes([0x44]) * XSAVE_SIZE))),
        ("msrs", rec(X86_PV_VCPU_MSRS, vcpu(0, msrs_blob([(0xC0000080, 0xD01)])))),
        ("end", rec(END)),
    ]
    return parts


def libxl_parts(libxc: list[Part], *, options: int = 0, emu: bool = True) -> list[Part]:
    """A libxl stream: header, LIBXC_CONTEXT, the libxc stream, EMULATOR_CONTEXT, END (§2)."""
    parts: list[Part] = [
        ("lhdr", libxl_hdr(options=options)),
        ("lx_libxc", rec(LIBXC_CONTEXT)),
        *libxc,
    ]
    if emu:
        qemu = b"QEVM" + bytes(range(1, 60))
        parts.append(("lx_emu", rec(EMULATOR_CONTEXT, emulator(EMU_QEMU_UPSTREAM, 0, qemu))))
    parts.append(("lx_end", rec(LIBXL_END)))
    return parts


def xl_parts(
    inner: list[Part],
    *,
    byteorder: int = XL_BYTEORDER,
    mandatory: int = XL_FLAG_JSON | XL_FLAG_STREAMV2,
    optional_flags: int = 0,
    config: bytes = XL_CONFIG,
) -> list[Part]:
    """An xl save file around ``inner`` (§2)."""
    head = xl_hdr(
        xl_optional(config),
        byteorder=byteorder,
        mandatory=mandatory,
        optional_flags=optional_flags,
    )
    return [("xl", head), *inner]


XENSTORE_PAIRS = b"physmap/1/start_addr\x00f0000000\x00physmap/1/size\x00800000\x00"


# --------------------------------------------------------------------------
# Documented reasons why Xen's verify-stream-v2 reaches another verdict.

D_OPTIONAL = (
    "§3.2: the verifier rejects every unknown record type, even an optional one with "
    "bit 31 set (the C restorer skips it)"
)
D_ORDER = "§3.2: the verifier does not check record ordering"
D_NO_SDE = "§1.8/§3.2: the verifier does not check that a v3 stream contains STATIC_DATA_END"
D_DUP = "§3.2: the verifier does not check for duplicate records"
D_DOMTYPE = (
    "§3.2: the per-record checks look only at the body; nothing ties a record to the "
    "domain type (no ordering/grammar checks)"
)
D_HVMCTX = "§1.6/§3.2: the verifier only requires HVM_CONTEXT to be non-empty"
D_TOOLSTACK = (
    "§1.6/§3.2: TOOLSTACK raises DeprecationWarning, a script error (exit 2), not a stream verdict"
)
D_XSDATA = (
    "§3.3 bug 1: under Python 3 any non-empty EMULATOR_XENSTORE_DATA fails "
    "('Data not NUL terminated')"
)
D_POLICY = "§3.2: CPUID/MSR policy records are only checked for stream version and length"
D_LIBXL = "§3.2: the verifier checks no libxl-level semantics beyond the header and record types"
D_ENDIAN = (
    "verifier bug NOT in §3.3 (and §3.2 wrongly says the check exists): the endian test "
    "masks options with IHDR_OPT_BIT_ENDIAN / HDR_OPT_BIT_ENDIAN, a bit number (0), so "
    "options & 0 == IHDR_OPT_LE always and a big-endian stream is never refused; same "
    "root cause as §3.3 item 3"
)
SPEC_HVM_ORDER = (
    "the libxc pandoc says 'HVM_PARAMS must precede HVM_CONTEXT', but Xen's writer "
    "(xg_sr_save_x86_hvm.c x86_hvm_end_of_checkpoint()) emits HVM_CONTEXT then HVM_PARAMS "
    "and the restorer takes either order; every HVM vector here uses the writer's order"
)
D_P2M = (
    "the verifier checks only that X86_PV_P2M_FRAMES is at least 8 bytes and a multiple "
    "of 8; it never compares start_pfn, end_pfn and the frame count"
)
D_REMUS = (
    "the verifier has no checkpoint hand-off: after a libxc CHECKPOINT it goes on reading "
    "libxc records, so the libxl EMULATOR_CONTEXT after it is misread as libxc type 3 "
    "(X86_PV_P2M_FRAMES) and refused"
)
C_TRAILING = (
    "Xen's readers stop at END and read nothing after it: xg_sr_restore.c restore() "
    "loops until END; libxl_stream_read.c process_record() completes the stream at END"
)
C_PLAIN_CHECKPOINT = (
    "a plain restore (xl restore; XC_STREAM_PLAIN) refuses any libxc CHECKPOINT: "
    "handle_checkpoint() 'Found checkpoint in non-checkpointed stream'; a Remus/COLO "
    "receiver restores it. xenlu checks the stream format, which has checkpoints"
)
C_NO_LENGTH = (
    "libxl_stream_read.c process_record() never looks at this record's body; the libxl "
    "spec ('body_length is 0') decides"
)
C_LIBXL_OPTIONS = (
    "libxl_stream_read.c stream_header_done() checks bit 0 (big endian) only and "
    "ignores bits 1-31; the libxl spec reserves bits 2-31, so xenlu refuses them"
)
D_LIBXL_OPTIONS = (
    "the verifier masks reserved libxl options with HDR_OPT_RESZ_MASK = 0xfffc, "
    "bits 2-15 only, so bits 16-31 pass"
)
D_XL = (
    "§3.4: for -f xl the verifier checks only the 32-byte magic, then skips the "
    "16-byte header and the config without looking at byteorder or flags"
)


# --------------------------------------------------------------------------
# The corpus.


def _build() -> list[Vector]:
    out: list[Vector] = []

    def v(
        name: str,
        rule: str,
        fmt: str,
        data: bytes,
        error: str | None = None,
        offset: int | None = None,
        field: str | None = None,
        differs: str | None = None,
        *,
        c_differs: str | None = None,
        spec_differs: str | None = None,
        c_ref: str | None = None,
        pending: str | None = None,
    ) -> None:
        out.append(
            Vector(
                name,
                rule,
                fmt,
                data,
                error,
                offset,
                field,
                differs,
                c_differs,
                spec_differs,
                c_ref,
                pending,
            )
        )

    hvm = hvm_parts()
    pv = pv_parts()
    b_hvm = build(hvm)
    b_pv = build(pv)

    # ---- whole valid streams ------------------------------------------------
    # §1.7: HVM v3 writer order.
    v(
        "hvm_v3_valid",
        "§1.7: a v3 HVM stream in writer order is valid.",
        "libxc",
        b_hvm.data,
        spec_differs=SPEC_HVM_ORDER,
    )
    # §1.7/§1.8: HVM v2 (no static-data records).
    v(
        "hvm_v2_valid",
        "§1.8: a v2 HVM stream has no STATIC_DATA_END/CPUID/MSR and is valid.",
        "libxc",
        build(hvm_parts(2)).data,
    )
    # §1.7: PV v3, 64-bit guest.
    v("pv_v3_valid", "§1.7: a v3 PV stream in writer order is valid.", "libxc", b_pv.data)
    # §1.7/§1.8: PV v2.
    v(
        "pv_v2_valid",
        "§1.8: a v2 PV stream (STATIC_DATA_END inferred at X86_PV_P2M_FRAMES) is valid.",
        "libxc",
        build(pv_parts(2)).data,
    )
    # §1.3: xen_major == 0 marks a legacy-converted stream; still valid.
    v(
        "dhdr_legacy_converted_valid",
        "§1.3: xen_major 0 / xen_minor 1 (legacy converter) is a valid domain header.",
        "libxc",
        build(swap(hvm, "dhdr", dhdr(DHDR_HVM, major=0, minor=1))).data,
    )

    # ---- image header (§1.2) ------------------------------------------------
    def with_ihdr(**kw: int) -> bytes:
        return build(swap(hvm, "ihdr", ihdr(**kw))).data

    # §1.2: marker all ones.
    v(
        "ihdr_bad_marker",
        "§1.2: the image marker must be 0xFFFFFFFFFFFFFFFF.",
        "libxc",
        with_ihdr(marker=0xFFFF_FFFF_0000_0000),
        "FramingError",
        0,
        "marker",
    )
    # §1.2: id "XENF".
    v(
        "ihdr_bad_id",
        "§1.2: the image id must be 0x58454E46 ('XENF').",
        "libxc",
        with_ihdr(ident=0x58454E47),
        "FramingError",
        8,
        "id",
    )
    # §1.1/§1.2: version 2 or 3 only.
    v(
        "ihdr_version_1",
        "§1.1/§1.2: image version must be 2 or 3; 1 is unsupported.",
        "libxc",
        with_ihdr(version=1),
        "VersionError",
        12,
        "version",
    )
    # §1.1/§1.2: image version must be 2 or 3; 4 is unsupported
    v(
        "ihdr_version_4",
        "§1.1/§1.2: image version must be 2 or 3; 4 is unsupported.",
        "libxc",
        with_ihdr(version=4),
        "VersionError",
        12,
        "version",
    )
    # §1.2: options bits 1-15 reserved.
    v(
        "ihdr_reserved_option_bit",
        "§1.2: image options bits 1-15 are reserved and must be zero.",
        "libxc",
        with_ihdr(options=0x0002),
        "FramingError",
        16,
        "options",
    )
    # §1.2: _res1 zero.
    v(
        "ihdr_res1_nonzero",
        "§1.2: the image header reserved u16 at offset 18 must be zero.",
        "libxc",
        with_ihdr(res1=1),
        "FramingError",
        18,
        "rsvd0",
    )
    # §1.2: _res2 zero.
    v(
        "ihdr_res2_nonzero",
        "§1.2: the image header reserved u32 at offset 20 must be zero.",
        "libxc",
        with_ihdr(res2=0x100),
        "FramingError",
        20,
        "rsvd1",
    )
    # §1.1: big-endian streams are not supported.
    v(
        "ihdr_big_endian",
        "§1.1/§1.2: options bit 0 set (big-endian stream) is not supported.",
        "libxc",
        with_ihdr(options=0x0001),
        "FramingError",
        16,
        "options",
        D_ENDIAN,
    )
    # §1.2: the header is 24 bytes; input shorter than that is truncated.
    v(
        "ihdr_truncated",
        "§1.2: the 24-byte image header is cut short (20 bytes).",
        "libxc",
        ihdr()[:20],
        "FramingError",
        0,
        None,
    )
    # §1.2: empty input has no image header at all.
    v("empty_input", "§1.2: empty input lacks the image header.", "libxc", b"", "FramingError", 0)

    # ---- domain header (§1.3) -----------------------------------------------
    def with_dhdr(gtype: int = DHDR_HVM, **kw: int) -> bytes:
        return build(swap(hvm, "dhdr", dhdr(gtype, **kw))).data

    for t in (0, 3, 4):
        # §1.3: type 0 reserved, 3 (ex-PVH) and 4 (ex-ARM) reserved since 4.14.
        v(
            f"dhdr_type_{t}",
            f"§1.3: domain type {t} is reserved; only 1 (x86 PV) and 2 (x86 HVM) are valid.",
            "libxc",
            with_dhdr(t),
            "FramingError",
            24,
            "type",
        )
    # §1.3: page_shift 12.
    v(
        "dhdr_page_shift_13",
        "§1.3: page_shift must be 12 on x86.",
        "libxc",
        with_dhdr(page_shift=13),
        "FramingError",
        28,
        "page_shift",
    )
    # §1.3: reserved u16 zero.
    v(
        "dhdr_reserved_nonzero",
        "§1.3: the domain header reserved u16 at offset 6 must be zero.",
        "libxc",
        with_dhdr(rsvd=1),
        "FramingError",
        30,
        "rsvd",
    )
    # §1.3: 16-byte domain header cut short.
    v(
        "dhdr_truncated",
        "§1.3: the 16-byte domain header is cut short (10 bytes).",
        "libxc",
        ihdr() + dhdr(DHDR_HVM)[:10],
        "FramingError",
        24,
        None,
    )

    # ---- framing (§1.4, §1.5) -----------------------------------------------
    # §1.4: a record header cut short after 4 bytes.
    trunc = b_hvm.data[: b_hvm.at["end"] + 4]
    v(
        "record_header_truncated",
        "§1.4: the 8-byte record header is cut short (4 of 8 bytes present).",
        "libxc",
        trunc,
        "FramingError",
        b_hvm.at["end"],
        None,
    )
    # §1.4: body runs past the end of the input.
    cut = b_hvm.data[: b_hvm.body("tsc") + 10]
    v(
        "record_body_past_end",
        "§1.4: X86_TSC_INFO's 24-byte body runs past the end of the input.",
        "libxc",
        cut,
        "FramingError",
        b_hvm.at["tsc"],
        "length",
    )
    # §1.4: the padding (not the body) runs past the end.
    cut = b_hvm.data[: b_hvm.body_end("ctx") + 1]
    v(
        "record_padding_past_end",
        "§1.4: HVM_CONTEXT's body is whole but its padding runs past the end of the input.",
        "libxc",
        cut,
        "FramingError",
        b_hvm.at["ctx"],
        "length",
    )
    # §1.4: padding must be zero.
    ctx_bad_pad = rec(HVM_CONTEXT, hvm_ctx_blob(), pad=b"\x00\x7f\x00")
    b = build(swap(hvm, "ctx", ctx_bad_pad))
    v(
        "record_padding_nonzero",
        "§1.1/§1.4: padding after a record body must be zero.",
        "libxc",
        b.data,
        "FramingError",
        b.body_end("ctx") + 1,
        "padding",
    )
    # §1.4: length > REC_LENGTH_MAX; only the header is present.
    big = b_hvm.data[: b_hvm.at["end"]] + struct.pack("<II", HVM_CONTEXT, REC_LENGTH_MAX + 1)
    v(
        "record_length_over_max",
        "§1.4: a record length above 128 MiB is rejected from the header alone.",
        "libxc",
        big,
        "FramingError",
        b_hvm.at["end"] + 4,
        "length",
    )
    # §1.4: exactly REC_LENGTH_MAX is allowed, so this is a plain truncation.
    big = b_hvm.data[: b_hvm.at["end"]] + struct.pack("<II", HVM_CONTEXT, REC_LENGTH_MAX)
    v(
        "record_length_at_max_truncated",
        "§1.4: length == 128 MiB is within the limit; the missing body is a truncation.",
        "libxc",
        big,
        "FramingError",
        b_hvm.at["end"],
        "length",
    )
    # §1.4: no END record; the input ends after HVM_PARAMS.
    noend = build(without(hvm, "end")).data
    v(
        "missing_end",
        "§1.4/§0: the stream must end with END; here the input stops after a record.",
        "libxc",
        noend,
        "FramingError",
        len(noend),
        None,
    )
    # §1.4: END must be last; trailing bytes.
    v(
        "bytes_after_end",
        "§1.4: END is the last record of the stream; bytes after it in a file belong to "
        "the container (issue 13) and are reported, not refused.",
        "libxc",
        b_hvm.data + b"\x00" * 8,
        c_ref=C_TRAILING,
    )
    # §1.6: END has an empty body.
    b = build(swap(hvm, "end", rec(END, bytes(8))))
    v(
        "end_nonempty",
        "§1.5: the END record body is empty.",
        "libxc",
        b.data,
        "RecordError",
        b.at["end"] + 4,
        "length",
    )
    # §1.5: unknown mandatory type.
    b = build(before(hvm, "end", ("x", rec(0x13, bytes(8)))))
    v(
        "unknown_mandatory_0x13",
        "§1.5: type 0x13 is reserved for future mandatory records; unknown => reject.",
        "libxc",
        b.data,
        "UnknownRecordError",
        b.at["x"],
        "type",
    )
    # §1.5: the top mandatory type.
    b = build(before(hvm, "tsc", ("x", rec(0x7FFF_FFFF, b"abc"))))
    v(
        "unknown_mandatory_0x7fffffff",
        "§1.5: 0x7FFFFFFF has bit 31 clear, so it is an unknown mandatory record.",
        "libxc",
        b.data,
        "UnknownRecordError",
        b.at["x"],
        "type",
    )
    # §0/§5: an LU record type (bit 30) is not optional in a libxc stream.
    b = build(before(hvm, "end", ("x", rec(0x4000_0000, struct.pack("<II", 4, 19)))))
    v(
        "lu_version_type_in_libxc",
        "§0/§1.5: LU_VERSION 0x40000000 has bit 31 clear; in a libxc stream it is "
        "an unknown mandatory record.",
        "libxc",
        b.data,
        "UnknownRecordError",
        b.at["x"],
        "type",
    )
    # §1.5: unknown optional record is kept.
    b = build(before(hvm, "end", ("x", rec(REC_TYPE_OPTIONAL | 0x13, b"optional!"))))
    v(
        "unknown_optional_0x80000013",
        "§1.5: bit 31 marks an optional record; an unknown one is kept/skipped, not rejected.",
        "libxc",
        b.data,
        None,
        differs=D_OPTIONAL,
    )
    # §1.5: optional, empty body, in the middle of the stream.
    b = build(before(hvm, "page", ("x", rec(0xFFFF_FFFF))))
    v(
        "unknown_optional_0xffffffff_empty",
        "§1.5: 0xFFFFFFFF is optional; an empty unknown optional record is valid anywhere.",
        "libxc",
        b.data,
        None,
        differs=D_OPTIONAL,
    )
    # §1.4: padding rules apply to unknown optional records too.
    b = build(before(hvm, "end", ("x", rec(REC_TYPE_OPTIONAL | 0x13, b"abc", pad=b"\0\0\0\0\1"))))
    v(
        "unknown_optional_bad_padding",
        "§1.4: an unknown optional record is still framed; its padding must be zero.",
        "libxc",
        b.data,
        "FramingError",
        b.body_end("x") + 4,
        "padding",
        # The verifier fails on the unknown type first; both reject.
    )

    # ---- PAGE_DATA (§1.6) ---------------------------------------------------
    def pd_hvm(body: bytes, *, length: int | None = None) -> Built:
        return build(swap(hvm, "page", rec(PAGE_DATA, body, length=length)))

    def pd_pv(body: bytes) -> Built:
        return build(swap(pv, "page", rec(PAGE_DATA, body)))

    # §1.6: data pages plus XTAB/BROKEN/XALLOC entries.
    words = [pfn(NOTAB, 2), pfn(XTAB, 3), pfn(BROKEN, 4), pfn(XALLOC, 5), pfn(NOTAB, 6)]
    v(
        "page_data_mixed_types",
        "§1.6: XTAB/BROKEN/XALLOC entries carry no page; N = 2 data pages for 5 entries.",
        "libxc",
        pd_hvm(page_data(words)).data,
    )
    # §1.6: a PAGE_DATA with no page data at all.
    v(
        "page_data_no_pages",
        "§1.6: a record whose entries are all XTAB/XALLOC/BROKEN has N = 0 pages.",
        "libxc",
        pd_hvm(page_data([pfn(XTAB, 7), pfn(XALLOC, 8), pfn(BROKEN, 9)])).data,
    )
    # §1.6: pinned page-table types 0x9-0xC carry data.
    words = [pfn(L1TAB_PIN, 0x20), pfn(L2TAB_PIN, 0x21), pfn(L3TAB_PIN, 0x22)]
    words += [pfn(L4TAB_PIN, 0x23)]
    v(
        "page_data_pinned_types",
        "§1.6: L1TAB_PIN..L4TAB_PIN (0x9-0xC) carry a page each.",
        "libxc",
        pd_pv(page_data(words)).data,
    )
    # §1.6: unpinned page tables L1-L4 carry data.
    words = [pfn(L1TAB, 0x30), pfn(L2TAB, 0x31), pfn(L3TAB, 0x32), pfn(L4TAB, 0x33)]
    v(
        "page_data_pagetable_types",
        "§1.6: L1TAB..L4TAB (0x1-0x4) carry a page each.",
        "libxc",
        pd_pv(page_data(words)).data,
    )
    # §1.6: the highest pfn the 52-bit field can hold.
    v(
        "page_data_max_pfn",
        "§1.6: pfn bits 51-0 may be all ones (PAGE_DATA_PFN_MASK).",
        "libxc",
        pd_hvm(page_data([pfn(XTAB, (1 << 52) - 1)])).data,
    )
    # §1.6: two PAGE_DATA records in a row (batches).
    more = rec(PAGE_DATA, page_data([pfn(NOTAB, 0x40), pfn(NOTAB, 0x41)]))
    v(
        "page_data_two_batches",
        "§1.6/§1.7: PAGE_DATA may repeat (batches of at most 1024 pfns).",
        "libxc",
        build(after(hvm, "page", ("page2", more))).data,
    )
    # §1.6: count must be > 0.
    b = pd_hvm(page_data([]))
    v(
        "page_data_count_zero",
        "§1.6: PAGE_DATA count must be > 0.",
        "libxc",
        b.data,
        "RecordError",
        b.body("page"),
        "count",
    )
    # §1.6: body shorter than the 8-byte header.
    b = pd_hvm(b"\x01\x00\x00\x00")
    v(
        "page_data_length_4",
        "§1.6: a PAGE_DATA body must hold at least its 8-byte header (and more).",
        "libxc",
        b.data,
        "RecordError",
        b.at["page"] + 4,
        "length",
    )
    # §1.6: length == 8 with count 1: no room for the pfn array.
    b = pd_hvm(struct.pack("<II", 1, 0))
    v(
        "page_data_length_8",
        "§1.6: a PAGE_DATA body of exactly 8 bytes cannot hold count=1 pfn entries.",
        "libxc",
        b.data,
        "RecordError",
        b.at["page"] + 4,
        "length",
    )
    # §1.6: the pfn array is incomplete.
    b = pd_hvm(page_data([pfn(XTAB, 1), pfn(XTAB, 2)], count=3))
    v(
        "page_data_pfn_array_short",
        "§1.6: count=3 needs 24 bytes of pfn entries; the body holds only 16.",
        "libxc",
        b.data,
        "RecordError",
        b.at["page"] + 4,
        "length",
    )
    # §1.6: reserved u32 non-zero.
    b = pd_hvm(page_data([pfn(NOTAB, 0)], rsvd=1))
    v(
        "page_data_reserved_nonzero",
        "§1.6: the PAGE_DATA reserved u32 must be zero.",
        "libxc",
        b.data,
        "RecordError",
        b.body("page") + 4,
        "rsvd",
    )
    # §1.6: pfn bits 59-52 reserved.
    for bit in (52, 59):
        b = pd_hvm(page_data([pfn(NOTAB, 0), pfn(NOTAB, 1, resv=1 << (bit - 52))]))
        v(
            f"page_data_pfn_reserved_bit_{bit}",
            f"§1.6: pfn bit {bit} is reserved (bits 59-52 must be zero).",
            "libxc",
            b.data,
            "RecordError",
            b.body("page") + 8 + 8,
            "pfn[1]",
        )
    # §1.6: types 5-8 are invalid.
    for t in (5, 6, 7, 8):
        b = pd_hvm(page_data([pfn(t, 0)], bytes(PAGE)))
        v(
            f"page_data_type_{t}",
            f"§1.6: pfn type {t:#x} is reserved/invalid (0x5-0x8).",
            "libxc",
            b.data,
            "RecordError",
            b.body("page") + 8,
            "pfn[0]",
        )
    # §1.6: one data page short.
    words = [pfn(NOTAB, 0), pfn(NOTAB, 1)]
    b = pd_hvm(page_data(words, page_for(words[0])))
    v(
        "page_data_too_short",
        "§1.6: 2 data entries need 2 pages; the body holds 1 (length != 8+8C+4096N).",
        "libxc",
        b.data,
        "RecordError",
        b.at["page"] + 4,
        "length",
    )
    # §1.6: one page too many.
    b = pd_hvm(page_data([pfn(NOTAB, 0), pfn(XTAB, 1)], bytes(2 * PAGE)))
    v(
        "page_data_too_long",
        "§1.6: 1 data entry needs 1 page; the body holds 2 (length != 8+8C+4096N).",
        "libxc",
        b.data,
        "RecordError",
        b.at["page"] + 4,
        "length",
    )
    # §1.6: a partial page.
    b = pd_hvm(page_data([pfn(NOTAB, 0)], bytes(PAGE // 2)))
    v(
        "page_data_partial_page",
        "§1.6: the page area must be a whole number of 4096-byte pages (2048 here).",
        "libxc",
        b.data,
        "RecordError",
        b.at["page"] + 4,
        "length",
    )
    # §1.6: XTAB entry followed by a page it does not carry.
    b = pd_hvm(page_data([pfn(XTAB, 0)], bytes(PAGE)))
    v(
        "page_data_page_for_xtab",
        "§1.6: XTAB carries no page, so a page after it makes the length wrong.",
        "libxc",
        b.data,
        "RecordError",
        b.at["page"] + 4,
        "length",
    )

    # ---- X86_PV_INFO (§1.6) -------------------------------------------------
    def pvi(body: bytes) -> Built:
        return build(swap(pv, "pv_info", rec(X86_PV_INFO, body)))

    # §1.6: 32-bit PV guest, PAE: width 4, levels 3.
    v(
        "pv_info_32bit_valid",
        "§1.6: X86_PV_INFO guest_width 4 with pt_levels 3 (32-bit PAE guest) is valid.",
        "libxc",
        build(pv_parts(3, width=4)).data,
    )
    # §1.6: guest_width must be 4 or 8
    v(
        "pv_info_bad_width",
        "§1.6: guest_width must be 4 or 8.",
        "libxc",
        pvi(pv_info(2, 4)).data,
        "RecordError",
        b_pv.body("pv_info"),
        "guest_width",
    )
    # §1.6: pt_levels must be 3 or 4
    v(
        "pv_info_bad_levels",
        "§1.6: pt_levels must be 3 or 4.",
        "libxc",
        pvi(pv_info(8, 2)).data,
        "RecordError",
        b_pv.body("pv_info") + 1,
        "pt_levels",
    )
    # §1.6: the 6 reserved bytes of X86_PV_INFO must be zero
    v(
        "pv_info_reserved_nonzero",
        "§1.6: the 6 reserved bytes of X86_PV_INFO must be zero.",
        "libxc",
        pvi(pv_info(8, 4, b"\x01" + bytes(5))).data,
        "RecordError",
        b_pv.body("pv_info") + 2,
        "rsvd",
    )
    for n in (4, 16):
        body = (pv_info() + bytes(8))[:n]
        # §1.6: X86_PV_INFO is exactly 8 bytes
        v(
            f"pv_info_length_{n}",
            "§1.6: X86_PV_INFO is exactly 8 bytes.",
            "libxc",
            pvi(body).data,
            "RecordError",
            b_pv.at["pv_info"] + 4,
            "length",
        )

    b = build(after(pv, "pv_info", ("pv_info2", rec(X86_PV_INFO, pv_info()))))
    v(
        "pv_info_twice",
        "§1.6/§1.7: X86_PV_INFO describes the guest once, before the p2m; a second one "
        "is refused (the pandoc does not say so; the C restorer does).",
        "libxc",
        b.data,
        "GrammarError",
        b.at["pv_info2"],
        "type",
        D_DUP,
        spec_differs="the pandoc lists X86_PV_INFO first in a PV stream but never says "
        "it may not repeat; the C restorer refuses a second one",
        c_ref="xg_sr_restore_x86_pv.c handle_x86_pv_info(): 'Already received X86_PV_INFO record'",
    )

    # ---- X86_PV_P2M_FRAMES (§1.6) -------------------------------------------
    def p2m(body: bytes) -> Built:
        return build(swap(pv, "p2m", rec(X86_PV_P2M_FRAMES, body)))

    # The C restorer's rules beyond the pandoc text (issue 13).
    v(
        "p2m_frames_end_before_start",
        "§1.6: X86_PV_P2M_FRAMES end_pfn must not be below start_pfn.",
        "libxc",
        p2m(p2m_frames(511, 0, [0x1234])).data,
        "RecordError",
        b_pv.body("p2m") + 4,
        "p2m_end_pfn",
        D_P2M,
        c_ref="xg_sr_restore_x86_pv.c handle_x86_pv_p2m_frames(): start_pfn > end_pfn is "
        "'End pfn in stream (%#x) exceeds Start (%#x)'",
    )
    v(
        "p2m_frames_wrong_frame_count",
        "§1.6: X86_PV_P2M_FRAMES lists one frame per PAGE_SIZE/width pfns from "
        "start_pfn/fpp to end_pfn/fpp; pfns 0..511 of a 64-bit guest need 1, not 2.",
        "libxc",
        p2m(p2m_frames(0, 511, [0x1234, 0x1235])).data,
        "RecordError",
        b_pv.at["p2m"] + 4,
        "length",
        D_P2M,
        c_ref="xg_sr_restore_x86_pv.c handle_x86_pv_p2m_frames(): length != 8 + "
        "(end_pfn/fpp + 1 - start_pfn/fpp) * 8 is 'X86_PV_P2M_FRAMES record wrong size'",
    )
    v(
        "p2m_frames_two_frames",
        "§1.6: X86_PV_P2M_FRAMES for pfns 0..1023 of a 64-bit guest lists 2 frames.",
        "libxc",
        p2m(p2m_frames(0, 1023, [0x1234, 0x1235])).data,
    )
    # The frame count follows the guest width of X86_PV_INFO: PAGE_SIZE / 4
    # = 1024 pfns per frame for a 32-bit guest.
    pv32 = pv_parts(3, width=4)
    b = build(swap(pv32, "p2m", rec(X86_PV_P2M_FRAMES, p2m_frames(0, 1023, [0x1234]))))
    v(
        "p2m_frames_32bit_one_frame",
        "§1.6: pfns 0..1023 of a 32-bit guest (1024 per frame) fit in one p2m frame.",
        "libxc",
        b.data,
    )
    b = build(swap(pv32, "p2m", rec(X86_PV_P2M_FRAMES, p2m_frames(0, 1023, [0x1234, 0x1235]))))
    v(
        "p2m_frames_32bit_wrong_frame_count",
        "§1.6: pfns 0..1023 of a 32-bit guest need 1 p2m frame, not 2 (the width of "
        "X86_PV_INFO decides).",
        "libxc",
        b.data,
        "RecordError",
        b.at["p2m"] + 4,
        "length",
        D_P2M,
        c_ref="xg_sr_restore_x86_pv.c handle_x86_pv_p2m_frames(): fpp = PAGE_SIZE / "
        "width; 'X86_PV_P2M_FRAMES record wrong size'",
    )
    # Frames are counted from the one holding start_pfn: pfns 511..512 of a
    # 64-bit guest straddle two frames.
    v(
        "p2m_frames_straddling_two_frames",
        "§1.6: pfns 511..512 of a 64-bit guest lie in frames 0 and 1: 2 frames.",
        "libxc",
        p2m(p2m_frames(511, 512, [0x1234, 0x1235])).data,
    )
    # A second X86_PV_P2M_FRAMES (the restorer takes several: expand_p2m())
    # with a wrong count is refused like the first.
    b = build(after(pv, "p2m", ("p2m2", rec(X86_PV_P2M_FRAMES, p2m_frames(512, 1023, [0x1, 0x2])))))
    v(
        "p2m_frames_second_record_wrong_frame_count",
        "§1.6: a second X86_PV_P2M_FRAMES for pfns 512..1023 of a 64-bit guest lists 1 "
        "frame, not 2.",
        "libxc",
        b.data,
        "RecordError",
        b.at["p2m2"] + 4,
        "length",
        D_P2M,
        c_ref="xg_sr_restore_x86_pv.c handle_x86_pv_p2m_frames() runs for every "
        "X86_PV_P2M_FRAMES record: 'X86_PV_P2M_FRAMES record wrong size'",
    )
    # §1.6: X86_PV_P2M_FRAMES needs at least its 8-byte start/end header
    v(
        "p2m_frames_length_4",
        "§1.6: X86_PV_P2M_FRAMES needs at least its 8-byte start/end header.",
        "libxc",
        p2m(struct.pack("<I", 0)).data,
        "RecordError",
        b_pv.at["p2m"] + 4,
        "length",
    )
    # §1.6: the X86_PV_P2M_FRAMES body length must be a multiple of 8
    v(
        "p2m_frames_not_multiple_of_8",
        "§1.6: the X86_PV_P2M_FRAMES body length must be a multiple of 8.",
        "libxc",
        p2m(p2m_frames(0, 511, [0x1234]) + b"\0\0\0\0").data,
        "RecordError",
        b_pv.at["p2m"] + 4,
        "length",
    )

    # ---- PV vCPU records (§1.6, erratum §1.5) -------------------------------
    v(
        "pv_two_vcpus_valid",
        "§1.6/§1.7: BASIC/EXTENDED/XSAVE/MSRS repeated for vcpu_id 0 and 1 are valid.",
        "libxc",
        build(
            before(
                pv,
                "end",
                (
                    "vcpu1",
                    rec(X86_PV_VCPU_BASIC, vcpu(1, bytes(BASIC_64)))
                    + rec(X86_PV_VCPU_EXTENDED, vcpu(1, bytes(EXTENDED_SIZE)))
                    + rec(X86_PV_VCPU_XSAVE, vcpu(1, bytes(XSAVE_SIZE)))
                    + rec(X86_PV_VCPU_MSRS, vcpu(1, msrs_blob([(0xC0000080, 0x501)]))),
                ),
            )
        ).data,
    )
    vcpu_recs = [
        ("basic", X86_PV_VCPU_BASIC),
        ("ext", X86_PV_VCPU_EXTENDED),
        ("xsave", X86_PV_VCPU_XSAVE),
        ("msrs", X86_PV_VCPU_MSRS),
    ]
    for key, rtype in vcpu_recs:
        label = {"basic": "BASIC", "ext": "EXTENDED", "xsave": "XSAVE", "msrs": "MSRS"}[key]
        lname = label.lower()
        blob = b_pv.data[b_pv.body(key) + 8 : b_pv.body_end(key)]
        # §1.6: body shorter than the 8-byte vcpu header.
        b = build(swap(pv, key, rec(rtype, b"\0\0\0\0")))
        v(
            f"vcpu_{lname}_length_4",
            f"§1.6: X86_PV_VCPU_{label} needs at least the 8-byte vcpu header.",
            "libxc",
            b.data,
            "RecordError",
            b.at[key] + 4,
            "length",
        )
        # §1.6: vcpu header reserved u32 zero.
        b = build(swap(pv, key, rec(rtype, vcpu(0, blob, rsvd=1))))
        v(
            f"vcpu_{lname}_reserved_nonzero",
            f"§1.6: the X86_PV_VCPU_{label} header reserved u32 must be zero.",
            "libxc",
            b.data,
            "RecordError",
            b.body(key) + 4,
            "rsvd",
        )
        # §1.5 erratum: header-only vCPU records (Xen 4.6-4.8).
        b = build(swap(pv, key, rec(rtype, vcpu(0, b""))))
        if key == "basic":
            v(
                "vcpu_basic_header_only",
                "§1.5 erratum (first sentence, general): a variable-sized record with zero "
                "content is tolerated and ignored; that covers X86_PV_VCPU_BASIC too.",
                "libxc",
                b.data,
                c_ref="xg_sr_restore_x86_pv.c handle_x86_pv_vcpu_blob(): an empty blob of "
                "any of the four vCPU types is skipped ('Skipping empty %s record') before "
                "the per-type size checks",
            )
        else:
            # §1.5 erratum: a header-only X86_PV_VCPU_{label} (Xen 4.6-4.8) is tolerated and ignored
            v(
                f"vcpu_{lname}_header_only",
                f"§1.5 erratum: a header-only X86_PV_VCPU_{label} (Xen 4.6-4.8) is "
                "tolerated and ignored.",
                "libxc",
                b.data,
            )

    # ---- SHARED_INFO, X86_TSC_INFO, HVM_PARAMS (§1.6) -----------------------
    for n in (PAGE - 1, PAGE + 8):
        b = build(swap(pv, "shinfo", rec(SHARED_INFO, bytes(n))))
        v(
            f"shared_info_length_{n}",
            "§1.6: SHARED_INFO is exactly one 4096-byte page.",
            "libxc",
            b.data,
            "RecordError",
            b.at["shinfo"] + 4,
            "length",
        )
    # §1.6: TSC mode 2 (NEVER_EMULATE) with other values.
    v(
        "tsc_info_never_emulate_valid",
        "§1.6: X86_TSC_INFO mode 2 (NEVER_EMULATE) with a non-zero incarnation is valid.",
        "libxc",
        build(swap(hvm, "tsc", rec(X86_TSC_INFO, tsc_info(2, 3_000_000, 1, 7)))).data,
    )
    for n in (20, 32):
        b = build(swap(hvm, "tsc", rec(X86_TSC_INFO, (tsc_info() + bytes(8))[:n])))
        # §1.6: X86_TSC_INFO is exactly 24 bytes
        v(
            f"tsc_info_length_{n}",
            "§1.6: X86_TSC_INFO is exactly 24 bytes.",
            "libxc",
            b.data,
            "RecordError",
            b.at["tsc"] + 4,
            "length",
        )
    b = build(swap(hvm, "tsc", rec(X86_TSC_INFO, tsc_info(rsvd=1))))
    # §1.6: the X86_TSC_INFO reserved u32 at body offset 20 must be zero
    v(
        "tsc_info_reserved_nonzero",
        "§1.6: the X86_TSC_INFO reserved u32 at body offset 20 must be zero.",
        "libxc",
        b.data,
        "RecordError",
        b.body("tsc") + 20,
        "rsvd",
    )

    def prm(body: bytes) -> Built:
        return build(swap(hvm, "params", rec(HVM_PARAMS, body)))

    # §1.5 erratum: HVM_PARAMS with count 0 (Xen 4.6-4.8) is tolerated
    v(
        "hvm_params_count_zero",
        "§1.5 erratum: HVM_PARAMS with count 0 (Xen 4.6-4.8) is tolerated.",
        "libxc",
        prm(hvm_params([])).data,
    )
    b = prm(hvm_params(HVM_PARAM_ENTRIES, rsvd=1))
    # §1.6: the HVM_PARAMS reserved u32 must be zero
    v(
        "hvm_params_reserved_nonzero",
        "§1.6: the HVM_PARAMS reserved u32 must be zero.",
        "libxc",
        b.data,
        "RecordError",
        b.body("params") + 4,
        "rsvd",
    )
    b = prm(hvm_params(HVM_PARAM_ENTRIES[:1], count=2))
    # §1.6: HVM_PARAMS length must be exactly 8 + 16*count (count 2, one entry)
    v(
        "hvm_params_count_exceeds_entries",
        "§1.6: HVM_PARAMS length must be exactly 8 + 16*count (count 2, one entry).",
        "libxc",
        b.data,
        "RecordError",
        b.at["params"] + 4,
        "length",
    )
    b = prm(hvm_params(HVM_PARAM_ENTRIES, count=2))
    # §1.6: HVM_PARAMS length must be exactly 8 + 16*count (count 2, three entries)
    v(
        "hvm_params_entries_exceed_count",
        "§1.6: HVM_PARAMS length must be exactly 8 + 16*count (count 2, three entries).",
        "libxc",
        b.data,
        "RecordError",
        b.at["params"] + 4,
        "length",
    )
    b = prm(hvm_params(HVM_PARAM_ENTRIES) + bytes(8))
    # §1.6: HVM_PARAMS length 8 + 16*count + 8 is not a whole number of entries
    v(
        "hvm_params_trailing_half_entry",
        "§1.6: HVM_PARAMS length 8 + 16*count + 8 is not a whole number of entries.",
        "libxc",
        b.data,
        "RecordError",
        b.at["params"] + 4,
        "length",
    )
    b = prm(b"\x01\x00\x00\x00")
    # §1.6: HVM_PARAMS needs at least its 8-byte header
    v(
        "hvm_params_length_4",
        "§1.6: HVM_PARAMS needs at least its 8-byte header.",
        "libxc",
        b.data,
        "RecordError",
        b.at["params"] + 4,
        "length",
    )

    # ---- HVM_CONTEXT (§1.6, §4.2) -------------------------------------------
    def ctx(blob: bytes) -> Built:
        return build(swap(hvm, "ctx", rec(HVM_CONTEXT, blob)))

    hdr_e = hvm_header()
    cpu0 = hvm_entry(HVM_CODE_CPU, 0, bytes(1024))
    rtc = hvm_entry(HVM_CODE_RTC, 0, bytes(16))
    v(
        "hvm_context_two_vcpus",
        "§4.2: per-vCPU typecodes repeat per instance.",
        "libxc",
        ctx(hdr_e + cpu0 + hvm_entry(HVM_CODE_CPU, 1, bytes(1024)) + rtc + HVM_END_ENTRY).data,
    )
    for code, data in ((21, b"\x01\x02\x03\x04\x05"), (22, b"amzn"), (40, b"")):
        b = ctx(hdr_e + cpu0 + hvm_entry(code, 0, data) + HVM_END_ENTRY)
        v(
            f"hvm_context_typecode_{code}",
            f"§4.2: typecode {code} is above HVM_SAVE_CODE_MAX (20); hvm_load refuses it.",
            "libxc",
            b.data,
            "RecordError",
            b.body("ctx") + len(hdr_e) + len(cpu0),
            "entries[2].typecode",
            D_HVMCTX,
            c_ref="xen/arch/x86/hvm/save.c hvm_load(): a typecode >= "
            "ARRAY_SIZE(hvm_sr_handlers) (HVM_SAVE_CODE_MAX + 1) or without a load "
            "handler is 'HVM%d restore: unknown entry typecode %u'; the toolstack sees "
            "x86_hvm_stream_complete() 'Unable to restore HVM context'",
        )
    # §4.2: the smallest well-formed blob is HEADER then END
    v(
        "hvm_context_header_and_end_only",
        "§4.2: the smallest well-formed blob is HEADER then END.",
        "libxc",
        ctx(hdr_e + HVM_END_ENTRY).data,
    )
    b = ctx(b"")
    # §1.6: HVM_CONTEXT must not be empty
    v(
        "hvm_context_empty",
        "§1.6: HVM_CONTEXT must not be empty.",
        "libxc",
        b.data,
        "RecordError",
        b.at["ctx"] + 4,
        "length",
    )
    b = ctx(cpu0 + hdr_e + HVM_END_ENTRY)
    # §4.2: the first entry of the HVM blob must be HEADER (typecode 1)
    v(
        "hvm_context_first_not_header",
        "§4.2: the first entry of the HVM blob must be HEADER (typecode 1).",
        "libxc",
        b.data,
        "RecordError",
        b.body("ctx"),
        "entries[0].typecode",
        D_HVMCTX,
    )
    b = ctx(hvm_header(magic=0x54381287) + rtc + HVM_END_ENTRY)
    # §4.2: HEADER magic must be HVM_FILE_MAGIC 0x54381286
    v(
        "hvm_context_bad_magic",
        "§4.2: HEADER magic must be HVM_FILE_MAGIC 0x54381286.",
        "libxc",
        b.data,
        "RecordError",
        b.body("ctx") + 8,
        "entries[0].magic",
        D_HVMCTX,
    )
    b = ctx(hvm_header(version=2) + rtc + HVM_END_ENTRY)
    # §4.2: HEADER version must be HVM_FILE_VERSION 1
    v(
        "hvm_context_bad_version",
        "§4.2: HEADER version must be HVM_FILE_VERSION 1.",
        "libxc",
        b.data,
        "RecordError",
        b.body("ctx") + 12,
        "entries[0].version",
        D_HVMCTX,
    )
    b = ctx(hvm_entry(HVM_CODE_HEADER, 0, hdr_e[8:] + bytes(8)) + HVM_END_ENTRY)
    # §4.2: the x86 HEADER entry data is exactly 24 bytes
    v(
        "hvm_context_header_length_32",
        "§4.2: the x86 HEADER entry data is exactly 24 bytes.",
        "libxc",
        b.data,
        "RecordError",
        b.body("ctx") + 4,
        "entries[0].length",
        D_HVMCTX,
    )
    b = ctx(hdr_e + rtc)
    # §4.2: the HVM blob must end with an END entry (0, 0, 0)
    v(
        "hvm_context_no_end_entry",
        "§4.2: the HVM blob must end with an END entry (0, 0, 0).",
        "libxc",
        b.data,
        "RecordError",
        b.body_end("ctx"),
        None,
        D_HVMCTX,
    )
    b = ctx(hdr_e + hvm_entry(HVM_CODE_RTC, 0, bytes(16), length=64))
    # §4.2: an entry's length must not run past the end of the HVM_CONTEXT body
    v(
        "hvm_context_entry_past_body",
        "§4.2: an entry's length must not run past the end of the HVM_CONTEXT body.",
        "libxc",
        b.data,
        "RecordError",
        b.body("ctx") + len(hdr_e) + 4,
        "entries[1].length",
        D_HVMCTX,
    )
    b = ctx(hdr_e + rtc + HVM_END_ENTRY + b"\x99" * 8)
    # §4.2: the END entry ends the blob; bytes after it are reported, not refused
    v(
        "hvm_context_bytes_after_end_entry",
        "§4.2: the END entry ends the HVM context; bytes after it in the record body "
        "are reported, not refused (issue 13).",
        "libxc",
        b.data,
        c_ref="xen/arch/x86/hvm/save.c hvm_load() returns at the END descriptor "
        "without looking at what follows",
    )

    # ---- TOOLSTACK, VERIFY, CHECKPOINT, CHECKPOINT_DIRTY_PFN_LIST (§1.6) ----
    b = build(before(hvm, "end", ("x", rec(TOOLSTACK, b"xl toolstack blob"))))
    v(
        "toolstack_deprecated",
        "§1.5/§1.6: TOOLSTACK is deprecated and must not be used.",
        "libxc",
        b.data,
        "RecordError",
        b.at["x"],
        "type",
        D_TOOLSTACK,
    )
    repeat = rec(PAGE_DATA, page_data([pfn(NOTAB, 0x0), pfn(XTAB, 0x1)]))
    b = build(after(after(hvm, "page", ("verify", rec(VERIFY))), "verify", ("page2", repeat)))
    # §1.6: an empty VERIFY followed by a repeat of the memory is valid
    v(
        "verify_valid",
        "§1.6: an empty VERIFY followed by a repeat of the memory is valid.",
        "libxc",
        b.data,
    )
    b = build(after(hvm, "page", ("verify", rec(VERIFY, bytes(8)))))
    # §1.6: VERIFY has an empty body
    v(
        "verify_nonempty",
        "§1.6: VERIFY has an empty body.",
        "libxc",
        b.data,
        "RecordError",
        b.at["verify"] + 4,
        "length",
    )
    # §1.6/§1.7: an empty CHECKPOINT (Remus/COLO) before END is valid
    v(
        "checkpoint_valid",
        "§1.6/§1.7: an empty CHECKPOINT (Remus/COLO) before END is valid.",
        "libxc",
        build(before(hvm, "end", ("ckpt", rec(CHECKPOINT)))).data,
        c_differs=C_PLAIN_CHECKPOINT,
    )
    b = build(before(hvm, "end", ("ckpt", rec(CHECKPOINT, b"\x01"))))
    # §1.6: CHECKPOINT has an empty body
    v(
        "checkpoint_nonempty",
        "§1.6: CHECKPOINT has an empty body.",
        "libxc",
        b.data,
        "RecordError",
        b.at["ckpt"] + 4,
        "length",
    )
    dirty = struct.pack("<QQ", 0x100, 0x101)
    # §1.6: CHECKPOINT_DIRTY_PFN_LIST is a u64 pfn[length/8] list
    b = build(before(hvm, "end", ("dirty", rec(CHECKPOINT_DIRTY_PFN_LIST, dirty))))
    v(
        "checkpoint_dirty_pfn_list_forward",
        "§1.6: CHECKPOINT_DIRTY_PFN_LIST is '(Secondary -> Primary)', only in the back "
        "channel of a checkpointed stream; a forward stream may not carry it.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["dirty"],
        "type",
        c_ref="xg_sr_restore.c restore(): no restore_ops handles type 0xf, so "
        "'Mandatory record 0xf (CHECKPOINT_DIRTY_PFN_LIST) not handled'",
    )
    b = build(before(hvm, "end", ("dirty", rec(CHECKPOINT_DIRTY_PFN_LIST, dirty[:12]))))
    # §1.6: a malformed CHECKPOINT_DIRTY_PFN_LIST is refused at its type first
    v(
        "checkpoint_dirty_pfn_list_not_multiple_of_8",
        "§1.6: CHECKPOINT_DIRTY_PFN_LIST (length not a multiple of 8 here) is refused in a "
        "forward stream at its record header, before its body is looked at.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["dirty"],
        "type",
        c_ref="xg_sr_restore.c restore(): no forward handler takes type 0xf, whatever its "
        "body: 'Mandatory record 0xf (CHECKPOINT_DIRTY_PFN_LIST) not handled'",
    )

    # ---- STATIC_DATA_END, X86_CPUID_POLICY, X86_MSR_POLICY (§1.6-§1.8) ------
    hvm2 = hvm_parts(2)
    for key, rtype, body, label in (
        ("sde", STATIC_DATA_END, b"", "STATIC_DATA_END"),
        ("cpuid", X86_CPUID_POLICY, cpuid_policy(CPUID_LEAVES), "X86_CPUID_POLICY"),
        ("msr", X86_MSR_POLICY, msr_policy([(0xCE, 0, 1)]), "X86_MSR_POLICY"),
    ):
        b = build(before(hvm2, "page", (key, rec(rtype, body))))
        v(
            f"{label.lower()}_in_v2",
            f"§1.5/§1.8: {label} exists only in v3 streams; in a v2 stream it is misplaced.",
            "libxc",
            b.data,
            "GrammarError",
            b.at[key],
            "type",
        )
    b = build(swap(hvm, "sde", rec(STATIC_DATA_END, bytes(8))))
    # §1.6: STATIC_DATA_END has an empty body
    v(
        "static_data_end_nonempty",
        "§1.6: STATIC_DATA_END has an empty body.",
        "libxc",
        b.data,
        "RecordError",
        b.at["sde"] + 4,
        "length",
    )
    b = build(after(hvm, "sde", ("sde2", rec(STATIC_DATA_END))))
    # §1.7: a second STATIC_DATA_END is an error
    v(
        "static_data_end_twice",
        "§1.7: a second STATIC_DATA_END is an error.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["sde2"],
        "type",
        D_DUP,
    )
    # §1.7: CPUID/MSR records are written only if non-empty; a v3 stream may lack both.
    v(
        "policies_absent_v3_valid",
        "§1.7: CPUID/MSR records are written only if non-empty; a v3 stream without them "
        "is valid (the restorer reports them missing).",
        "libxc",
        build(without(hvm, "cpuid", "msr")).data,
    )
    for n in (0, 30):
        b = build(swap(hvm, "cpuid", rec(X86_CPUID_POLICY, cpuid_policy(CPUID_LEAVES)[:n])))
        # §1.6: X86_CPUID_POLICY length must be a non-zero multiple of 24
        v(
            f"cpuid_policy_length_{n}",
            "§1.6: X86_CPUID_POLICY length must be a non-zero multiple of 24.",
            "libxc",
            b.data,
            "RecordError",
            b.at["cpuid"] + 4,
            "length",
        )
    for n in (0, 20):
        b = build(swap(hvm, "msr", rec(X86_MSR_POLICY, msr_policy([(1, 0, 2), (3, 0, 4)])[:n])))
        # §1.6: X86_MSR_POLICY length must be a non-zero multiple of 16
        v(
            f"msr_policy_length_{n}",
            "§1.6: X86_MSR_POLICY length must be a non-zero multiple of 16.",
            "libxc",
            b.data,
            "RecordError",
            b.at["msr"] + 4,
            "length",
        )
    b = build(swap(hvm, "msr", rec(X86_MSR_POLICY, msr_policy([(0xCE, 0, 1), (0x10A, 1, 4)]))))
    # §1.6: xen_msr_entry_t.flags must be zero (MBZ)
    v(
        "msr_policy_flags_nonzero",
        "§1.6: xen_msr_entry_t.flags must be zero (MBZ).",
        "libxc",
        b.data,
        "RecordError",
        b.body("msr") + 16 + 4,
        "entries[1].flags",
        D_POLICY,
    )

    # ---- ordering / grammar (§1.7, §1.8) ------------------------------------
    b = build(without(hvm, "sde", "page", "tsc", "ctx", "params"))
    v(
        "v3_missing_static_data_end",
        "§1.7/§1.8: a v3 stream must contain STATIC_DATA_END; this one reaches END without it.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["end"],
        None,
        D_NO_SDE,
    )
    b = build(moved(hvm, "page", "sde"))
    # §1.7: in v3, PAGE_DATA without a preceding STATIC_DATA_END is an error
    v(
        "v3_page_data_before_static_data_end",
        "§1.7: in v3, PAGE_DATA without a preceding STATIC_DATA_END is an error.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["page"],
        "type",
        D_ORDER,
    )
    b = build(moved(pv, "p2m", "sde"))
    # §1.7/§1.8: in v3, X86_PV_P2M_FRAMES must follow STATIC_DATA_END.
    v(
        "pv_v3_p2m_frames_before_static_data_end",
        "§1.7/§1.8: X86_PV_P2M_FRAMES is where a v2 PV stream's static data ends, so in "
        "v3 it must follow STATIC_DATA_END.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["p2m"],
        "type",
        D_ORDER,
    )
    # §1.7: the spec's order (HVM_PARAMS before HVM_CONTEXT) is valid
    v(
        "hvm_params_before_hvm_context",
        "§1.7: the spec's order (HVM_PARAMS before HVM_CONTEXT) is valid.",
        "libxc",
        build(moved(hvm, "params", "ctx")).data,
    )
    # hvm_v3_valid already has the writer's order (HVM_CONTEXT then HVM_PARAMS).
    v(
        "hvm_params_after_hvm_context",
        "§1.7: the writer's order (HVM_CONTEXT before HVM_PARAMS) is also valid.",
        "libxc",
        b_hvm.data,
    )
    b = build(before(pv, "end", ("x", rec(HVM_CONTEXT, hvm_ctx_blob()))))
    # §1.5/§1.7: HVM_CONTEXT belongs to HVM streams; a PV stream must not contain it
    v(
        "pv_stream_with_hvm_context",
        "§1.5/§1.7: HVM_CONTEXT belongs to HVM streams; a PV stream must not contain it.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["x"],
        "type",
        D_DOMTYPE,
    )
    b = build(before(pv, "end", ("x", rec(HVM_PARAMS, hvm_params(HVM_PARAM_ENTRIES)))))
    # §1.5/§1.7: HVM_PARAMS belongs to HVM streams; a PV stream must not contain it
    v(
        "pv_stream_with_hvm_params",
        "§1.5/§1.7: HVM_PARAMS belongs to HVM streams; a PV stream must not contain it.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["x"],
        "type",
        D_DOMTYPE,
    )
    b = build(before(hvm, "cpuid", ("x", rec(X86_PV_INFO, pv_info()))))
    # §1.5/§1.7: X86_PV_INFO belongs to PV streams; an HVM stream must not contain it
    v(
        "hvm_stream_with_pv_info",
        "§1.5/§1.7: X86_PV_INFO belongs to PV streams; an HVM stream must not contain it.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["x"],
        "type",
        D_DOMTYPE,
    )
    b = build(before(hvm, "end", ("x", rec(SHARED_INFO, bytes(PAGE)))))
    # §1.6: SHARED_INFO is PV only; HVM streams do not contain it
    v(
        "hvm_stream_with_shared_info",
        "§1.6: SHARED_INFO is PV only; HVM streams do not contain it.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["x"],
        "type",
        D_DOMTYPE,
    )
    b = build(before(hvm, "end", ("x", rec(X86_PV_VCPU_BASIC, vcpu(0, bytes(BASIC_64))))))
    # §1.5/§1.7: X86_PV_VCPU_* records belong to PV streams only
    v(
        "hvm_stream_with_pv_vcpu_basic",
        "§1.5/§1.7: X86_PV_VCPU_* records belong to PV streams only.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["x"],
        "type",
        D_DOMTYPE,
    )
    pv2 = pv_parts(2)
    b = build(moved(pv2, "p2m", "pv_info"))
    # §1.7: PV order is X86_PV_INFO -> X86_PV_P2M_FRAMES -> PAGE_DATA -> vCPU records
    v(
        "pv_p2m_frames_before_pv_info",
        "§1.7: PV order is X86_PV_INFO -> X86_PV_P2M_FRAMES -> PAGE_DATA -> vCPU records.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["p2m"],
        "type",
        D_ORDER,
    )
    b = build(moved(pv2, "page", "p2m"))
    # §1.7: PV order is X86_PV_INFO -> X86_PV_P2M_FRAMES -> PAGE_DATA -> vCPU records
    v(
        "pv_page_data_before_p2m_frames",
        "§1.7: PV order is X86_PV_INFO -> X86_PV_P2M_FRAMES -> PAGE_DATA -> vCPU records.",
        "libxc",
        b.data,
        "GrammarError",
        b.at["page"],
        "type",
        D_ORDER,
    )

    # ---- libxl stream (§2) --------------------------------------------------
    xsdata = rec(EMULATOR_XENSTORE_DATA, emulator(EMU_QEMU_UPSTREAM, 0, XENSTORE_PAIRS))
    lx = libxl_parts(hvm)
    lx_full = before(lx, "lx_emu", ("lx_xs", xsdata))
    b_lx = build(lx)
    v(
        "libxl_hvm_valid",
        "§2: libxl header, LIBXC_CONTEXT, embedded libxc stream, EMULATOR_CONTEXT, END.",
        "libxl",
        b_lx.data,
    )
    # §2: EMULATOR_XENSTORE_DATA with NUL-terminated key/value pairs is valid
    v(
        "libxl_hvm_xenstore_data_valid",
        "§2: EMULATOR_XENSTORE_DATA with NUL-terminated key/value pairs is valid.",
        "libxl",
        build(lx_full).data,
        differs=D_XSDATA,
    )
    # §2: a PV guest's libxl stream has no emulator records
    v(
        "libxl_pv_valid",
        "§2: a PV guest's libxl stream has no emulator records.",
        "libxl",
        build(libxl_parts(pv, emu=False)).data,
    )
    # §2: libxl options bit 1 (LEGACY, written by the converter) is valid
    v(
        "libxl_legacy_option_valid",
        "§2: libxl options bit 1 (LEGACY, written by the converter) is valid.",
        "libxl",
        build(libxl_parts(hvm_parts(3), options=2)).data,
    )
    # §2: emulator ids 0 (unknown/legacy) and 1 (QEMU traditional) are valid
    v(
        "libxl_emulator_ids_valid",
        "§2: emulator ids 0 (unknown/legacy) and 1 (QEMU traditional) are valid.",
        "libxl",
        build(
            before(
                lx,
                "lx_end",
                (
                    "x",
                    rec(EMULATOR_CONTEXT, emulator(0, 0, b"q0"))
                    + rec(EMULATOR_CONTEXT, emulator(1, 1, b"")),
                ),
            )
        ).data,
    )
    # A Remus-style stream: the libxc stream stops at CHECKPOINT, libxl records follow
    # up to CHECKPOINT_END, then the libxc records resume (no headers) - twice.
    qemu_ckpt = rec(EMULATOR_CONTEXT, emulator(EMU_QEMU_UPSTREAM, 0, b"QEVM checkpoint"))
    remus = [
        *libxl_parts(without(hvm, "end"), emu=False)[:-1],
        ("ckpt1", rec(CHECKPOINT)),
        ("emu1", qemu_ckpt),
        ("cend1", rec(CHECKPOINT_END)),
        ("page2", rec(PAGE_DATA, page_data([pfn(NOTAB, 0x0)]))),
        ("tsc2", rec(X86_TSC_INFO, tsc_info())),
        ("ckpt2", rec(CHECKPOINT)),
        ("emu2", qemu_ckpt),
        ("cend2", rec(CHECKPOINT_END)),
        ("end", rec(END)),
        ("lx_end", rec(LIBXL_END)),
    ]
    v(
        "libxl_remus_two_checkpoints_valid",
        "§2: a checkpointed (Remus) libxl stream: each libxc CHECKPOINT is followed by "
        "libxl records and a CHECKPOINT_END, after which the libxc records resume.",
        "libxl",
        build(remus).data,
        differs=D_REMUS,
        c_differs=C_PLAIN_CHECKPOINT,
    )
    b = build(before(lx, "lx_end", ("x", rec(CHECKPOINT_END))))
    v(
        "libxl_checkpoint_end_without_checkpoint",
        "§2: CHECKPOINT_END ends a checkpoint; one that closes no libxc CHECKPOINT is refused.",
        "libxl",
        b.data,
        "GrammarError",
        b.at["x"],
        "type",
        D_LIBXL,
        c_ref="libxl_stream_read.c process_record(): CHECKPOINT_END outside a checkpoint "
        "is 'Unexpected CHECKPOINT_END record in stream'",
    )
    b = build(before(lx, "lx_end", ("x", rec(CHECKPOINT_STATE, struct.pack("<II", 0, 0)))))
    v(
        "libxl_checkpoint_state_in_stream",
        "§2: CHECKPOINT_STATE belongs to COLO's checkpoint-state exchange, which Xen reads "
        "outside the record loop; inside a libxl stream it is refused.",
        "libxl",
        b.data,
        "GrammarError",
        b.at["x"],
        "type",
        D_LIBXL,
        spec_differs="the libxl spec defines the record ('only used by COLO') but does not "
        "say where it may appear; the C reader decides",
        c_ref="libxl_stream_read.c process_record(): CHECKPOINT_STATE unless "
        "libxl__stream_read_checkpoint_state() asked for it is 'Unexpected "
        "CHECKPOINT_STATE record in stream'",
    )
    b = build(libxl_parts(pv, emu=True))
    v(
        "libxl_pv_emulator_context",
        "§2: emulator records belong to HVM guests; after a PV domain's libxc stream "
        "they are refused.",
        "libxl",
        b.data,
        "GrammarError",
        b.at["lx_emu"],
        "type",
        D_LIBXL,
        spec_differs="the libxl spec does not tie emulator records to the domain type",
        c_ref="libxl_stream_read.c process_record(): 'Received an emulator context record "
        "when none was expected' for a non-HVM guest (and x86_pv_setup() / "
        "x86_hvm_setup() refuse a libxc stream of the other domain type)",
    )
    # §2: libxl records split at bit 31 like libxc; an unknown optional one is kept
    b = build(before(lx, "lx_end", ("x", rec(REC_TYPE_OPTIONAL | 6, b"opt"))))
    v(
        "libxl_unknown_optional_record",
        "§2: an unknown libxl record is refused even in the optional range (bit 31): the "
        "libxl spec has no 'may be ignored' rule and Xen's reader refuses it.",
        "libxl",
        b.data,
        "UnknownRecordError",
        b.at["x"],
        "type",
        spec_differs="the libxl spec reserves 0x80000000-0xFFFFFFFF for 'optional' records "
        "but, unlike the libxc spec, never says a reader may skip them; the C reader decides",
        c_ref="libxl_stream_read.c process_record(): any type it does not know is "
        "'Unrecognised record 0x%08x'",
    )
    # §2: the libxl ident must be 0x4C6962786C466D74 ('LibxlFmt')
    v(
        "libxl_bad_ident",
        "§2: the libxl ident must be 0x4C6962786C466D74 ('LibxlFmt').",
        "libxl",
        build(swap(lx, "lhdr", libxl_hdr(ident=0x4C6962786C466D75))).data,
        "FramingError",
        0,
        "ident",
    )
    for ver in (1, 3):
        # §2: libxl header version must be 2 (the only version)
        v(
            f"libxl_version_{ver}",
            "§2: libxl header version must be 2 (the only version).",
            "libxl",
            build(swap(lx, "lhdr", libxl_hdr(version=ver))).data,
            "VersionError",
            8,
            "version",
        )
    # §2: libxl options bits 2-31 are reserved
    v(
        "libxl_reserved_option_bit",
        "§2: libxl options bits 2-31 are reserved.",
        "libxl",
        build(swap(lx, "lhdr", libxl_hdr(options=4))).data,
        "FramingError",
        12,
        "options",
        c_differs=C_LIBXL_OPTIONS,
    )
    v(
        "libxl_reserved_option_bit_16",
        "§2: libxl options bits 2-31 are reserved, bits 16-31 included.",
        "libxl",
        build(swap(lx, "lhdr", libxl_hdr(options=1 << 16))).data,
        "FramingError",
        12,
        "options",
        D_LIBXL_OPTIONS,
        c_differs=C_LIBXL_OPTIONS,
    )
    # §1.1/§2: libxl options bit 0 (big-endian) is not supported
    v(
        "libxl_big_endian",
        "§1.1/§2: libxl options bit 0 (big-endian) is not supported.",
        "libxl",
        build(swap(lx, "lhdr", libxl_hdr(options=1))).data,
        "FramingError",
        12,
        "options",
        D_ENDIAN,
    )
    # §2: the 16-byte libxl header is cut short
    v(
        "libxl_header_truncated",
        "§2: the 16-byte libxl header is cut short.",
        "libxl",
        libxl_hdr()[:12],
        "FramingError",
        0,
        None,
    )
    for nm, pairs, rule in (
        (
            "not_nul_terminated",
            b"key\x00value",
            "§2: EMULATOR_XENSTORE_DATA pairs must be NUL terminated.",
        ),
        (
            "odd_strings",
            b"key\x00value\x00orphan\x00",
            "§2: EMULATOR_XENSTORE_DATA holds key/value pairs, so an even number of strings.",
        ),
    ):
        xs_bad = rec(EMULATOR_XENSTORE_DATA, emulator(EMU_QEMU_UPSTREAM, 0, pairs))
        b = build(swap(lx_full, "lx_xs", xs_bad))
        # rule
        v(
            f"libxl_xenstore_data_{nm}",
            rule,
            "libxl",
            b.data,
            "RecordError",
            b.body("lx_xs") + 8,
            "data",
            # Xen's verifier also rejects, though because of §3.3 bug 1.
        )
    xs_ok = b"device-model/1_x@y\x00on\x00A9\x00 any value: ok!\x00"
    v(
        "libxl_xenstore_key_alphabet_valid",
        "§2: xenstore keys use alphanumeric ASCII and -/_@; values are free text.",
        "libxl",
        build(
            swap(
                lx_full, "lx_xs", rec(EMULATOR_XENSTORE_DATA, emulator(EMU_QEMU_UPSTREAM, 0, xs_ok))
            )
        ).data,
        differs=D_XSDATA,
    )
    for nm, pairs, key_at, rule, cref, cdiff in (
        (
            "empty",
            b"physmap\x001\x00\x00v\x00",
            10,
            "§2: a xenstore key is not empty.",
            "libxl_dom_save.c libxl__restore_emulator_xenstore_data(): 'empty key found "
            "in xenstore data'",
            None,
        ),
        (
            "absolute",
            b"/local/domain/0/x\x00v\x00",
            0,
            "§2: xenstore keys are relative to the device model's tree.",
            "libxl_dom_save.c libxl__restore_emulator_xenstore_data(): a key starting with "
            "'/' is 'Key in xenstore data not relative'",
            None,
        ),
        (
            "bad_char",
            b"physmap\x001\x00phys map\x00v\x00",
            10,
            "§2: xenstore keys are 'strictly alphanumeric ASCII and -/_@'.",
            None,
            "libxl__restore_emulator_xenstore_data() does not check the alphabet; xenstored "
            "refuses the write and libxl ignores that result, so the guest restores without "
            "the key. The spec says 'strictly', so xenlu refuses",
        ),
    ):
        b = build(swap(lx_full, "lx_xs", rec(EMULATOR_XENSTORE_DATA, emulator(2, 0, pairs))))
        v(
            f"libxl_xenstore_key_{nm}",
            rule,
            "libxl",
            b.data,
            "RecordError",
            b.body("lx_xs") + 8 + key_at,
            "data",
            c_ref=cref,
            c_differs=cdiff,
        )
    b = build(swap(lx_full, "lx_xs", rec(EMULATOR_XENSTORE_DATA, emulator(3, 0, XENSTORE_PAIRS))))
    # §2: emulator_id must be 0, 1 or 2
    v(
        "libxl_xenstore_data_emulator_id_3",
        "§2: emulator_id must be 0, 1 or 2.",
        "libxl",
        b.data,
        "RecordError",
        b.body("lx_xs"),
        "emulator_id",
    )
    b = build(swap(lx, "lx_emu", rec(EMULATOR_CONTEXT, emulator(3, 0, b"QEVM"))))
    # §2: emulator_id must be 0, 1 or 2
    v(
        "libxl_emulator_context_id_3",
        "§2: emulator_id must be 0, 1 or 2.",
        "libxl",
        b.data,
        "RecordError",
        b.body("lx_emu"),
        "emulator_id",
    )
    b = build(swap(lx, "lx_emu", rec(EMULATOR_CONTEXT, b"\x02\x00\x00\x00")))
    # §2: EMULATOR_CONTEXT needs at least its 8-byte emulator sub-header
    v(
        "libxl_emulator_context_length_4",
        "§2: EMULATOR_CONTEXT needs at least its 8-byte emulator sub-header.",
        "libxl",
        b.data,
        "RecordError",
        b.at["lx_emu"] + 4,
        "length",
    )
    b = build(swap(remus, "cend1", rec(CHECKPOINT_END, bytes(8))))
    # §2: CHECKPOINT_END has an empty body
    v(
        "libxl_checkpoint_end_nonempty",
        "§2: CHECKPOINT_END has an empty body.",
        "libxl",
        b.data,
        "RecordError",
        b.at["cend1"] + 4,
        "length",
        c_differs=C_NO_LENGTH,
    )
    b = build(swap(lx, "lx_libxc", rec(LIBXC_CONTEXT, bytes(8))))
    # §2: LIBXC_CONTEXT has an empty body (the libxc stream follows it)
    v(
        "libxl_libxc_context_nonempty",
        "§2: LIBXC_CONTEXT has an empty body (the libxc stream follows it).",
        "libxl",
        b.data,
        "RecordError",
        b.at["lx_libxc"] + 4,
        "length",
        c_differs=C_NO_LENGTH,
    )
    b = build(swap(lx, "lx_end", rec(LIBXL_END, bytes(8))))
    # §2: the libxl END record has an empty body
    v(
        "libxl_end_nonempty",
        "§2: the libxl END record has an empty body.",
        "libxl",
        b.data,
        "RecordError",
        b.at["lx_end"] + 4,
        "length",
        c_differs=C_NO_LENGTH,
    )
    b = build(before(lx, "lx_end", ("x", rec(6, bytes(8)))))
    # §2: libxl type 6 is unknown and mandatory (bit 31 clear)
    v(
        "libxl_unknown_mandatory_type_6",
        "§2: libxl type 6 is unknown and mandatory (bit 31 clear).",
        "libxl",
        b.data,
        "UnknownRecordError",
        b.at["x"],
        "type",
    )
    noend = build(without(lx, "lx_end")).data
    # §2: the libxl stream must end with its own END after the libxc stream
    v(
        "libxl_missing_end",
        "§2: the libxl stream must end with its own END after the libxc stream.",
        "libxl",
        noend,
        "FramingError",
        len(noend),
        None,
    )
    # §1.4/§2: nothing may follow the libxl END record
    v(
        "libxl_bytes_after_end",
        "§2: END is the last libxl record; bytes after it belong to the container and "
        "are reported, not refused (issue 13).",
        "libxl",
        b_lx.data + b"\x00" * 16,
        c_ref=C_TRAILING,
    )
    # Errors inside the embedded libxc stream report absolute offsets.
    b = build(libxl_parts(swap(hvm, "ihdr", ihdr(version=4))))
    v(
        "libxl_embedded_ihdr_version_4",
        "§1.2/§2: the embedded libxc image version must be 2 or 3 (absolute offset).",
        "libxl",
        b.data,
        "VersionError",
        b.at["ihdr"] + 12,
        "version",
    )
    b = build(libxl_parts(swap(hvm, "page", rec(PAGE_DATA, page_data([pfn(0, 0)], rsvd=2)))))
    # §1.6/§2: PAGE_DATA reserved u32 non-zero inside an embedded libxc stream
    v(
        "libxl_embedded_page_data_reserved",
        "§1.6/§2: PAGE_DATA reserved u32 non-zero inside an embedded libxc stream.",
        "libxl",
        b.data,
        "RecordError",
        b.body("page") + 4,
        "rsvd",
    )
    b = build(libxl_parts(before(hvm, "end", ("x", rec(0x13)))))
    # §1.5/§2: unknown mandatory libxc type inside a libxl stream
    v(
        "libxl_embedded_unknown_mandatory",
        "§1.5/§2: unknown mandatory libxc type inside a libxl stream.",
        "libxl",
        b.data,
        "UnknownRecordError",
        b.at["x"],
        "type",
    )
    noend = build(libxl_parts(without(hvm, "end"), emu=False)[:-1]).data
    # §2: input ends inside the embedded libxc stream, before its END
    v(
        "libxl_embedded_libxc_missing_end",
        "§2: input ends inside the embedded libxc stream, before its END.",
        "libxl",
        noend,
        "FramingError",
        len(noend),
        None,
    )

    # ---- xl save file (§2) --------------------------------------------------
    xl = xl_parts(lx)
    b_xl = build(xl)
    v(
        "xl_valid",
        "§2: xl magic, header (JSON config + STREAMv2), config, then a libxl stream.",
        "xl",
        b_xl.data,
    )
    # §2: an xl save file around a PV guest's libxl stream
    v(
        "xl_pv_valid",
        "§2: an xl save file around a PV guest's libxl stream.",
        "xl",
        build(xl_parts(libxl_parts(pv, emu=False), config=XL_CONFIG_PV)).data,
    )
    # §2: unknown optional flags may be ignored
    v(
        "xl_optional_flags_valid",
        "§2: unknown optional flags may be ignored.",
        "xl",
        build(xl_parts(lx, optional_flags=0x8000_0001)).data,
    )
    # §2: the xl file starts with the 32-byte magic
    v(
        "xl_bad_magic",
        "§2: the xl file starts with the 32-byte magic.",
        "xl",
        b"Xen saved domain, xl format\n \0 \n" + b_xl.data[32:],
        "FramingError",
        0,
        "magic",
    )
    # §2: unknown mandatory flags (here bit 2) are rejected
    v(
        "xl_unknown_mandatory_flag",
        "§2: unknown mandatory flags (here bit 2) are rejected.",
        "xl",
        build(xl_parts(lx, mandatory=XL_FLAG_JSON | XL_FLAG_STREAMV2 | 4)).data,
        "FramingError",
        36,
        "mandatory_flags",
        D_XL,
    )
    # §2: the byteorder word must read 0x01020304 in the domain's byte order
    v(
        "xl_byteorder_wrong",
        "§2: the byteorder word must read 0x01020304 in the domain's byte order.",
        "xl",
        build(xl_parts(lx, byteorder=0x04030201)).data,
        "FramingError",
        32,
        "byteorder",
        D_XL,
    )
    # §2: the 16-byte xl header after the magic is cut short
    v(
        "xl_header_truncated",
        "§2: the 16-byte xl header after the magic is cut short.",
        "xl",
        b_xl.data[:40],
        "FramingError",
        32,
        None,
    )
    b = build(xl_parts(libxl_parts(swap(hvm, "page", rec(PAGE_DATA, page_data([pfn(6, 0)]))))))
    # §1.6/§2: a bad pfn type deep inside xl > libxl > libxc reports its absolute offset
    v(
        "xl_embedded_page_data_type_6",
        "§1.6/§2: a bad pfn type deep inside xl > libxl > libxc reports its absolute offset.",
        "xl",
        b.data,
        "RecordError",
        b.body("page") + 8,
        "pfn[0]",
    )
    b = build(xl_parts(swap(lx, "lhdr", libxl_hdr(options=8))))
    # §2: libxl reserved option bit inside an xl file (absolute offset)
    v(
        "xl_embedded_libxl_reserved_option",
        "§2: libxl reserved option bit inside an xl file (absolute offset).",
        "xl",
        b.data,
        "FramingError",
        b.at["lhdr"] + 12,
        "options",
    )
    # §1.4/§2: nothing may follow the libxl END record in an xl file
    v(
        "xl_bytes_after_end",
        "§2: bytes after the libxl END of an xl file are not read by xl restore; they are "
        "reported, not refused (issue 13).",
        "xl",
        b_xl.data + b"\x01",
        c_ref=C_TRAILING,
    )
    # xl optional data: u32 config_len, then the config (xl.h; xl_saverestore.c
    # save_domain_core_writeconfig() writes it, xl_vmcontrol.c create_domain() reads it).
    for nm, opt, mandatory, rule in (
        (
            "xl_optional_data_tail_valid",
            xl_optional(XL_CONFIG, b"\xaa" * 5),
            XL_FLAG_JSON | XL_FLAG_STREAMV2,
            "xl.h: optional data is u32 config_len, the config, then a tail xl skips.",
        ),
        (
            "xl_empty_config_valid",
            xl_optional(b""),
            XL_FLAG_STREAMV2,
            "xl.h: xl save without a config writes config_len 0 and no JSON flag.",
        ),
        (
            "xl_no_optional_data_valid",
            b"",
            XL_FLAG_STREAMV2,
            "xl.h: an optional data length of 0 means no config in the file.",
        ),
    ):
        v(
            nm,
            rule,
            "xl",
            build([("xl", xl_hdr(opt, mandatory=mandatory)), *lx]).data,
            c_ref="xl_vmcontrol.c create_domain() reads config_len and the config when the "
            "optional data is not empty and skips the rest; with no config in the file "
            "the restore needs one on the command line ('Config file not specified and "
            "none in save file'), which is not a property of the file",
        )
    b = build([("xl", xl_hdr(b"\x01\x00", mandatory=XL_FLAG_STREAMV2)), *lx])
    v(
        "xl_optional_data_short",
        "xl.h: non-empty optional data starts with a u32 config_len; 2 bytes cannot hold it.",
        "xl",
        b.data,
        "FramingError",
        44,
        "optional_data_len",
        D_XL,
        c_ref="xl_vmcontrol.c create_domain(): fewer than 4 bytes for config_len is "
        "'Savefile truncated.'",
    )
    bad_len = struct.pack("<I", len(XL_CONFIG) + 1) + XL_CONFIG
    b = build([("xl", xl_hdr(bad_len)), *lx])
    v(
        "xl_config_len_past_optional_data",
        "xl.h: config_len must fit in the optional data after it.",
        "xl",
        b.data,
        "FramingError",
        48,
        "config_len",
        D_XL,
        c_ref="xl_vmcontrol.c create_domain(): a config_len larger than the optional data "
        "left is 'Savefile truncated.'",
    )
    past = bytearray(b_xl.data)
    struct.pack_into("<I", past, 44, len(past))
    v(
        "xl_optional_data_past_eof",
        "xl.h: the optional data must fit in the file.",
        "xl",
        bytes(past),
        "FramingError",
        44,
        "optional_data_len",
        c_ref="xl_vmcontrol.c create_domain(): libxl_read_exactly() of the optional data "
        "hits end of file ('file/stream truncated reading optdata')",
    )

    names = [x.name for x in out]
    if len(names) != len(set(names)):
        raise AssertionError("duplicate vector names")
    unknown = set(C_LENIENT) - set(names)
    if unknown:
        raise AssertionError(f"C_LENIENT names no vector: {sorted(unknown)}")
    return [replace(x, c_differs=C_LENIENT[x.name]) if x.name in C_LENIENT else x for x in out]


# Where Xen's C restorer accepts what the pandoc spec refuses, because it never
# looks at the field: xenlu keeps the spec's rule (docs/xen-readers.md).
_PAD = "xg_sr_common.c read_record() reads the padding and never looks at it"
_BODY0 = "xg_sr_restore.c process_record() never checks the body length of {}"
_V2 = (
    "the C restorer handles {} whatever the image version; the pandoc introduces it in v3, "
    "so xenlu refuses it in a v2 stream"
)
_VHDR = "xg_sr_restore_x86_pv.c handle_x86_pv_vcpu_blob() never reads the header's reserved u32"
_EMU_ID = (
    "libxl_stream_read.c never reads emulator_id (the blob goes to the one device model); "
    "the libxl spec defines ids 0-2"
)
C_LENIENT: dict[str, str] = {
    "ihdr_reserved_option_bit": "xg_sr_restore.c read_headers() checks options bit 0 only",
    "ihdr_res1_nonzero": "xg_sr_restore.c read_headers() never reads the reserved fields",
    "ihdr_res2_nonzero": "xg_sr_restore.c read_headers() never reads the reserved fields",
    "dhdr_reserved_nonzero": "xg_sr_restore.c read_headers() never reads the reserved field",
    "record_padding_nonzero": _PAD,
    "unknown_optional_bad_padding": _PAD + " (and skips the optional record)",
    "end_nonempty": _BODY0.format("END"),
    "verify_nonempty": _BODY0.format("VERIFY"),
    "static_data_end_nonempty": "handle_static_data_end() never checks the body length",
    "checkpoint_nonempty": "handle_checkpoint() never checks the body length",
    "page_data_reserved_nonzero": "handle_page_data() never reads the header's reserved u32",
    "page_data_pfn_reserved_bit_52": "handle_page_data() masks pfn (bits 0-51) and type "
    "(bits 60-63); bits 52-59 are never looked at",
    "page_data_pfn_reserved_bit_59": "handle_page_data() masks pfn (bits 0-51) and type "
    "(bits 60-63); bits 52-59 are never looked at",
    "pv_info_reserved_nonzero": "handle_x86_pv_info() never reads the reserved bytes",
    "pv_info_length_16": "handle_x86_pv_info() refuses only a record shorter than 8 bytes",
    "vcpu_basic_reserved_nonzero": _VHDR,
    "vcpu_extended_reserved_nonzero": _VHDR,
    "vcpu_xsave_reserved_nonzero": _VHDR,
    "vcpu_msrs_reserved_nonzero": _VHDR,
    "tsc_info_reserved_nonzero": "xg_sr_common_x86.c handle_x86_tsc_info() checks the length only",
    "hvm_params_reserved_nonzero": "handle_hvm_params() never reads the reserved u32",
    "static_data_end_in_v2": _V2.format("STATIC_DATA_END"),
    "x86_cpuid_policy_in_v2": _V2.format("X86_CPUID_POLICY"),
    "x86_msr_policy_in_v2": _V2.format("X86_MSR_POLICY"),
    "v3_missing_static_data_end": "the C restorer wants STATIC_DATA_END only before the first "
    "PAGE_DATA / X86_PV_P2M_FRAMES ('No STATIC_DATA_END seen'), which this stream lacks; "
    "the pandoc makes the record part of every v3 stream",
    "libxl_xenstore_data_emulator_id_3": _EMU_ID,
    "libxl_emulator_context_id_3": _EMU_ID,
}


#: Every vector, in corpus order.
ALL_VECTORS: list[Vector] = _build()
#: The vectors xenlu decides as Xen does: every consumer of "valid/invalid" uses these.
VECTORS: list[Vector] = [v for v in ALL_VECTORS if v.pending is None]
#: The vectors whose verdict (Xen's C restorer) xenlu does not reach yet (``pending``).
PENDING: list[Vector] = [v for v in ALL_VECTORS if v.pending is not None]
