"""Progress bars (issue 15): on stderr only when it is a terminal and the
input is large; nothing extra otherwise, nor with ``-q``; tqdm is not even
imported for a small input. The terminal is a real pseudo-terminal."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

import xenlu.cli.progress as cp
from xenlu.lu.handover import write_handover_file
from xenlu.lu.stream import encode_lu
from xenlu.testing.hostgen import make_host

XENLU = [sys.executable, "-m", "xenlu"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A small stream, and a (sparse) memory image larger than MIN_BYTES holding it."""
    d = tmp_path_factory.mktemp("progress")
    host = make_host((4, 13), n_hvm=1, mem_mib=2, dom0_mem_mib=2)
    (d / "small.lu").write_bytes(encode_lu(host))
    write_handover_file(host, str(d / "big.img"))
    assert (d / "big.img").stat().st_size > cp.MIN_BYTES
    size = host.host.lu_bootmem_size >> 20
    return d / "small.lu", d / "big.img", f"{size}M@{host.host.lu_bootmem_start:#x}"


def _on_pty(argv: list[str]) -> tuple[int, bytes, bytes]:
    """Run xenlu with stderr on a pseudo-terminal; (exit code, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(
            [*XENLU, *argv], stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL
        )
        os.close(slave)
        got = b""
        while True:
            r, _, _ = select.select([master], [], [], 60)
            if not r:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            got += chunk
        assert p.stdout is not None
        out = p.stdout.read()
        return p.wait(timeout=60), out, got
    finally:
        os.close(master)


@pytest.mark.parametrize("command", ["verify", "validate", "plan", "map"])
def test_bar_on_a_terminal_for_a_large_input(
    command: str, files: tuple[Path, Path, str], tmp_path: Path
) -> None:
    if command == "map":
        pytest.importorskip("matplotlib")
    _, big, lu = files
    extra = ["-o", str(tmp_path / "m.png")] if command == "map" else []
    rc, out, term = _on_pty([command, "--liveupdate", lu, str(big), *extra])
    assert rc == 0, term
    assert f"xenlu {command}: ".encode() in term  # the bar, with its phase
    assert b"Traceback" not in term and b"xenlu" not in out  # results stay on stdout
    rc, out, term = _on_pty([command, "-q", "--liveupdate", lu, str(big), *extra])
    assert rc == 0 and term == b""


def test_bar_while_converting(files: tuple[Path, Path, str], tmp_path: Path) -> None:
    big = files[1]
    # convert reads LU streams only: a memory image is refused after the bar showed
    rc, _, term = _on_pty(["convert", "--to", "4.15", str(big), str(tmp_path / "o.lu")])
    assert rc == 1 and b"xenlu convert: decode" in term
    assert term.rstrip().splitlines()[-1].startswith(b"xenlu convert: ")  # the one error line
    assert not (tmp_path / "o.lu").exists()


def test_nothing_extra_when_not_a_terminal_or_small(files: tuple[Path, Path, str]) -> None:
    small, big, lu = files
    for argv in (
        ["verify", "--liveupdate", lu, str(big)],
        ["validate", "--liveupdate", lu, str(big)],
    ):
        p = subprocess.run([*XENLU, *argv], capture_output=True, check=False, timeout=120)
        assert p.returncode == 0 and p.stderr == b""
    rc, _, term = _on_pty(["verify", str(small)])  # a terminal, but a small input
    assert rc == 0 and term == b""


def test_small_input_does_not_import_tqdm(files: tuple[Path, Path, str]) -> None:
    small = files[0]
    code = (
        "import sys; from xenlu.cli.app import main; "
        f"rc = main(['verify', '-q', {str(small)!r}]); "
        "print(rc, 'tqdm' in sys.modules)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=120)
    assert p.stdout.split() == [b"0", b"False"]


def test_counts_and_phases(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tqdm")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(cp, "_wanted", lambda size, quiet, stream: True)
    sink = io.BytesIO()
    with cp.progress("convert", 1 << 30) as bar:
        assert bar.shown
        bar.phase("aggregate", total=4)
        for i in range(1, 5):
            bar.update(i, 4)
        assert (bar._bar.n, bar._bar.total) == (4, 4)
        bar.phase("write", total=6)
        assert bar._bar.n == 0
        w = cp.Counting(sink, bar)
        w.write(b"abc")
        w.write(memoryview(b"def"))
        w.flush()
        assert (bar._bar.n, bar._bar.total) == (6, 6)
        bar.phase("render")  # a phase without counts: its name and a clock
    assert sink.getvalue() == b"abcdef"
    text = err.getvalue()
    for phase in ("aggregate", "write", "render"):
        assert f"xenlu convert: {phase}" in text
    assert "%|" in text and text.endswith("\r")  # a bar was drawn, then erased


def test_no_bar_is_free() -> None:
    with cp.progress("verify", cp.MIN_BYTES, quiet=True) as bar:
        bar.phase("x", total=3)
        bar.update(1, 3)
        bar.advance(2)
    assert not bar.shown


def test_bar_for_dump_and_diff(files: tuple[Path, Path, str], tmp_path: Path) -> None:
    _, big, lu = files
    out = tmp_path / "host.json"
    rc, _, term = _on_pty(["dump", "--liveupdate", lu, str(big), "-o", str(out)])
    assert rc == 0 and b"xenlu dump: " in term and b"Traceback" not in term
    assert out.stat().st_size > 0
    rc, stdout, term = _on_pty(["diff", "--liveupdate", lu, str(big), str(big)])
    assert rc == 0 and b"xenlu diff: " in term and stdout.strip() == b"equal"
    rc, _, term = _on_pty(["diff", "-q", "--liveupdate", lu, str(big), str(big)])
    assert rc == 0 and term == b""
