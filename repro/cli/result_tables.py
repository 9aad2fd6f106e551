"""The tables people read after `repro run`, `repro sweep`, `repro eval` and the scorers' commands
(`alpaca-eval rescore`, `arena-hard score`, `mt-bench score`): what each result holds, in rows."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich.table import Table

from repro import hub
from repro.cli import render
from repro.errors import ReproError
from repro.evaluation import benchmarks

if TYPE_CHECKING:  # the run library loads torch's stack lazily; the table only reads the record
    from repro.runs.pipeline.run import Executed
    from repro.runs.results.result import RunResult


def scorer_number(value: Any) -> str:
    """A scorer's value: n/a when missing or NaN, 4 decimals for a float."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def run_table(done: Executed) -> Table:
    """A finished `repro run`: each score (or why it is blank), the training, the work done."""
    result = done.result
    blank = result.blank_scores
    rows = [
        (
            k,
            f"blank: {benchmarks.why_missing(result.benchmarks, k)}"
            if k in blank
            else render.number(v)
            if not isinstance(v, list)
            else ", ".join(f"{x:.2f}" for x in v if x is not None),
        )
        for k, v in result.scores.items()
    ]
    training = result.training.to_json() if result.training else {}
    rows += [(f"training {k}", render.number(v)) for k, v in training.items()]
    rows += [(f"time {w['stage']}", f"{w['seconds']} s") for w in done.work_done]
    if not done.work_done:
        rows.append(("work", "none: every stage was already done for these inputs"))
    partial = "partial: " + "; ".join(result.partial_reasons) + "; " if result.partial else ""
    state = incomplete_caption(result.benchmarks, result.incomplete_benchmarks) or (
        "complete" if result.complete else "incomplete"
    )
    title = f"{result.setting} x {result.method}: {done.run_dir}"
    return render.table(["", "value"], rows, title=title, caption=partial + state)


def plan_table(plan) -> Table:
    """A `repro run --dry-run` plan (repro.runs.pipeline.run.Plan): one line per fact, in words."""
    config, batch = plan.config, plan.config.batch

    rows = [
        ("run directory", str(plan.run_dir)),
        ("model", hub.at(config.model_name_or_path, config.model_commit)),
        ("dataset", hub.at(config.dataset, config.dataset_commit)),
        ("optimizer steps", plan.steps.text()),
        ("batch", batch.describe()),
        ("processes", f"{batch.num_processes} per node x {batch.num_nodes} nodes"),
        ("judge", plan.judge_text),
        ("judge calls", plan.judge_cost_text),
        ("config hash", config.config_hash),
        ("train command", plan.train_command),
        # --limit makes a result partial only where it leaves a benchmark's questions out
        ("partial", "where --limit leaves a benchmark's questions out" if plan.partial else "no"),
        ("device (this machine)", plan.device),
    ]
    rows += [(f"preflight {c.name}", ("ok: " if c.ok else "FAILS: ") + c.message) for c in plan.preflight]
    title = f"repro run {plan.config.setting} --method {plan.config.method} (dry run)"
    return render.table(["plan", "value"], rows, title=title)


def sweep_table(rows: list[dict[str, Any]], *, title: str, caption: str | None) -> Table:
    """A local sweep (repro.runs.pipeline.sweep.LocalSweep.rows): one row per grid point."""
    columns = list(rows[0])
    body = [[r[c] if isinstance(r[c], str) else render.number(r[c]) for c in columns] for r in rows]
    return render.table(columns, body, title=title, caption=caption)


