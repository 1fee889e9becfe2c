"""Where ingest runs its cases: the engine chosen for each situation, and the local pool's
order, errors and cancellation (the byte-identity of both engines' datasets is in
test_pipeline.py)."""

from __future__ import annotations

import os

import pytest

from dcesynth.data.ingest import executor
from dcesynth.data.ingest.executor import LocalRunner, choose_engine


@pytest.mark.parametrize(
    ("engine", "address", "env", "expected"),
    [
        ("auto", None, None, "local"),  # nothing named, no Ray here: no Ray start-up to pay
        ("auto", "auto", None, "ray"),
        ("auto", None, "10.0.0.1:6379", "ray"),  # inside a Ray job
        ("ray", None, None, "ray"),
        ("local", None, None, "local"),
    ],
)
def test_engine_choice(monkeypatch, engine, address, env, expected) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if env:
        monkeypatch.setenv("RAY_ADDRESS", env)
    monkeypatch.setattr(executor, "ray_running_here", lambda: False)  # a fresh `dcectl ingest`
    assert choose_engine(engine, address) == expected


def test_auto_uses_a_ray_already_running_here(ray_session, monkeypatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert executor.ray_running_here()
    assert choose_engine("auto", None) == "ray"  # the demo's, the study's: no second start


@pytest.mark.parametrize(
    ("engine", "address", "message"),
    [
        ("spark", None, "engine 'spark': one of auto, ray, local"),
        ("local", "10.0.0.1:6379", "cannot use --address 10.0.0.1:6379"),
    ],
)
def test_bad_engine_is_refused(engine, address, message) -> None:
    with pytest.raises(ValueError, match=message):
        choose_engine(engine, address)


def _square(x: int) -> int:
    return x * x


def _fail(x: int) -> int:
    raise RuntimeError(f"case {x} broke")


def _pid(_: int) -> int:
    return os.getpid()


def test_local_runner_keeps_order_and_raises_a_tasks_error() -> None:
    run = LocalRunner(workers=2)
    try:
        assert run.engine == "local" and run.slots == 2
        handles = [run.submit(_square, i, name=f"t{i}") for i in range(7)]
        assert [run.result(h) for h in handles] == [i * i for i in range(7)]
        pids = {run.result(run.submit(_pid, i, name="pid")) for i in range(4)}
        assert os.getpid() not in pids  # other processes, not this one
        with pytest.raises(RuntimeError, match="case 3 broke"):
            run.result(run.submit(_fail, 3, name="bad"))
    finally:
        run.close()


def test_open_runner_gives_the_local_pool_without_a_cluster(monkeypatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(executor, "choose_engine", lambda engine, address: "local")
    run = executor.open_runner("auto", None, workers=1)
    try:
        assert isinstance(run, LocalRunner) and run.slots == 1
    finally:
        run.close()
