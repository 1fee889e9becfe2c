"""`dcectl submit`: job names, refused stages and folders, before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcesynth.cli.app import app
from dcesynth.deploy.submit import job_name


@pytest.mark.parametrize(
    ("stage", "args", "name", "expected"),
    [
        ("sweep", ["search_spaces/gan.yaml"], None, "sweep-gan"),
        ("segment", ["--resume", "/shared/segmentation/study"], None, "segment"),
        ("demo", [], None, "demo"),
        ("train", ["x.yaml"], "my run/2", "my-run-2"),
    ],
)
def test_job_names(stage: str, args: list[str], name: str | None, expected: str) -> None:
    assert job_name(stage, args, name) == expected


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["submit", "bogus"], "unknown stage 'bogus'; allowed: phantom, ingest"),
        (["submit", "demo", "--working-dir", "/tmp"], "not a dcesynth checkout"),
        (["submit", "demo", "--name", "///"], "use letters, digits and -"),
    ],
)
def test_refused_before_submission(args: list[str], needle: str) -> None:
    # an address where nothing listens: the refusal must come before any request
    out = CliRunner().invoke(app, [*args, "--address", "http://127.0.0.1:9"])
    assert out.exit_code == 2 and needle in out.output, out.output


def test_extra_arguments_go_to_the_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    import dcesynth.deploy.submit as S

    seen = {}

    class FakeClient:
        def __init__(self, address, headers=None):
            seen["address"], seen["headers"] = address, headers

        def submit_job(self, **kw):
            seen.update(kw)
            return kw["submission_id"]

    monkeypatch.setattr("ray.job_submission.JobSubmissionClient", FakeClient)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t0k3n")
    out = CliRunner().invoke(
        app,
        [
            "submit",
            "segment",
            "--resume",
            "/shared/s",
            "--name",
            "seg",
            "--address",
            "http://head:8265",
        ],
    )
    assert out.exit_code == 0, out.output
    assert seen["entrypoint"] == "python -m dcesynth.cli.app segment --resume /shared/s"
    assert seen["metadata"] == {"job_name": "seg", "dcesynth_stage": "segment"}
    assert seen["submission_id"].startswith("seg-20") and seen["address"] == "http://head:8265"
    assert seen["headers"] == {"Authorization": "Bearer t0k3n"}
    env = seen["runtime_env"]
    assert env["env_vars"]["PYTHONPATH"] == "platform" and ".venv" in env["excludes"]
    assert Path(env["working_dir"]) == Path(S.__file__).resolve().parents[3]
