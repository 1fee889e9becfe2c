"""Typed configs: pydantic models are the source of truth, YAML only their serialised form.

Every config error names the file (or the CLI), the key, what was given and what is allowed.
Models built on :class:`StrictModel` refuse unknown keys, so a typo never passes silently.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Tag, ValidationError

from dcesynth import durable

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config that cannot be used; the message names the source, key and allowed values."""


class StrictModel(BaseModel):
    """Frozen, typo-proof base for every config object."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def model_members(annotation: Any) -> dict[str | None, type[BaseModel]]:
    """The models an annotation admits, by their pydantic ``Tag`` (None: untagged): one for a
    plain sub-config, one per family for a discriminated union (``TrainConfig.model``)."""
    out: dict[str | None, type[BaseModel]] = {}

    def walk(a: Any, tag: str | None) -> None:
        if isinstance(a, type) and issubclass(a, BaseModel):
            out[tag] = a
        elif get_origin(a) is Annotated:
            base, *meta = get_args(a)
            walk(base, next((m.tag for m in meta if isinstance(m, Tag)), tag))
        elif get_origin(a) in (Union, types.UnionType):
            for member in get_args(a):
                walk(member, tag)

    walk(annotation, None)
    return out


def _container(
    cls: type[BaseModel], loc: tuple
) -> tuple[type[BaseModel] | None, list[str], list[str]]:
    """The (possibly nested) model holding ``loc``'s last key, ``loc`` as a user writes it (a
    discriminated union's tag, ``("model", "rectified_flow", "ngf")``, is not a key) and the
    tags passed on the way."""
    model: type[BaseModel] | None = cls
    shown: list[str] = []
    tags: list[str] = []
    i = 0
    while i < len(loc):
        part = loc[i]
        shown.append(str(part))
        if i == len(loc) - 1:
            break
        field = getattr(model, "model_fields", {}).get(part) if model else None
        members = model_members(field.annotation) if field is not None else {}
        nxt = loc[i + 1]
        if len(members) > 1 and nxt in members:
            model, i = members[nxt], i + 2  # skip the tag
            tags.append(str(nxt))
        else:
            model, i = (next(iter(members.values())) if len(members) == 1 else None), i + 1
    return model, shown, tags


def _allowed_keys(cls: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (possibly nested) model that ``loc`` points into."""
    model, _, _ = _container(cls, loc)
    return sorted(getattr(model, "model_fields", {}) if model else {})


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def format_validation_error(
    exc: ValidationError, cls: type[BaseModel], file: str | None, cli_keys: set[str] = frozenset()
) -> str:
    """One line per problem, naming where the value came from, the key and what is allowed.

    Keys given on the command line are named as flags (``--flip-angle``), keys from the file as
    written there (``flip_angle``, ``model.ngf``).

    Args:
        exc: the pydantic error.
        cls: the model that was validated (to list allowed keys for typos).
        file: the YAML file the other values came from, if any.
        cli_keys: top-level keys that came from command-line flags.
    """
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        from_cli = bool(loc) and loc[0] in cli_keys
        _, shown, tags = _container(cls, loc)
        dotted = ".".join(shown) or "<root>"
        top = cls.model_fields.get(str(loc[0])) if loc else None
        nested = top is not None and bool(model_members(top.annotation))
        key = _flag(str(loc[0])) if from_cli and not nested else dotted  # sub-configs: a.b
        source = "command line" if from_cli else (file or "config")
        if err["type"] == "extra_forbidden":
            keys = _allowed_keys(cls, loc)
            flags = from_cli and not nested
            which = f" of {', '.join(tags)}" if tags else ""  # e.g. the other family's key
            names = ", ".join(map(_flag, keys) if flags else keys)
            msg = f"unknown key{which}; allowed keys: {names}"
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


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one is an error
    (naming the key) rather than a crash deep in a model."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("`device`: cuda asked for, but torch sees no GPU; use cpu or auto")
    return device


def yaml_lines(text: str) -> dict[tuple[str, ...], int]:
    """1-based line of every mapping key and sequence item in a YAML text, by path
    (sequence indices as strings: ``("provider", "security_group", "IpPermissions", "0")``;
    in a multi-document text the path starts with the document's index)."""
    out: dict[tuple[str, ...], int] = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = (*path, str(k.value))
                out[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                p = (*path, str(i))
                out[p] = v.start_mark.line + 1
                walk(v, p)

    roots = [r for r in yaml.compose_all(text) if r is not None]
    for i, root in enumerate(roots):  # several documents: paths start with the document's index
        walk(root, (str(i),) if len(roots) > 1 else ())
    return out


def build_config(
    cls: type[M], path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> M:
    """Model from an optional YAML file plus overrides (CLI flags win; ``None`` means unset).

    Raises:
        ConfigError: naming the file or the flag, the key and the allowed values.
    """
    data = read_yaml(path) if path is not None else {}
    set_overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    _deep_merge(data, set_overrides)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        file = str(path) if path is not None else None
        raise ConfigError(format_validation_error(e, cls, file, set(set_overrides))) from None


def _deep_merge(base: dict, extra: dict) -> None:
    """``extra`` into ``base``; sub-mappings merge key by key (``loss.lambda_fm=5`` keeps the
    file's other loss settings)."""
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_merge(base[k], v)
        else:
            base[k] = v


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]"]`` → ``{"a": {"b": 1}, "c": [1, 2]}`` (values parsed as YAML).

    Raises:
        ConfigError: for an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"command line: override {item!r} must look like key=value (a.b=1)")
        key, raw = item.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(raw)
    return out


def to_yaml(model: BaseModel) -> str:
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False)


def atomic_write_text(path: str | Path, text: str, keep_if_same: bool = False) -> None:
    """Write ``text`` so that readers see the old file or the whole new one, never a part
    (temporary sibling, fsync, rename: :func:`dcesynth.durable.atomic_write_text`).

    ``keep_if_same``: leave an identical file untouched (its mtime too, which fingerprints of
    downstream steps, like ingest's "up to date", rely on).
    """
    durable.atomic_write_text(path, text, keep_if_same)
