"""The core: typed errors, epochs, layouts, rules, framing, the registry.

No stream family and no I/O here; every family builds on it.

The names below are this package's public API; its modules are private to
the family. Names load on first use, so importing the package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xenlu.core.epochs import (
        EPOCHS,
        LATEST,
        MAX_VERSION,
        MIN_VERSION,
        SPELLINGS,
        SUPPORTED_RANGE,
        Epoch,
        EpochLike,
        as_epoch,
        as_version,
        epoch_of,
        fmt_epoch,
        is_supported,
        or_latest,
        parse_epoch,
    )
    from xenlu.core.errors import (
        CallerError,
        ChecksumError,
        ConversionError,
        DecodeError,
        EncodeError,
        FramingError,
        GrammarError,
        HandoverError,
        InputError,
        RecordError,
        UnknownRecordError,
        VersionError,
        XenLUError,
        set_record_namer,
    )
    from xenlu.core.registry import (
        LIBXC,
        LIBXL,
        LU,
        OPTIONAL,
        XENSTORE,
        Ctx,
        Record,
        RecordSpec,
        Registry,
        UnknownRecord,
        fixed_record,
        load,
        record_name,
        type_text,
        unknown_mandatory,
    )

__all__ = [
    "EPOCHS",
    "LATEST",
    "LIBXC",
    "LIBXL",
    "LU",
    "MAX_VERSION",
    "MIN_VERSION",
    "OPTIONAL",
    "SPELLINGS",
    "SUPPORTED_RANGE",
    "XENSTORE",
    "CallerError",
    "ChecksumError",
    "ConversionError",
    "Ctx",
    "DecodeError",
    "EncodeError",
    "Epoch",
    "EpochLike",
    "FramingError",
    "GrammarError",
    "HandoverError",
    "InputError",
    "Record",
    "RecordError",
    "RecordSpec",
    "Registry",
    "UnknownRecord",
    "UnknownRecordError",
    "VersionError",
    "XenLUError",
    "as_epoch",
    "as_version",
    "epoch_of",
    "fixed_record",
    "fmt_epoch",
    "is_supported",
    "load",
    "or_latest",
    "parse_epoch",
    "record_name",
    "set_record_namer",
    "type_text",
    "unknown_mandatory",
]

_WHERE: dict[str, str] = {
    "CallerError": "xenlu.core.errors",
    "ChecksumError": "xenlu.core.errors",
    "ConversionError": "xenlu.core.errors",
    "Ctx": "xenlu.core.registry",
    "DecodeError": "xenlu.core.errors",
    "EPOCHS": "xenlu.core.epochs",
    "EncodeError": "xenlu.core.errors",
    "Epoch": "xenlu.core.epochs",
    "EpochLike": "xenlu.core.epochs",
    "FramingError": "xenlu.core.errors",
    "GrammarError": "xenlu.core.errors",
    "HandoverError": "xenlu.core.errors",
    "InputError": "xenlu.core.errors",
    "LATEST": "xenlu.core.epochs",
    "LIBXC": "xenlu.core.registry",
    "LIBXL": "xenlu.core.registry",
    "LU": "xenlu.core.registry",
    "MAX_VERSION": "xenlu.core.epochs",
    "MIN_VERSION": "xenlu.core.epochs",
    "OPTIONAL": "xenlu.core.registry",
    "Record": "xenlu.core.registry",
    "RecordError": "xenlu.core.errors",
    "RecordSpec": "xenlu.core.registry",
    "Registry": "xenlu.core.registry",
    "SPELLINGS": "xenlu.core.epochs",
    "SUPPORTED_RANGE": "xenlu.core.epochs",
    "UnknownRecord": "xenlu.core.registry",
    "UnknownRecordError": "xenlu.core.errors",
    "VersionError": "xenlu.core.errors",
    "XENSTORE": "xenlu.core.registry",
    "XenLUError": "xenlu.core.errors",
    "as_epoch": "xenlu.core.epochs",
    "as_version": "xenlu.core.epochs",
    "epoch_of": "xenlu.core.epochs",
    "fixed_record": "xenlu.core.registry",
    "fmt_epoch": "xenlu.core.epochs",
    "is_supported": "xenlu.core.epochs",
    "load": "xenlu.core.registry",
    "or_latest": "xenlu.core.epochs",
    "parse_epoch": "xenlu.core.epochs",
    "record_name": "xenlu.core.registry",
    "set_record_namer": "xenlu.core.errors",
    "type_text": "xenlu.core.registry",
    "unknown_mandatory": "xenlu.core.registry",
}


def __getattr__(name: str) -> object:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
