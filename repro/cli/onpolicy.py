"""`repro data on-policy`: sample, score with a reward model, binarize (repro.datagen.onpolicy)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import data_app, format_option, local_or_hub_option, path_option
from repro.datagen import onpolicy
from repro.runs.pipeline import preflight


@data_app.command("on-policy")
def on_policy_cmd(
    output: Annotated[
        Path,
        path_option(
            "--output", "-o", role="output-dir", help="Directory for the dataset, work files, manifest."
        ),
    ],
    setting: Annotated[
        str | None,
        typer.Option("--setting", help="Take model, reward model, prompts and sampling from its recipe."),
    ] = None,
    model: Annotated[
        str | None, local_or_hub_option("--model", help="Policy to sample from (hub id or folder).")
    ] = None,
    prompts: Annotated[
        str | None,
        local_or_hub_option(
            "--prompts",
            metavar="ID[:SPLIT]|FILE",
            help="DATASET[:split] or a JSON lines file of rows.",
            file_suffixes=(".json", ".jsonl"),
            split=True,
        ),
    ] = None,
    reward_model: Annotated[
        str | None, local_or_hub_option("--reward-model", help="Sequence-classification reward model.")
    ] = None,
    samples: Annotated[int | None, typer.Option("--samples", min=2, help="Samples per prompt.")] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="One seed per sample: 13,21,42,79,100.")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", min=0.0, help="Sampling temperature (recipe: 0.8).")
    ] = None,
    top_p: Annotated[
        float | None, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling (recipe: 0.95).")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=1, help="Tokens per sample (recipe: 4096).")
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", metavar="auto|vllm|transformers", help="Sampling backend.")
    ] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Prompts per generate call.")] = 8,
    rm_batch_size: Annotated[int, typer.Option("--rm-batch-size", min=1, help="Reward model batch.")] = 8,
    min_margin: Annotated[
        float, typer.Option("--min-margin", help="Drop pairs whose reward gap is smaller.")
    ] = 0.0,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", help="Held-out share of the pairs.")
    ] = 0.03,
    split_seed: Annotated[int, typer.Option("--split-seed", help="Seed of the train/test split.")] = 42,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="First N prompts (after sorting).")
    ] = None,
    trust_remote_code: Annotated[
        bool | None, typer.Option("--trust-remote-code/--no-trust-remote-code", help="Needed by ArmoRM.")
    ] = None,
    allow_double_bos: Annotated[
        bool, typer.Option("--allow-double-bos", help="Sample even if the BOS check fails.")
    ] = False,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Generate an on-policy preference dataset; a killed run resumes from OUTPUT."""
    preflight.require_all([preflight.writable(output, "--output")])
    options = onpolicy.resolve_options(
        setting,
        output=output,
        model=model,
        reward_model=reward_model,
        prompts=prompts,
        samples=samples,
        seeds=seeds,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        trust_remote_code=trust_remote_code,
        backend=backend,
        batch_size=batch_size,
        rm_batch_size=rm_batch_size,
        min_margin=min_margin,
        test_fraction=test_fraction,
        split_seed=split_seed,
        limit=limit,
        allow_double_bos=allow_double_bos,
    )
    with render.Bars() as bars:
        manifest = onpolicy.run(options, bars)
    if fmt == "json":
        render.print_json(manifest)
        return
    counts = manifest["counts"]
    render.print_table(
        render.table(
            ["model", "reward model", "prompts", "identical dropped", "below margin", "train", "test"],
            [
                (
                    manifest["model"],
                    manifest["reward_model"],
                    counts["prompts"],
                    counts["dropped_identical_samples"],
                    counts["dropped_below_margin"],
                    counts["train"],
                    counts["test"],
                )
            ],
            title=f"on-policy dataset: {output}",
            caption=f"train with: repro train SETTING --dataset {output}",
        )
    )
