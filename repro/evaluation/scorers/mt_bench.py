"""MT-Bench single-answer grading through FastChat 0.2.36's own code (`fschat`, base, no extras).

FastChat does: the judge prompts (`common.load_judge_prompts`), the choice of prompt per turn
and category (`single-v1`, `single-v1-multi-turn`, and `single-math-v1(-multi-turn)` with
reference answers for `common.NEED_REF_CATS`), the prompt's construction and the judge's
conversation (`common.run_judge_single`: system prompt, user prompt, the OpenAI message
format), the judge's decoding (temperature 0, max_tokens 2048), the `[[rating]]` patterns
(`common.one_score_pattern`, then `one_score_pattern_backup`; none: -1) and the answers'
per-category temperatures (`common.temperature_config`). Its judge calls
(`common.chat_completion_openai`, written for openai<1) go through repro's gateway and
judgment cache instead (`fastchat_calls`); the references are FastChat's GPT-4 ones for the
gpt-4 judge and SimPO's GPT-4-Turbo ones for gpt-4-1106-preview.

Scoring (show_result.py, single mode): drop -1; per model the mean of turn 1, of turn 2, and
of all judgments together. FastChat's `display_result_single` prints these tables and returns
nothing, so repro computes the same means (tests run it on the same judgments and compare).
One deliberate difference: FastChat averages any number the regex finds, so a judge's [[15]]
lifts a model; here a rating outside 1-10 counts as failed (`score(..., keep_out_of_range=True)`,
`repro mt-bench score --keep-out-of-range`: FastChat's way).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from repro import io
from repro.errors import ReproError

# judge model -> reference answer file (FastChat loads reference_answer/<judge>.jsonl)
REFERENCES = {"gpt-4": "gpt-4.jsonl", "gpt-4-1106-preview": "gpt-4-1106-preview.jsonl"}
# FastChat's judge knows OpenAI and Anthropic model names only (run_judge_single raises
# "Invalid judge model name" for others): a judge served under another name gets the message
# format FastChat gives gpt-4 (the published numbers' judge), sent to that name by repro
FASTCHAT_FORMAT_OF = "gpt-4"


def fastchat():
    """fastchat.llm_judge.common, imported on first use (it imports torch and transformers)."""
    from fastchat.llm_judge import common

    return common


def rating_pattern() -> str:
    """What a judgment must hold to be parsed: FastChat's backup pattern ([rating]) also matches
    its first ([[rating]]); an answer without it is never stored in the judgment cache."""
    return fastchat().one_score_pattern_backup.pattern


def score(judgments: list[dict[str, Any]], *, keep_out_of_range: bool = False) -> dict[str, dict[str, Any]]:
    """Per model: turn-1 mean, turn-2 mean, mean of all counted ratings, and the counts.

    FastChat drops only -1 (no rating found). A rating outside 1-10 (a judge writing [[15]])
    is counted as failed here, with the -1s in `n_dropped` and on its own in
    `n_out_of_range`; `keep_out_of_range=True` averages it in, as FastChat does.
    Duplicated judgments (same model, question and turn) are counted, as FastChat counts
    them, and reported in `n_duplicates`. A mean over no ratings is None (JSON null).
    """
    per_model: dict[str, dict[str, list[float]]] = {}
    dropped: dict[str, int] = {}
    out_of_range: dict[str, int] = {}
    duplicates: dict[str, int] = {}
    seen: set[tuple[str, Any, int]] = set()
    for row in judgments:
        model = row["model"]
        per_model.setdefault(model, {"1": [], "2": []})
        turn = int(row["turn"])
        if "question_id" in row:
            key = (model, json.dumps(row["question_id"]), turn)
            if key in seen:
                duplicates[model] = duplicates.get(model, 0) + 1
            seen.add(key)
        rating = row.get("score", -1)
        if rating == -1 or rating is None:
            dropped[model] = dropped.get(model, 0) + 1
            continue
        if not keep_out_of_range and not 1 <= rating <= 10:
            dropped[model] = dropped.get(model, 0) + 1
            out_of_range[model] = out_of_range.get(model, 0) + 1
            continue
        per_model[model][str(turn)].append(float(rating))
    out = {}
    for model, turns in per_model.items():
        both = turns["1"] + turns["2"]
        out[model] = {
            "turn_1": _mean(turns["1"]),
            "turn_2": _mean(turns["2"]),
            "average": _mean(both),
            "n_counted": len(both),
            "n_dropped": dropped.get(model, 0),
            "n_out_of_range": out_of_range.get(model, 0),
            "n_duplicates": duplicates.get(model, 0),
        }
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def notes(scores: dict[str, dict[str, Any]]) -> list[str]:
    """What a reader of `score`'s table should know: duplicated judgments, ratings outside 1-10."""
    lines = []
    for model, r in scores.items():
        if r["n_duplicates"]:
            lines.append(
                f"{model}: {r['n_duplicates']} duplicated judgments (same question and turn), "
                "counted as FastChat counts them"
            )
        if r["n_out_of_range"]:
            lines.append(
                f"{model}: {r['n_out_of_range']} ratings outside 1-10 counted as failed "
                "(--keep-out-of-range averages them in, as FastChat does)"
            )
    return lines


