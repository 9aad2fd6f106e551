"""What a user sees (issue 32, section 5): tables at the width they are given, library warnings
filtered once, what is starting before the first step, status that tells runs apart, a seed
that is not a diagnosed cause, a Markdown report that says what it left out, blank cells that
say why, plot labels that are not cut. The folders are written as `repro run` writes them
(tests/test_trust.py's helpers); nothing is trained."""

from __future__ import annotations

import json
import sys
import warnings

import pytest

from repro import io
from repro.config.runconfig import RunConfig
from tests.test_trust import write_run, write_run_file


def widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


@pytest.fixture
def results(tmp_path):
    write_run(tmp_path, "seed42", delta=0.4)
    write_run(tmp_path, "seed43", overrides=("seed=43",), delta=-0.2)
    write_run(tmp_path, "two-steps", max_steps=2, steps=2, delta=-30.0)
    write_run(tmp_path, "beta5", overrides=("beta=5",), delta=-8.0)
    return tmp_path


@pytest.mark.parametrize("columns", ["80", "120"])
def test_tables_fit_the_columns_they_are_given(columns, results, cli, monkeypatch):
    """Tables printed 152-200 characters wide in logs whatever COLUMNS said."""
    import os
    import subprocess

    from tests.conftest import REPRO

    env = {**os.environ, "COLUMNS": columns}
    for args in (("compare", str(results)), ("status", str(results)), ("recipes",), ("show", "tiny")):
        out = subprocess.run([str(REPRO), *args], capture_output=True, text=True, env=env, check=True).stdout
        assert 0 < widest(out) <= int(columns), (args, widest(out))
    env.pop("COLUMNS")  # piped into a file without COLUMNS: 80
    out = subprocess.run(
        [str(REPRO), "compare", str(results)], capture_output=True, text=True, env=env
    ).stdout
    assert widest(out) <= 80


