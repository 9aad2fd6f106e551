"""`repro recipes` and `repro show`."""

from __future__ import annotations

from typing import Annotated

from repro.cli import render
from repro.cli.common import (
    CONFIG_OPTIONS,
    MethodOpt,
    SettingArg,
    app,
    format_option,
    with_config_options,
)
from repro.config import evalconfig
from repro.config.config_options import ConfigOptions
from repro.config.resolution import overview


@app.command("recipes")
def recipes_cmd(fmt: Annotated[str, format_option("table", "json", "yaml")] = "table") -> None:
    """Settings x methods with their resolved hyperparameters and where each comes from."""
    rows = overview()
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
@with_config_options(only=("num_processes", "num_nodes", "layout", "overrides"))
def show_cmd(
    setting: SettingArg,
    method: MethodOpt = "simpo",
    fmt: Annotated[str, format_option("table", "yaml", "json")] = "table",
    options: ConfigOptions = CONFIG_OPTIONS,  # --gpus, --nodes, --layout and --set
) -> None:
    """The fully resolved config of SETTING x METHOD, with derived values and sources."""
    config, _ = options.resolve(setting, method)

    data = config.to_json()
    if template := evalconfig.chat_template(config.evaluation.generation):  # generation: not in the hash
        data["arena_hard_chat_template"] = template
    if fmt == "json":
        render.print_json(data)
    elif fmt == "yaml":
        render.print_yaml(data)
    else:
        sources = config.sources
        flat = {**{k: v for k, v in data.items() if k != "hyperparameters"}, **config.hyperparameters}
        rows = []
        for key, value in flat.items():
            if key in ("sources", "notes"):
                continue
            if key == "arena_hard_chat_template":
                value = f"{value['name']} ({value['source']})"
            if key == "batch":
                value = f"{config.batch.describe()} ({config.batch.layout})"
            if key == "recipe_differences":  # what the flags changed
                changed = [
                    f"{k} {render.number(v[0])} (recipe {render.number(v[1])})" for k, v in value.items()
                ]
                value = "; ".join(changed) or "none: the recipe as it is"
            rows.append((key, render.number(value), sources.get(key, "")))
        notes = "\n".join(f"note: {n}" for n in config.notes) or None
        render.print_table(
            render.table(
                ["key", "value", "source"],
                rows,
                title=f"{config.setting} x {config.method}",
                caption=notes,
            )
        )
