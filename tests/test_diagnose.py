"""`repro diagnose`: each planted fault is named as the first likely cause; untouched inputs diagnose clean.

Two sources of truth:
- the SimPO authors' real released AlpacaEval answers in ../shared (Llama-3-Instruct-8B-SimPO),
  diagnosed with `--outputs` against the statistics shipped in results/published/released/;
  faults are planted into a copy of the answers (cut short, a role header or special token
  leaked) or of real judge annotations (10% unparseable). The prompts' BOS, the recipe and the
  environment are not in alpaca_eval-format files: those checks say `unknown` there;
- a real tiny run (`repro run tiny`, trained once per session): faults are planted into a copy
  of the run folder as a run that had them would have recorded them, and the manifest's file
  hashes re-recorded (so `repro verify` passes and the fault, not tampering, is diagnosed).

Oracles: the judging check's win rate equals the public leaderboard's win_rate for the same
annotations (gemma-2b-it, alpaca-eval's own number, to 1e-6) and alpaca-eval 0.6.2's win_rate
of the tiny run; the released statistics equal a recount from the shared files.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli

RELEASED = "Llama-3-Instruct-8B-SimPO"


def diagnose(*args: str) -> tuple[int, dict]:
    proc = run_cli("diagnose", *args, "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    out = json.loads(proc.stdout)
    return proc.returncode, out


def first_cause(out: dict) -> dict:
    assert out["causes"], out
    return out["causes"][0]


def check(out: dict, name: str) -> dict:
    return next(c for c in out["checks"] if c["check"] == name)


# --------------------------------------------------------------------------- released answers


@pytest.fixture(scope="module")
def alpaca(shared) -> Path:
    return shared / "data" / "alpaca_eval"


@pytest.fixture(scope="module")
def released_outputs(alpaca) -> list[dict]:
    return json.loads((alpaca / "model_outputs" / f"{RELEASED}.json").read_text())


def write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def outputs_args(path: Path, alpaca: Path, *extra: str) -> list[str]:
    leaderboard = alpaca / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"
    return ["--outputs", str(path), "--setting", "llama3-instruct", "--method", "simpo",
            "--leaderboard", str(leaderboard), *extra]  # fmt: skip


def test_shipped_statistics_match_the_shared_files(alpaca):
    from repro.runs.analysis import released

    index = released.index()
    assert index["commit"] == (alpaca / "COMMIT").read_text().split()[0]
    for entry in index["models"]:
        outputs = json.loads((alpaca / "model_outputs" / f"{entry['generator']}.json").read_text())
        pair = released.find(entry["setting"], entry["method"])
        assert pair.stats == released.stats_of(outputs)
        assert pair.avg_length == int(pair.leaderboard["avg_length"])  # the leaderboard's own number


def test_released_answers_diagnose_clean_and_the_json_is_the_documented_form(alpaca):
    code, out = diagnose(*outputs_args(alpaca / "model_outputs" / f"{RELEASED}.json", alpaca))
    assert code == 0 and out["causes"] == []
    assert set(out) == {"checks", "causes"}
    assert [c["check"] for c in out["checks"]] == [
        "recipe", "environment", "tokenization", "training", "generation", "judging"
    ]  # fmt: skip
    for c in out["checks"]:
        assert set(c) == {"check", "status", "summary", "evidence"} and c["status"] in (
            "ok",
            "differs",
            "unknown",
        )
    generation = check(out, "generation")
    assert generation["status"] == "ok" and generation["evidence"]["released"]["mean_length_ratio"] == 1.0
    assert generation["evidence"]["released"]["leaderboard_avg_length"] == 1825
    # what the files cannot tell is unknown, with the reason
    assert (
        check(out, "tokenization")["status"] == "unknown"
        and "token ids" in check(out, "tokenization")["summary"]
    )


def test_released_answers_cut_short(alpaca, released_outputs, tmp_path):
    cut = [{**o, "output": o["output"][: len(o["output"]) * 3 // 10]} for o in released_outputs]
    code, out = diagnose(*outputs_args(write(tmp_path / "cut.json", cut), alpaca))
    assert code == 1
    cause = first_cause(out)
    assert cause["check"] == "generation" and cause["summary"].startswith("answers cut short")
    assert check(out, "generation")["evidence"]["released"]["median_ratio"] == pytest.approx(0.3, abs=0.01)


def test_a_repro_eval_of_the_released_checkpoint_is_held_to_its_released_answers(released_outputs, tmp_path):
    """`repro diagnose OUTPUT` of a `repro eval` of a released checkpoint (a result.json with no
    method, its benchmarks' files in the folder itself): the answers are read where `repro eval`
    writes them and held to the authors' released answers of the method the published row lists
    that checkpoint under (scores.csv: princeton-nlp/Llama-3-Instruct-8B-SimPO, llama3-instruct,
    simpo); the training check says there is none to check. Before, the generation and judging
    checks looked for eval/alpaca_eval2/ and said unknown. Oracle: the real released answers,
    each cut to 30% (median length ratio 0.3)."""
    from repro.evaluation.judge.judged_by import JudgedBy
    from repro.evaluation.records import BenchmarkResult, EvaluationResult
    from repro.runs.results.result import RunResult

    cut = [{**o, "output": o["output"][: len(o["output"]) * 3 // 10]} for o in released_outputs]
    folder = tmp_path / "eval-released"
    (folder / "alpaca_eval2").mkdir(parents=True)
    write(folder / "alpaca_eval2" / "model_outputs.json", cut)
    output = {"length_controlled_winrate": 20.0, "win_rate": 15.0}
    evaluation = EvaluationResult(
        model="Llama-3-Instruct-8B-SimPO", setting="llama3-instruct", limit=None,
        judge=JudgedBy("endpoint", "https://api.openai.com/v1", None, "OPENAI_API_KEY"),
        benchmarks={"alpaca_eval2": BenchmarkResult("alpaca_eval2", output)}, scores={"ae2_lc": 20.0},
    )  # fmt: skip
    RunResult.of(evaluation, model="princeton-nlp/Llama-3-Instruct-8B-SimPO").write(folder / "result.json")
    code, out = diagnose(str(folder))
    assert code == 1
    cause = first_cause(out)
    assert cause["check"] == "generation" and cause["summary"].startswith("answers cut short")
    assert check(out, "generation")["evidence"]["released"]["median_ratio"] == pytest.approx(0.3, abs=0.01)
    assert (
        check(out, "training")["summary"]
        == "no training to check: a `repro eval` of a checkpoint trained elsewhere"
    )


@pytest.mark.parametrize(
    ("prefix", "named"),
    [
        ("assistant\n\n", "a role header"),
        ("<|start_header_id|>assistant<|end_header_id|>\n\n", "a special token"),
    ],
)
def test_released_answers_with_a_leaked_header(prefix, named, alpaca, released_outputs, tmp_path):
    leaked = [{**o, "output": prefix + o["output"]} for o in released_outputs]
    code, out = diagnose(*outputs_args(write(tmp_path / "leaked.json", leaked), alpaca))
    assert code == 1
    cause = first_cause(out)
    assert cause["check"] == "generation" and cause["summary"].startswith(named), cause


def test_recorded_generator_config_is_checked(shared, alpaca, released_outputs, tmp_path):
    """The SimPO repo's own alpaca_eval config beside the outputs: its decoding is the published
    one (do_sample true = beam search of width 1 under 0.6.2); the same config with greedy
    decoding and 512 tokens is named."""
    import yaml

    config = yaml.safe_load(
        (shared / "reference/simpo-repo/eval/alpacaeval2/configs/Llama-3-Instruct-8B-SimPO.yaml").read_text()
    )
    outputs = write(tmp_path / "model_outputs.json", released_outputs)
    (tmp_path / "configs.yaml").write_text(yaml.safe_dump(config))
    code, out = diagnose(*outputs_args(outputs, alpaca))
    assert code == 0 and check(out, "generation")["evidence"]["decoding"]["differences"] == {}
    config["Llama-3-Instruct-8B-SimPO"]["completions_kwargs"].update(do_sample=False, temperature=0.0,
                                                                    max_new_tokens=512)  # fmt: skip
    (tmp_path / "configs.yaml").write_text(yaml.safe_dump(config))
    code, out = diagnose(*outputs_args(outputs, alpaca))
    assert code == 1
    causes = [c["summary"] for c in out["causes"]]
    assert causes[0].startswith(
        "answers cut short: generated with max_new_tokens 512 where the published numbers"
    )
    assert (
        causes[1].startswith("decoding is not the published one")
        and "mode greedy (published beam1)" in causes[1]
    )


@pytest.fixture(scope="module")
def relabelled(alpaca, released_outputs) -> list[dict]:
    """Real judge annotations (gemma-2b-it's, gpt-4-1106-preview through alpaca-eval) with output_2
    set to the released SimPO answer of the same instruction: the judging check reads whether
    each judgment parsed, the annotator and the spread of preferences, not what they judged."""
    by_instruction = {o["instruction"]: o for o in released_outputs}
    rows = json.loads((alpaca / "annotations" / "gemma-2b-it.json").read_text())
    return [
        {**a, "output_2": by_instruction[a["instruction"]]["output"], "generator_2": RELEASED}
        for a in rows
        if a["instruction"] in by_instruction
    ]


def test_judgments_unparseable(alpaca, relabelled, tmp_path):
    outputs = alpaca / "model_outputs" / f"{RELEASED}.json"
    code, out = diagnose(
        *outputs_args(outputs, alpaca, "--annotations", str(write(tmp_path / "a.json", relabelled)))
    )
    assert code == 0 and check(out, "judging")["status"] == "ok"
    planted = [dict(a) for a in relabelled]
    for a in planted[: math.ceil(len(planted) / 10)]:
        a["preference"], a["raw_completion"] = None, "I cannot decide."
    code, out = diagnose(
        *outputs_args(outputs, alpaca, "--annotations", str(write(tmp_path / "b.json", planted)))
    )
    assert code == 1
    cause = first_cause(out)
    assert cause["check"] == "judging" and "failed to parse" in cause["summary"]
    assert check(out, "judging")["evidence"]["failed_share"] == pytest.approx(0.1, abs=0.002)


def test_judging_win_rate_and_noise_floor_match_alpaca_eval(alpaca):
    """Oracle: the public leaderboard's win_rate for gemma-2b-it, computed by alpaca-eval from
    these very annotations."""
    from repro.runs.analysis import released
    from repro.runs.analysis.diagnosis import inputs, judging

    board = released.leaderboard_rows(alpaca / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv")
    found = inputs.Inputs(setting="llama3-instruct", method="simpo")
    found.annotations = inputs.read_annotations(alpaca / "annotations" / "gemma-2b-it.json")
    evidence = judging.check(found).evidence
    assert evidence["win_rate"] == pytest.approx(board["gemma-2b-it"]["win_rate"], abs=1e-3)
    low, high = evidence["bootstrap_95"]
    # a 95% interval is about 1.96 standard errors either side; the leaderboard's standard_error
    # is alpaca-eval's own (over instructions)
    assert (high - low) / 2 == pytest.approx(1.96 * board["gemma-2b-it"]["standard_error"], rel=0.15)
    assert evidence["noise_floor"] == pytest.approx((high - low) / 2 + 1.0, abs=1e-3)


def test_bad_inputs_are_one_line_and_exit_2(alpaca, released_outputs, tmp_path, cli):
    other = write(tmp_path / "other.json", [{"instruction": "What is 2+2?", "output": "4"}])
    proc = cli(*["diagnose", *outputs_args(other, alpaca)])
    assert proc.returncode == 2 and "another instruction set" in proc.stderr and proc.stderr.count("\n") == 1
    bad = tmp_path / "bad.json"
    bad.write_text('[{"instruction": "x"')
    outputs = alpaca / "model_outputs" / f"{RELEASED}.json"
    proc = cli(*["diagnose", *outputs_args(outputs, alpaca, "--annotations", str(bad))])
    assert (
        proc.returncode == 2
        and "not a JSON annotations file" in proc.stderr
        and "Traceback" not in proc.stderr
    )
    proc = cli("diagnose", "--outputs", str(outputs), "--setting", "llama3-instruct")
    assert proc.returncode == 2 and "--method" in proc.stderr
    # a path that is not there is bad input too (exit 1 would read as "something differs")
    proc = cli(*["diagnose", *outputs_args(outputs, alpaca, "--annotations", str(tmp_path / "none.json"))])
    assert proc.returncode == 2 and "none.json: no such file (--annotations)" in proc.stderr
    # annotations of other answers (gemma-2b-it's) cannot speak for these
    other_annotations = alpaca / "annotations" / "gemma-2b-it.json"
    proc = cli(*["diagnose", *outputs_args(outputs, alpaca, "--annotations", str(other_annotations))])
    assert proc.returncode == 2 and "annotations of other outputs" in proc.stderr
    # a pair without released answers: the generation check says so, nothing fails
    code, out = diagnose("--outputs", str(outputs), "--setting", "mistral-base", "--method", "kto")
    assert (
        code == 0
        and "released no AlpacaEval answers" in check(out, "generation")["evidence"]["released"]["note"]
    )


@pytest.mark.parametrize(
    ("manifest", "why"),
    [
        ('{"config": {', "manifest.json: corrupt JSON"),
        ("[]", "manifest.json: not a JSON object"),
        ('{"files": 3}', "manifest.json: 'files' is not a mapping"),
        ('{"files": {"result.json": 5}}', "manifest.json: files['result.json'] is not a SHA-256 string"),
    ],
    ids=["not-json", "a-list", "files-not-a-mapping", "a-hash-not-a-string"],
)
def test_a_manifest_that_cannot_be_read_fails_verify_first(manifest, why, tmp_path, cli):
    """A manifest that is not JSON showed `unknown` checks and exit 0; one of the wrong shape
    exited 2 as bad input. Both are a run whose record cannot be checked: said first, exit 1,
    as for a tampered run (`repro verify` fails on both)."""
    run = tmp_path / "llama3-instruct" / "simpo" / "run"
    run.mkdir(parents=True)
    result = {"setting": "llama3-instruct", "method": "simpo", "complete": True, "scores": {"ae2_lc": 40.0}}
    (run / "result.json").write_text(json.dumps(result))
    (run / "manifest.json").write_text(manifest)
    assert why in cli("verify", str(run)).stderr
    proc = cli("diagnose", str(run))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines()[1] == (
        f"! repro verify fails: the manifest cannot be read ({why}); "
        "nothing the run recorded can be checked against it"
    )
    code, out = diagnose(str(run))
    assert code == 1 and first_cause(out) == {
        "check": "recipe",
        "summary": f"tampered run (repro verify fails): {why}",
    }
    assert check(out, "recipe")["status"] == "differs" and check(out, "recipe")["evidence"]["verify"] == [why]
    # only a manifest that is not there makes a partial run (unknown, exit 0)
    (run / "manifest.json").unlink()
    code, out = diagnose(str(run))
    assert code == 0 and "manifest.json (not found)" in check(out, "recipe")["summary"]


# --------------------------------------------------------------------------- the tiny run


def _rehash(run_dir: Path) -> None:
    """Record the planted files as the run's own (as a run that produced them would have)."""
    from repro import io
    from repro.runs.results import verify

    manifest = io.read_json(run_dir / "manifest.json")
    manifest["files"] = verify.file_hashes(run_dir, run_dir)
    io.write_json(run_dir / "manifest.json", manifest)


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=1))


