"""`weights fetch` against a local HTTP server on 127.0.0.1 (tests/conftest.py): a verified
download installed and then used, and every failure (corrupt, cut off, stalled, 404, offline,
Ctrl-C) leaving nothing under the real name and no temporary file. The registry's real URLs are
never contacted: every urlopen is checked to go to 127.0.0.1 (`loopback_only`)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dcesynth import weights as W
from dcesynth import weights_fetch as F
from dcesynth.weights import WeightsError, WeightsSpec

pytestmark = [pytest.mark.usefixtures("loopback_only"), pytest.mark.timeout(60)]

PAYLOAD = b"pretend pretrained weights, made by this test\n" * 200  # ~9 kB
TIMEOUT = 5.0  # every fetch here is bounded


def _entry(
    url: str | None, digits: int = 8, name: str = "test_net", filename: str = "testnet.pth"
) -> WeightsSpec:
    """An entry publishing the checksum (prefix) of PAYLOAD, as torchvision's do."""
    prefix = hashlib.sha256(PAYLOAD).hexdigest()[:digits]
    return WeightsSpec(name, filename, prefix, "made by this test", "tests", url)


def _leftovers(wdir: Path) -> list[str]:
    return (
        sorted(p.name for p in wdir.iterdir() if p.name.startswith(".tmp-"))
        if wdir.exists()
        else []
    )


@pytest.fixture
def wdir(tmp_path: Path) -> Path:
    return tmp_path / "weights"


# --- a good download --------------------------------------------------------------------------


@pytest.mark.parametrize("digits", [8, 64])
def test_good_download_is_installed_verified_and_not_fetched_again(
    weights_server, wdir: Path, digits: int
) -> None:
    spec = _entry(weights_server.serve("testnet.pth", PAYLOAD), digits=digits)
    out = F.fetch(spec, wdir, timeout=TIMEOUT, progress=False)
    dest = wdir / spec.filename
    assert (out.state, out.path, out.url, out.ok) == ("installed", dest, spec.url, True)
    assert "verified" in out.message and str(dest) in out.message
    assert dest.read_bytes() == PAYLOAD and _leftovers(wdir) == []
    assert W.resolve(spec, wdir) == dest  # what a metric does on use
    assert len(weights_server.requests) == 1

    again = F.fetch(spec, wdir, timeout=TIMEOUT, progress=False)
    assert again.state == "present" and "not downloaded" in again.message
    assert len(weights_server.requests) == 1  # not downloaded again


