"""Numbers you can trust (issue 20): what compare pools, what verify covers, who answered a cached
judgment, and the bad inputs that used to end in a traceback or a late failure.

The compare folder is built from real run configs (`resolve_names`, as `repro run`
resolves them) and real result records (`RunResult.of`, `replicates.describe`,
`verify.record_sha256`: what `repro run` writes), with scores chosen by hand so every expected
row is known; nothing is trained. Each test names the finding it guards; on the code before
the fix each of them failed (one pooled row of 3 runs, a tampered score that verified, a cache
hit across judges, a traceback or a late failure).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from repro import hashing, io, paths
from repro.config.resolution import resolve_names, with_recipe_differences
from repro.config.runconfig import RunConfig, RunFile, RunPaths
from repro.errors import ReproError
from repro.evaluation import benchmarks as registry
from repro.evaluation.judge.judged_by import JudgedBy
from repro.evaluation.records import BenchmarkResult, EvaluationResult
from repro.runs.analysis import published
from repro.runs.results import replicates, verify
from repro.runs.results.result import Difference, RunResult, Training
from repro.train.outcome import TrainingOutcome

SETTING, METHOD = "llama3-instruct-v0.2", "simpo"
RULE = JudgedBy("rule", None, None, "OPENAI_API_KEY")
# An Arena-Hard judging request, as the judge receives it.
AH_MESSAGES = [
    {
        "role": "user",
        "content": "<|User Prompt|>\nwhat is the cat ?\n\n<|The Start of Assistant A's Answer|>\nno .\n"
        "<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n"
        "sure , the cat is good .\n<|The End of Assistant B's Answer|>",
    }
]
# UltraFeedback (ArmoRM) train rows: 7,485 batches of 2 x 4 processes, / 16 accumulation = 468 steps
TRAIN_ROWS = 59876
ENDPOINT = JudgedBy("endpoint", "https://api.openai.com/v1", None, "OPENAI_API_KEY")


def published_cell(metric: str) -> float:
    row = next(r for r in published.load() if (r.setting, r.method) == (SETTING, METHOD))
    return row.scores[metric]


def trained(steps: int, kept: int | None) -> TrainingOutcome:
    """A training outcome with the two numbers a run's kind is made of."""
    return TrainingOutcome(
        train={}, train_summary={}, eval={}, eval_before_training={}, steps=steps, train_seconds=0.0,
        world_size=1, engine=None, data={"train": {"kept": kept}}, reference=None, resumed_from=None,
        log_history=[], trackers=None,
    )  # fmt: skip


def run_record(*, model, setting, method, run_id, seed, benchmarks, judge, limit, training=None,
               replicate_key=None, variant=None) -> dict:  # fmt: skip
    """result.json as a run writes it, from the benchmarks' outputs (RunResult.of)."""
    evaluation = EvaluationResult(
        model=model, setting=setting, benchmarks={n: BenchmarkResult(n, o) for n, o in benchmarks.items()},
        scores=registry.scores(benchmarks), judge=judge, limit=limit,
    )  # fmt: skip
    return RunResult.of(
        evaluation, model=model, method=method, run_id=run_id, seed=seed, training=training,
        replicate_key=replicate_key, variant=variant,
    ).to_json()  # fmt: skip


def write_run_file(train: Path, config: RunConfig) -> None:
    """train/run.json as the launcher writes it (the paths are the folder itself: nothing reads them)."""
    where = str(train)
    paths = RunPaths(output_dir=where, deepspeed_config=where, model=where, tokenizer=where, data_dir=where,
                     cache_dir=where, reference_cache=None)  # fmt: skip
    io.write_json(train / "run.json", RunFile(config, paths).to_json())


def write_run(
    root: Path,
    name: str,
    *,
    overrides: tuple[str, ...] = (),
    max_steps: int | None = None,
    steps: int = 468,
    delta: float = 0.0,
    judge: JudgedBy | None = None,
    old_format: bool = False,
) -> Path:
    """One finished run folder as `repro run` leaves it (result.json, manifest.json); `old_format`:
    as the previous main wrote it (no replicate key, result.json not in the manifest)."""
    config, _ = resolve_names(SETTING, METHOD, overrides=list(overrides), max_steps=max_steps)
    judge = judge or ENDPOINT
    kind = replicates.describe(
        config, judge=judge, backend="transformers", outcome=trained(steps, TRAIN_ROWS)
    )
    scores = {"ae2_lc": published_cell("ae2_lc") + delta, "ae2_wr": published_cell("ae2_wr") + delta}
    record = run_record(
        model="m",
        setting=SETTING,
        method=METHOD,
        run_id=config.run_id,
        seed=config.seed,
        benchmarks={
            "alpaca_eval2": {"length_controlled_winrate": scores["ae2_lc"], "win_rate": scores["ae2_wr"]}
        },
        judge=judge,
        limit=None,
        training=Training(steps=steps) if old_format else dataclasses.replace(kind.training, steps=steps),
        replicate_key=None if old_format else kind.replicate_key,
        variant=None if old_format else kind.variant,
    )
    if old_format:
        for key in ("replicate_key", "variant", "partial_reasons"):
            record.pop(key)
        record["training"] = {"steps": steps}  # as the previous main wrote it
        record["schema"] = "repro.result/1"
    directory = root / SETTING / METHOD / name
    files = {} if old_format else {verify.RECORD: verify.record_sha256(record)}
    manifest = {"config": config.to_json(), "config_hash": config.config_hash, "files": files, "history": []}
    io.write_json(directory / "manifest.json", manifest)
    io.write_json(directory / "result.json", record)
    return directory


