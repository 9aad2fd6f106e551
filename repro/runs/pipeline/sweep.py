"""The local sweep: one run per grid point, here, in sequence (the SLURM sweep is repro.runs.cluster.slurm).

`grid_of` picks the grid (a named grid of recipes/methods.yaml, or the command line's axes),
`configs` resolves each of its points into a run config, and `run_locally` plans or runs them,
one row per point: the point's values, then its plan (a dry run) or its headline scores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro.config.config_options import ConfigOptions
from repro.config.methods import SearchGrid, search_grid
from repro.config.runconfig import RunConfig
from repro.errors import UsageError
from repro.evaluation import benchmarks
from repro.evaluation.judge.spec import Judge
from repro.runs.pipeline import run
from repro.runs.results.result import Training

# A sweep this large is usually a typo in a grid (or a surprise bill): the CLI says so first.
WARN_POINTS = 100

# A fresh display per run, entered around it: what it gives is the run's progress callback, with
# an `echo` for lines (repro.cli.render.Bars).
Display = Callable[[], contextlib.AbstractContextManager[Any]]


# The command line's axes: each run config field and the flag that gives its values.
AXIS_FLAGS = {"learning_rate": "--lr", "beta": "--beta", "gamma_beta_ratio": "--gamma-beta-ratio"}


def grid_of(method: str, name: str | None, values: dict[str, str | None]) -> SearchGrid:
    """The named grid `name` of `method`, or the grid of the command line's axes: `values` maps
    each axis of AXIS_FLAGS to its flag's comma-separated numbers (None: not given)."""
    axes = {axis: parsed for axis, text in values.items() if (parsed := _numbers(text, AXIS_FLAGS[axis]))}
    if name is not None:
        if axes:
            raise UsageError("--grid replaces --lr, --beta and --gamma-beta-ratio: give one or the other")
        return search_grid(method, name)
    if not axes:
        raise UsageError("give --grid NAME or at least one of --lr, --beta, --gamma-beta-ratio")
    return SearchGrid("command line", "command line", axes)


def _numbers(text: str | None, flag: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()] if text is not None else []
    except ValueError:
        raise UsageError(f"{flag} expects comma-separated numbers, got '{text}'") from None


def size_warning(grid: SearchGrid) -> str | None:
    """A line to print first when the grid has more than WARN_POINTS points, each trained and judged."""
    points = len(grid.points())
    if points <= WARN_POINTS:
        return None
    shape = f" ({' x '.join(str(len(v)) for v in grid.axes.values())})" if grid.name == "command line" else ""
    return f"{points} grid points{shape}: more than {WARN_POINTS} runs, each trained and judged"


def configs(
    setting: str, method: str, points: list[dict[str, float]], options: ConfigOptions
) -> list[tuple[RunConfig, dict[str, float]]]:
    """Each grid point's run config, with the point's values; two points of one run (a value
    given twice) are refused, here and on SLURM alike."""
    resolved = [(options.with_overrides(values).resolve(setting, method)[0], values) for values in points]
    check_distinct(resolved)
    return resolved


def check_distinct(configs: list[tuple[RunConfig, dict[str, float]]]) -> None:
    """Two grid points that resolve to one run (a value given twice) are refused: one run
    folder, two writers."""
    seen: dict[tuple[str, str, str], dict[str, float]] = {}
    for config, values in configs:
        key = (config.setting, config.method, config.run_id)
        if (earlier := seen.setdefault(key, values)) is not values:
            raise UsageError(
                f"grid points {_values(earlier)} and {_values(values)} resolve to the same run "
                f"({config.run_id}): they would overwrite each other; give each value once"
            )


def _values(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in values.items()) or "(recipe values)"


@dataclass
class LocalSweep:
    rows: list[dict[str, Any]]  # one per point
    plans: list[run.Plan] = field(default_factory=list)  # a dry run's: each point's plan

    def cost_caption(self) -> str | None:
        """A dry run's judging bill in words; None for a sweep that ran."""
        if not self.plans:
            return None
        total_usd = sum(p.judge_estimate["estimated_cost_usd"] for p in self.plans)
        return (
            f"judge: {self.plans[-1].judge_text}; {len(self.rows)} runs, about ${total_usd:.2f} of judging "
            "in all (estimate at gpt-4-1106-preview prices)"
        )


def run_locally(
    configs: list[tuple[RunConfig, dict[str, float]]],
    *,
    results_root: Path,
    bench: str | None,
    judge: str | None,
    judge_url: str | None,
    refresh: bool,
    dry_run: bool = False,
    display: Display | None = None,
) -> LocalSweep:
    """Plan (`dry_run`) or run every point in turn; each run resumes as `repro run` does."""
    sweep = LocalSweep([])
    for config, values in configs:
        spec = Judge.choose(judge, config.evaluation, url=judge_url, refresh=refresh)
        benches = benchmarks.parse(bench, config.evaluation)
        if dry_run:
            the_plan = run.plan(config, results_root=results_root, benches=benches, judge=spec)
            sweep.plans.append(the_plan)
            gamma = config.hyperparameters.get("gamma")
            sweep.rows.append(
                {
                    **values,
                    **({"gamma": gamma} if gamma is not None and "gamma" not in values else {}),
                    "run_dir": str(the_plan.run_dir),
                    "optimizer_steps": the_plan.steps.planned,
                    "judge_calls": the_plan.judge_estimate["total_calls"],
                    "judge_cost_usd": the_plan.judge_estimate["estimated_cost_usd"],
                }
            )
            continue
        with (display or contextlib.nullcontext)() as shown:
            done = run.execute(
                config,
                results_root=results_root,
                benches=benches,
                judge=spec,
                progress=shown,
                echo=shown.echo if shown is not None else None,
            )
        sweep.rows.append(
            {
                **values,
                **{k: done.result.scores.get(k) for k in benchmarks.headline()},
                "reward_accuracy": (done.result.training or Training()).held_out_reward_accuracy,
                "run_dir": str(done.run_dir),
            }
        )
    return sweep
