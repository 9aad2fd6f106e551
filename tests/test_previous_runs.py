"""A run folder written by the previous main still resumes, verifies and compares.

The folder is made by the previous main's own code (PREVIOUS_MAIN, taken from this checkout's
git history with `git archive`, run with the same installed packages): its result.json is
schema repro.result/1, its evaluation record is eval/result.json, its metrics.json has no
schema. Today's code must resume it without any work (every file byte-identical), verify it,
and count it in `repro compare` as the recipe's run. No weights are committed: the folder is
trained here, by the old code, on the tiny model, once for that commit and the lock (kept
across sessions, tests/builds.py), and each test works on a copy."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repro import paths
from repro.config.runconfig import RunConfig
from repro.evaluation import benchmarks
from repro.evaluation.judge.spec import Judge
from repro.runs.pipeline import run
from repro.runs.results import verify
from repro.runs.results.result import RunResult
from tests import builds

PREVIOUS_MAIN = "f55c782"  # main before the typed records and the benchmark registry


GIT = ["git", "-C", str(paths.ROOT)]


def _old_tree(dest: Path) -> Path:
    """The previous main's package and data files."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        [*GIT, "archive", PREVIOUS_MAIN, "repro", "recipes", "eval", "env", "results/published"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in ("repro.log", ".lock")
    }


def _previous_run(folder: Path) -> None:
    """`repro run tiny --method simpo` by the previous main's code: folder/results, folder/cache."""
    old = _old_tree(folder / "old")
    env = {**os.environ, "PYTHONPATH": str(old), "REPRO_CACHE": str(folder / "cache")}
    command = ["run", "tiny", "--method", "simpo", "--results", str(folder / "results")]
    made = subprocess.run(
        [sys.executable, "-m", "repro", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=old,
    )
    assert made.returncode == 0, made.stderr[-2000:]


@pytest.fixture(scope="module")
def previous_run() -> Path:
    """The previous main's run, built once for that commit and this checkout's lock; read only."""
    found = subprocess.run([*GIT, "cat-file", "-e", f"{PREVIOUS_MAIN}^{{commit}}"], capture_output=True)
    if found.returncode != 0:
        pytest.skip(f"commit {PREVIOUS_MAIN} is not in this checkout's history (a shallow clone)")
    lock = hashlib.sha256(paths.LOCK_CPU.read_bytes()).hexdigest()[:12]
    return builds.once_per_key("previous-main-run", f"{PREVIOUS_MAIN}-{lock}", _previous_run)


@pytest.mark.e2e
def test_a_run_of_the_previous_main_resumes_verifies_and_compares(previous_run, tmp_path, monkeypatch):
    results = builds.copy(previous_run / "results", tmp_path / "results")
    cache = builds.copy(previous_run / "cache", tmp_path / "cache")
    (result_file,) = results.glob("tiny/simpo/*/result.json")
    folder = result_file.parent
    assert json.loads(result_file.read_text())["schema"] == "repro.result/1"
    assert (folder / "eval" / "result.json").exists() and not (folder / "eval" / "evaluation.json").exists()

    # resume with today's code: the old config (its code version included) names the same run
    monkeypatch.setenv("REPRO_CACHE", str(cache))
    config = RunConfig.from_json(json.loads((folder / "manifest.json").read_text())["config"], "manifest")
    before = _tree_digest(folder)
    judge = Judge(kind="rule", cache=cache / "judgments.sqlite")
    done = run.execute(
        config, results_root=results, benches=benchmarks.default(config.evaluation), judge=judge
    )
    assert done.work_done == [] and done.run_dir == folder
    assert _tree_digest(folder) == before  # nothing rewritten, nothing added
    # what it returns is what the old run recorded, not today's re-derivation of it
    assert done.result == RunResult.read(result_file) and done.result.schema == "repro.result/1"

    check = verify.verify(folder)
    assert check.ok, check.problems
    assert RunResult.read(result_file).scores["ae2_wr"] is not None

    from repro.runs.analysis import compare

    comparison = compare.compare(results)
    assert not comparison.skipped
    rows = [r for r in comparison.rows if (r.setting, r.method) == ("tiny", "simpo") and r.runs]
    assert rows and all(r.recipe and len(r.runs) == 1 for r in rows)
