"""A model artefact: one safetensors file that says everything prediction needs.

A safetensors file is a JSON header (string → string metadata included) and raw tensor bytes:
nothing in it is executable, so loading one cannot run code, as unpickling a ``torch.save``
file can. The description — JSON in the header under ``dcesynth`` — holds the generator's
resolved training config, the phases it generates, what its input needs (slice size,
normalisation and its parameters, orientation), the metrics of its selection (Table 1), the
training data's fingerprint, the platform version and two checksums:

* ``weights_sha256`` over every tensor (name, dtype, shape and bytes, in name order);
* ``description_sha256`` over the rest of the description (an edited normalisation would
  silently change every prediction).

Both are checked on every load and a mismatch is refused. They catch damage and edits, not a
forger who recomputes them: sign the file where that matters.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "dcesynth-model"
FORMAT_VERSION = 1
META_KEY = "dcesynth"
REQUIRED = ("format", "format_version", "platform_version", "phases", "train_config", "input")


class ModelError(ValueError):
    """A model artefact that cannot be used; the message names the file."""


def weights_sha256(weights: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(weights):
        a = np.ascontiguousarray(weights[name])
        h.update(f"{name}|{a.dtype.str}|{list(a.shape)}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def description_sha256(description: dict) -> str:
    body = {k: v for k, v in description.items() if k != "checksums"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ModelArtifact:
    """A loaded, verified artefact: its description and the generator's weights."""

    path: Path
    description: dict
    weights: dict[str, np.ndarray]

    @property
    def phases(self) -> list[int]:
        return [int(p) for p in self.description["phases"]]

    @property
    def image_size(self) -> int:
        return int(self.description["input"]["image_size"])

    @property
    def normalisation(self) -> dict:
        return dict(self.description["input"]["normalisation"])

    def spec(self):
        """The generator as the inference engine takes it."""
        from dcesynth.inference.engine import GeneratorSpec

        return GeneratorSpec(self.description["train_config"], self.weights)


def save_artifact(path: Path, description: dict, weights: dict[str, np.ndarray]) -> dict:
    """Write ``description`` (checksums added) and ``weights`` as one safetensors file, under a
    temporary name renamed when complete. Returns the description as written."""
    from safetensors.numpy import save_file

    from dcesynth.durable import atomic_path

    path = Path(path)
    if path.is_dir():
        raise ModelError(f"--out {path}: is a directory; name the model file, e.g. model.dcem")
    weights = {k: np.ascontiguousarray(v) for k, v in weights.items()}
    desc = {k: v for k, v in description.items() if k != "checksums"}
    desc["checksums"] = {
        "weights_sha256": weights_sha256(weights),
        "description_sha256": description_sha256(desc),
    }
    with atomic_path(path) as tmp:  # temp sibling, fsync, rename: never a half model file
        save_file(weights, str(tmp), metadata={META_KEY: json.dumps(desc, sort_keys=True)})
    return desc


def _not_ours(path: Path, why: str) -> ModelError:
    return ModelError(
        f"{path}: not a dcesynth model artefact ({why}); make one with "
        "`dcectl export RUN --out MODEL`"
    )


