"""The ``crackscan`` command line: thin wrappers that parse, call the library and print."""

from __future__ import annotations

import typer

from crackscan import __version__
from crackscan.cli import data as data_cli
from crackscan.cli import train as train_cli
from crackscan.cli.bench import bench as bench_cmd
from crackscan.cli.calibrate import calibrate as calibrate_cmd
from crackscan.cli.evaluate import evaluate as evaluate_cmd
from crackscan.cli.export import export as export_cmd
from crackscan.cli.inspect import inspect as inspect_cmd
from crackscan.cli.measure import measure as measure_cmd
from crackscan.cli.models import models as models_cmd
from crackscan.cli.predict import predict as predict_cmd
from crackscan.cli.serve import serve as serve_cmd

app = typer.Typer(
    name="crackscan",
    help="Find, outline and measure cracks and scratches in photos.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cli.app, name="data")
app.command("evaluate")(evaluate_cmd)
app.command("calibrate")(calibrate_cmd)
app.command("predict")(predict_cmd)
app.add_typer(train_cli.app, name="train")
app.command("measure")(measure_cmd)
app.command("inspect")(inspect_cmd)
app.command("export")(export_cmd)
app.command("bench")(bench_cmd)
app.command("serve")(serve_cmd)
app.command("models")(models_cmd)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crackscan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Find, outline and measure cracks and scratches in photos."""


def main() -> None:
    app()
