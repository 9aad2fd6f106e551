"""Arena-Hard v0.1 (arena-hard-auto is not pip-installable: reimplemented, checked against it).

Judging (gen_judgment.py, 2024-06): two games per question, game 1 A = baseline and B =
model, game 2 swapped; the verdict regex `\\[\\[([AB<>=]+)\\]\\]` over the whole judgment;
no verdict -> the judge is asked to continue once (two attempts); several distinct
verdicts -> no score.
Scoring (show_result.py at 4813756): each game becomes battles against the baseline,
strong verdicts (A>>B, B>>A) counted `weight` (3) times, unknown labels dropped. As every
battle is model vs baseline, the Bradley-Terry fit separates per model and its win rate
is exactly 100 x (wins + ties/2) / battles. CI: np.random.seed(42), 100 rounds resampling
the whole battle table (all models together) with replacement, percentiles 2.5/97.5 of
the ratings, converted to win rates. Answer lengths: tiktoken cl100k token counts.
"""

from __future__ import annotations

import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from repro import io
from repro.errors import ReproError

BASELINE = "gpt-4-0314"
LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
CONTINUE = "continue your judgment and finish by outputting a final verdict label"


# ---------------------------------------------------------------------------- battles and scores


def game_battles(label: str | None, game: int, weight: int = 3) -> list[str]:
    """Battle outcomes of one game, from the model's side: 'win', 'loss' or 'tie' (repeated by weight)."""
    table = {
        "A=B": ("tie", 1),
        "A>B": ("loss", 1),
        "A>>B": ("loss", weight),
        "B>A": ("win", 1),
        "B>>A": ("win", weight),
    }
    if not isinstance(label, str) or label not in table:  # a hand-edited file may hold anything
        return []
    outcome, times = table[label]
    if game == 2 and outcome != "tie":  # game 2 has the model in position A
        outcome = "win" if outcome == "loss" else "loss"
    return [outcome] * times


@dataclass
class Battles:
    model: np.ndarray  # index into `models` per battle
    outcome: np.ndarray  # 1 win, 0 loss, 0.5 tie (the model's side)
    models: list[str]
    # games per model whose verdict is missing or unknown (show_result.py drops them silently)
    dropped: dict[str, int] = field(default_factory=dict)


def battles_from_judgments(
    judgments: dict[str, list[dict[str, Any]]], *, weight: int = 3, first_game_only: bool = False
) -> Battles:
    """All models' battles in one table, in file order then line order (as show_result.py builds it)."""
    models = list(judgments)
    index, outcome = [], []
    dropped = dict.fromkeys(models, 0)
    value = {"win": 1.0, "loss": 0.0, "tie": 0.5}
    played = 1 if first_game_only else 2
    for m, model in enumerate(models):
        for row in judgments[model]:
            games = (row.get("games") or [])[:played]
            dropped[model] += played - len(games)  # a game that is not there has no verdict either
            for g, game in enumerate(games, start=1):
                results = game_battles(game.get("score") if isinstance(game, dict) else None, g, weight)
                dropped[model] += not results
                for result in results:
                    index.append(m)
                    outcome.append(value[result])
    return Battles(np.array(index, dtype=np.int64), np.array(outcome, dtype=np.float64), models, dropped)


def _win_rates(battles: Battles, rows: np.ndarray) -> np.ndarray:
    """Per model: (wins + ties/2) / battles over the selected battle rows (NaN without battles)."""
    counts = np.bincount(battles.model[rows], minlength=len(battles.models)).astype(float)
    points = np.bincount(battles.model[rows], weights=battles.outcome[rows], minlength=len(battles.models))
    with np.errstate(invalid="ignore", divide="ignore"):
        return points / counts


