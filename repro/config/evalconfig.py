"""Per-setting evaluation configs (eval/generation/SETTING.yaml): prompts and decoding."""

from __future__ import annotations

from typing import Any

from repro import paths
from repro.config.validate import read_yaml
from repro.errors import ReproError


def generation(setting: str) -> dict[str, Any]:
    path = paths.GENERATION / f"{setting}.yaml"
    if not path.exists():
        raise ReproError(f"no generation config for setting '{setting}' ({path.relative_to(paths.ROOT)})")
    data = read_yaml(path)
    if not isinstance(data, dict) or "alpaca_eval" not in data:
        raise ReproError(f"{path}: expected an 'alpaca_eval' section")
    return data


def chat_template(setting: str) -> dict[str, Any] | None:
    """The chat template a setting's Arena-Hard (and MT-Bench) answers are generated with: its
    name, the text (byte for byte the SimPO repo's file), the source, and whether the setting's
    Arena-Hard config is borrowed from another setting. None without a generation config."""
    from repro.data import served_templates

    path = paths.GENERATION / f"{setting}.yaml"
    if not path.exists():
        return None
    arena = generation(setting).get("arena_hard") or {}
    name = arena.get("chat_template")
    if not name:
        return None
    text, source = served_templates.lookup(name)
    info: dict[str, Any] = {"name": name, "source": arena.get("chat_template_source") or source, "text": text}
    for key in ("borrowed_from", "borrowed_reason"):
        if arena.get(key):
            info[key] = arena[key]
    if name in served_templates.CORRECTED:
        info["corrected"] = served_templates.CORRECTED[name]
    return info
