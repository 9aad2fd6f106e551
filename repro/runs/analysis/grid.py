"""Sweep results: the grid of a hyperparameter search as a table and a heat map, with the best
point per benchmark and how it compares with the published number.

A sweep is every complete run of one setting x method whose hyperparameters (learning rate,
beta, gamma/beta) differ. A point is one group of replicates, as `repro compare`'s table
groups them (repro.runs.results.replicates: the same key but the seed), so only seeds are averaged.
A run that differs from its recipe in anything but the swept hyperparameters (training cut by
--max-steps, another override, judge or engine) is not a point of the grid: it is listed in
`left_out` with what differs. The published number is the paper's cell for that setting x
method (the tiny setting: the middle of its reference band, with the band shown), which the
authors also picked from such a search.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import io
from repro.evaluation import benchmarks
from repro.runs.analysis import compare, plots, published
from repro.runs.results import replicates
from repro.runs.results.manifest import Manifest

AXES = {"learning_rate": "lr", "beta": "beta", "gamma_beta_ratio": "gamma/beta"}
# what a grid point may differ in from its recipe: the axes, and gamma (gamma/beta x beta)
ON_THE_GRID = {
    "learning_rate",
    "hyperparameters.beta",
    "hyperparameters.gamma_beta_ratio",
    "hyperparameters.gamma",
}
# the metrics compared with the paper, and the headline ones without a published value (MT-Bench)
METRICS = {m.key: m.title for _, m in benchmarks.metrics() if m.tolerance is not None or m.headline}


@dataclass
class Point:
    values: dict[str, float]
    scores: dict[str, list[float]] = field(default_factory=dict)  # metric -> one value per seed
    runs: int = 0  # replicates averaged into it

    def score(self, metric: str) -> float | None:
        runs = self.scores.get(metric)
        return statistics.fmean(runs) if runs else None


@dataclass
class Sweep:
    setting: str
    method: str
    axes: list[str]  # the hyperparameters that vary, in AXES order
    points: list[Point]
    published: dict[str, float] = field(default_factory=dict)
    bands: dict[str, tuple[float, float]] = field(default_factory=dict)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (run folder, what differs)

    @property
    def metrics(self) -> list[str]:
        return [m for m in METRICS if any(p.score(m) is not None for p in self.points)]

    def best(self, metric: str) -> Point | None:
        scored = [p for p in self.points if p.score(metric) is not None]
        return max(scored, key=lambda p: p.score(metric)) if scored else None

    def summary(self) -> list[dict[str, Any]]:
        """Per metric: the best point, its score, the published number and the difference."""
        out = []
        for metric in self.metrics:
            best = self.best(metric)
            score = best.score(metric) if best else None
            reference = self.published.get(metric)
            band = self.bands.get(metric)
            out.append(
                {
                    "metric": metric,
                    "best": best.values if best else None,
                    "score": score,
                    "published": reference,
                    "band": list(band) if band else None,
                    "delta": None if score is None or reference is None else score - reference,
                }
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "method": self.method,
            "axes": self.axes,
            "points": [
                {**p.values, **{m: p.score(m) for m in self.metrics}, "runs": p.runs} for p in self.points
            ],
            "best": self.summary(),
            "left_out": [{"run": run, "differs": why} for run, why in self.left_out],
        }


def _hyperparameters(config: dict[str, Any]) -> dict[str, float]:
    values = {"learning_rate": config.get("learning_rate"), **(config.get("hyperparameters") or {})}
    return {k: float(values[k]) for k in AXES if isinstance(values.get(k), (int, float))}


def off_the_grid(run: compare.Counted, *, against_recipe: bool = True) -> str | None:
    """What keeps a run off its sweep's grid (in compare's words), or None for a grid point.
    `against_recipe` False: only a truncated training does (the points of one pipeline share
    whatever sets them apart from the recipe: --gpus 1, --bench, ...)."""
    extent = run.extent
    other = {k: v for k, v in (run.variant or {}).items() if k not in ON_THE_GRID}
    if not against_recipe:
        other = {}
    if (extent is None or extent.full) and not other:
        return None
    return replicates.label(other, extent) or "not the recipe's training"


def sweeps(results_dir: Path, only: set[Path] | None = None) -> list[Sweep]:
    """Every setting x method under `results_dir` with two or more distinct grid points
    (`only`: just the runs in these folders, one pipeline's: its points are one sweep by
    construction, so what they all share against the recipe does not keep them off it)."""
    complete, _ = compare.collect(results_dir)
    groups: dict[tuple[str, str], dict[tuple, Point]] = {}
    left_out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for run in complete:
        if only is not None and run.path.parent.resolve() not in only:
            continue
        manifest = Manifest.read_or_none(run.path.parent)
        if manifest is None:
            continue  # a hand-made result: no configuration to place it on the grid
        if (why := off_the_grid(run, against_recipe=only is None)) is not None:
            left_out.setdefault((run.setting, run.method), []).append((str(run.path.parent), why))
            continue
        values = _hyperparameters(manifest.config or {})
        # replicates are one point (a result without a replicate key: its hyperparameters)
        key = (run.group,) if run.group else tuple(sorted(values.items()))
        point = groups.setdefault((run.setting, run.method), {}).setdefault(key, Point(values))
        point.runs += 1
        for metric in METRICS:
            if (value := run.result.metric(metric)) is not None:
                point.scores.setdefault(metric, []).append(value)
    table = published.load()
    bands = compare.reference_bands()
    out = []
    for (setting, method), points in sorted(groups.items()):
        if len(points) < 2:
            continue
        pts = sorted(points.values(), key=lambda p: tuple(p.values.get(a, 0.0) for a in AXES))
        varying = [a for a in AXES if len({p.values.get(a) for p in pts}) > 1]
        sweep = Sweep(setting, method, varying, pts, left_out=left_out.get((setting, method), []))
        for metric in METRICS:
            value = published.lookup(table, setting, method, metric)
            band = bands.get((setting, method, metric))
            if band:
                sweep.bands[metric] = band
                value = (band[0] + band[1]) / 2 if value is None else value
            if value is not None:
                sweep.published[metric] = value
        out.append(sweep)
    return out


def heatmap(sweep: Sweep, metric: str, path: Path) -> Path:
    """Score by learning rate (x) and beta (y), one panel per gamma/beta; the best point starred."""
    plt = plots._pyplot()
    gammas = sorted({p.values.get("gamma_beta_ratio") for p in sweep.points}, key=lambda g: (g is None, g))
    lrs = sorted({p.values.get("learning_rate") for p in sweep.points if "learning_rate" in p.values})
    betas = sorted({p.values.get("beta") for p in sweep.points if "beta" in p.values})
    lrs, betas = lrs or [None], betas or [None]
    best = sweep.best(metric)
    scores = [p.score(metric) for p in sweep.points if p.score(metric) is not None]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    size = (1.2 + 1.1 * len(lrs) * len(gammas), 1.6 + 0.6 * len(betas))
    fig, axes = plt.subplots(1, len(gammas), figsize=size, squeeze=False)
    image = None
    for panel, gamma in zip(axes[0], gammas, strict=True):
        grid = [[float("nan")] * len(lrs) for _ in betas]
        for p in sweep.points:
            if p.values.get("gamma_beta_ratio") != gamma or p.score(metric) is None:
                continue
            row, col = betas.index(p.values.get("beta")), lrs.index(p.values.get("learning_rate"))
            grid[row][col] = p.score(metric)
            star = "*" if p is best else ""
            panel.text(col, row, f"{p.score(metric):.1f}{star}", ha="center", va="center", fontsize=8)
        image = panel.imshow(grid, origin="lower", aspect="auto", cmap="viridis", vmin=low, vmax=high)
        panel.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs] if lrs != [None] else [""], fontsize=7)
        panel.set_yticks(
            range(len(betas)), [f"{v:g}" for v in betas] if betas != [None] else [""], fontsize=7
        )
        panel.set_xlabel("learning rate")
        panel.set_ylabel("beta")
        if gamma is not None:
            panel.set_title(f"gamma/beta {gamma:g}", fontsize=9)
    reference = sweep.published.get(metric)
    title = f"{sweep.setting} x {sweep.method}: {METRICS[metric]}, * best"
    if reference is not None and best is not None:
        title += f" ({best.score(metric):.2f} vs published {reference:.2f})"
    fig.suptitle(title, fontsize=9, y=1.04)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def write(sweep: Sweep, folder: Path) -> list[Path]:
    """The sweep's table (JSON) and one heat map per metric into `folder`."""
    name = f"grid-{sweep.setting}-{sweep.method}"
    io.write_json(folder / f"{name}.json", sweep.as_dict())
    return [folder / f"{name}.json"] + [heatmap(sweep, m, folder / f"{name}-{m}.png") for m in sweep.metrics]
