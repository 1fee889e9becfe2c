"""Conditional parameters of a search space: a parameter that applies only when another one
took a given value (``when: {model.family: rectified_flow}``), so that one sweep can search
two generator families, each with its own settings.

Two ways to sample, one meaning. Optuna asks define-by-run (:class:`DefineByRun`): the
conditioning parameters first, then only the parameters whose condition holds, so TPE models
each parameter on the trials that had it. Tune's random searcher samples every parameter and
:func:`active` drops those whose condition fails before a trial sees them. Either way a trial's
parameters are exactly its active ones.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from typing import Any, Protocol


class _Conditional(Protocol):
    """What this module reads of a :class:`dcesynth.tuning.space.Parameter`."""

    distribution: str
    low: float | None
    high: float | None
    values: list[Any] | None
    when: dict[str, Any] | None


_MISSING = object()


def tune_value(v: Any) -> Any:
    """A choice as Tune and Optuna hold (and Tune's live table shows) it: scalars as they are,
    lists and mappings as their JSON text — Optuna's categorical distributions take scalars.

    Args:
        v: one of a ``choice`` or ``grid`` parameter's values.
    """
    return v if isinstance(v, str | int | float | bool) or v is None else json.dumps(v)


def is_active(p: _Conditional, values: Mapping[str, Any]) -> bool:
    """Whether ``p`` applies to a trial with these (decoded) parameter values.

    Args:
        p: the parameter.
        values: the trial's values of (at least) the parameters ``p.when`` names.
    """
    return all(values.get(k, _MISSING) == v for k, v in (p.when or {}).items())


def active(parameters: Mapping[str, _Conditional], values: Mapping[str, Any]) -> dict[str, Any]:
    """The values of the parameters that apply to this trial, in the file's order.

    Args:
        parameters: the search space's parameters.
        values: sampled values; may hold inactive parameters (Tune's random searcher samples
            all of them) and may lack them (Optuna never asks for them).
    """
    return {k: values[k] for k, p in parameters.items() if k in values and is_active(p, values)}


def check_conditions(parameters: Mapping[str, _Conditional], searcher: str) -> None:
    """Every ``when`` names another searched ``choice`` parameter and one of its values.

    Args:
        parameters: the search space's parameters.
        searcher: the searcher's type (``grid`` cannot skip a parameter, so it refuses them).

    Raises:
        ValueError: naming the parameter, the condition's key and what is valid there.
    """
    choices = [k for k, p in parameters.items() if p.distribution == "choice" and not p.when]
    for key, p in parameters.items():
        if not p.when:
            continue
        if p.distribution == "grid" or searcher == "grid":
            # a grid enumerates every parameter: skipped ones would repeat the same trials
            raise ValueError(
                f"parameters.{key}: a conditional parameter (`when`) needs `choice`, `uniform` "
                "or `loguniform` and searcher optuna or random (a grid cannot skip it)"
            )
        for ck, cv in p.when.items():
            if ck not in choices:
                why = (
                    ""
                    if ck not in parameters
                    else (
                        " (conditions nest one level: it must not have a `when` itself)"
                        if parameters[ck].when
                        else f" (it is `{parameters[ck].distribution}`)"
                    )
                )
                raise ValueError(
                    f"parameters.{key}: `when` key `{ck}` is not a searched `choice` "
                    f"parameter{why}; valid keys: {choices or '(none in this file)'}"
                )
            valid = parameters[ck].values or []
            if cv not in valid:
                raise ValueError(
                    f"parameters.{key}: `when` value {cv!r} is not one of `{ck}`'s values; "
                    f"valid values: {valid}"
                )


def combinations(parameters: Mapping[str, _Conditional]) -> list[dict[str, Any]]:
    """Every combination of the conditioning parameters' values (one empty one if none).

    Args:
        parameters: the search space's parameters (conditions already checked).
    """
    keys = list(dict.fromkeys(k for p in parameters.values() for k in (p.when or {})))
    grids = [parameters[k].values or [] for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grids)]


def probes(
    parameters: Mapping[str, _Conditional], combo: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Parameter values for trials of one combination that together visit every bound and
    choice of every parameter active there (to validate them before a trial starts).

    A value between ``low`` and ``high`` is probed too: a uniform range over an integer setting
    samples fractions, which fail only then.

    Args:
        parameters: the search space's parameters.
        combo: the conditioning parameters' values (from :func:`combinations`).
    """
    candidates: dict[str, list[Any]] = {}
    for k, p in parameters.items():
        if k in combo:
            candidates[k] = [combo[k]]
        elif is_active(p, combo):
            if p.values is not None:
                candidates[k] = list(p.values)
            else:
                lo, hi = float(p.low), float(p.high)  # type: ignore[arg-type]
                mid = (
                    lo * (hi / lo) ** 0.37
                    if p.distribution == "loguniform"
                    else lo + 0.37 * (hi - lo)
                )
                candidates[k] = [lo, mid, hi]
    first = {k: v[0] for k, v in candidates.items()}
    yield first
    for k, vs in candidates.items():
        for v in vs[1:]:
            yield {**first, k: v}


class DefineByRun:
    """Optuna's define-by-run search space for a space with conditional parameters.

    A module-level class holding plain data, so Tune can pickle it with the searcher's state
    (a resumed sweep restores it).

    Args:
        parameters: the space's parameters as plain data (``Parameter.model_dump()``).
    """

    def __init__(self, parameters: dict[str, dict[str, Any]]) -> None:
        self.parameters = parameters

    def __call__(self, trial: Any) -> None:
        """Ask ``trial`` (an ``optuna.Trial``) for the parameters this trial has."""
        from types import SimpleNamespace

        params = {k: SimpleNamespace(**v) for k, v in self.parameters.items()}
        decoded: dict[str, Any] = {}
        # unconditional parameters first: they decide which conditional ones apply
        order = sorted(params, key=lambda k: bool(params[k].when))
        for key in order:
            p = params[key]
            if not is_active(p, decoded):
                continue
            if p.distribution in ("uniform", "loguniform"):
                decoded[key] = trial.suggest_float(
                    key, p.low, p.high, log=p.distribution == "loguniform"
                )
            else:
                shown = trial.suggest_categorical(key, [tune_value(v) for v in p.values])
                decoded[key] = next(v for v in p.values if tune_value(v) == shown)
