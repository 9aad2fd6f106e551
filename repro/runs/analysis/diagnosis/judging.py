"""judging: the judge and annotator against the paper's, judgments that failed to parse or were
retried, and the noise floor of the win rate.

Win rate as alpaca-eval 0.6.2 computes it from weighted preferences in [1, 2]:
100 x mean(preference - 1) (a draw, 1.5, counts half). The noise floor is the half-width of
a 95% bootstrap interval of that mean over instructions (resampled with replacement, seeded)
plus the judge-to-judge variation the maintainers report (~1 point, issue #21); a gap to the
published number inside it is called noise.
"""

from __future__ import annotations

import math
from typing import Any

from repro.config.resolution import evaluation_plan
from repro.config.settings import get_setting
from repro.errors import ReproError
from repro.evaluation.benchmarks.alpaca_eval2 import WR
from repro.runs.analysis import compare, published
from repro.runs.analysis.diagnosis.base import Check, in_chain, percent, rules, share, unknown
from repro.runs.analysis.diagnosis.inputs import Inputs


def preference(value: Any) -> float | None:
    """A usable preference in [1, 2], or None (failed to parse: null, NaN, text, out of range)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number):
        return None
    if number == 0.0:  # alpaca-eval's encoding of a draw in older files
        return 1.5
    return number if 1.0 <= number <= 2.0 else None


def bootstrap(wins: list[float], *, resamples: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of 100 x mean(wins), resampling instructions."""
    import numpy as np  # deferred: only the bootstrap needs numpy

    rng = np.random.default_rng(seed)
    values = np.asarray(wins, dtype=float)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1) * 100
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def _published(setting: str | None, method: str | None) -> dict[str, Any]:
    if not setting or not method:
        return {}
    value = published.lookup(published.load(), setting, method, WR)
    if value is not None:
        return {"published_win_rate": value}
    band = compare.reference_bands().get((setting, method, WR))
    return {"published_band": list(band)} if band else {}


def _baseline(inputs: Inputs) -> str | None:
    """published | init-model: whose answers the setting's judged benchmarks compare against."""
    plan = ((inputs.config or {}).get("evaluation") or {}).get("baseline")
    if plan is None and inputs.setting:
        try:
            plan = evaluation_plan(get_setting(inputs.setting)).baseline
        except ReproError:
            plan = None
    return plan


def _judge_expected(inputs: Inputs) -> str:
    plan = ((inputs.config or {}).get("evaluation") or {}).get("judge")
    if plan is None and inputs.setting:
        try:
            plan = evaluation_plan(get_setting(inputs.setting)).judge
        except ReproError:
            plan = None
    return plan or "endpoint"


# What each judged benchmark of a run's result says of the verdicts it could not parse:
# (output key of the failures, output key of the total or None, what a failure is called)
UNPARSED = {
    "arena_hard": ("n_games_without_verdict", None, "games without a verdict"),
    "mt_bench": ("n_dropped", "n_counted", "judgments without a rating in 1-10"),
}


def _unparsed(inputs: Inputs, evidence: dict[str, Any], result: Check, limit: float) -> None:
    """Arena-Hard and MT-Bench verdicts that failed to parse, from the outputs of the evaluation
    that result.json names (never from files an earlier evaluation left on disk)."""
    outputs = inputs.result.benchmarks if inputs.result else {}
    for bench, (failed_key, counted_key, what) in UNPARSED.items():
        output = outputs.get(bench)
        if not isinstance(output, dict) or not isinstance(output.get(failed_key), int):
            continue
        failed = output[failed_key]
        if counted_key is None:
            total = 2 * int(output.get("n_questions") or 0)  # two games per question
        else:
            total = failed + int(output.get(counted_key) or 0)
        evidence.setdefault("unparsed", {})[bench] = {"failed": failed, "of": total}
        if total and failed / total > limit:
            result.differs(
                f"{bench}: {failed} of {total} {what} ({percent(failed / total)})", 50 + 300 * failed / total
            )


