"""`repro run` (train -> generate -> judge -> score, resumable), `repro sweep` and `repro compare`.

The tiny loop runs for real: ZeRO-3 on 2 CPU processes, generation, a rule judge behind the
local gateway, scoring. The comparison tests use fabricated result files whose numbers
are chosen by hand, so each expected status is known.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.errors import ReproError
from repro.runs.pipeline.run import safe_child
from tests import builds

pytestmark = pytest.mark.e2e  # multi-process training, generation or judging (make test-fast skips it)


def tiny_loop():
    """perf/tiny_loop.py as a module (perf/ is not a package)."""
    import importlib.util

    from repro import paths

    spec = importlib.util.spec_from_file_location("tiny_loop", paths.ROOT / "perf" / "tiny_loop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("method", ["simpo", "dpo"])
def test_tiny_run_beats_its_starting_point_and_resumes(method, tiny_runs, cli, tmp_path, monkeypatch):
    first = tiny_runs.runs[method].printed  # the session's run (conftest), as it printed itself
    assert first["complete"] and first["scores"]["ae2_wr"] > 60
    assert first["training"]["held_out_reward_accuracy"] >= 0.9
    run_dir = Path(first["run_dir"])
    assert run_dir.parent == tiny_runs.results / "tiny" / method
    for name in ("result.json", "manifest.json", "curves.csv", "curves.png"):
        assert (run_dir / name).exists(), name
    # the synthetic arithmetic set went through the ZeroEval path (generate, result file, score)
    assert first["scores"]["gsm"] is not None and first["scores"]["mmlu"] is not None
    assert (run_dir / "eval" / "gsm" / "model.json").exists()
    # perf/tiny_loop.py reads its per-stage figures from this very output
    seconds = tiny_loop().breakdown(first, wall=999.0)
    for stage in ("train", "train.prepare", "train.processes", "train.optimizer_steps", "evaluate",
                  "evaluate.load", "generate", "judge", "score", "other"):  # fmt: skip
        assert seconds[stage] is not None and seconds[stage] >= 0, stage
    assert seconds["train.optimizer_steps"] <= seconds["train.processes"] <= seconds["train"]
    assert seconds["evaluate.load"] + seconds["generate"] + seconds["judge"] + seconds["score"] <= (
        seconds["evaluate"] + 0.5  # each figure rounded to 0.1 s
    )
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config_hash"] == manifest["config"]["config_hash"]
    assert manifest["environment"]["lockfile_sha256"] and "packages" in manifest["environment"]
    assert manifest["environment"]["lock"] in ("cpu", "gpu") and "lock_drift" in manifest["environment"]
    assert manifest["tokenizer_checks"]["train"]["status"] == "ok"
    assert manifest["engine"]["zero_stage"] == 3 and manifest["judge"]["kind"] == "rule"
    # the same command again, on copies of the results and of the cache they ran with: nothing to do
    results = builds.copy(tiny_runs.results, tmp_path / "results")
    monkeypatch.setenv("REPRO_CACHE", str(builds.copy(tiny_runs.cache, tmp_path / "cache")))
    again = json.loads(
        cli(
            "run", "tiny", "--method", method, "--results", str(results), "--format", "json", check=True
        ).stdout
    )
    assert again["work_done"] == []  # every stage found done for the same inputs
    assert again["scores"] == first["scores"]
    with pytest.raises(ValueError, match="nothing to time"):  # a resumed run is not timed
        tiny_loop().breakdown(again, wall=1.0)


def test_compare_tiny_runs_against_the_band(tiny_results, cli):
    out = json.loads(cli("compare", str(tiny_results), "--format", "json", "--all", check=True).stdout)
    tiny = [r for r in out["rows"] if r["setting"] == "tiny" and r["runs"] and r["band"]]
    assert {r["method"] for r in tiny} == {"simpo", "dpo"} and all(r["status"] == "within" for r in tiny)
    # the synthetic arithmetic set (ZeroEval path) is reported, with no band to meet
    arithmetic = [r for r in out["rows"] if r["setting"] == "tiny" and r["metric"] in ("gsm", "mmlu")]
    assert len(arithmetic) == 4 and all(r["status"] == "no published value" for r in arithmetic)
    missing = [r for r in out["rows"] if r["status"] == "missing"]
    assert len(missing) >= 150  # every published cell without a run is listed, not dropped


@pytest.mark.parametrize(("gpus", "accumulation"), [(4, 16), (8, 8)])
def test_dry_run_plan_for_the_paper_setting(gpus, accumulation, cli, tmp_path):
    plan = json.loads(
        cli(
            "run",
            "llama3-instruct-v0.2",
            "--method",
            "simpo",
            "--gpus",
            str(gpus),
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
    assert plan["batch"].startswith(f"128 = 2 per device x {accumulation} accumulation x {gpus} processes")
    assert plan["processes_per_node"] == gpus and f"--num_processes {gpus}" in plan["train_command"]
    assert (
        plan["judge_calls"]["total_calls"] == 805 + 1000 + 160
        and plan["judge_calls"]["estimated_cost_usd"] > 0
    )
    tiny = json.loads(
        cli("run", "tiny", "--dry-run", "--results", str(tmp_path), "--format", "json", check=True).stdout
    )
    assert tiny["optimizer_steps"] == 32


def test_sweep_plans_the_grid(cli, tmp_path):
    rows = json.loads(
        cli(
            "sweep",
            "tiny",
            "--method",
            "simpo",
            "--lr",
            "3e-7,5e-7,8e-7,1e-6",
            "--beta",
            "2,10",
            "--dry-run",
            "--results",
            str(tmp_path),
            "--format",
            "json",
            check=True,
        ).stdout
    )
    assert len(rows) == 8 and len({r["run_dir"] for r in rows}) == 8
    bad = cli("sweep", "tiny", "--lr", "fast")
    assert bad.returncode == 2 and "comma-separated numbers" in bad.stderr


def write(root: Path, name: str, data) -> None:
    (root / name).mkdir(parents=True)
    text = data if isinstance(data, str) else json.dumps(data)
    (root / name / "result.json").write_text(text)


@pytest.fixture
def fabricated(tmp_path):
    for name, lc, wr, ah in (("s1", 53.0, 47.9, 36.0), ("s2", 54.1, 48.2, 37.1), ("s3", 53.6, 47.0, 36.8)):
        write(
            tmp_path,
            name,
            {
                "setting": "llama3-instruct-v0.2",
                "method": "simpo",
                "complete": True,
                "scores": {"ae2_lc": lc, "ae2_wr": wr, "ah": ah},
            },
        )
    write(
        tmp_path,
        "cpo",
        {
            "setting": "llama3-instruct",
            "method": "cpo",
            "complete": True,
            "scores": {"ae2_lc": 30.2, "ae2_wr": 32.0, "ah": 28.5},
        },
    )
    write(tmp_path, "torn", '{"setting": "llama3-base", "scores": ')
    write(
        tmp_path,
        "partial",
        {
            "setting": "llama3-base",
            "method": "dpo",
            "complete": False,
            "incomplete_benchmarks": ["arena_hard"],
            "scores": {"ae2_lc": 18.0, "ah": 5.0},
        },
    )
    write(
        tmp_path, "unfinished", {"setting": "llama3-base", "method": "simpo", "complete": False, "scores": {}}
    )
    return tmp_path


def test_compare_statistics_errata_and_skips(fabricated, cli):
    out = json.loads(cli("compare", str(fabricated), "--format", "json", "--all", check=True).stdout)
    rows = {(r["setting"], r["method"], r["metric"]): r for r in out["rows"]}
    lc = rows[("llama3-instruct-v0.2", "simpo", "ae2_lc")]
    assert lc["runs"] == 3 and lc["reproduced_mean"] == pytest.approx(53.5667, abs=1e-3)
    assert lc["status"] == "within" and lc["p_value"] is not None and 0 < lc["p_value"] <= 1
    cpo = rows[("llama3-instruct", "cpo", "ae2_lc")]
    assert cpo["status"] == "outside" and cpo["delta"] == pytest.approx(-2.9) and "KTO row" in cpo["erratum"]
    # an incomplete benchmark's cells are left out; the run's complete benchmarks count
    assert rows[("llama3-base", "dpo", "ah")]["status"] == "missing"
    assert rows[("llama3-base", "dpo", "ae2_lc")]["runs"] == 1
    assert rows[("llama3-base", "dpo", "ae2_lc")]["reproduced_mean"] == 18.0
    reasons = {Path(s["path"]).parent.name: s["reason"] for s in out["skipped"]}
    assert reasons == {
        "torn": "corrupt JSON",
        "partial": "incomplete arena_hard: those cells left out",
        "unfinished": "incomplete run",
    }


def test_compare_formats_plot_and_tolerance(fabricated, cli, tmp_path):
    table = cli("compare", str(fabricated), "--only-reproduced", check=True)
    assert "33.1*" in table.stdout and "skipped" in table.stderr
    csv_out = cli("compare", str(fabricated), "--format", "csv", "--all", check=True).stdout.splitlines()
    assert csv_out[0].startswith("setting,method,variant,metric,published") and len(csv_out) > 150
    markdown = cli("compare", str(fabricated), "--format", "markdown", "--only-reproduced", check=True).stdout
    assert markdown.startswith("| setting |")
    plot = tmp_path / "compare.png"
    cli("compare", str(fabricated), "--plot", str(plot), check=True)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    failing = cli("compare", str(fabricated), "--fail-outside-tolerance")
    assert failing.returncode == 1 and "outside tolerance" in failing.stderr
    loose = cli(
        "compare",
        str(fabricated),
        "--tolerance",
        "ae2_lc=5",
        "--tolerance",
        "ah=5",
        "--format",
        "json",
        "--fail-outside-tolerance",
        check=True,
    )
    assert all(r["status"] != "outside" for r in json.loads(loose.stdout)["rows"])
    bad = cli("compare", str(fabricated), "--tolerance", "lc=1")
    assert bad.returncode == 2 and "did you mean 'ae2_lc'" in bad.stderr


def test_run_names_cannot_escape_the_results_directory(tmp_path):
    assert safe_child(tmp_path, "tiny", "simpo", "abc").is_relative_to(tmp_path)
    with pytest.raises(ReproError, match="escapes"):
        safe_child(tmp_path, "..", "..", "etc")
