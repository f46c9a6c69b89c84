"""``xenlu convert --dry-run`` (issue 15): the pre-flight before a live update.

Per domain what would be filled (with its rule), lost and refused; exit 0
when the conversion would be performed, 1 when refused; nothing written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.test_compat import edit_bulk, host, set_info
from xenlu.cli.app import main
from xenlu.host.compat import convert
from xenlu.lu.records import T
from xenlu.lu.stream import LUStream, encode_lu


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture
def here(tmp_path: Path) -> Path:
    """A fresh working directory: the test checks nothing appears in it."""
    old = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path  # type: ignore[misc]
    os.chdir(old)


def _write(d: Path, s: LUStream, name: str = "in.lu") -> str:
    (d / name).write_bytes(encode_lu(s))
    return str(d / name)


def _dry(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = run(["convert", "--dry-run", *argv])
    out, err = capsys.readouterr()
    assert err == "", err
    return rc, out


def test_lossless_upgrade(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = host((4, 11))
    src = _write(here, s)
    rc, text = _dry(["--to", "4.15", src], capsys)
    assert rc == 0
    lines = text.splitlines()
    assert lines[0].startswith("dry run: upgrade 4.11 -> 4.15 via 4.11->4.12")
    assert lines[0].endswith("; nothing written") and lines[-1] == "verdict: lossless"
    _, rep = convert(s, "4.15")
    assert f"{len(rep.fills)} fills (§6 rules):" in lines
    # every fill group names its field, its domains and its rule
    assert "  LU_DOMAIN.iommu_opts in dom0–2: new field: 0 (§6)" in lines
    rc, text = _dry(["--json", "--to", "4.15", src], capsys)
    obj = json.loads(text)
    assert rc == 0 and obj["verdict"] == "lossless" and obj["performed"] is True
    assert obj["fills"] == rep.to_json()["fills"] and obj["losses"] == obj["refusals"] == []
    assert obj["file"] == src and obj["dry_run"] is True
    assert sorted(p.name for p in here.iterdir()) == ["in.lu"]  # nothing written


def test_lossy_rollback_is_refused_unless_allowed(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = set_info(host((4, 13)), 0, iommu_opts=1)
    src = _write(here, s)
    rc, text = _dry(["--to", "4.11", src], capsys)
    assert rc == 1
    assert "1 loss:\n  LU_DOMAIN.iommu_opts in dom0: " in text
    assert text.splitlines()[-1].startswith("verdict: refused: 1 value in 1 domain would be lost")
    rc, text = _dry(["--allow-loss", "--to", "4.11", src], capsys)
    assert rc == 0 and "verdict: lossy: --allow-loss performs it, losing 1 value" in text
    rc, text = _dry(["--json", "--to", "4.11", src], capsys)
    obj = json.loads(text)
    _, rep = convert(s, "4.11", allow_loss=True)
    assert rc == 1 and obj["verdict"] == "lossy" and obj["performed"] is False
    assert obj["losses"] == rep.to_json()["losses"]
    assert [(x["domid"], x["field"], x["value"]) for x in obj["losses"]] == [(0, "iommu_opts", 1)]
    # the real conversion agrees: refused without --allow-loss
    assert run(["convert", "--to", "4.11", src, str(here / "out.lu")]) == 1
    capsys.readouterr()
    assert sorted(p.name for p in here.iterdir()) == ["in.lu"]


def test_refusal_per_domain_even_with_allow_loss(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def r_pw(a: np.ndarray) -> None:
        a["access"][0] = 10

    s = host((4, 20))
    s = edit_bulk(edit_bulk(s, 1, T.LU_P2M, r_pw), 2, T.LU_P2M, r_pw)
    src = _write(here, s)
    for extra in ([], ["--allow-loss"]):
        rc, text = _dry([*extra, "--json", "--to", "4.19", src], capsys)
        obj = json.loads(text)
        assert rc == 1 and obj["verdict"] == "refused" and obj["performed"] is False
        assert [(r["domid"], r["record"], r["field"]) for r in obj["refusals"]] == [
            (1, "LU_P2M", "entries[0].access"),
            (2, "LU_P2M", "entries[0].access"),
        ]
    rc, text = _dry(["--to", "4.19", src], capsys)
    assert rc == 1 and text.count("REFUSED in dom") == 2
    assert text.splitlines()[-1] == "verdict: refused, even with --allow-loss"
    assert sorted(p.name for p in here.iterdir()) == ["in.lu"]


def test_quiet_and_stdin(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    data = encode_lu(set_info(host((4, 13)), 0, iommu_opts=1))

    class Stdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr(sys, "stdin", Stdin())
    assert run(["convert", "--dry-run", "-q", "--to", "4.11", "-"]) == 1
    assert capsys.readouterr() == ("", "")
