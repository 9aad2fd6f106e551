"""ZeroEval GSM / MMLU-Redux inside `repro eval`, `repro run` and `repro compare`.

- Generation runs for real (transformers on CPU, the tiny model) on the tiny setting's
  synthetic arithmetic set and, under the gemma2-9b-it setting's rules, on items read from
  a local ZeroEval-format file. The result file it writes is checked against the scorer
  itself (`repro zeroeval score` gives the same numbers as the eval result).
- Compare: a Gemma-setting result is built from stored outputs (the real Yi GSM file in
  shared/ and the synthetic MMLU-Redux cases), scored by repro's ZeroEval scorer, and
  `repro compare` must show the four Gemma-table cells against the published 88.0 / 341
  / 72.2 / 441 (SimPO row), lengths rounded as published.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import zeroeval_cases as cases  # noqa: E402

from repro.evaluation import benchmarks  # noqa: E402
from repro.evaluation.scorers import zeroeval as scorer  # noqa: E402

pytestmark = pytest.mark.e2e  # multi-process training, generation or judging (make test-fast skips it)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from repro import tiny

    return tiny.save_policy(tmp_path_factory.mktemp("tiny") / "model")


def test_tiny_eval_generates_and_scores_arithmetic(tiny_model, cli, tmp_path):
    out = tmp_path / "eval"
    args = ["eval", str(tiny_model), "--setting", "tiny", "--bench", "gsm,mmlu_redux", "--limit", "4"]
    record = json.loads(cli(*args, "--output", str(out), "--format", "json", check=True).stdout)
    for bench, task in (("gsm", "gsm"), ("mmlu_redux", "mmlu-redux")):
        result = record["benchmarks"][bench]
        assert result["total"] == 4 and result["data"] == "the setting's question set"
        assert result["bos"]["mode"] == "single" and result["bos"]["bos_count"] == 1
        assert result["decoding"]["mode"] == "greedy" and result["decoding"]["stop_token_ids"] == [3]
        items = json.loads(Path(result["outputs"]).read_text())
        assert len(items) == 4 and items[0]["model_input"].startswith("<bos><user>")
        assert isinstance(items[0]["output"], list) and items[0]["configs"]["temperature"] == 0.0
        rescored = json.loads(
            cli("zeroeval", "score", result["outputs"], "--task", task, "-f", "json", check=True).stdout
        )[0]
        for key in ("acc", "no_answer", "total", "reason_length"):
            assert rescored[key] == result[key], key
    assert json.loads((out / "result.json").read_text())["benchmarks"]["gsm"]["total"] == 4
    doubled = cli(
        *args[:-1], "1", "--zeroeval-bos", "zeroeval", "--output", str(tmp_path / "d"), "-f", "json"
    )
    assert json.loads(doubled.stdout)["benchmarks"]["gsm"]["bos"]["mode"] == "zeroeval"
    bad = cli(*args, "--zeroeval-bos", "twice", "--output", str(tmp_path / "x"))
    assert bad.returncode == 2 and "unknown format 'twice'" not in bad.stderr and "twice" in bad.stderr


def test_a_judging_stage_that_takes_the_generated_score_knows_what_the_limit_cut(tiny_model, tmp_path):
    """A SLURM judging job takes ZeroEval's score from the generating job (scored-by-generation.json)
    without loading the items: how many there were travels with it, so --limit 16 on the tiny
    setting's 16 GSM items is a whole result in both stages, and --limit 4 a partial one."""
    from repro.evaluation.eval_options import EvalOptions
    from repro.evaluation.judge.spec import Judge
    from repro.runs.pipeline import checkpoint

    for limit, partial in ((16, False), (4, True)):
        out, written = tmp_path / f"limit{limit}", []
        for stage in ("generate", "judge"):
            options = EvalOptions(limit=limit, stage=stage)
            result = checkpoint.evaluate(
                str(tiny_model), "tiny", output=out, bench="gsm", judge=Judge(kind="rule"), options=options
            )
            assert (result.partial, result.limit) == (partial, limit if partial else None), (limit, stage)
            written.append(Path(result.benchmarks["gsm"]["outputs"]).stat().st_mtime_ns)
        assert written[0] == written[1]  # the judging stage generated nothing
        stored = json.loads((out / "gsm" / "scored-by-generation.json").read_text())
        assert stored["items"] == 16 and stored["result"]["total"] == limit
    # a judging stage asked for answers made another way (vLLM's BOS) does not take the stored score
    out = tmp_path / "limit4"
    options = EvalOptions(limit=4, stage="judge", zeroeval_bos="zeroeval")
    other = checkpoint.evaluate(
        str(tiny_model), "tiny", output=out, bench="gsm", judge=Judge(kind="rule"), options=options
    )
    assert other.benchmarks["gsm"]["bos"]["mode"] == "zeroeval"