@pytest.fixture
def run_copy(tiny_results, tmp_path) -> Path:
    source = next((tiny_results / "tiny" / "simpo").iterdir())
    target = tmp_path / "tiny" / "simpo" / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("trainer", ".lock"))
    return target


def _cut_short(run: Path) -> None:
    from repro.data import tokenizers

    tok = tokenizers.load(str(run / "train" / "model"))
    limit = 8

    def cut(text: str) -> str:
        return tok.decode(tok(text, add_special_tokens=False)["input_ids"][:limit])

    _edit(
        run / "eval" / "alpaca_eval2" / "model_outputs.json",
        lambda d: [o.update(output=cut(o["output"])) for o in d],
    )
    for name in ("eval/evaluation.json", "result.json"):
        _edit(run / name, lambda d: d["benchmarks"]["alpaca_eval2"]["decoding"].update(max_new_tokens=limit))


def _leaked(run: Path) -> None:
    def leak(data):
        for o in data:
            o["output"] = "<assistant> " + o["output"]

    _edit(run / "eval" / "alpaca_eval2" / "model_outputs.json", leak)


def _double_bos(run: Path) -> None:
    def two(checks: dict) -> None:
        for c in checks["checks"]:
            if c["what"].startswith("generation (AlpacaEval"):
                c.update(bos_count=2, status="error", message="2 BOS where 1 expected")
        checks["status"] = "error"

    _edit(run / "eval" / "evaluation.json", lambda d: two(d["bos_check"]))
    _edit(run / "result.json", lambda d: two(d["bos_check"]["eval"]))
    _edit(run / "manifest.json", lambda d: two(d["tokenizer_checks"]["eval"]))


