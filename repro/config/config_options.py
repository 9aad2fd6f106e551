"""The command-line choices that shape a run's config, as one value: `repro run`, `repro train`
and `repro sweep` build it once from their flags and resolve it (repro.config.resolution.resolve_names)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from repro.config.methods import Method
from repro.config.resolution import resolve_names
from repro.config.runconfig import RunConfig


@dataclass(frozen=True)
class ConfigOptions:
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE, in the order given
    num_processes: int | None = None  # --gpus (None: the setting's)
    num_nodes: int = 1  # --nodes
    layout: str = "current"  # --layout
    padding_free: bool | None = None  # --padding-free/--padded (None: the setting's)
    dataset: str | None = None  # --dataset (None: the setting's)
    data_source: str | None = (
        None  # --data: the annotation files a built dataset is made from (None: shared/)
    )
    tokenization: str = "simpo"  # --tokenization
    max_steps: int | None = None  # --max-steps
    report_to: str | None = None  # --report-to (None: the recipe's)

    def with_overrides(self, values: dict[str, Any]) -> ConfigOptions:
        """A sweep point: its values as --set pairs after the user's own."""
        return dataclasses.replace(
            self, overrides=(*self.overrides, *(f"{k}={v}" for k, v in values.items()))
        )

    def resolve(self, setting: str, method: str) -> tuple[RunConfig, Method]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return resolve_names(setting, method, **{**fields, "overrides": list(self.overrides)})
