"""MT-Bench: 80 two-turn questions answered with FastChat's per-category temperatures and the
setting's served chat template, single-answer graded 1-10 by GPT-4 through FastChat 0.2.36's
own llm_judge code (repro.evaluation.scorers.mt_bench)."""

from __future__ import annotations

import time
from typing import Any

from repro import io
from repro.errors import ReproError
from repro.evaluation.benchmarks import register
from repro.evaluation.benchmarks.base import (
    Benchmark,
    Context,
    DataOption,
    JudgeAccess,
    JudgeCost,
    Metric,
    fmt,
)  # fmt: skip
from repro.evaluation.scorers import mt_bench


@register
class MTBench(Benchmark):
    name = "mt_bench"
    title = "MT-Bench"
    table_order = 3
    judged = True
    published_judge = "gpt-4"
    cost = JudgeCost(
        "gpt-4", questions=80, calls=160, input_tokens=1000, output_tokens=300, note="two turns per question"
    )
    # the mean of the judge's 1-10 ratings (a rating outside them counts as failed)
    metrics = (Metric("mt_bench", "MT-Bench", bounds=(1.0, 10.0), headline=True),)
    data_options = (DataOption("mt_bench_data", "dir", "FastChat llm_judge/data folder (MT-Bench)."),)

    def run(self, ev: Context, judge: JudgeAccess | None = None) -> dict[str, Any]:
        judge_model = (judge.model if judge else None) or "gpt-4"
        given = ev.options.data_path("mt_bench_data")
        data = given or ev.question_set("mt_bench") or ev.shared_data("mt_bench")
        if not data:
            raise ReproError(
                "MT-Bench data not found: pass --mt-bench-data DIR (FastChat llm_judge/data layout)"
            )
        folder = data.parent if (data / "question.jsonl").exists() else data
        questions, prompts, references = mt_bench.load_data(folder, judge_model)
        questions = questions[: ev.subset("mt_bench", len(questions))]
        max_new_tokens = ev.max_new_tokens or ev.config.get("mt_bench", {}).get("max_new_tokens", 1024)
        with ev.timed("generate"):
            # FastChat's per-category temperatures (its conversation templates are not used: fschat
            # 0.2.36 has no Llama-3 template (one_shot) and gives Mistral-Base [INST], where the
            # authors served each checkpoint with its own template: repro.data.served_templates)
            temperatures = mt_bench.fastchat().temperature_config
            turns = ev.answerer.mt_bench_turns(
                ev.generator, questions, ev.chat_prompt, temperatures, max_new_tokens
            )
        answers = {
            q["question_id"]: {
                "question_id": q["question_id"],
                "model_id": ev.model_name,
                "choices": [{"index": 0, "turns": t}],
                "tstamp": time.time(),
            }
            for q, t in zip(questions, turns, strict=True)
        }
        io.write_json(ev.folder(self.name) / "answers.json", list(answers.values()))
        if judge is None:
            return {"answers": len(answers)}
        with ev.timed("judge"):
            judgments = mt_bench.judge(
                # FastChat's decoding (temperature 0, max_tokens 2048 unless the setting caps the
                # judgment: a small local judge); an answer without its rating pattern is never
                # reused from the judgment cache
                judge.chat(
                    judge_model,
                    0,
                    ev.config.get("mt_bench", {}).get("judge_max_tokens", 2048),
                    expect=mt_bench.rating_pattern(),
                ),
                prompts,
                questions,
                answers,
                references,
                judge_model,
                concurrency=judge.concurrency,
            )
        io.rewrite_jsonl(ev.folder(self.name) / "judgments.jsonl", judgments)
        with ev.timed("score"):
            result = mt_bench.score(judgments)[ev.model_name]
        result["judge_model"] = judge_model
        result["incomplete"] = result["n_dropped"] > 0
        return result

    def scores(self, output: dict[str, Any]) -> dict[str, Any]:
        return {"mt_bench": output.get("average")}

    def failed_judgments(self, output: dict[str, Any]) -> int | None:
        return output.get("n_dropped")  # judgments without a rating in 1-10

    def why_missing(self, output: dict[str, Any], key: str) -> str:
        dropped, counted = output.get("n_dropped") or 0, output.get("n_counted") or 0
        if key == "mt_bench" and dropped:  # the judge answered, without a rating FastChat parses
            return f"{dropped} of {dropped + counted} judgments without a rating in 1-10"
        return super().why_missing(output, key)

    def rows(self, output: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            ("average", fmt(output.get("average"))),
            ("turn 1 / turn 2", f"{fmt(output.get('turn_1'))} / {fmt(output.get('turn_2'))}"),
        ]
