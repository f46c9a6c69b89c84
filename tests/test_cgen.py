"""The generated C header and the C reader/writer (c/) against xenlu, both ways.

Compiles every ``include/xen_lu_<X.Y>.h`` as C11 and C++17, builds
``xenlu-c`` with warnings as errors (once plain, once with ASan/UBSan), and
checks: the committed headers are what the declarations generate; C reads
every golden stream and streams xenlu writes with xenlu's verdict and
canonical summary; C writes byte-identical streams from a description;
C refuses every structural fault of the vector corpus with xenlu's error
class and offset, and accepts every structurally valid vector.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vectors.lu_vectors import GOLDEN, INVALID, SEMANTIC_ONLY
from xenlu.core.epochs import EPOCHS, fmt_epoch
from xenlu.lu.stream import encode_lu, verify_lu
from xenlu.testing.hostgen import make_host
from xenlu.tools.cgen import c_header, canonical_summary, describe_stream, header_name

ROOT = Path(__file__).resolve().parents[1]


def _load_build() -> Any:
    # c/build.py is a script (``make c`` runs it); load it by path.
    spec = importlib.util.spec_from_file_location("xenlu_c_build", ROOT / "c" / "build.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cbuild = _load_build()
GOLDEN_FILES = sorted((ROOT / "tests" / "golden").glob("*/*.bin"))
CC = shutil.which("cc") or shutil.which("gcc")
CXX = shutil.which("g++")


def _need(tool: str | None, name: str) -> str:
    # gcc is on every machine of this project: a missing compiler is a failure.
    if tool is None:
        pytest.fail(f"{name} not found: the C tests need it")
    return tool


@pytest.fixture(scope="session")
def xenlu_c(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = _need(CC, "cc")
    try:
        return cbuild.build(tmp_path_factory.mktemp("c-O2"), cc=cc)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"xenlu-c does not compile:\n{exc.stdout}{exc.stderr}")


@pytest.fixture(scope="session")
def xenlu_c_san(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = _need(CC, "cc")
    try:
        return cbuild.build(tmp_path_factory.mktemp("c-san"), sanitize=True, cc=cc)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"xenlu-c does not compile with sanitizers:\n{exc.stdout}{exc.stderr}")


def _read(exe: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), "read", str(path)], capture_output=True, text=True)


def _inspect(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    from xenlu.cli.app import main

    capsys.readouterr()
    assert main(["inspect", "--json", str(path)]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


# --- the header ---------------------------------------------------------------------


@pytest.mark.parametrize("epoch", EPOCHS, ids=fmt_epoch)
def test_committed_header_is_fresh(epoch: tuple[int, int]) -> None:
    path = ROOT / "include" / header_name(epoch)
    assert path.read_text(encoding="utf-8") == c_header(epoch), (
        f"{path} is stale: run `make schemas`"
    )


def test_headers_compile_as_c11_and_cxx17(tmp_path: Path) -> None:
    cc, cxx = _need(CC, "cc"), _need(CXX, "g++")
    for e in EPOCHS:
        h = ROOT / "include" / header_name(e)
        src = tmp_path / "use.c"
        # Use every struct's field table and rules so nothing is only declared.
        src.write_text(
            f'#include "{h}"\n#include <string.h>\n'
            "#define F(S, f) (void)offsetof(struct S, f);\n"
            "#define R(f, c) (void)(c);\n"
            "#define U(S, UP) { struct S v; const struct S *p = &v; memset(&v, 0, sizeof(v)); "
            "UP##_FIELDS(F) UP##_RULES(R, p) (void)p; }\n"
            "int main(void) { XEN_LU_LAYOUTS(U) return 0; }\n"
        )
        for tool, std, lang in ((cc, "-std=c11", "c"), (cxx, "-std=c++17", "c++")):
            r = subprocess.run(
                [
                    tool,
                    std,
                    "-x",
                    lang,
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-pedantic",
                    "-fsyntax-only",
                    str(src),
                ],
                capture_output=True,
                text=True,
            )
            assert r.returncode == 0, f"{h.name} as {lang}:\n{r.stderr}"


# --- C reads what xenlu reads ---------------------------------------------------------


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_c_reads_golden_like_inspect(
    xenlu_c: Path, path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = _read(xenlu_c, path)
    assert r.returncode == 0, r.stderr
    assert canonical_summary(json.loads(r.stdout)) == canonical_summary(_inspect(path, capsys))


HOSTS = [((4, 11), 0), ((4, 13), 1), ((4, 15), 2), ((4, 17), 3), ((4, 21), 4)]


@pytest.fixture(scope="module")
def host_streams(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = []
    d = tmp_path_factory.mktemp("hosts")
    for version, seed in HOSTS:
        p = d / f"host-{fmt_epoch(version)}.bin"
        p.write_bytes(encode_lu(make_host(version, n_hvm=3, fragmentation=0.2, seed=seed)))
        out.append(p)
    return out


def test_c_reads_xenlu_hosts_like_inspect(
    xenlu_c: Path, host_streams: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for p in host_streams:
        r = _read(xenlu_c, p)
        assert r.returncode == 0, (p.name, r.stderr)
        assert canonical_summary(json.loads(r.stdout)) == canonical_summary(_inspect(p, capsys)), (
            p.name
        )


# --- C writes what xenlu writes -------------------------------------------------------


def _c_write(exe: Path, data: bytes, tmp: Path) -> bytes:
    desc = tmp / "stream.desc"
    out = tmp / "stream.out"
    desc.write_text(describe_stream(data), encoding="utf-8")
    r = subprocess.run([str(exe), "write", str(desc), str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


def test_c_writes_demo_host_byte_identical(xenlu_c: Path, tmp_path: Path) -> None:
    from xenlu.cli.demo import demo_host

    data = bytes(encode_lu(demo_host()))
    written = _c_write(xenlu_c, data, tmp_path)
    assert written == data
    verify_lu(written)


def test_c_writes_golden_and_hosts_byte_identical(
    xenlu_c: Path, host_streams: list[Path], tmp_path: Path
) -> None:
    for p in [*GOLDEN_FILES, *host_streams]:
        data = p.read_bytes()
        written = _c_write(xenlu_c, data, tmp_path)
        assert written == data, p
        verify_lu(written)


def test_c_write_refuses_a_bad_description(xenlu_c: Path, tmp_path: Path) -> None:
    desc = tmp_path / "bad.desc"
    desc.write_text("epoch 4.21\nrecord LU_VERSION\nstruct version xen_major=4 no_such=1\n")
    r = subprocess.run(
        [str(xenlu_c), "write", str(desc), str(tmp_path / "o")], capture_output=True, text=True
    )
    assert r.returncode == 1
    assert "line 3: unknown field: no_such" in r.stderr
    assert not (tmp_path / "o").exists()
    desc.write_text("epoch 4.21\nrecord LU_VERSION\nstruct version xen_minor=0x100000000\n")
    r = subprocess.run(
        [str(xenlu_c), "write", str(desc), str(tmp_path / "o")], capture_output=True, text=True
    )
    assert (r.returncode, r.stderr.strip()) == (
        1,
        "xenlu-c: description line 3: bad value for: xen_minor",
    )


# --- the fault corpus, under the sanitizers ------------------------------------------


def _vector_files(tmp: Path, vectors: Any) -> Iterator[tuple[Any, Path]]:
    for v in vectors:
        p = tmp / f"{v.name}.bin"
        p.write_bytes(v.data)
        yield v, p


def test_c_refuses_every_structural_fault_like_xenlu(xenlu_c_san: Path, tmp_path: Path) -> None:
    wrong = []
    for v, p in _vector_files(tmp_path, INVALID):
        r = _read(xenlu_c_san, p)
        assert r.returncode == 1, (v.name, r.returncode, r.stderr[-2000:])
        assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
        line = r.stderr.strip()
        assert line.count("\n") == 0, line
        cls = line.split()[1]
        offset = int(line.split(" at offset ")[1].split(":")[0])
        if (cls, offset) != (v.error, v.offset):
            wrong.append((v.name, (v.error, v.offset), line))
    assert wrong == []


def test_c_accepts_every_structurally_valid_vector(xenlu_c_san: Path, tmp_path: Path) -> None:
    for v, p in _vector_files(tmp_path, [*GOLDEN, *SEMANTIC_ONLY]):
        r = _read(xenlu_c_san, p)
        assert r.returncode == 0, (v.name, r.stderr)
        assert json.loads(r.stdout)["bytes"] == len(v.data)


def test_c_sanitized_reads_golden(xenlu_c_san: Path) -> None:
    for p in GOLDEN_FILES:
        r = _read(xenlu_c_san, p)
        assert r.returncode == 0, (p, r.stderr)


def test_c_agrees_with_xenlu_on_mutated_golden_streams(xenlu_c_san: Path, tmp_path: Path) -> None:
    """Seeded bit flips, byte stores and truncations of golden streams: the same
    verdict, error class and offset from C (under the sanitizers) as from xenlu."""
    import random

    from xenlu.core.errors import XenLUError

    rng = random.Random(16)
    path = tmp_path / "m.bin"
    wrong = []
    for _ in range(400):
        data = bytearray(rng.choice(GOLDEN_FILES).read_bytes())
        kind = rng.randrange(3)
        if kind == 0:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            del data[rng.randrange(len(data)) :]
        try:
            verify_lu(bytes(data))
            want = None
        except XenLUError as exc:
            want = (type(exc).__name__, exc.offset)
        path.write_bytes(data)
        r = _read(xenlu_c_san, path)
        assert r.returncode in (0, 1), r.stderr[-2000:]
        assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
        got = None
        if r.returncode == 1:
            line = r.stderr.strip()
            got = (line.split()[1], int(line.split(" at offset ")[1].split(":")[0]))
        if got != want:
            wrong.append((bytes(data).hex()[:64], want, r.stderr.strip()))
    assert wrong == []


def test_c_reads_stdin_and_reports_io_errors(xenlu_c: Path, tmp_path: Path) -> None:
    data = GOLDEN_FILES[0].read_bytes()
    r = subprocess.run([str(xenlu_c), "read", "-"], input=data, capture_output=True)
    assert r.returncode == 0 and json.loads(r.stdout)["bytes"] == len(data)
    r = subprocess.run(
        [str(xenlu_c), "read", str(tmp_path / "missing.bin")], capture_output=True, text=True
    )
    assert r.returncode == 74 and r.stderr.count("\n") == 1
