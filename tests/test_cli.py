"""The command line contract: exit codes, one line per problem, JSON keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vectors.libxc_vectors import VECTORS
from xenlu.cli.app import main
from xenlu.lu.stream import encode_lu
from xenlu.migration.libxc_stream import decode_libxc
from xenlu.testing.hostgen import make_host

BY_NAME = {v.name: v for v in VECTORS}


@pytest.fixture(scope="module")
def lu_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cli") / "host.lu"
    p.write_bytes(encode_lu(make_host((4, 13), n_hvm=2, mem_mib=2, dom0_mem_mib=2)))
    return p


def _write(tmp_path: Path, name: str) -> Path:
    p = tmp_path / f"{name}.bin"
    p.write_bytes(BY_NAME[name].data)
    return p


def test_verify_valid_lu(lu_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(lu_file)]) == 0
    assert "OK (lu)" in capsys.readouterr().out
    assert main(["verify", "-q", str(lu_file)]) == 0
    assert capsys.readouterr().out == ""


def test_verify_verbose_prints_every_record(
    lu_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "-v", "--format", "lu", str(lu_file)]) == 0
    out = capsys.readouterr().out
    assert "LU_VERSION" in out and "HVM_CONTEXT" in out and "@0x0 " in out


def test_verify_invalid_prints_one_located_line(
    lu_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.lu"
    bad.write_bytes(lu_file.read_bytes()[:5000])
    assert main(["verify", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "FramingError" in err[0] and "offset 0x" in err[0] and "record #" in err[0]


@pytest.mark.parametrize("name", ["hvm_v3_valid", "pv_v2_valid", "libxl_hvm_valid", "xl_valid"])
def test_verify_libxc_family(name: str, tmp_path: Path) -> None:
    fmt = BY_NAME[name].format
    assert main(["verify", "-q", str(_write(tmp_path, name))]) == 0
    assert main(["verify", "-q", "--format", fmt, str(_write(tmp_path, name))]) == 0


@pytest.mark.parametrize(
    ("name", "n"),
    [("bytes_after_end", 8), ("libxl_bytes_after_end", 16), ("xl_bytes_after_end", 1)],
)
def test_bytes_after_end_are_reported_not_refused(
    name: str, n: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = str(_write(tmp_path, name))
    assert main(["verify", "-q", f]) == 0
    assert main(["verify", "-v", f]) == 0
    size = len(BY_NAME[name].data)
    assert f"{n} bytes after END @{size - n:#x}: not part of the stream" in capsys.readouterr().out
    assert main(["verify", "-v", "--json", f]) == 0
    assert json.loads(capsys.readouterr().out)["trailing_bytes"] == n
    assert main(["inspect", "--json", f]) == 0
    assert json.loads(capsys.readouterr().out)["trailing_bytes"] == n
    assert main(["inspect", f]) == 0
    assert f"trailing_bytes {n}" in capsys.readouterr().out


def test_hvm_context_bytes_after_the_end_entry_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = str(_write(tmp_path, "hvm_context_bytes_after_end_entry"))
    assert main(["inspect", "--json", f]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["trailing_bytes"], got["hvm_context_trailing_bytes"]) == (0, 8)
    assert main(["verify", "-v", f]) == 0
    assert "8 bytes after the HVM_CONTEXT END entry" in capsys.readouterr().out


def test_verify_wrong_format_fails(lu_file: Path) -> None:
    assert main(["verify", "-q", "--format", "libxc", str(lu_file)]) == 1


def test_usage_errors_exit_2(lu_file: Path) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["verify", "--format", "nope", str(lu_file)])
    assert ei.value.code == 2
    assert main(["verify", "--format", "memory", str(lu_file)]) == 2  # needs --liveupdate


def test_missing_file_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "absent")]) == 74  # I/O, not "invalid"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err and "No such file" in err


def test_inspect_json_lu(lu_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--json", str(lu_file)]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("format", "version", "xen_version", "records", "bytes", "record_counts"):
        assert key in out
    assert out["format"] == "lu" and out["xen_version"] == "4.13" and out["epoch"] == "4.13"
    assert out["sections_ok"] is True
    assert out["bytes"] == lu_file.stat().st_size
    assert out["record_counts"]["LU_SECTION_END"] == 4 and out["record_counts"]["END"] == 1
    assert out["records"] == sum(out["record_counts"].values())
    dom = out["domains"][1]
    assert dom["domid"] == 1 and dom["type"] == "hvm"
    assert dom["entry_counts"]["LU_P2M"] > 0 and dom["record_counts"]["LU_DOMAIN"] == 1


def test_inspect_json_libxc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "hvm_v3_valid")
    assert main(["inspect", "--json", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "libxc" and out["version"] == 3 and out["domain_type"] == "hvm"
    assert out["bytes"] == path.stat().st_size and out["record_counts"]["END"] == 1
    assert isinstance(out["xen_version"], str)


def test_inspect_text(lu_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(lu_file)]) == 0
    assert "sections_ok  True" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["hvm_v2_valid", "pv_v2_valid"])
def test_convert_to_v3(name: str, tmp_path: Path) -> None:
    src = _write(tmp_path, name)
    out = tmp_path / "v3.bin"
    assert main(["convert", "--to-v3", str(src), str(out)]) == 0
    stream, _, _ = decode_libxc(out.read_bytes())
    assert stream.version == 3
    assert any(r.type == 0x10 for r in stream.records)  # STATIC_DATA_END inserted


def test_stdin_and_module_entry_point(lu_file: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "xenlu", "verify", "-"],
        input=lu_file.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"OK (lu)" in proc.stdout


def test_records_of_a_checkpointed_libxl_stream_include_resumed_batches() -> None:
    """verify -v and inspect see the libxc records after each CHECKPOINT_END too."""
    from tests.test_libxl import checkpointed
    from xenlu.cli.listing import _records
    from xenlu.migration.libxl import decode_libxl, libxl_bytes

    flat = _records(decode_libxl(libxl_bytes(checkpointed())))
    libxc_names = [r.name for fam, r in flat if fam == "libxc"]
    # first batch (SDE, TSC, CHECKPOINT), second (TSC, CHECKPOINT), third (END)
    assert libxc_names == [
        "STATIC_DATA_END",
        "X86_TSC_INFO",
        "CHECKPOINT",
        "X86_TSC_INFO",
        "CHECKPOINT",
        "END",
    ]
    assert sum(1 for fam, _ in flat if fam == "libxl") == 7
