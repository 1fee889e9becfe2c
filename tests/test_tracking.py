"""MLflow tracking (dcesynth.tracking): the pure parts (params, URI precedence, warn-once,
rank-0 gating, the off switches), `dcectl train`'s real tracking path around a stand-in for
Ray Train (a store it logs to, a server that does not answer, --no-tracking), `dcectl ui`.
A sweep's nested runs, read back from its default SQLite store, are checked on the ASHA sweep
of tests/tuning/test_sweep_e2e.py (one sweep for both: a sweep costs ~1.5 min here).

The suite runs with DCESYNTH_TRACKING=off (tests/conftest.py); these tests turn it back on.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dcesynth import tracking as T
from dcesynth.cli.app import app
from dcesynth.tracking import TrackingConfig, flatten, resolve, track
from dcesynth.training.config import TrainConfig


@pytest.fixture
def tracking_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(T.OFF_ENV, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setitem(T._WARNED, "done", False)  # this test's first warning is shown


def _client(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(T.default_uri(root))


def _runs(root: Path) -> list:
    c = _client(root)
    exp = c.get_experiment_by_name("dcesynth")
    return c.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


# --- the pure parts ---------------------------------------------------------------------------


def test_params_are_flattened_dotted_and_cut_to_mlflows_limits() -> None:
    cfg = TrainConfig(model={"ngf": 8}, phases=(1, 2))
    p = flatten(cfg)
    assert p["model.ngf"] == "8" and p["loss.lambda_fm"] == "10.0" and p["phases"] == "[1, 2]"
    assert p["tracking.enabled"] == "True" and p["dataset"] == "None"
    long = flatten({"a": {"b c": "x" * 7000, "wéird:key": 1}})
    assert len(long["a.b c"]) == 6000 and long["a.b c"].endswith("…")
    assert long["a.w_ird_key"] == "1"  # characters MLflow refuses in a key become _


def test_uri_precedence_and_the_off_switches(tmp_path: Path) -> None:
    cfg = TrackingConfig(uri="sqlite:////cfg/m.db")
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    assert resolve(tmp_path, "http://cli:1", cfg, env=env).uri == "http://cli:1"
    assert resolve(tmp_path, None, cfg, env=env).uri == "sqlite:////cfg/m.db"
    assert resolve(tmp_path, None, None, env=env).uri == "http://127.0.0.1:5000"
    default = resolve(tmp_path, None, None, env={})
    assert default.uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert default.artifacts == (tmp_path.resolve() / "mlartifacts").as_uri()
    assert default.experiment == "dcesynth" and resolve(tmp_path, None, cfg, env={}).artifacts
    assert resolve(tmp_path, None, None, env=env).artifacts is None  # a server decides
    # --no-tracking, `tracking.enabled: false` and DCESYNTH_TRACKING=off each turn it off
    assert resolve(tmp_path, "http://cli:1", None, off=True, env={}) is None
    assert resolve(tmp_path, None, TrackingConfig(enabled=False), env={}) is None
    assert resolve(tmp_path, None, None, env={"DCESYNTH_TRACKING": "OFF"}) is None
    assert resolve(tmp_path, None, None, env={"DCESYNTH_TRACKING": "on"}) is not None
    with pytest.raises(ValueError, match="no --tracking-uri"):
        resolve(None, None, None, env={})


def test_a_tracking_failure_warns_once_per_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(T._WARNED, "done", False)
    with caplog.at_level(logging.DEBUG, logger="dcesynth.tracking"):
        T.warn_once("train a", ConnectionError("refused"))
        T.warn_once("train b", ConnectionError("refused again"))
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [lv for lv, _ in levels] == [logging.WARNING, logging.DEBUG]
    assert "train a" in levels[0][1] and "the run goes on" in levels[0][1]


def test_only_rank_zero_logs(tmp_path: Path, tracking_on, monkeypatch: pytest.MonkeyPatch) -> None:
    rank = {"r": 1}
    ctx = types.SimpleNamespace(get_world_rank=lambda: rank["r"])
    fake = types.SimpleNamespace(get_context=lambda: ctx)
    monkeypatch.setitem(sys.modules, "ray.train", fake)
    assert T.world_rank() == 1
    with track("train", "r", {"a": 1}, tmp_path) as t:
        assert not t.on
        t.metrics({"loss": 1.0}, step=1)
    assert not (tmp_path / "mlflow.db").exists()
    rank["r"] = 0
    assert T.world_rank() == 0
    monkeypatch.setitem(sys.modules, "ray.train", types.SimpleNamespace())  # no context: 0
    assert T.world_rank() == 0


def test_off_tracker_does_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(T.OFF_ENV, "off")
    with track("train", "r", {"a": 1}, tmp_path) as t:
        assert not t.on
        with t.child("trial", "x") as c:
            c.epoch({"epoch": 1, "loss_g": 1.0})
            assert not c.on
    assert list(tmp_path.iterdir()) == []


def test_help_and_an_untracked_command_do_not_import_mlflow(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from dcesynth.cli.app import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0\n"
        f"r = CliRunner().invoke(app, ['ui', {str(tmp_path)!r}])\n"
        "assert r.exit_code == 2, r.output\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- `dcectl train`'s tracking, around a stand-in for Ray Train -------------------------------


@pytest.fixture
def fake_training(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """`dcectl train` with the library's train() replaced by one that writes a run folder as
    training does and calls on_epoch per epoch: the command's tracking path, no Ray."""
    from dcesynth.training import run as run_module

    def fake(cfg, resume=False, address=None, on_epoch=None, **kw):
        run = Path(cfg.runs_dir) / cfg.name
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        rows = [{"epoch": e, "loss_g": 1.0 / e, "val_mae": 0.5 / e} for e in (1, 2, 3)]
        for r in rows:
            with (run / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(r) + "\n")
            if on_epoch:
                on_epoch(r)
        return run_module.TrainResult(run, 3, rows, [])

    monkeypatch.setattr(run_module, "train", fake)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({"name": "tiny", "runs_dir": str(tmp_path / "runs")}))
    return cfg


