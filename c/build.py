"""Build ``xenlu-c`` (the C reader/writer) against the generated headers.

Usage: ``python c/build.py OUTDIR [--sanitize]``; prints the binary's path.
Used by ``make c`` and by the tests (tests/test_cgen.py), so there is one
recipe: ``cc -std=c11 -Wall -Wextra -Werror -O2`` (plus
``-fsanitize=address,undefined`` with ``--sanitize``), one object of
``lu_epoch.c`` per ``include/xen_lu_<X.Y>.h``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-D_POSIX_C_SOURCE=200809L"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]


def epochs(include: Path) -> list[tuple[int, int]]:
    """The epochs that have a header in ``include``, oldest first."""
    found = []
    for p in include.glob("xen_lu_*.h"):
        m = re.fullmatch(r"xen_lu_(\d+)\.(\d+)\.h", p.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2))))
    return sorted(found)


def build(
    outdir: str | os.PathLike[str],
    sanitize: bool = False,
    cc: str = "cc",
    include: Path | None = None,
) -> Path:
    """Compile and link ``xenlu-c`` into ``outdir``; return the binary's path.

    :class:`subprocess.CalledProcessError` (with the compiler's output) on failure.
    """
    inc = include or ROOT / "include"
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    flags = CFLAGS + (SANITIZE if sanitize else [])
    eps = epochs(inc)
    if not eps:
        raise FileNotFoundError(f"no xen_lu_<X.Y>.h in {inc} (run `make schemas`)")

    def cc_run(args: list[str]) -> None:
        subprocess.run([cc, *flags, *args], check=True, capture_output=True, text=True)

    jobs: list[list[str]] = []
    objs: list[Path] = []
    for a, b in eps:
        obj = out / f"lu_epoch_{a}_{b}.o"
        jobs.append(
            [
                f"-I{inc}",
                f"-I{HERE}",
                f'-DXEN_LU_HEADER="xen_lu_{a}.{b}.h"',
                f"-DLU_EPOCH_NAME=lu_epoch_{a}_{b}",
                "-c",
                str(HERE / "lu_epoch.c"),
                "-o",
                str(obj),
            ]
        )
        objs.append(obj)
    listing = " ".join(f"X({a}, {b})" for a, b in eps)
    for src in ("lu_main.c", "crc32c.c"):
        obj = out / src.replace(".c", ".o")
        newest = f'-DXEN_LU_TYPES_HEADER="xen_lu_{eps[-1][0]}.{eps[-1][1]}.h"'
        defs = [f"-I{inc}", f"-I{HERE}", f"-DLU_EPOCHS={listing}", newest]
        jobs.append([*defs, "-c", str(HERE / src), "-o", str(obj)])
        objs.append(obj)
    # One compiler per object, as many at once as there are CPUs.
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for f in [pool.submit(cc_run, j) for j in jobs]:
            f.result()
    exe = out / "xenlu-c"
    cc_run([*map(str, objs), "-o", str(exe)])
    return exe


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--sanitize", action="store_true")
    args = ap.parse_args()
    try:
        print(build(args.outdir, args.sanitize))
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stdout + exc.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
