"""Which benchmarks a rerun evaluates, and what stays (repro.runs.pipeline.evaluations; issue 32, 2.3).
The record is written as `repro run` writes it; nothing is generated or judged."""

from __future__ import annotations

from repro.evaluation.judge.judged_by import JudgedBy
from repro.evaluation.records import BenchmarkResult, EvaluationResult
from repro.runs.pipeline import evaluations

BASE = {"weights_sha256": "w", "limit": None, "generation_config_sha256": "g", "code_version": "c",
        "backend": "transformers"}  # fmt: skip
RULE = {"kind": "rule", "url": None, "model": None, "key_env": "OPENAI_API_KEY"}
ENDPOINT = {"kind": "endpoint", "url": "http://127.0.0.1:9/v1", "model": None, "key_env": "OPENAI_API_KEY"}


def recorded(run, outputs: dict, judge: dict = RULE) -> None:
    keys = {n: evaluations.benchmark_key(BASE, judge, n, None) for n in outputs}
    EvaluationResult(
        model="m", setting="tiny", benchmarks={n: BenchmarkResult(n, o) for n, o in outputs.items()},
        scores={}, judge=JudgedBy.from_json(judge, "test"), limit=None, key={"benchmarks": keys},
    ).write(run / "eval")  # fmt: skip


def test_only_what_changed_is_evaluated_and_the_rest_stays(tmp_path):
    recorded(
        tmp_path, {"alpaca_eval2": {"win_rate": 90.0}, "arena_hard": {"score": 60.0}, "gsm": {"acc": 1.0}}
    )
    same = evaluations.plan(tmp_path, ["alpaca_eval2"], base=BASE, judge=RULE)
    assert same.todo == [] and sorted(same.kept) == ["alpaca_eval2", "arena_hard", "gsm"]
    more = evaluations.plan(tmp_path, ["alpaca_eval2", "mt_bench"], base=BASE, judge=RULE)
    assert more.todo == ["mt_bench"] and more.output.name.startswith("rerun-")
    assert more.output != evaluations.plan(tmp_path, ["arena_hard", "mt_bench"], base=BASE, judge=RULE,
                                           refresh=True).output  # fmt: skip
    refreshed = evaluations.plan(tmp_path, ["alpaca_eval2"], base=BASE, judge=RULE, refresh=True)
    assert refreshed.todo == ["alpaca_eval2"]  # --refresh-judgments evaluates what it names again
    other_judge = evaluations.plan(tmp_path, ["arena_hard"], base=BASE, judge=ENDPOINT)
    assert other_judge.todo == ["arena_hard"]
    assert other_judge.kept == ["gsm"]  # one result names one judge; GSM has none
    new_weights = evaluations.plan(tmp_path, ["gsm"], base={**BASE, "weights_sha256": "x"}, judge=RULE)
    assert new_weights.todo == ["gsm"] and new_weights.kept == []


def test_an_incomplete_output_is_evaluated_again(tmp_path):
    recorded(tmp_path, {"arena_hard": {"score": None, "incomplete": True}})
    assert evaluations.plan(tmp_path, ["arena_hard"], base=BASE, judge=RULE).todo == ["arena_hard"]


def test_a_record_of_an_older_repro_is_read_per_benchmark(tmp_path):
    EvaluationResult(
        model="m", setting="tiny", benchmarks={"gsm": BenchmarkResult("gsm", {"acc": 1.0})}, scores={},
        judge=JudgedBy.from_json(RULE, "test"), limit=None,
        key={**BASE, "weights_sha256": "old", "benches": ["gsm"], "judge": RULE},
    ).write(tmp_path / "eval")  # fmt: skip
    plan = evaluations.plan(tmp_path, ["gsm"], base=BASE, judge=RULE, legacy_weights="old")
    assert plan.todo == [] and plan.kept == ["gsm"]  # the old weights hash, training_args.bin included


