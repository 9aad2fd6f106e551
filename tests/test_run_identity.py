"""A run is what it says it is (issue 13, findings 1-5) and any recipe file runs (issue 14).

One real run of a user's own recipe file, a verbatim copy of tiny.yaml under another name in
another folder, goes through all four stages (ZeRO-3 training on 2 CPU processes, generation,
the rule judge, scoring). The tests then rerun, limit, dry-run and tamper with it, and check
what each one may and may not change. Each test names the finding it guards; on the code
before the fix each of them failed (the 2-step model reused under the full run's id, a
--limit evaluation overwriting the full one, a dry run rewriting run.json, a no-op rerun
rewriting manifest.json, a missing judge URL found after training).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from repro import paths
from repro.config.resolution import resolve_names
from repro.config.runconfig import RunFile

pytestmark = pytest.mark.e2e
PUBLISHED_JUDGES = ("gpt-4-1106-preview", "gpt-4")  # what a test judge lists at GET /models


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("x")
    shutil.copy(paths.SETTINGS / "tiny.yaml", root / "mytiny.yaml")
    text = (root / "mytiny.yaml").read_text().replace("name: tiny\n", "name: mytiny\n")
    (root / "mytiny.yaml").write_text(text)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REPRO_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield root


@pytest.fixture(scope="module")
def finished(workspace):
    """`repro run /tmp/x/mytiny.yaml --method simpo --results /tmp/x/results`, as in the issue."""
    from tests.conftest import run_cli

    proc = run_cli(
        "run", str(workspace / "mytiny.yaml"), "--method", "simpo",
        "--results", str(workspace / "results"), "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_own_recipe_file_runs_all_stages_and_compares(finished, workspace, cli):
    assert finished["complete"] and not finished["partial"] and finished["setting"] == "mytiny"
    assert {w["stage"] for w in finished["work_done"]} == {"train", "evaluate"}
    assert finished["scores"]["ae2_wr"] is not None and finished["scores"]["mt_bench"] is not None
    out = json.loads(cli("compare", str(workspace / "results"), "--format", "json", check=True).stdout)
    mine = [r for r in out["rows"] if r["setting"] == "mytiny"]
    assert mine and all(r["runs"] == 1 and r["status"] == "no published value" for r in mine)


def test_rerun_does_no_work_and_leaves_the_record_byte_identical(finished, workspace, cli):
    """Finding 4: a rerun used to rewrite manifest.json (timings 'skipped', a new 'created')."""
    run_dir = Path(finished["run_dir"])
    before = {name: digest(run_dir / name) for name in ("manifest.json", "result.json")}
    again = cli(
        "run", str(workspace / "mytiny.yaml"), "--method", "simpo",
        "--results", str(workspace / "results"), "--format", "json", check=True,
    )  # fmt: skip
    printed = json.loads(again.stdout)
    assert printed.pop("work_done") == [] and printed.pop("run_dir") == str(run_dir)
    assert printed == json.loads((run_dir / "result.json").read_text())  # what it recorded, as it is
    assert {name: digest(run_dir / name) for name in before} == before


def test_dry_run_writes_nothing_into_a_finished_run(finished, cli):
    """Finding 3: `repro train ... --method dpo --output <finished simpo dir> --dry-run` rewrote
    run.json to DPO beside the SimPO model."""
    train_dir = Path(finished["run_dir"]) / "train"
    before = {p.name: digest(p) for p in train_dir.iterdir() if p.is_file()}
    proc = cli("train", "tiny", "--method", "dpo", "--output", str(train_dir), "--dry-run")
    assert proc.returncode == 1 and "holds a finished run of another config" in proc.stderr
    assert {p.name: digest(p) for p in train_dir.iterdir() if p.is_file()} == before
    assert RunFile.read(train_dir / "run.json").config.method == "simpo"


def test_limit_lives_apart_and_is_flagged_partial(finished, workspace, cli):
    """Finding 2: `--limit 2` on a finished run overwrote its 24-question evaluation and still
    said complete, with no limit recorded; compare averaged it with full runs."""
    run_dir = Path(finished["run_dir"])
    full = digest(run_dir / "result.json")
    part = json.loads(
        cli(
            "run", str(workspace / "mytiny.yaml"), "--method", "simpo", "--limit", "2",
            "--results", str(workspace / "results"), "--format", "json", check=True,
        ).stdout
    )  # fmt: skip
    assert part["partial"] and part["limit"] == 2 and Path(part["run_dir"]) == run_dir / "partial-limit2"
    assert [w["stage"] for w in part["work_done"]] == ["evaluate"]  # the trained model is reused
    assert digest(run_dir / "result.json") == full
    out = json.loads(cli("compare", str(workspace / "results"), "--format", "json", check=True).stdout)
    assert any("partial-limit2" in s["path"] and "partial" in s["reason"] for s in out["skipped"])
    assert all(r["runs"] == 1 for r in out["rows"] if r["setting"] == "mytiny")


def test_identity_covers_max_steps_tokenization_and_code(workspace):
    """Finding 1: the config hash left out max_steps and tokenization, so a 2-step model was
    reported under the full run's id (and a simpo-tokenized model reused for paper-v1)."""
    recipe = str(workspace / "mytiny.yaml")
    full, _ = resolve_names(recipe, "simpo")
    short, _ = resolve_names(recipe, "simpo", max_steps=2)
    paper, _ = resolve_names(recipe, "simpo", tokenization="paper-v1")
    assert len({full.run_id, short.run_id, paper.run_id}) == 3
    assert full.replace(code_version="0" * 64).run_id != full.run_id
    assert full.replace(padding_free=True).run_id != full.run_id
    assert full.replace(sources={}, notes=("x",)).run_id == full.run_id  # descriptions only


