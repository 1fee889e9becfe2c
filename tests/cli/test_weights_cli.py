"""`dcectl weights status|add|fetch` as a user calls them, on files made here; `fetch` only
from a local HTTP server on 127.0.0.1 (tests/conftest.py), never from the registry's URLs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcesynth import weights as W
from dcesynth.cli.app import app
from dcesynth.weights import WeightsSpec

runner = CliRunner()
pytestmark = [pytest.mark.usefixtures("loopback_only"), pytest.mark.timeout(60)]
PAYLOAD = b"pretend pretrained weights, made by this test\n" * 200


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


# --- fetch -----------------------------------------------------------------------------------


def _entry(url: str | None, name: str = "test_net", filename: str = "testnet.pth") -> WeightsSpec:
    prefix = hashlib.sha256(PAYLOAD).hexdigest()[:8]
    return WeightsSpec(name, filename, prefix, "made by this test", "tests", url)


def _fetch(*args: str):
    return runner.invoke(app, ["weights", "fetch", *args, "--timeout", "5"])


def test_fetch_installs_then_status_ok_and_not_again(
    weights_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _entry(weights_server.serve("testnet.pth", PAYLOAD))
    monkeypatch.setitem(W.REGISTRY, spec.name, spec)
    wdir = tmp_path / "weights"
    res = _fetch("test_net", "--weights-dir", str(wdir))
    assert res.exit_code == 0, res.output
    assert f"test_net: installed {wdir / spec.filename} from {spec.url}" in res.stdout
    assert "verified" in res.stdout and (wdir / spec.filename).read_bytes() == PAYLOAD
    res = runner.invoke(app, ["weights", "status", "--weights-dir", str(wdir)])
    assert res.exit_code == 0 and "│ ok " in _row(res.output, "test_net"), res.output

    res = _fetch("test_net", "--weights-dir", str(wdir))
    assert res.exit_code == 0 and "already present and verified" in res.stdout, res.output
    assert weights_server.requests == ["/testnet.pth"]  # not downloaded again


def test_fetch_from_a_mirror(
    weights_server, closed_port_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _entry(f"{closed_port_url}/testnet.pth")  # the official host is down
    monkeypatch.setitem(W.REGISTRY, spec.name, spec)
    weights_server.serve("testnet.pth", PAYLOAD)
    wdir = tmp_path / "weights"
    res = _fetch("test_net", "--mirror", weights_server.base, "--weights-dir", str(wdir))
    assert res.exit_code == 0, res.output
    assert f"from {weights_server.base}/testnet.pth" in res.stdout
    assert W.resolve(spec, wdir).read_bytes() == PAYLOAD


@pytest.mark.parametrize("how", ["corrupt", "cut", "offline"])
def test_fetch_failure_exits_1_naming_url_and_the_way_by_hand(
    how: str, weights_server, closed_port_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if how == "offline":
        url = f"{closed_port_url}/testnet.pth"
    elif how == "corrupt":
        url = weights_server.serve("testnet.pth", b"another file")
    else:
        url = weights_server.serve("testnet.pth", PAYLOAD[:100], how="truncate")
    spec = _entry(url)
    monkeypatch.setitem(W.REGISTRY, spec.name, spec)
    wdir = tmp_path / "weights"
    res = _fetch("test_net", "--weights-dir", str(wdir))
    assert res.exit_code == 1, res.output
    err = " ".join(res.stderr.split())  # rich may wrap
    assert f"download of {url} failed" in err and "Nothing was installed" in err
    assert "dcectl weights add FILE --name test_net" in err and "Traceback" not in res.output
    why = {
        "corrupt": "corrupted in transit",
        "cut": "after 100 of 1100 bytes",
        "offline": "cannot reach the server",
    }[how]
    assert why in err
    assert not (wdir / spec.filename).exists()
    assert not wdir.exists() or not any(wdir.iterdir())  # no temporary file either


def test_fetch_radimagenet_explains_the_way_by_hand(tmp_path: Path, loopback_only) -> None:
    res = _fetch("radimagenet_inceptionv3", "--weights-dir", str(tmp_path / "w"))
    assert res.exit_code == 1, res.output
    err = " ".join(res.stderr.split())
    assert "cannot be fetched" in err and "no stable official download URL" in err
    assert "dcectl weights add FILE --name radimagenet_inceptionv3" in err
    assert loopback_only == []  # nothing was tried


def test_fetch_bad_input_exits_2(tmp_path: Path, loopback_only) -> None:
    wdir = str(tmp_path / "w")
    for args, says in [
        ([], "give one registry NAME or --all"),
        (["fid_inception", "--all"], "give one registry NAME or --all"),
        (["fid"], "unknown weights 'fid'"),
        (["fid_inception", "--mirror", "ftp://m.example.org"], "scheme http or https"),
        (["--all", "--mirror", "m.example.org"], "scheme http or https"),
    ]:
        res = _fetch(*args, "--weights-dir", wdir)
        assert res.exit_code == 2 and says in res.stderr, (args, res.output)
    assert loopback_only == [] and not Path(wdir).exists()


def test_fetch_all_reports_each_outcome_and_fails_if_one_failed(
    weights_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _entry(weights_server.serve("good.pth", PAYLOAD), "good", "good.pth")
    bad = _entry(weights_server.serve("bad.pth", b"another file"), "bad", "bad.pth")
    there = _entry(None, "there", "there.pth")
    manual = W.RADIMAGENET_RESNET50
    wdir = tmp_path / "weights"
    wdir.mkdir()
    (wdir / "there.pth").write_bytes(PAYLOAD)
    monkeypatch.setattr(W, "REGISTRY", {s.name: s for s in (good, bad, there, manual)})

    res = _fetch("--all", "--weights-dir", str(wdir))
    assert res.exit_code == 1, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"good: installed: installed {wdir / 'good.pth'}")
    assert (
        lines[1].startswith("bad: FAILED: weights 'bad': download of") and "corrupted" in lines[1]
    )
    assert lines[2].startswith("there: already present: ")
    assert lines[3].startswith(f"{manual.name}: install by hand: ") and "weights add" in lines[3]
    assert lines[4] == "1 installed; 1 already present; 1 install by hand; 1 failed"
    assert "1 download(s) failed: bad" in res.stderr
    assert sorted(p.name for p in wdir.iterdir()) == ["good.pth", "there.pth"]

    # the failing entry gone: the same run succeeds, fetching nothing twice
    monkeypatch.setattr(W, "REGISTRY", {s.name: s for s in (good, there, manual)})
    res = _fetch("--all", "--weights-dir", str(wdir))
    assert res.exit_code == 0, res.output
    assert "0 installed; 2 already present; 1 install by hand; 0 failed" in res.stdout
    assert sorted(weights_server.requests) == ["/bad.pth", "/good.pth"]
