"""What a benchmark is: its name, the metrics it puts in a run's scores, what judging it costs,
and one method that generates, judges and scores it.

A benchmark module declares everything about its benchmark in one place (the way an
lm-evaluation-harness task is one file): prompts, decoding (from the setting's generation
config), judging or scoring, metric keys with their direction, compare tolerance and the
published-table column they fill, and the judge-cost estimate. The runner only loops over
registered benchmarks (repro.evaluation.runner); `repro compare`, result.json, the cost
estimate and the CLI's --bench choices read the registry (repro.evaluation.benchmarks).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from repro.evaluation.generation.decoding import Decoding

if TYPE_CHECKING:  # types only: the runner's side imports the registry
    from repro.evaluation.answering import Answerer
    from repro.evaluation.eval_options import EvalOptions
    from repro.evaluation.generation.base import Backend


PERCENT = (0.0, 100.0)  # a win rate or an accuracy


@dataclass(frozen=True)
class Metric:
    """One number a benchmark puts in result.json's `scores`."""

    key: str  # the scores key, e.g. "ae2_lc"
    title: str  # as compare and plots label it
    higher_is_better: bool | None = True  # None: no direction (a length)
    tolerance: float | None = None  # compare's default +-; None: not compared with the paper
    # the values it can take, both ends included (PERCENT for a win rate or an accuracy): a
    # result.json holding another is refused when read; None: any finite number (a length, a count)
    bounds: tuple[float, float] | None = None
    decimals: int | None = None  # the published table's rounding (lengths: whole characters)
    published: bool = False  # a column of results/published/scores.csv
    column: str | None = None  # the published table's short header (default: title)
    headline: bool = False  # shown in sweep tables and `repro slurm status`

    @property
    def header(self) -> str:
        return self.column or self.title


@dataclass(frozen=True)
class DataOption:
    """A file or folder of the benchmark's data a user may point at: `repro run` and `repro eval`
    get the option `--NAME-WITH-DASHES` from it, and the benchmark reads the path back with
    `ev.options.data_path(name)` (None: not given). Benchmarks may share one (ZeroEval's tasks)."""

    name: str  # a field-like name, e.g. "zeroeval_data" (the option is --zeroeval-data)
    role: str  # "file" | "dir": what the CLI checks the path is
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class JudgeCost:
    """Judge calls for a full run of a benchmark, with typical token counts (an estimate)."""

    judge_model: str  # the paper's judge for this benchmark
    questions: int
    calls: int  # for all questions (two games per question: 2 x questions)
    input_tokens: int
    output_tokens: int
    note: str = ""


class Context(Protocol):
    """What the runner offers a benchmark (repro.evaluation.runner.Evaluation), all of it:
    tests/test_architecture.py checks that a benchmark module uses nothing else. `ask` answers
    single-turn questions through the chat template; `answer` takes prompts as they are; both
    write each answer as it completes (BENCHMARK/answers.jsonl) and resume a killed run."""

    limit: int | None  # --limit N (cutting with `subset(section, available)` says whether it cut)
    stage: str  # all | generate | judge
    config: dict[str, Any]  # the setting's generation config (eval/generation/NAME.yaml)
    options: EvalOptions  # the data files and switches given (--arena-hard-data, --zeroeval-bos, ...)
    baseline: str  # published (each benchmark's reference answers) | init-model (the starting model's)
    model_name: str
    max_new_tokens: int | None
    tokenizer: Any  # the evaluated model's
    generator: Backend  # the evaluated model's engine, for what `answer` does not cover
    answerer: Answerer  # the resumable answer files (MT-Bench's turn-by-turn answers)

    def subset(self, section: str, available: int | None = None) -> int | None: ...
    def heldout_instructions(self) -> list[str]: ...
    def folder(self, benchmark: str) -> Path: ...
    def question_set(self, entry: str) -> Path | None: ...
    def shared_data(self, relative: str) -> Path | None: ...
    def generator_fingerprint(self) -> str | None: ...
    def answer(
        self, benchmark: str, prompts: list[str], decoding: Decoding, *, reference: bool = False, **kw: Any
    ) -> list[str]: ...
    def ask(
        self, benchmark: str, questions: list[str], decoding: Decoding, *, reference: bool = False
    ) -> list[str]: ...
    def chat_prompt(self, messages: list[dict[str, str]] | str) -> tuple[str, bool]: ...
    def timed(self, stage: str) -> contextlib.AbstractContextManager[None]: ...
    def note(self, text: str) -> None: ...