def _total_batch(run: Path) -> None:
    from repro.config.methods import get_method
    from repro.config.resolution import resolve
    from repro.config.settings import get_setting

    config = resolve(get_setting("tiny"), get_method("simpo"), overrides={"total_batch_size": 32})
    _edit(run / "manifest.json", lambda d: d.update(config=config.to_json(), config_hash=config.config_hash))


def _alpaca_eval_063(run: Path) -> None:
    def newer(d):
        d["environment"]["packages"]["alpaca-eval"] = "0.6.3"
        d["environment"]["lock_drift"].append(
            {
                "package": "alpaca-eval",
                "expected": "0.6.2",
                "installed": "0.6.3",
                "status": "differs",
                "files": [],
            }
        )

    _edit(run / "manifest.json", newer)


def _unparseable(run: Path) -> None:
    def fail(rows):
        for a in rows[: math.ceil(len(rows) / 10)]:
            a["preference"], a["raw_completion"] = None, "no verdict"

    _edit(run / "eval" / "alpaca_eval2" / "annotations.json", fail)


@pytest.mark.e2e
def test_tiny_run_diagnoses_clean(run_copy):
    code, out = diagnose(str(run_copy))
    assert code == 0 and out["causes"] == [], out["causes"]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("plant", "check_name", "words"),
    [
        (
            _cut_short,
            "generation",
            "answers cut short: generated with max_new_tokens 8 where the published numbers used 24",
        ),
        (_leaked, "generation", "a special token leaked into the answers"),
        (_double_bos, "tokenization", "two BOS in the generation prompt"),
        (_total_batch, "recipe", "not the paper's recipe: total batch 32 where the recipe has 16"),
        (_alpaca_eval_063, "environment", "alpaca-eval 0.6.3 in the manifest, not 0.6.2"),
        (_unparseable, "judging", "of judgments failed to parse (3 of 24)"),
    ],
    ids=[
        "cut-short",
        "leaked-token",
        "double-bos",
        "total-batch",
        "alpaca-eval-0.6.3",
        "unparseable-judgments",
    ],
)
def test_tiny_run_planted_fault_is_the_first_cause(plant, check_name, words, run_copy):
    plant(run_copy)  # into a copy of the session's run, which diagnoses clean (the test below)
    _rehash(run_copy)
    assert run_cli("verify", str(run_copy)).returncode == 0
    code, out = diagnose(str(run_copy))
    assert code == 1
    cause = first_cause(out)
    assert cause["check"] == check_name and words in cause["summary"], out["causes"]
    assert check(out, check_name)["status"] == "differs"


