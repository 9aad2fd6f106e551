"""On-policy preference data end to end on CPU: tiny policy, tiny reward model, real pipeline.

`repro data on-policy` samples from a random-init tiny Llama (transformers backend), scores
with a random-init LlamaForSequenceClassification, binarizes and writes a DatasetDict that
`repro train tiny --dataset DIR` trains on (ZeRO-3, 2 processes). Oracles:
- chosen/rejected: argmax/argmin of the recorded scores, first index on ties (the
  original's np.argmax/np.argmin);
- batched reward scores equal one-at-a-time scores (the original's loop) within 1e-5;
- resuming: a run killed mid-seed (SIGKILL), then rerun, writes the same dataset as an
  unbroken run, row for row (per-batch seeds make sampling independent of where it stopped).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repro import tiny
from repro.datagen import onpolicy
from repro.datagen import prompts as prompt_set
from repro.datagen.reward import RewardModel

pytestmark = pytest.mark.e2e  # multi-process training, generation or judging (make test-fast skips it)

SEEDS = "13,21,42"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("onpolicy")
    tiny.save_policy(root / "policy")
    tiny.save_reward_model(root / "rm")
    rows = tiny.make_pairs(30, seed=5)  # 25 unique prompts, 5 repeats
    rows.append({"chosen": "not messages"})  # no usable prompt: counted, not fatal
    (root / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def args(root: Path, output: Path, *extra: str) -> list[str]:
    return [
        "data",
        "on-policy",
        "--model",
        str(root / "policy"),
        "--reward-model",
        str(root / "rm"),
        "--prompts",
        str(root / "prompts.jsonl"),
        "--seeds",
        SEEDS,
        "--max-tokens",
        "12",
        "--batch-size",
        "4",
        "--test-fraction",
        "0.2",
        "--output",
        str(output),
        *extra,
    ]


@pytest.fixture(scope="module")
def dataset(workspace):
    from tests.conftest import run_cli

    out = workspace / "ds"
    proc = run_cli(*args(workspace, out), "--format", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(proc.stdout)


def rows_of(folder: Path) -> dict[str, list[dict]]:
    import datasets

    return {split: list(datasets.load_from_disk(str(folder / split))) for split in ("train", "test")}


def test_dataset_layout_pairs_and_manifest(workspace, dataset):
    out, manifest = dataset
    assert json.loads((out / "manifest.json").read_text()) == manifest
    counts = manifest["counts"]
    assert manifest["prompts"]["rows"] == 31 and manifest["prompts"]["unusable"] == 1
    assert manifest["prompts"]["duplicates"] == 5 and counts["prompts"] == 25
    assert (
        counts["pairs"]
        == counts["prompts"] - counts["dropped_identical_samples"] - counts["dropped_below_margin"]
    )
    assert counts["train"] + counts["test"] == counts["pairs"] and counts["test"] == 5
    assert manifest["sampling"]["seeds"] == [13, 21, 42] and manifest["sampling"]["temperature"] == 0.8
    assert manifest["bos"]["bos_count"] == 1 and manifest["bos"]["status"] == "ok"
    assert manifest["weights_sha256"]["model"] and manifest["weights_sha256"]["reward_model"]
    prompts = json.loads((out / "work" / "prompts.json").read_text())
    assert prompts == sorted(set(prompts)) and len(prompts) == 25

    for row in rows_of(out)["train"] + rows_of(out)["test"]:
        scores, responses = row["all_rm_scores"], row["all_generated_responses"]
        assert len(scores) == len(responses) == 3 and len(set(responses)) > 1
        best = scores.index(max(scores))  # first index on ties, as np.argmax
        worst = scores.index(min(scores))
        user = row["prompt"][0]
        assert row["prompt"] == [user] and user["role"] == "user"
        assert row["chosen"] == [user, {"role": "assistant", "content": responses[best]}]
        assert row["rejected"] == [user, {"role": "assistant", "content": responses[worst]}]


def test_batched_reward_scores_equal_one_at_a_time(workspace, dataset):
    out, _ = dataset
    rows = rows_of(out)["train"][:6]
    pairs = [(r["prompt"][0]["content"], resp) for r in rows for resp in r["all_generated_responses"]]
    rm = RewardModel(str(workspace / "rm"))
    alone = rm.score(pairs, batch_size=1)
    batched = rm.score(pairs, batch_size=8)
    assert max(abs(a - b) for a, b in zip(alone, batched, strict=True)) < 1e-5
    recorded = [s for r in rows for s in r["all_rm_scores"]]
    assert max(abs(a - b) for a, b in zip(alone, recorded, strict=True)) < 1e-5
    assert len(set(alone)) > 1  # the scores are not constant


def test_killed_run_resumes_to_the_same_dataset(workspace, dataset):
    reference, _ = dataset
    out = workspace / "killed"
    env = {**os.environ, "REPRO_TEST_PAUSE": "onpolicy.batch=0.5", "COLUMNS": "200"}
    repro = Path(sys.executable).parent / "repro"
    proc = subprocess.Popen([str(repro), *args(workspace, out)], env=env, stderr=subprocess.DEVNULL)
    target = out / "work" / "generations-seed21.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (target.exists() and target.read_text().count("\n") >= 4):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.exists() and not (out / "manifest.json").exists()
    partial = target.read_text().count("\n")
    assert 4 <= partial < 25  # killed mid-seed
    with open(target, "a") as fh:  # and mid-write: a torn last line
        fh.write('{"i": 99, "te')

    from tests.conftest import run_cli

    resumed = run_cli(*args(workspace, out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert rows_of(out) == rows_of(reference)


def test_output_trains_with_repro_train_tiny(workspace, dataset, cli, tmp_path, monkeypatch):
    out, manifest = dataset
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REPRO_QUIET", "1")
    run_dir = tmp_path / "train"
    proc = cli("train", "tiny", "--dataset", str(out), "--max-steps", "2", "--output", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["engine"]["zero_stage"] == 3
    used = metrics["data"]["train"]
    # Every row reaches the trainer; the training pipeline's own rules (e.g. an empty sampled
    # answer) may skip some, counted by reason.
    assert used["rows"] == manifest["counts"]["train"] and used["kept"] > 0
    assert used["kept"] + sum(used["skipped"].values()) == used["rows"], used
    run = json.loads((run_dir / "run.json").read_text())
    assert run["config"]["dataset"] == str(out.resolve())


def test_a_setting_can_name_the_generated_dataset(dataset, cli, tmp_path, monkeypatch):
    """A recipe file (the tiny setting with `dataset:` a path relative to the recipe) trains."""
    import yaml

    from repro import paths

    out, _ = dataset
    recipe = yaml.safe_load((paths.SETTINGS / "tiny.yaml").read_text())
    folder = out.parent / "recipes"
    folder.mkdir(exist_ok=True)
    recipe["dataset"] = f"../{out.name}"
    (folder / "tiny-onpolicy.yaml").write_text(yaml.safe_dump(recipe))
    shown = cli("show", str(folder / "tiny-onpolicy.yaml"), "--method", "simpo", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["dataset"] == str(out.resolve())
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REPRO_QUIET", "1")
    trained = cli(
        "train", str(folder / "tiny-onpolicy.yaml"), "--max-steps", "1", "--output", str(tmp_path / "t")
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["data"]["train"]["rows"] > 0


def test_other_options_on_the_same_output_are_refused(workspace, dataset, cli):
    out, _ = dataset
    proc = cli(*args(workspace, out, "--temperature", "0.5"))
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "temperature" in proc.stderr


def test_bad_inputs_are_one_line_errors(workspace, cli, tmp_path):
    missing = cli(
        *[
            a if a != str(workspace / "rm") else str(tmp_path / "nope")
            for a in args(workspace, tmp_path / "o")
        ]
    )
    assert (
        missing.returncode != 0
        and missing.stderr.strip().count("\n") == 0
        and "--reward-model" in missing.stderr  # the path check names the option
    )
    no_recipe = cli("data", "on-policy", "--setting", "tiny", "--output", str(tmp_path / "o2"))
    assert no_recipe.returncode != 0 and "on_policy" in no_recipe.stderr
    seeds = cli(*args(workspace, tmp_path / "o3", "--samples", "5"))
    assert seeds.returncode != 0 and "--seeds" in seeds.stderr
    nan = cli(*args(workspace, tmp_path / "o6", "--min-margin", "nan"))
    assert nan.returncode == 1 and "--min-margin must be a finite number" in nan.stderr
    policy_as_rm = [
        a if a != str(workspace / "rm") else str(workspace / "policy")
        for a in args(workspace, tmp_path / "o5")
    ]
    lm = cli(*policy_as_rm)  # a causal LM loads as a classifier with a random head: noise rewards
    assert lm.returncode == 1 and lm.stderr.count("\n") == 1, lm.stderr
    assert "is not a reward model: score.weight not in its weights" in lm.stderr
    (tmp_path / "o4" / "work").mkdir(parents=True)
    (tmp_path / "o4" / "work" / "options.json").write_text("{")  # a write cut short
    torn = cli(*args(workspace, tmp_path / "o4"))
    assert torn.returncode == 1 and torn.stderr.count("\n") == 1, torn.stderr  # was a JSONDecodeError
    assert "options.json: unreadable (not a JSON object)" in torn.stderr


def test_paper_settings_name_their_generation_recipe():
    from repro.config.settings import get_setting

    for name, model in (
        ("gemma2-9b-it", "google/gemma-2-9b-it"),
        ("llama3-instruct-v0.2", "meta-llama/Meta-Llama-3-8B-Instruct"),
    ):
        recipe = get_setting(name).on_policy
        assert recipe["model"] == model and recipe["reward_model"] == "RLHFlow/ArmoRM-Llama3-8B-v0.1"
        assert recipe["seeds"] == [13, 21, 42, 79, 100] and recipe["trust_remote_code"] is True


def test_binarize_collect_and_prompt_rules():
    assert onpolicy.binarize([0.1, 0.5, 0.5, -1.0, -1.0]) == (1, 3)  # ties: the earlier sample
    assert onpolicy.binarize([2.0, 2.0]) == (0, 0)
    rows, identical = onpolicy.collect(["a", "b"], [["x", "y"], ["x", "y"], ["x", "z"]])
    assert identical == 1 and rows == [{"prompt": "b", "all_generated_responses": ["y", "y", "z"]}]
    pairs, below = onpolicy.records(
        [{"prompt": "p", "all_generated_responses": ["u", "v"]}] * 2,
        [[0.0, 0.05], [0.0, 1.0]],
        min_margin=0.1,
    )
    assert below == 1 and len(pairs) == 1 and pairs[0]["chosen"][1]["content"] == "v"
    prompts, stats = prompt_set.unique_prompts(
        [
            {"prompt": "b"},
            {"prompt": "a"},
            {"prompt": "b"},
            {"messages": [{"role": "user", "content": "c"}]},
            {},
        ]
    )
    assert prompts == ["a", "b", "c"] and stats == {"rows": 5, "unusable": 1, "duplicates": 1}
    assert prompt_set.parse_source("HuggingFaceH4/ultrafeedback_binarized:train_prefs") == (
        "HuggingFaceH4/ultrafeedback_binarized",
        "train_prefs",
    )
    assert prompt_set.parse_source("some/dataset") == ("some/dataset", "train_prefs")
    assert onpolicy.batch_seed(13, 0) != onpolicy.batch_seed(13, 4) != onpolicy.batch_seed(21, 4)


def test_prompts_with_a_templated_bos_get_exactly_one(workspace):
    """A template that writes BOS plus a tokenizer that adds one (Gemma, Llama 3 post-update):
    tokenize without special tokens. The tiny template writes <bos>; make the tokenizer add one."""
    from tokenizers import processors

    from repro.data import tokenizers

    tok = tokenizers.build_tiny()
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)]
    )
    assert list(tok("<bos> hi")["input_ids"][:2]) == [tok.bos_token_id] * 2
    texts, add_special, report = prompt_set.format_for(tok, ["what is the cat ?"])
    assert add_special is False and report["bos_count"] == 1 and report["status"] == "ok"
    shutil.rmtree(workspace / "unused", ignore_errors=True)


def test_a_model_is_the_version_it_started_from(workspace, cli, tmp_path, monkeypatch):
    """A hub id is loaded at the commit `main` is at when the run starts, and recorded; a rerun on
    the same output after the repository moved upstream, or after a local folder's weights
    changed, is refused in one line rather than mixing samples of two models. Oracle:
    huggingface_hub's cache layout (refs/main, snapshots/COMMIT/), as in tests/test_hub.py, and
    the weights' hash of the snapshot folder the commit names."""
    from repro import hashing, hub
    from repro.errors import ReproError
    from tests.test_hub import pin

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    first, second = "a" * 40, "b" * 40
    for commit, seed in ((first, 0), (second, 7)):
        tiny.save_policy(tmp_path / "hub" / "models--org--policy" / "snapshots" / commit, seed=seed)
    pin(tmp_path / "hub", "model", "org/policy", first)

    def sample(model: str, output: Path):
        small = ["--limit", "3", "--seeds", "13,21", "--test-fraction", "0"]
        given = args(workspace, output)
        given[given.index(str(workspace / "policy"))] = model
        return cli(*given, *small, "--format", "json")

    made = sample("org/policy", tmp_path / "hub-out")
    assert made.returncode == 0, made.stderr[-2000:]
    manifest = json.loads(made.stdout)
    assert manifest["model"] == "org/policy" and manifest["commits"]["model"] == first
    folder = tmp_path / "hub" / "models--org--policy" / "snapshots" / first
    assert manifest["weights_sha256"]["model"] == hashing.weights_sha256(folder)

    pin(tmp_path / "hub", "model", "org/policy", second)  # upstream moved, and the cache followed
    moved = sample("org/policy", tmp_path / "hub-out")
    assert moved.returncode == 1 and moved.stderr.count("\n") == 1, moved.stderr
    assert "was started from other weights of the model" in moved.stderr

    local = tmp_path / "policy"  # a local folder: its version is the hash of what it holds
    shutil.copytree(workspace / "policy", local)
    options = onpolicy.Options(model=str(local), reward_model=str(workspace / "rm"), output=tmp_path / "l")

    def start() -> None:
        versions = {"model": hub.pinned(str(local)).version, "reward_model": "rm"}
        onpolicy.check_resume(options, tmp_path / "l", versions=versions)

    (tmp_path / "l").mkdir()
    start()
    start()  # the same weights: resumed
    (local / "config.json").unlink()  # retrained in place between a kill and the rerun
    tiny.save_weights(local, seed=3)
    with pytest.raises(ReproError, match="was started from other weights of the model"):
        start()

    gone = sample("org/nothing", tmp_path / "o")
    assert gone.returncode == 1 and gone.stderr.count("\n") == 1, gone.stderr
    assert "org/nothing at 'main' is not in the Hugging Face cache" in gone.stderr
