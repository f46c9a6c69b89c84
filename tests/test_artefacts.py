"""The generated artefacts (JSON schemas, C headers, .ksy) follow the declarations.

The committed files are fresh; and a declaration changed in a temporary copy
of the package (a field added to the newest LU_DOMAIN layout) changes the
header, the .ksy and the JSON schema of that epoch alike, makes the freshness
check fail on exactly those files, and passes again once they are regenerated.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xenlu.core.epochs import EPOCHS, fmt_epoch
from xenlu.tools.artefacts import stale

ROOT = Path(__file__).resolve().parents[1]


def test_committed_artefacts_are_fresh() -> None:
    assert stale(ROOT) == [], "run `make schemas`"


_PROBE = r"""
import json, sys
from pathlib import Path
import xenlu
from xenlu.tools.artefacts import generated, stale, write_all
root = Path(sys.argv[1])
assert Path(xenlu.__file__).resolve().is_relative_to(root.resolve()), xenlu.__file__
before = stale(root)
texts = generated()
write_all(root)
print(json.dumps({"stale": before, "after": stale(root), "texts": texts}))
"""


def _add_field(source: str) -> str:
    """``source`` with ``test_added: int = fld(Int64ul)`` at the end of the newest LU_DOMAIN."""
    lines = source.splitlines(keepends=True)
    names = list(re.finditer(r'@packed\(name="LU_DOMAIN@(\d+)\.(\d+)"[^)]*\)', source))
    newest = max(names, key=lambda m: (int(m.group(1)), int(m.group(2))))
    i = source[: newest.start()].count("\n") + 2  # the class line follows the decorator
    while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
        i += 1
    while not lines[i - 1].strip():  # back over the blank lines ending the class
        i -= 1
    lines.insert(i, "    test_added: int = fld(Int64ul)\n")
    return "".join(lines)


def test_a_declaration_change_reaches_every_artefact(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "xenlu", copy / "xenlu", ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("include", "ksy"):  # xenlu/schemas came with the package
        shutil.copytree(ROOT / folder, copy / folder)
    rec = copy / "xenlu" / "lu" / "records.py"
    rec.write_text(_add_field(rec.read_text(encoding="utf-8")), encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-c", _PROBE, str(copy)],
        capture_output=True,
        text=True,
        cwd=copy,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    newest = fmt_epoch(EPOCHS[-1])
    changed = {
        f"xenlu/schemas/lu-{newest}.json",
        f"include/xen_lu_{newest}.h",
        f"ksy/xen_lu_{newest.replace('.', '_')}.ksy",
    }
    # Exactly the newest epoch's header, .ksy and JSON schema went stale ...
    assert set(out["stale"]) == changed
    texts = out["texts"]
    header = texts[f"include/xen_lu_{newest}.h"]
    assert "    uint64_t test_added;" in header
    assert "XEN_LU_STATIC_ASSERT(sizeof(struct xen_lu_domain) == 96" in header
    assert "offsetof(struct xen_lu_domain, test_added) == 88" in header
    ksy = texts[f"ksy/xen_lu_{newest.replace('.', '_')}.ksy"]
    assert "      - id: test_added\n        type: u8\n" in ksy
    schema = json.loads(texts[f"xenlu/schemas/lu-{newest}.json"])
    dom = schema["records"]["LU_DOMAIN"]["layouts"]["LU_DOMAIN"]
    assert dom["size"] == 96 and dom["fields"][-1]["name"] == "test_added"
    # ... and regenerating makes the check pass again.
    assert out["after"] == []
    for rel in changed:
        assert (copy / rel).read_text(encoding="utf-8") == texts[rel]
    # The real tree is untouched.
    assert stale(ROOT) == []


def test_schema_c_header_and_ksy_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xenlu.cli.app import main
    from xenlu.tools.cgen import c_header
    from xenlu.tools.ksy import libxc_ksy, lu_ksy

    out = tmp_path / "h.h"
    assert main(["schema", "c-header", "--epoch", "4.18", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == c_header("4.17")
    capsys.readouterr()
    assert main(["schema", "ksy", "--epoch", "4.20"]) == 0
    assert capsys.readouterr().out == lu_ksy("4.20")
    assert main(["schema", "ksy", "--libxc"]) == 0
    assert capsys.readouterr().out == libxc_ksy()
    assert main(["schema", "c-header", "--dir", str(tmp_path / "inc")]) == 0
    assert main(["schema", "ksy", "--dir", str(tmp_path / "ksy")]) == 0
    for made, committed in ((tmp_path / "inc", "include"), (tmp_path / "ksy", "ksy")):
        names = sorted(p.name for p in made.iterdir())
        assert names == sorted(
            p.name for p in (ROOT / committed).glob("*.[hk]*") if p.suffix in (".h", ".ksy")
        )
        for name in names:
            assert (made / name).read_bytes() == (ROOT / committed / name).read_bytes(), name
    # An unwritable output is an I/O error (exit 74), one line on stderr, no
    # traceback, no temporary file left behind.
    capsys.readouterr()
    bad = tmp_path / "missing" / "x.h"
    assert main(["schema", "c-header", "--epoch", "4.21", "-o", str(bad)]) == 74
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "x.h" in err
    assert main(["schema", "ksy", "--libxc", "-o", str(tmp_path)]) == 74  # a directory
    assert "Is a directory" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if "xenlu-tmp" in p.name]
    # A version outside 4.11 … 4.21 is a usage error.
    with pytest.raises(SystemExit) as exc:
        main(["schema", "ksy", "--epoch", "4.9"])
    assert exc.value.code == 2
