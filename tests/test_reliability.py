"""Reliability: a killed run resumes exactly, stale state is refused, one writer per run,
secrets never reach a file, malformed rows are counted skips. (docs/reliability.md lists them.)"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repro.data import preference
from repro.errors import ReproError
from tests import builds
from tests.conftest import REPRO, run_cli

pytestmark = pytest.mark.e2e  # multi-process training, generation or judging (make test-fast skips it)

SECRET = "sk-planted-secret-7f3a9c"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPRO_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield tmp_path_factory.mktemp("reliability")


def eval_args(
    out: Path, upstream, *, limit: int, cache: Path, key_env: str, extra: tuple[str, ...] = ()
) -> list[str]:
    """`repro eval` of a tiny run against a local endpoint judge, Arena-Hard only."""
    return [
        str(REPRO),
        "eval",
        str(out / "model"),
        "--setting",
        "tiny",
        "--reference-model",
        str(out / "init-model"),
        "--bench",
        "arena_hard",
        "--limit",
        str(limit),
        "--judge-url",
        upstream.url,
        "--judge-key-env",
        key_env,
        "--judge-cache",
        str(cache),
        *extra,
    ]


def weights(run_root: Path):
    from safetensors.torch import load_file

    (path,) = glob.glob(str(run_root / "tiny" / "simpo" / "*" / "train" / "model" / "model.safetensors"))
    return load_file(path)


def test_killed_run_resumes_to_identical_weights(env, tiny_results):
    """kill -9 of the whole process group after checkpoint 16 of 32; the same command resumes.
    Oracle: an uninterrupted run with the same seed (the session's, conftest). Tolerance: 1e-6
    (fp32, CPU); observed 0."""
    args = ["run", "tiny", "--method", "simpo", "--bench", "alpaca_eval2"]
    killed = env / "killed"
    proc = subprocess.Popen(
        [str(REPRO), *args, "--results", str(killed)],
        start_new_session=True,
        env={**os.environ, "REPRO_TEST_PAUSE": "train.step=0.4"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pattern = str(
        killed / "tiny" / "simpo" / "*" / "train" / "trainer" / "checkpoint-16" / "trainer_state.json"
    )
    deadline = time.time() + 180
    while time.time() < deadline and not glob.glob(pattern):
        time.sleep(0.2)
    assert glob.glob(pattern), "no checkpoint-16 before the deadline"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not glob.glob(
        str(killed / "tiny" / "simpo" / "*" / "train" / "metrics.json")
    )  # really interrupted

    run_cli(*args, "--results", str(killed), check=True)
    (metrics_file,) = glob.glob(str(killed / "tiny" / "simpo" / "*" / "train" / "metrics.json"))
    metrics = json.loads(Path(metrics_file).read_text())
    assert metrics["resumed_from"].endswith("checkpoint-16") or metrics["resumed_from"].endswith(
        "checkpoint-24"
    )
    a, b = weights(tiny_results), weights(killed)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    steps = [
        h["step"]
        for h in metrics["log_history"]
        if "loss" in h and "eval_loss" not in h and "train_loss" not in h
    ]
    assert steps == sorted(set(steps)) == [5, 10, 15, 20, 25, 30]  # no duplicate, no missing step


def test_checkpoints_of_another_config_are_refused(env, tiny_runs):
    # a copy of the session's `repro train tiny --method simpo` (conftest), checkpoints included
    out = builds.copy(tiny_runs.runs["simpo"].train, env / "train-dir")
    other = ("train", "tiny", "--method", "simpo", "--set", "beta=3", "--output", str(out))
    # issue 20, finding 4: the same command again resumed and rewrote metrics.json (train_loss 0.0)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    again = run_cli("train", "tiny", "--method", "simpo", "--output", str(out), check=True)
    assert "already trained" in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    proc = run_cli(*other)  # a finished run of another config: refused before anything is written
    assert proc.returncode == 1 and "holds a finished run of another config" in proc.stderr
    # the same config by other code: said so (it read "another config" after any edit of repro)
    record = json.loads((out / "run.json").read_text())
    kept = (out / "run.json").read_text()
    record["config"] |= {"code_version": "older", "config_hash": "0" * 64}
    del record["config"]["recipe_differences"]  # as an older repro wrote it: a description, not a value
    (out / "run.json").write_text(json.dumps(record))
    proc = run_cli("train", "tiny", "--method", "simpo", "--output", str(out))
    assert proc.returncode == 1 and "config trained by other code (code_version older)" in proc.stderr
    (out / "run.json").write_text(kept)
    # an interrupted run of another config (checkpoints, no model yet): the worker will not resume it
    shutil.rmtree(out / "model")
    (out / "metrics.json").unlink()
    proc = run_cli(*other)
    assert proc.returncode != 0
    assert "holds checkpoints of another config" in (out / "train.log").read_text()


def test_one_writer_per_run_directory(env):
    from repro.config.resolution import resolve_names
    from repro.runs.pipeline import run

    config, _ = resolve_names("tiny", "simpo")
    directory = run.safe_child(env / "locked", "tiny", "simpo", config.run_id)
    with run.run_lock(directory):
        proc = run_cli("run", "tiny", "--method", "simpo", "--results", str(env / "locked"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "being written by another repro process" in proc.stderr


def test_secrets_never_reach_any_file(env, tmp_path):
    """A planted key in the environment: after a training run and an evaluation against an
    OpenAI-compatible endpoint (a local fake), no file that was written contains it."""
    from tests.test_judge import Upstream

    upstream = Upstream([])
    try:
        planted = {**os.environ, "OPENAI_API_KEY": SECRET, "REPRO_JUDGE_KEY": SECRET}
        out = tmp_path / "run"
        subprocess.run(
            [str(REPRO), "train", "tiny", "--method", "simpo", "--max-steps", "4", "--output", str(out)],
            env=planted,
            check=True,
            capture_output=True,
            timeout=300,
        )
        evaluation = tmp_path / "eval"
        proc = subprocess.run(
            [
                *eval_args(
                    out, upstream, limit=3, cache=tmp_path / "judgments.sqlite", key_env="REPRO_JUDGE_KEY"
                ),
                "--output",
                str(evaluation),
            ],
            env=planted,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        assert upstream.seen_auth and all(a == f"Bearer {SECRET}" for a in upstream.seen_auth)  # it was used
    finally:
        upstream.close()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 10
    leaks = [str(p) for p in written if SECRET.encode() in p.read_bytes()]
    assert leaks == []
    assert SECRET not in proc.stdout and SECRET not in proc.stderr


rows = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["prompt", "chosen", "rejected", "role", "content", "x"]), inner, max_size=4
        ),
    ),
    max_leaves=8,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(row=rows)
def test_malformed_rows_are_counted_skips_never_tracebacks(row):
    try:
        pair = preference.parse_row(row)
    except preference.RowError:
        return
    assert pair.chosen["role"] == "assistant" and pair.chosen["content"] != pair.rejected["content"]


def test_pipeline_counts_every_skip_reason():
    from repro.data import tokenizers

    pipeline = preference.Pipeline.for_setting(
        tokenizers.build_tiny(),
        chat_template="tiny",
        model_name_or_path="repro:tiny-llama",
        max_length=64,
        max_prompt_length=32,
    )
    good = {
        "chosen": [
            {"role": "user", "content": "what is the cat ?"},
            {"role": "assistant", "content": "sure ."},
        ],
        "rejected": [
            {"role": "user", "content": "what is the cat ?"},
            {"role": "assistant", "content": "no ."},
        ],
    }
    bad_role = json.loads(json.dumps(good))
    bad_role["chosen"][0]["role"] = "narrator"
    empty = json.loads(json.dumps(good))
    empty["rejected"][1]["content"] = "  "
    out, stats = pipeline.run([good, bad_role, empty, "not an object", {"chosen": []}])
    assert len(out) == 1 and stats.kept == 1 and sum(stats.skipped.values()) == 4
    assert set(stats.skipped) == {
        "'chosen' has a message with role 'narrator' (expected system, user or assistant)",
        "empty answer",
        "row is not a JSON object",
        "missing 'rejected'",
    }
    with pytest.raises(ReproError):
        preference.read_jsonl(Path("/nonexistent/rows.jsonl"))


def test_killed_judging_continues_from_the_cache(env, tmp_path, tiny_runs):
    """kill -9 while judging (concurrency 1, a slow local judge), then the same command: every
    finished call is served from the cache; at most the one call in flight is paid again.
    The model judged is the session's SimPO run (conftest), read only."""
    from tests.test_judge import Upstream

    out = tiny_runs.runs["simpo"].train
    upstream = Upstream([], delay=0.4)
    key_env = {**os.environ, "REPRO_JUDGE_KEY": "k"}
    args = eval_args(
        out,
        upstream,
        limit=6,
        cache=tmp_path / "judgments.sqlite",
        key_env="REPRO_JUDGE_KEY",
        extra=("--concurrency", "1", "--format", "json"),
    )
    try:
        proc = subprocess.Popen(
            [*args, "--output", str(tmp_path / "a")],
            env=key_env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 120
        while time.time() < deadline and upstream.calls < 5:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        before = upstream.calls
        assert 5 <= before < 12  # interrupted mid-judging (12 games in all)
        done = subprocess.run(
            [*args, "--output", str(tmp_path / "b")], env=key_env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
    finally:
        upstream.close()
    record = json.loads(done.stdout)
    assert (
        record["benchmarks"]["arena_hard"]["n_questions"] == 6
        and not record["benchmarks"]["arena_hard"]["incomplete"]
    )
    # 12 distinct judgments; at most the call in flight at the kill twice; and the identity
    # check's one-token request to the judge model before each of the two evaluations
    assert upstream.calls <= 12 + 1 + 2
    judged = before - 1  # the killed evaluation's judge calls, its identity check aside
    assert record["judge_calls"]["cache_hits"] >= judged - 1


def test_training_refuses_a_folder_of_other_files(tmp_path, cli):
    """`repro train tiny -o DIR` into a folder of the user's own files trained there and wrote
    over a train.log of theirs. A folder that holds only what a killed start leaves is resumed."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "train.log").write_text("USER LOG\n")
    (folder / "notes.txt").write_text("keep\n")
    proc = cli("train", "tiny", "--output", str(folder), timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "holds files that are not a repro training (notes.txt)" in proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "train.log"]
    assert (folder / "train.log").read_text() == "USER LOG\n"
