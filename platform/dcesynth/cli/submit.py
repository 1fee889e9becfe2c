"""`dcectl submit STAGE [ARGS…]` (a named Ray job) and `dcectl jobs` (dcesynth's jobs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors

ADDRESS = typer.Option(help="The cluster's dashboard/job address (e.g. http://127.0.0.1:8265).")


def submit(
    ctx: typer.Context,
    stage: Annotated[str, typer.Argument(help="ingest, train, sweep, evaluate, segment, demo, …")],
    address: Annotated[str, ADDRESS] = "http://127.0.0.1:8265",
    name: Annotated[str | None, typer.Option(help="Job name (default: stage-firstarg).")] = None,
    gpus: Annotated[float, typer.Option(help="GPUs for the job's driver.")] = 0,
    cpus: Annotated[float | None, typer.Option(help="CPUs for the job's driver.")] = None,
    working_dir: Annotated[Path, typer.Option(help="The checkout to ship.")] = Path("."),
    wait: Annotated[bool, typer.Option(help="Follow the job's log until it ends.")] = False,
) -> None:
    """Run `dcectl STAGE ARGS…` on a Ray cluster as a named job; every argument after STAGE
    that is not one of the options here goes to the stage (e.g. `--resume DIR`)."""
    from dcesynth.deploy.submit import submit as run_submit

    with user_errors():
        job = run_submit(address, stage, list(ctx.args), name, gpus, cpus, working_dir)
    typer.echo(f"submitted {job.submission_id} (job_name {job.name}): {job.entrypoint}")
    typer.echo(f"  follow: ray job logs {job.submission_id} --address {address} --follow")
    if wait:
        _follow(address, job.submission_id)


def _follow(address: str, submission_id: str) -> None:
    import asyncio

    from ray.job_submission import JobStatus, JobSubmissionClient

    from dcesynth.cluster import auth_token

    token = auth_token()
    client = JobSubmissionClient(
        address, headers={"Authorization": f"Bearer {token}"} if token else None
    )

    async def tail() -> None:
        async for lines in client.tail_job_logs(submission_id):
            typer.echo(lines, nl=False)

    asyncio.run(tail())
    status = client.get_job_status(submission_id)
    typer.echo(f"{submission_id}: {status.value}")
    if status != JobStatus.SUCCEEDED:
        raise typer.Exit(code=1)


def jobs(address: Annotated[str, ADDRESS] = "http://127.0.0.1:8265") -> None:
    """dcesynth's jobs on the cluster: submission id, name, stage, status (newest first)."""
    from rich.console import Console
    from rich.table import Table

    from dcesynth.deploy.submit import list_jobs

    table = Table(title=f"jobs on {address}")
    for col in ("submission id", "name", "stage", "status"):
        table.add_column(col)
    for j in list_jobs(address):
        table.add_row(j["submission_id"] or "", j["name"], j["stage"], j["status"])
    Console(width=160).print(table)
