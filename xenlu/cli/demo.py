"""``make demo``: a Live Update of a realistic Xen 4.11 host to Xen 4.15.

1. xen#1 (4.11) serialises a host — a PV dom0 running backends and device
   models, HVM guests with grant tables, FIFO and two-level event channels,
   IOREQ servers — into data pages of a (sparse) memory image, with the MFN
   array and the breadcrumb at the LU bootmem (spec §5).
2. xen#2 (4.15) starts with ``liveupdate=<N>M@0x<start>``, finds the
   breadcrumb, maps the pages and decodes the stream, verifying every section
   checksum.
3. The stream is upgraded from the 4.11 layouts to 4.15's (spec §6), with a
   report of every field filled.
4. xen#2 does not trust xen#1: the host is validated (spec §7) and a
   restore plan with passes, parallel groups and cross-domain edges is
   printed.
5. One fault of each kind is caught: a corrupted copy of the stream (one
   flipped bit) fails ``verify`` on its section checksum, and a copy where
   a frame is owned twice (well-formed, so ``verify`` passes) fails
   ``validate``.
7. The second stream Xen ships for a live update: xenstored's state for
   the same domains (docs/xenstore-stream.md) is written, verified and
   validated, and a depth watch as the C xenstored writes it is caught.
8. The ``xenlu`` commands that repeat every step on the files the demo
   wrote are printed; ``--keep DIR`` keeps them all (the image, the 4.11
   and 4.15 streams, the report, the faulty copies).

Run with ``python -m xenlu.cli.demo [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from xenlu.core.epochs import Epoch, fmt_epoch
from xenlu.core.registry import Record
from xenlu.lu.records import Bulk, T
from xenlu.lu.stream import LUDomain, LUStream, decode_lu, encode_lu
from xenlu.testing.hostgen import make_host

if TYPE_CHECKING:
    from xenlu.host.validation import Report

__all__ = ["demo_host", "main"]


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _describe(stream: LUStream) -> None:
    for d in stream.domains:
        counts = d.entry_counts()
        bits = ", ".join(
            f"{k.removeprefix('LU_').lower()} {v}"
            for k, v in sorted(counts.items())
            if k.startswith("LU_")
        )
        if d.is_hvm:
            big = int((d.p2m["nr_pages"] == 512).sum())
            bits += f" (P2M: {big} extents of 2 MiB, the rest fragmented)"
        print(f"     dom{d.domid:<3} {d.type_name:3} vcpus {d.info.max_vcpus}  {bits}")


def demo_host() -> LUStream:
    """The demo's Xen 4.11 host: a PV dom0 and a dozen HVM guests of 512 MiB each."""
    return make_host(
        (4, 11),
        n_hvm=12,
        mem_mib=512,
        dom0_mem_mib=1024,
        vcpus=4,
        fragmentation=0.05,
        superpages=True,
        seed=2026,
    )


def _bit_flipped(data: bytes, stream: LUStream) -> tuple[bytes, str]:
    """``data`` with one bit flipped inside the body of dom1's LU_P2M record
    (a record whose body no field check covers: only the section's crc32c
    sees it, LU spec §4.15); and where."""
    from xenlu.cli.listing import lu_listing

    rows = lu_listing(data)
    # The second LU_P2M in the stream: domain sections follow the global one in
    # domid order, and dom0 (PV) has none.
    idx, off, name, _t, length = [r for r in rows if r[2] == "LU_P2M"][1]
    assert off is not None and length > 24
    at = off + 8 + 16 + 8  # record header, count header, then the first extent's mfn
    bad = bytearray(data)
    bad[at] ^= 0x10
    return bytes(bad), f"record #{idx} ({name}) at offset {at:#x}"


