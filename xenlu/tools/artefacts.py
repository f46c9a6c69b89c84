"""Every file generated from xenlu's declarations, and the check that keeps them fresh.

* ``xenlu/schemas/lu-<X.Y>.json``: ``xenlu schema write xenlu/schemas``;
  kept fresh by tests/test_schema.py and tests/test_artefacts.py.
* ``include/xen_lu_<X.Y>.h``: ``xenlu schema c-header --dir include``;
  tests/test_cgen.py and tests/test_artefacts.py.
* ``ksy/xen_lu_<X>_<Y>.ksy``, ``ksy/xen_libxc.ksy``: ``xenlu schema ksy --dir
  ksy``; tests/test_ksy.py and tests/test_artefacts.py.

``make schemas`` runs all three. :func:`stale` lists the committed files
that differ from what the code generates (or are missing, or are left over
from an epoch the code no longer has); :func:`write_all` regenerates them.

>>> from pathlib import Path
>>> sorted(generated())[0], len(generated()) == 3 * 10 + 1
('include/xen_lu_4.11.h', True)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from xenlu.core.epochs import EPOCHS

__all__ = ["PATTERNS", "generated", "stale", "write_all"]

#: The folders and file patterns that hold generated files only.
PATTERNS = (("xenlu/schemas", "lu-*.json"), ("include", "xen_lu_*.h"), ("ksy", "*.ksy"))


def _makers() -> dict[str, Callable[[], str]]:
    from xenlu.tools.cgen import c_header, header_name
    from xenlu.tools.ksy import LIBXC_KSY, ksy_name, libxc_ksy, lu_ksy
    from xenlu.tools.schema import dumps, epoch_schema, schema_path

    out: dict[str, Callable[[], str]] = {}
    for e in EPOCHS:
        out[f"xenlu/schemas/{schema_path(e, '.').name}"] = partial(
            lambda e: dumps(epoch_schema(e)), e
        )
        out[f"include/{header_name(e)}"] = partial(c_header, e)
        out[f"ksy/{ksy_name(e)}"] = partial(lu_ksy, e)
    out[f"ksy/{LIBXC_KSY}"] = libxc_ksy
    return dict(sorted(out.items()))


def generated() -> dict[str, str]:
    """Relative path → the text the code generates for it."""
    return {path: make() for path, make in _makers().items()}


def stale(root: str | os.PathLike[str]) -> list[str]:
    """The generated files under ``root`` that are out of date, missing or orphaned."""
    base = Path(root)
    want = generated()
    out = []
    for rel, text in want.items():
        p = base / rel
        try:
            if p.read_text(encoding="utf-8") != text:
                out.append(rel)
        except FileNotFoundError:
            out.append(rel)
    for folder, pattern in PATTERNS:
        for p in sorted((base / folder).glob(pattern)):
            rel = f"{folder}/{p.name}"
            if rel not in want:
                out.append(rel)
    return out


def write_all(root: str | os.PathLike[str]) -> list[Path]:
    """Regenerate every generated file under ``root``; return the paths written."""
    base = Path(root)
    out = []
    for rel, text in generated().items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        out.append(p)
    return out
