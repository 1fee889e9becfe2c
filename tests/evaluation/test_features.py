"""The metric suite's networks on random weights and files made here (nothing is downloaded, and
no result here stands for a pretrained network's): building, loading a local state dict in every
key layout the releases use, the registry path, preprocessing, batching, TorchScript, LPIPS.

InceptionV3 forwards at 299² cost seconds on a CPU: each network is built once per module and
fed two 64² images.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models

from dcesynth import weights as W
from dcesynth.evaluation import features as Fe
from dcesynth.weights import WeightsError

IMGS = np.random.default_rng(0).integers(0, 256, (2, 64, 64), dtype=np.uint8)


@pytest.fixture(scope="module", autouse=True)
def no_network(tmp_path_factory: pytest.TempPathFactory):
    """Any download attempt fails loudly, and no torch-hub cache can stand in for one (module
    scope: in force before the module's networks are built)."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        yield


def _same_state(a: nn.Module | dict, b: nn.Module | dict) -> None:
    sa = a if isinstance(a, dict) else a.state_dict()
    sb = b if isinstance(b, dict) else b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# --- FID_Img: pytorch-fid's InceptionV3 ------------------------------------------------------


@pytest.fixture(scope="module")
def fid_state() -> dict:
    """A random torchvision Inception3 (1008 classes) stands in for the pytorch-fid file."""
    torch.manual_seed(0)
    ref = models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    return ref.state_dict()


@pytest.fixture(scope="module")
def fid_dir(tmp_path_factory: pytest.TempPathFactory, fid_state: dict) -> Path:
    wdir = tmp_path_factory.mktemp("fid_weights")
    torch.save(fid_state, wdir / W.FID_INCEPTION.filename)
    return wdir


@pytest.fixture(scope="module")
def fid_net(fid_state: dict) -> nn.Module:
    return Fe.fid_inception(fid_state)


@pytest.fixture(scope="module")
def fid_feats(fid_net: nn.Module) -> np.ndarray:
    return Fe.features(Fe.FeatureExtractor("fid_inception", fid_net, 299), IMGS)


def test_fid_inception_random_build(fid_state: dict) -> None:
    torch.manual_seed(1)
    net = Fe.fid_inception(None)
    assert not net.training
    f = Fe.FeatureExtractor("fid_inception", net, 299)(torch.as_tensor(IMGS))
    assert f.shape == (2, 2048) and f.dtype == torch.float64
    assert torch.isfinite(f).all() and (f >= 0).all()  # pool3 of ReLU outputs
    # random weights, not the file's
    assert not torch.equal(net.blocks[0][0].conv.weight, fid_state["Conv2d_1a_3x3.conv.weight"])


def test_fid_inception_loads_the_state_dict(
    fid_net: nn.Module, fid_state: dict, fid_feats: np.ndarray
) -> None:
    blocks = fid_net.blocks  # pytorch-fid's blocks hold torchvision's modules
    for module, key in [
        (blocks[0][0].conv, "Conv2d_1a_3x3.conv"),
        (blocks[1][1].bn, "Conv2d_4a_3x3.bn"),
        (blocks[2][0].branch_pool.conv, "Mixed_5b.branch_pool.conv"),
        (blocks[3][2].branch3x3dbl_3b.conv, "Mixed_7c.branch3x3dbl_3b.conv"),
    ]:
        for name, value in module.state_dict().items():
            assert torch.equal(value, fid_state[f"{key}.{name}"]), (key, name)
    n_loaded = sum(v.numel() for v in fid_net.state_dict().values())
    n_file = sum(v.numel() for k, v in fid_state.items() if not k.startswith("fc."))
    assert n_loaded == n_file
    assert fid_feats.shape == (2, 2048) and np.isfinite(fid_feats).all()
    assert (fid_feats >= 0).all() and (fid_feats > 0).any()


def test_fid_extractor_from_registry(
    fid_dir: Path,
    fid_state: dict,
    fid_net: nn.Module,
    fid_feats: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = fid_dir / W.FID_INCEPTION.filename
    # the random file is not the pytorch-fid release, and the published checksum says so
    with pytest.raises(WeightsError, match="corrupt or another release"):
        Fe.extractor("fid_inception", fid_dir)
    spec = replace(W.FID_INCEPTION, sha256=W.sha256_of(path)[:8])
    monkeypatch.setattr(W, "FID_INCEPTION", spec)
    monkeypatch.setitem(W.REGISTRY, spec.name, spec)
    ext = Fe.extractor("fid_inception", fid_dir)
    assert (ext.name, ext.size, ext.normalise) == ("fid_inception", 299, None)
    _same_state(ext.net, fid_net)  # a second build from the saved file
    np.testing.assert_array_equal(Fe.features(ext, IMGS), fid_feats)


def test_fid_extractor_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as ei:
        Fe.extractor("fid_inception", tmp_path / "empty")
    msg = str(ei.value)
    assert W.FID_INCEPTION.filename in msg and str(tmp_path / "empty") in msg
    assert "pytorch-fid" in msg  # where to get it


def test_fid_features_match_pytorch_fid_pipeline(
    fid_state: dict, fid_feats: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FID_Img must equal pytorch-fid's own InceptionV3 on the same weights (its defaults:
    bilinear resize to 299² and [0, 1] → [−1, 1] inside the network), as the module promises."""
    import pytorch_fid.inception as pfi

    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: fid_state)
    ref = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    x = torch.as_tensor(IMGS).float()[:, None].expand(-1, 3, -1, -1) / 255.0
    with torch.no_grad():
        expected = ref(x)[0].flatten(1).double().numpy()
    assert np.abs(expected).max() > 0
    # random weights give tiny activations: compare relative to their scale
    np.testing.assert_allclose(fid_feats, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


# --- FID_Rad: RadImageNet trunks -------------------------------------------------------------


def _torchvision(arch: str) -> nn.Module:
    torch.manual_seed(2)
    if arch == "resnet50":
        return models.resnet50(weights=None)
    return models.inception_v3(weights=None, init_weights=False)  # with AuxLogits, as saved


def _layouts(tv: nn.Module) -> dict[str, dict]:
    """The key layouts a RadImageNet file may come in, all holding ``tv``'s weights."""
    sd = tv.state_dict()
    names = [n for n, _ in tv.named_children() if n not in ("fc", "AuxLogits")]
    index = {n: i for i, n in enumerate(names)}
    trunk_only = {k: v for k, v in sd.items() if k.split(".")[0] in index}
    release = {}
    for k, v in trunk_only.items():
        head, _, rest = k.partition(".")
        release[f"backbone.{index[head]}.{rest}"] = v
    return {
        "torchvision": trunk_only,
        "torchvision_with_head": sd,
        "release": release,
        "module_release": {f"module.{k}": v for k, v in release.items()},
        "module_torchvision": {f"module.{k}": v for k, v in trunk_only.items()},
    }


@pytest.fixture(scope="module", params=["resnet50", "inceptionv3"])
def rad(request) -> tuple[str, nn.Module]:
    return request.param, _torchvision(request.param)


def test_radimagenet_key_layouts_load_identical_weights(rad: tuple[str, nn.Module]) -> None:
    arch, tv = rad
    layouts = _layouts(tv)
    trunks = {k: Fe.radimagenet(arch, sd) for k, sd in layouts.items()}
    ref = trunks["release"]
    assert not ref.training
    for trunk in trunks.values():
        _same_state(trunk, ref)
    # and they are tv's weights, child by child
    names = [n for n, _ in tv.named_children() if n not in ("fc", "AuxLogits")]
    for i, name in enumerate(names):
        _same_state(ref[i], getattr(tv, name))
    side = 64 if arch == "resnet50" else 75  # InceptionV3's smallest input
    ext = Fe.FeatureExtractor(arch, ref, side, (Fe.IMAGENET_MEAN, Fe.IMAGENET_STD))
    f = ext(torch.as_tensor(IMGS))
    assert f.shape == (2, 2048) and torch.isfinite(f).all()


def test_radimagenet_refuses_other_architectures(rad: tuple[str, nn.Module]) -> None:
    arch, tv = rad
    other = "inceptionv3" if arch == "resnet50" else "resnet50"
    with pytest.raises(WeightsError, match="not a RadImageNet trunk"):
        Fe.radimagenet(other, tv.state_dict(), "x.pt")
    incomplete = dict(_layouts(tv)["release"])
    incomplete.pop(next(iter(incomplete)))
    with pytest.raises(WeightsError, match="missing"):
        Fe.radimagenet(arch, incomplete)


def test_radimagenet_unknown_architecture() -> None:
    with pytest.raises(ValueError, match="resnet50, inceptionv3"):
        Fe.radimagenet("vgg16", None)


def test_radimagenet_from_registry_trust_on_first_use(tmp_path: Path) -> None:
    """The whole user path: `weights add` records the checksum, the extractor loads the file."""
    tv = _torchvision("resnet50")
    src = tmp_path / "downloads" / "ResNet50.pt"
    src.parent.mkdir()
    torch.save({"state_dict": _layouts(tv)["release"]}, src)  # a checkpoint-style wrapper
    wdir = tmp_path / "weights"
    with pytest.raises(WeightsError, match=W.RADIMAGENET_RESNET50.filename):
        Fe.extractor("radimagenet_resnet50", wdir)
    W.add(src, "radimagenet_resnet50", wdir)
    ext = Fe.extractor("radimagenet_resnet50", wdir)
    assert (ext.name, ext.size) == ("radimagenet_resnet50", 224)
    assert ext.normalise == (Fe.IMAGENET_MEAN, Fe.IMAGENET_STD)
    _same_state(ext.net[0], tv.conv1)
    _same_state(ext.net[7], tv.layer4)
    assert Fe.features(ext, IMGS).shape == (2, 2048)
    with pytest.raises(WeightsError, match=W.RADIMAGENET_INCEPTIONV3.filename):
        Fe.extractor("radimagenet_inceptionv3", wdir)  # the other one was never added


def test_required_weights() -> None:
    assert Fe.required_weights("fid_inception") is W.FID_INCEPTION
    assert Fe.required_weights("radimagenet_resnet50") is W.RADIMAGENET_RESNET50
    assert Fe.required_weights("torchscript:/x.pt") is None


# --- TorchScript and names -------------------------------------------------------------------


def _tiny_net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()).eval()  # (N, 8, h, w)


@pytest.fixture
def scripted(tmp_path: Path) -> tuple[Path, nn.Module]:
    net = _tiny_net()
    path = tmp_path / "tiny.pt"
    torch.jit.script(net).save(str(path))
    return path, net


def test_torchscript_extractor(scripted: tuple[Path, nn.Module]) -> None:
    path, net = scripted
    ext = Fe.torchscript_extractor(path, sha256=W.sha256_of(path)[:12].upper(), size=None)
    f = Fe.features(ext, IMGS)
    assert f.shape == (2, 8) and f.dtype == np.float64
    x = torch.as_tensor(IMGS).float()[:, None].expand(-1, 3, -1, -1) / 255.0
    with torch.no_grad():
        expected = net(x).mean(dim=(2, 3)).double().numpy()
    np.testing.assert_allclose(f, expected, rtol=1e-6, atol=1e-7)


def test_torchscript_extractor_by_name(scripted: tuple[Path, nn.Module]) -> None:
    path, net = scripted
    ext = Fe.extractor(f"torchscript:{path}")
    assert (ext.name, ext.size) == (f"torchscript:{path}", 299)
    f = ext(torch.as_tensor(IMGS))
    assert f.shape == (2, 8)
    x = torch.as_tensor(IMGS).float()[:, None].expand(-1, 3, -1, -1) / 255.0
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = net(x).mean(dim=(2, 3)).double()
    torch.testing.assert_close(f, expected, rtol=1e-5, atol=1e-6)


def test_torchscript_extractor_checks_file(
    scripted: tuple[Path, nn.Module], tmp_path: Path
) -> None:
    path, _ = scripted
    with pytest.raises(WeightsError, match="sha256 does not start with 00000000"):
        Fe.torchscript_extractor(path, sha256="00000000")
    with pytest.raises(WeightsError, match="not found"):
        Fe.torchscript_extractor(tmp_path / "absent.pt")
    with pytest.raises(WeightsError, match="not found"):
        Fe.extractor(f"torchscript:{tmp_path / 'absent.pt'}")


def test_unknown_extractor_lists_valid_names() -> None:
    with pytest.raises(WeightsError) as ei:
        Fe.extractor("inception")
    msg = str(ei.value)
    assert all(n in msg for n in Fe.EXTRACTORS) and "torchscript:PATH" in msg


# --- FeatureExtractor: preprocessing and batching --------------------------------------------


class Probe(nn.Module):
    """Records what the network is given; features: the per-channel mean."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.clone()
        return x.mean(dim=(2, 3))


def test_preprocessing_grey_to_three_channels_on_unit_range() -> None:
    probe = Probe()
    imgs = np.zeros((2, 5, 7), np.uint8)
    imgs[0] = 255
    imgs[1, 2, 3] = 51
    f = Fe.FeatureExtractor("probe", probe, None)(torch.as_tensor(imgs))
    seen = probe.seen
    assert seen.shape == (2, 3, 5, 7) and seen.dtype == torch.float32
    assert torch.equal(seen[:, 0], seen[:, 1]) and torch.equal(seen[:, 0], seen[:, 2])
    assert torch.equal(seen[0], torch.ones(3, 5, 7))
    assert seen[1, 0, 2, 3].item() == pytest.approx(0.2) and seen[1].sum().item() == (
        pytest.approx(3 * 0.2)
    )
    assert f.shape == (2, 3) and f.dtype == torch.float64


def test_preprocessing_resize() -> None:
    probe = Probe()
    imgs = np.random.default_rng(1).integers(0, 256, (2, 8, 8), dtype=np.uint8)
    Fe.FeatureExtractor("probe", probe, 16)(torch.as_tensor(imgs))
    x = torch.as_tensor(imgs).float()[:, None].expand(-1, 3, -1, -1) / 255.0
    expected = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    assert probe.seen.shape == (2, 3, 16, 16)
    torch.testing.assert_close(probe.seen, expected)
    Fe.FeatureExtractor("probe", probe, 8)(torch.as_tensor(imgs))  # already that size
    torch.testing.assert_close(probe.seen, x, rtol=0, atol=0)
    flat = np.full((1, 8, 8), 102, np.uint8)
    Fe.FeatureExtractor("probe", probe, 13)(torch.as_tensor(flat))
    torch.testing.assert_close(probe.seen, torch.full((1, 3, 13, 13), 0.4))


def test_preprocessing_imagenet_normalisation() -> None:
    probe = Probe()
    imgs = np.random.default_rng(2).integers(0, 256, (2, 6, 6), dtype=np.uint8)
    ext = Fe.FeatureExtractor("probe", probe, None, (Fe.IMAGENET_MEAN, Fe.IMAGENET_STD))
    f = ext(torch.as_tensor(imgs))
    x = torch.as_tensor(imgs).float() / 255.0
    for c, (m, s) in enumerate(zip(Fe.IMAGENET_MEAN, Fe.IMAGENET_STD, strict=True)):
        torch.testing.assert_close(probe.seen[:, c], (x - m) / s)
    torch.testing.assert_close(f, probe.seen.mean(dim=(2, 3)).double())


def test_feature_output_shapes() -> None:
    imgs = torch.as_tensor(IMGS[:, :8, :8])

    class Blocks(nn.Module):  # pytorch-fid style: a list of blocks, the last one used
        def forward(self, x):
            return [x[:, :1], x[:, :, :2, :2]]

    f = Fe.FeatureExtractor("blocks", Blocks(), None)(imgs)
    expected = (imgs[:, :2, :2].double() / 255).mean(dim=(1, 2))[:, None].expand(-1, 3)
    torch.testing.assert_close(f, expected, rtol=1e-6, atol=1e-7)

    class Flat(nn.Module):
        def forward(self, x):
            return x.flatten()

    with pytest.raises(ValueError, match="returned shape"):
        Fe.FeatureExtractor("flat", Flat(), None)(imgs)


def test_features_batching_does_not_change_results() -> None:
    ext = Fe.FeatureExtractor("tiny", _tiny_net(), None)
    imgs = np.random.default_rng(4).integers(0, 256, (5, 16, 16), dtype=np.uint8)
    one = Fe.features(ext, imgs, batch=1)
    all_ = Fe.features(ext, imgs, batch=32)
    two = Fe.features(ext, imgs, batch=2)
    assert all_.shape == (5, 8) and all_.dtype == np.float64
    np.testing.assert_allclose(one, all_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(two, all_, rtol=1e-6, atol=1e-7)


# --- LPIPS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lpips_random() -> nn.Module:
    torch.manual_seed(5)
    return Fe.lpips_network("alex", None)


def _half_changed() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(6)
    a = IMGS.copy()
    b = a.copy()
    b[:, :, :32] = rng.integers(0, 256, (2, 64, 32), dtype=np.uint8)  # left half differs
    return a, b


def test_lpips_identical_zero_different_positive(lpips_random: nn.Module) -> None:
    a, b = _half_changed()
    same = Fe.lpips_distance(lpips_random, a, a)
    assert same.shape == (2,) and same.dtype == np.float64
    assert np.all(np.abs(same) < 1e-7)
    diff = Fe.lpips_distance(lpips_random, a, b)
    assert np.all(diff > 0)
    np.testing.assert_allclose(Fe.lpips_distance(lpips_random, a, b, batch=1), diff, rtol=1e-5)


def test_lpips_region(lpips_random: nn.Module) -> None:
    a, b = _half_changed()
    glob = Fe.lpips_distance(lpips_random, a, b)
    full = np.ones(a.shape, bool)
    whole = Fe.lpips_distance(lpips_random, a, b, full)
    # the mean of the upsampled spatial map: close to the global value, not equal
    np.testing.assert_allclose(whole, glob, rtol=1e-2)
    assert lpips_random.spatial is False  # restored
    left = np.zeros(a.shape, bool)
    left[:, :, :32] = True
    assert np.all(Fe.lpips_distance(lpips_random, a, b, left) > whole)
    assert np.all(Fe.lpips_distance(lpips_random, a, b, ~left) < whole)
    assert np.all(np.isnan(Fe.lpips_distance(lpips_random, a, b, np.zeros_like(full))))
    assert np.all(Fe.lpips_distance(lpips_random, a, a, full) < 1e-7)


def test_lpips_loads_torchvision_backbone(lpips_random: nn.Module) -> None:
    torch.manual_seed(7)
    tv = models.alexnet(weights=None)
    m = Fe.lpips_network("alex", tv.state_dict())
    convs = {0: m.net.slice1, 3: m.net.slice2, 6: m.net.slice3, 8: m.net.slice4, 10: m.net.slice5}
    for i, sl in convs.items():
        layer = getattr(sl, str(i))
        assert torch.equal(layer.weight, tv.features[i].weight), i
        assert torch.equal(layer.bias, tv.features[i].bias), i
    assert not torch.equal(m.net.slice1[0].weight, lpips_random.net.slice1[0].weight)
    # the shipped linear layers are the package's either way
    _same_state(m.lins, lpips_random.lins)
    a, b = _half_changed()
    assert np.all(Fe.lpips_distance(m, a, a) < 1e-7)
    assert np.all(Fe.lpips_distance(m, a, b) > 0)


def test_lpips_bad_network_and_missing_backbone(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown LPIPS network"):
        Fe.lpips_network("resnet", None)
    with pytest.raises(WeightsError, match=W.LPIPS_ALEX.filename):
        Fe.lpips_from_registry("alex", tmp_path)