@pytest.fixture
def mixed(tmp_path) -> Path:
    """Seed replicates (two new-format, one as the previous main wrote it), a 2-step run, an
    override run, two sweep points and a run judged by another judge, in one results folder."""
    write_run(tmp_path, "seed42", delta=0.4)
    write_run(tmp_path, "seed43", overrides=("seed=43",), delta=-0.2)
    write_run(tmp_path, "seed44-old", overrides=("seed=44",), delta=0.1, old_format=True)
    write_run(tmp_path, "two-steps", max_steps=2, steps=2, delta=-30.0)
    write_run(tmp_path, "beta5", overrides=("beta=5",), delta=-8.0)
    write_run(tmp_path, "lr3e-7", overrides=("learning_rate=3e-7",), delta=-3.0)
    write_run(tmp_path, "lr8e-7", overrides=("learning_rate=8e-7",), delta=2.0)
    write_run(tmp_path, "rule-judged", judge=RULE, delta=40.0)
    return tmp_path


def test_compare_pools_only_seed_replicates(mixed, cli):
    """Finding 1: a 2-step run, an override and the full run were one row of 3 'runs'."""
    out = json.loads(cli("compare", str(mixed), "--format", "json", check=True).stdout)
    rows = [r for r in out["rows"] if r["metric"] == "ae2_lc"]
    by_variant = {r["variant"]: r for r in rows}
    recipe = by_variant[""]
    assert recipe["recipe"] and recipe["runs"] == 3  # seeds 42, 43 and 44 (the old-format run too)
    assert recipe["reproduced_mean"] == pytest.approx(published_cell("ae2_lc") + 0.1)
    assert recipe["status"] == "within"
    assert set(by_variant) == {
        "",
        "truncated: 2 of 468 steps",
        "beta 5; gamma 1.5",
        "learning_rate 3e-07",
        "learning_rate 8e-07",
        "judge.kind rule",
    }
    assert all(r["runs"] == 1 and not r["recipe"] for v, r in by_variant.items() if v)
    assert by_variant["truncated: 2 of 468 steps"]["status"] == "outside"
    # only the recipe's own cells gate --fail-outside-tolerance: a sweep point may well be outside
    cli("compare", str(mixed), "--fail-outside-tolerance", check=True)
    table = cli("compare", str(mixed), check=True).stdout
    assert "truncated: 2 of 468 steps" in table and "recipe" in table


