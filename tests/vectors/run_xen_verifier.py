"""Run Xen's ``verify-stream-v2`` over the vectors and compare four verdicts.

This is a script, not a test. Extract Xen's ``tools/python`` into a
temporary folder outside the repository (for example
``git --git-dir=<Xen mirror> archive HEAD tools/python | tar -x -C /tmp/xen``),
point ``XEN_TOOLS_PYTHON`` at it and run, from the repository root::

    XEN_TOOLS_PYTHON=/tmp/xen/tools/python python3 tests/vectors/run_xen_verifier.py

The corpus is every hand-built vector of ``libxc_vectors.py`` (pending
ones included, if any) and every Xen-written file of ``xen-written/``. Each is
written to a temporary file and checked with
``python3 $XEN_TOOLS_PYTHON/scripts/verify-stream-v2 -q -f <format> -i FILE``
(``PYTHONPATH=$XEN_TOOLS_PYTHON``). Exit 0 is "accepts", 1 "refuses"; exit
2 is a crash of the verifier script, never a verdict.

For every input the table gives four verdicts: the pandoc spec's, Xen's C
restorer's (both from the vector's annotations, ``docs/xen-readers.md``),
the Python verifier's (run) and xenlu's (run, today). The script prints the
agreement figures and exits 1 if a verifier disagreement is not explained by
the vector's ``xen_verifier_differs``, if a vector claims a difference that
did not happen, or if xenlu's verdict today differs from the C restorer's
(or the pandoc's, where the vector says the C code has no opinion) without
the vector being ``pending``. ``--messages`` adds Xen's last error line.
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

from tests.vectors.libxc_vectors import ALL_VECTORS, D_XSDATA, Vector

XEN_WRITTEN = Path(__file__).resolve().parent / "xen-written"


def xen_written() -> list[Vector]:
    """The converter outputs of ``xen-written/`` as vectors: Xen wrote them, so all are valid."""
    out = []
    for path in sorted(XEN_WRITTEN.glob("*.bin")):
        name = path.name
        fmt = "xl" if name.startswith("xl-") else "libxl" if "-libxl" in name else "libxc"
        trailing = name in ("hvm-libxc.bin", "xl-hvm-libxc.bin")
        out.append(
            Vector(
                f"xen-written/{name}",
                "written by Xen's convert-legacy-stream (xen-written/README.md)",
                fmt,
                path.read_bytes(),
                None,
                xen_verifier_differs=D_XSDATA if name.endswith("hvm-libxl.bin") else None,
                c_ref="the qemu record after the libxc END is read by xl/libxl as the "
                "device model's state, never by the libxc restorer"
                if trailing
                else None,
            )
        )
    return out


def xenlu_verdict(v: Vector) -> str:
    """xenlu's verdict today: "ok" or the error class name."""
    from xenlu.core.errors import DecodeError
    from xenlu.migration.libxc_stream import decode_libxc
    from xenlu.migration.libxl import decode_libxl, decode_xl

    try:
        if v.format == "libxc":
            decode_libxc(v.data)
        elif v.format == "libxl":
            decode_libxl(v.data)
        else:
            decode_xl(v.data)
    except DecodeError as exc:
        return type(exc).__name__
    return "ok"


def _verdict(error: str | None) -> str:
    return "ok" if error is None else "refuse"


def _other(verdict: str) -> str:
    return "refuse" if verdict == "ok" else "ok"


@dataclass(frozen=True)
class Outcome:
    """The four verdicts on one input."""

    vector: Vector
    rc: int
    message: str
    xenlu: str

    @property
    def expected(self) -> str:
        """The verdict xenlu must reach: the C restorer's, or the pandoc's."""
        return _verdict(self.vector.error)

    @property
    def spec(self) -> str:
        return _other(self.expected) if self.vector.spec_differs else self.expected

    @property
    def c_restorer(self) -> str:
        return _other(self.expected) if self.vector.c_differs else self.expected

    @property
    def verifier(self) -> str:
        return {0: "ok", 1: "refuse"}.get(self.rc, f"crash ({self.rc})")

    @property
    def agree(self) -> bool:
        """The Python verifier reaches the verdict xenlu must reach."""
        return self.verifier == self.expected

    @property
    def ok(self) -> bool:
        """Agreement, or a disagreement that the vector documents (and only then)."""
        documented = self.vector.xen_verifier_differs is not None
        return self.agree != documented

    @property
    def xenlu_right(self) -> bool:
        return _verdict(None if self.xenlu == "ok" else self.xenlu) == self.expected

    @property
    def xenlu_ok(self) -> bool:
        """xenlu is right, or wrong exactly where the vector says the fix is pending."""
        return self.xenlu_right != (self.vector.pending is not None)


