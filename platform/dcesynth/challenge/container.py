"""``dcectl challenge container MODEL --out DIR``: a Docker build context for a MAMA-SYNTH
submission whose entry point is :mod:`dcesynth.challenge.entrypoint`.

Written into DIR::

    Dockerfile          linux/amd64, python:3.11-slim, non-root user, ENTRYPOINT the entry point
    requirements.txt    what the entry point imports, pinned to this environment's versions
    model.dcem          the model file (checksums verified before it is copied)
    src/dcesynth/       the platform's Python sources (imported through PYTHONPATH; the package
                        is not pip-installed, so its full dependency list — Ray, nnU-Net… — is
                        not pulled into the image)
    README.md           build, local test run and what the container does

Build and test where Docker exists::

    docker build --platform=linux/amd64 -t dcesynth-mama DIR
    docker run --rm --network=none --memory=4g -v $IN:/input:ro -v $OUT:/output dcesynth-mama
"""

from __future__ import annotations

import importlib.metadata as md
import shutil
import tempfile
from pathlib import Path

import dcesynth
from dcesynth.config import atomic_write_text

# The third-party distributions the entry point's imports need (a test runs the entry point and
# checks that every third-party module it loaded is covered). torch comes from the CPU wheel
# index (see the Dockerfile).
REQUIREMENTS = (
    "numpy",
    "SimpleITK",
    "safetensors",
    "pydantic",
    "PyYAML",
    "pyarrow",
    "pandas",
    "nibabel",
    "pydicom",
    "scipy",
    "typing_extensions",
    "rich",
)
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
MODEL_NAME = "model.dcem"

DOCKERFILE = """\
# MAMA-SYNTH submission: {model_name} (run {run}, epoch {epoch}, phases {phases}).
# Base: python:3.11-slim for linux/amd64, the image the official evaluator and identity
# baseline use: the same Python minor version as the platform (3.11) and a small image. The
# generator runs on one 2D slice per container start, well under a second on CPU, so torch is
# the CPU wheel (no CUDA runtime: a CUDA base would add gigabytes for no gain here); with a GPU
# and a CUDA torch the entry point uses it (--device auto).
FROM --platform=linux/amd64 python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \\
    PYTHONPATH=/opt/app/src DCESYNTH_MODEL=/opt/app/{model_name} \\
    MAMA_INPUT_DIR=/input MAMA_OUTPUT_DIR=/output

RUN groupadd -r user && useradd -m --no-log-init -r -g user user
WORKDIR /opt/app

COPY requirements.txt /opt/app/requirements.txt
RUN python -m pip install --upgrade pip && \\
    python -m pip install --extra-index-url {torch_index} -r /opt/app/requirements.txt

COPY --chown=user:user src /opt/app/src
COPY --chown=user:user {model_name} /opt/app/{model_name}

USER user
ENTRYPOINT ["python", "-m", "dcesynth.challenge.entrypoint"]
"""

README = """\
# MAMA-SYNTH submission container

Made by `dcectl challenge container` (dcesynth {version}) from `{model}`
(sha256 of its weights {weights_sha}).

    docker build --platform=linux/amd64 -t dcesynth-mama .
    mkdir -p in/images/pre-contrast-dce-mri-slice-breast out
    cp CASE.mha in/images/pre-contrast-dce-mri-slice-breast/
    docker run --rm --network=none --memory=4g \\
        -v $PWD/in:/input:ro -v $PWD/out:/output dcesynth-mama
    # → out/images/synthetic-contrast-dce-mri-slice-breast/output.mha

Without Docker (same code): `PYTHONPATH=src python -m dcesynth.challenge.entrypoint --input in
--output out --model {model_name}`. Options and the intensity mapping (z-scored input → the
model's [0, 255] scale and back): `python -m dcesynth.challenge.entrypoint --help` and the
entry point's docstring.
"""


def requirements() -> str:
    """``requirements.txt``: torch and :data:`REQUIREMENTS`, pinned to the installed versions
    (torch without its local build tag, so the CPU index resolves it).

    Raises:
        ValueError: one of them is not installed here.
    """
    lines = []
    for name in ("torch", *REQUIREMENTS):
        try:
            v = md.version(name)
        except md.PackageNotFoundError:
            raise ValueError(f"{name} is not installed here; cannot pin it") from None
        lines.append(f"{name}=={v.split('+')[0]}")
    return "\n".join(lines) + "\n"


def _copy_sources(dest: Path) -> int:
    """The package's ``.py`` files into ``dest/dcesynth``; returns how many."""
    root = Path(dcesynth.__file__).resolve().parent
    n = 0
    for f in root.rglob("*.py"):
        if "__pycache__" in f.parts:
            continue
        target = dest / "dcesynth" / f.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
        n += 1
    return n


def build_context(model: Path, out: Path) -> dict:
    """Write the build context (see the module docstring) into ``out``.

    The folder is assembled beside ``out`` and renamed into place, so an interrupted call never
    leaves a context that looks complete.

    Args:
        model: a model file (``dcectl export``); verified before anything is written.
        out: the folder to create (must not exist, or be empty).

    Returns:
        ``{"out", "files", "sources", "requirements"}``.

    Raises:
        ModelError: not a usable model file.
        ValueError: ``out`` exists and is not empty.
    """
    from dcesynth.inference.artifact import load_artifact

    art = load_artifact(model)  # checksums verified
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out}: exists and is not an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}.", dir=out.parent))
    try:
        shutil.copy2(model, tmp / MODEL_NAME)
        n = _copy_sources(tmp / "src")
        reqs = requirements()
        run = art.description.get("run", {})
        atomic_write_text(tmp / "requirements.txt", reqs)
        atomic_write_text(
            tmp / "Dockerfile",
            DOCKERFILE.format(
                model_name=MODEL_NAME,
                run=run.get("name", "?"),
                epoch=run.get("epoch", "?"),
                phases=art.phases,
                torch_index=TORCH_INDEX,
            ),
        )
        atomic_write_text(
            tmp / "README.md",
            README.format(
                version=dcesynth.__version__,
                model=Path(model).name,
                weights_sha=art.description["checksums"]["weights_sha256"][:16] + "…",
                model_name=MODEL_NAME,
            ),
        )
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = sorted(str(p.relative_to(out)) for p in out.iterdir())
    return {"out": out, "files": files, "sources": n, "requirements": reqs.split()}
