"""Scoring rules against their oracles.

- AlpacaEval 2 replay: the public leaderboard (shared/data/alpaca_eval/...leaderboard.csv),
  produced by alpaca-eval from the very annotations in shared/. `repro alpaca-eval rescore`
  replays the judge's recorded raw completions through alpaca-eval 0.6.2's own judging path
  (prompt construction, position swap, log-prob parsing), its real OpenAI client talking to
  a judge server on 127.0.0.1. Tolerance: win_rate 1e-9; counts and avg_length exact.
- Arena-Hard: arena-hard-auto's show_result.py at commit 4813756 (June 2024), its functions
  run unchanged outside this repository on the synthetic judgments in
  tests/golden/arena_hard/ (two models, 60 questions, invalid labels included; built with
  random.Random(1) and (2)). It printed: model-x 39.11 (33.5, 46.13), model-y 52.12 (44.07,
  57.27), 344 battles. Tolerance: 0.005 (it rounds to 2 decimals).
- MT-Bench: FastChat v0.2.36 show_result.py `display_result_single` run unchanged on
  tests/golden/mt_bench_judgments.jsonl (random.Random(7), ratings -1 included). It printed
  model-x 5.4705882353 / 5.0312500000 / 5.2575757576 and model-y 5.1333333333 /
  7.1666666667 / 6.0370370370 (turn 1 / turn 2 / average). Tolerance: 1e-9.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from repro.evaluation.scorers import alpaca_eval

GOLDEN = Path(__file__).parent / "golden"


def leaderboard_row(shared: Path, model: str) -> dict[str, str]:
    path = shared / "data" / "alpaca_eval" / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"
    with open(path, newline="") as fh:
        return next(row for row in csv.DictReader(fh) if row[""] == model)


def test_replay_reproduces_the_public_leaderboard_row(shared, cli):
    annotations = shared / "data" / "alpaca_eval" / "annotations" / "gemma-2b-it.json"
    result = json.loads(
        cli("alpaca-eval", "rescore", str(annotations), "--format", "json", check=True).stdout
    )
    expected = leaderboard_row(shared, "gemma-2b-it")
    assert result["win_rate"] == pytest.approx(float(expected["win_rate"]), abs=1e-9)
    assert result["standard_error"] == pytest.approx(float(expected["standard_error"]), abs=1e-9)
    for key in ("n_wins", "n_wins_base", "n_draws", "n_total", "avg_length"):
        assert result[key] == int(expected[key]), key
    assert result["discrete_win_rate"] == pytest.approx(float(expected["discrete_win_rate"]), abs=1e-9)
    # every judgment went over HTTP through alpaca-eval's client to the local judge
    assert result["judge_calls"]["backend_calls"] == 805 and result["incomplete"] is False


def test_rescore_table_and_bad_input(shared, cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = cli("alpaca-eval", "rescore", str(bad))
    assert (
        proc.returncode == 1 and proc.stderr.count("\n") == 1 and "not a JSON annotations file" in proc.stderr
    )
    bad.write_text(json.dumps([{"instruction": "x"}]))
    proc = cli("alpaca-eval", "rescore", str(bad))
    assert proc.returncode == 1 and "lacks" in proc.stderr


@pytest.mark.parametrize(
    ("name", "length"),
    [
        ("Llama-3-Instruct-8B-SimPO", 1825),
        ("gemma-2-9b-it-SimPO", 1833),
        ("gemma-2-9b-it-DPO", 2016),
    ],
)
def test_released_generations_have_the_published_lengths(shared, name, length):
    outputs = json.loads((shared / "data" / "alpaca_eval" / "model_outputs" / f"{name}.json").read_text())
    assert len(outputs) == 805
    assert alpaca_eval.avg_length(outputs) == length


def test_arena_hard_matches_upstream_show_result(cli):
    out = json.loads(
        cli("arena-hard", "score", str(GOLDEN / "arena_hard"), "--format", "json", check=True).stdout
    )
    expected = {"model-x": (39.11, 33.5, 46.13), "model-y": (52.12, 44.07, 57.27)}
    for model, (score, lower, upper) in expected.items():
        assert out[model]["score"] == pytest.approx(score, abs=0.005)
        assert out[model]["lower"] == pytest.approx(lower, abs=0.005)
        assert out[model]["upper"] == pytest.approx(upper, abs=0.005)
    assert out["model-x"]["battles"] + out["model-y"]["battles"] == 344


def test_arena_hard_table(cli):
    proc = cli("arena-hard", "score", *map(str, sorted((GOLDEN / "arena_hard").glob("*.jsonl"))), check=True)
    assert "model-y" in proc.stdout and "52.1" in proc.stdout and "95% CI" in proc.stdout


def test_mt_bench_matches_fastchat_show_result(cli):
    out = json.loads(
        cli(
            "mt-bench", "score", str(GOLDEN / "mt_bench_judgments.jsonl"), "--format", "json", check=True
        ).stdout
    )
    assert out["model-x"]["turn_1"] == pytest.approx(5.4705882353, abs=1e-9)
    assert out["model-x"]["turn_2"] == pytest.approx(5.03125, abs=1e-9)
    assert out["model-x"]["average"] == pytest.approx(5.2575757576, abs=1e-9)
    assert out["model-y"]["turn_1"] == pytest.approx(5.1333333333, abs=1e-9)
    assert out["model-y"]["turn_2"] == pytest.approx(7.1666666667, abs=1e-9)
    assert out["model-y"]["average"] == pytest.approx(6.0370370370, abs=1e-9)
    assert out["model-x"]["n_dropped"] == 7


def test_arena_hard_verdicts_and_continuation():
    import re

    from repro.evaluation.scorers import arena_hard

    pattern = re.compile(r"\[\[([AB<>=]+)\]\]")
    assert arena_hard.verdict("so [[A>B]]", pattern) == ("A>B", False)
    assert arena_hard.verdict("nothing yet", pattern) == (None, True)
    assert arena_hard.verdict("[[A>B]] then [[B>A]]", pattern) == (None, False)
    replies = iter(["thinking, no verdict", "final: [[B>>A]]", "[[A=B]]"])
    config = {
        "judge_model": "j",
        "system_prompt": "s",
        "prompt_template": ["{question_1}|{answer_1}|{answer_2}"],
        "regex_pattern": pattern.pattern,
        "number_of_judgment_attempts": 2,
    }
    answer = {"model_id": "m", "choices": [{"turns": [{"content": "mine"}]}]}
    base = {"model_id": "b", "choices": [{"turns": [{"content": "theirs"}]}]}
    row = arena_hard.judge_question(
        lambda conv: next(replies), config, {"question_id": "q", "turns": [{"content": "Q"}]}, answer, base
    )
    assert [g["score"] for g in row["games"]] == ["B>>A", "A=B"]
    assert (
        row["games"][0]["user_prompt"] == "Q|theirs|mine"
        and row["games"][1]["user_prompt"] == "Q|mine|theirs"
    )
    # game 1 B>>A: the model wins 3 battles; game 2 A=B: one tie
    assert arena_hard.game_battles("B>>A", 1) == ["win"] * 3 and arena_hard.game_battles("A>B", 2) == ["win"]


def test_missing_cl100k_leaves_lengths_empty_with_a_note(monkeypatch):
    """Offline without the cl100k file, Arena-Hard still scores; the length is None and said."""
    import types

    from repro.errors import ReproError
    from repro.evaluation.benchmarks.arena_hard import ArenaHard
    from repro.evaluation.scorers import arena_hard

    def unavailable():
        raise ReproError("cl100k_base is not cached")

    monkeypatch.setattr(arena_hard, "cl100k", unavailable)
    holder = types.SimpleNamespace(notes=[])
    holder.note = holder.notes.append
    answers = [{"choices": [{"turns": [{"content": "an answer"}]}]}]
    assert ArenaHard._tokens(holder, answers) is None
    assert "cl100k_base is not cached" in holder.notes[0]
    assert arena_hard.answer_tokens([{"choices": [{"turns": [{"content": "x", "token_len": 7}]}]}]) == 7


def test_mt_bench_scores_equal_fastchats_own_show_result_run_here(capsys):
    """The oracle run in the suite: FastChat 0.2.36's display_result_single (installed, base
    fschat) on the golden judgments prints the same turn means as repro's score (issue 32, 6)."""
    import argparse

    from fastchat.llm_judge import show_result

    from repro.evaluation.scorers import mt_bench

    path = GOLDEN / "mt_bench_judgments.jsonl"
    args = argparse.Namespace(
        input_file=str(path), bench_name="mt_bench", model_list=None, judge_model="gpt-4"
    )
    show_result.display_result_single(args)
    printed = capsys.readouterr().out
    ours = mt_bench.score(mt_bench.load_judgments(path), keep_out_of_range=True)
    for model, row in ours.items():
        for value in (row["turn_1"], row["turn_2"], row["average"]):
            assert f"{value:.6f}" in printed, (model, value, printed)


