"""`repro eval`, `repro alpaca-eval rescore`, `repro arena-hard score`, `repro mt-bench score`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render, result_tables
from repro.cli.common import (
    BackendOpt,
    BenchPathOpt,
    JudgeKeyEnvOpt,
    JudgeModelOpt,
    RefreshJudgmentsOpt,
    app,
    format_option,
    load_bench_paths,
    local_or_hub_option,
    path_argument,
    path_option,
    with_data_options,
)
from repro.config import evalconfig
from repro.config.resolution import evaluation_plan
from repro.config.settings import get_setting
from repro.errors import ReproError
from repro.evaluation import generation
from repro.evaluation.eval_options import EvalOptions
from repro.evaluation.judge.spec import Judge
from repro.runs.pipeline import checkpoint

alpaca_app = typer.Typer(help="AlpacaEval 2 through alpaca-eval 0.6.2.", no_args_is_help=True)
arena_app = typer.Typer(help="Arena-Hard v0.1 scoring.", no_args_is_help=True)
mt_app = typer.Typer(help="MT-Bench single-answer grading.", no_args_is_help=True)
app.add_typer(alpaca_app, name="alpaca-eval")
app.add_typer(arena_app, name="arena-hard")
app.add_typer(mt_app, name="mt-bench")


@alpaca_app.command("rescore")
def rescore(
    annotations: Annotated[
        Path, path_argument("file", "alpaca_eval annotations JSON holding the judge's raw completions.")
    ],
    reference: Annotated[
        Path | None,
        path_option("--reference", role="file", help="Reference outputs JSON (default: output_1)."),
    ] = None,
    lc_data: Annotated[
        Path | None,
        path_option("--lc-data", role="dir", help="Folder with df_gamed.csv and instruction_difficulty.csv."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Judge calls in flight at once.")
    ] = 4,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Replay recorded judgments through alpaca-eval's full judging path (a local judge on 127.0.0.1)."""
    from repro.evaluation.scorers import alpaca_eval

    result = alpaca_eval.rescore(annotations, reference=reference, lc_data=lc_data, concurrency=concurrency)
    if fmt == "json":
        render.print_json(result)
        return
    render.print_table(result_tables.alpaca_table(result, alpaca_eval.COLUMNS))


