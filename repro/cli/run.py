"""`repro run` and `repro sweep` (the local sweep is repro.runs.pipeline.sweep, the SLURM one
repro.runs.cluster.slurm)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render, result_tables
from repro.cli import slurm as slurm_cli
from repro.cli.common import (
    CONFIG_OPTIONS,
    BackendOpt,
    BenchPathOpt,
    JudgeKeyEnvOpt,
    JudgeModelOpt,
    JudgeOpt,
    JudgeUrlOpt,
    MethodOpt,
    RefreshJudgmentsOpt,
    SettingArg,
    app,
    format_option,
    load_bench_paths,
    path_option,
    with_config_options,
    with_data_options,
)
from repro.config import evalconfig
from repro.config.config_options import ConfigOptions
from repro.evaluation import benchmarks, generation
from repro.evaluation.eval_options import EvalOptions
from repro.evaluation.judge.spec import Judge

BENCH_HELP = "Comma-separated benchmarks (default: the setting's, see eval/generation/SETTING.yaml)."
BenchOpt = Annotated[str | None, typer.Option("--bench", metavar="LIST", help=BENCH_HELP)]
ResultsOpt = Annotated[
    Path, path_option("--results", role="output-dir", help="Results root (one folder per run inside).")
]


@app.command("run")
@slurm_cli.with_slurm_options
@with_config_options
@with_data_options
def run_cmd(
    setting: SettingArg,
    method: MethodOpt = "simpo",
    results: ResultsOpt = Path("results"),
    bench: BenchOpt = None,
    bench_path: BenchPathOpt = None,
    options: ConfigOptions = CONFIG_OPTIONS,  # its fields are the options here
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, metavar="N", help="Only the first N questions per benchmark."),
    ] = None,
    judge: JudgeOpt = None,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_key_env: JudgeKeyEnvOpt = "OPENAI_API_KEY",
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, metavar="N", help="Judge calls in flight at once.")
    ] = 4,
    refresh_judgments: RefreshJudgmentsOpt = False,
    data_paths: dict[str, Path] | None = None,  # each benchmark's data option (with_data_options)
    backend: BackendOpt = None,
    slurm: slurm_cli.SlurmOptions = slurm_cli.SLURM_OPTIONS,  # its fields are the options here
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan: commands, steps, judge calls, cost.")
    ] = False,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Train, generate, judge and score SETTING x METHOD; resumable, skipping finished stages."""
    load_bench_paths(bench_path)
    from repro.runs.pipeline import run

    config, _ = options.resolve(setting, method)
    benches = benchmarks.parse(bench, config.evaluation)
    spec = Judge.choose(
        judge,
        config.evaluation,
        url=judge_url,
        model=judge_model,
        key_env=judge_key_env,
        concurrency=concurrency,
        refresh=refresh_judgments,
    )
    backend = generation.check_backend(backend or evalconfig.engine(config.evaluation))
    eval_options = EvalOptions(backend=backend, limit=limit, data_paths=data_paths or {})
    if slurm.on_slurm():
        slurm_cli.launch(
            [(config, {})],
            results=results,
            benches=benches,
            judge=spec,
            eval_options=eval_options,
            slurm_options=slurm,
            dry_run=dry_run,
            fmt=fmt,
        )
        return
    if dry_run:
        the_plan = run.plan(
            config, results_root=results, benches=benches, judge=spec, limit=limit, backend=backend
        )
        if fmt == "json":
            render.print_json(the_plan.to_json())
            return
        render.print_table(result_tables.plan_table(the_plan))
        return
    with render.Bars() as bars:
        done = run.execute(
            config,
            results_root=results,
            benches=benches,
            judge=spec,
            options=eval_options,
            progress=bars,
            echo=bars.echo,
            verbose=render.VERBOSE,
        )
    if fmt == "json":
        render.print_json(done.to_json())
        return
    render.print_table(result_tables.run_table(done))


@app.command("sweep")
@slurm_cli.with_slurm_options
@with_config_options(only=("num_processes", "max_steps"))
def sweep_cmd(
    setting: SettingArg,
    method: MethodOpt = "simpo",
    lr: Annotated[
        str | None,
        typer.Option(
            "--lr", metavar="LIST", help="Learning rates, e.g. 3e-7,5e-7,8e-7,1e-6 (the README's grid)."
        ),
    ] = None,
    beta: Annotated[str | None, typer.Option("--beta", metavar="LIST", help="Betas, e.g. 2,2.5,10.")] = None,
    gamma_beta_ratio: Annotated[
        str | None,
        typer.Option("--gamma-beta-ratio", metavar="LIST", help="gamma/beta ratios (SimPO), e.g. 0.3,0.5."),
    ] = None,
    grid: Annotated[
        str | None,
        typer.Option(
            "--grid", metavar="NAME", help="A named grid of recipes/methods.yaml: paper (App. B) or readme."
        ),
    ] = None,
    results: ResultsOpt = Path("results"),
    bench: BenchOpt = None,
    bench_path: BenchPathOpt = None,
    options: ConfigOptions = CONFIG_OPTIONS,  # --gpus and --max-steps
    judge: JudgeOpt = None,
    judge_url: JudgeUrlOpt = None,
    refresh_judgments: RefreshJudgmentsOpt = False,
    slurm: slurm_cli.SlurmOptions = slurm_cli.SLURM_OPTIONS,  # its fields are the options here
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the grid, steps and judge cost; run nothing.")
    ] = False,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """One run per grid point (learning rate x beta x gamma/beta, or a named --grid), in one table."""
    load_bench_paths(bench_path)
    from repro.runs.pipeline import sweep

    values = {"learning_rate": lr, "beta": beta, "gamma_beta_ratio": gamma_beta_ratio}
    the_grid = sweep.grid_of(method, grid, values)
    if warning := sweep.size_warning(the_grid):
        render.warn(warning)
    points, source = the_grid.points(), the_grid.source
    configs = sweep.configs(setting, method, points, options)
    if slurm.on_slurm():
        spec = Judge.choose(judge, configs[0][0].evaluation, url=judge_url, refresh=refresh_judgments)
        slurm_cli.launch(
            configs,
            results=results,
            benches=benchmarks.parse(bench, configs[0][0].evaluation),
            judge=spec,
            eval_options=EvalOptions(),
            slurm_options=slurm,
            dry_run=dry_run,
            fmt=fmt,
        )
        return
    done = sweep.run_locally(
        configs, results_root=results, bench=bench, judge=judge, judge_url=judge_url,
        refresh=refresh_judgments, dry_run=dry_run, display=render.Bars,
    )  # fmt: skip
    rows = done.rows
    if fmt == "json":
        render.print_json({"grid": grid, "source": source, "points": rows} if grid else rows)
        return
    title = f"sweep {setting} x {method} ({len(rows)} points)" + (f", grid {grid}" if grid else "")
    caption = "; ".join(c for c in (f"grid source: {source}" if grid else None, done.cost_caption()) if c)
    render.print_table(result_tables.sweep_table(rows, title=title, caption=caption or None))
