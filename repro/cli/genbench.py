"""`repro bench generate`: vLLM against transformers on the same prompts and decodings, one run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from repro.cli import render
from repro.cli.bench import bench_app
from repro.cli.common import FormatOpt


@bench_app.command("generate")
def bench_generate_cmd(
    preset: Annotated[
        str, typer.Option("--preset", help="A preset of benchmarks/generate-presets.yaml.")
    ] = "cpu-tiny",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="JSON report (default results/bench/generate-PRESET-TIME.json)."),
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Generate with each backend in its own process; print tokens/s and the vLLM/transformers ratio."""
    from repro.perf import genbench

    render.check_format(fmt, ("table", "json"))
    the_preset = genbench.get_preset(preset)
    with render.progress() as bar:
        task = bar.add_task(f"bench {preset}", total=None)

        def progress(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=f"bench {preset}: {name or 'done'}")

        report = genbench.run(the_preset, progress=progress)
    path = output or Path("results") / "bench" / f"generate-{preset}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    if fmt == "json":
        render.print_json(report)
        return
    for tbl in tables(report):
        render.print_table(tbl)
    render.console(stderr=True).print(f"wrote {path}")


def tables(report: dict[str, Any]) -> list:
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
    return [per, ratios]
