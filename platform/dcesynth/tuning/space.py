"""Search-space files: a trial's base training config, what to search, how, and the objective.

A file is a :class:`SearchSpace` serialised as YAML (``search_spaces/*.yaml`` are commented
examples). Every error names the file, the key and its line, before any trial starts.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from dcesynth.config import (
    ConfigError,
    StrictModel,
    format_validation_error,
    model_members,
    yaml_lines,
)
from dcesynth.evaluation.config import EvalConfig
from dcesynth.training.config import FAMILY_CONFIGS, TrainConfig
from dcesynth.tuning.conditional import active, check_conditions, combinations, probes

ANCHORABLE = ("ssim", "mae", "mse")  # what training's validation reports every epoch
# settings a family may not set for its own trials: the scheduler (epochs), the cluster check
# (workers, use_gpu) and the run's identity read them from `base`
SHARED = frozenset({"name", "runs_dir", "dataset", "epochs", "workers", "use_gpu"})


class Parameter(StrictModel):
    """One searched TrainConfig key (dotted, e.g. ``loss.lambda_fm``).

    ``uniform`` / ``loguniform``: ``low`` ≤ x ≤ ``high`` (loguniform: low > 0). ``choice``:
    one of ``values`` (any YAML values, lists included). ``grid``: every one of ``values``
    (random and grid searchers only: a model-based searcher proposes, it does not enumerate).
    ``when``: the parameter applies only to trials whose named ``choice`` parameters took these
    values (``{model.family: rectified_flow}``); other trials neither sample nor get it.
    """

    distribution: Literal["uniform", "loguniform", "choice", "grid"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None
    when: dict[str, Any] | None = Field(
        None, description="conditions on other `choice` parameters: {key: value}, all must hold"
    )

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
    families: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per generator family, TrainConfig settings merged onto `base` for that "
        "family's trials (its `model` section, pix2pixHD's `loss`, …)",
    )
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
        check_conditions(self.parameters, self.searcher.type)
        self._check_families()
        self._check_trials()
        return self

    @property
    def conditional(self) -> bool:
        """Whether some parameter applies to some trials only (``when``)."""
        return any(p.when for p in self.parameters.values())

    def trial_bases(self) -> dict[str, TrainConfig]:
        """What to check against the dataset and the weights before any trial: the base, or
        with conditions one trial config per combination of them (each family's own ``model``
        and ``loss``), by how an error should name it."""
        if not self.conditional:
            return {"`base`": self.base}
        out = {}
        for combo in combinations(self.parameters):
            where = ", ".join(f"{k}={v}" for k, v in combo.items())
            out[f"(trials with {where})"] = self.trial_config(
                next(probes(self.parameters, combo)), "check", Path(".")
            )
        return out

    def _check_families(self) -> None:
        """``families`` names families that some trial has, each holding its own ``model``."""
        family = self.parameters.get("model.family")
        has = {self.base.model.family, *(family.values or [] if family else [])}
        for name, section in self.families.items():
            if name not in FAMILY_CONFIGS:
                raise ValueError(
                    f"families.{name}: unknown generator family; valid: {', '.join(FAMILY_CONFIGS)}"
                )
            if name not in has:
                raise ValueError(
                    f"families.{name}: no trial is of this family (base.model.family is "
                    f"{self.base.model.family}; search `model.family` to add others)"
                )
            if fixed := sorted(set(section) & SHARED):
                raise ValueError(
                    f"families.{name}.{fixed[0]}: shared by every trial (it sizes the cluster, "
                    f"the scheduler and the data); set it in `base`, not per family ({fixed})"
                )
            own = (section.get("model") or {}).get("family", name)
            if own != name:
                raise ValueError(f"families.{name}.model.family: {own!r}; leave it out")

    def _check_trials(self) -> None:
        """Build a trial config for every bound and choice of every parameter, per combination
        of the conditions: a key of the wrong family, a value out of range or a ``loss``
        setting on a flow trial is an error now, not in the middle of the sweep."""
        for combo in combinations(self.parameters):
            for params in probes(self.parameters, combo):
                try:
                    self.trial_config(params, "check", Path("."))
                except ValidationError as e:
                    raise ValueError(_trial_problem(e, combo, params, self.parameters)) from None

    def trial_config(self, params: dict[str, Any], name: str, runs_dir: Path) -> TrainConfig:
        """The base config with one trial's parameter values, as a TrainConfig.

        A trial's generator family (``model.family``, searched or the base's) decides its
        ``model`` section: the base's if the family is the base's, else that family's
        defaults; then ``families[family]`` merges onto the config, then the trial's active
        parameters (those whose ``when`` holds; others in ``params`` are dropped).

        Args:
            params: the trial's parameter values by dotted key (decoded from Tune's form).
            name: the run's name.
            runs_dir: the folder of the trial's run.

        Raises:
            pydantic.ValidationError: the values make an invalid training config.
        """
        params = active(self.parameters, params)
        data = self.base.model_dump(mode="json")
        family = params.get("model.family", data["model"]["family"])
        if family != data["model"]["family"]:
            # the base's model keys are another family's: this family starts from its defaults
            data["model"] = {"family": family}
        _merge(data, copy.deepcopy(self.families.get(family, {})))
        for key, value in params.items():
            node = data
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        data.update(name=name, runs_dir=str(runs_dir))
        return TrainConfig.model_validate(data)


def _trial_problem(
    e: ValidationError, combo: dict[str, Any], params: dict[str, Any], searched: dict
) -> str:
    """A probe trial's first problem, led by the searched key it comes from where there is one
    (so the message points at that parameter's line) and naming the trial's family."""
    err = e.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    loc = [str(p) for p in err["loc"]]
    if loc[:1] == ["model"] and len(loc) > 2 and loc[1] in FAMILY_CONFIGS:
        family = loc.pop(1)  # pydantic's tag of the family union, not a key of the file
        if err["type"] == "extra_forbidden":
            keys = sorted(FAMILY_CONFIGS[family].model_fields)
            msg = f"not a key of {family}; its keys: {', '.join(keys)}"
    key = ".".join(loc)
    if not key and ":" in msg:  # a config-level check names its key first: "loss.x: …"
        key, msg = (x.strip() for x in msg.split(":", 1))
    trial = ", ".join(f"{k}={v}" for k, v in combo.items())
    trial = f"a trial with {trial}" if trial else "a trial"
    if key in searched:
        return f"parameters.{key}: {trial} and {key}={params.get(key)!r}: {msg}"
    return f"parameters: {trial}: `{key}`: {msg}"


def _merge(base: dict, extra: dict) -> None:
    """``extra`` into ``base``, sub-mappings key by key (a family's ``loss.lambda_l1`` keeps
    the base's other loss settings)."""
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def _check_key(key: str) -> None:
    """A searched key must be a TrainConfig field (nested by dots), not the run's identity.
    Below ``model`` a key of any generator family is one (``model.family`` included)."""
    if key in ("name", "runs_dir", "dataset"):
        raise ValueError(f"parameters.{key}: not searchable (it identifies the trial's data/run)")
    models: list[Any] = [TrainConfig]
    for part in key.split("."):
        fields: dict[str, Any] = {}
        for m in models:
            fields.update(getattr(m, "model_fields", {}))
        if part not in fields:
            raise ValueError(
                f"parameters.{key}: not a training setting; "
                f"valid here: {sorted(fields) if fields else '(none below this key)'}"
            )
        models = list(model_members(fields[part].annotation).values())


def apply_sets(data: dict[str, Any], items: list[str]) -> None:
    """Command-line ``key=value`` settings into a search-space file's data (values as YAML).

    Keys are dotted into the file: ``base.epochs=2``,
    ``families.rectified_flow.model.channels=[16, 32]``. Below ``parameters`` the longest
    parameter name the file has comes first (``parameters.model.samples.values=[1, 2]``); a
    whole parameter can be set as a mapping, and ``null`` removes it. A mapping merges into
    the file's mapping key by key (``base={epochs: 2, workers: 1}``); anything else replaces.

    Args:
        data: the file's parsed YAML, changed in place.
        items: the settings, in order (a later one wins).

    Raises:
        ConfigError: for an item without ``=``, or one whose path crosses a non-mapping.
    """
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: must look like key=value (base.epochs=2)")
        key, raw = (x.strip() for x in item.split("=", 1))
        value = yaml.safe_load(raw)
        parts = key.split(".")
        if parts[0] == "parameters" and len(parts) > 1:
            rest = ".".join(parts[1:])
            names = sorted(data.get("parameters") or {}, key=len, reverse=True)
            name = next((n for n in names if rest == n or rest.startswith(n + ".")), rest)
            field = rest[len(name) + 1 :]
            # a condition's key has dots of its own: `when.model.family` is one entry of `when`
            sub = ["when", field[5:]] if field.startswith("when.") else [field] if field else []
            parts = ["parameters", name, *sub]
            if not sub and value is None:
                (data.get("parameters") or {}).pop(name, None)
                continue
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: `{p}` is not a mapping in the file")
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            _merge(node[parts[-1]], value)  # `base={epochs: 2}` keeps the file's other keys
        else:
            node[parts[-1]] = value


def load_space(
    path: Path, overrides: dict | None = None, sets: list[str] | None = None
) -> SearchSpace:
    """Read and validate a search-space file.

    Args:
        path: the YAML file.
        overrides: top-level keys that replace the file's.
        sets: command-line ``key=value`` settings (:func:`apply_sets`), applied after those.

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
    apply_sets(data, sets or [])
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
