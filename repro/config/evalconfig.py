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
