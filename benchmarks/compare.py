#!/usr/bin/env python3
"""Two xenlu revisions side by side, every benchmark row (issue 12's acceptance).

Run from the repository root::

    python benchmarks/compare.py d7392c1 fd07dc7 --scale small
    python benchmarks/compare.py d7392c1            # HEAD: the work tree as it is
    make bench-compare BASE=d7392c1 HEAD=fd07dc7

BASE and HEAD are git revisions (their ``xenlu/`` is exported with ``git
archive`` into a temp dir; no worktree is needed) or directories holding a
``xenlu`` package. The inputs are built once, by HEAD, into one work
directory; then each row of ``benchmarks/run.py`` runs ``--rounds`` times for
each revision, interleaved and alternating the order (BASE HEAD, HEAD BASE,
…) so a drift of the shared machine hits both sides alike. Each run is
``run.py --xenlu DIR --only ROW --reuse-inputs``: the very same harness and
the same files, only the package differs.

A row's figure is its ratio (baseline time / xenlu time, measured in the same
process, so the machine's speed at that moment largely cancels); a row without a
baseline is compared on its xenlu time. Per row the table gives the median
over the rounds for BASE and HEAD, the change (HEAD / BASE - 1: negative is
slower), the spread of the rounds ((max - min) / median, the larger of the two
sides), the change of the CPU-time ratios, xenlu's own CPU time per call (BASE
→ HEAD, which tells a change of xenlu from one of the baseline) and a verdict:

* ``ok``: within 10% or better;
* ``faster``: more than 10% faster, beyond the spread;
* ``slower >10%``: more than 10% slower, beyond the spread (exit status 1);
* ``noise: …, rerun``: the spread is too wide to tell (or the change is past
  10% but within the spread);
* ``not in BASE``/``not in HEAD``: the operation does not exist there;
  ``FAILED in …``: it exists but the row failed (exit status 1 for HEAD).

Exit status: 0, 1 as above, 2 for a usage error (unknown revision, bad row).
``--json FILE`` keeps every run; ``--from-json FILE`` judges and prints it again.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RUN = Path(__file__).resolve().parent / "run.py"
LIMIT = 0.10  # issue 12: every row within 10% of its ratio, or better
SCALES = ("small", "medium")
#: The rows of run.py at the small and medium scales (run.py's ROWS, in order).
DEFAULT_ROWS = (
    "lu_verify",
    "framing",
    "encode",
    "construct",
    "xen",
    "validate",
    "upgrade",
    "hostgen",
    "memory",
    "view",
    "pipe",
)
#: Words of a failed row's last error line that mean "this revision has no
#: such operation" rather than "the operation broke".
MISSING = ("ModuleNotFoundError", "ImportError", "not available", "has no attribute")


class UsageError(Exception):
    """A revision or an option that cannot be used (exit status 2)."""


# --- the two packages ------------------------------------------------------------


@dataclass
class Side:
    """One revision under test: its name on the table and its package's directory."""

    label: str  # "BASE" or "HEAD"
    spec: str  # as given on the command line
    root: Path  # the directory holding xenlu/
    commit: str  # resolved commit (or "work tree" / the directory)
    subject: str = ""


def _git(*args: str) -> str:
    p = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
    if p.returncode:
        raise UsageError(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "git failed")
    return p.stdout.strip()