def test_the_judge_settings_and_prompts_under_eval_are_code(tmp_path, monkeypatch):
    """Editing the Arena-Hard judge's settings (eval/judges: prompt, temperature) or ZeroEval's
    prompts changed scores but no identity: a rerun kept the earlier judgments' scores. They are
    part of the code version now, as the bundled questions are; the published tables and costs
    are not."""
    from repro import paths
    from repro.config import runconfig

    copy = tmp_path / "eval"
    shutil.copytree(paths.EVAL, copy)
    monkeypatch.setattr(paths, "EVAL", copy)
    before = runconfig.code_version()
    for edited in ("judges/arena-hard-v0.1.yaml", "zeroeval/zeroeval.yaml", "questions/tiny/README"):
        (copy / edited).parent.mkdir(parents=True, exist_ok=True)
        with open(copy / edited, "a") as fh:
            fh.write("\n# edited\n")
        assert runconfig.code_version() != before, edited
        before = runconfig.code_version()
    with open(copy / "costs.yaml", "a") as fh:  # what calls cost changes no score
        fh.write("\n# edited\n")
    assert runconfig.code_version() == before


def test_verify_names_an_edited_answer(finished, cli):
    run_dir = Path(finished["run_dir"])
    ok = cli("verify", str(run_dir), check=True)
    assert ok.stdout.startswith("manifest.json sha256 ") and "files match" in ok.stdout
    answers = run_dir / "eval" / "alpaca_eval2" / "model_outputs.json"
    original = answers.read_bytes()
    try:
        answers.write_bytes(original.replace(b'"output": "', b'"output": "edited ', 1))
        bad = cli("verify", str(run_dir))
        assert bad.returncode == 1
        assert "eval/alpaca_eval2/model_outputs.json: changed" in bad.stderr
        assert bad.stderr.strip().splitlines()[-1].startswith("repro: error: 1 of ")
    finally:
        answers.write_bytes(original)


