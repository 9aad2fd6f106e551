"""`repro run --dry-run`'s plan: a typed record made by the library (steps and judge cost
computed once there), written nowhere, printed by the CLI with the keys it always had."""

from __future__ import annotations

import pytest

from repro.config.resolution import resolve_names
from repro.evaluation import judgecost, runner
from repro.runs.pipeline import run

PLAN_KEYS = [
    "run_dir", "setting", "method", "config_hash", "processes_per_node", "nodes", "batch",
    "optimizer_steps", "optimizer_steps_note", "train_command", "judge", "judge_calls", "partial",
    "device (this machine)", "preflight", "judge_text", "judge_cost_text", "optimizer_steps_text",
    "optimizer_steps_full_epoch",
]  # fmt: skip


@pytest.mark.parametrize(
    "full, cap, planned, text",
    [
        (32, None, 32, "32"),
        (None, None, None, "unknown until the dataset is loaded (train_rows not recorded)"),
        (None, 5, 5, "at most 5 (--max-steps; a full epoch is unknown until the data is loaded)"),
        (32, 5, 5, "5 (--max-steps 5; a full epoch is 32)"),
        (32, 64, 32, "32 (a full epoch; --max-steps 64 does not cut it)"),
    ],
)
def test_steps_in_numbers_and_words(full, cap, planned, text):
    steps = run.Steps(full, cap)
    assert (steps.planned, steps.text()) == (planned, text)


def test_plan_is_typed_and_writes_nothing(tmp_path):
    config, _ = resolve_names("tiny", "simpo", max_steps=5)
    judge = runner.Judge.choose(None, config.evaluation)
    plan = run.plan(
        config, results_root=tmp_path / "r", benches=["alpaca_eval2"], judge=judge, backend="transformers"
    )
    assert not (tmp_path / "r").exists()
    assert plan.steps == run.Steps(32, 5) and plan.run_dir.name == config.run_id
    assert plan.judge_estimate["total_calls"] == 0 and plan.judge_estimate["estimated_cost_usd"] == 0.0
    data = plan.to_json()
    assert list(data) == PLAN_KEYS
    assert data["optimizer_steps"] == 5 and data["judge_calls"] == {
        "total_calls": "local",
        "estimated_cost_usd": 0,
    }
    assert data["batch"] == "16 = 4 per device x 2 accumulation x 2 processes x 1 nodes"


def test_the_rule_judge_costs_nothing_and_an_endpoint_is_priced():
    rule = judgecost.for_judge("rule", ["alpaca_eval2", "gsm"])
    endpoint = judgecost.for_judge("endpoint", ["alpaca_eval2", "gsm"])
    assert (rule["total_calls"], rule["estimated_cost_usd"]) == (0, 0.0)
    assert endpoint == judgecost.estimate(["alpaca_eval2", "gsm"]) and endpoint["total_calls"] == 805


def test_the_plan_table_names_the_model_and_says_when_a_limit_makes_a_result_partial(tmp_path):
    """A dry run cannot know which benchmarks --limit cuts (a result is partial only where it
    leaves questions out: repro.evaluation.runner.Evaluation.subset), so it says the rule rather
    than `partial: yes`; and it names the starting model and the dataset it would train on."""
    from repro.cli.result_tables import plan_table

    config, _ = resolve_names("tiny", "simpo", max_steps=5)
    judge = runner.Judge.choose(None, config.evaluation)

    def rows(limit):
        plan = run.plan(config, results_root=tmp_path, benches=["alpaca_eval2"], judge=judge, limit=limit)
        table = plan_table(plan)
        return {str(k): str(v) for k, v in zip(table.columns[0]._cells, table.columns[1]._cells, strict=True)}

    limited, whole = rows(1000), rows(None)
    assert limited["partial"] == "where --limit leaves a benchmark's questions out"
    assert whole["partial"] == "no"
    assert (whole["model"], whole["dataset"]) == ("repro:tiny-llama", config.dataset)
