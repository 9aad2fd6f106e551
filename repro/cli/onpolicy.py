"""`repro data on-policy`: sample, score with a reward model, binarize (repro.datagen.onpolicy)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import FormatOpt, data_app
from repro.errors import ReproError


def _seeds(seeds: str | None, samples: int | None, default: tuple[int, ...]) -> tuple[int, ...]:
    if seeds:
        try:
            chosen = tuple(int(s) for s in seeds.split(",") if s.strip())
        except ValueError:
            raise ReproError(f"--seeds must be comma-separated integers, not '{seeds}'") from None
    else:
        chosen = default
    if samples is not None:
        if seeds and samples != len(chosen):
            raise ReproError(
                f"--samples {samples} but --seeds lists {len(chosen)} seeds (one sample per seed)"
            )
        if samples > len(chosen):
            raise ReproError(f"--samples {samples}: give {samples} seeds with --seeds")
        chosen = chosen[:samples]
    return chosen


@data_app.command("on-policy")
def on_policy_cmd(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for the dataset, work files, manifest.")
    ],
    setting: Annotated[
        str | None,
        typer.Option("--setting", help="Take model, reward model, prompts and sampling from its recipe."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Policy to sample from (hub id or path).")
    ] = None,
    prompts: Annotated[
        str | None, typer.Option("--prompts", help="DATASET[:split] or a JSON lines file of rows.")
    ] = None,
    reward_model: Annotated[
        str | None, typer.Option("--reward-model", help="Sequence-classification reward model.")
    ] = None,
    samples: Annotated[int | None, typer.Option("--samples", min=2, help="Samples per prompt.")] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="One seed per sample: 13,21,42,79,100.")
    ] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", min=0.0)] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", min=0.0, max=1.0)] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1)] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto, vllm or transformers.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Prompts per generate call.")] = 8,
    rm_batch_size: Annotated[int, typer.Option("--rm-batch-size", min=1, help="Reward model batch.")] = 8,
    min_margin: Annotated[
        float, typer.Option("--min-margin", help="Drop pairs whose reward gap is smaller.")
    ] = 0.0,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", help="Held-out share of the pairs.")
    ] = 0.03,
    split_seed: Annotated[int, typer.Option("--split-seed")] = 42,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="First N prompts (after sorting).")
    ] = None,
    trust_remote_code: Annotated[
        bool | None, typer.Option("--trust-remote-code/--no-trust-remote-code", help="Needed by ArmoRM.")
    ] = None,
    allow_double_bos: Annotated[bool, typer.Option("--allow-double-bos")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Generate an on-policy preference dataset; a killed run resumes from OUTPUT."""
    from repro.config import recipes
    from repro.datagen import onpolicy

    render.check_format(fmt, ("table", "json"))
    recipe = {}
    if setting:
        recipe = recipes.get_setting(setting).on_policy or {}
        if not recipe:
            raise ReproError(f"setting '{setting}' has no on_policy recipe; give --model and --reward-model")
    model = model or recipe.get("model")
    reward_model = reward_model or recipe.get("reward_model")
    if not model or not reward_model:
        raise ReproError("give --model and --reward-model (or --setting with an on_policy recipe)")
    options = onpolicy.Options(
        model=model,
        reward_model=reward_model,
        output=output.resolve(),
        prompts=prompts or recipe.get("prompts", onpolicy.DEFAULT_PROMPTS),
        seeds=_seeds(seeds, samples, tuple(recipe.get("seeds", onpolicy.SEEDS))),
        temperature=temperature if temperature is not None else recipe.get("temperature", 0.8),
        top_p=top_p if top_p is not None else recipe.get("top_p", 0.95),
        max_tokens=max_tokens or recipe.get("max_tokens", 4096),
        backend=backend,
        batch_size=batch_size,
        rm_batch_size=rm_batch_size,
        min_margin=min_margin,
        test_fraction=test_fraction,
        split_seed=split_seed,
        limit=limit,
        trust_remote_code=trust_remote_code
        if trust_remote_code is not None
        else recipe.get("trust_remote_code", False),
        allow_double_bos=allow_double_bos,
    )
    with render.progress() as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        manifest = onpolicy.run(options, progress)
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
