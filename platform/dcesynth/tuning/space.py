"""Search-space files: a trial's base training config, what to search, how, and the objective.

A file is a :class:`SearchSpace` serialised as YAML (``search_spaces/*.yaml`` are commented
examples). Every error names the file, the key and its line, before any trial starts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from dcesynth.config import ConfigError, StrictModel, format_validation_error, yaml_lines
from dcesynth.evaluation.config import EvalConfig
from dcesynth.training.config import TrainConfig

ANCHORABLE = ("ssim", "mae", "mse")  # what training's validation reports every epoch


class Parameter(StrictModel):
    """One searched TrainConfig key (dotted, e.g. ``loss.lambda_fm``).

    ``uniform`` / ``loguniform``: ``low`` ≤ x ≤ ``high`` (loguniform: low > 0). ``choice``:
    one of ``values`` (any YAML values, lists included). ``grid``: every one of ``values``
    (random and grid searchers only: a model-based searcher proposes, it does not enumerate).
    """

    distribution: Literal["uniform", "loguniform", "choice", "grid"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Parameter:
        if self.distribution in ("uniform", "loguniform"):
            if self.low is None or self.high is None or self.values is not None:
                raise ValueError(f"{self.distribution} takes `low` and `high` (and no `values`)")
            if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
                raise ValueError(f"need low < high, got low={self.low}, high={self.high}")
            if self.distribution == "loguniform" and self.low <= 0:
                raise ValueError(f"loguniform needs low > 0, got {self.low}")
        else:
            if not self.values or self.low is not None or self.high is not None:
                raise ValueError(f"{self.distribution} takes a non-empty `values` list only")
        return self


class Searcher(StrictModel):
    type: Literal["optuna", "random", "grid"] = Field(
        "optuna", description="optuna: TPE; random; grid: every grid point once"
    )
    seed: int = Field(0, ge=0)


class Scheduler(StrictModel):
    type: Literal["asha", "none"] = "asha"
    grace_period: int = Field(1, ge=1, description="epochs before a trial can be stopped")
    reduction_factor: float = Field(2.0, gt=1)


class Objective(StrictModel):
    """Anchored SAMe (0 perfect, 1 = copying the input) over training's validation metrics."""

    metrics: tuple[str, ...] = Field(ANCHORABLE, min_length=1)

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if bad := [m for m in v if m not in ANCHORABLE]:
            raise ValueError(f"{bad} are not reported during training; choose from {ANCHORABLE}")
        return v


class SearchSpace(StrictModel):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="the sweep's folder name")
    storage_path: Path = Field(Path("sweeps"), description="local folder, NFS or s3://")
    base: TrainConfig = Field(..., description="every trial's training config before the search")
    parameters: dict[str, Parameter] = Field(..., min_length=1)
    searcher: Searcher = Field(default_factory=Searcher)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    num_samples: int = Field(..., ge=1, description="trials (grid: repeats of the whole grid)")
    max_concurrent_trials: int = Field(1, ge=1)
    max_failures: int = Field(1, ge=0, description="retries of a crashed trial")
    objective: Objective = Field(default_factory=Objective)
    top_k: int = Field(5, ge=1, description="checkpoints in the final Table 1")
    evaluation: EvalConfig = Field(
        default_factory=EvalConfig, description="the final population-SAMe ranking"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SearchSpace:
        for key in self.parameters:
            _check_key(key)
        if self.base.dataset is None:
            raise ValueError("base.dataset: required (a prepared dataset from `dcectl ingest`)")
        grid = [k for k, p in self.parameters.items() if p.distribution == "grid"]
        if grid and self.searcher.type == "optuna":
            raise ValueError(
                f"parameters {grid} use `grid`, which the optuna searcher cannot enumerate; "
                "use `choice`, or searcher.type: grid / random"
            )
        if self.searcher.type == "grid" and (
            free := [k for k, p in self.parameters.items() if p.distribution != "grid"]
        ):
            raise ValueError(f"searcher.type grid needs every parameter as `grid`; not: {free}")
        return self

    def trial_config(self, params: dict[str, Any], name: str, runs_dir: Path) -> TrainConfig:
        """The base config with one trial's parameter values, as a TrainConfig."""
        data = self.base.model_dump(mode="json")
        for key, value in params.items():
            node = data
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
        data.update(name=name, runs_dir=str(runs_dir))
        return TrainConfig.model_validate(data)


def _check_key(key: str) -> None:
    """A searched key must be a TrainConfig field (nested by dots), not the run's identity."""
    if key in ("name", "runs_dir", "dataset"):
        raise ValueError(f"parameters.{key}: not searchable (it identifies the trial's data/run)")
    model: Any = TrainConfig
    for part in key.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            raise ValueError(
                f"parameters.{key}: not a training setting; "
                f"valid here: {sorted(fields) if fields else '(none below this key)'}"
            )
        model = fields[part].annotation


def load_space(path: Path, overrides: dict | None = None) -> SearchSpace:
    """Read and validate a search-space file.

    Raises:
        ConfigError: naming the file, the key and its line for every problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: search-space file not found")
    text = path.read_text()
    try:
        data = yaml.safe_load(text) or {}
        lines = yaml_lines(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    for k, v in (overrides or {}).items():
        data[k] = v
    try:
        return SearchSpace.model_validate(data)
    except ValidationError as e:
        msgs = format_validation_error(e, SearchSpace, str(path)).splitlines()
        dotted = {".".join(k): v for k, v in lines.items()}
        out = []
        for msg, err in zip(msgs, e.errors(), strict=True):
            key = ".".join(str(p) for p in err["loc"])
            if not key:  # model-level errors name their key first: "parameters.x: …"
                key = err["msg"].split("Value error, ", 1)[-1].split(":", 1)[0]
            parts = key.split(".")
            prefixes = (".".join(parts[:i]) for i in range(len(parts), 0, -1))
            line = next((dotted[k] for k in prefixes if k in dotted), None)
            out.append(msg.replace(f"{path}:", f"{path}:{line}:", 1) if line else msg)
        raise ConfigError("\n".join(out)) from None