def export(label: str, spec: str, into: Path) -> Side:
    """The ``xenlu`` package of ``spec``: a directory as it is, or a revision exported.

    A revision's ``xenlu/`` is written by ``git archive`` into ``into/label``,
    so the work tree (and its uncommitted state) plays no part.
    """
    as_dir = Path(spec)
    if as_dir.is_dir() and (as_dir / "xenlu" / "__init__.py").is_file():
        root = as_dir.resolve()
        what = "work tree" if root == REPO else str(root)
        return Side(label, spec, root, what)
    commit = _git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    subject = _git("log", "-1", "--format=%s", commit)
    dest = into / label
    dest.mkdir(parents=True)
    p = subprocess.Popen(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "xenlu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None
    with tarfile.open(fileobj=p.stdout, mode="r|") as tar:
        tar.extractall(dest, filter="data")
    err = p.stderr.read().decode() if p.stderr else ""
    if p.wait() or not (dest / "xenlu" / "__init__.py").is_file():
        raise UsageError(f"{spec}: no xenlu package in that revision {err.strip()}")
    return Side(label, spec, dest, commit, subject)


# --- one run of one row ------------------------------------------------------------


def _env() -> dict[str, str]:
    # the package under test is chosen by --xenlu alone
    return {k: v for k, v in os.environ.items() if k != "XENLU_BENCH_ROOT"}


def build_inputs(side: Side, work: Path, scale: str) -> float:
    """Write the scale's inputs into ``work`` once, with ``side``'s package."""
    env = _env()
    env["XENLU_BENCH_ROOT"] = str(side.root)
    if side.root != REPO:
        isolate = str(RUN.parent / "isolate")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (isolate, env.get("PYTHONPATH")) if p)
    t0 = time.perf_counter()
    cmd = [sys.executable, str(RUN), "--scale", scale, "--child", "build", "--workdir", str(work)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if p.returncode:
        raise RuntimeError(f"building the inputs with {side.label} failed:\n{p.stderr}")
    return time.perf_counter() - t0


def run_row(side: Side, row: str, work: Path, scale: str, repeats: int | None) -> dict[str, Any]:
    """One ``run.py --xenlu`` run of one row: its result rows, load average, wall time."""
    out = work / f"compare-{side.label}-{row}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(RUN), "--scale", scale, "--workdir", str(work), "--reuse-inputs"]
    cmd += ["--xenlu", str(side.root), "--only", row, "--json", str(out)]
    if repeats:
        cmd += ["--repeats", str(repeats)]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    if out.exists():
        rows = json.loads(out.read_text())["rows"]
    else:  # the harness itself failed (usage, inputs): one failed row
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        rows = [dict(id=row, operation=row, skipped=f"FAILED (exit {p.returncode}): {last}")]
    return dict(rows=rows, rc=p.returncode, load=(load0, os.getloadavg()[0]), seconds=took)


# --- judging ----------------------------------------------------------------------


def figure(r: dict[str, Any]) -> tuple[str, float] | None:
    """The figure a result row is compared on, larger is better: its ratio, or 1/time."""
    if r.get("skipped"):
        return None
    if r.get("ratio") is not None:
        return "ratio", float(r["ratio"])
    if r.get("xenlu_s"):
        return "time", 1.0 / float(r["xenlu_s"])
    return None


def cpu_figure(r: dict[str, Any], kind: str) -> float | None:
    """The same figure from process CPU time (steadier when other jobs hold the cores)."""
    if kind == "ratio" and r.get("cpu_ratio"):
        return float(r["cpu_ratio"])
    if kind == "time" and r.get("xenlu_cpu_s"):
        return 1.0 / float(r["xenlu_cpu_s"])
    return None


def spread(values: list[float]) -> float:
    """(max - min) / median, as run.py reports a row's repeats."""
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med > 0 else 0.0


def verdict(change: float, noise: float, limit: float = LIMIT) -> tuple[str, bool]:
    """(verdict, regressed) for a change of ``change`` (HEAD/BASE - 1) whose rounds
    spread by ``noise``: slower counts only past ``limit`` plus the noise.

    >>> verdict(-0.02, 0.05)
    ('ok', False)
    >>> verdict(-0.40, 0.05)
    ('slower >10%', True)
    >>> verdict(0.01, 0.25)
    ('noise: spread exceeds 10%, rerun', False)
    """
    if change < -(limit + noise):
        return "slower >10%", True
    if change > limit + noise:
        return "faster", False
    if noise > limit:
        return "noise: spread exceeds 10%, rerun", False
    if change < -limit:
        return f"noise: slower by more than 10% only within the spread ±{noise:.0%}, rerun", False
    return "ok", False


def kind_of(why: str) -> str:
    """Why a row has no figure: "missing" (no such operation in that revision),
    "failed" (the operation broke) or "skipped" (the harness left it out, e.g.
    Xen's tools not given)."""
    if any(m in why for m in MISSING):
        return "missing"
    if why.startswith("FAILED") or " raised " in why or not why:
        return "failed"
    return "skipped"


@dataclass
class Line:
    """One result row of the comparison table."""

    group: str  # the run.py row (``--only`` name)
    rid: str
    operation: str
    kind: str = ""  # "ratio" or "time"
    base: list[float] = field(default_factory=list)
    head: list[float] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"BASE": [], "HEAD": []})
    #: xenlu's own CPU seconds per call: tells a change of xenlu from one of the
    #: baseline (e.g. the upgrade row's baseline is xenlu's own decode)
    own: dict[str, list[float]] = field(default_factory=lambda: {"BASE": [], "HEAD": []})
    why: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (kind, text)

    def judge(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(row=self.group, id=self.rid, operation=self.operation)
        out.update(kind=self.kind, base=self.base, head=self.head)
        if self.why or not self.base or not self.head:
            text, bad = self._no_figure()
            out.update(verdict=text, regressed=bad)
            for key, values in (("base_median", self.base), ("head_median", self.head)):
                if values:  # the side that has the operation still shows its figure
                    out[key] = statistics.median(values)
            return out
        b, h = statistics.median(self.base), statistics.median(self.head)
        change = h / b - 1.0
        noise = max(spread(self.base), spread(self.head))
        text, bad = verdict(change, noise)
        ob, oh = self.own["BASE"], self.own["HEAD"]
        if ob and oh:
            out.update(
                base_xenlu_cpu_s=statistics.median(ob), head_xenlu_cpu_s=statistics.median(oh)
            )
        cb, ch = self.cpu["BASE"], self.cpu["HEAD"]
        if len(cb) == len(self.base) and len(ch) == len(self.head):
            cpu_change = statistics.median(ch) / statistics.median(cb) - 1.0
            cpu_noise = max(spread(cb), spread(ch))
            cpu_text = verdict(cpu_change, cpu_noise)[0]
            out.update(cpu_change=cpu_change, cpu_noise=cpu_noise, cpu_verdict=cpu_text)
            if text.startswith("noise"):
                # a hint, not the verdict: the README's figures are wall-clock ratios
                text += f"; by CPU time: {cpu_text.split(':')[0]}"
        out.update(
            base_median=b,
            head_median=h,
            change=change,
            base_spread=spread(self.base),
            head_spread=spread(self.head),
            noise=noise,
            verdict=text,
            regressed=bad,
        )
        return out

    def _no_figure(self) -> tuple[str, bool]:
        w = self.why
        if "HEAD" in w and w["HEAD"][0] == "failed":
            return f"FAILED in HEAD: {w['HEAD'][1]}", True
        if "BASE" in w and w["BASE"][0] == "failed":
            return f"FAILED in BASE: {w['BASE'][1]}", False
        if len(w) == 2 and w["BASE"] == w["HEAD"]:
            return f"{'not in either' if w['BASE'][0] == 'missing' else 'skipped in both'}: " + (
                w["BASE"][1]
            ), False
        if w:
            return "; ".join(
                f"{'not in' if k == 'missing' else 'skipped in'} {label}: {text}"
                for label, (k, text) in sorted(w.items())
            ), False
        return "no figure to compare", False


def collect(group: str, runs: dict[str, list[dict[str, Any]]]) -> list[Line]:
    """The table lines of one run.py row from each side's runs (``label -> runs``).

    A row that failed as a whole (its id is the run.py row's name, e.g. an
    import error before any timing) stands for every line the other side has.
    """
    lines: dict[str, Line] = {}
    whole: dict[str, str] = {}  # label -> why, when the row failed as a whole
    for label, side_runs in runs.items():
        for run in side_runs:
            for r in run["rows"]:
                why = str(r.get("skipped") or "")
                if why and r["id"] == group:
                    whole[label] = why
                    continue
                line = lines.setdefault(r["id"], Line(group, r["id"], r["operation"]))
                fig = figure(r)
                if fig is None:
                    line.why[label] = (kind_of(why), _short(why) or "no figure")
                    continue
                line.kind = fig[0]
                (line.base if label == "BASE" else line.head).append(fig[1])
                cpu = cpu_figure(r, fig[0])
                if cpu is not None:
                    line.cpu[label].append(cpu)
                if r.get("xenlu_cpu_s"):
                    line.own[label].append(float(r["xenlu_cpu_s"]))
    if not lines:
        lines[group] = Line(group, group, group)
    for label, why in whole.items():
        for line in lines.values():
            line.why[label] = (kind_of(why), _short(why))
    return list(lines.values())


def _short(why: str) -> str:
    if why.startswith("FAILED (exit "):  # run.py's failed row: the error line is the news
        why = why.split("): ", 1)[-1]
    return why if len(why) <= 140 else why[:137] + "…"


# --- report -----------------------------------------------------------------------


def _fmt(kind: str, value: float | None) -> str:
    if value is None:
        return "—"
    if kind == "time":
        t = 1.0 / value
        return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"
    return f"{value:.2f}×" if value < 100 else f"{value:.0f}×"


def table(judged: list[dict[str, Any]]) -> str:
    head = ["row", "operation", "BASE", "HEAD", "change", "spread (BASE / HEAD)", "CPU change"]
    head += ["xenlu CPU time, BASE → HEAD", "verdict"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for j in judged:
        if "change" in j:
            kind = j["kind"]
            cells = [
                _fmt(kind, j["base_median"]),
                _fmt(kind, j["head_median"]),
                f"{j['change']:+.1%}",
                f"±{j['base_spread']:.0%} / ±{j['head_spread']:.0%}",
            ]
            if kind == "time":
                cells[2] += " (time)"
            cpu = j.get("cpu_change")
            cells.append("—" if cpu is None else f"{cpu:+.1%} ±{j['cpu_noise']:.0%}")
            own = j.get("base_xenlu_cpu_s"), j.get("head_xenlu_cpu_s")
            cells.append("—" if None in own else " → ".join(_fmt("time", 1 / t) for t in own))
        else:
            kind = j["kind"]
            cells = [_fmt(kind, j.get("base_median")), _fmt(kind, j.get("head_median"))]
            cells += ["—", "—", "—", "—"]
        row = [j["id"], j["operation"], *cells, j["verdict"]]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "base", metavar="BASE", nargs="?", help="git revision or directory holding xenlu/"
    )
    ap.add_argument(
        "head", metavar="HEAD", nargs="?", default=str(REPO), help="default: the work tree"
    )
    ap.add_argument("--scale", choices=SCALES, default="small")
    ap.add_argument("--only", help="comma-separated run.py rows: " + ",".join(DEFAULT_ROWS))
    ap.add_argument("--rounds", type=int, default=5, help="runs of each row per revision")
    ap.add_argument("--repeats", type=int, help="run.py --repeats (timed calls per run)")
    ap.add_argument("--json", metavar="FILE", help="also write every run and verdict as JSON")
    ap.add_argument("--workdir", help="inputs directory (default: a temp dir, deleted)")
    ap.add_argument(
        "--from-json", metavar="FILE", help="judge and print a saved --json run again (no runs)"
    )
    args = ap.parse_args(argv)
    if args.from_json:
        doc = json.loads(Path(args.from_json).read_text())
        judged = [ln.judge() for g, runs in doc["runs"].items() for ln in collect(g, runs)]
        return report(judged, doc["load"], doc["total_s"])
    if args.base is None:
        ap.error("BASE is required")
    groups = list(DEFAULT_ROWS) if not args.only else [n.strip() for n in args.only.split(",")]
    for g in groups:
        if g not in DEFAULT_ROWS:
            ap.error(f"unknown row {g!r} (rows: {', '.join(DEFAULT_ROWS)})")
    if args.rounds < 2:
        ap.error("--rounds must be at least 2 (the spread needs two runs)")
    scratch = Path(tempfile.mkdtemp(prefix="xenlu-compare-"))
    work = Path(args.workdir).resolve() if args.workdir else scratch / "work"
    work.mkdir(parents=True, exist_ok=True)
    try:
        try:
            base = export("BASE", args.base, scratch)
            head = export("HEAD", args.head, scratch)
        except UsageError as exc:
            print(f"compare.py: {exc}", file=sys.stderr)
            return 2
        return _compare(args, groups, base, head, work)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _compare(
    args: argparse.Namespace, groups: list[str], base: Side, head: Side, work: Path
) -> int:
    t_all = time.perf_counter()
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    for s in (base, head):
        subject = s.subject if len(s.subject) <= 72 else s.subject[:71] + "…"
        print(f"{s.label}: {s.spec} = {s.commit[:12]} {subject}".rstrip(), flush=True)
    print(
        f"scale {args.scale}, {args.rounds} rounds per revision, interleaved; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; {started}",
        flush=True,
    )
    built = build_inputs(head, work, args.scale)
    print(f"  inputs built once (by HEAD) in {built:.1f} s in {work}", flush=True)
    judged: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    loads: list[float] = []
    for g in groups:
        runs: dict[str, list[dict[str, Any]]] = {"BASE": [], "HEAD": []}
        t0 = time.perf_counter()
        for r in range(args.rounds):
            for s in (base, head) if r % 2 == 0 else (head, base):
                run = run_row(s, g, work, args.scale, args.repeats)
                runs[s.label].append(run)
                loads += list(run["load"])
        raw[g] = runs
        lines = [ln.judge() for ln in collect(g, runs)]
        judged += lines
        verdicts = ", ".join(f"{j['id']}: {j['verdict']}" for j in lines)
        print(f"  {g}: {time.perf_counter() - t0:.1f} s: {verdicts}", flush=True)
    total = time.perf_counter() - t_all
    load = [min(loads, default=0), max(loads, default=0)]
    rc = report(judged, load, total)
    if args.json:
        doc = dict(
            date=started,
            scale=args.scale,
            rounds=args.rounds,
            base=dict(spec=base.spec, commit=base.commit, subject=base.subject),
            head=dict(spec=head.spec, commit=head.commit, subject=head.subject),
            cpus=os.cpu_count(),
            load=load,
            total_s=total,
            verdicts=judged,
            runs=raw,
        )
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return rc


def report(judged: list[dict[str, Any]], load: list[float], total: float) -> int:
    """Print the table and the summary; the exit status (1: a row regressed)."""
    print()
    print(table(judged))
    bad = [j["id"] for j in judged if j["regressed"]]
    counts: dict[str, int] = {}
    for j in judged:
        key = j["verdict"].split(":")[0].split(";")[0]
        counts[key] = counts.get(key, 0) + 1
    print(
        f"\nchange = HEAD ratio / BASE ratio - 1 (negative: HEAD slower; '(time)': rows with "
        f"no baseline, compared on xenlu's time). Load average {load[0]:.2f}-{load[1]:.2f} "
        f"during the runs; total {total:.0f} s."
    )
    print("verdicts: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    if counts.get("noise"):
        print("rows marked noise are undecided: rerun them (--only) on a quieter machine")
    print("regressed beyond the noise: " + (", ".join(bad) if bad else "none"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