def test_gemma_setting_reads_local_items_or_says_where_to_put_them(tiny_model, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = ["eval", str(tiny_model), "--setting", "gemma2-9b-it", "--bench", "gsm", "--max-new-tokens", "4"]
    no_dir = cli(*base, "--zeroeval-data", str(tmp_path / "none"), "--output", str(tmp_path / "a"))
    assert no_dir.returncode == 1 and no_dir.stderr.count("\n") == 1
    assert f"{tmp_path / 'none'}: no such directory (--zeroeval-data)" in no_dir.stderr
    (tmp_path / "empty").mkdir()
    missing = cli(*base, "--zeroeval-data", str(tmp_path / "empty"), "--output", str(tmp_path / "a"))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert f"{tmp_path / 'empty' / 'gsm.json'}" in missing.stderr and "yuchenlin/zero-eval" in missing.stderr
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"id": f"g{i}", "question": f"What is {i} + {i}?", "answer": f"# {2 * i}"} for i in range(3)]
    (data / "gsm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = json.loads(
        cli(
            *base,
            "--zeroeval-data",
            str(data),
            "--limit",
            "2",
            "--output",
            str(tmp_path / "b"),
            "-f",
            "json",
            check=True,
        ).stdout
    )
    gsm = record["benchmarks"]["gsm"]
    assert gsm["total"] == 2 and gsm["data"] == "ZeroEval items" and "arena_hard" not in record["benchmarks"]
    assert [i["id"] for i in json.loads(Path(gsm["outputs"]).read_text())] == ["g0", "g1"]


def test_setting_default_benches_and_the_plan(cli, tmp_path):
    from repro.config.resolution import evaluation_plan
    from repro.config.settings import get_setting

    def default(name: str) -> list[str]:
        return benchmarks.default(evaluation_plan(get_setting(name)))

    assert default("gemma2-9b-it")[-2:] == ["gsm", "mmlu_redux"]
    assert default("llama3-instruct") == ["alpaca_eval2", "arena_hard", "mt_bench"]
    plan = json.loads(
        cli(
            "run",
            "gemma2-9b-it",
            "--dry-run",
            "--judge-url",
            "http://127.0.0.1:9/v1",
            "--results",
            str(tmp_path),
            "--format",
            "json",
            check=True,
        ).stdout
    )
    assert plan["judge_calls"]["total_calls"] == 805 + 1000 + 160  # GSM and MMLU need no judge
    bad = cli("run", "tiny", "--bench", "gsm,mmlu", "--dry-run", "--results", str(tmp_path))
    assert bad.returncode == 2 and "unknown benchmark 'mmlu'" in bad.stderr and "mmlu_redux" in bad.stderr


def test_gemma_result_from_stored_outputs_fills_the_table_cells(shared, cli, tmp_path):
    gsm = scorer.score_file(shared / "data" / "zeroeval" / "gsm" / "Yi-1.5-9B-Chat.json", "gsm")
    mmlu = scorer.score_items(cases.case_items("mmlu-redux")["all-cases"], "mmlu-redux", model="synthetic")
    scores = benchmarks.scores({"gsm": gsm.as_dict(), "mmlu_redux": mmlu.as_dict()})
    assert scores == {"gsm": 77.86, "gsm_length": 485.07, "mmlu": 36.0, "mmlu_length": 3.25}
    folder = tmp_path / "results" / "gemma2-9b-it" / "simpo" / "run1"
    folder.mkdir(parents=True)
    result = {"setting": "gemma2-9b-it", "method": "simpo", "complete": True, "scores": scores}
    (folder / "result.json").write_text(json.dumps(result))
    out = json.loads(
        cli("compare", str(tmp_path / "results"), "--format", "json", "--all", check=True).stdout
    )
    rows = {r["metric"]: r for r in out["rows"] if (r["setting"], r["method"]) == ("gemma2-9b-it", "simpo")}
    assert {
        m: (rows[m]["published"], rows[m]["reproduced_mean"])
        for m in ("gsm", "gsm_length", "mmlu", "mmlu_length")
    } == {
        "gsm": (88.0, 77.86),
        "gsm_length": (341.0, 485.0),  # rounded as published
        "mmlu": (72.2, 36.0),
        "mmlu_length": (441.0, 3.0),
    }
    assert all(rows[m]["status"] == "outside" for m in ("gsm", "gsm_length", "mmlu", "mmlu_length"))
    others = [r for r in out["rows"] if r["setting"] == "gemma2-9b-it" and r["method"] != "simpo"]
    assert {r["metric"] for r in others if r["status"] == "missing"} >= {
        "gsm",
        "gsm_length",
        "mmlu",
        "mmlu_length",
    }
    table = cli("compare", str(tmp_path / "results"), "--only-reproduced", check=True).stdout
    assert "GSM length" in table and "MMLU length" in table and "485.00" in table
    loose = cli(
        "compare",
        str(tmp_path / "results"),
        "--tolerance",
        "gsm=11",
        "--tolerance",
        "gsm_length=150",
        "--format",
        "json",
    ).stdout
    statuses = {
        r["metric"]: r["status"]
        for r in json.loads(loose)["rows"]
        if r["setting"] == "gemma2-9b-it" and r["method"] == "simpo"
    }
    assert (
        statuses["gsm"] == "within" and statuses["gsm_length"] == "within" and statuses["mmlu"] == "outside"
    )
    plot = tmp_path / "compare.png"
    cli("compare", str(tmp_path / "results"), "--plot", str(plot), check=True)
    assert plot.read_bytes()[:4] == b"\x89PNG"
