"""Cross-version conversion of Live Update streams: upgrade and rollback (LU spec §3, §6).

Every adjacent pair of epochs (§3: 4.11 → 4.12 → 4.13 → 4.14 → 4.15 → 4.16 →
4.17 → 4.19 → 4.20 → 4.21) has one **upgrade step** and one **rollback step**.
A step is a small pure function on the decoded model: it takes an
:class:`~xenlu.lu.stream.LUStream` of its source epoch and returns a new
stream of its target epoch, never touching the input. What it filled and
what it lost go to the caller as :class:`Fill` and :class:`Loss` rows.

Each step is registered in :data:`STEPS` with the schema differences it
covers (:class:`Cover`, e.g. ``("LU_DOMAIN", "iommu_opts", "field-added")``);
:mod:`xenlu.tools.schema` checks that every layout difference between two epochs
is covered by a registered step. The steps live in :mod:`xenlu.host._compat_steps`
(those that only add a field with a constant "as before" value, 4.16 ↔ 4.17
and 4.17 ↔ 4.19, are generated from the layouts); the report and the step
table in :mod:`xenlu.host._compat_model`.

:func:`convert` composes the steps for any pair of supported versions. The
target may be a version that is not an epoch (4.18): the steps run to its
epoch (4.17) and LU_VERSION gets the exact target version.

Rules (§6 table; each step cites its row):

* a field the target has and the source lacks is filled by its rule and
  reported;
* a rollback is refused with a :class:`~xenlu.core.errors.ConversionError` naming
  domain, record, field and value where the older layout cannot say the same
  thing, unless ``allow_loss``: then the field is dropped, a value the older
  layout cannot hold becomes the upgrade fill, a flag bit the older epoch
  lacks is cleared, and every loss is reported;
* LU_P2M access 10 (``r_pw``) is refused even with ``allow_loss``;
* a channel bound to VIRQ 11 is refused across 4.11 ↔ 4.12 both ways (with
  ``allow_loss`` it is dropped and reported).

Bulk arrays whose layout does not change are passed through as the same
objects; arrays that change (LU_EVTCHNS at 4.15, EXTRA cleared on rollback)
are converted with vectorised numpy.

Example::

    >>> from xenlu.testing.hostgen import make_host
    >>> new, report = convert(make_host((4, 11), n_hvm=1, mem_mib=4), to=(4, 15))
    >>> new.xen_version, report.lossless
    ('4.15', True)
    >>> sorted({f.field for f in report.fills if f.record == "LU_DOMAIN"})[:3]
    ['cdf_flags.iommu', 'cdf_flags.nested_virt', 'iommu_opts']
"""

from __future__ import annotations

import xenlu.host._compat_steps  # noqa: F401  (registers every step into STEPS)
from xenlu.core.epochs import (
    EPOCHS,
    EpochLike,
    as_version,
    epoch_of,
    fmt_epoch,
)
from xenlu.core.errors import CallerError
from xenlu.host._compat_model import (
    KINDS,
    STEPS,
    Cover,
    Fill,
    Loss,
    Report,
    Step,
    StepResult,
    inverse_kind,
    new_stream,
    steps_between,
)
from xenlu.lu.stream import LUDomain, LUStream

__all__ = [
    "KINDS",
    "STEPS",
    "Cover",
    "Fill",
    "Loss",
    "Report",
    "Step",
    "StepResult",
    "convert",
    "inverse_kind",
    "steps_between",
]

assert len(STEPS) == 2 * (len(EPOCHS) - 1)


# --- convert --------------------------------------------------------------------------


def convert(
    stream: LUStream, to: EpochLike, *, allow_loss: bool = False
) -> tuple[LUStream, Report]:
    """Upgrade or roll back ``stream`` to Xen version ``to`` (LU spec §3, §6).

    Runs one registered step per epoch boundary crossed, then sets LU_VERSION
    to exactly ``to`` (which may lie inside an epoch, e.g. 4.18). The input
    is never modified; unchanged bulk arrays are shared with it.

    Raises :class:`~xenlu.core.errors.ConversionError` (naming step, domain,
    record, field and value) where a rollback would lose information, unless
    ``allow_loss``; an LU_P2M ``r_pw`` rollback is refused even then.

    >>> from xenlu.testing.hostgen import make_host
    >>> up, rep = convert(make_host((4, 11), n_hvm=1, mem_mib=4), "4.18")
    >>> up.xen_version, rep.steps[-1]
    ('4.18', '4.16->4.17')
    >>> down, rep = convert(up, (4, 11))
    >>> rep.direction, rep.lossless
    ('rollback', True)
    """
    from xenlu.api import expect_format

    expect_format(stream, "lu", "convert")
    target = as_version(to)
    source = stream.version
    stream.check_domain_layouts(CallerError, f"a Xen {stream.xen_version} stream")
    chain = steps_between(stream.epoch, epoch_of(*target))
    fills: list[Fill] = []
    losses: list[Loss] = []
    cur = stream
    for step in chain:
        res = step.apply(cur, allow_loss)
        cur = res.stream
        fills += res.fills
        losses += res.losses
    # Exact target version; domain sections the steps passed through untouched
    # get a fresh record list so the result shares no mutable container with
    # the input (records and arrays are immutable and stay shared).
    originals = {id(d) for d in stream.domains}
    domains = [LUDomain(list(d.records)) if id(d) in originals else d for d in cur.domains]
    out = new_stream(cur, target, domains)
    direction = "upgrade" if target > source else "rollback" if target < source else "none"
    report = Report(
        fmt_epoch(source),
        fmt_epoch(target),
        direction,
        [s.name for s in chain],
        allow_loss,
        fills,
        losses,
    )
    return out, report
