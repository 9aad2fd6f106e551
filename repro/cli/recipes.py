"""`repro recipes` and `repro show`."""

from __future__ import annotations

from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import FormatOpt, app
from repro.config import recipes


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
    config, _ = recipes.resolve_names(
        setting, method, overrides=overrides, num_processes=gpus, num_nodes=nodes, layout=layout
    )
    from repro.config import evalconfig

    if template := evalconfig.chat_template(config["setting"]):  # generation, not training: no hash
        config["arena_hard_chat_template"] = template
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
            if key == "arena_hard_chat_template":
                value = f"{value['name']} ({value['source']})"
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