def test_a_released_checkpoints_evaluation_is_compared_with_the_row_that_lists_it(tmp_path, cli):
    """`repro eval` of a checkpoint the authors released (scores.csv's model_id, from the seed
    README) is compared with the published row that lists it, as a row of its own beside the
    published cell: labelled with its commit, evaluations of one commit by one judge pooled, never
    pooled with trained runs and never gating --fail-outside-tolerance. Under another setting, or of
    a model no row lists, it is skipped with the reason. Before, every `repro eval` was skipped."""
    model = "princeton-nlp/Llama-3-Instruct-8B-SimPO-v0.2"  # the seed's v0.2 SimPO row

    def evaluated(folder: Path, model: str, setting: str, delta: float, commit: str | None = None,
                  judge: JudgedBy = ENDPOINT) -> None:  # fmt: skip
        lc, wr = published_cell("ae2_lc") + delta, published_cell("ae2_wr") + delta
        record = run_record(
            model=model, setting=setting, method=None, run_id=None, seed=None, judge=judge, limit=None,
            benchmarks={"alpaca_eval2": {"length_controlled_winrate": lc, "win_rate": wr}},
        )  # fmt: skip
        io.write_json(folder / "result.json", {**record, "model_commit": commit} if commit else record)

    results = tmp_path / "results"
    evaluated(results / "released", model, SETTING, -0.6, "a" * 40)
    evaluated(results / "released-again", model.lower(), SETTING, -0.2, "a" * 40)  # hub ids: case-blind
    evaluated(results / "v0.1-setting", model, "llama3-instruct", 0.0)
    evaluated(results / "local", "/ckpt/simpo", SETTING, 0.0)
    write_run(results, "trained", delta=3.0)
    out = json.loads(cli("compare", str(results), "--format", "json").stdout)
    rows = {
        (r["variant"], r["metric"]): r
        for r in out["rows"]
        if (r["setting"], r["method"]) == (SETTING, METHOD)
    }
    released = rows[("released checkpoint at aaaaaaaa", "ae2_lc")]
    assert (released["runs"], released["recipe"], released["status"]) == (2, False, "within")
    assert released["reproduced_mean"] == pytest.approx(published_cell("ae2_lc") - 0.4)
    assert released["published"] == published_cell("ae2_lc")
    trained = rows[("", "ae2_lc")]
    assert (trained["runs"], trained["recipe"], trained["status"]) == (1, True, "outside")
    skipped = {Path(s["path"]).parent.name: s["reason"] for s in out["skipped"]}
    assert skipped["v0.1-setting"].endswith("the published tables list it under llama3-instruct-v0.2")
    assert "the published tables do not list" in skipped["local"]
    # the report: the row says what it is, and the page names the checkpoint and its commit, not a
    # run's hashes it does not have; the judging cost is read where `repro eval` wrote it
    priced = [{"instruction": "q", "preference": 1.0, "price_per_example": 0.01}] * 3
    io.write_json(results / "released" / "alpaca_eval2" / "annotations.json", priced)
    report = cli("report", str(results), "--format", "markdown", check=True).stdout
    assert "| ⚠️ within: the released checkpoint, evaluated here |" in report
    assert f"### {SETTING}: checkpoint {model}, folder released" in report
    assert f"- model: `{model} at commit {'a' * 40}`" in report
    page = report.split("folder released", 1)[1].split("###", 1)[0]
    assert "config hash" not in page and "- judge cost spent: `$0.03 on AlpacaEval" in page
    # verify says what the folder is, not "not a finished run": `repro eval` records no hashes
    unverifiable = cli("verify", str(results / "released"))
    assert unverifiable.returncode == 1 and unverifiable.stderr.count("\n") == 1
    assert "a `repro eval` of a checkpoint: it records no file hashes" in unverifiable.stderr
    # the trained run alone gates: it is within, and the released checkpoint outside fails nothing
    gate = tmp_path / "gate"
    write_run(gate, "trained", delta=0.2)
    evaluated(gate / "released", model, SETTING, -3.0)
    table = cli("compare", str(gate), "--fail-outside-tolerance", check=True).stdout
    assert "released checkpoint" in table and "outside" in table
    # the same checkpoint judged by another judge: a row of its own, never averaged with the first
    evaluated(gate / "rule-judged", model, SETTING, 10.0, judge=RULE)
    out = json.loads(cli("compare", str(gate), "--format", "json").stdout)
    released = [r for r in out["rows"] if r["metric"] == "ae2_lc" and r["variant"].startswith("released")]
    assert len(released) == 2 and {r["runs"] for r in released} == {1}
    assert len({r["variant"] for r in released}) == 2


def test_result_says_when_training_was_cut(mixed):
    """Finding 1, second part: the 2-step run's result said complete, not partial."""
    data = json.loads((mixed / SETTING / METHOD / "two-steps" / "result.json").read_text())
    assert data["partial"] and not data["training"]["full"] and data["training"]["recipe_steps"] == 468
    assert "training stopped at 2 of the recipe's 468 steps" in data["partial_reasons"][0]
    full = json.loads((mixed / SETTING / METHOD / "seed42" / "result.json").read_text())
    assert not full["partial"] and full["training"]["full"] and full["partial_reasons"] == []


def test_verify_and_compare_cover_the_scores(mixed, cli):
    """Finding 2: an edited ae2_wr in result.json verified and was compared."""
    run = mixed / SETTING / METHOD / "seed42"
    ok = cli("verify", str(run), check=True)
    manifest_sha = hashing.file_sha256(run / "manifest.json")
    assert f"manifest.json sha256 {manifest_sha}" in ok.stdout
    data = json.loads((run / "result.json").read_text())
    data["scores"]["ae2_wr"] += 4.0
    io.write_json(run / "result.json", data)
    bad = cli("verify", str(run))
    assert bad.returncode == 1 and "result.json: changed" in bad.stderr
    out = json.loads(cli("compare", str(mixed), "--format", "json", check=True).stdout)
    skipped = {Path(s["path"]).parent.name: s["reason"] for s in out["skipped"]}
    assert skipped["seed42"].startswith("fails verification: result.json: changed")
    recipe = next(r for r in out["rows"] if r["metric"] == "ae2_wr" and r["recipe"])
    assert recipe["runs"] == 2  # the tampered run is not among them
    # a run written before result.json was covered still compares, marked unverified
    assert any("seed44-old" in u["path"] and "unverified" in u["reason"] for u in out["unverified"])


def test_compare_an_empty_or_wrong_folder_says_so(tmp_path, cli):
    """Finding 10: an empty folder printed 168 'missing' rows and exited 0."""
    proc = cli("compare", str(tmp_path))
    assert proc.returncode == 1 and "no runs found under" in proc.stderr and proc.stdout == ""