def test_a_registry_name_is_fetched_and_then_used(
    weights_server, wdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _entry(weights_server.serve("testnet.pth", PAYLOAD))
    monkeypatch.setitem(W.REGISTRY, spec.name, spec)
    assert F.fetch("test_net", wdir, timeout=TIMEOUT, progress=False).state == "installed"
    assert W.resolve(W.spec("test_net"), wdir).read_bytes() == PAYLOAD
    with pytest.raises(WeightsError, match="unknown weights 'nope'"):
        F.fetch("nope", wdir)


def test_a_mirror_replaces_the_official_url(
    weights_server, closed_port_url: str, wdir: Path
) -> None:
    spec = _entry(f"{closed_port_url}/official/testnet.pth")  # the official host is down
    weights_server.serve(spec.filename, PAYLOAD)
    out = F.fetch(spec, wdir, base_url=weights_server.base + "/", timeout=TIMEOUT, progress=False)
    assert out.state == "installed" and out.url == f"{weights_server.base}/{spec.filename}"
    assert weights_server.requests == [f"/{spec.filename}"]
    for bad in ("ftp://mirror.example.org/w", "mirror.example.org", "https://"):
        with pytest.raises(WeightsError, match="expected a URL with scheme http or https"):
            F.fetch(spec, wdir, base_url=bad)


# --- failures: nothing installed, no temporary file, the URL and the way by hand named ------


def _assert_failed(err: WeightsError, spec: WeightsSpec, url: str, wdir: Path) -> str:
    msg = str(err)
    assert f"weights {spec.name!r}: download of {url} failed" in msg
    assert "Nothing was installed" in msg
    assert f"`dcectl weights add FILE --name {spec.name}`" in msg
    assert not (wdir / spec.filename).exists() and _leftovers(wdir) == []
    return msg


def test_corrupted_download_is_not_installed(weights_server, wdir: Path) -> None:
    url = weights_server.serve("testnet.pth", PAYLOAD[:-1] + b"?")  # one byte differs
    spec = _entry(url)
    with pytest.raises(WeightsError) as ei:
        F.fetch(spec, wdir, timeout=TIMEOUT, progress=False)
    msg = _assert_failed(ei.value, spec, url, wdir)
    assert f"expected {spec.sha256}" in msg and "corrupted in transit" in msg


def test_server_closing_mid_file_is_not_installed(weights_server, wdir: Path) -> None:
    url = weights_server.serve("testnet.pth", PAYLOAD[:4000], how="truncate")
    spec = _entry(url)
    with pytest.raises(WeightsError) as ei:
        F.fetch(spec, wdir, timeout=TIMEOUT, progress=False)
    msg = _assert_failed(ei.value, spec, url, wdir)
    assert "the server closed the connection after 4000 of 5000 bytes" in msg


def test_unreachable_server_says_offline(closed_port_url: str, wdir: Path) -> None:
    url = f"{closed_port_url}/testnet.pth"
    spec = _entry(url)
    with pytest.raises(WeightsError) as ei:
        F.fetch(spec, wdir, timeout=TIMEOUT, progress=False)
    msg = _assert_failed(ei.value, spec, url, wdir)
    assert "cannot reach the server" in msg and "offline" in msg and "--mirror" in msg
    assert not wdir.exists()  # connecting comes first: nothing was created


def test_http_error_and_stalled_transfer(weights_server, wdir: Path) -> None:
    spec = _entry(f"{weights_server.base}/absent.pth")
    with pytest.raises(WeightsError) as ei:
        F.fetch(spec, wdir, timeout=TIMEOUT, progress=False)
    assert "the server answered HTTP 404" in _assert_failed(ei.value, spec, spec.url, wdir)

    spec = _entry(weights_server.serve("stalled.pth", PAYLOAD, how="stall"))
    with pytest.raises(WeightsError) as ei:
        F.fetch(spec, wdir, timeout=0.5, progress=False)
    assert "no data for 0.5 s" in _assert_failed(ei.value, spec, spec.url, wdir)


def test_ctrl_c_mid_download_leaves_nothing(
    weights_server, wdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _entry(weights_server.serve("testnet.pth", PAYLOAD))

    @contextmanager
    def interrupted(*args) -> Iterator:
        def advance(n: int) -> None:
            assert _leftovers(wdir)  # the bytes so far are in the temporary file
            raise KeyboardInterrupt

        yield advance

    monkeypatch.setattr(F, "_progress", interrupted)
    with pytest.raises(KeyboardInterrupt):
        F.fetch(spec, wdir, timeout=TIMEOUT)
    assert not (wdir / spec.filename).exists() and _leftovers(wdir) == []


def test_an_unusable_file_is_replaced_only_by_a_verified_one(weights_server, wdir: Path) -> None:
    url = weights_server.serve("testnet.pth", b"also wrong")
    spec = _entry(url)
    dest = wdir / spec.filename
    wdir.mkdir()
    dest.write_bytes(b"truncated earlier")
    with pytest.raises(WeightsError, match="corrupted in transit"):
        F.fetch(spec, wdir, timeout=TIMEOUT, progress=False)
    assert dest.read_bytes() == b"truncated earlier" and _leftovers(wdir) == []  # untouched

    weights_server.serve(spec.filename, PAYLOAD)
    out = F.fetch(spec, wdir, timeout=TIMEOUT, progress=False)
    assert out.state == "installed" and "replaced the unusable file" in out.message
    assert W.resolve(spec, wdir).read_bytes() == PAYLOAD


# --- entries that are never fetched ----------------------------------------------------------


def test_radimagenet_is_not_fetched_but_explained(wdir: Path, loopback_only: list[str]) -> None:
    s = W.RADIMAGENET_RESNET50
    with pytest.raises(F.NotFetchable) as ei:
        F.fetch(s.name, wdir)
    msg = str(ei.value)
    assert "no stable official download URL" in msg and "publishes no checksum" in msg
    assert s.source in msg and f"dcectl weights add FILE --name {s.name}" in msg
    assert isinstance(ei.value, WeightsError) and loopback_only == []

    # once added by hand it is present, and fetch says so
    src = wdir.parent / "ResNet50.pt"
    src.write_bytes(b"a trunk added by hand")
    W.add(src, s.name, wdir)
    assert F.fetch(s.name, wdir).state == "present"


def test_a_url_without_a_published_checksum_is_refused(weights_server, wdir: Path) -> None:
    spec = WeightsSpec(
        "test_net",
        "net.pt",
        None,
        "made by this test",
        "tests",
        weights_server.serve("net.pt", PAYLOAD),
    )
    with pytest.raises(F.NotFetchable, match="publishes no checksum") as ei:
        F.fetch(spec, wdir, timeout=TIMEOUT)
    assert "dcectl weights add FILE --name test_net" in str(ei.value)
    assert "no stable official download URL" not in str(ei.value)
    assert weights_server.requests == [] and not wdir.exists()


# --- --all -----------------------------------------------------------------------------------


def test_fetch_all_reports_every_outcome(
    weights_server, closed_port_url: str, wdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _entry(weights_server.serve("good.pth", PAYLOAD), name="good", filename="good.pth")
    bad = _entry(weights_server.serve("bad.pth", b"x" * 50), name="bad", filename="bad.pth")
    cut = _entry(
        weights_server.serve("cut.pth", PAYLOAD[:10], how="truncate"),
        name="cut",
        filename="cut.pth",
    )
    off = _entry(f"{closed_port_url}/off.pth", name="off", filename="off.pth")
    there = _entry(None, name="there", filename="there.pth")
    wdir.mkdir()
    (wdir / "there.pth").write_bytes(PAYLOAD)
    manual = W.RADIMAGENET_INCEPTIONV3
    registry = {s.name: s for s in (good, bad, cut, off, there, manual)}
    monkeypatch.setattr(W, "REGISTRY", registry)

    outcomes = F.fetch_all(wdir, timeout=TIMEOUT, progress=False)
    states = {o.name: o.state for o in outcomes}
    assert list(states) == list(registry)  # one outcome each, in registry order
    assert states == {
        "good": "installed",
        "bad": "failed",
        "cut": "failed",
        "off": "failed",
        "there": "present",
        manual.name: "manual",
    }
    by = {o.name: o for o in outcomes}
    assert "corrupted in transit" in by["bad"].message and by["bad"].url == bad.url
    assert "after 10 of 1010 bytes" in by["cut"].message
    assert "cannot reach the server" in by["off"].message
    assert "weights add FILE" in by[manual.name].message
    assert sorted(p.name for p in wdir.iterdir()) == ["good.pth", "there.pth"]
    assert sorted(weights_server.requests) == ["/bad.pth", "/cut.pth", "/good.pth"]

    with pytest.raises(WeightsError, match="expected a URL"):  # bad input: one error up front
        F.fetch_all(wdir, base_url="ftp://x")


# --- progress --------------------------------------------------------------------------------


def test_progress_log_lines_without_a_terminal(
    weights_server, wdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _entry(weights_server.serve("testnet.pth", PAYLOAD))
    monkeypatch.setattr(F, "CHUNK", 1024)
    monkeypatch.setattr(F, "LOG_EVERY_S", 0.0)  # a line per chunk, as a long download would
    with caplog.at_level(logging.INFO, logger=F.__name__):
        F.fetch(spec, wdir, timeout=TIMEOUT, progress=False)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == f"test_net: downloading {spec.url} (0.0 MB)"
    shares = [ln for ln in lines if ln.endswith("%)")]
    assert len(shares) >= 5 and shares[-1].endswith("(100%)")
    assert lines[-1] == shares[-1]  # the outcome is returned (and printed by the CLI), not logged


def test_progress_bar_in_a_terminal(
    weights_server, wdir: Path, capsys: pytest.CaptureFixture
) -> None:
    spec = _entry(weights_server.serve("testnet.pth", PAYLOAD))
    assert F.fetch(spec, wdir, timeout=TIMEOUT, progress=True).state == "installed"
    err = capsys.readouterr().err
    assert "test_net" in err and "kB" in err  # rich's bar with its byte counts, on stderr
