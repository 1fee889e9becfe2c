"""SegmentConfig: the study's cells, sets and versions; bad settings name the key."""

from __future__ import annotations

import pytest

from dcesynth.config import ConfigError, build_config
from dcesynth.segmentation.config import STUDY_DICE, SegmentConfig


def test_all_scenarios_give_the_studys_14_cells_12_predictions_7_sets() -> None:
    cfg = SegmentConfig()
    cells = cfg.cells()
    assert len(cells) == 14 and len(set(cells)) == 14
    assert {(s, t) for s, t, _ in cells} == set(STUDY_DICE)
    assert [(s, t, d) for s, t, d in cells if s == 3] == [
        (3, "D", "post"),
        (3, "E", "post"),
        (3, "F", "post"),
        (3, "G", "post"),
        (3, "C", "post"),
    ]
    assert len(cfg.predictions()) == 12  # C on pre and on post serve two scenarios each
    assert cfg.training_sets() == list("ABCDEFG")
    assert cfg.versions() == ["pre", "post", "syn"]


def test_study_defaults() -> None:
    cfg = SegmentConfig()
    assert (cfg.folds, cfg.epochs, cfg.iterations_per_epoch) == (5, 500, 250)
    assert cfg.mirroring and cfg.n4.enabled and cfg.n4.shrink == 4
    assert cfg.crop == "tumour_side" and cfg.multifocal == "remove"
    assert cfg.configuration == "3d_fullres" and cfg.backend == "nnunet"


@pytest.mark.parametrize(
    ("scenarios", "sets", "cells", "versions"),
    [
        ((1,), None, [(1, "A", "pre"), (1, "B", "pre"), (1, "C", "pre")], ["pre", "syn"]),
        ((1,), ("A",), [(1, "A", "pre")], ["pre"]),
        ((2, 4), ("C",), [(2, "C", "post"), (4, "C", "pre")], ["pre", "post", "syn"]),
        ((3,), ("F",), [(3, "F", "post")], ["pre", "post"]),
    ],
)
def test_cells_follow_scenarios_and_sets(scenarios, sets, cells, versions) -> None:
    cfg = SegmentConfig(scenarios=scenarios, sets=sets)
    assert cfg.cells() == cells
    assert cfg.versions() == versions


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"scenarios": [5]},
            r"`scenarios`: .*unknown scenario\(s\) \[5\]; allowed: \[1, 2, 3, 4\]",
        ),
        ({"sets": ["H"]}, r"`sets`: .*unknown training set\(s\) \['H'\]; allowed"),
        ({"scenarios": [1], "sets": ["D"]}, "`<root>`: .*give no cell of scenarios"),
        ({"folds": 1}, "`folds`"),
        ({"crop": "left"}, "`crop`"),
        ({"backend": "unet"}, "`backend`"),
        ({"epoch": 3}, "`epoch`: unknown key; allowed keys: .*epochs"),
        ({"n4": {"shrnk": 2}}, "`n4.shrnk`: unknown key; allowed keys: .*shrink"),
    ],
)
def test_bad_settings_name_the_key(override: dict, message: str, tmp_path) -> None:
    import yaml

    f = tmp_path / "segment.yaml"
    f.write_text(yaml.safe_dump(override))
    with pytest.raises(ConfigError, match=f"{f}: {message}"):
        build_config(SegmentConfig, f)


def test_shipped_configs_load() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "jobs" / "configs"
    study = build_config(SegmentConfig, root / "segment_study.yaml")
    assert study.cells() == SegmentConfig().cells() and study.epochs == 500
    demo = build_config(SegmentConfig, root / "segment_demo.yaml")
    assert demo.folds == 2 and demo.scenarios == (2,)
