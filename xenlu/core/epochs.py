"""Xen versions and Live Update epochs (LU spec §3).

An *epoch* is a Xen version at which something in the LU spec changes. A
stream's epoch is the newest epoch not after the version that wrote it.

Every public function of xenlu that takes a Xen version or an epoch accepts
the same spellings, parsed here by :func:`as_version` / :func:`as_epoch`:
the text ``"4.15"``, the tuple ``(4, 15)`` (an :data:`Epoch` value, or any
two-integer sequence such as ``[4, 15]``). Anything else, or a version
outside 4.11 … 4.21, is a :class:`~xenlu.core.errors.CallerError` that names the
accepted spellings and the known epochs.

>>> epoch_of(4, 18)
(4, 17)
>>> as_epoch("4.18"), as_epoch((4, 15)), as_version("4.18")
((4, 17), (4, 15), (4, 18))
>>> fmt_epoch(parse_epoch("4.15"))
'4.15'
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence

from xenlu.core.errors import CallerError

__all__ = [
    "EPOCHS",
    "LATEST",
    "MAX_VERSION",
    "MIN_VERSION",
    "SPELLINGS",
    "SUPPORTED_RANGE",
    "Epoch",
    "EpochLike",
    "as_epoch",
    "as_version",
    "epoch_of",
    "fmt_epoch",
    "is_supported",
    "or_latest",
    "parse_epoch",
]

#: A Xen version or epoch as ``(major, minor)``.
Epoch = tuple[int, int]
#: What a public function taking a version or epoch accepts (see :func:`as_version`).
EpochLike = Epoch | str | Sequence[int]

#: Every epoch of LU spec §3, oldest first.
EPOCHS: tuple[Epoch, ...] = (
    (4, 11),
    (4, 12),
    (4, 13),
    (4, 14),
    (4, 15),
    (4, 16),
    (4, 17),
    (4, 19),
    (4, 20),
    (4, 21),
)
MIN_VERSION: Epoch = (4, 11)
MAX_VERSION: Epoch = (4, 21)

#: The accepted spellings, as error messages name them.
SPELLINGS = "'4.15' or (4, 15)"

_TEXT = re.compile(r"(\d{1,9})\.(\d{1,9})")


def _known() -> str:
    return ", ".join(fmt_epoch(e) for e in EPOCHS)


def _range() -> str:
    return (
        f"the supported range {fmt_epoch(MIN_VERSION)} … {fmt_epoch(MAX_VERSION)} "
        f"(epochs {_known()})"
    )


def is_supported(major: int, minor: int) -> bool:
    """True when Xen ``major.minor`` lies in the supported range 4.11 … 4.21."""
    return MIN_VERSION <= (major, minor) <= MAX_VERSION


def epoch_of(major: int, minor: int) -> Epoch:
    """The epoch of Xen ``major.minor``; :class:`CallerError` outside 4.11 … 4.21."""
    if not is_supported(major, minor):
        raise CallerError(f"Xen {major}.{minor} is outside {_range()}")
    best = EPOCHS[0]
    for e in EPOCHS:
        if e <= (major, minor):
            best = e
    return best


def _spelling_error(value: object) -> CallerError:
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    hint = ""
    if isinstance(value, float):
        # 4.1 and 4.10 are the same float: only text or a tuple says which.
        hint = " (a float cannot tell 4.1 from 4.10)"
    return CallerError(
        f"expected a Xen version or epoch spelled {SPELLINGS}, got {shown} "
        f"({type(value).__name__}){hint}; known epochs: {_known()}"
    )


def _split(value: object) -> Epoch:
    """``(major, minor)`` of any accepted spelling, not range-checked."""
    if isinstance(value, str):
        m = _TEXT.fullmatch(value.strip())
        if m is None:
            raise _spelling_error(value)
        return (int(m[1]), int(m[2]))
    if (
        isinstance(value, Sequence)
        and not isinstance(value, (bytes, bytearray))
        and len(value) == 2
        and not any(isinstance(x, bool) for x in value)
    ):
        try:
            major, minor = operator.index(value[0]), operator.index(value[1])
        except TypeError:
            raise _spelling_error(value) from None
        if major >= 0 and minor >= 0:
            return (major, minor)
    raise _spelling_error(value)


def as_version(value: object) -> Epoch:
    """A Xen version ``(major, minor)`` from any accepted spelling, inside 4.11 … 4.21.

    Not rounded down to an epoch (``"4.18"`` stays ``(4, 18)``).

    >>> as_version([4, 12])
    (4, 12)
    >>> as_version(4.15)
    Traceback (most recent call last):
    ...
    xenlu.core.errors.CallerError: expected a Xen version or epoch spelled '4.15' or (4, 15), \
got 4.15 (float) (a float cannot tell 4.1 from 4.10); known epochs: 4.11, 4.12, 4.13, \
4.14, 4.15, 4.16, 4.17, 4.19, 4.20, 4.21
    """
    v = _split(value)
    if not is_supported(*v):
        raise CallerError(f"Xen {fmt_epoch(v)} is outside {_range()}")
    return v


def as_epoch(value: object) -> Epoch:
    """The epoch of any accepted spelling of a Xen version (``"4.18"`` → ``(4, 17)``)."""
    return epoch_of(*as_version(value))


def parse_epoch(text: str) -> Epoch:
    """Parse ``"X.Y"`` into a version tuple (not rounded down, not range-checked).

    Prefer :func:`as_version` / :func:`as_epoch`, which also check the range.
    """
    if not isinstance(text, str):
        raise _spelling_error(text)
    return _split(text)


def fmt_epoch(e: Epoch) -> str:
    """Format a version tuple as ``"X.Y"``."""
    return f"{e[0]}.{e[1]}"


#: The supported versions as messages and help texts name them: "4.11 … 4.21".
SUPPORTED_RANGE = f"{fmt_epoch(MIN_VERSION)} … {fmt_epoch(MAX_VERSION)}"

#: The newest epoch: the layouts a record decoded outside an LU stream (no
#: LU_VERSION, so no epoch) is read with.
LATEST: Epoch = EPOCHS[-1]


def or_latest(epoch: Epoch | None) -> Epoch:
    """``epoch``, or :data:`LATEST` when there is none (a record read on its own).

    >>> or_latest(None), or_latest((4, 13))
    ((4, 21), (4, 13))
    """
    return LATEST if epoch is None else epoch
