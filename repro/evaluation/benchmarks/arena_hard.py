"""Arena-Hard v0.1: 500 questions answered greedily with the setting's served chat template,
two games per question against gpt-4-0314's answers, judged by gpt-4-1106-preview
(eval/judges/arena-hard-v0.1.yaml), scored by a Bradley-Terry bootstrap with a 95% CI."""

from __future__ import annotations

import time
from typing import Any

import yaml

from repro import io, paths
from repro.errors import ReproError
from repro.evaluation.benchmarks import register
from repro.evaluation.benchmarks.base import (
    PERCENT,
    Benchmark,
    Context,
    DataOption,
    JudgeAccess,
    JudgeCost,
    Metric,
    fmt,
)  # fmt: skip
from repro.evaluation.generation.decoding import Decoding
from repro.evaluation.scorers import arena_hard

JUDGE_CONFIG = paths.EVAL / "judges" / "arena-hard-v0.1.yaml"


def answer_records(questions: list[dict], texts: list[str], model_id: str) -> dict[str, dict]:
    """arena-hard-auto's answer records, by question id."""
    return {
        q["question_id"]: {
            "question_id": q["question_id"],
            "answer_id": f"{model_id}-{q['question_id']}",
            "model_id": model_id,
            "choices": [{"index": 0, "turns": [{"content": t}]}],
            "tstamp": time.time(),
        }
        for q, t in zip(questions, texts, strict=True)
    }


@register
class ArenaHard(Benchmark):
    name = "arena_hard"
    title = "Arena-Hard"
    table_order = 2
    judged = True
    published_judge = "gpt-4-1106-preview"
    cost = JudgeCost(
        "gpt-4-1106-preview", questions=500, calls=1000, input_tokens=2500, output_tokens=800,
        note="two games per question; a game without a verdict costs one more call",
    )  # fmt: skip
    metrics = (
        Metric("ah", "Arena-Hard", tolerance=1.0, bounds=PERCENT, published=True, column="AH", headline=True),
        Metric("ah_ci", "Arena-Hard 95% CI", higher_is_better=None),
        Metric("ah_length", "Arena-Hard tokens", higher_is_better=None, published=True, column="AH len"),
    )
    data_options = (DataOption("arena_hard_data", "dir", "Folder with question.jsonl and gpt-4-0314.jsonl."),)

    def run(self, ev: Context, judge: JudgeAccess | None = None) -> dict[str, Any]:
        config = yaml.safe_load(JUDGE_CONFIG.read_text())
        if judge is not None and judge.model:
            config["judge_model"] = judge.model
        cfg = ev.config["arena_hard"]
        # a setting may cap the judgment's length (a small local judge rambles to the limit)
        config["max_tokens"] = cfg.get("judge_max_tokens", config["max_tokens"])
        decoding = Decoding(
            mode="greedy",
            max_new_tokens=ev.max_new_tokens or cfg["max_tokens"],
            stop_token_ids=cfg.get("stop_token_ids"),
        )
        data = (
            ev.options.data_path("arena_hard_data")
            or ev.question_set("arena_hard")
            or ev.shared_data("arena_hard_v0.1")
        )
        if data is None:
            raise ReproError("Arena-Hard data not found: pass --arena-hard-data DIR")
        questions = arena_hard.read_jsonl(data / "question.jsonl")
        questions = questions[: ev.subset("arena_hard", len(questions))]
        baseline = None  # the starting model's answers (generated below), or gpt-4-0314's
        if ev.baseline != "init-model":
            baseline = {a["question_id"]: a for a in arena_hard.read_jsonl(data / "gpt-4-0314.jsonl")}
        rendered = [ev.chat_prompt(q["turns"][0]["content"]) for q in questions]
        prompts, flags = [p for p, _ in rendered], [f for _, f in rendered]
        how = dict(add_special_tokens=flags, what="Arena-Hard prompts")
        answers = answer_records(questions, ev.answer(self.name, prompts, decoding, **how), ev.model_name)
        if baseline is None:
            texts = ev.answer(self.name, prompts, decoding, reference=True, **how)
            baseline = answer_records(questions, texts, arena_hard.BASELINE)
        io.write_json(ev.folder(self.name) / "answers.json", list(answers.values()))
        if judge is None:
            return {"answers": len(answers)}
        with ev.timed("judge"):
            judgments = arena_hard.judge(
                judge.chat(
                    config["judge_model"],
                    config["temperature"],
                    config["max_tokens"],
                    expect=config["regex_pattern"],  # an answer without a verdict is never reused
                ),
                config,
                questions,
                answers,
                baseline,
                concurrency=judge.concurrency,
            )
        io.rewrite_jsonl(ev.folder(self.name) / "judgments.jsonl", judgments)
        failed = sum(1 for j in judgments for g in j["games"] if g.get("score") is None)
        with ev.timed("score"):
            battles = arena_hard.battles_from_judgments({ev.model_name: judgments})
            if len(battles.outcome):
                scores = arena_hard.score(battles)[ev.model_name]
            else:  # no verdict in any game (a judge that cannot follow the format): counted, no score
                scores = {"score": None, "lower": None, "upper": None, "battles": 0}
                scores["games_without_verdict"] = failed
                ev.note(f"arena_hard: none of the {failed} games has a verdict: no score")
        return {
            **scores,
            "avg_tokens": self._tokens(ev, list(answers.values())),
            "n_questions": len(judgments),
            "n_games_without_verdict": failed,
            "incomplete": failed > 0 or len(judgments) < len(questions),
        }

    @staticmethod
    def _tokens(ev: Context, answers: list[dict]) -> int | None:
        """Average answer tokens (cl100k); None when the encoder is not available offline."""
        try:
            return arena_hard.answer_tokens(answers)
        except ReproError as exc:
            ev.note(f"Arena-Hard token lengths not computed: {exc}")
            return None

    def scores(self, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "ah": output.get("score"),
            "ah_ci": [_rounded(output.get("lower")), _rounded(output.get("upper"))],
            "ah_length": output.get("avg_tokens"),
        }

    def failed_judgments(self, output: dict[str, Any]) -> int | None:
        return output.get("n_games_without_verdict")  # games without a verdict, or missing

    def why_missing(self, output: dict[str, Any], key: str) -> str:
        if key == "ah_length" and output.get("avg_tokens") is None:
            return "token lengths need tiktoken's cl100k_base, not cached offline (TIKTOKEN_CACHE_DIR)"
        if key in ("ah", "ah_ci") and output.get("score") is None:
            return f"no game has a verdict ({output.get('n_games_without_verdict', 0)} without one)"
        return super().why_missing(output, key)

    def rows(self, output: dict[str, Any]) -> list[tuple[str, str]]:
        lower, upper = output.get("lower"), output.get("upper")
        return [
            ("score", fmt(output.get("score"))),
            ("95% CI", "n/a" if lower is None else f"{lower:.1f} .. {upper:.1f}"),
            ("games without a verdict", str(output.get("n_games_without_verdict", 0))),
            ("avg tokens", fmt(output.get("avg_tokens"))),
        ]


def _rounded(value: Any) -> Any:
    """A bootstrap bound without float noise (99.9999999999 is 100)."""
    return round(value, 6) if isinstance(value, float) else value
