"""Run Xen's ``verify-stream-v2`` over the hand-built vectors and compare verdicts.

This is a script, not a test. Point ``XEN_TOOLS_PYTHON`` at Xen's
``tools/python`` directory (4.14 or later, for Python 3) and run, from the
repository root::

    XEN_TOOLS_PYTHON=/path/to/xen/tools/python python3 tests/vectors/run_xen_verifier.py

Each vector is written to a temporary file and checked with
``python3 $XEN_TOOLS_PYTHON/scripts/verify-stream-v2 -q -f <format> -i FILE``
(``PYTHONPATH=$XEN_TOOLS_PYTHON``). xenlu's expectation and Xen's verdict agree
when xenlu expects the vector to be valid and Xen exits 0, or xenlu expects an
error and Xen exits 1 (stream or record error). Exit code 2 is a crash of the
verifier script, never a verdict, so it always counts as a disagreement.

The script prints a markdown table and exits 1 if any disagreement is not
explained by the vector's ``xen_verifier_differs``, or if a vector claims a
difference that did not happen. ``--messages`` reruns the failing vectors
without ``-q`` and adds Xen's last error line to the table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.vectors.libxc_vectors import VECTORS, Vector


@dataclass(frozen=True)
class Outcome:
    """Xen's verdict on one vector and how it compares with xenlu's."""

    vector: Vector
    rc: int
    message: str

    @property
    def agree(self) -> bool:
        if self.vector.error is None:
            return self.rc == 0
        return self.rc == 1

    @property
    def ok(self) -> bool:
        """Agreement, or a disagreement that the vector documents (and only then)."""
        documented = self.vector.xen_verifier_differs is not None
        return self.agree != documented


def run_one(
    script: Path, tools: Path, vector: Vector, workdir: Path, quiet: bool = True
) -> tuple[int, str]:
    path = workdir / f"{vector.name}.bin"
    path.write_bytes(vector.data)
    cmd = [os.environ.get("XEN_VERIFIER_PYTHON", "python3"), str(script)]
    if quiet:
        cmd.append("-q")
    cmd += ["-f", vector.format, "-i", str(path)]
    env = dict(os.environ, PYTHONPATH=str(tools))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    # The last traceback line is the exception; "Please fix me" follows script errors.
    msg = next((ln for ln in reversed(lines) if ln != "Please fix me"), "")
    return proc.returncode, msg


def expectation(v: Vector) -> str:
    return "ok" if v.error is None else v.error


def table(outcomes: list[Outcome], messages: bool) -> str:
    head = "| # | vector | format | xenlu | Xen exit | agree | documented reason |"
    sep = "|---|---|---|---|---|---|---|"
    if messages:
        head += " Xen message |"
        sep += "---|"
    rows = [head, sep]
    for i, o in enumerate(outcomes, 1):
        agree = "yes" if o.agree else ("no (documented)" if o.ok else "**NO**")
        reason = o.vector.xen_verifier_differs or ""
        row = (
            f"| {i} | `{o.vector.name}` | {o.vector.format} | {expectation(o.vector)} "
            f"| {o.rc} | {agree} | {reason} |"
        )
        if messages:
            row += f" {o.message.replace('|', '/')} |"
        rows.append(row)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", action="store_true", help="add Xen's error line")
    parser.add_argument("names", nargs="*", help="only these vectors")
    args = parser.parse_args(argv)

    tools_env = os.environ.get("XEN_TOOLS_PYTHON")
    if not tools_env:
        print("XEN_TOOLS_PYTHON must point at Xen's tools/python directory", file=sys.stderr)
        return 2
    tools = Path(tools_env)
    script = tools / "scripts" / "verify-stream-v2"
    if not script.is_file():
        print(f"{script} not found", file=sys.stderr)
        return 2

    selected = [v for v in VECTORS if not args.names or v.name in args.names]
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="xenlu-vectors-") as tmp:
        for v in selected:
            rc, _ = run_one(script, tools, v, Path(tmp))
            msg = ""
            if args.messages and rc != 0:
                _, msg = run_one(script, tools, v, Path(tmp), quiet=False)
            outcomes.append(Outcome(v, rc, msg))

    print(table(outcomes, args.messages))
    n_agree = sum(o.agree for o in outcomes)
    n_doc = sum((not o.agree) and o.ok for o in outcomes)
    bad = [o for o in outcomes if not o.ok]
    print()
    print(
        f"{len(outcomes)} vectors: {n_agree} agree, {n_doc} documented differences, "
        f"{len(bad)} unexplained"
    )
    for o in bad:
        if o.agree:
            print(f"STALE: {o.vector.name} claims a difference but Xen agrees (exit {o.rc})")
        else:
            print(f"UNEXPLAINED: {o.vector.name}: xenlu {expectation(o.vector)}, Xen exit {o.rc}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
