"""`repro run`, `repro sweep` and `repro compare`."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import DatasetOpt, FormatOpt, PaddingFreeOpt, ReportToOpt, app
from repro.config import recipes
from repro.errors import ReproError, UsageError
from repro.evaluation import runner

BENCH_HELP = "Comma-separated benchmarks (default: the setting's, see eval/generation/SETTING.yaml)."
JudgeOpt = Annotated[str | None, typer.Option("--judge", help="rule (default for tiny) or endpoint.")]


@app.command("run")
def run_cmd(
    setting: Annotated[str, typer.Argument(help="Setting name or recipe file.")],
    method: Annotated[str, typer.Option("--method", "-m")] = "simpo",
    results: Annotated[Path, typer.Option("--results", help="Results root.")] = Path("results"),
    bench: Annotated[str | None, typer.Option("--bench", help=BENCH_HELP)] = None,
    gpus: Annotated[int | None, typer.Option("--gpus")] = None,
    nodes: Annotated[int, typer.Option("--nodes", min=1)] = 1,
    layout: Annotated[str, typer.Option("--layout")] = "current",
    overrides: Annotated[list[str] | None, typer.Option("--set")] = None,
    dataset: DatasetOpt = None,
    padding_free: PaddingFreeOpt = None,
    tokenization: Annotated[str, typer.Option("--tokenization")] = "simpo",
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Questions per benchmark.")] = None,
    judge: JudgeOpt = None,
    judge_url: Annotated[str | None, typer.Option("--judge-url")] = None,
    judge_model: Annotated[str | None, typer.Option("--judge-model")] = None,
    judge_key_env: Annotated[str, typer.Option("--judge-key-env")] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option("--concurrency", min=1)] = 4,
    zeroeval_data: Annotated[
        Path | None, typer.Option("--zeroeval-data", help="Folder with gsm.json / mmlu-redux.json.")
    ] = None,
    report_to: ReportToOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan: commands, steps, judge calls, cost.")
    ] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Train, generate, judge and score SETTING x METHOD; resumable, skipping finished stages."""
    from repro.runs import preflight, run
    from repro.train import launch

    render.check_format(fmt, ("table", "json"))
    config, _ = recipes.resolve_names(
        setting,
        method,
        overrides=overrides,
        num_processes=gpus,
        num_nodes=nodes,
        layout=layout,
        padding_free=padding_free,
        dataset=dataset,
        tokenization=tokenization,
        max_steps=max_steps,
        report_to=report_to,
    )
    benches = runner.parse_benches(bench, config.evaluation)
    spec = runner.Judge.choose(
        judge,
        config.evaluation,
        url=judge_url,
        model=judge_model,
        key_env=judge_key_env,
        concurrency=concurrency,
    )
    if dry_run:
        info = run.plan(config, results_root=results, benches=benches, judge=spec, limit=limit)
        checks = preflight.checks(config, judge=spec, results_root=results)
        info["device (this machine)"] = (
            "GPU (CUDA)" if launch.cuda_available() else "CPU processes (DS_ACCELERATOR=cpu)"
        )
        info["preflight"] = {c.name: ("ok: " if c.ok else "FAILS: ") + c.message for c in checks}
        if fmt == "json":
            render.print_json(info)
        else:
            rows = [(k, _describe(v)) for k, v in info.items() if k != "preflight"]
            rows += [(f"preflight {k}", v) for k, v in info["preflight"].items()]
            render.print_table(
                render.table(
                    ["plan", "value"],
                    rows,
                    title=f"repro run {config.setting} --method {config.method} (dry run)",
                )
            )
        return
    with render.Bars() as bars:
        result = run.execute(
            config,
            results_root=results,
            benches=benches,
            judge=spec,
            limit=limit,
            progress=bars,
            echo=bars.echo,
            eval_kwargs={"zeroeval_data": zeroeval_data} if zeroeval_data else None,
        )
    if fmt == "json":
        render.print_json(result)
        return
    rows = [
        (
            k,
            render.number(v)
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
            caption=("partial: --limit " + str(result["limit"]) + "; " if result["partial"] else "")
            + (
                "complete"
                if result["complete"]
                else f"incomplete: {', '.join(result['incomplete_benchmarks'])}"
            ),
        )
    )


