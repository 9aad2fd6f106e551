"""`repro eval`, `repro alpaca-eval rescore`, `repro arena-hard score`, `repro mt-bench score`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import FormatOpt, app
from repro.errors import ReproError

alpaca_app = typer.Typer(help="AlpacaEval 2 through alpaca-eval 0.6.2.", no_args_is_help=True)
arena_app = typer.Typer(help="Arena-Hard v0.1 scoring.", no_args_is_help=True)
mt_app = typer.Typer(help="MT-Bench single-answer grading.", no_args_is_help=True)
app.add_typer(alpaca_app, name="alpaca-eval")
app.add_typer(arena_app, name="arena-hard")
app.add_typer(mt_app, name="mt-bench")


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@alpaca_app.command("rescore")
def rescore(
    annotations: Annotated[
        Path, typer.Argument(help="alpaca_eval annotations JSON holding the judge's raw completions.")
    ],
    reference: Annotated[
        Path | None, typer.Option("--reference", help="Reference outputs JSON (default: output_1).")
    ] = None,
    lc_data: Annotated[
        Path | None,
        typer.Option("--lc-data", help="Folder with df_gamed.csv and instruction_difficulty.csv."),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1)] = 4,
    fmt: FormatOpt = "table",
) -> None:
    """Replay recorded judgments through alpaca-eval's full judging path (a local judge on 127.0.0.1)."""
    from repro.evaluation.scorers import alpaca_eval

    render.check_format(fmt, ("table", "json"))
    result = alpaca_eval.rescore(annotations, reference=reference, lc_data=lc_data, concurrency=concurrency)
    if fmt == "json":
        render.print_json(result)
        return
    keys = [*alpaca_eval.COLUMNS, "n_failed", "incomplete"]
    render.print_table(
        render.table(
            ["metric", "value"],
            [(k, _fmt(result[k])) for k in keys],
            title=f"AlpacaEval 2 replay: {result['model']}",
            caption=None if result["lc_available"] else "LC: pass --lc-data (see docs)",
        )
    )


@arena_app.command("score")
def arena_score(
    judgments: Annotated[
        list[Path], typer.Argument(help="Judgment files (or folders) in arena-hard-auto's v0.1 format.")
    ],
    answers: Annotated[
        Path | None, typer.Option("--answers", help="Folder of model answer files (for token lengths).")
    ] = None,
    weight: Annotated[int, typer.Option("--weight", min=1)] = 3,
    rounds: Annotated[int, typer.Option("--rounds", min=1)] = 100,
    fmt: FormatOpt = "table",
) -> None:
    """Score, 95% CI and average answer tokens per model, as arena-hard-auto's show_result.py."""
    from repro.evaluation.scorers import arena_hard

    render.check_format(fmt, ("table", "json"))
    scores = arena_hard.score(
        arena_hard.battles_from_judgments(arena_hard.load_judgments(judgments), weight=weight), rounds=rounds
    )
    for model, row in scores.items():
        row["avg_tokens"] = None
        if answers is not None:
            file = Path(answers) / f"{model}.jsonl"
            if file.exists():
                row["avg_tokens"] = arena_hard.answer_tokens(arena_hard.read_jsonl(file))
    if fmt == "json":
        render.print_json(scores)
        return
    rows = [
        (
            m,
            f"{r['score']:.1f}",
            f"({r['lower'] - r['score']:+.1f}, {r['upper'] - r['score']:+.1f})",
            _fmt(r["avg_tokens"]),
            str(r["battles"]),
        )
        for m, r in sorted(scores.items(), key=lambda x: -x[1]["score"])
    ]
    render.print_table(
        render.table(
            ["model", "score", "95% CI", "avg tokens", "battles"],
            rows,
            title="Arena-Hard v0.1 (vs gpt-4-0314)",
        )
    )


@mt_app.command("score")
def mt_score(
    judgments: Annotated[Path, typer.Argument(help="FastChat single-grading judgment file (JSON lines).")],
    fmt: FormatOpt = "table",
) -> None:
    """Turn 1, turn 2, average and counted ratings per model, as FastChat's show_result.py."""
    from repro.evaluation.scorers import mt_bench

    render.check_format(fmt, ("table", "json"))
    scores = mt_bench.score(mt_bench.load_judgments(judgments))
    if fmt == "json":
        render.print_json(scores)
        return
    rows = [
        (
            m,
            _fmt(r["turn_1"]),
            _fmt(r["turn_2"]),
            _fmt(r["average"]),
            str(r["n_counted"]),
            str(r["n_dropped"]),
        )
        for m, r in sorted(scores.items(), key=lambda x: -(x[1]["average"] or 0))
    ]
    render.print_table(
        render.table(
            ["model", "turn 1", "turn 2", "average", "counted", "dropped (-1)"],
            rows,
            title="MT-Bench (single-answer grading)",
        )
    )


