"""metrics.json: what a finished training run reports, as one typed, frozen record.

The training worker writes it (`TrainingOutcome.write`) and everything else reads it through
`TrainingOutcome.read`, which refuses an unknown or a missing key in one line, like run.json.
A file without `schema` was written before the record had a version: schema 0, the same keys.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import io, records
from repro.errors import ReproError

FILE = "metrics.json"
SCHEMA = 1  # 0: the same keys without `schema` (files written before the record was typed)


@dataclass(frozen=True)
class TrainingOutcome:
    train: dict[str, Any]  # the last logged training step
    train_summary: dict[str, Any]  # the Trainer's train() metrics
    eval: dict[str, Any]  # held-out metrics after training (eval_loss, eval_rewards/accuracies, ...)
    eval_before_training: dict[str, Any]
    steps: int
    train_seconds: float
    world_size: int
    engine: dict[str, Any] | None  # what trained: DeepSpeed engine and ZeRO stage
    data: dict[str, Any] | None  # rows read, kept and dropped per split
    reference: dict[str, Any] | None  # the reference log-prob cache (DPO family)
    resumed_from: str | None  # the checkpoint training resumed from
    log_history: list[dict[str, Any]]  # the Trainer's logged dicts (curves are drawn from these)
    trackers: dict[str, Any] | None  # W&B / TensorBoard run names and places
    schema: int = SCHEMA

    @property
    def held_out_accuracy(self) -> float | None:
        return self.eval.get("eval_rewards/accuracies")

    @property
    def held_out_loss(self) -> float | None:
        return self.eval.get("eval_loss")

    @property
    def accuracy_before(self) -> float | None:
        return self.eval_before_training.get("eval_rewards/accuracies")

    @property
    def loss_before(self) -> float | None:
        return self.eval_before_training.get("eval_loss")

    @property
    def train_rows_kept(self) -> int | None:
        """Training rows left after length filtering (None: not recorded)."""
        return ((self.data or {}).get("train") or {}).get("kept")

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Any, where: str = FILE) -> TrainingOutcome:
        """Strict: every key present, nothing else (`schema` may be missing: schema 0)."""
        records.exact_keys(data, cls, where, optional=("schema",))
        schema = data.get("schema", 0)
        if not isinstance(schema, int) or schema > SCHEMA:
            raise ReproError(f"{where}: schema {schema!r} is newer than this repro reads ({SCHEMA})")
        return cls(**{**data, "schema": schema})

    @classmethod
    def read(cls, directory: Path) -> TrainingOutcome | None:
        """The outcome in a training directory, or None when it has none (yet)."""
        path = Path(directory) / FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise ReproError(f"{path}: not a readable metrics file ({exc})") from None
        return cls.from_json(data, where=str(path))

    def write(self, directory: Path) -> Path:
        path = Path(directory) / FILE
        io.write_json(path, self.to_json())
        return path
