"""`repro diagnose` (why a number differs from the published one) and `repro report` (one page
to attach to an issue). The logic lives in repro.runs.analysis.diagnosis and repro.runs.analysis.report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import app, format_option, path_argument, path_option
from repro.errors import ReproError, UsageError
from repro.runs.analysis import diagnosis, report


@app.command("diagnose")
def diagnose_cmd(
    run_dir: Annotated[
        Path | None,
        path_argument(
            "dir", "A run folder, finished or partial (results/SETTING/METHOD/ID).", usage_error=True
        ),
    ] = None,
    outputs: Annotated[
        Path | None,
        path_option(
            "--outputs",
            role="file",
            usage_error=True,
            help="Results made elsewhere: an alpaca_eval model_outputs.json.",
        ),
    ] = None,
    setting: Annotated[
        str | None,
        typer.Option("--setting", metavar="SETTING", help="With --outputs: the setting they reproduce."),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option("--method", "-m", metavar="NAME", help="With --outputs: the method they reproduce."),
    ] = None,
    annotations: Annotated[
        Path | None,
        path_option(
            "--annotations",
            role="file",
            usage_error=True,
            help="With --outputs: alpaca_eval annotations.json.",
        ),
    ] = None,
    leaderboard: Annotated[
        Path | None,
        path_option(
            "--leaderboard",
            role="file",
            usage_error=True,
            help="With --outputs: an alpaca_eval leaderboard CSV.",
        ),
    ] = None,
    curves: Annotated[
        Path | None,
        path_option(
            "--curves",
            role="file",
            usage_error=True,
            help="A released run's training curves (W&B export or step,metric CSV).",
        ),
    ] = None,
    fmt: Annotated[str, format_option("text", "json")] = "text",
) -> None:
    """Why a reproduction misses the published number: recipe, environment, tokenization, training,
    generation and judging, each ok / differs / unknown with its evidence, then the likely causes.
    Exit 0 when nothing differs, 1 when something does, 2 on bad input."""
    if (run_dir is None) == (outputs is None):
        which = "not both" if run_dir is not None else "one is needed"
        raise UsageError(f"give a run folder or --outputs FILE (with --setting and --method), {which}")
    # exit 1 means "something differs": every input problem is a usage error (exit 2)
    try:
        if outputs is not None:
            if not setting or not method:
                raise UsageError(
                    "--outputs needs --setting and --method (which published number it reproduces)"
                )
            result = diagnosis.outputs(
                outputs, setting=setting, method=method, annotations=annotations, leaderboard=leaderboard
            )
        else:
            if setting or method or annotations or leaderboard:
                raise UsageError("--setting, --method, --annotations and --leaderboard go with --outputs")
            result = diagnosis.run(run_dir, curves=curves)
    except UsageError:
        raise
    except ReproError as exc:
        raise UsageError(str(exc)) from None
    if fmt == "json":
        render.print_json(result.as_dict())
    else:
        for line in result.as_text():
            print(line)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@app.command("report")
def report_cmd(
    results_dir: Annotated[
        Path, path_argument("dir", "A results folder (runs under SETTING/METHOD/RUN-ID).")
    ],
    output: Annotated[
        Path | None,
        path_option("--output", "-o", role="output-file", help="Write the report here (default: stdout)."),
    ] = None,
    fmt: Annotated[str, format_option("html", "markdown")] = "html",
) -> None:
    """One self-contained page for a results folder: the comparison with the published tables,
    the plots, and per run its provenance and diagnosis (HTML, or Markdown for a GitHub issue)."""
    if fmt == "html" and output is None:
        raise UsageError("an HTML report needs -o FILE (Markdown goes to stdout without it)")
    suffixes = {"html": (".html", ".htm"), "markdown": (".md", ".markdown")}
    if output is not None and output.suffix.lower() not in suffixes[fmt]:
        raise UsageError(f"-o {output}: the {fmt} report goes to a {' or '.join(suffixes[fmt])} file")
    text = report.html(results_dir) if fmt == "html" else report.markdown(results_dir)
    if output is None:
        print(text, end="")
        return
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}")
