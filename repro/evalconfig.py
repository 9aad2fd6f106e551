"""Per-setting evaluation configs (eval/generation/SETTING.yaml): prompts and decoding."""

from __future__ import annotations

from typing import Any

from repro import paths
from repro.errors import ReproError
from repro.validate import read_yaml

JUDGED_BENCHES = ("alpaca_eval2", "arena_hard", "mt_bench")


def default_benches(setting: str) -> list[str]:
    """The benchmarks a setting is evaluated on unless --bench says otherwise: its generation
    config's `benches` (gemma2-9b-it adds ZeroEval's GSM and MMLU-Redux), else the judged three."""
    try:
        return list(generation(setting).get("benches") or JUDGED_BENCHES)
    except ReproError:
        return list(JUDGED_BENCHES)


def generation(setting: str) -> dict[str, Any]:
    path = paths.GENERATION / f"{setting}.yaml"
    if not path.exists():
        raise ReproError(f"no generation config for setting '{setting}' ({path.relative_to(paths.ROOT)})")
    data = read_yaml(path)
    if not isinstance(data, dict) or "alpaca_eval" not in data:
        raise ReproError(f"{path}: expected an 'alpaca_eval' section")
    return data
