"""The package layout of DESIGN.md: src folder `platform/` that never shadows the stdlib."""

from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "platform" / "dcesynth"


def test_platform_folder_has_no_init() -> None:
    assert not (ROOT / "platform" / "__init__.py").exists()


@pytest.mark.parametrize("cwd", [ROOT, ROOT / "platform"])
def test_import_platform_gives_stdlib_from_repo_root(cwd: Path) -> None:
    """Run from the repo root (where `platform/` sits on sys.path as '') and from inside it."""
    code = "import platform; print(platform.__file__); print(platform.python_version())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    )
    path, version = out.stdout.split()
    assert Path(path).resolve().parent == Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert version == ".".join(map(str, sys.version_info[:3]))


@pytest.mark.parametrize(
    "folder",
    [
        "cli",
        "data",
        "models",
        "training",
        "evaluation",
        "inference",
        "tuning",
        "segmentation",
        "trust",
        "challenge",
        "deploy",
    ],
)
def test_design_folders_exist(folder: str) -> None:
    assert (PKG / folder / "__init__.py").is_file()
    for top in ("jobs", "search_spaces", "tests", "docs"):
        assert (ROOT / top).is_dir()


def test_cli_import_is_light() -> None:
    """`dcectl --help` must answer at once: no torch, ray or numpy at import time."""
    code = (
        "import sys, dcesynth.cli.app\n"
        "heavy = [m for m in ('torch', 'ray', 'numpy', 'scipy', 'pydicom') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# Lower layers never import upper ones (DESIGN.md: cli/jobs → tuning → training, evaluation →
# models, data). Evaluation reads training's runs (config, generator), so it sits above it;
# training never imports evaluation (sweeps hand it their scoring instead).
LAYER = {
    "deploy": 0,
    "data": 0,
    "models": 0,
    "training": 1,
    "inference": 1.5,  # runs training's generator; evaluation's synthesis and export use it
    "evaluation": 2,
    "tuning": 3,
    "segmentation": 3,
    "trust": 3,
    "challenge": 3,  # the MAMA-SYNTH adapter: imports evaluation, inference, data; only cli uses it
    "cli": 4,
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dcesynth."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("dcesynth.")}
    return names


@pytest.mark.parametrize("layer", sorted(LAYER))
def test_dependency_direction(layer: str) -> None:
    for f in (PKG / layer).rglob("*.py"):
        for dep in _imports(f) & set(LAYER):
            assert dep == layer or LAYER[dep] < LAYER[layer], (
                f"{f.relative_to(ROOT)} imports dcesynth.{dep}, which sits above or beside it"
            )


@pytest.mark.parametrize("module", sorted(p.name for p in PKG.glob("*.py")))
def test_top_level_modules_sit_below_every_stage(module: str) -> None:
    # config, cluster, weights, progress: shared by every stage, so they import none of them
    assert not _imports(PKG / module) & set(LAYER), f"dcesynth/{module} imports a stage"