@in_chain("judging", order=6)
def check(inputs: Inputs) -> Check:
    cfg = rules()
    expected_judge = cfg["judge"]
    result = Check("judging")
    evidence: dict[str, Any] = {}
    recorded = inputs.manifest.judge if inputs.manifest else None
    judge = (inputs.result.judge if inputs.result else None) or recorded
    plan = _judge_expected(inputs)
    if judge is not None:
        evidence["judge"] = {"kind": judge.kind, "model": judge.model, "url": judge.url}
        evidence["setting_judge"] = plan
        if (judge.kind == "rule") != (plan == "rule"):
            result.differs(f"judge '{judge.kind}' where the setting is judged by '{plan}'", 60)
        elif (
            plan != "rule"
            and _baseline(inputs) != "init-model"  # against its starting model: no published judge
            and judge.model
            and judge.model != expected_judge["model"]
        ):
            result.differs(
                f"judge model {judge.model} where the published numbers used {expected_judge['model']}", 60
            )
    ae = inputs.alpaca_eval() or {}
    calls = ae.get("judge_calls") or (inputs.result.judge_calls if inputs.result else None)
    if calls:
        evidence["judge_calls"] = calls
    _unparsed(inputs, evidence, result, cfg["failed_judgments_share"])
    if not inputs.annotations:
        why = inputs.need("eval/alpaca_eval2/annotations.json") or "no annotations given (--annotations)"
        if not evidence:
            return unknown("judging", f"cannot check the judgments: {why}")
        evidence["annotations"] = why
        result.evidence = evidence
        if result.status == "ok":
            result.summary = f"judge {evidence.get('judge')}; AlpacaEval judgments not checked: {why}"
        else:
            result.summary = "; ".join(c.summary for c in result.causes)
        return result
    annotations = inputs.annotations
    annotators = sorted({str(a.get("annotator")) for a in annotations if a.get("annotator")})
    evidence["annotators"] = annotators
    if annotators and plan != "rule" and annotators != [expected_judge["annotator"]]:
        result.differs(
            f"annotator {', '.join(annotators)} where the published numbers used "
            f"{expected_judge['annotator']}",
            60,
        )
    prefs = [preference(a.get("preference")) for a in annotations]
    failed = sum(p is None for p in prefs)
    n = len(prefs)
    evidence["judgments"] = n
    evidence["failed_to_parse"] = failed
    evidence["failed_share"] = share(failed, n)
    # the gateway retries each call (capped backoff) and counts the calls it gave up on, by reason;
    # the retries themselves are not counted
    gave_up = (calls or {}).get("failures") if isinstance(calls, dict) else None
    evidence["judge_calls_given_up"] = sum(gave_up.values()) if isinstance(gave_up, dict) else None
    if isinstance(gave_up, dict) and gave_up:
        evidence["judge_calls_given_up_by_reason"] = gave_up
    if failed / n > cfg["failed_judgments_share"]:
        result.differs(
            f"{percent(failed / n)} of judgments failed to parse ({failed} of {n}): "
            "they are dropped from the "
            "win rate, which then covers other instructions than the published one",
            50 + 300 * failed / n,
        )
    wins = [p - 1 for p in prefs if p is not None]
    if wins:
        low, high = bootstrap(wins, resamples=cfg["bootstrap_resamples"], seed=cfg["bootstrap_seed"])
        rate = 100 * sum(wins) / len(wins)
        floor = (high - low) / 2 + cfg["judge_noise_points"]
        evidence["win_rate"] = round(rate, 3)
        evidence["bootstrap_95"] = [round(low, 3), round(high, 3)]
        evidence["judge_noise_points"] = cfg["judge_noise_points"]
        evidence["noise_floor"] = round(floor, 3)
        evidence.update(_published(inputs.setting, inputs.method))
        if "published_win_rate" in evidence:
            gap = rate - evidence["published_win_rate"]
            evidence["gap"] = round(gap, 3)
            evidence["inside_noise"] = abs(gap) <= floor
        elif "published_band" in evidence:
            lo, hi = evidence["published_band"]
            evidence["inside_band"] = lo <= rate <= hi
    result.evidence = evidence
    if result.status == "ok":
        text = f"{n} judgments, {failed} failed to parse"
        if "win_rate" in evidence:
            low, high = evidence["bootstrap_95"]
            text += f"; win rate {evidence['win_rate']:.1f} (95% bootstrap {low:.1f}-{high:.1f})"
        if "gap" in evidence:
            where = "inside" if evidence["inside_noise"] else "outside"
            text += (
                f"; {evidence['gap']:+.1f} points from the published {evidence['published_win_rate']}, "
                f"{where} the noise floor of +-{evidence['noise_floor']:.1f}"
            )
        elif "inside_band" in evidence:
            where = "inside" if evidence["inside_band"] else "outside"
            text += f"; {where} the reference band {evidence['published_band']}"
        result.summary = text
    else:
        result.summary = "; ".join(c.summary for c in result.causes)
    return result