def _rating(p: np.ndarray) -> np.ndarray:
    """Elo-scale rating against the baseline anchored at 1000 (400 log10 odds)."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return 1000 + 400 * np.log10(p / (1 - p))


def _win_rate_from_rating(r: np.ndarray) -> np.ndarray:
    return 1 / (1 + 10 ** ((1000 - r) / 400))


def score(battles: Battles, *, rounds: int = 100, seed: int = 42) -> dict[str, dict[str, float]]:
    """Score and 95% CI per model, as show_result.py computes them."""
    n = len(battles.outcome)
    if n == 0:
        raise ReproError("no battles: every judgment lacks a verdict")
    point = _win_rates(battles, np.arange(n))
    np.random.seed(seed)  # show_result.py seeds the global generator; pandas .sample draws from it
    boot = np.array(
        [_rating(_win_rates(battles, np.random.choice(n, size=n, replace=True))) for _ in range(rounds)]
    )
    out = {}
    for m, model in enumerate(battles.models):
        column = boot[:, m]
        column = column[~np.isnan(column)]
        lower = _win_rate_from_rating(np.percentile(column, 2.5)) if len(column) else math.nan
        upper = _win_rate_from_rating(np.percentile(column, 97.5)) if len(column) else math.nan
        out[model] = {
            "score": _finite(100 * point[m]),
            "lower": _finite(100 * lower),
            "upper": _finite(100 * upper),
            "battles": int((battles.model == m).sum()),
            "games_without_verdict": battles.dropped.get(model, 0),
        }
    return out


def _finite(value: float) -> float | None:
    """None for a score that cannot be computed (a model without battles): JSON has no NaN."""
    value = float(value)
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------- files


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return io.read_jsonl(path)


def load_judgments(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Judgment files in arena-hard-auto's v0.1 format (one model per file), sorted by file name."""
    judgments: dict[str, list[dict[str, Any]]] = {}
    found = sorted(
        {
            p
            for path in paths
            for p in (sorted(Path(path).glob("*.jsonl")) if Path(path).is_dir() else [Path(path)])
        }
    )
    if not found:
        raise ReproError(f"no judgment files (*.jsonl) in {', '.join(map(str, paths))}")
    for file in found:
        rows = io.read_jsonl(file)
        if not rows:
            raise ReproError(f"{file}: empty file (no Arena-Hard judgments)")
        for n, row in enumerate(rows, 1):
            if not isinstance(row, dict) or not isinstance(row.get("games"), list):
                raise ReproError(f"{file}: judgment {n} is not an Arena-Hard judgment (no 'games' list)")
        model = rows[0].get("model", file.stem)
        if not isinstance(model, str):
            raise ReproError(f"{file}: model {json.dumps(model)} is not a name")
        judged = judgments.setdefault(model, [])
        seen = {r.get("question_id") for r in judged}
        for n, row in enumerate(rows, 1):
            # show_result.py would count a question judged twice twice
            if (question := row.get("question_id")) is not None and question in seen:
                raise ReproError(f"{file}: judgment {n}: question {question} of {model} is judged twice")
            seen.add(question)
        judged.extend(rows)
    return judgments