def test_compare_formats_carry_the_band_and_hide_missing_by_default(mixed, cli):
    """Smaller findings: 174 rows by default, mostly missing; CSV/markdown dropped the band."""
    csv_rows = cli("compare", str(mixed), "--format", "csv", check=True).stdout.splitlines()
    assert csv_rows[0].startswith("setting,method,variant,metric,published,band,")
    assert len(csv_rows) == 1 + 6 * 2  # six configurations x (AE2 LC, AE2 WR); no missing rows
    assert len(cli("compare", str(mixed), "--all", "--format", "csv", check=True).stdout.splitlines()) > 150
    bad = cli("compare", str(mixed), "--tolerance", "ah=-1")
    assert bad.returncode == 2 and "0 or more" in bad.stderr


def test_tiny_band_reaches_csv(tmp_path, cli):
    config, _ = resolve_names("tiny", "simpo")
    kind = replicates.describe(config, judge=RULE, backend="transformers", outcome=trained(32, None))
    record = run_record(
        model="m", setting="tiny", method="simpo", run_id=config.run_id, seed=42,
        benchmarks={"alpaca_eval2": {"win_rate": 95.0}}, judge=RULE, limit=None,
        training=kind.training, replicate_key=kind.replicate_key, variant=kind.variant,
    )  # fmt: skip
    io.write_json(tmp_path / "tiny" / "simpo" / "r" / "result.json", record)
    rows = cli("compare", str(tmp_path), "--format", "csv", check=True).stdout.splitlines()
    assert rows[1].split(",")[:6] == ["tiny", "simpo", "", "ae2_wr", "", "60-100"]


def test_compare_plot_colours_unpublished_cells_apart():
    """Smaller finding: 'no published value' points were drawn red, the 'outside' colour."""
    from repro.runs.analysis import plots
    from repro.runs.analysis.compare import Row, default_tolerance, metric_titles

    rows = [Row("x", "simpo", "gsm", None, runs=[1.0], tolerance=1.0)]
    fig = plots.compare_figure(rows, metric_titles(), default_tolerance())
    colours = {tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color()
               for ax in fig.axes for line in ax.get_lines()}  # fmt: skip
    import matplotlib.colors as mcolors

    assert mcolors.to_rgba("tab:blue") in {mcolors.to_rgba(c) for c in colours}
    assert mcolors.to_rgba("tab:red") not in {mcolors.to_rgba(c) for c in colours}


def test_interval_offsets_never_print_minus_zero():
    from repro.cli import render

    assert render.signed(99.9999999999 - 100.0) == "+0.0" and render.signed(-1.26) == "-1.3"
    bounds = {"score": 100.0, "lower": 99.99999999989998, "upper": 100.0}
    assert registry.scores({"arena_hard": bounds})["ah_ci"] == [100.0, 100.0]


def test_judgment_cache_keeps_judges_apart(tmp_path, monkeypatch):
    """Finding 3: a rule-judged cache answered every request of an endpoint judge."""
    from repro.evaluation.judge import client, upstream
    from repro.evaluation.judge.cache import JudgmentCache
    from repro.evaluation.judge.gateway import serve
    from tests.test_judge import Upstream

    messages = AH_MESSAGES
    cache = JudgmentCache(tmp_path / "judgments.sqlite")
    with serve(upstream.RuleJudge(), cache) as (url, gateway):
        assert "[[B>>A]]" in client.chat_function(url, "gpt-4-1106-preview")(messages)
        assert gateway.stats.backend_calls == 1
    monkeypatch.setenv("REPRO_TEST_TRUST_KEY", "sk-x")
    up = Upstream([])
    try:
        endpoint = upstream.OpenAIEndpoint(up.url, api_key_env="REPRO_TEST_TRUST_KEY")
        with serve(endpoint, cache) as (url, gateway):
            assert client.chat_function(url, "gpt-4-1106-preview")(messages) == "[[A>B]]"  # the endpoint's
            assert up.calls == 1 and gateway.stats.cache_hits == 0
        with serve(endpoint, cache) as (url, gateway):  # the endpoint's own answer is cached for it
            client.chat_function(url, "gpt-4-1106-preview")(messages)
            assert up.calls == 1 and gateway.stats.cache_hits == 1
    finally:
        up.close()
        cache.close()
    # an endpoint is known by its model, not its URL (a proxy or another port is the same judge)
    assert (
        upstream.OpenAIEndpoint("http://a/v1", require_key=False).identity
        == upstream.OpenAIEndpoint("http://b/v1", require_key=False).identity
    )
    assert upstream.OpenAIEndpoint("http://a/v1", model="x", require_key=False).identity["model"] == "x"


