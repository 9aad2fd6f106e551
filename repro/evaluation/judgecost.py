"""What judging will cost before it starts: calls and dollars per benchmark.

cost = calls x (input_tokens x input price + output_tokens x output price) / 1e6, with the
calls scaled by min(1, limit / questions) under --limit. Each benchmark declares its calls and
typical token counts (`Benchmark.cost`); the price list is eval/costs.yaml. Benchmarks without
a judge (ZeroEval's GSM and MMLU-Redux) cost nothing. Token counts are typical values and
every price is gpt-4-1106-preview's, so the total is an estimate and says so.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from repro import paths
from repro.evaluation import benchmarks


def prices() -> dict[str, Any]:
    return yaml.safe_load((paths.EVAL / "costs.yaml").read_text(encoding="utf-8"))


def estimate(
    benches: list[str], *, limit: int | None = None, judge_model: str | None = None
) -> dict[str, Any]:
    """Per benchmark: judge model, calls and USD; then the totals."""
    price = prices()["price_per_million"]
    per_bench: dict[str, dict[str, Any]] = {}
    for bench in benches:
        c = benchmarks.get(bench).cost
        if c is None:  # scored without a judge (ZeroEval's GSM, MMLU-Redux): no calls
            continue
        share = min(1.0, limit / c.questions) if limit else 1.0
        calls = math.ceil(c.calls * share)
        usd = calls * (c.input_tokens * price["input"] + c.output_tokens * price["output"]) / 1e6
        per_bench[bench] = {
            "judge_model": judge_model or c.judge_model,
            "calls": calls,
            "usd": round(usd, 2),
        }
    return {
        "benchmarks": per_bench,
        "total_calls": sum(b["calls"] for b in per_bench.values()),
        "estimated_cost_usd": round(sum(b["usd"] for b in per_bench.values()), 2),
        "priced_as": "gpt-4-1106-preview",
    }


def for_judge(
    kind: str, benches: list[str], *, limit: int | None = None, judge_model: str | None = None
) -> dict[str, Any]:
    """estimate() for the judge that will run: the local rule judge makes no calls and costs nothing."""
    found = estimate(benches, limit=limit, judge_model=judge_model)
    if kind != "rule":
        return found
    zero = {b: {**v, "calls": 0, "usd": 0.0} for b, v in found["benchmarks"].items()}
    return {"benchmarks": zero, "total_calls": 0, "estimated_cost_usd": 0.0, "priced_as": "local rule judge"}


def describe_judge(kind: str, url: str | None, key_env: str | None, models: dict[str, str]) -> str:
    """The judge in one line: 'endpoint URL, gpt-4-1106-preview (alpaca_eval2, arena_hard), key from $VAR'."""
    if kind == "rule":
        return "rule judge (local, no calls, no cost)"
    by_model: dict[str, list[str]] = {}
    for bench, model in models.items():
        by_model.setdefault(model, []).append(bench)
    who = "; ".join(f"{m} ({', '.join(b)})" for m, b in by_model.items()) or "no benchmarks"
    where = url or "no URL yet (pass --judge-url)"
    key = f", key from ${key_env}" if key_env else ""
    return f"{kind} {where}, model {who}{key}"


def describe_cost(plan: dict[str, Any]) -> str:
    """'1965 calls (alpaca_eval2 805, ...), about $60.11 (estimate at gpt-4-1106-preview prices)'."""
    parts = ", ".join(f"{b} {v['calls']}" for b, v in plan["benchmarks"].items())
    return (
        f"{plan['total_calls']} calls ({parts}), about ${plan['estimated_cost_usd']:.2f} "
        f"(estimate at {plan['priced_as']} prices)"
    )
