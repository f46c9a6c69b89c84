"""xenlu: Xen Live Update and migration streams, byte-exact.

>>> import xenlu
>>> from xenlu.testing.hostgen import make_host
>>> host = make_host((4, 11), n_hvm=1, mem_mib=2, dom0_mem_mib=2)
>>> data = xenlu.encode(host)
>>> xenlu.decode(data) == host
True
"""

from typing import TYPE_CHECKING

from xenlu.api import FORMATS, decode, detect_format, encode, encode_to, verify
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
)
from xenlu.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from xenlu.feed.decoder import Decoder, verify_stream

__version__ = "0.1.0.dev0"

__all__ = [
    "FORMATS",
    "CallerError",
    "ChecksumError",
    "ConversionError",
    "DecodeError",
    "Decoder",
    "EncodeError",
    "FramingError",
    "GrammarError",
    "HandoverError",
    "InputError",
    "RecordError",
    "UnknownRecordError",
    "VersionError",
    "XenLUError",
    "__version__",
    "decode",
    "detect_format",
    "encode",
    "encode_to",
    "verify",
    "verify_stream",
]


# ``Decoder`` and ``verify_stream`` load when first asked for: ``import xenlu``
# and every command that reads a whole file do without the incremental
# reader's import (start-up, issue 12).
__getattr__ = lazy_getattr(
    __name__, {"Decoder": "xenlu.feed.decoder", "verify_stream": "xenlu.feed.decoder"}, globals()
)
