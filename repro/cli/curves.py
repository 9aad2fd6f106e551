"""`repro compare RUN_DIR --curves PUBLISHED.csv`: a run's training curves against a published
history (the comparison itself is repro.runs.analysis.curves; `compare` in cli/run_results.py
delegates here)."""

from __future__ import annotations

from pathlib import Path

from repro.cli import render
from repro.errors import ReproError
from repro.runs.analysis import curves


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def show(
    run_dir: Path,
    published: Path,
    *,
    metrics: str | None,
    run_name: str | None,
    tolerance: str | None,
    align: str,
    plot: Path | None,
    fail_outside: bool,
    fmt: str,
) -> None:
    render.check_format(fmt, ("table", "json", "csv"))
    run = curves.read_run(run_dir)
    history = curves.read_published(published, run_name)
    wanted = [m for m in (metrics or "").split(",") if m.strip()] or None
    report = curves.compare(run, history, wanted, tolerance=tolerance, align=align)
    columns = ("metric", "points", "max_abs_deviation", "mean_abs_deviation", "tolerance", "status")
    if fmt == "json":
        render.print_json(report.as_dict())
    elif fmt == "csv":
        render.print_csv(columns, [[getattr(m, c) for c in columns] for m in report.metrics])
    else:
        rows = [
            (
                m.metric,
                str(m.points),
                "" if m.x_range is None else f"{m.x_range[0]:.4g} .. {m.x_range[1]:.4g}",
                _number(m.max_abs_deviation),
                _number(m.mean_abs_deviation),
                _number(m.tolerance),
                m.status,
            )
            for m in report.metrics
        ]
        render.print_table(
            render.table(
                ["metric", "points", "overlap", "max |dev|", "mean |dev|", "tolerance", "status"],
                rows,
                title=f"{report.run} vs {report.published}",
                caption=f"aligned by {report.align_reason}",
            )
        )
    console = render.console(stderr=True)
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    if plot:
        curves.plot(report, run, history, plot)
        console.print(f"wrote {plot}", markup=False, highlight=False)
    if fail_outside and report.outside():
        names = ", ".join(m.metric for m in report.outside())
        raise ReproError(f"{len(report.outside())} curves are outside tolerance: {names}")
