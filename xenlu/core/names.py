"""Value and bit names as enums, with the epochs each name is valid in.

A field's allowed values (``IntEnum``) and valid flag bits (``IntFlag``) are
declared once, as an enum beside the record declarations
(:mod:`xenlu.lu.records`). :func:`xenlu.core.layout.fld` takes the enum itself
and derives the ``value → name`` / ``bit number → name`` mapping its checks,
schemas and strategies use; validate, compat, plan and hand-over import the
same enum instead of repeating its numbers.

A member that exists only in some epochs says so with :func:`epoch_limited`
(the span is kept beside the enum rather than in the member's value, so the
member stays a plain int everywhere it is used)::

    >>> import enum
    >>> @epoch_limited(iommu=("4.13", None))
    ... class Demo(enum.IntFlag):
    ...     hvm = 1 << 0
    ...     iommu = 1 << 5
    >>> bit_names(Demo)
    {0: 'hvm', 5: ('iommu', '4.13', None)}
    >>> value_names(Demo)[32]
    ('iommu', '4.13', None)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TypeVar

__all__ = ["NameSource", "Named", "bit_names", "epoch_limited", "value_names"]

#: A bit or value name, optionally limited to epochs: ``"name"`` or
#: ``("name", "4.13", None)`` (valid from 4.13 on) or ``("name", None, "4.13")``
#: (valid before 4.13 only).
Named = str | tuple[str, str | None, str | None]

#: What ``fld(values=…, bits=…)`` accepts: an enum, or a mapping kept for
#: names that are not identifiers (``{12: "4 KiB"}``).
NameSource = Mapping[int, Named] | type[enum.IntEnum] | type[enum.IntFlag]

_E = TypeVar("_E", bound=type[enum.Enum])
_SPANS: dict[type[enum.Enum], dict[str, tuple[str | None, str | None]]] = {}


def epoch_limited(**spans: tuple[str | None, str | None]) -> Callable[[_E], _E]:
    """Class decorator: limit members of an enum to epochs ``(since, until)``.

    ``since`` is the first epoch the name is valid in, ``until`` the first it
    is not (either may be None).
    """

    def deco(cls: _E) -> _E:
        unknown = sorted(set(spans) - set(cls.__members__))
        if unknown:
            raise TypeError(f"{cls.__name__} has no member {', '.join(unknown)}")
        _SPANS[cls] = dict(spans)
        return cls

    return deco


def value_names(src: NameSource) -> dict[int, Named]:
    """``value → name`` (with its epoch span) of an enum, or a copy of a mapping."""
    if isinstance(src, Mapping):
        return dict(src)
    spans = _SPANS.get(src, {})
    out: dict[int, Named] = {}
    for name, member in src.__members__.items():
        span = spans.get(name)
        out[int(member.value)] = name if span is None else (name, span[0], span[1])
    return out


def bit_names(src: NameSource) -> dict[int, Named]:
    """``bit number → name`` of an ``IntFlag`` of single bits, or a copy of a mapping."""
    if isinstance(src, Mapping):
        return dict(src)
    out: dict[int, Named] = {}
    for value, named in value_names(src).items():
        if value <= 0 or value & (value - 1):
            raise TypeError(f"{src.__name__}: {named!r} is not a single bit ({value:#x})")
        out[value.bit_length() - 1] = named
    return out
