"""`dcectl weights status|add` as a user calls them, on files made here (nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dcesynth import weights as W
from dcesynth.cli.app import app

runner = CliRunner()


def _row(output: str, name: str) -> str:
    """The table line of registry entry ``name`` (the table is printed 200 columns wide)."""
    lines = [ln for ln in output.splitlines() if ln.startswith(f"│ {name} ")]
    assert len(lines) == 1, output
    return lines[0]


def test_status_lists_every_entry_missing(tmp_path: Path) -> None:
    wdir = tmp_path / "weights"
    res = runner.invoke(app, ["weights", "status", "--weights-dir", str(wdir)])
    assert res.exit_code == 0, res.output
    for name in W.REGISTRY:
        assert "missing" in _row(res.output, name)
    assert not wdir.exists()  # looking creates nothing


def test_add_with_name_installs_then_status_ok(tmp_path: Path) -> None:
    src = tmp_path / "ResNet50.pt"
    src.write_bytes(b"a trunk made by this test" * 40)
    wdir = tmp_path / "weights"
    s = W.RADIMAGENET_RESNET50
    res = runner.invoke(
        app, ["weights", "add", str(src), "--name", s.name, "--weights-dir", str(wdir)]
    )
    assert res.exit_code == 0, res.output
    assert f"{s.name}: installed" in res.output
    assert (wdir / s.filename).read_bytes() == src.read_bytes()
    assert json.loads((wdir / W.RECORDED).read_text()) == {s.name: W.sha256_of(src)}

    res = runner.invoke(app, ["weights", "status", "--weights-dir", str(wdir)])
    assert res.exit_code == 0, res.output
    assert "ok (checksum recorded on add)" in _row(res.output, s.name)
    assert "missing" in _row(res.output, "fid_inception")


def test_add_unknown_file_exits_2_asking_for_name(tmp_path: Path) -> None:
    src = tmp_path / "mystery.pt"
    src.write_bytes(b"matches no published checksum")
    wdir = tmp_path / "weights"
    res = runner.invoke(app, ["weights", "add", str(src), "--weights-dir", str(wdir)])
    assert res.exit_code == 2, res.output
    assert "--name" in res.stderr and "matches no registry entry" in res.stderr
    assert "Traceback" not in res.output
    assert not wdir.exists()


def test_add_refuses_wrong_name_or_missing_file(tmp_path: Path) -> None:
    src = tmp_path / "other.pth"
    src.write_bytes(b"not the pytorch-fid release")
    wdir = tmp_path / "weights"
    res = runner.invoke(
        app, ["weights", "add", str(src), "--name", "fid_inception", "--weights-dir", str(wdir)]
    )
    assert res.exit_code == 2 and "is not 'fid_inception'" in res.stderr, res.output
    res = runner.invoke(
        app, ["weights", "add", str(tmp_path / "absent.pt"), "--name", "radimagenet_resnet50"]
    )
    assert res.exit_code == 2 and "no such file" in res.stderr, res.output
    assert not wdir.exists()
