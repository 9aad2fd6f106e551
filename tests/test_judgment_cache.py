"""The judgment cache answers only for the judge that gave the answer, and never serves an answer
that failed to parse as final (issue 32, 1.1).

Each test runs the real evaluation (repro.evaluation.runner.Evaluation: the tiny generation
model answers Arena-Hard and MT-Bench, the benchmarks judge through the gateway and the SQLite
cache) against scripted OpenAI-compatible judges on 127.0.0.1 (tests/judge_servers.py). On
the code before the fix: the second judge got 0 backend calls and 48 cache hits, its result
had no verdict at all, and two servers of other weights under one model name shared answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.config.settings import get_setting
from repro.evaluation import runner
from repro.evaluation.eval_options import EvalOptions
from repro.evaluation.judge.spec import Judge
from tests.conftest import make_generation_model
from tests.judge_servers import JudgeServer, no_verdict, verdicts

LIMIT = 3  # questions per benchmark: 6 Arena-Hard games, 6 MT-Bench turns
JUDGED = 2 * LIMIT + 2 * LIMIT
# The baseline is the model itself (the tiny setting compares with its starting model), so
# both games of a question send the same request: the second is the first's cache hit.
DISTINCT = JUDGED - LIMIT


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_generation_model(tmp_path_factory.mktemp("judge-cache") / "model", tokenizer_adds_bos=False)


def evaluate(model: Path, output: Path, url: str, cache: Path, *, refresh: bool = False) -> dict:
    judge = Judge(kind="endpoint", url=url, cache=cache, **({"refresh": True} if refresh else {}))
    options = EvalOptions(limit=LIMIT, reference_model=str(model), max_new_tokens=8)
    target = runner.Target.of_setting(get_setting("tiny"))
    ev = runner.Evaluation(
        str(model), target, output=output, judge=judge, benches=["arena_hard", "mt_bench"], options=options
    )
    return ev.run().to_json()


def games(result: dict) -> int:
    return result["benchmarks"]["arena_hard"]["n_games_without_verdict"]


def test_an_answer_without_a_verdict_is_asked_again_of_the_next_judge(model, tmp_path):
    """The issue's repro: a no-verdict judge, then a good one under the same model names."""
    cache = tmp_path / "judgments.sqlite"
    with JudgeServer(no_verdict) as bad:
        first = evaluate(model, tmp_path / "eval", bad.url, cache)
    assert games(first) == 2 * LIMIT and first["benchmarks"]["mt_bench"]["n_dropped"] == 2 * LIMIT
    with JudgeServer(verdicts()) as good:
        second = evaluate(model, tmp_path / "eval", good.url, cache)
        asked = good.calls
    calls = second["judge_calls"]
    assert calls["cache_hits"] == LIMIT and calls["backend_calls"] == DISTINCT, calls
    assert games(second) == 0 and second["benchmarks"]["mt_bench"]["n_dropped"] == 0
    assert second["benchmarks"]["arena_hard"]["score"] is not None
    assert second["benchmarks"]["mt_bench"]["average"] == 9.0
    assert asked == DISTINCT + 2  # and the identity check's two one-token requests
    # every answer of the first judge was asked and none stored: each game twice (asked to continue)
    assert (
        first["judge_calls"]["unparsed"] == first["judge_calls"]["backend_calls"] == 2 * 2 * LIMIT + 2 * LIMIT
    )
    # the good answers are kept: the same judge again costs nothing
    with JudgeServer(verdicts()) as good:
        third = evaluate(model, tmp_path / "eval", good.url, cache)
    assert third["judge_calls"]["backend_calls"] == 0 and third["judge_calls"]["cache_hits"] == JUDGED


def test_the_judge_is_known_by_what_its_server_says_it_is(model, tmp_path):
    """Two servers answering to the same model names with other weights (vLLM's `root`) or
    another fingerprint are two judges; the same server on another port is one."""
    cache = tmp_path / "judgments.sqlite"
    with JudgeServer(verdicts(ah="[[A>B]]", mt="[[3]]"), root="/models/judge-a") as a:
        first = evaluate(model, tmp_path / "eval", a.url, cache)
    assert first["judge_calls"]["backend_calls"] == DISTINCT
    with JudgeServer(verdicts(ah="[[B>A]]", mt="[[8]]"), root="/models/judge-b") as b:
        second = evaluate(model, tmp_path / "eval", b.url, cache)
    assert second["judge_calls"]["backend_calls"] == DISTINCT, second["judge_calls"]
    assert second["benchmarks"]["mt_bench"]["average"] == 8.0
    assert first["judge"]["models"]["gpt-4"]["served"]["root"] == "/models/judge-a"
    with JudgeServer(verdicts(ah="[[B>A]]", mt="[[7]]"), root="/models/judge-b", fingerprint="fp_2") as c:
        third = evaluate(model, tmp_path / "eval", c.url, cache)
    assert (
        third["judge_calls"]["backend_calls"] == DISTINCT
        and third["benchmarks"]["mt_bench"]["average"] == 7.0
    )
    with JudgeServer(verdicts(ah="[[A=B]]", mt="[[1]]"), root="/models/judge-a") as again:  # a's twin
        fourth = evaluate(model, tmp_path / "eval", again.url, cache)
    assert fourth["judge_calls"]["backend_calls"] == 0 and fourth["benchmarks"]["mt_bench"]["average"] == 3.0


def test_refresh_judgments_asks_again_and_replaces_the_stored_answers(model, tmp_path):
    cache = tmp_path / "judgments.sqlite"
    with JudgeServer(verdicts(mt="[[4]]")) as judge:
        evaluate(model, tmp_path / "eval", judge.url, cache)
    with JudgeServer(verdicts(mt="[[6]]")) as judge:  # the same judge, as far as it says
        cached = evaluate(model, tmp_path / "eval", judge.url, cache)
        assert cached["judge_calls"]["backend_calls"] == 0
        refreshed = evaluate(model, tmp_path / "eval", judge.url, cache, refresh=True)
    assert refreshed["judge_calls"]["backend_calls"] == DISTINCT
    assert refreshed["benchmarks"]["mt_bench"]["average"] == 6.0
    with JudgeServer(verdicts(mt="[[2]]")) as judge:  # the refreshed answers are the stored ones now
        after = evaluate(model, tmp_path / "eval", judge.url, cache)
    assert after["judge_calls"]["backend_calls"] == 0 and after["benchmarks"]["mt_bench"]["average"] == 6.0


@pytest.mark.parametrize("command", [("run", "tiny"), ("sweep", "tiny", "--lr", "1e-3,1e-4")])
def test_refresh_judgments_is_an_option_of_run_and_sweep(command, cli, tmp_path):
    proc = cli(*command, "--refresh-judgments", "--dry-run", "--results", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert "--refresh-judgments" in cli("eval", "--help").stdout


def test_a_file_that_is_no_cache_is_one_line(tmp_path):
    """A junk file at the cache's path ended every evaluation in sqlite3.DatabaseError."""
    from repro.errors import ReproError
    from repro.evaluation.judge.cache import JudgmentCache

    junk = tmp_path / "judgments.sqlite"
    junk.write_text("junk\n" * 200)
    with pytest.raises(ReproError, match="judgments.sqlite: not a judgment cache .file is not a database."):
        JudgmentCache(junk)
    assert junk.read_text() == "junk\n" * 200  # left as it was
