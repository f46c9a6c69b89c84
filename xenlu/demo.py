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
5. The second stream Xen ships for a live update: xenstored's state for
   the same domains (docs/xenstore-stream.md) is written, verified and
   validated, and a depth watch as the C xenstored writes it is caught.

Run with ``python -m xenlu.demo [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence

from xenlu.epochs import fmt_epoch
from xenlu.hostgen import make_host
from xenlu.lu_stream import LUStream, decode_lu, encode_lu

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


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xenlu.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--keep", metavar="DIR", help="write the image and streams into DIR")
    ap.add_argument("--target", default="4.15", help="xen#2's version (default 4.15)")
    args = ap.parse_args(argv)

    from xenlu.compat import convert
    from xenlu.epochs import parse_epoch
    from xenlu.handover import format_liveupdate, read_handover, write_handover_file
    from xenlu.plan import plan
    from xenlu.validate import validate

    target = parse_epoch(args.target)
    workdir = args.keep or tempfile.mkdtemp(prefix="xenlu-demo-")
    os.makedirs(workdir, exist_ok=True)
    image = os.path.join(workdir, "memory.img")

    print("xenlu demo: Live Update of a Xen 4.11 host to Xen", fmt_epoch(target))
    print()
    t0 = time.perf_counter()
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

    option = format_liveupdate(*boot)
    print(f"2. xen#2 (Xen {fmt_epoch(target)}) boots with {option}")
    t1 = time.perf_counter()
    stream = read_handover(image, option)
    t2 = time.perf_counter()
    print(
        f"   breadcrumb found, {len(hand.data_mfns)} pages mapped, "
        f"{len(stream.sections)} sections verified (crc32c ok: {stream.sections_ok}) "
        f"in {(t2 - t1) * 1000:.1f} ms"
    )
    print()

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
    if args.keep:
        with open(os.path.join(workdir, f"host-{fmt_epoch(target)}.lu"), "wb") as f:
            f.write(data)
    print()

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

    xs_ok = _xenstore_part([d.domid for d in new.domains], workdir if args.keep else None)
    print()
    if args.keep:
        print(f"done in {time.perf_counter() - t0:.1f} s; files in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"done in {time.perf_counter() - t0:.1f} s (run with --keep DIR to keep the files)")
    return 1 if rep.errors or not xs_ok else 0


def _xenstore_part(domids: list[int], keep: str | None) -> bool:
    """Step 6: the xenstored live-update stream of the demo host's domains."""
    import xenlu
    from xenlu.errors import RecordError
    from xenlu.xenstore_cwriter import c_watch_ext_record
    from xenlu.xenstore_hostgen import make_xenstore
    from xenlu.xenstore_stream import XenstoreStream, encode_xenstore, inspect_xenstore
    from xenlu.xenstore_validate import validate_xenstore

    print("6. xenstored live-updates too (docs/xenstore-stream.md): its state for these domains")
    data = encode_xenstore(make_xenstore(domids))
    if keep:
        with open(os.path.join(keep, "xenstored-state_dump"), "wb") as f:
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
    return rep.ok


if __name__ == "__main__":
    sys.exit(main())
