"""Preference pairs from AlpacaEval's real judge annotations, binarized as UltraFeedback was.

The sources are alpaca_eval's `results/<model>/weighted_alpaca_eval_gpt4_turbo/annotations.json`
files (shared/data/alpaca_eval/preferences/ and annotations/, or the same files downloaded from
the alpaca_eval repository at the commit in preferences/COMMIT) and the GPT-4-Turbo reference
answers (reference/gpt4_1106_preview.json). Each annotation judges one model's answer
(`output_2`) against the reference (`output_1`) on one of the 805 instructions; `preference`
in [1, 2] is GPT-4-Turbo's weighted preference (2: the model's answer preferred).

Binarization, as HuggingFaceH4/ultrafeedback_binarized was made from UltraFeedback's scores:
- each answer's score is its probability of beating the reference, `preference - 1`; the
  reference itself scores 0.5 (a tie with itself);
- the best-scored answer is chosen, and the rejected answer is drawn (seeded per instruction)
  from the answers scored strictly lower;
- only answers and instructions under the character caps are candidates, so a pair fits a
  CPU run without truncation (truncation would cut the answers' ends, EOS included).

The split is by instruction: `heldout` instructions, picked by a seeded hash of their text (so
adding source files does not move them), are never trained on. They are the evaluation's
AlpacaEval instructions, and their pairs form the `test` split (held-out reward accuracy).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro import paths
from repro.errors import ReproError

NAME = "repro:alpaca-eval-preferences"  # a setting's `dataset` when it is built from these files
FOLDERS = ("preferences", "annotations")
REFERENCE = Path("reference") / "gpt4_1106_preview.json"
REFERENCE_SCORE = 0.5  # the reference against itself: a tie


@dataclass(frozen=True)
class Binarization:
    """How the pairs are made (a setting's `data:` section; every value is in the run's identity)."""

    max_prompt_chars: int = 400
    max_answer_chars: int = 600
    heldout: int = 64  # instructions never trained on: the evaluation's AlpacaEval instructions
    train_pairs: int | None = None  # None: every training instruction that yields a pair
    test_pairs: int | None = None
    seed: int = 42


@dataclass(frozen=True)
class Scored:
    score: float  # P(answer beats the reference), from the judge's weighted preference
    text: str
    generator: str


@dataclass
class Report:
    files: int = 0
    annotations: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count (annotations not used)
    instructions: int = 0
    train_pairs: int = 0
    test_pairs: int = 0
    no_pair: int = 0  # instructions with fewer than two candidates of different scores

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "skipped": dict(self.skipped)}


def source_files(folder: Path) -> list[Path]:
    """The annotation files and the reference under `folder`; one line when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReproError(f"{folder}: no such folder (AlpacaEval annotations: preferences/, annotations/)")
    files = sorted(p for sub in FOLDERS for p in (folder / sub).glob("*.json"))
    if not files:
        raise ReproError(f"{folder}: no annotation files in {' or '.join(f'{s}/' for s in FOLDERS)}")
    if not (folder / REFERENCE).is_file():
        raise ReproError(f"{folder}: no {REFERENCE} (the GPT-4-Turbo reference answers)")
    return [*files, folder / REFERENCE]


def default_source() -> Path | None:
    """shared/data/alpaca_eval, when shared/ is there."""
    shared = paths.shared_dir()
    folder = shared / "data" / "alpaca_eval" if shared else None
    return folder if folder and folder.is_dir() else None


def digest(folder: Path) -> str:
    """SHA-256 over the source files (names relative to `folder`, and bytes)."""
    sha = hashlib.sha256()
    for path in source_files(folder):
        sha.update(str(path.relative_to(folder)).encode() + b"\0")
        sha.update(path.read_bytes() + b"\0")
    return sha.hexdigest()


