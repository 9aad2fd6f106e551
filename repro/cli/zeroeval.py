"""`repro zeroeval score` and `repro zeroeval prompts`: ZeroEval's GSM and MMLU-Redux (41d0bfd)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import app, format_option, local_or_hub_option, path_argument, path_option
from repro.data import tokenizers
from repro.evaluation import zeroeval
from repro.evaluation.scorers import zeroeval as scorer

zeroeval_app = typer.Typer(help="ZeroEval GSM and MMLU-Redux: prompts and scoring.", no_args_is_help=True)
app.add_typer(zeroeval_app, name="zeroeval")

TaskOpt = Annotated[str, typer.Option("--task", "-t", metavar="gsm|mmlu-redux", help="The ZeroEval task.")]
COLUMNS = ("model", "acc", "no_answer", "total", "reason_length")


@zeroeval_app.command("score")
def score_cmd(
    outputs: Annotated[
        list[Path], path_argument("file", "ZeroEval result files (one model per file, named MODEL.json).")
    ],
    task: TaskOpt,
    mmlu_match: Annotated[
        str,
        typer.Option(
            "--mmlu-match",
            metavar="zeroeval|lenient",
            help="zeroeval (as published) or lenient (C., c, (C) count).",
        ),
    ] = "zeroeval",
    fmt: Annotated[str, format_option("table", "json", "csv")] = "table",
) -> None:
    """Acc, No answer (%), Total and Reason Lens per model, as ZeroEval's own scorer prints them."""
    scorer.check_task(task)
    scores = scorer.ranked([scorer.score_file(p, task, mmlu_match=mmlu_match) for p in outputs])
    if fmt == "json":
        render.print_json([s.as_dict() for s in scores])
        return
    if fmt == "csv":
        render.print_csv(COLUMNS, [[getattr(s, c) for c in COLUMNS] for s in scores])
        return
    notes = [f"{s.model}: {s.note}" for s in scores if s.note]
    render.print_table(
        render.table(
            ["model", "acc %", "no answer %", "total", "reason length"],
            [
                (
                    s.model,
                    f"{s.acc:.2f}",
                    f"{s.no_answer:.2f}",
                    str(s.total),
                    "n/a" if s.reason_length is None else f"{s.reason_length:.2f}",
                )
                for s in scores
            ],
            title=f"ZeroEval {task} (41d0bfd scoring"
            + (", lenient letters)" if mmlu_match != "zeroeval" else ")"),
            caption="; ".join(notes) or None,
        )
    )


@zeroeval_app.command("prompts")
def prompts_cmd(
    task: TaskOpt,
    input_path: Annotated[
        Path | None,
        path_option("--input", "-i", role="file", help="Items in ZeroEval's format (JSON or JSON lines)."),
    ] = None,
    tokenizer: Annotated[
        str,
        local_or_hub_option(
            "--tokenizer", help="Tokenizer (directory or hub id) whose chat template renders."
        ),
    ] = ...,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N items.")] = None,
    fmt: Annotated[str, format_option("jsonl", "json")] = "jsonl",
) -> None:
    """The exact prompt string of every item (ZeroEval's `model_input`), one JSON line each."""
    items = zeroeval.load_items(task, input_path, limit=limit)
    tok = tokenizers.load(tokenizer)
    rows = [{"id": item["id"], "prompt": zeroeval.prompt(tok, task, item)} for item in items]
    bos = zeroeval.bos_plan(tok, [r["prompt"] for r in rows[:1]])
    render.console(stderr=True).print(f"{len(rows)} prompts; {bos['note']}", markup=False, highlight=False)
    if fmt == "json":
        render.print_json(rows)
        return
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
