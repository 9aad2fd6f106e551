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
from repro.errors import UsageError, unknown
from repro.perf import generation_speed, revisions, train_speed

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
        int | None,
        typer.Option(
            "--rounds",
            min=1,
            help="Runs of every contender, alternating order (default 1; 3 with --against).",
        ),
    ] = None,
    contenders: Annotated[
        str | None,
        typer.Option(
            "--contenders", metavar="LIST", help="Comma-separated subset of the preset's contenders."
        ),
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            metavar="REV",
            help="Also run the preset on this git revision of repro (a temporary worktree, the same "
            "environment), interleaved with the working tree, and report the change per contender.",
        ),
    ] = None,
    output: ReportOpt = None,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Train each contender for the preset's steps in its own process; print tokens/s, memory,
    MFU and ratios (medians over rounds, with their range), and where repro's step time goes."""
    the_preset = train_speed.get_preset(preset)
    subset = None
    if contenders:
        subset = tuple(c.strip() for c in contenders.split(",") if c.strip())
        if not subset:  # an empty subset would run every contender
            raise UsageError(f"--contenders '{contenders}' names no contender")
        if len(set(subset)) < len(subset):  # one named twice would be timed twice under one name
            raise UsageError(f"--contenders names a contender twice ({contenders})")
        for c in subset:
            if c not in the_preset.contenders:
                raise unknown(f"contender of preset {preset}", c, the_preset.contenders)
    if against:
        revisions.resolve(against)  # a bad revision is one line, before any work
    path = report_path(output, "train", preset)
    train_speed.check_device(the_preset)  # before the progress bar
    n = rounds or (3 if against else 1)
    report = measure(
        preset,
        lambda progress: train_speed.run(
            the_preset, rounds=n, contenders=subset, against=against, progress=progress
        ),
    )
    show(path, report, fmt, tables(report))
    if fmt != "json" and (report.get("load") or {}).get("busy"):
        render.console(stderr=True).print(f"[yellow]{report['load']['note']}[/yellow]")


GIB = 2**30


def _range(spread: dict[str, Any], fmt: str, scale: float = 1.0) -> str:
    """median [min-max] of a spread, or the median alone for one round."""
    med = format(spread["median"] / scale, fmt)
    if len(spread["runs"]) < 2:
        return med
    return f"{med} [{format(spread['min'] / scale, fmt)}-{format(spread['max'] / scale, fmt)}]"


def tables(report: dict[str, Any]) -> list:
    """The report as tables: per contender, ratios, where repro SimPO's time goes, and with
    --against the revisions side by side."""
    results = report["results"].values()
    peak = (report.get("matmul_peak") or {}).get("flops")
    per = render.table(
        [
            "contender",
            "engine",
            "rounds",
            "tokens/s",
            "peak memory GiB",
            "kind",
            "model GFLOP/s",
            "MFU",
            "MFU by CPU time",
            "load 1 min",
        ],
        [
            (
                r["contender"],
                r.get("engine", "") + (f" ZeRO-{r['zero_stage']}" if "zero_stage" in r else ""),
                str(r.get("rounds", 1)),
                _range(r["tokens_per_second_spread"], ".0f"),
                _range(r["peak_memory_spread"], ".2f", GIB),
                r["peak_memory_kind"],
                f"{r['model_flops_per_second'] / 1e9:.1f}",
                f"{r['mfu']:.1%}" if "mfu" in r else "-",
                f"{r['mfu_cpu_time']:.1%}" if "mfu_cpu_time" in r else "-",
                _load(r),
            )
            for r in results
        ],
        title=f"repro bench train --preset {report['preset']} (medians over rounds, min-max in brackets)",
        caption=report["description"]
        + (f"; matrix-multiply peak {peak / 1e9:.1f} GFLOP/s measured in this run" if peak else ""),
    )
    ratios = render.table(
        ["comparison", "throughput a/b", "memory a/b"],
        [
            (r["comparison"], f"{r['throughput_ratio']:.2f}x", f"{r['memory_ratio']:.2f}x")
            for r in report["ratios"]
        ],
        title="ratios of medians (a/b, same run)",
    )
    out = [per, ratios]
    for name, r in report["results"].items():
        if name.startswith("repro") and "head" in (r.get("phases") or {}):
            out.append(phase_table(r, peak))
            break  # the first repro contender (repro SimPO in every preset)
    if "against" in report:
        out.append(revision_table(report))
    return out


PHASES = (
    ("data", "data (collation, before the step)"),
    ("body", "body: decoder layers, forward and backward"),
    ("head", "head: chunked log-probs, forward and backward"),
    ("loss", "loss: the objective"),
    ("optimizer", "optimizer: clipping, AdamW, zero_grad"),
    ("other", "other"),
)


SEGMENTS = ["body forward", "head forward", "loss", "head backward", "body backward", "optimizer"]


def phase_table(result: dict[str, Any], peak: float | None):
    phases, flops = result["phases"], result["model_flops_per_step"]
    step = phases["step"] + phases.get("data", 0.0)
    work = {"body": flops["body"] + flops["attention"], "head": flops["head"]}
    rows = []
    for key, label in PHASES:
        seconds = phases.get(key, 0.0)
        rate = work[key] / seconds if key in work and seconds else None
        rows.append(
            (
                label,
                f"{seconds:.3f}",
                f"{seconds / step:.0%}" if step else "-",
                f"{rate / 1e9:.1f}" if rate else "-",
                f"{rate / peak:.0%}" if rate and peak else "-",
            )
        )
    memory = result.get("memory_peaks") or {}
    caption = None
    if memory:
        top = max(memory, key=memory.get)
        ordered = sorted(memory, key=lambda k: SEGMENTS.index(k) if k in SEGMENTS else len(SEGMENTS))
        caption = "peak RSS by segment of the step, GiB: " + ", ".join(
            f"{k} {memory[k] / GIB:.2f}" for k in ordered
        )
        caption += f" (highest: {top})"
    return render.table(
        ["phase", "s per step", "share", "model GFLOP/s", "of peak"],
        rows,
        title=f"where {result['contender']}'s step time goes (medians)",
        caption=caption,
    )


def revision_table(report: dict[str, Any]):
    other = report["against"]
    label = other["revision"]
    rows = []
    for change in report["changes"]:
        name, metric = change["contender"], change["metric"]
        mine, theirs = report["results"][name], other["results"][name]
        key, fmt, scale, unit = {
            "tokens_per_second": ("tokens_per_second_spread", ".0f", 1.0, "tokens/s"),
            "cpu_seconds_per_step": ("cpu_seconds_per_step_spread", ".2f", 1.0, "CPU s/step"),
            "peak_memory_bytes": ("peak_memory_spread", ".2f", GIB, "peak GiB"),
        }[metric]
        band = "-"
        if change["low"] is not None:
            band = f"{change['low'] - 1:+.1%} to {change['high'] - 1:+.1%}"
        rows.append(
            (
                name,
                unit,
                _range(mine[key], fmt, scale),
                _range(theirs[key], fmt, scale),
                f"{change['ratio'] - 1:+.1%}",
                band,
                change["verdict"],
            )
        )
    working = other.get("working") or {}
    here = (working.get("commit") or "?")[:7] + (" + changes" if working.get("modified") else "")
    return render.table(
        [
            "contender",
            "metric",
            f"working ({here})",
            f"{label} ({other['commit'][:7]})",
            "change",
            "95% band",
            "",
        ],
        rows,
        title=f"working tree against {label}: interleaved rounds, change paired by round",
    )


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
