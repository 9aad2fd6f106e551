"""`repro train SETTING --method M --output DIR`: the recipe on accelerate + DeepSpeed ZeRO-3."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import (
    DatasetOpt,
    GpusOpt,
    LayoutOpt,
    MaxStepsOpt,
    MethodOpt,
    NodesOpt,
    OverridesOpt,
    PaddingFreeOpt,
    ReportToOpt,
    SettingArg,
    TokenizationOpt,
    app,
    local_or_hub_option,
    path_option,
)
from repro.config.resolution import resolve_names
from repro.data import bosguard
from repro.errors import ReproError, unknown
from repro.train import launch

LAUNCHERS = ("local", "slurm")
DEVICES = ("auto", "cuda", "cpu")


@app.command("train")
def train_cmd(
    setting: SettingArg,
    method: MethodOpt = "simpo",
    output: Annotated[Path, path_option("--output", "-o", role="output-dir", help="Run directory.")] = Path(
        "out/train"
    ),
    gpus: GpusOpt = None,
    nodes: NodesOpt = 1,
    layout: LayoutOpt = "current",
    overrides: OverridesOpt = None,
    dataset: DatasetOpt = None,
    padding_free: PaddingFreeOpt = None,
    tokenization: TokenizationOpt = "simpo",
    tokenizer: Annotated[
        str | None,
        local_or_hub_option("--tokenizer", help="Tokenizer directory or hub id (default: the model's)."),
    ] = None,
    max_steps: MaxStepsOpt = None,
    reference_cache: Annotated[
        Path | None,
        path_option(
            "--reference-cache", role="output-file", help="Reference log-prob cache (created if absent)."
        ),
    ] = None,
    launcher: Annotated[
        str,
        typer.Option("--launcher", metavar="local|slurm", help="local, or slurm (writes an sbatch script)."),
    ] = "local",
    partition: Annotated[
        str | None, typer.Option("--partition", metavar="NAME", help="SLURM partition.")
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="auto, cuda or cpu: where training runs (auto: CUDA if this machine has it). "
            "With --launcher slurm, the compute nodes' device.",
        ),
    ] = "auto",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the launch command; write nothing into the output.")
    ] = False,
    planned_files: Annotated[
        Path | None,
        path_option(
            "--planned-files",
            role="output-dir",
            help="With --dry-run: write the planned run.json and DeepSpeed/accelerate configs here.",
        ),
    ] = None,
    allow_double_bos: Annotated[
        bool, typer.Option("--allow-double-bos", help="Train even if the BOS check fails.")
    ] = False,
    report_to: ReportToOpt = None,
) -> None:
    """Train SETTING x METHOD; writes OUTPUT/model (consolidated weights) and OUTPUT/metrics.json."""
    if launcher not in LAUNCHERS:
        raise unknown("launcher", launcher, LAUNCHERS)
    if device not in DEVICES:
        raise unknown("device", device, DEVICES)
    if device == "cuda" and launcher == "local" and not dry_run and not launch.cuda_available():
        raise ReproError("--device cuda: this machine has no CUDA device (--launcher slurm for GPU nodes)")
    config, the_method = resolve_names(
        setting,
        method,
        overrides=overrides,
        num_processes=gpus,
        num_nodes=nodes,
        layout=layout,
        padding_free=padding_free,
        dataset=dataset,
        tokenization=tokenization,
        max_steps=max_steps,
        report_to=report_to,
    )
    if not dry_run:
        from repro.runs import preflight

        preflight.require(
            config,
            results_root=output,
            output_option="--output",
            here=launcher == "local",
            device=device != "cpu",
        )
    finished = launch.finished_metrics(output.resolve(), config) if output.exists() else None
    if finished is not None and launcher == "local":
        # finished means finished: nothing is resumed, rewritten or relaunched
        render.console(stderr=True).print(
            f"already trained: {finished['steps']} steps, {output / 'metrics.json'} (nothing to do)",
            markup=False,
            highlight=False,
        )
        return
    run = launch.prepare(
        config,
        output,
        tokenizer=tokenizer,
        reference_cache=str(reference_cache) if reference_cache else None,
        dry_run=dry_run and launcher != "slurm",
        planned_dir=planned_files,
        device=None if device == "auto" else device,
    )
    batch = config.batch
    console = render.console(stderr=True)
    console.print(
        f"{config.setting} x {config.method}: {batch['total']} = {batch['per_device']} per device x "
        f"{batch['gradient_accumulation_steps']} accumulation x {batch['num_processes']} processes x "
        f"{batch['num_nodes']} nodes; run directory {run.directory}"
    )
    if launcher == "slurm":
        script = run.directory / "train.sbatch"
        script.write_text(
            launch.slurm_script(
                run, nodes=nodes, processes_per_node=batch["num_processes"], partition=partition
            )
        )
        where = "GPU nodes" if run.gpu else "CPU nodes (DS_ACCELERATOR=cpu, gloo; --device cuda for GPUs)"
        console.print(f"wrote {script} for {where}; submit with: sbatch {script}")
        return
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in run.env.items())
    if dry_run:
        print(f"{env} {shlex.join(run.command)}")
        where = (
            f"; the planned files are in {run.planned}"
            if run.planned
            else " (--planned-files DIR writes the planned files there)"
        )
        console.print(f"dry run: nothing written to {run.directory}{where}")
        return
    if run.bos_check["status"] == "error" and not allow_double_bos:
        raise ReproError(f"BOS check failed ({run.directory / 'bos_check.json'}): {bosguard.FIX}")
    with render.Bars() as bars:
        code = launch.launch(run, progress=bars, echo=bars.echo, verbose=render.VERBOSE)
    if code != 0:
        raise ReproError(f"training failed (exit {code}); see {run.directory / 'train.log'}")
    metrics = json.loads((run.directory / "metrics.json").read_text())
    ev, before = metrics["eval"], metrics["eval_before_training"]
    nan = float("nan")
    accuracy = before.get("eval_rewards/accuracies", nan), ev.get("eval_rewards/accuracies", nan)
    loss = before.get("eval_loss", nan), ev.get("eval_loss", nan)
    console.print(
        f"done: {metrics['steps']} steps in {metrics['train_seconds']} s, {metrics['world_size']} processes; "
        f"held-out reward accuracy {accuracy[0]:.3f} -> {accuracy[1]:.3f}, "
        f"eval loss {loss[0]:.4f} -> {loss[1]:.4f}; {run.directory / 'metrics.json'}"
    )
    for name, where in (metrics.get("trackers") or {}).items():
        if isinstance(where, dict):
            console.print(f"{name}: {where.get('url') or where.get('dir')}", markup=False, highlight=False)
