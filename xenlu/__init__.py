"""xenlu: Xen Live Update and migration streams, byte-exact."""

from xenlu.errors import (
    CallerError,
    ChecksumError,
    ConversionError,
    DecodeError,
    EncodeError,
    FramingError,
    GrammarError,
    HandoverError,
    RecordError,
    UnknownRecordError,
    VersionError,
    XenLUError,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "CallerError",
    "ChecksumError",
    "ConversionError",
    "DecodeError",
    "EncodeError",
    "FramingError",
    "GrammarError",
    "HandoverError",
    "RecordError",
    "UnknownRecordError",
    "VersionError",
    "XenLUError",
    "__version__",
]
