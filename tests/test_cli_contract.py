"""The command line's contract (issue 11), table-driven.

Every bad input × every subcommand: the exit code of :class:`xenlu.cli.io.Exit`,
exactly one line on stderr, no "Traceback", and no file or temporary file
left behind. Then the outputs (atomic, modes, in place, report after OUT),
the JSON shapes, ``verify -v`` numbering, ``--liveupdate``, help texts, and
the process-level cases (closed stdin/stdout, full disk, broken pipe,
Ctrl-C, FIFOs) in real subprocesses.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vectors.libxc_vectors import VECTORS
from xenlu.cli.app import build_parser, main
from xenlu.cli.io import Exit
from xenlu.lu.stream import LUStream, decode_lu, encode_lu
from xenlu.testing.hostgen import make_host

BY_NAME = {v.name: v for v in VECTORS}
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")
XENLU = [sys.executable, "-m", "xenlu"]


@pytest.fixture(scope="module")
def host() -> LUStream:
    return make_host((4, 13), n_hvm=2, mem_mib=2, dom0_mem_mib=2)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, host: LUStream) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    good = encode_lu(host)
    (d / "good.lu").write_bytes(good)
    (d / "empty").write_bytes(b"")
    (d / "random.bin").write_bytes(bytes((i * 151 + 7) & 0xFF for i in range(3000)))
    (d / "image.png").write_bytes(PNG)
    (d / "truncated.lu").write_bytes(good[:5000])
    (d / "dir").mkdir()
    (d / "v2.xc").write_bytes(BY_NAME["hvm_v2_valid"].data)
    (d / "v3.xc").write_bytes(BY_NAME["hvm_v3_valid"].data)
    (d / "save.xl").write_bytes(BY_NAME["xl_valid"].data)
    return d


def _tree(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def run(argv: list[str]) -> int:
    """main(), with argparse's SystemExit turned into its code."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    return lines[0]


# --- every bad input × every subcommand ---------------------------------------------

COMMANDS: list[list[str]] = [
    ["verify"],
    ["verify", "-v"],
    ["verify", "--json"],
    ["inspect"],
    ["inspect", "--json"],
    ["validate"],
    ["validate", "--json"],
    ["check"],
    ["check", "--json"],
    ["plan"],
    ["plan", "--json"],
    ["convert", "--to", "4.15"],
    ["convert", "--to-v3"],
    ["convert", "--dry-run", "--to", "4.15"],
    ["convert", "--dry-run", "--json", "--to", "4.11"],
    ["map"],
    ["show"],
    ["show", "--all"],
    ["dump"],
    ["dump", "-o"],
    ["build", "-o"],
    ["diff"],
    ["diff", "--json"],
]

# input -> exit code for every command, or per command name where they differ
INVALID, IO = int(Exit.INVALID), int(Exit.IO)
BAD_INPUTS: dict[str, int | dict[str, int]] = {
    "missing": IO,
    "dir": IO,
    "-": IO,  # standard input closed
    "empty": INVALID,
    "random.bin": INVALID,
    "image.png": INVALID,
    "truncated.lu": INVALID,
    # an xl file where an LU stream is needed; --to-v3 refuses a v3 stream
    "save.xl": {"verify": 0, "inspect": 0, "show": 0, "dump": 0, "diff": 0, "default": INVALID},
}