@arena_app.command("score")
def arena_score(
    judgments: Annotated[
        list[Path],
        path_argument("path", "Judgment files (or folders) in arena-hard-auto's v0.1 format."),
    ],
    answers: Annotated[
        Path | None,
        path_option("--answers", role="dir", help="Folder of MODEL.jsonl answer files (token lengths)."),
    ] = None,
    weight: Annotated[
        int, typer.Option("--weight", min=1, help="Times a strong verdict (A>>B) is counted.")
    ] = 3,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Bootstrap rounds for the 95% CI.")] = 100,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Score, 95% CI and average answer tokens per model, as arena-hard-auto's show_result.py."""
    from repro.evaluation.scorers import arena_hard

    scores, missing = arena_hard.score_files(judgments, answers=answers, weight=weight, rounds=rounds)
    for line in arena_hard.notes(scores, missing, answers):
        render.warn(line)
    if fmt == "json":
        render.print_json(scores)
        return
    render.print_table(result_tables.arena_table(scores))


@mt_app.command("score")
def mt_score(
    judgments: Annotated[Path, path_argument("file", "FastChat single-grading judgment file (JSON lines).")],
    keep_out_of_range: Annotated[
        bool,
        typer.Option(
            "--keep-out-of-range",
            help="Average ratings outside 1-10 in, as FastChat does (default: count them as failed).",
        ),
    ] = False,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Turn 1, turn 2, average and counted ratings per model, as FastChat's show_result.py."""
    from repro.evaluation.scorers import mt_bench

    scores = mt_bench.score(mt_bench.load_judgments(judgments), keep_out_of_range=keep_out_of_range)
    for line in mt_bench.notes(scores):
        render.warn(line)
    if fmt == "json":
        render.print_json(scores)
        return
    render.print_table(result_tables.mt_bench_table(scores))


@app.command("eval")
@with_data_options
def eval_cmd(
    model: Annotated[str, path_argument("local-or-hub", "Checkpoint directory or hub id.", metavar="MODEL")],
    setting: Annotated[
        str, typer.Option("--setting", "-s", metavar="NAME", help="Whose templates and decoding to use.")
    ],
    revision: Annotated[
        str | None,
        typer.Option("--revision", metavar="REV", help="Hub model's branch, tag or commit (default: main)."),
    ] = None,
    bench: Annotated[
        str | None,
        typer.Option(
            "--bench",
            metavar="LIST",
            help="Comma-separated: alpaca_eval2,arena_hard,mt_bench,gsm,mmlu_redux, or one of yours "
            "(--bench-path); default: the setting's.",
        ),
    ] = None,
    output: Annotated[
        Path, path_option("--output", "-o", role="output-dir", help="Folder for result.json and outputs.")
    ] = Path("out/eval"),
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge",
            metavar="rule|endpoint",
            help="endpoint (an OpenAI-compatible server) or rule (tiny default).",
        ),
    ] = None,
    judge_url: Annotated[
        str | None,
        typer.Option(
            "--judge-url", metavar="URL", help="Base URL of the judge, e.g. https://api.openai.com/v1."
        ),
    ] = None,
    judge_model: JudgeModelOpt = None,
    judge_key_env: JudgeKeyEnvOpt = "OPENAI_API_KEY",
    judge_cache: Annotated[
        Path | None,
        path_option("--judge-cache", role="output-file", help="SQLite judgment cache (created if absent)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Judge calls in flight at once.")
    ] = 4,
    reference_model: Annotated[
        str | None,
        local_or_hub_option("--reference-model", help="Baseline model (tiny: the starting model)."),
    ] = None,
    tokenizer: Annotated[
        str | None,
        local_or_hub_option("--tokenizer", help="Tokenizer directory or hub id (default: MODEL's)."),
    ] = None,
    backend: BackendOpt = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            metavar="URL",
            help="Generate with an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.",
        ),
    ] = None,
    server_key_env: Annotated[
        str | None,
        typer.Option(
            "--server-key-env", metavar="VAR", help="Environment variable holding the server's key."
        ),
    ] = None,
    chat_template: Annotated[
        str | None,
        typer.Option(
            "--chat-template", metavar="NAME", help="Arena-Hard/MT-Bench template (default: the setting's)."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N questions per benchmark.")
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option("--max-new-tokens", min=1, help="Cap on generated tokens (default: the setting's)."),
    ] = None,
    data_paths: dict[str, Path] | None = None,  # each benchmark's data option (with_data_options)
    allow_double_bos: Annotated[
        bool, typer.Option("--allow-double-bos", help="Evaluate even if the BOS check fails.")
    ] = False,
    zeroeval_bos: Annotated[
        str,
        typer.Option(
            "--zeroeval-bos",
            metavar="single|zeroeval",
            help="single (one BOS) or zeroeval (vLLM's way: may double it).",
        ),
    ] = "single",
    bench_path: BenchPathOpt = None,
    refresh_judgments: RefreshJudgmentsOpt = False,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Evaluate a checkpoint with SETTING's templates and decoding; writes OUTPUT/result.json."""
    load_bench_paths(bench_path)
    plan = evaluation_plan(get_setting(setting))
    spec = Judge.choose(
        judge,
        plan,
        url=judge_url,
        model=judge_model,
        key_env=judge_key_env,
        concurrency=concurrency,
        cache=judge_cache,
        refresh=refresh_judgments,
    )
    backend = generation.check_backend(backend or evalconfig.engine(plan))
    options = EvalOptions.pick(locals())
    with render.Bars() as bars:
        record = checkpoint.evaluate(
            model, setting, output=output, bench=bench, judge=spec, options=options, revision=revision,
            progress=bars,
        )  # fmt: skip
    if fmt == "json":
        render.print_json(record.to_json())
        return
    table = result_tables.eval_table(record)
    render.print_table(table)
    if not table.row_count:
        raise ReproError("no benchmark produced a result")
