"""recipe: every resolved value of the run against the setting's published recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro import paths
from repro.config.methods import get_method
from repro.config.resolution import resolve
from repro.config.runconfig import INCIDENTAL, NOT_IN_IDENTITY, flatten
from repro.config.settings import get_setting, list_settings
from repro.errors import ReproError
from repro.runs.analysis.diagnosis.base import Check, in_chain, rules, unknown
from repro.runs.analysis.diagnosis.inputs import Inputs

# Not recipe values: what the identity leaves out (descriptions, the differences from the recipe
# found at resolution, checkpointing, trackers), its hash, the code that ran and the hub commits.
IGNORED = {*NOT_IN_IDENTITY, "config_hash", *INCIDENTAL}
# Values a run may change without changing what it reproduces: another seed is a replicate
# (`repro compare` averages it with the recipe's runs), said in the summary, never a cause.
REPLICATE = {"seed"}  # RunConfig.identity_values leaves out the seed: all a replicate changes
LAYOUT = {
    "batch.per_device",
    "batch.gradient_accumulation_steps",
    "batch.num_processes",
    "batch.num_nodes",
    "batch.world_size",
    "batch.layout",
}


def published_config(config: dict[str, Any]) -> Any:
    """The setting's recipe for this method, resolved with the run's process and node counts."""
    name = config["setting"]
    recipe = config.get("recipe_file") or ""
    candidate = Path(recipe) if Path(recipe).is_absolute() else paths.ROOT / recipe
    setting = get_setting(name if name in list_settings() else str(candidate))
    method = get_method(config["method"])
    batch = config.get("batch") or {}
    try:
        return resolve(
            setting, method, num_processes=batch.get("num_processes"), num_nodes=batch.get("num_nodes", 1)
        )
    except ReproError:  # the run's process count does not divide the total: compare the default layout
        return resolve(setting, method)


@in_chain("recipe", order=1)
def check(inputs: Inputs) -> Check:
    if inputs.config is None:
        why = inputs.need("manifest.json") or "no resolved config (results made outside repro)"
        return unknown("recipe", f"cannot compare the recipe: {why}")
    config = inputs.config
    try:
        paper = published_config(config)
    except ReproError as exc:
        return unknown("recipe", f"cannot resolve the setting's recipe: {exc}")
    ours = {k: v for k, v in flatten(config).items() if k.split(".")[0] not in IGNORED}
    theirs = {k: v for k, v in flatten(paper.to_json()).items() if k.split(".")[0] not in IGNORED}
    differences = {
        key: {"run": ours.get(key), "recipe": theirs.get(key)}
        for key in sorted(set(ours) | set(theirs))
        if ours.get(key) != theirs.get(key)
    }
    sources = config.get("sources") or {}
    overridden = sorted(k for k, v in sources.items() if v == "command line (--set)")
    key_values: dict[str, str] = rules()["recipe_key_values"]
    layout = {k: v for k, v in differences.items() if k in LAYOUT}
    result = Check(
        "recipe",
        evidence={
            "setting": config["setting"],
            "method": config["method"],
            "recipe_file": config.get("recipe_file"),
            "differences": differences,
            "overrides": overridden,
            "batch": config.get("batch"),
        },
    )
    named = [k for k in differences if k in key_values]
    for key in named:
        d = differences[key]
        weight = 80 if key == "batch.total" else 70
        result.differs(
            f"not the paper's recipe: {key_values[key]} {d['run']} where the recipe has {d['recipe']}", weight
        )
    others = [k for k in differences if k not in key_values and k not in LAYOUT and k not in REPLICATE]
    seeds = {k: v for k, v in differences.items() if k in REPLICATE}
    if others:
        listed = ", ".join(f"{k}={differences[k]['run']} (recipe {differences[k]['recipe']})" for k in others)
        result.differs(f"recipe values changed: {listed}", 40)
    if result.status == "ok":
        result.summary = f"every resolved value matches the {config['setting']} recipe for {config['method']}"
        if layout:
            result.summary += "; batch layout changed with the same total: " + ", ".join(
                f"{k.split('.')[-1]} {v['run']} (recipe {v['recipe']})" for k, v in layout.items()
            )
        if seeds:
            result.summary += "; another seed (a replicate, averaged with the recipe's runs): " + ", ".join(
                f"{k} {v['run']} (recipe {v['recipe']})" for k, v in seeds.items()
            )
    else:
        changed = [*named, *others]
        result.summary = f"{len(changed)} value(s) differ from the {config['setting']} recipe: " + ", ".join(
            f"{k} {differences[k]['run']} (recipe {differences[k]['recipe']})" for k in changed
        )
        if overridden:
            result.summary += f"; set on the command line: {', '.join(overridden)}"
    return result