def run_one(
    script: Path, tools: Path, vector: Vector, workdir: Path, quiet: bool = True
) -> tuple[int, str]:
    path = workdir / f"{vector.name.replace('/', '_')}.bin"
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


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "/")


def table(outcomes: list[Outcome], messages: bool) -> str:
    head = "| # | input | format | pandoc | C restorer | verifier | xenlu today | why they differ |"
    sep = "|---|---|---|---|---|---|---|---|"
    if messages:
        head += " verifier message |"
        sep += "---|"
    rows = [head, sep]
    for i, o in enumerate(outcomes, 1):
        v = o.vector
        notes = []
        if v.spec_differs:
            notes.append(f"pandoc: {v.spec_differs}")
        if v.c_differs:
            notes.append(f"C: {v.c_differs}")
        if v.xen_verifier_differs and not o.agree:
            notes.append(f"verifier: {v.xen_verifier_differs}")
        if not o.xenlu_right:
            notes.append(f"xenlu: {v.pending or 'UNEXPLAINED'}")
        if not o.ok:
            notes.append("verifier: **UNEXPLAINED**")
        xl = o.xenlu if o.xenlu_right else f"**{o.xenlu}**"
        ver = o.verifier if o.agree else f"**{o.verifier}**"
        row = (
            f"| {i} | `{v.name}` | {v.format} | {o.spec} | {o.c_restorer} | {ver} | {xl} "
            f"| {_cell('; '.join(notes))} |"
        )
        if messages:
            row += f" {_cell(o.message)} |"
        rows.append(row)
    return "\n".join(rows)


def figures(outcomes: list[Outcome]) -> str:
    n = len(outcomes)

    def count(pred: object) -> int:
        return sum(1 for o in outcomes if pred(o))  # type: ignore[operator]

    lines = [
        f"{n} inputs ({count(lambda o: o.vector.name.startswith('xen-written/'))} Xen-written)",
        f"- xenlu today = xenlu's target verdict: {count(lambda o: o.xenlu_right)}/{n}; "
        f"pending (xfail-strict): {count(lambda o: o.vector.pending is not None)}",
        f"- C restorer = target: {count(lambda o: o.c_restorer == o.expected)}/{n} "
        f"(the rest: xenlu keeps the pandoc rule where the C code does not check)",
        f"- pandoc spec = target: {count(lambda o: o.spec == o.expected)}/{n}",
        f"- Python verifier = target: {count(lambda o: o.agree)}/{n}; documented "
        f"differences {count(lambda o: not o.agree and o.ok)}; unexplained "
        f"{count(lambda o: not o.ok)}",
        "- xenlu today = C restorer: "
        f"{count(lambda o: (o.xenlu == 'ok') == (o.c_restorer == 'ok'))}/{n}; "
        "xenlu today = Python verifier: "
        f"{count(lambda o: (o.xenlu == 'ok') == (o.verifier == 'ok'))}/{n}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", action="store_true", help="add Xen's error line")
    parser.add_argument("names", nargs="*", help="only these inputs")
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

    corpus = ALL_VECTORS + xen_written()
    selected = [v for v in corpus if not args.names or v.name in args.names]
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="xenlu-vectors-") as tmp:
        for v in selected:
            rc, _ = run_one(script, tools, v, Path(tmp))
            msg = ""
            if args.messages and rc != 0:
                _, msg = run_one(script, tools, v, Path(tmp), quiet=False)
            outcomes.append(Outcome(v, rc, msg, xenlu_verdict(v)))

    print(table(outcomes, args.messages))
    print()
    print(figures(outcomes))
    bad = [o for o in outcomes if not o.ok or not o.xenlu_ok]
    for o in bad:
        if not o.xenlu_ok:
            state = "fixed: drop its pending" if o.xenlu_right else "unexplained"
            print(f"XENLU: {o.vector.name}: xenlu {o.xenlu}, target {o.expected} ({state})")
        elif o.agree:
            print(f"STALE: {o.vector.name} claims a difference but Xen agrees (exit {o.rc})")
        else:
            print(f"UNEXPLAINED: {o.vector.name}: target {o.expected}, Xen exit {o.rc}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
