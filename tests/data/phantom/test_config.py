"""PhantomConfig through the platform's config builder: errors name the flag and the allowed
values, YAML errors name the file, and the fingerprint tracks exactly what shapes the images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dcesynth.config import ConfigError, build_config, read_yaml, to_yaml
from dcesynth.data.phantom.config import PhantomConfig

AGENTS = ("gadopentetate", "gadobenate", "gadobutrol", "gadoterate")


def _build(**overrides: Any) -> PhantomConfig:
    return build_config(PhantomConfig, overrides=overrides)


@pytest.mark.parametrize(
    ("overrides", "flag", "allowed"),
    [
        ({"cases": 0}, "--cases", ["greater than or equal to 1"]),
        ({"flip_angle": 0.0}, "--flip-angle", ["greater than 0"]),
        ({"flip_angle": -12.0}, "--flip-angle", ["greater than 0"]),
        ({"flip_angle": 90.0}, "--flip-angle", ["less than 90"]),
        ({"agent": "gadolinium"}, "--agent", list(AGENTS)),
        ({"post_phases": 5}, "--post-phases", ["less than or equal to 4"]),
        ({"snr": 0.0}, "--snr", ["greater than 0"]),
        ({"matrix": 8}, "--matrix", ["greater than or equal to 16"]),
        ({"matrix_choices": (320, 8)}, "--matrix-choices", ["[16, 1024]"]),
        ({"flip_angel": 12.0}, "--flip-angel", ["unknown key", "--flip-angle"]),
        ({"tr_range": (6.0, 4.0)}, "--tr-range", ["low <= high"]),
        ({"fov_mm": (0.0, 300.0)}, "--fov-mm", ["0 < low"]),
        ({"density_weights": {"e": 1.0}}, "--density-weights", ["'a'", "'d'"]),
        (
            {"curve_type_weights": {"I": 0.0, "II": 0.0, "III": 0.0}},
            "--curve-type-weights",
            ["not all 0"],
        ),
        ({"typo_fraction": 1.5}, "--typo-fraction", ["less than or equal to 1"]),
    ],
)
def test_invalid_option_names_flag_and_allowed(
    overrides: dict[str, Any], flag: str, allowed: list[str]
) -> None:
    """Each bad option raises ConfigError naming the CLI flag, the source and what is allowed."""
    with pytest.raises(ConfigError) as exc:
        _build(**overrides)
    msg = str(exc.value)
    assert msg.startswith("command line: ")
    assert f"`{flag}`" in msg
    for text in allowed:
        assert text in msg, msg


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        ({"hct_range": (0.4, 1.0)}, "--hct-range"),
        ({"flip_angle_range": (10.0, 95.0)}, "--flip-angle-range"),
        ({"formats": ("dicom", "dicom")}, "--formats"),
    ],
)
def test_cross_field_errors_name_flag(overrides: dict[str, Any], flag: str) -> None:
    """Range checks done across fields must still name the flag the user typed."""
    with pytest.raises(ConfigError) as exc:
        _build(**overrides)
    assert f"`{flag}`" in str(exc.value)


def test_none_overrides_mean_unset_and_cli_wins_over_file(tmp_path: Path) -> None:
    """``None`` (an unset CLI flag) keeps the file's value; a set flag replaces it."""
    path = tmp_path / "phantom.yaml"
    path.write_text("matrix: 64\nslices: 24\nseed: 3\n")
    cfg = build_config(PhantomConfig, path, overrides={"matrix": None, "seed": 9})
    assert (cfg.matrix, cfg.slices, cfg.seed) == (64, 24, 9)
    assert build_config(PhantomConfig, overrides={"matrix": None}).matrix is None


def test_yaml_round_trip(tmp_path: Path) -> None:
    """A config written with to_yaml reads back equal."""
    cfg = PhantomConfig(cases=3, matrix=48, slices=16, agent="gadobutrol", seed=5)
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(cfg))
    assert build_config(PhantomConfig, path) == cfg


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "config file not found"),
        ("matrix: [64\n", "not valid YAML"),
        ("- 1\n- 2\n", "top level must be a mapping"),
    ],
)
def test_yaml_errors_name_the_file(tmp_path: Path, content: str | None, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as exc:
        read_yaml(path)
    assert str(path) in str(exc.value) and needle in str(exc.value)


def test_yaml_validation_error_names_file_and_key(tmp_path: Path) -> None:
    """A bad value names where it came from: the file and its key, or the flag."""
    path = tmp_path / "bad.yaml"
    path.write_text("post_phases: 5\n")
    with pytest.raises(ConfigError) as exc:
        build_config(PhantomConfig, path)
    assert str(exc.value).startswith(f"{path}: `post_phases`:")
    assert "less than or equal to 4" in str(exc.value)
    with pytest.raises(ConfigError) as exc:  # the bad key still came from the file
        build_config(PhantomConfig, path, overrides={"seed": 1})
    assert str(exc.value).startswith(f"{path}: `post_phases`:")
    with pytest.raises(ConfigError) as exc:  # a bad flag is named as the flag
        build_config(PhantomConfig, path, overrides={"post_phases": 7})
    assert str(exc.value).startswith("command line: `--post-phases`:")


def test_empty_yaml_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert build_config(PhantomConfig, path) == PhantomConfig()


def test_fingerprint() -> None:
    """Same for equal configs, blind to ``cases`` and ``formats``, changed by what shapes images."""
    base = PhantomConfig(matrix=48, slices=16)
    fp = base.fingerprint()
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert PhantomConfig(matrix=48, slices=16).fingerprint() == fp
    assert PhantomConfig(matrix=48, slices=16, cases=7).fingerprint() == fp
    assert PhantomConfig(matrix=48, slices=16, formats=("nifti",)).fingerprint() == fp
    changed = [
        PhantomConfig(matrix=48, slices=16, seed=1),
        PhantomConfig(matrix=48, slices=16, seed=2),
        PhantomConfig(matrix=64, slices=16),
        PhantomConfig(matrix=48, slices=16, snr=20.0),
        PhantomConfig(matrix=48, slices=16, agent="gadoterate"),
    ]
    fps = {c.fingerprint() for c in changed}
    assert fp not in fps and len(fps) == len(changed)


def test_config_is_frozen() -> None:
    """Configs are immutable, so a fingerprint cannot go stale."""
    cfg = PhantomConfig()
    with pytest.raises(ValueError):
        cfg.seed = 3  # type: ignore[misc]
