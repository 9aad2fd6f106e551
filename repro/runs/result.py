"""result.json: one schema for `repro eval` and `repro run`, written here and nowhere else.

A result says what it is: the model and setting it scores, the published-table metrics
(`scores`), every benchmark's full output (`benchmarks`), whether every judgment came back
(`complete`), and whether it covers only part of each benchmark (`partial`, with `limit`).
A run also says which runs are its replicates (`replicate_key`: everything but the seed, see
repro.runs.replicates), what it changed from its recipe (`variant`), and whether it trained as
long as the recipe says (`training.full`; a run cut by --max-steps is `partial` too, with the
reason in `partial_reasons`). `repro compare` averages complete replicates only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro import io

SCHEMA = "repro.result/1"


def scores_from(benchmarks: dict[str, Any]) -> dict[str, Any]:
    """The published tables' metrics from the benchmarks' outputs."""
    scores: dict[str, Any] = {}
    if ae := benchmarks.get("alpaca_eval2"):
        scores.update(
            ae2_lc=ae.get("length_controlled_winrate"),
            ae2_wr=ae.get("win_rate"),
            ae2_wr_se=ae.get("standard_error"),
            ae2_length=ae.get("avg_length"),
        )
    if ah := benchmarks.get("arena_hard"):
        scores.update(
            ah=ah.get("score"),
            ah_ci=[_rounded(ah.get("lower")), _rounded(ah.get("upper"))],
            ah_length=ah.get("avg_tokens"),
        )
    if mt := benchmarks.get("mt_bench"):
        scores.update(mt_bench=mt.get("average"))
    if gsm := benchmarks.get("gsm"):
        scores.update(gsm=gsm.get("acc"), gsm_length=gsm.get("reason_length"))
    if mmlu := benchmarks.get("mmlu_redux"):
        scores.update(mmlu=mmlu.get("acc"), mmlu_length=mmlu.get("reason_length"))
    return scores


def _rounded(value: Any) -> Any:
    """A bootstrap bound without float noise (99.9999999999 is 100)."""
    return round(value, 6) if isinstance(value, float) else value


def incomplete_benchmarks(benchmarks: dict[str, Any]) -> list[str]:
    return [b for b, r in benchmarks.items() if isinstance(r, dict) and r.get("incomplete")]


def record(
    *,
    model: str,
    setting: str,
    benchmarks: dict[str, Any],
    judge: dict[str, Any],
    limit: int | None,
    method: str | None = None,
    run_id: str | None = None,
    seed: int | None = None,
    training: dict[str, Any] | None = None,
    bos_check: dict[str, Any] | None = None,
    timings: dict[str, Any] | None = None,
    replicate_key: str | None = None,
    variant: dict[str, Any] | None = None,
) -> dict[str, Any]:
    extras = ("judge_calls", "resumed_answers", "notes")  # about the evaluation, not a benchmark
    incomplete = incomplete_benchmarks(benchmarks)
    reasons = [f"--limit {limit}: the first {limit} questions of each benchmark"] if limit else []
    if training and training.get("full") is False:
        of = f" of the recipe's {training['recipe_steps']}" if training.get("recipe_steps") else ""
        reasons.append(f"training stopped at {training.get('steps')}{of} steps (--max-steps)")
    return {
        "schema": SCHEMA,
        "model": model,
        "setting": setting,
        "method": method,
        "run_id": run_id,
        "seed": seed,
        "scores": scores_from(benchmarks),
        "training": training,
        "complete": not incomplete,
        "incomplete_benchmarks": incomplete,
        "partial": bool(reasons),
        "partial_reasons": reasons,
        "limit": limit,
        "replicate_key": replicate_key,
        "variant": variant,
        "judge": judge,
        "benchmarks": {k: v for k, v in benchmarks.items() if k not in extras},
        "judge_calls": benchmarks.get("judge_calls"),
        "resumed_answers": benchmarks.get("resumed_answers"),  # answers a killed run had written
        "notes": benchmarks.get("notes") or [],
        "bos_check": bos_check,
        "timings_seconds": timings or {},
    }


def of_evaluation(evaluation: Any, benchmarks: dict[str, Any], *, model: str) -> dict[str, Any]:
    """The record of one `Evaluation.run` (repro eval and repro run's evaluate stage alike)."""
    return record(
        model=model,
        setting=evaluation.name,
        benchmarks=benchmarks,
        judge={**evaluation.judge.describe(), **getattr(evaluation, "judge_identity", {})},
        limit=evaluation.limit,
        bos_check=evaluation.bos_check,
        timings=evaluation.timings,
    )


def write(path: Path, data: dict[str, Any]) -> None:
    io.write_json(path, data)
