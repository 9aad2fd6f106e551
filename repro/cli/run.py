"""`repro run`, `repro sweep`, `repro compare` and `repro verify`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from repro import userpaths
from repro.cli import render, sweepgrid
from repro.cli import slurm as slurm_cli
from repro.cli.common import (
    BenchPathOpt,
    DataOpt,
    DatasetOpt,
    GpusOpt,
    JudgeKeyEnvOpt,
    JudgeModelOpt,
    JudgeOpt,
    JudgeUrlOpt,
    LayoutOpt,
    MaxStepsOpt,
    MethodOpt,
    NodesOpt,
    OverridesOpt,
    PaddingFreeOpt,
    RefreshJudgmentsOpt,
    ReportToOpt,
    SettingArg,
    TokenizationOpt,
    app,
    format_option,
    load_bench_paths,
    path_argument,
    path_option,
)
from repro.config.config_options import ConfigOptions
from repro.config.methods import SearchGrid, search_grid
from repro.errors import ReproError, UsageError
from repro.evaluation import benchmarks, generation
from repro.evaluation.eval_options import EvalOptions
from repro.evaluation.judge.spec import Judge

BENCH_HELP = "Comma-separated benchmarks (default: the setting's, see eval/generation/SETTING.yaml)."
BenchOpt = Annotated[str | None, typer.Option("--bench", metavar="LIST", help=BENCH_HELP)]
ResultsOpt = Annotated[
    Path, path_option("--results", role="output-dir", help="Results root (one folder per run inside).")
]
# A sweep this large is usually a typo in a grid (or a surprise bill): say so before it starts.
SWEEP_WARN_POINTS = 100


@app.command("run")
def run_cmd(
    setting: SettingArg,
    method: MethodOpt = "simpo",
    results: ResultsOpt = Path("results"),
    bench: BenchOpt = None,
    bench_path: BenchPathOpt = None,
    gpus: GpusOpt = None,
    nodes: NodesOpt = 1,
    layout: LayoutOpt = "current",
    overrides: OverridesOpt = None,
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    padding_free: PaddingFreeOpt = None,
    tokenization: TokenizationOpt = "simpo",
    max_steps: MaxStepsOpt = None,
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
    zeroeval_data: Annotated[
        Path | None,
        path_option("--zeroeval-data", role="dir", help="Folder with gsm.json / mmlu-redux.json."),
    ] = None,
    report_to: ReportToOpt = None,
    backend: Annotated[
        str, typer.Option("--backend", metavar="transformers|vllm", help="Generation engine.")
    ] = "transformers",
    launcher: slurm_cli.LauncherOpt = "local",
    submit: slurm_cli.SubmitOpt = False,
    max_parallel: slurm_cli.MaxParallelOpt = None,
    partition: slurm_cli.PartitionOpt = None,
    account: slurm_cli.AccountOpt = None,
    time_limit: slurm_cli.TimeOpt = "24:00:00",
    qos: slurm_cli.QosOpt = None,
    constraint: slurm_cli.ConstraintOpt = None,
    sbatch_extra: slurm_cli.SbatchExtraOpt = None,
    judge_on: slurm_cli.JudgeOnOpt = "node",
    device: slurm_cli.SlurmDeviceOpt = "cuda",
    signal_seconds: slurm_cli.SignalOpt = 300,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan: commands, steps, judge calls, cost.")
    ] = False,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Train, generate, judge and score SETTING x METHOD; resumable, skipping finished stages."""
    load_bench_paths(bench_path)
    from repro.runs import run

    options = ConfigOptions(
        overrides=tuple(overrides or ()), num_processes=gpus, num_nodes=nodes, layout=layout,
        padding_free=padding_free, dataset=dataset, data_source=str(data) if data else None,
        tokenization=tokenization, max_steps=max_steps,
        report_to=report_to,
    )  # fmt: skip
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
    generation.check_backend(backend)  # a usage error before anything runs (dry runs too)
    eval_options = EvalOptions(backend=backend, limit=limit, zeroeval_data=zeroeval_data)
    if slurm_cli.check_launcher(launcher, submit):
        slurm_cli.launch(
            [(config, {})], results=results, benches=benches, judge=spec, eval_options=eval_options,
            submit=submit, dry_run=dry_run, fmt=fmt, options=slurm_cli.slurm_options(
                max_parallel=max_parallel, partition=partition, account=account, time_limit=time_limit,
                qos=qos, constraint=constraint, sbatch_extra=sbatch_extra, judge_on=judge_on, device=device,
                signal_seconds=signal_seconds,
            ),
        )  # fmt: skip
        return
    if dry_run:
        the_plan = run.plan(
            config, results_root=results, benches=benches, judge=spec, limit=limit, backend=backend
        )
        if fmt == "json":
            render.print_json(the_plan.to_json())
            return
        _print_plan(the_plan)
        return
    with render.Bars() as bars:
        result = run.execute(
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
        render.print_json(result)
        return
    rows = [
        (
            k,
            f"blank: {benchmarks.why_missing(result['benchmarks'], k)}"
            if v is None or (isinstance(v, list) and all(x is None for x in v))
            else render.number(v)
            if not isinstance(v, list)
            else ", ".join(f"{x:.2f}" for x in v if x is not None),
        )
        for k, v in result["scores"].items()
    ]
    rows += [(f"training {k}", render.number(v)) for k, v in result["training"].items()]
    rows += [(f"time {w['stage']}", f"{w['seconds']} s") for w in result["work_done"]]
    if not result["work_done"]:
        rows.append(("work", "none: every stage was already done for these inputs"))
    render.print_table(
        render.table(
            ["", "value"],
            rows,
            title=f"{result['setting']} x {result['method']}: {result['run_dir']}",
            caption=("partial: " + "; ".join(result["partial_reasons"]) + "; " if result["partial"] else "")
            + (
                "complete"
                if result["complete"]
                else f"incomplete: {', '.join(result['incomplete_benchmarks'])}"
            ),
        )
    )


def _print_plan(plan) -> None:
    """One line per fact, in words."""
    batch = plan.config.batch
    rows = [
        ("run directory", str(plan.run_dir)),
        ("optimizer steps", plan.steps.text()),
        ("batch", batch.describe()),
        ("processes", f"{batch.num_processes} per node x {batch.num_nodes} nodes"),
        ("judge", plan.judge_text),
        ("judge calls", plan.judge_cost_text),
        ("config hash", plan.config.config_hash),
        ("train command", plan.train_command),
        ("partial", render.number(plan.partial)),
        ("device (this machine)", plan.device),
    ]
    rows += [(f"preflight {c.name}", ("ok: " if c.ok else "FAILS: ") + c.message) for c in plan.preflight]
    title = f"repro run {plan.config.setting} --method {plan.config.method} (dry run)"
    render.print_table(render.table(["plan", "value"], rows, title=title))


def _grid(values: str | None, name: str) -> list[float] | None:
    if values is None:
        return None
    try:
        return [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--{name} expects comma-separated numbers, got '{values}'") from None


@app.command("sweep")
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
    gpus: GpusOpt = None,
    judge: JudgeOpt = None,
    judge_url: JudgeUrlOpt = None,
    refresh_judgments: RefreshJudgmentsOpt = False,
    max_steps: MaxStepsOpt = None,
    launcher: slurm_cli.LauncherOpt = "local",
    submit: slurm_cli.SubmitOpt = False,
    max_parallel: slurm_cli.MaxParallelOpt = None,
    partition: slurm_cli.PartitionOpt = None,
    account: slurm_cli.AccountOpt = None,
    time_limit: slurm_cli.TimeOpt = "24:00:00",
    qos: slurm_cli.QosOpt = None,
    constraint: slurm_cli.ConstraintOpt = None,
    sbatch_extra: slurm_cli.SbatchExtraOpt = None,
    judge_on: slurm_cli.JudgeOnOpt = "node",
    device: slurm_cli.SlurmDeviceOpt = "cuda",
    signal_seconds: slurm_cli.SignalOpt = 300,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the grid, steps and judge cost; run nothing.")
    ] = False,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """One run per grid point (learning rate x beta x gamma/beta, or a named --grid), in one table."""
    load_bench_paths(bench_path)
    from repro.runs import run

    axes = {
        "learning_rate": _grid(lr, "lr"),
        "beta": _grid(beta, "beta"),
        "gamma_beta_ratio": _grid(gamma_beta_ratio, "gamma-beta-ratio"),
    }
    axes = {k: v for k, v in axes.items() if v}
    if grid is not None:
        if axes:
            raise UsageError("--grid replaces --lr, --beta and --gamma-beta-ratio: give one or the other")
        the_grid = search_grid(method, grid)
    elif not axes:
        raise UsageError("give --grid NAME or at least one of --lr, --beta, --gamma-beta-ratio")
    else:
        the_grid = SearchGrid("command line", "command line", axes)
    points, source = the_grid.points(), the_grid.source
    if len(points) > SWEEP_WARN_POINTS:
        shape = f" ({' x '.join(str(len(v)) for v in axes.values())})" if axes else ""
        render.warn(
            f"{len(points)} grid points{shape}: more than {SWEEP_WARN_POINTS} runs, each trained and judged"
        )
    options = ConfigOptions(num_processes=gpus, max_steps=max_steps)
    configs = [(options.with_overrides(values).resolve(setting, method)[0], values) for values in points]
    if slurm_cli.check_launcher(launcher, submit):
        spec = Judge.choose(judge, configs[0][0].evaluation, url=judge_url, refresh=refresh_judgments)
        slurm_cli.launch(
            configs, results=results, benches=benchmarks.parse(bench, configs[0][0].evaluation),
            judge=spec, eval_options=EvalOptions(), submit=submit, dry_run=dry_run, fmt=fmt,
            options=slurm_cli.slurm_options(
                max_parallel=max_parallel, partition=partition, account=account, time_limit=time_limit,
                qos=qos, constraint=constraint, sbatch_extra=sbatch_extra, judge_on=judge_on, device=device,
                signal_seconds=signal_seconds,
            ),
        )  # fmt: skip
        return
    rows = []
    plans = []
    for config, values in configs:
        spec = Judge.choose(judge, config.evaluation, url=judge_url, refresh=refresh_judgments)
        benches = benchmarks.parse(bench, config.evaluation)
        if dry_run:
            the_plan = run.plan(config, results_root=results, benches=benches, judge=spec)
            plans.append(the_plan)
            gamma = config.hyperparameters.get("gamma")
            rows.append(
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
        with render.Bars() as bars:
            result = run.execute(
                config, results_root=results, benches=benches, judge=spec, progress=bars, echo=bars.echo
            )
        rows.append(
            {
                **values,
                **{k: result["scores"].get(k) for k in benchmarks.headline()},
                "reward_accuracy": result["training"]["held_out_reward_accuracy"],
                "run_dir": result["run_dir"],
            }
        )
    if fmt == "json":
        render.print_json({"grid": grid, "source": source, "points": rows} if grid else rows)
        return
    columns = list(rows[0])
    caption = None
    if dry_run:
        total_usd = sum(p.judge_estimate["estimated_cost_usd"] for p in plans)
        caption = (
            f"judge: {plans[-1].judge_text}; {len(rows)} runs, about ${total_usd:.2f} of judging in all "
            "(estimate at gpt-4-1106-preview prices)"
        )
    render.print_table(
        render.table(
            columns,
            [[r[c] if isinstance(r[c], str) else render.number(r[c]) for c in columns] for r in rows],
            title=f"sweep {setting} x {method} ({len(rows)} points)" + (f", grid {grid}" if grid else ""),
            caption="; ".join(c for c in (f"grid source: {source}" if grid else None, caption) if c) or None,
        )
    )


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
    from repro.runs import compare

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
        render.print_table(
            render.table(
                [
                    "setting",
                    "method",
                    "config",
                    "metric",
                    "published",
                    "reproduced",
                    "std",
                    "runs",
                    "delta",
                    "status",
                ],
                body,
                title="Reproduced vs published",
                caption=caption,
            )  # fmt: skip
        )
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
    from repro.runs import verify

    found = verify.verify(run_dir)
    err = render.console(stderr=True)
    for line in found.problems + [f"note: {n}" for n in found.notes]:
        err.print(line, markup=False, highlight=False)
    print(f"manifest.json sha256 {found.manifest_sha256}")
    if found.problems:
        raise ReproError(f"{len(found.problems)} of {found.checked} recorded files differ from the manifest")
    print(f"all {found.checked} files match the manifest")
