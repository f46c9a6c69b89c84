"""The module paths of the package layout before issue 12's move, for
benchmarking an older revision with today's ``run.py`` (whose imports use the
new paths): new dotted name → the old module it was moved from (taken from the
move commit's renames). Used only by ``sitecustomize`` of this directory, and
only when the package under test has no ``xenlu/core/``."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import types
from typing import Any

NEW_TO_OLD: dict[str, str] = {
    # kept at their old paths as deprecated aliases, so git saw no rename
    "xenlu.lu.stream": "xenlu.lu_stream",
    "xenlu.testing.hostgen": "xenlu.hostgen",
    "xenlu.cli.artefacts": "xenlu.cli_artefacts",
    "xenlu.cli.compat": "xenlu.cli_compat",
    "xenlu.cli.convert": "xenlu.cli_convert",
    "xenlu.cli.demo": "xenlu.demo",
    "xenlu.cli.io": "xenlu.cli_io",
    "xenlu.cli.map": "xenlu.cli_map",
    "xenlu.cli.progress": "xenlu.cli_progress",
    "xenlu.cli.stream": "xenlu.cli_stream",
    "xenlu.cli.validate": "xenlu.cli_validate",
    "xenlu.cli.view": "xenlu.cli_view",
    "xenlu.core.epochs": "xenlu.epochs",
    "xenlu.core.errors": "xenlu.errors",
    "xenlu.core.framing": "xenlu.framing",
    "xenlu.core.layout": "xenlu.layout",
    "xenlu.core.names": "xenlu.names",
    "xenlu.core.registry": "xenlu.registry",
    "xenlu.core.rules": "xenlu.rules",
    "xenlu.core.values": "xenlu.values",
    "xenlu.feed.decoder": "xenlu.feed",
    "xenlu.feed.libxc": "xenlu.libxc_feed",
    "xenlu.feed.libxl": "xenlu.libxl_feed",
    "xenlu.feed.lu": "xenlu.lu_feed",
    "xenlu.feed.pipe": "xenlu.pipe_feed",
    "xenlu.feed.xenstore": "xenlu.xenstore_feed",
    "xenlu.host._compat_model": "xenlu._compat_model",
    "xenlu.host._compat_steps": "xenlu._compat_steps",
    "xenlu.host.compat": "xenlu.compat",
    "xenlu.host.restore_plan": "xenlu.plan",
    "xenlu.host.validation": "xenlu.validate",
    "xenlu.host.validation._arrays": "xenlu.validate._arrays",
    "xenlu.host.validation._codes": "xenlu.validate._codes",
    "xenlu.host.validation._domain": "xenlu.validate._domain",
    "xenlu.host.validation._evtchn": "xenlu.validate._evtchn",
    "xenlu.host.validation._grants": "xenlu.validate._grants",
    "xenlu.host.validation._host": "xenlu.validate._host",
    "xenlu.host.validation._index": "xenlu.validate._index",
    "xenlu.host.validation._index_build": "xenlu.validate._index_build",
    "xenlu.host.validation._ownership": "xenlu.validate._ownership",
    "xenlu.host.validation._p2m": "xenlu.validate._p2m",
    "xenlu.host.validation._report": "xenlu.validate._report",
    "xenlu.lu._handover_pages": "xenlu._handover_pages",
    "xenlu.lu.check": "xenlu.lu_check",
    "xenlu.lu.encode": "xenlu.lu_encode",
    "xenlu.lu.grammar": "xenlu.lu_grammar",
    "xenlu.lu.handover": "xenlu.handover",
    "xenlu.lu.host_records": "xenlu.lu_host_records",
    "xenlu.lu.io_records": "xenlu.lu_io_records",
    "xenlu.lu.memory_records": "xenlu.lu_memory_records",
    "xenlu.lu.model": "xenlu.lu_model",
    "xenlu.lu.records": "xenlu.lu_records",
    "xenlu.lu.values": "xenlu.lu_values",
    "xenlu.lu.walk": "xenlu.lu_walk",
    "xenlu.migration.hvmctx": "xenlu.hvmctx",
    "xenlu.migration.libxc": "xenlu.libxc",
    "xenlu.migration.libxc_grammar": "xenlu.libxc_grammar",
    "xenlu.migration.libxc_page_data": "xenlu.libxc_page_data",
    "xenlu.migration.libxc_records": "xenlu.libxc_records",
    "xenlu.migration.libxc_stream": "xenlu.libxc_stream",
    "xenlu.migration.libxl": "xenlu.libxl",
    "xenlu.migration.libxl_records": "xenlu.libxl_records",
    "xenlu.testing._hostgen_build": "xenlu._hostgen_build",
    "xenlu.testing._hostgen_vary": "xenlu._hostgen_vary",
    "xenlu.testing.strategies": "xenlu.strategies",
    "xenlu.testing.strategies._base": "xenlu.strategies._base",
    "xenlu.testing.strategies._corruptions": "xenlu.strategies._corruptions",
    "xenlu.testing.strategies._faults": "xenlu.strategies._faults",
    "xenlu.testing.strategies._hosts": "xenlu.strategies._hosts",
    "xenlu.testing.strategies._libxc": "xenlu.strategies._libxc",
    "xenlu.testing.strategies._records": "xenlu.strategies._records",
    "xenlu.testing.strategies._xenstore": "xenlu.strategies._xenstore",
    "xenlu.testing.strategies_xenstore": "xenlu.strategies_xenstore",
    "xenlu.testing.xenstore_hostgen": "xenlu.xenstore_hostgen",
    "xenlu.tools.artefacts": "xenlu.artefacts",
    "xenlu.tools.cgen": "xenlu.cgen",
    "xenlu.tools.jsonform": "xenlu.jsonform",
    "xenlu.tools.jsonform_text": "xenlu.jsonform_text",
    "xenlu.tools.ksy": "xenlu.ksy",
    "xenlu.tools.memmap": "xenlu.memmap",
    "xenlu.tools.schema": "xenlu.schema",
    "xenlu.tools.show": "xenlu.show",
    "xenlu.tools.streamdiff": "xenlu.streamdiff",
    "xenlu.xenstore.codec": "xenlu.xenstore_codec",
    "xenlu.xenstore.cwriter": "xenlu.xenstore_cwriter",
    "xenlu.xenstore.records": "xenlu.xenstore_records",
    "xenlu.xenstore.stream": "xenlu.xenstore_stream",
    "xenlu.xenstore.validate": "xenlu.xenstore_validate",
}

#: The new packages, empty placeholders over an old package. ``xenlu.cli``
#: and ``xenlu.feed`` are not among them: they are modules of the old layout
#: (the CLI commands run old ``xenlu.cli:main`` instead; see ``run.py``).
PACKAGES = {n.rsplit(".", 1)[0] for n in NEW_TO_OLD} - {"xenlu", "xenlu.cli", "xenlu.feed"}


def _old_package() -> bool:
    """Is the imported ``xenlu`` a package of the old layout (no ``core/``)?"""
    import os
    import sys

    pkg = sys.modules.get("xenlu")
    where = list(getattr(pkg, "__path__", []) or [])
    return bool(where) and not os.path.isdir(os.path.join(where[0], "core"))


class _Alias(importlib.abc.Loader):
    def __init__(self, old: str | None) -> None:
        self.old = old

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        if self.old is None:
            mod = types.ModuleType(spec.name)
            mod.__path__ = []
            return mod
        return importlib.import_module(self.old)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


class OldLayout(importlib.abc.MetaPathFinder):
    """Serve ``xenlu.lu.stream`` as the old ``xenlu.lu_stream``, and so on."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if not name.startswith("xenlu.") or not _old_package():
            return None
        old = NEW_TO_OLD.get(name)
        if old is not None and old != name:
            return importlib.machinery.ModuleSpec(name, _Alias(old))
        if name in PACKAGES:
            return importlib.machinery.ModuleSpec(name, _Alias(None), is_package=True)
        return None
