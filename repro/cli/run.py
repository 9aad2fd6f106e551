"""`repro run`, `repro sweep` and `repro compare`."""

from __future__ import annotations

import itertools
import shlex
from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import DatasetOpt, FormatOpt, PaddingFreeOpt, app
from repro.config import recipes
from repro.errors import ReproError, UsageError
from repro.evaluation import runner

JudgeOpt = Annotated[str | None, typer.Option("--judge", help="rule (default for tiny) or endpoint.")]


@app.command("run")
def run_cmd(
    setting: Annotated[str, typer.Argument(help="Setting name or recipe file.")],
    method: Annotated[str, typer.Option("--method", "-m")] = "simpo",
    results: Annotated[Path, typer.Option("--results", help="Results root.")] = Path("results"),
    bench: Annotated[str, typer.Option("--bench")] = "alpaca_eval2,arena_hard,mt_bench",
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
    backend: Annotated[str, typer.Option("--backend", help="transformers or vllm.")] = "transformers",
    judge_url: Annotated[str | None, typer.Option("--judge-url")] = None,
    judge_model: Annotated[str | None, typer.Option("--judge-model")] = None,
    judge_key_env: Annotated[str, typer.Option("--judge-key-env")] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option("--concurrency", min=1)] = 4,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan: commands, steps, judge calls, cost.")
    ] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Train, generate, judge and score SETTING x METHOD; resumable, skipping finished stages."""
    from repro.runs import run
    from repro.train import launch

    render.check_format(fmt, ("table", "json"))
    benches = [b.strip() for b in bench.split(",") if b.strip()]
    config, the_method = recipes.resolve_names(
        setting,
        method,
        overrides=overrides,
        num_processes=gpus,
        num_nodes=nodes,
        layout=layout,
        padding_free=padding_free,
        dataset=dataset,
    )
    spec = runner.Judge.choose(
        judge,
        config["setting"],
        url=judge_url,
        model=judge_model,
        key_env=judge_key_env,
        concurrency=concurrency,
    )
    if dry_run:
        info = run.plan(config, results_root=results, benches=benches, judge=spec)
        batch = config["batch"]
        acc = f"{info['run_dir']}/train/accelerate.yaml"
        info["train_command"] = (
            f"accelerate launch --config_file {shlex.quote(acc)} --num_processes {batch['world_size']} "
            f"--num_machines {batch['num_nodes']} -m repro.train.worker "
            f"{shlex.quote(info['run_dir'])}/train/run.json"
        )
        info["device (this machine)"] = (
            "GPU (CUDA)" if launch.cuda_available() else "CPU processes (DS_ACCELERATOR=cpu)"
        )
        if fmt == "json":
            render.print_json(info)
        else:
            render.print_table(
                render.table(
                    ["plan", "value"],
                    [(k, str(v)) for k, v in info.items()],
                    title=f"repro run {config['setting']} --method {config['method']} (dry run)",
                )
            )
        return
    result = run.execute(
        config,
        the_method,
        results_root=results,
        benches=benches,
        judge=spec,
        tokenization=tokenization,
        max_steps=max_steps,
        limit=limit,
        eval_kwargs={"backend_name": backend},
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
    rows += [(f"time {k}", str(v)) for k, v in result["timings"].items()]
    render.print_table(
        render.table(
            ["", "value"],
            rows,
            title=f"{result['setting']} x {result['method']}: {result['run_dir']}",
            caption=None
            if result["complete"]
            else f"incomplete: {', '.join(result['incomplete_benchmarks'])}",
        )
    )


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
    grid: Annotated[
        str | None,
        typer.Option("--grid", help="A named grid of recipes/methods.yaml: paper (App. B), readme (SimPO)."),
    ] = None,
    results: Annotated[Path, typer.Option("--results")] = Path("results"),
    bench: Annotated[str, typer.Option("--bench")] = "alpaca_eval2,arena_hard,mt_bench",
    gpus: Annotated[int | None, typer.Option("--gpus")] = None,
    judge: JudgeOpt = None,
    judge_url: Annotated[str | None, typer.Option("--judge-url")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """One run per grid point (learning rate x beta x gamma/beta, or a named --grid), in one table."""
    from repro.runs import run

    render.check_format(fmt, ("table", "json"))
    axes = {
        "learning_rate": _grid(lr, "lr"),
        "beta": _grid(beta, "beta"),
        "gamma_beta_ratio": _grid(gamma_beta_ratio, "gamma-beta-ratio"),
    }
    axes = {k: v for k, v in axes.items() if v}
    source = "command line"
    if grid is not None:
        if axes:
            raise UsageError("--grid replaces --lr, --beta and --gamma-beta-ratio: give one or the other")
        the_grid = recipes.search_grid(method, grid)
        points, source = the_grid.points(), the_grid.source
    elif not axes:
        raise UsageError("give --grid NAME or at least one of --lr, --beta, --gamma-beta-ratio")
    else:
        points = [dict(zip(axes, p, strict=True)) for p in itertools.product(*axes.values())]
    benches = [b.strip() for b in bench.split(",") if b.strip()]
    rows = []
    for values in points:
        config, the_method = recipes.resolve_names(
            setting, method, overrides=[f"{k}={v}" for k, v in values.items()], num_processes=gpus
        )
        spec = runner.Judge.choose(judge, config["setting"], url=judge_url)
        if dry_run:
            info = run.plan(config, results_root=results, benches=benches, judge=spec)
            shown = {**values, **({"gamma": config["gamma"]} if "gamma" in config else {})}
            rows.append({**shown, "run_dir": info["run_dir"], "optimizer_steps": info["optimizer_steps"]})
            continue
        result = run.execute(
            config, the_method, results_root=results, benches=benches, judge=spec, max_steps=max_steps
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
        render.print_json({"grid": grid, "source": source, "points": rows} if grid else rows)
        return
    columns = list(rows[0])
    render.print_table(
        render.table(
            columns,
            [[r[c] if isinstance(r[c], str) else render.number(r[c]) for c in columns] for r in rows],
            title=f"sweep {setting} x {method} ({len(rows)} points)" + (f", grid {grid}" if grid else ""),
            caption=f"grid source: {source}" if grid else None,
        )
    )


@app.command("compare")
def compare_cmd(
    results_dir: Annotated[Path, typer.Argument(help="Folder with repro run results.")],
    against: Annotated[str, typer.Option("--against")] = "published",
    tolerance: Annotated[
        list[str] | None, typer.Option("--tolerance", help="METRIC=VALUE, e.g. ah=2.0")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG: published vs reproduced.")] = None,
    only_reproduced: Annotated[
        bool, typer.Option("--only-reproduced", help="Hide published cells without runs.")
    ] = False,
    fail_outside: Annotated[bool, typer.Option("--fail-outside-tolerance")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f")] = "table",
) -> None:
    """Diff every reproduced score against the published tables (missing cells listed as missing)."""
    from repro.runs import compare

    render.check_format(fmt, ("table", "markdown", "csv", "json"))
    if against != "published":
        from repro.errors import unknown

        raise unknown("--against target", against, ["published"])
    tolerances = {}
    for item in tolerance or []:
        key, _, value = item.partition("=")
        if key not in compare.METRICS:
            from repro.errors import unknown

            raise unknown("tolerance metric", key, compare.METRICS)
        try:
            tolerances[key] = float(value)
        except ValueError:
            raise UsageError(f"--tolerance expects METRIC=NUMBER, got '{item}'") from None
    comparison = compare.compare(results_dir, tolerances)
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
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
        for d in dicts:
            print("| " + " | ".join("" if d[c] is None else render.number(d[c]) for c in columns) + " |")
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
