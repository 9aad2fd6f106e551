"""Medians with their spread, and the change between two revisions with a confidence band.

Benchmarks on shared machines are noisy (TRL's own throughput swung from 249 to 380 tokens/s
between runs on one machine), so a figure is a median of rounds with its range, and a change
is judged on paired rounds: round i ran both revisions back to back, so its ratio cancels
whatever the machine did over minutes. The band is a t-interval on the paired log-ratios
(their geometric mean is the estimate); when it holds 1.0 the runs show no change beyond noise.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

# Two-sided 95% quantiles of Student's t, by degrees of freedom (1-30); 1.96 beyond.
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
       2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
       2.052, 2.048, 2.045, 2.042)  # fmt: skip


def spread(values: list[float]) -> dict[str, Any]:
    """Median, range and every value."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": list(values),
    }


def paired_change(new: list[float], old: list[float]) -> dict[str, Any]:
    """new/old over paired rounds: geometric mean of the ratios and its 95% t-interval."""
    if len(new) != len(old) or not new:
        raise ValueError("paired_change needs the same number of rounds on both sides, at least one")
    logs = [math.log(a / b) for a, b in zip(new, old, strict=True)]
    centre = statistics.fmean(logs)
    out: dict[str, Any] = {
        "ratio": math.exp(centre),
        "rounds": len(logs),
        "ratios": [math.exp(x) for x in logs],
    }
    if len(logs) < 2:
        out.update(low=None, high=None)
        return out
    t = T95[len(logs) - 2] if len(logs) - 1 <= len(T95) else 1.96
    half = t * statistics.stdev(logs) / math.sqrt(len(logs))
    out.update(low=math.exp(centre - half), high=math.exp(centre + half))
    return out


def verdict(change: dict[str, Any], up: str, down: str) -> str:
    """`up` when the whole band is above 1, `down` when below, else no change beyond noise."""
    if change["low"] is None:
        return "one round: no band (run --rounds 2 or more)"
    if change["low"] > 1:
        return up
    if change["high"] < 1:
        return down
    return "no change beyond noise"
