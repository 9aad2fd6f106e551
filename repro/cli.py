"""The `repro` command line: a thin layer over the library (recipes, published, environment)."""

from __future__ import annotations

import sys
import warnings
from typing import Annotated

import click
import typer

from repro import environment, published, recipes, render
from repro.errors import ReproError, unknown

try:  # typer >= 0.22 vendors its own copy of click
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover
    _typer_click = click.exceptions

_ClickException = (click.exceptions.ClickException, _typer_click.ClickException)
_NoSuchOption = (click.exceptions.NoSuchOption, _typer_click.NoSuchOption)
_UsageError = (click.exceptions.UsageError, _typer_click.UsageError)
_Exit = (click.exceptions.Exit, typer.Exit)
_Abort = (click.exceptions.Abort, typer.Abort)
_NoArgsIsHelp = tuple(
    cls
    for cls in (
        getattr(_typer_click, "NoArgsIsHelpError", None),
        getattr(click.exceptions, "NoArgsIsHelpError", None),
    )
    if cls
)


app = typer.Typer(
    name="repro",
    help="Reproduce SimPO, DPO and seven baselines on the paper's six settings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
env_app = typer.Typer(help="Check, freeze and diff the software environment.", no_args_is_help=True)
app.add_typer(env_app, name="env")

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output format.")]


# ---------------------------------------------------------------------------- recipes


@app.command("recipes")
def recipes_cmd(fmt: FormatOpt = "table") -> None:
    """Settings x methods with their resolved hyperparameters and where each comes from."""
    render.check_format(fmt, ("table", "json", "yaml"))
    methods = recipes.load_methods()
    rows = []
    for name in recipes.list_settings():
        setting = recipes.get_setting(name, methods)
        for method in methods.values():
            config = recipes.resolve(setting, method)
            hps = {k: config[k] for k in [*method.hyperparameters, "learning_rate"]}
            if method.name == "simpo":
                hps["gamma"] = config["gamma"]
            published_here = method.name in setting.methods
            rows.append(
                {
                    "setting": name,
                    "method": method.name,
                    "hyperparameters": hps,
                    "source": "published" if published_here else "default",
                }
            )
    if fmt == "json":
        render.print_json(rows)
    elif fmt == "yaml":
        render.print_yaml(rows)
    else:

        def show(hps: dict) -> str:
            return " ".join(f"{k}={render.number(v)}" for k, v in hps.items() if k != "loss_type")

        render.print_table(
            render.table(
                ["setting", "method", "hyperparameters", "source"],
                [(r["setting"], r["method"], show(r["hyperparameters"]), r["source"]) for r in rows],
                title="Recipes",
                caption="published: the seed README's tables; default: unpublished, see recipes/methods.yaml",
            )
        )


@app.command("show")
def show_cmd(
    setting: Annotated[
        str, typer.Argument(help="A setting name (see `repro recipes`) or a recipe YAML file.")
    ],
    method: Annotated[
        str,
        typer.Option("--method", "-m", help="simpo, dpo, ipo, cpo, kto, orpo, rdpo, rrhf, slic-hf"),
    ] = "simpo",
    fmt: FormatOpt = "table",
    gpus: Annotated[
        int | None,
        typer.Option("--gpus", help="GPUs (processes) per node; accumulation is derived."),
    ] = None,
    nodes: Annotated[int, typer.Option("--nodes", help="Number of nodes.")] = 1,
    layout: Annotated[
        str, typer.Option("--layout", help="current (4x2x16) or paper-time (8x2x8).")
    ] = "current",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a value: --set beta=2.5")
    ] = None,
) -> None:
    """The fully resolved config of SETTING x METHOD, with derived values and sources."""
    render.check_format(fmt, ("table", "yaml", "json"))
    methods = recipes.load_methods()
    the_method = recipes.get_method(method, methods)
    the_setting = recipes.get_setting(setting, methods)
    config = recipes.resolve(
        the_setting,
        the_method,
        overrides=recipes.parse_overrides(overrides or []),
        num_processes=gpus,
        num_nodes=nodes,
        layout=layout,
    )
    if fmt == "json":
        render.print_json(config)
    elif fmt == "yaml":
        render.print_yaml(config)
    else:
        sources = config["sources"]
        rows = []
        for key, value in config.items():
            if key in ("sources", "notes"):
                continue
            if key == "batch":
                b = value
                value = (
                    f"{b['total']} = {b['per_device']} per device x {b['gradient_accumulation_steps']} "
                    f"accumulation x {b['num_processes']} processes x {b['num_nodes']} nodes ({b['layout']})"
                )
            rows.append((key, render.number(value), sources.get(key, "")))
        notes = "\n".join(f"note: {n}" for n in config["notes"]) or None
        render.print_table(
            render.table(
                ["key", "value", "source"],
                rows,
                title=f"{config['setting']} x {config['method']}",
                caption=notes,
            )
        )