def _owned_twice(stream: LUStream) -> tuple[LUStream, int]:
    """``stream`` with dom2 also claiming one RAM frame of dom1 (LU spec §4.8:
    a frame has one owner); the result is well-formed."""
    own1 = stream.domain(1).ownership
    frame = int(own1["start_mfn"][int(np.flatnonzero(own1["flags"] == 0)[0])])
    doms = []
    for d in stream.domains:
        if d.domid == 2:
            own = d.ownership
            row = np.zeros(1, own.dtype)
            row["start_mfn"], row["nr_pages"] = frame, 1
            arr = np.concatenate((own, row))
            d = LUDomain(
                [
                    Record(r.type, Bulk(arr)) if r.type == T.LU_PAGE_OWNERSHIP else r
                    for r in d.records
                ]
            )
        doms.append(d)
    return LUStream(stream.global_section, doms), frame


class _Files(NamedTuple):
    """The files the commands of step 8 read: xen#1's stream, the upgrade, its report."""

    src: str
    dst: str
    report: str


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m xenlu.cli.demo", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--keep", metavar="DIR", help="write the image and streams into DIR")
    ap.add_argument("--target", default="4.15", help="xen#2's version (default 4.15)")
    args = ap.parse_args(argv)

    from xenlu.core.epochs import parse_epoch

    target = parse_epoch(args.target)
    workdir = args.keep or tempfile.mkdtemp(prefix="xenlu-demo-")
    os.makedirs(workdir, exist_ok=True)
    image = os.path.join(workdir, "memory.img")

    print("xenlu demo: Live Update of a Xen 4.11 host to Xen", fmt_epoch(target))
    print()
    t0 = time.perf_counter()
    option, n_pages = _serialise(image)
    stream = _boot(image, option, n_pages, target)
    new, data, files = _upgrade(stream, target, workdir)
    rep = _validate_and_plan(new)
    caught = _faults(workdir, data, new)
    xs_ok, xs_steps = _xenstore_part([d.domid for d in new.domains], workdir)
    _commands(workdir, option, target, files, [*caught, *xs_steps], keep=bool(args.keep))
    if args.keep:
        print(f"done in {time.perf_counter() - t0:.1f} s; files in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"done in {time.perf_counter() - t0:.1f} s (run with --keep DIR to keep the files)")
    return 1 if rep.errors or len(caught) != 2 or not xs_ok else 0


def _serialise(image: str) -> tuple[str, int]:
    """Step 1: xen#1 writes the demo host's hand-over into the memory image
    ``image``; returns the ``liveupdate=`` option xen#2 boots with and the
    number of data pages."""
    from xenlu.lu.handover import format_liveupdate, write_handover_file

    # dom0 (PV: page types, backends, device models) and a dozen HVM guests
    # whose P2M mixes 2 MiB extents with fragmented ones.
    host = demo_host()
    boot = (host.host.lu_bootmem_start, host.host.lu_bootmem_size)
    print(f"1. xen#1 (Xen {host.xen_version}) serialises {len(host.domains)} domains:")
    _describe(host)
    hand = write_handover_file(host, image)
    print(
        f"   stream {_mib(hand.stream_bytes)} in {len(hand.data_mfns)} data pages, "
        f"MFN array at MFN {hand.array_mfn:#x}, breadcrumb at {boot[0]:#x}"
    )
    print(f"   memory image {image} (sparse, {_mib(os.path.getsize(image))} apparent)")
    print()
    return format_liveupdate(*boot), len(hand.data_mfns)


def _boot(image: str, option: str, n_pages: int, target: Epoch) -> LUStream:
    """Step 2: xen#2 finds the breadcrumb, maps the ``n_pages`` data pages,
    verifies the stream."""
    from xenlu.lu.handover import read_handover

    print(f"2. xen#2 (Xen {fmt_epoch(target)}) boots with {option}")
    t1 = time.perf_counter()
    stream = read_handover(image, option)
    t2 = time.perf_counter()
    print(
        f"   breadcrumb found, {n_pages} pages mapped, "
        f"{len(stream.sections)} sections verified (crc32c ok: {stream.sections_ok}) "
        f"in {(t2 - t1) * 1000:.1f} ms"
    )
    print()
    return stream


def _upgrade(stream: LUStream, target: Epoch, workdir: str) -> tuple[LUStream, bytes, _Files]:
    """Step 3: the upgrade to ``target`` and its report; writes xen#1's
    stream, the upgraded one and the report (the files the commands of step
    8 read)."""
    from xenlu.host.compat import convert

    print(f"3. upgrade {stream.xen_version} → {fmt_epoch(target)} (spec §6):")
    new, report = convert(stream, to=target)
    for line in report.summary().splitlines():
        print("   " + line)
    data = encode_lu(new)
    again = decode_lu(data)
    print(
        f"   the {fmt_epoch(target)} stream: {_mib(len(data))}, decodes under epoch "
        f"{fmt_epoch(again.epoch)} with every checksum ok: {bool(again.sections_ok)}, "
        f"equal to the upgraded model: {again == new}"
    )
    files = _Files(
        src=os.path.join(workdir, f"host-{stream.xen_version}.lu"),
        dst=os.path.join(workdir, f"host-{fmt_epoch(target)}.lu"),
        report=os.path.join(workdir, "report.json"),
    )
    with open(files.src, "wb") as f:
        f.write(encode_lu(stream))
    with open(files.dst, "wb") as f:
        f.write(data)
    with open(files.report, "w", encoding="utf-8") as f:
        json.dump(report.to_json(), f, indent=2, ensure_ascii=False)
    print()
    return new, data, files


def _validate_and_plan(new: LUStream) -> Report:
    """Steps 4 and 5: validation of the upgraded host, and its restore plan."""
    from xenlu.host.restore_plan import plan
    from xenlu.host.validation import validate

    print("4. validation (xen#2 does not trust xen#1, spec §7):")
    rep = validate(new)
    print(f"   {len(rep.errors)} errors, {len(rep.warnings)} warnings")
    for finding in rep.findings[:10]:
        print(f"   {finding}")
    print()

    print("5. restore plan (spec §6):")
    p = plan(new)
    for line in p.summary().splitlines():
        print("   " + line)
    print()
    return rep


def _commands(
    workdir: str,
    option: str,
    target: Epoch,
    files: _Files,
    more: list[tuple[str | None, str]],
    *,
    keep: bool,
) -> None:
    """Step 8: the same steps as ``xenlu`` commands (``more``: those of steps 6 and 7)."""
    print("8. the same steps with the xenlu command:")
    if not keep:
        print("   (the files are deleted at the end: run with --keep DIR to keep them)")
    q = shlex.quote
    name = os.path.basename
    lu = option.removeprefix("liveupdate=")
    to = fmt_epoch(target)
    src, dst = q(name(files.src)), q(name(files.dst))
    steps = [
        ("1. what xen#1 wrote", f"xenlu inspect {src}"),
        (
            "2. find the stream in memory, verify it",
            f"xenlu verify --liveupdate {lu} {name(os.path.join(workdir, 'memory.img'))}",
        ),
        ("3. pre-flight, then the upgrade", f"xenlu convert --dry-run --to {to} {src}"),
        (None, f"xenlu convert --to {to} --report {name(files.report)} {src} {dst}"),
        ("4. validate", f"xenlu validate {dst}"),
        ("5. restore plan", f"xenlu plan {dst}"),
        (
            "   the memory map (needs pip install 'xenlu[plot]')",
            f"xenlu map {dst} -o host.png",
        ),
        *more,
    ]
    print(f"   cd {q(workdir)}")
    for note, cmd in steps:
        if note:
            print(f"   # {note}")
        print(f"   {cmd}")
    print()


def _xenstore_part(domids: list[int], workdir: str) -> tuple[bool, list[tuple[str | None, str]]]:
    """Step 7: the xenstored live-update stream of the demo host's domains.

    Returns whether it validated, and (note, command) that repeat the step."""
    import xenlu
    from xenlu.core.errors import RecordError
    from xenlu.testing.xenstore_hostgen import make_xenstore
    from xenlu.xenstore.cwriter import c_watch_ext_record
    from xenlu.xenstore.stream import XenstoreStream, encode_xenstore, inspect_xenstore
    from xenlu.xenstore.validate import validate_xenstore

    print("7. xenstored live-updates too (docs/xenstore-stream.md): its state for these domains")
    data = encode_xenstore(make_xenstore(domids))
    with open(os.path.join(workdir, "xenstored-state_dump"), "wb") as f:
        f.write(data)
    fmt = xenlu.verify(data)
    s = xenlu.decode(data)
    assert isinstance(s, XenstoreStream)
    info = inspect_xenstore(s)
    print(
        f"   {len(data)} bytes, verify: OK ({fmt}, version {s.version}), "
        f"{info['connections']['ring']} rings + {info['connections']['socket']} socket, "
        f"{info['nodes']['committed']} nodes, {info['watches']} watches, "
        f"{info['transactions']} open transaction"
    )
    rep = validate_xenstore(s)
    print(f"   validate: {rep.nr_errors} errors, {rep.nr_warnings} warnings")
    tree = s.tree()
    guest = next((d for d in domids if d), 0)
    print(f"   /local/domain/{guest}/name = {tree.value(f'/local/domain/{guest}/name').decode()}")
    # The same connection and a depth watch as dump_state_watches writes it.
    bad = encode_xenstore(XenstoreStream(records=s.records[:3]))[:-8]
    bad += c_watch_ext_record(1, b"/local/domain/0/backend/vif", b"be") + bytes(8)
    try:
        xenlu.decode(bad)
    except RecordError as exc:
        print(
            f"   a depth watch as the C xenstored writes it is refused: {type(exc).__name__} "
            f"at {exc.offset:#x}, field {exc.field}:"
        )
        for part in exc.message.split("; ")[1:3]:
            print(f"     {part}")
    print()
    steps: list[tuple[str | None, str]] = [
        ("7. the xenstored stream", "xenlu inspect xenstored-state_dump"),
        (None, "xenlu validate xenstored-state_dump"),
    ]
    return rep.ok, steps


def _faults(workdir: str, data: bytes, stream: LUStream) -> list[tuple[str | None, str]]:
    """Step 6: two faulty copies of ``data`` and the checks that catch them.

    Returns (note, command) that repeat each catch, for those caught (the
    command runs in ``workdir``)."""
    from xenlu.api import verify
    from xenlu.cli.io import error_line
    from xenlu.core.errors import XenLUError
    from xenlu.host.validation import validate

    print("6. faults are caught:")
    caught: list[tuple[str | None, str]] = []
    flipped, where = _bit_flipped(data, stream)
    path = os.path.join(workdir, "bit-flipped.lu")
    with open(path, "wb") as f:
        f.write(flipped)
    print(f"   a copy with one bit flipped in {where}:")
    try:
        verify(flipped, "lu")
        print("   NOT CAUGHT by verify")
    except XenLUError as exc:
        print(f"     {error_line('verify', exc, path)}")
        caught.append(("6. exit 1: the section checksum", "xenlu verify bit-flipped.lu"))
    twice, frame = _owned_twice(stream)
    path = os.path.join(workdir, "owned-twice.lu")
    with open(path, "wb") as f:
        f.write(encode_lu(twice))
    print(f"   a copy where dom2 also owns dom1's frame {frame:#x} (well-formed: verify passes):")
    findings = [x for x in validate(twice).errors if x.code == "OWN_DUPLICATE"]
    for x in findings:
        print(f"     {x}")
    if findings:
        caught.append(("6. exit 1: OWN_DUPLICATE", "xenlu validate owned-twice.lu"))
    else:
        print("   NOT CAUGHT by validate")
    print()
    return caught


if __name__ == "__main__":
    sys.exit(main())