def test_mt_bench_judging_is_fastchats_own_code_through_repros_gateway():
    """Judge prompts, the judge's conversation and the rating parse are FastChat's
    (run_judge_single); the call goes through `chat` (repro's gateway) with FastChat's messages,
    for a judge name FastChat does not know too (it gets gpt-4's format)."""
    from fastchat.llm_judge import common
    from fastchat.model.model_adapter import get_conversation_template

    from repro import io, paths
    from repro.evaluation.scorers import mt_bench

    # the tiny setting's judge prompts (FastChat's layout), as its MT-Bench reads them
    prompts = {
        p["name"]: p for p in io.read_jsonl(paths.ROOT / "eval/questions/tiny/mt_bench/judge_prompts.jsonl")
    }
    sent: list[list[dict]] = []

    def chat(messages):
        sent.append(messages)
        return "Fine.\n\nRating: [[7]]" if len(sent) == 1 else "no rating here"

    question = {"question_id": 1, "category": "writing", "turns": ["Write a haiku.", "Now a limerick."]}
    answer = {"model_id": "m", "choices": [{"index": 0, "turns": ["leaves fall", "there once was"]}]}
    rows = mt_bench.judge(chat, prompts, [question], {1: answer}, {}, "local-judge", concurrency=1)
    assert [r["score"] for r in rows] == [7, -1] and [r["turn"] for r in rows] == [1, 2]
    expected = get_conversation_template("gpt-4")
    expected.set_system_message(prompts["single-v1"]["system_prompt"])
    expected.append_message(expected.roles[0], rows[0]["user_prompt"])
    expected.append_message(expected.roles[1], None)
    assert sent[0] == expected.to_openai_api_messages()
    assert common.chat_completion_openai.__module__ == "fastchat.llm_judge.common"  # restored after
    assert mt_bench.rating_pattern() == common.one_score_pattern_backup.pattern
