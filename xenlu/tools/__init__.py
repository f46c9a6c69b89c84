"""Tools built on the families: schemas, C header, .ksy, JSON form, maps, demo.

The names below are this package's public API; its modules are private to
the family. Names load on first use, so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xenlu.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from xenlu.tools.artefacts import PATTERNS, generated, stale, write_all
    from xenlu.tools.jsonform import (
        JSON_FORMAT,
        RECORD_FAMILIES,
        JsonFormError,
        build,
        dump_to,
        from_json,
        loads,
        to_json,
    )
    from xenlu.tools.memmap import Category, HostMap, host_map
    from xenlu.tools.schema import (
        SCHEMA_FORMAT,
        Difference,
        adjacent_pairs,
        default_schema_dir,
        diff,
        dumps,
        epoch_schema,
        load_schema,
        loads_schema,
        packaged_schemas,
        record_schema,
        schema_path,
        uncovered,
        write_schemas,
    )

__all__ = [
    "JSON_FORMAT",
    "PATTERNS",
    "RECORD_FAMILIES",
    "SCHEMA_FORMAT",
    "Category",
    "Difference",
    "HostMap",
    "JsonFormError",
    "adjacent_pairs",
    "build",
    "default_schema_dir",
    "diff",
    "dump_to",
    "dumps",
    "epoch_schema",
    "from_json",
    "generated",
    "host_map",
    "load_schema",
    "loads",
    "loads_schema",
    "packaged_schemas",
    "record_schema",
    "schema_path",
    "stale",
    "to_json",
    "uncovered",
    "write_all",
    "write_schemas",
]

_WHERE: dict[str, str] = {
    "Category": "xenlu.tools.memmap",
    "Difference": "xenlu.tools.schema",
    "HostMap": "xenlu.tools.memmap",
    "JSON_FORMAT": "xenlu.tools.jsonform",
    "JsonFormError": "xenlu.tools.jsonform",
    "PATTERNS": "xenlu.tools.artefacts",
    "RECORD_FAMILIES": "xenlu.tools.jsonform",
    "SCHEMA_FORMAT": "xenlu.tools.schema",
    "adjacent_pairs": "xenlu.tools.schema",
    "build": "xenlu.tools.jsonform",
    "default_schema_dir": "xenlu.tools.schema",
    "diff": "xenlu.tools.schema",
    "dump_to": "xenlu.tools.jsonform",
    "dumps": "xenlu.tools.schema",
    "epoch_schema": "xenlu.tools.schema",
    "from_json": "xenlu.tools.jsonform",
    "generated": "xenlu.tools.artefacts",
    "host_map": "xenlu.tools.memmap",
    "load_schema": "xenlu.tools.schema",
    "loads": "xenlu.tools.jsonform",
    "loads_schema": "xenlu.tools.schema",
    "packaged_schemas": "xenlu.tools.schema",
    "record_schema": "xenlu.tools.schema",
    "schema_path": "xenlu.tools.schema",
    "stale": "xenlu.tools.artefacts",
    "to_json": "xenlu.tools.jsonform",
    "uncovered": "xenlu.tools.schema",
    "write_all": "xenlu.tools.artefacts",
    "write_schemas": "xenlu.tools.schema",
}


__getattr__ = lazy_getattr(__name__, _WHERE, globals())
