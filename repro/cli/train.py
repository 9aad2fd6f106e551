"""`repro train SETTING --method M --output DIR`: the recipe on accelerate + DeepSpeed ZeRO-3."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import DatasetOpt, PaddingFreeOpt, app
from repro.config import recipes
from repro.data import bosguard
from repro.errors import ReproError, unknown
from repro.train import launch

LAUNCHERS = ("local", "slurm")
DEVICES = ("auto", "cuda", "cpu")


@app.command("train")
def train_cmd(
    setting: Annotated[str, typer.Argument(help="Setting name or recipe file.")],
    method: Annotated[str, typer.Option("--method", "-m")] = "simpo",
    output: Annotated[Path, typer.Option("--output", "-o", help="Run directory.")] = Path("out/train"),
    gpus: Annotated[
        int | None, typer.Option("--gpus", help="Processes per node (GPUs; CPU processes without CUDA).")
    ] = None,
    nodes: Annotated[int, typer.Option("--nodes", min=1)] = 1,
    layout: Annotated[str, typer.Option("--layout", help="current or paper-time.")] = "current",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a value: --set beta=2.5")
    ] = None,
    dataset: DatasetOpt = None,
    padding_free: PaddingFreeOpt = None,
    tokenization: Annotated[str, typer.Option("--tokenization", help="simpo, paper-v1 or trl.")] = "simpo",
    tokenizer: Annotated[
        str | None, typer.Option("--tokenizer", help="Tokenizer path (default: the model's).")
    ] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    reference_cache: Annotated[
        str | None, typer.Option("--reference-cache", help="Reference log-prob cache file.")
    ] = None,
    launcher: Annotated[
        str, typer.Option("--launcher", help="local or slurm (writes an sbatch script).")
    ] = "local",
    partition: Annotated[str | None, typer.Option("--partition", help="SLURM partition.")] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="auto, cuda or cpu: where training runs (auto: CUDA if this machine has it). "
            "With --launcher slurm, the compute nodes' device.",
        ),
    ] = "auto",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write the run directory and print the launch command.")
    ] = False,
    allow_double_bos: Annotated[
        bool, typer.Option("--allow-double-bos", help="Train even if the BOS check fails.")
    ] = False,
) -> None:
    """Train SETTING x METHOD; writes OUTPUT/model (consolidated weights) and OUTPUT/metrics.json."""
    if launcher not in LAUNCHERS:
        raise unknown("launcher", launcher, LAUNCHERS)
    if device not in DEVICES:
        raise unknown("device", device, DEVICES)
    if device == "cuda" and launcher == "local" and not dry_run and not launch.cuda_available():
        raise ReproError("--device cuda: this machine has no CUDA device (--launcher slurm for GPU nodes)")
    config, the_method = recipes.resolve_names(
        setting,
        method,
        overrides=overrides,
        num_processes=gpus,
        num_nodes=nodes,
        layout=layout,
        padding_free=padding_free,
        dataset=dataset,
    )
    run = launch.prepare(
        config,
        output,
        hyperparameters=recipes.hyperparameters_of(config, the_method),
        tokenization=tokenization,
        tokenizer=tokenizer,
        max_steps=max_steps,
        reference_cache=reference_cache,
        device=None if device == "auto" else device,
    )
    batch = config["batch"]
    console = render.console(stderr=True)
    console.print(
        f"{config['setting']} x {config['method']}: {batch['total']} = {batch['per_device']} per device x "
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
        return
    if run.bos_check["status"] == "error" and not allow_double_bos:
        raise ReproError(f"BOS check failed ({run.directory / 'bos_check.json'}): {bosguard.FIX}")
    code = launch.launch(run)
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