def test_the_rule_judges_cache_is_its_codes(tmp_path):
    """A verdict the rule judge of another repro cached (the judgment cache is the machine's) was
    served to this one: with repro.tiny.judge_score changed, `repro eval` of the tiny model kept
    its Arena-Hard and MT-Bench scores as the old rule gave them."""
    from repro.evaluation.judge import client, upstream
    from repro.evaluation.judge.cache import JudgmentCache
    from repro.evaluation.judge.gateway import chat_response, serve

    class OlderRule:  # the rule judge as a repro before this one was known to the cache
        identity = {"kind": "rule", "judge": "repro.tiny.judge_score"}

        def __call__(self, request):
            return chat_response(request["model"], "[[A>>B]]")

    messages = AH_MESSAGES
    cache = JudgmentCache(tmp_path / "judgments.sqlite")
    try:
        with serve(OlderRule(), cache) as (url, _):
            assert client.chat_function(url, "gpt-4-1106-preview")(messages) == "[[A>>B]]"
        with serve(upstream.RuleJudge(), cache) as (url, gateway):
            assert "[[B>>A]]" in client.chat_function(url, "gpt-4-1106-preview")(messages)  # its own rule
            assert gateway.stats.cache_hits == 0 and gateway.stats.backend_calls == 1
        with serve(upstream.RuleJudge(), cache) as (url, gateway):  # its own verdict is cached for it
            assert "[[B>>A]]" in client.chat_function(url, "gpt-4-1106-preview")(messages)
            assert gateway.stats.cache_hits == 1
    finally:
        cache.close()


def test_backend_bug_is_a_counted_failure_not_a_traceback():
    """Finding 5: 'unknown url type' escaped the gateway's handler thread as ~890 traceback lines."""
    from repro.evaluation.judge import client
    from repro.evaluation.judge.gateway import serve

    def broken(request):
        raise ValueError("unknown url type: 'not-a-url/chat/completions'")

    with serve(broken) as (url, gateway):
        with pytest.raises(Exception, match="ValueError"):
            client.chat_function(url, "gpt-4")([{"role": "user", "content": "x"}])
        assert gateway.stats.failures == {"ValueError": 1}


def test_unreachable_judge_fails_fast_after_a_few_requests():
    """Finding 5: an unreachable judge was retried for 3 min 20 s before anything was said."""
    from repro.evaluation.judge import upstream
    from repro.evaluation.judge.gateway import JudgeError

    endpoint = upstream.OpenAIEndpoint(
        "http://127.0.0.1:9/v1", require_key=False, max_retries=1, backoff=0.01, timeout=1.0
    )
    for _ in range(endpoint.GIVE_UP_AFTER):
        with pytest.raises(JudgeError, match="connection error"):
            endpoint({"model": "m", "messages": []})
    with pytest.raises(JudgeError, match="judge unreachable"):
        endpoint({"model": "m", "messages": []})


