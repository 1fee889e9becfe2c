"""The weights registry on files made here: lookup, checksum verification, `add` (published
checksum or trust on first use), `status`. Nothing is downloaded; no file pretends to be a
pretrained release except through a test registry entry whose checksum is that of the file."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from dcesynth import weights as W
from dcesynth.weights import WeightsError, WeightsSpec


def _write(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def _no_tmp_files(wdir: Path) -> bool:
    return not any(p.name.startswith(".tmp-") for p in wdir.iterdir())


@pytest.fixture
def published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, WeightsSpec]:
    """A downloaded file and a registry entry publishing its checksum (torchvision-style)."""
    src = _write(tmp_path / "downloads" / "net.pth", b"weights made by this test\n" * 100)
    prefix = W.sha256_of(src)[:8]
    spec = WeightsSpec("test_net", f"testnet-{prefix}.pth", prefix, "made by this test", "tests")
    monkeypatch.setitem(W.REGISTRY, spec.name, spec)
    return src, spec


# --- the registry ----------------------------------------------------------------------------


def test_registry_entries_are_complete_and_consistent() -> None:
    specs = list(W.REGISTRY.values())
    assert len(specs) >= 7
    assert len({s.filename for s in specs}) == len(specs)
    for name, s in W.REGISTRY.items():
        assert s.name == name and W.spec(name) is s
        assert s.source.strip() and s.used_by.strip()
        if s.sha256 is None:  # trust on first use: the source says how to install it
            assert f"--name {s.name}" in s.source
            assert s.url is None  # no stable official URL: `weights fetch` must not guess one
            continue
        assert re.fullmatch(r"[0-9a-f]{8}|[0-9a-f]{64}", s.sha256), s
        m = re.search(r"-([0-9a-f]{8,})\.pth$", s.filename)  # torchvision / torch-hub naming
        assert m is not None and s.sha256.startswith(m.group(1)), s
        assert s.filename in s.source  # the file a user fetches is the one looked for
        # `weights fetch` downloads exactly the file named, over https, from the URL shown
        assert s.url is not None and s.url.startswith("https://"), s
        assert s.url.rsplit("/", 1)[1] == s.filename, s
        assert s.url in s.source, s  # what `weights status` shows is what is fetched


def test_registry_names_the_known_networks() -> None:
    assert {
        "fid_inception",
        "radimagenet_inceptionv3",
        "radimagenet_resnet50",
        "lpips_alexnet",
        "lpips_vgg16",
        "lpips_squeezenet",
        "vgg19_imagenet",
    } <= set(W.REGISTRY)
    assert W.REGISTRY["radimagenet_resnet50"].sha256 is None  # the release publishes none
    tv = "https://download.pytorch.org/models/"
    assert {n: s.url for n, s in W.REGISTRY.items()} == {
        "fid_inception": "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        "radimagenet_inceptionv3": None,
        "radimagenet_resnet50": None,
        "lpips_alexnet": tv + "alexnet-owt-7be5be79.pth",
        "lpips_vgg16": tv + "vgg16-397923af.pth",
        "lpips_squeezenet": tv + "squeezenet1_1-b8a52dc0.pth",
        "vgg19_imagenet": tv + "vgg19-dcbb9e9d.pth",
    }
    with pytest.raises(WeightsError, match="unknown weights 'nope'"):
        W.spec("nope")


def test_weights_error_is_a_value_error() -> None:
    # the CLI turns ValueError into a message and exit code 2
    assert issubclass(WeightsError, ValueError)


# --- resolve ---------------------------------------------------------------------------------


def test_resolve_missing_names_directory_and_source(tmp_path: Path) -> None:
    spec = WeightsSpec("t", "t.pth", "0" * 64, "https://example.org/t.pth", "tests")
    wdir = tmp_path / "weights"
    with pytest.raises(WeightsError) as ei:
        W.resolve(spec, wdir)
    msg = str(ei.value)
    assert f"put t.pth in {wdir}" in msg and "https://example.org/t.pth" in msg
    assert "weights fetch" not in msg  # no url: nothing to fetch
    fetchable = WeightsSpec("t", "t.pth", "0" * 64, "src", "tests", "https://example.org/t.pth")
    with pytest.raises(
        WeightsError, match=re.escape("run `dcectl weights fetch t` or put t.pth in")
    ):
        W.resolve(fetchable, wdir)


@pytest.mark.parametrize("digits", [64, 8])
def test_resolve_verifies_full_digest_or_prefix(tmp_path: Path, digits: int) -> None:
    path = _write(tmp_path / "small.bin", bytes(range(256)) * 4)
    digest = W.sha256_of(path)
    good = WeightsSpec("t", path.name, digest[:digits], "made by this test", "tests")
    assert W.resolve(good, tmp_path) == path
    flipped = format(int(digest[0], 16) ^ 1, "x") + digest[1:digits]
    bad = WeightsSpec("t", path.name, flipped, "made by this test", "tests")
    with pytest.raises(WeightsError, match="corrupt or another release"):
        W.resolve(bad, tmp_path)


def test_resolve_detects_a_changed_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "small.bin", b"abc" * 1000)
    spec = WeightsSpec("t", path.name, W.sha256_of(path), "made by this test", "tests")
    assert W.resolve(spec, tmp_path) == path
    path.write_bytes(b"abc" * 999 + b"abd")  # one byte changed
    with pytest.raises(WeightsError, match="corrupt or another release"):
        W.resolve(spec, tmp_path)


def test_resolve_unrecorded_file_without_published_checksum(tmp_path: Path) -> None:
    s = W.RADIMAGENET_RESNET50
    _write(tmp_path / s.filename, b"copied by hand, never added")
    assert W.expected_sha256(s, tmp_path) is None
    with pytest.raises(WeightsError, match="no checksum on record") as ei:
        W.resolve(s, tmp_path)
    assert f"dcectl weights add {tmp_path / s.filename} --name {s.name}" in str(ei.value)


# --- add -------------------------------------------------------------------------------------


def test_add_recognises_a_file_by_its_published_checksum(
    tmp_path: Path, published: tuple[Path, WeightsSpec]
) -> None:
    src, spec = published
    wdir = tmp_path / "weights"
    name, dest = W.add(src, None, wdir)
    assert (name, dest) == (spec.name, wdir / spec.filename)
    assert dest.read_bytes() == src.read_bytes() and src.is_file()  # copied, not moved
    assert W.resolve(spec, wdir) == dest
    assert not (wdir / W.RECORDED).exists()  # a published checksum needs no record
    assert _no_tmp_files(wdir)
    assert W.add(src, spec.name, wdir) == (spec.name, dest)  # naming it explicitly also works


def test_add_unknown_file_without_name_lists_names(tmp_path: Path) -> None:
    src = _write(tmp_path / "mystery.pt", b"not any published release")
    wdir = tmp_path / "weights"
    with pytest.raises(WeightsError, match="matches no registry entry") as ei:
        W.add(src, None, wdir)
    msg = str(ei.value)
    assert "--name" in msg and all(n in msg for n in W.REGISTRY)
    assert not wdir.exists()  # nothing installed


def test_add_refuses_a_file_under_the_wrong_name(tmp_path: Path) -> None:
    src = _write(tmp_path / "other.pth", b"another network entirely")
    wdir = tmp_path / "weights"
    with pytest.raises(WeightsError, match="is not 'fid_inception'"):
        W.add(src, "fid_inception", wdir)
    with pytest.raises(WeightsError, match="unknown weights 'fid'"):
        W.add(src, "fid", wdir)
    with pytest.raises(WeightsError, match="no such file"):
        W.add(tmp_path / "absent.pth", "radimagenet_resnet50", wdir)
    assert not wdir.exists()


def test_add_records_checksum_when_none_is_published(tmp_path: Path) -> None:
    s = W.RADIMAGENET_RESNET50
    src = _write(tmp_path / "downloads" / "ResNet50.pt", b"a random trunk, made here" * 50)
    digest = W.sha256_of(src)
    wdir = tmp_path / "weights"
    assert W.add(src, s.name, wdir) == (s.name, wdir / s.filename)
    assert json.loads((wdir / W.RECORDED).read_text()) == {s.name: digest}
    assert W.expected_sha256(s, wdir) == digest
    assert W.resolve(s, wdir) == wdir / s.filename
    assert _no_tmp_files(wdir)

    # a second entry keeps the first record
    s2 = W.RADIMAGENET_INCEPTIONV3
    src2 = _write(tmp_path / "downloads" / "InceptionV3.pt", b"another trunk")
    W.add(src2, s2.name, wdir)
    assert json.loads((wdir / W.RECORDED).read_text()) == {
        s.name: digest,
        s2.name: W.sha256_of(src2),
    }
    assert _no_tmp_files(wdir)

    # the installed file changes afterwards: caught against the record
    (wdir / s.filename).write_bytes(b"truncated")
    with pytest.raises(WeightsError, match="corrupt or another release"):
        W.resolve(s, wdir)
    assert W.resolve(s2, wdir) == wdir / s2.filename


def test_add_never_leaves_a_partial_file_under_the_real_name(
    tmp_path: Path, published: tuple[Path, WeightsSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, spec = published
    wdir = tmp_path / "weights"
    dest = W.add(src, None, wdir)[1]
    good = dest.read_bytes()
    real_copyfile = shutil.copyfile

    def copy_half_then_fail(a, b):
        Path(b).write_bytes(Path(a).read_bytes()[:10])
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copyfile", copy_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        W.add(src, None, wdir)
    assert dest.read_bytes() == good  # the earlier install is untouched
    assert W.resolve(spec, wdir) == dest
    monkeypatch.setattr(shutil, "copyfile", real_copyfile)
    W.add(src, None, wdir)  # a retry succeeds and cleans up the temporary file
    assert _no_tmp_files(wdir)


# --- status ----------------------------------------------------------------------------------


def test_status_empty_directory_all_missing(tmp_path: Path) -> None:
    wdir = tmp_path / "weights"
    rows = W.status(wdir)
    assert [r["name"] for r in rows] == list(W.REGISTRY)
    for r in rows:
        s = W.REGISTRY[r["name"]]
        assert r["state"] == "missing"
        assert r["file"] == str(wdir / s.filename)
        assert (r["source"], r["used_by"]) == (s.source, s.used_by)


def test_status_states(tmp_path: Path, published: tuple[Path, WeightsSpec]) -> None:
    src, spec = published
    wdir = tmp_path / "weights"
    W.add(src, None, wdir)
    W.add(_write(tmp_path / "r50.pt", b"trunk"), "radimagenet_resnet50", wdir)
    _write(wdir / W.FID_INCEPTION.filename, b"not the pytorch-fid release")
    _write(wdir / W.RADIMAGENET_INCEPTIONV3.filename, b"copied by hand")
    states = {r["name"]: r["state"] for r in W.status(wdir)}
    assert set(states) == set(W.REGISTRY)
    assert states[spec.name] == "ok"
    assert states["radimagenet_resnet50"] == "ok (checksum recorded on add)"
    fid = states["fid_inception"]
    assert "corrupt or another release" in fid and not fid.startswith("weights")
    assert str(wdir / W.FID_INCEPTION.filename) in fid
    assert "no checksum on record" in states["radimagenet_inceptionv3"]
    for name in ("lpips_alexnet", "lpips_vgg16", "lpips_squeezenet", "vgg19_imagenet"):
        assert states[name] == "missing"


def test_unreadable_checksum_record_is_a_weights_error(tmp_path: Path) -> None:
    (tmp_path / W.RECORDED).write_text("{not json")
    (tmp_path / W.RADIMAGENET_RESNET50.filename).write_bytes(b"x")
    with pytest.raises(W.WeightsError, match="unreadable"):
        W.resolve(W.RADIMAGENET_RESNET50, tmp_path)
