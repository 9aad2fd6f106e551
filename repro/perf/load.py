"""How busy the machine was while a benchmark measured: load averages around each measurement.

A throughput figure taken while other work shared the cores reads like a regression (the
2-core SimPO/TRL ratio swung from 2.09x to 0.89x under load). Each measurement records the
1/5/15-minute load averages before and after it, read in the parent process (nothing is
added to the measured process), and the report says whether the machine was busy.
"""

from __future__ import annotations

import os
from typing import Any


def averages() -> list[float]:
    """The 1, 5 and 15-minute load averages (empty where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - not on Linux/macOS
        return []


QUIET_START = 0.5  # 1-minute load per core before the first measurement: others were running
QUIET_PEAK = 1.25  # per core at any reading: a measurement's own threads give up to about 1 per core


def summary(readings: list[dict[str, list[float]]]) -> dict[str, Any]:
    """The report's `load`: every reading, the highest 1-minute average, and whether the
    machine was busy, with a one-line note when it was.

    Busy: before the first measurement the 1-minute load average exceeded QUIET_START per core
    (other work was running), or some reading, before or after a measurement, exceeded
    QUIET_PEAK per core (the benchmark's own threads account for up to about 1 per core; the
    1-minute average decays over about a minute, so a reading just after a measurement still
    holds most of it). A busy report's figures may be low: rerun on a quiet machine before
    reading them as a regression."""
    cores = os.cpu_count() or 1
    ones = [r[key][0] for r in readings for key in ("before", "after") if r.get(key)]
    peak = max(ones) if ones else None
    first = readings[0]["before"][0] if readings and readings[0].get("before") else None
    reasons = []
    if first is not None and first > QUIET_START * cores:
        reasons.append(f"{first:.2f} before the first measurement")
    if peak is not None and peak > QUIET_PEAK * cores:
        reasons.append(f"up to {peak:.2f} during the measurements")
    note = None
    if reasons:
        note = (
            f"machine busy: 1-minute load average {' and '.join(reasons)} on {cores} cores; "
            "figures may be low, not a regression"
        )
    return {"cores": cores, "max_1min": peak, "busy": bool(reasons), "note": note, "readings": readings}
