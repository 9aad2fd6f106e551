"""What finished runs hold: `repro compare` (reproduced scores against the published tables, or
training curves against a published history) and `repro verify` (a run against its manifest)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from repro import userpaths
from repro.cli import render, sweepgrid
from repro.cli.common import BenchPathOpt, app, format_option, load_bench_paths, path_argument, path_option
from repro.errors import ReproError, UsageError


@app.command("compare")
def compare_cmd(
    results_dir: Annotated[
        Path,
        path_argument("dir", "Folder with repro run results (with --curves: one run or train directory)."),
    ],
    against: Annotated[
        str, typer.Option("--against", metavar="published", help="What to compare with: the paper's tables.")
    ] = "published",
    tolerance: Annotated[
        list[str] | None,
        typer.Option(
            "--tolerance", metavar="METRIC=VALUE", help="Allowed difference, e.g. ah=2.0 (repeatable)."
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        path_option(
            "--plot",
            role="output-file",
            metavar="FILE|DIR",
            help="Write a plot (png, svg, pdf): published vs reproduced; a folder gets compare.png.",
            suffixes=userpaths.IMAGE_SUFFIXES,
            name_in_dir="compare.png",
        ),
    ] = None,
    show_all: Annotated[
        bool,
        typer.Option(
            "--all", help="Also list every published cell without a run (default: reproduced cells only)."
        ),
    ] = False,
    only_reproduced: Annotated[
        bool, typer.Option("--only-reproduced", hidden=True, help="The default; kept for old scripts.")
    ] = False,
    fail_outside: Annotated[
        bool,
        typer.Option(
            "--fail-outside-tolerance", help="Exit 1 when any reproduced cell is outside tolerance."
        ),
    ] = False,
    curves: Annotated[
        Path | None,
        path_option(
            "--curves", role="file", help="Published training history (W&B CSV export or step,metric CSV)."
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric", metavar="LIST", help="With --curves: e.g. rewards/margins,rewards/accuracies,loss"
        ),
    ] = None,
    curve_tolerance: Annotated[
        str | None,
        typer.Option("--curve-tolerance", help="X or METRIC=X,... (default: 10% of the published span)."),
    ] = None,
    align: Annotated[
        str, typer.Option("--align", metavar="auto|step|epoch", help="With --curves: how runs line up.")
    ] = "auto",
    curve_run: Annotated[
        str | None,
        typer.Option("--curve-run", metavar="NAME", help="The W&B run, when the CSV holds several."),
    ] = None,
    bench_path: BenchPathOpt = None,
    fmt: Annotated[
        str,
        format_option("table", "markdown", "csv", "json"),
    ] = "table",
) -> None:
    """Diff every reproduced score against the published tables (missing cells listed as missing),
    or with --curves a run's training curves against a published history."""
    load_bench_paths(bench_path)  # your own benchmarks' metrics: their tolerances and titles
    from repro.runs.analysis import compare

    if curves is not None:
        from repro.cli import curves as curve_cli

        curve_cli.show(
            results_dir,
            curves,
            metrics=metric,
            run_name=curve_run,
            tolerance=curve_tolerance,
            align=align,
            plot=plot,
            fail_outside=fail_outside,
            fmt=fmt,
        )
        return
    curve_only = {"--metric": metric, "--curve-tolerance": curve_tolerance, "--curve-run": curve_run,
                  "--align": None if align == "auto" else align}  # fmt: skip
    if given := [flag for flag, value in curve_only.items() if value is not None]:
        raise UsageError(f"{', '.join(given)}: only with --curves (a run's training curves)")
    if against != "published":
        from repro.errors import unknown

        raise unknown("--against target", against, ["published"])
    comparison = compare.compare(results_dir, compare.parse_tolerances(tolerance or []))
    if not any(r.runs for r in comparison.rows):
        for path, reason in comparison.skipped:
            render.warn(f"skipped {path}: {reason}")
        raise ReproError(
            f"no runs found under {results_dir}"
            + (f" ({len(comparison.skipped)} result files skipped, see above)" if comparison.skipped else "")
        )
    rows = [r for r in comparison.rows if r.runs or show_all]
    dicts = [r.as_dict() for r in rows]
    if plot:
        compare.plot(comparison, plot)
    columns = [
        "setting", "method", "variant", "metric", "published", "band", "reproduced_mean", "reproduced_std",
        "runs", "delta", "status", "p_value", "erratum", "judge_note",
    ]  # fmt: skip
    sweeps = sweepgrid.collect(results_dir, plot)  # swept settings: grids, heat maps with --plot
    if fmt == "json":
        render.print_json(
            {
                "rows": dicts,
                "skipped": [{"path": p, "reason": r} for p, r in comparison.skipped],
                "unverified": [{"path": p, "reason": r} for p, r in comparison.unverified],
                "sweeps": [sweep.as_dict() for sweep in sweeps],
            }
        )
    elif fmt in ("csv", "markdown"):
        flat = [{**d, "band": f"{d['band'][0]:g}-{d['band'][1]:g}" if d["band"] else None} for d in dicts]
        writer = render.print_csv if fmt == "csv" else render.print_markdown
        writer(columns, [[d[c] for c in columns] for d in flat])
    else:
        render.print_table(_table(comparison, rows, show_all))
    if fmt == "table":
        for d in dicts:
            if d["judge_note"]:
                title = compare.metric_titles()[d["metric"]]
                render.warn(f"{d['setting']} {d['method']} {title}: {d['judge_note']}")
    if fmt in ("table", "markdown"):
        sweepgrid.print_all(sweeps, fmt)
    for path, reason in comparison.skipped:
        render.warn(f"skipped {path}: {reason}")
    for path, reason in comparison.unverified:
        render.warn(f"unverified {path}: {reason}")
    if fail_outside and comparison.outside():
        raise ReproError(f"{len(comparison.outside())} reproduced cells are outside tolerance")
    if plot:
        sys.stderr.write(f"wrote {plot}\n")