def _state(result: dict) -> str:
    partial = f"partial (--limit {result['limit']}); " if result["partial"] else ""
    if result["complete"]:
        return partial + "complete"
    return partial + f"incomplete: {', '.join(result['incomplete_benchmarks'])}"


def _describe(value: object) -> str:
    """A plan value as text: the judge as model, URL and cost, not a dict."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items() if v is not None)
    return str(value)


def _grid(values: str | None, name: str) -> list[float] | None:
    if values is None:
        return None
    try:
        return [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--{name} expects comma-separated numbers, got '{values}'") from None


@app.command("sweep")
def sweep_cmd(
    setting: Annotated[str, typer.Argument()],
    method: Annotated[str, typer.Option("--method", "-m")] = "simpo",
    lr: Annotated[
        str | None, typer.Option("--lr", help="e.g. 3e-7,5e-7,8e-7,1e-6 (the README's grid)")
    ] = None,
    beta: Annotated[str | None, typer.Option("--beta")] = None,
    gamma_beta_ratio: Annotated[str | None, typer.Option("--gamma-beta-ratio")] = None,
    results: Annotated[Path, typer.Option("--results")] = Path("results"),
    bench: Annotated[str | None, typer.Option("--bench", help=BENCH_HELP)] = None,
    gpus: Annotated[int | None, typer.Option("--gpus")] = None,
    judge: JudgeOpt = None,
    judge_url: Annotated[str | None, typer.Option("--judge-url")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """One run per grid point (learning rate x beta x gamma/beta), summarized in one table."""
    from repro.runs import run

    render.check_format(fmt, ("table", "json"))
    axes = {
        "learning_rate": _grid(lr, "lr"),
        "beta": _grid(beta, "beta"),
        "gamma_beta_ratio": _grid(gamma_beta_ratio, "gamma-beta-ratio"),
    }
    axes = {k: v for k, v in axes.items() if v}
    if not axes:
        raise UsageError("give at least one of --lr, --beta, --gamma-beta-ratio")
    rows = []
    for point in itertools.product(*axes.values()):
        values = dict(zip(axes, point, strict=True))
        config, _ = recipes.resolve_names(
            setting,
            method,
            overrides=[f"{k}={v}" for k, v in values.items()],
            num_processes=gpus,
            max_steps=max_steps,
        )
        spec = runner.Judge.choose(judge, config.evaluation, url=judge_url)
        benches = runner.parse_benches(bench, config.evaluation)
        if dry_run:
            info = run.plan(config, results_root=results, benches=benches, judge=spec)
            rows.append({**values, "run_dir": info["run_dir"], "optimizer_steps": info["optimizer_steps"]})
            continue
        with render.Bars() as bars:
            result = run.execute(
                config, results_root=results, benches=benches, judge=spec, progress=bars, echo=bars.echo
            )
        rows.append(
            {
                **values,
                **{k: result["scores"].get(k) for k in ("ae2_lc", "ae2_wr", "ah", "mt_bench")},
                "reward_accuracy": result["training"]["held_out_reward_accuracy"],
                "run_dir": result["run_dir"],
            }
        )
    if fmt == "json":
        render.print_json(rows)
        return
    columns = list(rows[0])
    render.print_table(
        render.table(
            columns,
            [[r[c] if isinstance(r[c], str) else render.number(r[c]) for c in columns] for r in rows],
            title=f"sweep {setting} x {method} ({len(rows)} points)",
        )
    )


@app.command("compare")
def compare_cmd(
    results_dir: Annotated[
        Path,
        typer.Argument(help="Folder with repro run results (with --curves: one run or train directory)."),
    ],
    against: Annotated[str, typer.Option("--against")] = "published",
    tolerance: Annotated[
        list[str] | None, typer.Option("--tolerance", help="METRIC=VALUE, e.g. ah=2.0")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG: published vs reproduced.")] = None,
    only_reproduced: Annotated[
        bool, typer.Option("--only-reproduced", help="Hide published cells without runs.")
    ] = False,
    fail_outside: Annotated[bool, typer.Option("--fail-outside-tolerance")] = False,
    curves: Annotated[
        Path | None,
        typer.Option("--curves", help="Published training history (W&B CSV export or step,metric CSV)."),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option("--metric", help="With --curves: e.g. rewards/margins,rewards/accuracies,loss"),
    ] = None,
    curve_tolerance: Annotated[
        str | None,
        typer.Option("--curve-tolerance", help="X or METRIC=X,... (default: 10% of the published span)."),
    ] = None,
    align: Annotated[str, typer.Option("--align", help="With --curves: auto, step or epoch.")] = "auto",
    curve_run: Annotated[
        str | None, typer.Option("--curve-run", help="The W&B run, when the CSV holds several.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f")] = "table",
) -> None:
    """Diff every reproduced score against the published tables (missing cells listed as missing),
    or with --curves a run's training curves against a published history."""
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
    render.check_format(fmt, ("table", "markdown", "csv", "json"))
    if against != "published":
        from repro.errors import unknown

        raise unknown("--against target", against, ["published"])
    comparison = compare.compare(results_dir, compare.parse_tolerances(tolerance or []))
    rows = [r for r in comparison.rows if r.runs or not only_reproduced]
    dicts = [r.as_dict() for r in rows]
    if plot:
        compare.plot(comparison, plot)
    columns = [
        "setting",
        "method",
        "metric",
        "published",
        "reproduced_mean",
        "reproduced_std",
        "runs",
        "delta",
        "status",
        "p_value",
        "erratum",
    ]
    if fmt == "json":
        render.print_json(
            {"rows": dicts, "skipped": [{"path": p, "reason": r} for p, r in comparison.skipped]}
        )
    elif fmt == "csv":
        render.print_csv(columns, [[d[c] for c in columns] for d in dicts])
    elif fmt == "markdown":
        render.print_markdown(columns, [[d[c] for c in columns] for d in dicts])
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
                    compare.METRICS[r.metric],
                    published + ("*" if r.erratum else ""),
                    "" if r.mean is None else f"{r.mean:.2f}",
                    "" if r.spread is None else f"{r.spread:.2f}",
                    str(len(r.runs)),
                    "" if r.delta is None else f"{r.delta:+.2f}",
                    r.status,
                )
            )
        counts = {s: sum(r.status == s for r in comparison.rows) for s in ("within", "outside", "missing")}
        caption = (
            f"{counts['within']} within, {counts['outside']} outside, {counts['missing']} missing; * erratum"
        )
        render.print_table(
            render.table(
                ["setting", "method", "metric", "published", "reproduced", "std", "runs", "delta", "status"],
                body,
                title="Reproduced vs published",
                caption=caption,
            )
        )
    for path, reason in comparison.skipped:
        render.console(stderr=True).print(f"skipped {path}: {reason}")
    if fail_outside and comparison.outside():
        raise ReproError(f"{len(comparison.outside())} reproduced cells are outside tolerance")
    if plot:
        render.console(stderr=True).print(f"wrote {plot}")


@app.command("verify")
def verify_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished run: results/SETTING/METHOD/RUN-ID.")],
) -> None:
    """Re-hash a finished run's files against its manifest; one line per file that differs."""
    from repro.runs import verify

    checked, problems = verify.verify(run_dir)
    for line in problems:
        render.console(stderr=True).print(line, markup=False, highlight=False)
    if problems:
        raise ReproError(f"{len(problems)} of {checked} recorded files differ from the manifest")
    print(f"all {checked} files match the manifest")
