"""``validate``/``plan``/``check`` of a pipe (issue 18, Deliver 3): the
incremental LU decoder keeps only what validate and plan read
(:data:`xenlu.host.validation.COLUMNS`), never the stream, and the report,
plan and JSON are those of the mapped file; peak memory follows the records
kept, not the stream."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xenlu.cli.app import main
from xenlu.core.registry import Record
from xenlu.feed.decoder import Decoder
from xenlu.host.restore_plan import plan
from xenlu.host.validation import COLUMNS, validate
from xenlu.lu.records import T
from xenlu.lu.stream import VCPU_TYPES, LUDomain, LUStream, X, decode_lu, encode_lu
from xenlu.migration.libxc_records import PvVcpu
from xenlu.testing import strategies as S
from xenlu.testing.hostgen import make_host

_ALWAYS = {T.LU_VERSION, T.LU_DOMAIN}


def _columns(data: bytes, step: int) -> LUStream:
    """``data`` fed to the pipe path's decoder ``step`` bytes at a time."""
    d = Decoder("lu", events=False, keep=COLUMNS)
    for i in range(0, len(data), step):
        d.feed(data[i : i + step])
    d.close()
    got: LUStream = d.stream
    return got


def _same_verdicts(data: bytes, step: int) -> LUStream:
    """The columns of ``data``: validate and plan give what the whole stream gives."""
    whole = decode_lu(data)
    cols = _columns(data, step)
    assert validate(cols).to_json() == validate(whole).to_json()
    assert validate(cols, max_per_code=1).to_json() == validate(whole, max_per_code=1).to_json()
    assert plan(cols).to_json() == plan(whole).to_json()
    for sec in cols.sections:  # only what validate reads was kept
        assert all(r.type in COLUMNS or r.type in _ALWAYS for r in sec.records)
    return cols


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.hosts(max_domains=4, max_mem_mib=2), st.sampled_from([7, 4096, 1 << 20]))
def test_columns_of_consistent_hosts_give_the_same_report(host: LUStream, step: int) -> None:
    _same_verdicts(encode_lu(host), step)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.wild_hosts(max_domains=4), st.sampled_from([13, 1 << 20]))
def test_columns_of_wild_hosts_give_the_same_report(host: LUStream, step: int) -> None:
    """Records that relate at random: many findings (vCPU ids beyond
    max_vcpus, HVM_CONTEXT instances, SHINFO32) reported identically."""
    _same_verdicts(encode_lu(host), step)


def test_columns_drop_blobs_and_keep_ids() -> None:
    """vCPU contexts and HVM context data are not kept; their ids are, one
    compact record per record (finding entry indices and plan's work counts
    are unchanged); HVM_PARAMS, TSC and CPUID/MSR policies are dropped."""
    host = make_host((4, 15), n_hvm=1, mem_mib=2, vcpus=2)
    cols = _same_verdicts(encode_lu(host), 1 << 16)
    for full, got in zip(host.domains, cols.domains, strict=True):
        for t in VCPU_TYPES:
            assert [v.vcpu_id for v in got.of_type(t)] == [v.vcpu_id for v in full.of_type(t)]
            assert all(v.context == b"" for v in got.of_type(t))
        if full.hvm_context is not None:
            assert got.hvm_context is not None
            ids = [(e.typecode, e.instance) for e in got.hvm_context.entries]
            assert ids == [(e.typecode, e.instance) for e in full.hvm_context.entries]
            assert all(e.data == b"" for e in got.hvm_context.entries)
        for t in (X.HVM_PARAMS, X.X86_TSC_INFO, X.X86_CPUID_POLICY, X.X86_MSR_POLICY):
            assert got.of_type(t) == []
        assert got.p2m.tobytes() == full.p2m.tobytes()
        assert got.ownership.tobytes() == full.ownership.tobytes()


def _error(data: bytes, keep: Any) -> tuple[Any, ...] | None:
    from xenlu.core.errors import DecodeError

    d = Decoder("lu", events=False, keep=keep)
    try:
        d.feed(data)
        d.close()
    except DecodeError as exc:
        return (type(exc), exc.offset, exc.record_index, exc.record_type, exc.field, str(exc))
    return None


def test_columns_same_errors_as_the_whole_stream() -> None:
    """Every byte is still checked: each invalid vector gives the error of
    the decoder that keeps everything and of the one that keeps nothing
    (``verify -``)."""
    from tests.vectors.lu_vectors import INVALID

    for v in INVALID:
        want = _error(v.data, False)
        assert want is not None, v.name
        assert _error(v.data, COLUMNS) == want == _error(v.data, True), v.name


