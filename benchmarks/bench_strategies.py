"""How long xenlu.testing.strategies.hosts() takes to generate a big host (issue 6).

Goal: a 4.11 host with at least 20 domains in under a second. The benchmark
draws ``--hosts`` such hosts (``hosts("4.11", min_domains=20, max_domains=24)``,
every variation on) through hypothesis, generation only, and prints the time
per host, the domains and records per host, and the encoded size.

Usage: ``python benchmarks/bench_strategies.py [--hosts 20] [--epoch 4.11]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, settings

from xenlu.lu.stream import encode_lu
from xenlu.testing import strategies as S


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=20, help="hosts to draw (default 20)")
    ap.add_argument("--epoch", default="4.11")
    ap.add_argument("--min-domains", type=int, default=20)
    ap.add_argument("--max-mem-mib", type=int, default=4)
    args = ap.parse_args(argv)
    strategy = S.hosts(
        args.epoch,
        min_domains=args.min_domains,
        max_domains=args.min_domains + 4,
        max_mem_mib=args.max_mem_mib,
    )
    times: list[float] = []
    shapes: list[tuple[int, int, int]] = []
    last = [time.perf_counter()]

    @settings(
        max_examples=args.hosts,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(host: Any) -> None:
        now = time.perf_counter()
        times.append(now - last[0])
        nrec = sum(len(s.records) for s in host.sections)
        shapes.append((len(host.domains), nrec, len(encode_lu(host))))
        last[0] = time.perf_counter()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        draw()
        total = time.perf_counter() - t0
    doms = [s[0] for s in shapes]
    print(f"hosts(): {len(times)} hosts of epoch {args.epoch}, {min(doms)}-{max(doms)} domains")
    print(
        f"  per host: median {statistics.median(times) * 1000:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms (goal < 1000 ms); total {total:.2f} s"
    )
    print(
        f"  records per host: median {statistics.median(s[1] for s in shapes):.0f}; "
        f"encoded: median {statistics.median(s[2] for s in shapes) / 1024:.0f} KiB"
    )
    return 0 if max(times) < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