def test_all_judgments_failed_is_an_incomplete_alpaca_eval_result():
    """Finding 5: alpaca-eval 0.6.2 ended in `TypeError: ... __round__` when no judgment came back."""
    from repro.evaluation.judge.gateway import JudgeError
    from repro.evaluation.scorers import alpaca_eval

    def refuses(request):
        raise JudgeError("HTTP 400: no", status=502)

    outputs = [{"instruction": f"q{i}", "output": f"a{i}", "generator": "m"} for i in range(3)]
    references = [{"instruction": f"q{i}", "output": f"b{i}", "generator": "r"} for i in range(3)]
    row = alpaca_eval.evaluate(outputs, references, refuses, name="m")
    assert row["incomplete"] and row["n_failed"] == 3 and row["win_rate"] is None
    assert row["judge_calls"]["failures"] == {"HTTP 400": 3}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("run", "tiny", "--judge", "endpoint", "--judge-url", "not-a-url"), 2, "is not an http(s) URL"),
        (("run", "tiny", "--judge-url", "http://:99999"), 2, "is not a URL"),
        (("run", "tiny", "--judge-url", "http://127.0.0.1:9/v1"), 1, "does not answer"),
        (("run", "tiny", "--results", "/proc/nope"), 1, "/proc/nope: cannot be written, proc is a kernel"),
        (("run", "tiny", "--backend", "foo", "--dry-run"), 2, "unknown --backend 'foo'"),
        (("eval", "{tmp}", "--setting", "tiny", "--backend", "vlm", "--output", "{tmp}/e"), 2,
         "did you mean 'vllm'"),
        (("train", "llama3-instruct-v0.2", "--gpus", "8", "--output", "{tmp}/x"), 1, "preflight: model"),
        (("train", "tiny", "--report-to", "tensorboard,wandb", "--output", "{tmp}/w"), 1,
         "no W&B credentials"),
        (("show", "tiny", "--set", "beta=0"), 1, "must be above 0"),
        (("run", "tiny", "--set", "dataset=/nonexistent/ds", "--results", "{tmp}/x"), 1,
         "preflight: dataset: dataset path /nonexistent/ds does not exist"),
        (("show", "{tmp}"), 2, "is a directory, not a recipe"),
        (("eval", "{tmp}", "--setting", "tiny", "--judge-url", "http://127.0.0.1:9/v1",
          "--output", "{tmp}/e"), 1, "does not answer"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_before_any_work(args, code, message, tmp_path, cli, monkeypatch):
    """Findings 5-9: tracebacks, a preflight that said ok, 8 processes started and failed 45 s
    later, a W&B failure after 98 s, a dry run that accepted an unknown backend."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc from `wandb login`
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (tmp_path / "config.json").write_text("{}")  # `eval {tmp}`: a model folder as far as preflight reads
    proc = cli(*(a.replace("{tmp}", str(tmp_path)) for a in args), timeout=120)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "w").exists()


def test_wandb_credentials_accept_offline_key_or_login(tmp_path):
    from repro.runs.pipeline import preflight

    assert preflight.wandb_credentials({"NETRC": str(tmp_path / "none")}) is not None
    assert preflight.wandb_credentials({"WANDB_MODE": "offline"}) is None
    assert preflight.wandb_credentials({"WANDB_API_KEY": "k"}) is None
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    netrc.chmod(0o600)
    assert preflight.wandb_credentials({"NETRC": str(netrc)}) is None


def test_set_lists_every_key_it_accepts(cli):
    """Finding 9: the valid list of --set omitted seed and max_length, which it accepts."""
    proc = cli("show", "tiny", "--set", "seeed=1")
    assert proc.returncode == 2 and "did you mean 'seed'" in proc.stderr
    proc = cli("show", "tiny", "--set", "zzz=1")
    assert "max_length" in proc.stderr and "seed" in proc.stderr and "beta" in proc.stderr


def test_dry_runs_write_nothing_anywhere(tmp_path, cli, monkeypatch):
    """Finding 9: each dry run left a /tmp/repro-dry-run-XXXX folder (a sweep left 60)."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    cli("run", "tiny", "--dry-run", "--results", str(tmp_path / "r"), check=True)
    cli("sweep", "tiny", "--lr", "1e-3,1e-4", "--dry-run", "--results", str(tmp_path / "r"), check=True)
    cli("train", "tiny", "--dry-run", "--output", str(tmp_path / "t"), check=True)
    assert list(scratch.iterdir()) == [] and not (tmp_path / "r").exists() and not (tmp_path / "t").exists()
    # issue 32, 4: the SLURM launcher's dry run wrote run.json, the configs, bos_check.json, data/,
    # init-model/ and train.sbatch; it prints the script instead
    slurm = cli("train", "tiny", "--method", "simpo", "--nodes", "2", "--launcher", "slurm", "--dry-run",
                "--output", str(tmp_path / "s"), check=True)  # fmt: skip
    assert slurm.stdout.startswith("#!/bin/bash") and "srun" in slurm.stdout
    assert not (tmp_path / "s").exists() and list(scratch.iterdir()) == []


def test_verbose_hands_training_metrics_to_the_terminal(tmp_path):
    """Smaller finding: `repro -v run` showed HTTP request lines but not the training metrics."""
    import inspect
    import sys

    from repro.runs.pipeline import run
    from repro.train import launch

    assert "verbose" in inspect.signature(run.execute).parameters
    script = "print('REPRO_STEP 1/2'); print(\"{'loss': 0.5, 'epoch': 0.5}\"); print('noise')"
    fake = launch.Run(tmp_path, tmp_path / "run.json", tmp_path / "a.yaml", tmp_path / "d.json",
                      [sys.executable, "-c", script], {}, 1, 1, {})  # fmt: skip
    seen: list[str] = []
    assert launch.launch(fake, echo=seen.append, verbose=True) == 0
    assert seen == ["{'loss': 0.5, 'epoch': 0.5}"]


def test_compare_and_the_recipe_diagnosis_name_a_value_by_one_flattening():
    """What a run changed (compare's replicates) and what differs from the recipe (diagnose) name a
    value the same way: one `flatten`, beside the run config, that both import."""
    from repro.config import runconfig
    from repro.runs.analysis.diagnosis import recipe

    assert recipe.flatten is replicates.flatten is runconfig.flatten
    nested = {"seed": 1, "hyperparameters": {"beta": 2.0, "loss": {"gamma": 0.5}}, "batch": {}}
    assert replicates.flatten(nested) == {
        "seed": 1,
        "hyperparameters.beta": 2.0,
        "hyperparameters.loss.gamma": 0.5,
    }


def test_training_is_a_typed_record_read_strictly_for_this_schema(tmp_path):
    """result.json's `training` reads back as Training: unknown keys are one line for this
    schema and left out for an older one; a cut training says how far it got."""
    config, _ = resolve_names("tiny", "simpo", max_steps=2)
    kind = replicates.describe(config, judge=RULE, backend="transformers", outcome=trained(2, None))
    record = run_record(
        model="m", setting="tiny", method="simpo", run_id=config.run_id, seed=42,
        benchmarks={"alpaca_eval2": {"win_rate": 95.0}}, judge=RULE, limit=None, training=kind.training,
        replicate_key=kind.replicate_key, variant=kind.variant,
    )  # fmt: skip
    keys = ["held_out_reward_accuracy", "held_out_loss", "steps", "recipe_steps", "full"]
    assert list(record["training"]) == keys  # as result.json has always held them
    read = RunResult.from_json(record, "result.json")
    assert read.training == kind.training and read.to_json() == record
    assert read.training.truncation() == f"truncated: 2 of {read.training.recipe_steps} steps"
    with pytest.raises(ReproError, match="result.json: training: unknown key 'stepz'"):
        RunResult.from_json({**record, "training": {**record["training"], "stepz": 1}}, "result.json")
    old = {**record, "schema": "repro.result/1", "training": {"steps": 7, "stepz": 1}}
    assert RunResult.from_json(old, "old").training == Training(steps=7)
    assert Training().truncation() is None


def test_a_checkpoints_hub_commit_and_baseline_model_are_read_strictly_and_absent_when_none():
    """`model_commit`, `baseline_model` and `baseline_commit` (a `repro eval` of a hub model or
    against a model's answers) read back as written; a result without them (a run's, every result
    before them) is written back without them; one that is not a name is one line."""
    record = run_record(
        model="m", setting="tiny", method=None, run_id=None, seed=None,
        benchmarks={"alpaca_eval2": {"win_rate": 55.0}}, judge=RULE, limit=None,
    )  # fmt: skip
    assert not {"model_commit", "baseline_model", "baseline_commit"} & set(record)
    assert RunResult.from_json(record, "result.json").to_json() == record
    named = {**record, "model_commit": "a" * 40, "baseline_model": "org/base", "baseline_commit": "b" * 40}
    read = RunResult.from_json(named, "result.json")
    assert (read.model_commit, read.baseline_model, read.baseline_commit) == ("a" * 40, "org/base", "b" * 40)
    assert read.to_json() == named
    with pytest.raises(ReproError, match="^result.json: 'baseline_commit' is not a name or a commit$"):
        RunResult.from_json({**named, "baseline_commit": 7}, "result.json")


def test_the_engine_a_setting_was_measured_with_is_its_recipes(cli, tmp_path):
    """smol's reference band was measured with vLLM (`backend: vllm` in eval/generation/smol.yaml):
    `make smol`'s runs are the recipe's, not "within, but not the recipe's run"; a smol run
    generated by transformers, and a tiny run by vLLM, are variants. Without --backend, `repro run`
    generates with the setting's engine. Oracle: the engines the generation configs name."""
    smol, _ = resolve_names("smol", "simpo", pin=False)
    tiny, _ = resolve_names("tiny", "simpo")
    judge = JudgedBy("endpoint", "http://127.0.0.1:8000/v1", "smollm2-judge", "OPENAI_API_KEY")
    assert replicates.differences(smol, judge=judge, backend="vllm") == {}
    assert replicates.differences(smol, judge=judge, backend="transformers") == {
        "backend": Difference("transformers", "vllm")
    }
    assert replicates.differences(tiny, judge=RULE, backend="vllm") == {
        "backend": Difference("vllm", "transformers")
    }
    for setting, folder in (("smol", "backend-vllm"), ("tiny", tiny.run_id)):
        proc = cli("run", setting, "--dry-run", "--format", "json", "--results", str(tmp_path))
        assert proc.returncode == 0, proc.stderr
        assert Path(json.loads(proc.stdout)["run_dir"]).name == folder


def test_what_a_run_changed_is_found_once_from_the_recipe_it_was_resolved_from(tmp_path, monkeypatch):
    """The differences from the recipe are found when the config is resolved, from the same
    reading of the recipe: the recipe file edited while the run trains, or the run finished from
    another folder, changes nothing. A config of an older repro (no record) gets them from its
    recipe as it is now, a recipe named relative to the checkout included. Oracle: the recipe's
    values written in the test."""
    recipe = tmp_path / "mine.yaml"
    text = (paths.ROOT / "recipes" / "settings" / "tiny.yaml").read_text()
    recipe.write_text(text)
    config, _ = resolve_names(str(recipe), "simpo", overrides=["max_length=96"], max_steps=2)
    changed = {"max_length": Difference(96, 64), "max_steps": Difference(2, None)}
    assert replicates.differences(config, judge=RULE, backend="transformers") == changed
    recipe.write_text(text.replace("max_length: 64", "max_length: 96"))  # edited while it trains
    monkeypatch.chdir(tmp_path)
    kind = replicates.describe(config, judge=RULE, backend="vllm", outcome=None)
    assert kind.variant == {**changed, "backend": Difference("vllm", "transformers")}

    older = config.replace(recipe_differences=None)  # as an older repro recorded it
    assert replicates.differences(older, judge=RULE, backend="transformers") is None
    now = with_recipe_differences(older)  # the recipe as it is now says max_length 96
    assert replicates.differences(now, judge=RULE, backend="transformers") == {
        "max_steps": Difference(2, None)
    }
    builtin, _ = resolve_names("tiny", "simpo", max_steps=2)
    assert builtin.recipe_file == "recipes/settings/tiny.yaml"  # relative to the checkout, not to here
    assert with_recipe_differences(builtin.replace(recipe_differences=None)) == builtin


def test_runs_evaluated_on_other_data_are_no_replicates():
    """Two seeds are replicates only if their benchmarks were evaluated alike: the same data
    files (--alpaca-reference, --zeroeval-data, ...), generation config, plugin and cut. compare
    averaged a seed evaluated on 4 AlpacaEval instructions with one evaluated on 24. Each seed's
    own weights stay out of the key. Oracle: the evaluation keys written here."""
    config, _ = resolve_names("tiny", "simpo")

    def key_of(weights: str, reference: str, generation: str = "g1") -> str:
        bench = {"weights_sha256": weights, "limit": None, "code_version": "c", "backend": "transformers",
                 "generation_config_sha256": generation, "judge": {"kind": "rule"},
                 "data": {"alpaca_reference": reference}}  # fmt: skip
        evaluated = {"alpaca_eval2": bench}
        kind = replicates.describe(
            config, judge=RULE, backend="transformers", outcome=None, evaluated=evaluated
        )
        return kind.replicate_key

    assert key_of("seed42", "ref-a") == key_of("seed43", "ref-a")  # replicates: another seed's weights
    assert key_of("seed42", "ref-a") != key_of("seed43", "ref-b")  # other reference answers
    assert key_of("seed42", "ref-a") != key_of("seed43", "ref-a", generation="g2")  # other decoding
    unknown = replicates.describe(config, judge=RULE, backend="transformers", outcome=None)
    assert unknown.replicate_key == replicates.key(
        replicates.identity(config, judge=RULE, backend="transformers")
    )


def test_the_variant_is_a_typed_record_read_strictly(tmp_path):
    """result.json's `variant` reads back as Differences ({name: {"run", "recipe"}} on disk, as
    it has always been written); a malformed one is one line, in this schema and an older one."""
    from repro.runs.results.result import Difference

    config, _ = resolve_names("tiny", "simpo", max_steps=2)
    kind = replicates.describe(config, judge=RULE, backend="transformers", outcome=trained(2, None))
    assert kind.variant == {"max_steps": Difference(2, None)}
    record = run_record(
        model="m", setting="tiny", method="simpo", run_id=config.run_id, seed=42,
        benchmarks={"alpaca_eval2": {"win_rate": 95.0}}, judge=RULE, limit=None, training=kind.training,
        replicate_key=kind.replicate_key, variant=kind.variant,
    )  # fmt: skip
    assert record["variant"] == {"max_steps": {"run": 2, "recipe": None}}
    read = RunResult.from_json(record, "result.json")
    assert read.variant == kind.variant and read.to_json() == record
    assert replicates.label(read.variant, read.training) == "truncated: 2 of 32 steps"
    for schema in ("repro.result/2", "repro.result/1"):
        for bad in ({"max_steps": 2}, {"max_steps": {"run": 2}}, ["max_steps"]):
            with pytest.raises(ReproError, match="^result.json: 'variant' is not a mapping"):
                RunResult.from_json({**record, "schema": schema, "variant": bad}, "result.json")


def test_status_shows_a_result_that_is_unreadable_or_does_not_match_its_manifest(tiny_runs, tmp_path):
    """`repro status` read a truncated result.json as "trained, waiting to generate" and showed a
    changed score as done; compare skipped the same runs. Oracle: `repro verify`'s verdict on
    the same files."""
    import builds

    from repro.runs.cluster import status

    run = tiny_runs.runs["simpo"].run_dir
    rows = {}
    for name, change in (("kept", None), ("changed", "ah"), ("truncated", "cut")):
        dest = builds.copy(run, tmp_path / name / "tiny" / "simpo" / run.name)
        record = dest / "result.json"
        if change == "ah":
            data = json.loads(record.read_text())
            data["scores"]["ah"] = 42.0
            record.write_text(json.dumps(data))
        elif change == "cut":
            record.write_text(record.read_text()[:100])
        (row,) = status.collect(tmp_path / name, scheduler=False)
        rows[name] = row
        assert bool(verify.verify(dest).problems) == (change is not None)
    assert rows["kept"].kind == "done" and rows["kept"].stage == "done"
    assert rows["changed"].kind == "unverified" and "result.json: changed" in rows["changed"].stage
    assert rows["truncated"].kind == "unreadable" and "corrupt JSON" in rows["truncated"].stage
