"""`repro eval` end to end on the tiny setting: a model trained on ZeRO-3 (the session's run),
generation with the setting's templates and decoding, a rule-based judge behind the local
gateway on 127.0.0.1, all three benchmarks scored, and a rerun served from the judgment cache."""

from __future__ import annotations

import json
from pathlib import Path

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


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """The tiny model as initialized (no training): enough to answer the toy questions."""
    from repro import tiny

    return tiny.save_policy(tmp_path_factory.mktemp("policy") / "model")


def test_a_limit_is_partial_only_where_it_leaves_questions_out(policy, cli, tmp_path):
    """`--limit N` at or above a benchmark's size was labelled partial (and compare left the
    result out). The tiny setting's toy sets: 24 AlpacaEval instructions, 16 GSM items."""
    base = ["eval", str(policy), "--setting", "tiny", "--bench", "alpaca_eval2,gsm", "--judge", "rule",
            "--reference-model", str(policy), "--judge-cache", str(tmp_path / "judgments.sqlite"),
            "--format", "json"]  # fmt: skip
    results = tmp_path / "results" / "tiny" / "simpo"
    records = {}
    for limit, name in (("24", "at-and-above"), ("16", "cut")):  # 24: AlpacaEval's size, above GSM's
        out = tmp_path / name
        records[name] = json.loads(cli(*base, "--limit", limit, "--output", str(out), check=True).stdout)
        data = json.loads((out / "result.json").read_text())
        (results / name).mkdir(parents=True)
        (results / name / "result.json").write_text(json.dumps({**data, "method": "simpo"}))
    whole, cut = records["at-and-above"], records["cut"]
    assert whole["benchmarks"]["alpaca_eval2"]["n_total"] == 24 and whole["benchmarks"]["gsm"]["total"] == 16
    assert not whole["partial"] and whole["limit"] is None and whole["partial_reasons"] == []
    assert "--limit 24 left no question out: no benchmark has more" in whole["notes"]
    assert cut["benchmarks"]["alpaca_eval2"]["n_total"] == 16 and cut["benchmarks"]["gsm"]["total"] == 16
    assert cut["partial"] and cut["limit"] == 16
    assert cut["partial_reasons"] == ["--limit 16: the first 16 questions of each benchmark"]
    # compare averages the whole evaluation and leaves the cut one out, as before
    out = json.loads(cli("compare", str(tmp_path / "results"), "--format", "json", check=True).stdout)
    skipped = {Path(s["path"]).parent.name: s["reason"] for s in out["skipped"]}
    assert skipped == {"cut": "partial evaluation (--limit 16): not averaged"}
    row = next(r for r in out["rows"] if r["metric"] == "ae2_wr")
    assert row["runs"] == 1 and row["reproduced_mean"] == whole["scores"]["ae2_wr"]
