"""Run the xenlu fuzz targets, each for a fixed time, and report what they did.

Usage::

    python fuzz/run.py --seconds 300                 # every target, 5 minutes each
    python fuzz/run.py --seconds 60 --target lu      # one target
    python fuzz/run.py --seconds 60 --jobs 2         # two targets at a time

Each target runs in its own process (``python fuzz/fuzz_<name>.py``) with
libFuzzer's ``-max_total_time``, a per-input ``-timeout`` (a hang is a
crash) and an ``-rss_limit_mb`` (unbounded memory is a crash), in libFuzzer's
fork mode so that a crash is saved and fuzzing goes on (``--stop-on-crash``
stops at the first). Its working corpus is ``fuzz/corpus/<name>/`` (grown
across runs), seeded from ``fuzz/seeds/<name>/`` (``make_seeds.py`` runs
first when the seeds are missing). Crash, timeout and out-of-memory inputs
land in ``fuzz/crashes/<name>-*``; with ``--minimize`` each is minimised by
``fuzz/minimize.py`` (into ``<crash>.min``). The report gives the executions,
the final coverage and the crashes of each target; the exit status is 1 if
any target crashed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGETS = ("lu", "libxc", "handover", "validate", "xenstore")


@dataclass
class Result:
    target: str
    seconds: float
    execs: int = 0
    coverage: int = 0
    returncode: int = 0
    crashes: list[Path] = field(default_factory=list)
    note: str = ""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(HERE), *filter(None, [env.get("PYTHONPATH")])]
    )
    # libFuzzer re-executes the target (fork mode, crash minimisation) by its
    # path: its "#!/usr/bin/env python3" must find this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_target(
    name: str, seconds: int, timeout: int, rss_mb: int, minimize: bool, keep_going: bool
) -> Result:
    corpus = HERE / "corpus" / name
    seeds = HERE / "seeds" / name
    crashes = HERE / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.glob(f"{name}-*"))
    log = crashes.parent / "logs"
    log.mkdir(exist_ok=True)
    cmd = [
        sys.executable,
        str(HERE / f"fuzz_{name}.py"),
        str(corpus),
        str(seeds),
        f"-max_total_time={seconds}",
        f"-timeout={timeout}",
        f"-rss_limit_mb={rss_mb}",
        f"-artifact_prefix={crashes}/{name}-",
        "-print_final_stats=1",
        "-max_len=131072",
    ]
    if keep_going:  # fork mode: a crash is saved and fuzzing goes on
        cmd += ["-fork=1", "-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1"]
    t0 = time.monotonic()
    with open(log / f"{name}.log", "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT)
    res = Result(name, time.monotonic() - t0, returncode=proc.returncode)
    text = (log / f"{name}.log").read_text(errors="replace")
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
    if m and not keep_going:
        res.execs = int(m.group(1))
    else:  # the last status line (fork mode, or died before the final stats)
        runs = re.findall(r"^#(\d+)[:\s]", text, re.M)
        res.execs = int(runs[-1]) if runs else 0
    cov = re.findall(r"cov: (\d+)", text)
    res.coverage = int(cov[-1]) if cov else 0
    if "nothing to fuzz" in text:
        res.note = "skipped: module not available"
    res.crashes = sorted(
        p for p in set(crashes.glob(f"{name}-*")) - before if not p.name.endswith(".min")
    )
    if minimize:
        for c in res.crashes:
            subprocess.run(
                [sys.executable, str(HERE / "minimize.py"), name, str(c), "-o", f"{c}.min"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=_env(),
                cwd=ROOT,
            )
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the xenlu fuzz targets.")
    ap.add_argument("--seconds", type=int, default=60, help="time per target (default 60)")
    ap.add_argument("--target", choices=TARGETS, action="append", help="only these targets")
    ap.add_argument("--jobs", type=int, default=1, help="targets run at the same time")
    ap.add_argument("--timeout", type=int, default=10, help="seconds per input before a hang")
    ap.add_argument("--rss-limit-mb", type=int, default=2048, help="memory limit per target")
    ap.add_argument("--minimize", action="store_true", help="minimise every crash found")
    ap.add_argument(
        "--stop-on-crash",
        action="store_true",
        help="stop a target at its first crash (default: keep fuzzing, libFuzzer fork mode)",
    )
    args = ap.parse_args(argv)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install 'xenlu[fuzz]'", file=sys.stderr)
        return 2
    targets = args.target or list(TARGETS)
    if any(not (HERE / "seeds" / t).is_dir() for t in targets):
        subprocess.run([sys.executable, str(HERE / "make_seeds.py")], check=True, env=_env())
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(
            pool.map(
                lambda t: run_target(
                    t,
                    args.seconds,
                    args.timeout,
                    args.rss_limit_mb,
                    args.minimize,
                    not args.stop_on_crash,
                ),
                targets,
            )
        )
    print(
        f"{'target':<10} {'seconds':>8} {'executions':>12} {'exec/s':>8} {'coverage':>9}  crashes"
    )
    bad = False
    for r in results:
        rate = r.execs / r.seconds if r.seconds else 0
        print(
            f"{r.target:<10} {r.seconds:8.0f} {r.execs:12d} {rate:8.0f} {r.coverage:9d}  "
            f"{len(r.crashes)} {r.note}"
        )
        for c in r.crashes:
            print(f"    {c.relative_to(ROOT)}")
        if r.crashes or (r.returncode not in (0,) and not r.note):
            bad = True
    if bad:
        print("crashes found: minimise them (--minimize) and add them to tests/regressions/")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
