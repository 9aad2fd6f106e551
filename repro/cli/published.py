"""`repro published`."""

from __future__ import annotations

from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import app, format_option
from repro.runs.analysis import published


@app.command("published")
def published_cmd(
    setting: Annotated[
        str | None, typer.Option("--setting", "-s", metavar="NAME", help="Only this setting.")
    ] = None,
    method: Annotated[
        str | None, typer.Option("--method", "-m", metavar="NAME", help="Only this method.")
    ] = None,
    fmt: Annotated[str, format_option("table", "csv", "json")] = "table",
) -> None:
    """The paper's published scores (seed README tables), with known errata flagged."""
    rows = published.select(published.load(), setting, method)
    if fmt == "json":
        render.print_json([r.as_dict() for r in rows])
        return
    columns = [*published.ID_COLUMNS, *published.columns()]
    if fmt == "csv":
        render.print_csv(
            [*columns, "errata"],
            [
                [
                    *(getattr(r, c) for c in published.ID_COLUMNS),
                    *(r.text[m] for m in published.columns()),
                    ";".join(e["cell"] for e in r.errata),
                ]
                for r in rows
            ],
        )
        return
    # Table: leave out columns that are empty for every selected row.
    metrics = [m for m in published.columns() if any(r.text[m] for r in rows)]
    body = []
    for r in rows:
        flagged = {e["cell"] for e in r.errata}
        cells = [r.text[m] + ("*" if m in flagged else "") for m in metrics]
        model_id = r.model_id + ("*" if "model_id" in flagged else "")
        body.append((r.table, r.setting, r.method, model_id, *cells))
    render.print_table(
        render.table(
            ["table", "setting", "method", "model", *(published.column_titles()[m] for m in metrics)],
            body,
            title=f"Published scores ({len(rows)} rows)",
            caption="* known erratum: see results/published/errata.yaml or --format json",
        )
    )