def load_answers(path: Path) -> list[dict[str, Any]]:
    """A model's answer file (gen_answer.py layout: choices[0].turns[0].content or token_len)."""
    rows = io.read_jsonl(path)
    if not rows:
        raise ReproError(f"{path}: empty file (no answers)")
    for n, row in enumerate(rows, 1):
        try:
            turn = row["choices"][0]["turns"][0]
            ok = isinstance(turn.get("token_len"), int) or isinstance(turn.get("content"), str)
        except (KeyError, IndexError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise ReproError(f"{path}: answer {n} has no choices[0].turns[0].content")
    return rows


def cl100k():
    """tiktoken's cl100k_base, offline: from TIKTOKEN_CACHE_DIR or the copy in shared/."""
    import os
    import tempfile

    import tiktoken

    try:
        return tiktoken.get_encoding("cl100k_base")
    except Exception:  # noqa: BLE001 - offline: fall back to the shared copy
        from repro import paths

        shared = paths.shared_dir()
        source = shared / "data" / "tokenizers" / "cl100k" / "cl100k_base.tiktoken" if shared else None
        if not source or not source.exists():
            raise ReproError(
                "tiktoken's cl100k_base is not cached and cannot be downloaded offline: on a machine "
                "online, run `python -c \"import tiktoken; tiktoken.get_encoding('cl100k_base')\"` with "
                "TIKTOKEN_CACHE_DIR=DIR, then set TIKTOKEN_CACHE_DIR=DIR here"
            ) from None
        cache = Path(tempfile.gettempdir()) / "repro-tiktoken"
        cache.mkdir(exist_ok=True)
        target = cache / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"  # tiktoken's cache name for cl100k_base
        if not target.exists():
            target.write_bytes(source.read_bytes())
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
        return tiktoken.get_encoding("cl100k_base")


def answer_tokens(answers: list[dict[str, Any]]) -> int:
    """show_result.py's avg_tokens: int(mean of choices[0].turns[0].token_len), computed when absent."""
    encoder = None
    total = 0
    for row in answers:
        turn = row["choices"][0]["turns"][0]
        if "token_len" not in turn:
            encoder = encoder or cl100k()
            turn["token_len"] = len(encoder.encode(turn["content"], disallowed_special=()))
        total += turn["token_len"]
    return int(total / len(answers)) if answers else 0


# ---------------------------------------------------------------------------- judging


def verdict(judgment: str, pattern: re.Pattern) -> tuple[str | None, bool]:
    """(label, try_again): get_score of gen_judgment.py."""
    matches = [m for m in pattern.findall(judgment) if m != ""]
    if len(set(matches)) == 0:
        return None, True
    if len(set(matches)) == 1:
        return matches[0].strip("\n"), False
    return None, False


def judge_question(
    chat, config: dict[str, Any], question: dict[str, Any], answer: dict[str, Any], baseline: dict[str, Any]
) -> dict[str, Any]:
    """Both games for one question; `chat(messages)` returns the judge's text (raises JudgeCallError)."""
    pattern = re.compile(config["regex_pattern"])
    games = []
    for game in (1, 2):
        a, b = (baseline, answer) if game == 1 else (answer, baseline)
        prompt_args = {f"question_{i + 1}": t["content"] for i, t in enumerate(question["turns"])}
        prompt_args["answer_1"] = a["choices"][0]["turns"][0]["content"]
        prompt_args["answer_2"] = b["choices"][0]["turns"][0]["content"]
        conv = [{"role": "system", "content": config["system_prompt"]}]
        conv += [{"role": "user", "content": t.format(**prompt_args)} for t in config["prompt_template"]]
        judgment, label, error = "", None, None
        for _ in range(config.get("number_of_judgment_attempts", 2)):
            try:
                new = chat(conv)
            except Exception as exc:  # noqa: BLE001 - a failed call is recorded, not fatal
                error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                break
            judgment += "\n" + new
            label, again = verdict(judgment, pattern)
            conv.append({"role": "assistant", "content": new})
            if not again:
                break
            conv.append({"role": "user", "content": CONTINUE})
        games.append(
            {
                "user_prompt": conv[1]["content"],
                "judgment": judgment,
                "score": label,
                **({"error": error} if error else {}),
            }
        )
    return {
        "question_id": question["question_id"],
        "model": answer["model_id"],
        "judge": config["judge_model"],
        "games": games,
    }


def judge(
    chat,
    config: dict[str, Any],
    questions: list[dict[str, Any]],
    answers: dict[str, dict],
    baseline: dict[str, dict],
    *,
    concurrency: int = 4,
    progress=None,
) -> list[dict[str, Any]]:
    """Judgments for every question that has both a model and a baseline answer, in question order."""
    todo = [q for q in questions if q["question_id"] in answers and q["question_id"] in baseline]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [
            pool.submit(
                judge_question, chat, config, q, answers[q["question_id"]], baseline[q["question_id"]]
            )
            for q in todo
        ]
        results = []
        for f in futures:
            results.append(f.result())
            if progress:
                progress()
    return results


def score_files(
    judgments: list[Path], *, answers: Path | None = None, weight: int = 3, rounds: int = 100
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """show_result.py over judgment files (or folders): score, CI, battles and, with the answer
    folder, average answer tokens. Returns the scores and the models without an answer file."""
    scores = score(battles_from_judgments(load_judgments(judgments), weight=weight), rounds=rounds)
    missing = []
    for model, row in scores.items():
        row["avg_tokens"] = None
        if answers is not None:
            file = Path(answers) / f"{model}.jsonl"
            if file.exists():
                row["avg_tokens"] = answer_tokens(load_answers(file))
            else:
                missing.append(model)
    return scores, missing


def notes(scores: dict[str, dict[str, Any]], missing: list[str], answers: Path | None) -> list[str]:
    """What a reader of `score_files`' table should know: models without an answer file, games
    without a valid verdict."""
    lines = [
        f"{Path(answers or '.') / (model + '.jsonl')}: no answer file for {model}; avg tokens left empty"
        for model in missing
    ]
    dropped = {m: r["games_without_verdict"] for m, r in scores.items() if r["games_without_verdict"]}
    if dropped:
        counts = ", ".join(f"{m} {n}" for m, n in dropped.items())
        lines.append(f"games without a valid verdict (not counted): {counts}")
    return lines
