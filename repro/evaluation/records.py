"""What an evaluation hands on: each benchmark's result and the evaluation's record.

`repro run` keeps the record as eval/evaluation.json (with the inputs it was made from, `key`,
so a rerun with the same inputs reuses it); a run folder of an older repro has the same
record as eval/result.json, still read (`EvaluationResult.read_run_folder`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import io, records
from repro.data import bosguard
from repro.errors import ReproError
from repro.evaluation.judge.judged_by import JudgedBy

SCHEMA = "repro.evaluation/1"
FILE = "evaluation.json"
OLD_FILE = "result.json"  # what repro before the typed records called it


@dataclass(frozen=True)
class BenchmarkResult:
    """One benchmark's output, as its module wrote it (its own keys: see repro.evaluation.benchmarks)."""

    name: str
    output: dict[str, Any]
    seconds: float | None = None

    @property
    def incomplete(self) -> bool:
        """Some judgments never came back (counted in the output)."""
        return bool(self.output.get("incomplete"))


@dataclass(frozen=True)
class EvaluationResult:
    model: str
    setting: str
    benchmarks: dict[str, BenchmarkResult]
    scores: dict[str, Any]  # the published tables' metrics (the benchmarks' `scores`)
    judge: JudgedBy | None  # who judged, with what the judge said of itself (None: an older record's unknown)
    limit: int | None  # --limit N where it left questions out of a benchmark (None: it left none out)
    stage: str = "all"
    judge_calls: dict[str, Any] | None = None  # the gateway's counts
    resumed_answers: dict[str, Any] | int | None = None  # answers a killed run had written
    notes: list[str] = field(default_factory=list)
    bos_check: bosguard.Report | None = None  # the evaluated tokenizer's
    timings_seconds: dict[str, float] = field(default_factory=dict)  # per benchmark
    stage_seconds: dict[str, float] = field(default_factory=dict)  # generate / judge / score
    key: dict[str, Any] | None = None  # repro run: the inputs this evaluation was made from
    # where each benchmark's files are, relative to the run folder (absent: eval/BENCHMARK)
    folders: dict[str, str] = field(default_factory=dict)
    schema: str = SCHEMA

    @property
    def incomplete_benchmarks(self) -> list[str]:
        return [name for name, b in self.benchmarks.items() if b.incomplete]

    @property
    def complete(self) -> bool:
        return not self.incomplete_benchmarks

    def folder(self, benchmark: str) -> str:
        """The folder of `benchmark`'s answers and judgments, relative to the run folder."""
        return self.folders.get(benchmark, f"eval/{benchmark}")

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {name: b.output for name, b in self.benchmarks.items()}

    def with_key(self, key: dict[str, Any]) -> EvaluationResult:
        return dataclasses.replace(self, key=key)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["benchmarks"] = self.outputs()
        data["bos_check"] = self.bos_check.to_json() if self.bos_check else None
        data["judge"] = self.judge.to_json() if self.judge else {}
        return data

    @classmethod
    def from_json(cls, data: Any, where: str) -> EvaluationResult:
        records.exact_keys(data, cls, where, optional=("key", "folders"))
        if data["schema"] != SCHEMA:
            raise ReproError(f"{where}: schema {data['schema']!r}, expected {SCHEMA!r}")
        if not isinstance(data["benchmarks"], dict):
            raise ReproError(f"{where}: benchmarks must be a mapping")
        benches = {
            name: BenchmarkResult(name, output, (data["timings_seconds"] or {}).get(name))
            for name, output in data["benchmarks"].items()
        }
        return cls(
            **{**data, "benchmarks": benches, "bos_check": _bos(data["bos_check"], where),
               "judge": JudgedBy.from_json(data["judge"], where)}
        )  # fmt: skip

    def write(self, folder: Path) -> Path:
        path = folder / FILE
        io.write_json(path, self.to_json())
        return path

    @classmethod
    def read_run_folder(cls, folder: Path) -> EvaluationResult | None:
        """The evaluation record of a run's eval/ folder, or None when there is none (or an
        unreadable one: the evaluation is then simply redone). An older repro's eval/result.json
        (the run-result layout with `key`) is read as the same record."""
        if (folder / FILE).exists():
            try:
                return cls.from_json(records.read(folder / FILE), str(folder / FILE))
            except ReproError:
                return None
        old = io.read_json(folder / OLD_FILE)
        if not isinstance(old, dict) or not isinstance(old.get("benchmarks"), dict):
            return None
        timings = old.get("timings_seconds") or {}
        return cls(
            model=old.get("model", ""),
            setting=old.get("setting", ""),
            benchmarks={n: BenchmarkResult(n, o, timings.get(n)) for n, o in old["benchmarks"].items()},
            scores=old.get("scores") or {},
            judge=JudgedBy.from_json(old.get("judge"), str(folder / OLD_FILE), lenient=True),
            limit=old.get("limit"),
            judge_calls=old.get("judge_calls"),
            resumed_answers=old.get("resumed_answers"),
            notes=old.get("notes") or [],
            bos_check=_bos(old.get("bos_check"), str(folder / OLD_FILE)),
            timings_seconds=timings,
            key=old.get("key"),
        )


def _bos(data: Any, where: str) -> bosguard.Report | None:
    """The evaluated tokenizer's BOS report (an older record's run-result layout held it under
    `eval`)."""
    stages = bosguard.Stages.recorded(data, f"{where}: bos_check")
    return stages.eval if stages else None
