"""The generator registry and the family configs: pix2pixhd stays the default (old configs load
unchanged), an unknown family or another family's key fails naming what is valid, and both
families train and generate through the one interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dcesynth.config import ConfigError, build_config
from dcesynth.training.config import FAMILY_CONFIGS, TrainConfig
from dcesynth.training.families import family, registry
from dcesynth.training.families.pix2pixhd import build_generator as pix2pixhd_generator
from dcesynth.training.validation import generate, validation_metrics

ROOT = Path(__file__).resolve().parents[2]
TINY_FLOW = {
    "family": "rectified_flow",
    "channels": [8, 16],
    "norm_num_groups": 8,
    "num_head_channels": 8,
    "num_res_blocks": 1,
    "sampling_steps": 2,
}


def test_registry_names_match_the_configs() -> None:
    assert sorted(registry()) == sorted(FAMILY_CONFIGS) == ["pix2pixhd", "rectified_flow"]


def test_unknown_family_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'ddpm'; valid: pix2pixhd, rectified_flow"):
        family("ddpm")
    with pytest.raises(ConfigError, match=r"`model`: unknown generator family; valid: pix2pixhd"):
        build_config(TrainConfig, None, {"model": {"family": "ddpm"}})


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        ({"family": "rectified_flow", "ngf": 8}, r"`model\.ngf`: unknown key of rectified_flow"),
        ({"family": "pix2pixhd", "sampling_steps": 4}, r"`model\.sampling_steps`: unknown key of"),
        ({"family": "rectified_flow", "channels": [30, 64]}, r"\[30\] not divisible by"),
        ({"family": "rectified_flow", "num_head_channels": 48}, "num_head_channels 48 must"),
        ({"family": "rectified_flow", "attention_levels": [True]}, "1 values for 4 levels"),
        ({"family": "rectified_flow", "sampling_steps": 0}, r"`model\.sampling_steps`"),
        ({"family": "rectified_flow", "target": "pre"}, r"`model\.target`"),
        ({"family": "rectified_flow", "sampling_steps": 2000}, "> model.train_timesteps"),
    ],
)
def test_bad_family_config_names_the_key(model: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        build_config(TrainConfig, None, {"model": model})


def test_the_flow_refuses_pix2pixhd_loss_settings() -> None:
    with pytest.raises(ConfigError, match=r"loss\.lambda_fm: the `loss` section holds pix2pixHD"):
        build_config(TrainConfig, None, {"model": TINY_FLOW, "loss": {"lambda_fm": 3.0}})


def test_configs_without_family_are_pix2pixhd_and_round_trip() -> None:
    """Every YAML config of the repository loads; without `family` it is pix2pixhd, as
    before; a resolved config (family written out) loads back equal, for both families."""
    for name in ("train_demo", "train_study"):
        data = yaml.safe_load((ROOT / "jobs" / "configs" / f"{name}.yaml").read_text())
        assert "family" not in data.get("model", {})
        assert TrainConfig.model_validate(data).family == "pix2pixhd"
    for name in ("demo", "gan"):  # their searched keys too (model.ngf below a union now)
        from dcesynth.tuning.space import SearchSpace

        data = yaml.safe_load((ROOT / "search_spaces" / f"{name}.yaml").read_text())
        assert SearchSpace.model_validate(data).base.family == "pix2pixhd"
    cfg = TrainConfig()
    assert cfg.family == "pix2pixhd" and cfg.model.ngf == 64
    for c in (cfg, build_config(TrainConfig, None, {"model": TINY_FLOW})):
        again = yaml.safe_load(yaml.safe_dump(c.model_dump(mode="json")))
        assert TrainConfig.model_validate(again) == c


def test_pix2pixhd_generates_as_before() -> None:
    """The family's generate is upstream's forward pass: G(replicated pre), the mean of the
    three replicas of one phase, on [0, 255] — bit for bit."""
    cfg = build_config(
        TrainConfig, None, {"model": {"ngf": 4, "n_downsample": 2, "n_blocks": 1, "ndf": 4}}
    )
    torch.manual_seed(0)
    G = pix2pixhd_generator(cfg).eval()
    pre = np.random.default_rng(0).integers(0, 256, (3, 16, 16), dtype=np.uint8)
    want = []
    with torch.no_grad():
        for i in (0, 2):  # batches of 2, as asked below
            x = torch.as_tensor(pre[i : i + 2]).float()[:, None] / 127.5 - 1
            y = G(x.expand(-1, 3, -1, -1)).float().mean(1, keepdim=True)
            want.append(((y.clamp(-1, 1) + 1) * 127.5).numpy())
    assert np.array_equal(generate(G, pre, cfg, "cpu", batch=2), np.concatenate(want))
    assert family(cfg).evaluations_per_slice(cfg) == 1


def test_flow_trains_and_validates_through_the_interface() -> None:
    """Networks, step (losses finite, weights move), validation with its sampling cost."""
    cfg = build_config(TrainConfig, None, {"phases": [1, 2], "model": TINY_FLOW, "bf16": False})
    fam = family(cfg)
    torch.manual_seed(0)
    nets = fam.networks(cfg)
    assert list(nets) == ["G"]
    step = fam.step(nets, cfg, "cpu")
    before = [p.detach().clone() for p in nets["G"].parameters()]
    pre, post = torch.rand(2, 1, 8, 8) * 2 - 1, torch.rand(2, 2, 8, 8) * 2 - 1
    vals = step(pre, post, torch.zeros(2, 1, 8, 8), torch.Generator().manual_seed(0))
    assert vals.shape == (len(step.loss_names),) and torch.isfinite(vals).all()
    assert step.loss_names[0] == "loss_g" and "train_l1" in step.loss_names
    assert any(not torch.equal(a, b) for a, b in zip(before, nets["G"].parameters(), strict=True))
    rng = np.random.default_rng(1)
    val = {
        "pre": rng.integers(0, 256, (3, 16, 16), dtype=np.uint8),  # SSIM's window: 11 px
        "post": rng.integers(0, 256, (3, 2, 16, 16), dtype=np.uint8),
    }
    m1 = validation_metrics(nets["G"], val, cfg, "cpu")
    m2 = validation_metrics(nets["G"], val, cfg, "cpu")
    assert m1["nfe_per_slice"] == 2 and m1["sample_s_per_slice"] > 0
    assert m1["val_mae"] == m2["val_mae"]  # fixed subset, fixed seeds
    one = generate(nets["G"], val["pre"][1:2], cfg, "cpu")  # another batch: the same slice
    np.testing.assert_allclose(one[0], generate(nets["G"], val["pre"], cfg, "cpu")[1], atol=1e-3)
    assert fam.describe(cfg)["evaluations_per_slice"] == 2
