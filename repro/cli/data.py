"""`repro data preview` (what the trainer sees) and `repro check-tokenizer` (the BOS guard)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import FormatOpt, app, data_app
from repro.config import evalconfig, recipes
from repro.data import bosguard, preference, tokenizers
from repro.errors import ReproError

TokenizerOpt = Annotated[
    str | None,
    typer.Option("--tokenizer", help="Tokenizer directory or hub id (default: the setting's model)."),
]


def pipeline_for(
    setting_name: str,
    tokenizer_path: str | None,
    tokenization: str,
    max_length: int | None,
    max_prompt_length: int | None,
):
    setting = recipes.get_setting(setting_name)
    revision = setting.tokenizer_revision or setting.model_revision
    tokenizer = tokenizers.load(tokenizer_path or setting.model_name_or_path, revision=revision)
    pipeline = preference.Pipeline.for_config(
        tokenizer, setting, tokenization, max_length=max_length, max_prompt_length=max_prompt_length
    )
    return setting, tokenizer, pipeline


def _pieces(tokenizer, ids: list[int]) -> str:
    """Decoded tokens joined by '|', special tokens shown as they are, newlines as \\n."""
    out = []
    for i in ids:
        piece = tokenizer.decode([i], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        out.append(piece.replace("\n", "\\n"))
    return "|".join(out)


@data_app.command("preview")
def preview(
    setting: Annotated[str, typer.Argument(help="Setting name or recipe file.")],
    input_file: Annotated[
        Path, typer.Option("--input", "-i", help="Preference rows (JSON lines, UltraFeedback layout).")
    ],
    tokenizer: TokenizerOpt = None,
    tokenization: Annotated[
        str, typer.Option("--tokenization", help="simpo (HEAD), paper-v1 (trl 0.8.6) or trl (TRL 1.16).")
    ] = "simpo",
    max_length: Annotated[int | None, typer.Option("--max-length", min=2)] = None,
    max_prompt_length: Annotated[int | None, typer.Option("--max-prompt-length", min=1)] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N rows.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Print, per row, exactly the token ids and labels training will consume."""
    render.check_format(fmt, ("table", "json"))
    _, tok, pipeline = pipeline_for(setting, tokenizer, tokenization, max_length, max_prompt_length)
    rows = preference.read_jsonl(input_file)[:limit]
    results, stats = pipeline.run(rows)
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
    summary = stats.as_dict()
    skipped = sum(stats.skipped.values())
    line = f"{stats.kept} of {stats.rows} rows tokenized ({pipeline.tokenization})"
    if skipped:
        reasons = "; ".join(f"{n} x {reason}" for reason, n in stats.skipped.items())
        line += f", {skipped} skipped: {reasons}"
    if summary["prompt_truncated"] or summary["responses_truncated"]:
        truncated = summary["prompt_truncated"], summary["responses_truncated"]
        line += f"; truncated: {truncated[0]} prompts, {truncated[1]} response pairs"
    render.console(stderr=True).print(line)
    if not results and rows:
        raise ReproError(f"{input_file}: no valid rows")


@app.command("check-tokenizer")
def check_tokenizer(
    model_or_path: Annotated[str, typer.Argument(help="Tokenizer directory or hub id.")],
    setting: Annotated[
        str | None, typer.Option("--setting", "-s", help="Use this setting's templates.")
    ] = None,
    tokenization: Annotated[str, typer.Option("--tokenization")] = "simpo",
    fmt: FormatOpt = "table",
) -> None:
    """Count BOS tokens in training sequences and generation prompts; two BOS is an error."""
    render.check_format(fmt, ("table", "json"))
    name = setting or "llama3-instruct-v0.2"
    the_setting = recipes.get_setting(name)
    revision = the_setting.tokenizer_revision or the_setting.model_revision
    tok = tokenizers.load(model_or_path, revision=revision)
    pipeline = preference.Pipeline.for_config(tok, the_setting, tokenization)
    checks = bosguard.run(tok, pipeline, evalconfig.generation(the_setting.name))
    if fmt == "json":
        render.print_json(bosguard.as_manifest(checks))
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
                    for c in checks
                ],
                title=f"BOS check: {model_or_path} with the {the_setting.name} templates",
            )
        )
    if bosguard.worst(checks) == "error":
        raise ReproError("double BOS: " + bosguard.FIX)
