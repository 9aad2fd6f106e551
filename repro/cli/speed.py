"""`repro bench train` and `repro bench generate`: repro against its peers, measured in one run."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from repro import io, userpaths
from repro.cli import render
from repro.cli.common import app, format_option, path_option
from repro.errors import unknown
from repro.perf import generation_speed, train_speed

bench_app = typer.Typer(help="Benchmarks of repro itself against its peers.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

ReportOpt = Annotated[
    Path | None,
    path_option(
        "--output",
        "-o",
        role="output-file",
        help="JSON report (default results/bench/KIND-PRESET-TIME.json).",
        suffixes=(".json",),
    ),
]


def report_path(output: Path | None, kind: str, preset: str) -> Path:
    """Where the report goes, checked before the work: a finished benchmark must not be lost."""
    path = output or Path("results") / "bench" / f"{kind}-{preset}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    userpaths.output_dir(path.parent, "--output")
    return path


def measure(preset: str, work: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Run `work(progress=...)` under one progress bar named after the preset."""
    with render.progress() as bar:
        task = bar.add_task(f"bench {preset}", total=None)

        def progress(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=f"bench {preset}: {name or 'done'}")

        return work(progress=progress)


def show(path: Path, report: dict[str, Any], fmt: str, tables: list) -> None:
    """Write the report, then print it as JSON or as tables."""
    io.write_json(path, report)
    if fmt == "json":
        render.print_json(report)
        return
    for tbl in tables:
        render.print_table(tbl)
    render.console(stderr=True).print(f"wrote {path}")


@bench_app.command("train")
def bench_train_cmd(
    preset: Annotated[
        str, typer.Option("--preset", metavar="NAME", help="A preset of perf/train-presets.yaml.")
    ] = "cpu-small",
    rounds: Annotated[
        int, typer.Option("--rounds", min=1, help="Runs of every contender, alternating order.")
    ] = 1,
    contenders: Annotated[
        str | None,
        typer.Option(
            "--contenders", metavar="LIST", help="Comma-separated subset of the preset's contenders."
        ),
    ] = None,
    output: ReportOpt = None,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Train each contender for the preset's steps in its own process; print tokens/s, memory, ratios."""
    the_preset = train_speed.get_preset(preset)
    subset = None
    if contenders:
        subset = tuple(c.strip() for c in contenders.split(",") if c.strip())
        for c in subset:
            if c not in the_preset.contenders:
                raise unknown(f"contender of preset {preset}", c, the_preset.contenders)
    path = report_path(output, "train", preset)
    train_speed.check_device(the_preset)  # before the progress bar
    report = measure(
        preset,
        lambda progress: train_speed.run(the_preset, rounds=rounds, contenders=subset, progress=progress),
    )
    show(path, report, fmt, tables(report))
    if fmt != "json" and (report.get("load") or {}).get("busy"):
        render.console(stderr=True).print(f"[yellow]{report['load']['note']}[/yellow]")


def tables(report: dict[str, Any]) -> list:
    """The report as two tables: per contender, and the ratios."""
    gib = 2**30
    results = report["results"].values()
    per = render.table(
        ["contender", "engine", "step s", "tokens/s", "peak memory GiB", "kind", "MFU", "load 1 min"],
        [
            (
                r["contender"],
                r.get("engine", "") + (f" ZeRO-{r['zero_stage']}" if "zero_stage" in r else ""),
                f"{r['step_seconds']:.3f}",
                f"{r['tokens_per_second']:.0f}",
                f"{r['peak_memory_bytes'] / gib:.2f}",
                r["peak_memory_kind"],
                f"{r['mfu']:.1%}" if "mfu" in r else "-",
                _load(r),
            )
            for r in results
        ],
        title=f"repro bench train --preset {report['preset']}",
        caption=report["description"],
    )
    ratios = render.table(
        ["comparison", "throughput a/b", "memory a/b"],
        [
            (r["comparison"], f"{r['throughput_ratio']:.2f}x", f"{r['memory_ratio']:.2f}x")
            for r in report["ratios"]
        ],
        title="ratios (a/b, same run)",
    )
    return [per, ratios]


def _load(result: dict[str, Any]) -> str:
    """The 1-minute load average before -> after the contender ran (reports before it: -)."""
    before, after = result.get("load_before"), result.get("load_after")
    return f"{before[0]:.2f} -> {after[0]:.2f}" if before and after else "-"


@bench_app.command("generate")
def bench_generate_cmd(
    preset: Annotated[
        str, typer.Option("--preset", help="A preset of perf/generate-presets.yaml.")
    ] = "cpu-tiny",
    output: ReportOpt = None,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Generate with each backend in its own process; print tokens/s and the vLLM/transformers ratio."""
    the_preset = generation_speed.get_preset(preset)
    path = report_path(output, "generate", preset)
    report = measure(preset, lambda progress: generation_speed.run(the_preset, progress=progress))
    show(path, report, fmt, generate_tables(report))


def generate_tables(report: dict[str, Any]) -> list:
    rows = [
        (
            r["backend"],
            mode,
            f"{r['startup_seconds']:.1f}",
            f"{run_['seconds']:.2f}",
            str(run_["completion_tokens"]),
            f"{run_['tokens_per_second']:.0f}",
        )
        for r in report["results"].values()
        for mode, run_ in r["runs"].items()
    ]
    per = render.table(
        ["backend", "decoding", "start-up s", "generation s", "tokens", "tokens/s"],
        rows,
        title=f"repro bench generate --preset {report['preset']}",
        caption=report["description"],
    )
    ratios = render.table(
        ["decoding", "tokens/s vLLM / transformers", "same completions"],
        [
            (r["decoding"], f"{r['vllm_over_transformers']:.2f}x", f"{r['same_completions']}/{r['prompts']}")
            for r in report["ratios"]
        ],
        title="ratios (same run, same prompts and decoding)",
    )
    load = report.get("load_average")
    over = render.table(
        ["backend", "decoding", "tokens/s over greedy's"],
        [
            (r["backend"], r["decoding"], f"{r['over_greedy']:.2f}x")
            for r in report.get("beam1_over_greedy", [])
        ],
        title="beam1 against greedy on the same engine",
        caption=(
            f"load average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load['before'])}; "
            f"after {', '.join(f'{x:.2f}' for x in load['after'])}"
        )
        if load
        else None,
    )
    return [per, ratios, over]
