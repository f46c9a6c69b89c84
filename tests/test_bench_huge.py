"""The huge benchmark scale's own parts (issue 14): adversarial inputs and the watchdog.

The timings themselves are not tested (they are the benchmark's output);
what is tested is that each adversarial stream is what its row says — small
and structurally valid, so validate/plan must take it — and that a measured
process passing the memory limit is stopped and reported, not left to take
the machine down.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from xenlu.api import verify
from xenlu.lu.stream import encode_lu

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("xenlu_bench_run", RUN)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_huge_shape_is_128_equal_fully_fragmented_domains(bench: ModuleType) -> None:
    shape = bench.huge_shape(1024)
    assert shape["n_hvm"] + 1 == 128
    assert shape["mem_mib"] == shape["dom0_mem_mib"] == 8192
    assert shape["fragmentation"] == 1.0


@pytest.mark.parametrize(
    "name", ["global_extents", "nested", "staircase", "one_frame_6000", "near_4g_dense"]
)
def test_adversarial_streams_are_small_and_structurally_valid(
    bench: ModuleType, name: str, tmp_path: Path
) -> None:
    build, _desc, ops = bench.ADVERSARIAL[name]
    base = bench._adv_base(1 if name in ("nested", "staircase") else 0)
    data = encode_lu(build(base))
    assert len(data) < 1_000_000
    path = tmp_path / "adv.lu"
    path.write_bytes(data)
    verify(path)  # structural checks pass: the semantic layer has to cope
    assert ops


def test_measured_stops_a_child_past_the_limit(bench: ModuleType) -> None:
    hog = "import numpy as np, time; a = np.ones(512 << 20, np.uint8); time.sleep(30)"
    m = bench.measured([sys.executable, "-c", hog], 0.125)
    assert m["exceeded"] and m["rc"] != 0
    assert m["peak_anon_mib"] > 128
    assert m["wall_s"] < 25


def test_measured_reports_exit_code_output_and_traceback(bench: ModuleType) -> None:
    ok = bench.measured([sys.executable, "-c", "print('x' * 100)"], 1.0)
    assert (ok["rc"], ok["exceeded"], ok["traceback"], ok["stdout_bytes"]) == (0, False, False, 101)
    bad = bench.measured([sys.executable, "-c", "raise MemoryError('big')"], 1.0)
    assert bad["rc"] == 1 and bad["traceback"] and bad["error"] == "MemoryError: big"