@app.command("verify")
def verify_cmd(
    run_dir: Annotated[Path, path_argument("dir", "A finished run: results/SETTING/METHOD/RUN-ID.")],
) -> None:
    """Re-hash a finished run's files against its manifest; one line per file that differs."""
    from repro.runs.results import verify

    found = verify.verify(run_dir)
    err = render.console(stderr=True)
    for line in found.problems + [f"note: {n}" for n in found.notes]:
        err.print(line, markup=False, highlight=False)
    print(f"manifest.json sha256 {found.manifest_sha256}")
    if found.problems:
        raise ReproError(f"{len(found.problems)} of {found.checked} recorded files differ from the manifest")
    print(f"all {found.checked} files match the manifest")


def _table(comparison, rows: list, show_all: bool):
    """The comparison as a table: one line per shown cell, the counts in its caption."""
    from repro.runs.analysis import compare

    body = []
    for r in rows:
        published = (
            render.number(r.published)
            if r.published is not None
            else (f"band {r.band[0]:g}-{r.band[1]:g}" if r.band else "")
        )
        body.append(
            (
                r.setting,
                r.method,
                r.variant or "recipe",
                compare.metric_titles()[r.metric],
                published + ("*" if r.erratum else ""),
                ("" if r.mean is None else f"{r.mean:.2f}") + ("†" if r.as_dict()["judge_note"] else ""),
                "" if r.spread is None else f"{r.spread:.2f}",
                str(len(r.runs)),
                "" if r.delta is None else f"{r.delta:+.2f}",
                r.status,
            )
        )
    counts = {s: sum(r.status == s for r in comparison.rows) for s in ("within", "outside", "missing")}
    hidden = "" if show_all else " (--all lists them)"
    caption = (
        f"{counts['within']} within, {counts['outside']} outside, {counts['missing']} published cells "
        f"without a run{hidden}; * erratum; runs are averaged only over seeds of one configuration"
    )
    if any(r.as_dict()["judge_note"] for r in rows):
        caption += "; † not judged by the published judge (below)"
    columns = ["setting", "method", "config", "metric", "published", "reproduced", "std", "runs", "delta",
               "status"]  # fmt: skip
    return render.table(columns, body, title="Reproduced vs published", caption=caption)