def _load_list(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReproError(f"{path}: not a JSON file ({str(exc).splitlines()[0][:80]})") from None
    if not isinstance(data, list):
        raise ReproError(f"{path}: expected a JSON list of annotations, got {type(data).__name__}")
    return data


def read(folder: Path, report: Report | None = None) -> tuple[dict[str, list[Scored]], dict[str, str]]:
    """Scored answers by instruction, and the reference answers. A file whose rows are not
    annotations is one line naming it; a row without a usable preference is a counted skip."""
    report = report if report is not None else Report()
    files = source_files(folder)
    reference: dict[str, str] = {}
    for i, row in enumerate(_load_list(folder / REFERENCE)):
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("instruction"), str)
            or not isinstance(row.get("output"), str)
        ):
            raise ReproError(f"{folder / REFERENCE}: row {i} is not an {{instruction, output}} object")
        reference[row["instruction"]] = row["output"]
    scored: dict[str, list[Scored]] = {}
    for path in files[:-1]:
        report.files += 1
        for i, row in enumerate(_load_list(path)):
            if not isinstance(row, dict) or not all(
                isinstance(row.get(k), str) for k in ("instruction", "output_2", "generator_2")
            ):
                raise ReproError(
                    f"{path}: row {i} is not an AlpacaEval annotation "
                    "(instruction, output_2, generator_2, preference)"
                )
            report.annotations += 1
            preference = row.get("preference")
            try:
                value = float(preference)
            except (TypeError, ValueError):
                report.skipped["no preference"] += 1
                continue
            if not math.isfinite(value) or not 1.0 <= value <= 2.0:
                report.skipped["preference outside [1, 2]"] += 1
                continue
            if row["instruction"] not in reference:
                report.skipped["instruction not in the reference"] += 1
                continue
            scored.setdefault(row["instruction"], []).append(
                Scored(value - 1.0, row["output_2"], row["generator_2"])
            )
    return scored, reference


def _key(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def heldout_instructions(instructions: list[str], config: Binarization) -> list[str]:
    """The `heldout` instructions with the smallest seeded hash, in the reference's order."""
    chosen = set(sorted(instructions, key=lambda t: _key(config.seed, t))[: config.heldout])
    return [t for t in instructions if t in chosen]


def heldout_from(folder: Path, config: Binarization) -> list[str]:
    """The held-out instructions of `folder`'s reference file (what `write` puts in heldout.json)."""
    rows = _load_list(Path(folder) / REFERENCE)
    return heldout_instructions(
        [r["instruction"] for r in rows if isinstance(r, dict) and "instruction" in r], config
    )


def _pair(instruction: str, answers: list[Scored], config: Binarization) -> dict[str, Any] | None:
    candidates = [a for a in answers if a.text.strip() and len(a.text) <= config.max_answer_chars]
    if len({a.score for a in candidates}) < 2:
        return None
    best = max(candidates, key=lambda a: (a.score, a.generator))  # ties broken by name: deterministic
    lower = sorted((a for a in candidates if a.score < best.score), key=lambda a: a.generator)
    rejected = random.Random(_key(config.seed, "rejected:" + instruction)).choice(lower)
    user = {"role": "user", "content": instruction}
    return {
        "prompt": instruction,
        "chosen": [user, {"role": "assistant", "content": best.text}],
        "rejected": [user, {"role": "assistant", "content": rejected.text}],
        "score_chosen": round(best.score, 6),
        "score_rejected": round(rejected.score, 6),
        "generator_chosen": best.generator,
        "generator_rejected": rejected.generator,
    }


def binarize(folder: Path, config: Binarization) -> tuple[list[dict], list[dict], list[str], Report]:
    """(train rows, test rows, held-out instructions, report)."""
    report = Report()
    scored, reference = read(folder, report)
    instructions = list(reference)
    heldout = heldout_instructions(instructions, config)
    held = set(heldout)
    train, test = [], []
    for instruction in instructions:
        if len(instruction) > config.max_prompt_chars and instruction not in held:
            continue
        answers = [
            *scored.get(instruction, []),
            Scored(REFERENCE_SCORE, reference[instruction], "gpt4_1106_preview"),
        ]
        row = _pair(instruction, answers, config)
        if row is None:
            report.no_pair += 1
            continue
        (test if instruction in held else train).append(row)
    # a seeded subset, in a seeded order (the trainer shuffles again with the setting's seed)
    for rows, cap in ((train, config.train_pairs), (test, config.test_pairs)):
        random.Random(config.seed).shuffle(rows)
        del rows[cap if cap is not None else len(rows) :]
    report.instructions = len(instructions)
    report.train_pairs, report.test_pairs = len(train), len(test)
    return train, test, heldout, report


def write(folder: Path, output: Path, config: Binarization) -> Report:
    """train.jsonl, test.jsonl, heldout.json (the evaluation's instructions) and binarization.json
    (sources' digest, the config, the report) under `output`."""
    train, test, heldout, report = binarize(folder, config)
    if not train:
        raise ReproError(f"{folder}: no training pair could be made ({report.as_dict()})")
    output.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("test", test)):
        with open(output / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    (output / "heldout.json").write_text(json.dumps(heldout, indent=1, ensure_ascii=False))
    record = {"sources_sha256": digest(folder), "config": asdict(config), "report": report.as_dict()}
    (output / "binarization.json").write_text(json.dumps(record, indent=2))
    return report