class JudgeAccess(Protocol):
    """The judge during an evaluation: every call goes through one local gateway and one cache."""

    backend: Any  # the judge backend (alpaca-eval's annotator calls it through the gateway)
    cache: Path  # the judgment cache (SQLite)
    concurrency: int
    kind: str  # endpoint | rule
    model: str | None  # --judge-model (None: each benchmark's own)
    refresh: bool  # --refresh-judgments: stored judgments are asked again

    def chat(self, model: str, temperature: float, max_tokens: int, *, expect: str | None = None) -> Any:
        """A function from chat messages to the judge's text, through repro's gateway and cache.
        `expect`: a regular expression the answer must hold (the verdict you parse out of it);
        an answer without it is returned to you but never stored, so it is asked again next time."""
        ...


class Benchmark:
    """Subclass, set the class attributes, implement `run` and `scores`, and `register` it."""

    name: ClassVar[str]  # the --bench name and the folder of its outputs
    title: ClassVar[str]
    # Where its columns stand in the published tables, compare's rows and result.json (the
    # built-ins: 1-5); None: after those, in the order registered (a plugin's default).
    table_order: ClassVar[int | None] = None
    metrics: ClassVar[tuple[Metric, ...]] = ()
    judged: ClassVar[bool] = False  # needs the judge (and its gateway)
    published_judge: ClassVar[str | None] = None  # who judged the paper's numbers
    cost: ClassVar[JudgeCost | None] = None  # None: no judge calls
    # A plugin's data (questions, references, rules): files or folders, relative to the plugin's
    # own file. Their bytes join the evaluation's key and the replicate key, so a changed
    # questions file is a new evaluation. None: every file directly beside the plugin.
    inputs: ClassVar[tuple[str, ...] | None] = None
    # The data options it reads (--zeroeval-data and the like), declared here and nowhere else.
    data_options: ClassVar[tuple[DataOption, ...]] = ()

    def run(self, ev: Context, judge: JudgeAccess | None = None) -> dict[str, Any]:
        """Generate (resumably, through `ev.answer`), judge and score; the benchmark's output.
        `judge` is the gateway's judge for a judged benchmark (None when only generating). A
        dict with `incomplete: True` says some judgments never came back."""
        raise NotImplementedError

    def scores(self, output: dict[str, Any]) -> dict[str, Any]:
        """This benchmark's metrics (`metrics` keys) from its output."""
        raise NotImplementedError

    def why_missing(self, output: dict[str, Any], key: str) -> str:
        """Why metric `key` has no value in this output (a blank cell says why, in a few words)."""
        if output.get("incomplete"):
            return "incomplete: some judgments never came back"
        return "not computed"

    def failed_judgments(self, output: dict[str, Any]) -> int | None:
        """How many of its judgments failed (no verdict, no rating, no answer from the judge), as
        its output counts them; None: not judged, or not counted. `repro eval` and `repro run`
        show the count beside an incomplete benchmark."""
        return None

    def rule(self, messages: list[dict[str, Any]]) -> str | None:
        """How the tiny setting's rule judge (`--judge rule`, no model) answers this benchmark's
        judge prompt: its text, or None for a prompt that is not this benchmark's. The rule
        judge knows AlpacaEval's, Arena-Hard's and MT-Bench's formats; a judged plugin that
        runs under it gives its own rule here (a real judge never calls this)."""
        return None

    def rows(self, output: dict[str, Any]) -> list[tuple[str, str]]:
        """(what, value) lines for `repro eval`'s table; default: the metrics."""
        scores = self.scores(output)
        return [(m.title, fmt(scores.get(m.key))) for m in self.metrics]


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