# ---------------------------------------------------------------------------- published


@app.command("published")
def published_cmd(
    setting: Annotated[str | None, typer.Option("--setting", "-s", help="Only this setting.")] = None,
    method: Annotated[str | None, typer.Option("--method", "-m", help="Only this method.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """The paper's published scores (seed README tables), with known errata flagged."""
    render.check_format(fmt, ("table", "csv", "json"))
    rows = published.select(published.load(), setting, method)
    if fmt == "json":
        render.print_json([r.as_dict() for r in rows])
        return
    columns = [*published.ID_COLUMNS, *published.METRICS]
    if fmt == "csv":
        render.print_csv(
            [*columns, "errata"],
            [
                [
                    *(getattr(r, c) for c in published.ID_COLUMNS),
                    *(r.text[m] for m in published.METRICS),
                    ";".join(e["cell"] for e in r.errata),
                ]
                for r in rows
            ],
        )
        return
    # Table: leave out columns that are empty for every selected row.
    metrics = [m for m in published.METRICS if any(r.text[m] for r in rows)]
    body = []
    for r in rows:
        flagged = {e["cell"] for e in r.errata}
        cells = [r.text[m] + ("*" if m in flagged else "") for m in metrics]
        model_id = r.model_id + ("*" if "model_id" in flagged else "")
        body.append((r.table, r.setting, r.method, model_id, *cells))
    render.print_table(
        render.table(
            ["table", "setting", "method", "model", *(published.METRIC_TITLES[m] for m in metrics)],
            body,
            title=f"Published scores ({len(rows)} rows)",
            caption="* known erratum: see results/published/errata.yaml or --format json",
        )
    )


# ---------------------------------------------------------------------------- env


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
    lock: Annotated[str | None, typer.Option("--lock", help="Lockfile (default env/lock-cpu.txt).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when anything differs.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List matching packages too.")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Compare the installed packages with the lockfile and print the drift."""
    render.check_format(fmt, ("table", "json"))
    from pathlib import Path

    lock_path = Path(lock) if lock else environment.paths.LOCK_CPU
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
    lock: Annotated[str | None, typer.Option("--lock", help="Lockfile to hash and compare.")] = None,
    fmt: FormatOpt = "json",
) -> None:
    """Print the environment manifest that every run embeds."""
    render.check_format(fmt, ("json", "yaml"))
    from pathlib import Path

    manifest = environment.freeze(Path(lock) if lock else None)
    render.print_json(manifest) if fmt == "json" else render.print_yaml(manifest)


@env_app.command("diff")
def env_diff(
    against: Annotated[str, typer.Option("--against", help="What to diff against: paper.")] = "paper",
    show_all: Annotated[bool, typer.Option("--all", help="List matching packages too.")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """How the installed environment differs from the paper's (SimPO environment.yml)."""
    render.check_format(fmt, ("table", "json"))
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


# ---------------------------------------------------------------------------- entry point


def _usage_message(exc: Exception) -> str:
    """One line for click's usage errors, with the valid choices and the closest match."""
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, _NoSuchOption) and ctx is not None:
        options = [o for p in ctx.command.params for o in getattr(p, "opts", []) if o.startswith("-")]
        return str(unknown(f"option for '{ctx.command_path}'", exc.option_name, options))
    message = exc.format_message()
    if isinstance(exc, _UsageError) and ctx is not None and "No such command" in message:
        word = message.split("'")[1] if "'" in message else ""
        return str(unknown(f"command for '{ctx.command_path}'", word, getattr(ctx.command, "commands", {})))
    return " ".join(message.split())


def _warn(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    sys.stderr.write(f"repro: warning: {message}\n")


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _warn
    try:
        app(args=argv, standalone_mode=False)
    except ReproError as exc:
        sys.stderr.write(f"repro: error: {exc}\n")
        return exc.exit_code
    except _Exit as exc:
        return exc.exit_code
    except _Abort:
        sys.stderr.write("repro: aborted\n")
        return 130
    except _NoArgsIsHelp:  # bare `repro` or `repro env`: typer has printed the help
        return 0
    except _ClickException as exc:
        sys.stderr.write(f"repro: error: {_usage_message(exc)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("repro: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