def test_known_library_warnings_are_filtered_and_repros_own_are_not():
    """train.log held 54 KB of torch's deprecation warnings for a 32-step run."""
    from repro import library_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        library_warnings.silence()
        warnings.warn(
            "`torch.distributed.reduce_scatter_tensor` is deprecated. Please use ...",
            FutureWarning,
            stacklevel=1,
        )
        warnings.warn(
            "'pin_memory' argument is set as true but no accelerator is found, then ...",
            UserWarning,
            stacklevel=1,
        )
        import torch.distributed

        torch.distributed.reduce_op.SUM  # noqa: B018 (vLLM's engine reads it: torch warns)
        warnings.warn("repro: learning rate above 1e-3", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["repro: learning rate above 1e-3"]


def test_start_up_says_what_is_starting(tmp_path):
    """70-110 s of process start-up showed nothing before the training bar."""
    from repro.train import launch

    lines = ("REPRO_PHASE 1/2 processes started", "REPRO_PHASE 2/2 loading the model", "REPRO_STEP 1/4")
    script = "; ".join(f"print({line!r})" for line in lines)
    run = launch.Run(tmp_path, tmp_path / "run.json", tmp_path / "a.yaml", tmp_path / "d.json",
                     [sys.executable, "-c", script], {}, 2, 1, {})  # fmt: skip
    seen: list[tuple] = []
    assert launch.launch(run, progress=lambda *a: seen.append(a)) == 0
    assert seen == [
        ("start-up: starting 2 training processes", 0, None),
        ("start-up: processes started", 1, 2),
        ("start-up: loading the model", 2, 2),
        ("training", 1, 4),
    ]


def test_status_tells_seeds_and_truncated_runs_apart(tmp_path):
    """Full, --max-steps 2 and seed-43 runs all read 'lr=... beta=... g/b=...'."""
    from repro.runs.cluster import status

    for name, kwargs in (("00000000aa-seed42", {}), ("00000000bb-seed43", {"overrides": ("seed=43",)}),
                         ("00000000cc-seed42", {"max_steps": 2, "steps": 2})):  # fmt: skip
        run = write_run(tmp_path, name, **kwargs)
        manifest = json.loads((run / "manifest.json").read_text())
        write_run_file(run / "train", RunConfig.from_json(manifest["config"], "manifest"))
    points = [s.point_text() for s in status.collect(tmp_path, scheduler=False)]
    assert len(set(points)) == 3, points
    assert any("seed=43" in p for p in points) and any("max-steps=2" in p for p in points)


def test_a_seed_is_not_a_diagnosed_cause(results):
    """diagnose called seed=1 a likely cause, and exited 1, for a run compare treats as a replicate."""
    from repro.runs.analysis import diagnosis

    found = diagnosis.run(results / "llama3-instruct-v0.2" / "simpo" / "seed43")
    recipe = next(c for c in found.checks if c.check == "recipe")
    assert recipe.status == "ok" and not recipe.causes
    assert (
        "another seed (a replicate, averaged with the recipe's runs): seed 43 (recipe 42)" in recipe.summary
    )


def test_the_markdown_report_says_what_it_left_out_and_ends_short(results):
    """It dropped a run that failed verification without a word, and ended with ~20 KB of JSON."""
    from repro.runs.analysis import report

    run = results / "llama3-instruct-v0.2" / "simpo" / "seed42"
    data = json.loads((run / "result.json").read_text())
    data["scores"]["ae2_wr"] += 4.0
    io.write_json(run / "result.json", data)
    text = report.markdown(results)
    assert f"- `{run / 'result.json'}`: fails verification: result.json: changed" in text
    assert "```json" not in text and len(text) < 10_000  # tables and verdicts only


def test_a_blank_cell_says_why():
    """ae2_lc and ah_length cells were blank with nothing said."""
    from repro.evaluation import benchmarks

    outputs = {"alpaca_eval2": {"win_rate": 90.0, "n_total": 24, "lc_available": False},
               "arena_hard": {"score": 60.0, "avg_tokens": None}}  # fmt: skip
    assert "pass --lc-data DIR" in benchmarks.why_missing(outputs, "ae2_lc")
    assert "tiktoken's cl100k_base" in benchmarks.why_missing(outputs, "ah_length")
    assert benchmarks.why_missing(outputs, "mt_bench") == "mt_bench was not evaluated"
    # a judge that answered without ratings (SmolLM2) is not "judgments never came back"
    unrated = {"mt_bench": {"average": None, "n_dropped": 8, "n_counted": 0, "incomplete": True}}
    assert benchmarks.why_missing(unrated, "mt_bench") == "8 of 8 judgments without a rating in 1-10"
    from repro.evaluation.scorers import arena_hard

    assert "shared/README" not in arena_hard.cl100k.__code__.co_consts.__repr__()


def test_compare_plot_labels_are_not_cut():
    """'llama3-instruct-v0.2 / simpo (tru...' hid which configuration a row was."""
    from repro.runs.analysis import plots

    label = plots.row_label("llama3-instruct-v0.2", "simpo", "truncated: 2 of 468 steps; beta 5; gamma 1.5")
    assert "\u2026" not in label and label.replace("\n", " ").endswith(
        "(truncated: 2 of 468 steps; beta 5; gamma 1.5)"
    )
    assert all(len(line) <= plots.LABEL_CHARS for line in label.splitlines())


def test_the_eval_and_run_tables_count_the_failed_judgments():
    """result.json counted the judgments that failed; `repro eval` said only "incomplete:
    alpaca_eval2 (failed judgments are counted in result.json)" and `repro run` only the names."""
    from io import StringIO
    from pathlib import Path

    from rich.console import Console

    from repro.cli import result_tables
    from repro.evaluation.records import BenchmarkResult, EvaluationResult
    from repro.runs.pipeline.run import Executed
    from repro.runs.results.result import RunResult

    outputs = {
        "alpaca_eval2": {"win_rate": 40.0, "length_controlled_winrate": None, "avg_length": 900,
                         "n_total": 21, "expected_total": 24, "n_failed": 3, "incomplete": True,
                         "lc_available": False},
        "arena_hard": {"score": 50.0, "lower": 45.0, "upper": 55.0, "avg_tokens": 300, "n_questions": 24,
                       "n_games_without_verdict": 0, "incomplete": False},
        "mt_bench": {"average": 5.0, "turn_1": 5.0, "turn_2": 5.0, "n_counted": 47, "n_dropped": 1,
                     "incomplete": True},
        "gsm": {"acc": 50.0, "no_answer": 0.0, "reason_length": 30.0, "total": 16, "incomplete": False},
    }  # fmt: skip

    def shown(table) -> str:
        text = StringIO()
        Console(file=text, width=200).print(table)
        return " ".join(text.getvalue().split())

    def record(outputs: dict) -> EvaluationResult:
        from repro.evaluation import benchmarks

        return EvaluationResult(
            model="m", setting="tiny", benchmarks={n: BenchmarkResult(n, o) for n, o in outputs.items()},
            scores=benchmarks.scores(outputs), judge=None, limit=None,
        )  # fmt: skip

    said = "incomplete: alpaca_eval2 (3 failed judgments), mt_bench (1 failed judgment)"
    checkpoint = RunResult.of(record(outputs), model="m")  # what `repro eval` prints
    assert said in shown(result_tables.eval_table(checkpoint))
    # a blank score says why, as `repro run`'s table does (it showed a bare n/a)
    lc = "ae2_lc: no length-controlled data: pass --lc-data DIR"
    assert lc in shown(result_tables.eval_table(checkpoint))
    with_lc = {
        **outputs,
        "alpaca_eval2": {**outputs["alpaca_eval2"], "length_controlled_winrate": 41.0, "lc_available": True},
    }
    assert "ae2_lc" not in shown(result_tables.eval_table(RunResult.of(record(with_lc), model="m")))
    run = Executed(RunResult.of(record(outputs), model="m", method="simpo"), Path("results/run"), [])
    assert said in shown(result_tables.run_table(run))
    # every judgment back: nothing said, and `repro run` says complete
    whole = {n: {**o, "n_failed": 0, "n_dropped": 0, "incomplete": False} for n, o in outputs.items()}
    checkpoint = RunResult.of(record(whole), model="m")
    assert "failed judgment" not in shown(result_tables.eval_table(checkpoint))
    # the model at its hub commit, the setting, and the baseline model its win rates are against
    hub = RunResult.of(record(whole), model="org/m", model_commit="a" * 40, baseline_model="base/")
    title = f"org/m at commit {'a' * 40} (tiny), against base/ "
    assert shown(result_tables.eval_table(hub)).startswith(title)
    run = Executed(RunResult.of(record(whole), model="m", method="simpo"), Path("results/run"), [])
    assert shown(result_tables.run_table(run)).endswith("complete")


def test_a_long_title_or_caption_widens_the_table_instead_of_folding_it():
    """`repro eval` of a model under a long path with a blank score printed a 38-column table: the
    path folded over four lines and the caption (why a score is blank) over seven. A table now
    takes the width its title or caption asks, up to the terminal's."""
    from io import StringIO

    from rich.console import Console

    from repro.cli import render

    title = "/root/.cache/repro/models/smollm2-135m-instruct (smol), against /root/.cache/repro/models/base"
    caption = (
        "ae2_lc: no length-controlled data: pass --lc-data DIR (df_gamed.csv, instruction_difficulty.csv)"
    )
    for width in (80, 100, 200):
        text = StringIO()
        Console(file=text, width=width).print(
            render.table(["benchmark", "value"], [("AE2", "n/a")], title, caption)
        )
        lines = text.getvalue().splitlines()
        assert max(map(len, lines)) == min(len(caption), width), (width, lines)
        assert len(lines) <= 5 + 2 * (width < len(caption)), lines  # title, header, rule, row, caption
    narrow = StringIO()
    Console(file=narrow, width=80).print(render.table(["a", "b"], [("1", "2")]))
    assert max(map(len, narrow.getvalue().splitlines())) < 10  # no title: as narrow as its data