def _run(
    args: list[str], data: bytes, f: Path, capsys: pytest.CaptureFixture[str], mp: Any
) -> None:
    from tests.test_cli_contract import _stdin

    f.write_bytes(data)
    rc = main([*args, str(f)])
    want = capsys.readouterr()
    _stdin(mp, data)
    assert main([*args, "-"]) == rc
    got = capsys.readouterr()
    assert got.out == want.out.replace(str(f), "-")
    assert got.err == want.err.replace(str(f), "-")


def test_plan_and_check_of_a_pipe_are_those_of_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``plan`` and ``check`` of a pipe (columns kept, stream never held):
    the output and exit code of the mapped file, text and ``--json``."""
    from tests.vectors.lu_vectors import GOLDEN, SEMANTIC_ONLY
    from tests.vectors.lu_vectors import INVALID as LU_INVALID

    root = Path(__file__).resolve().parent
    cases = [(v.name, v.data) for v in GOLDEN + SEMANTIC_ONLY + LU_INVALID[::7]]
    cases += [(p.name, p.read_bytes()) for p in sorted(root.glob("golden/4.*/*.bin"))]
    f = tmp_path / "stream.lu"
    for _name, data in cases:
        for cmd in (["plan", "-q"], ["plan", "-q", "--json"], ["check"], ["check", "--json"]):
            _run(cmd, data, f, capsys, monkeypatch)


# --- peak memory of ``cat big | xenlu validate -`` -----------------------------------

_PEAK = """
import sys
from xenlu.cli.app import main
rc = main(["validate", "-q", "-"])
status = open("/proc/self/status").read()
sys.stderr.write(status.split("VmHWM:")[1].split()[0] + "\\n")
sys.exit(rc)
"""


def _peak_kib(path: Path) -> tuple[int, int]:
    """(exit code, VmHWM in KiB) of ``cat path | xenlu validate -q -``."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE) as cat:
        p = subprocess.run(
            [sys.executable, "-c", _PEAK], stdin=cat.stdout, capture_output=True, env=env
        )
    assert cat.returncode == 0
    return p.returncode, int(p.stderr.decode().strip().splitlines()[-1])


def _blob_heavy(vcpus: int, blob: int) -> bytes:
    """A PV host whose bytes are nearly all vCPU context blobs (records validate
    does not read beyond their vcpu_id)."""
    host = make_host((4, 15), n_hvm=0, mem_mib=2, vcpus=vcpus)
    doms = []
    for d in host.domains:
        recs = [
            Record(r.type, PvVcpu(r.value.vcpu_id, bytes([r.type]) * blob))
            if r.type in VCPU_TYPES
            else r
            for r in d.records
        ]
        doms.append(LUDomain(recs))
    return encode_lu(dataclasses.replace(host, domains=doms))


def test_validate_of_a_pipe_is_bounded_by_the_records_kept(tmp_path: Path) -> None:
    """96 MiB of vCPU blobs through a pipe: the peak grows by a fraction of
    the stream (one record and the buffer), not the stream; the small stream
    of the same host is the baseline."""
    small = tmp_path / "small.lu"
    big = tmp_path / "big.lu"
    small.write_bytes(_blob_heavy(8, 64))
    data = _blob_heavy(8, 4 << 20)
    assert len(data) > 96 << 20, len(data)
    big.write_bytes(data)
    del data
    rc0, base = _peak_kib(small)
    rc1, peak = _peak_kib(big)
    assert rc0 == rc1 == 0
    grown = (peak - base) << 10
    assert grown < 40 << 20, f"peak grew by {grown >> 20} MiB for a 96 MiB stream"


def test_a_kept_stream_is_known_in_a_fresh_process() -> None:
    """The stream the pipe path builds is an LU stream to format_of in a
    process that imported nothing else (it was "not a stream xenlu encodes:
    LUStream" when only the model's module had been loaded)."""
    code = (
        "from xenlu.feed.decoder import Decoder\n"
        "from xenlu.api import format_of\n"
        "import sys\n"
        "d = Decoder('lu', events=False, keep=True)\n"
        "d.feed(sys.stdin.buffer.read()); d.close()\n"
        "print(format_of(d.stream))\n"
    )
    data = encode_lu(make_host((4, 15), n_hvm=0, mem_mib=2))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, env=env)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode().strip() == "lu"
