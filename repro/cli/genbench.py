"""`repro bench generate`: vLLM against transformers on the same prompts and decodings, one run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

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
    for tbl in genbench.tables(report):
        render.print_table(tbl)
    render.console(stderr=True).print(f"wrote {path}")
