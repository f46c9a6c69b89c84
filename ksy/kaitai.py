"""Install (once) and run the Kaitai Struct compiler for the ``.ksy`` files here.

The compiler is the npm package ``kaitai-struct-compiler`` (a JavaScript
library, driven by ``compile.js`` with node); ``yaml`` parses the ``.ksy``
text for it. Both go into a project-local, git-ignored folder
(``build/kaitai``), pinned, and are installed only when missing or at another
version, so repeated runs do not reinstall.

    python ksy/kaitai.py install                # what `make kaitai` runs
    python ksy/kaitai.py compile LANG OUTDIR [FILE.ksy ...]   # default: every ksy/*.ksy
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PREFIX = Path(os.environ.get("XENLU_KAITAI_DIR", ROOT / "build" / "kaitai"))
#: The pinned npm packages: name -> version.
PACKAGES = {"kaitai-struct-compiler": "0.11.0", "yaml": "2.9.1"}


class KaitaiError(RuntimeError):
    """npm or the compiler failed; the message says what to do."""


def modules(prefix: Path = PREFIX) -> Path:
    return prefix / "node_modules"


def installed(prefix: Path = PREFIX) -> bool:
    """True when every pinned package is in ``prefix`` at its version."""
    for name, version in PACKAGES.items():
        pkg = modules(prefix) / name / "package.json"
        try:
            if json.loads(pkg.read_text(encoding="utf-8")).get("version") != version:
                return False
        except (OSError, ValueError):
            return False
    return True


def install(prefix: Path = PREFIX) -> Path:
    """Install the pinned packages into ``prefix`` unless present; return node_modules."""
    if installed(prefix):
        return modules(prefix)
    npm = shutil.which("npm")
    if npm is None:
        raise KaitaiError("npm not found: the Kaitai tests need node and npm")
    prefix.mkdir(parents=True, exist_ok=True)
    args = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save"]
    args += [f"{n}@{v}" for n, v in PACKAGES.items()]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or not installed(prefix):
        raise KaitaiError(
            f"`{' '.join(args)}` failed (is the npm registry reachable?):\n{r.stdout}{r.stderr}"
        )
    return modules(prefix)


def compile_ksy(lang: str, outdir: Path, files: list[Path], prefix: Path = PREFIX) -> list[Path]:
    """Compile ``files`` to ``lang`` sources in ``outdir``; return the new files."""
    node = shutil.which("node")
    if node is None:
        raise KaitaiError("node not found: the Kaitai tests need node")
    mods = install(prefix)
    outdir.mkdir(parents=True, exist_ok=True)
    before = set(outdir.iterdir())
    r = subprocess.run(
        [node, str(HERE / "compile.js"), str(mods), lang, str(outdir), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        raise KaitaiError(f"kaitai-struct-compiler failed:\n{r.stdout}{r.stderr}")
    return sorted(set(outdir.iterdir()) - before)


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["install"]:
            print(install())
            return 0
        if len(argv) >= 3 and argv[0] == "compile":
            files = [Path(f) for f in argv[3:]] or sorted(HERE.glob("*.ksy"))
            for p in compile_ksy(argv[1], Path(argv[2]), files):
                print(p)
            return 0
    except KaitaiError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