def test_train_logs_config_epochs_and_files(fake_training: Path, tmp_path: Path, tracking_on):
    out = CliRunner().invoke(app, ["train", str(fake_training), "epochs=3", "model.ngf=8"])
    assert out.exit_code == 0, out.output
    root = tmp_path / "runs"  # the run folder's parent holds the store
    (run,) = _runs(root)
    assert run.info.run_name == "tiny" and run.info.status == "FINISHED"
    assert run.data.params["model.ngf"] == "8" and run.data.params["epochs"] == "3"
    tags = run.data.tags
    assert tags["dcesynth.kind"] == "train" and tags["dcesynth.version"] and tags["ray.version"]
    assert len(tags.get("mlflow.source.git.commit", "0" * 40)) == 40
    hist = _client(root).get_metric_history(run.info.run_id, "loss_g")
    assert sorted((m.step, m.value) for m in hist) == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    arts = {a.path for a in _client(root).list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.jsonl"} <= arts
    assert (root / "mlartifacts").is_dir() and not (tmp_path / "mlruns").exists()


def test_unreachable_server_only_warns(
    fake_training: Path, tmp_path: Path, tracking_on, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="dcesynth.tracking"):
        out = CliRunner().invoke(
            app, ["train", str(fake_training), "--tracking-uri", f"http://127.0.0.1:{port}"]
        )
    assert out.exit_code == 0, out.output
    assert "3/" in out.output and (tmp_path / "runs" / "tiny" / "metrics.jsonl").is_file()
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and f"127.0.0.1:{port}" in warned[0].getMessage()
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "runs" / "mlflow.db").exists()


