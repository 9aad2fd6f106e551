"""`repro diagnose` reads its evidence from the evaluation that result.json names (issue 32, 1.6),
and its summaries never contradict their evidence (1.7).

The run folder is written as `repro run` writes one (RunResult.of over the benchmarks' outputs,
the evaluation record beside it); nothing is trained. The planted situation is the issue's: a
tiny run re-judged by an endpoint that never gives a verdict, with the AlpacaEval files of the
earlier evaluation still on disk. Before the fix, the judging check reported those files
(`failed_to_parse: 0`, `win_rate 100`, inside the band) and said nothing of the 48 games and
48 judgments without a verdict."""

from __future__ import annotations

import json
from pathlib import Path

from repro import io
from repro.evaluation.judge.judged_by import JudgedBy
from repro.evaluation.records import BenchmarkResult, EvaluationResult
from repro.runs.analysis import diagnosis
from repro.runs.results.result import RunResult

ENDPOINT = JudgedBy("endpoint", "http://127.0.0.1:9/v1", None, "OPENAI_API_KEY")
NO_VERDICTS = {
    "arena_hard": {"score": None, "lower": None, "upper": None, "battles": 0, "avg_tokens": 27,
                   "n_questions": 24, "n_games_without_verdict": 48, "incomplete": True},
    "mt_bench": {"turn_1": None, "turn_2": None, "average": None, "n_counted": 0, "n_dropped": 48,
                 "n_out_of_range": 0, "n_duplicates": 0, "judge_model": "gpt-4", "incomplete": True},
}  # fmt: skip


def rejudged_run(root: Path) -> Path:
    run = root / "tiny" / "simpo" / "run"
    evaluation = EvaluationResult(
        model="model", setting="tiny", benchmarks={n: BenchmarkResult(n, o) for n, o in NO_VERDICTS.items()},
        scores={"ah": None, "mt_bench": None}, judge=ENDPOINT, limit=None,
    )  # fmt: skip
    evaluation.write(run / "eval")
    RunResult.of(evaluation, model="model", method="simpo", run_id="run", seed=42).write(run / "result.json")
    # the earlier evaluation's AlpacaEval files: every judgment a clear win
    stale = run / "eval" / "alpaca_eval2"
    outputs = [{"instruction": f"q{i}", "output": "sure , the cat is good .", "generator": "model"}
               for i in range(24)]  # fmt: skip
    io.write_json(stale / "model_outputs.json", outputs)
    annotator = "weighted_alpaca_eval_gpt4_turbo"
    annotations = [{"instruction": o["instruction"], "output_1": "no .", "output_2": o["output"],
                    "preference": 2.0, "annotator": annotator} for o in outputs]  # fmt: skip
    (stale / "annotations.json").write_text(json.dumps(annotations))
    return run


def test_judging_evidence_comes_from_the_evaluation_the_result_names(tmp_path):
    found = diagnosis.run(rejudged_run(tmp_path)).as_dict()
    judging = next(c for c in found["checks"] if c["check"] == "judging")
    evidence = judging["evidence"]
    assert "win_rate" not in evidence and "failed_to_parse" not in evidence  # the stale files' numbers
    assert evidence["unparsed"] == {
        "arena_hard": {"failed": 48, "of": 48},
        "mt_bench": {"failed": 48, "of": 48},
    }
    assert judging["status"] == "differs"
    assert "arena_hard: 48 of 48 games without a verdict" in judging["summary"]
    assert "mt_bench: 48 of 48 judgments without a rating" in judging["summary"]
    generation = next(c for c in found["checks"] if c["check"] == "generation")
    assert "not part of result.json's evaluation" in generation["summary"]


def test_the_generation_summary_says_what_its_evidence_holds(tmp_path):
    """Issue 32, 1.7: the summary said 'no leaked header or special token' while its evidence said
    contains_special 1.0 with '<eot>' examples (the tiny setting has no released answers)."""
    run = rejudged_run(tmp_path)
    outputs = json.loads((run / "eval" / "alpaca_eval2" / "model_outputs.json").read_text())
    for o in outputs:
        o["output"] = "sure , here is great . <eot> is is"
    io.write_json(run / "eval" / "alpaca_eval2" / "model_outputs.json", outputs)
    evaluation = EvaluationResult.read_run_folder(run / "eval")
    with_ae = {
        **evaluation.outputs(),
        "alpaca_eval2": {"win_rate": 100.0, "n_total": 24, "incomplete": False},
    }
    evaluation = EvaluationResult(
        model="model", setting="tiny", benchmarks={n: BenchmarkResult(n, o) for n, o in with_ae.items()},
        scores={"ae2_wr": 100.0}, judge=ENDPOINT, limit=None,
    )  # fmt: skip
    RunResult.of(evaluation, model="model", method="simpo", run_id="run", seed=42).write(run / "result.json")
    generation = next(c for c in diagnosis.run(run).as_dict()["checks"] if c["check"] == "generation")
    assert generation["evidence"]["shares"]["contains_special"] == 1.0
    assert "no leaked header or special token" not in generation["summary"]
    assert "a special token inside 100.0% of the answers (e.g. '<eot>'" in generation["summary"]


