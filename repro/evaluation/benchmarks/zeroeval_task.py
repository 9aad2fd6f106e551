"""What ZeroEval's GSM and MMLU-Redux share (repro.evaluation.zeroeval): no judge; greedy answers
through the model's chat template, ZeroEval's result file, its scorer (41d0bfd)."""

from __future__ import annotations

from typing import Any, ClassVar

from repro import io
from repro.evaluation import zeroeval
from repro.evaluation.benchmarks.base import Benchmark, Context, DataOption, JudgeAccess, fmt
from repro.evaluation.scorers import zeroeval as scorer


class ZeroEvalTask(Benchmark):
    task: ClassVar[str]  # ZeroEval's task name
    data_options = (DataOption("zeroeval_data", "dir", "Folder with ZeroEval's gsm.json / mmlu-redux.json."),)

    def run(self, ev: Context, judge: JudgeAccess | None = None) -> dict[str, Any]:
        """Generate, write ZeroEval's result file, score it. The generating job scores it (no judge
        needed); a judging job then takes that score (same model, limit, BOS mode and token cap)
        instead of generating again on a CPU node."""
        record = ev.folder(self.name) / "scored-by-generation.json"
        identity = {"model": ev.generator_fingerprint(), "limit": ev.limit}
        # how the answers were made, where not the default (older records hold neither)
        if ev.options.zeroeval_bos != "single":
            identity["zeroeval_bos"] = ev.options.zeroeval_bos
        if ev.max_new_tokens is not None:
            identity["max_new_tokens"] = ev.max_new_tokens
        stored = io.read_json(record)
        if stored and stored.get("identity") == identity and identity["model"]:
            ev.subset("zeroeval", stored.get("items"))  # whether --limit left items out, as generated
            return stored["result"]
        result, items = self._run(ev)
        if ev.stage == "generate":
            io.write_json(record, {"identity": identity, "result": result, "items": items})
        return result

    def _run(self, ev: Context) -> tuple[dict[str, Any], int]:
        """The output, and how many items the task has (before --limit)."""
        # a setting may name the items as a file under shared/data (smol: the GSM8K test questions
        # as ZeroEval's own recorded outputs hold them); --zeroeval-data wins
        named = (ev.config.get("zeroeval") or {}).get("shared_items", {}).get(self.task)
        given = ev.options.data_path("zeroeval_data")
        items_file = ev.shared_data(named) if named and not given else None
        bundled = ev.question_set("zeroeval")
        data_dir = given or bundled
        items = zeroeval.load_items(self.task, items_file, data_dir=data_dir)
        available = len(items)
        items = items[: ev.subset("zeroeval", available)]
        with ev.timed("generate"):
            records, generation = zeroeval.generate(
                ev.generator,
                ev.tokenizer,
                self.task,
                items,
                model_name=ev.model_name,
                engine=ev.options.backend,
                # the generation config may cap ZeroEval's 4096 tokens (the tiny model has 256 positions)
                max_new_tokens=ev.max_new_tokens or ev.config.get("zeroeval", {}).get("max_new_tokens"),
                bos=ev.options.zeroeval_bos,
            )
        with ev.timed("score"):
            path = zeroeval.write_results(ev.folder(self.name) / f"{ev.model_name}.json", records)
            score = scorer.score_items(records, self.task, model=ev.model_name)
        if score.note:
            ev.note(f"{self.name}: {score.note}")
        return {
            **score.as_dict(),
            "outputs": str(path),
            "data": "the setting's question set"
            if items_file is None and data_dir and data_dir == bundled
            else "ZeroEval items",
            "scoring": "ZeroEval 41d0bfd",
            **generation,
            "incomplete": False,
        }, available

    def scores(self, output: dict[str, Any]) -> dict[str, Any]:
        accuracy, length = (m.key for m in self.metrics)
        return {accuracy: output.get("acc"), length: output.get("reason_length")}

    def why_missing(self, output: dict[str, Any], key: str) -> str:
        return output.get("note") or super().why_missing(output, key)  # e.g. no output parsed

    def rows(self, output: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            ("accuracy", fmt(output.get("acc"))),
            ("no answer %", fmt(output.get("no_answer"))),
            ("length (reasoning chars)", fmt(output.get("reason_length"))),
            ("BOS", (output.get("bos") or {}).get("note", "")),
        ]
