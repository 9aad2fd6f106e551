"""`repro env show`: the stack a lock pins, beside this environment's and the paper's."""

from __future__ import annotations

from typing import Annotated

import typer

from repro import environment, render
from repro.cli.common import FormatOpt, env_app
from repro.runs import lockfile, stack


@env_app.command("show")
def env_show(
    lock: Annotated[str, typer.Option("--lock", help="cpu, gpu, or a lockfile's path.")] = "gpu",
    fmt: FormatOpt = "table",
) -> None:
    """The stack (torch, CUDA runtime, vLLM, flash-attn, DeepSpeed, transformers, TRL) as the lock
    pins it, as installed here, and as the paper's environment pinned it."""
    render.check_format(fmt, ("table", "json"))
    path = lockfile.resolve(lock)
    paper = environment.paper_pins()
    rows = stack.show(path, environment.installed(), paper)
    if fmt == "json":
        render.print_json({"lock": str(path.name), "rows": [r.__dict__ for r in rows]})
        return
    render.print_table(
        render.table(
            ["component", path.name, "installed here", "paper"],
            [(r.component, r.lock or "-", r.installed or "-", r.paper or "-") for r in rows],
            title=f"Software stack: {path.name} vs this environment vs the paper's",
            caption=f"paper: {paper.get('source')}",
        )
    )
