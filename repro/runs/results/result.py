"""result.json: what a run (or a `repro eval` of a checkpoint) scored, written here and read here.

A result says what it is: the model and setting it scores, the published-table metrics
(`scores`), every benchmark's full output (`benchmarks`), whether every judgment came back
(`complete`), and whether it covers only part of each benchmark (`partial`, with `limit`).
A run also says which runs are its replicates (`replicate_key`: everything but the seed, see
repro.runs.results.replicates), what it changed from its recipe (`variant`), and whether it trained as
long as the recipe says (`training.full`; a run cut by --max-steps is `partial` too, with the
reason in `partial_reasons`). `repro compare` averages complete replicates only.

`RunResult.read` is strict for this schema; a result.json of an older repro (repro.result/1) or
one made by hand (setting, method, scores, complete) is read with its missing keys defaulted,
after a check of the keys compare uses. Every score is a finite number, within its metric's
bounds where it has them (a win rate or an accuracy 0-100, MT-Bench 1-10: `Metric.bounds`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import io, records
from repro.data.bosguard import Stages
from repro.errors import ReproError
from repro.evaluation import benchmarks
from repro.evaluation.judge.judged_by import JudgedBy
from repro.evaluation.records import EvaluationResult


@dataclass(frozen=True)
class Training:
    """How a run trained (result.json's `training`): its held-out reward accuracy and loss, the
    optimizer steps it took, the steps its recipe takes over its data, and whether it trained as
    long as the recipe says (`full` is False when --max-steps cut it)."""

    held_out_reward_accuracy: float | None = None
    held_out_loss: float | None = None
    steps: int | None = None
    recipe_steps: int | None = None  # None: the row count is unknown (an old run folder)
    full: bool = True

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str, *, lenient: bool = False) -> Training | None:
        """result.json's `training` (null: a checkpoint's evaluation, no training); `lenient`: an
        older repro's, its missing keys defaulted and keys this one does not know left out."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ReproError(f"{where}: 'training' is not a mapping ({type(data).__name__})")
        known = [f.name for f in dataclasses.fields(cls)]
        if not lenient:
            records.exact_keys(data, cls, f"{where}: training", optional=tuple(known))
        return cls(**{k: v for k, v in data.items() if k in known})

    def truncation(self) -> str | None:
        """'truncated: 2 of 468 steps' when --max-steps cut the training, else None."""
        if self.full:
            return None
        of = f" of {self.recipe_steps}" if self.recipe_steps else ""
        return f"truncated: {self.steps}{of} steps"


@dataclass(frozen=True)
class Difference:
    """One value a run has that its recipe does not (result.json's `variant`, by flattened name)."""

    run: Any
    recipe: Any

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "recipe": self.recipe}


Variant = dict[str, Difference]  # what a run changed from its recipe; {} for the recipe itself


def variant_from_json(data: Any, where: str) -> Variant | None:
    """result.json's `variant` ({name: {"run": value, "recipe": value}}; null: unknown)."""
    if data is None:
        return None
    if not isinstance(data, dict) or not all(isinstance(v, dict) and set(v) == {"run", "recipe"}
                                             for v in data.values()):  # fmt: skip
        raise ReproError(f"{where}: 'variant' is not a mapping of names to their run and recipe values")
    return {name: Difference(v["run"], v["recipe"]) for name, v in data.items()}


def variant_to_json(variant: Variant | None) -> dict[str, Any] | None:
    return None if variant is None else {name: d.to_json() for name, d in variant.items()}


class NotARunResult(ReproError):
    """An older repro's eval/result.json: the evaluation record a run is made from, not a run's result."""


SCHEMA = "repro.result/2"
OLD_SCHEMAS = (None, "repro.result/1")  # read leniently (missing keys defaulted)
FILE = "result.json"
# only a `repro eval` of a hub model (model_commit) or against a model's answers (baseline_*)
# has them: absent otherwise, so every other result reads and writes as before they were added
OPTIONAL = ("model_commit", "baseline_model", "baseline_commit")