def _expected(inp: str, cmd: list[str]) -> int:
    want = BAD_INPUTS[inp]
    if isinstance(want, dict):
        return want.get(cmd[0], want["default"])
    return want


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: "-".join(c))
@pytest.mark.parametrize("inp", list(BAD_INPUTS))
def test_bad_input_table(
    inp: str,
    cmd: list[str],
    inputs: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if inp == "-":
        monkeypatch.setattr(sys, "stdin", None)
    before = _tree(inputs)
    src = inp if inp == "-" else str(inputs / inp)
    argv = [*cmd, src]
    if cmd[0] == "convert" and "--dry-run" not in cmd:
        argv.append(str(tmp_path / "out.bin"))
    if cmd[0] == "map":
        argv += ["-o", str(tmp_path / "out.png")]
    if cmd[-1] == "-o":  # dump -o OUT, build -o OUT: the output goes in tmp_path
        argv = [*cmd, str(tmp_path / "out.bin"), src]
    if cmd[0] == "diff":
        argv.append(src)  # the stream against itself
    rc = run(argv)
    out, err = capsys.readouterr()
    want = _expected(inp, cmd)
    assert rc == want, (argv, out, err)
    assert "Traceback" not in out + err
    if rc:
        line = one_line(err)
        assert line.startswith(f"xenlu {cmd[0]}: ")
        assert ".xenlu-tmp" not in line and "b'" not in line
    else:
        assert err == ""
    if rc == INVALID and "--json" in cmd and cmd[0] in ("verify", "validate", "check"):
        obj = json.loads(out)
        assert obj["valid"] is False and obj["error"]["class"].endswith("Error")
        assert obj["file"] == src and "offset" in obj["error"]
    assert _tree(inputs) == before
    written = {"convert": {"out.bin"}, "map": {"out.png"}}.get(cmd[0], set())
    if cmd[-1] == "-o":  # dump -o OUT, build -o OUT
        written = {"out.bin"}
    if "--dry-run" in cmd:
        written = set()
    assert _tree(tmp_path) == (written if rc == 0 else set()), (
        "no output or temporary file after a failure"
    )


def test_wrong_format_is_invalid_not_a_crash(
    inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A libxc stream read as LU, an LU stream read as libxc: exit 1, one line
    # that says what the file looks like (the decoder's wording, xenlu.api.sniff).
    for argv, said in (
        (["verify", "--format", "lu", str(inputs / "v3.xc")], "not an LU stream: looks like"),
        (["verify", "--format", "libxc", str(inputs / "good.lu")], "looks like an LU stream"),
        (["inspect", "--format", "xl", str(inputs / "v2.xc")], "looks like a libxc"),
    ):
        assert run(argv) == INVALID
        assert said in one_line(capsys.readouterr().err), argv


# --- usage errors: exit 2, one line ------------------------------------------------

NINES = "9" * 5000
USAGE: list[list[str]] = [
    ["verify", "--nope", "F"],
    ["verify", "--format", "nope", "F"],
    ["verify", "--format", "memory", "F"],
    ["verify", "--format", "lu", "--liveupdate", "64M@0x200000", "F"],
    ["verify", "--liveupdate", f"{NINES}M@0x200000", "F"],
    ["verify", "--liveupdate", "2M@0x", "F"],
    ["verify", "-q", "--json", "F"],
    ["verify", "-q", "-v", "F"],
    ["inspect", "--liveupdate", "1K@0x0", "F"],
    ["inspect", "--format", "libxc", "--liveupdate", "1G@0x0", "F"],
    ["validate", "--max-per-code", "0", "F"],
    ["validate", "--max-per-code", NINES, "F"],
    ["validate", "--format", "libxc", "F"],
    ["validate", "--liveupdate", f"1M@{NINES}", "F"],
    ["check", "--max-per-code", "0", "F"],
    ["check", "--format", "libxc", "F"],
    ["plan", "--format", "memory", "F"],
    ["convert", "--to", "5.0", "F", "O"],
    ["convert", "--to", "4.10", "F", "O"],
    ["convert", "--to", "4.22", "F", "O"],
    ["convert", "--to", "4", "F", "O"],
    ["convert", "--to", "latest", "F", "O"],
    ["convert", "--to", NINES, "F", "O"],
    ["convert", "--to-v3", "--report", "r.json", "F", "O"],
    ["convert", "--to-v3", "--allow-loss", "F", "O"],
    ["convert", "--to-v3", "--to", "4.15", "F", "O"],
    ["convert", "--to", "4.15", "--report", "-", "F", "O"],
    ["convert", "F", "O"],
    ["show", "--domain", "one", "F"],
    ["show", "--nope", "F"],
    ["dump", "--inline-max", "x", "F"],
    ["build", "F"],
    ["diff", "F"],
    ["diff", "-q", "--json", "F", "G"],
    ["schema", "dump", "--epoch", "5.0"],
    ["schema", "dump", "--epoch", NINES],
    ["schema", "nope"],
    ["convert", "--dry-run", "--to", "4.15", "F", "O"],
    ["convert", "--dry-run", "--to-v3", "F"],
    ["convert", "--dry-run", "--to", "4.15", "--report", "r.json", "F"],
    ["convert", "--dry-run", "--to", "4.15", "-q", "--json", "F"],
    ["convert", "--json", "--to", "4.15", "F", "O"],
    ["convert", "--to", "4.15", "F"],
    ["map", "F"],
    ["map", "F", "-o", "O.jpg"],
    ["map", "--width", "9", "F", "-o", "O.png"],
    ["map", "--format", "libxc", "F", "-o", "O.png"],
    [],
    ["nope"],
]


@pytest.mark.parametrize("argv", USAGE, ids=lambda a: " ".join(a)[:60])
def test_usage_errors_are_one_line_exit_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    here = os.getcwd()
    os.chdir(tmp_path)  # "F", "O", "r.json" are relative: nothing may appear
    try:
        assert run(argv) == Exit.USAGE
    finally:
        os.chdir(here)
    out, err = capsys.readouterr()
    line = one_line(err)
    assert line.startswith("xenlu")
    assert len(line) < 600  # a 5000-digit argument is not echoed whole
    assert out == "" and _tree(tmp_path) == set()


def test_convert_refusal_and_v3_twice(inputs: Path, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "o.bin"
    assert run(["convert", "--to-v3", str(inputs / "v3.xc"), str(out)]) == INVALID
    line = one_line(capsys.readouterr().err)
    assert "refused" in line and "already version 3" in line and "convert_v2_to_v3" not in line
    assert run(["convert", "--to-v3", str(inputs / "good.lu"), str(out)]) == INVALID
    assert "--to X.Y" in one_line(capsys.readouterr().err)
    assert _tree(tmp_path) == set()


# --- outputs ---------------------------------------------------------------------------


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
@pytest.mark.parametrize("mode", [["--to-v3"], ["--to", "4.21"]])
def test_new_output_mode_follows_the_umask(
    mask: int, mode: list[str], inputs: Path, tmp_path: Path
) -> None:
    src = inputs / ("v2.xc" if mode == ["--to-v3"] else "good.lu")
    out = tmp_path / "new.bin"
    with umask(mask):
        assert run(["convert", *mode, "-q", str(src), str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask
    assert _tree(tmp_path) == {"new.bin"}


@pytest.mark.parametrize("mode", [["--to-v3"], ["--to", "4.21"]])
def test_convert_in_place_is_atomic_and_keeps_the_mode(
    mode: list[str], inputs: Path, tmp_path: Path, capsys: Any
) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes((inputs / ("v2.xc" if mode == ["--to-v3"] else "good.lu")).read_bytes())
    src.chmod(0o640)
    inode = src.stat().st_ino
    assert run(["convert", *mode, "-q", str(src), str(src)]) == 0
    assert stat.S_IMODE(src.stat().st_mode) == 0o640
    assert src.stat().st_ino != inode  # a new file renamed over the old one
    assert run(["verify", "-q", str(src)]) == 0
    assert _tree(tmp_path) == {"f.bin"}
    capsys.readouterr()


def test_refused_conversion_in_place_leaves_in_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_compat import set_info

    src = tmp_path / "f.lu"
    data = encode_lu(
        set_info(make_host((4, 15), n_hvm=1, mem_mib=2, dom0_mem_mib=2), 1, vmtrace_size=4096)
    )
    src.write_bytes(data)
    inode = src.stat().st_ino
    assert (
        run(["convert", "--to", "4.13", "--report", str(tmp_path / "r.json"), str(src), str(src)])
        == INVALID
    )
    assert "refused" in one_line(capsys.readouterr().err)
    assert src.read_bytes() == data and src.stat().st_ino == inode
    assert _tree(tmp_path) == {"f.lu"}


def test_output_through_a_symlink_replaces_the_target(inputs: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    assert run(["convert", "--to-v3", str(inputs / "v2.xc"), str(link)]) == 0
    assert link.is_symlink() and real.read_bytes()[:8] == b"\xff" * 8


def test_output_to_a_device_is_written_not_replaced(inputs: Path) -> None:
    assert run(["convert", "--to-v3", str(inputs / "v2.xc"), os.devnull]) == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize(
    "out", ["missing-dir/o.bin", "dir", "file.bin/o.bin"], ids=["no-dir", "is-dir", "not-dir"]
)
def test_unwritable_output_is_io(
    out: str, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.bin").write_bytes(b"x")
    before = _tree(tmp_path)
    for mode in (["--to-v3", str(inputs / "v2.xc")], ["--to", "4.15", str(inputs / "good.lu")]):
        assert run(["convert", *mode, str(tmp_path / out)]) == IO
        line = one_line(capsys.readouterr().err)
        assert line.startswith(f"xenlu convert: cannot write {tmp_path / out}: ")
        assert ".xenlu-tmp" not in line
    assert _tree(tmp_path) == before


def test_read_only_file_system_is_io_and_leaves_nothing(
    inputs: Path, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    def erofs(*a: Any, **k: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", erofs)
    out = tmp_path / "o.bin"
    assert run(["convert", "--to-v3", str(inputs / "v2.xc"), str(out)]) == IO
    assert one_line(capsys.readouterr().err).endswith(f"cannot write {out}: Read-only file system")
    assert _tree(tmp_path) == set()


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left")])
def test_failure_while_writing_removes_the_temporary(
    exc: BaseException,
    inputs: Path,
    tmp_path: Path,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import xenlu.api

    def fail(stream: Any, sink: Any, **k: Any) -> int:
        sink.write(b"partial")
        raise exc

    monkeypatch.setattr(xenlu.api, "encode_to", fail)
    out = tmp_path / "o.bin"
    out.write_bytes(b"previous")
    rc = run(["convert", "--to", "4.15", str(inputs / "good.lu"), str(out)])
    assert rc == (Exit.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else Exit.IO)
    line = one_line(capsys.readouterr().err)
    assert "interrupted" in line or "No space left" in line
    assert _tree(tmp_path) == {"o.bin"} and out.read_bytes() == b"previous"


def test_report_is_written_only_after_out(
    inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rep = tmp_path / "r.json"
    argv = ["convert", "--to", "4.11", "--report", str(rep), str(inputs / "good.lu")]
    assert run([*argv, str(tmp_path / "no-dir" / "o.lu")]) == IO
    assert not rep.exists()
    # the report cannot be written: OUT is not written either
    bad_rep = ["convert", "--to", "4.11", "--report", str(tmp_path / "no-dir" / "r.json")]
    assert run([*bad_rep, str(inputs / "good.lu"), str(tmp_path / "o.lu")]) == IO
    assert _tree(tmp_path) == set()
    capsys.readouterr()
    assert run([*argv, str(tmp_path / "o.lu")]) == 0
    assert json.loads(rep.read_text())["steps"]
    assert decode_lu((tmp_path / "o.lu").read_bytes()).version == (4, 11)
    assert _tree(tmp_path) == {"o.lu", "r.json"}


def test_convert_to_stdout(inputs: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert run(["convert", "--to", "4.15", str(inputs / "good.lu"), "-"]) == 0
    out, err = capfdbinary.readouterr()
    assert decode_lu(out).version == (4, 15) and b"4.13" in err  # the summary goes to stderr


def test_full_stdout_in_process(inputs: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    class Full:
        def write(self, s: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdout", Full())
    for argv in (
        ["inspect", "--json", str(inputs / "good.lu")],
        ["schema", "dump", "--epoch", "4.15"],
    ):
        assert run(argv) == IO
        line = one_line(capsys.readouterr().err)
        assert line.startswith(f"xenlu {' '.join(argv[: 2 if argv[0] == 'schema' else 1])}: ")
        assert line.endswith("cannot write standard output: No space left on device")


# --- JSON, -v, inspect ----------------------------------------------------------------


def test_verify_json(inputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = str(inputs / "good.lu")
    assert run(["verify", "--json", good]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "file": good,
        "format": "lu",
        "valid": True,
        "error": None,
    }
    bad = str(inputs / "truncated.lu")
    assert run(["verify", "--json", bad]) == INVALID
    out, err = capsys.readouterr()
    obj = json.loads(out)
    e = obj["error"]
    assert obj["valid"] is False and obj["format"] is None and e["class"] == "FramingError"
    assert set(e) == {
        "class",
        "message",
        "offset",
        "record_index",
        "record_type",
        "record_name",
        "field",
        "expected",
        "got",
    }
    assert isinstance(e["offset"], int) and f"offset {e['offset']:#x}" in err
    assert f"record #{e['record_index']}" in err
    # validate --json prints the same object on a structurally broken stream
    assert run(["validate", "--json", bad]) == INVALID
    v = json.loads(capsys.readouterr().out)
    assert v["error"] == e and v["valid"] is False


def test_verify_v_numbers_records_as_errors_do(
    host: LUStream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(encode_lu(host))
    good = tmp_path / "good.lu"
    good.write_bytes(data)
    assert run(["verify", "--json", "-v", str(good)]) == 0
    rows = json.loads(capsys.readouterr().out)["records"]
    names = [r["name"] for r in rows]
    assert names[0] == "LU_VERSION" and names[-1] == "END"
    assert names.count("LU_SECTION_END") == len(host.domains) + 1
    assert [r["index"] for r in rows] == list(range(len(rows)))
    assert run(["inspect", "--json", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == len(rows)
    # Break the crc of the second LU_SECTION_END: the error names the same index.
    end = [r for r in rows if r["name"] == "LU_SECTION_END"][1]
    data[end["offset"] + 8 + end["length"] - 1] ^= 0xFF
    bad = tmp_path / "bad.lu"
    bad.write_bytes(data)
    assert run(["verify", str(bad)]) == INVALID
    assert f"record #{end['index']} type 0x4000007f (LU_SECTION_END)" in capsys.readouterr().err
    assert run(["verify", "-v", str(good)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[end["index"]].startswith(f"#{end['index']} @{end['offset']:#x} 0x4000007f ")


def test_memory_image(host: LUStream, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xenlu.lu.handover import write_handover_file

    image = tmp_path / "mem.img"
    write_handover_file(host, str(image))
    start, size = host.host.lu_bootmem_start, host.host.lu_bootmem_size
    assert size % (1 << 20) == 0
    for arg in (f"{size >> 20}M@{start:#x}", f"{size >> 10}K@{start}", f"{size >> 20}M@{start:#x}"):
        # --liveupdate implies --format memory
        assert run(["verify", "-q", "--liveupdate", arg, str(image)]) == 0
    assert run(["inspect", "--json", "--liveupdate", arg, str(image)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["bytes"] == len(encode_lu(host)) < image.stat().st_size
    assert run(["validate", "--format", "memory", "--liveupdate", arg, str(image)]) == 0
    assert run(["plan", "--liveupdate", arg, str(image)]) == 0
    capsys.readouterr()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from xenlu import __version__

    assert run(["--version"]) == 0
    assert capsys.readouterr().out == f"xenlu {__version__}\n"


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


@pytest.mark.parametrize(
    "name",
    [
        "verify",
        "inspect",
        "convert",
        "validate",
        "check",
        "plan",
        "map",
        "show",
        "dump",
        "build",
        "diff",
    ],
)
def test_help_documents_every_option_the_exit_codes_and_examples(name: str) -> None:
    sub = _subparsers(build_parser())[name]
    for a in sub._actions:
        assert a.help, f"{name} {a.option_strings or a.dest} has no help text"
    text = sub.format_help()
    assert "exit codes: 0 " in text and " 74 " in text and " 2 usage" in text
    examples = text.split("examples:", 1)[1].splitlines()
    assert sum(1 for x in examples if x.startswith(f"  xenlu {name} ")) >= 2


def test_top_level_help_lists_exit_codes() -> None:
    text = build_parser().format_help()
    assert "exit codes:" in text and "--version" in text


def test_broken_subcommand_module_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xenlu.cli.validate", None)  # import fails
    with pytest.raises(ImportError):
        build_parser()


def test_ctrl_c_in_process(
    inputs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import xenlu.host.validation

    def interrupted(*a: Any, **k: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(xenlu.host.validation, "validate", interrupted)
    assert run(["validate", str(inputs / "good.lu")]) == int(Exit.INTERRUPTED) == 130
    assert one_line(capsys.readouterr().err) == "xenlu validate: interrupted"


# --- real processes ------------------------------------------------------------------


def _proc(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*XENLU, *argv], capture_output=True, check=False, timeout=120, **kw)


def _one_line_b(err: bytes) -> str:
    return one_line(err.decode())


def test_process_full_disk_closed_stdin_closed_stdout(inputs: Path) -> None:
    good = str(inputs / "good.lu")
    with open("/dev/full", "wb") as full:
        p = subprocess.run(
            [*XENLU, "inspect", "--json", good],
            stdout=full,
            stderr=subprocess.PIPE,
            check=False,
            timeout=120,
        )
    assert p.returncode == IO
    assert "No space left on device" in _one_line_b(p.stderr)
    p = _proc(["verify", "-"], stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert p.returncode == IO and "standard input" in _one_line_b(p.stderr)
    p = subprocess.run(
        [*XENLU, "inspect", good],
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),
        check=False,
        timeout=120,
    )
    assert p.returncode == IO and "standard output" in _one_line_b(p.stderr)


def test_process_broken_pipe(inputs: Path) -> None:
    p = subprocess.Popen(
        [*XENLU, "verify", "-v", str(inputs / "good.lu")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # the reader is gone before the first write (`| head -0`)
    err = p.stderr.read()
    assert p.wait(timeout=120) == IO
    assert _one_line_b(err).endswith("cannot write standard output: broken pipe")


def _blocked_in_read(pid: int) -> bool:
    try:
        return "pipe" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:  # pragma: no cover - no procfs
        return False


def _default_sigint() -> None:
    # A job started in the background of a non-interactive shell inherits
    # SIGINT ignored, and so would xenlu (rightly: it keeps an ignored
    # Ctrl-C ignored); the test wants a terminal's Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_process_ctrl_c_is_130_and_one_line() -> None:
    p = subprocess.Popen(
        [*XENLU, "verify", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 60
    while not _blocked_in_read(p.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    # Keep stdin open until it has exited: communicate() would close it at
    # once, and on a loaded machine the EOF can reach the read before the
    # signal does (an empty stream, exit 1): a race of the test, not of xenlu.
    rc = p.wait(timeout=60)
    assert p.stdin is not None and p.stderr is not None
    p.stdin.close()
    err = p.stderr.read()
    assert rc == Exit.INTERRUPTED
    assert _one_line_b(err) == "xenlu verify: interrupted"


def test_process_pipes_fifos_and_devices_are_streams(inputs: Path, tmp_path: Path) -> None:
    good = (inputs / "good.lu").read_bytes()
    p = _proc(["verify", "/dev/stdin"], input=good)
    assert p.returncode == 0 and b"OK (lu)" in p.stdout, p.stderr
    p = _proc(["verify", "-"], input=good)
    assert p.returncode == 0 and b"OK (lu)" in p.stdout
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(good)

    t = threading.Thread(target=feed)
    t.start()
    p = _proc(["inspect", "--json", str(fifo)])
    t.join(timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["bytes"] == len(good)
    p = _proc(["verify", os.devnull])  # a character device with nothing in it: empty input
    assert p.returncode == INVALID and "empty" in _one_line_b(p.stderr)


def test_process_usage_error_and_version() -> None:
    p = _proc(["convert", "--to", "5.0", "a", "b"])
    assert p.returncode == Exit.USAGE and "5.0" in _one_line_b(p.stderr)
    p = _proc(["--version"])
    assert p.returncode == 0 and p.stdout.startswith(b"xenlu ")


# --- numbers in messages -----------------------------------------------------------------


def test_messages_offsets_hex_byte_counts_decimal_no_bytes_literals(
    inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xenlu.core.errors import ChecksumError, FramingError

    e = FramingError("record header truncated", offset=0x1000, expected="8 header bytes", got=24)
    assert str(e) == "offset 0x1000: record header truncated: expected 8 header bytes, got 24"
    c = ChecksumError("section length mismatch", field="section_bytes", expected=4000, got=4096)
    assert str(c).endswith("expected 4000, got 4096")
    e = FramingError("bad ident", offset=0, expected=b"LibxlFmt", got=b"\x89PNG\r\n")
    assert str(e) == "offset 0x0: bad ident: expected 'LibxlFmt', got 89504e470d0a"
    assert run(["verify", str(inputs / "truncated.lu")]) == INVALID
    line = one_line(capsys.readouterr().err)
    assert "offset 0x" in line and "type 0x" in line
    assert " bytes of body and padding, got 0x" not in line  # the count is decimal


@pytest.mark.parametrize("name", ["libxl_remus_two_checkpoints_valid", "xl_valid", "hvm_v3_valid"])
def test_verify_v_numbering_matches_errors_in_the_libxc_family(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import re
    import struct

    data = BY_NAME[name].data
    good = tmp_path / "good.bin"
    good.write_bytes(data)
    assert run(["verify", "-v", "--json", str(good)]) == 0
    rows = json.loads(capsys.readouterr().out)["records"]
    assert [r["index"] for r in rows] == list(range(len(rows)))
    for r in rows[1:-1]:
        assert struct.unpack_from("<II", data, r["offset"]) == (r["type"], r["length"])
        bad = bytearray(data)
        struct.pack_into("<I", bad, r["offset"], 0x7FFFFFF0)  # an unknown mandatory type
        (tmp_path / "bad.bin").write_bytes(bad)
        assert run(["verify", str(tmp_path / "bad.bin")]) == INVALID
        m = re.search(r"record #(\d+)", capsys.readouterr().err)
        assert m is not None and int(m.group(1)) == r["index"], r


def test_large_inputs_get_worker_threads_small_ones_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The library keeps no pool; the command line opts in for large inputs only.
    from concurrent.futures import ThreadPoolExecutor

    from xenlu.cli.io import THREADS_FROM_BYTES, worker_threads

    with worker_threads(b"\0" * 64) as pool:
        assert pool is None
    big = memoryview(bytearray(THREADS_FROM_BYTES))
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    with worker_threads(big) as pool:
        assert isinstance(pool, ThreadPoolExecutor)
        assert pool.submit(sum, (1, 2)).result() == 3
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    with worker_threads(big) as pool:
        assert pool is None


# --- streams that flow (issue 18): pipes in bounded memory, --tee ------------------


def _tee_corpus() -> list[tuple[str, bytes, str]]:
    from tests.vectors.lu_vectors import GOLDEN
    from tests.vectors.lu_vectors import INVALID as LU_INVALID

    root = Path(__file__).resolve().parent
    cases = [(v.name, v.data, "lu") for v in GOLDEN + LU_INVALID]
    cases += [(v.name, v.data, v.format) for v in VECTORS]
    cases += [(str(p.name), p.read_bytes(), "lu") for p in sorted(root.glob("golden/4.*/*.bin"))]
    return cases


TEE_CORPUS = _tee_corpus()


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def _first_error(data: bytes, fmt: str) -> Any:
    from xenlu.api import verify
    from xenlu.core.errors import XenLUError

    try:
        verify(data, fmt)
    except XenLUError as exc:
        return exc
    return None


def _record_start(data: bytes, fmt: str, index: int) -> int:
    """The header offset of record ``index``, by framing alone (test-side)."""
    pos = 40 if fmt == "libxc" else 0
    for _ in range(index):
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        pos += 8 + length + (-length & 7)
    return pos


def test_verify_tee_copies_every_golden_stream_and_vector_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "copy.bin"
    for name, data, fmt in TEE_CORPUS:
        _stdin(monkeypatch, data)
        rc = run(["verify", "-q", "--format", fmt, "--tee", str(out), "-"])
        err = capsys.readouterr().err
        want = _first_error(data, fmt)
        assert rc == (0 if want is None else INVALID), (name, err)
        assert out.read_bytes() == data, name
        if want is not None:
            assert one_line(err).endswith(str(want)), name
    assert _tree(tmp_path) == {"copy.bin"}


def test_verify_tee_stop_on_error_stops_at_the_faulty_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "copy.bin"
    checked = 0
    for name, data, fmt in TEE_CORPUS:
        if fmt not in ("lu", "libxc"):
            continue
        _stdin(monkeypatch, data)
        rc = run(["verify", "--format", fmt, "--tee", str(out), "--stop-on-error", "-"])
        capsys.readouterr()
        want = _first_error(data, fmt)
        got = out.read_bytes()
        if want is None:
            assert rc == 0 and got == data, name
            continue
        assert rc == INVALID, name
        if want.record_index is not None:
            stop = _record_start(data, fmt, want.record_index)
        elif fmt == "libxc" and (want.offset or 0) < 40:
            stop = 0  # the headers
        else:
            stop = want.offset  # after END, or the end: every record was good
        assert got == data[:stop], (name, len(got), stop)
        checked += 1
    assert checked > 100


def test_verify_tee_to_stdout_and_usage(
    inputs: Path, capfdbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = (inputs / "good.lu").read_bytes()
    _stdin(monkeypatch, good)
    assert run(["verify", "--tee", "-", "-"]) == 0
    cap = capfdbinary.readouterr()
    assert cap.out == good and cap.err == b""
    for argv in (
        ["verify", "--stop-on-error", "-"],
        ["verify", "--tee", "-", "--json", "-"],
        ["verify", "--tee", "x", "-v", "-"],
        ["verify", "--tee", "x", "--liveupdate", "64M@0", "-"],
    ):
        assert run(argv) == Exit.USAGE, argv
        assert capfdbinary.readouterr().err.count(b"\n") == 1


def test_verify_tee_unwritable_is_io_and_leaves_nothing(
    inputs: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _stdin(monkeypatch, (inputs / "good.lu").read_bytes())
    rc = run(["verify", "--tee", str(tmp_path / "no" / "such" / "dir"), "-"])
    assert rc == IO and "cannot write" in one_line(capsys.readouterr().err)
    assert _tree(tmp_path) == set()


def test_process_pipe_is_verified_as_it_flows_same_error_as_the_file(
    inputs: Path, tmp_path: Path
) -> None:
    """A flipped bit through a pipe: the same one line as the mapped file."""
    good = bytearray((inputs / "good.lu").read_bytes())
    good[len(good) // 2] ^= 0x04
    bad = tmp_path / "bad.lu"
    bad.write_bytes(good)
    by_file = _proc(["verify", str(bad)])
    by_pipe = _proc(["verify", "-"], input=bytes(good))
    assert by_file.returncode == by_pipe.returncode == INVALID
    assert _one_line_b(by_pipe.stderr) == _one_line_b(by_file.stderr).replace(str(bad), "-")
    tee = tmp_path / "tee.lu"
    p = _proc(["verify", "--tee", str(tee), "--stop-on-error", "-"], input=bytes(good))
    assert p.returncode == INVALID
    assert bytes(good).startswith(tee.read_bytes()) and len(tee.read_bytes()) < len(good)


def test_inspect_of_a_pipe_is_the_inspect_of_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """inspect reads a pipe as it flows (events, bounded memory): the same
    summary, text and JSON, as the mapped file, for every valid corpus stream."""
    from xenlu.api import verify
    from xenlu.core.errors import XenLUError

    root = Path(__file__).resolve().parent
    extra = sorted(root.glob("golden/xenstore/*.xs")) + sorted(
        root.glob("vectors/xen-written/*.bin")
    )
    cases = [(n, d) for n, d, _ in TEE_CORPUS] + [(p.name, p.read_bytes()) for p in extra]
    f = tmp_path / "stream.bin"
    seen = 0
    for name, data in cases:
        try:
            verify(data)
        except XenLUError:
            continue
        f.write_bytes(data)
        for opts in (["--json"], []):
            assert run(["inspect", *opts, str(f)]) == 0
            want = capsys.readouterr().out
            _stdin(monkeypatch, data)
            assert run(["inspect", *opts, "-"]) == 0, name
            assert capsys.readouterr().out == want, name
        seen += 1
    assert seen > 50


def test_validate_of_a_pipe_is_the_validate_of_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate reads a pipe as it flows (the LU stream built record by record,
    never the input whole): the same report and exit code as the mapped file."""
    from tests.vectors.lu_vectors import GOLDEN, SEMANTIC_ONLY
    from tests.vectors.lu_vectors import INVALID as LU_INVALID

    root = Path(__file__).resolve().parent
    cases = [(v.name, v.data) for v in GOLDEN + SEMANTIC_ONLY + LU_INVALID[::5]]
    cases += [(p.name, p.read_bytes()) for p in sorted(root.glob("golden/4.*/*.bin"))]
    cases += [(p.name, p.read_bytes()) for p in sorted(root.glob("golden/xenstore/*.xs"))]
    f = tmp_path / "stream.bin"
    for name, data in cases:
        f.write_bytes(data)
        for opts in (["--json"], []):
            rc = run(["validate", *opts, str(f)])
            want = capsys.readouterr()
            _stdin(monkeypatch, data)
            assert run(["validate", *opts, "-"]) == rc, name
            got = capsys.readouterr()
            assert got.out == want.out.replace(str(f), "-"), name
            assert got.err == want.err.replace(str(f), "-"), name
