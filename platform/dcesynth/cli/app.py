"""`dcectl`: the command line of dcesynth. Thin: each command parses, calls the library, reports.

Heavy libraries (numpy, torch, ray) are imported inside the commands, so `dcectl --help` is fast.
"""

from __future__ import annotations

import logging

import typer

from dcesynth.cli import (
    bench,
    calibrate,
    challenge,
    cluster,
    conspicuity,
    dataset,
    demo,
    errors,
    evaluate,
    ingest,
    phantom,
    predict,
    segment,
    study,
    submit,
    sweep,
    train,
    trust,
    ui,
    weights,
)

app = typer.Typer(
    name="dcectl",
    help="Virtual contrast enhancement for breast MRI: phantom cohorts, ingest, training, sweeps.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _options(
    verbose: bool = typer.Option(
        False, "--verbose", help="Show the traceback of errors of the machine (full disk, I/O)."
    ),
) -> None:
    """Virtual contrast enhancement for breast MRI: phantom cohorts, ingest, training, sweeps."""
    if verbose:
        errors.VERBOSE["on"] = True


app.command("phantom")(phantom.phantom)
app.command("calibrate")(calibrate.calibrate)
app.command("ingest")(ingest.ingest)
app.add_typer(dataset.app, name="dataset")
app.command("train")(train.train)
app.command("sweep")(sweep.sweep)
app.command("segment")(segment.segment)
app.command("select")(evaluate.select)
app.command("synthesize")(evaluate.synthesize)
app.command("evaluate")(evaluate.evaluate)
app.command("trust")(trust.trust)
app.command("export")(predict.export)
app.add_typer(predict.model_app, name="model")
app.command("predict")(predict.predict)
app.add_typer(weights.app, name="weights")
app.command("demo")(demo.demo)
app.command("ui")(ui.ui)
app.command("study")(study.study)
app.command("conspicuity")(conspicuity.conspicuity)
app.add_typer(bench.app, name="bench")
app.add_typer(cluster.app, name="cluster")
app.add_typer(challenge.app, name="challenge")
app.command("submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    submit.submit
)
app.command("jobs")(submit.jobs)


def main() -> None:
    from dcesynth.progress import interactive

    if interactive():
        from rich.logging import RichHandler

        logging.basicConfig(
            level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)]
        )
    else:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