def test_a_kept_output_that_the_limit_cut_keeps_the_result_partial(tmp_path):
    """The record's `limit` is --limit where it left questions out; an output it cut that is kept
    beside a new one it did not cut (a rerun with the same --limit) keeps the merged result partial."""
    limited = {**BASE, "limit": 20}
    keys = {"alpaca_eval2": evaluations.benchmark_key(limited, RULE, "alpaca_eval2", None)}
    cut = {"alpaca_eval2": BenchmarkResult("alpaca_eval2", {"win_rate": 90.0})}  # 24 instructions: cut
    EvaluationResult(
        model="m", setting="tiny", benchmarks=cut, scores={}, judge=JudgedBy.from_json(RULE, "test"),
        limit=20, key={"benchmarks": keys},
    ).write(tmp_path / "eval")  # fmt: skip
    plan = evaluations.plan(tmp_path, ["alpaca_eval2", "gsm"], base=limited, judge=RULE)
    assert plan.todo == ["gsm"] and plan.kept == ["alpaca_eval2"]
    new = EvaluationResult(
        model="m", setting="tiny", benchmarks={"gsm": BenchmarkResult("gsm", {"acc": 1.0})}, scores={},
        judge=JudgedBy.from_json(RULE, "test"), limit=None,  # GSM's 16 items: --limit 20 cut none
    )  # fmt: skip
    assert evaluations.merge(plan, new).limit == 20


def test_a_result_that_keeps_earlier_judgments_counts_their_calls(tmp_path):
    """Adding a benchmark to a judged run replaced the manifest's judge calls with the new
    session's (null for an unjudged benchmark, the new calls alone for a judged one); `repro
    status` and the report read them. Oracle: the counts written here, added by hand."""
    keys = {"alpaca_eval2": evaluations.benchmark_key(BASE, RULE, "alpaca_eval2", None)}
    earlier = {
        "requests": 96,
        "cache_hits": 0,
        "backend_calls": 96,
        "unparsed": 1,
        "failures": {"timeout": 2},
    }
    EvaluationResult(
        model="m", setting="tiny", benchmarks={"alpaca_eval2": BenchmarkResult("alpaca_eval2", {"w": 1})},
        scores={}, judge=JudgedBy.from_json(RULE, "test"), limit=None, key={"benchmarks": keys},
        judge_calls=earlier,
    ).write(tmp_path / "eval")  # fmt: skip
    plan = evaluations.plan(tmp_path, ["alpaca_eval2", "gsm", "arena_hard"], base=BASE, judge=RULE)
    assert plan.kept == ["alpaca_eval2"]

    def new(calls):
        return EvaluationResult(model="m", setting="tiny", benchmarks={"gsm": BenchmarkResult("gsm", {})},
                                scores={}, judge=JudgedBy.from_json(RULE, "test"), limit=None,
                                judge_calls=calls)  # fmt: skip

    assert evaluations.merge(plan, new(None)).judge_calls == earlier  # an unjudged benchmark added
    more = {"requests": 10, "cache_hits": 4, "backend_calls": 6, "unparsed": 0, "failures": {"http 500": 1}}
    assert evaluations.merge(plan, new(more)).judge_calls == {
        "requests": 106, "cache_hits": 4, "backend_calls": 102, "unparsed": 1,
        "failures": {"http 500": 1, "timeout": 2},
    }  # fmt: skip


def test_the_data_given_for_a_benchmark_is_part_of_its_key(tmp_path):
    """`repro run tiny --zeroeval-data DIR` on a finished run said every stage was done and kept
    GSM and MMLU scored on the setting's own items; so did a changed file in DIR."""
    recorded(tmp_path, {"alpaca_eval2": {"win_rate": 90.0}, "gsm": {"acc": 1.0}, "mmlu_redux": {"acc": 1.0}})
    items = tmp_path / "items"
    items.mkdir()
    (items / "gsm.json").write_text('[{"id": "1", "question": "1+1?", "answer": "# 2"}]')
    given = evaluations.data_identity({"zeroeval_data": items})
    benches = ["alpaca_eval2", "gsm", "mmlu_redux"]
    plan = evaluations.plan(tmp_path, benches, base=BASE, judge=RULE, data=given)
    assert plan.todo == ["gsm", "mmlu_redux"] and plan.kept == ["alpaca_eval2"]  # AlpacaEval reads none
    assert plan.wanted["gsm"]["data"] == given and "data" not in plan.wanted["alpaca_eval2"]
    assert evaluations.plan(tmp_path, benches, base=BASE, judge=RULE).todo == []  # none given: as recorded
    (items / "gsm.json").write_text('[{"id": "1", "question": "2+2?", "answer": "# 4"}]')
    assert evaluations.data_identity({"zeroeval_data": items}) != given  # the content, not the path
    moved = items.rename(tmp_path / "moved")
    assert evaluations.data_identity({"zeroeval_data": moved}) == evaluations.data_identity(
        {"zeroeval_data": moved.resolve()}
    )


