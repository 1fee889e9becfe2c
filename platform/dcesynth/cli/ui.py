"""`dcectl ui [ROOT]`: the MLflow UI on an output root's tracking store; and the tracking
options every tracked command shares (``--tracking-uri``, ``--no-tracking``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (wins over the config's tracking.uri and "
        "MLFLOW_TRACKING_URI; default: sqlite:///<output root>/mlflow.db).",
    ),
]
NoTracking = Annotated[
    bool, typer.Option("--no-tracking", help="Log nothing to MLflow (docs/tracking.md).")
]


def ui(
    root: Annotated[
        Path, typer.Argument(help="Output root holding mlflow.db (a runs folder, demo_out…).")
    ] = Path("demo_out"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    tracking_uri: TrackingUri = None,
    mlflow: Annotated[
        Path | None,
        typer.Option(
            help="An `mlflow` executable of the full package to serve the UI with (default: "
            "this environment's if it has the UI, else one installed once under "
            "~/.cache/dcesynth)."
        ),
    ] = None,
) -> None:
    """Open the MLflow UI on ROOT's tracking store (or say how to reach a tracking server)."""
    from dcesynth.tracking import ARTIFACTS_NAME, DB_NAME, default_uri

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri and uri.startswith(("http://", "https://")):
        typer.echo(
            f"tracking server: {uri} — open it in a browser. On a cluster it listens on the "
            "head's 127.0.0.1:5000 only: forward it first, `ray dashboard cluster.yaml --port "
            "5000 --remote-port 5000` or `kubectl port-forward pod/<head-pod> 5000:5000` "
            "(docs/tracking.md)."
        )
        return
    with user_errors():
        if uri:
            if not uri.startswith("sqlite:///"):
                raise ValueError(f"--tracking-uri {uri}: dcectl ui opens sqlite:/// or http(s)://")
            db = Path(uri[len("sqlite:///") :])
        else:
            db = Path(root).resolve() / DB_NAME
        if not db.is_file():
            raise ValueError(
                f"{db}: no MLflow store here; a tracked command writes <output root>/{DB_NAME} "
                "(train: the runs folder, sweep: its storage_path, demo: --out, study: its "
                "out); give that folder, or --tracking-uri"
            )
        cmd = [
            *mlflow_command(mlflow), "ui",
            "--backend-store-uri", uri or default_uri(db.parent),
            "--default-artifact-root", (db.parent / ARTIFACTS_NAME).as_uri(),
            "--host", "127.0.0.1", "--port", str(port),
            # one process: uvicorn's supervisor of several workers killed its only child as
            # unresponsive on a loaded 2-core machine (seen); one user needs no more
            "--workers", "1",
        ]  # fmt: skip
    typer.echo(f"MLflow UI on {db} at http://127.0.0.1:{port} (Ctrl-C stops it)")
    raise typer.Exit(serve(cmd))


def serve(cmd: list[str], grace_s: float = 10.0) -> int:
    """Run the UI server until it exits, or until Ctrl-C or SIGTERM reaches this process; then
    stop its whole process group. The server starts helper processes (a task queue's
    consumers) that outlived it when only the server itself was signalled (seen), so it runs
    in a session of its own and the group is ended: SIGTERM, then SIGKILL after ``grace_s``.

    Returns:
        The server's exit status (0 when stopped by a signal).
    """
    import signal
    import subprocess

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    # the handler and the try come first: a signal arriving just after the server has started
    # (a loaded machine may run the server's start-up before this process's next line) must
    # still end the server's group, not escape and leave the server running
    previous = signal.signal(signal.SIGTERM, interrupted)
    proc = None
    try:
        proc = subprocess.Popen(cmd, start_new_session=True)
        return proc.wait()
    except KeyboardInterrupt:
        if proc is not None:
            _end_group(proc, grace_s)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _end_group(proc, grace_s: float) -> None:
    """SIGTERM to the server's group; what is left of it after ``grace_s``: SIGKILL."""
    import contextlib
    import signal
    import time

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        proc.poll()  # reap the server, so that an exited server does not count as alive
        try:
            os.killpg(proc.pid, 0)  # anyone left in the group?
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _has_ui() -> bool:
    """Whether this environment's mlflow is the full package (its UI's built pages)."""
    import importlib.util

    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(
        (Path(d) / "server" / "js" / "build" / "index.html").is_file()
        for d in spec.submodule_search_locations
    )


def ui_env(version: str, home: Path | None = None) -> Path:
    """The folder of the environment that serves the MLflow UI of ``version``.

    Args:
        version: the mlflow-skinny version dcesynth logs with (the store's schema is its).
        home: where environments live (default: ``$XDG_CACHE_HOME`` or ``~/.cache``, then
            ``dcesynth``).
    """
    base = home or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dcesynth"
    return base / f"mlflow-ui-{version}"


def mlflow_command(executable: Path | None = None, home: Path | None = None) -> list[str]:
    """The command that runs ``mlflow`` with its UI.

    dcesynth logs with ``mlflow-skinny`` (client and SQLite store, no UI): the full ``mlflow``
    package pins pyarrow<26, which cannot hold our datasets (pyproject.toml). So the UI runs
    from an environment of its own with the full package of the same version — installed once,
    from the package index, and marked complete only when the install finished (a half-made
    one is rebuilt).

    Args:
        executable: an ``mlflow`` of the full package to use as is.
        home: see :func:`ui_env`.

    Raises:
        ValueError: ``executable`` does not exist, or the install failed (its output named).
    """
    import shutil
    import subprocess
    import sys
    from importlib.metadata import version

    if executable is not None:
        if not Path(executable).is_file():
            raise ValueError(f"--mlflow {executable}: no such file")
        return [str(executable)]
    if _has_ui():
        return [sys.executable, "-m", "mlflow"]
    ver = version("mlflow-skinny")
    env = ui_env(ver, home)
    done = env / ".complete"
    if not done.is_file():
        shutil.rmtree(env, ignore_errors=True)  # an install that stopped half-way
        env.parent.mkdir(parents=True, exist_ok=True)
        log_file = env.parent / f"mlflow-ui-{ver}.install.log"
        typer.echo(
            f"installing the MLflow UI (mlflow=={ver}) into {env}, once (~75 s here); "
            f"output in {log_file}"
        )
        with log_file.open("w") as out:
            steps = [
                [sys.executable, "-m", "venv", str(env)],
                [str(env / "bin" / "python"), "-m", "pip", "install", "-q", f"mlflow=={ver}"],
            ]
            for step in steps:
                if subprocess.call(step, stdout=out, stderr=subprocess.STDOUT) != 0:
                    raise ValueError(
                        f"installing the MLflow UI failed (see {log_file}); or give "
                        "--mlflow PATH to an mlflow of the full package"
                    )
        env.mkdir(exist_ok=True)  # venv made it; kept explicit for the marker's sake
        done.write_text(ver + "\n")
    return [str(env / "bin" / "mlflow")]
