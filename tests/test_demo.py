"""``make demo`` (issue 15): it ends by catching a fault of each kind and
prints the ``xenlu`` commands that repeat every step; those commands run,
on the files ``--keep DIR`` kept, with the exit codes the demo says."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from xenlu.cli.app import main
from xenlu.cli.demo import main as demo
from xenlu.lu.stream import decode_lu


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_demo_catches_faults_and_its_commands_repeat_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = tmp_path / "keep"
    assert demo(["--keep", str(keep)]) == 0
    text = capsys.readouterr().out
    assert "NOT CAUGHT" not in text
    fault = text.split("6. faults are caught:", 1)[1].split("7. ", 1)[0]
    assert "xenlu verify: " in fault and "ChecksumError" in fault and "crc32c" in fault
    assert fault.count("error OWN_DUPLICATE") == 2
    assert sorted(p.name for p in keep.iterdir()) == [
        "bit-flipped.lu",
        "host-4.11.lu",
        "host-4.15.lu",
        "memory.img",
        "owned-twice.lu",
        "report.json",
        "xenstored-state_dump",
    ]
    assert decode_lu((keep / "host-4.11.lu").read_bytes()).version == (4, 11)

    # Every command of step 8, in DIR, with the exit code its note gives.
    lines = text.split("8. the same steps", 1)[1].splitlines()
    assert f"   cd {keep}" in lines
    cmds: list[tuple[list[str], int]] = []
    want = 0
    for line in lines:
        s = line.strip()
        if s.startswith("# "):
            want = 1 if "exit 1" in s else 0
        elif s.startswith("xenlu "):
            cmds.append((shlex.split(s)[1:], want))
    assert len(cmds) == 11 and sum(w for _, w in cmds) == 2
    upgraded = (keep / "host-4.15.lu").read_bytes()
    monkeypatch.chdir(keep)
    for argv, code in cmds:
        if argv[0] == "map":
            pytest.importorskip("matplotlib")
        assert run(argv) == code, argv
    capsys.readouterr()
    assert (keep / "host.png").exists()
    # the CLI's upgrade (which rewrote host-4.15.lu) is the demo's, byte for byte
    assert (keep / "host-4.15.lu").read_bytes() == upgraded
