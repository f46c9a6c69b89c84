"""Findings, the bounded report and the emitter every check writes through."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xenlu.host.validation._arrays import I64, Arr, group_starts
from xenlu.host.validation._codes import CODES, RECORD_RANK, Severity
from xenlu.lu.values import DOMID_XEN

__all__ = ["Finding", "Omitted", "Others", "Out", "Report", "Vals"]


@dataclass(frozen=True)
class Finding:
    """One semantic problem of a stream.

    ``domid`` is the domain whose record holds the offending entry
    (``DOMID_XEN`` for the global section); ``others`` every other domain
    involved; ``entry`` the index within that domain's logical array of
    ``record`` (None for a whole-record finding); ``values`` the offending
    values.

    >>> f = Finding("error", "OWN_DUPLICATE", "frame 0x10 owned twice", 1, (2,),
    ...             "LU_PAGE_OWNERSHIP", 5, {"mfn": 16})
    >>> str(f)
    'error OWN_DUPLICATE dom1 LU_PAGE_OWNERSHIP[5]: frame 0x10 owned twice (others: dom2)'
    """

    severity: Severity
    code: str
    message: str
    domid: int
    others: tuple[int, ...]
    record: str
    entry: int | None
    values: dict[str, int | str] = field(default_factory=dict)

    def sort_key(self) -> tuple[Any, ...]:
        """Global section first, then by domid, record, entry, code."""
        return (
            self.domid != DOMID_XEN,
            self.domid,
            RECORD_RANK.get(self.record, 99),
            self.record,
            -1 if self.entry is None else self.entry,
            self.code,
            self.others,
            self.message,
            tuple(sorted((k, str(v)) for k, v in self.values.items())),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``values`` keys sorted)."""
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "domid": self.domid,
            "others": list(self.others),
            "record": self.record,
            "entry": self.entry,
            "values": {k: self.values[k] for k in sorted(self.values)},
        }

    def __str__(self) -> str:
        who = "xen" if self.domid == DOMID_XEN else f"dom{self.domid}"
        at = self.record if self.entry is None else f"{self.record}[{self.entry}]"
        tail = ""
        if self.others:
            tail = " (others: " + ", ".join(f"dom{d}" for d in self.others) + ")"
        return f"{self.severity} {self.code} {who} {at}: {self.message}{tail}"


@dataclass(frozen=True)
class Omitted:
    """Findings of one code in one domain beyond the report's cap."""

    code: str
    domid: int
    severity: Severity
    total: int
    reported: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "domid": self.domid,
            "severity": self.severity,
            "total": self.total,
            "reported": self.reported,
        }


@dataclass
class Report:
    """The result of :func:`validate`: every finding, in a deterministic order.

    >>> r = Report([], [], 100)
    >>> r.ok, r.to_json()["errors"], r.dumps()[:32]
    (True, 0, '{"errors": 0, "findings": [], "m')
    """

    findings: list[Finding]
    omitted: list[Omitted]
    max_per_code: int
    method: str = "auto"

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not any(f.severity == "error" for f in self.findings)

    def counts(self) -> dict[str, int]:
        """code → number of findings, omitted ones included."""
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.code] = out.get(f.code, 0) + 1
        for o in self.omitted:
            out[o.code] = out.get(o.code, 0) + o.total - o.reported
        return dict(sorted(out.items()))

    def _total(self, severity: str) -> int:
        n = sum(1 for f in self.findings if f.severity == severity)
        return n + sum(o.total - o.reported for o in self.omitted if o.severity == severity)

    @property
    def nr_errors(self) -> int:
        """Errors, omitted ones included."""
        return self._total("error")

    @property
    def nr_warnings(self) -> int:
        """Warnings, omitted ones included."""
        return self._total("warning")

    def codes(self) -> set[str]:
        """Every code reported."""
        return {f.code for f in self.findings}

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON data (``json.dumps`` works on it)."""
        return {
            "ok": self.ok,
            "errors": self.nr_errors,
            "warnings": self.nr_warnings,
            "max_per_code": self.max_per_code,
            "method": self.method,
            "findings": [f.to_dict() for f in self.findings],
            "omitted": [o.to_dict() for o in self.omitted],
        }

    def dumps(self, indent: int | None = None) -> str:
        """:meth:`to_json` as a string, keys sorted."""
        return json.dumps(self.to_json(), indent=indent, sort_keys=True)

    def summary(self) -> str:
        """One line per finding, then a count line."""
        lines = [str(f) for f in self.findings]
        for o in self.omitted:
            who = "xen" if o.domid == DOMID_XEN else f"dom{o.domid}"
            lines.append(f"... {o.total - o.reported} more {o.code} in {who}")
        lines.append(f"{self.nr_errors} errors, {self.nr_warnings} warnings")
        return "\n".join(lines)


Vals = Arr | Sequence[int | str] | int | str | Callable[[I64], Sequence[int | str]]
Others = Arr | Callable[[I64], Sequence[tuple[int, ...]]] | None


class Out:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.findings: list[Finding] = []
        self.omitted: list[Omitted] = []

    def emit(
        self,
        code: str,
        domid: Arr | Sequence[int],
        entry: Arr | Sequence[int] | None,
        message: str,
        values: dict[str, Vals],
        others: Others = None,
        record: str | Sequence[str] | None = None,
    ) -> None:
        """Findings for candidates ``i`` (arrays aligned on i): the first
        ``cap`` per domid by entry, the rest counted as omitted."""
        dom = np.asarray(domid, np.int64)
        n = len(dom)
        if n == 0:
            return
        severity, default_record, _ = CODES[code]
        ent = np.zeros(n, np.int64) if entry is None else np.asarray(entry, np.int64)
        order = np.lexsort((np.arange(n), ent, dom))
        ds = dom[order]
        heads = group_starts(ds)
        sizes = np.diff(np.concatenate((heads, [n])))
        grp = np.repeat(np.arange(len(heads)), sizes)
        rank = np.arange(n) - heads[grp]
        keep = order[rank < self.cap]
        for hd, size in zip(heads.tolist(), sizes.tolist(), strict=True):
            if size > self.cap:
                self.omitted.append(Omitted(code, int(ds[hd]), severity, size, self.cap))
        cols = {k: _take(v, keep) for k, v in values.items()}
        oth: list[tuple[int, ...]]
        if others is None:
            oth = [()] * len(keep)
        elif callable(others):
            oth = list(others(keep))
        else:
            oa = np.asarray(others, np.int64)[keep]
            mine = dom[keep]
            oth = [
                (o,) if o >= 0 and o != d else ()
                for o, d in zip(oa.tolist(), mine.tolist(), strict=True)
            ]
        if record is None or isinstance(record, str):
            recs = [record or default_record] * len(keep)
        else:
            recs = [record[i] for i in keep.tolist()]
        for j, i in enumerate(keep.tolist()):
            vals = {k: c[j] for k, c in cols.items()}
            self.findings.append(
                Finding(
                    severity,
                    code,
                    message.format(**vals),
                    int(dom[i]),
                    tuple(sorted(set(oth[j]) - {int(dom[i])})),
                    recs[j],
                    None if entry is None else int(ent[i]),
                    vals,
                )
            )


def _take(v: Vals, keep: I64) -> list[int | str]:
    if callable(v):
        return list(v(keep))
    if isinstance(v, (int, str)):
        return [v] * len(keep)
    if isinstance(v, np.ndarray):
        return [x if isinstance(x, str) else int(x) for x in v[keep].tolist()]
    seq = list(v)
    return [seq[i] for i in keep.tolist()]
