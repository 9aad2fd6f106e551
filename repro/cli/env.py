"""`repro env check|freeze|diff`."""

from __future__ import annotations

from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import env_app, format_option
from repro.errors import ReproError, unknown
from repro.stack import components, environment, lockfile


def _status(row: environment.Drift) -> str:
    """`modified: 2 files (torch/__init__.py, ...)` names the first files that differ."""
    if not row.files:
        return row.status
    names = ", ".join(row.files[:3]) + (", ..." if len(row.files) > 3 else "")
    return f"{row.status}: {len(row.files)} file{'s' * (len(row.files) > 1)} ({names})"


def _drift_table(rows: list[environment.Drift], title: str, show_all: bool) -> None:
    shown = [r for r in rows if show_all or r.status != "ok"]
    statuses = ("ok", "differs", "missing", "extra", "modified")
    counts = {s: sum(r.status == s for r in rows) for s in statuses}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if not shown:
        render.console().print(f"{title}: all {counts['ok']} packages match")
        return
    render.print_table(
        render.table(
            ["package", "expected", "installed", "status"],
            [(r.package, r.expected or "", r.installed or "", _status(r)) for r in shown],
            title=title,
            caption=summary,
        )
    )


@env_app.command("check")
def env_check(
    lock: Annotated[
        str | None, typer.Option("--lock", help="cpu (default), gpu, or a lockfile's path.")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when anything differs.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List matching packages too.")] = False,
    rehash: Annotated[bool, typer.Option("--rehash", help="Hash every installed file again.")] = False,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Compare the installed packages, and their files, with a lock and print the drift."""
    lock_path = lockfile.resolve(lock)
    rows = environment.check(lock_path, rehash=rehash)
    if fmt == "json":
        render.print_json([r.__dict__ for r in rows if show_all or r.status != "ok"])
    else:
        _drift_table(rows, f"Environment vs {lock_path.name}", show_all)
    drifted = [r for r in rows if r.status != "ok"]
    if drifted and strict:
        raise ReproError(f"{len(drifted)} packages differ from {lock_path.name} (--strict)")


@env_app.command("freeze")
def env_freeze(
    lock: Annotated[
        str | None, typer.Option("--lock", help="cpu, gpu or a path (default: the closest lock).")
    ] = None,
    fmt: Annotated[str, format_option("json", "yaml")] = "json",
) -> None:
    """Print the environment manifest that every run embeds."""
    manifest = environment.freeze(lock)
    render.print_json(manifest) if fmt == "json" else render.print_yaml(manifest)


@env_app.command("diff")
def env_diff(
    against: Annotated[
        str, typer.Option("--against", metavar="paper", help="What to diff against: paper.")
    ] = "paper",
    show_all: Annotated[bool, typer.Option("--all", help="List matching packages too.")] = False,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """How the installed environment differs from the paper's (SimPO environment.yml)."""
    if against != "paper":
        raise unknown("--against target", against, ["paper"])
    rows, data = environment.diff_paper()
    if fmt == "json":
        render.print_json(
            {
                "source": data.get("source"),
                "known_conflicts": data.get("known_conflicts", []),
                "packages": [r.__dict__ for r in rows if show_all or r.status != "ok"],
            }
        )
        return
    _drift_table(rows, f"Environment vs the paper's ({data.get('source')})", show_all)
    for conflict in data.get("known_conflicts", []):
        render.console().print(f"known conflict in the paper's file: {conflict}")


@env_app.command("show")
def env_show(
    lock: Annotated[str, typer.Option("--lock", help="cpu, gpu, or a lockfile's path.")] = "gpu",
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """The stack (torch, CUDA runtime, vLLM, flash-attn, DeepSpeed, transformers, TRL) as the lock
    pins it, as installed here, and as the paper's environment pinned it."""
    path = lockfile.resolve(lock)
    paper = environment.paper_pins()
    rows = components.show(path, environment.installed(), paper)
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
