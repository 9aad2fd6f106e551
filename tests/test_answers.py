"""Answers written as they complete, and a killed generation that continues where it stopped.

Oracle for the resume: an uninterrupted `repro eval` of the same models into another folder;
the resumed run's answers must be identical, and it must report the answers it took from the
file instead of generating them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from repro.errors import ReproError
from repro.evaluation.answer_log import AnswerLog, generate_resumable


def fake_generate(calls):
    def generate(prompts, on_answer):
        calls.append(list(prompts))
        texts = [f"answer to {p}" for p in prompts]
        for k, t in enumerate(texts):
            on_answer(k, t)
        return texts

    return generate


def test_only_missing_answers_are_generated(tmp_path):
    path, identity, prompts = tmp_path / "a.jsonl", {"model": "m"}, ["p0", "p1", "p2"]
    calls: list = []
    log = AnswerLog(path, identity)
    log.start()
    log.append(1, "p1", "kept")
    assert generate_resumable(AnswerLog(path, identity), prompts, fake_generate(calls)) == [
        "answer to p0",
        "kept",
        "answer to p2",
    ]
    assert calls == [["p0", "p2"]]
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"identity": identity} and len(lines) == 4


def test_a_torn_last_line_is_generated_again(tmp_path):
    path, identity = tmp_path / "a.jsonl", {"model": "m"}
    log = AnswerLog(path, identity)
    log.start()
    log.append(0, "p0", "done")
    with open(path, "a") as fh:
        fh.write('{"i": 1, "prompt_sha256": "ab')  # killed mid-write
    calls: list = []
    assert (
        generate_resumable(AnswerLog(path, identity), ["p0", "p1"], fake_generate(calls))[1] == "answer to p1"
    )
    assert calls == [["p1"]]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_a_changed_prompt_is_generated_again(tmp_path):
    path, identity = tmp_path / "a.jsonl", {"model": "m"}
    log = AnswerLog(path, identity)
    log.start()
    log.append(0, "old prompt", "stale")
    calls: list = []
    assert generate_resumable(AnswerLog(path, identity), ["new prompt"], fake_generate(calls)) == [
        "answer to new prompt"
    ]


def test_another_generations_answers_are_kept_beside_not_mixed(tmp_path):
    """Issue 32, 2.4: a changed plugin's decoding stopped the rerun ('holds answers of another
    generation ... delete it or choose another --output'). The earlier answers are kept beside
    and come back when their generation does."""
    path = tmp_path / "a.jsonl"
    first = {"model": "m", "backend": "vllm", "decoding": {"max_new_tokens": 4}}
    log = AnswerLog(path, first)
    log.start()
    log.append(0, "p", "first answer")
    earlier = path.read_text()
    calls: list = []
    second = {**first, "decoding": {"max_new_tokens": 16}}
    assert generate_resumable(AnswerLog(path, second), ["p"], fake_generate(calls)) == ["answer to p"]
    assert calls == [["p"]]
    (kept,) = [p for p in tmp_path.iterdir() if p != path]
    assert kept.read_text() == earlier and kept.name.startswith("a.") and kept.suffix == ".jsonl"
    back = AnswerLog(path, first)  # the first generation again: its answers, nothing generated
    assert back.done(["p"]) == {0: "first answer"}
    assert len(list(tmp_path.iterdir())) == 2
    with pytest.raises(ReproError, match="not an answer file"):
        (tmp_path / "b.jsonl").write_text('{"i": 0}\n')
        AnswerLog(tmp_path / "b.jsonl", first)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from repro import tiny

    root = tmp_path_factory.mktemp("resume-models")
    return tiny.save_policy(root / "policy", seed=0), tiny.save_policy(root / "reference", seed=1)


def _eval_args(models, output):
    policy, reference = models
    return [
        "eval",
        str(policy),
        "--setting",
        "tiny",
        "--bench",
        "alpaca_eval2",
        "--reference-model",
        str(reference),
        "--output",
        str(output),
        "--format",
        "json",
    ]


def _answers(path):
    return [json.loads(line) for line in path.read_text().splitlines()[1:]]


@pytest.mark.e2e  # generates in a child process it kills
def test_a_killed_generation_continues_where_it_stopped(models, cli, tmp_path, monkeypatch):
    from tests.conftest import REPRO

    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    killed = tmp_path / "killed"
    answers = killed / "alpaca_eval2" / "answers.jsonl"
    env = {**os.environ, "REPRO_TEST_PAUSE": "generate.batch=3"}  # 3 s after each batch of 8
    proc = subprocess.Popen([str(REPRO), *_eval_args(models, killed)], env=env, stdout=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and (not answers.exists() or len(_answers(answers)) < 8):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = _answers(answers)
    assert 8 <= len(written) < 24, "the kill should land between batches"
    resumed = json.loads(cli(*_eval_args(models, killed), check=True).stdout)
    assert resumed["resumed_answers"]["alpaca_eval2/answers.jsonl"] == len(written)
    whole = json.loads(cli(*_eval_args(models, tmp_path / "whole"), check=True).stdout)
    assert whole["resumed_answers"] is None
    final = sorted(_answers(answers), key=lambda r: r["i"])
    assert final == sorted(
        _answers(tmp_path / "whole" / "alpaca_eval2" / "answers.jsonl"), key=lambda r: r["i"]
    )
    assert (
        resumed["benchmarks"]["alpaca_eval2"]["win_rate"] == whole["benchmarks"]["alpaca_eval2"]["win_rate"]
    )