def read_description(path: Path) -> dict:
    """The description alone (the header: no tensor is read); checks its own checksum.

    Raises:
        ModelError: no such file, not a safetensors file, no dcesynth description, a newer
            format, or an edited description.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for foreign files
        raise _not_ours(path, f"not a safetensors file: {type(e).__name__}") from None
    if META_KEY not in meta:
        raise _not_ours(path, "a safetensors file without a dcesynth description")
    try:
        desc = json.loads(meta[META_KEY])
    except json.JSONDecodeError as e:
        raise _not_ours(path, f"its description is not JSON: {e}") from None
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        raise _not_ours(path, f"format {desc.get('format') if isinstance(desc, dict) else None!r}")
    if int(desc.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(
            f"{path}: model format version {desc['format_version']}, newer than this platform "
            f"reads ({FORMAT_VERSION}); update dcesynth"
        )
    if missing := [k for k in REQUIRED if k not in desc]:
        raise ModelError(f"{path}: the description lacks {missing}")
    sums = desc.get("checksums") or {}
    if sums.get("description_sha256") != description_sha256(desc):
        raise ModelError(
            f"{path}: the description was changed after export (description_sha256 does not "
            "match); re-export the model"
        )
    return desc


def load_artifact(path: Path) -> ModelArtifact:
    """Description and weights, both checksums verified; nothing is unpickled.

    Raises:
        ModelError: as :func:`read_description`, or weights that do not match their checksum.
    """
    from safetensors.numpy import load_file

    path = Path(path)
    desc = read_description(path)
    weights = load_file(str(path))
    got = weights_sha256(weights)
    if got != desc["checksums"].get("weights_sha256"):
        raise ModelError(
            f"{path}: the weights do not match their checksum (weights_sha256 "
            f"{desc['checksums'].get('weights_sha256', '')[:16]}…, computed {got[:16]}…): the "
            "file is damaged or was altered; re-export or re-copy it"
        )
    return ModelArtifact(path, desc, weights)


def _details(gen: dict, model: dict) -> str:
    """The generator's shape in words: as its family wrote it, or (files written before
    families) pix2pixHD's from the config."""
    if "details" in gen:
        return str(gen["details"])
    return f"ngf {model['ngf']}, {model['n_downsample']} down, {model['n_blocks']} blocks"


def summary(desc: dict) -> list[tuple[str, str]]:
    """(field, value) lines for ``dcectl model info``."""
    inp, gen, sel = desc["input"], desc.get("generator", {}), desc.get("selection") or {}
    norm = inp["normalisation"]
    params = {
        "minmax": "",
        "percentile": f" {norm.get('percentiles')}",
        "zscore": f" ±{norm.get('zscore_clip')} sd",
        "window": f" {norm.get('window')} (challenge z-scores, one window for every slice)",
    }.get(norm["method"], "")
    scope = "per slice" if norm["method"] == "window" else "per volume"
    tcfg = desc["train_config"]
    lines = [
        ("format", f"{desc['format']} v{desc['format_version']}"),
        ("platform version", str(desc["platform_version"])),
        ("created", str(desc.get("created", "?"))),
        (
            "run",
            f"{desc.get('run', {}).get('name', '?')}, epoch {desc.get('run', {}).get('epoch')}",
        ),
        ("phases generated", ", ".join(map(str, desc["phases"]))),
        (
            "generator",
            f"{gen.get('architecture', '?')} ({_details(gen, tcfg['model'])}), "
            f"{gen.get('in_channels')} → {gen.get('out_channels')} channels, "
            f"{gen.get('parameters', '?')} parameters",
        ),
        ("sampling cost", f"{gen.get('evaluations_per_slice', 1)} network evaluation(s) / slice"),
        ("input slice", f"{inp['image_size']}² ({inp.get('resize', '')})"),
        ("normalisation", f"{norm['method']}{params} {scope}, to [0, 255]"),
        ("orientation", str(inp.get("orientation", ""))),
        ("training data", f"fingerprint {desc.get('training_data', {}).get('fingerprint')}"),
    ]
    if sel:
        row = sel.get("table1_row") or {}
        metrics = ", ".join(
            f"{k.removesuffix('_mean')} {float(v):.4g}"
            for k, v in row.items()
            if k.endswith("_mean") and v not in ("", None)
        )
        lines.append(
            (
                "selection",
                f"epoch {sel.get('selected_epoch')} by SAMe over {sel.get('same_metrics')}"
                + (f"; this epoch's SAMe {sel['same']:.4g}" if sel.get("same") is not None else "")
                + (f"; Table 1: {metrics}" if metrics else ""),
            )
        )
    else:
        lines.append(("selection", "none recorded (the run was not scored by `dcectl select`)"))
    sums = desc["checksums"]
    lines.append(("weights sha256", sums["weights_sha256"]))
    return lines
