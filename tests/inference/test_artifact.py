"""The model artefact: self-describing, checksummed, and loaded without unpickling anything."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from dcesynth.data.dataset import load_manifest
from dcesynth.inference.artifact import (
    META_KEY,
    ModelError,
    load_artifact,
    read_description,
    save_artifact,
)

ROOT = Path(__file__).resolve().parents[2]


def test_description_says_what_prediction_needs(model_file: Path, prepared: Path) -> None:
    art = load_artifact(model_file)
    d = art.description
    manifest = load_manifest(prepared)
    assert d["phases"] == [1, 2, 3] and art.phases == [1, 2, 3]
    assert d["train_config"]["model"]["ngf"] == 8 and d["train_config"]["phases"] == [1, 2, 3]
    assert d["input"]["image_size"] == 32
    assert d["input"]["normalisation"]["method"] == manifest["options"]["normalisation"]
    assert d["input"]["normalisation"]["percentiles"] == list(manifest["options"]["percentiles"])
    assert "SquareResize" in d["input"]["resize"] and "canonical" in d["input"]["orientation"]
    assert d["training_data"]["fingerprint"] == manifest["fingerprint"]
    assert d["selection"]["selected_epoch"] == 1 and d["selection"]["exported_is_selected"]
    assert d["selection"]["same"] == 0.25
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", d["platform_version"])
    assert re.fullmatch(r"[0-9a-f]{64}", d["checksums"]["weights_sha256"])
    state = torch.load(
        Path(d["train_config"]["runs_dir"]) / "hand/checkpoints/epoch_001/state.pt",
        weights_only=True,
    )["G"]
    assert set(art.weights) == set(state)
    for k, v in state.items():
        np.testing.assert_array_equal(art.weights[k], v.numpy())


def test_altered_weights_fail_their_checksum(model_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "m.dcem"
    data = bytearray(model_file.read_bytes())
    data[-5] ^= 0x40  # one bit of the last tensor's bytes; the header is untouched
    bad.write_bytes(bytes(data))
    read_description(bad)  # the description itself is intact
    with pytest.raises(ModelError, match=r"m\.dcem: the weights do not match their checksum"):
        load_artifact(bad)


def test_edited_description_fails_its_checksum(model_file: Path, tmp_path: Path) -> None:
    art = load_artifact(model_file)
    desc = json.loads(json.dumps(art.description))
    desc["input"]["normalisation"]["method"] = "zscore"  # checksums kept: an edit, not an export
    bad = tmp_path / "edited.dcem"
    save_file(art.weights, str(bad), metadata={META_KEY: json.dumps(desc)})
    with pytest.raises(ModelError, match="description was changed after export"):
        load_artifact(bad)


class Boom:
    """Unpickling this writes a file: proof that a loader ran code from the model file."""

    marker: Path

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    Boom.marker = marker
    evil = tmp_path / "evil.dcem"
    torch.save({"G": Boom()}, evil)  # a torch checkpoint (a zip of pickles)
    plain = tmp_path / "plain.dcem"
    plain.write_bytes(pickle.dumps(Boom()))
    for f in (evil, plain):
        with pytest.raises(ModelError, match="not a dcesynth model artefact"):
            load_artifact(f)
    assert not marker.exists()

    def refuse(*a, **k):
        raise AssertionError("a model load unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    good = tmp_path / "good.dcem"
    w = {"a.weight": np.ones((2, 2), np.float32)}
    save_artifact(good, _minimal_description(), w)
    np.testing.assert_array_equal(load_artifact(good).weights["a.weight"], w["a.weight"])


def _minimal_description() -> dict:
    return {
        "format": "dcesynth-model",
        "format_version": 1,
        "platform_version": "0",
        "phases": [1],
        "train_config": {},
        "input": {},
    }


def test_no_platform_code_unpickles_freely() -> None:
    hits = [
        str(f.relative_to(ROOT))
        for f in (ROOT / "platform").rglob("*.py")
        if "weights_only=False" in f.read_text()
    ]
    assert hits == []


def test_not_a_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nothere\.dcem: no such model file"):
        load_artifact(tmp_path / "nothere.dcem")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": np.zeros(3, np.float32)}, str(foreign))
    with pytest.raises(ModelError, match="without a dcesynth description"):
        load_artifact(foreign)
    with pytest.raises(ModelError, match="is a directory"):
        save_artifact(tmp_path, _minimal_description(), {"x": np.zeros(1, np.float32)})