def test_verify_covers_the_scores_compare_reads(finished, workspace, cli, tmp_path):
    """Issue 20, finding 2: ae2_wr edited in a copy of a finished run still verified, and compare
    reported the edited number."""
    run_dir = Path(finished["run_dir"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "result.json" in manifest["files"]
    copy = tmp_path / "results" / "mytiny" / "simpo" / run_dir.name
    shutil.copytree(run_dir, copy)
    data = json.loads((copy / "result.json").read_text())
    data["scores"]["ae2_wr"] = round(data["scores"]["ae2_wr"] - 1.0, 2)
    (copy / "result.json").write_text(json.dumps(data, indent=2))
    bad = cli("verify", str(copy))
    assert bad.returncode == 1 and "result.json: changed" in bad.stderr
    out = json.loads(cli("compare", str(tmp_path / "results"), "--format", "json").stdout or "{}")
    assert out == {} or all(r["runs"] == 0 for r in out["rows"])  # nothing compared: no runs found
    assert "fails verification" in cli("compare", str(tmp_path / "results")).stderr


def test_a_rule_judged_cache_never_answers_for_an_endpoint(finished, tmp_path, cli):
    """Issue 20, finding 3: after a rule-judged run, an endpoint-judged evaluation of the same
    model took all 96 judgments from the cache and sent no request."""
    from repro.evaluation.judge import upstream
    from repro.evaluation.judge.gateway import serve

    train = Path(finished["run_dir"]) / "train"
    # a real OpenAI-compatible server on 127.0.0.1 (the rule judge behind it, posing as the
    # published judges), counting requests
    with serve(upstream.RuleJudge(), models=PUBLISHED_JUDGES) as (url, server):
        proc = cli(
            "eval", str(train / "model"), "--setting", "tiny", "--reference-model", str(train / "init-model"),
            "--bench", "alpaca_eval2,arena_hard,mt_bench", "--judge-url", url, "--judge-key-env", "PATH",
            "--output", str(tmp_path / "endpoint"), "--format", "json",
        )  # fmt: skip
        sent = server.stats.requests
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(proc.stdout)
    # every distinct request reached the endpoint: as many as the rule judge answered itself
    # (identical requests within one evaluation are cache hits in both), plus the identity
    # check's request per judge model before any judging (repro.evaluation.judge.identity): the
    # log-probs check of gpt-4-1106-preview, and a one-token request to gpt-4 (MT-Bench's)
    paid = finished["judge_calls"]["backend_calls"]  # Arena-Hard and MT-Bench's gateway
    paid += finished["benchmarks"]["alpaca_eval2"]["judge_calls"]["backend_calls"]  # alpaca-eval's own
    assert sent == paid + 2 > 2
    assert record["complete"] and record["judge"]["kind"] == "endpoint"


def test_a_judge_failing_every_call_leaves_an_incomplete_result(finished, tmp_path, cli, monkeypatch):
    """Issue 20, finding 5: a judge that failed ended in ~890 traceback lines and alpaca-eval's
    `TypeError: type NoneType doesn't define __round__`; now the result is incomplete, counted."""
    from repro.evaluation.judge import upstream
    from repro.evaluation.judge.gateway import JudgeError, serve

    def refuses(request):
        """Passes the check before judging (its made-up instruction), then refuses every call."""
        if "What is 2 + 2?" in json.dumps(request):
            return upstream.RuleJudge()(request)
        raise JudgeError("HTTP 400: the server refused", status=400)

    train = Path(finished["run_dir"]) / "train"
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))  # nothing judged before
    with serve(refuses, models=PUBLISHED_JUDGES) as (url, _):
        proc = cli(
            "eval", str(train / "model"), "--setting", "tiny", "--reference-model", str(train / "init-model"),
            "--bench", "alpaca_eval2,arena_hard,mt_bench", "--judge-url", url, "--judge-key-env", "PATH",
            "--output", str(tmp_path / "refused"), "--format", "json",
        )  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    record = json.loads(proc.stdout)
    assert not record["complete"]
    assert set(record["incomplete_benchmarks"]) == {"alpaca_eval2", "arena_hard", "mt_bench"}
    assert (
        record["benchmarks"]["alpaca_eval2"]["n_failed"]
        == record["benchmarks"]["alpaca_eval2"]["expected_total"]
    )
    assert record["scores"]["ae2_wr"] is None and record["scores"]["ah"] is None