@pytest.mark.e2e
def test_tiny_run_tampered_or_partial(run_copy, cli):
    _leaked(run_copy)  # not re-recorded: the manifest's hashes now disagree
    proc = cli("diagnose", str(run_copy))
    assert proc.returncode == 1 and proc.stdout.splitlines()[1].startswith("! repro verify fails")
    code, out = diagnose(str(run_copy))
    assert first_cause(out)["summary"].startswith(
        "tampered run (repro verify fails): eval/alpaca_eval2/model_outputs.json"
    )
    # a partial run: what is missing is unknown, with the file named
    for name in ("manifest.json", "result.json", "eval/evaluation.json"):
        (run_copy / name).unlink()
    shutil.rmtree(run_copy / "eval" / "alpaca_eval2")
    code, out = diagnose(str(run_copy))
    assert code == 0
    assert (
        check(out, "recipe")["status"] == "unknown"
        and "manifest.json (not found)" in check(out, "recipe")["summary"]
    )
    assert "model_outputs.json (not found)" in check(out, "generation")["summary"]
    assert check(out, "training")["status"] == "ok"  # train/metrics.json is still there


def test_tokenizer_revision_other_than_the_published_one(tmp_path):
    """A Llama 3 run on the post-update tokenizer (the model's own revision) is named, though its
    recorded BOS checks passed; the recipe check lists the changed value as well."""
    from repro.config.methods import get_method
    from repro.config.resolution import resolve, resolve_names
    from repro.config.settings import get_setting
    from repro.data.bosguard import Report, Stages
    from repro.runs.analysis.diagnosis import inputs, recipe, tokenization
    from repro.runs.results.manifest import Manifest

    config = resolve(get_setting("llama3-instruct-v0.2"), get_method("simpo"))
    found = inputs.Inputs(setting="llama3-instruct-v0.2", method="simpo", run_dir=tmp_path)
    found.manifest = Manifest(config=config.replace(tokenizer_revision=None).to_json(),
                              tokenizer_checks=Stages(train=Report("ok")))  # fmt: skip
    checked = tokenization.check(found)
    assert checked.status == "differs"
    assert checked.causes[0].summary.startswith(
        f"tokenizer revision of the model (main) where the published numbers used {config.tokenizer_revision}"
    )
    assert "tokenizer_revision" in recipe.check(found).evidence["differences"]
    # what a run changed, as its config records it, is compared value by value, never as itself
    overridden, _ = resolve_names("llama3-instruct-v0.2", "simpo", overrides=["beta=3"])
    found.manifest = Manifest(config=overridden.to_json(), tokenizer_checks=Stages(train=Report("ok")))
    assert set(recipe.check(found).evidence["differences"]) == {
        "hyperparameters.beta",
        "hyperparameters.gamma",
    }
    found.manifest.config = config.to_json()
    assert tokenization.check(found).status == "ok" and recipe.check(found).status == "ok"


