#!/usr/bin/env python3
"""xenlu's benchmark harness (issue 7): every operation beside its baseline, as ratios.

Run from the repository root::

    python benchmarks/run.py --scale small            # < 1 minute
    python benchmarks/run.py --scale medium --json bench-medium.json
    XEN_TOOLS_PYTHON=/path/to/xen/tools/python python benchmarks/run.py --scale large

The harness builds its inputs itself (``xenlu.testing.hostgen`` hosts, libxc streams
built with xenlu's libxc encoder) in a scratch directory, then runs each row
in its own child process, so that every row's peak RSS (``ru_maxrss``) is its
own and memory is returned between rows. Inside a row the xenlu operation and
its baseline run in the same process, interleaved (A B, B A, A B, …) after a
warm-up, and the median of the repeats is reported with the spread
``(max - min) / median``.

``ratio`` is always ``baseline time / xenlu time`` — how fast xenlu is
relative to its baseline (> 1: xenlu is faster). Every goal is written as a
lower bound on that ratio, e.g. "time ≤ 2× the struct loop" is ``ratio ≥ 0.5``.
The memory row is the exception: it compares extra memory with its allowance.

A child never exceeds ``--mem-limit-gib`` of anonymous resident memory
(default 8; mapped input files are page cache and not counted): a watchdog
thread ends it, and the row is reported as failed. At ``--scale huge`` the
operations run as processes of their own, watched the same way; one that
passes the limit is stopped and its row says "exceeded".
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import mmap
import os
import platform
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: The directory holding the ``xenlu`` package under test: the repository, or
#: ``--xenlu DIR`` (e.g. a scratch copy with a proposed change, measured by the
#: very same harness).
XENLU_ROOT = Path(os.environ.get("XENLU_BENCH_ROOT") or REPO).resolve()
if str(XENLU_ROOT) not in sys.path:
    sys.path.insert(0, str(XENLU_ROOT))
#: Put on PYTHONPATH of every process when the package under test is not the
#: repository's: its ``sitecustomize`` removes the editable install's finder,
#: which would serve the modules that package lacks from the repository.
ISOLATE_DIR = Path(__file__).resolve().parent / "isolate"
if XENLU_ROOT != REPO:
    sys.meta_path[:] = [
        f
        for f in sys.meta_path
        if not getattr(f, "__module__", "").startswith("__editable___xenlu")
    ]

import numpy as np  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30

# --- scales -----------------------------------------------------------------------

SCALES: dict[str, dict[str, Any]] = {
    # host_gib: RAM of the fragmented host (fragmentation=1.0: single-frame extents)
    "small": dict(
        host_gib=4,
        small_records=100_000,
        lu_small_records=20_000,
        page_mib=64,
        p2m_entries=2_000_000,
        construct_slice=5_000,
        repeats=5,
        xen_repeats=2,
    ),
    "medium": dict(
        host_gib=16,
        small_records=1_000_000,
        lu_small_records=200_000,
        page_mib=256,
        p2m_entries=10_000_000,
        construct_slice=20_000,
        repeats=7,
        xen_repeats=3,
    ),
    "large": dict(
        host_gib=64,
        small_records=1_000_000,
        lu_small_records=1_000_000,
        page_mib=1024,
        p2m_entries=50_000_000,
        construct_slice=50_000,
        repeats=5,
        xen_repeats=3,
    ),
    # issue 14: the host that matters, streamed to disk (xenlu.testing.hostgen.write_host);
    # rows: HUGE_ROWS. host_gib is the largest host; --huge-gib picks the sizes.
    "huge": dict(host_gib=1024, huge_gibs=[256, 1024], repeats=3),
}
PROJECT_TO_GIB = 1024  # linear projection of host-sized rows to a 1 TiB host
N_HVM = 4


def host_shape(host_gib: int) -> dict[str, int]:
    """dom0 gets 1/16 of the RAM, four HVM guests share the rest."""
    dom0 = host_gib * 1024 // 16
    return dict(n_hvm=N_HVM, dom0_mem_mib=dom0, mem_mib=(host_gib * 1024 - dom0) // N_HVM)


# --- timing -----------------------------------------------------------------------


def stats(times: list[float]) -> tuple[float, float]:
    """(median, spread) with spread = (max - min) / median."""
    med = statistics.median(times)
    return med, ((max(times) - min(times)) / med if med > 0 else 0.0)


BUDGET_S = {"small": 4.0, "medium": 40.0, "large": 90.0, "huge": 600.0}
_BUDGET = [BUDGET_S["small"]]
CPU_TIMES: dict[int, list[float]] = {}  # id(wall list) -> CPU times of the same calls


def side_by_side(
    fns: list[Callable[[], Any]], repeats: int, warmup: int = 1, budget: float | None = None
) -> list[list[float]]:
    """Run every function ``warmup`` times, then up to ``repeats`` timed rounds.

    Rounds alternate the order of the functions so a slow drift of the
    shared VM hits xenlu and its baselines alike. Garbage is collected before
    each timed call, outside the timing. When one round would not fit the
    row's time budget (``--scale``), fewer rounds run (never fewer than 3).
    The process CPU time of each call is kept as well (:func:`cpu_of`).
    """
    t_warm = 0.0
    for _ in range(warmup):
        for f in fns:
            t0 = time.perf_counter()
            f()
            t_warm += time.perf_counter() - t0
    limit = _BUDGET[0] if budget is None else budget
    if warmup and t_warm > 0 and t_warm / warmup * repeats > limit:
        repeats = max(3, min(repeats, int(limit / (t_warm / warmup))))
    times: list[list[float]] = [[] for _ in fns]
    cpus: list[list[float]] = [[] for _ in fns]
    for r in range(repeats):
        order = list(range(len(fns)))
        if r % 2:
            order.reverse()
        for i in order:
            gc.collect()
            c0 = _cpu()
            t0 = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - t0)
            cpus[i].append(_cpu() - c0)
    for w, c in zip(times, cpus, strict=True):
        CPU_TIMES[id(w)] = c
    return times


def _cpu() -> float:
    """CPU seconds of this process and of its waited-for children."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def cpu_of(wall: list[float]) -> list[float] | None:
    return CPU_TIMES.get(id(wall))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_anon_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def traced_peak_mib(fn: Callable[[], Any]) -> tuple[float, Any]:
    """tracemalloc peak (MiB) of one call, and its result (numpy reports to tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / MiB, result


def traced_if_fast(fn: Callable[[], Any], wall: list[float], limit_s: float = 5.0) -> float | None:
    """tracemalloc peak of one call, unless the call is slow (tracing slows Python code)."""
    if statistics.median(wall) > limit_s:
        return None
    return traced_peak_mib(fn)[0]


PROFILE_DIR: list[Path | None] = [None]


def maybe_profile(rid: str, fn: Callable[[], Any]) -> None:
    """With ``--profile DIR``: one more call of ``fn`` under pyinstrument, to DIR/<rid>.txt."""
    out = PROFILE_DIR[0]
    if out is None:
        return
    try:
        from pyinstrument import Profiler
    except ImportError:
        (out / f"{rid}.txt").write_text("pyinstrument is not installed\n")
        return
    prof = Profiler(interval=0.0005)
    prof.start()
    try:
        fn()
    finally:
        prof.stop()
    (out / f"{rid}.txt").write_text(prof.output_text(unicode=True, color=False, show_all=False))


def start_watchdog(limit_gib: float) -> None:
    """End this process if its anonymous resident memory grows past ``limit_gib``.

    Anonymous memory (``RssAnon``) is what can take the machine down; pages of
    a mapped input file are page cache, counted in RSS but reclaimable (a
    10 GiB host stream mapped by a baseline is not 10 GiB of memory use).
    """
    limit = int(limit_gib * GiB)

    def watch() -> None:
        while True:
            rss = _anon_kib(os.getpid()) * 1024
            if rss > limit:
                sys.stderr.write(f"benchmark child exceeded {limit_gib} GiB RssAnon; stopped\n")
                sys.stderr.flush()
                os._exit(70)
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()


# --- inputs -----------------------------------------------------------------------


def _libxc_parts() -> dict[str, Any]:
    """Small building blocks of an HVM v3 libxc stream, from xenlu's encoders."""
    from xenlu.core.framing import BytesSink, RecordWriter

    try:
        from xenlu.testing.hostgen import cpuid_leaves as _cpuid
        from xenlu.testing.hostgen import msr_entries as _msrs
    except ImportError:  # a package from before the builder moved (compare.py runs old ones)
        from xenlu.testing.hostgen import _cpuid, _msrs  # type: ignore[attr-defined,no-redef]
    from xenlu.core.registry import Record
    from xenlu.migration.hvmctx import HVM_FILE_MAGIC, HvmContext, HvmEntry, HvmSaveHeader
    from xenlu.migration.libxc import (
        CpuidLeaf,
        CpuidPolicy,
        HvmParamEntry,
        HvmParams,
        MsrEntry,
        MsrPolicy,
        PageData,
        RecType,
        StaticDataEnd,
        X86TscInfo,
    )
    from xenlu.migration.libxc_stream import DomainHeader, ImageHeader, _write_record

    def enc(records: list[Any], head: bool = False) -> bytes:
        w = RecordWriter(BytesSink())
        if head:
            w.write(ImageHeader(version=3).pack())
            w.write(DomainHeader(type=2, page_shift=12, xen_major=4, xen_minor=17).pack())
        for r in records:
            _write_record(w, r)
        sink = w.sink
        assert isinstance(sink, BytesSink)
        return sink.getvalue()

    params = np.zeros(1, HvmParamEntry.LAYOUT.dtype)
    params["index"], params["value"] = 1, 0xFEFFF
    xtab = np.array([(0xF << 60) | 0x1234], "<u8")  # XTAB: a pfn entry without data
    unit = [
        Record(RecType.PAGE_DATA, PageData(xtab, memoryview(b""))),
        Record(RecType.X86_TSC_INFO, X86TscInfo(mode=0, khz=2_500_000, nsec=1, incarnation=0)),
        Record(RecType.HVM_PARAMS, HvmParams(params)),
    ]
    hdr = HvmSaveHeader(magic=HVM_FILE_MAGIC, version=1, changeset=0, cpuid=0xA0F11, gtsc_khz=1)
    ctx = HvmContext.build(hdr, [HvmEntry(typecode=19, instance=0, data=bytes(8))])
    head = [
        Record(RecType.X86_CPUID_POLICY, CpuidPolicy(_cpuid(CpuidLeaf))),
        Record(RecType.X86_MSR_POLICY, MsrPolicy(_msrs(MsrEntry))),
        Record(RecType.STATIC_DATA_END, StaticDataEnd()),
    ]
    tail = [Record(RecType.HVM_CONTEXT, ctx), Record(RecType.END, _end())]
    return dict(
        enc=enc,
        head=enc(head, head=True),
        unit=enc(unit),
        tail=enc(tail),
        head_records=head,
        tail_records=tail,
        PageData=PageData,
        RecType=RecType,
        Record=Record,
    )


def _end() -> Any:
    from xenlu.migration.libxc import End

    return End()


