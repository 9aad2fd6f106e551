"""`repro env check|freeze|diff`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import env_app, format_option, path_option
from repro.errors import ReproError, unknown
from repro.runs import environment


def _drift_table(rows: list[environment.Drift], title: str, show_all: bool) -> None:
    shown = [r for r in rows if show_all or r.status != "ok"]
    counts = {s: sum(r.status == s for r in rows) for s in ("ok", "differs", "missing", "extra")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if not shown:
        render.console().print(f"{title}: all {counts['ok']} packages match")
        return
    render.print_table(
        render.table(
            ["package", "expected", "installed", "status"],
            [(r.package, r.expected or "", r.installed or "", r.status) for r in shown],
            title=title,
            caption=summary,
        )
    )


@env_app.command("check")
def env_check(
    lock: Annotated[
        Path | None, path_option("--lock", role="file", help="Lockfile (default env/lock-cpu.txt).")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when anything differs.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List matching packages too.")] = False,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Compare the installed packages with the lockfile and print the drift."""
    lock_path = lock or environment.paths.LOCK_CPU
    rows = environment.check(lock_path)
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
        Path | None, path_option("--lock", role="file", help="Lockfile to hash and compare.")
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
