"""Typed configs: pydantic models are the source of truth, YAML only their serialised form.

Every config error names the file (or the CLI), the key, what was given and what is allowed.
Models built on :class:`StrictModel` refuse unknown keys, so a typo never passes silently.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config that cannot be used; the message names the source, key and allowed values."""


class StrictModel(BaseModel):
    """Frozen, typo-proof base for every config object."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _allowed_keys(cls: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (possibly nested) model that ``loc`` points into."""
    model: Any = cls
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return sorted(getattr(model, "model_fields", {}))


def format_validation_error(
    exc: ValidationError, cls: type[BaseModel], source: str, flag_style: bool = False
) -> str:
    """One line per problem: ``<source>: key `a.b`: message (got X)``.

    Args:
        exc: the pydantic error.
        cls: the model that was validated (to list allowed keys for typos).
        source: where the values came from (a file path, "command line", …).
        flag_style: name keys as CLI flags (``--flip-angle``) instead of ``flip_angle``.
    """
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        if flag_style and loc:
            key = "--" + str(loc[0]).replace("_", "-")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key; allowed keys: {', '.join(_allowed_keys(cls, loc))}"
        else:
            msg = err["msg"]
            if "input" in err and err["type"] != "missing":
                msg += f" (got {err['input']!r})"
        lines.append(f"{source}: `{key}`: {msg}")
    return "\n".join(lines)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def build_config(
    cls: type[M],
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    flag_style: bool = True,
) -> M:
    """Model from an optional YAML file plus overrides (CLI flags win; ``None`` means unset).

    Raises:
        ConfigError: naming the file or "command line", the key and the allowed values.
    """
    data = read_yaml(path) if path is not None else {}
    set_overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    data.update(set_overrides)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        source = (
            str(path)
            if path is not None and not set_overrides
            else (f"{path} + command line" if path is not None else "command line")
        )
        raise ConfigError(format_validation_error(e, cls, source, flag_style)) from None


def to_yaml(model: BaseModel) -> str:
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` so that readers see the old file or the whole new one, never a part."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
