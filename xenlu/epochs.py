"""Xen versions and Live Update epochs (LU spec §3).

An *epoch* is a Xen version at which something in the LU spec changes. A
stream's epoch is the newest epoch not after the version that wrote it.

>>> epoch_of(4, 18)
(4, 17)
>>> fmt_epoch(parse_epoch("4.15"))
'4.15'
"""

from __future__ import annotations

from xenlu.errors import CallerError

__all__ = [
    "EPOCHS",
    "MAX_VERSION",
    "MIN_VERSION",
    "Epoch",
    "epoch_of",
    "fmt_epoch",
    "is_supported",
    "parse_epoch",
]

Epoch = tuple[int, int]

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


def is_supported(major: int, minor: int) -> bool:
    """True when Xen ``major.minor`` lies in the supported range 4.11 … 4.21."""
    return MIN_VERSION <= (major, minor) <= MAX_VERSION


def epoch_of(major: int, minor: int) -> Epoch:
    """The epoch of Xen ``major.minor``; :class:`CallerError` outside 4.11 … 4.21."""
    if not is_supported(major, minor):
        raise CallerError(
            f"Xen {major}.{minor} is outside the supported range "
            f"{fmt_epoch(MIN_VERSION)} … {fmt_epoch(MAX_VERSION)}"
        )
    best = EPOCHS[0]
    for e in EPOCHS:
        if e <= (major, minor):
            best = e
    return best


def parse_epoch(text: str) -> Epoch:
    """Parse ``"X.Y"`` into a version tuple (not rounded down to an epoch)."""
    try:
        major_s, minor_s = text.strip().split(".")
        return (int(major_s), int(minor_s))
    except ValueError:
        raise CallerError(f"expected a Xen version 'X.Y', got {text!r}") from None


def fmt_epoch(e: Epoch) -> str:
    """Format a version tuple as ``"X.Y"``."""
    return f"{e[0]}.{e[1]}"