@dataclass(frozen=True)
class RunResult:
    model: str
    setting: str
    method: str | None  # None: a `repro eval` of a checkpoint
    run_id: str | None
    seed: int | None
    scores: dict[str, Any]
    training: Training | None  # None: a checkpoint's evaluation (`repro eval`)
    complete: bool
    incomplete_benchmarks: list[str]
    partial: bool
    partial_reasons: list[str]
    limit: int | None
    replicate_key: str | None
    variant: Variant | None
    judge: JudgedBy | None  # None: an older or hand-made result that does not say
    benchmarks: dict[str, Any]  # each benchmark's output (its module's keys)
    judge_calls: dict[str, Any] | None
    resumed_answers: Any
    notes: list[str]
    bos_check: Stages | None  # the BOS checks of training and of the evaluation
    timings_seconds: dict[str, Any] = field(default_factory=dict)
    # each plugin benchmark's identity (its file and declared inputs, repro.evaluation.benchmarks
    # .sources): compare averages a plugin's metric only over runs of the same plugin
    sources: dict[str, str] = field(default_factory=dict)
    # the hub commit a `repro eval` of a hub id loaded (None: a local model, or a run, whose
    # config holds its starting model's commit); absent from result.json when None
    model_commit: str | None = None
    # a `repro eval` against a model's answers (an init-model baseline, --reference-model): that
    # model as given and its hub commit (None: a local folder); absent from result.json when None
    # (a run's baseline is its starting model, which its config names)
    baseline_model: str | None = None
    baseline_commit: str | None = None
    schema: str = SCHEMA

    # ---------------------------------------------------------------- made from an evaluation

    @classmethod
    def of(
        cls,
        evaluation: EvaluationResult,
        *,
        model: str,
        method: str | None = None,
        run_id: str | None = None,
        seed: int | None = None,
        training: Training | None = None,
        judge: JudgedBy | None = None,
        bos_check: Stages | None = None,
        replicate_key: str | None = None,
        variant: Variant | None = None,
        sources: dict[str, str] | None = None,
        model_commit: str | None = None,
        baseline_model: str | None = None,
        baseline_commit: str | None = None,
    ) -> RunResult:
        limit = evaluation.limit
        reasons = [f"--limit {limit}: the first {limit} questions of each benchmark"] if limit else []
        if training and not training.full:
            of = f" of the recipe's {training.recipe_steps}" if training.recipe_steps else ""
            reasons.append(f"training stopped at {training.steps}{of} steps (--max-steps)")
        return cls(
            model=model,
            setting=evaluation.setting,
            method=method,
            run_id=run_id,
            seed=seed,
            scores=evaluation.scores,
            training=training,
            complete=evaluation.complete,
            incomplete_benchmarks=evaluation.incomplete_benchmarks,
            partial=bool(reasons),
            partial_reasons=reasons,
            limit=limit,
            replicate_key=replicate_key,
            variant=variant,
            judge=judge if judge is not None else evaluation.judge,
            benchmarks=evaluation.outputs(),
            judge_calls=evaluation.judge_calls,
            resumed_answers=evaluation.resumed_answers,
            notes=evaluation.notes,
            bos_check=bos_check or (Stages(eval=evaluation.bos_check) if evaluation.bos_check else None),
            timings_seconds=evaluation.timings_seconds,
            sources=dict(sources or {}),
            model_commit=model_commit,
            baseline_model=baseline_model,
            baseline_commit=baseline_commit,
        )

    # ---------------------------------------------------------------- JSON

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["training"] = self.training.to_json() if self.training else None
        data["bos_check"] = self.bos_check.to_json() if self.bos_check else None
        data["variant"] = variant_to_json(self.variant)
        data["judge"] = self.judge.to_json() if self.judge else {}
        for optional in OPTIONAL:  # absent when None, as in results before them
            if data[optional] is None:
                del data[optional]
        return data

    def write(self, path: Path) -> None:
        io.write_json(path, self.to_json())

    @classmethod
    def from_json(cls, data: Any, where: str) -> RunResult:
        if not isinstance(data, dict):
            raise ReproError(f"{where}: not a repro run result (a {type(data).__name__})")
        schema = data.get("schema")
        if schema == SCHEMA:
            # results before plugin sources; the OPTIONAL keys: only some evaluations have them
            records.exact_keys(data, cls, where, optional=("sources", *OPTIONAL))
            for name in OPTIONAL:
                if not isinstance(data.get(name), (str, type(None))):
                    raise ReproError(f"{where}: '{name}' is not a name or a commit")
            _check_scores(data["scores"], where)
            return cls(
                **{**data, "training": Training.from_json(data["training"], where),
                   "bos_check": Stages.recorded(data["bos_check"], f"{where}: bos_check"),
                   "variant": variant_from_json(data["variant"], where),
                   "judge": JudgedBy.from_json(data["judge"], where)}
            )  # fmt: skip
        if schema not in OLD_SCHEMAS:
            raise ReproError(f"{where}: unknown result schema {schema!r} (expected {SCHEMA!r})")
        if "key" in data:
            raise NotARunResult(f"{where}: an evaluation record (read through its run folder)")
        return cls._lenient(data, where)

    @classmethod
    def read(cls, path: Path) -> RunResult:
        return cls.from_json(records.read(path), str(path))

    @classmethod
    def _lenient(cls, data: dict[str, Any], where: str) -> RunResult:
        """An older repro's result (or a hand-made one): the keys compare needs, checked."""
        if not {"setting", "method", "scores"} <= set(data):
            raise ReproError(f"{where}: not a repro run result")
        if not isinstance(data["setting"], str) or not isinstance(data["method"], (str, type(None))):
            raise ReproError(f"{where}: setting and method are not names")
        _check_scores(data["scores"], where)
        known = {f.name for f in dataclasses.fields(cls)}
        defaults: dict[str, Any] = {
            "model": "", "run_id": None, "seed": None, "training": None, "complete": False,
            "incomplete_benchmarks": [], "partial": False, "partial_reasons": [], "limit": None,
            "replicate_key": None, "variant": None, "judge": {}, "benchmarks": {}, "judge_calls": None,
            "resumed_answers": None, "notes": [], "bos_check": None, "timings_seconds": {}, "sources": {},
            "model_commit": None, "baseline_model": None, "baseline_commit": None,
        }  # fmt: skip
        values = {**defaults, **{k: v for k, v in data.items() if k in known}}
        values["training"] = Training.from_json(values["training"], where, lenient=True)
        values["bos_check"] = Stages.recorded(values["bos_check"], f"{where}: bos_check")
        values["variant"] = variant_from_json(values["variant"], where)
        values["judge"] = JudgedBy.from_json(values["judge"], where, lenient=True)
        values["schema"] = data.get("schema") or "none (made by hand or by an older tool)"
        return cls(**values)

    # ---------------------------------------------------------------- what compare asks

    @property
    def of_checkpoint(self) -> bool:
        """A `repro eval` of a checkpoint (no method: nothing was trained here)."""
        return not self.method

    @property
    def blank_scores(self) -> list[str]:
        """The scores with no value (None or NaN, or a pair of them): what a table marks blank,
        with the reason its benchmark gives."""

        def blank(v: Any) -> bool:
            return v is None or (isinstance(v, float) and math.isnan(v))

        return [
            k
            for k, v in self.scores.items()
            if blank(v) or (isinstance(v, list) and all(blank(x) for x in v))
        ]

    def metric(self, key: str) -> float | None:
        """A numeric score (None when absent or not a number)."""
        value = self.scores.get(key)
        if (
            value is None
            or isinstance(value, (bool, list))
            or (isinstance(value, float) and math.isnan(value))
        ):
            return None
        return float(value)


def _check_scores(scores: Any, where: str) -> None:
    if not isinstance(scores, dict):
        raise ReproError(f"{where}: 'scores' is not a mapping ({type(scores).__name__})")
    ranges = {m.key: (m.title, m.bounds) for _, m in benchmarks.metrics() if m.bounds is not None}
    for key, value in scores.items():
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and not numeric and not isinstance(value, list):  # a CI is a list
            raise ReproError(f"{where}: scores.{key} is not a number ({json.dumps(value)[:40]})")
        if numeric and not math.isfinite(value):  # json reads NaN and Infinity; no score is either
            raise ReproError(f"{where}: scores.{key} is not a finite number ({value})")
        title, bounds = ranges.get(key, (key, None))
        if numeric and bounds and not bounds[0] <= value <= bounds[1]:  # a win rate of 1e9 (Metric.bounds)
            outside = f"outside {title}'s range {bounds[0]:g} to {bounds[1]:g}"
            raise ReproError(f"{where}: scores.{key} is {value:g}, {outside}")
