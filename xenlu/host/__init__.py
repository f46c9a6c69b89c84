"""Whole-host semantics: validation, the restore plan, epoch conversion.

Validation is split by LU spec section; conversion follows LU spec §6.

The names below are this package's public API; its modules are private to
the family. Names load on first use, so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xenlu.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from xenlu.host.compat import (
        KINDS,
        STEPS,
        Cover,
        Fill,
        Loss,
        Step,
        StepResult,
        convert,
        inverse_kind,
        steps_between,
    )
    from xenlu.host.restore_plan import EDGE_KINDS, PASSES, Edge, Pass, Plan, plan
    from xenlu.host.validation import (
        CODES,
        CORRUPTION_FINDINGS,
        Finding,
        Host,
        IoreqTable,
        Method,
        Omitted,
        OwnerIndex,
        Peers,
        Report,
        Severity,
        Table,
        interdomain_peers,
        owner_index,
        validate,
    )

__all__ = [
    "CODES",
    "CORRUPTION_FINDINGS",
    "EDGE_KINDS",
    "KINDS",
    "PASSES",
    "STEPS",
    "Cover",
    "Edge",
    "Fill",
    "Finding",
    "Host",
    "IoreqTable",
    "Loss",
    "Method",
    "Omitted",
    "OwnerIndex",
    "Pass",
    "Peers",
    "Plan",
    "Report",
    "Severity",
    "Step",
    "StepResult",
    "Table",
    "convert",
    "interdomain_peers",
    "inverse_kind",
    "owner_index",
    "plan",
    "steps_between",
    "validate",
]

_WHERE: dict[str, str] = {
    "CODES": "xenlu.host.validation",
    "CORRUPTION_FINDINGS": "xenlu.host.validation",
    "Cover": "xenlu.host.compat",
    "EDGE_KINDS": "xenlu.host.restore_plan",
    "Edge": "xenlu.host.restore_plan",
    "Fill": "xenlu.host.compat",
    "Finding": "xenlu.host.validation",
    "Host": "xenlu.host.validation",
    "IoreqTable": "xenlu.host.validation",
    "KINDS": "xenlu.host.compat",
    "Loss": "xenlu.host.compat",
    "Method": "xenlu.host.validation",
    "Omitted": "xenlu.host.validation",
    "OwnerIndex": "xenlu.host.validation",
    "PASSES": "xenlu.host.restore_plan",
    "Pass": "xenlu.host.restore_plan",
    "Peers": "xenlu.host.validation",
    "Plan": "xenlu.host.restore_plan",
    "Report": "xenlu.host.validation",
    "STEPS": "xenlu.host.compat",
    "Severity": "xenlu.host.validation",
    "Step": "xenlu.host.compat",
    "StepResult": "xenlu.host.compat",
    "Table": "xenlu.host.validation",
    "convert": "xenlu.host.compat",
    "interdomain_peers": "xenlu.host.validation",
    "inverse_kind": "xenlu.host.compat",
    "owner_index": "xenlu.host.validation",
    "plan": "xenlu.host.restore_plan",
    "steps_between": "xenlu.host.compat",
    "validate": "xenlu.host.validation",
}


__getattr__ = lazy_getattr(__name__, _WHERE, globals())
