"""The SimPO authors' released AlpacaEval answers, as per-instruction statistics (not the texts).

`repro diagnose` compares a run's answers with the released answers of the same setting and
method. The texts are AlpacaEval data (CC BY-NC 4.0) and stay out of the project; what ships
is, per instruction, a hash of the instruction and the answer's length in characters and
words, plus the public leaderboard's row, with the alpaca_eval commit they came from
(results/published/released/). `build` regenerates them from alpaca_eval-format files
(`scripts/released_stats.py`).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import paths
from repro.config.validate import read_yaml
from repro.errors import ReproError

RELEASED = paths.PUBLISHED / "released"
INDEX = RELEASED / "alpaca_eval.yaml"
STAT_COLUMNS = ("index", "instruction_sha", "dataset", "chars", "words")
LEADERBOARD_COLUMNS = ("win_rate", "standard_error", "length_controlled_winrate", "avg_length", "n_total")


def instruction_sha(instruction: str) -> str:
    """A short, stable name for one instruction (12 hex digits of its SHA-256)."""
    return hashlib.sha256(instruction.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class AnswerStat:
    index: int
    instruction_sha: str
    dataset: str
    chars: int
    words: int


@dataclass(frozen=True)
class Released:
    generator: str
    setting: str
    method: str
    leaderboard: dict[str, Any]
    stats: list[AnswerStat]
    source: str

    def by_instruction(self) -> dict[str, AnswerStat]:
        return {s.instruction_sha: s for s in self.stats}

    @property
    def avg_length(self) -> int:
        """alpaca-eval's avg_length: int(mean characters)."""
        return int(sum(s.chars for s in self.stats) / len(self.stats))


def stats_of(outputs: list[dict[str, Any]]) -> list[AnswerStat]:
    return [
        AnswerStat(
            i,
            instruction_sha(o["instruction"]),
            str(o.get("dataset") or ""),
            len(o["output"]),
            len(o["output"].split()),
        )
        for i, o in enumerate(outputs)
    ]


def index() -> dict[str, Any]:
    data = read_yaml(INDEX)
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ReproError(f"{INDEX}: expected a mapping with a 'models' list")
    return data


def instruction_set() -> set[str]:
    """The AlpacaEval instructions (their hashes), as the released answers cover them."""
    models = index()["models"]
    return {s.instruction_sha for s in _read_stats(RELEASED / models[0]["stats"])}


def pairs() -> list[tuple[str, str]]:
    return [(m["setting"], m["method"]) for m in index()["models"]]


def find(setting: str, method: str) -> Released | None:
    """The released answers of this setting x method, or None when the authors released none."""
    data = index()
    for entry in data["models"]:
        if entry["setting"] == setting and entry["method"] == method:
            return Released(
                generator=entry["generator"],
                setting=setting,
                method=method,
                leaderboard=dict(entry.get("leaderboard") or {}),
                stats=_read_stats(RELEASED / entry["stats"]),
                source=f"{data['source']} {entry['generator']} at {data['commit']}",
            )
    return None


def _read_stats(path: Path) -> list[AnswerStat]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [
                AnswerStat(
                    int(r["index"]), r["instruction_sha"], r["dataset"], int(r["chars"]), int(r["words"])
                )
                for r in csv.DictReader(fh)
            ]
    except FileNotFoundError:
        raise ReproError(f"{path}: no such file (released answer statistics)") from None


def write_stats(path: Path, stats: list[AnswerStat]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(STAT_COLUMNS)
        for s in stats:
            writer.writerow([s.index, s.instruction_sha, s.dataset, s.chars, s.words])


def leaderboard_rows(path: Path) -> dict[str, dict[str, Any]]:
    """An alpaca_eval leaderboard CSV: generator -> its row (numbers as floats)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            fields = reader.fieldnames or []
    except (OSError, UnicodeDecodeError) as exc:
        raise ReproError(f"{path}: unreadable leaderboard ({type(exc).__name__})") from None
    name_column = fields[0] if fields else ""
    if "avg_length" not in fields or "win_rate" not in fields:
        raise ReproError(f"{path}: not an alpaca_eval leaderboard (no win_rate and avg_length columns)")
    out = {}
    for row in rows:
        values: dict[str, Any] = {}
        for key in LEADERBOARD_COLUMNS:
            text = (row.get(key) or "").strip()
            try:
                values[key] = float(text) if text else None
            except ValueError:
                raise ReproError(f"{path}: {row.get(name_column)}: {key} '{text}' is not a number") from None
        out[row[name_column]] = values
    return out