def test_worker_refuses_unknown_and_missing_keys(finished, tmp_path):
    """The run.json boundary: an unknown or a missing key is one line naming it, not a default."""
    import subprocess

    run = json.loads((Path(finished["run_dir"]) / "train" / "run.json").read_text())
    for label, edit, needle in (
        ("unknown", lambda c: c.update(limit_rows=3), "unknown key 'limit_rows'"),
        ("missing", lambda c: c.pop("log_probs" if "log_probs" in c else "learning_rate"), "missing key"),
    ):
        data = json.loads(json.dumps(run))
        edit(data["config"])
        data["config"].pop("config_hash")
        path = tmp_path / f"{label}.json"
        path.write_text(json.dumps(data))
        proc = subprocess.run(
            [sys.executable, "-m", "repro.train.worker", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1 and needle in proc.stderr, proc.stderr[-1000:]
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_missing_judge_or_gpu_fails_before_training(tmp_path, cli):
    """Finding 5: `--judge endpoint` without a URL trained 32 steps, then failed; an 8B setting
    on a CPU machine spawned its processes and printed the Hub error once per process."""
    proc = cli("run", "tiny", "--judge", "endpoint", "--results", str(tmp_path / "r"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "preflight: judge" in proc.stderr and "--judge-url" in proc.stderr
    assert not (tmp_path / "r" / "tiny").exists()  # nothing trained, nothing written
    proc = cli("run", "llama3-instruct-v0.2", "--method", "simpo", "--judge-url", "http://127.0.0.1:9/v1",
               "--results", str(tmp_path / "r"))  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "preflight:" in proc.stderr
    assert not (tmp_path / "r" / "llama3-instruct-v0.2").exists()


def test_a_config_written_before_batch_was_typed_keeps_its_hash():
    """tests/golden/run_config_tiny_simpo.json: `repro run tiny --method simpo`'s config as run.json
    held it when `batch` was a plain mapping. The typed Batch reads it, its recorded hash still
    matches the values (from_json checks), and it is written back byte for byte the same."""
    from repro.config.runconfig import Batch, RunConfig
    from repro.errors import ReproError

    golden = json.loads((paths.ROOT / "tests" / "golden" / "run_config_tiny_simpo.json").read_text())
    config = RunConfig.from_json(golden, "golden run config")
    assert isinstance(config.batch, Batch) and config.batch.describe().startswith("16 = 4 per device x 2")
    assert config.config_hash == golden["config_hash"] and config.to_json() == golden
    bad = {**golden, "batch": {**golden["batch"], "extra": 1}}
    with pytest.raises(ReproError, match="batch: unknown key 'extra'"):
        RunConfig.from_json(bad, "golden run config")


def test_eval_never_writes_over_a_run_or_another_models_result(tiny_runs, tmp_path, cli):
    """`repro eval -o RUN_DIR` rewrote a finished run's result.json (verify then failed), and
    `-o` a folder of another model's evaluation replaced its scores. Both are refused before
    any model loads; the same model's folder is evaluated again, as before."""
    import shutil

    from repro.runs.results import verify

    run = tiny_runs.runs["simpo"].run_dir
    copied = shutil.copytree(run, tmp_path / "run", symlinks=True)
    model = str(copied / "train" / "model")
    args = (
        "--setting",
        "tiny",
        "--bench",
        "gsm",
        "--limit",
        "1",
        "--reference-model",
        str(copied / "train" / "init-model"),
    )
    into_run = cli("eval", model, *args, "-o", str(copied))
    assert into_run.returncode == 1 and into_run.stderr.count("\n") == 1, into_run.stderr
    assert "holds a repro run (manifest.json)" in into_run.stderr and not verify.verify(copied).problems
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(copied / "result.json", other / "result.json")  # an evaluation of the trained model
    into_other = cli("eval", str(copied / "train" / "init-model"), *args, "-o", str(other))
    assert into_other.returncode == 1 and "holds the result of another model" in into_other.stderr
    assert (other / "result.json").read_bytes() == (copied / "result.json").read_bytes()
