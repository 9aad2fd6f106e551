"""Shared pieces of the CLI: the Typer apps and option types."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="repro",
    help="Reproduce SimPO, DPO and seven baselines on the paper's six settings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
env_app = typer.Typer(help="Check, freeze and diff the software environment.", no_args_is_help=True)
data_app = typer.Typer(help="See exactly what the trainer consumes.", no_args_is_help=True)


@app.callback()
def _global_options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show library logs and the logged training metrics.")
    ] = False,
) -> None:
    """Reproduce SimPO, DPO and seven baselines on the paper's six settings."""
    import logging

    from repro.cli import render

    render.VERBOSE = verbose
    render.TERMINAL_LOG.setLevel(logging.INFO if verbose else logging.WARNING)


app.add_typer(env_app, name="env")
app.add_typer(data_app, name="data")

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output format.")]
DatasetOpt = Annotated[
    str | None,
    typer.Option("--dataset", help="Train on this dataset (hub id or directory) instead of the setting's."),
]
ReportToOpt = Annotated[
    str | None,
    typer.Option("--report-to", help="Trackers: wandb, tensorboard or none (default: the recipe's; none)."),
]
PaddingFreeOpt = Annotated[
    bool | None,
    typer.Option(
        "--padding-free/--padded", help="Pack each micro-batch into one row (default: the setting's)."
    ),
]
