"""Shared pieces of the strategies: epoch arguments, the draw type, constants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from xenlu.core.epochs import EPOCHS, MAX_VERSION, MIN_VERSION, Epoch, EpochLike, as_epoch, epoch_of

EpochArg = EpochLike | None
Draw = Callable[[SearchStrategy[Any]], Any]

INVALID_MFN = 0xFFFFFFFFFFFFFFFF
U64 = np.dtype("<u8")

#: Records :func:`records` deliberately has no strategy for, with the reason.
EXCLUDED: dict[tuple[str, str], str] = {
    ("libxc", "TOOLSTACK"): "deprecated: every decoder refuses it, so no valid value exists",
    ("libxl", "LIBXC_CONTEXT"): (
        "an empty marker whose value is the embedded libxc stream: see libxl_streams()"
    ),
}


# --- epochs -------------------------------------------------------------------


def epoch_arg(epoch: EpochArg) -> Epoch | None:
    """Normalise ``"4.18"`` / ``(4, 18)`` to the epoch (4, 17); None stays None."""
    return None if epoch is None else as_epoch(epoch)


def supported_versions(epoch: EpochArg = None) -> list[tuple[int, int]]:
    """Every supported Xen version, :data:`~xenlu.core.epochs.MIN_VERSION` …
    :data:`~xenlu.core.epochs.MAX_VERSION` (whose epoch is ``epoch``, when given).

    >>> supported_versions("4.17")
    [(4, 17), (4, 18)]
    """
    e = epoch_arg(epoch)
    out = [(4, m) for m in range(MIN_VERSION[1], MAX_VERSION[1] + 1)]
    return [v for v in out if e is None or epoch_of(*v) == e]


def epoch_draws(epoch: EpochArg) -> SearchStrategy[Epoch]:
    e = epoch_arg(epoch)
    return st.just(e) if e is not None else st.sampled_from(EPOCHS)
