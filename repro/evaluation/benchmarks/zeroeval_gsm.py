"""ZeroEval GSM (the Gemma-2 table's GSM column): grade-school math, open-ended answers."""

from __future__ import annotations

from repro.evaluation.benchmarks import register
from repro.evaluation.benchmarks.base import PERCENT, Metric
from repro.evaluation.benchmarks.zeroeval_task import ZeroEvalTask


@register
class GSM(ZeroEvalTask):
    name = "gsm"
    title = "GSM (ZeroEval)"
    table_order = 4
    task = "gsm"
    # No stated noise floor for ZeroEval: +-1.0 point of accuracy and +-20 characters of
    # reasoning length (about 5% of the published 341-624), compared as published (whole chars).
    metrics = (
        Metric("gsm", "GSM", tolerance=1.0, bounds=PERCENT, published=True),
        Metric("gsm_length", "GSM length", higher_is_better=None, tolerance=20.0, decimals=0,
               published=True, column="GSM len"),
    )  # fmt: skip