TWO_BOS = {
    "what": "generation (AlpacaEval prompt template)", "first_ids": [1, 1, 9],
    "first_tokens": ["<s>", "<s>", "a"], "bos_count": 2, "expected": 1, "status": "error",
    "message": "2 BOS where 1 expected",
}  # fmt: skip
TWO_BOS_REPORT = {"status": "error", "checks": [TWO_BOS]}


@pytest.mark.parametrize("recorded", [{"eval": TWO_BOS_REPORT}, TWO_BOS_REPORT], ids=["now", "older"])
def test_a_checkpoints_evaluation_has_its_bos_counted(recorded, tmp_path):
    """`repro eval` of a checkpoint writes no manifest, and its result held the evaluation's BOS
    report bare (not under "eval"): the diagnosis read it as no report at all ("cannot count
    BOS") where it held two BOS. Both layouts are read as the evaluation's report."""
    from repro.runs.analysis.diagnosis import inputs, tokenization
    from repro.runs.results.result import RunResult

    data = {"setting": "tiny", "method": None, "scores": {}, "bos_check": recorded}
    found = inputs.Inputs(setting="tiny", method=None, run_dir=tmp_path)
    found.result = RunResult.from_json(data, "result.json")
    checked = tokenization.check(found)
    assert checked.status == "differs", checked.summary
    assert checked.causes[0].summary.startswith("two BOS in the generation prompt")
    assert [c["stage"] for c in checked.evidence["bos"]] == ["eval"]


