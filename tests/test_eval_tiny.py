"""`repro eval` end to end on the tiny setting: a model trained on ZeRO-3 (the session's run),
generation with the setting's templates and decoding, a rule-based judge behind the local
gateway on 127.0.0.1, all three benchmarks scored, and a rerun served from the judgment cache."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e  # multi-process training, generation or judging (make test-fast skips it)


@pytest.fixture(scope="module")
def trained(tiny_runs):
    """The session's SimPO training (conftest): `repro train tiny --method simpo`'s folder, read only."""
    return tiny_runs.runs["simpo"].train


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))


def test_tiny_eval_all_benchmarks_with_a_local_rule_judge(trained, cli, tmp_path):
    cache = tmp_path / "judgments.sqlite"
    args = [
        "eval",
        str(trained / "model"),
        "--setting",
        "tiny",
        "--judge",
        "rule",
        "--reference-model",
        str(trained / "init-model"),
        "--judge-cache",
        str(cache),
        "--format",
        "json",
    ]
    record = json.loads(cli(*args, "--output", str(tmp_path / "a"), check=True).stdout)
    assert list(record["bos_check"]) == ["eval"] and record["bos_check"]["eval"]["status"] == "ok"
    first = record["benchmarks"]
    assert record["schema"] == "repro.result/2" and record["complete"] and not record["partial"]
    assert first["alpaca_eval2"]["win_rate"] > 60 and first["alpaca_eval2"]["incomplete"] is False
    assert first["alpaca_eval2"]["n_total"] == 24
    assert first["arena_hard"]["score"] > 50 and first["arena_hard"]["incomplete"] is False
    assert first["mt_bench"]["n_counted"] == 48 and first["mt_bench"]["average"] > 1
    assert (tmp_path / "a" / "arena_hard" / "judgments.jsonl").exists()
    assert (tmp_path / "a" / "mt_bench" / "judgments.jsonl").exists()
    again = json.loads(cli(*args, "--output", str(tmp_path / "b"), check=True).stdout)
    second = again["benchmarks"]
    assert again["judge_calls"]["backend_calls"] == 0  # everything from the cache
    assert second["alpaca_eval2"]["judge_calls"]["backend_calls"] == 0
    assert second["alpaca_eval2"]["win_rate"] == first["alpaca_eval2"]["win_rate"]
    assert second["arena_hard"]["score"] == first["arena_hard"]["score"]


def test_eval_without_a_judge_is_a_one_line_error(trained, cli, tmp_path):
    """An endpoint judge without its URL (tiny defaults to the rule judge, so ask for one)."""
    proc = cli(
        "eval",
        str(trained / "model"),
        "--setting",
        "tiny",
        "--reference-model",
        str(trained / "init-model"),
        "--bench",
        "arena_hard",
        "--judge",
        "endpoint",
        "--output",
        str(tmp_path / "x"),
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "--judge-url" in proc.stderr
