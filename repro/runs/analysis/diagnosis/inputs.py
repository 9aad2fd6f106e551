"""What a diagnosis reads: a run folder's files, or alpaca_eval-format files made elsewhere.

Every piece is optional: a missing or unreadable file is recorded by name (`missing`), and
the checks that need it say `unknown` with that name. Bad user input for the outputs mode
(another instruction set, a malformed annotations file) is one ReproError line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from repro import hub, userpaths
from repro.config.validate import read_yaml
from repro.errors import ReproError, UsageError
from repro.evaluation.generation.decoding import Decoding
from repro.evaluation.records import EvaluationResult
from repro.evaluation.scorers import alpaca_eval
from repro.runs.analysis import published, released
from repro.runs.results.manifest import FILE as MANIFEST
from repro.runs.results.manifest import Manifest
from repro.runs.results.result import FILE, RunResult


@dataclass
class Inputs:
    setting: str | None = None
    method: str | None = None
    run_dir: Path | None = None
    manifest: Manifest | None = None
    result: RunResult | None = None  # result.json (an unfinished run: made from its evaluation)
    evaluation: EvaluationResult | None = None  # eval/evaluation.json: the evaluation's record and key
    outputs: list[dict[str, Any]] | None = None
    outputs_path: str | None = None
    annotations: list[dict[str, Any]] | None = None
    annotations_path: str | None = None
    leaderboard: dict[str, Any] | None = None  # the outputs' row of a --leaderboard CSV
    leaderboard_path: str | None = None
    curves_path: Path | None = None
    decoding: dict[str, Any] | None = None  # the decoding the answers were generated with
    tokenizer_dir: Path | None = None  # token counts, family stops: the trained or evaluated model
    checkpoint: bool = False  # a `repro eval` output: a checkpoint trained elsewhere, evaluated here
    missing: dict[str, str] = field(default_factory=dict)  # file -> why

    def need(self, *names: str) -> str | None:
        """Why the named files cannot be used (one phrase), or None when they all can."""
        gone = [f"{n} ({self.missing[n]})" for n in names if n in self.missing]
        return "missing " + ", ".join(gone) if gone else None

    @property
    def config(self) -> dict[str, Any] | None:
        return self.manifest.config if self.manifest else None

    def alpaca_eval(self) -> dict[str, Any] | None:
        return self.result.benchmarks.get("alpaca_eval2") if self.result else None


T = TypeVar("T")


def _recorded(path: Path, label: str, read: Callable[[], T], inputs: Inputs) -> T | None:
    """A run's file through its one reader (result.json, manifest.json); missing or unreadable
    (not JSON, or not the record's shape alike) is recorded under `label`, not raised: `run`
    then says what is missing, or that verify fails."""
    if not path.exists():
        inputs.missing[label] = "not found"
        return None
    try:
        return read()
    except ReproError as exc:
        inputs.missing[label] = f"unreadable: {str(exc).removeprefix(f'{path}: ')}"
        return None


def _json(path: Path, inputs: Inputs, label: str) -> Any:
    if not path.exists():
        inputs.missing[label] = "not found"
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        inputs.missing[label] = f"unreadable: {type(exc).__name__}"
        return None


def from_run(run_dir: Path, curves: Path | None = None) -> Inputs:
    """A run folder: finished, or partial (what it lacks is recorded in `missing`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: not a directory")
    inputs = Inputs(run_dir=run_dir, curves_path=curves)
    inputs.manifest = _recorded(run_dir / MANIFEST, MANIFEST, lambda: Manifest.read(run_dir), inputs)
    inputs.result = _recorded(run_dir / FILE, FILE, lambda: RunResult.read(run_dir / FILE), inputs)
    inputs.evaluation = EvaluationResult.read_run_folder(run_dir / "eval")
    if inputs.result is None and inputs.evaluation:  # an unfinished run: its evaluation may have finished
        inputs.result = RunResult.of(inputs.evaluation, model=inputs.evaluation.model)
    config = inputs.config or {}
    inputs.setting = config.get("setting") or (inputs.result.setting if inputs.result else None)
    inputs.method = config.get("method") or (inputs.result.method if inputs.result else None)
    # a `repro eval` output (a checkpoint's result.json, no run around it): its benchmarks' files
    # lie in the folder itself, and a checkpoint the authors released is held to the released
    # answers of the method its published row lists it under
    checkpoint = inputs.result is not None and inputs.result.of_checkpoint and inputs.manifest is None
    inputs.checkpoint = checkpoint = checkpoint and not (run_dir / "eval").is_dir()
    if checkpoint:
        inputs.missing[MANIFEST] = "a `repro eval` of a checkpoint writes none"
        inputs.method = published.released_as(published.load(), inputs.result.setting, inputs.result.model)
    nothing = not inputs.setting and not (run_dir / MANIFEST).exists() and not inputs.result
    if nothing and not (run_dir / "train").is_dir() and not (run_dir / "eval").is_dir():
        raise UsageError(
            f"{run_dir}: not a repro run folder (no manifest.json, result.json, train/ or eval/)"
        )
    # AlpacaEval's answers and judgments as the evaluation that result.json names wrote them:
    # files an earlier evaluation left on disk are not evidence for this result
    folder = "eval/alpaca_eval2" if not checkpoint else "alpaca_eval2"
    folder = inputs.evaluation.folder("alpaca_eval2") if inputs.evaluation else folder
    if inputs.result is not None and "alpaca_eval2" not in inputs.result.benchmarks:
        for name in ("model_outputs.json", "annotations.json"):
            inputs.missing[f"eval/alpaca_eval2/{name}"] = (
                "AlpacaEval 2 is not part of result.json's evaluation"
            )
    else:
        outputs = _json(
            run_dir / folder / "model_outputs.json", inputs, "eval/alpaca_eval2/model_outputs.json"
        )
        if isinstance(outputs, list):
            inputs.outputs = outputs
            inputs.outputs_path = str(run_dir / folder / "model_outputs.json")
        annotations = _json(
            run_dir / folder / "annotations.json", inputs, "eval/alpaca_eval2/annotations.json"
        )
        if isinstance(annotations, list):
            inputs.annotations = annotations
            inputs.annotations_path = str(run_dir / folder / "annotations.json")
    inputs.decoding = (inputs.alpaca_eval() or {}).get("decoding")
    if checkpoint:
        inputs.tokenizer_dir = _checkpoint_tokenizer(inputs.result)
    else:
        root = next((d for d in (run_dir, *run_dir.parents) if (d / "train").is_dir()), run_dir)
        model = root / "train" / "model"
        if (model / "tokenizer_config.json").exists():
            inputs.tokenizer_dir = model
    return inputs


def _checkpoint_tokenizer(result: RunResult) -> Path | None:
    """The tokenizer a `repro eval` answered with: the evaluated folder, or a hub model's commit
    as the local cache holds it (diagnose downloads nothing). None when neither is here."""
    if hub.is_hub_id(result.model):
        folder = hub.cached_snapshot(result.model, result.model_commit) if result.model_commit else None
    else:
        folder = Path(result.model).expanduser()
    return folder if folder is not None and (folder / "tokenizer_config.json").is_file() else None


def read_outputs(path: Path) -> list[dict[str, Any]]:
    """An alpaca_eval model_outputs.json: a list of {instruction, output, ...}."""
    data = userpaths.read_json(path, "alpaca_eval model outputs")
    if not isinstance(data, list) or not data:
        raise ReproError(f"{path}: expected a non-empty JSON list of {{instruction, output}} objects")
    for i, row in enumerate(data):
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str):
            raise ReproError(f"{path}: entry {i} has no 'instruction' string")
        if not isinstance(row.get("output"), str):
            raise ReproError(f"{path}: entry {i} has no 'output' string")
    return data


def read_annotations(path: Path) -> list[dict[str, Any]]:
    """An alpaca_eval annotations.json as the judging check reads it (instruction, preference)."""
    annotations = alpaca_eval.load_annotations(path, needed=frozenset({"instruction", "preference"}))
    alpaca_eval.one_model_once_per_instruction(annotations, path)
    return annotations


def from_files(
    outputs: Path,
    *,
    setting: str,
    method: str,
    annotations: Path | None = None,
    leaderboard: Path | None = None,
) -> Inputs:
    """Results made elsewhere: alpaca_eval-format outputs, optionally annotations and a leaderboard."""
    inputs = Inputs(setting=setting, method=method, outputs_path=str(outputs))
    inputs.outputs = read_outputs(outputs)
    if annotations is not None:
        inputs.annotations = read_annotations(annotations)
        inputs.annotations_path = str(annotations)
        _same_outputs(inputs.outputs, inputs.annotations, outputs, annotations)
    if leaderboard is not None:
        rows = released.leaderboard_rows(leaderboard)
        generator = str(inputs.outputs[0].get("generator") or "")
        inputs.leaderboard_path = str(leaderboard)
        if generator in rows:
            inputs.leaderboard = {"generator": generator, **rows[generator]}
        else:
            inputs.missing[str(leaderboard)] = (
                f"no row for the outputs' generator '{generator or '(unnamed)'}'"
            )
    recorded = inputs.outputs[0].get("decoding") or inputs.outputs[0].get("generation_config")
    if isinstance(recorded, dict):
        inputs.decoding = recorded
    elif (beside := Path(outputs).parent / "configs.yaml").is_file():
        inputs.decoding = generator_config(beside)
    return inputs


def generator_config(path: Path) -> dict[str, Any] | None:
    """The decoding an alpaca_eval model config (configs.yaml beside the outputs) asked for, read
    as alpaca-eval 0.6.2 read it (`do_sample: true` is beam search of width 1)."""
    try:
        data = read_yaml(path)
    except ReproError:
        return None
    entry = next(iter(data.values()), None) if isinstance(data, dict) and len(data) == 1 else None
    kwargs = entry.get("completions_kwargs") if isinstance(entry, dict) else None
    if not isinstance(kwargs, dict) or "max_new_tokens" not in kwargs:
        return None
    decoding = Decoding.alpaca_eval(kwargs).__dict__
    decoding.pop("seed", None)
    decoding["source"] = str(path)
    return decoding


def _same_outputs(outputs: list[dict], annotations: list[dict], opath: Path, apath: Path) -> None:
    """Annotations of other answers than the outputs' cannot speak for them."""
    answers = {o["instruction"]: o["output"] for o in outputs}
    shared = [a for a in annotations if a.get("instruction") in answers]
    if not shared:
        raise ReproError(
            f"{apath}: none of its instructions is in {opath} (annotations of another instruction set)"
        )
    judged = [a for a in shared if "output_2" in a]
    other = sum(1 for a in judged if a["output_2"] != answers[a["instruction"]])
    if judged and other > len(judged) // 2:
        raise ReproError(
            f"{apath}: {other} of {len(judged)} judged answers (output_2) differ from {opath}: "
            "annotations of other outputs"
        )
