"""ZeroEval MMLU-Redux (the Gemma-2 table's MMLU column): multiple choice, "- (A) choice" lines."""

from __future__ import annotations

from repro.evaluation.benchmarks import register
from repro.evaluation.benchmarks.base import PERCENT, Metric
from repro.evaluation.benchmarks.zeroeval_task import ZeroEvalTask


@register
class MMLURedux(ZeroEvalTask):
    name = "mmlu_redux"
    title = "MMLU-Redux (ZeroEval)"
    table_order = 5
    task = "mmlu-redux"
    # tolerances as for GSM (repro.evaluation.benchmarks.zeroeval_gsm)
    metrics = (
        Metric("mmlu", "MMLU", tolerance=1.0, bounds=PERCENT, published=True),
        Metric("mmlu_length", "MMLU length", higher_is_better=None, tolerance=20.0, decimals=0,
               published=True, column="MMLU len"),
    )  # fmt: skip