def test_no_tracking_option(fake_training: Path, tmp_path: Path, tracking_on) -> None:
    out = CliRunner().invoke(app, ["train", str(fake_training), "--no-tracking"])
    assert out.exit_code == 0, out.output
    assert not (tmp_path / "runs" / "mlflow.db").exists()


def test_ui_names_the_missing_store_or_the_server(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["ui", str(tmp_path)])
    assert out.exit_code == 2 and str(tmp_path / "mlflow.db") in out.output.replace("\n", "")
    out = CliRunner().invoke(app, ["ui", "--tracking-uri", "http://127.0.0.1:5000"])
    assert out.exit_code == 0 and "port-forward" in out.output


# --- a tiny sweep, read back from its store ---------------------------------------------------


def test_the_ui_runs_from_its_own_environment_installed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dcesynth has mlflow-skinny (no UI pages): the UI's full mlflow is installed once into
    its own environment, marked complete only after the install; a half-made one is rebuilt,
    a failed install names its log, and --mlflow is used as given."""
    import subprocess
    from importlib.metadata import version

    from dcesynth.cli import ui as U

    monkeypatch.setattr(U, "_has_ui", lambda: False)
    calls: list[list[str]] = []
    status = {"rc": 0}

    def fake_call(cmd, **kw):
        calls.append(cmd)
        return status["rc"]

    monkeypatch.setattr(subprocess, "call", fake_call)
    home = tmp_path / "cache"
    env = U.ui_env(version("mlflow-skinny"), home)
    (env / "half-made").mkdir(parents=True)  # an earlier install that stopped
    assert U.mlflow_command(home=home) == [str(env / "bin" / "mlflow")]
    assert [c[1:3] for c in calls] == [["-m", "venv"], ["-m", "pip"]]
    assert calls[1][-1].startswith("mlflow==") and not (env / "half-made").exists()
    assert (env / ".complete").is_file()
    calls.clear()
    U.mlflow_command(home=home)  # installed: nothing runs again
    assert calls == []
    status["rc"] = 1
    with pytest.raises(ValueError, match=r"install\.log"):
        U.mlflow_command(home=tmp_path / "other")
    assert not (U.ui_env("x", tmp_path / "other").parent / ".complete").exists()
    with pytest.raises(ValueError, match="no such file"):
        U.mlflow_command(tmp_path / "missing" / "mlflow")
    exe = tmp_path / "mlflow"
    exe.write_text("")
    assert U.mlflow_command(exe) == [str(exe)]


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_stopping_the_ui_ends_its_server_and_the_servers_helpers(tmp_path: Path, sig: str) -> None:
    """The MLflow server starts helper processes; stopping `dcectl ui` (Ctrl-C, or SIGTERM
    from a process manager) must not leave them behind (seen with a killed server)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pids = tmp_path / "pids"
    fake = tmp_path / "mlflow"  # a "server" that starts a helper and writes both pids
    fake.write_text(
        f"#!{sys.executable}\n"
        "import subprocess, sys, time, os\n"
        "h = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{h.pid}}')\n"
        "time.sleep(600)\n"
    )
    fake.chmod(0o755)
    (tmp_path / "mlflow.db").write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    # SIGINT as a terminal's Ctrl-C finds it: a test run started in the background (`make test
    # &`, CI runners) inherits SIGINT ignored, Python then installs no KeyboardInterrupt
    # handler, and the UI rightly ignores Ctrl-C — this timed out twice that way
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcesynth.cli.app", "ui", str(tmp_path), "--mlflow", str(fake),
         "--port", "5999"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (pids.is_file() and len(pids.read_text().split()) == 2):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    server, helper = (int(p) for p in pids.read_text().split())
    proc.send_signal(getattr(signal, sig))
    assert proc.wait(timeout=30) == 0

    def alive(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"  # a zombie has ended (its parent may not have reaped it yet)

    deadline = time.monotonic() + 15
    while (alive(server) or alive(helper)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(server) and not alive(helper)
