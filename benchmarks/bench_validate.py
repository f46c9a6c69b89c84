"""Validation time against ``np.sort`` of the owned-frame column (issue 5).

Builds a fragmented host with ``--frames`` single-frame ownership entries
(default 16.7 M: 64 GiB of RAM, every frame its own extent, the extents of all
domains interleaved in machine memory), then measures in one process, side
by side:

* ``sort``: ``np.sort`` of a copy of the owned-frame column (the
  ``start_mfn`` of every ownership entry of every domain, concatenated);
* ``validate``: :func:`xenlu.host.validation.validate` of the whole host;
* ``plan``: :func:`xenlu.host.restore_plan.plan` (for information).

Each is run ``--repeat`` times; the ratio is best-of validate / best-of sort
(first runs are reported too: on a fresh VM they include first-touch page
faults). Peak RSS comes from ``resource.getrusage``. Not part of the test
suite::

    python benchmarks/bench_validate.py                 # 16.7 M frames
    python benchmarks/bench_validate.py --frames 2000000 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xenlu.host.restore_plan import plan
from xenlu.host.validation import validate
from xenlu.testing.hostgen import make_host


def _rss_mib() -> float:
    # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _times(f: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    out: list[float] = []
    result: Any = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = f()
        out.append(time.perf_counter() - t)
    return out, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16_777_216, help="owned frames (default 16.7 M)")
    ap.add_argument("--guests", type=int, default=15, help="HVM guests besides dom0 (default 15)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--version", default="4.21")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    doms = args.guests + 1
    mib = max(1, args.frames // (256 * doms))
    major, minor = (int(x) for x in args.version.split("."))
    t = time.perf_counter()
    host = make_host(
        (major, minor),
        n_hvm=args.guests,
        mem_mib=mib,
        dom0_mem_mib=mib,
        fragmentation=1.0,
        seed=1,
    )
    t_gen = time.perf_counter() - t
    rss_host = _rss_mib()
    col = np.concatenate([d.ownership["start_mfn"] for d in host.domains])
    p2m = sum(len(d.p2m) for d in host.domains)

    def sort() -> Any:
        return np.sort(col.copy())

    t_sort, _ = _times(sort, args.repeat)
    t_val, report = _times(lambda: validate(host), args.repeat)
    t_plan, _ = _times(lambda: plan(host), 1)
    ratio = min(t_val) / min(t_sort)
    out = {
        "frames": len(col),
        "domains": doms,
        "p2m_entries": int(p2m),
        "generate_s": round(t_gen, 3),
        "sort_s": [round(x, 3) for x in t_sort],
        "validate_s": [round(x, 3) for x in t_val],
        "plan_s": [round(x, 3) for x in t_plan],
        "ratio_best": round(ratio, 3),
        "ratio_first": round(t_val[0] / t_sort[0], 3),
        "method": report.method,
        "findings": len(report.findings),
        "peak_rss_mib": round(_rss_mib(), 1),
        "rss_after_host_mib": round(rss_host, 1),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"host: {out['frames']:,} single-frame ownership entries, {doms} domains, "
            f"{p2m:,} P2M entries (generated in {t_gen:.1f} s)"
        )
        print(f"np.sort(owned frames): {', '.join(f'{x:.3f}' for x in t_sort)} s")
        print(
            f"validate ({report.method}): {', '.join(f'{x:.3f}' for x in t_val)} s, "
            f"{len(report.findings)} findings"
        )
        print(f"plan: {t_plan[0]:.3f} s")
        first = out["ratio_first"]
        print(f"ratio validate/sort: {ratio:.2f} (best of {args.repeat}), {first:.2f} (first runs)")
        print(f"peak RSS {out['peak_rss_mib']:.0f} MiB (host alone {rss_host:.0f} MiB)")
    return 0 if not report.findings else 1


if __name__ == "__main__":
    sys.exit(main())