def eval_table(record: RunResult) -> Table:
    """A `repro eval` result (repro.runs.results.result.RunResult): each benchmark's rows under
    the model (and its hub commit), the setting and the baseline model scored against, and a
    caption naming what did not come back."""
    title = f"{hub.at(record.model, record.model_commit)} ({record.setting})"
    if record.baseline_model:
        title += f", against {hub.at(record.baseline_model, record.baseline_commit)}"
    rows = [
        (benchmarks.get(name).title, what, value)
        for name, output in record.benchmarks.items()
        for what, value in benchmarks.get(name).rows(output)
    ]
    blank = [f"{k}: {benchmarks.why_missing(record.benchmarks, k)}" for k in record.blank_scores]
    said = [incomplete_caption(record.benchmarks, record.incomplete_benchmarks), *blank]
    caption = "; ".join(s for s in said if s) or None
    return render.table(["benchmark", "metric", "value"], rows, title=title, caption=caption)


def incomplete_caption(outputs: dict[str, Any], incomplete: list[str]) -> str | None:
    """What did not come back: 'incomplete: alpaca_eval2 (3 failed judgments), arena_hard', each
    incomplete benchmark with the judgments that failed where its output counts them (and a
    complete one with failed judgments too); None when every judgment came back."""

    def failed(name: str) -> int:
        output = outputs.get(name)
        try:
            count = benchmarks.get(name).failed_judgments(output) if isinstance(output, dict) else None
        except ReproError:  # a plugin that is not loaded now
            return 0
        return count if isinstance(count, int) and count > 0 else 0

    def named(name: str) -> str:
        n = failed(name)
        return f"{name} ({n} failed judgment{'' if n == 1 else 's'})" if n else name

    also = [named(n) for n in outputs if n not in incomplete and failed(n)]
    if not incomplete and not also:
        return None
    state = f"incomplete: {', '.join(map(named, incomplete))}" if incomplete else "complete"
    return "; ".join([state, *also])


def alpaca_table(result: dict[str, Any], columns: list[str]) -> Table:
    """An AlpacaEval 2 replay (repro.evaluation.scorers.alpaca_eval.rescore)."""
    return render.table(
        ["metric", "value"],
        [(k, scorer_number(result[k])) for k in [*columns, "n_failed", "incomplete"]],
        title=f"AlpacaEval 2 replay: {result['model']}",
        caption=None if result["lc_available"] else "LC: pass --lc-data (see docs)",
    )


def arena_table(scores: dict[str, dict[str, Any]]) -> Table:
    """Arena-Hard scores per model (repro.evaluation.scorers.arena_hard.score_files), best first."""

    def ci(r: dict[str, Any]) -> str:
        if r["score"] is None or r["lower"] is None or r["upper"] is None:
            return "n/a"
        return f"({render.signed(r['lower'] - r['score'])}, {render.signed(r['upper'] - r['score'])})"

    rows = [
        (
            m,
            "n/a" if r["score"] is None else f"{r['score']:.1f}",
            ci(r),
            scorer_number(r["avg_tokens"]),
            str(r["battles"]),
            str(r["games_without_verdict"]),
        )
        for m, r in sorted(scores.items(), key=lambda x: -(x[1]["score"] or 0))
    ]
    return render.table(
        ["model", "score", "95% CI", "avg tokens", "battles", "no verdict"],
        rows,
        title="Arena-Hard v0.1 (vs gpt-4-0314)",
        caption="no verdict: games without a valid label, or missing from their judgment (not counted)",
    )


def mt_bench_table(scores: dict[str, dict[str, Any]]) -> Table:
    """MT-Bench ratings per model (repro.evaluation.scorers.mt_bench.score), best first."""
    rows = [
        (
            m,
            scorer_number(r["turn_1"]),
            scorer_number(r["turn_2"]),
            scorer_number(r["average"]),
            str(r["n_counted"]),
            str(r["n_dropped"]),
        )
        for m, r in sorted(scores.items(), key=lambda x: -(x[1]["average"] or 0))
    ]
    return render.table(
        ["model", "turn 1", "turn 2", "average", "counted", "failed"],
        rows,
        title="MT-Bench (single-answer grading)",
        caption="failed: no rating found (-1) or a rating outside 1-10; not counted",
    )
