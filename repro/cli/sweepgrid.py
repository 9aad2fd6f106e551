"""Sweep grids in `repro compare`: one table per swept setting x method, heat maps with --plot."""

from __future__ import annotations

from pathlib import Path

from repro.cli import render
from repro.runs.analysis import grid


def collect(results_dir: Path, plot: Path | None) -> list:
    """The sweeps under `results_dir`; with --plot, each one's heat maps beside the plot."""
    sweeps = grid.sweeps(results_dir)
    if plot is not None:
        for sweep in sweeps:
            for metric in sweep.metrics:
                path = plot.with_name(f"{plot.stem}-grid-{sweep.setting}-{sweep.method}-{metric}.png")
                grid.heatmap(sweep, metric, path)
                render.console(stderr=True).print(f"wrote {path}", markup=False, highlight=False)
    return sweeps


def print_all(sweeps: list, fmt: str) -> None:
    for sweep in sweeps:
        _print(sweep, fmt)


def _print(sweep, fmt: str) -> None:
    metrics = sweep.metrics
    best = {m: sweep.best(m) for m in metrics}
    columns = [grid.AXES[a] for a in sweep.axes] + [grid.METRICS[m] for m in metrics]
    rows = []
    for point in sweep.points:
        cells = [f"{point.values[a]:g}" if a in point.values else "" for a in sweep.axes]
        for m in metrics:
            score = point.score(m)
            cells.append("" if score is None else f"{score:.2f}" + (" *" if point is best[m] else ""))
        rows.append(cells)
    notes = []
    for item in sweep.summary():
        if item["best"] is None:
            continue
        where = " ".join(f"{grid.AXES[a]}={item['best'][a]:g}" for a in sweep.axes if a in item["best"])
        text = f"best {grid.METRICS[item['metric']]}: {item['score']:.2f} at {where}"
        if item["band"]:
            text += f" (reference band {item['band'][0]:g}-{item['band'][1]:g})"
        elif item["published"] is not None:
            text += f" vs published {item['published']:.2f} ({item['delta']:+.2f})"
        notes.append(text)
    for run, why in sweep.left_out:
        notes.append(f"not on the grid: {Path(run).name} ({why})")
    title = f"sweep {sweep.setting} x {sweep.method}: {len(sweep.points)} points (* best)"
    if fmt == "markdown":
        print(f"\n**{title}**\n")
        render.print_markdown(columns, rows)
        for note in notes:
            print(f"- {note}")
        return
    render.print_table(render.table(columns, rows, title=title, caption="; ".join(notes)))
