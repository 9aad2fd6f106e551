"""Which runs are replicates of each other, and what a run that is not the recipe changed.

Runs are replicates when everything that decides their numbers is the same but the seed: the
run config without `seed` (the code that made it included), the judge that scored it and the
generation engine. Only replicates are averaged by `repro compare`; any other difference (a
`--set` override, a grid point, `--max-steps`, another tokenizer or judge) is another row that
names what differs from the recipe. Training cut short by `--max-steps` is "truncated".
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from repro.config.runconfig import RunConfig, flatten
from repro.evaluation.judge.judged_by import JudgedBy
from repro.runs.results.result import Difference, Training, Variant
from repro.train.outcome import TrainingOutcome

# What of each benchmark's evaluation key (repro.runs.pipeline.evaluations.benchmark_key) decides
# its numbers beyond the config, the judge and the engine: the questions' cut, the generation
# config's content, a plugin's code and the data files given. Not the weights: each seed has its own.
EVALUATED = ("limit", "generation_config_sha256", "plugin", "data")


def identity(
    config: RunConfig,
    *,
    judge: JudgedBy | None,
    backend: str,
    evaluated: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Everything that decides a run's scores but the seed, flattened (`judge` None: unknown).
    `evaluated`: each benchmark's evaluation key (None: an older record's, unknown)."""
    # as the judgment cache knows a judge
    judged_by = {"kind": judge.kind, "model": judge.model} if judge else {"kind": None, "model": None}
    inputs = {
        name: {k: v for k, v in bench_key.items() if k in EVALUATED}
        for name, bench_key in sorted((evaluated or {}).items())
    }
    extra = {"evaluated": inputs} if inputs else {}
    return {**config.identity_values(), **flatten({"judge": judged_by, "backend": backend, **extra})}


def key(flat: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()


def differences(config: RunConfig, *, judge: JudgedBy | None, backend: str) -> Variant | None:
    """Each value that is not the recipe's (code version aside), by flattened name: the config's
    own record of them (found when it was resolved), with the judge and the engine; None when
    the config has no such record (repro.config.resolution.with_recipe_differences finds them
    for an older run's config, where its recipe still resolves)."""
    if config.recipe_differences is None:
        return None
    found = {name: Difference(*values) for name, values in config.recipe_differences.items()}
    # the recipe is judged by its own setting's judge, through transformers
    recipe_judge = found.get("evaluation.judge", Difference(None, config.evaluation.judge)).recipe
    ours = {"judge.kind": judge.kind if judge else None, "backend": backend}
    theirs = {"judge.kind": recipe_judge, "backend": "transformers"}
    found |= {name: Difference(ours[name], theirs[name]) for name in ours if ours[name] != theirs[name]}
    return dict(sorted(found.items()))


def epoch_steps(config: RunConfig, train_rows: int | None) -> int | None:
    """Optimizer steps of `num_train_epochs` over `train_rows` rows (as the Trainer counts them:
    batches per process, then accumulation), or None when the row count is unknown."""
    if not train_rows:
        return None
    batch = config.batch
    per_step = batch.per_device * batch.world_size
    batches = math.ceil(train_rows / per_step)
    return max(1, math.ceil(batches / batch.gradient_accumulation_steps)) * math.ceil(config.num_train_epochs)


def training_extent(config: RunConfig, outcome: TrainingOutcome | None) -> Training:
    """Steps trained against the recipe's full training; `full` is False when --max-steps cut it.
    Without an outcome (an old run folder without metrics.json) the steps are unknown."""
    steps, kept = (outcome.steps, outcome.train_rows_kept) if outcome else (None, None)
    rows = kept or config.train_rows
    full_steps = epoch_steps(config, rows)
    if config.max_steps is None:
        full = True
    elif full_steps is None:
        full = False  # a cap on an unknown length: not the recipe's training as far as we can tell
    else:
        full = config.max_steps >= full_steps
    return Training(steps=steps, recipe_steps=full_steps, full=full)


@dataclass(frozen=True)
class Kind:
    """What result.json says of a run's kind: its replicate key, what differs from the recipe
    (None: the recipe cannot be resolved any more), and how far it trained."""

    replicate_key: str
    variant: Variant | None
    training: Training


def describe(
    config: RunConfig,
    *,
    judge: JudgedBy | None,
    backend: str,
    outcome: TrainingOutcome | None,
    evaluated: dict[str, dict[str, Any]] | None = None,
) -> Kind:
    """A run's kind (`repro run` writes it; `repro compare` rebuilds it for old runs).
    `evaluated`: each benchmark's evaluation key, so that runs evaluated on other data, another
    generation config or another plugin are no replicates (None: unknown, an older record)."""
    return Kind(
        replicate_key=key(identity(config, judge=judge, backend=backend, evaluated=evaluated)),
        variant=differences(config, judge=judge, backend=backend),
        training=training_extent(config, outcome),
    )


def label(variant: Variant | None, extent: Training | None) -> str:
    """A row label: '' for the recipe itself, else what differs, e.g. 'hyperparameters.beta 0.5'."""
    parts = []
    if extent and (truncated := extent.truncation()):
        parts.append(truncated)
    for name, values in (variant or {}).items():
        if name == "max_steps" and parts:
            continue  # said by "truncated"
        shown = name.removeprefix("hyperparameters.")  # beta, gamma: the paper's names
        parts.append(f"{shown} {_short(values.run)}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    text = "none" if value is None else str(value)
    return text if len(text) <= 24 else f"{text[:10]}..{text[-10:]}"