def build_small_libxc(path: Path, n_records: int) -> int:
    """HVM v3 stream: CPUID, MSR, SDE, then ``n_records`` small records, HVM_CONTEXT, END.

    The small records cycle PAGE_DATA (one XTAB pfn, 16-byte body),
    X86_TSC_INFO (24 bytes) and HVM_PARAMS (one entry, 24 bytes). The unit
    of three is encoded once by xenlu's encoder and repeated.
    """
    p = _libxc_parts()
    reps = max(1, n_records // 3)
    with open(path, "wb") as f:
        f.write(p["head"])
        f.write(p["unit"] * reps)
        f.write(p["tail"])
    return reps * 3 + 5


def build_pages_libxc(path: Path, mib: int) -> int:
    """HVM v3 stream of PAGE_DATA records of 1024 pages (4 MiB) each, written by xenlu."""
    from xenlu.core.framing import RecordWriter
    from xenlu.migration.libxc_stream import _write_record

    p = _libxc_parts()
    rng = np.random.default_rng(7)
    page_bytes = rng.integers(0, 256, 1024 * 4096, dtype=np.uint8)
    pages = memoryview(page_bytes).cast("B")
    n_rec = max(1, mib // 4)
    with open(path, "wb") as f:
        w = RecordWriter(f)
        w.write(p["head"])
        for i in range(n_rec):
            pfns = np.arange(i * 1024, (i + 1) * 1024, dtype="<u8")
            _write_record(w, p["Record"](p["RecType"].PAGE_DATA, p["PageData"](pfns, pages)))
        w.write(p["tail"])
    return n_rec + 5


def make_bench_host(host_gib: int, seed: int = 1, version: tuple[int, int] = (4, 11)) -> Any:
    from xenlu.testing.hostgen import make_host

    return make_host(version, fragmentation=1.0, seed=seed, vcpus=2, **host_shape(host_gib))


def build_lu_small(path: Path, n_records: int) -> int:
    """An LU stream of small records: a fragmented host re-split at 40-byte bodies.

    ``max_record_bytes=40`` puts one P2M entry or two ownership entries in
    each record; the host is sized so the stream has about ``n_records``.
    """
    from xenlu.lu.stream import encode_lu_to
    from xenlu.testing.hostgen import make_host

    # frames F = (m + 16) * 256; records ~ m*256 (P2M) + F/2 (ownership)
    m = max(16, int(n_records / (1.5 * 256)))
    host = make_host((4, 11), n_hvm=1, mem_mib=m, dom0_mem_mib=16, fragmentation=1.0, seed=3)
    with open(path, "wb") as f:
        encode_lu_to(host, f, max_record_bytes=40)
    return count_records(path)


def count_records(path: Path) -> int:
    from xenlu.core.framing import as_buffer, frames

    buf = as_buffer(path)
    return sum(1 for _ in frames(buf, 0, len(buf), 0))


def build_p2m_stream(path: Path, n_entries: int) -> None:
    """A structurally valid LU stream whose one HVM guest has ``n_entries`` P2M entries.

    Built from a tiny host whose P2M is replaced by a synthetic array
    (single-frame extents, type ram_rw, access rwx); encoded straight to the
    file, so only the array itself is held in memory.
    """
    from xenlu.core.registry import Record
    from xenlu.lu.records import Bulk, P2mEntry, T
    from xenlu.lu.stream import LUDomain, encode_lu_to
    from xenlu.testing.hostgen import make_host

    host = make_host((4, 11), n_hvm=1, mem_mib=16, dom0_mem_mib=16, seed=5)
    a = np.zeros(n_entries, P2mEntry.LAYOUT.dtype)
    a["gfn"] = np.arange(n_entries, dtype=np.uint64)
    a["mfn"] = a["gfn"] + np.uint64(0x100000)
    a["nr_pages"] = 1
    a["access"] = 7
    dom = host.domains[1]
    recs = [Record(r.type, Bulk(a)) if r.type == T.LU_P2M else r for r in dom.records]
    host.domains[1] = LUDomain(recs)
    with open(path, "wb") as f:
        encode_lu_to(host, f)


def code_fingerprint(scale: str, cfg: dict[str, Any] | None = None) -> str:
    """A hash of xenlu's sources, this script and the scale: inputs are rebuilt when it changes."""
    import hashlib

    h = hashlib.sha256((scale + json.dumps(cfg or SCALES[scale], sort_keys=True)).encode())
    for f in [*sorted((XENLU_ROOT / "xenlu").rglob("*.py")), Path(__file__).resolve()]:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def build_inputs(work: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Write every input file of one scale into ``work``; return their description."""
    from xenlu.lu.stream import encode_lu_to

    meta: dict[str, Any] = {}
    t0 = time.perf_counter()
    host = make_bench_host(cfg["host_gib"])
    meta["host_gen_s"] = time.perf_counter() - t0
    with open(work / "host.lu", "wb") as f:
        meta["host_bytes"] = encode_lu_to(host, f)
    meta["host_entries"] = {
        "LU_P2M": int(sum(len(d.p2m) for d in host.domains)),
        "LU_PAGE_OWNERSHIP": int(sum(len(d.ownership) for d in host.domains)),
    }
    del host
    gc.collect()
    meta["small_libxc_records"] = build_small_libxc(work / "small.libxc", cfg["small_records"])
    meta["tiny_libxc_records"] = build_small_libxc(work / "tiny.libxc", 3)
    meta["pages_libxc_records"] = build_pages_libxc(work / "pages.libxc", cfg["page_mib"])
    meta["lu_small_records"] = build_lu_small(work / "small.lu", cfg["lu_small_records"])
    build_p2m_stream(work / "p2m.lu", cfg["p2m_entries"])
    for name in ("host.lu", "small.libxc", "tiny.libxc", "pages.libxc", "small.lu", "p2m.lu"):
        meta[f"size:{name}"] = (work / name).stat().st_size
    return meta


# --- rows -------------------------------------------------------------------------

Row = dict[str, Any]


def row(
    rid: str,
    operation: str,
    size: str,
    nbytes: int,
    xenlu: list[float],
    baseline_name: str,
    baseline: list[float] | None,
    goal: float | None,
    goal_text: str,
    **extra: Any,
) -> Row:
    x_med, x_spread = stats(xenlu)
    r: Row = dict(
        id=rid,
        operation=operation,
        size=size,
        bytes=nbytes,
        xenlu_s=x_med,
        xenlu_spread=x_spread,
        xenlu_times=xenlu,
        baseline=baseline_name,
        goal=goal,
        goal_text=goal_text,
    )
    cx = cpu_of(xenlu)
    if cx:
        r["xenlu_cpu_s"] = statistics.median(cx)
    if baseline is not None:
        b_med, b_spread = stats(baseline)
        r.update(baseline_s=b_med, baseline_spread=b_spread, baseline_times=baseline)
        r["ratio"] = b_med / x_med if x_med > 0 else float("inf")
        r["met"] = None if goal is None else r["ratio"] >= goal
        cb = cpu_of(baseline)
        if cx and cb and statistics.median(cx) > 0:
            r["baseline_cpu_s"] = statistics.median(cb)
            r["cpu_ratio"] = statistics.median(cb) / statistics.median(cx)
    r["loadavg"] = os.getloadavg()[0]
    r.update(extra)
    return r


def skipped(rid: str, operation: str, why: str, **extra: Any) -> Row:
    return dict(id=rid, operation=operation, skipped=why, **extra)


def _same_file(a: Path, b: Path, block: int = 64 * MiB) -> bool:
    """Byte equality of two files, a block at a time."""
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(block), fb.read(block)
            if x != y:
                return False
            if not x:
                return True


def _mapped(path: Path) -> tuple[Any, mmap.mmap]:
    f = open(path, "rb")  # noqa: SIM115 - closed by the caller with the mapping
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return f, m


def row_lu_verify(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """LU structural verify (framing, record checks, section crc32c) vs memcpy and crc32c.

    Like with like: the goal row verifies the very mapping the baselines read
    (``verify(m)``). Opening a file costs extra whatever reads it — a fresh
    mapping's page tables are populated as it is first touched — so
    ``verify(path)``, which maps the file on each call, is compared with the
    cheapest full read of a freshly mapped file (one ``np.max`` over it).
    ``decode_lu``, which also builds the stream's objects, is beside them.

    Threads: xenlu before issue 12 checked large records and section
    checksums (and decoded sections of large streams) on a pool of its own;
    since, the caller passes an executor. Like with like, a xenlu that takes
    one gets a two-thread executor here.
    """
    import inspect
    from concurrent.futures import ThreadPoolExecutor

    import crc32c

    from xenlu.api import verify
    from xenlu.lu.stream import decode_lu, verify_lu

    path = work / "host.lu"
    n = path.stat().st_size
    f, m = _mapped(path)
    src = np.frombuffer(m, dtype=np.uint8)
    dst = np.empty(n, np.uint8)
    pool = ThreadPoolExecutor(2)
    takes_executor = "executor" in inspect.signature(verify_lu).parameters
    threads: dict[str, Any] = {"executor": pool} if takes_executor else {}

    def xen() -> None:
        if takes_executor:
            verify_lu(m, **threads)
        else:
            verify(m, "lu")

    def xen_file() -> None:
        if takes_executor:
            verify_lu(path, **threads)
        else:
            verify(path, "lu")

    def dec() -> None:
        decode_lu(m, **threads)

    def copy() -> None:
        np.copyto(dst, src)

    def crc() -> None:
        crc32c.crc32c(m)

    def fresh_map_read() -> None:
        g, mm = _mapped(path)
        a = np.frombuffer(mm, dtype=np.uint8, count=n & ~7).view(np.uint64)
        a.max()
        del a
        mm.close()
        g.close()

    tx, txf, td, tc, tk, tfm = side_by_side(
        [xen, xen_file, dec, copy, crc, fresh_map_read], cfg["repeats"]
    )
    extra_mib = traced_if_fast(xen_file, txf)
    maybe_profile("lu_verify", xen)
    pool.shutdown()
    src = np.empty(0, np.uint8)  # drop the view before closing the mapping
    m.close()
    f.close()
    size = f"{cfg['host_gib']} GiB host, {_mb(n)}"
    common = dict(tracemalloc_peak_mib=extra_mib, peak_rss_mib=peak_rss_mib(), project=True)
    return [
        row(
            "lu_verify_memcpy",
            "LU structural verify (verify of the mapping) vs np.copyto",
            size,
            n,
            tx,
            "np.copyto from the same mapping into a preallocated buffer",
            tc,
            0.5,
            "≥ 0.5× memcpy throughput",
            **common,
        ),
        row(
            "lu_verify_file",
            "LU structural verify of a file (verify(path): maps it each call)",
            size,
            n,
            txf,
            "np.max over a freshly mapped copy of the file",
            tfm,
            None,
            "report",
            **common,
        ),
        row(
            "lu_verify_crc",
            "LU structural verify vs crc32c of the same bytes",
            size,
            n,
            tx,
            "crc32c.crc32c (1 thread)",
            tk,
            None,
            "report",
            **common,
        ),
        row(
            "lu_decode_memcpy",
            "LU decode (decode_lu: the same checks plus the objects) vs np.copyto",
            size,
            n,
            td,
            "np.copyto from the same mapping into a preallocated buffer",
            tc,
            None,
            "report",
            peak_rss_mib=peak_rss_mib(),
            project=True,
        ),
    ]


def _struct_loop(mv: memoryview, start: int) -> int:
    """The perf-baselines framing loop: unpack_from + zero-copy body slice."""
    up = struct.Struct("<II").unpack_from
    off, n, k = start, len(mv), 0
    while off < n:
        _t, ln = up(mv, off)
        _body = mv[off + 8 : off + 8 + ln]
        off += 8 + ((ln + 7) & ~7)
        k += 1
    return k


def row_framing(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """Per-record cost of xenlu's verify path on small-record streams vs a struct loop."""
    from xenlu.api import verify
    from xenlu.core.framing import as_buffer, frames

    out: list[Row] = []
    for rid, name, fmt, start, nrec in (
        ("framing_libxc", "small.libxc", "libxc", 40, meta["small_libxc_records"]),
        ("framing_lu", "small.lu", "lu", 0, meta["lu_small_records"]),
    ):
        path = work / name
        f, m = _mapped(path)
        mv = memoryview(m)

        def xen(path: Path = path, fmt: str = fmt) -> None:
            verify(path, fmt)

        def base(mv: memoryview = mv, start: int = start) -> None:
            _struct_loop(mv, start)

        def framing_only(mv: memoryview = mv, start: int = start) -> None:
            buf = as_buffer(mv)
            for _ in frames(buf, start, len(buf), 0):
                pass

        # Cheap rows, noisy machine: more rounds than the scale default.
        tx, tb, tf = side_by_side([xen, base, framing_only], cfg["repeats"] + 4)
        extra_mib = traced_if_fast(xen, tx)
        maybe_profile(rid, xen)
        mv.release()
        m.close()
        f.close()
        x_med = statistics.median(tx)
        us = x_med / nrec * 1e6
        r = row(
            rid,
            f"per-record verify, small records ({fmt})",
            f"{nrec:,} records, {_mb(path.stat().st_size)}",
            path.stat().st_size,
            tx,
            "struct.unpack_from loop + body slice",
            tb,
            0.5,
            "time ≤ 2× loop and ≤ 1 µs/rec",
            records=nrec,
            xenlu_us_per_record=us,
            baseline_us_per_record=statistics.median(tb) / nrec * 1e6,
            frames_only_us_per_record=statistics.median(tf) / nrec * 1e6,
            tracemalloc_peak_mib=extra_mib,
            peak_rss_mib=peak_rss_mib(),
        )
        r["met"] = bool(r["ratio"] >= 0.5 and us <= 1.0)
        out.append(r)
    return out


def row_encode(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """encode_lu_to(host, file) vs one f.write of the same bytes to the same directory."""
    from xenlu.lu.stream import encode_lu_to

    host = make_bench_host(cfg["host_gib"])
    data = np.fromfile(work / "host.lu", dtype=np.uint8)
    out_x, out_b = work / "enc-xenlu.out", work / "enc-raw.out"

    def xen() -> None:
        with open(out_x, "wb") as f:
            encode_lu_to(host, f)

    def raw() -> None:
        with open(out_b, "wb") as f:
            f.write(data)

    tx, tb = side_by_side([xen, raw], cfg["repeats"])
    same = _same_file(out_x, out_b)
    extra_mib = traced_if_fast(xen, tx)
    maybe_profile("lu_encode", xen)
    out_x.unlink()
    out_b.unlink()
    return [
        row(
            "lu_encode",
            "LU encode to a file (encode_lu_to) vs raw f.write",
            f"{cfg['host_gib']} GiB host, {_mb(data.nbytes)}",
            int(data.nbytes),
            tx,
            "f.write(ndarray) of the same bytes",
            tb,
            0.5,
            "≥ 0.5× raw write",
            byte_identical=same,
            tracemalloc_peak_mib=extra_mib,
            peak_rss_mib=peak_rss_mib(),
            project=True,
        )
    ]


def row_construct(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """decode_lu of a P2M-heavy stream vs construct Array-of-Struct on a slice, scaled."""
    import construct as cs

    from xenlu.lu.records import P2mEntry, T
    from xenlu.lu.stream import decode_lu

    path = work / "p2m.lu"
    n_entries = cfg["p2m_entries"]
    k = cfg["construct_slice"]
    entry = P2mEntry.LAYOUT.construct  # the same declaration's construct Struct
    naive = cs.Struct(
        "count" / cs.Int32ul,
        "rsvd" / cs.Int32ul,
        "entries" / cs.Array(cs.this.count, entry),
    )
    # A real slice of the stream's P2M entries: the first k, behind a count header.
    stream = decode_lu(path)
    first = stream.domains[1].chunks(T.LU_P2M)[0]  # one record's view, no concatenation
    body = struct.pack("<II", k, 0) + first[:k].tobytes()
    del stream, first
    check = naive.parse(body)
    assert len(check.entries) == k

    def xen() -> None:
        decode_lu(path)

    def con() -> None:
        naive.parse(body)

    reps = max(3, cfg["repeats"] - 2)
    tx, tc = side_by_side([xen, con], reps)
    maybe_profile("bulk_decode_construct", xen)
    scale = n_entries / k
    tc_scaled = [t * scale for t in tc]
    return [
        row(
            "bulk_decode_construct",
            "bulk decode (decode_lu, P2M) vs construct Array(Struct)",
            f"{n_entries / 1e6:g} M P2M entries (construct: {k:,} parsed, ×{scale:.0f})",
            path.stat().st_size,
            tx,
            "construct Array(Struct) parse, scaled linearly",
            tc_scaled,
            100.0,
            "≥ 100× (expected)",
            construct_us_per_entry=statistics.median(tc) / k * 1e6,
            xenlu_ns_per_entry=statistics.median(tx) / n_entries * 1e9,
            peak_rss_mib=peak_rss_mib(),
        )
    ]


def _xenlu_verify_cmd(path: Path) -> list[str]:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from xenlu.api import verify; verify(sys.argv[2], 'libxc')"
    )
    return [sys.executable, "-c", code, str(XENLU_ROOT), str(path)]


#: The head of every ``python -c`` that runs the CLI of the package under test
#: (``sys.argv[1]``): ``main`` is ``xenlu.cli.app``'s, or ``xenlu.cli``'s in a
#: revision from before the subpackage move.
_CLI_MAIN = (
    "import sys; sys.path.insert(0, sys.argv[1])\n"
    "try:\n    from xenlu.cli.app import main\n"
    "except ImportError:\n    from xenlu.cli import main\n"
)


def _xenlu_cli_cmd(path: Path) -> list[str] | None:
    """`xenlu verify -q --format libxc FILE` when the CLI exists and works."""
    import importlib.util

    try:
        found = importlib.util.find_spec("xenlu.cli.app")
    except ModuleNotFoundError:  # before the subpackage move: xenlu.cli is a module
        found = importlib.util.find_spec("xenlu.cli")
    if found is None:
        return None
    code = _CLI_MAIN + "sys.exit(main(['verify', '-q', '--format', 'libxc', sys.argv[2]]))"
    return [sys.executable, "-c", code, str(XENLU_ROOT), str(path)]


#: Environment of the verifier subprocesses: bytecode is cached (in the work
#: directory, never next to the sources), as for installed software, even when
#: the caller runs with PYTHONDONTWRITEBYTECODE (both sides are treated alike).
SUB_ENV: dict[str, str] = {}


def _sub_env(work: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    env.update(extra or {})
    return env


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env or SUB_ENV or None, capture_output=True, text=True, check=False)
    lines = p.stderr.strip().splitlines()
    return time.perf_counter() - t0, p.returncode, lines[-1] if lines else ""


def row_xen(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """xenlu verify vs Xen's verify-stream-v2, both as subprocesses, same files."""
    from xenlu.api import verify

    tools = os.environ.get("XEN_TOOLS_PYTHON")
    ops = [
        ("xen_small", "libxc verify vs Xen verify-stream-v2, small records", "small.libxc"),
        ("xen_pages", "libxc verify vs Xen verify-stream-v2, PAGE_DATA", "pages.libxc"),
    ]
    if not tools:
        why = "XEN_TOOLS_PYTHON unset (point it at Xen's tools/python, 4.14+)"
        return [skipped(rid, op, why) for rid, op, _ in ops]
    script = Path(tools) / "scripts" / "verify-stream-v2"
    SUB_ENV.update(_sub_env(work))
    env = _sub_env(work, {"PYTHONPATH": tools})

    def xen_cmd(p: Path) -> list[str]:
        return [sys.executable, str(script), "-q", "-f", "libxc", "-i", str(p)]

    tiny = work / "tiny.libxc"
    cli = _xenlu_cli_cmd(tiny)
    how = "xenlu.api.verify in `python -c`"
    mk: Callable[[Path], list[str]] = _xenlu_verify_cmd
    if cli is not None and _run(cli)[1] == 0:
        how = "`xenlu verify -q --format libxc` (xenlu.cli.app)"
        mk = _xenlu_cli_cmd  # type: ignore[assignment]
    out: list[Row] = []
    reps = cfg["xen_repeats"]
    # Start-up cost of each side, from a stream of 8 records.
    t_tiny = side_by_side([lambda: _run(mk(tiny)), lambda: _run(xen_cmd(tiny), env)], max(3, reps))
    st_x, st_b = statistics.median(t_tiny[0]), statistics.median(t_tiny[1])
    for rid, op, name in ops:
        path = work / name
        nrec = meta["small_libxc_records" if name == "small.libxc" else "pages_libxc_records"]
        rcs: dict[str, set[int]] = {"xenlu": set(), "xen": set()}
        msgs: list[str] = []

        def a(path: Path = path, rcs: dict[str, set[int]] = rcs, msgs: list[str] = msgs) -> None:
            _t, rc, msg = _run(mk(path))
            rcs["xenlu"].add(rc)
            if rc:
                msgs.append(f"xenlu: {msg}")

        def b(path: Path = path, rcs: dict[str, set[int]] = rcs, msgs: list[str] = msgs) -> None:
            _t, rc, msg = _run(xen_cmd(path), env)
            rcs["xen"].add(rc)
            if rc:
                msgs.append(f"xen: {msg}")

        tx, tb = side_by_side([a, b], reps)
        # in-process xenlu verify, for reference
        t_in = side_by_side([lambda path=path: verify(path, "libxc")], 3)[0]
        size = path.stat().st_size
        x_med, b_med = statistics.median(tx), statistics.median(tb)
        net_x, net_b = max(x_med - st_x, 1e-9), max(b_med - st_b, 1e-9)
        small = name == "small.libxc"
        r = row(
            rid,
            op,
            f"{nrec:,} records, {_mb(size)}",
            size,
            tx,
            "verify-stream-v2 -q (subprocess)",
            tb,
            4.0 if small else 1.0,
            "≥ 4× per record (start-up subtracted)" if small else "≥ 1× (wall time)",
            records=nrec,
            xenlu_how=how,
            startup_s={"xenlu": st_x, "xen": st_b},
            net_ratio=net_b / net_x,
            xenlu_us_per_record=net_x / nrec * 1e6,
            xen_us_per_record=net_b / nrec * 1e6,
            xenlu_in_process_s=statistics.median(t_in),
            exit_codes={k: sorted(v) for k, v in rcs.items()},
            errors=msgs[:2],
            peak_rss_mib=peak_rss_mib(),
        )
        if not small and net_b > net_x:
            # stream size at which the start-up difference is paid back
            r["crossover_bytes"] = (st_x - st_b) / ((net_b - net_x) / size) if st_x > st_b else 0
        valid = rcs["xenlu"] == {0} and rcs["xen"] == {0}
        r["met"] = valid and (r["net_ratio"] >= 4.0 if small else r["ratio"] >= 1.0)
        if not valid:
            r["note"] = "a verifier rejected the stream: " + "; ".join(msgs[:2])
        out.append(r)
    return out


def _import(modname: str, attr: str) -> Any:
    import importlib

    try:
        mod = importlib.import_module(modname)
    except Exception as exc:  # the module is being written concurrently
        return exc
    fn = getattr(mod, attr, None)
    return fn if fn is not None else AttributeError(f"{modname} has no {attr}")


def row_validate(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """xenlu.host.validation(stream) vs np.sort of the owned-frame column."""
    op = "semantic validation vs np.sort of owned frames"
    fn = _import("xenlu.host.validation", "validate")
    if isinstance(fn, Exception):
        return [skipped("validate_sort", op, f"skipped: not available ({fn!s:.80})")]
    from xenlu.lu.stream import decode_lu

    path = work / "host.lu"
    stream = decode_lu(path)
    col = np.concatenate([d.ownership["start_mfn"] for d in stream.domains])

    def xen() -> Any:
        return fn(stream)

    def srt() -> None:
        np.sort(col)

    try:
        report = xen()
    except Exception as exc:
        return [skipped("validate_sort", op, f"skipped: validate raised {exc!r:.100}")]
    tx, tb = side_by_side([xen, srt], max(3, cfg["repeats"] - 2), warmup=0)
    extra_mib = traced_if_fast(xen, tx)
    maybe_profile("validate_sort", xen)
    findings = getattr(report, "findings", None)
    return [
        row(
            "validate_sort",
            op,
            f"{cfg['host_gib']} GiB host, {len(col) / 1e6:.1f} M owned extents",
            path.stat().st_size,
            tx,
            "np.sort(ownership start_mfn column)",
            tb,
            1 / 3,
            "time ≤ 3× np.sort",
            findings=None if findings is None else len(findings),
            tracemalloc_peak_mib=extra_mib,
            peak_rss_mib=peak_rss_mib(),
            project=True,
        )
    ]


def _convert(fn: Callable[..., Any], stream: Any) -> Any:
    last: Exception | None = None
    for to in ((4, 15), "4.15"):
        try:
            return fn(stream, to=to)
        except TypeError as exc:
            last = exc
    assert last is not None
    raise last


def row_upgrade(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """compat.convert(stream, to=4.15) of the decoded 4.11 host vs decode_lu alone."""
    op = "upgrade 4.11→4.15 (compat.convert) vs decode alone"
    fn = _import("xenlu.host.compat", "convert")
    if isinstance(fn, Exception):
        return [skipped("upgrade", op, f"skipped: not available ({fn!s:.80})")]
    from xenlu.lu.stream import decode_lu

    path = work / "host.lu"
    stream = decode_lu(path)
    try:
        _convert(fn, stream)
    except Exception as exc:
        return [skipped("upgrade", op, f"skipped: convert raised {exc!r:.100}")]

    def up() -> None:
        _convert(fn, stream)

    def dec() -> None:
        decode_lu(path)

    tx, tb = side_by_side([up, dec], max(3, cfg["repeats"] - 2))
    extra_mib = traced_if_fast(up, tx)
    maybe_profile("upgrade", up)
    return [
        row(
            "upgrade",
            op,
            f"{cfg['host_gib']} GiB host, {_mb(path.stat().st_size)}",
            path.stat().st_size,
            tx,
            "decode_lu of the same stream",
            tb,
            1 / 1.5,
            "time ≤ 1.5× decode",
            tracemalloc_peak_mib=extra_mib,
            peak_rss_mib=peak_rss_mib(),
            project=True,
        )
    ]


def row_hostgen(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """make_host of the fragmented host vs the numpy floor (allocate + permute)."""
    from xenlu.lu.records import OwnershipEntry, P2mEntry

    gib = cfg["host_gib"]
    frames = gib * 1024 * 256
    rng = np.random.default_rng(0)

    def gen() -> None:
        make_bench_host(gib)

    def floor() -> None:
        a = np.zeros(frames, OwnershipEntry.LAYOUT.dtype)
        b = np.zeros(frames, P2mEntry.LAYOUT.dtype)
        a["start_mfn"] = rng.permutation(frames)
        b["mfn"] = a["start_mfn"]

    tx, tb = side_by_side([gen, floor], 3)
    maybe_profile("hostgen", gen)
    out = [
        row(
            "hostgen",
            "hostgen make_host (fragmented) vs numpy floor",
            f"{gib} GiB host, {frames / 1e6:.1f} M frames",
            meta["host_bytes"],
            tx,
            "np.zeros of both tables + one permutation",
            tb,
            None,
            "report",
            frames_per_s=frames / statistics.median(tx),
            peak_rss_mib=peak_rss_mib(),
            project=True,
        )
    ]
    out.append(row_strategies(cfg))
    return out


def row_strategies(cfg: dict[str, Any]) -> Row:
    """hosts() strategy: time to draw a 4.11 host with >= 20 domains (issue 6: < 1 s)."""
    op = "hosts() strategy, 4.11 host with ≥ 20 domains"
    hosts = _import("xenlu.testing.strategies", "hosts")
    if isinstance(hosts, Exception):
        return skipped("strategy_hosts", op, f"skipped: not available ({hosts!s:.80})")
    try:
        from hypothesis import HealthCheck, given, settings
    except ImportError:
        return skipped("strategy_hosts", op, "skipped: hypothesis not installed")
    strat = None
    for kwargs in ({"min_domains": 20, "max_domains": 24}, {"min_domains": 20}, {}):
        try:
            strat = hosts((4, 11), **kwargs)
            break
        except TypeError:
            continue
    if strat is None:
        return skipped("strategy_hosts", op, "skipped: hosts() signature not recognised")
    drawn: list[float] = []
    sizes: list[int] = []
    n = 10

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strat)
    def draw(h: Any) -> None:
        sizes.append(len(getattr(h, "domains", ())))

    t0 = time.perf_counter()
    try:
        draw()
    except Exception as exc:
        return skipped("strategy_hosts", op, f"skipped: drawing raised {exc!r:.100}")
    total = time.perf_counter() - t0
    per = total / max(1, len(sizes))
    drawn.append(per)
    big = sum(1 for s in sizes if s >= 20)
    return dict(
        id="strategy_hosts",
        operation=op,
        size=f"{len(sizes)} hosts drawn, {big} with ≥ 20 domains",
        bytes=0,
        xenlu_s=per,
        xenlu_spread=0.0,
        baseline="—",
        goal_text="< 1 s per host",
        met=per < 1.0 and big > 0,
        peak_rss_mib=peak_rss_mib(),
    )


def row_memory(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """decode_lu of the P2M stream from its file: extra memory beyond the mapping."""
    from xenlu.lu.records import T
    from xenlu.lu.stream import decode_lu

    path = work / "p2m.lu"
    size = path.stat().st_size
    n = cfg["p2m_entries"]
    gc.collect()
    objs0 = len(gc.get_objects())
    anon0 = rss_anon_mib()
    rss0 = peak_rss_mib()
    t0 = time.perf_counter()
    tm_peak, stream = traced_peak_mib(lambda: decode_lu(path))
    t_traced = time.perf_counter() - t0
    anon1 = rss_anon_mib()
    gc.collect()
    objs = len(gc.get_objects()) - objs0
    n_p2m_records = len(stream.domains[1].chunks(T.LU_P2M))
    del stream
    gc.collect()
    # untraced timing
    tx = side_by_side([lambda: decode_lu(path)], 3)[0]
    maybe_profile("p2m_decode_memory", lambda: decode_lu(path))
    allowance = 0.10 * size / MiB + 64
    extra = max(tm_peak, anon1 - anon0)
    return [
        dict(
            id="p2m_decode_memory",
            operation=f"decode {n / 1e6:g} M P2M entries from a file: extra memory",
            size=f"{_mb(size)} stream, {n_p2m_records} bulk records",
            bytes=size,
            xenlu_s=statistics.median(tx),
            xenlu_spread=stats(tx)[1],
            xenlu_times=tx,
            baseline="allowance: 10% of stream + 64 MiB",
            goal_text="extra < 10% + 64 MiB; no per-entry objects",
            tracemalloc_peak_mib=tm_peak,
            rss_anon_delta_mib=anon1 - anon0,
            extra_mib=extra,
            extra_pct_of_stream=100.0 * extra * MiB / size,
            allowance_mib=allowance,
            gc_objects_retained=objs,
            decode_traced_s=t_traced,
            peak_rss_before_mib=rss0,
            peak_rss_mib=peak_rss_mib(),
            met=bool(extra < allowance and objs < 10_000),
        )
    ]


def _bulk_arrays(stream: Any) -> list[np.ndarray]:
    """Every bulk array of an LU stream (the bytes a JSON form must carry)."""
    import dataclasses

    out: list[np.ndarray] = []
    for sec in stream.sections:
        for r in sec.records:
            if not dataclasses.is_dataclass(r.value):
                continue
            for f in dataclasses.fields(r.value):
                v = getattr(r.value, f.name)
                if isinstance(v, np.ndarray) and len(v):
                    out.append(v)
    return out


def _json_of_arrays(arrays: list[np.ndarray]) -> str:
    """The baseline: json.dumps of every bulk array's bytes (base64), nothing else."""
    import base64

    return json.dumps([base64.b64encode(np.ascontiguousarray(a).data).decode() for a in arrays])


def row_view(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """xenlu dump / build / diff (issue 15) of the host stream."""
    import io

    from xenlu.lu.stream import decode_lu
    from xenlu.tools.jsonform import build, dump_to, loads, to_json
    from xenlu.tools.streamdiff import diff_streams

    path = work / "host.lu"
    size = path.stat().st_size
    where = f"{cfg['host_gib']} GiB host, {_mb(size)}"
    arrays = _bulk_arrays(decode_lu(path))
    text_box: list[str] = []

    def dump() -> None:
        buf = io.StringIO()
        dump_to(to_json(decode_lu(path), inline_max=64), buf)
        text_box[:] = [buf.getvalue()]

    def base_dump() -> None:
        _json_of_arrays(arrays)

    # Issue 15: the dump is written "in well under the time of validate" (both
    # decode the file first, as `xenlu dump` and `xenlu validate` do).
    from xenlu.host.validation import validate

    def decode_validate() -> None:
        validate(decode_lu(path))

    tx, tb, tv = side_by_side([dump, base_dump, decode_validate], max(3, cfg["repeats"] - 2))
    validate_s = statistics.median(tv)
    dump_mib = traced_if_fast(dump, tx)
    maybe_profile("dump", dump)
    text = text_box[0]
    rows = [
        row(
            "dump",
            "xenlu dump (decode + JSON form + text) vs json.dumps of the bulk arrays' bytes",
            where,
            size,
            tx,
            "json.dumps([base64(array bytes) …]) of the same arrays",
            tb,
            1 / 3,
            "time ≤ 3× json.dumps of the arrays' bytes",
            json_bytes=len(text),
            validate_s=validate_s,
            dump_vs_validate=statistics.median(tx) / validate_s,
            tracemalloc_peak_mib=dump_mib,
            peak_rss_mib=peak_rss_mib(),
            project=True,
        )
    ]

    def bld() -> None:
        build(loads(text))

    def base_build() -> None:
        json.loads(text)

    assert build(loads(text)) == path.read_bytes()
    tx, tb = side_by_side([bld, base_build], max(3, cfg["repeats"] - 2))
    maybe_profile("build", bld)
    rows.append(
        row(
            "build",
            "xenlu build (JSON → stream, recompute, verify) vs json.loads of the same text",
            where,
            size,
            tx,
            "json.loads of the dump text",
            tb,
            1 / 4,
            "time ≤ 4× json.loads",
            json_bytes=len(text),
            tracemalloc_peak_mib=traced_if_fast(bld, tx),
            peak_rss_mib=peak_rss_mib(),
            project=True,
        )
    )
    from xenlu.host.compat import convert

    old = decode_lu(path)
    new, _ = convert(old, "4.15")
    keys = [a for a in arrays if a.dtype.names]

    def dif() -> None:
        diff_streams(old, new)

    def base_diff() -> None:
        for a in keys:
            np.sort(a[a.dtype.names[0]])

    tx, tb = side_by_side([dif, base_diff], max(3, cfg["repeats"] - 2))
    maybe_profile("diff", dif)
    rows.append(
        row(
            "diff",
            "xenlu diff of the host against its 4.15 upgrade vs np.sort of the key columns",
            where,
            size,
            tx,
            "np.sort of every bulk array's first column (one stream)",
            tb,
            1 / 6,
            "time ≤ 6× the sort",
            differences=len(diff_streams(old, new)),
            tracemalloc_peak_mib=traced_if_fast(dif, tx),
            peak_rss_mib=peak_rss_mib(),
            project=True,
        )
    )
    return rows


#: Inputs of the pipe rows (issue 18), by the scale's host size: an LU host
#: of this many GiB of guest RAM (≈ 10 MiB of stream per GiB: ≥ 300 MiB,
#: bulk heavy, from --scale medium on) and a libxc stream of this many MiB
#: of PAGE_DATA (≥ 1 GiB from medium on).
def pipe_sizes(host_gib: int) -> tuple[int, int]:
    return (4, 64) if host_gib <= 4 else (32, 1024)


def _pipe_inputs(work: Path, host_gib: int) -> tuple[Path, Path]:
    """The pipe rows' streams, built once per work directory."""
    gib, mib = pipe_sizes(host_gib)
    lu, xc = work / f"pipe-{gib}g.lu", work / f"pipe-{mib}m.libxc"
    if not lu.exists():
        from xenlu.lu.stream import encode_lu_to

        host = make_bench_host(gib)
        with open(f"{lu}.tmp", "wb") as f:
            encode_lu_to(host, f)
        del host
        gc.collect()
        os.replace(f"{lu}.tmp", lu)
    if not xc.exists():
        build_pages_libxc(Path(f"{xc}.tmp"), mib)
        os.replace(f"{xc}.tmp", xc)
    return lu, xc


def _cli_peak_anon_mib(path: Path) -> tuple[float, int]:
    """``cat FILE | xenlu verify -q -`` in a child: its peak anonymous memory
    (RssAnon of /proc/PID/status, sampled every 5 ms) and exit code."""
    code = _CLI_MAIN + "sys.exit(main(['verify', '-q', '-']))"
    cat = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(XENLU_ROOT)], stdin=cat.stdout, env=SUB_ENV or None
    )
    assert cat.stdout is not None
    cat.stdout.close()
    peak = 0.0
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        peak = max(peak, int(line.split()[1]) / 1024.0)
        except OSError:
            break
        time.sleep(0.005)
    cat.wait()
    return peak, child.wait()


def row_pipe_verify(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """Verify of a stream read from a pipe (``xenlu.verify_stream``: the
    incremental decoder, bounded memory) vs a plain read of the same pipe into
    a preallocated buffer; and ``cat FILE | xenlu verify -``'s peak anonymous
    memory (goal ≤ 64 MiB), for a bulk-heavy LU stream and a PAGE_DATA libxc
    stream. Each call reads a fresh ``cat FILE`` pipe (the page cache is warm
    after the warm-up round). The two run side by side, at least seven rounds
    (a pipe's speed swings with the shared machine's load); besides the ratio
    of the medians the row gives the median of the rounds' own ratios
    (``pair_ratio``: each round's xenlu and plain read ran back to back, so a
    slow spell hits both) and the process CPU time of each."""
    from xenlu.feed.decoder import verify_stream

    SUB_ENV.update(_sub_env(work))
    lu, xc = _pipe_inputs(work, cfg["host_gib"])
    buf = bytearray(1 << 20)
    rows: list[Row] = []
    for rid, path, what in (
        ("pipe_verify_lu", lu, "bulk-heavy LU stream"),
        ("pipe_verify_libxc", xc, "PAGE_DATA libxc stream"),
    ):
        n = path.stat().st_size

        def plain(path: Path = path) -> None:
            with subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE, bufsize=0) as p:
                assert p.stdout is not None
                with memoryview(buf) as mv:
                    while p.stdout.readinto(mv):
                        pass

        def xen(path: Path = path) -> None:
            with subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE, bufsize=0) as p:
                verify_stream(p.stdout)

        tx, tb = side_by_side([xen, plain], max(7, cfg["repeats"]))
        pairs = [b / x for x, b in zip(tx, tb, strict=True) if x > 0]
        anon, rc = _cli_peak_anon_mib(path)
        rows.append(
            row(
                rid,
                f"verify of a {what} read from a pipe (verify_stream) vs a plain read",
                _mb(n),
                n,
                tx,
                "readinto a preallocated 1 MiB buffer from the same pipe (cat FILE |)",
                tb,
                0.5,
                "≥ 0.5× a plain read of the pipe",
                pair_ratio=statistics.median(pairs) if pairs else None,
                cli_peak_anon_mib=anon,
                cli_rc=rc,
                anon_goal_mib=64,
                anon_met=bool(rc == 0 and anon <= 64),
                peak_rss_mib=peak_rss_mib(),
            )
        )
    return rows


ROWS: dict[str, Callable[[Path, dict[str, Any], dict[str, Any]], list[Row]]] = {
    "lu_verify": row_lu_verify,
    "framing": row_framing,
    "encode": row_encode,
    "construct": row_construct,
    "xen": row_xen,
    "validate": row_validate,
    "upgrade": row_upgrade,
    "hostgen": row_hostgen,
    "memory": row_memory,
    "view": row_view,
    "pipe": row_pipe_verify,
}


# --- the huge scale: a 128-domain fully fragmented host, streamed to disk (issue 14) ----

HUGE_DOMAINS = 128  # PV dom0 + 127 HVM guests, every domain the same size
HUGE_VERSION = (4, 15)


def huge_shape(host_gib: int) -> dict[str, Any]:
    """The host that matters: 128 domains, every frame its own P2M and ownership extent.

    ``make_host`` permutes all extents over machine memory, so with
    ``fragmentation=1.0`` the MFNs are a random permutation of the frames.
    """
    mib = host_gib * 1024 // HUGE_DOMAINS
    return dict(
        n_hvm=HUGE_DOMAINS - 1,
        mem_mib=mib,
        dom0_mem_mib=mib,
        vcpus=2,
        fragmentation=1.0,
        seed=1,
    )


def _huge_host(work: Path, gib: int) -> Path:
    return work / f"host-{gib}g.lu"


def _given_host(link: Path, src: Path, gib: int) -> dict[str, Any]:
    """``--huge-host G=FILE``: FILE (written by ``write_host`` with
    :func:`huge_shape`) linked into the workdir as the G GiB host, not
    written again (the finally of :func:`main` removes only the link)."""
    src = src.resolve()
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(src)
    print(f"  host {gib} GiB: {src} (given, not regenerated)", file=sys.stderr, flush=True)
    return dict(
        bytes=src.stat().st_size,
        gen_s=None,
        path=link.name,
        frames=gib * 1024 * 256,
        domains=HUGE_DOMAINS,
        shape=huge_shape(gib),
        version=f"{HUGE_VERSION[0]}.{HUGE_VERSION[1]}",
        given=str(src),
    )


def build_huge_inputs(work: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Stream each host to disk with ``xenlu.testing.hostgen.write_host``, then the adversarial
    shapes.

    Each host is written by a child process of its own, so its peak RSS
    (``ru_maxrss``) is its own.
    """
    meta: dict[str, Any] = {"hosts": {}}
    given: dict[str, str] = cfg.get("huge_hosts") or {}
    for gib in cfg["huge_gibs"]:
        path = _huge_host(work, gib)
        if str(gib) in given:
            meta["hosts"][str(gib)] = _given_host(path, Path(given[str(gib)]), gib)
            continue
        code = (
            "import sys, json, resource, time; sys.path.insert(0, sys.argv[1]); "
            "from xenlu.testing.hostgen import write_host; t = time.perf_counter(); "
            "n = write_host(sys.argv[2], sys.argv[3], **json.loads(sys.argv[4])); "
            "print(json.dumps(dict(bytes=n, gen_s=time.perf_counter() - t, "
            "peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))"
        )
        ver = f"{HUGE_VERSION[0]}.{HUGE_VERSION[1]}"
        shape = huge_shape(gib)
        cmd = [sys.executable, "-c", code, str(XENLU_ROOT), str(path), ver, json.dumps(shape)]
        m = measured(cmd, LIMIT_GIB[0], capture=True)
        if m["rc"] != 0:
            raise RuntimeError(f"write_host {gib} GiB: exit {m['rc']}: {m['error']}")
        info = json.loads(m["stdout"])
        frames = gib * 1024 * 256
        meta["hosts"][str(gib)] = dict(
            info,
            path=path.name,
            frames=frames,
            domains=HUGE_DOMAINS,
            shape=shape,
            version=ver,
            peak_anon_mib=m["peak_anon_mib"],
        )
        print(
            f"  host {gib} GiB: {_mb(info['bytes'])} written in {info['gen_s']:.1f} s, "
            f"peak RSS {info['peak_rss_mib']:.0f} MiB",
            file=sys.stderr,
            flush=True,
        )
    meta["adversarial"] = build_adversarial(work)
    return meta


# The adversarial shapes of issue 14: tiny streams that verify in milliseconds
# but made validate/plan expand extents into frames, or quadratic cells.


def _adv_base(n_hvm: int = 0) -> Any:
    from xenlu.testing.hostgen import make_host

    return make_host("4.15", n_hvm=n_hvm, mem_mib=1, dom0_mem_mib=1, vcpus=1)


def _adv_foreign(dom: Any, mfn: int) -> Any:
    """``dom`` (HVM) whose first P2M extent is one grant_map_rw frame at ``mfn``: ``plan``
    then looks up the owner of a frame (its owner index) as validate does."""
    from xenlu.core.registry import Record
    from xenlu.lu.records import Bulk, T
    from xenlu.lu.stream import LUDomain

    p2m = dom.p2m.copy()
    p2m["mfn"][0], p2m["nr_pages"][0], p2m["p2m_type"][0] = mfn, 1, 7
    return LUDomain([Record(T.LU_P2M, Bulk(p2m)) if r.type == T.LU_P2M else r for r in dom.records])


def _adv_stream(base: Any, **parts: Any) -> Any:
    from xenlu.lu.stream import LUStream

    return LUStream.build(
        base.version,
        host=parts.get("host", base.host),
        reusable_regions=parts.get("regions", base.reusable_regions),
        xen_pages=parts.get("xen_pages", base.xen_pages),
        domains=parts.get("domains", base.domains),
    )


def _adv_owning(dom: Any, own: np.ndarray, domid: int | None = None) -> Any:
    """``dom`` with its ownership replaced by ``own`` (and its domid by ``domid``)."""
    import dataclasses

    from xenlu.core.registry import Record
    from xenlu.lu.records import Bulk, T
    from xenlu.lu.stream import LUDomain

    recs = []
    for r in dom.records:
        if r.type == T.LU_PAGE_OWNERSHIP:
            continue
        if r.type == T.LU_DOMAIN and domid is not None:
            r = Record(T.LU_DOMAIN, dataclasses.replace(r.value, domid=domid))
        recs.append(r)
    recs.insert(1, Record(T.LU_PAGE_OWNERSHIP, Bulk(own)))
    return LUDomain(recs)


def _own(starts: Any, lengths: Any) -> np.ndarray:
    from xenlu.lu.records import OwnershipEntry

    a = np.zeros(len(starts), OwnershipEntry.LAYOUT.dtype)
    a["start_mfn"], a["nr_pages"] = starts, lengths
    return a


def adv_global_extents(base: Any, n: int = 32) -> Any:
    """``n`` reusable regions and ``n`` Xen-pages extents, each over dom0's frames up to 1 M.

    dom0 also owns frame 0xFFFFF, so its owned range (and a dense owner map)
    spans 1 M frames; every global extent covers all of it.
    """
    import dataclasses

    from xenlu.lu.records import RegionExtent, XenPagesExtent

    d0 = base.domains[0]
    top = 0xFFFFF
    own = np.concatenate((d0.ownership, _own([top], [1])))
    host = dataclasses.replace(base.host, max_page=1 << 21)
    regions = np.zeros(n, RegionExtent.LAYOUT.dtype)
    regions["start_mfn"], regions["nr_pages"], regions["kind"] = 0x10000, top, 2
    xen = np.zeros(n, XenPagesExtent.LAYOUT.dtype)
    xen["start_mfn"], xen["nr_pages"], xen["kind"] = 0x10000, top, 1
    return _adv_stream(
        base, host=host, regions=regions, xen_pages=xen, domains=[_adv_owning(d0, own)]
    )


def adv_nested(base: Any, n: int = 12_000) -> Any:
    """One domain, ``n`` nested ownership extents: [s+i, s+2n-i) for i < n."""
    import dataclasses

    i = np.arange(n)
    own = _own(0x100000 + i, 2 * (n - i))
    host = dataclasses.replace(base.host, max_page=1 << 22)
    hvm = base.domains[1] if len(base.domains) > 1 else None
    doms = [_adv_owning(base.domains[0], own)]
    return _adv_stream(
        base, host=host, domains=doms + ([_adv_foreign(hvm, 0x100000)] if hvm else [])
    )


def adv_staircase(base: Any, n: int = 4_000) -> Any:
    """Two domains, ``n`` extents each of 2n frames, starting on alternate frames."""
    import dataclasses

    doms = [
        _adv_owning(d, _own(0x100000 + 2 * np.arange(n) + k, np.full(n, 2 * n)))
        for k, d in enumerate(base.domains[:2])
    ]
    doms[1] = _adv_foreign(doms[1], 0x100000)
    host = dataclasses.replace(base.host, max_page=1 << 22)
    return _adv_stream(base, host=host, domains=doms)


def adv_one_frame_many(base: Any, n: int = 6_000) -> Any:
    """One frame claimed by ``n`` domains (minimal PV sections: LU_DOMAIN, PV info, one extent)."""
    import dataclasses

    from xenlu.lu.stream import LUDomain
    from xenlu.migration.libxc import X86PvInfo

    d0 = base.domains[0]
    frame = _own([0x200000], [1])
    pv = X86PvInfo(guest_width=8, pt_levels=4)
    doms = [_adv_owning(d0, np.concatenate((d0.ownership, frame)))]
    for d in range(1, n):
        info = dataclasses.replace(d0.info, domid=d, lu_state=1)
        doms.append(LUDomain.build(info, pv_info=pv, ownership=frame))
    host = dataclasses.replace(base.host, max_page=1 << 22)
    return _adv_stream(base, host=host, domains=doms)


def adv_near_4g(base: Any) -> Any:
    """dom0 also owns the 16 frames below 2^32 (for ``validate(method="dense")``)."""
    import dataclasses

    d0 = base.domains[0]
    own = np.concatenate((d0.ownership, _own([(1 << 32) - 16], [16])))
    host = dataclasses.replace(base.host, max_page=1 << 32)
    return _adv_stream(base, host=host, domains=[_adv_owning(d0, own)])


#: name -> (builder, description, operations run on it)
ADVERSARIAL: dict[str, tuple[Callable[[Any], Any], str, tuple[str, ...]]] = {
    "global_extents": (
        adv_global_extents,
        "32 reusable regions + 32 Xen-pages extents over 1 M owned frames",
        ("validate", "plan"),
    ),
    "nested": (
        adv_nested,
        "12,000 nested ownership extents (+ a grant-mapped P2M frame)",
        ("validate", "plan"),
    ),
    "staircase": (
        adv_staircase,
        "two-domain staircase, 2 × 4,000 extents (+ a grant-mapped P2M frame)",
        ("validate", "plan"),
    ),
    "one_frame_6000": (
        adv_one_frame_many,
        "one frame claimed by 6,000 domains",
        ("validate --json", "plan"),
    ),
    "near_4g_dense": (
        adv_near_4g,
        'frame 2^32 − 16 owned, validate(method="dense")',
        ("validate dense",),
    ),
}


def build_adversarial(work: Path) -> dict[str, Any]:
    from xenlu.api import verify
    from xenlu.lu.stream import encode_lu_to

    out: dict[str, Any] = {}
    for name, (build, _desc, _ops) in ADVERSARIAL.items():
        path = work / f"adv-{name}.lu"
        # two-domain shapes: dom0 and an HVM guest with a foreign P2M frame
        base = _adv_base(1 if name in ("nested", "staircase") else 0)
        with open(path, "wb") as f:
            n = encode_lu_to(build(base), f)
        verify(path)  # each shape is structurally valid: validate/plan must take it
        out[name] = dict(path=path.name, bytes=n)
    return out


# --- measuring a child process: wall time, peak RSS, peak anonymous memory, a limit ---

LIMIT_GIB = [8.0]


def _die_with_parent() -> None:
    """In a measured child: receive SIGKILL when the row process ends (Linux
    PR_SET_PDEATHSIG), so a row stopped by its watchdog leaves nothing behind."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _anon_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measured(
    cmd: list[str], limit_gib: float, *, capture: bool = False, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``cmd``; its wall time, exit code, last stderr line, ``ru_maxrss`` (mapped
    file pages included) and sampled peak ``RssAnon``. A child whose anonymous
    memory passes ``limit_gib`` is killed and reported ``exceeded``: the
    machine survives inputs that make the code under test allocate gigabytes.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            cmd, stdout=out, stderr=err, env=env or SUB_ENV or None, preexec_fn=_die_with_parent
        )
        limit_kib = int(limit_gib * GiB / 1024)
        peak = 0
        exceeded = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            anon = _anon_kib(p.pid)
            peak = max(peak, anon)
            if anon > limit_kib and not exceeded:
                exceeded = True
                p.kill()
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out_bytes = out.tell()
        out.seek(0)
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
        return dict(
            wall_s=wall,
            rc=p.returncode,
            error=lines[-1] if lines else "",
            maxrss_mib=ru.ru_maxrss / 1024,
            peak_anon_mib=peak / 1024,
            exceeded=exceeded,
            traceback=any(ln.startswith("Traceback") for ln in lines),
            stdout_bytes=out_bytes,
            stdout=out.read(1 << 20).decode(errors="replace") if capture else "",
        )


def _cli(*args: str) -> list[str]:
    """``xenlu ARGS`` of the package under test, in a fresh interpreter."""
    code = _CLI_MAIN + "sys.exit(main(sys.argv[2:]))"
    return [sys.executable, "-c", code, str(XENLU_ROOT), *args]


def _py(code: str, *args: str) -> list[str]:
    pre = "import sys; sys.path.insert(0, sys.argv[1]); "
    return [sys.executable, "-c", pre + code, str(XENLU_ROOT), *args]


def _has_command(name: str) -> bool:
    return bool(measured(_cli(name, "--help"), 1.0)["rc"] == 0)


def _memcpy_file(path: Path, block: int = 256 * MiB) -> None:
    """Copy every byte of the (page-cached) file through memory, a block at a time."""
    f, m = _mapped(path)
    try:
        src = np.frombuffer(m, np.uint8)
        dst = np.empty(min(block, len(src)), np.uint8)
        for i in range(0, len(src), block):
            part = src[i : i + block]
            np.copyto(dst[: len(part)], part)
        del src, part
    finally:
        m.close()
        f.close()


def _crc_file(path: Path, block: int = 256 * MiB) -> None:
    import crc32c

    f, m = _mapped(path)
    try:
        mv = memoryview(m)
        c = 0
        for i in range(0, len(mv), block):
            c = crc32c.crc32c(mv[i : i + block], c)
        mv.release()
    finally:
        m.close()
        f.close()


def _owned_starts(path: Path) -> np.ndarray:
    from xenlu.lu.stream import decode_lu

    s = decode_lu(path)
    col = np.concatenate([d.ownership["start_mfn"] for d in s.domains])
    del s
    gc.collect()
    return col


def _huge_rows(
    work: Path,
    cfg: dict[str, Any],
    meta: dict[str, Any],
    rid: str,
    operation: str,
    cmd_of: Callable[[Path, Path], list[str]],
    baseline_name: str,
    baseline_of: Callable[[Path], Callable[[], Any]],
    goal: Callable[[int], float | None],
    goal_text: Callable[[int], str],
    ok_rcs: tuple[int, ...] = (0,),
) -> list[Row]:
    out: list[Row] = []
    for gib in cfg["huge_gibs"]:
        h = meta["hosts"][str(gib)]
        path = work / h["path"]
        scratch = work / f"out-{rid}-{gib}g.lu"
        runs: list[dict[str, Any]] = []

        def x(
            path: Path = path, scratch: Path = scratch, runs: list[dict[str, Any]] = runs
        ) -> None:
            runs.append(measured(cmd_of(path, scratch), LIMIT_GIB[0]))
            scratch.unlink(missing_ok=True)

        base = baseline_of(path)
        reps = cfg["repeats"]
        tx, tb = side_by_side([x, base], reps, warmup=0)
        bad = [r for r in runs if r["rc"] not in ok_rcs or r["exceeded"]]
        r = row(
            f"{rid}_{gib}g",
            operation,
            f"{gib} GiB host, {HUGE_DOMAINS} domains, {h['frames'] / 1e6:.0f} M frames",
            h["bytes"],
            tx,
            baseline_name,
            tb,
            goal(gib),
            goal_text(gib),
            peak_rss_mib=max(r["maxrss_mib"] for r in runs),
            peak_anon_mib=max(r["peak_anon_mib"] for r in runs),
            extra_mib=max(r["peak_anon_mib"] for r in runs),
            exit_codes=sorted({r["rc"] for r in runs}),
            host_gib=gib,
        )
        if bad:
            r["met"] = False
            why = "exceeded the memory limit" if bad[0]["exceeded"] else bad[0]["error"][:120]
            r["note"] = f"exit {bad[0]['rc']}: {why}"
        else:
            r["note"] = (
                f"peak anon {max(q['peak_anon_mib'] for q in runs):.0f} MiB, "
                f"{max(q['peak_anon_mib'] for q in runs) * MiB / h['frames']:.2f} B/frame"
            )
        out.append(r)
    return out


def _sort_baseline(path: Path) -> Callable[[], Any]:
    col = _owned_starts(path)
    return lambda: np.sort(col)


def _memcpy_baseline(path: Path) -> Callable[[], Any]:
    return lambda: _memcpy_file(path)


def _copy_baseline(path: Path) -> Callable[[], Any]:
    dst = path.with_suffix(".copy")

    def cp() -> None:
        shutil.copyfile(path, dst)
        dst.unlink()

    return cp


def row_huge_verify(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """`xenlu verify -q` of the host vs a memcpy of the file (crc32c of the file beside it)."""
    rows = _huge_rows(
        work,
        cfg,
        meta,
        "huge_verify",
        "`xenlu verify -q` (CLI) vs memcpy of the file",
        lambda p, _o: _cli("verify", "-q", str(p)),
        "memcpy of the mapped file, 256 MiB blocks",
        _memcpy_baseline,
        lambda _g: 0.5,
        lambda _g: "≥ 0.5× memcpy",
    )
    for r in rows:
        path = work / meta["hosts"][str(r["host_gib"])]["path"]
        tc = side_by_side([lambda path=path: _crc_file(path)], 3, warmup=0)[0]
        r["crc32c_s"] = statistics.median(tc)
        r["note"] += f"; crc32c of the file {_t(r['crc32c_s'])}"
    return rows


def row_huge_validate(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """`xenlu validate` of the host vs np.sort of the owned frames (issue 14: ≤ 2×,
    and peak anonymous memory ≤ 4 bytes per owned frame + 64 MiB)."""
    rows = _huge_rows(
        work,
        cfg,
        meta,
        "huge_validate",
        "`xenlu validate` (CLI) vs np.sort of owned frames",
        lambda p, _o: _cli("validate", str(p)),
        "np.sort(ownership start_mfn column)",
        _sort_baseline,
        lambda _g: 0.5,
        lambda _g: "≤ 2× np.sort; ≤ 4 B/frame + 64 MiB",
    )
    # The memory goal is for what validate adds: the interpreter with xenlu's
    # CLI loaded (`xenlu --version`, measured the same way) is not part of it.
    idle = measured(_cli("--version"), LIMIT_GIB[0])["peak_anon_mib"]
    for r in rows:
        frames = meta["hosts"][str(r["host_gib"])]["frames"]
        allowed = (4 * frames) / MiB + 64
        extra = r["peak_anon_mib"] - idle
        r["extra_mib"] = extra
        r["note"] += f"; {extra:.0f} MiB over the idle CLI's {idle:.0f} MiB (goal {allowed:.0f})"
        if extra > allowed:  # the time goal alone is not the row's goal
            r["met"] = False
    return rows


def row_huge_plan(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """`xenlu plan` of the host vs np.sort of the owned frames (issue 14: ≤ 2×)."""
    return _huge_rows(
        work,
        cfg,
        meta,
        "huge_plan",
        "`xenlu plan` (CLI) vs np.sort of owned frames",
        lambda p, _o: _cli("plan", str(p)),
        "np.sort(ownership start_mfn column)",
        _sort_baseline,
        lambda _g: 0.5,
        lambda _g: "≤ 2× np.sort",
    )


def row_huge_check(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """`xenlu check` (verify + validate in one mapping): 1 TiB in ≤ 20 s (issue 14)."""
    op = "`xenlu check` (CLI) vs memcpy of the file"
    if not _has_command("check"):
        why = f"not available: `xenlu check` is missing in {XENLU_ROOT / 'xenlu'}"
        return [skipped(f"huge_check_{g}g", op, why) for g in cfg["huge_gibs"]]
    rows = _huge_rows(
        work,
        cfg,
        meta,
        "huge_check",
        op,
        lambda p, _o: _cli("check", str(p)),
        "memcpy of the mapped file, 256 MiB blocks",
        _memcpy_baseline,
        lambda _g: None,
        lambda g: f"≤ {20 * g / 1024:g} s wall (20 s at 1 TiB)",
    )
    for r in rows:
        r["met"] = r.get("met", True) is not False and r["xenlu_s"] <= 20 * r["host_gib"] / 1024
    return rows


def row_huge_convert(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """`xenlu convert --to 4.17` of the 4.15 host, to a file, vs copying the file."""
    return _huge_rows(
        work,
        cfg,
        meta,
        "huge_convert",
        "`xenlu convert -q --to 4.17` (CLI, 4.15 → 4.17, to disk) vs file copy",
        lambda p, o: _cli("convert", "-q", "--to", "4.17", str(p), str(o)),
        "shutil.copyfile of the stream",
        _copy_baseline,
        lambda _g: None,
        lambda _g: "report",
    )


def row_huge_decode(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """decode_lu of the host file (zero-copy arrays over the mapping) vs memcpy."""
    code = "from xenlu.lu.stream import decode_lu; s = decode_lu(sys.argv[2]); assert s.domains"
    return _huge_rows(
        work,
        cfg,
        meta,
        "huge_decode",
        "decode_lu(path) in a fresh interpreter vs memcpy of the file",
        lambda p, _o: _py(code, str(p)),
        "memcpy of the mapped file, 256 MiB blocks",
        _memcpy_baseline,
        lambda _g: None,
        lambda _g: "report",
    )


ADV_ALLOWANCE = (32, 16)  # extra anonymous memory ≤ 32 × stream bytes + 16 MiB


def row_adversarial(work: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    """Each adversarial shape: validate/plan time and peak memory as multiples of the stream.

    The stream's own `xenlu verify -q` is the reference: its time, and its
    peak anonymous memory (the interpreter, numpy, the CLI) is subtracted
    to give the operation's extra memory. A run past ``--mem-limit-gib`` is
    stopped and reported ``exceeded``.
    """
    out: list[Row] = []
    dense = (
        "from xenlu.lu.stream import decode_lu; from xenlu.host.validation import validate\n"
        "try:\n    r = validate(decode_lu(sys.argv[2]), method='dense')\n"
        "except Exception as e:\n"
        "    print(f'{type(e).__name__}: {e}'[:200], file=sys.stderr)\n"
        "    sys.exit(70)\n"
        "sys.exit(0 if r.ok else 1)"
    )
    for name, (_build, desc, ops) in ADVERSARIAL.items():
        info = meta["adversarial"][name]
        path = str(work / info["path"])
        size = info["bytes"]
        ref = [measured(_cli("verify", "-q", path), LIMIT_GIB[0]) for _ in range(3)]
        ref_s = statistics.median(q["wall_s"] for q in ref)
        ref_anon = statistics.median(q["peak_anon_mib"] for q in ref)
        for op in ops:
            cmd = _py(dense, path) if op == "validate dense" else _cli(*op.split(), path)
            m = measured(cmd, LIMIT_GIB[0])
            extra = max(0.0, m["peak_anon_mib"] - ref_anon)
            allowed = ADV_ALLOWANCE[0] * size / MiB + ADV_ALLOWANCE[1]
            crashed = m["rc"] not in (0, 1) or m["traceback"]
            r = dict(
                id=f"adv_{name}_{op.split()[0]}{'_dense' if 'dense' in op else ''}",
                operation=f"adversarial: {desc} — {op}",
                size=f"{size / 1000:.1f} KB stream",
                bytes=size,
                xenlu_s=m["wall_s"],
                xenlu_spread=0.0,
                xenlu_times=[m["wall_s"]],
                baseline="`xenlu verify -q` of the stream",
                baseline_s=ref_s,
                baseline_spread=0.0,
                ratio=ref_s / m["wall_s"],
                goal=None,
                goal_text=f"extra mem ≤ {ADV_ALLOWANCE[0]}× stream + {ADV_ALLOWANCE[1]} MiB",
                met=bool(not m["exceeded"] and not crashed and extra <= allowed),
                peak_rss_mib=m["maxrss_mib"],
                peak_anon_mib=m["peak_anon_mib"],
                extra_mib=extra,
                time_per_stream_kb_ms=m["wall_s"] * 1e3 / (size / 1000),
                mem_multiple_of_stream=extra * MiB / size,
                exit_code=m["rc"],
                exceeded=m["exceeded"],
                report_bytes=m["stdout_bytes"],
                loadavg=os.getloadavg()[0],
            )
            if m["exceeded"]:
                r["note"] = (
                    f"exceeded: stopped past {LIMIT_GIB[0]:g} GiB anonymous memory "
                    f"after {_t(m['wall_s'])}"
                )
            else:
                r["note"] = (
                    f"exit {m['rc']}; {r['time_per_stream_kb_ms']:.1f} ms per KB of stream; "
                    f"extra memory {r['mem_multiple_of_stream']:.0f}× the stream"
                    + (f"; stdout {_mb(m['stdout_bytes'])}" if m["stdout_bytes"] > MiB else "")
                    + (f"; CRASHED: {m['error'][:100]}" if crashed else "")
                )
            out.append(r)
    return out


HUGE_ROWS: dict[str, Callable[[Path, dict[str, Any], dict[str, Any]], list[Row]]] = {
    "huge_verify": row_huge_verify,
    "huge_validate": row_huge_validate,
    "huge_plan": row_huge_plan,
    "huge_check": row_huge_check,
    "huge_convert": row_huge_convert,
    "huge_decode": row_huge_decode,
    "adversarial": row_adversarial,
}


# --- report -----------------------------------------------------------------------


def _mb(n: float) -> str:
    if n >= GiB:
        return f"{n / GiB:.2f} GiB"
    return f"{n / MiB:.1f} MiB"


def _t(s: float | None) -> str:
    if s is None:
        return "—"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def _cells(r: Row) -> list[str]:
    if r.get("skipped"):
        return [r["operation"], "—", "—", "—", "—", "—", "skipped", "—", "—", "—", r["skipped"]]
    x = f"{_t(r['xenlu_s'])} ±{r['xenlu_spread'] * 100:.0f}%"
    b = "—"
    if "baseline_s" in r:
        b = f"{_t(r['baseline_s'])} ±{r['baseline_spread'] * 100:.0f}%"
    ratio = f"{r['ratio']:.2f}×" if "ratio" in r else "—"
    if "cpu_ratio" in r:
        ratio += f" (CPU {r['cpu_ratio']:.2f}×)"
    note = r.get("note", "")
    if r["id"].startswith("framing"):
        x += f" ({r['xenlu_us_per_record']:.2f} µs/rec)"
        b += f" ({r['baseline_us_per_record']:.2f} µs/rec)"
        note = note or f"frames() alone {r['frames_only_us_per_record']:.2f} µs/rec"
    if r["id"].startswith("xen_"):
        startup = (
            f"start-up xenlu {r['startup_s']['xenlu'] * 1e3:.0f} ms, "
            f"Xen {r['startup_s']['xen'] * 1e3:.0f} ms; xenlu in-process "
            f"{_t(r['xenlu_in_process_s'])}"
        )
        if r["id"] == "xen_small":
            ratio += f" (net {r['net_ratio']:.2f}×)"
            note = note or (
                f"net µs/rec xenlu {r['xenlu_us_per_record']:.2f} vs Xen "
                f"{r['xen_us_per_record']:.2f}; {startup}"
            )
        else:
            cross = r.get("crossover_bytes")
            note = note or (startup + (f"; xenlu is faster above ~{_mb(cross)}" if cross else ""))
    if r["id"] == "bulk_decode_construct":
        note = note or (
            f"construct {r['construct_us_per_entry']:.1f} µs/entry, "
            f"xenlu {r['xenlu_ns_per_entry']:.2f} ns/entry"
        )
    if r["id"] == "p2m_decode_memory":
        b = f"{r['allowance_mib']:.0f} MiB allowed"
        ratio = f"extra {r['extra_pct_of_stream']:.1f}% of stream"
        note = note or (
            f"tracemalloc peak {r['tracemalloc_peak_mib']:.1f} MiB, RssAnon +"
            f"{r['rss_anon_delta_mib']:.1f} MiB, {r['gc_objects_retained']} objects kept"
        )
    if r["id"] == "hostgen":
        note = note or f"{r['frames_per_s'] / 1e6:.1f} M frames/s"
    if r["id"] == "lu_encode" and not r.get("byte_identical", True):
        note = "OUTPUT DIFFERS FROM THE INPUT FILE"
    if r["id"] == "dump":
        note = note or (
            f"{_mb(r['json_bytes'])} of JSON; {r['dump_vs_validate']:.2f}× the time of "
            f"decode + validate ({_t(r['validate_s'])})"
        )
    if r["id"] == "diff":
        note = note or f"{r['differences']} differences"
    if r["id"] == "validate_sort" and r.get("findings") is not None:
        note = note or f"{r['findings']} findings"
    met = {True: "yes", False: "NO", None: "—"}[r.get("met")]
    extra = r.get("extra_mib", r.get("tracemalloc_peak_mib"))
    return [
        r["operation"],
        r["size"],
        x,
        b,
        ratio,
        r["goal_text"],
        met,
        f"{r.get('peak_rss_mib', 0):.0f} MiB",
        "—" if extra is None else f"{extra:.1f} MiB",
        _mb(r["bytes"]) if r.get("bytes") else "—",
        note,
    ]


HEAD = [
    "operation",
    "size",
    "xenlu (median ±spread)",
    "baseline",
    "ratio",
    "goal",
    "met?",
    "peak RSS",
    "extra mem",
    "bytes",
    "note",
]


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |")
    return "\n".join(lines)


def projection(rows: list[Row], host_gib: int) -> str:
    f = PROJECT_TO_GIB / host_gib
    out = [f"Linear projection to a {PROJECT_TO_GIB} GiB host (×{f:g}):"]
    for r in rows:
        if r.get("project") and not r.get("skipped"):
            line = f"  {r['operation']}: {_t(r['xenlu_s'] * f)}"
            if "baseline_s" in r:
                line += f" (baseline {_t(r['baseline_s'] * f)})"
            out.append(line + f", {_mb(r['bytes'] * f)}")
    return "\n".join(out)


def _git_describe() -> str:
    try:
        p = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        )
        return "repo " + p.stdout.strip() if p.returncode == 0 else "?"
    except OSError:
        return "?"


def machine() -> dict[str, Any]:
    import construct
    import crc32c

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(
        cpu=cpu,
        cpus=os.cpu_count(),
        mem_gib=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB, 1),
        python=platform.python_version(),
        numpy=np.__version__,
        construct=construct.__version__,
        crc32c_hardware=bool(crc32c.hardware_based),
        kernel=platform.release(),
    )


# --- driver -----------------------------------------------------------------------


def _cfg(args: argparse.Namespace) -> dict[str, Any]:
    cfg = dict(SCALES[args.scale])
    if args.huge_gib:
        cfg["huge_gibs"] = [int(g) for g in args.huge_gib.split(",")]
        cfg["host_gib"] = max(cfg["huge_gibs"])
    for spec in args.huge_host or ():
        gib, _, path = spec.partition("=")
        cfg.setdefault("huge_hosts", {})[str(int(gib))] = str(Path(path).resolve())
    return cfg


def child_main(args: argparse.Namespace) -> int:
    start_watchdog(args.mem_limit_gib)
    LIMIT_GIB[0] = args.mem_limit_gib
    cfg = _cfg(args)
    if args.repeats:
        cfg["repeats"] = args.repeats
    _BUDGET[0] = BUDGET_S[args.scale]
    if args.profile:
        PROFILE_DIR[0] = Path(args.profile)
    work = Path(args.workdir)
    if args.child == "build":
        meta = (build_huge_inputs if args.scale == "huge" else build_inputs)(work, cfg)
        meta["fingerprint"] = code_fingerprint(args.scale, cfg)
        meta["peak_rss_mib"] = peak_rss_mib()
        (work / "meta.json").write_text(json.dumps(meta))
        return 0
    meta = json.loads((work / "meta.json").read_text())
    rows = {**ROWS, **HUGE_ROWS}[args.child](work, cfg, meta)
    (work / f"row-{args.child}.json").write_text(json.dumps(rows))
    return 0


def run_child(args: argparse.Namespace, name: str, work: Path) -> tuple[int, str]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--scale",
        args.scale,
        "--child",
        name,
        "--workdir",
        str(work),
        "--mem-limit-gib",
        str(args.mem_limit_gib),
    ]
    if args.repeats:
        cmd += ["--repeats", str(args.repeats)]
    if args.huge_gib:
        cmd += ["--huge-gib", args.huge_gib]
    for spec in args.huge_host or ():
        cmd += ["--huge-host", spec]
    if args.profile:
        cmd += ["--profile", str(Path(args.profile).resolve())]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return p.returncode, p.stderr.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="small")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument(
        "--only",
        help="comma-separated rows: "
        + ",".join(ROWS)
        + "; at --scale huge: "
        + ",".join(HUGE_ROWS),
    )
    ap.add_argument(
        "--huge-gib",
        metavar="G[,G…]",
        help="--scale huge: host sizes in GiB (default 256,1024; multiples of 128)",
    )
    ap.add_argument(
        "--huge-host",
        action="append",
        metavar="G=FILE",
        help="--scale huge: use FILE (a host written by write_host with huge_shape(G)) as "
        "the G GiB host instead of writing it (linked into the workdir; repeatable)",
    )
    ap.add_argument("--workdir", help="scratch directory (default: a fresh temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--repeats", type=int, help="override the scale's repeat count")
    ap.add_argument("--mem-limit-gib", type=float, default=8.0)
    ap.add_argument(
        "--profile", metavar="DIR", help="also profile each xenlu operation (pyinstrument) into DIR"
    )
    ap.add_argument(
        "--xenlu",
        metavar="DIR",
        help="benchmark the xenlu package in DIR (DIR/xenlu) instead of the repository's",
    )
    ap.add_argument(
        "--reuse-inputs",
        action="store_true",
        help="use the inputs already in --workdir even if another xenlu built them "
        "(benchmarks/compare.py: both revisions measured on the same files)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.xenlu:
        root = Path(args.xenlu).resolve()
        if not (root / "xenlu" / "__init__.py").exists():
            ap.error(f"--xenlu {root}: no xenlu package there")
        if root != XENLU_ROOT:
            # re-run with the package under test first on sys.path
            path = os.pathsep.join(p for p in (str(ISOLATE_DIR), os.environ.get("PYTHONPATH")) if p)
            env = dict(os.environ, XENLU_BENCH_ROOT=str(root), PYTHONPATH=path)
            cmd = [sys.executable, str(Path(__file__).resolve()), *(argv or sys.argv[1:])]
            return subprocess.run(cmd, env=env, check=False).returncode

    LIMIT_GIB[0] = args.mem_limit_gib
    cfg = _cfg(args)
    table = HUGE_ROWS if args.scale == "huge" else ROWS
    names = list(table) if not args.only else [n.strip() for n in args.only.split(",")]
    for n in names:
        if n not in table:
            ap.error(f"unknown row {n!r} at --scale {args.scale}")
    own_dir = args.workdir is None
    work = Path(args.workdir or tempfile.mkdtemp(prefix=f"xenlu-bench-{args.scale}-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    info = machine()
    print(
        f"xenlu benchmarks, scale {args.scale}: {cfg['host_gib']} GiB fragmented host; "
        f"{info['cpus']} CPUs ({info['cpu']}), {info['mem_gib']} GiB; Python {info['python']}, "
        f"numpy {info['numpy']}; {_dt.date.today().isoformat()}; "
        f"load average {os.getloadavg()[0]:.2f}\nxenlu under test: {XENLU_ROOT / 'xenlu'} "
        f"({_git_describe()})",
        flush=True,
    )
    rows: list[Row] = []
    failures: list[str] = []
    try:
        stale = True
        if args.reuse_inputs:
            if not (work / "meta.json").exists():
                ap.error(f"--reuse-inputs: no inputs in {work}")
            stale = False
        elif (work / "meta.json").exists():
            old = json.loads((work / "meta.json").read_text())
            stale = old.get("fingerprint") != code_fingerprint(args.scale, cfg)
        if stale:
            t0 = time.perf_counter()
            rc, err = run_child(args, "build", work)
            if rc:
                print(f"building the inputs failed (exit {rc}):\n{err}", file=sys.stderr)
                return 2
            print(f"  inputs built in {time.perf_counter() - t0:.1f} s in {work}", flush=True)
        meta = json.loads((work / "meta.json").read_text())
        for n in names:
            t0 = time.perf_counter()
            rc, err = run_child(args, n, work)
            dt = time.perf_counter() - t0
            if rc:
                failures.append(n)
                msg = (err.splitlines() or ["?"])[-1]
                rows.append(skipped(n, n, f"FAILED (exit {rc}): {msg[:160]}"))
                print(f"  {n}: FAILED in {dt:.1f} s\n{err}", file=sys.stderr, flush=True)
                continue
            rows += json.loads((work / f"row-{n}.json").read_text())
            print(f"  {n}: {dt:.1f} s (load average {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        if own_dir and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif args.scale == "huge" and not args.keep:
            # the host streams are GiBs each: never left behind without --keep
            for f in [*work.glob("host-*g.lu"), *work.glob("out-*.lu"), work / "meta.json"]:
                f.unlink(missing_ok=True)
    total = time.perf_counter() - t_all
    print()
    print(markdown(rows))
    print()
    if args.scale != "huge":
        print(projection(rows, cfg["host_gib"]))
    print(
        f"\nratio = baseline time / xenlu time (> 1: xenlu faster). "
        f"Total {total:.1f} s; the harness itself peaked at {peak_rss_mib():.0f} MiB RSS."
    )
    if args.json:
        doc = dict(
            scale=args.scale,
            date=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            config=cfg,
            machine=info,
            inputs=meta,
            total_s=total,
            rows=rows,
            xen_tools_python=os.environ.get("XEN_TOOLS_PYTHON"),
            xenlu_root=str(XENLU_ROOT),
            repo=_git_describe(),
        )
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
