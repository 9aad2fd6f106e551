"""`repro data preview` (what the trainer sees) and `repro check-tokenizer` (the BOS guard)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import (
    DataOpt,
    DatasetOpt,
    SettingArg,
    TokenizationOpt,
    app,
    data_app,
    format_option,
    local_or_hub_option,
    path_argument,
    path_option,
)
from repro.config import evalconfig
from repro.config.resolution import evaluation_plan, resolve_names
from repro.config.settings import get_setting
from repro.data import bosguard, preference, tokenizers
from repro.errors import ReproError, UsageError
from repro.models import catalog
from repro.train import launch

TokenizerOpt = Annotated[
    str | None,
    local_or_hub_option("--tokenizer", help="Tokenizer directory or hub id (default: the setting's model)."),
]


def pipeline_for(
    setting_name: str,
    tokenizer_path: str | None,
    tokenization: str,
    max_length: int | None,
    max_prompt_length: int | None,
):
    setting = get_setting(setting_name)
    revision = setting.tokenizer_revision or setting.model_revision
    tokenizer = _tokenizer(tokenizer_path or setting.model_name_or_path, revision)
    pipeline = preference.Pipeline.for_config(
        tokenizer, setting, tokenization, max_length=max_length, max_prompt_length=max_prompt_length
    )
    return setting, tokenizer, pipeline


def _tokenizer(name: str, revision: str | None):
    """A tokenizer by folder or hub id; a built-in model (repro:NAME) is its imported folder,
    fetched the first time as a run fetches it."""
    return tokenizers.load(catalog.local_path(name), revision=revision)


def _pieces(tokenizer, ids: list[int]) -> str:
    """Decoded tokens joined by '|', special tokens shown as they are, newlines as \\n."""
    out = []
    for i in ids:
        piece = tokenizer.decode([i], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        out.append(piece.replace("\n", "\\n"))
    return "|".join(out)


def _summary(stats, pipeline) -> str:
    """'3 of 4 rows tokenized (simpo), 1 skipped: ...; truncated: ...'."""
    summary = stats.as_dict()
    skipped = sum(stats.skipped.values())
    line = f"{stats.kept} of {stats.rows} rows tokenized ({pipeline.tokenization})"
    if skipped:
        reasons = "; ".join(f"{n} x {reason}" for reason, n in stats.skipped.items())
        line += f", {skipped} skipped: {reasons}"
    if summary["prompt_truncated"] or summary["responses_truncated"]:
        truncated = summary["prompt_truncated"], summary["responses_truncated"]
        line += f"; truncated: {truncated[0]} prompts, {truncated[1]} response pairs"
    return line


@data_app.command("preview")
def preview(
    setting: SettingArg,
    input_file: Annotated[
        Path | None,
        path_option(
            "--input",
            "-i",
            role="file",
            help="Preference rows (JSON lines, UltraFeedback layout; default: the setting's training split).",
        ),
    ] = None,
    dataset: DatasetOpt = None,
    data_source: DataOpt = None,
    tokenizer: TokenizerOpt = None,
    tokenization: TokenizationOpt = "simpo",
    max_length: Annotated[
        int | None,
        typer.Option("--max-length", min=2, metavar="N", help="Token cap per sequence (default: setting's)."),
    ] = None,
    max_prompt_length: Annotated[
        int | None,
        typer.Option(
            "--max-prompt-length", min=1, metavar="N", help="Token cap per prompt (default: setting's)."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, metavar="N", help="Only the first N rows.")
    ] = None,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Print, per row, exactly the token ids and labels training will consume: the first rows
    of --input, or of the setting's own training split as stored (before the run shuffles it)."""
    if input_file is not None and (dataset or data_source):  # said before the tokenizer loads
        raise UsageError("--input is the rows to show: give it, or --dataset / --data, not both")
    _, tok, pipeline = pipeline_for(setting, tokenizer, tokenization, max_length, max_prompt_length)
    if input_file is None:
        source_dir = str(data_source) if data_source else None
        config, _ = resolve_names(setting, "simpo", dataset=dataset, data_source=source_dir, pin=False)
        source = f"{config.dataset} ({config.train_split} split)"
        rows = launch.training_rows(config, config.train_split)[:limit]
    else:
        source = str(input_file)
        rows = preference.read_jsonl(input_file)[:limit]
    if not rows:
        raise ReproError(f"{source}: no rows (empty file)")
    results, stats = pipeline.run(rows)
    line = _summary(stats, pipeline)
    if not results:
        raise ReproError(f"{source}: no valid rows: {line}")
    line = line if input_file else f"{source}: {line}"
    if fmt == "json":
        render.print_json([r.as_dict() for r in results])
    else:
        console = render.console()
        for n, row in enumerate(results):
            masked = sum(label == preference.IGNORE_INDEX for label in row.chosen_labels)
            body = []
            for part, ids, labels in (
                ("prompt", row.prompt_input_ids, None),
                ("chosen", row.chosen_input_ids, row.chosen_labels),
                ("rejected", row.rejected_input_ids, row.rejected_labels),
            ):
                if labels is None:
                    body.append((part, str(len(ids)), _pieces(tok, ids)))
                    continue
                cut = sum(label == preference.IGNORE_INDEX for label in labels)
                body.append((f"{part} [masked]", str(cut), _pieces(tok, ids[:cut])))
                body.append((f"{part} [trained]", str(len(ids) - cut), _pieces(tok, ids[cut:])))
            bos = bosguard.leading(row.chosen_input_ids, tok.bos_token_id)
            eos_end = row.chosen_input_ids[-1] == tok.eos_token_id
            console.print(
                render.table(
                    ["part", "tokens", "pieces (| between tokens)"],
                    body,
                    title=f"row {n}: {bos} BOS, chosen ends with EOS: {eos_end}, {masked} masked tokens",
                )
            )
        for note in pipeline.notes:
            console.print(f"note: {note}")
    render.console(stderr=True).print(line)


@app.command("check-tokenizer")
def check_tokenizer(
    model_or_path: Annotated[
        str,
        path_argument(
            "local-or-hub", "Tokenizer directory, hub id or built-in model (repro:NAME).", metavar="TOKENIZER"
        ),
    ],
    setting: Annotated[
        str | None,
        typer.Option(
            "--setting",
            "-s",
            metavar="NAME",
            help="Use this setting's templates (default: llama3-instruct-v0.2).",
        ),
    ] = None,
    tokenization: TokenizationOpt = "simpo",
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Count BOS tokens in training sequences and generation prompts; two BOS is an error."""
    name = setting or "llama3-instruct-v0.2"
    the_setting = get_setting(name)
    revision = the_setting.tokenizer_revision or the_setting.model_revision
    tok = _tokenizer(model_or_path, revision)
    pipeline = preference.Pipeline.for_config(tok, the_setting, tokenization)
    generation = evalconfig.generation(evaluation_plan(the_setting).generation)
    report = bosguard.Report.of(bosguard.run(tok, pipeline, generation))
    if fmt == "json":
        render.print_json(report.to_json())
    else:
        render.print_table(
            render.table(
                ["what", "first ids", "first tokens", "BOS", "status", "message"],
                [
                    (
                        c.what,
                        str(c.first_ids),
                        " ".join(c.first_tokens),
                        str(c.bos_count),
                        c.status,
                        c.message,
                    )
                    for c in report.checks
                ],
                title=f"BOS check: {model_or_path} with the {the_setting.name} templates",
            )
        )
    if first := report.first_error():
        why = f"{first.what}: {first.message}"
        raise ReproError(f"double BOS or a contradicted family: {why}; {bosguard.FIX}")