@app.command("eval")
def eval_cmd(
    model: Annotated[str, typer.Argument(help="Checkpoint directory or hub id.")],
    setting: Annotated[str, typer.Option("--setting", "-s", help="Whose templates and decoding to use.")],
    bench: Annotated[
        str, typer.Option("--bench", help="Comma-separated: alpaca_eval2,arena_hard,mt_bench.")
    ] = "alpaca_eval2,arena_hard,mt_bench",
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("out/eval"),
    judge: Annotated[
        str | None,
        typer.Option("--judge", help="endpoint (an OpenAI-compatible server) or rule (tiny default)."),
    ] = None,
    judge_url: Annotated[
        str | None, typer.Option("--judge-url", help="Base URL of the judge, e.g. https://api.openai.com/v1.")
    ] = None,
    judge_model: Annotated[
        str | None, typer.Option("--judge-model", help="Override each benchmark's judge model.")
    ] = None,
    judge_key_env: Annotated[
        str, typer.Option("--judge-key-env", help="Environment variable holding the judge key.")
    ] = "OPENAI_API_KEY",
    judge_cache: Annotated[Path | None, typer.Option("--judge-cache", help="SQLite judgment cache.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1)] = 4,
    reference_model: Annotated[
        str | None, typer.Option("--reference-model", help="Baseline model (tiny: the starting model).")
    ] = None,
    tokenizer: Annotated[str | None, typer.Option("--tokenizer")] = None,
    backend: Annotated[str, typer.Option("--backend", help="transformers or vllm.")] = "transformers",
    server: Annotated[
        str | None,
        typer.Option(
            "--server", help="Generate with an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."
        ),
    ] = None,
    server_key_env: Annotated[
        str | None, typer.Option("--server-key-env", help="Environment variable holding the server's key.")
    ] = None,
    chat_template: Annotated[
        str | None,
        typer.Option("--chat-template", help="Arena-Hard/MT-Bench template (default: the setting's)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N questions per benchmark.")
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", min=1)] = None,
    alpaca_reference: Annotated[Path | None, typer.Option("--alpaca-reference")] = None,
    arena_hard_data: Annotated[Path | None, typer.Option("--arena-hard-data")] = None,
    mt_bench_data: Annotated[Path | None, typer.Option("--mt-bench-data")] = None,
    lc_data: Annotated[Path | None, typer.Option("--lc-data")] = None,
    allow_double_bos: Annotated[bool, typer.Option("--allow-double-bos")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Evaluate a checkpoint with SETTING's templates and decoding; writes OUTPUT/result.json."""
    from repro.evaluation import runner

    render.check_format(fmt, ("table", "json"))
    spec = runner.Judge.choose(
        judge,
        setting,
        url=judge_url,
        model=judge_model,
        key_env=judge_key_env,
        concurrency=concurrency,
        cache=judge_cache,
    )
    ev = runner.Evaluation(
        model,
        setting,
        output=output,
        judge=spec,
        backend_name=backend,
        tokenizer=tokenizer,
        limit=limit,
        reference_model=reference_model,
        alpaca_reference=alpaca_reference,
        arena_hard_data=arena_hard_data,
        mt_bench_data=mt_bench_data,
        lc_data=lc_data,
        max_new_tokens=max_new_tokens,
        server=server,
        server_key_env=server_key_env,
        chat_template=chat_template,
        allow_double_bos=allow_double_bos,
    )
    if ev.bos_check["status"] == "error" and not allow_double_bos:
        from repro.data import bosguard

        raise ReproError(f"BOS check failed for {model}: {bosguard.FIX} (or pass --allow-double-bos)")
    results = ev.run([b.strip() for b in bench.split(",") if b.strip()])
    record = {
        "model": model,
        "setting": ev.setting.name,
        "judge": spec.describe(),
        "results": results,
        "bos_check": ev.bos_check,
        "timings_seconds": ev.timings,
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / "result.json").write_text(json.dumps(record, indent=2, default=str))
    if fmt == "json":
        render.print_json(record)
        return
    rows = []
    if r := results.get("alpaca_eval2"):
        rows += [
            ("AlpacaEval 2", "LC win rate", _fmt(r["length_controlled_winrate"])),
            ("AlpacaEval 2", "win rate", _fmt(r["win_rate"])),
            ("AlpacaEval 2", "avg length", _fmt(r["avg_length"])),
        ]
    if r := results.get("arena_hard"):
        rows += [
            ("Arena-Hard", "score", _fmt(r["score"])),
            ("Arena-Hard", "95% CI", f"{r['lower']:.1f} .. {r['upper']:.1f}"),
            ("Arena-Hard", "avg tokens", _fmt(r["avg_tokens"])),
        ]
    if r := results.get("mt_bench"):
        rows += [
            ("MT-Bench", "average", _fmt(r["average"])),
            ("MT-Bench", "turn 1 / turn 2", f"{_fmt(r['turn_1'])} / {_fmt(r['turn_2'])}"),
        ]
    incomplete = [b for b, r in results.items() if isinstance(r, dict) and r.get("incomplete")]
    caption = (
        f"incomplete: {', '.join(incomplete)} (failed judgments are counted in result.json)"
        if incomplete
        else None
    )
    render.print_table(
        render.table(
            ["benchmark", "metric", "value"], rows, title=f"{model} ({ev.setting.name})", caption=caption
        )
    )
    if not rows:
        raise ReproError("no benchmark produced a result")