def test_repro_run_keys_its_evaluation_with_the_data_options_given(tmp_path):
    from repro.config.resolution import resolve_names
    from repro.evaluation.eval_options import EvalOptions
    from repro.evaluation.judge.spec import Judge
    from repro.runs.pipeline import run

    config, _ = resolve_names("tiny", "simpo")
    (tmp_path / "train" / "model").mkdir(parents=True)
    (tmp_path / "items.json").write_text("[]")
    options = EvalOptions(data_paths={"alpaca_reference": tmp_path / "items.json"})
    stage = run.evaluation_plan(config, tmp_path, tmp_path / "train", ["alpaca_eval2", "gsm"],
                                Judge(kind="rule"), options, "w")  # fmt: skip
    assert stage.wanted["alpaca_eval2"]["data"] == evaluations.data_identity(options.data_paths)
    assert "data" not in stage.wanted["gsm"]


def test_a_run_reads_its_generation_config_once(tmp_path, monkeypatch):
    """The preflight, the BOS check, the evaluation's key, the prompts and the engine take the
    generation config from one reading: a file edited while the run trains changes none of them
    in this run, and the key's hash is of the bytes whose content is used. Before, each of them
    located and read the file again (7 readings in a `repro run`): a key could name content that
    no answer was generated with. Oracle: hashlib over the file's bytes as they were."""
    import dataclasses
    import hashlib
    import shutil

    from repro import paths
    from repro.config import evalconfig
    from repro.config.resolution import resolve_names
    from repro.evaluation import benchmarks
    from repro.evaluation.eval_options import EvalOptions
    from repro.evaluation.judge.spec import Judge
    from repro.runs.pipeline import preflight, run
    from repro.train import launch

    copy = tmp_path / "gen.yaml"
    shutil.copy(paths.GENERATION / "tiny.yaml", copy)
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    tiny, _ = resolve_names("tiny", "simpo")
    config = tiny.replace(evaluation=dataclasses.replace(tiny.evaluation, generation=str(copy)))
    readings = []
    load = evalconfig.load
    monkeypatch.setattr(evalconfig, "load", lambda ref: readings.append(ref) or load(ref))

    checks = preflight.checks(config, judge=Judge(kind="rule"), results_root=tmp_path, backend="transformers")
    assert any(c.name == "generation config" and c.ok for c in checks)
    copy.write_text(copy.read_text().replace("max_new_tokens: 24", "max_new_tokens: 7") + "backend: vllm\n")

    assert launch.bos_check(config, "repro:tiny").status == "ok"
    (tmp_path / "train" / "model").mkdir(parents=True)
    stage = run.evaluation_plan(config, tmp_path, tmp_path / "train", ["alpaca_eval2"],
                                Judge(kind="rule"), EvalOptions(), "w")  # fmt: skip
    assert stage.wanted["alpaca_eval2"]["generation_config_sha256"] == before
    assert config.evaluation.generation_file.data["alpaca_eval"]["max_new_tokens"] == 24
    assert evalconfig.engine(config.evaluation) == "transformers"
    assert benchmarks.default(config.evaluation)
    assert readings == [str(copy)]

    fresh = tiny.replace(evaluation=dataclasses.replace(tiny.evaluation, generation=str(copy)))
    assert fresh.evaluation.generation_file.sha256 != before  # the next process reads the edit
    assert evalconfig.engine(fresh.evaluation) == "vllm"
