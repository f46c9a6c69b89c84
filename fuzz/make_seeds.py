"""Write the seed corpora of the fuzz targets to ``fuzz/seeds/<target>/``.

* ``lu``: the golden LU corpus (``tests/golden/<X.Y>/*.bin``), the hand-built
  LU vectors (``tests/vectors/lu_vectors.py``: GOLDEN, INVALID and
  SEMANTIC_ONLY), and small hostgen hosts of every epoch;
* ``libxc``: the hand-built libxc/libxl/xl vectors
  (``tests/vectors/libxc_vectors.py``, valid and invalid) and a few streams
  from :func:`xenlu.testing.strategies.libxc_streams` / ``libxl_streams``
  (derandomised, so the corpus is the same on every run);
* ``handover``: small hand-over images (``common.lay_image`` layout) of a few
  small streams, whole and with scattered data pages;
* ``validate``: the LU seeds, which hold the semantic vectors.

Usage: ``python fuzz/make_seeds.py [--out fuzz/seeds]``. Sources that do not
exist (yet) are skipped with a note.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(HERE)]

import numpy as np  # noqa: E402

from xenlu.core.epochs import EPOCHS  # noqa: E402
from xenlu.lu.stream import encode_lu  # noqa: E402
from xenlu.testing.hostgen import make_host  # noqa: E402


def _write(out: Path, name: str, blobs: Iterable[bytes]) -> int:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    n = 0
    for b in blobs:
        (d / (hashlib.sha1(b).hexdigest()[:16] + ".bin")).write_bytes(b)
        n += 1
    return n


def lu_seeds() -> list[bytes]:
    out = [p.read_bytes() for p in sorted((ROOT / "tests" / "golden").glob("*/*.bin"))]
    try:
        from vectors.lu_vectors import GOLDEN, INVALID, SEMANTIC_ONLY

        out += [v.data for v in [*GOLDEN, *INVALID, *SEMANTIC_ONLY]]
    except ImportError:
        print("note: tests/vectors/lu_vectors.py not found, LU vectors skipped", file=sys.stderr)
    for i, e in enumerate(EPOCHS):
        out.append(
            encode_lu(
                make_host(
                    e,
                    n_hvm=i % 3,
                    mem_mib=1,
                    dom0_mem_mib=1,
                    vcpus=1 + i % 2,
                    fragmentation=0.1 * (i % 4),
                    seed=i,
                    fifo_every=1 + i % 2,
                    grant_v2_every=1 + (i + 1) % 2,
                ),
                max_record_bytes=4096 if i % 2 else 1 << 27,
            )
        )
    return out


def _drawn(strategy: Any, n: int) -> list[Any]:
    from hypothesis import HealthCheck, Phase, given, settings

    got: list[Any] = []

    @settings(
        max_examples=n,
        database=None,
        phases=[Phase.generate],
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def draw(v: Any) -> None:
        got.append(v)

    draw()
    return got


def libxc_seeds() -> list[bytes]:
    out: list[bytes] = []
    try:
        from vectors.libxc_vectors import VECTORS

        out += [v.data for v in VECTORS]
    except ImportError:
        print("note: tests/vectors/libxc_vectors.py not found, skipped", file=sys.stderr)
    try:
        from xenlu.testing import strategies as S

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out += _drawn(S.libxc_streams(), 12)
            out += _drawn(S.libxl_streams(xl=None), 12)
    except ImportError:
        print("note: hypothesis not installed, generated libxc seeds skipped", file=sys.stderr)
    return out


def small_stream(version: tuple[int, int], n_hvm: int, seed: int) -> Any:
    """A stream whose host fits the fuzz image: 2 MiB bootmem at 0, max_page 768.

    Its domains are hostgen's with their frame-bearing records dropped (the
    hand-over reader checks structure and §5, not ownership).
    """
    import dataclasses

    from common import MAX_PAGE

    from xenlu.lu.records import LuHostInfo, T
    from xenlu.lu.stream import LUDomain, LUStream

    big = make_host(version, n_hvm=n_hvm, mem_mib=1, dom0_mem_mib=1, vcpus=1, seed=seed)
    drop = {T.LU_P2M, T.LU_PAGE_OWNERSHIP, T.LU_PAGE_TYPES, T.LU_GRANT_TABLE, T.LU_GRANT_MAPS}
    doms = [LUDomain([r for r in d.records if r.type not in drop]) for d in big.domains]
    host = dataclasses.replace(
        big.host, max_page=MAX_PAGE, lu_bootmem_start=0, lu_bootmem_size=2 << 20
    )
    assert isinstance(host, LuHostInfo)
    return LUStream.build(version, host=host, domains=doms)


def handover_seeds() -> list[bytes]:
    try:
        from xenlu.lu.handover import write_handover
    except ImportError:
        print("note: xenlu.lu.handover not found, hand-over seeds skipped", file=sys.stderr)
        return []
    from common import DATA_AT, IMAGE_SIZE, PAGE, compact_image

    out = []
    base = DATA_AT // PAGE
    for i, (v, n) in enumerate([((4, 11), 0), ((4, 15), 1), ((4, 21), 1), ((4, 17), 2)]):
        s = small_stream(v, n, i)
        img = bytearray(IMAGE_SIZE)
        h = write_handover(s, img, data_start_mfn=base)
        end = (max(h.array_mfn + h.breadcrumb.array_pages, max(h.data_mfns) + 1)) * PAGE
        out.append(compact_image(img, end))
        # Scattered, out-of-order data pages (as a real xen#1 allocates them).
        img = bytearray(IMAGE_SIZE)
        k = h.nr_pages
        pages = [int(x) for x in np.random.default_rng(i).permutation(k) * 2 + base]
        h2 = write_handover(s, img, page_mfns=pages, array_mfn=base + 2 * k + 1)
        end = (h2.array_mfn + h2.breadcrumb.array_pages) * PAGE
        out.append(compact_image(img, end))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "seeds")
    args = ap.parse_args(argv)
    lu = lu_seeds()
    counts = {
        "lu": _write(args.out, "lu", lu),
        "libxc": _write(args.out, "libxc", libxc_seeds()),
        "handover": _write(args.out, "handover", handover_seeds()),
        "validate": _write(args.out, "validate", lu),
    }
    for k, n in counts.items():
        print(f"{k}: {n} seeds in {args.out / k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