# ---------------------------------------------------------------------------- data


def load_judgments(path: Path) -> list[dict[str, Any]]:
    """FastChat single-grading judgments; anything show_result.py would choke on is an error."""
    rows = io.read_jsonl(path)
    if not rows:
        raise ReproError(f"{path}: empty file (no MT-Bench judgments)")
    for i, row in enumerate(rows, 1):
        where = f"{path}: judgment {i}"
        if not isinstance(row, dict) or not {"model", "score", "turn"} <= set(row):
            raise ReproError(f"{where} is not a FastChat single-grading judgment (model, score, turn)")
        rating, turn = row["score"], row["turn"]
        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or not math.isfinite(rating):
            raise ReproError(f"{where}: score {json.dumps(rating)} is not a number")
        if isinstance(turn, bool) or turn not in (1, 2):
            raise ReproError(f"{where}: turn {json.dumps(turn)} is not 1 or 2")
        if not isinstance(row["model"], str):
            raise ReproError(f"{where}: model {json.dumps(row['model'])} is not a name")
    return rows


def load_data(data_dir: Path, judge_model: str) -> tuple[list[dict], dict[str, dict], dict[int, dict]]:
    """FastChat's llm_judge/data layout: mt_bench/question.jsonl, judge_prompts.jsonl, reference answers."""
    data_dir = Path(data_dir)
    questions = io.read_jsonl(data_dir / "mt_bench" / "question.jsonl")
    prompts = {p["name"]: p for p in io.read_jsonl(data_dir / "judge_prompts.jsonl")}
    ref_file = (
        data_dir / "mt_bench" / "reference_answer" / REFERENCES.get(judge_model, f"{judge_model}.jsonl")
    )
    references = {r["question_id"]: r for r in io.read_jsonl(ref_file)} if ref_file.exists() else {}
    return questions, prompts, references


# ---------------------------------------------------------------------------- judging


_calls = threading.local()  # the error of this thread's last judge call, for its judgment row


@contextlib.contextmanager
def fastchat_calls(chat: Callable[[list[dict[str, Any]]], str]) -> Iterator[None]:
    """FastChat's judge calls (`common.chat_completion_openai`, openai<1's API) through `chat`:
    repro's gateway and judgment cache. A failed call is FastChat's "$ERROR$" (rated -1), and
    its reason is kept for the judgment row."""
    common = fastchat()

    def through_gateway(model, conv, temperature, max_tokens, api_dict=None):
        _calls.error = None
        try:
            return chat(conv.to_openai_api_messages())
        except Exception as exc:  # noqa: BLE001 - FastChat's own answer to a failed call
            _calls.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return common.API_ERROR_OUTPUT

    original = common.chat_completion_openai
    common.chat_completion_openai = through_gateway
    try:
        yield
    finally:
        common.chat_completion_openai = original


def judge_turn(
    chat,
    prompts: dict[str, dict],
    question: dict,
    answer: dict,
    reference: dict | None,
    turn: int,
    judge_model: str,
) -> dict[str, Any]:
    """One judgment by FastChat's run_judge_single; `chat` is unused here (see fastchat_calls)."""
    common = fastchat()
    needs_ref = question["category"] in common.NEED_REF_CATS
    name = ("single-math-v1" if needs_ref else "single-v1") + ("-multi-turn" if turn == 2 else "")
    if needs_ref and reference is None:
        raise ReproError(
            f"no reference answer for question {question['question_id']} and judge {judge_model}"
        )
    known = judge_model in common.OPENAI_MODEL_LIST
    judge = common.Judge(judge_model if known else FASTCHAT_FORMAT_OF, prompts[name], needs_ref, turn == 2)
    rating, user, judgment = common.run_judge_single(
        question, answer, judge, reference if needs_ref else None, multi_turn=turn == 2
    )
    row = {
        "question_id": question["question_id"],
        "model": answer["model_id"],
        "judge": [judge_model, name],
        "user_prompt": user,
        "judgment": judgment,
        "score": rating,
        "turn": turn,
        "tstamp": time.time(),
    }
    if getattr(_calls, "error", None):
        row["error"] = _calls.error
    return row


def judge(
    chat,
    prompts: dict[str, dict],
    questions: list[dict],
    answers: dict[int, dict],
    references: dict[int, dict],
    judge_model: str,
    *,
    concurrency: int = 4,
    progress=None,
) -> list[dict]:
    jobs = [(q, t) for q in questions if q["question_id"] in answers for t in (1, 2)]
    with fastchat_calls(chat), ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [
            pool.submit(
                judge_turn,
                chat,
                prompts,
                q,
                answers[q["question_id"]],
                references.get(q["question_id"]),
                t,
                judge_model,
            )
            for q, t in jobs
        ]
        out = []
        for f in futures:
            out.append(f.result())
            if progress:
                progress()
    return out
