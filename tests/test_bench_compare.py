"""benchmarks/compare.py (issue 12's acceptance): the verdicts, the table lines
built from run.py's rows, the export of a revision, and the isolation that keeps
a benchmark of another revision from importing the repository's modules.

The timings themselves are not tested (they are the benchmark's output).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("xenlu_bench_compare", BENCH / "compare.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    ("change", "noise", "verdict", "regressed"),
    [
        (0.0, 0.05, "ok", False),
        (-0.09, 0.02, "ok", False),
        (0.25, 0.05, "faster", False),
        (0.12, 0.05, "ok", False),  # faster, but not beyond its noise
        (-0.30, 0.05, "slower >10%", True),
        (-0.30, 0.25, "noise: spread exceeds 10%, rerun", False),
        (-0.40, 0.25, "slower >10%", True),  # slower even allowing for the noise
        (0.02, 0.30, "noise: spread exceeds 10%, rerun", False),
    ],
)
def test_verdict(
    compare: ModuleType, change: float, noise: float, verdict: str, regressed: bool
) -> None:
    assert compare.verdict(change, noise) == (verdict, regressed)


def test_verdict_past_ten_percent_within_the_noise_asks_for_a_rerun(compare: ModuleType) -> None:
    text, regressed = compare.verdict(-0.14, 0.08)
    assert text.startswith("noise:") and "rerun" in text and not regressed


def _run(*rows: dict[str, Any]) -> dict[str, Any]:
    return dict(rows=list(rows), rc=0, load=(1.0, 1.0), seconds=1.0)


def _ratio(rid: str, ratio: float, cpu: float | None = None) -> dict[str, Any]:
    r = dict(id=rid, operation=f"op {rid}", ratio=ratio, xenlu_s=0.01)
    if cpu is not None:
        r["cpu_ratio"] = cpu
    return r


def test_lines_compare_medians_of_the_rounds(compare: ModuleType) -> None:
    runs = {
        "BASE": [_run(_ratio("a", 1.0, 1.0)), _run(_ratio("a", 1.02, 1.0))],
        "HEAD": [_run(_ratio("a", 0.5, 0.6)), _run(_ratio("a", 0.52, 0.6))],
    }
    [line] = [ln.judge() for ln in compare.collect("grp", runs)]
    assert line["base_median"] == pytest.approx(1.01)
    assert line["head_median"] == pytest.approx(0.51)
    assert line["change"] == pytest.approx(0.51 / 1.01 - 1)
    assert line["cpu_change"] == pytest.approx(-0.4)
    assert (line["verdict"], line["regressed"]) == ("slower >10%", True)
    assert "| a | op a | 1.01× | 0.51× | -49.5% |" in compare.table([line])


def test_noisy_wall_clock_is_undecided_with_the_cpu_time_as_a_hint(compare: ModuleType) -> None:
    runs = {
        "BASE": [_run(_ratio("a", r, 1.0)) for r in (1.0, 0.6, 1.3)],
        "HEAD": [_run(_ratio("a", r, 1.01)) for r in (0.9, 1.4, 0.7)],
    }
    [line] = [ln.judge() for ln in compare.collect("grp", runs)]
    assert line["verdict"] == "noise: spread exceeds 10%, rerun; by CPU time: ok"
    assert line["cpu_verdict"] == "ok" and not line["regressed"]


def test_a_row_without_a_baseline_is_compared_on_its_time(compare: ModuleType) -> None:
    def timed(s: float) -> dict[str, Any]:
        return dict(id="t", operation="op t", xenlu_s=s)

    runs = {
        "BASE": [_run(timed(0.100)), _run(timed(0.101))],
        "HEAD": [_run(timed(0.050)), _run(timed(0.051))],
    }
    [line] = [ln.judge() for ln in compare.collect("grp", runs)]
    assert line["kind"] == "time" and line["verdict"] == "faster"
    assert "(time)" in compare.table([line])


def test_an_operation_missing_in_base_is_said_not_failed(compare: ModuleType) -> None:
    gone = dict(
        id="view",
        operation="view",
        skipped="FAILED (exit 1): ModuleNotFoundError: No module named 'xenlu.tools.jsonform'",
    )
    runs = {
        "BASE": [_run(gone), _run(gone)],
        "HEAD": [_run(_ratio("dump", 2.0), _ratio("build", 1.0))] * 2,
    }
    lines = {ln.rid: ln.judge() for ln in compare.collect("view", runs)}
    assert set(lines) == {"dump", "build"}
    for line in lines.values():
        assert line["verdict"].startswith("not in BASE: ModuleNotFoundError")
        assert not line["regressed"]
    assert lines["dump"]["head_median"] == 2.0


def test_a_row_that_breaks_in_head_fails_the_comparison(compare: ModuleType) -> None:
    broke = dict(id="encode", operation="encode", skipped="FAILED (exit 1): ValueError: bad")
    runs = {"BASE": [_run(_ratio("lu_encode", 0.7))] * 2, "HEAD": [_run(broke)] * 2}
    [line] = [ln.judge() for ln in compare.collect("encode", runs)]
    assert line["verdict"] == "FAILED in HEAD: ValueError: bad"
    assert line["regressed"]


def test_a_row_the_harness_skips_on_both_sides_is_skipped(compare: ModuleType) -> None:
    why = "XEN_TOOLS_PYTHON unset (point it at Xen's tools/python, 4.14+)"
    xen = dict(id="xen_small", operation="xen", skipped=why)
    runs = {"BASE": [_run(xen)] * 2, "HEAD": [_run(xen)] * 2}
    [line] = [ln.judge() for ln in compare.collect("xen", runs)]
    assert line["verdict"] == f"skipped in both: {why}"
    assert not line["regressed"]


def _git(*args: str) -> str:
    p = subprocess.run(
        ["git", "-C", str(BENCH.parent), *args], capture_output=True, text=True, check=False
    )
    if p.returncode:
        pytest.skip("not a git checkout")
    return p.stdout.strip()


def test_export_writes_the_revisions_package_only(compare: ModuleType, tmp_path: Path) -> None:
    commit = _git("rev-parse", "HEAD")
    side = compare.export("BASE", "HEAD", tmp_path)
    assert side.commit == commit
    assert (side.root / "xenlu" / "__init__.py").is_file()
    assert sorted(p.name for p in side.root.iterdir()) == ["xenlu"]
    tracked = _git("ls-tree", "-r", "--name-only", commit, "xenlu").splitlines()
    assert sorted(str(p.relative_to(side.root)) for p in side.root.rglob("*") if p.is_file()) == (
        sorted(tracked)
    )


def test_export_takes_a_directory_as_it_is(compare: ModuleType, tmp_path: Path) -> None:
    side = compare.export("HEAD", str(BENCH.parent), tmp_path)
    assert side.root == BENCH.parent and side.commit == "work tree"
    assert not any(tmp_path.iterdir())


def test_unknown_revision_is_a_usage_error(compare: ModuleType) -> None:
    _git("rev-parse", "HEAD")
    assert compare.main(["no-such-revision-xyz", "--rounds", "2"]) == 2
    with pytest.raises(SystemExit) as exc:
        compare.main(["HEAD", "--only", "nonsense"])
    assert exc.value.code == 2


def test_isolation_keeps_another_package_from_the_repository_modules(tmp_path: Path) -> None:
    # a "revision" whose xenlu lacks api.py: with the isolation, importing
    # xenlu.api fails instead of loading the repository's api.py over it
    (tmp_path / "xenlu").mkdir()
    (tmp_path / "xenlu" / "__init__.py").write_text("")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import xenlu\n"
        "try:\n    import xenlu.api\nexcept ModuleNotFoundError:\n    print('missing')\n"
        "else:\n    print(xenlu.api.__file__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(BENCH / "isolate")
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "missing"


def test_a_saved_run_is_judged_again_from_its_json(
    compare: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = {
        "BASE": [_run(_ratio("lu_encode", r)) for r in (0.70, 0.71)],
        "HEAD": [_run(_ratio("lu_encode", r)) for r in (0.40, 0.41)],
    }
    doc = dict(runs={"encode": runs}, load=[1.0, 2.0], total_s=10.0)
    (tmp_path / "run.json").write_text(json.dumps(doc))
    assert compare.main(["--from-json", str(tmp_path / "run.json")]) == 1
    out = capsys.readouterr().out
    assert "| lu_encode |" in out and "slower >10%" in out
    assert "regressed beyond the noise: lu_encode" in out
