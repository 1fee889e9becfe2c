"""Header values become file names through one injective function that never leaves its folder
(issue 23: `x/y` and `x_y` overwrote each other; `../../evil` read a mask from outside)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcesynth.names import child, safe_name, unique_names, within

HOSTILE = [
    "x/y",
    "x_y",
    "x\\y",
    "../../evil",
    "..",
    ".",
    "",
    "/etc/passwd",
    "/abs/evil",
    ".hidden",
    "-rf",
    "a\x00b",
    "PAT 001",
    "Ünïcode/名前",
    "a" * 300,
    "a" * 300 + "b",
]


@pytest.mark.parametrize("value", ["Breast_MRI_001", "P1", "case-7.v2", "_x"])
def test_plain_keys_keep_their_name(value: str) -> None:
    """Duke's PatientIDs name their mask files as before: `Breast_MRI_001.nii.gz`."""
    assert safe_name(value) == value


@pytest.mark.parametrize("value", HOSTILE)
def test_every_value_is_one_plain_component(value: str, tmp_path: Path) -> None:
    name = safe_name(value)
    assert name not in ("", ".", "..") and "/" not in name and "\\" not in name
    assert "\x00" not in name and not name.startswith((".", "-")) and len(name) <= 100
    path = child(tmp_path, value, ".nii.gz")
    assert path.parent == tmp_path and path.resolve().parent == tmp_path.resolve()


def test_distinct_values_get_distinct_names() -> None:
    names = unique_names([*HOSTILE, "Breast_MRI_001", "x_y~0000000000"])
    assert len(set(names.values())) == len(names)
    assert names["x_y"] == "x_y" and names["x/y"] != "x_y" and names["x/y"].startswith("x_y~")
    assert safe_name("x/y") == safe_name("x/y")  # stable: the same folder on every run


def test_a_hash_collision_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import dcesynth.names as names

    monkeypatch.setattr(names, "safe_name", lambda v: "same")
    with pytest.raises(ValueError, match="map to one file name 'same'"):
        names.unique_names(["a", "b"])


@pytest.mark.parametrize("name", ["a/b", "..", ".", "", "/etc", "a\\b"])
def test_within_refuses_anything_but_one_name(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a single file name"):
        within(tmp_path, name)


def test_child_refuses_a_suffix_with_a_separator(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="separator"):
        child(tmp_path, "x", "/../y")
