"""AlpacaEval 2 through alpaca-eval 0.6.2: 805 instructions, answers decoded as alpaca-eval 0.6.2
gave them to vLLM (the setting's `alpaca_eval` section), judged against gpt-4-1106-preview's
reference answers by the weighted annotator (log-probs of a one-token verdict)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repro import io
from repro.errors import ReproError
from repro.evaluation.benchmarks import register
from repro.evaluation.benchmarks.base import (
    PERCENT,
    Benchmark,
    Context,
    DataOption,
    JudgeAccess,
    JudgeCost,
    Metric,
    fmt,
)  # fmt: skip
from repro.evaluation.generation.decoding import Decoding
from repro.evaluation.scorers import alpaca_eval

LC, WR = "ae2_lc", "ae2_wr"  # the headline metrics (the judging diagnosis reads WR)


@register
class AlpacaEval2(Benchmark):
    name = "alpaca_eval2"
    title = "AlpacaEval 2"
    table_order = 1
    judged = True
    published_judge = "gpt-4-1106-preview"
    cost = JudgeCost(
        "gpt-4-1106-preview", questions=805, calls=805, input_tokens=1000, output_tokens=1,
        note="one call per instruction (max_tokens 1, log-probs)",
    )  # fmt: skip
    metrics = (
        Metric(LC, "AE2 LC", tolerance=1.0, bounds=PERCENT, published=True, headline=True),
        Metric(WR, "AE2 WR", tolerance=1.0, bounds=PERCENT, published=True, headline=True),
        Metric("ae2_wr_se", "AE2 WR standard error", higher_is_better=None),
        Metric("ae2_length", "AE2 length", higher_is_better=None, published=True, column="AE2 len"),
    )
    data_options = (
        DataOption("alpaca_reference", "file", "AlpacaEval reference outputs JSON."),
        DataOption("lc_data", "dir", "Folder with the length-controlled win rate CSVs."),
    )

    def run(self, ev: Context, judge: JudgeAccess | None = None) -> dict[str, Any]:
        cfg = ev.config["alpaca_eval"]
        decoding = Decoding.alpaca_eval(cfg, max_new_tokens=ev.max_new_tokens)
        if cfg.get("instructions") == "heldout":  # a setting trained on AlpacaEval annotations
            heldout = ev.heldout_instructions()
            instructions = heldout[: ev.subset("alpaca_eval", len(heldout))]
            records = None
        else:
            path = (
                ev.options.data_path("alpaca_reference")
                or ev.question_set("alpaca_eval2.json")
                or ev.shared_data("alpaca_eval/reference/gpt4_1106_preview.json")
            )
            if not path or not Path(path).exists():
                raise ReproError("AlpacaEval reference outputs not found: pass --alpaca-reference FILE")
            records = json.loads(Path(path).read_text())
            records = records[: ev.subset("alpaca_eval", len(records))]
            instructions = [r["instruction"] for r in records]
        # the baseline's answers: the reference file's, or the starting model's (generated below)
        reference_outputs = None if ev.baseline == "init-model" else records
        # not str.format: instructions hold braces
        prompts = [cfg["prompt_template"].replace("{instruction}", i) for i in instructions]
        # strings with add_special_tokens, as alpaca-eval 0.6.2 gave them to vLLM
        how = dict(
            add_special_tokens=True, expected_bos=int(cfg.get("expected_bos", 1)), what="AlpacaEval prompts"
        )
        outputs = ev.answer(self.name, prompts, decoding, **how)
        model_outputs = [
            {"instruction": i, "output": o, "generator": ev.model_name, "dataset": "repro"}
            for i, o in zip(instructions, outputs, strict=True)
        ]
        if reference_outputs is None:
            ref = ev.answer(self.name, prompts, decoding, reference=True, **how)
            reference_outputs = [
                {"instruction": i, "output": o, "generator": "reference", "dataset": "repro"}
                for i, o in zip(instructions, ref, strict=True)
            ]
        io.write_json(ev.folder(self.name) / "model_outputs.json", model_outputs)
        io.write_json(ev.folder(self.name) / "reference_outputs.json", reference_outputs)
        if judge is None:
            return {"answers": len(model_outputs)}
        with ev.timed("judge"):  # alpaca-eval's whole evaluate(), which also computes its win rate
            result = alpaca_eval.evaluate(
                model_outputs,
                reference_outputs,
                judge.backend,
                name=ev.model_name,
                cache_path=judge.cache,
                lc_data=ev.options.data_path("lc_data"),
                # the rule judge answers in microseconds: alpaca-eval's pool of processes (one
                # fork per slot) would cost more than it saves; one slot runs in this process
                concurrency=1 if judge.kind == "rule" else judge.concurrency,
                judge_model=None,
                annotations_out=ev.folder(self.name) / "annotations.json",
                refresh=judge.refresh,
            )
        result["decoding"] = decoding.__dict__
        return result

    def scores(self, output: dict[str, Any]) -> dict[str, Any]:
        return {
            LC: output.get("length_controlled_winrate"),
            WR: output.get("win_rate"),
            "ae2_wr_se": output.get("standard_error"),
            "ae2_length": output.get("avg_length"),
        }

    def failed_judgments(self, output: dict[str, Any]) -> int | None:
        return output.get("n_failed")  # annotations without a preference

    def why_missing(self, output: dict[str, Any], key: str) -> str:
        if key == LC and output.get("lc_available") is False:
            return "no length-controlled data: pass --lc-data DIR (df_gamed.csv, instruction_difficulty.csv)"
        if not output.get("n_total"):
            return "no judgment came back"
        return super().why_missing(output, key)

    def rows(self, output: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            ("LC win rate", fmt(output.get("length_controlled_winrate"))),
            ("win rate", fmt(output.get("win_rate"))),
            ("avg length", fmt(output.get("avg_length"))),
        ]