def test_a_malformed_bos_report_is_one_line():
    from repro.data.bosguard import Report, Stages
    from repro.errors import ReproError

    report = Report.from_json({"status": "error", "checks": [TWO_BOS]}, "x")
    assert report.first_error().bos_count == 2 and Report.from_json(report.to_json(), "x") == report
    assert Stages.from_json(Stages(train=report).to_json(), "x") == Stages(train=report)
    for bad in ({"status": "fine"}, {"status": "ok", "checks": [{"what": "a"}]}, {"train": 1}, {"other": {}}):
        with pytest.raises(ReproError, match="^x"):
            Stages.from_json(bad, "x")


@pytest.mark.parametrize("where", ["folder", "hub cache", "nowhere"])
def test_a_checkpoint_stopping_on_its_familys_tokens_is_held_to_them(
    where, smol_model, tmp_path, monkeypatch
):
    """`repro eval` of a smol checkpoint answers with the smol setting's decoding, whose stop
    tokens are the family's (`stop_token_ids: family`, <|im_end|>) spelled as the model's ids.
    The diagnosis resolved them only from a run's train/model, so of a checkpoint it reported
    "decoding is not the published one: stop_token_ids [2] (published family)" for answers made
    exactly as published. The checkpoint's own tokenizer spells them: the evaluated folder, or a
    hub model's commit in the local hub cache; where neither is here the stops are not compared,
    and the evidence says so. Oracle: SmolLM2's tokenizer's own id for <|im_end|>."""
    import huggingface_hub.constants
    from transformers import AutoTokenizer

    from repro.config import evalconfig
    from repro.evaluation.generation.decoding import Decoding
    from repro.evaluation.judge.judged_by import JudgedBy
    from repro.evaluation.records import BenchmarkResult, EvaluationResult
    from repro.runs.analysis.diagnosis import generation, inputs
    from repro.runs.results.result import RunResult

    im_end = AutoTokenizer.from_pretrained(smol_model).convert_tokens_to_ids("<|im_end|>")
    smol = evalconfig.generation("smol")["alpaca_eval"]
    used = vars(Decoding.alpaca_eval({**smol, "stop_token_ids": [im_end]}))
    commit = "0123456789abcdef0123456789abcdef01234567"
    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    if where == "hub cache":
        (cache / "models--HuggingFaceTB--SmolLM2-135M-Instruct" / "snapshots").mkdir(parents=True)
        (cache / "models--HuggingFaceTB--SmolLM2-135M-Instruct" / "snapshots" / commit).symlink_to(smol_model)
    model = str(smol_model) if where == "folder" else "HuggingFaceTB/SmolLM2-135M-Instruct"
    folder = tmp_path / "eval-smol"
    (folder / "alpaca_eval2").mkdir(parents=True)
    answers = [{"instruction": f"Name a colour ({i}).", "output": "Blue, as the sky."} for i in range(8)]
    write(folder / "alpaca_eval2" / "model_outputs.json", answers)
    evaluation = EvaluationResult(
        model=model, setting="smol", limit=None, judge=JudgedBy("rule", None, None, None),
        scores={"ae2_wr": 50.0},
        benchmarks={"alpaca_eval2": BenchmarkResult("alpaca_eval2", {"win_rate": 50.0, "decoding": used})},
    )  # fmt: skip
    commit_of = None if where == "folder" else commit
    RunResult.of(evaluation, model=model, model_commit=commit_of).write(folder / "result.json")

    checked = generation.check(inputs.from_run(folder))
    decoding = checked.evidence["decoding"]
    assert not [c.summary for c in checked.causes if c.summary.startswith("decoding")], checked.summary
    if where == "nowhere":
        assert decoding["published"]["stop_token_ids"] == "family"
        assert decoding["note"].startswith("stop tokens not compared")
        assert "decoding as published (its stop tokens not compared" in checked.summary
    else:
        assert decoding["published"]["stop_token_ids"] == [im_end] and "note" not in decoding