def test_the_report_says_what_a_truncated_run_is(tmp_path):
    """Issue 32, 1.7: a --max-steps run was captioned 'partial (--limit None)' and its row had the
    same green 'within' as the recipe's runs."""
    from repro.runs.analysis import report
    from tests.test_trust import write_run

    write_run(tmp_path, "seed42", delta=0.2)
    write_run(tmp_path, "four-steps", max_steps=4, steps=4, delta=-0.3)
    page = report.html_page(tmp_path)
    assert "partial (--limit None)" not in page
    assert "partial: training stopped at 4 of the recipe&#x27;s 468 steps (--max-steps)" in page
    rows = [line for line in page.splitlines() if line.startswith("<tr class=") and "data-status" in line]
    truncated = [r for r in rows if "truncated: 4 of 468 steps" in r]
    assert truncated and all(r.startswith('<tr class="variant"') for r in truncated), truncated
    assert all("within, but not the recipe&#x27;s run" in r for r in truncated)
    recipe = [r for r in rows if "truncated" not in r]
    assert recipe and all(r.startswith('<tr class="ok"') for r in recipe)
    text = report.markdown(tmp_path)
    assert "⚠️ within, but not the recipe's run" in text and "partial (--limit None)" not in text


def test_every_file_the_report_shows_is_covered_by_the_manifest(tmp_path, cli):
    """Issue 32, 1.8: DPO's curves.png copied over SimPO's verified, and the report showed DPO's
    curves under SimPO."""
    from repro.runs.analysis import plots, report
    from repro.runs.results import verify
    from tests.test_trust import write_run

    runs = {}
    for name, loss in (("simpo", 0.7), ("dpo", 0.2)):
        run = write_run(tmp_path / "results", name)
        history = [{"step": s, "loss": loss / s, "epoch": s / 4} for s in (1, 2, 3, 4)]
        plots.curves(history, run / "curves.png", title=name)
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["files"].update(verify.file_hashes(run, run))  # as repro run records them
        io.write_json(run / "manifest.json", manifest)
        runs[name] = run
    assert "curves.png" in json.loads((runs["simpo"] / "manifest.json").read_text())["files"]
    assert cli("verify", str(runs["simpo"])).returncode == 0
    (runs["simpo"] / "curves.png").write_bytes((runs["dpo"] / "curves.png").read_bytes())
    bad = cli("verify", str(runs["simpo"]))
    assert bad.returncode == 1 and "curves.png: changed" in bad.stderr
    page = report.html_page(tmp_path / "results")
    assert page.count('class="curves"') == 1  # DPO's own; SimPO's copy is not shown
    assert "training curves not shown: curves.png: changed" in page


def test_each_run_on_the_report_shows_its_own_scores_and_why_one_is_blank(tmp_path):
    """The report showed a run's scores only through the comparison table (pooled, and only for
    runs compare counts): a `repro eval` of a checkpoint no published row lists, or a partial run,
    had its provenance and diagnosis on the page but not one of its numbers. Each run now lists
    result.json's scores, a blank one with the reason its benchmark gives (as `repro run` prints
    it). Oracle: the values written into result.json."""
    from repro.runs.analysis import report
    from tests.test_trust import run_record, write_run

    results = tmp_path / "results"
    trained = write_run(results, "seed42", delta=0.2)
    record = run_record(
        model="/ckpt/smol", setting="smol", method=None, run_id=None, seed=None, judge=ENDPOINT, limit=3,
        benchmarks={"alpaca_eval2": {"length_controlled_winrate": None, "win_rate": 37.5, "avg_length": 551,
                                     "n_total": 3, "lc_available": False},
                    "mt_bench": NO_VERDICTS["mt_bench"]},
    )  # fmt: skip
    io.write_json(results / "eval-smol" / "result.json", record)
    lc = "blank: no length-controlled data: pass --lc-data DIR"
    mt = "blank: 48 of 48 judgments without a rating in 1-10"
    page = report.html_page(results)
    section = page.split("checkpoint /ckpt/smol", 1)[1].split('<section class="run">', 1)[0]
    assert '<tr data-score="ae2_wr"><td>ae2_wr</td><td class="num">37.50</td></tr>' in section
    assert f'<tr data-score="ae2_lc"><td>ae2_lc</td><td>{lc}' in section
    assert f'<tr data-score="mt_bench"><td>mt_bench</td><td>{mt}</td></tr>' in section
    published = json.loads((trained / "result.json").read_text())["scores"]["ae2_lc"]
    assert f'<tr data-score="ae2_lc"><td>ae2_lc</td><td class="num">{published:.2f}</td></tr>' in page
    text = report.markdown(results)
    assert "| ae2_wr | 37.50 |" in text and f"| ae2_lc | {lc}" in text and f"| mt_bench | {mt} |" in text
