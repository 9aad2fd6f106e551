"""MT-Bench single-answer grading (FastChat 0.2.36, reimplemented: fschat needs openai<1).

Judging (common.py run_judge_single): prompt `single-v1` for turn 1 and
`single-v1-multi-turn` for turn 2; questions in math, reasoning and coding (ids 101-130)
use `single-math-v1(-multi-turn)` with reference answers: FastChat's GPT-4 references
for the gpt-4 judge, SimPO's GPT-4-Turbo references for gpt-4-1106-preview. Temperature
0, max_tokens 2048. Rating: `\\[\\[(\\d+\\.?\\d*)\\]\\]`, else `\\[(\\d+\\.?\\d*)\\]`, else -1.
Scoring (show_result.py, single mode): drop -1; per model the mean of turn 1, of turn 2,
and of all judgments together. One deliberate difference: FastChat averages any number the
regex finds, so a judge's [[15]] lifts a model; here a rating outside 1-10 counts as failed
(`score(..., keep_out_of_range=True)`, `repro mt-bench score --keep-out-of-range`: FastChat's way).
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from repro import io
from repro.errors import ReproError

NEED_REF_CATS = ("math", "reasoning", "coding", "arena-hard-200")
ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
# judge model -> reference answer file (FastChat loads reference_answer/<judge>.jsonl)
REFERENCES = {"gpt-4": "gpt-4.jsonl", "gpt-4-1106-preview": "gpt-4-1106-preview.jsonl"}


def parse_rating(judgment: str) -> float:
    match = ONE_SCORE.search(judgment) or ONE_SCORE_BACKUP.search(judgment)
    if not match:
        return -1
    try:
        return ast.literal_eval(match.groups()[0])
    except (ValueError, SyntaxError):
        return -1


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


def judge_turn(
    chat,
    prompts: dict[str, dict],
    question: dict,
    answer: dict,
    reference: dict | None,
    turn: int,
    judge_model: str,
) -> dict[str, Any]:
    needs_ref = question["category"] in NEED_REF_CATS
    name = ("single-math-v1" if needs_ref else "single-v1") + ("-multi-turn" if turn == 2 else "")
    template = prompts[name]
    kwargs = {}
    if needs_ref:
        if reference is None:
            raise ReproError(
                f"no reference answer for question {question['question_id']} and judge {judge_model}"
            )
        kwargs["ref_answer_1"] = reference["choices"][0]["turns"][0]
        if turn == 2:
            kwargs["ref_answer_2"] = reference["choices"][0]["turns"][1]
    turns = answer["choices"][0]["turns"]
    if turn == 2:
        user = template["prompt_template"].format(
            question_1=question["turns"][0],
            question_2=question["turns"][1],
            answer_1=turns[0],
            answer_2=turns[1],
            **kwargs,
        )
    else:
        user = template["prompt_template"].format(question=question["turns"][0], answer=turns[0], **kwargs)
    messages = [{"role": "system", "content": template["system_prompt"]}, {"role": "user", "content": user}]
    try:
        judgment = chat(messages)
        error = None
    except Exception as exc:  # noqa: BLE001 - FastChat stores $ERROR$ and rates -1
        judgment, error = "$ERROR$", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    row = {
        "question_id": question["question_id"],
        "model": answer["model_id"],
        "judge": [judge_model, name],
        "user_prompt": user,
        "judgment": judgment,
        "score": parse_rating(judgment),
        "turn": turn,
        "tstamp": time.time(),
    }
    if error:
        row["error"] = error
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
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
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
